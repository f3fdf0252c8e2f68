//! Fan-out tasks: the re-planning of every member of a group after a change that moves them
//! all (a role group renamed or deleted), run behind the SCIM request in pages.
//!
//! The task row is written in the SCIM request's own transaction, so a committed change always
//! has its fan-out. Each page advances the row (cursor, page number) under a condition on the
//! page it read, so a duplicate message never skips or repeats a page's bookkeeping. The row
//! sits in the sparse `FANOUT` partition of `gsi1` under its last progress time: the sweeper
//! re-sends the message of a task that stopped moving (a crash between a page and the next
//! message), and the task resumes from its cursor.

use aws_sdk_dynamodb::types::{ReturnValue, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::provisioning::{RequestRow, from_item};
use super::{Store, StoreError, key, keys, n, s};

/// What a fan-out does to each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FanoutMode {
    /// Re-plan each member (the group's role changed: renamed, or re-mapped).
    Replan,
    /// The group is gone: re-plan each member without it, then delete the membership rows.
    Delete,
    /// Every user re-planned after the integration's configuration changed (`RECONFIGURE`).
    Reconfigure,
    /// Every user compared with the app (`RESYNC`, `service::resync`).
    Resync,
    /// Every managed user deprovisioned or deactivated before a purge (`OFFBOARD`,
    /// `service::offboard`).
    Offboard,
}

/// Where a resync stands (docs/contract.md "Resync and drift").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncState {
    /// `report` or `correct`.
    pub mode: String,
    pub stage: ResyncStage,
    /// Whether the connector can list the app's accounts (known after the first read).
    #[serde(default)]
    pub readable: bool,
    /// The app's cursor for the next page to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_cursor: Option<String>,
    /// `APP` rows written so far.
    #[serde(default)]
    pub app_rows: u32,
    /// App pages read so far.
    #[serde(default)]
    pub app_pages: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncStage {
    /// Reading the app's accounts, a page per message.
    Read,
    /// Comparing the integration's users with them, a page per message.
    Compare,
    /// Saving the unmanaged accounts and ending.
    Finish,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutRow {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub integration_id: String,
    pub group_id: String,
    /// The Activity request the members' jobs belong to (`None`: cleanup only, no role moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub mode: FanoutMode,
    /// The last member id handled (`Replan`; `Delete` always starts over: handled rows are gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    pub page: u32,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<ResyncState>,
    /// `Offboard`: what each user gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offboard: Option<super::offboard::OffboardMode>,
    pub gsi1pk: String,
    pub gsi1sk: String,
}

impl FanoutRow {
    pub fn new(iid: &str, group_id: &str, request_id: Option<&str>, mode: FanoutMode, now: &str) -> Self {
        let id = ulid::Ulid::new().to_string();
        Self {
            pk: keys::integration_pk(iid),
            sk: keys::fanout_sk(&id),
            gsi1pk: keys::FANOUT_GSI_PK.to_string(),
            gsi1sk: keys::fanout_gsi_sk(now, iid, &id),
            id,
            integration_id: iid.to_string(),
            group_id: group_id.to_string(),
            request_id: request_id.map(str::to_string),
            mode,
            cursor: None,
            page: 0,
            created_at: now.to_string(),
            resync: None,
            offboard: None,
        }
    }
}

impl Store {
    /// The task row, for the SCIM request's transaction.
    pub(in crate::store) fn fanout_put(&self, row: &FanoutRow) -> Result<TransactWriteItem, StoreError> {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(row).map_err(|e| StoreError::Malformed(e.to_string()))?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub async fn get_fanout(&self, iid: &str, id: &str) -> Result<Option<FanoutRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::fanout_sk(id)).await?.map(from_item).transpose()
    }

    /// Moves the task past the page it read (`row.page`); `false` if another run did first.
    pub async fn fanout_advance(&self, row: &FanoutRow, cursor: Option<&str>, now: &str) -> Result<bool, StoreError> {
        let mut up = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(row.pk.clone(), row.sk.clone())))
            .condition_expression("page = :page")
            .expression_attribute_values(":page", n(u64::from(row.page)))
            .expression_attribute_values(":next", n(u64::from(row.page) + 1))
            .expression_attribute_values(":gsk", s(keys::fanout_gsi_sk(now, &row.integration_id, &row.id)));
        up = match cursor {
            Some(c) => up
                .update_expression("SET page = :next, gsi1sk = :gsk, #cursor = :cursor")
                .expression_attribute_names("#cursor", "cursor")
                .expression_attribute_values(":cursor", s(c)),
            None => up.update_expression("SET page = :next, gsi1sk = :gsk"),
        };
        Ok(StoreError::conditional("UpdateItem", up.send().await)?.is_some())
    }

    /// Moves the task past the page it read (`old.page`) to `new` (its next page, cursor and
    /// resync state); `false` if another run did first.
    pub async fn fanout_save(&self, old: &FanoutRow, new: &FanoutRow) -> Result<bool, StoreError> {
        let mut new = new.clone();
        new.gsi1sk = keys::fanout_gsi_sk(&crate::time::now(), &new.integration_id, &new.id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&new).map_err(|e| StoreError::Malformed(e.to_string()))?))
            .condition_expression("page = :page")
            .expression_attribute_values(":page", n(u64::from(old.page)))
            .send()
            .await;
        Ok(StoreError::conditional("PutItem", result)?.is_some())
    }

    /// The task is done: its row goes (`false` if another run finished it first).
    pub async fn fanout_finish(&self, row: &FanoutRow) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(row.pk.clone(), row.sk.clone())))
            .condition_expression("page = :page")
            .expression_attribute_values(":page", n(u64::from(row.page)))
            .send()
            .await;
        Ok(StoreError::conditional("DeleteItem", result)?.is_some())
    }

    /// Tasks that have not moved since `cutoff` (the sweeper's work), oldest first.
    pub async fn stalled_fanouts(&self, cutoff: &str, limit: i32) -> Result<Vec<FanoutRow>, StoreError> {
        self.gsi1_before(keys::FANOUT_GSI_PK, cutoff, limit).await
    }

    /// After a re-send: the task waits another grace period before the next one.
    pub async fn fanout_touch(&self, row: &FanoutRow, now: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(row.pk.clone(), row.sk.clone())))
            .update_expression("SET gsi1sk = :gsk")
            .condition_expression("page = :page")
            .expression_attribute_values(":page", n(u64::from(row.page)))
            .expression_attribute_values(":gsk", s(keys::fanout_gsi_sk(now, &row.integration_id, &row.id)))
            .send()
            .await;
        StoreError::conditional("UpdateItem", result).map(|_| ())
    }

    /// One page of a group's member ids after `after`, in id order, and whether more follow.
    pub async fn group_members_page(
        &self,
        iid: &str,
        group_id: &str,
        after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let (members, more) = self.group_members_upto(iid, group_id, after, limit.max(0) as usize).await?;
        Ok((members.into_iter().map(|m| m.id).collect(), more))
    }

    /// Reserves `count` job numbers on a request; returns the first.
    pub async fn request_reserve_jobs(&self, iid: &str, request_id: &str, count: usize) -> Result<usize, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression("ADD next_job :n")
            .expression_attribute_values(":n", n(count as u64))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        let end = out
            .attributes
            .and_then(|a| a.get("next_job").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<usize>().ok()))
            .ok_or_else(|| StoreError::Malformed("next_job missing".into()))?;
        Ok(end - count)
    }

    /// The fan-out behind a request is done: the request may now reach its final status
    /// (returned when it did).
    pub async fn request_fanout_done(
        &self,
        iid: &str,
        request_id: &str,
        now: &str,
    ) -> Result<Option<&'static str>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression("REMOVE fanout_pending")
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let Some(out) = StoreError::conditional("UpdateItem", out)? else { return Ok(None) };
        let Some(row) = out.attributes.map(from_item::<RequestRow>).transpose()? else { return Ok(None) };
        self.request_finalize_if_complete(iid, &row, now).await
    }
}
