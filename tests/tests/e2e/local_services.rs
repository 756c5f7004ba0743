//! What every end-to-end stack starts from: codebuild-local on a free port of 127.0.0.1, and
//! moto's server with the ledger table that the functions share.

#![allow(clippy::unwrap_used)]

use autopilot::aws::DynamoLedger;
use harness::moto::MotoServer;

/// The ledger table's name in these tests (`AUTOPILOT_LEDGER_TABLE` of the functions).
pub const LEDGER_TABLE: &str = "autopilot-ledger";

/// codebuild-local with `config`.
pub async fn codebuild_local_with(config: codebuild_local::Config) -> codebuild_local::Server {
    codebuild_local::serve(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// codebuild-local with its defaults.
pub async fn codebuild_local() -> codebuild_local::Server {
    codebuild_local_with(codebuild_local::Config::default()).await
}

/// moto's server with [`LEDGER_TABLE`] created, and the SDK configuration that reaches it.
pub async fn moto_with_ledger() -> (MotoServer, aws_config::SdkConfig) {
    let moto = MotoServer::start().await.unwrap();
    let sdk = moto.sdk_config().await;
    DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), LEDGER_TABLE)
        .create_table()
        .await
        .unwrap();
    (moto, sdk)
}
