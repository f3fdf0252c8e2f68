//! Deleting an integration leaves nothing behind (docs/contract.md "Limits and offboarding"):
//! its SCIM token stops with the delete, every row of it is purged in pages from the queue,
//! a purge whose message was lost is resumed by the sweeper, another integration is untouched,
//! and the audit trail keeps who deleted it. The API in-process, DynamoDB and SQS on moto, the
//! real worker and sweeper, the demo app on loopback.

use std::time::Duration;

use idlcm::store::keys;
use idlcm_tests::ADMIN_TOKEN;
use idlcm_tests::world::{World, handler};
use serde_json::Value;

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
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = w
        .stack
        .http
        .request(m, format!("{}/admin{path}", w.stack.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
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
    let (s, refused) = admin(&w, "DELETE", &format!("/integrations/{iid}?deprovision=true")).await;
    assert_eq!((s, refused["status"].as_str()), (501, Some("501")), "not built yet, and nothing deleted: {refused}");
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
