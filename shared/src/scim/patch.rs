//! SCIM PATCH (RFC 7644 §3.5.2): request parsing, group-membership extraction and
//! application of `add` / `replace` / `remove` operations to a stored document.
//!
//! The stored document is a `Map` with canonical core attribute names at the top level and
//! extension attributes inside an object keyed by the extension URN; `id`, `meta`, `schemas`
//! and group members are not part of it. [`apply`] edits the map in place; the caller applies
//! a PATCH to a clone and keeps it only if every operation succeeded (atomic PATCH), then runs
//! `resource::normalise` over the result.
//!
//! Besides the RFC, the engine tolerates what Okta and Microsoft Entra ID actually send
//! (see `docs/idp-quirks.md`): capitalised `op` values, path-less operations whose value
//! keys are themselves paths (`name.givenName`, URN-qualified names), read-only `id` inside a
//! path-less value, `add` on single-valued attributes, a manager given as an array or as a bare
//! id, role lists encoded as JSON strings, custom extension URNs, and member removal by a
//! `value` list instead of a filter.
//!
//! Semantic choices beyond the RFC:
//! * Keys of a path-less value that are unknown or read-only are ignored (as PUT ignores
//!   them); an explicit `path` naming an unknown attribute is `invalidPath` and one naming a
//!   read-only attribute is `mutability`. `password` and `schemas` are accepted and discarded.
//! * `"value": null` (RFC 7643 §2.5: null means unassigned): `add` is a no-op, `replace` removes
//!   the target, `remove` behaves as if no value was given.
//! * A complex single-valued attribute is merged per sub-attribute by both `add` and `replace`
//!   (RFC 7644 §3.5.2.3), except that a new value carrying `value` (a reference such as the
//!   enterprise `manager`) replaces the whole attribute, so no stale `$ref` survives.
//! * A value-path (`emails[type eq "work"].value`) that matches nothing appends a new element
//!   built from the filter's `eq` comparisons when the filter is one `eq` or an `and` of `eq`s,
//!   for `add` and, leniently, for `replace` (Entra sends either when the slot is empty);
//!   any other filter that matches nothing is `noTarget` for add/replace and a no-op for remove.
//! * `replace` of a value-path without a sub-attribute replaces the first matching element
//!   (filling in the filter's `eq` pairs the new value leaves out) and drops the other matches.
//! * `remove` with a value on a multi-valued attribute removes the listed values (by `value`
//!   sub-attribute when both sides have one, else by equality); on a single-valued attribute it
//!   removes the attribute only when the current value matches.
//! * Setting `primary: true` on an element sets `primary: false` on the others (RFC 7644 §3.5.2).

use serde_json::{Map, Value};

use super::filter::{self, AttrKind, AttrSchema, Filter, PatchPath};
use super::resource;
use super::schema::{Attr, GROUP_SCHEMA, Mutability, ResourceType, Type};
use crate::error::{ScimError, ScimResult};

/// Most operations accepted in one PATCH request.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// One PATCH operation. `path` is `None` for a path-less operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub op: Op,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn is_urn(key: &str) -> bool {
    super::text::has_urn_prefix(key)
}

/// Parses a PATCH body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[...]}`.
/// `op` any case (`Add`, `Replace`, `remove`); key names `Operations`/`op`/`path`/`value` matched case-insensitively;
/// key order irrelevant; missing `schemas` tolerated; missing/empty Operations -> 400 invalidSyntax;
/// unknown op -> 400 invalidSyntax; bad path -> 400 invalidPath; `remove` without path and without value -> 400 noTarget;
/// add/replace without value -> 400 invalidSyntax. At most [`MAX_OPERATIONS`] operations.
pub fn parse_request(body: Value) -> ScimResult<Vec<Operation>> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax("the PATCH body must be a JSON object"));
    };
    let list = match field(&obj, "Operations") {
        Some(Value::Array(list)) => list.clone(),
        // A single operation object instead of a list: unambiguous, accept it.
        Some(one @ Value::Object(_)) => vec![one.clone()],
        None | Some(Value::Null) => {
            return Err(ScimError::invalid_syntax("the PATCH body has no 'Operations'"));
        }
        Some(_) => return Err(ScimError::invalid_syntax("'Operations' must be a list")),
    };
    if list.is_empty() {
        return Err(ScimError::invalid_syntax("'Operations' is empty"));
    }
    if list.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "too many operations: {} (at most {MAX_OPERATIONS} per request)",
            list.len()
        )));
    }
    list.into_iter().enumerate().map(|(i, v)| parse_operation(i, v)).collect()
}

fn parse_operation(i: usize, v: Value) -> ScimResult<Operation> {
    let Value::Object(obj) = v else {
        return Err(ScimError::invalid_syntax(format!("Operations[{i}] must be an object")));
    };
    let op = match field(&obj, "op") {
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "replace" => Op::Replace,
            "remove" => Op::Remove,
            _ => {
                return Err(ScimError::invalid_syntax(format!("Operations[{i}]: unknown op '{s}'")));
            }
        },
        Some(_) => {
            return Err(ScimError::invalid_syntax(format!("Operations[{i}]: 'op' must be a string")));
        }
        None => {
            return Err(ScimError::invalid_syntax(format!("Operations[{i}] has no 'op'")));
        }
    };
    let path = match field(&obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            filter::parse_patch_path(s.trim())
                .map_err(|e| ScimError { detail: format!("Operations[{i}]: {}", e.detail), ..e })?,
        ),
        Some(_) => {
            return Err(ScimError::invalid_path(format!("Operations[{i}]: 'path' must be a string")));
        }
    };
    let mut value = field(&obj, "value").cloned();
    match op {
        Op::Remove => {
            if matches!(value, Some(Value::Null)) {
                value = None;
            }
            if path.is_none() && value.is_none() {
                return Err(ScimError::no_target(format!("Operations[{i}]: remove needs a 'path'")));
            }
        }
        Op::Add | Op::Replace => {
            let Some(v) = &value else {
                return Err(ScimError::invalid_syntax(format!("Operations[{i}]: {op:?} needs a 'value'")));
            };
            if path.is_none() && !v.is_object() {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}]: a {op:?} without 'path' needs an object 'value'"
                )));
            }
        }
    }
    Ok(Operation { op, path, value })
}

// ---------------------------------------------------------------------------------------------
// Group membership
// ---------------------------------------------------------------------------------------------

/// Group member changes, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    ReplaceAll(Vec<String>),
}

fn is_members_name(uri: Option<&str>, attr: &str) -> bool {
    attr.eq_ignore_ascii_case("members") && uri.is_none_or(|u| u.eq_ignore_ascii_case(GROUP_SCHEMA))
}

/// The key of a path-less value that names `members` (`members`, `urn:...:core:2.0:Group:members`).
fn members_key(obj: &Map<String, Value>) -> Option<String> {
    obj.keys()
        .find(|k| {
            let (uri, attr) = filter::split_urn(k);
            is_members_name(uri, attr)
        })
        .cloned()
}

/// Member ids selected by `value eq "id"`, possibly several joined by `or`.
fn filter_ids(f: &Filter, out: &mut Vec<String>) -> ScimResult<()> {
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

fn member_change(op: Op, path: &PatchPath, value: Option<Value>) -> ScimResult<MemberChange> {
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

// ---------------------------------------------------------------------------------------------
// Applying operations
// ---------------------------------------------------------------------------------------------

/// Applies document ops in order. On any error the caller discards the result (atomic PATCH):
/// apply works on the map in place, caller passes a clone.
pub fn apply(doc: &mut Map<String, Value>, rt: &ResourceType, ops: &[Operation]) -> ScimResult<()> {
    for op in ops {
        match (&op.path, op.op) {
            (None, Op::Remove) => return Err(ScimError::no_target("remove needs a 'path'")),
            (None, _) => match &op.value {
                Some(Value::Object(obj)) => apply_pathless(doc, rt, op.op, obj)?,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "a {:?} without 'path' needs an object 'value'",
                        op.op
                    )));
                }
            },
            (Some(path), _) => {
                if op.op != Op::Remove && op.value.is_none() {
                    return Err(ScimError::invalid_syntax(format!("{:?} needs a 'value'", op.op)));
                }
                apply_path(doc, rt, op.op, path, op.value.as_ref(), false)?;
            }
        }
    }
    Ok(())
}

/// A path-less add/replace: every key of the value is itself a path.
fn apply_pathless(doc: &mut Map<String, Value>, rt: &ResourceType, op: Op, obj: &Map<String, Value>) -> ScimResult<()> {
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if is_urn(key) {
            if rt.is_core_urn(key) {
                // Core attributes nested under the core URN.
                if let Value::Object(inner) = v {
                    apply_pathless(doc, rt, op, inner)?;
                }
                continue;
            }
            if let Some(schema) = rt.extension(key) {
                apply_extension_value(doc, rt, op, schema.id, v)?;
                continue;
            }
            // An extension we have no schema for, given as a whole object (as `normalise` reads it).
            if v.is_object() && !is_core_family(key) {
                let (uri, _) = filter::split_urn(key);
                if uri.is_some_and(|u| rt.extension(u).is_none() && !rt.is_core_urn(u) && !is_core_family(u)) {
                    apply_extension_value(doc, rt, op, key, v)?;
                    continue;
                }
            }
        }
        // Keys that do not even parse as paths are unknown attributes: ignored, as PUT ignores them.
        let Ok(path) = filter::parse_patch_path(key) else {
            continue;
        };
        apply_path(doc, rt, op, &path, Some(v), true)?;
    }
    Ok(())
}

/// `add`/`replace` of a whole extension object: each key is an attribute of that extension.
fn apply_extension_value(
    doc: &mut Map<String, Value>,
    rt: &ResourceType,
    op: Op,
    urn: &str,
    v: &Value,
) -> ScimResult<()> {
    match v {
        Value::Object(obj) => {
            for (key, v) in obj {
                let Ok(mut path) = filter::parse_patch_path(key) else {
                    continue;
                };
                if path.path.uri.is_none() {
                    path.path.uri = Some(urn.to_string());
                }
                apply_path(doc, rt, op, &path, Some(v), true)?;
            }
            Ok(())
        }
        Value::Null => {
            if op == Op::Replace {
                remove_key(doc, urn);
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!("the extension '{urn}' must be given as an object"))),
    }
}

/// URNs of SCIM core schemas (ours or another resource type's).
fn is_core_family(urn: &str) -> bool {
    const CORE: &str = "urn:ietf:params:scim:schemas:core:";
    urn.get(..CORE.len()).is_some_and(|p| p.eq_ignore_ascii_case(CORE))
}

/// Where a path points.
enum Resolved {
    /// Accepted and discarded (`password`, `schemas`).
    Ignore,
    ReadOnly(String),
    Unknown(String),
    /// The core schema URN itself: its value is a path-less object.
    Core,
    /// An extension object as a whole (path = the extension URN).
    Extension(String),
    Attr(Target),
}

/// An attribute slot in the document.
struct Target {
    /// `None`: top level; `Some(urn)`: inside the extension object keyed by `urn`.
    ext: Option<String>,
    /// Canonical name (as given for extensions we have no schema for).
    name: String,
    def: Option<&'static Attr>,
    /// `attr.sub` (no filter) or `attr[filter].sub`.
    sub: Option<(String, Option<&'static Attr>)>,
}

fn find_attr(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn resolve(rt: &ResourceType, pp: &PatchPath) -> ScimResult<Resolved> {
    let ap = &pp.path;
    if ap.sub.is_some() && (pp.filter.is_some() || pp.sub.is_some()) {
        return Err(ScimError::invalid_path("a path has either 'attr.sub' or 'attr[filter].sub', not both"));
    }
    let whole = pp.filter.is_none() && pp.sub.is_none() && ap.sub.is_none();
    let name = ap.attr.as_str();
    let (ext, def) = match ap.uri.as_deref() {
        Some(u) if !rt.is_core_urn(u) => {
            if let Some(schema) = rt.extension(u) {
                match find_attr(schema.attrs, name) {
                    Some(a) => (Some(schema.id.to_string()), Some(a)),
                    None => return Ok(Resolved::Unknown(format!("{u}:{name}"))),
                }
            } else {
                let full = format!("{u}:{name}");
                if let Some(schema) = rt.extension(&full) {
                    return whole_or_invalid(whole, &full, Resolved::Extension(schema.id.to_string()));
                }
                if rt.is_core_urn(&full) {
                    return whole_or_invalid(whole, &full, Resolved::Core);
                }
                if is_core_family(u) || !is_urn(u) {
                    return Ok(Resolved::Unknown(full));
                }
                if whole && name.eq_ignore_ascii_case(rt.name) {
                    // `urn:...:CustomExtensionName:2.0:User` names an extension object.
                    return Ok(Resolved::Extension(full));
                }
                (Some(u.to_string()), None)
            }
        }
        _ => {
            if name.eq_ignore_ascii_case("schemas") {
                return Ok(Resolved::Ignore);
            }
            if let Some(a) = rt.attr(None, name) {
                (None, Some(a))
            } else if let Some((schema, a)) =
                rt.extensions.iter().find_map(|s| find_attr(s.attrs, name).map(|a| (s, a)))
            {
                // Entra sends `path: "manager"`; some tenants `urn:...:core:2.0:User:role`.
                (Some(schema.id.to_string()), Some(a))
            } else {
                return Ok(Resolved::Unknown(name.to_string()));
            }
        }
    };
    if let Some(d) = def {
        match d.mutability {
            Mutability::ReadOnly => return Ok(Resolved::ReadOnly(d.name.to_string())),
            Mutability::WriteOnly => return Ok(Resolved::Ignore),
            _ => {}
        }
        if pp.filter.is_some() && !d.multi {
            return Err(ScimError::invalid_path(format!("'{}' is single-valued and cannot take a filter", d.name)));
        }
    }
    let sub = match (ap.sub.as_deref().or(pp.sub.as_deref()), def) {
        (None, _) => None,
        (Some(s), None) => Some((s.to_string(), None)),
        (Some(s), Some(d)) if d.ty != Type::Complex => {
            return Err(ScimError::invalid_path(format!("'{}' has no sub-attribute '{s}'", d.name)));
        }
        (Some(s), Some(d)) => match d.sub_attr(s) {
            Some(sa) if sa.mutability == Mutability::ReadOnly => {
                return Ok(Resolved::ReadOnly(format!("{}.{}", d.name, sa.name)));
            }
            Some(sa) => Some((sa.name.to_string(), Some(sa))),
            None => return Ok(Resolved::Unknown(format!("{}.{s}", d.name))),
        },
    };
    let name = def.map_or(name, |d| d.name).to_string();
    Ok(Resolved::Attr(Target { ext, name, def, sub }))
}

fn whole_or_invalid(whole: bool, full: &str, r: Resolved) -> ScimResult<Resolved> {
    if whole { Ok(r) } else { Err(ScimError::invalid_path(format!("'{full}' is a schema, not an attribute"))) }
}

/// Applies one op at a path. `lenient` (keys of a path-less value) ignores unknown and
/// read-only attributes instead of failing.
fn apply_path(
    doc: &mut Map<String, Value>,
    rt: &ResourceType,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
    lenient: bool,
) -> ScimResult<()> {
    match resolve(rt, path)? {
        Resolved::Ignore => Ok(()),
        Resolved::ReadOnly(_) | Resolved::Unknown(_) if lenient => Ok(()),
        Resolved::ReadOnly(name) => Err(ScimError::mutability(format!("attribute '{name}' is readOnly"))),
        Resolved::Unknown(name) => Err(ScimError::invalid_path(format!("unknown attribute '{name}'"))),
        Resolved::Core => match (op, value) {
            (Op::Add | Op::Replace, Some(Value::Object(obj))) => apply_pathless(doc, rt, op, obj),
            (Op::Remove, _) => Err(ScimError::invalid_path("the resource itself cannot be removed")),
            _ => Err(ScimError::invalid_value("the core schema must be given as an object")),
        },
        Resolved::Extension(urn) => match op {
            Op::Remove => {
                remove_key(doc, &urn);
                Ok(())
            }
            _ => apply_extension_value(doc, rt, op, &urn, value.unwrap_or(&Value::Null)),
        },
        Resolved::Attr(t) => {
            let r = {
                let Some(m) = container(doc, t.ext.as_deref(), op != Op::Remove) else {
                    return Ok(());
                };
                match (&path.filter, &t.sub) {
                    (None, None) => whole_attr(m, op, &t, value),
                    (None, Some(sub)) => every_sub(m, op, &t, sub, value),
                    (Some(f), sub) => filtered(m, op, &t, f, sub.as_ref(), value),
                }
            };
            if let Some(urn) = &t.ext
                && doc.get(urn).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
            {
                doc.shift_remove(urn);
            }
            r
        }
    }
}

// ---- map helpers (attribute names are matched case-insensitively, written canonically) ----

fn key_of(m: &Map<String, Value>, name: &str) -> Option<String> {
    if m.contains_key(name) {
        return Some(name.to_string());
    }
    m.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Renames a case variant of `name` to `name`; whether the key exists.
fn canon(m: &mut Map<String, Value>, name: &str) -> bool {
    match key_of(m, name) {
        Some(k) if k == name => true,
        Some(k) => {
            let v = m.shift_remove(&k).unwrap_or(Value::Null);
            m.insert(name.to_string(), v);
            true
        }
        None => false,
    }
}

fn remove_key(m: &mut Map<String, Value>, name: &str) {
    if let Some(k) = key_of(m, name) {
        m.shift_remove(&k);
    }
}

fn get<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    field(m, name)
}

fn set(m: &mut Map<String, Value>, name: &str, v: Value) {
    canon(m, name);
    m.insert(name.to_string(), v);
}

/// The map an attribute lives in: the document or an extension object (created on demand).
fn container<'a>(
    doc: &'a mut Map<String, Value>,
    ext: Option<&str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let Some(urn) = ext else { return Some(doc) };
    if !canon(doc, urn) {
        if !create {
            return None;
        }
        doc.insert(urn.to_string(), Value::Object(Map::new()));
    }
    let slot = doc.get_mut(urn)?;
    if !slot.is_object() {
        if !create {
            return None;
        }
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn ensure_array<'a>(m: &'a mut Map<String, Value>, name: &str) -> &'a mut Vec<Value> {
    canon(m, name);
    let slot = m.entry(name.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        let old = slot.take();
        *slot = Value::Array(if old.is_null() { Vec::new() } else { vec![old] });
    }
    slot.as_array_mut().expect("slot was just made an array")
}

fn ensure_object<'a>(m: &'a mut Map<String, Value>, name: &str) -> &'a mut Map<String, Value> {
    canon(m, name);
    let slot = m.entry(name.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("slot was just made an object")
}

/// Drops an empty array or object under `name`.
fn drop_if_empty(m: &mut Map<String, Value>, name: &str) {
    let empty = match get(m, name) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        remove_key(m, name);
    }
}

// ---- values ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Multi,
    Complex,
    Simple,
    /// An attribute of an extension we have no schema for.
    Unknown,
}

fn shape(def: Option<&Attr>) -> Shape {
    match def {
        None => Shape::Unknown,
        Some(d) if d.multi => Shape::Multi,
        Some(d) if d.ty == Type::Complex => Shape::Complex,
        Some(_) => Shape::Simple,
    }
}

/// A string holding a JSON array/object (Entra roles) is parsed; anything else is kept.
fn parse_json_string(v: Value) -> Value {
    match &v {
        Value::String(s) if s.trim_start().starts_with(['[', '{']) => serde_json::from_str(s).unwrap_or(v),
        _ => v,
    }
}

/// Entra's role element `{"value": "{\"id\":..,\"value\":\"Admin\",\"displayName\":\"Admin\"}"}`:
/// the inner document supplies `value` and any sub-attribute the element lacks.
fn unwrap_inner_json(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(unwrap_inner_json).collect()),
        Value::Object(mut o) => {
            let Some(k) = key_of(&o, "value") else {
                return Value::Object(o);
            };
            let inner = match o.get(&k) {
                Some(Value::String(s)) if s.trim_start().starts_with('{') => {
                    serde_json::from_str::<Map<String, Value>>(s).ok()
                }
                _ => None,
            };
            if let Some(inner) = inner {
                o.shift_remove(&k);
                for (ik, iv) in inner {
                    if ik.eq_ignore_ascii_case("value") {
                        o.insert("value".to_string(), iv);
                    } else if key_of(&o, &ik).is_none() {
                        o.insert(ik, iv);
                    }
                }
            }
            Value::Object(o)
        }
        other => other,
    }
}

/// The elements a value gives a multi-valued attribute (a single value counts as a list of one),
/// coerced to the stored form so that equality with stored elements is meaningful.
fn prep_items(def: Option<&'static Attr>, v: &Value) -> ScimResult<Vec<Value>> {
    let Some(def) = def else {
        return Ok(match v {
            Value::Array(items) => items.iter().filter(|i| !i.is_null()).cloned().collect(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        });
    };
    let mut v = v.clone();
    if def.ty == Type::Complex {
        v = parse_json_string(v);
        if def.name == "roles" {
            v = unwrap_inner_json(v);
        }
    }
    Ok(match resource::coerce(def, v, false)? {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    })
}

/// The value of a single-valued attribute, coerced; `None` for null/empty.
fn prep_single(def: Option<&'static Attr>, v: &Value) -> ScimResult<Option<Value>> {
    let Some(def) = def else {
        return Ok(if v.is_null() { None } else { Some(v.clone()) });
    };
    let mut v = v.clone();
    if def.ty == Type::Complex {
        v = parse_json_string(v);
        // Entra's `manager` as `[{"$ref": ..., "value": "id"}]`: take the first element.
        if let Value::Array(items) = v {
            v = items.into_iter().next().unwrap_or(Value::Null);
        }
        // A bare id (Entra's `...:User:manager` = "id") is the `value`, even if it looks like JSON.
        if let Value::String(s) = &v
            && def.sub_attr("value").is_some()
        {
            let mut o = Map::new();
            o.insert("value".to_string(), Value::String(s.clone()));
            v = Value::Object(o);
        }
    }
    resource::coerce(def, v, false)
}

fn prep_sub(sub_def: Option<&'static Attr>, v: &Value) -> ScimResult<Option<Value>> {
    prep_single(sub_def, v)
}

/// Equality of JSON values as SCIM sees them: object keys case-insensitive, null members
/// ignored, `"True"` equal to `true`.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let xs = x.iter().filter(|(_, v)| !v.is_null()).count();
            let ys = y.iter().filter(|(_, v)| !v.is_null()).count();
            xs == ys && x.iter().filter(|(_, v)| !v.is_null()).all(|(k, v)| get(y, k).is_some_and(|w| loose_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| loose_eq(v, w)),
        (Value::Bool(x), Value::String(s)) | (Value::String(s), Value::Bool(x)) => {
            s.eq_ignore_ascii_case(if *x { "true" } else { "false" })
        }
        _ => a == b,
    }
}

/// Whether a stored element is the one a `remove` value names: by `value` when both have one.
fn names_element(item: &Value, element: &Value, def: Option<&Attr>) -> bool {
    let (Value::Object(i), Value::Object(e)) = (item, element) else {
        return loose_eq(item, element);
    };
    match (get(i, "value").filter(|v| !v.is_null()), get(e, "value")) {
        (Some(iv), Some(ev)) => match (iv, ev) {
            (Value::String(a), Value::String(b)) => {
                let exact = def.and_then(|d| d.sub_attr("value")).is_some_and(|s| s.case_exact);
                if exact { a == b } else { a.eq_ignore_ascii_case(b) }
            }
            _ => loose_eq(iv, ev),
        },
        _ => loose_eq(item, element),
    }
}

fn is_primary(v: &Value) -> bool {
    match v.as_object().and_then(|o| get(o, "primary")) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// RFC 7644 §3.5.2: a value set to `primary: true` makes every other value `primary: false`.
fn fix_primary(items: &mut [Value], touched: &[usize]) {
    let Some(&keep) = touched.iter().rev().find(|&&i| items.get(i).is_some_and(is_primary)) else {
        return;
    };
    for (i, e) in items.iter_mut().enumerate() {
        if i != keep
            && is_primary(e)
            && let Some(o) = e.as_object_mut()
        {
            set(o, "primary", Value::Bool(false));
        }
    }
}

/// Merges a complex value into an existing object sub-attribute by sub-attribute, except that
/// a value carrying `value` (a reference such as `manager`) replaces the whole attribute.
fn merge_complex(m: &mut Map<String, Value>, name: &str, def: Option<&Attr>, new: Map<String, Value>) {
    let is_ref = def.is_some_and(|d| d.sub_attr("value").is_some()) && get(&new, "value").is_some();
    if is_ref || !get(m, name).is_some_and(Value::is_object) {
        set(m, name, Value::Object(new));
        return;
    }
    let obj = ensure_object(m, name);
    for (k, v) in new {
        set(obj, &k, v);
    }
}

// ---- the three target shapes ----

/// `attr` (no sub-attribute, no filter).
fn whole_attr(m: &mut Map<String, Value>, op: Op, t: &Target, value: Option<&Value>) -> ScimResult<()> {
    let name = t.name.as_str();
    let value = match (op, value) {
        (Op::Remove, None) => {
            remove_key(m, name);
            return Ok(());
        }
        (Op::Remove, Some(v)) => return remove_values(m, t, v),
        (_, Some(v)) => v,
        (_, None) => return Err(ScimError::invalid_syntax(format!("{op:?} needs a 'value'"))),
    };
    match shape(t.def) {
        Shape::Multi => {
            let items = prep_items(t.def, value)?;
            if op == Op::Replace {
                if items.is_empty() {
                    remove_key(m, name);
                    return Ok(());
                }
                let touched: Vec<usize> = (0..items.len()).collect();
                let arr = ensure_array(m, name);
                *arr = items;
                fix_primary(arr, &touched);
                return Ok(());
            }
            if items.is_empty() {
                return Ok(());
            }
            let arr = ensure_array(m, name);
            let mut touched = Vec::new();
            for item in items {
                if !arr.iter().any(|e| loose_eq(e, &item)) {
                    arr.push(item);
                    touched.push(arr.len() - 1);
                }
            }
            fix_primary(arr, &touched);
        }
        Shape::Complex => match prep_single(t.def, value)? {
            None if op == Op::Replace => remove_key(m, name),
            None => {}
            Some(Value::Object(new)) => merge_complex(m, name, t.def, new),
            Some(other) => set(m, name, other),
        },
        Shape::Simple | Shape::Unknown => match prep_single(t.def, value)? {
            None if op == Op::Replace => remove_key(m, name),
            None => {}
            // Extension attributes we have no schema for: `add` of a list to a list appends.
            Some(Value::Array(items)) if op == Op::Add && get(m, name).is_some_and(Value::is_array) => {
                let arr = ensure_array(m, name);
                for item in items {
                    if !arr.iter().any(|e| loose_eq(e, &item)) {
                        arr.push(item);
                    }
                }
            }
            Some(v) => set(m, name, v),
        },
    }
    Ok(())
}

/// `remove` with a value: only the listed values go.
fn remove_values(m: &mut Map<String, Value>, t: &Target, value: &Value) -> ScimResult<()> {
    let name = t.name.as_str();
    let Some(key) = key_of(m, name) else {
        return Ok(());
    };
    let multi = shape(t.def) == Shape::Multi || (t.def.is_none() && m.get(&key).is_some_and(Value::is_array));
    if multi {
        let items = prep_items(t.def, value)?;
        if let Some(Value::Array(arr)) = m.get_mut(&key) {
            arr.retain(|e| !items.iter().any(|i| names_element(i, e, t.def)));
        }
        drop_if_empty(m, &key);
        return Ok(());
    }
    let Some(item) = prep_single(t.def, value)? else {
        return Ok(());
    };
    if m.get(&key).is_some_and(|current| names_element(&item, current, t.def)) {
        m.shift_remove(&key);
    }
    Ok(())
}

/// `attr.sub` without a filter: the sub-attribute of a complex attribute, or of every element
/// of a multi-valued one.
fn every_sub(
    m: &mut Map<String, Value>,
    op: Op,
    t: &Target,
    (sub, sub_def): &(String, Option<&'static Attr>),
    value: Option<&Value>,
) -> ScimResult<()> {
    let name = t.name.as_str();
    let new = match (op, value) {
        (Op::Remove, _) => None,
        (_, Some(v)) => prep_sub(*sub_def, v)?,
        (_, None) => return Err(ScimError::invalid_syntax(format!("{op:?} needs a 'value'"))),
    };
    if op == Op::Add && new.is_none() {
        return Ok(());
    }
    if shape(t.def) == Shape::Multi {
        match new {
            None => {
                if let Some(Value::Array(arr)) = get_mut(m, name) {
                    for e in arr.iter_mut() {
                        if let Some(o) = e.as_object_mut() {
                            remove_key(o, sub);
                        }
                    }
                    arr.retain(|e| !e.as_object().is_some_and(Map::is_empty));
                }
                drop_if_empty(m, name);
            }
            Some(v) => {
                let arr = ensure_array(m, name);
                if arr.is_empty() {
                    let mut o = Map::new();
                    o.insert(sub.clone(), v);
                    arr.push(Value::Object(o));
                } else {
                    for e in arr.iter_mut() {
                        if let Some(o) = e.as_object_mut() {
                            set(o, sub, v.clone());
                        }
                    }
                }
            }
        }
        return Ok(());
    }
    match new {
        None => {
            if let Some(Value::Object(o)) = get_mut(m, name) {
                remove_key(o, sub);
            }
            drop_if_empty(m, name);
        }
        Some(v) => set(ensure_object(m, name), sub, v),
    }
    Ok(())
}

fn get_mut<'a>(m: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    let key = key_of(m, name)?;
    m.get_mut(&key)
}

/// The `eq` pairs of a filter that is one `eq` or an `and` of `eq`s on sub-attributes,
/// with canonical sub-attribute names; `None` for any other filter.
fn eq_pairs(f: &Filter, def: Option<&'static Attr>) -> Option<Vec<(String, Value)>> {
    fn walk(f: &Filter, def: Option<&'static Attr>, out: &mut Vec<(String, Value)>) -> bool {
        match f {
            Filter::And(a, b) => walk(a, def, out) && walk(b, def, out),
            Filter::Compare { path, op: filter::CompareOp::Eq, value } if path.uri.is_none() && path.sub.is_none() => {
                let (name, sub_def) = match def {
                    Some(d) => match d.sub_attr(&path.attr) {
                        Some(sa) => (sa.name.to_string(), Some(sa)),
                        None => return false,
                    },
                    None => (path.attr.clone(), None),
                };
                let v = prep_sub(sub_def, value).ok().flatten().unwrap_or_else(|| value.clone());
                out.push((name, v));
                true
            }
            _ => false,
        }
    }
    let mut out = Vec::new();
    walk(f, def, &mut out).then_some(out)
}

/// `attr[filter]` and `attr[filter].sub`.
fn filtered(
    m: &mut Map<String, Value>,
    op: Op,
    t: &Target,
    f: &Filter,
    sub: Option<&(String, Option<&'static Attr>)>,
    value: Option<&Value>,
) -> ScimResult<()> {
    let name = t.name.as_str();
    if !matches!(shape(t.def), Shape::Multi | Shape::Unknown) {
        return Err(ScimError::invalid_path(format!("'{name}' is not multi-valued and cannot take a filter")));
    }
    let schema = ElementSchema { parent: t.def };
    let hits: Vec<usize> = match get(m, name) {
        Some(Value::Array(arr)) => {
            arr.iter().enumerate().filter(|(_, e)| element_matches(f, e, &schema)).map(|(i, _)| i).collect()
        }
        _ => Vec::new(),
    };
    if op == Op::Remove {
        if hits.is_empty() {
            return Ok(()); // removing what is not there succeeds (Okta removes non-members)
        }
        if let Some(Value::Array(arr)) = get_mut(m, name) {
            match sub {
                None => remove_indices(arr, &hits),
                Some((s, _)) => {
                    for &i in &hits {
                        if let Some(o) = arr[i].as_object_mut() {
                            remove_key(o, s);
                        }
                    }
                    arr.retain(|e| !e.as_object().is_some_and(Map::is_empty));
                }
            }
        }
        drop_if_empty(m, name);
        return Ok(());
    }
    let Some(value) = value else {
        return Err(ScimError::invalid_syntax(format!("{op:?} needs a 'value'")));
    };
    let no_target = || ScimError::no_target(format!("no value of '{name}' matches the filter"));
    match sub {
        Some((s, sub_def)) => {
            let Some(v) = prep_sub(*sub_def, value)? else {
                if op == Op::Replace {
                    // Replacing with null unassigns the sub-attribute of the matching values.
                    return filtered(m, Op::Remove, t, f, sub, None);
                }
                return Ok(());
            };
            let arr = ensure_array(m, name);
            let touched = if hits.is_empty() {
                let pairs = eq_pairs(f, t.def).ok_or_else(no_target)?;
                let mut o = Map::new();
                for (k, pv) in pairs {
                    set(&mut o, &k, pv);
                }
                set(&mut o, s, v);
                arr.push(Value::Object(o));
                vec![arr.len() - 1]
            } else {
                for &i in &hits {
                    if let Some(o) = arr[i].as_object_mut() {
                        set(o, s, v.clone());
                    }
                }
                hits
            };
            fix_primary(arr, &touched);
        }
        None => {
            let mut items = prep_items(t.def, value)?;
            if items.len() > 1 {
                return Err(ScimError::invalid_value(format!(
                    "a filtered path on '{name}' takes a single value, not a list"
                )));
            }
            let Some(item) = items.pop() else {
                if op == Op::Replace {
                    return filtered(m, Op::Remove, t, f, None, None);
                }
                return Ok(());
            };
            let Value::Object(mut new) = item else {
                return Err(ScimError::invalid_value(format!("a value of '{name}' must be an object")));
            };
            let pairs = eq_pairs(f, t.def);
            let arr = ensure_array(m, name);
            let touched = if hits.is_empty() {
                let pairs = pairs.ok_or_else(no_target)?;
                for (k, pv) in pairs {
                    if key_of(&new, &k).is_none() {
                        new.insert(k, pv);
                    }
                }
                arr.push(Value::Object(new));
                vec![arr.len() - 1]
            } else if op == Op::Add {
                for &i in &hits {
                    if let Some(o) = arr[i].as_object_mut() {
                        for (k, v) in &new {
                            set(o, k, v.clone());
                        }
                    }
                }
                hits
            } else {
                for (k, pv) in pairs.unwrap_or_default() {
                    if key_of(&new, &k).is_none() {
                        new.insert(k, pv);
                    }
                }
                let first = hits[0];
                arr[first] = Value::Object(new);
                remove_indices(arr, &hits[1..]);
                vec![first]
            };
            fix_primary(arr, &touched);
        }
    }
    Ok(())
}

fn remove_indices(arr: &mut Vec<Value>, indices: &[usize]) {
    let mut i = 0;
    arr.retain(|_| {
        let keep = !indices.contains(&i);
        i += 1;
        keep
    });
}

fn element_matches(f: &Filter, element: &Value, schema: &ElementSchema) -> bool {
    if element.is_object() {
        filter::matches(f, element, schema)
    } else {
        // A bare value is matched as `{"value": v}`.
        let mut o = Map::new();
        o.insert("value".to_string(), element.clone());
        filter::matches(f, &Value::Object(o), schema)
    }
}

/// Resolves the attribute names inside a value filter (`type` in `emails[type eq "work"]`)
/// as sub-attributes of the filtered attribute, so case-exactness and types are right.
struct ElementSchema {
    parent: Option<&'static Attr>,
}

impl ElementSchema {
    fn sub(&self, attr: &str, sub: Option<&str>) -> Option<&'static Attr> {
        let parent = self.parent?;
        match sub {
            None => parent.sub_attr(attr),
            Some(s) if parent.name.eq_ignore_ascii_case(attr) => parent.sub_attr(s),
            Some(_) => None,
        }
    }
}

impl AttrSchema for ElementSchema {
    fn case_exact(&self, _uri: Option<&str>, attr: &str, sub: Option<&str>) -> bool {
        self.sub(attr, sub).is_some_and(|a| a.case_exact)
    }
    fn kind(&self, _uri: Option<&str>, attr: &str, sub: Option<&str>) -> AttrKind {
        crate::scim::schema::kind_of(self.sub(attr, sub))
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
