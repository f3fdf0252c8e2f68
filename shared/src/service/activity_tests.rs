//! Activity cursors: a position in one integration's requests, old and new forms.

use super::*;

fn cursor(fields: &[(&str, &str)]) -> String {
    let item: Item = fields.iter().map(|(k, v)| (k.to_string(), crate::store::s(*v))).collect();
    encode_cursor(Some(item)).as_str().expect("a cursor").to_string()
}

#[test]
fn a_request_cursor_goes_on_from_its_row_in_the_same_integration_only() {
    let c = cursor(&[("pk", "INTEGRATION#i1"), ("sk", "REQUEST#01ABC")]);
    let key = decode_request_cursor(Some(&c), "i1").unwrap().expect("a start key");
    assert_eq!(key.len(), 2);
    assert_eq!(key["sk"].as_s().unwrap(), "REQUEST#01ABC");
    assert!(decode_request_cursor(Some(&c), "i2").is_err(), "another integration's position");
    let job = cursor(&[("pk", "INTEGRATION#i1"), ("sk", "JOB#01ABC-00001")]);
    assert!(decode_request_cursor(Some(&job), "i1").is_err(), "not a request row");
    assert!(decode_request_cursor(Some("not base64!"), "i1").is_err());
    assert!(decode_request_cursor(None, "i1").unwrap().is_none());
}

#[test]
fn a_cursor_given_out_by_the_index_listing_still_works() {
    let old =
        cursor(&[("pk", "INTEGRATION#i1"), ("sk", "REQUEST#01ABC"), ("gsi1pk", "ACTIVITY#i1"), ("gsi1sk", "01ABC")]);
    let key = decode_request_cursor(Some(&old), "i1").unwrap().expect("a start key");
    assert_eq!(key.keys().count(), 2, "the table's keys alone: {key:?}");
    let foreign =
        cursor(&[("pk", "INTEGRATION#i1"), ("sk", "REQUEST#01ABC"), ("gsi1pk", "ACTIVITY#i2"), ("gsi1sk", "01ABC")]);
    assert!(decode_request_cursor(Some(&foreign), "i1").is_err());
}
