//! CodeBuild Autopilot shared crate: typed models, the ports the capabilities need, their AWS
//! adapters, and the ops API's read side. Data flows one way: event → function `main` →
//! capability (pure decisions) → port → adapter → AWS.

pub mod aws;
pub mod config;
pub mod failpoint;
pub mod http;
pub mod idempotency;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod ports;
pub mod reaper;
pub mod retry;
pub mod settings;
pub mod start;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod trigger;
pub mod webhook;
