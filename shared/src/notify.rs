//! Failure notifications (docs/contract.md "Failure notifications"): when a job fails for good,
//! or a request ends `failed` or `partially_failed`, the integration's `notify.url` gets one
//! signed POST, so its owners hear of it without watching the Activity page.
//!
//! The failure is recorded first; the notification is a message on the job queue (its own
//! FIFO group per integration), sent by the worker. So a slow or failing receiver never holds
//! up a job, a 429/5xx/timeout is retried with the queue's backoff, and a duplicate delivery
//! carries the same `X-Idlcm-Event` id for the receiver to drop. If the process dies between
//! recording the failure and queueing the message, that one notification is lost (the failure
//! stays in Activity and in the `JobsFailed` metric).

use std::time::Duration;

use serde_json::{Value, json};

use crate::connector::Outbound;
use crate::connector::webhook::{SIGNATURE_HEADER, sign};
use crate::integration::NotifyConfig;
use crate::queue::{NotifyMessage, Queue};
use crate::store::Store;
use crate::store::provisioning::{Finished, JobRow, RequestRow, status};

/// The header carrying the event id (the receiver's deduplication key).
pub const EVENT_HEADER: &str = "X-Idlcm-Event";

/// How long a receiver may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The notifications a finished job calls for: the job's own when it failed, and its request's
/// when the job was the last and the request ended with failures. Pure.
pub fn messages(job: &JobRow, job_status: &str, finished: Finished) -> Vec<NotifyMessage> {
    let Finished::Now { request, .. } = finished else { return Vec::new() };
    let mut out = Vec::new();
    if job_status == status::FAILED {
        out.push(NotifyMessage {
            integration_id: job.integration_id.clone(),
            notify: "job.failed".into(),
            request_id: job.request_id.clone(),
            job_id: Some(job.id.clone()),
        });
    }
    if let Some(s @ (status::FAILED | status::PARTIALLY_FAILED)) = request {
        out.push(NotifyMessage {
            integration_id: job.integration_id.clone(),
            notify: format!("request.{s}"),
            request_id: job.request_id.clone(),
            job_id: None,
        });
    }
    out
}

/// Queues the notifications a finished job calls for ([`messages`]), when its integration has
/// `notify` set: the configuration is read only then (a failure path), so an integration
/// without notifications costs nothing more. A read that fails is logged; the failure itself
/// is recorded already.
pub async fn queue_for(store: &Store, queue: &Queue, job: &JobRow, job_status: &str, finished: Finished) {
    let notices = messages(job, job_status, finished);
    if notices.is_empty() {
        return;
    }
    let wanted = match store.get_integration(&job.integration_id).await {
        Ok(Some(record)) => record.config_json().get("notify").is_some_and(|n| !n.is_null()),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "failure notification not queued: the integration could not be read");
            crate::metrics::emit(&[], &[("NotificationsFailed", crate::metrics::Unit::Count, 1.0)]);
            false
        }
    };
    if wanted {
        queue.send_notifications(&notices).await;
    }
}

/// The body sent: what happened, where to look, and nothing the receiver could not already
/// see in Activity (no attribute values beyond the user's name). `at` is when the job or the
/// request finished (`now` if that is unknown), so a retry sends the same body. Pure.
pub fn payload(
    m: &NotifyMessage,
    integration_name: &str,
    job: Option<&JobRow>,
    request: Option<&RequestRow>,
    now: &str,
) -> Value {
    let finished = job.and_then(|j| j.finished_at.as_deref()).or(request.and_then(|r| r.finished_at.as_deref()));
    let at = finished.unwrap_or(now);
    let mut body = json!({
        "id": m.event_id(),
        "event": m.notify,
        "at": at,
        "integration": { "id": m.integration_id, "name": integration_name },
        "request_id": m.request_id,
    });
    if let Some(j) = job {
        body["job"] = json!({
            "id": j.id,
            "user_id": j.user_id,
            "userName": j.user_name,
            "action": j.applied_action.as_deref().unwrap_or(&j.action),
            "error": j.error,
        });
    }
    if let Some(r) = request {
        body["request"] = json!({
            "status": r.status,
            "method": r.method,
            "path": r.path,
            "progress": { "total": r.total, "succeeded": r.succeeded, "failed": r.failed },
        });
    }
    body
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The integration has no `notify` (any more): nothing to send.
    Off,
    Delivered(u16),
    /// 408, 429, 5xx, a timeout or a connection failure: worth another try.
    Retry(String),
    /// Any other answer, or a URL the outbound rule refuses: another try would end the same.
    GiveUp(String),
}

/// Sorts a receiver's status code. Pure.
pub fn classify(code: u16) -> Sent {
    match code {
        200..=299 => Sent::Delivered(code),
        408 | 429 | 500..=599 => Sent::Retry(format!("the receiver answered {code}")),
        _ => Sent::GiveUp(format!("the receiver answered {code}")),
    }
}

/// One signed POST of `body` to the integration's `notify.url`.
pub async fn deliver(outbound: &Outbound, cfg: &NotifyConfig, event_id: &str, body: &Value) -> Sent {
    let bytes = body.to_string().into_bytes();
    let signature = sign(cfg.secret.as_bytes(), &bytes);
    let request = match outbound.request(reqwest::Method::POST, &cfg.url) {
        Ok(r) => r,
        Err(e) => return Sent::GiveUp(e.to_string()),
    };
    let sent = request
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, event_id)
        .body(bytes)
        .send()
        .await;
    match sent {
        Ok(resp) => classify(resp.status().as_u16()),
        Err(e) if e.is_timeout() => Sent::Retry("the receiver did not answer in time".into()),
        Err(e) => match crate::connector::egress::refused_in(&e) {
            Some(why) => Sent::GiveUp(why),
            None => Sent::Retry("the receiver could not be reached".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobRow {
        serde_json::from_value(json!({
            "pk": "INT#i1", "sk": "JOB#j1", "id": "j1", "request_id": "r1", "integration_id": "i1",
            "user_id": "u1", "user_name": "lee@example.com", "action": "provision", "seq": 1,
            "status": "failed", "attempts": 1, "error": "seat limit reached", "created_at": "t",
            "finished_at": "2026-12-04T00:00:01Z",
            "changed": []
        }))
        .unwrap()
    }

    #[test]
    fn a_failed_job_and_a_request_ending_with_failures_each_notify_once() {
        let j = job();
        let only_job = messages(&j, status::FAILED, Finished::Now { request: None, offboard: false });
        assert_eq!(only_job.len(), 1);
        assert_eq!(only_job[0].event_id(), "job.failed.j1");
        let both =
            messages(&j, status::FAILED, Finished::Now { request: Some(status::PARTIALLY_FAILED), offboard: false });
        assert_eq!(
            both.iter().map(|m| m.event_id()).collect::<Vec<_>>(),
            ["job.failed.j1", "request.partially_failed.r1"]
        );
        // The last job succeeding can still close a request that had failures.
        let closing =
            messages(&j, status::SUCCEEDED, Finished::Now { request: Some(status::PARTIALLY_FAILED), offboard: false });
        assert_eq!(closing.len(), 1);
        assert!(
            messages(&j, status::SUCCEEDED, Finished::Now { request: Some(status::SUCCEEDED), offboard: false })
                .is_empty()
        );
        assert!(messages(&j, status::FAILED, Finished::Already).is_empty(), "finished elsewhere: notified there");
    }

    #[test]
    fn the_payload_names_the_job_and_its_error_and_no_attribute_values() {
        let j = job();
        let m = &messages(&j, status::FAILED, Finished::Now { request: None, offboard: false })[0];
        let body = payload(m, "Demo", Some(&j), None, "2026-12-04T00:00:00Z");
        assert_eq!(body["event"], "job.failed");
        assert_eq!(body["id"], "job.failed.j1");
        assert_eq!(body["at"], "2026-12-04T00:00:01Z", "when it failed, whenever it is sent");
        assert_eq!(body["integration"], json!({"id": "i1", "name": "Demo"}));
        assert_eq!(body["job"]["error"], "seat limit reached");
        assert_eq!(body["job"]["userName"], "lee@example.com");
        assert!(body.get("request").is_none());
    }

    #[test]
    fn only_throttling_server_errors_and_timeouts_are_tried_again() {
        assert_eq!(classify(204), Sent::Delivered(204));
        for code in [408, 429, 500, 503] {
            assert!(matches!(classify(code), Sent::Retry(_)), "{code}");
        }
        for code in [301, 400, 401, 404, 410] {
            assert!(matches!(classify(code), Sent::GiveUp(_)), "{code}");
        }
    }
}
