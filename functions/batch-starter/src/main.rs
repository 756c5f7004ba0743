//! Batch starter (SQS: the start queue the webhook function fills, partial batch responses):
//! starts each batch once and supersedes the older ones of its branch, or stops a closed pull
//! request's batches. Wiring only; the decisions and the flow live in `autopilot::start`.

use autopilot::aws::Clients;
use autopilot::config::AllowedProjects;
use autopilot::start::settings::StarterSettings;
use autopilot::start::starter;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

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
    let ports = clients.start_ports(&settings.ledger_table);
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
