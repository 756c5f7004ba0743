//! The store: every project, build, batch and idempotency token, behind one lock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::idempotency::Tokens;
use crate::model::{Build, BuildBatch, Project};

/// Everything the emulator knows. Operations run with the lock held and never await.
#[derive(Debug, Default)]
pub struct Store {
    /// Projects by name.
    pub projects: BTreeMap<String, Project>,
    /// Builds by id.
    pub builds: HashMap<String, Build>,
    /// Build ids in creation order.
    pub build_order: Vec<String>,
    /// Batches by id.
    pub batches: HashMap<String, BuildBatch>,
    /// Batch ids in creation order.
    pub batch_order: Vec<String>,
    /// Idempotency tokens.
    pub tokens: Tokens,
    /// Snapshots of builds whose state changed since the last drain (become events).
    pub changed: Vec<Build>,
}

/// Who calls, where, and when: what an operation needs besides the store.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The clock's time for this call.
    pub now: DateTime<Utc>,
    /// Region in ARNs.
    pub region: String,
    /// Account in ARNs.
    pub account: String,
    /// `initiator` of builds this call creates.
    pub initiator: String,
}

impl Ctx {
    /// `arn:aws:codebuild:REGION:ACCOUNT:build/ID`.
    pub fn build_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:build/{id}",
            self.region, self.account
        )
    }
    /// `arn:aws:codebuild:REGION:ACCOUNT:build-batch/ID`.
    pub fn batch_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:build-batch/{id}",
            self.region, self.account
        )
    }
    /// `arn:aws:codebuild:REGION:ACCOUNT:project/NAME`.
    pub fn project_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:project/{name}",
            self.region, self.account
        )
    }
    /// A new `project:uuid` id.
    pub fn new_id(project: &str) -> String {
        format!("{project}:{}", uuid::Uuid::new_v4())
    }
}

/// Accepts an id (`project:uuid`) or an ARN (`arn:...:build/project:uuid`) and returns the id.
pub fn id_from(id_or_arn: &str) -> &str {
    if id_or_arn.starts_with("arn:") {
        // The resource part follows the first '/', after `build/` or `build-batch/`.
        id_or_arn.split_once('/').map_or(id_or_arn, |(_, id)| id)
    } else {
        id_or_arn
    }
}

/// Accepts a project name or ARN and returns the name.
pub fn project_from(name_or_arn: &str) -> &str {
    if name_or_arn.starts_with("arn:") {
        name_or_arn
            .rsplit_once('/')
            .map_or(name_or_arn, |(_, name)| name)
    } else {
        name_or_arn
    }
}

/// Parses a request body into the operation's input.
pub fn parse<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_json::from_value(body.clone()).map_err(|e| ApiError::serialization(e.to_string()))
}

/// Serializes a resource; our own types always serialize.
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Store {
    /// The project `name`, or `ResourceNotFoundException`.
    pub fn project(&mut self, name: &str) -> Result<&mut Project, ApiError> {
        self.projects
            .get_mut(project_from(name))
            .ok_or_else(|| ApiError::not_found(format!("Project cannot be found: {name}")))
    }

    /// Creates a project with default settings if it does not exist (used by seeding).
    pub fn ensure_project(&mut self, ctx: &Ctx, name: &str) {
        if !self.projects.contains_key(name) {
            let project = default_project(ctx, name, json!({}));
            self.projects.insert(name.to_owned(), project);
        }
    }
}

/// A project from a `CreateProject` body; missing parts get CodeBuild's usual defaults.
pub fn default_project(ctx: &Ctx, name: &str, body: Value) -> Project {
    let field = |key: &str, default: Value| body.get(key).cloned().unwrap_or(default);
    Project {
        name: name.to_owned(),
        arn: ctx.project_arn(name),
        source: field(
            "source",
            json!({"type": "NO_SOURCE", "buildspec": "version: 0.2"}),
        ),
        artifacts: field("artifacts", json!({"type": "NO_ARTIFACTS"})),
        environment: field(
            "environment",
            json!({
                "type": "LINUX_CONTAINER",
                "image": "aws/codebuild/standard:7.0",
                "computeType": "BUILD_GENERAL1_SMALL",
                "environmentVariables": [],
                "privilegedMode": false,
                "imagePullCredentialsType": "CODEBUILD"
            }),
        ),
        service_role: body.get("serviceRole").and_then(Value::as_str).map_or_else(
            || format!("arn:aws:iam::{}:role/codebuild-local", ctx.account),
            str::to_owned,
        ),
        timeout_in_minutes: int_field(&body, "timeoutInMinutes").unwrap_or(60),
        queued_timeout_in_minutes: int_field(&body, "queuedTimeoutInMinutes").unwrap_or(480),
        encryption_key: format!("arn:aws:kms:{}:{}:alias/aws/s3", ctx.region, ctx.account),
        created: ctx.now,
        last_modified: ctx.now,
        auto_retry_limit: int_field(&body, "autoRetryLimit"),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        next_build_number: 1,
        next_batch_number: 1,
    }
}

fn int_field(body: &Value, key: &str) -> Option<i32> {
    body.get(key)
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
}
