//! The command line's grammar (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// CodeBuild Autopilot's command line.
#[derive(Debug, Parser)]
#[command(name = "autopilot", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the configuration file.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print what auto-retry would do with a `CodeBuild Build State Change` event, and why
    /// (no AWS call).
    Decide(DecideArgs),
}

/// `autopilot config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file exactly as the functions do.
    Validate(ValidateArgs),
}

/// The IAM bound on configurable projects, as the template's `ProjectNamePatterns`.
#[derive(Debug, Clone, Args)]
pub struct ProjectPatterns {
    /// Comma-separated project names or globs the functions may act on (`*` = every project).
    #[arg(long = "project-patterns", value_name = "GLOBS", default_value = "*")]
    pub project_patterns: String,
}

/// `autopilot config validate <file>`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The TOML configuration file.
    pub file: PathBuf,
    /// The IAM bound.
    #[command(flatten)]
    pub patterns: ProjectPatterns,
}

/// `autopilot decide <event.json>`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The event: a `CodeBuild Build State Change` as EventBridge delivers it, or a delay-queue
    /// `retry_after_backoff` message carrying one.
    pub event: PathBuf,
    /// The configuration to decide with; without it, the default retry policy applies to any
    /// project.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The IAM bound the configuration is validated against.
    #[command(flatten)]
    pub patterns: ProjectPatterns,
}
