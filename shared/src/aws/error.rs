//! SDK errors → [`CodeBuildError`], one mapping for every operation.

use aws_sdk_codebuild::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::ports::CodeBuildError;

/// Maps any operation's SDK error.
pub(crate) fn map_sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> CodeBuildError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => CodeBuildError::Transport {
            operation,
            message: DisplayErrorContext(&err).to_string(),
        },
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            let message = DisplayErrorContext(&err).to_string();
            if status >= 500 {
                CodeBuildError::ServerError {
                    operation,
                    status,
                    message,
                }
            } else {
                CodeBuildError::Unexpected {
                    operation,
                    code: None,
                    message,
                }
            }
        }
        SdkError::ServiceError(service) => classify_service_error(
            operation,
            service.err().code(),
            service.err().message(),
            service.raw().status().as_u16(),
        ),
        _ => CodeBuildError::Unexpected {
            operation,
            code: None,
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// Classifies an error CodeBuild answered with, from its code, message and HTTP status.
pub fn classify_service_error(
    operation: &'static str,
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
) -> CodeBuildError {
    let message = message.unwrap_or_default().to_owned();
    match code {
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded",
        ) => CodeBuildError::Throttled { operation, message },
        // Some throttles arrive with another code but always say "Rate exceeded".
        _ if message.contains("Rate exceeded") => CodeBuildError::Throttled { operation, message },
        Some("AccountLimitExceededException") => CodeBuildError::AccountLimitExceeded {
            operation,
            queue_limit: queue_limit(&message),
            message,
        },
        Some("ResourceNotFoundException") => CodeBuildError::NotFound { operation, message },
        Some("InvalidInputException") if is_token_mismatch(&message) => {
            CodeBuildError::IdempotencyConflict { operation, message }
        }
        Some("InvalidInputException") => CodeBuildError::InvalidInput { operation, message },
        _ if status >= 500 => CodeBuildError::ServerError {
            operation,
            status,
            message,
        },
        other => CodeBuildError::Unexpected {
            operation,
            code: other.map(str::to_owned),
            message,
        },
    }
}

/// N of "Cannot have more than N builds in queue for the account".
fn queue_limit(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("more than ")? + "more than ".len();
    let rest = &lower[start..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if !rest[digits.len()..]
        .trim_start()
        .starts_with("builds in queue")
    {
        return None;
    }
    digits.parse().ok()
}

/// CodeBuild documents the reuse of a token with changed parameters as a "parameter mismatch"
/// `InvalidInputException`; match on the words rather than one exact sentence.
fn is_token_mismatch(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("idempotency") || lower.contains("mismatch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_limit_reads_n() {
        assert_eq!(
            queue_limit("Cannot have more than 0 builds in queue for the account"),
            Some(0)
        );
        assert_eq!(
            queue_limit("Cannot have more than 25 builds in queue for the account"),
            Some(25)
        );
        assert_eq!(
            queue_limit("Cannot have more than 5 concurrent builds"),
            None
        );
        assert_eq!(queue_limit("Limit exceeded"), None);
    }

    /// (code, message, HTTP status, expected variant, retryable)
    type Case<'a> = (
        Option<&'a str>,
        &'a str,
        u16,
        fn(&CodeBuildError) -> bool,
        bool,
    );

    #[test]
    fn classification_table() {
        let cases: &[Case] = &[
            (
                Some("ThrottlingException"),
                "Rate exceeded",
                400,
                |e| matches!(e, CodeBuildError::Throttled { .. }),
                true,
            ),
            (
                None,
                "Rate exceeded",
                400,
                |e| matches!(e, CodeBuildError::Throttled { .. }),
                true,
            ),
            (
                Some("ResourceNotFoundException"),
                "Build not found",
                400,
                |e| matches!(e, CodeBuildError::NotFound { .. }),
                false,
            ),
            (
                Some("InvalidInputException"),
                "Invalid build ID",
                400,
                |e| matches!(e, CodeBuildError::InvalidInput { .. }),
                false,
            ),
            (
                Some("InvalidInputException"),
                "Idempotency token parameter mismatch",
                400,
                |e| matches!(e, CodeBuildError::IdempotencyConflict { .. }),
                false,
            ),
            (
                Some("InternalServerError"),
                "boom",
                500,
                |e| matches!(e, CodeBuildError::ServerError { status: 500, .. }),
                true,
            ),
            (
                Some("ServiceUnavailable"),
                "",
                503,
                |e| matches!(e, CodeBuildError::ServerError { status: 503, .. }),
                true,
            ),
            (
                Some("OAuthProviderException"),
                "",
                400,
                |e| matches!(e, CodeBuildError::Unexpected { .. }),
                false,
            ),
        ];
        for (code, message, status, expected, retryable) in cases {
            let err = classify_service_error("RetryBuild", *code, Some(message), *status);
            assert!(expected(&err), "{code:?} {message:?} gave {err:?}");
            assert_eq!(err.is_retryable(), *retryable, "{err:?}");
        }
    }
}
