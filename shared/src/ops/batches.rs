//! `GET /batches/{id}`, `GET /projects/{name}/batches` and the batch summary every batch route
//! answers with.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{Value, json};

use super::page::PageToken;
use super::routes::{ListQuery, RequestedBatchId};
use super::upstream;
use crate::http::ApiError;
use crate::model::{BatchGroup, BatchId, BuildBatch};
use crate::ports::{CodeBuild, ListBuildBatchesRequest};

/// One batch as the ops API shows it. JSON (camelCase; absent values are `null`):
///
/// ```json
/// {
///   "id": "web:0f2b6c1e-8a7d-4c3b-9e2f-1a2b3c4d5e6f",
///   "arn": "arn:aws:codebuild:us-east-1:123456789012:build-batch/web:0f2b6c1e-8a7d-4c3b-9e2f-1a2b3c4d5e6f",
///   "project": "web",
///   "buildBatchNumber": 42,
///   "status": "IN_PROGRESS",
///   "complete": false,
///   "currentPhase": "IN_PROGRESS",
///   "sourceVersion": "refs/heads/main",
///   "resolvedSourceVersion": "8d3f1e0c9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e",
///   "initiator": "arn:aws:iam::123456789012:user/operator",
///   "startTime": "2026-12-01T03:00:00Z",
///   "endTime": null,
///   "durationSeconds": null,
///   "buildIds": ["web:5a1b2c3d-0000-4000-8000-000000000001"],
///   "groups": [
///     {"identifier": "unit", "build": "web:5a1b2c3d-0000-4000-8000-000000000001", "status": "IN_PROGRESS"}
///   ]
/// }
/// ```
///
/// The batch's environment variables are left out: they may carry values an operator with
/// read-only rights should not see.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// `project:uuid`.
    pub id: String,
    /// The batch ARN, when known.
    pub arn: Option<String>,
    /// Project name.
    pub project: String,
    /// The project's batch counter.
    pub build_batch_number: Option<i64>,
    /// `SUCCEEDED`, `FAILED`, `FAULT`, `TIMED_OUT`, `IN_PROGRESS` or `STOPPED`.
    pub status: String,
    /// True once the batch is over.
    pub complete: bool,
    /// The batch's current phase.
    pub current_phase: Option<String>,
    /// Requested source version.
    pub source_version: Option<String>,
    /// The commit it really built.
    pub resolved_source_version: Option<String>,
    /// Who started it.
    pub initiator: Option<String>,
    /// RFC 3339.
    pub start_time: Option<String>,
    /// RFC 3339; null while running.
    pub end_time: Option<String>,
    /// End minus start, whole seconds; null while running.
    pub duration_seconds: Option<i64>,
    /// The builds of the batch (`project:uuid`).
    pub build_ids: Vec<String>,
    /// Each build group with its current build.
    pub groups: Vec<BatchGroupSummary>,
}

/// One build group of a [`BatchSummary`]: `{"identifier": "unit", "build": "web:…", "status":
/// "SUCCEEDED"}` (`identifier` and `build` may be null).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGroupSummary {
    /// The group's identifier from the batch spec.
    pub identifier: Option<String>,
    /// Its current build, `project:uuid`.
    pub build: Option<String>,
    /// That build's status.
    pub status: String,
}

impl From<&BuildBatch> for BatchSummary {
    fn from(batch: &BuildBatch) -> Self {
        let rfc3339 =
            |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let duration_seconds = match (batch.start_time, batch.end_time) {
            (Some(start), Some(end)) => Some((end - start).num_seconds()),
            _ => None,
        };
        Self {
            id: batch.id.id(),
            arn: batch.arn.clone().or_else(|| batch.id.arn()),
            project: batch.id.project().to_owned(),
            build_batch_number: batch.batch_number,
            status: batch.status.to_string(),
            complete: batch.complete,
            current_phase: batch.current_phase.clone(),
            source_version: batch.source_version.clone(),
            resolved_source_version: batch.resolved_source_version.clone(),
            initiator: batch.initiator.clone(),
            start_time: batch.start_time.as_ref().map(rfc3339),
            end_time: batch.end_time.as_ref().map(rfc3339),
            duration_seconds,
            build_ids: batch.build_ids.iter().map(|id| id.id()).collect(),
            groups: batch.groups.iter().map(BatchGroupSummary::from).collect(),
        }
    }
}

impl From<&BatchGroup> for BatchGroupSummary {
    fn from(group: &BatchGroup) -> Self {
        Self {
            identifier: group.identifier.clone(),
            build: group.build.as_ref().map(|id| id.id()),
            status: group.status.to_string(),
        }
    }
}

/// `GET /batches/{id}` → `{"batch": BatchSummary}`, 404 when CodeBuild does not know it.
pub async fn get_batch<C: CodeBuild>(
    codebuild: &C,
    requested: &RequestedBatchId,
) -> Result<Value, ApiError> {
    let lookup = codebuild
        .batch_get_build_batches(std::slice::from_ref(&requested.id))
        .await
        .map_err(upstream)?;
    let wanted = requested.id.id();
    let batch = lookup
        .batches
        .iter()
        .find(|b| b.id.id() == wanted)
        .ok_or_else(|| ApiError::NotFound(format!("batch {} not found", requested.given)))?;
    Ok(json!({ "batch": BatchSummary::from(batch) }))
}

/// `GET /projects/{name}/batches` → `{"batches": [BatchSummary, newest first], "nextToken":
/// "..."}`; `nextToken` is absent on the last page. A page holds at most `maxResults` batches
/// and may hold fewer while more follow (it never spans two CodeBuild pages).
pub async fn list_batches<C: CodeBuild>(
    codebuild: &C,
    project: &str,
    query: &ListQuery,
) -> Result<Value, ApiError> {
    let cursor = query.next_token.clone().unwrap_or(PageToken {
        codebuild: None,
        after: None,
    });
    let page = codebuild
        .list_build_batches_for_project(&ListBuildBatchesRequest {
            project: project.to_owned(),
            status: query.status.clone(),
            next_token: cursor.codebuild.clone(),
        })
        .await
        .map_err(upstream)?;
    // Continue after the last batch returned; if it is gone from the page (deleted), start the
    // page again: a batch shown twice is better than one never shown.
    let start = cursor
        .after
        .as_deref()
        .and_then(|after| page.items.iter().position(|id| id.id() == after))
        .map_or(0, |at| at + 1);
    let rest = page.items.get(start..).unwrap_or_default();
    let taken: Vec<BatchId> = rest.iter().take(query.max_results).cloned().collect();
    let next = if rest.len() > taken.len() {
        Some(PageToken {
            codebuild: cursor.codebuild,
            after: taken.last().map(BatchId::id),
        })
    } else {
        page.next_token.map(|token| PageToken {
            codebuild: Some(token),
            after: None,
        })
    };
    let batches = if taken.is_empty() {
        Vec::new()
    } else {
        let lookup = codebuild
            .batch_get_build_batches(&taken)
            .await
            .map_err(upstream)?;
        // In the listing's order; a batch deleted between the two calls is left out.
        taken
            .iter()
            .filter_map(|id| lookup.batches.iter().find(|b| b.id.id() == id.id()))
            .map(BatchSummary::from)
            .collect()
    };
    let mut body = json!({ "batches": batches });
    if let Some(next) = next {
        body["nextToken"] = json!(next.encode());
    }
    Ok(body)
}
