//! Reading and validating a configuration file, as the functions do.

use std::path::Path;

use autopilot::config::{AllowedProjects, Config};

use crate::args::ProjectPatterns;
use crate::error::CliError;

/// Reads a file as text.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Unreadable {
        path: path.to_owned(),
        source,
    })
}

/// Reads and validates the configuration at `path` within the IAM bound `patterns`, with the
/// crate's own validator (the one the functions run at start-up).
pub fn load(path: &Path, patterns: &ProjectPatterns) -> Result<Config, CliError> {
    let allowed = AllowedProjects::parse(&patterns.project_patterns)?;
    let text = read_text(path)?;
    Config::from_toml(&text, &allowed).map_err(|errors| CliError::InvalidConfig {
        path: path.to_owned(),
        errors,
    })
}
