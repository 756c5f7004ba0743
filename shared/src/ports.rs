//! The narrow traits the capabilities need. Handlers are generic over them; `aws/` implements
//! them over the SDK and tests implement them with fakes.

use std::future::Future;

use crate::idempotency::IdempotencyToken;
use crate::ledger::LedgerError;
use crate::model::{BatchId, Build, BuildBatch, BuildId, BuildStatus, EnvironmentVariable};

/// Most ids one `BatchGetBuilds` / `BatchGetBuildBatches` call accepts.
pub const BATCH_GET_LIMIT: usize = 100;

/// Every way a CodeBuild call fails, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeBuildError {
    /// Throttled (`ThrottlingException`, "Rate exceeded").
    #[error("{operation} throttled: {message}")]
    Throttled {
        /// The API operation.
        operation: &'static str,
        /// CodeBuild's message.
        message: String,
    },
    /// `AccountLimitExceededException`. "more than N builds in queue" with N ≥ 1 is a full
    /// queue that drains (retryable); N = 0 (or no N) is a quota that will not change.
    #[error("{operation} account limit exceeded (queue limit {queue_limit:?}): {message}")]
    AccountLimitExceeded {
        /// The API operation.
        operation: &'static str,
        /// N of "more than N builds in queue", when the message says it.
        queue_limit: Option<u64>,
        /// CodeBuild's message.
        message: String,
    },
    /// An HTTP 5xx from CodeBuild.
    #[error("{operation} server error {status}: {message}")]
    ServerError {
        /// The API operation.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// CodeBuild's message.
        message: String,
    },
    /// The request timed out or never reached CodeBuild.
    #[error("{operation} transport failure: {message}")]
    Transport {
        /// The API operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
    /// `ResourceNotFoundException`.
    #[error("{operation} not found: {message}")]
    NotFound {
        /// The API operation.
        operation: &'static str,
        /// CodeBuild's message.
        message: String,
    },
    /// The same idempotency token was used with other parameters within five minutes.
    #[error("{operation} idempotency token reused with other parameters: {message}")]
    IdempotencyConflict {
        /// The API operation.
        operation: &'static str,
        /// CodeBuild's message.
        message: String,
    },
    /// `InvalidInputException` (other than a token mismatch).
    #[error("{operation} invalid input: {message}")]
    InvalidInput {
        /// The API operation.
        operation: &'static str,
        /// CodeBuild's message.
        message: String,
    },
    /// Anything else (an unknown error code, an unreadable response).
    #[error("{operation} failed ({code:?}): {message}")]
    Unexpected {
        /// The API operation.
        operation: &'static str,
        /// The error code, when there was one.
        code: Option<String>,
        /// What went wrong.
        message: String,
    },
}

impl CodeBuildError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::ServerError { .. } | Self::Transport { .. } => true,
            Self::AccountLimitExceeded { queue_limit, .. } => queue_limit.is_some_and(|n| n >= 1),
            Self::NotFound { .. }
            | Self::IdempotencyConflict { .. }
            | Self::InvalidInput { .. }
            | Self::Unexpected { .. } => false,
        }
    }
}

/// What `BatchGetBuilds` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildLookup {
    /// The builds found.
    pub builds: Vec<Build>,
    /// Requested ids CodeBuild does not know (as CodeBuild echoed them).
    pub not_found: Vec<String>,
}

/// What `BatchGetBuildBatches` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchLookup {
    /// The batches found.
    pub batches: Vec<BuildBatch>,
    /// Requested ids CodeBuild does not know.
    pub not_found: Vec<String>,
}

/// `RetryBuild`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBuildRequest {
    /// The build to run again.
    pub build: BuildId,
    /// Makes a redelivered retry return the first result.
    pub token: IdempotencyToken,
}

/// Which builds of a batch `RetryBuildBatch` reruns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRetryType {
    /// Every build.
    AllBuilds,
    /// Only those that failed.
    FailedBuilds,
}

/// `RetryBuildBatch`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBuildBatchRequest {
    /// The batch to retry.
    pub batch: BatchId,
    /// Which builds.
    pub retry_type: BatchRetryType,
    /// Makes a redelivered retry return the first result.
    pub token: IdempotencyToken,
}

/// `StartBuildBatch`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartBuildBatchRequest {
    /// Project.
    pub project: String,
    /// Branch, commit or tag (project default when `None`).
    pub source_version: Option<String>,
    /// Overrides of the project's environment variables.
    pub environment_variables: Vec<EnvironmentVariable>,
    /// `reportBuildBatchStatusOverride` (the project's setting when `None`).
    pub report_status: Option<bool>,
    /// `buildspecOverride` (the project's buildspec when `None`).
    pub buildspec_override: Option<String>,
    /// `buildTimeoutInMinutesOverride` (the project's timeout when `None`).
    pub timeout_minutes: Option<u32>,
    /// Makes a redelivered start return the first result.
    pub token: IdempotencyToken,
}

/// `ListBuildBatchesForProject`, one page.
#[derive(Debug, Clone, PartialEq)]
pub struct ListBuildBatchesRequest {
    /// Project.
    pub project: String,
    /// Only batches in this status.
    pub status: Option<BuildStatus>,
    /// Continue after a previous page.
    pub next_token: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Pass back for the next page; `None` on the last.
    pub next_token: Option<String>,
}

/// The CodeBuild operations the autopilot uses, with domain types in and out.
pub trait CodeBuild: Send + Sync {
    /// Up to [`BATCH_GET_LIMIT`] builds.
    fn batch_get_builds(
        &self,
        ids: &[BuildId],
    ) -> impl Future<Output = Result<BuildLookup, CodeBuildError>> + Send;
    /// Run a build again; returns the new build.
    fn retry_build(
        &self,
        request: &RetryBuildRequest,
    ) -> impl Future<Output = Result<Build, CodeBuildError>> + Send;
    /// Retry a batch; returns the batch.
    fn retry_build_batch(
        &self,
        request: &RetryBuildBatchRequest,
    ) -> impl Future<Output = Result<BuildBatch, CodeBuildError>> + Send;
    /// Start a batch; returns it.
    fn start_build_batch(
        &self,
        request: &StartBuildBatchRequest,
    ) -> impl Future<Output = Result<BuildBatch, CodeBuildError>> + Send;
    /// Stop a batch; returns it.
    fn stop_build_batch(
        &self,
        id: &BatchId,
    ) -> impl Future<Output = Result<BuildBatch, CodeBuildError>> + Send;
    /// Up to [`BATCH_GET_LIMIT`] batches.
    fn batch_get_build_batches(
        &self,
        ids: &[BatchId],
    ) -> impl Future<Output = Result<BatchLookup, CodeBuildError>> + Send;
    /// One page of a project's batch ids, newest first.
    fn list_build_batches_for_project(
        &self,
        request: &ListBuildBatchesRequest,
    ) -> impl Future<Output = Result<Page<BatchId>, CodeBuildError>> + Send;
    /// One page of project names.
    fn list_projects(
        &self,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<Page<String>, CodeBuildError>> + Send;
}

/// Every way a call to one of the smaller AWS services behind a port (SQS, SNS, SSM, S3,
/// CloudWatch Logs) fails, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Throttled, a 5xx, a timeout or no connection: the same call may succeed later.
    #[error("{service} {operation} unavailable: {message}")]
    Unavailable {
        /// The AWS service (`sqs`, `sns`, `ssm`, `s3`, `logs`).
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Not found (a parameter, object, queue, topic or log stream that does not exist).
    #[error("{service} {operation} not found: {message}")]
    NotFound {
        /// The AWS service.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Refused for good: access denied, invalid parameters, an unexpected answer.
    #[error("{service} {operation} rejected: {message}")]
    Rejected {
        /// The AWS service.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl ServiceError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// One link of a retry chain: `build` was made by retrying `parent`; `root` is the build the
/// chain started from and `attempt` this build's number in it (1 for the first retry).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lineage {
    /// The build a retry made.
    pub build: BuildId,
    /// The failed build that was retried.
    pub parent: BuildId,
    /// The first build of the chain.
    pub root: BuildId,
    /// 1 for the root's first retry, 2 for the retry of that, ...
    pub attempt: u32,
    /// When the retry was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// How many times a batch was retried in place by the autopilot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchAttempts {
    /// The batch.
    pub batch: BatchId,
    /// Retries made so far (0 when never retried).
    pub attempts: u32,
}

/// A request to take one retry from the hourly budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRequest {
    /// The project whose budget is charged.
    pub project: String,
    /// The clock hour charged (any instant in it; the adapter truncates to the hour, UTC).
    pub at: chrono::DateTime<chrono::Utc>,
    /// Retries allowed per project and hour.
    pub project_limit: u32,
    /// Retries allowed per hour across all projects (the account breaker).
    pub account_limit: u32,
}

/// What taking a retry from the budgets came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetOutcome {
    /// One retry taken from both budgets.
    Granted,
    /// The project's hourly budget is spent; nothing was taken.
    ProjectExhausted {
        /// Retries counted this hour.
        used: u32,
        /// The limit.
        limit: u32,
    },
    /// The account-wide breaker is open (a CodeBuild-wide incident, most likely); nothing was
    /// taken.
    BreakerOpen {
        /// Retries counted this hour across all projects.
        used: u32,
        /// The limit.
        limit: u32,
    },
}

/// What auto-retry keeps in the ledger table besides the claims: retry lineage, batch retry
/// counts and the hourly budget counters.
pub trait RetryBook: Send + Sync {
    /// The link that made `build`, if a retry made it.
    fn lineage_of(
        &self,
        build: &BuildId,
    ) -> impl Future<Output = Result<Option<Lineage>, LedgerError>> + Send;
    /// The retry that was made of `parent`, if any ("which build retried this one").
    fn retried_by(
        &self,
        parent: &BuildId,
    ) -> impl Future<Output = Result<Option<Lineage>, LedgerError>> + Send;
    /// Records a link (keyed by `lineage.build`, and by `lineage.parent` for
    /// [`RetryBook::retried_by`]). Writing the same link again is not an error.
    fn record_lineage(
        &self,
        lineage: &Lineage,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// How many times the autopilot retried `batch`.
    fn batch_attempts(
        &self,
        batch: &BatchId,
    ) -> impl Future<Output = Result<BatchAttempts, LedgerError>> + Send;
    /// Records that retry number `attempt` of `batch` was made. The count only grows: an older
    /// (smaller) attempt recorded late leaves it unchanged.
    fn record_batch_attempt(
        &self,
        batch: &BatchId,
        attempt: u32,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Atomically takes one retry from the project's and the account's budget for the hour,
    /// or neither when either is spent.
    fn take_budget(
        &self,
        request: &BudgetRequest,
    ) -> impl Future<Output = Result<BudgetOutcome, LedgerError>> + Send;
}

/// The one SQS delay queue every later action goes through (backoff before a retry, the
/// re-check of a batch that was still running). At most 900 seconds per message.
pub trait DelayQueue: Send + Sync {
    /// Longest delay SQS allows for one message.
    const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(900);
    /// Sends `work` to come back after `delay` (clamped to [`DelayQueue::MAX_DELAY`]).
    fn send_later(
        &self,
        work: &crate::retry::work::DelayedWork,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// Secret values by name (Secrets Manager): the webhook secrets.
pub trait Secrets: Send + Sync {
    /// The current value (`SecretString`) of the secret `name` (a name or an ARN).
    fn secret_value(&self, name: &str)
    -> impl Future<Output = Result<String, ServiceError>> + Send;
}

/// The start queue between the webhook function and the batch starter (SQS).
pub trait StartQueue: Send + Sync {
    /// Puts every piece of work on the queue; on error some may have been sent (the starter's
    /// ledger makes a resend harmless).
    fn enqueue(
        &self,
        work: &[crate::start::StarterWork],
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// Tells people that auto-retry gave up on a chain (SNS).
pub trait Notifier: Send + Sync {
    /// Publishes one "gave up" notice.
    fn gave_up(
        &self,
        notice: &crate::retry::work::GaveUpNotice,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// The tail of a build's log (CloudWatch Logs), read only when a project switches it on.
pub trait BuildLogs: Send + Sync {
    /// The last `lines` lines of the stream, oldest first.
    fn tail(
        &self,
        location: &crate::model::LogLocation,
        lines: u32,
    ) -> impl Future<Output = Result<Vec<String>, ServiceError>> + Send;
}

/// Where the configuration text is read from (`file:`, `ssm:`, `s3:`).
pub trait ConfigSource: Send + Sync {
    /// The configuration text at `uri`.
    fn fetch(
        &self,
        uri: &crate::config::ConfigUri,
    ) -> impl Future<Output = Result<String, ServiceError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(queue_limit: Option<u64>) -> CodeBuildError {
        CodeBuildError::AccountLimitExceeded {
            operation: "RetryBuild",
            queue_limit,
            message: String::new(),
        }
    }

    #[test]
    fn retryability_per_variant() {
        let m = String::new;
        let op = "RetryBuild";
        assert!(
            CodeBuildError::Throttled {
                operation: op,
                message: m()
            }
            .is_retryable()
        );
        assert!(
            CodeBuildError::ServerError {
                operation: op,
                status: 503,
                message: m()
            }
            .is_retryable()
        );
        assert!(
            CodeBuildError::Transport {
                operation: op,
                message: m()
            }
            .is_retryable()
        );
        assert!(limit(Some(1)).is_retryable());
        assert!(!limit(Some(0)).is_retryable());
        assert!(!limit(None).is_retryable());
        assert!(
            !CodeBuildError::NotFound {
                operation: op,
                message: m()
            }
            .is_retryable()
        );
        assert!(
            !CodeBuildError::InvalidInput {
                operation: op,
                message: m()
            }
            .is_retryable()
        );
        assert!(
            !CodeBuildError::IdempotencyConflict {
                operation: op,
                message: m()
            }
            .is_retryable()
        );
    }
}
