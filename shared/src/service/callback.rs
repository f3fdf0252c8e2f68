//! `POST /callbacks/{integration_id}/jobs/{job_id}`: a webhook robot that answered `202`
//! reports the outcome (docs/contract.md "Webhook delivery and callbacks"): signed like the
//! delivery (`X-Idlcm-Signature: t=…,v1=…` over `"<t>.<raw body>"`), carrying its `job_id`.
//! A bad or stale signature, an unknown integration or a `job_id` other than the URL's: 401.
//! A job that is not awaiting a callback (finished already, or never delivered): 409. So a
//! captured callback cannot be replayed later, nor used to finish another job.

use serde_json::{Value, json};

use super::Reply;
use crate::connector::{ConnectorConfig, ConnectorError, resolve_secret, resolve_secret_ref, webhook};
use crate::delivery::{self, Ending};
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::queue::Queue;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::store::job_context::Prefetch;
use crate::store::keys;
use crate::store::provisioning::{JobGuard, status};

fn unauthorized() -> ScimError {
    ScimError::unauthorized("missing, invalid or stale X-Idlcm-Signature")
}

fn not_awaiting(why: &str) -> ScimError {
    ScimError::new(409, None, format!("the job is not awaiting a callback: {why}"))
}

pub async fn job_callback(
    store: &Store,
    queue: &Queue,
    secrets: &Secrets,
    iid: &str,
    job_id: &str,
    signature: Option<&str>,
    body: &[u8],
) -> ScimResult<Reply> {
    // An unknown integration looks like a bad signature: ids cannot be told apart from outside.
    // The job is read with the configuration (docs/architecture.md "One read before the token
    // check") and used only once the signature holds.
    let (record, prefetched) = store.integration_and(iid, &Prefetch::Job(job_id.to_string())).await?;
    let Some(record) = record else { return Err(unauthorized()) };
    let cfg = IntegrationConfig::from_json(record.config_json())?;
    if !matches!(cfg.connector, ConnectorConfig::Webhook(_)) {
        return Err(unauthorized());
    }
    // A secret that cannot be read right now is 503: the robot retries its callback.
    let unavailable = |e: ConnectorError| {
        tracing::error!(error = %e, "webhook secret unavailable");
        let status = if matches!(e, ConnectorError::Retryable { .. }) { 503 } else { 500 };
        ScimError::new(status, None, "the webhook secret is not available")
    };
    let ConnectorConfig::Webhook(hook) = resolve_secret_ref(&cfg.connector, secrets).await.map_err(unavailable)? else {
        return Err(unauthorized());
    };
    let secret = resolve_secret(hook.secret.as_deref(), hook.secret_ref.as_deref())
        .map_err(unavailable)?
        .ok_or_else(|| ScimError::internal("the webhook secret is not available"))?;
    if let Err(why) = webhook::verify(secret.as_bytes(), body, signature.unwrap_or("")) {
        tracing::info!(integration_id = %iid, reason = ?why, "webhook callback refused");
        return Err(unauthorized());
    }
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| ScimError::invalid_syntax(format!("malformed JSON: {e}")))?;
    // The signature covers the body, and the body names the job: bound to this job only.
    if payload.get("job_id").and_then(Value::as_str) != Some(job_id) {
        tracing::info!(integration_id = %iid, "webhook callback refused: job_id missing or not the URL's");
        return Err(unauthorized());
    }
    let outcome = payload.get("status").and_then(Value::as_str).unwrap_or("");
    let detail = payload.get("detail").and_then(Value::as_str).map(|d| d.chars().take(500).collect::<String>());
    if outcome != status::SUCCEEDED && outcome != status::FAILED {
        return Err(ScimError::invalid_value("'status' must be \"succeeded\" or \"failed\""));
    }
    if !keys::is_job_id(job_id) {
        return Err(ScimError::not_found("no such job"));
    }
    let job = match prefetched.job(job_id) {
        Some(read) => read?,
        None => store.get_job(iid, job_id).await?,
    };
    let job = job.ok_or_else(|| ScimError::not_found("no such job"))?;
    if status::is_terminal(&job.status) {
        return Err(not_awaiting(&format!("it is already {}", job.status)));
    }
    let pending = store.get_applied(iid, &job.user_id).await?.and_then(|a| a.pending_job);
    let awaiting = job.status == status::RUNNING
        && (pending.as_deref() == Some(job_id) || (job.awaiting_until.is_some() && pending.is_none()));
    if !awaiting {
        return Err(not_awaiting(&format!("it is {}", job.status)));
    }
    let ending = match outcome {
        status::SUCCEEDED => Ending::Confirmed { detail: detail.as_deref() },
        _ => Ending::Failed { error: detail.as_deref().unwrap_or("the webhook reported a failure") },
    };
    // Guarded: of two callbacks racing, one finishes the job; the other is told 409.
    if !delivery::end(store, queue, &job, ending, JobGuard::Running).await? {
        return Err(not_awaiting("another callback finished it"));
    }
    tracing::info!(integration_id = %iid, job_id = %job.id, outcome, "webhook callback recorded");
    Ok(Reply::json(200, json!({ "job_id": job.id, "status": outcome })))
}
