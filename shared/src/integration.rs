//! An integration's configuration (docs/contract.md "Integration configuration"), typed. Stored as JSON on the integration row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assignment::roles::{Catalog, EntitlementType, RoleDef, RolesMode};
use crate::connector::ConnectorConfig;
use crate::error::{ScimError, ScimResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrationConfig {
    pub name: String,
    pub connector: ConnectorConfig,
    #[serde(default)]
    pub roles: RolesConfig,
    /// The user attributes the app cares about; only these count for diffs.
    #[serde(default = "default_attributes")]
    pub attributes: Vec<AttributeMapping>,
    /// How long a webhook job answered `202` may wait for its callback before it fails
    /// (docs/contract.md "Webhook delivery and callbacks"; default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_timeout_seconds: Option<u64>,
    /// Lets the connector reach private address ranges (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7): an app inside the operator's network (docs/contract.md
    /// "Outbound calls"). Link-local and metadata addresses stay refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private_network: bool,
    /// A resync on a schedule, run by the sweeper (docs/contract.md "Resync and drift"). Off
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<ResyncSchedule>,
    /// Where to POST a signed notice of a failure (docs/contract.md "Failure notifications").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyConfig>,
}

/// `notify: { "url", "secret" }`: the secret keys the HMAC signature (as webhook deliveries
/// are signed) and is shown as `***` when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub url: String,
    pub secret: String,
}

/// `resync: { "every_hours": N, "mode": "report" | "correct" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncSchedule {
    pub every_hours: u32,
    #[serde(default = "default_resync_mode")]
    pub mode: String,
}

fn default_resync_mode() -> String {
    "report".to_string()
}

/// Default of `callback_timeout_seconds`.
pub const DEFAULT_CALLBACK_TIMEOUT_SECONDS: u64 = 3600;

impl IntegrationConfig {
    pub fn callback_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.callback_timeout_seconds.unwrap_or(DEFAULT_CALLBACK_TIMEOUT_SECONDS))
    }
}

fn default_attributes() -> Vec<AttributeMapping> {
    vec![AttributeMapping::Path("userName".into())]
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
    fn check(&self) -> ScimResult<()> {
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

impl IntegrationConfig {
    /// Parses and checks a configuration; every problem is a 400 with a clear detail.
    pub fn from_json(v: Value) -> ScimResult<Self> {
        let cfg: IntegrationConfig = serde_json::from_value(v)
            .map_err(|e| ScimError::invalid_value(format!("invalid integration configuration: {e}")))?;
        if cfg.name.trim().is_empty() || cfg.name.len() > 200 {
            return Err(ScimError::invalid_value("'name' must be a non-empty string of at most 200 characters"));
        }
        for m in &cfg.attributes {
            crate::scim::filter::parse_patch_path(m.path())
                .map_err(|e| ScimError::invalid_value(format!("attribute '{}': {}", m.path(), e.detail)))?;
        }
        if let Some(a) = &cfg.roles.attribute {
            crate::scim::filter::parse_patch_path(a)
                .map_err(|e| ScimError::invalid_value(format!("roles.attribute '{a}': {}", e.detail)))?;
        }
        for g in &cfg.roles.groups {
            if g.group.trim().is_empty() || g.role.trim().is_empty() {
                return Err(ScimError::invalid_value("each roles.groups entry needs a 'group' and a 'role'"));
            }
        }
        cfg.roles.check()?;
        if cfg.callback_timeout_seconds.is_some_and(|t| !(1..=7 * 24 * 3600).contains(&t)) {
            return Err(ScimError::invalid_value("'callback_timeout_seconds' must be between 1 and 604800 (7 days)"));
        }
        if let Some(r) = &cfg.resync {
            if !(1..=24 * 366).contains(&r.every_hours) {
                return Err(ScimError::invalid_value("resync.every_hours must be from 1 to 8784 (a year)"));
            }
            if r.mode != "report" && r.mode != "correct" {
                return Err(ScimError::invalid_value("resync.mode must be \"report\" or \"correct\""));
            }
        }
        if let Some(n) = &cfg.notify {
            if reqwest::Url::parse(&n.url).is_err() {
                return Err(ScimError::invalid_value("notify.url: must be an absolute https URL"));
            }
            if n.secret.chars().count() < 16 {
                return Err(ScimError::invalid_value("notify.secret: must be at least 16 characters"));
            }
        }
        if let Some(reference) = cfg.connector.secret_ref() {
            crate::secrets::SecretRef::parse(reference)
                .map_err(|e| ScimError::invalid_value(format!("connector.secret_ref: {e}")))?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_secret_ref(reference: &str) -> Value {
        json!({
            "name": "App",
            "connector": {"type": "webhook", "url": "https://robot.example/hook", "secret_ref": reference},
            "roles": {"attribute": "roles", "groups": [], "default": null},
            "attributes": ["userName"],
        })
    }

    #[test]
    fn a_secret_ref_is_checked_when_the_integration_is_saved() {
        assert!(IntegrationConfig::from_json(with_secret_ref("ssm:/idlcm/connectors/robot")).is_ok());
        assert!(IntegrationConfig::from_json(with_secret_ref("secretsmanager:idlcm/robot#key")).is_ok());
        for bad in ["vault:robot", "arn:aws:ssm:eu-west-1:1:parameter/x", "env:AWS_SECRET_ACCESS_KEY"] {
            let err = IntegrationConfig::from_json(with_secret_ref(bad)).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.detail.starts_with("connector.secret_ref: "), "{bad}: {}", err.detail);
        }
    }
}
