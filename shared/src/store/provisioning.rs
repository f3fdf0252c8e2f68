//! Provisioning state: each user's desired assignment (`ASSIGN#`), what the worker last applied
//! (`APPLIED#`), provisioning requests (`REQUEST#`) and their jobs (`JOB#`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Item, Store, StoreError, get_s, key, keys, n, s};
use crate::assignment::Assignment;

pub mod status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const SUPERSEDED: &str = "superseded";
    /// A `report` resync found the app differs (docs/contract.md "Resync and drift"); the app
    /// was not touched.
    pub const DRIFT: &str = "drift";

    pub const REQUESTED: &str = "requested";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const PARTIALLY_FAILED: &str = "partially_failed";

    pub fn is_terminal(job_status: &str) -> bool {
        matches!(job_status, SUCCEEDED | FAILED | SUPERSEDED | DRIFT)
    }
}

fn to_item<T: Serialize>(v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Malformed(e.to_string()))
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))
}

pub fn assignment_json(a: Option<&Assignment>) -> Option<String> {
    a.map(|a| serde_json::to_string(a).unwrap_or_default())
}

pub fn parse_assignment(s: Option<&str>) -> Option<Assignment> {
    s.and_then(|s| serde_json::from_str(s).ok())
}

/// A user's desired assignment. `seq` grows with every write that reads or changes it, so a
/// write conditioned on it sees every concurrent change to the user's inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignRow {
    pub pk: String,
    pub sk: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    pub seq: u64,
    pub updated_at: String,
}

impl AssignRow {
    pub fn new(iid: &str, user_id: &str, desired: Option<&Assignment>, seq: u64, now: &str) -> Self {
        Self {
            pk: keys::integration_pk(iid),
            sk: keys::assign_sk(user_id),
            user_id: user_id.to_string(),
            desired: assignment_json(desired),
            seq,
            updated_at: now.to_string(),
        }
    }
    pub fn desired(&self) -> Option<Assignment> {
        parse_assignment(self.desired.as_deref())
    }
}

/// What the app holds for a user, as far as idlcm applied it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedRow {
    pub pk: String,
    pub sk: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// The `ASSIGN#` sequence number this state was taken from.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    pub updated_at: String,
    /// A webhook delivery the app has not confirmed yet (sent, or answered `202`): the job,
    /// what it sent and that state's `ASSIGN#` sequence number. While it is set, later jobs of
    /// the user wait (docs/contract.md "Webhook delivery and callbacks"); recording an applied
    /// state (a full put) clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_sent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_seq: Option<u64>,
}

impl AppliedRow {
    pub fn applied(&self) -> Option<Assignment> {
        parse_assignment(self.applied.as_deref())
    }
}

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
    pub gsi1pk: String,
    pub gsi1sk: String,
    /// Epoch seconds after which DynamoDB's TTL deletes the row (template.yaml `Table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A resync job's [`JobRow::basis`]: `before` is what the app was found to hold.
pub const BASIS_APP: &str = "app";
/// A resync job's [`JobRow::basis`]: the app cannot be read; the desired state goes again.
pub const BASIS_REDELIVER: &str = "redeliver";

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

/// What [`Store::finish_job_if`] did.
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
    fn put_action(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some((expr, values)) = condition {
            put = put.condition_expression(expr).expression_attribute_names("#pk", keys::PK);
            for (k, v) in values {
                put = put.expression_attribute_values(k, v);
            }
        }
        let put = put.build().map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes a user's desired assignment, only if its sequence number is still `expect`
    /// (`None`: the row must not exist yet).
    pub fn assign_put(&self, row: &AssignRow, expect: Option<u64>) -> Result<TransactWriteItem, StoreError> {
        let item = to_item(row)?;
        match expect {
            None => self.put_action(item, Some(("attribute_not_exists(#pk)", vec![]))),
            Some(seq) => self.put_action(item, Some(("attribute_exists(#pk) AND seq = :seq", vec![(":seq", n(seq))]))),
        }
    }

    pub fn request_put(&self, row: &RequestRow) -> Result<TransactWriteItem, StoreError> {
        self.put_action(to_item(row)?, Some(("attribute_not_exists(#pk)", vec![])))
    }

    pub fn job_put(&self, row: &JobRow) -> Result<TransactWriteItem, StoreError> {
        self.put_action(to_item(row)?, Some(("attribute_not_exists(#pk)", vec![])))
    }

    pub async fn get_assign(&self, iid: &str, user_id: &str) -> Result<Option<AssignRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::assign_sk(user_id)).await?.map(from_item).transpose()
    }

    /// Desired assignments of many users (BatchGetItem).
    pub async fn get_assigns(&self, iid: &str, user_ids: &[String]) -> Result<HashMap<String, AssignRow>, StoreError> {
        let pk = keys::integration_pk(iid);
        let items = self.batch_get(user_ids.iter().map(|u| key(pk.clone(), keys::assign_sk(u))).collect()).await?;
        items.into_iter().map(|i| from_item::<AssignRow>(i).map(|r| (r.user_id.clone(), r))).collect()
    }

    pub async fn get_applied(&self, iid: &str, user_id: &str) -> Result<Option<AppliedRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::applied_sk(user_id)).await?.map(from_item).transpose()
    }

    /// Records what the app now holds, unless a newer state was recorded already.
    pub async fn put_applied(&self, row: &AppliedRow) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(row)?))
            .condition_expression("attribute_not_exists(#pk) OR seq <= :seq")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":seq", n(row.seq))
            .send()
            .await;
        Ok(StoreError::conditional("PutItem", result)?.is_some())
    }

    pub async fn get_job(&self, iid: &str, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::job_sk(job_id)).await?.map(from_item).transpose()
    }

    pub async fn get_request(&self, iid: &str, request_id: &str) -> Result<Option<RequestRow>, StoreError> {
        self.get(keys::integration_pk(iid), keys::request_sk(request_id)).await?.map(from_item).transpose()
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

    /// Records a job's outcome. A terminal status moves it out of `running`; otherwise (a
    /// retryable failure) it stays `running` with its last error.
    pub async fn job_record(&self, job: &JobRow, outcome: &JobOutcome<'_>, now: &str) -> Result<(), StoreError> {
        self.job_record_if(job, outcome, now, None).await.map(|_| ())
    }

    /// [`Self::job_record`] under a guard; `false` when the guard did not hold (someone else
    /// finished or moved the job first).
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

    /// Finishes a job (`succeeded`, `failed`, `superseded`) and counts it on its request.
    pub async fn finish_job(
        &self,
        job: &JobRow,
        status_: &str,
        error: Option<&str>,
        detail: Option<&str>,
        applied_action: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = crate::time::now();
        self.job_record(job, &JobOutcome { status: status_, error, detail, applied_action }, &now).await?;
        self.request_job_done(&job.integration_id, &job.request_id, status_, &now).await.map(|_| ())
    }

    /// The trigger method of an integration's offboarding request.
    pub const OFFBOARD: &'static str = "OFFBOARD";

    /// [`Self::finish_job`] under a guard: counted on the request only when this call
    /// finished it, so two finishers (a callback and the sweeper) never count it twice.
    pub async fn finish_job_if(
        &self,
        job: &JobRow,
        outcome: &JobOutcome<'_>,
        guard: JobGuard<'_>,
    ) -> Result<Finished, StoreError> {
        let now = crate::time::now();
        if !self.job_record_if(job, outcome, &now, Some(guard)).await? {
            return Ok(Finished::Already);
        }
        let closed = self.request_job_done(&job.integration_id, &job.request_id, outcome.status, &now).await?;
        Ok(Finished::Now { request: closed.map(|c| c.0), offboard: closed.is_some_and(|c| c.1) })
    }

    /// Records what the app now holds for a user (never going back to an older state).
    pub async fn record_applied(
        &self,
        iid: &str,
        user_id: &str,
        state: Option<&Assignment>,
        seq: u64,
        app_id: Option<String>,
    ) -> Result<(), StoreError> {
        let row = AppliedRow {
            pk: keys::integration_pk(iid),
            sk: keys::applied_sk(user_id),
            user_id: user_id.to_string(),
            applied: assignment_json(state),
            seq,
            app_id,
            updated_at: crate::time::now(),
            pending_job: None,
            pending_sent: None,
            pending_seq: None,
        };
        self.put_applied(&row).await.map(|_| ())
    }

    /// Counts a finished job on its request and, when it was the last, sets the final status
    /// (returned then, with whether the request is an offboarding).
    pub async fn request_job_done(
        &self,
        iid: &str,
        request_id: &str,
        job_status: &str,
        now: &str,
    ) -> Result<Option<(&'static str, bool)>, StoreError> {
        let field = match job_status {
            status::SUCCEEDED => "succeeded",
            status::FAILED => "failed",
            _ => "superseded",
        };
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

    /// Moves a request's `total` when a chunked commit planned more or fewer jobs than first counted.
    pub async fn request_adjust_total(&self, iid: &str, request_id: &str, delta: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::integration_pk(iid), keys::request_sk(request_id))))
            .update_expression("ADD #total :d")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
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

    /// A page of an integration's requests, newest first (GSI `gsi1`: a key-range query, never a
    /// scan), between two request ids (ULIDs: time order), optionally of one status. Keeps
    /// querying until `limit` items match or the range ends; returns the cursor to go on.
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
                .index_name(keys::GSI1)
                .key_condition_expression("#g = :g AND #s BETWEEN :from AND :to")
                .expression_attribute_names("#g", keys::GSI1_PK)
                .expression_attribute_names("#s", keys::GSI1_SK)
                .expression_attribute_values(":g", s(keys::activity_gsi_pk(iid)))
                .expression_attribute_values(":from", s(&range.0))
                .expression_attribute_values(":to", s(&range.1))
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
                out.push(from_item(item)?);
            }
            start = page.last_evaluated_key;
            if out.len() >= limit || start.is_none() {
                break;
            }
        }
        Ok((out, start))
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

    /// Group ids for displayNames (through the uniqueness rows), for the role-mapped groups.
    pub async fn group_ids_by_name(&self, iid: &str, names: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let pk = keys::integration_pk(iid);
        let items = self.batch_get(names.iter().map(|n| key(pk.clone(), keys::group_name_sk(n))).collect()).await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let sk = get_s(i, keys::SK)?;
                let id = get_s(i, "id")?;
                Some((id.to_string(), sk.trim_start_matches("GROUPNAME#").to_string()))
            })
            .collect())
    }

    /// Which `(group, user)` memberships exist among those asked (BatchGetItem).
    pub async fn memberships(
        &self,
        iid: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let pk = keys::integration_pk(iid);
        let items = self.batch_get(pairs.iter().map(|(g, u)| key(pk.clone(), keys::member_sk(g, u))).collect()).await?;
        Ok(items
            .iter()
            .filter_map(|i| Some((get_s(i, "group_id")?.to_string(), get_s(i, "user_id")?.to_string())))
            .collect())
    }
}

#[cfg(test)]
#[path = "provisioning_tests.rs"]
mod row_tests;
