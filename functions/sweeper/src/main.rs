//! The `sweeper` Lambda, run on a schedule: re-sends jobs still `queued` after a grace period,
//! fails jobs past their deadline and records the dead-letter queue (`idlcm::sweeper`).

use idlcm::config::{SweeperConfig, aws_config};
use idlcm::queue::Queue;
use idlcm::store::Store;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    idlcm::telemetry::init();
    let config = SweeperConfig::from_env()?;
    let aws = aws_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table.clone());
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = Queue::new(sqs.clone(), config.jobs_queue_url.clone());
    let dlq = config.jobs_dlq_url.clone().map(|url| Queue::new(sqs, url));
    let (store, queue, dlq, grace) = (&store, &queue, dlq.as_ref(), config.grace);
    run(service_fn(move |_: LambdaEvent<Value>| async move {
        let swept = idlcm::sweeper::run(store, queue, dlq, grace).await?;
        // Every run, 0 included, so the alarms see data rather than "missing".
        idlcm::metrics::emit(
            &[],
            &[
                ("SweeperResends", idlcm::metrics::Unit::Count, swept.resent as f64),
                ("JobsOverdue", idlcm::metrics::Unit::Count, swept.overdue_failed as f64),
            ],
        );
        Ok::<_, Error>(json!({
            "resent": swept.resent,
            "overdue_failed": swept.overdue_failed,
            "dead_lettered": swept.dead_lettered,
        }))
    }))
    .await
}
