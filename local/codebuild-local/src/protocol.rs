//! AWS JSON 1.1: `POST /` with `X-Amz-Target: CodeBuild_20161006.<Operation>`, dispatch, errors.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::server::AppState;
use crate::state::{Ctx, Store};
use crate::{batches, builds, projects};

/// The `X-Amz-Target` prefix of CodeBuild.
pub const TARGET_PREFIX: &str = "CodeBuild_20161006.";

/// Initiator of builds started with no recognizable credentials.
pub const DEFAULT_INITIATOR: &str = "codebuild-local-user";

type Operation = fn(&mut Store, &Ctx, &Value) -> Result<Value, ApiError>;

/// The operations the emulator serves, by name.
pub const OPERATIONS: &[(&str, Operation)] = &[
    ("CreateProject", projects::create_project),
    ("BatchGetProjects", projects::batch_get_projects),
    ("ListProjects", projects::list_projects),
    ("StartBuild", builds::start_build),
    ("BatchGetBuilds", builds::batch_get_builds),
    ("StopBuild", builds::stop_build),
    ("RetryBuild", builds::retry_build),
    ("ListBuildsForProject", builds::list_builds_for_project),
    ("ListBuilds", builds::list_builds),
    ("StartBuildBatch", batches::start_build_batch),
    ("BatchGetBuildBatches", batches::batch_get_build_batches),
    ("StopBuildBatch", batches::stop_build_batch),
    ("RetryBuildBatch", batches::retry_build_batch),
    (
        "ListBuildBatchesForProject",
        batches::list_build_batches_for_project,
    ),
    ("ListBuildBatches", batches::list_build_batches),
];

/// One AWS call as received (the control API's call log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Operation name (or the raw target when unknown).
    pub operation: String,
    /// The request body.
    pub params: Value,
    /// Emulator time of the call (RFC 3339).
    pub time: String,
    /// The injected fault, if one answered instead of the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// The caller, as CodeBuild would name it: here the SigV4 access key id.
fn initiator(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split('/').next())
        .filter(|key| !key.is_empty())
        .map_or_else(|| DEFAULT_INITIATOR.to_owned(), str::to_owned)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

/// `POST /`: one CodeBuild call.
pub(crate) async fn handle(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let name = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or(&target)
        .to_owned();
    let params: Value = if body.is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return ApiError::serialization(e.to_string()).into_response(),
        }
    };
    let now = app.clock.now();
    let decision = app.faults().decide(&name);
    app.record_call(CallRecord {
        operation: name.clone(),
        params: params.clone(),
        time: now.to_rfc3339(),
        fault: decision.error.as_ref().map(|e| e.code.to_owned()),
    });
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(error) = decision.error {
        return error.into_response();
    }
    let operation = target
        .starts_with(TARGET_PREFIX)
        .then(|| OPERATIONS.iter().find(|(n, _)| *n == name))
        .flatten();
    let Some((_, operation)) = operation else {
        return ApiError::unknown_operation(&target).into_response();
    };
    let ctx = Ctx {
        now,
        region: app.config.region.clone(),
        account: app.config.account.clone(),
        initiator: initiator(&headers),
    };
    let (result, changed) = app.with_store(|store| {
        let result = operation(store, &ctx, &params);
        (result, std::mem::take(&mut store.changed))
    });
    app.emit(&changed, now);
    match result {
        Ok(out) => json_response(StatusCode::OK, &out),
        Err(error) => {
            tracing::info!(operation = %name, code = error.code, message = %error.message, "call failed");
            error.into_response()
        }
    }
}
