//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4), and `/Roles` (the role
//! catalog, docs/contract.md "App roles (catalog)"). What they say is what the server does.

use serde_json::{Value, json};

use super::Reply;
use super::list::MAX_RESULTS;
use crate::assignment::roles::RoleDef;
use crate::error::{ScimError, ScimResult};
use crate::integration::RolesConfig;
use crate::scim::schema::{self, GROUP_TYPE, LIST_RESPONSE, ROLE_SCHEMA, ROLE_TYPE, ResourceType, Schema, USER_TYPE};

/// RFC 7643 §5's attributes only: strict SCIM clients (scim2-tester's models among them)
/// refuse any other key here, so idlcm's other limits are documented (docs/contract.md
/// "Limits"), not served.
pub fn service_provider_config(base_url: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/idlcm/idlcm#readme",
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_RESULTS },
            "changePassword": { "supported": false },
            "sort": { "supported": true },
            "etag": { "supported": true },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "The integration's secret token in an 'Authorization: Bearer' header",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{base_url}/ServiceProviderConfig"),
            },
        }),
    )
}

fn list_of(items: Vec<Value>) -> Reply {
    Reply::json(
        200,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

/// The resource types an integration offers: `User`, `Group`, and `Role` where it has a
/// configured role catalog (Okta's "SCIM with entitlements" discovers it).
fn types(roles: &RolesConfig) -> Vec<&'static ResourceType> {
    let mut types = vec![&USER_TYPE, &GROUP_TYPE];
    if !roles.catalog.is_empty() {
        types.push(&ROLE_TYPE);
    }
    types
}

pub fn resource_types(base_url: &str, roles: &RolesConfig) -> Reply {
    list_of(types(roles).iter().map(|rt| schema::resource_type_resource(rt, base_url)).collect())
}

pub fn resource_type(base_url: &str, name: &str, roles: &RolesConfig) -> ScimResult<Reply> {
    types(roles)
        .into_iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(name))
        .map(|rt| Reply::json(200, schema::resource_type_resource(rt, base_url)))
        .ok_or_else(|| ScimError::not_found("no such resource type"))
}

fn all_schemas(roles: &RolesConfig) -> Vec<&'static Schema> {
    types(roles).iter().flat_map(|rt| std::iter::once(rt.core).chain(rt.extensions.iter().copied())).collect()
}

pub fn schemas(base_url: &str, roles: &RolesConfig) -> Reply {
    list_of(all_schemas(roles).into_iter().map(|s| schema::schema_resource(s, base_url)).collect())
}

pub fn schema(base_url: &str, id: &str, roles: &RolesConfig) -> ScimResult<Reply> {
    all_schemas(roles)
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| Reply::json(200, schema::schema_resource(s, base_url)))
        .ok_or_else(|| ScimError::not_found("no such schema"))
}

/// One catalog role as Okta reads it: `id` is the value the IdP sends back in `roles`.
fn role_resource(role: &RoleDef, base_url: &str) -> Value {
    let mut out = json!({
        "schemas": [ROLE_SCHEMA],
        "id": role.value,
        "displayName": role.display.as_deref().unwrap_or(&role.value),
        "meta": {"resourceType": "Role", "location": format!("{base_url}/Roles/{}", urlencoding(&role.value))},
    });
    if let Some(d) = &role.description {
        out["description"] = json!(d);
    }
    out
}

fn urlencoding(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /Roles?startIndex=&count=`: the configured catalog, highest priority first, paged as
/// RFC 7644 §3.4.2.4 pages (a `startIndex` below 1 counts as 1; `count` 0 gives the total only).
pub fn roles(base_url: &str, roles: &RolesConfig, start_index: Option<i64>, count: Option<i64>) -> ScimResult<Reply> {
    if roles.catalog.is_empty() {
        return Err(ScimError::not_found("no role catalog is configured for this integration"));
    }
    let mut all = roles.catalog.clone();
    all.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let start = start_index.unwrap_or(1).max(1) as usize;
    let count = count.unwrap_or(MAX_RESULTS as i64).clamp(0, MAX_RESULTS as i64) as usize;
    let page: Vec<Value> = all.iter().skip(start - 1).take(count).map(|r| role_resource(r, base_url)).collect();
    Ok(Reply::json(
        200,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": all.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// `GET /Roles/{id}`.
pub fn role(base_url: &str, roles: &RolesConfig, id: &str) -> ScimResult<Reply> {
    let key = crate::scim::text::fold(id, false);
    roles
        .catalog
        .iter()
        .find(|r| crate::scim::text::fold(&r.value, false) == key)
        .map(|r| Reply::json(200, role_resource(r, base_url)))
        .ok_or_else(|| ScimError::not_found("no such role"))
}
