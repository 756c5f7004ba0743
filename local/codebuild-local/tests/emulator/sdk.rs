//! The real `aws-sdk-codebuild` against the in-process emulator (endpoint override only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::config::{Credentials, Region};
use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{
    ArtifactsType, BuildBatchFilter, ComputeType, EnvironmentType, EnvironmentVariable,
    ProjectArtifacts, ProjectEnvironment, ProjectSource, RetryBuildBatchType, SortOrderType,
    SourceType, StatusType,
};
use codebuild_local::control::{FinishBuild, SeedBatch, SeedBatchBuild, SeedBuild};
use codebuild_local::faults::FaultSpec;
use codebuild_local::model::{PhaseContext, Status};
use codebuild_local::{Config, Server, serve};
use serde_json::Value;

const ACCESS_KEY: &str = "AKIDCODEBUILDLOCAL";

async fn start() -> (Server, Client) {
    let server = serve(
        Config::default(),
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    )
    .await
    .unwrap();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, "secret", None, None, "test"))
        .endpoint_url(server.endpoint())
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    (server, Client::new(&config))
}

/// A valid `CreateProject` request for `name` (S3 source, no artifacts, a small Linux box).
fn project_request(
    client: &Client,
    name: &str,
) -> aws_sdk_codebuild::operation::create_project::builders::CreateProjectFluentBuilder {
    client
        .create_project()
        .name(name)
        .source(
            ProjectSource::builder()
                .r#type(SourceType::S3)
                .location("codebuild-123456789012-input-bucket/src.zip")
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::NoArtifacts)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::123456789012:role/cb")
}

async fn create_project(client: &Client, name: &str, auto_retry_limit: Option<i32>) {
    project_request(client, name)
        .set_auto_retry_limit(auto_retry_limit)
        .send()
        .await
        .unwrap();
}

async fn finish(server: &Server, id: &str, status: Status) -> Value {
    let contexts = vec![PhaseContext {
        status_code: "COMMAND_EXECUTION_ERROR".into(),
        message: "exit status 2".into(),
    }];
    server
        .control()
        .finish_build(
            id,
            &FinishBuild {
                build_status: status,
                phase_type: Some("BUILD".into()),
                contexts,
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn projects_builds_and_lists() {
    let (server, client) = start().await;
    create_project(&client, "app", None).await;
    let dup = project_request(&client, "app").send().await.unwrap_err();
    assert_eq!(dup.code(), Some("ResourceAlreadyExistsException"));

    let projects = client
        .batch_get_projects()
        .names("app")
        .names("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(projects.projects()[0].name(), Some("app"));
    assert_eq!(projects.projects_not_found(), ["nope"]);
    assert_eq!(
        client.list_projects().send().await.unwrap().projects(),
        ["app"]
    );

    let started = client
        .start_build()
        .project_name("app")
        .source_version("main")
        .environment_variables_override(
            EnvironmentVariable::builder()
                .name("K")
                .value("V")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let build = started.build_value().unwrap();
    let id = build.id().unwrap().to_owned();
    assert!(id.starts_with("app:"));
    assert_eq!(
        build.arn().unwrap(),
        format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}")
    );
    assert_eq!(build.build_number(), Some(1));
    assert_eq!(build.build_status(), Some(&StatusType::InProgress));
    assert_eq!(build.initiator(), Some(ACCESS_KEY));
    assert!(build.start_time().is_some());
    let vars = build.environment().unwrap().environment_variables();
    assert!(vars.iter().any(|v| v.name() == "K" && v.value() == "V"));

    let second = client
        .start_build()
        .project_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(second.build_value().unwrap().build_number(), Some(2));

    let stopped = client.stop_build().id(&id).send().await.unwrap();
    assert_eq!(
        stopped.build_value().unwrap().build_status(),
        Some(&StatusType::Stopped)
    );
    assert_eq!(
        stopped.build_value().unwrap().current_phase(),
        Some("COMPLETED")
    );
    assert!(stopped.build_value().unwrap().build_complete());

    let got = client
        .batch_get_builds()
        .ids(&id)
        .ids("app:missing")
        .send()
        .await
        .unwrap();
    assert_eq!(got.builds().len(), 1);
    assert_eq!(got.builds_not_found(), ["app:missing"]);

    let listed = client
        .list_builds_for_project()
        .project_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.ids().len(), 2);
    assert_eq!(listed.ids()[1], id, "DESCENDING by default: newest first");
    let asc = client
        .list_builds_for_project()
        .project_name("app")
        .sort_order(SortOrderType::Ascending)
        .send()
        .await
        .unwrap();
    assert_eq!(asc.ids()[0], id);
    server.shutdown().await;
}

#[tokio::test]
async fn not_found_and_limits() {
    let (server, client) = start().await;
    let err = client
        .start_build()
        .project_name("ghost")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = client
        .retry_build()
        .id("ghost:1234")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = client
        .list_builds_for_project()
        .project_name("ghost")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = client
        .stop_build_batch()
        .id("ghost:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    let ids: Vec<String> = (0..101).map(|i| format!("p:{i}")).collect();
    let err = client
        .batch_get_builds()
        .set_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    let err = client
        .batch_get_build_batches()
        .set_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    let ok = client
        .batch_get_builds()
        .set_ids(Some(ids[..100].to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.builds_not_found().len(), 100);
    server.shutdown().await;
}

#[tokio::test]
async fn pagination_walks_every_batch_once() {
    let (server, client) = start().await;
    let control = server.control();
    let mut seeded = Vec::new();
    for i in 0..7 {
        let status = if i % 2 == 0 {
            Status::Failed
        } else {
            Status::Succeeded
        };
        let batch = control
            .seed_batch(&SeedBatch {
                project_name: "pages".into(),
                build_batch_status: Some(status),
                ..SeedBatch::default()
            })
            .await
            .unwrap();
        seeded.push(batch["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_build_batches_for_project()
            .project_name("pages")
            .max_results(3)
            .sort_order(SortOrderType::Ascending)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.ids().len() <= 3);
        seen.extend(page.ids().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, seeded);
    let failed = client
        .list_build_batches()
        .filter(
            BuildBatchFilter::builder()
                .status(StatusType::Failed)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(failed.ids().len(), 4);
    let got = client
        .batch_get_build_batches()
        .ids(&seeded[0])
        .ids("pages:nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.build_batches()[0].build_batch_status(),
        Some(&StatusType::Failed)
    );
    assert_eq!(got.build_batch_numbers(), vec![Some(1)]);
    assert_eq!(got.build_batches_not_found(), ["pages:nope"]);
    server.shutdown().await;
}

trait BatchNumbers {
    fn build_batch_numbers(&self) -> Vec<Option<i64>>;
}
impl BatchNumbers
    for aws_sdk_codebuild::operation::batch_get_build_batches::BatchGetBuildBatchesOutput
{
    fn build_batch_numbers(&self) -> Vec<Option<i64>> {
        self.build_batches()
            .iter()
            .map(|b| b.build_batch_number())
            .collect()
    }
}

#[tokio::test]
async fn retry_build_is_idempotent_within_five_minutes() {
    let (server, client) = start().await;
    let control = server.control();
    let seeded = control
        .seed_build(&SeedBuild {
            project_name: "web".into(),
            build_status: Some(Status::Failed),
            source_version: Some("abc".into()),
            initiator: Some("someone".into()),
            ..SeedBuild::default()
        })
        .await
        .unwrap();
    let id = seeded["id"].as_str().unwrap();

    let first = client
        .retry_build()
        .id(id)
        .idempotency_token("tok-1")
        .send()
        .await
        .unwrap();
    let again = client
        .retry_build()
        .id(id)
        .idempotency_token("tok-1")
        .send()
        .await
        .unwrap();
    let new_id = first.build_value().unwrap().id().unwrap();
    assert_ne!(new_id, id, "a retry is a new build");
    assert_eq!(
        again.build_value().unwrap().id(),
        Some(new_id),
        "same token → same build"
    );
    assert_eq!(first.build_value().unwrap().build_number(), Some(2));
    assert_eq!(first.build_value().unwrap().source_version(), Some("abc"));
    let listed = client
        .list_builds_for_project()
        .project_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.ids().len(), 2, "one retry created, not two");

    // Another build under the same token: a parameter mismatch.
    let other = control
        .seed_build(&SeedBuild {
            project_name: "web".into(),
            build_status: Some(Status::Failed),
            ..SeedBuild::default()
        })
        .await
        .unwrap();
    let err = client
        .retry_build()
        .id(other["id"].as_str().unwrap())
        .idempotency_token("tok-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    let message = err.message().unwrap().to_lowercase();
    assert!(
        message.contains("idempotency token") && message.contains("mismatch"),
        "{message}"
    );

    // After the five-minute window the token is free again: a new build.
    server.clock().advance(Duration::from_secs(5 * 60));
    let later = client
        .retry_build()
        .id(id)
        .idempotency_token("tok-1")
        .send()
        .await
        .unwrap();
    assert_ne!(later.build_value().unwrap().id(), Some(new_id));

    let retries = control
        .calls()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.operation == "RetryBuild")
        .count();
    assert_eq!(retries, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn start_build_batch_token_and_retry_running_build() {
    let (server, client) = start().await;
    create_project(&client, "svc", None).await;
    let a = client
        .start_build_batch()
        .project_name("svc")
        .idempotency_token("t")
        .send()
        .await
        .unwrap();
    let b = client
        .start_build_batch()
        .project_name("svc")
        .idempotency_token("t")
        .send()
        .await
        .unwrap();
    assert_eq!(a.build_batch().unwrap().id(), b.build_batch().unwrap().id());
    let err = client
        .start_build_batch()
        .project_name("svc")
        .source_version("other")
        .idempotency_token("t")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));

    let running = client
        .start_build()
        .project_name("svc")
        .send()
        .await
        .unwrap();
    let err = client
        .retry_build()
        .id(running.build_value().unwrap().id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    server.shutdown().await;
}

#[tokio::test]
async fn start_build_batch_overrides_show_in_the_batch_and_its_builds() {
    let (server, client) = start().await;
    create_project(&client, "ovr", None).await;
    let started = client
        .start_build_batch()
        .project_name("ovr")
        .build_timeout_in_minutes_override(45)
        .buildspec_override("version: 0.2")
        .report_build_batch_status_override(true)
        .idempotency_token("o")
        .send()
        .await
        .unwrap();
    let batch = started.build_batch().unwrap();
    assert_eq!(batch.build_timeout_in_minutes(), Some(45));
    let source = batch.source().unwrap();
    assert_eq!(source.buildspec(), Some("version: 0.2"));
    assert_eq!(source.report_build_status(), Some(true));
    let build_id = batch.build_groups()[0]
        .current_build_summary()
        .unwrap()
        .arn()
        .unwrap();
    let builds = client
        .batch_get_builds()
        .ids(build_id)
        .send()
        .await
        .unwrap();
    assert_eq!(builds.builds()[0].timeout_in_minutes(), Some(45));

    // The same token with another override is another request.
    let err = client
        .start_build_batch()
        .project_name("ovr")
        .build_timeout_in_minutes_override(50)
        .buildspec_override("version: 0.2")
        .report_build_batch_status_override(true)
        .idempotency_token("o")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));

    // Without overrides the project's timeout holds; out of range is refused.
    let plain = client
        .start_build_batch()
        .project_name("ovr")
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.build_batch().unwrap().build_timeout_in_minutes(),
        Some(60)
    );
    let err = client
        .start_build_batch()
        .project_name("ovr")
        .build_timeout_in_minutes_override(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    server.shutdown().await;
}

#[tokio::test]
async fn throttling_reaches_the_sdk() {
    let (server, client) = start().await;
    create_project(&client, "thr", None).await;
    server
        .control()
        .set_faults(&FaultSpec {
            operations: Some(vec!["BatchGetBuilds".into()]),
            throttle_every: Some(2),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    client.batch_get_builds().ids("thr:1").send().await.unwrap();
    let err = client
        .batch_get_builds()
        .ids("thr:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    // Other operations are untouched.
    client.list_projects().send().await.unwrap();

    server
        .control()
        .set_faults(&FaultSpec {
            server_error_fraction: Some(1.0),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    let err = client.list_projects().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InternalServerError"));
    server.control().clear_faults().await.unwrap();
    client.list_projects().send().await.unwrap();
    let calls = server.control().calls().await.unwrap();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.fault.as_deref() == Some("ThrottlingException"))
            .count(),
        1
    );
    server.shutdown().await;
}

#[tokio::test]
async fn retry_build_batch_in_place() {
    let (server, client) = start().await;
    let batch = server
        .control()
        .seed_batch(&SeedBatch {
            project_name: "mono".into(),
            builds: Some(vec![
                SeedBatchBuild {
                    identifier: Some("ok".into()),
                    build_status: Some(Status::Succeeded),
                },
                SeedBatchBuild {
                    identifier: Some("bad".into()),
                    build_status: Some(Status::Failed),
                },
            ]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        batch["buildBatchStatus"], "FAILED",
        "derived from its builds"
    );
    let id = batch["id"].as_str().unwrap();

    let retried = client
        .retry_build_batch()
        .id(id)
        .retry_type(RetryBuildBatchType::RetryFailedBuilds)
        .idempotency_token("bt")
        .send()
        .await
        .unwrap();
    let retried = retried.build_batch().unwrap();
    assert_eq!(retried.id(), Some(id), "same batch, retried in place");
    assert_eq!(retried.build_batch_status(), Some(&StatusType::InProgress));
    assert_eq!(retried.build_batch_number(), Some(1));
    let groups = retried.build_groups();
    assert!(
        groups[0].prior_build_summary_list().is_empty(),
        "succeeded group not retried"
    );
    assert_eq!(groups[1].prior_build_summary_list().len(), 1);
    assert_eq!(
        groups[1].prior_build_summary_list()[0].build_status(),
        Some(&StatusType::Failed)
    );
    let new_build = groups[1]
        .current_build_summary()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();

    // A running batch cannot be retried.
    let err = client.retry_build_batch().id(id).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));

    // When the retried build succeeds, the batch succeeds.
    finish(&server, &new_build, Status::Succeeded).await;
    let got = client
        .batch_get_build_batches()
        .ids(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.build_batches()[0].build_batch_status(),
        Some(&StatusType::Succeeded)
    );

    // StopBuildBatch on a running batch stops its builds.
    let started = client
        .start_build_batch()
        .project_name("mono")
        .send()
        .await
        .unwrap();
    let stopped = client
        .stop_build_batch()
        .id(started.build_batch().unwrap().id().unwrap())
        .send()
        .await
        .unwrap();
    let stopped = stopped.build_batch().unwrap();
    assert_eq!(stopped.build_batch_status(), Some(&StatusType::Stopped));
    assert_eq!(stopped.build_batch_number(), Some(2));
    let build_arn = stopped.build_groups()[0]
        .current_build_summary()
        .unwrap()
        .arn()
        .unwrap();
    let build = client
        .batch_get_builds()
        .ids(build_arn.rsplit_once('/').unwrap().1)
        .send()
        .await
        .unwrap();
    assert_eq!(build.builds()[0].build_status(), Some(&StatusType::Stopped));
    assert_eq!(build.builds()[0].build_batch_arn(), stopped.arn());
    server.shutdown().await;
}

#[tokio::test]
async fn codebuild_auto_retries_failed_builds_up_to_the_limit() {
    let (server, client) = start().await;
    create_project(&client, "flaky", Some(2)).await;
    let first = client
        .start_build()
        .project_name("flaky")
        .send()
        .await
        .unwrap();
    let first = first.build_value().unwrap();
    let cfg = first.auto_retry_config().unwrap();
    assert_eq!(
        (cfg.auto_retry_limit(), cfg.auto_retry_number()),
        (Some(2), Some(0))
    );

    let mut current = first.id().unwrap().to_owned();
    for attempt in 1..=2 {
        finish(&server, &current, Status::Failed).await;
        let old = client
            .batch_get_builds()
            .ids(&current)
            .send()
            .await
            .unwrap();
        let next_arn = old.builds()[0]
            .auto_retry_config()
            .unwrap()
            .next_auto_retry()
            .unwrap()
            .to_owned();
        let next_id = next_arn.rsplit_once('/').unwrap().1.to_owned();
        let next = client
            .batch_get_builds()
            .ids(&next_id)
            .send()
            .await
            .unwrap();
        let next_cfg = next.builds()[0].auto_retry_config().unwrap();
        assert_eq!(next_cfg.auto_retry_number(), Some(attempt));
        assert_eq!(next_cfg.previous_auto_retry(), old.builds()[0].arn());
        current = next_id;
    }
    // The last retry fails too: the limit is reached, no further build.
    finish(&server, &current, Status::Failed).await;
    let last = client
        .batch_get_builds()
        .ids(&current)
        .send()
        .await
        .unwrap();
    assert_eq!(
        last.builds()[0]
            .auto_retry_config()
            .unwrap()
            .next_auto_retry(),
        None
    );
    assert_eq!(
        client
            .list_builds_for_project()
            .project_name("flaky")
            .send()
            .await
            .unwrap()
            .ids()
            .len(),
        3
    );
    server.shutdown().await;
}

#[tokio::test]
async fn state_changes_are_posted_to_the_event_sink() {
    use axum::{Json, Router, extract::State, routing::post};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let sink = Router::new()
        .route(
            "/",
            post(
                |State(tx): State<tokio::sync::mpsc::UnboundedSender<Value>>,
                 Json(v): Json<Value>| async move {
                    let _ = tx.send(v);
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/", listener.local_addr().unwrap());
    let sink_task = tokio::spawn(async move { axum::serve(listener, sink).await });

    let (server, client) = start().await;
    create_project(&client, "ev", None).await;
    server
        .control()
        .set_event_sink(Some(&sink_url))
        .await
        .unwrap();
    let started = client
        .start_build()
        .project_name("ev")
        .source_version("main")
        .send()
        .await
        .unwrap();
    let id = started.build_value().unwrap().id().unwrap().to_owned();
    finish(&server, &id, Status::Failed).await;

    let mut events = Vec::new();
    for _ in 0..2 {
        // A bound so a broken emitter fails the test instead of hanging it.
        let event = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
            .unwrap();
        events.push(event);
    }
    let parsed: Vec<aws_lambda_events::event::codebuild::CodeBuildEvent> = events
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    assert_eq!(
        parsed[0].detail.build_status.as_deref(),
        Some("IN_PROGRESS")
    );
    assert_eq!(parsed[1].detail.build_status.as_deref(), Some("FAILED"));
    assert_eq!(parsed[1].detail.project_name.as_deref(), Some("ev"));
    assert!(parsed[1].detail.additional_information.build_complete);
    assert_eq!(parsed[1].detail.current_phase.as_deref(), Some("COMPLETED"));
    assert_eq!(events[1]["detail-type"], "CodeBuild Build State Change");
    assert_eq!(
        events[1]["detail"]["build-id"],
        started.build_value().unwrap().arn().unwrap()
    );
    assert_eq!(
        events[1]["detail"]["additional-information"]["build-number"],
        1.0
    );
    let build_phase = events[1]["detail"]["additional-information"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase-type"] == "BUILD")
        .unwrap()
        .clone();
    assert_eq!(build_phase["phase-status"], "FAILED");
    assert_eq!(
        build_phase["phase-context"][0],
        "COMMAND_EXECUTION_ERROR: exit status 2"
    );

    // Same shape as the team's sample of a failed build: every key the sample has, we have.
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/tests/fixtures/codebuild-events/build-state-failed-tests.json"
        ))
        .expect(
            "sample event shared/tests/fixtures/codebuild-events/build-state-failed-tests.json",
        ),
    )
    .unwrap();
    let mut missing = Vec::new();
    missing_keys(&sample, &events[1], "$", &mut missing);
    assert!(missing.is_empty(), "emitted event lacks {missing:?}");
    server.shutdown().await;
    sink_task.abort();
}

/// Key paths of `sample` that `actual` lacks (objects recursively; arrays by their first item).
fn missing_keys(sample: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (sample, actual) {
        (Value::Object(s), Value::Object(a)) => {
            for (key, value) in s {
                match a.get(key) {
                    Some(actual) => missing_keys(value, actual, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            if let (Some(s), Some(a)) = (s.first(), a.first()) {
                missing_keys(s, a, &format!("{path}[0]"), out);
            }
        }
        _ => {}
    }
}
