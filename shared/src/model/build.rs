//! Builds and batches as the CodeBuild port returns them (our types, not the SDK's).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{BatchId, BuildId};
use super::status::{BuildStatus, PhaseContext, PhaseStatus, PhaseType};

/// One build, as `BatchGetBuilds` describes it (the fields the autopilot uses).
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// The build (with its ARN location when CodeBuild gave the ARN).
    pub id: BuildId,
    /// The build's ARN as CodeBuild gave it.
    pub arn: Option<String>,
    /// The per-project counter.
    pub build_number: Option<i64>,
    /// Status.
    pub status: BuildStatus,
    /// Current phase.
    pub current_phase: Option<PhaseType>,
    /// True once the build is over.
    pub build_complete: bool,
    /// Requested source version.
    pub source_version: Option<String>,
    /// The commit it really built.
    pub resolved_source_version: Option<String>,
    /// Who started it.
    pub initiator: Option<String>,
    /// The batch it belongs to, if any.
    pub batch_arn: Option<String>,
    /// Start.
    pub start_time: Option<DateTime<Utc>>,
    /// End (absent while running).
    pub end_time: Option<DateTime<Utc>>,
    /// Link to the logs in the console.
    pub logs_link: Option<String>,
    /// Phases so far.
    pub phases: Vec<BuildPhase>,
    /// Environment variables the build ran with.
    pub environment_variables: Vec<EnvironmentVariable>,
    /// CodeBuild's own auto-retry for this build (`autoRetryConfig`), when it has one.
    pub native_auto_retry: Option<NativeAutoRetry>,
    /// Where the build's CloudWatch log stream is, when it logs there.
    pub log_location: Option<LogLocation>,
}

/// CodeBuild's own auto-retry state of one build (`autoRetryConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeAutoRetry {
    /// How many times CodeBuild retries the chain (`autoRetryLimit`).
    pub limit: i32,
    /// Which retry of the chain this build is (`autoRetryNumber`, 0 for the original).
    pub number: i32,
    /// The build CodeBuild started to retry this one, once it did (`nextAutoRetry`).
    pub next: Option<String>,
    /// The build this one retries (`previousAutoRetry`).
    pub previous: Option<String>,
}

impl NativeAutoRetry {
    /// True when CodeBuild retries this build's chain itself. Not only while retries are left:
    /// a build we retried would get CodeBuild's retries again (the project's `autoRetryLimit`
    /// applies to every new build), so a project that uses the native retry is left to it.
    pub fn owns_retries(&self) -> bool {
        self.limit > 0
    }
}

/// A CloudWatch Logs stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLocation {
    /// Log group.
    pub group: String,
    /// Log stream.
    pub stream: String,
}

/// One phase of a build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildPhase {
    /// Which phase.
    pub phase_type: PhaseType,
    /// How it ended (absent for `COMPLETED` and the running phase).
    pub phase_status: Option<PhaseStatus>,
    /// Start.
    pub start_time: Option<DateTime<Utc>>,
    /// End.
    pub end_time: Option<DateTime<Utc>>,
    /// Duration.
    pub duration_seconds: Option<i64>,
    /// Status codes and messages.
    pub contexts: Vec<PhaseContext>,
}

/// An environment variable of a build or an override of a start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    /// Name.
    pub name: String,
    /// Value (for non-plaintext types, the reference).
    pub value: String,
    /// How CodeBuild resolves the value.
    #[serde(rename = "type", default)]
    pub variable_type: EnvironmentVariableType,
}

/// How CodeBuild resolves an environment variable's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvironmentVariableType {
    /// The value itself.
    #[default]
    Plaintext,
    /// An SSM parameter name.
    ParameterStore,
    /// A Secrets Manager reference.
    SecretsManager,
}

/// One build batch, as `BatchGetBuildBatches` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildBatch {
    /// The batch.
    pub id: BatchId,
    /// The batch's ARN as CodeBuild gave it.
    pub arn: Option<String>,
    /// Status.
    pub status: BuildStatus,
    /// True once the batch is over.
    pub complete: bool,
    /// Requested source version.
    pub source_version: Option<String>,
    /// The commit it really built.
    pub resolved_source_version: Option<String>,
    /// Who started it.
    pub initiator: Option<String>,
    /// Start.
    pub start_time: Option<DateTime<Utc>>,
    /// End.
    pub end_time: Option<DateTime<Utc>>,
    /// Environment variables the batch ran with.
    pub environment_variables: Vec<EnvironmentVariable>,
    /// The builds of the batch (current build of each build group).
    pub build_ids: Vec<BuildId>,
    /// The per-project batch counter (`buildBatchNumber`): what "newer" means, since start
    /// times are misordered by late deliveries.
    pub batch_number: Option<i64>,
    /// The batch's current phase (`COMBINE_ARTIFACTS` means it is finishing).
    pub current_phase: Option<String>,
    /// Each build group's current build and its status.
    pub groups: Vec<BatchGroup>,
}

/// One build group of a batch, with its current build.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchGroup {
    /// The group's identifier from the batch spec.
    pub identifier: Option<String>,
    /// Its current build.
    pub build: Option<BuildId>,
    /// That build's status.
    pub status: BuildStatus,
}
