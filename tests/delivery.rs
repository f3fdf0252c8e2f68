//! Every IdP change reaches the app, whatever the robot does: a webhook robot that answers
//! `202` and calls back later, callbacks bound to their job and time, callbacks that never
//! come, jobs lost mid-run and dead-lettered messages. The API in-process on 127.0.0.1,
//! DynamoDB and SQS on moto, the real worker and sweeper, a real robot on loopback.

use std::sync::Arc;
use std::time::Duration;

use idlcm::connector::webhook::sign_at;
use idlcm::store::keys;
use idlcm::store::provisioning::{JobRow, RequestRow};
use idlcm::worker::Worker;
use idlcm_tests::robot::Robot;
use idlcm_tests::world::{handler, patch, user_body};
use idlcm_tests::{Integration, Stack};
use serde_json::{Value, json};

const SECRET: &str = "robot-shared-secret";

struct Setup {
    stack: Stack,
    robot: Robot,
    hook: Integration,
    worker: Arc<Worker>,
}

async fn setup(callback_timeout_seconds: u64) -> Setup {
    let robot = Robot::start().await;
    let stack = Stack::start().await;
    let hook = stack
        .create_integration_with(json!({
            "name": "Robot app",
            "connector": {"type": "webhook", "url": robot.url, "secret": SECRET},
            "attributes": ["userName"],
            "callback_timeout_seconds": callback_timeout_seconds,
        }))
        .await;
    let worker = Arc::new(stack.worker());
    Setup { stack, robot, hook, worker }
}

impl Setup {
    async fn scim(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.hook.call(&self.stack.http, method, path, body).await
    }

    /// Feeds the queue to the worker until the robot has received `n` deliveries and the
    /// queue is idle.
    async fn deliver_until(&self, n: usize) {
        let robot = self.robot.clone();
        let ok = self
            .stack
            .event_source()
            .run_until(handler(self.worker.clone()), || async { robot.received().len() >= n }, Duration::from_secs(30))
            .await;
        assert!(ok, "the robot got {} deliveries, expected {n}", self.robot.received().len());
    }

    /// Feeds the queue to the worker until it is idle.
    async fn drain(&self) {
        self.stack
            .event_source()
            .run_until(handler(self.worker.clone()), || async { true }, Duration::from_secs(30))
            .await;
    }

    async fn jobs(&self) -> Vec<JobRow> {
        let items = self.stack.store().query_all(keys::integration_pk(&self.hook.id), "JOB#".into()).await.unwrap();
        items.into_iter().map(|i| serde_dynamo::from_item(i).unwrap()).collect()
    }

    async fn job(&self, id: &str) -> JobRow {
        self.stack.store().get_job(&self.hook.id, id).await.unwrap().expect("job")
    }

    async fn request_of(&self, job: &JobRow) -> RequestRow {
        self.stack.store().get_request(&self.hook.id, &job.request_id).await.unwrap().expect("request")
    }

    /// Posts a callback for `url_job` with `body`, signed at `t` (default now).
    async fn callback_raw(&self, url_job: &str, body: &Value, t: Option<i64>) -> u16 {
        let body = body.to_string();
        let t = t.unwrap_or_else(|| chrono::Utc::now().timestamp());
        let url = format!("{}/callbacks/{}/jobs/{url_job}", self.stack.api_url, self.hook.id);
        let resp = self
            .stack
            .http
            .post(url)
            .header("x-idlcm-signature", sign_at(SECRET.as_bytes(), t, body.as_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    async fn callback(&self, job_id: &str, status: &str) -> u16 {
        self.callback_raw(job_id, &json!({"job_id": job_id, "status": status, "detail": "done by the robot"}), None)
            .await
    }

    async fn sweep_overdue(&self) -> usize {
        idlcm::sweeper::fail_overdue(&self.stack.store(), &self.stack.queue()).await.unwrap()
    }
}

#[tokio::test]
async fn a_deactivation_waits_for_the_pending_provision_and_then_reaches_the_robot() {
    let s = setup(3600).await;
    let (st, v) = s.scim("POST", "/Users", Some(user_body("judy@example.com"))).await;
    assert_eq!(st, 201, "{v}");
    let uid = v["id"].as_str().unwrap().to_string();
    s.deliver_until(1).await;
    let first = &s.robot.received()[0];
    assert_eq!(
        idlcm::connector::webhook::verify(SECRET.as_bytes(), &first.body, &first.signature),
        Ok(()),
        "the delivery is signed t=…,v1=… over \"<t>.<body>\": {}",
        first.signature
    );
    assert_eq!(first.json()["action"], "provision");
    let provision = first.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(s.job(&provision).await.status, "running", "202 leaves the job in progress");

    // The IdP deactivates while the provision awaits its callback: the deactivation waits.
    let (st, _) = s
        .scim("PATCH", &format!("/Users/{uid}"), Some(patch(json!([{"op": "replace", "value": {"active": false}}]))))
        .await;
    assert_eq!(st, 200);
    s.drain().await;
    let deactivation = s.jobs().await.into_iter().find(|j| j.action == "deactivate").expect("a deactivation job");
    assert_eq!(s.robot.actions(), ["provision"], "nothing more delivered while the provision is unconfirmed");
    assert_eq!(deactivation.status, "queued", "{deactivation:?}");
    assert_eq!(deactivation.waiting_for.as_deref(), Some(provision.as_str()));
    assert_eq!(s.request_of(&deactivation).await.status, "requested", "not shown succeeded before delivery");

    // Callbacks that must not count: stale, signed for another job, or naming another job.
    let report = json!({"job_id": provision, "status": "succeeded", "detail": "account created"});
    let stale = chrono::Utc::now().timestamp() - 400;
    assert_eq!(s.callback_raw(&provision, &report, Some(stale)).await, 401, "stale signature");
    assert_eq!(s.callback_raw(&deactivation.id, &report, None).await, 401, "body names another job than the URL");
    let other = json!({"job_id": deactivation.id, "status": "succeeded"});
    assert_eq!(s.callback_raw(&provision, &other, None).await, 401, "signed for another job");
    assert_eq!(s.job(&provision).await.status, "running", "refused callbacks change nothing");

    // The real callback: the waiting deactivation is woken and delivered.
    assert_eq!(s.callback_raw(&provision, &report, None).await, 200);
    assert_eq!(s.callback(&provision, "succeeded").await, 409, "one terminal callback per delivery");
    assert_eq!(s.job(&provision).await.status, "succeeded");
    s.deliver_until(2).await;
    assert_eq!(s.robot.actions(), ["provision", "deactivate"]);
    let delivered = s.robot.received()[1].json();
    assert_eq!(delivered["job_id"], deactivation.id.as_str());
    assert_eq!(
        (delivered["before"]["active"].clone(), delivered["after"]["active"].clone()),
        (json!(true), json!(false))
    );
    let running = s.job(&deactivation.id).await;
    assert_eq!(running.status, "running", "awaiting its own callback");
    assert_ne!(s.request_of(&running).await.status, "succeeded", "succeeded only once the robot confirms");

    assert_eq!(s.callback(&deactivation.id, "succeeded").await, 200);
    let done = s.job(&deactivation.id).await;
    assert_eq!(done.status, "succeeded");
    assert_eq!(s.request_of(&done).await.status, "succeeded");
    let applied = s.stack.store().get_applied(&s.hook.id, &uid).await.unwrap().unwrap();
    assert_eq!(applied.applied().map(|a| a.active), Some(false), "idlcm records the user inactive in the app");
    assert!(applied.pending_job.is_none());
}

#[tokio::test]
async fn a_callback_that_never_comes_fails_the_job_and_a_retry_delivers_again() {
    let s = setup(4).await;
    let (st, _) = s.scim("POST", "/Users", Some(user_body("kate@example.com"))).await;
    assert_eq!(st, 201);
    s.deliver_until(1).await;
    let job_id = s.robot.received()[0].json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(s.sweep_overdue().await, 0, "not overdue yet");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(s.sweep_overdue().await, 1);
    let failed = s.job(&job_id).await;
    assert_eq!(failed.status, "failed");
    assert!(failed.error.as_deref().unwrap_or("").contains("no callback"), "{:?}", failed.error);
    assert_eq!(s.request_of(&failed).await.status, "failed");
    assert_eq!(s.callback(&job_id, "succeeded").await, 409, "a late callback is refused");

    let (st, v) = s.stack.admin("POST", &format!("/integrations/{}/jobs/{job_id}/retry", s.hook.id), None).await;
    assert_eq!(st, 202, "{v}");
    s.deliver_until(2).await;
    assert_eq!(s.robot.received()[1].json()["job_id"], job_id.as_str());
    assert_eq!(s.callback(&job_id, "succeeded").await, 200);
    let done = s.job(&job_id).await;
    assert_eq!(done.status, "succeeded");
    assert_eq!(s.request_of(&done).await.status, "succeeded");
}

#[tokio::test]
async fn a_job_lost_mid_run_and_a_dead_lettered_job_end_failed_and_retry_delivers_them() {
    let mut s = setup(3600).await;
    Arc::get_mut(&mut s.worker).expect("one owner").job_deadline = Duration::from_secs(1);
    s.robot.answer(200);

    // Lost mid-run: the invocation dies while the robot is still answering.
    s.robot.delay(3000);
    let (st, _) = s.scim("POST", "/Users", Some(user_body("lost@example.com"))).await;
    assert_eq!(st, 201);
    let received = s.stack.sqs().receive_message().queue_url(&s.stack.queue_url).wait_time_seconds(2).send().await;
    let m = received.unwrap().messages.unwrap_or_default().pop().expect("the job's message");
    let delivery = idlcm::worker::Delivery {
        message_id: m.message_id.clone().unwrap(),
        receipt_handle: m.receipt_handle.clone(),
        body: m.body.clone().unwrap(),
        receive_count: 1,
    };
    let died = tokio::time::timeout(Duration::from_millis(800), s.worker.handle(&delivery)).await;
    assert!(died.is_err(), "the invocation was cut off mid-call");
    let lost = s.jobs().await.pop().unwrap();
    assert_eq!(lost.status, "running");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.sweep_overdue().await, 1);
    let lost = s.job(&lost.id).await;
    assert_eq!(lost.status, "failed");
    assert!(lost.error.as_deref().unwrap_or("").contains("no result before the job's deadline"), "{:?}", lost.error);

    // Dead-lettered: SQS hands the message out until maxReceiveCount, no invocation finishes.
    s.robot.delay(0);
    let (st, _) = s.scim("POST", "/Users", Some(user_body("dead@example.com"))).await;
    assert_eq!(st, 201);
    let dead = s.jobs().await.into_iter().find(|j| j.user_name.as_deref() == Some("dead@example.com")).unwrap();
    let sqs = s.stack.sqs();
    let mut receives = 0;
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(&s.stack.queue_url)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        receives += out.messages.unwrap_or_default().len();
        let in_dlq = sqs
            .get_queue_attributes()
            .queue_url(&s.stack.dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        let n = in_dlq.attributes.unwrap_or_default();
        if n.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).is_some_and(|v| v != "0") {
            break;
        }
    }
    assert!(receives >= 5, "received {receives} times before the redrive");
    let recorded =
        idlcm::sweeper::record_dead_letters(&s.stack.store(), &s.stack.queue(), &s.stack.dlq()).await.unwrap();
    assert_eq!(recorded, 1);
    let dead = s.job(&dead.id).await;
    assert_eq!(dead.status, "failed");
    assert!(dead.error.as_deref().unwrap_or("").starts_with("dead-lettered"), "{:?}", dead.error);
    assert_eq!(
        idlcm::sweeper::record_dead_letters(&s.stack.store(), &s.stack.queue(), &s.stack.dlq()).await.unwrap(),
        0,
        "the DLQ message was deleted once recorded"
    );

    // The dead invocation's message comes back once its visibility timeout ends (360 s in
    // AWS; now here): until then SQS holds the user's FIFO group, retry included.
    sqs.change_message_visibility()
        .queue_url(&s.stack.queue_url)
        .receipt_handle(m.receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();

    // Both retried from Activity: delivered, and the robot's 200 ends them.
    for job in [&lost, &dead] {
        let (st, v) = s.stack.admin("POST", &format!("/integrations/{}/jobs/{}/retry", s.hook.id, job.id), None).await;
        assert_eq!(st, 202, "{v}");
    }
    s.drain().await;
    for job in [&lost, &dead] {
        assert_eq!(s.job(&job.id).await.status, "succeeded");
        assert_eq!(s.request_of(job).await.status, "succeeded");
    }
    let delivered: Vec<String> =
        s.robot.received().iter().map(|r| r.json()["user"]["userName"].as_str().unwrap().to_string()).collect();
    assert!(delivered.contains(&"dead@example.com".to_string()) && delivered.contains(&"lost@example.com".to_string()));
}

/// The robot calls back `succeeded` while its own answer to the delivery is still on the way
/// (and is then a 503): the callback finishes the job, and the worker, seeing it finished,
/// neither retries it nor counts it again.
#[tokio::test]
async fn a_callback_that_beats_the_robots_answer_is_counted_once() {
    let s = setup(3600).await;
    s.robot.answer(503);
    s.robot.delay(1500);
    let (st, _) = s.scim("POST", "/Users", Some(user_body("quick@example.com"))).await;
    assert_eq!(st, 201);
    let out = s.stack.sqs().receive_message().queue_url(&s.stack.queue_url).wait_time_seconds(2).send().await.unwrap();
    let m = out.messages.unwrap_or_default().pop().expect("the job's message");
    let d = idlcm::worker::Delivery {
        message_id: m.message_id.unwrap(),
        receipt_handle: m.receipt_handle,
        body: m.body.unwrap(),
        receive_count: 1,
    };
    let worker = s.worker.clone();
    let running = tokio::spawn(async move { worker.handle(&d).await });
    for _ in 0..100 {
        if !s.robot.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job_id = s.robot.received()[0].json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(s.callback(&job_id, "succeeded").await, 200, "the delivery is pending: the callback counts");
    assert_eq!(running.await.unwrap(), idlcm::worker::Disposition::Ack, "no retry of a finished job");
    let job = s.job(&job_id).await;
    assert_eq!(job.status, "succeeded");
    let request = s.request_of(&job).await;
    assert_eq!((request.status.as_str(), request.total, request.succeeded, request.failed), ("succeeded", 1, 1, 0));
}

#[tokio::test]
async fn a_batch_runs_different_users_at_once_but_at_most_four_of_one_integration() {
    let s = setup(3600).await;
    s.robot.answer(200);
    s.robot.delay(300);
    for n in 0..8 {
        let (status, body) = s.scim("POST", "/Users", Some(user_body(&format!("c{n}@example.com")))).await;
        assert_eq!(status, 201, "{body}");
    }
    s.deliver_until(8).await;
    s.drain().await;
    let most = s.robot.max_in_flight();
    assert!(
        (2..=idlcm::worker::PER_INTEGRATION).contains(&most),
        "{most} deliveries at once: users run concurrently, bounded per integration"
    );
    let jobs = s.jobs().await;
    assert_eq!(jobs.len(), 8);
    assert!(jobs.iter().all(|j| j.status == "succeeded"), "{:?}", jobs.iter().map(|j| &j.status).collect::<Vec<_>>());
}
