//! Acting on a retry decision: claim → (crash point) → budget → the CodeBuild call → (crash
//! point) → record → complete; and giving up with at most one notice per chain.
//!
//! Fail closed: every CodeBuild mutation happens only under a won claim, and every ledger
//! failure before the call ends the invocation with a retryable error.

use serde_json::{Value, json};

use super::record::{Action, DecisionRecord};
use super::{AutoRetryError, Run};
use crate::config::ProjectEntry;
use crate::failpoint::failpoint;
use crate::idempotency::IdempotencyKey;
use crate::ledger::{Claim, ClaimOutcome, ClaimRequest, Ledger, LedgerKey, PayloadHash};
use crate::model::{BatchId, BuildId};
use crate::ports::{
    BudgetOutcome, BudgetRequest, BuildLogs, CodeBuild, CodeBuildError, DelayQueue, Lineage,
    Notifier, RetryBook, RetryBuildRequest,
};
use crate::retry::Reason;
use crate::retry::decide::gave_up_reason;
use crate::retry::work::{GaveUpBecause, GaveUpNotice};

/// The crash point between a won claim and the budget / CodeBuild call.
pub const AFTER_CLAIM: &str = "auto-retry:after-claim";
/// The crash point between `RetryBuild` / `RetryBuildBatch` and recording its result.
pub const AFTER_RETRY_BUILD: &str = "auto-retry:after-retry-build";

/// The ledger operation of "gave up" notices (one per chain and attempt count).
const GAVE_UP_OPERATION: &str = "gave-up";

/// The chain a decision is about: a build's retry chain, or a batch retried in place.
#[derive(Debug, Clone, Copy)]
pub(super) enum Chain<'a> {
    /// A standalone build.
    Build {
        /// The project.
        project: &'a str,
        /// The first build of the chain.
        root: &'a BuildId,
        /// The build that failed now.
        last: &'a BuildId,
    },
    /// A batch.
    Batch {
        /// The batch.
        batch: &'a BatchId,
        /// The failed member that brought us here.
        member: &'a BuildId,
    },
}

impl Chain<'_> {
    fn identity(&self) -> String {
        match self {
            Self::Build { root, .. } => root.id(),
            Self::Batch { batch, .. } => batch.id(),
        }
    }

    fn notice(&self, because: GaveUpBecause, attempts: u32, reasons: Vec<String>) -> GaveUpNotice {
        let (project, root_build, last_build, batch) = match *self {
            Self::Build {
                project,
                root,
                last,
            } => (project, root.clone(), last.clone(), None),
            Self::Batch { batch, member } => (
                batch.project(),
                member.clone(),
                member.clone(),
                Some(batch.clone()),
            ),
        };
        GaveUpNotice {
            project: project.to_owned(),
            root_build,
            last_build,
            batch,
            attempts,
            because,
            reasons,
        }
    }
}

/// What claiming a retry came to.
pub(super) enum Claimed {
    /// Ours, budget taken: make the call.
    Go(Claim),
    /// Nothing (more) to do; the decision is logged.
    Done(DecisionRecord),
}

/// The budget reason stored in a failed claim, read back as the give-up cause.
fn budget_cause(stored: &str) -> Option<GaveUpBecause> {
    [
        GaveUpBecause::ProjectBudgetSpent,
        GaveUpBecause::BreakerOpen,
    ]
    .into_iter()
    .find(|because| gave_up_reason(*because) == stored)
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
    async fn claim(&self, key: LedgerKey, payload: &Value) -> Result<ClaimOutcome, AutoRetryError> {
        let request = ClaimRequest::new(
            key,
            PayloadHash::of_json(payload),
            self.inv.now,
            self.inv.lease(),
        );
        Ok(self.ports.ledger.claim(&request).await?)
    }

    /// Claims retry number `attempt` of `chain` and takes it from the budgets. A spent budget
    /// fails the claim (so a redelivery does not try again) and gives up.
    pub(super) async fn claim_retry(
        &self,
        record: DecisionRecord,
        entry: &ProjectEntry,
        key: &IdempotencyKey,
        payload: &Value,
        chain: Chain<'_>,
        reasons: Vec<String>,
    ) -> Result<Claimed, AutoRetryError> {
        let attempt = record.attempt.unwrap_or(1);
        let ledger_key = LedgerKey::for_mutation(key);
        let claim = match self.claim(ledger_key.clone(), payload).await? {
            ClaimOutcome::Won(claim) => claim,
            ClaimOutcome::Completed(result) => {
                let mut record = record.decided(Action::Duplicate, "already_retried");
                record.retry_id = ["build", "batch"]
                    .iter()
                    .find_map(|k| result.get(*k).and_then(Value::as_str))
                    .map(str::to_owned);
                return Ok(Claimed::Done(self.emit(record)));
            }
            ClaimOutcome::InProgress { .. } => {
                return Err(AutoRetryError::ClaimInProgress {
                    key: ledger_key.to_string(),
                });
            }
            ClaimOutcome::PayloadMismatch => {
                let record = record.decided(Action::Drop, "ledger_payload_mismatch");
                return Ok(Claimed::Done(self.emit(record)));
            }
            ClaimOutcome::Failed { reason } => {
                // A budget give-up whose notice may not have gone out: giving up again is safe,
                // the notice has its own once-only claim.
                if let Some(because) = budget_cause(&reason) {
                    let done = self
                        .give_up(record, chain, because, attempt.saturating_sub(1), reasons)
                        .await?;
                    return Ok(Claimed::Done(done));
                }
                let record = record.decided(Action::Drop, "previously_failed");
                return Ok(Claimed::Done(self.emit(record)));
            }
        };
        failpoint(AFTER_CLAIM);

        let budget = BudgetRequest {
            project: record.project.clone(),
            at: self.inv.now,
            project_limit: entry.retry.hourly_budget,
            account_limit: self.inv.config.account.hourly_retry_limit,
        };
        let outcome = match self.ports.book.take_budget(&budget).await {
            Ok(outcome) => outcome,
            Err(err) => {
                self.release(&claim).await;
                return Err(err.into());
            }
        };
        let because = match outcome {
            BudgetOutcome::Granted => return Ok(Claimed::Go(claim)),
            BudgetOutcome::ProjectExhausted { .. } => GaveUpBecause::ProjectBudgetSpent,
            BudgetOutcome::BreakerOpen { .. } => GaveUpBecause::BreakerOpen,
        };
        if let Err(err) = self
            .ports
            .ledger
            .fail(&claim, gave_up_reason(because))
            .await
        {
            tracing::warn!(key = %claim.key, error = %err, "could not record the spent budget");
        }
        let done = self
            .give_up(record, chain, because, attempt.saturating_sub(1), reasons)
            .await?;
        Ok(Claimed::Done(done))
    }

    /// Gives the claim back after a failure that retrying can fix. Best effort: a claim that
    /// cannot be released runs out with its lease.
    pub(super) async fn release(&self, claim: &Claim) {
        if let Err(err) = self.ports.ledger.release(claim).await {
            tracing::warn!(key = %claim.key, error = %err, "could not release the claim");
        }
    }

    /// Records the result under the claim. A claim that is no longer ours (its lease ran out
    /// and someone completed it) is logged: the retry exists either way.
    pub(super) async fn complete(
        &self,
        claim: &Claim,
        result: &Value,
    ) -> Result<(), AutoRetryError> {
        match self.ports.ledger.complete(claim, result).await {
            Ok(()) => Ok(()),
            Err(err) if err.is_retryable() => Err(err.into()),
            Err(err) => {
                tracing::warn!(key = %claim.key, error = %err, "could not complete the claim");
                Ok(())
            }
        }
    }

    /// A CodeBuild mutation failed under `claim`: released and retried later when that can
    /// help, else failed in the ledger (no redelivery hammers CodeBuild) and dropped.
    pub(super) async fn call_failed(
        &self,
        record: DecisionRecord,
        claim: &Claim,
        err: CodeBuildError,
    ) -> Result<DecisionRecord, AutoRetryError> {
        if err.is_retryable() {
            self.release(claim).await;
            return Err(err.into());
        }
        if let Err(ledger_err) = self.ports.ledger.fail(claim, &err.to_string()).await {
            tracing::warn!(key = %claim.key, error = %ledger_err, "could not record the failure");
        }
        tracing::warn!(error = %err, "CodeBuild refused the retry");
        Ok(self.emit(record.decided(Action::Drop, "codebuild_rejected")))
    }

    /// Step 7 for a standalone build: `RetryBuild` with the chain's token, lineage, complete.
    pub(super) async fn retry_build(
        &self,
        record: DecisionRecord,
        entry: &ProjectEntry,
        failed: &BuildId,
        root: &BuildId,
        attempt: u32,
        reason: Reason,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let key = IdempotencyKey::for_retry(root, attempt);
        let payload = super::build::retry_build_payload(failed);
        let chain = Chain::Build {
            project: &record.project,
            root,
            last: failed,
        };
        let reasons = vec![reason.as_str().to_owned()];
        let claim = match self
            .claim_retry(record.clone(), entry, &key, &payload, chain, reasons)
            .await?
        {
            Claimed::Go(claim) => claim,
            Claimed::Done(done) => return Ok(done),
        };
        let request = RetryBuildRequest {
            build: failed.clone(),
            token: key.token(),
        };
        let made = match self.ports.codebuild.retry_build(&request).await {
            Ok(made) => made,
            Err(err) => return self.call_failed(record, &claim, err).await,
        };
        failpoint(AFTER_RETRY_BUILD);
        // On a failure from here on the claim is kept: it runs out with its lease, and the
        // redelivery's `RetryBuild` with the same token returns this same build.
        let lineage = Lineage {
            build: made.id.clone(),
            parent: failed.clone(),
            root: root.clone(),
            attempt,
            created_at: self.inv.now,
        };
        self.ports.book.record_lineage(&lineage).await?;
        self.complete(&claim, &json!({"build": made.id.id()}))
            .await?;
        let mut record = record.decided(Action::Retry, reason.as_str());
        record.retry_id = Some(made.id.id());
        Ok(self.emit(record))
    }

    /// Step 8: no retry; one "gave up" notice per chain and attempt count, when there is a
    /// topic and the configuration wants notices.
    pub(super) async fn give_up(
        &self,
        record: DecisionRecord,
        chain: Chain<'_>,
        because: GaveUpBecause,
        attempts: u32,
        reasons: Vec<String>,
    ) -> Result<DecisionRecord, AutoRetryError> {
        let record = record
            .decided(Action::GiveUp, gave_up_reason(because))
            .attempt(attempts);
        if record.dry_run {
            let mut record = record.decided(Action::DryRun, gave_up_reason(because));
            record.would = Some(Action::GiveUp);
            return Ok(self.emit(record));
        }
        let wants_notice =
            self.inv.settings.gave_up_topic_arn.is_some() && self.inv.config.account.notify_gave_up;
        if wants_notice {
            self.notify_once(chain, because, attempts, reasons).await?;
        }
        Ok(self.emit(record))
    }

    async fn notify_once(
        &self,
        chain: Chain<'_>,
        because: GaveUpBecause,
        attempts: u32,
        reasons: Vec<String>,
    ) -> Result<(), AutoRetryError> {
        let identity = chain.identity();
        let key = LedgerKey::new(GAVE_UP_OPERATION, &format!("{identity}#{attempts}"))?;
        // Only the chain and count: a redelivery that names other reasons is the same notice.
        let payload = json!({"operation": "GaveUp", "chain": identity, "attempts": attempts});
        let claim = match self.claim(key.clone(), &payload).await? {
            ClaimOutcome::Won(claim) => claim,
            ClaimOutcome::Completed(_) => return Ok(()),
            ClaimOutcome::InProgress { .. } => {
                return Err(AutoRetryError::ClaimInProgress {
                    key: key.to_string(),
                });
            }
            ClaimOutcome::PayloadMismatch | ClaimOutcome::Failed { .. } => {
                tracing::warn!(key = %key, "a gave-up notice under this key was refused before");
                return Ok(());
            }
        };
        let notice = chain.notice(because, attempts, reasons);
        match self.ports.notifier.gave_up(&notice).await {
            Ok(()) => self.complete(&claim, &json!({"notified": true})).await,
            Err(err) if err.is_retryable() => {
                self.release(&claim).await;
                Err(err.into())
            }
            Err(err) => {
                if let Err(ledger_err) = self.ports.ledger.fail(&claim, &err.to_string()).await {
                    tracing::warn!(key = %claim.key, error = %ledger_err, "could not record the failure");
                }
                tracing::warn!(error = %err, "the gave-up notice was refused");
                Ok(())
            }
        }
    }
}
