//! What operators see: the functions' JSON logs and EMF metrics, captured while a user goes
//! through the whole path (API → DynamoDB → SQS → worker → app), with secrets planted in
//! every place one could leak from: the admin and SCIM tokens, a wrong token, the user's
//! password and profile, a PII filter, an inline connector secret and one read from SSM.
//!
//! The production subscriber and filter (`idlcm::telemetry`) are installed at debug level, the
//! most the template allows, so a `debug!` that prints a secret fails this test as surely as
//! an `info!`. (The `request_id` here is a generated one: in-process there is no Lambda
//! context. `infra/lambda_event_test.py` checks the real one in the emulator's log.)

use std::io::Write;
use std::sync::Mutex;

use idlcm_tests::demo_app::DemoApp;
use idlcm_tests::world::{patch, settle};
use idlcm_tests::{ADMIN_TOKEN, Stack, captured_metrics, demo_integration};
use serde_json::{Value, json};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_log() -> Vec<Value> {
    let text = String::from_utf8(LOG.lock().unwrap().clone()).expect("logs are UTF-8");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_ids_and_never_secrets_and_metrics_cover_the_path() {
    // The production filter at the most verbose level the template allows (LogLevel DEBUG).
    let filter = idlcm::telemetry::filter_for("debug");
    tracing::subscriber::set_global_default(idlcm::telemetry::subscriber(|| Capture, filter)).unwrap();

    let stack = Stack::start().await;
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let inline_key = format!("planted-inline-app-key-{run}");
    let ssm_key = format!("planted-ssm-app-key-{run}");
    let password = format!("planted-Password-{run}!");
    let email = format!("planted.person.{run}@example.test");
    let given = format!("Plantedgiven{run}");
    let wrong_token = format!("idlcm_planted_wrong_token_{run}");

    // Two demo apps: one whose key the integration holds inline, one whose key is in SSM.
    let roles = vec!["admin".to_string(), "user".to_string()];
    let inline_app = DemoApp::start("127.0.0.1:0".parse().unwrap(), inline_key.clone(), roles.clone()).await.unwrap();
    let ssm_app = DemoApp::start("127.0.0.1:0".parse().unwrap(), ssm_key.clone(), roles).await.unwrap();
    let parameter = format!("/idlcm/test/{run}/demo-api-key");
    aws_sdk_ssm::Client::new(&stack.aws)
        .put_parameter()
        .name(&parameter)
        .value(&ssm_key)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("PutParameter");
    let inline = stack.create_integration_with(demo_integration("Inline secret", &inline_app.url, &inline_key)).await;
    let mut by_ref = demo_integration("SSM secret", &ssm_app.url, "unused");
    by_ref["connector"].as_object_mut().unwrap().remove("secret");
    by_ref["connector"]["secret_ref"] = json!(format!("ssm:{parameter}"));
    let by_ref = stack.create_integration_with(by_ref).await;

    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "password": password,
        "name": {"givenName": given, "familyName": "Family"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "roles": [{"value": "admin", "primary": true}],
        "active": true,
    });
    let worker = std::sync::Arc::new(stack.worker());
    let source = stack.event_source();
    for integration in [&inline, &by_ref] {
        let (s, v) = integration.call(&stack.http, "POST", "/Users", Some(user.clone())).await;
        assert_eq!(s, 201, "{v}");
        let uid = v["id"].as_str().unwrap().to_string();
        let filter = format!("/Users?filter=userName%20eq%20%22{}%22", email.replace('@', "%40"));
        let (s, v) = integration.call(&stack.http, "GET", &filter, None).await;
        assert_eq!((s, v["totalResults"].as_u64()), (200, Some(1)), "{v}");
        let change = patch(json!([{"op": "replace", "path": "name.familyName", "value": format!("Changed{run}")}]));
        let (s, v) = integration.call(&stack.http, "PATCH", &format!("/Users/{uid}"), Some(change)).await;
        assert_eq!(s, 200, "{v}");
        let wrong = idlcm_tests::Integration { token: wrong_token.clone(), ..integration.clone() };
        assert_eq!(wrong.call(&stack.http, "GET", "/Users", None).await.0, 401);
        settle(&stack, &worker, &source, &integration.id, std::time::Duration::from_secs(60)).await;
    }
    let admin = stack.http.get(format!("{}/admin/integrations", stack.api_url)).bearer_auth(ADMIN_TOKEN).send();
    assert_eq!(admin.await.unwrap().status().as_u16(), 200);

    // The user reached both apps: the inline key and the SSM one both worked.
    for (app, name) in [(&inline_app, "inline"), (&ssm_app, "ssm")] {
        let got = app.users().await.into_iter().find(|u| u.email == email);
        assert_eq!(got.and_then(|u| u.role).as_deref(), Some("admin"), "user not provisioned through the {name} key");
    }

    let lines = captured_log();
    assert!(lines.len() > 20, "too few log lines to judge: {}", lines.len());
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    let planted = [
        ("admin token", ADMIN_TOKEN.to_string()),
        ("SCIM token", inline.token.clone()),
        ("SCIM token", by_ref.token.clone()),
        ("wrong token", wrong_token.clone()),
        ("password", password.clone()),
        ("inline connector secret", inline_key.clone()),
        ("SSM connector secret", ssm_key.clone()),
        ("email / userName", email.clone()),
        ("given name", given.clone()),
        ("profile attribute", format!("Changed{run}")),
    ];
    for (what, secret) in &planted {
        for line in &text {
            assert!(!line.contains(secret.as_str()), "the {what} was logged: {line}");
        }
    }

    // Correlation: every line of an API request has its request id, SCIM ones the
    // integration's id; every line of a job has the job's and the integration's id.
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert!(requests.len() >= 8, "{requests:?}");
    for line in &lines {
        let target = line["target"].as_str().unwrap_or("");
        let route = line["route"].as_str().unwrap_or("");
        if line["message"] == "request" {
            assert!(line["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{line}");
            if route.starts_with("/scim/v2/") {
                assert!(line["integration_id"] == inline.id || line["integration_id"] == by_ref.id, "{line}");
            }
        }
        if target.starts_with("idlcm::worker") || target.starts_with("idlcm::connector") {
            assert!(line["job_id"].is_string() && line["integration_id"].is_string(), "{line}");
        }
        if line["message"] == "provisioning request committed" {
            assert!(line["request_id"].is_string() && line["provisioning_request_id"].is_string(), "{line}");
        }
    }
    assert!(lines.iter().any(|l| l["message"] == "job succeeded" && l["job_id"].is_string()), "no job line");

    // Metrics: SCIM requests by route and status, jobs by action and outcome, end-to-end latency.
    let metrics = captured_metrics();
    let has = |name: &str, dims: &[(&str, &str)]| {
        metrics.iter().any(|m| {
            m[name].is_number()
                && dims.iter().all(|(k, v)| m[*k] == *v)
                && m["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().iter().any(|d| d["Name"] == name)
        })
    };
    assert!(has("Requests", &[("Route", "POST /scim/v2/{iid}/Users"), ("Status", "201")]));
    assert!(has("Requests", &[("Route", "GET /scim/v2/{iid}/Users"), ("Status", "401")]));
    assert!(has("Requests", &[("Route", "PATCH /scim/v2/{iid}/Users/{id}"), ("Status", "200")]));
    assert!(has("Jobs", &[("Action", "provision"), ("Outcome", "succeeded")]));
    assert!(has("EndToEndLatency", &[("Action", "provision")]));
    for m in &metrics {
        let line = m.to_string();
        assert!(planted.iter().all(|(_, s)| !line.contains(s.as_str())), "a metric carries a secret: {line}");
        for id in [&inline.id, &by_ref.id] {
            assert!(!line.contains(id.as_str()), "an integration id as a dimension: {line}");
        }
    }
}
