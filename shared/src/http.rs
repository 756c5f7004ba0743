//! The one place errors become HTTP statuses and JSON bodies:
//! `{"error":{"code":"...","message":"..."}}`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use crate::ports::CodeBuildError;

/// An error as the HTTP API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: the request is not signed as it must be (a webhook's signature or token).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 404: unknown resource or route.
    #[error("not found: {0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// 409: a conflicting request (token reused with other parameters, same request in flight).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 413: the body is larger than the configured limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// 422: the same idempotency key was used for another request.
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// 429: CodeBuild throttled us or its queue is full; try later.
    #[error("throttled: {0}")]
    Throttled(String),
    /// 503: CodeBuild is unavailable or unreachable.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// 500: our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unprocessable(_) => "unprocessable",
            Self::Throttled(_) => "throttled",
            Self::UpstreamUnavailable(_) => "upstream_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::PayloadTooLarge(m)
            | Self::Unprocessable(m)
            | Self::NotFound(m)
            | Self::MethodNotAllowed(m)
            | Self::Conflict(m)
            | Self::Throttled(m)
            | Self::UpstreamUnavailable(m)
            | Self::Internal(m) => m,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code(), "message": self.message()}})
    }

    /// The whole HTTP response.
    pub fn into_response(self) -> Response<Body> {
        json_response(self.status(), &self.body())
    }
}

impl From<CodeBuildError> for ApiError {
    fn from(err: CodeBuildError) -> Self {
        let message = err.to_string();
        match err {
            CodeBuildError::Throttled { .. } => Self::Throttled(message),
            CodeBuildError::AccountLimitExceeded { .. } if err.is_retryable() => {
                Self::Throttled(message)
            }
            CodeBuildError::AccountLimitExceeded { .. }
            | CodeBuildError::ServerError { .. }
            | CodeBuildError::Transport { .. } => Self::UpstreamUnavailable(message),
            CodeBuildError::NotFound { .. } => Self::NotFound(message),
            CodeBuildError::IdempotencyConflict { .. } => Self::Conflict(message),
            CodeBuildError::InvalidInput { .. } => Self::BadRequest(message),
            CodeBuildError::Unexpected { .. } => Self::Internal(message),
        }
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (ApiError::BadRequest(String::new()), 400, "bad_request"),
            (ApiError::Unauthorized(String::new()), 401, "unauthorized"),
            (ApiError::NotFound(String::new()), 404, "not_found"),
            (
                ApiError::PayloadTooLarge(String::new()),
                413,
                "payload_too_large",
            ),
            (ApiError::Unprocessable(String::new()), 422, "unprocessable"),
            (
                ApiError::MethodNotAllowed(String::new()),
                405,
                "method_not_allowed",
            ),
            (ApiError::Conflict(String::new()), 409, "conflict"),
            (ApiError::Throttled(String::new()), 429, "throttled"),
            (
                ApiError::UpstreamUnavailable(String::new()),
                503,
                "upstream_unavailable",
            ),
            (ApiError::Internal(String::new()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status);
            assert_eq!(err.body()["error"]["code"], code);
        }
    }

    #[test]
    fn codebuild_errors_map_by_retryability() {
        let op = "BatchGetBuilds";
        let m = String::new;
        let status = |e: CodeBuildError| ApiError::from(e).status().as_u16();
        assert_eq!(
            status(CodeBuildError::Throttled {
                operation: op,
                message: m()
            }),
            429
        );
        let limit = |n| CodeBuildError::AccountLimitExceeded {
            operation: op,
            queue_limit: n,
            message: m(),
        };
        assert_eq!(status(limit(Some(3))), 429);
        assert_eq!(status(limit(Some(0))), 503);
        assert_eq!(
            status(CodeBuildError::ServerError {
                operation: op,
                status: 500,
                message: m()
            }),
            503
        );
        assert_eq!(
            status(CodeBuildError::Transport {
                operation: op,
                message: m()
            }),
            503
        );
        assert_eq!(
            status(CodeBuildError::NotFound {
                operation: op,
                message: m()
            }),
            404
        );
        assert_eq!(
            status(CodeBuildError::IdempotencyConflict {
                operation: op,
                message: m()
            }),
            409
        );
        assert_eq!(
            status(CodeBuildError::InvalidInput {
                operation: op,
                message: m()
            }),
            400
        );
        assert_eq!(
            status(CodeBuildError::Unexpected {
                operation: op,
                code: None,
                message: m()
            }),
            500
        );
    }
}
