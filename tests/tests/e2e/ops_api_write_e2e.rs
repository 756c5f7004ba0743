//! The ops API's write side and its new read routes end to end (issue 7): the compiled `ops-api`
//! binary run through the Lambda harness, fed API Gateway HTTP API v2 events with an IAM
//! identity in the request context, against an in-process `codebuild-local` (CodeBuild) and
//! moto's server (DynamoDB: the ledger and auto-retry's lineage).
//!
//! Assertions count what codebuild-local's call log says reached CodeBuild, never how long
//! anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::local_services;
use autopilot::aws::DynamoRetryBook;
use autopilot::model::BuildId;
use autopilot::ports::{Lineage, RetryBook};
use autopilot::start::StartIdentity;
use codebuild_local::control::{ControlClient, SeedBatch, SeedBatchBuild, SeedBuild};
use codebuild_local::faults::FaultSpec;
use codebuild_local::model::Status;
use harness::lambda::{self, FunctionSpec, RunningFunction};
use harness::moto::MotoServer;
use harness::stack::CodeBuildCli;
use harness::workspace;
use serde_json::{Value, json};

/// A sample HTTP API v2 event as AWS documents it; each request overrides its request parts.
const SAMPLE_EVENT: &str = include_str!("../../fixtures/apigw-http-v2-request.json");

/// The operator every request is signed by (unless a test says otherwise).
const OPERATOR: &str = "arn:aws:iam::123456789012:user/operator";

/// `web` may be started with a source version and `DEPLOY_*` variables; `api` with the defaults
/// (a source version only). `other` exists in CodeBuild but is not configured.
const CONFIG: &str = r#"
[[projects]]
name = "web"
[projects.start]
allowed_overrides = ["source_version", "environment_variables"]
environment_variable_names = ["DEPLOY_*"]

[[projects]]
name = "api"
"#;

const TABLE: &str = local_services::LEDGER_TABLE;

struct Stack {
    _moto: MotoServer,
    emulator: codebuild_local::Server,
    control: ControlClient,
    book: DynamoRetryBook,
    function: RunningFunction,
    _config: tempfile::NamedTempFile,
}

/// One HTTP request to the API, as a caller sends it.
#[derive(Clone)]
struct Call {
    method: &'static str,
    path: String,
    query: String,
    key: Option<String>,
    body: Option<String>,
    caller: Option<String>,
}

fn get(path: &str) -> Call {
    Call {
        method: "GET",
        path: path.to_owned(),
        query: String::new(),
        key: None,
        body: None,
        caller: Some(OPERATOR.to_owned()),
    }
}

fn post(path: &str, key: &str) -> Call {
    Call {
        method: "POST",
        key: Some(key.to_owned()),
        ..get(path)
    }
}

impl Call {
    fn query(mut self, query: &str) -> Self {
        self.query = query.to_owned();
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self
    }

    fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn without_key(mut self) -> Self {
        self.key = None;
        self
    }

    fn anonymous(mut self) -> Self {
        self.caller = None;
        self
    }

    /// The event API Gateway (HTTP API, payload 2.0, `AWS_IAM` authorizer) sends.
    fn event(&self) -> Value {
        let mut event: Value = serde_json::from_str(SAMPLE_EVENT).unwrap();
        let route_key = format!("{} {}", self.method, template_of(&self.path));
        event["routeKey"] = json!(route_key);
        event["rawPath"] = json!(self.path);
        event["rawQueryString"] = json!(self.query);
        event["requestContext"]["http"]["method"] = json!(self.method);
        event["requestContext"]["http"]["path"] = json!(self.path);
        event["requestContext"]["routeKey"] = json!(route_key);
        event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
        if let Some(caller) = &self.caller {
            event["requestContext"]["authorizer"] = json!({"iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLEEXAMPLE",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": caller,
                "userId": "AIDAEXAMPLEEXAMPLE"
            }});
        }
        let headers = event["headers"].as_object_mut().unwrap();
        if let Some(key) = &self.key {
            headers.insert("idempotency-key".into(), json!(key));
        }
        let body_len = self.body.as_ref().map_or(0, String::len);
        headers.insert("content-length".into(), json!(body_len.to_string()));
        if self.body.is_some() {
            headers.insert("content-type".into(), json!("application/json"));
        }
        let object = event.as_object_mut().unwrap();
        let mut parameters = serde_json::Map::new();
        for pair in self.query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            parameters.insert(key.to_owned(), json!(value));
        }
        if parameters.is_empty() {
            object.remove("queryStringParameters");
        } else {
            object.insert("queryStringParameters".into(), Value::Object(parameters));
        }
        object.remove("pathParameters");
        object.remove("stageVariables");
        object.insert("cookies".into(), json!([]));
        match &self.body {
            Some(body) => object.insert("body".into(), json!(body)),
            None => object.remove("body"),
        };
        object.insert("isBase64Encoded".into(), json!(false));
        event
    }
}

/// The route template a path belongs to (what API Gateway puts in `routeKey`).
fn template_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["builds", _] => "/builds/{id}".into(),
        ["builds", _, action] => format!("/builds/{{id}}/{action}"),
        ["batches", _] => "/batches/{id}".into(),
        ["batches", _, action] => format!("/batches/{{id}}/{action}"),
        ["projects", _, "batches"] => "/projects/{name}/batches".into(),
        _ => path.to_owned(),
    }
}

impl Stack {
    async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    async fn start_with_env(extra: &[(&str, &str)]) -> Self {
        let emulator = local_services::codebuild_local().await;
        let (moto, sdk) = local_services::moto_with_ledger().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let book = DynamoRetryBook::new(dynamodb, TABLE);
        CodeBuildCli::new(emulator.endpoint())
            .create_projects(["web", "api", "other"])
            .await
            .unwrap();

        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), CONFIG).unwrap();
        let binary = workspace::binary("ops-api");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (make test does)",
            binary.display()
        );
        let mut spec = FunctionSpec {
            timeout: Duration::from_secs(60),
            ..FunctionSpec::new("ops-api", binary)
        };
        for (name, value) in moto.env() {
            spec = spec.with_env(name, value);
        }
        spec = spec
            .with_env("AWS_ENDPOINT_URL_CODEBUILD", emulator.endpoint())
            .with_env(
                "AUTOPILOT_CONFIG_URI",
                format!("file:{}", config.path().display()),
            )
            .with_env("AUTOPILOT_PROJECT_PATTERNS", "*")
            .with_env("AUTOPILOT_LEDGER_TABLE", TABLE);
        for (name, value) in extra {
            spec = spec.with_env(*name, *value);
        }
        let function = lambda::start(spec).await.unwrap();
        let control = ControlClient::new(&emulator.endpoint());
        control.clear_calls().await.unwrap();
        Self {
            _moto: moto,
            emulator,
            control,
            book,
            function,
            _config: config,
        }
    }

    /// Sends one request through the function; returns (status, JSON body).
    async fn send(&self, call: &Call) -> (u16, Value) {
        let invocation = self.function.invoke(call.event()).await.unwrap();
        let response = invocation.result.unwrap_or_else(|error| {
            panic!(
                "ops-api failed instead of answering {} {}: {error:?}",
                call.method, call.path
            )
        });
        let status = u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap();
        let body = response["body"].as_str().unwrap_or_default();
        let body =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("body is not JSON: {response}"));
        (status, body)
    }

    /// Calls of `operation` that reached CodeBuild's operation (not answered by a fault).
    async fn calls_of(&self, operation: &str) -> Vec<Value> {
        self.control
            .calls()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.operation == operation && c.fault.is_none())
            .map(|c| c.params)
            .collect()
    }

    async fn seed_failed_build(&self, project: &str) -> String {
        let seeded = self
            .control
            .seed_build(&SeedBuild {
                project_name: project.into(),
                build_status: Some(Status::Failed),
                age_seconds: Some(600),
                ..SeedBuild::default()
            })
            .await
            .unwrap();
        seeded["id"].as_str().unwrap().to_owned()
    }

    async fn seed_batch(&self, project: &str, status: Status) -> Value {
        self.control
            .seed_batch(&SeedBatch {
                project_name: project.into(),
                build_batch_status: Some(status),
                age_seconds: Some(900),
                source_version: Some("refs/heads/main".into()),
                builds: Some(vec![SeedBatchBuild {
                    identifier: Some("unit".into()),
                    build_status: Some(status),
                }]),
                ..SeedBatch::default()
            })
            .await
            .unwrap()
    }

    async fn shutdown(self) {
        self.function.shutdown().await;
        self.emulator.shutdown().await;
    }
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn reads_batches_pages_the_list_and_shows_the_retry_lineage() {
    let stack = Stack::start().await;
    let mut web = Vec::new();
    for _ in 0..4 {
        web.push(stack.seed_batch("web", Status::Failed).await);
    }
    let running = stack.seed_batch("web", Status::InProgress).await;
    stack.seed_batch("api", Status::Failed).await;

    // One batch, by id and by percent-encoded ARN.
    let id = web[0]["id"].as_str().unwrap();
    let arn = web[0]["arn"].as_str().unwrap();
    let (status, body) = stack.send(&get(&format!("/batches/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    let batch = &body["batch"];
    assert_eq!(batch["id"], id);
    assert_eq!(batch["arn"], arn);
    assert_eq!(batch["project"], "web");
    assert_eq!(batch["status"], "FAILED");
    assert_eq!(batch["complete"], true);
    assert_eq!(batch["buildBatchNumber"], web[0]["buildBatchNumber"]);
    assert_eq!(batch["sourceVersion"], "refs/heads/main");
    assert_eq!(batch["groups"][0]["identifier"], "unit");
    assert_eq!(batch["buildIds"].as_array().unwrap().len(), 1);
    assert!(batch.get("environmentVariables").is_none(), "{batch}");
    let by_arn = stack
        .send(&get(&format!("/batches/{}", encoded(arn))))
        .await;
    assert_eq!(by_arn, (status, body.clone()));
    let unknown = format!("web:{}", uuid::Uuid::new_v4());
    assert_error(
        &stack.send(&get(&format!("/batches/{unknown}"))).await,
        404,
        "not_found",
    );

    // Every page of two, newest first, each batch once; the last page has no nextToken.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &token {
            Some(t) => format!("maxResults=2&nextToken={t}"),
            None => "maxResults=2".to_owned(),
        };
        let (status, body) = stack
            .send(&get("/projects/web/batches").query(&query))
            .await;
        assert_eq!(status, 200, "{body}");
        let batches = body["batches"].as_array().unwrap();
        assert!(batches.len() <= 2, "{body}");
        seen.extend(
            batches
                .iter()
                .map(|b| b["buildBatchNumber"].as_i64().unwrap()),
        );
        pages += 1;
        match body.get("nextToken") {
            Some(next) => token = Some(next.as_str().unwrap().to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, [5, 4, 3, 2, 1]);

    let (status, body) = stack
        .send(&get("/projects/web/batches").query("status=IN_PROGRESS"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["batches"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["batches"][0]["id"], running["id"]);
    assert!(body.get("nextToken").is_none(), "{body}");

    for bad in [
        "maxResults=0",
        "maxResults=101",
        "status=RUNNING",
        "nextToken=made-up",
        "sort=asc",
    ] {
        let answer = stack.send(&get("/projects/web/batches").query(bad)).await;
        assert_error(&answer, 400, "bad_request");
    }
    assert_error(
        &stack.send(&get("/projects/not*a*name/batches")).await,
        400,
        "bad_request",
    );
    assert_error(
        &stack.send(&get("/batches/not-a-batch")).await,
        400,
        "bad_request",
    );

    // The chain auto-retry recorded: root → first retry → second retry.
    let [root, first, second] = [
        stack.seed_failed_build("web").await,
        stack.seed_failed_build("web").await,
        stack.seed_failed_build("web").await,
    ];
    let parse = |id: &str| BuildId::parse(id).unwrap();
    for (parent, build, attempt) in [(&root, &first, 1), (&first, &second, 2)] {
        stack
            .book
            .record_lineage(&Lineage {
                build: parse(build),
                parent: parse(parent),
                root: parse(&root),
                attempt,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    let (status, body) = stack.send(&get(&format!("/builds/{first}/lineage"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["build"], json!(first));
    assert_eq!(body["root"], json!(root));
    let chain: Vec<(String, u64, Value)> = body["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["build"].as_str().unwrap().to_owned(),
                l["attempt"].as_u64().unwrap(),
                l["parent"].clone(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        [
            (root.clone(), 0, Value::Null),
            (first.clone(), 1, json!(root)),
            (second.clone(), 2, json!(first)),
        ]
    );
    let alone = stack.seed_failed_build("api").await;
    let (status, body) = stack.send(&get(&format!("/builds/{alone}/lineage"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chain"].as_array().unwrap().len(), 1, "{body}");
    let missing = format!("web:{}", uuid::Uuid::new_v4());
    assert_error(
        &stack
            .send(&get(&format!("/builds/{missing}/lineage")))
            .await,
        404,
        "not_found",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn retries_and_stops_happen_once_per_idempotency_key() {
    let stack = Stack::start().await;
    let build = stack.seed_failed_build("web").await;
    let other_build = stack.seed_failed_build("web").await;

    // Retry a build: 201 with the new build; the same key and request answer identically and
    // call CodeBuild once; the same key for another build is 422.
    let retry = post(&format!("/builds/{build}/retry"), "retry-1");
    let first = stack.send(&retry).await;
    assert_eq!(first.0, 201, "{}", first.1);
    let new_build = first.1["build"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_build, build);
    assert_eq!(first.1["build"]["project"], "web");
    let again = stack.send(&retry.clone().json(json!({}))).await;
    assert_eq!(again, first);
    let arn = stack.send(&get(&format!("/builds/{build}"))).await.1["build"]["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_arn = stack
        .send(&post(
            &format!("/builds/{}/retry", encoded(&arn)),
            "retry-1",
        ))
        .await;
    assert_eq!(by_arn, first);
    assert_error(
        &stack
            .send(&post(&format!("/builds/{other_build}/retry"), "retry-1"))
            .await,
        422,
        "unprocessable",
    );
    let retries = stack.calls_of("RetryBuild").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    let token = retries[0]["idempotencyToken"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    assert!(!token.contains("retry-1"));

    // Retry a batch, throttled first: 429 releases the key, and the same key then succeeds.
    let batch = stack.seed_batch("web", Status::Failed).await;
    let batch_id = batch["id"].as_str().unwrap();
    let retry_batch = post(&format!("/batches/{batch_id}/retry"), "batch-1")
        .json(json!({"retryType": "RETRY_ALL_BUILDS"}));
    stack
        .control
        .set_faults(&FaultSpec {
            operations: Some(vec!["RetryBuildBatch".into()]),
            throttle_fraction: Some(1.0),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    assert_error(&stack.send(&retry_batch).await, 429, "throttled");
    stack.control.clear_faults().await.unwrap();
    let first = stack.send(&retry_batch).await;
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(first.1["batch"]["id"], batch_id);
    assert_eq!(first.1["batch"]["status"], "IN_PROGRESS");
    assert_eq!(stack.send(&retry_batch).await, first);
    let batch_retries = stack.calls_of("RetryBuildBatch").await;
    assert_eq!(batch_retries.len(), 1, "{batch_retries:?}");
    assert_eq!(batch_retries[0]["retryType"], "RETRY_ALL_BUILDS");

    // Stop it: 200 STOPPED, once.
    let stop = post(&format!("/batches/{batch_id}/stop"), "stop-1");
    let first = stack.send(&stop).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["batch"]["status"], "STOPPED");
    assert_eq!(stack.send(&stop).await, first);
    assert_eq!(stack.calls_of("StopBuildBatch").await.len(), 1);
    let (_, read_back) = stack.send(&get(&format!("/batches/{batch_id}"))).await;
    assert_eq!(read_back["batch"]["status"], "STOPPED");

    // Another caller with the same key is another request.
    let mut bob = retry.clone();
    bob.caller = Some("arn:aws:iam::123456789012:user/bob".into());
    assert_eq!(stack.send(&bob).await.0, 201);
    assert_eq!(stack.calls_of("RetryBuild").await.len(), 2);
    stack.shutdown().await;
}

#[tokio::test]
async fn starts_go_through_the_one_mechanism_and_refuse_what_the_configuration_does_not_allow() {
    let stack = Stack::start().await;
    let start = post("/projects/web/batches", "start-1").json(json!({
        "sourceVersion": "refs/heads/release",
        "environmentVariables": [{"name": "DEPLOY_ENV", "value": "staging"}],
        "reason": "release train"
    }));
    let first = stack.send(&start).await;
    assert_eq!(first.0, 201, "{}", first.1);
    let batch = first.1["batch"].as_object().unwrap();
    assert_eq!(batch.len(), 2, "{}", first.1);
    assert!(batch["id"].as_str().unwrap().starts_with("web:"));
    assert_eq!(batch["buildBatchNumber"], 1);
    assert_eq!(stack.send(&start).await, first);

    let starts = stack.calls_of("StartBuildBatch").await;
    assert_eq!(starts.len(), 1, "one StartBuildBatch: {starts:?}");
    let params = &starts[0];
    assert_eq!(params["projectName"], "web");
    assert_eq!(params["sourceVersion"], "refs/heads/release");
    assert_eq!(
        params["environmentVariablesOverride"],
        json!([{"name": "DEPLOY_ENV", "value": "staging", "type": "PLAINTEXT"}])
    );
    let identity = StartIdentity::Ops {
        header_key: "start-1".into(),
        route: "POST /projects/{name}/batches".into(),
        caller: OPERATOR.into(),
    };
    assert_eq!(
        params["idempotencyToken"],
        json!(identity.key_for("web").token().as_str())
    );
    let (_, read_back) = stack
        .send(&get(&format!("/batches/{}", batch["id"].as_str().unwrap())))
        .await;
    assert_eq!(read_back["batch"]["status"], "IN_PROGRESS");

    // The same key with another body is another request.
    let other = post("/projects/web/batches", "start-1").json(json!({"sourceVersion": "main"}));
    assert_error(&stack.send(&other).await, 422, "unprocessable");

    // Overrides the configuration does not allow: 422 naming the override, nothing started.
    for (project, body, named) in [
        (
            "web",
            json!({"buildspecOverride": "version: 0.2\nphases: {}"}),
            "buildspec",
        ),
        ("web", json!({"timeoutInMinutes": 60}), "timeout"),
        (
            "web",
            json!({"environmentVariables": [{"name": "PATH", "value": "/tmp"}]}),
            "environment_variables",
        ),
        (
            "api",
            json!({"environmentVariables": [{"name": "DEPLOY_ENV", "value": "x"}]}),
            "environment_variables",
        ),
    ] {
        let answer = stack
            .send(&post(&format!("/projects/{project}/batches"), "start-2").json(body))
            .await;
        assert_error(&answer, 422, "unprocessable");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    // A project CodeBuild has but the configuration does not list.
    assert_error(
        &stack
            .send(&post("/projects/other/batches", "start-3"))
            .await,
        404,
        "not_found",
    );
    assert_eq!(stack.calls_of("StartBuildBatch").await.len(), 1);

    // `api` with its defaults: a source version only.
    let (status, body) = stack
        .send(&post("/projects/api/batches", "start-4").json(json!({"sourceVersion": "main"})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stack.calls_of("StartBuildBatch").await.len(), 2);
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_input_on_every_route_is_a_json_error_and_changes_nothing() {
    let stack = Stack::start().await;
    let build = stack.seed_failed_build("web").await;
    let batch = stack.seed_batch("web", Status::Failed).await;
    let batch_id = batch["id"].as_str().unwrap();
    stack.control.clear_calls().await.unwrap();

    let posts = [
        format!("/builds/{build}/retry"),
        format!("/batches/{batch_id}/retry"),
        format!("/batches/{batch_id}/stop"),
        "/projects/web/batches".to_owned(),
    ];
    let huge = json!({"sourceVersion": "x".repeat(70_000)});
    let mut cases: Vec<(Call, u16, &str)> = Vec::new();
    for path in &posts {
        let call = post(path, "bad-1");
        cases.extend([
            (call.clone().without_key(), 400, "bad_request"),
            (post(path, &"k".repeat(256)), 400, "bad_request"),
            (call.clone().anonymous(), 401, "unauthorized"),
            (call.clone().json(json!({"unknown": 1})), 400, "bad_request"),
            (call.clone().raw_body("{not json"), 400, "bad_request"),
            (call.clone().raw_body("[]"), 400, "bad_request"),
            (call.clone().json(huge.clone()), 413, "payload_too_large"),
            (call.clone().query("x=1"), 400, "bad_request"),
            (call.clone().method("PUT"), 405, "method_not_allowed"),
        ]);
    }
    let gets = [
        format!("/builds/{build}"),
        format!("/builds/{build}/lineage"),
        format!("/batches/{batch_id}"),
        "/projects/web/batches".to_owned(),
    ];
    for path in &gets {
        cases.push((get(path).method("DELETE"), 405, "method_not_allowed"));
    }
    cases.extend([
        (get("/builds"), 400, "bad_request"),
        (get("/builds/nope"), 400, "bad_request"),
        (get("/builds/nope/lineage"), 400, "bad_request"),
        (
            get(&format!("/builds/{build}/lineage")).query("x=1"),
            400,
            "bad_request",
        ),
        (get("/batches/web:not-a-uuid"), 400, "bad_request"),
        (get("/projects/-web/batches"), 400, "bad_request"),
        (post("/builds/nope/retry", "bad-2"), 400, "bad_request"),
        (post("/batches/nope/stop", "bad-2"), 400, "bad_request"),
        (
            post(&format!("/batches/{batch_id}/retry"), "bad-2")
                .json(json!({"retryType": "RETRY_SOME"})),
            400,
            "bad_request",
        ),
        (
            post("/projects/web/batches", "bad-2")
                .json(json!({"environmentVariables": [{"name": "CODEBUILD_X", "value": "1"}]})),
            400,
            "bad_request",
        ),
        (get("/nowhere"), 404, "not_found"),
        (get(&format!("/builds/{build}/nowhere")), 404, "not_found"),
        (post("/projects/web/nowhere", "bad-2"), 404, "not_found"),
    ]);
    for (call, status, code) in &cases {
        let answer = stack.send(call).await;
        assert_eq!(
            (answer.0, answer.1["error"]["code"].as_str().unwrap_or("")),
            (*status, *code),
            "{} {}?{} key={:?} caller={:?}: {}",
            call.method,
            call.path,
            call.query,
            call.key.as_ref().map(String::len),
            call.caller,
            answer.1
        );
    }
    let calls = stack.control.calls().await.unwrap();
    let mutations: Vec<&str> = calls
        .iter()
        .map(|c| c.operation.as_str())
        .filter(|op| !op.starts_with("BatchGet") && !op.starts_with("List"))
        .collect();
    assert!(mutations.is_empty(), "{mutations:?}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_request_whose_first_attempt_crashed_mid_flight_is_409_not_a_second_mutation() {
    let step = autopilot::ops::FAILPOINT_AFTER_CLAIM;
    let stack = Stack::start_with_env(&[("AUTOPILOT_FAILPOINT", step)]).await;
    let batch = stack.seed_batch("web", Status::InProgress).await;
    let stop = post(
        &format!("/batches/{}/stop", batch["id"].as_str().unwrap()),
        "stop-9",
    );

    // The first attempt claims the key and the process dies before calling CodeBuild...
    let invocation = stack.function.invoke(stop.event()).await.unwrap();
    let error = invocation.result.unwrap_err();
    assert_eq!(error.error_type, "Runtime.ExitError", "{error:?}");
    // ...so the same request, in a fresh sandbox, finds it in flight.
    assert_error(&stack.send(&stop).await, 409, "conflict");
    // Nothing reached CodeBuild: the batch still runs.
    assert!(stack.calls_of("StopBuildBatch").await.is_empty());
    let (_, read_back) = stack
        .send(&get(&format!("/batches/{}", batch["id"].as_str().unwrap())))
        .await;
    assert_eq!(read_back["batch"]["status"], "IN_PROGRESS");
    stack.shutdown().await;
}
