//! The job queue (SQS FIFO): one message per job, `MessageGroupId` = integration + user (one
//! change at a time per user, in order), `MessageDeduplicationId` = job id (a re-send within
//! SQS's 5-minute window is dropped; later duplicates are harmless: the worker reconciles).

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};

/// What a job message carries: enough to find the job row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub integration_id: String,
    pub job_id: String,
    pub user_id: String,
    /// Bumped by an admin retry, so SQS does not drop the new message as a duplicate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry: u32,
    /// Set when a waiting job is woken (its attempt count then), for the same reason.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wake: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobMessage {
    pub fn new(integration_id: &str, job_id: &str, user_id: &str) -> Self {
        Self {
            integration_id: integration_id.into(),
            job_id: job_id.into(),
            user_id: user_id.into(),
            retry: 0,
            wake: 0,
        }
    }

    pub fn dedup_id(&self) -> String {
        let mut id = self.job_id.clone();
        if self.retry > 0 {
            id.push_str(&format!(".retry{}", self.retry));
        }
        if self.wake > 0 {
            id.push_str(&format!(".w{}", self.wake));
        }
        id
    }

    pub fn group_id(&self) -> String {
        format!("{}:{}", self.integration_id, self.user_id)
    }
}

/// A fan-out page to run (`store::fanout`): the task row holds where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutMessage {
    pub integration_id: String,
    /// The task id.
    pub fanout: String,
    /// The page to run (a message for a page already run is a duplicate).
    pub page: u32,
    /// Set by the sweeper's re-send (a time), so SQS does not drop it as a duplicate of the
    /// lost message within its 5-minute deduplication window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<String>,
}

/// A failure to tell the integration's owners about (`notify`, docs/contract.md "Failure
/// notifications"): sent when a job fails for good, and when its request ends with failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyMessage {
    pub integration_id: String,
    /// `job.failed` or `request.failed` / `request.partially_failed`.
    pub notify: String,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl NotifyMessage {
    /// The event's id: the receiver's deduplication key, and SQS's.
    pub fn event_id(&self) -> String {
        match &self.job_id {
            Some(job) => format!("{}.{job}", self.notify),
            None => format!("{}.{}", self.notify, self.request_id),
        }
    }
}

/// A page of a deleted integration's purge (`store::purge`): `purge` is the integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeMessage {
    pub purge: String,
    pub page: u32,
    /// Set by the sweeper's re-send, so SQS does not drop it as a duplicate of a lost message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<String>,
}

/// Any message on the job queue (untagged: the first shape that fits; a notification has
/// the job message's fields too, so it is tried before it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Purge(PurgeMessage),
    Fanout(FanoutMessage),
    Notify(NotifyMessage),
    Job(JobMessage),
}

#[derive(Clone, Debug)]
pub struct Queue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

/// A message read by a reader of our own (the sweeper reading the dead-letter queue).
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Option<String>,
    pub receipt_handle: Option<String>,
}

/// SQS accepts at most 10 entries per batch.
const BATCH: usize = 10;

impl Queue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    /// Hides a received message for `delay` (a retry's backoff; SQS allows 12 hours at most).
    /// `false` when SQS refused: not fatal, the message comes back after the queue's
    /// visibility timeout instead.
    pub async fn delay(&self, receipt_handle: &str, delay: Duration) -> bool {
        let secs = delay.as_secs().min(43_200) as i32;
        let sent = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs)
            .send()
            .await;
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ChangeMessageVisibility failed");
                false
            }
        }
    }

    /// Up to 10 messages, hidden from other readers for `hide` while they are handled. `None`
    /// when SQS refused (logged).
    pub async fn receive(&self, hide: Duration) -> Option<Vec<Received>> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH as i32)
            .visibility_timeout(hide.as_secs().min(43_200) as i32)
            .send()
            .await;
        match received {
            Ok(out) => Some(
                out.messages
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| Received { body: m.body, receipt_handle: m.receipt_handle })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                None
            }
        }
    }

    /// Deletes a message read with [`Self::receive`]. `false` when SQS refused (logged): it
    /// comes back after its visibility timeout.
    pub async fn delete(&self, receipt_handle: &str) -> bool {
        match self.client.delete_message().queue_url(&self.url).receipt_handle(receipt_handle).send().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessage failed");
                false
            }
        }
    }

    /// Sends jobs in batches of 10, retrying failed entries twice. Returns how many could not
    /// be sent; those stay `queued` in DynamoDB and the sweeper re-sends them.
    pub async fn send(&self, messages: &[JobMessage]) -> usize {
        let mut unsent = 0;
        for chunk in messages.chunks(BATCH) {
            let mut pending: Vec<&JobMessage> = chunk.iter().collect();
            for attempt in 0..3 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                pending = self.send_batch(&pending).await;
            }
            if !pending.is_empty() {
                tracing::warn!(unsent = pending.len(), "jobs not sent to SQS; the sweeper will re-send them");
                unsent += pending.len();
            }
        }
        unsent
    }

    /// Sends one fan-out page message (its own FIFO group: pages run one after the other, and
    /// beside the users' jobs). `false` if SQS refused it: the sweeper re-sends stalled tasks.
    pub async fn send_fanout(&self, m: &FanoutMessage) -> bool {
        let Ok(body) = serde_json::to_string(m) else { return false };
        let result = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(format!("{}:fanout:{}", m.integration_id, m.fanout))
            .message_deduplication_id(match &m.resend {
                None => format!("fanout.{}.{}", m.fanout, m.page),
                Some(r) => format!("fanout.{}.{}.{r}", m.fanout, m.page),
            })
            .send()
            .await;
        if let Err(e) = &result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "fan-out message not sent; the sweeper will re-send it");
        }
        result.is_ok()
    }

    /// Sends notifications (their own FIFO group per integration: they never hold up a user's
    /// jobs). A notification SQS refuses is logged and counted, not retried further: the
    /// failure it reports stays in Activity either way.
    pub async fn send_notifications(&self, messages: &[NotifyMessage]) {
        for m in messages {
            let Ok(body) = serde_json::to_string(m) else { continue };
            let result = self
                .client
                .send_message()
                .queue_url(&self.url)
                .message_body(body)
                .message_group_id(format!("{}:notify", m.integration_id))
                .message_deduplication_id(m.event_id())
                .send()
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "failure notification not queued");
                crate::metrics::emit(&[], &[("NotificationsFailed", crate::metrics::Unit::Count, 1.0)]);
            }
        }
    }

    /// Sends one purge page (its own FIFO group: pages run one after the other). `false` if
    /// SQS refused it: the sweeper resumes stalled purges from their markers.
    pub async fn send_purge(&self, m: &PurgeMessage) -> bool {
        let Ok(body) = serde_json::to_string(m) else { return false };
        let dedup = match &m.resend {
            None => format!("purge.{}.{}", m.purge, m.page),
            Some(r) => format!("purge.{}.{}.{r}", m.purge, m.page),
        };
        let result = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(format!("{}:purge", m.purge))
            .message_deduplication_id(
                dedup.chars().filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c)).collect::<String>(),
            )
            .send()
            .await;
        if let Err(e) = &result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "purge message not sent; the sweeper will resume it");
        }
        result.is_ok()
    }

    /// One SendMessageBatch; returns the messages that failed.
    async fn send_batch<'a>(&self, batch: &[&'a JobMessage]) -> Vec<&'a JobMessage> {
        let entries: Vec<SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(serde_json::to_string(m).ok()?)
                    .message_group_id(m.group_id())
                    .message_deduplication_id(m.dedup_id())
                    .build()
                    .ok()
            })
            .collect();
        let started = std::time::Instant::now();
        let result = self.client.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await;
        tracing::debug!(messages = batch.len(), ms = started.elapsed().as_millis() as u64, "SendMessageBatch");
        match result {
            Ok(out) => out
                .failed()
                .iter()
                .filter_map(|f| f.id().parse::<usize>().ok())
                .filter_map(|i| batch.get(i).copied())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch failed");
                batch.to_vec()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deduplication_ids_differ_for_retries_and_wake_ups() {
        let m = JobMessage::new("i", "j", "u");
        assert_eq!(m.dedup_id(), "j");
        assert_eq!(JobMessage { retry: 2, ..m.clone() }.dedup_id(), "j.retry2");
        assert_eq!(JobMessage { wake: 3, ..m.clone() }.dedup_id(), "j.w3");
        assert_eq!(JobMessage { retry: 1, wake: 4, ..m }.dedup_id(), "j.retry1.w4");
    }

    #[test]
    fn the_queue_carries_job_and_fanout_messages() {
        let job = serde_json::to_string(&JobMessage::new("i", "j", "u")).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&job).unwrap(), Message::Job(JobMessage::new("i", "j", "u")));
        let page = FanoutMessage { integration_id: "i".into(), fanout: "f".into(), page: 3, resend: None };
        let text = serde_json::to_string(&page).unwrap();
        assert_eq!(text, r#"{"integration_id":"i","fanout":"f","page":3}"#);
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), Message::Fanout(page));
        assert!(serde_json::from_str::<Message>(r#"{"integration_id":"i"}"#).is_err());
    }
}
