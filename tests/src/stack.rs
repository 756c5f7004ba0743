//! What the end-to-end stacks set up and read back around the function under test: SQS queues
//! (with their dead-letter queues) in moto, webhook secrets in Secrets Manager, CodeBuild
//! projects and raw CodeBuild calls against codebuild-local, and bounded waits on a condition.
//!
//! Every helper returns a [`StackError`] rather than panicking, so a test decides what a failure
//! means (usually `unwrap`, which names the step that broke).

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use crate::lambda::{self, FunctionSpec, HarnessError, RunningFunction};

/// Upper bound of every wait on a condition (never reached when things work): a bound, not an
/// expectation, so no test asserts how long anything took.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(100);

/// Long-poll wait of each receive in [`take_messages`].
const RECEIVE_WAIT_SECONDS: i32 = 1;

/// Why setting up or reading back a stack failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// An SQS call failed.
    #[error("SQS {operation} on {queue}: {message}")]
    Sqs {
        /// The operation.
        operation: &'static str,
        /// The queue (name or URL).
        queue: String,
        /// The SDK's error, with its source chain.
        message: String,
    },
    /// Secrets Manager refused to create a secret.
    #[error("Secrets Manager CreateSecret {name}: {message}")]
    SecretsManager {
        /// The secret's name.
        name: String,
        /// The SDK's error, with its source chain.
        message: String,
    },
    /// A CodeBuild call did not reach the emulator or its answer was not JSON.
    #[error("CodeBuild {operation}: {source}")]
    CodeBuildTransport {
        /// The operation.
        operation: String,
        /// What went wrong on the way.
        source: reqwest::Error,
    },
    /// CodeBuild answered a call with an error.
    #[error("CodeBuild {operation} answered {status}: {body}")]
    CodeBuild {
        /// The operation.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: Value,
    },
    /// A condition did not come true within [`PATIENCE`].
    #[error("gave up waiting until {what}")]
    GaveUp {
        /// The condition, in words.
        what: String,
    },
}

fn sqs_error(
    operation: &'static str,
    queue: &str,
    error: impl std::error::Error + 'static,
) -> StackError {
    StackError::Sqs {
        operation,
        queue: queue.to_owned(),
        message: aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
    }
}

/// Waits (bounded by [`PATIENCE`]) until `condition` holds.
pub async fn eventually<F, Fut>(what: &str, condition: F) -> Result<(), StackError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        if Instant::now() >= deadline {
            return Err(StackError::GaveUp {
                what: what.to_owned(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SQS

/// Creates queue `name` with `attributes`; returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, StackError> {
    let mut request = sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value);
    }
    let created = request
        .send()
        .await
        .map_err(|e| sqs_error("CreateQueue", name, e))?;
    created
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| StackError::Sqs {
            operation: "CreateQueue",
            queue: name.to_owned(),
            message: "no queue URL in the answer".to_owned(),
        })
}

/// The ARN of the queue at `queue_url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String, StackError> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", queue_url, e))?;
    answer
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| StackError::Sqs {
            operation: "GetQueueAttributes",
            queue: queue_url.to_owned(),
            message: "no QueueArn in the answer".to_owned(),
        })
}

/// A queue and the dead-letter queue its redrive policy moves messages to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWithDlq {
    /// The queue's URL.
    pub queue: String,
    /// The dead-letter queue's URL.
    pub dlq: String,
}

/// How a queue with a dead-letter queue hands messages back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redrive {
    /// How long a received message stays invisible before it comes back.
    pub visibility_seconds: u32,
    /// Receives after which the next receive moves the message to the dead-letter queue.
    pub max_receive_count: u32,
}

/// Creates `{name}-dlq`, then `name` with `redrive`'s visibility timeout and a redrive policy to
/// the first.
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive: Redrive,
) -> Result<QueueWithDlq, StackError> {
    let dlq = create_queue(sqs, &format!("{name}-dlq"), &[]).await?;
    let dlq_arn = queue_arn(sqs, &dlq).await?;
    let policy = json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": redrive.max_receive_count,
    });
    let queue = create_queue(
        sqs,
        name,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                redrive.visibility_seconds.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, policy.to_string()),
        ],
    )
    .await?;
    Ok(QueueWithDlq { queue, dlq })
}

/// Receives and deletes messages from `queue_url` until at least `at_least` arrived and a
/// receive comes back empty, or [`PATIENCE`] ran out (then returns what came; the caller's
/// count assertion says what is missing). Returns the bodies in arrival order.
pub async fn take_messages(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    at_least: usize,
) -> Result<Vec<String>, StackError> {
    let mut bodies = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", queue_url, e))?;
        let messages = received.messages();
        if messages.is_empty() && (bodies.len() >= at_least || Instant::now() >= deadline) {
            return Ok(bodies);
        }
        for message in messages {
            bodies.push(message.body().unwrap_or_default().to_owned());
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| sqs_error("DeleteMessage", queue_url, e))?;
            }
        }
    }
}

/// True when `queue_url` holds nothing: no message visible, in flight or delayed.
pub async fn queue_is_empty(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<bool, StackError> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", queue_url, e))?;
    let attributes = answer.attributes().cloned().unwrap_or_default();
    Ok([
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .all(|name| attributes.get(name).is_none_or(|count| count == "0")))
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager

/// Creates secret `name` holding the string `value`.
pub async fn create_secret(
    secrets: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<(), StackError> {
    secrets
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .map(drop)
        .map_err(|e| StackError::SecretsManager {
            name: name.to_owned(),
            message: aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
        })
}

// ---------------------------------------------------------------------------------------------
// CodeBuild (codebuild-local)

/// Raw CodeBuild calls, as the AWS CLI sends them: for setting up projects and reading back
/// what happened, independently of the SDK client the functions use.
#[derive(Debug, Clone)]
pub struct CodeBuildCli {
    endpoint: String,
    http: reqwest::Client,
}

impl CodeBuildCli {
    /// Calls go to `endpoint` (codebuild-local's `http://127.0.0.1:PORT`).
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            http: reqwest::Client::new(),
        }
    }

    /// One call of `operation` with `body`; its JSON answer, or the error CodeBuild gave.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value, StackError> {
        let transport = |source| StackError::CodeBuildTransport {
            operation: operation.to_owned(),
            source,
        };
        let response = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("X-Amz-Target", format!("CodeBuild_20161006.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(transport)?;
        if status.is_success() {
            Ok(answer)
        } else {
            Err(StackError::CodeBuild {
                operation: operation.to_owned(),
                status: status.as_u16(),
                body: answer,
            })
        }
    }

    /// Creates each of `names` as a small no-source project, as they would exist in the account
    /// a configuration was written for.
    pub async fn create_projects<I, S>(&self, names: I) -> Result<(), StackError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for name in names {
            self.call(
                "CreateProject",
                &json!({
                    "name": name.as_ref(),
                    "source": {"type": "NO_SOURCE", "buildspec": "version: 0.2"},
                    "artifacts": {"type": "NO_ARTIFACTS"},
                    "environment": {"type": "LINUX_CONTAINER",
                        "image": "aws/codebuild/standard:7.0",
                        "computeType": "BUILD_GENERAL1_SMALL"},
                    "serviceRole": "arn:aws:iam::123456789012:role/codebuild"
                }),
            )
            .await?;
        }
        Ok(())
    }

    /// Every batch of `project`, as `BatchGetBuildBatches` describes them (one page of the
    /// list: up to 100, more than any test starts).
    pub async fn batches_of(&self, project: &str) -> Result<Vec<Value>, StackError> {
        let listed = self
            .call(
                "ListBuildBatchesForProject",
                &json!({ "projectName": project }),
            )
            .await?;
        let ids = listed["ids"].as_array().cloned().unwrap_or_default();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .call("BatchGetBuildBatches", &json!({ "ids": ids }))
            .await?;
        Ok(found["buildBatches"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Functions

/// Starts `count` execution environments of one function, as Lambda scales out for concurrent
/// requests; `spec(n)` configures the n-th (its name, usually).
pub async fn start_environments(
    count: usize,
    spec: impl Fn(usize) -> FunctionSpec,
) -> Result<Vec<RunningFunction>, HarnessError> {
    let mut functions = Vec::with_capacity(count);
    for n in 0..count {
        functions.push(lambda::start(spec(n)).await?);
    }
    Ok(functions)
}

/// Shuts every one of `functions` down.
pub async fn shutdown_all(functions: impl IntoIterator<Item = RunningFunction>) {
    for function in functions {
        function.shutdown().await;
    }
}
