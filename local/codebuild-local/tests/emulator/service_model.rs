//! Every operation's response, checked against botocore's CodeBuild service model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use codebuild_local::control::{SeedBatch, SeedBatchBuild, SeedBuild};
use codebuild_local::model::Status;
use codebuild_local::model_check::ServiceModel;
use codebuild_local::protocol::{OPERATIONS, TARGET_PREFIX};
use codebuild_local::{Config, serve};
use serde_json::{Value, json};

fn model() -> ServiceModel {
    // Fails (never skips) without the model: `make venv` installs botocore into .venv.
    let path = ServiceModel::locate().unwrap_or_else(|e| panic!("{e}"));
    ServiceModel::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

async fn call(http: &reqwest::Client, endpoint: &str, operation: &str, body: Value) -> Value {
    let response = http
        .post(format!("{endpoint}/"))
        .header("X-Amz-Target", format!("{TARGET_PREFIX}{operation}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let json: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{operation} failed: {status} {json}");
    json
}

#[test]
fn every_emulated_operation_exists_in_the_model() {
    let names = model().operation_names();
    for (operation, _) in OPERATIONS {
        assert!(
            names.iter().any(|n| n == operation),
            "{operation} is not a CodeBuild operation"
        );
    }
}

#[tokio::test]
async fn every_operation_answers_in_the_models_output_shape() {
    let model = model();
    let server = serve(
        Config::default(),
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    )
    .await
    .unwrap();
    let endpoint = server.endpoint();
    let http = reqwest::Client::new();
    let control = server.control();

    let project = json!({
        "name": "shape", "serviceRole": "arn:aws:iam::123456789012:role/cb", "autoRetryLimit": 1,
        "source": {"type": "GITHUB", "location": "https://github.com/o/r"},
        "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                        "computeType": "BUILD_GENERAL1_SMALL",
                        "environmentVariables": [{"name": "A", "value": "1", "type": "PLAINTEXT"}]}
    });
    let mut responses: Vec<(&str, Value)> = Vec::new();
    responses.push((
        "CreateProject",
        call(&http, &endpoint, "CreateProject", project).await,
    ));
    responses.push((
        "BatchGetProjects",
        call(
            &http,
            &endpoint,
            "BatchGetProjects",
            json!({"names": ["shape", "nope"]}),
        )
        .await,
    ));
    responses.push((
        "ListProjects",
        call(&http, &endpoint, "ListProjects", json!({})).await,
    ));
    let started = call(
        &http,
        &endpoint,
        "StartBuild",
        json!({"projectName": "shape", "sourceVersion": "main", "idempotencyToken": "x",
               "environmentVariablesOverride": [{"name": "B", "value": "2"}]}),
    )
    .await;
    let id = started["build"]["id"].as_str().unwrap().to_owned();
    responses.push(("StartBuild", started));
    // A failed build with contexts, auto-retried by the emulator: the richest Build shape.
    let failed = control
        .seed_build(&SeedBuild {
            project_name: "shape".into(),
            build_status: Some(Status::Failed),
            ..SeedBuild::default()
        })
        .await
        .unwrap();
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    responses.push((
        "StopBuild",
        call(&http, &endpoint, "StopBuild", json!({"id": id})).await,
    ));
    responses.push((
        "RetryBuild",
        call(
            &http,
            &endpoint,
            "RetryBuild",
            json!({"id": failed_id, "idempotencyToken": "r"}),
        )
        .await,
    ));
    responses.push((
        "BatchGetBuilds",
        call(
            &http,
            &endpoint,
            "BatchGetBuilds",
            json!({"ids": [id, failed_id, "shape:nope"]}),
        )
        .await,
    ));
    responses.push((
        "ListBuildsForProject",
        call(
            &http,
            &endpoint,
            "ListBuildsForProject",
            json!({"projectName": "shape"}),
        )
        .await,
    ));
    responses.push((
        "ListBuilds",
        call(&http, &endpoint, "ListBuilds", json!({})).await,
    ));

    let batch = call(
        &http,
        &endpoint,
        "StartBuildBatch",
        json!({"projectName": "shape", "idempotencyToken": "b"}),
    )
    .await;
    let batch_id = batch["buildBatch"]["id"].as_str().unwrap().to_owned();
    responses.push(("StartBuildBatch", batch));
    responses.push((
        "StopBuildBatch",
        call(&http, &endpoint, "StopBuildBatch", json!({"id": batch_id})).await,
    ));
    let seeded = control
        .seed_batch(&SeedBatch {
            project_name: "shape".into(),
            builds: Some(vec![
                SeedBatchBuild {
                    identifier: None,
                    build_status: Some(Status::Succeeded),
                },
                SeedBatchBuild {
                    identifier: None,
                    build_status: Some(Status::Failed),
                },
            ]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    let seeded_id = seeded["id"].as_str().unwrap().to_owned();
    responses.push((
        "RetryBuildBatch",
        call(
            &http,
            &endpoint,
            "RetryBuildBatch",
            json!({"id": seeded_id, "retryType": "RETRY_FAILED_BUILDS"}),
        )
        .await,
    ));
    responses.push((
        "BatchGetBuildBatches",
        call(
            &http,
            &endpoint,
            "BatchGetBuildBatches",
            json!({"ids": [batch_id, seeded_id, "shape:nope"]}),
        )
        .await,
    ));
    responses.push((
        "ListBuildBatchesForProject",
        call(
            &http,
            &endpoint,
            "ListBuildBatchesForProject",
            json!({"projectName": "shape", "maxResults": 1}),
        )
        .await,
    ));
    responses.push((
        "ListBuildBatches",
        call(
            &http,
            &endpoint,
            "ListBuildBatches",
            json!({"filter": {"status": "STOPPED"}}),
        )
        .await,
    ));
    // The control API answers with the same shapes as BatchGetBuilds / BatchGetBuildBatches.
    responses.push(("BatchGetBuilds", json!({"builds": [failed]})));
    responses.push(("BatchGetBuildBatches", json!({"buildBatches": [seeded]})));
    // A batch combining its builds' artifacts (the reaper's "finishing" batches).
    let combining = control
        .seed_batch(&SeedBatch {
            project_name: "shape".into(),
            build_batch_status: Some(Status::InProgress),
            current_phase: Some("COMBINE_ARTIFACTS".into()),
            builds: Some(vec![SeedBatchBuild {
                identifier: None,
                build_status: Some(Status::Succeeded),
            }]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(combining["currentPhase"], "COMBINE_ARTIFACTS");
    responses.push(("BatchGetBuildBatches", json!({"buildBatches": [combining]})));

    for (operation, _) in OPERATIONS {
        assert!(
            responses.iter().any(|(op, _)| op == operation),
            "{operation} not exercised"
        );
    }
    let mut problems = Vec::new();
    for (operation, response) in &responses {
        for violation in model.validate_output(operation, response) {
            problems.push(format!("{operation}: {violation}"));
        }
    }
    assert!(
        problems.is_empty(),
        "responses break the service model:\n{}",
        problems.join("\n")
    );
    server.shutdown().await;
}

#[test]
fn the_validator_rejects_a_broken_build() {
    let model = model();
    let good = json!({"builds": [{"id": "p:1", "buildStatus": "FAILED", "buildNumber": 3, "startTime": 1.5}]});
    assert!(model.validate_output("BatchGetBuilds", &good).is_empty());
    for broken in [
        json!({"builds": [{"id": "p:1", "buildStatus": "BROKEN"}]}),
        json!({"builds": [{"id": "p:1", "buildNumbr": 3}]}),
        json!({"builds": [{"id": "p:1", "buildNumber": "3"}]}),
        json!({"builds": [{"id": "p:1", "startTime": "2024-01-01T00:00:00Z"}]}),
    ] {
        assert!(
            !model.validate_output("BatchGetBuilds", &broken).is_empty(),
            "{broken} should fail"
        );
    }
}
