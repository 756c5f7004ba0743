//! The SDK adapter against the in-process `codebuild-local` emulator on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use autopilot::aws::SdkCodeBuild;
use autopilot::idempotency::IdempotencyKey;
use autopilot::model::{BuildId, BuildStatus};
use autopilot::ports::{CodeBuild, CodeBuildError, RetryBuildRequest};
use aws_sdk_codebuild::config::retry::RetryConfig;
use aws_sdk_codebuild::config::{BehaviorVersion, Credentials, Region};
use codebuild_local::control::SeedBuild;
use codebuild_local::faults::FaultSpec;
use codebuild_local::model::Status;
use codebuild_local::{Config, Server, serve};

struct Fixture {
    server: Server,
    sdk: aws_sdk_codebuild::Client,
    adapter: SdkCodeBuild,
}

/// Starts the emulator on an ephemeral port and an adapter pointed at it. Retries are off so
/// every adapter call is exactly one request and injected faults surface.
async fn fixture() -> Fixture {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = serve(Config::default(), addr).await.unwrap();
    let config = aws_sdk_codebuild::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(server.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .build();
    let sdk = aws_sdk_codebuild::Client::from_conf(config);
    Fixture {
        server,
        adapter: SdkCodeBuild::new(sdk.clone()),
        sdk,
    }
}

async fn seed_failed_build(fx: &Fixture, project: &str) -> BuildId {
    let seeded = fx
        .server
        .control()
        .seed_build(&SeedBuild {
            project_name: project.into(),
            build_status: Some(Status::Failed),
            ..SeedBuild::default()
        })
        .await
        .unwrap();
    BuildId::parse(seeded["id"].as_str().unwrap()).unwrap()
}

async fn builds_of(fx: &Fixture, project: &str) -> Vec<String> {
    fx.sdk
        .list_builds_for_project()
        .project_name(project)
        .send()
        .await
        .unwrap()
        .ids()
        .to_vec()
}

async fn retry_calls(fx: &Fixture) -> usize {
    let calls = fx.server.control().calls().await.unwrap();
    calls
        .iter()
        .filter(|c| c.operation == "RetryBuild" && c.fault.is_none())
        .count()
}

#[tokio::test]
async fn retry_twice_with_one_token_creates_one_build() {
    let fx = fixture().await;
    let root = seed_failed_build(&fx, "web").await;
    let request = RetryBuildRequest {
        token: IdempotencyKey::for_retry(&root, 1).token(),
        build: root.clone(),
    };
    let first = fx.adapter.retry_build(&request).await.unwrap();
    let second = fx.adapter.retry_build(&request).await.unwrap();

    assert_eq!(
        first.id.id(),
        second.id.id(),
        "the replay must answer with the first build"
    );
    assert_ne!(first.id.id(), root.id());
    assert_eq!(first.status, BuildStatus::InProgress);
    assert_eq!(retry_calls(&fx).await, 2, "both calls reached the emulator");
    assert_eq!(
        builds_of(&fx, "web").await.len(),
        2,
        "the root and exactly one retry"
    );
    fx.server.shutdown().await;
}

#[tokio::test]
async fn same_token_with_another_build_is_an_idempotency_conflict() {
    let fx = fixture().await;
    let root = seed_failed_build(&fx, "web").await;
    let other = seed_failed_build(&fx, "web").await;
    let token = IdempotencyKey::for_retry(&root, 1).token();
    fx.adapter
        .retry_build(&RetryBuildRequest {
            build: root,
            token: token.clone(),
        })
        .await
        .unwrap();

    let err = fx
        .adapter
        .retry_build(&RetryBuildRequest {
            build: other,
            token,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, CodeBuildError::IdempotencyConflict { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        builds_of(&fx, "web").await.len(),
        3,
        "two roots and one retry"
    );
    fx.server.shutdown().await;
}

#[tokio::test]
async fn token_is_free_again_after_five_minutes() {
    let fx = fixture().await;
    let root = seed_failed_build(&fx, "web").await;
    let request = RetryBuildRequest {
        token: IdempotencyKey::for_retry(&root, 1).token(),
        build: root,
    };
    let first = fx.adapter.retry_build(&request).await.unwrap();
    fx.server.control().advance_clock(5 * 60).await.unwrap();
    let later = fx.adapter.retry_build(&request).await.unwrap();

    assert_ne!(
        first.id.id(),
        later.id.id(),
        "an expired token must create a new build"
    );
    assert_eq!(builds_of(&fx, "web").await.len(), 3);
    fx.server.shutdown().await;
}

#[tokio::test]
async fn injected_throttling_is_a_retryable_error() {
    let fx = fixture().await;
    let root = seed_failed_build(&fx, "web").await;
    fx.server
        .control()
        .set_faults(&FaultSpec {
            operations: Some(vec!["RetryBuild".into()]),
            throttle_fraction: Some(1.0),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    let err = fx
        .adapter
        .retry_build(&RetryBuildRequest {
            token: IdempotencyKey::for_retry(&root, 1).token(),
            build: root,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodeBuildError::Throttled {
                operation: "RetryBuild",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        builds_of(&fx, "web").await.len(),
        1,
        "a throttled retry creates nothing"
    );
    fx.server.shutdown().await;
}

#[tokio::test]
async fn injected_server_error_is_retryable() {
    let fx = fixture().await;
    let root = seed_failed_build(&fx, "web").await;
    fx.server
        .control()
        .set_faults(&FaultSpec {
            operations: Some(vec!["BatchGetBuilds".into()]),
            server_error_fraction: Some(1.0),
            server_error_status: Some(503),
            ..FaultSpec::default()
        })
        .await
        .unwrap();
    let err = fx.adapter.batch_get_builds(&[root]).await.unwrap_err();
    assert!(
        matches!(err, CodeBuildError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    fx.server.shutdown().await;
}

#[tokio::test]
async fn unknown_build_is_not_found() {
    let fx = fixture().await;
    let ghost = BuildId::parse("web:00000000-0000-4000-8000-000000000000").unwrap();
    let err = fx
        .adapter
        .retry_build(&RetryBuildRequest {
            token: IdempotencyKey::for_retry(&ghost, 1).token(),
            build: ghost.clone(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CodeBuildError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());

    let lookup = fx
        .adapter
        .batch_get_builds(std::slice::from_ref(&ghost))
        .await
        .unwrap();
    assert!(lookup.builds.is_empty());
    assert_eq!(lookup.not_found, [ghost.id()]);
    fx.server.shutdown().await;
}

#[tokio::test]
async fn batch_get_builds_reads_a_seeded_build() {
    let fx = fixture().await;
    let id = seed_failed_build(&fx, "api").await;
    let lookup = fx
        .adapter
        .batch_get_builds(std::slice::from_ref(&id))
        .await
        .unwrap();
    let build = &lookup.builds[0];
    assert_eq!(build.id.id(), id.id());
    assert_eq!(build.status, BuildStatus::Failed);
    let location = build.id.location().unwrap();
    assert_eq!(
        (location.region.as_str(), location.account.as_str()),
        ("us-east-1", "123456789012")
    );
    assert!(build.start_time.is_some());
    fx.server.shutdown().await;
}
