//! The batch starter: the start queue's SQS batches in, one decision per message out.
//!
//! The webhook function puts [`StarterWork`] on the start queue and answers its provider at
//! once; this takes each message from there: a [`StarterWork::Start`] starts its batch at most
//! once per identity and then supersedes the older batches of the same branch / pull request
//! ([`start_and_supersede`]); a [`StarterWork::StopPullRequest`] stops the closed pull request's
//! batches ([`stop_pull_request_batches`]).
//!
//! The answer is SQS's partial batch response: every message not done is named in
//! `batchItemFailures`, so SQS hands it back after the visibility timeout, and after its fifth
//! receive the queue's redrive policy moves it to the dead-letter queue. Nothing is dropped
//! silently. Choices made here:
//!
//! - **Failures that retrying cannot fix are item failures too.** A malformed body, a project
//!   outside the configuration or IAM's bound, a conflict or a refusal by CodeBuild (project not
//!   found) cannot succeed on redelivery, yet dropping them would hide them. Naming them sends
//!   them to the dead-letter queue for a person after the queue's receives. The redeliveries
//!   cost nothing upstream: the ledger's `FAILED` record answers a repeated start without
//!   calling CodeBuild, and a rejection is decided before any call.
//! - **Messages are handled one after the other, in delivery order.** A batch holds at most
//!   ten messages, and order matters between them: a push and then the pull request's close, or
//!   two pushes to one branch, supersede correctly only when the earlier start exists before
//!   the later work lists the batches. The supersede itself stops its batches concurrently, and
//!   sequential starts stay well under CodeBuild's `StartBuildBatch` rate.
//! - **The deadline is checked before each message**: with less than [`RECORD_MARGIN`] left, the
//!   message is named as an item failure untouched, rather than cut off half-way by Lambda's
//!   timeout (which would hand the whole batch back).
//! - **No configuration** (unreadable or invalid, and none loaded before): every message is an
//!   item failure, so they wait in the queue, then the dead-letter queue, for the fix.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::StarterWork;
use super::mechanism::{StartError, StartOutcome, StartRun, start_and_supersede};
use super::settings::StarterSettings;
use super::stop_pull_request::stop_pull_request_batches;
use crate::config::{AllowedProjects, Config, ConfigCache, ProjectEntry};
use crate::ledger::Ledger;
use crate::metrics;
use crate::model::BatchId;
use crate::ports::{CodeBuild, ConfigSource};
use crate::reaper::ReapSummary;
use crate::telemetry::{MAX_LOGGED_ERROR_CHARS, shorten};

/// The function name, as the metrics' `Function` dimension.
pub const FUNCTION_NAME: &str = "batch-starter";

/// No message is begun with less time than this left before the invocation's deadline: a start
/// (claim, `StartBuildBatch`, complete) and its supersede (list, get, stops) take well under it.
pub const RECORD_MARGIN: Duration = Duration::from_secs(5);

/// The SQS attribute counting how often a message was received (this time included).
const RECEIVE_COUNT: &str = "ApproximateReceiveCount";

/// The ports the starter acts through.
#[derive(Debug, Clone)]
pub struct StarterPorts<C, L> {
    /// CodeBuild.
    pub codebuild: C,
    /// The idempotency ledger.
    pub ledger: L,
}

/// What one invocation runs with.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The configuration in force.
    pub config: &'a Config,
    /// The project names IAM lets the function act on.
    pub allowed: &'a AllowedProjects,
    /// Report only, whatever the configuration says (the project's own `dry_run` adds to it).
    pub dry_run: bool,
    /// When Lambda ends the invocation.
    pub deadline: DateTime<Utc>,
    /// The clock, read before each message (`Utc::now`; tests pass a fixed one).
    pub clock: fn() -> DateTime<Utc>,
}

/// Why an invocation could not answer with a partial batch response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarterError {
    /// The input is not an SQS event: nothing in it can be named, so nothing is handled.
    #[error("not an SQS event: {message}")]
    NotAnSqsEvent {
        /// What is wrong with it.
        message: String,
    },
    /// A message that was not done has no `messageId` to name it by. Failing the invocation
    /// hands the whole batch back; the ledger makes the repeated starts duplicates.
    #[error("a message without a messageId was not handled ({reason})")]
    UnnamedMessage {
        /// Why it was not done.
        reason: String,
    },
}

/// What came of one message: the decision line's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordAction {
    /// The batch was started now.
    Started,
    /// The same start was made before: answered from the ledger, nothing called.
    AlreadyStarted,
    /// Dry run: nothing claimed, started or stopped.
    DryRun,
    /// The closed pull request's batches were stopped (or only counted, in dry run).
    Stopped,
    /// The message cannot be acted on (malformed, project not configured or not allowed).
    Rejected,
    /// The start or stop failed in a way retrying cannot fix.
    Failed,
    /// Not done now; it may succeed when SQS hands it back.
    RetryLater,
}

impl RecordAction {
    /// The snake_case name, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::AlreadyStarted => "already_started",
            Self::DryRun => "dry_run",
            Self::Stopped => "stopped",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::RetryLater => "retry_later",
        }
    }

    /// True when the message is named in `batchItemFailures` (handed back, and after the
    /// queue's receives moved to the dead-letter queue).
    pub fn is_item_failure(self) -> bool {
        matches!(self, Self::Rejected | Self::Failed | Self::RetryLater)
    }
}

/// One message's decision: its log line, its counts and whether it is an item failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordDecision {
    /// The SQS message id.
    pub message_id: Option<String>,
    /// How often SQS delivered the message (this time included), when it said so.
    pub receive_count: Option<u32>,
    /// What came of it.
    pub action: RecordAction,
    /// Why: a stable snake_case reason, or the start's own reason for a start made.
    pub reason: String,
    /// The project, once the body was read.
    pub project: Option<String>,
    /// The batch started (now or before), when there is one.
    pub batch_id: Option<String>,
    /// True when nothing was (or would have been) changed: the function's or project's dry run.
    pub dry_run: bool,
    /// Batches stopped: the older ones a start superseded, or the closed pull request's.
    pub stopped: u32,
    /// Batches that would have been stopped (dry run).
    pub would_stop: u32,
    /// Stops that failed (a start's supersede does not fail the start; the next sweep catches
    /// up).
    pub stop_errors: u32,
    /// What went wrong, shortened.
    pub error: Option<String>,
    /// Whether handing the message back can help, for the actions that are item failures.
    pub retryable: Option<bool>,
}

impl RecordDecision {
    /// A decision about `message` not made yet (the fields every outcome shares).
    fn about(message: &SqsMessage, dry_run: bool) -> Self {
        Self {
            message_id: message.message_id.clone(),
            receive_count: message
                .attributes
                .get(RECEIVE_COUNT)
                .and_then(|n| n.trim().parse().ok()),
            action: RecordAction::RetryLater,
            reason: String::new(),
            project: None,
            batch_id: None,
            dry_run,
            stopped: 0,
            would_stop: 0,
            stop_errors: 0,
            error: None,
            retryable: None,
        }
    }

    fn decided(mut self, action: RecordAction, reason: &str) -> Self {
        self.action = action;
        self.reason = reason.to_owned();
        self.retryable = match action {
            RecordAction::RetryLater => Some(true),
            RecordAction::Rejected | RecordAction::Failed => Some(false),
            _ => None,
        };
        self
    }

    fn with_error(mut self, error: &str) -> Self {
        self.error = Some(shorten(error, MAX_LOGGED_ERROR_CHARS));
        self
    }

    fn with_stops(mut self, summary: &ReapSummary) -> Self {
        self.stopped = summary.stopped.total();
        self.would_stop = summary.dry_run.total();
        self.stop_errors = u32::try_from(summary.errors.len()).unwrap_or(u32::MAX);
        self
    }

    /// The one JSON decision line, with the conventions' fixed field names.
    pub fn log(&self) {
        macro_rules! line {
            ($level:ident, $message:literal) => {
                tracing::$level!(
                    action = self.action.as_str(),
                    reason = self.reason.as_str(),
                    project = self.project.as_deref(),
                    batch_id = self.batch_id.as_deref(),
                    dry_run = self.dry_run,
                    message_id = self.message_id.as_deref(),
                    receive_count = self.receive_count,
                    stopped = self.stopped,
                    would_stop = self.would_stop,
                    stop_errors = self.stop_errors,
                    error = self.error.as_deref(),
                    retryable = self.retryable,
                    $message
                )
            };
        }
        if self.action.is_item_failure() {
            line!(warn, "batch-starter handed the message back");
        } else {
            line!(info, "batch-starter decision");
        }
    }
}

/// Every decision of one invocation, in delivery order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchReport {
    /// One per message.
    pub decisions: Vec<RecordDecision>,
}

impl BatchReport {
    /// SQS's partial batch response: `{"batchItemFailures":[{"itemIdentifier": <messageId>}]}`
    /// naming every message not done. Fails when such a message has no id to name it by.
    pub fn response(&self) -> Result<SqsBatchResponse, StarterError> {
        let mut response = SqsBatchResponse::default();
        for decision in self.decisions.iter().filter(|d| d.action.is_item_failure()) {
            match &decision.message_id {
                Some(id) => response.add_failure(id.clone()),
                None => {
                    return Err(StarterError::UnnamedMessage {
                        reason: decision.reason.clone(),
                    });
                }
            }
        }
        Ok(response)
    }

    /// How many decisions came to `action`.
    pub fn count(&self, action: RecordAction) -> u32 {
        let n = self.decisions.iter().filter(|d| d.action == action).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The invocation's one EMF document: `Started`, `AlreadyStarted`, `DryRun` (starts and
    /// stops only reported), `Stopped` (batches), `Rejected`, `Failed` and `RetriedLater`
    /// (messages). One document per invocation: CloudWatch sums the values either way.
    pub fn emf_document(&self, at: DateTime<Utc>) -> Value {
        let sum =
            |field: fn(&RecordDecision) -> u32| -> u32 { self.decisions.iter().map(field).sum() };
        let count = |name, n: u32| (name, "Count", f64::from(n));
        metrics::emf_document(
            FUNCTION_NAME,
            at,
            None,
            &[
                count("Started", self.count(RecordAction::Started)),
                count("AlreadyStarted", self.count(RecordAction::AlreadyStarted)),
                count(
                    "DryRun",
                    self.count(RecordAction::DryRun) + sum(|d| d.would_stop),
                ),
                count("Stopped", sum(|d| d.stopped)),
                count("Rejected", self.count(RecordAction::Rejected)),
                count("Failed", self.count(RecordAction::Failed)),
                count("RetriedLater", self.count(RecordAction::RetryLater)),
            ],
        )
    }

    /// Prints [`BatchReport::emf_document`] to stdout as one EMF line.
    pub fn emit_metrics(&self, at: DateTime<Utc>) {
        println!("{}", self.emf_document(at));
    }
}

/// Reads the invocation's input as an SQS event.
pub fn parse_event(input: Value) -> Result<SqsEvent, StarterError> {
    if input.get("Records").is_none() {
        return Err(StarterError::NotAnSqsEvent {
            message: "no Records".to_owned(),
        });
    }
    serde_json::from_value(input).map_err(|err| StarterError::NotAnSqsEvent {
        message: shorten(&err.to_string(), MAX_LOGGED_ERROR_CHARS),
    })
}

/// One Lambda invocation, as the function's `main` runs it: the SQS event from `input`, the
/// configuration from `cache`, each message handled ([`handle_batch`]), the EMF counts printed,
/// and the partial batch response. `Err` only when the input is not an SQS event or a message
/// to hand back has no id (then Lambda hands the whole batch back).
pub async fn invoke<S, C, L>(
    ports: &StarterPorts<C, L>,
    cache: &ConfigCache<S>,
    allowed: &AllowedProjects,
    settings: &StarterSettings,
    deadline: SystemTime,
    input: Value,
) -> Result<SqsBatchResponse, StarterError>
where
    S: ConfigSource,
    C: CodeBuild,
    L: Ledger,
{
    let result = async {
        let event = parse_event(input)?;
        let report = match cache.current().await {
            Ok(config) => {
                let invocation = Invocation {
                    config: &config,
                    allowed,
                    dry_run: settings.dry_run,
                    deadline: DateTime::<Utc>::from(deadline),
                    clock: Utc::now,
                };
                handle_batch(ports, &invocation, &event).await
            }
            Err(err) => hand_back_all(
                &event,
                settings.dry_run,
                "config_unavailable",
                &err.to_string(),
            ),
        };
        report.emit_metrics(Utc::now());
        report.response()
    }
    .await;
    if let Err(err) = &result {
        tracing::error!(action = "error", error = %err, "batch-starter failed the invocation");
    }
    result
}

/// Handles every message of `event` in delivery order; one decision line each.
pub async fn handle_batch<C: CodeBuild, L: Ledger>(
    ports: &StarterPorts<C, L>,
    invocation: &Invocation<'_>,
    event: &SqsEvent,
) -> BatchReport {
    let mut report = BatchReport::default();
    for message in &event.records {
        let decision = handle_message(ports, invocation, message).await;
        decision.log();
        report.decisions.push(decision);
    }
    report
}

/// Every message handed back untouched, for one `reason` (no configuration).
fn hand_back_all(event: &SqsEvent, dry_run: bool, reason: &str, error: &str) -> BatchReport {
    let decisions = event
        .records
        .iter()
        .map(|message| {
            let decision = RecordDecision::about(message, dry_run)
                .decided(RecordAction::RetryLater, reason)
                .with_error(error);
            decision.log();
            decision
        })
        .collect();
    BatchReport { decisions }
}

async fn handle_message<C: CodeBuild, L: Ledger>(
    ports: &StarterPorts<C, L>,
    invocation: &Invocation<'_>,
    message: &SqsMessage,
) -> RecordDecision {
    let mut decision = RecordDecision::about(message, invocation.dry_run);
    let now = (invocation.clock)();
    let left = (invocation.deadline - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    if left < RECORD_MARGIN {
        return decision.decided(RecordAction::RetryLater, "deadline_near");
    }
    let work = match read_work(message) {
        Ok(work) => work,
        Err(error) => {
            return decision
                .decided(RecordAction::Rejected, "malformed_body")
                .with_error(&error);
        }
    };
    let project = match &work {
        StarterWork::Start(start) => start.project.as_str(),
        StarterWork::StopPullRequest {
            project,
            pull_request,
            ..
        } => {
            if pull_request.trim().is_empty() {
                return decision.decided(RecordAction::Rejected, "missing_pull_request");
            }
            project.as_str()
        }
    };
    if project.trim().is_empty() {
        return decision.decided(RecordAction::Rejected, "missing_project");
    }
    decision.project = Some(project.to_owned());
    if !invocation.allowed.allows(project) {
        return decision.decided(RecordAction::Rejected, "project_not_allowed");
    }
    let Some(entry) = invocation.config.entry_for(project) else {
        return decision.decided(RecordAction::Rejected, "project_not_configured");
    };
    decision.dry_run = invocation.dry_run || entry.dry_run;
    match &work {
        StarterWork::Start(start) => {
            let run = StartRun::until(now, invocation.deadline, invocation.dry_run);
            let result =
                start_and_supersede(&ports.codebuild, &ports.ledger, entry, start, run).await;
            let reason = start.reason.as_deref().unwrap_or("start");
            match result {
                Ok(done) => {
                    decision.batch_id = done.outcome.batch().map(BatchId::id);
                    let decision = decision.decided(action_of(&done.outcome), reason);
                    match &done.supersede {
                        Some(summary) => decision.with_stops(summary),
                        None => decision,
                    }
                }
                Err(err) => start_failed(decision, &err),
            }
        }
        StarterWork::StopPullRequest {
            project,
            pull_request,
            ..
        } => {
            stop_pull_request(
                &ports.codebuild,
                entry,
                project,
                pull_request,
                invocation.dry_run,
                now,
                decision,
            )
            .await
        }
    }
}

/// The message's body as [`StarterWork`], or why not (never the body itself).
fn read_work(message: &SqsMessage) -> Result<StarterWork, String> {
    let body = message.body.as_deref().unwrap_or_default();
    if body.trim().is_empty() {
        return Err("empty body".to_owned());
    }
    serde_json::from_str(body)
        .map_err(|err| format!("unreadable StarterWork ({} bytes): {err}", body.len()))
}

fn action_of(outcome: &StartOutcome) -> RecordAction {
    match outcome {
        StartOutcome::Started { .. } => RecordAction::Started,
        StartOutcome::AlreadyStarted { .. } => RecordAction::AlreadyStarted,
        StartOutcome::DryRun => RecordAction::DryRun,
    }
}

/// A start that did not happen: handed back either way (see the module's notes); the action
/// says whether a redelivery can help.
fn start_failed(mut decision: RecordDecision, err: &StartError) -> RecordDecision {
    if let StartError::NotRecorded { batch, .. } = err {
        decision.batch_id = Some(batch.clone());
    }
    let action = if err.is_retryable() {
        RecordAction::RetryLater
    } else {
        RecordAction::Failed
    };
    decision
        .decided(action, err.reason())
        .with_error(&err.to_string())
}

/// Stops the closed pull request's batches. Any failed call hands the message back: stopping
/// again is harmless (a batch already stopped is no longer listed as in progress).
async fn stop_pull_request<C: CodeBuild>(
    codebuild: &C,
    entry: &ProjectEntry,
    project: &str,
    pull_request: &str,
    dry_run: bool,
    now: DateTime<Utc>,
    decision: RecordDecision,
) -> RecordDecision {
    let summary =
        stop_pull_request_batches(codebuild, entry, project, pull_request, dry_run, now).await;
    let decision = decision.with_stops(&summary);
    let Some(first) = summary.errors.first() else {
        return decision.decided(RecordAction::Stopped, "pull_request_closed");
    };
    let (action, reason) = if summary.errors.iter().any(|e| e.retryable) {
        (RecordAction::RetryLater, "codebuild_unavailable")
    } else {
        (RecordAction::Failed, "codebuild_refused")
    };
    decision.decided(action, reason).with_error(&first.message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::config::ConfigUri;
    use crate::model::BuildStatus;
    use crate::ports::{CodeBuildError, ServiceError};
    use crate::start::StartIdentity;
    use crate::testing::{Call, FakeCodeBuild, FakeLedger, FixedSource, env, now, push_start};
    use crate::webhook::Provider;

    // -----------------------------------------------------------------------------------------
    // Inputs

    const CONFIG: &str = r#"
[[projects]]
name = "web"
[[projects]]
name = "api"
[[projects]]
name = "quiet"
dry_run = true
"#;

    fn config() -> Config {
        Config::from_toml(CONFIG, &AllowedProjects::all()).unwrap()
    }

    fn ports() -> StarterPorts<FakeCodeBuild, FakeLedger> {
        StarterPorts {
            codebuild: FakeCodeBuild::default(),
            ledger: FakeLedger::default(),
        }
    }

    fn invocation<'a>(config: &'a Config, allowed: &'a AllowedProjects) -> Invocation<'a> {
        Invocation {
            config,
            allowed,
            dry_run: false,
            deadline: now() + chrono::TimeDelta::seconds(60),
            clock: now,
        }
    }

    fn start_body(project: &str, delivery: &str, branch: &str) -> String {
        serde_json::to_string(&StarterWork::Start(push_start(project, delivery, branch))).unwrap()
    }

    /// A running batch of `project` with one plaintext variable (`AUTOPILOT_PR`, ...).
    fn seed(codebuild: &FakeCodeBuild, project: &str, name: &str, value: &str) -> BatchId {
        codebuild
            .add_running_batch(project, vec![env(name, value)], None)
            .id
    }

    fn stop_body(project: &str, pull_request: &str) -> String {
        serde_json::to_string(&StarterWork::StopPullRequest {
            project: project.into(),
            pull_request: pull_request.into(),
            identity: StartIdentity::Webhook {
                provider: Provider::GitHub,
                delivery_id: "closed-1".into(),
                change_index: None,
            },
        })
        .unwrap()
    }

    /// One record as the SQS event source hands it to a function.
    fn message(id: &str, body: &str) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": format!("handle-{id}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:autopilot-start",
            "awsRegion": "us-east-1",
        })
    }

    fn event(messages: Vec<Value>) -> SqsEvent {
        parse_event(json!({ "Records": messages })).unwrap()
    }

    /// Handles the messages; the ids handed back, and the report.
    async fn handle(
        ports: &StarterPorts<FakeCodeBuild, FakeLedger>,
        invocation: &Invocation<'_>,
        messages: Vec<Value>,
    ) -> (Vec<String>, BatchReport) {
        let report = handle_batch(ports, invocation, &event(messages)).await;
        let failed = report
            .response()
            .unwrap()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        (failed, report)
    }

    fn actions(report: &BatchReport) -> Vec<RecordAction> {
        report.decisions.iter().map(|d| d.action).collect()
    }

    fn throttled() -> CodeBuildError {
        CodeBuildError::Throttled {
            operation: "StartBuildBatch",
            message: "Rate exceeded".into(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Tests

    #[tokio::test]
    async fn a_batch_hands_back_exactly_the_malformed_and_the_throttled() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        ports
            .codebuild
            .fail_project(Call::StartBuildBatch, "api", throttled());

        let (failed, report) = handle(
            &ports,
            &invocation(&config, &allowed),
            vec![
                message("m-1", &start_body("web", "d-1", "feature/x")),
                message("m-2", r#"{"kind":"start","project":"#),
                message("m-3", &start_body("api", "d-1", "feature/x")),
            ],
        )
        .await;

        assert_eq!(failed, ["m-2", "m-3"]);
        assert_eq!(
            actions(&report),
            [
                RecordAction::Started,
                RecordAction::Rejected,
                RecordAction::RetryLater
            ]
        );
        let [started, malformed, throttled] = &report.decisions[..] else {
            panic!("{report:?}")
        };
        assert_eq!(started.project.as_deref(), Some("web"));
        assert_eq!(started.reason, "push to feature/x");
        assert!(started.batch_id.is_some());
        assert_eq!(malformed.reason, "malformed_body");
        assert!(malformed.error.as_deref().unwrap().contains("bytes"));
        assert_eq!(throttled.reason, "codebuild_unavailable");
        assert_eq!(throttled.retryable, Some(true));
        let projects: Vec<_> = ports
            .codebuild
            .starts()
            .into_iter()
            .map(|s| s.project)
            .collect();
        assert_eq!(projects, ["web", "api"]);
    }

    #[tokio::test]
    async fn the_same_start_twice_in_a_batch_and_again_later_starts_one_batch() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let body = start_body("web", "d-1", "feature/x");
        let run = invocation(&config, &allowed);

        let (failed, first) = handle(
            &ports,
            &run,
            vec![message("m-1", &body), message("m-2", &body)],
        )
        .await;
        // The webhook function put it on the queue again (a redelivered delivery).
        let (failed_later, later) = handle(&ports, &run, vec![message("m-3", &body)]).await;

        assert!(failed.is_empty() && failed_later.is_empty());
        assert_eq!(ports.codebuild.starts().len(), 1, "one StartBuildBatch");
        assert_eq!(
            actions(&first),
            [RecordAction::Started, RecordAction::AlreadyStarted]
        );
        assert_eq!(actions(&later), [RecordAction::AlreadyStarted]);
        let batch = first.decisions[0].batch_id.clone().unwrap();
        assert_eq!(first.decisions[1].batch_id.as_ref(), Some(&batch));
        assert_eq!(later.decisions[0].batch_id.as_ref(), Some(&batch));
    }

    #[tokio::test]
    async fn a_dry_run_starts_and_stops_nothing() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        seed(&ports.codebuild, "web", "AUTOPILOT_PR", "7");
        let dry = Invocation {
            dry_run: true,
            ..invocation(&config, &allowed)
        };

        let (failed, report) = handle(
            &ports,
            &dry,
            vec![
                message("m-1", &start_body("web", "d-1", "feature/x")),
                message("m-2", &stop_body("web", "7")),
            ],
        )
        .await;
        // The project's own dry run does the same when the function's is off.
        let (failed_quiet, quiet) = handle(
            &ports,
            &invocation(&config, &allowed),
            vec![message("m-3", &start_body("quiet", "d-1", "feature/x"))],
        )
        .await;

        assert!(failed.is_empty() && failed_quiet.is_empty());
        assert_eq!(
            actions(&report),
            [RecordAction::DryRun, RecordAction::Stopped]
        );
        assert_eq!(report.decisions[1].stopped, 0);
        assert_eq!(report.decisions[1].would_stop, 1);
        assert!(report.decisions.iter().all(|d| d.dry_run));
        assert_eq!(actions(&quiet), [RecordAction::DryRun]);
        assert!(quiet.decisions[0].dry_run);
        assert!(ports.codebuild.starts().is_empty());
        assert!(ports.codebuild.stops().is_empty());
    }

    #[tokio::test]
    async fn an_unconfigured_or_disallowed_project_is_handed_back_untouched() {
        let config = config();
        let allowed = AllowedProjects::parse("web,other").unwrap();
        let ports = ports();

        let (failed, report) = handle(
            &ports,
            &invocation(&config, &allowed),
            vec![
                message("m-1", &start_body("other", "d-1", "feature/x")),
                message("m-2", &start_body("api", "d-1", "feature/x")),
                message("m-3", &stop_body("other", "7")),
                message("m-4", &start_body("", "d-1", "feature/x")),
                message("m-5", &stop_body("web", " ")),
            ],
        )
        .await;

        assert_eq!(failed, ["m-1", "m-2", "m-3", "m-4", "m-5"]);
        let reasons: Vec<_> = report.decisions.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "project_not_configured",
                "project_not_allowed",
                "project_not_configured",
                "missing_project",
                "missing_pull_request",
            ]
        );
        assert!(
            report
                .decisions
                .iter()
                .all(|d| d.action == RecordAction::Rejected)
        );
        assert_eq!(ports.codebuild.calls(), [], "no CodeBuild call");
    }

    #[tokio::test]
    async fn closing_a_pull_request_stops_only_its_batches() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let cb = &ports.codebuild;
        let web_pr7 = seed(cb, "web", "AUTOPILOT_PR", "7");
        let web_pr7_by_ref = cb
            .add_running_batch("web", Vec::new(), Some("refs/pull/7/head".into()))
            .id;
        let web_pr8 = seed(cb, "web", "AUTOPILOT_PR", "8");
        let web_branch = seed(cb, "web", "AUTOPILOT_BRANCH", "7");
        let api_pr7 = seed(cb, "api", "AUTOPILOT_PR", "7");

        let (failed, report) = handle(
            &ports,
            &invocation(&config, &allowed),
            vec![message("m-1", &stop_body("web", "7"))],
        )
        .await;

        assert!(failed.is_empty());
        let decision = &report.decisions[0];
        assert_eq!(decision.action, RecordAction::Stopped);
        assert_eq!(decision.reason, "pull_request_closed");
        assert_eq!(decision.stopped, 2);
        let mut stopped: Vec<_> = cb.stops().iter().map(BatchId::id).collect();
        stopped.sort();
        assert_eq!(stopped, [web_pr7.id(), web_pr7_by_ref.id()]);
        for kept in [&web_pr8, &web_branch, &api_pr7] {
            assert_eq!(cb.status_of(kept), BuildStatus::InProgress, "{kept}");
        }
    }

    #[tokio::test]
    async fn a_stop_that_cannot_list_is_handed_back() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        ports.codebuild.fail_project(
            Call::ListBuildBatchesForProject,
            "web",
            CodeBuildError::Throttled {
                operation: "ListBuildBatchesForProject",
                message: "Rate exceeded".into(),
            },
        );
        ports.codebuild.fail_project(
            Call::ListBuildBatchesForProject,
            "api",
            CodeBuildError::NotFound {
                operation: "ListBuildBatchesForProject",
                message: "Project cannot be found: api".into(),
            },
        );

        let (failed, report) = handle(
            &ports,
            &invocation(&config, &allowed),
            vec![
                message("m-1", &stop_body("web", "7")),
                message("m-2", &stop_body("api", "7")),
            ],
        )
        .await;

        assert_eq!(failed, ["m-1", "m-2"]);
        assert_eq!(
            actions(&report),
            [RecordAction::RetryLater, RecordAction::Failed]
        );
        assert_eq!(report.decisions[1].reason, "codebuild_refused");
        assert!(
            report.decisions[1]
                .error
                .as_deref()
                .unwrap()
                .contains("cannot be found")
        );
    }

    #[tokio::test]
    async fn a_near_deadline_hands_every_message_back_untouched() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let messages = || {
            vec![
                message("m-1", &start_body("web", "d-1", "feature/x")),
                message("m-2", &stop_body("web", "7")),
            ]
        };
        let near = Invocation {
            deadline: now() + chrono::TimeDelta::seconds(4),
            ..invocation(&config, &allowed)
        };

        let (failed, report) = handle(&ports, &near, messages()).await;

        assert_eq!(failed, ["m-1", "m-2"]);
        assert!(report.decisions.iter().all(|d| d.reason == "deadline_near"));
        assert_eq!(ports.codebuild.calls(), [], "no CodeBuild call");

        // With the margin left, the same messages are handled.
        let enough = Invocation {
            deadline: now() + chrono::TimeDelta::from_std(RECORD_MARGIN).unwrap(),
            ..invocation(&config, &allowed)
        };
        let (failed, _) = handle(&ports, &enough, messages()).await;
        assert!(failed.is_empty());
        assert_eq!(ports.codebuild.starts().len(), 1);
    }

    #[tokio::test]
    async fn a_permanent_refusal_is_handed_back_and_codebuild_is_not_asked_again() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        ports.codebuild.fail_project(
            Call::StartBuildBatch,
            "web",
            CodeBuildError::NotFound {
                operation: "StartBuildBatch",
                message: "Project cannot be found: web".into(),
            },
        );
        let body = start_body("web", "d-1", "feature/x");
        let run = invocation(&config, &allowed);

        let (failed, first) = handle(&ports, &run, vec![message("m-1", &body)]).await;
        let (failed_again, again) = handle(&ports, &run, vec![message("m-1", &body)]).await;

        assert_eq!(failed, ["m-1"], "to the dead-letter queue in the end");
        assert_eq!(failed_again, ["m-1"]);
        assert_eq!(first.decisions[0].action, RecordAction::Failed);
        assert_eq!(first.decisions[0].reason, "codebuild_refused");
        assert_eq!(first.decisions[0].retryable, Some(false));
        assert_eq!(again.decisions[0].reason, "failed_before");
        // The ledger's FAILED record answered the redelivery.
        assert_eq!(ports.codebuild.starts().len(), 1);
    }

    #[tokio::test]
    async fn a_start_supersedes_the_older_batch_of_its_branch() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let older = seed(&ports.codebuild, "web", "AUTOPILOT_BRANCH", "feature/x");
        let other = seed(&ports.codebuild, "web", "AUTOPILOT_BRANCH", "feature/y");

        let (failed, report) = handle(
            &ports,
            &invocation(&config, &allowed),
            vec![message("m-1", &start_body("web", "d-1", "feature/x"))],
        )
        .await;

        assert!(failed.is_empty());
        assert_eq!(report.decisions[0].action, RecordAction::Started);
        assert_eq!(report.decisions[0].stopped, 1);
        assert_eq!(ports.codebuild.status_of(&older), BuildStatus::Stopped);
        assert_eq!(ports.codebuild.status_of(&other), BuildStatus::InProgress);
    }

    #[tokio::test]
    async fn invoke_answers_with_the_partial_batch_response() {
        let ports = ports();
        let uri = ConfigUri::parse("file:/autopilot.toml").unwrap();
        let cache = |source| {
            ConfigCache::new(
                source,
                uri.clone(),
                AllowedProjects::all(),
                Duration::from_secs(60),
            )
        };
        let settings = StarterSettings {
            config_uri: "file:/autopilot.toml".into(),
            config_ttl: Duration::from_secs(60),
            project_patterns: "*".into(),
            ledger_table: "ledger".into(),
            dry_run: false,
        };
        let input = json!({"Records": [
            message("m-1", &start_body("web", "d-1", "feature/x")),
            message("m-2", "not json"),
        ]});
        let deadline = SystemTime::now() + Duration::from_secs(60);

        let good = cache(FixedSource(Ok(CONFIG.into())));
        let response = invoke(
            &ports,
            &good,
            &AllowedProjects::all(),
            &settings,
            deadline,
            input.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]})
        );
        assert_eq!(ports.codebuild.starts().len(), 1);

        // No configuration: every message waits in the queue, nothing is called.
        let down = cache(FixedSource(Err(ServiceError::Unavailable {
            service: "ssm",
            operation: "GetParameter",
            message: "timeout".into(),
        })));
        let response = invoke(
            &ports,
            &down,
            &AllowedProjects::all(),
            &settings,
            deadline,
            input,
        )
        .await
        .unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]})
        );
        assert_eq!(ports.codebuild.starts().len(), 1);
    }

    #[tokio::test]
    async fn what_cannot_be_named_fails_the_invocation() {
        let err = parse_event(json!({"detail-type": "CodeBuild Build State Change"})).unwrap_err();
        assert!(matches!(err, StarterError::NotAnSqsEvent { .. }), "{err:?}");
        assert!(parse_event(json!({"Records": "no"})).is_err());

        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let mut unnamed = message("m-1", "not json");
        unnamed.as_object_mut().unwrap().remove("messageId");
        let report = handle_batch(
            &ports,
            &invocation(&config, &allowed),
            &event(vec![unnamed]),
        )
        .await;
        assert!(matches!(
            report.response(),
            Err(StarterError::UnnamedMessage { .. })
        ));
    }

    #[test]
    fn the_emf_document_counts_each_outcome() {
        let decision = |action, stopped, would_stop| RecordDecision {
            action,
            stopped,
            would_stop,
            ..RecordDecision::about(&event(vec![message("m", "")]).records[0], false)
        };
        let report = BatchReport {
            decisions: vec![
                decision(RecordAction::Started, 2, 0),
                decision(RecordAction::Started, 0, 0),
                decision(RecordAction::AlreadyStarted, 0, 0),
                decision(RecordAction::DryRun, 0, 0),
                decision(RecordAction::Stopped, 3, 0),
                decision(RecordAction::Stopped, 0, 4),
                decision(RecordAction::Rejected, 0, 0),
                decision(RecordAction::Failed, 0, 0),
                decision(RecordAction::RetryLater, 0, 0),
                decision(RecordAction::RetryLater, 0, 0),
            ],
        };

        let doc = report.emf_document(now());

        assert_eq!(doc["Function"], json!("batch-starter"));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            json!("CodeBuildAutopilot")
        );
        for (name, n) in [
            ("Started", 2),
            ("AlreadyStarted", 1),
            ("DryRun", 5),
            ("Stopped", 5),
            ("Rejected", 1),
            ("Failed", 1),
            ("RetriedLater", 2),
        ] {
            assert_eq!(doc[name], json!(n), "{name}");
        }
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "x".repeat(MAX_LOGGED_ERROR_CHARS * 3);
        assert_eq!(
            shorten(&long, MAX_LOGGED_ERROR_CHARS).chars().count(),
            MAX_LOGGED_ERROR_CHARS + 1
        );
        assert_eq!(shorten("short", MAX_LOGGED_ERROR_CHARS), "short");
    }
}
