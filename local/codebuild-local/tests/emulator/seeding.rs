//! Seeding batches the reaper has to tell apart: finishing ones (`COMBINE_ARTIFACTS`, or every
//! build done while the batch still runs) and thousands at once through the bulk endpoint.
//! Checked through the real SDK, as the reaper will read them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::config::{Credentials, Region};
use aws_sdk_codebuild::types::{BuildBatchFilter, StatusType};
use codebuild_local::control::{ControlError, SeedBatch, SeedBatchBuild};
use codebuild_local::model::{EnvironmentVariable, Status};
use codebuild_local::{Config, Server, serve};

async fn start() -> (Server, Client) {
    let server = serve(
        Config::default(),
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    )
    .await
    .unwrap();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("seeding", "secret", None, None, "test"))
        .endpoint_url(server.endpoint())
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    (server, Client::new(&config))
}

async fn in_progress_ids(client: &Client, project: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_build_batches_for_project()
            .project_name(project)
            .filter(
                BuildBatchFilter::builder()
                    .status(StatusType::InProgress)
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        ids.extend(page.ids().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return ids;
        }
    }
}

#[tokio::test]
async fn a_batch_combining_artifacts_is_still_in_progress_and_can_be_stopped() {
    let (server, client) = start().await;
    let seeded = server
        .control()
        .seed_batch(&SeedBatch {
            project_name: "mono".into(),
            current_phase: Some("COMBINE_ARTIFACTS".into()),
            builds: Some(vec![SeedBatchBuild {
                identifier: None,
                build_status: Some(Status::Succeeded),
            }]),
            age_seconds: Some(600),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    let id = seeded["id"].as_str().unwrap().to_owned();

    let got = client
        .batch_get_build_batches()
        .ids(&id)
        .send()
        .await
        .unwrap();
    let batch = &got.build_batches()[0];
    assert_eq!(batch.build_batch_status(), Some(&StatusType::InProgress));
    assert_eq!(batch.current_phase(), Some("COMBINE_ARTIFACTS"));
    assert!(!batch.complete());
    let phases: Vec<_> = batch
        .phases()
        .iter()
        .map(|p| p.phase_type().unwrap().as_str().to_owned())
        .collect();
    assert_eq!(
        phases,
        [
            "SUBMITTED",
            "DOWNLOAD_BATCHSPEC",
            "IN_PROGRESS",
            "COMBINE_ARTIFACTS"
        ]
    );
    assert_eq!(
        batch.build_groups()[0]
            .current_build_summary()
            .unwrap()
            .build_status(),
        Some(&StatusType::Succeeded)
    );
    assert_eq!(in_progress_ids(&client, "mono").await, vec![id.clone()]);

    let stopped = client.stop_build_batch().id(&id).send().await.unwrap();
    assert_eq!(
        stopped.build_batch().unwrap().build_batch_status(),
        Some(&StatusType::Stopped)
    );
    assert!(in_progress_ids(&client, "mono").await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn an_explicit_in_progress_keeps_a_batch_whose_builds_are_done_running() {
    let (server, _client) = start().await;
    let control = server.control();
    let done = SeedBatchBuild {
        identifier: None,
        build_status: Some(Status::Succeeded),
    };
    let running = control
        .seed_batch(&SeedBatch {
            project_name: "mono".into(),
            build_batch_status: Some(Status::InProgress),
            builds: Some(vec![done.clone(), done.clone()]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(running["buildBatchStatus"], "IN_PROGRESS");
    assert_eq!(running["currentPhase"], "IN_PROGRESS");
    assert_eq!(running["complete"], false);
    // Without the explicit status the batch is derived from its builds, as before.
    let derived = control
        .seed_batch(&SeedBatch {
            project_name: "mono".into(),
            builds: Some(vec![done]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(derived["buildBatchStatus"], "SUCCEEDED");
    server.shutdown().await;
}

#[tokio::test]
async fn bulk_seeding_numbers_batches_per_project_in_request_order() {
    let (server, client) = start().await;
    let seeds: Vec<SeedBatch> = (0..250)
        .map(|i| SeedBatch {
            project_name: format!("p{}", i % 3),
            source_version: Some(format!("refs/heads/b{i}")),
            environment_variables: Some(vec![EnvironmentVariable {
                name: "AUTOPILOT_BRANCH".into(),
                value: format!("b{i}"),
                kind: "PLAINTEXT".into(),
            }]),
            initiator: Some("bulk".into()),
            age_seconds: Some(i),
            ..SeedBatch::default()
        })
        .collect();
    let ids = server.control().seed_batches(&seeds).await.unwrap();
    assert_eq!(ids.len(), 250);

    let listed = in_progress_ids(&client, "p1").await;
    assert_eq!(listed.len(), 83, "every third seed, paged by 100");
    let got = client
        .batch_get_build_batches()
        .set_ids(Some(ids[..6].to_vec()))
        .send()
        .await
        .unwrap();
    let numbers: Vec<_> = got
        .build_batches()
        .iter()
        .map(|b| (b.project_name().unwrap().to_owned(), b.build_batch_number()))
        .collect();
    assert_eq!(
        numbers,
        [
            ("p0".to_owned(), Some(1)),
            ("p1".to_owned(), Some(1)),
            ("p2".to_owned(), Some(1)),
            ("p0".to_owned(), Some(2)),
            ("p1".to_owned(), Some(2)),
            ("p2".to_owned(), Some(2)),
        ]
    );
    let fifth = &got.build_batches()[5];
    assert_eq!(fifth.initiator(), Some("bulk"));
    assert_eq!(fifth.source_version(), Some("refs/heads/b5"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_seed_rejects_the_whole_bulk_request() {
    let (server, client) = start().await;
    let seeds = vec![
        SeedBatch {
            project_name: "p".into(),
            ..SeedBatch::default()
        },
        SeedBatch {
            project_name: "p".into(),
            current_phase: Some("BUILD".into()),
            ..SeedBatch::default()
        },
    ];
    let err = server.control().seed_batches(&seeds).await.unwrap_err();
    assert!(
        matches!(err, ControlError::Rejected { status: 400, .. }),
        "{err}"
    );
    let listed = client.list_build_batches().send().await.unwrap();
    assert!(listed.ids().is_empty(), "nothing seeded");
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_reports_the_variables_it_was_started_with_in_its_environment() {
    let (server, client) = start().await;
    let seeded = server
        .control()
        .seed_batch(&SeedBatch {
            project_name: "web".into(),
            environment_variables: Some(vec![EnvironmentVariable {
                name: "AUTOPILOT_PR".into(),
                value: "42".into(),
                kind: "PLAINTEXT".into(),
            }]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    let started = client
        .start_build_batch()
        .project_name("web")
        .environment_variables_override(
            aws_sdk_codebuild::types::EnvironmentVariable::builder()
                .name("AUTOPILOT_BRANCH")
                .value("feature/x")
                .r#type(aws_sdk_codebuild::types::EnvironmentVariableType::Plaintext)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ids = [
        seeded["id"].as_str().unwrap().to_owned(),
        started.build_batch().unwrap().id().unwrap().to_owned(),
    ];
    let got = client
        .batch_get_build_batches()
        .set_ids(Some(ids.to_vec()))
        .send()
        .await
        .unwrap();
    let variables: Vec<Vec<(String, String)>> = got
        .build_batches()
        .iter()
        .map(|b| {
            b.environment()
                .unwrap()
                .environment_variables()
                .iter()
                .map(|v| (v.name().to_owned(), v.value().to_owned()))
                .collect()
        })
        .collect();
    assert_eq!(
        variables,
        [
            vec![("AUTOPILOT_PR".to_owned(), "42".to_owned())],
            vec![("AUTOPILOT_BRANCH".to_owned(), "feature/x".to_owned())],
        ]
    );
    server.shutdown().await;
}
