//! Batch operations: StartBuildBatch, BatchGetBuildBatches, StopBuildBatch, RetryBuildBatch,
//! ListBuildBatchesForProject, ListBuildBatches, and the batch life cycle.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::builds::{
    NewBuild, check_batch_get, create_build, environment_with_overrides, finish_build, sort_ids,
};
use crate::error::ApiError;
use crate::idempotency::{TokenUse, parameters_of};
use crate::model::{BuildBatch, BuildGroup, BuildSummary, EnvironmentVariable, Status};
use crate::pagination::page;
use crate::phases;
use crate::state::{Ctx, Store, id_from, parse, to_json};

/// One build group of a new batch.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Identifier (`build1`, ...).
    pub identifier: String,
    /// Status the group's build should have (seeding); running otherwise.
    pub status: Status,
}

/// What a new batch is made from.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// Project (must exist).
    pub project: String,
    /// Source version.
    pub source_version: Option<String>,
    /// Variable overrides for every build.
    pub environment_variables: Vec<EnvironmentVariable>,
    /// Who starts it.
    pub initiator: String,
    /// Start time (seeded batches may be older).
    pub start: Option<DateTime<Utc>>,
    /// Build groups.
    pub groups: Vec<NewGroup>,
    /// `buildTimeoutInMinutesOverride`, else the project's timeout.
    pub timeout_in_minutes: Option<i32>,
    /// `buildspecOverride`, else the project's buildspec.
    pub buildspec: Option<String>,
    /// `reportBuildBatchStatusOverride`, else the project's setting.
    pub report_status: Option<bool>,
}

/// Creates a batch with one build per group; returns its id.
pub fn create_batch(store: &mut Store, ctx: &Ctx, new: NewBatch) -> Result<String, ApiError> {
    let project = store.project(&new.project)?;
    let number = project.next_batch_number;
    project.next_batch_number += 1;
    let id = Ctx::new_id(&project.name);
    let arn = ctx.batch_arn(&id);
    let start = new.start.unwrap_or(ctx.now);
    let mut source = project.source.clone();
    // ASSUMPTION: as for a build, the batch's `source` reports the buildspec and the status
    // reporting it actually runs with, the overrides included.
    if let Some(source) = source.as_object_mut() {
        if let Some(buildspec) = &new.buildspec {
            source.insert("buildspec".into(), json!(buildspec));
        }
        if let Some(report) = new.report_status {
            source.insert("reportBuildStatus".into(), json!(report));
        }
    }
    let batch = BuildBatch {
        id: id.clone(),
        arn: arn.clone(),
        start_time: start,
        end_time: None,
        current_phase: "IN_PROGRESS".to_owned(),
        build_batch_status: Status::InProgress,
        source_version: new.source_version.clone(),
        project_name: project.name.clone(),
        phases: phases::running_batch(start),
        source,
        artifacts: json!({"location": ""}),
        // ASSUMPTION: a batch reports the overrides it was started with in its environment, as
        // a build does (the reaper reads a batch's branch from them).
        environment: environment_with_overrides(
            &project.environment,
            new.environment_variables.clone(),
        )
        .0,
        service_role: project.service_role.clone(),
        build_timeout_in_minutes: new.timeout_in_minutes.unwrap_or(project.timeout_in_minutes),
        queued_timeout_in_minutes: project.queued_timeout_in_minutes,
        complete: false,
        initiator: new.initiator.clone(),
        encryption_key: project.encryption_key.clone(),
        build_batch_number: number,
        build_groups: Vec::new(),
        environment_variables: new.environment_variables.clone(),
    };
    store.batches.insert(id.clone(), batch);
    store.batch_order.push(id.clone());
    for group in &new.groups {
        let build_id = start_group_build(store, ctx, &id, start)?;
        let summary = summary_of(store, &build_id);
        if let (Some(batch), Some(summary)) = (store.batches.get_mut(&id), summary) {
            batch.build_groups.push(BuildGroup {
                identifier: group.identifier.clone(),
                depends_on: Vec::new(),
                ignore_failure: false,
                current_build_summary: summary,
                prior_build_summary_list: Vec::new(),
            });
        }
    }
    // Finish seeded builds only once every group exists, so the batch completes correctly.
    for (group, build_id) in new.groups.iter().zip(group_build_ids(store, &id)) {
        if group.status.is_complete() {
            let phase = if group.status == Status::Succeeded {
                "FINALIZING"
            } else {
                "BUILD"
            };
            finish_build(store, ctx, &build_id, group.status, phase, Vec::new())?;
        }
    }
    Ok(id)
}

fn start_group_build(
    store: &mut Store,
    ctx: &Ctx,
    batch_id: &str,
    start: DateTime<Utc>,
) -> Result<String, ApiError> {
    let batch = store
        .batches
        .get(batch_id)
        .ok_or_else(|| ApiError::not_found(format!("Build batch not found: {batch_id}")))?
        .clone();
    create_build(
        store,
        ctx,
        NewBuild {
            project: batch.project_name,
            source_version: batch.source_version,
            environment_variables: batch.environment_variables,
            initiator: batch.initiator,
            start: Some(start),
            batch_arn: Some(batch.arn),
            timeout_in_minutes: Some(batch.build_timeout_in_minutes),
            auto_retry_limit: Some(0),
            ..NewBuild::default()
        },
    )
}

fn summary_of(store: &Store, build_id: &str) -> Option<BuildSummary> {
    store.builds.get(build_id).map(|b| BuildSummary {
        arn: b.arn.clone(),
        requested_on: b.start_time,
        build_status: b.build_status,
    })
}

fn group_build_ids(store: &Store, batch_id: &str) -> Vec<String> {
    store
        .batches
        .get(batch_id)
        .map(|b| {
            b.build_groups
                .iter()
                .map(|g| id_from(&g.current_build_summary.arn).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Called when a build of batch `batch_id` finished: refreshes the group summary and, once
/// every group's current build is complete, completes the batch.
pub fn on_build_finished(store: &mut Store, ctx: &Ctx, batch_id: &str) {
    let statuses: Vec<(usize, Option<Status>)> = match store.batches.get(batch_id) {
        Some(batch) => batch
            .build_groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (
                    i,
                    store
                        .builds
                        .get(id_from(&g.current_build_summary.arn))
                        .map(|b| b.build_status),
                )
            })
            .collect(),
        None => return,
    };
    let Some(batch) = store.batches.get_mut(batch_id) else {
        return;
    };
    for (i, status) in &statuses {
        if let (Some(group), Some(status)) = (batch.build_groups.get_mut(*i), status) {
            group.current_build_summary.build_status = *status;
        }
    }
    if batch.complete
        || batch
            .build_groups
            .iter()
            .any(|g| !g.current_build_summary.build_status.is_complete())
    {
        return;
    }
    let groups = &batch.build_groups;
    let status = if groups
        .iter()
        .any(|g| g.current_build_summary.build_status == Status::Stopped)
    {
        Status::Stopped
    } else if groups
        .iter()
        .any(|g| !g.ignore_failure && g.current_build_summary.build_status.is_failure())
    {
        Status::Failed
    } else {
        Status::Succeeded
    };
    complete(batch, status, ctx.now);
}

fn complete(batch: &mut BuildBatch, status: Status, now: DateTime<Utc>) {
    phases::complete_batch(&mut batch.phases, status, now);
    batch.current_phase = phases::current_phase(&batch.phases);
    batch.build_batch_status = status;
    batch.complete = true;
    batch.end_time = Some(now);
}

/// The batch phase while its builds run.
pub const RUNNING_PHASE: &str = "IN_PROGRESS";
/// The batch phase after its builds, while their artifacts are combined.
pub const COMBINING_PHASE: &str = "COMBINE_ARTIFACTS";

/// Whether a running batch can be in `phase` (the phases seeding can put it in).
pub fn is_running_phase(phase: &str) -> bool {
    phase == RUNNING_PHASE || phase == COMBINING_PHASE
}

/// Keeps a seeded batch running in `phase` (one of [`is_running_phase`]), reopening it if its
/// builds all finished: the window in which CodeBuild still reports it `IN_PROGRESS`.
pub fn keep_running(store: &mut Store, ctx: &Ctx, batch_id: &str, phase: &str) {
    let Some(batch) = store.batches.get_mut(batch_id) else {
        return;
    };
    batch.build_batch_status = Status::InProgress;
    batch.complete = false;
    batch.end_time = None;
    batch.phases = if phase == COMBINING_PHASE {
        phases::combining_batch(batch.start_time, ctx.now)
    } else {
        phases::running_batch(batch.start_time)
    };
    batch.current_phase = phases::current_phase(&batch.phases);
}

/// Forces a seeded batch into `status` (its builds keep theirs).
pub fn force_status(store: &mut Store, ctx: &Ctx, batch_id: &str, status: Status) {
    if let Some(batch) = store.batches.get_mut(batch_id)
        && batch.build_batch_status != status
        && status.is_complete()
    {
        if batch.complete {
            batch.phases = phases::running_batch(batch.start_time);
        }
        complete(batch, status, ctx.now);
    }
}

fn batch_response(store: &Store, id: &str) -> Result<Value, ApiError> {
    let batch = store
        .batches
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("Build batch not found: {id}")))?;
    Ok(json!({ "buildBatch": to_json(batch) }))
}

/// The service model's range of `BuildTimeOut` (minutes).
const MIN_BUILD_TIMEOUT: i32 = 5;
const MAX_BUILD_TIMEOUT: i32 = 2160;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBuildBatchInput {
    project_name: String,
    source_version: Option<String>,
    #[serde(default)]
    environment_variables_override: Vec<EnvironmentVariable>,
    idempotency_token: Option<String>,
    build_timeout_in_minutes_override: Option<i32>,
    buildspec_override: Option<String>,
    report_build_batch_status_override: Option<bool>,
}

/// `StartBuildBatch`.
pub fn start_build_batch(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: StartBuildBatchInput = parse(body)?;
    if let Some(minutes) = input.build_timeout_in_minutes_override
        && !(MIN_BUILD_TIMEOUT..=MAX_BUILD_TIMEOUT).contains(&minutes)
    {
        return Err(ApiError::invalid_input(format!(
            "Invalid buildTimeoutInMinutesOverride: {minutes}; it must be between \
             {MIN_BUILD_TIMEOUT} and {MAX_BUILD_TIMEOUT} minutes"
        )));
    }
    let token = input.idempotency_token.as_deref();
    let params = parameters_of(body);
    if let TokenUse::Replay(id) = store
        .tokens
        .check("StartBuildBatch", token, &params, ctx.now)?
    {
        return batch_response(store, &id);
    }
    // ASSUMPTION: the emulator does not read a batch spec; every batch runs one build group,
    // `build1`. Seed a batch through the control API for other shapes.
    let id = create_batch(
        store,
        ctx,
        NewBatch {
            project: input.project_name,
            source_version: input.source_version,
            environment_variables: input.environment_variables_override,
            initiator: ctx.initiator.clone(),
            start: None,
            groups: vec![NewGroup {
                identifier: "build1".into(),
                status: Status::InProgress,
            }],
            timeout_in_minutes: input.build_timeout_in_minutes_override,
            buildspec: input.buildspec_override,
            report_status: input.report_build_batch_status_override,
        },
    )?;
    store
        .tokens
        .record("StartBuildBatch", token, params, &id, ctx.now);
    batch_response(store, &id)
}

#[derive(Deserialize)]
struct IdsInput {
    #[serde(default)]
    ids: Vec<String>,
}

/// `BatchGetBuildBatches`.
pub fn batch_get_build_batches(
    store: &mut Store,
    _ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let input: IdsInput = parse(body)?;
    check_batch_get(&input.ids)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for raw in &input.ids {
        match store.batches.get(id_from(raw)) {
            Some(batch) => found.push(to_json(batch)),
            None => missing.push(raw.clone()),
        }
    }
    Ok(json!({ "buildBatches": found, "buildBatchesNotFound": missing }))
}

#[derive(Deserialize)]
struct IdInput {
    id: String,
}

/// `StopBuildBatch`: stops every running build; the batch ends STOPPED.
pub fn stop_build_batch(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: IdInput = parse(body)?;
    let id = id_from(&input.id).to_owned();
    let batch = store
        .batches
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("Build batch not found: {id}")))?;
    // ASSUMPTION: stopping a finished batch is a no-op that returns it unchanged (docs silent).
    if batch.complete {
        return batch_response(store, &id);
    }
    for build_id in group_build_ids(store, &id) {
        let running = store
            .builds
            .get(&build_id)
            .filter(|b| !b.build_status.is_complete())
            .map(|b| b.current_phase.clone());
        if let Some(phase) = running {
            finish_build(store, ctx, &build_id, Status::Stopped, &phase, Vec::new())?;
        }
    }
    force_status(store, ctx, &id, Status::Stopped);
    batch_response(store, &id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetryBuildBatchInput {
    id: String,
    idempotency_token: Option<String>,
    retry_type: Option<String>,
}

/// `RetryBuildBatch`: restarts the same batch in place; earlier attempts move to
/// `priorBuildSummaryList` of their group.
pub fn retry_build_batch(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: RetryBuildBatchInput = parse(body)?;
    let token = input.idempotency_token.as_deref();
    let params = parameters_of(body);
    if let TokenUse::Replay(id) = store
        .tokens
        .check("RetryBuildBatch", token, &params, ctx.now)?
    {
        return batch_response(store, &id);
    }
    // ASSUMPTION: without retryType the service retries every build (RETRY_ALL_BUILDS).
    let failed_only = match input.retry_type.as_deref().unwrap_or("RETRY_ALL_BUILDS") {
        "RETRY_ALL_BUILDS" => false,
        "RETRY_FAILED_BUILDS" => true,
        other => {
            return Err(ApiError::invalid_input(format!(
                "Invalid retryType: {other}"
            )));
        }
    };
    let id = id_from(&input.id).to_owned();
    let batch = store
        .batches
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("Build batch not found: {}", input.id)))?;
    // ASSUMPTION: only a finished, unsuccessful batch can be retried ("restarts a failed batch").
    if !batch.complete || batch.build_batch_status == Status::Succeeded {
        return Err(ApiError::invalid_input(format!(
            "Build batch {id} is {} and cannot be retried; only failed batches can be retried",
            batch.build_batch_status.as_str()
        )));
    }
    let to_retry: Vec<usize> = batch
        .build_groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !failed_only || g.current_build_summary.build_status != Status::Succeeded)
        .map(|(i, _)| i)
        .collect();
    if let Some(batch) = store.batches.get_mut(&id) {
        batch.build_batch_status = Status::InProgress;
        batch.complete = false;
        batch.end_time = None;
        batch.phases = phases::running_batch(ctx.now);
        batch.current_phase = phases::current_phase(&batch.phases);
    }
    for index in to_retry {
        let build_id = start_group_build(store, ctx, &id, ctx.now)?;
        let summary = summary_of(store, &build_id);
        if let (Some(group), Some(summary)) = (
            store
                .batches
                .get_mut(&id)
                .and_then(|b| b.build_groups.get_mut(index)),
            summary,
        ) {
            let prior = std::mem::replace(&mut group.current_build_summary, summary);
            group.prior_build_summary_list.push(prior);
        }
    }
    store
        .tokens
        .record("RetryBuildBatch", token, params, &id, ctx.now);
    batch_response(store, &id)
}

#[derive(Deserialize, Default)]
struct BatchFilter {
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBatchesInput {
    project_name: Option<String>,
    #[serde(default)]
    filter: BatchFilter,
    max_results: Option<i64>,
    sort_order: Option<String>,
    next_token: Option<String>,
}

fn list_batches(
    store: &Store,
    input: ListBatchesInput,
    project: Option<&str>,
) -> Result<Value, ApiError> {
    let ids: Vec<String> = store
        .batch_order
        .iter()
        .filter(|id| {
            store.batches.get(*id).is_some_and(|b| {
                project.is_none_or(|p| b.project_name == p)
                    && input
                        .filter
                        .status
                        .is_none_or(|s| b.build_batch_status == s)
            })
        })
        .cloned()
        .collect();
    let ids = sort_ids(ids, input.sort_order.as_deref())?;
    let (ids, next) = page(&ids, input.next_token.as_deref(), input.max_results)?;
    let mut out = json!({ "ids": ids });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}

/// `ListBuildBatchesForProject`.
pub fn list_build_batches_for_project(
    store: &mut Store,
    _ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let input: ListBatchesInput = parse(body)?;
    let name = input
        .project_name
        .clone()
        .ok_or_else(|| ApiError::invalid_input("projectName is required"))?;
    let name = store.project(&name)?.name.clone();
    list_batches(store, input, Some(&name))
}

/// `ListBuildBatches`.
pub fn list_build_batches(store: &mut Store, _ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: ListBatchesInput = parse(body)?;
    list_batches(store, input, None)
}
