//! `webhook` connector: POSTs the job to a URL the customer runs, signed with HMAC-SHA256
//! (DESIGN.md §5 "Webhook delivery"). A 2xx ends the job; `202 Accepted` leaves it open until
//! the receiver calls back, with the same signature scheme ([`verify`]).

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::{BoxFuture, Connector, ConnectorError, Job, Outcome, classify, permanent, request, resolve_secret, send};
use crate::assignment::{Action, Assignment};

/// The header carrying `sha256=<hex>` of the raw body.
pub const SIGNATURE_HEADER: &str = "X-Idlcm-Signature";

type HmacSha256 = Hmac<Sha256>;

/// `{ "type": "webhook", "url", "secret" | "secret_ref" }`; a secret is required.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| super::REDACTED))
            .field("secret_ref", &self.secret_ref)
            .finish()
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (`sha256=<hex>`) is the signature of `body` under `secret`; constant-time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The delivered JSON, in the documented key order.
#[derive(Serialize)]
struct Delivery<'a> {
    job_id: &'a str,
    integration_id: &'a str,
    action: Action,
    user: &'a Value,
    before: Option<&'a Assignment>,
    after: Option<&'a Assignment>,
}

pub struct WebhookConnector {
    url: reqwest::Url,
    secret: String,
    http: reqwest::Client,
}

impl WebhookConnector {
    pub fn new(config: &WebhookConfig, http: reqwest::Client) -> Result<Self, ConnectorError> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| permanent(format!("webhook url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(permanent("webhook url must be http or https"));
        }
        let secret = resolve_secret(config.secret.as_deref(), config.secret_ref.as_deref())?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| permanent("webhook connector needs a 'secret' or 'secret_ref' to sign deliveries"))?;
        Ok(WebhookConnector { url, secret, http })
    }

    async fn deliver(&self, job: &Job<'_>) -> Result<Outcome, ConnectorError> {
        let delivery = Delivery {
            job_id: job.job_id,
            integration_id: job.integration_id,
            action: job.action,
            user: job.user,
            before: job.before,
            after: job.after,
        };
        let body = serde_json::to_vec(&delivery).map_err(|e| permanent(format!("webhook payload: {e}")))?;
        let signature = sign(self.secret.as_bytes(), &body);
        let resp = send(
            request(&self.http, reqwest::Method::POST, self.url.as_str())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body),
        )
        .await?;
        let status = resp.status();
        let (code, text) = classify(resp).await?;
        let detail = Some(super::status_line(status));
        tracing::debug!(job_id = job.job_id, status = code, "webhook delivered");
        if code == 202 {
            return Ok(Outcome::Accepted { detail });
        }
        // A receiver may name the app-side id it created: `{ "app_id": "…" }`.
        let app_id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| match v.get("app_id") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .or_else(|| job.app_id.map(str::to_owned));
        Ok(Outcome::Done { app_id, detail })
    }
}

impl Connector for WebhookConnector {
    fn apply<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Outcome, ConnectorError>> {
        Box::pin(self.deliver(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::testutil::*;
    use crate::connector::{ConnectorConfig, build};

    const SECRET: &str = "whsec-test";

    fn connector(url: &str) -> Box<dyn Connector> {
        let config = ConnectorConfig::Webhook(WebhookConfig {
            url: format!("{url}/hook"),
            secret: Some(SECRET.into()),
            secret_ref: None,
        });
        build(&config, crate::connector::http_client()).unwrap()
    }

    #[tokio::test]
    async fn delivery_is_signed_over_the_raw_body() {
        let server = TestServer::start(|_| (200, vec![], String::new())).await;
        let user = user();
        let after = assignment(true, Some("admin"));
        let job = job(Action::Provision, &user, None, Some(&after), None);
        let outcome = connector(&server.base).apply(&job).await.unwrap();
        assert_eq!(outcome, Outcome::Done { app_id: None, detail: Some("200 OK".into()) });

        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let req = &reqs[0];
        assert_eq!((req.method.as_str(), req.uri.as_str()), ("POST", "/hook"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert!(req.header("user-agent").unwrap().starts_with("idlcm/"));

        // Recompute the signature independently over the exact bytes received.
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&req.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(req.header("x-idlcm-signature"), Some(expected.as_str()));

        let body = req.json();
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["job_id", "integration_id", "action", "user", "before", "after"]);
        assert_eq!(body["action"], "provision");
        assert_eq!(body["before"], Value::Null);
        assert_eq!(body["after"], serde_json::json!({ "active": true, "role": "admin", "attributes": {} }));
        assert_eq!(body["user"], user);
    }

    #[tokio::test]
    async fn accepted_and_app_id_and_errors() {
        let server = TestServer::start(|req| match req.json()["action"].as_str() {
            Some("update") => (202, vec![], String::new()),
            Some("provision") => json_reply(201, serde_json::json!({ "app_id": "robot-7" })),
            _ => (400, vec![], "unknown user".into()),
        })
        .await;
        let hook = connector(&server.base);
        let user = user();
        let a = assignment(true, Some("viewer"));
        let outcome = hook.apply(&job(Action::Update, &user, Some(&a), Some(&a), Some("x"))).await.unwrap();
        assert_eq!(outcome, Outcome::Accepted { detail: Some("202 Accepted".into()) });
        let outcome = hook.apply(&job(Action::Provision, &user, None, Some(&a), None)).await.unwrap();
        assert_eq!(outcome, Outcome::Done { app_id: Some("robot-7".into()), detail: Some("201 Created".into()) });
        let err = hook.apply(&job(Action::Deprovision, &user, Some(&a), None, None)).await.unwrap_err();
        assert_eq!(
            err,
            ConnectorError::Permanent { message: "400 Bad Request: unknown user".into(), status: Some(400) }
        );
    }

    #[test]
    fn sign_and_verify() {
        let body = br#"{"status":"succeeded","detail":"done"}"#;
        let header = sign(b"k", body);
        assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
        assert!(verify(b"k", body, &header));
        assert!(!verify(b"k", br#"{"status":"failed","detail":"done"}"#, &header));
        assert!(!verify(b"other", body, &header));
        assert!(!verify(b"k", body, header.trim_start_matches("sha256=")));
        assert!(!verify(b"k", body, "sha256=zz"));
        assert!(!verify(b"k", body, ""));
    }

    #[test]
    fn a_secret_is_required() {
        for secret in [None, Some(String::new())] {
            let config = WebhookConfig { url: "https://robot.example/hook".into(), secret, secret_ref: None };
            let err = WebhookConnector::new(&config, crate::connector::http_client()).err().unwrap();
            assert!(matches!(err, ConnectorError::Permanent { .. }));
        }
    }
}
