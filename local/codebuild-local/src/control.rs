//! The control API on `/_local/` (seeding, finishing builds, faults, call log, clock, event
//! sink) and [`ControlClient`], its typed client for tests.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::batches::{self, NewBatch, NewGroup};
use crate::builds::{self, NewBuild};
use crate::error::ApiError;
use crate::faults::FaultSpec;
use crate::model::{EnvironmentVariable, PhaseContext, Status};
use crate::phases;
use crate::protocol::{CallRecord, DEFAULT_INITIATOR};
use crate::server::AppState;
use crate::state::{Ctx, Store, id_from, to_json};

/// One phase of a seeded build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedPhase {
    /// Phase type, e.g. `BUILD`.
    pub phase_type: String,
    /// Its status (absent for a running phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_status: Option<Status>,
    /// Its contexts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<PhaseContext>,
}

/// Body of `POST /_local/builds`: a build in any state and age.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedBuild {
    /// Project (created with defaults if missing).
    pub project_name: String,
    /// Status (default `IN_PROGRESS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status: Option<Status>,
    /// Phase a running build is in, or the phase a finished one ended in (default `BUILD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_phase: Option<String>,
    /// Explicit phases (replace the generated ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Vec<SeedPhase>>,
    /// How long ago the build started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Initiator (default `codebuild-local-user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Source version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Environment variables (override the project's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
    /// Batch ARN the build claims to belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_batch_arn: Option<String>,
}

/// Body of `POST /_local/builds/{id}/finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishBuild {
    /// Final status (not `IN_PROGRESS`).
    pub build_status: Status,
    /// Phase the build ended in (default `BUILD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_type: Option<String>,
    /// Contexts of that phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<PhaseContext>,
}

/// One build of a seeded batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedBatchBuild {
    /// Group identifier (default `buildN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Build status (default: running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status: Option<Status>,
}

/// Body of `POST /_local/batches` (and one element of `POST /_local/batches/bulk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedBatch {
    /// Project (created with defaults if missing).
    pub project_name: String,
    /// Batch status; default derived from the builds (running if any runs). An explicit
    /// `IN_PROGRESS` keeps the batch running even when every build is complete: the moment
    /// before CodeBuild closes a batch, which the reaper must recognise as finishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_batch_status: Option<Status>,
    /// Phase of a running batch: `IN_PROGRESS` (default) or `COMBINE_ARTIFACTS` (its builds
    /// are done and their artifacts are being combined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_phase: Option<String>,
    /// How long ago the batch started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Source version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Environment variables of every build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
    /// Initiator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// The builds (default: one, with the batch's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds: Option<Vec<SeedBatchBuild>>,
}

fn bad(message: impl Into<String>) -> Response {
    ApiError::invalid_input(message).into_response()
}

fn ctx(app: &AppState) -> Ctx {
    Ctx {
        now: app.clock.now(),
        region: app.config.region.clone(),
        account: app.config.account.clone(),
        initiator: DEFAULT_INITIATOR.to_owned(),
    }
}

fn age(ctx: &Ctx, seconds: Option<i64>) -> chrono::DateTime<chrono::Utc> {
    ctx.now - TimeDelta::seconds(seconds.unwrap_or(0).max(0))
}

async fn seed_build(State(app): State<AppState>, Json(seed): Json<SeedBuild>) -> Response {
    let ctx = ctx(&app);
    let status = seed.build_status.unwrap_or(Status::InProgress);
    let phase = seed
        .current_phase
        .clone()
        .unwrap_or_else(|| "BUILD".to_owned());
    if !phases::is_build_phase(&phase) {
        return bad(format!("unknown phase {phase}"));
    }
    let result = app.with_store(|store| {
        store.ensure_project(&ctx, &seed.project_name);
        let start = age(&ctx, seed.age_seconds);
        let id = builds::create_build(
            store,
            &ctx,
            NewBuild {
                project: seed.project_name.clone(),
                source_version: seed.source_version.clone(),
                environment_variables: seed.environment_variables.clone().unwrap_or_default(),
                initiator: seed
                    .initiator
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INITIATOR.to_owned()),
                start: Some(start),
                batch_arn: seed.build_batch_arn.clone(),
                current_phase: Some(if status.is_complete() {
                    "QUEUED".into()
                } else {
                    phase.clone()
                }),
                ..NewBuild::default()
            },
        )?;
        if status.is_complete() {
            let contexts = seed
                .phases
                .iter()
                .flatten()
                .find(|p| p.phase_type == phase)
                .map(|p| p.contexts.clone())
                .unwrap_or_default();
            builds::finish_build(store, &ctx, &id, status, &phase, contexts)?;
        }
        if let (Some(seeded), Some(build)) = (&seed.phases, store.builds.get_mut(&id)) {
            build.phases = seeded
                .iter()
                .map(|p| crate::model::Phase {
                    phase_type: p.phase_type.clone(),
                    phase_status: p.phase_status,
                    start_time: start,
                    end_time: p.phase_status.map(|_| build.end_time.unwrap_or(ctx.now)),
                    duration_in_seconds: p.phase_status.map(|_| 0),
                    contexts: p.contexts.clone(),
                })
                .collect();
        }
        // Seeding sets the scene; it is not a state change anyone should be told about.
        store.changed.clear();
        store
            .builds
            .get(&id)
            .map(to_json)
            .ok_or_else(|| ApiError::not_found(id.clone()))
    });
    match result {
        Ok(build) => Json(build).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn finish_build(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(finish): Json<FinishBuild>,
) -> Response {
    if !finish.build_status.is_complete() {
        return bad("buildStatus must be a final status");
    }
    let phase = finish
        .phase_type
        .clone()
        .unwrap_or_else(|| "BUILD".to_owned());
    if !phases::is_build_phase(&phase) {
        return bad(format!("unknown phase {phase}"));
    }
    let ctx = ctx(&app);
    let id = id_from(&id).to_owned();
    let (result, changed) = app.with_store(|store| {
        let result = builds::finish_build(
            store,
            &ctx,
            &id,
            finish.build_status,
            &phase,
            finish.contexts.clone(),
        )
        .and_then(|()| {
            store
                .builds
                .get(&id)
                .map(to_json)
                .ok_or_else(|| ApiError::not_found(id.clone()))
        });
        (result, std::mem::take(&mut store.changed))
    });
    app.emit(&changed, ctx.now);
    match result {
        Ok(build) => Json(build).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Rejects a seed that describes no batch CodeBuild could report.
fn check_seed(seed: &SeedBatch) -> Result<(), ApiError> {
    if let Some(phase) = seed.current_phase.as_deref() {
        if !batches::is_running_phase(phase) {
            return Err(ApiError::invalid_input(format!(
                "currentPhase must be {} or {}, got {phase}",
                batches::RUNNING_PHASE,
                batches::COMBINING_PHASE
            )));
        }
        if seed.build_batch_status.is_some_and(Status::is_complete) {
            return Err(ApiError::invalid_input(
                "currentPhase is only for a running batch",
            ));
        }
    }
    Ok(())
}

/// Creates one seeded batch in `store`; returns its id.
fn seed_one_batch(store: &mut Store, ctx: &Ctx, seed: &SeedBatch) -> Result<String, ApiError> {
    check_seed(seed)?;
    let batch_status = seed.build_batch_status;
    let phase = seed
        .current_phase
        .as_deref()
        .unwrap_or(batches::RUNNING_PHASE);
    let default_build_status = batch_status.unwrap_or(Status::InProgress);
    let groups: Vec<NewGroup> = seed
        .builds
        .clone()
        .unwrap_or_else(|| vec![SeedBatchBuild::default()])
        .into_iter()
        .enumerate()
        .map(|(i, b)| NewGroup {
            identifier: b.identifier.unwrap_or_else(|| format!("build{}", i + 1)),
            status: b.build_status.unwrap_or(default_build_status),
        })
        .collect();
    store.ensure_project(ctx, &seed.project_name);
    let id = batches::create_batch(
        store,
        ctx,
        NewBatch {
            project: seed.project_name.clone(),
            source_version: seed.source_version.clone(),
            environment_variables: seed.environment_variables.clone().unwrap_or_default(),
            initiator: seed
                .initiator
                .clone()
                .unwrap_or_else(|| DEFAULT_INITIATOR.to_owned()),
            start: Some(age(ctx, seed.age_seconds)),
            groups,
            timeout_in_minutes: None,
            buildspec: None,
            report_status: None,
        },
    )?;
    match batch_status {
        Some(Status::InProgress) => batches::keep_running(store, ctx, &id, phase),
        Some(status) => batches::force_status(store, ctx, &id, status),
        None if phase != batches::RUNNING_PHASE => batches::keep_running(store, ctx, &id, phase),
        None => {}
    }
    // Seeding sets the scene; it is not a state change anyone should be told about.
    store.changed.clear();
    Ok(id)
}

async fn seed_batch(State(app): State<AppState>, Json(seed): Json<SeedBatch>) -> Response {
    let ctx = ctx(&app);
    let result = app.with_store(|store| {
        let id = seed_one_batch(store, &ctx, &seed)?;
        store
            .batches
            .get(&id)
            .map(to_json)
            .ok_or_else(|| ApiError::not_found(id.clone()))
    });
    match result {
        Ok(batch) => Json(batch).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Answer of `POST /_local/batches/bulk`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededBatches {
    /// The new batches' ids, in the order of the request.
    pub ids: Vec<String>,
}

/// Seeds many batches in one request (a benchmark seeds 10,000; one request each would time
/// the HTTP stack, not the reaper). All or nothing: the first invalid seed rejects the rest.
async fn seed_batches(State(app): State<AppState>, Json(seeds): Json<Vec<SeedBatch>>) -> Response {
    let ctx = ctx(&app);
    let result = app.with_store(|store| {
        // Validate first so a bad seed leaves the store as it was.
        seeds.iter().try_for_each(check_seed)?;
        seeds
            .iter()
            .map(|seed| seed_one_batch(store, &ctx, seed))
            .collect::<Result<Vec<_>, _>>()
    });
    match result {
        Ok(ids) => Json(SeededBatches { ids }).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn set_faults(State(app): State<AppState>, Json(spec): Json<FaultSpec>) -> Response {
    app.faults().set(spec.clone());
    Json(spec).into_response()
}

async fn clear_faults(State(app): State<AppState>) -> StatusCode {
    app.faults().clear();
    StatusCode::NO_CONTENT
}

async fn calls(State(app): State<AppState>) -> Json<Vec<CallRecord>> {
    Json(app.calls().clone())
}

async fn clear_calls(State(app): State<AppState>) -> StatusCode {
    app.calls().clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Advance {
    seconds: f64,
}

async fn advance_clock(State(app): State<AppState>, Json(advance): Json<Advance>) -> Response {
    if !advance.seconds.is_finite() || advance.seconds < 0.0 {
        return bad("seconds must be a non-negative number");
    }
    app.clock.advance(Duration::from_secs_f64(advance.seconds));
    Json(json!({ "now": app.clock.now().to_rfc3339() })).into_response()
}

#[derive(Serialize, Deserialize)]
struct Sink {
    url: Option<String>,
}

async fn set_event_sink(State(app): State<AppState>, Json(sink): Json<Sink>) -> Json<Sink> {
    app.events.set_url(sink.url.clone());
    Json(sink)
}

/// The `/_local` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/builds", post(seed_build))
        .route("/builds/{id}/finish", post(finish_build))
        .route("/batches", post(seed_batch))
        .route("/batches/bulk", post(seed_batches))
        .route("/faults", post(set_faults).delete(clear_faults))
        .route("/calls", get(calls).delete(clear_calls))
        .route("/clock/advance", post(advance_clock))
        .route("/event-sink", put(set_event_sink))
}

/// Errors of [`ControlClient`].
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The emulator could not be reached or answered garbage.
    #[error("control request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The emulator refused the request.
    #[error("control request rejected with {status}: {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
}

/// Typed client of the control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    base: String,
    http: reqwest::Client,
}

impl ControlClient {
    /// A client for the emulator at `endpoint` (`http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str) -> Self {
        Self {
            base: format!("{}/_local", endpoint.trim_end_matches('/')),
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ControlError> {
        let response = request.send().await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Err(ControlError::Rejected { status, body })
        }
    }

    async fn post_json<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Value, ControlError> {
        let response = self
            .send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await?;
        Ok(response.json().await?)
    }

    /// Seeds a build; returns it as `BatchGetBuilds` would.
    pub async fn seed_build(&self, seed: &SeedBuild) -> Result<Value, ControlError> {
        self.post_json("/builds", seed).await
    }

    /// Finishes a running build (id or ARN); returns the build.
    pub async fn finish_build(
        &self,
        id: &str,
        finish: &FinishBuild,
    ) -> Result<Value, ControlError> {
        // An ARN carries '/', which must not split the path segment.
        let id = id.replace('/', "%2F");
        self.post_json(&format!("/builds/{id}/finish"), finish)
            .await
    }

    /// Seeds a batch; returns it as `BatchGetBuildBatches` would.
    pub async fn seed_batch(&self, seed: &SeedBatch) -> Result<Value, ControlError> {
        self.post_json("/batches", seed).await
    }

    /// Seeds many batches in one request; returns their ids in order.
    pub async fn seed_batches(&self, seeds: &[SeedBatch]) -> Result<Vec<String>, ControlError> {
        let answer = self.post_json("/batches/bulk", seeds).await?;
        let seeded: SeededBatches =
            serde_json::from_value(answer).map_err(|e| ControlError::Rejected {
                status: 200,
                body: format!("unexpected answer: {e}"),
            })?;
        Ok(seeded.ids)
    }

    /// Sets the injected faults (replacing any before).
    pub async fn set_faults(&self, spec: &FaultSpec) -> Result<(), ControlError> {
        self.post_json("/faults", spec).await.map(drop)
    }

    /// Removes every injected fault.
    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.send(self.http.delete(format!("{}/faults", self.base)))
            .await
            .map(drop)
    }

    /// Every AWS call received so far, in order.
    pub async fn calls(&self) -> Result<Vec<CallRecord>, ControlError> {
        Ok(self
            .send(self.http.get(format!("{}/calls", self.base)))
            .await?
            .json()
            .await?)
    }

    /// Empties the call log.
    pub async fn clear_calls(&self) -> Result<(), ControlError> {
        self.send(self.http.delete(format!("{}/calls", self.base)))
            .await
            .map(drop)
    }

    /// Moves the emulator's clock forward.
    pub async fn advance_clock(&self, seconds: u64) -> Result<(), ControlError> {
        self.post_json("/clock/advance", &json!({ "seconds": seconds }))
            .await
            .map(drop)
    }

    /// Sets (or with `None` removes) the URL events are POSTed to.
    pub async fn set_event_sink(&self, url: Option<&str>) -> Result<(), ControlError> {
        let body = Sink {
            url: url.map(str::to_owned),
        };
        self.send(
            self.http
                .put(format!("{}/event-sink", self.base))
                .json(&body),
        )
        .await
        .map(drop)
    }
}
