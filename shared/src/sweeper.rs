//! The sweeper, run on a schedule, leaves no job behind:
//! - it re-sends jobs still `queued` a grace period after their commit (the API died, or SQS
//!   refused, between the commit and the send; or a job waited for a delivery whose wake-up
//!   was lost). A duplicate message is harmless: the worker reconciles.
//! - it fails jobs past their deadline: `running` with no result (the worker died or timed out
//!   mid-job), or awaiting a webhook callback that never came. Each ends `failed` with the
//!   reason, and an admin can retry it.
//! - it records the dead-letter queue: each message there is a job SQS gave up on; the job ends
//!   `failed` (if nothing finished it) and the message is deleted once that is recorded.
//! - it starts the resyncs integrations have scheduled (`resync.every_hours`) when they are due.

use std::time::Duration;

use crate::delivery::{self, Ending};
use crate::queue::{FanoutMessage, JobMessage, Message, Queue};
use crate::store::integrations::IntegrationRecord;
use crate::store::provisioning::{JobGuard, queued_gsi_sk};
use crate::store::{Store, StoreError};

/// Pages read per run (100 jobs each): bounds one invocation's work.
const MAX_PAGES: usize = 20;

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub resent: usize,
    pub fanouts_resumed: usize,
    pub overdue_failed: usize,
    pub dead_lettered: usize,
    pub resyncs_started: usize,
    pub purges_resumed: usize,
    /// Offboarded integrations whose purge a crash left unstarted.
    pub offboards_purged: usize,
}

/// Everything a run does (the Lambda's handler).
pub async fn run(store: &Store, queue: &Queue, dlq: Option<&Queue>, grace: Duration) -> Result<Swept, StoreError> {
    // Each part runs whatever the others did: one failing (say, throttled) starves none.
    let mut first_error = None;
    let mut part = |name: &str, r: Result<usize, StoreError>| match r {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(part = name, error = %e, "sweeper part failed; the next run tries again");
            first_error.get_or_insert(e);
            0
        }
    };
    let resent = part("resend", sweep(store, queue, grace).await);
    let fanouts_resumed = part("fanouts", resume_fanouts(store, queue, grace).await);
    let overdue_failed = part("overdue", fail_overdue(store, queue).await);
    let purges_resumed = part("purges", resume_purges(store, queue, grace).await);
    // One listing of the integrations serves both parts that walk them.
    let integrations = store.list_integrations().await;
    let offboards_purged = match &integrations {
        Ok(all) => part("offboards", resume_offboards(store, queue, all).await),
        Err(_) => 0,
    };
    let dead_lettered = match dlq {
        Some(dlq) => part("dead-letters", record_dead_letters(store, queue, dlq).await),
        None => 0,
    };
    let resyncs_started = match integrations {
        Ok(all) => crate::service::resync::start_scheduled(store, queue, &all).await.unwrap_or_else(|e| {
            tracing::error!(part = "resyncs", error = %e.detail, "sweeper part failed; the next run tries again");
            0
        }),
        Err(e) => part("integrations", Err(e)),
    };
    match first_error {
        Some(e) => Err(e),
        None => Ok(Swept {
            resent,
            fanouts_resumed,
            overdue_failed,
            dead_lettered,
            resyncs_started,
            purges_resumed,
            offboards_purged,
        }),
    }
}

/// Re-sends the message of each fan-out that has not moved for a grace period (its page was
/// cut off and its message lost, or the next page's send failed); it resumes from its cursor.
pub async fn resume_fanouts(store: &Store, queue: &Queue, grace: Duration) -> Result<usize, StoreError> {
    let cutoff = (chrono::Utc::now() - grace).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let stalled = store.stalled_fanouts(&cutoff, 100).await?;
    let mut resumed = 0;
    for task in &stalled {
        let msg = FanoutMessage {
            integration_id: task.integration_id.clone(),
            fanout: task.id.clone(),
            page: task.page,
            resend: Some(chrono::Utc::now().timestamp_millis().to_string()),
        };
        if queue.send_fanout(&msg).await {
            store.fanout_touch(task, &crate::time::now()).await?;
            resumed += 1;
        }
    }
    if resumed > 0 {
        tracing::warn!(resumed, "sweeper resumed stalled fan-outs");
    }
    Ok(resumed)
}

/// Resumes each purge of a deleted integration that has not finished within a grace period
/// (its message was lost, or the next page's send failed): a page starts over from whatever
/// rows are left, so resuming twice is harmless.
pub async fn resume_purges(store: &Store, queue: &Queue, grace: Duration) -> Result<usize, StoreError> {
    let cutoff = (chrono::Utc::now() - grace).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut resumed = 0;
    for purge in store.stalled_purges(&cutoff, 100).await? {
        let msg = crate::queue::PurgeMessage {
            purge: purge.integration_id.clone(),
            page: 0,
            resend: Some(chrono::Utc::now().timestamp_millis().to_string()),
        };
        if queue.send_purge(&msg).await {
            store.purge_touch(&purge, &crate::time::now()).await?;
            resumed += 1;
        }
    }
    if resumed > 0 {
        tracing::warn!(resumed, "sweeper resumed stalled purges");
    }
    Ok(resumed)
}

/// Starts the purge of each offboarded integration whose `OFFBOARD` request has succeeded but
/// which is still there (the process finishing the last job died before starting it).
pub async fn resume_offboards(
    store: &Store,
    queue: &Queue,
    integrations: &[IntegrationRecord],
) -> Result<usize, StoreError> {
    let mut started = 0;
    for record in integrations {
        let Some(off) = &record.offboarding else { continue };
        let done = store.get_request(&record.id, &off.request_id).await?;
        if done.is_some_and(|r| r.status == crate::store::provisioning::status::SUCCEEDED)
            && crate::offboard::request_succeeded(store, queue, &record.id, &off.request_id).await?
        {
            started += 1;
        }
    }
    if started > 0 {
        tracing::warn!(started, "sweeper started the purge of offboarded integrations");
    }
    Ok(started)
}

/// Re-sends stale queued jobs; returns how many were sent.
pub async fn sweep(store: &Store, queue: &Queue, grace: Duration) -> Result<usize, StoreError> {
    let cutoff = (chrono::Utc::now() - grace).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut resent = 0;
    for _ in 0..MAX_PAGES {
        let jobs = store.queued_jobs_before(&cutoff, 100).await?;
        if jobs.is_empty() {
            break;
        }
        let messages: Vec<JobMessage> = jobs
            .iter()
            .map(|j| JobMessage { retry: j.retries, ..JobMessage::new(&j.integration_id, &j.id, &j.user_id) })
            .collect();
        let unsent = queue.send(&messages).await;
        if unsent > 0 {
            tracing::warn!(unsent, "sweeper could not send every job; the next run tries again");
            break;
        }
        // Sent: each waits another grace period before the next re-send.
        let now = crate::time::now();
        for j in &jobs {
            store.job_requeued(&j.integration_id, &j.id, &queued_gsi_sk(&now, &j.integration_id, &j.id)).await?;
        }
        resent += jobs.len();
        tracing::info!(resent = jobs.len(), "sweeper re-sent queued jobs");
    }
    Ok(resent)
}

/// Fails jobs past their deadline; returns how many.
pub async fn fail_overdue(store: &Store, queue: &Queue) -> Result<usize, StoreError> {
    let now = crate::time::now();
    let mut failed = 0;
    for _ in 0..MAX_PAGES {
        let jobs = store.overdue_jobs(&now, 100).await?;
        if jobs.is_empty() {
            break;
        }
        for job in &jobs {
            let Some(sk) = job.gsi1sk.as_deref() else { continue };
            let error = match &job.awaiting_until {
                Some(_) => "no callback from the webhook before callback_timeout_seconds; retry to deliver again",
                None => {
                    "no result before the job's deadline: the worker stopped or timed out mid-job, or its message was dead-lettered"
                }
            };
            // Guarded by the deadline entry: a job started again meanwhile is left alone.
            if delivery::end(store, queue, job, Ending::Failed { error }, JobGuard::RunningUntil(sk)).await? {
                tracing::warn!(integration_id = %job.integration_id, job_id = %job.id, "overdue job failed");
                failed += 1;
            }
        }
        if jobs.len() < 100 {
            break;
        }
    }
    Ok(failed)
}

/// The reason a dead-lettered job shows in Activity (and the DLQ alarm's text).
pub fn dead_letter_error(receives: u32) -> String {
    format!(
        "dead-lettered: the queue gave up after {receives} receives without a result (worker crashes, timeouts or hand-backs); retry to deliver again"
    )
}

/// Records the DLQ's messages as failed jobs, then deletes them; returns how many jobs this
/// failed. A message whose job already ended (the worker failed it on its last receive, or
/// an admin retried it since) is only deleted.
pub async fn record_dead_letters(store: &Store, queue: &Queue, dlq: &Queue) -> Result<usize, StoreError> {
    let mut failed = 0;
    for _ in 0..MAX_PAGES {
        // Not readable: the next run tries again.
        let Some(messages) = dlq.receive(Duration::from_secs(60)).await else { break };
        if messages.is_empty() {
            break;
        }
        for m in &messages {
            let parsed = match m.body.as_deref().map(serde_json::from_str::<Message>) {
                Some(Ok(Message::Job(msg))) => Some(msg),
                Some(Ok(Message::Fanout(_))) => {
                    // A fan-out page that kept failing: its task row stays, the next runs resume it.
                    tracing::error!("a fan-out page was dead-lettered; the sweeper resumes its task");
                    None
                }
                // A purge resumes from its marker; a notification is given up before the DLQ.
                _ => None,
            };
            if let Some(msg) = parsed
                && let Some(job) = store.get_job(&msg.integration_id, &msg.job_id).await?
            {
                // Receives on the job queue, as SQS counted them before the redrive.
                let receives = job.attempts.max(1);
                let error = dead_letter_error(receives);
                let guard = JobGuard::Unfinished { retries: msg.retry };
                if delivery::end(store, queue, &job, Ending::Failed { error: &error }, guard).await? {
                    tracing::warn!(integration_id = %job.integration_id, job_id = %job.id, "dead-lettered job failed");
                    crate::metrics::emit(&[], &[("JobsDeadLettered", crate::metrics::Unit::Count, 1.0)]);
                    failed += 1;
                }
            }
            // Recorded already: an undeleted message comes back after its visibility timeout
            // and is deleted then.
            if let Some(handle) = &m.receipt_handle {
                dlq.delete(handle).await;
            }
        }
    }
    Ok(failed)
}
