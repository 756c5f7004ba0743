//! The Lambda harness itself, driven with the `fixture-fn` binary: synchronous and asynchronous
//! invocations, errors, crashes, timeouts, the on-failure destination (moto's SQS) and the Invoke
//! HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use harness::lambda::{
    self, DestinationOutcome, FunctionSpec, LogLine, OnFailureDestination, RunningFunction,
    invoke_api,
};
use harness::moto::MotoServer;
use harness::workspace;
use serde_json::{Value, json};

fn fixture_spec() -> FunctionSpec {
    let binary = workspace::binary("fixture-fn");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        binary.display()
    );
    FunctionSpec::new("fixture", binary).with_env("FIXTURE_SETTING", "from-spec")
}

async fn start_fixture() -> RunningFunction {
    lambda::start(fixture_spec()).await.unwrap()
}

/// The log lines of the invocations with this request id (the fixture logs one per invocation).
fn invocations_logged(logs: &[LogLine], request_id: &str) -> usize {
    logs.iter()
        .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
        .filter(|line| {
            line["fields"]["marker"] == "fixture-invoked"
                && line["fields"]["request_id"] == request_id
        })
        .count()
}

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    received
        .messages()
        .iter()
        .map(|message| serde_json::from_str(message.body().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn sync_invocation_echoes_with_the_runtime_context_and_environment() {
    let function = start_fixture().await;

    let invocation = function.invoke(json!({"hello": "world"})).await.unwrap();
    let answer = invocation.result.unwrap();
    assert_eq!(answer["echo"], json!({"hello": "world"}));
    assert_eq!(answer["requestId"], invocation.request_id.as_str());
    assert_eq!(
        answer["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:fixture"
    );
    assert!(answer["deadlineMs"].as_u64().unwrap() > 0);
    assert!(answer["traceId"].as_str().unwrap().starts_with("Root=1-"));

    let env = |name: &str| {
        let function = function.clone();
        let name = name.to_owned();
        async move {
            function
                .invoke(json!({"env": name}))
                .await
                .unwrap()
                .result
                .unwrap()["env"]
                .clone()
        }
    };
    assert_eq!(env("AWS_LAMBDA_FUNCTION_NAME").await, "fixture");
    assert_eq!(env("FIXTURE_SETTING").await, "from-spec");
    assert_eq!(env("AWS_REGION").await, "us-east-1");

    // AWS_LAMBDA_LOG_FORMAT=JSON reached the runtime: its log line is JSON we can read back.
    assert_eq!(
        invocations_logged(&function.logs(), &invocation.request_id),
        1
    );
    function.shutdown().await;
}

#[tokio::test]
async fn a_function_error_is_surfaced_with_its_error_type() {
    let function = start_fixture().await;

    let error = function
        .invoke(json!({"fail": true}))
        .await
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(error.error_type, "FixtureFailure");
    assert_eq!(error.error_message, "the event asked the fixture to fail");
    function.shutdown().await;
}

#[tokio::test]
async fn a_crash_is_a_runtime_exit_error_and_the_next_invocation_works() {
    let function = start_fixture().await;

    let crashed = function.invoke(json!({"crash": true})).await.unwrap();
    let error = crashed.result.unwrap_err();
    assert_eq!(error.error_type, "Runtime.ExitError");
    assert!(
        error.error_message.contains(&crashed.request_id)
            && error.error_message.contains("signal: aborted"),
        "{error:?}"
    );

    let after = function.invoke(json!({"n": 2})).await.unwrap();
    assert_eq!(after.result.unwrap()["echo"], json!({"n": 2}));
    function.shutdown().await;
}

#[tokio::test]
async fn an_invocation_past_its_timeout_fails_and_the_next_one_gets_a_fresh_process() {
    let spec = FunctionSpec {
        timeout: Duration::from_millis(500),
        ..fixture_spec()
    };
    let function = lambda::start(spec).await.unwrap();

    // Sleeps far longer than the timeout; only the harness's timeout can end it.
    let slow = function.invoke(json!({"sleep_ms": 600_000})).await.unwrap();
    assert_eq!(slow.result.unwrap_err().error_type, "Sandbox.Timedout");

    let after = function.invoke(json!({"n": 3})).await.unwrap();
    assert_eq!(after.result.unwrap()["echo"], json!({"n": 3}));
    function.shutdown().await;
}

#[tokio::test]
async fn an_async_failure_is_tried_three_times_then_recorded_in_the_destination_queue() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = sqs_client(moto.endpoint());
    let queue_url = create_queue(&sqs, "fixture-on-failure").await;
    let spec = FunctionSpec {
        on_failure: Some(OnFailureDestination::new(&queue_url, moto.endpoint())),
        async_retry_delays: [Duration::from_millis(10), Duration::from_millis(10)],
        ..fixture_spec()
    };
    let function = lambda::start(spec).await.unwrap();

    let event = json!({"fail": true, "order": 7});
    let invocation = function.invoke_async(event.clone()).await.unwrap();
    let request_id = invocation.request_id.clone();
    let outcome = invocation.outcome().await.unwrap();

    assert_eq!(outcome.attempts, 3);
    assert!(matches!(
        outcome.destination,
        DestinationOutcome::Delivered(_)
    ));
    // Counted independently of the harness: the function itself logged three invocations.
    assert_eq!(invocations_logged(&function.logs(), &request_id), 3);

    let records = receive_all(&sqs, &queue_url).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["version"], "1.0");
    assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(record["requestContext"]["requestId"], request_id.as_str());
    assert_eq!(
        record["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:fixture:$LATEST"
    );
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["requestPayload"], event);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    assert_eq!(record["responsePayload"]["errorType"], "FixtureFailure");
    assert_eq!(
        record["responsePayload"]["errorMessage"],
        "the event asked the fixture to fail"
    );
    function.shutdown().await;
}

#[tokio::test]
async fn an_async_success_runs_once_and_sends_nothing() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = sqs_client(moto.endpoint());
    let queue_url = create_queue(&sqs, "fixture-quiet").await;
    let spec = FunctionSpec {
        on_failure: Some(OnFailureDestination::new(&queue_url, moto.endpoint())),
        ..fixture_spec()
    };
    let function = lambda::start(spec).await.unwrap();

    let invocation = function.invoke_async(json!({"ok": true})).await.unwrap();
    let request_id = invocation.request_id.clone();
    let outcome = invocation.outcome().await.unwrap();

    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.destination, DestinationOutcome::NotNeeded);
    assert_eq!(invocations_logged(&function.logs(), &request_id), 1);
    assert!(receive_all(&sqs, &queue_url).await.is_empty());
    function.shutdown().await;
}

#[tokio::test]
async fn the_invoke_http_api_serves_sync_and_event_invocations() {
    let function = start_fixture().await;
    let server = invoke_api::serve(vec![function.clone()], "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = server.invocations_url("fixture");

    let ok = http.post(&url).json(&json!({"a": 1})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().get("x-amz-function-error").is_none());
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["echo"], json!({"a": 1}));

    let failed = http
        .post(&url)
        .json(&json!({"fail": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    assert_eq!(failed.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["errorType"], "FixtureFailure");

    let queued = http
        .post(&url)
        .header("X-Amz-Invocation-Type", "Event")
        .json(&json!({"b": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    let request_id = queued.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    // The 202 comes before the work; wait (bounded) until the function has logged it.
    let mut seen = 0;
    for _ in 0..200 {
        seen = invocations_logged(&function.logs(), &request_id);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1);

    let unknown = http
        .post(server.invocations_url("nope"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_error() {
    let spec = FunctionSpec::new("ghost", workspace::binary("no-such-function"));
    let error = lambda::start(spec).await.err().unwrap();
    assert!(
        error.to_string().contains("cargo build --workspace --bins"),
        "{error}"
    );
}

/// The demo's event path: codebuild-local POSTs each Build State Change event to the Invoke API,
/// asynchronously as EventBridge invokes its targets, and the function receives every one.
#[tokio::test]
async fn codebuild_local_events_reach_a_function_through_the_invoke_api() {
    let function = start_fixture().await;
    let server = invoke_api::serve(vec![function.clone()], "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let emulator = codebuild_local::serve(
        codebuild_local::Config {
            event_sink: Some(server.invocations_url("fixture")),
            ..codebuild_local::Config::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let call = |operation: &str, body: Value| {
        http.post(format!("{}/", emulator.endpoint()))
            .header("X-Amz-Target", format!("CodeBuild_20161006.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
    };
    let seeded = emulator
        .control()
        .seed_build(&codebuild_local::control::SeedBuild {
            project_name: "events".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Seeding emits nothing; a real start (IN_PROGRESS) and a stop (STOPPED) emit one event each.
    let started: Value = call("StartBuild", json!({"projectName": "events"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["build"]["id"].as_str().unwrap().to_owned();
    assert_ne!(seeded["id"].as_str(), Some(id.as_str()));
    let stopped = call("StopBuild", json!({"id": id})).await.unwrap();
    assert!(stopped.status().is_success());

    let delivered = |logs: &[LogLine]| {
        logs.iter()
            .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
            .filter(|line| {
                line["fields"]["marker"] == "fixture-invoked"
                    && line["fields"]["detail_type"] == "CodeBuild Build State Change"
            })
            .count()
    };
    // Bounded wait for the asynchronous deliveries (a deadline, not a timing assertion).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while delivered(&function.logs()) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered(&function.logs()), 2, "{:?}", function.logs());
    emulator.shutdown().await;
    server.shutdown().await;
}
