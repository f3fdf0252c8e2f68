//! Removing a deleted integration's rows (docs/contract.md "Deleting an integration"): the
//! integration's configuration row goes at once, in the same transaction as a purge marker
//! outside its partition (and the audit entry); then every other row of the partition is
//! deleted page by page from the queue, and the marker last. A page run twice deletes what is
//! left; a purge whose message was lost is resumed by the sweeper from its marker.

use aws_sdk_dynamodb::types::{Delete, DeleteRequest, Put, TransactWriteItem, WriteRequest};
use serde::{Deserialize, Serialize};

use super::plan::Write;
use super::{Item, Store, StoreError, key, keys, s};

/// A purge in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeRow {
    pub pk: String,
    pub sk: String,
    pub integration_id: String,
    pub created: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
}

/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;

impl Store {
    /// Deletes the integration's configuration (its SCIM tokens stop with it) and starts its
    /// purge, in one transaction with `extra` (the audit entry). `false`: no such integration.
    pub async fn delete_integration_and_purge(
        &self,
        iid: &str,
        now: &str,
        extra: Vec<Write>,
    ) -> Result<bool, StoreError> {
        let malformed = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Malformed(e.to_string());
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::CONFIG_SK.to_string())))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .build()
            .map_err(malformed)?;
        let row = PurgeRow {
            pk: keys::purge_pk(iid),
            sk: keys::PURGE_SK.to_string(),
            integration_id: iid.to_string(),
            created: now.to_string(),
            gsi1pk: keys::PURGE_GSI_PK.to_string(),
            gsi1sk: format!("{now}#{iid}"),
        };
        let marker = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&row).map_err(|e| StoreError::Malformed(e.to_string()))?))
            .build()
            .map_err(malformed)?;
        let mut actions =
            vec![TransactWriteItem::builder().delete(delete).build(), TransactWriteItem::builder().put(marker).build()];
        actions.extend(self.actions(&extra)?);
        match self.transact(actions).await {
            Ok(()) => Ok(true),
            // The configuration was gone; any other cancellation (an owner changed meanwhile,
            // a conflict) is an error the caller sees and may retry.
            Err(e) if e.condition_failed_at(0) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes up to `limit` rows of the integration's partition; `true` when rows may remain.
    pub async fn purge_page(&self, iid: &str, limit: i32) -> Result<(usize, bool), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(keys::integration_pk(iid)))
            .projection_expression("#pk, #sk")
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        let keys_: Vec<Item> = out.items.unwrap_or_default();
        let found = keys_.len();
        self.batch_delete(keys_).await?;
        Ok((found, out.last_evaluated_key.is_some()))
    }

    /// Deletes rows by key, 25 per call, retrying what DynamoDB leaves unprocessed.
    async fn batch_delete(&self, keys_: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys_.chunks(BATCH) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Malformed(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let mut delay = std::time::Duration::from_millis(20);
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchWriteItem", e))?;
                pending = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
        Ok(())
    }

    /// The purge is over: its marker goes.
    pub async fn purge_done(&self, iid: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::purge_pk(iid), keys::PURGE_SK.to_string())))
            .send()
            .await
            .map_err(|e| StoreError::aws("DeleteItem", e))?;
        Ok(())
    }

    /// Purges started before `cutoff` and not finished (the sweeper's work).
    pub async fn stalled_purges(&self, cutoff: &str, limit: i32) -> Result<Vec<PurgeRow>, StoreError> {
        self.gsi1_before(keys::PURGE_GSI_PK, cutoff, limit).await
    }

    /// After a re-send: the purge waits another grace period before the next one.
    pub async fn purge_touch(&self, row: &PurgeRow, now: &str) -> Result<(), StoreError> {
        let mut row = row.clone();
        row.gsi1sk = format!("{now}#{}", row.integration_id);
        let item = serde_dynamo::to_item(&row).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await;
        StoreError::conditional("PutItem", result).map(|_| ())
    }
}
