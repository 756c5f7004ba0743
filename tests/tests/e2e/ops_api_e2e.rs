//! End to end: the compiled `ops-api` binary, run through the Lambda harness, fed API Gateway
//! HTTP API v2 events, reading builds from an in-process `codebuild-local` with real SDK calls.
//! No mocks on this path: the only fakes are the emulator's seeded builds and injected faults.
//! The emulator is driven through its HTTP control API (`/_local/...`), the wire contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codebuild_local::{Config, Server};
use harness::lambda::{self, FunctionSpec, RunningFunction};
use harness::workspace;
use serde_json::{Value, json};

/// A sample HTTP API v2 event as AWS documents it; each request overrides the request-specific
/// fields and keeps the rest (headers, requestContext identity, stage) as API Gateway sends them.
const SAMPLE_EVENT: &str = include_str!("../../fixtures/apigw-http-v2-request.json");

struct Stack {
    emulator: Server,
    function: RunningFunction,
    http: reqwest::Client,
    /// The configuration file the function is pointed at (only its mutating routes read it).
    _config: tempfile::NamedTempFile,
}

impl Stack {
    async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// Starts the stack with extra environment variables for the function.
    async fn start_with_env(extra_env: &[(&str, &str)]) -> Self {
        let emulator = codebuild_local::serve(Config::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let binary = workspace::binary("ops-api");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (make test does)",
            binary.display()
        );
        // The read routes need neither the configuration nor the ledger (the write routes and
        // lineage are tested with moto in ops_api_write_e2e.rs), but the function requires both
        // settings, as deployed.
        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), "[[projects]]\nname = \"web\"\n").unwrap();
        let spec = FunctionSpec {
            timeout: Duration::from_secs(60),
            ..FunctionSpec::new("ops-api", binary)
                .with_env("AWS_ENDPOINT_URL_CODEBUILD", emulator.endpoint())
                .with_env("AWS_REGION", "us-east-1")
                .with_env("AWS_ACCESS_KEY_ID", "test")
                .with_env("AWS_SECRET_ACCESS_KEY", "test")
                .with_env(
                    "AUTOPILOT_CONFIG_URI",
                    format!("file:{}", config.path().display()),
                )
                .with_env("AUTOPILOT_LEDGER_TABLE", "autopilot-ledger")
        };
        let spec = extra_env
            .iter()
            .fold(spec, |spec, (name, value)| spec.with_env(*name, *value));
        let function = lambda::start(spec).await.unwrap();
        Self {
            emulator,
            function,
            http: reqwest::Client::new(),
            _config: config,
        }
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_local/{path}", self.emulator.endpoint());
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "control {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn seed_build(&self, seed: Value) -> Value {
        self.control(reqwest::Method::POST, "builds", Some(seed))
            .await
    }

    /// Sends one HTTP API request through the function; returns (status, JSON body).
    async fn request(&self, request: ApiRequest<'_>) -> (u16, Value) {
        let invocation = self.function.invoke(request.event()).await.unwrap();
        let response = invocation
            .result
            .unwrap_or_else(|error| panic!("ops-api failed instead of answering: {error:?}"));
        assert_eq!(response["isBase64Encoded"], false, "{response}");
        let status = u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap();
        let body = response["body"].as_str().unwrap_or_default();
        let body =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("body is not JSON: {response}"));
        (status, body)
    }

    async fn get(&self, raw_path: &str, raw_query: &str) -> (u16, Value) {
        self.request(ApiRequest {
            method: "GET",
            raw_path,
            raw_query,
            base64: false,
        })
        .await
    }

    async fn shutdown(self) {
        self.function.shutdown().await;
        self.emulator.shutdown().await;
    }
}

/// The request-specific parts of an HTTP API v2 event.
struct ApiRequest<'a> {
    method: &'a str,
    raw_path: &'a str,
    raw_query: &'a str,
    base64: bool,
}

impl ApiRequest<'_> {
    /// The event API Gateway would send for this request to the ops-api's routes
    /// (`GET /builds/{id}` and `GET /builds`).
    fn event(&self) -> Value {
        let mut event: Value = serde_json::from_str(SAMPLE_EVENT).unwrap();
        let route_key = match self.raw_path.strip_prefix("/builds/") {
            Some(_) => "GET /builds/{id}",
            None if self.raw_path == "/builds" => "GET /builds",
            None => "$default",
        };
        event["routeKey"] = json!(route_key);
        event["rawPath"] = json!(self.raw_path);
        event["rawQueryString"] = json!(self.raw_query);
        event["requestContext"]["http"]["method"] = json!(self.method);
        event["requestContext"]["http"]["path"] = json!(self.raw_path);
        event["requestContext"]["routeKey"] = json!(route_key);
        event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
        event["isBase64Encoded"] = json!(self.base64);
        // API Gateway joins repeated query parameters with commas and omits the map when empty.
        let mut parameters = serde_json::Map::new();
        for pair in self.raw_query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let joined = match parameters.get(key).and_then(Value::as_str) {
                Some(before) => format!("{before},{value}"),
                None => value.to_owned(),
            };
            parameters.insert(key.to_owned(), json!(joined));
        }
        let object = event.as_object_mut().unwrap();
        if parameters.is_empty() {
            object.remove("queryStringParameters");
        } else {
            object.insert(
                "queryStringParameters".to_owned(),
                Value::Object(parameters),
            );
        }
        match self.raw_path.strip_prefix("/builds/") {
            Some(id) => {
                object.insert("pathParameters".to_owned(), json!({"id": id}));
            }
            None => {
                object.remove("pathParameters");
            }
        }
        // A GET carries no body.
        object.remove("body");
        object.insert("cookies".to_owned(), json!([]));
        event
    }
}

fn failed_build_seed() -> Value {
    json!({
        "projectName": "web",
        "buildStatus": "FAILED",
        "phases": [
            {"phaseType": "SUBMITTED", "phaseStatus": "SUCCEEDED"},
            {"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": [{
                "statusCode": "COMMAND_EXECUTION_ERROR",
                "message": "Error while executing command: make test. Reason: exit status 2"
            }]}
        ],
        "ageSeconds": 600,
        "initiator": "GitHub-Hookshot/4a2b1c",
        "sourceVersion": "8d3f1e0c9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
    })
}

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn get_build_returns_the_summary_of_a_failed_build() {
    let stack = Stack::start().await;
    let seeded = stack.seed_build(failed_build_seed()).await;
    let id = seeded["id"].as_str().unwrap();

    let (status, body) = stack.get(&format!("/builds/{id}"), "").await;

    assert_eq!(status, 200, "{body}");
    let summary = &body["build"];
    assert_eq!(summary["id"], id);
    assert_eq!(summary["arn"], seeded["arn"]);
    assert!(
        summary["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:codebuild:us-east-1:123456789012:build/web:")
    );
    assert_eq!(summary["project"], "web");
    assert_eq!(summary["buildNumber"], seeded["buildNumber"]);
    assert_eq!(summary["status"], "FAILED");
    assert_eq!(summary["currentPhase"], seeded["currentPhase"]);
    assert_eq!(
        summary["sourceVersion"],
        "8d3f1e0c9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
    );
    assert_eq!(summary["initiator"], "GitHub-Hookshot/4a2b1c");
    assert_eq!(summary["batchId"], Value::Null);
    let start = summary["startTime"].as_str().unwrap();
    let end = summary["endTime"].as_str().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    let end = chrono::DateTime::parse_from_rfc3339(end).unwrap();
    assert!(end >= start);
    // Whole seconds either way; allow the rounding of a fractional duration.
    let duration = summary["durationSeconds"].as_i64().unwrap();
    assert!(
        (duration - (end - start).num_seconds()).abs() <= 1,
        "{summary}"
    );
    assert!(summary.get("logsLink").is_some(), "{summary}");

    // The answer came from real SDK calls that reached the emulator.
    let calls = stack.control(reqwest::Method::GET, "calls", None).await;
    assert!(
        calls
            .as_array()
            .unwrap()
            .iter()
            .any(|call| call["operation"] == "BatchGetBuilds"),
        "{calls}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn get_builds_keeps_the_request_order_and_lists_unknown_ids() {
    let stack = Stack::start().await;
    let failed = stack.seed_build(failed_build_seed()).await;
    let running = stack
        .seed_build(json!({
            "projectName": "api",
            "buildStatus": "IN_PROGRESS",
            "currentPhase": "BUILD",
            "ageSeconds": 120
        }))
        .await;
    let batch_id = format!("web:{}", uuid::Uuid::new_v4());
    let in_batch = stack
        .seed_build(json!({
            "projectName": "web",
            "buildStatus": "SUCCEEDED",
            "buildBatchArn": format!("arn:aws:codebuild:us-east-1:123456789012:build-batch/{batch_id}")
        }))
        .await;
    let unknown = format!("web:{}", uuid::Uuid::new_v4());
    let ids = [
        running["id"].as_str().unwrap(),
        unknown.as_str(),
        in_batch["id"].as_str().unwrap(),
        failed["id"].as_str().unwrap(),
    ];

    // The same request with isBase64Encoded false and true (no body either way) answers the same.
    for base64 in [false, true] {
        let (status, body) = stack
            .request(ApiRequest {
                method: "GET",
                raw_path: "/builds",
                raw_query: &format!("ids={}", ids.join(",")),
                base64,
            })
            .await;

        assert_eq!(status, 200, "{body}");
        let builds = body["builds"].as_array().unwrap();
        let returned: Vec<_> = builds.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(returned, [ids[0], ids[2], ids[3]]);
        assert_eq!(body["notFound"], json!([unknown]));

        assert_eq!(builds[0]["status"], "IN_PROGRESS");
        assert_eq!(builds[0]["currentPhase"], "BUILD");
        assert_eq!(builds[0]["endTime"], Value::Null);
        assert_eq!(builds[1]["batchId"], batch_id.as_str());
        assert_eq!(builds[2]["status"], "FAILED");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_400_and_unknown_things_404_as_json_errors() {
    let stack = Stack::start().await;

    let (status, body) = stack.get("/builds", "").await;
    assert_error(status, &body, 400, "bad_request");

    let too_many: Vec<String> = (0..101)
        .map(|_| format!("web:{}", uuid::Uuid::new_v4()))
        .collect();
    let (status, body) = stack
        .get("/builds", &format!("ids={}", too_many.join(",")))
        .await;
    assert_error(status, &body, 400, "bad_request");

    let (status, body) = stack.get("/builds/not-a-build-id", "").await;
    assert_error(status, &body, 400, "bad_request");

    let (status, body) = stack
        .get(&format!("/builds/web:{}", uuid::Uuid::new_v4()), "")
        .await;
    assert_error(status, &body, 404, "not_found");

    let (status, _) = stack.get("/nowhere", "").await;
    assert_eq!(status, 404);

    let (status, _) = stack
        .request(ApiRequest {
            method: "DELETE",
            raw_path: "/builds",
            raw_query: "",
            base64: false,
        })
        .await;
    assert_eq!(status, 405);
    stack.shutdown().await;
}

#[tokio::test]
async fn upstream_throttling_becomes_a_json_answer_not_a_crash() {
    let stack = Stack::start().await;
    let seeded = stack.seed_build(failed_build_seed()).await;
    let id = seeded["id"].as_str().unwrap().to_owned();
    stack
        .control(
            reqwest::Method::POST,
            "faults",
            Some(json!({"operations": ["BatchGetBuilds"], "throttleEvery": 1})),
        )
        .await;

    let (status, body) = stack.get(&format!("/builds/{id}"), "").await;

    assert!(status == 429 || status == 503, "{status} {body}");
    let code = body["error"]["code"].as_str().unwrap();
    assert!(
        code == "throttled" || code == "upstream_unavailable",
        "{body}"
    );

    // Same process, faults cleared: it answers normally (it did not crash or wedge).
    stack.control(reqwest::Method::DELETE, "faults", None).await;
    let (status, body) = stack.get(&format!("/builds/{id}"), "").await;
    assert_eq!(status, 200, "{body}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_crash_at_a_failpoint_is_a_runtime_exit_error_and_calls_nothing() {
    let step = autopilot::ops::FAILPOINT_BEFORE_BATCH_GET;
    let stack = Stack::start_with_env(&[("AUTOPILOT_FAILPOINT", step)]).await;
    let seeded = stack.seed_build(failed_build_seed()).await;
    let id = seeded["id"].as_str().unwrap().to_owned();
    stack.control(reqwest::Method::DELETE, "calls", None).await;

    let request = ApiRequest {
        method: "GET",
        raw_path: &format!("/builds/{id}"),
        raw_query: "",
        base64: false,
    };
    let invocation = stack.function.invoke(request.event()).await.unwrap();

    // The shipped binary aborted at the named step, as Lambda reports a crashed runtime...
    let error = invocation.result.unwrap_err();
    assert_eq!(error.error_type, "Runtime.ExitError", "{error:?}");
    // ...before it made the CodeBuild call.
    let calls = stack.control(reqwest::Method::GET, "calls", None).await;
    let operations: Vec<&str> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|call| call["operation"].as_str())
        .collect();
    assert!(!operations.contains(&"BatchGetBuilds"), "{calls}");
    stack.shutdown().await;
}
