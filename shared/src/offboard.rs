//! The end of an integration's offboarding (docs/contract.md "Limits and offboarding"): when
//! its `OFFBOARD` request has succeeded (every managed user deprovisioned or deactivated in
//! the app), the integration is purged. Started by whoever finishes the request's last job
//! (the worker, a webhook callback), or by the fan-out when there was no user to offboard; the
//! sweeper starts any purge a crash left unstarted (`sweeper::resume_offboards`). A request
//! that ends with failures leaves the integration offboarding: its failed jobs can be retried
//! (the purge follows their success), or a delete without `deprovision` purges at once.

use crate::queue::{PurgeMessage, Queue};
use crate::store::provisioning::{Finished, JobRow, status};
use crate::store::{Store, StoreError};

/// Deletes the configuration with `extra` (the audit entry, owners' reach) and queues the
/// purge of every other row. `false`: the integration was already gone.
pub async fn start_purge(
    store: &Store,
    queue: &Queue,
    iid: &str,
    extra: Vec<crate::store::plan::Write>,
) -> Result<bool, StoreError> {
    if !store.delete_integration_and_purge(iid, &crate::time::now(), extra).await? {
        return Ok(false);
    }
    // A lost message is resumed by the sweeper from the purge marker.
    let sent = queue.send_purge(&PurgeMessage { purge: iid.to_string(), page: 1, resend: None }).await;
    tracing::info!(integration_id = %iid, purge_queued = sent, "integration deleted; its rows are being purged");
    Ok(true)
}

/// After a job has finished: if that closed an offboarding request as succeeded, the purge.
pub async fn after_job(store: &Store, queue: &Queue, job: &JobRow, finished: Finished) -> Result<(), StoreError> {
    if let Finished::Now { request: Some(status::SUCCEEDED), offboard: true } = finished {
        request_succeeded(store, queue, &job.integration_id, &job.request_id).await?;
    }
    Ok(())
}

/// The offboarding request `request_id` has succeeded: the integration is purged, if that
/// request is still the one offboarding it. `true` when this call started the purge.
pub async fn request_succeeded(store: &Store, queue: &Queue, iid: &str, request_id: &str) -> Result<bool, StoreError> {
    let Some(record) = store.get_integration(iid).await? else { return Ok(false) };
    if record.offboarding.as_ref().map(|o| o.request_id.as_str()) != Some(request_id) {
        return Ok(false);
    }
    tracing::info!(integration_id = %iid, provisioning_request_id = %request_id, "offboarding succeeded; purging");
    start_purge(store, queue, iid, Vec::new()).await
}
