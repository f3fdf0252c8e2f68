//! Drift end to end (issue 12): the API in-process, DynamoDB and SQS on moto, the real worker
//! fed from the queue, and the demo app on loopback, changed behind idlcm's back through its
//! own API. Resync in `report` and `correct` mode, the unmanaged accounts, adoption of an
//! account the app already had, a compare step run twice, an app that cannot be read, and the
//! re-plan when a group mapping changes (with its dry run).

use std::time::Duration;

use idlcm::queue::Message;
use idlcm::service::resync::start_scheduled;
use idlcm::store::fanout::ResyncStage;
use idlcm::store::provisioning::{JobRow, RequestRow};
use idlcm_tests::openapi::OpenApi;
use idlcm_tests::robot::Robot;
use idlcm_tests::world::{DEMO_KEY, World, handler, patch, user_body};
use idlcm_tests::{Options, Stack};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(90);

/// A call to the demo app's own API, as an app admin would make it.
async fn app_api(w: &World, method: &str, path: &str, body: Option<Value>) -> Value {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = w.stack.http.request(m, format!("{}{path}", w.demo.url)).bearer_auth(DEMO_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("demo app");
    assert!(resp.status().is_success(), "{method} {path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// An admin call whose answer must be what functions/scim-api/openapi.json documents.
async fn admin(w: &World, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, answer) = w.stack.admin(method, path, body).await;
    if let Err(e) = OpenApi::default().check(method, &format!("/admin{path}"), status, &answer) {
        panic!("{method} /admin{path} -> {status} does not match openapi.json: {e}\n{answer}");
    }
    (status, answer)
}

async fn start_resync(w: &World, mode: &str) -> String {
    let (s, v) = admin(w, "POST", &format!("/integrations/{}/resync", w.scim.id), Some(json!({"mode": mode}))).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["mode"], mode);
    v["request_id"].as_str().unwrap().to_string()
}

async fn request(w: &World, id: &str) -> RequestRow {
    w.requests().await.into_iter().find(|r| r.id == id).expect("the request")
}

/// Feeds the queue to the worker until the request is final and its jobs are done.
async fn finish(w: &World, request_id: &str) -> (RequestRow, Vec<JobRow>) {
    let done = || async {
        let r = request(w, request_id).await;
        r.finished_at.is_some()
    };
    assert!(w.source.run_until(handler(w.worker.clone()), done, TIMEOUT).await, "request {request_id} did not finish");
    let jobs = w.jobs().await.into_iter().filter(|j| j.request_id == request_id).collect();
    (request(w, request_id).await, jobs)
}

fn user_with_role(email: &str, role: &str) -> Value {
    let mut body = user_body(email);
    body["roles"] = json!([{"value": role, "primary": true}]);
    body
}

#[tokio::test]
async fn resync_reports_then_corrects_what_was_changed_in_the_app_and_leaves_unmanaged_accounts_alone() {
    let w = World::new().await;
    let (s, ada) = w.call("POST", "/Users", Some(user_with_role("ada@example.com", "user"))).await;
    assert_eq!(s, 201, "{ada}");
    let (_, bob) = w.call("POST", "/Users", Some(user_with_role("bob@example.com", "user"))).await;
    let bob_id = bob["id"].as_str().unwrap().to_string();
    w.call("POST", "/Users", Some(user_with_role("cy@example.com", "viewer"))).await;
    w.settle().await;
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(w.call("PATCH", &format!("/Users/{bob_id}"), Some(off)).await.0, 200);
    w.settle().await;
    let app_ada = w.app_user("ada@example.com").await.unwrap();
    let app_bob = w.app_user("bob@example.com").await.unwrap();
    assert_eq!((app_ada.role.as_deref(), app_bob.active), (Some("user"), false));

    // Behind idlcm's back: an app admin promotes Ada, re-activates Bob, adds Eve.
    app_api(&w, "PUT", &format!("/api/users/{}", app_ada.id), Some(json!({"role": "admin"}))).await;
    app_api(&w, "POST", &format!("/api/users/{}/activate", app_bob.id), None).await;
    let eve = app_api(
        &w,
        "POST",
        "/api/users",
        Some(json!({"email": "eve@example.com", "given_name": "Eve", "family_name": "X", "role": "viewer"})),
    )
    .await;
    w.demo.clear_events().await;
    let reads_before = w.demo.app().api_reads();

    // Report: exactly those two differences, and the app untouched.
    let report = start_resync(&w, "report").await;
    let (req, jobs) = finish(&w, &report).await;
    assert_eq!((req.method.as_str(), req.status.as_str()), ("RESYNC", "succeeded"));
    assert_eq!((req.total, req.drift), (2, 2));
    let mut jobs = jobs;
    jobs.sort_by_key(|j| j.user_name.clone());
    let summary: Vec<(Option<&str>, &str, &str, Vec<String>)> = jobs
        .iter()
        .map(|j| (j.user_name.as_deref(), j.status.as_str(), j.action.as_str(), j.changed.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("ada@example.com"), "drift", "update", vec!["role".to_string()]),
            (Some("bob@example.com"), "drift", "deactivate", vec!["active".to_string()]),
        ]
    );
    let ada_job = &jobs[0];
    assert_eq!(ada_job.before().unwrap().role.as_deref(), Some("admin"), "before: what the app holds");
    assert_eq!(ada_job.after().unwrap().role.as_deref(), Some("user"), "after: what the IdP says");
    assert!(w.demo.events().await.is_empty(), "a report changes nothing in the app");
    // Read in pages, not once per user: 4 accounts fit one page.
    assert_eq!(w.demo.app().api_reads() - reads_before, 1);

    // The Activity API shows the request with its differences.
    let (s, detail) = admin(&w, "GET", &format!("/integrations/{}/activity/{report}", w.scim.id), None).await;
    assert_eq!(s, 200, "{detail}");
    assert_eq!(detail["trigger"]["method"], "RESYNC");
    assert_eq!(detail["progress"]["drift"], 2);

    // The account nobody manages is listed, and left alone.
    let (s, unmanaged) = admin(&w, "GET", &format!("/integrations/{}/unmanaged", w.scim.id), None).await;
    assert_eq!(s, 200, "{unmanaged}");
    let ids: Vec<&str> = unmanaged["items"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![eve["id"].as_str().unwrap()]);
    assert_eq!(unmanaged["items"][0]["key"], "eve@example.com");
    assert_eq!(
        (unmanaged["resync"]["request_id"].as_str(), unmanaged["resync"]["count"].as_u64()),
        (Some(report.as_str()), Some(1))
    );

    // Correct: both restored; Eve untouched.
    let correct = start_resync(&w, "correct").await;
    let (req, jobs) = finish(&w, &correct).await;
    w.settle().await;
    let req = request(&w, &req.id).await;
    assert_eq!((req.status.as_str(), req.total, req.succeeded), ("succeeded", 2, 2), "{jobs:?}");
    assert_eq!(w.app_user("ada@example.com").await.unwrap().role.as_deref(), Some("user"));
    assert!(!w.app_user("bob@example.com").await.unwrap().active);
    let eve_now = w.app_user("eve@example.com").await.unwrap();
    assert!(eve_now.active && eve_now.role.as_deref() == Some("viewer"));
    assert!(w.demo.events().await.iter().all(|e| e.user_id.as_deref() != eve["id"].as_str()), "Eve was not touched");

    // Bad input is a clear 400; an unknown integration 404.
    let path = format!("/integrations/{}/resync", w.scim.id);
    let (s, err) = admin(&w, "POST", &path, Some(json!({"mode": "fix"}))).await;
    assert_eq!((s, err["scimType"].as_str()), (400, Some("invalidValue")), "{err}");
    let (s, _) = admin(&w, "POST", "/integrations/nope/resync", Some(json!({"mode": "report"}))).await;
    assert_eq!(s, 404);
    let (s, _) = admin(&w, "GET", &format!("/integrations/{}/unmanaged?cursor=9", w.scim.id), None).await;
    assert_eq!(s, 400);

    // Converged: one more report finds nothing.
    let again = start_resync(&w, "report").await;
    let (req, jobs) = finish(&w, &again).await;
    assert_eq!((req.total, jobs.len(), req.status.as_str()), (0, 0, "succeeded"));
}

#[tokio::test]
async fn an_account_the_app_already_has_is_adopted_not_duplicated() {
    let w = World::new().await;
    let existing = app_api(
        &w,
        "POST",
        "/api/users",
        Some(json!({"email": "dana@example.com", "given_name": "Dana", "family_name": "Old", "role": "viewer"})),
    )
    .await;
    let uid = w.create_user("dana@example.com").await;
    w.settle().await;
    let users = w.demo.users().await;
    assert_eq!(users.len(), 1, "one account: {users:?}");
    assert_eq!(users[0].family_name, "Family", "brought to the IdP's state");
    let job = w.jobs().await.pop().unwrap();
    assert_eq!(job.status, "succeeded");
    assert!(job.detail.unwrap_or_default().starts_with("adopted the app's existing account"));
    let applied = w.stack.store().get_applied(&w.scim.id, &uid).await.unwrap().unwrap();
    assert_eq!(applied.app_id.as_deref(), existing["id"].as_str(), "its app id recorded");
}

/// A step cut off after its writes runs again: no job twice, no count twice, no list lost.
#[tokio::test]
async fn a_compare_step_run_twice_writes_each_difference_once() {
    let w = World::new().await;
    w.call("POST", "/Users", Some(user_with_role("ann@example.com", "user"))).await;
    w.settle().await;
    let app_ann = w.app_user("ann@example.com").await.unwrap();
    app_api(&w, "PUT", &format!("/api/users/{}", app_ann.id), Some(json!({"role": "viewer"}))).await;
    let zed = json!({"email": "zed@example.com", "given_name": "Zed", "family_name": "Z", "role": "viewer"});
    app_api(&w, "POST", "/api/users", Some(zed)).await;

    let report = start_resync(&w, "report").await;
    // The read step, as the worker runs it from the queue.
    let read = w.receive(10).await;
    assert_eq!(read.len(), 1);
    assert!(matches!(serde_json::from_str::<Message>(&read[0].body), Ok(Message::Fanout(_))));
    w.worker.handle(&read[0]).await;
    // Acknowledged, as Lambda does: the task's next message (same FIFO group) is delivered
    // only then.
    let handle = read[0].receipt_handle.clone().unwrap();
    w.stack.sqs().delete_message().queue_url(&w.stack.queue_url).receipt_handle(handle).send().await.unwrap();
    let compare = w.receive(10).await;
    let Ok(Message::Fanout(msg)) = serde_json::from_str::<Message>(&compare[0].body) else { panic!("a step") };
    let store = w.stack.store();
    let task = store.get_fanout(&w.scim.id, &msg.fanout).await.unwrap().unwrap();
    assert_eq!(task.resync.as_ref().unwrap().stage, ResyncStage::Compare);

    let app = idlcm::service::resync::AppAccess { outbound: &w.worker.http, secrets: &w.worker.secrets };
    let queue = idlcm::queue::Queue::new(w.stack.sqs(), w.stack.queue_url.clone());
    // The same step twice, from the same task row: the second is a rerun after a crash.
    idlcm::service::resync::run_step(&store, &queue, app, &task).await.unwrap();
    idlcm::service::resync::run_step(&store, &queue, app, &task).await.unwrap();
    let handle = compare[0].receipt_handle.clone().unwrap();
    w.stack.sqs().delete_message().queue_url(&w.stack.queue_url).receipt_handle(handle).send().await.unwrap();

    // The last step twice too: the rerun finds the working rows gone and keeps the saved list.
    let task = store.get_fanout(&w.scim.id, &msg.fanout).await.unwrap().unwrap();
    assert_eq!(task.resync.as_ref().unwrap().stage, ResyncStage::Finish);
    idlcm::service::resync::run_step(&store, &queue, app, &task).await.unwrap();
    idlcm::service::resync::run_step(&store, &queue, app, &task).await.unwrap();
    let (req, jobs) = finish(&w, &report).await;
    assert_eq!((jobs.len(), req.total, req.drift), (1, 1, 1), "{jobs:?}");
    let (_, unmanaged) = admin(&w, "GET", &format!("/integrations/{}/unmanaged", w.scim.id), None).await;
    assert_eq!(unmanaged["resync"]["count"], 1, "{unmanaged}");
    assert_eq!(unmanaged["items"][0]["key"], "zed@example.com");
}

/// A webhook robot cannot be read: a report says so and compares nothing; a correction
/// delivers every managed user's desired state again.
#[tokio::test]
async fn an_app_that_cannot_be_read_gets_the_desired_state_again() {
    let robot = Robot::start().await;
    robot.answer(200);
    let stack = Stack::start_with(Options::default()).await;
    let scim = stack
        .create_integration_with(json!({
            "name": "Robot", "connector": {"type": "webhook", "url": robot.url, "secret": "s3cret"},
            "roles": {"attribute": "roles", "groups": [], "default": null}, "attributes": ["userName"],
        }))
        .await;
    let worker = std::sync::Arc::new(stack.worker());
    let source = stack.event_source();
    for name in ["r1@example.com", "r2@example.com"] {
        let (s, _) = scim.call(&stack.http, "POST", "/Users", Some(user_body(name))).await;
        assert_eq!(s, 201);
    }
    idlcm_tests::world::settle(&stack, &worker, &source, &scim.id, TIMEOUT).await;
    let delivered = robot.actions().len();
    assert_eq!(delivered, 2);

    let resync = |mode: &'static str| {
        let stack = &stack;
        let id = scim.id.clone();
        async move {
            let (s, v) = stack.admin("POST", &format!("/integrations/{id}/resync"), Some(json!({"mode": mode}))).await;
            assert_eq!(s, 202, "{v}");
            v["request_id"].as_str().unwrap().to_string()
        }
    };
    let store = stack.store();
    let final_request = |rid: String| {
        let store = store.clone();
        let iid = scim.id.clone();
        async move { store.get_request(&iid, &rid).await.unwrap().is_some_and(|r| r.finished_at.is_some()) }
    };
    let report = resync("report").await;
    assert!(source.run_until(handler(worker.clone()), || final_request(report.clone()), TIMEOUT).await);
    let r = store.get_request(&scim.id, &report).await.unwrap().unwrap();
    assert_eq!(r.total, 0);
    assert!(r.note.as_deref().unwrap_or_default().contains("cannot list the app's accounts"), "{:?}", r.note);
    assert_eq!(robot.actions().len(), delivered, "a report sends nothing");

    let correct = resync("correct").await;
    assert!(source.run_until(handler(worker.clone()), || final_request(correct.clone()), TIMEOUT).await);
    idlcm_tests::world::settle(&stack, &worker, &source, &scim.id, TIMEOUT).await;
    let r = store.get_request(&scim.id, &correct).await.unwrap().unwrap();
    assert_eq!((r.total, r.succeeded, r.status.as_str()), (2, 2, "succeeded"));
    let again: Vec<String> = robot.actions().into_iter().skip(delivered).collect();
    assert_eq!(again, vec!["update", "update"], "each managed user delivered again");
}

#[tokio::test]
async fn changing_a_group_mapping_replans_exactly_the_affected_users_and_a_dry_run_saves_nothing() {
    let w = World::new().await;
    let admin_user = w.create_user("boss@example.com").await;
    let ops_user = w.create_user("ops@example.com").await;
    w.create_user("plain@example.com").await;
    let admins = w.create_group("App Admins").await;
    let ops = w.create_group("Ops").await;
    w.members(&admins, "add", &[&admin_user]).await;
    w.members(&ops, "add", &[&ops_user]).await;
    w.settle().await;
    assert_eq!(w.app_user("ops@example.com").await.unwrap().role, None);
    let requests_before = w.requests().await.len();

    let (_, current) = w.stack.admin("GET", &format!("/integrations/{}", w.scim.id), None).await;
    let mut config = current["config"].clone();
    config["roles"]["groups"].as_array_mut().unwrap().push(json!({"group": "Ops", "role": "viewer", "priority": 5}));

    // Dry run: the counts and a sample, nothing saved or sent.
    let path = format!("/integrations/{}?dry_run=true", w.scim.id);
    let (s, preview) = admin(&w, "PUT", &path, Some(config.clone())).await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["dry_run"], true);
    assert_eq!((preview["users"].as_u64(), preview["changes"]["total"].as_u64()), (Some(3), Some(1)), "{preview}");
    assert_eq!(preview["changes"]["by_action"], json!({"update": 1}));
    assert_eq!(preview["sample"][0]["user"]["id"], ops_user.as_str());
    assert_eq!(preview["sample"][0]["after"]["role"], "viewer");
    let (_, unchanged) = w.stack.admin("GET", &format!("/integrations/{}", w.scim.id), None).await;
    assert_eq!(unchanged["config"]["roles"], current["config"]["roles"], "nothing saved");
    assert_eq!(w.requests().await.len(), requests_before, "no request");
    assert!(w.receive(10).await.is_empty(), "nothing sent");

    // The save: one RECONFIGURE request, one job, for the Ops member only.
    w.demo.clear_events().await;
    let (s, saved) = admin(&w, "PUT", &format!("/integrations/{}", w.scim.id), Some(config)).await;
    assert_eq!(s, 200, "{saved}");
    let rid = saved["replan_request_id"].as_str().expect("a re-plan request").to_string();
    let (req, jobs) = finish(&w, &rid).await;
    w.settle().await;
    assert_eq!(req.method, "RECONFIGURE");
    assert_eq!(jobs.iter().map(|j| j.user_id.as_str()).collect::<Vec<_>>(), vec![ops_user.as_str()]);
    assert_eq!(w.app_user("ops@example.com").await.unwrap().role.as_deref(), Some("viewer"));
    let touched: Vec<_> = w.demo.events().await.into_iter().filter_map(|e| e.user_id).collect();
    let ops_app_id = w.app_user("ops@example.com").await.unwrap().id;
    assert_eq!(touched, vec![ops_app_id], "only the affected user's account changed");

    // A save that changes nothing users get (the name) re-plans nobody.
    let (_, mut current) = w.stack.admin("GET", &format!("/integrations/{}", w.scim.id), None).await;
    current["config"]["name"] = json!("Demo renamed");
    let (s, saved) =
        w.stack.admin("PUT", &format!("/integrations/{}", w.scim.id), Some(current["config"].clone())).await;
    assert_eq!(s, 200, "{saved}");
    assert!(saved.get("replan_request_id").is_none());
}

/// `resync.every_hours`: the sweeper starts one resync per period, whatever how often it runs.
#[tokio::test]
async fn a_scheduled_resync_starts_once_per_period() {
    let w = World::configured(Options::default(), |c| c["resync"] = json!({"every_hours": 24, "mode": "report"})).await;
    let store = w.stack.store();
    let queue = idlcm::queue::Queue::new(w.stack.sqs(), w.stack.queue_url.clone());
    // The sweeper's part (the whole sweeper would also sweep other tests' jobs on this emulator).
    let first = start_scheduled(&store, &queue, &store.list_integrations().await.unwrap()).await.unwrap();
    let second = start_scheduled(&store, &queue, &store.list_integrations().await.unwrap()).await.unwrap();
    // Other integrations of this emulator may have schedules too: count this one's requests.
    let resyncs: Vec<RequestRow> = w.requests().await.into_iter().filter(|r| r.method == "RESYNC").collect();
    assert_eq!(resyncs.len(), 1, "one per period: {first} then {second} started");
    assert!(first >= 1);
    let (_, _) = finish(&w, &resyncs[0].id).await;

    // A bad schedule is refused when saved.
    let (_, current) = w.stack.admin("GET", &format!("/integrations/{}", w.scim.id), None).await;
    let mut config = current["config"].clone();
    config["resync"] = json!({"every_hours": 0});
    let (s, err) = w.stack.admin("PUT", &format!("/integrations/{}", w.scim.id), Some(config)).await;
    assert_eq!((s, err["scimType"].as_str()), (400, Some("invalidValue")), "{err}");
}

/// `make bench`: a resync of 1,000 provisioned users, 10 of them changed in the app behind
/// idlcm's back: the time each mode takes and the app calls it makes (pages, not one per user).
#[tokio::test]
#[ignore = "minutes long: run by make bench"]
async fn bench_resync_of_1000_users() {
    let n = 1000;
    let w = World::new().await;
    w.seed_provisioned(None, n).await;
    let accounts = w.demo.users().await;
    for a in accounts.iter().step_by(n / 10) {
        app_api(&w, "PUT", &format!("/api/users/{}", a.id), Some(json!({"role": "admin"}))).await;
    }
    for mode in ["report", "correct"] {
        let (reads, writes) = (w.demo.app().api_reads(), w.demo.events().await.len());
        let started = std::time::Instant::now();
        let rid = start_resync(&w, mode).await;
        let (req, _) = finish(&w, &rid).await;
        let compared = started.elapsed();
        w.settle().await;
        let done = started.elapsed();
        let reads = w.demo.app().api_reads() - reads;
        let writes = w.demo.events().await.len() - writes;
        assert_eq!(req.total, 10, "{req:?}");
        println!(
            "BENCH resync {mode:>7}: {n} users: compared in {:>6} ms, done in {:>6} ms; {} differences; app calls: {reads} reads, {writes} writes",
            compared.as_millis(),
            done.as_millis(),
            req.total
        );
    }
    assert!(w.demo.users().await.iter().all(|u| u.role.is_none()), "corrected");
}
