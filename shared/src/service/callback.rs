//! `POST /callbacks/{integration_id}/jobs/{job_id}`: a webhook robot that answered `202`
//! reports the outcome, signed like the delivery (`X-Idlcm-Signature: sha256=<hex HMAC>`).

use serde_json::{Value, json};

use super::Reply;
use crate::connector::{ConnectorConfig, ConnectorError, resolve_secret, resolve_secret_ref, webhook};
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::store::provisioning::{parse_assignment, status};

pub async fn job_callback(
    store: &Store,
    secrets: &Secrets,
    iid: &str,
    job_id: &str,
    signature: Option<&str>,
    body: &[u8],
) -> ScimResult<Reply> {
    // Unknown integration, unknown job and a bad signature all look alike: 401 or 404 without detail.
    let record = store.get_integration(iid).await?.ok_or_else(|| ScimError::not_found("no such job"))?;
    let cfg = IntegrationConfig::from_json(record.config_json())?;
    if !matches!(cfg.connector, ConnectorConfig::Webhook(_)) {
        return Err(ScimError::not_found("no such job"));
    }
    // A secret that cannot be read right now is 503: the robot retries its callback.
    let unavailable = |e: ConnectorError| {
        tracing::error!(error = %e, "webhook secret unavailable");
        let status = if matches!(e, ConnectorError::Retryable { .. }) { 503 } else { 500 };
        ScimError::new(status, None, "the webhook secret is not available")
    };
    let ConnectorConfig::Webhook(hook) = resolve_secret_ref(&cfg.connector, secrets).await.map_err(unavailable)? else {
        return Err(ScimError::not_found("no such job"));
    };
    let secret = resolve_secret(hook.secret.as_deref(), hook.secret_ref.as_deref())
        .map_err(unavailable)?
        .ok_or_else(|| ScimError::internal("the webhook secret is not available"))?;
    if !signature.is_some_and(|s| webhook::verify(secret.as_bytes(), body, s)) {
        return Err(ScimError::unauthorized("missing or invalid X-Idlcm-Signature"));
    }
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| ScimError::invalid_syntax(format!("malformed JSON: {e}")))?;
    let outcome = payload.get("status").and_then(Value::as_str).unwrap_or("");
    let detail = payload.get("detail").and_then(Value::as_str).map(|d| d.chars().take(500).collect::<String>());
    if outcome != status::SUCCEEDED && outcome != status::FAILED {
        return Err(ScimError::invalid_value("'status' must be \"succeeded\" or \"failed\""));
    }
    let job = store.get_job(iid, job_id).await?.ok_or_else(|| ScimError::not_found("no such job"))?;
    if status::is_terminal(&job.status) {
        // Idempotent: the same outcome again is fine; a different one is a conflict.
        return if job.status == outcome {
            Ok(Reply::json(200, json!({ "job_id": job.id, "status": job.status })))
        } else {
            Err(ScimError::new(409, None, format!("job already {}", job.status)))
        };
    }
    let Some(seq) = job.sent_seq else {
        return Err(ScimError::new(409, None, "the job is not waiting for a callback"));
    };
    if outcome == status::SUCCEEDED {
        let sent = parse_assignment(job.sent.as_deref());
        let app_id = store.get_applied(iid, &job.user_id).await?.and_then(|a| a.app_id);
        store.record_applied(iid, &job.user_id, sent.as_ref(), seq, app_id).await?;
        store.finish_job(&job, status::SUCCEEDED, None, detail.as_deref(), job.applied_action.as_deref()).await?;
        crate::metrics::job_applied(job.applied_action.as_deref().unwrap_or(&job.action), &job);
    } else {
        let error = detail.clone().unwrap_or_else(|| "the webhook reported a failure".into());
        store.finish_job(&job, status::FAILED, Some(&error), None, job.applied_action.as_deref()).await?;
        crate::metrics::job(job.applied_action.as_deref().unwrap_or(&job.action), status::FAILED);
    }
    tracing::info!(integration_id = %iid, job_id = %job.id, outcome, "webhook callback recorded");
    Ok(Reply::json(200, json!({ "job_id": job.id, "status": outcome })))
}
