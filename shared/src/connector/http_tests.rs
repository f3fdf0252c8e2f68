use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::assignment::Assignment;
use crate::connector::testutil::*;
use crate::connector::{ConnectorConfig, build};

const SECRET: &str = "app-api-key";

/// A tiny REST app: `POST /api/users`, `PUT|PATCH|DELETE /api/users/{id}`, bearer auth.
async fn rest_app() -> (TestServer, Arc<Mutex<BTreeMap<String, Value>>>) {
    let users: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let store = users.clone();
    let next_id = AtomicUsize::new(41);
    let server = TestServer::start(move |req| {
        if req.header("authorization") != Some(&format!("Bearer {SECRET}")) {
            return json_reply(401, json!({ "error": "unauthorized" }));
        }
        let mut users = store.lock().unwrap();
        let path = req.uri.split('?').next().unwrap();
        match (req.method.as_str(), path) {
            ("POST", "/api/users") => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let mut user = req.json();
                if user["email"].as_str().is_none_or(|e| !e.contains('@')) {
                    return json_reply(400, json!({ "error": "email invalid" }));
                }
                user["id"] = id.into();
                users.insert(id.to_string(), user.clone());
                json_reply(201, json!({ "data": user }))
            }
            (method, p) if p.starts_with("/api/users/") => {
                let id = urlencoding::decode(&p["/api/users/".len()..]).unwrap().into_owned();
                if !users.contains_key(&id) {
                    return json_reply(404, json!({ "error": "not found" }));
                }
                match method {
                    "PUT" | "PATCH" => {
                        let user = users.get_mut(&id).unwrap();
                        for (k, v) in req.json().as_object().unwrap() {
                            user[k] = v.clone();
                        }
                        json_reply(200, user.clone())
                    }
                    "DELETE" => {
                        users.remove(&id);
                        (204, vec![], String::new())
                    }
                    _ => json_reply(405, json!({})),
                }
            }
            _ => json_reply(400, json!({ "error": "unexpected" })),
        }
    })
    .await;
    (server, users)
}

fn config(base: &str) -> HttpConfig {
    serde_json::from_value(json!({
        "base_url": format!("{base}/"),
        "headers": { "Authorization": "Bearer {{ secret }}", "X-Job": "{{ job_id }}" },
        "secret": SECRET,
        "operations": {
            "provision": {
                "method": "post",
                "path": "/api/users",
                "body": {
                    "email": "{{ user.emails | selectattr('primary') | map(attribute='value') | first }}",
                    "name": "{{ user.name.givenName }} {{ user.name.familyName }}",
                    "role": "{{ role }}",
                    "active": "{{ active }}",
                    "tags": ["idlcm", "{{ integration_id }}"],
                    "level": 3
                },
                "capture_id": "/data/id"
            },
            "update": {
                "method": "PATCH",
                "path": "/api/users/{{ app_id }}",
                "body": { "role": "{{ role }}", "active": "{{ active }}", "note": "{{ action }}: {{ role }}" }
            },
            "deprovision": { "method": "DELETE", "path": "/api/users/{{ app_id }}" }
        }
    }))
    .unwrap()
}

fn connector(cfg: &HttpConfig) -> Box<dyn Connector> {
    build(&ConnectorConfig::Http(cfg.clone()), crate::connector::testutil::outbound()).unwrap()
}

#[tokio::test]
async fn drives_a_rest_app_through_every_action() {
    let (server, users) = rest_app().await;
    let http = connector(&config(&server.base));
    let user = user();
    let admin = assignment(true, Some("admin"));

    // provision: POST, typed body, header from secret, app_id captured (a number: 41).
    let outcome = http.apply(&job(Action::Provision, &user, None, Some(&admin), None)).await.unwrap();
    assert_eq!(outcome, Outcome::Done { app_id: Some("41".into()), detail: Some("201 Created".into()) });
    let req = server.take().remove(0);
    assert_eq!((req.method.as_str(), req.uri.as_str()), ("POST", "/api/users"));
    assert_eq!(req.header("authorization"), Some("Bearer app-api-key"));
    assert_eq!(req.header("x-job"), Some("job-1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(req.header("user-agent").unwrap().starts_with("idlcm/"));
    assert_eq!(
        req.json(),
        json!({
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "role": "admin",
            "active": true,
            "tags": ["idlcm", "int-1"],
            "level": 3
        })
    );

    // update: PATCH with app_id in the path; role none stays null, none in text is empty.
    let no_role = assignment(true, None);
    let outcome = http.apply(&job(Action::Update, &user, Some(&admin), Some(&no_role), Some("41"))).await.unwrap();
    assert_eq!(outcome, Outcome::Done { app_id: Some("41".into()), detail: Some("200 OK".into()) });
    let req = server.take().remove(0);
    assert_eq!((req.method.as_str(), req.uri.as_str()), ("PATCH", "/api/users/41"));
    assert_eq!(req.json(), json!({ "role": null, "active": true, "note": "update: " }));

    // deactivate: no own operation, falls back to update with active=false.
    let off = assignment(false, None);
    http.apply(&job(Action::Deactivate, &user, Some(&no_role), Some(&off), Some("41"))).await.unwrap();
    let req = server.take().remove(0);
    assert_eq!(req.uri, "/api/users/41");
    assert_eq!(req.json(), json!({ "role": null, "active": false, "note": "deactivate: " }));
    assert_eq!(users.lock().unwrap()["41"]["active"], false);

    // reactivate: falls back to update.
    let viewer = assignment(true, Some("viewer"));
    http.apply(&job(Action::Reactivate, &user, Some(&off), Some(&viewer), Some("41"))).await.unwrap();
    let req = server.take().remove(0);
    assert_eq!((req.method.as_str(), req.uri.as_str()), ("PATCH", "/api/users/41"));
    assert_eq!(req.json(), json!({ "role": "viewer", "active": true, "note": "reactivate: viewer" }));

    // deprovision: DELETE; again: 404 means already gone.
    let outcome = http.apply(&job(Action::Deprovision, &user, Some(&viewer), None, Some("41"))).await.unwrap();
    assert_eq!(outcome, Outcome::Done { app_id: Some("41".into()), detail: Some("204 No Content".into()) });
    assert!(users.lock().unwrap().is_empty());
    let outcome = http.apply(&job(Action::Deprovision, &user, Some(&viewer), None, Some("41"))).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Done { app_id: Some("41".into()), detail: Some("404 Not Found: already gone".into()) }
    );
    let reqs = server.take();
    assert!(reqs.iter().all(|r| r.method == "DELETE" && r.uri == "/api/users/41" && r.body.is_empty()));
}

#[tokio::test]
async fn path_values_are_percent_encoded() {
    let (server, _) = rest_app().await;
    let http = connector(&config(&server.base));
    let user = user();
    let a = assignment(true, None);
    let err = http.apply(&job(Action::Update, &user, Some(&a), Some(&a), Some("../admin?x=1 2"))).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Permanent { status: Some(404), .. }), "{err:?}");
    assert_eq!(server.take()[0].uri, "/api/users/..%2Fadmin%3Fx%3D1%202");
}

#[tokio::test]
async fn app_errors_and_missing_operations_and_app_id() {
    let (server, _) = rest_app().await;
    let http = connector(&config(&server.base));
    let mut bad = user();
    bad["emails"] = json!([{ "value": "not-an-email", "primary": true }]);
    let a = assignment(true, Some("admin"));
    let err = http.apply(&job(Action::Provision, &bad, None, Some(&a), None)).await.unwrap_err();
    assert_eq!(
        err,
        ConnectorError::Permanent {
            message: r#"400 Bad Request; the app said: {"error":"email invalid"}"#.into(),
            status: Some(400)
        }
    );

    // Needs app_id, none known: fails before any request.
    let user = user();
    let err = http.apply(&job(Action::Update, &user, Some(&a), Some(&a), None)).await.unwrap_err();
    assert!(err.to_string().contains("needs the user's app_id"), "{err}");

    // No deprovision, no update: nothing to fall back to.
    let mut cfg = config(&server.base);
    cfg.operations.update = None;
    cfg.operations.deprovision = None;
    let http = connector(&cfg);
    let off = assignment(false, None);
    for (action, name) in [(Action::Deprovision, "deprovision"), (Action::Deactivate, "deactivate")] {
        let err = http.apply(&job(action, &user, Some(&a), Some(&off), Some("41"))).await.unwrap_err();
        assert_eq!(err, permanent(format!("connector has no '{name}' operation")));
    }
    assert!(server.requests().len() == 1);

    // Wrong secret from the environment: the app's 401 is permanent.
    let mut cfg = config(&server.base);
    cfg.secret = None;
    cfg.secret_ref = Some("env:IDLCM_TEST_HTTP_SECRET".into());
    // SAFETY: the variable name is unique to this test; no other thread reads it.
    unsafe { std::env::set_var("IDLCM_TEST_HTTP_SECRET", "wrong") };
    let err = connector(&cfg).apply(&job(Action::Provision, &user, None, Some(&a), None)).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Permanent { status: Some(401), .. }));
}

#[tokio::test]
async fn strict_undefined_fails_loudly() {
    let server = TestServer::start(|_| json_reply(200, json!({}))).await;
    let mut cfg = config(&server.base);
    cfg.operations.update.as_mut().unwrap().path = "/api/users/{{ app_idd }}".into();
    let http = connector(&cfg);
    let user = user();
    let a = assignment(true, None);
    let err = http.apply(&job(Action::Update, &user, Some(&a), Some(&a), Some("41"))).await.unwrap_err();
    let ConnectorError::Permanent { message, status: None } = &err else { panic!("{err:?}") };
    assert!(message.contains("'update' path template") && message.contains("undefined"), "{message}");

    // In a body, as a typed value and inside text, and an attribute typo.
    for body in
        [json!({ "x": "{{ rol }}" }), json!({ "x": "role: {{ rol }}" }), json!({ "x": "{{ user.nmae.givenName }}" })]
    {
        let mut cfg = config(&server.base);
        cfg.operations.update.as_mut().unwrap().body = Some(body);
        let err = connector(&cfg).apply(&job(Action::Update, &user, Some(&a), Some(&a), Some("41"))).await;
        let err = err.unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
        assert!(!err.to_string().contains(SECRET));
    }
    // `default` still works for optional values.
    let mut cfg = config(&server.base);
    let mut with_attrs = a.clone();
    with_attrs.attributes.insert("department".into(), json!("R&D"));
    cfg.operations.update.as_mut().unwrap().body = Some(
        json!({ "dept": "{{ attributes.department | default(none) }}", "cc": "{{ attributes.cost | default(none) }}" }),
    );
    connector(&cfg).apply(&job(Action::Update, &user, Some(&a), Some(&with_attrs), Some("41"))).await.unwrap();
    let reqs = server.take();
    assert_eq!(reqs.len(), 1, "only the last update was sent");
    assert_eq!(reqs[0].json(), json!({ "dept": "R&D", "cc": null }));
}

#[test]
fn build_fails_on_bad_configuration() {
    let base = "http://127.0.0.1:9";
    type Change = Box<dyn Fn(&mut HttpConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        ("syntax", Box::new(|c| c.operations.update.as_mut().unwrap().path = "/u/{{ app_id".into())),
        ("body syntax", Box::new(|c| c.operations.update.as_mut().unwrap().body = Some(json!({ "a": ["{% if %}"] })))),
        ("method", Box::new(|c| c.operations.update.as_mut().unwrap().method = "GE T".into())),
        ("header", Box::new(|c| _ = c.headers.insert("Bad Header".into(), "x".into()))),
        ("no secret", Box::new(|c| c.secret = None)),
        ("capture", Box::new(|c| c.operations.provision.as_mut().unwrap().capture_id = Some("id".into()))),
        ("no ops", Box::new(|c| c.operations = HttpOperations::default())),
        ("base", Box::new(|c| c.base_url = "ftp://x".into())),
        ("ref", Box::new(|c| c.secret_ref = Some("arn:aws:ssm:eu-west-1:1:parameter/x".into()))),
    ];
    for (what, change) in cases {
        let mut cfg = config(base);
        change(&mut cfg);
        let result = HttpConnector::new(&cfg, crate::connector::testutil::outbound());
        assert!(matches!(result, Err(ConnectorError::Permanent { .. })), "{what} should fail to build");
    }
    assert!(!format!("{:?}", config(base)).contains(SECRET));
}

#[test]
fn single_expressions() {
    assert_eq!(single_expression("{{ role }}"), Some("role"));
    assert_eq!(single_expression("{{- user.name.givenName -}}"), Some("user.name.givenName"));
    assert_eq!(single_expression("{{ a }} {{ b }}"), None);
    assert_eq!(single_expression(" {{ a }}"), None);
    assert_eq!(single_expression("{{ }}"), None);
}

#[tokio::test]
async fn deprovision_sees_the_last_role() {
    let server = TestServer::start(|_| (204, vec![], String::new())).await;
    let cfg: HttpConfig = serde_json::from_value(json!({
        "base_url": server.base,
        "operations": { "deprovision": { "method": "POST", "path": "/remove/{{ user.userName }}", "body": { "role": "{{ role }}", "active": "{{ active }}", "after": "{{ after }}" } } }
    }))
    .unwrap();
    let user = user();
    let before = Assignment { active: true, role: Some("admin".into()), ..Default::default() };
    connector(&cfg).apply(&job(Action::Deprovision, &user, Some(&before), None, None)).await.unwrap();
    let req = server.take().remove(0);
    assert_eq!(req.uri, "/remove/ada%40example.com");
    assert_eq!(req.json(), json!({ "role": "admin", "active": false, "after": null }));
    assert!(req.header("authorization").is_none());
}
