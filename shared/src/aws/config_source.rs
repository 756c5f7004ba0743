//! The [`ConfigSource`] port over a file, SSM Parameter Store and S3.

use std::path::Path;
use std::time::Duration;

use crate::config::{AllowedProjects, ConfigCache, ConfigError, ConfigUri};
use crate::ports::{ConfigSource, ServiceError};

use super::Clients;
use super::service_error::map_service_error;

/// Reads the configuration text from `file:`, `ssm:` (SecureString decrypted) or `s3:`.
#[derive(Debug, Clone)]
pub struct SdkConfigSource {
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
}

impl SdkConfigSource {
    /// A source over these clients.
    pub fn new(ssm: aws_sdk_ssm::Client, s3: aws_sdk_s3::Client) -> Self {
        Self { ssm, s3 }
    }

    /// A source over the SSM and S3 clients of `clients`.
    pub fn from_clients(clients: &Clients) -> Self {
        Self::new(clients.ssm.clone(), clients.s3.clone())
    }

    async fn parameter(&self, name: &str) -> Result<String, ServiceError> {
        const OPERATION: &str = "GetParameter";
        let output = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|err| map_service_error("ssm", OPERATION, err))?;
        output
            .parameter
            .and_then(|parameter| parameter.value)
            .ok_or_else(|| ServiceError::Rejected {
                service: "ssm",
                operation: OPERATION,
                message: format!("parameter {name} has no value"),
            })
    }

    async fn object(&self, bucket: &str, key: &str) -> Result<String, ServiceError> {
        const OPERATION: &str = "GetObject";
        let output = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| map_service_error("s3", OPERATION, err))?;
        let bytes = output
            .body
            .collect()
            .await
            // The connection broke while the body streamed: reading again may work.
            .map_err(|err| ServiceError::Unavailable {
                service: "s3",
                operation: OPERATION,
                message: format!("reading s3://{bucket}/{key}: {err}"),
            })?
            .into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|err| ServiceError::Rejected {
            service: "s3",
            operation: OPERATION,
            message: format!("s3://{bucket}/{key} is not UTF-8 text: {err}"),
        })
    }
}

impl Clients {
    /// The cache every function reads its configuration through: the text at `uri` (as the
    /// deployment gives it), validated against the IAM bound `project_patterns`, read from SSM
    /// or S3 with these clients and refreshed after `ttl`. An unreadable URI or bound is an
    /// error at once, so a misconfigured function fails its cold start, not every invocation.
    pub fn config_cache(
        &self,
        uri: &str,
        project_patterns: &str,
        ttl: Duration,
    ) -> Result<ConfigCache<SdkConfigSource>, ConfigError> {
        let allowed = AllowedProjects::parse(project_patterns)?;
        let uri = ConfigUri::parse(uri)?;
        let source = SdkConfigSource::from_clients(self);
        Ok(ConfigCache::new(source, uri, allowed, ttl))
    }
}

impl ConfigSource for SdkConfigSource {
    async fn fetch(&self, uri: &ConfigUri) -> Result<String, ServiceError> {
        match uri {
            ConfigUri::File(path) => read_file(path).await,
            ConfigUri::Ssm(name) => self.parameter(name).await,
            ConfigUri::S3 { bucket, key } => self.object(bucket, key).await,
        }
    }
}

/// Reads a file off the async runtime's threads. The workspace's tokio does not enable its
/// `fs` feature, and `tokio::fs` does exactly this anyway.
async fn read_file(path: &Path) -> Result<String, ServiceError> {
    const OPERATION: &str = "read";
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(owned))
        .await
        .map_err(|err| ServiceError::Unavailable {
            service: "file",
            operation: OPERATION,
            message: format!("reading {}: {err}", path.display()),
        })?;
    read.map_err(|err| {
        let message = format!("{}: {err}", path.display());
        match err.kind() {
            std::io::ErrorKind::NotFound => ServiceError::NotFound {
                service: "file",
                operation: OPERATION,
                message,
            },
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => {
                ServiceError::Unavailable {
                    service: "file",
                    operation: OPERATION,
                    message,
                }
            }
            // Permission denied, a directory, not UTF-8: only a change of the file helps.
            _ => ServiceError::Rejected {
                service: "file",
                operation: OPERATION,
                message,
            },
        }
    })
}
