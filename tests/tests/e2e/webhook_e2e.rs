//! Source-provider webhooks end to end (issue 6, "Done when"): the real `webhook` binary fed API
//! Gateway HTTP API v2 events through the Lambda harness, the real `batch-starter` binary fed
//! from the start queue by the harness's SQS event source, CodeBuild played by an in-process
//! `codebuild-local`, and DynamoDB (the ledger), SQS (the start queue and its DLQ) and Secrets
//! Manager (the webhook secrets) by moto.
//!
//! Deliveries are the published sample bodies (`shared/tests/fixtures/webhooks/`) with the
//! headers each provider sends, signed here with the secrets stored in moto. Variants (a live
//! branch push, a tampered byte) are edits of those samples made in the test.
//!
//! Assertions count what codebuild-local's call log and batch list say happened, and what sits
//! on the queues; never how long anything took. Waits are bounded loops on a condition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::local_services;
use autopilot::start::{StartIdentity, StarterWork};
use codebuild_local::control::{ControlClient, SeedBatch, SeedBatchBuild};
use codebuild_local::faults::FaultSpec;
use codebuild_local::model::EnvironmentVariable;
use codebuild_local::protocol::CallRecord;
use harness::lambda::{self, FunctionSpec, RunningFunction, SqsEventSource, SqsSourceSpec};
use harness::moto::MotoServer;
use harness::stack::{self, CodeBuildCli, PATIENCE, QueueWithDlq, Redrive};
use harness::workspace;
use serde_json::{Value, json};

/// A sample HTTP API v2 event as AWS documents it; each request overrides its request parts.
const SAMPLE_EVENT: &str = include_str!("../../fixtures/apigw-http-v2-request.json");

const GITHUB_PING: &str = include_str!("../../../shared/tests/fixtures/webhooks/github/ping.json");
const GITHUB_PUSH: &str = include_str!("../../../shared/tests/fixtures/webhooks/github/push.json");
const GITHUB_PR_SYNCHRONIZE: &str =
    include_str!("../../../shared/tests/fixtures/webhooks/github/pull_request.synchronize.json");
const GITHUB_PR_CLOSED: &str =
    include_str!("../../../shared/tests/fixtures/webhooks/github/pull_request.closed.json");
const GITLAB_PUSH: &str = include_str!("../../../shared/tests/fixtures/webhooks/gitlab/push.json");
const GITLAB_TAG_PUSH: &str =
    include_str!("../../../shared/tests/fixtures/webhooks/gitlab/tag_push.json");
const GITLAB_MERGE_REQUEST: &str =
    include_str!("../../../shared/tests/fixtures/webhooks/gitlab/merge_request.json");
const BITBUCKET_PUSH: &str =
    include_str!("../../../shared/tests/fixtures/webhooks/bitbucket/repo_push.json");
const BITBUCKET_PR_UPDATED: &str =
    include_str!("../../../shared/tests/fixtures/webhooks/bitbucket/pullrequest_updated.json");

/// Secrets Manager names and values. `github-retired` exists but is not configured.
const GITHUB_SECRET: (&str, &str) = ("wh/github", "gh-current-5b7c0d");
const GITHUB_NEXT_SECRET: (&str, &str) = ("wh/github-next", "gh-next-91fa2e");
const GITHUB_RETIRED_SECRET: (&str, &str) = ("wh/github-retired", "gh-retired-0c4d11");
const GITLAB_TOKEN: (&str, &str) = ("wh/gitlab", "gl-token-7e21aa");
const BITBUCKET_SECRET: (&str, &str) = ("wh/bitbucket", "bb-secret-3d9f04");

/// The access keys the functions sign with: codebuild-local names them as initiators.
const STARTER_KEY: &str = "autopilot-batch-starter";
const WEBHOOK_KEY: &str = "autopilot-webhook";

/// The largest body the configuration accepts (the sample bodies are at most 28 KB).
const MAX_BODY_BYTES: usize = 65_536;

/// One configuration for every test. Repository names are the samples' own.
const CONFIG: &str = r#"
[webhooks]
max_body_bytes = 65536

[webhooks.secrets]
github = ["wh/github", "wh/github-next"]
gitlab = ["wh/gitlab"]
bitbucket = ["wh/bitbucket"]

[[projects]]
name = "hello"

[[projects]]
name = "hello-main"

[[projects]]
name = "diaspora"

[[projects]]
name = "example"

[[projects]]
name = "gitlab-test"

[[projects]]
name = "team-repo"

# Every event of the octokit samples' repository builds `hello`; `hello-main` only pushes to main.
[[repositories]]
provider = "github"
name = "Codertocat/Hello-World"
[[repositories.targets]]
project = "hello"
[[repositories.targets]]
project = "hello-main"
filter_groups = [
  [ { type = "EVENT", pattern = "PUSH" }, { type = "HEAD_REF", pattern = "^refs/heads/main$" } ],
]

[[repositories]]
provider = "gitlab"
name = "mike/diaspora"
[[repositories.targets]]
project = "diaspora"

[[repositories]]
provider = "gitlab"
name = "jsmith/example"
[[repositories.targets]]
project = "example"

[[repositories]]
provider = "gitlab"
name = "gitlabhq/gitlab-test"
[[repositories.targets]]
project = "gitlab-test"

[[repositories]]
provider = "bitbucket"
name = "team_name/repo_name"
[[repositories.targets]]
project = "team-repo"
"#;

/// The project names of [`CONFIG`].
fn configured_projects() -> Vec<String> {
    CONFIG
        .lines()
        .skip_while(|line| !line.starts_with("[[projects]]"))
        .take_while(|line| !line.starts_with("# Every event"))
        .filter_map(|line| line.trim().strip_prefix("name = "))
        .map(|name| name.trim_matches('"').to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Signing, with the RustCrypto crates the workspace pins (checked against RFC 4231 vectors and
// against the shared crate's own verifier below).

mod sign {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    /// HMAC-SHA256 (RFC 2104) of `message` under `key`.
    pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// `sha256=<hex>`, as GitHub and Bitbucket send it.
    pub fn signature(secret: &str, body: &[u8]) -> String {
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(secret.as_bytes(), body))
        )
    }

    /// `application/x-www-form-urlencoded` of one value, as GitHub encodes `payload=`.
    pub fn form_encode(value: &str) -> String {
        form_urlencoded::byte_serialize(value.as_bytes()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries

/// One HTTP request as a provider would send it to `POST /webhooks/{provider}`.
#[derive(Clone)]
struct Delivery {
    /// The path segment (`github`, …, or something unknown).
    provider: String,
    /// Header names as the provider spells them; API Gateway lowercases them.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send the body base64-encoded (`isBase64Encoded: true`), as API Gateway does for
    /// content types it does not treat as text.
    base64: bool,
}

impl Delivery {
    fn new(provider: &str, headers: &[(&str, String)], body: impl Into<Vec<u8>>) -> Self {
        Self {
            provider: provider.to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
            body: body.into(),
            base64: false,
        }
    }

    /// A GitHub delivery of `event`, JSON body signed with `secret`.
    fn github(event: &str, delivery_id: &str, body: impl Into<Vec<u8>>, secret: &str) -> Self {
        let body = body.into();
        Self::new(
            "github",
            &[
                ("User-Agent", "GitHub-Hookshot/4a2b1c".to_owned()),
                ("Content-Type", "application/json".to_owned()),
                ("X-GitHub-Event", event.to_owned()),
                ("X-GitHub-Delivery", delivery_id.to_owned()),
                ("X-GitHub-Hook-ID", "292430182".to_owned()),
                ("X-Hub-Signature-256", sign::signature(secret, &body)),
            ],
            body,
        )
    }

    /// A GitLab delivery of `event` with the token `token`; `delivery_id` is both the
    /// `Idempotency-Key` and the `X-Gitlab-Event-UUID`.
    fn gitlab(event: &str, delivery_id: &str, body: impl Into<Vec<u8>>, token: &str) -> Self {
        Self::new(
            "gitlab",
            &[
                ("User-Agent", "GitLab/17.5.0".to_owned()),
                ("Content-Type", "application/json".to_owned()),
                ("X-Gitlab-Event", event.to_owned()),
                ("X-Gitlab-Token", token.to_owned()),
                ("X-Gitlab-Event-UUID", delivery_id.to_owned()),
                ("Idempotency-Key", delivery_id.to_owned()),
                ("X-Gitlab-Instance", "https://gitlab.example.com".to_owned()),
            ],
            body,
        )
    }

    /// A Bitbucket Cloud delivery of `event`, signed with `secret`.
    fn bitbucket(event: &str, delivery_id: &str, body: impl Into<Vec<u8>>, secret: &str) -> Self {
        let body = body.into();
        Self::new(
            "bitbucket",
            &[
                ("User-Agent", "Bitbucket-Webhooks/2.0".to_owned()),
                ("Content-Type", "application/json".to_owned()),
                ("X-Event-Key", event.to_owned()),
                ("X-Request-UUID", delivery_id.to_owned()),
                (
                    "X-Hook-UUID",
                    "{cb3d2f1e-0a9b-4c8d-8e7f-6a5b4c3d2e1f}".to_owned(),
                ),
                ("X-Attempt-Number", "1".to_owned()),
                ("X-Hub-Signature", sign::signature(secret, &body)),
            ],
            body,
        )
    }

    fn without(mut self, header: &str) -> Self {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(header));
        self
    }

    fn with_header(self, header: &str, value: &str) -> Self {
        let mut this = self.without(header);
        this.headers.push((header.to_owned(), value.to_owned()));
        this
    }

    /// The same request with its body replaced by `body` (headers, signature included, kept).
    fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn base64(mut self) -> Self {
        self.base64 = true;
        self
    }

    /// The event API Gateway (HTTP API, payload 2.0) sends for this request.
    fn event(&self) -> Value {
        let mut event: Value = serde_json::from_str(SAMPLE_EVENT).unwrap();
        let path = format!("/webhooks/{}", self.provider);
        let route_key = "POST /webhooks/{provider}";
        let mut headers = serde_json::Map::new();
        for (name, value) in [
            ("host", "r3pmxmplak.execute-api.us-east-1.amazonaws.com"),
            (
                "x-amzn-trace-id",
                "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
            ),
            ("x-forwarded-for", "192.30.252.1"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-proto", "https"),
            ("accept", "*/*"),
        ] {
            headers.insert(name.to_owned(), json!(value));
        }
        headers.insert(
            "content-length".to_owned(),
            json!(self.body.len().to_string()),
        );
        for (name, value) in &self.headers {
            headers.insert(name.to_ascii_lowercase(), json!(value));
        }
        let user_agent = headers
            .get("user-agent")
            .cloned()
            .unwrap_or_else(|| json!(""));
        event["routeKey"] = json!(route_key);
        event["rawPath"] = json!(path);
        event["rawQueryString"] = json!("");
        event["headers"] = Value::Object(headers);
        event["requestContext"]["http"]["method"] = json!("POST");
        event["requestContext"]["http"]["path"] = json!(path);
        event["requestContext"]["http"]["sourceIp"] = json!("192.30.252.1");
        event["requestContext"]["http"]["userAgent"] = user_agent;
        event["requestContext"]["routeKey"] = json!(route_key);
        event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
        event["pathParameters"] = json!({ "provider": self.provider });
        event["body"] = if self.base64 {
            json!(aws_smithy_types::base64::encode(&self.body))
        } else {
            json!(String::from_utf8(self.body.clone()).unwrap())
        };
        event["isBase64Encoded"] = json!(self.base64);
        let object = event.as_object_mut().unwrap();
        object.remove("queryStringParameters");
        object.remove("cookies");
        object.remove("stageVariables");
        event
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A GitHub push sample turned into a live push of `branch` (the sample deletes a tag).
fn github_branch_push(branch: &str) -> Vec<u8> {
    let mut push: Value = serde_json::from_str(GITHUB_PUSH).unwrap();
    let sha = "1f0e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6";
    push["ref"] = json!(format!("refs/heads/{branch}"));
    push["deleted"] = json!(false);
    push["created"] = json!(false);
    push["after"] = json!(sha);
    push["base_ref"] = Value::Null;
    push["commits"] = json!([{
        "id": sha,
        "message": "Fix the flaky test",
        "added": [],
        "modified": ["src/lib.rs"],
        "removed": []
    }]);
    push["head_commit"] = json!({"id": sha, "message": "Fix the flaky test"});
    serde_json::to_vec(&push).unwrap()
}

/// `body` with one byte changed: the first byte of the first `needle` becomes `replacement`.
fn tampered(body: &str, needle: &str, replacement: u8) -> Vec<u8> {
    let at = body.find(needle).expect("the needle is in the body");
    let mut bytes = body.as_bytes().to_vec();
    assert_ne!(bytes[at], replacement);
    bytes[at] = replacement;
    bytes
}

// ---------------------------------------------------------------------------------------------
// The stack

/// How the start queue hands messages back unless a test says otherwise: a visibility timeout
/// long enough that a start is never redelivered while it is being handled.
const START_QUEUE: Redrive = Redrive {
    visibility_seconds: 30,
    max_receive_count: 5,
};

struct Stack {
    moto: MotoServer,
    emulator: codebuild_local::Server,
    cli: CodeBuildCli,
    sqs: aws_sdk_sqs::Client,
    start_queue: String,
    start_dlq: String,
    _config: tempfile::NamedTempFile,
    /// The environment every function of the stack gets (AWS endpoints, configuration, ledger).
    env: Vec<(&'static str, String)>,
    /// The webhook function (one execution environment).
    webhook: RunningFunction,
}

/// A webhook answer: HTTP status and JSON body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// `(project, action)` of every queued entry, sorted.
    fn queued(&self) -> Vec<(String, String)> {
        let mut queued: Vec<(String, String)> = self.body["queued"]
            .as_array()
            .unwrap_or_else(|| panic!("no queued list: {self:?}"))
            .iter()
            .map(|q| {
                (
                    q["project"].as_str().unwrap_or_default().to_owned(),
                    q["action"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        queued.sort();
        queued
    }

    /// `(project or "", reason)` of every ignored entry, sorted.
    fn ignored(&self) -> Vec<(String, String)> {
        let mut ignored: Vec<(String, String)> = self.body["ignored"]
            .as_array()
            .unwrap_or_else(|| panic!("no ignored list: {self:?}"))
            .iter()
            .map(|i| {
                (
                    i["project"].as_str().unwrap_or_default().to_owned(),
                    i["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        ignored.sort();
        ignored
    }

    /// The projects listed as duplicates, sorted.
    fn duplicates(&self) -> Vec<String> {
        let mut duplicates: Vec<String> = self.body["duplicates"]
            .as_array()
            .unwrap_or_else(|| panic!("no duplicates list: {self:?}"))
            .iter()
            .map(|d| d["project"].as_str().unwrap_or_default().to_owned())
            .collect();
        duplicates.sort();
        duplicates
    }

    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.body["error"]["code"], code, "{self:?}");
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
    }
}

impl Stack {
    async fn start() -> Stack {
        Self::start_with(START_QUEUE).await
    }

    async fn start_with(redrive: Redrive) -> Stack {
        let emulator = local_services::codebuild_local().await;
        let (moto, sdk) = local_services::moto_with_ledger().await;
        let table = local_services::LEDGER_TABLE.to_owned();

        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let QueueWithDlq {
            queue: start_queue,
            dlq: start_dlq,
        } = stack::create_queue_with_dlq(&sqs, "autopilot-start", redrive)
            .await
            .unwrap();

        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        for (name, value) in [
            GITHUB_SECRET,
            GITHUB_NEXT_SECRET,
            GITHUB_RETIRED_SECRET,
            GITLAB_TOKEN,
            BITBUCKET_SECRET,
        ] {
            stack::create_secret(&secrets, name, value).await.unwrap();
        }

        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), CONFIG).unwrap();
        let config_uri = format!("file:{}", config.path().display());

        let env = base_env(&moto, &emulator, &config_uri, &table);
        let webhook = lambda::start(webhook_spec(&env, &start_queue, "webhook"))
            .await
            .unwrap();
        let cli = CodeBuildCli::new(emulator.endpoint());
        // Every configured project exists in CodeBuild, as in the account the configuration
        // was written for.
        cli.create_projects(configured_projects()).await.unwrap();
        emulator.control().clear_calls().await.unwrap();
        Stack {
            moto,
            emulator,
            cli,
            sqs,
            start_queue,
            start_dlq,
            _config: config,
            env,
            webhook,
        }
    }

    /// The webhook function as the template deploys it, pointed at this stack.
    fn webhook_spec(&self, name: &str) -> FunctionSpec {
        webhook_spec(&self.env, &self.start_queue, name)
    }

    /// The batch starter, fed from the start queue as its event source mapping does (partial
    /// batch responses on).
    async fn starter(&self) -> (RunningFunction, SqsEventSource) {
        let binary = workspace::binary("batch-starter");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build -p batch-starter` first",
            binary.display()
        );
        let mut spec = FunctionSpec {
            timeout: Duration::from_secs(60),
            ..FunctionSpec::new("batch-starter", binary)
        };
        for (key, value) in &self.env {
            spec = spec.with_env(*key, value);
        }
        spec = spec
            .with_env("AWS_ACCESS_KEY_ID", STARTER_KEY)
            .with_env("AUTOPILOT_DRY_RUN", "false");
        let function = lambda::start(spec).await.unwrap();
        let source = lambda::sqs_source::start(
            SqsSourceSpec::new(&self.start_queue, self.moto.endpoint()),
            function.clone(),
        )
        .await
        .unwrap();
        (function, source)
    }

    fn control(&self) -> ControlClient {
        self.emulator.control()
    }

    /// One CodeBuild call, as the AWS CLI would send it (for reading back).
    async fn codebuild(&self, operation: &str, body: Value) -> Value {
        self.cli.call(operation, &body).await.unwrap()
    }

    /// Sends one request through `function`; the function must answer (not fail).
    async fn send_to(function: &RunningFunction, delivery: &Delivery) -> Answer {
        let invocation = function.invoke(delivery.event()).await.unwrap();
        let response = invocation.result.unwrap_or_else(|error| {
            panic!(
                "webhook failed instead of answering: {error:?}\nlogs: {:#?}",
                function.logs()
            )
        });
        let status = u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap();
        let raw = response["body"].as_str().unwrap_or_default();
        let text = if response["isBase64Encoded"] == true {
            String::from_utf8(aws_smithy_types::base64::decode(raw).unwrap()).unwrap()
        } else {
            raw.to_owned()
        };
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {response}"));
        Answer { status, body }
    }

    async fn send(&self, delivery: &Delivery) -> Answer {
        Self::send_to(&self.webhook, delivery).await
    }

    /// Receives and deletes everything on `queue_url` (until a receive comes back empty).
    async fn drain(&self, queue_url: &str) -> Vec<String> {
        stack::take_messages(&self.sqs, queue_url, 0).await.unwrap()
    }

    /// The work the webhook put on the start queue since the last drain.
    async fn queued_work(&self) -> Vec<StarterWork> {
        self.drain(&self.start_queue)
            .await
            .iter()
            .map(|body| serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
            .collect()
    }

    /// True when `queue_url` holds nothing, visible, in flight or delayed.
    async fn queue_is_empty(&self, queue_url: &str) -> bool {
        stack::queue_is_empty(&self.sqs, queue_url).await.unwrap()
    }

    /// Waits until the starter has handled at least `received` messages and the start queue
    /// is empty: every start it was given is done (its CodeBuild calls made).
    async fn starter_settled(&self, source: &SqsEventSource, received: u64) {
        stack::eventually("the start queue is drained", || async {
            let stats = source.stats();
            stats.received >= received
                && stats.received == stats.deleted + stats.returned
                && self.queue_is_empty(&self.start_queue).await
        })
        .await
        .unwrap();
    }

    async fn calls(&self) -> Vec<CallRecord> {
        self.control().calls().await.unwrap()
    }

    /// The calls of `operation` CodeBuild answered (not the injected faults), in order.
    async fn answered(&self, operation: &str) -> Vec<CallRecord> {
        self.calls()
            .await
            .into_iter()
            .filter(|call| call.operation == operation && call.fault.is_none())
            .collect()
    }

    /// The answered `StartBuildBatch` calls for `project`.
    async fn starts_of(&self, project: &str) -> Vec<CallRecord> {
        self.answered("StartBuildBatch")
            .await
            .into_iter()
            .filter(|call| call.params["projectName"] == project)
            .collect()
    }

    /// Every batch of `project`, as CodeBuild describes them.
    async fn batches_of(&self, project: &str) -> Vec<Value> {
        self.cli.batches_of(project).await.unwrap()
    }

    async fn batch(&self, id: &str) -> Value {
        let found = self
            .codebuild("BatchGetBuildBatches", json!({ "ids": [id] }))
            .await;
        found["buildBatches"][0].clone()
    }

    /// Seeds an in-progress batch of `project` building `branch` (as our own starts mark it).
    async fn running_batch_of_branch(&self, project: &str, branch: &str) -> String {
        let batch = self
            .control()
            .seed_batch(&SeedBatch {
                project_name: project.into(),
                age_seconds: Some(600),
                environment_variables: Some(vec![EnvironmentVariable {
                    name: "AUTOPILOT_BRANCH".into(),
                    value: branch.into(),
                    kind: "PLAINTEXT".into(),
                }]),
                source_version: Some(format!("refs/heads/{branch}")),
                builds: Some(vec![SeedBatchBuild::default()]),
                ..SeedBatch::default()
            })
            .await
            .unwrap();
        batch["id"].as_str().unwrap().to_owned()
    }

    async fn stop(self) {
        self.webhook.shutdown().await;
        self.emulator.shutdown().await;
    }
}

/// The environment every function of the stack gets; each adds its own access key and settings.
fn base_env(
    moto: &MotoServer,
    emulator: &codebuild_local::Server,
    config_uri: &str,
    table: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("AWS_ENDPOINT_URL_CODEBUILD", emulator.endpoint()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AUTOPILOT_CONFIG_URI", config_uri.to_owned()),
        ("AUTOPILOT_CONFIG_TTL_SECONDS", "60".to_owned()),
        ("AUTOPILOT_PROJECT_PATTERNS", "*".to_owned()),
        ("AUTOPILOT_LEDGER_TABLE", table.to_owned()),
    ]
}

/// The webhook function as the template deploys it.
fn webhook_spec(env: &[(&'static str, String)], start_queue: &str, name: &str) -> FunctionSpec {
    let binary = workspace::binary("webhook");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p webhook` first",
        binary.display()
    );
    let mut spec = FunctionSpec {
        timeout: Duration::from_secs(30),
        ..FunctionSpec::new(name, binary)
    };
    for (key, value) in env {
        spec = spec.with_env(*key, value);
    }
    spec.with_env("AWS_ACCESS_KEY_ID", WEBHOOK_KEY)
        .with_env("AUTOPILOT_START_QUEUE_URL", start_queue)
        .with_env("AUTOPILOT_SECRET_TTL_SECONDS", "60")
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

/// The value of environment variable `name` in a batch (as CodeBuild describes it).
fn batch_env(batch: &Value, name: &str) -> Option<String> {
    batch["environment"]["environmentVariables"]
        .as_array()?
        .iter()
        .find(|variable| variable["name"] == name)
        .and_then(|variable| variable["value"].as_str())
        .map(str::to_owned)
}

/// A JSON number or string as text (`2` and `"2"` both give `2`).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The project and delivery id of a piece of queued work.
fn work_summary(work: &StarterWork) -> (String, &'static str, String) {
    let (project, action, identity) = match work {
        StarterWork::Start(start) => (start.project.clone(), "start", &start.identity),
        StarterWork::StopPullRequest {
            project, identity, ..
        } => (project.clone(), "stop_pull_request", identity),
    };
    let delivery = match identity {
        StartIdentity::Webhook { delivery_id, .. } => delivery_id.clone(),
        other => panic!("not a webhook identity: {other:?}"),
    };
    (project, action, delivery)
}

// ---------------------------------------------------------------------------------------------
// Checks that need no binary: the signer and the configuration the tests run with.

#[test]
fn the_test_signer_matches_the_rfc_vectors_and_the_shared_verifier() {
    // RFC 4231, test cases 2 and 6 (a key longer than the block).
    assert_eq!(
        hex::encode(sign::hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(sign::hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    use autopilot::webhook::Provider;
    use autopilot::webhook::verify::{WebhookSecret, verify_signature};
    let body = GITHUB_PR_SYNCHRONIZE.as_bytes();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        sign::signature(GITHUB_SECRET.1, body).parse().unwrap(),
    );
    let secrets = [WebhookSecret::new(GITHUB_SECRET.1)];
    assert_eq!(
        verify_signature(Provider::GitHub, &headers, body, &secrets),
        Ok(())
    );
    assert!(verify_signature(Provider::GitHub, &headers, b"{}", &secrets).is_err());
    assert_eq!(sign::form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
}

#[test]
fn the_test_configuration_is_valid() {
    let config =
        autopilot::config::Config::from_toml(CONFIG, &autopilot::config::AllowedProjects::all());
    assert!(config.is_ok(), "{config:?}");
    assert_eq!(
        configured_projects(),
        [
            "hello",
            "hello-main",
            "diaspora",
            "example",
            "gitlab-test",
            "team-repo"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Every sample, signed; tampered bodies; rotated secrets.

/// One sample delivery and what the webhook must answer.
struct Case {
    name: &'static str,
    delivery: Delivery,
    status: u16,
    /// `(project, action)`, sorted.
    queued: Vec<(&'static str, &'static str)>,
    /// `(project or "", reason)`, sorted.
    ignored: Vec<(&'static str, &'static str)>,
}

#[tokio::test]
async fn every_signed_sample_is_answered_and_queued_as_its_event_means() {
    let stack = Stack::start().await;
    let (gh, gl, bb) = (GITHUB_SECRET.1, GITLAB_TOKEN.1, BITBUCKET_SECRET.1);
    let cases = vec![
        Case {
            name: "github ping",
            delivery: Delivery::github("ping", &new_id(), GITHUB_PING, gh),
            status: 200,
            queued: vec![],
            ignored: vec![],
        },
        Case {
            // The octokit push sample deletes tag `simple-tag`: nothing to build.
            name: "github push (tag deletion)",
            delivery: Delivery::github("push", &new_id(), GITHUB_PUSH, gh),
            status: 202,
            queued: vec![],
            ignored: vec![("hello", "ref_deleted"), ("hello-main", "ref_deleted")],
        },
        Case {
            name: "github pull_request synchronize",
            delivery: Delivery::github("pull_request", &new_id(), GITHUB_PR_SYNCHRONIZE, gh),
            status: 202,
            queued: vec![("hello", "start")],
            ignored: vec![("hello-main", "no_filter_group_matched")],
        },
        Case {
            // A closed pull request stops its batches in every target, whatever the filters.
            name: "github pull_request closed",
            delivery: Delivery::github("pull_request", &new_id(), GITHUB_PR_CLOSED, gh),
            status: 202,
            queued: vec![
                ("hello", "stop_pull_request"),
                ("hello-main", "stop_pull_request"),
            ],
            ignored: vec![],
        },
        Case {
            name: "gitlab push",
            delivery: Delivery::gitlab("Push Hook", &new_id(), GITLAB_PUSH, gl),
            status: 202,
            queued: vec![("diaspora", "start")],
            ignored: vec![],
        },
        Case {
            name: "gitlab tag push",
            delivery: Delivery::gitlab("Tag Push Hook", &new_id(), GITLAB_TAG_PUSH, gl),
            status: 202,
            queued: vec![("example", "start")],
            ignored: vec![],
        },
        Case {
            name: "gitlab merge request",
            delivery: Delivery::gitlab("Merge Request Hook", &new_id(), GITLAB_MERGE_REQUEST, gl),
            status: 202,
            queued: vec![("gitlab-test", "start")],
            ignored: vec![],
        },
        Case {
            name: "bitbucket repo:push",
            delivery: Delivery::bitbucket("repo:push", &new_id(), BITBUCKET_PUSH, bb),
            status: 202,
            queued: vec![("team-repo", "start")],
            ignored: vec![],
        },
        Case {
            name: "bitbucket pullrequest:updated",
            delivery: Delivery::bitbucket(
                "pullrequest:updated",
                &new_id(),
                BITBUCKET_PR_UPDATED,
                bb,
            ),
            status: 202,
            queued: vec![("team-repo", "start")],
            ignored: vec![],
        },
        Case {
            // A signed delivery of an event type nobody acts on.
            name: "github issues (unsupported)",
            delivery: Delivery::github("issues", &new_id(), GITHUB_PR_SYNCHRONIZE, gh),
            status: 202,
            queued: vec![],
            ignored: vec![("", "unsupported_event: issues")],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let answer = stack.send(&case.delivery).await;
        let work = stack.queued_work().await;
        let delivery_id = case
            .delivery
            .headers
            .iter()
            .find(|(name, _)| {
                ["X-GitHub-Delivery", "Idempotency-Key", "X-Request-UUID"].contains(&name.as_str())
            })
            .map(|(_, id)| id.clone())
            .unwrap();
        let expected_queued: Vec<(String, String)> = case
            .queued
            .iter()
            .map(|(p, a)| ((*p).to_owned(), (*a).to_owned()))
            .collect();
        let mut problems = Vec::new();
        if answer.status != case.status {
            problems.push(format!("status {} (want {})", answer.status, case.status));
        }
        if case.status == 200 {
            if answer.body != json!({"status": "pong"}) {
                problems.push("not a pong".to_owned());
            }
        } else {
            if answer.body["provider"] != case.delivery.provider.as_str() {
                problems.push("provider".to_owned());
            }
            if answer.body["delivery"] != delivery_id.as_str() {
                problems.push("delivery".to_owned());
            }
            if answer.queued() != expected_queued {
                problems.push(format!("queued {:?}", answer.queued()));
            }
            let ignored: Vec<(String, String)> = answer.ignored();
            let expected: Vec<(String, String)> = case
                .ignored
                .iter()
                .map(|(p, r)| ((*p).to_owned(), (*r).to_owned()))
                .collect();
            if ignored != expected {
                problems.push(format!("ignored {ignored:?}"));
            }
            if !answer.duplicates().is_empty() {
                problems.push("duplicates".to_owned());
            }
        }
        // What the answer says was queued is what is on the queue, for this delivery.
        let mut on_queue: Vec<(String, String)> = work
            .iter()
            .map(|w| {
                let (project, action, delivery) = work_summary(w);
                if delivery != delivery_id {
                    problems.push(format!("work for delivery {delivery}"));
                }
                (project, action.to_owned())
            })
            .collect();
        on_queue.sort();
        if on_queue != expected_queued {
            problems.push(format!("on the queue {on_queue:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {problems:?} — answer {:?}", case.name, answer));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    stack.stop().await;
}

#[tokio::test]
async fn a_changed_byte_a_wrong_token_or_no_signature_is_401_and_queues_nothing() {
    let stack = Stack::start().await;
    let (gh, gl, bb) = (GITHUB_SECRET.1, GITLAB_TOKEN.1, BITBUCKET_SECRET.1);
    let github = Delivery::github("pull_request", &new_id(), GITHUB_PR_SYNCHRONIZE, gh);
    let bitbucket = Delivery::bitbucket("repo:push", &new_id(), BITBUCKET_PUSH, bb);
    let gitlab = Delivery::gitlab("Push Hook", &new_id(), GITLAB_PUSH, gl);
    // The untouched deliveries are good (so the 401s below are about the one change).
    for good in [&github, &bitbucket, &gitlab] {
        let answer = stack.send(good).await;
        assert_eq!(answer.status, 202, "{} {answer:?}", good.provider);
        assert_eq!(stack.queued_work().await.len(), 1, "{}", good.provider);
    }
    let rejected = [
        (
            "github body byte",
            github
                .clone()
                .with_header("X-GitHub-Delivery", &new_id())
                .with_body(tampered(GITHUB_PR_SYNCHRONIZE, "Codertocat", b'K')),
        ),
        (
            "bitbucket body byte",
            bitbucket
                .clone()
                .with_header("X-Request-UUID", &new_id())
                .with_body(tampered(BITBUCKET_PUSH, "name-of-branch", b'm')),
        ),
        // GitLab's token does not sign the body: the byte that matters is the token's.
        (
            "gitlab token byte",
            gitlab
                .clone()
                .with_header("Idempotency-Key", &new_id())
                .with_header("X-Gitlab-Token", &format!("x{}", &gl[1..])),
        ),
        (
            "github without signature",
            github.clone().without("X-Hub-Signature-256"),
        ),
        (
            "bitbucket without signature",
            bitbucket.clone().without("X-Hub-Signature"),
        ),
        (
            "gitlab without token",
            gitlab.clone().without("X-Gitlab-Token"),
        ),
        (
            "github signed with the bitbucket secret",
            Delivery::github("pull_request", &new_id(), GITHUB_PR_SYNCHRONIZE, bb),
        ),
    ];
    for (name, delivery) in rejected {
        let answer = stack.send(&delivery).await;
        assert_eq!(answer.status, 401, "{name}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], "unauthorized", "{name}");
        assert!(
            stack.queue_is_empty(&stack.start_queue).await,
            "{name} queued work"
        );
    }
    assert!(stack.answered("StartBuildBatch").await.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn while_a_secret_rotates_either_secret_works_and_a_retired_one_does_not() {
    let stack = Stack::start().await;
    for (name, secret) in [("current", GITHUB_SECRET.1), ("next", GITHUB_NEXT_SECRET.1)] {
        let id = new_id();
        let answer = stack
            .send(&Delivery::github(
                "pull_request",
                &id,
                GITHUB_PR_SYNCHRONIZE,
                secret,
            ))
            .await;
        assert_eq!(answer.status, 202, "{name}: {answer:?}");
        assert_eq!(
            answer.queued(),
            [("hello".into(), "start".into())],
            "{name}"
        );
        let work = stack.queued_work().await;
        assert_eq!(work.len(), 1, "{name}");
        assert_eq!(work_summary(&work[0]).2, id);
    }
    let answer = stack
        .send(&Delivery::github(
            "pull_request",
            &new_id(),
            GITHUB_PR_SYNCHRONIZE,
            GITHUB_RETIRED_SECRET.1,
        ))
        .await;
    answer.assert_error(401, "unauthorized");
    assert!(stack.queue_is_empty(&stack.start_queue).await);
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. A push supersedes the older batch of its branch, except on a protected branch.

#[tokio::test]
async fn a_push_starts_a_batch_and_stops_the_older_one_of_its_branch_but_not_on_main() {
    let stack = Stack::start().await;
    let (_starter, source) = stack.starter().await;
    let older_feature = stack.running_batch_of_branch("hello", "feature-x").await;
    let older_main = stack.running_batch_of_branch("hello", "main").await;
    // Another branch's batch is no business of this push.
    let other_branch = stack.running_batch_of_branch("hello", "feature-y").await;
    stack.control().clear_calls().await.unwrap();

    let delivery_id = new_id();
    let answer = stack
        .send(&Delivery::github(
            "push",
            &delivery_id,
            github_branch_push("feature-x"),
            GITHUB_SECRET.1,
        ))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.queued(), [("hello".into(), "start".into())]);
    let queued = &answer.body["queued"][0];
    assert_eq!(queued["event"], "push", "{answer:?}");
    assert_eq!(queued["branch"], "feature-x", "{answer:?}");
    assert_eq!(
        answer.ignored(),
        [("hello-main".into(), "no_filter_group_matched".into())]
    );
    stack.starter_settled(&source, 1).await;

    let starts = stack.starts_of("hello").await;
    assert_eq!(starts.len(), 1, "{starts:?}");
    let start = &starts[0];
    assert_eq!(
        start.params["sourceVersion"],
        "1f0e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"
    );
    assert!(
        start.params["idempotencyToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{start:?}"
    );
    for (name, value) in [
        ("AUTOPILOT_PROVIDER", "github"),
        ("AUTOPILOT_EVENT", "push"),
        ("AUTOPILOT_BRANCH", "feature-x"),
        ("AUTOPILOT_DELIVERY", delivery_id.as_str()),
    ] {
        assert_eq!(override_of(start, name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(override_of(start, "AUTOPILOT_PR"), None);
    let stops = stack.answered("StopBuildBatch").await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert!(
        stops[0].params["id"]
            .as_str()
            .unwrap()
            .ends_with(&older_feature),
        "{stops:?}"
    );
    assert_eq!(
        stack.batch(&older_feature).await["buildBatchStatus"],
        "STOPPED"
    );
    assert_eq!(
        stack.batch(&older_main).await["buildBatchStatus"],
        "IN_PROGRESS"
    );
    assert_eq!(
        stack.batch(&other_branch).await["buildBatchStatus"],
        "IN_PROGRESS"
    );
    let new_batches: Vec<Value> = stack
        .batches_of("hello")
        .await
        .into_iter()
        .filter(|b| batch_env(b, "AUTOPILOT_DELIVERY").as_deref() == Some(&delivery_id))
        .collect();
    assert_eq!(new_batches.len(), 1);
    assert_eq!(new_batches[0]["buildBatchStatus"], "IN_PROGRESS");
    assert_eq!(
        batch_env(&new_batches[0], "AUTOPILOT_BRANCH").as_deref(),
        Some("feature-x")
    );
    assert_eq!(new_batches[0]["initiator"], STARTER_KEY);

    // The same on main, a protected branch: started (by both targets), nothing stopped.
    stack.control().clear_calls().await.unwrap();
    let answer = stack
        .send(&Delivery::github(
            "push",
            &new_id(),
            github_branch_push("main"),
            GITHUB_SECRET.1,
        ))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(
        answer.queued(),
        [
            ("hello".into(), "start".into()),
            ("hello-main".into(), "start".into())
        ]
    );
    stack.starter_settled(&source, 2).await;
    assert_eq!(stack.starts_of("hello").await.len(), 1);
    assert_eq!(stack.starts_of("hello-main").await.len(), 1);
    let stops = stack.answered("StopBuildBatch").await;
    assert!(stops.is_empty(), "{stops:?}");
    assert_eq!(
        stack.batch(&older_main).await["buildBatchStatus"],
        "IN_PROGRESS"
    );
    source.stop().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Five copies of one delivery at once, and again an hour later: one batch.

#[tokio::test]
async fn five_concurrent_copies_of_a_delivery_and_one_an_hour_later_start_one_batch() {
    let stack = Stack::start().await;
    let (_starter, source) = stack.starter().await;
    let delivery = Delivery::github(
        "pull_request",
        &new_id(),
        GITHUB_PR_SYNCHRONIZE,
        GITHUB_SECRET.1,
    );
    // Five execution environments, as API Gateway's concurrent requests get.
    let functions = stack::start_environments(5, |n| stack.webhook_spec(&format!("webhook-{n}")))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for function in &functions {
        let function = function.clone();
        let delivery = delivery.clone();
        handles.push(tokio::spawn(async move {
            Stack::send_to(&function, &delivery).await
        }));
    }
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    for answer in &answers {
        assert_eq!(answer.status, 202, "{answers:#?}");
    }
    let queued: usize = answers.iter().map(|a| a.queued().len()).sum();
    assert_eq!(queued, 1, "{answers:#?}");
    let duplicates = answers
        .iter()
        .filter(|a| a.duplicates() == ["hello"])
        .count();
    assert_eq!(duplicates, 4, "{answers:#?}");

    stack.starter_settled(&source, 1).await;
    let starts = stack.starts_of("hello").await;
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(
        override_of(&starts[0], "AUTOPILOT_PR").as_deref(),
        Some("2")
    );

    // An hour later (past CodeBuild's five-minute token window) GitHub's redelivery comes.
    stack.control().advance_clock(3600).await.unwrap();
    let later = Stack::send_to(&functions[0], &delivery).await;
    assert_eq!(later.status, 202, "{later:?}");
    assert!(later.queued().is_empty(), "{later:?}");
    assert_eq!(later.duplicates(), ["hello"], "{later:?}");
    stack.starter_settled(&source, 1).await;
    assert_eq!(stack.starts_of("hello").await.len(), 1);
    assert_eq!(stack.batches_of("hello").await.len(), 1);
    assert_eq!(source.stats().received, 1, "{:?}", source.stats());

    source.stop().await;
    stack::shutdown_all(functions).await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Bad requests; GitHub's form-encoded deliveries.

#[tokio::test]
async fn malformed_unknown_oversized_and_headerless_requests_get_json_errors() {
    let stack = Stack::start().await;
    let gh = GITHUB_SECRET.1;

    let malformed = stack
        .send(&Delivery::github(
            "push",
            &new_id(),
            "{\"ref\": \"refs/heads/x\",",
            gh,
        ))
        .await;
    malformed.assert_error(400, "bad_request");

    let mut unknown = Delivery::github("push", &new_id(), github_branch_push("x"), gh);
    unknown.provider = "gitea".to_owned();
    stack.send(&unknown).await.assert_error(404, "not_found");

    // Valid JSON, signed, over the limit.
    let mut big: Value = serde_json::from_slice(&github_branch_push("x")).unwrap();
    big["padding"] = json!("p".repeat(MAX_BODY_BYTES));
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > MAX_BODY_BYTES);
    stack
        .send(&Delivery::github("push", &new_id(), big, gh))
        .await
        .assert_error(413, "payload_too_large");

    let headerless = Delivery::github("push", &new_id(), github_branch_push("x"), gh)
        .without("X-GitHub-Delivery");
    stack
        .send(&headerless)
        .await
        .assert_error(400, "bad_request");
    let no_event = Delivery::bitbucket("", &new_id(), BITBUCKET_PUSH, BITBUCKET_SECRET.1)
        .without("X-Event-Key");
    stack.send(&no_event).await.assert_error(400, "bad_request");

    assert!(stack.queue_is_empty(&stack.start_queue).await);
    stack.stop().await;
}

#[tokio::test]
async fn a_form_encoded_github_delivery_works_like_json() {
    let stack = Stack::start().await;
    let form = format!("payload={}", sign::form_encode(GITHUB_PR_SYNCHRONIZE));
    for base64 in [false, true] {
        let id = new_id();
        let mut delivery = Delivery::github("pull_request", &id, form.clone(), GITHUB_SECRET.1)
            .with_header("Content-Type", "application/x-www-form-urlencoded");
        if base64 {
            delivery = delivery.base64();
        }
        let answer = stack.send(&delivery).await;
        assert_eq!(answer.status, 202, "base64 {base64}: {answer:?}");
        assert_eq!(
            answer.queued(),
            [("hello".into(), "start".into())],
            "{answer:?}"
        );
        assert_eq!(text(&answer.body["queued"][0]["pull_request"]), "2");
        let work = stack.queued_work().await;
        assert_eq!(work.len(), 1);
        assert_eq!(work_summary(&work[0]), ("hello".into(), "start", id));
        let StarterWork::Start(start) = &work[0] else {
            panic!("{work:?}")
        };
        assert_eq!(
            start.source_version.as_deref(),
            Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
        );
    }
    // Signed over the JSON inside rather than the form sent: refused.
    let wrong = Delivery::github(
        "pull_request",
        &new_id(),
        GITHUB_PR_SYNCHRONIZE,
        GITHUB_SECRET.1,
    )
    .with_header("Content-Type", "application/x-www-form-urlencoded")
    .with_body(form.clone());
    stack.send(&wrong).await.assert_error(401, "unauthorized");
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. CodeBuild throttled: the start is kept, in the end in the start DLQ.

#[tokio::test]
async fn a_start_that_codebuild_keeps_throttling_ends_in_the_start_dlq() {
    let max_receive_count = 2;
    let stack = Stack::start_with(Redrive {
        visibility_seconds: 1,
        max_receive_count,
    })
    .await;
    stack
        .control()
        .set_faults(&FaultSpec {
            operations: Some(vec!["StartBuildBatch".into()]),
            throttle_every: Some(1),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    let delivery_id = new_id();
    let answer = stack
        .send(&Delivery::gitlab(
            "Push Hook",
            &delivery_id,
            GITLAB_PUSH,
            GITLAB_TOKEN.1,
        ))
        .await;
    assert_eq!(answer.queued(), [("diaspora".into(), "start".into())]);

    let (starter, source) = stack.starter().await;
    // Bounded wait for the message to move: SQS (moto) moves it on a receive after
    // maxReceiveCount receives.
    let mut dead = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while dead.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the start never reached the DLQ; starter stats {:?}; logs {:#?}",
            source.stats(),
            starter.logs()
        );
        dead = stack.drain(&stack.start_dlq).await;
    }
    let stats = source.stats();
    source.stop().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let work: StarterWork = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(
        work_summary(&work),
        ("diaspora".into(), "start", delivery_id.clone())
    );
    // Not deleted as handled, not left behind: the DLQ holds the only copy.
    assert!(stack.queue_is_empty(&stack.start_queue).await);
    assert!(stats.received >= u64::from(max_receive_count), "{stats:?}");
    assert_eq!(stats.deleted, 0, "{stats:?}");
    let calls = stack.calls().await;
    let throttled = calls
        .iter()
        .filter(|c| c.operation == "StartBuildBatch" && c.fault.is_some())
        .count();
    assert!(
        throttled >= max_receive_count as usize,
        "{throttled} throttled calls"
    );
    assert!(stack.answered("StartBuildBatch").await.is_empty());
    assert!(stack.batches_of("diaspora").await.is_empty());
    starter.shutdown().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. GitLab merge requests and Bitbucket pull requests start batches with AUTOPILOT_PR.

#[tokio::test]
async fn a_gitlab_merge_request_and_a_bitbucket_pull_request_start_batches_with_their_number() {
    let stack = Stack::start().await;
    let (_starter, source) = stack.starter().await;
    let gitlab_id = new_id();
    let bitbucket_id = new_id();
    let gitlab = stack
        .send(&Delivery::gitlab(
            "Merge Request Hook",
            &gitlab_id,
            GITLAB_MERGE_REQUEST,
            GITLAB_TOKEN.1,
        ))
        .await;
    assert_eq!(gitlab.queued(), [("gitlab-test".into(), "start".into())]);
    assert_eq!(text(&gitlab.body["queued"][0]["pull_request"]), "1");
    let bitbucket = stack
        .send(&Delivery::bitbucket(
            "pullrequest:updated",
            &bitbucket_id,
            BITBUCKET_PR_UPDATED,
            BITBUCKET_SECRET.1,
        ))
        .await;
    assert_eq!(bitbucket.queued(), [("team-repo".into(), "start".into())]);
    assert_eq!(text(&bitbucket.body["queued"][0]["pull_request"]), "1");
    stack.starter_settled(&source, 2).await;

    let expectations = [
        (
            "gitlab-test",
            "gitlab",
            "pull_request_opened",
            "ms-viewport",
            "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            gitlab_id.as_str(),
        ),
        (
            "team-repo",
            "bitbucket",
            "pull_request_updated",
            "branch2",
            "d3022fc0ca3d",
            bitbucket_id.as_str(),
        ),
    ];
    for (project, provider, event, branch, commit, delivery) in expectations {
        let starts = stack.starts_of(project).await;
        assert_eq!(starts.len(), 1, "{project}: {starts:?}");
        let start = &starts[0];
        assert_eq!(start.params["sourceVersion"], commit, "{project}");
        for (name, value) in [
            ("AUTOPILOT_PROVIDER", provider),
            ("AUTOPILOT_EVENT", event),
            ("AUTOPILOT_BRANCH", branch),
            ("AUTOPILOT_PR", "1"),
            ("AUTOPILOT_DELIVERY", delivery),
        ] {
            assert_eq!(
                override_of(start, name).as_deref(),
                Some(value),
                "{project} {name}"
            );
        }
        let batches = stack.batches_of(project).await;
        assert_eq!(batches.len(), 1, "{project}");
        assert_eq!(batch_env(&batches[0], "AUTOPILOT_PR").as_deref(), Some("1"));
        assert_eq!(batches[0]["buildBatchStatus"], "IN_PROGRESS");
    }
    assert!(stack.answered("StopBuildBatch").await.is_empty());
    source.stop().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. CodeBuild throttling half its calls while deliveries arrive: every start happens once or
//    sits in the start DLQ; none lost, none doubled.

/// Distinct deliveries sent in the throttled run.
const THROTTLED_DELIVERIES: usize = 20;
/// Webhook execution environments they arrive through, concurrently.
const THROTTLED_WEBHOOKS: usize = 4;
/// The fault generator's seed. With this one, in the runs seen, one start exhausted both of
/// its receives and went to the DLQ while the others got through, some on their second
/// receive: both outcomes and the redelivery are exercised (the assertions hold for any seed).
const THROTTLE_SEED: u64 = 4;

#[tokio::test]
async fn with_codebuild_throttling_half_its_calls_every_start_happens_once_or_sits_in_the_dlq() {
    // A short visibility timeout keeps the test quick; two receives mean a start the SDK's
    // retries could not get through is handed back once (the redelivery path) before the DLQ.
    let stack = Stack::start_with(Redrive {
        visibility_seconds: 1,
        max_receive_count: 2,
    })
    .await;
    // Every CodeBuild operation, as an account-wide rate limit would; the draws are independent
    // per call (unlike an evenly spread fraction, which retries can phase-lock with).
    stack
        .control()
        .set_faults(&FaultSpec {
            throttle_probability: Some(0.5),
            seed: Some(THROTTLE_SEED),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    let (starter, source) = stack.starter().await;

    let webhooks = stack::start_environments(THROTTLED_WEBHOOKS, |n| {
        stack.webhook_spec(&format!("webhook-{n}"))
    })
    .await
    .unwrap();
    // Pushes to distinct branches: each routes one start of `hello` and supersedes nothing
    // but its own branch's (absent) older batches.
    let deliveries: Vec<(String, Delivery)> = (0..THROTTLED_DELIVERIES)
        .map(|n| {
            let id = new_id();
            let push = github_branch_push(&format!("load-{n:02}"));
            let delivery = Delivery::github("push", &id, push, GITHUB_SECRET.1);
            (id, delivery)
        })
        .collect();
    let mut handles = Vec::new();
    for (n, (_, delivery)) in deliveries.iter().enumerate() {
        let function = webhooks[n % THROTTLED_WEBHOOKS].clone();
        let delivery = delivery.clone();
        handles.push(tokio::spawn(async move {
            Stack::send_to(&function, &delivery).await
        }));
    }
    for handle in handles {
        let answer = handle.await.unwrap();
        assert_eq!(answer.status, 202, "{answer:?}");
        assert_eq!(answer.queued(), [("hello".into(), "start".into())]);
    }
    stack
        .starter_settled(&source, THROTTLED_DELIVERIES as u64)
        .await;
    let stats = source.stats();
    source.stop().await;
    let calls = stack.calls().await;
    // Read back without faults (the reads below are the test's, not the starter's).
    stack.control().clear_faults().await.unwrap();

    let ours: BTreeMap<&str, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(n, (id, _))| (id.as_str(), n))
        .collect();
    // Batches per delivery, from CodeBuild's own state.
    let mut started: BTreeMap<String, usize> = BTreeMap::new();
    for project in ["hello", "hello-main"] {
        for batch in stack.batches_of(project).await {
            let delivery = batch_env(&batch, "AUTOPILOT_DELIVERY")
                .unwrap_or_else(|| panic!("a batch without AUTOPILOT_DELIVERY: {batch}"));
            assert_eq!(batch["projectName"], "hello", "{batch}");
            *started.entry(delivery).or_default() += 1;
        }
    }
    // Starts per delivery waiting in the start DLQ.
    let mut dead: BTreeMap<String, usize> = BTreeMap::new();
    for body in stack.drain(&stack.start_dlq).await {
        let work: StarterWork =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let (project, action, delivery) = work_summary(&work);
        assert_eq!((project.as_str(), action), ("hello", "start"), "{work:?}");
        *dead.entry(delivery).or_default() += 1;
    }
    let strays: Vec<&String> = started
        .keys()
        .chain(dead.keys())
        .filter(|id| !ours.contains_key(id.as_str()))
        .collect();
    assert!(strays.is_empty(), "deliveries nobody sent: {strays:?}");
    let mut wrong = Vec::new();
    for (id, n) in &ours {
        let batches = started.get(*id).copied().unwrap_or(0);
        let dead_letters = dead.get(*id).copied().unwrap_or(0);
        if batches + dead_letters != 1 {
            wrong.push(format!(
                "delivery {n} ({id}): {batches} batch(es), {dead_letters} in the DLQ"
            ));
        }
    }
    let batches: usize = started.values().sum();
    let dead_letters: usize = dead.values().sum();
    let start_calls: Vec<&CallRecord> = calls
        .iter()
        .filter(|call| call.operation == "StartBuildBatch")
        .collect();
    let accepted = start_calls
        .iter()
        .filter(|call| call.fault.is_none())
        .count();
    let throttled = calls.iter().filter(|call| call.fault.is_some()).count();
    let observed = format!(
        "seed {THROTTLE_SEED}: {batches} batches started, {dead_letters} starts in the DLQ; \
         StartBuildBatch {accepted} accepted of {} calls; {throttled} of {} CodeBuild calls \
         throttled; start queue {stats:?}",
        start_calls.len(),
        calls.len(),
    );
    eprintln!("{observed}");
    assert!(wrong.is_empty(), "{observed}\n{wrong:#?}");
    assert_eq!(batches + dead_letters, THROTTLED_DELIVERIES, "{observed}");
    // CodeBuild accepted no more starts than there are deliveries, and every batch came from
    // one it accepted.
    assert!(accepted <= THROTTLED_DELIVERIES, "{observed}");
    assert!(accepted >= batches, "{observed}");
    // The faults bit: the starts went through despite throttled calls, not in their absence.
    assert!(
        start_calls.iter().any(|call| call.fault.is_some()),
        "{observed}"
    );
    assert!(stack.queue_is_empty(&stack.start_queue).await);

    stack::shutdown_all(webhooks).await;
    starter.shutdown().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Beyond the list: a dependency down is a 503 that loses nothing.

/// A 127.0.0.1 URL where nothing listens (a port that was free a moment ago).
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// The ledger, the start queue or Secrets Manager unreachable: 503 `upstream_unavailable`,
/// nothing queued, and the same delivery once everything is back is queued once (a claim made
/// before the queue refused was released, not left to block the redelivery).
#[tokio::test]
async fn with_the_ledger_the_queue_or_the_secrets_down_a_delivery_is_503_and_kept_for_redelivery() {
    let stack = Stack::start().await;
    let delivery = Delivery::github(
        "pull_request",
        &new_id(),
        GITHUB_PR_SYNCHRONIZE,
        GITHUB_SECRET.1,
    );
    for service in ["DYNAMODB", "SQS", "SECRETS_MANAGER"] {
        let broken = lambda::start(
            stack
                .webhook_spec(&format!("webhook-no-{service}"))
                .with_env(format!("AWS_ENDPOINT_URL_{service}"), closed_endpoint()),
        )
        .await
        .unwrap();
        let answer = Stack::send_to(&broken, &delivery).await;
        answer.assert_error(503, "upstream_unavailable");
        assert!(
            stack.queue_is_empty(&stack.start_queue).await,
            "{service}: queued"
        );
        broken.shutdown().await;
    }
    let answer = stack.send(&delivery).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.queued(), [("hello".into(), "start".into())]);
    assert_eq!(stack.queued_work().await.len(), 1);
    stack.stop().await;
}
