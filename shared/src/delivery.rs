//! The end of a delivery the app had not confirmed (a webhook callback, its timeout, a lost
//! job), and waking the jobs that waited for it. See `store::deliveries` for the states.

use crate::metrics;
use crate::queue::{JobMessage, Queue};
use crate::store::provisioning::{JobGuard, JobOutcome, JobRow, parse_assignment, status};
use crate::store::{Store, StoreError};

/// How a pending delivery ended.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// The app confirmed it (callback `succeeded`): what was sent is what the app holds.
    Confirmed { detail: Option<&'a str> },
    /// It failed (callback `failed`, a timeout, a lost job): the app's state is as before.
    Failed { error: &'a str },
}

/// Finishes `job` under `guard` and, if this call finished it, settles the user's pending
/// delivery and wakes the jobs waiting for it. `false`: the job had already ended (or moved
/// on), nothing was changed.
///
/// The job is finished first: if the process dies right after, the pending marker names a
/// finished job, which the worker recognises as stale and clears; the waiting jobs stay in the
/// sweeper's index and are re-sent after its grace period.
pub async fn end(
    store: &Store,
    queue: &Queue,
    job: &JobRow,
    ending: Ending<'_>,
    guard: JobGuard<'_>,
) -> Result<bool, StoreError> {
    let action = job.applied_action.as_deref().unwrap_or(&job.action);
    let outcome = match ending {
        Ending::Confirmed { detail } => {
            JobOutcome { status: status::SUCCEEDED, error: None, detail, applied_action: Some(action) }
        }
        Ending::Failed { error } => {
            JobOutcome { status: status::FAILED, error: Some(error), detail: None, applied_action: Some(action) }
        }
    };
    let finished = store.complete_job(job, &outcome, guard).await?;
    if !finished.now() {
        return Ok(false);
    }
    crate::notify::queue_for(store, queue, job, outcome.status, finished).await;
    let iid = job.integration_id.as_str();
    let applied = store.get_applied(iid, &job.user_id).await?;
    let pending = applied.as_ref().filter(|a| a.pending_job.as_deref() == Some(job.id.as_str()));
    match ending {
        Ending::Confirmed { .. } => {
            // What was sent: from the pending marker, else (marker already cleared) the job.
            let (sent, seq) = match pending {
                Some(p) => (parse_assignment(p.pending_sent.as_deref()), p.pending_seq),
                None => (parse_assignment(job.sent.as_deref()), job.sent_seq),
            };
            if let Some(seq) = seq {
                let app_id = applied.as_ref().and_then(|a| a.app_id.clone());
                let app_id = if sent.is_none() { None } else { app_id };
                store.settle_applied(iid, &job.user_id, &job.id, sent.as_ref(), seq, app_id).await?;
            }
            metrics::job_applied(action, &job.created_at, job.retries);
        }
        Ending::Failed { .. } => {
            if pending.is_some() {
                store.clear_pending(iid, &job.user_id, &job.id).await?;
            }
            metrics::job(action, status::FAILED);
        }
    }
    wake(store, queue, iid, &job.user_id).await?;
    // Last, after every write of this job: the purge may follow at once.
    if let Err(e) = crate::offboard::after_job(store, queue, job, finished).await {
        // The job stays finished; the sweeper starts the purge (`resume_offboards`).
        tracing::warn!(error = %e, "starting an offboarded integration's purge failed; the sweeper will");
    }
    Ok(true)
}

/// Re-sends the user's queued jobs (those that waited for a delivery, and any not yet picked
/// up), oldest first, with a fresh deduplication id. Duplicates are harmless: the worker
/// reconciles, and the first to run applies the user's current desired state.
pub async fn wake(store: &Store, queue: &Queue, iid: &str, user_id: &str) -> Result<usize, StoreError> {
    let waiting = store.queued_jobs_of(iid, user_id).await?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let messages: Vec<JobMessage> = waiting
        .iter()
        .map(|j| JobMessage { retry: j.retries, wake: j.attempts + 1, ..JobMessage::new(iid, &j.id, &j.user_id) })
        .collect();
    let unsent = queue.send(&messages).await;
    tracing::info!(integration_id = %iid, woken = messages.len() - unsent, unsent, "waiting jobs woken");
    Ok(messages.len() - unsent)
}
