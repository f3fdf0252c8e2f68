//! `http` connector: a declarative REST connector. Each action maps to an operation (method,
//! path template, JSON body template, where to find the app-side id in the answer); headers
//! are templates too, typically `Authorization: Bearer {{ secret }}`.
//!
//! Templates are minijinja, compiled once when the connector is built, with strict undefined
//! behaviour (a typo fails the job instead of sending an empty value; `none` is fine and renders
//! as empty text). Values printed into a path are percent-encoded (`| safe` opts out). In a
//! body, a string that is exactly one `{{ expr }}` becomes the expression's JSON value (type and
//! `null` kept); other strings render as text.
//!
//! Template context: `user` (SCIM user), `before`, `after` (assignment or `none`), `role`
//! (`after.role`, or `before.role` on deprovision), `attributes` (likewise), `active`, `app_id`,
//! `job_id`, `integration_id`, `action`, `secret`. Strict means an attribute of `none` is an
//! error too (`before.role` when `before` is `none`): use `role`, or
//! `x | default(none)` / `a if b else none` for optional values.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, Error as JinjaError, ErrorKind, Output, State, UndefinedBehavior};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{BoxFuture, Connector, ConnectorError, Job, Outcome, classify, permanent, resolve_secret, send};
use crate::assignment::Action;

/// `{ "type": "http", "base_url", "headers", "secret" | "secret_ref", "operations" }`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpConfig {
    pub base_url: String,
    /// Header name → value template (e.g. `"Bearer {{ secret }}"`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    #[serde(default)]
    pub operations: HttpOperations,
    /// How to read the app's roles for `roles/import` (docs/contract.md "App roles (catalog)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_roles: Option<ListRoles>,
    /// How to read the app's accounts page by page for resync (docs/contract.md "Resync and drift").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_users: Option<ListUsers>,
}

/// `GET {base_url}{path}` with the connector's headers; the roles are the array at `items`
/// (a JSON pointer, `""` for the whole answer), each one's value at `value` (`""`: the item
/// itself, a string), its display name and description at `display` and `description`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRoles {
    pub path: String,
    #[serde(default)]
    pub items: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold a literal token: names only.
        f.debug_struct("HttpConfig")
            .field("base_url", &self.base_url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("secret", &self.secret.as_ref().map(|_| super::REDACTED))
            .field("secret_ref", &self.secret_ref)
            .field("operations", &self.operations)
            .field("list_roles", &self.list_roles)
            .field("list_users", &self.list_users)
            .finish()
    }
}

/// Whether the admin API may show a header value as configured. Template expressions are
/// shown (`Bearer {{ secret }}` names the secret, it is not one); literal text is shown unless
/// it may be a credential: in a header whose name suggests one (`Authorization`, `X-Api-Key`,
/// `Cookie`, …) anything but a bare scheme word, elsewhere any token-like run of 20 or more
/// characters.
pub fn header_is_shown(name: &str, value: &str) -> bool {
    let mut literal = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        literal.push_str(&rest[..start]);
        rest = match rest[start..].find("}}") {
            Some(end) => &rest[start + end + 2..],
            None => "",
        };
    }
    literal.push_str(rest);
    let literal = literal.trim();
    let name = name.to_ascii_lowercase();
    let sensitive = ["auth", "cookie", "key", "token", "secret", "password", "session", "signature", "credential"]
        .iter()
        .any(|w| name.contains(w));
    if sensitive {
        literal.is_empty() || (literal.len() <= 16 && literal.chars().all(|c| c.is_ascii_alphabetic()))
    } else {
        !literal.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-.".contains(c))).any(|w| w.len() >= 20)
    }
}

/// One operation per action. Without `reactivate`, `update` is used; without `deactivate`,
/// `update` is used too (its templates see `active` = false).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpOperations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<HttpOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<HttpOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivate: Option<HttpOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactivate: Option<HttpOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision: Option<HttpOperation>,
    /// Finds an existing account before a `provision` (e.g. `GET /api/users?email={{
    /// attributes.email }}` with `capture_id` `/0/id`): found, it is adopted (its id recorded,
    /// `update` brings it to the desired state) instead of creating a second one. A 404 or an
    /// answer without an id at `capture_id` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<HttpOperation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpOperation {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, … (any case).
    pub method: String,
    /// Path template appended to `base_url`, e.g. `/api/users/{{ app_id }}`.
    pub path: String,
    /// JSON body template (object keys are literal; string values are templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// JSON pointer into the answer whose value is the app-side id, e.g. `/id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_id: Option<String>,
}

/// A body template, compiled.
#[derive(Debug)]
enum Body {
    Literal(Value),
    /// Name of a template rendering `(expr) | idlcm_json`.
    Expr(String),
    /// Name of a text template.
    Text(String),
    Array(Vec<Body>),
    Object(Vec<(String, Body)>),
}

#[derive(Debug)]
struct Operation {
    /// The configured operation's name (`update` when `deactivate` falls back to it).
    name: &'static str,
    method: Method,
    path: String,
    body: Option<Body>,
    capture_id: Option<String>,
    needs_app_id: bool,
}

pub struct HttpConnector {
    /// Base URL without a trailing slash.
    base: String,
    env: Environment<'static>,
    /// Header name and its value's template name; `true` when the value uses the secret.
    headers: Vec<(HeaderName, String, bool)>,
    operations: [Option<Operation>; 5],
    lookup: Option<Operation>,
    list_roles: Option<ListRoles>,
    list_users: Option<ListUsers>,
    secret: Option<String>,
    http: super::Outbound,
}

const URL_ESCAPE: &str = "url";
const JSON_FILTER: &str = "idlcm_json";

fn action_index(action: Action) -> usize {
    match action {
        Action::Provision => 0,
        Action::Update => 1,
        Action::Deactivate => 2,
        Action::Reactivate => 3,
        Action::Deprovision => 4,
    }
}

fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug info would copy the render context (with the secret) into errors.
    env.set_debug(false);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".path") { AutoEscape::Custom(URL_ESCAPE) } else { AutoEscape::None }
    });
    env.set_formatter(format_value);
    env.add_filter(JSON_FILTER, json_filter);
    env
}

/// Prints values: `none` as nothing; into paths percent-encoded (unless marked safe).
fn format_value(out: &mut Output, state: &State, value: &JinjaValue) -> Result<(), JinjaError> {
    if value.is_undefined() && state.undefined_behavior() == UndefinedBehavior::Strict {
        return Err(JinjaError::new(ErrorKind::UndefinedError, "cannot print an undefined value"));
    }
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    match state.auto_escape() {
        AutoEscape::Custom(URL_ESCAPE) if !value.is_safe() => {
            out.write_str(&urlencoding::encode(&value.to_string())).map_err(JinjaError::from)
        }
        AutoEscape::Custom(URL_ESCAPE) => out.write_str(&value.to_string()).map_err(JinjaError::from),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// `(expr) | idlcm_json`: the value as JSON text (strict about undefined).
fn json_filter(value: JinjaValue) -> Result<String, JinjaError> {
    if value.is_undefined() {
        return Err(JinjaError::new(ErrorKind::UndefinedError, "undefined value in body"));
    }
    serde_json::to_string(&value).map_err(|e| JinjaError::new(ErrorKind::BadSerialization, e.to_string()))
}

/// The inner expression of a string that is exactly one `{{ expr }}`.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#") {
        return None;
    }
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner).trim();
    (!inner.is_empty()).then_some(inner)
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

struct Compiler {
    env: Environment<'static>,
}

impl Compiler {
    fn add(&mut self, name: String, source: String, what: &str) -> Result<String, ConnectorError> {
        self.env.add_template_owned(name.clone(), source).map_err(|e| permanent(format!("{what}: {e}")))?;
        Ok(name)
    }

    fn variables(&self, name: &str) -> HashSet<String> {
        self.env.get_template(name).map(|t| t.undeclared_variables(false)).unwrap_or_default()
    }

    fn body(
        &mut self,
        op: &str,
        pointer: String,
        value: &Value,
        vars: &mut HashSet<String>,
    ) -> Result<Body, ConnectorError> {
        Ok(match value {
            Value::String(s) if is_template(s) => {
                let what = format!("connector.operations.{op}.body{pointer}");
                let name = format!("{op}.body{pointer}");
                let expr = single_expression(s);
                let source = match expr {
                    Some(expr) => format!("{{{{ ({expr}) | {JSON_FILTER} }}}}"),
                    None => s.clone(),
                };
                let name = self.add(name, source, &what)?;
                vars.extend(self.variables(&name));
                if expr.is_some() { Body::Expr(name) } else { Body::Text(name) }
            }
            Value::Array(items) => Body::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.body(op, format!("{pointer}/{i}"), v, vars))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Body::Object(
                map.iter()
                    .map(|(k, v)| {
                        let escaped = k.replace('~', "~0").replace('/', "~1");
                        Ok((k.clone(), self.body(op, format!("{pointer}/{escaped}"), v, vars)?))
                    })
                    .collect::<Result<_, ConnectorError>>()?,
            ),
            other => Body::Literal(other.clone()),
        })
    }

    fn operation(&mut self, name: &'static str, op: &HttpOperation) -> Result<Operation, ConnectorError> {
        let method = Method::from_bytes(op.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| permanent(format!("connector.operations.{name}.method: invalid method '{}'", op.method)))?;
        let path = self.add(format!("{name}.path"), op.path.clone(), &format!("connector.operations.{name}.path"))?;
        let mut vars = self.variables(&path);
        let body = match &op.body {
            Some(body) => Some(self.body(name, String::new(), body, &mut vars)?),
            None => None,
        };
        if let Some(pointer) = &op.capture_id
            && !(pointer.is_empty() || pointer.starts_with('/'))
        {
            return Err(permanent(format!(
                "connector.operations.{name}.capture_id: '{pointer}' is not a JSON pointer (like '/id')"
            )));
        }
        Ok(Operation {
            name,
            method,
            path,
            body,
            capture_id: op.capture_id.clone(),
            needs_app_id: vars.contains("app_id"),
        })
    }
}

impl HttpConnector {
    pub fn new(config: &HttpConfig, http: super::Outbound) -> Result<Self, ConnectorError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        http.policy().check_url(&base).map_err(|why| permanent(format!("connector.base_url: {why}")))?;
        let secret = resolve_secret(config.secret.as_deref(), config.secret_ref.as_deref())?;
        let mut compiler = Compiler { env: template_env() };

        let mut headers = Vec::new();
        for (i, (name, value)) in config.headers.iter().enumerate() {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| permanent(format!("connector.headers: invalid header name '{name}'")))?;
            let template = compiler.add(format!("header.{i}"), value.clone(), &format!("connector.headers.{name}"))?;
            let uses_secret = compiler.variables(&template).contains("secret");
            if uses_secret && secret.is_none() {
                return Err(permanent(format!(
                    "connector.headers.{name}: uses 'secret' but no secret or secret_ref is configured"
                )));
            }
            headers.push((header, template, uses_secret));
        }

        let ops = &config.operations;
        let configured = [
            ("provision", &ops.provision),
            ("update", &ops.update),
            ("deactivate", &ops.deactivate),
            ("reactivate", &ops.reactivate),
            ("deprovision", &ops.deprovision),
        ];
        let mut operations: [Option<Operation>; 5] = Default::default();
        for (slot, (name, op)) in operations.iter_mut().zip(configured) {
            *slot = op.as_ref().map(|op| compiler.operation(name, op)).transpose()?;
        }
        if operations.iter().all(Option::is_none) {
            return Err(permanent("connector.operations: an http connector needs at least one operation"));
        }
        let lookup = ops.lookup.as_ref().map(|op| compiler.operation("lookup", op)).transpose()?;
        if let Some(l) = &lookup
            && l.capture_id.is_none()
        {
            return Err(permanent(
                "connector.operations.lookup.capture_id: a lookup needs one: where the found account's id is",
            ));
        }
        if lookup.is_some() && operations[action_index(Action::Update)].is_none() {
            return Err(permanent(
                "connector.operations.update: 'lookup' needs an 'update' operation: an adopted account is brought to the desired state with it",
            ));
        }
        let list_roles = config.list_roles.clone();
        let list_users = config.list_users.clone();
        if let Some(list) = &list_users {
            list::compile(&mut compiler, list)?;
        }
        Ok(HttpConnector { base, env: compiler.env, headers, operations, lookup, list_roles, list_users, secret, http })
    }

    /// The operation for an action, with the documented fallbacks to `update`.
    fn operation(&self, action: Action) -> Result<&Operation, ConnectorError> {
        let own = self.operations[action_index(action)].as_ref();
        let fallback = match action {
            Action::Reactivate | Action::Deactivate => self.operations[action_index(Action::Update)].as_ref(),
            _ => None,
        };
        own.or(fallback).ok_or_else(|| permanent(format!("connector has no '{}' operation", action.as_str())))
    }

    fn context(&self, job: &Job<'_>) -> JinjaValue {
        let source = job.after.or(if job.action == Action::Deprovision { job.before } else { None });
        let active = match job.action {
            Action::Deactivate | Action::Deprovision => false,
            _ => job.after.is_some_and(|a| a.active),
        };
        let ctx = json!({
            "user": job.user,
            "before": job.before,
            "after": job.after,
            "role": source.and_then(|a| a.role.as_deref()),
            "attributes": source.map(|a| json!(a.attributes)).unwrap_or_else(|| json!({})),
            "active": active,
            "app_id": job.app_id,
            "job_id": job.job_id,
            "integration_id": job.integration_id,
            "action": job.action.as_str(),
            "secret": self.secret.as_deref(),
        });
        JinjaValue::from_serialize(&ctx)
    }

    fn render(&self, name: &str, ctx: &JinjaValue, what: impl FnOnce() -> String) -> Result<String, ConnectorError> {
        self.env.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| permanent(format!("{}: {}", what(), e)))
    }

    fn render_body(&self, body: &Body, ctx: &JinjaValue, op: &str) -> Result<Value, ConnectorError> {
        let what = |name: &str| format!("'{op}' body template '{name}'");
        Ok(match body {
            Body::Literal(v) => v.clone(),
            Body::Text(name) => Value::String(self.render(name, ctx, || what(name))?),
            Body::Expr(name) => {
                let text = self.render(name, ctx, || what(name))?;
                serde_json::from_str(&text).map_err(|e| permanent(format!("{}: {e}", what(name))))?
            }
            Body::Array(items) => {
                Value::Array(items.iter().map(|b| self.render_body(b, ctx, op)).collect::<Result<_, _>>()?)
            }
            Body::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, b)| Ok((k.clone(), self.render_body(b, ctx, op)?)))
                    .collect::<Result<Map<_, _>, ConnectorError>>()?,
            ),
        })
    }

    /// Runs a job; a `provision` of a user without an app id first looks for an existing account.
    async fn run(&self, job: &Job<'_>) -> Result<Outcome, ConnectorError> {
        if job.action == Action::Provision
            && job.app_id.is_none()
            && let Some(lookup) = &self.lookup
            && let Some(found) = self.find(lookup, job).await?
        {
            tracing::info!(job_id = job.job_id, "http connector: existing account adopted");
            let adopt = Job { action: Action::Update, app_id: Some(&found), ..job.clone() };
            let detail = match self.run_op(self.operation(Action::Update)?, &adopt).await? {
                Outcome::Done { detail, .. } | Outcome::Accepted { detail } => detail,
            };
            let detail = format!(
                "adopted the app's existing account {found}{}",
                detail.map(|d| format!("; update: {d}")).unwrap_or_default()
            );
            return Ok(Outcome::Done { app_id: Some(found), detail: Some(detail) });
        }
        self.run_op(self.operation(job.action)?, job).await
    }

    /// The `lookup` operation: the found account's id, if any.
    async fn find(&self, lookup: &Operation, job: &Job<'_>) -> Result<Option<String>, ConnectorError> {
        let resp = send(self.request(lookup, job)?).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let (_, text) = classify(resp).await?;
        let pointer = lookup.capture_id.as_deref().unwrap_or("");
        Ok(serde_json::from_str::<Value>(&text).ok().and_then(|v| match v.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }))
    }

    /// The configured headers, rendered.
    fn headers(&self, ctx: &JinjaValue) -> Result<HeaderMap, ConnectorError> {
        let mut headers = HeaderMap::new();
        for (name, template, uses_secret) in &self.headers {
            let value = self.render(template, ctx, || format!("header '{name}' template"))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| permanent(format!("header '{name}' renders to an invalid header value")))?;
            value.set_sensitive(*uses_secret);
            headers.insert(name.clone(), value);
        }
        headers.remove(reqwest::header::USER_AGENT);
        Ok(headers)
    }

    /// The HTTP request of one operation for a job: URL, headers and body rendered.
    fn request(&self, op: &Operation, job: &Job<'_>) -> Result<reqwest::RequestBuilder, ConnectorError> {
        if op.needs_app_id && job.app_id.is_none() {
            return Err(permanent(format!(
                "'{}' operation needs the user's app_id, and none is known (capture it on provision with capture_id)",
                op.name
            )));
        }
        let ctx = self.context(job);
        let path = self.render(&op.path, &ctx, || format!("'{}' path template", op.name))?;
        let sep = if path.is_empty() || path.starts_with('/') || path.starts_with('?') { "" } else { "/" };
        let url = format!("{}{sep}{path}", self.base);

        let mut headers = self.headers(&ctx)?;
        let mut builder = self.http.request(op.method.clone(), &url)?;
        if let Some(body) = &op.body {
            let body = self.render_body(body, &ctx, op.name)?;
            let bytes = serde_json::to_vec(&body).map_err(|e| permanent(e.to_string()))?;
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            builder = builder.body(bytes);
        }
        headers.remove(reqwest::header::USER_AGENT);
        Ok(builder.headers(headers))
    }

    async fn run_op(&self, op: &Operation, job: &Job<'_>) -> Result<Outcome, ConnectorError> {
        let resp = send(self.request(op, job)?).await?;
        let status = resp.status();
        let detail = super::status_line(status);
        if job.action == Action::Deprovision && status == StatusCode::NOT_FOUND {
            tracing::debug!(job_id = job.job_id, "http connector: user already gone");
            return Ok(Outcome::Done {
                app_id: job.app_id.map(str::to_owned),
                detail: Some(format!("{detail}: already gone")),
            });
        }
        let (_, text) = classify(resp).await?;
        tracing::debug!(job_id = job.job_id, operation = op.name, status = status.as_u16(), "http connector applied");
        let Some(pointer) = &op.capture_id else {
            return Ok(Outcome::Done { app_id: job.app_id.map(str::to_owned), detail: Some(detail) });
        };
        let captured = serde_json::from_str::<Value>(&text).ok().and_then(|v| match v.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
        match captured {
            Some(id) => Ok(Outcome::Done { app_id: Some(id), detail: Some(detail) }),
            None => {
                // The app did the work; failing now would repeat it. Keep what we knew.
                tracing::warn!(job_id = job.job_id, operation = op.name, capture_id = %pointer, "app-side id not found in the answer");
                Ok(Outcome::Done {
                    app_id: job.app_id.map(str::to_owned),
                    detail: Some(format!("{detail} (no id at '{pointer}' in the answer)")),
                })
            }
        }
    }
}

impl Connector for HttpConnector {
    fn apply<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Outcome, ConnectorError>> {
        Box::pin(self.run(job))
    }

    fn list_roles(&self) -> BoxFuture<'_, Result<Option<Vec<super::AppRole>>, ConnectorError>> {
        Box::pin(async move {
            match &self.list_roles {
                Some(list) => self.read_roles(list).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn list_accounts<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<super::AccountPage>, ConnectorError>> {
        Box::pin(async move {
            match &self.list_users {
                Some(list) => self.read_accounts(list, cursor).await.map(Some),
                None => Ok(None),
            }
        })
    }
}

#[path = "http_roles.rs"]
mod roles;
pub use roles::roles_from;

#[path = "http_list.rs"]
mod list;
pub use list::{ListUsers, accounts_from};

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
