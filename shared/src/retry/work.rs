//! The messages auto-retry sends itself through the delay queue, and the "gave up" notice.
//!
//! Delayed work is plain JSON with a `kind` tag so a message dead-lettered after an incident can
//! be read and replayed by a person (`autopilot dlq redrive`).

use serde::{Deserialize, Serialize};

use crate::model::{BatchId, BuildId};

/// Work auto-retry schedules for later through the delay queue.
// The variants' sizes differ with `serde_json`'s features (unified differently per build);
// a message is built once per invocation, so boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DelayedWork {
    /// Retry a failed build once its backoff has passed. Carries the original EventBridge
    /// event unchanged, so the delayed decision reads exactly what the first one read.
    RetryAfterBackoff {
        /// The `CodeBuild Build State Change` event, as delivered.
        event: serde_json::Value,
        /// The retry number that was decided (1 for the root's first retry).
        attempt: u32,
    },
    /// Look again at a batch whose member build failed while the batch was still running.
    BatchRecheck {
        /// The batch.
        batch: BatchId,
        /// The failed member whose event started the re-checks.
        build: BuildId,
        /// The batch's retry count when the re-check was scheduled: a re-check that finds the
        /// count moved on is stale (someone already retried the batch) and is dropped.
        observed_attempts: u32,
        /// How many re-checks of this batch came before this one (bounds the wait).
        rechecks: u32,
    },
}

/// Why auto-retry stopped retrying a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GaveUpBecause {
    /// The class's retry cap (`max_retries`, or 1 for retry-once) was reached.
    RetryCapReached,
    /// The project's hourly retry budget was spent.
    ProjectBudgetSpent,
    /// The account-wide breaker was open.
    BreakerOpen,
    /// The batch was still running after the longest wait for it.
    BatchNeverFinished,
}

/// The "gave up" notice published to SNS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaveUpNotice {
    /// The project.
    pub project: String,
    /// The first build of the chain.
    pub root_build: BuildId,
    /// The last build that failed (the one not retried).
    pub last_build: BuildId,
    /// The batch, when the chain is a batch's.
    pub batch: Option<BatchId>,
    /// Retries made so far.
    pub attempts: u32,
    /// Why it stopped.
    pub because: GaveUpBecause,
    /// The machine-readable failure reasons seen (e.g. `rate_limited`).
    pub reasons: Vec<String>,
}
