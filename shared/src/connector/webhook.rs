//! `webhook` connector: POSTs the job to a URL the customer runs, signed with HMAC-SHA256
//! (docs/contract.md "Webhook delivery and callbacks"). A 2xx ends the job; `202 Accepted`
//! leaves it open until the receiver calls back, with the same signature scheme ([`verify`]).
//!
//! The signature is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`: the time is
//! signed with the body, so a captured delivery or callback cannot be replayed after
//! [`TOLERANCE_SECONDS`]; callbacks also carry their `job_id`, so one cannot finish another job.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::{BoxFuture, Connector, ConnectorError, Job, Outcome, classify, permanent, resolve_secret, send};
use crate::assignment::{Action, Assignment};

/// The header carrying `t=<unix seconds>,v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Idlcm-Signature";

/// How far a signature's `t` may be from the verifier's clock, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

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

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with secret>`.
pub fn sign_at(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).finalize().into_bytes()))
}

/// [`sign_at`] the current time.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    sign_at(secret, chrono::Utc::now().timestamp(), body)
}

/// Why a signature was refused (all answered 401; the reason goes to the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Malformed,
    Stale,
    Mismatch,
}

/// Checks `header` (`t=…,v1=…`; several `v1` are allowed, as during a secret rotation) against
/// `body` under `secret` at time `now`: constant-time, and `t` within [`TOLERANCE_SECONDS`].
pub fn verify_at(secret: &[u8], body: &[u8], header: &str, now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => sigs.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, t, body);
    if sigs.iter().any(|sig| expected.clone().verify_slice(sig).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// [`verify_at`] the current time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> Result<(), SignatureError> {
    verify_at(secret, body, header, chrono::Utc::now().timestamp())
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
    http: super::Outbound,
}

impl WebhookConnector {
    pub fn new(config: &WebhookConfig, http: super::Outbound) -> Result<Self, ConnectorError> {
        http.policy().check_url(&config.url).map_err(|why| permanent(format!("connector.url: {why}")))?;
        let url = reqwest::Url::parse(&config.url).map_err(|e| permanent(format!("connector.url: {e}")))?;
        let secret = resolve_secret(config.secret.as_deref(), config.secret_ref.as_deref())?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                permanent("connector.secret: a webhook connector needs a 'secret' or 'secret_ref' to sign deliveries")
            })?;
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
            self.http
                .request(reqwest::Method::POST, self.url.as_str())?
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
        build(&config, crate::connector::testutil::outbound()).unwrap()
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

        // Recompute the signature independently over "<t>.<exact bytes received>".
        let header = req.header("x-idlcm-signature").unwrap();
        let (t, v1) = header.split_once(",v1=").unwrap();
        let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - t).abs() < 60, "t is the time of sending");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&req.body);
        assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));

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
            ConnectorError::Permanent {
                message: "400 Bad Request; the app said: unknown user".into(),
                status: Some(400)
            }
        );
    }

    #[test]
    fn sign_and_verify() {
        let body = br#"{"job_id":"j1","status":"succeeded","detail":"done"}"#;
        let now = 1_800_000_000;
        let header = sign_at(b"k", now, body);
        assert!(header.starts_with(&format!("t={now},v1=")) && header.len() == format!("t={now},v1=").len() + 64);
        assert_eq!(verify_at(b"k", body, &header, now), Ok(()));
        assert_eq!(verify_at(b"k", body, &header, now + TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify_at(b"k", body, &header, now - TOLERANCE_SECONDS), Ok(()));
        // Replayed later, or signed for the future: stale.
        assert_eq!(verify_at(b"k", body, &header, now + TOLERANCE_SECONDS + 1), Err(SignatureError::Stale));
        assert_eq!(verify_at(b"k", body, &header, now - TOLERANCE_SECONDS - 1), Err(SignatureError::Stale));
        // Another body, key or time: mismatch.
        assert_eq!(
            verify_at(b"k", br#"{"job_id":"j2","status":"succeeded","detail":"done"}"#, &header, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_at(b"other", body, &header, now), Err(SignatureError::Mismatch));
        let moved = header.replacen(&format!("t={now}"), &format!("t={}", now + 1), 1);
        assert_eq!(verify_at(b"k", body, &moved, now), Err(SignatureError::Mismatch));
        // The withdrawn body-only form, and garbage.
        let mut old = HmacSha256::new_from_slice(b"k").unwrap();
        old.update(body);
        let old = format!("sha256={}", hex::encode(old.finalize().into_bytes()));
        assert_eq!(verify_at(b"k", body, &old, now), Err(SignatureError::Malformed));
        for bad in ["", "t=x,v1=00", "t=1", "v1=00", &format!("t={now},v1=zz")] {
            assert_eq!(verify_at(b"k", body, bad, now), Err(SignatureError::Malformed), "{bad}");
        }
        // A second v1 (rotation) may match.
        let two = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify_at(b"k", body, &two, now), Ok(()));
    }

    #[test]
    fn a_secret_is_required() {
        for secret in [None, Some(String::new())] {
            let config = WebhookConfig { url: "https://robot.example/hook".into(), secret, secret_ref: None };
            let err = WebhookConnector::new(&config, crate::connector::testutil::outbound()).err().unwrap();
            assert!(matches!(err, ConnectorError::Permanent { .. }));
        }
    }
}
