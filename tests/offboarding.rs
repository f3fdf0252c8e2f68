//! Deleting an integration leaves nothing behind (docs/contract.md "Limits and offboarding"):
//! its SCIM token stops with the delete, every row of it is purged in pages from the queue,
//! a purge whose message was lost is resumed by the sweeper, another integration is untouched,
//! and the audit trail keeps who deleted it. With `deprovision=true` every managed user is
//! first deprovisioned (or deactivated) in the app as one `OFFBOARD` request, then the purge. The API in-process, DynamoDB and SQS on moto, the
//! real worker and sweeper, the demo app on loopback.

use std::time::Duration;

use idlcm::store::keys;
use idlcm_tests::ADMIN_TOKEN;
use idlcm_tests::demo_app::{FaultResponse, FaultSpec};
use idlcm_tests::world::{World, handler};
use serde_json::{Value, json};

/// How many rows a partition holds now (the table queried directly).
async fn rows(w: &World, pk: String) -> usize {
    let client = w.stack.store().client;
    let mut count = 0;
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(&w.stack.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Query");
        count += out.count as usize;
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return count,
        }
    }
}

async fn admin(w: &World, method: &str, path: &str) -> (u16, Value) {
    admin_as(w, ADMIN_TOKEN, method, path, None).await
}

async fn admin_as(w: &World, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = w.stack.http.request(m, format!("{}/admin{path}", w.stack.api_url)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// Runs the worker until the integration's partition and its purge marker are gone.
async fn purged(w: &World, iid: &str) -> bool {
    let done = || async { rows(w, keys::integration_pk(iid)).await == 0 && rows(w, keys::purge_pk(iid)).await == 0 };
    w.source.run_until(handler(w.worker.clone()), done, Duration::from_secs(180)).await
}

#[tokio::test]
async fn deleting_an_integration_stops_its_token_at_once_and_purges_every_row() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    let admins = w.create_group("App Admins").await;
    let mut uids = Vec::new();
    for n in 0..60 {
        uids.push(w.create_user(&format!("p{n}@example.com")).await);
    }
    let members: Vec<&str> = uids.iter().take(10).map(String::as_str).collect();
    w.members(&admins, "add", &members).await;
    w.settle().await;
    let before = rows(&w, keys::integration_pk(&iid)).await;
    assert!(before > idlcm::worker::PURGE_PAGE as usize, "{before} rows: the purge takes more than one page");

    // Another integration, which must keep its rows.
    let other = w.stack.create_integration("Other").await;
    let other_rows = rows(&w, keys::integration_pk(&other.id)).await;

    // The first purge message is lost (as if the process died right after the delete).
    let (s, refused) = admin(&w, "DELETE", &format!("/integrations/{iid}?deprovision=true&mode=erase")).await;
    assert_eq!(
        (s, refused["scimType"].as_str()),
        (400, Some("invalidValue")),
        "an unknown mode changes nothing: {refused}"
    );
    assert_eq!(w.call("GET", "/Users?count=1", None).await.0, 200);
    let (s, deleted) = admin(&w, "DELETE", &format!("/integrations/{iid}")).await;
    assert_eq!(s, 202, "{deleted}");
    assert_eq!(deleted["deprovisioned"], false, "it says the app was left as it is: {deleted}");
    assert_eq!(w.call("GET", "/Users", None).await.0, 401, "its SCIM token stops with the delete");
    assert_eq!(admin(&w, "GET", &format!("/integrations/{iid}")).await.0, 404);
    let sqs = w.stack.sqs();
    let lost = sqs
        .receive_message()
        .queue_url(&w.stack.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    for m in lost.messages.unwrap_or_default() {
        assert!(m.body().unwrap_or("").contains("\"purge\""), "only the purge message is queued: {:?}", m.body());
        sqs.delete_message()
            .queue_url(&w.stack.queue_url)
            .receipt_handle(m.receipt_handle.unwrap())
            .send()
            .await
            .unwrap();
    }
    assert_eq!(rows(&w, keys::integration_pk(&iid)).await, before - 1, "only the configuration is gone so far");
    assert_eq!(rows(&w, keys::purge_pk(&iid)).await, 1, "the purge marker waits");

    // The sweeper resumes it; the worker deletes every row in pages, the marker last.
    let resumed = idlcm::sweeper::resume_purges(&w.stack.store(), &w.stack.queue(), Duration::ZERO).await.unwrap();
    assert_eq!(resumed, 1);
    assert!(purged(&w, &iid).await, "{} rows left", rows(&w, keys::integration_pk(&iid)).await);
    assert_eq!(rows(&w, keys::integration_pk(&other.id)).await, other_rows, "another integration is untouched");
    assert_eq!(other.call(&w.stack.http, "GET", "/Users", None).await.0, 200);

    // Who deleted it stays in the audit trail.
    let (_, trail) = admin(&w, "GET", "/audit?limit=200").await;
    let entry = trail["items"].as_array().unwrap().iter().find(|e| e["action"] == "integration.delete").cloned();
    let entry = entry.expect("the delete is audited");
    assert_eq!(
        (entry["integration_id"].as_str(), entry["actor"]["kind"].as_str()),
        (Some(iid.as_str()), Some("admin"))
    );
}

/// The last state of the `OFFBOARD` request seen after each worker batch (the request's row
/// goes with the purge, which follows its last job in a later batch).
type Seen = std::sync::Arc<std::sync::Mutex<Option<idlcm::store::provisioning::RequestRow>>>;

/// Runs the worker until `done`, recording the request after every batch.
async fn drain_watching(w: &World, iid: &str, request_id: &str, seen: &Seen, done: impl AsyncFn() -> bool) -> bool {
    let (store, worker) = (w.stack.store(), w.worker.clone());
    let run = |batch| {
        let (store, worker, seen) = (store.clone(), worker.clone(), seen.clone());
        let (iid, request_id) = (iid.to_string(), request_id.to_string());
        async move {
            let failed = handler(worker)(batch).await;
            if let Ok(Some(row)) = store.get_request(&iid, &request_id).await {
                *seen.lock().unwrap() = Some(row);
            }
            failed
        }
    };
    w.source.run_until(run, || done(), Duration::from_secs(240)).await
}

#[tokio::test]
async fn deleting_with_deprovision_removes_every_managed_user_from_the_app_then_every_row() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    // Two planning pages of users the app holds, and one deactivated through SCIM (its
    // account, inactive, is removed too).
    let seeded = w.seed_provisioned(None, 205).await;
    let leaver = w.create_user("leaver@example.com").await;
    w.settle().await;
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "value": {"active": false}}]});
    assert_eq!(w.call("PATCH", &format!("/Users/{leaver}"), Some(deactivate)).await.0, 200);
    w.settle().await;
    assert_eq!(w.demo.users().await.len(), seeded.len() + 1);
    let (s, owner) =
        admin_as(&w, ADMIN_TOKEN, "POST", "/owners", Some(json!({"name": "App team", "integrations": [iid]}))).await;
    assert_eq!(s, 201, "{owner}");
    let owner_token = owner["token"].as_str().unwrap().to_string();
    assert_eq!(admin_as(&w, &owner_token, "GET", &format!("/integrations/{iid}"), None).await.0, 200);
    w.demo.clear_events().await;

    let (s, started) = admin(&w, "DELETE", &format!("/integrations/{iid}?deprovision=true")).await;
    assert_eq!(s, 202, "{started}");
    let request_id = started["request_id"].as_str().expect("the OFFBOARD request").to_string();
    assert_eq!((started["mode"].as_str(), started["deprovisioned"].as_bool()), (Some("deprovision"), Some(true)));
    // Its tokens stop at once: the SCIM token, and the owner's for this integration.
    assert_eq!(w.call("GET", "/Users", None).await.0, 401, "the SCIM token stops with the delete");
    assert_eq!(admin_as(&w, &owner_token, "GET", &format!("/integrations/{iid}"), None).await.0, 404);
    let (s, refused) = admin(&w, "POST", &format!("/integrations/{iid}/tokens")).await;
    assert_eq!(s, 409, "no new token while offboarding: {refused}");
    let (s, activity) = admin(&w, "GET", &format!("/integrations/{iid}/activity")).await;
    assert_eq!(s, 200, "{activity}");
    let items = activity["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], request_id.as_str(), "one Activity request, the newest");
    assert_eq!(items[0]["trigger"]["method"], "OFFBOARD");

    let seen: Seen = Default::default();
    let gone = async || rows(&w, keys::integration_pk(&iid)).await == 0 && rows(&w, keys::purge_pk(&iid)).await == 0;
    assert!(
        drain_watching(&w, &iid, &request_id, &seen, gone).await,
        "{} rows left",
        rows(&w, keys::integration_pk(&iid)).await
    );

    assert!(w.demo.users().await.is_empty(), "every managed account removed: {:?}", w.demo.users().await.len());
    let deletes = w.demo.events().await.into_iter().filter(|e| e.method == "DELETE").count();
    assert_eq!(deletes, seeded.len() + 1, "one DELETE per account, none twice");
    let request = seen.lock().unwrap().clone().expect("the request was seen");
    assert_eq!(
        (request.status.as_str(), request.total, request.succeeded, request.failed),
        ("succeeded", seeded.len() as u64 + 1, seeded.len() as u64 + 1, 0),
        "one request, a job per account"
    );
    // The audit trail says who deleted it, and how.
    let (_, trail) = admin(&w, "GET", "/audit?limit=200").await;
    let entry = trail["items"].as_array().unwrap().iter().find(|e| e["action"] == "integration.delete").cloned();
    let entry = entry.expect("the delete is audited");
    assert_eq!(entry["changes"]["offboard"]["after"], "deprovision");
    let (_, owner_now) = admin(&w, "GET", &format!("/owners/{}", owner["id"].as_str().unwrap())).await;
    assert_eq!(owner_now["integrations"], json!([]), "the owner no longer lists it: {owner_now}");
}

#[tokio::test]
async fn an_offboarding_with_a_failed_job_keeps_the_integration_until_it_is_deleted_without_deprovision() {
    let w = World::new().await;
    let iid = w.scim.id.clone();
    let seeded = w.seed_provisioned(None, 6).await;
    // The app refuses one deactivation (`POST /api/users/{id}/deactivate`) for good: 400 is not retried.
    w.demo.inject(FaultSpec::new([FaultResponse::status(400)]).matching("post", "/api/users/")).await.unwrap();

    let (s, started) = admin(&w, "DELETE", &format!("/integrations/{iid}?deprovision=true&mode=deactivate")).await;
    assert_eq!((s, started["mode"].as_str()), (202, Some("deactivate")), "{started}");
    let request_id = started["request_id"].as_str().unwrap().to_string();
    let seen: Seen = Default::default();
    let ended = async || w.demo.users().await.iter().filter(|u| !u.active).count() == seeded.len() - 1;
    assert!(drain_watching(&w, &iid, &request_id, &seen, ended).await, "app: {:?}", w.demo.users().await);
    let users = w.demo.users().await;
    assert_eq!(users.len(), seeded.len(), "deactivated, not removed");
    let request = seen.lock().unwrap().clone().unwrap();
    assert_eq!((request.status.as_str(), request.failed), ("partially_failed", 1));

    // Not purged: the integration waits, offboarding, tokens stopped, the failure in Activity.
    let (s, config) = admin(&w, "GET", &format!("/integrations/{iid}")).await;
    assert_eq!(s, 200);
    assert_eq!(config["offboarding"]["request_id"], request_id.as_str(), "{config}");
    assert_eq!(w.call("GET", "/Users", None).await.0, 401);
    let (s, refused) =
        admin_as(&w, ADMIN_TOKEN, "PUT", &format!("/integrations/{iid}"), Some(config["config"].clone())).await;
    assert_eq!(s, 409, "no configuration change while offboarding: {refused}");

    // The admin decides: delete without deprovision purges now, leaving that account as it is.
    let (s, deleted) = admin(&w, "DELETE", &format!("/integrations/{iid}")).await;
    assert_eq!(s, 202, "{deleted}");
    assert!(purged(&w, &iid).await);
    assert_eq!(w.demo.users().await.iter().filter(|u| u.active).count(), 1, "the refused one stays as it was");
}
