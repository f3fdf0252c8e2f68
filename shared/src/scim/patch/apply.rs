//! Applying document operations to a stored document: path-less values, attribute paths
//! resolved against the schema, value paths.

use super::*;

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
pub(super) fn apply_pathless(
    doc: &mut Map<String, Value>,
    rt: &ResourceType,
    op: Op,
    obj: &Map<String, Value>,
) -> ScimResult<()> {
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
pub(super) fn apply_extension_value(
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
pub(super) fn is_core_family(urn: &str) -> bool {
    const CORE: &str = "urn:ietf:params:scim:schemas:core:";
    urn.get(..CORE.len()).is_some_and(|p| p.eq_ignore_ascii_case(CORE))
}

/// Where a path points.
pub(super) enum Resolved {
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
pub(super) struct Target {
    /// `None`: top level; `Some(urn)`: inside the extension object keyed by `urn`.
    pub(super) ext: Option<String>,
    /// Canonical name (as given for extensions we have no schema for).
    pub(super) name: String,
    pub(super) def: Option<&'static Attr>,
    /// `attr.sub` (no filter) or `attr[filter].sub`.
    pub(super) sub: Option<(String, Option<&'static Attr>)>,
}

pub(super) fn find_attr(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

pub(super) fn resolve(rt: &ResourceType, pp: &PatchPath) -> ScimResult<Resolved> {
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

pub(super) fn whole_or_invalid(whole: bool, full: &str, r: Resolved) -> ScimResult<Resolved> {
    if whole { Ok(r) } else { Err(ScimError::invalid_path(format!("'{full}' is a schema, not an attribute"))) }
}

/// Applies one op at a path. `lenient` (keys of a path-less value) ignores unknown and
/// read-only attributes instead of failing.
pub(super) fn apply_path(
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
