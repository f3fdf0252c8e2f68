//! Integration owners and the audit trail (issue 13, API part): owner scoping on every admin
//! route, revocation and rotation taking effect at once, and the entry each action leaves,
//! secrets masked. The API in-process, DynamoDB on moto.

use idlcm_tests::openapi::OpenApi;
use idlcm_tests::{ADMIN_TOKEN, Stack};
use serde_json::{Value, json};

/// A call with any bearer token; a success must be what openapi.json documents.
async fn call(stack: &Stack, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = stack.http.request(m, format!("{}/admin{path}", stack.api_url)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin call");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let answer = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    // Successes against the documented shapes (errors are RFC 7644 bodies, checked elsewhere).
    if status < 300
        && let Err(e) = OpenApi::default().check(method, &format!("/admin{path}"), status, &answer)
    {
        panic!("{method} /admin{path} -> {status} does not match openapi.json: {e}\n{answer}");
    }
    (status, answer)
}

fn webhook(name: &str, secret: &str) -> Value {
    json!({
        "name": name,
        "connector": {"type": "webhook", "url": "http://127.0.0.1:9/unused", "secret": secret},
        "roles": {"attribute": "roles", "groups": [], "default": null},
        "attributes": ["userName"],
    })
}

#[tokio::test]
async fn an_owner_reaches_its_integrations_only_and_every_action_is_audited() {
    let stack = Stack::start().await;
    let mine = stack.create_integration_with(webhook("Mine", "first-secret")).await;
    let other = stack.create_integration_with(webhook("Other", "other-secret")).await;

    let (s, owner) =
        call(&stack, ADMIN_TOKEN, "POST", "/owners", Some(json!({"name": "App team", "integrations": [mine.id]})))
            .await;
    assert_eq!(s, 201, "{owner}");
    let token = owner["token"].as_str().unwrap().to_string();
    let owner_id = owner["id"].as_str().unwrap().to_string();
    let (_, me) = call(&stack, &token, "GET", "/me", None).await;
    assert_eq!((me["kind"].as_str(), me["integrations"][0].as_str()), (Some("owner"), Some(mine.id.as_str())));

    // Its own integration: every route under it.
    let own = |p: &str| format!("/integrations/{}{p}", mine.id);
    let theirs = |p: &str| format!("/integrations/{}{p}", other.id);
    let (_, listed) = call(&stack, &token, "GET", "/integrations", None).await;
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![mine.id.as_str()], "an owner lists its own only");
    let (s, got) = call(&stack, &token, "GET", &own(""), None).await;
    assert_eq!((s, got["config"]["connector"]["secret"].as_str()), (200, Some("***")));
    let mut config = got["config"].clone();
    config["connector"]["secret"] = json!("second-secret");
    config["attributes"] = json!(["userName", "title"]);
    let (s, _) = call(&stack, &token, "PUT", &own(""), Some(config.clone())).await;
    assert_eq!(s, 200);
    let (s, issued) = call(&stack, &token, "POST", &own("/tokens"), None).await;
    assert_eq!(s, 201);
    let (s, _) =
        call(&stack, &token, "DELETE", &own(&format!("/tokens/{}", issued["token_id"].as_str().unwrap())), None).await;
    assert_eq!(s, 204);
    for path in ["/activity", "/unmanaged"] {
        assert_eq!(call(&stack, &token, "GET", &own(path), None).await.0, 200, "{path}");
    }
    let (s, _) = call(&stack, &token, "POST", &own("/resync"), Some(json!({"mode": "report"}))).await;
    assert_eq!(s, 202);
    let (s, tested) = call(&stack, &token, "POST", &own("/test"), None).await;
    assert_eq!(
        (s, tested["ok"].clone(), tested["call"].as_str()),
        (200, Value::Null, Some("none")),
        "a webhook has no read call"
    );

    // Another integration: 404 everywhere, as if it did not exist.
    for (method, path, body) in [
        ("GET", theirs(""), None),
        ("PUT", theirs(""), Some(config.clone())),
        ("POST", theirs("/tokens"), None),
        ("DELETE", theirs("/tokens/abcdef012345"), None),
        ("GET", theirs("/activity"), None),
        ("GET", theirs("/activity/01ARZ3NDEKTSV4RRFFQ69G5FAV"), None),
        ("GET", theirs("/users/u1/activity"), None),
        ("POST", theirs("/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV-00001/retry"), None),
        ("POST", theirs("/resync"), Some(json!({"mode": "report"}))),
        ("GET", theirs("/unmanaged"), None),
        ("POST", theirs("/roles/import"), None),
        ("POST", theirs("/test"), None),
    ] {
        let (s, _) = call(&stack, &token, method, &path, body).await;
        assert_eq!(s, 404, "{method} {path}");
    }
    let (s, _) = call(&stack, &token, "GET", &format!("/audit?integration={}", other.id), None).await;
    assert_eq!(s, 404);
    // A cursor taken from another integration's listing does not open it through one's own.
    call(&stack, ADMIN_TOKEN, "POST", &theirs("/tokens"), None).await;
    let (_, page) = call(&stack, ADMIN_TOKEN, "GET", &format!("/audit?integration={}&limit=1", other.id), None).await;
    let foreign = page["next_cursor"].as_str().expect("the other integration has more than one entry").to_string();
    let (s, refused) =
        call(&stack, &token, "GET", &format!("/audit?integration={}&cursor={foreign}", mine.id), None).await;
    assert_eq!((s, refused["scimType"].as_str()), (400, Some("invalidValue")), "{refused}");

    // Admin-only routes: 403.
    for (method, path, body) in [
        ("POST", "/integrations".to_string(), Some(webhook("New", "s"))),
        ("DELETE", own(""), None),
        ("GET", "/owners".to_string(), None),
        ("POST", "/owners".to_string(), Some(json!({"name": "x", "integrations": []}))),
        ("POST", format!("/owners/{owner_id}/token"), None),
    ] {
        let (s, _) = call(&stack, &token, method, &path, body).await;
        assert_eq!(s, 403, "{method} {path}");
    }

    // The trail: each action with its actor; the secret masked on both sides.
    let (s, trail) = call(&stack, &token, "GET", "/audit", None).await;
    assert_eq!(s, 200, "{trail}");
    let items = trail["items"].as_array().unwrap();
    assert!(items.iter().all(|e| e["integration_id"] == mine.id.as_str()), "an owner sees its integrations only");
    let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        vec![
            "integration.resync",
            "integration.token.revoke",
            "integration.token.issue",
            "integration.update",
            "integration.create"
        ],
        "newest first"
    );
    let update = &items[3];
    assert_eq!(update["actor"], json!({"kind": "owner", "id": owner_id, "name": "App team"}));
    assert_eq!(update["changes"]["attributes"]["after"], json!(["userName", "title"]));
    let text = trail.to_string();
    assert!(!text.contains("first-secret") && !text.contains("second-secret"), "secrets never shown: {text}");
    assert_eq!(items[4]["actor"]["kind"], "admin");
    // Entries are kept AuditDays (400 here), longer than the 90 days of Activity history.
    let (rows, _) = stack.store().audit_page(None, None, None, 1).await.unwrap();
    let days = (rows[0].expires_at - chrono::Utc::now().timestamp()) / 86_400;
    assert!((399..=400).contains(&days), "audit entries expire after {days} days");
    let (_, all) = call(&stack, ADMIN_TOKEN, "GET", "/audit?limit=200", None).await;
    assert!(all["items"].as_array().unwrap().iter().any(|e| e["action"] == "owner.create"));

    // Revocation and rotation take effect at once.
    let (s, rotated) = call(&stack, ADMIN_TOKEN, "POST", &format!("/owners/{owner_id}/token"), None).await;
    assert_eq!(s, 201);
    assert_eq!(call(&stack, &token, "GET", "/integrations", None).await.0, 401, "the old token stopped");
    let new_token = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(call(&stack, &new_token, "GET", &own(""), None).await.0, 200);
    let (s, _) = call(
        &stack,
        ADMIN_TOKEN,
        "PUT",
        &format!("/owners/{owner_id}"),
        Some(json!({"name": "App team", "integrations": []})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(call(&stack, &new_token, "GET", &own(""), None).await.0, 404, "no longer its integration");
    assert_eq!(call(&stack, ADMIN_TOKEN, "DELETE", &format!("/owners/{owner_id}"), None).await.0, 204);
    assert_eq!(call(&stack, &new_token, "GET", "/integrations", None).await.0, 401, "revoked");
    let (s, err) =
        call(&stack, ADMIN_TOKEN, "POST", "/owners", Some(json!({"name": "x", "integrations": ["nope"]}))).await;
    assert_eq!((s, err["scimType"].as_str()), (400, Some("invalidValue")));
}
