//! SDK errors of the smaller services (SQS, SNS, SSM, S3, CloudWatch Logs, Lambda) → [`ServiceError`],
//! one mapping for all of them: only "can a retry help" and "does it exist" matter to callers.

use aws_sdk_codebuild::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::ports::ServiceError;

/// Error codes that mean "throttled, try later" across these services.
const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
    "KMSThrottlingException",
    // Lambda: its function's network interfaces are being throttled by EC2.
    "EC2ThrottledException",
];

/// Error codes that mean "no such thing" across these services.
const NOT_FOUND_CODES: &[&str] = &[
    "ParameterNotFound",
    "NoSuchKey",
    "NoSuchBucket",
    "NotFound",
    "NotFoundException",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];

/// Maps any operation's SDK error of `service` (also used by the `autopilot` CLI's own SQS and
/// Lambda calls).
pub fn map_service_error<E>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ServiceError::Unavailable {
            service,
            operation,
            message,
        },
        SdkError::ResponseError(response) if response.raw().status().is_server_error() => {
            ServiceError::Unavailable {
                service,
                operation,
                message,
            }
        }
        SdkError::ServiceError(failure) => {
            let code = failure.err().code().unwrap_or_default();
            let status = failure.raw().status();
            if THROTTLE_CODES.contains(&code) || status.as_u16() == 429 || status.is_server_error()
            {
                ServiceError::Unavailable {
                    service,
                    operation,
                    message,
                }
            } else if NOT_FOUND_CODES.contains(&code) || status.as_u16() == 404 {
                ServiceError::NotFound {
                    service,
                    operation,
                    message,
                }
            } else {
                ServiceError::Rejected {
                    service,
                    operation,
                    message,
                }
            }
        }
        _ => ServiceError::Rejected {
            service,
            operation,
            message,
        },
    }
}
