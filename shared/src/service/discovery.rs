//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4). What they say is
//! what the server does.

use serde_json::{Value, json};

use super::Reply;
use super::list::MAX_RESULTS;
use crate::error::{ScimError, ScimResult};
use crate::scim::schema::{self, ALL_SCHEMAS, GROUP_TYPE, LIST_RESPONSE, USER_TYPE};

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

pub fn resource_types(base_url: &str) -> Reply {
    list_of([&USER_TYPE, &GROUP_TYPE].iter().map(|rt| schema::resource_type_resource(rt, base_url)).collect())
}

pub fn resource_type(base_url: &str, name: &str) -> ScimResult<Reply> {
    [&USER_TYPE, &GROUP_TYPE]
        .into_iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(name))
        .map(|rt| Reply::json(200, schema::resource_type_resource(rt, base_url)))
        .ok_or_else(|| ScimError::not_found("no such resource type"))
}

pub fn schemas(base_url: &str) -> Reply {
    list_of(ALL_SCHEMAS.iter().map(|s| schema::schema_resource(s, base_url)).collect())
}

pub fn schema(base_url: &str, id: &str) -> ScimResult<Reply> {
    ALL_SCHEMAS
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| Reply::json(200, schema::schema_resource(s, base_url)))
        .ok_or_else(|| ScimError::not_found("no such schema"))
}
