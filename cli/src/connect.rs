//! The AWS settings of a command: the standard chain (credentials, region, profile,
//! `AWS_ENDPOINT_URL`) with the command line's overrides on top.

use autopilot::aws::Clients;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::args::AwsArgs;
use crate::error::CliError;

/// Loads the AWS configuration for `args`: `--endpoint-url`, `--region` and `--profile` win
/// over the environment. A missing region is a usage error here rather than an SDK error on
/// the first call.
pub async fn sdk_config(args: &AwsArgs) -> Result<SdkConfig, CliError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = &args.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--endpoint-url {url:?}: expected an http:// or https:// URL"
            )));
        }
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    // An empty AWS_REGION loads as a region "" that only fails at the first call.
    if config
        .region()
        .is_none_or(|region| region.as_ref().trim().is_empty())
    {
        return Err(CliError::Usage(
            "no AWS region: set AWS_REGION, give the profile a region, or pass --region".into(),
        ));
    }
    Ok(config)
}

/// The crate's clients (CodeBuild behind its port, SQS) for `args`.
pub async fn clients(args: &AwsArgs) -> Result<(Clients, SdkConfig), CliError> {
    let config = sdk_config(args).await?;
    Ok((Clients::from_sdk_config(&config), config))
}

/// Runs one command's future to completion on a single-threaded runtime (a command makes a
/// handful of sequential calls; more threads would only cost start-up time).
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    Ok(runtime.block_on(future))
}
