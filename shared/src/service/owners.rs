//! The admin API's owners (docs/contract.md "Owners and audit"): created, changed, rotated and
//! revoked by the admin only; each change is committed with its audit entry.

use serde_json::{Map, Value, json};

use super::Reply;
use super::audit::{self, Actor};
use crate::auth;
use crate::error::{ScimError, ScimResult};
use crate::store::Store;
use crate::store::owners::OwnerRecord;
use crate::store::plan::Write;

fn owner_json(o: &OwnerRecord) -> Value {
    json!({ "id": o.id, "name": o.name, "integrations": o.integrations, "created": o.created })
}

/// `{ "name", "integrations": [id, …] }`, every integration existing.
async fn parse(store: &Store, body: &Value) -> ScimResult<(String, Vec<String>)> {
    let name = body.get("name").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ScimError::invalid_value("name: a non-empty string of at most 200 characters"));
    }
    let Some(list) = body.get("integrations").and_then(Value::as_array) else {
        return Err(ScimError::invalid_value("integrations: an array of integration ids"));
    };
    let mut ids = Vec::new();
    for v in list {
        let Some(id) = v.as_str().filter(|id| crate::store::keys::is_resource_id(&id.to_uppercase())) else {
            return Err(ScimError::invalid_value(format!("integrations: {v} is not an integration id")));
        };
        if store.get_integration(id).await?.is_none() {
            return Err(ScimError::invalid_value(format!("integrations: no integration '{id}'")));
        }
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    if ids.len() > 100 {
        return Err(ScimError::invalid_value("integrations: at most 100"));
    }
    Ok((name.to_string(), ids))
}

fn cancelled(e: crate::store::StoreError) -> ScimError {
    match e {
        crate::store::StoreError::Cancelled(_) => {
            ScimError::new(409, None, "the owner changed meanwhile; read it again")
        }
        other => other.into(),
    }
}

async fn load(store: &Store, id: &str) -> ScimResult<OwnerRecord> {
    store.get_owner(id).await?.ok_or_else(|| ScimError::not_found("no such owner"))
}

/// `POST /admin/owners`: 201 `{ "id", "name", "integrations", "created", "token" }`; the token
/// is shown once and stored as its hash.
pub async fn create(store: &Store, actor: &Actor, body: &Value) -> ScimResult<Reply> {
    actor.require_admin()?;
    let (name, integrations) = parse(store, body).await?;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let token = auth::new_token();
    let owner = OwnerRecord::new(&id, &name, integrations, auth::hash_token(&token), &super::now());
    let changes = audit::changes(&Value::Null, &owner_json(&owner));
    let entry = audit::entry(store, actor, "owner.create", None, changes);
    store.create_owner(&owner, vec![Write::Audit(Box::new(entry))]).await?;
    tracing::info!(owner_id = %id, "owner created");
    let mut body = owner_json(&owner);
    body["token"] = json!(token);
    Ok(Reply::json(201, body))
}

/// `GET /admin/owners`.
pub async fn list(store: &Store, actor: &Actor) -> ScimResult<Reply> {
    actor.require_admin()?;
    let owners = store.list_owners().await?;
    Ok(Reply::json(200, json!({ "items": owners.iter().map(owner_json).collect::<Vec<_>>() })))
}

/// `GET /admin/owners/{id}`.
pub async fn get(store: &Store, actor: &Actor, id: &str) -> ScimResult<Reply> {
    actor.require_admin()?;
    Ok(Reply::json(200, owner_json(&load(store, id).await?)))
}

/// `PUT /admin/owners/{id}`: a new name and set of integrations, effective at once.
pub async fn update(store: &Store, actor: &Actor, id: &str, body: &Value) -> ScimResult<Reply> {
    actor.require_admin()?;
    let old = load(store, id).await?;
    let (name, integrations) = parse(store, body).await?;
    let mut new = old.clone();
    new.name = name.clone();
    new.integrations = integrations.clone();
    let entry = audit::entry(store, actor, "owner.update", None, audit::changes(&owner_json(&old), &owner_json(&new)));
    store.update_owner(&old, &name, &integrations, vec![Write::Audit(Box::new(entry))]).await.map_err(cancelled)?;
    Ok(Reply::json(200, owner_json(&new)))
}

/// `DELETE /admin/owners/{id}`: the owner and its token are gone at once.
pub async fn revoke(store: &Store, actor: &Actor, id: &str) -> ScimResult<Reply> {
    actor.require_admin()?;
    let old = load(store, id).await?;
    let entry = audit::entry(store, actor, "owner.revoke", None, audit::changes(&owner_json(&old), &Value::Null));
    store.delete_owner(&old, vec![Write::Audit(Box::new(entry))]).await.map_err(cancelled)?;
    tracing::info!(owner_id = %id, "owner revoked");
    Ok(Reply::no_content())
}

/// `POST /admin/owners/{id}/token`: a new token (shown once); the old one stops at once.
pub async fn rotate(store: &Store, actor: &Actor, id: &str) -> ScimResult<Reply> {
    actor.require_admin()?;
    let old = load(store, id).await?;
    let token = auth::new_token();
    let mut changes = Map::new();
    changes.insert("token".into(), json!({ "before": "***", "after": "*** (new)" }));
    let entry = audit::entry(store, actor, "owner.token.rotate", None, changes);
    store
        .rotate_owner_token(&old, &auth::hash_token(&token), vec![Write::Audit(Box::new(entry))])
        .await
        .map_err(cancelled)?;
    Ok(Reply::json(201, json!({ "id": old.id, "token": token })))
}
