//! A pull / merge request was merged or closed: its in-progress batches in the project build
//! code nobody will merge as it is, so they are stopped (reason `pull_request_closed`).
//!
//! The reaper's plan decides first, so its "never" rules hold here too: a batch that is no
//! longer in progress, one that is finishing, and one started by an excluded initiator are left
//! alone. Every other batch of that pull request is stopped, whatever the plan would have said
//! about staleness or superseding. The reaper's listing and stopping do the calls.

use chrono::{DateTime, Utc};

use crate::config::ProjectEntry;
use crate::ports::CodeBuild;
use crate::reaper::settings::DEFAULT_CONCURRENCY;
use crate::reaper::sweep::{NoDeadline, Reaper};
use crate::reaper::{
    BranchKey, ReapAction, ReapDecision, ReapSummary, SkipReason, StopReason, plan_project,
};

/// Stops every in-progress batch of `project` whose [`branch_of`](crate::reaper::branch_of) is
/// pull request `pull_request`, except those the reaper never stops (finishing, excluded
/// initiator). Nothing is stopped when `dry_run` or the entry's `dry_run` is set. Only that
/// pull request's batches are counted and logged; failed calls are in the summary.
pub async fn stop_pull_request_batches<C: CodeBuild>(
    codebuild: &C,
    entry: &ProjectEntry,
    project: &str,
    pull_request: &str,
    dry_run: bool,
    now: DateTime<Utc>,
) -> ReapSummary {
    let mut summary = ReapSummary::default();
    let reaper = Reaper::new(codebuild, DEFAULT_CONCURRENCY, &NoDeadline);
    let batches = match reaper.in_progress_batches(project, &[]).await {
        Ok(batches) => batches.unwrap_or_default(),
        Err(err) => {
            summary.project_failed(project, &err);
            return summary;
        }
    };
    summary.projects = 1;
    let closed = BranchKey::PullRequest(pull_request.to_owned());
    let decisions: Vec<ReapDecision> = plan_project(&batches, &entry.reaper, now)
        .into_iter()
        .filter(|decision| decision.branch.as_ref() == Some(&closed))
        .map(closing)
        .collect();
    summary.merge(
        reaper
            .act(project, decisions, dry_run || entry.dry_run)
            .await,
    );
    summary
}

/// The plan's decision for a batch of the closed pull request, turned into a stop unless one of
/// the rules that never stop a batch made it.
fn closing(decision: ReapDecision) -> ReapDecision {
    let never = matches!(
        decision.action,
        ReapAction::Skip {
            reason: SkipReason::NotInProgress
                | SkipReason::Finishing
                | SkipReason::ExcludedInitiator
        }
    );
    if never {
        return decision;
    }
    ReapDecision {
        action: ReapAction::Stop {
            reason: StopReason::PullRequestClosed,
            superseded_by: None,
        },
        ..decision
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use codebuild_local::control::{SeedBatch, SeedBatchBuild};
    use codebuild_local::model::Status;

    use super::*;
    use crate::config::ProjectPattern;
    use crate::model::BuildStatus;
    use crate::start::mechanism::tests::{Emulator, entry, running};

    /// Seeds `web` and `api` with batches of PR 7, PR 8 and a branch; returns them by role.
    struct Scene {
        pr7_env: crate::model::BatchId,
        pr7_ref: crate::model::BatchId,
        pr7_finishing: crate::model::BatchId,
        pr7_excluded: crate::model::BatchId,
        pr8: crate::model::BatchId,
        branch: crate::model::BatchId,
        api_pr7: crate::model::BatchId,
    }

    async fn scene(emu: &Emulator) -> Scene {
        let finishing = SeedBatch {
            current_phase: Some("COMBINE_ARTIFACTS".into()),
            builds: Some(vec![SeedBatchBuild {
                identifier: None,
                build_status: Some(Status::Succeeded),
            }]),
            ..running("web", "AUTOPILOT_PR", "7")
        };
        let excluded = SeedBatch {
            initiator: Some("release-bot".into()),
            ..running("web", "AUTOPILOT_PR", "7")
        };
        let by_ref = SeedBatch {
            project_name: "web".into(),
            build_batch_status: Some(Status::InProgress),
            source_version: Some("refs/pull/7/head".into()),
            ..SeedBatch::default()
        };
        Scene {
            pr7_env: emu.seed(running("web", "AUTOPILOT_PR", "7")).await,
            pr7_ref: emu.seed(by_ref).await,
            pr7_finishing: emu.seed(finishing).await,
            pr7_excluded: emu.seed(excluded).await,
            pr8: emu.seed(running("web", "AUTOPILOT_PR", "8")).await,
            branch: emu.seed(running("web", "AUTOPILOT_BRANCH", "7")).await,
            api_pr7: emu.seed(running("api", "AUTOPILOT_PR", "7")).await,
        }
    }

    fn web() -> ProjectEntry {
        let mut web = entry("web");
        web.reaper.excluded_initiators = vec![ProjectPattern::new("release-*").unwrap()];
        web
    }

    #[tokio::test]
    async fn stops_only_that_pull_requests_batches_in_that_project() {
        let emu = Emulator::start().await;
        let s = scene(&emu).await;

        let summary =
            stop_pull_request_batches(&emu.adapter, &web(), "web", "7", false, Utc::now()).await;

        assert_eq!(summary.stopped.pull_request_closed, 2, "{summary:?}");
        assert_eq!(summary.stopped.total(), 2);
        assert_eq!(summary.skipped.get("finishing"), Some(&1));
        assert_eq!(summary.skipped.get("excluded_initiator"), Some(&1));
        assert_eq!(summary.seen, 4, "only PR 7's batches are counted");
        assert!(summary.errors.is_empty());
        for stopped in [&s.pr7_env, &s.pr7_ref] {
            assert_eq!(emu.status_of(stopped).await, BuildStatus::Stopped);
        }
        for kept in [
            &s.pr7_finishing,
            &s.pr7_excluded,
            &s.pr8,
            &s.branch,
            &s.api_pr7,
        ] {
            assert_eq!(emu.status_of(kept).await, BuildStatus::InProgress, "{kept}");
        }
        emu.server.shutdown().await;
    }

    #[tokio::test]
    async fn a_dry_run_only_counts() {
        let emu = Emulator::start().await;
        let s = scene(&emu).await;

        let summary =
            stop_pull_request_batches(&emu.adapter, &web(), "web", "7", true, Utc::now()).await;

        assert_eq!(summary.dry_run.pull_request_closed, 2);
        assert_eq!(summary.stopped.total(), 0);
        assert_eq!(emu.status_of(&s.pr7_env).await, BuildStatus::InProgress);
        emu.server.shutdown().await;
    }

    #[tokio::test]
    async fn an_unknown_project_is_an_error_in_the_summary() {
        let emu = Emulator::start().await;

        let summary =
            stop_pull_request_batches(&emu.adapter, &web(), "nope", "7", false, Utc::now()).await;

        assert_eq!(summary.errors.len(), 1);
        assert_eq!(summary.projects, 0);
        emu.server.shutdown().await;
    }
}
