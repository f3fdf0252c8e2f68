//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4), `/Roles` and the
//! entitlement endpoints (docs/contract.md "App roles (catalog)"). What they say is what the
//! server does.

use serde_json::{Value, json};

use super::Reply;
use super::list::{ListParams, MAX_RESULTS, list_response, parse_window};
use crate::assignment::roles::{EntitlementType, RoleDef};
use crate::error::{ScimError, ScimResult};
use crate::integration::RolesConfig;
use crate::scim::schema::{
    self, ENTITLEMENT, ENTITLEMENT_SCHEMA, GROUP_TYPE, ROLE_SCHEMA, ROLE_TYPE, ResourceType, Schema, USER_TYPE,
};

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
    list_response(items.len(), 1, items)
}

/// The resource types an integration offers: `User`, `Group`, `Role` where it has a configured
/// role catalog, and each configured entitlement type (Okta's "SCIM with entitlements").
fn types(roles: &RolesConfig) -> Vec<&'static ResourceType> {
    let mut types = vec![&USER_TYPE, &GROUP_TYPE];
    if !roles.catalog.is_empty() {
        types.push(&ROLE_TYPE);
    }
    types
}

fn type_resources(base_url: &str, roles: &RolesConfig) -> Vec<Value> {
    let mut out: Vec<Value> = types(roles).iter().map(|rt| schema::resource_type_resource(rt, base_url)).collect();
    out.extend(roles.entitlement_types.iter().map(|t| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": t.name,
            "name": t.name,
            "endpoint": t.endpoint,
            "description": format!("{} entitlements of the app", t.name),
            "schema": ENTITLEMENT_SCHEMA,
            "meta": { "resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/{}", t.name) },
        })
    }));
    out
}

pub fn resource_types(base_url: &str, roles: &RolesConfig) -> Reply {
    list_of(type_resources(base_url, roles))
}

pub fn resource_type(base_url: &str, name: &str, roles: &RolesConfig) -> ScimResult<Reply> {
    type_resources(base_url, roles)
        .into_iter()
        .find(|rt| rt["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(name)))
        .map(|rt| Reply::json(200, rt))
        .ok_or_else(|| ScimError::not_found("no such resource type"))
}

fn all_schemas(roles: &RolesConfig) -> Vec<&'static Schema> {
    let mut all: Vec<&'static Schema> =
        types(roles).iter().flat_map(|rt| std::iter::once(rt.core).chain(rt.extensions.iter().copied())).collect();
    if !roles.entitlement_types.is_empty() {
        all.push(&ENTITLEMENT);
    }
    all
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
        "meta": {"resourceType": "Role", "location": format!("{base_url}/Roles/{}", urlencoding::encode(&role.value))},
    });
    if let Some(d) = &role.description {
        out["description"] = json!(d);
    }
    out
}

/// One page of a read-only listing, by `startIndex`/`count` as every SCIM listing pages.
fn page(items: Vec<Value>, params: &ListParams) -> ScimResult<Reply> {
    let (start, count) = parse_window(params)?;
    let total = items.len();
    Ok(list_response(total, start, items.into_iter().skip(start - 1).take(count).collect()))
}

/// `GET /Roles?startIndex=&count=`: the configured catalog, highest priority first.
pub fn roles(base_url: &str, roles: &RolesConfig, params: &ListParams) -> ScimResult<Reply> {
    if roles.catalog.is_empty() {
        return Err(ScimError::not_found("no role catalog is configured for this integration"));
    }
    let mut all = roles.catalog.clone();
    all.sort_by_key(|r| std::cmp::Reverse(r.priority));
    page(all.iter().map(|r| role_resource(r, base_url)).collect(), params)
}

fn entitlement_type<'a>(roles: &'a RolesConfig, endpoint: &str) -> ScimResult<&'a EntitlementType> {
    roles
        .entitlement_types
        .iter()
        .find(|t| t.endpoint.trim_start_matches('/').eq_ignore_ascii_case(endpoint))
        .ok_or_else(|| ScimError::not_found("no such endpoint"))
}

fn entitlement_resource(t: &EntitlementType, value: &RoleDef, base_url: &str) -> Value {
    let mut out = json!({
        "schemas": [ENTITLEMENT_SCHEMA],
        "id": value.value,
        "displayName": value.display.as_deref().unwrap_or(&value.value),
        "type": t.name,
        "meta": {"resourceType": t.name, "location": format!("{base_url}{}/{}", t.endpoint, urlencoding::encode(&value.value))},
    });
    if let Some(d) = &value.description {
        out["description"] = json!(d);
    }
    out
}

/// `GET /<entitlement endpoint>?startIndex=&count=`: the type's values, in configured order.
pub fn entitlements(base_url: &str, roles: &RolesConfig, endpoint: &str, params: &ListParams) -> ScimResult<Reply> {
    let t = entitlement_type(roles, endpoint)?;
    page(t.values.iter().map(|v| entitlement_resource(t, v, base_url)).collect(), params)
}

/// `GET /<entitlement endpoint>/{value}`.
pub fn entitlement(base_url: &str, roles: &RolesConfig, endpoint: &str, id: &str) -> ScimResult<Reply> {
    let t = entitlement_type(roles, endpoint)?;
    let value = t.canonical(id).ok_or_else(|| ScimError::not_found("no such entitlement"))?;
    let def = t.values.iter().find(|v| v.value == value).ok_or_else(|| ScimError::not_found("no such entitlement"))?;
    Ok(Reply::json(200, entitlement_resource(t, def, base_url)))
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
