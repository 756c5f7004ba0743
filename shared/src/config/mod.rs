//! The one configuration model: what the functions do for which CodeBuild projects.
//!
//! The text is TOML, read from a [`ConfigUri`] (`file:`, `ssm:` or `s3:`, so it can outgrow an
//! SSM parameter's 4 KB), validated into a [`Config`] whose every value is resolved (defaults
//! merged into each project entry), and cached with a TTL by the functions.
//!
//! ```toml
//! [defaults]
//! dry_run = false
//! [defaults.retry]
//! max_retries = 2
//!
//! [account]
//! hourly_retry_limit = 200
//!
//! [[projects]]
//! name = "web-*"          # a name or a glob; the first matching entry wins
//! [projects.retry]
//! retry_timed_out = true
//!
//! [webhooks.secrets]
//! github = ["autopilot/webhooks/github"]
//!
//! [[repositories]]        # which projects a source provider's webhook starts
//! provider = "github"
//! name = "octo-org/web"
//! [[repositories.targets]]
//! project = "web-ci"
//! filter_groups = [[{ type = "EVENT", pattern = "PUSH" }]]
//! ```

use std::time::Duration;

use crate::webhook::Provider;
use crate::webhook::route::FilterGroup;

mod allowed;
mod cache;
mod errors;
mod raw;
mod uri;
mod validate;

pub use allowed::{AllowedProjects, PROJECT_PATTERNS_ENV, covers};
pub use cache::{ConfigCache, ConfigLoadError, DEFAULT_CONFIG_TTL, load_config};
pub use errors::{ConfigError, ConfigErrors, ConfigProblem};
pub use validate::{
    MAX_AGE_MINUTES_LIMIT, MAX_LOG_TAIL_LINES, MAX_RETRIES_LIMIT, MIN_WEBHOOK_BODY_BYTES,
};

/// The environment variable holding the configuration's [`ConfigUri`].
pub const CONFIG_URI_ENV: &str = "AUTOPILOT_CONFIG_URI";
/// The environment variable holding the cache TTL in seconds (default [`DEFAULT_CONFIG_TTL`]).
pub const CONFIG_TTL_ENV: &str = "AUTOPILOT_CONFIG_TTL_SECONDS";

/// Retries per chain for the transient class, unless configured.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Delay before the first retry, unless configured; doubled per attempt.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(30);
/// Longest delay before a retry (SQS's per-message maximum).
pub const MAX_BACKOFF: Duration = Duration::from_secs(900);
/// Retries per project and clock hour, unless configured.
pub const DEFAULT_HOURLY_BUDGET: u32 = 20;
/// Retries per clock hour across all projects before the breaker opens, unless configured.
pub const DEFAULT_ACCOUNT_HOURLY_LIMIT: u32 = 200;
/// Log lines read when the log tail is switched on, unless configured.
pub const DEFAULT_LOG_TAIL_LINES: u32 = 50;

/// Largest webhook body read, unless configured (1 MiB).
pub const DEFAULT_WEBHOOK_MAX_BODY_BYTES: usize = crate::webhook::body::DEFAULT_MAX_BODY_BYTES;
/// Largest `webhooks.max_body_bytes` that may be configured (4 MiB).
pub const WEBHOOK_MAX_BODY_BYTES_LIMIT: usize = crate::webhook::body::MAX_BODY_BYTES_LIMIT;

/// A validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The project entries in file order; the first whose pattern matches a project applies.
    pub projects: Vec<ProjectEntry>,
    /// Account-wide settings.
    pub account: AccountSettings,
    /// Webhook reception settings (`[webhooks]`).
    pub webhooks: WebhookSettings,
    /// Which projects each repository's webhook events reach (`[[repositories]]`), in file
    /// order.
    pub repositories: Vec<RepositoryEntry>,
}

impl Config {
    /// The entry that applies to `project`, or `None` when the project is not configured (and so
    /// must never be touched).
    pub fn entry_for(&self, project: &str) -> Option<&ProjectEntry> {
        self.projects.iter().find(|e| e.pattern.matches(project))
    }

    /// Every `[[repositories]]` entry for `provider` whose name matches `full_name`, in file
    /// order (all of them apply: their targets fan out).
    pub fn repositories_for<'a>(
        &'a self,
        provider: Provider,
        full_name: &'a str,
    ) -> impl Iterator<Item = &'a RepositoryEntry> + 'a {
        self.repositories
            .iter()
            .filter(move |r| r.provider == provider && r.name.matches(full_name))
    }
}

/// `[webhooks]`: how deliveries are received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Largest body read, in bytes (default [`DEFAULT_WEBHOOK_MAX_BODY_BYTES`], at most
    /// [`WEBHOOK_MAX_BODY_BYTES_LIMIT`]); a larger delivery is refused with 413.
    pub max_body_bytes: usize,
    /// Build draft pull requests unless a target says otherwise (default off).
    pub allow_draft_pull_requests: bool,
    /// Build pull requests from forks unless a target says otherwise (default off: a fork's
    /// buildspec would run with the project's service role).
    pub allow_fork_pull_requests: bool,
    /// The Secrets Manager secrets holding each provider's webhook secret.
    pub secrets: WebhookSecrets,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_WEBHOOK_MAX_BODY_BYTES,
            allow_draft_pull_requests: false,
            allow_fork_pull_requests: false,
            secrets: WebhookSecrets::default(),
        }
    }
}

/// `[webhooks.secrets]`: Secrets Manager secret names or ARNs per provider. Several for one
/// provider mean a rotation: a delivery signed with any of them is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSecrets {
    /// GitHub's.
    pub github: Vec<String>,
    /// GitLab's.
    pub gitlab: Vec<String>,
    /// Bitbucket's.
    pub bitbucket: Vec<String>,
}

impl WebhookSecrets {
    /// The secrets of `provider` (empty: its deliveries cannot be verified, so none is
    /// accepted).
    pub fn for_provider(&self, provider: Provider) -> &[String] {
        match provider {
            Provider::GitHub => &self.github,
            Provider::GitLab => &self.gitlab,
            Provider::Bitbucket => &self.bitbucket,
        }
    }
}

/// One `[[repositories]]` entry: a provider's repository (or a glob of them) and the projects
/// its events reach.
#[derive(Debug, Clone)]
pub struct RepositoryEntry {
    /// The provider whose deliveries the entry matches.
    pub provider: Provider,
    /// `owner/name` or a glob of them.
    pub name: RepositoryPattern,
    /// The projects, in file order.
    pub targets: Vec<WebhookTarget>,
}

/// One `[[repositories.targets]]` entry, with the `[webhooks]` defaults merged in.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// The CodeBuild project (an exact name covered by a `[[projects]]` entry).
    pub project: String,
    /// `reportBuildBatchStatusOverride` (`None`: the project's own setting).
    pub report_status: Option<bool>,
    /// Build draft pull requests.
    pub allow_draft_pull_requests: bool,
    /// Build pull requests from forks.
    pub allow_fork_pull_requests: bool,
    /// CodeBuild filter groups: an event is accepted when any group's filters all pass; no
    /// groups accept every event.
    pub filter_groups: Vec<FilterGroup>,
}

/// A repository full name (`owner/name`, GitLab `group/sub/name`) or a glob of them. Compared
/// without regard to case, as the providers treat repository names; `*` also crosses `/`.
#[derive(Debug, Clone)]
pub struct RepositoryPattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl RepositoryPattern {
    /// A pattern from its text.
    pub fn new(text: &str) -> Result<Self, globset::Error> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(false)
            .case_insensitive(true)
            .build()?;
        Ok(Self {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// True when `full_name` is matched.
    pub fn matches(&self, full_name: &str) -> bool {
        self.matcher.is_match(full_name)
    }

    /// The text as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One `[[projects]]` entry with the defaults merged in.
#[derive(Debug, Clone)]
pub struct ProjectEntry {
    /// The project name or glob.
    pub pattern: ProjectPattern,
    /// Report what would be done, change nothing.
    pub dry_run: bool,
    /// Auto-retry policy.
    pub retry: RetryPolicy,
    /// Stale / superseded batch stopping policy.
    pub reaper: ReaperPolicy,
    /// What triggers and ops API callers may override when they start a batch.
    pub start: StartPolicy,
}

/// An override a trigger event or an ops API caller may ask for when starting a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverrideKind {
    /// `sourceVersion`: which commit, branch or tag to build.
    SourceVersion,
    /// `environmentVariablesOverride` (plaintext variables, names from an allow-list).
    EnvironmentVariables,
    /// `buildspecOverride`: the commands that run (off by default: it lets the caller run
    /// anything with the project's role).
    Buildspec,
    /// `buildTimeoutInMinutesOverride`, up to the project's `max_timeout_minutes`.
    Timeout,
}

impl OverrideKind {
    /// Every kind, in the order the configuration documents them.
    pub const ALL: [OverrideKind; 4] = [
        Self::SourceVersion,
        Self::EnvironmentVariables,
        Self::Buildspec,
        Self::Timeout,
    ];

    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceVersion => "source_version",
            Self::EnvironmentVariables => "environment_variables",
            Self::Buildspec => "buildspec",
            Self::Timeout => "timeout",
        }
    }

    /// Reads the configuration's name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Longest build timeout CodeBuild accepts (36 hours), in minutes.
pub const CODEBUILD_MAX_TIMEOUT_MINUTES: u32 = 2160;
/// Shortest build timeout CodeBuild accepts, in minutes.
pub const CODEBUILD_MIN_TIMEOUT_MINUTES: u32 = 5;
/// Longest timeout override allowed unless configured (8 hours, CodeBuild's own default).
pub const DEFAULT_MAX_TIMEOUT_MINUTES: u32 = 480;

/// `[defaults.start]` / `[projects.start]`: the allow-list of overrides for batches started by
/// EventBridge triggers and the ops API. Anything not allowed is refused with a reason, never
/// passed on silently.
#[derive(Debug, Clone)]
pub struct StartPolicy {
    /// The overrides callers may set (default: `source_version` only).
    pub allowed: Vec<OverrideKind>,
    /// Environment variable names (or globs) callers may set when `environment_variables` is
    /// allowed (default `*`; `AUTOPILOT_*` and `CODEBUILD_*` are always refused).
    pub environment_variable_names: Vec<ProjectPattern>,
    /// Longest timeout override, in minutes (default 480).
    pub max_timeout_minutes: u32,
}

impl StartPolicy {
    /// True when callers may set `kind`.
    pub fn allows(&self, kind: OverrideKind) -> bool {
        self.allowed.contains(&kind)
    }
}

impl Default for StartPolicy {
    fn default() -> Self {
        Self {
            allowed: vec![OverrideKind::SourceVersion],
            environment_variable_names: ProjectPattern::new("*").into_iter().collect(),
            max_timeout_minutes: DEFAULT_MAX_TIMEOUT_MINUTES,
        }
    }
}

/// Batch-reaper policy of one project.
#[derive(Debug, Clone)]
pub struct ReaperPolicy {
    /// Stop batches running longer than this. `None` (the default): stale stopping is off, since
    /// a wrong default would kill legitimate long builds.
    pub max_age: Option<Duration>,
    /// Stop an older in-progress batch when a newer one builds the same branch / PR (default on).
    pub supersede: bool,
    /// Branches never stopped as superseded (names or globs; default `main`, `master`,
    /// `release/*`).
    pub protected_branches: Vec<ProjectPattern>,
    /// Batches started by these initiators (names or globs) are never touched (default none).
    pub excluded_initiators: Vec<ProjectPattern>,
}

/// A project name or a glob of names (`*` and `?`), as CodeBuild project names and IAM resource
/// patterns use them.
#[derive(Debug, Clone)]
pub struct ProjectPattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl ProjectPattern {
    /// A pattern from its text.
    pub fn new(text: &str) -> Result<Self, globset::Error> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(false)
            .build()?;
        Ok(Self {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// True when `project` is matched.
    pub fn matches(&self, project: &str) -> bool {
        self.matcher.is_match(project)
    }

    /// The text as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard (an exact project name).
    pub fn is_exact(&self) -> bool {
        !self.text.contains(['*', '?', '[', '{'])
    }
}

/// Which failure classes a project retries (see [`crate::retry::FailureClass`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetryClass {
    /// Throttling, rate limits, capacity, full queue: up to `max_retries`.
    Transient,
    /// Service faults, network timeouts, dead containers: one retry.
    RetryOnce,
}

/// Auto-retry policy of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Auto-retry on for this project at all.
    pub enabled: bool,
    /// The classes retried (default: both).
    pub classes: Vec<RetryClass>,
    /// Retries per chain for the transient class (default [`DEFAULT_MAX_RETRIES`]).
    pub max_retries: u32,
    /// Retry builds that ran into their timeout, once (default off: a hung build would
    /// multiply its bill).
    pub retry_timed_out: bool,
    /// Delay before the first retry; doubled per attempt, at most [`MAX_BACKOFF`].
    pub backoff_initial: Duration,
    /// Retries per clock hour for this project (default [`DEFAULT_HOURLY_BUDGET`]).
    pub hourly_budget: u32,
    /// Read the build log's tail when a command failed, to find a transient cause (a registry
    /// rate limit inside `docker build`). Default off: it costs a CloudWatch Logs call.
    pub read_log_tail: bool,
    /// Lines read from the tail (default [`DEFAULT_LOG_TAIL_LINES`]).
    pub log_tail_lines: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            classes: vec![RetryClass::Transient, RetryClass::RetryOnce],
            max_retries: DEFAULT_MAX_RETRIES,
            retry_timed_out: false,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            hourly_budget: DEFAULT_HOURLY_BUDGET,
            read_log_tail: false,
            log_tail_lines: DEFAULT_LOG_TAIL_LINES,
        }
    }
}

/// Branches protected from superseding unless configured.
pub const DEFAULT_PROTECTED_BRANCHES: &[&str] = &["main", "master", "release/*"];

impl ReaperPolicy {
    /// True when the policy can stop anything at all (a max age, or superseding): the sweep
    /// reads only such projects.
    pub fn can_stop(&self) -> bool {
        self.max_age.is_some() || self.supersede
    }
}

impl Default for ReaperPolicy {
    fn default() -> Self {
        Self {
            max_age: None,
            supersede: true,
            // The defaults are valid globs; `filter_map` only keeps the type honest.
            protected_branches: DEFAULT_PROTECTED_BRANCHES
                .iter()
                .filter_map(|p| ProjectPattern::new(p).ok())
                .collect(),
            excluded_initiators: Vec::new(),
        }
    }
}

/// Settings that hold across all projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// Retries per clock hour across all projects before the breaker opens.
    pub hourly_retry_limit: u32,
    /// Publish "gave up" notices (when the function has a topic).
    pub notify_gave_up: bool,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            hourly_retry_limit: DEFAULT_ACCOUNT_HOURLY_LIMIT,
            notify_gave_up: true,
        }
    }
}

/// Where the configuration text lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigUri {
    /// `file:/path/to/autopilot.toml` (tests, the demo, a file packaged with the function).
    File(std::path::PathBuf),
    /// `ssm:/parameter/name` (SSM Parameter Store; SecureString is decrypted).
    Ssm(String),
    /// `s3://bucket/key`.
    S3 {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
}
