//! Re-planning every user when an integration's configuration changes what users get (its
//! `roles` or `attributes`): docs/contract.md "Resync and drift". Saving such a configuration
//! commits, in one transaction, the new configuration, an Activity request (`RECONFIGURE`)
//! and a task (`store::fanout`, mode `Reconfigure`); the users are then planned again behind
//! the answer, 100 per queue message, exactly as a renamed role group's members are
//! (`fanout::replan`): a user whose assignment does not change gets no job, and a page run
//! again finds nothing left to do. `?dry_run=true` plans the same way, saves and sends nothing,
//! and answers the counts and a sample.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::provision::{Affected, Known, RoleGroups, plan_group_change};
use super::resync::integration_request;
use super::{Ctx, now};
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::queue::{FanoutMessage, Queue};
use crate::store::Store;
use crate::store::fanout::{FanoutMode, FanoutRow};
use crate::store::plan::Write;

/// Users planned per message (and per read in a dry run).
/// As `fanout::PAGE`, so at most one page of jobs is ahead of any other change.
pub const PAGE: i32 = super::fanout::PAGE;

/// Changes a dry run shows in full.
pub const SAMPLE: usize = 10;

/// Whether a new configuration can change what users get: its role rules or mapped attributes.
pub fn affects_assignments(old: &Value, new: &Value) -> bool {
    old.get("roles") != new.get("roles") || old.get("attributes") != new.get("attributes")
}

/// Saves the configuration with its `RECONFIGURE` request and task in one transaction, then
/// queues the first page. Returns the request id.
pub async fn save_and_replan(
    store: &Store,
    queue: &Queue,
    iid: &str,
    name: &str,
    config: &Value,
) -> ScimResult<String> {
    let at = now();
    let request = integration_request(store, iid, "RECONFIGURE", &format!("/admin/integrations/{iid}"), &at);
    let task = FanoutRow::new(iid, "", Some(&request.id), FanoutMode::Reconfigure, &at);
    let writes = vec![
        Write::IntegrationUpdate { iid: iid.to_string(), name: name.to_string(), config: config.clone() },
        Write::Request(Box::new(request.clone())),
        Write::Fanout(Box::new(task.clone())),
    ];
    match store.commit(&writes).await {
        Ok(()) => {}
        Err(e) if e.condition_failed_at(0) => return Err(ScimError::not_found("no such integration")),
        Err(e) => return Err(e.into()),
    }
    let first = FanoutMessage { integration_id: iid.to_string(), fanout: task.id, page: 0, resend: None };
    // Not sent (SQS refused): the sweeper re-sends a task that has not moved.
    queue.send_fanout(&first).await;
    tracing::info!(integration_id = %iid, provisioning_request_id = %request.id, "configuration saved; users re-planned");
    Ok(request.id)
}

/// One page of users re-planned against the integration's configuration as it is now (a later
/// save has its own request, and a user already planned by it gets no second job here).
pub async fn run_step(store: &Store, queue: &Queue, task: &FanoutRow) -> ScimResult<()> {
    let iid = task.integration_id.as_str();
    // Gone, or being offboarded (a re-plan could put back what offboarding removes): ends.
    let Some(record) = store.get_integration(iid).await?.filter(|r| r.offboarding.is_none()) else {
        if let Some(request_id) = &task.request_id {
            store.request_fanout_done(iid, request_id, &now()).await?;
        }
        store.fanout_finish(task).await?;
        return Ok(());
    };
    let config = IntegrationConfig::from_json(record.config_json())?;
    let ctx = Ctx::background(store, queue, iid, &config);
    let (rows, more) = store.assign_page(iid, task.cursor.as_deref(), PAGE).await?;
    let ids: Vec<String> = rows.into_iter().map(|r| r.user_id).collect();
    if let Some(request_id) = &task.request_id
        && !ids.is_empty()
    {
        super::fanout::replan(ctx, task, request_id, &ids).await?;
    }
    let at = now();
    if more {
        super::fanout::advance(store, queue, task, ids.last().map(String::as_str), &at).await?;
    } else {
        if let Some(request_id) = &task.request_id {
            store.request_fanout_done(iid, request_id, &at).await?;
        }
        store.fanout_finish(task).await?;
        tracing::info!(integration_id = %iid, pages = task.page + 1, "re-plan done");
    }
    Ok(())
}

/// What saving `config` would change, without saving or sending anything: every user planned
/// against it, the changes counted by action, the first [`SAMPLE`] shown.
pub async fn preview(store: &Store, queue: &Queue, iid: &str, config: &IntegrationConfig) -> ScimResult<Value> {
    let ctx = Ctx::background(store, queue, iid, config);
    let roles = RoleGroups::load(ctx).await?;
    let mut cursor: Option<String> = None;
    let (mut users, mut total) = (0usize, 0usize);
    let mut by_action: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut sample = Vec::new();
    loop {
        let (rows, more) = store.assign_page(iid, cursor.as_deref(), PAGE).await?;
        let affected: Affected = rows.iter().map(|r| (r.user_id.clone(), false)).collect();
        let plans = plan_group_change(ctx, &roles, "", None, &affected, &Known::default()).await?;
        users += plans.len();
        for plan in &plans {
            let Some(change) = plan.change() else { continue };
            total += 1;
            *by_action.entry(change.action.as_str()).or_default() += 1;
            if sample.len() < SAMPLE {
                sample.push(json!({
                    "user": { "id": plan.user_id, "userName": plan.user_name },
                    "action": change.action.as_str(),
                    "changed": change.changed,
                    "before": plan.before.as_ref().map(|a| a.shown()),
                    "after": plan.after.as_ref().map(|a| a.shown()),
                }));
            }
        }
        cursor = rows.last().map(|r| r.user_id.clone());
        if !more || cursor.is_none() {
            break;
        }
    }
    Ok(json!({
        "dry_run": true,
        "users": users,
        "changes": { "total": total, "by_action": by_action },
        "sample": sample,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_role_and_attribute_changes_replan() {
        let old = json!({"name": "A", "roles": {"groups": []}, "attributes": ["userName"], "connector": {"x": 1}});
        assert!(!affects_assignments(
            &old,
            &json!({"name": "B", "roles": {"groups": []}, "attributes": ["userName"], "connector": {"x": 2}})
        ));
        assert!(affects_assignments(
            &old,
            &json!({"name": "A", "roles": {"groups": [{"group": "g", "role": "r"}]}, "attributes": ["userName"]})
        ));
        assert!(affects_assignments(&old, &json!({"name": "A", "roles": {"groups": []}})));
    }
}
