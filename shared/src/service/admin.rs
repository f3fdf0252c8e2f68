//! The admin API: integrations.

use serde_json::{Value, json};

use super::audit::{self, Actor};
use super::{Reply, now, reconfigure};
use crate::auth;
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::queue::Queue;
use crate::store::Store;
use crate::store::integrations::IntegrationRecord;
use crate::store::offboard::OffboardMode;
use crate::store::plan::Write;

/// Checks an integration configuration (docs/contract.md "Integration configuration"); returns its name and the JSON to store
/// (as given: keys added by later versions keep their meaning).
pub fn validate_config(body: Value) -> ScimResult<(String, Value)> {
    parse_config(&body).map(|cfg| (cfg.name.trim().to_string(), body))
}

fn parse_config(body: &Value) -> ScimResult<IntegrationConfig> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    }
    IntegrationConfig::from_json(body.clone())
}

/// [`validate_config`], then what only a save checks (docs/contract.md "Outbound calls"): the
/// connector's URLs against the egress rule, DNS names by what they resolve to now, and its
/// templates compiled. Each fault is a 400 naming the field (`connector.base_url: …`).
pub async fn check_config(body: Value, loopback: bool) -> ScimResult<(String, Value)> {
    let cfg = parse_config(&body)?;
    let policy = crate::connector::Policy { loopback, private: cfg.allow_private_network };
    crate::connector::check_for_save(&cfg.connector, policy).await.map_err(ScimError::invalid_value)?;
    if let Some(n) = &cfg.notify {
        policy.check_url_now(&n.url).await.map_err(|why| ScimError::invalid_value(format!("notify.url: {why}")))?;
    }
    Ok((cfg.name.trim().to_string(), body))
}

/// `POST /admin/integrations`: the token is returned here once and stored only as a hash.
pub async fn create_integration(
    store: &Store,
    actor: &Actor,
    api_url: &str,
    body: Value,
    loopback: bool,
) -> ScimResult<Reply> {
    actor.require_admin()?;
    let (name, config) = check_config(body, loopback).await?;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let token = auth::new_token();
    store.create_integration(&id, &name, &config, auth::hash_token(&token), now()).await?;
    tracing::info!(integration_id = %id, "integration created");
    audit::record(store, actor, "integration.create", Some(&id), audit::changes(&Value::Null, &redacted(&config)))
        .await;
    Ok(Reply::json(
        201,
        json!({ "id": id, "name": name, "scim_base_url": format!("{api_url}/scim/v2/{id}"), "token": token }),
    ))
}

/// The configuration as the admin API shows it: inline secrets and secret-looking header
/// values replaced by `***` (see [`crate::connector::http::header_is_shown`]).
fn redacted(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(secret) = c.get_mut("connector").and_then(|k| k.get_mut("secret")).filter(|s| !s.is_null()) {
        *secret = json!(crate::connector::REDACTED);
    }
    if let Some(secret) = c.get_mut("notify").and_then(|n| n.get_mut("secret")).filter(|s| !s.is_null()) {
        *secret = json!(crate::connector::REDACTED);
    }
    if let Some(headers) = c.get_mut("connector").and_then(|k| k.get_mut("headers")).and_then(Value::as_object_mut) {
        for (name, value) in headers.iter_mut() {
            if !value.as_str().is_some_and(|v| crate::connector::http::header_is_shown(name, v)) {
                *value = json!(crate::connector::REDACTED);
            }
        }
    }
    c
}

/// A header value sent back as `***` (as GET shows it) keeps the stored one.
fn restore_redacted_headers(body: &mut Value, stored: &Value) {
    let Some(headers) = body.get_mut("connector").and_then(|k| k.get_mut("headers")).and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, value) in headers.iter_mut() {
        if value.as_str() == Some(crate::connector::REDACTED)
            && let Some(old) = stored.get("connector").and_then(|k| k.get("headers")).and_then(|h| h.get(name))
        {
            *value = old.clone();
        }
    }
}

/// A token change as the audit trail shows it: the token ids before and after.
fn token_changes(before: &[String], after: &[String]) -> serde_json::Map<String, Value> {
    let ids = |h: &[String]| h.iter().map(|h| token_id(h)).collect::<Vec<_>>();
    audit::changes(&json!({ "tokens": ids(before) }), &json!({ "tokens": ids(after) }))
}

/// Token ids: the first 12 hex digits of the token's hash (enough to name it, useless to use it).
fn token_id(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn integration_json(r: &IntegrationRecord, api_url: &str) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "created": r.created,
        "scim_base_url": format!("{api_url}/scim/v2/{}", r.id),
        "config": redacted(&r.config_json()),
        "tokens": r.token_hashes.iter().map(|h| json!({ "id": token_id(h) })).collect::<Vec<_>>(),
        "offboarding": r.offboarding,
    })
}

async fn load(store: &Store, id: &str) -> ScimResult<IntegrationRecord> {
    store.get_integration(id).await?.ok_or_else(|| ScimError::not_found("no such integration"))
}

/// An integration being offboarded takes no new configuration, token or resync: each could
/// put back in the app what offboarding takes out.
pub fn refuse_while_offboarding(r: &IntegrationRecord) -> ScimResult<()> {
    match &r.offboarding {
        Some(o) => Err(ScimError::new(
            409,
            None,
            format!(
                "the integration is being offboarded (Activity request {}); retry its failed jobs, or delete it without deprovision to purge it now",
                o.request_id
            ),
        )),
        None => Ok(()),
    }
}

/// `GET /admin/integrations`: an owner sees its own only.
pub async fn list_integrations(store: &Store, actor: &Actor, api_url: &str) -> ScimResult<Reply> {
    let all = store.list_integrations().await?;
    let items: Vec<Value> =
        all.iter().filter(|r| actor.may_reach(&r.id)).map(|r| integration_json(r, api_url)).collect();
    Ok(Reply::json(200, json!({ "items": items })))
}

/// `GET /admin/integrations/{id}`.
pub async fn get_integration(store: &Store, actor: &Actor, api_url: &str, id: &str) -> ScimResult<Reply> {
    actor.require_reach(id)?;
    Ok(Reply::json(200, integration_json(&load(store, id).await?, api_url)))
}

/// `PUT /admin/integrations/{id}`: a new configuration. A connector `secret` of `***` (as GET
/// shows it) keeps the stored one. Tokens are untouched. A change to `roles` or `attributes`
/// re-plans every user (`service::reconfigure`): the answer then names the `RECONFIGURE`
/// request as `replan_request_id`. With `dry_run`, nothing is saved or sent: the answer is
/// what the save would change.
pub async fn update_integration(
    store: &Store,
    queue: &Queue,
    actor: &Actor,
    api_url: &str,
    id: &str,
    mut body: Value,
    options: UpdateOptions,
) -> ScimResult<Reply> {
    actor.require_reach(id)?;
    let current = load(store, id).await?;
    refuse_while_offboarding(&current)?;
    if body.get("connector").and_then(|c| c.get("secret")).and_then(Value::as_str) == Some(crate::connector::REDACTED) {
        let stored =
            current.config_json().get("connector").and_then(|c| c.get("secret")).cloned().unwrap_or(Value::Null);
        body["connector"]["secret"] = stored;
    }
    if body.get("notify").and_then(|n| n.get("secret")).and_then(Value::as_str) == Some(crate::connector::REDACTED) {
        let stored = current.config_json().get("notify").and_then(|n| n.get("secret")).cloned().unwrap_or(Value::Null);
        body["notify"]["secret"] = stored;
    }
    restore_redacted_headers(&mut body, &current.config_json());
    let (name, config) = check_config(body, options.loopback).await?;
    let replan = reconfigure::affects_assignments(&current.config_json(), &config);
    if options.dry_run {
        let mut preview = if replan {
            reconfigure::preview(store, queue, id, &IntegrationConfig::from_json(config.clone())?).await?
        } else {
            json!({ "dry_run": true, "users": null, "changes": { "total": 0, "by_action": {} }, "sample": [] })
        };
        preview["replan"] = json!(replan);
        return Ok(Reply::json(200, preview));
    }
    let request_id = if replan {
        Some(reconfigure::save_and_replan(store, queue, id, &name, &config).await?)
    } else {
        if !store.update_integration(id, &name, &config).await? {
            return Err(ScimError::not_found("no such integration"));
        }
        None
    };
    tracing::info!(integration_id = %id, replan = request_id.is_some(), "integration updated");
    let changes = audit::changes(&redacted(&current.config_json()), &redacted(&config));
    audit::record(store, actor, "integration.update", Some(id), changes).await;
    let mut reply = get_integration(store, actor, api_url, id).await?;
    if let (Some(body), Some(request_id)) = (reply.body.as_mut(), request_id) {
        body["replan_request_id"] = json!(request_id);
    }
    Ok(reply)
}

/// How a configuration is saved: loopback connectors allowed (local runs), or only tried.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateOptions {
    pub loopback: bool,
    pub dry_run: bool,
}

/// `DELETE /admin/integrations/{id}`: its SCIM endpoint and tokens stop working at once.
/// With `offboard` every managed user is first deprovisioned or deactivated in the app
/// (`service::offboard`), then the integration is purged; without it the purge starts now and
/// the app is left as it is. The purge removes every row in pages from the queue
/// (`store::purge`); the configuration row, the purge marker, the owners' reach and the audit
/// entry go in one transaction, the entry kept outside the integration's rows so that it
/// outlives them. A delete without `deprovision` also ends an offboarding that failed.
pub async fn delete_integration(
    store: &Store,
    queue: &Queue,
    actor: &Actor,
    id: &str,
    offboard: Option<OffboardMode>,
) -> ScimResult<Reply> {
    actor.require_admin()?;
    let current = load(store, id).await?;
    let changes = audit::changes(&redacted(&current.config_json()), &Value::Null);
    if let Some(mode) = offboard {
        return super::offboard::start(store, queue, actor, id, mode, changes).await;
    }
    let mut entry = audit::entry(store, actor, "integration.delete", Some(id), changes);
    entry.pk = crate::store::keys::AUDIT_PK.to_string();
    let mut extra = vec![Write::Audit(Box::new(entry))];
    extra.extend(store.owners_drop(id).await?);
    if !crate::offboard::start_purge(store, queue, id, extra).await? {
        return Err(ScimError::not_found("no such integration"));
    }
    Ok(Reply::json(
        202,
        json!({
            "request_id": null,
            "purge": "in_progress",
            "deprovisioned": false,
            "detail": "the integration's tokens stopped; every row of it is being removed; its users were left in the app as they are",
        }),
    ))
}

/// `POST /admin/integrations/{id}/tokens`: one more SCIM token (shown once). The old ones
/// stay valid until revoked, so an IdP can be switched over without downtime.
pub async fn issue_token(store: &Store, actor: &Actor, id: &str) -> ScimResult<Reply> {
    actor.require_reach(id)?;
    for _ in 0..super::WRITE_ATTEMPTS {
        let r = load(store, id).await?;
        refuse_while_offboarding(&r)?;
        let token = auth::new_token();
        let hash = auth::hash_token(&token);
        let mut hashes = r.token_hashes.clone();
        hashes.push(hash.clone());
        if store.set_token_hashes(id, &r.token_hashes, &hashes).await? {
            tracing::info!(integration_id = %id, token_id = %token_id(&hash), "SCIM token issued");
            audit::record(store, actor, "integration.token.issue", Some(id), token_changes(&r.token_hashes, &hashes))
                .await;
            return Ok(Reply::json(201, json!({ "token_id": token_id(&hash), "token": token })));
        }
    }
    Err(ScimError::unavailable("concurrent token changes; retry"))
}

/// `DELETE /admin/integrations/{id}/tokens/{token_id}`.
pub async fn revoke_token(store: &Store, actor: &Actor, id: &str, token: &str) -> ScimResult<Reply> {
    actor.require_reach(id)?;
    for _ in 0..super::WRITE_ATTEMPTS {
        let r = load(store, id).await?;
        let hashes: Vec<String> = r.token_hashes.iter().filter(|h| token_id(h) != token).cloned().collect();
        if hashes.len() == r.token_hashes.len() {
            return Err(ScimError::not_found("no such token"));
        }
        if store.set_token_hashes(id, &r.token_hashes, &hashes).await? {
            tracing::info!(integration_id = %id, token_id = %token, "SCIM token revoked");
            audit::record(store, actor, "integration.token.revoke", Some(id), token_changes(&r.token_hashes, &hashes))
                .await;
            return Ok(Reply::no_content());
        }
    }
    Err(ScimError::unavailable("concurrent token changes; retry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let ok = json!({"name": "Acme CRM", "connector": {"type": "webhook", "url": "https://x", "secret": "s"},
            "roles": {"attribute": "roles", "groups": [{"group": "CRM Admins", "role": "admin", "priority": 20}], "default": null},
            "attributes": ["userName", "emails[primary eq true].value"]});
        let (name, cfg) = validate_config(ok).unwrap();
        assert_eq!(name, "Acme CRM");
        assert_eq!(cfg["roles"]["groups"][0]["role"], "admin");
        for bad in [
            json!({"connector": {"type": "http"}}),
            json!({"name": "x", "connector": {"type": "ftp"}}),
            json!({"name": "x", "connector": {"type": "http"}, "roles": {"groups": [{"group": "g"}]}}),
            json!({"name": "x", "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"}, "attributes": [1]}),
            json!({"name": "x", "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"}, "attributes": ["emails[type eq"]}),
            json!([]),
        ] {
            assert_eq!(validate_config(bad).unwrap_err().status, 400);
        }
    }
}
