//! Drift: what the app really holds for a user, set against what the IdP says it should hold
//! (docs/contract.md "Resync and drift"). Pure: the resync pages read the app through the
//! connector, and these rules decide who differs, how, and which accounts nobody manages.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Assignment;
use super::diff::{Change, diff};

/// One account as the app lists it. A field the app (or the connector's configuration) does
/// not report is `None` (or absent from `attributes`) and is never counted as a difference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppAccount {
    /// The app's id of the account.
    pub id: String,
    /// What matches it to a user when idlcm has no app id for them: an email or user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `Some(None)`: the app reports the account has no role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
}

/// One page of the app's accounts and the cursor of the next (`None`: the last page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountPage {
    pub accounts: Vec<AppAccount>,
    pub next: Option<String>,
}

/// The app's state in the terms of an assignment: what the account reports, and for what it
/// does not report, the desired value (so it cannot count as a difference). Values that differ
/// only in letter case (a role, an email) count as the same.
pub fn observed(desired: Option<&Assignment>, account: &AppAccount) -> Assignment {
    let mut seen = desired.cloned().unwrap_or_default();
    seen.ignored_roles.clear();
    match account.active {
        Some(active) => seen.active = active,
        None if desired.is_none() => seen.active = true, // an account that exists counts as there
        None => {}
    }
    if let Some(role) = &account.role {
        let same = match (role, &seen.role) {
            (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
            (None, None) => true,
            _ => false,
        };
        if !same {
            seen.role = role.clone();
            // `roles` mode: the app reports one role, so that is the whole list it holds.
            if !seen.roles.is_empty() {
                seen.roles = role.iter().cloned().collect();
            }
        }
    }
    for (name, value) in &account.attributes {
        let want = seen.attributes.get(name);
        if !want.is_some_and(|w| same_value(w, value)) {
            seen.attributes.insert(name.clone(), value.clone());
        }
    }
    seen
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => {
            a.trim() == b.trim() || (a.contains('@') && a.trim().eq_ignore_ascii_case(b.trim()))
        }
        (Value::Null, Value::String(s)) | (Value::String(s), Value::Null) => s.is_empty(),
        _ => a == b,
    }
}

/// A managed user whose app account differs from the desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// What the app holds (`None`: no account).
    pub actual: Option<Assignment>,
    /// What it takes to bring the app to the desired state.
    pub change: Change,
}

/// Compares a user's desired assignment (`None`: deprovisioned) with their app account
/// (`None`: the app has none). `None` when they agree, as far as the app reports.
pub fn compare(desired: Option<&Assignment>, account: Option<&AppAccount>) -> Option<Drift> {
    let actual = account.map(|a| observed(desired, a));
    diff(actual.as_ref(), desired).map(|change| Drift { actual, change })
}

/// What a resync re-delivers when the app cannot be read (a webhook robot): the desired state
/// as an update (or a deactivation), whatever idlcm last sent. A deprovisioned user is left.
pub fn redeliver(desired: Option<&Assignment>) -> Option<Change> {
    let desired = desired?;
    let action = if desired.active { super::Action::Update } else { super::Action::Deactivate };
    Some(Change { action, changed: Vec::new() })
}

/// Finds users' accounts in a snapshot of the app: by the app id idlcm recorded, else by a
/// match key (user name or email, any letter case). Remembers which accounts were matched, so
/// the rest are the app's unmanaged accounts.
#[derive(Debug, Default)]
pub struct Matcher<'a> {
    by_id: HashMap<&'a str, &'a AppAccount>,
    by_key: HashMap<String, &'a AppAccount>,
}

impl<'a> Matcher<'a> {
    pub fn new(accounts: &'a [AppAccount]) -> Self {
        let mut m = Matcher::default();
        for a in accounts {
            m.by_id.insert(a.id.as_str(), a);
            if let Some(k) = a.key.as_deref().map(normalize_key).filter(|k| !k.is_empty()) {
                m.by_key.entry(k).or_insert(a);
            }
        }
        m
    }

    /// The user's account: `app_id` first; without one, the first key that matches.
    pub fn find<'k>(&self, app_id: Option<&str>, keys: impl IntoIterator<Item = &'k str>) -> Option<&'a AppAccount> {
        if let Some(id) = app_id {
            return self.by_id.get(id).copied();
        }
        keys.into_iter().find_map(|k| self.by_key.get(&normalize_key(k)).copied())
    }
}

/// The keys a SCIM user may be known by in an app: its `userName` and its emails.
pub fn user_keys(user: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = user.get("userName").and_then(Value::as_str).into_iter().collect();
    if let Some(emails) = user.get("emails").and_then(Value::as_array) {
        keys.extend(emails.iter().filter_map(|e| e.get("value").and_then(Value::as_str)));
    }
    keys
}

fn normalize_key(k: &str) -> String {
    k.trim().to_lowercase()
}

/// The accounts of a snapshot that no managed user matched, in the app's order.
pub fn unmanaged<'a>(accounts: &'a [AppAccount], matched: &HashSet<String>) -> Vec<&'a AppAccount> {
    accounts.iter().filter(|a| !matched.contains(&a.id)).collect()
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod tests;
