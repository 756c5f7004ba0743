//! [`StartQueue`] port over `aws-sdk-sqs`: the work goes out with `SendMessageBatch`, each
//! message's body one [`StarterWork`] as JSON.
//!
//! SQS accepts at most [`MAX_BATCH_ENTRIES`] messages per call and a size limit per message and
//! per call, so the work is cut into batches within both. A batch call can succeed while some of
//! its entries fail (`Failed` in the answer); those are sent once more, and what still fails is
//! an error. Every message is checked before the first is sent, so an oversized piece of work
//! fails the whole call without sending anything.

use std::future::Future;

use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchRequestEntry};

use super::service_error::map_service_error;
use crate::ports::{ServiceError, StartQueue};
use crate::start::StarterWork;

const SERVICE: &str = "sqs";
const OP: &str = "SendMessageBatch";

/// Most entries one `SendMessageBatch` call accepts.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Largest message body sent, and the largest sum of bodies per call: 256 KiB, SQS's limit for
/// queues created before its 1 MiB raise and still the limit of a queue whose
/// `MaximumMessageSize` was never changed. A [`StarterWork`] is a few hundred bytes, so only
/// something badly wrong comes near it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The SQS start queue (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct SqsStartQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsStartQueue {
    /// Wraps a configured SDK client and the queue's URL.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// One `SendMessageBatch` call; the entries SQS did not accept.
    async fn send_batch(&self, entries: Vec<Entry>) -> Result<Vec<EntryFailure>, ServiceError> {
        let entries = entries
            .into_iter()
            .map(|entry| {
                SendMessageBatchRequestEntry::builder()
                    .id(entry.id)
                    .message_body(entry.body)
                    .build()
                    .map_err(|e| rejected(format!("could not build a batch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| map_service_error(SERVICE, OP, e))?;
        Ok(output.failed().iter().map(EntryFailure::from).collect())
    }
}

impl StartQueue for SqsStartQueue {
    async fn enqueue(&self, work: &[StarterWork]) -> Result<(), ServiceError> {
        let bodies = work
            .iter()
            .map(message_body)
            .collect::<Result<Vec<_>, _>>()?;
        for batch in batches(bodies) {
            send_with_one_retry(batch, |entries| self.send_batch(entries)).await?;
        }
        Ok(())
    }
}

/// One message of a batch: its id within the batch ("0" to "9") and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: String,
    body: String,
}

/// An entry SQS did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryFailure {
    id: String,
    /// True when the request was at fault (sending it again cannot help).
    sender_fault: bool,
    code: String,
    message: String,
}

impl From<&BatchResultErrorEntry> for EntryFailure {
    fn from(entry: &BatchResultErrorEntry) -> Self {
        Self {
            id: entry.id().to_owned(),
            sender_fault: entry.sender_fault(),
            code: entry.code().to_owned(),
            message: entry.message().unwrap_or_default().to_owned(),
        }
    }
}

/// The work's JSON, refused when SQS would refuse it.
fn message_body(work: &StarterWork) -> Result<String, ServiceError> {
    let body = serde_json::to_string(work)
        .map_err(|e| rejected(format!("starter work is not serialisable: {e}")))?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(rejected(format!(
            "starter work of {} bytes exceeds the {MAX_MESSAGE_BYTES}-byte message limit",
            body.len()
        )));
    }
    Ok(body)
}

/// Bodies in order, cut into batches of at most [`MAX_BATCH_ENTRIES`] entries and
/// [`MAX_MESSAGE_BYTES`] bytes in all, each entry's id its index in its batch.
fn batches(bodies: Vec<String>) -> Vec<Vec<Entry>> {
    let mut batches: Vec<Vec<Entry>> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut current_bytes = 0;
    for body in bodies {
        if current.len() == MAX_BATCH_ENTRIES || current_bytes + body.len() > MAX_MESSAGE_BYTES {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += body.len();
        current.push(Entry {
            id: current.len().to_string(),
            body,
        });
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Sends `entries` with `send`, then once more those that failed for a reason on SQS's side.
/// Entries refused as the sender's fault make the result `Rejected` (resending cannot help);
/// entries that fail twice make it `Unavailable`.
async fn send_with_one_retry<F, Fut>(entries: Vec<Entry>, mut send: F) -> Result<(), ServiceError>
where
    F: FnMut(Vec<Entry>) -> Fut,
    Fut: Future<Output = Result<Vec<EntryFailure>, ServiceError>>,
{
    let total = entries.len();
    let failures = send(entries.clone()).await?;
    if failures.is_empty() {
        return Ok(());
    }
    if failures.iter().any(|f| f.sender_fault) {
        return Err(entries_failed(total, &failures));
    }
    let again: Vec<Entry> = entries
        .into_iter()
        .filter(|entry| failures.iter().any(|f| f.id == entry.id))
        .collect();
    let failures = send(again).await?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(entries_failed(total, &failures))
    }
}

/// "n of m messages not accepted", `Rejected` when any was the sender's fault.
fn entries_failed(total: usize, failures: &[EntryFailure]) -> ServiceError {
    let first = failures
        .first()
        .map(|f| format!("{}: {}", f.code, f.message))
        .unwrap_or_default();
    let message = format!(
        "{} of {total} messages of a batch not accepted (first: {first})",
        failures.len()
    );
    if failures.iter().any(|f| f.sender_fault) {
        rejected(message)
    } else {
        ServiceError::Unavailable {
            service: SERVICE,
            operation: OP,
            message,
        }
    }
}

fn rejected(message: String) -> ServiceError {
    ServiceError::Rejected {
        service: SERVICE,
        operation: OP,
        message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Mutex;

    use super::*;
    use crate::start::StartIdentity;

    fn work(n: usize) -> StarterWork {
        StarterWork::StopPullRequest {
            project: format!("web-{n}"),
            pull_request: n.to_string(),
            identity: StartIdentity::Trigger {
                event_id: format!("event-{n}"),
            },
        }
    }

    fn bodies(sizes: &[usize]) -> Vec<String> {
        sizes.iter().map(|&size| "x".repeat(size)).collect()
    }

    fn ids(batch: &[Entry]) -> Vec<&str> {
        batch.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn batches_hold_at_most_ten_entries_numbered_from_zero() {
        let cut = batches(bodies(&[10; 23]));
        assert_eq!(
            cut.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 3]
        );
        assert_eq!(
            ids(&cut[0]),
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        );
        assert_eq!(ids(&cut[2]), ["0", "1", "2"]);
        assert!(batches(Vec::new()).is_empty());
    }

    #[test]
    fn batches_stay_within_the_size_limit_in_order() {
        let third = MAX_MESSAGE_BYTES / 3;
        let sizes = [third, third, third, 1, MAX_MESSAGE_BYTES, 5];
        let cut = batches(bodies(&sizes));
        let cut_sizes: Vec<Vec<usize>> = cut
            .iter()
            .map(|batch| batch.iter().map(|e| e.body.len()).collect())
            .collect();
        assert_eq!(
            cut_sizes,
            vec![
                vec![third, third, third, 1],
                vec![MAX_MESSAGE_BYTES],
                vec![5]
            ]
        );
    }

    #[test]
    fn bodies_are_the_works_json_and_oversized_work_is_rejected() {
        let body = message_body(&work(1)).unwrap();
        let read: StarterWork = serde_json::from_str(&body).unwrap();
        assert_eq!(read, work(1));

        let huge = StarterWork::StopPullRequest {
            project: "p".repeat(MAX_MESSAGE_BYTES),
            pull_request: "1".into(),
            identity: StartIdentity::Trigger {
                event_id: "e".into(),
            },
        };
        let error = message_body(&huge).unwrap_err();
        assert!(matches!(error, ServiceError::Rejected { .. }), "{error:?}");
        assert!(error.to_string().contains("message limit"), "{error}");
    }

    fn failure(id: &str, sender_fault: bool) -> EntryFailure {
        EntryFailure {
            id: id.into(),
            sender_fault,
            code: "InternalError".into(),
            message: "try again".into(),
        }
    }

    /// A fake `SendMessageBatch`: answers each call with the next scripted failures and records
    /// the ids it was sent.
    struct ScriptedSend {
        answers: Mutex<Vec<Result<Vec<EntryFailure>, ServiceError>>>,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl ScriptedSend {
        fn new(mut answers: Vec<Result<Vec<EntryFailure>, ServiceError>>) -> Self {
            answers.reverse();
            Self {
                answers: Mutex::new(answers),
                calls: Mutex::new(Vec::new()),
            }
        }

        async fn send(&self, entries: Vec<Entry>) -> Result<Vec<EntryFailure>, ServiceError> {
            self.calls
                .lock()
                .unwrap()
                .push(entries.into_iter().map(|e| e.id).collect());
            self.answers
                .lock()
                .unwrap()
                .pop()
                .expect("an unexpected call")
        }

        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }
    }

    fn three_entries() -> Vec<Entry> {
        batches(bodies(&[1, 2, 3])).remove(0)
    }

    #[tokio::test]
    async fn a_clean_batch_is_sent_once() {
        let fake = ScriptedSend::new(vec![Ok(vec![])]);
        send_with_one_retry(three_entries(), |e| fake.send(e))
            .await
            .unwrap();
        assert_eq!(fake.calls(), vec![vec!["0", "1", "2"]]);
    }

    #[tokio::test]
    async fn failed_entries_are_sent_once_more_and_only_they() {
        let fake = ScriptedSend::new(vec![
            Ok(vec![failure("0", false), failure("2", false)]),
            Ok(vec![]),
        ]);
        send_with_one_retry(three_entries(), |e| fake.send(e))
            .await
            .unwrap();
        assert_eq!(fake.calls(), vec![vec!["0", "1", "2"], vec!["0", "2"]]);
    }

    #[tokio::test]
    async fn entries_failing_twice_are_unavailable_with_a_count() {
        let fake = ScriptedSend::new(vec![
            Ok(vec![failure("0", false), failure("2", false)]),
            Ok(vec![failure("2", false)]),
        ]);
        let error = send_with_one_retry(three_entries(), |e| fake.send(e))
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        assert!(error.to_string().contains("1 of 3 messages"), "{error}");
        assert_eq!(fake.calls().len(), 2);
    }

    #[tokio::test]
    async fn a_sender_fault_is_rejected_without_resending() {
        let fake = ScriptedSend::new(vec![Ok(vec![failure("1", true), failure("2", false)])]);
        let error = send_with_one_retry(three_entries(), |e| fake.send(e))
            .await
            .unwrap_err();
        assert!(matches!(error, ServiceError::Rejected { .. }), "{error:?}");
        assert!(error.to_string().contains("2 of 3 messages"), "{error}");
        assert_eq!(fake.calls().len(), 1);
    }

    #[tokio::test]
    async fn a_sender_fault_on_the_resend_is_rejected() {
        let fake = ScriptedSend::new(vec![
            Ok(vec![failure("0", false)]),
            Ok(vec![failure("0", true)]),
        ]);
        let error = send_with_one_retry(three_entries(), |e| fake.send(e))
            .await
            .unwrap_err();
        assert!(matches!(error, ServiceError::Rejected { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_failed_call_is_its_error() {
        let unavailable = ServiceError::Unavailable {
            service: SERVICE,
            operation: OP,
            message: "throttled".into(),
        };
        let fake = ScriptedSend::new(vec![Err(unavailable.clone())]);
        let error = send_with_one_retry(three_entries(), |e| fake.send(e))
            .await
            .unwrap_err();
        assert_eq!(error, unavailable);
    }
}
