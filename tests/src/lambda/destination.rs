//! The on-failure destination of asynchronous invocations: an SQS queue (moto's, in tests)
//! receiving the record Lambda sends when retries are exhausted.
//! Shape: <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{FunctionError, FunctionSpec, local_sqs};

/// An SQS queue that receives the records of asynchronous invocations that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnFailureDestination {
    /// The queue URL (as returned by `CreateQueue`).
    pub queue_url: String,
    /// The SQS endpoint, e.g. moto's `http://127.0.0.1:PORT`.
    pub sqs_endpoint: String,
    /// The queue's region.
    pub region: String,
}

impl OnFailureDestination {
    /// A destination in us-east-1 (moto's default region).
    pub fn new(queue_url: impl Into<String>, sqs_endpoint: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            sqs_endpoint: sqs_endpoint.into(),
            region: "us-east-1".to_owned(),
        }
    }

    /// Sends the record; returns SQS's message id or a description of the failure.
    pub(crate) async fn send(&self, record: &Value) -> Result<String, String> {
        let sent = local_sqs::client(&self.sqs_endpoint, &self.region)
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(record.to_string())
            .send()
            .await
            .map_err(local_sqs::describe)?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}

/// The record Lambda sends to an on-failure destination once retries are exhausted.
pub(crate) fn failure_record(
    spec: &FunctionSpec,
    request_id: &str,
    event: &Value,
    attempts: u32,
    error: &FunctionError,
) -> Value {
    json!({
        "version": "1.0",
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": request_id,
            "functionArn": format!("{}:$LATEST", spec.arn()),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": error,
    })
}
