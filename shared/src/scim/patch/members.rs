//! Group membership in a PATCH: the member changes split from the document operations, and
//! folded into one delta.

use super::*;

// ---------------------------------------------------------------------------------------------

/// Group member changes, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    ReplaceAll(Vec<String>),
}

pub(super) fn is_members_name(uri: Option<&str>, attr: &str) -> bool {
    attr.eq_ignore_ascii_case("members") && uri.is_none_or(|u| u.eq_ignore_ascii_case(GROUP_SCHEMA))
}

/// The key of a path-less value that names `members` (`members`, `urn:...:core:2.0:Group:members`).
pub(super) fn members_key(obj: &Map<String, Value>) -> Option<String> {
    obj.keys()
        .find(|k| {
            let (uri, attr) = filter::split_urn(k);
            is_members_name(uri, attr)
        })
        .cloned()
}

/// Member ids selected by `value eq "id"`, possibly several joined by `or`.
pub(super) fn filter_ids(f: &Filter, out: &mut Vec<String>) -> ScimResult<()> {
    match f {
        Filter::Or(a, b) => {
            filter_ids(a, out)?;
            filter_ids(b, out)
        }
        Filter::Compare { path, op: filter::CompareOp::Eq, value: Value::String(id) }
            if path.attr.eq_ignore_ascii_case("value") && path.sub.is_none() && path.uri.is_none() =>
        {
            if !out.contains(id) {
                out.push(id.clone());
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_filter(
            "a members filter may only select members by 'value eq \"id\"', joined by 'or'",
        )),
    }
}

pub(super) fn member_change(op: Op, path: &PatchPath, value: Option<Value>) -> ScimResult<MemberChange> {
    if path.path.sub.is_some() || path.sub.is_some() {
        return Err(ScimError::invalid_path("sub-attributes of 'members' cannot be patched"));
    }
    if let Some(f) = &path.filter {
        if op != Op::Remove {
            return Err(ScimError::invalid_path("a filtered 'members' path is only valid with remove"));
        }
        let mut ids = Vec::new();
        filter_ids(f, &mut ids)?;
        return Ok(MemberChange::Remove(ids));
    }
    let ids = |v: Option<Value>| resource::member_ids(v.unwrap_or(Value::Null));
    Ok(match op {
        Op::Add => MemberChange::Add(ids(value)?),
        Op::Replace => MemberChange::ReplaceAll(ids(value)?),
        // Entra: `remove` + `path: members` + a value list removes only the listed members.
        Op::Remove if value.is_some() => MemberChange::Remove(ids(value)?),
        Op::Remove => MemberChange::RemoveAll,
    })
}

/// Splits group ops into (ops on the group document, member changes). Member ops are: path `members` (any case) with add/replace/remove;
/// `members[value eq "id"]` remove (also `or` of several `value eq`; anything else in the filter -> 400 invalidFilter);
/// remove with path `members` and a value list (Entra: remove ONLY those listed) vs. without value (remove all);
/// replace path `members` -> ReplaceAll; path-less add/replace whose value object has a `members` key -> Add / ReplaceAll
/// for that key, the rest of the object stays a document op. Member values may carry `"$ref": null`, `display`, or be bare strings.
pub fn split_group_ops(ops: Vec<Operation>) -> ScimResult<(Vec<Operation>, Vec<MemberChange>)> {
    let mut doc_ops = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    for op in ops {
        match &op.path {
            Some(p) if is_members_name(p.path.uri.as_deref(), &p.path.attr) => {
                changes.push(member_change(op.op, p, op.value)?);
            }
            None => {
                let Some(Value::Object(mut obj)) = op.value else {
                    doc_ops.push(op);
                    continue;
                };
                if let Some(key) = members_key(&obj) {
                    let members = obj.shift_remove(&key).unwrap_or(Value::Null);
                    let ids = resource::member_ids(members)?;
                    changes.push(match op.op {
                        Op::Add => MemberChange::Add(ids),
                        Op::Replace => MemberChange::ReplaceAll(ids),
                        Op::Remove => MemberChange::Remove(ids),
                    });
                    if obj.is_empty() {
                        continue;
                    }
                }
                doc_ops.push(Operation { op: op.op, path: None, value: Some(Value::Object(obj)) });
            }
            Some(_) => doc_ops.push(op),
        }
    }
    Ok((doc_ops, changes))
}

/// Net effect of member changes: `reset` = start from empty membership (a RemoveAll/ReplaceAll occurred),
/// then `set[id] = true` means member after the PATCH, false means not a member (later changes win).
/// `set` keeps first-insertion order, one entry per id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberDelta {
    pub reset: bool,
    pub set: Vec<(String, bool)>,
}

impl MemberDelta {
    fn put(&mut self, id: &str, member: bool) {
        match self.set.iter_mut().find(|(k, _)| k == id) {
            Some(entry) => entry.1 = member,
            None => self.set.push((id.to_string(), member)),
        }
    }
}

/// Folds member changes, in order, into their net effect.
pub fn fold_member_changes(changes: &[MemberChange]) -> MemberDelta {
    let mut delta = MemberDelta::default();
    for change in changes {
        match change {
            MemberChange::Add(ids) => ids.iter().for_each(|id| delta.put(id, true)),
            MemberChange::Remove(ids) => ids.iter().for_each(|id| delta.put(id, false)),
            MemberChange::RemoveAll => {
                delta.reset = true;
                delta.set.clear();
            }
            MemberChange::ReplaceAll(ids) => {
                delta.reset = true;
                delta.set.clear();
                ids.iter().for_each(|id| delta.put(id, true));
            }
        }
    }
    delta
}
