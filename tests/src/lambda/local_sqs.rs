//! The SQS client the harness itself uses (the on-failure destination, the SQS event source):
//! always a local emulator (moto), never AWS, so static test credentials.

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};

/// A client for the SQS endpoint `endpoint` (e.g. moto's `http://127.0.0.1:PORT`) in `region`.
pub(crate) fn client(endpoint: &str, region: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "harness"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An SDK error with its whole chain of causes, on one line.
pub(crate) fn describe<E>(error: E) -> String
where
    E: std::error::Error,
{
    format!("{}", aws_sdk_sqs::error::DisplayErrorContext(error))
}
