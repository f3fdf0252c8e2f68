//! The effective-role rule, source by source (issue 11): group mappings, explicit single and
//! multi-valued `roles`, Okta `entitlements`, Entra's add-only PATCHes and JSON-string values.

use serde_json::{Map, Value, json};

use super::*;
use crate::assignment::effective::effective;
use crate::integration::IntegrationConfig;

fn config(roles: Value) -> IntegrationConfig {
    IntegrationConfig::from_json(json!({
        "name": "t",
        "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
        "roles": roles,
        "attributes": ["userName"],
    }))
    .unwrap()
}

fn catalog(mode: &str) -> IntegrationConfig {
    config(json!({
        "mode": mode,
        "catalog": [
            {"value": "viewer", "display": "Viewer", "priority": 10},
            {"value": "admin", "display": "Administrator", "priority": 30, "description": "Everything"},
            {"value": "editor", "priority": 20},
        ],
        "groups": [{"group": "CRM Admins", "role": "admin"}, {"group": "CRM Editors", "role": "editor"}],
    }))
}

fn user(roles: Value) -> Map<String, Value> {
    json!({"userName": "u", "roles": roles}).as_object().unwrap().clone()
}

fn roles_of(cfg: &IntegrationConfig, doc: &Map<String, Value>, groups: &[&str]) -> (Option<String>, Vec<String>) {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let a = effective(doc, &groups, cfg);
    (a.role, a.roles)
}

#[test]
fn the_highest_catalog_role_wins_whatever_the_source_or_order() {
    let c = catalog("highest");
    for roles in [json!([{"value": "viewer"}, {"value": "admin"}]), json!([{"value": "admin"}, {"value": "viewer"}])] {
        assert_eq!(roles_of(&c, &user(roles), &[]).0.as_deref(), Some("admin"));
    }
    // A primary lower role does not beat a higher one: priority decides.
    let primary_viewer = user(json!([{"value": "viewer", "primary": true}, {"value": "editor"}]));
    assert_eq!(roles_of(&c, &primary_viewer, &[]).0.as_deref(), Some("editor"));
    // Explicit and group sources count alike.
    assert_eq!(roles_of(&c, &user(json!([{"value": "viewer"}])), &["crm editors"]).0.as_deref(), Some("editor"));
    assert_eq!(roles_of(&c, &user(json!([{"value": "editor"}])), &["CRM Admins"]).0.as_deref(), Some("admin"));
    // Single-valued forms: a plain string array, an extension attribute.
    assert_eq!(roles_of(&c, &user(json!(["viewer", "admin"])), &[]).0.as_deref(), Some("admin"));
    let ext = config(json!({"attribute": "urn:ietf:params:scim:schemas:extension:idlcm:2.0:User:role",
                            "catalog": [{"value": "viewer", "priority": 1}, {"value": "admin", "priority": 2}]}));
    let doc = json!({"userName": "u", "urn:ietf:params:scim:schemas:extension:idlcm:2.0:User": {"role": "Admin"}});
    assert_eq!(roles_of(&ext, doc.as_object().unwrap(), &[]).0.as_deref(), Some("admin"), "catalog spelling");
    // No role at all.
    assert_eq!(roles_of(&c, &user(json!([])), &[]), (None, vec![]));
}

#[test]
fn all_mode_hands_over_every_role_highest_first() {
    let c = catalog("all");
    let doc = user(json!([{"value": "viewer"}, {"value": "{\"id\":\"7\",\"value\":\"admin\"}"}]));
    let (role, roles) = roles_of(&c, &doc, &["CRM Editors"]);
    assert_eq!(role.as_deref(), Some("admin"));
    assert_eq!(roles, vec!["admin", "editor", "viewer"]);
    let a = effective(&doc, &["CRM Editors".into()], &c);
    assert_eq!(serde_json::to_value(&a).unwrap()["roles"], json!(["admin", "editor", "viewer"]));
    // Highest mode keeps the assignment JSON as it was: no `roles` key.
    let a = effective(&doc, &[], &catalog("highest"));
    assert!(serde_json::to_value(&a).unwrap().get("roles").is_none());
}

#[test]
fn entras_add_only_sequence_converges_in_both_modes() {
    // AppRoleAssignmentsComplex: viewer; then admin is added (viewer stays); then viewer removed.
    // Each step's value is what the stored user holds after the PATCH, as Entra sends it.
    let steps = [
        json!([{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "value": "viewer"}]),
        json!([{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "value": "viewer"},
               {"value": "{\"id\":\"a1\",\"value\":\"admin\",\"displayName\":\"Admin\"}"}]),
        json!([{"value": "{\"id\":\"a1\",\"value\":\"admin\",\"displayName\":\"Admin\"}"}]),
    ];
    let highest: Vec<_> = steps.iter().map(|s| roles_of(&catalog("highest"), &user(s.clone()), &[]).0).collect();
    assert_eq!(highest, [Some("viewer".into()), Some("admin".into()), Some("admin".into())]);
    let all: Vec<_> = steps.iter().map(|s| roles_of(&catalog("all"), &user(s.clone()), &[]).1).collect();
    assert_eq!(all, [vec!["viewer"], vec!["admin", "viewer"], vec!["admin"]]);
}

#[test]
fn okta_entitlements_of_type_role_count() {
    let c = catalog("all");
    let doc = json!({"userName": "u", "entitlements": [
        {"value": "editor", "type": "Role"}, {"value": "gold", "type": "License"}]});
    assert_eq!(roles_of(&c, doc.as_object().unwrap(), &[]).1, vec!["editor"]);
}

#[test]
fn a_value_outside_the_catalog_is_ignored_and_shown() {
    let c = catalog("highest");
    let doc = user(json!([{"value": "superuser"}, {"value": "viewer"}]));
    let a = effective(&doc, &[], &c);
    assert_eq!(a.role.as_deref(), Some("viewer"));
    assert_eq!(a.ignored_roles, vec!["superuser"]);
    assert_eq!(serde_json::to_value(a.shown()).unwrap()["ignored_roles"], json!(["superuser"]));
    // The note alone is no change for the app.
    let without = effective(&user(json!([{"value": "viewer"}])), &[], &c);
    assert_eq!(a, without);
    assert!(crate::assignment::diff::diff(Some(&without), Some(&a)).is_none());
}

#[test]
fn without_a_catalog_the_group_mappings_form_it_and_explicit_values_still_count() {
    let c = config(json!({"attribute": "roles", "default": "user", "groups": [
        {"group": "CRM Admins", "role": "admin", "priority": 20},
        {"group": "CRM Viewers", "role": "viewer", "priority": 10}]}));
    assert_eq!(roles_of(&c, &user(json!([])), &["CRM Viewers", "CRM Admins"]).0.as_deref(), Some("admin"));
    assert_eq!(roles_of(&c, &user(json!([{"value": "owner"}])), &[]).0.as_deref(), Some("owner"));
    // An explicit value outside the mappings ranks below every mapped role.
    assert_eq!(roles_of(&c, &user(json!([{"value": "owner"}])), &["CRM Viewers"]).0.as_deref(), Some("viewer"));
    assert_eq!(roles_of(&c, &user(json!([])), &[]).0.as_deref(), Some("user"), "the default");
    let entries: Vec<String> = c.roles.catalog().entries().into_iter().map(|r| r.value).collect();
    assert_eq!(entries, vec!["admin", "viewer", "user"]);
}

#[test]
fn a_catalog_is_checked_when_saved() {
    let bad = [
        (json!({"catalog": [{"value": "a"}, {"value": "A"}]}), "roles.catalog[1].value"),
        (json!({"catalog": [{"value": " "}]}), "roles.catalog[0].value"),
        (json!({"catalog": [{"value": "a"}], "groups": [{"group": "G", "role": "b"}]}), "roles.groups[0].role"),
        (json!({"catalog": [{"value": "a"}], "default": "b"}), "roles.default"),
        (json!({"mode": "some"}), "expected `highest` or `all`"),
    ];
    for (roles, path) in bad {
        let err = IntegrationConfig::from_json(json!({
            "name": "t", "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
            "roles": roles}))
        .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.detail.contains(path), "{path}: {}", err.detail);
    }
}

#[test]
fn role_text_reads_entra_json_and_trims() {
    assert_eq!(role_text(" admin ").as_deref(), Some("admin"));
    assert_eq!(role_text("{\"id\":\"1\",\"Value\":\"Admin\"}").as_deref(), Some("Admin"));
    assert_eq!(role_text("{\"id\":\"1\"}").as_deref(), Some("{\"id\":\"1\"}"));
    assert_eq!(role_text("  "), None);
}

#[test]
fn entitlements_of_configured_types_reach_the_assignment() {
    let c = config(json!({"entitlement_types": [
        {"name": "License", "endpoint": "/Licenses", "values": [{"value": "gold"}, {"value": "silver"}]}]}));
    let doc = json!({"userName": "u", "entitlements": [
        {"value": "Gold", "type": "license"}, {"value": "platinum", "type": "License"},
        {"value": "silver", "type": "License"}, {"value": "x", "type": "Other"}]});
    let a = effective(doc.as_object().unwrap(), &[], &c);
    assert_eq!(serde_json::to_value(&a.entitlements).unwrap(), json!({"License": ["gold", "silver"]}));
    assert_eq!(a.ignored_roles, vec!["License:platinum"]);
    // Without entitlement types the assignment JSON has no `entitlements`.
    let plain = effective(doc.as_object().unwrap(), &[], &config(json!({})));
    assert!(serde_json::to_value(&plain).unwrap().get("entitlements").is_none());
    // A change of entitlements is a change for the app.
    let fewer = effective(
        json!({"userName": "u", "entitlements": [{"value": "gold", "type": "License"}]}).as_object().unwrap(),
        &[],
        &c,
    );
    let change = crate::assignment::diff::diff(Some(&fewer), Some(&a)).unwrap();
    assert_eq!(change.changed, vec!["entitlements"]);
}

#[test]
fn entitlement_types_are_checked_when_saved() {
    let bad = [
        (json!([{"name": "Role", "endpoint": "/Things"}]), "entitlement_types[0].name"),
        (json!([{"name": "License", "endpoint": "/Users"}]), "entitlement_types[0].endpoint"),
        (json!([{"name": "License", "endpoint": "Licenses"}]), "entitlement_types[0].endpoint"),
        (json!([{"name": "A", "endpoint": "/As"}, {"name": "a", "endpoint": "/Bs"}]), "entitlement_types[1]"),
        (json!([{"name": "A", "endpoint": "/As", "values": [{"value": "x"}, {"value": "X"}]}]), "values[1].value"),
    ];
    for (types, path) in bad {
        let err = IntegrationConfig::from_json(json!({
            "name": "t", "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
            "roles": {"entitlement_types": types}}))
        .unwrap_err();
        assert!(err.detail.contains(path), "{path}: {}", err.detail);
    }
}
