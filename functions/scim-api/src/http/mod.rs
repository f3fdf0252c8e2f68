//! Request extractors, response types and middleware.

pub mod handlers;

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idlcm::auth;
use idlcm::config::{AdminTokenHashes, parse_token_hashes};
use idlcm::error::ScimError;
use idlcm::integration::IntegrationConfig;
use idlcm::metrics::{self, Unit};
use idlcm::service::Reply;
use idlcm::service::audit::Actor;
use idlcm::store::job_context::{Prefetch, Prefetched};
use serde_json::Value;
use tracing::Instrument;

use crate::AppState;

pub const SCIM_JSON: &str = "application/scim+json";

/// A SCIM error on the wire: RFC 7644 §3.12 JSON, `application/scim+json`.
#[derive(Debug)]
pub struct ApiError(pub ScimError);

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.0.to_json().to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if let Some(secs) = self.0.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A successful SCIM answer with its headers.
pub struct ApiReply(pub Reply);

impl IntoResponse for ApiReply {
    fn into_response(self) -> Response {
        let r = self.0;
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
        let mut resp = match r.body {
            Some(b) => (status, b.to_string()).into_response(),
            None => status.into_response(),
        };
        let h = resp.headers_mut();
        if r.status != 204 {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        }
        if let Some(v) = r.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            h.insert(header::ETAG, v);
        }
        if let Some(v) = r.location.filter(|_| r.status == 201).and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, v);
        }
        resp
    }
}

pub type ApiResult = Result<ApiReply, ApiError>;

/// The public base URL of the API: configured, else from the request's Host.
pub fn api_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.clone();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("https");
    format!("{proto}://{host}")
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(auth::bearer)
}

/// An authenticated SCIM request: the integration it targets, its configuration, its SCIM
/// base URL, and what the request is (method and SCIM path, for the Activity feed).
pub struct Scim {
    pub integration_id: String,
    pub integration: IntegrationConfig,
    pub base_url: String,
    pub method: String,
    pub path: String,
    /// The rows of the resource the request names, read with the configuration.
    pub prefetched: Prefetched,
}

/// What a SCIM request reads with its integration's configuration: the one resource its route
/// names, so that a read, replace, patch or delete of it starts with one read, not two
/// (docs/architecture.md "One read before the token check").
fn prefetch_for(method: &Method, route: Option<&str>, id: Option<&String>) -> Prefetch {
    let (Some(route), Some(id)) = (route, id) else {
        return Prefetch::Nothing;
    };
    let id = id.clone();
    match (route.ends_with("/Users/{id}"), route.ends_with("/Groups/{id}")) {
        (true, _) if *method == Method::GET => Prefetch::User(id),
        (true, _) if [Method::PUT, Method::PATCH, Method::DELETE].contains(method) => Prefetch::UserChange(id),
        (_, true) if [Method::GET, Method::PUT, Method::PATCH, Method::DELETE].contains(method) => Prefetch::Group(id),
        _ => Prefetch::Nothing,
    }
}

impl FromRequestParts<AppState> for Scim {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params: Path<HashMap<String, String>> =
            Path::from_request_parts(parts, state).await.map_err(|_| ScimError::not_found("unknown integration"))?;
        let iid = params.get("iid").cloned().unwrap_or_default();
        let unauthorized = || ApiError(ScimError::unauthorized("missing or invalid bearer token for this integration"));
        let token = bearer(parts).ok_or_else(unauthorized)?;
        // An unknown integration and a wrong token look the same: 401, nothing to probe.
        if iid.is_empty() || iid.len() > 64 || !iid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(unauthorized());
        }
        let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
        let prefetch = prefetch_for(&parts.method, route, params.get("id"));
        // The resource's rows are read before the token is checked, and dropped unseen when it
        // fails: a wrong token is answered the same whether or not the resource exists.
        let (record, prefetched) = state.store.integration_and(&iid, &prefetch).await.map_err(ScimError::from)?;
        let record = record.ok_or_else(unauthorized)?;
        if !auth::verify(token, &record.token_hashes) {
            return Err(unauthorized());
        }
        let integration = IntegrationConfig::from_json(record.config_json()).map_err(|e| {
            tracing::error!(integration_id = %iid, error = %e, "stored integration configuration is invalid");
            ScimError::internal("the integration's configuration is invalid")
        })?;
        // After the token: a stranger's requests never use an integration's allowance.
        idlcm::service::limits::admit(&state.store, &state.limiter, &iid, &integration.limits).await?;
        let base_url = format!("{}/scim/v2/{iid}", api_url(state, &parts.headers));
        let prefix = format!("/scim/v2/{iid}");
        let path = parts.uri.path().strip_prefix(&prefix).unwrap_or(parts.uri.path()).to_string();
        Ok(Scim { integration_id: iid, integration, base_url, method: parts.method.to_string(), path, prefetched })
    }
}

/// Who calls an admin route: the admin token, or an owner's (docs/contract.md "Owners and
/// audit"). An owner's token is looked up on every request, so a revoked one stops at once.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = || ApiError(ScimError::unauthorized("missing or invalid admin or owner token"));
        let token = bearer(parts).ok_or_else(unauthorized)?;
        let hashes = match &state.config.admin_token {
            AdminTokenHashes::Inline(hashes) => hashes.clone(),
            AdminTokenHashes::Reference(reference) => {
                let value = state.secrets.resolve(reference).await.map_err(|e| {
                    tracing::error!(error = %e, "admin token hash unavailable");
                    ApiError(ScimError::new(503, None, "the admin token hash cannot be read; see the function's log"))
                })?;
                parse_token_hashes(&value).map_err(|why| {
                    tracing::error!(reference = %reference, why, "admin token hash parameter is malformed");
                    ApiError(ScimError::new(503, None, "the admin token hash parameter is malformed"))
                })?
            }
        };
        if auth::verify(token, &hashes) {
            return Ok(Caller(Actor::Admin));
        }
        let owner = state.store.owner_by_token_hash(&auth::hash_token(token)).await.map_err(ScimError::from)?;
        match owner {
            Some(o) => Ok(Caller(Actor::Owner { id: o.id, name: o.name, integrations: o.integrations })),
            None => Err(unauthorized()),
        }
    }
}

/// A JSON request body: `application/scim+json` or `application/json` (any charset), or no
/// content type at all; at most [`crate::MAX_BODY_BYTES`].
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
        if let Some(ct) = content_type {
            let mime = ct.split(';').next().unwrap_or("").trim().to_string();
            if !(mime.is_empty()
                || mime == SCIM_JSON
                || mime == "application/json"
                || mime.ends_with("+json")
                || mime == "text/json")
            {
                return Err(ApiError(ScimError::new(
                    415,
                    None,
                    format!("unsupported content type '{mime}'; send application/scim+json"),
                )));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(413, None, format!("request body exceeds {} bytes", crate::MAX_BODY_BYTES))
            } else {
                ScimError::invalid_syntax("could not read the request body")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError(ScimError::invalid_syntax("a JSON request body is required")));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError(ScimError::invalid_syntax(format!("malformed JSON: {e}"))))
    }
}

/// Query parameters, names matched case-insensitively (`startIndex`, `StartIndex`).
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| ApiError(ScimError::invalid_syntax("malformed query string")))?;
        Ok(QueryParams(pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()))
    }
}

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// Every request runs in a span carrying its `request_id` (the Lambda invocation's, which API
/// Gateway's access log records as `lambdaRequestId`) and `integration_id`; every line logged while
/// serving it carries both. Then one line per request (method, route template, never the
/// query: filters carry PII; status; latency) and the `Requests`/`RequestLatency` metrics.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "-".into());
    let request_id = req
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let span = tracing::info_span!("http", request_id = %request_id, integration_id = tracing::field::Empty);
    if let Some(iid) = integration_of(req.uri().path()) {
        span.record("integration_id", iid);
    }
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| tracing::info!(%method, route, status, latency_ms, "request"));
    metrics::emit(
        &[("Route", &format!("{method} {route}")), ("Status", &status.to_string())],
        &[("Requests", Unit::Count, 1.0), ("RequestLatency", Unit::Milliseconds, latency_ms as f64)],
    );
    resp
}

/// The integration a path addresses (`/scim/v2/{id}/…`, `/admin/integrations/{id}…`,
/// `/callbacks/{id}/…`), if it looks like an id.
fn integration_of(path: &str) -> Option<&str> {
    let rest = ["/scim/v2/", "/admin/integrations/", "/callbacks/"].iter().find_map(|p| path.strip_prefix(p))?;
    let id = rest.split('/').next()?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(id)
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError(ScimError::internal("internal error")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "/scim/v2/{iid}/Users/{id}";
    const GROUP: &str = "/scim/v2/{iid}/Groups/{id}";

    fn prefetch(method: Method, route: &str, id: Option<&str>) -> Prefetch {
        prefetch_for(&method, Some(route), id.map(str::to_string).as_ref())
    }

    #[test]
    fn a_request_about_one_resource_reads_it_with_the_configuration() {
        let id = Some("01J0000000000000000000000A");
        let user = || "01J0000000000000000000000A".to_string();
        assert_eq!(prefetch(Method::GET, USER, id), Prefetch::User(user()));
        for m in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(prefetch(m.clone(), USER, id), Prefetch::UserChange(user()), "{m}");
            assert_eq!(prefetch(m, GROUP, id), Prefetch::Group(user()));
        }
        assert_eq!(prefetch(Method::GET, GROUP, id), Prefetch::Group(user()));
    }

    #[test]
    fn other_requests_read_the_configuration_alone() {
        assert_eq!(prefetch(Method::POST, "/scim/v2/{iid}/Users", None), Prefetch::Nothing);
        assert_eq!(prefetch(Method::GET, "/scim/v2/{iid}/Users", None), Prefetch::Nothing);
        assert_eq!(prefetch(Method::POST, "/scim/v2/{iid}/Users/.search", None), Prefetch::Nothing);
        assert_eq!(prefetch(Method::GET, "/scim/v2/{iid}/Schemas/{id}", Some("urn:x")), Prefetch::Nothing);
        assert_eq!(prefetch(Method::GET, "/scim/v2/{iid}/Roles/{id}", Some("admin")), Prefetch::Nothing);
        assert_eq!(prefetch_for(&Method::GET, None, None), Prefetch::Nothing);
    }
}
