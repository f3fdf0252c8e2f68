//! Reference for init time (`make bench`, BENCHMARKS.md): a function that builds the DynamoDB
//! and SQS clients once, as idlcm's functions do, and answers every event with `{}`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (dynamodb, sqs) = (&dynamodb, &sqs);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let _ = (dynamodb, sqs);
        Ok::<_, Error>(serde_json::json!({}))
    }))
    .await
}
