//! A resync's rows (docs/contract.md "Resync and drift"): the app's accounts as read
//! (`APP` parts), the accounts each compared page matched (`SEEN` parts), and the result that
//! outlives the resync, the app's unmanaged accounts (`UNMANAGED` head and chunks).
//!
//! Every write here is a plain put of a numbered row: a page run again after a crash writes
//! the same row again, so nothing is counted twice.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::provisioning::{AppliedRow, AssignRow, from_item};
use super::{Store, StoreError, get_s, key, keys, s};
use crate::assignment::drift::AppAccount;

/// Accounts per `APP` or `UNMANAGED` row: well under DynamoDB's 400 KB item size with long
/// attribute values.
pub const ACCOUNTS_PER_ROW: usize = 200;

pub const PART_APP: &str = "APP";
pub const PART_SEEN: &str = "SEEN";

/// The last resync's unmanaged accounts, as `GET …/unmanaged` shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnmanagedHead {
    /// The resync (its Activity request) that found them.
    pub request_id: String,
    pub at: String,
    /// `false`: the connector cannot list the app's accounts, so none are known.
    pub readable: bool,
    pub count: u64,
    pub chunks: u32,
}

impl Store {
    /// Writes one numbered part of a resync (a JSON document).
    pub async fn resync_put_part(
        &self,
        iid: &str,
        task: &str,
        part: &str,
        n: u32,
        body: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(keys::integration_pk(iid)))
            .item(keys::SK, s(keys::resync_part_sk(task, part, n)))
            .item("body", s(body))
            .item(keys::TTL_ATTRIBUTE, super::n(self.expires_at().max(0) as u64))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    /// Every part of a kind, in order.
    pub async fn resync_parts(&self, iid: &str, task: &str, part: &str) -> Result<Vec<String>, StoreError> {
        let items = self.query_all(keys::integration_pk(iid), keys::resync_part_prefix(task, part)).await?;
        Ok(items.iter().filter_map(|i| get_s(i, "body").map(str::to_owned)).collect())
    }

    /// Deletes a resync's working rows once its result is saved.
    pub async fn resync_delete_parts(&self, iid: &str, task: &str) -> Result<(), StoreError> {
        let mut deletes = Vec::new();
        for part in [PART_APP, PART_SEEN] {
            for item in self.query_all(keys::integration_pk(iid), keys::resync_part_prefix(task, part)).await? {
                let Some(sk) = get_s(&item, keys::SK) else { continue };
                deletes.push(self.delete_action(iid, sk.to_owned())?);
            }
        }
        self.transact_chunked(deletes).await
    }

    fn delete_action(&self, iid: &str, sk: String) -> Result<TransactWriteItem, StoreError> {
        let del = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), sk)))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }

    /// Saves a resync's unmanaged accounts: the chunks first, then the head that points to
    /// them, so a reader sees either the previous list or the whole new one.
    pub async fn unmanaged_save(
        &self,
        iid: &str,
        head: &UnmanagedHead,
        accounts: &[&AppAccount],
    ) -> Result<(), StoreError> {
        for (n, chunk) in accounts.chunks(ACCOUNTS_PER_ROW).enumerate() {
            let body = serde_json::to_string(chunk).map_err(|e| StoreError::Malformed(e.to_string()))?;
            self.client
                .put_item()
                .table_name(&self.table)
                .item(keys::PK, s(keys::integration_pk(iid)))
                .item(keys::SK, s(keys::unmanaged_chunk_sk(&head.request_id, n as u32)))
                .item("body", s(body))
                .item(keys::TTL_ATTRIBUTE, super::n(self.expires_at().max(0) as u64))
                .send()
                .await
                .map_err(|e| StoreError::aws("PutItem", e))?;
        }
        let mut item: super::Item = serde_dynamo::to_item(head).map_err(|e| StoreError::Malformed(e.to_string()))?;
        item.insert(keys::PK.into(), s(keys::integration_pk(iid)));
        item.insert(keys::SK.into(), s(keys::UNMANAGED_SK));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    pub async fn unmanaged_head(&self, iid: &str) -> Result<Option<UnmanagedHead>, StoreError> {
        self.get(keys::integration_pk(iid), keys::UNMANAGED_SK.to_string()).await?.map(from_item).transpose()
    }

    pub async fn unmanaged_chunk(&self, iid: &str, request_id: &str, n: u32) -> Result<Vec<AppAccount>, StoreError> {
        let Some(item) = self.get(keys::integration_pk(iid), keys::unmanaged_chunk_sk(request_id, n)).await? else {
            return Ok(Vec::new());
        };
        let body = get_s(&item, "body").unwrap_or("[]");
        serde_json::from_str(body).map_err(|e| StoreError::Malformed(e.to_string()))
    }

    /// Claims an integration's scheduled resync: `true` when none started since `due` (the
    /// claim records `at`), `false` when one did (another run claimed it).
    pub async fn resync_schedule_claim(&self, iid: &str, at: &str, due: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(keys::integration_pk(iid)))
            .item(keys::SK, s(keys::RESYNC_SCHEDULE_SK))
            .item("last_started", s(at))
            .condition_expression("attribute_not_exists(#pk) OR last_started <= :due")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":due", s(due))
            .send()
            .await;
        Ok(StoreError::conditional("PutItem", result)?.is_some())
    }

    /// What was last applied for many users (BatchGetItem), by user id.
    pub async fn get_applieds(
        &self,
        iid: &str,
        user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, AppliedRow>, StoreError> {
        let pk = keys::integration_pk(iid);
        let items = self.batch_get(user_ids.iter().map(|u| key(pk.clone(), keys::applied_sk(u))).collect()).await?;
        items.into_iter().map(|i| from_item::<AppliedRow>(i).map(|r| (r.user_id.clone(), r))).collect()
    }

    /// A note on a request (what its reader should know).
    pub async fn request_note(&self, iid: &str, request_id: &str, note: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression("SET note = :note")
            .expression_attribute_values(":note", s(note))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    /// Ends a request that could not do its work: final status, why, no fan-out pending.
    pub async fn request_end(
        &self,
        iid: &str,
        request_id: &str,
        status: &str,
        note: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression("SET #status = :status, note = :note, finished_at = :now REMOVE fanout_pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":note", s(note))
            .expression_attribute_values(":now", s(now))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    /// One page of an integration's users' desired assignments after `after` (a user id), in
    /// id order, and whether more follow: every user idlcm manages, deleted ones included.
    pub async fn assign_page(
        &self,
        iid: &str,
        after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<AssignRow>, bool), StoreError> {
        let pk = keys::integration_pk(iid);
        let start = after.map(|u| key(pk.clone(), keys::assign_sk(u)));
        let (items, last) = self.query_prefix(pk, keys::ASSIGN_PREFIX.to_string(), start, limit).await?;
        let rows = items.into_iter().map(from_item).collect::<Result<Vec<AssignRow>, _>>()?;
        Ok((rows, last.is_some()))
    }
}
