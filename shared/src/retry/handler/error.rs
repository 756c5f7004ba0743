//! [`AutoRetryError`]: every way handling one input fails, and whether Lambda should retry it.

use crate::ledger::LedgerError;
use crate::ports::{CodeBuildError, ServiceError};

/// Why an input was not handled. Retryable errors go back to Lambda (its async retries, then
/// the dead-letter queue, keep the event; a queued message returns to the queue); the others
/// are logged with their reason and dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoRetryError {
    /// Not an input auto-retry handles (neither a build state change nor a delay-queue batch),
    /// or one that does not parse.
    #[error("rejected input: {message}")]
    Rejected {
        /// What is wrong with it.
        message: String,
    },
    /// A CodeBuild call failed (after the SDK's own retries).
    #[error(transparent)]
    CodeBuild(#[from] CodeBuildError),
    /// The ledger failed. Fail closed: no `RetryBuild` without a won claim.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The delay queue or the notification topic failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Another invocation holds the claim for the same retry; it comes back once that one
    /// completed (then it is a duplicate) or its lease ran out (then it claims again).
    #[error("claim on {key} is held by another invocation")]
    ClaimInProgress {
        /// The ledger key.
        key: String,
    },
    /// A build our own retry made failed before that retry's lineage was recorded: it is not a
    /// new root, so it waits until the lineage exists.
    #[error("build {build} was made by auto-retry and its lineage is not recorded yet")]
    LineagePending {
        /// The build.
        build: String,
    },
    /// The configuration could not be loaded (unreadable, unavailable or invalid). Retryable, so
    /// a bad configuration push parks events in the dead-letter queue instead of losing them.
    #[error("configuration unavailable: {message}")]
    Config {
        /// What went wrong.
        message: String,
    },
}

impl AutoRetryError {
    /// True when handling the same input again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected { .. } => false,
            Self::CodeBuild(err) => err.is_retryable(),
            Self::Ledger(err) => err.is_retryable(),
            Self::Service(err) => err.is_retryable(),
            Self::ClaimInProgress { .. } | Self::LineagePending { .. } | Self::Config { .. } => {
                true
            }
        }
    }

    /// The stable snake_case reason, as logged.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected_input",
            Self::CodeBuild(err) if err.is_retryable() => "codebuild_unavailable",
            Self::CodeBuild(_) => "codebuild_error",
            Self::Ledger(err) if err.is_retryable() => "ledger_unavailable",
            Self::Ledger(_) => "ledger_error",
            Self::Service(err) if err.is_retryable() => "service_unavailable",
            Self::Service(_) => "service_error",
            Self::ClaimInProgress { .. } => "claim_in_progress",
            Self::LineagePending { .. } => "lineage_pending",
            Self::Config { .. } => "config_unavailable",
        }
    }
}
