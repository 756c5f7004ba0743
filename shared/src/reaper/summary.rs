//! [`ReapSummary`]: what one sweep (or one targeted supersede) saw and did — the invocation's
//! response — plus the one log line per decision and the EMF counts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{BranchKey, ReapAction, ReapDecision, SkipReason, StopReason};
use crate::metrics;
use crate::model::BatchId;
use crate::ports::CodeBuildError;

/// The function name, as the metrics' `Function` dimension.
pub const FUNCTION_NAME: &str = "batch-reaper";

/// Counts per stop reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByStopReason {
    /// Running longer than the project's `max_age`.
    pub stale: u32,
    /// A newer batch builds the same branch / PR.
    pub superseded: u32,
    /// Its pull request was closed. Only the targeted stop of a closed pull request counts
    /// these, so a sweep's response does not carry the field.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pull_request_closed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ByStopReason {
    fn add(&mut self, reason: StopReason) {
        match reason {
            StopReason::Stale => self.stale += 1,
            StopReason::Superseded => self.superseded += 1,
            StopReason::PullRequestClosed => self.pull_request_closed += 1,
        }
    }

    /// Both reasons together.
    pub fn total(&self) -> u32 {
        self.stale + self.superseded + self.pull_request_closed
    }

    fn merge(&mut self, other: ByStopReason) {
        self.stale += other.stale;
        self.superseded += other.superseded;
        self.pull_request_closed += other.pull_request_closed;
    }
}

/// A call that failed (after the SDK's own retries); the next sweep converges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReapError {
    /// The project.
    pub project: String,
    /// The batch, when the failed call was about one (a stop); `None` for a listing or a get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// What failed.
    pub message: String,
    /// True when the same call may succeed later (throttling, 5xx, transport).
    pub retryable: bool,
}

/// Work the deadline did not leave time for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeftOver {
    /// Projects not (completely) listed and fetched: nothing of them was decided.
    pub projects: Vec<String>,
    /// Batches decided to stop whose stop was never started.
    pub batches: Vec<String>,
}

impl LeftOver {
    /// True when nothing was left.
    pub fn is_empty(&self) -> bool {
        self.projects.is_empty() && self.batches.is_empty()
    }
}

/// What a sweep or a targeted supersede saw and did. Serialised as the invocation's response.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReapSummary {
    /// Projects whose in-progress batches were listed and fetched.
    pub projects: u32,
    /// Batches decided on.
    pub seen: u32,
    /// Batches CodeBuild stopped, by reason.
    pub stopped: ByStopReason,
    /// Batches decided to stop that had finished meanwhile (a benign outcome).
    pub already_finished: u32,
    /// Batches left alone, by reason (the reason's snake_case name).
    pub skipped: BTreeMap<String, u32>,
    /// Batches that would have been stopped, by reason (dry-run).
    pub dry_run: ByStopReason,
    /// Calls that failed.
    pub errors: Vec<ReapError>,
    /// What the deadline left for the next sweep.
    pub left: LeftOver,
    /// Build-minutes the stops saved: per stopped batch, its age × its builds still running.
    pub build_minutes_saved: f64,
}

/// What came of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Left alone by the plan.
    Skipped,
    /// A stop that was only reported (dry-run).
    DryRun,
    /// CodeBuild stopped the batch.
    Stopped,
    /// The batch had finished before the stop reached it.
    AlreadyFinished,
    /// The stop failed.
    Failed(CodeBuildError),
    /// The deadline came before the stop was started.
    Left,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::DryRun => "dry_run",
            Self::Stopped => "stopped",
            Self::AlreadyFinished => "already_finished",
            Self::Failed(_) => "error",
            Self::Left => "left",
        }
    }
}

/// How a `StopBuildBatch` answer is to be read: a batch already over (other than by our stop)
/// or `InvalidInput` / `NotFound` for a batch no longer running is benign, not an error.
pub fn stop_outcome(result: Result<crate::model::BuildBatch, CodeBuildError>) -> Outcome {
    use crate::model::BuildStatus;
    match result {
        // A finished batch is returned unchanged; only a STOPPED one is our stop's doing (or a
        // concurrent stop's, which saved the same minutes).
        Ok(batch) if batch.complete && batch.status != BuildStatus::Stopped => {
            Outcome::AlreadyFinished
        }
        Ok(_) => Outcome::Stopped,
        Err(CodeBuildError::InvalidInput { .. } | CodeBuildError::NotFound { .. }) => {
            Outcome::AlreadyFinished
        }
        Err(err) => Outcome::Failed(err),
    }
}

impl ReapSummary {
    /// Counts one decision's outcome (and logs it as one JSON line).
    pub fn record(
        &mut self,
        project: &str,
        decision: &ReapDecision,
        dry_run: bool,
        outcome: Outcome,
    ) {
        log_decision(project, decision, dry_run, &outcome);
        self.seen += 1;
        match (&decision.action, outcome) {
            (ReapAction::Skip { reason }, _) => {
                *self.skipped.entry(skip_reason_name(*reason)).or_default() += 1;
            }
            (ReapAction::Stop { reason, .. }, Outcome::DryRun) => self.dry_run.add(*reason),
            (ReapAction::Stop { reason, .. }, Outcome::Stopped) => {
                self.stopped.add(*reason);
                self.build_minutes_saved += minutes_saved(decision);
            }
            (ReapAction::Stop { .. }, Outcome::AlreadyFinished) => self.already_finished += 1,
            (ReapAction::Stop { .. }, Outcome::Failed(err)) => self.errors.push(ReapError {
                project: project.to_owned(),
                batch_id: Some(decision.batch.id()),
                retryable: err.is_retryable(),
                message: err.to_string(),
            }),
            (ReapAction::Stop { .. }, Outcome::Left) => self.left.batches.push(decision.batch.id()),
            // A stop decision is never "skipped"; counted as seen only.
            (ReapAction::Stop { .. }, Outcome::Skipped) => {}
        }
    }

    /// Records a failed listing or get of `project`.
    pub fn project_failed(&mut self, project: &str, err: &CodeBuildError) {
        tracing::warn!(
            action = "error",
            project,
            error = %err,
            retryable = err.is_retryable(),
            "batch-reaper could not read the project's batches"
        );
        self.errors.push(ReapError {
            project: project.to_owned(),
            batch_id: None,
            message: err.to_string(),
            retryable: err.is_retryable(),
        });
    }

    /// Adds another summary's counts (one project's, into the sweep's).
    pub fn merge(&mut self, other: ReapSummary) {
        self.projects += other.projects;
        self.seen += other.seen;
        self.stopped.merge(other.stopped);
        self.already_finished += other.already_finished;
        for (reason, n) in other.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        self.dry_run.merge(other.dry_run);
        self.errors.extend(other.errors);
        self.left.projects.extend(other.left.projects);
        self.left.batches.extend(other.left.batches);
        self.build_minutes_saved += other.build_minutes_saved;
    }

    /// Sorts the lists, so the response does not depend on the order concurrent work finished.
    pub fn sort(&mut self) {
        self.errors.sort_by(|a, b| {
            (&a.project, &a.batch_id, &a.message).cmp(&(&b.project, &b.batch_id, &b.message))
        });
        self.left.projects.sort();
        self.left.batches.sort();
    }

    /// Skips counted, all reasons together.
    pub fn skipped_total(&self) -> u32 {
        self.skipped.values().sum()
    }

    /// The EMF documents of this summary: `Stopped` per `Reason`, then `Skipped`, `DryRun` and
    /// `BuildMinutesSaved`. One document per invocation rather than per decision: a sweep
    /// decides on thousands of batches, and CloudWatch sums the values either way.
    pub fn emf_documents(&self, function: &str, at: DateTime<Utc>) -> Vec<Value> {
        let stopped = |reason: &str, n: u32| {
            metrics::emf_document(
                function,
                at,
                Some(("Reason", reason)),
                &[("Stopped", "Count", f64::from(n))],
            )
        };
        let mut documents = vec![
            stopped("stale", self.stopped.stale),
            stopped("superseded", self.stopped.superseded),
            metrics::emf_document(
                function,
                at,
                None,
                &[
                    ("Skipped", "Count", f64::from(self.skipped_total())),
                    ("DryRun", "Count", f64::from(self.dry_run.total())),
                    ("BuildMinutesSaved", "None", self.build_minutes_saved),
                ],
            ),
        ];
        // Last and only when counted: a sweep never stops for this reason, and the documents
        // before keep their places.
        if self.stopped.pull_request_closed > 0 {
            documents.push(stopped(
                "pull_request_closed",
                self.stopped.pull_request_closed,
            ));
        }
        documents
    }

    /// Prints [`ReapSummary::emf_documents`] to stdout, one line each.
    pub fn emit_metrics(&self, function: &str, at: DateTime<Utc>) {
        for document in self.emf_documents(function, at) {
            println!("{document}");
        }
    }
}

/// Build-minutes a stop of this batch saves: its age × its builds still running.
fn minutes_saved(decision: &ReapDecision) -> f64 {
    let age = decision.age.unwrap_or(Duration::ZERO);
    age.as_secs_f64() / 60.0 * f64::from(decision.running_builds)
}

/// The reason's snake_case name, as serialised (so a reason added later needs no change here).
fn skip_reason_name(reason: SkipReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}

fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Stale => "stale",
        StopReason::Superseded => "superseded",
        StopReason::PullRequestClosed => "pull_request_closed",
    }
}

fn branch_text(branch: &BranchKey) -> String {
    match branch {
        BranchKey::Branch(name) => format!("branch:{name}"),
        BranchKey::PullRequest(number) => format!("pr:{number}"),
    }
}

/// The one JSON log line per decision, with the conventions' fixed field names.
fn log_decision(project: &str, decision: &ReapDecision, dry_run: bool, outcome: &Outcome) {
    let (action, reason, superseded_by): (&str, String, Option<&BatchId>) = match &decision.action {
        ReapAction::Skip { reason } => ("skip", skip_reason_name(*reason), None),
        ReapAction::Stop {
            reason,
            superseded_by,
        } => (
            if dry_run { "dry_run" } else { "stop" },
            stop_reason_name(*reason).to_owned(),
            superseded_by.as_ref(),
        ),
    };
    let error = match outcome {
        Outcome::Failed(err) => Some(err.to_string()),
        _ => None,
    };
    tracing::info!(
        action,
        reason = reason.as_str(),
        project,
        batch_id = decision.batch.id().as_str(),
        branch = decision.branch.as_ref().map(branch_text).as_deref(),
        superseded_by = superseded_by.map(BatchId::id).as_deref(),
        dry_run,
        outcome = outcome.as_str(),
        age_seconds = decision.age.map(|a| a.as_secs()),
        running_builds = decision.running_builds,
        error = error.as_deref(),
        "batch stop decision"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn decision(action: ReapAction, age_min: u64, running: u32) -> ReapDecision {
        ReapDecision {
            batch: BatchId::parse("web:0b0e7a9e-1111-4a4a-9c9c-0123456789ab").unwrap(),
            action,
            branch: Some(BranchKey::Branch("feature".into())),
            age: Some(Duration::from_secs(age_min * 60)),
            running_builds: running,
        }
    }

    fn stop(reason: StopReason) -> ReapAction {
        ReapAction::Stop {
            reason,
            superseded_by: None,
        }
    }

    #[test]
    fn minutes_saved_count_only_accepted_stops() {
        let mut s = ReapSummary::default();
        s.record(
            "web",
            &decision(stop(StopReason::Stale), 30, 2),
            false,
            Outcome::Stopped,
        );
        s.record(
            "web",
            &decision(stop(StopReason::Stale), 30, 2),
            false,
            Outcome::AlreadyFinished,
        );
        s.record(
            "web",
            &decision(stop(StopReason::Superseded), 10, 3),
            true,
            Outcome::DryRun,
        );
        assert_eq!(s.build_minutes_saved, 60.0);
        assert_eq!(
            s.stopped,
            ByStopReason {
                stale: 1,
                superseded: 0,
                pull_request_closed: 0,
            }
        );
        assert_eq!(s.already_finished, 1);
        assert_eq!(
            s.dry_run,
            ByStopReason {
                stale: 0,
                superseded: 1,
                pull_request_closed: 0,
            }
        );
        assert_eq!(s.seen, 3);
    }

    #[test]
    fn skips_are_keyed_by_their_snake_case_reason() {
        let mut s = ReapSummary::default();
        let skip = ReapAction::Skip {
            reason: SkipReason::ProtectedBranch,
        };
        s.record("web", &decision(skip, 1, 1), false, Outcome::Skipped);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["skipped"]["protected_branch"], json!(1));
        assert_eq!(json["stopped"], json!({"stale": 0, "superseded": 0}));
    }

    #[test]
    fn stop_answers_are_read_benignly_when_the_batch_is_over() {
        let invalid = CodeBuildError::InvalidInput {
            operation: "StopBuildBatch",
            message: "not in progress".into(),
        };
        assert_eq!(stop_outcome(Err(invalid)), Outcome::AlreadyFinished);
        let throttled = CodeBuildError::Throttled {
            operation: "StopBuildBatch",
            message: "Rate exceeded".into(),
        };
        assert_eq!(
            stop_outcome(Err(throttled.clone())),
            Outcome::Failed(throttled)
        );
    }

    #[test]
    fn emf_has_a_reason_dimension_for_stops() {
        let mut s = ReapSummary::default();
        s.record(
            "web",
            &decision(stop(StopReason::Superseded), 6, 1),
            false,
            Outcome::Stopped,
        );
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let docs = s.emf_documents("batch-reaper", at);
        assert_eq!(docs[1]["Reason"], json!("superseded"));
        assert_eq!(docs[1]["Stopped"], json!(1));
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason"]])
        );
        assert_eq!(docs[2]["BuildMinutesSaved"], json!(6));
        assert_eq!(
            docs[2]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            json!("CodeBuildAutopilot")
        );
    }
}
