//! The rules that turn a user into an effective assignment, as an integration configures them:
//! where roles come from (`roles`) and which attributes the app cares about (`attributes`).
//! Part of an integration's configuration (`crate::integration`), kept here so that the
//! assignment rules need nothing above them (docs/architecture.md "Layering and style").

use serde::{Deserialize, Serialize};

use super::roles::{Catalog, EntitlementType, RoleDef, RolesMode};
use crate::error::{ScimError, ScimResult};

/// What [`super::effective::effective`] reads of an integration's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub roles: &'a RolesConfig,
    pub attributes: &'a [AttributeMapping],
}

/// Where a user's role comes from (docs/architecture.md "Effective assignment and roles").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RolesConfig {
    /// SCIM path of an explicit role: `roles` (the primary core role, else the only one) or an
    /// extension attribute such as `urn:ietf:params:scim:schemas:extension:idlcm:2.0:User:role`.
    #[serde(default)]
    pub attribute: Option<String>,
    /// Groups (by `displayName`, case-insensitive) that grant a role; the highest priority wins.
    #[serde(default)]
    pub groups: Vec<GroupRole>,
    /// The role of a user with neither an explicit role nor a role-mapped group.
    #[serde(default)]
    pub default: Option<String>,
    /// The app's roles and their priorities (docs/contract.md "App roles (catalog)"). Empty:
    /// the group mappings' roles form it, and explicit values outside it are still accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<RoleDef>,
    /// `highest` (default): the connector gets the highest role; `all`: every role held.
    #[serde(default, skip_serializing_if = "is_highest")]
    pub mode: RolesMode,
    /// Okta entitlement types offered beside `Role` (docs/contract.md "App roles (catalog)").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlement_types: Vec<EntitlementType>,
}

/// Endpoints an entitlement type may not take: SCIM's own.
const RESERVED_ENDPOINTS: &[&str] =
    &["users", "groups", "roles", "schemas", "resourcetypes", "serviceproviderconfig", "bulk", "me", ".search"];

fn is_highest(mode: &RolesMode) -> bool {
    *mode == RolesMode::Highest
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRole {
    pub group: String,
    pub role: String,
    #[serde(default)]
    pub priority: i64,
}

/// A mapped attribute: a SCIM path, optionally renamed for the connector
/// (`"emails[primary eq true].value"` or `{"path": "emails[primary eq true].value", "name": "email"}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AttributeMapping {
    Path(String),
    Named { path: String, name: String },
}

impl AttributeMapping {
    pub fn path(&self) -> &str {
        match self {
            AttributeMapping::Path(p) | AttributeMapping::Named { path: p, .. } => p,
        }
    }
    /// The key in the assignment's `attributes`.
    pub fn name(&self) -> &str {
        match self {
            AttributeMapping::Path(p) => p,
            AttributeMapping::Named { name, .. } => name,
        }
    }
}

impl RolesConfig {
    /// The role a group grants, by its displayName.
    pub fn group_role(&self, display_name: &str) -> Option<&GroupRole> {
        let name = crate::scim::text::fold(display_name, false);
        self.groups.iter().find(|g| crate::scim::text::fold(&g.group, false) == name)
    }

    pub fn is_role_group(&self, display_name: &str) -> bool {
        self.group_role(display_name).is_some()
    }

    /// The catalog the role rule ranks by (the configured one, else the group mappings').
    pub fn catalog(&self) -> Catalog<'_> {
        let group_roles: Vec<(&str, i64)> = self.groups.iter().map(|g| (g.role.as_str(), g.priority)).collect();
        Catalog::new(&self.catalog, &group_roles, self.default.as_deref())
    }

    /// The attribute explicit roles come from: the configured one; with a catalog and none
    /// configured, the core `roles`.
    pub fn explicit_attribute(&self) -> Option<&str> {
        self.attribute.as_deref().or((!self.catalog.is_empty()).then_some("roles"))
    }

    /// Catalog values unique (as text folds); entitlement types well named and unique; with a
    /// configured catalog, every group mapping's role and the default in it.
    pub(crate) fn check(&self) -> ScimResult<()> {
        fn fold(v: &str) -> std::borrow::Cow<'_, str> {
            crate::scim::text::fold(v, false)
        }
        for (i, r) in self.catalog.iter().enumerate() {
            if r.value.trim().is_empty() || r.value.chars().count() > 200 {
                return Err(ScimError::invalid_value(format!(
                    "roles.catalog[{i}].value: a non-empty string of at most 200 characters"
                )));
            }
            if self.catalog[..i].iter().any(|o| fold(&o.value) == fold(&r.value)) {
                return Err(ScimError::invalid_value(format!(
                    "roles.catalog[{i}].value: '{}' is listed twice",
                    r.value
                )));
            }
        }
        for (i, t) in self.entitlement_types.iter().enumerate() {
            let at = format!("roles.entitlement_types[{i}]");
            let name_ok = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok || ["user", "group", "role"].contains(&t.name.to_ascii_lowercase().as_str()) {
                return Err(ScimError::invalid_value(format!(
                    "{at}.name: letters, digits, '_' or '-' (at most 64), and not User, Group or Role"
                )));
            }
            let path = t.endpoint.strip_prefix('/').unwrap_or("");
            if path.is_empty()
                || path.len() > 64
                || !path.chars().all(|c| c.is_ascii_alphanumeric())
                || RESERVED_ENDPOINTS.contains(&path.to_ascii_lowercase().as_str())
            {
                return Err(ScimError::invalid_value(format!(
                    "{at}.endpoint: '/' and letters or digits, not one of SCIM's own endpoints"
                )));
            }
            let earlier = &self.entitlement_types[..i];
            if earlier
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&t.name) || o.endpoint.eq_ignore_ascii_case(&t.endpoint))
            {
                return Err(ScimError::invalid_value(format!("{at}: name or endpoint listed twice")));
            }
            for (j, v) in t.values.iter().enumerate() {
                if v.value.trim().is_empty() || t.values[..j].iter().any(|o| fold(&o.value) == fold(&v.value)) {
                    return Err(ScimError::invalid_value(format!("{at}.values[{j}].value: non-empty and listed once")));
                }
            }
        }
        if self.catalog.is_empty() {
            return Ok(());
        }
        let known = |v: &str| self.catalog.iter().any(|r| fold(&r.value) == fold(v));
        for (i, g) in self.groups.iter().enumerate() {
            if !known(&g.role) {
                return Err(ScimError::invalid_value(format!(
                    "roles.groups[{i}].role: '{}' is not in roles.catalog",
                    g.role
                )));
            }
        }
        if let Some(d) = self.default.as_deref().filter(|d| !known(d)) {
            return Err(ScimError::invalid_value(format!("roles.default: '{d}' is not in roles.catalog")));
        }
        Ok(())
    }
}
