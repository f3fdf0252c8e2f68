//! Evaluating a filter against a resource: attribute lookup (case-insensitive, URN-qualified),
//! multi-valued candidates, and comparison by attribute type.

use super::*;

// ---------------------------------------------------------------------------------------------

/// `obj[key]`, the key matched exactly first, then ASCII-case-insensitively.
pub(super) fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The object holding the attributes of schema `uri` in `resource`.
pub(super) fn container<'v>(resource: &'v Value, uri: Option<&str>) -> Option<&'v Map<String, Value>> {
    let root = resource.as_object()?;
    let Some(uri) = uri else { return Some(root) };
    let is_core = uri.get(..CORE_URN_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(CORE_URN_PREFIX))
        && match get_ci(root, "schemas") {
            Some(Value::Array(schemas)) => {
                schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(uri)))
            }
            _ => true,
        };
    if is_core { Some(root) } else { get_ci(root, uri)?.as_object() }
}

/// The value of `path.attr` (not yet its sub-attribute) as seen from `node` in `scope`.
pub(super) fn lookup<'v>(node: &'v Value, path: &AttrPath, scope: Scope<'_>) -> Option<&'v Value> {
    let obj = match scope {
        Scope::Root => container(node, path.uri.as_deref())?,
        Scope::Elem { .. } => node.as_object()?,
    };
    get_ci(obj, &path.attr)
}

/// Not null, not `""`, and for arrays and objects at least one present member.
pub(super) fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// A value to compare, and whether it was reached through an element's implied `value`.
pub(super) type Candidate<'v> = (&'v Value, bool);

pub(super) fn push_flat<'v>(v: &'v Value, out: &mut Vec<Candidate<'v>>) {
    match v {
        Value::Array(a) => out.extend(a.iter().filter(|e| !e.is_array()).map(|e| (e, false))),
        _ => out.push((v, false)),
    }
}

/// The scalar values an attribute value `v` offers to a comparison: its sub-attribute `sub` (of
/// the object or of every element), or else the value itself, every element, and for objects
/// their `value` sub-attribute.
pub(super) fn candidates<'v>(v: &'v Value, sub: Option<&str>, out: &mut Vec<Candidate<'v>>) {
    match (v, sub) {
        (Value::Object(o), Some(s)) => {
            if let Some(x) = get_ci(o, s) {
                push_flat(x, out);
            }
        }
        (Value::Array(a), Some(s)) => {
            for x in a.iter().filter_map(|e| e.as_object().and_then(|o| get_ci(o, s))) {
                push_flat(x, out);
            }
        }
        (_, Some(_)) => {}
        (Value::Array(a), None) => {
            for e in a {
                match e {
                    Value::Object(o) => {
                        if let Some(x) = get_ci(o, "value") {
                            out.push((x, true));
                        }
                    }
                    Value::Array(_) => {}
                    _ => out.push((e, false)),
                }
            }
        }
        (Value::Object(o), None) => {
            if let Some(x) = get_ci(o, "value") {
                out.push((x, true));
            }
        }
        (_, None) => out.push((v, false)),
    }
}

pub(super) fn eval<'f>(filter: &'f Filter, node: &Value, scope: Scope<'f>, schema: &dyn AttrSchema) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, node, scope, schema) && eval(b, node, scope, schema),
        Filter::Or(a, b) => eval(a, node, scope, schema) || eval(b, node, scope, schema),
        Filter::Not(inner) => !eval(inner, node, scope, schema),
        Filter::Present(path) => present(node, path, scope),
        Filter::Compare { path, op, value } => eval_compare(node, path, *op, value, scope, schema),
        Filter::ValuePath { path, filter } => {
            // Value filters do not nest.
            let Scope::Root = scope else { return false };
            let Some(v) = lookup(node, path, scope) else {
                return false;
            };
            let inner = Scope::Elem { uri: path.uri.as_deref(), parent: &path.attr };
            match v {
                Value::Array(a) => a.iter().any(|e| e.is_object() && eval(filter, e, inner, schema)),
                Value::Object(_) => eval(filter, v, inner, schema),
                _ => false,
            }
        }
    }
}

pub(super) fn present(node: &Value, path: &AttrPath, scope: Scope<'_>) -> bool {
    let Some(v) = lookup(node, path, scope) else {
        return false;
    };
    match path.sub.as_deref() {
        None => is_present(v),
        Some(sub) => {
            let mut out = Vec::new();
            candidates(v, Some(sub), &mut out);
            out.iter().any(|(c, _)| is_present(c))
        }
    }
}

pub(super) fn eval_compare(
    node: &Value,
    path: &AttrPath,
    op: CompareOp,
    operand: &Value,
    scope: Scope<'_>,
    schema: &dyn AttrSchema,
) -> bool {
    if operand.is_null() {
        // `eq null` is "has no value"; `ne null` is "has a value".
        return match op {
            CompareOp::Eq => !present(node, path, scope),
            CompareOp::Ne => present(node, path, scope),
            _ => false,
        };
    }
    let Some(v) = lookup(node, path, scope) else {
        return op == CompareOp::Ne;
    };
    let mut cands = Vec::new();
    candidates(v, path.sub.as_deref(), &mut cands);

    let (uri, attr, sub) = schema_key(path, scope);
    let info = |sub: Option<&str>| {
        let mut kind = schema.kind(uri, attr, sub);
        let is_meta_time = matches!(scope, Scope::Root)
            && attr.eq_ignore_ascii_case("meta")
            && sub.is_some_and(|s| s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified"));
        if is_meta_time && matches!(kind, Some(Type::String) | None) {
            kind = Some(Type::DateTime);
        }
        (schema.case_exact(uri, attr, sub), kind)
    };
    let direct = info(sub);
    // Elements reached through their implied `value`: ask the schema about `attr.value`.
    let implied = if sub.is_none() && cands.iter().any(|(_, implied)| *implied) { info(Some("value")) } else { direct };
    let test_op = if op == CompareOp::Ne { CompareOp::Eq } else { op };
    let hit = cands.iter().any(|&(c, via_value)| {
        let (case_exact, kind) = if via_value { implied } else { direct };
        compare_one(c, test_op, operand, case_exact, kind)
    });
    if op == CompareOp::Ne { !hit } else { hit }
}

pub(super) fn ordering_holds(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

pub(super) fn is_substring_op(op: CompareOp) -> bool {
    matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
}

pub(super) fn fold(s: &str, case_exact: bool) -> Cow<'_, str> {
    super::super::text::fold(s, case_exact)
}

pub(super) fn text_op(op: CompareOp, a: &str, b: &str, case_exact: bool) -> bool {
    let (a, b) = (fold(a, case_exact), fold(b, case_exact));
    match op {
        CompareOp::Co => a.contains(b.as_ref()),
        CompareOp::Sw => a.starts_with(b.as_ref()),
        CompareOp::Ew => a.ends_with(b.as_ref()),
        _ => ordering_holds(op, a.cmp(&b)),
    }
}

pub(super) fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

pub(super) fn num_op(op: CompareOp, a: &Number, b: &Number) -> bool {
    num_cmp(a, b).is_some_and(|ord| ordering_holds(op, ord))
}

/// RFC 3339 (any offset), or a timezone-less `YYYY-MM-DDThh:mm:ss[.f]` taken as UTC.
pub(super) fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc().fixed_offset()))
}

pub(super) fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// One attribute value against the operand (`op` is never `ne` here, and the operand never null).
pub(super) fn compare_one(cand: &Value, op: CompareOp, operand: &Value, case_exact: bool, kind: AttrKind) -> bool {
    match (cand, operand) {
        (Value::Null | Value::Array(_) | Value::Object(_), _)
        | (_, Value::Null | Value::Array(_) | Value::Object(_)) => false,
        (Value::Bool(a), Value::Bool(b)) => op == CompareOp::Eq && a == b,
        (Value::Bool(a), Value::String(s)) => op == CompareOp::Eq && s.trim().eq_ignore_ascii_case(bool_str(*a)),
        (Value::Bool(_), Value::Number(_)) | (Value::Number(_), Value::Bool(_)) => false,
        (Value::Number(a), Value::Number(b)) => {
            if is_substring_op(op) {
                text_op(op, &a.to_string(), &b.to_string(), true)
            } else {
                num_op(op, a, b)
            }
        }
        (Value::Number(a), Value::String(s)) => {
            if is_substring_op(op) {
                text_op(op, &a.to_string(), s, true)
            } else {
                parse_number(s.trim()).is_some_and(|b| num_op(op, a, &b))
            }
        }
        (Value::String(a), Value::String(b)) => {
            if kind == Some(Type::DateTime)
                && !is_substring_op(op)
                && let (Some(x), Some(y)) = (parse_datetime(a), parse_datetime(b))
            {
                return ordering_holds(op, x.cmp(&y));
            }
            text_op(op, a, b, case_exact)
        }
        (Value::String(a), Value::Number(b)) => {
            if !is_substring_op(op)
                && let Some(x) = parse_number(a.trim())
            {
                return num_op(op, &x, b);
            }
            text_op(op, a, &b.to_string(), case_exact)
        }
        (Value::String(a), Value::Bool(b)) => text_op(op, a, bool_str(*b), false),
    }
}
