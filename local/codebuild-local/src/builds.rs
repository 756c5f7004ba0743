//! Build operations: StartBuild, BatchGetBuilds, StopBuild, RetryBuild, ListBuildsForProject,
//! ListBuilds, and the build life cycle (create, finish, CodeBuild's own auto-retry).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::idempotency::{TokenUse, parameters_of};
use crate::model::{AutoRetryConfig, Build, EnvironmentVariable, Logs, PhaseContext, Status};
use crate::pagination::{DEFAULT_PAGE, page};
use crate::phases;
use crate::state::{Ctx, Store, id_from, parse, to_json};

/// Most ids a batch-get accepts.
pub const BATCH_GET_LIMIT: usize = 100;

/// What a new build is made from.
#[derive(Debug, Clone, Default)]
pub struct NewBuild {
    /// Project name (must exist).
    pub project: String,
    /// Source version to build.
    pub source_version: Option<String>,
    /// Variables that override the project's by name.
    pub environment_variables: Vec<EnvironmentVariable>,
    /// Who starts it.
    pub initiator: String,
    /// Start time (seeded builds may be older than now).
    pub start: Option<DateTime<Utc>>,
    /// Batch the build belongs to.
    pub batch_arn: Option<String>,
    /// Timeout override.
    pub timeout_in_minutes: Option<i32>,
    /// Auto-retry override (`autoRetryLimitOverride`), else the project's.
    pub auto_retry_limit: Option<i32>,
    /// Auto-retry chain position, when CodeBuild itself retries.
    pub auto_retry: Option<AutoRetryConfig>,
    /// Phase a running build is in.
    pub current_phase: Option<String>,
}

/// A project's `environment` with `overrides` applied to its `environmentVariables` (an
/// override replaces the project's variable of the same name), and the resulting variables.
pub fn environment_with_overrides(
    project_environment: &Value,
    overrides: Vec<EnvironmentVariable>,
) -> (Value, Vec<EnvironmentVariable>) {
    let mut variables: Vec<EnvironmentVariable> = project_environment
        .get("environmentVariables")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    for var in overrides {
        variables.retain(|v| v.name != var.name);
        variables.push(var);
    }
    let mut environment = project_environment.clone();
    if let Some(env) = environment.as_object_mut() {
        env.insert("environmentVariables".into(), to_json(&variables));
    }
    (environment, variables)
}

/// Creates a running build and returns its id. Emits its IN_PROGRESS state change.
pub fn create_build(store: &mut Store, ctx: &Ctx, new: NewBuild) -> Result<String, ApiError> {
    let project = store.project(&new.project)?;
    let number = project.next_build_number;
    project.next_build_number += 1;
    let id = Ctx::new_id(&project.name);
    let start = new.start.unwrap_or(ctx.now);

    let (environment, variables) =
        environment_with_overrides(&project.environment, new.environment_variables);
    let auto_retry = new.auto_retry.or_else(|| {
        new.auto_retry_limit
            .or(project.auto_retry_limit)
            .filter(|limit| *limit > 0)
            .map(|limit| AutoRetryConfig {
                auto_retry_limit: limit,
                auto_retry_number: 0,
                next_auto_retry: None,
                previous_auto_retry: None,
            })
    });
    let uuid = id
        .rsplit_once(':')
        .map_or(id.as_str(), |(_, u)| u)
        .to_owned();
    let group = format!("/aws/codebuild/{}", project.name);
    let current = new.current_phase.unwrap_or_else(|| "QUEUED".to_owned());
    let build = Build {
        arn: ctx.build_arn(&id),
        build_number: number,
        start_time: start,
        end_time: None,
        phases: phases::running_build(start, &current),
        current_phase: current,
        build_status: Status::InProgress,
        source_version: new.source_version,
        resolved_source_version: None,
        project_name: project.name.clone(),
        source: project.source.clone(),
        artifacts: json!({"location": ""}),
        environment,
        service_role: project.service_role.clone(),
        logs: Logs {
            deep_link: format!(
                "https://console.aws.amazon.com/cloudwatch/home?region={}#logEvent:group={group};stream={uuid}",
                ctx.region
            ),
            cloud_watch_logs_arn: format!(
                "arn:aws:logs:{}:{}:log-group:{group}:log-stream:{uuid}",
                ctx.region, ctx.account
            ),
            group_name: group,
            stream_name: uuid,
        },
        timeout_in_minutes: new.timeout_in_minutes.unwrap_or(project.timeout_in_minutes),
        queued_timeout_in_minutes: project.queued_timeout_in_minutes,
        build_complete: false,
        initiator: new.initiator,
        encryption_key: project.encryption_key.clone(),
        build_batch_arn: new.batch_arn,
        auto_retry_config: auto_retry,
        environment_variables: variables,
        id: id.clone(),
    };
    store.changed.push(build.clone());
    store.builds.insert(id.clone(), build);
    store.build_order.push(id.clone());
    Ok(id)
}

/// Ends a running build with `status` in phase `ended_in`; emits the change, lets CodeBuild
/// auto-retry a failure when the build has retries left, and updates its batch.
pub fn finish_build(
    store: &mut Store,
    ctx: &Ctx,
    id: &str,
    status: Status,
    ended_in: &str,
    contexts: Vec<PhaseContext>,
) -> Result<(), ApiError> {
    let build = store
        .builds
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("Build not found: {id}")))?;
    if build.build_status.is_complete() {
        return Err(ApiError::invalid_input(format!(
            "Build {id} is already complete"
        )));
    }
    build.phases = phases::completed_build(build.start_time, ctx.now, status, ended_in, contexts);
    build.current_phase = "COMPLETED".to_owned();
    build.build_status = status;
    build.build_complete = true;
    build.end_time = Some(ctx.now);
    if build.resolved_source_version.is_none() && status != Status::Stopped {
        build.resolved_source_version = Some(resolved_version(build.source_version.as_deref()));
    }
    let snapshot = build.clone();
    store.changed.push(snapshot.clone());

    if status.is_failure()
        && snapshot.build_batch_arn.is_none()
        && let Some(cfg) = snapshot.auto_retry_config.clone()
        && cfg.auto_retry_number < cfg.auto_retry_limit
    {
        let next = create_build(
            store,
            ctx,
            NewBuild {
                project: snapshot.project_name.clone(),
                source_version: snapshot.source_version.clone(),
                environment_variables: snapshot.environment_variables.clone(),
                initiator: snapshot.initiator.clone(),
                timeout_in_minutes: Some(snapshot.timeout_in_minutes),
                auto_retry: Some(AutoRetryConfig {
                    auto_retry_limit: cfg.auto_retry_limit,
                    auto_retry_number: cfg.auto_retry_number + 1,
                    next_auto_retry: None,
                    previous_auto_retry: Some(snapshot.arn.clone()),
                }),
                ..NewBuild::default()
            },
        )?;
        let next_arn = ctx.build_arn(&next);
        if let Some(cfg) = store
            .builds
            .get_mut(id)
            .and_then(|b| b.auto_retry_config.as_mut())
        {
            cfg.next_auto_retry = Some(next_arn);
        }
    }
    if let Some(batch_arn) = snapshot.build_batch_arn {
        crate::batches::on_build_finished(store, ctx, id_from(&batch_arn));
    }
    Ok(())
}

/// A stable fake commit for a source version (what CodeBuild resolves a branch to).
fn resolved_version(source_version: Option<&str>) -> String {
    use sha2::Digest;
    // 40 hex digits, like a git commit id.
    let digest = hex::encode(sha2::Sha256::digest(
        source_version.unwrap_or("HEAD").as_bytes(),
    ));
    digest[..40].to_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBuildInput {
    project_name: String,
    source_version: Option<String>,
    #[serde(default)]
    environment_variables_override: Vec<EnvironmentVariable>,
    idempotency_token: Option<String>,
    timeout_in_minutes_override: Option<i32>,
    auto_retry_limit_override: Option<i32>,
}

/// `StartBuild`.
pub fn start_build(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: StartBuildInput = parse(body)?;
    let token = input.idempotency_token.as_deref();
    let params = parameters_of(body);
    if let TokenUse::Replay(id) = store.tokens.check("StartBuild", token, &params, ctx.now)? {
        return build_response(store, &id);
    }
    let id = create_build(
        store,
        ctx,
        NewBuild {
            project: input.project_name,
            source_version: input.source_version,
            environment_variables: input.environment_variables_override,
            initiator: ctx.initiator.clone(),
            timeout_in_minutes: input.timeout_in_minutes_override,
            auto_retry_limit: input.auto_retry_limit_override,
            ..NewBuild::default()
        },
    )?;
    store
        .tokens
        .record("StartBuild", token, params, &id, ctx.now);
    build_response(store, &id)
}

fn build_response(store: &Store, id: &str) -> Result<Value, ApiError> {
    let build = store
        .builds
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("Build not found: {id}")))?;
    Ok(json!({ "build": to_json(build) }))
}

#[derive(Deserialize)]
struct IdsInput {
    #[serde(default)]
    ids: Vec<String>,
}

/// Checks the id count of a batch-get (1..=100, as the service model constrains it).
pub fn check_batch_get(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > BATCH_GET_LIMIT {
        return Err(ApiError::invalid_input(format!(
            "1 validation error detected: Value at 'ids' failed to satisfy constraint: \
             Member must have length between 1 and {BATCH_GET_LIMIT} (got {})",
            ids.len()
        )));
    }
    Ok(())
}

/// `BatchGetBuilds`.
pub fn batch_get_builds(store: &mut Store, _ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: IdsInput = parse(body)?;
    check_batch_get(&input.ids)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for raw in &input.ids {
        match store.builds.get(id_from(raw)) {
            Some(build) => found.push(to_json(build)),
            None => missing.push(raw.clone()),
        }
    }
    Ok(json!({ "builds": found, "buildsNotFound": missing }))
}

#[derive(Deserialize)]
struct IdInput {
    id: String,
}

/// `StopBuild`.
pub fn stop_build(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: IdInput = parse(body)?;
    let id = id_from(&input.id).to_owned();
    let build = store
        .builds
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("Build not found: {id}")))?;
    // ASSUMPTION: stopping a finished build is not an error; the build comes back unchanged.
    // The docs are silent and a no-op keeps callers that stop "just in case" idempotent.
    if build.build_status.is_complete() {
        return build_response(store, &id);
    }
    let phase = build.current_phase.clone();
    finish_build(store, ctx, &id, Status::Stopped, &phase, Vec::new())?;
    build_response(store, &id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetryBuildInput {
    id: String,
    idempotency_token: Option<String>,
}

/// `RetryBuild`: a NEW build (new id, next number) with the original's settings.
pub fn retry_build(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: RetryBuildInput = parse(body)?;
    let token = input.idempotency_token.as_deref();
    let params = parameters_of(body);
    if let TokenUse::Replay(id) = store.tokens.check("RetryBuild", token, &params, ctx.now)? {
        return build_response(store, &id);
    }
    let id = id_from(&input.id);
    let original = store
        .builds
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("Build not found: {}", input.id)))?
        .clone();
    // ASSUMPTION: only a finished build can be retried (the console offers "Retry" on
    // finished builds only); retrying a running one is rejected as bad input.
    if !original.build_status.is_complete() {
        return Err(ApiError::invalid_input(format!(
            "Build {id} is still in progress and cannot be retried"
        )));
    }
    // ASSUMPTION: a build retried on its own leaves its batch; batches retry via RetryBuildBatch.
    let new_id = create_build(
        store,
        ctx,
        NewBuild {
            project: original.project_name.clone(),
            source_version: original.source_version.clone(),
            environment_variables: original.environment_variables.clone(),
            initiator: ctx.initiator.clone(),
            timeout_in_minutes: Some(original.timeout_in_minutes),
            ..NewBuild::default()
        },
    )?;
    store
        .tokens
        .record("RetryBuild", token, params, &new_id, ctx.now);
    build_response(store, &new_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    project_name: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
}

/// Orders ids oldest-first (`ASCENDING`) or newest-first (`DESCENDING`, the default).
pub fn sort_ids(mut ids: Vec<String>, order: Option<&str>) -> Result<Vec<String>, ApiError> {
    match order.unwrap_or("DESCENDING") {
        "DESCENDING" => ids.reverse(),
        "ASCENDING" => {}
        other => {
            return Err(ApiError::invalid_input(format!(
                "Invalid sortOrder: {other}"
            )));
        }
    }
    Ok(ids)
}

/// `ListBuildsForProject`.
pub fn list_builds_for_project(
    store: &mut Store,
    _ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    let name = input
        .project_name
        .ok_or_else(|| ApiError::invalid_input("projectName is required"))?;
    let name = store.project(&name)?.name.clone();
    let ids: Vec<String> = store
        .build_order
        .iter()
        .filter(|id| {
            store
                .builds
                .get(*id)
                .is_some_and(|b| b.project_name == name)
        })
        .cloned()
        .collect();
    list_response(
        ids,
        input.sort_order.as_deref(),
        input.next_token.as_deref(),
    )
}

/// `ListBuilds`.
pub fn list_builds(store: &mut Store, _ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    list_response(
        store.build_order.clone(),
        input.sort_order.as_deref(),
        input.next_token.as_deref(),
    )
}

fn list_response(
    ids: Vec<String>,
    order: Option<&str>,
    token: Option<&str>,
) -> Result<Value, ApiError> {
    let ids = sort_ids(ids, order)?;
    let (ids, next) = page(&ids, token, Some(DEFAULT_PAGE as i64))?;
    let mut out = json!({ "ids": ids });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}
