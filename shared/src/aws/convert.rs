//! SDK shapes → domain types.

use aws_sdk_codebuild::types as sdk;
use chrono::{DateTime, Utc};

use crate::model::ids::{ResourceId, ResourceKind};
use crate::model::{
    BatchGroup, Build, BuildBatch, BuildPhase, BuildStatus, EnvironmentVariable,
    EnvironmentVariableType, LogLocation, NativeAutoRetry, PhaseContext, PhaseType,
};
use crate::ports::CodeBuildError;

pub(crate) fn time(value: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    value.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn status(value: Option<&sdk::StatusType>) -> BuildStatus {
    value.map_or_else(
        || BuildStatus::Unknown(String::new()),
        |s| BuildStatus::from(s.as_str()),
    )
}

pub(crate) fn env_var_from_sdk(var: &sdk::EnvironmentVariable) -> EnvironmentVariable {
    EnvironmentVariable {
        name: var.name().to_owned(),
        value: var.value().to_owned(),
        variable_type: match var.r#type() {
            Some(sdk::EnvironmentVariableType::ParameterStore) => {
                EnvironmentVariableType::ParameterStore
            }
            Some(sdk::EnvironmentVariableType::SecretsManager) => {
                EnvironmentVariableType::SecretsManager
            }
            _ => EnvironmentVariableType::Plaintext,
        },
    }
}

pub(crate) fn env_var_to_sdk(
    operation: &'static str,
    var: &EnvironmentVariable,
) -> Result<sdk::EnvironmentVariable, CodeBuildError> {
    sdk::EnvironmentVariable::builder()
        .name(&var.name)
        .value(&var.value)
        .r#type(match var.variable_type {
            EnvironmentVariableType::Plaintext => sdk::EnvironmentVariableType::Plaintext,
            EnvironmentVariableType::ParameterStore => sdk::EnvironmentVariableType::ParameterStore,
            EnvironmentVariableType::SecretsManager => sdk::EnvironmentVariableType::SecretsManager,
        })
        .build()
        .map_err(|e| CodeBuildError::Unexpected {
            operation,
            code: None,
            message: e.to_string(),
        })
}

fn env_vars(environment: Option<&sdk::ProjectEnvironment>) -> Vec<EnvironmentVariable> {
    environment
        .map(|e| {
            e.environment_variables()
                .iter()
                .map(env_var_from_sdk)
                .collect()
        })
        .unwrap_or_default()
}

/// The id of a build or batch, preferring the ARN: it also says where the resource lives.
fn resource_id<K: ResourceKind>(
    operation: &'static str,
    arn: Option<&str>,
    id: Option<&str>,
) -> Result<ResourceId<K>, CodeBuildError> {
    arn.or(id)
        .and_then(|raw| ResourceId::parse(raw).ok())
        .ok_or_else(|| malformed(operation, &format!("an invalid {} id", K::ARN_RESOURCE)))
}

pub(crate) fn malformed(operation: &'static str, what: &str) -> CodeBuildError {
    CodeBuildError::Unexpected {
        operation,
        code: None,
        message: format!("CodeBuild returned {what}"),
    }
}

pub(crate) fn build(operation: &'static str, b: &sdk::Build) -> Result<Build, CodeBuildError> {
    Ok(Build {
        id: resource_id(operation, b.arn(), b.id())?,
        arn: b.arn().map(str::to_owned),
        build_number: b.build_number(),
        status: status(b.build_status()),
        current_phase: b.current_phase().map(PhaseType::from),
        build_complete: b.build_complete(),
        source_version: b.source_version().map(str::to_owned),
        resolved_source_version: b.resolved_source_version().map(str::to_owned),
        initiator: b.initiator().map(str::to_owned),
        batch_arn: b.build_batch_arn().map(str::to_owned),
        start_time: time(b.start_time()),
        end_time: time(b.end_time()),
        logs_link: b.logs().and_then(|l| l.deep_link()).map(str::to_owned),
        phases: b.phases().iter().map(phase).collect(),
        environment_variables: env_vars(b.environment()),
        native_auto_retry: b.auto_retry_config().map(|c| NativeAutoRetry {
            limit: c.auto_retry_limit().unwrap_or(0),
            number: c.auto_retry_number().unwrap_or(0),
            next: c.next_auto_retry().map(str::to_owned),
            previous: c.previous_auto_retry().map(str::to_owned),
        }),
        log_location: b.logs().and_then(|l| {
            Some(LogLocation {
                group: l.group_name()?.to_owned(),
                stream: l.stream_name()?.to_owned(),
            })
        }),
    })
}

fn phase(p: &sdk::BuildPhase) -> BuildPhase {
    BuildPhase {
        phase_type: p.phase_type().map_or_else(
            || PhaseType::Unknown(String::new()),
            |t| PhaseType::from(t.as_str()),
        ),
        phase_status: p.phase_status().map(|s| BuildStatus::from(s.as_str())),
        start_time: time(p.start_time()),
        end_time: time(p.end_time()),
        duration_seconds: p.duration_in_seconds(),
        contexts: p
            .contexts()
            .iter()
            .map(|c| PhaseContext {
                status_code: c.status_code().map(str::to_owned),
                message: c.message().unwrap_or_default().to_owned(),
            })
            .collect(),
    }
}

pub(crate) fn batch(
    operation: &'static str,
    b: &sdk::BuildBatch,
) -> Result<BuildBatch, CodeBuildError> {
    Ok(BuildBatch {
        id: resource_id(operation, b.arn(), b.id())?,
        arn: b.arn().map(str::to_owned),
        status: status(b.build_batch_status()),
        complete: b.complete(),
        source_version: b.source_version().map(str::to_owned),
        resolved_source_version: b.resolved_source_version().map(str::to_owned),
        initiator: b.initiator().map(str::to_owned),
        start_time: time(b.start_time()),
        end_time: time(b.end_time()),
        environment_variables: env_vars(b.environment()),
        build_ids: b
            .build_groups()
            .iter()
            .filter_map(|g| g.current_build_summary())
            .filter_map(|s| s.arn())
            .filter_map(|arn| ResourceId::parse(arn).ok())
            .collect(),
        batch_number: b.build_batch_number(),
        current_phase: b.current_phase().map(str::to_owned),
        groups: b
            .build_groups()
            .iter()
            .map(|g| {
                let summary = g.current_build_summary();
                BatchGroup {
                    identifier: g.identifier().map(str::to_owned),
                    build: summary
                        .and_then(|s| s.arn())
                        .and_then(|arn| ResourceId::parse(arn).ok()),
                    status: status(summary.and_then(|s| s.build_status())),
                }
            })
            .collect(),
    })
}

pub(crate) fn required_batch(
    operation: &'static str,
    b: Option<&sdk::BuildBatch>,
) -> Result<BuildBatch, CodeBuildError> {
    batch(
        operation,
        b.ok_or_else(|| malformed(operation, "no buildBatch"))?,
    )
}
