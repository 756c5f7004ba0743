//! The trigger event: what EventBridge hands the function, read into a [`TriggerRequest`].
//!
//! One shape only. A custom event put on the trigger bus arrives as EventBridge wrote it; the
//! template's schedule rule (on the default bus, where schedules live) uses an input
//! transformer that produces the same envelope with `"source": "autopilot.schedule"` and the
//! configured project in `detail`:
//!
//! ```json
//! {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
//!  "detail-type": "Autopilot Start Batch", "source": "com.example.release",
//!  "account": "123456789012", "time": "2026-12-01T03:00:00Z", "region": "us-east-1",
//!  "resources": [],
//!  "detail": {"project": "web", "reason": "release train",
//!             "sourceVersion": "refs/heads/main",
//!             "environmentVariables": [{"name": "DEPLOY_ENV", "value": "staging"}],
//!             "buildspecOverride": null, "timeoutInMinutes": 60}}
//! ```
//!
//! `detail` is `project` + `reason` + the fields of [`StartOverrides`]; anything else in it is
//! refused (never silently dropped), as is a field of the wrong type. Whether the overrides are
//! *allowed* is the handler's question (the project's `[projects.start]` policy); this module
//! only reads.

use serde_json::{Map, Value};

use crate::start::overrides::StartOverrides;
use crate::telemetry::shorten;

/// The `detail-type` of a start request; the trigger rule matches only this.
pub const DETAIL_TYPE: &str = "Autopilot Start Batch";

/// The `source` the template's schedule rule gives its transformed events.
pub const SCHEDULE_SOURCE: &str = "autopilot.schedule";

/// Longest event `id` accepted. EventBridge's ids are UUIDs (36 characters); the bound only
/// keeps a hand-made event from putting an unbounded string into the ledger key and the logs.
pub const MAX_EVENT_ID_CHARS: usize = 128;

/// Longest `source` accepted (EventBridge's own limit for `Source` in `PutEvents`).
pub const MAX_SOURCE_CHARS: usize = 256;

/// Longest `detail.reason` accepted: a reason is a few words for the logs and the ledger.
pub const MAX_REASON_CHARS: usize = 256;

/// Longest CodeBuild project name.
const MAX_PROJECT_CHARS: usize = 255;

/// One start request read from a trigger event.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRequest {
    /// The EventBridge event `id`: the start's identity (with the project).
    pub event_id: String,
    /// Who sent it (`source`): the sender's own name, or [`SCHEDULE_SOURCE`].
    pub source: String,
    /// The CodeBuild project (an exact name; checked against the configuration by the handler).
    pub project: String,
    /// Why, for the logs and the ledger record.
    pub reason: Option<String>,
    /// What the sender asks to change (checked against the project's policy by the handler).
    pub overrides: StartOverrides,
}

/// Why an event cannot be read as a start request. Never retryable: the same event reads the
/// same way every time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerEventError {
    /// The input is not a JSON object.
    #[error("the event is not a JSON object")]
    NotAnObject,
    /// A field the envelope must have is missing, or of the wrong type.
    #[error("{field} is missing or not {expected}")]
    MissingField {
        /// The field (`id`, `detail`, `detail.project`, ...).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A field is there but its value is not acceptable.
    #[error("{field} is invalid: {problem}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The event is not a start request (the rule should never have delivered it).
    #[error("detail-type {found:?} is not {DETAIL_TYPE:?}")]
    UnexpectedDetailType {
        /// The `detail-type` found (shortened).
        found: String,
    },
    /// `detail.project` is not an exact CodeBuild project name (1–255 characters of letters,
    /// digits, `-` and `_`, starting with a letter or digit): no glob, no ARN.
    #[error("detail.project {project:?} is not a CodeBuild project name")]
    InvalidProject {
        /// The value found (shortened).
        project: String,
    },
    /// `detail`'s overrides do not read as [`StartOverrides`] (an unknown field, a wrong type).
    #[error("detail does not read as start overrides: {message}")]
    InvalidOverrides {
        /// serde's message (names the field; never the whole detail).
        message: String,
    },
}

impl TriggerEventError {
    /// The decision log's stable `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnexpectedDetailType { .. } => "unexpected_detail_type",
            Self::InvalidProject { .. } => "invalid_project",
            Self::NotAnObject
            | Self::MissingField { .. }
            | Self::InvalidField { .. }
            | Self::InvalidOverrides { .. } => "malformed_event",
        }
    }
}

/// The envelope fields worth logging about any event, however malformed: read leniently so a
/// rejected event's decision line still says which event it was and who sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTrace {
    /// `id`, when it is a string (shortened).
    pub event_id: Option<String>,
    /// `source`, when it is a string (shortened).
    pub source: Option<String>,
    /// `detail.project`, when it is a string (shortened).
    pub project: Option<String>,
}

impl EventTrace {
    /// Picks the traced fields out of `input`, whatever else is wrong with it.
    pub fn of(input: &Value) -> Self {
        let text = |value: Option<&Value>, limit: usize| {
            value.and_then(Value::as_str).map(|s| shorten(s, limit))
        };
        Self {
            event_id: text(input.get("id"), MAX_EVENT_ID_CHARS),
            source: text(input.get("source"), MAX_SOURCE_CHARS),
            project: text(
                input.get("detail").and_then(|d| d.get("project")),
                MAX_PROJECT_CHARS,
            ),
        }
    }
}

/// Reads `input` as a start request.
pub fn parse_trigger_event(input: &Value) -> Result<TriggerRequest, TriggerEventError> {
    let envelope = input.as_object().ok_or(TriggerEventError::NotAnObject)?;
    let detail_type = required_text(envelope, "detail-type")?;
    if detail_type != DETAIL_TYPE {
        return Err(TriggerEventError::UnexpectedDetailType {
            found: shorten(detail_type, MAX_SOURCE_CHARS),
        });
    }
    let event_id = required_text(envelope, "id")?;
    check_length("id", event_id, MAX_EVENT_ID_CHARS)?;
    let source = required_text(envelope, "source")?;
    check_length("source", source, MAX_SOURCE_CHARS)?;

    let mut detail = match envelope.get("detail") {
        Some(Value::Object(detail)) => detail.clone(),
        _ => {
            return Err(TriggerEventError::MissingField {
                field: "detail",
                expected: "an object",
            });
        }
    };
    let project = match detail.remove("project") {
        Some(Value::String(project)) => project,
        _ => {
            return Err(TriggerEventError::MissingField {
                field: "detail.project",
                expected: "a string",
            });
        }
    };
    if !is_project_name(&project) {
        return Err(TriggerEventError::InvalidProject {
            project: shorten(&project, MAX_PROJECT_CHARS),
        });
    }
    let reason = match detail.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => {
            check_length("detail.reason", &reason, MAX_REASON_CHARS)?;
            Some(reason).filter(|r| !r.trim().is_empty())
        }
        Some(_) => {
            return Err(TriggerEventError::MissingField {
                field: "detail.reason",
                expected: "a string",
            });
        }
    };
    let overrides: StartOverrides =
        serde_json::from_value(Value::Object(detail)).map_err(|err| {
            TriggerEventError::InvalidOverrides {
                message: shorten(&err.to_string(), MAX_REASON_CHARS),
            }
        })?;
    Ok(TriggerRequest {
        event_id: event_id.to_owned(),
        source: source.to_owned(),
        project,
        reason,
        overrides,
    })
}

/// True when `name` is an exact CodeBuild project name: 1–255 characters, `[A-Za-z0-9]` then
/// `[A-Za-z0-9_-]*` (CodeBuild's own rule; it also keeps globs and ARNs out).
pub fn is_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= MAX_PROJECT_CHARS
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A non-empty string field of the envelope.
fn required_text<'a>(
    envelope: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, TriggerEventError> {
    envelope
        .get(field)
        .and_then(Value::as_str)
        .filter(|value| !value.trim().is_empty())
        .ok_or(TriggerEventError::MissingField {
            field,
            expected: "a non-empty string",
        })
}

fn check_length(field: &'static str, value: &str, limit: usize) -> Result<(), TriggerEventError> {
    let length = value.chars().count();
    if length > limit {
        return Err(TriggerEventError::InvalidField {
            field,
            problem: format!("{length} characters, at most {limit} allowed"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::start::overrides::OverrideVariable;

    /// The contract's custom event (issue 7, contract §2).
    fn custom_event() -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Autopilot Start Batch",
            "source": "com.example.release",
            "account": "123456789012",
            "time": "2026-12-01T03:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "project": "web",
                "sourceVersion": "refs/heads/main",
                "environmentVariables": [{"name": "DEPLOY_ENV", "value": "staging"}],
                "buildspecOverride": null,
                "timeoutInMinutes": 60,
                "reason": "release train"
            }
        })
    }

    /// What the template's schedule rule hands the function.
    fn scheduled_event() -> Value {
        json!({
            "version": "0",
            "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Autopilot Start Batch",
            "source": "autopilot.schedule",
            "account": "123456789012",
            "time": "2026-12-01T03:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"project": "nightly", "reason": "scheduled"}
        })
    }

    fn with(mut event: Value, path: &[&str], value: Value) -> Value {
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut event;
        for key in parents {
            at = at.get_mut(*key).unwrap();
        }
        at.as_object_mut()
            .unwrap()
            .insert((*last).to_owned(), value);
        event
    }

    fn without(mut event: Value, path: &[&str]) -> Value {
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut event;
        for key in parents {
            at = at.get_mut(*key).unwrap();
        }
        at.as_object_mut().unwrap().remove(*last);
        event
    }

    #[test]
    fn the_contract_event_reads_into_project_reason_and_overrides() {
        let request = parse_trigger_event(&custom_event()).unwrap();

        assert_eq!(
            request,
            TriggerRequest {
                event_id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718".into(),
                source: "com.example.release".into(),
                project: "web".into(),
                reason: Some("release train".into()),
                overrides: StartOverrides {
                    source_version: Some("refs/heads/main".into()),
                    environment_variables: vec![OverrideVariable {
                        name: "DEPLOY_ENV".into(),
                        value: "staging".into(),
                    }],
                    buildspec_override: None,
                    timeout_in_minutes: Some(60),
                },
            }
        );
    }

    #[test]
    fn a_scheduled_event_asks_for_no_override() {
        let request = parse_trigger_event(&scheduled_event()).unwrap();

        assert_eq!(request.source, SCHEDULE_SOURCE);
        assert_eq!(request.project, "nightly");
        assert_eq!(request.reason.as_deref(), Some("scheduled"));
        assert_eq!(request.overrides, StartOverrides::default());
    }

    #[test]
    fn a_blank_or_null_reason_is_none() {
        for reason in [json!(null), json!("  ")] {
            let event = with(scheduled_event(), &["detail", "reason"], reason);
            assert_eq!(parse_trigger_event(&event).unwrap().reason, None);
        }
        let event = without(scheduled_event(), &["detail", "reason"]);
        assert_eq!(parse_trigger_event(&event).unwrap().reason, None);
    }

    #[test]
    fn malformed_envelopes_are_refused_naming_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("not an object"), "not a JSON object"),
            (json!([custom_event()]), "not a JSON object"),
            (without(custom_event(), &["id"]), "id is missing"),
            (with(custom_event(), &["id"], json!("")), "id is missing"),
            (with(custom_event(), &["id"], json!(7)), "id is missing"),
            (
                with(custom_event(), &["id"], json!("x".repeat(129))),
                "id is invalid",
            ),
            (without(custom_event(), &["source"]), "source is missing"),
            (without(custom_event(), &["detail"]), "detail is missing"),
            (
                with(custom_event(), &["detail"], json!("{}")),
                "detail is missing",
            ),
            (
                without(custom_event(), &["detail", "project"]),
                "detail.project is missing",
            ),
            (
                with(custom_event(), &["detail", "project"], json!(["web"])),
                "detail.project is missing",
            ),
            (
                with(custom_event(), &["detail", "reason"], json!(42)),
                "detail.reason is missing",
            ),
            (
                with(
                    custom_event(),
                    &["detail", "reason"],
                    json!("r".repeat(257)),
                ),
                "detail.reason is invalid",
            ),
        ];
        for (event, wanted) in cases {
            let err = parse_trigger_event(&event).unwrap_err();
            assert_eq!(err.reason(), "malformed_event", "{event}");
            assert!(err.to_string().contains(wanted), "{err} for {event}");
        }
    }

    #[test]
    fn unknown_and_mistyped_overrides_are_refused_not_dropped() {
        for (field, value, wanted) in [
            (
                "serviceRoleOverride",
                json!("arn:aws:iam::1:role/admin"),
                "serviceRoleOverride",
            ),
            ("timeoutInMinutes", json!("60"), "invalid type"),
            ("timeoutInMinutes", json!(-5), "invalid value"),
            ("environmentVariables", json!([{"name": "A"}]), "value"),
            (
                "environmentVariables",
                json!([{"name": "A", "value": "x", "type": "SECRETS_MANAGER"}]),
                "type",
            ),
        ] {
            let event = with(custom_event(), &["detail", field], value);
            let err = parse_trigger_event(&event).unwrap_err();
            assert!(
                matches!(err, TriggerEventError::InvalidOverrides { .. }),
                "{err:?}"
            );
            assert_eq!(err.reason(), "malformed_event");
            assert!(err.to_string().contains(wanted), "{err}");
        }
    }

    #[test]
    fn another_detail_type_is_not_a_start_request() {
        let event = with(
            custom_event(),
            &["detail-type"],
            json!("CodeBuild Build State Change"),
        );
        let err = parse_trigger_event(&event).unwrap_err();
        assert_eq!(err.reason(), "unexpected_detail_type");
        assert!(err.to_string().contains("CodeBuild Build State Change"));
        let missing = without(custom_event(), &["detail-type"]);
        assert_eq!(
            parse_trigger_event(&missing).unwrap_err().reason(),
            "malformed_event"
        );
    }

    #[test]
    fn the_project_must_be_an_exact_codebuild_name() {
        for good in ["web", "a", "Web_2-ci", &"p".repeat(255)] {
            assert!(is_project_name(good), "{good}");
        }
        for bad in [
            "",
            "web-*",
            "-web",
            "_web",
            "web ci",
            "arn:aws:codebuild:us-east-1:123456789012:project/web",
            "wéb",
            &"p".repeat(256),
        ] {
            assert!(!is_project_name(bad), "{bad}");
            let event = with(custom_event(), &["detail", "project"], json!(bad));
            let err = parse_trigger_event(&event).unwrap_err();
            assert_eq!(err.reason(), "invalid_project", "{bad}");
        }
    }

    #[test]
    fn the_trace_survives_a_malformed_event() {
        let event = with(custom_event(), &["detail", "timeoutInMinutes"], json!("x"));
        assert!(parse_trigger_event(&event).is_err());
        assert_eq!(
            EventTrace::of(&event),
            EventTrace {
                event_id: Some("6a7e8feb-b491-4cf7-a9f1-bf3703467718".into()),
                source: Some("com.example.release".into()),
                project: Some("web".into()),
            }
        );
        assert_eq!(EventTrace::of(&json!(null)), EventTrace::default());
        let long = with(custom_event(), &["id"], json!("i".repeat(500)));
        assert_eq!(
            EventTrace::of(&long).event_id.unwrap().chars().count(),
            MAX_EVENT_ID_CHARS + 1
        );
    }
}
