//! The resources the emulator keeps (projects, builds, batches) and their wire form.
//!
//! Field names follow the service model (`botocore` `service-2.json`); timestamps go out as
//! epoch seconds (JSON numbers), as AWS JSON 1.1 sends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Serializes a timestamp as epoch seconds with millisecond precision.
pub(crate) fn epoch_seconds<S: serde::Serializer>(
    t: &DateTime<Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.timestamp_millis() as f64 / 1000.0)
}

#[allow(clippy::ref_option)] // serde's `serialize_with` hands us `&Option<_>`.
pub(crate) fn epoch_seconds_opt<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => epoch_seconds(t, s),
        None => s.serialize_none(),
    }
}

/// `StatusType` of the service model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Finished successfully.
    Succeeded,
    /// Finished with a failure in the buildspec's commands.
    Failed,
    /// Finished with a service-side fault.
    Fault,
    /// Hit its timeout.
    TimedOut,
    /// Still running.
    InProgress,
    /// Stopped by a caller.
    Stopped,
}

impl Status {
    /// The wire name, e.g. `TIMED_OUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Fault => "FAULT",
            Status::TimedOut => "TIMED_OUT",
            Status::InProgress => "IN_PROGRESS",
            Status::Stopped => "STOPPED",
        }
    }

    /// Whether the build or batch is finished.
    pub fn is_complete(self) -> bool {
        self != Status::InProgress
    }

    /// Whether a finished build counts as a failure (auto-retry and batch retry apply).
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Fault | Status::TimedOut)
    }
}

/// One `PhaseContext`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseContext {
    /// e.g. `COMMAND_EXECUTION_ERROR`.
    #[serde(default)]
    pub status_code: String,
    /// Free text.
    #[serde(default)]
    pub message: String,
}

/// One `BuildPhase` or `BuildBatchPhase`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// e.g. `BUILD`, or for batches `DOWNLOAD_BATCHSPEC`.
    pub phase_type: String,
    /// Absent while the phase runs (and for the final `COMPLETED` phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase_status: Option<Status>,
    /// When the phase started.
    #[serde(serialize_with = "epoch_seconds")]
    pub start_time: DateTime<Utc>,
    /// When it ended.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "epoch_seconds_opt"
    )]
    pub end_time: Option<DateTime<Utc>>,
    /// Whole seconds between start and end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_in_seconds: Option<i64>,
    /// Why the phase ended as it did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<PhaseContext>,
}

/// An `EnvironmentVariable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// `PLAINTEXT` (default), `PARAMETER_STORE` or `SECRETS_MANAGER`.
    #[serde(rename = "type", default = "plaintext")]
    pub kind: String,
}

fn plaintext() -> String {
    "PLAINTEXT".to_owned()
}

/// `AutoRetryConfig` of a build whose project has `autoRetryLimit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoRetryConfig {
    /// How many automatic retries the project allows.
    pub auto_retry_limit: i32,
    /// Which retry this build is (0 for the original).
    pub auto_retry_number: i32,
    /// ARN of the build CodeBuild started to retry this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_auto_retry: Option<String>,
    /// ARN of the build this one retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_auto_retry: Option<String>,
}

/// A project (`Project` shape).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// `ProjectSource`, as given at creation.
    pub source: Value,
    /// `ProjectArtifacts`, as given at creation.
    pub artifacts: Value,
    /// `ProjectEnvironment`, as given at creation.
    pub environment: Value,
    /// IAM role.
    pub service_role: String,
    /// Build timeout.
    pub timeout_in_minutes: i32,
    /// Queue timeout.
    pub queued_timeout_in_minutes: i32,
    /// KMS key.
    pub encryption_key: String,
    /// Created at.
    #[serde(serialize_with = "epoch_seconds")]
    pub created: DateTime<Utc>,
    /// Last changed at.
    #[serde(serialize_with = "epoch_seconds")]
    pub last_modified: DateTime<Utc>,
    /// Automatic retries CodeBuild makes of a failed build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_retry_limit: Option<i32>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Next `buildNumber` to hand out.
    #[serde(skip)]
    pub next_build_number: i64,
    /// Next `buildBatchNumber` to hand out.
    #[serde(skip)]
    pub next_batch_number: i64,
}

/// `LogsLocation` of a build.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logs {
    /// CloudWatch group.
    pub group_name: String,
    /// CloudWatch stream.
    pub stream_name: String,
    /// Console link.
    pub deep_link: String,
    /// Stream ARN.
    pub cloud_watch_logs_arn: String,
}

/// A build (`Build` shape).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    /// `project:uuid`.
    pub id: String,
    /// `arn:aws:codebuild:REGION:ACCOUNT:build/project:uuid`.
    pub arn: String,
    /// Counts up per project.
    pub build_number: i64,
    /// Start.
    #[serde(serialize_with = "epoch_seconds")]
    pub start_time: DateTime<Utc>,
    /// End, once complete.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "epoch_seconds_opt"
    )]
    pub end_time: Option<DateTime<Utc>>,
    /// Current phase type.
    pub current_phase: String,
    /// Status.
    pub build_status: Status,
    /// Requested source version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Resolved commit, once source was downloaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_source_version: Option<String>,
    /// Project.
    pub project_name: String,
    /// Phases so far.
    pub phases: Vec<Phase>,
    /// `ProjectSource`.
    pub source: Value,
    /// `BuildArtifacts`.
    pub artifacts: Value,
    /// `ProjectEnvironment`, with the effective environment variables.
    pub environment: Value,
    /// IAM role.
    pub service_role: String,
    /// Logs.
    pub logs: Logs,
    /// Timeout.
    pub timeout_in_minutes: i32,
    /// Queue timeout.
    pub queued_timeout_in_minutes: i32,
    /// Whether finished.
    pub build_complete: bool,
    /// Who started it.
    pub initiator: String,
    /// KMS key.
    pub encryption_key: String,
    /// The batch this build belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_batch_arn: Option<String>,
    /// CodeBuild's own auto-retry bookkeeping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_retry_config: Option<AutoRetryConfig>,
    /// The effective environment variables (also inside `environment`).
    #[serde(skip)]
    pub environment_variables: Vec<EnvironmentVariable>,
}

/// A `BuildSummary` inside a build group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    /// Build ARN.
    pub arn: String,
    /// When the build was requested.
    #[serde(serialize_with = "epoch_seconds")]
    pub requested_on: DateTime<Utc>,
    /// Build status.
    pub build_status: Status,
}

/// A `BuildGroup` of a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildGroup {
    /// Identifier from the batch spec.
    pub identifier: String,
    /// Groups this one waits for.
    pub depends_on: Vec<String>,
    /// Whether a failure of this group fails the batch.
    pub ignore_failure: bool,
    /// The latest attempt.
    pub current_build_summary: BuildSummary,
    /// Earlier attempts (from `RetryBuildBatch`), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prior_build_summary_list: Vec<BuildSummary>,
}

/// A batch (`BuildBatch` shape).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildBatch {
    /// `project:uuid`.
    pub id: String,
    /// `arn:aws:codebuild:REGION:ACCOUNT:build-batch/project:uuid`.
    pub arn: String,
    /// Start.
    #[serde(serialize_with = "epoch_seconds")]
    pub start_time: DateTime<Utc>,
    /// End, once complete.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "epoch_seconds_opt"
    )]
    pub end_time: Option<DateTime<Utc>>,
    /// Current batch phase.
    pub current_phase: String,
    /// Status.
    pub build_batch_status: Status,
    /// Requested source version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Project.
    pub project_name: String,
    /// Batch phases so far.
    pub phases: Vec<Phase>,
    /// `ProjectSource`.
    pub source: Value,
    /// `BuildArtifacts`.
    pub artifacts: Value,
    /// `ProjectEnvironment`.
    pub environment: Value,
    /// IAM role.
    pub service_role: String,
    /// Per-build timeout.
    pub build_timeout_in_minutes: i32,
    /// Queue timeout.
    pub queued_timeout_in_minutes: i32,
    /// Whether finished.
    pub complete: bool,
    /// Who started it.
    pub initiator: String,
    /// KMS key.
    pub encryption_key: String,
    /// Counts up per project.
    pub build_batch_number: i64,
    /// The builds, by group.
    pub build_groups: Vec<BuildGroup>,
    /// Effective environment variables, copied to each build.
    #[serde(skip)]
    pub environment_variables: Vec<EnvironmentVariable>,
}
