//! Retry policy, pure part: which class of failure a finished build is.
//!
//! No I/O, no configuration: [`classify`] reads one `CodeBuild Build State Change` event and
//! returns a [`Classification`]; the caller (the auto-retry function) maps the class to an action
//! with the project's policy (`max_retries`, whether `TIMED_OUT` is retried, dry-run, ...).
//! [`classify_message`] does the same for a bare message that never became a build (a
//! `StartBuild` API error such as a full build queue or throttling).
//!
//! The defaults are grounded in the published catalogue of phase contexts
//! (`tests/fixtures/phase-contexts.md`); the ordered rule table is in [`rules`].

pub mod class;
pub mod classify;
pub mod decide;
pub mod handler;
pub mod rules;
pub mod settings;
pub mod work;

pub use class::{Classification, FailureClass, Reason};
pub use classify::{classify, classify_build, classify_message};
pub use decide::{RetryContext, RetryDecision, SkipReason, decide_retry, refine_with_log_tail};
pub use handler::{AutoRetryError, Invocation, Ports, handle};
pub use settings::{AutoRetrySettings, SettingsError};
