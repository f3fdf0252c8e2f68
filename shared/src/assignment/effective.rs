//! A user's effective assignment from their SCIM resource, their role-mapped groups and the
//! integration's configuration (docs/architecture.md "Effective assignment and roles"). Deterministic: the same inputs give the same
//! assignment whatever order the IdP sent its calls in.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Assignment;
use crate::integration::IntegrationConfig;
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

/// An explicit role from the configured attribute. For core `roles`, the element's `value`
/// (Entra may nest a JSON document there); empty strings are no role.
fn explicit_role(doc: &Map<String, Value>, attribute: &str) -> Option<String> {
    let v = extract(doc, attribute)?;
    let v = match v {
        Value::Object(o) => get_ci(&o, "value")?.clone(),
        other => other,
    };
    let s = match v {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    // Entra can send `{"id": "...", "value": "Admin"}` as the role's value text.
    let s = match serde_json::from_str::<Value>(&s) {
        Ok(Value::Object(o)) => get_ci(&o, "value").and_then(Value::as_str).map(str::to_string).unwrap_or(s),
        _ => s,
    };
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The effective assignment. `group_names` are the displayNames of the groups the user is a
/// member of (only role-mapped ones matter).
pub fn effective(doc: &Map<String, Value>, group_names: &[String], cfg: &IntegrationConfig) -> Assignment {
    let active = !matches!(doc.get("active"), Some(Value::Bool(false)));
    let role = cfg
        .roles
        .attribute
        .as_deref()
        .and_then(|a| explicit_role(doc, a))
        .or_else(|| {
            group_names
                .iter()
                .filter_map(|g| cfg.roles.group_role(g))
                // Highest priority wins; ties go to the role name, so the result never depends on order.
                .max_by(|a, b| a.priority.cmp(&b.priority).then_with(|| b.role.cmp(&a.role)))
                .map(|g| g.role.clone())
        })
        .or_else(|| cfg.roles.default.clone());
    let attributes: BTreeMap<String, Value> =
        cfg.attributes.iter().filter_map(|m| extract(doc, m.path()).map(|v| (m.name().to_string(), v))).collect();
    Assignment { active, role, attributes }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn explicit_role_wins_over_groups() {
        let c = cfg(Some("roles"), None);
        let d = doc(json!({"userName": "u", "roles": [{"value": "viewer"}, {"value": "owner", "primary": true}]}));
        assert_eq!(effective(&d, &["CRM Admins".into()], &c).role.as_deref(), Some("owner"));
        let d = doc(json!({"userName": "u", "roles": [{"value": "{\"id\":\"1\",\"value\":\"Admin\"}"}]}));
        assert_eq!(effective(&d, &[], &c).role.as_deref(), Some("Admin"), "Entra JSON-in-value");
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
