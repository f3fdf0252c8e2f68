//! `/Groups`: create, read, replace, patch, delete. Members are rows: a PATCH that adds or
//! removes members writes those rows and bumps the group's version atomically, without
//! reading or rewriting the member list.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use serde_json::{Map, Value};

use super::{Ctx, Reply, WRITE_ATTEMPTS, check_key_lengths, etag, if_match_ok, now, render, write_error};
use crate::error::{ScimError, ScimResult};
use crate::scim::patch::{self, MemberDelta};
use crate::scim::resource::{Projection, check_required, member_displays, normalise, take_members};
use crate::scim::schema::GROUP_TYPE;
use crate::store::MAX_TRANSACTION_ITEMS;
use crate::store::resources::{Kind, Stored, WriteError};

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
    check_key_lengths(KIND, &doc)?;
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

pub(crate) async fn reply(ctx: Ctx<'_>, status: u16, r: &Stored, projection: &Projection) -> ScimResult<Reply> {
    let members = if projection.wants("members") {
        Some(ctx.store.group_members(ctx.integration_id, &r.id).await?)
    } else {
        None
    };
    let body = projection.apply(render::resource(ctx.base_url, KIND, r, members.as_deref()));
    Ok(Reply {
        status,
        body: Some(body),
        etag: Some(etag(r.version)),
        location: Some(render::location(ctx.base_url, KIND, &r.id)),
    })
}

/// Row actions that take a group from `current` (when known) to the delta's result. Member ids
/// that are not users of this integration are dropped: an IdP can only reference users it
/// provisioned here, and a row for a stranger would be garbage.
async fn member_actions(
    ctx: Ctx<'_>,
    group_id: &str,
    delta: &MemberDelta,
    current: Option<&[String]>,
    displays: &Displays,
) -> ScimResult<Vec<TransactWriteItem>> {
    let adds: Vec<String> = delta.set.iter().filter(|(_, m)| *m).map(|(id, _)| id.clone()).collect();
    let users = ctx.store.existing_users(ctx.integration_id, &adds).await?;
    if users.len() < adds.len() {
        tracing::warn!(
            unknown = adds.len() - users.len(),
            "group change names members that are not users here; ignored"
        );
    }
    let mut actions = Vec::new();
    for id in adds.iter().filter(|id| users.contains(*id)) {
        if current.is_some_and(|c| c.contains(id)) {
            continue;
        }
        actions.extend(ctx.store.member_puts(
            ctx.integration_id,
            group_id,
            id,
            displays.get(id).map(String::as_str),
        )?);
    }
    let mut removes: Vec<&String> = delta.set.iter().filter(|(_, m)| !*m).map(|(id, _)| id).collect();
    if delta.reset {
        removes.extend(current.unwrap_or_default().iter().filter(|id| !users.contains(*id)));
    }
    for id in removes {
        actions.extend(ctx.store.member_deletes(ctx.integration_id, group_id, id)?);
    }
    Ok(actions)
}

/// Splits actions so the first transaction (with the group write of `head` actions) stays ≤ 100.
fn split_first(mut actions: Vec<TransactWriteItem>, head: usize) -> (Vec<TransactWriteItem>, Vec<TransactWriteItem>) {
    let room = MAX_TRANSACTION_ITEMS.saturating_sub(head + 2) & !1; // keep member row pairs together
    let rest = if actions.len() > room { actions.split_off(room) } else { Vec::new() };
    (actions, rest)
}

pub async fn create(ctx: Ctx<'_>, body: Value, projection: &Projection) -> ScimResult<Reply> {
    let Prepared { doc, members, displays } = prepare(body)?;
    let delta = MemberDelta { reset: false, set: members.unwrap_or_default().into_iter().map(|m| (m, true)).collect() };
    // The group id is needed for member rows: create the group first, then add rows.
    let stored = ctx
        .store
        .create_resource(ctx.integration_id, KIND, doc.clone(), &now(), Vec::new())
        .await
        .map_err(|e| write_error(KIND, e, &doc))?;
    let actions = member_actions(ctx, &stored.id, &delta, Some(&[]), &displays).await?;
    ctx.store.transact_chunked(actions).await?;
    reply(ctx, 201, &stored, projection).await
}

pub async fn get(ctx: Ctx<'_>, id: &str, projection: &Projection) -> ScimResult<Reply> {
    let r = load(ctx, id).await?;
    reply(ctx, 200, &r, projection).await
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
    for _ in 0..WRITE_ATTEMPTS {
        let old = load(ctx, id).await?;
        if !if_match_ok(if_match, &old) {
            return Err(ScimError::precondition_failed("If-Match does not match the current version"));
        }
        let doc = change(&old)?.filter(|d| *d != old.doc);
        let current: Option<Vec<String>> = match delta.reset {
            true => Some(ctx.store.group_members(ctx.integration_id, id).await?.into_iter().map(|m| m.id).collect()),
            false => None,
        };
        let actions = member_actions(ctx, id, delta, current.as_deref(), displays).await?;
        if doc.is_none() && actions.is_empty() {
            return Ok(old);
        }
        let now = now();
        let (first, rest) = split_first(actions, 5);
        let result =
            match &doc {
                Some(d) => ctx.store.replace_resource(ctx.integration_id, KIND, &old, d.clone(), &now, first).await,
                None => {
                    // Members only: bump the version atomically; no read-modify-write of the group.
                    let expect = if_match.map(|_| old.version);
                    let mut items = vec![ctx.store.touch_action(ctx.integration_id, KIND, id, &now, expect)?];
                    items.extend(first);
                    ctx.store
                        .transact(items)
                        .await
                        .map_err(|e| {
                            if e.condition_failed_at(0) { WriteError::VersionMismatch } else { WriteError::Store(e) }
                        })
                        .map(|()| Stored { version: old.version + 1, last_modified: now.clone(), ..old.clone() })
                }
            };
        match result {
            Ok(new) => {
                ctx.store.transact_chunked(rest).await?;
                return Ok(new);
            }
            Err(WriteError::VersionMismatch) if if_match.is_none() => continue,
            Err(WriteError::VersionMismatch) if doc.is_none() => {
                // Gone or changed: tell which.
                load(ctx, id).await?;
                return Err(ScimError::precondition_failed("If-Match does not match the current version"));
            }
            Err(e) => return Err(write_error(KIND, e, doc.as_ref().unwrap_or(&old.doc))),
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
    for _ in 0..WRITE_ATTEMPTS {
        let old = load(ctx, id).await?;
        if !if_match_ok(if_match, &old) {
            return Err(ScimError::precondition_failed("If-Match does not match the current version"));
        }
        match ctx.store.delete_resource(ctx.integration_id, KIND, &old).await {
            Ok(()) => {
                let members = ctx.store.group_members(ctx.integration_id, id).await?;
                let mut actions = Vec::with_capacity(members.len() * 2);
                for m in &members {
                    actions.extend(ctx.store.member_deletes(ctx.integration_id, id, &m.id)?);
                }
                ctx.store.transact_chunked(actions).await?;
                return Ok(Reply::no_content());
            }
            Err(WriteError::VersionMismatch) if if_match.is_none() => continue,
            Err(e) => return Err(write_error(KIND, e, &old.doc)),
        }
    }
    Err(ScimError::unavailable("too many concurrent changes to this group; retry"))
}
