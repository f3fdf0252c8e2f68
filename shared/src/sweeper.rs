//! The sweeper: re-sends jobs that are still `queued` a grace period after their commit (the
//! API died, or SQS refused, between the commit and the send). Nothing is lost; a duplicate
//! message is harmless because the worker reconciles.

use std::time::Duration;

use crate::queue::{JobMessage, Queue};
use crate::store::provisioning::queued_gsi_sk;
use crate::store::{Store, StoreError};

/// Pages read per run (100 jobs each): bounds one invocation's work.
const MAX_PAGES: usize = 20;

/// Re-sends stale queued jobs; returns how many were sent.
pub async fn sweep(store: &Store, queue: &Queue, grace: Duration) -> Result<usize, StoreError> {
    let cutoff = (chrono::Utc::now() - grace).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut resent = 0;
    for _ in 0..MAX_PAGES {
        let jobs = store.queued_jobs_before(&cutoff, 100).await?;
        if jobs.is_empty() {
            break;
        }
        let messages: Vec<JobMessage> =
            jobs.iter().map(|j| JobMessage::new(&j.integration_id, &j.id, &j.user_id)).collect();
        let unsent = queue.send(&messages).await;
        if unsent > 0 {
            tracing::warn!(unsent, "sweeper could not send every job; the next run tries again");
            break;
        }
        // Sent: each waits another grace period before the next re-send.
        let now = crate::service::now();
        for j in &jobs {
            store.job_requeued(&j.integration_id, &j.id, &queued_gsi_sk(&now, &j.integration_id, &j.id)).await?;
        }
        resent += jobs.len();
        tracing::info!(resent = jobs.len(), "sweeper re-sent queued jobs");
    }
    Ok(resent)
}
