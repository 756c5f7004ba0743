//! What a dead-lettered message is, and so where it may go back to.
//!
//! One dead-letter queue may hold several kinds (the template's `DeadLetterQueue` does): SQS
//! messages its source queue gave up on, Lambda's on-failure destination records of
//! asynchronous invocations, events an EventBridge rule could not deliver, and SNS deliveries
//! that failed. Only the first goes back to a queue as it is; the records carry a payload for
//! a function.

use serde_json::Value;

use super::DeadMessage;

/// The message attribute EventBridge sets on an event it dead-letters: the target it failed.
pub const TARGET_ARN_ATTRIBUTE: &str = "TARGET_ARN";

/// The kind of one dead-lettered message.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetterKind {
    /// An SQS message a source queue's redrive policy moved here: goes back to a queue as it is.
    QueueMessage,
    /// Lambda's on-failure destination record of an asynchronous invocation.
    LambdaFailure {
        /// The function that failed (`requestContext.functionArn`), when the record names it.
        function: Option<String>,
        /// The event the function was invoked with (`requestPayload`).
        payload: Value,
    },
    /// An event an EventBridge rule could not deliver to its target (the body is the event).
    UndeliveredEvent {
        /// The target's ARN.
        target: String,
    },
    /// An SNS notification that could not be delivered.
    SnsDelivery,
}

impl DeadLetterKind {
    /// The kind's name in the summary.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::QueueMessage => "queue_message",
            Self::LambdaFailure { .. } => "lambda_failure",
            Self::UndeliveredEvent { .. } => "undelivered_event",
            Self::SnsDelivery => "sns_delivery",
        }
    }
}

/// Tells a message's kind from its body and attributes.
pub fn classify(message: &DeadMessage) -> DeadLetterKind {
    if let Some(target) = message
        .attributes
        .get(TARGET_ARN_ATTRIBUTE)
        .and_then(|a| a.string_value.clone())
    {
        return DeadLetterKind::UndeliveredEvent { target };
    }
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&message.body) else {
        return DeadLetterKind::QueueMessage;
    };
    // Lambda's destination record: {version, timestamp, requestContext, requestPayload,
    // responseContext, responsePayload}.
    if let (Some(Value::Object(context)), Some(payload)) =
        (body.get("requestContext"), body.get("requestPayload"))
    {
        return DeadLetterKind::LambdaFailure {
            function: context
                .get("functionArn")
                .and_then(Value::as_str)
                .map(str::to_owned),
            payload: payload.clone(),
        };
    }
    if body.get("Type").and_then(Value::as_str) == Some("Notification")
        && body.contains_key("TopicArn")
    {
        return DeadLetterKind::SnsDelivery;
    }
    DeadLetterKind::QueueMessage
}

/// A function's bare name from a name, a name with a qualifier, or a (partial) ARN, so that
/// `auto-retry`, `auto-retry:$LATEST` and `arn:aws:lambda:...:function:auto-retry` compare
/// equal.
pub fn function_name(text: &str) -> &str {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        // arn:partition:lambda:region:account:function:name[:qualifier]
        ["arn", _, _, _, _, "function", name, ..] => name,
        // account:function:name[:qualifier]
        [_, "function", name, ..] => name,
        [name, ..] => name,
        [] => text,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::redrive::MessageAttribute;

    fn message(body: &str) -> DeadMessage {
        DeadMessage {
            message_id: "m".into(),
            receipt_handle: "r".into(),
            body: body.into(),
            attributes: HashMap::new(),
            group_id: None,
        }
    }

    #[test]
    fn a_lambda_destination_record_carries_its_payload_and_function() {
        let record = json!({
            "version": "1.0",
            "timestamp": "2026-12-01T10:00:00.000Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:auto-retry:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": {"detail-type": "CodeBuild Build State Change"},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "throttled"}
        });
        assert_eq!(
            classify(&message(&record.to_string())),
            DeadLetterKind::LambdaFailure {
                function: Some(
                    "arn:aws:lambda:us-east-1:123456789012:function:auto-retry:$LATEST".into()
                ),
                payload: json!({"detail-type": "CodeBuild Build State Change"}),
            }
        );
    }

    #[test]
    fn other_kinds() {
        assert_eq!(
            classify(&message(r#"{"kind": "retry_after_backoff"}"#)),
            DeadLetterKind::QueueMessage
        );
        assert_eq!(classify(&message("not json")), DeadLetterKind::QueueMessage);
        assert_eq!(
            classify(&message(
                r#"{"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "x"}"#
            )),
            DeadLetterKind::SnsDelivery
        );
        let mut event = message(r#"{"detail-type": "CodeBuild Build State Change"}"#);
        event.attributes.insert(
            TARGET_ARN_ATTRIBUTE.into(),
            MessageAttribute::string("arn:aws:lambda:us-east-1:1:function:auto-retry"),
        );
        assert_eq!(
            classify(&event),
            DeadLetterKind::UndeliveredEvent {
                target: "arn:aws:lambda:us-east-1:1:function:auto-retry".into()
            }
        );
    }

    #[test]
    fn function_names_compare_across_spellings() {
        for text in [
            "auto-retry",
            "auto-retry:$LATEST",
            "arn:aws:lambda:us-east-1:123456789012:function:auto-retry",
            "arn:aws:lambda:us-east-1:123456789012:function:auto-retry:$LATEST",
            "123456789012:function:auto-retry",
        ] {
            assert_eq!(function_name(text), "auto-retry", "{text}");
        }
    }
}
