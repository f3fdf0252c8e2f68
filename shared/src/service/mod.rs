//! The SCIM service: what each SCIM request does, as plain async functions over the
//! [`Store`]. The `scim-api` function only translates HTTP to these calls and back.

pub mod activity;
pub mod admin;
pub mod audit;
pub mod callback;
pub mod connection;
pub mod discovery;
pub mod fanout;
pub mod groups;
pub mod limits;
pub mod list;
pub mod offboard;
pub mod owners;
pub mod provision;
pub mod reconfigure;
pub mod render;
pub mod resync;
pub mod roles;
pub mod users;

use serde_json::Value;

use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::queue::Queue;
use crate::store::job_context::Prefetched;
use crate::store::resources::{Kind, Stored, WriteError};
use crate::store::{Store, StoreError};

/// How many times a write re-reads and retries after losing an optimistic-lock race.
pub const WRITE_ATTEMPTS: usize = 8;

/// One integration's SCIM endpoint, as seen by a request.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub queue: &'a Queue,
    pub integration_id: &'a str,
    pub integration: &'a IntegrationConfig,
    /// The integration's SCIM base URL, `{api}/scim/v2/{integration_id}`.
    pub base_url: &'a str,
    /// What triggered this request, for the Activity feed: HTTP method and SCIM path
    /// (relative to the base URL, without the query).
    pub method: &'a str,
    pub path: &'a str,
    /// Rows of the resource the request is about, read with the configuration (a SCIM
    /// request's first attempt uses them; `None` outside a SCIM request).
    pub prefetched: Option<&'a Prefetched>,
}

impl<'a> Ctx<'a> {
    /// A context outside any SCIM request (a fan-out page, an offboarding, a re-plan): no base
    /// URL, no trigger, nothing read ahead.
    pub fn background(
        store: &'a Store,
        queue: &'a Queue,
        integration_id: &'a str,
        integration: &'a IntegrationConfig,
    ) -> Self {
        Ctx { store, queue, integration_id, integration, base_url: "", method: "", path: "", prefetched: None }
    }
}

/// A SCIM answer: status, optional body, optional ETag and Location headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), etag: None, location: None }
    }
    pub fn no_content() -> Self {
        Self { status: 204, body: None, etag: None, location: None }
    }
}

/// Storage failures are ours, not the client's: 500 (or 503 when DynamoDB throttles).
impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        match e.throttled() {
            true => ScimError::unavailable("the service is busy; retry later"),
            false => ScimError::internal("internal storage error"),
        }
    }
}

/// The resource `id`: on a first attempt (`first`) as the request read it with its
/// configuration, when it did; else read now.
pub(crate) async fn read_resource(ctx: Ctx<'_>, kind: Kind, id: &str, first: bool) -> ScimResult<Option<Stored>> {
    if first && let Some(read) = ctx.prefetched.and_then(|p| p.resource(kind, id)) {
        return Ok(read?);
    }
    Ok(ctx.store.get_resource(ctx.integration_id, kind, id).await?)
}

pub(crate) fn write_error(kind: Kind, e: WriteError, doc: &serde_json::Map<String, Value>) -> ScimError {
    match e {
        WriteError::Conflict(attr) => {
            let what = match attr {
                "externalId" => format!("a {} with this externalId already exists", kind.name()),
                other => {
                    let v = doc.get(other).and_then(Value::as_str).unwrap_or("");
                    format!("{other} '{v}' is already taken by another {}", kind.name())
                }
            };
            ScimError::uniqueness(what)
        }
        WriteError::VersionMismatch => ScimError::precondition_failed("the resource was modified concurrently"),
        WriteError::Contended => ScimError::unavailable("too many concurrent changes; retry"),
        WriteError::Store(s) => s.into(),
    }
}

/// `ETag` of a version (weak: the representation may vary with `attributes`).
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// RFC 7232 If-Match against the current version: `*` or any listed tag (weak comparison).
pub fn if_match_ok(if_match: Option<&str>, current: &Stored) -> bool {
    let Some(header) = if_match else { return true };
    let current = etag(current.version);
    let strip = |t: &str| t.trim().trim_start_matches("W/").trim_matches('"').to_string();
    header.split(',').any(|t| t.trim() == "*" || strip(t) == strip(&current))
}

/// The size limits of a resource, checked before anything is written (docs/contract.md
/// "Limits"): unique keys of at most [`crate::store::keys::MAX_KEY_VALUE_BYTES`], and a stored
/// resource (a group without its members) of at most [`MAX_RESOURCE_BYTES`]. DynamoDB's item limit
/// is 400 KB, and a user's mapped attributes are copied into its assignment rows and jobs.
pub(crate) fn check_limits(kind: Kind, doc: &serde_json::Map<String, Value>) -> Result<(), ScimError> {
    let size = serde_json::to_vec(doc).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_RESOURCE_BYTES {
        return Err(ScimError::invalid_value(format!(
            "the {} would be {size} bytes; a stored {} may be at most {MAX_RESOURCE_BYTES} bytes",
            kind.name(),
            kind.name()
        )));
    }
    for attr in [kind.unique_attr(), "externalId"] {
        if let Some(Value::String(v)) = doc.get(attr)
            && v.len() > crate::store::keys::MAX_KEY_VALUE_BYTES
        {
            return Err(ScimError::invalid_value(format!(
                "{attr} is longer than {} bytes",
                crate::store::keys::MAX_KEY_VALUE_BYTES
            )));
        }
    }
    Ok(())
}

/// Largest request body accepted: 413 above it (a 1,000-member group PUT is ~100 KB; Lambda's
/// limit is 6 MB).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Largest stored resource, in bytes of its JSON (docs/contract.md "Limits").
pub const MAX_RESOURCE_BYTES: usize = 64 * 1024;

pub use crate::time::now;
