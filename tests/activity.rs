//! The Activity admin API: requests and their progress, a request's jobs, a user's history,
//! retrying a failed job, pagination and filters, and integrations kept apart.

use idlcm_tests::demo_app::{FaultResponse, FaultSpec};
use idlcm_tests::openapi::OpenApi;
use idlcm_tests::world::{World, patch};
use idlcm_tests::{ADMIN_TOKEN, Stack};
use serde_json::{Value, json};

async fn admin(stack: &Stack, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = stack.http.request(m, format!("{}/admin{path}", stack.api_url)).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    // Every answer is what functions/scim-api/openapi.json documents.
    if let Err(e) = OpenApi::default().check(method, &format!("/admin{path}"), status, &body) {
        panic!("{method} /admin{path} -> {status} does not match openapi.json: {e}\n{body}");
    }
    (status, body)
}

fn ids(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_group_patch_is_one_request_whose_progress_reaches_20_of_20() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    let gid = w.create_group("App Users").await;
    let mut uids = Vec::new();
    for n in 0..20 {
        uids.push(w.create_user(&format!("p{n:02}@example.com")).await);
    }
    w.settle().await;
    let value: Vec<Value> = uids.iter().map(|u| json!({"value": u})).collect();
    let (s, _) = w
        .call(
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(patch(json!([{"op": "add", "path": "members", "value": value}]))),
        )
        .await;
    assert_eq!(s, 204);

    let (s, list) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?limit=1"), None).await;
    assert_eq!(s, 200, "{list}");
    let newest = &list["items"][0];
    assert_eq!(
        newest["trigger"],
        json!({"method": "PATCH", "path": format!("/Groups/{gid}"), "resource_type": "Group", "resource_id": gid})
    );
    assert_eq!(newest["status"], "requested");
    assert_eq!(newest["progress"], json!({"total": 20, "succeeded": 0, "failed": 0, "pending": 20}));
    assert!(list["next_cursor"].is_string(), "the 20 creates are older");

    w.settle().await;
    let rid = newest["id"].as_str().unwrap();
    let (s, detail) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity/{rid}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["progress"], json!({"total": 20, "succeeded": 20, "failed": 0, "pending": 0}));
    let jobs = detail["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 20);
    assert_eq!(jobs[0]["before"]["role"], Value::Null);
    assert_eq!(jobs[0]["after"]["role"], "user");
    assert_eq!(jobs[0]["status"], "succeeded");
    assert!(jobs[0]["user"]["userName"].as_str().unwrap().ends_with("@example.com"));
    assert!(jobs[0]["started_at"].is_string() && jobs[0]["finished_at"].is_string());
}

/// The demo app refuses the next account creation for good (422 "seat limit reached").
async fn refuse_next_create(w: &World) {
    w.demo
        .inject(
            FaultSpec::new([FaultResponse::status(422).body(json!({"error": "seat limit reached"}))])
                .matching("POST", "/api/users"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_job_shows_the_apps_error_and_succeeds_after_retry() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    refuse_next_create(&w).await;
    w.create_user("lee@example.com").await;
    w.settle().await;
    let (_, list) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?status=failed"), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let rid = list["items"][0]["id"].as_str().unwrap().to_string();
    let (_, detail) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity/{rid}"), None).await;
    let job = &detail["jobs"][0];
    assert_eq!(job["status"], "failed");
    assert!(job["error"].as_str().unwrap().contains("seat limit reached"), "{job}");
    let jid = job["id"].as_str().unwrap();

    // The target recovered: retry.
    let (s, body) = admin(&w.stack, "POST", &format!("/integrations/{iid}/jobs/{jid}/retry"), None).await;
    assert_eq!(s, 202, "{body}");
    let (s, _) = admin(&w.stack, "POST", &format!("/integrations/{iid}/jobs/{jid}/retry"), None).await;
    assert_eq!(s, 409, "only a failed job can be retried");
    w.settle().await;
    let (_, detail) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity/{rid}"), None).await;
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["jobs"][0]["status"], "succeeded");
    assert!(w.app_user("lee@example.com").await.is_some());
}

#[tokio::test]
async fn pagination_and_filters_return_exactly_the_expected_items() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    let mut created = Vec::new();
    for n in 0..7 {
        w.create_user(&format!("q{n}@example.com")).await;
        let (_, list) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?limit=1"), None).await;
        created.push(ids(&list)[0].clone());
    }
    created.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (s, page) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?limit=3{q}"), None).await;
        assert_eq!(s, 200, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 3);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, created, "every request once, newest first");

    // By user (id or userName), and by status.
    let (_, by_user) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?user=q3@example.com"), None).await;
    assert_eq!(ids(&by_user), vec![created[3].clone()]);
    let (_, none) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?status=succeeded"), None).await;
    assert!(ids(&none).is_empty(), "nothing ran yet");
    w.settle().await;
    let (_, done) =
        admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?status=succeeded&limit=100"), None).await;
    assert_eq!(ids(&done), created);
    let (s, _) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?status=bogus"), None).await;
    assert_eq!(s, 400);
    let (s, _) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?cursor=not-a-cursor"), None).await;
    assert_eq!(s, 400);
    // A time range after everything: empty.
    let (_, later) =
        admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?since=2999-01-01T00:00:00Z"), None).await;
    assert!(ids(&later).is_empty());

    // One user's history.
    let (s, history) =
        admin(&w.stack, "GET", &format!("/integrations/{iid}/users/q3@example.com/activity"), None).await;
    assert_eq!(s, 200);
    assert_eq!(history["items"][0]["action"], "provision");
    assert_eq!(history["items"][0]["status"], "succeeded");

    // A page is one key-range Query on the index, never a scan, however much is stored.
    for _ in 0..2 {
        let before = w.stack.api_calls.get();
        let (s, _) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?limit=3"), None).await;
        assert_eq!(s, 200);
        assert_eq!(w.stack.api_calls.operations_since(before), ["Query"]);
        w.create_user(&format!("extra{}@example.com", w.stack.api_calls.get())).await;
    }
}

#[tokio::test]
async fn integrations_are_kept_apart_and_tokens_rotate() {
    let w = World::new().await;
    let other = w.stack.create_integration("other").await;
    w.create_user("mo@example.com").await;
    let (_, mine) = admin(&w.stack, "GET", &format!("/integrations/{}/activity", w.scim.id), None).await;
    assert_eq!(ids(&mine).len(), 1);
    let (_, theirs) = admin(&w.stack, "GET", &format!("/integrations/{}/activity", other.id), None).await;
    assert!(ids(&theirs).is_empty(), "another integration's requests are never listed");
    let rid = ids(&mine)[0].clone();
    let (s, _) = admin(&w.stack, "GET", &format!("/integrations/{}/activity/{rid}", other.id), None).await;
    assert_eq!(s, 404);
    // A cursor of one integration is refused on another.
    w.create_user("mo2@example.com").await;
    let (_, page) = admin(&w.stack, "GET", &format!("/integrations/{}/activity?limit=1", w.scim.id), None).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (s, _) = admin(&w.stack, "GET", &format!("/integrations/{}/activity?cursor={cursor}", other.id), None).await;
    assert_eq!(s, 400);

    // Integrations: listed, shown without secrets.
    let (_, all) = admin(&w.stack, "GET", "/integrations", None).await;
    assert!(ids(&all).contains(&w.scim.id) && ids(&all).contains(&other.id));
    let (_, one) = admin(&w.stack, "GET", &format!("/integrations/{}", w.scim.id), None).await;
    assert_eq!(one["config"]["connector"]["secret"], "***");
    assert!(!one.to_string().contains(idlcm_tests::world::DEMO_KEY));

    // Rotation: a new token works alongside the old one until the old one is revoked.
    let (s, issued) = admin(&w.stack, "POST", &format!("/integrations/{}/tokens", w.scim.id), None).await;
    assert_eq!(s, 201);
    let new_token = issued["token"].as_str().unwrap();
    let rotated = idlcm_tests::Integration { token: new_token.to_string(), ..w.scim.clone() };
    assert_eq!(rotated.call(&w.stack.http, "GET", "/Users", None).await.0, 200);
    assert_eq!(w.scim.call(&w.stack.http, "GET", "/Users", None).await.0, 200);
    let old_id = one["tokens"][0]["id"].as_str().unwrap();
    let (s, _) = admin(&w.stack, "DELETE", &format!("/integrations/{}/tokens/{old_id}", w.scim.id), None).await;
    assert_eq!(s, 204);
    assert_eq!(w.scim.call(&w.stack.http, "GET", "/Users", None).await.0, 401, "the revoked token");
    assert_eq!(rotated.call(&w.stack.http, "GET", "/Users", None).await.0, 200);

    // Update keeps the secret when it comes back as "***"; delete closes the endpoint.
    let mut config = one["config"].clone();
    config["name"] = json!("Renamed");
    let (s, updated) = admin(&w.stack, "PUT", &format!("/integrations/{}", w.scim.id), Some(config)).await;
    assert_eq!((s, updated["name"].as_str()), (200, Some("Renamed")), "{updated}");
    let (s, deleted) = admin(&w.stack, "DELETE", &format!("/integrations/{}", other.id), None).await;
    assert_eq!((s, deleted["deprovisioned"].as_bool()), (202, Some(false)), "{deleted}");
    assert_eq!(other.call(&w.stack.http, "GET", "/Users", None).await.0, 401);
}

#[tokio::test]
async fn the_activity_page_is_served_self_contained() {
    let stack = Stack::start().await;
    let resp = stack.http.get(format!("{}/activity", stack.api_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "the page cannot be framed (clickjacking): {csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("<label for=\"token\">Admin token or owner token</label>"));
    // No external assets (example URLs in placeholders are text, not loads).
    for load in ["src=\"http", "href=\"http", "url(http", "@import", "src=\"//", "href=\"//"] {
        assert!(!html.contains(load), "external asset: {load}");
    }
    assert!(!html.contains("<script src") && !html.contains("<link"), "one self-contained document");
}

#[test]
fn the_openapi_check_catches_a_drift() {
    let api = OpenApi::default();
    let ok = json!({"items": [], "next_cursor": null});
    assert!(api.check("GET", "/admin/integrations/x/activity", 200, &ok).is_ok());
    let wrong = json!({"items": [{"id": "r", "created_at": "t", "trigger": {"method": "POST", "path": "/Users"},
        "status": "done", "progress": {"total": 1, "succeeded": 1, "failed": 0, "pending": 0}}], "next_cursor": null});
    assert!(api.check("GET", "/admin/integrations/x/activity", 200, &wrong).unwrap_err().contains("status"));
    assert!(api.check("GET", "/admin/nope", 200, &ok).is_err());
    assert!(api.check("GET", "/admin/integrations/x/activity", 418, &ok).is_err());
}

/// Runs the worker until the robot has received `n` deliveries (notifications are queued
/// after the job they report has finished, so `settle` may return before they are sent).
async fn until_received(w: &World, robot: &idlcm_tests::robot::Robot, n: usize) {
    let worker = w.worker.clone();
    let enough = || async { robot.received().len() >= n };
    let handler = idlcm_tests::world::handler(worker);
    assert!(
        w.source.run_until(handler, enough, std::time::Duration::from_secs(30)).await,
        "{n} notification(s) expected, {} received",
        robot.received().len()
    );
}

#[tokio::test]
async fn a_job_that_fails_for_good_sends_one_signed_notification_retried_until_the_receiver_takes_it() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    let robot = idlcm_tests::robot::Robot::start().await;
    let secret = "notify-secret-0123456789";
    let (_, got) = admin(&w.stack, "GET", &format!("/integrations/{iid}"), None).await;
    let mut config = got["config"].clone();
    config["notify"] = json!({"url": robot.url, "secret": secret});
    let (s, saved) = admin(&w.stack, "PUT", &format!("/integrations/{iid}"), Some(config)).await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(saved["config"]["notify"]["secret"], "***", "the secret is never shown");

    // The receiver is down at first: the notification comes again, with the same event id.
    robot.answer(503);
    refuse_next_create(&w).await;
    w.create_user("lee@example.com").await;
    w.settle().await;
    until_received(&w, &robot, 1).await;
    robot.answer(204);
    until_received(&w, &robot, 2).await;
    // Delivered: nothing more comes (a second worker pass finds the queue empty).
    w.settle().await;
    let received = robot.received();
    assert_eq!(received.len(), 2, "one failure, one notification retried once");
    for r in &received {
        idlcm::connector::webhook::verify(secret.as_bytes(), &r.body, &r.signature).expect("signed with notify.secret");
    }
    let (first, second) = (received[0].json(), received[1].json());
    assert_eq!(first, second, "a retry sends the same event");
    assert_eq!(second["event"], "job.failed");
    assert_eq!(second["id"], format!("job.failed.{}", second["job"]["id"].as_str().unwrap()));
    assert_eq!(second["integration"]["id"], iid.as_str());
    assert_eq!(second["job"]["userName"], "lee@example.com");
    assert!(second["job"]["error"].as_str().unwrap().contains("seat limit reached"), "{second}");
    let (_, list) = admin(&w.stack, "GET", &format!("/integrations/{iid}/activity?status=failed"), None).await;
    assert_eq!(second["request_id"], list["items"][0]["id"], "it names the request shown in Activity");
}

#[tokio::test]
async fn test_connection_reads_the_app_and_reports_its_failure() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    let (s, ok) = admin(&w.stack, "POST", &format!("/integrations/{iid}/test"), None).await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!((ok["ok"].as_bool(), ok["call"].as_str()), (Some(true), Some("list_users")), "{ok}");
    w.demo.inject(FaultSpec::new([FaultResponse::status(503)]).matching("GET", "/api/users")).await.unwrap();
    let (s, down) = admin(&w.stack, "POST", &format!("/integrations/{iid}/test"), None).await;
    assert_eq!((s, down["ok"].as_bool()), (200, Some(false)), "{down}");
    assert!(down["detail"].as_str().unwrap().contains("503"), "the app's answer is shown: {down}");
    let (s, _) = admin(&w.stack, "POST", "/integrations/nope/test", None).await;
    assert_eq!(s, 404);
}
