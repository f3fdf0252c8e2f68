//! The app's role catalog end to end (issue 11): offered to the IdP (`/ResourceTypes`, `/Schemas`,
//! `/Roles`), one effective-role rule whatever the IdP's request shapes, `groups` on users and the
//! user PATCH answer. The API in-process, DynamoDB and SQS on moto, the real worker, the demo app
//! and a webhook robot on loopback.

use std::sync::Arc;
use std::time::Duration;

use idlcm_tests::openapi::OpenApi;
use idlcm_tests::robot::Robot;
use idlcm_tests::world::{World, handler, patch};
use idlcm_tests::{Options, Stack};
use serde_json::{Value, json};

fn catalog() -> Value {
    json!([
        {"value": "viewer", "display": "Viewer", "priority": 10},
        {"value": "user", "display": "User", "priority": 15},
        {"value": "admin", "display": "Administrator", "priority": 30, "description": "Everything"},
    ])
}

#[tokio::test]
async fn the_catalog_is_offered_to_the_idp() {
    let stack = Stack::start().await;
    let with = stack
        .create_integration_with(json!({
            "name": "Roles offered",
            "connector": {"type": "webhook", "url": "http://127.0.0.1:9/unused", "secret": "s"},
            "roles": {"catalog": catalog(), "entitlement_types": [{"name": "License", "endpoint": "/Licenses", "values": [
                {"value": "gold", "display": "Gold", "priority": 0}, {"value": "silver", "description": "Basic"}]}]},
        }))
        .await;
    let h = &stack.http;
    let (s, types) = with.call(h, "GET", "/ResourceTypes", None).await;
    assert_eq!(s, 200);
    let role = types["Resources"].as_array().unwrap().iter().find(|t| t["id"] == "Role").expect("Role type");
    assert_eq!(
        (role["endpoint"].as_str(), role["schema"].as_str()),
        (Some("/Roles"), Some("urn:okta:scim:schemas:core:1.0:Role"))
    );
    let (s, _) = with.call(h, "GET", "/ResourceTypes/Role", None).await;
    assert_eq!(s, 200);
    let (s, schema) = with.call(h, "GET", "/Schemas/urn:okta:scim:schemas:core:1.0:Role", None).await;
    assert_eq!((s, schema["name"].as_str()), (200, Some("Role")));
    let (_, schemas) = with.call(h, "GET", "/Schemas", None).await;
    assert!(schemas["Resources"].as_array().unwrap().iter().any(|s| s["id"] == "urn:okta:scim:schemas:core:1.0:Role"));

    // Highest priority first, paged as Okta asks (`count=1&startIndex=1`, okta/42).
    let (s, page) = with.call(h, "GET", "/Roles?count=1&startIndex=1", None).await;
    assert_eq!(s, 200);
    assert_eq!((page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()), (Some(3), Some(1)));
    assert_eq!(
        page["Resources"][0],
        json!({"schemas": ["urn:okta:scim:schemas:core:1.0:Role"], "id": "admin", "displayName": "Administrator",
               "description": "Everything",
               "meta": {"resourceType": "Role", "location": format!("{}/Roles/admin", with.scim_base_url.trim_end_matches('/'))}})
    );
    let (_, page) = with.call(h, "GET", "/Roles?startIndex=2&count=5", None).await;
    let ids: Vec<&str> = page["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!((ids, page["startIndex"].as_u64()), (vec!["user", "viewer"], Some(2)));
    let (s, one) = with.call(h, "GET", "/Roles/Viewer", None).await;
    assert_eq!((s, one["displayName"].as_str()), (200, Some("Viewer")));
    let (s, err) = with.call(h, "GET", "/Roles?count=many", None).await;
    assert_eq!((s, err["scimType"].as_str()), (400, Some("invalidValue")));
    let (s, _) = with.call(h, "GET", "/Roles/owner", None).await;
    assert_eq!(s, 404);

    // An entitlement type: its own resource type and endpoint, Okta's okta/42 request shape.
    let (_, types) = with.call(h, "GET", "/ResourceTypes", None).await;
    let license = types["Resources"].as_array().unwrap().iter().find(|t| t["id"] == "License").expect("License type");
    assert_eq!(
        (license["endpoint"].as_str(), license["schema"].as_str()),
        (Some("/Licenses"), Some("urn:okta:scim:schemas:core:1.0:Entitlement"))
    );
    let (s, _) = with.call(h, "GET", "/Schemas/urn:okta:scim:schemas:core:1.0:Entitlement", None).await;
    assert_eq!(s, 200);
    let (s, page) = with.call(h, "GET", "/Licenses?count=1&startIndex=1", None).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!((page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()), (Some(2), Some(1)));
    assert_eq!(
        (page["Resources"][0]["id"].as_str(), page["Resources"][0]["type"].as_str()),
        (Some("gold"), Some("License"))
    );
    let (s, one) = with.call(h, "GET", "/Licenses/Silver", None).await;
    assert_eq!((s, one["description"].as_str()), (200, Some("Basic")));
    let (s, _) = with.call(h, "POST", "/Licenses", Some(json!({"id": "bronze"}))).await;
    assert_eq!(s, 405, "entitlements are read-only");
    let (s, err) = with.call(h, "GET", "/Nothing", None).await;
    assert_eq!((s, err["status"].as_str()), (404, Some("404")));

    // Without a catalog: User and Group only, and no /Roles.
    let without = stack.create_integration("No catalog").await;
    let (_, types) = without.call(h, "GET", "/ResourceTypes", None).await;
    assert_eq!(types["totalResults"], 2);
    let (s, err) = without.call(h, "GET", "/Roles", None).await;
    assert_eq!((s, err["status"].as_str()), (404, Some("404")));
}

#[tokio::test]
async fn moving_a_user_to_the_admin_role_reaches_the_app_in_entra_and_okta_shapes() {
    let w = World::configured(Options::default(), |c| c["roles"]["catalog"] = catalog()).await;

    // Entra, AppRoleAssignmentsComplex: created as viewer; admin is added (viewer stays, the
    // PATCH only adds, as a JSON document in a string); later viewer is removed.
    let entra = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ent@example.com", "active": true, "externalId": "e-1",
        "name": {"givenName": "En", "familyName": "Tra"},
        "emails": [{"value": "ent@example.com", "type": "work", "primary": true}],
        "roles": [{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "display": "Viewer", "value": "viewer"}],
    });
    let (s, created) = w.call("POST", "/Users", Some(entra)).await;
    assert_eq!(s, 201, "{created}");
    let eid = created["id"].as_str().unwrap().to_string();
    w.settle().await;
    assert_eq!(w.app_user("ent@example.com").await.unwrap().role.as_deref(), Some("viewer"));
    let add_admin = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Add", "path": "roles", "value": [{"value": "{\"id\":\"a1\",\"value\":\"admin\",\"displayName\":\"Admin\"}"}]}]});
    let (s, patched) = w.call("PATCH", &format!("/Users/{eid}"), Some(add_admin)).await;
    assert_eq!(s, 200, "a user PATCH answers with the user");
    assert_eq!(patched["roles"].as_array().unwrap().len(), 2, "{patched}");
    w.settle().await;
    assert_eq!(w.app_user("ent@example.com").await.unwrap().role.as_deref(), Some("admin"), "the highest wins");
    let (s, _) = w
        .call(
            "PATCH",
            &format!("/Users/{eid}"),
            Some(patch(json!([{"op": "Remove", "path": "roles[value eq \"viewer\"]"}]))),
        )
        .await;
    assert_eq!(s, 200);
    w.settle().await;
    assert_eq!(w.app_user("ent@example.com").await.unwrap().role.as_deref(), Some("admin"));

    // Okta's full-object PUT: the role attribute moves from viewer to admin.
    let okta = |role: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "okt@example.com", "active": true,
            "name": {"givenName": "Ok", "familyName": "Ta"},
            "emails": [{"value": "okt@example.com", "type": "work", "primary": true}],
            "roles": [{"primary": true, "value": role}],
        })
    };
    let (s, created) = w.call("POST", "/Users", Some(okta("viewer"))).await;
    assert_eq!(s, 201);
    let oid = created["id"].as_str().unwrap().to_string();
    w.settle().await;
    assert_eq!(w.app_user("okt@example.com").await.unwrap().role.as_deref(), Some("viewer"));
    let (s, _) = w.call("PUT", &format!("/Users/{oid}"), Some(okta("admin"))).await;
    assert_eq!(s, 200);
    w.settle().await;
    assert_eq!(w.app_user("okt@example.com").await.unwrap().role.as_deref(), Some("admin"));

    // A value outside the catalog is ignored, and the job says so.
    let (s, _) = w.call("PUT", &format!("/Users/{oid}"), Some(okta("superuser"))).await;
    assert_eq!(s, 200);
    w.settle().await;
    assert_eq!(w.app_user("okt@example.com").await.unwrap().role, None, "no catalog role left");
    let jobs = w.jobs().await;
    let last = jobs.iter().filter(|j| j.user_id == oid).max_by(|a, b| a.id.cmp(&b.id)).unwrap();
    let after: Value = serde_json::from_str(last.after.as_deref().expect("after")).unwrap();
    assert_eq!(after["ignored_roles"], json!(["superuser"]), "{after}");

    // `groups` on the user, read-only and left out on request.
    let gid = w.create_group("App Admins").await;
    w.members(&gid, "add", &[&oid]).await;
    let (_, user) = w.call("GET", &format!("/Users/{oid}"), None).await;
    assert_eq!(user["groups"][0]["value"], json!(gid));
    assert_eq!(user["groups"][0]["display"], "App Admins");
    let (_, user) = w.call("GET", &format!("/Users/{oid}?excludedAttributes=groups"), None).await;
    assert!(user.get("groups").is_none(), "{user}");
    w.settle().await;
    assert_eq!(w.app_user("okt@example.com").await.unwrap().role.as_deref(), Some("admin"), "the group's role");
}

#[tokio::test]
async fn all_mode_delivers_every_role_to_a_webhook_robot() {
    let robot = Robot::start().await;
    robot.answer(200);
    let stack = Stack::start().await;
    let hook = stack
        .create_integration_with(json!({
            "name": "Multi-role robot",
            "connector": {"type": "webhook", "url": robot.url, "secret": "robot-secret"},
            "roles": {"mode": "all", "catalog": catalog(), "entitlement_types": [
                {"name": "License", "endpoint": "/Licenses", "values": [{"value": "gold"}]}]},
            "attributes": ["userName"],
        }))
        .await;
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "multi@example.com",
                      "roles": [{"value": "viewer"}, {"value": "admin"}, {"value": "user"}],
                      "entitlements": [{"value": "gold", "type": "License"}]});
    let (s, _) = hook.call(&stack.http, "POST", "/Users", Some(body)).await;
    assert_eq!(s, 201);
    let worker = Arc::new(stack.worker());
    let r = robot.clone();
    let ok = stack
        .event_source()
        .run_until(handler(worker), || async { !r.received().is_empty() }, Duration::from_secs(30))
        .await;
    assert!(ok, "no delivery");
    let delivery = robot.received()[0].json();
    assert_eq!(delivery["after"]["roles"], json!(["admin", "user", "viewer"]), "{delivery}");
    assert_eq!(delivery["after"]["role"], "admin");
    assert_eq!(delivery["after"]["entitlements"], json!({"License": ["gold"]}));
}

#[tokio::test]
async fn roles_import_fills_the_catalog_from_the_demo_app() {
    let w = World::new().await;
    let path = format!("/integrations/{}/roles/import", w.scim.id);
    let (s, imported) = w.stack.admin("POST", &path, None).await;
    assert_eq!(s, 200, "{imported}");
    if let Err(e) = OpenApi::default().check("POST", &format!("/admin{path}"), s, &imported) {
        panic!("does not match openapi.json: {e}\n{imported}");
    }
    // The demo app lists admin, user and viewer; the group mappings' priorities are kept
    // (App Admins: admin 20, App Users: user 10) and the new role goes below them.
    let catalog: Vec<(String, i64)> = imported["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["value"].as_str().unwrap().to_string(), r["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(catalog, [("admin".to_string(), 20), ("user".into(), 10), ("viewer".into(), 0)]);
    assert_eq!((imported["added"].clone(), imported["listed"].clone()), (json!(["viewer"]), json!(3)));

    // Offered to the IdP at once.
    let (s, page) = w.call("GET", "/Roles", None).await;
    assert_eq!(s, 200);
    let listed: Vec<(&str, &str)> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["displayName"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("admin", "Admin"), ("user", "User"), ("viewer", "Viewer")]);

    // Again: nothing new.
    let (s, again) = w.stack.admin("POST", &path, None).await;
    assert_eq!((s, again["added"].clone()), (200, json!([])));

    // A connector without list_roles: a clear 400; an unknown integration: 404.
    let hook = w.stack.create_integration("No listing").await;
    let (s, err) = w.stack.admin("POST", &format!("/integrations/{}/roles/import", hook.id), None).await;
    assert_eq!(s, 400, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("no list_roles"), "{err}");
    let (s, _) = w.stack.admin("POST", "/integrations/nosuch/roles/import", None).await;
    assert_eq!(s, 404);
}
