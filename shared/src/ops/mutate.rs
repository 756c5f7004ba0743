//! The mutating routes: `POST /builds/{id}/retry`, `POST /batches/{id}/retry`,
//! `POST /batches/{id}/stop` and `POST /projects/{name}/batches`.
//!
//! Each request is checked in full before anything is claimed or called: the IAM caller (401),
//! the `Idempotency-Key` (400), the body's size (413) and schema (400), the project (allowed by
//! the deployment and configured, else 404), and for a start the overrides (422 when the
//! configuration does not allow one). Only then is the outer record claimed (see
//! [`super::idempotent`]) and CodeBuild called, with a token from `IdempotencyKey::for_ops`.
//!
//! The project's `dry_run` does not apply here: it keeps the autopilot's own automatic actions
//! in report-only mode, while these are an operator's explicit requests.

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::batches::BatchSummary;
use super::caller::Caller;
use super::idempotent::{self, Acted, IdempotencyHeader, Lease, OpsRequest, fingerprint};
use super::routes::{RequestedBatchId, RequestedId, Route};
use super::{OpsPorts, config_unavailable};
use crate::config::{AllowedProjects, Config, ProjectEntry};
use crate::http::ApiError;
use crate::idempotency::{IdempotencyKey, Operation};
use crate::ledger::Ledger;
use crate::model::BuildSummary;
use crate::ports::{
    BatchRetryType, CodeBuild, ConfigSource, RetryBook, RetryBuildBatchRequest, RetryBuildRequest,
};
use crate::start::StartIdentity;
use crate::start::mechanism::{StartError, StartOutcome, StartRun, start_batch};
use crate::start::overrides::{OverrideError, OverrideVariable, StartOverrides};

/// Largest request body of a mutating route (64 KiB): a buildspec override fits, with room.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `reason` of a start.
pub const MAX_REASON_CHARS: usize = 512;

/// The body of the routes that take none: nothing, or `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// `POST /batches/{id}/retry`: `{"retryType": "RETRY_FAILED_BUILDS" | "RETRY_ALL_BUILDS"}`,
/// optional (default `RETRY_FAILED_BUILDS`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBatchBody {
    /// Which builds run again.
    #[serde(default)]
    pub retry_type: RetryType,
}

/// Which builds of a batch `RetryBuildBatch` reruns, as the API spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryType {
    /// Only the builds that failed (the default).
    #[default]
    RetryFailedBuilds,
    /// Every build.
    RetryAllBuilds,
}

impl From<RetryType> for BatchRetryType {
    fn from(kind: RetryType) -> Self {
        match kind {
            RetryType::RetryFailedBuilds => Self::FailedBuilds,
            RetryType::RetryAllBuilds => Self::AllBuilds,
        }
    }
}

/// `POST /projects/{name}/batches`: the start overrides plus an optional reason. JSON:
/// `{"sourceVersion": "refs/heads/main", "environmentVariables": [{"name": "DEPLOY_ENV",
/// "value": "staging"}], "buildspecOverride": null, "timeoutInMinutes": 60, "reason": "release
/// train"}` (every field optional; `{}` or no body starts the project as configured).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBatchBody {
    /// `sourceVersion`.
    #[serde(default)]
    pub source_version: Option<String>,
    /// Plaintext environment variables.
    #[serde(default)]
    pub environment_variables: Vec<OverrideVariable>,
    /// `buildspecOverride`.
    #[serde(default)]
    pub buildspec_override: Option<String>,
    /// `buildTimeoutInMinutesOverride`.
    #[serde(default)]
    pub timeout_in_minutes: Option<u32>,
    /// Why (logs and the ledger only; not sent to CodeBuild).
    #[serde(default)]
    pub reason: Option<String>,
}

impl StartBatchBody {
    fn overrides(&self) -> StartOverrides {
        StartOverrides {
            source_version: self.source_version.clone(),
            environment_variables: self.environment_variables.clone(),
            buildspec_override: self.buildspec_override.clone(),
            timeout_in_minutes: self.timeout_in_minutes,
        }
    }
}

/// One mutation, fully parsed.
#[derive(Debug, Clone, PartialEq)]
enum Mutation {
    RetryBuild(RequestedId),
    RetryBatch(RequestedBatchId, RetryType),
    StopBatch(RequestedBatchId),
    StartBatch(String, StartBatchBody),
}

impl Mutation {
    fn project(&self) -> &str {
        match self {
            Self::RetryBuild(id) => id.id.project(),
            Self::RetryBatch(id, _) | Self::StopBatch(id) => id.id.project(),
            Self::StartBatch(project, _) => project,
        }
    }

    /// Path ids and the canonical body: what the outer record's payload hash covers (ids in
    /// the `project:uuid` form, so an ARN and an id name the same request).
    fn fingerprint(&self, template: &str) -> Value {
        let (path, body) = match self {
            Self::RetryBuild(id) => (json!({"id": id.id.id()}), json!({})),
            Self::RetryBatch(id, kind) => (json!({"id": id.id.id()}), json!({"retryType": kind})),
            Self::StopBatch(id) => (json!({"id": id.id.id()}), json!({})),
            Self::StartBatch(project, body) => (json!({"name": project}), json!(body)),
        };
        fingerprint("POST", template, path, body)
    }
}

/// When a mutation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestClock {
    /// The current time.
    pub now: DateTime<Utc>,
    /// When the invocation ends: claims hold until shortly before.
    pub deadline: DateTime<Utc>,
}

impl RequestClock {
    /// The clock of an invocation that ends at `deadline` (the Lambda context's), read now.
    /// Without one (a request not from the runtime), claims get a short lease.
    pub fn until(deadline: Option<std::time::SystemTime>) -> Self {
        let now = Utc::now();
        let deadline = deadline.map_or(now + NO_DEADLINE_LEASE, DateTime::<Utc>::from);
        Self { now, deadline }
    }
}

/// How long a request with no known deadline may hold its claim.
const NO_DEADLINE_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Answers a mutating route.
pub(crate) async fn mutate<C, L, R, S>(
    ports: &OpsPorts<C, L, R, S>,
    request: &Request,
    route: &Route,
    clock: RequestClock,
) -> Result<(StatusCode, Value), ApiError>
where
    C: CodeBuild,
    L: Ledger,
    R: RetryBook,
    S: ConfigSource,
{
    let caller = Caller::of(request)?;
    let header = IdempotencyHeader::from_headers(request.headers())?;
    let body = body_bytes(request)?;
    let mutation = match route {
        Route::RetryBuild(id) => {
            parse_body::<EmptyBody>(body)?;
            Mutation::RetryBuild(id.clone())
        }
        Route::RetryBatch(id) => {
            let parsed = parse_body::<RetryBatchBody>(body)?;
            Mutation::RetryBatch(id.clone(), parsed.retry_type)
        }
        Route::StopBatch(id) => {
            parse_body::<EmptyBody>(body)?;
            Mutation::StopBatch(id.clone())
        }
        Route::StartBatch { project } => {
            let parsed = parse_body::<StartBatchBody>(body)?;
            check_reason(parsed.reason.as_deref())?;
            Mutation::StartBatch(project.clone(), parsed)
        }
        _ => {
            return Err(ApiError::Internal(format!(
                "{} is not a mutating route",
                route.template()
            )));
        }
    };
    let config = ports.config.current().await.map_err(config_unavailable)?;
    let entry = admit(&ports.allowed, &config, mutation.project())?;
    if let Mutation::StartBatch(project, body) = &mutation {
        body.overrides()
            .check(project, &entry.start)
            .map_err(override_error)?;
    }
    let template = route.template();
    let record = OpsRequest::new(&caller, &header, &mutation.fingerprint(template))?;
    let run = StartRun::until(clock.now, clock.deadline, false);
    let lease = Lease {
        now: clock.now,
        lease: run.lease,
    };
    let route_key = format!("POST {template}");
    let acting = Acting {
        ports,
        caller: &caller,
        header: &header,
        route_key: &route_key,
        run,
    };
    let answer = idempotent::once(&ports.ledger, &record, lease, || acting.act(&mutation)).await;
    let (action, status) = match &answer {
        Ok((status, _)) => ("answered", status.as_u16()),
        Err(err) => ("refused", err.status().as_u16()),
    };
    tracing::info!(
        action,
        reason = template,
        project = mutation.project(),
        caller = caller.as_str(),
        status,
        "ops mutation"
    );
    answer
}

/// What one mutation needs while it acts.
struct Acting<'a, C, L, R, S> {
    ports: &'a OpsPorts<C, L, R, S>,
    caller: &'a Caller,
    header: &'a IdempotencyHeader,
    /// `POST /builds/{id}/retry`: the route part of the CodeBuild token.
    route_key: &'a str,
    run: StartRun,
}

impl<C: CodeBuild, L: Ledger, R, S> Acting<'_, C, L, R, S> {
    fn token(&self, operation: Operation, project: &str) -> crate::idempotency::IdempotencyToken {
        IdempotencyKey::for_ops(
            operation,
            project,
            self.header.as_str(),
            self.route_key,
            self.caller.as_str(),
        )
        .token()
    }

    async fn act(&self, mutation: &Mutation) -> Acted {
        let codebuild = &self.ports.codebuild;
        match mutation {
            Mutation::RetryBuild(id) => {
                let request = RetryBuildRequest {
                    build: id.id.clone(),
                    token: self.token(Operation::RetryBuild, id.id.project()),
                };
                match codebuild.retry_build(&request).await {
                    Ok(build) => Acted::Answer(
                        StatusCode::CREATED,
                        json!({ "build": BuildSummary::from(&build) }),
                    ),
                    Err(err) => Acted::from_error(super::upstream(err)),
                }
            }
            Mutation::RetryBatch(id, kind) => {
                let request = RetryBuildBatchRequest {
                    batch: id.id.clone(),
                    retry_type: (*kind).into(),
                    token: self.token(Operation::RetryBuildBatch, id.id.project()),
                };
                match codebuild.retry_build_batch(&request).await {
                    Ok(batch) => Acted::Answer(
                        StatusCode::CREATED,
                        json!({ "batch": BatchSummary::from(&batch) }),
                    ),
                    Err(err) => Acted::from_error(super::upstream(err)),
                }
            }
            Mutation::StopBatch(id) => match codebuild.stop_build_batch(&id.id).await {
                Ok(batch) => Acted::Answer(
                    StatusCode::OK,
                    json!({ "batch": BatchSummary::from(&batch) }),
                ),
                Err(err) => Acted::from_error(super::upstream(err)),
            },
            Mutation::StartBatch(project, body) => {
                let identity = StartIdentity::Ops {
                    header_key: self.header.as_str().to_owned(),
                    route: self.route_key.to_owned(),
                    caller: self.caller.as_str().to_owned(),
                };
                let start =
                    body.overrides()
                        .into_batch_start(project, identity, body.reason.clone());
                let started = start_batch(codebuild, &self.ports.ledger, &start, self.run).await;
                started_answer(started)
            }
        }
    }
}

/// The answer to a start through the one mechanism.
fn started_answer(started: Result<StartOutcome, StartError>) -> Acted {
    match started {
        Ok(
            StartOutcome::Started { batch, number }
            | StartOutcome::AlreadyStarted { batch, number },
        ) => Acted::Answer(
            StatusCode::CREATED,
            json!({"batch": {"id": batch.id(), "buildBatchNumber": number}}),
        ),
        Ok(StartOutcome::DryRun) => Acted::Retryable(ApiError::Internal(
            "the start ran as a dry run; nothing was started".into(),
        )),
        Err(err @ (StartError::Conflict { .. } | StartError::FailedBefore { .. })) => {
            Acted::error(ApiError::Unprocessable(err.to_string()))
        }
        Err(err @ StartError::InFlight { .. }) => {
            Acted::Retryable(ApiError::Conflict(err.to_string()))
        }
        Err(StartError::CodeBuild(err)) => Acted::from_error(super::upstream(err)),
        Err(StartError::Ledger(err)) => Acted::Retryable(super::ledger_unavailable(err)),
        Err(err @ StartError::NotRecorded { .. }) => {
            Acted::Retryable(ApiError::UpstreamUnavailable(err.to_string()))
        }
    }
}

/// The project a mutation acts on must be inside the deployment's bound and configured.
fn admit<'c>(
    allowed: &AllowedProjects,
    config: &'c Config,
    project: &str,
) -> Result<&'c ProjectEntry, ApiError> {
    match config.entry_for(project) {
        Some(entry) if allowed.allows(project) => Ok(entry),
        _ => Err(ApiError::NotFound(format!(
            "project_not_configured: project {project} is not one the autopilot may act on \
             (not in the deployment's project patterns or the configuration)"
        ))),
    }
}

fn override_error(err: OverrideError) -> ApiError {
    match err {
        OverrideError::NotAllowed { .. } => {
            ApiError::Unprocessable(format!("{}: {err}", err.reason()))
        }
        OverrideError::Invalid { .. } => ApiError::BadRequest(format!("{}: {err}", err.reason())),
    }
}

fn check_reason(reason: Option<&str>) -> Result<(), ApiError> {
    match reason {
        Some(text) if text.chars().count() > MAX_REASON_CHARS => Err(ApiError::BadRequest(
            format!("reason: at most {MAX_REASON_CHARS} characters"),
        )),
        Some(text) if text.chars().any(char::is_control) => {
            Err(ApiError::BadRequest("reason: no control characters".into()))
        }
        _ => Ok(()),
    }
}

/// The body's bytes (API Gateway's base64 already decoded); 413 over [`MAX_BODY_BYTES`].
fn body_bytes(request: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes; at most {MAX_BODY_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A JSON object body of type `T`; no body (or only whitespace) is `T::default()`.
fn parse_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let malformed = |e: serde_json::Error| {
        ApiError::BadRequest(format!("the body is not what this route takes: {e}"))
    };
    // An object only: serde would also read a struct from an array of its fields.
    match serde_json::from_slice::<Value>(bytes).map_err(malformed)? {
        object @ Value::Object(_) => serde_json::from_value(object).map_err(malformed),
        _ => Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bodies_deny_unknown_fields_and_default_when_absent() {
        assert_eq!(parse_body::<EmptyBody>(b"").unwrap(), EmptyBody {});
        assert_eq!(parse_body::<EmptyBody>(b" {} ").unwrap(), EmptyBody {});
        assert!(parse_body::<EmptyBody>(b"{\"x\":1}").is_err());
        assert!(parse_body::<EmptyBody>(b"null").is_err());
        assert!(parse_body::<EmptyBody>(b"{").is_err());

        assert_eq!(
            parse_body::<RetryBatchBody>(b"").unwrap().retry_type,
            RetryType::RetryFailedBuilds
        );
        assert_eq!(
            parse_body::<RetryBatchBody>(br#"{"retryType":"RETRY_ALL_BUILDS"}"#)
                .unwrap()
                .retry_type,
            RetryType::RetryAllBuilds
        );
        assert!(parse_body::<RetryBatchBody>(br#"{"retryType":"ALL"}"#).is_err());
        assert!(parse_body::<RetryBatchBody>(br#"{"retry_type":"RETRY_ALL_BUILDS"}"#).is_err());

        let start: StartBatchBody = parse_body(
            br#"{"sourceVersion":"main","environmentVariables":[{"name":"A","value":"b"}],
                "buildspecOverride":null,"timeoutInMinutes":60,"reason":"release"}"#,
        )
        .unwrap();
        assert_eq!(start.source_version.as_deref(), Some("main"));
        assert_eq!(start.environment_variables.len(), 1);
        assert_eq!(start.timeout_in_minutes, Some(60));
        for bad in [
            r#"{"project":"web"}"#,
            r#"{"environmentVariables":[{"name":"A","value":"b","type":"SECRETS_MANAGER"}]}"#,
            r#"{"timeoutInMinutes":-1}"#,
            r#"{"timeoutInMinutes":"60"}"#,
            r#"[]"#,
        ] {
            assert!(
                parse_body::<StartBatchBody>(bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_fingerprint_names_the_request_not_its_spelling() {
        let uuid = "8745a7a9-c340-456a-9166-edf953571bEX";
        let by_id = RequestedBatchId {
            given: format!("web:{uuid}"),
            id: crate::model::BatchId::parse(&format!("web:{uuid}")).unwrap(),
        };
        let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build-batch/web:{uuid}");
        let by_arn = RequestedBatchId {
            given: arn.clone(),
            id: crate::model::BatchId::parse(&arn).unwrap(),
        };
        let t = "/batches/{id}/retry";
        let failed = RetryType::RetryFailedBuilds;
        assert_eq!(
            Mutation::RetryBatch(by_id.clone(), failed).fingerprint(t),
            Mutation::RetryBatch(by_arn, failed).fingerprint(t)
        );
        assert_ne!(
            Mutation::RetryBatch(by_id.clone(), failed).fingerprint(t),
            Mutation::RetryBatch(by_id.clone(), RetryType::RetryAllBuilds).fingerprint(t)
        );
        assert_ne!(
            Mutation::StopBatch(by_id.clone()).fingerprint("/batches/{id}/stop"),
            Mutation::RetryBatch(by_id, failed).fingerprint(t)
        );
    }
}
