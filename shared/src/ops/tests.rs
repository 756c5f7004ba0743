//! Handler tests over fakes of every port and real-shaped API Gateway HTTP API v2 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::idempotent::IdempotencyHeader;
use super::{Caller, OpsPorts, OpsRequest, RequestClock, fetch_builds, handle};
use crate::config::{AllowedProjects, ConfigCache, ConfigUri};
use crate::idempotency::{IdempotencyKey, Operation};
use crate::ledger::{ClaimRequest, Ledger, LedgerError, PayloadHash, RecordStatus};
use crate::model::{BatchGroup, BatchId, Build, BuildBatch, BuildId, BuildStatus, PhaseType};
use crate::ports::{
    BatchAttempts, BatchLookup, BatchRetryType, BudgetOutcome, BudgetRequest, BuildLookup,
    CodeBuild, CodeBuildError, Lineage, ListBuildBatchesRequest, Page, RetryBook,
    RetryBuildBatchRequest, RetryBuildRequest, ServiceError, StartBuildBatchRequest,
};
use crate::testing::{Call, FakeCodeBuild, FakeLedger, FixedSource, now, uuid};

// ---------------------------------------------------------------------------------------------
// Fakes

/// Lineage links only (the rest of the retry book is auto-retry's).
#[derive(Default)]
struct FakeBook {
    links: Mutex<HashMap<String, Lineage>>,
    down: Mutex<bool>,
}

impl FakeBook {
    fn link(&self, parent: &str, build: &str, root: &str, attempt: u32) {
        let lineage = Lineage {
            build: BuildId::parse(build).unwrap(),
            parent: BuildId::parse(parent).unwrap(),
            root: BuildId::parse(root).unwrap(),
            attempt,
            created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
                + chrono::TimeDelta::minutes(attempt.into()),
        };
        self.links.lock().unwrap().insert(build.to_owned(), lineage);
    }

    fn check(&self) -> Result<(), LedgerError> {
        if *self.down.lock().unwrap() {
            return Err(LedgerError::Unavailable {
                operation: "GetItem",
                message: "connection refused".into(),
            });
        }
        Ok(())
    }
}

impl RetryBook for FakeBook {
    async fn lineage_of(&self, build: &BuildId) -> Result<Option<Lineage>, LedgerError> {
        self.check()?;
        Ok(self.links.lock().unwrap().get(&build.id()).cloned())
    }
    async fn retried_by(&self, parent: &BuildId) -> Result<Option<Lineage>, LedgerError> {
        self.check()?;
        let links = self.links.lock().unwrap();
        Ok(links
            .values()
            .find(|l| l.parent.id() == parent.id())
            .cloned())
    }
    async fn record_lineage(&self, _: &Lineage) -> Result<(), LedgerError> {
        unreachable!("the ops API records no lineage")
    }
    async fn batch_attempts(&self, _: &BatchId) -> Result<BatchAttempts, LedgerError> {
        unreachable!("the ops API reads no batch attempts")
    }
    async fn record_batch_attempt(&self, _: &BatchId, _: u32) -> Result<(), LedgerError> {
        unreachable!("the ops API records no batch attempts")
    }
    async fn take_budget(&self, _: &BudgetRequest) -> Result<BudgetOutcome, LedgerError> {
        unreachable!("the ops API takes no budget")
    }
}

/// CodeBuild whose `ListBuildBatchesForProject` pages by `page` ids, as the real API does by
/// 100; everything else is the shared fake's.
struct PagedCodeBuild {
    inner: FakeCodeBuild,
    page: usize,
}

impl CodeBuild for PagedCodeBuild {
    async fn batch_get_builds(&self, ids: &[BuildId]) -> Result<BuildLookup, CodeBuildError> {
        self.inner.batch_get_builds(ids).await
    }
    async fn retry_build(&self, request: &RetryBuildRequest) -> Result<Build, CodeBuildError> {
        self.inner.retry_build(request).await
    }
    async fn retry_build_batch(
        &self,
        request: &RetryBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        self.inner.retry_build_batch(request).await
    }
    async fn start_build_batch(
        &self,
        request: &StartBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        self.inner.start_build_batch(request).await
    }
    async fn stop_build_batch(&self, id: &BatchId) -> Result<BuildBatch, CodeBuildError> {
        self.inner.stop_build_batch(id).await
    }
    async fn batch_get_build_batches(
        &self,
        ids: &[BatchId],
    ) -> Result<BatchLookup, CodeBuildError> {
        self.inner.batch_get_build_batches(ids).await
    }
    async fn list_build_batches_for_project(
        &self,
        request: &ListBuildBatchesRequest,
    ) -> Result<Page<BatchId>, CodeBuildError> {
        let all = self.inner.list_build_batches_for_project(request).await?;
        let from: usize = match &request.next_token {
            Some(token) => token.strip_prefix("cb-").unwrap().parse().unwrap(),
            None => 0,
        };
        let to = (from + self.page).min(all.items.len());
        Ok(Page {
            items: all.items[from..to].to_vec(),
            next_token: (to < all.items.len()).then(|| format!("cb-{to}")),
        })
    }
    async fn list_projects(&self, token: Option<&str>) -> Result<Page<String>, CodeBuildError> {
        self.inner.list_projects(token).await
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// `web` may be started with a source version and environment variables `DEPLOY_*`; `api` with
/// the defaults (source version only); `other` is allowed by IAM but not configured.
const CONFIG: &str = r#"
[[projects]]
name = "web"
[projects.start]
allowed_overrides = ["source_version", "environment_variables"]
environment_variable_names = ["DEPLOY_*"]

[[projects]]
name = "api"
"#;

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

type Ports<C = FakeCodeBuild> = OpsPorts<C, FakeLedger, FakeBook, FixedSource>;

fn ports_with<C>(codebuild: C, config: Result<&str, ServiceError>, allowed: &str) -> Ports<C> {
    OpsPorts {
        codebuild,
        ledger: FakeLedger::default(),
        retry_book: FakeBook::default(),
        config: ConfigCache::new(
            FixedSource(config.map(str::to_owned)),
            ConfigUri::parse("file:/autopilot.toml").unwrap(),
            AllowedProjects::all(),
            Duration::from_secs(60),
        ),
        allowed: AllowedProjects::parse(allowed).unwrap(),
    }
}

fn ports() -> Ports {
    ports_with(FakeCodeBuild::default(), Ok(CONFIG), "*")
}

fn clock() -> RequestClock {
    RequestClock {
        now: now(),
        deadline: now() + chrono::TimeDelta::seconds(30),
    }
}

fn build(id: &str) -> Build {
    let id = BuildId::parse(id).unwrap();
    Build {
        arn: Some(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/{id}"
        )),
        id,
        build_number: Some(7),
        status: BuildStatus::Failed,
        current_phase: Some(PhaseType::Completed),
        build_complete: true,
        source_version: Some("refs/heads/main".into()),
        resolved_source_version: None,
        initiator: Some("alice".into()),
        batch_arn: Some(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build-batch/web:{}",
            uuid(999)
        )),
        start_time: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()),
        end_time: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 5, 35).unwrap()),
        logs_link: Some("https://console.aws.amazon.com/logs".into()),
        phases: Vec::new(),
        environment_variables: Vec::new(),
        native_auto_retry: None,
        log_location: None,
    }
}

/// A failed batch `web:uuid(n)` with one build group.
fn batch(project: &str, n: u32) -> BuildBatch {
    BuildBatch {
        id: BatchId::new(project, &uuid(n)).unwrap(),
        arn: Some(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build-batch/{project}:{}",
            uuid(n)
        )),
        status: BuildStatus::Failed,
        complete: true,
        source_version: Some("refs/heads/main".into()),
        resolved_source_version: Some("8d3f1e0c".into()),
        initiator: Some("alice".into()),
        start_time: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap()),
        end_time: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 10, 0).unwrap()),
        environment_variables: vec![crate::testing::env("SECRET_ISH", "value")],
        build_ids: vec![BuildId::new(project, &uuid(n + 500)).unwrap()],
        batch_number: Some(i64::from(n)),
        current_phase: Some("SUCCEEDED".into()),
        groups: vec![BatchGroup {
            identifier: Some("unit".into()),
            build: Some(BuildId::new(project, &uuid(n + 500)).unwrap()),
            status: BuildStatus::Failed,
        }],
    }
}

/// A real-shaped API Gateway HTTP API v2 event (payload format 2.0), signed by `ALICE`.
fn apigw_event(method: &str, raw_path: &str, raw_query: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": {"accept": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "authorizer": {"iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": ALICE,
                "userId": "AIDAEXAMPLE"
            }},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "curl/8"},
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "02/Jan/2026:03:04:05 +0000",
            "timeEpoch": 1767323045000_i64
        },
        "isBase64Encoded": false
    })
}

/// A `POST` with an `Idempotency-Key` and a JSON body (`Value::Null`: none).
fn post(path: &str, key: &str, body: Value) -> Value {
    let mut event = apigw_event("POST", path, "");
    event["headers"]["idempotency-key"] = json!(key);
    if !body.is_null() {
        event["headers"]["content-type"] = json!("application/json");
        event["body"] = json!(body.to_string());
    }
    event
}

async fn call<C: CodeBuild>(ports: &Ports<C>, event: Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = handle(ports, &request, clock()).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
}

/// CodeBuild calls other than reads.
fn mutations(fake: &FakeCodeBuild) -> Vec<Call> {
    fake.calls()
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                Call::RetryBuild
                    | Call::RetryBuildBatch
                    | Call::StopBuildBatch
                    | Call::StartBuildBatch
            )
        })
        .collect()
}

fn ops_key(key: &str) -> crate::ledger::LedgerKey {
    OpsRequest::ledger_key(
        &Caller::new(ALICE),
        &IdempotencyHeader::parse(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Read routes of the foundation

#[tokio::test]
async fn get_build_returns_the_summary() {
    let id = format!("web:{}", uuid(1));
    let ports = ports();
    ports.codebuild.add_build(build(&id));
    let (status, body) = call(&ports, apigw_event("GET", &format!("/builds/{id}"), "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["build"],
        json!({
            "id": id,
            "arn": format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}"),
            "project": "web",
            "buildNumber": 7,
            "status": "FAILED",
            "currentPhase": "COMPLETED",
            "sourceVersion": "refs/heads/main",
            "initiator": "alice",
            "batchId": format!("web:{}", uuid(999)),
            "startTime": "2026-01-02T03:04:05Z",
            "endTime": "2026-01-02T03:05:35Z",
            "durationSeconds": 90,
            "logsLink": "https://console.aws.amazon.com/logs"
        })
    );
}

#[tokio::test]
async fn get_build_by_percent_encoded_arn() {
    let id = format!("web:{}", uuid(1));
    let ports = ports();
    ports.codebuild.add_build(build(&id));
    let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}");
    let encoded = BuildId::parse(&arn).unwrap().url_encoded();
    let (status, body) = call(
        &ports,
        apigw_event("GET", &format!("/builds/{encoded}"), ""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["build"]["id"], id);
    assert_eq!(ports.codebuild.build_gets(), vec![vec![id]]);
}

#[tokio::test]
async fn unknown_build_is_404() {
    let answer = call(
        &ports(),
        apigw_event("GET", &format!("/builds/web:{}", uuid(5)), ""),
    )
    .await;
    assert_error(&answer, 404, "not_found");
}

#[tokio::test]
async fn many_builds_keep_request_order_and_report_not_found() {
    let ids: Vec<String> = [3, 1, 2]
        .iter()
        .map(|n| format!("web:{}", uuid(*n)))
        .collect();
    let ports = ports();
    ports.codebuild.add_build(build(&ids[0]));
    ports.codebuild.add_build(build(&ids[2]));
    let query = format!("ids={},{},{}", ids[0], ids[1], ids[2]);
    let (status, body) = call(&ports, apigw_event("GET", "/builds", &query)).await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<&str> = body["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[2].as_str()]);
    assert_eq!(body["notFound"], json!([ids[1]]));
}

#[tokio::test]
async fn bad_input_never_reaches_codebuild() {
    let ports = ports();
    let too_many = (0..101)
        .map(|n| format!("web:{}", uuid(n)))
        .collect::<Vec<_>>()
        .join(",");
    for (path, query) in [
        ("/builds", String::new()),
        ("/builds", format!("ids={too_many}")),
        ("/builds", "ids=web:not-a-uuid".to_owned()),
        ("/builds/garbage", String::new()),
        ("/builds/garbage/lineage", String::new()),
        ("/batches/garbage", String::new()),
        ("/projects/no*globs/batches", String::new()),
        ("/projects/web/batches", "maxResults=0".to_owned()),
        ("/projects/web/batches", "status=RUNNING".to_owned()),
        ("/projects/web/batches", "nextToken=forged".to_owned()),
    ] {
        let answer = call(&ports, apigw_event("GET", path, &query)).await;
        assert_error(&answer, 400, "bad_request");
    }
    assert!(ports.codebuild.calls().is_empty());
}

#[tokio::test]
async fn unknown_route_and_wrong_method() {
    let ports = ports();
    assert_error(
        &call(&ports, apigw_event("GET", "/nope", "")).await,
        404,
        "not_found",
    );
    for (method, path) in [
        ("POST", format!("/builds/web:{}", uuid(1))),
        ("DELETE", format!("/batches/web:{}", uuid(1))),
        ("GET", format!("/builds/web:{}/retry", uuid(1))),
        ("PATCH", "/projects/web/batches".to_owned()),
    ] {
        let answer = call(&ports, apigw_event(method, &path, "")).await;
        assert_error(&answer, 405, "method_not_allowed");
    }
}

#[tokio::test]
async fn upstream_errors_map_to_statuses() {
    let cases = [
        (
            CodeBuildError::Throttled {
                operation: "BatchGetBuilds",
                message: "Rate exceeded".into(),
            },
            429,
            "throttled",
        ),
        (
            CodeBuildError::ServerError {
                operation: "BatchGetBuilds",
                status: 500,
                message: String::new(),
            },
            503,
            "upstream_unavailable",
        ),
    ];
    for (err, status, code) in cases {
        let ports = ports();
        ports.codebuild.fail_every(Call::BatchGetBuilds, err);
        let answer = call(
            &ports,
            apigw_event("GET", &format!("/builds/web:{}", uuid(1)), ""),
        )
        .await;
        assert_error(&answer, status, code);
    }
}

#[tokio::test]
async fn base64_encoded_event_is_accepted() {
    let id = format!("web:{}", uuid(1));
    let ports = ports();
    ports.codebuild.add_build(build(&id));
    let mut event = apigw_event("GET", &format!("/builds/{id}"), "");
    event["isBase64Encoded"] = json!(true);
    event["body"] = json!("e30="); // "{}"
    let (status, _) = call(&ports, event).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn fetch_builds_chunks_by_100_dedups_and_keeps_all() {
    let ids: Vec<String> = (0..250).map(|n| format!("web:{}", uuid(n))).collect();
    let fake = FakeCodeBuild::default();
    for id in &ids {
        fake.add_build(build(id));
    }
    let mut parsed: Vec<BuildId> = ids.iter().map(|id| BuildId::parse(id).unwrap()).collect();
    parsed.push(parsed[0].clone());
    let found = fetch_builds(&fake, &parsed).await.unwrap();
    assert_eq!(found.len(), 250);
    let sizes: Vec<usize> = fake.build_gets().iter().map(Vec::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 250);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert_eq!(sizes.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Batches and lineage

#[tokio::test]
async fn get_batch_returns_the_summary_without_environment() {
    let ports = ports();
    ports.codebuild.add_batch(batch("web", 1));
    let id = format!("web:{}", uuid(1));
    let (status, body) = call(&ports, apigw_event("GET", &format!("/batches/{id}"), "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["batch"],
        json!({
            "id": id,
            "arn": format!("arn:aws:codebuild:us-east-1:123456789012:build-batch/{id}"),
            "project": "web",
            "buildBatchNumber": 1,
            "status": "FAILED",
            "complete": true,
            "currentPhase": "SUCCEEDED",
            "sourceVersion": "refs/heads/main",
            "resolvedSourceVersion": "8d3f1e0c",
            "initiator": "alice",
            "startTime": "2026-01-02T03:00:00Z",
            "endTime": "2026-01-02T03:10:00Z",
            "durationSeconds": 600,
            "buildIds": [format!("web:{}", uuid(501))],
            "groups": [{"identifier": "unit", "build": format!("web:{}", uuid(501)), "status": "FAILED"}]
        })
    );
    assert!(!body.to_string().contains("SECRET_ISH"));

    let unknown = call(
        &ports,
        apigw_event("GET", &format!("/batches/web:{}", uuid(2)), ""),
    )
    .await;
    assert_error(&unknown, 404, "not_found");
}

#[tokio::test]
async fn batches_outside_the_deployment_bound_are_404_without_a_call() {
    let ports = ports_with(FakeCodeBuild::default(), Ok(CONFIG), "web");
    ports.codebuild.add_batch(batch("api", 1));
    let get = call(
        &ports,
        apigw_event("GET", &format!("/batches/api:{}", uuid(1)), ""),
    )
    .await;
    assert_error(&get, 404, "not_found");
    let list = call(&ports, apigw_event("GET", "/projects/api/batches", "")).await;
    assert_error(&list, 404, "not_found");
    assert!(ports.codebuild.calls().is_empty());
}

/// Every page of `GET /projects/web/batches?{query}`, following `nextToken`.
async fn all_pages<C: CodeBuild>(ports: &Ports<C>, query: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = match &token {
            Some(t) => format!("{query}&nextToken={t}"),
            None => query.to_owned(),
        };
        let (status, body) = call(ports, apigw_event("GET", "/projects/web/batches", &q)).await;
        assert_eq!(status, 200, "{body}");
        pages.push(
            body["batches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["buildBatchNumber"].to_string())
                .collect(),
        );
        match body.get("nextToken") {
            Some(next) => token = Some(next.as_str().unwrap().to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 20, "paging does not end");
    }
}

#[tokio::test]
async fn list_pages_by_max_results_newest_first_within_and_across_codebuild_pages() {
    let inner = FakeCodeBuild::default();
    for n in 1..=7 {
        inner.add_batch(batch("web", n));
    }
    inner.add_batch(batch("api", 8));
    let paged = ports_with(PagedCodeBuild { inner, page: 3 }, Ok(CONFIG), "*");

    let pages = all_pages(&paged, "maxResults=2").await;
    // CodeBuild pages of 3 (7 6 5 | 4 3 2 | 1), cut into pages of at most 2.
    assert_eq!(
        pages,
        vec![
            vec!["7", "6"],
            vec!["5"],
            vec!["4", "3"],
            vec!["2"],
            vec!["1"]
        ]
    );
    let one_page = all_pages(&paged, "maxResults=100").await;
    assert_eq!(
        one_page,
        vec![vec!["7", "6", "5"], vec!["4", "3", "2"], vec!["1"]]
    );
}

#[tokio::test]
async fn a_batch_started_between_pages_shifts_nothing() {
    let ports = ports();
    for n in 1..=4 {
        ports.codebuild.add_batch(batch("web", n));
    }
    let (_, first) = call(
        &ports,
        apigw_event("GET", "/projects/web/batches", "maxResults=2"),
    )
    .await;
    ports.codebuild.add_batch(batch("web", 5));
    let token = first["nextToken"].as_str().unwrap();
    let (_, second) = call(
        &ports,
        apigw_event(
            "GET",
            "/projects/web/batches",
            &format!("maxResults=2&nextToken={token}"),
        ),
    )
    .await;
    let numbers = |body: &Value| -> Vec<i64> {
        body["batches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["buildBatchNumber"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(numbers(&first), [4, 3]);
    assert_eq!(numbers(&second), [2, 1]);
    assert!(second.get("nextToken").is_none(), "{second}");
}

#[tokio::test]
async fn list_filters_by_status() {
    let ports = ports();
    ports.codebuild.add_batch(batch("web", 1));
    ports.codebuild.add_running_batch("web", Vec::new(), None);
    let (status, body) = call(
        &ports,
        apigw_event("GET", "/projects/web/batches", "status=IN_PROGRESS"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let batches = body["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{body}");
    assert_eq!(batches[0]["status"], "IN_PROGRESS");
    let (_, empty) = call(
        &ports,
        apigw_event("GET", "/projects/web/batches", "status=STOPPED"),
    )
    .await;
    assert_eq!(empty, json!({"batches": []}));
}

#[tokio::test]
async fn lineage_is_the_whole_chain_whichever_build_is_asked() {
    let ports = ports();
    let [root, first, second] = [1, 2, 3].map(|n| format!("web:{}", uuid(n)));
    ports.retry_book.link(&root, &first, &root, 1);
    ports.retry_book.link(&first, &second, &root, 2);
    let expected = json!([
        {"build": root, "attempt": 0, "parent": null, "createdAt": null},
        {"build": first, "attempt": 1, "parent": root, "createdAt": "2026-01-02T03:05:05Z"},
        {"build": second, "attempt": 2, "parent": first, "createdAt": "2026-01-02T03:06:05Z"},
    ]);
    for asked in [&root, &first, &second] {
        let (status, body) = call(
            &ports,
            apigw_event("GET", &format!("/builds/{asked}/lineage"), ""),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["build"], json!(asked));
        assert_eq!(body["root"], json!(root));
        assert_eq!(body["chain"], expected);
    }
    assert!(
        ports.codebuild.calls().is_empty(),
        "a chain needs no CodeBuild call"
    );
}

#[tokio::test]
async fn a_build_never_retried_is_a_chain_of_itself_and_an_unknown_one_404() {
    let ports = ports();
    let alone = format!("web:{}", uuid(7));
    ports.codebuild.add_build(build(&alone));
    let (status, body) = call(
        &ports,
        apigw_event("GET", &format!("/builds/{alone}/lineage"), ""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"build": alone, "root": alone,
               "chain": [{"build": alone, "attempt": 0, "parent": null, "createdAt": null}]})
    );
    let unknown = call(
        &ports,
        apigw_event("GET", &format!("/builds/web:{}/lineage", uuid(8)), ""),
    )
    .await;
    assert_error(&unknown, 404, "not_found");

    *ports.retry_book.down.lock().unwrap() = true;
    let down = call(
        &ports,
        apigw_event("GET", &format!("/builds/{alone}/lineage"), ""),
    )
    .await;
    assert_error(&down, 503, "upstream_unavailable");
}

// ---------------------------------------------------------------------------------------------
// Mutating routes

#[tokio::test]
async fn retry_build_is_201_with_the_new_build_and_a_token_from_the_request() {
    let ports = ports();
    let id = format!("web:{}", uuid(1));
    ports.codebuild.add_build(build(&id));
    let (status, body) = call(
        &ports,
        post(&format!("/builds/{id}/retry"), "k-1", Value::Null),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["build"]["project"], "web");
    assert_eq!(body["build"]["status"], "IN_PROGRESS");
    assert_ne!(body["build"]["id"], json!(id));
    let retries = ports.codebuild.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].build.id(), id);
    let expected = IdempotencyKey::for_ops(
        Operation::RetryBuild,
        "web",
        "k-1",
        "POST /builds/{id}/retry",
        ALICE,
    );
    assert_eq!(retries[0].token, expected.token());
    let record = ports.ledger.record(&ops_key("k-1")).unwrap();
    assert_eq!(record.status, RecordStatus::Completed);
    assert_eq!(record.result, Some(json!({"status": 201, "body": body})));
}

#[tokio::test]
async fn the_same_key_and_request_answer_once_and_identically() {
    let ports = ports();
    let id = format!("web:{}", uuid(1));
    ports.codebuild.add_build(build(&id));
    let path = format!("/builds/{id}/retry");
    let first = call(&ports, post(&path, "k-1", Value::Null)).await;
    // `{}` is the same request as no body; an ARN the same build as its id.
    let again = call(&ports, post(&path, "k-1", json!({}))).await;
    let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}");
    let encoded = BuildId::parse(&arn).unwrap().url_encoded();
    let by_arn = call(
        &ports,
        post(&format!("/builds/{encoded}/retry"), "k-1", Value::Null),
    )
    .await;
    assert_eq!(first.0, 201);
    assert_eq!(again, first);
    assert_eq!(by_arn, first);
    assert_eq!(ports.codebuild.retries().len(), 1, "one RetryBuild");

    // Another caller's same key is another request.
    let mut bob = post(&path, "k-1", Value::Null);
    bob["requestContext"]["authorizer"]["iam"]["userArn"] =
        json!("arn:aws:iam::123456789012:user/bob");
    assert_eq!(call(&ports, bob).await.0, 201);
    assert_eq!(ports.codebuild.retries().len(), 2);
}

#[tokio::test]
async fn the_same_key_for_another_request_is_422_and_acts_not() {
    let ports = ports();
    for n in [1, 2] {
        ports
            .codebuild
            .add_build(build(&format!("web:{}", uuid(n))));
    }
    ports.codebuild.add_batch(batch("web", 3));
    let first = call(
        &ports,
        post(
            &format!("/builds/web:{}/retry", uuid(1)),
            "k-1",
            Value::Null,
        ),
    )
    .await;
    assert_eq!(first.0, 201);
    for other in [
        post(
            &format!("/builds/web:{}/retry", uuid(2)),
            "k-1",
            Value::Null,
        ),
        post(
            &format!("/batches/web:{}/stop", uuid(3)),
            "k-1",
            Value::Null,
        ),
        post(
            &format!("/batches/web:{}/retry", uuid(3)),
            "k-1",
            json!({"retryType": "RETRY_ALL_BUILDS"}),
        ),
    ] {
        assert_error(&call(&ports, other).await, 422, "unprocessable");
    }
    assert_eq!(mutations(&ports.codebuild), [Call::RetryBuild]);
}

#[tokio::test]
async fn a_request_in_flight_is_409() {
    let ports = ports();
    let id = format!("web:{}", uuid(1));
    ports.codebuild.add_build(build(&id));
    let path = format!("/builds/{id}/retry");
    // Another invocation claimed this very request and has not answered yet.
    let fingerprint =
        super::idempotent::fingerprint("POST", "/builds/{id}/retry", json!({"id": id}), json!({}));
    ports
        .ledger
        .claim(&ClaimRequest::new(
            ops_key("k-1"),
            PayloadHash::of_json(&fingerprint),
            now(),
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    assert_error(
        &call(&ports, post(&path, "k-1", Value::Null)).await,
        409,
        "conflict",
    );
    assert!(mutations(&ports.codebuild).is_empty());
}

#[tokio::test]
async fn a_throttled_mutation_releases_the_key_for_a_retry() {
    let ports = ports();
    ports.codebuild.add_batch(batch("web", 1));
    let path = format!("/batches/web:{}/retry", uuid(1));
    ports.codebuild.fail_next(
        Call::RetryBuildBatch,
        CodeBuildError::Throttled {
            operation: "RetryBuildBatch",
            message: "Rate exceeded".into(),
        },
    );
    assert_error(
        &call(&ports, post(&path, "k-1", Value::Null)).await,
        429,
        "throttled",
    );
    assert_eq!(ports.ledger.record(&ops_key("k-1")), None, "released");
    let (status, body) = call(&ports, post(&path, "k-1", Value::Null)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["batch"]["status"], "IN_PROGRESS");
    let retries = ports.codebuild.batch_retries();
    assert_eq!(retries.len(), 2);
    assert_eq!(
        retries[0].token, retries[1].token,
        "the same CodeBuild token"
    );
    assert_eq!(retries[1].retry_type, BatchRetryType::FailedBuilds);
}

#[tokio::test]
async fn a_permanent_refusal_is_kept_as_the_answer() {
    let ports = ports();
    let path = format!("/batches/web:{}/stop", uuid(9));
    ports.codebuild.fail_next(
        Call::StopBuildBatch,
        CodeBuildError::NotFound {
            operation: "StopBuildBatch",
            message: "Build batch not found".into(),
        },
    );
    let first = call(&ports, post(&path, "k-1", Value::Null)).await;
    assert_error(&first, 404, "not_found");
    let again = call(&ports, post(&path, "k-1", Value::Null)).await;
    assert_eq!(again, first);
    assert_eq!(ports.codebuild.stops().len(), 1);
}

#[tokio::test]
async fn retry_batch_takes_its_retry_type_and_stop_answers_200() {
    let ports = ports();
    ports.codebuild.add_batch(batch("web", 1));
    let id = format!("web:{}", uuid(1));
    let (status, body) = call(
        &ports,
        post(
            &format!("/batches/{id}/retry"),
            "k-1",
            json!({"retryType": "RETRY_ALL_BUILDS"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["batch"]["id"], json!(id));
    let retries = ports.codebuild.batch_retries();
    assert_eq!(retries[0].retry_type, BatchRetryType::AllBuilds);
    assert_eq!(
        retries[0].token,
        IdempotencyKey::for_ops(
            Operation::RetryBuildBatch,
            "web",
            "k-1",
            "POST /batches/{id}/retry",
            ALICE
        )
        .token()
    );

    let (status, body) = call(
        &ports,
        post(&format!("/batches/{id}/stop"), "k-2", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["batch"]["status"], "STOPPED");
    assert_eq!(ports.codebuild.stops()[0].id(), id);
}

#[tokio::test]
async fn start_goes_through_the_mechanism_with_the_allowed_overrides() {
    let ports = ports();
    let body = json!({
        "sourceVersion": "refs/heads/release",
        "environmentVariables": [{"name": "DEPLOY_ENV", "value": "staging"}],
        "reason": "release train"
    });
    let (status, answer) = call(&ports, post("/projects/web/batches", "k-1", body.clone())).await;
    assert_eq!(status, 201, "{answer}");
    let batch = answer["batch"].as_object().unwrap();
    assert_eq!(batch.len(), 2, "{answer}");
    assert!(batch["id"].as_str().unwrap().starts_with("web:"));
    assert_eq!(batch["buildBatchNumber"], 1);
    let starts = ports.codebuild.starts();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].project, "web");
    assert_eq!(
        starts[0].source_version.as_deref(),
        Some("refs/heads/release")
    );
    assert_eq!(
        starts[0].environment_variables,
        vec![crate::testing::env("DEPLOY_ENV", "staging")]
    );
    let identity = crate::start::StartIdentity::Ops {
        header_key: "k-1".into(),
        route: "POST /projects/{name}/batches".into(),
        caller: ALICE.into(),
    };
    assert_eq!(starts[0].token, identity.key_for("web").token());
    // The mechanism's own claim, besides the request's record.
    let inner = crate::ledger::LedgerKey::for_mutation(&identity.key_for("web"));
    assert_eq!(
        ports.ledger.status_of(&inner),
        Some(RecordStatus::Completed)
    );

    let again = call(&ports, post("/projects/web/batches", "k-1", body)).await;
    assert_eq!(again, (status, answer));
    assert_eq!(ports.codebuild.starts().len(), 1);
}

#[tokio::test]
async fn a_disallowed_override_is_422_and_starts_nothing() {
    let ports = ports();
    for (project, body, named) in [
        (
            "web",
            json!({"buildspecOverride": "version: 0.2"}),
            "buildspec",
        ),
        ("web", json!({"timeoutInMinutes": 60}), "timeout"),
        (
            "web",
            json!({"environmentVariables": [{"name": "OTHER", "value": "x"}]}),
            "environment_variables",
        ),
        (
            "api",
            json!({"environmentVariables": [{"name": "DEPLOY_ENV", "value": "x"}]}),
            "environment_variables",
        ),
    ] {
        let answer = call(
            &ports,
            post(&format!("/projects/{project}/batches"), "k-1", body),
        )
        .await;
        assert_error(&answer, 422, "unprocessable");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    assert!(ports.codebuild.starts().is_empty());
    assert_eq!(ports.ledger.claims_made(), 0, "refused before any claim");
}

#[tokio::test]
async fn bad_input_on_every_mutating_route_acts_never() {
    let ports = ports();
    let build_path = format!("/builds/web:{}/retry", uuid(1));
    let retry_path = format!("/batches/web:{}/retry", uuid(1));
    let stop_path = format!("/batches/web:{}/stop", uuid(1));
    let start_path = "/projects/web/batches".to_owned();
    let huge = json!({"sourceVersion": "x".repeat(super::MAX_BODY_BYTES)});
    let mut cases: Vec<(Value, u16, &str)> = Vec::new();
    for path in [&build_path, &retry_path, &stop_path, &start_path] {
        // No Idempotency-Key, an empty one, one too long.
        let mut missing = post(path, "k", Value::Null);
        missing["headers"]
            .as_object_mut()
            .unwrap()
            .remove("idempotency-key");
        cases.push((missing, 400, "bad_request"));
        cases.push((post(path, "", Value::Null), 400, "bad_request"));
        cases.push((
            post(path, &"k".repeat(256), Value::Null),
            400,
            "bad_request",
        ));
        // No IAM identity.
        let mut anonymous = post(path, "k", Value::Null);
        anonymous["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        cases.push((anonymous, 401, "unauthorized"));
        // Unknown fields, not JSON, too large.
        cases.push((
            post(path, "k", json!({"unexpected": true})),
            400,
            "bad_request",
        ));
        let mut not_json = post(path, "k", Value::Null);
        not_json["body"] = json!("{not json");
        cases.push((not_json, 400, "bad_request"));
        cases.push((post(path, "k", huge.clone()), 413, "payload_too_large"));
    }
    // Malformed overrides are 400, not 422.
    cases.push((
        post(&start_path, "k", json!({"sourceVersion": " "})),
        400,
        "bad_request",
    ));
    cases.push((
        post(
            &start_path,
            "k",
            json!({"environmentVariables": [{"name": "AUTOPILOT_X", "value": "y"}]}),
        ),
        400,
        "bad_request",
    ));
    cases.push((
        post(&start_path, "k", json!({"reason": "x".repeat(513)})),
        400,
        "bad_request",
    ));
    cases.push((
        post(&retry_path, "k", json!({"retryType": "SOME"})),
        400,
        "bad_request",
    ));
    // Projects the autopilot may not act on.
    cases.push((
        post("/projects/other/batches", "k", Value::Null),
        404,
        "not_found",
    ));
    cases.push((
        post(
            &format!("/builds/other:{}/retry", uuid(1)),
            "k",
            Value::Null,
        ),
        404,
        "not_found",
    ));
    for (event, status, code) in cases {
        let answer = call(&ports, event.clone()).await;
        assert_eq!(
            (answer.0, answer.1["error"]["code"].as_str().unwrap()),
            (status, code),
            "{} {}: {}",
            event["rawPath"],
            event["headers"],
            answer.1
        );
    }
    assert!(ports.codebuild.calls().is_empty());
    assert_eq!(ports.ledger.claims_made(), 0);
}

#[tokio::test]
async fn projects_outside_the_bound_or_without_configuration_cannot_be_changed() {
    let bounded = ports_with(FakeCodeBuild::default(), Ok(CONFIG), "api");
    let answer = call(&bounded, post("/projects/web/batches", "k", Value::Null)).await;
    assert_error(&answer, 404, "not_found");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("project_not_configured")
    );

    let unreadable = ports_with(
        FakeCodeBuild::default(),
        Err(ServiceError::Unavailable {
            service: "ssm",
            operation: "GetParameter",
            message: "throttled".into(),
        }),
        "*",
    );
    let answer = call(&unreadable, post("/projects/web/batches", "k", Value::Null)).await;
    assert_error(&answer, 503, "upstream_unavailable");
    // Reads need no configuration.
    unreadable.codebuild.add_batch(batch("web", 1));
    let (status, _) = call(
        &unreadable,
        apigw_event("GET", &format!("/batches/web:{}", uuid(1)), ""),
    )
    .await;
    assert_eq!(status, 200);
    assert!(bounded.codebuild.calls().is_empty());
}

#[tokio::test]
async fn a_down_ledger_changes_nothing() {
    let ports = ports();
    ports.ledger.set_unavailable(true);
    let answer = call(&ports, post("/projects/web/batches", "k", Value::Null)).await;
    assert_error(&answer, 503, "upstream_unavailable");
    assert!(ports.codebuild.calls().is_empty());
}

#[test]
fn the_sample_events_in_infra_route_to_their_route_keys() {
    let samples = [
        include_str!("../../../infra/events/ops-api-get-build.json"),
        include_str!("../../../infra/events/ops-api-list-builds.json"),
        include_str!("../../../infra/events/ops-api-get-lineage.json"),
        include_str!("../../../infra/events/ops-api-retry-build.json"),
        include_str!("../../../infra/events/ops-api-get-batch.json"),
        include_str!("../../../infra/events/ops-api-retry-batch.json"),
        include_str!("../../../infra/events/ops-api-stop-batch.json"),
        include_str!("../../../infra/events/ops-api-list-batches.json"),
        include_str!("../../../infra/events/ops-api-start-batch.json"),
    ];
    let mut covered = Vec::new();
    for sample in samples {
        let event: Value = serde_json::from_str(sample).unwrap();
        let request = lambda_http::request::from_str(sample).unwrap();
        let routed = super::route(
            request.method().as_str(),
            request.uri().path(),
            request.uri().query(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", event["routeKey"]));
        let key = format!("{} {}", routed.method(), routed.template());
        assert_eq!(event["routeKey"], json!(key));
        if routed.is_mutating() {
            assert!(
                IdempotencyHeader::from_headers(request.headers()).is_ok(),
                "{key}"
            );
            assert!(Caller::of(&request).is_ok(), "{key}");
        }
        covered.push((routed.method(), routed.template()));
    }
    covered.sort();
    let mut all = super::ROUTES.to_vec();
    all.sort();
    assert_eq!(covered, all, "one sample per route");
}
