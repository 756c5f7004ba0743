//! The batch flow. A member's failure says nothing yet: CodeBuild emits no batch-level event,
//! so the batch's end is noticed through re-checks on the delay queue. A finished, failed batch
//! is retried in place (`RetryBuildBatch`, failed builds only) when every failed member is
//! retryable, with the strictest member's class and the batch's own attempt count.

use serde_json::{Value, json};

use super::act::{AFTER_RETRY_BUILD, Chain, Claimed};
use super::build::is_retry_candidate;
use super::record::{Action, DecisionRecord};
use super::{AutoRetryError, Held, PendingRetry, Run};
use crate::config::ProjectEntry;
use crate::failpoint::failpoint;
use crate::idempotency::IdempotencyKey;
use crate::ledger::Ledger;
use crate::model::{BatchId, Build, BuildBatch, BuildId, BuildStatus};
use crate::ports::{
    BATCH_GET_LIMIT, BatchRetryType, BuildLogs, CodeBuild, DelayQueue, ListBuildBatchesRequest,
    Notifier, RetryBook, RetryBuildBatchRequest,
};
use crate::reaper::{branch_of, superseded_by};
use crate::retry::decide::{RetryContext, RetryDecision, decide_retry};
use crate::retry::work::{DelayedWork, GaveUpBecause};
use crate::retry::{Classification, FailureClass, Reason, classify_build};

/// What brought the handler to a batch.
#[derive(Debug, Clone, Copy)]
pub(super) enum BatchTrigger<'e> {
    /// A member's failure event, first delivery: a retry with a backoff is delayed first.
    Event {
        /// The event as delivered (carried through the delay queue).
        raw: &'e Value,
    },
    /// The member's event back from the delay queue after its backoff: act now.
    AfterBackoff,
    /// A re-check of a batch that was still running: act now when it has finished.
    Recheck {
        /// The batch's retry count when the re-check was scheduled.
        observed_attempts: u32,
        /// Re-checks that came before this one.
        rechecks: u32,
    },
}

/// One failed member and what the policy says about it.
struct MemberDecision {
    build: BuildId,
    classification: Classification,
    decision: RetryDecision,
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
    /// A `BatchRecheck` from the delay queue.
    pub(super) async fn on_batch_recheck(
        &self,
        batch: &BatchId,
        member: &BuildId,
        observed_attempts: u32,
        rechecks: u32,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let entry = self.inv.config.entry_for(batch.project());
        let dry_run = self.inv.settings.dry_run || entry.is_some_and(|e| e.dry_run);
        let Some(entry) = entry else {
            let record = DecisionRecord::for_build(batch.project(), member, dry_run).batch(batch);
            return Ok(self.emit(record.decided(Action::Skip, "project_not_configured")));
        };
        let trigger = BatchTrigger::Recheck {
            observed_attempts,
            rechecks,
        };
        self.on_batch(entry, dry_run, member, batch, trigger).await
    }

    pub(super) async fn on_batch(
        &self,
        entry: &ProjectEntry,
        dry_run: bool,
        member: &BuildId,
        batch: &BatchId,
        trigger: BatchTrigger<'_>,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let record = DecisionRecord::for_build(batch.project(), member, dry_run).batch(batch);
        let lookup = self
            .ports
            .codebuild
            .batch_get_build_batches(std::slice::from_ref(batch))
            .await?;
        let Some(found) = lookup.batches.into_iter().find(|b| b.id.id() == batch.id()) else {
            return Ok(self.emit(record.decided(Action::Skip, "batch_not_found")));
        };
        let attempts = self.ports.book.batch_attempts(batch).await?.attempts;
        if let BatchTrigger::Recheck {
            observed_attempts, ..
        } = trigger
            && observed_attempts != attempts
        {
            return Ok(self.emit(record.decided(Action::Skip, "batch_already_retried")));
        }

        if !found.complete || found.status == BuildStatus::InProgress {
            return self
                .recheck_later(record, member, batch, attempts, trigger)
                .await;
        }
        if !is_retry_candidate(&found.status) {
            return Ok(self.emit(record.decided(Action::Skip, status_reason(&found.status))));
        }
        // A newer batch of the same branch / PR makes the retry pointless: the reaper would stop
        // this batch as superseded.
        if let Some(newer) = self.superseding_batch(&found, entry).await? {
            tracing::info!(superseded_by = %newer, "a newer batch builds the same branch");
            return Ok(self.emit(record.decided(Action::Skip, "superseded")));
        }

        let members = self.failed_members(&found.build_ids).await?;
        let decisions: Vec<MemberDecision> = members
            .iter()
            .map(|build| {
                let classification = classify_build(build);
                MemberDecision {
                    build: build.id.clone(),
                    classification,
                    decision: decide_retry(&RetryContext {
                        classification,
                        policy: &entry.retry,
                        native_auto_retry: build.native_auto_retry.as_ref(),
                        prior_attempts: attempts,
                    }),
                }
            })
            .collect();
        let mut reasons: Vec<String> = decisions
            .iter()
            .map(|d| d.classification.reason.as_str().to_owned())
            .collect();
        reasons.dedup();

        // Any member not retryable leaves the whole batch alone (a retry would rerun it too).
        if let Some(skipped) = decisions
            .iter()
            .find(|d| matches!(d.decision, RetryDecision::Skip(_)))
        {
            tracing::info!(member = %skipped.build, "a failed member is not retryable");
            let record = record
                .decided(Action::Skip, skipped.decision.reason())
                .class(skipped.classification.class);
            return Ok(self.emit(record));
        }
        // The strictest class decides: a retry-once member caps the batch at one retry.
        let Some(strictest) = decisions
            .iter()
            .find(|d| matches!(d.decision, RetryDecision::GiveUp { .. }))
            .or_else(|| {
                decisions
                    .iter()
                    .find(|d| d.classification.class != FailureClass::Transient)
            })
            .or_else(|| decisions.first())
        else {
            return Ok(self.emit(record.decided(Action::Skip, "no_failed_builds")));
        };
        let record = record.class(strictest.classification.class);
        match strictest.decision {
            RetryDecision::Skip(reason) => {
                Ok(self.emit(record.decided(Action::Skip, reason.as_str())))
            }
            RetryDecision::GiveUp { because, attempts } => {
                let chain = Chain::Batch { batch, member };
                self.give_up(record, chain, because, attempts, reasons)
                    .await
            }
            RetryDecision::Retry {
                attempt,
                backoff,
                reason,
            } => {
                let pending = PendingRetry {
                    attempt,
                    backoff,
                    reason,
                    dry_run,
                    first_event: match trigger {
                        BatchTrigger::Event { raw } => Some(raw),
                        BatchTrigger::Recheck { .. } | BatchTrigger::AfterBackoff => None,
                    },
                };
                match self
                    .hold_back_retry(record.attempt(attempt), pending)
                    .await?
                {
                    Held::Done(record) => Ok(record),
                    Held::ActNow(record) => {
                        self.retry_batch(record, entry, batch, member, attempt, reason, reasons)
                            .await
                    }
                }
            }
        }
    }

    /// The newer batch that supersedes `failed`, if any. Two calls, and only when superseding
    /// can apply (on for the project and the branch known): the project's newest batches (one
    /// page) and their details; the reaper's rule decides.
    async fn superseding_batch(
        &self,
        failed: &BuildBatch,
        entry: &ProjectEntry,
    ) -> Result<Option<BatchId>, AutoRetryError> {
        if !entry.reaper.supersede || branch_of(failed).is_none() {
            return Ok(None);
        }
        let page = self
            .ports
            .codebuild
            .list_build_batches_for_project(&ListBuildBatchesRequest {
                project: failed.id.project().to_owned(),
                status: None,
                next_token: None,
            })
            .await?;
        let others: Vec<BatchId> = page
            .items
            .into_iter()
            .filter(|id| id.id() != failed.id.id())
            .take(BATCH_GET_LIMIT)
            .collect();
        if others.is_empty() {
            return Ok(None);
        }
        let lookup = self
            .ports
            .codebuild
            .batch_get_build_batches(&others)
            .await?;
        Ok(superseded_by(failed, &lookup.batches, &entry.reaper))
    }

    /// The batch is still running: look again later, or give up after the longest wait.
    async fn recheck_later(
        &self,
        record: DecisionRecord,
        member: &BuildId,
        batch: &BatchId,
        attempts: u32,
        trigger: BatchTrigger<'_>,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let settings = self.inv.settings;
        let done = match trigger {
            BatchTrigger::Recheck { rechecks, .. } => rechecks.saturating_add(1),
            BatchTrigger::Event { .. } | BatchTrigger::AfterBackoff => 0,
        };
        if done >= settings.batch_max_rechecks {
            let chain = Chain::Batch { batch, member };
            let reasons = vec!["batch_in_progress".to_owned()];
            return self
                .give_up(
                    record,
                    chain,
                    GaveUpBecause::BatchNeverFinished,
                    attempts,
                    reasons,
                )
                .await;
        }
        if record.dry_run {
            let mut record = record.decided(Action::DryRun, "batch_in_progress");
            record.would = Some(Action::Delay);
            return Ok(self.emit(record));
        }
        let work = DelayedWork::BatchRecheck {
            batch: batch.clone(),
            build: member.clone(),
            observed_attempts: attempts,
            rechecks: done,
        };
        self.ports
            .queue
            .send_later(&work, settings.batch_recheck_delay)
            .await?;
        Ok(self.emit(record.decided(Action::Delay, "batch_in_progress")))
    }

    /// The batch's members that failed, read in chunks of [`BATCH_GET_LIMIT`].
    async fn failed_members(&self, ids: &[BuildId]) -> Result<Vec<Build>, AutoRetryError> {
        let mut failed = Vec::new();
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            let lookup = self.ports.codebuild.batch_get_builds(chunk).await?;
            failed.extend(
                lookup
                    .builds
                    .into_iter()
                    .filter(|b| is_retry_candidate(&b.status)),
            );
        }
        Ok(failed)
    }

    /// `RetryBuildBatch` (failed builds only) under a claim, then the batch's attempt count.
    #[allow(clippy::too_many_arguments)]
    async fn retry_batch(
        &self,
        record: DecisionRecord,
        entry: &ProjectEntry,
        batch: &BatchId,
        member: &BuildId,
        attempt: u32,
        reason: Reason,
        reasons: Vec<String>,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let key = IdempotencyKey::for_batch_retry(batch, attempt);
        let payload = json!({
            "operation": "RetryBuildBatch",
            "batch": batch.id(),
            "retryType": "RETRY_FAILED_BUILDS",
        });
        let chain = Chain::Batch { batch, member };
        let claim = match self
            .claim_retry(record.clone(), entry, &key, &payload, chain, reasons)
            .await?
        {
            Claimed::Go(claim) => claim,
            Claimed::Done(done) => return Ok(done),
        };
        let request = RetryBuildBatchRequest {
            batch: batch.clone(),
            retry_type: BatchRetryType::FailedBuilds,
            token: key.token(),
        };
        let made = match self.ports.codebuild.retry_build_batch(&request).await {
            Ok(made) => made,
            Err(err) => return self.call_failed(record, &claim, err).await,
        };
        failpoint(AFTER_RETRY_BUILD);
        self.ports.book.record_batch_attempt(batch, attempt).await?;
        self.complete(&claim, &json!({"batch": made.id.id()}))
            .await?;
        let mut record = record.decided(Action::Retry, reason.as_str());
        record.retry_id = Some(made.id.id());
        Ok(self.emit(record))
    }
}

/// The reason a finished batch that did not fail is left alone.
fn status_reason(status: &BuildStatus) -> &'static str {
    match status {
        BuildStatus::Succeeded => Reason::Succeeded.as_str(),
        BuildStatus::Stopped => Reason::Stopped.as_str(),
        BuildStatus::InProgress => Reason::InProgress.as_str(),
        _ => Reason::UnknownStatus.as_str(),
    }
}
