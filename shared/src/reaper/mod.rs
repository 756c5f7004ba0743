//! Stale and superseded batch stopping, pure part: which in-progress batches of one project to
//! stop, and why (or why not). No I/O: the sweep (`sweep.rs`) lists and fetches the batches,
//! calls [`plan_project`], and stops what it says.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::ReaperPolicy;
use crate::model::{BatchId, BuildBatch};

/// What a batch builds, as far as superseding is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum BranchKey {
    /// A branch (`refs/heads/x` → `x`).
    Branch(String),
    /// A pull / merge request, by its number or id.
    PullRequest(String),
}

/// Why a batch is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Running longer than the project's `max_age`.
    Stale,
    /// A newer batch (higher `buildBatchNumber`) of the same project builds the same branch/PR.
    Superseded,
}

/// Why a batch is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Not in progress (finished meanwhile).
    NotInProgress,
    /// Finishing: in `COMBINE_ARTIFACTS`, or every build of it complete.
    Finishing,
    /// Started by an initiator the configuration excludes.
    ExcludedInitiator,
    /// Its branch is protected (never stopped as superseded).
    ProtectedBranch,
    /// Its branch / PR cannot be known (never superseded).
    BranchUnknown,
    /// It is the newest batch of its branch / PR and not stale.
    Current,
    /// Stale stopping is off for the project (`max_age` unset) and nothing supersedes it.
    NotStale,
}

/// What to do with one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReapAction {
    /// Stop it.
    Stop {
        /// Why.
        reason: StopReason,
        /// The newer batch, when superseded.
        superseded_by: Option<BatchId>,
    },
    /// Leave it.
    Skip {
        /// Why.
        reason: SkipReason,
    },
}

/// The decision for one batch, with what the logs and metrics need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReapDecision {
    /// The batch.
    pub batch: BatchId,
    /// What to do.
    pub action: ReapAction,
    /// Its branch / PR, when known.
    pub branch: Option<BranchKey>,
    /// How long it has run (now − start), when the start is known.
    pub age: Option<Duration>,
    /// Builds of it still running (for the build-minutes a stop saves).
    pub running_builds: u32,
}

/// The branch or pull request a batch builds: the `AUTOPILOT_PR` / `AUTOPILOT_BRANCH`
/// environment variables our own starts set, else the `sourceVersion` forms (`refs/heads/x`,
/// `pr/42`, ...), else `None`.
pub fn branch_of(batch: &BuildBatch) -> Option<BranchKey> {
    let _ = batch;
    None // R1 replaces this
}

/// Decides for every batch of ONE project (the batches as `BatchGetBuildBatches` returned
/// them, any order), under the project's policy, at `now`. One decision per batch.
pub fn plan_project(
    batches: &[BuildBatch],
    policy: &ReaperPolicy,
    now: DateTime<Utc>,
) -> Vec<ReapDecision> {
    let _ = (policy, now);
    batches
        .iter()
        .map(|b| ReapDecision {
            batch: b.id.clone(),
            action: ReapAction::Skip {
                reason: SkipReason::NotStale,
            },
            branch: None,
            age: None,
            running_builds: 0,
        })
        .collect() // R1 replaces this
}
