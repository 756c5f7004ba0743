//! The reaper's sweep and targeted supersede over a fake CodeBuild that records every call: the
//! minimum calls, chunking, dry-run, benign and failed stops, the deadline, and which projects
//! are listed at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autopilot::config::{
    AccountSettings, Config, ProjectEntry, ProjectPattern, ReaperPolicy, RetryPolicy,
};
use autopilot::model::{
    BatchGroup, BatchId, Build, BuildBatch, BuildId, BuildStatus, EnvironmentVariable,
    EnvironmentVariableType,
};
use autopilot::ports::{
    BatchLookup, BuildLookup, CodeBuild, CodeBuildError, ListBuildBatchesRequest, Page,
    RetryBuildBatchRequest, RetryBuildRequest, StartBuildBatchRequest,
};
use autopilot::reaper::sweep::{Deadline, NoDeadline, SweepContext};
use autopilot::reaper::{BranchKey, ReapSummary, supersede_older, sweep};
use chrono::{DateTime, Utc};

// ---------------------------------------------------------------------------------------------
// The fake

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    ListProjects,
    ListBatches(String),
    Get(usize),
    Stop(String),
}

/// What the fake's calls may do to the deadline flag.
#[derive(Debug, Clone)]
enum Trip {
    Never,
    /// The deadline comes while this project's batches are being listed.
    OnListing(String),
    /// The deadline comes with the first stop.
    OnFirstStop,
}

struct FakeCodeBuild {
    projects: Vec<String>,
    project_page: usize,
    batch_page: usize,
    batches: HashMap<String, BuildBatch>,
    /// Per project, its batch ids newest first (as CodeBuild lists them).
    listing: HashMap<String, Vec<BatchId>>,
    /// Stops answered with the batch already finished (SUCCEEDED).
    finished_meanwhile: BTreeSet<String>,
    /// Stops that fail.
    stop_errors: HashMap<String, CodeBuildError>,
    /// Stops that never answer.
    hang: BTreeSet<String>,
    /// Per call kind ([`Call::kind`]), how many more of its calls are throttled.
    throttles: Mutex<HashMap<String, usize>>,
    calls: Mutex<Vec<Call>>,
    near: Arc<AtomicBool>,
    trip: Trip,
}

impl FakeCodeBuild {
    fn new() -> Self {
        Self {
            projects: Vec::new(),
            project_page: 100,
            batch_page: 100,
            batches: HashMap::new(),
            listing: HashMap::new(),
            finished_meanwhile: BTreeSet::new(),
            stop_errors: HashMap::new(),
            hang: BTreeSet::new(),
            throttles: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            near: Arc::new(AtomicBool::new(false)),
            trip: Trip::Never,
        }
    }

    fn add_project(&mut self, name: &str, batches: Vec<BuildBatch>) {
        self.projects.push(name.to_owned());
        let mut ids: Vec<_> = batches
            .iter()
            .map(|b| (b.batch_number, b.id.clone()))
            .collect();
        ids.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
        self.listing
            .insert(name.to_owned(), ids.into_iter().map(|(_, id)| id).collect());
        for batch in batches {
            self.batches.insert(batch.id.id(), batch);
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn stops(&self) -> BTreeSet<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Stop(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    fn count(&self, what: impl Fn(&Call) -> bool) -> usize {
        self.calls().iter().filter(|c| what(c)).count()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    /// The next `times` calls of `kind` are throttled (after being recorded).
    fn throttle(&self, kind: &str, times: usize) {
        self.throttles
            .lock()
            .unwrap()
            .insert(kind.to_owned(), times);
    }

    /// Records `call`; throttled when [`Self::throttle`] says so.
    fn answer(&self, call: Call, operation: &'static str) -> Result<(), CodeBuildError> {
        let kind = call.kind();
        self.record(call);
        let mut throttles = self.throttles.lock().unwrap();
        match throttles.get_mut(&kind) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(CodeBuildError::Throttled {
                    operation,
                    message: "Rate exceeded".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Call {
    /// What [`FakeCodeBuild::throttle`] names: `ListProjects`, `ListBatches:<project>`, `Get`,
    /// `Stop`.
    fn kind(&self) -> String {
        match self {
            Self::ListProjects => "ListProjects".into(),
            Self::ListBatches(project) => format!("ListBatches:{project}"),
            Self::Get(_) => "Get".into(),
            Self::Stop(_) => "Stop".into(),
        }
    }
}

fn page<T: Clone>(items: &[T], token: Option<&str>, size: usize) -> Page<T> {
    let start: usize = token.map_or(0, |t| t.parse().unwrap());
    let end = (start + size).min(items.len());
    Page {
        items: items[start..end].to_vec(),
        next_token: (end < items.len()).then(|| end.to_string()),
    }
}

impl CodeBuild for FakeCodeBuild {
    async fn batch_get_builds(&self, _: &[BuildId]) -> Result<BuildLookup, CodeBuildError> {
        unreachable!("the reaper never reads builds")
    }
    async fn retry_build(&self, _: &RetryBuildRequest) -> Result<Build, CodeBuildError> {
        unreachable!("the reaper never retries")
    }
    async fn retry_build_batch(
        &self,
        _: &RetryBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        unreachable!("the reaper never retries")
    }
    async fn start_build_batch(
        &self,
        _: &StartBuildBatchRequest,
    ) -> Result<BuildBatch, CodeBuildError> {
        unreachable!("the reaper never starts")
    }

    async fn stop_build_batch(&self, id: &BatchId) -> Result<BuildBatch, CodeBuildError> {
        self.answer(Call::Stop(id.id()), "StopBuildBatch")?;
        if matches!(self.trip, Trip::OnFirstStop) {
            self.near.store(true, Ordering::SeqCst);
        }
        if self.hang.contains(&id.id()) {
            std::future::pending::<()>().await;
        }
        if let Some(err) = self.stop_errors.get(&id.id()) {
            return Err(err.clone());
        }
        let mut batch =
            self.batches
                .get(&id.id())
                .cloned()
                .ok_or_else(|| CodeBuildError::NotFound {
                    operation: "StopBuildBatch",
                    message: id.id(),
                })?;
        batch.complete = true;
        batch.status = if self.finished_meanwhile.contains(&id.id()) {
            BuildStatus::Succeeded
        } else {
            BuildStatus::Stopped
        };
        Ok(batch)
    }

    async fn batch_get_build_batches(
        &self,
        ids: &[BatchId],
    ) -> Result<BatchLookup, CodeBuildError> {
        assert!(ids.len() <= autopilot::ports::BATCH_GET_LIMIT);
        self.answer(Call::Get(ids.len()), "BatchGetBuildBatches")?;
        let mut lookup = BatchLookup::default();
        for id in ids {
            match self.batches.get(&id.id()) {
                Some(batch) => lookup.batches.push(batch.clone()),
                None => lookup.not_found.push(id.id()),
            }
        }
        Ok(lookup)
    }

    async fn list_build_batches_for_project(
        &self,
        request: &ListBuildBatchesRequest,
    ) -> Result<Page<BatchId>, CodeBuildError> {
        assert_eq!(request.status, Some(BuildStatus::InProgress));
        // Tripped even when the listing is throttled: the deadline can come during any call.
        if matches!(&self.trip, Trip::OnListing(p) if *p == request.project) {
            self.near.store(true, Ordering::SeqCst);
        }
        self.answer(
            Call::ListBatches(request.project.clone()),
            "ListBuildBatchesForProject",
        )?;
        let ids = self
            .listing
            .get(&request.project)
            .ok_or_else(|| CodeBuildError::NotFound {
                operation: "ListBuildBatchesForProject",
                message: request.project.clone(),
            })?;
        Ok(page(ids, request.next_token.as_deref(), self.batch_page))
    }

    async fn list_projects(
        &self,
        next_token: Option<&str>,
    ) -> Result<Page<String>, CodeBuildError> {
        self.answer(Call::ListProjects, "ListProjects")?;
        Ok(page(&self.projects, next_token, self.project_page))
    }
}

/// The deadline the fake trips.
struct Flag(Arc<AtomicBool>);

impl Deadline for Flag {
    fn is_near(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A deadline that never stops new work but abandons calls in flight after `0`.
struct Cutoff(Duration);

impl Deadline for Cutoff {
    fn is_near(&self) -> bool {
        false
    }
    fn cutoff(&self) -> Option<Duration> {
        Some(self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Batches and configuration

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// An in-progress batch `number` of `project` on `branch`, started `minutes` ago, one build
/// running.
fn batch(project: &str, number: i64, branch: &str, minutes: i64) -> BuildBatch {
    BuildBatch {
        id: BatchId::parse(&format!("{project}:00000000-0000-4000-8000-{number:012}")).unwrap(),
        arn: None,
        status: BuildStatus::InProgress,
        complete: false,
        source_version: None,
        resolved_source_version: None,
        initiator: Some("webhook".into()),
        start_time: Some(now() - chrono::Duration::minutes(minutes)),
        end_time: None,
        environment_variables: vec![EnvironmentVariable {
            name: "AUTOPILOT_BRANCH".into(),
            value: branch.into(),
            variable_type: EnvironmentVariableType::Plaintext,
        }],
        build_ids: Vec::new(),
        batch_number: Some(number),
        current_phase: Some("IN_PROGRESS".into()),
        groups: vec![BatchGroup {
            identifier: Some("build1".into()),
            build: None,
            status: BuildStatus::InProgress,
        }],
    }
}

fn entry(pattern: &str, dry_run: bool) -> ProjectEntry {
    ProjectEntry {
        pattern: ProjectPattern::new(pattern).unwrap(),
        dry_run,
        retry: RetryPolicy::default(),
        reaper: ReaperPolicy {
            max_age: Some(Duration::from_secs(3600)),
            ..ReaperPolicy::default()
        },
        start: autopilot::config::StartPolicy::default(),
    }
}

fn config(entries: Vec<ProjectEntry>) -> Config {
    Config {
        projects: entries,
        account: AccountSettings::default(),
        ..Config::default()
    }
}

fn context(config: &Config, dry_run: bool) -> SweepContext<'_> {
    SweepContext {
        config,
        dry_run,
        concurrency: 8,
        now: now(),
    }
}

/// 250 in-progress batches of `web`: numbers 1..=50 are superseded by 201..=250 (same branch),
/// 51..=60 are stale (two hours old, max age one hour), the rest current.
fn web_250() -> (FakeCodeBuild, BTreeSet<String>) {
    let mut fake = FakeCodeBuild::new();
    let batches: Vec<_> = (1..=250)
        .map(|n| {
            let minutes = if (51..=60).contains(&n) { 120 } else { 10 };
            batch("web", n, &format!("feature-{}", n % 200), minutes)
        })
        .collect();
    let expected_stops = batches
        .iter()
        .filter(|b| b.batch_number.is_some_and(|n| n <= 60))
        .map(|b| b.id.id())
        .collect();
    fake.add_project("web", batches);
    (fake, expected_stops)
}

async fn run(fake: &FakeCodeBuild, config: &Config, dry_run: bool) -> ReapSummary {
    sweep(fake, &context(config, dry_run), &NoDeadline).await
}

// ---------------------------------------------------------------------------------------------
// The sweep

#[tokio::test]
async fn minimum_calls_for_250_batches_over_three_pages() {
    let (fake, expected_stops) = web_250();
    let config = config(vec![entry("web", false)]);
    let summary = run(&fake, &config, false).await;

    let lists = fake.count(|c| matches!(c, Call::ListBatches(_)));
    let gets: Vec<usize> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Get(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(lists, 3, "one call per listing page");
    assert_eq!(gets, [100, 100, 50], "⌈250/100⌉ gets, in chunks of 100");
    assert_eq!(fake.stops(), expected_stops, "one stop per batch to stop");
    assert_eq!(
        fake.calls().len(),
        3 + 3 + 60,
        "nothing else: {:?}",
        fake.calls()
    );
    assert_eq!(fake.count(|c| *c == Call::ListProjects), 0);

    assert_eq!(summary.projects, 1);
    assert_eq!(summary.seen, 250);
    assert_eq!(
        (summary.stopped.stale, summary.stopped.superseded),
        (10, 50)
    );
    assert_eq!(
        summary.skipped,
        BTreeMap::from([("current".to_owned(), 190)])
    );
    assert!(summary.errors.is_empty() && summary.left.is_empty());
    // Stale: 10 × 120 min × 1 build; superseded: 50 × 10 min × 1 build.
    assert_eq!(summary.build_minutes_saved, 1200.0 + 500.0);
}

#[tokio::test]
async fn dry_run_stops_nothing_whether_global_or_per_project() {
    for (global, per_project) in [(true, false), (false, true)] {
        let (fake, _) = web_250();
        let config = config(vec![entry("web", per_project)]);
        let summary = run(&fake, &config, global).await;
        assert!(fake.stops().is_empty(), "{global}/{per_project}");
        assert_eq!(
            (summary.dry_run.stale, summary.dry_run.superseded),
            (10, 50)
        );
        assert_eq!(summary.stopped.total(), 0);
        assert_eq!(summary.build_minutes_saved, 0.0);
    }
}

#[tokio::test]
async fn a_batch_finished_meanwhile_is_benign() {
    let (mut fake, expected) = web_250();
    let mut ids = expected.iter();
    let finished = ids.next().unwrap().clone();
    let invalid = ids.next().unwrap().clone();
    fake.finished_meanwhile.insert(finished);
    fake.stop_errors.insert(
        invalid,
        CodeBuildError::InvalidInput {
            operation: "StopBuildBatch",
            message: "Build batch is not in progress".into(),
        },
    );
    let summary = run(&fake, &config(vec![entry("web", false)]), false).await;
    assert_eq!(summary.already_finished, 2);
    assert_eq!(summary.stopped.total(), 58);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
}

#[tokio::test]
async fn a_throttled_stop_is_reported_and_the_rest_go_on() {
    let (mut fake, expected) = web_250();
    let throttled = expected.iter().next().unwrap().clone();
    fake.stop_errors.insert(
        throttled.clone(),
        CodeBuildError::Throttled {
            operation: "StopBuildBatch",
            message: "Rate exceeded".into(),
        },
    );
    let summary = run(&fake, &config(vec![entry("web", false)]), false).await;
    assert_eq!(fake.stops(), expected, "every stop was tried");
    assert_eq!(summary.stopped.total(), 59);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(
        summary.errors[0].batch_id.as_deref(),
        Some(throttled.as_str())
    );
    assert!(summary.errors[0].retryable);
    let tries = fake.count(|c| matches!(c, Call::Stop(id) if *id == throttled));
    assert_eq!(
        tries, 2,
        "a retryably failed stop gets one more round, not more"
    );
}

#[tokio::test]
async fn a_stop_throttled_once_is_made_again_in_the_same_sweep() {
    let (fake, expected) = web_250();
    fake.throttle("Stop", 1);
    let summary = run(&fake, &config(vec![entry("web", false)]), false).await;
    assert_eq!(fake.stops(), expected);
    assert_eq!(
        summary.stopped.total(),
        60,
        "the throttled stop was made after all"
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(fake.count(|c| matches!(c, Call::Stop(_))), 61);
}

#[tokio::test]
async fn a_stop_that_failed_for_good_is_not_made_again() {
    let (mut fake, expected) = web_250();
    let denied = expected.iter().next().unwrap().clone();
    fake.stop_errors.insert(
        denied.clone(),
        CodeBuildError::Unexpected {
            operation: "StopBuildBatch",
            code: Some("AccessDeniedException".into()),
            message: "not allowed".into(),
        },
    );
    let summary = run(&fake, &config(vec![entry("web", false)]), false).await;
    assert_eq!(summary.errors.len(), 1);
    assert!(!summary.errors[0].retryable);
    let tries = fake.count(|c| matches!(c, Call::Stop(id) if *id == denied));
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn the_deadline_leaves_projects_and_reports_them() {
    let mut fake = FakeCodeBuild::new();
    for project in ["alpha", "beta", "gamma"] {
        fake.add_project(project, vec![batch(project, 1, "x", 120)]);
    }
    fake.trip = Trip::OnListing("beta".into());
    let config = config(vec![
        entry("alpha", false),
        entry("beta", false),
        entry("gamma", false),
    ]);
    let deadline = Flag(Arc::clone(&fake.near));
    let ctx = SweepContext {
        concurrency: 1,
        ..context(&config, false)
    };
    let summary = sweep(&fake, &ctx, &deadline).await;

    assert_eq!(
        fake.calls(),
        [
            Call::ListBatches("alpha".into()),
            Call::Get(1),
            Call::Stop(batch("alpha", 1, "x", 0).id.id()),
            Call::ListBatches("beta".into()),
        ]
    );
    assert_eq!(summary.left.projects, ["beta", "gamma"]);
    assert_eq!(summary.stopped.stale, 1);
    assert_eq!(summary.projects, 1);
}

#[tokio::test]
async fn the_deadline_leaves_stops_and_reports_them() {
    let (mut fake, expected) = web_250();
    fake.trip = Trip::OnFirstStop;
    let config = config(vec![entry("web", false)]);
    let deadline = Flag(Arc::clone(&fake.near));
    let ctx = SweepContext {
        concurrency: 1,
        ..context(&config, false)
    };
    let summary = sweep(&fake, &ctx, &deadline).await;
    assert_eq!(fake.stops().len(), 1);
    assert_eq!(summary.stopped.total(), 1);
    assert_eq!(summary.left.batches.len(), 59);
    let mut accounted: BTreeSet<String> = summary.left.batches.iter().cloned().collect();
    accounted.extend(fake.stops());
    assert_eq!(
        accounted, expected,
        "every batch to stop is stopped or reported left"
    );
}

#[tokio::test]
async fn a_call_in_flight_at_the_cutoff_is_abandoned_and_reported() {
    let (mut fake, expected) = web_250();
    let stuck = expected.iter().next().unwrap().clone();
    fake.hang.insert(stuck.clone());
    let config = config(vec![entry("web", false)]);
    let deadline = Cutoff(Duration::from_millis(50));
    // Without the cutoff the sweep would wait for the stuck stop forever: fail, don't hang.
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        sweep(&fake, &context(&config, false), &deadline),
    )
    .await
    .expect("the cutoff ends the sweep");
    assert_eq!(summary.stopped.total(), 59);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(summary.errors[0].batch_id.as_deref(), Some(stuck.as_str()));
    assert!(
        summary.errors[0].message.contains("deadline"),
        "{:?}",
        summary.errors
    );
}

#[tokio::test]
async fn glob_entries_list_projects_and_exact_ones_do_not() {
    let mut fake = FakeCodeBuild::new();
    for project in ["api", "web-1", "web-2", "other"] {
        fake.add_project(project, vec![batch(project, 1, "x", 120)]);
    }
    fake.project_page = 2;

    let exact_only = config(vec![entry("api", false)]);
    run(&fake, &exact_only, false).await;
    assert_eq!(fake.count(|c| *c == Call::ListProjects), 0);
    assert_eq!(fake.count(|c| matches!(c, Call::ListBatches(_))), 1);

    fake.calls.lock().unwrap().clear();
    let with_glob = config(vec![entry("api", false), entry("web-*", false)]);
    let summary = run(&fake, &with_glob, false).await;
    assert_eq!(fake.count(|c| *c == Call::ListProjects), 2, "all pages");
    let listed: BTreeSet<_> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::ListBatches(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["api".into(), "web-1".into(), "web-2".into()]),
        "each configured project once, the unconfigured never"
    );
    assert_eq!(summary.projects, 3);
    assert_eq!(summary.stopped.stale, 3);
}

#[tokio::test]
async fn unconfigured_projects_are_never_listed_or_touched() {
    let mut fake = FakeCodeBuild::new();
    fake.add_project("api", vec![batch("api", 1, "x", 10)]);
    fake.add_project(
        "other",
        vec![batch("other", 1, "x", 600), batch("other", 2, "x", 600)],
    );
    let summary = run(&fake, &config(vec![entry("a*", false)]), false).await;
    assert!(!fake.calls().contains(&Call::ListBatches("other".into())));
    assert!(fake.stops().is_empty());
    assert_eq!(summary.seen, 1);
}

#[tokio::test]
async fn a_project_that_can_stop_nothing_is_not_listed() {
    let mut fake = FakeCodeBuild::new();
    fake.add_project("api", vec![batch("api", 1, "x", 600)]);
    let mut off = entry("api", false);
    off.reaper.max_age = None;
    off.reaper.supersede = false;
    run(&fake, &config(vec![off]), false).await;
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

// ---------------------------------------------------------------------------------------------
// The targeted supersede

#[tokio::test]
async fn supersede_older_stops_only_that_branchs_older_batches() {
    let mut fake = FakeCodeBuild::new();
    let feature_old = [
        batch("web", 1, "feature", 10),
        batch("web", 2, "feature", 10),
    ];
    let other_old = batch("web", 3, "other", 10);
    let other_new = batch("web", 4, "other", 10);
    let stale = batch("web", 5, "stale-one", 600);
    let newer = batch("web", 6, "feature", 0);
    let mut listed = feature_old.to_vec();
    listed.extend([other_old, other_new, stale]);
    fake.add_project("web", listed);
    // Started a moment ago: fetched, but not in the listing yet.
    fake.batches.insert(newer.id.id(), newer.clone());

    let branch = BranchKey::Branch("feature".into());
    let summary = supersede_older(
        &fake,
        &entry("web", false),
        "web",
        &branch,
        &newer.id,
        false,
        now(),
    )
    .await;

    let expected: BTreeSet<_> = feature_old.iter().map(|b| b.id.id()).collect();
    assert_eq!(fake.stops(), expected);
    assert_eq!(summary.stopped.superseded, 2);
    assert_eq!(summary.stopped.stale, 0, "stale batches are the sweep's");
    assert_eq!(fake.count(|c| matches!(c, Call::Get(_))), 1);
}

#[tokio::test]
async fn supersede_older_never_stops_the_newer_batch_and_respects_dry_run() {
    let mut fake = FakeCodeBuild::new();
    let older = batch("web", 1, "feature", 10);
    // `newer` was passed, yet a batch numbered higher exists: `newer` itself is superseded in
    // the plan, but the targeted call never stops the batch it was made for.
    let given = batch("web", 2, "feature", 5);
    let newest = batch("web", 3, "feature", 1);
    fake.add_project("web", vec![older.clone(), given.clone(), newest]);
    let branch = BranchKey::Branch("feature".into());

    let summary = supersede_older(
        &fake,
        &entry("web", true),
        "web",
        &branch,
        &given.id,
        false,
        now(),
    )
    .await;
    assert!(fake.stops().is_empty());
    assert_eq!(summary.dry_run.superseded, 1);

    let summary = supersede_older(
        &fake,
        &entry("web", false),
        "web",
        &branch,
        &given.id,
        false,
        now(),
    )
    .await;
    assert_eq!(fake.stops(), BTreeSet::from([older.id.id()]));
    assert_eq!(summary.stopped.superseded, 1);
}

// ---------------------------------------------------------------------------------------------
// Throttling within one run

/// `api` (one stale batch) and `web` (250, 60 to stop), each by its exact name.
fn api_and_web() -> (FakeCodeBuild, BTreeSet<String>, Config) {
    let (mut fake, mut expected) = web_250();
    let api = batch("api", 1, "x", 120);
    expected.insert(api.id.id());
    fake.add_project("api", vec![api]);
    let config = config(vec![entry("api", false), entry("web", false)]);
    (fake, expected, config)
}

fn listings_of(fake: &FakeCodeBuild, project: &str) -> usize {
    fake.calls()
        .iter()
        .filter(|c| **c == Call::ListBatches(project.into()))
        .count()
}

#[tokio::test]
async fn a_project_whose_listing_was_throttled_is_read_again_after_the_others() {
    let (fake, expected, config) = api_and_web();
    fake.throttle("ListBatches:web", 1);
    let summary = run(&fake, &config, false).await;

    assert_eq!(fake.stops(), expected, "both projects' stops made");
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.projects, 2);
    assert_eq!(summary.stopped.total(), 61);
    // web's first page once throttled, then its three pages; api's once.
    assert_eq!(listings_of(&fake, "web"), 4);
    assert_eq!(listings_of(&fake, "api"), 1);
    // Read again only once api is done (its stop made), not straight away.
    let calls = fake.calls();
    let api_stop = Call::Stop(batch("api", 1, "x", 0).id.id());
    let api_stopped_at = calls.iter().position(|c| *c == api_stop).unwrap();
    let web_again_at = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::ListBatches("web".into()))
        .nth(1)
        .unwrap()
        .0;
    assert!(api_stopped_at < web_again_at, "{calls:?}");
}

#[tokio::test]
async fn a_project_whose_batch_get_was_throttled_is_read_again() {
    let (fake, expected) = web_250();
    fake.throttle("Get", 1);
    let summary = run(&fake, &config(vec![entry("web", false)]), false).await;

    assert_eq!(fake.stops(), expected);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.seen, 250, "each batch decided once");
    // Three pages, the throttled get, then three pages and three gets again.
    assert_eq!(listings_of(&fake, "web"), 6);
    assert_eq!(fake.count(|c| matches!(c, Call::Get(_))), 4);
}

#[tokio::test]
async fn a_project_throttled_twice_is_reported_and_the_others_swept() {
    let (fake, _, config) = api_and_web();
    fake.throttle("ListBatches:web", 2);
    let summary = run(&fake, &config, false).await;

    assert_eq!(listings_of(&fake, "web"), 2, "read again once, not more");
    assert_eq!(
        fake.stops(),
        BTreeSet::from([batch("api", 1, "x", 0).id.id()])
    );
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    assert_eq!(summary.errors[0].project, "web");
    assert!(summary.errors[0].retryable);
    assert_eq!(summary.projects, 1);
}

#[tokio::test]
async fn a_project_that_failed_for_good_is_not_read_again() {
    let (fake, _, _) = api_and_web();
    // Configured, but CodeBuild has no such project: NotFound, which retrying cannot help.
    let config = config(vec![entry("api", false), entry("gone", false)]);
    let summary = run(&fake, &config, false).await;

    assert_eq!(listings_of(&fake, "gone"), 1);
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    assert!(!summary.errors[0].retryable);
    assert_eq!(summary.stopped.stale, 1, "api swept");
}

#[tokio::test]
async fn the_deadline_leaves_a_project_to_read_again() {
    let (mut fake, _, config) = api_and_web();
    fake.throttle("ListBatches:web", 1);
    fake.trip = Trip::OnListing("web".into());
    let deadline = Flag(Arc::clone(&fake.near));
    let ctx = SweepContext {
        concurrency: 1,
        ..context(&config, false)
    };
    let summary = sweep(&fake, &ctx, &deadline).await;

    assert_eq!(
        listings_of(&fake, "web"),
        1,
        "not read again past the deadline"
    );
    assert_eq!(summary.left.projects, ["web"]);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
}

#[tokio::test]
async fn a_throttled_list_projects_is_asked_again() {
    let mut fake = FakeCodeBuild::new();
    for project in ["web-1", "web-2", "web-3"] {
        fake.add_project(project, vec![batch(project, 1, "x", 120)]);
    }
    fake.project_page = 2;
    // The first page twice: its third try, then the second page, succeed.
    fake.throttle("ListProjects", 2);
    let config = config(vec![entry("web-*", false)]);
    let summary = run(&fake, &config, false).await;

    assert_eq!(
        fake.count(|c| *c == Call::ListProjects),
        4,
        "two throttled, two pages"
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.stopped.stale, 3);
}

#[tokio::test]
async fn a_list_projects_throttled_three_times_gives_up_and_sweeps_the_exact_names() {
    let mut fake = FakeCodeBuild::new();
    for project in ["api", "web-1"] {
        fake.add_project(project, vec![batch(project, 1, "x", 120)]);
    }
    fake.throttle("ListProjects", 3);
    let config = config(vec![entry("api", false), entry("web-*", false)]);
    let summary = run(&fake, &config, false).await;

    assert_eq!(fake.count(|c| *c == Call::ListProjects), 3);
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    assert_eq!(summary.errors[0].project, "*");
    assert!(summary.errors[0].retryable);
    assert_eq!(
        fake.stops(),
        BTreeSet::from([batch("api", 1, "x", 0).id.id()])
    );
}
