//! The crate's integration tests: decisions over sample events, adapters against mocks and
//! codebuild-local. One test binary so the SDK is linked once (see tests/tests/e2e/main.rs);
//! `clients_from_env` stays apart because it sets process environment variables.

mod adapter_codebuild_local;
mod adapter_mocks;
mod auto_retry_decide;
mod codebuild_events;
mod config_cache;
mod config_model;
mod failpoint_abort;
mod reaper_plan;
mod reaper_sweep;
mod retry_classify;
