//! Auto-retry end to end (issue 4, "Done when"): the real `auto-retry` binary run through the
//! Lambda harness, CodeBuild played by `codebuild-local`, DynamoDB / SQS / SNS by moto.
//!
//! Each test starts its own emulator and one moto server shared by everything in that test.
//! Failed builds come from the emulator's control API; their `CodeBuild Build State Change`
//! events either reach the function the real way (the emulator's event sink → the harness's
//! Invoke API, asynchronously as EventBridge invokes) or are captured and delivered by the test,
//! where it needs to deliver one event several times, concurrently, or after a crash.
//!
//! Assertions count what the emulator's call log and build list say happened (retries made),
//! never how long anything took; waits are bounded loops on a condition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::local_services;
use autopilot::aws::DynamoRetryBook;
use autopilot::model::{BatchId, BuildId};
use autopilot::ports::RetryBook;
use codebuild_local::control::{ControlClient, FinishBuild, SeedBatch, SeedBatchBuild, SeedBuild};
use codebuild_local::faults::FaultSpec;
use codebuild_local::model::{PhaseContext, Status};
use codebuild_local::protocol::CallRecord;
use harness::event_capture::EventCapture;
use harness::lambda::{
    self, AsyncOutcome, DestinationOutcome, FunctionSpec, OnFailureDestination, RunningFunction,
    SqsSourceSpec, invoke_api,
};
use harness::moto::MotoServer;
use harness::stack::{self, PATIENCE, QueueWithDlq, Redrive};
use harness::workspace;
use serde_json::{Value, json};

/// The access key the function signs with; codebuild-local names it as the initiator of the
/// builds the function's `RetryBuild` makes, so it is also the "own initiator" glob.
const OWN_KEY: &str = "autopilot-auto-retry";
/// Every CodeBuild operation that changes something.
const MUTATING: [&str; 6] = [
    "RetryBuild",
    "RetryBuildBatch",
    "StartBuild",
    "StartBuildBatch",
    "StopBuild",
    "StopBuildBatch",
];

/// One configuration for every test; each test uses its own projects.
const CONFIG: &str = r#"
[account]
hourly_retry_limit = 1000

[defaults.retry]
backoff_seconds = 0
hourly_budget = 1000

[[projects]]
name = "web"
[projects.retry]
max_retries = 2

[[projects]]
name = "dry"
dry_run = true

[[projects]]
name = "slow"
[projects.retry]
backoff_seconds = 1

[[projects]]
name = "*"
"#;

// ---------------------------------------------------------------------------------------------
// The stack

/// The emulator, moto with the function's AWS resources, and the event capture.
struct Stack {
    moto: MotoServer,
    emulator: codebuild_local::Server,
    capture: EventCapture,
    codebuild: aws_sdk_codebuild::Client,
    sqs: aws_sdk_sqs::Client,
    table: String,
    delay_queue: String,
    on_failure_queue: String,
    topic_arn: String,
    gave_up_inbox: String,
    _config: tempfile::NamedTempFile,
    config_uri: String,
}

impl Stack {
    async fn start() -> Stack {
        let capture = EventCapture::start().await.unwrap();
        let emulator = local_services::codebuild_local_with(codebuild_local::Config {
            event_sink: Some(capture.url().to_owned()),
            ..codebuild_local::Config::default()
        })
        .await;
        let (moto, sdk) = local_services::moto_with_ledger().await;
        let table = local_services::LEDGER_TABLE.to_owned();

        let sqs = aws_sdk_sqs::Client::new(&sdk);
        // A short visibility timeout so a message the function reports failed comes back soon.
        let QueueWithDlq {
            queue: delay_queue, ..
        } = stack::create_queue_with_dlq(
            &sqs,
            "autopilot-delay",
            Redrive {
                visibility_seconds: 2,
                max_receive_count: 5,
            },
        )
        .await
        .unwrap();
        let on_failure_queue = stack::create_queue(&sqs, "autopilot-dlq", &[])
            .await
            .unwrap();

        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic_arn = sns
            .create_topic()
            .name("autopilot-gave-up")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_owned();
        let gave_up_inbox = stack::create_queue(&sqs, "gave-up-inbox", &[])
            .await
            .unwrap();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(stack::queue_arn(&sqs, &gave_up_inbox).await.unwrap())
            .send()
            .await
            .unwrap();

        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), CONFIG).unwrap();
        let config_uri = format!("file:{}", config.path().display());

        let codebuild = aws_sdk_codebuild::Client::from_conf(
            aws_sdk_codebuild::Config::builder()
                .behavior_version(aws_sdk_codebuild::config::BehaviorVersion::latest())
                .endpoint_url(emulator.endpoint())
                .region(aws_sdk_codebuild::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_codebuild::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .build(),
        );
        Stack {
            moto,
            emulator,
            capture,
            codebuild,
            sqs,
            table,
            delay_queue,
            on_failure_queue,
            topic_arn,
            gave_up_inbox,
            _config: config,
            config_uri,
        }
    }

    fn control(&self) -> ControlClient {
        self.emulator.control()
    }

    /// The function as the template deploys it, pointed at this stack.
    fn spec(&self, name: &str) -> FunctionSpec {
        let env = [
            ("AWS_ENDPOINT_URL", self.moto.endpoint().to_owned()),
            ("AWS_ENDPOINT_URL_CODEBUILD", self.emulator.endpoint()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", OWN_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AUTOPILOT_CONFIG_URI", self.config_uri.clone()),
            ("AUTOPILOT_CONFIG_TTL_SECONDS", "60".to_owned()),
            ("AUTOPILOT_PROJECT_PATTERNS", "*".to_owned()),
            ("AUTOPILOT_LEDGER_TABLE", self.table.clone()),
            ("AUTOPILOT_DELAY_QUEUE_URL", self.delay_queue.clone()),
            ("AUTOPILOT_GAVE_UP_TOPIC_ARN", self.topic_arn.clone()),
            ("AUTOPILOT_OWN_INITIATOR", OWN_KEY.to_owned()),
            ("AUTOPILOT_BATCH_RECHECK_SECONDS", "1".to_owned()),
            ("AUTOPILOT_BATCH_MAX_RECHECKS", "30".to_owned()),
        ];
        let binary = workspace::binary("auto-retry");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (make test does)",
            binary.display()
        );
        let mut spec = FunctionSpec {
            on_failure: Some(OnFailureDestination::new(
                &self.on_failure_queue,
                self.moto.endpoint(),
            )),
            // Lambda waits minutes between its retries of a failed async event; a second here.
            async_retry_delays: [Duration::from_secs(1), Duration::from_secs(1)],
            ..FunctionSpec::new(name, binary)
        };
        for (key, value) in env {
            spec = spec.with_env(key, value);
        }
        spec
    }

    async fn function(&self) -> RunningFunction {
        lambda::start(self.spec("auto-retry")).await.unwrap()
    }

    /// Starts a build of `project` (as a person would), fails it with `finish` and returns its
    /// id and the FAILED event EventBridge would deliver.
    async fn failed_build(&self, project: &str, finish: &FinishBuild) -> (String, Value) {
        let id = self.running_build(project).await;
        self.control().finish_build(&id, finish).await.unwrap();
        let event = self
            .capture
            .build_event(&id, finish.build_status.as_str())
            .await
            .expect("the emulator emits the failure");
        (id, event)
    }

    async fn running_build(&self, project: &str) -> String {
        let seeded = self
            .control()
            .seed_build(&SeedBuild {
                project_name: project.into(),
                current_phase: Some("BUILD".into()),
                ..SeedBuild::default()
            })
            .await
            .unwrap();
        seeded["id"].as_str().unwrap().to_owned()
    }

    async fn calls(&self) -> Vec<CallRecord> {
        self.control().calls().await.unwrap()
    }

    /// The `RetryBuild` calls CodeBuild answered (not the injected faults), in order.
    async fn retry_build_calls(&self) -> Vec<CallRecord> {
        answered(&self.calls().await, "RetryBuild")
    }

    /// Every build of `project`, oldest first.
    async fn builds_of(&self, project: &str) -> Vec<String> {
        let mut ids = self
            .codebuild
            .list_builds_for_project()
            .project_name(project)
            .send()
            .await
            .unwrap()
            .ids
            .unwrap_or_default();
        ids.reverse();
        ids
    }

    async fn builds(&self, ids: &[String]) -> Vec<aws_sdk_codebuild::types::Build> {
        self.codebuild
            .batch_get_builds()
            .set_ids(Some(ids.to_vec()))
            .send()
            .await
            .unwrap()
            .builds
            .unwrap_or_default()
    }

    /// The "gave up" notices that reached the topic's SQS subscription (SNS envelopes opened).
    async fn gave_up_notices(&self, at_least: usize) -> Vec<Value> {
        let envelopes = receive(&self.sqs, &self.gave_up_inbox, at_least).await;
        envelopes
            .iter()
            .map(|envelope| serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap())
            .collect()
    }

    /// The on-failure records of async invocations that failed for good.
    async fn dead_letters(&self, at_least: usize) -> Vec<Value> {
        receive(&self.sqs, &self.on_failure_queue, at_least).await
    }

    async fn stop(self) {
        self.emulator.shutdown().await;
        self.capture.stop().await;
    }
}

fn aws_sdk_dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// Receives (and deletes) until `at_least` messages came and the queue is empty, or
/// [`PATIENCE`] ran out. Returns the bodies as JSON.
async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str, at_least: usize) -> Vec<Value> {
    stack::take_messages(sqs, queue_url, at_least)
        .await
        .unwrap()
        .iter()
        .map(|body| serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
        .collect()
}

fn answered(calls: &[CallRecord], operation: &str) -> Vec<CallRecord> {
    calls
        .iter()
        .filter(|call| call.operation == operation && call.fault.is_none())
        .cloned()
        .collect()
}

fn mutating(calls: &[CallRecord]) -> Vec<&CallRecord> {
    calls
        .iter()
        .filter(|call| MUTATING.contains(&call.operation.as_str()))
        .collect()
}

/// Failed while pulling the image: Docker Hub's rate limit (row 5 of the phase-context catalogue).
fn rate_limited() -> FinishBuild {
    FinishBuild {
        build_status: Status::Failed,
        phase_type: Some("PROVISIONING".into()),
        contexts: vec![PhaseContext {
            status_code: "BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE".into(),
            message: "Unable to pull customer's container image. CannotPullContainerError: \
                      error pulling image configuration: toomanyrequests: Too Many Requests. \
                      Please see https://docs.docker.com/docker-hub/download-rate-limit/"
                .into(),
        }],
    }
}

/// The tests failed: a buildspec command exited with 1.
fn tests_failed() -> FinishBuild {
    FinishBuild {
        build_status: Status::Failed,
        phase_type: Some("BUILD".into()),
        contexts: vec![PhaseContext {
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "Error while executing command: npm test. Reason: exit status 1".into(),
        }],
    }
}

/// The function's decision log lines (their `fields`), in order.
fn decisions(function: &RunningFunction) -> Vec<Value> {
    function
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
        .filter(|line| line["fields"]["message"] == "auto-retry decision")
        .map(|line| line["fields"].clone())
        .collect()
}

/// The decisions about build `id` (`project:uuid`).
fn decisions_on(function: &RunningFunction, id: &str) -> Vec<Value> {
    decisions(function)
        .into_iter()
        .filter(|fields| fields["build_id"] == id)
        .collect()
}

/// Waits (bounded) until the function logged a decision on the failure of `id` with one of
/// `actions` (decisions on the build's other state changes, such as its start, do not count).
async fn decided(function: &RunningFunction, id: &str, actions: &[&str]) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = decisions_on(function, id).into_iter().find(|fields| {
            fields["class"] != "not_a_failure"
                && actions.iter().any(|action| fields["action"] == *action)
        }) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {actions:?} decision on {id}; logs: {:#?}",
            function.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliver(function: &RunningFunction, event: &Value) -> AsyncOutcome {
    function
        .invoke_async(event.clone())
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap()
}

/// The id (`project:uuid`) of a build ARN or id.
fn id_of(arn_or_id: &str) -> String {
    BuildId::parse(arn_or_id).unwrap().id()
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The headline, through the real event path (emulator → Invoke API, async): a rate-limited
/// build is retried once with a token; its retry failing again is retried again; the third
/// failure reaches the cap (max_retries 2 → 3 builds) and "gave up" names the root.
#[tokio::test]
async fn a_transient_failure_is_retried_up_to_the_cap_then_gave_up_names_the_root() {
    let stack = Stack::start().await;
    let function = stack.function().await;
    let invoke = invoke_api::serve(vec![function.clone()], "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    stack
        .control()
        .set_event_sink(Some(&invoke.invocations_url("auto-retry")))
        .await
        .unwrap();

    let root = stack.running_build("web").await;
    stack
        .control()
        .finish_build(&root, &rate_limited())
        .await
        .unwrap();
    let first = decided(&function, &root, &["retry", "give_up", "skip"]).await;
    assert_eq!(first["action"], "retry", "{first}");
    assert_eq!(first["reason"], "rate_limited");
    assert_eq!(first["class"], "transient");
    assert_eq!(first["attempt"], 1);

    let calls = stack.retry_build_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(id_of(calls[0].params["id"].as_str().unwrap()), root);
    let first_token = calls[0].params["idempotencyToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!first_token.is_empty());
    let retry1 = first["retry_id"].as_str().unwrap().to_owned();

    stack
        .control()
        .finish_build(&retry1, &rate_limited())
        .await
        .unwrap();
    let second = decided(&function, &retry1, &["retry", "give_up", "skip"]).await;
    assert_eq!(second["action"], "retry", "{second}");
    assert_eq!(second["attempt"], 2);
    let retry2 = second["retry_id"].as_str().unwrap().to_owned();
    let calls = stack.retry_build_calls().await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(id_of(calls[1].params["id"].as_str().unwrap()), retry1);
    assert_ne!(calls[1].params["idempotencyToken"], first_token.as_str());

    stack
        .control()
        .finish_build(&retry2, &rate_limited())
        .await
        .unwrap();
    let third = decided(&function, &retry2, &["retry", "give_up", "skip"]).await;
    assert_eq!(third["action"], "give_up", "{third}");

    let notices = stack.gave_up_notices(1).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(id_of(notices[0]["root_build"].as_str().unwrap()), root);
    assert_eq!(id_of(notices[0]["last_build"].as_str().unwrap()), retry2);
    assert_eq!(notices[0]["attempts"], 2);
    assert_eq!(notices[0]["project"], "web");
    // Three builds in the chain, no fourth, and the retries were made by the function's role.
    assert_eq!(stack.retry_build_calls().await.len(), 2);
    let chain = stack.builds_of("web").await;
    assert_eq!(chain, [root.clone(), retry1.clone(), retry2.clone()]);
    let made = stack.builds(&chain[1..]).await;
    assert!(
        made.iter().all(|build| build.initiator() == Some(OWN_KEY)),
        "{made:?}"
    );
    // The lineage is queryable: which build retried which, back to the root.
    let book = DynamoRetryBook::new(
        aws_sdk_dynamodb_client(&stack.moto.sdk_config().await),
        &stack.table,
    );
    let link = book
        .lineage_of(&BuildId::parse(&retry2).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (link.parent.id(), link.root.id(), link.attempt),
        (retry1.clone(), root.clone(), 2)
    );
    let by = book
        .retried_by(&BuildId::parse(&root).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by.build.id(), retry1);

    invoke.shutdown().await;
    stack.stop().await;
}

/// A test failure is never retried; a build CodeBuild retries itself (`autoRetryLimit`) is left
/// to CodeBuild; a dry-run project logs what it would do. None of them makes a mutating call.
#[tokio::test]
async fn test_failures_native_auto_retry_and_dry_run_make_no_mutating_call() {
    let stack = Stack::start().await;
    let function = stack.function().await;

    let (failed_tests, event) = stack.failed_build("api", &tests_failed()).await;
    assert!(deliver(&function, &event).await.result.is_ok());
    let decision = decided(&function, &failed_tests, &["skip", "retry"]).await;
    assert_eq!(
        (decision["action"].as_str(), decision["class"].as_str()),
        (Some("skip"), Some("permanent")),
        "{decision}"
    );

    // A project with CodeBuild's own auto-retry (created the way a person would).
    let created = reqwest::Client::new()
        .post(format!("{}/", stack.emulator.endpoint()))
        .header("X-Amz-Target", "CodeBuild_20161006.CreateProject")
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(
            json!({
                "name": "native",
                "source": {"type": "NO_SOURCE", "buildspec": "version: 0.2"},
                "artifacts": {"type": "NO_ARTIFACTS"},
                "environment": {"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                                "computeType": "BUILD_GENERAL1_SMALL"},
                "serviceRole": "arn:aws:iam::123456789012:role/codebuild",
                "autoRetryLimit": 2
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let (native, event) = stack.failed_build("native", &rate_limited()).await;
    assert!(deliver(&function, &event).await.result.is_ok());
    let decision = decided(&function, &native, &["skip", "retry"]).await;
    assert_eq!(
        (decision["action"].as_str(), decision["reason"].as_str()),
        (Some("skip"), Some("native_auto_retry")),
        "{decision}"
    );

    let (dry, event) = stack.failed_build("dry", &rate_limited()).await;
    assert!(deliver(&function, &event).await.result.is_ok());
    let decision = decided(&function, &dry, &["dry_run", "retry"]).await;
    assert_eq!(decision["action"], "dry_run", "{decision}");
    assert_eq!(decision["would"], "retry");
    assert_eq!(decision["dry_run"], true);

    let calls = stack.calls().await;
    assert!(mutating(&calls).is_empty(), "{calls:?}");
    // CodeBuild's own retry of the native build exists (the emulator made it, not us).
    assert_eq!(stack.builds_of("native").await.len(), 2);
    stack.stop().await;
}

/// Five deliveries of one event at once, each in its own execution environment (as Lambda
/// scales out) → one `RetryBuild`; the same event again after 10 simulated minutes, past
/// CodeBuild's token window → still one: the ledger remembers.
#[tokio::test]
async fn the_same_event_five_times_at_once_and_again_later_makes_one_retry() {
    let stack = Stack::start().await;
    let (root, event) = stack.failed_build("web", &rate_limited()).await;
    let functions = stack::start_environments(5, |n| stack.spec(&format!("auto-retry-{n}")))
        .await
        .unwrap();

    let mut invocations = Vec::new();
    for function in &functions {
        invocations.push(function.invoke_async(event.clone()).await.unwrap());
    }
    let mut outcomes = Vec::new();
    for invocation in invocations {
        outcomes.push(invocation.outcome().await.unwrap());
    }
    for outcome in &outcomes {
        // Each delivery ends handled or kept in the DLQ (a claim held the whole time), never lost.
        assert!(
            outcome.result.is_ok()
                || matches!(outcome.destination, DestinationOutcome::Delivered(_)),
            "{outcome:?}"
        );
    }
    let calls = stack.retry_build_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(stack.builds_of("web").await.len(), 2);
    let retried: usize = functions
        .iter()
        .map(|function| {
            decisions_on(function, &root)
                .iter()
                .filter(|d| d["action"] == "retry")
                .count()
        })
        .sum();
    assert_eq!(retried, 1);

    stack.control().advance_clock(600).await.unwrap();
    let later = deliver(&functions[0], &event).await;
    assert_eq!(
        later.result.as_ref().unwrap()["action"],
        "duplicate",
        "{later:?}"
    );
    assert_eq!(stack.retry_build_calls().await.len(), 1);
    assert_eq!(stack.builds_of("web").await.len(), 2);

    stack::shutdown_all(functions).await;
    stack.stop().await;
}

/// Crashes at `failpoint`, then redelivers the event to a healthy function until it is handled
/// (the crashed claim's lease has to run out first). Returns (root, redelivered function).
async fn crash_then_redeliver(stack: &Stack, failpoint: &str) -> (String, RunningFunction) {
    let (root, event) = stack.failed_build("web", &rate_limited()).await;
    // A short timeout makes a short lease (the invocation's remaining time).
    let short = |spec: FunctionSpec| FunctionSpec {
        timeout: Duration::from_secs(4),
        ..spec
    };
    let crashing =
        lambda::start(short(stack.spec("auto-retry")).with_env("AUTOPILOT_FAILPOINT", failpoint))
            .await
            .unwrap();
    let crashed = crashing.invoke(event.clone()).await.unwrap();
    assert_eq!(
        crashed.result.unwrap_err().error_type,
        "Runtime.ExitError",
        "the failpoint {failpoint} crashes the function"
    );
    crashing.shutdown().await;

    let healthy = lambda::start(short(stack.spec("auto-retry")))
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let again = healthy.invoke(event.clone()).await.unwrap();
        match again.result {
            Ok(answer) => {
                assert_eq!(answer["action"], "retry", "{answer}");
                break;
            }
            // The crashed invocation's claim is still leased: come back, as Lambda's retry would.
            Err(error) => assert!(
                Instant::now() < deadline && error.error_message.contains("claim"),
                "{error:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (root, healthy)
}

#[tokio::test]
async fn a_crash_between_the_claim_and_retry_build_then_redelivery_makes_one_retry() {
    let stack = Stack::start().await;
    let (root, healthy) = crash_then_redeliver(&stack, "auto-retry:after-claim").await;

    let calls = stack.retry_build_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(id_of(calls[0].params["id"].as_str().unwrap()), root);
    assert_eq!(stack.builds_of("web").await.len(), 2);
    healthy.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_crash_between_retry_build_and_the_record_then_redelivery_makes_one_retry() {
    let stack = Stack::start().await;
    let (_, healthy) = crash_then_redeliver(&stack, "auto-retry:after-retry-build").await;

    // The redelivery called RetryBuild again with the same token, and CodeBuild answered with
    // the build the crashed call made: one retry.
    let calls = stack.retry_build_calls().await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].params, calls[1].params);
    assert_eq!(stack.builds_of("web").await.len(), 2);
    healthy.shutdown().await;
    stack.stop().await;
}

/// Fail closed: with DynamoDB unreachable no `RetryBuild` is made at all, and the event, after
/// Lambda's two retries, is kept in the on-failure queue for a later replay.
#[tokio::test]
async fn with_the_ledger_unavailable_nothing_is_retried_and_the_event_is_kept() {
    let stack = Stack::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        listener.local_addr().unwrap().port()
    };
    let spec = stack.spec("auto-retry").with_env(
        "AWS_ENDPOINT_URL_DYNAMODB",
        format!("http://127.0.0.1:{closed}"),
    );
    let function = lambda::start(spec).await.unwrap();
    let (_, event) = stack.failed_build("web", &rate_limited()).await;

    let outcome = deliver(&function, &event).await;
    assert_eq!(outcome.attempts, 3, "{outcome:?}");
    assert!(
        matches!(outcome.destination, DestinationOutcome::Delivered(_)),
        "{outcome:?}"
    );
    let kept = stack.dead_letters(1).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["requestPayload"], event);
    assert_eq!(kept[0]["requestContext"]["condition"], "RetriesExhausted");

    let calls = stack.calls().await;
    assert!(mutating(&calls).is_empty(), "{calls:?}");
    function.shutdown().await;
    stack.stop().await;
}

/// Half of all CodeBuild calls throttled: every failed build ends retried exactly once or with
/// its event in the dead-letter queue; none is lost, none is retried twice.
#[tokio::test]
async fn half_the_codebuild_calls_throttled_loses_no_event() {
    const BUILDS: usize = 4;
    let stack = Stack::start().await;
    // Two execution environments, as Lambda runs concurrent events side by side.
    let functions = [
        lambda::start(stack.spec("auto-retry-a")).await.unwrap(),
        lambda::start(stack.spec("auto-retry-b")).await.unwrap(),
    ];
    let mut failed = Vec::new();
    for n in 0..BUILDS {
        // One project per build, so each build's retries are its project's other builds.
        failed.push(
            stack
                .failed_build(&format!("flaky-{n}"), &rate_limited())
                .await,
        );
    }
    stack
        .control()
        .set_faults(&FaultSpec {
            throttle_fraction: Some(0.5),
            ..FaultSpec::default()
        })
        .await
        .unwrap();

    let mut invocations = Vec::new();
    for (n, (_, event)) in failed.iter().enumerate() {
        let function = &functions[n % functions.len()];
        invocations.push(function.invoke_async(event.clone()).await.unwrap());
    }
    for invocation in invocations {
        invocation.outcome().await.unwrap();
    }
    stack.control().clear_faults().await.unwrap();
    let throttled = stack
        .calls()
        .await
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    assert!(throttled > 0, "the faults were injected");

    let dead: Vec<String> = stack
        .dead_letters(0)
        .await
        .iter()
        .map(|record| {
            id_of(
                record["requestPayload"]["detail"]["build-id"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    for (n, (id, _)) in failed.iter().enumerate() {
        let retries = stack.builds_of(&format!("flaky-{n}")).await.len() - 1;
        let kept = dead.iter().filter(|d| *d == id).count();
        assert!(
            (retries, kept) == (1, 0) || (retries, kept) == (0, 1),
            "{id}: {retries} retries, {kept} dead letters"
        );
    }
    stack::shutdown_all(functions).await;
    stack.stop().await;
}

/// A backoff is never a sleep: the decision goes to the delay queue and the retry is made when
/// the message comes back through the queue's event source mapping.
#[tokio::test]
async fn a_backoff_goes_through_the_delay_queue() {
    let stack = Stack::start().await;
    let function = stack.function().await;
    let source = lambda::sqs_source::start(
        SqsSourceSpec::new(&stack.delay_queue, stack.moto.endpoint()),
        function.clone(),
    )
    .await
    .unwrap();
    let (root, event) = stack.failed_build("slow", &rate_limited()).await;

    let first = function.invoke(event).await.unwrap().result.unwrap();
    assert_eq!(first["action"], "delay", "{first}");
    assert_eq!(first["would"], "retry");
    // The decision alone made no call; the delayed message does.
    assert!(stack.retry_build_calls().await.is_empty());

    let retried = decided(&function, &root, &["retry"]).await;
    assert_eq!(retried["attempt"], 1);
    let calls = stack.retry_build_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    // The source deletes the message after the invocation that logged the decision returns:
    // wait for that rather than race it.
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        while source.stats().deleted == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(deleted.is_ok(), "{:?}", source.stats());
    source.stop().await;
    function.shutdown().await;
    stack.stop().await;
}

/// A batch member fails while the batch still runs: the function re-checks through the delay
/// queue (1 s) and, once the batch has failed, retries it in place exactly once, failed builds
/// only. Events take the real path (emulator → Invoke API).
#[tokio::test]
async fn a_member_failing_in_a_running_batch_makes_one_batch_retry_after_the_batch_failed() {
    let stack = Stack::start().await;
    let function = stack.function().await;
    let invoke = invoke_api::serve(vec![function.clone()], "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    stack
        .control()
        .set_event_sink(Some(&invoke.invocations_url("auto-retry")))
        .await
        .unwrap();
    let source = lambda::sqs_source::start(
        SqsSourceSpec::new(&stack.delay_queue, stack.moto.endpoint()),
        function.clone(),
    )
    .await
    .unwrap();

    let batch = stack
        .control()
        .seed_batch(&SeedBatch {
            project_name: "pipeline".into(),
            builds: Some(vec![SeedBatchBuild::default(), SeedBatchBuild::default()]),
            ..SeedBatch::default()
        })
        .await
        .unwrap();
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    let members: Vec<String> = batch["buildGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| id_of(group["currentBuildSummary"]["arn"].as_str().unwrap()))
        .collect();

    stack
        .control()
        .finish_build(&members[0], &rate_limited())
        .await
        .unwrap();
    let waiting = decided(&function, &members[0], &["delay", "retry", "skip"]).await;
    assert_eq!(
        waiting["action"], "delay",
        "the batch still runs: {waiting}"
    );
    assert!(answered(&stack.calls().await, "RetryBuildBatch").is_empty());

    let mut finish_ok = tests_failed();
    finish_ok.build_status = Status::Succeeded;
    finish_ok.contexts.clear();
    stack
        .control()
        .finish_build(&members[1], &finish_ok)
        .await
        .unwrap();

    stack::eventually("the batch is retried", || async {
        !answered(&stack.calls().await, "RetryBuildBatch").is_empty()
    })
    .await
    .unwrap();
    let retried = decided(&function, &members[0], &["retry"]).await;
    assert_eq!(retried["batch_id"], batch_id.as_str());
    // Let the queue drain: no re-check left that could retry a second time.
    stack::eventually("the delay queue is drained", || async {
        let stats = source.stats();
        stats.received == stats.deleted + stats.returned
            && stack::queue_is_empty(&stack.sqs, &stack.delay_queue)
                .await
                .unwrap()
    })
    .await
    .unwrap();
    let calls = answered(&stack.calls().await, "RetryBuildBatch");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].params["retryType"], "RETRY_FAILED_BUILDS");
    assert!(
        calls[0].params["idempotencyToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let retried_batch = BatchId::parse(calls[0].params["id"].as_str().unwrap()).unwrap();
    assert_eq!(retried_batch.id(), batch_id);
    assert!(answered(&stack.calls().await, "RetryBuild").is_empty());

    source.stop().await;
    invoke.shutdown().await;
    stack.stop().await;
}
