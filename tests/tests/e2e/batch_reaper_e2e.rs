//! Stale and superseded batch stopping end to end (issue 5, "Done when"): the real
//! `batch-reaper` binary run through the Lambda harness, CodeBuild played by `codebuild-local`.
//! No moto: the sweep only talks to CodeBuild (every AWS endpoint points at the emulator, so a
//! call to anything else would show up in its call log as an unknown operation).
//!
//! Each test starts its own emulator, seeds the in-progress batches the rule is about through
//! the control API (branch in `AUTOPILOT_BRANCH` / `AUTOPILOT_PR` or in `sourceVersion`, age,
//! initiator), invokes the function once with the scheduled event EventBridge sends, and checks
//! three things that must agree: the `StopBuildBatch` calls the emulator accepted, the batches'
//! statuses afterwards, and the summary the invocation returned.
//!
//! `buildBatchNumber` is what orders batches; the emulator numbers them per project in the
//! order they are seeded, whatever age a seed is given.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use crate::local_services;
use codebuild_local::control::{ControlClient, SeedBatch, SeedBatchBuild};
use codebuild_local::model::{EnvironmentVariable, Status};
use codebuild_local::protocol::CallRecord;
use harness::lambda::{self, FunctionSpec};
use harness::stack::CodeBuildCli;
use harness::workspace;
use serde_json::{Value, json};

/// The access key the function signs with (and so the initiator the emulator records).
const OWN_KEY: &str = "autopilot-batch-reaper";

/// One configuration for every test; each test uses its own projects. No glob entry, so a
/// project not named here is not configured (and the sweep needs no `ListProjects`).
const CONFIG: &str = r#"
[[projects]]
name = "stale"
[projects.reaper]
max_age_minutes = 60

[[projects]]
name = "superseding"

[[projects]]
name = "protected"
[projects.reaper]
protected_branches = ["main", "release/*"]

[[projects]]
name = "numbering"

[[projects]]
name = "front"

[[projects]]
name = "back"

[[projects]]
name = "configured"

[[projects]]
name = "guarded"
[projects.reaper]
max_age_minutes = 60
excluded_initiators = ["release-bot*"]

[[projects]]
name = "rehearsal"
dry_run = true
[projects.reaper]
max_age_minutes = 60

[[projects]]
name = "mixed"
[projects.reaper]
max_age_minutes = 60
"#;

/// The project names of [`CONFIG`].
fn configured_projects() -> Vec<String> {
    CONFIG
        .lines()
        .filter_map(|line| line.trim().strip_prefix("name = "))
        .map(|name| name.trim_matches('"').to_owned())
        .collect()
}

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;

// ---------------------------------------------------------------------------------------------
// The stack

struct Stack {
    emulator: codebuild_local::Server,
    cli: CodeBuildCli,
    _config: tempfile::NamedTempFile,
    config_uri: String,
}

/// What a seeded batch builds.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `AUTOPILOT_BRANCH`, as our own webhook starts set it.
    BranchVar(&'a str),
    /// `AUTOPILOT_PR`, as our own webhook starts set it.
    PrVar(&'a str),
    /// Only a `sourceVersion` (`refs/heads/x`, `pr/42`, or a bare commit).
    Version(&'a str),
}

/// One batch to seed.
struct Seed<'a> {
    project: &'a str,
    source: Source<'a>,
    age_seconds: i64,
    initiator: Option<&'a str>,
}

impl<'a> Seed<'a> {
    fn new(project: &'a str, source: Source<'a>, age_seconds: i64) -> Self {
        Self {
            project,
            source,
            age_seconds,
            initiator: None,
        }
    }

    fn by(mut self, initiator: &'a str) -> Self {
        self.initiator = Some(initiator);
        self
    }

    fn to_seed_batch(&self) -> SeedBatch {
        let var = |name: &str, value: &str| {
            Some(vec![EnvironmentVariable {
                name: name.into(),
                value: value.into(),
                kind: "PLAINTEXT".into(),
            }])
        };
        let (environment_variables, source_version) = match self.source {
            Source::BranchVar(branch) => (var("AUTOPILOT_BRANCH", branch), None),
            Source::PrVar(pr) => (var("AUTOPILOT_PR", pr), None),
            Source::Version(version) => (None, Some(version.to_owned())),
        };
        SeedBatch {
            project_name: self.project.into(),
            age_seconds: Some(self.age_seconds),
            source_version,
            environment_variables,
            initiator: self.initiator.map(str::to_owned),
            // Two builds, both running: a stop saves 2 × age build-minutes.
            builds: Some(vec![SeedBatchBuild::default(), SeedBatchBuild::default()]),
            ..SeedBatch::default()
        }
    }
}

impl Stack {
    async fn start() -> Stack {
        let emulator = local_services::codebuild_local().await;
        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(config.path(), CONFIG).unwrap();
        let config_uri = format!("file:{}", config.path().display());
        let cli = CodeBuildCli::new(emulator.endpoint());
        // Every configured project exists in CodeBuild, as in an account the configuration
        // was written for (a missing one would be an error in every sweep's summary).
        cli.create_projects(configured_projects()).await.unwrap();
        Stack {
            emulator,
            cli,
            _config: config,
            config_uri,
        }
    }

    fn control(&self) -> ControlClient {
        self.emulator.control()
    }

    async fn seed(&self, seed: Seed<'_>) -> String {
        let batch = self
            .control()
            .seed_batch(&seed.to_seed_batch())
            .await
            .unwrap();
        batch["id"].as_str().unwrap().to_owned()
    }

    async fn seed_raw(&self, seed: SeedBatch) -> String {
        let batch = self.control().seed_batch(&seed).await.unwrap();
        batch["id"].as_str().unwrap().to_owned()
    }

    /// The function as the template deploys it, pointed at this emulator.
    fn spec(&self, extra_env: &[(&str, &str)]) -> FunctionSpec {
        let binary = workspace::binary("batch-reaper");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (make test does)",
            binary.display()
        );
        let endpoint = self.emulator.endpoint();
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ENDPOINT_URL_CODEBUILD", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", OWN_KEY),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AUTOPILOT_CONFIG_URI", self.config_uri.as_str()),
            ("AUTOPILOT_CONFIG_TTL_SECONDS", "60"),
            ("AUTOPILOT_PROJECT_PATTERNS", "*"),
        ];
        let mut spec = FunctionSpec::new("batch-reaper", binary);
        for (key, value) in env.iter().chain(extra_env) {
            spec = spec.with_env(*key, *value);
        }
        spec
    }

    /// One scheduled sweep; returns the invocation's response (the summary) and the calls the
    /// emulator received during it (taken before the test's own reads add to the log).
    async fn sweep(&self, extra_env: &[(&str, &str)]) -> (Value, Vec<CallRecord>) {
        self.control().clear_calls().await.unwrap();
        let function = lambda::start(self.spec(extra_env)).await.unwrap();
        let invocation = function.invoke(scheduled_event()).await.unwrap();
        // The decision log, shown when a test fails (the test runner captures stderr).
        for line in function.logs() {
            eprintln!("batch-reaper: {}", line.line);
        }
        function.shutdown().await;
        let calls = self.calls().await;
        match invocation.result {
            Ok(summary) => (summary, calls),
            Err(error) => panic!("the sweep failed: {error:?}"),
        }
    }

    async fn calls(&self) -> Vec<CallRecord> {
        self.control().calls().await.unwrap()
    }

    /// `buildBatchStatus` of each batch, as CodeBuild reports it now.
    async fn statuses(&self, ids: &[&str]) -> Vec<String> {
        let answer = self
            .cli
            .call("BatchGetBuildBatches", &json!({ "ids": ids }))
            .await
            .unwrap();
        let by_id: BTreeMap<String, String> = answer["buildBatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["id"].as_str().unwrap().to_owned(),
                    b["buildBatchStatus"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        ids.iter().map(|id| by_id[*id].clone()).collect()
    }

    async fn stop(self) {
        self.emulator.shutdown().await;
    }
}

/// What EventBridge sends a scheduled rule's target: the sample `sam local invoke` uses too.
fn scheduled_event() -> Value {
    let path = workspace::root().join("infra/events/batch-reaper-scheduled.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Ids of the batches whose `StopBuildBatch` the emulator accepted (not an injected fault).
fn stopped_ids(calls: &[CallRecord]) -> Vec<String> {
    let mut ids: Vec<String> = calls
        .iter()
        .filter(|c| c.operation == "StopBuildBatch" && c.fault.is_none())
        .map(|c| batch_id_of(c.params["id"].as_str().unwrap()))
        .collect();
    ids.sort();
    ids
}

fn operations(calls: &[CallRecord]) -> Vec<String> {
    calls.iter().map(|c| c.operation.clone()).collect()
}

/// The batch id in an id or an ARN (`arn:…:build-batch/project:uuid`).
fn batch_id_of(id_or_arn: &str) -> String {
    id_or_arn
        .strip_prefix("arn:")
        .and_then(|arn| arn.split_once('/'))
        .map_or(id_or_arn, |(_, id)| id)
        .to_owned()
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    ids.sort();
    ids
}

fn count(summary: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(summary, |v, key| &v[*key])
        .as_u64()
        .unwrap_or(0)
}

fn stopped(summary: &Value) -> (u64, u64) {
    (
        count(summary, &["stopped", "stale"]),
        count(summary, &["stopped", "superseded"]),
    )
}

// ---------------------------------------------------------------------------------------------
// The rules

#[tokio::test]
async fn a_stale_batch_is_stopped_and_one_under_max_age_is_left() {
    let stack = Stack::start().await;
    let old = stack
        .seed(Seed::new("stale", Source::BranchVar("feature-a"), 2 * HOUR))
        .await;
    let young = stack
        .seed(Seed::new(
            "stale",
            Source::BranchVar("feature-b"),
            10 * MINUTE,
        ))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&old]));
    assert_eq!(
        stack.statuses(&[&old, &young]).await,
        ["STOPPED", "IN_PROGRESS"]
    );
    assert_eq!(stopped(&summary), (1, 0), "{summary}");
    assert_eq!(count(&summary, &["seen"]), 2, "{summary}");
    // Two builds running for two hours: 240 build-minutes, give or take the seconds the test
    // took (the sweep measures the age on its own clock).
    let saved = summary["build_minutes_saved"].as_f64().unwrap();
    assert!((240.0..241.0).contains(&saved), "{summary}");
    stack.stop().await;
}

#[tokio::test]
async fn an_older_batch_on_the_same_branch_is_superseded_and_the_newer_left() {
    let stack = Stack::start().await;
    // The same branch once from our own start's variable, once from a `sourceVersion` only.
    let older = stack
        .seed(Seed::new(
            "superseding",
            Source::BranchVar("feature-x"),
            20 * MINUTE,
        ))
        .await;
    let newer = stack
        .seed(Seed::new(
            "superseding",
            Source::Version("refs/heads/feature-x"),
            5 * MINUTE,
        ))
        .await;
    // Another branch, and a bare commit whose branch nobody can know: neither superseded.
    let other = stack
        .seed(Seed::new(
            "superseding",
            Source::BranchVar("feature-y"),
            30 * MINUTE,
        ))
        .await;
    let unknown = stack
        .seed(Seed::new(
            "superseding",
            Source::Version("8c3f0a2b9d1e4f5a6b7c8d9e0f1a2b3c4d5e6f70"),
            30 * MINUTE,
        ))
        .await;
    let unknown_too = stack
        .seed(Seed::new(
            "superseding",
            Source::Version("8c3f0a2b9d1e4f5a6b7c8d9e0f1a2b3c4d5e6f70"),
            MINUTE,
        ))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&older]));
    assert_eq!(
        stack
            .statuses(&[&older, &newer, &other, &unknown, &unknown_too])
            .await,
        [
            "STOPPED",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "IN_PROGRESS"
        ]
    );
    assert_eq!(stopped(&summary), (0, 1), "{summary}");
    assert_eq!(
        count(&summary, &["skipped", "branch_unknown"]),
        2,
        "{summary}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_protected_branch_is_never_stopped_as_superseded() {
    let stack = Stack::start().await;
    let main_older = stack
        .seed(Seed::new(
            "protected",
            Source::Version("refs/heads/main"),
            30 * MINUTE,
        ))
        .await;
    let main_newer = stack
        .seed(Seed::new(
            "protected",
            Source::BranchVar("main"),
            5 * MINUTE,
        ))
        .await;
    let release_older = stack
        .seed(Seed::new(
            "protected",
            Source::BranchVar("release/2.0"),
            30 * MINUTE,
        ))
        .await;
    let release_newer = stack
        .seed(Seed::new(
            "protected",
            Source::BranchVar("release/2.0"),
            5 * MINUTE,
        ))
        .await;
    // In the same sweep an unprotected branch is superseded: the rule is on, the branch is not.
    let feature_older = stack
        .seed(Seed::new(
            "protected",
            Source::BranchVar("feature"),
            30 * MINUTE,
        ))
        .await;
    let feature_newer = stack
        .seed(Seed::new(
            "protected",
            Source::BranchVar("feature"),
            5 * MINUTE,
        ))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&feature_older]));
    assert_eq!(
        stack
            .statuses(&[
                &main_older,
                &main_newer,
                &release_older,
                &release_newer,
                &feature_newer
            ])
            .await,
        ["IN_PROGRESS"; 5]
    );
    assert_eq!(
        count(&summary, &["skipped", "protected_branch"]),
        2,
        "{summary}"
    );
    assert_eq!(stopped(&summary), (0, 1), "{summary}");
    stack.stop().await;
}

#[tokio::test]
async fn a_newer_batch_is_never_stopped_for_an_older_one_that_started_later() {
    let stack = Stack::start().await;
    // Seeded first, so number 1, but started 1 minute ago (a late delivery, say).
    let lower = stack
        .seed(Seed::new("numbering", Source::PrVar("7"), MINUTE))
        .await;
    // Seeded second, so number 2, started 10 minutes ago.
    let higher = stack
        .seed(Seed::new("numbering", Source::Version("pr/7"), 10 * MINUTE))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(
        stopped_ids(&calls),
        sorted(&[&lower]),
        "the lower buildBatchNumber is the older batch, whatever its startTime"
    );
    assert_eq!(
        stack.statuses(&[&lower, &higher]).await,
        ["STOPPED", "IN_PROGRESS"]
    );
    assert_eq!(stopped(&summary), (0, 1), "{summary}");
    stack.stop().await;
}

#[tokio::test]
async fn the_same_pull_request_in_two_projects_is_two_independent_things() {
    let stack = Stack::start().await;
    let front_older = stack
        .seed(Seed::new("front", Source::PrVar("42"), 20 * MINUTE))
        .await;
    // Newer than front's in time, and in its own project's numbering the first.
    let back_only = stack
        .seed(Seed::new("back", Source::Version("pr/42"), 10 * MINUTE))
        .await;
    let front_newer = stack
        .seed(Seed::new("front", Source::Version("pr/42"), 5 * MINUTE))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&front_older]));
    assert_eq!(
        stack
            .statuses(&[&front_older, &front_newer, &back_only])
            .await,
        ["STOPPED", "IN_PROGRESS", "IN_PROGRESS"]
    );
    assert_eq!(stopped(&summary), (0, 1), "{summary}");
    stack.stop().await;
}

#[tokio::test]
async fn a_batch_of_an_unconfigured_project_is_untouched() {
    let stack = Stack::start().await;
    // Superseded and days old: anything configured would stop the older one.
    let stray_older = stack
        .seed(Seed::new(
            "unconfigured",
            Source::BranchVar("feature"),
            72 * HOUR,
        ))
        .await;
    let stray_newer = stack
        .seed(Seed::new(
            "unconfigured",
            Source::BranchVar("feature"),
            48 * HOUR,
        ))
        .await;
    // The same situation in a configured project, so the sweep demonstrably acts.
    let older = stack
        .seed(Seed::new(
            "configured",
            Source::BranchVar("feature"),
            72 * HOUR,
        ))
        .await;
    stack
        .seed(Seed::new(
            "configured",
            Source::BranchVar("feature"),
            48 * HOUR,
        ))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&older]));
    assert_eq!(
        stack.statuses(&[&stray_older, &stray_newer]).await,
        ["IN_PROGRESS", "IN_PROGRESS"]
    );
    let touching: Vec<_> = calls
        .iter()
        .filter(|c| c.params.to_string().contains("unconfigured"))
        .map(|c| c.operation.clone())
        .collect();
    assert!(
        touching.is_empty(),
        "no call so much as lists it: {touching:?}"
    );
    assert_eq!(stopped(&summary), (0, 1), "{summary}");
    stack.stop().await;
}

#[tokio::test]
async fn a_batch_started_by_an_excluded_initiator_is_untouched() {
    let stack = Stack::start().await;
    let excluded = stack
        .seed(Seed::new("guarded", Source::BranchVar("feature-a"), 5 * HOUR).by("release-bot-prod"))
        .await;
    let excluded_superseded = stack
        .seed(
            Seed::new("guarded", Source::BranchVar("feature-b"), 10 * MINUTE)
                .by("release-bot-prod"),
        )
        .await;
    let people = stack
        .seed(Seed::new("guarded", Source::BranchVar("feature-c"), 5 * HOUR).by("alice"))
        .await;
    stack
        .seed(Seed::new("guarded", Source::BranchVar("feature-b"), MINUTE).by("alice"))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&people]));
    assert_eq!(
        stack.statuses(&[&excluded, &excluded_superseded]).await,
        ["IN_PROGRESS", "IN_PROGRESS"]
    );
    assert_eq!(
        count(&summary, &["skipped", "excluded_initiator"]),
        2,
        "{summary}"
    );
    assert_eq!(stopped(&summary), (1, 0), "{summary}");
    stack.stop().await;
}

#[tokio::test]
async fn a_dry_run_project_stops_nothing_and_reports_what_it_would() {
    let stack = Stack::start().await;
    let stale = stack
        .seed(Seed::new(
            "rehearsal",
            Source::BranchVar("feature-a"),
            3 * HOUR,
        ))
        .await;
    let superseded = stack
        .seed(Seed::new(
            "rehearsal",
            Source::BranchVar("feature-b"),
            10 * MINUTE,
        ))
        .await;
    let newest = stack
        .seed(Seed::new(
            "rehearsal",
            Source::BranchVar("feature-b"),
            MINUTE,
        ))
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    let operations = operations(&calls);
    assert!(
        !operations.iter().any(|op| op == "StopBuildBatch"),
        "{operations:?}"
    );
    assert_eq!(
        stack.statuses(&[&stale, &superseded, &newest]).await,
        ["IN_PROGRESS"; 3]
    );
    assert_eq!(stopped(&summary), (0, 0), "{summary}");
    assert_eq!(
        summary["dry_run"],
        json!({"stale": 1, "superseded": 1}),
        "{summary}"
    );
    assert_eq!(
        summary["build_minutes_saved"].as_f64(),
        Some(0.0),
        "{summary}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn the_deployments_dry_run_overrides_every_project() {
    let stack = Stack::start().await;
    let stale = stack
        .seed(Seed::new("stale", Source::BranchVar("feature-a"), 3 * HOUR))
        .await;
    let superseded = stack
        .seed(Seed::new(
            "superseding",
            Source::BranchVar("feature"),
            10 * MINUTE,
        ))
        .await;
    stack
        .seed(Seed::new(
            "superseding",
            Source::BranchVar("feature"),
            MINUTE,
        ))
        .await;

    let (summary, calls) = stack.sweep(&[("AUTOPILOT_DRY_RUN", "true")]).await;

    let operations = operations(&calls);
    assert!(
        !operations.iter().any(|op| op == "StopBuildBatch"),
        "{operations:?}"
    );
    assert_eq!(
        stack.statuses(&[&stale, &superseded]).await,
        ["IN_PROGRESS", "IN_PROGRESS"]
    );
    assert_eq!(
        summary["dry_run"],
        json!({"stale": 1, "superseded": 1}),
        "{summary}"
    );
    stack.stop().await;
}

/// Every rule at once in one project: the summary's counts, the accepted stops and the calls
/// made agree, and the calls are the minimum (one list page, one get, one stop per stop).
#[tokio::test]
async fn the_summary_counts_match_what_happened() {
    let stack = Stack::start().await;
    let p = "mixed";
    // stale (feature-a, 2 h) — stopped as stale
    let stale = stack
        .seed(Seed::new(p, Source::BranchVar("feature-a"), 2 * HOUR))
        .await;
    // superseded (feature-b #2 by #3) — stopped as superseded; #3 is current
    let superseded = stack
        .seed(Seed::new(p, Source::BranchVar("feature-b"), 20 * MINUTE))
        .await;
    let current = stack
        .seed(Seed::new(
            p,
            Source::Version("refs/heads/feature-b"),
            5 * MINUTE,
        ))
        .await;
    // protected: main twice, the older skipped as protected, the newer current
    let main_older = stack
        .seed(Seed::new(p, Source::BranchVar("main"), 30 * MINUTE))
        .await;
    let main_newer = stack
        .seed(Seed::new(p, Source::BranchVar("main"), 2 * MINUTE))
        .await;
    // unknown branch, young
    let unknown = stack
        .seed(Seed::new(p, Source::Version("0123abcd"), 3 * MINUTE))
        .await;
    // finishing: combining artifacts, and every build done while the batch still runs; both
    // stale and superseded by age and branch, neither touched
    let done = SeedBatchBuild {
        identifier: None,
        build_status: Some(Status::Succeeded),
    };
    let combining = stack
        .seed_raw(SeedBatch {
            current_phase: Some("COMBINE_ARTIFACTS".into()),
            builds: Some(vec![done.clone()]),
            ..Seed::new(p, Source::BranchVar("feature-c"), 3 * HOUR).to_seed_batch()
        })
        .await;
    let builds_done = stack
        .seed_raw(SeedBatch {
            build_batch_status: Some(Status::InProgress),
            builds: Some(vec![done.clone(), done]),
            ..Seed::new(p, Source::BranchVar("feature-c"), 3 * HOUR).to_seed_batch()
        })
        .await;
    stack
        .seed(Seed::new(p, Source::BranchVar("feature-c"), MINUTE))
        .await;
    // finished long ago: not even listed (the IN_PROGRESS filter)
    let finished = stack
        .seed_raw(SeedBatch {
            build_batch_status: Some(Status::Failed),
            ..Seed::new(p, Source::BranchVar("feature-a"), 5 * HOUR).to_seed_batch()
        })
        .await;

    let (summary, calls) = stack.sweep(&[]).await;

    assert_eq!(stopped_ids(&calls), sorted(&[&stale, &superseded]));
    assert_eq!(
        stack
            .statuses(&[
                &stale,
                &superseded,
                &current,
                &main_older,
                &main_newer,
                &unknown,
                &combining,
                &builds_done,
                &finished
            ])
            .await,
        [
            "STOPPED",
            "STOPPED",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "IN_PROGRESS",
            "FAILED"
        ]
    );

    assert_eq!(count(&summary, &["seen"]), 9, "{summary}");
    assert_eq!(stopped(&summary), (1, 1), "{summary}");
    let skipped: BTreeMap<String, u64> =
        serde_json::from_value(summary["skipped"].clone()).unwrap();
    let skipped_total: u64 = skipped.values().sum();
    assert_eq!(skipped_total, 7, "{summary}");
    assert_eq!(skipped.get("finishing"), Some(&2), "{summary}");
    assert_eq!(skipped.get("protected_branch"), Some(&1), "{summary}");
    assert_eq!(
        skipped.get("current").copied().unwrap_or(0)
            + skipped.get("branch_unknown").copied().unwrap_or(0)
            + skipped.get("not_stale").copied().unwrap_or(0),
        4,
        "feature-b #3, main #2, feature-c #3 and the bare commit are simply left: {summary}"
    );
    assert_eq!(
        summary["dry_run"],
        json!({"stale": 0, "superseded": 0}),
        "{summary}"
    );
    assert_eq!(summary["errors"], json!([]), "{summary}");
    assert_eq!(
        summary["left"],
        json!({"projects": [], "batches": []}),
        "{summary}"
    );
    // 2 builds × 120 minutes (stale) + 2 builds × 20 minutes (superseded).
    let saved = summary["build_minutes_saved"].as_f64().unwrap();
    assert!((280.0..281.0).contains(&saved), "{summary}");

    // The minimum: one listing page per configured project (the other nine are empty, and
    // none of them needs a get), one get for the nine batches, one stop per batch to stop.
    let operations = operations(&calls);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for op in &operations {
        *tally.entry(op.as_str()).or_default() += 1;
    }
    assert_eq!(
        tally,
        BTreeMap::from([
            ("BatchGetBuildBatches", 1),
            ("ListBuildBatchesForProject", configured_projects().len()),
            ("StopBuildBatch", 2),
        ]),
        "{operations:?}"
    );
    let listings: Vec<&Value> = calls
        .iter()
        .filter(|c| c.operation == "ListBuildBatchesForProject")
        .map(|c| &c.params)
        .collect();
    assert!(
        listings
            .iter()
            .all(|p| p["filter"]["status"] == "IN_PROGRESS"),
        "only in-progress batches are listed: {listings:?}"
    );
    let fetched: Vec<String> = calls
        .iter()
        .filter(|c| c.operation == "BatchGetBuildBatches")
        .flat_map(|c| c.params["ids"].as_array().unwrap().clone())
        .map(|id| batch_id_of(id.as_str().unwrap()))
        .collect();
    assert_eq!(fetched.len(), 9, "each in-progress batch fetched once");
    assert!(
        !fetched.contains(&finished),
        "the finished batch is not fetched"
    );
    stack.stop().await;
}
