//! Value-level work of a PATCH: map helpers (names matched case-insensitively, written
//! canonically), the shapes values come in, multi-valued edits and value-path filters.

use super::*;

// ---- map helpers (attribute names are matched case-insensitively, written canonically) ----

pub(super) fn key_of(m: &Map<String, Value>, name: &str) -> Option<String> {
    if m.contains_key(name) {
        return Some(name.to_string());
    }
    m.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Renames a case variant of `name` to `name`; whether the key exists.
pub(super) fn canon(m: &mut Map<String, Value>, name: &str) -> bool {
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

pub(super) fn remove_key(m: &mut Map<String, Value>, name: &str) {
    if let Some(k) = key_of(m, name) {
        m.shift_remove(&k);
    }
}

pub(super) fn get<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    field(m, name)
}

pub(super) fn set(m: &mut Map<String, Value>, name: &str, v: Value) {
    canon(m, name);
    m.insert(name.to_string(), v);
}

/// The map an attribute lives in: the document or an extension object (created on demand).
pub(super) fn container<'a>(
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

pub(super) fn ensure_array<'a>(m: &'a mut Map<String, Value>, name: &str) -> &'a mut Vec<Value> {
    canon(m, name);
    let slot = m.entry(name.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        let old = slot.take();
        *slot = Value::Array(if old.is_null() { Vec::new() } else { vec![old] });
    }
    slot.as_array_mut().expect("slot was just made an array")
}

pub(super) fn ensure_object<'a>(m: &'a mut Map<String, Value>, name: &str) -> &'a mut Map<String, Value> {
    canon(m, name);
    let slot = m.entry(name.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("slot was just made an object")
}

/// Drops an empty array or object under `name`.
pub(super) fn drop_if_empty(m: &mut Map<String, Value>, name: &str) {
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
pub(super) enum Shape {
    Multi,
    Complex,
    Simple,
    /// An attribute of an extension we have no schema for.
    Unknown,
}

pub(super) fn shape(def: Option<&Attr>) -> Shape {
    match def {
        None => Shape::Unknown,
        Some(d) if d.multi => Shape::Multi,
        Some(d) if d.ty == Type::Complex => Shape::Complex,
        Some(_) => Shape::Simple,
    }
}

/// A string holding a JSON array/object (Entra roles) is parsed; anything else is kept.
pub(super) fn parse_json_string(v: Value) -> Value {
    match &v {
        Value::String(s) if s.trim_start().starts_with(['[', '{']) => serde_json::from_str(s).unwrap_or(v),
        _ => v,
    }
}

/// Entra's role element `{"value": "{\"id\":..,\"value\":\"Admin\",\"displayName\":\"Admin\"}"}`:
/// the inner document supplies `value` and any sub-attribute the element lacks.
pub(super) fn unwrap_inner_json(v: Value) -> Value {
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
pub(super) fn prep_items(def: Option<&'static Attr>, v: &Value) -> ScimResult<Vec<Value>> {
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
pub(super) fn prep_single(def: Option<&'static Attr>, v: &Value) -> ScimResult<Option<Value>> {
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

pub(super) fn prep_sub(sub_def: Option<&'static Attr>, v: &Value) -> ScimResult<Option<Value>> {
    prep_single(sub_def, v)
}

/// Equality of JSON values as SCIM sees them: object keys case-insensitive, null members
/// ignored, `"True"` equal to `true`.
pub(super) fn loose_eq(a: &Value, b: &Value) -> bool {
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
pub(super) fn names_element(item: &Value, element: &Value, def: Option<&Attr>) -> bool {
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

pub(super) fn is_primary(v: &Value) -> bool {
    match v.as_object().and_then(|o| get(o, "primary")) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// RFC 7644 §3.5.2: a value set to `primary: true` makes every other value `primary: false`.
pub(super) fn fix_primary(items: &mut [Value], touched: &[usize]) {
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
pub(super) fn merge_complex(m: &mut Map<String, Value>, name: &str, def: Option<&Attr>, new: Map<String, Value>) {
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
pub(super) fn whole_attr(m: &mut Map<String, Value>, op: Op, t: &Target, value: Option<&Value>) -> ScimResult<()> {
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
pub(super) fn remove_values(m: &mut Map<String, Value>, t: &Target, value: &Value) -> ScimResult<()> {
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
pub(super) fn every_sub(
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

pub(super) fn get_mut<'a>(m: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    let key = key_of(m, name)?;
    m.get_mut(&key)
}

/// The `eq` pairs of a filter that is one `eq` or an `and` of `eq`s on sub-attributes,
/// with canonical sub-attribute names; `None` for any other filter.
pub(super) fn eq_pairs(f: &Filter, def: Option<&'static Attr>) -> Option<Vec<(String, Value)>> {
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
pub(super) fn filtered(
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

pub(super) fn remove_indices(arr: &mut Vec<Value>, indices: &[usize]) {
    let mut i = 0;
    arr.retain(|_| {
        let keep = !indices.contains(&i);
        i += 1;
        keep
    });
}

pub(super) fn element_matches(f: &Filter, element: &Value, schema: &ElementSchema) -> bool {
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
pub(super) struct ElementSchema {
    pub(super) parent: Option<&'static Attr>,
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
