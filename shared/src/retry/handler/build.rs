//! The single-build flow: status → configuration → `BatchGetBuilds` → native auto-retry /
//! batch → lineage → classify (+ log tail) → decide → delay, dry-run or act.

use serde_json::Value;

use super::record::{Action, DecisionRecord};
use super::{AutoRetryError, Held, PendingRetry, Run};
use crate::config::ProjectEntry;
use crate::ledger::Ledger;
use crate::model::{BatchId, Build, BuildId, BuildStateChangeEvent, BuildStatus};
use crate::ports::{BuildLogs, CodeBuild, DelayQueue, Notifier, RetryBook};
use crate::retry::decide::{
    RetryContext, RetryDecision, decide_retry, refine_with_log_tail, wants_log_tail,
};
use crate::retry::{Classification, classify};

/// How the event reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// From EventBridge: a retry with a backoff is delayed first.
    Event,
    /// Back from the delay queue after the backoff of retry `attempt`: act now.
    AfterBackoff {
        /// The attempt decided before the delay.
        attempt: u32,
    },
}

/// The statuses auto-retry acts on; `STOPPED` never (a person or our own stopper did it).
pub fn is_retry_candidate(status: &BuildStatus) -> bool {
    matches!(
        status,
        BuildStatus::Failed | BuildStatus::Fault | BuildStatus::TimedOut
    )
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
    pub(super) async fn on_build_event(
        &self,
        event: &BuildStateChangeEvent,
        raw: &Value,
        delivery: Delivery,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let project = event.detail.project_name.as_str();
        let build_id = event.build_id();
        let settings = self.inv.settings;
        let entry = self.inv.config.entry_for(project);
        let dry_run = settings.dry_run || entry.is_some_and(|e| e.dry_run);
        let record = DecisionRecord::for_build(project, build_id, dry_run);

        // 1. Only failures, only configured projects.
        if !is_retry_candidate(event.status()) {
            let found = classify(event);
            return Ok(self.emit(
                record
                    .decided(Action::Skip, found.reason.as_str())
                    .class(found.class),
            ));
        }
        let Some(entry) = entry else {
            return Ok(self.emit(record.decided(Action::Skip, "project_not_configured")));
        };

        // 2. What CodeBuild knows that the event does not say (batch, native retry, logs).
        let lookup = self
            .ports
            .codebuild
            .batch_get_builds(std::slice::from_ref(build_id))
            .await?;
        let Some(build) = lookup
            .builds
            .into_iter()
            .find(|b| b.id.id() == build_id.id())
        else {
            return Ok(self.emit(record.decided(Action::Skip, "build_not_found")));
        };

        // 3. CodeBuild's own retries, then batches.
        if build
            .native_auto_retry
            .as_ref()
            .is_some_and(crate::model::NativeAutoRetry::owns_retries)
        {
            return Ok(self.emit(record.decided(Action::Skip, "native_auto_retry")));
        }
        if let Some(arn) = build.batch_arn.as_deref() {
            let batch = BatchId::parse(arn).map_err(|err| AutoRetryError::Rejected {
                message: format!(
                    "build {} names an unreadable batch {arn:?}: {err}",
                    build.id
                ),
            })?;
            let trigger = match delivery {
                Delivery::Event => super::batch::BatchTrigger::Event { raw },
                Delivery::AfterBackoff { .. } => super::batch::BatchTrigger::AfterBackoff,
            };
            return self
                .on_batch(entry, dry_run, &build.id, &batch, trigger)
                .await;
        }

        // 4. Where the build stands in its chain.
        let (root, prior_attempts) = match self.ports.book.lineage_of(&build.id).await? {
            Some(lineage) => (lineage.root, lineage.attempt),
            None if self.is_own_retry(&build) => {
                return Err(AutoRetryError::LineagePending {
                    build: build.id.id(),
                });
            }
            None => (build.id.clone(), 0),
        };
        let (classification, class_source) = self.classify_with_tail(event, &build, entry).await;
        let decision = decide_retry(&RetryContext {
            classification,
            policy: &entry.retry,
            native_auto_retry: build.native_auto_retry.as_ref(),
            prior_attempts,
        });
        let mut record = record.class(classification.class);
        record.class_source = class_source;

        match decision {
            RetryDecision::Skip(reason) => {
                Ok(self.emit(record.decided(Action::Skip, reason.as_str())))
            }
            RetryDecision::GiveUp { because, attempts } => {
                let chain = super::act::Chain::Build {
                    project,
                    root: &root,
                    last: &build.id,
                };
                self.give_up(
                    record,
                    chain,
                    because,
                    attempts,
                    vec![classification.reason.as_str().to_owned()],
                )
                .await
            }
            RetryDecision::Retry {
                attempt,
                backoff,
                reason,
            } => {
                // 5. Dry-run only logs; the backoff goes through the delay queue.
                let pending = PendingRetry {
                    attempt,
                    backoff,
                    reason,
                    dry_run,
                    first_event: (delivery == Delivery::Event).then_some(raw),
                };
                match self
                    .hold_back_retry(record.attempt(attempt), pending)
                    .await?
                {
                    Held::Done(record) => Ok(record),
                    Held::ActNow(record) => {
                        self.retry_build(record, entry, &build.id, &root, attempt, reason)
                            .await
                    }
                }
            }
        }
    }

    /// True when our own role started `build` (a retry we made).
    fn is_own_retry(&self, build: &Build) -> bool {
        match (&self.inv.settings.own_initiator, build.initiator.as_deref()) {
            (Some(own), Some(initiator)) => own.matches(initiator),
            _ => false,
        }
    }

    /// The event's classification, refined by the log tail when the project asks for it. A
    /// tail that cannot be read leaves the event's answer (the tail only ever adds retries).
    async fn classify_with_tail(
        &self,
        event: &BuildStateChangeEvent,
        build: &Build,
        entry: &ProjectEntry,
    ) -> (Classification, Option<&'static str>) {
        let found = classify(event);
        if !wants_log_tail(found, &entry.retry) {
            return (found, None);
        }
        let Some(location) = build.log_location.as_ref() else {
            return (found, None);
        };
        match self
            .ports
            .logs
            .tail(location, entry.retry.log_tail_lines)
            .await
        {
            Ok(lines) => {
                let refined = refine_with_log_tail(found, &lines);
                let source = (refined != found).then_some("log_tail");
                (refined, source)
            }
            Err(err) => {
                tracing::warn!(
                    build_id = %build.id,
                    reason = "log_tail_unavailable",
                    error = %err,
                    "deciding without the log tail"
                );
                (found, None)
            }
        }
    }
}

/// The canonical parameters of a `RetryBuild`, hashed into the claim.
pub(super) fn retry_build_payload(failed: &BuildId) -> Value {
    serde_json::json!({"operation": "RetryBuild", "build": failed.id()})
}
