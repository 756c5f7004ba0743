//! The rules, applied to one project's batches. In this order, the first that applies decides:
//!
//! 1. not `IN_PROGRESS` → skip `not_in_progress`;
//! 2. finishing (phase `COMBINE_ARTIFACTS`, or every build group's build complete) → skip
//!    `finishing`: stopping it would throw away finished work to save almost nothing;
//! 3. started by an excluded initiator → skip `excluded_initiator`;
//! 4. running longer than `max_age` → stop `stale`. Protected branches CAN be stopped as
//!    stale: protection is about superseding, and a batch hung for hours on `main` helps no one.
//!    A batch without a start time has no age and is never stale;
//! 5. `supersede = false` → skip `not_stale` (nothing else applies);
//! 6. branch / PR unknown → skip `branch_unknown`;
//! 7. no `buildBatchNumber` → skip `unnumbered` (it can be neither older nor newer);
//! 8. a batch of the same project and key with a higher number exists → stop `superseded`,
//!    `superseded_by` the newest of them; but on a protected branch → skip `protected_branch`;
//! 9. otherwise it is the newest of its key → skip `current`.
//!
//! "Newer" is a higher `buildBatchNumber`, never a later start time (late deliveries misorder
//! those). A newer batch that was STOPPED does not supersede: it builds nothing, so the older
//! one is still the only build of that branch. Any other newer batch does, whatever its status
//! (one still running, finishing, excluded, or already finished: the branch has moved on).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::branch::branch_of;
use super::{BranchKey, ReapAction, ReapDecision, SkipReason, StopReason};
use crate::config::{ProjectPattern, ReaperPolicy};
use crate::model::{BatchId, BuildBatch, BuildStatus};

/// The batch phase in which the groups' artifacts are combined: the batch is finishing.
const COMBINE_ARTIFACTS: &str = "COMBINE_ARTIFACTS";

/// Decides for every batch of ONE project (the batches as `BatchGetBuildBatches` returned
/// them, any order), under the project's policy, at `now`. One decision per batch, in the
/// order given. Batches of another project in the slice never supersede each other.
pub fn plan_project(
    batches: &[BuildBatch],
    policy: &ReaperPolicy,
    now: DateTime<Utc>,
) -> Vec<ReapDecision> {
    let keys: Vec<Option<BranchKey>> = batches.iter().map(branch_of).collect();
    // One pass for the newest batch of every (project, key), so a project with thousands of
    // batches costs O(n), not O(n²).
    let mut newest: HashMap<(&str, &BranchKey), (i64, &BatchId)> = HashMap::new();
    for (batch, key) in batches.iter().zip(&keys) {
        if let (Some(key), Some(number)) = (key, batch.batch_number)
            && can_supersede(batch)
        {
            let slot = newest
                .entry((batch.id.project(), key))
                .or_insert((number, &batch.id));
            if number > slot.0 {
                *slot = (number, &batch.id);
            }
        }
    }
    batches
        .iter()
        .zip(&keys)
        .map(|(batch, key)| {
            let newer = match (key, batch.batch_number) {
                (Some(key), Some(number)) => newest
                    .get(&(batch.id.project(), key))
                    .filter(|(newest_number, _)| *newest_number > number)
                    .map(|(_, id)| (*id).clone()),
                _ => None,
            };
            decide(batch, key.clone(), newer, policy, now)
        })
        .collect()
}

/// The newest batch among `others` that would stop `batch` as superseded under `policy` (same
/// project, same branch / PR, higher `buildBatchNumber`, not stopped), or `None`: the same rule
/// as [`plan_project`], for auto-retry, which never retries a failed batch that a newer one has
/// made pointless. `None` as well when the branch is protected, unknown, the batch has no
/// number, or superseding is off for the project. `batch` itself may be among `others`.
pub fn superseded_by(
    batch: &BuildBatch,
    others: &[BuildBatch],
    policy: &ReaperPolicy,
) -> Option<BatchId> {
    if !policy.supersede {
        return None;
    }
    let key = branch_of(batch)?;
    let number = batch.batch_number?;
    if is_protected(&key, &policy.protected_branches) {
        return None;
    }
    others
        .iter()
        .filter(|other| other.id.project() == batch.id.project() && can_supersede(other))
        .filter_map(|other| other.batch_number.map(|n| (n, other)))
        .filter(|(n, other)| *n > number && branch_of(other).as_ref() == Some(&key))
        .max_by_key(|(n, _)| *n)
        .map(|(_, other)| other.id.clone())
}

fn decide(
    batch: &BuildBatch,
    branch: Option<BranchKey>,
    newer: Option<BatchId>,
    policy: &ReaperPolicy,
    now: DateTime<Utc>,
) -> ReapDecision {
    let age = batch
        .start_time
        // A start in the future (clock skew) is an age of zero, not an error.
        .map(|start| (now - start).to_std().unwrap_or(Duration::ZERO));
    let running = batch
        .groups
        .iter()
        .filter(|g| g.status == BuildStatus::InProgress)
        .count();
    let action = action(batch, branch.as_ref(), newer, age, policy);
    ReapDecision {
        batch: batch.id.clone(),
        action,
        branch,
        age,
        running_builds: u32::try_from(running).unwrap_or(u32::MAX),
    }
}

fn action(
    batch: &BuildBatch,
    branch: Option<&BranchKey>,
    newer: Option<BatchId>,
    age: Option<Duration>,
    policy: &ReaperPolicy,
) -> ReapAction {
    let skip = |reason| ReapAction::Skip { reason };
    if batch.status != BuildStatus::InProgress || batch.complete {
        return skip(SkipReason::NotInProgress);
    }
    if is_finishing(batch) {
        return skip(SkipReason::Finishing);
    }
    if batch
        .initiator
        .as_deref()
        .is_some_and(|initiator| matches_any(&policy.excluded_initiators, initiator))
    {
        return skip(SkipReason::ExcludedInitiator);
    }
    if let (Some(max_age), Some(age)) = (policy.max_age, age)
        && age > max_age
    {
        return ReapAction::Stop {
            reason: StopReason::Stale,
            superseded_by: None,
        };
    }
    if !policy.supersede {
        return skip(SkipReason::NotStale);
    }
    let Some(branch) = branch else {
        return skip(SkipReason::BranchUnknown);
    };
    if batch.batch_number.is_none() {
        return skip(SkipReason::Unnumbered);
    }
    match newer {
        Some(_) if is_protected(branch, &policy.protected_branches) => {
            skip(SkipReason::ProtectedBranch)
        }
        Some(newest) => ReapAction::Stop {
            reason: StopReason::Superseded,
            superseded_by: Some(newest),
        },
        None => skip(SkipReason::Current),
    }
}

/// In `COMBINE_ARTIFACTS`, or every build group's current build complete. A batch with no
/// groups yet (still reading its buildspec) is not finishing.
fn is_finishing(batch: &BuildBatch) -> bool {
    batch.current_phase.as_deref() == Some(COMBINE_ARTIFACTS)
        || (!batch.groups.is_empty() && batch.groups.iter().all(|g| g.status.is_terminal()))
}

/// A batch that counts as "newer" for others: anything but a stopped one.
fn can_supersede(batch: &BuildBatch) -> bool {
    batch.status != BuildStatus::Stopped
}

/// Only branches are protected; a pull request is never a protected branch.
fn is_protected(key: &BranchKey, protected: &[ProjectPattern]) -> bool {
    match key {
        BranchKey::Branch(name) => matches_any(protected, name),
        BranchKey::PullRequest(_) => false,
    }
}

fn matches_any(patterns: &[ProjectPattern], text: &str) -> bool {
    patterns.iter().any(|p| p.matches(text))
}
