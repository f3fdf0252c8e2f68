//! How the Activity listing scales with history: one page (20 requests) of an integration
//! whose table holds 1,000, 10,000 and 100,000 jobs, through `activity::list` (the code behind
//! `GET /admin/integrations/{id}/activity`) against the emulator.
//!
//! Run with `make bench`. Besides Criterion's latency it prints the `ScannedCount` of the page's
//! Query, the items DynamoDB reads (and bills) for it: the listing is a key-range read on `gsi1`,
//! so that count is the page size whatever the table holds. The emulator answers a GSI query
//! the same way (infra/moto_server.py, fix 4: sorted partitions and a bisect to the page, where
//! moto as published walks the whole table), so its latency shows the same independence.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use idlcm::service::activity::{ActivityParams, list};
use idlcm::store::provisioning::{JobRow, RequestRow, status};
use idlcm::store::{Store, keys};

const JOBS_PER_REQUEST: usize = 10;

/// A table holding `jobs` jobs (and their requests) of one integration.
async fn seeded(client: &aws_sdk_dynamodb::Client, template: &str, jobs: usize) -> (Store, String) {
    let table = idlcm_tests::clone_table(client, template).await;
    let iid = ulid::Ulid::new().to_string().to_lowercase();
    let now = idlcm::service::now();
    let mut items: Vec<idlcm::store::Item> = Vec::with_capacity(jobs + jobs / JOBS_PER_REQUEST);
    for r in 0..jobs.div_ceil(JOBS_PER_REQUEST) {
        let rid = ulid::Ulid::new().to_string();
        let request = RequestRow {
            pk: keys::integration_pk(&iid),
            sk: keys::request_sk(&rid),
            id: rid.clone(),
            integration_id: iid.clone(),
            created_at: now.clone(),
            method: "PATCH".into(),
            path: format!("/Groups/{r}"),
            resource_type: "Group".into(),
            resource_id: None,
            total: JOBS_PER_REQUEST as u64,
            succeeded: JOBS_PER_REQUEST as u64,
            failed: 0,
            superseded: 0,
            drift: 0,
            note: None,
            status: status::SUCCEEDED.into(),
            finished_at: Some(now.clone()),
            fanout_pending: false,
            next_job: None,
            expires_at: None,
        };
        items.push(serde_dynamo::to_item(&request).unwrap());
        for n in 1..=JOBS_PER_REQUEST {
            let jid = keys::job_id(&rid, n);
            let job = JobRow {
                pk: keys::integration_pk(&iid),
                sk: keys::job_sk(&jid),
                id: jid.clone(),
                request_id: rid.clone(),
                integration_id: iid.clone(),
                user_id: format!("U{n}"),
                user_name: None,
                action: "update".into(),
                before: None,
                after: None,
                changed: vec![],
                seq: 1,
                status: status::SUCCEEDED.into(),
                attempts: 1,
                error: None,
                detail: None,
                applied_action: None,
                created_at: now.clone(),
                started_at: None,
                finished_at: None,
                sent: None,
                sent_seq: None,
                awaiting_until: None,
                waiting_for: None,
                retries: 0,
                user_snapshot: None,
                basis: None,
                found_app_id: None,
                solo: false,
                gsi1pk: None,
                gsi1sk: None,
                gsi2pk: None,
                gsi2sk: None,
                expires_at: None,
            };
            items.push(serde_dynamo::to_item(&job).unwrap());
        }
    }
    idlcm_tests::batch_put(client, &table, &items).await;
    (Store::new(client.clone(), table), iid)
}

/// Items DynamoDB reads for the first page (the same key condition as the listing).
async fn scanned_count(store: &Store, iid: &str) -> i32 {
    store
        .client
        .query()
        .table_name(&store.table)
        .key_condition_expression("pk = :p AND begins_with(sk, :r)")
        .expression_attribute_values(":p", AttributeValue::S(keys::integration_pk(iid)))
        .expression_attribute_values(":r", AttributeValue::S(keys::REQUEST_PREFIX.to_string()))
        .scan_index_forward(false)
        .limit(20)
        .send()
        .await
        .unwrap()
        .scanned_count
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let template = idlcm_tests::require_env("IDLCM_TABLE");
    let client = rt.block_on(async { aws_sdk_dynamodb::Client::new(&idlcm::config::aws_config().await) });
    let mut group = c.benchmark_group("activity_list_page");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for jobs in [1_000usize, 10_000, 100_000] {
        let started = std::time::Instant::now();
        let (store, iid) = rt.block_on(seeded(&client, &template, jobs));
        let scanned = rt.block_on(scanned_count(&store, &iid));
        println!(
            "{jobs} jobs stored (seeded in {:.1} s): a 20-request page reads {scanned} items",
            started.elapsed().as_secs_f64()
        );
        let params = ActivityParams { limit: Some("20".into()), ..Default::default() };
        group.bench_with_input(BenchmarkId::from_parameter(jobs), &jobs, |b, _| {
            b.to_async(&rt).iter(|| async { list(&store, &iid, &params).await.unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
