//! [`Secrets`] port over `aws-sdk-secretsmanager`: one `GetSecretValue` per read, its
//! `SecretString` returned. The value never appears in an error, a log line or a `Debug` output.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::service_error::map_service_error;
use crate::ports::{Secrets, ServiceError};

const SERVICE: &str = "secretsmanager";
const OP: &str = "GetSecretValue";

/// Secrets Manager (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSecrets {
    /// Wraps a configured SDK client.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

impl Secrets for SecretsManagerSecrets {
    async fn secret_value(&self, name: &str) -> Result<String, ServiceError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| map_secret_error(name, e))?;
        // `secret_string` is moved out, never formatted: the output's own `Debug` redacts it,
        // ours must not undo that.
        output.secret_string.ok_or_else(|| ServiceError::Rejected {
            service: SERVICE,
            operation: OP,
            message: format!(
                "secret {name} has no SecretString (a binary secret); store webhook secrets as text"
            ),
        })
    }
}

/// The shared mapping, plus one Secrets Manager case: reading a secret scheduled for deletion
/// fails with `InvalidRequestException`, which would otherwise be "rejected". For a reader the
/// secret is gone, and callers treat "gone" as the end of a rotation (see
/// [`crate::webhook::secret_cache`]), so it is reported as not found.
fn map_secret_error(name: &str, err: SdkError<GetSecretValueError, HttpResponse>) -> ServiceError {
    if let Some(service_error) = err.as_service_error()
        && is_marked_for_deletion(service_error.code(), service_error.message())
    {
        return ServiceError::NotFound {
            service: SERVICE,
            operation: OP,
            message: format!(
                "secret {name} is scheduled for deletion: {}",
                service_error.message().unwrap_or_default()
            ),
        };
    }
    map_service_error(SERVICE, OP, err)
}

/// AWS says "... because it was marked for deletion"; moto "... currently marked deleted".
fn is_marked_for_deletion(code: Option<&str>, message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    code == Some("InvalidRequestException")
        && message.contains("marked")
        && message.contains("delet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_scheduled_for_deletion_is_recognised() {
        let aws =
            "You can't perform this operation on the secret because it was marked for deletion.";
        let moto =
            "You tried to perform the operation on a secret that's currently marked deleted.";
        for message in [aws, moto] {
            assert!(is_marked_for_deletion(
                Some("InvalidRequestException"),
                Some(message)
            ));
        }
        assert!(!is_marked_for_deletion(
            Some("InvalidRequestException"),
            Some("You provided a parameter value that is not valid.")
        ));
        assert!(!is_marked_for_deletion(
            Some("AccessDeniedException"),
            Some(aws)
        ));
        assert!(!is_marked_for_deletion(None, None));
    }
}
