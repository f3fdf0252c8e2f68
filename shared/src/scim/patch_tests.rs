//! Unit tests of `scim/patch/` (in their own file: docs/architecture.md "Layering and style").

use super::*;
use crate::error::ScimType;
use crate::scim::schema::{ENTERPRISE_SCHEMA, GROUP_TYPE, IDLCM_USER_SCHEMA, PATCH_OP, USER_TYPE};
use serde_json::json;

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn ops(list: Value) -> Vec<Operation> {
    parse_request(body(list)).expect("valid PATCH body")
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn try_patch(rt: &ResourceType, doc: Value, list: Value) -> ScimResult<Value> {
    let mut m = obj(doc);
    apply(&mut m, rt, &ops(list))?;
    Ok(Value::Object(m))
}

fn patch_user(doc: Value, list: Value) -> Value {
    try_patch(&USER_TYPE, doc, list).expect("patch applies")
}

/// Patch, then the caller's normalise step, as the service does.
fn patch_user_stored(doc: Value, list: Value) -> Value {
    Value::Object(resource::normalise(&USER_TYPE, patch_user(doc, list)).expect("normalises"))
}

fn user_err(doc: Value, list: Value) -> (u16, Option<ScimType>) {
    let e = try_patch(&USER_TYPE, doc, list).expect_err("patch fails");
    (e.status, e.scim_type)
}

fn parse_err(body: Value) -> Option<ScimType> {
    let e = parse_request(body).expect_err("body is rejected");
    assert_eq!(e.status, 400);
    e.scim_type
}

fn split(list: Value) -> (Vec<Operation>, Vec<MemberChange>) {
    split_group_ops(ops(list)).expect("splits")
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn bjensen() -> Value {
    json!({
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "primary": true},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"}
        ],
        "active": true,
        ENTERPRISE_SCHEMA: {"department": "Tour Operations", "manager": {"value": "m1", "$ref": "../Users/m1"}}
    })
}

// ------------------------------------------------------------------ parse_request

#[test]
fn parses_rfc_body() {
    let o = ops(json!([{"op": "add", "path": "nickName", "value": "Babs"}]));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].op, Op::Add);
    assert_eq!(o[0].path.as_ref().map(|p| p.path.attr.as_str()), Some("nickName"));
    assert_eq!(o[0].value, Some(json!("Babs")));
}

#[test]
fn e1_op_values_any_case() {
    let o = ops(json!([
        {"op": "Add", "path": "title", "value": "x"},
        {"op": "Replace", "path": "title", "value": "y"},
        {"op": "Remove", "path": "title"},
        {"op": "REPLACE", "path": "title", "value": "z"},
        {"op": "rEmOvE", "path": "title"}
    ]));
    let kinds: Vec<Op> = o.iter().map(|o| o.op).collect();
    assert_eq!(kinds, vec![Op::Add, Op::Replace, Op::Remove, Op::Replace, Op::Remove]);
}

#[test]
fn e26_key_order_and_key_case_do_not_matter() {
    // entra/24: "Operations" before "schemas".
    let o = parse_request(
        json!({"Operations": [{"op": "Replace", "path": "active", "value": false}], "schemas": [PATCH_OP]}),
    )
    .unwrap();
    assert_eq!(o[0].op, Op::Replace);
    let o = parse_request(json!({"operations": [{"Value": 1, "PATH": "title", "OP": "add"}]})).unwrap();
    assert_eq!((o[0].op, o[0].value.clone()), (Op::Add, Some(json!(1))));
    assert_eq!(o[0].path.as_ref().unwrap().path.attr, "title");
}

#[test]
fn missing_schemas_and_extra_members_are_tolerated() {
    // entra/refcode/26 (`name` in the op) and 66 (`id` at the top).
    let o = parse_request(json!({"id": "g1", "Operations": [{"name": "addMember", "op": "add", "path": "members", "value": "string id 1"}]}))
        .unwrap();
    assert_eq!(o.len(), 1);
}

#[test]
fn missing_or_empty_operations_is_invalid_syntax() {
    assert_eq!(parse_err(json!({"schemas": [PATCH_OP]})), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!([]))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!(null))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!("add"))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(json!([{"op": "add"}])), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!(["add"]))), Some(ScimType::InvalidSyntax));
}

#[test]
fn a_single_operation_object_is_accepted() {
    let o = parse_request(json!({"Operations": {"op": "replace", "value": {"active": false}}})).unwrap();
    assert_eq!(o.len(), 1);
    assert!(o[0].path.is_none());
}

#[test]
fn unknown_or_missing_op_is_invalid_syntax() {
    assert_eq!(parse_err(body(json!([{"op": "move", "path": "title", "value": "x"}]))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!([{"op": "copy", "path": "title"}]))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!([{"path": "title", "value": "x"}]))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!([{"op": 1, "path": "title", "value": "x"}]))), Some(ScimType::InvalidSyntax));
}

#[test]
fn bad_path_is_invalid_path() {
    assert_eq!(
        parse_err(body(json!([{"op": "add", "path": "emails[type eq \"work\"", "value": "x"}]))),
        Some(ScimType::InvalidPath)
    );
    assert_eq!(parse_err(body(json!([{"op": "add", "path": 5, "value": "x"}]))), Some(ScimType::InvalidPath));
    assert_eq!(
        parse_err(body(json!([{"op": "remove", "path": "emails[type zz \"work\"]"}]))),
        Some(ScimType::InvalidPath)
    );
}

#[test]
fn error_detail_names_the_operation() {
    let e = parse_request(body(json!([{"op": "add", "path": "title", "value": "x"}, {"op": "move"}]))).unwrap_err();
    assert!(e.detail.contains("Operations[1]"), "{}", e.detail);
}

#[test]
fn remove_without_path_or_value_is_no_target() {
    assert_eq!(parse_err(body(json!([{"op": "remove"}]))), Some(ScimType::NoTarget));
    assert_eq!(parse_err(body(json!([{"op": "Remove", "value": null}]))), Some(ScimType::NoTarget));
}

#[test]
fn add_or_replace_without_value_is_invalid_syntax() {
    assert_eq!(parse_err(body(json!([{"op": "add", "path": "title"}]))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!([{"op": "replace", "path": "title"}]))), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(body(json!([{"op": "replace"}]))), Some(ScimType::InvalidSyntax));
}

#[test]
fn pathless_add_or_replace_needs_an_object() {
    assert_eq!(parse_err(body(json!([{"op": "add", "value": "x"}]))), Some(ScimType::InvalidSyntax));
    assert_eq!(
        parse_err(body(json!([{"op": "replace", "value": [{"active": false}]}]))),
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(parse_err(body(json!([{"op": "replace", "value": null}]))), Some(ScimType::InvalidSyntax));
}

#[test]
fn empty_path_means_pathless() {
    let o = ops(
        json!([{"op": "replace", "path": "", "value": {"active": false}}, {"op": "add", "path": null, "value": {"title": "x"}}]),
    );
    assert!(o.iter().all(|o| o.path.is_none()));
}

#[test]
fn remove_with_null_value_has_no_value() {
    let o = ops(json!([{"op": "remove", "path": "title", "value": null}]));
    assert!(o[0].value.is_none());
}

#[test]
fn at_most_1000_operations() {
    let one = json!({"op": "add", "path": "title", "value": "x"});
    assert_eq!(ops(Value::Array(vec![one.clone(); MAX_OPERATIONS])).len(), MAX_OPERATIONS);
    assert_eq!(parse_err(body(Value::Array(vec![one; MAX_OPERATIONS + 1]))), Some(ScimType::InvalidSyntax));
}

#[test]
fn non_object_body_is_invalid_syntax() {
    assert_eq!(parse_err(json!("Operations")), Some(ScimType::InvalidSyntax));
    assert_eq!(parse_err(json!(null)), Some(ScimType::InvalidSyntax));
}

// ------------------------------------------------------------------ split_group_ops

#[test]
fn o10_remove_filter_then_add_in_order() {
    // okta/17
    let (doc, ch) = split(json!([
        {"op": "remove", "path": "members[value eq \"u2\"]"},
        {"op": "add", "path": "members", "value": [{"value": "u1", "display": "test.user@okta.local"}]}
    ]));
    assert!(doc.is_empty());
    assert_eq!(ch, vec![MemberChange::Remove(ids(&["u2"])), MemberChange::Add(ids(&["u1"]))]);
}

#[test]
fn o10_multi_remove_add_wire_example() {
    // okta/21
    let (_, ch) = split(json!([
        {"op": "remove", "path": "members[value eq \"removeUser1\"]"},
        {"op": "remove", "path": "members[value eq \"removeUser2\"]"},
        {"op": "add", "path": "members", "value": [{"value": "a1", "display": "addUser1@example.com"}, {"value": "a2", "display": "addUser2@example.com"}]}
    ]));
    assert_eq!(
        ch,
        vec![
            MemberChange::Remove(ids(&["removeUser1"])),
            MemberChange::Remove(ids(&["removeUser2"])),
            MemberChange::Add(ids(&["a1", "a2"]))
        ]
    );
}

#[test]
fn o10_replace_members_is_replace_all() {
    // okta/18
    let (_, ch) = split(
        json!([{"op": "replace", "path": "members", "value": [{"value": "u1", "display": "x"}, {"value": "u2", "display": "x"}]}]),
    );
    assert_eq!(ch, vec![MemberChange::ReplaceAll(ids(&["u1", "u2"]))]);
}

#[test]
fn e4_add_members_with_null_ref() {
    // entra/21, several memberships in one op
    let (_, ch) = split(
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"$ref": null, "value": "u2"}]}]),
    );
    assert_eq!(ch, vec![MemberChange::Add(ids(&["u1", "u2"]))]);
}

#[test]
fn e3_remove_with_value_list_removes_only_those() {
    // entra/22
    let (_, ch) = split(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}]}]));
    assert_eq!(ch, vec![MemberChange::Remove(ids(&["u1"]))]);
    let delta = fold_member_changes(&ch);
    assert!(!delta.reset, "must not wipe the group");
    assert_eq!(delta.set, vec![("u1".to_string(), false)]);
}

#[test]
fn e3_remove_with_filter_path() {
    // entra flagged form, entra/refcode/27
    let (_, ch) = split(json!([{"op": "remove", "path": "members[value eq \"u4\"]"}]));
    assert_eq!(ch, vec![MemberChange::Remove(ids(&["u4"]))]);
}

#[test]
fn remove_members_without_value_removes_all() {
    // entra/refcode/30, RFC 7644 §3.5.2.2
    let (_, ch) = split(json!([{"op": "remove", "path": "members"}]));
    assert_eq!(ch, vec![MemberChange::RemoveAll]);
    let (_, ch) = split(json!([{"op": "remove", "path": "members", "value": null}]));
    assert_eq!(ch, vec![MemberChange::RemoveAll]);
}

#[test]
fn remove_members_with_empty_list_removes_nobody() {
    let (_, ch) = split(json!([{"op": "remove", "path": "members", "value": []}]));
    assert_eq!(ch, vec![MemberChange::Remove(vec![])]);
    assert_eq!(fold_member_changes(&ch), MemberDelta::default());
}

#[test]
fn member_filter_with_or() {
    let (_, ch) =
        split(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\" or Value eq \"c\"]"}]));
    assert_eq!(ch, vec![MemberChange::Remove(ids(&["a", "b", "c"]))]);
}

#[test]
fn other_member_filters_are_invalid_filter() {
    for f in [
        "members[display eq \"x\"]",
        "members[value ne \"x\"]",
        "members[value eq \"a\" and value eq \"b\"]",
        "members[value sw \"a\"]",
        "members[value pr]",
        "members[value eq 5]",
        "members[not (value eq \"a\")]",
    ] {
        let e = split_group_ops(ops(json!([{"op": "remove", "path": f}]))).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidFilter)), "{f}");
    }
}

#[test]
fn members_path_any_case_and_urn_qualified() {
    let (doc, ch) = split(json!([
        {"op": "Add", "path": "Members", "value": [{"value": "a"}]},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "b"}]}
    ]));
    assert!(doc.is_empty());
    assert_eq!(ch, vec![MemberChange::Add(ids(&["a"])), MemberChange::Add(ids(&["b"]))]);
}

#[test]
fn bare_string_and_stringified_member_values() {
    // entra/refcode/66: a bare id string
    let (_, ch) = split(json!([{"op": "add", "path": "members", "value": "string id 1"}]));
    assert_eq!(ch, vec![MemberChange::Add(ids(&["string id 1"]))]);
    let (_, ch) = split(json!([{"op": "add", "path": "members", "value": {"value": "one", "display": "x"}}]));
    assert_eq!(ch, vec![MemberChange::Add(ids(&["one"]))]);
    let (_, ch) = split(json!([{"op": "add", "path": "members", "value": "[{\"value\":\"s1\"},{\"value\":\"s2\"}]"}]));
    assert_eq!(ch, vec![MemberChange::Add(ids(&["s1", "s2"]))]);
}

#[test]
fn member_without_value_is_invalid_value() {
    let e = split_group_ops(ops(json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]))).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn member_sub_attribute_or_filtered_add_is_invalid_path() {
    for (op, path) in [
        ("remove", "members[value eq \"a\"].display"),
        ("replace", "members.display"),
        ("add", "members[value eq \"a\"]"),
        ("replace", "members[value eq \"a\"]"),
    ] {
        let e = split_group_ops(ops(json!([{"op": op, "path": path, "value": "x"}]))).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{op} {path}");
    }
}

#[test]
fn o9_pathless_rename_stays_a_document_op() {
    // okta/16, okta/22
    let (doc, ch) = split(json!([{"op": "replace", "value": {"id": "g1", "displayName": "Test SCIMv2"}}]));
    assert!(ch.is_empty());
    assert_eq!(doc.len(), 1);
    let mut m = obj(json!({"displayName": "Old"}));
    apply(&mut m, &GROUP_TYPE, &doc).unwrap();
    assert_eq!(Value::Object(m), json!({"displayName": "Test SCIMv2"}));
}

#[test]
fn pathless_value_with_members_is_split() {
    let (doc, ch) = split(json!([
        {"op": "replace", "value": {"displayName": "G", "members": [{"value": "a"}]}},
        {"op": "add", "value": {"Members": [{"value": "b"}]}}
    ]));
    assert_eq!(ch, vec![MemberChange::ReplaceAll(ids(&["a"])), MemberChange::Add(ids(&["b"]))]);
    assert_eq!(doc.len(), 1, "the members-only op leaves no document op");
    assert_eq!(doc[0].value, Some(json!({"displayName": "G"})));
    assert_eq!(doc[0].op, Op::Replace);
}

#[test]
fn document_ops_keep_their_order() {
    // entra/20 then members
    let (doc, ch) = split(json!([
        {"op": "Replace", "path": "displayName", "value": "one"},
        {"op": "Add", "path": "members", "value": [{"value": "u"}]},
        {"op": "Replace", "path": "externalId", "value": "two"}
    ]));
    assert_eq!(
        doc.iter().map(|o| o.path.as_ref().unwrap().path.attr.clone()).collect::<Vec<_>>(),
        vec!["displayName", "externalId"]
    );
    assert_eq!(ch, vec![MemberChange::Add(ids(&["u"]))]);
}

#[test]
fn rfc_remove_all_then_add_members() {
    // RFC 7644 §3.5.2.2, last example
    let (_, ch) = split(json!([
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"display": "James Smith", "$ref": "https://example.com/v2/Users/08e1d05d", "value": "08e1d05d"}]}
    ]));
    let d = fold_member_changes(&ch);
    assert!(d.reset);
    assert_eq!(d.set, vec![("08e1d05d".to_string(), true)]);
}

// ------------------------------------------------------------------ fold_member_changes

#[test]
fn fold_later_changes_win_and_order_is_kept() {
    let d = fold_member_changes(&[
        MemberChange::Add(ids(&["a", "b"])),
        MemberChange::Remove(ids(&["a", "c"])),
        MemberChange::Add(ids(&["a"])),
    ]);
    assert!(!d.reset);
    assert_eq!(d.set, vec![("a".into(), true), ("b".into(), true), ("c".into(), false)]);
}

#[test]
fn fold_remove_all_and_replace_all_reset() {
    let d = fold_member_changes(&[MemberChange::Add(ids(&["a"])), MemberChange::RemoveAll]);
    assert_eq!(d, MemberDelta { reset: true, set: vec![] });
    let d = fold_member_changes(&[
        MemberChange::Remove(ids(&["x"])),
        MemberChange::ReplaceAll(ids(&["a", "b", "a"])),
        MemberChange::Remove(ids(&["b"])),
    ]);
    assert_eq!(d, MemberDelta { reset: true, set: vec![("a".into(), true), ("b".into(), false)] });
    assert_eq!(fold_member_changes(&[MemberChange::ReplaceAll(vec![])]), MemberDelta { reset: true, set: vec![] });
}

#[test]
fn fold_nothing() {
    assert_eq!(fold_member_changes(&[]), MemberDelta::default());
}

#[test]
fn fold_ids_are_case_sensitive() {
    let d = fold_member_changes(&[MemberChange::Add(ids(&["Ab"])), MemberChange::Remove(ids(&["ab"]))]);
    assert_eq!(d.set.len(), 2);
}

// ------------------------------------------------------------------ apply: path-less

#[test]
fn o1_pathless_replace_deactivates_and_reactivates() {
    // okta/27, okta/30
    let doc = patch_user(bjensen(), json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(doc["active"], false);
    let doc = patch_user(doc, json!([{"op": "replace", "value": {"active": true}}]));
    assert_eq!(doc["active"], true);
}

#[test]
fn rfc_3_5_2_1_pathless_add() {
    let doc = patch_user(
        json!({"userName": "bjensen", "emails": [{"value": "bjensen@example.com", "type": "work"}]}),
        json!([{"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"}}]),
    );
    assert_eq!(
        doc,
        json!({"userName": "bjensen",
               "emails": [{"value": "bjensen@example.com", "type": "work"}, {"value": "babs@jensen.org", "type": "home"}],
               "nickName": "Babs"})
    );
}

#[test]
fn rfc_3_5_2_3_pathless_replace() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "value": {"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}], "nickname": "Babs"}}]),
    );
    assert_eq!(doc["emails"], json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]));
    assert_eq!(doc["nickName"], "Babs");
    assert_eq!(doc["userName"], "bjensen", "other attributes stay");
}

#[test]
fn e5_pathless_keys_are_paths() {
    // entra/45-46 (flagged multi-attribute replace)
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "value": {
            "displayName": "Babs",
            "name.givenName": "Barb",
            "name.familyName": "Jensen-Smith",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales"
        }}]),
    );
    assert_eq!(
        doc["name"],
        json!({"givenName": "Barb", "familyName": "Jensen-Smith", "formatted": "Ms. Barbara J Jensen III"})
    );
    assert_eq!(doc[ENTERPRISE_SCHEMA]["employeeNumber"], "701984");
    assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "Sales");
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"]["value"], "m1");
    assert!(doc.get("name.givenName").is_none(), "never store a dotted name");
    assert!(doc.get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").is_none());
}

#[test]
fn e5_pathless_add_with_dotted_key_creates_parent() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "Add", "value": {"name.givenName": "A", "name.familyName": "B"}}]),
    );
    assert_eq!(doc, json!({"userName": "u", "name": {"givenName": "A", "familyName": "B"}}));
}

#[test]
fn pathless_extension_object_is_merged() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "value": {ENTERPRISE_SCHEMA: {"Department": "Sales", "costCenter": "4130"}}}]),
    );
    assert_eq!(
        doc[ENTERPRISE_SCHEMA],
        json!({"department": "Sales", "manager": {"value": "m1", "$ref": "../Users/m1"}, "costCenter": "4130"})
    );
}

#[test]
fn pathless_extension_object_created_on_add() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User": {"division": "X"}}}]),
    );
    assert_eq!(doc, json!({"userName": "u", ENTERPRISE_SCHEMA: {"division": "X"}}));
}

#[test]
fn pathless_custom_extension_object_and_attribute() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "value": {CUSTOM: {"a": "1"}, "urn:ietf:params:scim:schemas:extension:Other:2.0:User:b": "2"}}]),
    );
    assert_eq!(
        doc,
        json!({"userName": "u", CUSTOM: {"a": "1"}, "urn:ietf:params:scim:schemas:extension:Other:2.0:User": {"b": "2"}})
    );
}

#[test]
fn pathless_core_urn_object_and_core_qualified_key() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "replace", "value": {
            "urn:ietf:params:scim:schemas:core:2.0:User": {"title": "Boss"},
            "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "B"
        }}]),
    );
    assert_eq!(doc, json!({"userName": "u", "title": "Boss", "nickName": "B"}));
}

#[test]
fn o9_pathless_read_only_keys_are_ignored() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "replace", "value": {"id": "x", "meta": {"version": "1"}, "schemas": ["s"], "groups": [], "title": "T"}}]),
    );
    assert_eq!(doc, json!({"userName": "u", "title": "T"}));
}

#[test]
fn pathless_unknown_keys_are_ignored() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "value": {"adreses": "typo", "name.nope": "x", "a b": 1, "title": "T"}}]),
    );
    assert_eq!(doc, json!({"userName": "u", "title": "T"}));
}

#[test]
fn pathless_password_is_discarded() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "replace", "value": {"password": "s3cret", "active": true}}]),
    );
    assert_eq!(doc, json!({"userName": "u", "active": true}));
}

#[test]
fn pathless_replace_with_null_unassigns() {
    let doc = patch_user(
        json!({"userName": "u", "title": "T", "nickName": "N"}),
        json!([{"op": "replace", "value": {"title": null}}]),
    );
    assert_eq!(doc, json!({"userName": "u", "nickName": "N"}));
    let doc = patch_user(json!({"userName": "u", "title": "T"}), json!([{"op": "add", "value": {"title": null}}]));
    assert_eq!(doc, json!({"userName": "u", "title": "T"}));
}

#[test]
fn pathless_replace_of_complex_merges_sub_attributes() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "value": {"name": {"givenName": "Babs"}}}]));
    assert_eq!(
        doc["name"],
        json!({"givenName": "Babs", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"})
    );
}

#[test]
fn pathless_remove_is_no_target() {
    let op = Operation { op: Op::Remove, path: None, value: Some(json!({"title": "x"})) };
    let e = apply(&mut obj(bjensen()), &USER_TYPE, &[op]).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
}

#[test]
fn pathless_add_with_non_object_is_invalid_syntax() {
    let op = Operation { op: Op::Add, path: None, value: Some(json!("x")) };
    let e = apply(&mut obj(bjensen()), &USER_TYPE, &[op]).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
}

// ------------------------------------------------------------------ apply: add with path

#[test]
fn add_simple_sets() {
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": "title", "value": "Boss"}]));
    assert_eq!(doc, json!({"userName": "u", "title": "Boss"}));
}

#[test]
fn e6_add_on_single_valued_replaces() {
    // entra/43-44: Add when the target has (or lacks) a value
    let doc =
        patch_user(json!({"userName": "u", "title": "Old"}), json!([{"op": "Add", "path": "title", "value": "New"}]));
    assert_eq!(doc["title"], "New");
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "Add", "path": "externalId", "value": "e1"}]));
    assert_eq!(doc["externalId"], "e1");
}

#[test]
fn add_complex_merges() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "add", "path": "name", "value": {"middleName": "Jane", "GivenName": "Barb"}}]),
    );
    assert_eq!(
        doc["name"],
        json!({"givenName": "Barb", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III", "middleName": "Jane"})
    );
}

#[test]
fn add_sub_attribute_of_complex() {
    let doc = patch_user(bjensen(), json!([{"op": "add", "path": "name.honorificPrefix", "value": "Ms."}]));
    assert_eq!(doc["name"]["honorificPrefix"], "Ms.");
    assert_eq!(doc["name"]["givenName"], "Barbara");
}

#[test]
fn add_multi_appends_and_is_idempotent() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "add", "path": "emails", "value": [
            {"value": "babs@jensen.org", "type": "home"},
            {"value": "b@other.org", "type": "other"}
        ]}]),
    );
    let emails = doc["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 3, "existing value not duplicated");
    assert_eq!(emails[2], json!({"value": "b@other.org", "type": "other"}));
}

#[test]
fn add_multi_creates_the_attribute() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "555", "type": "work"}]}]),
    );
    assert_eq!(doc["phoneNumbers"], json!([{"value": "555", "type": "work"}]));
}

#[test]
fn add_single_object_to_multi_counts_as_list() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "path": "emails", "value": {"value": "a@x", "type": "work"}}]),
    );
    assert_eq!(doc["emails"], json!([{"value": "a@x", "type": "work"}]));
}

#[test]
fn add_empty_list_changes_nothing() {
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": "emails", "value": []}]));
    assert_eq!(doc, json!({"userName": "u"}));
}

#[test]
fn add_primary_demotes_the_others() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@x", "type": "other", "primary": true}]}]),
    );
    let emails = doc["emails"].as_array().unwrap();
    assert_eq!(emails[0]["primary"], false);
    assert_eq!(emails[2]["primary"], true);
}

#[test]
fn add_sub_on_multi_sets_every_element() {
    let doc = patch_user(bjensen(), json!([{"op": "add", "path": "addresses.country", "value": "US"}]));
    assert!(doc["addresses"].as_array().unwrap().iter().all(|a| a["country"] == "US"));
}

#[test]
fn add_value_path_sub_on_match() {
    let doc =
        patch_user(bjensen(), json!([{"op": "add", "path": "emails[type eq \"home\"].display", "value": "Home"}]));
    assert_eq!(doc["emails"][1], json!({"value": "babs@jensen.org", "type": "home", "display": "Home"}));
    assert!(doc["emails"][0].get("display").is_none());
}

#[test]
fn e18_add_value_path_without_match_appends() {
    // Entra sends Add when the slot is empty.
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
               {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "u@x"}]),
    );
    assert_eq!(doc["phoneNumbers"], json!([{"type": "mobile", "value": "+1 555"}]));
    assert_eq!(doc["emails"], json!([{"type": "work", "value": "u@x"}]));
}

#[test]
fn add_value_path_and_of_eqs_appends_all_pairs() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "path": "emails[type eq \"work\" and primary eq true].value", "value": "u@x"}]),
    );
    assert_eq!(doc["emails"], json!([{"type": "work", "primary": true, "value": "u@x"}]));
}

#[test]
fn add_value_path_with_other_filter_and_no_match_is_no_target() {
    let e = user_err(bjensen(), json!([{"op": "add", "path": "emails[value co \"nope\"].display", "value": "x"}]));
    assert_eq!(e, (400, Some(ScimType::NoTarget)));
    let e = user_err(
        bjensen(),
        json!([{"op": "add", "path": "emails[type eq \"x\" or type eq \"y\"].display", "value": "x"}]),
    );
    assert_eq!(e, (400, Some(ScimType::NoTarget)));
}

#[test]
fn add_value_path_without_sub_merges_into_match() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"display": "H", "primary": true}}]),
    );
    assert_eq!(doc["emails"][1], json!({"value": "babs@jensen.org", "type": "home", "display": "H", "primary": true}));
    assert_eq!(doc["emails"][0]["primary"], false, "primary moved");
}

#[test]
fn add_value_path_without_sub_or_match_appends_with_pairs() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "path": "addresses[type eq \"work\"]", "value": {"locality": "Paris"}}]),
    );
    assert_eq!(doc["addresses"], json!([{"locality": "Paris", "type": "work"}]));
}

#[test]
fn e16_stringified_roles_are_parsed() {
    let doc = patch_user_stored(
        json!({"userName": "u"}),
        json!([{"op": "Add", "path": "roles", "value": "[{\"value\":\"Admin\",\"primary\":\"True\",\"type\":\"WindowsAzureActiveDirectoryRole\"}]"}]),
    );
    assert_eq!(doc["roles"], json!([{"value": "Admin", "primary": true, "type": "WindowsAzureActiveDirectoryRole"}]));
}

#[test]
fn e16_role_value_holding_a_json_document() {
    // docs/idp-quirks.md T9 (E16): AppRoleAssignmentsComplex, add-only, re-sent every cycle.
    let op = json!([{"op": "Add", "path": "roles", "value": [{"value": "{\"id\":\"8d1c\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}]);
    let once = patch_user_stored(json!({"userName": "u"}), op.clone());
    assert_eq!(once["roles"], json!([{"value": "Admin", "display": "Admin"}]));
    let twice = patch_user_stored(once.clone(), op);
    assert_eq!(twice, once, "re-adding the same role is idempotent");
}

#[test]
fn e16_assertive_roles_replace() {
    let doc = patch_user_stored(
        json!({"userName": "u", "roles": [{"value": "Old"}]}),
        json!([{"op": "replace", "path": "roles", "value": [{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "displayName": "Reader", "value": "Reader"}]}]),
    );
    assert_eq!(
        doc["roles"],
        json!([{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "display": "Reader", "value": "Reader"}])
    );
}

#[test]
fn e15_manager_as_array_on_unqualified_path() {
    // entra/15
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "Add", "path": "manager", "value": [{"$ref": "http://x/scim/Users/m9", "value": "m9"}]}]),
    );
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"$ref": "http://x/scim/Users/m9", "value": "m9"}));
}

#[test]
fn e15_manager_as_bare_string_on_urn_path() {
    // entra/16
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m9"}]),
    );
    assert_eq!(doc[ENTERPRISE_SCHEMA], json!({"manager": {"value": "m9"}}));
}

#[test]
fn e15_new_manager_replaces_stale_reference() {
    let doc = patch_user(bjensen(), json!([{"op": "Add", "path": "manager", "value": "m2"}]));
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m2"}), "no stale $ref");
    assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "Tour Operations");
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m3"}]),
    );
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"]["value"], "m3");
}

#[test]
fn e15_manager_value_eq_in_path_less_key() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m7"}}]),
    );
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m7"}));
}

#[test]
fn unqualified_extension_attribute_resolves_to_its_extension() {
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "replace", "path": "Department", "value": "Eng"}]));
    assert_eq!(doc, json!({"userName": "u", ENTERPRISE_SCHEMA: {"department": "Eng"}}));
}

#[test]
fn e17_custom_extension_attribute_path() {
    // entra/37 (ENTRA-ATTR custom attribute naming)
    let path = format!("{CUSTOM}:CustomAttribute");
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "Add", "path": path, "value": "v1"}]));
    assert_eq!(doc, json!({"userName": "u", CUSTOM: {"CustomAttribute": "v1"}}));
    let doc = patch_user(doc, json!([{"op": "Replace", "path": path, "value": "v2"}]));
    assert_eq!(doc[CUSTOM]["CustomAttribute"], "v2");
    let stored = Value::Object(resource::normalise(&USER_TYPE, doc.clone()).unwrap());
    assert_eq!(stored[CUSTOM]["CustomAttribute"], "v2", "normalise keeps it");
    let doc = patch_user(doc, json!([{"op": "Remove", "path": path}]));
    assert_eq!(doc, json!({"userName": "u"}), "empty extension object removed");
}

#[test]
fn e17_core_qualified_role_resolves_to_the_idlcm_extension() {
    // zulip/zulip#39773: `urn:ietf:params:scim:schemas:core:2.0:User:role`
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:role", "value": "admin"}]),
    );
    assert_eq!(doc, json!({"userName": "u", IDLCM_USER_SCHEMA: {"role": "admin"}}));
}

#[test]
fn core_qualified_path() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName", "value": "v"}]),
    );
    assert_eq!(doc, json!({"userName": "v"}));
}

#[test]
fn path_naming_an_extension_merges_or_removes_it() {
    let doc = patch_user(bjensen(), json!([{"op": "add", "path": ENTERPRISE_SCHEMA, "value": {"division": "D"}}]));
    assert_eq!(doc[ENTERPRISE_SCHEMA]["division"], "D");
    assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "Tour Operations");
    let doc = patch_user(doc, json!([{"op": "remove", "path": ENTERPRISE_SCHEMA}]));
    assert!(doc.get(ENTERPRISE_SCHEMA).is_none());
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": CUSTOM, "value": {"x": 1}}]));
    assert_eq!(doc[CUSTOM], json!({"x": 1}));
}

#[test]
fn attribute_names_are_case_insensitive_and_written_canonically() {
    let doc = patch_user(
        json!({"userName": "u", "emails": [{"value": "a@x", "type": "work"}]}),
        json!([{"op": "replace", "path": "USERNAME", "value": "v"},
               {"op": "replace", "path": "Emails[Type eq \"WORK\"].Value", "value": "b@x"},
               {"op": "add", "path": "NAME.GIVENNAME", "value": "G"}]),
    );
    assert_eq!(doc, json!({"userName": "v", "emails": [{"value": "b@x", "type": "work"}], "name": {"givenName": "G"}}));
}

#[test]
fn non_canonical_stored_keys_are_renamed() {
    let doc = patch_user(json!({"UserName": "u"}), json!([{"op": "replace", "path": "userName", "value": "v"}]));
    assert_eq!(doc, json!({"userName": "v"}));
}

// ------------------------------------------------------------------ apply: replace with path

#[test]
fn replace_simple() {
    // entra/09, entra/refcode/55
    let doc = patch_user(bjensen(), json!([{"op": "Replace", "path": "userName", "value": "5b50642d@testuser.com"}]));
    assert_eq!(doc["userName"], "5b50642d@testuser.com");
}

#[test]
fn e2_boolean_strings_are_coerced() {
    // entra/41: "False" as a string; entra/24 and refcode/56 real booleans
    let doc = patch_user_stored(bjensen(), json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(doc["active"], false);
    let doc = patch_user_stored(doc, json!([{"op": "Replace", "path": "active", "value": "TRUE"}]));
    assert_eq!(doc["active"], true);
    let doc = patch_user_stored(doc, json!([{"op": "Replace", "path": "active", "value": false}]));
    assert_eq!(doc["active"], false);
    let doc = patch_user_stored(doc, json!([{"op": "replace", "value": {"active": "True"}}]));
    assert_eq!(doc["active"], true);
}

#[test]
fn non_boolean_string_for_active_is_invalid_value() {
    assert_eq!(
        user_err(bjensen(), json!([{"op": "replace", "path": "active", "value": "maybe"}])),
        (400, Some(ScimType::InvalidValue))
    );
}

#[test]
fn replace_missing_attribute_adds_it() {
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "replace", "path": "nickName", "value": "N"}]));
    assert_eq!(doc["nickName"], "N");
}

#[test]
fn replace_multi_wholesale() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "path": "emails", "value": [{"value": "x@y", "type": "work"}]}]),
    );
    assert_eq!(doc["emails"], json!([{"value": "x@y", "type": "work"}]));
}

#[test]
fn replace_multi_with_empty_list_removes_it() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "emails", "value": []}]));
    assert!(doc.get("emails").is_none());
}

#[test]
fn replace_with_null_removes() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "name", "value": null}]));
    assert!(doc.get("name").is_none());
}

#[test]
fn replace_complex_with_path_merges() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "name", "value": {"familyName": "Smith"}}]));
    assert_eq!(
        doc["name"],
        json!({"givenName": "Barbara", "familyName": "Smith", "formatted": "Ms. Barbara J Jensen III"})
    );
}

#[test]
fn replace_sub_attribute() {
    // entra/08 second op
    let doc =
        patch_user(bjensen(), json!([{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]));
    assert_eq!(doc["name"]["familyName"], "updatedFamilyName");
    assert_eq!(doc["name"]["givenName"], "Barbara");
}

#[test]
fn e18_entra_08_update_multi_valued() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
               {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]),
    );
    assert_eq!(doc["emails"][0], json!({"value": "updatedEmail@microsoft.com", "type": "work", "primary": true}));
    assert_eq!(doc["emails"][1]["value"], "babs@jensen.org");
}

#[test]
fn e18_replace_value_path_without_match_appends_eq_filter() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "555"}]),
    );
    assert_eq!(doc["phoneNumbers"], json!([{"type": "work", "value": "555"}]));
}

#[test]
fn replace_value_path_with_other_filter_and_no_match_is_no_target() {
    let e = user_err(
        bjensen(),
        json!([{"op": "replace", "path": "emails[value ew \"@nowhere.org\"].type", "value": "other"}]),
    );
    assert_eq!(e, (400, Some(ScimType::NoTarget)));
    let e = user_err(
        json!({"userName": "u"}),
        json!([{"op": "replace", "path": "emails[type ne \"work\"]", "value": {"value": "x"}}]),
    );
    assert_eq!(e, (400, Some(ScimType::NoTarget)));
}

#[test]
fn rfc_3_5_2_3_replace_whole_element_by_filter() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {
            "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
            "region": "CA", "postalCode": "91608", "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true
        }}]),
    );
    assert_eq!(doc["addresses"][0]["streetAddress"], "911 Universal City Plaza");
    assert_eq!(doc["addresses"][0]["postalCode"], "91608");
    assert_eq!(doc["addresses"][1]["type"], "home");
    assert_eq!(doc["addresses"].as_array().unwrap().len(), 2);
}

#[test]
fn rfc_3_5_2_3_replace_sub_by_filter() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
    );
    assert_eq!(
        doc["addresses"][0],
        json!({"type": "work", "streetAddress": "1010 Broadway Ave", "locality": "Hollywood", "primary": true})
    );
    assert_eq!(doc["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
}

#[test]
fn replace_element_keeps_filter_identity_and_collapses_duplicates() {
    let doc = patch_user(
        json!({"userName": "u", "emails": [{"value": "a", "type": "work"}, {"value": "b", "type": "home"}, {"value": "c", "type": "work"}]}),
        json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w"}}]),
    );
    assert_eq!(doc["emails"], json!([{"value": "w", "type": "work"}, {"value": "b", "type": "home"}]));
}

#[test]
fn replace_value_path_with_list_of_two_is_invalid_value() {
    let e = user_err(
        bjensen(),
        json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": [{"value": "a"}, {"value": "b"}]}]),
    );
    assert_eq!(e, (400, Some(ScimType::InvalidValue)));
}

#[test]
fn replace_value_path_primary_demotes_others() {
    let doc =
        patch_user(bjensen(), json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]));
    assert_eq!(doc["emails"][0]["primary"], false);
    assert_eq!(doc["emails"][1]["primary"], true);
}

#[test]
fn replace_sub_on_multi_sets_every_element() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "emails.display", "value": "d"}]));
    assert!(doc["emails"].as_array().unwrap().iter().all(|e| e["display"] == "d"));
}

#[test]
fn filter_values_match_case_insensitively_for_case_insensitive_subs() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "replace", "path": "emails[value eq \"BJENSEN@example.com\"].type", "value": "other"}]),
    );
    assert_eq!(doc["emails"][0]["type"], "other");
}

// ------------------------------------------------------------------ apply: remove

#[test]
fn remove_attribute() {
    let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "active"}, {"op": "Remove", "path": "emails"}]));
    assert!(doc.get("active").is_none());
    assert!(doc.get("emails").is_none());
}

#[test]
fn remove_missing_attribute_is_fine() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "remove", "path": "title"}, {"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "manager"}]),
    );
    assert_eq!(doc, json!({"userName": "u"}));
}

#[test]
fn remove_sub_attribute_and_empty_parent() {
    let doc = patch_user(
        json!({"userName": "u", "name": {"givenName": "G", "familyName": "F"}}),
        json!([{"op": "remove", "path": "name.givenName"}]),
    );
    assert_eq!(doc["name"], json!({"familyName": "F"}));
    let doc = patch_user(doc, json!([{"op": "remove", "path": "name.familyName"}]));
    assert_eq!(doc, json!({"userName": "u"}));
}

#[test]
fn rfc_3_5_2_2_remove_by_filter() {
    let doc = patch_user(
        json!({"userName": "u", "emails": [{"value": "a@example.com", "type": "work"}, {"value": "b@other.org", "type": "work"}, {"value": "c@example.com", "type": "home"}]}),
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
    );
    assert_eq!(
        doc["emails"],
        json!([{"value": "b@other.org", "type": "work"}, {"value": "c@example.com", "type": "home"}])
    );
}

#[test]
fn remove_by_filter_without_match_is_a_no_op() {
    let doc = patch_user(
        bjensen(),
        json!([{"op": "remove", "path": "emails[type eq \"pager\"]"}, {"op": "remove", "path": "ims[type eq \"x\"]"}]),
    );
    assert_eq!(doc, bjensen());
}

#[test]
fn remove_last_element_removes_the_key() {
    let doc = patch_user(
        json!({"userName": "u", "emails": [{"value": "a", "type": "work"}]}),
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
    );
    assert_eq!(doc, json!({"userName": "u"}));
}

#[test]
fn remove_sub_by_filter() {
    let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
    assert_eq!(doc["emails"][0], json!({"value": "bjensen@example.com", "type": "work"}));
}

#[test]
fn remove_sub_on_every_element() {
    let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "addresses.locality"}]));
    assert!(doc["addresses"].as_array().unwrap().iter().all(|a| a.get("locality").is_none()));
    let doc = patch_user(
        json!({"userName": "u", "emails": [{"value": "a"}]}),
        json!([{"op": "remove", "path": "emails.value"}]),
    );
    assert_eq!(doc, json!({"userName": "u"}), "emptied elements go, then the key");
}

#[test]
fn remove_listed_values_from_multi() {
    let doc =
        patch_user(bjensen(), json!([{"op": "remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]));
    assert_eq!(doc["emails"], json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]));
    let doc = patch_user(
        doc,
        json!([{"op": "remove", "path": "emails", "value": {"value": "bjensen@example.com", "type": "work", "primary": true}}]),
    );
    assert!(doc.get("emails").is_none());
}

#[test]
fn remove_listed_roles_by_string() {
    let doc = patch_user(
        json!({"userName": "u", "roles": [{"value": "A"}, {"value": "B"}]}),
        json!([{"op": "remove", "path": "roles", "value": "A"}]),
    );
    assert_eq!(doc["roles"], json!([{"value": "B"}]));
}

#[test]
fn remove_single_valued_with_value_only_when_it_matches() {
    let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "manager", "value": [{"value": "other"}]}]));
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"]["value"], "m1");
    let doc = patch_user(doc, json!([{"op": "remove", "path": "manager", "value": [{"value": "m1"}]}]));
    assert!(doc[ENTERPRISE_SCHEMA].get("manager").is_none());
    let doc =
        patch_user(json!({"userName": "u", "title": "T"}), json!([{"op": "remove", "path": "title", "value": "X"}]));
    assert_eq!(doc["title"], "T");
    let doc = patch_user(doc, json!([{"op": "remove", "path": "title", "value": "T"}]));
    assert!(doc.get("title").is_none());
}

#[test]
fn remove_last_extension_attribute_removes_extension() {
    let doc = patch_user(
        json!({"userName": "u", ENTERPRISE_SCHEMA: {"department": "D"}}),
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]),
    );
    assert_eq!(doc, json!({"userName": "u"}));
}

#[test]
fn remove_manager_sub_value() {
    let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "manager.$ref"}]));
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m1"}));
}

// ------------------------------------------------------------------ apply: errors

#[test]
fn read_only_paths_are_mutability() {
    for path in [
        "id",
        "meta",
        "meta.created",
        "meta.lastModified",
        "groups",
        "ID",
        "manager.displayName",
        "urn:ietf:params:scim:schemas:core:2.0:User:id",
    ] {
        for op in ["add", "replace", "remove"] {
            let e = user_err(bjensen(), json!([{"op": op, "path": path, "value": "x"}]));
            assert_eq!(e, (400, Some(ScimType::Mutability)), "{op} {path}");
        }
    }
}

#[test]
fn unknown_paths_are_invalid_path() {
    for path in [
        "foo",
        "name.nope",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope",
        "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
        "userName.value",
        "name[givenName eq \"x\"]",
        "active[value eq true]",
    ] {
        let e = user_err(bjensen(), json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_eq!(e, (400, Some(ScimType::InvalidPath)), "{path}");
    }
}

#[test]
fn password_path_is_accepted_and_discarded() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "password", "value": "s3cret"}]));
    assert_eq!(doc, bjensen());
    let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "password"}]));
    assert_eq!(doc, bjensen());
}

#[test]
fn schemas_path_is_ignored() {
    let doc = patch_user(bjensen(), json!([{"op": "add", "path": "schemas", "value": [ENTERPRISE_SCHEMA]}]));
    assert_eq!(doc, bjensen());
}

#[test]
fn wrong_value_shapes_are_invalid_value() {
    for (path, value) in [
        ("name", json!("Babs")),
        ("displayName", json!(5)),
        ("emails", json!([[1]])),
        ("emails[type eq \"work\"]", json!(true)),
        ("roles", json!("[not json")),
        (ENTERPRISE_SCHEMA, json!("x")),
    ] {
        let e = user_err(bjensen(), json!([{"op": "add", "path": path, "value": value}]));
        assert_eq!(e, (400, Some(ScimType::InvalidValue)), "{path}");
    }
}

#[test]
fn error_in_a_later_op_is_reported() {
    // Atomicity is the caller's: it applied to a clone and discards it.
    let e = user_err(
        bjensen(),
        json!([{"op": "replace", "path": "title", "value": "T"}, {"op": "replace", "path": "id", "value": "x"}]),
    );
    assert_eq!(e.1, Some(ScimType::Mutability));
}

#[test]
fn path_op_without_value_built_by_hand_is_invalid_syntax() {
    let op = Operation { op: Op::Replace, path: Some(filter::parse_patch_path("title").unwrap()), value: None };
    assert_eq!(apply(&mut obj(bjensen()), &USER_TYPE, &[op]).unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
}

// ------------------------------------------------------------------ groups and end-to-end

#[test]
fn entra_20_group_rename() {
    let (doc_ops, ch) = split(json!([{"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}]));
    assert!(ch.is_empty());
    let mut m = obj(json!({"displayName": "x", "externalId": "e"}));
    apply(&mut m, &GROUP_TYPE, &doc_ops).unwrap();
    assert_eq!(Value::Object(m), json!({"displayName": "1879db59updatedDisplayName", "externalId": "e"}));
}

#[test]
fn group_unknown_attribute_is_invalid_path() {
    let e =
        try_patch(&GROUP_TYPE, json!({"displayName": "G"}), json!([{"op": "add", "path": "userName", "value": "x"}]))
            .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
}

#[test]
fn every_patch_fixture_parses() {
    // ../shared/fixtures beside the checkout (read in place; third-party material).
    let root = std::env::var("IDLCM_FIXTURES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if !root.exists() {
        eprintln!("skipped: {} not found", root.display());
        return;
    }
    let mut seen = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|e| e != "json") || p.file_name().is_some_and(|n| n == "index.json") {
                continue;
            }
            let step: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if step["request"]["method"] != "PATCH" {
                continue;
            }
            let ops = parse_request(step["request"]["body"].clone()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if step["request"]["path"].as_str().is_some_and(|s| s.starts_with("/Groups")) {
                let (doc_ops, _) = split_group_ops(ops).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                let mut m = obj(json!({"displayName": "G"}));
                apply(&mut m, &GROUP_TYPE, &doc_ops).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            } else {
                let mut m = obj(bjensen());
                apply(&mut m, &USER_TYPE, &ops).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                resource::normalise(&USER_TYPE, Value::Object(m)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} PATCH fixtures found");
}

#[test]
fn element_schema_resolves_sub_attributes() {
    let emails = USER_TYPE.attr(None, "emails");
    let s = ElementSchema { parent: emails };
    assert!(!s.case_exact(None, "type", None));
    assert_eq!(s.kind(None, "primary", None), Some(Type::Boolean));
    assert_eq!(s.kind(None, "value", None), Some(Type::String));
    assert_eq!(s.kind(None, "emails", Some("type")), Some(Type::String));
    assert_eq!(s.kind(None, "nope", None), None);
    let none = ElementSchema { parent: None };
    assert_eq!(none.kind(None, "value", None), None);
    assert!(!none.case_exact(None, "value", None));
}

#[test]
fn bare_elements_match_filters_as_value() {
    let doc = patch_user(
        json!({"userName": "u", CUSTOM: {"tags": ["a", "b"]}}),
        json!([{"op": "remove", "path": format!("{CUSTOM}:tags[value eq \"a\"]")}]),
    );
    assert_eq!(doc[CUSTOM]["tags"], json!(["b"]));
}

#[test]
fn custom_extension_list_add_appends() {
    let doc = patch_user(
        json!({"userName": "u", CUSTOM: {"tags": ["a"]}}),
        json!([{"op": "add", "path": format!("{CUSTOM}:tags"), "value": ["a", "c"]}]),
    );
    assert_eq!(doc[CUSTOM]["tags"], json!(["a", "c"]));
}

#[test]
fn okta_put_like_pathless_replace_end_to_end() {
    let doc = patch_user_stored(
        bjensen(),
        json!([{"op": "replace", "value": {"name": {"givenName": "B"}, "emails": [{"Primary": "True", "value": "n@x", "type": "work"}], "groups": [], "locale": "en-US"}}]),
    );
    assert_eq!(doc["emails"], json!([{"primary": true, "value": "n@x", "type": "work"}]));
    assert_eq!(doc["locale"], "en-US");
    assert_eq!(doc["name"]["givenName"], "B");
    assert_eq!(doc["name"]["familyName"], "Jensen");
}

#[test]
fn e15_manager_id_that_looks_like_json_is_still_an_id() {
    let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": "manager", "value": "{{userId}}"}]));
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "{{userId}}"}));
}

#[test]
fn e15_manager_survives_normalise() {
    let doc = patch_user_stored(
        json!({"userName": "u"}),
        json!([{"op": "Add", "path": "manager", "value": [{"$ref": "http://x/Users/m", "value": "m"}]}]),
    );
    assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"$ref": "http://x/Users/m", "value": "m"}));
}

#[test]
fn bare_value_on_a_value_path_is_its_value() {
    let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": "h@x"}]));
    assert_eq!(doc["emails"][1], json!({"value": "h@x", "type": "home"}));
}

#[test]
fn pathless_remove_with_members_is_a_member_change() {
    let (doc, ch) = split(json!([{"op": "remove", "path": "members", "value": ["a"]}]));
    assert!(doc.is_empty());
    assert_eq!(ch, vec![MemberChange::Remove(ids(&["a"]))]);
    let (doc, ch) = split_group_ops(vec![Operation {
        op: Op::Remove,
        path: None,
        value: Some(json!({"members": [{"value": "b"}]})),
    }])
    .unwrap();
    assert!(doc.is_empty());
    assert_eq!(ch, vec![MemberChange::Remove(ids(&["b"]))]);
}

#[test]
fn group_pathless_add_keeps_known_and_ignores_unknown() {
    let mut m = obj(json!({"displayName": "G"}));
    apply(&mut m, &GROUP_TYPE, &ops(json!([{"op": "add", "value": {"externalId": "e", "userName": "x", "id": "g"}}])))
        .unwrap();
    assert_eq!(Value::Object(m), json!({"displayName": "G", "externalId": "e"}));
}

#[test]
fn ops_apply_in_order() {
    let doc = patch_user(
        json!({"userName": "u"}),
        json!([{"op": "add", "path": "title", "value": "A"}, {"op": "remove", "path": "title"}, {"op": "add", "path": "nickName", "value": "N"}, {"op": "replace", "path": "nickName", "value": "M"}]),
    );
    assert_eq!(doc, json!({"userName": "u", "nickName": "M"}));
}
