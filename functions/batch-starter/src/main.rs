//! Batch starter (SQS: the start queue the webhook function fills, partial batch responses):
//! starts each batch once and supersedes the older ones of its branch, or stops a closed pull
//! request's batches. Wiring only; the decisions and the flow live in `autopilot::start`.

use std::time::Duration;

use autopilot::aws::Clients;
use autopilot::config::AllowedProjects;
use autopilot::start::settings::StarterSettings;
use autopilot::start::starter::{self, StarterPorts};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

/// Attempts per CodeBuild call. A throttled start handed back to SQS waits a whole visibility
/// timeout, so a short throttle is better absorbed here; four attempts do that, and stay well
/// inside the time a message is given (`starter::RECORD_MARGIN`). SQS redelivery stays the
/// outer retry, and the idempotency token makes every repeat of `StartBuildBatch` safe.
const CODEBUILD_MAX_ATTEMPTS: u32 = 4;
/// The first retry's backoff, doubled (jittered) per attempt: CodeBuild's rate limits refill
/// within a second (as for the reaper), so three retries wait about 1.4 s at most.
const CODEBUILD_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// The longest single wait between two attempts.
const CODEBUILD_MAX_BACKOFF: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation.
    let settings = StarterSettings::from_env()?;
    let clients = Clients::from_env().await;
    let cache = clients.config_cache(
        &settings.config_uri,
        &settings.project_patterns,
        settings.config_ttl,
    )?;
    // The starter checks each start against the IAM bound as well as the configuration does.
    let allowed = AllowedProjects::parse(&settings.project_patterns)?;
    // A retry quota of its own as well: the default one drains under sustained throttling and
    // then fails calls at once (see `Clients::codebuild_with_retries`).
    let ports = StarterPorts {
        codebuild: clients.codebuild_with_retries(
            CODEBUILD_MAX_ATTEMPTS,
            CODEBUILD_INITIAL_BACKOFF,
            CODEBUILD_MAX_BACKOFF,
        ),
        ledger: clients.ledger(&settings.ledger_table),
    };
    let (ports, cache, allowed, settings) = (&ports, &cache, &allowed, &settings);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = event.context.deadline();
        // Boxed: the start and supersede futures are deep enough that laying them out inline in
        // this `async main` overflows the compiler's query depth limit (as for auto-retry).
        Box::pin(starter::invoke(
            ports,
            cache,
            allowed,
            settings,
            deadline,
            event.payload,
        ))
        .await
        .map_err(Error::from)
    }))
    .await
}
