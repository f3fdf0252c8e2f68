//! The admin API: integrations.

use serde_json::{Value, json};

use super::{Reply, now};
use crate::auth;
use crate::error::{ScimError, ScimResult};
use crate::store::Store;

const CONNECTOR_TYPES: [&str; 3] = ["http", "scim", "webhook"];

/// Checks an integration configuration (DESIGN.md §5); returns it with defaults filled in.
pub fn validate_config(body: Value) -> ScimResult<(String, Value)> {
    let Value::Object(mut obj) = body else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => s.trim().to_string(),
        _ => {
            return Err(ScimError::invalid_value("'name' must be a non-empty string of at most 200 characters"));
        }
    };
    match obj.get("connector") {
        Some(Value::Object(c)) => match c.get("type").and_then(Value::as_str) {
            Some(t) if CONNECTOR_TYPES.contains(&t) => {}
            _ => {
                return Err(ScimError::invalid_value("'connector.type' must be one of http, scim, webhook"));
            }
        },
        _ => {
            return Err(ScimError::invalid_value("'connector' must be an object with a 'type'"));
        }
    }
    let roles = obj.entry("roles").or_insert_with(|| json!({ "attribute": "roles", "groups": [], "default": null }));
    let Value::Object(r) = roles else {
        return Err(ScimError::invalid_value("'roles' must be an object"));
    };
    if !matches!(r.get("attribute"), None | Some(Value::String(_)) | Some(Value::Null)) {
        return Err(ScimError::invalid_value("'roles.attribute' must be a SCIM attribute path"));
    }
    match r.get("groups") {
        None | Some(Value::Null) => {}
        Some(Value::Array(groups)) => {
            for g in groups {
                let ok = g.get("group").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
                    && g.get("role").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
                    && g.get("priority").is_none_or(Value::is_number);
                if !ok {
                    return Err(ScimError::invalid_value(
                        "each 'roles.groups' entry needs 'group' and 'role' strings and a numeric 'priority'",
                    ));
                }
            }
        }
        Some(_) => return Err(ScimError::invalid_value("'roles.groups' must be a list")),
    }
    if !matches!(r.get("default"), None | Some(Value::String(_)) | Some(Value::Null)) {
        return Err(ScimError::invalid_value("'roles.default' must be a string or null"));
    }
    match obj.entry("attributes").or_insert_with(|| json!(["userName"])) {
        Value::Array(a) if a.iter().all(Value::is_string) => {}
        _ => {
            return Err(ScimError::invalid_value("'attributes' must be a list of SCIM attribute paths"));
        }
    }
    Ok((name, Value::Object(obj)))
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
        let (_, cfg) = validate_config(json!({"name": "x", "connector": {"type": "http"}})).unwrap();
        assert_eq!(cfg["attributes"], json!(["userName"]));
        for bad in [
            json!({"connector": {"type": "http"}}),
            json!({"name": "x", "connector": {"type": "ftp"}}),
            json!({"name": "x", "connector": {"type": "http"}, "roles": {"groups": [{"group": "g"}]}}),
            json!({"name": "x", "connector": {"type": "http"}, "attributes": [1]}),
            json!([]),
        ] {
            assert_eq!(validate_config(bad).unwrap_err().status, 400);
        }
    }
}
