//! Handler tests over a CodeBuild fake and real API Gateway HTTP API v2 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::{fetch_builds, handle};
use crate::model::{Build, BuildId, BuildStatus, PhaseType};
use crate::ports::CodeBuildError;
use crate::testing::{Call, FakeCodeBuild, uuid};

/// CodeBuild knowing the builds `ids`, as [`build`] describes them.
fn codebuild_with(ids: &[&str]) -> FakeCodeBuild {
    let fake = FakeCodeBuild::default();
    for id in ids {
        fake.add_build(build(id));
    }
    fake
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

/// A real-shaped API Gateway HTTP API v2 event (payload format 2.0).
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

async fn call(fake: &FakeCodeBuild, event: Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = handle(fake, &request).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

#[tokio::test]
async fn get_build_returns_the_summary() {
    let id = format!("web:{}", uuid(1));
    let fake = codebuild_with(&[&id]);
    let (status, body) = call(&fake, apigw_event("GET", &format!("/builds/{id}"), "")).await;
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
    let fake = codebuild_with(&[&id]);
    let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}");
    let encoded = BuildId::parse(&arn).unwrap().url_encoded();
    let (status, body) = call(&fake, apigw_event("GET", &format!("/builds/{encoded}"), "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["build"]["id"], id);
    assert_eq!(fake.build_gets(), vec![vec![id]]);
}

#[tokio::test]
async fn unknown_build_is_404() {
    let fake = FakeCodeBuild::default();
    let (status, body) = call(
        &fake,
        apigw_event("GET", &format!("/builds/web:{}", uuid(5)), ""),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn many_builds_keep_request_order_and_report_not_found() {
    let ids: Vec<String> = [3, 1, 2]
        .iter()
        .map(|n| format!("web:{}", uuid(*n)))
        .collect();
    let fake = codebuild_with(&[&ids[0], &ids[2]]);
    let query = format!("ids={},{},{}", ids[0], ids[1], ids[2]);
    let (status, body) = call(&fake, apigw_event("GET", "/builds", &query)).await;
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
    let fake = FakeCodeBuild::default();
    let too_many = (0..101)
        .map(|n| format!("web:{}", uuid(n)))
        .collect::<Vec<_>>()
        .join(",");
    for (path, query) in [
        ("/builds", String::new()),
        ("/builds", format!("ids={too_many}")),
        ("/builds", "ids=web:not-a-uuid".to_owned()),
        ("/builds/garbage", String::new()),
    ] {
        let (status, body) = call(&fake, apigw_event("GET", path, &query)).await;
        assert_eq!(status, 400, "{path}?{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
    assert!(fake.build_gets().is_empty());
}

#[tokio::test]
async fn unknown_route_and_wrong_method() {
    let fake = FakeCodeBuild::default();
    assert_eq!(call(&fake, apigw_event("GET", "/nope", "")).await.0, 404);
    let (status, body) = call(
        &fake,
        apigw_event("POST", &format!("/builds/web:{}", uuid(1)), ""),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed");
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
        let fake = FakeCodeBuild::default();
        fake.fail_every(Call::BatchGetBuilds, err);
        let (got, body) = call(
            &fake,
            apigw_event("GET", &format!("/builds/web:{}", uuid(1)), ""),
        )
        .await;
        assert_eq!(
            (got, body["error"]["code"].as_str().unwrap()),
            (status, code)
        );
    }
}

#[tokio::test]
async fn base64_encoded_event_is_accepted() {
    let id = format!("web:{}", uuid(1));
    let fake = codebuild_with(&[&id]);
    let mut event = apigw_event("GET", &format!("/builds/{id}"), "");
    event["isBase64Encoded"] = json!(true);
    event["body"] = json!("e30="); // "{}"
    let (status, _) = call(&fake, event).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn fetch_builds_chunks_by_100_dedups_and_keeps_all() {
    let ids: Vec<String> = (0..250).map(|n| format!("web:{}", uuid(n))).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let fake = codebuild_with(&refs);
    let mut parsed: Vec<BuildId> = ids.iter().map(|id| BuildId::parse(id).unwrap()).collect();
    parsed.push(parsed[0].clone());
    let found = fetch_builds(&fake, &parsed).await.unwrap();
    assert_eq!(found.len(), 250);
    let sizes: Vec<usize> = fake.build_gets().iter().map(Vec::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 250);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert_eq!(sizes.len(), 3);
}
