//! The `worker` Lambda: SQS FIFO batches with `ReportBatchItemFailures`. Clients are built
//! once per cold start; the logic is `idlcm::worker`.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use idlcm::config::{WorkerConfig, aws_config};
use idlcm::store::Store;
use idlcm::worker::{Delivery, Worker};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

fn deliveries(event: SqsEvent) -> Vec<Delivery> {
    event
        .records
        .into_iter()
        .map(|m| Delivery {
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle,
            body: m.body.unwrap_or_default(),
            receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
        })
        .collect()
}

/// The invocation's deadline (`context.deadline`: epoch milliseconds) as an `Instant`; `None`
/// when it is not in the future (`cargo lambda watch` sends none: 0).
fn deadline(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let left = context.deadline.checked_sub(now_ms).filter(|ms| *ms > 0)?;
    Some(std::time::Instant::now() + std::time::Duration::from_millis(left))
}

async fn handle(worker: &Worker, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let deadline = deadline(&event.context);
    let ms_left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()).as_millis() as u64);
    tracing::debug!(messages = event.payload.records.len(), ms_left, "batch");
    let failed = worker.handle_batch_until(&deliveries(event.payload), deadline).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    idlcm::telemetry::init();
    let config = WorkerConfig::from_env()?;
    let aws = aws_config().await;
    let worker = Worker {
        store: Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table.clone()),
        queue: idlcm::queue::Queue::new(aws_sdk_sqs::Client::new(&aws), config.jobs_queue_url.clone()),
        http: idlcm::connector::OutboundClients::new(config.allow_loopback_connectors),
        secrets: idlcm::secrets::Secrets::new(&aws),
        max_receives: config.max_receives,
        public_url: config.public_url.clone(),
        job_deadline: config.job_deadline,
        per_integration: config.per_integration,
    };
    let worker = &worker;
    run(service_fn(move |event| handle(worker, event))).await
}
