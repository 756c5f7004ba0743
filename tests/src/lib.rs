//! Test harness for CodeBuild Autopilot: runs the real function binaries as AWS Lambda does
//! (Runtime API, asynchronous invocation semantics), puts an HTTP front before them as API
//! Gateway's HTTP API does (`http_front`), and starts the local AWS stack (moto's server).

pub mod event_capture;
pub mod http_front;
pub mod lambda;
pub mod moto;
pub mod stack;
pub mod workspace;
