//! Resync (docs/contract.md "Resync and drift"): every managed user's desired assignment set
//! against the account the app really holds, read through the connector. One Activity request
//! (`RESYNC`) with one job per user that differs: in `report` mode the job is recorded as
//! `drift` and the app is left alone; in `correct` mode it is queued, and the worker brings the
//! app from what it was found to hold to the desired state.
//!
//! It runs behind the answer as a task (`store::fanout`, mode `Resync`), one queue message per
//! step, in three stages:
//! 1. **Read**: one page of the app's accounts per message, saved as `APP` rows (the app is read
//!    in pages, never once per user). A connector that cannot list (a webhook robot) skips it.
//! 2. **Compare**: 200 users per message (their `ASSIGN#` rows, deleted users included), matched
//!    to accounts by recorded app id, else by user name or email; the differences become jobs
//!    with fixed numbers (page and position), so a page run again writes no second job.
//! 3. **Finish**: the accounts no user matched are saved as the integration's unmanaged list
//!    (never deleted in the app), the working rows go, and the request may end.
//!
//! The IdP may keep sending meanwhile: a report changes nothing, and a correction is an
//! ordinary job of the user (FIFO behind their other jobs, applying the desired state of when
//! it runs). A crash anywhere runs the step again (the message comes back, or the sweeper
//! re-sends a task that stopped moving).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::{Reply, now};
use crate::assignment::Assignment;
use crate::assignment::diff::Change;
use crate::assignment::drift::{self, AppAccount, Matcher};
use crate::connector::{ConnectorError, OutboundClients};
use crate::error::{ScimError, ScimResult};
use crate::integration::IntegrationConfig;
use crate::queue::{FanoutMessage, JobMessage, Queue};
use crate::secrets::Secrets;
use crate::store::fanout::{FanoutMode, FanoutRow, ResyncStage, ResyncState};
use crate::store::integrations::IntegrationRecord;
use crate::store::keys;
use crate::store::plan::Write;
use crate::store::provisioning::{
    AppliedRow, BASIS_APP, BASIS_REDELIVER, JobRow, RequestRow, assignment_json, queued_gsi_sk, status,
};
use crate::store::resources::Kind;
use crate::store::resync::{ACCOUNTS_PER_ROW, PART_APP, PART_SEEN, UnmanagedHead};
use crate::store::{Store, StoreError};

pub const REPORT: &str = "report";
pub const CORRECT: &str = "correct";

/// Users compared per message.
pub const PAGE: i32 = 200;

/// Most app pages one resync reads (a listing that never ends is a misconfigured cursor).
pub const MAX_APP_PAGES: u32 = 10_000;

/// Jobs per transaction, with the request's count beside them.
const JOBS_PER_TRANSACTION: usize = 90;

/// What reads the app: the outbound clients with the egress rule, and secret references.
#[derive(Clone, Copy)]
pub struct AppAccess<'a> {
    pub outbound: &'a OutboundClients,
    pub secrets: &'a Secrets,
}

/// The `mode` of a resync body (`report` by default); `dry_run: true` makes any mode a report.
pub fn parse_mode(body: &Value) -> ScimResult<&'static str> {
    if !body.is_object() && !body.is_null() {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    }
    let dry_run = match body.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ScimError::invalid_value("dry_run must be true or false")),
    };
    let mode = match body.get("mode").and_then(Value::as_str) {
        None if body.get("mode").is_none_or(Value::is_null) => REPORT,
        Some(REPORT) => REPORT,
        Some(CORRECT) => CORRECT,
        _ => return Err(ScimError::invalid_value("mode must be \"report\" or \"correct\"")),
    };
    Ok(if dry_run { REPORT } else { mode })
}

/// A request that concerns the whole integration (a resync, a re-plan), open until its task ends.
pub fn integration_request(store: &Store, iid: &str, method: &str, path: &str, created_at: &str) -> RequestRow {
    let id = ulid::Ulid::new().to_string();
    RequestRow {
        pk: keys::integration_pk(iid),
        sk: keys::request_sk(&id),
        integration_id: iid.to_string(),
        created_at: created_at.to_string(),
        method: method.to_string(),
        path: path.to_string(),
        resource_type: "Integration".to_string(),
        resource_id: Some(iid.to_string()),
        total: 0,
        succeeded: 0,
        failed: 0,
        superseded: 0,
        drift: 0,
        status: status::REQUESTED.to_string(),
        note: None,
        finished_at: None,
        fanout_pending: true,
        next_job: Some(super::provision::FANOUT_FIRST_JOB),
        expires_at: Some(store.expires_at()),
        id,
    }
}

/// `POST /admin/integrations/{id}/resync`: 202 `{ "request_id", "mode" }`.
pub async fn start(store: &Store, queue: &Queue, iid: &str, body: &Value) -> ScimResult<Reply> {
    let mode = parse_mode(body)?;
    let record = store.get_integration(iid).await?.ok_or_else(|| ScimError::not_found("no such integration"))?;
    super::admin::refuse_while_offboarding(&record)?;
    let request_id = begin(store, queue, iid, mode).await?;
    Ok(Reply::json(202, json!({ "request_id": request_id, "mode": mode })))
}

/// Opens a resync's request and its task in one transaction, then queues the first step.
/// Returns the request id.
pub async fn begin(store: &Store, queue: &Queue, iid: &str, mode: &str) -> ScimResult<String> {
    let at = now();
    let path = format!("/admin/integrations/{iid}/resync?mode={mode}");
    let request = integration_request(store, iid, "RESYNC", &path, &at);
    let mut task = FanoutRow::new(iid, "", Some(&request.id), FanoutMode::Resync, &at);
    task.resync = Some(ResyncState {
        mode: mode.to_string(),
        stage: ResyncStage::Read,
        readable: false,
        app_cursor: None,
        app_rows: 0,
        app_pages: 0,
    });
    store.commit(&[Write::Request(Box::new(request.clone())), Write::Fanout(Box::new(task.clone()))]).await?;
    let first = FanoutMessage { integration_id: iid.to_string(), fanout: task.id.clone(), page: 0, resend: None };
    // Not sent (SQS refused): the sweeper re-sends a task that has not moved.
    queue.send_fanout(&first).await;
    tracing::info!(integration_id = %iid, provisioning_request_id = %request.id, mode, "resync started");
    Ok(request.id)
}

/// Starts the resyncs that integrations' `resync` schedules make due (the sweeper's part). An
/// integration's turn is claimed first (a conditional write on its schedule row), so two
/// overlapping runs never start two; a run cut off between the claim and the start skips that
/// period, and the next period's run starts it. `integrations`: every integration, as the
/// sweeper listed them. Returns how many started.
pub async fn start_scheduled(store: &Store, queue: &Queue, integrations: &[IntegrationRecord]) -> ScimResult<usize> {
    let mut started = 0;
    for record in integrations.iter().filter(|r| r.offboarding.is_none()) {
        let Ok(config) = IntegrationConfig::from_json(record.config_json()) else { continue };
        let Some(schedule) = config.resync else { continue };
        let at = now();
        let due = crate::time::earlier(&at, std::time::Duration::from_secs(u64::from(schedule.every_hours) * 3600));
        if store.resync_schedule_claim(&record.id, &at, &due).await? {
            // One integration's failure does not keep the others' resyncs from starting.
            match begin(store, queue, &record.id, if schedule.mode == CORRECT { CORRECT } else { REPORT }).await {
                Ok(_) => started += 1,
                Err(e) => {
                    tracing::error!(integration_id = %record.id, error = %e.detail, "scheduled resync not started")
                }
            }
        }
    }
    Ok(started)
}

/// One step of a resync task (called by the worker for its queue message).
pub async fn run_step(store: &Store, queue: &Queue, app: AppAccess<'_>, task: &FanoutRow) -> ScimResult<()> {
    let iid = task.integration_id.as_str();
    let (Some(state), Some(request_id)) = (task.resync.clone(), task.request_id.clone()) else {
        store.fanout_finish(task).await?;
        return Ok(());
    };
    // Gone, or being offboarded (a correction could put back what offboarding removes): ends.
    let Some(record) = store.get_integration(iid).await?.filter(|r| r.offboarding.is_none()) else {
        store.request_fanout_done(iid, &request_id, &now()).await?;
        store.resync_delete_parts(iid, &task.id).await?;
        store.fanout_finish(task).await?;
        return Ok(());
    };
    let config = IntegrationConfig::from_json(record.config_json())?;
    // The task's cursor is the last user compared (it stays empty while the app is read).
    let (next, cursor) = match state.stage {
        ResyncStage::Read => match read(store, app, &config, task, &request_id, state).await? {
            Some(state) => (state, None),
            None => return Ok(()), // the resync ended (the app could not be read)
        },
        ResyncStage::Compare => compare(store, queue, task, &request_id, state).await?,
        ResyncStage::Finish => return finish(store, task, &request_id, &state).await,
    };
    let mut moved = task.clone();
    moved.page = task.page + 1;
    moved.cursor = cursor;
    moved.resync = Some(next);
    if store.fanout_save(task, &moved).await? {
        let msg =
            FanoutMessage { integration_id: iid.to_string(), fanout: task.id.clone(), page: moved.page, resend: None };
        queue.send_fanout(&msg).await;
    }
    Ok(())
}

/// Reads one page of the app's accounts. `None` when the resync had to end here.
async fn read(
    store: &Store,
    app: AppAccess<'_>,
    config: &IntegrationConfig,
    task: &FanoutRow,
    request_id: &str,
    mut state: ResyncState,
) -> ScimResult<Option<ResyncState>> {
    let iid = task.integration_id.as_str();
    let connector = match crate::connector::for_integration(
        &config.connector,
        config.allow_private_network,
        app.outbound,
        app.secrets,
    )
    .await
    {
        Ok(c) => c,
        Err(ConnectorError::Retryable { message, .. }) => return Err(ScimError::unavailable(message)),
        Err(ConnectorError::Permanent { message, .. }) => {
            end(store, task, request_id, status::FAILED, &format!("could not read the app: {message}")).await?;
            return Ok(None);
        }
    };
    match connector.list_accounts(state.app_cursor.as_deref()).await {
        Ok(None) => {
            let note = format!(
                "the {} connector cannot list the app's accounts: {}",
                config.connector.kind(),
                if state.mode == CORRECT {
                    "the desired state of every managed user is delivered again"
                } else {
                    "nothing was compared (a correct resync delivers the desired state again)"
                }
            );
            store.request_note(iid, request_id, &note).await?;
            state.readable = false;
            state.stage = ResyncStage::Compare;
        }
        Ok(Some(page)) => {
            for chunk in page.accounts.chunks(ACCOUNTS_PER_ROW) {
                let body = serde_json::to_string(chunk).map_err(|e| ScimError::internal(e.to_string()))?;
                store.resync_put_part(iid, &task.id, PART_APP, state.app_rows, &body).await?;
                state.app_rows += 1;
            }
            state.readable = true;
            state.app_pages += 1;
            state.app_cursor = page.next;
            if state.app_cursor.is_none() {
                state.stage = ResyncStage::Compare;
            } else if state.app_pages >= MAX_APP_PAGES {
                let note = format!("the app listed more than {MAX_APP_PAGES} pages of accounts: resync stopped");
                end(store, task, request_id, status::FAILED, &note).await?;
                return Ok(None);
            }
        }
        Err(ConnectorError::Retryable { message, .. }) => {
            // The message comes back (with backoff) and reads the same page again; meanwhile
            // the Activity page says why the resync waits.
            let note = format!("the app did not answer; trying again: {message}");
            store.request_note(iid, request_id, &note).await?;
            return Err(ScimError::unavailable(format!("reading the app: {message}")));
        }
        Err(ConnectorError::Permanent { message, .. }) => {
            end(store, task, request_id, status::FAILED, &format!("could not read the app: {message}")).await?;
            return Ok(None);
        }
    }
    Ok(Some(state))
}

/// Ends a resync early with a status and a note the Activity page shows.
async fn end(store: &Store, task: &FanoutRow, request_id: &str, final_status: &str, note: &str) -> ScimResult<()> {
    let iid = task.integration_id.as_str();
    tracing::warn!(integration_id = %iid, provisioning_request_id = %request_id, "resync ended: {note}");
    store.request_end(iid, request_id, final_status, note, &now()).await?;
    store.resync_delete_parts(iid, &task.id).await?;
    store.fanout_finish(task).await?;
    Ok(())
}

/// One page of users set against the app's accounts; the differences become jobs.
async fn compare(
    store: &Store,
    queue: &Queue,
    task: &FanoutRow,
    request_id: &str,
    mut state: ResyncState,
) -> ScimResult<(ResyncState, Option<String>)> {
    let iid = task.integration_id.as_str();
    let (rows, more) = store.assign_page(iid, task.cursor.as_deref(), PAGE).await?;
    let accounts = if state.readable { load_accounts(store, iid, &task.id).await? } else { Vec::new() };
    let matcher = Matcher::new(&accounts);
    let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    let docs: HashMap<String, serde_json::Map<String, Value>> =
        store.get_resources(iid, Kind::User, &ids).await?.into_iter().map(|s| (s.id, s.doc)).collect();
    let applied: HashMap<String, AppliedRow> = store.get_applieds(iid, &ids).await?;

    let at = now();
    let mut jobs = Vec::new();
    let mut seen = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let desired = row.desired();
        let known = applied.get(&row.user_id);
        let app_id = known.and_then(|a| a.app_id.as_deref());
        let doc = docs.get(&row.user_id);
        let (basis, before, change, found) = if state.readable {
            let keys = doc.map(drift::user_keys).unwrap_or_default();
            let account = matcher.find(app_id, keys);
            if let Some(a) = account {
                seen.push(a.id.clone());
            }
            let Some(d) = drift::compare(desired.as_ref(), account) else { continue };
            let found = account.filter(|_| app_id.is_none()).map(|a| a.id.clone());
            (BASIS_APP, d.actual, d.change, found)
        } else {
            let Some(change) = (state.mode == CORRECT).then(|| drift::redeliver(desired.as_ref())).flatten() else {
                continue;
            };
            (BASIS_REDELIVER, known.and_then(AppliedRow::applied), change, None)
        };
        let n = super::provision::FANOUT_FIRST_JOB as usize + task.page as usize * PAGE as usize + i;
        let spec =
            JobSpec { n, basis, before: before.as_ref(), desired: desired.as_ref(), change, found, seq: row.seq };
        jobs.push(job_row(store, iid, request_id, &state.mode, doc, &row.user_id, spec, &at));
    }
    let report = state.mode != CORRECT;
    let committed = commit(store, iid, request_id, jobs, report).await?;
    if !report && !committed.is_empty() {
        let messages: Vec<JobMessage> = committed.iter().map(|j| JobMessage::new(iid, &j.id, &j.user_id)).collect();
        // Unsent ones stay `queued`: the sweeper sends them.
        queue.send(&messages).await;
    }
    if state.readable {
        let body = serde_json::to_string(&seen).map_err(|e| ScimError::internal(e.to_string()))?;
        store.resync_put_part(iid, &task.id, PART_SEEN, task.page, &body).await?;
    }
    if !more {
        state.stage = ResyncStage::Finish;
    }
    Ok((state, ids.last().cloned().or_else(|| task.cursor.clone())))
}

/// The app's accounts as the read stage saved them.
async fn load_accounts(store: &Store, iid: &str, task: &str) -> Result<Vec<AppAccount>, StoreError> {
    let mut all = Vec::new();
    for body in store.resync_parts(iid, task, PART_APP).await? {
        let part: Vec<AppAccount> = serde_json::from_str(&body).map_err(|e| StoreError::Malformed(e.to_string()))?;
        all.extend(part);
    }
    Ok(all)
}

struct JobSpec<'a> {
    n: usize,
    basis: &'static str,
    before: Option<&'a Assignment>,
    desired: Option<&'a Assignment>,
    change: Change,
    found: Option<String>,
    seq: u64,
}

#[allow(clippy::too_many_arguments, reason = "one row's parts, named at the one call")]
fn job_row(
    store: &Store,
    iid: &str,
    request_id: &str,
    mode: &str,
    doc: Option<&serde_json::Map<String, Value>>,
    user_id: &str,
    spec: JobSpec<'_>,
    at: &str,
) -> JobRow {
    let id = keys::job_id(request_id, spec.n);
    let report = mode != CORRECT;
    let detail = match (report, spec.basis) {
        (true, _) => Some(format!("the app differs: {}", describe(&spec.change))),
        (false, BASIS_REDELIVER) => Some("the app cannot be read: the desired state is delivered again".to_string()),
        (false, _) => None,
    };
    JobRow {
        pk: keys::integration_pk(iid),
        sk: keys::job_sk(&id),
        request_id: request_id.to_string(),
        integration_id: iid.to_string(),
        user_id: user_id.to_string(),
        user_name: doc.and_then(|d| d.get("userName")).and_then(Value::as_str).map(str::to_string),
        action: spec.change.action.as_str().to_string(),
        before: assignment_json(spec.before.map(Assignment::shown).as_ref()),
        after: assignment_json(spec.desired.map(Assignment::shown).as_ref()),
        changed: spec.change.changed,
        seq: spec.seq,
        status: if report { status::DRIFT } else { status::QUEUED }.to_string(),
        attempts: 0,
        error: None,
        detail,
        applied_action: None,
        created_at: at.to_string(),
        started_at: None,
        finished_at: report.then(|| at.to_string()),
        sent: None,
        sent_seq: None,
        awaiting_until: None,
        waiting_for: None,
        retries: 0,
        basis: (!report).then(|| spec.basis.to_string()),
        found_app_id: spec.found,
        solo: false,
        user_snapshot: doc.map(|d| Value::Object(d.clone()).to_string()),
        gsi1pk: (!report).then(|| keys::QUEUED_GSI_PK.to_string()),
        gsi1sk: (!report).then(|| queued_gsi_sk(at, iid, &id)),
        gsi2pk: Some(keys::user_jobs_gsi_pk(iid, user_id)),
        gsi2sk: Some(id.clone()),
        expires_at: Some(store.expires_at()),
        id,
    }
}

fn describe(change: &Change) -> String {
    if change.changed.is_empty() { change.action.as_str().to_string() } else { change.changed.join(", ") }
}

/// Writes the jobs with the request's count, in transactions. A job a first run of this page
/// already wrote (same number) fails its condition: it is left out and the rest written again.
async fn commit(
    store: &Store,
    iid: &str,
    request_id: &str,
    jobs: Vec<JobRow>,
    report: bool,
) -> ScimResult<Vec<JobRow>> {
    let mut written = Vec::new();
    for chunk in jobs.chunks(JOBS_PER_TRANSACTION) {
        let mut chunk: Vec<JobRow> = chunk.to_vec();
        for _ in 0..super::WRITE_ATTEMPTS {
            if chunk.is_empty() {
                break;
            }
            let mut writes: Vec<Write> = chunk.iter().map(|j| Write::Job(Box::new(j.clone()))).collect();
            let (iid, request_id) = (iid.to_string(), request_id.to_string());
            writes.push(Write::RequestCount { iid, request_id, jobs: chunk.len(), drift: report });
            match store.commit(&writes).await {
                Ok(()) => {
                    written.append(&mut chunk);
                    break;
                }
                Err(e) if e.lost_race() => {
                    // Jobs whose row exists already (a page run again) are left out.
                    let before = chunk.len();
                    let mut i = 0;
                    chunk.retain(|_| {
                        let keep = !e.condition_failed_at(i);
                        i += 1;
                        keep
                    });
                    if chunk.len() == before {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(written)
}

/// Saves the unmanaged accounts and ends the resync.
async fn finish(store: &Store, task: &FanoutRow, request_id: &str, state: &ResyncState) -> ScimResult<()> {
    let iid = task.integration_id.as_str();
    // Run again after its working rows were deleted (a crash before the task row went): the
    // list it saved stands.
    if store.unmanaged_head(iid).await?.is_some_and(|h| h.request_id == request_id) {
        store.request_fanout_done(iid, request_id, &now()).await?;
        store.fanout_finish(task).await?;
        return Ok(());
    }
    let accounts = if state.readable { load_accounts(store, iid, &task.id).await? } else { Vec::new() };
    let mut matched = HashSet::new();
    for body in store.resync_parts(iid, &task.id, PART_SEEN).await? {
        let ids: Vec<String> = serde_json::from_str(&body).map_err(|e| ScimError::internal(e.to_string()))?;
        matched.extend(ids);
    }
    let unmanaged = drift::unmanaged(&accounts, &matched);
    let head = UnmanagedHead {
        request_id: request_id.to_string(),
        at: now(),
        readable: state.readable,
        count: unmanaged.len() as u64,
        chunks: unmanaged.len().div_ceil(ACCOUNTS_PER_ROW) as u32,
    };
    store.unmanaged_save(iid, &head, &unmanaged).await?;
    store.resync_delete_parts(iid, &task.id).await?;
    // The request first: if this stops in between, the step runs again and comes back here.
    store.request_fanout_done(iid, request_id, &now()).await?;
    store.fanout_finish(task).await?;
    tracing::info!(integration_id = %iid, provisioning_request_id = %request_id, unmanaged = head.count, "resync done");
    Ok(())
}

/// `GET /admin/integrations/{id}/unmanaged[?cursor=N]`: the last resync's app accounts that no
/// managed user matches, 200 per page.
pub async fn unmanaged(store: &Store, iid: &str, cursor: Option<&str>) -> ScimResult<Reply> {
    if store.get_integration(iid).await?.is_none() {
        return Err(ScimError::not_found("no such integration"));
    }
    let Some(head) = store.unmanaged_head(iid).await? else {
        return Ok(Reply::json(200, json!({ "resync": null, "items": [], "next_cursor": null })));
    };
    let n = match cursor.filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .parse::<u32>()
            .ok()
            .filter(|n| *n < head.chunks.max(1))
            .ok_or_else(|| ScimError::invalid_value("invalid cursor"))?,
    };
    let items = store.unmanaged_chunk(iid, &head.request_id, n).await?;
    let next = (n + 1 < head.chunks).then(|| (n + 1).to_string());
    Ok(Reply::json(
        200,
        json!({
            "resync": { "request_id": head.request_id, "at": head.at, "readable": head.readable, "count": head.count },
            "items": items,
            "next_cursor": next,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode(&json!({})).unwrap(), REPORT);
        assert_eq!(parse_mode(&Value::Null).unwrap(), REPORT);
        assert_eq!(parse_mode(&json!({"mode": "correct"})).unwrap(), CORRECT);
        assert_eq!(parse_mode(&json!({"mode": "correct", "dry_run": true})).unwrap(), REPORT);
        for bad in [json!({"mode": "fix"}), json!({"mode": 1}), json!({"dry_run": "yes"}), json!([1])] {
            assert_eq!(parse_mode(&bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
