//! `GET /builds/{id}` and `GET /builds?ids=`.

use std::collections::HashMap;

use futures::future::try_join_all;
use serde_json::{Value, json};

use super::routes::RequestedId;
use super::upstream;
use crate::http::ApiError;
use crate::model::{Build, BuildId, BuildSummary};
use crate::ports::{BATCH_GET_LIMIT, CodeBuild, CodeBuildError};

/// Failpoint step just before the `BatchGetBuilds` calls (see [`crate::failpoint`]).
pub const FAILPOINT_BEFORE_BATCH_GET: &str = "ops-api:before-batch-get-builds";

/// Fetches any number of builds: distinct ids in chunks of [`BATCH_GET_LIMIT`], the chunks in
/// parallel. Returns the builds found, keyed by `project:uuid`.
pub async fn fetch_builds<C: CodeBuild>(
    codebuild: &C,
    ids: &[BuildId],
) -> Result<HashMap<String, Build>, CodeBuildError> {
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<BuildId> = ids
        .iter()
        .filter(|id| seen.insert(id.id()))
        .cloned()
        .collect();
    // Crash tests abort here: the request is parsed and validated, CodeBuild not yet called.
    crate::failpoint::failpoint(FAILPOINT_BEFORE_BATCH_GET);
    let lookups = try_join_all(
        distinct
            .chunks(BATCH_GET_LIMIT)
            .map(|chunk| codebuild.batch_get_builds(chunk)),
    )
    .await?;
    Ok(lookups
        .into_iter()
        .flat_map(|lookup| lookup.builds)
        .map(|build| (build.id.id(), build))
        .collect())
}

/// `GET /builds/{id}` → `{"build": Summary}`, 404 when CodeBuild does not know it.
pub async fn get_build<C: CodeBuild>(
    codebuild: &C,
    requested: &RequestedId,
) -> Result<Value, ApiError> {
    let found = fetch_builds(codebuild, std::slice::from_ref(&requested.id))
        .await
        .map_err(upstream)?;
    let build = found
        .get(&requested.id.id())
        .ok_or_else(|| ApiError::NotFound(format!("build {} not found", requested.given)))?;
    Ok(json!({ "build": BuildSummary::from(build) }))
}

/// `GET /builds?ids=` → `{"builds": [...in request order], "notFound": [ids as given]}`.
pub async fn get_builds<C: CodeBuild>(
    codebuild: &C,
    requested: &[RequestedId],
) -> Result<Value, ApiError> {
    let ids: Vec<BuildId> = requested.iter().map(|r| r.id.clone()).collect();
    let found = fetch_builds(codebuild, &ids).await.map_err(upstream)?;
    let mut builds = Vec::with_capacity(requested.len());
    let mut not_found = Vec::new();
    for r in requested {
        match found.get(&r.id.id()) {
            Some(build) => builds.push(BuildSummary::from(build)),
            None => not_found.push(r.given.clone()),
        }
    }
    Ok(json!({ "builds": builds, "notFound": not_found }))
}
