//! The SCIM API end to end: real HTTP on 127.0.0.1, real DynamoDB calls to the moto emulator.

use idlcm_tests::{Integration, Stack};
use serde_json::{Value, json};

/// A user as Okta creates one, with a password (which must never come back).
fn user(name: &str) -> Value {
    let mut u = idlcm_tests::world::user_body(name);
    u["password"] = json!("hunter2-secret");
    u
}

async fn setup() -> (Stack, Integration) {
    let stack = Stack::start().await;
    let integration = stack.create_integration("test").await;
    (stack, integration)
}

fn assert_scim_error(status: u16, body: &Value, expected: u16, scim_type: Option<&str>) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "body: {body}");
    assert_eq!(body["status"], expected.to_string());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "body: {body}");
    }
}

#[tokio::test]
async fn tokens_are_per_integration() {
    let (stack, a) = setup().await;
    let b = stack.create_integration("other").await;
    let (s, body) = a.call(&stack.http, "POST", "/Users", Some(user("alice@example.com"))).await;
    assert_eq!(s, 201, "{body}");
    let alice = body["id"].as_str().unwrap().to_string();

    // B's token on A's URL, no token, a malformed header: 401 with a SCIM error body.
    let wrong = Integration { token: b.token.clone(), ..a.clone() };
    let (s, body) = wrong.call(&stack.http, "GET", "/Users", None).await;
    assert_scim_error(s, &body, 401, None);
    let resp = stack.http.get(format!("{}/Users", a.scim_base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/scim+json");
    let resp = stack
        .http
        .get(format!("{}/Users", a.scim_base_url))
        .header("authorization", "Basic eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A request about one user reads it with the configuration, before the token is checked
    // (docs/architecture.md "One read before the token check"): a wrong token gets the same
    // 401 whether the user exists or not, and changes nothing.
    let unknown = "01J00000000000000000000000";
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (s, body) = a.call(&stack.http, "POST", "/Groups", Some(json!({"displayName": "Team"}))).await;
    assert_eq!(s, 201, "{body}");
    let team = body["id"].as_str().unwrap().to_string();
    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]});
    let cases = [
        ("GET", "Users", &alice, None),
        ("PATCH", "Users", &alice, Some(deactivate.clone())),
        ("DELETE", "Users", &alice, None),
        ("GET", "Groups", &team, None),
        ("PATCH", "Groups", &team, Some(rename)),
        ("DELETE", "Groups", &team, None),
    ];
    for (method, kind, id, body) in cases {
        let known = wrong.call(&stack.http, method, &format!("/{kind}/{id}"), body.clone()).await;
        let missing = wrong.call(&stack.http, method, &format!("/{kind}/{unknown}"), body).await;
        assert_scim_error(known.0, &known.1, 401, None);
        assert_eq!(known, missing, "{method} /{kind}: a wrong token tells nothing about the resource");
    }
    let (s, body) = a.call(&stack.http, "GET", &format!("/Users/{alice}"), None).await;
    assert_eq!((s, &body["active"]), (200, &json!(true)), "{body}");
    let (s, body) = a.call(&stack.http, "GET", &format!("/Groups/{team}"), None).await;
    assert_eq!((s, &body["displayName"]), (200, &json!("Team")), "{body}");

    // B sees none of A's users, by filter or by id.
    let (s, body) = b.call(&stack.http, "GET", "/Users?filter=userName%20eq%20%22alice@example.com%22", None).await;
    assert_eq!((s, body["totalResults"].as_u64()), (200, Some(0)));
    for (method, body) in [("GET", None), ("PATCH", Some(deactivate))] {
        let (s, body) = b.call(&stack.http, method, &format!("/Users/{alice}"), body).await;
        assert_scim_error(s, &body, 404, None);
    }

    // The admin API wants the admin token.
    let resp = stack
        .http
        .post(format!("{}/admin/integrations", stack.api_url))
        .bearer_auth(&a.token)
        .json(&json!({"name": "x", "connector": {"type": "http"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn user_lifecycle() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    let (s, created) = i.call(h, "POST", "/Users", Some(user("Bob@Example.com"))).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created.get("password").is_none(), "password must never be returned");
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["meta"]["location"], format!("{}/Users/{id}", i.scim_base_url));
    assert_eq!(created["meta"]["version"], "W/\"1\"");

    // userName is unique case-insensitively.
    let (s, body) = i.call(h, "POST", "/Users", Some(user("bob@example.COM"))).await;
    assert_scim_error(s, &body, 409, Some("uniqueness"));

    // Lookup by userName in any case, by externalId, by id.
    let (s, body) = i.call(h, "GET", "/Users?filter=userName%20eq%20%22BOB@EXAMPLE.COM%22", None).await;
    assert_eq!((s, body["totalResults"].as_u64()), (200, Some(1)));
    assert_eq!(body["Resources"][0]["id"], id.as_str());

    // PUT: full replace; id/meta in the body ignored; If-Match mismatch -> 412.
    let mut replacement = user("bob@example.com");
    replacement["id"] = json!("not-the-id");
    replacement["meta"] = json!({"version": "W/\"99\""});
    replacement["externalId"] = json!("ext-bob");
    replacement["title"] = json!("Engineer");
    let resp = h
        .put(format!("{}/Users/{id}", i.scim_base_url))
        .bearer_auth(&i.token)
        .header("if-match", "W/\"7\"")
        .header("content-type", "application/scim+json")
        .body(replacement.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    let (s, body) = i.call(h, "PUT", &format!("/Users/{id}"), Some(replacement)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!((body["id"].as_str(), body["title"].as_str()), (Some(id.as_str()), Some("Engineer")));
    assert_eq!(body["meta"]["version"], "W/\"2\"");
    let (_, body) = i.call(h, "GET", "/Users?filter=externalId%20eq%20%22ext-bob%22", None).await;
    assert_eq!(body["totalResults"], 1);

    // PATCH deactivates (Okta's shape); the user stays readable and filterable.
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "value": {"active": "False"}}]});
    let (s, _) = i.call(h, "PATCH", &format!("/Users/{id}"), Some(deactivate)).await;
    assert_eq!(s, 200);
    let (s, body) = i.call(h, "GET", &format!("/Users/{id}"), None).await;
    assert_eq!((s, &body["active"]), (200, &json!(false)));
    let (_, body) = i.call(h, "GET", "/Users?filter=active%20eq%20false", None).await;
    assert_eq!(body["totalResults"], 1);

    // An atomic PATCH: the second operation fails, so the first is not applied.
    let bad = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "CEO"}, {"op": "replace", "path": "id", "value": "x"}]});
    let (s, body) = i.call(h, "PATCH", &format!("/Users/{id}"), Some(bad)).await;
    assert_scim_error(s, &body, 400, Some("mutability"));
    let (_, body) = i.call(h, "GET", &format!("/Users/{id}?attributes=title"), None).await;
    assert_eq!(body, json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "title": "Engineer"}));

    // DELETE, then 404 on every verb.
    let (s, _) = i.call(h, "DELETE", &format!("/Users/{id}"), None).await;
    assert_eq!(s, 204);
    for method in ["GET", "DELETE"] {
        let (s, body) = i.call(h, method, &format!("/Users/{id}"), None).await;
        assert_scim_error(s, &body, 404, None);
    }
    // The userName is free again.
    let (s, _) = i.call(h, "POST", "/Users", Some(user("bob@example.com"))).await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn bad_input_gets_scim_errors_never_500() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    for id in ["010101001010101011001010101011", "00919288221112222", "x%20y", &"a".repeat(2000)] {
        let (s, body) = i.call(h, "GET", &format!("/Users/{id}"), None).await;
        assert_scim_error(s, &body, 404, None);
    }
    let (s, body) = i.call(h, "GET", "/Users?filter=userName%20xx%20%22a%22", None).await;
    assert_scim_error(s, &body, 400, Some("invalidFilter"));
    let (s, body) = i.call(h, "GET", "/Users?filter=((((", None).await;
    assert_scim_error(s, &body, 400, Some("invalidFilter"));

    let resp = h
        .post(format!("{}/Users", i.scim_base_url))
        .bearer_auth(&i.token)
        .header("content-type", "application/scim+json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scimType"], "invalidSyntax");

    let (s, body) = i.call(h, "POST", "/Users", Some(json!({"name": {"givenName": "no userName"}}))).await;
    assert_scim_error(s, &body, 400, Some("invalidValue"));
    let (s, body) = i.call(h, "POST", "/Users", Some(json!({"userName": "x", "active": "perhaps"}))).await;
    assert_scim_error(s, &body, 400, Some("invalidValue"));

    let big = json!({"userName": "big", "title": "x".repeat(2 * 1024 * 1024)});
    let (s, body) = i.call(h, "POST", "/Users", Some(big)).await;
    assert_scim_error(s, &body, 413, None);

    let (s, created) = i.call(h, "POST", "/Users", Some(user("p@x.com"))).await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap();
    for (ops, scim_type) in [
        (json!({"Operations": []}), "invalidSyntax"),
        (json!({"Operations": [{"op": "jump", "path": "title", "value": "x"}]}), "invalidSyntax"),
        (json!({"Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]}), "invalidPath"),
        (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
        (json!({"Operations": [{"op": "replace", "path": "meta.created", "value": "x"}]}), "mutability"),
    ] {
        let (s, body) = i.call(h, "PATCH", &format!("/Users/{id}"), Some(ops.clone())).await;
        assert_scim_error(s, &body, 400, Some(scim_type));
    }
    let (s, body) = i.call(h, "GET", "/Nope", None).await;
    assert_scim_error(s, &body, 404, None);
}

#[tokio::test]
async fn list_filter_sort_and_page() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    for (n, family) in [("carol", "Cz"), ("alice", "Ax"), ("bob", "By"), ("dave", "Dw")] {
        let mut u = user(&format!("{n}@example.com"));
        u["name"]["familyName"] = json!(family);
        u["active"] = json!(n != "dave");
        let (s, _) = i.call(h, "POST", "/Users", Some(u)).await;
        assert_eq!(s, 201);
    }
    let names = |body: &Value| -> Vec<String> {
        body["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap_or("").to_string()).collect()
    };
    let (_, body) = i.call(h, "GET", "/Users?sortBy=userName&startIndex=2&count=2", None).await;
    assert_eq!(body["totalResults"], 4);
    assert_eq!(body["startIndex"], 2);
    assert_eq!(body["itemsPerPage"], 2);
    assert_eq!(names(&body), ["bob@example.com", "carol@example.com"]);
    let (_, body) = i.call(h, "GET", "/Users?sortBy=name.familyName&sortOrder=descending&count=1", None).await;
    assert_eq!(names(&body), ["dave@example.com"]);
    let f = urlencoding::encode(r#"active eq true and (userName sw "a" or name.familyName ew "y")"#);
    let (_, body) = i.call(h, "GET", &format!("/Users?filter={f}&sortBy=userName"), None).await;
    assert_eq!(names(&body), ["alice@example.com", "bob@example.com"]);
    let f = urlencoding::encode(r#"emails[type eq "work" and value co "carol"]"#);
    let (_, body) = i.call(h, "GET", &format!("/Users?filter={f}"), None).await;
    assert_eq!(names(&body), ["carol@example.com"]);
    let (_, body) = i.call(h, "GET", "/Users?count=0", None).await;
    assert_eq!((body["totalResults"].as_u64(), body["Resources"].as_array().map(Vec::len)), (Some(4), Some(0)));
    // The same query as a POST .search (RFC 7644 §3.4.3), per type and at the root.
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"b\" or userName sw \"c\"", "sortBy": "userName", "attributes": ["userName"]});
    let (s, body) = i.call(h, "POST", "/Users/.search", Some(search.clone())).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(names(&body), ["bob@example.com", "carol@example.com"]);
    assert!(body["Resources"][0].get("emails").is_none());
    let (_, g) = i.call(h, "POST", "/Groups", Some(json!({"displayName": "bees"}))).await;
    let root = json!({"filter": "userName sw \"b\" or displayName sw \"b\"", "count": 5});
    let (s, body) = i.call(h, "POST", "/.search", Some(root)).await;
    assert_eq!((s, body["totalResults"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(body["Resources"][1]["id"], g["id"]);

    let (_, body) = i.call(h, "GET", "/Users?attributes=userName&count=1&sortBy=userName", None).await;
    assert_eq!(
        body["Resources"][0],
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": body["Resources"][0]["id"], "userName": "alice@example.com"})
    );
}

async fn member_ids(stack: &Stack, i: &Integration, gid: &str) -> Vec<String> {
    let (s, body) = i.call(&stack.http, "GET", &format!("/Groups/{gid}"), None).await;
    assert_eq!(s, 200, "{body}");
    let mut ids: Vec<String> = body["members"]
        .as_array()
        .map(|m| m.iter().map(|x| x["value"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn group_membership() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    let mut uids = Vec::new();
    for n in 0..4 {
        let (_, u) = i.call(h, "POST", "/Users", Some(user(&format!("m{n}@example.com")))).await;
        uids.push(u["id"].as_str().unwrap().to_string());
    }
    let (s, g) =
        i.call(h, "POST", "/Groups", Some(json!({"displayName": "Admins", "members": [{"value": uids[0]}]}))).await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (s, body) = i.call(h, "POST", "/Groups", Some(json!({"displayName": "admins"}))).await;
    assert_scim_error(s, &body, 409, Some("uniqueness"));

    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    // Entra add: capitalised op, `$ref: null`, several members.
    let (s, _) = i
        .call(
            h,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(patch(json!([{"op": "Add", "path": "members",
            "value": [{"$ref": null, "value": uids[1]}, {"$ref": null, "value": uids[2]}, {"value": uids[3]}]}]))),
        )
        .await;
    assert_eq!(s, 204);
    let mut all = uids.clone();
    all.sort();
    assert_eq!(member_ids(&stack, &i, &gid).await, all);

    // Entra removal: path members + value list removes only those listed.
    let (s, _) = i
        .call(
            h,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(patch(json!([{"op": "Remove", "path": "members", "value": [{"value": uids[1]}]}]))),
        )
        .await;
    assert_eq!(s, 204);
    // Okta removal by filter, plus removing a non-member, plus a rename carrying the id.
    let ops = json!([
        {"op": "remove", "path": format!("members[value eq \"{}\"]", uids[2])},
        {"op": "remove", "path": format!("members[value eq \"{}\"]", uids[1])},
        {"op": "replace", "value": {"id": gid, "displayName": "Admins"}},
    ]);
    let (s, _) = i.call(h, "PATCH", &format!("/Groups/{gid}"), Some(patch(ops))).await;
    assert_eq!(s, 204);
    let mut left = vec![uids[0].clone(), uids[3].clone()];
    left.sort();
    assert_eq!(member_ids(&stack, &i, &gid).await, left);

    // excludedAttributes=members never returns members.
    let (_, body) = i.call(h, "GET", &format!("/Groups/{gid}?excludedAttributes=members"), None).await;
    assert!(body.get("members").is_none());
    assert_eq!(body["displayName"], "Admins");
    let (_, body) =
        i.call(h, "GET", "/Groups?filter=displayName%20eq%20%22admins%22&excludedAttributes=members", None).await;
    assert_eq!(body["totalResults"], 1);
    assert!(body["Resources"][0].get("members").is_none());

    // Replace all members; then a deleted user leaves the group.
    let (s, _) = i
        .call(
            h,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(patch(
                json!([{"op": "replace", "path": "members", "value": [{"value": uids[1]}, {"value": uids[2]}]}]),
            )),
        )
        .await;
    assert_eq!(s, 204);
    let mut now = vec![uids[1].clone(), uids[2].clone()];
    now.sort();
    assert_eq!(member_ids(&stack, &i, &gid).await, now);
    let (s, _) = i.call(h, "DELETE", &format!("/Users/{}", uids[1]), None).await;
    assert_eq!(s, 204);
    assert_eq!(member_ids(&stack, &i, &gid).await, vec![uids[2].clone()]);

    // PUT replaces members too.
    let (s, body) = i
        .call(
            h,
            "PUT",
            &format!("/Groups/{gid}"),
            Some(json!({"displayName": "Admins 2", "members": [{"value": uids[0]}]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(member_ids(&stack, &i, &gid).await, vec![uids[0].clone()]);
    let (s, _) = i.call(h, "DELETE", &format!("/Groups/{gid}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = i.call(h, "GET", &format!("/Groups/{gid}"), None).await;
    assert_eq!(s, 404);
}

/// Concurrent PATCHes of one user, each setting another attribute: every one is answered 200
/// and every value is kept. A PATCH that loses the race plans again from a fresh read, not from
/// the rows read with the configuration (docs/architecture.md "One read before the token
/// check"): reusing those would lose the race on every attempt and end in 503.
#[tokio::test]
async fn concurrent_patches_of_one_user_lose_nothing() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    let (s, u) = i.call(h, "POST", "/Users", Some(user("busy@example.com"))).await;
    assert_eq!(s, 201, "{u}");
    let uid = u["id"].as_str().unwrap().to_string();
    let changes = [
        ("title", "Chief"),
        ("nickName", "Busy"),
        ("locale", "fr-FR"),
        ("timezone", "Europe/Paris"),
        ("profileUrl", "https://example.com/busy"),
        ("preferredLanguage", "fr"),
    ];
    let tasks: Vec<_> = changes
        .iter()
        .map(|(path, value)| {
            let (i, h, uid) = (i.clone(), h.clone(), uid.clone());
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": path, "value": value}]});
            tokio::spawn(async move { i.call(&h, "PATCH", &format!("/Users/{uid}"), Some(body)).await })
        })
        .collect();
    for t in tasks {
        let (s, b) = t.await.unwrap();
        assert_eq!(s, 200, "{b}");
    }
    let (s, body) = i.call(h, "GET", &format!("/Users/{uid}"), None).await;
    assert_eq!(s, 200);
    for (path, value) in changes {
        assert_eq!(body[path], json!(value), "{path} kept: {body}");
    }
    assert_eq!(body["meta"]["version"], json!(format!("W/\"{}\"", 1 + changes.len())), "one version per PATCH: {body}");
}

#[tokio::test]
async fn fifty_concurrent_member_patches_lose_nothing() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    let (_, g) = i.call(h, "POST", "/Groups", Some(json!({"displayName": "Everyone"}))).await;
    let gid = g["id"].as_str().unwrap().to_string();
    let mut uids = Vec::new();
    for n in 0..50 {
        let (s, u) = i.call(h, "POST", "/Users", Some(user(&format!("c{n}@example.com")))).await;
        assert_eq!(s, 201);
        uids.push(u["id"].as_str().unwrap().to_string());
    }
    let tasks: Vec<_> = uids
        .iter()
        .map(|uid| {
            let (i, h, gid, uid) = (i.clone(), h.clone(), gid.clone(), uid.clone());
            tokio::spawn(async move {
                let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                let (s, b) = i.call(&h, "PATCH", &format!("/Groups/{gid}"), Some(body)).await;
                if s != 204 {
                    eprintln!("PATCH answered {s}: {b}");
                }
                s
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 204);
    }
    let mut expected = uids.clone();
    expected.sort();
    assert_eq!(member_ids(&stack, &i, &gid).await, expected);
    let (_, body) = i.call(h, "GET", &format!("/Groups/{gid}"), None).await;
    assert_eq!(body["meta"]["version"], "W/\"51\"", "every PATCH bumped the version once");
}

#[tokio::test]
async fn discovery_is_truthful() {
    let (stack, i) = setup().await;
    let h = &stack.http;
    let (s, spc) = i.call(h, "GET", "/ServiceProviderConfig", None).await;
    assert_eq!(s, 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 200);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let (_, rts) = i.call(h, "GET", "/ResourceTypes", None).await;
    assert_eq!(rts["totalResults"], 2);
    let (_, schemas) = i.call(h, "GET", "/Schemas", None).await;
    let ids: Vec<&str> = schemas["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:extension:idlcm:2.0:User"));
    let (s, _) = i.call(h, "GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", None).await;
    assert_eq!(s, 200);
}
