//! The one start mechanism: `StartBuildBatch` at most once per input, however often the input
//! arrives (see `design/idempotency.md`).
//!
//! claim (the ledger) → `StartBuildBatch` with the identity's token → complete with the batch;
//! a lost claim is answered from the record that beat it. Fail closed: no call without a won
//! claim. The webhook batch starter, the EventBridge trigger function and the ops API all start
//! through [`start_batch`] (or [`start_and_supersede`], which then stops the older batches of
//! the same branch / pull request).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{BatchStart, StartIdentity, SupersedeScope};
use crate::config::ProjectEntry;
use crate::idempotency::IdempotencyKey;
use crate::ledger::{
    Claim, ClaimOutcome, ClaimRequest, Ledger, LedgerError, LedgerKey, PayloadHash,
};
use crate::model::{BatchId, BuildBatch};
use crate::ports::{CodeBuild, CodeBuildError, StartBuildBatchRequest};
use crate::reaper::{BranchKey, ReapSummary, supersede_older};

/// Kept between a claim's lease and the invocation's deadline, so the claim has run out by the
/// time a redelivery after a timeout could claim again.
const LEASE_SAFETY_MARGIN: Duration = Duration::from_secs(2);
/// The shortest lease, when the deadline is (nearly) past.
const MIN_LEASE: Duration = Duration::from_secs(1);
/// The longest lease: well inside CodeBuild's five-minute token window, so a redelivery after a
/// crash between the call and completing reuses the token while CodeBuild still remembers it.
const MAX_LEASE: Duration = Duration::from_secs(4 * 60);

/// When and how one start runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRun {
    /// The current time.
    pub now: DateTime<Utc>,
    /// How long the ledger claim holds if never completed.
    pub lease: Duration,
    /// Report only: no claim, no call.
    pub dry_run: bool,
}

impl StartRun {
    /// A run at `now` inside an invocation that ends at `deadline`: the lease is the time left
    /// less a safety margin, between one second and four minutes.
    pub fn until(now: DateTime<Utc>, deadline: DateTime<Utc>, dry_run: bool) -> Self {
        let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
        let lease = left
            .saturating_sub(LEASE_SAFETY_MARGIN)
            .clamp(MIN_LEASE, MAX_LEASE);
        Self {
            now,
            lease,
            dry_run,
        }
    }
}

/// What a start came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// This call started the batch.
    Started {
        /// The new batch.
        batch: BatchId,
        /// Its `buildBatchNumber`, when CodeBuild gave one.
        number: Option<i64>,
    },
    /// The same input started it before: the stored result, nothing called.
    AlreadyStarted {
        /// The batch started then.
        batch: BatchId,
        /// Its `buildBatchNumber`, when it was recorded.
        number: Option<i64>,
    },
    /// Dry run: nothing claimed, nothing started.
    DryRun,
}

impl StartOutcome {
    /// The batch started (now or before); `None` for a dry run.
    pub fn batch(&self) -> Option<&BatchId> {
        match self {
            Self::Started { batch, .. } | Self::AlreadyStarted { batch, .. } => Some(batch),
            Self::DryRun => None,
        }
    }

    /// The decision log's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::AlreadyStarted { .. } => "already_started",
            Self::DryRun => "dry_run",
        }
    }
}

/// Why a start did not happen, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The same identity was used for another request (another project, source version,
    /// environment, buildspec, timeout or status reporting). The ops API answers 422.
    #[error("start {key} was asked before with other parameters")]
    Conflict {
        /// The ledger key (no token value or header in it beyond the digest).
        key: String,
    },
    /// Another invocation holds the claim and may be starting the batch right now. The ops API
    /// answers 409; an event comes back later.
    #[error("start {key} is in flight elsewhere")]
    InFlight {
        /// The ledger key.
        key: String,
    },
    /// The same start failed before in a way retrying cannot fix; CodeBuild is not asked again.
    #[error("start failed before: {reason}")]
    FailedBefore {
        /// The stored reason.
        reason: String,
    },
    /// The ledger could not be read or written before the call: nothing was started.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// CodeBuild refused or did not answer the start.
    #[error("CodeBuild: {0}")]
    CodeBuild(#[from] CodeBuildError),
    /// The batch was started but its result could not be recorded. The claim runs out with its
    /// lease; the redelivery reuses the token and CodeBuild hands back this same batch.
    #[error("batch {batch} started but not recorded: {source}")]
    NotRecorded {
        /// The batch started.
        batch: String,
        /// Why recording failed.
        source: LedgerError,
    },
}

impl StartError {
    /// True when the same start may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InFlight { .. } => true,
            Self::Conflict { .. } | Self::FailedBefore { .. } => false,
            Self::Ledger(err) => err.is_retryable(),
            Self::CodeBuild(err) => err.is_retryable(),
            Self::NotRecorded { source, .. } => source.is_retryable(),
        }
    }

    /// The decision log's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::InFlight { .. } => "in_flight",
            Self::FailedBefore { .. } => "failed_before",
            Self::Ledger(_) | Self::CodeBuild(_) | Self::NotRecorded { .. } => "error",
        }
    }

    /// The stable `reason` the functions that start batches log for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::InFlight { .. } => "in_flight",
            Self::FailedBefore { .. } => "failed_before",
            Self::Ledger(e) if e.is_retryable() => "ledger_unavailable",
            Self::Ledger(_) => "ledger_error",
            Self::CodeBuild(e) if e.is_retryable() => "codebuild_unavailable",
            Self::CodeBuild(_) => "codebuild_refused",
            Self::NotRecorded { .. } => "not_recorded",
        }
    }
}

/// A start followed by the supersede it asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedAndSuperseded {
    /// What the start came to.
    pub outcome: StartOutcome,
    /// What superseding the older batches did; `None` when the start asked for none or started
    /// no batch (dry run).
    pub supersede: Option<ReapSummary>,
}

/// The canonical CodeBuild parameters of a start: what the ledger's payload hash covers. The
/// reason and the supersede scope are not sent to CodeBuild, so they are not in it: a
/// redelivery that words the reason differently is the same start.
pub fn start_payload(start: &BatchStart) -> Value {
    json!({
        "operation": "StartBuildBatch",
        "project": start.project,
        "source_version": start.source_version,
        "environment": start.environment,
        "report_status": start.report_status,
        "buildspec": start.buildspec_override,
        "timeout_minutes": start.timeout_minutes,
    })
}

/// Starts `start`'s batch at most once per identity: claim → `StartBuildBatch` with the
/// identity's token → complete with `{batch_id, batch_arn, batch_number}`. A duplicate is
/// answered from the ledger without calling CodeBuild. With `run.dry_run` nothing is claimed or
/// called.
///
/// Errors: [`StartError::Conflict`] (same identity, other parameters), [`StartError::InFlight`]
/// (retryable), [`StartError::FailedBefore`], a ledger failure before the call (fail closed: no
/// call), or CodeBuild's refusal — released for a retryable one, recorded as failed otherwise.
/// One decision line is logged either way.
pub async fn start_batch<C: CodeBuild, L: Ledger>(
    codebuild: &C,
    ledger: &L,
    start: &BatchStart,
    run: StartRun,
) -> Result<StartOutcome, StartError> {
    let result = start_once(codebuild, ledger, start, run).await;
    log_decision(start, run.dry_run, &result);
    result
}

/// [`start_batch`], then, when the start names a [`SupersedeScope`] and a batch exists (started
/// now or before), stops the older in-progress batches of that branch / pull request in the
/// project ([`supersede_older`]). Starting again after a crash supersedes again, which is
/// harmless and catches up what the crash left.
///
/// The project's `dry_run` makes the start a dry run as well. A failed supersede does not fail
/// the start: its errors are in the summary (and logged), and the next sweep catches up.
pub async fn start_and_supersede<C: CodeBuild, L: Ledger>(
    codebuild: &C,
    ledger: &L,
    entry: &ProjectEntry,
    start: &BatchStart,
    run: StartRun,
) -> Result<StartedAndSuperseded, StartError> {
    let run = StartRun {
        dry_run: run.dry_run || entry.dry_run,
        ..run
    };
    let outcome = start_batch(codebuild, ledger, start, run).await?;
    let supersede = match (&start.supersede, outcome.batch()) {
        (Some(scope), Some(newer)) => {
            let branch = branch_key(scope);
            let summary = supersede_older(
                codebuild,
                entry,
                &start.project,
                &branch,
                newer,
                run.dry_run,
                run.now,
            )
            .await;
            if !summary.errors.is_empty() {
                tracing::warn!(
                    action = "supersede_incomplete",
                    project = start.project.as_str(),
                    batch_id = newer.id().as_str(),
                    errors = summary.errors.len(),
                    "some older batches could not be superseded; the next sweep catches up"
                );
            }
            Some(summary)
        }
        _ => None,
    };
    Ok(StartedAndSuperseded { outcome, supersede })
}

/// The reaper's key of a supersede scope.
pub fn branch_key(scope: &SupersedeScope) -> BranchKey {
    match scope {
        SupersedeScope::Branch(name) => BranchKey::Branch(name.clone()),
        SupersedeScope::PullRequest(number) => BranchKey::PullRequest(number.clone()),
    }
}

async fn start_once<C: CodeBuild, L: Ledger>(
    codebuild: &C,
    ledger: &L,
    start: &BatchStart,
    run: StartRun,
) -> Result<StartOutcome, StartError> {
    if run.dry_run {
        return Ok(StartOutcome::DryRun);
    }
    let key = start.identity.key_for(&start.project);
    let ledger_key = LedgerKey::for_mutation(&key);
    let claim_request = ClaimRequest::new(
        ledger_key.clone(),
        PayloadHash::of_json(&start_payload(start)),
        run.now,
        run.lease,
    );
    let claim = match ledger.claim(&claim_request).await? {
        ClaimOutcome::Won(claim) => claim,
        ClaimOutcome::Completed(result) => return already_started(&result),
        ClaimOutcome::InProgress { .. } => {
            return Err(StartError::InFlight {
                key: ledger_key.to_string(),
            });
        }
        ClaimOutcome::PayloadMismatch => {
            return Err(StartError::Conflict {
                key: ledger_key.to_string(),
            });
        }
        ClaimOutcome::Failed { reason } => return Err(StartError::FailedBefore { reason }),
    };
    let request = request_of(start, &key);
    let batch = match codebuild.start_build_batch(&request).await {
        Ok(batch) => batch,
        Err(err) => return Err(call_failed(ledger, &claim, err).await),
    };
    // From here on a failure keeps the claim: it runs out with its lease, and the redelivery's
    // `StartBuildBatch` with the same token returns this same batch.
    complete(ledger, &claim, &batch).await?;
    Ok(StartOutcome::Started {
        batch: batch.id,
        number: batch.batch_number,
    })
}

fn request_of(start: &BatchStart, key: &IdempotencyKey) -> StartBuildBatchRequest {
    StartBuildBatchRequest {
        project: start.project.clone(),
        source_version: start.source_version.clone(),
        environment_variables: start.environment.clone(),
        report_status: start.report_status,
        buildspec_override: start.buildspec_override.clone(),
        timeout_minutes: start.timeout_minutes,
        token: key.token(),
    }
}

/// The stored `{batch_id, batch_arn, batch_number}` of a completed start. The ARN, when it was
/// known, gives the batch back exactly as the first answer named it.
fn already_started(result: &Value) -> Result<StartOutcome, StartError> {
    let stored = |field: &str| result.get(field).and_then(Value::as_str);
    let batch = stored("batch_arn")
        .or_else(|| stored("batch_id"))
        .and_then(|id| BatchId::parse(id).ok())
        .ok_or_else(|| LedgerError::Malformed {
            message: format!("a completed start without a readable batch_id: {result}"),
        })?;
    Ok(StartOutcome::AlreadyStarted {
        batch,
        number: result.get("batch_number").and_then(Value::as_i64),
    })
}

/// `StartBuildBatch` failed under `claim`: released when retrying can help, else recorded as
/// failed so a redelivery does not hammer CodeBuild.
async fn call_failed<L: Ledger>(ledger: &L, claim: &Claim, err: CodeBuildError) -> StartError {
    if err.is_retryable() {
        release(ledger, claim).await;
        return StartError::CodeBuild(err);
    }
    if let CodeBuildError::IdempotencyConflict { .. } = err {
        // CodeBuild still remembers the token with other parameters (a start whose record was
        // lost within the last five minutes). Released, not failed: the request that owns the
        // token may yet come back for its batch, and must find the key free.
        release(ledger, claim).await;
        return StartError::Conflict {
            key: claim.key.to_string(),
        };
    }
    if let Err(ledger_err) = ledger.fail(claim, &err.to_string()).await {
        tracing::warn!(key = %claim.key, error = %ledger_err, "could not record the failed start");
    }
    StartError::CodeBuild(err)
}

/// Gives the claim back. Best effort: a claim that cannot be released runs out with its lease.
async fn release<L: Ledger>(ledger: &L, claim: &Claim) {
    if let Err(err) = ledger.release(claim).await {
        tracing::warn!(key = %claim.key, error = %err, "could not release the start claim");
    }
}

/// Records the batch under the claim. A claim that is no longer ours (its lease ran out and
/// another invocation took it) is only logged: the batch exists either way, and the other
/// invocation got the same one from CodeBuild's token.
async fn complete<L: Ledger>(
    ledger: &L,
    claim: &Claim,
    batch: &BuildBatch,
) -> Result<(), StartError> {
    let result = json!({
        "batch_id": batch.id.id(),
        "batch_arn": batch.id.arn(),
        "batch_number": batch.batch_number,
    });
    match ledger.complete(claim, &result).await {
        Ok(()) => Ok(()),
        Err(err) if err.is_retryable() => Err(StartError::NotRecorded {
            batch: batch.id.id(),
            source: err,
        }),
        Err(err) => {
            tracing::warn!(key = %claim.key, error = %err, "could not complete the start claim");
            Ok(())
        }
    }
}

/// Where a start came from, for the log (never the identity's values).
fn source_of(identity: &StartIdentity) -> &'static str {
    match identity {
        StartIdentity::Webhook { .. } => "webhook",
        StartIdentity::Trigger { .. } => "trigger",
        StartIdentity::Ops { .. } => "ops",
    }
}

/// The one JSON decision line per start, with the conventions' fixed field names.
fn log_decision(start: &BatchStart, dry_run: bool, result: &Result<StartOutcome, StartError>) {
    let (action, batch_id, error, retryable) = match result {
        Ok(outcome) => (
            outcome.action(),
            outcome.batch().map(BatchId::id),
            None,
            None,
        ),
        Err(err) => (
            err.action(),
            match err {
                StartError::NotRecorded { batch, .. } => Some(batch.clone()),
                _ => None,
            },
            Some(err.to_string()),
            Some(err.is_retryable()),
        ),
    };
    tracing::info!(
        action,
        reason = start.reason.as_deref(),
        project = start.project.as_str(),
        batch_id = batch_id.as_deref(),
        source = source_of(&start.identity),
        source_version = start.source_version.as_deref(),
        dry_run,
        error = error.as_deref(),
        retryable,
        "batch start decision"
    );
}

/// Fakes and the emulator fixture, shared with `stop_pull_request`'s tests.
#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::SocketAddr;

    use aws_sdk_codebuild::config::retry::RetryConfig;
    use aws_sdk_codebuild::config::{BehaviorVersion, Credentials, Region};
    use codebuild_local::control::SeedBatch;
    use codebuild_local::faults::FaultSpec;
    use codebuild_local::model::Status;
    use codebuild_local::{Server, serve};

    use super::*;
    use crate::aws::SdkCodeBuild;
    use crate::config::{ProjectPattern, ReaperPolicy, RetryPolicy};
    use crate::ledger::RecordStatus;
    use crate::model::BuildStatus;
    use crate::testing::{Call, FakeCodeBuild, FakeLedger, env, now, push_start};

    // -----------------------------------------------------------------------------------------
    // Inputs

    fn run() -> StartRun {
        StartRun {
            now: now(),
            lease: Duration::from_secs(60),
            dry_run: false,
        }
    }

    /// A push's start with a timeout override, so the request shows it is passed on.
    fn webhook_start(project: &str, delivery: &str, branch: &str) -> BatchStart {
        BatchStart {
            timeout_minutes: Some(30),
            ..push_start(project, delivery, branch)
        }
    }

    fn ledger_key(start: &BatchStart) -> LedgerKey {
        LedgerKey::for_mutation(&start.identity.key_for(&start.project))
    }

    pub(crate) fn entry(project: &str) -> ProjectEntry {
        ProjectEntry {
            pattern: ProjectPattern::new(project).unwrap(),
            dry_run: false,
            retry: RetryPolicy::default(),
            reaper: ReaperPolicy::default(),
            start: crate::config::StartPolicy::default(),
        }
    }

    fn throttled() -> CodeBuildError {
        CodeBuildError::Throttled {
            operation: "StartBuildBatch",
            message: "Rate exceeded".into(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Over fakes

    #[tokio::test]
    async fn starts_once_with_the_identity_token_and_records_the_batch() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");

        let outcome = start_batch(&cb, &ledger, &start, run()).await.unwrap();

        let starts = cb.starts();
        assert_eq!(starts.len(), 1);
        let request = &starts[0];
        assert_eq!(request.token, start.identity.key_for("web").token());
        assert_eq!(request.project, "web");
        assert_eq!(
            request.source_version.as_deref(),
            Some("refs/heads/feature/x")
        );
        assert_eq!(request.environment_variables, start.environment);
        assert_eq!(request.report_status, Some(true));
        assert_eq!(request.timeout_minutes, Some(30));
        let StartOutcome::Started { batch, number } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(number, Some(1));
        let record = ledger.record(&ledger_key(&start)).unwrap();
        assert_eq!(record.status, RecordStatus::Completed);
        assert_eq!(
            record.result,
            Some(json!({"batch_id": batch.id(), "batch_arn": null, "batch_number": 1}))
        );
    }

    #[tokio::test]
    async fn the_same_identity_twice_starts_one_batch() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");
        let first = start_batch(&cb, &ledger, &start, run()).await.unwrap();
        // A redelivery long after CodeBuild's token window, wording its reason differently.
        let mut again = start.clone();
        again.reason = Some("redelivered".into());
        let later = StartRun {
            now: now() + chrono::TimeDelta::hours(2),
            ..run()
        };
        let second = start_batch(&cb, &ledger, &again, later).await.unwrap();

        assert_eq!(cb.starts().len(), 1, "one StartBuildBatch");
        assert_eq!(
            second,
            StartOutcome::AlreadyStarted {
                batch: first.batch().unwrap().clone(),
                number: Some(1),
            }
        );
    }

    #[tokio::test]
    async fn another_request_under_the_same_identity_is_a_conflict() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");
        start_batch(&cb, &ledger, &start, run()).await.unwrap();
        let mut other = start.clone();
        other.source_version = Some("refs/heads/feature/y".into());

        let err = start_batch(&cb, &ledger, &other, run()).await.unwrap_err();

        assert!(matches!(err, StartError::Conflict { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(cb.starts().len(), 1);
    }

    #[tokio::test]
    async fn a_claim_held_elsewhere_is_in_flight_and_nothing_is_called() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");
        // Another invocation claimed the same start and is still on it.
        let held = ClaimRequest::new(
            ledger_key(&start),
            PayloadHash::of_json(&start_payload(&start)),
            now(),
            Duration::from_secs(60),
        );
        assert!(matches!(
            ledger.claim(&held).await.unwrap(),
            ClaimOutcome::Won(_)
        ));

        let err = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();

        assert!(matches!(err, StartError::InFlight { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(cb.starts().is_empty());
    }

    #[tokio::test]
    async fn throttled_releases_the_claim_and_the_retry_reuses_the_token() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");
        cb.fail_next(Call::StartBuildBatch, throttled());

        let err = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();
        assert!(matches!(
            err,
            StartError::CodeBuild(CodeBuildError::Throttled { .. })
        ));
        assert!(err.is_retryable());
        assert_eq!(ledger.record(&ledger_key(&start)), None, "claim released");

        let outcome = start_batch(&cb, &ledger, &start, run()).await.unwrap();
        assert!(
            matches!(outcome, StartOutcome::Started { .. }),
            "{outcome:?}"
        );
        let starts = cb.starts();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0].token, starts[1].token);
    }

    #[tokio::test]
    async fn an_unavailable_ledger_calls_nothing() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        ledger.set_unavailable(true);
        let start = webhook_start("web", "d-1", "feature/x");

        let err = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();

        assert!(matches!(
            err,
            StartError::Ledger(LedgerError::Unavailable { .. })
        ));
        assert!(err.is_retryable());
        assert!(cb.starts().is_empty(), "fail closed");
    }

    #[tokio::test]
    async fn a_permanent_refusal_is_recorded_and_not_asked_again() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("gone", "d-1", "feature/x");
        cb.fail_next(
            Call::StartBuildBatch,
            CodeBuildError::NotFound {
                operation: "StartBuildBatch",
                message: "Project cannot be found: gone".into(),
            },
        );

        let err = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();
        assert!(matches!(
            err,
            StartError::CodeBuild(CodeBuildError::NotFound { .. })
        ));
        assert!(!err.is_retryable());
        let record = ledger.record(&ledger_key(&start)).unwrap();
        assert_eq!(record.status, RecordStatus::Failed);
        assert!(record.reason.unwrap().contains("Project cannot be found"));

        let again = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();
        assert!(
            matches!(again, StartError::FailedBefore { .. }),
            "{again:?}"
        );
        assert!(!again.is_retryable());
        assert_eq!(cb.starts().len(), 1);
    }

    #[tokio::test]
    async fn a_token_mismatch_at_codebuild_is_a_conflict_and_frees_the_key() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");
        cb.fail_next(
            Call::StartBuildBatch,
            CodeBuildError::IdempotencyConflict {
                operation: "StartBuildBatch",
                message: "token reused".into(),
            },
        );

        let err = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();

        assert!(matches!(err, StartError::Conflict { .. }), "{err:?}");
        assert_eq!(ledger.record(&ledger_key(&start)), None);
    }

    #[tokio::test]
    async fn a_start_not_recorded_says_which_batch_and_keeps_the_claim() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        ledger.set_complete_throttled(true);
        let start = webhook_start("web", "d-1", "feature/x");

        let err = start_batch(&cb, &ledger, &start, run()).await.unwrap_err();

        let StartError::NotRecorded { batch, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(batch, "web:00000000-0000-4000-8000-000000000001");
        assert!(err.is_retryable());
        let record = ledger.record(&ledger_key(&start)).unwrap();
        assert_eq!(
            record.status,
            RecordStatus::InProgress,
            "runs out with its lease"
        );
    }

    #[tokio::test]
    async fn a_dry_run_claims_and_calls_nothing() {
        let (cb, ledger) = (FakeCodeBuild::default(), FakeLedger::default());
        let start = webhook_start("web", "d-1", "feature/x");
        let dry = StartRun {
            dry_run: true,
            ..run()
        };

        let outcome = start_batch(&cb, &ledger, &start, dry).await.unwrap();

        assert_eq!(outcome, StartOutcome::DryRun);
        assert_eq!(ledger.claims_made(), 0);
        assert!(cb.starts().is_empty());
        // The project's dry run does the same through `start_and_supersede`.
        let mut dry_entry = entry("web");
        dry_entry.dry_run = true;
        let done = start_and_supersede(&cb, &ledger, &dry_entry, &start, run())
            .await
            .unwrap();
        assert_eq!(done.outcome, StartOutcome::DryRun);
        assert_eq!(done.supersede, None);
        assert_eq!(ledger.claims_made(), 0);
        assert!(cb.starts().is_empty());
    }

    #[test]
    fn the_payload_covers_what_codebuild_is_sent_and_nothing_else() {
        let start = webhook_start("web", "d-1", "feature/x");
        let hash = |s: &BatchStart| PayloadHash::of_json(&start_payload(s));
        let mut same = start.clone();
        same.reason = None;
        same.supersede = None;
        assert_eq!(hash(&start), hash(&same));
        let changes: [fn(&mut BatchStart); 6] = [
            |s| s.project = "api".into(),
            |s| s.source_version = None,
            |s| s.environment.push(env("X", "1")),
            |s| s.report_status = Some(false),
            |s| s.buildspec_override = Some("version: 0.2".into()),
            |s| s.timeout_minutes = Some(31),
        ];
        for change in changes {
            let mut other = start.clone();
            change(&mut other);
            assert_ne!(hash(&start), hash(&other), "{other:?}");
        }
    }

    #[test]
    fn the_lease_is_the_time_left_less_a_margin_within_bounds() {
        let at = now();
        let lease = |secs| StartRun::until(at, at + chrono::TimeDelta::seconds(secs), false).lease;
        assert_eq!(lease(60), Duration::from_secs(58));
        assert_eq!(lease(0), MIN_LEASE);
        assert_eq!(lease(-5), MIN_LEASE);
        assert_eq!(lease(900), MAX_LEASE);
    }

    #[test]
    fn scopes_map_to_reaper_keys() {
        assert_eq!(
            branch_key(&SupersedeScope::Branch("main".into())),
            BranchKey::Branch("main".into())
        );
        assert_eq!(
            branch_key(&SupersedeScope::PullRequest("7".into())),
            BranchKey::PullRequest("7".into())
        );
    }

    // -----------------------------------------------------------------------------------------
    // Against the codebuild-local emulator

    /// The emulator on an ephemeral port, the SDK adapter pointed at it (retries off, so every
    /// adapter call is one request and injected faults surface).
    pub(crate) struct Emulator {
        pub(crate) server: Server,
        pub(crate) adapter: SdkCodeBuild,
    }

    impl Emulator {
        pub(crate) async fn start() -> Self {
            let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let server = serve(codebuild_local::Config::default(), addr)
                .await
                .unwrap();
            let config = aws_sdk_codebuild::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .endpoint_url(server.endpoint())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .retry_config(RetryConfig::disabled())
                .build();
            let adapter = SdkCodeBuild::new(aws_sdk_codebuild::Client::from_conf(config));
            Self { server, adapter }
        }

        /// Seeds a batch; returns its id.
        pub(crate) async fn seed(&self, seed: SeedBatch) -> BatchId {
            let batch = self.server.control().seed_batch(&seed).await.unwrap();
            BatchId::parse(batch["id"].as_str().unwrap()).unwrap()
        }

        /// Creates `project` (a finished batch seeds it).
        pub(crate) async fn project(&self, project: &str) {
            self.seed(SeedBatch {
                project_name: project.into(),
                build_batch_status: Some(Status::Succeeded),
                ..SeedBatch::default()
            })
            .await;
        }

        /// The status of a batch, as CodeBuild tells it now.
        pub(crate) async fn status_of(&self, id: &BatchId) -> BuildStatus {
            let lookup = self
                .adapter
                .batch_get_build_batches(std::slice::from_ref(id))
                .await
                .unwrap();
            lookup.batches[0].status.clone()
        }

        /// `StartBuildBatch` requests that reached the operation (not answered by a fault).
        async fn start_calls(&self) -> Vec<Value> {
            let calls = self.server.control().calls().await.unwrap();
            calls
                .into_iter()
                .filter(|c| c.operation == "StartBuildBatch" && c.fault.is_none())
                .map(|c| c.params)
                .collect()
        }
    }

    /// A running batch of `project` building `branch` (by our own environment variable).
    pub(crate) fn running(project: &str, name: &str, value: &str) -> SeedBatch {
        SeedBatch {
            project_name: project.into(),
            build_batch_status: Some(Status::InProgress),
            age_seconds: Some(600),
            environment_variables: Some(vec![codebuild_local::model::EnvironmentVariable {
                name: name.into(),
                value: value.into(),
                kind: "PLAINTEXT".into(),
            }]),
            ..SeedBatch::default()
        }
    }

    #[tokio::test]
    async fn emulator_one_batch_per_identity_with_the_overrides_applied() {
        let emu = Emulator::start().await;
        emu.project("web").await;
        let ledger = FakeLedger::default();
        let mut start = webhook_start("web", "d-1", "feature/x");
        start.timeout_minutes = Some(45);
        start.buildspec_override = Some("version: 0.2".into());

        let first = start_batch(&emu.adapter, &ledger, &start, run())
            .await
            .unwrap();
        let second = start_batch(&emu.adapter, &ledger, &start, run())
            .await
            .unwrap();

        let StartOutcome::Started { batch, number } = &first else {
            panic!("{first:?}")
        };
        assert_eq!(*number, Some(2), "after the seeded batch");
        assert_eq!(
            second,
            StartOutcome::AlreadyStarted {
                batch: batch.clone(),
                number: Some(2),
            }
        );
        let calls = emu.start_calls().await;
        assert_eq!(calls.len(), 1, "one StartBuildBatch reached CodeBuild");
        let params = &calls[0];
        assert_eq!(
            params["idempotencyToken"],
            json!(start.identity.key_for("web").token().as_str())
        );
        assert_eq!(params["buildTimeoutInMinutesOverride"], json!(45));
        assert_eq!(params["buildspecOverride"], json!("version: 0.2"));
        assert_eq!(params["reportBuildBatchStatusOverride"], json!(true));
        assert_eq!(emu.status_of(batch).await, BuildStatus::InProgress);
        emu.server.shutdown().await;
    }

    #[tokio::test]
    async fn emulator_throttled_then_started_with_the_same_token() {
        let emu = Emulator::start().await;
        emu.project("web").await;
        let ledger = FakeLedger::default();
        let start = webhook_start("web", "d-1", "feature/x");
        emu.server
            .control()
            .set_faults(&FaultSpec {
                operations: Some(vec!["StartBuildBatch".into()]),
                throttle_fraction: Some(1.0),
                ..FaultSpec::default()
            })
            .await
            .unwrap();

        let err = start_batch(&emu.adapter, &ledger, &start, run())
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(ledger.record(&ledger_key(&start)), None);

        emu.server.control().clear_faults().await.unwrap();
        let outcome = start_batch(&emu.adapter, &ledger, &start, run())
            .await
            .unwrap();
        assert!(
            matches!(outcome, StartOutcome::Started { .. }),
            "{outcome:?}"
        );
        let all = emu.server.control().calls().await.unwrap();
        let tokens: Vec<_> = all
            .iter()
            .filter(|c| c.operation == "StartBuildBatch")
            .map(|c| c.params["idempotencyToken"].clone())
            .collect();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0], tokens[1]);
        emu.server.shutdown().await;
    }

    #[tokio::test]
    async fn emulator_unknown_project_is_recorded_as_failed() {
        let emu = Emulator::start().await;
        let ledger = FakeLedger::default();
        let start = webhook_start("missing", "d-1", "feature/x");

        let err = start_batch(&emu.adapter, &ledger, &start, run())
            .await
            .unwrap_err();

        assert!(!err.is_retryable(), "{err:?}");
        let record = ledger.record(&ledger_key(&start)).unwrap();
        assert_eq!(record.status, RecordStatus::Failed);
        emu.server.shutdown().await;
    }

    #[tokio::test]
    async fn emulator_start_supersedes_the_older_batch_of_its_branch_only() {
        let emu = Emulator::start().await;
        emu.project("web").await;
        let older_feature = emu
            .seed(running("web", "AUTOPILOT_BRANCH", "feature/x"))
            .await;
        let other_feature = emu
            .seed(running("web", "AUTOPILOT_BRANCH", "feature/y"))
            .await;
        let older_main = emu.seed(running("web", "AUTOPILOT_BRANCH", "main")).await;
        let ledger = FakeLedger::default();
        let web = entry("web");

        // The emulator ages batches by the wall clock, so the start runs at the real now.
        let start_now = async |start: &BatchStart| {
            let live = StartRun {
                now: Utc::now(),
                ..run()
            };
            start_and_supersede(&emu.adapter, &ledger, &web, start, live)
                .await
                .unwrap()
        };

        let done = start_now(&webhook_start("web", "d-1", "feature/x")).await;
        let summary = done.supersede.unwrap();
        assert_eq!(summary.stopped.superseded, 1);
        assert_eq!(emu.status_of(&older_feature).await, BuildStatus::Stopped);
        assert_eq!(emu.status_of(&other_feature).await, BuildStatus::InProgress);
        let newer = done.outcome.batch().unwrap();
        assert_eq!(emu.status_of(newer).await, BuildStatus::InProgress);

        // `main` is protected: its older batch keeps running.
        let done = start_now(&webhook_start("web", "d-2", "main")).await;
        let summary = done.supersede.unwrap();
        assert_eq!(summary.stopped.total(), 0);
        assert_eq!(summary.skipped.get("protected_branch"), Some(&1));
        assert_eq!(emu.status_of(&older_main).await, BuildStatus::InProgress);
        emu.server.shutdown().await;
    }
}
