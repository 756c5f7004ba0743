//! The ops API's read side: routing, validation and handlers, generic over the CodeBuild port.

mod builds;
mod routes;

pub use builds::{FAILPOINT_BEFORE_BATCH_GET, fetch_builds, get_build, get_builds};
pub use routes::{MAX_IDS, Route, route};

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::http::{ApiError, json_response};
use crate::ports::CodeBuild;

/// Answers one API Gateway request. Never fails: every error becomes its HTTP response.
pub async fn handle<C: CodeBuild>(codebuild: &C, request: &Request) -> Response<Body> {
    // API Gateway's raw path keeps percent-encoding (an encoded ARN stays one segment);
    // fall back to the URI for requests built without the extension (local tests).
    let raw_path = request.extensions().raw_http_path();
    let path = if raw_path.is_empty() {
        request.uri().path()
    } else {
        raw_path
    };
    let result = match route(request.method().as_str(), path, request.uri().query()) {
        Ok(Route::GetBuild(id)) => get_build(codebuild, &id).await,
        Ok(Route::GetBuilds(ids)) => get_builds(codebuild, &ids).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(err) => {
            tracing::warn!(action = "ops_api_error", reason = err.code(), status = err.status().as_u16(), %err);
            err.into_response()
        }
    }
}

/// Turns a handler result into an error for the caller, logged once.
pub(crate) fn upstream(err: crate::ports::CodeBuildError) -> ApiError {
    tracing::warn!(action = "codebuild_call_failed", retryable = err.is_retryable(), %err);
    ApiError::from(err)
}

#[cfg(test)]
mod tests;
