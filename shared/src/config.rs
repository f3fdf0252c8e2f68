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
    /// The SQS FIFO queue of provisioning jobs (template.yaml `JobsQueue`).
    pub jobs_queue_url: String,
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
        let jobs_queue_url = get("IDLCM_JOBS_QUEUE_URL").ok_or(ConfigError::Missing("IDLCM_JOBS_QUEUE_URL"))?;
        Ok(Self { table, admin_token_sha256, public_url, jobs_queue_url })
    }
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name).ok_or(ConfigError::Missing(name))
}

/// The worker's configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub table: String,
    pub jobs_queue_url: String,
    /// The job queue's `maxReceiveCount` (template.yaml `JobsQueue` redrive policy).
    pub max_receives: u32,
    pub public_url: Option<String>,
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let max_receives = match var("IDLCM_MAX_RECEIVES") {
            None => 5,
            Some(v) => {
                v.parse().map_err(|_| ConfigError::Invalid("IDLCM_MAX_RECEIVES", "expected a positive integer"))?
            }
        };
        Ok(Self {
            table: required("IDLCM_TABLE")?,
            jobs_queue_url: required("IDLCM_JOBS_QUEUE_URL")?,
            max_receives,
            public_url: var("IDLCM_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}

/// The sweeper's configuration.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub table: String,
    pub jobs_queue_url: String,
    /// How long a committed job may stay `queued` before it is sent again.
    pub grace: std::time::Duration,
}

impl SweeperConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let grace = match var("IDLCM_SWEEP_GRACE_SECONDS") {
            None => 60,
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid("IDLCM_SWEEP_GRACE_SECONDS", "expected seconds"))?,
        };
        Ok(Self {
            table: required("IDLCM_TABLE")?,
            jobs_queue_url: required("IDLCM_JOBS_QUEUE_URL")?,
            grace: std::time::Duration::from_secs(grace),
        })
    }
}

/// The shared AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`), loaded once.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}
