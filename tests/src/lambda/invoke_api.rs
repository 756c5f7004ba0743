//! Lambda's Invoke HTTP API over harness functions, so anything that speaks Lambda (the SDK, curl,
//! codebuild-local's event sink) can call them:
//! `POST /2015-03-31/functions/{name}/invocations` — `RequestResponse` (default) answers 200 with
//! the payload (`X-Amz-Function-Error: Unhandled` when the function failed); `Event` answers 202
//! and runs with asynchronous semantics; `DryRun` answers 204.
//! Spec: <https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html>.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{HarnessError, RunningFunction};

type Functions = Arc<HashMap<String, RunningFunction>>;

/// A running Invoke API server.
pub struct InvokeApiServer {
    endpoint: String,
    functions: Functions,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

/// Serves the Invoke API for `functions` on `addr` (`127.0.0.1:0` for an ephemeral port).
pub async fn serve(
    functions: Vec<RunningFunction>,
    addr: SocketAddr,
) -> Result<InvokeApiServer, HarnessError> {
    let listener = TcpListener::bind(addr).await.map_err(HarnessError::Serve)?;
    let endpoint = format!(
        "http://{}",
        listener.local_addr().map_err(HarnessError::Serve)?
    );
    let functions: Functions = Arc::new(
        functions
            .into_iter()
            .map(|function| (function.name().to_owned(), function))
            .collect(),
    );
    let router = Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .layer(DefaultBodyLimit::max(6 * 1024 * 1024))
        .with_state(functions.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(InvokeApiServer {
        endpoint,
        functions,
        stop,
        server,
    })
}

impl InvokeApiServer {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The Invoke URL of one function.
    pub fn invocations_url(&self, function: &str) -> String {
        format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        )
    }

    /// Stops accepting calls, lets calls in flight finish, then shuts every function down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        for function in self.functions.values() {
            function.clone().shutdown().await;
        }
    }
}

async fn invoke(
    State(functions): State<Functions>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(function) = functions.get(function_name(&name)) else {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    };
    // Lambda takes an empty payload as `{}`.
    let event: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(event) => event,
            Err(error) => {
                return lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {error}"),
                );
            }
        }
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("RequestResponse");
    match invocation_type {
        "RequestResponse" => match function.invoke(event).await {
            Ok(invocation) => {
                let (payload, failed) = match invocation.result {
                    Ok(payload) => (payload, false),
                    Err(error) => (json!(error), true),
                };
                let mut response = (StatusCode::OK, axum::Json(payload)).into_response();
                let headers = response.headers_mut();
                insert(headers, "x-amzn-requestid", &invocation.request_id);
                insert(headers, "x-amz-executed-version", "$LATEST");
                if failed {
                    insert(headers, "x-amz-function-error", "Unhandled");
                }
                response
            }
            Err(error) => harness_failure(&error),
        },
        "Event" => match function.invoke_async(event).await {
            Ok(invocation) => {
                let mut response = StatusCode::ACCEPTED.into_response();
                insert(
                    response.headers_mut(),
                    "x-amzn-requestid",
                    &invocation.request_id,
                );
                response
            }
            Err(error) => harness_failure(&error),
        },
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("unsupported X-Amz-Invocation-Type {other}"),
        ),
    }
}

/// Accepts a name, `name:qualifier` or a function ARN, as Lambda does.
fn function_name(path: &str) -> &str {
    let unqualified_arn = path
        .rsplit_once(":function:")
        .map_or(path, |(_, rest)| rest);
    unqualified_arn
        .split_once(':')
        .map_or(unqualified_arn, |(name, _)| name)
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn harness_failure(error: &HarnessError) -> Response {
    lambda_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ServiceException",
        &error.to_string(),
    )
}

/// An error in the Lambda service's own format (`x-amzn-ErrorType` + `{Type, message}`).
fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"Type": "User", "message": message})),
    )
        .into_response();
    insert(response.headers_mut(), "x-amzn-errortype", error_type);
    response
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn names_qualifiers_and_arns_resolve_to_the_function_name() {
        assert_eq!(function_name("ops-api"), "ops-api");
        assert_eq!(function_name("ops-api:$LATEST"), "ops-api");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:ops-api"),
            "ops-api"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:ops-api:1"),
            "ops-api"
        );
    }
}
