//! `autopilot batches start|stop|list`.

use autopilot::model::ids::validate_project;
use autopilot::model::{
    BatchId, BuildBatch, BuildStatus, EnvironmentVariable, EnvironmentVariableType,
};
use autopilot::ports::{
    BATCH_GET_LIMIT, CodeBuild, ListBuildBatchesRequest, StartBuildBatchRequest,
};
use serde_json::{Value, json};

use crate::args::{BatchesListArgs, BatchesStartArgs, BatchesStopArgs};
use crate::error::CliError;
use crate::views::{batch as batch_view, batch_table};
use crate::{config_file, connect, keys, output};

/// The variable `--reason` is sent as.
pub const REASON_VARIABLE: &str = "AUTOPILOT_REASON";

/// Prefixes of variable names `--env` may not set: CodeBuild's own, and the autopilot's (which
/// it sets itself, e.g. [`REASON_VARIABLE`]).
const RESERVED_PREFIXES: &[&str] = &["CODEBUILD_", "AUTOPILOT_"];

/// Parses one `--env NAME=VALUE` (clap value parser: an error is a usage error, exit 2).
pub fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "variable name {name:?}: expected letters, digits and _, not starting with a digit"
        ));
    }
    if let Some(prefix) = RESERVED_PREFIXES
        .iter()
        .find(|prefix| name.to_ascii_uppercase().starts_with(*prefix))
    {
        return Err(format!(
            "variable name {name:?}: names starting with {prefix} are reserved"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses a batch id as given (`project:uuid` or ARN); a usage error names the bad one.
pub fn parse_batch_id(given: &str) -> Result<BatchId, CliError> {
    BatchId::parse(given).map_err(|err| CliError::Usage(format!("batch id {given:?}: {err}")))
}

fn check_project(project: &str) -> Result<(), CliError> {
    validate_project(project).map_err(|err| CliError::Usage(format!("project: {err}")))
}

/// The `StartBuildBatch` request of `args` (without its token) and its canonical parameters,
/// which derive the default idempotency key.
pub fn start_request(args: &BatchesStartArgs) -> Result<(StartBuildBatchRequest, Value), CliError> {
    check_project(&args.project)?;
    let buildspec = args
        .buildspec
        .as_deref()
        .map(config_file::read_text)
        .transpose()?;
    let mut environment: Vec<EnvironmentVariable> = args
        .env
        .iter()
        .map(|(name, value)| EnvironmentVariable {
            name: name.clone(),
            value: value.clone(),
            variable_type: EnvironmentVariableType::Plaintext,
        })
        .collect();
    if let Some(reason) = &args.reason {
        environment.push(EnvironmentVariable {
            name: REASON_VARIABLE.to_owned(),
            value: reason.clone(),
            variable_type: EnvironmentVariableType::Plaintext,
        });
    }
    let parameters = json!({
        "sourceVersion": args.source_version,
        "environmentVariables": environment,
        "buildspecOverride": buildspec,
        "timeoutInMinutes": args.timeout,
    });
    let key = keys::for_start(&args.project, &parameters, args.idempotency_key.as_deref())?;
    let request = StartBuildBatchRequest {
        project: args.project.clone(),
        source_version: args.source_version.clone(),
        environment_variables: environment,
        report_status: None,
        buildspec_override: buildspec,
        timeout_minutes: args.timeout,
        token: key.token(),
    };
    Ok((request, parameters))
}

/// `batches start`: one `StartBuildBatch` with the start's token; prints the batch.
pub async fn start(args: &BatchesStartArgs) -> Result<(), CliError> {
    let (request, _) = start_request(args)?;
    let (clients, _) = connect::clients(&args.aws).await?;
    let batch = clients.codebuild.start_build_batch(&request).await?;
    print_batch(args.aws.output, &batch)
}

/// `batches stop`: `StopBuildBatch`; prints the batch.
pub async fn stop(args: &BatchesStopArgs) -> Result<(), CliError> {
    let id = parse_batch_id(&args.id)?;
    let (clients, _) = connect::clients(&args.aws).await?;
    let batch = clients.codebuild.stop_build_batch(&id).await?;
    print_batch(args.aws.output, &batch)
}

fn print_batch(format: crate::args::OutputFormat, batch: &BuildBatch) -> Result<(), CliError> {
    let view = batch_view(batch);
    let document = json!({ "batch": view });
    output::print(format, &document, || {
        batch_table(std::slice::from_ref(&view))
    })
}

/// `batches list`: ids page by page (newest first) up to `--max`, then their details.
pub async fn list(args: &BatchesListArgs) -> Result<(), CliError> {
    check_project(&args.project)?;
    let (clients, _) = connect::clients(&args.aws).await?;
    let status = args.status.map(|s| BuildStatus::from(s.as_str()));
    let max = usize::try_from(args.max).unwrap_or(usize::MAX);
    let batches = list_batches(&clients.codebuild, &args.project, status, max).await?;
    let views: Vec<Value> = batches.iter().map(batch_view).collect();
    let document = json!({ "project": args.project, "batches": views });
    output::print(args.aws.output, &document, || {
        let mut table = batch_table(&views);
        table.footer.push(format!("{} batches", views.len()));
        table
    })
}

/// Up to `max` batches of `project` (in `status`, when given), newest first: every page of
/// `ListBuildBatchesForProject` until `max`, described by `BatchGetBuildBatches`. A batch
/// listed but gone by the time it is described is left out.
pub async fn list_batches<C: CodeBuild>(
    codebuild: &C,
    project: &str,
    status: Option<BuildStatus>,
    max: usize,
) -> Result<Vec<BuildBatch>, CliError> {
    let mut ids: Vec<BatchId> = Vec::new();
    let mut request = ListBuildBatchesRequest {
        project: project.to_owned(),
        status,
        next_token: None,
    };
    while ids.len() < max {
        let page = codebuild.list_build_batches_for_project(&request).await?;
        ids.extend(page.items);
        match page.next_token {
            Some(token) => request.next_token = Some(token),
            None => break,
        }
    }
    ids.truncate(max);
    let mut batches = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH_GET_LIMIT) {
        let mut found = codebuild.batch_get_build_batches(chunk).await?.batches;
        // In listing order, whatever order the description came back in.
        for id in chunk {
            if let Some(at) = found.iter().position(|b| b.id.id() == id.id()) {
                batches.push(found.swap_remove(at));
            }
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn env_pairs_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_env("DEPLOY_ENV=staging=blue"),
            Ok(("DEPLOY_ENV".into(), "staging=blue".into()))
        );
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_env("NOEQUALS").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_env("=x").unwrap_err().contains("variable name"));
        assert!(parse_env("1X=x").unwrap_err().contains("variable name"));
        assert!(parse_env("A-B=x").unwrap_err().contains("variable name"));
        assert!(parse_env("CODEBUILD_X=1").unwrap_err().contains("reserved"));
        assert!(
            parse_env("autopilot_reason=1")
                .unwrap_err()
                .contains("reserved")
        );
    }
}
