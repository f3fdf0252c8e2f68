//! The `scim-api` Lambda: API Gateway HTTP API -> axum router. Clients are built once here,
//! per cold start, and shared by every request.

use idlcm::config::{Config, aws_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    idlcm::telemetry::init();
    let config = Config::from_env()?;
    let aws = aws_config().await;
    let state = scim_api::AppState::new(config, &aws);
    lambda_http::run(scim_api::router(state)).await
}
