//! Unit tests of `store/provisioning/` (in their own file: docs/architecture.md "Layering and style").

use super::*;

#[test]
fn a_request_is_final_once_every_job_is_counted_and_no_fanout_is_pending() {
    let row = |total, succeeded, failed, superseded, fanout_pending| RequestRow {
        pk: "p".into(),
        sk: "s".into(),
        id: "r".into(),
        integration_id: "i".into(),
        created_at: "t".into(),
        method: "PATCH".into(),
        path: "/Groups/g".into(),
        resource_type: "Group".into(),
        resource_id: None,
        total,
        succeeded,
        failed,
        superseded,
        drift: 0,
        note: None,
        status: status::IN_PROGRESS.into(),
        finished_at: None,
        fanout_pending,
        next_job: None,
        expires_at: None,
    };
    assert_eq!(final_status(&row(3, 2, 0, 0, false)), None, "a job still runs");
    assert_eq!(final_status(&row(3, 2, 0, 1, false)), Some(status::SUCCEEDED));
    assert_eq!(final_status(&row(3, 2, 0, 1, true)), None, "the fan-out may add jobs");
    let report = RequestRow { drift: 2, ..row(3, 1, 0, 0, false) };
    assert_eq!(final_status(&report), Some(status::SUCCEEDED), "drift jobs are done: nothing failed");
    assert_eq!(final_status(&row(0, 0, 0, 0, true)), None);
    assert_eq!(final_status(&row(0, 0, 0, 0, false)), Some(status::SUCCEEDED), "a fan-out that moved nobody");
    assert_eq!(final_status(&row(2, 1, 1, 0, false)), Some(status::PARTIALLY_FAILED));
    assert_eq!(final_status(&row(2, 0, 2, 0, false)), Some(status::FAILED));
}

/// The attribute names the rows are stored under are the ones `store::keys` names (and
/// `tests/template.rs` compares with the table's indexes and TTL in template.yaml).
#[test]
fn rows_store_their_index_and_ttl_attributes_under_the_names_of_store_keys() {
    let job: JobRow = serde_json::from_value(serde_json::json!({
        "pk": "p", "sk": "s", "id": "j", "request_id": "r", "integration_id": "i", "user_id": "u",
        "action": "provision", "seq": 1, "status": "queued", "created_at": "2026-01-01T00:00:00Z",
        "gsi1pk": "QUEUED", "gsi1sk": "x", "gsi2pk": "USERJOBS#i#u", "gsi2sk": "j", "expires_at": 1
    }))
    .unwrap();
    let item: Item = serde_dynamo::to_item(&job).unwrap();
    for name in [keys::GSI1_PK, keys::GSI1_SK, keys::GSI2_PK, keys::GSI2_SK, keys::TTL_ATTRIBUTE] {
        assert!(item.contains_key(name), "a job row has no attribute {name}");
    }
    let request: RequestRow = serde_json::from_value(serde_json::json!({
        "pk": "p", "sk": "s", "id": "r", "integration_id": "i", "created_at": "2026-01-01T00:00:00Z",
        "method": "PATCH", "path": "/Groups/g", "resource_type": "Group", "total": 1, "status": "requested",
        "gsi1pk": "ACTIVITY#i", "gsi1sk": "r", "expires_at": 1
    }))
    .expect("a row written before requests left the index still reads");
    let item: Item = serde_dynamo::to_item(&request).unwrap();
    assert!(item.contains_key(keys::TTL_ATTRIBUTE), "a request row has no attribute expires_at");
    for name in [keys::GSI1_PK, keys::GSI1_SK] {
        // The Activity feed reads REQUEST# rows in key order: an index entry would only cost.
        assert!(!item.contains_key(name), "a request row is written with {name}");
    }
}
