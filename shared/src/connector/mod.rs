//! Connectors: the update automation that takes an external app from one assignment to
//! another. A new connector is one [`Connector`] implementation; the worker does not change.

pub mod egress;
pub mod http;
pub mod scim;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assignment::drift::AccountPage;
use crate::assignment::{Action, Assignment};
pub use egress::{Outbound, OutboundClients, Policy};

use crate::secrets::{SecretRef, Secrets};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One job as a connector sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Job<'a> {
    pub job_id: &'a str,
    pub integration_id: &'a str,
    pub action: Action,
    /// The SCIM User resource (for `deprovision`, the last stored one).
    pub user: &'a Value,
    /// What the app holds now (`None`: the app does not know the user).
    pub before: Option<&'a Assignment>,
    /// What the app should hold (`None` for `deprovision`).
    pub after: Option<&'a Assignment>,
    /// The app-side id captured at provision time, if any.
    pub app_id: Option<&'a str>,
}

/// A connector's successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The app now matches `after`. `app_id` is the app-side id when the app told us one
    /// (on provision, or learnt by lookup); `detail` is a short summary of the app's answer.
    Done { app_id: Option<String>, detail: Option<String> },
    /// The app accepted the job and will call back (webhook `202 Accepted`).
    Accepted { detail: Option<String> },
}

/// Why a connector call failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Timeouts, connection errors, 408, 429, 5xx: try again later (`retry_after` from the app).
    #[error("retryable: {message}")]
    Retryable { message: String, retry_after: Option<Duration> },
    /// Any other 4xx, or a configuration the connector cannot use: trying again won't help.
    #[error("permanent: {message}")]
    Permanent { message: String, status: Option<u16> },
}

pub trait Connector: Send + Sync {
    fn apply<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Outcome, ConnectorError>>;

    /// The app's roles, where the connector is configured to read them (`None`: it is not).
    fn list_roles(&self) -> BoxFuture<'_, Result<Option<Vec<AppRole>>, ConnectorError>> {
        Box::pin(async { Ok(None) })
    }

    /// One page of the app's accounts, from `cursor` (the previous page's `next`), where the
    /// connector is configured to list them (`None`: it cannot; a resync then re-delivers the
    /// desired state instead of comparing).
    fn list_accounts<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<AccountPage>, ConnectorError>> {
        let _ = cursor;
        Box::pin(async { Ok(None) })
    }
}

/// A role as the app lists it (`roles/import`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppRole {
    pub value: String,
    pub display: Option<String>,
    pub description: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Configuration and construction
// ---------------------------------------------------------------------------------------------

/// An integration's `connector` configuration (docs/contract.md "Integration configuration"), tagged by `type`.
///
/// Serializing keeps inline secrets (the store needs them); show [`ConnectorConfig::redacted`]
/// to people instead. `Debug` never prints a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant, reason = "parsed once per integration; the size does not matter")]
pub enum ConnectorConfig {
    Http(http::HttpConfig),
    Scim(scim::ScimConfig),
    Webhook(webhook::WebhookConfig),
}

/// What replaces an inline secret in [`ConnectorConfig::redacted`].
pub const REDACTED: &str = "***";

impl ConnectorConfig {
    /// The same configuration with any inline secret replaced by [`REDACTED`] (`secret_ref`s
    /// are references, not secrets, and are kept).
    pub fn redacted(&self) -> ConnectorConfig {
        let mut config = self.clone();
        let secret = match &mut config {
            ConnectorConfig::Http(c) => &mut c.secret,
            ConnectorConfig::Scim(c) => &mut c.secret,
            ConnectorConfig::Webhook(c) => &mut c.secret,
        };
        if secret.is_some() {
            *secret = Some(REDACTED.to_owned());
        }
        config
    }

    /// The `secret_ref` of the configuration, if it has one.
    pub fn secret_ref(&self) -> Option<&str> {
        match self {
            ConnectorConfig::Http(c) => c.secret_ref.as_deref(),
            ConnectorConfig::Scim(c) => c.secret_ref.as_deref(),
            ConnectorConfig::Webhook(c) => c.secret_ref.as_deref(),
        }
    }

    /// The connector type as configured (`http`, `scim`, `webhook`).
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorConfig::Http(_) => "http",
            ConnectorConfig::Scim(_) => "scim",
            ConnectorConfig::Webhook(_) => "webhook",
        }
    }
}

/// A plain HTTP client: rustls on aws-lc-rs (the one TLS stack of the tree), native root
/// certificates. Connectors use an [`Outbound`] instead, which adds the egress rule.
pub fn http_client() -> reqwest::Client {
    // Idempotent: a second install (tests, several clients) is refused and harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().build().unwrap_or_else(|_| reqwest::Client::new())
}

/// Builds the connector a configuration describes: resolves its secret and compiles its
/// templates once. `http` is the shared outbound client (each request sets its own timeout).
pub fn build(config: &ConnectorConfig, http: Outbound) -> Result<Box<dyn Connector>, ConnectorError> {
    Ok(match config {
        ConnectorConfig::Http(c) => Box::new(http::HttpConnector::new(c, http)?),
        ConnectorConfig::Scim(c) => Box::new(scim::ScimConnector::new(c, http)?),
        ConnectorConfig::Webhook(c) => Box::new(webhook::WebhookConnector::new(c, http)?),
    })
}

/// The connector of an integration, its `ssm:`/`secretsmanager:` secret reference resolved
/// first (a secret that cannot be read now is retryable, like an app that is down). A
/// configuration it cannot build is a permanent error naming the connector configuration.
pub async fn for_integration(
    config: &ConnectorConfig,
    allow_private_network: bool,
    outbound: &OutboundClients,
    secrets: &Secrets,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let http = outbound.for_integration(allow_private_network);
    let connector = resolve_secret_ref(config, secrets).await?;
    build(&connector, http).map_err(|e| match e {
        ConnectorError::Permanent { message, status } => {
            ConnectorError::Permanent { message: format!("connector configuration: {message}"), status }
        }
        retryable => retryable,
    })
}

/// What saving a connector configuration checks beyond its shape (docs/contract.md "Outbound
/// calls"): its URL against the egress rule, a DNS name by the addresses it has now, and that
/// the connector builds (templates compile, operations make sense). A reference to a secret
/// is not read here (the worker reads it): a stand-in value takes its place. The error names
/// the field: `connector.base_url: plain http is only for loopback …`.
pub async fn check_for_save(config: &ConnectorConfig, policy: Policy) -> Result<(), String> {
    let (field, url) = match config {
        ConnectorConfig::Http(c) => ("connector.base_url", c.base_url.as_str()),
        ConnectorConfig::Scim(c) => ("connector.base_url", c.base_url.as_str()),
        ConnectorConfig::Webhook(c) => ("connector.url", c.url.as_str()),
    };
    policy.check_url_now(url.trim_end_matches('/')).await.map_err(|why| format!("{field}: {why}"))?;
    let mut probe = config.clone();
    let (secret, secret_ref) = match &mut probe {
        ConnectorConfig::Http(c) => (&mut c.secret, &mut c.secret_ref),
        ConnectorConfig::Scim(c) => (&mut c.secret, &mut c.secret_ref),
        ConnectorConfig::Webhook(c) => (&mut c.secret, &mut c.secret_ref),
    };
    if secret.is_some() != secret_ref.is_some() {
        *secret = Some("stand-in".to_owned());
        *secret_ref = None;
    }
    match build(&probe, Outbound::new(policy)) {
        Ok(_) => Ok(()),
        Err(ConnectorError::Permanent { message, .. } | ConnectorError::Retryable { message, .. }) => Err(message),
    }
}

/// A connector's secret: the inline `secret`, or the one an `env:` `secret_ref` points to.
///
/// `ssm:` and `secretsmanager:` references are read over the network: the worker and the
/// callback route resolve them first with [`resolve_secret_ref`]. Errors never contain the
/// secret itself.
pub fn resolve_secret(secret: Option<&str>, secret_ref: Option<&str>) -> Result<Option<String>, ConnectorError> {
    match (secret, secret_ref) {
        (Some(_), Some(_)) => Err(permanent("give either 'secret' or 'secret_ref', not both")),
        (Some(secret), None) => Ok(Some(secret.to_owned())),
        (None, None) => Ok(None),
        (None, Some(reference)) => match SecretRef::parse(reference).map_err(|e| permanent(e.to_string()))? {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) => Ok(Some(value)),
                Err(std::env::VarError::NotPresent) => {
                    Err(permanent(format!("secret_ref 'env:{name}': environment variable not set")))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(permanent(format!("secret_ref 'env:{name}': environment variable is not UTF-8")))
                }
            },
            _ => Err(permanent(format!("secret_ref '{reference}' was not resolved before building the connector"))),
        },
    }
}

/// The configuration with its `ssm:`/`secretsmanager:` `secret_ref` replaced by the value it
/// points to, in memory only (the stored configuration keeps the reference). A secret that
/// cannot be read now is retryable; a missing or malformed one is permanent.
pub async fn resolve_secret_ref(
    config: &ConnectorConfig,
    secrets: &Secrets,
) -> Result<ConnectorConfig, ConnectorError> {
    let mut config = config.clone();
    let (secret, secret_ref) = match &mut config {
        ConnectorConfig::Http(c) => (&mut c.secret, &mut c.secret_ref),
        ConnectorConfig::Scim(c) => (&mut c.secret, &mut c.secret_ref),
        ConnectorConfig::Webhook(c) => (&mut c.secret, &mut c.secret_ref),
    };
    let Some(reference) = secret_ref.as_deref() else { return Ok(config) };
    if secret.is_some() || matches!(SecretRef::parse(reference), Ok(SecretRef::Env(_)) | Err(_)) {
        return Ok(config); // resolve_secret explains what is wrong, or reads the variable
    }
    match secrets.resolve(reference).await {
        Ok(value) => {
            *secret = Some(value);
            *secret_ref = None;
            Ok(config)
        }
        Err(e) if e.is_transient() => Err(ConnectorError::Retryable { message: e.to_string(), retry_after: None }),
        Err(e) => Err(permanent(e.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared HTTP helpers
// ---------------------------------------------------------------------------------------------

/// The `User-Agent` of every outbound call.
pub const USER_AGENT: &str = concat!("idlcm/", env!("CARGO_PKG_VERSION"));

/// Per-request timeout of every outbound call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an app's error body goes into an error message.
const MAX_BODY_IN_ERROR: usize = 500;

/// A Permanent error without an HTTP status (configuration, templates, bad answers).
pub(crate) fn permanent(message: impl Into<String>) -> ConnectorError {
    ConnectorError::Permanent { message: message.into(), status: None }
}

/// Starts a request with what every call carries: `User-Agent` and the 10 s timeout.
pub(crate) fn request(http: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    http.request(method, url).header(reqwest::header::USER_AGENT, USER_AGENT).timeout(REQUEST_TIMEOUT)
}

/// Sends a request; failures to get an answer at all become [`send_error`]s.
pub(crate) async fn send(builder: reqwest::RequestBuilder) -> Result<reqwest::Response, ConnectorError> {
    builder.send().await.map_err(send_error)
}

/// Classifies a failure to get an answer: a request that could not even be built (bad URL,
/// bad header) is Permanent; timeouts, connection and transport errors are Retryable.
/// The message leaves out the URL (it may carry ids or, through a template, a secret).
pub fn send_error(err: reqwest::Error) -> ConnectorError {
    if let Some(why) = egress::refused_in(&err) {
        return permanent(why);
    }
    let builder = err.is_builder();
    let timeout = err.is_timeout();
    let mut message = String::from(if timeout { "request timed out" } else { "request failed" });
    let err = err.without_url();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        let text = e.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    if builder { permanent(message) } else { ConnectorError::Retryable { message, retry_after: None } }
}

/// Reads an app's answer, at most [`egress::MAX_ANSWER_BYTES`] of it: 2xx gives `(status,
/// body)` (a longer success body is a permanent error); 408, 429 and 5xx are Retryable (with
/// `Retry-After`, in seconds or as an HTTP date); any other status is Permanent. Error messages
/// are `"<status line>; the app said: <body>"`, the body on one line, cut to 500 characters:
/// what follows "the app said" is the app's text, not ours.
pub async fn classify(resp: reqwest::Response) -> Result<(u16, String), ConnectorError> {
    let status = resp.status();
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let code = status.as_u16();
    let body = match read_capped(resp, egress::MAX_ANSWER_BYTES).await {
        Ok((body, false)) => body,
        Ok((_, true)) if status.is_success() => {
            return Err(permanent(format!(
                "{}: the app's answer is longer than {} bytes",
                status_line(status),
                egress::MAX_ANSWER_BYTES
            )));
        }
        Ok((body, true)) => body,
        Err(err) if status.is_success() => return Err(send_error(err)),
        Err(_) => String::new(),
    };
    if status.is_success() {
        return Ok((code, body));
    }
    let mut message = status_line(status);
    let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let body: String = body.chars().filter(|c| !c.is_control()).collect();
    if !body.is_empty() {
        message.push_str("; the app said: ");
        message.push_str(&truncate(&body, MAX_BODY_IN_ERROR));
    }
    if code == 408 || code == 429 || status.is_server_error() {
        Err(ConnectorError::Retryable { message, retry_after })
    } else {
        Err(ConnectorError::Permanent { message, status: Some(code) })
    }
}

/// The body as text, at most `cap` bytes of it (`true` when more was there). Invalid UTF-8 is
/// replaced, never a failure.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<(String, bool), reqwest::Error> {
    let mut bytes = Vec::new();
    let mut cut = false;
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), cut))
}

/// `"201 Created"`: the short summary of an app's answer that goes into `Outcome` details.
pub fn status_line(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn truncate(text: &str, max_chars: usize) -> String {
    crate::scim::text::truncate(text, max_chars).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Test support: loopback HTTP servers that record what they receive
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::{Arc, Mutex};

    use axum::body::{Body, to_bytes};
    use axum::http::{HeaderMap, Request, Response, StatusCode};

    use crate::assignment::{Action, Assignment};

    use super::Job;

    /// The outbound client of connector tests: loopback targets allowed.
    pub fn outbound() -> super::Outbound {
        super::Outbound::new(super::Policy { loopback: true, private: false })
    }

    /// One request as the test server saw it.
    #[derive(Debug, Clone)]
    pub struct Recorded {
        pub method: String,
        /// Path and query, as sent.
        pub uri: String,
        pub headers: HeaderMap,
        pub body: Vec<u8>,
    }

    impl Recorded {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("request body is JSON")
        }
    }

    /// A test server's answer: status, headers, body.
    pub type Reply = (u16, Vec<(&'static str, String)>, String);
    type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

    /// An HTTP server on 127.0.0.1 that records requests and answers through `handler`.
    /// It stops when dropped (and with the test's runtime).
    pub struct TestServer {
        pub base: String,
        pub requests: Arc<Mutex<Vec<Recorded>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
            let handler: Arc<Handler> = Arc::new(handler);
            let requests = Arc::new(Mutex::new(Vec::new()));
            let recorded = requests.clone();
            let app = axum::Router::new().fallback(move |req: Request<Body>| {
                let handler = handler.clone();
                let recorded = recorded.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = to_bytes(body, 1 << 20).await.expect("test request body");
                    let rec = Recorded {
                        method: parts.method.to_string(),
                        uri: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                        headers: parts.headers,
                        body: body.to_vec(),
                    };
                    let (status, headers, body) = handler(&rec);
                    recorded.lock().unwrap().push(rec);
                    let mut resp = Response::new(Body::from(body));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (name, value) in headers {
                        resp.headers_mut().insert(name, value.parse().unwrap());
                    }
                    resp
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            TestServer { base, requests, task }
        }

        pub fn requests(&self) -> Vec<Recorded> {
            self.requests.lock().unwrap().clone()
        }

        pub fn take(&self) -> Vec<Recorded> {
            std::mem::take(&mut *self.requests.lock().unwrap())
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub fn json_reply(status: u16, body: serde_json::Value) -> Reply {
        (status, vec![("content-type", "application/json".to_owned())], body.to_string())
    }

    /// A loopback address nothing listens on.
    pub async fn refused_base() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    pub fn assignment(active: bool, role: Option<&str>) -> Assignment {
        Assignment { active, role: role.map(str::to_owned), ..Default::default() }
    }

    pub fn user() -> serde_json::Value {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "u-1",
            "userName": "ada@example.com",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [
                { "value": "ada.home@example.org", "type": "home" },
                { "value": "ada@example.com", "type": "work", "primary": true }
            ],
            "active": true
        })
    }

    pub fn job<'a>(
        action: Action,
        user: &'a serde_json::Value,
        before: Option<&'a Assignment>,
        after: Option<&'a Assignment>,
        app_id: Option<&'a str>,
    ) -> Job<'a> {
        Job { job_id: "job-1", integration_id: "int-1", action, user, before, after, app_id }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn client() -> Outbound {
        Outbound::new(Policy { loopback: true, private: false })
    }

    async fn get(base: &str) -> Result<(u16, String), ConnectorError> {
        let resp = send(client().request(reqwest::Method::GET, &format!("{base}/x"))?).await?;
        classify(resp).await
    }

    #[tokio::test]
    async fn classify_success_and_failures() {
        let server = TestServer::start(|req| match req.uri.as_str() {
            "/x" if req.header("user-agent") == Some(USER_AGENT) => (200, vec![], "fine".into()),
            _ => (500, vec![], "no user agent".into()),
        })
        .await;
        assert_eq!(get(&server.base).await.unwrap(), (200, "fine".to_owned()));

        for (status, headers, body, want_retry, want_after) in [
            (503, vec![], "down", true, None),
            (429, vec![("retry-after", "7".to_owned())], "slow down", true, Some(Duration::from_secs(7))),
            (408, vec![], "", true, None),
            (400, vec![], r#"{"error":"email invalid"}"#, false, None),
            (404, vec![], "", false, None),
        ] {
            let server = TestServer::start(move |_| (status, headers.clone(), body.to_owned())).await;
            let err = get(&server.base).await.unwrap_err();
            match err {
                ConnectorError::Retryable { message, retry_after } => {
                    assert!(want_retry, "{status} should be permanent: {message}");
                    assert_eq!(retry_after, want_after);
                    assert!(message.starts_with(&status.to_string()), "{message}");
                }
                ConnectorError::Permanent { message, status: got } => {
                    assert!(!want_retry, "{status} should be retryable: {message}");
                    assert_eq!(got, Some(status));
                    if status == 400 {
                        assert_eq!(message, r#"400 Bad Request; the app said: {"error":"email invalid"}"#);
                    } else {
                        assert_eq!(message, "404 Not Found");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn classify_truncates_long_bodies() {
        let server = TestServer::start(|_| (422, vec![], "é".repeat(800))).await;
        let ConnectorError::Permanent { message, .. } = get(&server.base).await.unwrap_err() else { panic!() };
        assert_eq!(message, format!("422 Unprocessable Entity; the app said: {}…", "é".repeat(500)));
    }

    #[tokio::test]
    async fn answers_are_read_up_to_the_cap() {
        let huge = "x".repeat(egress::MAX_ANSWER_BYTES + 1);
        let big = huge.clone();
        let server = TestServer::start(move |_| (200, vec![], big.clone())).await;
        let err = get(&server.base).await.unwrap_err();
        assert!(err.to_string().contains("longer than 65536 bytes"), "{err}");
        let server = TestServer::start(move |_| (500, vec![], format!("line one\n\tline\u{7} two {huge}"))).await;
        let ConnectorError::Retryable { message, .. } = get(&server.base).await.unwrap_err() else { panic!() };
        assert!(message.starts_with("500 Internal Server Error; the app said: line one line two xxx"), "{message}");
        assert!(message.chars().count() < 600, "{}", message.len());
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let target = TestServer::start(|_| (200, vec![], "secret page".into())).await;
        let location = format!("{}/elsewhere", target.base);
        let server = TestServer::start(move |_| (302, vec![("location", location.clone())], String::new())).await;
        let out = Outbound::new(Policy { loopback: true, private: false });
        let resp = send(
            out.request(reqwest::Method::GET, &format!("{}/x", server.base))
                .unwrap()
                .header("authorization", "Bearer s"),
        )
        .await
        .unwrap();
        let err = classify(resp).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Permanent { status: Some(302), .. }), "{err:?}");
        assert!(target.requests().is_empty(), "the redirect was not followed");
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let base = refused_base().await;
        let err = get(&base).await.unwrap_err();
        let ConnectorError::Retryable { message, retry_after: None } = &err else { panic!("{err:?}") };
        assert!(!message.contains(&base[7..]), "no URL in {message}");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let got = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(got > Duration::from_secs(100) && got <= Duration::from_secs(120), "{got:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn secrets_resolve_inline_or_from_env() {
        assert_eq!(resolve_secret(Some("s3cret"), None).unwrap().as_deref(), Some("s3cret"));
        assert_eq!(resolve_secret(None, None).unwrap(), None);
        // SAFETY: the variable name is unique to this test; no other thread reads it.
        unsafe { std::env::set_var("IDLCM_TEST_CONNECTOR_SECRET", "from-env") };
        assert_eq!(resolve_secret(None, Some("env:IDLCM_TEST_CONNECTOR_SECRET")).unwrap().as_deref(), Some("from-env"));
        let err = resolve_secret(None, Some("env:IDLCM_TEST_NO_SUCH_VARIABLE")).unwrap_err();
        assert!(err.to_string().contains("not set"), "{err}");
        // A bare ARN is not a reference: the kind prefix says which service to ask.
        let err = resolve_secret(None, Some("arn:aws:ssm:eu-west-1:123456789012:parameter/x")).unwrap_err();
        assert!(err.to_string().contains("expected env:, ssm: or secretsmanager:"), "{err}");
        // Network references are resolved before the connector is built (resolve_secret_ref).
        let err = resolve_secret(None, Some("ssm:/idlcm/app")).unwrap_err();
        assert!(err.to_string().contains("not resolved"), "{err}");
        assert!(resolve_secret(Some("a"), Some("env:B")).is_err());
    }

    #[test]
    fn config_is_tagged_by_type_and_redactable() {
        let json = serde_json::json!({ "type": "webhook", "url": "https://robot.example/hook", "secret": "s3cret" });
        let config: ConnectorConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(config.kind(), "webhook");
        assert_eq!(serde_json::to_value(&config).unwrap(), json);
        assert!(!format!("{config:?}").contains("s3cret"));
        let shown = serde_json::to_value(config.redacted()).unwrap();
        assert_eq!(shown["secret"], REDACTED);

        let http: ConnectorConfig = serde_json::from_value(serde_json::json!({
            "type": "http",
            "base_url": "https://app.example",
            "headers": { "Authorization": "Bearer {{ secret }}" },
            "secret_ref": "env:APP_TOKEN",
            "operations": { "provision": { "method": "POST", "path": "/users", "body": { "email": "{{ user.userName }}" }, "capture_id": "/id" } }
        }))
        .unwrap();
        assert_eq!(http.kind(), "http");
        let scim: ConnectorConfig =
            serde_json::from_value(serde_json::json!({ "type": "scim", "base_url": "https://app.example/scim/v2" }))
                .unwrap();
        assert_eq!(scim.kind(), "scim");
        assert!(serde_json::from_value::<ConnectorConfig>(serde_json::json!({ "type": "ftp" })).is_err());
    }

    #[test]
    fn build_rejects_a_webhook_without_secret() {
        let config = ConnectorConfig::Webhook(webhook::WebhookConfig {
            url: "http://127.0.0.1:9/hook".into(),
            secret: None,
            secret_ref: None,
        });
        assert!(matches!(build(&config, client()), Err(ConnectorError::Permanent { .. })));
    }
}
