//! `autopilot builds get|retry`.

use std::collections::HashMap;

use autopilot::model::{Build, BuildId, BuildSummary};
use autopilot::ports::{BATCH_GET_LIMIT, CodeBuild, RetryBuildRequest};
use serde_json::json;

use crate::args::{BuildsGetArgs, BuildsRetryArgs};
use crate::error::CliError;
use crate::views::build_table;
use crate::{connect, keys, output};

/// Parses a build id as given (`project:uuid` or ARN); a usage error names the bad one.
pub fn parse_build_id(given: &str) -> Result<BuildId, CliError> {
    BuildId::parse(given).map_err(|err| CliError::Usage(format!("build id {given:?}: {err}")))
}

/// `builds get`: every build found in request order, and the ids not found; exit code 3 when
/// any is missing.
pub async fn get(args: &BuildsGetArgs) -> Result<(), CliError> {
    let ids = args
        .ids
        .iter()
        .map(|given| parse_build_id(given))
        .collect::<Result<Vec<_>, _>>()?;
    let (clients, _) = connect::clients(&args.aws).await?;
    let (builds, not_found) = fetch(&clients.codebuild, &ids).await?;
    let summaries: Vec<BuildSummary> = builds.iter().map(BuildSummary::from).collect();
    let document = json!({ "builds": summaries, "notFound": not_found });
    output::print(args.aws.output, &document, || {
        let mut table = build_table(&summaries);
        if !not_found.is_empty() {
            table
                .footer
                .push(format!("not found: {}", not_found.join(", ")));
        }
        table
    })?;
    if not_found.is_empty() {
        Ok(())
    } else {
        Err(CliError::NotFound(format!(
            "builds {}",
            not_found.join(", ")
        )))
    }
}

/// The builds of `ids` in request order (duplicates once) and the ids CodeBuild does not know,
/// as given; at most [`BATCH_GET_LIMIT`] ids per call.
pub async fn fetch<C: CodeBuild>(
    codebuild: &C,
    ids: &[BuildId],
) -> Result<(Vec<Build>, Vec<String>), CliError> {
    let mut found: HashMap<String, Build> = HashMap::new();
    for chunk in ids.chunks(BATCH_GET_LIMIT) {
        let lookup = codebuild.batch_get_builds(chunk).await?;
        found.extend(lookup.builds.into_iter().map(|b| (b.id.id(), b)));
    }
    let mut builds = Vec::new();
    let mut not_found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id.id()) {
            continue;
        }
        match found.remove(&id.id()) {
            Some(build) => builds.push(build),
            None => not_found.push(id.as_given()),
        }
    }
    Ok((builds, not_found))
}

/// `builds retry`: `RetryBuild` with the token of the retry's key; prints the new build.
pub async fn retry(args: &BuildsRetryArgs) -> Result<(), CliError> {
    let build = parse_build_id(&args.id)?;
    let key = keys::for_retry(&build, args.idempotency_key.as_deref())?;
    let (clients, _) = connect::clients(&args.aws).await?;
    let new = clients
        .codebuild
        .retry_build(&RetryBuildRequest {
            build: build.clone(),
            token: key.token(),
        })
        .await?;
    let summary = BuildSummary::from(&new);
    let document = json!({ "build": summary, "retriedFrom": build.id() });
    output::print(args.aws.output, &document, || {
        let mut table = build_table(std::slice::from_ref(&summary));
        table.footer.push(format!("retry of {}", build.id()));
        table
    })
}
