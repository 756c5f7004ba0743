//! Ops HTTP API (API Gateway HTTP API v2): read-only views of CodeBuild builds.
//! Wiring only; the routes and their rules live in `autopilot::ops`.

use autopilot::aws::Clients;
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    autopilot::telemetry::init();
    // Built once per cold start and shared by every invocation of this sandbox.
    let clients = Clients::from_env().await;
    let codebuild = &clients.codebuild;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(autopilot::ops::handle(codebuild, &request).await)
    }))
    .await
}
