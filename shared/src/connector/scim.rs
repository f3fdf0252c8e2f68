//! `scim` connector: the app speaks SCIM 2.0 itself. idlcm finds the app's user (by the
//! captured id, else by `userName` filter) and forwards the reconciled state with POST/PUT,
//! or DELETEs it on deprovision.

use std::fmt;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{BoxFuture, Connector, ConnectorError, Job, Outcome, classify, permanent, resolve_secret, send};
use crate::assignment::Action;
use crate::assignment::drift::{AccountPage, AppAccount};

const SCIM_JSON: &str = "application/scim+json";
const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const DEFAULT_ROLE_ATTRIBUTE: &str = "roles";

/// `{ "type": "scim", "base_url", "secret" | "secret_ref" (bearer token), "role_attribute" }`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ScimConfig {
    /// The app's SCIM base, e.g. `https://app.example/scim/v2` (`/Users` is appended).
    pub base_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// Where the role goes: `roles` (default: `roles: [{ "value", "primary": true }]`), a
    /// top-level attribute name, or a URN-qualified extension attribute
    /// (`urn:…:User:role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_attribute: Option<String>,
    /// Where `roles/import` reads the app's roles: `Roles` (the app's own `/Roles`: `id` is the
    /// value, `displayName` the display) or `Groups` (its `/Groups`: `displayName` is both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_roles: Option<ScimRoleSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScimRoleSource {
    Roles,
    Groups,
}

impl fmt::Debug for ScimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimConfig")
            .field("base_url", &self.base_url)
            .field("secret", &self.secret.as_ref().map(|_| super::REDACTED))
            .field("secret_ref", &self.secret_ref)
            .field("role_attribute", &self.role_attribute)
            .field("list_roles", &self.list_roles)
            .finish()
    }
}

/// Where the role goes in the app's user resource.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RolePlacement {
    /// Core `roles`: `[{ "value": role, "primary": true }]` (`[]` without a role).
    Roles,
    /// A top-level attribute (`null` without a role).
    TopLevel(String),
    /// An extension attribute: `{ "<urn>": { "<name>": role } }`, URN added to `schemas`.
    Extension { urn: String, name: String },
}

impl RolePlacement {
    fn parse(attribute: Option<&str>) -> Result<RolePlacement, ConnectorError> {
        let attribute = attribute.map(str::trim).unwrap_or(DEFAULT_ROLE_ATTRIBUTE);
        if attribute.is_empty() {
            return Err(permanent("connector.role_attribute: must not be empty"));
        }
        if attribute.eq_ignore_ascii_case(DEFAULT_ROLE_ATTRIBUTE) {
            return Ok(RolePlacement::Roles);
        }
        if crate::scim::text::has_urn_prefix(attribute) {
            return match attribute.rsplit_once(':') {
                Some((urn, name)) if !name.is_empty() && urn.len() > 4 => {
                    Ok(RolePlacement::Extension { urn: urn.to_owned(), name: name.to_owned() })
                }
                _ => {
                    Err(permanent(format!("connector.role_attribute: '{attribute}' is not '<schema urn>:<attribute>'")))
                }
            };
        }
        Ok(RolePlacement::TopLevel(attribute.to_owned()))
    }
}

pub struct ScimConnector {
    /// Base URL without a trailing slash.
    base: String,
    token: Option<String>,
    role: RolePlacement,
    list_roles: Option<ScimRoleSource>,
    http: super::Outbound,
}

/// The app's user as found by lookup.
struct Found {
    id: String,
}

impl ScimConnector {
    pub fn new(config: &ScimConfig, http: super::Outbound) -> Result<Self, ConnectorError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        http.policy().check_url(&base).map_err(|why| permanent(format!("connector.base_url: {why}")))?;
        let token = resolve_secret(config.secret.as_deref(), config.secret_ref.as_deref())?;
        let role = RolePlacement::parse(config.role_attribute.as_deref())?;
        Ok(ScimConnector { base, token, role, list_roles: config.list_roles, http })
    }

    fn request(&self, method: Method, url: &str) -> Result<reqwest::RequestBuilder, ConnectorError> {
        let builder = self.http.request(method, url)?.header(reqwest::header::ACCEPT, SCIM_JSON);
        Ok(match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        })
    }

    fn user_url(&self, id: &str) -> String {
        format!("{}/Users/{}", self.base, urlencoding::encode(id))
    }

    /// The app's user: by `app_id` when known (a 404 falls back to the filter), else by
    /// `userName eq "…"`.
    async fn find(&self, job: &Job<'_>) -> Result<Option<Found>, ConnectorError> {
        if let Some(app_id) = job.app_id {
            let resp = send(self.request(Method::GET, &self.user_url(app_id))?).await?;
            if resp.status() != StatusCode::NOT_FOUND {
                let (_, body) = classify(resp).await?;
                let id = parse_json(&body)?.get("id").and_then(id_string).unwrap_or_else(|| app_id.to_owned());
                return Ok(Some(Found { id }));
            }
        }
        let user_name = user_name(job.user)?;
        let filter = format!("userName eq \"{}\"", user_name.replace('\\', "\\\\").replace('"', "\\\""));
        let url = format!("{}/Users?filter={}", self.base, urlencoding::encode(&filter));
        let (_, body) = classify(send(self.request(Method::GET, &url)?).await?).await?;
        let list = parse_json(&body)?;
        let resources = list.get("Resources").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        // Apps that ignore filters return everyone: only a user with this userName counts.
        let hit = resources
            .iter()
            .find(|r| r.get("userName").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(user_name)));
        match hit {
            Some(resource) => match resource.get("id").and_then(id_string) {
                Some(id) => Ok(Some(Found { id })),
                None => Err(permanent("the app's SCIM user has no 'id'")),
            },
            None => Ok(None),
        }
    }

    /// The full user the app should hold.
    fn reconciled(&self, job: &Job<'_>) -> Result<Value, ConnectorError> {
        let user = job.user;
        let mut out = Map::new();
        let mut schemas = vec![Value::from(CORE_USER)];
        // `schemas` first, as SCIM examples do (filled in last: an insert keeps the position).
        out.insert("schemas".into(), Value::Null);
        out.insert("userName".into(), Value::from(user_name(user)?));
        let name = user.get("name");
        let mut name_out = Map::new();
        for key in ["givenName", "familyName"] {
            if let Some(v) = name.and_then(|n| n.get(key)).filter(|v| v.is_string()) {
                name_out.insert(key.into(), v.clone());
            }
        }
        if !name_out.is_empty() {
            out.insert("name".into(), Value::Object(name_out));
        }
        if let Some(display) = user.get("displayName").filter(|v| v.is_string()) {
            out.insert("displayName".into(), display.clone());
        }
        if let Some(email) = primary_email(user) {
            let mut e = Map::new();
            e.insert("value".into(), email.get("value").cloned().unwrap_or(Value::Null));
            e.insert("type".into(), email.get("type").filter(|t| t.is_string()).cloned().unwrap_or("work".into()));
            e.insert("primary".into(), Value::Bool(true));
            out.insert("emails".into(), Value::Array(vec![Value::Object(e)]));
        }
        let active = match job.action {
            Action::Deactivate | Action::Deprovision => false,
            _ => job.after.map(|a| a.active).unwrap_or(false),
        };
        out.insert("active".into(), Value::Bool(active));
        let role = job.after.and_then(|a| a.role.as_deref());
        match &self.role {
            RolePlacement::Roles => {
                let roles = role.map(|r| vec![json!({ "value": r, "primary": true })]).unwrap_or_default();
                out.insert("roles".into(), Value::Array(roles));
            }
            RolePlacement::TopLevel(name) => {
                out.insert(name.clone(), role.map(Value::from).unwrap_or(Value::Null));
            }
            RolePlacement::Extension { urn, name } => {
                let mut ext = Map::new();
                ext.insert(name.clone(), role.map(Value::from).unwrap_or(Value::Null));
                out.insert(urn.clone(), Value::Object(ext));
                schemas.push(Value::from(urn.as_str()));
            }
        }
        out.insert("schemas".into(), Value::Array(schemas));
        Ok(Value::Object(out))
    }

    /// POST (`found` = None) or PUT the reconciled user; the app's `id` is the outcome's app_id.
    async fn write(&self, job: &Job<'_>, found: Option<Found>) -> Result<Outcome, ConnectorError> {
        let body = serde_json::to_vec(&self.reconciled(job)?).map_err(|e| permanent(e.to_string()))?;
        let (method, url, known) = match found {
            Some(f) => (Method::PUT, self.user_url(&f.id), Some(f.id)),
            None => (Method::POST, format!("{}/Users", self.base), None),
        };
        let resp =
            send(self.request(method, &url)?.header(reqwest::header::CONTENT_TYPE, SCIM_JSON).body(body)).await?;
        let status = resp.status();
        let (_, text) = classify(resp).await?;
        let id = serde_json::from_str::<Value>(&text).ok().and_then(|v| v.get("id").and_then(id_string)).or(known);
        if id.is_none() {
            return Err(permanent(format!("{}: the app's answer has no user 'id'", super::status_line(status))));
        }
        Ok(Outcome::Done { app_id: id, detail: Some(super::status_line(status)) })
    }

    async fn delete(&self, job: &Job<'_>) -> Result<Outcome, ConnectorError> {
        let id = match job.app_id {
            Some(id) => id.to_owned(),
            None => match self.find(job).await? {
                Some(found) => found.id,
                None => return Ok(Outcome::Done { app_id: None, detail: Some("not in the app".into()) }),
            },
        };
        let resp = send(self.request(Method::DELETE, &self.user_url(&id))?).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Outcome::Done { app_id: Some(id), detail: Some("404 Not Found: already gone".into()) });
        }
        classify(resp).await?;
        Ok(Outcome::Done { app_id: Some(id), detail: Some(super::status_line(status)) })
    }

    async fn run(&self, job: &Job<'_>) -> Result<Outcome, ConnectorError> {
        let outcome = match job.action {
            Action::Deprovision => self.delete(job).await,
            action => {
                if job.after.is_none() {
                    return Err(permanent(format!("'{}' job has no target assignment", action.as_str())));
                }
                match (action, self.find(job).await?) {
                    (Action::Deactivate, None) => {
                        Ok(Outcome::Done { app_id: None, detail: Some("not in the app: nothing to deactivate".into()) })
                    }
                    (_, found) => self.write(job, found).await,
                }
            }
        };
        match &outcome {
            Ok(_) => tracing::debug!(job_id = job.job_id, action = job.action.as_str(), "scim connector applied"),
            Err(e) => {
                tracing::debug!(job_id = job.job_id, action = job.action.as_str(), error = %e, "scim connector failed")
            }
        }
        outcome
    }
}

impl Connector for ScimConnector {
    fn apply<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Outcome, ConnectorError>> {
        Box::pin(self.run(job))
    }

    fn list_roles(&self) -> BoxFuture<'_, Result<Option<Vec<super::AppRole>>, ConnectorError>> {
        Box::pin(async move {
            let Some(source) = self.list_roles else { return Ok(None) };
            let (endpoint, list) = match source {
                ScimRoleSource::Roles => (
                    "Roles",
                    super::http::ListRoles {
                        path: String::new(),
                        items: "/Resources".into(),
                        value: "/id".into(),
                        display: Some("/displayName".into()),
                        description: Some("/description".into()),
                    },
                ),
                ScimRoleSource::Groups => (
                    "Groups",
                    super::http::ListRoles {
                        path: String::new(),
                        items: "/Resources".into(),
                        value: "/displayName".into(),
                        display: None,
                        description: None,
                    },
                ),
            };
            // One page of up to 1,000: a role list, not a directory.
            let url = format!("{}/{endpoint}?startIndex=1&count=1000&excludedAttributes=members", self.base);
            let (_, text) = classify(send(self.request(Method::GET, &url)?).await?).await?;
            let answer: Value = serde_json::from_str(&text)
                .map_err(|_| permanent(format!("list_roles: the app's /{endpoint} answer is not JSON")))?;
            super::http::roles_from(&answer, &list).map(Some)
        })
    }

    /// `GET /Users?startIndex=&count=` page by page (the cursor is the next `startIndex`).
    fn list_accounts<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<AccountPage>, ConnectorError>> {
        Box::pin(async move {
            let start = cursor.and_then(|c| c.parse::<u64>().ok()).unwrap_or(1).max(1);
            let url = format!("{}/Users?startIndex={start}&count={LIST_PAGE}", self.base);
            let (_, text) = classify(send(self.request(Method::GET, &url)?).await?).await?;
            let answer = parse_json(&text)?;
            Ok(Some(accounts_from(&answer, &self.role, start)))
        })
    }
}

/// Users asked for per page when listing the app's accounts.
const LIST_PAGE: u64 = 100;

/// One SCIM `ListResponse` as accounts: `id`, `userName` as the match key, `active`, and the
/// role where the connector puts it. The next page starts after this one while the app says
/// there are more (`totalResults`) and this page was not empty. Pure: unit-tested.
fn accounts_from(answer: &Value, role: &RolePlacement, start: u64) -> AccountPage {
    let resources = answer.get("Resources").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let accounts: Vec<AppAccount> = resources
        .iter()
        .filter_map(|r| {
            let id = r.get("id").and_then(id_string)?;
            let role_value = match role {
                RolePlacement::Roles => r.get("roles").and_then(Value::as_array).map(|roles| {
                    let primary = roles.iter().find(|x| x.get("primary").and_then(Value::as_bool) == Some(true));
                    primary.or(roles.first()).and_then(|x| x.get("value")).and_then(Value::as_str).map(str::to_owned)
                }),
                RolePlacement::TopLevel(name) => r.get(name).map(|v| v.as_str().map(str::to_owned)),
                RolePlacement::Extension { urn, name } => {
                    r.get(urn).map(|ext| ext.get(name).and_then(Value::as_str).map(str::to_owned))
                }
            };
            Some(AppAccount {
                id,
                key: r.get("userName").and_then(Value::as_str).map(str::to_owned),
                active: r.get("active").and_then(Value::as_bool),
                role: Some(role_value.flatten()),
                attributes: Default::default(),
            })
        })
        .collect();
    let total = answer.get("totalResults").and_then(Value::as_u64).unwrap_or(0);
    let seen = start - 1 + resources.len() as u64;
    let next = (!resources.is_empty() && seen < total).then(|| (seen + 1).to_string());
    AccountPage { accounts, next }
}

fn user_name(user: &Value) -> Result<&str, ConnectorError> {
    user.get("userName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| permanent("user has no userName"))
}

/// The primary email (`primary` true, also as the string `"true"`), else the first one.
fn primary_email(user: &Value) -> Option<&Value> {
    let emails = user.get("emails")?.as_array()?;
    let is_primary = |e: &&Value| match e.get("primary") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    emails.iter().find(is_primary).or_else(|| emails.first()).filter(|e| e.get("value").is_some_and(Value::is_string))
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_json(body: &str) -> Result<Value, ConnectorError> {
    serde_json::from_str(body).map_err(|e| permanent(format!("the app's SCIM answer is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::connector::testutil::*;
    use crate::connector::{ConnectorConfig, build};

    const TOKEN: &str = "scim-token";

    /// A tiny SCIM app: users by id, filter on userName, bearer auth.
    async fn scim_app() -> (TestServer, Arc<Mutex<BTreeMap<String, Value>>>) {
        let users: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
        let store = users.clone();
        let next_id = AtomicUsize::new(1);
        let server = TestServer::start(move |req| {
            if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return (401, vec![], "no".into());
            }
            let mut users = store.lock().unwrap();
            let path = req.uri.strip_prefix("/scim/v2").unwrap_or("");
            let scim = |status: u16, body: Value| (status, vec![("content-type", SCIM_JSON.to_owned())], body.to_string());
            match (req.method.as_str(), path) {
                ("GET", p) if p.starts_with("/Roles?") => scim(
                    200,
                    json!({"Resources": [{"id": "admin", "displayName": "Admin", "description": "All"}, {"id": "viewer"}]}),
                ),
                ("GET", p) if p.starts_with("/Users?filter=") => {
                    let filter = urlencoding::decode(&p["/Users?filter=".len()..]).unwrap().into_owned();
                    let wanted = filter.strip_prefix("userName eq \"").and_then(|f| f.strip_suffix('"')).unwrap();
                    let hits: Vec<Value> =
                        users.values().filter(|u| u["userName"].as_str() == Some(wanted)).cloned().collect();
                    scim(200, json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": hits.len(), "Resources": hits }))
                }
                ("POST", "/Users") => {
                    let mut user = req.json();
                    let id = format!("app-{}", next_id.fetch_add(1, Ordering::Relaxed));
                    user["id"] = id.clone().into();
                    users.insert(id, user.clone());
                    scim(201, user)
                }
                (method, p) if p.starts_with("/Users/") => {
                    let id = p["/Users/".len()..].to_owned();
                    match (method, users.contains_key(&id)) {
                        (_, false) => scim(404, json!({ "status": "404", "detail": "no such user" })),
                        ("GET", true) => scim(200, users[&id].clone()),
                        ("PUT", true) => {
                            let mut user = req.json();
                            user["id"] = id.clone().into();
                            users.insert(id, user.clone());
                            scim(200, user)
                        }
                        ("DELETE", true) => {
                            users.remove(&id);
                            (204, vec![], String::new())
                        }
                        _ => scim(405, json!({})),
                    }
                }
                _ => scim(400, json!({ "detail": "unexpected" })),
            }
        })
        .await;
        (server, users)
    }

    fn connector(base: &str, role_attribute: Option<&str>) -> Box<dyn Connector> {
        let config = ConnectorConfig::Scim(ScimConfig {
            base_url: format!("{base}/scim/v2/"),
            secret: Some(TOKEN.into()),
            secret_ref: None,
            role_attribute: role_attribute.map(str::to_owned),
            list_roles: Some(ScimRoleSource::Roles),
        });
        build(&config, crate::connector::testutil::outbound()).unwrap()
    }

    fn summary(server: &TestServer) -> Vec<String> {
        server.take().iter().map(|r| format!("{} {}", r.method, r.uri)).collect()
    }

    #[tokio::test]
    async fn provision_update_deactivate_deprovision() {
        let (server, users) = scim_app().await;
        let scim = connector(&server.base, None);
        let user = user();
        let admin = assignment(true, Some("admin"));

        // Provision: lookup by filter misses, then POST.
        let outcome = scim.apply(&job(Action::Provision, &user, None, Some(&admin), None)).await.unwrap();
        assert_eq!(outcome, Outcome::Done { app_id: Some("app-1".into()), detail: Some("201 Created".into()) });
        let reqs = server.requests();
        assert_eq!(
            summary(&server),
            ["GET /scim/v2/Users?filter=userName%20eq%20%22ada%40example.com%22", "POST /scim/v2/Users"]
        );
        assert_eq!(reqs[1].header("content-type"), Some(SCIM_JSON));
        assert!(reqs[1].header("user-agent").unwrap().starts_with("idlcm/"));
        let stored = users.lock().unwrap()["app-1"].clone();
        assert_eq!(
            stored,
            json!({
                "schemas": [CORE_USER],
                "userName": "ada@example.com",
                "name": { "givenName": "Ada", "familyName": "Lovelace" },
                "emails": [ { "value": "ada@example.com", "type": "work", "primary": true } ],
                "active": true,
                "roles": [ { "value": "admin", "primary": true } ],
                "id": "app-1"
            })
        );

        // Provision again without app_id: found by filter, adopted with PUT.
        let outcome = scim.apply(&job(Action::Provision, &user, None, Some(&admin), None)).await.unwrap();
        assert_eq!(outcome, Outcome::Done { app_id: Some("app-1".into()), detail: Some("200 OK".into()) });
        assert_eq!(summary(&server)[1], "PUT /scim/v2/Users/app-1");

        // Update with app_id: GET by id, PUT.
        let viewer = assignment(true, Some("viewer"));
        scim.apply(&job(Action::Update, &user, Some(&admin), Some(&viewer), Some("app-1"))).await.unwrap();
        assert_eq!(summary(&server), ["GET /scim/v2/Users/app-1", "PUT /scim/v2/Users/app-1"]);
        assert_eq!(users.lock().unwrap()["app-1"]["roles"], json!([{ "value": "viewer", "primary": true }]));

        // Deactivate: active=false, role kept.
        let off = assignment(false, Some("viewer"));
        scim.apply(&job(Action::Deactivate, &user, Some(&viewer), Some(&off), Some("app-1"))).await.unwrap();
        assert_eq!(users.lock().unwrap()["app-1"]["active"], false);
        server.take();

        // Deprovision: DELETE; a second time the app says 404, which is done too.
        let outcome = scim.apply(&job(Action::Deprovision, &user, Some(&off), None, Some("app-1"))).await.unwrap();
        assert_eq!(outcome, Outcome::Done { app_id: Some("app-1".into()), detail: Some("204 No Content".into()) });
        assert!(users.lock().unwrap().is_empty());
        let outcome = scim.apply(&job(Action::Deprovision, &user, Some(&off), None, Some("app-1"))).await.unwrap();
        assert!(matches!(outcome, Outcome::Done { .. }));
        assert_eq!(summary(&server), ["DELETE /scim/v2/Users/app-1", "DELETE /scim/v2/Users/app-1"]);

        // Without app_id and not in the app: deprovision and deactivate have nothing to do.
        scim.apply(&job(Action::Deprovision, &user, Some(&off), None, None)).await.unwrap();
        let outcome = scim.apply(&job(Action::Deactivate, &user, Some(&viewer), Some(&off), None)).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Done { app_id: None, detail: Some("not in the app: nothing to deactivate".into()) }
        );
        assert!(summary(&server).iter().all(|r| r.starts_with("GET /scim/v2/Users?filter=")));

        // Reactivate a user the app lost (stale app_id): GET 404, filter miss, POST.
        let on = assignment(true, Some("viewer"));
        let outcome = scim.apply(&job(Action::Reactivate, &user, Some(&off), Some(&on), Some("app-1"))).await.unwrap();
        assert_eq!(outcome, Outcome::Done { app_id: Some("app-2".into()), detail: Some("201 Created".into()) });
        assert_eq!(summary(&server).last().unwrap(), "POST /scim/v2/Users");
    }

    #[tokio::test]
    async fn role_placement_top_level_and_extension() {
        let (server, users) = scim_app().await;
        let user = user();
        let admin = assignment(true, Some("admin"));
        connector(&server.base, Some("role"))
            .apply(&job(Action::Provision, &user, None, Some(&admin), None))
            .await
            .unwrap();
        let stored = users.lock().unwrap().remove("app-1").unwrap();
        assert_eq!(stored["role"], "admin");
        assert!(stored.get("roles").is_none());

        let urn = "urn:ietf:params:scim:schemas:extension:x:2.0:User";
        let scim = connector(&server.base, Some(&format!("{urn}:role")));
        scim.apply(&job(Action::Provision, &user, None, Some(&admin), None)).await.unwrap();
        let stored = users.lock().unwrap()["app-2"].clone();
        assert_eq!(stored["schemas"], json!([CORE_USER, urn]));
        assert_eq!(stored[urn], json!({ "role": "admin" }));
        assert!(stored.get("roles").is_none() && stored.get("role").is_none());

        // No role: the extension attribute is cleared.
        let none = assignment(true, None);
        scim.apply(&job(Action::Update, &user, Some(&admin), Some(&none), Some("app-2"))).await.unwrap();
        assert_eq!(users.lock().unwrap()["app-2"][urn], json!({ "role": null }));
    }

    #[tokio::test]
    async fn filter_value_is_escaped_and_errors_classified() {
        let (server, _) = scim_app().await;
        let mut user = user();
        user["userName"] = "a\"b c&d".into();
        let a = assignment(true, None);
        connector(&server.base, None).apply(&job(Action::Provision, &user, None, Some(&a), None)).await.unwrap();
        assert_eq!(summary(&server)[0], "GET /scim/v2/Users?filter=userName%20eq%20%22a%5C%22b%20c%26d%22");

        // Wrong token: the app's 401 is permanent.
        let config = ScimConfig {
            base_url: format!("{}/scim/v2", server.base),
            secret: Some("wrong".into()),
            secret_ref: None,
            role_attribute: None,
            list_roles: None,
        };
        let scim = ScimConnector::new(&config, crate::connector::testutil::outbound()).unwrap();
        let err = scim.apply(&job(Action::Provision, &user, None, Some(&a), None)).await.unwrap_err();
        assert_eq!(
            err,
            ConnectorError::Permanent { message: "401 Unauthorized; the app said: no".into(), status: Some(401) }
        );
    }

    #[test]
    fn role_attribute_forms() {
        assert_eq!(RolePlacement::parse(None).unwrap(), RolePlacement::Roles);
        assert_eq!(RolePlacement::parse(Some("roles")).unwrap(), RolePlacement::Roles);
        assert_eq!(RolePlacement::parse(Some("userType")).unwrap(), RolePlacement::TopLevel("userType".into()));
        assert_eq!(
            RolePlacement::parse(Some("urn:ietf:params:scim:schemas:extension:idlcm:2.0:User:role")).unwrap(),
            RolePlacement::Extension {
                urn: "urn:ietf:params:scim:schemas:extension:idlcm:2.0:User".into(),
                name: "role".into()
            }
        );
        assert!(RolePlacement::parse(Some("urn:x:")).is_err());
        assert!(RolePlacement::parse(Some("")).is_err());
        // Multibyte names never slice inside a character (this panicked the worker's batches).
        assert_eq!(RolePlacement::parse(Some("ab€")).unwrap(), RolePlacement::TopLevel("ab€".into()));
        assert_eq!(RolePlacement::parse(Some("ur€")).unwrap(), RolePlacement::TopLevel("ur€".into()));
    }

    #[test]
    fn accounts_are_paged_by_start_index() {
        let answer = json!({"totalResults": 3, "Resources": [
            {"id": "a1", "userName": "ada@example.com", "active": true, "roles": [{"value": "viewer"}, {"value": "admin", "primary": true}]},
            {"id": "a2", "userName": "bob@example.com", "active": false}
        ]});
        let page = accounts_from(&answer, &RolePlacement::Roles, 1);
        assert_eq!(page.next.as_deref(), Some("3"));
        assert_eq!(page.accounts[0].role, Some(Some("admin".into())));
        assert_eq!((page.accounts[1].active, page.accounts[1].role.clone()), (Some(false), Some(None)));
        let last = accounts_from(&json!({"totalResults": 3, "Resources": [{"id": "a3"}]}), &RolePlacement::Roles, 3);
        assert_eq!(last.next, None);
        let top = accounts_from(
            &json!({"Resources": [{"id": "a1", "role": "x"}]}),
            &RolePlacement::TopLevel("role".into()),
            1,
        );
        assert_eq!((top.accounts[0].role.clone(), top.next), (Some(Some("x".into())), None));
    }

    #[tokio::test]
    async fn roles_are_read_from_the_apps_own_roles_endpoint() {
        let (server, _) = scim_app().await;
        let roles = connector(&server.base, None).list_roles().await.unwrap().expect("configured");
        let got: Vec<(&str, Option<&str>, Option<&str>)> =
            roles.iter().map(|r| (r.value.as_str(), r.display.as_deref(), r.description.as_deref())).collect();
        assert_eq!(got, [("admin", Some("Admin"), Some("All")), ("viewer", None, None)]);
    }
}
