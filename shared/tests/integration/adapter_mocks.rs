//! The SDK adapter's error mapping and conversions, against `aws-smithy-mocks` rules: HTTP
//! responses shaped like CodeBuild's (AWS JSON 1.1 `__type` bodies, 5xx) go through the SDK's
//! real deserialisers, and one modeled error checks the typed path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use autopilot::aws::SdkCodeBuild;
use autopilot::idempotency::IdempotencyKey;
use autopilot::model::{BatchId, BuildId, BuildStatus, PhaseStatus, PhaseType};
use autopilot::ports::{CodeBuild, CodeBuildError, ListBuildBatchesRequest, RetryBuildRequest};
use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::config::retry::RetryConfig;
use aws_sdk_codebuild::error::ErrorMetadata;
use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::operation::list_build_batches_for_project::ListBuildBatchesForProjectOutput;
use aws_sdk_codebuild::operation::retry_build::RetryBuildError;
use aws_sdk_codebuild::types::error::AccountLimitExceededException;
use aws_sdk_codebuild::types::{
    Build, BuildPhase, BuildPhaseType, LogsLocation, PhaseContext, StatusType,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

const UUID: &str = "8745a7a9-c340-456a-9166-edf953571bEX";

/// One attempt per call, so each rule answers exactly one request and retryable errors
/// surface instead of being retried away.
fn adapter(rules: &[&Rule]) -> SdkCodeBuild {
    SdkCodeBuild::new(mock_client!(
        aws_sdk_codebuild,
        RuleMode::MatchAny,
        rules,
        |c| c.retry_config(RetryConfig::disabled())
    ))
}

fn retry_request() -> RetryBuildRequest {
    let build = BuildId::parse(&format!("web:{UUID}")).unwrap();
    RetryBuildRequest {
        token: IdempotencyKey::for_retry(&build, 1).token(),
        build,
    }
}

/// A `RetryBuild` answered with a JSON 1.1 error body.
async fn retry_error(status: u16, type_: &str, message: &str) -> CodeBuildError {
    let body = serde_json::json!({"__type": type_, "message": message}).to_string();
    let rule = mock!(Client::retry_build)
        .sequence()
        .http_status(status, Some(body))
        .build();
    let result = adapter(&[&rule]).retry_build(&retry_request()).await;
    assert_eq!(rule.num_calls(), 1);
    result.expect_err("an error")
}

#[tokio::test]
async fn throttling_is_retryable() {
    let err = retry_error(400, "ThrottlingException", "Rate exceeded").await;
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
}

#[tokio::test]
async fn queue_full_is_retryable_zero_quota_is_not() {
    let full = retry_error(
        400,
        "AccountLimitExceededException",
        "Cannot have more than 25 builds in queue for the account",
    )
    .await;
    assert!(
        matches!(
            full,
            CodeBuildError::AccountLimitExceeded {
                queue_limit: Some(25),
                ..
            }
        ),
        "{full:?}"
    );
    assert!(full.is_retryable());

    let zero = retry_error(
        400,
        "AccountLimitExceededException",
        "Cannot have more than 0 builds in queue for the account",
    )
    .await;
    assert!(
        matches!(
            zero,
            CodeBuildError::AccountLimitExceeded {
                queue_limit: Some(0),
                ..
            }
        ),
        "{zero:?}"
    );
    assert!(!zero.is_retryable());
}

#[tokio::test]
async fn modeled_account_limit_error_maps_the_same() {
    let rule = mock!(Client::retry_build).then_error(|| {
        RetryBuildError::AccountLimitExceededException(
            AccountLimitExceededException::builder()
                .message("Cannot have more than 1 builds in queue for the account")
                // What the SDK's deserialiser records from `__type`.
                .meta(
                    ErrorMetadata::builder()
                        .code("AccountLimitExceededException")
                        .message("Cannot have more than 1 builds in queue for the account")
                        .build(),
                )
                .build(),
        )
    });
    let err = adapter(&[&rule])
        .retry_build(&retry_request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodeBuildError::AccountLimitExceeded {
                queue_limit: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn not_found_and_invalid_input_are_not_retryable() {
    let err = retry_error(400, "ResourceNotFoundException", "Build not found").await;
    assert!(matches!(err, CodeBuildError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let err = retry_error(400, "InvalidInputException", "Invalid build ID").await;
    assert!(
        matches!(err, CodeBuildError::InvalidInput { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn token_mismatch_is_its_own_variant() {
    let err = retry_error(
        400,
        "InvalidInputException",
        "Idempotency token already used with a different request: parameter mismatch",
    )
    .await;
    assert!(
        matches!(err, CodeBuildError::IdempotencyConflict { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn http_5xx_is_retryable() {
    for status in [500, 503] {
        let rule = mock!(Client::retry_build)
            .sequence()
            .http_status(status, None)
            .build();
        let err = adapter(&[&rule])
            .retry_build(&retry_request())
            .await
            .unwrap_err();
        assert!(
            matches!(err, CodeBuildError::ServerError { status: s, .. } if s == status),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn batch_get_builds_converts_to_domain_types() {
    let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build/web:{UUID}");
    let batch_arn = format!("arn:aws:codebuild:us-east-1:123456789012:build-batch/web:{UUID}");
    let (arn_c, batch_c) = (arn.clone(), batch_arn.clone());
    let rule = mock!(Client::batch_get_builds)
        .match_requests(|req| req.ids().len() == 2)
        .then_output(move || {
            BatchGetBuildsOutput::builder()
                .builds(
                    Build::builder()
                        .id(format!("web:{UUID}"))
                        .arn(&arn_c)
                        .build_number(12)
                        .build_status(StatusType::Failed)
                        .current_phase("COMPLETED")
                        .build_batch_arn(&batch_c)
                        .start_time(aws_smithy_types::DateTime::from_secs(1_767_323_045))
                        .end_time(aws_smithy_types::DateTime::from_secs(1_767_323_105))
                        .logs(LogsLocation::builder().deep_link("https://logs").build())
                        .phases(
                            BuildPhase::builder()
                                .phase_type(BuildPhaseType::Build)
                                .phase_status(StatusType::Failed)
                                .contexts(
                                    PhaseContext::builder()
                                        .status_code("COMMAND_EXECUTION_ERROR")
                                        .message("exit status 2")
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .builds_not_found("web:00000000-0000-4000-8000-000000000000")
                .build()
        });
    let ids = [
        BuildId::parse(&arn).unwrap(),
        BuildId::parse("web:00000000-0000-4000-8000-000000000000").unwrap(),
    ];
    let lookup = adapter(&[&rule]).batch_get_builds(&ids).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(
        lookup.not_found,
        ["web:00000000-0000-4000-8000-000000000000"]
    );
    let build = &lookup.builds[0];
    assert_eq!(build.id.arn().as_deref(), Some(arn.as_str()));
    assert_eq!(build.status, BuildStatus::Failed);
    assert_eq!(build.current_phase, Some(PhaseType::Completed));
    assert_eq!(build.phases[0].phase_status, Some(PhaseStatus::Failed));
    assert_eq!(
        build.phases[0].contexts[0].status_code.as_deref(),
        Some("COMMAND_EXECUTION_ERROR")
    );
    assert_eq!(
        (build.end_time.unwrap() - build.start_time.unwrap()).num_seconds(),
        60
    );
    assert_eq!(build.batch_arn.as_deref(), Some(batch_arn.as_str()));
}

#[tokio::test]
async fn list_batches_passes_the_page_token_and_parses_ids() {
    let rule = mock!(Client::list_build_batches_for_project)
        .match_requests(|req| req.project_name() == Some("web") && req.next_token() == Some("p2"))
        .then_output(|| {
            ListBuildBatchesForProjectOutput::builder()
                .ids(format!("web:{UUID}"))
                .next_token("p3")
                .build()
        });
    let page = adapter(&[&rule])
        .list_build_batches_for_project(&ListBuildBatchesRequest {
            project: "web".into(),
            status: Some(BuildStatus::InProgress),
            next_token: Some("p2".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        page.items,
        [BatchId::parse(&format!("web:{UUID}")).unwrap()]
    );
    assert_eq!(page.next_token.as_deref(), Some("p3"));
}
