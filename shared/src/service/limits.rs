//! Admitting a SCIM request under its integration's limits (docs/operations.md "Limits"): the
//! instance's counter decides (`crate::limits`), leasing from the shared count when it must.

use crate::error::{ScimError, ScimResult};
use crate::limits::{Limiter, Limits, Step};
use crate::store::Store;

/// `Ok` to go on; a 429 with `Retry-After` over the limit. When the shared count cannot be
/// reached the request is admitted (logged): the limits protect other integrations, and
/// refusing an IdP's change because of our own fault would be the worse failure.
pub async fn admit(store: &Store, limiter: &Limiter, iid: &str, limits: &Limits) -> ScimResult<()> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let step = match limiter.step(iid, now, limits) {
        Step::Lease { window, take } => {
            match store.lease_limit(iid, window, limits.window_secs(), take, limits.cap()).await {
                Ok(granted) => limiter.granted(iid, now, limits, window, granted),
                Err(e) => {
                    tracing::warn!(integration_id = %iid, error = %e, "the limit count could not be read; request admitted");
                    Step::Admit
                }
            }
        }
        step => step,
    };
    match step {
        Step::Deny { retry_after } => {
            crate::metrics::emit(&[("IntegrationId", iid)], &[("RateLimited", crate::metrics::Unit::Count, 1.0)]);
            tracing::info!(integration_id = %iid, retry_after, "over the integration's request limit; 429");
            Err(ScimError::too_many(
                retry_after,
                format!(
                    "this integration is over its limit of {} requests per second (burst {}); retry after {retry_after} s",
                    limits.requests_per_second, limits.burst
                ),
            ))
        }
        _ => Ok(()),
    }
}
