//! [`Functions`] over `aws-sdk-lambda`.

use autopilot::ports::ServiceError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use super::Functions;
use autopilot::aws::map_service_error;

/// Asynchronous invocations through the Lambda API.
#[derive(Debug, Clone)]
pub struct LambdaFunctions {
    client: aws_sdk_lambda::Client,
}

impl LambdaFunctions {
    /// Wraps a configured client.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

impl Functions for LambdaFunctions {
    async fn invoke_async(&self, function: &str, payload: &[u8]) -> Result<(), ServiceError> {
        const OP: &str = "Invoke";
        let answer = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|err| map_service_error("lambda", OP, err))?;
        // Lambda queues an asynchronous invocation with 202; anything else did not queue it.
        if answer.status_code() == 202 {
            Ok(())
        } else {
            Err(ServiceError::Rejected {
                service: "lambda",
                operation: OP,
                message: format!(
                    "asynchronous invocation answered {} (expected 202)",
                    answer.status_code()
                ),
            })
        }
    }
}
