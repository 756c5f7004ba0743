//! Typed inputs and outputs: events, builds, batches, ids.

pub mod build;
pub mod build_event;
pub mod ids;
pub mod status;
pub mod summary;

pub use build::{
    BatchGroup, Build, BuildBatch, BuildPhase, EnvironmentVariable, EnvironmentVariableType,
    LogLocation, NativeAutoRetry,
};
pub use build_event::{BuildStateChangeEvent, EventIdentity};
pub use ids::{ArnLocation, BatchId, BuildId, IdError, validate_project};
pub use status::{BuildStatus, PhaseContext, PhaseStatus, PhaseType};
pub use summary::BuildSummary;
