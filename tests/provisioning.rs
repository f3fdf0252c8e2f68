//! End to end, from a SCIM change to the external app: the API (in-process, real HTTP on
//! 127.0.0.1), DynamoDB and SQS on the moto emulator, the real worker fed by a local SQS event
//! source as Lambda would, and real target apps on loopback (the demo REST app, a third-party
//! SCIM server, a webhook receiver).

use std::sync::Arc;
use std::time::{Duration, Instant};

use idlcm_tests::demo_app::{FaultResponse, FaultSpec};
use idlcm_tests::world::{DEMO_KEY, SETTLE, World, handler, patch, settle, user_body};
use idlcm_tests::{Options, Stack, demo_integration};
use serde_json::{Value, json};

#[tokio::test]
async fn lifecycle_reaches_the_app() {
    let w = World::new().await;
    let users = w.create_group("App Users").await;
    let email = "alice@example.com";
    let uid = w.create_user(email).await;
    w.members(&users, "add", &[&uid]).await;
    w.settle().await;
    let u = w.app_user(email).await.expect("provisioned");
    assert_eq!((u.role.as_deref(), u.active, u.given_name.as_str()), (Some("user"), true, "Given"));

    // An explicit role (the core `roles` attribute) wins over the group's.
    let (s, _) = w
        .call(
            "PATCH",
            &format!("/Users/{uid}"),
            Some(patch(json!([{"op": "add", "path": "roles", "value": [{"value": "admin", "primary": true}]}]))),
        )
        .await;
    assert_eq!(s, 200);
    w.settle().await;
    assert_eq!(w.app_user(email).await.unwrap().role.as_deref(), Some("admin"));

    // Okta's unassign: active=false deactivates, it does not delete.
    let (s, _) = w
        .call("PATCH", &format!("/Users/{uid}"), Some(patch(json!([{"op": "replace", "value": {"active": false}}]))))
        .await;
    assert_eq!(s, 200);
    w.settle().await;
    let u = w.app_user(email).await.expect("still in the app");
    assert!(!u.active);

    // Reactivation restores the right role; dropping the explicit role falls back to the group's.
    let (s, _) = w
        .call(
            "PATCH",
            &format!("/Users/{uid}"),
            Some(patch(json!([{"op": "replace", "path": "active", "value": "True"}]))),
        )
        .await;
    assert_eq!(s, 200);
    w.settle().await;
    let u = w.app_user(email).await.unwrap();
    assert_eq!((u.active, u.role.as_deref()), (true, Some("admin")));
    let (s, _) =
        w.call("PATCH", &format!("/Users/{uid}"), Some(patch(json!([{"op": "remove", "path": "roles"}])))).await;
    assert_eq!(s, 200);
    w.settle().await;
    assert_eq!(w.app_user(email).await.unwrap().role.as_deref(), Some("user"));

    // DELETE deprovisions.
    let (s, _) = w.call("DELETE", &format!("/Users/{uid}"), None).await;
    assert_eq!(s, 204);
    w.settle().await;
    assert!(w.app_user(email).await.is_none(), "deprovisioned");

    // What the worker did per job. The create and the group add were queued together: the
    // first job reconciled straight to the current state (provision with role "user"), so the
    // second found nothing left to do.
    let done: Vec<String> =
        w.jobs().await.iter().map(|j| j.applied_action.clone().unwrap_or_else(|| j.status.clone())).collect();
    assert_eq!(done, ["provision", "superseded", "update", "deactivate", "reactivate", "update", "deprovision"]);
    assert!(w.requests().await.iter().all(|r| r.status == "succeeded"));
}

#[tokio::test]
async fn moving_between_groups_ends_with_the_new_role_in_either_order() {
    let w = World::new().await;
    let users = w.create_group("App Users").await;
    let admins = w.create_group("App Admins").await;

    // Add first (Users -> Admins): the role changes at once; the removal changes nothing more.
    let bob = w.create_user("bob@example.com").await;
    w.members(&users, "add", &[&bob]).await;
    w.settle().await;
    w.demo.clear_events().await;
    w.members(&admins, "add", &[&bob]).await;
    w.settle().await;
    let jobs_before_remove = w.jobs().await.len();
    w.members(&users, "remove", &[&bob]).await;
    w.settle().await;
    assert_eq!(w.jobs().await.len(), jobs_before_remove, "removing from the lower group makes no job");
    assert_eq!(w.app_user("bob@example.com").await.unwrap().role.as_deref(), Some("admin"));
    for e in w.demo.events().await {
        assert_ne!(e.method, "DELETE", "the app never saw bob deprovisioned: {e:?}");
        assert!(e.body.get("role").is_none_or(|r| !r.is_null()), "the app never saw bob without a role: {e:?}");
    }

    // Remove first (Admins -> Users): a real change to no role, then the add fixes it.
    let carol = w.create_user("carol@example.com").await;
    w.members(&admins, "add", &[&carol]).await;
    w.settle().await;
    w.members(&admins, "remove", &[&carol]).await;
    w.settle().await;
    assert_eq!(w.app_user("carol@example.com").await.unwrap().role, None);
    w.members(&users, "add", &[&carol]).await;
    w.settle().await;
    assert_eq!(w.app_user("carol@example.com").await.unwrap().role.as_deref(), Some("user"));
}

#[tokio::test]
async fn unchanged_profiles_and_unmapped_attributes_make_no_job() {
    let w = World::new().await;
    let uid = w.create_user("dave@example.com").await;
    w.settle().await;
    let requests = w.requests().await.len();
    assert_eq!(requests, 1, "the create made one request");

    // Okta's GET-then-PUT of the same profile.
    let (_, current) = w.call("GET", &format!("/Users/{uid}"), None).await;
    let (s, _) = w.call("PUT", &format!("/Users/{uid}"), Some(current)).await;
    assert_eq!(s, 200);
    // A change to an attribute the integration does not map.
    let (s, _) = w
        .call(
            "PATCH",
            &format!("/Users/{uid}"),
            Some(patch(json!([{"op": "replace", "path": "title", "value": "CTO"}]))),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(w.requests().await.len(), requests, "no provisioning request");
    assert_eq!(w.jobs().await.len(), 1, "no job");
    let polled = w.source.poll_once(&|_| async { Vec::new() }).await.unwrap();
    assert_eq!(polled.received, 0, "nothing was queued");
}

#[tokio::test]
async fn retries_failures_and_duplicates() {
    let w = World::new().await;
    // 503 twice, then the app answers: succeeded after 3 attempts.
    w.demo
        .inject(
            FaultSpec::new([FaultResponse::status(503).retry_after(1), FaultResponse::status(503).retry_after(1)])
                .matching("POST", "/api/users"),
        )
        .await
        .unwrap();
    w.create_user("erin@example.com").await;
    w.settle().await;
    let job = w.jobs().await.pop().unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 3), "{job:?}");
    assert!(w.app_user("erin@example.com").await.is_some());

    // 400: failed at once, with the app's error.
    w.demo
        .inject(
            FaultSpec::new([FaultResponse::status(400).body(json!({"error": "email domain not allowed"}))])
                .matching("POST", "/api/users"),
        )
        .await
        .unwrap();
    w.create_user("frank@example.com").await;
    w.settle().await;
    let job = w.jobs().await.into_iter().find(|j| j.user_name.as_deref() == Some("frank@example.com")).unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("failed", 1));
    assert!(job.error.as_deref().unwrap_or("").contains("email domain not allowed"), "{job:?}");
    let request = w.requests().await.into_iter().find(|r| r.id == job.request_id).unwrap();
    assert_eq!((request.status.as_str(), request.failed), ("failed", 1));

    // The same SQS message delivered twice: one call on the app.
    w.demo.clear_events().await;
    w.create_user("gina@example.com").await;
    let delivery = w.receive(1).await.pop().expect("the job message");
    assert!(w.worker.handle_batch(std::slice::from_ref(&delivery)).await.is_empty());
    // Lambda lost the ack: the message comes back and is handled again.
    w.stack
        .sqs()
        .change_message_visibility()
        .queue_url(&w.stack.queue_url)
        .receipt_handle(delivery.receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let polled = w.source.poll_once(&handler(w.worker.clone())).await.unwrap();
    assert_eq!(polled.received, 1, "redelivered");
    let posts = w.demo.events().await.into_iter().filter(|e| e.method == "POST").count();
    assert_eq!(posts, 1, "the app saw one call");
}

#[tokio::test]
async fn the_sweeper_delivers_what_the_send_lost() {
    // The API's queue does not exist: its send fails after the commit.
    let endpoint = idlcm_tests::require_env("AWS_ENDPOINT_URL");
    let missing = format!("{}/123456789012/idlcm-missing-queue.fifo", endpoint.trim_end_matches('/'));
    let w = World::with(Options { api_queue_url: Some(missing) }).await;
    let (s, _) = w.call("POST", "/Users", Some(user_body("hana@example.com"))).await;
    assert_eq!(s, 201, "the write committed");
    let job = w.jobs().await.pop().expect("the job row");
    assert_eq!(job.status, "queued");
    let polled = w.source.poll_once(&|_| async { Vec::new() }).await.unwrap();
    assert_eq!(polled.received, 0, "nothing reached the queue");

    let queue = idlcm::queue::Queue::new(w.stack.sqs(), w.stack.queue_url.clone());
    let resent = idlcm::sweeper::sweep(&w.stack.store(), &queue, Duration::ZERO).await.unwrap();
    assert!(resent >= 1, "the sweeper re-sent the job");
    w.settle().await;
    assert!(w.app_user("hana@example.com").await.is_some(), "nothing was lost");
}

/// The `scim2-server` reference server from PyPI (installed by `make test` in .venv/scim).
struct ScimServer {
    child: std::process::Child,
    url: String,
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_scim_server(token: &str) -> ScimServer {
    let bin = std::env::var("IDLCM_SCIM2_SERVER")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/scim/bin/scim2-server").to_string());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(&bin)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", token])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}; run `make test` (it installs scim2-server in .venv/scim)"));
    // Owned at once: dropped (killed and reaped) on every path, panics included.
    let server = ScimServer { child, url: format!("http://127.0.0.1:{port}") };
    let http = idlcm::connector::http_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http.get(format!("{}/ServiceProviderConfig", server.url)).bearer_auth(token).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("scim2-server did not start on {}", server.url);
}

#[tokio::test]
async fn the_scim_connector_drives_a_third_party_scim_server() {
    let token = "scim-target-token";
    let server = start_scim_server(token).await;
    let stack = Stack::start().await;
    let scim = stack
        .create_integration_with(json!({
            "name": "SCIM app",
            "connector": {"type": "scim", "base_url": server.url, "secret": token},
            "roles": {"attribute": "roles", "groups": [{"group": "Admins", "role": "admin", "priority": 1}]},
            "attributes": ["userName", "name.givenName", "name.familyName", "emails[primary eq true].value"],
        }))
        .await;
    let worker = Arc::new(stack.worker());
    let source = stack.event_source();
    let settle = || settle(&stack, &worker, &source, &scim.id, SETTLE);
    let target = |filter: &str| {
        let url = format!("{}/Users?filter={}", server.url, urlencoding::encode(filter));
        async move {
            let v: Value =
                idlcm::connector::http_client().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            v["Resources"].as_array().cloned().unwrap_or_default()
        }
    };

    let (s, u) = scim.call(&stack.http, "POST", "/Users", Some(user_body("ivan@example.com"))).await;
    assert_eq!(s, 201);
    let uid = u["id"].as_str().unwrap().to_string();
    let (_, g) = scim
        .call(&stack.http, "POST", "/Groups", Some(json!({"displayName": "Admins", "members": [{"value": uid}]})))
        .await;
    assert!(g["id"].is_string());
    settle().await;
    let found = target("userName eq \"ivan@example.com\"").await;
    assert_eq!(found.len(), 1, "provisioned in the SCIM app");
    assert_eq!(found[0]["roles"][0]["value"], "admin");
    assert_eq!(found[0]["active"], true);

    let (s, _) = scim
        .call(
            &stack.http,
            "PATCH",
            &format!("/Users/{uid}"),
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        )
        .await;
    assert_eq!(s, 200);
    settle().await;
    assert_eq!(target("userName eq \"ivan@example.com\"").await[0]["active"], false);

    let (s, _) = scim.call(&stack.http, "DELETE", &format!("/Users/{uid}"), None).await;
    assert_eq!(s, 204);
    settle().await;
    assert!(target("userName eq \"ivan@example.com\"").await.is_empty(), "deprovisioned");
}

#[tokio::test]
async fn a_thousand_member_patch_provisions_everyone() {
    const N: usize = 1000;
    let w = World::new().await;
    let admins = w.create_group("App Admins").await;
    let uids = seed_users(&w, N).await;
    let calls_before = w.stack.api_calls.get();
    let value: Vec<Value> = uids.iter().map(|u| json!({"value": u})).collect();
    let started = Instant::now();
    let (s, v) = w
        .call(
            "PATCH",
            &format!("/Groups/{admins}"),
            Some(patch(json!([{"op": "add", "path": "members", "value": value}]))),
        )
        .await;
    let took = started.elapsed();
    let calls = w.stack.api_calls.get() - calls_before;
    assert_eq!(s, 204, "{v}");
    println!("PATCH adding {N} members: answered in {} ms with {calls} AWS calls", took.as_millis());
    assert!(took < Duration::from_secs(29), "the API Gateway limit is 30 s; took {took:?}");

    // Several pollers, as Lambda scales out over FIFO message groups.
    let started = Instant::now();
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            let (source, worker, demo) = (w.stack.event_source(), w.worker.clone(), w.demo.app().clone());
            tokio::spawn(async move {
                let done =
                    || async { demo.users().await.iter().filter(|u| u.role.as_deref() == Some("admin")).count() == N };
                source.run_until(handler(worker), done, Duration::from_secs(900)).await
            })
        })
        .collect();
    for p in pollers {
        assert!(p.await.unwrap(), "every user reached the app");
    }
    println!("{N} jobs applied in {} ms by 4 pollers", started.elapsed().as_millis());
    let users = w.demo.users().await;
    assert_eq!(users.len(), N);
    assert!(users.iter().all(|u| u.role.as_deref() == Some("admin") && u.active));
}

/// Stores `n` active users exactly as `POST /Users` would (resource, uniqueness rows, desired
/// assignment), but with BatchWriteItem: moto copies the whole table on every transaction, so
/// 1,000 transactional creates take minutes on the emulator (not on DynamoDB). The PATCH under
/// test takes the real path.
async fn seed_users(w: &World, n: usize) -> Vec<String> {
    use idlcm::assignment::effective::effective;
    use idlcm::integration::IntegrationConfig;
    use idlcm::store::provisioning::AssignRow;
    use idlcm::store::resources::Kind;

    let cfg = IntegrationConfig::from_json(demo_integration("Demo", &w.demo.url, DEMO_KEY)).unwrap();
    let now = idlcm::service::now();
    let mut ids = Vec::with_capacity(n);
    let mut items = Vec::new();
    for i in 0..n {
        let stored = idlcm_tests::world::stored_user(&format!("bulk{i:04}@example.com"), &now);
        items.extend(stored.items(&w.scim.id, Kind::User).unwrap());
        let desired = effective(&stored.doc, &[], &cfg);
        items.push(serde_dynamo::to_item(AssignRow::new(&w.scim.id, &stored.id, Some(&desired), 1, &now)).unwrap());
        ids.push(stored.id);
    }
    let client = aws_sdk_dynamodb::Client::new(&w.stack.aws);
    idlcm_tests::batch_put(&client, &w.stack.table, &items).await;
    ids
}

#[tokio::test]
async fn a_job_that_keeps_failing_ends_failed_with_its_last_error() {
    let mut w = World::new().await;
    // The worker gives up on the queue's last receive (here 2); SQS then redrives the message.
    let max_receives = 2;
    Arc::get_mut(&mut w.worker).expect("one owner").max_receives = max_receives;
    w.demo
        .inject(
            FaultSpec::new((0..4).map(|_| FaultResponse::status(503).retry_after(0))).matching("POST", "/api/users"),
        )
        .await
        .unwrap();
    w.create_user("kim@example.com").await;
    w.settle().await;
    let job = w.jobs().await.pop().unwrap();
    assert_eq!(job.status, "failed");
    assert_eq!(job.attempts, max_receives);
    let error = job.error.unwrap_or_default();
    assert!(error.contains("gave up after 2 attempts") && error.contains("503"), "{error}");
    assert!(w.app_user("kim@example.com").await.is_none());
}

/// Near the end of its invocation the worker hands the rest of the batch back (visible again
/// at once) instead of starting a job the timeout would cut: nothing runs, nothing is lost.
#[tokio::test]
async fn a_batch_near_the_invocation_deadline_goes_back_untouched() {
    let w = World::new().await;
    w.create_user("hana@example.com").await;
    w.create_user("ivan@example.com").await;
    let batch = w.receive(10).await;
    assert_eq!(batch.len(), 2, "both users' jobs in one batch");

    let soon = Instant::now() + idlcm::worker::JOB_BUDGET / 2;
    let failed = w.worker.handle_batch_until(&batch, Some(soon)).await;
    let ids: Vec<String> = batch.iter().map(|d| d.message_id.clone()).collect();
    assert_eq!(failed, ids, "every message handed back, in order");
    assert!(w.jobs().await.iter().all(|j| j.status == "queued" && j.attempts == 0), "no job was started");
    assert!(w.demo.users().await.is_empty(), "nothing reached the app");

    // Handed back visible at once: the next invocation, with time to spare, applies them.
    w.settle().await;
    assert_eq!(w.demo.users().await.len(), 2);
}

/// The worker dies after the app created the account and before idlcm recorded it: the
/// message comes back, and the retried provision finds the account (the connector's `lookup`)
/// and adopts it instead of creating a second one.
#[tokio::test]
async fn a_provision_whose_answer_was_lost_adopts_the_account_instead_of_creating_another() {
    let w = World::new().await;
    w.demo
        .inject(FaultSpec::new([FaultResponse::status(201).applied().delay_ms(3000)]).matching("POST", "/api/users"))
        .await
        .unwrap();
    w.create_user("lena@example.com").await;
    let batch = w.receive(10).await;
    assert_eq!(batch.len(), 1);
    let died = tokio::time::timeout(Duration::from_millis(1000), w.worker.handle(&batch[0])).await;
    assert!(died.is_err(), "the invocation was cut off while the app answered");
    assert_eq!(w.demo.users().await.len(), 1, "the app created the account");
    assert_eq!(w.jobs().await[0].status, "running", "idlcm never heard back");

    // The dead invocation's message comes back after its visibility timeout (now, here).
    w.stack
        .sqs()
        .change_message_visibility()
        .queue_url(&w.stack.queue_url)
        .receipt_handle(batch[0].receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    w.settle().await;
    let users = w.demo.users().await;
    assert_eq!(users.len(), 1, "one account, not two: {users:?}");
    let job = w.jobs().await.pop().unwrap();
    assert_eq!(job.status, "succeeded");
    let detail = job.detail.unwrap_or_default();
    assert!(detail.starts_with(&format!("adopted the app's existing account {}", users[0].id)), "{detail}");
    let applied = w.stack.store().get_applied(&w.scim.id, &job.user_id).await.unwrap().unwrap();
    assert_eq!(applied.app_id.as_deref(), Some(users[0].id.as_str()), "the app id is recorded");
    // Later changes reach that account.
    let (s, _) = w
        .call(
            "PATCH",
            &format!("/Users/{}", job.user_id),
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        )
        .await;
    assert_eq!(s, 200);
    w.settle().await;
    assert!(!w.app_user("lena@example.com").await.unwrap().active);
}
