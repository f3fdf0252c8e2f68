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

    /// Seeds `n` active users (`member00000@example.com`, …) in bulk, as if provisioned: their
    /// users, assignments and applied rows, their accounts in the demo app and, with `group`
    /// (`(id, displayName)`), their memberships and the role it grants. Returns their ids.
    pub async fn seed_provisioned(&self, group: Option<(&str, &str)>, n: usize) -> Vec<String> {
        let w = self;
        use idlcm::assignment::effective::effective;
        use idlcm::integration::IntegrationConfig;
        use idlcm::store::provisioning::{AppliedRow, AssignRow, assignment_json};
        use idlcm::store::resources::Kind;
        use idlcm::store::{key, s};

        let cfg = IntegrationConfig::from_json(crate::demo_integration("Demo", &w.demo.url, DEMO_KEY)).unwrap();
        let now = idlcm::service::now();
        let pk = keys::integration_pk(&w.scim.id);
        let (mut ids, mut items) = (Vec::with_capacity(n), Vec::new());
        for i in 0..n {
            let email = format!("member{i:05}@example.com");
            let stored = stored_user(&email, &now);
            let groups: Vec<String> = group.iter().map(|(_, name)| name.to_lowercase()).collect();
            let desired = effective(&stored.doc, &groups, &cfg);
            let created: Value = w
                .stack
                .http
                .post(format!("{}/api/users", w.demo.url))
                .bearer_auth(DEMO_KEY)
                .json(&json!({"email": email, "given_name": "Given", "family_name": "Family",
                              "role": desired.role, "active": true}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let app_id = created["id"].as_str().expect("demo app id").to_string();
            items.extend(stored.items(&w.scim.id, Kind::User).unwrap());
            items.push(serde_dynamo::to_item(AssignRow::new(&w.scim.id, &stored.id, Some(&desired), 1, &now)).unwrap());
            let applied = AppliedRow {
                pk: pk.clone(),
                sk: keys::applied_sk(&stored.id),
                user_id: stored.id.clone(),
                applied: assignment_json(Some(&desired)),
                seq: 1,
                app_id: Some(app_id),
                updated_at: now.clone(),
                pending_job: None,
                pending_sent: None,
                pending_seq: None,
            };
            items.push(serde_dynamo::to_item(applied).unwrap());
            for sk in group
                .iter()
                .flat_map(|(gid, _)| [keys::member_sk(gid, &stored.id), keys::member_of_sk(&stored.id, gid)])
            {
                let gid = group.map(|(g, _)| g).unwrap_or_default();
                let mut row = key(pk.clone(), sk);
                row.insert("group_id".into(), s(gid));
                row.insert("user_id".into(), s(&stored.id));
                items.push(row);
            }
            ids.push(stored.id);
        }
        crate::batch_put(&aws_sdk_dynamodb::Client::new(&w.stack.aws), &w.stack.table, &items).await;
        ids
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
