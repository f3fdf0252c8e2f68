//! Typed configuration from the environment, read once per cold start.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; see README.md \"Configuration\"")]
    Missing(&'static str),
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, &'static str),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The single DynamoDB table (template.yaml `Table`).
    pub table: String,
    /// Lowercase hex SHA-256 of the admin bearer token (the token itself is never configured).
    pub admin_token_sha256: String,
    /// Public base URL of the API (no trailing slash). When unset, derived from the request's Host.
    pub public_url: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let get = |name: &'static str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let table = get("IDLCM_TABLE").ok_or(ConfigError::Missing("IDLCM_TABLE"))?;
        let admin_token_sha256 = get("IDLCM_ADMIN_TOKEN_SHA256")
            .ok_or(ConfigError::Missing("IDLCM_ADMIN_TOKEN_SHA256"))?
            .to_ascii_lowercase();
        if admin_token_sha256.len() != 64 || !admin_token_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ConfigError::Invalid("IDLCM_ADMIN_TOKEN_SHA256", "expected 64 hex digits (SHA-256)"));
        }
        let public_url = get("IDLCM_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string());
        Ok(Self { table, admin_token_sha256, public_url })
    }
}

/// The shared AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`), loaded once.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}
