//! The `autopilot` binary as operators and CI run it: offline commands, then against
//! codebuild-local and moto. One test binary so the SDK is linked once.

mod codebuild_local;
mod offline;
mod redrive_moto;
mod run;
