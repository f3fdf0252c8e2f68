//! Test support: the real API router served over HTTP on 127.0.0.1, talking to the moto
//! emulator through the AWS SDK; the real worker fed by a local SQS event source; the demo
//! app as the external target. `make test` starts moto and creates the table and queues from
//! `template.yaml`, then exports `AWS_ENDPOINT_URL`, `IDLCM_TABLE` and `IDLCM_JOBS_QUEUE_URL`.

pub mod aws_calls;
pub mod capacity;
pub mod demo_app;
pub mod event_source;
pub mod openapi;
pub mod robot;
pub mod world;

use aws_sdk_sqs::types::QueueAttributeName;
use idlcm::store::Store;
use idlcm::worker::Worker;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// A running API: its base URL, an HTTP client, and the AWS pieces behind it.
pub struct Stack {
    pub api_url: String,
    pub http: reqwest::Client,
    pub aws: aws_config::SdkConfig,
    pub table: String,
    /// This stack's own table and job queue (copies of the template's, so parallel tests never
    /// share data or messages).
    pub queue_url: String,
    /// The job queue's dead-letter queue (the template's redrive policy).
    pub dlq_url: String,
    /// Counts the AWS calls the API made.
    pub api_calls: aws_calls::Counter,
    /// Counts the AWS calls the workers of [`Stack::worker`] made.
    pub worker_calls: aws_calls::Counter,
}

/// One integration's SCIM endpoint and token.
#[derive(Debug, Clone)]
pub struct Integration {
    pub id: String,
    pub scim_base_url: String,
    pub token: String,
}

pub fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `make test`, which starts the moto emulator and creates the table"
        )
    })
}

/// A fresh FIFO queue (and DLQ) with the attributes of the template's job queue: their URLs.
pub async fn clone_job_queue(sqs: &aws_sdk_sqs::Client, template_url: &str) -> (String, String) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(template_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes on the template's job queue")
        .attributes
        .unwrap_or_default();
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("test-dlq-{suffix}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create DLQ")
        .queue_url
        .expect("DLQ url");
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("DLQ arn")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("DLQ arn");
    let max_receives: Value = attrs
        .get(&QueueAttributeName::RedrivePolicy)
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .map(|p| p["maxReceiveCount"].clone())
        .expect("the template's job queue has a redrive policy");
    let mut create = sqs
        .create_queue()
        .queue_name(format!("test-jobs-{suffix}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives }).to_string(),
        );
    for name in [QueueAttributeName::VisibilityTimeout, QueueAttributeName::ContentBasedDeduplication] {
        if let Some(v) = attrs.get(&name) {
            create = create.attributes(name, v);
        }
    }
    (create.send().await.expect("create job queue").queue_url.expect("queue url"), dlq)
}

/// A fresh table with the key schema and indexes of the template's table, so every test has
/// its own (the emulator copies a whole table on each transaction: small tables stay fast).
pub async fn clone_table(dynamodb: &aws_sdk_dynamodb::Client, template_table: &str) -> String {
    use aws_sdk_dynamodb::types::{BillingMode, GlobalSecondaryIndex, Projection};
    let desc = dynamodb
        .describe_table()
        .table_name(template_table)
        .send()
        .await
        .expect("DescribeTable on the template's table")
        .table
        .expect("table description");
    let name = format!("test-{}", ulid::Ulid::new().to_string().to_lowercase());
    let gsis: Vec<GlobalSecondaryIndex> = desc
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            GlobalSecondaryIndex::builder()
                .index_name(g.index_name().unwrap_or_default())
                .set_key_schema(Some(g.key_schema().to_vec()))
                .projection(g.projection().cloned().unwrap_or_else(|| Projection::builder().build()))
                .build()
                .expect("GSI")
        })
        .collect();
    dynamodb
        .create_table()
        .table_name(&name)
        .set_key_schema(Some(desc.key_schema().to_vec()))
        .set_attribute_definitions(Some(desc.attribute_definitions().to_vec()))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable");
    name
}

/// Writes items with BatchWriteItem (25 at a time, unprocessed ones again): test data that is
/// stored exactly as the code stores it, without 1,000s of transactions on the emulator.
pub async fn batch_put(client: &aws_sdk_dynamodb::Client, table: &str, items: &[idlcm::store::Item]) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                let put = PutRequest::builder().set_item(Some(i.clone())).build().expect("put request");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        while !requests.is_empty() {
            let out = client.batch_write_item().request_items(table, requests).send().await.expect("BatchWriteItem");
            requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        }
    }
}

static METRICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Every EMF line emitted in this test process so far (the in-process API and workers).
pub fn captured_metrics() -> Vec<Value> {
    let lines = METRICS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lines.iter().map(|l| serde_json::from_str(l).expect("an EMF line is JSON")).collect()
}

/// How to start a stack.
#[derive(Default)]
pub struct Options {
    /// Give the API this queue URL instead of the stack's (to make its sends fail).
    pub api_queue_url: Option<String>,
}

impl Stack {
    /// Starts the API in-process on an ephemeral loopback port.
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Stack {
        // Logs of the API and worker, with `RUST_LOG=info cargo test …`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // Metrics go to `captured_metrics()` rather than the test's stdout.
        idlcm::metrics::set_sink(|line| METRICS.lock().unwrap_or_else(|e| e.into_inner()).push(line.to_owned()));
        require_env("AWS_ENDPOINT_URL");
        let aws = idlcm::config::aws_config().await;
        let table = clone_table(&aws_sdk_dynamodb::Client::new(&aws), &require_env("IDLCM_TABLE")).await;
        let (queue_url, dlq_url) =
            clone_job_queue(&aws_sdk_sqs::Client::new(&aws), &require_env("IDLCM_JOBS_QUEUE_URL")).await;
        let api_calls = aws_calls::Counter::default();
        let api_queue_url = options.api_queue_url.unwrap_or_else(|| queue_url.clone());
        let api_url = serve_api(&aws, &table, &api_queue_url, &api_calls).await;
        let worker_calls = aws_calls::Counter::default();
        Stack {
            api_url,
            http: idlcm::connector::http_client(),
            aws,
            table,
            queue_url,
            dlq_url,
            api_calls,
            worker_calls,
        }
    }

    /// One more API instance on the same table and queue (its own in-memory state, as a
    /// second warm Lambda instance has); its URL.
    pub async fn another_api(&self) -> String {
        serve_api(&self.aws, &self.table, &self.queue_url, &aws_calls::Counter::default()).await
    }

    pub fn store(&self) -> Store {
        Store::new(aws_sdk_dynamodb::Client::new(&self.aws), self.table.clone())
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.aws)
    }

    /// The worker as the Lambda runs it, on this stack's queue.
    pub fn worker(&self) -> Worker {
        let counted = self.worker_calls.clone();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.aws).interceptor(counted.clone()).build(),
        );
        let sqs =
            aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&self.aws).interceptor(counted).build());
        Worker {
            store: Store::new(dynamodb, self.table.clone()),
            queue: idlcm::queue::Queue::new(sqs, self.queue_url.clone()),
            http: idlcm::connector::OutboundClients::new(true),
            secrets: idlcm::secrets::Secrets::new(&self.aws),
            max_receives: 5,
            public_url: Some(self.api_url.clone()),
            job_deadline: std::time::Duration::from_secs(idlcm::config::DEFAULT_JOB_DEADLINE_SECONDS),
            per_integration: idlcm::worker::PER_INTEGRATION,
        }
    }

    pub fn queue(&self) -> idlcm::queue::Queue {
        idlcm::queue::Queue::new(self.sqs(), self.queue_url.clone())
    }

    pub fn dlq(&self) -> idlcm::queue::Queue {
        idlcm::queue::Queue::new(self.sqs(), self.dlq_url.clone())
    }

    /// An admin API call: status and JSON body (Null when empty).
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}/admin{path}", self.api_url)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    pub fn event_source(&self) -> event_source::EventSource {
        event_source::EventSource::new(self.sqs(), self.queue_url.clone())
    }

    /// Creates an integration with a webhook connector that nothing listens to.
    pub async fn create_integration(&self, name: &str) -> Integration {
        self.create_integration_with(json!({
            "name": name,
            "connector": {"type": "webhook", "url": "http://127.0.0.1:9/unused", "secret": "test"},
            "roles": {"attribute": "roles", "groups": [], "default": null},
            "attributes": ["userName"],
        }))
        .await
    }

    /// Creates an integration through the admin API (a fresh partition: tests never collide).
    pub async fn create_integration_with(&self, config: Value) -> Integration {
        let resp = self
            .http
            .post(format!("{}/admin/integrations", self.api_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&config)
            .send()
            .await
            .expect("POST /admin/integrations");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 201, "create integration: {v}");
        Integration {
            id: v["id"].as_str().expect("id").to_string(),
            scim_base_url: v["scim_base_url"].as_str().expect("scim_base_url").to_string(),
            token: v["token"].as_str().expect("token").to_string(),
        }
    }
}

/// Starts the API on a loopback port, its AWS calls counted by `calls`; returns its URL.
async fn serve_api(aws: &aws_config::SdkConfig, table: &str, queue_url: &str, calls: &aws_calls::Counter) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
    let api_url = format!("http://{}", listener.local_addr().expect("local addr"));
    let config = idlcm::config::Config {
        table: table.to_string(),
        admin_token: idlcm::config::AdminTokenHashes::Inline(vec![idlcm::auth::hash_token(ADMIN_TOKEN)]),
        public_url: Some(api_url.clone()),
        jobs_queue_url: queue_url.to_string(),
        history_days: idlcm::config::DEFAULT_HISTORY_DAYS,
        // Longer than the history: audit entries outlive Activity (tests/owners.rs).
        audit_days: 400,
        // Demo apps and robots listen on 127.0.0.1.
        allow_loopback_connectors: true,
    };
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws).interceptor(calls.clone()).build(),
    );
    let sqs =
        aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(aws).interceptor(calls.clone()).build());
    let state = scim_api::AppState::with_clients(config, dynamodb, sqs, idlcm::secrets::Secrets::new(aws));
    let app = scim_api::router(state);
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    api_url
}

/// The demo app's integration (`infra/demo-integration.json`, which `make run` uses too): the
/// `http` connector with templates for its REST API, roles from the core `roles` attribute or
/// the groups "App Admins" (admin) and "App Users" (user).
pub fn demo_integration(name: &str, demo_url: &str, api_key: &str) -> Value {
    let text = include_str!("../../infra/demo-integration.json")
        .replace("@DEMO_URL@", demo_url)
        .replace("@DEMO_KEY@", api_key);
    let mut v: Value = serde_json::from_str(&text).expect("infra/demo-integration.json");
    v["name"] = json!(name);
    v
}

impl Integration {
    /// Sends a SCIM request; returns status and parsed JSON body (Null when empty).
    pub async fn call(&self, http: &reqwest::Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = http.request(m, format!("{}{}", self.scim_base_url, path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json").body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, v)
    }
}
