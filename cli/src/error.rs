//! The command line's errors, each with its exit code.

use std::path::PathBuf;

use autopilot::config::{ConfigError, ConfigErrors};
use autopilot::ports::{CodeBuildError, ServiceError};

/// Exit code of an invalid configuration (the file was read and is wrong), and of a redrive
/// that ran but could not move every message.
pub const EXIT_INVALID: u8 = 1;
/// Exit code of input that could not be used at all (unreadable file, bad arguments).
pub const EXIT_UNUSABLE_INPUT: u8 = 2;
/// Exit code of an AWS call that was refused for good (not found, invalid input, a token
/// reused with other parameters): the same command will fail again.
pub const EXIT_AWS_REFUSED: u8 = 3;
/// Exit code of an AWS call that may succeed later (throttled, 5xx, endpoint unreachable).
pub const EXIT_AWS_UNAVAILABLE: u8 = 4;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--project-patterns` is not a usable bound.
    #[error("{0}")]
    Patterns(#[from] ConfigError),
    /// The configuration has problems; displayed one per line with line and key.
    #[error("{}: invalid configuration ({} problem{}):\n{errors}", path.display(), errors.len(), if errors.len() == 1 { "" } else { "s" })]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// Every problem.
        errors: ConfigErrors,
    },
    /// The event file is not an event `decide` understands.
    #[error("{}: {message}", path.display())]
    BadEvent {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The answer could not be written.
    #[error("cannot write the answer: {0}")]
    Output(#[from] serde_json::Error),
    /// An argument is unusable (a malformed id, key or name), or the AWS settings are
    /// incomplete (no region).
    #[error("{0}")]
    Usage(String),
    /// CodeBuild refused or could not be reached.
    #[error("{0}")]
    CodeBuild(#[from] CodeBuildError),
    /// SQS or Lambda refused or could not be reached.
    #[error("{0}")]
    Service(#[from] ServiceError),
    /// Some of what was asked for does not exist (what does was printed).
    #[error("not found: {0}")]
    NotFound(String),
    /// A redrive ran, but some messages could not be moved (the summary was printed).
    #[error("{failed} of {handled} dead-lettered messages failed to move (they stay in the queue)")]
    RedrivePartial {
        /// Messages that failed.
        failed: usize,
        /// Messages handled in all.
        handled: usize,
    },
    /// No async runtime could be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CliError {
    /// The process exit code (see `autopilot --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidConfig { .. } | Self::RedrivePartial { .. } => EXIT_INVALID,
            Self::Unreadable { .. }
            | Self::Patterns(_)
            | Self::BadEvent { .. }
            | Self::Output(_)
            | Self::Usage(_)
            | Self::Runtime(_) => EXIT_UNUSABLE_INPUT,
            Self::CodeBuild(err) if err.is_retryable() => EXIT_AWS_UNAVAILABLE,
            Self::Service(err) if err.is_retryable() => EXIT_AWS_UNAVAILABLE,
            Self::CodeBuild(_) | Self::Service(_) | Self::NotFound(_) => EXIT_AWS_REFUSED,
        }
    }

    /// The message for stderr: one line, except a configuration's problems (one per line,
    /// which is the point of `config validate`).
    pub fn message(&self) -> String {
        let text = self.to_string();
        match self {
            Self::InvalidConfig { .. } => text,
            // SDK error chains and CodeBuild messages may carry line breaks.
            _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_aws_failures_have_their_own_exit_code() {
        let throttled = CliError::CodeBuild(CodeBuildError::Throttled {
            operation: "RetryBuild",
            message: String::new(),
        });
        let missing = CliError::CodeBuild(CodeBuildError::NotFound {
            operation: "RetryBuild",
            message: String::new(),
        });
        let sqs_down = CliError::Service(ServiceError::Unavailable {
            service: "sqs",
            operation: "ReceiveMessage",
            message: String::new(),
        });
        assert_eq!(throttled.exit_code(), EXIT_AWS_UNAVAILABLE);
        assert_eq!(sqs_down.exit_code(), EXIT_AWS_UNAVAILABLE);
        assert_eq!(missing.exit_code(), EXIT_AWS_REFUSED);
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_UNUSABLE_INPUT);
    }

    #[test]
    fn messages_are_one_line() {
        let err = CliError::CodeBuild(CodeBuildError::InvalidInput {
            operation: "StartBuildBatch",
            message: "first\nsecond  third".into(),
        });
        assert_eq!(
            err.message(),
            "StartBuildBatch invalid input: first second third"
        );
    }
}
