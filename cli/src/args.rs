//! The command line's grammar (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{EXIT_AWS_REFUSED, EXIT_AWS_UNAVAILABLE, EXIT_INVALID, EXIT_UNUSABLE_INPUT};

/// Exit codes, for `--help`.
const EXIT_CODES: &str = concat!(
    "Exit codes: 0 done; 1 invalid configuration (config validate) or some dead letters failed \
     to move (dlq redrive); 2 usage error or unusable input (bad id, bad --env, unreadable \
     file, no region); 3 AWS refused (not found, invalid input, idempotency key reused with \
     other parameters); 4 AWS unavailable (throttled, 5xx, endpoint unreachable: trying again \
     may help).\n\n",
    "AWS commands use the standard credential chain and region (AWS_REGION, AWS_PROFILE, ...) \
     and honour AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> and --endpoint-url (the local \
     emulator, moto). Output is one JSON document on stdout unless --output table; errors are \
     one line on stderr."
);

// Keeps the help text and the codes in `error.rs` from drifting apart silently.
const _: () = assert!(
    EXIT_INVALID == 1
        && EXIT_UNUSABLE_INPUT == 2
        && EXIT_AWS_REFUSED == 3
        && EXIT_AWS_UNAVAILABLE == 4
);

/// CodeBuild Autopilot's command line.
#[derive(Debug, Parser)]
#[command(name = "autopilot", version, about, after_help = EXIT_CODES)]
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
    /// Print what auto-retry would do with a `CodeBuild Build State Change` event, or what the
    /// batch reaper would do with build batches, and why (no AWS call).
    Decide(DecideArgs),
    /// Read or retry CodeBuild builds.
    Builds {
        /// What to do.
        #[command(subcommand)]
        command: BuildsCommand,
    },
    /// Start, stop or list CodeBuild build batches.
    Batches {
        /// What to do.
        #[command(subcommand)]
        command: BatchesCommand,
    },
    /// Work with dead-letter queues.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        command: DlqCommand,
    },
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

/// `autopilot decide <event.json | batches.json>`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The input. A `CodeBuild Build State Change` as EventBridge delivers it, or a delay-queue
    /// `retry_after_backoff` message carrying one: auto-retry's decision. Build batches as
    /// `aws codebuild batch-get-build-batches` prints them (`{"buildBatches": [...]}`), or one
    /// such batch: the batch reaper's decision for each, its projects swept as the scheduled
    /// sweep does (only IN_PROGRESS batches are seen).
    pub event: PathBuf,
    /// The configuration to decide with; without it, the default retry (or reaper) policy
    /// applies to any project.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// For build batches: the moment to decide at (RFC 3339, e.g. `2026-12-01T18:00:00Z`), so
    /// ages and staleness are reproducible; default: now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// The IAM bound the configuration is validated against.
    #[command(flatten)]
    pub patterns: ProjectPatterns,
}

/// How an answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One JSON document on stdout (for CI and scripts).
    Json,
    /// Aligned columns for people.
    Table,
}

/// Where AWS calls go and how answers print; every AWS command takes these.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// Send every AWS call to this endpoint (codebuild-local, moto, a VPC endpoint). Without
    /// it: AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, else the public endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region; without it the standard chain (AWS_REGION, the profile's region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Named profile of the shared AWS config files; without it AWS_PROFILE or `default`.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
}

/// `autopilot builds ...`.
#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// Show builds (BatchGetBuilds). Exit code 3 when any is not found (the others still
    /// print).
    Get(BuildsGetArgs),
    /// Run a build again (RetryBuild), once per idempotency key within CodeBuild's five-minute
    /// token window.
    Retry(BuildsRetryArgs),
}

/// `autopilot builds get <id>...`.
#[derive(Debug, Args)]
pub struct BuildsGetArgs {
    /// Build ids: `project:uuid` or the build ARN.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Endpoint, region, output.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `autopilot builds retry <id>`.
#[derive(Debug, Args)]
#[command(
    after_help = "Idempotency: the CodeBuild idempotency token is derived from --idempotency-key, \
                  or without it from the build id, so running the same retry twice within \
                  CodeBuild's five-minute token window makes one new build (the second run \
                  prints the same build). Give a fresh key to retry the same build again \
                  within those five minutes."
)]
pub struct BuildsRetryArgs {
    /// The build to retry: `project:uuid` or its ARN.
    #[arg(value_name = "ID")]
    pub id: String,
    /// What makes this retry distinct (1 to 255 printable ASCII characters); default: the
    /// build id.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Endpoint, region, output.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `autopilot batches ...`.
#[derive(Debug, Subcommand)]
pub enum BatchesCommand {
    /// Start a build batch (StartBuildBatch), once per idempotency key within CodeBuild's
    /// five-minute token window.
    Start(BatchesStartArgs),
    /// Stop a build batch (StopBuildBatch; stopping twice is harmless, so no key).
    Stop(BatchesStopArgs),
    /// List a project's build batches, newest first, following every page up to --max.
    List(BatchesListArgs),
}

/// `autopilot batches start <project>`.
#[derive(Debug, Args)]
#[command(
    after_help = "Idempotency: the CodeBuild idempotency token is derived from --idempotency-key, \
                  or without it from the project and every parameter sent (source version, \
                  variables, buildspec, timeout, reason), so running the same command twice \
                  within CodeBuild's five-minute token window starts one batch (the second run \
                  prints the same batch). Reusing a key with other parameters within the \
                  window is refused (exit 3)."
)]
pub struct BatchesStartArgs {
    /// The CodeBuild project (its exact name).
    #[arg(value_name = "PROJECT")]
    pub project: String,
    /// Branch, tag, commit or pull-request ref to build; default: the project's.
    #[arg(long, value_name = "VERSION")]
    pub source_version: Option<String>,
    /// A plaintext environment variable for every build of the batch (repeatable). Names
    /// starting with CODEBUILD_ or AUTOPILOT_ are reserved.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = crate::batches::parse_env)]
    pub env: Vec<(String, String)>,
    /// A local buildspec file whose contents replace the project's buildspec.
    #[arg(long, value_name = "FILE")]
    pub buildspec: Option<PathBuf>,
    /// Build timeout in minutes (5 to 2160); default: the project's.
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(5..=2160))]
    pub timeout: Option<u32>,
    /// Why: sent as the plaintext variable AUTOPILOT_REASON, so the batch shows it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// What makes this start distinct (1 to 255 printable ASCII characters); default: the
    /// project and the parameters.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Endpoint, region, output.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `autopilot batches stop <id>`.
#[derive(Debug, Args)]
pub struct BatchesStopArgs {
    /// The batch: `project:uuid` or its ARN.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Endpoint, region, output.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// A batch status to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusFilter {
    /// `SUCCEEDED`.
    Succeeded,
    /// `FAILED`.
    Failed,
    /// `FAULT`.
    Fault,
    /// `TIMED_OUT`.
    TimedOut,
    /// `IN_PROGRESS`.
    InProgress,
    /// `STOPPED`.
    Stopped,
}

impl StatusFilter {
    /// CodeBuild's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Fault => "FAULT",
            Self::TimedOut => "TIMED_OUT",
            Self::InProgress => "IN_PROGRESS",
            Self::Stopped => "STOPPED",
        }
    }
}

/// `autopilot batches list <project>`.
#[derive(Debug, Args)]
pub struct BatchesListArgs {
    /// The CodeBuild project.
    #[arg(value_name = "PROJECT")]
    pub project: String,
    /// Only batches in this status.
    #[arg(long, value_enum, ignore_case = true)]
    pub status: Option<StatusFilter>,
    /// At most this many batches (pages are followed until then).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max: u32,
    /// Endpoint, region, output.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `autopilot dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Move dead-lettered messages back to where they failed.
    Redrive(RedriveArgs),
}

/// `autopilot dlq redrive <queue>`.
#[derive(Debug, Args)]
#[command(after_help = "What moves where:
  * an SQS message the source queue dead-lettered goes back to that queue (found with \
ListDeadLetterSourceQueues, or --to-queue), body and message attributes kept;
  * a Lambda on-failure destination record (a JSON body with requestPayload) re-invokes \
--to-function asynchronously with its requestPayload, and an event an EventBridge rule could \
not deliver (attribute TARGET_ARN) re-invokes it with the event; only records of that function \
move;
  * anything else (an SNS delivery failure, a record without --to-function) is left in place.
Each message is deleted from the dead-letter queue only after it was sent or invoked; a failed \
one stays. Neither SQS SendMessage nor an asynchronous Invoke takes an idempotency token: the \
consumers' ledger makes a message that arrives twice (a crash between send and delete) \
harmless.")]
pub struct RedriveArgs {
    /// The dead-letter queue: its URL or name.
    #[arg(value_name = "QUEUE")]
    pub queue: String,
    /// Send queue messages here (URL or name) instead of the DLQ's source queue.
    #[arg(long, value_name = "QUEUE")]
    pub to_queue: Option<String>,
    /// Re-invoke this function (name or ARN) with the payload of its own dead-lettered records.
    #[arg(long, value_name = "FUNCTION")]
    pub to_function: Option<String>,
    /// Handle at most this many messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max: Option<u32>,
    /// Print what would move; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Endpoint, region, output.
    #[command(flatten)]
    pub aws: AwsArgs,
}
