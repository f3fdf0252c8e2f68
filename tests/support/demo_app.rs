//! The demo target app: a small HTTP service with users and roles and its own REST API (not SCIM).
//! idlcm's `http` connector drives it in `make run` and in tests (docs/local-stack.md; its API: docs/contract.md "Local run file and demo app").
//!
//! - `/api/*` (API key, `Authorization: Bearer <key>`): `POST /api/users`, `GET /api/users[?email=]`
//!   (an array), `GET /api/users?limit=N[&cursor=C]` (a page: `{"users": [...], "next_cursor"}`,
//!   for resync), `GET|PUT|DELETE /api/users/{id}`, `POST /api/users/{id}/deactivate|activate`,
//!   `GET /api/roles`. Errors are JSON `{"error": "..."}`.
//! - `/_demo/*` (test control, no auth; loopback only): `GET|DELETE /_demo/events` (every mutating or
//!   faulted `/api` call, in the order the app handled it), `GET|POST|DELETE /_demo/faults` (canned
//!   responses for the next matching `/api` calls), `GET /_demo/stats` (`/api` reads so far),
//!   `POST /_demo/reset`.
//! - `GET /`: an HTML page listing the users, refreshed every 2 s.
//!
//! `/api` requests are handled one at a time, so the event log order is the order in which the
//! store changed. The app only ever binds 127.0.0.1.

use std::collections::VecDeque;
use std::fmt;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

/// Where the binary listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8090";
/// The roles the binary allows unless told otherwise.
pub const DEFAULT_ROLES: &[&str] = &["admin", "user", "viewer"];
/// Largest `/api` request body read.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A user of the demo app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `u1`, `u2`, … in creation order (never reused, except after a reset).
    pub id: String,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub role: Option<String>,
    pub active: bool,
    /// RFC 3339, UTC, milliseconds.
    pub created_at: String,
    pub updated_at: String,
}

/// One `/api` call the app received: every mutating call (whatever its outcome, 401 included) and
/// every faulted call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, … in the order the app handled the calls.
    pub seq: u64,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The user the call addressed: the `{id}` in the path, or the id a `POST /api/users` created.
    pub user_id: Option<String>,
    /// The status the app answered.
    pub status: u16,
    /// The request body as JSON (`null` when empty, a string when not JSON).
    pub body: Value,
    /// The answer was an injected fault.
    pub fault: bool,
}

/// Faults to inject (the body of `POST /_demo/faults`): the next `/api` calls that match get
/// `responses`, one each, in order; then normal behaviour resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub responses: Vec<FaultResponse>,
    /// Which calls get them; the default matches every `/api` call.
    #[serde(default, rename = "match")]
    pub matcher: FaultMatch,
}

/// One canned response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultResponse {
    /// 100–599.
    pub status: u16,
    /// Seconds, sent as `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The JSON body; by default `{"error": "injected fault: <status>"}` (`{}` below 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Answer only after this long (to exercise client timeouts). The call is logged at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Carry out the call for real, then answer with the fault instead (a lost response).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply: bool,
}

/// Which `/api` calls a fault applies to; absent parts match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultMatch {
    /// Compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

/// A fault waiting for its call (`GET /_demo/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingFault {
    pub response: FaultResponse,
    #[serde(rename = "match")]
    pub matcher: FaultMatch,
}

impl FaultSpec {
    /// Faults for every `/api` call.
    pub fn new(responses: impl IntoIterator<Item = FaultResponse>) -> FaultSpec {
        FaultSpec { responses: responses.into_iter().collect(), matcher: FaultMatch::default() }
    }

    /// Restricts the faults to calls with this method and path prefix.
    pub fn matching(mut self, method: &str, path_prefix: &str) -> FaultSpec {
        self.matcher = FaultMatch { method: Some(method.to_owned()), path_prefix: Some(path_prefix.to_owned()) };
        self
    }
}

impl FaultResponse {
    /// A canned response with this status and the default body.
    pub fn status(status: u16) -> FaultResponse {
        FaultResponse { status, retry_after: None, body: None, delay_ms: None, apply: false }
    }

    pub fn retry_after(mut self, seconds: u64) -> FaultResponse {
        self.retry_after = Some(seconds);
        self
    }

    pub fn body(mut self, body: Value) -> FaultResponse {
        self.body = Some(body);
        self
    }

    pub fn delay_ms(mut self, millis: u64) -> FaultResponse {
        self.delay_ms = Some(millis);
        self
    }

    pub fn applied(mut self) -> FaultResponse {
        self.apply = true;
        self
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            status.into_response()
        } else {
            let body = self.body.unwrap_or_else(|| {
                if status.as_u16() >= 400 { json!({"error": format!("injected fault: {status}")}) } else { json!({}) }
            });
            (status, axum::Json(body)).into_response()
        };
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl FaultMatch {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && self.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
    }
}

/// The app: its configuration and in-memory store. Cheap to clone (shared state); the state of
/// [`router`].
#[derive(Clone)]
pub struct DemoApp {
    inner: Arc<Inner>,
}

struct Inner {
    api_key: String,
    roles: Vec<String>,
    store: Mutex<Store>,
    /// Held for the whole of each `/api` call: one call at a time, so events are in store order.
    gate: Mutex<()>,
    /// `/api` GET calls answered (the event log keeps only mutating ones).
    reads: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Store {
    users: Vec<User>,
    last_id: u64,
    events: Vec<Event>,
    faults: VecDeque<PendingFault>,
}

impl fmt::Debug for DemoApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoApp").field("roles", &self.inner.roles).finish_non_exhaustive()
    }
}

/// A demo app serving on 127.0.0.1. Dropping it stops the server: the listener closes at once and
/// open connections close after their current request.
pub struct RunningDemo {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub addr: SocketAddr,
    app: DemoApp,
    task: JoinHandle<()>,
    /// Dropped with `self`, which starts the graceful shutdown of open connections.
    _shutdown: oneshot::Sender<()>,
}

impl fmt::Debug for RunningDemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningDemo").field("url", &self.url).field("app", &self.app).finish_non_exhaustive()
    }
}

impl Drop for RunningDemo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DemoApp {
    /// An app with no users that accepts `api_key` and the given role names.
    pub fn new(api_key: String, roles: Vec<String>) -> DemoApp {
        DemoApp {
            inner: Arc::new(Inner {
                api_key,
                roles,
                store: Mutex::new(Store::default()),
                gate: Mutex::new(()),
                reads: Default::default(),
            }),
        }
    }

    /// Starts an app on `addr` (`127.0.0.1:0` for an ephemeral port). Any other IP than 127.0.0.1,
    /// an empty API key or an empty role name is refused with `InvalidInput`.
    pub async fn start(addr: SocketAddr, api_key: String, roles: Vec<String>) -> std::io::Result<RunningDemo> {
        let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
        if addr.ip() != Ipv4Addr::LOCALHOST {
            return Err(invalid(format!("the demo app only listens on 127.0.0.1, not {}", addr.ip())));
        }
        if api_key.trim().is_empty() {
            return Err(invalid("the demo app needs a non-empty API key".to_owned()));
        }
        if roles.iter().any(|r| r.trim().is_empty()) {
            return Err(invalid("role names must not be empty".to_owned()));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = DemoApp::new(api_key, roles);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let service = router(app.clone());
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, service).with_graceful_shutdown(async move {
                // Ok (sent) and Err (sender dropped) both mean stop.
                stopped.await.unwrap_or(());
            });
            if let Err(e) = server.await {
                eprintln!("demo app: server error: {e}");
            }
        });
        Ok(RunningDemo { url: format!("http://{addr}"), addr, app, task, _shutdown: shutdown })
    }

    /// The allowed role names.
    /// `/api` GET calls answered so far.
    pub fn api_reads(&self) -> u64 {
        self.inner.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// All users, in creation order.
    pub async fn users(&self) -> Vec<User> {
        self.inner.store.lock().await.users.clone()
    }

    /// The event log, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        self.inner.store.lock().await.events.clone()
    }

    /// Queues faults behind those already pending. Refuses (and queues nothing) when a status is
    /// outside 100–599.
    pub async fn inject(&self, faults: FaultSpec) -> Result<(), String> {
        if let Some(bad) = faults.responses.iter().find(|r| !(100..=599).contains(&r.status)) {
            return Err(format!("fault status {} is not an HTTP status (100-599)", bad.status));
        }
        let mut store = self.inner.store.lock().await;
        let matcher = faults.matcher;
        store
            .faults
            .extend(faults.responses.into_iter().map(|response| PendingFault { response, matcher: matcher.clone() }));
        Ok(())
    }

    /// Faults not yet used, in the order they will be.
    pub async fn pending_faults(&self) -> Vec<PendingFault> {
        self.inner.store.lock().await.faults.iter().cloned().collect()
    }

    pub async fn clear_faults(&self) {
        self.inner.store.lock().await.faults.clear();
    }

    pub async fn clear_events(&self) {
        self.inner.store.lock().await.events.clear();
    }

    /// Back to the start: no users (ids restart at `u1`), no events, no faults.
    pub async fn reset(&self) {
        *self.inner.store.lock().await = Store::default();
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => {
                constant_time_eq(key.trim().as_bytes(), self.inner.api_key.as_bytes())
            }
            _ => false,
        }
    }

    async fn take_fault(&self, method: &Method, path: &str) -> Option<FaultResponse> {
        let mut store = self.inner.store.lock().await;
        let index = store.faults.iter().position(|f| f.matcher.matches(method, path))?;
        store.faults.remove(index).map(|f| f.response)
    }

    async fn record(
        &self,
        method: &Method,
        path: String,
        user_id: Option<String>,
        status: StatusCode,
        body: Value,
        fault: bool,
    ) {
        let mut store = self.inner.store.lock().await;
        let seq = store.events.last().map_or(1, |e| e.seq + 1);
        store.events.push(Event {
            seq,
            method: method.to_string(),
            path,
            user_id,
            status: status.as_u16(),
            body,
            fault,
        });
    }
}

impl RunningDemo {
    /// The app behind the server (same state).
    pub fn app(&self) -> &DemoApp {
        &self.app
    }

    pub async fn users(&self) -> Vec<User> {
        self.app.users().await
    }

    pub async fn events(&self) -> Vec<Event> {
        self.app.events().await
    }

    pub async fn inject(&self, faults: FaultSpec) -> Result<(), String> {
        self.app.inject(faults).await
    }

    pub async fn pending_faults(&self) -> Vec<PendingFault> {
        self.app.pending_faults().await
    }

    pub async fn clear_faults(&self) {
        self.app.clear_faults().await
    }

    pub async fn clear_events(&self) {
        self.app.clear_events().await
    }

    pub async fn reset(&self) {
        self.app.reset().await
    }
}

/// The app's routes: `/api/*`, `/_demo/*` and `/`.
pub fn router(app: DemoApp) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/roles", get(list_roles))
        .route("/api/users/{id}", get(get_user).put(update_user).delete(delete_user))
        .route("/api/users/{id}/deactivate", post(deactivate_user))
        .route("/api/users/{id}/activate", post(activate_user))
        .route("/_demo/events", get(demo_events).delete(demo_clear_events))
        .route("/_demo/faults", get(demo_faults).post(demo_inject).delete(demo_clear_faults))
        .route("/_demo/reset", post(demo_reset))
        .route("/_demo/stats", get(demo_stats))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), api_gate))
        .with_state(app)
}

/// A JSON error `{"error": "..."}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), extra: None }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn user_not_found(id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("user {id} not found"))
    }

    fn email_taken(email: &str, existing_id: &str) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: format!("a user with email {email} already exists"),
            extra: Some(("id", Value::String(existing_id.to_owned()))),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let (Some((key, value)), Some(map)) = (self.extra, body.as_object_mut()) {
            map.insert(key.to_owned(), value);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// Marks a response with the user a call created, for the event log.
#[derive(Debug, Clone)]
struct EventUserId(String);

fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `u7` from `/api/users/u7` or `/api/users/u7/deactivate`.
fn user_id_in_path(path: &str) -> Option<String> {
    let id = path.strip_prefix("/api/users/")?.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

fn logged_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every `/api` call: API key, faults, one call at a time, event log.
async fn api_gate(State(app): State<DemoApp>, request: Request, next: Next) -> Response {
    if !is_api_path(request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES).await;

    let gate = app.inner.gate.lock().await;
    if method == Method::GET {
        app.inner.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut delay = None;
    let (response, bytes, fault) = match read {
        Err(_) => {
            let error = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body unreadable or over 1 MiB");
            (error.into_response(), Bytes::new(), false)
        }
        Ok(bytes) if !app.authorized(&parts.headers) => {
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid API key").into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            (response, bytes, false)
        }
        Ok(bytes) => match app.take_fault(&method, &path).await {
            Some(fault) => {
                let created = if fault.apply {
                    let real = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
                    real.extensions().get::<EventUserId>().cloned()
                } else {
                    None
                };
                delay = fault.delay_ms.map(Duration::from_millis);
                let mut response = fault.into_response();
                if let Some(created) = created {
                    response.extensions_mut().insert(created);
                }
                (response, bytes, true)
            }
            None => {
                let response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
                (response, bytes, false)
            }
        },
    };
    if fault || is_mutating(&method) {
        let user_id = response
            .extensions()
            .get::<EventUserId>()
            .map(|created| created.0.clone())
            .or_else(|| user_id_in_path(&path));
        app.record(&method, path, user_id, response.status(), logged_body(&bytes), fault).await;
    }
    drop(gate);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

async fn demo_stats(State(app): State<DemoApp>) -> axum::Json<Value> {
    axum::Json(json!({ "api_reads": app.api_reads() }))
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {method} {}", uri.path()))
}

fn parse_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

fn validate_email(email: &str) -> Result<(), ApiError> {
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(ApiError::bad_request(format!("email {email:?} is not a valid address (it needs an '@')"))),
    }
}

impl DemoApp {
    fn validate_role(&self, role: Option<&str>) -> Result<(), ApiError> {
        match role {
            Some(role) if !self.inner.roles.iter().any(|r| r == role) => Err(ApiError::bad_request(format!(
                "role {role:?} is not one of: {} (or null)",
                self.inner.roles.join(", ")
            ))),
            _ => Ok(()),
        }
    }
}

impl Store {
    fn user_mut(&mut self, id: &str) -> Result<&mut User, ApiError> {
        self.users.iter_mut().find(|u| u.id == id).ok_or_else(|| ApiError::user_not_found(id))
    }

    /// 409 when another user than `except` has this email (case-insensitive).
    fn check_email_free(&self, email: &str, except: Option<&str>) -> Result<(), ApiError> {
        match self.users.iter().find(|u| u.email.eq_ignore_ascii_case(email) && Some(u.id.as_str()) != except) {
            Some(other) => Err(ApiError::email_taken(email, &other.id)),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    role: Option<String>,
    active: Option<bool>,
}

/// `PUT` body: an absent field is kept; a present one (even `null`) is replaced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    given_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    family_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    role: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    active: Option<Option<bool>>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::bad_request(format!("{field} must not be null"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    email: Option<String>,
    /// A page of at most this many users, in id order, after `cursor` (the last id seen).
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `u12` → 12: ids are numbered in creation order, so pages follow it.
fn id_number(id: &str) -> u64 {
    id.trim_start_matches('u').parse().unwrap_or(0)
}

async fn list_users(State(app): State<DemoApp>, Query(query): Query<ListQuery>) -> Result<axum::Json<Value>, ApiError> {
    let store = app.inner.store.lock().await;
    let matching =
        store.users.iter().filter(|u| query.email.as_deref().is_none_or(|e| u.email.eq_ignore_ascii_case(e)));
    let Some(limit) = query.limit else {
        return Ok(axum::Json(json!(matching.cloned().collect::<Vec<_>>())));
    };
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be from 1 to 1000"));
    }
    let after = query.cursor.as_deref().map(id_number).unwrap_or(0);
    let mut page: Vec<&User> = matching.filter(|u| id_number(&u.id) > after).collect();
    page.sort_by_key(|u| id_number(&u.id));
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more { page.last().map(|u| u.id.clone()) } else { None };
    Ok(axum::Json(json!({ "users": page, "next_cursor": next })))
}

/// The app's roles, for idlcm's role import: `{"roles": [{"name", "label"}]}`.
async fn list_roles(State(app): State<DemoApp>) -> axum::Json<serde_json::Value> {
    let roles: Vec<serde_json::Value> = app
        .inner
        .roles
        .iter()
        .map(|r| {
            let mut label: Vec<char> = r.chars().collect();
            if let Some(first) = label.first_mut() {
                *first = first.to_ascii_uppercase();
            }
            serde_json::json!({ "name": r, "label": label.into_iter().collect::<String>() })
        })
        .collect();
    axum::Json(serde_json::json!({ "roles": roles }))
}

async fn get_user(State(app): State<DemoApp>, Path(id): Path<String>) -> Result<axum::Json<User>, ApiError> {
    let mut store = app.inner.store.lock().await;
    Ok(axum::Json(store.user_mut(&id)?.clone()))
}

async fn create_user(State(app): State<DemoApp>, body: Bytes) -> Result<Response, ApiError> {
    let input: CreateUser = parse_object(&body)?;
    let email = input.email.ok_or_else(|| ApiError::bad_request("email is required"))?;
    validate_email(&email)?;
    app.validate_role(input.role.as_deref())?;
    let mut store = app.inner.store.lock().await;
    store.check_email_free(&email, None)?;
    store.last_id += 1;
    let now = now_rfc3339();
    let user = User {
        id: format!("u{}", store.last_id),
        email,
        given_name: input.given_name.unwrap_or_default(),
        family_name: input.family_name.unwrap_or_default(),
        role: input.role,
        active: input.active.unwrap_or(true),
        created_at: now.clone(),
        updated_at: now,
    };
    store.users.push(user.clone());
    let mut response = (StatusCode::CREATED, axum::Json(&user)).into_response();
    response.extensions_mut().insert(EventUserId(user.id));
    Ok(response)
}

async fn update_user(
    State(app): State<DemoApp>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<User>, ApiError> {
    let input: UpdateUser = parse_object(&body)?;
    let email = not_null("email", input.email)?;
    let given_name = not_null("given_name", input.given_name)?;
    let family_name = not_null("family_name", input.family_name)?;
    let active = not_null("active", input.active)?;
    if let Some(email) = &email {
        validate_email(email)?;
    }
    if let Some(role) = &input.role {
        app.validate_role(role.as_deref())?;
    }
    let mut store = app.inner.store.lock().await;
    store.user_mut(&id)?;
    if let Some(email) = &email {
        store.check_email_free(email, Some(&id))?;
    }
    let user = store.user_mut(&id)?;
    let before = user.clone();
    if let Some(email) = email {
        user.email = email;
    }
    if let Some(given_name) = given_name {
        user.given_name = given_name;
    }
    if let Some(family_name) = family_name {
        user.family_name = family_name;
    }
    if let Some(role) = input.role {
        user.role = role;
    }
    if let Some(active) = active {
        user.active = active;
    }
    if *user != before {
        user.updated_at = now_rfc3339();
    }
    Ok(axum::Json(user.clone()))
}

async fn set_active(app: &DemoApp, id: &str, active: bool) -> Result<axum::Json<User>, ApiError> {
    let mut store = app.inner.store.lock().await;
    let user = store.user_mut(id)?;
    if user.active != active {
        user.active = active;
        user.updated_at = now_rfc3339();
    }
    Ok(axum::Json(user.clone()))
}

async fn deactivate_user(State(app): State<DemoApp>, Path(id): Path<String>) -> Result<axum::Json<User>, ApiError> {
    set_active(&app, &id, false).await
}

async fn activate_user(State(app): State<DemoApp>, Path(id): Path<String>) -> Result<axum::Json<User>, ApiError> {
    set_active(&app, &id, true).await
}

async fn delete_user(State(app): State<DemoApp>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let mut store = app.inner.store.lock().await;
    let index = store.users.iter().position(|u| u.id == id).ok_or_else(|| ApiError::user_not_found(&id))?;
    store.users.remove(index);
    Ok(StatusCode::NO_CONTENT)
}

async fn demo_events(State(app): State<DemoApp>) -> axum::Json<Vec<Event>> {
    axum::Json(app.events().await)
}

async fn demo_clear_events(State(app): State<DemoApp>) -> StatusCode {
    app.clear_events().await;
    StatusCode::NO_CONTENT
}

async fn demo_faults(State(app): State<DemoApp>) -> axum::Json<Value> {
    axum::Json(json!({"pending": app.pending_faults().await}))
}

async fn demo_inject(State(app): State<DemoApp>, body: Bytes) -> Result<axum::Json<Value>, ApiError> {
    let spec: FaultSpec = parse_object(&body)?;
    app.inject(spec).await.map_err(ApiError::bad_request)?;
    Ok(axum::Json(json!({"pending": app.pending_faults().await})))
}

async fn demo_clear_faults(State(app): State<DemoApp>) -> StatusCode {
    app.clear_faults().await;
    StatusCode::NO_CONTENT
}

async fn demo_reset(State(app): State<DemoApp>) -> StatusCode {
    app.reset().await;
    StatusCode::NO_CONTENT
}

/// The page a newcomer watches in `make run`: users, and the latest calls the app received.
async fn page(State(app): State<DemoApp>) -> Response {
    let (users, events) = {
        let store = app.inner.store.lock().await;
        (store.users.clone(), store.events.iter().rev().take(10).cloned().collect::<Vec<_>>())
    };
    let mut html = String::from(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"refresh\" content=\"2\"><title>Demo app: users</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}",
        "table{border-collapse:collapse;margin-bottom:2rem}th,td{border:1px solid #ccc;padding:.3rem .7rem;text-align:left}",
        "th{background:#f3f3f3}.off{color:#999}.muted{color:#666;font-size:.9rem}",
        "</style></head><body><h1>Demo app</h1>",
        "<p class=\"muted\">A target app with its own REST API (<code>/api/users</code>, not SCIM). ",
        "idlcm provisions these users. This page refreshes every 2 s.</p>",
    ));
    write_or_ignore(&mut html, format_args!("<h2>Users ({})</h2>", users.len()));
    if users.is_empty() {
        html.push_str("<p class=\"muted\">No users yet.</p>");
    } else {
        html.push_str(
            "<table><tr><th>id</th><th>email</th><th>name</th><th>role</th><th>active</th><th>updated</th></tr>",
        );
        for u in &users {
            write_or_ignore(
                &mut html,
                format_args!(
                    "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    if u.active { "on" } else { "off" },
                    escape(&u.id),
                    escape(&u.email),
                    escape(&u.given_name),
                    escape(&u.family_name),
                    u.role.as_deref().map_or_else(|| "<em>none</em>".to_owned(), escape),
                    if u.active { "yes" } else { "no" },
                    escape(&u.updated_at),
                ),
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Latest calls</h2>");
    if events.is_empty() {
        html.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        html.push_str("<table><tr><th>#</th><th>call</th><th>user</th><th>status</th></tr>");
        for e in &events {
            write_or_ignore(
                &mut html,
                format_args!(
                    "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}{}</td></tr>",
                    e.seq,
                    escape(&e.method),
                    escape(&e.path),
                    escape(e.user_id.as_deref().unwrap_or("")),
                    e.status,
                    if e.fault { " (injected)" } else { "" },
                ),
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>");
    let mut response = Html(html).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Appends to a `String`, which cannot fail.
fn write_or_ignore(out: &mut String, args: fmt::Arguments<'_>) {
    out.write_fmt(args).unwrap_or(());
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-11-03T09:15:02.123Z`.
fn now_rfc3339() -> String {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(since_epoch)
}

fn format_rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Splits a comma-separated role list (`DEMO_APP_ROLES`), dropping blanks.
pub fn parse_roles(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Client;

    const KEY: &str = "demo-test-key";

    async fn start() -> RunningDemo {
        let roles = DEFAULT_ROLES.iter().map(|r| r.to_string()).collect();
        DemoApp::start("127.0.0.1:0".parse().expect("addr"), KEY.to_owned(), roles).await.expect("start demo app")
    }

    /// Sends `method url+path` with the API key; returns status, `Retry-After` and the JSON body.
    async fn call(demo: &RunningDemo, method: &str, path: &str, body: Option<Value>) -> (u16, Option<String>, Value) {
        call_with_key(demo, Some(KEY), method, path, body).await
    }

    async fn call_with_key(
        demo: &RunningDemo,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = idlcm::connector::http_client().request(method, format!("{}{path}", demo.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").map(|v| v.to_str().expect("retry-after ascii").to_owned());
        let text = response.text().await.expect("body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        (status, retry_after, body)
    }

    fn alice() -> Value {
        json!({"email": "alice@example.com", "given_name": "Alice", "family_name": "Liddell", "role": "admin", "active": true})
    }

    #[tokio::test]
    async fn crud_round_trip() {
        let demo = start().await;
        let (status, _, created) = call(&demo, "POST", "/api/users", Some(alice())).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["id"], "u1");
        assert_eq!(created["email"], "alice@example.com");
        assert_eq!(created["role"], "admin");
        assert_eq!(created["active"], true);
        assert_eq!(created["created_at"], created["updated_at"]);
        assert!(created["created_at"].as_str().expect("created_at").ends_with('Z'));

        let bob = json!({"email": "bob@example.com", "given_name": "Bob", "family_name": "Builder", "role": null});
        let (status, _, bob) = call(&demo, "POST", "/api/users", Some(bob)).await;
        assert_eq!(status, 201);
        assert_eq!(bob["id"], "u2");
        assert_eq!(bob["role"], Value::Null);
        assert_eq!(bob["active"], true, "active defaults to true");

        let (status, _, list) = call(&demo, "GET", "/api/users", None).await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = list.as_array().expect("array").iter().map(|u| u["id"].as_str().expect("id")).collect();
        assert_eq!(ids, ["u1", "u2"]);
        let (_, _, found) = call(&demo, "GET", "/api/users?email=BOB@example.com", None).await;
        assert_eq!(found.as_array().expect("array").len(), 1);
        assert_eq!(found[0]["id"], "u2");

        let (status, _, got) = call(&demo, "GET", "/api/users/u1", None).await;
        assert_eq!((status, &got), (200, &created));

        let (status, _, updated) =
            call(&demo, "PUT", "/api/users/u1", Some(json!({"role": "viewer", "given_name": "Al"}))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["role"], "viewer");
        assert_eq!(updated["given_name"], "Al");
        assert_eq!(updated["family_name"], "Liddell", "absent fields are kept");
        let (_, _, updated) = call(&demo, "PUT", "/api/users/u1", Some(json!({"role": null}))).await;
        assert_eq!(updated["role"], Value::Null, "an explicit null clears the role");

        let (status, _, off) = call(&demo, "POST", "/api/users/u1/deactivate", None).await;
        assert_eq!((status, &off["active"]), (200, &json!(false)));
        let (status, _, on) = call(&demo, "POST", "/api/users/u1/activate", None).await;
        assert_eq!((status, &on["active"]), (200, &json!(true)));

        let (status, _, body) = call(&demo, "DELETE", "/api/users/u1", None).await;
        assert_eq!((status, body), (204, Value::Null));
        let (status, _, body) = call(&demo, "GET", "/api/users/u1", None).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"], "user u1 not found");
        for (method, path) in
            [("PUT", "/api/users/u9"), ("DELETE", "/api/users/u9"), ("POST", "/api/users/u9/activate")]
        {
            let body = (method == "PUT").then(|| json!({}));
            let (status, _, error) = call(&demo, method, path, body).await;
            assert_eq!(status, 404, "{method} {path}");
            assert!(error["error"].is_string());
        }

        let (_, _, c) = call(&demo, "POST", "/api/users", Some(json!({"email": "carol@example.com"}))).await;
        assert_eq!(c["id"], "u3", "ids are never reused");
        let users = demo.users().await;
        assert_eq!(users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u2", "u3"]);
    }

    #[tokio::test]
    async fn api_requires_the_key() {
        let demo = start().await;
        for key in [None, Some("wrong-key")] {
            let (status, _, body) = call_with_key(&demo, key, "POST", "/api/users", Some(alice())).await;
            assert_eq!(status, 401);
            assert_eq!(body["error"], "missing or invalid API key");
            let (status, _, _) = call_with_key(&demo, key, "GET", "/api/users", None).await;
            assert_eq!(status, 401);
        }
        let response = idlcm::connector::http_client()
            .get(format!("{}/api/users", demo.url))
            .header("authorization", format!("bearer {KEY}"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200, "the scheme is case-insensitive");
        assert!(demo.users().await.is_empty());
        let events = demo.events().await;
        assert_eq!(events.len(), 2, "rejected mutating calls are logged, reads are not: {events:?}");
        assert!(events.iter().all(|e| e.status == 401 && e.method == "POST"));
        // The page and the test endpoints need no key.
        let (status, _, _) = call_with_key(&demo, None, "GET", "/_demo/events", None).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn validation_and_conflicts() {
        let demo = start().await;
        let cases = [
            (json!({"given_name": "No", "family_name": "Email"}), "email is required"),
            (json!({"email": "not-an-address"}), "is not a valid address"),
            (json!({"email": "@example.com"}), "is not a valid address"),
            (json!({"email": "x@example.com", "role": "superuser"}), "is not one of: admin, user, viewer"),
            (json!({"email": "x@example.com", "firstName": "X"}), "unknown field `firstName`"),
            (json!({"email": "x@example.com", "active": "yes"}), "invalid request body"),
            (json!(["x@example.com"]), "invalid request body"),
        ];
        for (body, expected) in cases {
            let (status, _, error) = call(&demo, "POST", "/api/users", Some(body.clone())).await;
            assert_eq!(status, 400, "{body}");
            let message = error["error"].as_str().expect("error message");
            assert!(message.contains(expected), "{body}: {message}");
        }
        let response = idlcm::connector::http_client()
            .post(format!("{}/api/users", demo.url))
            .bearer_auth(KEY)
            .body("{not json")
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 400);
        assert!(response.json::<Value>().await.expect("json")["error"].is_string());

        let (status, _, first) = call(&demo, "POST", "/api/users", Some(alice())).await;
        assert_eq!(status, 201);
        let (status, _, error) =
            call(&demo, "POST", "/api/users", Some(json!({"email": "ALICE@example.com", "role": "user"}))).await;
        assert_eq!(status, 409, "email is unique, case-insensitively");
        assert_eq!(error["id"], first["id"], "the conflict names the existing user");
        let (status, _, bob) = call(&demo, "POST", "/api/users", Some(json!({"email": "bob@example.com"}))).await;
        assert_eq!(status, 201);
        let path = format!("/api/users/{}", bob["id"].as_str().expect("id"));
        let (status, _, _) = call(&demo, "PUT", &path, Some(json!({"email": "alice@example.com"}))).await;
        assert_eq!(status, 409);
        let (status, _, _) = call(&demo, "PUT", &path, Some(json!({"email": "Bob@example.com"}))).await;
        assert_eq!(status, 200, "a user may keep (or re-case) its own email");
        let (status, _, _) = call(&demo, "PUT", &path, Some(json!({"role": "root"}))).await;
        assert_eq!(status, 400);
        let (status, _, error) = call(&demo, "PUT", &path, Some(json!({"email": null}))).await;
        assert_eq!((status, error["error"].as_str()), (400, Some("email must not be null")));
        let (status, _, _) = call(&demo, "PUT", &path, None).await;
        assert_eq!(status, 400, "an empty PUT body is refused");
        let users = demo.users().await;
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].email, "Bob@example.com");
        assert_eq!(users[1].role, None);
    }

    #[tokio::test]
    async fn faults_are_served_in_order_then_normal_behaviour_resumes() {
        let demo = start().await;
        let spec = json!({
            "responses": [
                {"status": 503}, {"status": 503}, {"status": 429, "retry_after": 2},
                {"status": 400, "body": {"error": "email domain not allowed"}}
            ],
            "match": {"method": "POST", "path_prefix": "/api/users"}
        });
        let (status, _, pending) = call_with_key(&demo, None, "POST", "/_demo/faults", Some(spec)).await;
        assert_eq!(status, 200);
        assert_eq!(pending["pending"].as_array().expect("pending").len(), 4);

        // Calls that do not match are not faulted and use up nothing.
        let (status, _, _) = call(&demo, "GET", "/api/users", None).await;
        assert_eq!(status, 200);
        let (status, _, _) = call_with_key(&demo, None, "POST", "/api/users", Some(alice())).await;
        assert_eq!(status, 401, "auth comes before faults");

        let mut seen = Vec::new();
        for _ in 0..5 {
            let (status, retry_after, body) = call(&demo, "POST", "/api/users", Some(alice())).await;
            seen.push((status, retry_after, body["error"].as_str().map(str::to_owned)));
        }
        assert_eq!(
            seen,
            [
                (503, None, Some("injected fault: 503 Service Unavailable".to_owned())),
                (503, None, Some("injected fault: 503 Service Unavailable".to_owned())),
                (429, Some("2".to_owned()), Some("injected fault: 429 Too Many Requests".to_owned())),
                (400, None, Some("email domain not allowed".to_owned())),
                (201, None, None),
            ]
        );
        let (_, _, pending) = call_with_key(&demo, None, "GET", "/_demo/faults", None).await;
        assert_eq!(pending, json!({"pending": []}));
        assert_eq!(demo.users().await.len(), 1, "faulted calls change nothing");

        let events = demo.events().await;
        let summary: Vec<(u16, bool, Option<&str>)> =
            events.iter().map(|e| (e.status, e.fault, e.user_id.as_deref())).collect();
        assert_eq!(
            summary,
            [
                (401, false, None),
                (503, true, None),
                (503, true, None),
                (429, true, None),
                (400, true, None),
                (201, false, Some("u1"))
            ]
        );
        assert!(events.iter().all(|e| e.body == alice()));

        // Queued through the API; DELETE clears them.
        demo.inject(FaultSpec::new([FaultResponse::status(500), FaultResponse::status(502)])).await.expect("inject");
        assert_eq!(demo.pending_faults().await.len(), 2);
        let (status, _, _) = call_with_key(&demo, None, "DELETE", "/_demo/faults", None).await;
        assert_eq!(status, 204);
        let (status, _, _) = call(&demo, "GET", "/api/users/u1", None).await;
        assert_eq!(status, 200);
        assert!(demo.inject(FaultSpec::new([FaultResponse::status(42)])).await.is_err());
        let (status, _, _) =
            call_with_key(&demo, None, "POST", "/_demo/faults", Some(json!({"responses": [{"status": 700}]}))).await;
        assert_eq!(status, 400);
        assert!(demo.pending_faults().await.is_empty());
    }

    #[tokio::test]
    async fn faults_match_per_entry_and_can_apply_or_delay() {
        let demo = start().await;
        let (_, _, user) = call(&demo, "POST", "/api/users", Some(alice())).await;
        demo.inject(FaultSpec::new([FaultResponse::status(503)]).matching("delete", "/api/users/"))
            .await
            .expect("inject");
        demo.inject(FaultSpec::new([FaultResponse::status(504).applied()]).matching("PUT", "/api/users/u1"))
            .await
            .expect("inject");
        // The PUT fault is taken by the first PUT even though the DELETE fault was queued first.
        let (status, _, _) = call(&demo, "PUT", "/api/users/u1", Some(json!({"role": "user"}))).await;
        assert_eq!(status, 504);
        assert_eq!(demo.users().await[0].role.as_deref(), Some("user"), "an applied fault still changes the store");
        let (status, _, _) = call(&demo, "DELETE", "/api/users/u1", None).await;
        assert_eq!(status, 503);
        assert_eq!(demo.users().await.len(), 1);

        demo.inject(FaultSpec::new([FaultResponse::status(200).delay_ms(400)])).await.expect("inject");
        let _ = idlcm::connector::http_client();
        let slow = Client::builder().timeout(Duration::from_millis(100)).build().expect("client");
        let timed_out = slow.get(format!("{}/api/users", demo.url)).bearer_auth(KEY).send().await;
        assert!(timed_out.is_err_and(|e| e.is_timeout()));
        // A delayed answer does not hold up the next call.
        let (status, _, got) = call(&demo, "GET", "/api/users/u1", None).await;
        assert_eq!((status, &got["id"]), (200, &user["id"]));
        let events = demo.events().await;
        let summary: Vec<(&str, u16, bool)> = events.iter().map(|e| (e.method.as_str(), e.status, e.fault)).collect();
        assert_eq!(summary, [("POST", 201, false), ("PUT", 504, true), ("DELETE", 503, true), ("GET", 200, true)]);
    }

    #[tokio::test]
    async fn event_log_records_mutating_calls_in_order() {
        let demo = start().await;
        let viewer = json!({"email": "vic@example.com", "given_name": "Vic", "family_name": "V", "role": "viewer"});
        call(&demo, "POST", "/api/users", Some(viewer.clone())).await;
        call(&demo, "GET", "/api/users/u1", None).await;
        call(&demo, "PUT", "/api/users/u1", Some(json!({"role": "admin"}))).await;
        call(&demo, "POST", "/api/users/u1/deactivate", None).await;
        call(&demo, "POST", "/api/users", Some(json!({"email": "bad"}))).await;
        call(&demo, "PATCH", "/api/users/u1", Some(json!({"role": "user"}))).await;
        call(&demo, "DELETE", "/api/users/u1", None).await;
        call(&demo, "POST", "/api/nowhere", None).await;

        let (status, _, listed) = call_with_key(&demo, None, "GET", "/_demo/events", None).await;
        assert_eq!(status, 200);
        let events: Vec<Event> = serde_json::from_value(listed).expect("events");
        assert_eq!(events, demo.events().await);
        let summary: Vec<(u64, &str, &str, Option<&str>, u16)> = events
            .iter()
            .map(|e| (e.seq, e.method.as_str(), e.path.as_str(), e.user_id.as_deref(), e.status))
            .collect();
        assert_eq!(
            summary,
            [
                (1, "POST", "/api/users", Some("u1"), 201),
                (2, "PUT", "/api/users/u1", Some("u1"), 200),
                (3, "POST", "/api/users/u1/deactivate", Some("u1"), 200),
                (4, "POST", "/api/users", None, 400),
                (5, "PATCH", "/api/users/u1", Some("u1"), 405),
                (6, "DELETE", "/api/users/u1", Some("u1"), 204),
                (7, "POST", "/api/nowhere", None, 404),
            ]
        );
        assert_eq!(events[0].body, viewer);
        assert_eq!(events[1].body, json!({"role": "admin"}));
        assert_eq!(events[2].body, Value::Null);
        // What a test asserts with it: the app never saw this user without a role.
        assert!(
            events
                .iter()
                .filter(|e| e.user_id.as_deref() == Some("u1"))
                .all(|e| e.body.get("role") != Some(&Value::Null))
        );

        let (status, _, _) = call_with_key(&demo, None, "DELETE", "/_demo/events", None).await;
        assert_eq!(status, 204);
        assert!(demo.events().await.is_empty());
        call(&demo, "POST", "/api/users", Some(alice())).await;
        assert_eq!(demo.events().await[0].seq, 1, "numbering restarts with the log");
        let (status, _, _) = call_with_key(&demo, None, "POST", "/_demo/reset", None).await;
        assert_eq!(status, 204);
        assert!(demo.users().await.is_empty() && demo.events().await.is_empty());
        let (_, _, again) = call(&demo, "POST", "/api/users", Some(alice())).await;
        assert_eq!(again["id"], "u1");
    }

    #[tokio::test]
    async fn concurrent_calls_are_logged_in_store_order() {
        let demo = start().await;
        let calls = (0..20).map(|i| {
            let demo = &demo;
            async move { call(demo, "POST", "/api/users", Some(json!({"email": format!("user{i}@example.com")}))).await }
        });
        let results = futures_join_all(calls).await;
        assert!(results.iter().all(|(status, _, _)| *status == 201));
        let events = demo.events().await;
        let ids: Vec<String> = events.iter().map(|e| e.user_id.clone().expect("user id")).collect();
        let expected: Vec<String> = (1..=20).map(|n| format!("u{n}")).collect();
        assert_eq!(ids, expected, "event order is the order ids were given out");
    }

    /// Runs the futures concurrently on this task (no `futures` dependency).
    async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
        let mut set = Vec::new();
        for f in futures {
            set.push(Box::pin(f));
        }
        let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
                if output.is_none() {
                    match future.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *output = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
        })
        .await;
        outputs.into_iter().map(|o| o.expect("ready")).collect()
    }

    #[tokio::test]
    async fn page_lists_users_escaped_and_refreshes() {
        let demo = start().await;
        let user = json!({"email": "o'brien@example.com", "given_name": "<b>Pat</b>", "family_name": "O'Brien", "role": "user"});
        call(&demo, "POST", "/api/users", Some(user)).await;
        call(&demo, "POST", "/api/users/u1/deactivate", None).await;
        let response = idlcm::connector::http_client().get(format!("{}/", demo.url)).send().await.expect("GET /");
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
        let html = response.text().await.expect("html");
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
        assert!(html.contains("o&#39;brien@example.com"));
        assert!(html.contains("&lt;b&gt;Pat&lt;/b&gt; O&#39;Brien"));
        assert!(!html.contains("<b>Pat"));
        assert!(html.contains("<td>user</td><td>no</td>"));
        assert!(!html.contains("src=") && !html.contains("href="), "no external assets");
    }

    #[tokio::test]
    async fn only_loopback_and_stops_on_drop() {
        for addr in ["0.0.0.0:0", "[::1]:0", "127.0.0.2:0"] {
            let err = DemoApp::start(addr.parse().expect("addr"), KEY.to_owned(), vec![]).await.expect_err(addr);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{addr}");
        }
        let err = DemoApp::start("127.0.0.1:0".parse().expect("addr"), " ".to_owned(), vec![]).await.expect_err("key");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

        let demo = start().await;
        assert!(demo.url.starts_with("http://127.0.0.1:"));
        let url = format!("{}/api/users", demo.url);
        let (status, _, _) = call(&demo, "GET", "/api/users", None).await;
        assert_eq!(status, 200);
        drop(demo);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(idlcm::connector::http_client().get(url).bearer_auth(KEY).send().await.is_err(), "the server is gone");
    }

    #[test]
    fn timestamps_and_roles() {
        assert_eq!(format_rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(Duration::from_millis(951_782_400_007)), "2000-02-29T00:00:00.007Z");
        assert_eq!(format_rfc3339(Duration::from_secs(1_793_836_799)), "2026-11-04T23:59:59.000Z");
        assert_eq!(parse_roles(" admin, user ,,viewer "), ["admin", "user", "viewer"]);
        assert!(parse_roles("").is_empty());
    }
}
