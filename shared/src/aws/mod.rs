//! AWS SDK adapters for the ports, and the one place clients are built. Nothing outside this
//! module imports the SDK.

mod codebuild;
mod convert;
mod error;
mod ledger;

pub use codebuild::SdkCodeBuild;
pub use error::classify_service_error;
pub use ledger::DynamoLedger;

use aws_config::BehaviorVersion;

/// Every SDK client a function needs, built once per cold start and cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    /// CodeBuild behind the [`crate::ports::CodeBuild`] port.
    pub codebuild: SdkCodeBuild,
    /// DynamoDB, behind the [`crate::ledger::Ledger`] port through [`Clients::ledger`].
    pub dynamodb: aws_sdk_dynamodb::Client,
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
        }
    }

    /// The idempotency ledger in `table`.
    pub fn ledger(&self, table: &str) -> DynamoLedger {
        DynamoLedger::new(self.dynamodb.clone(), table)
    }
}
