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
//! ```

use std::time::Duration;

mod allowed;
mod cache;
mod errors;
mod raw;
mod uri;
mod validate;

pub use allowed::{AllowedProjects, PROJECT_PATTERNS_ENV, covers};
pub use cache::{ConfigCache, ConfigLoadError, DEFAULT_CONFIG_TTL, load_config};
pub use errors::{ConfigError, ConfigErrors, ConfigProblem};
pub use validate::{MAX_AGE_MINUTES_LIMIT, MAX_LOG_TAIL_LINES, MAX_RETRIES_LIMIT};

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

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project entries in file order; the first whose pattern matches a project applies.
    pub projects: Vec<ProjectEntry>,
    /// Account-wide settings.
    pub account: AccountSettings,
}

impl Config {
    /// The entry that applies to `project`, or `None` when the project is not configured (and so
    /// must never be touched).
    pub fn entry_for(&self, project: &str) -> Option<&ProjectEntry> {
        self.projects.iter().find(|e| e.pattern.matches(project))
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
