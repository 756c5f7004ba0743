//! EventBridge triggers end to end (issue 7, "Done when"): the real `batch-trigger` binary
//! invoked through the Lambda harness the way EventBridge invokes it (asynchronously: two
//! retries after a failure, then the on-failure destination), CodeBuild played by an in-process
//! `codebuild-local`, the ledger by moto's DynamoDB and the dead-letter queue by moto's SQS.
//!
//! The events are the samples in `infra/events/` (a custom event as `put-events` delivers it,
//! and what the template's schedule rule makes of a tick), edited per case.
//!
//! Assertions count what codebuild-local's call log and batch list say happened, and read the
//! function's answer and its decision lines; never how long anything took.
//! "An event on the default bus starts nothing" is `tests/event_pattern/test_trigger_bus.py`
//! (the template's rules in moto's EventBridge).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::local_services;
use autopilot::idempotency::IdempotencyKey;
use codebuild_local::control::ControlClient;
use codebuild_local::faults::FaultSpec;
use codebuild_local::protocol::CallRecord;
use harness::lambda::{
    self, AsyncOutcome, DestinationOutcome, FunctionSpec, OnFailureDestination, RunningFunction,
};
use harness::moto::MotoServer;
use harness::stack::{self, CodeBuildCli};
use harness::workspace;
use serde_json::{Value, json};

/// The access key the function signs with: codebuild-local names it as the initiator.
const TRIGGER_KEY: &str = "autopilot-batch-trigger";

/// `web` lets triggers set its version, `DEPLOY_*` variables and a timeout, not its buildspec;
/// `nightly` keeps the defaults (source version only); `quiet` is in dry run. `legacy` exists
/// in CodeBuild but is not configured; `ghost` is configured but does not exist in CodeBuild.
const CONFIG: &str = r#"
[[projects]]
name = "web"
[projects.start]
allowed_overrides = ["source_version", "environment_variables", "timeout"]
environment_variable_names = ["DEPLOY_*"]
max_timeout_minutes = 120

[[projects]]
name = "nightly"

[[projects]]
name = "quiet"
dry_run = true

[[projects]]
name = "ghost"
"#;

const PROJECTS: [&str; 4] = ["web", "nightly", "quiet", "legacy"];

fn sample(name: &str) -> Value {
    let path = workspace::root().join("infra/events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The sample custom event (`web`, with overrides) under a new event id.
fn custom_event() -> Value {
    with_id(sample("batch-trigger-custom.json"))
}

/// The sample transformed schedule tick for `project`, under a new event id.
fn scheduled_event(project: &str) -> Value {
    let mut event = with_id(sample("batch-trigger-scheduled.json"));
    event["detail"]["project"] = json!(project);
    event
}

fn with_id(mut event: Value) -> Value {
    event["id"] = json!(uuid::Uuid::new_v4().to_string());
    event
}

struct Stack {
    moto: MotoServer,
    emulator: codebuild_local::Server,
    cli: CodeBuildCli,
    sqs: aws_sdk_sqs::Client,
    dlq: String,
    _config: tempfile::NamedTempFile,
    env: Vec<(&'static str, String)>,
}

impl Stack {
    async fn start() -> Stack {
        let emulator = local_services::codebuild_local().await;
        let (moto, sdk) = local_services::moto_with_ledger().await;
        let table = local_services::LEDGER_TABLE;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let dlq = stack::create_queue(&sqs, "autopilot-trigger-dlq", &[])
            .await
            .unwrap();
        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), CONFIG).unwrap();
        let env = vec![
            ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
            ("AWS_ENDPOINT_URL_CODEBUILD", emulator.endpoint()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", TRIGGER_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            (
                "AUTOPILOT_CONFIG_URI",
                format!("file:{}", config.path().display()),
            ),
            ("AUTOPILOT_CONFIG_TTL_SECONDS", "60".to_owned()),
            ("AUTOPILOT_PROJECT_PATTERNS", "*".to_owned()),
            ("AUTOPILOT_LEDGER_TABLE", table.to_owned()),
            ("AUTOPILOT_DRY_RUN", "false".to_owned()),
        ];
        let cli = CodeBuildCli::new(emulator.endpoint());
        cli.create_projects(PROJECTS).await.unwrap();
        emulator.control().clear_calls().await.unwrap();
        Stack {
            moto,
            emulator,
            cli,
            sqs,
            dlq,
            _config: config,
            env,
        }
    }

    /// The function as the template deploys it, with `extra` settings on top; failed
    /// asynchronous invocations go to the stack's dead-letter queue.
    async fn function(&self, extra: &[(&'static str, &str)]) -> RunningFunction {
        let binary = workspace::binary("batch-trigger");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build -p batch-trigger` first",
            binary.display()
        );
        let mut spec = FunctionSpec {
            timeout: Duration::from_secs(30),
            on_failure: Some(OnFailureDestination::new(&self.dlq, self.moto.endpoint())),
            ..FunctionSpec::new("batch-trigger", binary)
        };
        for (key, value) in &self.env {
            spec = spec.with_env(*key, value);
        }
        for (key, value) in extra {
            spec = spec.with_env(*key, *value);
        }
        lambda::start(spec).await.unwrap()
    }

    fn control(&self) -> ControlClient {
        self.emulator.control()
    }

    /// The `StartBuildBatch` calls CodeBuild answered (not the injected faults), in order.
    async fn starts(&self) -> Vec<CallRecord> {
        self.control()
            .calls()
            .await
            .unwrap()
            .into_iter()
            .filter(|call| call.operation == "StartBuildBatch" && call.fault.is_none())
            .collect()
    }

    /// Every `StartBuildBatch` call, answered or faulted.
    async fn start_attempts(&self) -> usize {
        self.control()
            .calls()
            .await
            .unwrap()
            .iter()
            .filter(|call| call.operation == "StartBuildBatch")
            .count()
    }

    async fn batches_of(&self, project: &str) -> Vec<Value> {
        self.cli.batches_of(project).await.unwrap()
    }

    async fn batch_count(&self) -> usize {
        let mut n = 0;
        for project in PROJECTS {
            n += self.batches_of(project).await.len();
        }
        n
    }

    /// Everything on the dead-letter queue (Lambda's on-failure records), taken off it.
    async fn dead_letters(&self) -> Vec<Value> {
        stack::take_messages(&self.sqs, &self.dlq, 0)
            .await
            .unwrap()
            .iter()
            .map(|body| serde_json::from_str(body).unwrap())
            .collect()
    }

    async fn stop(self) {
        self.emulator.shutdown().await;
    }
}

/// Delivers `event` as EventBridge does (an asynchronous invocation) and waits for the outcome.
async fn deliver(function: &RunningFunction, event: &Value) -> AsyncOutcome {
    function
        .invoke_async(event.clone())
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap()
}

/// A delivery the function finished on its first attempt; its answer.
async fn answered(function: &RunningFunction, event: &Value) -> Value {
    let outcome = deliver(function, event).await;
    assert_eq!(outcome.attempts, 1, "{outcome:?}\n{:#?}", function.logs());
    assert_eq!(outcome.destination, DestinationOutcome::NotNeeded);
    outcome.result.unwrap()
}

/// The function's decision lines (their `fields`) about event `id`, in order.
fn decisions_about(function: &RunningFunction, id: &str) -> Vec<(String, Value)> {
    function
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
        .filter(|line| line["fields"]["message"] == "batch-trigger decision")
        .filter(|line| line["fields"]["event_id"] == id)
        .map(|line| {
            let level = line["level"].as_str().unwrap_or_default().to_owned();
            (level, line["fields"].clone())
        })
        .collect()
}

/// The value of environment variable `name` in a `StartBuildBatch` call's overrides.
fn override_of(call: &CallRecord, name: &str) -> Option<String> {
    call.params["environmentVariablesOverride"]
        .as_array()?
        .iter()
        .find(|variable| variable["name"] == name)
        .and_then(|variable| variable["value"].as_str())
        .map(str::to_owned)
}

fn id_of(event: &Value) -> String {
    event["id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_custom_event_starts_one_batch_with_its_overrides_however_often_it_comes() {
    let stack = Stack::start().await;
    let function = stack.function(&[]).await;
    let event = custom_event();
    let id = id_of(&event);

    let first = answered(&function, &event).await;

    assert_eq!(first["action"], "started", "{first}");
    assert_eq!(first["reason"], "release train");
    let starts = stack.starts().await;
    assert_eq!(starts.len(), 1, "{starts:?}");
    let params = &starts[0].params;
    assert_eq!(params["projectName"], "web");
    assert_eq!(params["sourceVersion"], "refs/heads/main");
    assert_eq!(params["buildTimeoutInMinutesOverride"], 60);
    assert_eq!(
        override_of(&starts[0], "DEPLOY_ENV").as_deref(),
        Some("staging")
    );
    assert!(params.get("buildspecOverride").is_none_or(Value::is_null));
    assert_eq!(
        params["idempotencyToken"],
        IdempotencyKey::for_trigger_start(&id, "web")
            .token()
            .as_str()
    );
    let batches = stack.batches_of("web").await;
    assert_eq!(batches.len(), 1);
    assert_eq!(json!(batches[0]["id"]), first["batch_id"]);
    assert_eq!(batches[0]["initiator"], TRIGGER_KEY);
    let lines = decisions_about(&function, &id);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (level, line) = &lines[0];
    assert_eq!(level, "INFO");
    assert_eq!(line["action"], "started");
    assert_eq!(line["project"], "web");
    assert_eq!(line["source"], "com.example.release");
    assert_eq!(
        line["overrides"],
        "source_version,environment_variables,timeout"
    );

    // EventBridge delivers at least once: the same event again, at once...
    let again = answered(&function, &event).await;
    assert_eq!(again["action"], "already_started", "{again}");
    assert_eq!(again["batch_id"], first["batch_id"]);
    // ...and again after CodeBuild's five-minute token window: the ledger answers.
    stack.control().advance_clock(3600).await.unwrap();
    let later = answered(&function, &event).await;
    assert_eq!(later["action"], "already_started", "{later}");
    assert_eq!(later["batch_id"], first["batch_id"]);
    assert_eq!(stack.starts().await.len(), 1, "one StartBuildBatch in all");
    assert_eq!(stack.batches_of("web").await.len(), 1);

    // Another event is another batch.
    let other = answered(&function, &custom_event()).await;
    assert_eq!(other["action"], "started");
    assert_eq!(stack.batches_of("web").await.len(), 2);

    function.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_scheduled_tick_starts_a_batch_of_its_project_once() {
    let stack = Stack::start().await;
    let function = stack.function(&[]).await;
    let tick = scheduled_event("nightly");

    let first = answered(&function, &tick).await;
    let again = answered(&function, &tick).await;

    assert_eq!(first["action"], "started", "{first}");
    assert_eq!(first["reason"], "scheduled");
    assert_eq!(first["source"], "autopilot.schedule");
    assert_eq!(again["action"], "already_started");
    let starts = stack.starts().await;
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].params["projectName"], "nightly");
    assert!(
        starts[0]
            .params
            .get("sourceVersion")
            .is_none_or(Value::is_null)
    );
    assert_eq!(stack.batches_of("nightly").await.len(), 1);

    function.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn refused_events_start_nothing_are_logged_with_the_reason_and_are_not_retried() {
    let stack = Stack::start().await;
    let function = stack.function(&[]).await;
    let edit = |change: fn(&mut Value)| {
        let mut event = custom_event();
        change(&mut event);
        event
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            edit(|e| e["detail"]["buildspecOverride"] = json!("version: 0.2\nphases: {}")),
            "override_not_allowed",
            "buildspec",
        ),
        (
            edit(|e| {
                e["detail"]["environmentVariables"] = json!([{"name": "AWS_ROLE", "value": "x"}]);
            }),
            "override_not_allowed",
            "AWS_ROLE",
        ),
        (
            edit(|e| {
                e["detail"]["environmentVariables"] =
                    json!([{"name": "AUTOPILOT_BRANCH", "value": "main"}]);
            }),
            "invalid_override",
            "reserved",
        ),
        (
            edit(|e| e["detail"]["timeoutInMinutes"] = json!(600)),
            "override_not_allowed",
            "max_timeout_minutes",
        ),
        (
            edit(|e| {
                e["detail"] = json!({"project": "legacy", "reason": "not configured"});
            }),
            "project_not_configured",
            "",
        ),
        (
            edit(|e| e["detail"]["project"] = json!("web-*")),
            "invalid_project",
            "web-*",
        ),
        (
            edit(|e| e["detail"]["serviceRoleOverride"] = json!("arn:aws:iam::1:role/admin")),
            "malformed_event",
            "serviceRoleOverride",
        ),
        (
            edit(|e| {
                e["detail"].as_object_mut().unwrap().remove("project");
            }),
            "malformed_event",
            "detail.project",
        ),
        (
            edit(|e| e["detail-type"] = json!("CodeBuild Build State Change")),
            "unexpected_detail_type",
            "CodeBuild Build State Change",
        ),
    ];

    for (event, reason, mentions) in &cases {
        let answer = answered(&function, event).await;
        assert_eq!(answer["action"], "rejected", "{event}\n{answer}");
        assert_eq!(answer["reason"], *reason, "{answer}");
        let lines = decisions_about(&function, &id_of(event));
        assert_eq!(lines.len(), 1, "one decision line: {lines:?}");
        let (level, line) = &lines[0];
        assert_eq!(level, "WARN", "{line}");
        assert_eq!(line["action"], "rejected");
        assert_eq!(line["reason"], *reason);
        assert_eq!(line["source"], "com.example.release");
        let error = line["error"].as_str().unwrap_or_default();
        assert!(error.contains(mentions), "{error}");
    }
    // Not even an object: refused and logged all the same.
    let answer = answered(&function, &json!("start web please")).await;
    assert_eq!(answer["reason"], "malformed_event");

    assert_eq!(stack.start_attempts().await, 0, "nothing reached CodeBuild");
    assert_eq!(stack.batch_count().await, 0);
    assert!(
        stack.dead_letters().await.is_empty(),
        "nothing dead-lettered"
    );
    function.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_throttled_start_is_retried_by_lambda_then_dead_lettered_and_a_redrive_starts_it_once() {
    let stack = Stack::start().await;
    let function = stack.function(&[]).await;
    stack
        .control()
        .set_faults(&FaultSpec {
            operations: Some(vec!["StartBuildBatch".into()]),
            throttle_fraction: Some(1.0),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    let event = custom_event();
    let id = id_of(&event);

    let outcome = deliver(&function, &event).await;

    assert_eq!(outcome.attempts, 3, "{outcome:?}");
    let error = outcome.result.unwrap_err();
    assert!(
        error.error_message.contains("codebuild_unavailable"),
        "{error:?}"
    );
    assert!(matches!(
        outcome.destination,
        DestinationOutcome::Delivered(_)
    ));
    let lines = decisions_about(&function, &id);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|(level, line)| level == "WARN"
        && line["action"] == "retry_later"
        && line["retryable"] == true));
    assert!(stack.starts().await.is_empty());
    assert_eq!(stack.batch_count().await, 0);

    // Once CodeBuild recovers, the dead-lettered event is redriven (put on the bus again, which
    // delivers it to the function as it was): it starts its batch, once.
    stack.control().clear_faults().await.unwrap();
    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["requestContext"]["condition"], "RetriesExhausted");
    let redriven = dead[0]["requestPayload"].clone();
    assert_eq!(redriven, event);
    let answer = answered(&function, &redriven).await;
    assert_eq!(answer["action"], "started", "{answer}");
    let again = answered(&function, &redriven).await;
    assert_eq!(again["action"], "already_started");
    assert_eq!(stack.starts().await.len(), 1);
    assert_eq!(stack.batches_of("web").await.len(), 1);

    function.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_start_codebuild_refuses_is_dead_lettered_and_codebuild_is_asked_once() {
    let stack = Stack::start().await;
    let function = stack.function(&[]).await;
    let tick = scheduled_event("ghost");

    let outcome = deliver(&function, &tick).await;

    assert_eq!(outcome.attempts, 3, "{outcome:?}");
    let error = outcome.result.unwrap_err();
    assert!(
        error.error_message.contains("retryable: false"),
        "{error:?}"
    );
    let reasons: Vec<Value> = decisions_about(&function, &id_of(&tick))
        .into_iter()
        .map(|(_, line)| line["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        ["codebuild_refused", "failed_before", "failed_before"],
        "Lambda's retries are answered by the ledger"
    );
    assert_eq!(stack.start_attempts().await, 1, "CodeBuild was asked once");
    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["requestPayload"], tick);

    function.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn dry_run_checks_the_event_and_starts_nothing() {
    let stack = Stack::start().await;
    let dry = stack.function(&[("AUTOPILOT_DRY_RUN", "true")]).await;
    let live = stack.function(&[]).await;

    let by_function = answered(&dry, &custom_event()).await;
    let refused = answered(&dry, &{
        let mut event = custom_event();
        event["detail"]["buildspecOverride"] = json!("version: 0.2");
        event
    })
    .await;
    // `quiet` is in dry run by its configuration, whatever the function's setting.
    let by_project = answered(&live, &scheduled_event("quiet")).await;

    assert_eq!(by_function["action"], "dry_run", "{by_function}");
    assert_eq!(by_function["dry_run"], true);
    assert_eq!(refused["action"], "rejected", "refused in dry run too");
    assert_eq!(by_project["action"], "dry_run", "{by_project}");
    assert_eq!(stack.start_attempts().await, 0);
    assert_eq!(stack.batch_count().await, 0);

    dry.shutdown().await;
    live.shutdown().await;
    stack.stop().await;
}
