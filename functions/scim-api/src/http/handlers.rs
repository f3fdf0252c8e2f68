//! Thin handlers: extract, call `idlcm::service`, wrap the reply.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use idlcm::error::ScimError;
use idlcm::scim::resource::Projection;
use idlcm::service::{self, Ctx, activity, admin, discovery, groups, list, users};
use idlcm::store::offboard::OffboardMode;
use idlcm::store::resources::Kind;

use super::{ApiError, ApiReply, ApiResult, Caller, JsonBody, QueryParams, Scim, api_url};
use crate::AppState;

fn ctx<'a>(state: &'a AppState, scim: &'a Scim) -> Ctx<'a> {
    Ctx {
        store: &state.store,
        queue: &state.queue,
        integration_id: &scim.integration_id,
        integration: &scim.integration,
        base_url: &scim.base_url,
        method: &scim.method,
        path: &scim.path,
        prefetched: Some(&scim.prefetched),
    }
}

fn projection(q: &QueryParams) -> Projection {
    Projection::new(q.get("attributes"), q.get("excludedAttributes"))
}

/// A group PATCH answers 204 unless the client asked for attributes (RFC 7644 §3.5.2).
fn patch_projection(q: &QueryParams) -> Option<Projection> {
    (q.get("attributes").is_some() || q.get("excludedAttributes").is_some()).then(|| projection(q))
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|h| h.to_str().ok())
}

/// `If-None-Match` on a GET: 304 when the client already has this version.
fn not_modified(headers: &HeaderMap, reply: service::Reply) -> ApiReply {
    let inm = headers.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok());
    match (inm, &reply.etag) {
        (Some(tags), Some(current)) if tags.split(',').any(|t| t.trim() == current || t.trim() == "*") => {
            ApiReply(service::Reply { status: 304, body: None, ..reply })
        }
        _ => ApiReply(reply),
    }
}

fn list_params(q: &QueryParams) -> list::ListParams {
    list::ListParams {
        filter: q.get("filter").map(String::from),
        start_index: q.get("startIndex").map(String::from),
        count: q.get("count").map(String::from),
        sort_by: q.get("sortBy").map(String::from),
        sort_order: q.get("sortOrder").map(String::from),
        projection: projection(q),
    }
}

pub async fn admin_create_integration(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    Ok(ApiReply(
        admin::create_integration(
            &state.store,
            &actor,
            &api_url(&state, &headers),
            body,
            state.config.allow_loopback_connectors,
        )
        .await?,
    ))
}

/// A webhook robot's signed report for a job it accepted with `202`.
pub async fn job_callback(
    State(state): State<AppState>,
    Path((iid, job_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let signature = headers.get("x-idlcm-signature").and_then(|h| h.to_str().ok());
    Ok(ApiReply(
        idlcm::service::callback::job_callback(
            &state.store,
            &state.queue,
            &state.secrets,
            &iid,
            &job_id,
            signature,
            &body,
        )
        .await?,
    ))
}

fn activity_params(q: &QueryParams) -> activity::ActivityParams {
    activity::ActivityParams {
        limit: q.get("limit").map(String::from),
        cursor: q.get("cursor").map(String::from),
        status: q.get("status").map(String::from),
        user: q.get("user").map(String::from),
        since: q.get("since").map(String::from),
        until: q.get("until").map(String::from),
    }
}

pub async fn admin_list_integrations(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
) -> ApiResult {
    Ok(ApiReply(admin::list_integrations(&state.store, &actor, &api_url(&state, &headers)).await?))
}

pub async fn admin_get_integration(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(admin::get_integration(&state.store, &actor, &api_url(&state, &headers), &id).await?))
}

pub async fn admin_import_roles(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(service::roles::import(&state.store, &actor, &state.secrets, state.outbound(), &id).await?))
}

pub async fn admin_update_integration(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryParams,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let options =
        admin::UpdateOptions { loopback: state.config.allow_loopback_connectors, dry_run: flag(q.get("dry_run"))? };
    Ok(ApiReply(
        admin::update_integration(&state.store, &state.queue, &actor, &api_url(&state, &headers), &id, body, options)
            .await?,
    ))
}

/// A `true`/`false` query flag (absent: false).
fn flag(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(ScimError::invalid_value(format!("'{other}' is not true or false")).into()),
    }
}

pub async fn admin_resync(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    actor.require_reach(&id)?;
    let reply = service::resync::start(&state.store, &state.queue, &id, &body).await?;
    let started = reply.body.clone().unwrap_or_default();
    let changes = service::audit::changes(&serde_json::Value::Null, &started);
    service::audit::record(&state.store, &actor, "integration.resync", Some(&id), changes).await;
    Ok(ApiReply(reply))
}

pub async fn admin_unmanaged(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult {
    actor.require_reach(&id)?;
    Ok(ApiReply(service::resync::unmanaged(&state.store, &id, q.get("cursor")).await?))
}

pub async fn admin_delete_integration(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult {
    let offboard =
        if flag(q.get("deprovision"))? {
            let mode = q.get("mode");
            Some(OffboardMode::parse(mode).ok_or_else(|| {
                ScimError::invalid_value("mode must be \"deprovision\" (the default) or \"deactivate\"")
            })?)
        } else {
            None
        };
    Ok(ApiReply(admin::delete_integration(&state.store, &state.queue, &actor, &id, offboard).await?))
}

pub async fn admin_issue_token(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(admin::issue_token(&state.store, &actor, &id).await?))
}

pub async fn admin_revoke_token(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult {
    Ok(ApiReply(admin::revoke_token(&state.store, &actor, &id, &token_id).await?))
}

pub async fn admin_activity(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult {
    actor.require_reach(&id)?;
    Ok(ApiReply(activity::list(&state.store, &id, &activity_params(&q)).await?))
}

pub async fn admin_activity_detail(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, request_id)): Path<(String, String)>,
) -> ApiResult {
    actor.require_reach(&id)?;
    Ok(ApiReply(activity::detail(&state.store, &id, &request_id).await?))
}

pub async fn admin_user_activity(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, user)): Path<(String, String)>,
    q: QueryParams,
) -> ApiResult {
    actor.require_reach(&id)?;
    Ok(ApiReply(activity::user_history(&state.store, &id, &user, &activity_params(&q)).await?))
}

pub async fn admin_retry_job(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, job_id)): Path<(String, String)>,
) -> ApiResult {
    actor.require_reach(&id)?;
    let reply = activity::retry(&state.store, &state.queue, &id, &job_id).await?;
    let changes = service::audit::changes(
        &serde_json::json!({ "job": job_id, "status": "failed" }),
        &serde_json::json!({ "job": job_id, "status": "queued" }),
    );
    service::audit::record(&state.store, &actor, "job.retry", Some(&id), changes).await;
    Ok(ApiReply(reply))
}

pub async fn admin_test_connection(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(service::connection::test(&state.store, &actor, &state.secrets, state.outbound(), &id).await?))
}

pub async fn admin_me(Caller(actor): Caller) -> ApiResult {
    let mut me = actor.json();
    me["integrations"] = match &actor {
        service::audit::Actor::Admin => serde_json::json!("all"),
        service::audit::Actor::Owner { integrations, .. } => serde_json::json!(integrations),
    };
    Ok(ApiReply(service::Reply::json(200, me)))
}

pub async fn admin_audit(State(state): State<AppState>, Caller(actor): Caller, q: QueryParams) -> ApiResult {
    let reply =
        service::audit::list(&state.store, &actor, q.get("integration"), q.get("cursor"), q.get("limit")).await?;
    Ok(ApiReply(reply))
}

pub async fn admin_owners_create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult {
    Ok(ApiReply(service::owners::create(&state.store, &actor, &body).await?))
}

pub async fn admin_owners_list(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult {
    Ok(ApiReply(service::owners::list(&state.store, &actor).await?))
}

pub async fn admin_owner_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(service::owners::get(&state.store, &actor, &id).await?))
}

pub async fn admin_owner_update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    Ok(ApiReply(service::owners::update(&state.store, &actor, &id, &body).await?))
}

pub async fn admin_owner_revoke(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(service::owners::revoke(&state.store, &actor, &id).await?))
}

pub async fn admin_owner_rotate(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(ApiReply(service::owners::rotate(&state.store, &actor, &id).await?))
}

/// The Activity page: one self-contained HTML document (no CDN), which asks for the admin
/// token and calls the admin API.
pub async fn activity_page() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::HeaderName::from_static("content-security-policy"),
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        include_str!("../activity.html"),
    )
        .into_response()
}

/// The handlers `/Users` and `/Groups` share, one shape for both: list, `.search`, create,
/// replace (PUT) and delete. GET and PATCH differ (member paging; the PATCH answer) and are
/// written out below.
macro_rules! resource_handlers {
    ($service:ident, $kind:expr, $list:ident, $search:ident, $create:ident, $replace:ident, $delete:ident) => {
        pub async fn $list(State(state): State<AppState>, scim: Scim, q: QueryParams) -> ApiResult {
            Ok(ApiReply(list::list(ctx(&state, &scim), $kind, &list_params(&q)).await?))
        }

        pub async fn $search(State(state): State<AppState>, scim: Scim, JsonBody(body): JsonBody) -> ApiResult {
            let params = list::ListParams::from_search_request(&body)?;
            Ok(ApiReply(list::list(ctx(&state, &scim), $kind, &params).await?))
        }

        pub async fn $create(
            State(state): State<AppState>,
            scim: Scim,
            q: QueryParams,
            JsonBody(body): JsonBody,
        ) -> ApiResult {
            Ok(ApiReply($service::create(ctx(&state, &scim), body, &projection(&q)).await?))
        }

        pub async fn $replace(
            State(state): State<AppState>,
            scim: Scim,
            Path((_, id)): Path<(String, String)>,
            q: QueryParams,
            headers: HeaderMap,
            JsonBody(body): JsonBody,
        ) -> ApiResult {
            let reply = $service::replace(ctx(&state, &scim), &id, body, if_match(&headers), &projection(&q)).await?;
            Ok(ApiReply(reply))
        }

        pub async fn $delete(
            State(state): State<AppState>,
            scim: Scim,
            Path((_, id)): Path<(String, String)>,
            headers: HeaderMap,
        ) -> ApiResult {
            Ok(ApiReply($service::delete(ctx(&state, &scim), &id, if_match(&headers)).await?))
        }
    };
}

resource_handlers!(users, Kind::User, users_list, users_search, users_create, users_replace, users_delete);
resource_handlers!(groups, Kind::Group, groups_list, groups_search, groups_create, groups_replace, groups_delete);

pub async fn search_all(State(state): State<AppState>, scim: Scim, JsonBody(body): JsonBody) -> ApiResult {
    let params = list::ListParams::from_search_request(&body)?;
    Ok(ApiReply(list::search_all(ctx(&state, &scim), &params).await?))
}

pub async fn users_get(
    State(state): State<AppState>,
    scim: Scim,
    Path((_, id)): Path<(String, String)>,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult {
    Ok(not_modified(&headers, users::get(ctx(&state, &scim), &id, &projection(&q)).await?))
}

pub async fn users_patch(
    State(state): State<AppState>,
    scim: Scim,
    Path((_, id)): Path<(String, String)>,
    q: QueryParams,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    // A user PATCH answers 200 with the user, as Okta expects (docs/idp-quirks.md O15); group
    // PATCHes keep 204 unless attributes are asked for (Entra, E10).
    let p = projection(&q);
    Ok(ApiReply(users::patch(ctx(&state, &scim), &id, body, if_match(&headers), Some(&p)).await?))
}

pub async fn groups_get(
    State(state): State<AppState>,
    scim: Scim,
    Path((_, id)): Path<(String, String)>,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult {
    let after = q.0.get("membersafter").map(String::as_str);
    Ok(not_modified(&headers, groups::get(ctx(&state, &scim), &id, &projection(&q), after).await?))
}

pub async fn groups_patch(
    State(state): State<AppState>,
    scim: Scim,
    Path((_, id)): Path<(String, String)>,
    q: QueryParams,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let p = patch_projection(&q);
    Ok(ApiReply(groups::patch(ctx(&state, &scim), &id, body, if_match(&headers), p.as_ref()).await?))
}

pub async fn service_provider_config(scim: Scim) -> ApiResult {
    Ok(ApiReply(discovery::service_provider_config(&scim.base_url)))
}

pub async fn resource_types(scim: Scim) -> ApiResult {
    Ok(ApiReply(discovery::resource_types(&scim.base_url, &scim.integration.roles)))
}

pub async fn resource_type(scim: Scim, Path((_, name)): Path<(String, String)>) -> ApiResult {
    Ok(ApiReply(discovery::resource_type(&scim.base_url, &name, &scim.integration.roles)?))
}

pub async fn schemas(scim: Scim) -> ApiResult {
    Ok(ApiReply(discovery::schemas(&scim.base_url, &scim.integration.roles)))
}

pub async fn schema(scim: Scim, Path((_, id)): Path<(String, String)>) -> ApiResult {
    Ok(ApiReply(discovery::schema(&scim.base_url, &id, &scim.integration.roles)?))
}

pub async fn roles_list(scim: Scim, q: QueryParams) -> ApiResult {
    Ok(ApiReply(discovery::roles(&scim.base_url, &scim.integration.roles, &list_params(&q))?))
}

/// An entitlement type's endpoint (`/Licenses`); any other unknown path is 404.
pub async fn entitlements_list(scim: Scim, Path((_, endpoint)): Path<(String, String)>, q: QueryParams) -> ApiResult {
    Ok(ApiReply(discovery::entitlements(&scim.base_url, &scim.integration.roles, &endpoint, &list_params(&q))?))
}

/// Other methods on an entitlement endpoint: 405 where one is configured (entitlements are
/// read-only), else the 404 of any unknown path.
pub async fn entitlement_other(scim: Scim, Path(params): Path<Vec<(String, String)>>) -> ApiError {
    let endpoint = params.iter().find(|(k, _)| k == "endpoint").map(|(_, v)| v.as_str()).unwrap_or("");
    let configured = scim
        .integration
        .roles
        .entitlement_types
        .iter()
        .any(|t| t.endpoint.trim_start_matches('/').eq_ignore_ascii_case(endpoint));
    if configured { method_not_allowed().await } else { not_found().await }
}

pub async fn entitlement_get(scim: Scim, Path((_, endpoint, id)): Path<(String, String, String)>) -> ApiResult {
    Ok(ApiReply(discovery::entitlement(&scim.base_url, &scim.integration.roles, &endpoint, &id)?))
}

pub async fn role_get(scim: Scim, Path((_, id)): Path<(String, String)>) -> ApiResult {
    Ok(ApiReply(discovery::role(&scim.base_url, &scim.integration.roles, &id)?))
}

pub async fn not_found() -> ApiError {
    ApiError(ScimError::not_found("no such endpoint"))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError(ScimError::new(405, None, "method not allowed on this endpoint"))
}
