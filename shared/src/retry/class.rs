//! The vocabulary of a classification: the class that drives the action and the
//! machine-readable reason that is logged with it.

use serde::Serialize;

/// What kind of failure a build had, i.e. what retrying it can achieve.
///
/// Beyond the three failure classes of the retry policy, two outcomes need their own class so
/// the caller cannot mistake them for a failure class: a build that did not fail at all, and a
/// timeout (retried only when a project switches it on, because a hung build would multiply its
/// bill).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Throttling, rate limits, capacity, a full queue: retrying later can succeed.
    Transient,
    /// Possibly transient (service fault, network timeout, dead container): one retry, then
    /// treat as permanent.
    RetryOnce,
    /// A user or configuration error (tests, buildspec, permissions, missing source): never.
    Permanent,
    /// Text never seen before: no retry (the safe answer), logged so a rule can be added.
    Unclassified,
    /// The build ran into its timeout; the caller decides with a per-project switch.
    TimedOut,
    /// Not a failure: succeeded, still running, or stopped (by a person or our own stopper).
    NotAFailure,
}

impl FailureClass {
    /// The stable snake_case name, as logged in the `class` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::RetryOnce => "retry_once",
            Self::Permanent => "permanent",
            Self::Unclassified => "unclassified",
            Self::TimedOut => "timed_out",
            Self::NotAFailure => "not_a_failure",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a build got its class; the stable snake_case name is logged in the `reason` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // -- not a failure / status-level --
    /// The build succeeded.
    Succeeded,
    /// The build is still running.
    InProgress,
    /// Someone stopped the build; never retried.
    Stopped,
    /// The build ran into its timeout.
    TimedOut,
    /// A build status this code does not know.
    UnknownStatus,
    // -- transient --
    /// Throttling or a rate limit (`toomanyrequests`, 429, `Rate exceeded`, ...).
    RateLimited,
    /// Compute capacity was not available.
    InsufficientCapacity,
    /// `Cannot have more than N builds in queue` with N ≥ 1: the queue is full for now.
    BuildQueueFull,
    /// `Build failed to start`: the project's concurrent-build limit was reached.
    BuildFailedToStart,
    // -- retry once --
    /// CodeBuild reported a service-side fault (`FAULT`).
    ServiceFault,
    /// A network timeout (`i/o timeout`, TLS handshake timeout).
    NetworkTimeout,
    /// A connection was refused or reset.
    ConnectionFailed,
    /// "Build container found dead": a host death, or a deterministic OOM.
    ContainerDied,
    /// The message itself says "please try again later".
    TryAgainLater,
    /// The VPC subnet had no free IP address.
    InsufficientSubnet,
    // -- permanent --
    /// Access denied / not authorized / missing permission.
    AccessDenied,
    /// No credentials where some were needed.
    MissingCredentials,
    /// The source repository, reference or object does not exist.
    SourceNotFound,
    /// A Parameter Store parameter does not exist.
    ParameterNotFound,
    /// The buildspec is missing or invalid (`YAML_FILE_ERROR`).
    BuildspecError,
    /// A certificate problem (self-signed, missing roots).
    CertificateError,
    /// A misconfiguration of the project (wrong region, invalid ARN, image mismatch, ...).
    InvalidConfiguration,
    /// `Cannot have more than 0 builds in queue`: the account quota is zero.
    BuildQueueQuotaZero,
    /// A buildspec command exited non-zero (tests, compile errors).
    CommandFailed,
    // -- unknown --
    /// No rule matched the text.
    Unclassified,
}

impl Reason {
    /// The stable snake_case name, as logged in the `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::InProgress => "in_progress",
            Self::Stopped => "stopped",
            Self::TimedOut => "timed_out",
            Self::UnknownStatus => "unknown_status",
            Self::RateLimited => "rate_limited",
            Self::InsufficientCapacity => "insufficient_capacity",
            Self::BuildQueueFull => "build_queue_full",
            Self::BuildFailedToStart => "build_failed_to_start",
            Self::ServiceFault => "service_fault",
            Self::NetworkTimeout => "network_timeout",
            Self::ConnectionFailed => "connection_failed",
            Self::ContainerDied => "container_died",
            Self::TryAgainLater => "try_again_later",
            Self::InsufficientSubnet => "insufficient_subnet",
            Self::AccessDenied => "access_denied",
            Self::MissingCredentials => "missing_credentials",
            Self::SourceNotFound => "source_not_found",
            Self::ParameterNotFound => "parameter_not_found",
            Self::BuildspecError => "buildspec_error",
            Self::CertificateError => "certificate_error",
            Self::InvalidConfiguration => "invalid_configuration",
            Self::BuildQueueQuotaZero => "build_queue_quota_zero",
            Self::CommandFailed => "command_failed",
            Self::Unclassified => "unclassified",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of classifying one build (or one API error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Classification {
    /// What retrying can achieve.
    pub class: FailureClass,
    /// Why, machine-readable.
    pub reason: Reason,
}

impl Classification {
    /// A classification from its parts.
    pub const fn new(class: FailureClass, reason: Reason) -> Self {
        Self { class, reason }
    }

    /// The answer for text no rule knows.
    pub const UNCLASSIFIED: Self = Self::new(FailureClass::Unclassified, Reason::Unclassified);
}
