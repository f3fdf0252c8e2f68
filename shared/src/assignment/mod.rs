//! A user's effective assignment in the integrated app, and the diff between two of them.
//! Pure logic: no AWS types.

pub mod diff;
pub mod drift;
pub mod effective;
pub mod roles;
pub mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the app should hold for a user (docs/contract.md "Assignment JSON"):
/// `{ "active": true, "role": "admin" | null, "attributes": { "<name>": value } }`, plus
/// `"roles": [...]` in the catalog's `all` mode. A user unknown to the app is `None` (`null`
/// on the wire).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Assignment {
    pub active: bool,
    pub role: Option<String>,
    /// `roles.mode: "all"`: every role the user holds, highest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    /// Entitlements by configured type (`roles.entitlement_types`), values sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entitlements: BTreeMap<String, Vec<String>>,
    /// Role values the IdP sent that the catalog does not hold (entitlements as `type:value`):
    /// shown on the job, never sent as a role, and no part of the comparison (a change of them
    /// alone makes no job).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_roles: Vec<String>,
}

/// What the app holds: `ignored_roles` is only a note for Activity.
impl PartialEq for Assignment {
    fn eq(&self, other: &Self) -> bool {
        self.active == other.active
            && self.role == other.role
            && self.roles == other.roles
            && self.attributes == other.attributes
            && self.entitlements == other.entitlements
    }
}

/// Longest attribute value, in characters of its JSON, that a job row keeps for Activity.
pub const SHOWN_VALUE_CHARS: usize = 256;

impl Assignment {
    /// The assignment as a job row keeps it for Activity: a value longer than
    /// [`SHOWN_VALUE_CHARS`] becomes its first characters and its length, so a job row stays
    /// small whatever the user carries (the worker reads the full state from the assignment
    /// rows, never from here).
    pub fn shown(&self) -> Assignment {
        let attributes = self
            .attributes
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
                    other => std::borrow::Cow::Owned(other.to_string()),
                };
                let chars = text.chars().count();
                let shown = if chars > SHOWN_VALUE_CHARS {
                    let head: String = text.chars().take(64).collect();
                    Value::String(format!("{head}… ({chars} characters)"))
                } else {
                    value.clone()
                };
                (name.clone(), shown)
            })
            .collect();
        Assignment {
            active: self.active,
            role: self.role.clone(),
            roles: self.roles.clone(),
            attributes,
            entitlements: self.entitlements.clone(),
            ignored_roles: self.ignored_roles.clone(),
        }
    }
}

/// What a connector does to take the app from one assignment to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create the user in the app (it had none).
    Provision,
    /// Change role or attributes of an active user.
    Update,
    /// Disable the user (not a delete: `active=false`).
    Deactivate,
    /// Enable a disabled user again, with its current role and attributes.
    Reactivate,
    /// Remove the user from the app (SCIM DELETE).
    Deprovision,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Provision => "provision",
            Action::Update => "update",
            Action::Deactivate => "deactivate",
            Action::Reactivate => "reactivate",
            Action::Deprovision => "deprovision",
        }
    }
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn long_values_are_cut_for_activity_and_short_ones_kept() {
        let mut a = Assignment { active: true, role: Some("admin".into()), ..Default::default() };
        a.attributes.insert("title".into(), Value::String("é".repeat(200_000)));
        a.attributes.insert("email".into(), Value::String("ada@example.com".into()));
        a.attributes.insert("tags".into(), Value::Array(vec![Value::String("x".repeat(300))]));
        let shown = a.shown();
        assert_eq!(shown.attributes["email"], "ada@example.com");
        assert_eq!(shown.attributes["title"], format!("{}… (200000 characters)", "é".repeat(64)));
        assert!(shown.attributes["tags"].as_str().unwrap().ends_with("(304 characters)"));
        assert_eq!((shown.active, shown.role.as_deref()), (true, Some("admin")));
        assert!(serde_json::to_string(&shown).unwrap().len() < 1024);
    }
}
