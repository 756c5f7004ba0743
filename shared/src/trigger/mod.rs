//! EventBridge triggers: scheduled and custom "Autopilot Start Batch" events start a build
//! batch through the one start mechanism (`crate::start::mechanism`).
//!
//! - [`event`]: the one event shape (custom events on the trigger bus, and the schedule rule's
//!   transformed events) read into a [`TriggerRequest`](event::TriggerRequest).
//! - [`handler`]: the checks (project allowed and configured, overrides allowed by the
//!   project's `[projects.start]` policy), the start (identity: the event id with the project),
//!   the decision line, and what the invocation answers Lambda (see its notes on retries).
//! - [`settings`]: the function's environment.
//!
//! Why a bus of its own: on the default bus any principal with `events:PutEvents` could send
//! "Autopilot Start Batch" and, where the policy allows a buildspec, run commands of their
//! choosing with the project's role. The template's trigger rule listens only on a dedicated
//! bus whose resource policy names who may put events; the example schedule lives on the default
//! bus (schedules can live nowhere else) and carries no override.

pub mod event;
pub mod handler;
pub mod settings;

pub use event::{DETAIL_TYPE, SCHEDULE_SOURCE, TriggerEventError, TriggerRequest};
pub use handler::{
    FUNCTION_NAME, TriggerAction, TriggerContext, TriggerDecision, TriggerError, TriggerPorts,
    invoke,
};
pub use settings::TriggerSettings;
