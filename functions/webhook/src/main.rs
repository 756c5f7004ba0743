//! Webhook receiver (API Gateway HTTP API v2, `POST /webhooks/{provider}`): verifies a delivery,
//! routes it, claims and queues the batch starts, answers 202. Wiring only; the flow lives in
//! `autopilot::webhook::handler`.

use std::time::Duration;

use autopilot::aws::Clients;
use autopilot::webhook::handler::{self, WebhookPorts, WebhookRequest};
use autopilot::webhook::secret_cache::WebhookSecretCache;
use autopilot::webhook::settings::WebhookSettings;
use lambda_http::{Body, Error, Request, RequestExt, run, service_fn};

/// Left between a ledger claim's end and the invocation's, so a claim never outlives the
/// invocation that made it.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation.
    let settings = WebhookSettings::from_env()?;
    let clients = Clients::from_env().await;
    let cache = clients.config_cache(
        &settings.config_uri,
        &settings.project_patterns,
        settings.config_ttl,
    )?;
    let ports = WebhookPorts {
        secrets: WebhookSecretCache::new(clients.secrets(), settings.secret_ttl),
        ledger: clients.ledger(&settings.ledger_table),
        queue: clients.start_queue(&settings.start_queue_url),
    };
    let (ports, cache) = (&ports, &cache);
    run(service_fn(move |request: Request| async move {
        let now = chrono::Utc::now();
        let lease = request
            .lambda_context_ref()
            .map(|context| context.deadline())
            .and_then(|deadline| deadline.duration_since(std::time::SystemTime::now()).ok())
            .map_or(LEASE_MARGIN, |left| left.saturating_sub(LEASE_MARGIN));
        let config = cache.current().await;
        let provider = request
            .path_parameters_ref()
            .and_then(|params| params.first("provider"))
            .map(str::to_owned)
            .unwrap_or_else(|| provider_from_path(request.uri().path()));
        let body: &[u8] = match request.body() {
            Body::Empty => &[],
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            // lambda_http's Body is non-exhaustive in newer versions; nothing else arrives here.
            #[allow(unreachable_patterns)]
            _ => &[],
        };
        let webhook_request = WebhookRequest {
            method: request.method(),
            provider: &provider,
            headers: request.headers(),
            body,
        };
        let config = config.as_deref();
        Ok::<_, Error>(Box::pin(handler::handle(ports, config, webhook_request, now, lease)).await)
    }))
    .await
}

/// The provider segment of `/webhooks/<provider>` (or of a stage-prefixed path), when API
/// Gateway did not pass the path parameter.
fn provider_from_path(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}
