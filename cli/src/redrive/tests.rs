//! The redrive's decisions against in-memory queues and functions, including the Lambda
//! destination path that moto cannot run (it needs Docker to execute a function).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;

use autopilot::ports::ServiceError;
use serde_json::{Value, json};

use super::*;

const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";
const SOURCE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/delay";
const AUTO_RETRY_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:auto-retry";

#[derive(Default)]
struct FakeQueues {
    /// Messages in the DLQ, not received yet.
    waiting: Mutex<Vec<DeadMessage>>,
    sources: Vec<String>,
    sent: Mutex<Vec<(String, DeadMessage)>>,
    deleted: Mutex<Vec<String>>,
    released: Mutex<Vec<String>>,
    fail_send: bool,
}

impl FakeQueues {
    fn with(messages: Vec<DeadMessage>) -> Self {
        Self {
            waiting: Mutex::new(messages),
            sources: vec![SOURCE.into()],
            ..Self::default()
        }
    }
}

fn unavailable(operation: &'static str) -> ServiceError {
    ServiceError::Unavailable {
        service: "fake",
        operation,
        message: "down".into(),
    }
}

impl Queues for FakeQueues {
    async fn queue_url(&self, name_or_url: &str) -> Result<String, ServiceError> {
        Ok(if name_or_url.starts_with("https://") {
            name_or_url.to_owned()
        } else {
            format!("https://sqs.us-east-1.amazonaws.com/123456789012/{name_or_url}")
        })
    }
    async fn source_queues(&self, dlq_url: &str) -> Result<Vec<String>, ServiceError> {
        assert_eq!(dlq_url, DLQ);
        Ok(self.sources.clone())
    }
    async fn receive(
        &self,
        queue_url: &str,
        max: u32,
        _hold: u32,
    ) -> Result<Vec<DeadMessage>, ServiceError> {
        assert_eq!(queue_url, DLQ);
        let mut waiting = self.waiting.lock().unwrap();
        let n = waiting.len().min(max as usize);
        Ok(waiting.drain(..n).collect())
    }
    async fn send(&self, queue_url: &str, message: &DeadMessage) -> Result<(), ServiceError> {
        if self.fail_send {
            return Err(unavailable("SendMessage"));
        }
        self.sent
            .lock()
            .unwrap()
            .push((queue_url.to_owned(), message.clone()));
        Ok(())
    }
    async fn delete(&self, _queue_url: &str, receipt: &str) -> Result<(), ServiceError> {
        self.deleted.lock().unwrap().push(receipt.to_owned());
        Ok(())
    }
    async fn release(&self, _queue_url: &str, receipt: &str) -> Result<(), ServiceError> {
        self.released.lock().unwrap().push(receipt.to_owned());
        Ok(())
    }
}

#[derive(Default)]
struct FakeFunctions {
    invoked: Mutex<Vec<(String, Value)>>,
}

impl Functions for FakeFunctions {
    async fn invoke_async(&self, function: &str, payload: &[u8]) -> Result<(), ServiceError> {
        self.invoked.lock().unwrap().push((
            function.to_owned(),
            serde_json::from_slice(payload).unwrap(),
        ));
        Ok(())
    }
}

fn message(id: &str, body: &str) -> DeadMessage {
    DeadMessage {
        message_id: id.into(),
        receipt_handle: format!("receipt-{id}"),
        body: body.into(),
        attributes: HashMap::new(),
        group_id: None,
    }
}

fn destination_record(id: &str, function_arn: &str, payload: &Value) -> DeadMessage {
    message(
        id,
        &json!({
            "version": "1.0",
            "timestamp": "2026-12-01T10:00:00.000Z",
            "requestContext": {"requestId": "r", "functionArn": format!("{function_arn}:$LATEST"),
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "x"}
        })
        .to_string(),
    )
}

fn request() -> RedriveRequest {
    RedriveRequest {
        queue: DLQ.into(),
        to_queue: None,
        to_function: None,
        max: None,
        dry_run: false,
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    crate::connect::block_on(future).unwrap()
}

#[test]
fn lambda_records_are_reinvoked_with_their_payload_and_queue_messages_go_back() {
    let payload = json!({"detail-type": "CodeBuild Build State Change", "id": "e1"});
    let mut with_attribute = message("q1", r#"{"kind":"retry_after_backoff"}"#);
    with_attribute
        .attributes
        .insert("trace".into(), MessageAttribute::string("abc"));
    let queues = FakeQueues::with(vec![
        with_attribute,
        destination_record("l1", AUTO_RETRY_ARN, &payload),
        destination_record(
            "l2",
            "arn:aws:lambda:us-east-1:123456789012:function:batch-reaper",
            &json!({"source": "aws.events"}),
        ),
    ]);
    let functions = FakeFunctions::default();
    let summary = block_on(redrive(
        &queues,
        &functions,
        &RedriveRequest {
            to_function: Some("auto-retry".into()),
            ..request()
        },
    ))
    .unwrap();

    assert_eq!((summary.moved, summary.failed, summary.left), (2, 0, 1));
    // The function gets the original event, not the record around it.
    assert_eq!(
        *functions.invoked.lock().unwrap(),
        vec![("auto-retry".to_owned(), payload)]
    );
    // The queue message goes to the source queue as it was, attributes and all.
    let sent = queues.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, SOURCE);
    assert_eq!(sent[0].1.body, r#"{"kind":"retry_after_backoff"}"#);
    assert_eq!(
        sent[0].1.attributes["trace"],
        MessageAttribute::string("abc")
    );
    // Moved ones deleted; the other function's record released, untouched.
    assert_eq!(
        *queues.deleted.lock().unwrap(),
        vec!["receipt-q1", "receipt-l1"]
    );
    assert_eq!(*queues.released.lock().unwrap(), vec!["receipt-l2"]);
    let left = summary
        .messages
        .iter()
        .find(|m| m.message_id == "l2")
        .unwrap();
    assert_eq!(left.reason.as_deref(), Some("other_function"));
}

#[test]
fn without_to_function_records_stay_and_never_reach_the_queue() {
    let queues = FakeQueues::with(vec![destination_record(
        "l1",
        AUTO_RETRY_ARN,
        &json!({"a": 1}),
    )]);
    let functions = FakeFunctions::default();
    let summary = block_on(redrive(&queues, &functions, &request())).unwrap();
    assert_eq!((summary.moved, summary.left), (0, 1));
    assert!(queues.sent.lock().unwrap().is_empty());
    assert!(queues.deleted.lock().unwrap().is_empty());
    assert_eq!(
        summary.messages[0].reason.as_deref(),
        Some("needs_to_function")
    );
}

#[test]
fn an_undelivered_event_reinvokes_its_target_with_the_event() {
    let mut event = message("e1", r#"{"detail-type":"CodeBuild Build State Change"}"#);
    event.attributes.insert(
        record::TARGET_ARN_ATTRIBUTE.into(),
        MessageAttribute::string(AUTO_RETRY_ARN),
    );
    let queues = FakeQueues::with(vec![event]);
    let functions = FakeFunctions::default();
    let summary = block_on(redrive(
        &queues,
        &functions,
        &RedriveRequest {
            to_function: Some(AUTO_RETRY_ARN.into()),
            ..request()
        },
    ))
    .unwrap();
    assert_eq!(summary.moved, 1);
    assert_eq!(
        functions.invoked.lock().unwrap()[0].1,
        json!({"detail-type": "CodeBuild Build State Change"})
    );
}

#[test]
fn a_dry_run_moves_nothing_and_releases_everything() {
    let queues = FakeQueues::with(vec![
        message("q1", "a"),
        destination_record("l1", AUTO_RETRY_ARN, &json!({})),
    ]);
    let functions = FakeFunctions::default();
    let summary = block_on(redrive(
        &queues,
        &functions,
        &RedriveRequest {
            to_function: Some("auto-retry".into()),
            dry_run: true,
            ..request()
        },
    ))
    .unwrap();
    assert_eq!((summary.moved, summary.would_move, summary.left), (0, 2, 2));
    assert!(queues.sent.lock().unwrap().is_empty());
    assert!(functions.invoked.lock().unwrap().is_empty());
    assert!(queues.deleted.lock().unwrap().is_empty());
    assert_eq!(queues.released.lock().unwrap().len(), 2);
}

#[test]
fn a_failed_send_keeps_the_message_and_max_bounds_the_run() {
    let queues = FakeQueues {
        fail_send: true,
        ..FakeQueues::with((0..25).map(|i| message(&format!("m{i}"), "x")).collect())
    };
    let functions = FakeFunctions::default();
    let summary = block_on(redrive(
        &queues,
        &functions,
        &RedriveRequest {
            max: Some(12),
            ..request()
        },
    ))
    .unwrap();
    assert_eq!((summary.moved, summary.failed), (0, 12));
    assert!(queues.deleted.lock().unwrap().is_empty());
    assert_eq!(queues.released.lock().unwrap().len(), 12);
    assert_eq!(queues.waiting.lock().unwrap().len(), 13);
}

#[test]
fn no_destination_at_all_is_a_usage_error() {
    let queues = FakeQueues {
        sources: Vec::new(),
        ..FakeQueues::with(vec![message("q1", "a")])
    };
    let err = block_on(redrive(&queues, &FakeFunctions::default(), &request())).unwrap_err();
    assert!(matches!(err, CliError::Usage(_)), "{err}");
    // Several source queues: the operator must choose.
    let queues = FakeQueues {
        sources: vec![SOURCE.into(), format!("{SOURCE}-2")],
        ..FakeQueues::default()
    };
    let err = block_on(redrive(&queues, &FakeFunctions::default(), &request())).unwrap_err();
    assert!(err.to_string().contains("--to-queue"), "{err}");
}
