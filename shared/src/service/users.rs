//! `/Users`: create, read, replace, patch, delete.

use serde_json::Value;

use super::provision::{Provision, UserPlan, UserWrites, role_group_names};
use super::{Ctx, Reply, WRITE_ATTEMPTS, check_limits, etag, if_match_ok, now, read_resource, render, write_error};
use crate::assignment::effective::effective;
use crate::error::{ScimError, ScimResult};
use crate::queue::JobMessage;
use crate::scim::resource::{Projection, check_required, normalise};
use crate::scim::{patch, schema::USER_TYPE};
use crate::store::job_context::UserAndAssign;
use crate::store::plan::Write;
use crate::store::resources::{Kind, Stored, WriteError};

const KIND: Kind = Kind::User;

fn not_found(id: &str) -> ScimError {
    let shown: String = id.chars().take(64).collect();
    ScimError::not_found(format!("User {shown} not found"))
}

fn prepare(body: Value) -> ScimResult<serde_json::Map<String, Value>> {
    let doc = normalise(&USER_TYPE, body)?;
    check_required(&USER_TYPE, &doc)?;
    check_limits(KIND, &doc)?;
    Ok(doc)
}

pub(crate) fn reply(ctx: Ctx<'_>, status: u16, r: &Stored, projection: &Projection) -> Reply {
    let body = projection.apply(render::resource(ctx.base_url, KIND, r, None));
    Reply {
        status,
        body: Some(body),
        etag: Some(etag(r.version)),
        location: Some(render::location(ctx.base_url, KIND, &r.id)),
    }
}

/// `groups` of a user (RFC 7643 §4.1.2: read-only, returned by default): the groups it is a
/// direct member of, from the membership rows (one Query), then the groups themselves (one
/// BatchGetItem, none for a user in no group), unless a write has just read them (`known`).
/// List pages do not carry it.
async fn groups_of(ctx: Ctx<'_>, user_id: &str, known: Option<Vec<Stored>>) -> ScimResult<Vec<Value>> {
    let mut groups = match known {
        Some(groups) => groups,
        None => member_of(ctx, user_id).await?,
    };
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(groups
        .iter()
        .map(|g| {
            serde_json::json!({
                "value": g.id,
                "$ref": render::location(ctx.base_url, Kind::Group, &g.id),
                "display": g.doc.get("displayName").cloned().unwrap_or(Value::Null),
                "type": "direct",
            })
        })
        .collect())
}

/// The groups a user is a direct member of, as stored.
async fn member_of(ctx: Ctx<'_>, user_id: &str) -> ScimResult<Vec<Stored>> {
    let ids = ctx.store.user_groups(ctx.integration_id, user_id).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(ctx.store.get_resources(ctx.integration_id, Kind::Group, &ids).await?)
}

/// A single user's answer with its `groups`, unless the client leaves them out
/// (`excludedAttributes=groups`, or `attributes` without it). After a committed write
/// (`written`), a failed read of the groups leaves them out of the answer rather than
/// reporting the write as failed. `known`: the user's groups, when the write read them.
async fn reply_with_groups(
    ctx: Ctx<'_>,
    status: u16,
    r: &Stored,
    projection: &Projection,
    written: bool,
    known: Option<Vec<Stored>>,
) -> ScimResult<Reply> {
    let mut out = reply(ctx, status, r, projection);
    if !projection.wants("groups") {
        return Ok(out);
    }
    let groups = match groups_of(ctx, &r.id, known).await {
        Ok(groups) => groups,
        Err(e) if written => {
            tracing::warn!(status = e.status, "groups left out of a write's answer: {}", e.detail);
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    if let Some(body) = out.body.as_mut().and_then(Value::as_object_mut)
        && !groups.is_empty()
    {
        body.insert("groups".into(), Value::Array(groups));
    }
    Ok(out)
}

/// The user and its desired assignment: on a first attempt (`first`) as the request read them
/// with its configuration, when it did; else read now.
async fn user_and_assign(ctx: Ctx<'_>, id: &str, first: bool) -> ScimResult<UserAndAssign> {
    if first && let Some(read) = ctx.prefetched.and_then(|p| p.user_and_assign(id)) {
        return Ok(read?);
    }
    Ok(ctx.store.user_and_assign(ctx.integration_id, id).await?)
}

pub async fn create(ctx: Ctx<'_>, body: Value, projection: &Projection) -> ScimResult<Reply> {
    let doc = prepare(body)?;
    let id = ulid::Ulid::new().to_string();
    // A new user is in no group yet: the role comes from an explicit attribute or the default.
    let plan = UserPlan::new(&id, Some(&doc), None, Some(effective(&doc, &[], ctx.integration)));
    let mut provision = Provision::for_one_user(ctx);
    let (extra, message) = single_user(&mut provision, &plan, Some(&id));
    let stored = ctx
        .store
        .create_resource(ctx.integration_id, KIND, id, doc.clone(), &now(), extra)
        .await
        .map_err(|e| write_error(KIND, e, &doc))?;
    provision.committed(message);
    provision.send(ctx.queue).await;
    Ok(reply(ctx, 201, &stored, projection))
}

pub async fn get(ctx: Ctx<'_>, id: &str, projection: &Projection) -> ScimResult<Reply> {
    let r = read_resource(ctx, KIND, id, true).await?.ok_or_else(|| not_found(id))?;
    reply_with_groups(ctx, 200, &r, projection, false, None).await
}

/// A user as a PUT or PATCH left it, with its groups when the write read them.
struct Written {
    user: Stored,
    groups: Option<Vec<Stored>>,
}

/// Re-reads and re-applies `change` until the optimistic locks hold (the user's `version` and
/// its assignment's `seq`); with `If-Match`, a lost race is a 412 instead (the client asked
/// for that exact version). The user's new effective assignment is committed with the write,
/// with a job when it changed.
async fn update<F>(ctx: Ctx<'_>, id: &str, if_match: Option<&str>, change: F) -> ScimResult<Written>
where
    F: Fn(&Stored) -> ScimResult<serde_json::Map<String, Value>>,
{
    for attempt in 0..WRITE_ATTEMPTS {
        // The first attempt's user and assignment were read with the configuration.
        let (old, row) = user_and_assign(ctx, id, attempt == 0).await?;
        let old = old.ok_or_else(|| not_found(id))?;
        if !if_match_ok(if_match, &old) {
            return Err(ScimError::precondition_failed("If-Match does not match the current version"));
        }
        let doc = change(&old)?;
        if doc == old.doc {
            return Ok(Written { user: old, groups: None });
        }
        // With role groups configured, the user's groups decide its role: its membership rows,
        // read after its assignment (a membership change of a role group committed in between
        // moves the assignment's `seq`, and this commit fails and plans again), then those
        // groups, whose names tell which grant a role (a rename to or from a role group's name
        // re-plans every member behind it: `service::fanout`). The answer lists them without a
        // second read. Without role groups, they are read for the answer only, after the commit.
        let groups = match ctx.integration.roles.groups.is_empty() {
            true => None,
            false => Some(member_of(ctx, id).await?),
        };
        let role_groups = role_group_names(ctx.integration, groups.as_deref().unwrap_or_default());
        let plan = UserPlan::new(id, Some(&doc), row.as_ref(), Some(effective(&doc, &role_groups, ctx.integration)));
        let mut provision = Provision::for_one_user(ctx);
        let (extra, message) = single_user(&mut provision, &plan, Some(id));
        match ctx.store.replace_resource(ctx.integration_id, KIND, &old, doc.clone(), &now(), extra).await {
            Ok(new) => {
                provision.committed(message);
                provision.send(ctx.queue).await;
                return Ok(Written { user: new, groups });
            }
            Err(WriteError::VersionMismatch) if if_match.is_none() => continue,
            Err(WriteError::Contended) => continue,
            Err(e) => return Err(write_error(KIND, e, &doc)),
        }
    }
    Err(ScimError::unavailable("too many concurrent changes to this user; retry"))
}

pub async fn replace(
    ctx: Ctx<'_>,
    id: &str,
    body: Value,
    if_match: Option<&str>,
    projection: &Projection,
) -> ScimResult<Reply> {
    let doc = prepare(body)?;
    let w = update(ctx, id, if_match, |_| Ok(doc.clone())).await?;
    reply_with_groups(ctx, 200, &w.user, projection, true, w.groups).await
}

pub async fn patch(
    ctx: Ctx<'_>,
    id: &str,
    body: Value,
    if_match: Option<&str>,
    projection: Option<&Projection>,
) -> ScimResult<Reply> {
    let ops = patch::parse_request(body)?;
    let w = update(ctx, id, if_match, |old| {
        let mut doc = old.doc.clone();
        patch::apply(&mut doc, &USER_TYPE, &ops)?;
        prepare(Value::Object(doc))
    })
    .await?;
    Ok(match projection {
        Some(p) => reply_with_groups(ctx, 200, &w.user, p, true, w.groups).await?,
        None => Reply { etag: Some(etag(w.user.version)), ..Reply::no_content() },
    })
}

pub async fn delete(ctx: Ctx<'_>, id: &str, if_match: Option<&str>) -> ScimResult<Reply> {
    for attempt in 0..WRITE_ATTEMPTS {
        let (old, row) = user_and_assign(ctx, id, attempt == 0).await?;
        let old = old.ok_or_else(|| not_found(id))?;
        if !if_match_ok(if_match, &old) {
            return Err(ScimError::precondition_failed("If-Match does not match the current version"));
        }
        // DELETE deprovisions: the desired assignment becomes none; the job keeps the last resource.
        let mut plan = UserPlan::new(id, Some(&old.doc), row.as_ref(), None);
        plan.snapshot = Some(render::resource(ctx.base_url, KIND, &old, None));
        let mut provision = Provision::for_one_user(ctx);
        let (extra, message) = single_user(&mut provision, &plan, Some(id));
        match ctx.store.delete_resource(ctx.integration_id, KIND, &old, extra).await {
            Ok(()) => {
                provision.committed(message);
                provision.send(ctx.queue).await;
                remove_memberships(ctx, id).await?;
                return Ok(Reply::no_content());
            }
            Err(WriteError::VersionMismatch) if if_match.is_none() => continue,
            Err(WriteError::Contended) => continue,
            Err(e) => return Err(write_error(KIND, e, &old.doc)),
        }
    }
    Err(ScimError::unavailable("too many concurrent changes to this user; retry"))
}

/// The assignment writes of a one-user request, with its request row when it makes a job.
fn single_user(provision: &mut Provision, plan: &UserPlan, id: Option<&str>) -> (Vec<Write>, Option<JobMessage>) {
    let UserWrites { mut writes, message } = provision.user_writes(plan);
    writes.extend(provision.request_write(KIND, id, usize::from(message.is_some()), false));
    (writes, message)
}

/// A deleted user leaves every group.
async fn remove_memberships(ctx: Ctx<'_>, user_id: &str) -> ScimResult<()> {
    let groups = ctx.store.user_groups(ctx.integration_id, user_id).await?;
    let writes: Vec<Write> = groups
        .into_iter()
        .map(|group_id| Write::NotMember {
            iid: ctx.integration_id.to_string(),
            group_id,
            user_id: user_id.to_string(),
        })
        .collect();
    ctx.store.commit_in_chunks(&writes).await?;
    Ok(())
}
