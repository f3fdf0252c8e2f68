//! A whole provisioning world for tests: the API, the worker fed by an event source, and the
//! demo app, wired to one integration.

use std::sync::Arc;
use std::time::Duration;

use idlcm::store::keys;
use idlcm::store::provisioning::{JobRow, RequestRow};
use idlcm::worker::{Delivery, Worker};
use serde_json::{Value, json};

use crate::demo_app::{DemoApp, RunningDemo, User};
use crate::event_source::EventSource;
use crate::{Integration, Options, Stack, demo_integration};

pub const DEMO_KEY: &str = "demo-api-key-for-tests";
pub const SETTLE: Duration = Duration::from_secs(60);

pub fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// A user as the API would store it (for seeding thousands with `batch_put`, without
/// thousands of transactions on the emulator).
pub fn stored_user(name: &str, now: &str) -> idlcm::store::resources::Stored {
    let doc = idlcm::scim::resource::normalise(&idlcm::scim::schema::USER_TYPE, user_body(name)).expect("a user");
    idlcm::store::resources::Stored {
        id: ulid::Ulid::new().to_string(),
        doc,
        version: 1,
        created: now.to_string(),
        last_modified: now.to_string(),
    }
}

pub fn user_body(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": name, "type": "work", "primary": true}],
        "active": true,
    })
}

/// The API, the worker, an event source and the demo app, wired to one integration.
pub struct World {
    pub stack: Stack,
    pub demo: RunningDemo,
    pub scim: Integration,
    pub worker: Arc<Worker>,
    pub source: EventSource,
}

impl World {
    pub async fn new() -> World {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> World {
        Self::configured(options, |_| {}).await
    }

    /// A world whose demo integration's configuration `change` adjusts first (a role catalog).
    pub async fn configured(options: Options, change: impl FnOnce(&mut Value)) -> World {
        let stack = Stack::start_with(options).await;
        let demo = DemoApp::start(
            "127.0.0.1:0".parse().unwrap(),
            DEMO_KEY.into(),
            vec!["admin".into(), "user".into(), "viewer".into()],
        )
        .await
        .expect("demo app");
        let mut config = demo_integration("Demo", &demo.url, DEMO_KEY);
        change(&mut config);
        let scim = stack.create_integration_with(config).await;
        let worker = Arc::new(stack.worker());
        let source = stack.event_source();
        World { stack, demo, scim, worker, source }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.scim.call(&self.stack.http, method, path, body).await
    }

    pub async fn create_user(&self, name: &str) -> String {
        let (s, v) = self.call("POST", "/Users", Some(user_body(name))).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn create_group(&self, name: &str) -> String {
        let (s, v) = self.call("POST", "/Groups", Some(json!({"displayName": name}))).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn members(&self, gid: &str, op: &str, uids: &[&str]) {
        let value: Vec<Value> = uids.iter().map(|u| json!({"value": u})).collect();
        let body = match op {
            "remove" => patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", uids[0])}])),
            _ => patch(json!([{"op": op, "path": "members", "value": value}])),
        };
        let (s, v) = self.call("PATCH", &format!("/Groups/{gid}"), Some(body)).await;
        assert_eq!(s, 204, "{v}");
    }

    pub async fn jobs(&self) -> Vec<JobRow> {
        let items =
            self.stack.store().query_all(keys::integration_pk(&self.scim.id), "JOB#".into()).await.expect("jobs");
        items.into_iter().map(|i| serde_dynamo::from_item(i).expect("job row")).collect()
    }

    pub async fn requests(&self) -> Vec<RequestRow> {
        let items = self
            .stack
            .store()
            .query_all(keys::integration_pk(&self.scim.id), "REQUEST#".into())
            .await
            .expect("requests");
        items.into_iter().map(|i| serde_dynamo::from_item(i).expect("request row")).collect()
    }

    /// Feeds the queue to the worker until every job of the integration is finished.
    pub async fn settle(&self) {
        settle(&self.stack, &self.worker, &self.source, &self.scim.id, SETTLE).await;
    }

    /// Receives up to `max` job messages from the queue (2 s long poll), as Lambda hands them
    /// to the worker: first delivery.
    pub async fn receive(&self, max: i32) -> Vec<Delivery> {
        let received = self
            .stack
            .sqs()
            .receive_message()
            .queue_url(&self.stack.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(2)
            .send()
            .await
            .expect("ReceiveMessage");
        received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Delivery {
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle,
                body: m.body.unwrap_or_default(),
                receive_count: 1,
            })
            .collect()
    }

    pub async fn app_user(&self, email: &str) -> Option<User> {
        self.demo.users().await.into_iter().find(|u| u.email == email)
    }
}

/// The worker as Lambda would invoke it with one batch.
pub fn handler(
    worker: Arc<Worker>,
) -> impl Fn(Vec<Delivery>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>> {
    move |batch| {
        let worker = worker.clone();
        Box::pin(async move { worker.handle_batch(&batch).await })
    }
}

pub async fn all_jobs_done(store: &idlcm::store::Store, integration_id: &str) -> bool {
    let jobs = store.query_all(keys::integration_pk(integration_id), "JOB#".into()).await.expect("jobs");
    jobs.iter().all(|j| {
        matches!(
            j.get("status").and_then(|s| s.as_s().ok()).map(String::as_str),
            Some("succeeded" | "failed" | "superseded" | "drift")
        )
    })
}

/// Polls until every job of the integration is finished.
pub async fn settle(
    stack: &Stack,
    worker: &Arc<Worker>,
    source: &EventSource,
    integration_id: &str,
    timeout: Duration,
) {
    let store = stack.store();
    let done = || all_jobs_done(&store, integration_id);
    assert!(source.run_until(handler(worker.clone()), done, timeout).await, "jobs did not finish in {timeout:?}");
}
