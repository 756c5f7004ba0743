//! The handler over fakes of every port: real sample events in, calls and notices counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::{AutoRetryError, Invocation, Ports, handle};
use crate::config::{
    AccountSettings, Config, ProjectEntry, ProjectPattern, ReaperPolicy, RetryClass, RetryPolicy,
};
use crate::idempotency::IdempotencyKey;
use crate::ledger::{LedgerError, LedgerKey, RecordStatus};
use crate::model::{
    BatchId, Build, BuildBatch, BuildId, BuildPhase, BuildStateChangeEvent, BuildStatus,
    LogLocation, NativeAutoRetry, PhaseContext, PhaseType,
};
use crate::ports::{
    BatchAttempts, BatchRetryType, BudgetOutcome, BudgetRequest, BuildLogs, CodeBuildError,
    DelayQueue, Lineage, Notifier, RetryBook, ServiceError,
};
use crate::retry::settings::AutoRetrySettings;
use crate::retry::work::{DelayedWork, GaveUpBecause, GaveUpNotice};
use crate::testing::{Call, FakeCodeBuild, FakeLedger, plain_build, uuid};

// ---------------------------------------------------------------------------------------------
// Fakes

#[derive(Default)]
struct FakeBook {
    lineage: Mutex<HashMap<String, Lineage>>,
    batch_attempts: Mutex<HashMap<String, u32>>,
    budget: Mutex<Option<BudgetOutcome>>,
    budget_taken: Mutex<u32>,
}

impl RetryBook for FakeBook {
    async fn lineage_of(&self, build: &BuildId) -> Result<Option<Lineage>, LedgerError> {
        Ok(self.lineage.lock().unwrap().get(&build.id()).cloned())
    }
    async fn retried_by(&self, parent: &BuildId) -> Result<Option<Lineage>, LedgerError> {
        Ok(self
            .lineage
            .lock()
            .unwrap()
            .values()
            .find(|l| l.parent.id() == parent.id())
            .cloned())
    }
    async fn record_lineage(&self, lineage: &Lineage) -> Result<(), LedgerError> {
        self.lineage
            .lock()
            .unwrap()
            .insert(lineage.build.id(), lineage.clone());
        Ok(())
    }
    async fn batch_attempts(&self, batch: &BatchId) -> Result<BatchAttempts, LedgerError> {
        Ok(BatchAttempts {
            batch: batch.clone(),
            attempts: self
                .batch_attempts
                .lock()
                .unwrap()
                .get(&batch.id())
                .copied()
                .unwrap_or(0),
        })
    }
    async fn record_batch_attempt(&self, batch: &BatchId, attempt: u32) -> Result<(), LedgerError> {
        let mut counts = self.batch_attempts.lock().unwrap();
        let count = counts.entry(batch.id()).or_insert(0);
        *count = (*count).max(attempt);
        Ok(())
    }
    async fn take_budget(&self, _: &BudgetRequest) -> Result<BudgetOutcome, LedgerError> {
        let outcome = self
            .budget
            .lock()
            .unwrap()
            .unwrap_or(BudgetOutcome::Granted);
        if outcome == BudgetOutcome::Granted {
            *self.budget_taken.lock().unwrap() += 1;
        }
        Ok(outcome)
    }
}

#[derive(Default)]
struct FakeQueue {
    sent: Mutex<Vec<(DelayedWork, Duration)>>,
}

impl FakeQueue {
    fn sent(&self) -> Vec<(DelayedWork, Duration)> {
        self.sent.lock().unwrap().clone()
    }
}

impl DelayQueue for FakeQueue {
    async fn send_later(&self, work: &DelayedWork, delay: Duration) -> Result<(), ServiceError> {
        self.sent.lock().unwrap().push((work.clone(), delay));
        Ok(())
    }
}

#[derive(Default)]
struct FakeNotifier {
    notices: Mutex<Vec<GaveUpNotice>>,
}

impl FakeNotifier {
    fn notices(&self) -> Vec<GaveUpNotice> {
        self.notices.lock().unwrap().clone()
    }
}

impl Notifier for FakeNotifier {
    async fn gave_up(&self, notice: &GaveUpNotice) -> Result<(), ServiceError> {
        self.notices.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

#[derive(Default)]
struct FakeLogs {
    lines: Vec<String>,
    reads: Mutex<u32>,
}

impl BuildLogs for FakeLogs {
    async fn tail(&self, _: &LogLocation, _: u32) -> Result<Vec<String>, ServiceError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self.lines.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// The world a test runs in

type FakePorts = Ports<FakeCodeBuild, FakeLedger, FakeBook, FakeQueue, FakeNotifier, FakeLogs>;

struct World {
    ports: FakePorts,
    config: Config,
    settings: AutoRetrySettings,
    now: DateTime<Utc>,
}

const PROJECT: &str = "my-sample-project";
const OWN_ROLE: &str = "autopilot-AutoRetryRole-X1/auto-retry";

impl World {
    fn new(policy: RetryPolicy) -> Self {
        let env: HashMap<&str, &str> = HashMap::from([
            ("AUTOPILOT_CONFIG_URI", "file:/tmp/autopilot.toml"),
            ("AUTOPILOT_LEDGER_TABLE", "ledger"),
            ("AUTOPILOT_DELAY_QUEUE_URL", "http://127.0.0.1:1/q"),
            (
                "AUTOPILOT_GAVE_UP_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:t",
            ),
            ("AUTOPILOT_OWN_INITIATOR", "autopilot-AutoRetryRole-*"),
            ("AUTOPILOT_BATCH_MAX_RECHECKS", "3"),
        ]);
        let settings =
            AutoRetrySettings::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).unwrap();
        Self {
            ports: Ports {
                codebuild: FakeCodeBuild::default(),
                ledger: FakeLedger::default(),
                book: FakeBook::default(),
                queue: FakeQueue::default(),
                notifier: FakeNotifier::default(),
                logs: FakeLogs::default(),
            },
            config: Config {
                projects: vec![ProjectEntry {
                    pattern: ProjectPattern::new("my-*").unwrap(),
                    dry_run: false,
                    retry: policy,
                    reaper: ReaperPolicy::default(),
                    start: crate::config::StartPolicy::default(),
                }],
                account: AccountSettings::default(),
                ..Config::default()
            },
            settings,
            now: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
        }
    }

    /// Acts at once: no backoff, so a single delivery goes all the way.
    fn immediate() -> Self {
        Self::new(RetryPolicy {
            backoff_initial: Duration::ZERO,
            ..RetryPolicy::default()
        })
    }

    async fn deliver(&self, input: &Value) -> Result<Value, AutoRetryError> {
        let invocation = Invocation {
            config: &self.config,
            settings: &self.settings,
            now: self.now,
            deadline: self.now + chrono::Duration::seconds(60),
        };
        handle(&self.ports, &invocation, input.clone()).await
    }
}

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/codebuild-events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The transient sample (`toomanyrequests` while provisioning).
fn transient_event() -> Value {
    sample("build-state-failed-provisioning.json")
}

fn event_build_id(event: &Value) -> BuildId {
    let parsed: BuildStateChangeEvent = serde_json::from_value(event.clone()).unwrap();
    parsed.build_id().clone()
}

/// The build `BatchGetBuilds` returns for an event's build.
fn build_of(event: &Value) -> Build {
    let id = event_build_id(event);
    let mut build = plain_build(PROJECT, 0);
    build.id = BuildId::new(id.project(), id.uuid()).unwrap();
    build
}

fn world_with(event: &Value, policy: RetryPolicy) -> World {
    let world = World::new(policy);
    world.ports.codebuild.add_build(build_of(event));
    world
}

fn retry_key(root: &BuildId, attempt: u32) -> IdempotencyKey {
    IdempotencyKey::for_retry(root, attempt)
}

fn action(answer: &Value) -> (&str, &str) {
    (
        answer["action"].as_str().unwrap(),
        answer["reason"].as_str().unwrap(),
    )
}

fn sqs(records: &[(&str, Value)]) -> Value {
    json!({
        "Records": records.iter().map(|(id, body)| json!({
            "messageId": id,
            "receiptHandle": "rh",
            "body": body.to_string(),
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:delay",
            "awsRegion": "us-east-1",
        })).collect::<Vec<_>>()
    })
}

// ---------------------------------------------------------------------------------------------
// Single builds

#[tokio::test]
async fn transient_failure_is_retried_once_with_the_roots_token() {
    let event = transient_event();
    let world = world_with(
        &event,
        RetryPolicy {
            backoff_initial: Duration::ZERO,
            ..RetryPolicy::default()
        },
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("retry", "rate_limited"));
    assert_eq!(answer["class"], "transient");
    assert_eq!(answer["attempt"], 1);

    let root = event_build_id(&event);
    let retries = world.ports.codebuild.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].build.id(), root.id());
    assert_eq!(retries[0].token, retry_key(&root, 1).token());
    // The lineage links the new build to its root, and the claim is completed.
    let made = answer["retry_id"].as_str().unwrap();
    let lineage = world.ports.book.lineage.lock().unwrap()[made].clone();
    assert_eq!((lineage.root.id(), lineage.attempt), (root.id(), 1));
    let key = LedgerKey::for_mutation(&retry_key(&root, 1));
    assert_eq!(
        world.ports.ledger.status_of(&key),
        Some(RecordStatus::Completed)
    );
}

#[tokio::test]
async fn the_same_event_delivered_again_makes_no_second_retry() {
    let event = transient_event();
    let world = world_with(
        &event,
        RetryPolicy {
            backoff_initial: Duration::ZERO,
            ..RetryPolicy::default()
        },
    );
    let answers = futures::future::join_all((0..5).map(|_| world.deliver(&event))).await;
    let later = world.deliver(&event).await.unwrap();
    assert_eq!(world.ports.codebuild.retries().len(), 1);
    let actions: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().unwrap()["action"].clone())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "retry").count(), 1);
    assert_eq!(actions.iter().filter(|a| **a == "duplicate").count(), 4);
    assert_eq!(action(&later), ("duplicate", "already_retried"));
    assert!(later["retry_id"].is_string());
}

#[tokio::test]
async fn a_completed_claim_means_no_call() {
    let event = transient_event();
    let world = world_with(
        &event,
        RetryPolicy {
            backoff_initial: Duration::ZERO,
            ..RetryPolicy::default()
        },
    );
    let root = event_build_id(&event);
    world.ports.ledger.seed_completed(
        &LedgerKey::for_mutation(&retry_key(&root, 1)),
        &super::build::retry_build_payload(&root),
        json!({"build": format!("{PROJECT}:{}", uuid(7))}),
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("duplicate", "already_retried"));
    assert!(world.ports.codebuild.retries().is_empty());
    assert_eq!(*world.ports.book.budget_taken.lock().unwrap(), 0);
}

#[tokio::test]
async fn ledger_unavailable_fails_closed_with_a_retryable_error() {
    let event = transient_event();
    let world = World::immediate();
    world.ports.codebuild.add_build(build_of(&event));
    world.ports.ledger.set_unavailable(true);
    let err = world.deliver(&event).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.reason(), "ledger_unavailable");
    assert!(world.ports.codebuild.retries().is_empty());
}

#[tokio::test]
async fn a_retry_of_a_retry_uses_the_roots_token_for_attempt_two() {
    let event = transient_event();
    let world = World::immediate();
    world.ports.codebuild.add_build(build_of(&event));
    let failed = event_build_id(&event);
    let root = BuildId::new(PROJECT, &uuid(1)).unwrap();
    world.ports.book.lineage.lock().unwrap().insert(
        failed.id(),
        Lineage {
            build: failed.clone(),
            parent: root.clone(),
            root: root.clone(),
            attempt: 1,
            created_at: world.now,
        },
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("retry", "rate_limited"));
    assert_eq!(answer["attempt"], 2);
    let retries = world.ports.codebuild.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].build.id(), failed.id());
    assert_eq!(retries[0].token, retry_key(&root, 2).token());
}

#[tokio::test]
async fn at_the_cap_it_gives_up_and_notifies_once() {
    let event = transient_event();
    let world = World::immediate();
    world.ports.codebuild.add_build(build_of(&event));
    let failed = event_build_id(&event);
    let root = BuildId::new(PROJECT, &uuid(1)).unwrap();
    world.ports.book.lineage.lock().unwrap().insert(
        failed.id(),
        Lineage {
            build: failed.clone(),
            parent: BuildId::new(PROJECT, &uuid(2)).unwrap(),
            root: root.clone(),
            attempt: 2,
            created_at: world.now,
        },
    );
    let first = world.deliver(&event).await.unwrap();
    let again = world.deliver(&event).await.unwrap();
    assert_eq!(action(&first), ("give_up", "retry_cap_reached"));
    assert_eq!(action(&again), ("give_up", "retry_cap_reached"));
    assert!(world.ports.codebuild.retries().is_empty());
    let notices = world.ports.notifier.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].root_build.id(), root.id());
    assert_eq!(notices[0].last_build.id(), failed.id());
    assert_eq!(notices[0].attempts, 2);
    assert_eq!(notices[0].because, GaveUpBecause::RetryCapReached);
    assert_eq!(notices[0].reasons, vec!["rate_limited".to_owned()]);
}

#[tokio::test]
async fn no_notice_without_a_topic_or_when_the_config_says_no() {
    let event = transient_event();
    for (topic, notify) in [(false, true), (true, false)] {
        let mut world = World::immediate();
        world.ports.codebuild.add_build(build_of(&event));
        if !topic {
            world.settings.gave_up_topic_arn = None;
        }
        world.config.account.notify_gave_up = notify;
        let failed = event_build_id(&event);
        world.ports.book.lineage.lock().unwrap().insert(
            failed.id(),
            Lineage {
                build: failed.clone(),
                parent: failed.clone(),
                root: failed.clone(),
                attempt: 2,
                created_at: world.now,
            },
        );
        let answer = world.deliver(&event).await.unwrap();
        assert_eq!(answer["action"], "give_up");
        assert!(world.ports.notifier.notices().is_empty());
    }
}

#[tokio::test]
async fn a_spent_budget_means_no_retry_a_notice_and_none_on_redelivery() {
    let event = transient_event();
    for (outcome, reason) in [
        (
            BudgetOutcome::ProjectExhausted {
                used: 20,
                limit: 20,
            },
            "project_budget_spent",
        ),
        (
            BudgetOutcome::BreakerOpen {
                used: 200,
                limit: 200,
            },
            "breaker_open",
        ),
    ] {
        let world = World::immediate();
        world.ports.codebuild.add_build(build_of(&event));
        *world.ports.book.budget.lock().unwrap() = Some(outcome);
        let first = world.deliver(&event).await.unwrap();
        assert_eq!(action(&first), ("give_up", reason));
        // The budget comes back, but this attempt was given up for good.
        *world.ports.book.budget.lock().unwrap() = None;
        let again = world.deliver(&event).await.unwrap();
        assert_eq!(action(&again), ("give_up", reason));
        assert!(world.ports.codebuild.retries().is_empty());
        let notices = world.ports.notifier.notices();
        assert_eq!(notices.len(), 1, "{reason}");
        assert_eq!(notices[0].attempts, 0);
        let root = event_build_id(&event);
        let key = LedgerKey::for_mutation(&retry_key(&root, 1));
        assert_eq!(
            world.ports.ledger.status_of(&key),
            Some(RecordStatus::Failed)
        );
    }
}

#[tokio::test]
async fn dry_run_reports_and_changes_nothing() {
    let event = transient_event();
    for by_settings in [true, false] {
        let mut world = World::new(RetryPolicy::default());
        world.ports.codebuild.add_build(build_of(&event));
        if by_settings {
            world.settings.dry_run = true;
        } else {
            world.config.projects[0].dry_run = true;
        }
        let answer = world.deliver(&event).await.unwrap();
        assert_eq!(action(&answer), ("dry_run", "rate_limited"));
        assert_eq!(answer["would"], "retry");
        assert_eq!(answer["dry_run"], true);
        assert!(world.ports.codebuild.retries().is_empty());
        assert!(world.ports.queue.sent().is_empty());
        assert_eq!(world.ports.ledger.claims_made(), 0);
        assert_eq!(*world.ports.book.budget_taken.lock().unwrap(), 0);
    }
}

#[tokio::test]
async fn dry_run_at_the_cap_sends_no_notice() {
    let event = transient_event();
    let mut world = World::immediate();
    world.settings.dry_run = true;
    world.ports.codebuild.add_build(build_of(&event));
    let failed = event_build_id(&event);
    world.ports.book.lineage.lock().unwrap().insert(
        failed.id(),
        Lineage {
            build: failed.clone(),
            parent: failed.clone(),
            root: failed.clone(),
            attempt: 2,
            created_at: world.now,
        },
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("dry_run", "retry_cap_reached"));
    assert_eq!(answer["would"], "give_up");
    assert!(world.ports.notifier.notices().is_empty());
    assert_eq!(world.ports.ledger.claims_made(), 0);
}

#[tokio::test]
async fn a_build_codebuild_retries_itself_is_left_alone() {
    let event = transient_event();
    let world = World::immediate();
    let mut build = build_of(&event);
    build.native_auto_retry = Some(NativeAutoRetry {
        limit: 2,
        number: 0,
        next: None,
        previous: None,
    });
    world.ports.codebuild.add_build(build);
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("skip", "native_auto_retry"));
    assert!(world.ports.codebuild.retries().is_empty());
}

#[tokio::test]
async fn our_own_retry_without_lineage_yet_comes_back_later() {
    let event = transient_event();
    let world = World::immediate();
    let mut build = build_of(&event);
    build.initiator = Some(OWN_ROLE.into());
    world.ports.codebuild.add_build(build);
    let err = world.deliver(&event).await.unwrap_err();
    assert_eq!(err.reason(), "lineage_pending");
    assert!(err.is_retryable());
    assert!(world.ports.codebuild.retries().is_empty());
    // Once the lineage exists, the same event is decided as attempt 2.
    let failed = event_build_id(&event);
    world.ports.book.lineage.lock().unwrap().insert(
        failed.id(),
        Lineage {
            build: failed.clone(),
            parent: BuildId::new(PROJECT, &uuid(1)).unwrap(),
            root: BuildId::new(PROJECT, &uuid(1)).unwrap(),
            attempt: 1,
            created_at: world.now,
        },
    );
    assert_eq!(world.deliver(&event).await.unwrap()["attempt"], 2);
}

#[tokio::test]
async fn skips_before_any_lookup_and_unknown_builds() {
    let world = World::immediate();
    for (name, reason) in [
        ("build-state-stopped.json", "stopped"),
        ("build-state-succeeded.json", "succeeded"),
        ("build-state-in-progress.json", "in_progress"),
    ] {
        let answer = world.deliver(&sample(name)).await.unwrap();
        assert_eq!(action(&answer), ("skip", reason), "{name}");
    }
    // Configured project, but CodeBuild does not know the build.
    let answer = world.deliver(&transient_event()).await.unwrap();
    assert_eq!(action(&answer), ("skip", "build_not_found"));
    // A project without a config entry.
    let mut other = transient_event();
    other["detail"]["project-name"] = json!("not-configured");
    let answer = world.deliver(&other).await.unwrap();
    assert_eq!(action(&answer), ("skip", "project_not_configured"));
    assert!(world.ports.codebuild.retries().is_empty());
}

#[tokio::test]
async fn a_permanent_failure_is_never_retried() {
    let event = sample("build-state-failed-tests.json");
    let world = world_with(
        &event,
        RetryPolicy {
            backoff_initial: Duration::ZERO,
            ..RetryPolicy::default()
        },
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("skip", "command_failed"));
    assert_eq!(answer["class"], "permanent");
    assert!(world.ports.codebuild.retries().is_empty());
    assert_eq!(*world.ports.logs.reads.lock().unwrap(), 0);
}

#[tokio::test]
async fn the_log_tail_can_reveal_a_rate_limit_behind_a_failed_command() {
    let event = sample("build-state-failed-tests.json");
    let mut world = world_with(
        &event,
        RetryPolicy {
            backoff_initial: Duration::ZERO,
            read_log_tail: true,
            ..RetryPolicy::default()
        },
    );
    world.ports.logs.lines = vec![
        "Step 1/5 : FROM node:20".into(),
        "toomanyrequests: You have reached your pull rate limit.".into(),
    ];
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("retry", "rate_limited"));
    assert_eq!(answer["class_source"], "log_tail");
    assert_eq!(world.ports.codebuild.retries().len(), 1);
}

#[tokio::test]
async fn a_backoff_goes_through_the_delay_queue_and_the_delivery_acts() {
    let event = transient_event();
    let world = world_with(&event, RetryPolicy::default());
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("delay", "rate_limited"));
    assert!(world.ports.codebuild.retries().is_empty());
    let sent = world.ports.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, Duration::from_secs(30));
    let DelayedWork::RetryAfterBackoff {
        event: carried,
        attempt,
    } = &sent[0].0
    else {
        panic!("expected a backoff, got {:?}", sent[0].0);
    };
    assert_eq!((carried, *attempt), (&event, 1));

    let body = serde_json::to_value(&sent[0].0).unwrap();
    let answer = world.deliver(&sqs(&[("m1", body)])).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(world.ports.codebuild.retries().len(), 1);
    assert_eq!(world.ports.queue.sent().len(), 1, "no second delay");
}

#[tokio::test]
async fn retryable_codebuild_errors_release_the_claim_and_permanent_ones_fail_it() {
    let event = transient_event();
    let world = World::immediate();
    world.ports.codebuild.add_build(build_of(&event));
    world.ports.codebuild.fail_next(
        Call::RetryBuild,
        CodeBuildError::Throttled {
            operation: "RetryBuild",
            message: "Rate exceeded".into(),
        },
    );
    let err = world.deliver(&event).await.unwrap_err();
    assert!(err.is_retryable());
    // Released: the redelivery claims at once and retries with the same token.
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(answer["action"], "retry");
    let retries = world.ports.codebuild.retries();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0].token, retries[1].token);

    let world = World::immediate();
    world.ports.codebuild.add_build(build_of(&event));
    world.ports.codebuild.fail_next(
        Call::RetryBuild,
        CodeBuildError::InvalidInput {
            operation: "RetryBuild",
            message: "build is not retryable".into(),
        },
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("drop", "codebuild_rejected"));
    let again = world.deliver(&event).await.unwrap();
    assert_eq!(action(&again), ("drop", "previously_failed"));
    assert_eq!(world.ports.codebuild.retries().len(), 1);
}

#[tokio::test]
async fn anything_else_is_a_non_retryable_rejection() {
    let world = World::immediate();
    for input in [
        json!({"hello": "world"}),
        json!({"detail-type": "CodeBuild Build Phase Change", "detail": {}}),
        json!({"detail-type": "CodeBuild Build State Change", "detail": {"nope": 1}}),
        json!({"Records": "not a list"}),
    ] {
        let err = world.deliver(&input).await.unwrap_err();
        assert!(!err.is_retryable(), "{input}");
        assert_eq!(err.reason(), "rejected_input");
    }
}

#[tokio::test]
async fn queue_batch_names_only_the_messages_that_failed_retryably() {
    let event = transient_event();
    let world = World::immediate();
    // m1: our own retry without lineage yet (retryable); m2: acted on; m3: unreadable (dropped).
    let pending = {
        let mut e = event.clone();
        let id = format!("{PROJECT}:{}", uuid(5));
        e["detail"]["build-id"] = json!(id);
        let mut build = plain_build(PROJECT, 5);
        build.initiator = Some(OWN_ROLE.into());
        world.ports.codebuild.add_build(build);
        e
    };
    world.ports.codebuild.add_build(build_of(&event));
    let work = |e: &Value| {
        serde_json::to_value(DelayedWork::RetryAfterBackoff {
            event: e.clone(),
            attempt: 1,
        })
        .unwrap()
    };
    let input = sqs(&[
        ("m1", work(&pending)),
        ("m2", work(&event)),
        ("m3", json!({"kind": "unknown"})),
    ]);
    let answer = world.deliver(&input).await.unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
    );
    assert_eq!(world.ports.codebuild.retries().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Batches

const BATCH_UUID: u32 = 900;

fn batch_id() -> BatchId {
    BatchId::new(PROJECT, &uuid(BATCH_UUID)).unwrap()
}

fn batch(status: BuildStatus, members: &[&Build]) -> BuildBatch {
    BuildBatch {
        id: batch_id(),
        arn: None,
        complete: status != BuildStatus::InProgress,
        status,
        source_version: None,
        resolved_source_version: None,
        initiator: None,
        start_time: None,
        end_time: None,
        environment_variables: Vec::new(),
        build_ids: members.iter().map(|b| b.id.clone()).collect(),
        batch_number: Some(1),
        current_phase: None,
        groups: Vec::new(),
    }
}

fn member(n: u32, status: BuildStatus, context: Option<&str>) -> Build {
    let mut build = plain_build(PROJECT, n);
    build.status = status;
    build.batch_arn = Some(format!(
        "arn:aws:codebuild:us-west-2:123456789012:build-batch/{}",
        batch_id()
    ));
    if let Some(text) = context {
        build.phases = vec![BuildPhase {
            phase_type: PhaseType::Provisioning,
            phase_status: Some(BuildStatus::Failed),
            start_time: None,
            end_time: None,
            duration_seconds: None,
            contexts: vec![PhaseContext::from_event_text(text)],
        }];
    }
    build
}

const RATE_LIMIT: &str = "CLIENT_ERROR: toomanyrequests: You have reached your pull rate limit";

/// The transient sample event, as a failure of batch member `n`.
fn member_event(n: u32) -> Value {
    let mut event = transient_event();
    event["detail"]["build-id"] = json!(format!(
        "arn:aws:codebuild:us-west-2:123456789012:build/{PROJECT}:{}",
        uuid(n)
    ));
    event
}

#[tokio::test]
async fn a_running_batch_is_rechecked_through_the_delay_queue() {
    let world = World::immediate();
    let failed = member(1, BuildStatus::Failed, Some(RATE_LIMIT));
    let running = member(2, BuildStatus::InProgress, None);
    world.ports.codebuild.add_build(failed.clone());
    world.ports.codebuild.add_build(running.clone());
    world
        .ports
        .codebuild
        .add_batch(batch(BuildStatus::InProgress, &[&failed, &running]));

    let answer = world.deliver(&member_event(1)).await.unwrap();
    assert_eq!(action(&answer), ("delay", "batch_in_progress"));
    assert_eq!(answer["batch_id"], batch_id().id());
    let sent = world.ports.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, world.settings.batch_recheck_delay);
    let DelayedWork::BatchRecheck {
        batch,
        build,
        observed_attempts: 0,
        rechecks: 0,
    } = &sent[0].0
    else {
        panic!("expected the first re-check, got {:?}", sent[0].0);
    };
    assert_eq!((batch.id(), build.id()), (batch_id().id(), failed.id.id()));
    assert!(world.ports.codebuild.batch_retries().is_empty());

    // Still running at every re-check: after the longest wait (3 here) it gives up, once.
    let mut work = sent[0].0.clone();
    for n in 1..=3 {
        let body = serde_json::to_value(&work).unwrap();
        world.deliver(&sqs(&[("m", body)])).await.unwrap();
        let sent = world.ports.queue.sent();
        if n < 3 {
            work = sent.last().unwrap().0.clone();
            assert!(matches!(work, DelayedWork::BatchRecheck { rechecks, .. } if rechecks == n));
        } else {
            assert_eq!(sent.len(), 3, "no re-check after the last");
        }
    }
    let notices = world.ports.notifier.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].because, GaveUpBecause::BatchNeverFinished);
    assert_eq!(
        notices[0].batch.as_ref().map(BatchId::id),
        Some(batch_id().id())
    );
}

#[tokio::test]
async fn a_failed_batch_with_transient_members_is_retried_once_in_place() {
    let world = World::immediate();
    let a = member(1, BuildStatus::Failed, Some(RATE_LIMIT));
    let b = member(2, BuildStatus::Fault, None);
    let ok = member(3, BuildStatus::Succeeded, None);
    for m in [&a, &b, &ok] {
        world.ports.codebuild.add_build(m.clone());
    }
    world
        .ports
        .codebuild
        .add_batch(batch(BuildStatus::Failed, &[&a, &b, &ok]));

    let first = world.deliver(&member_event(1)).await.unwrap();
    assert_eq!(action(&first), ("retry", "service_fault"));
    // The strictest member decides: a FAULT member makes it retry-once.
    assert_eq!(first["class"], "retry_once");
    assert_eq!(first["attempt"], 1);
    // The other member's event finds the batch running again: a re-check, no second retry.
    let second = world.deliver(&member_event(2)).await.unwrap();
    assert_eq!(action(&second), ("delay", "batch_in_progress"));
    let recheck = world.ports.queue.sent().last().unwrap().0.clone();
    assert!(matches!(
        recheck,
        DelayedWork::BatchRecheck {
            observed_attempts: 1,
            ..
        }
    ));
    let retries = world.ports.codebuild.batch_retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].retry_type, BatchRetryType::FailedBuilds);
    assert_eq!(
        retries[0].token,
        IdempotencyKey::for_batch_retry(&batch_id(), 1).token()
    );
    assert_eq!(
        world.ports.book.batch_attempts.lock().unwrap()[&batch_id().id()],
        1
    );
    assert!(
        world.ports.codebuild.retries().is_empty(),
        "no RetryBuild for members"
    );

    // The retried batch fails again: retry-once is spent, so the re-check gives up.
    world
        .ports
        .codebuild
        .add_batch(batch(BuildStatus::Failed, &[&a, &b, &ok]));
    let body = serde_json::to_value(&recheck).unwrap();
    world.deliver(&sqs(&[("m", body)])).await.unwrap();
    assert_eq!(world.ports.codebuild.batch_retries().len(), 1);
    let notices = world.ports.notifier.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].because, GaveUpBecause::RetryCapReached);
    assert_eq!(notices[0].attempts, 1);
}

#[tokio::test]
async fn a_batch_with_a_permanent_member_is_left_alone() {
    let world = World::immediate();
    let a = member(1, BuildStatus::Failed, Some(RATE_LIMIT));
    let b = member(
        2,
        BuildStatus::Failed,
        Some(
            "COMMAND_EXECUTION_ERROR: Error while executing command: make test. Reason: exit status 2",
        ),
    );
    world.ports.codebuild.add_build(a.clone());
    world.ports.codebuild.add_build(b.clone());
    world
        .ports
        .codebuild
        .add_batch(batch(BuildStatus::Failed, &[&a, &b]));
    let answer = world.deliver(&member_event(1)).await.unwrap();
    assert_eq!(action(&answer), ("skip", "command_failed"));
    assert!(world.ports.codebuild.batch_retries().is_empty());
}

#[tokio::test]
async fn a_recheck_that_finds_the_batch_retried_meanwhile_is_dropped() {
    let world = World::immediate();
    let a = member(1, BuildStatus::Failed, Some(RATE_LIMIT));
    world.ports.codebuild.add_build(a.clone());
    world
        .ports
        .codebuild
        .add_batch(batch(BuildStatus::Failed, &[&a]));
    world
        .ports
        .book
        .batch_attempts
        .lock()
        .unwrap()
        .insert(batch_id().id(), 1);
    let stale = DelayedWork::BatchRecheck {
        batch: batch_id(),
        build: a.id.clone(),
        observed_attempts: 0,
        rechecks: 2,
    };
    let body = serde_json::to_value(&stale).unwrap();
    let answer = world.deliver(&sqs(&[("m", body)])).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(world.ports.codebuild.batch_retries().is_empty());

    // A current one (observed 1) acts: attempt 2 of the batch.
    let current = DelayedWork::BatchRecheck {
        batch: batch_id(),
        build: a.id.clone(),
        observed_attempts: 1,
        rechecks: 0,
    };
    let body = serde_json::to_value(&current).unwrap();
    world.deliver(&sqs(&[("m", body)])).await.unwrap();
    let retries = world.ports.codebuild.batch_retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(
        retries[0].token,
        IdempotencyKey::for_batch_retry(&batch_id(), 2).token()
    );
}

#[tokio::test]
async fn only_configured_classes_are_retried() {
    let event = sample("build-state-fault.json");
    let world = world_with(
        &event,
        RetryPolicy {
            backoff_initial: Duration::ZERO,
            classes: vec![RetryClass::Transient],
            ..RetryPolicy::default()
        },
    );
    let answer = world.deliver(&event).await.unwrap();
    assert_eq!(action(&answer), ("skip", "class_not_enabled"));
    assert!(world.ports.codebuild.retries().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The Lambda edge

/// Serves a fixed configuration text, or fails like an unavailable SSM.
struct FixedSource(Option<&'static str>);

impl crate::ports::ConfigSource for FixedSource {
    async fn fetch(&self, _: &crate::config::ConfigUri) -> Result<String, ServiceError> {
        self.0.map(str::to_owned).ok_or(ServiceError::Unavailable {
            service: "ssm",
            operation: "GetParameter",
            message: "throttled".into(),
        })
    }
}

fn cache(source: FixedSource) -> crate::config::ConfigCache<FixedSource> {
    crate::config::ConfigCache::new(
        source,
        crate::config::ConfigUri::parse("ssm:/autopilot").unwrap(),
        crate::config::AllowedProjects::all(),
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn invoke_keeps_retryable_errors_and_answers_rejections() {
    let world = World::immediate();
    let deadline = std::time::SystemTime::now() + Duration::from_secs(60);
    let good = cache(FixedSource(Some("[[projects]]\nname = \"my-*\"\n")));
    let answer = super::invoke(
        &world.ports,
        &good,
        &world.settings,
        deadline,
        json!({"x": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        json!({"action": "reject", "reason": "rejected_input"})
    );

    let down = cache(FixedSource(None));
    let err = super::invoke(
        &world.ports,
        &down,
        &world.settings,
        deadline,
        transient_event(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "config_unavailable");
    assert!(err.is_retryable());
}

/// Issue 5's rule wired into auto-retry: a failed batch that a newer batch of the same branch
/// supersedes is never retried; a newer batch of another branch changes nothing.
#[tokio::test]
async fn a_failed_batch_superseded_on_its_branch_is_not_retried() {
    for (newer_branch, expected, retries) in [
        ("feature/x", ("skip", "superseded"), 0),
        ("feature/y", ("retry", "rate_limited"), 1),
    ] {
        let world = World::immediate();
        let a = member(1, BuildStatus::Failed, Some(RATE_LIMIT));
        world.ports.codebuild.add_build(a.clone());
        let mut failed = batch(BuildStatus::Failed, &[&a]);
        failed.source_version = Some("refs/heads/feature/x".into());
        let mut newer = batch(BuildStatus::InProgress, &[]);
        newer.id = BatchId::new(PROJECT, &uuid(BATCH_UUID + 1)).unwrap();
        newer.batch_number = Some(2);
        newer.source_version = Some(format!("refs/heads/{newer_branch}"));
        world.ports.codebuild.add_batch(failed);
        world.ports.codebuild.add_batch(newer);

        let answer = world.deliver(&member_event(1)).await.unwrap();
        assert_eq!(action(&answer), expected, "newer batch on {newer_branch}");
        assert_eq!(world.ports.codebuild.batch_retries().len(), retries);
    }
}
