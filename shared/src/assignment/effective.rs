//! A user's effective assignment from their SCIM resource, their role-mapped groups and the
//! integration's configuration (docs/architecture.md "Effective assignment and roles"). Deterministic: the same inputs give the same
//! assignment whatever order the IdP sent its calls in.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::rules::{RolesConfig, Rules};
use super::{Assignment, roles};
use crate::scim::filter::{self, PatchPath};
use crate::scim::schema::USER_TYPE;

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// The value at a SCIM attribute path of a user document: `userName`, `name.givenName`,
/// `emails[primary eq true].value`, `urn:...:enterprise:2.0:User:department`. Multi-valued
/// attributes without a filter give the primary element, else the first.
pub fn extract(doc: &Map<String, Value>, path: &str) -> Option<Value> {
    let PatchPath { path: attr_path, filter, sub } = filter::parse_patch_path(path).ok()?;
    let scope = match attr_path.uri.as_deref() {
        Some(u) if !USER_TYPE.is_core_urn(u) => get_ci(doc, u)?.as_object()?,
        _ => doc,
    };
    let mut v = get_ci(scope, &attr_path.attr)?.clone();
    if let Value::Array(items) = &v {
        let chosen = match &filter {
            Some(f) => items
                .iter()
                .find(|e| filter::matches_value(f, e, attr_path.uri.as_deref(), &attr_path.attr, &USER_TYPE)),
            None => items
                .iter()
                .find(|e| e.as_object().and_then(|o| get_ci(o, "primary")) == Some(&Value::Bool(true)))
                .or(items.first()),
        };
        v = chosen?.clone();
    } else if filter.is_some() {
        return None;
    }
    for s in [attr_path.sub.as_deref(), sub.as_deref()].into_iter().flatten() {
        v = get_ci(v.as_object()?, s)?.clone();
    }
    (!v.is_null()).then_some(v)
}

/// The values at a SCIM attribute path, every element of a multi-valued attribute (those its
/// filter selects, if any), where [`extract`] gives one.
fn extract_all(doc: &Map<String, Value>, path: &str) -> Vec<Value> {
    let Ok(PatchPath { path: attr_path, filter, sub }) = filter::parse_patch_path(path) else {
        return Vec::new();
    };
    let scope = match attr_path.uri.as_deref() {
        Some(u) if !USER_TYPE.is_core_urn(u) => match get_ci(doc, u).and_then(Value::as_object) {
            Some(o) => o,
            None => return Vec::new(),
        },
        _ => doc,
    };
    let Some(v) = get_ci(scope, &attr_path.attr) else { return Vec::new() };
    let items: Vec<&Value> = match v {
        Value::Array(items) => {
            let mut chosen: Vec<&Value> = items
                .iter()
                .filter(|e| match &filter {
                    Some(f) => filter::matches_value(f, e, attr_path.uri.as_deref(), &attr_path.attr, &USER_TYPE),
                    None => true,
                })
                .collect();
            // The IdP's primary value first: it leads among equal priorities.
            chosen.sort_by_key(|e| e.as_object().and_then(|o| get_ci(o, "primary")) != Some(&Value::Bool(true)));
            chosen
        }
        other if filter.is_none() => vec![other],
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|item| {
            let mut v = item;
            for s in [attr_path.sub.as_deref(), sub.as_deref()].into_iter().flatten() {
                v = get_ci(v.as_object()?, s)?;
            }
            (!v.is_null()).then(|| v.clone())
        })
        .collect()
}

/// Role values as text: a role object's `value`, a string, or a number.
fn role_values(values: Vec<Value>) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| {
            let v = match v {
                Value::Object(o) => get_ci(&o, "value")?.clone(),
                other => other,
            };
            match v {
                Value::String(s) => roles::role_text(&s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// The explicit role values of a user: the configured attribute's, then Okta's `entitlements`
/// of type `Role`.
fn explicit_roles(doc: &Map<String, Value>, cfg: &RolesConfig) -> Vec<String> {
    let mut values = cfg.explicit_attribute().map(|a| role_values(extract_all(doc, a))).unwrap_or_default();
    if cfg.explicit_attribute().is_some() {
        let entitlements = extract_all(doc, "entitlements")
            .into_iter()
            .filter(|e| {
                e.as_object()
                    .and_then(|o| get_ci(o, "type"))
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("role") || t.eq_ignore_ascii_case("roles"))
            })
            .collect();
        values.extend(role_values(entitlements));
    }
    values
}

/// The effective assignment. `group_names` are the displayNames of the groups the user is a
/// member of (only role-mapped ones matter).
pub fn effective<'a>(doc: &Map<String, Value>, group_names: &[String], rules: impl Into<Rules<'a>>) -> Assignment {
    let cfg = rules.into();
    let active = !matches!(doc.get("active"), Some(Value::Bool(false)));
    let groups: Vec<(&str, &str)> =
        group_names.iter().filter_map(|g| cfg.roles.group_role(g).map(|m| (m.role.as_str(), g.as_str()))).collect();
    let decided = roles::decide(
        &cfg.roles.catalog(),
        cfg.roles.mode,
        &explicit_roles(doc, cfg.roles),
        &groups,
        cfg.roles.default.as_deref(),
    );
    let attributes: BTreeMap<String, Value> =
        cfg.attributes.iter().filter_map(|m| extract(doc, m.path()).map(|v| (m.name().to_string(), v))).collect();
    let (entitlements, ignored) = entitlements(doc, cfg.roles, decided.ignored);
    Assignment { active, role: decided.role, roles: decided.roles, attributes, entitlements, ignored_roles: ignored }
}

/// The user's `entitlements` of each configured type, in the type's spelling, sorted; values a
/// type does not list join `ignored` as `type:value`.
fn entitlements(
    doc: &Map<String, Value>,
    cfg: &RolesConfig,
    mut ignored: Vec<String>,
) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if cfg.entitlement_types.is_empty() {
        return (out, ignored);
    }
    for item in extract_all(doc, "entitlements") {
        let ty = item.as_object().and_then(|o| get_ci(o, "type")).and_then(Value::as_str).unwrap_or("");
        let Some(kind) = cfg.entitlement_types.iter().find(|t| t.name.eq_ignore_ascii_case(ty)) else { continue };
        for value in role_values(vec![item.clone()]) {
            match kind.canonical(&value) {
                Some(v) => out.entry(kind.name.clone()).or_default().push(v.to_string()),
                None => ignored.push(format!("{}:{value}", kind.name)),
            }
        }
    }
    for values in out.values_mut() {
        values.sort();
        values.dedup();
    }
    (out, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integration::IntegrationConfig;
    use serde_json::json;

    fn cfg(attribute: Option<&str>, default: Option<&str>) -> IntegrationConfig {
        IntegrationConfig::from_json(json!({
            "name": "t",
            "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
            "roles": {"attribute": attribute, "default": default, "groups": [
                {"group": "CRM Admins", "role": "admin", "priority": 20},
                {"group": "CRM Viewers", "role": "viewer", "priority": 10},
            ]},
            "attributes": ["userName", {"path": "emails[primary eq true].value", "name": "email"},
                           "name.givenName", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"],
        }))
        .unwrap()
    }

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn extracts_paths() {
        let d = doc(json!({"userName": "a@x", "name": {"givenName": "A"},
            "emails": [{"value": "home@x", "type": "home"}, {"value": "work@x", "type": "work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Eng"}}));
        assert_eq!(extract(&d, "userName"), Some(json!("a@x")));
        assert_eq!(extract(&d, "name.givenName"), Some(json!("A")));
        assert_eq!(extract(&d, "emails[primary eq true].value"), Some(json!("work@x")));
        assert_eq!(extract(&d, "emails[type eq \"home\"].value"), Some(json!("home@x")));
        assert_eq!(extract(&d, "emails.value"), Some(json!("work@x")), "primary first");
        assert_eq!(
            extract(&d, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            Some(json!("Eng"))
        );
        assert_eq!(extract(&d, "title"), None);
        assert_eq!(extract(&d, "emails[type eq \"other\"].value"), None);
    }

    #[test]
    fn role_from_highest_priority_group_whatever_the_order() {
        let c = cfg(Some("roles"), None);
        let d = doc(json!({"userName": "u", "active": true}));
        let a = effective(&d, &["CRM Viewers".into(), "crm admins".into()], &c);
        let b = effective(&d, &["CRM Admins".into(), "CRM Viewers".into()], &c);
        assert_eq!(a.role.as_deref(), Some("admin"));
        assert_eq!(a, b);
        assert_eq!(effective(&d, &["Other".into()], &c).role, None);
        assert_eq!(effective(&d, &[], &cfg(Some("roles"), Some("user"))).role.as_deref(), Some("user"));
    }

    #[test]
    fn explicit_roles_rank_with_groups() {
        let c = cfg(Some("roles"), None);
        // No catalog: the mappings form it; an unknown explicit value ranks below them.
        let d = doc(json!({"userName": "u", "roles": [{"value": "viewer"}, {"value": "owner", "primary": true}]}));
        assert_eq!(effective(&d, &["CRM Admins".into()], &c).role.as_deref(), Some("admin"));
        assert_eq!(effective(&d, &[], &c).role.as_deref(), Some("viewer"));
        let d = doc(json!({"userName": "u", "roles": [{"value": "{\"id\":\"1\",\"value\":\"Admin\"}"}]}));
        assert_eq!(effective(&d, &[], &c).role.as_deref(), Some("admin"), "Entra JSON-in-value, catalog spelling");
        let d = doc(json!({"userName": "u", "roles": [{"value": " "}]}));
        assert_eq!(effective(&d, &["CRM Viewers".into()], &c).role.as_deref(), Some("viewer"));
        let ext = "urn:ietf:params:scim:schemas:extension:idlcm:2.0:User:role";
        let c = cfg(Some(ext), Some("user"));
        let d =
            doc(json!({"userName": "u", "urn:ietf:params:scim:schemas:extension:idlcm:2.0:User": {"role": "editor"}}));
        assert_eq!(effective(&d, &[], &c).role.as_deref(), Some("editor"));
    }

    #[test]
    fn active_and_mapped_attributes_only() {
        let c = cfg(None, None);
        let d = doc(
            json!({"userName": "u@x", "active": false, "title": "unmapped", "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "u@x", "primary": true}]}),
        );
        let a = effective(&d, &[], &c);
        assert!(!a.active);
        assert_eq!(
            serde_json::to_value(&a.attributes).unwrap(),
            json!({"userName": "u@x", "email": "u@x", "name.givenName": "G"})
        );
        assert!(effective(&doc(json!({"userName": "u"})), &[], &c).active, "active defaults to true");
    }
}
