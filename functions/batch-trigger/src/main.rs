//! Batch trigger (EventBridge, asynchronous): each "Autopilot Start Batch" event, custom on the
//! trigger bus or from the example schedule, starts its batch once. Wiring only; the checks, the
//! start and what the invocation answers live in `autopilot::trigger`.

use std::time::Duration;

use autopilot::aws::Clients;
use autopilot::config::AllowedProjects;
use autopilot::trigger::{self, TriggerPorts, TriggerSettings};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

/// Attempts per CodeBuild call. A throttled start otherwise waits for Lambda's own retry (about
/// a minute), so a short throttle is better absorbed here; the idempotency token makes every
/// repeat of `StartBuildBatch` safe. Four attempts stay well inside the function's timeout.
const CODEBUILD_MAX_ATTEMPTS: u32 = 4;
/// The first retry's backoff, doubled (jittered) per attempt, as for the batch starter.
const CODEBUILD_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// The longest single wait between two attempts.
const CODEBUILD_MAX_BACKOFF: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation.
    let settings = TriggerSettings::from_env()?;
    let clients = Clients::from_env().await;
    let cache = clients.config_cache(
        &settings.config_uri,
        &settings.project_patterns,
        settings.config_ttl,
    )?;
    // Each start is checked against the IAM bound as well as the configuration.
    let allowed = AllowedProjects::parse(&settings.project_patterns)?;
    let ports = TriggerPorts {
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
        // Boxed: the start future is deep enough that laying it out inline in this `async
        // main` overflows the compiler's query depth limit (as for the batch starter).
        Box::pin(trigger::invoke(
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
