//! Typed configuration from the environment, read once per cold start.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; see docs/deploy.md \"Configuration\"")]
    Missing(&'static str),
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, &'static str),
}

/// Where the admin token's SHA-256 comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenHashes {
    /// `IDLCM_ADMIN_TOKEN_SHA256`: the hashes themselves (local runs and tests).
    Inline(Vec<String>),
    /// `IDLCM_ADMIN_TOKEN_SHA256_REF`: a secret reference (`ssm:/idlcm/admin-token-sha256`),
    /// read at run time and cached for minutes, so a rotation needs no redeploy.
    Reference(String),
}

/// Lowercase hex SHA-256 digests, separated by commas or spaces: during a rotation the
/// parameter holds the new and the old hash, and both tokens work.
pub fn parse_token_hashes(value: &str) -> Result<Vec<String>, &'static str> {
    let hashes: Vec<String> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if hashes.is_empty() {
        return Err("expected at least one SHA-256 (64 hex digits)");
    }
    if hashes.iter().any(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err("expected 64 hex digits (SHA-256), comma-separated");
    }
    Ok(hashes)
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The single DynamoDB table (template.yaml `Table`).
    pub table: String,
    /// The admin bearer token's hash (the token itself is never configured).
    pub admin_token: AdminTokenHashes,
    /// Public base URL of the API (no trailing slash). When unset, derived from the request's Host.
    pub public_url: Option<String>,
    /// The SQS FIFO queue of provisioning jobs (template.yaml `JobsQueue`).
    pub jobs_queue_url: String,
    /// How long job history is kept (DynamoDB TTL on request and job rows).
    pub history_days: u32,
    /// How long audit entries are kept when longer than `history_days` (0: as long).
    pub audit_days: u32,
    /// See [`allow_loopback_connectors`].
    pub allow_loopback_connectors: bool,
}

/// `IDLCM_ALLOW_LOOPBACK_CONNECTORS=true`: connectors may call loopback hosts named literally
/// (`http://127.0.0.1:8090`), for local stacks and tests. Never set in the deployed template:
/// in Lambda, 127.0.0.1 is the runtime API (docs/contract.md "Outbound calls").
pub fn allow_loopback_connectors() -> Result<bool, ConfigError> {
    match var("IDLCM_ALLOW_LOOPBACK_CONNECTORS").as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ConfigError::Invalid("IDLCM_ALLOW_LOOPBACK_CONNECTORS", "expected true or false")),
    }
}

/// Every environment variable the functions read, for the template consistency test.
pub const SCIM_API_ENV: &[&str] = &[
    "IDLCM_TABLE",
    "IDLCM_JOBS_QUEUE_URL",
    "IDLCM_ADMIN_TOKEN_SHA256",
    "IDLCM_ADMIN_TOKEN_SHA256_REF",
    "IDLCM_PUBLIC_URL",
    "IDLCM_HISTORY_DAYS",
    "IDLCM_AUDIT_DAYS",
    "IDLCM_METRICS_NAMESPACE",
    "IDLCM_ALLOW_LOOPBACK_CONNECTORS",
];
pub const WORKER_ENV: &[&str] = &[
    "IDLCM_ALLOW_LOOPBACK_CONNECTORS",
    "IDLCM_TABLE",
    "IDLCM_JOBS_QUEUE_URL",
    "IDLCM_MAX_RECEIVES",
    "IDLCM_PUBLIC_URL",
    "IDLCM_METRICS_NAMESPACE",
    "IDLCM_JOB_DEADLINE_SECONDS",
    "IDLCM_WORKER_PER_INTEGRATION",
];
pub const SWEEPER_ENV: &[&str] = &[
    "IDLCM_TABLE",
    "IDLCM_JOBS_QUEUE_URL",
    "IDLCM_JOBS_DLQ_URL",
    "IDLCM_SWEEP_GRACE_SECONDS",
    "IDLCM_METRICS_NAMESPACE",
];

/// Default of `IDLCM_JOB_DEADLINE_SECONDS`: a job still `running` this long after its last
/// start is lost (the worker died or timed out, or its message was dead-lettered). Longer than
/// the queue's visibility timeout (360 s) plus the longest backoff (300 s), so a job that is
/// only waiting for its next retry is never taken for lost.
pub const DEFAULT_JOB_DEADLINE_SECONDS: u64 = 900;

/// Default of `IDLCM_WORKER_PER_INTEGRATION` (`crate::worker::PER_INTEGRATION`).
pub const DEFAULT_WORKER_PER_INTEGRATION: usize = 4;

/// Default of `IDLCM_HISTORY_DAYS`.
pub const DEFAULT_HISTORY_DAYS: u32 = 90;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let admin_token = match (var("IDLCM_ADMIN_TOKEN_SHA256"), var("IDLCM_ADMIN_TOKEN_SHA256_REF")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "IDLCM_ADMIN_TOKEN_SHA256",
                    "set it or IDLCM_ADMIN_TOKEN_SHA256_REF, not both",
                ));
            }
            (Some(value), None) => AdminTokenHashes::Inline(
                parse_token_hashes(&value).map_err(|why| ConfigError::Invalid("IDLCM_ADMIN_TOKEN_SHA256", why))?,
            ),
            (None, Some(reference)) => {
                crate::secrets::SecretRef::parse(&reference).map_err(|_| {
                    ConfigError::Invalid("IDLCM_ADMIN_TOKEN_SHA256_REF", "expected ssm:/name or secretsmanager:name")
                })?;
                AdminTokenHashes::Reference(reference)
            }
            (None, None) => return Err(ConfigError::Missing("IDLCM_ADMIN_TOKEN_SHA256_REF")),
        };
        let history_days = match var("IDLCM_HISTORY_DAYS") {
            None => DEFAULT_HISTORY_DAYS,
            Some(v) => v
                .parse()
                .ok()
                .filter(|d| *d > 0)
                .ok_or(ConfigError::Invalid("IDLCM_HISTORY_DAYS", "expected a positive number of days"))?,
        };
        let audit_days = match var("IDLCM_AUDIT_DAYS") {
            None => 0,
            Some(v) => v
                .parse()
                .ok()
                .ok_or(ConfigError::Invalid("IDLCM_AUDIT_DAYS", "expected a number of days (0: as HistoryDays)"))?,
        };
        Ok(Self {
            table: required("IDLCM_TABLE")?,
            admin_token,
            public_url: var("IDLCM_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
            jobs_queue_url: required("IDLCM_JOBS_QUEUE_URL")?,
            history_days,
            audit_days,
            allow_loopback_connectors: allow_loopback_connectors()?,
        })
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
    /// See [`DEFAULT_JOB_DEADLINE_SECONDS`].
    pub job_deadline: std::time::Duration,
    /// See [`allow_loopback_connectors`].
    pub allow_loopback_connectors: bool,
    /// `IDLCM_WORKER_PER_INTEGRATION`: how many users of one integration a batch runs at once
    /// (default [`DEFAULT_WORKER_PER_INTEGRATION`]; 1 runs a batch one job after the other).
    pub per_integration: usize,
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
            job_deadline: std::time::Duration::from_secs(match var("IDLCM_JOB_DEADLINE_SECONDS") {
                None => DEFAULT_JOB_DEADLINE_SECONDS,
                Some(v) => {
                    v.parse().map_err(|_| ConfigError::Invalid("IDLCM_JOB_DEADLINE_SECONDS", "expected seconds"))?
                }
            }),
            allow_loopback_connectors: allow_loopback_connectors()?,
            per_integration: match var("IDLCM_WORKER_PER_INTEGRATION") {
                None => DEFAULT_WORKER_PER_INTEGRATION,
                Some(v) => v.parse().ok().filter(|n| (1..=10).contains(n)).ok_or(ConfigError::Invalid(
                    "IDLCM_WORKER_PER_INTEGRATION",
                    "expected a number from 1 to 10 (a batch holds at most 10 messages)",
                ))?,
            },
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
    /// The job queue's dead-letter queue: its messages are failed jobs to record.
    pub jobs_dlq_url: Option<String>,
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
            jobs_dlq_url: var("IDLCM_JOBS_DLQ_URL"),
        })
    }
}

/// The shared AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`), loaded once.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_lists_hold_one_or_more_sha256() {
        let a = "A".repeat(64);
        let b = "b".repeat(64);
        assert_eq!(parse_token_hashes(&a).unwrap(), vec!["a".repeat(64)]);
        assert_eq!(parse_token_hashes(&format!(" {a}, {b}\n")).unwrap().len(), 2);
        assert!(parse_token_hashes("").is_err());
        assert!(parse_token_hashes("abc").is_err());
        assert!(parse_token_hashes(&format!("{a},{}", "g".repeat(64))).is_err());
    }
}
