//! The auto-retry handler: one input (a `CodeBuild Build State Change` event, or a batch of
//! delay-queue messages) in, decisions made, acted on through the ports, logged.
//!
//! Generic over the ports, so tests drive it with fakes and the function's `main` with the AWS
//! adapters. Time comes in as `now` and the invocation's `deadline`; nothing here sleeps: every
//! wait goes through the delay queue.
//!
//! The single-build flow is in [`build`], the batch flow in [`batch`], the claim → act →
//! complete steps and giving up in [`act`].

mod act;
mod batch;
mod build;
mod error;
mod record;
#[cfg(test)]
mod tests;

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use serde_json::Value;

pub use build::is_retry_candidate;
pub use error::AutoRetryError;
pub use record::{Action, DecisionRecord};

use super::settings::AutoRetrySettings;
use super::work::DelayedWork;
use crate::config::{Config, ConfigCache};
use crate::ledger::Ledger;
use crate::model::BuildStateChangeEvent;
use crate::model::build_event::BUILD_STATE_CHANGE;
use crate::ports::{BuildLogs, CodeBuild, ConfigSource, DelayQueue, Notifier, RetryBook};
use crate::retry::work::GaveUpNotice;

/// The function name, as the metrics' `Function` dimension.
pub const FUNCTION_NAME: &str = "auto-retry";

/// Kept between a claim's lease and the invocation's deadline, so the claim has run out by the
/// time a redelivery after a timeout could claim again.
const LEASE_SAFETY_MARGIN: Duration = Duration::from_secs(2);
/// The shortest lease, when the deadline is (nearly) past.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// The ports the handler acts through.
#[derive(Debug, Clone)]
pub struct Ports<C, L, B, Q, N, G> {
    /// CodeBuild.
    pub codebuild: C,
    /// The idempotency ledger.
    pub ledger: L,
    /// Lineage, batch attempts and budgets.
    pub book: B,
    /// The delay queue.
    pub queue: Q,
    /// "Gave up" notices.
    pub notifier: N,
    /// Build log tails.
    pub logs: G,
}

/// What one invocation runs with.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The configuration in force.
    pub config: &'a Config,
    /// The function's settings.
    pub settings: &'a AutoRetrySettings,
    /// The current time.
    pub now: DateTime<Utc>,
    /// When Lambda ends the invocation.
    pub deadline: DateTime<Utc>,
}

impl Invocation<'_> {
    /// How long a claim holds: the time left minus a safety margin, at least [`MIN_LEASE`].
    pub fn lease(&self) -> Duration {
        let left = (self.deadline - self.now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        left.saturating_sub(LEASE_SAFETY_MARGIN).max(MIN_LEASE)
    }
}

/// Handles one input. A build state change answers with its [`DecisionRecord`] as JSON; a
/// delay-queue batch answers with the SQS partial-batch response (`batchItemFailures` naming
/// the messages that failed retryably). Every error is logged here once, with its reason.
pub async fn handle<C, L, B, Q, N, G>(
    ports: &Ports<C, L, B, Q, N, G>,
    invocation: &Invocation<'_>,
    input: Value,
) -> Result<Value, AutoRetryError>
where
    C: CodeBuild,
    L: Ledger,
    B: RetryBook,
    Q: DelayQueue,
    N: Notifier,
    G: BuildLogs,
{
    let run = Run {
        ports,
        inv: invocation,
    };
    let result = if input.get("Records").is_some() {
        run.on_queue_batch(input).await
    } else {
        run.on_event_input(&input, build::Delivery::Event)
            .await
            .and_then(|record| to_json(&record))
    };
    if let Err(err) = &result {
        log_error(err);
    }
    result
}

/// One Lambda invocation, as the function's `main` runs it: the configuration from `cache`, the
/// clock, [`handle`]. A retryable error comes back as `Err` (Lambda's retries, then the
/// dead-letter queue, keep the event); a non-retryable one, already logged, becomes an `Ok`
/// answer naming the rejection, so Lambda does not retry what cannot succeed.
pub async fn invoke<S, C, L, B, Q, N, G>(
    ports: &Ports<C, L, B, Q, N, G>,
    cache: &ConfigCache<S>,
    settings: &AutoRetrySettings,
    deadline: std::time::SystemTime,
    input: Value,
) -> Result<Value, AutoRetryError>
where
    S: ConfigSource,
    C: CodeBuild,
    L: Ledger,
    B: RetryBook,
    Q: DelayQueue,
    N: Notifier,
    G: BuildLogs,
{
    let result = match cache.current().await {
        Ok(config) => {
            let invocation = Invocation {
                config: &config,
                settings,
                now: Utc::now(),
                deadline: DateTime::<Utc>::from(deadline),
            };
            handle(ports, &invocation, input).await
        }
        Err(err) => {
            let err = AutoRetryError::Config {
                message: err.to_string(),
            };
            log_error(&err);
            Err(err)
        }
    };
    match result {
        Err(err) if !err.is_retryable() => Ok(serde_json::json!({
            "action": "reject",
            "reason": err.reason(),
        })),
        other => other,
    }
}

/// A [`Notifier`] that may be absent (no topic configured): then notices go nowhere. The
/// handler does not ask for notices without a topic; this only gives `main` one type.
#[derive(Debug, Clone)]
pub struct OptionalNotifier<N>(pub Option<N>);

impl<N: Notifier> Notifier for OptionalNotifier<N> {
    async fn gave_up(&self, notice: &GaveUpNotice) -> Result<(), crate::ports::ServiceError> {
        match &self.0 {
            Some(notifier) => notifier.gave_up(notice).await,
            None => Ok(()),
        }
    }
}

/// Logs an error the handler returns (or a queued message's, which is not returned).
fn log_error(err: &AutoRetryError) {
    let action = if err.is_retryable() {
        "retry_later"
    } else {
        "reject"
    };
    tracing::warn!(
        action,
        reason = err.reason(),
        retryable = err.is_retryable(),
        error = %err,
        "auto-retry did not handle the input"
    );
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, AutoRetryError> {
    serde_json::to_value(value).map_err(|err| AutoRetryError::Rejected {
        message: format!("answer not serialisable: {err}"),
    })
}

/// A retry that was decided and not made yet.
struct PendingRetry<'a> {
    attempt: u32,
    backoff: Duration,
    reason: crate::retry::Reason,
    dry_run: bool,
    /// The event as first delivered; `None` when this is already a delayed delivery.
    first_event: Option<&'a Value>,
}

/// What [`Run::hold_back_retry`] did.
enum Held {
    /// Logged (dry-run) or delayed: nothing more to do now.
    Done(DecisionRecord),
    /// Make the retry now.
    ActNow(DecisionRecord),
}

/// One invocation's view of the ports and settings.
struct Run<'r, C, L, B, Q, N, G> {
    ports: &'r Ports<C, L, B, Q, N, G>,
    inv: &'r Invocation<'r>,
}

impl<C, L, B, Q, N, G> Run<'_, C, L, B, Q, N, G>
where
    C: CodeBuild,
    L: Ledger,
    B: RetryBook,
    Q: DelayQueue,
    N: Notifier,
    G: BuildLogs,
{
    /// Logs and counts a decision, and hands it back.
    fn emit(&self, record: DecisionRecord) -> DecisionRecord {
        record.emit(FUNCTION_NAME, self.inv.now);
        record
    }

    /// What happens to a decided retry before it is made: in dry-run it is only logged; on a
    /// first delivery (`first_event`) with a backoff it goes through the delay queue, and the
    /// delayed delivery acts. Build and batch retries share this step.
    async fn hold_back_retry(
        &self,
        record: DecisionRecord,
        retry: PendingRetry<'_>,
    ) -> Result<Held, AutoRetryError> {
        let reason = retry.reason.as_str();
        if retry.dry_run {
            let mut record = record.decided(Action::DryRun, reason);
            record.would = Some(Action::Retry);
            return Ok(Held::Done(self.emit(record)));
        }
        if let Some(event) = retry.first_event
            && !retry.backoff.is_zero()
        {
            let work = DelayedWork::RetryAfterBackoff {
                event: event.clone(),
                attempt: retry.attempt,
            };
            self.ports.queue.send_later(&work, retry.backoff).await?;
            let mut record = record.decided(Action::Delay, reason);
            record.would = Some(Action::Retry);
            return Ok(Held::Done(self.emit(record)));
        }
        Ok(Held::ActNow(record))
    }

    /// A build state change, as EventBridge delivered it or as the delay queue returned it.
    async fn on_event_input(
        &self,
        raw: &Value,
        delivery: build::Delivery,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let detail_type = raw.get("detail-type").and_then(Value::as_str);
        if detail_type != Some(BUILD_STATE_CHANGE) {
            return Err(AutoRetryError::Rejected {
                message: format!(
                    "expected a {BUILD_STATE_CHANGE:?} event or an SQS batch, got detail-type {detail_type:?}"
                ),
            });
        }
        let event: BuildStateChangeEvent =
            serde_json::from_value(raw.clone()).map_err(|err| AutoRetryError::Rejected {
                message: format!("unreadable build state change: {err}"),
            })?;
        self.on_build_event(&event, raw, delivery).await
    }

    /// The delay queue's batch: each message handled on its own; the ones that failed
    /// retryably are named in `batchItemFailures` and come back; the others are dropped.
    async fn on_queue_batch(&self, input: Value) -> Result<Value, AutoRetryError> {
        let batch: SqsEvent =
            serde_json::from_value(input).map_err(|err| AutoRetryError::Rejected {
                message: format!("unreadable SQS batch: {err}"),
            })?;
        let mut response = SqsBatchResponse::default();
        for message in &batch.records {
            let Err(err) = self.on_queued(message).await else {
                continue;
            };
            log_error(&err);
            match (&message.message_id, err.is_retryable()) {
                (Some(id), true) => response.add_failure(id.clone()),
                // Without an id the message cannot be named, so fail the whole batch: every
                // message comes back, and the ledger makes the repeated ones duplicates.
                (None, true) => return Err(err),
                (_, false) => {}
            }
        }
        to_json(&response)
    }

    async fn on_queued(&self, message: &SqsMessage) -> Result<(), AutoRetryError> {
        let body = message.body.as_deref().unwrap_or_default();
        let work: DelayedWork =
            serde_json::from_str(body).map_err(|err| AutoRetryError::Rejected {
                message: format!("unreadable delayed work: {err}"),
            })?;
        match work {
            DelayedWork::RetryAfterBackoff { event, attempt } => {
                self.on_event_input(&event, build::Delivery::AfterBackoff { attempt })
                    .await?;
            }
            DelayedWork::BatchRecheck {
                batch,
                build,
                observed_attempts,
                rechecks,
            } => {
                self.on_batch_recheck(&batch, &build, observed_attempts, rechecks)
                    .await?;
            }
        }
        Ok(())
    }
}
