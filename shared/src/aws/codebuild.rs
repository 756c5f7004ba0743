//! [`CodeBuild`] port over `aws-sdk-codebuild`.

use aws_sdk_codebuild::types::{BuildBatchFilter, RetryBuildBatchType, SortOrderType, StatusType};

use super::convert;
use super::error::map_sdk_error;
use crate::model::{BatchId, Build, BuildBatch, BuildId};
use crate::ports::{
    BatchLookup, BatchRetryType, BuildLookup, CodeBuild, CodeBuildError, ListBuildBatchesRequest,
    Page, RetryBuildBatchRequest, RetryBuildRequest, StartBuildBatchRequest,
};

/// The SDK-backed CodeBuild adapter (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct SdkCodeBuild {
    client: aws_sdk_codebuild::Client,
}

impl SdkCodeBuild {
    /// Wraps a configured SDK client.
    pub fn new(client: aws_sdk_codebuild::Client) -> Self {
        Self { client }
    }
}

impl CodeBuild for SdkCodeBuild {
    async fn batch_get_builds(&self, ids: &[BuildId]) -> Result<BuildLookup, CodeBuildError> {
        const OP: &str = "BatchGetBuilds";
        let out = self
            .client
            .batch_get_builds()
            .set_ids(Some(ids.iter().map(BuildId::id).collect()))
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        Ok(BuildLookup {
            builds: out
                .builds()
                .iter()
                .map(|b| convert::build(OP, b))
                .collect::<Result<_, _>>()?,
            not_found: out.builds_not_found().to_vec(),
        })
    }

    async fn retry_build(&self, request: &RetryBuildRequest) -> Result<Build, CodeBuildError> {
        const OP: &str = "RetryBuild";
        let out = self
            .client
            .retry_build()
            .id(request.build.id())
            .idempotency_token(request.token.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        let build = out
            .build_value()
            .ok_or_else(|| convert::malformed(OP, "no build"))?;
        convert::build(OP, build)
    }

    async fn retry_build_batch(
        &self,
        request: &RetryBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        const OP: &str = "RetryBuildBatch";
        let out = self
            .client
            .retry_build_batch()
            .id(request.batch.id())
            .retry_type(match request.retry_type {
                BatchRetryType::AllBuilds => RetryBuildBatchType::RetryAllBuilds,
                BatchRetryType::FailedBuilds => RetryBuildBatchType::RetryFailedBuilds,
            })
            .idempotency_token(request.token.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        convert::required_batch(OP, out.build_batch())
    }

    async fn start_build_batch(
        &self,
        request: &StartBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        const OP: &str = "StartBuildBatch";
        let overrides = request
            .environment_variables
            .iter()
            .map(|v| convert::env_var_to_sdk(OP, v))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = request
            .timeout_minutes
            .map(|minutes| {
                i32::try_from(minutes).map_err(|_| CodeBuildError::InvalidInput {
                    operation: OP,
                    message: format!("buildTimeoutInMinutesOverride {minutes} is out of range"),
                })
            })
            .transpose()?;
        let out = self
            .client
            .start_build_batch()
            .project_name(&request.project)
            .set_source_version(request.source_version.clone())
            .set_environment_variables_override((!overrides.is_empty()).then_some(overrides))
            .set_report_build_batch_status_override(request.report_status)
            .set_buildspec_override(request.buildspec_override.clone())
            .set_build_timeout_in_minutes_override(timeout)
            .idempotency_token(request.token.as_str())
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        convert::required_batch(OP, out.build_batch())
    }

    async fn stop_build_batch(&self, id: &BatchId) -> Result<BuildBatch, CodeBuildError> {
        const OP: &str = "StopBuildBatch";
        let out = self
            .client
            .stop_build_batch()
            .id(id.id())
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        convert::required_batch(OP, out.build_batch())
    }

    async fn batch_get_build_batches(
        &self,
        ids: &[BatchId],
    ) -> Result<BatchLookup, CodeBuildError> {
        const OP: &str = "BatchGetBuildBatches";
        let out = self
            .client
            .batch_get_build_batches()
            .set_ids(Some(ids.iter().map(BatchId::id).collect()))
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        Ok(BatchLookup {
            batches: out
                .build_batches()
                .iter()
                .map(|b| convert::batch(OP, b))
                .collect::<Result<_, _>>()?,
            not_found: out.build_batches_not_found().to_vec(),
        })
    }

    async fn list_build_batches_for_project(
        &self,
        request: &ListBuildBatchesRequest,
    ) -> Result<Page<BatchId>, CodeBuildError> {
        const OP: &str = "ListBuildBatchesForProject";
        let filter = request.status.as_ref().map(|s| {
            BuildBatchFilter::builder()
                .status(StatusType::from(s.as_str()))
                .build()
        });
        let out = self
            .client
            .list_build_batches_for_project()
            .project_name(&request.project)
            .set_filter(filter)
            .sort_order(SortOrderType::Descending)
            .set_next_token(request.next_token.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        let items = out
            .ids()
            .iter()
            .map(|raw| {
                BatchId::parse(raw)
                    .map_err(|e| convert::malformed(OP, &format!("a bad batch id: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next_token: out.next_token().map(str::to_owned),
        })
    }

    async fn list_projects(
        &self,
        next_token: Option<&str>,
    ) -> Result<Page<String>, CodeBuildError> {
        const OP: &str = "ListProjects";
        let out = self
            .client
            .list_projects()
            .set_next_token(next_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        Ok(Page {
            items: out.projects().to_vec(),
            next_token: out.next_token().map(str::to_owned),
        })
    }
}
