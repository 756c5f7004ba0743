//! [`DecisionRecord`]: the one log line (and metric) per decision, and the handler's answer for
//! a build event.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::metrics::{self, Metric};
use crate::model::{BatchId, BuildId};
use crate::retry::FailureClass;

/// What the handler did about one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A retry was made.
    Retry,
    /// Left alone.
    Skip,
    /// The chain's retries are spent (cap, budget, breaker, a batch that never finished).
    GiveUp,
    /// Reported only (the decision is in `would`).
    DryRun,
    /// Put on the delay queue (backoff, batch re-check).
    Delay,
    /// The same retry was already made; nothing done.
    Duplicate,
    /// Not acted on because the ledger says it must not be (another request under the key, a
    /// failure recorded before) or CodeBuild refused for good.
    Drop,
}

impl Action {
    /// The stable snake_case name, as logged in the `action` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Skip => "skip",
            Self::GiveUp => "give_up",
            Self::DryRun => "dry_run",
            Self::Delay => "delay",
            Self::Duplicate => "duplicate",
            Self::Drop => "drop",
        }
    }

    /// The metric it counts as.
    pub fn metric(self) -> Metric {
        match self {
            Self::Retry => Metric::Retried,
            Self::Skip | Self::Duplicate | Self::Drop => Metric::Skipped,
            Self::GiveUp => Metric::GaveUp,
            Self::DryRun => Metric::DryRun,
            Self::Delay => Metric::Delayed,
        }
    }
}

/// One decision, with the fixed field names of the conventions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    /// What was done.
    pub action: Action,
    /// Why, machine-readable.
    pub reason: String,
    /// The failure class, when the build was classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<FailureClass>,
    /// The project.
    pub project: String,
    /// The build (`project:uuid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The batch (`project:uuid`), for a batch member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// The retry number decided (or the retries made, on giving up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// For a dry run or a delay: what would be done / will be done once the delay passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would: Option<Action>,
    /// Where the class came from when not the event itself (`log_tail`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_source: Option<&'static str>,
    /// The build or batch the retry made (or the duplicate found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_id: Option<String>,
}

impl DecisionRecord {
    /// A record about a build, to be completed with the builder methods.
    pub fn for_build(project: &str, build: &BuildId, dry_run: bool) -> Self {
        Self {
            action: Action::Skip,
            reason: String::new(),
            class: None,
            project: project.to_owned(),
            build_id: Some(build.id()),
            batch_id: None,
            attempt: None,
            dry_run,
            would: None,
            class_source: None,
            retry_id: None,
        }
    }

    /// Sets the action and reason.
    pub fn decided(mut self, action: Action, reason: &str) -> Self {
        self.action = action;
        self.reason = reason.to_owned();
        self
    }

    /// Sets the class.
    pub fn class(mut self, class: FailureClass) -> Self {
        self.class = Some(class);
        self
    }

    /// Sets the attempt.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// Sets the batch.
    pub fn batch(mut self, batch: &BatchId) -> Self {
        self.batch_id = Some(batch.id());
        self
    }

    /// Logs the record as one JSON line and counts it as one EMF metric.
    pub fn emit(&self, function: &str, now: DateTime<Utc>) {
        tracing::info!(
            action = self.action.as_str(),
            reason = self.reason.as_str(),
            class = self.class.map(FailureClass::as_str),
            project = self.project.as_str(),
            build_id = self.build_id.as_deref(),
            batch_id = self.batch_id.as_deref(),
            attempt = self.attempt,
            dry_run = self.dry_run,
            would = self.would.map(Action::as_str),
            class_source = self.class_source,
            retry_id = self.retry_id.as_deref(),
            "auto-retry decision"
        );
        metrics::emit_count(function, self.action.metric(), now);
    }
}
