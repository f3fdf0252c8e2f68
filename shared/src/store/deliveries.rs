//! Deliveries the app has not confirmed yet, and jobs that must not be left behind.
//!
//! - A webhook delivery is *pending* from just before it is sent until the robot's answer (a
//!   2xx) or its callback confirms it: the user's `APPLIED#` row names the job, what it sent
//!   and that state's sequence number. While it is pending, the user's later jobs wait
//!   (`queued`, with `waiting_for`) instead of being judged against a state the robot may
//!   still change; the confirmation (or its failure or timeout) wakes them.
//! - Every `running` job sits in the sparse `DEADLINE` partition of `gsi1` under the time it is
//!   overdue: a crashed worker, a timed-out invocation or a callback that never comes all end
//!   with the sweeper failing the job with the reason (docs/contract.md "Webhook delivery and
//!   callbacks").

use aws_sdk_dynamodb::types::AttributeValue;

use super::provisioning::{JobRow, assignment_json, queued_gsi_sk, status};
use super::{Store, StoreError, key, keys, n, s};
use crate::assignment::Assignment;

/// How many of a user's newest jobs a wake-up looks at; older waiting jobs are re-sent by the
/// sweeper after its grace period.
const WAKE_WINDOW: i32 = 25;

impl Store {
    /// Marks a delivery pending on the user's `APPLIED#` row (creating the row if needed).
    pub async fn set_pending(
        &self,
        iid: &str,
        user_id: &str,
        job_id: &str,
        sent: Option<&Assignment>,
        sent_seq: u64,
        now: &str,
    ) -> Result<(), StoreError> {
        let sent = assignment_json(sent).map_or(AttributeValue::Null(true), s);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::applied_sk(user_id))))
            .update_expression(
                "SET pending_job = :job, pending_sent = :sent, pending_seq = :seq, user_id = :user, seq = if_not_exists(seq, :zero), updated_at = :now",
            )
            .expression_attribute_values(":job", s(job_id))
            .expression_attribute_values(":sent", sent)
            .expression_attribute_values(":seq", n(sent_seq))
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", s(now))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    /// Records what the app now holds after `job_id`'s delivery and clears its pending marker,
    /// unless a newer delivery is pending (its marker, and the state it will record, win) or a
    /// newer state was recorded already.
    pub async fn settle_applied(
        &self,
        iid: &str,
        user_id: &str,
        job_id: &str,
        state: Option<&Assignment>,
        seq: u64,
        app_id: Option<String>,
    ) -> Result<(), StoreError> {
        let mut up = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::applied_sk(user_id))))
            .condition_expression(
                "(attribute_not_exists(pending_job) OR pending_job = :job) AND (attribute_not_exists(seq) OR seq <= :seq)",
            )
            .expression_attribute_values(":job", s(job_id))
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":now", s(crate::time::now()));
        let mut set = vec!["seq = :seq", "user_id = :user", "updated_at = :now"];
        let mut remove = vec!["pending_job", "pending_sent", "pending_seq"];
        match assignment_json(state) {
            Some(json) => {
                set.push("applied = :applied");
                up = up.expression_attribute_values(":applied", s(json));
            }
            None => remove.push("applied"),
        }
        match app_id {
            Some(id) => {
                set.push("app_id = :app");
                up = up.expression_attribute_values(":app", s(id));
            }
            None => remove.push("app_id"),
        }
        let result = up.update_expression(format!("SET {} REMOVE {}", set.join(", "), remove.join(", "))).send().await;
        StoreError::conditional("UpdateItem", result).map(|_| ())
    }

    /// Clears the pending delivery of `job_id` (a newer one, or none, is left alone).
    pub async fn clear_pending(&self, iid: &str, user_id: &str, job_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::applied_sk(user_id))))
            .update_expression("REMOVE pending_job, pending_sent, pending_seq")
            .condition_expression("pending_job = :job")
            .expression_attribute_values(":job", s(job_id))
            .send()
            .await;
        StoreError::conditional("UpdateItem", result).map(|_| ())
    }

    /// Puts a started job back to `queued` to wait for `pending_job`'s confirmation; it stays
    /// in the sweeper's index, so it is re-sent even if no wake-up comes.
    pub async fn job_wait(&self, job: &JobRow, pending_job: &str, now: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(&job.integration_id), keys::job_sk(&job.id))))
            .update_expression("SET #status = :queued, waiting_for = :p, detail = :d, gsi1pk = :q, gsi1sk = :qs")
            .expression_attribute_values(":d", s(format!("waiting for the app to confirm job {pending_job}")))
            .condition_expression("#status = :running")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(status::QUEUED))
            .expression_attribute_values(":running", s(status::RUNNING))
            .expression_attribute_values(":p", s(pending_job))
            .expression_attribute_values(":q", s(keys::QUEUED_GSI_PK))
            .expression_attribute_values(":qs", s(queued_gsi_sk(now, &job.integration_id, &job.id)))
            .send()
            .await;
        StoreError::conditional("UpdateItem", result).map(|_| ())
    }

    /// The user's jobs that are `queued` (waiting, or not yet picked up), oldest first, among
    /// their newest [`WAKE_WINDOW`] (GSI `gsi2`).
    pub async fn queued_jobs_of(&self, iid: &str, user_id: &str) -> Result<Vec<JobRow>, StoreError> {
        let (jobs, _) = self.user_jobs_page(iid, user_id, WAKE_WINDOW as usize, None).await?;
        let mut queued: Vec<JobRow> = jobs.into_iter().filter(|j| j.status == status::QUEUED).collect();
        queued.reverse();
        Ok(queued)
    }

    /// Jobs whose deadline is before `now` (running too long, or awaiting a callback too
    /// long), oldest first.
    pub async fn overdue_jobs(&self, now: &str, limit: i32) -> Result<Vec<JobRow>, StoreError> {
        self.gsi1_before(keys::DEADLINE_GSI_PK, now, limit).await
    }
}
