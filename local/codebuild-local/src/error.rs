//! Errors: the AWS JSON 1.1 error the service answers with, and the library's own errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to an AWS client: HTTP status, `__type` (short form, no namespace) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status (400 for client errors, 500/503 for injected server faults).
    pub status: StatusCode,
    /// The `__type` value, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// `InvalidInputException` (400).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidInputException", message)
    }
    /// `ResourceNotFoundException` (400).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            message,
        )
    }
    /// `ResourceAlreadyExistsException` (400).
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ResourceAlreadyExistsException",
            message,
        )
    }
    /// `ThrottlingException` (400), as AWS JSON services send it.
    pub fn throttling() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        )
    }
    /// An injected server-side failure: `InternalServerError` (500) or `ServiceUnavailableException` (503).
    pub fn server_error(status: StatusCode) -> Self {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            Self::new(
                status,
                "ServiceUnavailableException",
                "Service unavailable (injected)",
            )
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Internal error (injected)",
            )
        }
    }
    /// `UnknownOperationException` (400): what AWS JSON services answer for an unknown target.
    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation {target}"),
        )
    }
    /// `SerializationException` (400): the body is not the JSON the operation expects.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        response
    }
}

/// Errors of the library API (starting the server).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}
