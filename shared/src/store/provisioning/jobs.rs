//! Jobs (`JOB#`): one user's change carried to the app, from `queued` to its end, with the
//! guards that let the worker, callbacks and the sweeper finish one exactly once.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRow {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub request_id: String,
    pub integration_id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The action planned when the request was committed.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default)]
    pub changed: Vec<String>,
    /// `ASSIGN#` sequence number the job was planned at.
    pub seq: u64,
    pub status: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The app's answer, briefly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the worker actually did (it reconciles to the current desired state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_action: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// What a webhook accepted (`202`) and will confirm by callback: the assignment sent and
    /// its `ASSIGN#` sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_seq: Option<u64>,
    /// Set while the job awaits a webhook callback: when it times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_until: Option<String>,
    /// Why the job is `queued` again (waiting for another delivery of the user to be confirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// How many times an admin retried it.
    #[serde(default)]
    pub retries: u32,
    /// A resync job's starting point (docs/contract.md "Resync and drift"): `app` when
    /// `before` is what the app was found to hold (the worker corrects from it, not from what
    /// idlcm last applied), `redeliver` when the app cannot be read and the desired state is
    /// sent again whatever idlcm last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// The app's id of the account a resync matched (by its key), for a user idlcm had none for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_app_id: Option<String>,
    /// The only job of its request (a single user's SCIM change): finishing it closes the
    /// request in the same write (`Store::request_job_done`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub solo: bool,
    /// The last SCIM resource of a deleted user (what a `deprovision` sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    /// The user's job history (`gsi2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2sk: Option<String>,
    /// Epoch seconds after which DynamoDB's TTL deletes the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl JobRow {
    pub fn before(&self) -> Option<Assignment> {
        parse_assignment(self.before.as_deref())
    }
    pub fn after(&self) -> Option<Assignment> {
        parse_assignment(self.after.as_deref())
    }
}

/// What one attempt at a job came to.
#[derive(Debug, Clone, Copy)]
pub struct JobOutcome<'a> {
    pub status: &'a str,
    pub error: Option<&'a str>,
    /// The app's answer, briefly.
    pub detail: Option<&'a str>,
    /// The action the worker ran.
    pub applied_action: Option<&'a str>,
}

pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A resync job's [`JobRow::basis`]: `before` is what the app was found to hold.
pub const BASIS_APP: &str = "app";

/// A resync job's [`JobRow::basis`]: the app cannot be read; the desired state goes again.
pub const BASIS_REDELIVER: &str = "redeliver";

/// What [`Store::complete_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The job had already ended (or moved on): nothing was written.
    Already,
    /// This call finished it; `request`: the final status its request reached with it;
    /// `offboard`: that request is an integration's offboarding (its purge may start).
    Now { request: Option<&'static str>, offboard: bool },
}

impl Finished {
    pub fn now(&self) -> bool {
        matches!(self, Finished::Now { .. })
    }
}

/// What must still hold for a guarded job update ([`Store::job_record_if`]).
#[derive(Debug, Clone, Copy)]
pub enum JobGuard<'a> {
    /// The job is `running` (a callback finishing it).
    Running,
    /// The job is `running` with this deadline entry (the sweeper failing an overdue job: a
    /// job started again meanwhile has a new deadline and is left alone).
    RunningUntil(&'a str),
    /// The job is `queued` or `running`, not awaiting a callback, and has been retried by an
    /// admin exactly `retries` times (a dead-lettered message of an earlier try is stale).
    Unfinished { retries: u32 },
}

/// Sort key of a queued job in the sweeper's index: time first.
pub fn queued_gsi_sk(created_at: &str, iid: &str, job_id: &str) -> String {
    format!("{created_at}#{iid}#{job_id}")
}

impl Store {
    pub(in crate::store) fn job_put(&self, row: &JobRow) -> Result<TransactWriteItem, StoreError> {
        self.put_action(to_item(row)?, Some(("attribute_not_exists(#pk)", vec![])))
    }

    pub async fn get_job(&self, iid: &str, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::job_sk(job_id)).await?.map(from_item).transpose()
    }

    /// A request's jobs, in order.
    pub async fn request_jobs(&self, iid: &str, request_id: &str) -> Result<Vec<JobRow>, StoreError> {
        let items = self.query_all(keys::integration_pk(iid), keys::job_prefix(request_id)).await?;
        items.into_iter().map(from_item).collect()
    }

    /// Marks a job `running` (one more attempt) and moves it from the sweeper's queued index to
    /// its deadline index (`deadline`: when a job that is still running counts as lost).
    /// `None` when the job is finished or awaits a callback (a duplicate delivery).
    pub async fn job_start(
        &self,
        iid: &str,
        job_id: &str,
        now: &str,
        deadline: &str,
    ) -> Result<Option<JobRow>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::job_sk(job_id))))
            .update_expression(
                "SET #status = :running, started_at = if_not_exists(started_at, :now), attempts = if_not_exists(attempts, :zero) + :one, gsi1pk = :dpk, gsi1sk = :dsk REMOVE waiting_for",
            )
            .condition_expression(
                "attribute_exists(#pk) AND (#status = :queued OR (#status = :running AND attribute_not_exists(awaiting_until)))",
            )
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(status::RUNNING))
            .expression_attribute_values(":queued", s(status::QUEUED))
            .expression_attribute_values(":dpk", s(keys::DEADLINE_GSI_PK))
            .expression_attribute_values(":dsk", s(keys::deadline_gsi_sk(deadline, iid, job_id)))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        // A finished job fails the condition: a duplicate delivery.
        StoreError::conditional("UpdateItem", result)?.and_then(|out| out.attributes).map(from_item).transpose()
    }

    /// Records a job's outcome, under a guard when one is given; `false` when the guard did not
    /// hold (someone else finished or moved the job first). A terminal status moves it out of
    /// `running`; otherwise (a retryable failure) it stays `running` with its last error.
    pub async fn job_record_if(
        &self,
        job: &JobRow,
        outcome: &JobOutcome<'_>,
        now: &str,
        guard: Option<JobGuard<'_>>,
    ) -> Result<bool, StoreError> {
        let (iid, job_id) = (job.integration_id.as_str(), job.id.as_str());
        let JobOutcome { status: status_, error, detail, applied_action } = *outcome;
        let mut set = vec!["#status = :status"];
        let mut remove = vec![];
        let mut up = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::job_sk(job_id))))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status_));
        if status::is_terminal(status_) {
            set.push("finished_at = :now");
            remove.extend(["gsi1pk", "gsi1sk", "awaiting_until"]);
            up = up.expression_attribute_values(":now", s(now));
        }
        match error {
            Some(e) => {
                set.push("#error = :error");
                up = up.expression_attribute_values(":error", s(e));
            }
            None if status_ == status::SUCCEEDED || status_ == status::SUPERSEDED => remove.push("#error"),
            None => {}
        }
        if error.is_some() || remove.contains(&"#error") {
            // (names with '#' are placeholders; the others are plain attribute names)
            up = up.expression_attribute_names("#error", "error");
        }
        if let Some(d) = detail {
            set.push("detail = :detail");
            up = up.expression_attribute_values(":detail", s(d));
        }
        if let Some(a) = applied_action {
            set.push("applied_action = :applied");
            up = up.expression_attribute_values(":applied", s(a));
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        if let Some(guard) = guard {
            up = up.expression_attribute_values(":g_running", s(status::RUNNING));
            up = match guard {
                JobGuard::Running => up.condition_expression("#status = :g_running"),
                JobGuard::RunningUntil(sk) => up
                    .condition_expression("#status = :g_running AND gsi1sk = :g_sk")
                    .expression_attribute_values(":g_sk", s(sk)),
                JobGuard::Unfinished { retries } => {
                    let tries = if retries == 0 {
                        "(attribute_not_exists(retries) OR retries = :g_retries)"
                    } else {
                        "retries = :g_retries"
                    };
                    up.condition_expression(format!(
                        "(#status = :g_running OR #status = :g_queued) AND attribute_not_exists(awaiting_until) AND attribute_not_exists(waiting_for) AND {tries}"
                    ))
                    .expression_attribute_values(":g_queued", s(status::QUEUED))
                    .expression_attribute_values(":g_retries", n(u64::from(retries)))
                }
            };
        }
        let result = up.update_expression(expr).send().await;
        Ok(StoreError::conditional("UpdateItem", result)?.is_some())
    }

    /// A webhook accepted the job (`202`): remember what was sent and until when the callback
    /// may come (the job moves to that deadline in the sweeper's index); the callback finishes
    /// it. A job the callback already finished is left alone.
    #[allow(clippy::too_many_arguments, reason = "one row's fields")]
    pub async fn job_accepted(
        &self,
        iid: &str,
        job_id: &str,
        sent: Option<&Assignment>,
        sent_seq: u64,
        applied_action: &str,
        detail: Option<&str>,
        until: &str,
    ) -> Result<(), StoreError> {
        let mut up = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::job_sk(job_id))))
            .update_expression("SET sent_seq = :seq, applied_action = :action, detail = :detail, sent = :sent, awaiting_until = :until, gsi1pk = :dpk, gsi1sk = :dsk")
            .condition_expression("#status = :running")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(status::RUNNING))
            .expression_attribute_values(":until", s(until))
            .expression_attribute_values(":dpk", s(keys::DEADLINE_GSI_PK))
            .expression_attribute_values(":dsk", s(keys::deadline_gsi_sk(until, iid, job_id)))
            .expression_attribute_values(":seq", n(sent_seq))
            .expression_attribute_values(":action", s(applied_action))
            .expression_attribute_values(":detail", s(detail.unwrap_or("accepted; waiting for the callback")));
        up = match assignment_json(sent) {
            Some(j) => up.expression_attribute_values(":sent", s(j)),
            None => up.expression_attribute_values(":sent", AttributeValue::Null(true)),
        };
        StoreError::conditional("UpdateItem", up.send().await).map(|_| ())
    }

    /// Completes a job with its outcome (`succeeded`, `failed`, `superseded`, `drift`) and counts
    /// it on its request: the one way every finisher (the worker, a webhook callback, the
    /// sweeper) ends a job. Under a guard, so that of two finishers one counts it, once.
    pub async fn complete_job(
        &self,
        job: &JobRow,
        outcome: &JobOutcome<'_>,
        guard: JobGuard<'_>,
    ) -> Result<Finished, StoreError> {
        let now = crate::time::now();
        if !self.job_record_if(job, outcome, &now, Some(guard)).await? {
            return Ok(Finished::Already);
        }
        let closed =
            self.request_job_done(&job.integration_id, &job.request_id, outcome.status, &now, job.solo).await?;
        Ok(Finished::Now { request: closed.map(|c| c.0), offboard: closed.is_some_and(|c| c.1) })
    }

    /// Jobs still `queued` that were committed before `cutoff` (the sweeper's work), oldest first.
    pub async fn queued_jobs_before(&self, cutoff: &str, limit: i32) -> Result<Vec<JobRow>, StoreError> {
        self.gsi1_before(keys::QUEUED_GSI_PK, cutoff, limit).await
    }

    /// Rows of one sparse `gsi1` partition whose sort key (a time first) is before `cutoff`,
    /// oldest first: the sweeper's queued, overdue and stalled work.
    pub(crate) async fn gsi1_before<T: DeserializeOwned>(
        &self,
        partition: &str,
        cutoff: &str,
        limit: i32,
    ) -> Result<Vec<T>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("#gpk = :p AND #gsk < :cutoff")
            .expression_attribute_names("#gpk", keys::GSI1_PK)
            .expression_attribute_names("#gsk", keys::GSI1_SK)
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":cutoff", s(cutoff))
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    /// After a re-send: the job waits another grace period before the next one.
    pub async fn job_requeued(&self, iid: &str, job_id: &str, gsi_sk: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::job_sk(job_id))))
            .update_expression("SET gsi1sk = :sk ADD resends :one")
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sk", s(gsi_sk))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":queued", s(status::QUEUED))
            .send()
            .await;
        // No longer queued (picked up meanwhile): nothing to move.
        StoreError::conditional("UpdateItem", result).map(|_| ())
    }

    /// A page of one user's jobs across requests, newest first (GSI `gsi2`).
    pub async fn user_jobs_page(
        &self,
        iid: &str,
        user_id: &str,
        limit: usize,
        start: Option<Item>,
    ) -> Result<(Vec<JobRow>, Option<Item>), StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI2)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", keys::GSI2_PK)
            .expression_attribute_values(":u", s(keys::user_jobs_gsi_pk(iid, user_id)))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        let jobs = page.items.unwrap_or_default().into_iter().map(from_item).collect::<Result<_, _>>()?;
        Ok((jobs, page.last_evaluated_key))
    }

    /// Puts a failed job back in the queue: `queued` again (and in the sweeper's index), and
    /// no longer counted as failed on its request. Only a `failed` job can be retried.
    pub async fn job_requeue(&self, job: &JobRow, now: &str) -> Result<bool, StoreError> {
        let update = TransactWriteItem::builder()
            .update(
                aws_sdk_dynamodb::types::Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::integration_pk(&job.integration_id), keys::job_sk(&job.id))))
                    .update_expression("SET #status = :queued, gsi1pk = :q, gsi1sk = :qs, retries = if_not_exists(retries, :zero) + :one REMOVE finished_at")
                    .condition_expression("#status = :failed")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":queued", s(status::QUEUED))
                    .expression_attribute_values(":failed", s(status::FAILED))
                    .expression_attribute_values(":q", s(keys::QUEUED_GSI_PK))
                    .expression_attribute_values(":qs", s(queued_gsi_sk(now, &job.integration_id, &job.id)))
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .map_err(|e| StoreError::Malformed(e.to_string()))?,
            )
            .build();
        let request = TransactWriteItem::builder()
            .update(
                aws_sdk_dynamodb::types::Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::integration_pk(&job.integration_id), keys::request_sk(&job.request_id))))
                    .update_expression("ADD failed :minus SET #status = :in_progress REMOVE finished_at")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
                    .expression_attribute_values(":in_progress", s(status::IN_PROGRESS))
                    .build()
                    .map_err(|e| StoreError::Malformed(e.to_string()))?,
            )
            .build();
        match self.transact(vec![update, request]).await {
            Ok(()) => Ok(true),
            Err(e) if e.condition_failed_at(0) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
