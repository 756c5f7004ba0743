//! `autopilot builds` and `autopilot batches`, the real binary against the in-process
//! `codebuild-local` emulator (through AWS_ENDPOINT_URL, as against any endpoint).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;

use crate::run::{autopilot, autopilot_env, unreachable_endpoint};
use codebuild_local::control::{SeedBatch, SeedBuild};
use codebuild_local::model::Status;
use codebuild_local::{Config, Server, serve};
use harness::stack::CodeBuildCli;
use serde_json::{Value, json};

const UNKNOWN_BUILD: &str = "web:00000000-0000-4000-8000-000000000000";

async fn emulator() -> (Server, CodeBuildCli) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = serve(Config::default(), addr).await.unwrap();
    let raw = CodeBuildCli::new(server.endpoint());
    (server, raw)
}

async fn seed_build(server: &Server, project: &str, status: Status) -> String {
    let seeded = server
        .control()
        .seed_build(&SeedBuild {
            project_name: project.into(),
            build_status: Some(status),
            source_version: Some("refs/heads/main".into()),
            ..SeedBuild::default()
        })
        .await
        .unwrap();
    seeded["id"].as_str().unwrap().to_owned()
}

async fn builds_of(raw: &CodeBuildCli, project: &str) -> Vec<Value> {
    let listed = raw
        .call("ListBuildsForProject", &json!({"projectName": project}))
        .await
        .unwrap();
    listed["ids"].as_array().unwrap().clone()
}

async fn calls_of(server: &Server, operation: &str) -> Vec<Value> {
    server
        .control()
        .calls()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.operation == operation && c.fault.is_none())
        .map(|c| c.params)
        .collect()
}

#[tokio::test]
async fn builds_get_prints_each_build_and_names_the_missing() {
    let (server, _) = emulator().await;
    let endpoint = server.endpoint();
    let failed = seed_build(&server, "web", Status::Failed).await;
    let passed = seed_build(&server, "web", Status::Succeeded).await;
    let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build/{passed}");

    let json = autopilot(&endpoint, &["builds", "get", &failed, &arn])
        .await
        .ok();
    let builds = json["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2);
    assert_eq!(builds[0]["id"], failed.as_str());
    assert_eq!(builds[0]["status"], "FAILED");
    assert_eq!(builds[0]["project"], "web");
    assert_eq!(builds[0]["sourceVersion"], "refs/heads/main");
    assert_eq!(builds[1]["id"], passed.as_str());
    assert_eq!(builds[1]["status"], "SUCCEEDED");
    assert_eq!(json["notFound"], json!([]));

    // A well-formed id CodeBuild does not know: what was found still prints; exit 3.
    let run = autopilot(&endpoint, &["builds", "get", &failed, UNKNOWN_BUILD]).await;
    run.fails(3, UNKNOWN_BUILD);
    let json = run.json();
    assert_eq!(json["builds"].as_array().unwrap().len(), 1);
    assert_eq!(json["notFound"], json!([UNKNOWN_BUILD]));

    // For people: a table.
    let run = autopilot(&endpoint, &["builds", "get", &failed, "--output", "table"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{run:?}"
    );
    assert!(
        lines[1].starts_with(&failed) && lines[1].contains("FAILED"),
        "{run:?}"
    );
}

#[tokio::test]
async fn retrying_twice_with_one_key_makes_one_build() {
    let (server, raw) = emulator().await;
    let endpoint = server.endpoint();
    let failed = seed_build(&server, "web", Status::Failed).await;

    let first = autopilot(&endpoint, &["builds", "retry", &failed])
        .await
        .ok();
    let again = autopilot(&endpoint, &["builds", "retry", &failed])
        .await
        .ok();
    let new_id = first["build"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, failed);
    assert_eq!(first["retriedFrom"], failed.as_str());
    assert_eq!(again["build"]["id"], new_id.as_str());
    assert_eq!(builds_of(&raw, "web").await.len(), 2);
    // Both calls reached CodeBuild with one token: CodeBuild, not the CLI, made it one build.
    let calls = calls_of(&server, "RetryBuild").await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["idempotencyToken"], calls[1]["idempotencyToken"]);

    // Another key is another retry, twice with it still one.
    let keyed = autopilot(
        &endpoint,
        &[
            "builds",
            "retry",
            &failed,
            "--idempotency-key",
            "incident-42",
        ],
    )
    .await
    .ok();
    let keyed_again = autopilot(
        &endpoint,
        &[
            "builds",
            "retry",
            &failed,
            "--idempotency-key",
            "incident-42",
        ],
    )
    .await
    .ok();
    assert_ne!(keyed["build"]["id"], new_id.as_str());
    assert_eq!(keyed["build"]["id"], keyed_again["build"]["id"]);
    assert_eq!(builds_of(&raw, "web").await.len(), 3);
}

#[tokio::test]
async fn starting_twice_starts_one_batch_with_the_overrides() {
    let (server, raw) = emulator().await;
    let endpoint = server.endpoint();
    raw.create_projects(["web"]).await.unwrap();
    let mut buildspec = tempfile::NamedTempFile::new().unwrap();
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - make nightly\n";
    buildspec.write_all(spec.as_bytes()).unwrap();
    let spec_path = buildspec.path().to_str().unwrap();
    let args = [
        "batches",
        "start",
        "web",
        "--source-version",
        "refs/heads/release",
        "--env",
        "DEPLOY_ENV=staging",
        "--env",
        "FLAGS=a=b",
        "--buildspec",
        spec_path,
        "--timeout",
        "60",
        "--reason",
        "release train",
    ];

    let first = autopilot(&endpoint, &args).await.ok();
    let again = autopilot(&endpoint, &args).await.ok();
    let batch = &first["batch"];
    assert_eq!(again["batch"]["id"], batch["id"]);
    assert_eq!(batch["project"], "web");
    assert_eq!(batch["status"], "IN_PROGRESS");
    assert_eq!(batch["sourceVersion"], "refs/heads/release");
    assert_eq!(batch["buildBatchNumber"], 1);

    let batches = raw.batches_of("web").await.unwrap();
    assert_eq!(batches.len(), 1, "{batches:?}");
    // What the emulator was asked for: every override, the reason as a variable.
    let calls = calls_of(&server, "StartBuildBatch").await;
    assert_eq!(calls.len(), 2);
    let params = &calls[0];
    assert_eq!(params["idempotencyToken"], calls[1]["idempotencyToken"]);
    assert_eq!(params["projectName"], "web");
    assert_eq!(params["sourceVersion"], "refs/heads/release");
    assert_eq!(params["buildspecOverride"], spec);
    assert_eq!(params["buildTimeoutInMinutesOverride"], 60);
    let variables: Vec<(String, String)> = params["environmentVariablesOverride"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["type"], "PLAINTEXT");
            (
                v["name"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        variables,
        [
            ("DEPLOY_ENV", "staging"),
            ("FLAGS", "a=b"),
            ("AUTOPILOT_REASON", "release train")
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    // And the batch the emulator made runs with them.
    assert_eq!(batches[0]["sourceVersion"], "refs/heads/release");
    assert_eq!(batches[0]["buildTimeoutInMinutes"], 60);
    assert_eq!(batches[0]["source"]["buildspec"], spec);

    // Other parameters: another start.
    let mut other = args.to_vec();
    other[4] = "refs/heads/main";
    let third = autopilot(&endpoint, &other).await.ok();
    assert_ne!(third["batch"]["id"], batch["id"]);
    assert_eq!(raw.batches_of("web").await.unwrap().len(), 2);
    // The same explicit key with other parameters within the window: refused by CodeBuild.
    let keyed = ["batches", "start", "web", "--idempotency-key", "k1"];
    autopilot(&endpoint, &keyed).await.ok();
    let mut conflicting = keyed.to_vec();
    conflicting.extend(["--source-version", "refs/heads/other"]);
    autopilot(&endpoint, &conflicting)
        .await
        .fails(3, "idempotency token reused");
}

#[tokio::test]
async fn stopping_a_batch_stops_it() {
    let (server, raw) = emulator().await;
    let endpoint = server.endpoint();
    raw.create_projects(["web"]).await.unwrap();
    let started = autopilot(&endpoint, &["batches", "start", "web"])
        .await
        .ok();
    let id = started["batch"]["id"].as_str().unwrap().to_owned();

    let stopped = autopilot(&endpoint, &["batches", "stop", &id]).await.ok();
    assert_eq!(stopped["batch"]["id"], id.as_str());
    assert_eq!(stopped["batch"]["status"], "STOPPED");
    let batches = raw.batches_of("web").await.unwrap();
    assert_eq!(batches[0]["buildBatchStatus"], "STOPPED");
    // Stopping again is harmless.
    autopilot(&endpoint, &["batches", "stop", &id]).await.ok();
    // An unknown batch: CodeBuild's refusal, exit 3.
    autopilot(&endpoint, &["batches", "stop", UNKNOWN_BUILD])
        .await
        .fails(3, "not found");
}

#[tokio::test]
async fn listing_follows_every_page_up_to_max() {
    let (server, _) = emulator().await;
    let endpoint = server.endpoint();
    // 130 running batches and 20 finished ones: more than one page (100) of either listing.
    let mut seeds: Vec<SeedBatch> = (0..130)
        .map(|_| SeedBatch {
            project_name: "web".into(),
            ..SeedBatch::default()
        })
        .collect();
    seeds.extend((0..20).map(|_| SeedBatch {
        project_name: "web".into(),
        build_batch_status: Some(Status::Succeeded),
        builds: Some(vec![codebuild_local::control::SeedBatchBuild {
            identifier: None,
            build_status: Some(Status::Succeeded),
        }]),
        ..SeedBatch::default()
    }));
    server.control().seed_batches(&seeds).await.unwrap();

    let all = autopilot(&endpoint, &["batches", "list", "web", "--max", "1000"])
        .await
        .ok();
    let batches = all["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 150);
    assert_eq!(
        calls_of(&server, "ListBuildBatchesForProject").await.len(),
        2
    );
    // Newest first.
    let numbers: Vec<i64> = batches
        .iter()
        .map(|b| b["buildBatchNumber"].as_i64().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] > w[1]), "{numbers:?}");

    let capped = autopilot(&endpoint, &["batches", "list", "web", "--max", "120"])
        .await
        .ok();
    assert_eq!(capped["batches"].as_array().unwrap().len(), 120);

    let running = autopilot(
        &endpoint,
        &[
            "batches",
            "list",
            "web",
            "--status",
            "IN_PROGRESS",
            "--max",
            "1000",
        ],
    )
    .await
    .ok();
    let running = running["batches"].as_array().unwrap();
    assert_eq!(running.len(), 130);
    assert!(running.iter().all(|b| b["status"] == "IN_PROGRESS"));
    let finished = autopilot(
        &endpoint,
        &["batches", "list", "web", "--status", "succeeded"],
    )
    .await
    .ok();
    assert_eq!(finished["batches"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_and_an_exit_code() {
    let (server, _) = emulator().await;
    let endpoint = server.endpoint();
    // Usage errors (exit 2), before any AWS call.
    autopilot(&endpoint, &["builds", "get", "not-an-id"])
        .await
        .fails(2, "not-an-id");
    autopilot(&endpoint, &["builds", "retry", "web:not-a-uuid"])
        .await
        .fails(2, "web:not-a-uuid");
    autopilot(&endpoint, &["batches", "stop", "arn:aws:s3:::bucket"])
        .await
        .fails(2, "arn:aws:s3:::bucket");
    autopilot(&endpoint, &["batches", "start", "web", "--env", "NOVALUE"])
        .await
        .fails(2, "NAME=VALUE");
    autopilot(
        &endpoint,
        &["batches", "start", "web", "--env", "CODEBUILD_X=1"],
    )
    .await
    .fails(2, "reserved");
    autopilot(&endpoint, &["batches", "start", "web", "--timeout", "3"])
        .await
        .fails(2, "--timeout");
    autopilot(&endpoint, &["batches", "start", "bad/name"])
        .await
        .fails(2, "bad/name");
    autopilot(
        &endpoint,
        &["batches", "list", "web", "--status", "RUNNING"],
    )
    .await
    .fails(2, "RUNNING");
    autopilot(
        &endpoint,
        &["builds", "retry", UNKNOWN_BUILD, "--idempotency-key", ""],
    )
    .await
    .fails(2, "--idempotency-key");
    let no_region = autopilot_env(
        Some(&endpoint),
        &["builds", "get", UNKNOWN_BUILD],
        &[("AWS_REGION", "")],
    )
    .await;
    no_region.fails(2, "region");
    assert!(calls_of(&server, "BatchGetBuilds").await.is_empty());

    // CodeBuild refuses (exit 3): an unknown project, an unknown build.
    autopilot(&endpoint, &["batches", "start", "no-such-project"])
        .await
        .fails(3, "no-such-project");
    autopilot(&endpoint, &["builds", "retry", UNKNOWN_BUILD])
        .await
        .fails(3, "RetryBuild");

    // Nothing listens: unavailable (exit 4), also through --endpoint-url over the environment.
    let nowhere = unreachable_endpoint();
    autopilot(&nowhere, &["builds", "get", UNKNOWN_BUILD])
        .await
        .fails(4, "BatchGetBuilds");
    autopilot(
        &endpoint,
        &["batches", "list", "web", "--endpoint-url", &nowhere],
    )
    .await
    .fails(4, "ListBuildBatchesForProject");
}
