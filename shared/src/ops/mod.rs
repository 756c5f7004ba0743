//! The ops API (API Gateway HTTP API v2, `AWS_IAM` authorization): routing, validation and
//! handlers, generic over the ports.
//!
//! Read: `GET /builds/{id}`, `GET /builds?ids=`, `GET /builds/{id}/lineage`, `GET /batches/{id}`,
//! `GET /projects/{name}/batches`. Write (each with an `Idempotency-Key`, see [`idempotent`]):
//! `POST /builds/{id}/retry`, `POST /batches/{id}/retry`, `POST /batches/{id}/stop`,
//! `POST /projects/{name}/batches`. [`ROUTES`] lists them all. Every error is a JSON body
//! `{"error": {"code", "message"}}` with the status of [`crate::http::ApiError`].
//!
//! Answers (shapes: [`crate::model::BuildSummary`], [`BatchSummary`], [`ChainLink`]):
//! - `GET /builds/{id}` → 200 `{"build": BuildSummary}`; 404 unknown.
//! - `GET /builds?ids=a,b` → 200 `{"builds": [BuildSummary], "notFound": ["id as given"]}`.
//! - `GET /builds/{id}/lineage` → 200 `{"build": id, "root": id, "chain": [ChainLink]}`.
//! - `GET /batches/{id}` → 200 `{"batch": BatchSummary}`; 404 unknown or outside the bound.
//! - `GET /projects/{name}/batches?status=&maxResults=&nextToken=` → 200
//!   `{"batches": [BatchSummary], "nextToken": "..."}` (no `nextToken` on the last page).
//! - `POST /builds/{id}/retry` (no body or `{}`) → 201 `{"build": BuildSummary}` (the new build).
//! - `POST /batches/{id}/retry` ([`RetryBatchBody`], optional) → 201 `{"batch": BatchSummary}`.
//! - `POST /batches/{id}/stop` (no body or `{}`) → 200 `{"batch": BatchSummary}`.
//! - `POST /projects/{name}/batches` ([`StartBatchBody`], optional) → 201
//!   `{"batch": {"id": "project:uuid", "buildBatchNumber": n}}`.
//!
//! The mutating routes also answer 400 (no or bad `Idempotency-Key`, a malformed body or
//! override), 401 (no IAM caller), 404 (project not allowed or not configured), 409 (the same
//! key's first request still in flight), 413 (body over [`MAX_BODY_BYTES`]) and 422 (the key
//! used for another request, or an override the configuration does not allow). A repeated key
//! with the same request gets the first answer's status and body again.

mod batches;
mod builds;
mod caller;
pub mod idempotent;
mod lineage;
mod mutate;
mod page;
mod routes;
pub mod settings;

pub use batches::{BatchGroupSummary, BatchSummary, get_batch, list_batches};
pub use builds::{FAILPOINT_BEFORE_BATCH_GET, fetch_builds, get_build, get_builds};
pub use caller::Caller;
pub use idempotent::{FAILPOINT_AFTER_CLAIM, IdempotencyHeader, OpsRequest};
pub use lineage::{ChainLink, MAX_CHAIN, get_lineage};
pub use mutate::{
    EmptyBody, MAX_BODY_BYTES, MAX_REASON_CHARS, RequestClock, RetryBatchBody, RetryType,
    StartBatchBody,
};
pub use page::PageToken;
pub use routes::{
    DEFAULT_PAGE_SIZE, ListQuery, MAX_IDS, MAX_PAGE_SIZE, ROUTES, Requested, RequestedBatchId,
    RequestedId, Route, route,
};

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::config::{AllowedProjects, ConfigCache, ConfigLoadError};
use crate::http::{ApiError, json_response};
use crate::ledger::{Ledger, LedgerError};
use crate::ports::{CodeBuild, ConfigSource, RetryBook};

/// What the ops API needs from the outside world. Built once per cold start.
pub struct OpsPorts<C, L, R, S> {
    /// CodeBuild.
    pub codebuild: C,
    /// The idempotency ledger (the outer `Idempotency-Key` records and the starts' claims).
    pub ledger: L,
    /// Auto-retry's lineage records (`GET /builds/{id}/lineage`).
    pub retry_book: R,
    /// The configuration: which projects are configured, and each one's start allow-list.
    /// Loaded only by the routes that need it (the mutating ones).
    pub config: ConfigCache<S>,
    /// The projects the deployment's IAM policy lets the function act on.
    pub allowed: AllowedProjects,
}

/// Answers one API Gateway request. Never fails: every error becomes its HTTP response.
pub async fn handle<C, L, R, S>(
    ports: &OpsPorts<C, L, R, S>,
    request: &Request,
    clock: RequestClock,
) -> Response<Body>
where
    C: CodeBuild,
    L: Ledger,
    R: RetryBook,
    S: ConfigSource,
{
    match answer(ports, request, clock).await {
        Ok((status, body)) => json_response(status, &body),
        Err(err) => {
            tracing::warn!(action = "ops_api_error", reason = err.code(), status = err.status().as_u16(), %err);
            err.into_response()
        }
    }
}

async fn answer<C, L, R, S>(
    ports: &OpsPorts<C, L, R, S>,
    request: &Request,
    clock: RequestClock,
) -> Result<(StatusCode, serde_json::Value), ApiError>
where
    C: CodeBuild,
    L: Ledger,
    R: RetryBook,
    S: ConfigSource,
{
    // API Gateway's raw path keeps percent-encoding (an encoded ARN stays one segment);
    // fall back to the URI for requests built without the extension (local tests).
    let raw_path = request.extensions().raw_http_path();
    let path = if raw_path.is_empty() {
        request.uri().path()
    } else {
        raw_path
    };
    let route = route(request.method().as_str(), path, request.uri().query())?;
    let ok = |body| Ok((StatusCode::OK, body));
    match &route {
        Route::GetBuild(id) => ok(get_build(&ports.codebuild, id).await?),
        Route::GetBuilds(ids) => ok(get_builds(&ports.codebuild, ids).await?),
        Route::GetLineage(id) => ok(get_lineage(&ports.codebuild, &ports.retry_book, id).await?),
        Route::GetBatch(id) => {
            readable(&ports.allowed, id.id.project())?;
            ok(get_batch(&ports.codebuild, id).await?)
        }
        Route::ListBatches { project, query } => {
            readable(&ports.allowed, project)?;
            ok(list_batches(&ports.codebuild, project, query).await?)
        }
        Route::RetryBuild(_)
        | Route::RetryBatch(_)
        | Route::StopBatch(_)
        | Route::StartBatch { .. } => mutate::mutate(ports, request, &route, clock).await,
    }
}

/// Batches of projects outside the deployment's bound are unknown here (IAM would deny the
/// calls anyway).
fn readable(allowed: &AllowedProjects, project: &str) -> Result<(), ApiError> {
    if allowed.allows(project) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "project_not_configured: project {project} is outside the deployment's project patterns"
        )))
    }
}

/// Turns a CodeBuild failure into an error for the caller, logged once.
pub(crate) fn upstream(err: crate::ports::CodeBuildError) -> ApiError {
    tracing::warn!(action = "codebuild_call_failed", retryable = err.is_retryable(), %err);
    ApiError::from(err)
}

/// Turns a ledger failure into an error for the caller: throttled 429, unavailable 503, else
/// 500.
pub(crate) fn ledger_unavailable(err: LedgerError) -> ApiError {
    tracing::warn!(action = "ledger_call_failed", retryable = err.is_retryable(), %err);
    match err {
        LedgerError::Throttled { .. } => ApiError::Throttled(err.to_string()),
        _ if err.is_retryable() => ApiError::UpstreamUnavailable(err.to_string()),
        _ => ApiError::Internal(err.to_string()),
    }
}

/// No configuration: 503 while loading may still succeed, 500 when someone must fix it.
pub(crate) fn config_unavailable(err: ConfigLoadError) -> ApiError {
    tracing::error!(action = "config_unavailable", retryable = err.is_retryable(), %err);
    if err.is_retryable() {
        ApiError::UpstreamUnavailable(format!("configuration unavailable: {err}"))
    } else {
        ApiError::Internal(format!("configuration unusable: {err}"))
    }
}

#[cfg(test)]
mod tests;
