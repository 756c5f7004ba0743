//! In-memory fakes of the CodeBuild, ledger and configuration-source ports, and the small inputs the test modules of
//! several capabilities share. One fake per port, so a fix to how a fake imitates AWS reaches
//! every test that leans on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ledger::{
    Claim, ClaimOutcome, ClaimRequest, Ledger, LedgerError, LedgerKey, LedgerRecord, PayloadHash,
    RecordStatus, epoch_ms, outcome_of_lost_claim,
};
use crate::model::{
    BatchId, Build, BuildBatch, BuildId, BuildStatus, EnvironmentVariable, EnvironmentVariableType,
    LogLocation, PhaseType,
};
use crate::ports::{
    BATCH_GET_LIMIT, BatchLookup, BuildLookup, CodeBuild, CodeBuildError, ListBuildBatchesRequest,
    Page, RetryBuildBatchRequest, RetryBuildRequest, StartBuildBatchRequest,
};
use crate::start::{BatchStart, StartIdentity, SupersedeScope};
use crate::webhook::Provider;

// ---------------------------------------------------------------------------------------------
// Inputs

/// The instant the tests run at.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// The `n`th made-up UUID.
pub(crate) fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A plaintext environment variable.
pub(crate) fn env(name: &str, value: &str) -> EnvironmentVariable {
    EnvironmentVariable {
        name: name.into(),
        value: value.into(),
        variable_type: EnvironmentVariableType::Plaintext,
    }
}

/// The start a GitHub push of `branch` asks for, under delivery `delivery`.
pub(crate) fn push_start(project: &str, delivery: &str, branch: &str) -> BatchStart {
    BatchStart {
        project: project.into(),
        source_version: Some(format!("refs/heads/{branch}")),
        environment: vec![env("AUTOPILOT_BRANCH", branch)],
        report_status: Some(true),
        buildspec_override: None,
        timeout_minutes: None,
        reason: Some(format!("push to {branch}")),
        identity: StartIdentity::Webhook {
            provider: Provider::GitHub,
            delivery_id: delivery.into(),
            change_index: None,
        },
        supersede: Some(SupersedeScope::Branch(branch.into())),
    }
}

/// A finished, failed build `n` of `project`, started by a person, with its logs.
pub(crate) fn plain_build(project: &str, n: u32) -> Build {
    Build {
        id: BuildId::new(project, &uuid(n)).unwrap(),
        arn: None,
        build_number: Some(n.into()),
        status: BuildStatus::Failed,
        current_phase: Some(PhaseType::Completed),
        build_complete: true,
        source_version: None,
        resolved_source_version: None,
        initiator: Some("alice".into()),
        batch_arn: None,
        start_time: None,
        end_time: None,
        logs_link: None,
        phases: Vec::new(),
        environment_variables: Vec::new(),
        native_auto_retry: None,
        log_location: Some(LogLocation {
            group: "/aws/codebuild/p".into(),
            stream: uuid(n),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// The configuration text, or a failure to read it.
pub(crate) struct FixedSource(pub(crate) Result<String, crate::ports::ServiceError>);

impl crate::ports::ConfigSource for FixedSource {
    async fn fetch(
        &self,
        _: &crate::config::ConfigUri,
    ) -> Result<String, crate::ports::ServiceError> {
        self.0.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// CodeBuild

/// A CodeBuild API operation, as the fake records and fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Call {
    /// `BatchGetBuilds`.
    BatchGetBuilds,
    /// `RetryBuild`.
    RetryBuild,
    /// `RetryBuildBatch`.
    RetryBuildBatch,
    /// `StartBuildBatch`.
    StartBuildBatch,
    /// `StopBuildBatch`.
    StopBuildBatch,
    /// `BatchGetBuildBatches`.
    BatchGetBuildBatches,
    /// `ListBuildBatchesForProject`.
    ListBuildBatchesForProject,
    /// `ListProjects`.
    ListProjects,
}

/// CodeBuild in memory. It holds builds and batches; gets, listings and stops work over them;
/// `RetryBuild` and `StartBuildBatch` are idempotent per token like CodeBuild's; every call is
/// recorded, and any operation can be scripted to fail once (in order) or always (for one
/// project, or for every call).
#[derive(Default)]
pub(crate) struct FakeCodeBuild {
    builds: Mutex<HashMap<String, Build>>,
    /// In the order made: listings answer newest first.
    batches: Mutex<Vec<BuildBatch>>,
    /// Each build `RetryBuild` made, as it answered first.
    built_by_token: Mutex<HashMap<String, Build>>,
    started_by_token: Mutex<HashMap<String, BatchId>>,
    calls: Mutex<Vec<Call>>,
    build_gets: Mutex<Vec<Vec<BuildId>>>,
    retries: Mutex<Vec<RetryBuildRequest>>,
    batch_retries: Mutex<Vec<RetryBuildBatchRequest>>,
    starts: Mutex<Vec<StartBuildBatchRequest>>,
    stops: Mutex<Vec<BatchId>>,
    fail_next: Mutex<HashMap<Call, VecDeque<CodeBuildError>>>,
    /// Keyed by the call and its project (`None`: whatever the project).
    fail_always: Mutex<HashMap<(Call, Option<String>), CodeBuildError>>,
}

impl FakeCodeBuild {
    /// Holds `build` (replacing one with its id).
    pub(crate) fn add_build(&self, build: Build) {
        self.builds.lock().unwrap().insert(build.id.id(), build);
    }

    /// Holds `batch` (replacing one with its id).
    pub(crate) fn add_batch(&self, batch: BuildBatch) {
        let mut batches = self.batches.lock().unwrap();
        match batches.iter_mut().find(|b| b.id.id() == batch.id.id()) {
            Some(held) => *held = batch,
            None => batches.push(batch),
        }
    }

    /// A new in-progress batch of `project` started ten minutes ago, numbered after the
    /// project's others.
    pub(crate) fn add_running_batch(
        &self,
        project: &str,
        environment: Vec<EnvironmentVariable>,
        source_version: Option<String>,
    ) -> BuildBatch {
        let mut batches = self.batches.lock().unwrap();
        let number = batches.iter().filter(|b| b.id.project() == project).count() as i64 + 1;
        let batch = BuildBatch {
            id: BatchId::new(project, &uuid(batches.len() as u32 + 1)).unwrap(),
            arn: None,
            status: BuildStatus::InProgress,
            complete: false,
            source_version,
            resolved_source_version: None,
            initiator: None,
            start_time: Some(now() - chrono::TimeDelta::minutes(10)),
            end_time: None,
            environment_variables: environment,
            build_ids: Vec::new(),
            batch_number: Some(number),
            current_phase: None,
            groups: Vec::new(),
        };
        batches.push(batch.clone());
        batch
    }

    /// The status of a held batch.
    pub(crate) fn status_of(&self, id: &BatchId) -> BuildStatus {
        let batches = self.batches.lock().unwrap();
        let batch = batches.iter().find(|b| b.id.id() == id.id()).unwrap();
        batch.status.clone()
    }

    /// The next `call` fails with `err` (several queue up in order).
    pub(crate) fn fail_next(&self, call: Call, err: CodeBuildError) {
        let mut scripted = self.fail_next.lock().unwrap();
        scripted.entry(call).or_default().push_back(err);
    }

    /// Every `call` about `project` fails with `err`.
    pub(crate) fn fail_project(&self, call: Call, project: &str, err: CodeBuildError) {
        let key = (call, Some(project.to_owned()));
        self.fail_always.lock().unwrap().insert(key, err);
    }

    /// Every `call` fails with `err`.
    pub(crate) fn fail_every(&self, call: Call, err: CodeBuildError) {
        self.fail_always.lock().unwrap().insert((call, None), err);
    }

    /// Every call made, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The ids of every `BatchGetBuilds` call.
    pub(crate) fn build_gets(&self) -> Vec<Vec<String>> {
        let gets = self.build_gets.lock().unwrap();
        gets.iter()
            .map(|ids| ids.iter().map(BuildId::id).collect())
            .collect()
    }

    /// Every `RetryBuild` request.
    pub(crate) fn retries(&self) -> Vec<RetryBuildRequest> {
        self.retries.lock().unwrap().clone()
    }

    /// Every `RetryBuildBatch` request.
    pub(crate) fn batch_retries(&self) -> Vec<RetryBuildBatchRequest> {
        self.batch_retries.lock().unwrap().clone()
    }

    /// Every `StartBuildBatch` request.
    pub(crate) fn starts(&self) -> Vec<StartBuildBatchRequest> {
        self.starts.lock().unwrap().clone()
    }

    /// Every batch `StopBuildBatch` was asked to stop.
    pub(crate) fn stops(&self) -> Vec<BatchId> {
        self.stops.lock().unwrap().clone()
    }

    /// Sets a held batch's state; the batch as it is then.
    fn set_state(&self, id: &BatchId, status: BuildStatus, complete: bool) -> BuildBatch {
        let mut batches = self.batches.lock().unwrap();
        let batch = batches
            .iter_mut()
            .find(|b| b.id.id() == id.id())
            .expect("a batch the fake does not hold");
        batch.status = status;
        batch.complete = complete;
        batch.clone()
    }

    /// Records `call` and answers with the failure scripted for it, if any: a one-off first,
    /// then one for the project, then one for every call.
    fn called(&self, call: Call, project: Option<&str>) -> Result<(), CodeBuildError> {
        self.calls.lock().unwrap().push(call);
        if let Some(err) = self
            .fail_next
            .lock()
            .unwrap()
            .get_mut(&call)
            .and_then(VecDeque::pop_front)
        {
            return Err(err);
        }
        let always = self.fail_always.lock().unwrap();
        let for_project = project.and_then(|p| always.get(&(call, Some(p.to_owned()))));
        match for_project.or_else(|| always.get(&(call, None))) {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }
}

impl CodeBuild for FakeCodeBuild {
    async fn batch_get_builds(&self, ids: &[BuildId]) -> Result<BuildLookup, CodeBuildError> {
        assert!(ids.len() <= BATCH_GET_LIMIT);
        self.build_gets.lock().unwrap().push(ids.to_vec());
        self.called(Call::BatchGetBuilds, None)?;
        let builds = self.builds.lock().unwrap();
        let (found, missing): (Vec<_>, Vec<_>) =
            ids.iter().partition(|id| builds.contains_key(&id.id()));
        Ok(BuildLookup {
            builds: found.iter().map(|id| builds[&id.id()].clone()).collect(),
            not_found: missing.iter().map(|id| id.id()).collect(),
        })
    }

    async fn retry_build(&self, request: &RetryBuildRequest) -> Result<Build, CodeBuildError> {
        self.retries.lock().unwrap().push(request.clone());
        self.called(Call::RetryBuild, Some(request.build.project()))?;
        let mut made = self.built_by_token.lock().unwrap();
        let token = request.token.as_str().to_owned();
        if let Some(build) = made.get(&token) {
            return Ok(build.clone());
        }
        let mut build = plain_build(request.build.project(), made.len() as u32 + 100);
        build.status = BuildStatus::InProgress;
        made.insert(token, build.clone());
        self.add_build(build.clone());
        Ok(build)
    }

    async fn retry_build_batch(
        &self,
        request: &RetryBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        self.batch_retries.lock().unwrap().push(request.clone());
        self.called(Call::RetryBuildBatch, Some(request.batch.project()))?;
        // Retried in place: the same batch runs again.
        Ok(self.set_state(&request.batch, BuildStatus::InProgress, false))
    }

    async fn start_build_batch(
        &self,
        request: &StartBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        self.starts.lock().unwrap().push(request.clone());
        self.called(Call::StartBuildBatch, Some(&request.project))?;
        let token = request.token.as_str().to_owned();
        let known = self.started_by_token.lock().unwrap().get(&token).cloned();
        if let Some(id) = known {
            let batches = self.batches.lock().unwrap();
            return Ok(batches.iter().find(|b| b.id == id).unwrap().clone());
        }
        let batch = self.add_running_batch(
            &request.project,
            request.environment_variables.clone(),
            request.source_version.clone(),
        );
        let mut started = self.started_by_token.lock().unwrap();
        started.insert(token, batch.id.clone());
        Ok(batch)
    }

    async fn stop_build_batch(&self, id: &BatchId) -> Result<BuildBatch, CodeBuildError> {
        self.stops.lock().unwrap().push(id.clone());
        self.called(Call::StopBuildBatch, Some(id.project()))?;
        Ok(self.set_state(id, BuildStatus::Stopped, true))
    }

    async fn batch_get_build_batches(
        &self,
        ids: &[BatchId],
    ) -> Result<BatchLookup, CodeBuildError> {
        assert!(ids.len() <= BATCH_GET_LIMIT);
        self.called(Call::BatchGetBuildBatches, None)?;
        let batches = self.batches.lock().unwrap();
        let held = |id: &BatchId| batches.iter().find(|b| b.id.id() == id.id());
        Ok(BatchLookup {
            batches: ids.iter().filter_map(held).cloned().collect(),
            not_found: ids
                .iter()
                .filter(|id| held(id).is_none())
                .map(BatchId::id)
                .collect(),
        })
    }

    async fn list_build_batches_for_project(
        &self,
        request: &ListBuildBatchesRequest,
    ) -> Result<Page<BatchId>, CodeBuildError> {
        self.called(Call::ListBuildBatchesForProject, Some(&request.project))?;
        let batches = self.batches.lock().unwrap();
        let items = batches
            .iter()
            .rev()
            .filter(|b| b.id.project() == request.project)
            .filter(|b| request.status.as_ref().is_none_or(|s| *s == b.status))
            .map(|b| b.id.clone())
            .collect();
        Ok(Page {
            items,
            next_token: None,
        })
    }

    async fn list_projects(&self, _: Option<&str>) -> Result<Page<String>, CodeBuildError> {
        self.called(Call::ListProjects, None)?;
        Err(CodeBuildError::Unexpected {
            operation: "ListProjects",
            code: None,
            message: "not faked".into(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger

/// An in-memory ledger with the claim semantics of `design/idempotency.md`: a claim wins when no
/// record holds the key or an in-progress one's lease ran out; complete, release and fail act
/// only for the claim that holds the key. It can be made unavailable (every call), or slow to
/// complete (only `complete` throttled).
#[derive(Default)]
pub(crate) struct FakeLedger {
    /// Each record with the id of the claim that holds it.
    records: Mutex<HashMap<String, (LedgerRecord, String)>>,
    claims_made: Mutex<u32>,
    unavailable: Mutex<bool>,
    complete_throttled: Mutex<bool>,
}

impl FakeLedger {
    /// The record under `key`.
    pub(crate) fn record(&self, key: &LedgerKey) -> Option<LedgerRecord> {
        let records = self.records.lock().unwrap();
        records.get(key.as_str()).map(|(r, _)| r.clone())
    }

    /// The status of the record under `key`.
    pub(crate) fn status_of(&self, key: &LedgerKey) -> Option<RecordStatus> {
        self.record(key).map(|r| r.status)
    }

    /// Claims tried while the ledger was up.
    pub(crate) fn claims_made(&self) -> u32 {
        *self.claims_made.lock().unwrap()
    }

    /// Every call fails as if DynamoDB did not answer while `down`.
    pub(crate) fn set_unavailable(&self, down: bool) {
        *self.unavailable.lock().unwrap() = down;
    }

    /// `complete` is throttled while `throttled`.
    pub(crate) fn set_complete_throttled(&self, throttled: bool) {
        *self.complete_throttled.lock().unwrap() = throttled;
    }

    /// A record someone completed before for `payload`, answered with `result`.
    pub(crate) fn seed_completed(&self, key: &LedgerKey, payload: &Value, result: Value) {
        let record = LedgerRecord {
            status: RecordStatus::Completed,
            payload_hash: PayloadHash::of_json(payload),
            in_progress_until_ms: 0,
            result: Some(result),
            reason: None,
        };
        let mut records = self.records.lock().unwrap();
        records.insert(key.as_str().to_owned(), (record, "seeded".into()));
    }

    fn down(&self, operation: &'static str) -> Result<(), LedgerError> {
        if *self.unavailable.lock().unwrap() {
            return Err(LedgerError::Unavailable {
                operation,
                message: "connection refused".into(),
            });
        }
        Ok(())
    }
}

impl Ledger for FakeLedger {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, LedgerError> {
        self.down("PutItem")?;
        let claim_id = {
            let mut made = self.claims_made.lock().unwrap();
            *made += 1;
            format!("claim-{made}")
        };
        let mut records = self.records.lock().unwrap();
        let key = request.key.as_str().to_owned();
        let free = records.get(&key).is_none_or(|(r, _)| {
            r.status == RecordStatus::InProgress && r.in_progress_until_ms < epoch_ms(request.now)
        });
        if !free {
            return outcome_of_lost_claim(records[&key].0.clone(), &request.payload_hash);
        }
        let until = request.in_progress_until_ms();
        let record = LedgerRecord {
            status: RecordStatus::InProgress,
            payload_hash: request.payload_hash.clone(),
            in_progress_until_ms: until,
            result: None,
            reason: None,
        };
        records.insert(key, (record, claim_id.clone()));
        Ok(ClaimOutcome::Won(Claim {
            key: request.key.clone(),
            claim_id,
            in_progress_until_ms: until,
        }))
    }

    async fn complete(&self, claim: &Claim, result: &Value) -> Result<(), LedgerError> {
        self.down("UpdateItem")?;
        if *self.complete_throttled.lock().unwrap() {
            return Err(LedgerError::Throttled {
                operation: "UpdateItem",
                message: "slow down".into(),
            });
        }
        let mut records = self.records.lock().unwrap();
        match records.get_mut(claim.key.as_str()) {
            Some((r, id)) if *id == claim.claim_id && r.status == RecordStatus::InProgress => {
                r.status = RecordStatus::Completed;
                r.result = Some(result.clone());
                Ok(())
            }
            _ => Err(LedgerError::ClaimLost {
                key: claim.key.clone(),
            }),
        }
    }

    async fn release(&self, claim: &Claim) -> Result<(), LedgerError> {
        self.down("DeleteItem")?;
        let mut records = self.records.lock().unwrap();
        if records
            .get(claim.key.as_str())
            .is_some_and(|(_, id)| *id == claim.claim_id)
        {
            records.remove(claim.key.as_str());
        }
        Ok(())
    }

    async fn fail(&self, claim: &Claim, reason: &str) -> Result<(), LedgerError> {
        self.down("UpdateItem")?;
        let mut records = self.records.lock().unwrap();
        if let Some((r, id)) = records.get_mut(claim.key.as_str())
            && *id == claim.claim_id
        {
            r.status = RecordStatus::Failed;
            r.reason = Some(reason.to_owned());
        }
        Ok(())
    }
}
