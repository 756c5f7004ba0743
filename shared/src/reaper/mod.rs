//! Stale and superseded batch stopping, pure part: which in-progress batches of one project to
//! stop, and why (or why not). No I/O: the sweep (`sweep.rs`) lists and fetches the batches,
//! calls [`plan_project`], and stops what it says.
//!
//! [`branch_of`] reads the branch / PR a batch builds (see [`branch`] for every form it
//! understands); [`plan_project`] applies the rules (see [`plan`] for their order);
//! [`superseded_by`] is the supersede rule alone, for auto-retry.

use std::time::Duration;

use serde::Serialize;

use crate::model::BatchId;

pub mod branch;
pub mod plan;
pub mod settings;
pub mod summary;
pub mod supersede;
pub mod sweep;

pub use branch::{BRANCH_ENV, PR_ENV, branch_of};
pub use plan::{plan_project, superseded_by};
pub use settings::ReaperSettings;
pub use summary::ReapSummary;
pub use supersede::supersede_older;
pub use sweep::{ReaperError, SweepContext, sweep};

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
    /// Its pull request was merged or closed (`start::stop_pull_request`, never the sweep).
    PullRequestClosed,
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
    /// It has no `buildBatchNumber`, so it is neither older nor newer than another batch
    /// (never superseded, and never supersedes).
    Unnumbered,
    /// It is the newest batch of its branch / PR and not stale.
    Current,
    /// Not stale (or stale stopping is off: `max_age` unset), and superseding is off for the
    /// project (`supersede = false`).
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
