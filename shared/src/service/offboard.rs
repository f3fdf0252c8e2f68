//! Offboarding an integration (docs/contract.md "Limits and offboarding"):
//! `DELETE /admin/integrations/{id}?deprovision=true[&mode=deactivate]`. One transaction marks
//! the integration offboarding, clears its SCIM tokens, removes it from its owners, and writes
//! the `OFFBOARD` Activity request, its fan-out task and the audit entry. The fan-out then plans,
//! 100 users per queue message, a deprovision (or a deactivation) of every managed user, as
//! ordinary jobs the worker carries to the app with its usual retries. When the request has
//! succeeded the integration is purged (`crate::offboard`).
//!
//! Faults: a page run twice plans nothing new (a user already planned has the wanted assignment,
//! so no change); a crash between the last page and the request's end is resumed by the
//! sweeper's re-send of the task; a failed job leaves the integration offboarding, visible in
//! Activity, until it is retried or the integration is deleted without `deprovision`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::audit::Actor;
use super::provision::{Provision, UserPlan};
use super::resync::integration_request;
use super::{Ctx, now};
use crate::assignment::Assignment;
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::queue::{FanoutMessage, Queue};
use crate::store::fanout::{FanoutMode, FanoutRow};
use crate::store::offboard::{OffboardMode, Offboarding};
use crate::store::plan::Write;
use crate::store::provisioning::{AssignRow, status};
use crate::store::{Store, keys};

/// Users planned per message.
/// As `fanout::PAGE`, so at most one page of jobs is ahead of any other change.
pub const PAGE: i32 = super::fanout::PAGE;

/// Users per transaction: each writes its assignment and its job, plus the request's count.
const USERS_PER_TRANSACTION: usize = 49;

/// What offboarding plans for these users: each one the app holds an account for, or will
/// once a queued job runs, gets its desired assignment set to the mode's target (none, or
/// inactive). "Holds" is what was last applied, else the desired state: a user whose desired
/// state is already gone but whose account is still there (a deprovision that failed or waits)
/// gets a job too. A user with nothing in the app and nothing coming (or already inactive,
/// when deactivating) gets none, and so does a user whose assignment was written since the
/// offboarding began (`since`): planned already by a page run before, or changed by a SCIM
/// write in flight, whose own job the worker turns into the offboarding's target.
pub fn plan(
    rows: &[AssignRow],
    applied: &HashMap<String, Assignment>,
    mode: OffboardMode,
    since: &str,
) -> Vec<UserPlan> {
    rows.iter()
        .filter(|row| row.updated_at.as_str() < since)
        .filter_map(|row| {
            let before = applied.get(&row.user_id).cloned().or_else(|| row.desired());
            let after = mode.target(before.clone());
            let plan = UserPlan {
                user_id: row.user_id.clone(),
                user_name: None,
                expect_seq: Some(row.seq),
                before,
                after,
                snapshot: None,
            };
            plan.change().is_some().then_some(plan)
        })
        .collect()
}

/// Starts the offboarding; the answer is 202 with the `OFFBOARD` request's id.
pub async fn start(
    store: &Store,
    queue: &Queue,
    actor: &Actor,
    iid: &str,
    mode: OffboardMode,
    mut audit_changes: serde_json::Map<String, Value>,
) -> ScimResult<super::Reply> {
    let at = now();
    let request = integration_request(store, iid, Store::OFFBOARD, &format!("/admin/integrations/{iid}"), &at);
    let mut task = FanoutRow::new(iid, "", Some(&request.id), FanoutMode::Offboard, &at);
    task.offboard = Some(mode);
    let off = Offboarding { request_id: request.id.clone(), mode, started_at: at.clone() };
    audit_changes.insert("offboard".into(), json!({ "before": null, "after": mode.as_str() }));
    let mut entry = super::audit::entry(store, actor, "integration.delete", Some(iid), audit_changes);
    // Outside the integration's rows, so that it outlives the purge.
    entry.pk = keys::AUDIT_PK.to_string();
    let mut writes = vec![
        Write::OffboardStart { iid: iid.to_string(), offboarding: off },
        Write::Request(Box::new(request.clone())),
        Write::Fanout(Box::new(task.clone())),
        Write::Audit(Box::new(entry)),
    ];
    writes.extend(store.owners_drop(iid).await?);
    match store.commit(&writes).await {
        Ok(()) => {}
        Err(e) if e.condition_failed_at(0) => {
            return Err(ScimError::new(
                409,
                None,
                "the integration is gone or already being offboarded; delete it without deprovision to purge it now",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let first = FanoutMessage { integration_id: iid.to_string(), fanout: task.id, page: 0, resend: None };
    // Not sent (SQS refused): the sweeper re-sends a task that has not moved.
    queue.send_fanout(&first).await;
    tracing::info!(integration_id = %iid, provisioning_request_id = %request.id, mode = mode.as_str(), "offboarding started");
    Ok(super::Reply::json(
        202,
        json!({
            "request_id": request.id,
            "mode": mode.as_str(),
            "purge": "after_offboard",
            "deprovisioned": mode == OffboardMode::Deprovision,
            "detail": format!(
                "the integration's tokens stopped; every managed user is being {} in the app (Activity request {}); its rows are purged when that has succeeded",
                if mode == OffboardMode::Deprovision { "deprovisioned" } else { "deactivated" },
                request.id
            ),
        }),
    ))
}

/// One page of the offboarding fan-out (`service::fanout::run`).
pub async fn run_step(store: &Store, queue: &Queue, task: &FanoutRow) -> ScimResult<()> {
    let iid = task.integration_id.as_str();
    let request_id = task.request_id.clone().unwrap_or_default();
    let Some(record) = store.get_integration(iid).await? else {
        // Purged meanwhile (a delete without deprovision): nothing is left to offboard.
        store.fanout_finish(task).await?;
        return Ok(());
    };
    let config = IntegrationConfig::from_json(record.config_json())?;
    let ctx = Ctx::background(store, queue, iid, &config);
    let mode = task.offboard.unwrap_or(OffboardMode::Deprovision);
    let (rows, more) = store.assign_page(iid, task.cursor.as_deref(), PAGE).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    let applied = store.applied_states(iid, &ids).await?;
    let since = record.offboarding.as_ref().map_or("", |o| o.started_at.as_str());
    let plans = plan(&rows, &applied, mode, since);
    for chunk in plans.chunks(USERS_PER_TRANSACTION) {
        let first = store.request_reserve_jobs(iid, &request_id, chunk.len()).await?;
        let mut provision = Provision::continuing(ctx, &request_id, first);
        let (writes, messages) = provision.users_writes(chunk.iter());
        // A condition failure (a user changed by a SCIM call still in flight when the tokens
        // stopped) fails the page; it runs again from the re-read rows.
        store.commit(&writes).await?;
        provision.committed(messages);
        provision.send(queue).await;
    }
    let at = now();
    if more {
        super::fanout::advance(store, queue, task, rows.last().map(|r| r.user_id.as_str()), &at).await?;
        return Ok(());
    }
    let closed = store.request_fanout_done(iid, &request_id, &at).await?;
    store.fanout_finish(task).await?;
    tracing::info!(integration_id = %iid, pages = task.page + 1, planned = plans.len(), "offboarding planned");
    if closed == Some(status::SUCCEEDED) {
        // No job was left to wait for (no managed user, or all already done).
        crate::offboard::request_succeeded(store, queue, iid, &request_id).await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "offboard_tests.rs"]
mod tests;
