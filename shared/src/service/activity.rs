//! The Activity feed: provisioning requests newest first, one request with its jobs, one
//! user's history, and retrying a failed job. Every listing is a key-range query (on the
//! table, or on the user-jobs index), never a scan.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use super::Reply;
use crate::error::{ScimError, ScimResult};
use crate::queue::{JobMessage, Queue};
use crate::store::provisioning::{JobRow, RequestRow, parse_assignment, status};
use crate::store::resources::Kind;
use crate::store::{Item, Store, keys};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// Query parameters of the listings.
#[derive(Debug, Default, Clone)]
pub struct ActivityParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub status: Option<String>,
    /// A user id or userName.
    pub user: Option<String>,
    /// RFC 3339 time range (inclusive).
    pub since: Option<String>,
    pub until: Option<String>,
}

const REQUEST_STATUSES: [&str; 5] =
    [status::REQUESTED, status::IN_PROGRESS, status::SUCCEEDED, status::PARTIALLY_FAILED, status::FAILED];

fn limit(p: &ActivityParams) -> ScimResult<usize> {
    match p.limit.as_deref() {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ScimError::invalid_value(format!("limit must be an integer from 1 to {MAX_LIMIT}"))),
    }
}

/// Cursors are opaque: base64url of the position (table or index keys). Decoding checks that
/// the position belongs to the listing asked for, so a cursor cannot reach another
/// integration's data.
fn encode_cursor(key: Option<Item>) -> Value {
    let Some(key) = key else { return Value::Null };
    let map: HashMap<String, String> =
        key.into_iter().filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.clone()))).collect();
    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&map).unwrap_or_default()))
}

fn decode_cursor(cursor: Option<&str>, index_pk: (&str, &str), pk: &str) -> ScimResult<Option<Item>> {
    let Some(map) = cursor_map(cursor)? else { return Ok(None) };
    let bad = || ScimError::invalid_value("invalid cursor");
    let allowed = [keys::PK, keys::SK, index_pk.0, "gsi2sk"];
    if map.get(index_pk.0).map(String::as_str) != Some(index_pk.1)
        || map.get(keys::PK).map(String::as_str) != Some(pk)
        || map.keys().any(|k| !allowed.contains(&k.as_str()))
    {
        return Err(bad());
    }
    Ok(Some(map.into_iter().map(|(k, v)| (k, crate::store::s(v))).collect()))
}

fn cursor_map(cursor: Option<&str>) -> ScimResult<Option<HashMap<String, String>>> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || ScimError::invalid_value("invalid cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
}

/// A position in an integration's `REQUEST#` rows. A cursor given out before the listing read
/// the table instead of the `ACTIVITY#` index (it also names `gsi1pk`/`gsi1sk`) still works:
/// its table keys are the same.
fn decode_request_cursor(cursor: Option<&str>, iid: &str) -> ScimResult<Option<Item>> {
    let Some(map) = cursor_map(cursor)? else { return Ok(None) };
    let bad = || ScimError::invalid_value("invalid cursor");
    let old_index = format!("ACTIVITY#{iid}");
    if map.get(keys::PK).map(String::as_str) != Some(&keys::integration_pk(iid))
        || !map.get(keys::SK).is_some_and(|sk| sk.starts_with(keys::REQUEST_PREFIX))
        || map.get(keys::GSI1_PK).is_some_and(|g| *g != old_index)
        || map.keys().any(|k| ![keys::PK, keys::SK, keys::GSI1_PK, keys::GSI1_SK].contains(&k.as_str()))
    {
        return Err(bad());
    }
    let key = [keys::PK, keys::SK].map(|k| (k.to_string(), crate::store::s(map[k].clone())));
    Ok(Some(key.into_iter().collect()))
}

/// Request-id bounds (ULIDs sort by time) for an RFC 3339 range.
fn id_range(p: &ActivityParams) -> ScimResult<(String, String)> {
    let bound = |v: Option<&str>, end: bool| -> ScimResult<String> {
        let Some(t) = v.filter(|t| !t.is_empty()) else {
            return Ok(if end { "Z".repeat(26) } else { "0".repeat(26) });
        };
        let ms = chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| ScimError::invalid_value(format!("'{t}' is not an RFC 3339 time")))?
            .timestamp_millis()
            .max(0) as u64;
        let random = if end { u128::MAX } else { 0 };
        Ok(ulid::Ulid::from_parts(ms, random).to_string())
    };
    Ok((bound(p.since.as_deref(), false)?, bound(p.until.as_deref(), true)?))
}

fn request_json(r: &RequestRow) -> Value {
    let done = r.succeeded + r.failed + r.superseded + r.drift;
    let mut out = json!({
        "id": r.id,
        "created_at": r.created_at,
        "finished_at": r.finished_at,
        "trigger": { "method": r.method, "path": r.path, "resource_type": r.resource_type, "resource_id": r.resource_id },
        "status": r.status,
        // Superseded jobs count as succeeded: the app holds the desired state.
        "progress": {
            "total": r.total,
            "succeeded": r.succeeded + r.superseded,
            "failed": r.failed,
            "pending": r.total.saturating_sub(done),
        },
    });
    // A resync's differences (report mode), and what a request wants its reader to know.
    if r.drift > 0 {
        out["progress"]["drift"] = json!(r.drift);
    }
    if let Some(note) = &r.note {
        out["note"] = json!(note);
    }
    out
}

fn job_json(j: &JobRow) -> Value {
    json!({
        "id": j.id,
        "request_id": j.request_id,
        "user": { "id": j.user_id, "userName": j.user_name },
        "action": j.action,
        "applied_action": j.applied_action,
        "changed": j.changed,
        "before": parse_assignment(j.before.as_deref()),
        "after": parse_assignment(j.after.as_deref()),
        "status": j.status,
        "attempts": j.attempts,
        "error": j.error,
        "detail": j.detail,
        "created_at": j.created_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
    })
}

/// A user named by id or userName.
async fn resolve_user(store: &Store, iid: &str, user: &str) -> ScimResult<String> {
    if keys::is_resource_id(user) {
        return Ok(user.to_string());
    }
    match store.find_unique(iid, Kind::User, "userName", user).await? {
        Some(u) => Ok(u.id),
        None => Err(ScimError::not_found("no such user")),
    }
}

/// `GET /admin/integrations/{id}/activity`.
pub async fn list(store: &Store, iid: &str, p: &ActivityParams) -> ScimResult<Reply> {
    let limit = limit(p)?;
    if let Some(s) = p.status.as_deref().filter(|s| !REQUEST_STATUSES.contains(s)) {
        return Err(ScimError::invalid_value(format!("unknown status '{s}'; one of {}", REQUEST_STATUSES.join(", "))));
    }
    if let Some(user) = p.user.as_deref().filter(|u| !u.is_empty()) {
        return list_for_user(store, iid, user, limit, p).await;
    }
    let start = decode_request_cursor(p.cursor.as_deref(), iid)?;
    let (rows, next) = store.activity_page(iid, limit, start, p.status.as_deref(), id_range(p)?).await?;
    Ok(Reply::json(
        200,
        json!({ "items": rows.iter().map(request_json).collect::<Vec<_>>(), "next_cursor": encode_cursor(next) }),
    ))
}

/// Requests that touched one user: through the user's job index.
async fn list_for_user(store: &Store, iid: &str, user: &str, limit: usize, p: &ActivityParams) -> ScimResult<Reply> {
    let uid = resolve_user(store, iid, user).await?;
    let index_pk = keys::user_jobs_gsi_pk(iid, &uid);
    let mut start = decode_cursor(p.cursor.as_deref(), ("gsi2pk", &index_pk), &keys::integration_pk(iid))?;
    let (from, to) = id_range(p)?;
    let mut items: Vec<RequestRow> = Vec::new();
    for _ in 0..20 {
        let (jobs, next) = store.user_jobs_page(iid, &uid, limit - items.len(), start.take()).await?;
        let ids: Vec<String> = jobs
            .iter()
            .map(|j| j.request_id.clone())
            .filter(|r| *r >= from && *r <= to && !items.iter().any(|i| &i.id == r))
            .collect();
        let rows = store.get_requests(iid, &ids).await?;
        items.extend(rows.into_iter().filter(|r| p.status.as_deref().is_none_or(|s| r.status == s)));
        start = next;
        if items.len() >= limit || start.is_none() {
            break;
        }
    }
    Ok(Reply::json(
        200,
        json!({ "items": items.iter().map(request_json).collect::<Vec<_>>(), "next_cursor": encode_cursor(start) }),
    ))
}

/// `GET /admin/integrations/{id}/activity/{request_id}`: the request and its jobs.
pub async fn detail(store: &Store, iid: &str, request_id: &str) -> ScimResult<Reply> {
    if !keys::is_resource_id(request_id) {
        return Err(ScimError::not_found("no such request"));
    }
    let request = store.get_request(iid, request_id).await?.ok_or_else(|| ScimError::not_found("no such request"))?;
    let jobs = store.request_jobs(iid, request_id).await?;
    let mut v = request_json(&request);
    v["jobs"] = Value::Array(jobs.iter().map(job_json).collect());
    Ok(Reply::json(200, v))
}

/// `GET /admin/integrations/{id}/users/{user}/activity`: one user's jobs, newest first.
pub async fn user_history(store: &Store, iid: &str, user: &str, p: &ActivityParams) -> ScimResult<Reply> {
    let limit = limit(p)?;
    let uid = resolve_user(store, iid, user).await?;
    let start =
        decode_cursor(p.cursor.as_deref(), ("gsi2pk", &keys::user_jobs_gsi_pk(iid, &uid)), &keys::integration_pk(iid))?;
    let (jobs, next) = store.user_jobs_page(iid, &uid, limit, start).await?;
    Ok(Reply::json(
        200,
        json!({ "user": { "id": uid }, "items": jobs.iter().map(job_json).collect::<Vec<_>>(), "next_cursor": encode_cursor(next) }),
    ))
}

/// `POST /admin/integrations/{id}/jobs/{job_id}/retry`: a failed job goes back to the queue.
/// The worker reconciles to the user's current desired state, not the job's stale one.
pub async fn retry(store: &Store, queue: &Queue, iid: &str, job_id: &str) -> ScimResult<Reply> {
    let job = store.get_job(iid, job_id).await?.ok_or_else(|| ScimError::not_found("no such job"))?;
    if job.status != status::FAILED {
        return Err(ScimError::new(409, None, format!("only failed jobs can be retried; this one is {}", job.status)));
    }
    if !store.job_requeue(&job, &super::now()).await? {
        return Err(ScimError::new(409, None, "the job changed; reload it"));
    }
    let retries = store.get_job(iid, job_id).await?.map_or(1, |j| j.retries.max(1));
    let message = JobMessage { retry: retries, ..JobMessage::new(iid, &job.id, &job.user_id) };
    let unsent = queue.send(std::slice::from_ref(&message)).await;
    tracing::info!(integration_id = %iid, job_id = %job.id, unsent, "failed job re-queued by an admin");
    Ok(Reply::json(202, json!({ "job_id": job.id, "status": status::QUEUED })))
}

#[cfg(test)]
#[path = "activity_tests.rs"]
mod tests;
