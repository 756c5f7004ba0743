//! An SQS event source mapping: polls a queue (moto's) and invokes a harness function with the
//! batches, as Lambda's event source mapping for SQS does.
//!
//! What Lambda does and this poller reproduces
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>,
//! <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>):
//! - long-polls `ReceiveMessage` (up to `batch_size` messages, all system attributes) and invokes
//!   the function synchronously with `{"Records": [...]}` in Lambda's SQS event shape;
//! - a successful invocation deletes the batch; a failed one (function error, crash, timeout)
//!   deletes nothing, so the messages come back after the queue's visibility timeout, and the
//!   queue's redrive policy (`maxReceiveCount`) moves them to its dead-letter queue — SQS does
//!   that, not Lambda, and moto does it on a later receive;
//! - with `ReportBatchItemFailures` on, the response `{"batchItemFailures": [{"itemIdentifier":
//!   id}]}` keeps only the named messages; a response Lambda cannot read (an identifier that is
//!   empty, missing or not in the batch, a `batchItemFailures` that is not a list) fails the
//!   whole batch, and an empty or absent list is a full success.
//!
//! One poller per mapping and the function's single sandbox mean one batch at a time; Lambda
//! scales pollers out, which only changes how fast, not what happens to each message.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{HarnessError, RunningFunction, local_sqs};

/// Lambda's largest batch for a standard queue without a batching window.
const MAX_BATCH: i32 = 10;
/// Pause after a failed `ReceiveMessage` (moto restarting, a wrong URL) before polling again.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// The configuration of one SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSourceSpec {
    /// The queue polled.
    pub queue_url: String,
    /// The SQS endpoint serving it (moto's `http://127.0.0.1:PORT`).
    pub sqs_endpoint: String,
    /// The queue's region.
    pub region: String,
    /// Most messages per invocation (1..=10).
    pub batch_size: i32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`: honour partial batch responses.
    pub report_batch_item_failures: bool,
    /// `WaitTimeSeconds` of each receive (long polling; 0 polls without waiting).
    pub poll_wait_seconds: i32,
}

impl SqsSourceSpec {
    /// A mapping of `queue_url` in us-east-1: batches of 10, partial batch responses on (as the
    /// template configures the delay queue), 1 s long polls.
    pub fn new(queue_url: impl Into<String>, sqs_endpoint: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            sqs_endpoint: sqs_endpoint.into(),
            region: "us-east-1".to_owned(),
            batch_size: MAX_BATCH,
            report_batch_item_failures: true,
            poll_wait_seconds: 1,
        }
    }
}

/// What the poller has done so far (for tests and the demo to wait on, never to time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqsSourceStats {
    /// Invocations made (one per batch).
    pub invocations: u64,
    /// Messages handed to the function, counting each delivery.
    pub received: u64,
    /// Messages deleted after the function processed them.
    pub deleted: u64,
    /// Messages left on the queue to come back (failed batch or reported item failures).
    pub returned: u64,
    /// Invocations that failed as a whole (error, crash, timeout, unreadable response).
    pub failed_invocations: u64,
    /// The last SQS error the poller met, if any.
    pub last_sqs_error: Option<String>,
}

/// A running event source mapping; stop it with [`SqsEventSource::stop`].
pub struct SqsEventSource {
    stats: Arc<Mutex<SqsSourceStats>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts polling `spec.queue_url` for `function`.
pub async fn start(
    spec: SqsSourceSpec,
    function: RunningFunction,
) -> Result<SqsEventSource, HarnessError> {
    if !(1..=MAX_BATCH).contains(&spec.batch_size) {
        return Err(HarnessError::InvalidSource(format!(
            "batch size {} is outside 1..={MAX_BATCH}",
            spec.batch_size
        )));
    }
    let sqs = local_sqs::client(&spec.sqs_endpoint, &spec.region);
    let queue_arn = queue_arn(&sqs, &spec).await?;
    let stats = Arc::new(Mutex::new(SqsSourceStats::default()));
    let (stop, stopped) = watch::channel(false);
    let poller = Poller {
        spec,
        sqs,
        queue_arn,
        function,
        stats: stats.clone(),
    };
    let task = tokio::spawn(poller.run(stopped));
    Ok(SqsEventSource { stats, stop, task })
}

impl SqsEventSource {
    /// A snapshot of what the poller has done.
    pub fn stats(&self) -> SqsSourceStats {
        self.stats
            .lock()
            .map(|stats| stats.clone())
            .unwrap_or_default()
    }

    /// Stops polling; a batch in flight is finished (and settled) first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The queue's ARN (`eventSourceARN`), as `GetQueueAttributes` reports it.
async fn queue_arn(
    sqs: &aws_sdk_sqs::Client,
    spec: &SqsSourceSpec,
) -> Result<String, HarnessError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&spec.queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| {
            HarnessError::InvalidSource(format!(
                "queue {} is not readable: {}",
                spec.queue_url,
                local_sqs::describe(error)
            ))
        })?;
    attributes
        .attributes()
        .and_then(|map| map.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| {
            HarnessError::InvalidSource(format!("queue {} has no QueueArn", spec.queue_url))
        })
}

struct Poller {
    spec: SqsSourceSpec,
    sqs: aws_sdk_sqs::Client,
    queue_arn: String,
    function: RunningFunction,
    stats: Arc<Mutex<SqsSourceStats>>,
}

impl Poller {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        loop {
            if *stopped.borrow() {
                return;
            }
            let received = tokio::select! {
                received = self.receive() => received,
                _ = stopped.changed() => return,
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(error) => {
                    self.update(|stats| stats.last_sqs_error = Some(error));
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            if !self.deliver(&messages).await {
                return;
            }
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.spec.queue_url)
            .max_number_of_messages(self.spec.batch_size)
            .wait_time_seconds(self.spec.poll_wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(local_sqs::describe)?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Invokes the function with one batch and settles it. False when the function is gone.
    async fn deliver(&self, messages: &[Message]) -> bool {
        let event = sqs_event(messages, &self.queue_arn, &self.spec.region);
        let ids: Vec<String> = messages
            .iter()
            .map(|message| message.message_id().unwrap_or_default().to_owned())
            .collect();
        let result = match self.function.invoke(event).await {
            Ok(invocation) => invocation.result,
            // Shut down: leave the batch on the queue, as a deleted mapping would.
            Err(_) => return false,
        };
        let settlement = settle(&ids, &result, self.spec.report_batch_item_failures);
        let done: Vec<&Message> = messages
            .iter()
            .zip(&ids)
            .filter(|(_, id)| settlement.deletes(id))
            .map(|(message, _)| message)
            .collect();
        let deleted = self.delete(&done).await;
        let count = messages.len() as u64;
        self.update(|stats| {
            stats.invocations += 1;
            stats.received += count;
            stats.deleted += deleted as u64;
            stats.returned += count - done.len() as u64;
            if settlement == Settlement::Failed {
                stats.failed_invocations += 1;
            }
        });
        true
    }

    /// Deletes the processed messages; returns how many SQS confirmed.
    async fn delete(&self, messages: &[&Message]) -> usize {
        if messages.is_empty() {
            return 0;
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.spec.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => output.successful().len(),
            Err(error) => {
                // Not deleted means delivered again later: at-least-once, as with Lambda.
                self.update(|stats| stats.last_sqs_error = Some(local_sqs::describe(error)));
                0
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut SqsSourceStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            change(&mut stats);
        }
    }
}

/// What happens to a batch after the invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settlement {
    /// Every message is deleted.
    AllDone,
    /// Every message except these (the reported item failures) is deleted.
    AllBut(HashSet<String>),
    /// Nothing is deleted; the whole batch comes back.
    Failed,
}

impl Settlement {
    fn deletes(&self, message_id: &str) -> bool {
        match self {
            Self::AllDone => true,
            Self::AllBut(failed) => !failed.contains(message_id),
            Self::Failed => false,
        }
    }
}

/// Lambda's reading of the invocation's outcome for a batch of `ids`.
fn settle(
    ids: &[String],
    result: &Result<Value, super::FunctionError>,
    report_batch_item_failures: bool,
) -> Settlement {
    let Ok(response) = result else {
        return Settlement::Failed;
    };
    if !report_batch_item_failures {
        return Settlement::AllDone;
    }
    let failures = match response {
        Value::Null => return Settlement::AllDone,
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return Settlement::AllDone,
            Some(Value::Array(failures)) => failures,
            Some(_) => return Settlement::Failed,
        },
        // Not the partial-batch response shape: Lambda cannot read it.
        _ => return Settlement::Failed,
    };
    let mut failed = HashSet::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && ids.iter().any(|known| known == id) => {
                failed.insert(id.to_owned());
            }
            _ => return Settlement::Failed,
        }
    }
    if failed.is_empty() {
        Settlement::AllDone
    } else {
        Settlement::AllBut(failed)
    }
}

/// `{"Records": [...]}` in the shape Lambda gives an SQS-triggered function.
fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let attributes: Map<String, Value> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
                .collect();
            let message_attributes: Map<String, Value> = message
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| {
                    let binary = |blob: &aws_sdk_sqs::primitives::Blob| {
                        aws_smithy_types::base64::encode(blob.as_ref())
                    };
                    let mut attribute = json!({
                        "stringListValues": value.string_list_values(),
                        "binaryListValues": value.binary_list_values().iter().map(binary).collect::<Vec<_>>(),
                        "dataType": value.data_type(),
                    });
                    if let Some(text) = value.string_value() {
                        attribute["stringValue"] = json!(text);
                    }
                    if let Some(blob) = value.binary_value() {
                        attribute["binaryValue"] = json!(binary(blob));
                    }
                    (name.clone(), attribute)
                })
                .collect();
            let mut record = json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            });
            if let Some(md5) = message.md5_of_message_attributes() {
                record["md5OfMessageAttributes"] = json!(md5);
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::lambda::FunctionError;

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn failed_ids(settlement: &Settlement) -> Vec<&str> {
        let ids = ["a", "b", "c"];
        ids.into_iter()
            .filter(|id| !settlement.deletes(id))
            .collect()
    }

    #[test]
    fn a_function_error_returns_the_whole_batch() {
        let error = Err(FunctionError {
            error_type: "Runtime.ExitError".into(),
            error_message: "exit status 1".into(),
        });
        assert_eq!(settle(&ids(), &error, true), Settlement::Failed);
        assert_eq!(settle(&ids(), &error, false), Settlement::Failed);
    }

    #[test]
    fn success_without_reported_failures_deletes_everything() {
        for response in [
            json!(null),
            json!({}),
            json!({"batchItemFailures": null}),
            json!({"batchItemFailures": []}),
        ] {
            assert_eq!(
                settle(&ids(), &Ok(response.clone()), true),
                Settlement::AllDone,
                "{response}"
            );
        }
    }

    #[test]
    fn reported_item_failures_stay_on_the_queue() {
        let response = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        let settlement = settle(&ids(), &Ok(response), true);
        assert_eq!(failed_ids(&settlement), ["b"]);
    }

    #[test]
    fn without_report_batch_item_failures_the_response_is_ignored() {
        let response = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(settle(&ids(), &Ok(response), false), Settlement::AllDone);
    }

    #[test]
    fn an_unreadable_partial_response_fails_the_whole_batch() {
        for response in [
            json!({"batchItemFailures": [{"itemIdentifier": "zz"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"identifier": "a"}]}),
            json!({"batchItemFailures": "a"}),
            json!("done"),
        ] {
            assert_eq!(
                settle(&ids(), &Ok(response.clone()), true),
                Settlement::Failed,
                "{response}"
            );
        }
    }
}
