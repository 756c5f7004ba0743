//! The command line's errors, each with its exit code.

use std::path::PathBuf;

use autopilot::config::{ConfigError, ConfigErrors};

/// Exit code of an invalid configuration (the file was read and is wrong).
pub const EXIT_INVALID: u8 = 1;
/// Exit code of input that could not be used at all (unreadable file, bad arguments).
pub const EXIT_UNUSABLE_INPUT: u8 = 2;

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
}

impl CliError {
    /// The process exit code: 1 for a configuration that is wrong, 2 for input that could not
    /// be used at all.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidConfig { .. } => EXIT_INVALID,
            Self::Unreadable { .. }
            | Self::Patterns(_)
            | Self::BadEvent { .. }
            | Self::Output(_) => EXIT_UNUSABLE_INPUT,
        }
    }
}
