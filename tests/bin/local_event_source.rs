//! `make run`'s Lambda event sources. Feeds the job queue to the `worker` function served by
//! `cargo lambda watch`, as Lambda's SQS event source mapping does (batches of up to 10,
//! `ReportBatchItemFailures`, failures left to come back, redrive by SQS), and invokes the
//! `sweeper` on a schedule. Stops on Ctrl-C / SIGTERM.
//!
//! It also prints each provisioning request once it completes (time, trigger, progress, status).
//!
//! Environment: `IDLCM_TABLE`, `IDLCM_JOBS_QUEUE_URL`, `IDLCM_LAMBDA_ENDPOINT` (the watch server, e.g.
//! `http://127.0.0.1:9000`), `IDLCM_SWEEP_EVERY_SECONDS` (default 60), and the AWS variables.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idlcm::queue::JobMessage;
use idlcm::store::provisioning::status;
use idlcm::store::{Store, keys};

use idlcm::worker::Delivery;
use idlcm_tests::event_source::EventSource;
use serde_json::{Value, json};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("local-event-source: {name} is not set");
        std::process::exit(2)
    })
}

/// The SQS event Lambda would deliver for these messages.
fn sqs_event(batch: &[Delivery], queue_arn: &str) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|d| {
            json!({
                "messageId": d.message_id,
                "receiptHandle": d.receipt_handle,
                "body": d.body,
                "attributes": { "ApproximateReceiveCount": d.receive_count.to_string() },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            })
        })
        .collect();
    json!({ "Records": records })
}

async fn invoke(http: &reqwest::Client, endpoint: &str, function: &str, payload: &Value) -> Result<Value, String> {
    let url = format!("{endpoint}/2015-03-31/functions/{function}/invocations");
    let resp = http.post(&url).json(payload).send().await.map_err(|e| format!("{function}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{function}: HTTP {status}: {body}"));
    }
    Ok(body)
}

/// Prints the requests of the jobs seen so far once they are finished.
async fn report_finished(store: &Store, watching: &Mutex<HashSet<(String, String)>>) {
    let pending: Vec<(String, String)> = watching.lock().expect("lock").iter().cloned().collect();
    for (iid, rid) in pending {
        let Ok(Some(r)) = store.get_request(&iid, &rid).await else { continue };
        if matches!(r.status.as_str(), status::REQUESTED | status::IN_PROGRESS) {
            continue;
        }
        watching.lock().expect("lock").remove(&(iid, rid));
        let time = r.finished_at.as_deref().and_then(|t| t.get(11..19)).unwrap_or("");
        println!(
            "{time}  {} {:<45} {}/{} succeeded{}  {}",
            r.method,
            r.path,
            r.succeeded + r.superseded,
            r.total,
            if r.failed > 0 { format!(", {} failed", r.failed) } else { String::new() },
            r.status
        );
    }
}

#[tokio::main]
async fn main() {
    let queue_url = env("IDLCM_JOBS_QUEUE_URL");
    let endpoint = env("IDLCM_LAMBDA_ENDPOINT").trim_end_matches('/').to_string();
    let sweep_every =
        Duration::from_secs(std::env::var("IDLCM_SWEEP_EVERY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60));
    let aws = idlcm::config::aws_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), env("IDLCM_TABLE"));
    let watching: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let source = EventSource::new(aws_sdk_sqs::Client::new(&aws), queue_url.clone());
    let queue_arn = format!("arn:aws:sqs:local:000000000000:{}", queue_url.rsplit('/').next().unwrap_or("jobs"));
    let _ = idlcm::connector::http_client(); // installs the TLS provider
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client");
    println!("local-event-source: feeding {queue_url} to the worker at {endpoint}; sweeper every {sweep_every:?}");

    let handler = |batch: Vec<Delivery>| {
        for d in &batch {
            if let Ok(m) = serde_json::from_str::<JobMessage>(&d.body)
                && let Some(rid) = keys::request_of_job(&m.job_id)
            {
                watching.lock().expect("lock").insert((m.integration_id.clone(), rid.to_string()));
            }
        }
        let (http, endpoint, event) = (http.clone(), endpoint.clone(), sqs_event(&batch, &queue_arn));
        async move {
            match invoke(&http, &endpoint, "worker", &event).await {
                Ok(resp) => resp["batchItemFailures"]
                    .as_array()
                    .map(|f| f.iter().filter_map(|i| i["itemIdentifier"].as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                Err(e) => {
                    // The function failed as a whole: Lambda retries the whole batch.
                    eprintln!("local-event-source: {e}");
                    batch.iter().map(|d| d.message_id.clone()).collect()
                }
            }
        }
    };

    let mut last_sweep = Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            polled = source.poll_once(&handler) => match polled {
                Ok(p) if p.received > 0 => {
                    if p.failed > 0 {
                        println!("local-event-source: {} job(s) to retry", p.failed);
                    }
                    report_finished(&store, &watching).await;
                }
                Ok(_) => report_finished(&store, &watching).await,
                Err(e) => {
                    eprintln!("local-event-source: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = Instant::now();
            match invoke(&http, &endpoint, "sweeper", &json!({ "source": "local-schedule" })).await {
                Ok(v) if v["resent"].as_u64().unwrap_or(0) > 0 => {
                    println!("local-event-source: sweeper re-sent {}", v["resent"])
                }
                Ok(_) => {}
                Err(e) => eprintln!("local-event-source: {e}"),
            }
        }
    }
    println!("local-event-source: stopped");
}
