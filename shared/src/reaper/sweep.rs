//! The full sweep: every configured project's in-progress batches listed, fetched, planned
//! ([`super::plan_project`]) and stopped, with bounded concurrency and a deadline.
//!
//! Calls made, and no others: `ListProjects` (all pages, only when some entry is a glob), per
//! project `ListBuildBatchesForProject` (IN_PROGRESS, all pages), `BatchGetBuildBatches` per 100
//! ids, and one `StopBuildBatch` per batch to stop. A failed call is recorded in the summary and
//! the sweep goes on: the next scheduled sweep converges, so the invocation itself succeeds.
//! Only what failed retryably is asked again within the run: a `ListProjects` page, and once a
//! project's whole reading, after the other projects.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::settings::ReaperSettings;
use super::summary::{FUNCTION_NAME, Outcome, ReapSummary, stop_outcome};
use super::{ReapAction, ReapDecision, plan_project};
use crate::config::{Config, ConfigCache, ConfigLoadError};
use crate::model::{BatchId, BuildBatch, BuildStatus};
use crate::ports::{
    BATCH_GET_LIMIT, CodeBuild, CodeBuildError, ConfigSource, ListBuildBatchesRequest,
};

/// The longest margin kept before Lambda's deadline.
const MAX_MARGIN: Duration = Duration::from_secs(5);

/// Why an invocation could not sweep at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReaperError {
    /// No configuration could be loaded.
    #[error("no configuration: {0}")]
    Config(ConfigLoadError),
}

impl ReaperError {
    /// True when invoking again may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config(err) => err.is_retryable(),
        }
    }
}

/// Tells the sweep when to stop starting new work.
pub trait Deadline: Sync {
    /// True once no new call should be started.
    fn is_near(&self) -> bool;

    /// How long calls in flight may still take before they are abandoned; `None`: no limit.
    fn cutoff(&self) -> Option<Duration> {
        None
    }
}

/// A deadline that never comes (the targeted supersede, which handles one branch).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeadline;

impl Deadline for NoDeadline {
    fn is_near(&self) -> bool {
        false
    }
}

/// Lambda's deadline less a margin: no call is started after a tenth of the time the invocation
/// had is left (at most [`MAX_MARGIN`]), and a call still in flight is abandoned just before
/// the deadline itself ([`CUTOFF_MARGIN`] before it), so the summary is always returned.
#[derive(Debug, Clone, Copy)]
pub struct TimeLeft {
    stop_starting_at: Instant,
    abandon_at: Instant,
}

/// Kept between abandoning calls in flight and Lambda's deadline, to serialise the summary.
const CUTOFF_MARGIN: Duration = Duration::from_millis(500);

impl TimeLeft {
    /// From the invocation's deadline, measured now.
    pub fn until(deadline: SystemTime) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let margin = (left / 10).min(MAX_MARGIN);
        let start = Instant::now();
        Self {
            stop_starting_at: start + left.saturating_sub(margin),
            abandon_at: start + left.saturating_sub(CUTOFF_MARGIN.min(margin)),
        }
    }
}

impl Deadline for TimeLeft {
    fn is_near(&self) -> bool {
        Instant::now() >= self.stop_starting_at
    }

    fn cutoff(&self) -> Option<Duration> {
        Some(self.abandon_at.saturating_duration_since(Instant::now()))
    }
}

/// What one sweep runs with.
#[derive(Debug, Clone, Copy)]
pub struct SweepContext<'a> {
    /// The configuration in force.
    pub config: &'a Config,
    /// Report only, for every project (the deployment's dry-run).
    pub dry_run: bool,
    /// CodeBuild calls in flight at once (at least 1).
    pub concurrency: usize,
    /// The current time (ages are measured from it).
    pub now: DateTime<Utc>,
}

/// One invocation, as the function's `main` runs it: the configuration from `cache`, the clock,
/// [`sweep`], the EMF counts. Only a missing configuration is an error; failed calls are in the
/// summary.
pub async fn invoke<S: ConfigSource, C: CodeBuild>(
    codebuild: &C,
    cache: &ConfigCache<S>,
    settings: &ReaperSettings,
    deadline: SystemTime,
) -> Result<ReapSummary, ReaperError> {
    let deadline = TimeLeft::until(deadline);
    let config = cache.current().await.map_err(|err| {
        tracing::warn!(action = "reject", error = %err, retryable = err.is_retryable(),
            "batch-reaper has no configuration");
        ReaperError::Config(err)
    })?;
    let context = SweepContext {
        config: &config,
        dry_run: settings.dry_run,
        concurrency: settings.concurrency,
        now: Utc::now(),
    };
    let summary = sweep(codebuild, &context, &deadline).await;
    summary.emit_metrics(FUNCTION_NAME, context.now);
    tracing::info!(
        projects = summary.projects,
        seen = summary.seen,
        stopped_stale = summary.stopped.stale,
        stopped_superseded = summary.stopped.superseded,
        already_finished = summary.already_finished,
        skipped = summary.skipped_total(),
        dry_run = summary.dry_run.total(),
        errors = summary.errors.len(),
        left_projects = summary.left.projects.len(),
        left_batches = summary.left.batches.len(),
        build_minutes_saved = summary.build_minutes_saved,
        "batch-reaper sweep done"
    );
    Ok(summary)
}

/// Sweeps every configured project once. Never fails: what failed is in the summary's `errors`,
/// what the deadline left in its `left`.
///
/// A project whose listing or batch-get failed retryably (throttled, most often) is swept once
/// more after all the others, while the deadline allows: under heavy throttling one failed page
/// would otherwise leave all of that project's batches for the next sweep. Without failures no
/// call is made twice.
pub async fn sweep<C: CodeBuild, D: Deadline>(
    codebuild: &C,
    context: &SweepContext<'_>,
    deadline: &D,
) -> ReapSummary {
    let reaper = Reaper::new(codebuild, context.concurrency, deadline);
    let mut summary = ReapSummary::default();
    let projects = match resolve_projects(&reaper, context.config).await {
        Ok(projects) => projects,
        Err((projects, err)) => {
            // The exact names still get swept; the globs wait for the next sweep.
            summary.project_failed("*", &err);
            projects
        }
    };
    let mut retry_later = Vec::new();
    for outcome in sweep_projects(&reaper, context, projects).await {
        match outcome {
            Ok(one) => summary.merge(one),
            Err(failed) if failed.error.is_retryable() => {
                tracing::info!(action = "retry", project = %failed.project, error = %failed.error,
                    "batch-reaper will read the project again after the others");
                retry_later.push(failed.project);
            }
            Err(failed) => summary.project_failed(&failed.project, &failed.error),
        }
    }
    for outcome in sweep_projects(&reaper, context, retry_later).await {
        match outcome {
            Ok(one) => summary.merge(one),
            Err(failed) => summary.project_failed(&failed.project, &failed.error),
        }
    }
    summary.sort();
    summary
}

/// Sweeps `projects`, at most the reaper's concurrency side by side.
async fn sweep_projects<C: CodeBuild, D: Deadline>(
    reaper: &Reaper<'_, C, D>,
    context: &SweepContext<'_>,
    projects: Vec<String>,
) -> Vec<Result<ReapSummary, ProjectFailure>> {
    stream::iter(projects)
        .map(|project| sweep_project(reaper, context, project))
        .buffer_unordered(reaper.concurrency)
        .collect()
        .await
}

/// A project whose batches could not be read: nothing of it was decided or stopped.
struct ProjectFailure {
    project: String,
    error: CodeBuildError,
}

/// Tries per `ListProjects` page when it fails retryably (each try is itself the SDK's retries
/// with backoff). Bounded, not only by the deadline: while it is retried nothing is swept, and a
/// lasting failure must not use up the time the exact-name entries need.
const LIST_PROJECTS_TRIES: u32 = 3;

/// The projects to sweep, each once: exact entries by name (no call), glob entries through
/// `ListProjects` (only when some entry is a glob). A project whose first matching entry can
/// stop nothing (`max_age` unset and supersede off) is not swept at all. A page that failed
/// retryably is asked again (at most [`LIST_PROJECTS_TRIES`] times, not past the deadline): when
/// every entry is a glob, a failed listing means a sweep that does nothing. On a listing that
/// failed for good, the exact names come back with the error.
async fn resolve_projects<C: CodeBuild, D: Deadline>(
    reaper: &Reaper<'_, C, D>,
    config: &Config,
) -> Result<Vec<String>, (Vec<String>, CodeBuildError)> {
    let acts = |name: &str| config.entry_for(name).is_some_and(|e| e.reaper.can_stop());
    let mut names: BTreeSet<String> = config
        .projects
        .iter()
        .filter(|e| e.pattern.is_exact())
        .map(|e| e.pattern.as_str().to_owned())
        .filter(|name| acts(name))
        .collect();
    if config.projects.iter().all(|e| e.pattern.is_exact()) {
        return Ok(names.into_iter().collect());
    }
    let mut next_token: Option<String> = None;
    let mut tries = 0;
    loop {
        tries += 1;
        let page = reaper
            .call(
                "ListProjects",
                reaper.codebuild.list_projects(next_token.as_deref()),
            )
            .await;
        match page {
            Ok(page) => {
                tries = 0;
                names.extend(page.items.into_iter().filter(|name| acts(name)));
                match page.next_token {
                    Some(token) => next_token = Some(token),
                    None => return Ok(names.into_iter().collect()),
                }
            }
            Err(err)
                if err.is_retryable()
                    && tries < LIST_PROJECTS_TRIES
                    && !reaper.deadline.is_near() =>
            {
                tracing::info!(action = "retry", project = "*", error = %err, attempt = tries,
                    "batch-reaper lists the projects again");
            }
            Err(err) => return Err((names.into_iter().collect(), err)),
        }
    }
}

/// Reads, plans and acts on one project. `Err` when its batches could not be read.
async fn sweep_project<C: CodeBuild, D: Deadline>(
    reaper: &Reaper<'_, C, D>,
    context: &SweepContext<'_>,
    project: String,
) -> Result<ReapSummary, ProjectFailure> {
    let mut summary = ReapSummary::default();
    let Some(entry) = context.config.entry_for(&project) else {
        return Ok(summary);
    };
    let batches = match reaper.in_progress_batches(&project, &[]).await {
        Ok(Some(batches)) => batches,
        Ok(None) => {
            summary.left.projects.push(project);
            return Ok(summary);
        }
        Err(error) => return Err(ProjectFailure { project, error }),
    };
    summary.projects = 1;
    let decisions = plan_project(&batches, &entry.reaper, context.now);
    let dry_run = context.dry_run || entry.dry_run;
    summary.merge(reaper.act(&project, decisions, dry_run).await);
    Ok(summary)
}

/// The calls a sweep and a targeted supersede share, under one bound on calls in flight.
pub(crate) struct Reaper<'a, C, D> {
    pub(super) codebuild: &'a C,
    concurrency: usize,
    /// Every CodeBuild call holds a permit, so projects swept side by side and their stops
    /// together never have more than `concurrency` calls in flight.
    in_flight: Semaphore,
    deadline: &'a D,
}

impl<'a, C: CodeBuild, D: Deadline> Reaper<'a, C, D> {
    pub(crate) fn new(codebuild: &'a C, concurrency: usize, deadline: &'a D) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            codebuild,
            concurrency,
            in_flight: Semaphore::new(concurrency),
            deadline,
        }
    }

    /// Makes one call under the bound on calls in flight, abandoned when the deadline's
    /// cutoff comes (the SDK's retries with backoff can outlast the margin; an abandoned stop
    /// may or may not have been made, which the next sweep finds out).
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, CodeBuildError>>,
    ) -> Result<T, CodeBuildError> {
        let bounded = async {
            // The semaphore is never closed; were it, calls would go on unbounded rather than
            // stop.
            let _permit: Option<SemaphorePermit<'_>> = self.in_flight.acquire().await.ok();
            call.await
        };
        match self.deadline.cutoff() {
            None => bounded.await,
            Some(left) => tokio::time::timeout(left, bounded)
                .await
                .unwrap_or_else(|_| {
                    Err(CodeBuildError::Transport {
                        operation,
                        message: "abandoned at the invocation's deadline".to_owned(),
                    })
                }),
        }
    }

    /// The project's in-progress batches (every listing page, then gets per 100 ids), plus
    /// `also` when the listing did not return them. `None` when the deadline came first.
    pub(crate) async fn in_progress_batches(
        &self,
        project: &str,
        also: &[BatchId],
    ) -> Result<Option<Vec<BuildBatch>>, CodeBuildError> {
        let mut ids: Vec<BatchId> = Vec::new();
        let mut next_token = None;
        loop {
            if self.deadline.is_near() {
                return Ok(None);
            }
            let request = ListBuildBatchesRequest {
                project: project.to_owned(),
                status: Some(BuildStatus::InProgress),
                next_token,
            };
            let page = self
                .call(
                    "ListBuildBatchesForProject",
                    self.codebuild.list_build_batches_for_project(&request),
                )
                .await?;
            ids.extend(page.items);
            next_token = page.next_token;
            if next_token.is_none() {
                break;
            }
        }
        for extra in also {
            if !ids.iter().any(|id| id.id() == extra.id()) {
                ids.push(extra.clone());
            }
        }
        let mut batches = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            if self.deadline.is_near() {
                return Ok(None);
            }
            let lookup = self
                .call(
                    "BatchGetBuildBatches",
                    self.codebuild.batch_get_build_batches(chunk),
                )
                .await?;
            // Ids not found were deleted meanwhile: nothing to stop.
            batches.extend(lookup.batches);
        }
        Ok(Some(batches))
    }

    /// One `StopBuildBatch`, its answer read as an [`Outcome`].
    async fn stop(&self, batch: &BatchId) -> Outcome {
        stop_outcome(
            self.call("StopBuildBatch", self.codebuild.stop_build_batch(batch))
                .await,
        )
    }

    /// Acts on the decisions: skips and dry-runs are only recorded; each stop is made (at most
    /// `concurrency` at once) unless the deadline is near, then it is left for the next sweep.
    pub(crate) async fn act(
        &self,
        project: &str,
        decisions: Vec<ReapDecision>,
        dry_run: bool,
    ) -> ReapSummary {
        let mut summary = ReapSummary::default();
        let (stops, skips): (Vec<_>, Vec<_>) = decisions
            .into_iter()
            .partition(|d| matches!(d.action, ReapAction::Stop { .. }));
        for decision in &skips {
            summary.record(project, decision, dry_run, Outcome::Skipped);
        }
        if dry_run {
            for decision in &stops {
                summary.record(project, decision, true, Outcome::DryRun);
            }
            return summary;
        }
        let outcomes: Vec<(ReapDecision, Outcome)> = stream::iter(stops)
            .map(|decision| async move {
                // Runs when `buffer_unordered` starts this stop, not when the list was made.
                if self.deadline.is_near() {
                    return (decision, Outcome::Left);
                }
                let mut outcome = self.stop(&decision.batch).await;
                // One more round of the SDK's attempts for a stop that failed retryably: under
                // sustained throttling a few stops in a thousand use up every attempt, and one
                // more round here saves them a whole sweep's wait. StopBuildBatch on a batch the
                // first round did stop after all is a benign outcome.
                if matches!(&outcome, Outcome::Failed(err) if err.is_retryable())
                    && !self.deadline.is_near()
                {
                    tracing::info!(action = "retry", project = %project, batch_id = %decision.batch,
                        "batch-reaper tries a failed stop once more");
                    outcome = self.stop(&decision.batch).await;
                }
                (decision, outcome)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (decision, outcome) in outcomes {
            summary.record(project, &decision, false, outcome);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn time_left_is_near_only_inside_the_margin() {
        let far = TimeLeft::until(SystemTime::now() + Duration::from_secs(3600));
        assert!(!far.is_near());
        // An hour less at most 5 s of margin, less 0.5 s: far more than a minute either way.
        assert!(far.cutoff().unwrap() > Duration::from_secs(3000));

        let past = TimeLeft::until(SystemTime::now() - Duration::from_secs(1));
        assert!(past.is_near());
        assert_eq!(past.cutoff(), Some(Duration::ZERO));
    }
}
