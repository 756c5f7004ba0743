//! `autopilot decide <batches.json>`: what the batch reaper's sweep would do with build batches,
//! and why, without calling AWS.
//!
//! The file holds `BatchGetBuildBatches` output (`{"buildBatches": [...]}`) or one batch in that
//! shape. The batches are grouped per project as the sweep groups them and planned by the
//! crate's own [`plan_project`]; only what needs AWS is assumed: the listing (only the batches in
//! the file exist) and the function's own dry-run switch (off).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use autopilot::config::{Config, ReaperPolicy};
use autopilot::model::{
    BatchGroup, BatchId, BuildBatch, BuildId, BuildStatus, EnvironmentVariable,
};
use autopilot::reaper::{BranchKey, ReapAction, plan_project};
// The SDK's date-time type parses RFC 3339 and epoch seconds; the CLI has no chrono of its own.
use aws_sdk_sqs::primitives::{DateTime as SmithyTime, DateTimeFormat};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CliError;

/// The reason for a batch of a project no `[[projects]]` entry covers (the sweep never lists it).
const PROJECT_NOT_CONFIGURED: &str = "project_not_configured";
/// The reason for a batch of a project whose policy can stop nothing (`max_age_minutes` unset
/// and `supersede = false`): the sweep does not read such a project at all.
const REAPER_OFF: &str = "reaper_off";
/// The plan's own reason for a batch that is not running; here the sweep never even sees it,
/// since it lists `IN_PROGRESS` batches only.
const NOT_IN_PROGRESS: &str = "not_in_progress";

/// The reaper's decision for one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchExplanation {
    /// The batch (`project:uuid`).
    pub id: String,
    /// The project.
    pub project: String,
    /// The batch's status as the file gives it.
    pub status: String,
    /// `stop` or `skip`.
    pub would: &'static str,
    /// Why, machine-readable: the plan's reason (`stale`, `superseded`, `protected_branch`,
    /// `branch_unknown`, `current`, ...) or `project_not_configured` / `reaper_off`.
    pub reason: String,
    /// The branch or pull request the batch builds, when known.
    pub branch: Option<BranchKey>,
    /// Minutes since the batch started, when it has a start time.
    pub age_minutes: Option<u64>,
    /// The newer batch of the same branch, for a superseded batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// The project's entry says dry-run: the stop would only be logged.
    pub dry_run: bool,
}

/// The answer `decide` prints for build batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReaperExplanation {
    /// The moment decided at (RFC 3339).
    pub now: String,
    /// One decision per batch, in the file's order.
    pub batches: Vec<BatchExplanation>,
    /// What was assumed in place of an AWS call, for a person.
    pub assumptions: Vec<String>,
}

impl ReaperExplanation {
    /// One line for a person.
    pub fn summary(&self) -> String {
        let stops: Vec<String> = self
            .batches
            .iter()
            .filter(|b| b.would == "stop")
            .map(|b| {
                let dry = if b.dry_run {
                    ", dry-run: only logged"
                } else {
                    ""
                };
                match &b.superseded_by {
                    Some(newer) => format!("{} (superseded by {newer}{dry})", b.id),
                    None => format!("{} ({}{dry})", b.id, b.reason),
                }
            })
            .collect();
        let mut line = format!(
            "would stop {} of {} batches",
            stops.len(),
            self.batches.len()
        );
        if !stops.is_empty() {
            line.push_str(": ");
            line.push_str(&stops.join(", "));
        }
        for assumption in &self.assumptions {
            line.push_str("; ");
            line.push_str(assumption);
        }
        line
    }
}

/// The batches of the file, or `None` when it holds no batch shape (then it is an event).
/// A file that is not JSON is `None` too, so the event path reports it as it always has.
pub fn read_batches(path: &Path, text: &str) -> Result<Option<Vec<BuildBatch>>, CliError> {
    let bad = |message: String| CliError::BadEvent {
        path: path.to_owned(),
        message,
    };
    let Ok(raw) = serde_json::from_str::<Value>(text) else {
        return Ok(None);
    };
    let items: Vec<Value> = match raw.get("buildBatches") {
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad("`buildBatches` is not a list".into())),
        None if is_batch_shape(&raw) => vec![raw],
        None => return Ok(None),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let raw: RawBatch = serde_json::from_value(item)
                .map_err(|err| bad(format!("unreadable build batch {index}: {err}")))?;
            raw.into_batch()
                .map_err(|message| bad(format!("build batch {index}: {message}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A single `BuildBatch` object: only batches carry a batch status or number.
fn is_batch_shape(raw: &Value) -> bool {
    raw.get("buildBatchStatus").is_some() || raw.get("buildBatchNumber").is_some()
}

/// Parses `--now`: RFC 3339, with `Z` or an offset.
pub fn parse_now(text: &str) -> Result<SystemTime, CliError> {
    parse_time(&Value::String(text.to_owned()))
        .map_err(|message| CliError::Usage(format!("--now {text:?}: {message}")))
}

/// What the reaper's sweep would do with `batches` at `now` under `config` (`None`: the default
/// reaper policy for every project).
pub fn explain(
    batches: &[BuildBatch],
    config: Option<&Config>,
    now: SystemTime,
) -> ReaperExplanation {
    let default_policy = ReaperPolicy::default();
    let mut assumptions = vec![
        "only the batches in the file are considered: a newer batch of the branch not in the file is not seen"
            .to_owned(),
        "the function's AUTOPILOT_DRY_RUN switch is not known: assumed off".to_owned(),
    ];
    if config.is_none() {
        assumptions.push(
            "no --config: the default reaper policy applies (no max age, supersede on, main, master and release/* protected)"
                .into(),
        );
    }
    if batches.iter().any(|b| b.status != BuildStatus::InProgress) {
        assumptions.push(
            "the sweep lists IN_PROGRESS batches only: the others are never seen and do not supersede"
                .into(),
        );
    }

    // Per project, as the sweep reads them: its IN_PROGRESS batches, planned together.
    let mut projects: BTreeMap<&str, Vec<BuildBatch>> = BTreeMap::new();
    for batch in batches {
        let listed = projects.entry(batch.id.project()).or_default();
        if batch.status == BuildStatus::InProgress {
            listed.push(batch.clone());
        }
    }
    let mut decided: BTreeMap<String, BatchExplanation> = BTreeMap::new();
    for (project, listed) in &projects {
        let (policy, dry_run) = match config {
            None => (&default_policy, false),
            Some(config) => match config.entry_for(project) {
                Some(entry) => (&entry.reaper, entry.dry_run),
                None => continue,
            },
        };
        if !policy.can_stop() {
            continue;
        }
        for decision in plan_project(listed, policy, now.into()) {
            let (would, reason, superseded_by) = match decision.action {
                ReapAction::Stop {
                    reason,
                    superseded_by,
                } => ("stop", reason_text(&reason), superseded_by),
                ReapAction::Skip { reason } => ("skip", reason_text(&reason), None),
            };
            decided.insert(
                decision.batch.id(),
                BatchExplanation {
                    id: decision.batch.id(),
                    project: (*project).to_owned(),
                    status: String::new(),
                    would,
                    reason,
                    branch: decision.branch,
                    age_minutes: decision.age.map(minutes),
                    superseded_by: superseded_by.map(|id| id.id()),
                    dry_run,
                },
            );
        }
    }

    let batches = batches
        .iter()
        .map(|batch| {
            let mut explanation = match decided.get(&batch.id.id()) {
                Some(planned) if batch.status == BuildStatus::InProgress => planned.clone(),
                _ => unplanned(batch, config, now),
            };
            explanation.status = batch.status.as_str().to_owned();
            explanation
        })
        .collect();
    ReaperExplanation {
        now: SmithyTime::from(now)
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_default(),
        batches,
        assumptions,
    }
}

/// A batch the sweep never plans: its project is not swept, or it is not listed as running.
fn unplanned(batch: &BuildBatch, config: Option<&Config>, now: SystemTime) -> BatchExplanation {
    let project = batch.id.project();
    let entry = config.map(|c| c.entry_for(project));
    let reason = match entry {
        Some(None) => PROJECT_NOT_CONFIGURED,
        Some(Some(entry)) if !entry.reaper.can_stop() => REAPER_OFF,
        _ => NOT_IN_PROGRESS,
    };
    let age = batch
        .start_time
        .map(|start| now.duration_since(start.into()).unwrap_or(Duration::ZERO));
    BatchExplanation {
        id: batch.id.id(),
        project: project.to_owned(),
        status: String::new(),
        would: "skip",
        reason: reason.to_owned(),
        branch: autopilot::reaper::branch_of(batch),
        age_minutes: age.map(minutes),
        superseded_by: None,
        dry_run: entry.flatten().is_some_and(|e| e.dry_run),
    }
}

fn minutes(age: Duration) -> u64 {
    age.as_secs() / 60
}

/// The reason's serialized name (`stale`, `protected_branch`, ...), as the sweep logs it.
fn reason_text<T: Serialize>(reason: &T) -> String {
    match serde_json::to_value(reason) {
        Ok(Value::String(text)) => text,
        _ => String::new(),
    }
}

/// The fields of CodeBuild's `BuildBatch` JSON the plan reads; everything else is ignored.
/// Times are epoch seconds (the API's JSON) or RFC 3339 (the AWS CLI's printing).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBatch {
    id: Option<String>,
    arn: Option<String>,
    build_batch_status: Option<String>,
    #[serde(default)]
    complete: bool,
    source_version: Option<String>,
    resolved_source_version: Option<String>,
    initiator: Option<String>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    current_phase: Option<String>,
    build_batch_number: Option<i64>,
    environment: Option<RawEnvironment>,
    #[serde(default)]
    build_groups: Vec<RawGroup>,
}

/// `ProjectEnvironment`: only its variables (the branch may be in `AUTOPILOT_BRANCH`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvironment {
    #[serde(default)]
    environment_variables: Vec<EnvironmentVariable>,
}

/// `BuildGroup`: its identifier and current build.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGroup {
    identifier: Option<String>,
    current_build_summary: Option<RawBuildSummary>,
}

/// `BuildSummary`: the build and its status.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBuildSummary {
    arn: Option<String>,
    build_status: Option<String>,
}

impl RawBatch {
    /// The crate's model, as `autopilot::aws` converts the SDK's batch (the ARN preferred).
    fn into_batch(self) -> Result<BuildBatch, String> {
        let given = self
            .arn
            .as_deref()
            .or(self.id.as_deref())
            .ok_or("no `arn` or `id`")?;
        let id = BatchId::parse(given).map_err(|err| format!("id {given:?}: {err}"))?;
        let time = |value: Option<Value>, field: &str| {
            value
                .filter(|v| !v.is_null())
                .map(|v| parse_time(&v).map(Into::into))
                .transpose()
                .map_err(|message| format!("`{field}`: {message}"))
        };
        let groups: Vec<BatchGroup> = self
            .build_groups
            .into_iter()
            .map(|group| {
                let summary = group.current_build_summary;
                let build = summary
                    .as_ref()
                    .and_then(|s| s.arn.as_deref())
                    .and_then(|arn| BuildId::parse(arn).ok());
                BatchGroup {
                    identifier: group.identifier,
                    build,
                    status: status(summary.and_then(|s| s.build_status)),
                }
            })
            .collect();
        Ok(BuildBatch {
            id,
            arn: self.arn,
            status: status(self.build_batch_status),
            complete: self.complete,
            source_version: self.source_version,
            resolved_source_version: self.resolved_source_version,
            initiator: self.initiator,
            start_time: time(self.start_time, "startTime")?,
            end_time: time(self.end_time, "endTime")?,
            environment_variables: self
                .environment
                .map(|e| e.environment_variables)
                .unwrap_or_default(),
            build_ids: groups.iter().filter_map(|g| g.build.clone()).collect(),
            batch_number: self.build_batch_number,
            current_phase: self.current_phase,
            groups,
        })
    }
}

fn status(text: Option<String>) -> BuildStatus {
    BuildStatus::from(text.as_deref().unwrap_or_default())
}

/// Epoch seconds (a number) or RFC 3339 text.
fn parse_time(value: &Value) -> Result<SystemTime, String> {
    let time = match value {
        Value::Number(n) => n
            .as_f64()
            .map(SmithyTime::from_secs_f64)
            .ok_or_else(|| format!("{n} is not a time"))?,
        Value::String(text) => SmithyTime::from_str(text, DateTimeFormat::DateTimeWithOffset)
            .map_err(|err| format!("{text:?} is not an RFC 3339 time: {err}"))?,
        other => return Err(format!("{other} is not a time")),
    };
    SystemTime::try_from(time).map_err(|err| format!("{err}"))
}
