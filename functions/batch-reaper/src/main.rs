//! Batch reaper (an EventBridge schedule; any input): sweeps every configured project's
//! in-progress batches and stops the stale and superseded ones. Wiring only; the decisions and
//! the sweep live in `autopilot::reaper`.

use autopilot::aws::{Clients, SdkConfigSource};
use autopilot::config::{AllowedProjects, ConfigCache, ConfigUri};
use autopilot::reaper::sweep::invoke;
use autopilot::reaper::{ReapSummary, ReaperSettings};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation.
    let settings = ReaperSettings::from_env()?;
    let allowed = AllowedProjects::parse(&settings.project_patterns)?;
    let uri = ConfigUri::parse(&settings.config_uri)?;
    let clients = Clients::from_env().await;
    let cache = ConfigCache::new(
        SdkConfigSource::from_clients(&clients),
        uri,
        allowed,
        settings.config_ttl,
    );
    let (codebuild, cache, settings) = (&clients.codebuild, &cache, &settings);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The schedule's event carries nothing the sweep needs; only the deadline matters.
        let deadline = event.context.deadline();
        // Boxed: the sweep's nested futures are deep enough that laying them out inline in this
        // `async main` overflows the compiler's query depth limit (as for auto-retry).
        let summary: ReapSummary = Box::pin(invoke(codebuild, cache, settings, deadline)).await?;
        Ok::<ReapSummary, Error>(summary)
    }))
    .await
}
