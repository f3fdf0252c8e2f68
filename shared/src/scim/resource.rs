//! Turning what an IdP sends into the resource we store, and what we store into what a client
//! sees. Input is normalised once: canonical attribute names (IdPs send `Primary`, `DisplayName`),
//! boolean strings (`"False"`), JSON-encoded complex values (Entra roles), URN-keyed extension
//! attributes; read-only, unknown and null attributes are dropped, `password` is never kept.

use serde_json::{Map, Value};

use super::schema::{Attr, Mutability, ResourceType, Type};
use crate::error::{ScimError, ScimResult};

/// Returns the canonical schema URN of a top-level key that names an extension or an
/// attribute inside one (`urn:...:enterprise:2.0:User` / `urn:...:enterprise:2.0:User:department`).
fn is_urn(key: &str) -> bool {
    super::text::has_urn_prefix(key)
}

/// Coerces a value to the attribute's type; `None` drops it (null, empty).
pub fn coerce(attr: &Attr, value: Value, in_multi: bool) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi && !in_multi {
        let items = match value {
            Value::Array(items) => items,
            // Entra sends JSON-encoded arrays as strings for roles; OneLogin sends one object.
            Value::String(s) if attr.ty == Type::Complex && s.trim_start().starts_with(['[', '{']) => {
                match serde_json::from_str::<Value>(&s) {
                    Ok(Value::Array(items)) => items,
                    Ok(v) => vec![v],
                    Err(_) => {
                        return Err(ScimError::invalid_value(format!("'{}' is not valid JSON", attr.name)));
                    }
                }
            }
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = coerce(attr, item, true)? {
                out.push(v);
            }
        }
        return Ok(if out.is_empty() { None } else { Some(Value::Array(out)) });
    }
    let bad = |what: &str| ScimError::invalid_value(format!("attribute '{}' must be {what}", attr.name));
    Ok(Some(match attr.ty {
        Type::Boolean => match value {
            Value::Bool(b) => Value::Bool(b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        Type::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Value::Number(n),
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).map_err(|_| bad("an integer"))?,
            _ => return Err(bad("an integer")),
        },
        Type::Decimal => match value {
            Value::Number(n) => Value::Number(n),
            _ => return Err(bad("a number")),
        },
        Type::String | Type::Reference | Type::Binary | Type::DateTime => match value {
            Value::String(s) => Value::String(s),
            _ => return Err(bad("a string")),
        },
        Type::Complex => {
            let obj = match value {
                Value::Object(o) => o,
                Value::String(s) if s.trim_start().starts_with('{') => match serde_json::from_str(&s) {
                    Ok(Value::Object(o)) => o,
                    _ => return Err(bad("an object")),
                },
                // A bare value for a complex multi-valued attribute means its `value` (leniency).
                v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) if attr.sub_attr("value").is_some() => {
                    let mut o = Map::new();
                    o.insert("value".into(), v);
                    o
                }
                _ => return Err(bad("an object")),
            };
            let sub = normalise_object(attr.sub, obj, attr.name == "roles")?;
            if sub.is_empty() {
                return Ok(None);
            }
            Value::Object(sub)
        }
    }))
}

/// Normalises an object's keys against `attrs`. Unknown keys are dropped, except in `roles`,
/// where Entra's `displayName` is taken as `display`.
fn normalise_object(attrs: &'static [Attr], obj: Map<String, Value>, roles: bool) -> ScimResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in obj {
        let key = if roles && k.eq_ignore_ascii_case("displayName") { "display".to_string() } else { k };
        let Some(attr) = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(&key)) else {
            continue;
        };
        if attr.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = coerce(attr, v, false)? {
            out.insert(attr.name.to_string(), v);
        }
    }
    Ok(out)
}

/// Normalises a POST/PUT body (or a patched document) into the stored form for `rt`:
/// only writable schema attributes plus extension objects, `externalId` kept, `id`, `meta`,
/// `schemas`, `password` and read-only attributes removed. Group `members` are left out
/// (they are stored as rows); use [`take_members`] first.
pub fn normalise(rt: &ResourceType, body: Value) -> ScimResult<Map<String, Value>> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax("the request body must be a JSON object"));
    };
    let mut out = Map::new();
    let mut extensions: Vec<(String, Map<String, Value>)> = Vec::new();
    for (k, v) in obj {
        if is_urn(&k) {
            merge_extension(rt, &k, v, &mut out, &mut extensions)?;
            continue;
        }
        if k.eq_ignore_ascii_case("externalId") {
            match v {
                Value::String(s) if !s.is_empty() => {
                    out.insert("externalId".into(), Value::String(s));
                }
                Value::Null => {}
                Value::String(_) => {}
                _ => return Err(ScimError::invalid_value("externalId must be a string")),
            }
            continue;
        }
        let Some(attr) = rt.core.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(&k)) else {
            continue;
        };
        if matches!(attr.mutability, Mutability::ReadOnly | Mutability::WriteOnly) || attr.name == "members" {
            continue;
        }
        if let Some(v) = coerce(attr, v, false)? {
            out.insert(attr.name.to_string(), v);
        }
    }
    for (urn, ext) in extensions {
        if !ext.is_empty() {
            out.insert(urn, Value::Object(ext));
        }
    }
    Ok(out)
}

/// Places a URN-keyed entry: a whole extension object, or a fully qualified attribute
/// (`urn:...:User:department`, Entra's `urn:...:CustomExtensionName:2.0:User:CustomAttribute`).
fn merge_extension(
    rt: &ResourceType,
    key: &str,
    value: Value,
    core: &mut Map<String, Value>,
    extensions: &mut Vec<(String, Map<String, Value>)>,
) -> ScimResult<()> {
    // Whole extension object under its URN.
    if let Value::Object(obj) = &value {
        if let Some(schema) = rt.extension(key) {
            let norm = normalise_object(schema.attrs, obj.clone(), false)?;
            ext_slot(extensions, schema.id).extend(norm);
            return Ok(());
        }
        if rt.is_core_urn(key) {
            // Core attributes nested under the core URN: rare, but unambiguous.
            let norm = normalise(rt, value)?;
            core.extend(norm);
            return Ok(());
        }
    }
    let (prefix, attr_name) = key.rsplit_once(':').unwrap_or((key, ""));
    if rt.is_core_urn(prefix) {
        let mut one = Map::new();
        one.insert(attr_name.to_string(), value);
        core.extend(normalise(rt, Value::Object(one))?);
        return Ok(());
    }
    // `<known extension URN>:<one of its attributes>`. A key that only starts with a known
    // extension's URN and holds an object is a custom extension of its own (found by fuzzing:
    // the stored form must normalise to itself).
    let known_attr =
        |schema: &super::schema::Schema| schema.attrs.iter().any(|a| a.name.eq_ignore_ascii_case(attr_name));
    if let Some(schema) = rt.extension(prefix).filter(|s| !value.is_object() || known_attr(s)) {
        let mut one = Map::new();
        one.insert(attr_name.to_string(), value);
        ext_slot(extensions, schema.id).extend(normalise_object(schema.attrs, one, false)?);
        return Ok(());
    }
    // An extension we have no schema for (an IdP's custom extension): kept verbatim, nulls dropped.
    if !rt.core.id.eq_ignore_ascii_case(super::schema::USER_SCHEMA) {
        return Ok(());
    }
    // A custom extension URN that reads as `<known schema>:<its attribute>` would be taken for
    // that attribute when the stored form is read again: such a value is dropped, like any
    // unknown sub-attribute (found by fuzzing).
    let shadows_known = |urn: &str| {
        urn.rsplit_once(':').is_some_and(|(p, a)| {
            rt.is_core_urn(p) || rt.extension(p).is_some_and(|s| s.attrs.iter().any(|x| x.name.eq_ignore_ascii_case(a)))
        })
    };
    match value {
        Value::Object(_) if shadows_known(key) => {}
        Value::Object(obj) => {
            let slot = ext_slot(extensions, key);
            for (k, v) in obj {
                if !v.is_null() {
                    slot.insert(k, v);
                }
            }
        }
        Value::Null => {}
        v if !attr_name.is_empty() && is_urn(prefix) && prefix.contains(':') && !shadows_known(prefix) => {
            ext_slot(extensions, prefix).insert(attr_name.to_string(), v);
        }
        _ => {}
    }
    Ok(())
}

fn ext_slot<'a>(extensions: &'a mut Vec<(String, Map<String, Value>)>, urn: &str) -> &'a mut Map<String, Value> {
    let pos = match extensions.iter().position(|(u, _)| u.eq_ignore_ascii_case(urn)) {
        Some(p) => p,
        None => {
            extensions.push((urn.to_string(), Map::new()));
            extensions.len() - 1
        }
    };
    &mut extensions[pos].1
}

/// Takes `members` out of a Group body as member ids (in order, deduplicated).
/// `None` when the body has no `members` key (or `null`, as Okta sometimes sends).
pub fn take_members(body: &mut Value) -> ScimResult<Option<Vec<String>>> {
    let Some(obj) = body.as_object_mut() else {
        return Ok(None);
    };
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case("members")).cloned();
    let Some(key) = key else { return Ok(None) };
    let value = obj.remove(&key).unwrap_or(Value::Null);
    member_ids(value).map(Some)
}

/// The `display` each member object of a `members` value carries, by member id (kept as sent:
/// Okta puts the user's login there).
pub fn member_displays(value: &Value) -> std::collections::HashMap<String, String> {
    let items = match value {
        Value::Array(a) => a.as_slice(),
        other => std::slice::from_ref(other),
    };
    let field = |o: &Map<String, Value>, name: &str| -> Option<String> {
        o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str()).map(str::to_string)
    };
    items
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|o| Some((field(o, "value")?, field(o, "display").filter(|d| !d.is_empty())?)))
        .collect()
}

/// Member ids from a `members` value: objects with `value`, or bare id strings.
pub fn member_ids(value: Value) -> ScimResult<Vec<String>> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        Value::String(s) if s.trim_start().starts_with('[') => match serde_json::from_str(&s) {
            Ok(Value::Array(a)) => a,
            _ => return Err(ScimError::invalid_value("members must be a list")),
        },
        other => vec![other],
    };
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::String(s) => s,
            Value::Object(o) => match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")).map(|(_, v)| v) {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(ScimError::invalid_value("each member needs a string 'value'"));
                }
            },
            _ => {
                return Err(ScimError::invalid_value("each member must be an object with a 'value'"));
            }
        };
        if id.is_empty() {
            return Err(ScimError::invalid_value("member 'value' must not be empty"));
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Checks the attributes the schema requires.
pub fn check_required(rt: &ResourceType, doc: &Map<String, Value>) -> ScimResult<()> {
    for a in rt.core.attrs.iter().filter(|a| a.required) {
        match doc.get(a.name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) | None => {
                return Err(ScimError::invalid_value(format!("'{}' is required", a.name)));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The `schemas` list for a stored document: core plus every extension present.
pub fn schemas_for(rt: &ResourceType, doc: &Map<String, Value>) -> Vec<String> {
    let mut out = vec![rt.core.id.to_string()];
    for k in doc.keys() {
        if is_urn(k) {
            out.push(k.clone());
        }
    }
    out
}

/// `attributes` / `excludedAttributes` projection (RFC 7644 §3.4.2.5) on an outgoing resource.
/// `id` and `schemas` are always returned.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Vec<String>,
    exclude: Vec<String>,
}

fn parse_list(s: Option<&str>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(|p| {
                let p = p.trim();
                // `emails[type eq "work"]` (SCIM reference tests) selects the attribute.
                let p = p.split('[').next().unwrap_or(p);
                p.to_ascii_lowercase()
            })
            .filter(|p| !p.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

impl Projection {
    pub fn new(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        Self { include: parse_list(attributes), exclude: parse_list(excluded) }
    }

    /// Whether `members` must be loaded for a Group response.
    pub fn wants(&self, attr: &str) -> bool {
        let a = attr.to_ascii_lowercase();
        if !self.include.is_empty() {
            return self
                .include
                .iter()
                .any(|p| p == &a || p.starts_with(&format!("{a}.")) || p.ends_with(&format!(":{a}")));
        }
        !self.exclude.iter().any(|p| p == &a || p.ends_with(&format!(":{a}")))
    }

    pub fn apply(&self, mut v: Value) -> Value {
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        if !self.include.is_empty() {
            let mut keep = Map::new();
            for (k, val) in std::mem::take(obj) {
                let kl = k.to_ascii_lowercase();
                if kl == "id" || kl == "schemas" {
                    keep.insert(k, val);
                    continue;
                }
                if self.include.iter().any(|p| p == &kl) {
                    keep.insert(k, val);
                    continue;
                }
                // Sub-attribute selections: `name.givenName`, `urn:...:User:department`.
                let prefix_dot = format!("{kl}.");
                let prefix_colon = format!("{kl}:");
                let subs: Vec<&str> = self
                    .include
                    .iter()
                    .filter_map(|p| p.strip_prefix(&prefix_dot).or_else(|| p.strip_prefix(&prefix_colon)))
                    .collect();
                if subs.is_empty() {
                    continue;
                }
                keep.insert(k, select_subs(val, &subs));
            }
            *obj = keep;
        }
        if !self.exclude.is_empty() {
            obj.retain(|k, _| {
                let kl = k.to_ascii_lowercase();
                kl == "id" || kl == "schemas" || !self.exclude.contains(&kl)
            });
            for p in &self.exclude {
                if let Some((parent, sub)) = p.split_once('.')
                    && let Some((_, val)) = obj.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(parent))
                {
                    remove_sub(val, sub);
                }
            }
        }
        v
    }
}

fn select_subs(val: Value, subs: &[&str]) -> Value {
    match val {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| {
                    let kl = k.to_ascii_lowercase();
                    subs.iter().any(|s| *s == kl || s.starts_with(&format!("{kl}.")))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| select_subs(i, subs)).collect()),
        other => other,
    }
}

fn remove_sub(val: &mut Value, sub: &str) {
    match val {
        Value::Object(o) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
        Value::Array(items) => items.iter_mut().for_each(|i| remove_sub(i, sub)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_SCHEMA, GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    #[test]
    fn normalises_names_booleans_and_drops_junk() {
        let doc = normalise(
            &USER_TYPE,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "client-chosen", "meta": {"resourceType": "User"},
                "UserName": "a@x", "active": "False", "password": "secret",
                "emails": [{"Primary": "True", "value": "a@x", "type": "work"}],
                "adreses": "typo", "department": "top-level is not enterprise",
                "name": {"givenName": "A", "familyName": null}, "roles": [], "groups": [{"value": "g"}],
                "displayName": null,
            }),
        )
        .unwrap();
        assert_eq!(
            Value::Object(doc),
            json!({"userName": "a@x", "active": false,
                   "emails": [{"primary": true, "value": "a@x", "type": "work"}],
                   "name": {"givenName": "A"}})
        );
    }

    #[test]
    fn keeps_extensions_in_any_shape() {
        let doc = normalise(
            &USER_TYPE,
            json!({
                "userName": "u",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Department": "Eng", "manager": {"value": "m1"}},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
                "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:CustomAttribute": "x",
                "urn:ietf:params:scim:schemas:core:2.0:User:title": "Boss",
            }),
        )
        .unwrap();
        assert_eq!(
            doc[ENTERPRISE_SCHEMA],
            json!({"department": "Eng", "manager": {"value": "m1"}, "employeeNumber": "42"})
        );
        assert_eq!(
            doc["urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"],
            json!({"CustomAttribute": "x"})
        );
        assert_eq!(doc["title"], "Boss");
    }

    #[test]
    fn entra_stringified_roles_are_parsed() {
        let doc = normalise(
            &USER_TYPE,
            json!({"userName": "u", "roles": "[{\"primary\":\"True\",\"type\":\"WindowsAzureActiveDirectoryRole\",\"value\":\"Admin\",\"displayName\":\"Admin\"}]"}),
        )
        .unwrap();
        assert_eq!(
            doc["roles"],
            json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin", "display": "Admin"}])
        );
    }

    #[test]
    fn wrong_types_are_invalid_value() {
        let e = normalise(&USER_TYPE, json!({"userName": "u", "active": "maybe"})).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some(crate::error::ScimType::InvalidValue)));
        let e = normalise(&USER_TYPE, json!({"userName": 5})).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(normalise(&USER_TYPE, json!([1])).is_err());
    }

    #[test]
    fn required_attributes() {
        assert!(check_required(&USER_TYPE, &normalise(&USER_TYPE, json!({"userName": " "})).unwrap()).is_err());
        assert!(check_required(&USER_TYPE, &normalise(&USER_TYPE, json!({"userame": "x"})).unwrap()).is_err());
        assert!(check_required(&GROUP_TYPE, &normalise(&GROUP_TYPE, json!({"displayName": "G"})).unwrap()).is_ok());
    }

    #[test]
    fn members_in_both_shapes() {
        let mut body =
            json!({"displayName": "G", "Members": [{"value": "a", "$ref": null, "display": "x"}, "b", {"value": "a"}]});
        assert_eq!(take_members(&mut body).unwrap(), Some(vec!["a".to_string(), "b".to_string()]));
        assert!(body.get("Members").is_none());
        assert_eq!(take_members(&mut json!({"members": null})).unwrap(), Some(vec![]));
        assert_eq!(take_members(&mut json!({"displayName": "G"})).unwrap(), None);
        assert!(take_members(&mut json!({"members": [{"display": "no value"}]})).is_err());
    }

    #[test]
    fn projection() {
        let v = json!({"id": "1", "schemas": ["s"], "userName": "u", "name": {"givenName": "g", "familyName": "f"},
                       "emails": [{"value": "e", "type": "work"}], "meta": {"version": "W/\"1\""}});
        let p = Projection::new(Some("userName,name.givenName,emails[type eq \"work\"]"), None);
        assert_eq!(
            p.apply(v.clone()),
            json!({"id": "1", "schemas": ["s"], "userName": "u", "name": {"givenName": "g"}, "emails": [{"value": "e", "type": "work"}]})
        );
        let p = Projection::new(None, Some("emails,name.familyName,id"));
        assert_eq!(
            p.apply(v),
            json!({"id": "1", "schemas": ["s"], "userName": "u", "name": {"givenName": "g"}, "meta": {"version": "W/\"1\""}})
        );
        assert!(!Projection::new(None, Some("members")).wants("members"));
        assert!(Projection::new(Some("displayName,members"), None).wants("members"));
        assert!(!Projection::new(Some("displayName"), None).wants("members"));
    }
}
