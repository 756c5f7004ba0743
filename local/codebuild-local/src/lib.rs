//! `codebuild-local`: a local AWS CodeBuild speaking the AWS JSON 1.1 protocol, for tests and
//! the demo. The real `aws-sdk-codebuild` talks to it with only an endpoint override.
//!
//! Start it in-process with [`serve`]; drive its state through [`control::ControlClient`].

pub mod batches;
pub mod builds;
pub mod clock;
pub mod control;
pub mod error;
pub mod events;
pub mod faults;
pub mod idempotency;
pub mod model;
pub mod model_check;
pub mod pagination;
pub mod phases;
pub mod projects;
pub mod protocol;
mod server;
pub mod state;

pub use clock::Clock;
pub use error::{ApiError, Error};
pub use server::{Config, Server, serve};
