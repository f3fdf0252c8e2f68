//! A user's effective assignment in the integrated app, and the diff between two of them.
//! Pure logic: no AWS types.

pub mod diff;
pub mod effective;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the app should hold for a user (docs/contract.md "Assignment JSON"):
/// `{ "active": true, "role": "admin" | null, "attributes": { "<name>": value } }`.
/// A user unknown to the app is `None` (`null` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub active: bool,
    pub role: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
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
