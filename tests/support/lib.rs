//! Test support: the real API router served over HTTP on 127.0.0.1, talking to the moto
//! emulator through the AWS SDK. `make test` starts moto and creates the table from
//! `template.yaml`, then exports `AWS_ENDPOINT_URL` and `IDLCM_TABLE`.

use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// A running API: its base URL and an HTTP client.
pub struct Stack {
    pub api_url: String,
    pub http: reqwest::Client,
}

/// One integration's SCIM endpoint and token.
#[derive(Debug, Clone)]
pub struct Integration {
    pub id: String,
    pub scim_base_url: String,
    pub token: String,
}

fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `make test`, which starts the moto emulator and creates the table"
        )
    })
}

impl Stack {
    /// Starts the API in-process on an ephemeral loopback port.
    pub async fn start() -> Stack {
        require_env("AWS_ENDPOINT_URL");
        let table = require_env("IDLCM_TABLE");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let api_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let config = idlcm::config::Config {
            table,
            admin_token_sha256: idlcm::auth::hash_token(ADMIN_TOKEN),
            public_url: Some(api_url.clone()),
        };
        let aws = idlcm::config::aws_config().await;
        let state = scim_api::AppState::new(config, aws_sdk_dynamodb::Client::new(&aws));
        let app = scim_api::router(state);
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Stack { api_url, http: reqwest::Client::new() }
    }

    /// Creates an integration through the admin API (a fresh partition: tests never collide).
    pub async fn create_integration(&self, name: &str) -> Integration {
        let resp = self
            .http
            .post(format!("{}/admin/integrations", self.api_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "name": name,
                "connector": {"type": "webhook", "url": "http://127.0.0.1:9/unused", "secret": "test"},
                "roles": {"attribute": "roles", "groups": [], "default": null},
                "attributes": ["userName"],
            }))
            .send()
            .await
            .expect("POST /admin/integrations");
        assert_eq!(resp.status().as_u16(), 201, "create integration");
        let v: Value = resp.json().await.expect("json");
        Integration {
            id: v["id"].as_str().expect("id").to_string(),
            scim_base_url: v["scim_base_url"].as_str().expect("scim_base_url").to_string(),
            token: v["token"].as_str().expect("token").to_string(),
        }
    }
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
