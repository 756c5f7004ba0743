//! Auto-retry (EventBridge `CodeBuild Build State Change` events and the delay queue's
//! messages). Wiring only; the decisions and the flow live in `autopilot::retry`.

use autopilot::aws::Clients;
use autopilot::retry::AutoRetrySettings;
use autopilot::retry::handler::{self, OptionalNotifier, Ports};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Everything below is built once per cold start and shared by every invocation.
    let settings = AutoRetrySettings::from_env()?;
    let clients = Clients::from_env().await;
    let cache = clients.config_cache(
        &settings.config_uri,
        &settings.project_patterns,
        settings.config_ttl,
    )?;
    let ports = Ports {
        codebuild: clients.codebuild.clone(),
        ledger: clients.ledger(&settings.ledger_table),
        book: clients.retry_book(&settings.ledger_table),
        queue: clients.delay_queue(&settings.delay_queue_url),
        notifier: OptionalNotifier(
            settings
                .gave_up_topic_arn
                .as_deref()
                .map(|t| clients.notifier(t)),
        ),
        logs: clients.build_logs(),
    };
    let (ports, cache, settings) = (&ports, &cache, &settings);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = event.context.deadline();
        // Boxed: the flow's nested futures are deep enough that laying them out inline in
        // this `async main` overflows the compiler's query depth limit.
        Box::pin(handler::invoke(
            ports,
            cache,
            settings,
            deadline,
            event.payload,
        ))
        .await
        .map_err(Error::from)
    }))
    .await
}
