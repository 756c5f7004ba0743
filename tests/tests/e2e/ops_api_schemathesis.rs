//! Schema-driven: schemathesis (pinned in scripts/requirements/stack.txt, installed in .venv by
//! `make venv`) generates requests from docs/openapi.json — valid ones and invalid ones — and
//! sends them over plain HTTP to the compiled `ops-api` binary behind the HTTP front
//! (`harness::http_front`: API Gateway's v2 events with an IAM caller), against codebuild-local
//! and moto. It must find no 5xx, no status the document does not list and no body that breaks
//! its schema.
//!
//! The document is used as it is, with one addition in a temporary copy: the seeded build,
//! batch and project as the path parameters' examples, so that schemathesis' example phase
//! reaches real resources (200 and 201 answers) and not only unknown ids (404).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::local_services;
use autopilot::aws::DynamoRetryBook;
use autopilot::model::BuildId;
use autopilot::ports::{Lineage, RetryBook};
use codebuild_local::control::{SeedBatch, SeedBuild};
use harness::http_front::{self, FrontOptions, HttpFront, Routing};
use harness::lambda::{self, FunctionSpec, RunningFunction};
use harness::moto::{self, MotoServer};
use harness::workspace;
use serde_json::{Value, json};

/// Examples per operation and phase: enough to walk every parameter and body shape, few enough
/// that the run stays well within a minute on two cores.
const MAX_EXAMPLES: &str = "25";
/// A fixed seed: the same requests on every run, so a failure reproduces.
const SEED: &str = "20261201";
/// Upper bound of the whole run; reaching it is a failure (a hang), never an expectation.
const RUN_BOUND: Duration = Duration::from_secs(600);

const CONFIG: &str = r#"
# `web` lets callers set every override; `api` keeps the default allow-list (source version only).
[[projects]]
name = "web"
[projects.start]
allowed_overrides = ["source_version", "environment_variables", "buildspec", "timeout"]
environment_variable_names = ["*"]
max_timeout_minutes = 2160

[[projects]]
name = "api"
"#;

/// The `schemathesis` executable: next to `$MOTO_SERVER_BIN` (the Makefile points that into
/// .venv), else in the workspace's .venv.
fn schemathesis_binary() -> PathBuf {
    let moto_server = moto::server_binary();
    moto_server
        .parent()
        .map(|dir| dir.join("schemathesis"))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| {
            workspace::root()
                .join(".venv")
                .join("bin")
                .join("schemathesis")
        })
}

struct Seeded {
    /// A failed build of `web` that auto-retry retried twice (its lineage is recorded).
    root_build: String,
    /// Every seeded build id.
    builds: Vec<String>,
    /// A running batch of `web`.
    running_batch: String,
    /// A failed batch of `web`.
    failed_batch: String,
}

struct Stack {
    _moto: MotoServer,
    emulator: codebuild_local::Server,
    _config: tempfile::NamedTempFile,
    function: RunningFunction,
    front: HttpFront,
    seeded: Seeded,
}

impl Stack {
    async fn start() -> Stack {
        let emulator = local_services::codebuild_local().await;
        let (moto, sdk) = local_services::moto_with_ledger().await;
        let table = local_services::LEDGER_TABLE;
        let book = DynamoRetryBook::new(aws_sdk_dynamodb::Client::new(&sdk), table);
        let seeded = seed(&emulator, &book).await;

        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), CONFIG).unwrap();
        let binary = workspace::binary("ops-api");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (make test does)",
            binary.display()
        );
        let spec = FunctionSpec {
            timeout: Duration::from_secs(30),
            ..FunctionSpec::new("ops-api", binary)
        };
        let spec = moto
            .env()
            .into_iter()
            .fold(spec, |spec, (name, value)| spec.with_env(name, value))
            .with_env("AWS_ENDPOINT_URL_CODEBUILD", emulator.endpoint())
            .with_env(
                "AUTOPILOT_CONFIG_URI",
                format!("file:{}", config.path().display()),
            )
            .with_env("AUTOPILOT_LEDGER_TABLE", table)
            .with_env("AUTOPILOT_PROJECT_PATTERNS", "*");
        let function = lambda::start(spec).await.unwrap();
        let front = http_front::start(
            function.clone(),
            FrontOptions {
                routing: Routing::routes(autopilot::ops::ROUTES),
                ..FrontOptions::default()
            },
        )
        .await
        .unwrap();
        Stack {
            _moto: moto,
            emulator,
            _config: config,
            function,
            front,
            seeded,
        }
    }

    async fn shutdown(self) {
        self.front.shutdown().await;
        self.function.shutdown().await;
        self.emulator.shutdown().await;
    }
}

fn seed_build(value: Value) -> SeedBuild {
    serde_json::from_value(value).unwrap()
}

fn seed_batch(value: Value) -> SeedBatch {
    serde_json::from_value(value).unwrap()
}

/// Builds, batches and a retry chain, as a project that has been running for a while has.
async fn seed(emulator: &codebuild_local::Server, book: &DynamoRetryBook) -> Seeded {
    let control = emulator.control();
    let mut builds = Vec::new();
    for seed in [
        json!({"projectName": "web", "buildStatus": "FAILED", "ageSeconds": 900,
               "sourceVersion": "refs/heads/main"}),
        json!({"projectName": "web", "buildStatus": "FAILED", "ageSeconds": 600}),
        json!({"projectName": "web", "buildStatus": "SUCCEEDED", "ageSeconds": 300}),
        json!({"projectName": "api", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD"}),
    ] {
        let build = control.seed_build(&seed_build(seed)).await.unwrap();
        builds.push(build["id"].as_str().unwrap().to_owned());
    }
    // builds[0] failed, auto-retry made builds[1], which failed and was retried as builds[2].
    let id = |i: usize| BuildId::parse(&builds[i]).unwrap();
    for (attempt, (parent, build)) in [(0, 1), (1, 2)].into_iter().enumerate() {
        book.record_lineage(&Lineage {
            build: id(build),
            parent: id(parent),
            root: id(0),
            attempt: u32::try_from(attempt).unwrap() + 1,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    }
    let running = control
        .seed_batch(&seed_batch(json!({
            "projectName": "web", "sourceVersion": "refs/heads/main", "ageSeconds": 120,
            "builds": [{"identifier": "unit"}, {"identifier": "lint", "buildStatus": "SUCCEEDED"}]
        })))
        .await
        .unwrap();
    let failed = control
        .seed_batch(&seed_batch(json!({
            "projectName": "web", "ageSeconds": 3600,
            "builds": [{"identifier": "unit", "buildStatus": "FAILED"}]
        })))
        .await
        .unwrap();
    for status in ["SUCCEEDED", "STOPPED"] {
        control
            .seed_batch(&seed_batch(json!({
                "projectName": "api",
                "builds": [{"buildStatus": status}]
            })))
            .await
            .unwrap();
    }
    Seeded {
        root_build: builds[0].clone(),
        builds,
        running_batch: running["id"].as_str().unwrap().to_owned(),
        failed_batch: failed["id"].as_str().unwrap().to_owned(),
    }
}

/// docs/openapi.json with the seeded resources as the path parameters' examples (per path, so
/// the retry of a batch names the failed one and the stop the running one).
fn document_with_examples(seeded: &Seeded, dir: &Path) -> PathBuf {
    let source = workspace::root().join("docs").join("openapi.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&source).unwrap()).unwrap();
    let example_of = |path: &str, name: &str| -> Value {
        match (path, name) {
            (_, "name") => json!("web"),
            ("/batches/{id}/retry", _) => json!(seeded.failed_batch),
            (p, _) if p.starts_with("/batches/") => json!(seeded.running_batch),
            _ => json!(seeded.root_build),
        }
    };
    let parameters = doc["components"]["parameters"].clone();
    let paths = doc["paths"].as_object_mut().unwrap();
    for (path, item) in paths.iter_mut() {
        let Some(shared) = item.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for parameter in shared.iter_mut() {
            // Inline the reference so the example is this path's alone.
            if let Some(reference) = parameter.get("$ref").and_then(Value::as_str) {
                let name = reference.rsplit('/').next().unwrap();
                *parameter = parameters[name].clone();
            }
            let name = parameter["name"].as_str().unwrap().to_owned();
            parameter["example"] = example_of(path, &name);
        }
    }
    // One key per operation: with one shared example key, every mutation after the first
    // would be the same key with another request (422) and never reach CodeBuild.
    for (path, item) in paths.iter_mut() {
        let Some(post) = item.get_mut("post") else {
            continue;
        };
        for parameter in post["parameters"].as_array_mut().into_iter().flatten() {
            if let Some(reference) = parameter.get("$ref").and_then(Value::as_str) {
                let name = reference.rsplit('/').next().unwrap();
                *parameter = parameters[name].clone();
            }
            if parameter["name"] == "Idempotency-Key" {
                parameter["example"] = json!(format!("schemathesis {path}"));
            }
        }
    }
    doc["paths"]["/builds"]["get"]["parameters"][0]["example"] = json!(seeded.builds);
    let copy = dir.join("openapi.json");
    std::fs::write(&copy, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    copy
}

/// (method, path, status) of every exchange in schemathesis' HAR report.
fn recorded_exchanges(har: &Path) -> Vec<(String, String, u16)> {
    let text = std::fs::read_to_string(har)
        .unwrap_or_else(|error| panic!("no HAR report at {}: {error}", har.display()));
    let report: Value = serde_json::from_str(&text).unwrap();
    report["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let url = entry["request"]["url"].as_str().unwrap();
            let after_host = url.splitn(4, '/').nth(3).unwrap_or_default();
            let path = format!("/{}", after_host.split('?').next().unwrap_or_default());
            let status = u16::try_from(entry["response"]["status"].as_u64().unwrap()).unwrap();
            (
                entry["request"]["method"].as_str().unwrap().to_owned(),
                path,
                status,
            )
        })
        .collect()
}

/// Whether a raw path fits a route template (`{x}` is one non-empty segment).
fn path_matches(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template.iter().zip(&path).all(|(pattern, segment)| {
            if pattern.starts_with('{') {
                !segment.is_empty()
            } else {
                pattern == segment
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let schemathesis = schemathesis_binary();
    assert!(
        schemathesis.is_file(),
        "schemathesis not found at {}: run `make venv` (scripts/python-env.sh installs it into \
         .venv); this test never passes without running it",
        schemathesis.display()
    );
    let stack = Stack::start().await;
    let work = tempfile::tempdir().unwrap();
    let document = document_with_examples(&stack.seeded, work.path());
    let har = work.path().join("exchanges.har");

    let mut command = tokio::process::Command::new(&schemathesis);
    command
        .arg("run")
        .arg(&document)
        .args(["--url", stack.front.endpoint()])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--mode", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // One sandbox answers one invocation at a time, as in Lambda.
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "60"])
        .args(["--suppress-health-check", "all"])
        .arg("--no-color")
        .args(["--report", "har", "--report-har-path"])
        .arg(&har)
        // Hypothesis and schemathesis write their state under the working directory.
        .current_dir(work.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_BOUND:?}"))
        .unwrap_or_else(|error| panic!("could not run {}: {error}", schemathesis.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let ops_api_log: Vec<String> = stack
        .function
        .logs()
        .into_iter()
        .rev()
        .take(40)
        .map(|line| line.line)
        .collect();
    assert!(
        output.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\n--- last ops-api log lines (newest first):\n{}",
        output.status,
        ops_api_log.join("\n")
    );
    // A run that tested nothing, or only unknown ids, would also exit 0: every operation must
    // have been called and have answered a success at least once (the seeded examples).
    let exchanges = recorded_exchanges(&har);
    for (method, template) in autopilot::ops::ROUTES {
        let statuses: Vec<u16> = exchanges
            .iter()
            .filter(|(m, path, _)| m == method && path_matches(template, path))
            .map(|(_, _, status)| *status)
            .collect();
        assert!(
            statuses.iter().any(|status| (200..300).contains(status)),
            "{method} {template}: no success among {} requests ({statuses:?}):\n{stdout}",
            statuses.len()
        );
    }
    println!("{stdout}");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_front_s_caller_decides_between_an_answer_and_401() {
    let stack = Stack::start().await;
    let anonymous = http_front::start(
        stack.function.clone(),
        FrontOptions {
            caller: None,
            routing: Routing::routes(autopilot::ops::ROUTES),
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let stop = format!("/batches/{}/stop", stack.seeded.running_batch);

    let refused = http
        .post(anonymous.url(&stop))
        .header("Idempotency-Key", "stop-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");

    let answered = http
        .post(stack.front.url(&stop))
        .header("Idempotency-Key", "stop-1")
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status().as_u16(), 200);
    assert_eq!(
        answered.headers()["content-type"],
        "application/json",
        "the function's own headers come through"
    );
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["batch"]["id"], stack.seeded.running_batch.as_str());

    // Reads need no caller; the id in the path may be a percent-encoded ARN.
    let arn = format!(
        "arn:aws:codebuild:us-east-1:123456789012:build/{}",
        stack.seeded.root_build
    );
    let encoded: String = form_urlencoded::byte_serialize(arn.as_bytes()).collect();
    let read = http
        .get(anonymous.url(&format!("/builds/{encoded}/lineage")))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["root"], stack.seeded.root_build.as_str(), "{body}");
    assert_eq!(body["chain"].as_array().unwrap().len(), 3, "{body}");
    anonymous.shutdown().await;
    stack.shutdown().await;
}
