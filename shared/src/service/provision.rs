//! Turning SCIM writes into provisioning: each affected user's desired assignment is
//! recomputed, written with an optimistic lock on its sequence number in the same transaction
//! as the SCIM write, and every real change becomes a `queued` job of one provisioning request.
//! Jobs go to SQS only after the commit; the sweeper re-sends any the send missed.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{Ctx, now};
use crate::assignment::diff::{Change, diff};
use crate::assignment::{Assignment, effective::effective};
use crate::error::ScimResult;
use crate::integration::IntegrationConfig;
use crate::queue::{JobMessage, Queue};
use crate::store::keys;
use crate::store::members::names_read_with_assigns;
use crate::store::plan::Write;
use crate::store::provisioning::{AssignRow, JobRow, RequestRow, assignment_json, queued_gsi_sk, status};
use crate::store::resources::{Kind, Stored};

/// The (folded) displayNames of the role-mapped groups among `groups` (one user's groups, as
/// stored), in the order given.
pub fn role_group_names(integration: &IntegrationConfig, groups: &[Stored]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| g.doc.get("displayName").and_then(Value::as_str))
        .filter(|name| integration.roles.is_role_group(name))
        .map(|name| crate::scim::text::fold(name, false).into_owned())
        .collect()
}

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

/// One user's writes and, if they make a job, the message to send after the commit.
#[derive(Debug)]
pub struct UserWrites {
    pub writes: Vec<Write>,
    pub message: Option<JobMessage>,
}

/// Where a provisioning request comes from: the integration and the SCIM call (for the
/// Activity feed), with the time its rows expire.
#[derive(Debug, Clone)]
pub struct Origin {
    pub integration_id: String,
    pub method: String,
    pub path: String,
    pub expires_at: i64,
}

impl Origin {
    pub fn of(ctx: Ctx<'_>) -> Self {
        Self {
            integration_id: ctx.integration_id.to_string(),
            method: ctx.method.to_string(),
            path: ctx.path.to_string(),
            expires_at: ctx.store.expires_at(),
        }
    }
}

/// A provisioning request being planned: its jobs, as writes, and the messages to send after
/// the commit. Pure: it reads and writes nothing (`send` aside).
pub struct Provision {
    origin: Origin,
    pub request_id: String,
    now: String,
    next_job: usize,
    pub messages: Vec<JobMessage>,
    /// At most one job (a single user's change): it closes its request itself.
    solo: bool,
}

impl Provision {
    pub fn new(ctx: Ctx<'_>) -> Self {
        Self::planned(Origin::of(ctx), ulid::Ulid::new().to_string(), now(), 1)
    }

    /// A request about one user (a SCIM write to a User): at most one job, which closes the
    /// request in the same write as its count (one call fewer in the worker).
    pub fn for_one_user(ctx: Ctx<'_>) -> Self {
        Self::new(ctx).alone()
    }

    /// This request will have at most one job (see [`Self::for_one_user`]).
    pub fn alone(self) -> Self {
        Self { solo: true, ..self }
    }

    /// More jobs for an existing request (a fan-out page), numbered from `first_job`.
    pub fn continuing(ctx: Ctx<'_>, request_id: &str, first_job: usize) -> Self {
        Self::planned(Origin::of(ctx), request_id.to_string(), now(), first_job)
    }

    /// A request with everything given (what the constructors above read from the call).
    pub fn planned(origin: Origin, request_id: String, now: String, first_job: usize) -> Self {
        Self { origin, request_id, now, next_job: first_job, messages: Vec::new(), solo: false }
    }

    /// Jobs committed so far (to be sent).
    pub fn committed(&mut self, messages: impl IntoIterator<Item = JobMessage>) {
        self.messages.extend(messages);
    }

    /// The writes for one user: the new `ASSIGN#` row (always: it orders concurrent writers)
    /// and, when the effective assignment changed, a `queued` job and its message (recorded
    /// with [`Self::committed`] once the writes are committed).
    pub fn user_writes(&mut self, plan: &UserPlan) -> UserWrites {
        let iid = self.origin.integration_id.as_str();
        let seq = plan.expect_seq.unwrap_or(0) + 1;
        let row = AssignRow::new(iid, &plan.user_id, plan.after.as_ref(), seq, &self.now);
        let mut writes = vec![Write::Assign { row, expect_seq: plan.expect_seq }];
        let mut message = None;
        if let Some(change) = plan.change() {
            let job_id = keys::job_id(&self.request_id, self.next_job);
            self.next_job += 1;
            let job = JobRow {
                pk: keys::integration_pk(iid),
                sk: keys::job_sk(&job_id),
                id: job_id.clone(),
                request_id: self.request_id.clone(),
                integration_id: iid.to_string(),
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
                gsi1sk: Some(queued_gsi_sk(&self.now, iid, &job_id)),
                gsi2pk: Some(keys::user_jobs_gsi_pk(iid, &plan.user_id)),
                gsi2sk: Some(job_id.clone()),
                expires_at: Some(self.origin.expires_at),
            };
            writes.push(Write::Job(Box::new(job)));
            message = Some(JobMessage::new(iid, &job_id, &plan.user_id));
        }
        UserWrites { writes, message }
    }

    /// The request row, when there are jobs (`total` as planned) or a fan-out will add some
    /// (`fanout`).
    pub fn request_write(
        &self,
        resource_type: Kind,
        resource_id: Option<&str>,
        total: usize,
        fanout: bool,
    ) -> Option<Write> {
        if total == 0 && !fanout {
            return None;
        }
        let iid = self.origin.integration_id.as_str();
        let row = RequestRow {
            pk: keys::integration_pk(iid),
            sk: keys::request_sk(&self.request_id),
            id: self.request_id.clone(),
            integration_id: iid.to_string(),
            created_at: self.now.clone(),
            method: self.origin.method.clone(),
            path: self.origin.path.clone(),
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
            expires_at: Some(self.origin.expires_at),
        };
        Some(Write::Request(Box::new(row)))
    }

    /// The writes of a page of users joining this (existing) request, with its total moved by
    /// the jobs they make, and the messages to send once they are committed.
    pub fn users_writes<'p>(&mut self, plans: impl IntoIterator<Item = &'p UserPlan>) -> (Vec<Write>, Vec<JobMessage>) {
        let mut writes = Vec::new();
        let mut messages = Vec::new();
        for plan in plans {
            let w = self.user_writes(plan);
            writes.extend(w.writes);
            messages.extend(w.message);
        }
        writes.push(self.count_write(messages.len()));
        (writes, messages)
    }

    /// `jobs` more jobs on this (existing) request's total.
    pub fn count_write(&self, jobs: usize) -> Write {
        Write::RequestCount {
            iid: self.origin.integration_id.clone(),
            request_id: self.request_id.clone(),
            jobs,
            drift: false,
        }
    }

    /// After the commit: jobs to SQS. A failed send is logged; the jobs stay `queued` and the
    /// sweeper re-sends them, so the SCIM write still succeeds.
    pub async fn send(self, queue: &Queue) {
        if self.messages.is_empty() {
            return;
        }
        let unsent = queue.send(&self.messages).await;
        tracing::info!(
            provisioning_request_id = %self.request_id,
            integration_id = %self.origin.integration_id,
            jobs = self.messages.len(),
            unsent,
            "provisioning request committed"
        );
    }
}

/// Users affected by a group change, with whether each is a member afterwards.
pub type Affected = Vec<(String, bool)>;

/// Users' rows read for a plan: their `ASSIGN#` rows first, then their documents. The order
/// matters: a plan commits on the `ASSIGN#` sequence it read, and a user write moves that
/// sequence with the document, so a document read after it is as new or newer, and a user
/// write in between fails the commit (the users are planned again) instead of a plan made from
/// an older document overwriting it (a deactivation lost).
#[derive(Debug, Default)]
pub struct Known {
    /// Every id asked for (with a row or not).
    pub ids: HashSet<String>,
    pub assigns: HashMap<String, AssignRow>,
    pub docs: HashMap<String, Stored>,
    /// The integration's role groups, when read with the rows ([`Self::read_with_roles`]).
    pub roles: Option<RoleGroups>,
}

impl Known {
    /// Reads `ids`' `ASSIGN#` rows, then their documents: two BatchGetItems per 100 users.
    /// An id that cannot be a user's (a client's garbage) is asked for and not read.
    pub async fn read(ctx: Ctx<'_>, ids: &[String]) -> ScimResult<Self> {
        Self::read_as(ctx, ids, false).await
    }

    /// [`Self::read`], with the integration's role groups found by name in the same reads
    /// (whichever has room: `store::members::names_read_with_assigns`): a group change that
    /// lists a few members plans them with one read less.
    pub async fn read_with_roles(ctx: Ctx<'_>, ids: &[String]) -> ScimResult<Self> {
        Self::read_as(ctx, ids, true).await
    }

    async fn read_as(ctx: Ctx<'_>, ids: &[String], with_roles: bool) -> ScimResult<Self> {
        let valid: Vec<String> = ids.iter().filter(|u| keys::is_resource_id(u)).cloned().collect();
        let mut names = match with_roles {
            true => RoleGroups::wanted(ctx),
            false => Vec::new(),
        };
        // (one name row per group, however many mappings name it)
        names.sort_by_key(|n| keys::group_name_sk(n));
        names.dedup_by_key(|n| keys::group_name_sk(n));
        let (early, late) = names.split_at(names_read_with_assigns(valid.len(), names.len()));
        let (assigns, mut groups) = ctx.store.assigns_and_group_names(ctx.integration_id, &valid, early).await?;
        let (docs, more) = ctx.store.users_and_group_names(ctx.integration_id, &valid, late).await?;
        groups.extend(more);
        Ok(Self {
            ids: ids.iter().cloned().collect(),
            assigns,
            docs: docs.into_iter().map(|s| (s.id.clone(), s)).collect(),
            roles: with_roles.then_some(RoleGroups { names: groups }),
        })
    }
}

/// Plans the assignment changes of a group change: for each affected user, their role groups
/// after the change (this group counts when they are a member afterwards and `group_name` is
/// role-mapped), their document and their current `ASSIGN#` row. Users that do not exist
/// (deleted) are left out. `known`: rows the caller read just before (see [`Known`]); the
/// others are read here, in the same order.
pub async fn plan_group_change(
    ctx: Ctx<'_>,
    roles: &RoleGroups,
    group_id: &str,
    group_name_after: Option<&str>,
    affected: &Affected,
    known: &Known,
) -> ScimResult<Vec<UserPlan>> {
    let ids: Vec<String> = affected.iter().map(|(u, _)| u.clone()).collect();
    let missing: Vec<String> = ids.iter().filter(|u| !known.ids.contains(*u)).cloned().collect();
    let read = match missing.is_empty() {
        true => Known::default(),
        false => Known::read(ctx, &missing).await?,
    };
    let wanted = |u: &String| ids.contains(u);
    let mut docs: HashMap<String, Stored> =
        known.docs.iter().filter(|(u, _)| wanted(u)).map(|(u, s)| (u.clone(), s.clone())).collect();
    docs.extend(read.docs);
    let mut rows: HashMap<String, AssignRow> =
        known.assigns.iter().filter(|(u, _)| wanted(u)).map(|(u, r)| (u.clone(), r.clone())).collect();
    rows.extend(read.assigns);
    let present: Vec<String> = ids.iter().filter(|u| docs.contains_key(*u)).cloned().collect();
    // Memberships after the ASSIGN# rows too: another group's change moves the sequence.
    let names = roles.names_of(ctx, &present, Some(group_id)).await?;
    let this_role = group_name_after.filter(|n| ctx.integration.roles.is_role_group(n));
    Ok(group_change_plans(ctx.integration, &docs, &rows, names, this_role, affected))
}

/// The rule of [`plan_group_change`], on what it read: each affected user's role groups after
/// the change are the others they belong to (`names`) plus this one (`this_role`, when it is
/// role-mapped) if they are a member afterwards; their effective assignment follows. Users
/// without a document (deleted) are left out; a user listed twice counts once.
pub fn group_change_plans(
    integration: &IntegrationConfig,
    docs: &HashMap<String, Stored>,
    rows: &HashMap<String, AssignRow>,
    mut names: HashMap<String, Vec<String>>,
    this_role: Option<&str>,
    affected: &Affected,
) -> Vec<UserPlan> {
    let mut plans = Vec::with_capacity(docs.len());
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
        let after = effective(&user.doc, &groups, integration);
        plans.push(UserPlan::new(user_id, Some(&user.doc), rows.get(user_id), Some(after)));
    }
    plans
}

#[cfg(test)]
#[path = "provision_tests.rs"]
mod tests;
