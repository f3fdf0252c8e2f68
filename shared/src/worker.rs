//! The worker: reconciles one user at a time. It reads the user's desired assignment and what
//! was last applied to the app; if they already agree the job is `superseded`; otherwise it
//! runs the connector with the diff and records the outcome and the new applied state.
//! Retryable failures come back with backoff; permanent ones fail the job at once.

use std::time::Duration;

use serde_json::{Value, json};
use tracing::Instrument;

use crate::assignment::diff::diff;
use crate::assignment::drift;
use crate::connector::{self, Connector, ConnectorConfig, ConnectorError, Job, Outcome};
use crate::integration::IntegrationConfig;
use crate::metrics;
use crate::queue::{FanoutMessage, JobMessage, Message, NotifyMessage, Queue};
use crate::secrets::Secrets;
use crate::service::{now, render};
use crate::store::provisioning::{AppliedRow, BASIS_APP, BASIS_REDELIVER, JobGuard, JobOutcome, JobRow, status};
use crate::store::resources::Kind;
use crate::store::{Store, StoreError};
use crate::time::later;

/// One SQS message as Lambda hands it over.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub receipt_handle: Option<String>,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Done with it (success, superseded, permanent failure, duplicate): delete it.
    Ack,
    /// Try again after `delay` (the message's visibility is set to that).
    Retry { delay: Duration },
}

pub struct Worker {
    pub store: Store,
    /// The job queue (the worker re-queues to it, and sets its messages' backoff).
    pub queue: Queue,
    /// Outbound clients of the connectors, with the egress rule (docs/contract.md "Outbound calls").
    pub http: connector::OutboundClients,
    /// Resolves connectors' `ssm:`/`secretsmanager:` secret references (cached).
    pub secrets: Secrets,
    /// The queue's `maxReceiveCount`: on that delivery a retryable failure fails the job.
    pub max_receives: u32,
    /// Public API URL, for `meta.location` in the user sent to connectors.
    pub public_url: Option<String>,
    /// How long a started job may stay `running` before the sweeper takes it for lost.
    pub job_deadline: Duration,
    /// How many users of one integration a batch runs at once ([`PER_INTEGRATION`]).
    pub per_integration: usize,
}

/// How many users (FIFO groups) of one integration a worker batch runs at once: one
/// integration's push cannot take all of an invocation, and an app sees at most this many
/// calls at a time from one invocation (docs/architecture.md "Flow", Concurrency).
pub const PER_INTEGRATION: usize = crate::config::DEFAULT_WORKER_PER_INTEGRATION;

/// Rows a purge page deletes (a Query page, then BatchWriteItem calls of 25).
pub const PURGE_PAGE: i32 = 200;

/// A batch's messages by FIFO group, groups in order of their first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchGroup {
    pub integration: String,
    pub group: String,
    /// Indexes into the batch, in order.
    pub messages: Vec<usize>,
}

/// Sorts a batch into its FIFO groups as the queue assigned them (`queue.rs`): a job by
/// integration and user, a fan-out page by its task, notifications by integration. A message
/// that cannot be read is a group of its own. Pure.
pub fn batch_groups(batch: &[Delivery]) -> Vec<BatchGroup> {
    let mut groups: Vec<BatchGroup> = Vec::new();
    for (i, d) in batch.iter().enumerate() {
        let (integration, group) = match serde_json::from_str::<Message>(&d.body) {
            Ok(Message::Job(m)) => (m.integration_id.clone(), m.group_id()),
            Ok(Message::Fanout(m)) => (m.integration_id.clone(), format!("{}:fanout:{}", m.integration_id, m.fanout)),
            Ok(Message::Notify(m)) => (m.integration_id.clone(), format!("{}:notify", m.integration_id)),
            Ok(Message::Purge(m)) => (m.purge.clone(), format!("{}:purge", m.purge)),
            Err(_) => (String::new(), format!("unreadable:{}", d.message_id)),
        };
        match groups.iter_mut().find(|g| g.group == group) {
            Some(g) => g.messages.push(i),
            None => groups.push(BatchGroup { integration, group, messages: vec![i] }),
        }
    }
    groups
}

/// Backoff for retryable failures without `Retry-After`: 2, 4, 8 … seconds, at most 5 minutes.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 8)).min(300))
}

fn short(s: &str) -> String {
    s.chars().take(500).collect()
}

/// The time one job may take: a connector call is bounded at 10 s (`connector::REQUEST_TIMEOUT`)
/// and the `scim` connector makes two, plus the reads and writes around them.
pub const JOB_BUDGET: Duration = Duration::from_secs(25);

impl Worker {
    /// Handles a batch in order (no deadline: tests and local runs).
    pub async fn handle_batch(&self, batch: &[Delivery]) -> Vec<String> {
        self.handle_batch_until(batch, None).await
    }

    /// Handles a batch: the messages of each FIFO group (a user, a fan-out, an integration's
    /// notifications) in order, different groups at the same time, at most `per_integration`
    /// groups of one integration at once (`batch_groups`). In a group, at
    /// the first message that must be retried, stop: it and the group's later messages are
    /// returned as failures, so per-user order holds; other groups are not held up. Near the
    /// invocation's `deadline` (less than [`JOB_BUDGET`] left) the rest of a group is handed
    /// back the same way instead of being cut off by the timeout. Returns the failed message
    /// ids, in batch order.
    pub async fn handle_batch_until(&self, batch: &[Delivery], deadline: Option<std::time::Instant>) -> Vec<String> {
        let groups = batch_groups(batch);
        let mut limits: std::collections::HashMap<&str, std::sync::Arc<tokio::sync::Semaphore>> =
            std::collections::HashMap::new();
        for g in &groups {
            limits
                .entry(g.integration.as_str())
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_integration.max(1))));
        }
        let runs = groups.iter().map(|g| {
            let limit = limits[g.integration.as_str()].clone();
            async move {
                let _permit = limit.acquire().await;
                let messages: Vec<&Delivery> = g.messages.iter().map(|&i| &batch[i]).collect();
                self.handle_group(&messages, deadline).await
            }
        });
        let failed: std::collections::HashSet<String> =
            futures_util::future::join_all(runs).await.into_iter().flatten().collect();
        batch.iter().filter(|d| failed.contains(&d.message_id)).map(|d| d.message_id.clone()).collect()
    }

    /// One FIFO group's messages, in order (see [`Self::handle_batch_until`]).
    async fn handle_group(&self, batch: &[&Delivery], deadline: Option<std::time::Instant>) -> Vec<String> {
        let mut failed = Vec::new();
        for (i, d) in batch.iter().enumerate() {
            if deadline.is_some_and(|end| end.saturating_duration_since(std::time::Instant::now()) < JOB_BUDGET) {
                tracing::info!(
                    handed_back = batch.len() - i,
                    "invocation deadline near; the rest of this group's messages go back"
                );
                for rest in &batch[i..] {
                    self.set_visibility(rest, Duration::ZERO).await;
                    failed.push(rest.message_id.clone());
                }
                break;
            }
            match self.handle(d).await {
                Disposition::Ack => {}
                Disposition::Retry { delay } => {
                    self.set_visibility(d, delay).await;
                    failed.push(d.message_id.clone());
                    for rest in &batch[i + 1..] {
                        self.set_visibility(rest, Duration::ZERO).await;
                        failed.push(rest.message_id.clone());
                    }
                    break;
                }
            }
        }
        failed
    }

    async fn set_visibility(&self, d: &Delivery, delay: Duration) {
        let Some(handle) = &d.receipt_handle else { return };
        if !self.queue.delay(handle, delay).await {
            tracing::warn!(message_id = %d.message_id, "retry backoff not set; the queue's visibility timeout applies");
        }
    }

    /// One message. Storage errors are retried (the message comes back); nothing is lost.
    pub async fn handle(&self, d: &Delivery) -> Disposition {
        let msg = match serde_json::from_str::<Message>(&d.body) {
            Ok(Message::Job(msg)) => msg,
            Ok(Message::Fanout(page)) => return self.fanout(&page, d.receive_count).await,
            Ok(Message::Notify(m)) => return self.notify(&m, d.receive_count).await,
            Ok(Message::Purge(m)) => return self.purge(&m, d.receive_count).await,
            Err(_) => {
                tracing::error!(message_id = %d.message_id, "malformed job message; dropped");
                return Disposition::Ack;
            }
        };
        match self.reconcile(&msg, d.receive_count).await {
            Ok(disposition) => disposition,
            Err(e) => {
                tracing::error!(job_id = %msg.job_id, integration_id = %msg.integration_id, error = %e, "worker storage error; will retry");
                Disposition::Retry { delay: backoff(d.receive_count) }
            }
        }
    }

    /// One page of a group's fan-out (`service::fanout`); any failure runs the page again.
    async fn fanout(&self, page: &FanoutMessage, receive_count: u32) -> Disposition {
        let queue = self.queue.clone();
        let span = tracing::info_span!("fanout", integration_id = %page.integration_id, fanout = %page.fanout, page = page.page);
        let app = crate::service::resync::AppAccess { outbound: &self.http, secrets: &self.secrets };
        match crate::service::fanout::run(&self.store, &queue, app, page).instrument(span).await {
            Ok(()) => Disposition::Ack,
            Err(e) => {
                tracing::warn!(integration_id = %page.integration_id, fanout = %page.fanout, error = %e.detail, "fan-out page failed; will run again");
                Disposition::Retry { delay: backoff(receive_count) }
            }
        }
    }

    async fn reconcile(&self, msg: &JobMessage, receive_count: u32) -> Result<Disposition, StoreError> {
        let iid = &msg.integration_id;
        let started = now();
        let deadline = later(&started, self.job_deadline);
        let Some(job) = self.store.job_start(iid, &msg.job_id, &started, &deadline).await? else {
            tracing::info!(job_id = %msg.job_id, integration_id = %iid, "job finished or awaiting its callback; duplicate delivery acknowledged");
            return Ok(Disposition::Ack);
        };
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            integration_id = %iid,
            provisioning_request_id = %job.request_id
        );
        self.apply(iid, job, receive_count).instrument(span).await
    }

    /// Finishes a running job, unless something else (a webhook callback, the sweeper) finished
    /// it first: then `false`, and nothing is written or counted twice.
    async fn finish(
        &self,
        job: &JobRow,
        status_: &str,
        error: Option<&str>,
        detail: Option<&str>,
        applied_action: Option<&str>,
    ) -> Result<bool, StoreError> {
        let outcome = JobOutcome { status: status_, error, detail, applied_action };
        let finished = self.store.complete_job(job, &outcome, JobGuard::Running).await?;
        if !finished.now() {
            tracing::info!(
                status = status_,
                "job already finished elsewhere (a callback or the sweeper); left as it is"
            );
            return Ok(false);
        }
        let queue = self.queue.clone();
        crate::notify::queue_for(&self.store, &queue, job, status_, finished).await;
        if let Err(e) = crate::offboard::after_job(&self.store, &queue, job, finished).await {
            // The job stays finished; the sweeper starts the purge (`resume_offboards`).
            tracing::warn!(error = %e, "starting an offboarded integration's purge failed; the sweeper will");
        }
        Ok(true)
    }

    /// One page of a deleted integration's purge (`store::purge`), then the next page's
    /// message, or the marker's removal when nothing is left. Any failure runs the page again.
    async fn purge(&self, m: &crate::queue::PurgeMessage, receive_count: u32) -> Disposition {
        let queue = self.queue.clone();
        let result = async {
            let (deleted, more) = self.store.purge_page(&m.purge, PURGE_PAGE).await?;
            if more || deleted > 0 {
                // A resumed chain keeps its resend tag: its pages' deduplication ids never meet
                // those of the chain it replaces (SQS drops a repeated id for 5 minutes).
                let next =
                    crate::queue::PurgeMessage { purge: m.purge.clone(), page: m.page + 1, resend: m.resend.clone() };
                if !queue.send_purge(&next).await {
                    return Err(StoreError::Malformed("the next purge page could not be queued".into()));
                }
            } else {
                self.store.purge_done(&m.purge).await?;
                tracing::info!(integration_id = %m.purge, pages = m.page, "deleted integration purged");
            }
            Ok::<_, StoreError>(deleted)
        }
        .await;
        match result {
            Ok(deleted) => {
                tracing::info!(integration_id = %m.purge, page = m.page, deleted, "purge page done");
                Disposition::Ack
            }
            Err(e) => {
                tracing::warn!(integration_id = %m.purge, page = m.page, error = %e, "purge page failed; will run again");
                Disposition::Retry { delay: backoff(receive_count) }
            }
        }
    }

    /// Sends one failure notification (`crate::notify`). Storage errors and a receiver's
    /// 429/5xx/timeout come back with backoff until the last delivery; then it is given up
    /// (logged and counted), never dead-lettered: the failure itself is in Activity already.
    async fn notify(&self, m: &NotifyMessage, receive_count: u32) -> Disposition {
        let span = tracing::info_span!("notify", integration_id = %m.integration_id, event = %m.event_id());
        let outcome = async {
            let Some(record) = self.store.get_integration(&m.integration_id).await? else {
                return Ok(crate::notify::Sent::GiveUp("the integration no longer exists".into()));
            };
            let Ok(config) = IntegrationConfig::from_json(record.config_json()) else {
                return Ok(crate::notify::Sent::GiveUp("the integration's configuration is invalid".into()));
            };
            let Some(target) = config.notify.as_ref() else {
                return Ok(crate::notify::Sent::Off);
            };
            let job = match &m.job_id {
                Some(id) => self.store.get_job(&m.integration_id, id).await?,
                None => None,
            };
            let request = match &m.job_id {
                None => self.store.get_request(&m.integration_id, &m.request_id).await?,
                Some(_) => None,
            };
            let body = crate::notify::payload(m, &config.name, job.as_ref(), request.as_ref(), &now());
            let outbound = self.http.for_integration(config.allow_private_network);
            Ok::<_, StoreError>(crate::notify::deliver(&outbound, target, &m.event_id(), &body).await)
        }
        .instrument(span.clone())
        .await;
        let _enter = span.enter();
        let give_up = |why: &str| {
            tracing::warn!(reason = why, "failure notification given up");
            metrics::emit(&[], &[("NotificationsFailed", metrics::Unit::Count, 1.0)]);
            Disposition::Ack
        };
        match outcome {
            Ok(crate::notify::Sent::Off) => Disposition::Ack,
            Ok(crate::notify::Sent::Delivered(code)) => {
                tracing::info!(status = code, "failure notification delivered");
                metrics::emit(&[], &[("NotificationsSent", metrics::Unit::Count, 1.0)]);
                Disposition::Ack
            }
            Ok(crate::notify::Sent::GiveUp(why)) => give_up(&why),
            Ok(crate::notify::Sent::Retry(why)) if receive_count + 1 >= self.max_receives => give_up(&why),
            Ok(crate::notify::Sent::Retry(why)) => {
                tracing::info!(reason = %why, "failure notification will be retried");
                Disposition::Retry { delay: backoff(receive_count) }
            }
            Err(e) if receive_count + 1 >= self.max_receives => give_up(&e.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "failure notification: storage error; will retry");
                Disposition::Retry { delay: backoff(receive_count) }
            }
        }
    }

    /// Runs one started job to an outcome and records it.
    async fn apply(&self, iid: &str, job: JobRow, receive_count: u32) -> Result<Disposition, StoreError> {
        // Every row the job reads, in one call (`store::job_context`).
        let context = self.store.job_context(iid, &job.user_id).await?;
        let Some(record) = context.integration else {
            self.finish(&job, status::FAILED, Some("the integration no longer exists"), None, None).await?;
            metrics::job(&job.action, status::FAILED);
            return Ok(Disposition::Ack);
        };
        let config = match IntegrationConfig::from_json(record.config_json()) {
            Ok(config) => config,
            Err(e) => {
                let error = format!("connector configuration: {}", e.detail);
                self.finish(&job, status::FAILED, Some(&error), None, None).await?;
                metrics::job(&job.action, status::FAILED);
                return Ok(Disposition::Ack);
            }
        };

        let assign = context.assign;
        let desired_seq = assign.as_ref().map_or(0, |a| a.seq);
        let desired = assign.as_ref().and_then(|a| a.desired());
        // An integration being offboarded: whatever job this is (one of the offboarding, or a
        // change committed just before its tokens stopped), the user ends as offboarding wants.
        let desired = match &record.offboarding {
            Some(off) => off.mode.target(desired),
            None => desired,
        };
        let mut applied_row = context.applied;
        // A delivery of this user that the app has not confirmed yet: what the app holds is
        // not known until it is, so this job waits its turn (level-triggered: when it runs, it
        // applies whatever is desired then).
        if let Some(pending) = applied_row.as_ref().and_then(|r| r.pending_job.clone()).filter(|p| *p != job.id) {
            let open = self.store.get_job(iid, &pending).await?.is_some_and(|p| p.status == status::RUNNING);
            if open {
                self.store.job_wait(&job, &pending, &now()).await?;
                tracing::info!(waiting_for = %pending, "an earlier delivery awaits the app's confirmation; job waits");
                metrics::job(&job.action, "waiting");
                // Its wake-up may have come and gone between the check and the wait: look again.
                if self.store.get_job(iid, &pending).await?.is_none_or(|p| p.status != status::RUNNING) {
                    let me = JobMessage {
                        retry: job.retries,
                        wake: job.attempts + 1,
                        ..JobMessage::new(iid, &job.id, &job.user_id)
                    };
                    self.queue.clone().send(&[me]).await;
                }
                return Ok(Disposition::Ack);
            }
            // Its job ended but the marker stayed (a crash between the two writes): stale.
            self.store.clear_pending(iid, &job.user_id, &pending).await?;
            applied_row = self.store.get_applied(iid, &job.user_id).await?;
        }
        // A resync's correction starts from what the app was found to hold (`app`), or sends
        // the desired state again whatever was last applied (`redeliver`): it runs even when
        // idlcm's own record says the app is up to date (docs/contract.md "Resync and drift").
        let basis = job.basis.as_deref();
        let applied = match basis {
            Some(BASIS_APP) => job.before(),
            _ => applied_row.as_ref().and_then(AppliedRow::applied),
        };
        let app_id = applied_row.as_ref().and_then(|r| r.app_id.clone()).or_else(|| job.found_app_id.clone());

        let already = basis.is_none() && applied_row.as_ref().is_some_and(|r| r.seq >= desired_seq);
        let change = (!already)
            .then(|| diff(applied.as_ref(), desired.as_ref()))
            .flatten()
            .or_else(|| (basis == Some(BASIS_REDELIVER)).then(|| drift::redeliver(desired.as_ref())).flatten());
        let Some(change) = change else {
            // Nothing to do: a duplicate, or a later job already applied this state.
            if !already {
                self.store.record_applied(iid, &job.user_id, desired.as_ref(), desired_seq, app_id.clone()).await?;
            }
            self.finish(&job, status::SUPERSEDED, None, Some("the app already matches the desired state"), None)
                .await?;
            metrics::job(&job.action, status::SUPERSEDED);
            return Ok(Disposition::Ack);
        };

        let user = self.user_resource(iid, &job, context.user);
        let action = change.action;
        let call = Job {
            job_id: &job.id,
            integration_id: iid,
            action,
            user: &user,
            before: applied.as_ref(),
            after: desired.as_ref(),
            app_id: app_id.as_deref(),
        };
        // A robot may call back before its answer reaches us: mark the delivery pending first.
        let confirms_later = matches!(config.connector, ConnectorConfig::Webhook(_));
        if confirms_later {
            self.store.set_pending(iid, &job.user_id, &job.id, desired.as_ref(), desired_seq, &now()).await?;
        }
        let started = std::time::Instant::now();
        let outcome = match self.connector(&config).await {
            Ok(connector) => connector.apply(&call).await,
            Err(e) => Err(e),
        };
        let ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(Outcome::Done { app_id: new_id, detail }) => {
                let id = if desired.is_none() { None } else { new_id.or(app_id) };
                // The job first: a robot's callback may have finished it (and recorded the state)
                // while its answer was on the way.
                if !self.finish(&job, status::SUCCEEDED, None, detail.as_deref(), Some(action.as_str())).await? {
                    return Ok(Disposition::Ack);
                }
                self.store.settle_applied(iid, &job.user_id, &job.id, desired.as_ref(), desired_seq, id).await?;
                tracing::info!(action = action.as_str(), latency_ms = ms, "job succeeded");
                metrics::job_applied(action.as_str(), &job.created_at, job.retries);
                Ok(Disposition::Ack)
            }
            Ok(Outcome::Accepted { detail }) => {
                let until = later(&now(), config.callback_timeout());
                self.store
                    .job_accepted(
                        iid,
                        &job.id,
                        desired.as_ref(),
                        desired_seq,
                        action.as_str(),
                        detail.as_deref(),
                        &until,
                    )
                    .await?;
                tracing::info!(action = action.as_str(), latency_ms = ms, "job accepted; waiting for the callback");
                metrics::job(action.as_str(), "accepted");
                Ok(Disposition::Ack)
            }
            Err(ConnectorError::Permanent { message, .. }) => {
                let message = short(&message);
                if !self.finish(&job, status::FAILED, Some(&message), None, Some(action.as_str())).await? {
                    return Ok(Disposition::Ack);
                }
                if confirms_later {
                    self.store.clear_pending(iid, &job.user_id, &job.id).await?;
                }
                tracing::warn!(action = action.as_str(), latency_ms = ms, "job failed permanently");
                metrics::job(action.as_str(), status::FAILED);
                Ok(Disposition::Ack)
            }
            Err(ConnectorError::Retryable { message, retry_after }) => {
                let message = short(&message);
                if receive_count >= self.max_receives {
                    let error = format!("gave up after {receive_count} attempts: {message}");
                    if !self.finish(&job, status::FAILED, Some(&error), None, Some(action.as_str())).await? {
                        return Ok(Disposition::Ack);
                    }
                    if confirms_later {
                        self.store.clear_pending(iid, &job.user_id, &job.id).await?;
                    }
                    tracing::warn!(
                        action = action.as_str(),
                        "job failed after the last attempt; the message goes to the DLQ"
                    );
                    metrics::job(action.as_str(), status::FAILED);
                    // Returned as a failure once more: SQS moves it to the dead-letter queue.
                    return Ok(Disposition::Retry { delay: Duration::ZERO });
                }
                let outcome = JobOutcome {
                    status: status::RUNNING,
                    error: Some(&message),
                    detail: None,
                    applied_action: Some(action.as_str()),
                };
                if !self.store.job_record_if(&job, &outcome, &now(), Some(JobGuard::Running)).await? {
                    return Ok(Disposition::Ack); // finished meanwhile (a callback)
                }
                // The job's deadline was set when it started: a retry must come before it, or
                // the sweeper would take the job for lost. A longer Retry-After is shortened;
                // the app may ask again.
                let longest = self.job_deadline.saturating_sub(Duration::from_secs(60)).max(Duration::from_secs(1));
                let delay = retry_after.unwrap_or_else(|| backoff(receive_count)).min(longest);
                tracing::info!(
                    action = action.as_str(),
                    latency_ms = ms,
                    delay_s = delay.as_secs(),
                    "job will be retried"
                );
                metrics::retry(action.as_str());
                Ok(Disposition::Retry { delay })
            }
        }
    }

    /// The connector for a configuration (`connector::for_integration`).
    async fn connector(&self, config: &IntegrationConfig) -> Result<Box<dyn Connector>, ConnectorError> {
        connector::for_integration(&config.connector, config.allow_private_network, &self.http, &self.secrets).await
    }

    /// The SCIM user to send: the stored one (read with the job's context), or for a deleted
    /// user the job's snapshot.
    fn user_resource(&self, iid: &str, job: &JobRow, stored: Option<crate::store::resources::Stored>) -> Value {
        if let Some(stored) = stored {
            let base = format!("{}/scim/v2/{iid}", self.public_url.as_deref().unwrap_or(""));
            return render::resource(&base, Kind::User, &stored, None);
        }
        job.user_snapshot
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| json!({ "id": job.user_id, "userName": job.user_name }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, body: serde_json::Value) -> Delivery {
        Delivery { message_id: id.into(), receipt_handle: None, body: body.to_string(), receive_count: 1 }
    }

    #[test]
    fn a_batch_splits_into_its_fifo_groups_in_order() {
        let job = |id: &str, iid: &str, user: &str| {
            delivery(id, json!({"integration_id": iid, "job_id": id, "user_id": user}))
        };
        let batch = vec![
            job("1", "a", "u1"),
            job("2", "a", "u2"),
            job("3", "a", "u1"),
            job("4", "b", "u1"),
            delivery("5", json!({"integration_id": "a", "fanout": "f", "page": 2})),
            delivery("6", json!({"integration_id": "a", "notify": "job.failed", "request_id": "r", "job_id": "1"})),
            delivery("7", json!("not a message")),
            job("8", "a", "u2"),
        ];
        let groups = batch_groups(&batch);
        let shape: Vec<(&str, &str, Vec<usize>)> =
            groups.iter().map(|g| (g.integration.as_str(), g.group.as_str(), g.messages.clone())).collect();
        assert_eq!(
            shape,
            vec![
                ("a", "a:u1", vec![0, 2]),
                ("a", "a:u2", vec![1, 7]),
                ("b", "b:u1", vec![3]),
                ("a", "a:fanout:f", vec![4]),
                ("a", "a:notify", vec![5]),
                ("", "unreadable:7", vec![6]),
            ],
            "one group per user, fan-out and notifications; each in batch order"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(256));
        assert!(backoff(0) >= Duration::from_secs(2));
    }
}
