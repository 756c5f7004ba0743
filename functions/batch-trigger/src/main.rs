//! Batch trigger (EventBridge, asynchronous): each "Autopilot Start Batch" event, custom on the
//! trigger bus or from the example schedule, starts its batch once. Wiring only; the checks, the
//! start and what the invocation answers live in `autopilot::trigger`.

use autopilot::aws::Clients;
use autopilot::config::AllowedProjects;
use autopilot::trigger::{self, TriggerSettings};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

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
    let ports = clients.start_ports(&settings.ledger_table);
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
