//! The Lambda Runtime API (2018-06-01) the function process polls, on 127.0.0.1.
//!
//! Spec: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>. Paths and headers match
//! what `lambda_runtime` 1.5 sends and expects (`requests.rs`, `types.rs` in that crate): the
//! deadline header is mandatory there (it panics without it), the error type comes in the
//! `Lambda-Runtime-Function-Error-Type` header and a `{errorType, errorMessage}` body.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;

use super::{FunctionError, HarnessError};

/// Lambda's synchronous payload limit is 6 MB; axum's default body limit (2 MB) is smaller.
const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

type Answer = Result<Value, FunctionError>;

/// A running Runtime API server for one function.
pub(crate) struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    server: AbortHandle,
}

struct Shared {
    function_arn: String,
    state: Mutex<Pending>,
    event_ready: Notify,
    closed: AtomicBool,
}

#[derive(Default)]
struct Pending {
    /// The event waiting for the runtime's next poll.
    queued: Option<NextEvent>,
    /// Invocations handed out (or queued) and not yet answered, by request id.
    waiting: HashMap<String, oneshot::Sender<Answer>>,
}

struct NextEvent {
    request_id: String,
    body: Vec<u8>,
    deadline_ms: u128,
}

impl RuntimeApi {
    /// Binds an ephemeral port on 127.0.0.1 and serves the Runtime API for `function_arn`.
    pub(crate) async fn serve(function_arn: String) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(HarnessError::Serve)?;
        let address = listener
            .local_addr()
            .map_err(HarnessError::Serve)?
            .to_string();
        let shared = Arc::new(Shared {
            function_arn,
            state: Mutex::new(Pending::default()),
            event_ready: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Errors here mean the listener died; the function's next poll then fails, which
            // surfaces as its exit on the invocation in flight.
            let _ = axum::serve(listener, router).await;
        })
        .abort_handle();
        Ok(Self {
            address,
            shared,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub(crate) fn address(&self) -> String {
        self.address.clone()
    }

    /// Queues an event for the runtime's next poll; resolves with its answer, or `None` if the
    /// invocation was abandoned.
    pub(crate) fn enqueue(
        &self,
        request_id: &str,
        event: Value,
        deadline: SystemTime,
    ) -> impl Future<Output = Option<Answer>> + use<> {
        let (tx, rx) = oneshot::channel();
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis())
            .unwrap_or_default();
        if let Ok(mut pending) = self.shared.state.lock() {
            pending.waiting.insert(request_id.to_owned(), tx);
            pending.queued = Some(NextEvent {
                request_id: request_id.to_owned(),
                body: event.to_string().into_bytes(),
                deadline_ms,
            });
        }
        self.shared.event_ready.notify_one();
        async move { rx.await.ok() }
    }

    /// Forgets an invocation the process will never answer (it died or timed out).
    pub(crate) fn abandon(&self, request_id: &str) {
        if let Ok(mut pending) = self.shared.state.lock() {
            pending.waiting.remove(request_id);
            if pending
                .queued
                .as_ref()
                .is_some_and(|queued| queued.request_id == request_id)
            {
                pending.queued = None;
            }
        }
    }

    /// Stops serving; later invocations fail with `ShutDown`.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.server.abort();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `GET /runtime/invocation/next`: long poll until an event is queued.
async fn next(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        let queued = shared
            .state
            .lock()
            .ok()
            .and_then(|mut pending| pending.queued.take());
        if let Some(event) = queued {
            return next_response(&shared.function_arn, event);
        }
        // `notify_one` stores a permit when nobody waits, so an event queued between the check
        // above and this await is not missed.
        shared.event_ready.notified().await;
    }
}

fn next_response(function_arn: &str, event: NextEvent) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let values = [
        ("lambda-runtime-aws-request-id", event.request_id.clone()),
        ("lambda-runtime-deadline-ms", event.deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            function_arn.to_owned(),
        ),
        ("lambda-runtime-trace-id", trace_id()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, event.body).into_response()
}

/// An X-Ray trace header in the format Lambda sends (`Root=1-<epoch hex>-<96 bits>;...`).
fn trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0;Lineage=1:0:0",
        &random[..24],
        &random[16..32]
    )
}

/// `POST /runtime/invocation/{id}/response`.
async fn response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    // lambda_runtime sends JSON; anything else is kept as a string rather than lost.
    let payload = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    answer(&shared, &request_id, Ok(payload))
}

/// `POST /runtime/invocation/{id}/error`.
async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&shared, &request_id, Err(reported_error(&headers, &body)))
}

/// `POST /runtime/init/error`: the function failed before polling; the invocation waiting for
/// it fails with that error (Lambda then restarts the environment, as we do when it exits).
async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = reported_error(&headers, &body);
    let waiting: Vec<_> = shared
        .state
        .lock()
        .map(|mut pending| {
            pending.queued = None;
            pending.waiting.drain().map(|(_, tx)| tx).collect()
        })
        .unwrap_or_default();
    for tx in waiting {
        let _ = tx.send(Err(error.clone()));
    }
    accepted()
}

fn answer(shared: &Shared, request_id: &str, result: Answer) -> Response {
    let waiting = shared
        .state
        .lock()
        .ok()
        .and_then(|mut pending| pending.waiting.remove(request_id));
    match waiting {
        Some(tx) => {
            // The invoker may have given up (timeout) in the meantime; the answer is then moot.
            let _ = tx.send(result);
            accepted()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "errorType": "InvalidRequestID",
                "errorMessage": format!("unknown or already answered request id {request_id}"),
            })),
        )
            .into_response(),
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

/// Reads the error the runtime reported: body `{errorType, errorMessage}`, the type falling back
/// to the `Lambda-Runtime-Function-Error-Type` header.
fn reported_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok());
    let error_type = parsed
        .get("errorType")
        .and_then(Value::as_str)
        .or(header_type)
        .unwrap_or("Unhandled")
        .to_owned();
    let error_message = parsed
        .get("errorMessage")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    FunctionError {
        error_type,
        error_message,
    }
}
