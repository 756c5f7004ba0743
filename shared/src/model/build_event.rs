//! The EventBridge `CodeBuild Build State Change` event, parsed losslessly.
//!
//! Why not `aws_lambda_events::event::codebuild::CodeBuildEvent`: with the features we build it
//! with it drops unknown fields, loses `type` of the environment and the source (its `type_`
//! field is renamed to `type_`), requires `artifact` (absent while a build is in progress) and
//! re-serialises `55.0` as `55`. The test `aws_lambda_events_type_is_lossy` keeps that claim
//! honest. So these types keep every field: times as the strings AWS sent (with typed
//! accessors), numbers as `serde_json::Number` (float-vs-int kept), unknown keys in `other`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::ids::{BuildId, IdError};
use super::status::{BuildStatus, PhaseContext, PhaseStatus, PhaseType};

/// `detail-type` of the events this type models.
pub const BUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";

/// Why a field of an event could not be read as the type its accessor promises.
#[derive(Debug, thiserror::Error)]
pub enum EventFieldError {
    /// A time in neither RFC 3339 nor CodeBuild's `Sep 1, 2017 4:12:29 PM` form.
    #[error("unparseable time {0:?}")]
    Time(String),
    /// `current-phase-context` is not a JSON array of strings.
    #[error("current-phase-context is not a JSON list of strings: {0}")]
    PhaseContext(#[source] serde_json::Error),
    /// An id that does not parse.
    #[error(transparent)]
    Id(#[from] IdError),
}

/// One `CodeBuild Build State Change` event as EventBridge delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStateChangeEvent {
    /// Envelope version (`"0"`).
    pub version: String,
    /// EventBridge event id: the identity of one delivery's content.
    pub id: String,
    /// `CodeBuild Build State Change`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `aws.codebuild`.
    pub source: String,
    /// The account the build runs in.
    pub account: String,
    /// When EventBridge recorded the event (RFC 3339, kept verbatim).
    pub time: String,
    /// The region the build runs in.
    pub region: String,
    /// ARNs the event is about (the build).
    #[serde(default)]
    pub resources: Vec<String>,
    /// The CodeBuild part.
    pub detail: BuildStateDetail,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The `detail` of a build state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStateDetail {
    /// The build's status.
    #[serde(rename = "build-status")]
    pub build_status: BuildStatus,
    /// The project.
    #[serde(rename = "project-name")]
    pub project_name: String,
    /// The build (an ARN in real events).
    #[serde(rename = "build-id")]
    pub build_id: BuildId,
    /// Most of the build's details.
    #[serde(rename = "additional-information")]
    pub additional_information: AdditionalInformation,
    /// The phase the build is in.
    #[serde(
        rename = "current-phase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_phase: Option<PhaseType>,
    /// A JSON-encoded list of context strings, as a string (see [`Self::current_phase_contexts`]).
    #[serde(
        rename = "current-phase-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_phase_context: Option<String>,
    /// Detail schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `detail.additional-information`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdditionalInformation {
    /// Output artifact (absent while in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Map<String, Value>>,
    /// The build environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Timeout in minutes (AWS sends `60.0`).
    #[serde(
        rename = "timeout-in-minutes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_in_minutes: Option<Number>,
    /// True once the build is over.
    #[serde(rename = "build-complete", default)]
    pub build_complete: bool,
    /// The build number (absent while in progress; AWS sends `55.0`).
    #[serde(
        rename = "build-number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub build_number: Option<Number>,
    /// Who started the build (a user, `codepipeline/...`, or our own retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// `Sep 1, 2017 4:12:29 PM` (kept verbatim; see [`parse_event_time`]).
    #[serde(
        rename = "build-start-time",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub build_start_time: Option<String>,
    /// The primary source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Map<String, Value>>,
    /// Branch, commit or tag the build ran.
    #[serde(
        rename = "source-version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_version: Option<String>,
    /// CloudWatch Logs location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Logs>,
    /// Every phase so far.
    #[serde(default)]
    pub phases: Vec<EventPhase>,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The build environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Docker privileged mode.
    #[serde(
        rename = "privileged-mode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub privileged_mode: Option<bool>,
    /// Compute type.
    #[serde(
        rename = "compute-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub compute_type: Option<String>,
    /// Environment type, e.g. `LINUX_CONTAINER`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub environment_type: Option<String>,
    /// Environment variables.
    #[serde(rename = "environment-variables", default)]
    pub environment_variables: Vec<EventEnvironmentVariable>,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One environment variable of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvironmentVariable {
    /// Name.
    pub name: String,
    /// `PLAINTEXT`, `PARAMETER_STORE` or `SECRETS_MANAGER`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub variable_type: Option<String>,
    /// Value (for non-plaintext types, the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Log location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    /// Log group.
    #[serde(
        rename = "group-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub group_name: Option<String>,
    /// Log stream.
    #[serde(
        rename = "stream-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_name: Option<String>,
    /// Console link.
    #[serde(rename = "deep-link", default, skip_serializing_if = "Option::is_none")]
    pub deep_link: Option<String>,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One phase in the event. `COMPLETED` carries neither status nor end time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPhase {
    /// Context strings `"STATUS_CODE: message"`.
    #[serde(
        rename = "phase-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub phase_context: Option<Vec<String>>,
    /// Start (CodeBuild time format).
    #[serde(
        rename = "start-time",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<String>,
    /// End (CodeBuild time format).
    #[serde(rename = "end-time", default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Duration; AWS mixes `0` and `0.0`.
    #[serde(
        rename = "duration-in-seconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_in_seconds: Option<Number>,
    /// Which phase.
    #[serde(rename = "phase-type")]
    pub phase_type: PhaseType,
    /// How it ended.
    #[serde(
        rename = "phase-status",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub phase_status: Option<PhaseStatus>,
    /// Fields this type does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl EventPhase {
    /// The contexts split into status code and message.
    pub fn contexts(&self) -> Vec<PhaseContext> {
        self.phase_context
            .iter()
            .flatten()
            .map(|text| PhaseContext::from_event_text(text))
            .collect()
    }

    /// Start time, parsed.
    pub fn started_at(&self) -> Result<Option<DateTime<Utc>>, EventFieldError> {
        self.start_time.as_deref().map(parse_event_time).transpose()
    }

    /// End time, parsed.
    pub fn ended_at(&self) -> Result<Option<DateTime<Utc>>, EventFieldError> {
        self.end_time.as_deref().map(parse_event_time).transpose()
    }
}

/// A fresh identity for a copy of a sample event: all published samples share one event id and
/// one build ARN, so deduplication tests must give each copy its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    /// The new EventBridge event id.
    pub event_id: String,
    /// The new build uuid (the project stays).
    pub build_uuid: String,
}

impl EventIdentity {
    /// A deterministic identity for copy number `n` (distinct `n` → distinct identity).
    pub fn numbered(n: u64) -> Self {
        Self {
            event_id: format!("e0000000-0000-4000-8000-{n:012x}"),
            build_uuid: format!("b0000000-0000-4000-8000-{n:012x}"),
        }
    }
}

impl BuildStateChangeEvent {
    /// The build status.
    pub fn status(&self) -> &BuildStatus {
        &self.detail.build_status
    }

    /// The build.
    pub fn build_id(&self) -> &BuildId {
        &self.detail.build_id
    }

    /// The build number as an integer, when known (`55.0` → 55).
    pub fn build_number(&self) -> Option<u64> {
        let number = self.detail.additional_information.build_number.as_ref()?;
        number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                // The filter above makes this exact: a non-negative whole number.
                .map(|f| f as u64)
        })
    }

    /// The phases in order.
    pub fn phases(&self) -> &[EventPhase] {
        &self.detail.additional_information.phases
    }

    /// The contexts of the current phase (`current-phase-context` is a JSON string of a list).
    pub fn current_phase_contexts(&self) -> Result<Vec<PhaseContext>, EventFieldError> {
        let Some(raw) = self.detail.current_phase_context.as_deref() else {
            return Ok(Vec::new());
        };
        let texts: Vec<String> =
            serde_json::from_str(raw).map_err(EventFieldError::PhaseContext)?;
        Ok(texts
            .iter()
            .map(|t| PhaseContext::from_event_text(t))
            .collect())
    }

    /// When the build started.
    pub fn build_start_time(&self) -> Result<Option<DateTime<Utc>>, EventFieldError> {
        self.detail
            .additional_information
            .build_start_time
            .as_deref()
            .map(parse_event_time)
            .transpose()
    }

    /// When EventBridge recorded the event.
    pub fn event_time(&self) -> Result<DateTime<Utc>, EventFieldError> {
        parse_event_time(&self.time)
    }

    /// A copy with its own identity: new event id, and the build uuid replaced everywhere it
    /// appears (build id, resources, log stream and link), the rest unchanged.
    pub fn with_identity(&self, identity: &EventIdentity) -> Result<Self, EventFieldError> {
        let old_uuid = self.detail.build_id.uuid().to_owned();
        let mut new_id = BuildId::new(self.detail.build_id.project(), &identity.build_uuid)?;
        if let Some(location) = self.detail.build_id.location() {
            new_id = new_id.with_location(location.clone());
        }
        let old_given = self.detail.build_id.as_given();
        let new_given = new_id.as_given();

        let mut copy = self.clone();
        copy.id.clone_from(&identity.event_id);
        copy.detail.build_id = new_id;
        for resource in &mut copy.resources {
            if *resource == old_given {
                resource.clone_from(&new_given);
            }
        }
        if let Some(logs) = copy.detail.additional_information.logs.as_mut() {
            for field in [&mut logs.stream_name, &mut logs.deep_link]
                .into_iter()
                .flatten()
            {
                *field = field.replace(&old_uuid, &identity.build_uuid);
            }
        }
        Ok(copy)
    }
}

/// Parses either RFC 3339 or CodeBuild's event time form `Sep 1, 2017 4:12:29 PM` (UTC).
pub fn parse_event_time(raw: &str) -> Result<DateTime<Utc>, EventFieldError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(raw, "%b %d, %Y %I:%M:%S %p")
        .map(|naive| naive.and_utc())
        .map_err(|_| EventFieldError::Time(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_both_time_forms() {
        let expected = Utc.with_ymd_and_hms(2017, 9, 1, 16, 12, 29).unwrap();
        assert_eq!(
            parse_event_time("Sep 1, 2017 4:12:29 PM").unwrap(),
            expected
        );
        assert_eq!(parse_event_time("2017-09-01T16:12:29Z").unwrap(), expected);
        assert_eq!(
            parse_event_time("Sep 13, 2019 4:12:29 AM").unwrap(),
            Utc.with_ymd_and_hms(2019, 9, 13, 4, 12, 29).unwrap()
        );
        assert!(parse_event_time("yesterday").is_err());
    }

    #[test]
    fn numbered_identities_differ() {
        assert_ne!(EventIdentity::numbered(1), EventIdentity::numbered(2));
        assert!(crate::model::BuildId::new("p1", &EventIdentity::numbered(7).build_uuid).is_ok());
    }
}
