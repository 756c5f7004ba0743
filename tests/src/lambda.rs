//! Runs a real compiled function binary the way AWS Lambda does.
//!
//! Each [`RunningFunction`] owns one execution environment: a Runtime API server on 127.0.0.1
//! (the endpoints `lambda_runtime` polls) and the function process, started with the environment
//! Lambda gives it. Invocations go through one at a time, as in one Lambda sandbox. A process that
//! exits mid-invocation fails that invocation with `Runtime.ExitError` and is started again for the
//! next one; an invocation that outlives the timeout kills the process (`Sandbox.Timedout`).
//!
//! [`RunningFunction::invoke_async`] follows Lambda's asynchronous semantics: two retries after a
//! failure, then the on-failure destination (an SQS queue, in moto for the tests).
//! [`invoke_api::serve`] exposes the functions over Lambda's Invoke HTTP API, and
//! [`sqs_source::start`] feeds a function from an SQS queue as an event source mapping does.

mod destination;
pub mod invoke_api;
mod local_sqs;
mod process;
mod runtime_api;
pub mod sqs_source;

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, oneshot};
use tokio::task::AbortHandle;

pub use destination::OnFailureDestination;
pub use process::{LogLine, LogStream};
pub use sqs_source::{SqsEventSource, SqsSourceSpec, SqsSourceStats};

use process::FunctionProcess;
use runtime_api::RuntimeApi;

/// The account every harness ARN uses; moto and codebuild-local use the same default.
const ACCOUNT: &str = "123456789012";

/// What to run and how: the harness's equivalent of a Lambda function configuration.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Function name (`AWS_LAMBDA_FUNCTION_NAME`, the Invoke API path segment).
    pub name: String,
    /// The compiled function binary (`bootstrap` in a real deployment).
    pub binary: PathBuf,
    /// Extra environment variables; they override the harness defaults (e.g. `AWS_REGION`).
    pub env: Vec<(String, String)>,
    /// Per-invocation timeout, as the function's configured timeout.
    pub timeout: Duration,
    /// Delays before the two retries of a failed asynchronous invocation.
    pub async_retry_delays: [Duration; 2],
    /// Where a failed asynchronous invocation's record goes after its retries.
    pub on_failure: Option<OnFailureDestination>,
    /// Copy every line the function logs to the harness's stderr, prefixed with its name.
    pub echo_logs: bool,
}

impl Default for FunctionSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            binary: PathBuf::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(30),
            // Lambda waits about one, then two minutes; tests cannot, so the default is short.
            async_retry_delays: [Duration::from_millis(100), Duration::from_millis(200)],
            on_failure: None,
            echo_logs: false,
        }
    }
}

impl FunctionSpec {
    /// A spec with the defaults (30 s timeout, short retry delays, no destination).
    pub fn new(name: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            binary: binary.into(),
            ..Self::default()
        }
    }

    /// Adds one environment variable.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The region the function runs in: its `AWS_REGION` if given, else us-east-1.
    fn region(&self) -> String {
        self.env
            .iter()
            .rev()
            .find(|(key, _)| key == "AWS_REGION")
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| "us-east-1".to_owned())
    }

    /// The unqualified function ARN, as Lambda passes it to the runtime.
    fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{}",
            self.region(),
            self.name
        )
    }
}

/// An error the function reported (or Lambda reported for it), shaped like Lambda's error payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    /// e.g. `Runtime.ExitError`, `Sandbox.Timedout`, or the function's own error type.
    pub error_type: String,
    /// Human-readable message.
    pub error_message: String,
}

/// The outcome of one synchronous invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id the runtime saw (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The function's JSON response, or its error.
    pub result: Result<Value, FunctionError>,
}

/// The harness's own failures (not the function's: those are [`FunctionError`]s).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The function binary is not where the spec says.
    #[error(
        "function binary {0} not found: run `cargo build --workspace --bins` first (the Makefile does)"
    )]
    BinaryMissing(PathBuf),
    /// The function process could not be started.
    #[error("could not start {binary}: {source}")]
    Spawn {
        /// The binary that failed to start.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A local server could not bind or serve.
    #[error("could not serve on 127.0.0.1: {0}")]
    Serve(#[source] std::io::Error),
    /// The function was shut down before or during the call.
    #[error("function {0} has been shut down")]
    ShutDown(String),
    /// An asynchronous invocation's task ended without an outcome.
    #[error("asynchronous invocation {0} was cancelled")]
    Cancelled(String),
    /// An SQS event source cannot be set up (bad batch size, unreadable queue).
    #[error("SQS event source: {0}")]
    InvalidSource(String),
}

/// How an asynchronous invocation ended.
#[derive(Debug, Clone)]
pub struct AsyncOutcome {
    /// The request id, the same for every attempt as in Lambda.
    pub request_id: String,
    /// How many times the function was invoked (1..=3).
    pub attempts: u32,
    /// The last attempt's result.
    pub result: Result<Value, FunctionError>,
    /// What happened to the on-failure record.
    pub destination: DestinationOutcome,
}

/// What happened to the on-failure destination record of an asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationOutcome {
    /// The invocation succeeded; nothing was sent.
    NotNeeded,
    /// It failed but the spec names no destination.
    NotConfigured,
    /// The record was sent; SQS returned this message id.
    Delivered(String),
    /// Sending the record failed.
    Failed(String),
}

/// A started asynchronous invocation; Lambda answered 202 and works in the background.
#[derive(Debug)]
pub struct AsyncInvocation {
    /// The request id of every attempt.
    pub request_id: String,
    outcome: oneshot::Receiver<AsyncOutcome>,
}

impl AsyncInvocation {
    /// Waits until the retries and the destination are done.
    pub async fn outcome(self) -> Result<AsyncOutcome, HarnessError> {
        self.outcome
            .await
            .map_err(|_| HarnessError::Cancelled(self.request_id))
    }
}

/// A function running in the harness. Cheap to clone; every clone drives the same environment.
#[derive(Clone)]
pub struct RunningFunction {
    inner: Arc<Inner>,
}

struct Inner {
    spec: FunctionSpec,
    runtime: RuntimeApi,
    /// The live process, if any. Holding this lock is holding the sandbox: one invocation at a time.
    process: Mutex<Option<FunctionProcess>>,
    logs: process::LogBook,
    background: StdMutex<Vec<AbortHandle>>,
}

/// Starts the Runtime API server and the function process (a cold start, done up front).
pub async fn start(spec: FunctionSpec) -> Result<RunningFunction, HarnessError> {
    if !spec.binary.is_file() {
        return Err(HarnessError::BinaryMissing(spec.binary.clone()));
    }
    let runtime = RuntimeApi::serve(spec.arn()).await?;
    let logs = process::LogBook::default();
    let first = FunctionProcess::spawn(&spec, &runtime.address(), &logs)?;
    Ok(RunningFunction {
        inner: Arc::new(Inner {
            spec,
            runtime,
            process: Mutex::new(Some(first)),
            logs,
            background: StdMutex::new(Vec::new()),
        }),
    })
}

impl RunningFunction {
    /// The function's name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// Invokes synchronously (`RequestResponse`) and waits for the result.
    pub async fn invoke(&self, event: Value) -> Result<Invocation, HarnessError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let result = self.run_once(&request_id, event).await?;
        Ok(Invocation { request_id, result })
    }

    /// Invokes asynchronously (`Event`): returns at once; on failure the function is retried twice
    /// after the spec's delays, then the record goes to the on-failure destination.
    pub async fn invoke_async(&self, event: Value) -> Result<AsyncInvocation, HarnessError> {
        if self.inner.runtime.is_closed() {
            return Err(HarnessError::ShutDown(self.inner.spec.name.clone()));
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let function = self.clone();
        let id = request_id.clone();
        let task = tokio::spawn(async move {
            if let Ok(outcome) = function.run_with_retries(id, event).await {
                // The caller may have dropped its handle; the work is done either way.
                let _ = tx.send(outcome);
            }
        });
        if let Ok(mut background) = self.inner.background.lock() {
            background.retain(|handle| !handle.is_finished());
            background.push(task.abort_handle());
        }
        Ok(AsyncInvocation {
            request_id,
            outcome: rx,
        })
    }

    /// Every line the function wrote to stdout or stderr so far, across restarts.
    pub fn logs(&self) -> Vec<LogLine> {
        self.inner.logs.lines()
    }

    /// Stops the process, the Runtime API server and any asynchronous work in flight.
    pub async fn shutdown(self) {
        if let Ok(background) = self.inner.background.lock() {
            for handle in background.iter() {
                handle.abort();
            }
        }
        self.inner.runtime.close();
        let process = self.inner.process.lock().await.take();
        if let Some(process) = process {
            process.stop().await;
        }
    }

    async fn run_with_retries(
        &self,
        request_id: String,
        event: Value,
    ) -> Result<AsyncOutcome, HarnessError> {
        let delays = self.inner.spec.async_retry_delays;
        let mut attempts = 1;
        let mut result = self.run_once(&request_id, event.clone()).await?;
        for delay in delays {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(delay).await;
            attempts += 1;
            result = self.run_once(&request_id, event.clone()).await?;
        }
        let destination = match (&result, &self.inner.spec.on_failure) {
            (Ok(_), _) => DestinationOutcome::NotNeeded,
            (Err(_), None) => DestinationOutcome::NotConfigured,
            (Err(error), Some(target)) => {
                let record = destination::failure_record(
                    &self.inner.spec,
                    &request_id,
                    &event,
                    attempts,
                    error,
                );
                match target.send(&record).await {
                    Ok(message_id) => DestinationOutcome::Delivered(message_id),
                    Err(error) => DestinationOutcome::Failed(error),
                }
            }
        };
        Ok(AsyncOutcome {
            request_id,
            attempts,
            result,
            destination,
        })
    }

    /// One invocation in the sandbox: (re)start the process if needed, hand the event to the
    /// runtime, and wait for its answer, its death or the timeout.
    async fn run_once(
        &self,
        request_id: &str,
        event: Value,
    ) -> Result<Result<Value, FunctionError>, HarnessError> {
        let inner = &self.inner;
        let mut sandbox = inner.process.lock().await;
        if inner.runtime.is_closed() {
            return Err(HarnessError::ShutDown(inner.spec.name.clone()));
        }
        let process = match sandbox.take() {
            Some(live) if !live.has_exited() => live,
            _ => FunctionProcess::spawn(&inner.spec, &inner.runtime.address(), &inner.logs)?,
        };
        let deadline = std::time::SystemTime::now() + inner.spec.timeout;
        let answer = inner.runtime.enqueue(request_id, event, deadline);
        let timeout = inner.spec.timeout;
        let exited = process.exit_status();
        tokio::select! {
            // A response that raced with an exit still counts: Lambda had it.
            biased;
            outcome = answer => {
                *sandbox = Some(process);
                outcome.ok_or_else(|| HarnessError::ShutDown(inner.spec.name.clone()))
            }
            status = exited => {
                inner.runtime.abandon(request_id);
                Ok(Err(FunctionError {
                    error_type: "Runtime.ExitError".to_owned(),
                    error_message: format!(
                        "RequestId: {request_id} Error: Runtime exited with error: {status}"
                    ),
                }))
            }
            () = tokio::time::sleep(timeout) => {
                inner.runtime.abandon(request_id);
                process.stop().await;
                Ok(Err(FunctionError {
                    error_type: "Sandbox.Timedout".to_owned(),
                    error_message: format!(
                        "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                        timeout.as_secs_f64()
                    ),
                }))
            }
        }
    }
}
