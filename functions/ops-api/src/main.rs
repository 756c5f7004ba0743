//! Ops HTTP API (API Gateway HTTP API v2, IAM-signed requests): reads builds, batches and retry
//! lineage, and retries, stops and starts batches under an `Idempotency-Key`. Wiring only; the
//! routes and their rules live in `autopilot::ops`.

use autopilot::aws::Clients;
use autopilot::config::AllowedProjects;
use autopilot::ops::settings::OpsSettings;
use autopilot::ops::{OpsPorts, RequestClock};
use lambda_http::{Error, Request, RequestExt, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation of this sandbox. The
    // configuration is only read when a mutating route first needs it.
    let settings = OpsSettings::from_env()?;
    let clients = Clients::from_env().await;
    let ports = OpsPorts {
        codebuild: clients.codebuild.clone(),
        ledger: clients.ledger(&settings.ledger_table),
        retry_book: clients.retry_book(&settings.ledger_table),
        config: clients.config_cache(
            &settings.config_uri,
            &settings.project_patterns,
            settings.config_ttl,
        )?,
        allowed: AllowedProjects::parse(&settings.project_patterns)?,
    };
    let ports = &ports;
    run(service_fn(move |request: Request| async move {
        let deadline = request
            .lambda_context_ref()
            .map(|context| context.deadline());
        let clock = RequestClock::until(deadline);
        // Boxed: the start mechanism's future is deep enough to overflow the compiler's query
        // depth when laid out inline in `async main` (as for the batch starter).
        Ok::<_, Error>(Box::pin(autopilot::ops::handle(ports, &request, clock)).await)
    }))
    .await
}
