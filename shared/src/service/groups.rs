//! `/Groups`: create, read, replace, patch, delete. Members are rows: a PATCH that adds or
//! removes members writes those rows and bumps the group's version atomically, without
//! reading or rewriting the member list.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value, json};

use super::provision::{Affected, Known, Provision, RoleGroups, UserPlan, UserWrites, plan_group_change};
use super::{Ctx, Reply, WRITE_ATTEMPTS, check_limits, etag, if_match_ok, now, read_resource, render, write_error};
use crate::error::{ScimError, ScimResult};
use crate::queue::FanoutMessage;
use crate::scim::patch::{self, MemberDelta};
use crate::scim::resource::{Projection, check_required, member_displays, normalise, take_members};
use crate::scim::schema::GROUP_TYPE;
use crate::store::fanout::{FanoutMode, FanoutRow};
use crate::store::plan::{Write, actions_in, cut};
use crate::store::resources::{Kind, Stored, WriteError};
use crate::store::{MAX_TRANSACTION_ITEMS, StoreError};

const KIND: Kind = Kind::Group;

fn not_found(id: &str) -> ScimError {
    let shown: String = id.chars().take(64).collect();
    ScimError::not_found(format!("Group {shown} not found"))
}

/// A group body split into the stored document, the member ids it lists (if any) and their
/// `display` values.
struct Prepared {
    doc: Map<String, Value>,
    members: Option<Vec<String>>,
    displays: Displays,
}

type Displays = HashMap<String, String>;

fn prepare(mut body: Value) -> ScimResult<Prepared> {
    let displays = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("members")))
        .map(|(_, v)| member_displays(v))
        .unwrap_or_default();
    let members = take_members(&mut body)?;
    let doc = normalise(&GROUP_TYPE, body)?;
    check_required(&GROUP_TYPE, &doc)?;
    check_limits(KIND, &doc)?;
    Ok(Prepared { doc, members, displays })
}

/// Member `display` values anywhere in PATCH operations (`path: members`, or a path-less value
/// with a `members` key).
fn displays_in(ops: &[patch::Operation]) -> Displays {
    let mut out = Displays::new();
    for op in ops {
        let Some(value) = &op.value else { continue };
        match &op.path {
            Some(p) if p.path.attr.eq_ignore_ascii_case("members") => out.extend(member_displays(value)),
            None => {
                if let Some((_, v)) =
                    value.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("members")))
                {
                    out.extend(member_displays(v));
                }
            }
            Some(_) => {}
        }
    }
    out
}

async fn load(ctx: Ctx<'_>, id: &str) -> ScimResult<Stored> {
    ctx.store.get_resource(ctx.integration_id, KIND, id).await?.ok_or_else(|| not_found(id))
}

/// Members one response carries at most (docs/contract.md "Limits"): at a few hundred bytes
/// each, far below Lambda's 6 MB response limit. A larger group's `GET /Groups/{id}` pages
/// them: see [`MEMBERS_PAGE`].
pub const MEMBERS_PER_RESPONSE: usize = 10_000;
/// In list responses, a group with more members than this is listed without `members`.
pub const LIST_MEMBERS_PER_GROUP: usize = 1_000;
/// The key of the note a `GET /Groups/{id}` answer carries when more members follow:
/// `{ "itemsPerPage": n, "next": "<url of the next page>" }` (`?membersAfter=<last member id>`).
pub const MEMBERS_PAGE: &str = "urn:idlcm:params:scim:api:messages:2.0:MembersPage";

pub(crate) async fn reply(ctx: Ctx<'_>, status: u16, r: &Stored, projection: &Projection) -> ScimResult<Reply> {
    reply_page(ctx, status, r, projection, None).await
}

/// The group with at most [`MEMBERS_PER_RESPONSE`] members after `members_after`, and the
/// [`MEMBERS_PAGE`] note when more follow.
pub(crate) async fn reply_page(
    ctx: Ctx<'_>,
    status: u16,
    r: &Stored,
    projection: &Projection,
    members_after: Option<&str>,
) -> ScimResult<Reply> {
    let (members, more) = if projection.wants("members") {
        let (m, more) =
            ctx.store.group_members_upto(ctx.integration_id, &r.id, members_after, MEMBERS_PER_RESPONSE).await?;
        (Some(m), more)
    } else {
        (None, false)
    };
    let mut body = projection.apply(render::resource(ctx.base_url, KIND, r, members.as_deref()));
    if let (true, Some(last), Some(obj)) = (more, members.as_ref().and_then(|m| m.last()), body.as_object_mut()) {
        let next =
            format!("{}?membersAfter={}", render::location(ctx.base_url, KIND, &r.id), urlencoding::encode(&last.id));
        obj.insert(MEMBERS_PAGE.into(), json!({ "itemsPerPage": MEMBERS_PER_RESPONSE, "next": next }));
    }
    Ok(Reply {
        status,
        body: Some(body),
        etag: Some(etag(r.version)),
        location: Some(render::location(ctx.base_url, KIND, &r.id)),
    })
}

/// A group in a list response, or `None` when its members would take the page past
/// `member_budget` (the page ends before it). A group with more than
/// [`LIST_MEMBERS_PER_GROUP`] members is listed without them. Returns the members used.
pub(crate) async fn list_item(
    ctx: Ctx<'_>,
    r: &Stored,
    projection: &Projection,
    member_budget: usize,
    first: bool,
) -> ScimResult<Option<(Value, usize)>> {
    let mut members = None;
    if projection.wants("members") {
        let (m, more) = ctx.store.group_members_upto(ctx.integration_id, &r.id, None, LIST_MEMBERS_PER_GROUP).await?;
        if !more {
            if m.len() > member_budget && !first {
                return Ok(None);
            }
            members = Some(m);
        }
    }
    let used = members.as_ref().map_or(0, Vec::len);
    let body = render::resource(ctx.base_url, KIND, r, members.as_deref());
    Ok(Some((projection.apply(body), used)))
}

fn display_name(doc: &Map<String, Value>) -> Option<&str> {
    doc.get("displayName").and_then(Value::as_str)
}

/// One user's share of a group change: their member row, whether they are a member
/// afterwards, and (when their assignment may change) their assignment writes.
#[derive(Debug)]
struct Bundle {
    user_id: String,
    member_after: bool,
    row: Write,
    assignment: Option<UserWrites>,
}

impl Bundle {
    /// The most actions this bundle can take, re-planned or not: its member rows, and with an
    /// assignment its `ASSIGN#` row and a job (a re-plan after a lost race may add one).
    fn max_len(&self) -> usize {
        self.row.actions() + if self.assignment.is_some() { 2 } else { 0 }
    }
    fn writes(&self) -> impl Iterator<Item = Write> + '_ {
        std::iter::once(self.row.clone()).chain(self.assignment.iter().flat_map(|a| a.writes.iter().cloned()))
    }
    fn has_job(&self) -> bool {
        self.assignment.as_ref().is_some_and(|a| a.message.is_some())
    }
}

/// How a group change can move assignments.
struct Impact<'a> {
    /// The group's displayName after the change (`None`: deleted).
    name_after: Option<&'a str>,
    /// Membership changes matter (the group grants a role after the change).
    membership: bool,
    /// The role the group grants changed (rename, delete): every member is affected.
    all_members: bool,
}

/// The role (and its priority) a group named `name` grants, if any.
fn grant(ctx: Ctx<'_>, name: Option<&str>) -> Option<(String, i64)> {
    name.and_then(|n| ctx.integration.roles.group_role(n)).map(|g| (g.role.clone(), g.priority))
}

impl<'a> Impact<'a> {
    fn new(ctx: Ctx<'_>, before: Option<&str>, after: Option<&'a str>) -> Self {
        Impact {
            name_after: after,
            membership: grant(ctx, after).is_some(),
            all_members: grant(ctx, before) != grant(ctx, after),
        }
    }
    fn any(&self) -> bool {
        self.membership || self.all_members
    }
}

/// Member-row bundles that take a group from `current` (when known) to the delta's result,
/// with the added users' rows read to tell which exist: with `plan` (the change may move
/// assignments) their `ASSIGN#` rows first, then their documents, with the role groups' name
/// rows in whichever of the two reads has room (see `provision::Known`); they then serve the
/// plan without a second read. Member ids that are not users of this
/// integration are dropped: an IdP can only reference users it provisioned here, and a row for
/// a stranger would be garbage.
async fn member_bundles(
    ctx: Ctx<'_>,
    group_id: &str,
    delta: &MemberDelta,
    current: Option<&[String]>,
    displays: &Displays,
    plan: bool,
) -> ScimResult<(Vec<Bundle>, Known)> {
    let adds: Vec<String> = delta.set.iter().filter(|(_, m)| *m).map(|(id, _)| id.clone()).collect();
    let known = match plan {
        true => Known::read_with_roles(ctx, &adds).await?,
        false => {
            let docs = ctx.store.get_resources(ctx.integration_id, Kind::User, &adds).await?;
            Known { docs: docs.into_iter().map(|u| (u.id.clone(), u)).collect(), ..Known::default() }
        }
    };
    if known.docs.len() < adds.len() {
        tracing::warn!(
            unknown = adds.len() - known.docs.len(),
            "group change names members that are not users here; ignored"
        );
    }
    let exist: HashSet<String> = known.docs.keys().cloned().collect();
    Ok((member_changes(ctx.integration_id, group_id, delta, current, &exist, displays), known))
}

/// The rule of [`member_bundles`]: users (that exist) the delta adds and `current` lacks
/// become members; users it removes, and with a reset every current member it does not keep,
/// stop being members.
fn member_changes(
    iid: &str,
    group_id: &str,
    delta: &MemberDelta,
    current: Option<&[String]>,
    users: &HashSet<String>,
    displays: &Displays,
) -> Vec<Bundle> {
    let bundle = |id: &str, member_after: bool, row: Write| Bundle {
        user_id: id.to_string(),
        member_after,
        row,
        assignment: None,
    };
    let mut out = Vec::new();
    for (id, _) in delta.set.iter().filter(|(id, m)| *m && users.contains(id)) {
        if current.is_some_and(|c| c.contains(id)) {
            continue;
        }
        let display = displays.get(id).cloned();
        let row = Write::Member { iid: iid.to_string(), group_id: group_id.to_string(), user_id: id.clone(), display };
        out.push(bundle(id, true, row));
    }
    let mut removes: Vec<&String> = delta.set.iter().filter(|(_, m)| !*m).map(|(id, _)| id).collect();
    if delta.reset {
        removes.extend(current.unwrap_or_default().iter().filter(|id| !users.contains(*id)));
    }
    for id in removes {
        let row = Write::NotMember { iid: iid.to_string(), group_id: group_id.to_string(), user_id: id.clone() };
        out.push(bundle(id, false, row));
    }
    out
}

/// Plans the assignment actions of the members this change lists. When the change moves every
/// member (`impact.all_members`), the others are re-planned behind the request by a fan-out
/// (`service::fanout`), whatever the group's size.
async fn plan_assignments(
    ctx: Ctx<'_>,
    provision: &mut Provision,
    group_id: &str,
    impact: &Impact<'_>,
    bundles: &mut [Bundle],
    known: &Known,
) -> ScimResult<()> {
    if !impact.any() || bundles.is_empty() {
        return Ok(());
    }
    assign(ctx, provision, group_id, impact.name_after, bundles.iter_mut().collect(), known).await
}

/// (Re)computes the assignment actions of these bundles' users (`known`: their rows already
/// read; the others are read).
async fn assign(
    ctx: Ctx<'_>,
    provision: &mut Provision,
    group_id: &str,
    name_after: Option<&str>,
    bundles: Vec<&mut Bundle>,
    known: &Known,
) -> ScimResult<()> {
    // Read with the members' documents when they were (`Known::read_with_roles`).
    let roles = match &known.roles {
        Some(roles) => roles.clone(),
        None => RoleGroups::load(ctx).await?,
    };
    let affected: Affected = bundles.iter().map(|b| (b.user_id.clone(), b.member_after)).collect();
    let plans = plan_group_change(ctx, &roles, group_id, name_after, &affected, known).await?;
    let mut by_user: HashMap<String, UserPlan> = plans.into_iter().map(|p| (p.user_id.clone(), p)).collect();
    for b in bundles {
        b.assignment = by_user.remove(&b.user_id).map(|plan| provision.user_writes(&plan));
    }
    Ok(())
}

/// A fan-out to start with a group change: how, and whether its jobs make an Activity request
/// (a deleted group that granted no role only needs its membership rows removed).
#[derive(Clone, Copy)]
struct Fanout {
    mode: FanoutMode,
    with_request: bool,
}

/// Commits a group change: `head` (the group's own write, given extra writes to include)
/// first, with the request row, the fan-out task (if any) and as many user bundles as fit in
/// one transaction; the other bundles follow in transactions of at most 100 actions, each
/// checking that the group still exists and keeps the name they were planned by. A bundle that
/// loses a race on a user's assignment is re-planned and retried. Jobs, then the fan-out's
/// first page, are sent once everything is committed, or once the first transaction is and a
/// later one failed (the error is answered after).
#[allow(clippy::too_many_arguments, reason = "one commit's parts")]
async fn commit<T, Fut>(
    ctx: Ctx<'_>,
    mut provision: Provision,
    group_id: &str,
    impact: &Impact<'_>,
    head_len: usize,
    head: impl FnOnce(Vec<Write>) -> Fut,
    bundles: Vec<Bundle>,
    fanout: Option<Fanout>,
) -> Result<T, CommitError>
where
    Fut: Future<Output = Result<T, WriteError>>,
{
    let mut planned = bundles.iter().filter(|b| b.has_job()).count();
    let with_request = fanout.is_some_and(|f| f.with_request);
    let task = fanout.map(|f| {
        let request_id = f.with_request.then_some(provision.request_id.as_str());
        FanoutRow::new(ctx.integration_id, group_id, request_id, f.mode, &now())
    });
    let mut extra: Vec<Write> =
        provision.request_write(KIND, Some(group_id), planned, with_request).into_iter().collect();
    extra.extend(task.clone().map(|t| Write::Fanout(Box::new(t))));
    let sizes: Vec<usize> = bundles.iter().map(Bundle::max_len).collect();
    let first_count = cut(&sizes, MAX_TRANSACTION_ITEMS - head_len - actions_in(&extra))[0];
    let mut rest = bundles.into_iter();
    let first: Vec<Bundle> = rest.by_ref().take(first_count).collect();
    extra.extend(first.iter().flat_map(Bundle::writes));
    let result = head(extra).await?;
    let mut sent_jobs = 0;
    for b in first {
        sent_jobs += usize::from(b.has_job());
        provision.committed(b.assignment.and_then(|a| a.message));
    }
    // The later transactions, each with a check that the group still exists and, when the
    // integration has role groups, still has the name its members were planned by
    // (`Write::GroupNamed`). A rename committed between two of them would otherwise leave the
    // later members planned by the old name, and the rename's re-plan, which pages through the
    // members it can see, may have passed their place already. A failed check reads the group
    // again and plans the rest by its new name (when that moves the role it grants); a group
    // deleted meanwhile takes the rest with it (its deletion removed the members it saw, and
    // the rest never join).
    let names_matter = !ctx.integration.roles.groups.is_empty();
    let mut name = impact.name_after.map(str::to_string);
    let mut request_written = planned > 0 || with_request;
    let mut pending: VecDeque<Bundle> = rest.collect();
    let later = async {
        let (mut renamed, mut lost) = (0, 0);
        while !pending.is_empty() {
            // Room for the check and, when the first transaction wrote no request (it planned
            // no job) but a re-plan made some, the request row.
            let reserve = 1 + usize::from(!request_written);
            let sizes: Vec<usize> = pending.iter().map(Bundle::max_len).collect();
            let count = cut(&sizes, MAX_TRANSACTION_ITEMS - reserve)[0].max(1);
            let chunk: Vec<Bundle> = pending.drain(..count).collect();
            let jobs = chunk.iter().filter(|b| b.has_job()).count();
            let new_request =
                if request_written { None } else { provision.request_write(KIND, Some(group_id), jobs, false) };
            let name_key = name.as_deref().filter(|_| names_matter).map(crate::store::resources::name_key);
            let check =
                Write::GroupNamed { iid: ctx.integration_id.to_string(), group_id: group_id.to_string(), name_key };
            let mut writes = vec![check];
            writes.extend(new_request.clone());
            writes.extend(chunk.iter().flat_map(Bundle::writes));
            match ctx.store.commit(&writes).await {
                Ok(()) => {
                    lost = 0;
                    if new_request.is_some() {
                        request_written = true;
                        planned += jobs;
                    }
                    for b in chunk {
                        sent_jobs += usize::from(b.has_job());
                        provision.committed(b.assignment.and_then(|a| a.message));
                    }
                }
                Err(e) if e.condition_failed_at(0) && renamed < WRITE_ATTEMPTS => {
                    renamed += 1;
                    chunk.into_iter().rev().for_each(|b| pending.push_front(b));
                    let Some(group) = ctx.store.get_resource(ctx.integration_id, KIND, group_id).await? else {
                        tracing::info!(
                            left = pending.len(),
                            "group deleted during a chunked change; the rest not written"
                        );
                        pending.clear();
                        continue;
                    };
                    let renamed_to = display_name(&group.doc).map(str::to_string);
                    if grant(ctx, renamed_to.as_deref()) != grant(ctx, name.as_deref()) {
                        tracing::info!("group renamed during a chunked change; the rest planned by its new name");
                        // Every bundle: members that needed no plan by the old name may by the new one.
                        let all = pending.iter_mut().collect();
                        assign(ctx, &mut provision, group_id, renamed_to.as_deref(), all, &Known::default()).await?;
                    }
                    name = renamed_to;
                }
                Err(e) if lost < WRITE_ATTEMPTS && e.lost_race() => {
                    // A concurrent write changed one of these users' assignment: plan them again.
                    lost += 1;
                    let mut chunk = chunk;
                    let again = chunk.iter_mut().filter(|b| b.assignment.is_some()).collect();
                    // Their documents are read again too: the race may have been a user write.
                    assign(ctx, &mut provision, group_id, name.as_deref(), again, &Known::default()).await?;
                    chunk.into_iter().rev().for_each(|b| pending.push_front(b));
                }
                Err(e) => return Err(CommitError::Scim(e.into())),
            }
        }
        Ok::<(), CommitError>(())
    }
    .await;
    // Whatever became of the rest, what is committed is counted and sent: the request's total
    // is what was committed (a request left with no job is finished), and the committed jobs
    // go to the queue (the sweeper would re-send them, but only after its grace period).
    if sent_jobs != planned && (planned > 0 || with_request) {
        ctx.store
            .request_adjust_total(ctx.integration_id, &provision.request_id, sent_jobs as i64 - planned as i64)
            .await?;
    }
    provision.send(ctx.queue).await;
    if let Some(task) = task {
        // Not sent (SQS refused): the sweeper re-sends stalled fan-outs.
        let first =
            FanoutMessage { integration_id: ctx.integration_id.to_string(), fanout: task.id, page: 0, resend: None };
        ctx.queue.send_fanout(&first).await;
    }
    later?;
    Ok(result)
}

/// Why a group commit did not happen.
enum CommitError {
    Write(WriteError),
    Scim(ScimError),
}

impl From<WriteError> for CommitError {
    fn from(e: WriteError) -> Self {
        CommitError::Write(e)
    }
}

impl From<ScimError> for CommitError {
    fn from(e: ScimError) -> Self {
        CommitError::Scim(e)
    }
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        CommitError::Scim(e.into())
    }
}

pub async fn create(ctx: Ctx<'_>, body: Value, projection: &Projection) -> ScimResult<Reply> {
    let Prepared { doc, members, displays } = prepare(body)?;
    let id = ulid::Ulid::new().to_string();
    let delta = MemberDelta { reset: false, set: members.unwrap_or_default().into_iter().map(|m| (m, true)).collect() };
    let impact = Impact::new(ctx, None, display_name(&doc));
    for _ in 0..WRITE_ATTEMPTS {
        let mut provision = Provision::new(ctx);
        // A new group has no members: only those it is created with count.
        let impact = Impact { all_members: false, ..impact };
        let (mut bundles, known) = member_bundles(ctx, &id, &delta, Some(&[]), &displays, impact.any()).await?;
        plan_assignments(ctx, &mut provision, &id, &impact, &mut bundles, &known).await?;
        let now = now();
        let head = |extra| ctx.store.create_resource(ctx.integration_id, KIND, id.clone(), doc.clone(), &now, extra);
        let head_len = 3; // the group and its two uniqueness rows
        match commit(ctx, provision, &id, &impact, head_len, head, bundles, None).await {
            Ok(stored) => return reply(ctx, 201, &stored, projection).await,
            Err(CommitError::Write(WriteError::Contended)) => continue,
            Err(CommitError::Write(e)) => return Err(write_error(KIND, e, &doc)),
            Err(CommitError::Scim(e)) => return Err(e),
        }
    }
    Err(ScimError::unavailable("too many concurrent changes; retry"))
}

/// `GET /Groups/{id}`; `members_after` (`?membersAfter=`) pages a large group's members.
pub async fn get(ctx: Ctx<'_>, id: &str, projection: &Projection, members_after: Option<&str>) -> ScimResult<Reply> {
    if members_after.is_some_and(|m| !crate::store::keys::is_resource_id(m)) {
        return Err(ScimError::invalid_value("membersAfter must be a member id, as a 'next' link gives it"));
    }
    let r = read_resource(ctx, KIND, id, true).await?.ok_or_else(|| not_found(id))?;
    reply_page(ctx, 200, &r, projection, members_after).await
}

/// Shared write path of PUT and PATCH: a new document (or none) and a member delta.
async fn write(
    ctx: Ctx<'_>,
    id: &str,
    if_match: Option<&str>,
    change: impl Fn(&Stored) -> ScimResult<Option<Map<String, Value>>>,
    delta: &MemberDelta,
    displays: &Displays,
) -> ScimResult<Stored> {
    for attempt in 0..WRITE_ATTEMPTS {
        let old = read_resource(ctx, KIND, id, attempt == 0).await?.ok_or_else(|| not_found(id))?;
        if !if_match_ok(if_match, &old) {
            return Err(ScimError::precondition_failed("If-Match does not match the current version"));
        }
        let doc = change(&old)?.filter(|d| *d != old.doc);
        let impact = Impact::new(ctx, display_name(&old.doc), display_name(doc.as_ref().unwrap_or(&old.doc)));
        // A PUT replaces the member list: the current one tells who leaves.
        let current: Option<Vec<String>> = match delta.reset {
            true => Some(ctx.store.group_members(ctx.integration_id, id).await?.into_iter().map(|m| m.id).collect()),
            false => None,
        };
        let mut provision = Provision::new(ctx);
        let (mut bundles, known) = member_bundles(ctx, id, delta, current.as_deref(), displays, impact.any()).await?;
        // The members this change lists are planned here; when the group's role changed, the
        // rest follow behind the answer, in pages (whatever the group's size).
        plan_assignments(ctx, &mut provision, id, &impact, &mut bundles, &known).await?;
        let fanout = impact.all_members.then_some(Fanout { mode: FanoutMode::Replan, with_request: true });
        if doc.is_none() && bundles.is_empty() {
            return Ok(old);
        }
        let now = now();
        let result = match &doc {
            Some(d) => {
                let head = |extra| ctx.store.replace_resource(ctx.integration_id, KIND, &old, d.clone(), &now, extra);
                commit(ctx, provision, id, &impact, 5, head, bundles, fanout).await
            }
            None => {
                // Members only: bump the version atomically; no read-modify-write of the group.
                let expect = if_match.map(|_| old.version);
                let head = |extra: Vec<Write>| async {
                    ctx.store.touch_group(ctx.integration_id, &old, &now, expect, extra).await.map(|()| Stored {
                        version: old.version + 1,
                        last_modified: now.clone(),
                        ..old.clone()
                    })
                };
                commit(ctx, provision, id, &impact, 1, head, bundles, fanout).await
            }
        };
        match result {
            Ok(new) => return Ok(new),
            Err(CommitError::Write(WriteError::Contended)) => continue,
            Err(CommitError::Write(WriteError::VersionMismatch)) if if_match.is_none() => continue,
            Err(CommitError::Write(WriteError::VersionMismatch)) if doc.is_none() => {
                // Gone or changed: tell which.
                load(ctx, id).await?;
                return Err(ScimError::precondition_failed("If-Match does not match the current version"));
            }
            Err(CommitError::Write(e)) => return Err(write_error(KIND, e, doc.as_ref().unwrap_or(&old.doc))),
            Err(CommitError::Scim(e)) => return Err(e),
        }
    }
    Err(ScimError::unavailable("too many concurrent changes to this group; retry"))
}

pub async fn replace(
    ctx: Ctx<'_>,
    id: &str,
    body: Value,
    if_match: Option<&str>,
    projection: &Projection,
) -> ScimResult<Reply> {
    let Prepared { doc, members, displays } = prepare(body)?;
    // PUT replaces the whole resource (RFC 7644 §3.5.1): no `members` means no members.
    let delta = MemberDelta { reset: true, set: members.unwrap_or_default().into_iter().map(|m| (m, true)).collect() };
    let r = write(ctx, id, if_match, |_| Ok(Some(doc.clone())), &delta, &displays).await?;
    reply(ctx, 200, &r, projection).await
}

pub async fn patch(
    ctx: Ctx<'_>,
    id: &str,
    body: Value,
    if_match: Option<&str>,
    projection: Option<&Projection>,
) -> ScimResult<Reply> {
    let ops = patch::parse_request(body)?;
    let displays = displays_in(&ops);
    let (doc_ops, member_changes) = patch::split_group_ops(ops)?;
    let delta = patch::fold_member_changes(&member_changes);
    let r = write(
        ctx,
        id,
        if_match,
        |old| {
            if doc_ops.is_empty() {
                return Ok(None);
            }
            let mut doc = old.doc.clone();
            patch::apply(&mut doc, &GROUP_TYPE, &doc_ops)?;
            Ok(Some(prepare(Value::Object(doc))?.doc))
        },
        &delta,
        &displays,
    )
    .await?;
    match projection {
        Some(p) => reply(ctx, 200, &r, p).await,
        None => Ok(Reply { etag: Some(etag(r.version)), ..Reply::no_content() }),
    }
}

pub async fn delete(ctx: Ctx<'_>, id: &str, if_match: Option<&str>) -> ScimResult<Reply> {
    for attempt in 0..WRITE_ATTEMPTS {
        let old = read_resource(ctx, KIND, id, attempt == 0).await?.ok_or_else(|| not_found(id))?;
        if !if_match_ok(if_match, &old) {
            return Err(ScimError::precondition_failed("If-Match does not match the current version"));
        }
        // The group goes now; its members leave behind the answer, in pages: each member's
        // assignment is re-planned (when the group granted a role, in one Activity request)
        // and the membership rows are removed, whatever the group's size.
        let impact = Impact::new(ctx, display_name(&old.doc), None);
        let fanout = Fanout { mode: FanoutMode::Delete, with_request: impact.all_members };
        let provision = Provision::new(ctx);
        let head = |extra| ctx.store.delete_resource(ctx.integration_id, KIND, &old, extra);
        match commit(ctx, provision, id, &impact, 3, head, Vec::new(), Some(fanout)).await {
            Ok(()) => return Ok(Reply::no_content()),
            Err(CommitError::Write(WriteError::Contended)) => continue,
            Err(CommitError::Write(WriteError::VersionMismatch)) if if_match.is_none() => continue,
            Err(CommitError::Write(e)) => return Err(write_error(KIND, e, &old.doc)),
            Err(CommitError::Scim(e)) => return Err(e),
        }
    }
    Err(ScimError::unavailable("too many concurrent changes to this group; retry"))
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
