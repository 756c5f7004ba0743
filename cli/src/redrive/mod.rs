//! `autopilot dlq redrive <queue>`: moves dead-lettered work back to where it failed, after an
//! incident is over. Generic over two small ports ([`Queues`], [`Functions`]) so the decisions
//! are tested with fakes; `sqs.rs` and `lambda.rs` implement them over the SDK.
//!
//! Each message is deleted from the dead-letter queue only after it was sent (or the function
//! invoked): a crash in between leaves a duplicate, never a loss, and the consumers' ledger
//! makes the duplicate harmless. Messages not moved are made visible again at the end.

mod lambda;
mod record;
mod sqs;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use autopilot::ports::ServiceError;
use serde::Serialize;
use serde_json::json;

use crate::args::RedriveArgs;
use crate::connect;
use crate::error::CliError;
use crate::output::{self, Table};

pub use lambda::LambdaFunctions;
pub use record::{DeadLetterKind, classify, function_name};
pub use sqs::SqsQueues;

/// Most messages one `ReceiveMessage` returns.
pub const RECEIVE_LIMIT: u32 = 10;

/// How long a received message stays hidden from other consumers while the redrive runs (and
/// so is not received twice by the redrive itself); the ones not moved are released earlier.
pub const HOLD_SECONDS: u32 = 300;

/// One message attribute, kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number`, `Binary` or a custom `String.x` type.
    pub data_type: String,
    /// The value of a `String` or `Number` attribute.
    pub string_value: Option<String>,
    /// The value of a `Binary` attribute.
    pub binary_value: Option<Vec<u8>>,
}

#[cfg(test)]
impl MessageAttribute {
    /// A `String` attribute.
    pub fn string(value: &str) -> Self {
        Self {
            data_type: "String".to_owned(),
            string_value: Some(value.to_owned()),
            binary_value: None,
        }
    }
}

/// One message received from the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMessage {
    /// SQS's message id.
    pub message_id: String,
    /// The handle of this receive (delete, release).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Its message attributes.
    pub attributes: HashMap<String, MessageAttribute>,
    /// FIFO message group, when it came from a FIFO queue.
    pub group_id: Option<String>,
}

/// The SQS side of a redrive.
pub trait Queues: Send + Sync {
    /// The URL of a queue given by URL or name.
    fn queue_url(&self, name_or_url: &str) -> impl Future<Output = Result<String, ServiceError>>;
    /// URLs of the queues whose redrive policy names `dlq_url` (`ListDeadLetterSourceQueues`).
    fn source_queues(
        &self,
        dlq_url: &str,
    ) -> impl Future<Output = Result<Vec<String>, ServiceError>>;
    /// Up to `max` messages, hidden from others for `hold_seconds`.
    fn receive(
        &self,
        queue_url: &str,
        max: u32,
        hold_seconds: u32,
    ) -> impl Future<Output = Result<Vec<DeadMessage>, ServiceError>>;
    /// Sends `message`'s body and attributes to `queue_url`.
    fn send(
        &self,
        queue_url: &str,
        message: &DeadMessage,
    ) -> impl Future<Output = Result<(), ServiceError>>;
    /// Deletes a received message.
    fn delete(
        &self,
        queue_url: &str,
        receipt_handle: &str,
    ) -> impl Future<Output = Result<(), ServiceError>>;
    /// Makes a received message visible again at once.
    fn release(
        &self,
        queue_url: &str,
        receipt_handle: &str,
    ) -> impl Future<Output = Result<(), ServiceError>>;
}

/// The Lambda side of a redrive.
pub trait Functions: Send + Sync {
    /// Invokes `function` asynchronously (`InvocationType: Event`) with `payload`.
    fn invoke_async(
        &self,
        function: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<(), ServiceError>>;
}

/// What to redrive, resolved from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveRequest {
    /// The dead-letter queue (URL or name).
    pub queue: String,
    /// Where queue messages go (URL or name); default: the DLQ's only source queue.
    pub to_queue: Option<String>,
    /// The function whose records are re-invoked.
    pub to_function: Option<String>,
    /// At most this many messages.
    pub max: Option<usize>,
    /// Move nothing, say what would move.
    pub dry_run: bool,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageOutcome {
    /// SQS's message id.
    pub message_id: String,
    /// `queue_message`, `lambda_failure`, `undelivered_event`, `sns_delivery`.
    pub kind: &'static str,
    /// `moved`, `would_move` (dry run), `left` or `failed`.
    pub outcome: &'static str,
    /// The queue URL or function it went (or would go) to.
    pub to: Option<String>,
    /// Why it was left, or what failed.
    pub reason: Option<String>,
}

/// The redrive's summary: counts and one line per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveSummary {
    /// The dead-letter queue's URL.
    pub queue: String,
    /// Where queue messages went, if anywhere.
    pub to_queue: Option<String>,
    /// The function records went to, if any.
    pub to_function: Option<String>,
    /// Nothing was moved.
    pub dry_run: bool,
    /// Sent (or invoked) and deleted from the dead-letter queue.
    pub moved: usize,
    /// Would have moved (dry run only).
    pub would_move: usize,
    /// Could not be moved (still in the dead-letter queue, or sent but not deleted).
    pub failed: usize,
    /// Left in the dead-letter queue on purpose (no destination for their kind, dry run).
    pub left: usize,
    /// Every message handled.
    pub messages: Vec<MessageOutcome>,
}

/// Where one message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Queue(String),
    Function { name: String, payload: Vec<u8> },
    Leave(&'static str),
}

fn plan(
    message: &DeadMessage,
    to_queue: Option<&str>,
    to_function: Option<&str>,
) -> (DeadLetterKind, Plan) {
    let kind = classify(message);
    let to_own_function = |failed: &str, payload: Vec<u8>| match to_function {
        None => Plan::Leave("needs_to_function"),
        Some(name) if function_name(failed) == function_name(name) => Plan::Function {
            name: name.to_owned(),
            payload,
        },
        Some(_) => Plan::Leave("other_function"),
    };
    let plan = match &kind {
        DeadLetterKind::QueueMessage => to_queue
            .map_or(Plan::Leave("no_destination_queue"), |url| {
                Plan::Queue(url.to_owned())
            }),
        DeadLetterKind::LambdaFailure { function, payload } => match function {
            Some(arn) => to_own_function(arn, payload.to_string().into_bytes()),
            None => Plan::Leave("unknown_function"),
        },
        DeadLetterKind::UndeliveredEvent { target } if target.contains(":lambda:") => {
            to_own_function(target, message.body.clone().into_bytes())
        }
        DeadLetterKind::UndeliveredEvent { .. } => Plan::Leave("target_not_a_function"),
        DeadLetterKind::SnsDelivery => Plan::Leave("sns_delivery_failure"),
    };
    (kind, plan)
}

/// The queue that queue messages go back to: `--to-queue`, else the dead-letter queue's only
/// source queue; `None` when there is none.
async fn destination<Q: Queues>(
    queues: &Q,
    dlq_url: &str,
    to_queue: Option<&str>,
) -> Result<Option<String>, CliError> {
    if let Some(queue) = to_queue {
        return Ok(Some(queues.queue_url(queue).await?));
    }
    let mut sources = queues.source_queues(dlq_url).await?;
    match sources.len() {
        0 | 1 => Ok(sources.pop()),
        _ => Err(CliError::Usage(format!(
            "several queues dead-letter into {dlq_url} ({}): choose one with --to-queue",
            sources.join(", ")
        ))),
    }
}

/// Runs the redrive of `request`.
pub async fn redrive<Q: Queues, F: Functions>(
    queues: &Q,
    functions: &F,
    request: &RedriveRequest,
) -> Result<RedriveSummary, CliError> {
    let dlq = queues.queue_url(&request.queue).await?;
    let to_queue = destination(queues, &dlq, request.to_queue.as_deref()).await?;
    if to_queue.is_none() && request.to_function.is_none() {
        return Err(CliError::Usage(format!(
            "no queue dead-letters into {dlq} (ListDeadLetterSourceQueues is empty): give \
             --to-queue, or --to-function for Lambda destination records"
        )));
    }
    let mut summary = RedriveSummary {
        queue: dlq.clone(),
        to_queue: to_queue.clone(),
        to_function: request.to_function.clone(),
        dry_run: request.dry_run,
        moved: 0,
        would_move: 0,
        failed: 0,
        left: 0,
        messages: Vec::new(),
    };
    let mut seen = HashSet::new();
    // Receipts of messages that stay: made visible again when the run ends (not at once, or
    // the next receive would hand them back).
    let mut held = Vec::new();
    let result = async {
        loop {
            let handled = summary.messages.len();
            let want = request
                .max
                .map_or(RECEIVE_LIMIT as usize, |max| max.saturating_sub(handled))
                .min(RECEIVE_LIMIT as usize);
            if want == 0 {
                return Ok(());
            }
            let want = u32::try_from(want).unwrap_or(RECEIVE_LIMIT);
            let received = queues.receive(&dlq, want, HOLD_SECONDS).await?;
            // Empty, or only messages seen before (their hold ran out): nothing new is left.
            let fresh: Vec<DeadMessage> = received
                .into_iter()
                .filter(|m| seen.insert(m.message_id.clone()))
                .collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for message in fresh {
                let outcome = handle(
                    queues,
                    functions,
                    &dlq,
                    &message,
                    to_queue.as_deref(),
                    request,
                    &mut held,
                )
                .await;
                match outcome.outcome {
                    "moved" => summary.moved += 1,
                    "would_move" => {
                        summary.would_move += 1;
                        summary.left += 1;
                    }
                    "failed" => summary.failed += 1,
                    _ => summary.left += 1,
                }
                summary.messages.push(outcome);
            }
        }
    }
    .await;
    for receipt in &held {
        // Best effort: a message not released becomes visible when its hold ends anyway.
        let _ = queues.release(&dlq, receipt).await;
    }
    result
        .map(|()| summary)
        .map_err(|err: ServiceError| err.into())
}

async fn handle<Q: Queues, F: Functions>(
    queues: &Q,
    functions: &F,
    dlq: &str,
    message: &DeadMessage,
    to_queue: Option<&str>,
    request: &RedriveRequest,
    held: &mut Vec<String>,
) -> MessageOutcome {
    let (kind, plan) = plan(message, to_queue, request.to_function.as_deref());
    let mut outcome = MessageOutcome {
        message_id: message.message_id.clone(),
        kind: kind.as_str(),
        outcome: "left",
        to: None,
        reason: None,
    };
    let sent = match plan {
        Plan::Leave(reason) => {
            outcome.reason = Some(reason.to_owned());
            held.push(message.receipt_handle.clone());
            return outcome;
        }
        Plan::Queue(url) => {
            outcome.to = Some(url.clone());
            if request.dry_run {
                None
            } else {
                Some(queues.send(&url, message).await)
            }
        }
        Plan::Function { name, payload } => {
            outcome.to = Some(name.clone());
            if request.dry_run {
                None
            } else {
                Some(functions.invoke_async(&name, &payload).await)
            }
        }
    };
    match sent {
        None => {
            outcome.outcome = "would_move";
            held.push(message.receipt_handle.clone());
        }
        Some(Err(err)) => {
            outcome.outcome = "failed";
            outcome.reason = Some(err.to_string());
            held.push(message.receipt_handle.clone());
        }
        Some(Ok(())) => match queues.delete(dlq, &message.receipt_handle).await {
            Ok(()) => outcome.outcome = "moved",
            Err(err) => {
                // Not released: it comes back when its hold ends, and would be sent twice.
                outcome.outcome = "failed";
                outcome.reason = Some(format!(
                    "sent, but not deleted from the dead-letter queue (it may arrive twice): {err}"
                ));
            }
        },
    }
    outcome
}

/// `autopilot dlq redrive`.
pub async fn run(args: &RedriveArgs) -> Result<(), CliError> {
    let request = RedriveRequest {
        queue: args.queue.clone(),
        to_queue: args.to_queue.clone(),
        to_function: args.to_function.clone(),
        max: args.max.map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
        dry_run: args.dry_run,
    };
    let (clients, config) = connect::clients(&args.aws).await?;
    let queues = SqsQueues::new(clients.sqs.clone());
    let functions = LambdaFunctions::new(aws_sdk_lambda::Client::new(&config));
    let summary = redrive(&queues, &functions, &request).await?;
    let document = json!(summary);
    output::print(args.aws.output, &document, || table(&summary))?;
    if summary.failed > 0 {
        return Err(CliError::RedrivePartial {
            failed: summary.failed,
            handled: summary.messages.len(),
        });
    }
    Ok(())
}

fn table(summary: &RedriveSummary) -> Table {
    let mut table = Table::new(&["MESSAGE ID", "KIND", "OUTCOME", "TO", "REASON"]);
    table.rows = summary
        .messages
        .iter()
        .map(|m| {
            vec![
                m.message_id.clone(),
                m.kind.to_owned(),
                m.outcome.to_owned(),
                m.to.clone().unwrap_or_else(|| "-".into()),
                m.reason.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table.footer.push(format!(
        "{}moved {}, failed {}, left {}{}",
        if summary.dry_run { "dry run: " } else { "" },
        summary.moved,
        summary.failed,
        summary.left,
        if summary.dry_run {
            format!(" ({} would move)", summary.would_move)
        } else {
            String::new()
        }
    ));
    table
}
