//! HTTP edge of the SCIM and admin APIs: routing, authentication, content types, and the
//! mapping of domain errors to RFC 7644 §3.12 responses. Logic lives in `idlcm::service`.

mod http;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use idlcm::config::Config;
use idlcm::queue::Queue;
use idlcm::secrets::Secrets;
use idlcm::store::Store;

pub use http::{ApiError, ApiReply};

/// Largest request body accepted (`idlcm::service::MAX_REQUEST_BYTES`).
pub const MAX_BODY_BYTES: usize = idlcm::service::MAX_REQUEST_BYTES;

/// Per-cold-start state: configuration and the AWS clients.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub queue: Queue,
    /// Secret references: the admin token hash, webhook secrets for callbacks.
    pub secrets: Secrets,
    /// Outbound clients for connector calls (`roles/import`, connection tests); each client
    /// is built on first use: most instances never make one, and the TLS setup is not free.
    outbound: idlcm::connector::OutboundClients,
    /// This instance's side of the per-integration request limits.
    pub limiter: idlcm::limits::Limiter,
}

impl AppState {
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        Self::with_clients(config, aws_sdk_dynamodb::Client::new(aws), aws_sdk_sqs::Client::new(aws), Secrets::new(aws))
    }

    pub fn with_clients(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        secrets: Secrets,
    ) -> Self {
        let store = Store::new(dynamodb, config.table.clone())
            .with_history_days(config.history_days)
            .with_audit_days(config.audit_days);
        let queue = Queue::new(sqs, config.jobs_queue_url.clone());
        let outbound = idlcm::connector::OutboundClients::new(config.allow_loopback_connectors);
        AppState(Arc::new(Inner {
            config,
            store,
            queue,
            secrets,
            outbound,
            limiter: idlcm::limits::Limiter::default(),
        }))
    }
}

impl Inner {
    pub fn outbound(&self) -> &idlcm::connector::OutboundClients {
        &self.outbound
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    use http::handlers as h;
    let scim = "/scim/v2/{iid}";
    Router::new()
        .route("/admin/integrations", post(h::admin_create_integration).get(h::admin_list_integrations))
        .route(
            "/admin/integrations/{id}",
            get(h::admin_get_integration).put(h::admin_update_integration).delete(h::admin_delete_integration),
        )
        .route("/admin/integrations/{id}/tokens", post(h::admin_issue_token))
        .route("/admin/integrations/{id}/roles/import", post(h::admin_import_roles))
        .route("/admin/integrations/{id}/resync", post(h::admin_resync))
        .route("/admin/integrations/{id}/unmanaged", get(h::admin_unmanaged))
        .route("/admin/integrations/{id}/tokens/{token_id}", axum::routing::delete(h::admin_revoke_token))
        .route("/admin/integrations/{id}/activity", get(h::admin_activity))
        .route("/admin/integrations/{id}/activity/{request_id}", get(h::admin_activity_detail))
        .route("/admin/integrations/{id}/users/{user}/activity", get(h::admin_user_activity))
        .route("/admin/integrations/{id}/jobs/{job_id}/retry", post(h::admin_retry_job))
        .route("/admin/integrations/{id}/test", post(h::admin_test_connection))
        .route("/admin/me", get(h::admin_me))
        .route("/admin/audit", get(h::admin_audit))
        .route("/admin/owners", post(h::admin_owners_create).get(h::admin_owners_list))
        .route("/admin/owners/{id}", get(h::admin_owner_get).put(h::admin_owner_update).delete(h::admin_owner_revoke))
        .route("/admin/owners/{id}/token", post(h::admin_owner_rotate))
        .route("/activity", get(h::activity_page))
        .route("/callbacks/{iid}/jobs/{job_id}", post(h::job_callback))
        .route(&format!("{scim}/Users"), get(h::users_list).post(h::users_create))
        .route(&format!("{scim}/Users/"), get(h::users_list).post(h::users_create))
        .route(
            &format!("{scim}/Users/{{id}}"),
            get(h::users_get).put(h::users_replace).patch(h::users_patch).delete(h::users_delete),
        )
        .route(&format!("{scim}/.search"), post(h::search_all))
        .route(&format!("{scim}/Users/.search"), post(h::users_search))
        .route(&format!("{scim}/Groups"), get(h::groups_list).post(h::groups_create))
        .route(&format!("{scim}/Groups/.search"), post(h::groups_search))
        .route(&format!("{scim}/Groups/"), get(h::groups_list).post(h::groups_create))
        .route(
            &format!("{scim}/Groups/{{id}}"),
            get(h::groups_get).put(h::groups_replace).patch(h::groups_patch).delete(h::groups_delete),
        )
        .route(&format!("{scim}/ServiceProviderConfig"), get(h::service_provider_config))
        .route(&format!("{scim}/ResourceTypes"), get(h::resource_types))
        .route(&format!("{scim}/ResourceTypes/{{name}}"), get(h::resource_type))
        .route(&format!("{scim}/Schemas"), get(h::schemas))
        .route(&format!("{scim}/Schemas/{{id}}"), get(h::schema))
        .route(&format!("{scim}/Roles"), get(h::roles_list))
        .route(&format!("{scim}/Roles/{{id}}"), get(h::role_get))
        // Entitlement types' endpoints, named in the configuration; static routes win.
        .route(&format!("{scim}/{{endpoint}}"), get(h::entitlements_list).fallback(h::entitlement_other))
        .route(&format!("{scim}/{{endpoint}}/{{id}}"), get(h::entitlement_get).fallback(h::entitlement_other))
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(http::panic_response))
        // Outermost: a panic's 500 is logged and counted like any answer.
        .layer(axum::middleware::from_fn(http::log_requests))
        .with_state(state)
}
