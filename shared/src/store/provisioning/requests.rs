//! Provisioning requests (`REQUEST#`): one per SCIM change or admin action, its job counts,
//! and the rule for its final status.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRow {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub integration_id: String,
    pub created_at: String,
    pub method: String,
    pub path: String,
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub total: u64,
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub superseded: u64,
    /// Jobs a `report` resync recorded as differences (finished when written).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift: u64,
    pub status: String,
    /// What the request wants its reader to know (a resync that could not read the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Members are still being re-planned behind the request (`store::fanout`): `total` may
    /// grow, so the request is not final yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fanout_pending: bool,
    /// The next free job number (fan-out pages reserve theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_job: Option<u64>,
    /// Epoch seconds after which DynamoDB's TTL deletes the row (template.yaml `Table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A request's final status, once it has one: every job counted, no fan-out pending.
pub fn final_status(row: &RequestRow) -> Option<&'static str> {
    if row.fanout_pending || row.succeeded + row.failed + row.superseded + row.drift < row.total {
        return None;
    }
    Some(match (row.failed, row.succeeded + row.superseded + row.drift) {
        (0, _) => status::SUCCEEDED,
        (_, 0) if row.total > 0 => status::FAILED,
        _ => status::PARTIALLY_FAILED,
    })
}

impl Store {
    pub(in crate::store) fn request_put(&self, row: &RequestRow) -> Result<TransactWriteItem, StoreError> {
        self.put_action(to_item(row)?, Some(("attribute_not_exists(#pk)", vec![])))
    }

    pub async fn get_request(&self, iid: &str, request_id: &str) -> Result<Option<RequestRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::request_sk(request_id)).await?.map(from_item).transpose()
    }

    /// The trigger method of an integration's offboarding request.
    pub const OFFBOARD: &'static str = "OFFBOARD";

    /// Counts a finished job on its request and, when it was the last, sets the final status
    /// (returned then, with whether the request is an offboarding). The only job of a single
    /// user's change (`solo`) does both in one write.
    pub async fn request_job_done(
        &self,
        iid: &str,
        request_id: &str,
        job_status: &str,
        now: &str,
        solo: bool,
    ) -> Result<Option<(&'static str, bool)>, StoreError> {
        let field = match job_status {
            status::SUCCEEDED => "succeeded",
            status::FAILED => "failed",
            _ => "superseded",
        };
        if solo && let Some(closed) = self.request_close_solo(iid, request_id, field, now).await? {
            return Ok(Some((closed, false)));
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression(format!("ADD {field} :one SET #status = :in_progress"))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":in_progress", s(status::IN_PROGRESS))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        let Some(row) = out.attributes.map(from_item::<RequestRow>).transpose()? else { return Ok(None) };
        let closed = self.request_finalize_if_complete(iid, &row, now).await?;
        Ok(closed.map(|s| (s, row.method == Self::OFFBOARD)))
    }

    /// Counts the only job of a request and closes it in one write, if the request still has one
    /// job and no fan-out (`None` otherwise: the caller counts it the general way).
    async fn request_close_solo(
        &self,
        iid: &str,
        request_id: &str,
        field: &str,
        now: &str,
    ) -> Result<Option<&'static str>, StoreError> {
        // `final_status` of a request with one job: failed if it failed, else succeeded.
        let final_status = if field == "failed" { status::FAILED } else { status::SUCCEEDED };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression(format!("ADD {field} :one SET #status = :status, finished_at = :now"))
            .condition_expression("attribute_exists(#pk) AND #total = :one AND attribute_not_exists(fanout_pending)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":status", s(final_status))
            .expression_attribute_values(":now", s(now))
            .send()
            .await;
        Ok(StoreError::conditional("UpdateItem", out)?.map(|_| final_status))
    }

    /// Sets a request's final status once every job is counted and no fan-out is pending;
    /// returns the status it set.
    pub async fn request_finalize_if_complete(
        &self,
        iid: &str,
        row: &RequestRow,
        now: &str,
    ) -> Result<Option<&'static str>, StoreError> {
        let Some(final_status) = final_status(row) else { return Ok(None) };
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(&row.id))))
            .update_expression("SET #status = :status, finished_at = :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(final_status))
            .expression_attribute_values(":now", s(now))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(Some(final_status))
    }

    /// Moves a request's `total` when a chunked commit planned more or fewer jobs than first
    /// counted. Its jobs are not sent yet, so none is counted: a request left with no job (and
    /// no fan-out) is finished at once, or it would wait for good.
    pub async fn request_adjust_total(&self, iid: &str, request_id: &str, delta: i64) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression("ADD #total :d")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        if let Some(row) = out.attributes.map(from_item::<RequestRow>).transpose()?
            && row.total == 0
        {
            self.request_finalize_if_complete(iid, &row, &crate::time::now()).await?;
        }
        Ok(())
    }

    /// A page of an integration's requests, newest first, between two request ids (ULIDs: time
    /// order), optionally of one status: a key-range query on the integration's `REQUEST#` rows
    /// (their sort keys are in time order already, so no index entry is written for them).
    /// Keeps querying until `limit` items match or the range ends; returns the cursor to go on.
    pub async fn activity_page(
        &self,
        iid: &str,
        limit: usize,
        start: Option<Item>,
        status_: Option<&str>,
        range: (String, String),
    ) -> Result<(Vec<RequestRow>, Option<Item>), StoreError> {
        let mut out = Vec::new();
        let mut start = start;
        for _ in 0..50 {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", s(keys::integration_pk(iid)))
                .expression_attribute_values(":from", s(keys::request_sk(&range.0)))
                .expression_attribute_values(":to", s(keys::request_sk(&range.1)))
                .scan_index_forward(false)
                .limit((limit - out.len()) as i32)
                .set_exclusive_start_key(start.take());
            if let Some(st) = status_ {
                q = q
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(st));
            }
            let page = q.send().await.map_err(|e| StoreError::aws("Query", e))?;
            for item in page.items.unwrap_or_default() {
                // A counter update that outlived its request row (TTL) leaves a bare row: not
                // a request, and no reason to fail the feed.
                match from_item::<RequestRow>(item) {
                    Ok(row) => out.push(row),
                    Err(e) => tracing::warn!(integration_id = %iid, error = %e, "unreadable request row skipped"),
                }
            }
            start = page.last_evaluated_key;
            if out.len() >= limit || start.is_none() {
                break;
            }
        }
        Ok((out, start))
    }

    /// Requests by id (BatchGetItem), in the order asked.
    pub async fn get_requests(&self, iid: &str, ids: &[String]) -> Result<Vec<RequestRow>, StoreError> {
        let pk = keys::integration_pk(iid);
        let rows: Vec<RequestRow> = self
            .batch_get(ids.iter().map(|r| key(pk.clone(), keys::request_sk(r))).collect())
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        let mut by_id: HashMap<String, RequestRow> = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}
