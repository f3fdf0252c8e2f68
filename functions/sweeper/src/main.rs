//! The `sweeper` Lambda, run on a schedule: re-sends jobs still `queued` after a grace period.

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
    let queue = Queue::new(aws_sdk_sqs::Client::new(&aws), config.jobs_queue_url.clone());
    let (store, queue, grace) = (&store, &queue, config.grace);
    run(service_fn(move |_: LambdaEvent<Value>| async move {
        let resent = idlcm::sweeper::sweep(store, queue, grace).await?;
        // Every run, 0 included, so the re-send alarm sees data rather than "missing".
        idlcm::metrics::emit(&[], &[("SweeperResends", idlcm::metrics::Unit::Count, resent as f64)]);
        Ok::<_, Error>(json!({ "resent": resent }))
    }))
    .await
}
