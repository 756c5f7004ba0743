//! Batch reaper (an EventBridge schedule; any input): sweeps every configured project's
//! in-progress batches and stops the stale and superseded ones. Wiring only; the decisions and
//! the sweep live in `autopilot::reaper`.

use autopilot::aws::Clients;
use autopilot::reaper::sweep::invoke;
use autopilot::reaper::{ReapSummary, ReaperSettings};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::time::Duration;

/// Attempts per CodeBuild call: at 50% throttling, 1 in 256 calls still fails after eight
/// (three attempts: 1 in 8).
const CODEBUILD_MAX_ATTEMPTS: u32 = 8;
/// The first retry's backoff, doubled (jittered) per attempt up to [`CODEBUILD_MAX_BACKOFF`].
/// Shorter than the SDK's 1 s: CodeBuild's API rate limits refill within a second, and a sweep
/// that waits seconds per throttled call at its bounded concurrency runs into its deadline with
/// stops left undone (measured in bench/RESULTS.md). Eight attempts wait at most about 16 s.
const CODEBUILD_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// The longest single wait between two attempts (the SDK's default is 20 s).
const CODEBUILD_MAX_BACKOFF: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation.
    let settings = ReaperSettings::from_env()?;
    let clients = Clients::from_env().await;
    let cache = clients.config_cache(
        &settings.config_uri,
        &settings.project_patterns,
        settings.config_ttl,
    )?;
    // More attempts than the SDK's default three, on a retry quota of its own: a sweep makes
    // thousands of calls, and under sustained throttling the default quota runs dry (see
    // `Clients::codebuild_with_retries`).
    let codebuild = clients.codebuild_with_retries(
        CODEBUILD_MAX_ATTEMPTS,
        CODEBUILD_INITIAL_BACKOFF,
        CODEBUILD_MAX_BACKOFF,
    );
    let (codebuild, cache, settings) = (&codebuild, &cache, &settings);
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
