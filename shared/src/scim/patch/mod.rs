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

mod apply;
mod members;
mod values;

pub use apply::apply;
use apply::*;
pub use members::{MemberChange, MemberDelta, fold_member_changes, split_group_ops};
use values::*;

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

#[cfg(test)]
#[path = "../patch_tests.rs"]
mod tests;
