//! AWS SDK adapters for the ports, and the one place clients are built. Nothing outside this
//! module imports the SDK.

mod build_logs;
mod codebuild;
mod config_source;
mod convert;
mod delay_queue;
mod error;
mod ledger;
mod notifier;
mod retry_book;
mod secrets;
mod service_error;
mod start_queue;

pub use build_logs::CloudWatchBuildLogs;
pub use codebuild::SdkCodeBuild;
pub use config_source::SdkConfigSource;
pub use delay_queue::SqsDelayQueue;
pub use error::classify_service_error;
pub use ledger::DynamoLedger;
pub use notifier::SnsNotifier;
pub use retry_book::DynamoRetryBook;
pub use secrets::SecretsManagerSecrets;
pub use service_error::map_service_error;
pub use start_queue::{MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES, SqsStartQueue};

use aws_config::BehaviorVersion;

use crate::start::starter::StarterPorts;

/// Every SDK client a function needs, built once per cold start and cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    /// CodeBuild behind the [`crate::ports::CodeBuild`] port.
    pub codebuild: SdkCodeBuild,
    /// DynamoDB, behind the [`crate::ledger::Ledger`] port through [`Clients::ledger`].
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS (the delay queue, the start queue).
    pub sqs: aws_sdk_sqs::Client,
    /// SNS ("gave up" notices).
    pub sns: aws_sdk_sns::Client,
    /// SSM Parameter Store (configuration).
    pub ssm: aws_sdk_ssm::Client,
    /// S3 (configuration).
    pub s3: aws_sdk_s3::Client,
    /// CloudWatch Logs (build log tails).
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Secrets Manager (webhook secrets).
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    /// The configuration the clients were built from, for clients that need other settings
    /// ([`Clients::codebuild_with_retries`]).
    sdk_config: aws_config::SdkConfig,
}

impl Clients {
    /// Loads the standard AWS configuration from the environment (region, credentials, and
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_CODEBUILD`, which is how tests and the demo point
    /// the functions at `codebuild-local`) and builds the clients.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(&config)
    }

    /// Builds the clients from an already loaded configuration.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            codebuild: SdkCodeBuild::new(aws_sdk_codebuild::Client::new(config)),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            // Path-style addressing only against an endpoint override (moto on 127.0.0.1, where
            // `bucket.127.0.0.1` does not resolve); real S3 keeps virtual-hosted style.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(config.endpoint_url().is_some())
                    .build(),
            ),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            secretsmanager: aws_sdk_secretsmanager::Client::new(config),
            sdk_config: config.clone(),
        }
    }

    /// A CodeBuild client for long sweeps under sustained throttling (the batch reaper): the
    /// standard retry mode and its exponential backoff with jitter, `max_attempts` attempts per
    /// call, and a retry partition of its own whose token bucket never runs dry.
    ///
    /// Why not the defaults: the standard mode's retry quota (500 tokens per partition, shared
    /// by every CodeBuild client of the process; 5 per retry, 1 back per first-try success)
    /// drains under sustained throttling, after which throttled calls fail at once. The quota
    /// protects a failing service from clients that multiply their load; the reaper bounds its
    /// own (its concurrency, its deadline, the next sweep), so here it would only cost stops.
    /// Adaptive mode's rate limiter draws on the same partition, so it was not chosen either.
    ///
    /// The backoff starts at `initial_backoff` and doubles (jittered) up to `max_backoff`.
    pub fn codebuild_with_retries(
        &self,
        max_attempts: u32,
        initial_backoff: std::time::Duration,
        max_backoff: std::time::Duration,
    ) -> SdkCodeBuild {
        use aws_sdk_codebuild::config::retry::{RetryConfig, RetryPartition, TokenBucket};
        let retry = RetryConfig::standard()
            .with_max_attempts(max_attempts.max(1))
            .with_initial_backoff(initial_backoff)
            .with_max_backoff(max_backoff);
        let config = aws_sdk_codebuild::config::Builder::from(&self.sdk_config)
            .retry_config(retry)
            .retry_partition(
                RetryPartition::custom("autopilot-codebuild-sweep")
                    .token_bucket(TokenBucket::unlimited())
                    .build(),
            )
            .build();
        SdkCodeBuild::new(aws_sdk_codebuild::Client::from_conf(config))
    }

    /// What batch-starter and batch-trigger start batches through: CodeBuild with a retry quota
    /// of its own (see [`Self::codebuild_with_retries`]) and the ledger in `ledger_table`.
    ///
    /// Four attempts from 200 ms, at most 2 s apart (about 1.4 s in all): a throttled start
    /// handed back to SQS or to Lambda's async retries waits a minute or more, so a short
    /// throttle is better absorbed here, well inside either function's time; CodeBuild's rate
    /// limits refill within a second. The idempotency token makes every repeat safe.
    pub fn start_ports(&self, ledger_table: &str) -> StarterPorts<SdkCodeBuild, DynamoLedger> {
        const CODEBUILD_MAX_ATTEMPTS: u32 = 4;
        const CODEBUILD_INITIAL_BACKOFF: std::time::Duration =
            std::time::Duration::from_millis(200);
        const CODEBUILD_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);
        StarterPorts {
            codebuild: self.codebuild_with_retries(
                CODEBUILD_MAX_ATTEMPTS,
                CODEBUILD_INITIAL_BACKOFF,
                CODEBUILD_MAX_BACKOFF,
            ),
            ledger: self.ledger(ledger_table),
        }
    }

    /// The idempotency ledger in `table`.
    pub fn ledger(&self, table: &str) -> DynamoLedger {
        DynamoLedger::new(self.dynamodb.clone(), table)
    }

    /// Auto-retry's lineage, batch counts and budgets, kept in the ledger table `table`.
    pub fn retry_book(&self, table: &str) -> DynamoRetryBook {
        DynamoRetryBook::new(self.dynamodb.clone(), table)
    }

    /// The SQS delay queue at `queue_url`.
    pub fn delay_queue(&self, queue_url: &str) -> SqsDelayQueue {
        SqsDelayQueue::new(self.sqs.clone(), queue_url)
    }

    /// The SQS start queue at `queue_url` (webhook function → batch starter).
    pub fn start_queue(&self, queue_url: &str) -> SqsStartQueue {
        SqsStartQueue::new(self.sqs.clone(), queue_url)
    }

    /// Webhook secrets from Secrets Manager.
    pub fn secrets(&self) -> SecretsManagerSecrets {
        SecretsManagerSecrets::new(self.secretsmanager.clone())
    }

    /// "Gave up" notices to the SNS topic `topic_arn`.
    pub fn notifier(&self, topic_arn: &str) -> SnsNotifier {
        SnsNotifier::new(self.sns.clone(), topic_arn)
    }

    /// Build log tails from CloudWatch Logs.
    pub fn build_logs(&self) -> CloudWatchBuildLogs {
        CloudWatchBuildLogs::new(self.logs.clone())
    }
}
