//! Secrets by reference, read at run time and never stored in the table or the template.
//!
//! A reference is one of:
//! - `env:NAME`: an environment variable (local runs and tests); never the runtime's own
//!   (`AWS_*`, `LAMBDA_*`, `_*`: the function role's credentials live there);
//! - `ssm:/path/name`: an SSM Parameter Store parameter (a `SecureString` is decrypted);
//! - `secretsmanager:NAME[#key]`: a Secrets Manager secret, read through Parameter Store's
//!   `/aws/reference/secretsmanager/` names, so one SDK client serves both services. With
//!   `#key`, the secret is a JSON object and the value is its string field `key`.
//!
//! Values are cached per cold start for [`CACHE_TTL`], so a rotated secret is picked up within
//! minutes without a redeploy, and a burst of jobs costs one `GetParameter`.
//! Errors name the reference, never the value.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;

/// How long a resolved value is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

/// How long a failed lookup is remembered: a missing or forbidden parameter is not asked for
/// again on every request (SSM throttles), yet a fix is seen within half a minute.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);

/// Parameter Store's window onto Secrets Manager.
const SECRETS_MANAGER_PREFIX: &str = "/aws/reference/secretsmanager/";

/// A parsed secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef<'a> {
    Env(&'a str),
    Ssm(&'a str),
    SecretsManager { id: &'a str, key: Option<&'a str> },
}

impl<'a> SecretRef<'a> {
    pub fn parse(reference: &'a str) -> Result<Self, SecretError> {
        let invalid = |why: &'static str| SecretError::Invalid { reference: reference.to_owned(), why };
        let (kind, rest) =
            reference.split_once(':').ok_or_else(|| invalid("expected env:, ssm: or secretsmanager:"))?;
        if rest.is_empty() {
            return Err(invalid("the reference names nothing after its kind"));
        }
        match kind {
            "env" if ["AWS_", "LAMBDA_", "_"].iter().any(|p| rest.to_ascii_uppercase().starts_with(p)) => {
                Err(invalid("env: may not name the runtime's own variables (AWS_*, LAMBDA_*, _*)"))
            }
            "env" => Ok(SecretRef::Env(rest)),
            "ssm" if rest.starts_with('/') || !rest.contains('/') => Ok(SecretRef::Ssm(rest)),
            "ssm" => Err(invalid("an SSM parameter path starts with '/'")),
            "secretsmanager" => {
                let (id, key) = match rest.split_once('#') {
                    Some((id, key)) if !id.is_empty() && !key.is_empty() => (id, Some(key)),
                    Some(_) => return Err(invalid("expected secretsmanager:NAME#key")),
                    None => (rest, None),
                };
                Ok(SecretRef::SecretsManager { id, key })
            }
            _ => Err(invalid("expected env:, ssm: or secretsmanager:")),
        }
    }

    /// The Parameter Store name this reference is read from (`None` for `env:`).
    pub fn parameter_name(&self) -> Option<String> {
        match self {
            SecretRef::Env(_) => None,
            SecretRef::Ssm(name) => Some((*name).to_owned()),
            SecretRef::SecretsManager { id, .. } => Some(format!("{SECRETS_MANAGER_PREFIX}{id}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret reference '{reference}' is invalid: {why}")]
    Invalid { reference: String, why: &'static str },
    #[error("secret '{reference}' not found")]
    NotFound { reference: String },
    #[error("secret '{reference}' is not a JSON object with a string field '{key}'")]
    NoSuchKey { reference: String, key: String },
    /// Throttling, a timeout, a service error: the next attempt may succeed.
    #[error("secret '{reference}' could not be read: {message}")]
    Unavailable { reference: String, message: String },
    /// Access denied, a key that cannot decrypt, an invalid name: fixed by an operator.
    #[error("secret '{reference}' cannot be read: {message}")]
    Refused { reference: String, message: String },
}

impl SecretError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Unavailable { .. })
    }
}

/// Resolves secret references through SSM, with a short cache. Build once per cold start.
pub struct Secrets {
    ssm: aws_sdk_ssm::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, Lookup>>,
}

/// A remembered lookup: when it was made and what it gave.
type Lookup = (Instant, Result<String, SecretError>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Secrets {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Self::with_client(aws_sdk_ssm::Client::new(aws))
    }

    pub fn with_client(ssm: aws_sdk_ssm::Client) -> Self {
        Self { ssm, ttl: CACHE_TTL, cache: Mutex::new(HashMap::new()) }
    }

    /// The value `reference` points to.
    pub async fn resolve(&self, reference: &str) -> Result<String, SecretError> {
        let parsed = SecretRef::parse(reference)?;
        let not_found = || SecretError::NotFound { reference: reference.to_owned() };
        let name = match &parsed {
            SecretRef::Env(var) => return std::env::var(var).map_err(|_| not_found()),
            other => other.parameter_name().unwrap_or_default(),
        };
        if let Some(result) = self.cached(reference) {
            return result;
        }
        let result = self.get_parameter(reference, &name).await.and_then(|raw| match parsed {
            SecretRef::SecretsManager { key: Some(key), .. } => json_field(&raw, key)
                .ok_or_else(|| SecretError::NoSuchKey { reference: reference.to_owned(), key: key.to_owned() }),
            _ => Ok(raw),
        });
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.to_owned(), (Instant::now(), result.clone()));
        result
    }

    fn cached(&self, reference: &str) -> Option<Result<String, SecretError>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, result) = cache.get(reference)?;
        let ttl = if result.is_ok() { self.ttl } else { FAILURE_TTL };
        (at.elapsed() < ttl).then(|| result.clone())
    }

    async fn get_parameter(&self, reference: &str, name: &str) -> Result<String, SecretError> {
        let out = self.ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| {
            let reference = reference.to_owned();
            let message = DisplayErrorContext(&e).to_string();
            match &e {
                SdkError::ServiceError(s) if matches!(s.err(), GetParameterError::ParameterNotFound(_)) => {
                    SecretError::NotFound { reference }
                }
                // 5xx and throttling are the service's passing trouble; other answers
                // (AccessDenied, ValidationException, InvalidKeyId) need an operator.
                SdkError::ServiceError(s)
                    if s.raw().status().is_server_error()
                        || s.err().code().is_some_and(|c| c.contains("Throttl") || c == "InternalServerError") =>
                {
                    SecretError::Unavailable { reference, message }
                }
                SdkError::ServiceError(_) => SecretError::Refused { reference, message },
                _ => SecretError::Unavailable { reference, message },
            }
        })?;
        out.parameter.and_then(|p| p.value).ok_or_else(|| SecretError::NotFound { reference: reference.to_owned() })
    }
}

/// The string field `key` of a JSON object (a Secrets Manager key/value secret).
fn json_field(raw: &str, key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    value.get(key)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_into_their_kind() {
        assert_eq!(SecretRef::parse("env:APP_TOKEN").unwrap(), SecretRef::Env("APP_TOKEN"));
        assert_eq!(SecretRef::parse("ssm:/idlcm/prod/app").unwrap(), SecretRef::Ssm("/idlcm/prod/app"));
        assert_eq!(SecretRef::parse("ssm:plain-name").unwrap(), SecretRef::Ssm("plain-name"));
        assert_eq!(
            SecretRef::parse("secretsmanager:idlcm/app#api_key").unwrap(),
            SecretRef::SecretsManager { id: "idlcm/app", key: Some("api_key") }
        );
        assert_eq!(
            SecretRef::parse("secretsmanager:idlcm/app").unwrap().parameter_name().unwrap(),
            "/aws/reference/secretsmanager/idlcm/app"
        );
        let bad_refs = ["", "APP_TOKEN", "env:", "vault:x", "ssm:a/b", "secretsmanager:#k", "secretsmanager:x#"];
        let runtime_vars =
            ["env:AWS_SECRET_ACCESS_KEY", "env:aws_session_token", "env:LAMBDA_TASK_ROOT", "env:_HANDLER"];
        for bad in bad_refs.into_iter().chain(runtime_vars) {
            let err = SecretRef::parse(bad).unwrap_err();
            assert!(matches!(err, SecretError::Invalid { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn json_fields_are_read_from_key_value_secrets() {
        assert_eq!(json_field(r#"{"api_key":"k1","user":"u"}"#, "api_key").as_deref(), Some("k1"));
        assert_eq!(json_field(r#"{"api_key":1}"#, "api_key"), None);
        assert_eq!(json_field("not json", "api_key"), None);
    }
}
