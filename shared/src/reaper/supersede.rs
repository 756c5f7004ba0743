//! The targeted supersede: right after the webhook worker starts a batch for a branch or pull
//! request, the older in-progress batches of that branch in that project are stopped, without
//! waiting for the next sweep. The same plan as the sweep decides; only its superseded stops on
//! that branch are acted on (stale ones are the sweep's business).

use chrono::{DateTime, Utc};

use super::summary::{Outcome, ReapSummary};
use super::sweep::{NoDeadline, Reaper};
use super::{BranchKey, ReapAction, StopReason, plan_project};
use crate::config::ProjectEntry;
use crate::model::BatchId;
use crate::ports::CodeBuild;

/// Stops in flight at once: a branch rarely has more than a few batches running.
const CONCURRENCY: usize = super::settings::DEFAULT_CONCURRENCY;

/// Stops the in-progress batches of `project` that the plan says are superseded and that build
/// `branch`, never `newer` itself. `newer` is fetched even when the listing does not show it yet
/// (it was started a moment ago), so the plan knows what supersedes the others. Nothing is
/// stopped when `dry_run` or the entry's `dry_run` is set. Failed calls are in the summary.
///
/// Only the batches of `branch` (other than `newer`) are counted and logged: the others are not
/// this call's business.
pub async fn supersede_older<C: CodeBuild>(
    codebuild: &C,
    entry: &ProjectEntry,
    project: &str,
    branch: &BranchKey,
    newer: &BatchId,
    dry_run: bool,
    now: DateTime<Utc>,
) -> ReapSummary {
    let mut summary = ReapSummary::default();
    let reaper = Reaper::new(codebuild, CONCURRENCY, &NoDeadline);
    let batches = match reaper
        .in_progress_batches(project, std::slice::from_ref(newer))
        .await
    {
        Ok(batches) => batches.unwrap_or_default(),
        Err(err) => {
            summary.project_failed(project, &err);
            return summary;
        }
    };
    summary.projects = 1;
    let dry_run = dry_run || entry.dry_run;
    let (to_stop, others): (Vec<_>, Vec<_>) = plan_project(&batches, &entry.reaper, now)
        .into_iter()
        .filter(|d| d.branch.as_ref() == Some(branch) && d.batch.id() != newer.id())
        .partition(|d| {
            matches!(
                d.action,
                ReapAction::Stop {
                    reason: StopReason::Superseded,
                    ..
                }
            )
        });
    for decision in &others {
        // Skips are recorded as usual; a stale stop of the branch that nothing supersedes is
        // left to the sweep (it is not counted here, so the sweep counts it once).
        if matches!(decision.action, ReapAction::Skip { .. }) {
            summary.record(project, decision, dry_run, Outcome::Skipped);
        }
    }
    summary.merge(reaper.act(project, to_stop, dry_run).await);
    summary
}
