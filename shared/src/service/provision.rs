//! Turning SCIM writes into provisioning: each affected user's desired assignment is
//! recomputed, written with an optimistic lock on its sequence number in the same transaction
//! as the SCIM write, and every real change becomes a `queued` job of one provisioning request.
//! Jobs go to SQS only after the commit; the sweeper re-sends any the send missed.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::TransactWriteItem;
use serde_json::{Map, Value};

use super::{Ctx, now};
use crate::assignment::diff::{Change, diff};
use crate::assignment::{Assignment, effective::effective};
use crate::error::ScimResult;
use crate::queue::JobMessage;
use crate::store::keys;
use crate::store::provisioning::{AssignRow, JobRow, RequestRow, assignment_json, queued_gsi_sk, status};
use crate::store::resources::{Kind, Stored};

/// The role-mapped groups that exist in the integration: group id -> lowercased displayName.
#[derive(Debug, Default, Clone)]
pub struct RoleGroups {
    pub names: HashMap<String, String>,
}

impl RoleGroups {
    /// The displayNames of the integration's role-mapped groups.
    pub fn wanted(ctx: Ctx<'_>) -> Vec<String> {
        ctx.integration.roles.groups.iter().map(|g| g.group.clone()).collect()
    }

    pub async fn load(ctx: Ctx<'_>) -> ScimResult<Self> {
        let wanted = Self::wanted(ctx);
        if wanted.is_empty() {
            return Ok(Self::default());
        }
        Ok(Self { names: ctx.store.group_ids_by_name(ctx.integration_id, &wanted).await? })
    }

    /// displayNames of the role-mapped groups each user belongs to, apart from `except`
    /// (the group being changed, whose membership the caller knows).
    pub async fn names_of(
        &self,
        ctx: Ctx<'_>,
        users: &[String],
        except: Option<&str>,
    ) -> ScimResult<HashMap<String, Vec<String>>> {
        let pairs: Vec<(String, String)> = self
            .names
            .keys()
            .filter(|g| Some(g.as_str()) != except)
            .flat_map(|g| users.iter().map(move |u| (g.clone(), u.clone())))
            .collect();
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        if pairs.is_empty() {
            return Ok(out);
        }
        for (g, u) in ctx.store.memberships(ctx.integration_id, &pairs).await? {
            if let Some(name) = self.names.get(&g) {
                out.entry(u).or_default().push(name.clone());
            }
        }
        Ok(out)
    }
}

/// One user's planned change.
#[derive(Debug, Clone)]
pub struct UserPlan {
    pub user_id: String,
    pub user_name: Option<String>,
    /// The `ASSIGN#` sequence number read (`None`: no row yet).
    pub expect_seq: Option<u64>,
    pub before: Option<Assignment>,
    pub after: Option<Assignment>,
    /// The last resource of a deleted user.
    pub snapshot: Option<Value>,
}

impl UserPlan {
    pub fn new(
        user_id: &str,
        doc: Option<&Map<String, Value>>,
        row: Option<&AssignRow>,
        after: Option<Assignment>,
    ) -> Self {
        Self {
            user_id: user_id.to_string(),
            user_name: doc.and_then(|d| d.get("userName")).and_then(Value::as_str).map(str::to_string),
            expect_seq: row.map(|r| r.seq),
            before: row.and_then(AssignRow::desired),
            after,
            snapshot: None,
        }
    }

    pub fn change(&self) -> Option<Change> {
        diff(self.before.as_ref(), self.after.as_ref())
    }
}

/// The first job number of a request's fan-out pages (six digits: they sort after inline jobs).
pub const FANOUT_FIRST_JOB: u64 = 100_000;

/// One user's actions and, if it makes a job, the message to send after the commit.
pub struct UserActions {
    pub actions: Vec<TransactWriteItem>,
    pub message: Option<JobMessage>,
}

/// A provisioning request being built: its jobs and the messages to send after the commit.
pub struct Provision<'a> {
    ctx: Ctx<'a>,
    pub request_id: String,
    now: String,
    next_job: usize,
    pub messages: Vec<JobMessage>,
    /// At most one job (a single user's change): it closes its request itself.
    solo: bool,
}

impl<'a> Provision<'a> {
    pub fn new(ctx: Ctx<'a>) -> Self {
        Self {
            ctx,
            request_id: ulid::Ulid::new().to_string(),
            now: now(),
            next_job: 1,
            messages: Vec::new(),
            solo: false,
        }
    }

    /// A request about one user (a SCIM write to a User): at most one job, which closes the
    /// request in the same write as its count (one call fewer in the worker).
    pub fn for_one_user(ctx: Ctx<'a>) -> Self {
        Self { solo: true, ..Self::new(ctx) }
    }

    /// More jobs for an existing request (a fan-out page), numbered from `first_job`.
    pub fn continuing(ctx: Ctx<'a>, request_id: &str, first_job: usize) -> Self {
        Self {
            ctx,
            request_id: request_id.to_string(),
            now: now(),
            next_job: first_job,
            messages: Vec::new(),
            solo: false,
        }
    }

    /// Jobs committed so far (to be sent).
    pub fn committed(&mut self, messages: impl IntoIterator<Item = JobMessage>) {
        self.messages.extend(messages);
    }

    /// The actions for one user: the new `ASSIGN#` row (always: it orders concurrent writers)
    /// and, when the effective assignment changed, a `queued` job and its message (recorded
    /// with [`Self::committed`] once the actions are committed).
    pub fn user_actions(&mut self, plan: &UserPlan) -> ScimResult<UserActions> {
        let ctx = self.ctx;
        let store = ctx.store;
        let seq = plan.expect_seq.unwrap_or(0) + 1;
        let row = AssignRow::new(ctx.integration_id, &plan.user_id, plan.after.as_ref(), seq, &self.now);
        let mut actions = vec![store.assign_put(&row, plan.expect_seq)?];
        let mut message = None;
        if let Some(change) = plan.change() {
            let job_id = keys::job_id(&self.request_id, self.next_job);
            self.next_job += 1;
            let job = JobRow {
                pk: keys::integration_pk(ctx.integration_id),
                sk: keys::job_sk(&job_id),
                id: job_id.clone(),
                request_id: self.request_id.clone(),
                integration_id: ctx.integration_id.to_string(),
                user_id: plan.user_id.clone(),
                user_name: plan.user_name.clone(),
                action: change.action.as_str().to_string(),
                before: assignment_json(plan.before.as_ref().map(Assignment::shown).as_ref()),
                after: assignment_json(plan.after.as_ref().map(Assignment::shown).as_ref()),
                changed: change.changed,
                seq,
                status: status::QUEUED.to_string(),
                attempts: 0,
                error: None,
                detail: None,
                applied_action: None,
                created_at: self.now.clone(),
                started_at: None,
                finished_at: None,
                sent: None,
                retries: 0,
                sent_seq: None,
                awaiting_until: None,
                waiting_for: None,
                user_snapshot: plan.snapshot.as_ref().map(Value::to_string),
                basis: None,
                found_app_id: None,
                solo: self.solo,
                gsi1pk: Some(keys::QUEUED_GSI_PK.to_string()),
                gsi1sk: Some(queued_gsi_sk(&self.now, ctx.integration_id, &job_id)),
                gsi2pk: Some(keys::user_jobs_gsi_pk(ctx.integration_id, &plan.user_id)),
                gsi2sk: Some(job_id.clone()),
                expires_at: Some(store.expires_at()),
            };
            actions.push(store.job_put(&job)?);
            message = Some(JobMessage::new(ctx.integration_id, &job_id, &plan.user_id));
        }
        Ok(UserActions { actions, message })
    }

    /// The request row, when there are jobs (`total` as planned) or a fan-out will add some.
    pub fn request_action(
        &self,
        resource_type: Kind,
        resource_id: Option<&str>,
        total: usize,
    ) -> ScimResult<Option<TransactWriteItem>> {
        self.request_action_with(resource_type, resource_id, total, false)
    }

    pub fn request_action_with(
        &self,
        resource_type: Kind,
        resource_id: Option<&str>,
        total: usize,
        fanout: bool,
    ) -> ScimResult<Option<TransactWriteItem>> {
        if total == 0 && !fanout {
            return Ok(None);
        }
        let ctx = self.ctx;
        let row = RequestRow {
            pk: keys::integration_pk(ctx.integration_id),
            sk: keys::request_sk(&self.request_id),
            id: self.request_id.clone(),
            integration_id: ctx.integration_id.to_string(),
            created_at: self.now.clone(),
            method: ctx.method.to_string(),
            path: ctx.path.to_string(),
            resource_type: resource_type.name().to_string(),
            resource_id: resource_id.map(str::to_string),
            total: total as u64,
            succeeded: 0,
            failed: 0,
            superseded: 0,
            drift: 0,
            note: None,
            status: status::REQUESTED.to_string(),
            finished_at: None,
            fanout_pending: fanout,
            // Inline jobs are numbered from 1 (re-plans of a chunked commit may add some);
            // fan-out pages reserve theirs from FANOUT_FIRST_JOB on, so they never collide.
            next_job: Some(FANOUT_FIRST_JOB),
            gsi1pk: keys::activity_gsi_pk(ctx.integration_id),
            gsi1sk: self.request_id.clone(),
            expires_at: Some(ctx.store.expires_at()),
        };
        Ok(Some(ctx.store.request_put(&row)?))
    }

    /// After the commit: jobs to SQS. A failed send is logged; the jobs stay `queued` and the
    /// sweeper re-sends them, so the SCIM write still succeeds.
    pub async fn send(self) {
        if self.messages.is_empty() {
            return;
        }
        let unsent = self.ctx.queue.send(&self.messages).await;
        tracing::info!(
            provisioning_request_id = %self.request_id,
            integration_id = %self.ctx.integration_id,
            jobs = self.messages.len(),
            unsent,
            "provisioning request committed"
        );
    }
}

/// Users affected by a group change, with whether each is a member afterwards.
pub type Affected = Vec<(String, bool)>;

/// Plans the assignment changes of a group change: for each affected user, their role groups
/// after the change (this group counts when they are a member afterwards and `group_name` is
/// role-mapped), their document and their current `ASSIGN#` row. Users that do not exist
/// (deleted) are left out.
pub async fn plan_group_change(
    ctx: Ctx<'_>,
    roles: &RoleGroups,
    group_id: &str,
    group_name_after: Option<&str>,
    affected: &Affected,
) -> ScimResult<Vec<UserPlan>> {
    let ids: Vec<String> = affected.iter().map(|(u, _)| u.clone()).collect();
    let docs: HashMap<String, Stored> = ctx
        .store
        .get_resources(ctx.integration_id, Kind::User, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let present: Vec<String> = ids.iter().filter(|u| docs.contains_key(*u)).cloned().collect();
    let rows = ctx.store.get_assigns(ctx.integration_id, &present).await?;
    let mut names = roles.names_of(ctx, &present, Some(group_id)).await?;
    let this_role = group_name_after.filter(|n| ctx.integration.roles.is_role_group(n));
    let mut plans = Vec::with_capacity(present.len());
    let mut seen = HashSet::new();
    for (user_id, member_after) in affected {
        let Some(user) = docs.get(user_id) else { continue };
        if !seen.insert(user_id.clone()) {
            continue;
        }
        let mut groups = names.remove(user_id).unwrap_or_default();
        if *member_after && let Some(n) = this_role {
            groups.push(n.to_string());
        }
        let after = effective(&user.doc, &groups, ctx.integration);
        plans.push(UserPlan::new(user_id, Some(&user.doc), rows.get(user_id), Some(after)));
    }
    Ok(plans)
}
