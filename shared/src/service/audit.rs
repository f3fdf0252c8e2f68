//! Who calls the admin API, what they may reach, and the audit trail of what they did
//! (docs/contract.md "Owners and audit").

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::Reply;
use crate::error::{ScimError, ScimResult};
use crate::store::audit::AuditRow;
use crate::store::plan::Write;
use crate::store::{Item, Store, keys};

/// The caller of an admin route: the admin, or an owner of some integrations.
#[derive(Debug, Clone, PartialEq)]
pub enum Actor {
    Admin,
    Owner { id: String, name: String, integrations: Vec<String> },
}

impl Actor {
    /// Whether the caller may reach this integration (an owner: only its own).
    pub fn may_reach(&self, iid: &str) -> bool {
        match self {
            Actor::Admin => true,
            Actor::Owner { integrations, .. } => integrations.iter().any(|i| i == iid),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Actor::Admin)
    }

    /// `{ "kind", "id", "name" }` as entries and `GET /admin/me` show it.
    pub fn json(&self) -> Value {
        match self {
            Actor::Admin => json!({ "kind": "admin", "id": null, "name": "admin" }),
            Actor::Owner { id, name, .. } => json!({ "kind": "owner", "id": id, "name": name }),
        }
    }

    /// Refuses what only the admin may do (403; an owner knows the route exists).
    pub fn require_admin(&self) -> ScimResult<()> {
        if self.is_admin() { Ok(()) } else { Err(ScimError::new(403, None, "only the admin token may do this")) }
    }

    /// An integration the caller may not reach is "not found", as if it did not exist.
    pub fn require_reach(&self, iid: &str) -> ScimResult<()> {
        if self.may_reach(iid) { Ok(()) } else { Err(ScimError::not_found("no such integration")) }
    }
}

/// The differences between two JSON documents as `{ "<dotted path>": { "before", "after" } }`:
/// objects are walked key by key, anything else (arrays included) compared whole. Pure.
pub fn changes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Map<String, Value>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut names: Vec<&String> = b.keys().chain(a.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let sub = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                walk(&sub, b.get(name).unwrap_or(&Value::Null), a.get(name).unwrap_or(&Value::Null), out);
            }
        }
        (b, a) if b != a => {
            let key = if path.is_empty() { "$".to_string() } else { path.to_string() };
            out.insert(key, json!({ "before": b, "after": a }));
        }
        _ => {}
    }
}

/// An entry for an action, to commit with it (or on its own with [`record`]).
pub fn entry(store: &Store, actor: &Actor, action: &str, iid: Option<&str>, changes: Map<String, Value>) -> AuditRow {
    AuditRow::new(store, &super::now(), actor.json().to_string(), action, iid, Value::Object(changes).to_string())
}

/// Records an action that was not one transaction (a retry, a resync, a role import): after
/// it succeeded. A failure to record is logged and counted, and the action's answer stands.
pub async fn record(store: &Store, actor: &Actor, action: &str, iid: Option<&str>, changes: Map<String, Value>) {
    let row = entry(store, actor, action, iid, changes);
    if let Err(e) = store.commit(&[Write::Audit(Box::new(row))]).await {
        tracing::error!(action, error = %e, "audit entry not written");
        crate::metrics::emit(&[], &[("AuditWriteFailed", crate::metrics::Unit::Count, 1.0)]);
    }
}

fn encode_cursor(key: Option<Item>) -> Value {
    let Some(key) = key else { return Value::Null };
    let map: HashMap<String, String> =
        key.into_iter().filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.clone()))).collect();
    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&map).unwrap_or_default()))
}

/// A cursor is a position in the listing it came from: another listing's is refused.
fn decode_cursor(cursor: Option<&str>, integration: Option<&str>) -> ScimResult<Option<Item>> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || ScimError::invalid_value("invalid cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let map: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let ok = match integration {
        Some(iid) => map.get(keys::PK).is_some_and(|pk| *pk == keys::integration_pk(iid)) && map.len() == 2,
        None => map.get(keys::GSI1_PK).map(String::as_str) == Some(keys::AUDIT_PK),
    };
    if !ok || map.keys().any(|k| ![keys::PK, keys::SK, keys::GSI1_PK, keys::GSI1_SK].contains(&k.as_str())) {
        return Err(bad());
    }
    Ok(Some(map.into_iter().map(|(k, v)| (k, crate::store::s(v))).collect()))
}

/// `GET /admin/audit?integration=&cursor=&limit=`: newest first. An owner sees its
/// integrations' entries only (another integration is 404 to it).
pub async fn list(
    store: &Store,
    actor: &Actor,
    integration: Option<&str>,
    cursor: Option<&str>,
    limit: Option<&str>,
) -> ScimResult<Reply> {
    let limit = match limit.filter(|l| !l.is_empty()) {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=200).contains(l))
            .ok_or_else(|| ScimError::invalid_value("limit must be an integer from 1 to 200"))?,
    };
    let integration = integration.filter(|i| !i.is_empty());
    if let Some(iid) = integration {
        actor.require_reach(iid)?;
    }
    let only = match (actor, integration) {
        (Actor::Owner { integrations, .. }, None) => Some(integrations.as_slice()),
        _ => None,
    };
    let start = decode_cursor(cursor, integration)?;
    let (rows, next) = store.audit_page(integration, only, start, limit).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "at": r.at,
                "actor": serde_json::from_str::<Value>(&r.actor).unwrap_or(Value::Null),
                "action": r.action,
                "integration_id": r.integration_id,
                "changes": serde_json::from_str::<Value>(&r.changes).unwrap_or_else(|_| json!({})),
            })
        })
        .collect();
    Ok(Reply::json(200, json!({ "items": items, "next_cursor": encode_cursor(next) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_every_differing_path() {
        let before = json!({"name": "A", "connector": {"type": "http", "secret": "***"}, "roles": {"groups": [1]}});
        let after = json!({"name": "B", "connector": {"type": "http", "secret": "***", "base_url": "x"}, "roles": {"groups": [1, 2]}});
        let c = changes(&before, &after);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["connector.base_url", "name", "roles.groups"]);
        assert_eq!(c["name"], json!({"before": "A", "after": "B"}));
        assert_eq!(c["connector.base_url"], json!({"before": null, "after": "x"}));
        assert!(changes(&before, &before).is_empty());
        assert_eq!(changes(&Value::Null, &json!(1))["$"], json!({"before": null, "after": 1}));
    }

    #[test]
    fn owners_reach_their_integrations_only() {
        let owner = Actor::Owner { id: "o1".into(), name: "Ops".into(), integrations: vec!["i1".into()] };
        assert!(owner.may_reach("i1") && !owner.may_reach("i2"));
        assert_eq!(owner.require_reach("i2").unwrap_err().status, 404);
        assert_eq!(owner.require_admin().unwrap_err().status, 403);
        assert!(Actor::Admin.may_reach("anything") && Actor::Admin.require_admin().is_ok());
        assert_eq!(owner.json(), json!({"kind": "owner", "id": "o1", "name": "Ops"}));
    }
}
