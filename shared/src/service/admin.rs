//! The admin API: integrations.

use serde_json::{Value, json};

use super::{Reply, now};
use crate::auth;
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::store::Store;

/// Checks an integration configuration (DESIGN.md §5); returns its name and the JSON to store
/// (as given: keys added by later versions keep their meaning).
pub fn validate_config(body: Value) -> ScimResult<(String, Value)> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    }
    let cfg = IntegrationConfig::from_json(body.clone())?;
    Ok((cfg.name.trim().to_string(), body))
}

/// `POST /admin/integrations`: the token is returned here once and stored only as a hash.
pub async fn create_integration(store: &Store, api_url: &str, body: Value) -> ScimResult<Reply> {
    let (name, config) = validate_config(body)?;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let token = auth::new_token();
    store.create_integration(&id, &name, &config, auth::hash_token(&token), now()).await?;
    tracing::info!(integration_id = %id, "integration created");
    Ok(Reply::json(
        201,
        json!({ "id": id, "name": name, "scim_base_url": format!("{api_url}/scim/v2/{id}"), "token": token }),
    ))
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
