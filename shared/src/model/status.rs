//! CodeBuild's status and phase enums, each with an `Unknown` fallback so a value AWS adds
//! tomorrow still parses (and re-serialises unchanged) instead of failing the whole event.

/// Defines a string enum with known variants and an `Unknown(String)` fallback.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this code does not know yet, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The wire form.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $($text => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Ok(Self::from(raw.as_str()))
            }
        }
    };
}

string_enum! {
    /// The status of a build or a batch (`buildStatus`, `buildBatchStatus`, `build-status`).
    BuildStatus {
        /// Finished successfully.
        Succeeded = "SUCCEEDED",
        /// The build's own commands failed (or its configuration).
        Failed = "FAILED",
        /// CodeBuild itself failed.
        Fault = "FAULT",
        /// Ran past its timeout.
        TimedOut = "TIMED_OUT",
        /// Still running.
        InProgress = "IN_PROGRESS",
        /// Stopped by someone.
        Stopped = "STOPPED",
    }
}

impl BuildStatus {
    /// True once the build can no longer change.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::InProgress)
    }
}

string_enum! {
    /// A build phase (`phaseType`, `phase-type`, `current-phase`).
    PhaseType {
        /// Submitted.
        Submitted = "SUBMITTED",
        /// Waiting for capacity.
        Queued = "QUEUED",
        /// Starting the build container.
        Provisioning = "PROVISIONING",
        /// Fetching the source.
        DownloadSource = "DOWNLOAD_SOURCE",
        /// buildspec `install`.
        Install = "INSTALL",
        /// buildspec `pre_build`.
        PreBuild = "PRE_BUILD",
        /// buildspec `build`.
        Build = "BUILD",
        /// buildspec `post_build`.
        PostBuild = "POST_BUILD",
        /// Uploading artifacts.
        UploadArtifacts = "UPLOAD_ARTIFACTS",
        /// Cleaning up.
        Finalizing = "FINALIZING",
        /// The build is over.
        Completed = "COMPLETED",
    }
}

/// The outcome of one phase (`phaseStatus`, `phase-status`). CodeBuild uses one `StatusType`
/// for builds, batches and phases, so this is the same type.
pub type PhaseStatus = BuildStatus;

/// One phase context: a status code and a message.
///
/// EventBridge sends `"STATUS_CODE: message"` strings; `BatchGetBuilds` sends the two fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseContext {
    /// e.g. `COMMAND_EXECUTION_ERROR`; `None` when the text carries no code.
    pub status_code: Option<String>,
    /// The human-readable part.
    pub message: String,
}

impl PhaseContext {
    /// Splits EventBridge's `"STATUS_CODE: message"`. A prefix only counts as a status code when
    /// it looks like one (upper-case letters, digits, `_`), because messages contain `: ` too.
    pub fn from_event_text(text: &str) -> Self {
        match text.split_once(": ") {
            Some((code, message))
                if !code.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
            {
                Self {
                    status_code: Some(code.to_owned()),
                    message: message.to_owned(),
                }
            }
            _ => Self {
                status_code: None,
                message: text.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn known_and_unknown_values_round_trip() {
        for raw in ["SUCCEEDED", "IN_PROGRESS", "SOMETHING_NEW"] {
            let status: BuildStatus = serde_json::from_value(serde_json::json!(raw)).unwrap();
            assert_eq!(
                serde_json::to_value(&status).unwrap(),
                serde_json::json!(raw)
            );
        }
        assert_eq!(BuildStatus::from("TIMED_OUT"), BuildStatus::TimedOut);
        assert_eq!(PhaseType::from("X"), PhaseType::Unknown("X".into()));
        assert_eq!(PhaseStatus::from("FAULT"), PhaseStatus::Fault);
    }

    #[test]
    fn splits_status_code_from_message() {
        let ctx =
            PhaseContext::from_event_text("CLIENT_ERROR: Get \"https://x\": dial tcp: i/o timeout");
        assert_eq!(ctx.status_code.as_deref(), Some("CLIENT_ERROR"));
        assert_eq!(ctx.message, "Get \"https://x\": dial tcp: i/o timeout");
    }

    #[test]
    fn text_without_code_keeps_whole_message() {
        let ctx = PhaseContext::from_event_text("Parameter does not exist: /x");
        assert_eq!(ctx.status_code, None);
        assert_eq!(ctx.message, "Parameter does not exist: /x");
    }
}
