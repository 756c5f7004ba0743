//! One trigger event in, at most one `StartBuildBatch` out, and one decision line saying why.
//!
//! The checks, in order, each refusing with a stable reason: the event reads as a start request
//! ([`parse_trigger_event`]: `malformed_event`, `unexpected_detail_type`, `invalid_project`);
//! the project is inside IAM's bound (`project_not_allowed`) and configured
//! (`project_not_configured`); the overrides are ones the project's `[projects.start]` policy
//! allows (`override_not_allowed`, `invalid_override`). Only then does the one start mechanism
//! run ([`start_batch`], identity [`StartIdentity::Trigger`]: the token and ledger key come from
//! the event id and the project, so a redelivered event starts nothing new, however late).
//!
//! **What the invocation returns, and why.** EventBridge invokes the function asynchronously;
//! Lambda retries a failed invocation twice (after about one and two minutes), then hands the
//! event to the on-failure destination, the trigger dead-letter queue, whose alarm calls a
//! person. So:
//!
//! - **A rejection returns `Ok`.** The same event is refused the same way every time: retrying
//!   would only repeat the refusal, and a dead-lettered copy could never be redriven into a
//!   start. The sender's mistake is reported where the sender can see it: the decision line
//!   (`action: "rejected"`, its reason and the error, at `warn`) and the `Rejected` metric.
//! - **A start that did not happen returns `Err`**, retryable or not. A retryable failure
//!   (CodeBuild throttled or down, the ledger unavailable, the same event in flight elsewhere,
//!   no configuration yet) may succeed on Lambda's retries. A permanent one (CodeBuild refused:
//!   the project does not exist; the same event id asked before with other parameters) is a
//!   deployment problem the sender cannot fix: its two retries cost no CodeBuild call (the
//!   ledger's `FAILED` record answers them) and the event then waits in the dead-letter queue
//!   for the fix and a redrive, rather than vanishing into a log line.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::event::{
    EventTrace, SCHEDULE_SOURCE, TriggerEventError, TriggerRequest, parse_trigger_event,
};
use super::settings::TriggerSettings;
use crate::config::{AllowedProjects, Config, ConfigCache, ConfigLoadError, OverrideKind};
use crate::ledger::Ledger;
use crate::metrics;
use crate::model::BatchId;
use crate::ports::{CodeBuild, ConfigSource};
use crate::start::StartIdentity;
use crate::start::mechanism::{StartError, StartOutcome, StartRun, start_batch};
use crate::start::overrides::{OverrideError, StartOverrides};
use crate::telemetry::{MAX_LOGGED_ERROR_CHARS, shorten};

/// The function name, as the metrics' `Function` dimension.
pub const FUNCTION_NAME: &str = "batch-trigger";

/// The ports the trigger acts through: the batch starter's (CodeBuild and the ledger).
pub type TriggerPorts<C, L> = crate::start::starter::StarterPorts<C, L>;

/// What one event is handled with.
#[derive(Debug, Clone, Copy)]
pub struct TriggerContext<'a> {
    /// The configuration in force.
    pub config: &'a Config,
    /// The project names IAM lets the function act on.
    pub allowed: &'a AllowedProjects,
    /// Report only, whatever the configuration says (the project's own `dry_run` adds to it).
    pub dry_run: bool,
    /// The current time.
    pub now: DateTime<Utc>,
    /// When Lambda ends the invocation (bounds the ledger claim's lease).
    pub deadline: DateTime<Utc>,
}

/// What came of one event: the decision line's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerAction {
    /// The batch was started now.
    Started,
    /// The same event started it before: answered from the ledger (or CodeBuild's token
    /// window), nothing new started.
    AlreadyStarted,
    /// Dry run: checked, nothing claimed or started.
    DryRun,
    /// The event cannot be acted on (malformed, project not allowed or not configured, an
    /// override the policy refuses). Final: the invocation succeeds.
    Rejected,
    /// The start failed in a way retrying cannot fix (the invocation fails: to the DLQ).
    Failed,
    /// Not started now; it may succeed when Lambda retries the invocation.
    RetryLater,
}

impl TriggerAction {
    /// The snake_case name, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::AlreadyStarted => "already_started",
            Self::DryRun => "dry_run",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::RetryLater => "retry_later",
        }
    }

    /// True when the invocation fails (Lambda retries it, then dead-letters it).
    pub fn fails_invocation(self) -> bool {
        matches!(self, Self::Failed | Self::RetryLater)
    }

    /// The metric counting this action.
    fn metric(self) -> &'static str {
        match self {
            Self::Started => "Started",
            Self::AlreadyStarted => "AlreadyStarted",
            Self::DryRun => "DryRun",
            Self::Rejected => "Rejected",
            Self::Failed => "Failed",
            Self::RetryLater => "RetriedLater",
        }
    }

    const ALL: [TriggerAction; 6] = [
        Self::Started,
        Self::AlreadyStarted,
        Self::DryRun,
        Self::Rejected,
        Self::Failed,
        Self::RetryLater,
    ];
}

/// One event's decision: its log line, its metric, and the invocation's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerDecision {
    /// What came of it.
    pub action: TriggerAction,
    /// Why: a stable snake_case reason for everything but a start, which carries the sender's
    /// own reason (`scheduled` / `trigger_event` when it gave none).
    pub reason: String,
    /// The EventBridge event id, when the event had one.
    pub event_id: Option<String>,
    /// The event's `source`, when it had one.
    pub source: Option<String>,
    /// The project asked for, when the event named one.
    pub project: Option<String>,
    /// The overrides asked for (`source_version`, `environment_variables`, `buildspec`,
    /// `timeout`), never their values.
    pub overrides: Vec<&'static str>,
    /// The batch started (now or before).
    pub batch_id: Option<String>,
    /// Its `buildBatchNumber`, when known.
    pub batch_number: Option<i64>,
    /// True when nothing was (or would have been) changed: the function's or project's dry run.
    pub dry_run: bool,
    /// What went wrong, shortened.
    pub error: Option<String>,
    /// Whether a retry can help, for the actions that are not a success.
    pub retryable: Option<bool>,
}

impl TriggerDecision {
    /// A decision about the event `trace` describes, not made yet.
    fn about(trace: EventTrace, dry_run: bool) -> Self {
        Self {
            action: TriggerAction::RetryLater,
            reason: String::new(),
            event_id: trace.event_id,
            source: trace.source,
            project: trace.project,
            overrides: Vec::new(),
            batch_id: None,
            batch_number: None,
            dry_run,
            error: None,
            retryable: None,
        }
    }

    fn decided(mut self, action: TriggerAction, reason: &str) -> Self {
        self.action = action;
        self.reason = reason.to_owned();
        self.retryable = match action {
            TriggerAction::RetryLater => Some(true),
            TriggerAction::Rejected | TriggerAction::Failed => Some(false),
            _ => None,
        };
        self
    }

    fn with_error(mut self, error: &str) -> Self {
        self.error = Some(shorten(error, MAX_LOGGED_ERROR_CHARS));
        self
    }

    /// The one JSON decision line, with the conventions' fixed field names: `info` for what
    /// went as asked, `warn` for a refusal or a failure.
    pub fn log(&self) {
        let overrides = self.overrides.join(",");
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    action = self.action.as_str(),
                    reason = self.reason.as_str(),
                    project = self.project.as_deref(),
                    event_id = self.event_id.as_deref(),
                    source = self.source.as_deref(),
                    overrides = overrides.as_str(),
                    batch_id = self.batch_id.as_deref(),
                    dry_run = self.dry_run,
                    error = self.error.as_deref(),
                    retryable = self.retryable,
                    "batch-trigger decision"
                )
            };
        }
        match self.action {
            TriggerAction::Started | TriggerAction::AlreadyStarted | TriggerAction::DryRun => {
                line!(info)
            }
            _ => line!(warn),
        }
    }

    /// The invocation's EMF document: one count per action (this one 1, the others 0, so a
    /// dashboard's lines are continuous), namespace `CodeBuildAutopilot`.
    pub fn emf_document(&self, at: DateTime<Utc>) -> Value {
        let values: Vec<(&str, &str, f64)> = TriggerAction::ALL
            .iter()
            .map(|action| {
                let n = if *action == self.action { 1.0 } else { 0.0 };
                (action.metric(), "Count", n)
            })
            .collect();
        metrics::emf_document(FUNCTION_NAME, at, None, &values)
    }

    /// The invocation's answer: the decision itself when the event is done with (started,
    /// answered before, dry run, rejected), or the error that makes Lambda retry it and then
    /// dead-letter it.
    pub fn into_result(self) -> Result<Value, TriggerError> {
        if self.action.fails_invocation() {
            return Err(TriggerError::NotStarted {
                reason: self.reason,
                project: self.project.unwrap_or_default(),
                retryable: self.retryable.unwrap_or(true),
                message: self.error.unwrap_or_default(),
            });
        }
        serde_json::to_value(&self).map_err(|err| TriggerError::NotStarted {
            reason: "unreportable".to_owned(),
            project: self.project.unwrap_or_default(),
            retryable: false,
            message: err.to_string(),
        })
    }
}

/// Why an invocation failed: Lambda retries it, then hands it to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// No batch was started for the event (see [`TriggerDecision::reason`]).
    #[error("no batch started for {project:?} ({reason}, retryable: {retryable}): {message}")]
    NotStarted {
        /// The decision's reason (`codebuild_unavailable`, `config_unavailable`, ...).
        reason: String,
        /// The project, when the event named one.
        project: String,
        /// Whether the same event may succeed later.
        retryable: bool,
        /// What went wrong.
        message: String,
    },
}

impl TriggerError {
    /// True when the same event may succeed on a retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotStarted { retryable, .. } => *retryable,
        }
    }
}

/// One Lambda invocation, as the function's `main` runs it: the event read, the configuration
/// from `cache`, the decision ([`handle_request`]) logged with its EMF counts, and the
/// invocation's answer ([`TriggerDecision::into_result`]).
pub async fn invoke<S, C, L>(
    ports: &TriggerPorts<C, L>,
    cache: &ConfigCache<S>,
    allowed: &AllowedProjects,
    settings: &TriggerSettings,
    deadline: SystemTime,
    input: Value,
) -> Result<Value, TriggerError>
where
    S: ConfigSource,
    C: CodeBuild,
    L: Ledger,
{
    let decision = decide(ports, cache, allowed, settings, deadline, &input).await;
    decision.log();
    println!("{}", decision.emf_document(Utc::now()));
    decision.into_result()
}

async fn decide<S, C, L>(
    ports: &TriggerPorts<C, L>,
    cache: &ConfigCache<S>,
    allowed: &AllowedProjects,
    settings: &TriggerSettings,
    deadline: SystemTime,
    input: &Value,
) -> TriggerDecision
where
    S: ConfigSource,
    C: CodeBuild,
    L: Ledger,
{
    let undecided = TriggerDecision::about(EventTrace::of(input), settings.dry_run);
    // A malformed event is refused before any configuration is read: it is refused the same
    // way whatever the configuration says.
    let request = match parse_trigger_event(input) {
        Ok(request) => request,
        Err(err) => return rejected_event(undecided, &err),
    };
    let config = match cache.current().await {
        Ok(config) => config,
        Err(err) => return config_missing(undecided, &err),
    };
    let context = TriggerContext {
        config: &config,
        allowed,
        dry_run: settings.dry_run,
        now: Utc::now(),
        deadline: DateTime::<Utc>::from(deadline),
    };
    handle_request(ports, &context, request).await
}

/// Decides on one start request read from an event: the project and override checks, then the
/// start through the one mechanism. Logs nothing itself (the mechanism logs its own line).
pub async fn handle_request<C: CodeBuild, L: Ledger>(
    ports: &TriggerPorts<C, L>,
    context: &TriggerContext<'_>,
    request: TriggerRequest,
) -> TriggerDecision {
    let TriggerRequest {
        event_id,
        source,
        project,
        reason,
        overrides,
    } = request;
    let mut decision = TriggerDecision::about(
        EventTrace {
            event_id: Some(event_id.clone()),
            source: Some(source.clone()),
            project: Some(project.clone()),
        },
        context.dry_run,
    );
    decision.overrides = requested_kinds(&overrides);
    if !context.allowed.allows(&project) {
        return decision.decided(TriggerAction::Rejected, "project_not_allowed");
    }
    let Some(entry) = context.config.entry_for(&project) else {
        return decision.decided(TriggerAction::Rejected, "project_not_configured");
    };
    decision.dry_run = context.dry_run || entry.dry_run;
    if let Err(err) = overrides.check(&project, &entry.start) {
        return rejected_override(decision, &err);
    }
    let start_reason = reason.clone().unwrap_or_else(|| {
        if source == SCHEDULE_SOURCE {
            "scheduled".to_owned()
        } else {
            "trigger_event".to_owned()
        }
    });
    let start = overrides.into_batch_start(&project, StartIdentity::Trigger { event_id }, reason);
    let run = StartRun::until(context.now, context.deadline, decision.dry_run);
    match start_batch(&ports.codebuild, &ports.ledger, &start, run).await {
        Ok(outcome) => {
            let action = match &outcome {
                StartOutcome::Started { number, .. }
                | StartOutcome::AlreadyStarted { number, .. } => {
                    decision.batch_number = *number;
                    if matches!(outcome, StartOutcome::Started { .. }) {
                        TriggerAction::Started
                    } else {
                        TriggerAction::AlreadyStarted
                    }
                }
                StartOutcome::DryRun => TriggerAction::DryRun,
            };
            decision.batch_id = outcome.batch().map(BatchId::id);
            decision.decided(action, &start_reason)
        }
        Err(err) => start_failed(decision, &err),
    }
}

/// The kinds of override `overrides` asks for, in the configuration's order.
fn requested_kinds(overrides: &StartOverrides) -> Vec<&'static str> {
    [
        (
            OverrideKind::SourceVersion,
            overrides.source_version.is_some(),
        ),
        (
            OverrideKind::EnvironmentVariables,
            !overrides.environment_variables.is_empty(),
        ),
        (
            OverrideKind::Buildspec,
            overrides.buildspec_override.is_some(),
        ),
        (
            OverrideKind::Timeout,
            overrides.timeout_in_minutes.is_some(),
        ),
    ]
    .into_iter()
    .filter(|(_, asked)| *asked)
    .map(|(kind, _)| kind.as_str())
    .collect()
}

fn rejected_event(decision: TriggerDecision, err: &TriggerEventError) -> TriggerDecision {
    decision
        .decided(TriggerAction::Rejected, err.reason())
        .with_error(&err.to_string())
}

fn rejected_override(decision: TriggerDecision, err: &OverrideError) -> TriggerDecision {
    decision
        .decided(TriggerAction::Rejected, err.reason())
        .with_error(&err.to_string())
}

/// No configuration could be had (and none was loaded before): retry, or after the retries
/// wait in the dead-letter queue for the fix.
fn config_missing(decision: TriggerDecision, err: &ConfigLoadError) -> TriggerDecision {
    let action = if err.is_retryable() {
        TriggerAction::RetryLater
    } else {
        TriggerAction::Failed
    };
    let reason = match err {
        ConfigLoadError::Unavailable(_) => "config_unavailable",
        ConfigLoadError::NotFound { .. } => "config_not_found",
        ConfigLoadError::Invalid(_) => "config_invalid",
    };
    decision
        .decided(action, reason)
        .with_error(&err.to_string())
}

/// A start that did not happen; the action says whether a retry can help.
fn start_failed(mut decision: TriggerDecision, err: &StartError) -> TriggerDecision {
    if let StartError::NotRecorded { batch, .. } = err {
        decision.batch_id = Some(batch.clone());
    }
    let action = if err.is_retryable() {
        TriggerAction::RetryLater
    } else {
        TriggerAction::Failed
    };
    decision
        .decided(action, err.reason())
        .with_error(&err.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::ConfigUri;
    use crate::idempotency::IdempotencyKey;
    use crate::ports::{CodeBuildError, ServiceError};
    use crate::testing::{Call, FakeCodeBuild, FakeLedger, FixedSource, env, now};

    // -----------------------------------------------------------------------------------------
    // Fakes and inputs

    /// `web` lets triggers set its version, `DEPLOY_*` variables and a timeout (no buildspec);
    /// `nightly` keeps the defaults (source version only); `quiet` is in dry run.
    const CONFIG: &str = r#"
[[projects]]
name = "web"
[projects.start]
allowed_overrides = ["source_version", "environment_variables", "timeout"]
environment_variable_names = ["DEPLOY_*"]
max_timeout_minutes = 120

[[projects]]
name = "nightly"

[[projects]]
name = "quiet"
dry_run = true
"#;

    fn config() -> Config {
        Config::from_toml(CONFIG, &AllowedProjects::all()).unwrap()
    }

    fn ports() -> TriggerPorts<FakeCodeBuild, FakeLedger> {
        TriggerPorts {
            codebuild: FakeCodeBuild::default(),
            ledger: FakeLedger::default(),
        }
    }

    fn context<'a>(config: &'a Config, allowed: &'a AllowedProjects) -> TriggerContext<'a> {
        TriggerContext {
            config,
            allowed,
            dry_run: false,
            now: now(),
            deadline: now() + chrono::TimeDelta::seconds(30),
        }
    }

    /// The contract's custom event for `project` with `detail` merged into its detail.
    fn event(id: &str, project: &str, detail: Value) -> Value {
        let mut event = json!({
            "version": "0",
            "id": id,
            "detail-type": "Autopilot Start Batch",
            "source": "com.example.release",
            "account": "123456789012",
            "time": "2026-12-01T03:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"project": project, "reason": "release train"}
        });
        for (key, value) in detail.as_object().unwrap() {
            event["detail"][key] = value.clone();
        }
        event
    }

    fn release(id: &str) -> Value {
        event(
            id,
            "web",
            json!({
                "sourceVersion": "refs/heads/main",
                "environmentVariables": [{"name": "DEPLOY_ENV", "value": "staging"}],
                "buildspecOverride": null,
                "timeoutInMinutes": 60
            }),
        )
    }

    async fn handle(
        ports: &TriggerPorts<FakeCodeBuild, FakeLedger>,
        context: &TriggerContext<'_>,
        input: &Value,
    ) -> TriggerDecision {
        let request = parse_trigger_event(input).unwrap();
        handle_request(ports, context, request).await
    }

    fn throttled() -> CodeBuildError {
        CodeBuildError::Throttled {
            operation: "StartBuildBatch",
            message: "Rate exceeded".into(),
        }
    }

    fn cache(source: FixedSource) -> ConfigCache<FixedSource> {
        ConfigCache::new(
            source,
            ConfigUri::parse("file:/autopilot.toml").unwrap(),
            AllowedProjects::all(),
            Duration::from_secs(60),
        )
    }

    fn settings(dry_run: bool) -> TriggerSettings {
        TriggerSettings {
            config_uri: "file:/autopilot.toml".into(),
            config_ttl: Duration::from_secs(60),
            project_patterns: "*".into(),
            ledger_table: "ledger".into(),
            dry_run,
        }
    }

    fn deadline() -> SystemTime {
        SystemTime::now() + Duration::from_secs(30)
    }

    // -----------------------------------------------------------------------------------------
    // Starts

    #[tokio::test]
    async fn a_custom_event_starts_one_batch_with_its_overrides_and_the_event_token() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let id = "6a7e8feb-b491-4cf7-a9f1-bf3703467718";

        let decision = handle(&ports, &context(&config, &allowed), &release(id)).await;

        let starts = ports.codebuild.starts();
        assert_eq!(starts.len(), 1);
        let request = &starts[0];
        assert_eq!(request.project, "web");
        assert_eq!(request.source_version.as_deref(), Some("refs/heads/main"));
        assert_eq!(
            request.environment_variables,
            vec![env("DEPLOY_ENV", "staging")]
        );
        assert_eq!(request.timeout_minutes, Some(60));
        assert_eq!(request.buildspec_override, None);
        assert_eq!(
            request.token,
            IdempotencyKey::for_trigger_start(id, "web").token()
        );
        assert_eq!(decision.action, TriggerAction::Started);
        assert_eq!(decision.reason, "release train");
        assert_eq!(decision.event_id.as_deref(), Some(id));
        assert_eq!(decision.source.as_deref(), Some("com.example.release"));
        assert_eq!(
            decision.overrides,
            ["source_version", "environment_variables", "timeout"]
        );
        assert_eq!(decision.batch_number, Some(1));
        let answer = decision.clone().into_result().unwrap();
        assert_eq!(answer["action"], "started");
        assert_eq!(answer["batch_id"], json!(decision.batch_id));
    }

    #[tokio::test]
    async fn the_same_event_again_starts_nothing_new() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let first = handle(&ports, &context(&config, &allowed), &release("e-1")).await;
        // Redelivered two hours later, long after CodeBuild's token window: the ledger answers.
        let later = TriggerContext {
            now: now() + chrono::TimeDelta::hours(2),
            deadline: now() + chrono::TimeDelta::hours(2) + chrono::TimeDelta::seconds(30),
            ..context(&config, &allowed)
        };
        let again = handle(&ports, &later, &release("e-1")).await;

        assert_eq!(ports.codebuild.starts().len(), 1);
        assert_eq!(again.action, TriggerAction::AlreadyStarted);
        assert_eq!(again.batch_id, first.batch_id);
        assert!(again.into_result().is_ok());
        // Another event for the same project is another batch.
        let other = handle(&ports, &context(&config, &allowed), &release("e-2")).await;
        assert_eq!(other.action, TriggerAction::Started);
        assert_ne!(other.batch_id, first.batch_id);
    }

    #[tokio::test]
    async fn a_scheduled_event_starts_with_the_project_defaults() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let mut tick = event("tick-1", "nightly", json!({}));
        tick["source"] = json!("autopilot.schedule");
        tick["detail"].as_object_mut().unwrap().remove("reason");

        let decision = handle(&ports, &context(&config, &allowed), &tick).await;

        assert_eq!(decision.action, TriggerAction::Started);
        assert_eq!(decision.reason, "scheduled");
        assert!(decision.overrides.is_empty());
        let request = &ports.codebuild.starts()[0];
        assert_eq!(request.project, "nightly");
        assert_eq!(request.source_version, None);
        assert!(request.environment_variables.is_empty());
    }

    #[tokio::test]
    async fn dry_run_checks_but_claims_and_starts_nothing() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let dry = TriggerContext {
            dry_run: true,
            ..context(&config, &allowed)
        };
        let by_function = handle(&ports, &dry, &release("e-1")).await;
        let by_project = handle(
            &ports,
            &context(&config, &allowed),
            &event("e-2", "quiet", json!({})),
        )
        .await;
        // A refused override is refused in dry run too.
        let refused = handle(
            &ports,
            &dry,
            &event("e-3", "web", json!({"buildspecOverride": "version: 0.2"})),
        )
        .await;

        assert_eq!(by_function.action, TriggerAction::DryRun);
        assert!(by_function.dry_run);
        assert_eq!(by_project.action, TriggerAction::DryRun);
        assert!(by_project.dry_run);
        assert_eq!(refused.action, TriggerAction::Rejected);
        assert!(ports.codebuild.calls().is_empty());
        assert_eq!(ports.ledger.claims_made(), 0);
        assert!(by_function.into_result().is_ok());
    }

    // -----------------------------------------------------------------------------------------
    // Refusals: logged, the invocation succeeds, nothing started

    #[tokio::test]
    async fn overrides_the_policy_does_not_allow_are_refused_with_the_reason() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        let cases = [
            (
                "web",
                json!({"buildspecOverride": "version: 0.2\nphases: {build: {commands: [curl x]}}"}),
                "override_not_allowed",
                "buildspec",
            ),
            (
                "web",
                json!({"environmentVariables": [{"name": "AWS_REGION", "value": "x"}]}),
                "override_not_allowed",
                "AWS_REGION",
            ),
            (
                "web",
                json!({"timeoutInMinutes": 600}),
                "override_not_allowed",
                "max_timeout_minutes",
            ),
            (
                "web",
                json!({"environmentVariables": [{"name": "AUTOPILOT_BRANCH", "value": "x"}]}),
                "invalid_override",
                "reserved",
            ),
            (
                "nightly",
                json!({"timeoutInMinutes": 60}),
                "override_not_allowed",
                "timeout",
            ),
        ];
        for (n, (project, detail, reason, mentions)) in cases.into_iter().enumerate() {
            let input = event(&format!("e-{n}"), project, detail);
            let decision = handle(&ports, &context(&config, &allowed), &input).await;

            assert_eq!(decision.action, TriggerAction::Rejected, "{input}");
            assert_eq!(decision.reason, reason, "{input}");
            let error = decision.error.clone().unwrap();
            assert!(error.contains(mentions), "{error}");
            assert_eq!(decision.retryable, Some(false));
            let answer = decision.into_result().unwrap();
            assert_eq!(answer["action"], "rejected");
        }
        assert!(ports.codebuild.calls().is_empty(), "nothing started");
        assert_eq!(ports.ledger.claims_made(), 0);
    }

    #[tokio::test]
    async fn projects_outside_the_configuration_or_iam_bound_are_refused() {
        let (config, ports) = (config(), ports());
        let all = AllowedProjects::all();
        let unconfigured = handle(
            &ports,
            &context(&config, &all),
            &event("e-1", "legacy", json!({})),
        )
        .await;
        let only_nightly = AllowedProjects::parse("nightly").unwrap();
        let outside_iam = handle(
            &ports,
            &context(&config, &only_nightly),
            &event("e-2", "web", json!({})),
        )
        .await;

        assert_eq!(unconfigured.action, TriggerAction::Rejected);
        assert_eq!(unconfigured.reason, "project_not_configured");
        assert_eq!(unconfigured.project.as_deref(), Some("legacy"));
        assert_eq!(outside_iam.reason, "project_not_allowed");
        assert!(ports.codebuild.calls().is_empty());
    }

    // -----------------------------------------------------------------------------------------
    // Failures: the invocation fails, so Lambda retries it and then dead-letters it

    #[tokio::test]
    async fn a_throttled_start_fails_the_invocation_as_retryable_then_succeeds() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        ports
            .codebuild
            .fail_next(Call::StartBuildBatch, throttled());

        let first = handle(&ports, &context(&config, &allowed), &release("e-1")).await;
        assert_eq!(first.action, TriggerAction::RetryLater);
        assert_eq!(first.reason, "codebuild_unavailable");
        let err = first.into_result().unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("codebuild_unavailable"), "{err}");

        // Lambda's retry: the claim was released, the same token goes out again.
        let retry = handle(&ports, &context(&config, &allowed), &release("e-1")).await;
        assert_eq!(retry.action, TriggerAction::Started);
        let starts = ports.codebuild.starts();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0].token, starts[1].token);
    }

    #[tokio::test]
    async fn a_permanent_refusal_fails_the_invocation_and_is_not_asked_again() {
        let (config, allowed, ports) = (config(), AllowedProjects::all(), ports());
        ports.codebuild.fail_project(
            Call::StartBuildBatch,
            "nightly",
            CodeBuildError::NotFound {
                operation: "StartBuildBatch",
                message: "Project cannot be found: nightly".into(),
            },
        );
        let tick = event("e-1", "nightly", json!({}));

        let first = handle(&ports, &context(&config, &allowed), &tick).await;
        let again = handle(&ports, &context(&config, &allowed), &tick).await;

        assert_eq!(first.action, TriggerAction::Failed);
        assert_eq!(first.reason, "codebuild_refused");
        assert!(!first.into_result().unwrap_err().is_retryable());
        assert_eq!(again.action, TriggerAction::Failed);
        assert_eq!(again.reason, "failed_before");
        assert_eq!(ports.codebuild.starts().len(), 1, "the ledger answered");
    }

    // -----------------------------------------------------------------------------------------
    // The invocation

    #[tokio::test]
    async fn invoke_rejects_a_malformed_event_without_the_configuration() {
        let ports = ports();
        let down = cache(FixedSource(Err(ServiceError::Unavailable {
            service: "ssm",
            operation: "GetParameter",
            message: "timeout".into(),
        })));
        let mut input = release("e-1");
        input["detail"]["serviceRoleOverride"] = json!("arn:aws:iam::123456789012:role/admin");

        let answer = invoke(
            &ports,
            &down,
            &AllowedProjects::all(),
            &settings(false),
            deadline(),
            input,
        )
        .await
        .unwrap();

        assert_eq!(answer["action"], "rejected");
        assert_eq!(answer["reason"], "malformed_event");
        assert_eq!(answer["event_id"], "e-1");
        assert_eq!(answer["project"], "web");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("serviceRoleOverride")
        );
        assert!(ports.codebuild.calls().is_empty());
    }

    #[tokio::test]
    async fn invoke_starts_with_the_loaded_configuration_or_fails_retryably_without_one() {
        let ports = ports();
        let good = cache(FixedSource(Ok(CONFIG.into())));
        let answer = invoke(
            &ports,
            &good,
            &AllowedProjects::all(),
            &settings(false),
            deadline(),
            release("e-1"),
        )
        .await
        .unwrap();
        assert_eq!(answer["action"], "started");
        assert_eq!(ports.codebuild.starts().len(), 1);

        let down = cache(FixedSource(Err(ServiceError::Unavailable {
            service: "ssm",
            operation: "GetParameter",
            message: "timeout".into(),
        })));
        let err = invoke(
            &ports,
            &down,
            &AllowedProjects::all(),
            &settings(false),
            deadline(),
            release("e-2"),
        )
        .await
        .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("config_unavailable"), "{err}");

        let invalid = cache(FixedSource(Ok("[[projects]]\nnme = \"web\"\n".into())));
        let err = invoke(
            &ports,
            &invalid,
            &AllowedProjects::all(),
            &settings(false),
            deadline(),
            release("e-3"),
        )
        .await
        .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("config_invalid"), "{err}");
        assert_eq!(ports.codebuild.starts().len(), 1);
    }

    #[tokio::test]
    async fn invoke_in_dry_run_starts_nothing() {
        let ports = ports();
        let good = cache(FixedSource(Ok(CONFIG.into())));
        let answer = invoke(
            &ports,
            &good,
            &AllowedProjects::all(),
            &settings(true),
            deadline(),
            release("e-1"),
        )
        .await
        .unwrap();
        assert_eq!(answer["action"], "dry_run");
        assert_eq!(answer["dry_run"], true);
        assert!(ports.codebuild.calls().is_empty());
    }

    #[test]
    fn the_emf_document_counts_the_one_action() {
        let decision = TriggerDecision::about(EventTrace::default(), false)
            .decided(TriggerAction::Rejected, "malformed_event");

        let doc = decision.emf_document(now());

        assert_eq!(doc["Function"], json!("batch-trigger"));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            json!("CodeBuildAutopilot")
        );
        for (name, n) in [
            ("Started", 0),
            ("AlreadyStarted", 0),
            ("DryRun", 0),
            ("Rejected", 1),
            ("Failed", 0),
            ("RetriedLater", 0),
        ] {
            assert_eq!(doc[name], json!(n), "{name}");
        }
    }
}
