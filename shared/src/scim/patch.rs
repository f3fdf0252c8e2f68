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
mod tests {
    use super::*;
    use crate::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_SCHEMA, GROUP_TYPE, IDLCM_USER_SCHEMA, PATCH_OP, USER_TYPE};
    use serde_json::json;

    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }

    fn ops(list: Value) -> Vec<Operation> {
        parse_request(body(list)).expect("valid PATCH body")
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn try_patch(rt: &ResourceType, doc: Value, list: Value) -> ScimResult<Value> {
        let mut m = obj(doc);
        apply(&mut m, rt, &ops(list))?;
        Ok(Value::Object(m))
    }

    fn patch_user(doc: Value, list: Value) -> Value {
        try_patch(&USER_TYPE, doc, list).expect("patch applies")
    }

    /// Patch, then the caller's normalise step, as the service does.
    fn patch_user_stored(doc: Value, list: Value) -> Value {
        Value::Object(resource::normalise(&USER_TYPE, patch_user(doc, list)).expect("normalises"))
    }

    fn user_err(doc: Value, list: Value) -> (u16, Option<ScimType>) {
        let e = try_patch(&USER_TYPE, doc, list).expect_err("patch fails");
        (e.status, e.scim_type)
    }

    fn parse_err(body: Value) -> Option<ScimType> {
        let e = parse_request(body).expect_err("body is rejected");
        assert_eq!(e.status, 400);
        e.scim_type
    }

    fn split(list: Value) -> (Vec<Operation>, Vec<MemberChange>) {
        split_group_ops(ops(list)).expect("splits")
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn bjensen() -> Value {
        json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "addresses": [
                {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "primary": true},
                {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"}
            ],
            "active": true,
            ENTERPRISE_SCHEMA: {"department": "Tour Operations", "manager": {"value": "m1", "$ref": "../Users/m1"}}
        })
    }

    // ------------------------------------------------------------------ parse_request

    #[test]
    fn parses_rfc_body() {
        let o = ops(json!([{"op": "add", "path": "nickName", "value": "Babs"}]));
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].op, Op::Add);
        assert_eq!(o[0].path.as_ref().map(|p| p.path.attr.as_str()), Some("nickName"));
        assert_eq!(o[0].value, Some(json!("Babs")));
    }

    #[test]
    fn e1_op_values_any_case() {
        let o = ops(json!([
            {"op": "Add", "path": "title", "value": "x"},
            {"op": "Replace", "path": "title", "value": "y"},
            {"op": "Remove", "path": "title"},
            {"op": "REPLACE", "path": "title", "value": "z"},
            {"op": "rEmOvE", "path": "title"}
        ]));
        let kinds: Vec<Op> = o.iter().map(|o| o.op).collect();
        assert_eq!(kinds, vec![Op::Add, Op::Replace, Op::Remove, Op::Replace, Op::Remove]);
    }

    #[test]
    fn e26_key_order_and_key_case_do_not_matter() {
        // entra/24: "Operations" before "schemas".
        let o = parse_request(
            json!({"Operations": [{"op": "Replace", "path": "active", "value": false}], "schemas": [PATCH_OP]}),
        )
        .unwrap();
        assert_eq!(o[0].op, Op::Replace);
        let o = parse_request(json!({"operations": [{"Value": 1, "PATH": "title", "OP": "add"}]})).unwrap();
        assert_eq!((o[0].op, o[0].value.clone()), (Op::Add, Some(json!(1))));
        assert_eq!(o[0].path.as_ref().unwrap().path.attr, "title");
    }

    #[test]
    fn missing_schemas_and_extra_members_are_tolerated() {
        // entra/refcode/26 (`name` in the op) and 66 (`id` at the top).
        let o = parse_request(json!({"id": "g1", "Operations": [{"name": "addMember", "op": "add", "path": "members", "value": "string id 1"}]}))
            .unwrap();
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn missing_or_empty_operations_is_invalid_syntax() {
        assert_eq!(parse_err(json!({"schemas": [PATCH_OP]})), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!([]))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!(null))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!("add"))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(json!([{"op": "add"}])), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!(["add"]))), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn a_single_operation_object_is_accepted() {
        let o = parse_request(json!({"Operations": {"op": "replace", "value": {"active": false}}})).unwrap();
        assert_eq!(o.len(), 1);
        assert!(o[0].path.is_none());
    }

    #[test]
    fn unknown_or_missing_op_is_invalid_syntax() {
        assert_eq!(
            parse_err(body(json!([{"op": "move", "path": "title", "value": "x"}]))),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(parse_err(body(json!([{"op": "copy", "path": "title"}]))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!([{"path": "title", "value": "x"}]))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!([{"op": 1, "path": "title", "value": "x"}]))), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn bad_path_is_invalid_path() {
        assert_eq!(
            parse_err(body(json!([{"op": "add", "path": "emails[type eq \"work\"", "value": "x"}]))),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(parse_err(body(json!([{"op": "add", "path": 5, "value": "x"}]))), Some(ScimType::InvalidPath));
        assert_eq!(
            parse_err(body(json!([{"op": "remove", "path": "emails[type zz \"work\"]"}]))),
            Some(ScimType::InvalidPath)
        );
    }

    #[test]
    fn error_detail_names_the_operation() {
        let e = parse_request(body(json!([{"op": "add", "path": "title", "value": "x"}, {"op": "move"}]))).unwrap_err();
        assert!(e.detail.contains("Operations[1]"), "{}", e.detail);
    }

    #[test]
    fn remove_without_path_or_value_is_no_target() {
        assert_eq!(parse_err(body(json!([{"op": "remove"}]))), Some(ScimType::NoTarget));
        assert_eq!(parse_err(body(json!([{"op": "Remove", "value": null}]))), Some(ScimType::NoTarget));
    }

    #[test]
    fn add_or_replace_without_value_is_invalid_syntax() {
        assert_eq!(parse_err(body(json!([{"op": "add", "path": "title"}]))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!([{"op": "replace", "path": "title"}]))), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(body(json!([{"op": "replace"}]))), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn pathless_add_or_replace_needs_an_object() {
        assert_eq!(parse_err(body(json!([{"op": "add", "value": "x"}]))), Some(ScimType::InvalidSyntax));
        assert_eq!(
            parse_err(body(json!([{"op": "replace", "value": [{"active": false}]}]))),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(parse_err(body(json!([{"op": "replace", "value": null}]))), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn empty_path_means_pathless() {
        let o = ops(
            json!([{"op": "replace", "path": "", "value": {"active": false}}, {"op": "add", "path": null, "value": {"title": "x"}}]),
        );
        assert!(o.iter().all(|o| o.path.is_none()));
    }

    #[test]
    fn remove_with_null_value_has_no_value() {
        let o = ops(json!([{"op": "remove", "path": "title", "value": null}]));
        assert!(o[0].value.is_none());
    }

    #[test]
    fn at_most_1000_operations() {
        let one = json!({"op": "add", "path": "title", "value": "x"});
        assert_eq!(ops(Value::Array(vec![one.clone(); MAX_OPERATIONS])).len(), MAX_OPERATIONS);
        assert_eq!(parse_err(body(Value::Array(vec![one; MAX_OPERATIONS + 1]))), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn non_object_body_is_invalid_syntax() {
        assert_eq!(parse_err(json!("Operations")), Some(ScimType::InvalidSyntax));
        assert_eq!(parse_err(json!(null)), Some(ScimType::InvalidSyntax));
    }

    // ------------------------------------------------------------------ split_group_ops

    #[test]
    fn o10_remove_filter_then_add_in_order() {
        // okta/17
        let (doc, ch) = split(json!([
            {"op": "remove", "path": "members[value eq \"u2\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u1", "display": "test.user@okta.local"}]}
        ]));
        assert!(doc.is_empty());
        assert_eq!(ch, vec![MemberChange::Remove(ids(&["u2"])), MemberChange::Add(ids(&["u1"]))]);
    }

    #[test]
    fn o10_multi_remove_add_wire_example() {
        // okta/21
        let (_, ch) = split(json!([
            {"op": "remove", "path": "members[value eq \"removeUser1\"]"},
            {"op": "remove", "path": "members[value eq \"removeUser2\"]"},
            {"op": "add", "path": "members", "value": [{"value": "a1", "display": "addUser1@example.com"}, {"value": "a2", "display": "addUser2@example.com"}]}
        ]));
        assert_eq!(
            ch,
            vec![
                MemberChange::Remove(ids(&["removeUser1"])),
                MemberChange::Remove(ids(&["removeUser2"])),
                MemberChange::Add(ids(&["a1", "a2"]))
            ]
        );
    }

    #[test]
    fn o10_replace_members_is_replace_all() {
        // okta/18
        let (_, ch) = split(
            json!([{"op": "replace", "path": "members", "value": [{"value": "u1", "display": "x"}, {"value": "u2", "display": "x"}]}]),
        );
        assert_eq!(ch, vec![MemberChange::ReplaceAll(ids(&["u1", "u2"]))]);
    }

    #[test]
    fn e4_add_members_with_null_ref() {
        // entra/21, several memberships in one op
        let (_, ch) = split(
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"$ref": null, "value": "u2"}]}]),
        );
        assert_eq!(ch, vec![MemberChange::Add(ids(&["u1", "u2"]))]);
    }

    #[test]
    fn e3_remove_with_value_list_removes_only_those() {
        // entra/22
        let (_, ch) = split(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}]}]));
        assert_eq!(ch, vec![MemberChange::Remove(ids(&["u1"]))]);
        let delta = fold_member_changes(&ch);
        assert!(!delta.reset, "must not wipe the group");
        assert_eq!(delta.set, vec![("u1".to_string(), false)]);
    }

    #[test]
    fn e3_remove_with_filter_path() {
        // entra flagged form, entra/refcode/27
        let (_, ch) = split(json!([{"op": "remove", "path": "members[value eq \"u4\"]"}]));
        assert_eq!(ch, vec![MemberChange::Remove(ids(&["u4"]))]);
    }

    #[test]
    fn remove_members_without_value_removes_all() {
        // entra/refcode/30, RFC 7644 §3.5.2.2
        let (_, ch) = split(json!([{"op": "remove", "path": "members"}]));
        assert_eq!(ch, vec![MemberChange::RemoveAll]);
        let (_, ch) = split(json!([{"op": "remove", "path": "members", "value": null}]));
        assert_eq!(ch, vec![MemberChange::RemoveAll]);
    }

    #[test]
    fn remove_members_with_empty_list_removes_nobody() {
        let (_, ch) = split(json!([{"op": "remove", "path": "members", "value": []}]));
        assert_eq!(ch, vec![MemberChange::Remove(vec![])]);
        assert_eq!(fold_member_changes(&ch), MemberDelta::default());
    }

    #[test]
    fn member_filter_with_or() {
        let (_, ch) =
            split(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\" or Value eq \"c\"]"}]));
        assert_eq!(ch, vec![MemberChange::Remove(ids(&["a", "b", "c"]))]);
    }

    #[test]
    fn other_member_filters_are_invalid_filter() {
        for f in [
            "members[display eq \"x\"]",
            "members[value ne \"x\"]",
            "members[value eq \"a\" and value eq \"b\"]",
            "members[value sw \"a\"]",
            "members[value pr]",
            "members[value eq 5]",
            "members[not (value eq \"a\")]",
        ] {
            let e = split_group_ops(ops(json!([{"op": "remove", "path": f}]))).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidFilter)), "{f}");
        }
    }

    #[test]
    fn members_path_any_case_and_urn_qualified() {
        let (doc, ch) = split(json!([
            {"op": "Add", "path": "Members", "value": [{"value": "a"}]},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "b"}]}
        ]));
        assert!(doc.is_empty());
        assert_eq!(ch, vec![MemberChange::Add(ids(&["a"])), MemberChange::Add(ids(&["b"]))]);
    }

    #[test]
    fn bare_string_and_stringified_member_values() {
        // entra/refcode/66: a bare id string
        let (_, ch) = split(json!([{"op": "add", "path": "members", "value": "string id 1"}]));
        assert_eq!(ch, vec![MemberChange::Add(ids(&["string id 1"]))]);
        let (_, ch) = split(json!([{"op": "add", "path": "members", "value": {"value": "one", "display": "x"}}]));
        assert_eq!(ch, vec![MemberChange::Add(ids(&["one"]))]);
        let (_, ch) =
            split(json!([{"op": "add", "path": "members", "value": "[{\"value\":\"s1\"},{\"value\":\"s2\"}]"}]));
        assert_eq!(ch, vec![MemberChange::Add(ids(&["s1", "s2"]))]);
    }

    #[test]
    fn member_without_value_is_invalid_value() {
        let e =
            split_group_ops(ops(json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]))).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn member_sub_attribute_or_filtered_add_is_invalid_path() {
        for (op, path) in [
            ("remove", "members[value eq \"a\"].display"),
            ("replace", "members.display"),
            ("add", "members[value eq \"a\"]"),
            ("replace", "members[value eq \"a\"]"),
        ] {
            let e = split_group_ops(ops(json!([{"op": op, "path": path, "value": "x"}]))).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{op} {path}");
        }
    }

    #[test]
    fn o9_pathless_rename_stays_a_document_op() {
        // okta/16, okta/22
        let (doc, ch) = split(json!([{"op": "replace", "value": {"id": "g1", "displayName": "Test SCIMv2"}}]));
        assert!(ch.is_empty());
        assert_eq!(doc.len(), 1);
        let mut m = obj(json!({"displayName": "Old"}));
        apply(&mut m, &GROUP_TYPE, &doc).unwrap();
        assert_eq!(Value::Object(m), json!({"displayName": "Test SCIMv2"}));
    }

    #[test]
    fn pathless_value_with_members_is_split() {
        let (doc, ch) = split(json!([
            {"op": "replace", "value": {"displayName": "G", "members": [{"value": "a"}]}},
            {"op": "add", "value": {"Members": [{"value": "b"}]}}
        ]));
        assert_eq!(ch, vec![MemberChange::ReplaceAll(ids(&["a"])), MemberChange::Add(ids(&["b"]))]);
        assert_eq!(doc.len(), 1, "the members-only op leaves no document op");
        assert_eq!(doc[0].value, Some(json!({"displayName": "G"})));
        assert_eq!(doc[0].op, Op::Replace);
    }

    #[test]
    fn document_ops_keep_their_order() {
        // entra/20 then members
        let (doc, ch) = split(json!([
            {"op": "Replace", "path": "displayName", "value": "one"},
            {"op": "Add", "path": "members", "value": [{"value": "u"}]},
            {"op": "Replace", "path": "externalId", "value": "two"}
        ]));
        assert_eq!(
            doc.iter().map(|o| o.path.as_ref().unwrap().path.attr.clone()).collect::<Vec<_>>(),
            vec!["displayName", "externalId"]
        );
        assert_eq!(ch, vec![MemberChange::Add(ids(&["u"]))]);
    }

    #[test]
    fn rfc_remove_all_then_add_members() {
        // RFC 7644 §3.5.2.2, last example
        let (_, ch) = split(json!([
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"display": "James Smith", "$ref": "https://example.com/v2/Users/08e1d05d", "value": "08e1d05d"}]}
        ]));
        let d = fold_member_changes(&ch);
        assert!(d.reset);
        assert_eq!(d.set, vec![("08e1d05d".to_string(), true)]);
    }

    // ------------------------------------------------------------------ fold_member_changes

    #[test]
    fn fold_later_changes_win_and_order_is_kept() {
        let d = fold_member_changes(&[
            MemberChange::Add(ids(&["a", "b"])),
            MemberChange::Remove(ids(&["a", "c"])),
            MemberChange::Add(ids(&["a"])),
        ]);
        assert!(!d.reset);
        assert_eq!(d.set, vec![("a".into(), true), ("b".into(), true), ("c".into(), false)]);
    }

    #[test]
    fn fold_remove_all_and_replace_all_reset() {
        let d = fold_member_changes(&[MemberChange::Add(ids(&["a"])), MemberChange::RemoveAll]);
        assert_eq!(d, MemberDelta { reset: true, set: vec![] });
        let d = fold_member_changes(&[
            MemberChange::Remove(ids(&["x"])),
            MemberChange::ReplaceAll(ids(&["a", "b", "a"])),
            MemberChange::Remove(ids(&["b"])),
        ]);
        assert_eq!(d, MemberDelta { reset: true, set: vec![("a".into(), true), ("b".into(), false)] });
        assert_eq!(fold_member_changes(&[MemberChange::ReplaceAll(vec![])]), MemberDelta { reset: true, set: vec![] });
    }

    #[test]
    fn fold_nothing() {
        assert_eq!(fold_member_changes(&[]), MemberDelta::default());
    }

    #[test]
    fn fold_ids_are_case_sensitive() {
        let d = fold_member_changes(&[MemberChange::Add(ids(&["Ab"])), MemberChange::Remove(ids(&["ab"]))]);
        assert_eq!(d.set.len(), 2);
    }

    // ------------------------------------------------------------------ apply: path-less

    #[test]
    fn o1_pathless_replace_deactivates_and_reactivates() {
        // okta/27, okta/30
        let doc = patch_user(bjensen(), json!([{"op": "replace", "value": {"active": false}}]));
        assert_eq!(doc["active"], false);
        let doc = patch_user(doc, json!([{"op": "replace", "value": {"active": true}}]));
        assert_eq!(doc["active"], true);
    }

    #[test]
    fn rfc_3_5_2_1_pathless_add() {
        let doc = patch_user(
            json!({"userName": "bjensen", "emails": [{"value": "bjensen@example.com", "type": "work"}]}),
            json!([{"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"}}]),
        );
        assert_eq!(
            doc,
            json!({"userName": "bjensen",
                   "emails": [{"value": "bjensen@example.com", "type": "work"}, {"value": "babs@jensen.org", "type": "home"}],
                   "nickName": "Babs"})
        );
    }

    #[test]
    fn rfc_3_5_2_3_pathless_replace() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "value": {"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}], "nickname": "Babs"}}]),
        );
        assert_eq!(doc["emails"], json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]));
        assert_eq!(doc["nickName"], "Babs");
        assert_eq!(doc["userName"], "bjensen", "other attributes stay");
    }

    #[test]
    fn e5_pathless_keys_are_paths() {
        // entra/45-46 (flagged multi-attribute replace)
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "value": {
                "displayName": "Babs",
                "name.givenName": "Barb",
                "name.familyName": "Jensen-Smith",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales"
            }}]),
        );
        assert_eq!(
            doc["name"],
            json!({"givenName": "Barb", "familyName": "Jensen-Smith", "formatted": "Ms. Barbara J Jensen III"})
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA]["employeeNumber"], "701984");
        assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "Sales");
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"]["value"], "m1");
        assert!(doc.get("name.givenName").is_none(), "never store a dotted name");
        assert!(doc.get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").is_none());
    }

    #[test]
    fn e5_pathless_add_with_dotted_key_creates_parent() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "Add", "value": {"name.givenName": "A", "name.familyName": "B"}}]),
        );
        assert_eq!(doc, json!({"userName": "u", "name": {"givenName": "A", "familyName": "B"}}));
    }

    #[test]
    fn pathless_extension_object_is_merged() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "value": {ENTERPRISE_SCHEMA: {"Department": "Sales", "costCenter": "4130"}}}]),
        );
        assert_eq!(
            doc[ENTERPRISE_SCHEMA],
            json!({"department": "Sales", "manager": {"value": "m1", "$ref": "../Users/m1"}, "costCenter": "4130"})
        );
    }

    #[test]
    fn pathless_extension_object_created_on_add() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User": {"division": "X"}}}]),
        );
        assert_eq!(doc, json!({"userName": "u", ENTERPRISE_SCHEMA: {"division": "X"}}));
    }

    #[test]
    fn pathless_custom_extension_object_and_attribute() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "value": {CUSTOM: {"a": "1"}, "urn:ietf:params:scim:schemas:extension:Other:2.0:User:b": "2"}}]),
        );
        assert_eq!(
            doc,
            json!({"userName": "u", CUSTOM: {"a": "1"}, "urn:ietf:params:scim:schemas:extension:Other:2.0:User": {"b": "2"}})
        );
    }

    #[test]
    fn pathless_core_urn_object_and_core_qualified_key() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:core:2.0:User": {"title": "Boss"},
                "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "B"
            }}]),
        );
        assert_eq!(doc, json!({"userName": "u", "title": "Boss", "nickName": "B"}));
    }

    #[test]
    fn o9_pathless_read_only_keys_are_ignored() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "replace", "value": {"id": "x", "meta": {"version": "1"}, "schemas": ["s"], "groups": [], "title": "T"}}]),
        );
        assert_eq!(doc, json!({"userName": "u", "title": "T"}));
    }

    #[test]
    fn pathless_unknown_keys_are_ignored() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "value": {"adreses": "typo", "name.nope": "x", "a b": 1, "title": "T"}}]),
        );
        assert_eq!(doc, json!({"userName": "u", "title": "T"}));
    }

    #[test]
    fn pathless_password_is_discarded() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "replace", "value": {"password": "s3cret", "active": true}}]),
        );
        assert_eq!(doc, json!({"userName": "u", "active": true}));
    }

    #[test]
    fn pathless_replace_with_null_unassigns() {
        let doc = patch_user(
            json!({"userName": "u", "title": "T", "nickName": "N"}),
            json!([{"op": "replace", "value": {"title": null}}]),
        );
        assert_eq!(doc, json!({"userName": "u", "nickName": "N"}));
        let doc = patch_user(json!({"userName": "u", "title": "T"}), json!([{"op": "add", "value": {"title": null}}]));
        assert_eq!(doc, json!({"userName": "u", "title": "T"}));
    }

    #[test]
    fn pathless_replace_of_complex_merges_sub_attributes() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "value": {"name": {"givenName": "Babs"}}}]));
        assert_eq!(
            doc["name"],
            json!({"givenName": "Babs", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"})
        );
    }

    #[test]
    fn pathless_remove_is_no_target() {
        let op = Operation { op: Op::Remove, path: None, value: Some(json!({"title": "x"})) };
        let e = apply(&mut obj(bjensen()), &USER_TYPE, &[op]).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    }

    #[test]
    fn pathless_add_with_non_object_is_invalid_syntax() {
        let op = Operation { op: Op::Add, path: None, value: Some(json!("x")) };
        let e = apply(&mut obj(bjensen()), &USER_TYPE, &[op]).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    }

    // ------------------------------------------------------------------ apply: add with path

    #[test]
    fn add_simple_sets() {
        let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": "title", "value": "Boss"}]));
        assert_eq!(doc, json!({"userName": "u", "title": "Boss"}));
    }

    #[test]
    fn e6_add_on_single_valued_replaces() {
        // entra/43-44: Add when the target has (or lacks) a value
        let doc = patch_user(
            json!({"userName": "u", "title": "Old"}),
            json!([{"op": "Add", "path": "title", "value": "New"}]),
        );
        assert_eq!(doc["title"], "New");
        let doc = patch_user(json!({"userName": "u"}), json!([{"op": "Add", "path": "externalId", "value": "e1"}]));
        assert_eq!(doc["externalId"], "e1");
    }

    #[test]
    fn add_complex_merges() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "add", "path": "name", "value": {"middleName": "Jane", "GivenName": "Barb"}}]),
        );
        assert_eq!(
            doc["name"],
            json!({"givenName": "Barb", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III", "middleName": "Jane"})
        );
    }

    #[test]
    fn add_sub_attribute_of_complex() {
        let doc = patch_user(bjensen(), json!([{"op": "add", "path": "name.honorificPrefix", "value": "Ms."}]));
        assert_eq!(doc["name"]["honorificPrefix"], "Ms.");
        assert_eq!(doc["name"]["givenName"], "Barbara");
    }

    #[test]
    fn add_multi_appends_and_is_idempotent() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "add", "path": "emails", "value": [
                {"value": "babs@jensen.org", "type": "home"},
                {"value": "b@other.org", "type": "other"}
            ]}]),
        );
        let emails = doc["emails"].as_array().unwrap();
        assert_eq!(emails.len(), 3, "existing value not duplicated");
        assert_eq!(emails[2], json!({"value": "b@other.org", "type": "other"}));
    }

    #[test]
    fn add_multi_creates_the_attribute() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "555", "type": "work"}]}]),
        );
        assert_eq!(doc["phoneNumbers"], json!([{"value": "555", "type": "work"}]));
    }

    #[test]
    fn add_single_object_to_multi_counts_as_list() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "emails", "value": {"value": "a@x", "type": "work"}}]),
        );
        assert_eq!(doc["emails"], json!([{"value": "a@x", "type": "work"}]));
    }

    #[test]
    fn add_empty_list_changes_nothing() {
        let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": "emails", "value": []}]));
        assert_eq!(doc, json!({"userName": "u"}));
    }

    #[test]
    fn add_primary_demotes_the_others() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "new@x", "type": "other", "primary": true}]}]),
        );
        let emails = doc["emails"].as_array().unwrap();
        assert_eq!(emails[0]["primary"], false);
        assert_eq!(emails[2]["primary"], true);
    }

    #[test]
    fn add_sub_on_multi_sets_every_element() {
        let doc = patch_user(bjensen(), json!([{"op": "add", "path": "addresses.country", "value": "US"}]));
        assert!(doc["addresses"].as_array().unwrap().iter().all(|a| a["country"] == "US"));
    }

    #[test]
    fn add_value_path_sub_on_match() {
        let doc =
            patch_user(bjensen(), json!([{"op": "add", "path": "emails[type eq \"home\"].display", "value": "Home"}]));
        assert_eq!(doc["emails"][1], json!({"value": "babs@jensen.org", "type": "home", "display": "Home"}));
        assert!(doc["emails"][0].get("display").is_none());
    }

    #[test]
    fn e18_add_value_path_without_match_appends() {
        // Entra sends Add when the slot is empty.
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
                   {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "u@x"}]),
        );
        assert_eq!(doc["phoneNumbers"], json!([{"type": "mobile", "value": "+1 555"}]));
        assert_eq!(doc["emails"], json!([{"type": "work", "value": "u@x"}]));
    }

    #[test]
    fn add_value_path_and_of_eqs_appends_all_pairs() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "emails[type eq \"work\" and primary eq true].value", "value": "u@x"}]),
        );
        assert_eq!(doc["emails"], json!([{"type": "work", "primary": true, "value": "u@x"}]));
    }

    #[test]
    fn add_value_path_with_other_filter_and_no_match_is_no_target() {
        let e = user_err(bjensen(), json!([{"op": "add", "path": "emails[value co \"nope\"].display", "value": "x"}]));
        assert_eq!(e, (400, Some(ScimType::NoTarget)));
        let e = user_err(
            bjensen(),
            json!([{"op": "add", "path": "emails[type eq \"x\" or type eq \"y\"].display", "value": "x"}]),
        );
        assert_eq!(e, (400, Some(ScimType::NoTarget)));
    }

    #[test]
    fn add_value_path_without_sub_merges_into_match() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"display": "H", "primary": true}}]),
        );
        assert_eq!(
            doc["emails"][1],
            json!({"value": "babs@jensen.org", "type": "home", "display": "H", "primary": true})
        );
        assert_eq!(doc["emails"][0]["primary"], false, "primary moved");
    }

    #[test]
    fn add_value_path_without_sub_or_match_appends_with_pairs() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "addresses[type eq \"work\"]", "value": {"locality": "Paris"}}]),
        );
        assert_eq!(doc["addresses"], json!([{"locality": "Paris", "type": "work"}]));
    }

    #[test]
    fn e16_stringified_roles_are_parsed() {
        let doc = patch_user_stored(
            json!({"userName": "u"}),
            json!([{"op": "Add", "path": "roles", "value": "[{\"value\":\"Admin\",\"primary\":\"True\",\"type\":\"WindowsAzureActiveDirectoryRole\"}]"}]),
        );
        assert_eq!(
            doc["roles"],
            json!([{"value": "Admin", "primary": true, "type": "WindowsAzureActiveDirectoryRole"}])
        );
    }

    #[test]
    fn e16_role_value_holding_a_json_document() {
        // docs/idp-quirks.md T9 (E16): AppRoleAssignmentsComplex, add-only, re-sent every cycle.
        let op = json!([{"op": "Add", "path": "roles", "value": [{"value": "{\"id\":\"8d1c\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}]);
        let once = patch_user_stored(json!({"userName": "u"}), op.clone());
        assert_eq!(once["roles"], json!([{"value": "Admin", "display": "Admin"}]));
        let twice = patch_user_stored(once.clone(), op);
        assert_eq!(twice, once, "re-adding the same role is idempotent");
    }

    #[test]
    fn e16_assertive_roles_replace() {
        let doc = patch_user_stored(
            json!({"userName": "u", "roles": [{"value": "Old"}]}),
            json!([{"op": "replace", "path": "roles", "value": [{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "displayName": "Reader", "value": "Reader"}]}]),
        );
        assert_eq!(
            doc["roles"],
            json!([{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "display": "Reader", "value": "Reader"}])
        );
    }

    #[test]
    fn e15_manager_as_array_on_unqualified_path() {
        // entra/15
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "Add", "path": "manager", "value": [{"$ref": "http://x/scim/Users/m9", "value": "m9"}]}]),
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"$ref": "http://x/scim/Users/m9", "value": "m9"}));
    }

    #[test]
    fn e15_manager_as_bare_string_on_urn_path() {
        // entra/16
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m9"}]),
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA], json!({"manager": {"value": "m9"}}));
    }

    #[test]
    fn e15_new_manager_replaces_stale_reference() {
        let doc = patch_user(bjensen(), json!([{"op": "Add", "path": "manager", "value": "m2"}]));
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m2"}), "no stale $ref");
        assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "Tour Operations");
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m3"}]),
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"]["value"], "m3");
    }

    #[test]
    fn e15_manager_value_eq_in_path_less_key() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m7"}}]),
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m7"}));
    }

    #[test]
    fn unqualified_extension_attribute_resolves_to_its_extension() {
        let doc =
            patch_user(json!({"userName": "u"}), json!([{"op": "replace", "path": "Department", "value": "Eng"}]));
        assert_eq!(doc, json!({"userName": "u", ENTERPRISE_SCHEMA: {"department": "Eng"}}));
    }

    #[test]
    fn e17_custom_extension_attribute_path() {
        // entra/37 (ENTRA-ATTR custom attribute naming)
        let path = format!("{CUSTOM}:CustomAttribute");
        let doc = patch_user(json!({"userName": "u"}), json!([{"op": "Add", "path": path, "value": "v1"}]));
        assert_eq!(doc, json!({"userName": "u", CUSTOM: {"CustomAttribute": "v1"}}));
        let doc = patch_user(doc, json!([{"op": "Replace", "path": path, "value": "v2"}]));
        assert_eq!(doc[CUSTOM]["CustomAttribute"], "v2");
        let stored = Value::Object(resource::normalise(&USER_TYPE, doc.clone()).unwrap());
        assert_eq!(stored[CUSTOM]["CustomAttribute"], "v2", "normalise keeps it");
        let doc = patch_user(doc, json!([{"op": "Remove", "path": path}]));
        assert_eq!(doc, json!({"userName": "u"}), "empty extension object removed");
    }

    #[test]
    fn e17_core_qualified_role_resolves_to_the_idlcm_extension() {
        // zulip/zulip#39773: `urn:ietf:params:scim:schemas:core:2.0:User:role`
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:role", "value": "admin"}]),
        );
        assert_eq!(doc, json!({"userName": "u", IDLCM_USER_SCHEMA: {"role": "admin"}}));
    }

    #[test]
    fn core_qualified_path() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName", "value": "v"}]),
        );
        assert_eq!(doc, json!({"userName": "v"}));
    }

    #[test]
    fn path_naming_an_extension_merges_or_removes_it() {
        let doc = patch_user(bjensen(), json!([{"op": "add", "path": ENTERPRISE_SCHEMA, "value": {"division": "D"}}]));
        assert_eq!(doc[ENTERPRISE_SCHEMA]["division"], "D");
        assert_eq!(doc[ENTERPRISE_SCHEMA]["department"], "Tour Operations");
        let doc = patch_user(doc, json!([{"op": "remove", "path": ENTERPRISE_SCHEMA}]));
        assert!(doc.get(ENTERPRISE_SCHEMA).is_none());
        let doc = patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": CUSTOM, "value": {"x": 1}}]));
        assert_eq!(doc[CUSTOM], json!({"x": 1}));
    }

    #[test]
    fn attribute_names_are_case_insensitive_and_written_canonically() {
        let doc = patch_user(
            json!({"userName": "u", "emails": [{"value": "a@x", "type": "work"}]}),
            json!([{"op": "replace", "path": "USERNAME", "value": "v"},
                   {"op": "replace", "path": "Emails[Type eq \"WORK\"].Value", "value": "b@x"},
                   {"op": "add", "path": "NAME.GIVENNAME", "value": "G"}]),
        );
        assert_eq!(
            doc,
            json!({"userName": "v", "emails": [{"value": "b@x", "type": "work"}], "name": {"givenName": "G"}})
        );
    }

    #[test]
    fn non_canonical_stored_keys_are_renamed() {
        let doc = patch_user(json!({"UserName": "u"}), json!([{"op": "replace", "path": "userName", "value": "v"}]));
        assert_eq!(doc, json!({"userName": "v"}));
    }

    // ------------------------------------------------------------------ apply: replace with path

    #[test]
    fn replace_simple() {
        // entra/09, entra/refcode/55
        let doc =
            patch_user(bjensen(), json!([{"op": "Replace", "path": "userName", "value": "5b50642d@testuser.com"}]));
        assert_eq!(doc["userName"], "5b50642d@testuser.com");
    }

    #[test]
    fn e2_boolean_strings_are_coerced() {
        // entra/41: "False" as a string; entra/24 and refcode/56 real booleans
        let doc = patch_user_stored(bjensen(), json!([{"op": "Replace", "path": "active", "value": "False"}]));
        assert_eq!(doc["active"], false);
        let doc = patch_user_stored(doc, json!([{"op": "Replace", "path": "active", "value": "TRUE"}]));
        assert_eq!(doc["active"], true);
        let doc = patch_user_stored(doc, json!([{"op": "Replace", "path": "active", "value": false}]));
        assert_eq!(doc["active"], false);
        let doc = patch_user_stored(doc, json!([{"op": "replace", "value": {"active": "True"}}]));
        assert_eq!(doc["active"], true);
    }

    #[test]
    fn non_boolean_string_for_active_is_invalid_value() {
        assert_eq!(
            user_err(bjensen(), json!([{"op": "replace", "path": "active", "value": "maybe"}])),
            (400, Some(ScimType::InvalidValue))
        );
    }

    #[test]
    fn replace_missing_attribute_adds_it() {
        let doc = patch_user(json!({"userName": "u"}), json!([{"op": "replace", "path": "nickName", "value": "N"}]));
        assert_eq!(doc["nickName"], "N");
    }

    #[test]
    fn replace_multi_wholesale() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "path": "emails", "value": [{"value": "x@y", "type": "work"}]}]),
        );
        assert_eq!(doc["emails"], json!([{"value": "x@y", "type": "work"}]));
    }

    #[test]
    fn replace_multi_with_empty_list_removes_it() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "emails", "value": []}]));
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn replace_with_null_removes() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "name", "value": null}]));
        assert!(doc.get("name").is_none());
    }

    #[test]
    fn replace_complex_with_path_merges() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "name", "value": {"familyName": "Smith"}}]));
        assert_eq!(
            doc["name"],
            json!({"givenName": "Barbara", "familyName": "Smith", "formatted": "Ms. Barbara J Jensen III"})
        );
    }

    #[test]
    fn replace_sub_attribute() {
        // entra/08 second op
        let doc =
            patch_user(bjensen(), json!([{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]));
        assert_eq!(doc["name"]["familyName"], "updatedFamilyName");
        assert_eq!(doc["name"]["givenName"], "Barbara");
    }

    #[test]
    fn e18_entra_08_update_multi_valued() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                   {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]),
        );
        assert_eq!(doc["emails"][0], json!({"value": "updatedEmail@microsoft.com", "type": "work", "primary": true}));
        assert_eq!(doc["emails"][1]["value"], "babs@jensen.org");
    }

    #[test]
    fn e18_replace_value_path_without_match_appends_eq_filter() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "555"}]),
        );
        assert_eq!(doc["phoneNumbers"], json!([{"type": "work", "value": "555"}]));
    }

    #[test]
    fn replace_value_path_with_other_filter_and_no_match_is_no_target() {
        let e = user_err(
            bjensen(),
            json!([{"op": "replace", "path": "emails[value ew \"@nowhere.org\"].type", "value": "other"}]),
        );
        assert_eq!(e, (400, Some(ScimType::NoTarget)));
        let e = user_err(
            json!({"userName": "u"}),
            json!([{"op": "replace", "path": "emails[type ne \"work\"]", "value": {"value": "x"}}]),
        );
        assert_eq!(e, (400, Some(ScimType::NoTarget)));
    }

    #[test]
    fn rfc_3_5_2_3_replace_whole_element_by_filter() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {
                "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
                "region": "CA", "postalCode": "91608", "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true
            }}]),
        );
        assert_eq!(doc["addresses"][0]["streetAddress"], "911 Universal City Plaza");
        assert_eq!(doc["addresses"][0]["postalCode"], "91608");
        assert_eq!(doc["addresses"][1]["type"], "home");
        assert_eq!(doc["addresses"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn rfc_3_5_2_3_replace_sub_by_filter() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
        );
        assert_eq!(
            doc["addresses"][0],
            json!({"type": "work", "streetAddress": "1010 Broadway Ave", "locality": "Hollywood", "primary": true})
        );
        assert_eq!(doc["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
    }

    #[test]
    fn replace_element_keeps_filter_identity_and_collapses_duplicates() {
        let doc = patch_user(
            json!({"userName": "u", "emails": [{"value": "a", "type": "work"}, {"value": "b", "type": "home"}, {"value": "c", "type": "work"}]}),
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w"}}]),
        );
        assert_eq!(doc["emails"], json!([{"value": "w", "type": "work"}, {"value": "b", "type": "home"}]));
    }

    #[test]
    fn replace_value_path_with_list_of_two_is_invalid_value() {
        let e = user_err(
            bjensen(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": [{"value": "a"}, {"value": "b"}]}]),
        );
        assert_eq!(e, (400, Some(ScimType::InvalidValue)));
    }

    #[test]
    fn replace_value_path_primary_demotes_others() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]),
        );
        assert_eq!(doc["emails"][0]["primary"], false);
        assert_eq!(doc["emails"][1]["primary"], true);
    }

    #[test]
    fn replace_sub_on_multi_sets_every_element() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "emails.display", "value": "d"}]));
        assert!(doc["emails"].as_array().unwrap().iter().all(|e| e["display"] == "d"));
    }

    #[test]
    fn filter_values_match_case_insensitively_for_case_insensitive_subs() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "replace", "path": "emails[value eq \"BJENSEN@example.com\"].type", "value": "other"}]),
        );
        assert_eq!(doc["emails"][0]["type"], "other");
    }

    // ------------------------------------------------------------------ apply: remove

    #[test]
    fn remove_attribute() {
        let doc =
            patch_user(bjensen(), json!([{"op": "remove", "path": "active"}, {"op": "Remove", "path": "emails"}]));
        assert!(doc.get("active").is_none());
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn remove_missing_attribute_is_fine() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "remove", "path": "title"}, {"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "manager"}]),
        );
        assert_eq!(doc, json!({"userName": "u"}));
    }

    #[test]
    fn remove_sub_attribute_and_empty_parent() {
        let doc = patch_user(
            json!({"userName": "u", "name": {"givenName": "G", "familyName": "F"}}),
            json!([{"op": "remove", "path": "name.givenName"}]),
        );
        assert_eq!(doc["name"], json!({"familyName": "F"}));
        let doc = patch_user(doc, json!([{"op": "remove", "path": "name.familyName"}]));
        assert_eq!(doc, json!({"userName": "u"}));
    }

    #[test]
    fn rfc_3_5_2_2_remove_by_filter() {
        let doc = patch_user(
            json!({"userName": "u", "emails": [{"value": "a@example.com", "type": "work"}, {"value": "b@other.org", "type": "work"}, {"value": "c@example.com", "type": "home"}]}),
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
        );
        assert_eq!(
            doc["emails"],
            json!([{"value": "b@other.org", "type": "work"}, {"value": "c@example.com", "type": "home"}])
        );
    }

    #[test]
    fn remove_by_filter_without_match_is_a_no_op() {
        let doc = patch_user(
            bjensen(),
            json!([{"op": "remove", "path": "emails[type eq \"pager\"]"}, {"op": "remove", "path": "ims[type eq \"x\"]"}]),
        );
        assert_eq!(doc, bjensen());
    }

    #[test]
    fn remove_last_element_removes_the_key() {
        let doc = patch_user(
            json!({"userName": "u", "emails": [{"value": "a", "type": "work"}]}),
            json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
        );
        assert_eq!(doc, json!({"userName": "u"}));
    }

    #[test]
    fn remove_sub_by_filter() {
        let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
        assert_eq!(doc["emails"][0], json!({"value": "bjensen@example.com", "type": "work"}));
    }

    #[test]
    fn remove_sub_on_every_element() {
        let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "addresses.locality"}]));
        assert!(doc["addresses"].as_array().unwrap().iter().all(|a| a.get("locality").is_none()));
        let doc = patch_user(
            json!({"userName": "u", "emails": [{"value": "a"}]}),
            json!([{"op": "remove", "path": "emails.value"}]),
        );
        assert_eq!(doc, json!({"userName": "u"}), "emptied elements go, then the key");
    }

    #[test]
    fn remove_listed_values_from_multi() {
        let doc =
            patch_user(bjensen(), json!([{"op": "remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]));
        assert_eq!(doc["emails"], json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]));
        let doc = patch_user(
            doc,
            json!([{"op": "remove", "path": "emails", "value": {"value": "bjensen@example.com", "type": "work", "primary": true}}]),
        );
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn remove_listed_roles_by_string() {
        let doc = patch_user(
            json!({"userName": "u", "roles": [{"value": "A"}, {"value": "B"}]}),
            json!([{"op": "remove", "path": "roles", "value": "A"}]),
        );
        assert_eq!(doc["roles"], json!([{"value": "B"}]));
    }

    #[test]
    fn remove_single_valued_with_value_only_when_it_matches() {
        let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "manager", "value": [{"value": "other"}]}]));
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"]["value"], "m1");
        let doc = patch_user(doc, json!([{"op": "remove", "path": "manager", "value": [{"value": "m1"}]}]));
        assert!(doc[ENTERPRISE_SCHEMA].get("manager").is_none());
        let doc = patch_user(
            json!({"userName": "u", "title": "T"}),
            json!([{"op": "remove", "path": "title", "value": "X"}]),
        );
        assert_eq!(doc["title"], "T");
        let doc = patch_user(doc, json!([{"op": "remove", "path": "title", "value": "T"}]));
        assert!(doc.get("title").is_none());
    }

    #[test]
    fn remove_last_extension_attribute_removes_extension() {
        let doc = patch_user(
            json!({"userName": "u", ENTERPRISE_SCHEMA: {"department": "D"}}),
            json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]),
        );
        assert_eq!(doc, json!({"userName": "u"}));
    }

    #[test]
    fn remove_manager_sub_value() {
        let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "manager.$ref"}]));
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m1"}));
    }

    // ------------------------------------------------------------------ apply: errors

    #[test]
    fn read_only_paths_are_mutability() {
        for path in [
            "id",
            "meta",
            "meta.created",
            "meta.lastModified",
            "groups",
            "ID",
            "manager.displayName",
            "urn:ietf:params:scim:schemas:core:2.0:User:id",
        ] {
            for op in ["add", "replace", "remove"] {
                let e = user_err(bjensen(), json!([{"op": op, "path": path, "value": "x"}]));
                assert_eq!(e, (400, Some(ScimType::Mutability)), "{op} {path}");
            }
        }
    }

    #[test]
    fn unknown_paths_are_invalid_path() {
        for path in [
            "foo",
            "name.nope",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope",
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
            "userName.value",
            "name[givenName eq \"x\"]",
            "active[value eq true]",
        ] {
            let e = user_err(bjensen(), json!([{"op": "replace", "path": path, "value": "x"}]));
            assert_eq!(e, (400, Some(ScimType::InvalidPath)), "{path}");
        }
    }

    #[test]
    fn password_path_is_accepted_and_discarded() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "password", "value": "s3cret"}]));
        assert_eq!(doc, bjensen());
        let doc = patch_user(bjensen(), json!([{"op": "remove", "path": "password"}]));
        assert_eq!(doc, bjensen());
    }

    #[test]
    fn schemas_path_is_ignored() {
        let doc = patch_user(bjensen(), json!([{"op": "add", "path": "schemas", "value": [ENTERPRISE_SCHEMA]}]));
        assert_eq!(doc, bjensen());
    }

    #[test]
    fn wrong_value_shapes_are_invalid_value() {
        for (path, value) in [
            ("name", json!("Babs")),
            ("displayName", json!(5)),
            ("emails", json!([[1]])),
            ("emails[type eq \"work\"]", json!(true)),
            ("roles", json!("[not json")),
            (ENTERPRISE_SCHEMA, json!("x")),
        ] {
            let e = user_err(bjensen(), json!([{"op": "add", "path": path, "value": value}]));
            assert_eq!(e, (400, Some(ScimType::InvalidValue)), "{path}");
        }
    }

    #[test]
    fn error_in_a_later_op_is_reported() {
        // Atomicity is the caller's: it applied to a clone and discards it.
        let e = user_err(
            bjensen(),
            json!([{"op": "replace", "path": "title", "value": "T"}, {"op": "replace", "path": "id", "value": "x"}]),
        );
        assert_eq!(e.1, Some(ScimType::Mutability));
    }

    #[test]
    fn path_op_without_value_built_by_hand_is_invalid_syntax() {
        let op = Operation { op: Op::Replace, path: Some(filter::parse_patch_path("title").unwrap()), value: None };
        assert_eq!(apply(&mut obj(bjensen()), &USER_TYPE, &[op]).unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
    }

    // ------------------------------------------------------------------ groups and end-to-end

    #[test]
    fn entra_20_group_rename() {
        let (doc_ops, ch) =
            split(json!([{"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}]));
        assert!(ch.is_empty());
        let mut m = obj(json!({"displayName": "x", "externalId": "e"}));
        apply(&mut m, &GROUP_TYPE, &doc_ops).unwrap();
        assert_eq!(Value::Object(m), json!({"displayName": "1879db59updatedDisplayName", "externalId": "e"}));
    }

    #[test]
    fn group_unknown_attribute_is_invalid_path() {
        let e = try_patch(
            &GROUP_TYPE,
            json!({"displayName": "G"}),
            json!([{"op": "add", "path": "userName", "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    }

    #[test]
    fn every_patch_fixture_parses() {
        // ../shared/fixtures beside the checkout (read in place; third-party material).
        let root = std::env::var("IDLCM_FIXTURES_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
        if !root.exists() {
            eprintln!("skipped: {} not found", root.display());
            return;
        }
        let mut seen = 0;
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if p.extension().is_none_or(|e| e != "json") || p.file_name().is_some_and(|n| n == "index.json") {
                    continue;
                }
                let step: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                if step["request"]["method"] != "PATCH" {
                    continue;
                }
                let ops =
                    parse_request(step["request"]["body"].clone()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                if step["request"]["path"].as_str().is_some_and(|s| s.starts_with("/Groups")) {
                    let (doc_ops, _) = split_group_ops(ops).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    let mut m = obj(json!({"displayName": "G"}));
                    apply(&mut m, &GROUP_TYPE, &doc_ops).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                } else {
                    let mut m = obj(bjensen());
                    apply(&mut m, &USER_TYPE, &ops).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    resource::normalise(&USER_TYPE, Value::Object(m))
                        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                }
                seen += 1;
            }
        }
        assert!(seen >= 20, "only {seen} PATCH fixtures found");
    }

    #[test]
    fn element_schema_resolves_sub_attributes() {
        let emails = USER_TYPE.attr(None, "emails");
        let s = ElementSchema { parent: emails };
        assert!(!s.case_exact(None, "type", None));
        assert_eq!(s.kind(None, "primary", None), AttrKind::Boolean);
        assert_eq!(s.kind(None, "value", None), AttrKind::String);
        assert_eq!(s.kind(None, "emails", Some("type")), AttrKind::String);
        assert_eq!(s.kind(None, "nope", None), AttrKind::Unknown);
        let none = ElementSchema { parent: None };
        assert_eq!(none.kind(None, "value", None), AttrKind::Unknown);
        assert!(!none.case_exact(None, "value", None));
    }

    #[test]
    fn bare_elements_match_filters_as_value() {
        let doc = patch_user(
            json!({"userName": "u", CUSTOM: {"tags": ["a", "b"]}}),
            json!([{"op": "remove", "path": format!("{CUSTOM}:tags[value eq \"a\"]")}]),
        );
        assert_eq!(doc[CUSTOM]["tags"], json!(["b"]));
    }

    #[test]
    fn custom_extension_list_add_appends() {
        let doc = patch_user(
            json!({"userName": "u", CUSTOM: {"tags": ["a"]}}),
            json!([{"op": "add", "path": format!("{CUSTOM}:tags"), "value": ["a", "c"]}]),
        );
        assert_eq!(doc[CUSTOM]["tags"], json!(["a", "c"]));
    }

    #[test]
    fn okta_put_like_pathless_replace_end_to_end() {
        let doc = patch_user_stored(
            bjensen(),
            json!([{"op": "replace", "value": {"name": {"givenName": "B"}, "emails": [{"Primary": "True", "value": "n@x", "type": "work"}], "groups": [], "locale": "en-US"}}]),
        );
        assert_eq!(doc["emails"], json!([{"primary": true, "value": "n@x", "type": "work"}]));
        assert_eq!(doc["locale"], "en-US");
        assert_eq!(doc["name"]["givenName"], "B");
        assert_eq!(doc["name"]["familyName"], "Jensen");
    }

    #[test]
    fn e15_manager_id_that_looks_like_json_is_still_an_id() {
        let doc =
            patch_user(json!({"userName": "u"}), json!([{"op": "add", "path": "manager", "value": "{{userId}}"}]));
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"value": "{{userId}}"}));
    }

    #[test]
    fn e15_manager_survives_normalise() {
        let doc = patch_user_stored(
            json!({"userName": "u"}),
            json!([{"op": "Add", "path": "manager", "value": [{"$ref": "http://x/Users/m", "value": "m"}]}]),
        );
        assert_eq!(doc[ENTERPRISE_SCHEMA]["manager"], json!({"$ref": "http://x/Users/m", "value": "m"}));
    }

    #[test]
    fn bare_value_on_a_value_path_is_its_value() {
        let doc = patch_user(bjensen(), json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": "h@x"}]));
        assert_eq!(doc["emails"][1], json!({"value": "h@x", "type": "home"}));
    }

    #[test]
    fn pathless_remove_with_members_is_a_member_change() {
        let (doc, ch) = split(json!([{"op": "remove", "path": "members", "value": ["a"]}]));
        assert!(doc.is_empty());
        assert_eq!(ch, vec![MemberChange::Remove(ids(&["a"]))]);
        let (doc, ch) = split_group_ops(vec![Operation {
            op: Op::Remove,
            path: None,
            value: Some(json!({"members": [{"value": "b"}]})),
        }])
        .unwrap();
        assert!(doc.is_empty());
        assert_eq!(ch, vec![MemberChange::Remove(ids(&["b"]))]);
    }

    #[test]
    fn group_pathless_add_keeps_known_and_ignores_unknown() {
        let mut m = obj(json!({"displayName": "G"}));
        apply(
            &mut m,
            &GROUP_TYPE,
            &ops(json!([{"op": "add", "value": {"externalId": "e", "userName": "x", "id": "g"}}])),
        )
        .unwrap();
        assert_eq!(Value::Object(m), json!({"displayName": "G", "externalId": "e"}));
    }

    #[test]
    fn ops_apply_in_order() {
        let doc = patch_user(
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "title", "value": "A"}, {"op": "remove", "path": "title"}, {"op": "add", "path": "nickName", "value": "N"}, {"op": "replace", "path": "nickName", "value": "M"}]),
        );
        assert_eq!(doc, json!({"userName": "u", "nickName": "M"}));
    }
}
