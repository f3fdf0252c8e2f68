//! The app's role catalog and the one rule that turns what the IdP says into a user's roles
//! (docs/contract.md "App roles (catalog)"). Every source counts alike: explicit `roles` values
//! (single or multi-valued, Entra's JSON-in-a-string values), Okta's `entitlements` of type
//! `Role`, and role-mapped groups. The user's role set is what the IdP's current state says, so
//! Entra's add-only role PATCHes converge once the stale value is removed, and in `highest`
//! mode the highest-priority role wins whatever the order of the values.

use serde::{Deserialize, Serialize};

use crate::scim::text::fold;

/// One role of the app (`roles.catalog[]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleDef {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An Okta entitlement type beside roles (`roles.entitlement_types[]`): offered to the IdP as
/// its own resource type at `endpoint`, its `values` listed there; a user's `entitlements` of
/// this `type` reach the connector as `"entitlements": { "<name>": [values] }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntitlementType {
    pub name: String,
    /// `/Licenses`: a slash and letters or digits.
    pub endpoint: String,
    #[serde(default)]
    pub values: Vec<RoleDef>,
}

impl EntitlementType {
    /// The catalog spelling of `value` (compared as text folds), if the type lists it.
    pub fn canonical(&self, value: &str) -> Option<&str> {
        let key = fold(value, false);
        self.values.iter().find(|v| fold(&v.value, false) == key).map(|v| v.value.as_str())
    }
}

/// What the connector receives (`roles.mode`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RolesMode {
    /// `role` is the highest-priority role the user holds.
    #[default]
    Highest,
    /// `roles` is every role the user holds, highest first; `role` the highest.
    All,
}

/// A user's roles as the rule decides them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decided {
    /// The highest-priority role, else the default.
    pub role: Option<String>,
    /// `all` mode: every role held, highest first (empty in `highest` mode).
    pub roles: Vec<String>,
    /// Values the IdP sent that the catalog does not hold, as sent (shown on the job).
    pub ignored: Vec<String>,
}

/// A candidate role: where it stands when roles are ranked.
struct Held {
    value: String,
    priority: i64,
    /// Among equal priorities: explicit values in the IdP's order, then groups by name.
    order: usize,
}

/// The catalog the rule ranks by: the configured one; without it, the group mappings' roles and
/// the default (so integrations saved before catalogs existed keep working), where an explicit
/// value outside it is still accepted, below every mapped role.
pub struct Catalog<'a> {
    configured: &'a [RoleDef],
    derived: Vec<(String, i64)>,
}

impl<'a> Catalog<'a> {
    pub fn new(configured: &'a [RoleDef], group_roles: &[(&str, i64)], default: Option<&str>) -> Self {
        let mut derived: Vec<(String, i64)> = Vec::new();
        for (role, priority) in group_roles {
            match derived.iter_mut().find(|(v, _)| fold(v, false) == fold(role, false)) {
                Some(entry) => entry.1 = entry.1.max(*priority),
                None => derived.push((role.to_string(), *priority)),
            }
        }
        if let Some(d) = default
            && !derived.iter().any(|(v, _)| fold(v, false) == fold(d, false))
        {
            // Below every mapped role, above an unknown explicit value (i64::MIN).
            let lowest = derived.iter().map(|(_, p)| *p).min().map_or(0, |p| p.saturating_sub(10));
            derived.push((d.to_string(), lowest));
        }
        Catalog { configured, derived }
    }

    pub fn is_configured(&self) -> bool {
        !self.configured.is_empty()
    }

    /// The catalog's spelling and priority of `value` (compared as text folds, NFC + lowercase).
    /// Without a configured catalog, an unknown value ranks below every known one.
    fn rank(&self, value: &str) -> Option<(String, i64)> {
        let key = fold(value, false);
        if self.is_configured() {
            return self
                .configured
                .iter()
                .find(|r| fold(&r.value, false) == key)
                .map(|r| (r.value.clone(), r.priority));
        }
        Some(
            self.derived
                .iter()
                .find(|(v, _)| fold(v, false) == key)
                .map(|(v, p)| (v.clone(), *p))
                .unwrap_or_else(|| (value.to_string(), i64::MIN)),
        )
    }

    /// The entries the IdP is offered (`/Roles`): the configured catalog, else the derived one.
    pub fn entries(&self) -> Vec<RoleDef> {
        if self.is_configured() {
            return self.configured.to_vec();
        }
        self.derived
            .iter()
            .map(|(v, p)| RoleDef { value: v.clone(), display: None, priority: *p, description: None })
            .collect()
    }
}

/// The rule. `explicit` are the values the user's resource carries (in the IdP's order, primary
/// first); `groups` the roles of the user's role-mapped groups, as (role, group name).
pub fn decide(
    catalog: &Catalog,
    mode: RolesMode,
    explicit: &[String],
    groups: &[(&str, &str)],
    default: Option<&str>,
) -> Decided {
    let mut held: Vec<Held> = Vec::new();
    let mut ignored = Vec::new();
    let mut sorted_groups: Vec<&(&str, &str)> = groups.iter().collect();
    sorted_groups.sort_by(|a, b| fold(a.1, false).cmp(&fold(b.1, false)));
    let sources = explicit.iter().map(String::as_str).chain(sorted_groups.iter().map(|(role, _)| *role));
    for (order, value) in sources.enumerate() {
        match catalog.rank(value) {
            Some((value, priority)) => {
                if !held.iter().any(|h| h.value == value) {
                    held.push(Held { value, priority, order });
                }
            }
            None => {
                if !ignored.iter().any(|v: &String| v == value) {
                    ignored.push(value.to_string());
                }
            }
        }
    }
    held.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.order.cmp(&b.order)));
    let mut values: Vec<String> = held.into_iter().map(|h| h.value).collect();
    if values.is_empty()
        && let Some(d) = default
    {
        values.push(catalog.rank(d).map(|(v, _)| v).unwrap_or_else(|| d.to_string()));
    }
    let role = values.first().cloned();
    let roles = if mode == RolesMode::All { values } else { Vec::new() };
    Decided { role, roles, ignored }
}

/// A role value as an IdP sends it: trimmed; Entra's `{"id": …, "value": "Admin"}` text gives
/// its inner `value`. Empty text is no role.
pub fn role_text(raw: &str) -> Option<String> {
    let text = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(o)) => o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("value"))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| raw.to_string()),
        _ => raw.to_string(),
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
