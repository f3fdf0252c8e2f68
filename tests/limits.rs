//! Per-integration limits under load (docs/operations.md "Limits"): integration A sends far
//! over its limit through two API instances (one table, two in-memory counters, as two warm
//! Lambda instances), while B sends at a normal rate. A gets 429 with `Retry-After` and a SCIM
//! error, B gets none, and every request of A that was admitted is kept with its job (one user
//! row and one job each; none of a refused one). Loopback only; bounded by its request counts.

use std::time::{Duration, Instant};

use idlcm::store::keys;
use idlcm_tests::Stack;
use idlcm_tests::world::user_body;
use serde_json::{Value, json};

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn create(http: &reqwest::Client, url: String, token: &str, name: String) -> Answer {
    let started = Instant::now();
    let resp = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(user_body(&name).to_string())
        .send()
        .await
        .expect("loopback request");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer { status, retry_after, body, took: started.elapsed() }
}

/// Rows of the partition whose sort key starts with `prefix` (the table queried directly).
async fn count(stack: &Stack, iid: &str, prefix: &str) -> usize {
    let client = stack.store().client;
    let (mut total, mut start) = (0, None);
    loop {
        let out = client
            .query()
            .table_name(&stack.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(keys::integration_pk(iid)))
            .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S(prefix.into()))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Query");
        total += out.count as usize;
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return total,
        }
    }
}

#[tokio::test]
async fn an_integration_over_its_limit_gets_429s_and_another_none() {
    let stack = Stack::start().await;
    let second = stack.another_api().await;
    let webhook = |name: &str, limits: Option<Value>| {
        let mut c = json!({
            "name": name,
            "connector": {"type": "webhook", "url": "http://127.0.0.1:9/unused", "secret": "test"},
            "attributes": ["userName"],
        });
        if let Some(l) = limits {
            c["limits"] = l;
        }
        c
    };
    // A: 5 per second with a burst of 10, so windows of 2 s that admit 10 each.
    let a = stack.create_integration_with(webhook("A", Some(json!({"requests_per_second": 5, "burst": 10})))).await;
    let b = stack.create_integration_with(webhook("B", None)).await;
    let instances = [stack.api_url.clone(), second];
    let path = |base: &str, iid: &str| format!("{base}/scim/v2/{iid}/Users");

    let started = Instant::now();
    // A: 240 creates, 8 at a time, spread over both instances.
    let flood = async {
        let mut answers = Vec::new();
        for round in 0..30 {
            let batch = (0..8).map(|i| {
                let n = round * 8 + i;
                create(&stack.http, path(&instances[n % 2], &a.id), &a.token, format!("a{n}@example.com"))
            });
            answers.extend(futures::future::join_all(batch).await);
        }
        answers
    };
    // B: 30 creates, about 10 a second, one after the other.
    let steady = async {
        let mut answers = Vec::new();
        for n in 0..30 {
            let next = Instant::now() + Duration::from_millis(100);
            answers
                .push(create(&stack.http, path(&instances[n % 2], &b.id), &b.token, format!("b{n}@example.com")).await);
            tokio::time::sleep_until(next.into()).await;
        }
        answers
    };
    let (a_answers, b_answers) = tokio::join!(flood, steady);
    let elapsed = started.elapsed();

    let created_a = a_answers.iter().filter(|r| r.status == 201).count();
    let limited: Vec<&Answer> = a_answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(created_a + limited.len(), a_answers.len(), "A gets 201 or 429, nothing else");
    assert!(!limited.is_empty(), "A is limited");
    for r in &limited {
        let secs: u64 = r.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After in whole seconds");
        assert!((1..=2).contains(&secs), "Retry-After {secs}: at most one window");
        assert_eq!(r.body["status"], "429", "a SCIM error: {}", r.body);
        assert_eq!(r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    }
    // Each 2-second window admits 10, plus at most the first request of each instance.
    let windows = elapsed.as_secs() / 2 + 2;
    assert!(created_a as u64 <= windows * (10 + 2), "{created_a} admitted in {elapsed:?}");
    assert!(b_answers.iter().all(|r| r.status == 201), "B is never limited");

    // Nothing A was told 201 for is lost, nothing it was refused was kept: one user and one
    // job per 201.
    assert_eq!(count(&stack, &a.id, keys::USER_PREFIX).await, created_a);
    assert_eq!(count(&stack, &a.id, "JOB#").await, created_a);
    assert_eq!(count(&stack, &b.id, keys::USER_PREFIX).await, b_answers.len());

    let mut b_ms: Vec<u128> = b_answers.iter().map(|r| r.took.as_millis()).collect();
    b_ms.sort();
    eprintln!(
        "LIMITS A: {} requests, {} created, {} answered 429 in {:.1} s; B: {} requests, 0 answered 429, latency p50 {} ms, max {} ms",
        a_answers.len(),
        created_a,
        limited.len(),
        elapsed.as_secs_f64(),
        b_answers.len(),
        b_ms[b_ms.len() / 2],
        b_ms[b_ms.len() - 1]
    );
}
