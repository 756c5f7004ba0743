//! `autopilot dlq redrive`, the real binary against moto's SQS: dead-lettered messages go back
//! to the queue that dead-lettered them, as they were.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use crate::run::{autopilot, unreachable_endpoint};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use harness::moto::MotoServer;
use harness::stack::{self, QueueWithDlq, Redrive};
use serde_json::json;

const REDRIVE: Redrive = Redrive {
    visibility_seconds: 30,
    max_receive_count: 5,
};

async fn sqs(moto: &MotoServer) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto.sdk_config().await)
}

fn attribute(data_type: &str, value: &str) -> MessageAttributeValue {
    let builder = MessageAttributeValue::builder().data_type(data_type);
    let builder = if data_type == "Binary" {
        builder.binary_value(Blob::new(value.as_bytes()))
    } else {
        builder.string_value(value)
    };
    builder.build().unwrap()
}

/// Puts `count` delay-queue-like messages, with attributes of each type, into `queue`.
async fn dead_letter(sqs: &aws_sdk_sqs::Client, queue: &str, count: usize) {
    for n in 0..count {
        sqs.send_message()
            .queue_url(queue)
            .message_body(json!({"kind": "retry_after_backoff", "n": n}).to_string())
            .message_attributes("trace", attribute("String", &format!("t{n}")))
            .message_attributes("attempt", attribute("Number", "2"))
            .message_attributes("blob", attribute("Binary", "bytes"))
            .send()
            .await
            .unwrap();
    }
}

async fn visible(sqs: &aws_sdk_sqs::Client, queue: &str) -> usize {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    answer.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

/// Receives everything in `queue`: (body, attributes) pairs.
async fn drain(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> Vec<(String, HashMap<String, MessageAttributeValue>)> {
    let mut all = Vec::new();
    loop {
        let answer = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        if answer.messages().is_empty() {
            return all;
        }
        for message in answer.messages() {
            all.push((
                message.body().unwrap().to_owned(),
                message.message_attributes().cloned().unwrap_or_default(),
            ));
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn redrive_moves_dead_letters_back_to_their_source_queue() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = sqs(&moto).await;
    let QueueWithDlq { queue, dlq } = stack::create_queue_with_dlq(&sqs, "delay", REDRIVE)
        .await
        .unwrap();
    dead_letter(&sqs, &dlq, 12).await;
    // A Lambda destination record in the same DLQ: not for the delay queue.
    let record = json!({
        "version": "1.0",
        "requestContext": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:auto-retry:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {"detail-type": "CodeBuild Build State Change"},
    });
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(record.to_string())
        .send()
        .await
        .unwrap();

    // A dry run says what would move and moves nothing.
    let dry = autopilot(moto.endpoint(), &["dlq", "redrive", &dlq, "--dry-run"])
        .await
        .ok();
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["moved"], 0);
    assert_eq!(dry["wouldMove"], 12);
    assert_eq!(dry["left"], 13);
    assert_eq!(dry["toQueue"], queue.as_str());
    assert!(stack::queue_is_empty(&sqs, &queue).await.unwrap());
    // ...and hands every message back at once.
    assert_eq!(visible(&sqs, &dlq).await, 13);

    // By name, as an operator types it.
    let moved = autopilot(moto.endpoint(), &["dlq", "redrive", "delay-dlq"])
        .await
        .ok();
    assert_eq!(moved["moved"], 12, "{moved}");
    assert_eq!(moved["failed"], 0);
    assert_eq!(moved["left"], 1);
    let record_outcome = moved["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "lambda_failure")
        .unwrap()
        .clone();
    assert_eq!(record_outcome["outcome"], "left");
    assert_eq!(record_outcome["reason"], "needs_to_function");

    let redriven = drain(&sqs, &queue).await;
    assert_eq!(redriven.len(), 12);
    let mut numbers: Vec<u64> = redriven
        .iter()
        .map(|(body, attributes)| {
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            let n = body["n"].as_u64().unwrap();
            assert_eq!(body["kind"], "retry_after_backoff");
            assert_eq!(
                attributes["trace"].string_value(),
                Some(format!("t{n}").as_str())
            );
            assert_eq!(attributes["attempt"].data_type(), "Number");
            assert_eq!(attributes["attempt"].string_value(), Some("2"));
            assert_eq!(
                attributes["blob"]
                    .binary_value()
                    .map(|b| b.as_ref().to_vec()),
                Some(b"bytes".to_vec())
            );
            n
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..12).collect::<Vec<_>>());
    // Only the record is left in the DLQ, visible again.
    let left = drain(&sqs, &dlq).await;
    assert_eq!(left.len(), 1);
    assert!(left[0].0.contains("requestPayload"));
}

#[tokio::test]
async fn max_and_to_queue_bound_the_redrive_and_failures_are_reported() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = sqs(&moto).await;
    let QueueWithDlq { queue, dlq } = stack::create_queue_with_dlq(&sqs, "start", REDRIVE)
        .await
        .unwrap();
    let elsewhere = stack::create_queue(&sqs, "elsewhere", &[]).await.unwrap();
    dead_letter(&sqs, &dlq, 8).await;

    let run = autopilot(
        moto.endpoint(),
        &[
            "dlq",
            "redrive",
            &dlq,
            "--max",
            "5",
            "--to-queue",
            "elsewhere",
            "--output",
            "table",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("MESSAGE ID"), "{run:?}");
    assert!(run.stdout.contains("moved 5, failed 0, left 0"), "{run:?}");
    assert_eq!(drain(&sqs, &elsewhere).await.len(), 5);
    assert!(stack::queue_is_empty(&sqs, &queue).await.unwrap());
    assert_eq!(visible(&sqs, &dlq).await, 3);

    // A destination that does not exist: every send fails, nothing leaves the DLQ, exit 1.
    let run = autopilot(
        moto.endpoint(),
        &[
            "dlq",
            "redrive",
            &dlq,
            "--to-queue",
            &format!("{elsewhere}-gone"),
        ],
    )
    .await;
    run.fails(1, "3 of 3 dead-lettered messages failed to move");
    assert_eq!(run.json()["failed"], 3);
    assert_eq!(visible(&sqs, &dlq).await, 3);

    // A queue that does not exist, an endpoint nobody answers.
    autopilot(moto.endpoint(), &["dlq", "redrive", "no-such-dlq"])
        .await
        .fails(3, "GetQueueUrl");
    autopilot(&unreachable_endpoint(), &["dlq", "redrive", &dlq])
        .await
        .fails(4, "sqs");
}
