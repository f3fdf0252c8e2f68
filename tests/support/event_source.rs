//! A local SQS event source, doing what Lambda's does for a FIFO queue: long-poll up to 10
//! messages, hand them to the function as one batch, delete those not reported as failures
//! (`ReportBatchItemFailures`), leave failures to come back after their visibility timeout,
//! and let SQS redrive to the DLQ after `maxReceiveCount`.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use idlcm::worker::Delivery;

pub struct EventSource {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// Long-poll wait per receive, in seconds.
    pub wait_seconds: i32,
}

/// Counts of one poll.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    pub received: usize,
    pub failed: usize,
}

impl EventSource {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { sqs, queue_url: queue_url.into(), wait_seconds: 1 }
    }

    /// One receive and one invocation of `handler`, which returns the failed message ids.
    pub async fn poll_once<F, Fut>(&self, handler: &F) -> Result<Polled, String>
    where
        F: Fn(Vec<Delivery>) -> Fut,
        Fut: Future<Output = Vec<String>>,
    {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Polled::default());
        }
        let deliveries: Vec<Delivery> = messages
            .iter()
            .map(|m| Delivery {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle: m.receipt_handle().map(str::to_string),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect();
        let received = deliveries.len();
        let failed = handler(deliveries.clone()).await;
        let done: Vec<DeleteMessageBatchRequestEntry> = deliveries
            .iter()
            .filter(|d| !failed.contains(&d.message_id))
            .enumerate()
            .filter_map(|(i, d)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(d.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| format!("DeleteMessageBatch: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        }
        Ok(Polled { received, failed: failed.len() })
    }

    /// Polls until `done()` holds or `timeout` passes; returns whether `done()` held.
    /// `done()` is asked only when a poll comes back empty (the queue is idle for now).
    pub async fn run_until<F, Fut, D, DFut>(&self, handler: F, done: D, timeout: Duration) -> bool
    where
        F: Fn(Vec<Delivery>) -> Fut,
        Fut: Future<Output = Vec<String>>,
        D: Fn() -> DFut,
        DFut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.poll_once(&handler).await {
                Ok(p) if p.received == 0 => {
                    if done().await {
                        return true;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("event source: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        done().await
    }
}
