//! A group's members re-planned behind the SCIM request that moved them all (a role group
//! renamed or deleted): one page of members per queue message, until the group is done. Every
//! page is idempotent (a member whose assignment already matches gets no job) and the task row
//! (`store::fanout`) says where it stands, so a page cut off by a crash or a throttled write is
//! simply run again, by the message coming back or by the sweeper. Jobs join the request the
//! SCIM change opened, so Activity shows one request with one job per affected user.

use std::collections::HashSet;

use super::provision::{Affected, Known, Provision, RoleGroups, plan_group_change};
use super::resync::AppAccess;
use super::{Ctx, WRITE_ATTEMPTS};
use crate::error::ScimResult;
use crate::integration::IntegrationConfig;
use crate::queue::{FanoutMessage, Queue};
use crate::store::fanout::{FanoutMode, FanoutRow};
use crate::store::plan::Write;
use crate::store::resources::Kind;
use crate::store::{Store, StoreError};

/// Members per page: one page is a few reads and a few transactions, seconds of work. The
/// page also bounds fairness: a page's jobs are queued before the next page's message, so a
/// change of another integration (or user) waits behind at most one page of this push's jobs
/// (BENCHMARKS.md "Fairness").
pub const PAGE: i32 = 100;

/// Users per transaction: each writes its assignment and its job, plus the request's count.
const USERS_PER_TRANSACTION: usize = 49;

/// Runs the page `msg` names. A message for a page already run, a finished task or a deleted
/// integration does nothing.
pub async fn run(store: &Store, queue: &Queue, app: AppAccess<'_>, msg: &FanoutMessage) -> ScimResult<()> {
    let iid = msg.integration_id.as_str();
    let Some(task) = store.get_fanout(iid, &msg.fanout).await? else { return Ok(()) };
    if task.page != msg.page {
        return Ok(());
    }
    match task.mode {
        FanoutMode::Resync => return super::resync::run_step(store, queue, app, &task).await,
        FanoutMode::Reconfigure => return super::reconfigure::run_step(store, queue, &task).await,
        FanoutMode::Offboard => return super::offboard::run_step(store, queue, &task).await,
        FanoutMode::Replan | FanoutMode::Delete => {}
    }
    let Some(record) = store.get_integration(iid).await?.filter(|r| r.offboarding.is_none()) else {
        // The integration is gone, or being offboarded (a re-plan could put back what
        // offboarding removes): nothing to plan for; the task and its request end.
        if let Some(request_id) = &task.request_id {
            store.request_fanout_done(iid, request_id, &crate::time::now()).await?;
        }
        store.fanout_finish(&task).await?;
        return Ok(());
    };
    let config = IntegrationConfig::from_json(record.config_json())?;
    let ctx = Ctx::background(store, queue, iid, &config);
    let after = match task.mode {
        FanoutMode::Replan => task.cursor.as_deref(),
        // Handled rows are deleted: the next page is always the first.
        _ => None,
    };
    let (members, more) = store.group_members_page(iid, &task.group_id, after, PAGE).await?;
    if let Some(request_id) = &task.request_id
        && !members.is_empty()
    {
        replan(ctx, &task, request_id, &members).await?;
    }
    if task.mode == FanoutMode::Delete && !members.is_empty() {
        let deletes: Vec<Write> = members
            .iter()
            .map(|u| Write::NotMember { iid: iid.to_string(), group_id: task.group_id.clone(), user_id: u.clone() })
            .collect();
        store.commit_in_chunks(&deletes).await?;
    }
    let now = crate::time::now();
    if more {
        let cursor = match task.mode {
            FanoutMode::Replan => members.last().map(String::as_str),
            _ => None,
        };
        if store.fanout_advance(&task, cursor, &now).await? {
            let next = FanoutMessage { page: task.page + 1, resend: None, ..msg.clone() };
            queue.send_fanout(&next).await;
        }
        tracing::info!(integration_id = %iid, fanout = %task.id, page = task.page, members = members.len(), "fan-out page done");
    } else {
        // The request first: if this stops in between, the sweeper re-sends the task, whose
        // last page runs again (idempotent) and comes back here.
        if let Some(request_id) = &task.request_id {
            store.request_fanout_done(iid, request_id, &now).await?;
        }
        store.fanout_finish(&task).await?;
        tracing::info!(integration_id = %iid, fanout = %task.id, pages = task.page + 1, "fan-out done");
    }
    Ok(())
}

/// Moves the task past its page (under a condition on the page read: a duplicate message
/// moves nothing) and queues the next page's message.
pub(super) async fn advance(
    store: &Store,
    queue: &Queue,
    task: &FanoutRow,
    cursor: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    if store.fanout_advance(task, cursor, at).await? {
        let next = FanoutMessage {
            integration_id: task.integration_id.clone(),
            fanout: task.id.clone(),
            page: task.page + 1,
            resend: None,
        };
        // Not sent (SQS refused): the sweeper re-sends a task that has not moved.
        queue.send_fanout(&next).await;
    }
    Ok(())
}

/// Plans these members again against the integration's current state and commits the jobs of
/// those whose assignment changes, in the task's request.
pub(super) async fn replan(ctx: Ctx<'_>, task: &FanoutRow, request_id: &str, members: &[String]) -> ScimResult<()> {
    let (store, iid) = (ctx.store, ctx.integration_id);
    let roles = RoleGroups::load(ctx).await?;
    // Reconfigure re-plans users outside any one group (`group_id` is empty): every role
    // group counts as it is.
    let name_after = match task.mode {
        FanoutMode::Delete | FanoutMode::Reconfigure | FanoutMode::Resync | FanoutMode::Offboard => None,
        FanoutMode::Replan => store
            .get_resource(iid, Kind::Group, &task.group_id)
            .await?
            .and_then(|g| g.doc.get("displayName").and_then(|v| v.as_str()).map(str::to_string)),
    };
    for chunk in members.chunks(USERS_PER_TRANSACTION) {
        for attempt in 1..=WRITE_ATTEMPTS {
            // Membership now (a concurrent PATCH may have removed someone since the page read).
            let still: HashSet<String> = match task.mode {
                FanoutMode::Delete | FanoutMode::Reconfigure | FanoutMode::Resync | FanoutMode::Offboard => {
                    HashSet::new()
                }
                FanoutMode::Replan => {
                    let pairs: Vec<(String, String)> =
                        chunk.iter().map(|u| (task.group_id.clone(), u.clone())).collect();
                    store.memberships(iid, &pairs).await?.into_iter().map(|(_, u)| u).collect()
                }
            };
            let affected: Affected = chunk.iter().map(|u| (u.clone(), still.contains(u))).collect();
            let plans =
                plan_group_change(ctx, &roles, &task.group_id, name_after.as_deref(), &affected, &Known::default())
                    .await?;
            let changed: Vec<_> = plans.iter().filter(|p| p.change().is_some()).collect();
            if changed.is_empty() {
                break;
            }
            let first = store.request_reserve_jobs(iid, request_id, changed.len()).await?;
            let mut provision = Provision::continuing(ctx, request_id, first);
            let (writes, messages) = provision.users_writes(changed);
            match store.commit(&writes).await {
                Ok(()) => {
                    provision.committed(messages);
                    provision.send(ctx.queue).await;
                    break;
                }
                Err(e) if attempt < WRITE_ATTEMPTS && e.lost_race() => {
                    // A concurrent change to one of these users: plan them again.
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
