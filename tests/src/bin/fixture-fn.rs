//! A tiny Lambda function for the harness's own tests.
//!
//! Echoes its event with what the runtime told it (request id, ARN, deadline, trace id) and, on
//! request: `{"fail": true}` returns an error (`FixtureFailure`), `{"crash": true}` aborts the
//! process, `{"sleep_ms": n}` sleeps first, `{"env": "NAME"}` also returns that variable.
//! Every invocation logs one line with `"marker":"fixture-invoked"` so tests can count attempts.
//!
//! An SQS event (`{"Records": [...]}`) is answered with a partial batch response: each record
//! is logged (`"marker":"fixture-record"` with its body) and a record whose body is
//! `{"fail": true}` is reported in `batchItemFailures`; `{"misreport": true}` reports an id that
//! is not in the batch; `{"crash": true}` aborts the process.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// The error the fixture returns on `{"fail": true}`.
#[derive(Debug, thiserror::Error)]
#[error("the event asked the fixture to fail")]
struct FixtureFailure;

impl From<FixtureFailure> for Diagnostic {
    fn from(error: FixtureFailure) -> Self {
        Diagnostic {
            error_type: "FixtureFailure".to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The partial batch response to an SQS event.
fn handle_records(records: &[Value]) -> Value {
    let mut failures = Vec::new();
    for record in records {
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let receive_count = record["attributes"]["ApproximateReceiveCount"].as_str();
        tracing::info!(marker = "fixture-record", body, receive_count, "record");
        let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if body.get("crash") == Some(&Value::Bool(true)) {
            std::process::abort();
        }
        if body.get("fail") == Some(&Value::Bool(true)) {
            failures.push(json!({"itemIdentifier": record["messageId"]}));
        }
        if body.get("misreport") == Some(&Value::Bool(true)) {
            failures.push(json!({"itemIdentifier": "not-in-this-batch"}));
        }
    }
    json!({"batchItemFailures": failures})
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, FixtureFailure> {
    let (payload, context) = event.into_parts();
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        tracing::info!(marker = "fixture-invoked", request_id = %context.request_id, "invoked");
        return Ok(handle_records(records));
    }
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    tracing::info!(
        marker = "fixture-invoked",
        request_id = %context.request_id,
        detail_type,
        "invoked"
    );
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if payload.get("crash") == Some(&Value::Bool(true)) {
        // What a panic with panic = "abort" or a segfault looks like from outside: no answer.
        std::process::abort();
    }
    if payload.get("fail") == Some(&Value::Bool(true)) {
        return Err(FixtureFailure);
    }
    let env = payload
        .get("env")
        .and_then(Value::as_str)
        .map(|name| std::env::var(name).ok());
    Ok(json!({
        "echo": payload,
        "requestId": context.request_id,
        "functionArn": context.invoked_function_arn,
        "deadlineMs": context.deadline,
        "traceId": context.xray_trace_id,
        "env": env,
    }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handle)).await
}
