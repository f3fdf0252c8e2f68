//! `POST /admin/integrations/{id}/roles/import`: fills the role catalog from the app, through
//! the connector's `list_roles` (docs/contract.md "App roles (catalog)").
//!
//! Faults: nothing is written until the app has answered, and the save is one write, so a crash
//! or an app error (timeout, 429, 5xx: a 502 naming the app's answer) leaves the configuration
//! as it was; running it again merges the same roles again and changes nothing more.

use serde_json::json;

use super::Reply;
use crate::assignment::roles::RoleDef;
use crate::connector::{self, AppRole, ConnectorError, OutboundClients};
use crate::error::{ScimError, ScimResult};
use crate::integration::RolesConfig;
use crate::scim::text::fold;
use crate::secrets::Secrets;
use crate::store::Store;

/// What an import changed.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    pub catalog: Vec<RoleDef>,
    /// Values new to the catalog, appended below the lowest priority.
    pub added: Vec<String>,
    /// Catalog values the app no longer lists: kept (an admin removes them).
    pub not_in_app: Vec<String>,
}

/// The catalog after an import. Known values keep their priority (the app's display name and
/// description fill in what the catalog lacks); new ones are appended in the app's order, each
/// 10 below the lowest so far. Without a configured catalog, the group mappings' roles (with
/// their priorities) and the default are the starting point, so the saved catalog keeps the
/// configuration valid.
pub fn merge(roles: &RolesConfig, imported: &[AppRole]) -> Merged {
    // Without a configured catalog, the derived one (group mappings and the default) starts it.
    let mut catalog: Vec<RoleDef> = roles.catalog().entries();
    let mut added = Vec::new();
    for role in imported {
        match catalog.iter_mut().find(|r| fold(&r.value, false) == fold(&role.value, false)) {
            Some(known) => {
                known.display = known.display.take().or_else(|| role.display.clone());
                known.description = known.description.take().or_else(|| role.description.clone());
            }
            None => {
                let lowest = catalog.iter().map(|r| r.priority).min().map_or(0, |p| p.saturating_sub(10));
                catalog.push(RoleDef {
                    value: role.value.clone(),
                    display: role.display.clone(),
                    priority: lowest,
                    description: role.description.clone(),
                });
                added.push(role.value.clone());
            }
        }
    }
    let not_in_app = catalog
        .iter()
        .filter(|r| !imported.iter().any(|i| fold(&i.value, false) == fold(&r.value, false)))
        .map(|r| r.value.clone())
        .collect();
    Merged { catalog, added, not_in_app }
}

fn app_error(e: ConnectorError) -> ScimError {
    ScimError::new(502, None, format!("reading the app's roles failed: {e}"))
}

/// Reads the app's roles through the connector, merges them into the catalog and saves it.
pub async fn import(
    store: &Store,
    actor: &super::audit::Actor,
    secrets: &Secrets,
    outbound: &OutboundClients,
    id: &str,
) -> ScimResult<Reply> {
    actor.require_reach(id)?;
    let record = store.get_integration(id).await?.ok_or_else(|| ScimError::not_found("no such integration"))?;
    super::admin::refuse_while_offboarding(&record)?;
    let mut config_json = record.config_json();
    let config = crate::integration::IntegrationConfig::from_json(config_json.clone())?;
    let resolved = connector::resolve_secret_ref(&config.connector, secrets).await.map_err(app_error)?;
    let built =
        connector::build(&resolved, outbound.for_integration(config.allow_private_network)).map_err(app_error)?;
    let Some(imported) = built.list_roles().await.map_err(app_error)? else {
        return Err(ScimError::invalid_value(format!(
            "the {} connector has no list_roles: configure connector.list_roles (http connectors)",
            config.connector.kind()
        )));
    };
    let merged = merge(&config.roles, &imported);
    config_json["roles"]["catalog"] =
        serde_json::to_value(&merged.catalog).map_err(|e| ScimError::internal(e.to_string()))?;
    // The merged configuration passes the same checks as a save by the admin.
    crate::integration::IntegrationConfig::from_json(config_json.clone())?;
    if !store.update_integration(id, &record.name, &config_json).await? {
        return Err(ScimError::not_found("no such integration"));
    }
    tracing::info!(integration_id = %id, added = merged.added.len(), "role catalog imported");
    let changes = super::audit::changes(&record.config_json(), &config_json);
    super::audit::record(store, actor, "integration.roles.import", Some(id), changes).await;
    Ok(Reply::json(
        200,
        json!({
            "catalog": merged.catalog,
            "added": merged.added,
            "not_in_app": merged.not_in_app,
            "listed": imported.len(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn role(value: &str, display: Option<&str>) -> AppRole {
        AppRole { value: value.into(), display: display.map(String::from), description: None }
    }

    fn roles(v: Value) -> RolesConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn known_values_keep_their_priority_and_new_ones_go_below() {
        let cfg = roles(json!({"catalog": [{"value": "admin", "priority": 30}, {"value": "Viewer", "priority": 10},
                                           {"value": "legacy", "priority": 5}]}));
        let m = merge(
            &cfg,
            &[
                role("viewer", Some("Viewer")),
                role("admin", None),
                role("auditor", Some("Audit")),
                role("billing", None),
            ],
        );
        let got: Vec<(&str, i64)> = m.catalog.iter().map(|r| (r.value.as_str(), r.priority)).collect();
        assert_eq!(got, [("admin", 30), ("Viewer", 10), ("legacy", 5), ("auditor", -5), ("billing", -15)]);
        assert_eq!(m.catalog[1].display.as_deref(), Some("Viewer"), "filled in");
        assert_eq!(
            (m.added, m.not_in_app),
            (vec!["auditor".to_string(), "billing".into()], vec!["legacy".to_string()])
        );
    }

    #[test]
    fn without_a_catalog_the_group_mappings_start_it_and_a_second_import_changes_nothing() {
        let cfg = roles(json!({"groups": [{"group": "A", "role": "admin", "priority": 20},
                                          {"group": "B", "role": "user", "priority": 10}]}));
        let app = [role("admin", None), role("user", None), role("viewer", None)];
        let first = merge(&cfg, &app);
        let got: Vec<(&str, i64)> = first.catalog.iter().map(|r| (r.value.as_str(), r.priority)).collect();
        assert_eq!(got, [("admin", 20), ("user", 10), ("viewer", 0)]);
        let again = merge(&roles(json!({"catalog": first.catalog.clone()})), &app);
        assert_eq!((again.catalog, again.added.len()), (first.catalog, 0));
    }

    #[test]
    fn a_default_the_app_does_not_list_stays_in_the_catalog_so_the_save_is_valid() {
        let cfg = roles(json!({"default": "guest", "groups": [{"group": "A", "role": "admin", "priority": 20}]}));
        let m = merge(&cfg, &[role("admin", None), role("viewer", None)]);
        let got: Vec<(&str, i64)> = m.catalog.iter().map(|r| (r.value.as_str(), r.priority)).collect();
        assert_eq!(got, [("admin", 20), ("guest", 10), ("viewer", 0)]);
        assert_eq!(m.not_in_app, vec!["guest"]);
        let saved = json!({"name": "t", "connector": {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s"},
                           "roles": {"default": "guest", "groups": [{"group": "A", "role": "admin", "priority": 20}],
                                     "catalog": m.catalog}});
        assert!(crate::integration::IntegrationConfig::from_json(saved).is_ok());
    }
}
