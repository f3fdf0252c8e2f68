//! DynamoDB access through the AWS SDK. One table; keys from [`keys`]. Every write that must
//! not clobber carries a condition expression with expression attribute values.

pub mod audit;
pub mod deliveries;
pub mod fanout;
pub mod integrations;
pub mod job_context;
pub mod keys;
pub mod limits;
pub mod members;
pub mod offboard;
pub mod owners;
pub mod plan;
pub mod provisioning;
pub mod purge;
pub mod resources;
pub mod resync;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

/// Largest number of actions DynamoDB accepts in one TransactWriteItems call.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// The most keys one BatchGetItem takes.
pub const BATCH_GET_MAX: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A transaction was cancelled; one entry per action, the cancellation code where it failed.
    #[error("transaction cancelled: {0:?}")]
    Cancelled(Vec<Option<String>>),
    #[error("stored item is malformed: {0}")]
    Malformed(String),
    #[error("DynamoDB {operation} failed: {message}")]
    Aws { operation: &'static str, message: String },
}

impl StoreError {
    pub(crate) fn aws<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
        operation: &'static str,
        err: SdkError<E, R>,
    ) -> Self {
        let message = match err.as_service_error() {
            Some(e) => format!("{}: {}", e.code().unwrap_or("unknown"), e.message().unwrap_or("")),
            None => format!("{err:?}").chars().take(300).collect(),
        };
        StoreError::Aws { operation, message }
    }

    /// A single conditional write's result: `Some(output)` when it happened, `None` when its
    /// condition did not hold (an answer, not a failure).
    pub(crate) fn conditional<T, E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
        operation: &'static str,
        result: Result<T, SdkError<E, R>>,
    ) -> Result<Option<T>, StoreError> {
        match result {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => {
                Ok(None)
            }
            Err(e) => Err(StoreError::aws(operation, e)),
        }
    }

    /// A cancelled transaction where some write's condition did not hold: a concurrent change
    /// won (plan again from a fresh read), as opposed to a failure of the store.
    pub fn lost_race(&self) -> bool {
        matches!(self, StoreError::Cancelled(r) if r.iter().any(|c| c.as_deref() == Some("ConditionalCheckFailed")))
    }

    /// DynamoDB refused for throughput (the caller may answer "retry later").
    pub fn throttled(&self) -> bool {
        matches!(self, StoreError::Aws { message, .. } if message.contains("Throttl") || message.contains("ProvisionedThroughputExceeded"))
    }

    /// Whether the action at `index` of a cancelled transaction failed its condition.
    pub fn condition_failed_at(&self, index: usize) -> bool {
        matches!(self, StoreError::Cancelled(r) if r.get(index).and_then(|c| c.as_deref()) == Some("ConditionalCheckFailed"))
    }
}

pub type Item = HashMap<String, AttributeValue>;

/// The table and its client, built once per cold start and shared.
#[derive(Clone, Debug)]
pub struct Store {
    pub client: Client,
    pub table: String,
    /// How long request and job rows live (their `expires_at`, the table's TTL attribute).
    history: Duration,
    /// How long audit entries live, when longer than `history` (`IDLCM_AUDIT_DAYS`).
    audit: Duration,
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn key(pk: String, sk: String) -> Item {
    HashMap::from([(keys::PK.to_string(), s(pk)), (keys::SK.to_string(), s(sk))])
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            history: Duration::from_secs(86_400 * crate::config::DEFAULT_HISTORY_DAYS as u64),
            audit: Duration::ZERO,
        }
    }

    /// Keeps job history `days` days (`IDLCM_HISTORY_DAYS`).
    pub fn with_history_days(mut self, days: u32) -> Self {
        self.history = Duration::from_secs(86_400 * u64::from(days));
        self
    }

    /// Keeps audit entries `days` days when that is longer than the job history (0: as long).
    pub fn with_audit_days(mut self, days: u32) -> Self {
        self.audit = Duration::from_secs(86_400 * u64::from(days));
        self
    }

    /// The `expires_at` of an audit entry written now: the longer of the two retentions.
    pub fn audit_expires_at(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.history.max(self.audit).as_secs() as i64
    }

    /// The `expires_at` (epoch seconds) of a request or job row written now: DynamoDB's TTL
    /// deletes it some time after that.
    pub fn expires_at(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.history.as_secs() as i64
    }

    /// Runs one transaction, retrying DynamoDB's transient `TransactionConflict` with backoff.
    /// Condition failures come back as [`StoreError::Cancelled`].
    pub(in crate::store) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        debug_assert!(items.len() <= MAX_TRANSACTION_ITEMS);
        let mut delay = Duration::from_millis(20);
        for attempt in 0.. {
            let started = std::time::Instant::now();
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            tracing::debug!(
                actions = items.len(),
                ms = started.elapsed().as_millis() as u64,
                ok = result.is_ok(),
                "TransactWriteItems"
            );
            let err = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Option<Vec<Option<String>>> = err.as_service_error().and_then(|e| match e {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                    Some(c.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect())
                }
                _ => None,
            });
            let conflict = err.as_service_error().and_then(|e| e.code()) == Some("TransactionInProgressException")
                || reasons.as_ref().is_some_and(|r| {
                    r.iter().any(|c| c.as_deref() == Some("TransactionConflict"))
                        && !r.iter().any(|c| c.as_deref() == Some("ConditionalCheckFailed"))
                });
            // 5xx (DynamoDB's InternalServerError; the emulator's too) is transient.
            let server_error = err.raw_response().is_some_and(|r| r.status().as_u16() >= 500);
            if (conflict || server_error) && attempt < 8 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
                continue;
            }
            return Err(match reasons {
                Some(r) => StoreError::Cancelled(r),
                None => StoreError::aws("TransactWriteItems", err),
            });
        }
        unreachable!("the retry loop returns")
    }

    /// Strongly consistent GetItem.
    pub async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(out.item)
    }

    /// One page of a key-range query `pk = :pk AND begins_with(sk, :prefix)`.
    pub async fn query_prefix(
        &self,
        pk: String,
        prefix: String,
        start: Option<Item>,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .set_exclusive_start_key(start)
            .limit(limit)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// Every item under a key prefix (used for one group's members or one user's groups).
    pub async fn query_all(&self, pk: String, prefix: String) -> Result<Vec<Item>, StoreError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = self.query_prefix(pk.clone(), prefix.clone(), start, 1000).await?;
            all.extend(items);
            match next {
                Some(k) => start = Some(k),
                None => return Ok(all),
            }
        }
    }

    /// Every row of one `gsi1` partition (integrations, owners), page after page.
    pub(crate) async fn gsi1_all<T: serde::de::DeserializeOwned>(&self, partition: &str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#g = :g")
                .expression_attribute_names("#g", keys::GSI1_PK)
                .expression_attribute_values(":g", s(partition))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))?);
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    /// BatchGetItem in chunks of 100, retrying unprocessed keys.
    pub async fn batch_get(&self, mut keys_: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        // BatchGetItem refuses a request that names one key twice (two role mappings of one
        // group, say).
        let mut seen = std::collections::HashSet::new();
        keys_.retain(|k| {
            seen.insert((
                get_s(k, keys::PK).unwrap_or_default().to_string(),
                get_s(k, keys::SK).unwrap_or_default().to_string(),
            ))
        });
        let mut found = Vec::new();
        for chunk in keys_.chunks(BATCH_GET_MAX) {
            let mut pending = chunk.to_vec();
            let mut delay = Duration::from_millis(20);
            while !pending.is_empty() {
                let ka = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Malformed(e.to_string()))?;
                let started = std::time::Instant::now();
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchGetItem", e))?;
                tracing::debug!(keys = pending.len(), ms = started.elapsed().as_millis() as u64, "BatchGetItem");
                if let Some(mut r) = out.responses {
                    found.extend(r.remove(&self.table).unwrap_or_default());
                }
                pending =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|ka| ka.keys).unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(1000));
                }
            }
        }
        Ok(found)
    }
}
