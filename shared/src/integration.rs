//! An integration's configuration (docs/contract.md "Integration configuration"), typed. Stored as JSON on the integration row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::assignment::rules::{AttributeMapping, GroupRole, RolesConfig};
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
    /// Its SCIM requests per second and burst (docs/operations.md "Limits").
    #[serde(default)]
    pub limits: crate::limits::Limits,
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

impl<'a> From<&'a IntegrationConfig> for crate::assignment::rules::Rules<'a> {
    fn from(c: &'a IntegrationConfig) -> Self {
        Self { roles: &c.roles, attributes: &c.attributes }
    }
}

impl IntegrationConfig {
    pub fn callback_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.callback_timeout_seconds.unwrap_or(DEFAULT_CALLBACK_TIMEOUT_SECONDS))
    }
}

fn default_attributes() -> Vec<AttributeMapping> {
    vec![AttributeMapping::Path("userName".into())]
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
        cfg.limits.check().map_err(ScimError::invalid_value)?;
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
