//! The Lambda harness itself, driven with the `fixture-fn` binary: synchronous and asynchronous
//! invocations, errors, crashes, timeouts, the on-failure destination (moto's SQS) and the Invoke
//! HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::local_services;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use harness::lambda::{
    self, DestinationOutcome, FunctionSpec, LogLine, OnFailureDestination, RunningFunction,
    SqsSourceSpec, invoke_api,
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
    let emulator = local_services::codebuild_local_with(codebuild_local::Config {
        event_sink: Some(server.invocations_url("fixture")),
        ..codebuild_local::Config::default()
    })
    .await;
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

/// A queue whose messages come back 1 s after a failed delivery and go to a fresh dead-letter
/// queue on their second failure. Returns (queue URL, DLQ URL).
async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = create_queue(sqs, &format!("{name}-dlq")).await;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    (queue, dlq)
}

async fn send_bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str, bodies: &[Value]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
}

/// Receives from `queue_url` until `count` messages arrived or a generous deadline passed
/// (a bound on a wait, not a timing assertion); returns their bodies.
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str, count: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while bodies.len() < count && std::time::Instant::now() < deadline {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            bodies.push(serde_json::from_str(message.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    bodies
}

/// The records the fixture logged, as (body, ApproximateReceiveCount).
fn records_logged(logs: &[LogLine]) -> Vec<(Value, String)> {
    logs.iter()
        .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
        .filter(|line| line["fields"]["marker"] == "fixture-record")
        .map(|line| {
            let body = serde_json::from_str(line["fields"]["body"].as_str().unwrap()).unwrap();
            let count = line["fields"]["receive_count"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            (body, count)
        })
        .collect()
}

/// An SQS event source: a batch is handed over in Lambda's SQS event shape; the processed
/// messages are deleted, the one the function reports in `batchItemFailures` comes back after
/// the visibility timeout and, failing again, ends in the queue's dead-letter queue.
#[tokio::test]
async fn the_sqs_source_deletes_processed_messages_and_returns_reported_failures() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = sqs_client(moto.endpoint());
    let (queue, dlq) = queue_with_dlq(&sqs, "fixture-source").await;
    // Sent before the poller starts, so they arrive as one batch.
    send_bodies(
        &sqs,
        &queue,
        &[json!({"n": 1}), json!({"fail": true}), json!({"n": 3})],
    )
    .await;
    let function = start_fixture().await;
    let source = lambda::sqs_source::start(
        SqsSourceSpec::new(&queue, moto.endpoint()),
        function.clone(),
    )
    .await
    .unwrap();

    let dead = drain(&sqs, &dlq, 1).await;
    assert_eq!(dead, [json!({"fail": true})]);
    let stats = source.stats();
    assert_eq!(stats.deleted, 2, "{stats:?}");
    assert_eq!(
        stats.returned, 2,
        "first and second delivery of the failure: {stats:?}"
    );
    assert_eq!(stats.failed_invocations, 0, "{stats:?}");

    let records = records_logged(&function.logs());
    let deliveries = |body: Value| {
        records
            .iter()
            .filter(|(logged, _)| *logged == body)
            .map(|(_, count)| count.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(deliveries(json!({"n": 1})), ["1"]);
    assert_eq!(deliveries(json!({"n": 3})), ["1"]);
    assert_eq!(deliveries(json!({"fail": true})), ["1", "2"]);

    assert!(receive_all(&sqs, &queue).await.is_empty());
    source.stop().await;
    function.shutdown().await;
}

/// A response Lambda cannot read (an item id not in the batch) or a crash fails the whole
/// batch: nothing is deleted, every message comes back and finally goes to the DLQ.
#[tokio::test]
async fn the_sqs_source_returns_the_whole_batch_after_a_crash_or_an_unreadable_response() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = sqs_client(moto.endpoint());
    let function = start_fixture().await;

    for (name, poison) in [
        ("fixture-misreport", json!({"misreport": true})),
        ("fixture-crash", json!({"crash": true})),
    ] {
        let (queue, dlq) = queue_with_dlq(&sqs, name).await;
        send_bodies(&sqs, &queue, &[json!({"n": 1}), poison.clone()]).await;
        let source = lambda::sqs_source::start(
            SqsSourceSpec::new(&queue, moto.endpoint()),
            function.clone(),
        )
        .await
        .unwrap();

        let mut dead = drain(&sqs, &dlq, 2).await;
        dead.sort_by_key(|body| body.to_string());
        let mut expected = vec![json!({"n": 1}), poison.clone()];
        expected.sort_by_key(|body| body.to_string());
        assert_eq!(dead, expected, "{name}");
        let stats = source.stats();
        assert_eq!(stats.deleted, 0, "{name}: {stats:?}");
        assert_eq!(stats.failed_invocations, 2, "{name}: {stats:?}");
        source.stop().await;
    }
    function.shutdown().await;
}

#[tokio::test]
async fn an_sqs_source_on_a_missing_queue_is_a_clear_error() {
    let moto = MotoServer::start().await.unwrap();
    let function = start_fixture().await;
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let error = lambda::sqs_source::start(
        SqsSourceSpec::new(&missing, moto.endpoint()),
        function.clone(),
    )
    .await
    .err()
    .unwrap();
    assert!(error.to_string().contains("no-such-queue"), "{error}");
    function.shutdown().await;
}
