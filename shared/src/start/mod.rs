//! Starting build batches: the one mechanism behind every `StartBuildBatch` the autopilot makes
//! (webhook deliveries through the batch starter, EventBridge triggers, the ops API).
//!
//! A start is described by a [`BatchStart`]: what to build and the identity of the input that
//! asked for it. The identity alone derives the idempotency token (CodeBuild's five-minute
//! window) and the ledger key (everything after it), so a redelivered input, however late,
//! starts nothing new.
//!
//! The webhook function does not start batches itself: it puts [`StarterWork`] on the start
//! queue and answers at once; the batch starter takes it from there.

pub mod mechanism;
pub mod overrides;
pub mod settings;
pub mod starter;
pub mod stop_pull_request;

use serde::{Deserialize, Serialize};

use crate::idempotency::{IdempotencyKey, Operation};
use crate::model::EnvironmentVariable;
use crate::webhook::Provider;

/// Who asked for a start; the whole of a start's idempotency identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum StartIdentity {
    /// A webhook delivery (one change of it).
    Webhook {
        /// The provider.
        provider: Provider,
        /// The provider's delivery id.
        delivery_id: String,
        /// The change's index when the delivery carries several.
        change_index: Option<u32>,
    },
    /// An EventBridge trigger event.
    Trigger {
        /// The event's `id`.
        event_id: String,
    },
    /// An ops API request.
    Ops {
        /// The caller's `Idempotency-Key` header.
        header_key: String,
        /// The route (`POST /projects/{name}/batches`).
        route: String,
        /// The caller's identity (IAM ARN).
        caller: String,
    },
}

impl StartIdentity {
    /// The one idempotency key of starting `project` for this identity.
    pub fn key_for(&self, project: &str) -> IdempotencyKey {
        match self {
            StartIdentity::Webhook {
                provider,
                delivery_id,
                change_index,
            } => IdempotencyKey::for_webhook_start(
                provider.as_str(),
                delivery_id,
                project,
                *change_index,
            ),
            StartIdentity::Trigger { event_id } => {
                IdempotencyKey::for_trigger_start(event_id, project)
            }
            StartIdentity::Ops {
                header_key,
                route,
                caller,
            } => IdempotencyKey::for_ops(
                Operation::StartBuildBatch,
                project,
                header_key,
                route,
                caller,
            ),
        }
    }
}

/// What a start's batch builds, as far as superseding is concerned: the branch or pull request
/// whose older batches the new one makes pointless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum SupersedeScope {
    /// A branch (short name).
    Branch(String),
    /// A pull / merge request (its number).
    PullRequest(String),
}

/// One batch to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStart {
    /// The CodeBuild project (an exact name the configuration allows).
    pub project: String,
    /// The commit, branch, tag or PR ref to build (`sourceVersion`); the project's default when
    /// `None`.
    pub source_version: Option<String>,
    /// Environment variables added for this batch (for webhook starts: `AUTOPILOT_PROVIDER`,
    /// `AUTOPILOT_EVENT`, `AUTOPILOT_BRANCH`, `AUTOPILOT_PR`, `AUTOPILOT_DELIVERY`).
    #[serde(default)]
    pub environment: Vec<EnvironmentVariable>,
    /// `reportBuildBatchStatusOverride`: report the batch's status back to the source provider.
    #[serde(default)]
    pub report_status: Option<bool>,
    /// `buildspecOverride` (only where the configuration allows it).
    #[serde(default)]
    pub buildspec_override: Option<String>,
    /// `buildTimeoutInMinutesOverride` (only where the configuration allows it).
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
    /// Why (for logs and the ledger record: `push to feature/x`, `nightly`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who asked: derives the token and the ledger key.
    pub identity: StartIdentity,
    /// After starting, stop the older in-progress batches of this branch / PR (`None`: don't).
    #[serde(default)]
    pub supersede: Option<SupersedeScope>,
}

/// The work the webhook function puts on the start queue for the batch starter.
// Sizes differ per variant; one message per routed project, so boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StarterWork {
    /// Start a batch (then supersede, when the start says so).
    Start(BatchStart),
    /// A pull request was merged or closed: stop its in-progress batches in `project`.
    StopPullRequest {
        /// The project.
        project: String,
        /// The pull request's number.
        pull_request: String,
        /// The delivery that said so (for logs).
        identity: StartIdentity,
    },
}
