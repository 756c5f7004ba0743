//! What an EventBridge trigger or an ops API caller may change about a batch it starts, and the
//! per-project allow-list that bounds it (`[defaults.start]` / `[projects.start]`).
//!
//! Whoever may put an event on the trigger bus or call the ops API could otherwise run any
//! buildspec with the project's service role; so every override is refused unless the project's
//! configuration allows it, with a reason, never silently dropped or passed on.

use serde::{Deserialize, Serialize};

use crate::config::{CODEBUILD_MAX_TIMEOUT_MINUTES, CODEBUILD_MIN_TIMEOUT_MINUTES};
pub use crate::config::{OverrideKind, StartPolicy};
use crate::model::{EnvironmentVariable, EnvironmentVariableType};

use super::{BatchStart, StartIdentity};

/// Longest `sourceVersion` accepted (a commit, branch, tag or `pr/N` is far shorter).
pub const MAX_SOURCE_VERSION_CHARS: usize = 1024;
/// Largest inline buildspec accepted.
pub const MAX_BUILDSPEC_BYTES: usize = 48 * 1024;
/// Most environment variables one start may set.
pub const MAX_ENVIRONMENT_VARIABLES: usize = 50;
/// Longest environment variable name.
pub const MAX_VARIABLE_NAME_CHARS: usize = 255;
/// Longest environment variable value.
pub const MAX_VARIABLE_VALUE_CHARS: usize = 4096;
/// Variable name prefixes no caller may set: the autopilot's own provenance variables, which
/// the reaper and auto-retry trust, and CodeBuild's reserved ones.
pub const RESERVED_VARIABLE_PREFIXES: [&str; 2] = ["AUTOPILOT_", "CODEBUILD_"];

/// What a trigger event's `detail` or an ops `POST /projects/{name}/batches` body asks to change.
///
/// JSON: `{"sourceVersion": "...", "environmentVariables": [{"name": "X", "value": "y"}],
/// "buildspecOverride": "...", "timeoutInMinutes": 60}`; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartOverrides {
    /// `sourceVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// `environmentVariablesOverride` (plaintext only: a caller naming a secret could read it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_variables: Vec<OverrideVariable>,
    /// `buildspecOverride`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec_override: Option<String>,
    /// `buildTimeoutInMinutesOverride`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_minutes: Option<u32>,
}

/// One plaintext environment variable a caller sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideVariable {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Why overrides were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// The configuration does not let callers set this override for this project.
    #[error("override `{}` is not allowed for project {project}: {detail}", kind.as_str())]
    NotAllowed {
        /// Which override.
        kind: OverrideKind,
        /// The project.
        project: String,
        /// What exactly was refused and how to allow it.
        detail: String,
    },
    /// The value is malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (`sourceVersion`, `environmentVariables[0].name`, ...).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl OverrideError {
    /// The decision log's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAllowed { .. } => "override_not_allowed",
            Self::Invalid { .. } => "invalid_override",
        }
    }
}

impl StartOverrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks each override's shape, then that `policy` allows it for `project`; the first
    /// problem wins.
    pub fn check(&self, project: &str, policy: &StartPolicy) -> Result<(), OverrideError> {
        let not_allowed = |kind: OverrideKind, detail: String| OverrideError::NotAllowed {
            kind,
            project: project.to_owned(),
            detail,
        };
        let allow_hint = |kind: OverrideKind| {
            format!(
                "add \"{}\" to allowed_overrides in the project's [projects.start]",
                kind.as_str()
            )
        };
        if let Some(version) = &self.source_version {
            check_text("sourceVersion", version, MAX_SOURCE_VERSION_CHARS)?;
            if !policy.allows(OverrideKind::SourceVersion) {
                let kind = OverrideKind::SourceVersion;
                return Err(not_allowed(kind, allow_hint(kind)));
            }
        }
        if !self.environment_variables.is_empty() {
            self.check_variables()?;
            let kind = OverrideKind::EnvironmentVariables;
            if !policy.allows(kind) {
                return Err(not_allowed(kind, allow_hint(kind)));
            }
            for variable in &self.environment_variables {
                let listed = policy
                    .environment_variable_names
                    .iter()
                    .any(|pattern| pattern.matches(&variable.name));
                if !listed {
                    return Err(not_allowed(
                        kind,
                        format!(
                            "variable `{}` is not in environment_variable_names",
                            variable.name
                        ),
                    ));
                }
            }
        }
        if let Some(buildspec) = &self.buildspec_override {
            if buildspec.trim().is_empty() {
                return Err(invalid("buildspecOverride", "must not be empty".into()));
            }
            if buildspec.len() > MAX_BUILDSPEC_BYTES {
                return Err(invalid(
                    "buildspecOverride",
                    format!("at most {MAX_BUILDSPEC_BYTES} bytes"),
                ));
            }
            let kind = OverrideKind::Buildspec;
            if !policy.allows(kind) {
                return Err(not_allowed(kind, allow_hint(kind)));
            }
        }
        if let Some(minutes) = self.timeout_in_minutes {
            if !(CODEBUILD_MIN_TIMEOUT_MINUTES..=CODEBUILD_MAX_TIMEOUT_MINUTES).contains(&minutes) {
                return Err(invalid(
                    "timeoutInMinutes",
                    format!(
                        "must be {CODEBUILD_MIN_TIMEOUT_MINUTES} to \
                         {CODEBUILD_MAX_TIMEOUT_MINUTES} minutes, got {minutes}"
                    ),
                ));
            }
            let kind = OverrideKind::Timeout;
            if !policy.allows(kind) {
                return Err(not_allowed(kind, allow_hint(kind)));
            }
            if minutes > policy.max_timeout_minutes {
                return Err(not_allowed(
                    kind,
                    format!(
                        "{minutes} minutes is over max_timeout_minutes ({})",
                        policy.max_timeout_minutes
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_variables(&self) -> Result<(), OverrideError> {
        if self.environment_variables.len() > MAX_ENVIRONMENT_VARIABLES {
            return Err(invalid(
                "environmentVariables",
                format!("at most {MAX_ENVIRONMENT_VARIABLES} variables"),
            ));
        }
        for (index, variable) in self.environment_variables.iter().enumerate() {
            let field = format!("environmentVariables[{index}].name");
            let name = &variable.name;
            let well_formed = !name.is_empty()
                && name.len() <= MAX_VARIABLE_NAME_CHARS
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !well_formed {
                return Err(invalid(
                    &field,
                    format!(
                        "`{name}` must be letters, digits and `_`, not start with a digit, \
                         1 to {MAX_VARIABLE_NAME_CHARS} characters"
                    ),
                ));
            }
            if let Some(prefix) = RESERVED_VARIABLE_PREFIXES
                .iter()
                .find(|prefix| name.to_ascii_uppercase().starts_with(*prefix))
            {
                return Err(invalid(
                    &field,
                    format!("`{name}`: names starting with {prefix} are reserved"),
                ));
            }
            if self.environment_variables[..index]
                .iter()
                .any(|earlier| &earlier.name == name)
            {
                return Err(invalid(&field, format!("`{name}` is set twice")));
            }
            if variable.value.chars().count() > MAX_VARIABLE_VALUE_CHARS {
                return Err(invalid(
                    &format!("environmentVariables[{index}].value"),
                    format!("at most {MAX_VARIABLE_VALUE_CHARS} characters"),
                ));
            }
        }
        Ok(())
    }

    /// The start the mechanism runs: these overrides on `project` for `identity`. No
    /// superseding: a trigger or an operator asked for this batch on purpose.
    pub fn into_batch_start(
        self,
        project: &str,
        identity: StartIdentity,
        reason: Option<String>,
    ) -> BatchStart {
        BatchStart {
            project: project.to_owned(),
            source_version: self.source_version,
            environment: self
                .environment_variables
                .into_iter()
                .map(|variable| EnvironmentVariable {
                    name: variable.name,
                    value: variable.value,
                    variable_type: EnvironmentVariableType::Plaintext,
                })
                .collect(),
            report_status: None,
            buildspec_override: self.buildspec_override,
            timeout_minutes: self.timeout_in_minutes,
            reason,
            identity,
            supersede: None,
        }
    }
}

fn invalid(field: &str, reason: String) -> OverrideError {
    OverrideError::Invalid {
        field: field.to_owned(),
        reason,
    }
}

fn check_text(field: &str, text: &str, most: usize) -> Result<(), OverrideError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be empty".into()));
    }
    if text.chars().count() > most {
        return Err(invalid(field, format!("at most {most} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::ProjectPattern;

    fn policy(allowed: &[OverrideKind], names: &[&str], max: u32) -> StartPolicy {
        StartPolicy {
            allowed: allowed.to_vec(),
            environment_variable_names: names
                .iter()
                .map(|n| ProjectPattern::new(n).unwrap())
                .collect(),
            max_timeout_minutes: max,
        }
    }

    fn everything() -> StartPolicy {
        policy(&OverrideKind::ALL, &["*"], 2160)
    }

    fn var(name: &str, value: &str) -> OverrideVariable {
        OverrideVariable {
            name: name.into(),
            value: value.into(),
        }
    }

    fn refused_kind(result: Result<(), OverrideError>) -> Option<OverrideKind> {
        match result {
            Err(OverrideError::NotAllowed { kind, .. }) => Some(kind),
            _ => None,
        }
    }

    fn invalid_field(result: Result<(), OverrideError>) -> Option<String> {
        match result {
            Err(OverrideError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn parses_the_documented_json_and_refuses_unknown_fields() {
        let overrides: StartOverrides = serde_json::from_str(
            r#"{"sourceVersion":"refs/heads/main",
                "environmentVariables":[{"name":"DEPLOY_ENV","value":"staging"}],
                "buildspecOverride":"version: 0.2","timeoutInMinutes":60}"#,
        )
        .unwrap();
        assert_eq!(overrides.source_version.as_deref(), Some("refs/heads/main"));
        assert_eq!(
            overrides.environment_variables,
            [var("DEPLOY_ENV", "staging")]
        );
        assert_eq!(overrides.timeout_in_minutes, Some(60));
        assert!(
            serde_json::from_str::<StartOverrides>("{}")
                .unwrap()
                .is_empty()
        );
        assert!(serde_json::from_str::<StartOverrides>(r#"{"privilegedMode":true}"#).is_err());
        assert!(
            serde_json::from_str::<StartOverrides>(
                r#"{"environmentVariables":[{"name":"A","value":"b","type":"SECRETS_MANAGER"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn the_default_policy_allows_only_the_source_version() {
        let default = StartPolicy::default();
        let version = StartOverrides {
            source_version: Some("main".into()),
            ..StartOverrides::default()
        };
        assert_eq!(version.check("web", &default), Ok(()));
        assert_eq!(StartOverrides::default().check("web", &default), Ok(()));
        let cases = [
            (
                StartOverrides {
                    environment_variables: vec![var("A", "1")],
                    ..StartOverrides::default()
                },
                OverrideKind::EnvironmentVariables,
            ),
            (
                StartOverrides {
                    buildspec_override: Some("version: 0.2".into()),
                    ..StartOverrides::default()
                },
                OverrideKind::Buildspec,
            ),
            (
                StartOverrides {
                    timeout_in_minutes: Some(60),
                    ..StartOverrides::default()
                },
                OverrideKind::Timeout,
            ),
        ];
        for (overrides, kind) in cases {
            assert_eq!(refused_kind(overrides.check("web", &default)), Some(kind));
            assert_eq!(overrides.check("web", &everything()), Ok(()));
        }
        let no_version = policy(&[], &["*"], 480);
        assert_eq!(
            refused_kind(version.check("web", &no_version)),
            Some(OverrideKind::SourceVersion)
        );
    }

    #[test]
    fn variable_names_follow_the_allow_list_and_reserved_prefixes() {
        let deploy_only = policy(&[OverrideKind::EnvironmentVariables], &["DEPLOY_*"], 480);
        let with = |vars: Vec<OverrideVariable>| StartOverrides {
            environment_variables: vars,
            ..StartOverrides::default()
        };
        assert_eq!(
            with(vec![var("DEPLOY_ENV", "x")]).check("web", &deploy_only),
            Ok(())
        );
        let err = with(vec![var("DEPLOY_ENV", "x"), var("OTHER", "y")])
            .check("web", &deploy_only)
            .unwrap_err();
        assert_eq!(err.reason(), "override_not_allowed");
        assert!(err.to_string().contains("`OTHER`"), "{err}");
        for reserved in ["AUTOPILOT_BRANCH", "codebuild_x", "CODEBUILD_BUILD_ID"] {
            assert_eq!(
                invalid_field(with(vec![var(reserved, "x")]).check("web", &everything())),
                Some("environmentVariables[0].name".into()),
                "{reserved}"
            );
        }
        for bad in ["", "1ABC", "A-B", "A B"] {
            assert!(
                invalid_field(with(vec![var(bad, "x")]).check("web", &everything())).is_some(),
                "{bad:?}"
            );
        }
        let twice = with(vec![var("A", "1"), var("A", "2")]);
        assert_eq!(
            invalid_field(twice.check("web", &everything())),
            Some("environmentVariables[1].name".into())
        );
        let many = with(
            (0..=MAX_ENVIRONMENT_VARIABLES)
                .map(|i| var(&format!("V{i}"), "x"))
                .collect(),
        );
        assert_eq!(
            invalid_field(many.check("web", &everything())),
            Some("environmentVariables".into())
        );
        let long = with(vec![var("A", &"x".repeat(MAX_VARIABLE_VALUE_CHARS + 1))]);
        assert_eq!(
            invalid_field(long.check("web", &everything())),
            Some("environmentVariables[0].value".into())
        );
    }

    #[test]
    fn shapes_are_checked_before_the_allow_list() {
        let default = StartPolicy::default();
        let empty_version = StartOverrides {
            source_version: Some("  ".into()),
            ..StartOverrides::default()
        };
        assert_eq!(
            invalid_field(empty_version.check("web", &default)),
            Some("sourceVersion".into())
        );
        let control = StartOverrides {
            source_version: Some("main\n".into()),
            ..StartOverrides::default()
        };
        assert!(invalid_field(control.check("web", &default)).is_some());
        for minutes in [0, 4, 2161] {
            let timeout = StartOverrides {
                timeout_in_minutes: Some(minutes),
                ..StartOverrides::default()
            };
            assert_eq!(
                invalid_field(timeout.check("web", &everything())),
                Some("timeoutInMinutes".into())
            );
        }
        let huge = StartOverrides {
            buildspec_override: Some("x".repeat(MAX_BUILDSPEC_BYTES + 1)),
            ..StartOverrides::default()
        };
        assert!(invalid_field(huge.check("web", &everything())).is_some());
    }

    #[test]
    fn timeout_is_bounded_by_the_projects_maximum() {
        let up_to_an_hour = policy(&[OverrideKind::Timeout], &[], 60);
        let ask = |minutes| StartOverrides {
            timeout_in_minutes: Some(minutes),
            ..StartOverrides::default()
        };
        assert_eq!(ask(60).check("web", &up_to_an_hour), Ok(()));
        assert_eq!(
            refused_kind(ask(61).check("web", &up_to_an_hour)),
            Some(OverrideKind::Timeout)
        );
    }

    #[test]
    fn into_batch_start_carries_every_override_and_no_supersede() {
        let identity = StartIdentity::Trigger {
            event_id: "e1".into(),
        };
        let start = StartOverrides {
            source_version: Some("v1.2".into()),
            environment_variables: vec![var("DEPLOY_ENV", "prod")],
            buildspec_override: Some("version: 0.2".into()),
            timeout_in_minutes: Some(30),
        }
        .into_batch_start("web", identity.clone(), Some("release".into()));
        assert_eq!(start.project, "web");
        assert_eq!(start.source_version.as_deref(), Some("v1.2"));
        assert_eq!(start.environment.len(), 1);
        assert_eq!(start.environment[0].name, "DEPLOY_ENV");
        assert_eq!(
            start.environment[0].variable_type,
            EnvironmentVariableType::Plaintext
        );
        assert_eq!(start.buildspec_override.as_deref(), Some("version: 0.2"));
        assert_eq!(start.timeout_minutes, Some(30));
        assert_eq!(start.reason.as_deref(), Some("release"));
        assert_eq!(start.identity, identity);
        assert_eq!(start.supersede, None);
    }
}
