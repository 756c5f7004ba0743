//! The build summary the ops API returns.

use chrono::SecondsFormat;
use serde::Serialize;

use super::build::Build;
use super::ids::BatchId;

/// One build as the ops API shows it (see the ops-api contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    /// `project:uuid`.
    pub id: String,
    /// The build ARN, when known.
    pub arn: Option<String>,
    /// Project name.
    pub project: String,
    /// Build number.
    pub build_number: Option<i64>,
    /// Status (`SUCCEEDED`, `IN_PROGRESS`, ...).
    pub status: String,
    /// Current phase.
    pub current_phase: Option<String>,
    /// Requested source version.
    pub source_version: Option<String>,
    /// Who started it.
    pub initiator: Option<String>,
    /// The batch as `project:uuid`, or null.
    pub batch_id: Option<String>,
    /// RFC 3339.
    pub start_time: Option<String>,
    /// RFC 3339; null while running.
    pub end_time: Option<String>,
    /// End minus start; null while running (a running build has no duration yet, and the
    /// summary stays a pure function of the build).
    pub duration_seconds: Option<i64>,
    /// Link to the logs.
    pub logs_link: Option<String>,
}

impl From<&Build> for BuildSummary {
    fn from(build: &Build) -> Self {
        let rfc3339 =
            |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let duration_seconds = match (build.start_time, build.end_time) {
            (Some(start), Some(end)) => Some((end - start).num_seconds()),
            _ => None,
        };
        Self {
            id: build.id.id(),
            arn: build.arn.clone().or_else(|| build.id.arn()),
            project: build.id.project().to_owned(),
            build_number: build.build_number,
            status: build.status.to_string(),
            current_phase: build.current_phase.as_ref().map(ToString::to_string),
            source_version: build.source_version.clone(),
            initiator: build.initiator.clone(),
            // A batch ARN we cannot parse is reported as absent rather than failing the summary.
            batch_id: build
                .batch_arn
                .as_deref()
                .and_then(|arn| BatchId::parse(arn).ok())
                .map(|id| id.id()),
            start_time: build.start_time.as_ref().map(rfc3339),
            end_time: build.end_time.as_ref().map(rfc3339),
            duration_seconds,
            logs_link: build.logs_link.clone(),
        }
    }
}
