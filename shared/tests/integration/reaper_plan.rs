//! The reaper's pure policy: which branch / PR a batch builds, and which in-progress batches of a
//! project are stopped as stale or superseded (and why the others are not). Tables of cases,
//! over `BuildBatch` values built directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use autopilot::config::{AllowedProjects, Config, ProjectPattern, ReaperPolicy};
use autopilot::model::{
    BatchGroup, BatchId, BuildBatch, BuildStatus, EnvironmentVariable, EnvironmentVariableType,
};
use autopilot::reaper::{
    BranchKey, ReapAction, SkipReason, StopReason, branch_of, plan_project, superseded_by,
};
use chrono::{DateTime, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

/// An in-progress batch of `project` numbered `number`, started ten minutes ago, one group
/// running, no branch.
fn batch(project: &str, number: Option<i64>) -> BuildBatch {
    let tag = number.unwrap_or(999_999);
    BuildBatch {
        id: BatchId::new(project, &format!("00000000-0000-0000-0000-{tag:012}")).unwrap(),
        arn: None,
        status: BuildStatus::InProgress,
        complete: false,
        source_version: None,
        resolved_source_version: None,
        initiator: Some("alice".into()),
        start_time: Some(now() - chrono::Duration::minutes(10)),
        end_time: None,
        environment_variables: Vec::new(),
        build_ids: Vec::new(),
        batch_number: number,
        current_phase: Some("IN_PROGRESS".into()),
        groups: vec![group(BuildStatus::InProgress)],
    }
}

fn group(status: BuildStatus) -> BatchGroup {
    BatchGroup {
        identifier: Some("g".into()),
        build: None,
        status,
    }
}

fn env(name: &str, value: &str) -> EnvironmentVariable {
    EnvironmentVariable {
        name: name.into(),
        value: value.into(),
        variable_type: EnvironmentVariableType::Plaintext,
    }
}

/// Batch `number` of project `app` building `source_version`.
fn on(source_version: &str, number: i64) -> BuildBatch {
    BuildBatch {
        source_version: Some(source_version.into()),
        ..batch("app", Some(number))
    }
}

fn started_minutes_ago(mut batch: BuildBatch, minutes: i64) -> BuildBatch {
    batch.start_time = Some(now() - chrono::Duration::minutes(minutes));
    batch
}

fn globs(texts: &[&str]) -> Vec<ProjectPattern> {
    texts
        .iter()
        .map(|t| ProjectPattern::new(t).unwrap())
        .collect()
}

fn with_max_age(minutes: u64) -> ReaperPolicy {
    ReaperPolicy {
        max_age: Some(Duration::from_secs(minutes * 60)),
        ..ReaperPolicy::default()
    }
}

fn skip(reason: SkipReason) -> ReapAction {
    ReapAction::Skip { reason }
}

fn stale() -> ReapAction {
    ReapAction::Stop {
        reason: StopReason::Stale,
        superseded_by: None,
    }
}

fn superseded(by: &BuildBatch) -> ReapAction {
    ReapAction::Stop {
        reason: StopReason::Superseded,
        superseded_by: Some(by.id.clone()),
    }
}

/// The actions `plan_project` decides, in the order of `batches`.
fn actions(batches: &[BuildBatch], policy: &ReaperPolicy) -> Vec<ReapAction> {
    let decisions = plan_project(batches, policy, now());
    assert_eq!(decisions.len(), batches.len(), "one decision per batch");
    for (decision, batch) in decisions.iter().zip(batches) {
        assert_eq!(decision.batch, batch.id, "decisions in input order");
    }
    decisions.into_iter().map(|d| d.action).collect()
}

fn branch(name: &str) -> Option<BranchKey> {
    Some(BranchKey::Branch(name.into()))
}

fn pr(number: &str) -> Option<BranchKey> {
    Some(BranchKey::PullRequest(number.into()))
}

#[test]
fn source_version_forms() {
    let sha = "046e8b67481d53bdc86c3f6affdd5d1afae6d369";
    let cases: &[(&str, Option<BranchKey>)] = &[
        ("refs/heads/main", branch("main")),
        ("refs/heads/feature/login", branch("feature/login")),
        (&format!("refs/heads/main^{{{sha}}}"), branch("main")),
        ("pr/42", pr("42")),
        ("refs/pull/42/head", pr("42")),
        ("refs/pull/42/merge", pr("42")),
        (&format!("refs/pull/42/head^{{{sha}}}"), pr("42")),
        ("refs/merge-requests/7/head", pr("7")),
        ("refs/pull-requests/7/from", pr("7")),
        // Bare names: CodeBuild's "branch name" form.
        ("main", branch("main")),
        ("feature/login", branch("feature/login")),
        ("  develop  ", branch("develop")),
        // Unknown: commits, tags, empty, odd refs, non-ref text.
        (sha, None),
        ("046e8b6", None),
        (&format!("{sha}{sha}")[..64], None),
        ("refs/tags/v1.0", None),
        (&format!("refs/tags/v1.0^{{{sha}}}"), None),
        ("refs/notes/commits", None),
        ("refs/heads/", None),
        ("refs/pull/abc/head", None),
        ("refs/pull/42/files", None),
        ("pr/", None),
        ("pr/x", None),
        ("", None),
        ("   ", None),
        ("two words", None),
        ("a..b", None),
        ("HEAD~1", None),
        ("x.lock", None),
    ];
    for (source_version, expected) in cases {
        let batch = BuildBatch {
            source_version: Some((*source_version).to_owned()),
            ..batch("app", Some(1))
        };
        assert_eq!(
            &branch_of(&batch),
            expected,
            "sourceVersion {source_version:?}"
        );
    }
    assert_eq!(branch_of(&batch("app", Some(1))), None, "no sourceVersion");
}

#[test]
fn our_environment_variables_come_before_source_version() {
    let sha = "046e8b67481d53bdc86c3f6affdd5d1afae6d369";
    let with_env = |vars: Vec<EnvironmentVariable>, source: Option<&str>| BuildBatch {
        environment_variables: vars,
        source_version: source.map(str::to_owned),
        ..batch("app", Some(1))
    };
    let secret = EnvironmentVariable {
        variable_type: EnvironmentVariableType::ParameterStore,
        ..env("AUTOPILOT_BRANCH", "/param/name")
    };
    let cases = [
        (vec![env("AUTOPILOT_PR", "42")], Some(sha), pr("42")),
        (
            vec![env("AUTOPILOT_BRANCH", "dev")],
            Some(sha),
            branch("dev"),
        ),
        (
            vec![env("AUTOPILOT_BRANCH", "refs/heads/dev")],
            None,
            branch("dev"),
        ),
        (
            // A PR build also names its head branch; the PR is what supersedes.
            vec![env("AUTOPILOT_BRANCH", "dev"), env("AUTOPILOT_PR", "42")],
            Some("refs/heads/other"),
            pr("42"),
        ),
        (
            vec![env("AUTOPILOT_PR", ""), env("AUTOPILOT_BRANCH", " ")],
            Some("pr/9"),
            pr("9"),
        ),
        (
            vec![env("AUTOPILOT_DELIVERY", "d-1"), env("OTHER", "x")],
            Some("refs/heads/x"),
            branch("x"),
        ),
        // A parameter reference is not the branch's name.
        (vec![secret], Some(sha), None),
    ];
    for (vars, source, expected) in cases {
        let batch = with_env(vars.clone(), source);
        assert_eq!(branch_of(&batch), expected, "{vars:?} {source:?}");
    }
}

#[test]
fn the_older_batches_of_a_branch_are_superseded_by_the_newest() {
    let batches = [on("refs/heads/x", 1), on("x", 3), on("refs/heads/x", 2)];
    assert_eq!(
        actions(&batches, &ReaperPolicy::default()),
        [
            superseded(&batches[1]),
            skip(SkipReason::Current),
            superseded(&batches[1]),
        ]
    );
}

#[test]
fn a_newer_batch_is_never_stopped_in_favour_of_an_older_one() {
    // #6 started long before #5 (a late delivery): the number decides, not the start time.
    let older = started_minutes_ago(on("refs/heads/x", 5), 1);
    let newer = started_minutes_ago(on("refs/heads/x", 6), 300);
    for batches in [
        [older.clone(), newer.clone()],
        [newer.clone(), older.clone()],
    ] {
        let decisions = plan_project(&batches, &ReaperPolicy::default(), now());
        for decision in decisions {
            let expected = if decision.batch == older.id {
                superseded(&newer)
            } else {
                skip(SkipReason::Current)
            };
            assert_eq!(decision.action, expected, "{:?}", decision.batch);
        }
    }
}

#[test]
fn a_protected_branch_is_never_stopped_as_superseded() {
    let default = ReaperPolicy::default();
    let custom = ReaperPolicy {
        protected_branches: globs(&["prod", "hotfix-*"]),
        ..ReaperPolicy::default()
    };
    let cases: &[(&ReaperPolicy, &str, ReapAction)] = &[
        (
            &default,
            "refs/heads/main",
            skip(SkipReason::ProtectedBranch),
        ),
        (&default, "master", skip(SkipReason::ProtectedBranch)),
        (
            &default,
            "refs/heads/release/2.1",
            skip(SkipReason::ProtectedBranch),
        ),
        (
            &custom,
            "refs/heads/hotfix-9",
            skip(SkipReason::ProtectedBranch),
        ),
        (&custom, "prod", skip(SkipReason::ProtectedBranch)),
        // The configured list replaces the default one.
        (
            &custom,
            "refs/heads/main",
            ReapAction::Stop {
                reason: StopReason::Superseded,
                superseded_by: None, // filled below
            },
        ),
        // A pull request is not a branch, whatever its number.
        (
            &default,
            "pr/7",
            ReapAction::Stop {
                reason: StopReason::Superseded,
                superseded_by: None,
            },
        ),
    ];
    for (policy, source, expected) in cases {
        let batches = [on(source, 1), on(source, 2)];
        let expected = match expected {
            ReapAction::Stop { reason, .. } => ReapAction::Stop {
                reason: *reason,
                superseded_by: Some(batches[1].id.clone()),
            },
            skip => skip.clone(),
        };
        assert_eq!(
            actions(&batches, policy),
            [expected, skip(SkipReason::Current)],
            "{source}"
        );
    }
}

#[test]
fn a_protected_branch_can_be_stopped_as_stale() {
    let batches = [
        started_minutes_ago(on("refs/heads/main", 1), 61),
        started_minutes_ago(on("refs/heads/main", 2), 59),
    ];
    assert_eq!(
        actions(&batches, &with_max_age(60)),
        [stale(), skip(SkipReason::Current)]
    );
}

#[test]
fn stale_means_older_than_max_age_and_is_off_until_set() {
    let cases: &[(Option<u64>, Option<i64>, ReapAction)] = &[
        (Some(60), Some(61), stale()),
        (Some(60), Some(60), skip(SkipReason::Current)),
        (Some(60), Some(5), skip(SkipReason::Current)),
        // Started in the future (clock skew): age zero, not stale.
        (Some(60), Some(-30), skip(SkipReason::Current)),
        // Without a start there is no age.
        (Some(60), None, skip(SkipReason::Current)),
        // Off by default, however long it runs.
        (None, Some(60 * 24 * 30), skip(SkipReason::Current)),
    ];
    for (max_age, minutes, expected) in cases {
        let mut only = on("refs/heads/x", 1);
        only.start_time = minutes.map(|m| now() - chrono::Duration::minutes(m));
        let policy = ReaperPolicy {
            max_age: max_age.map(|m| Duration::from_secs(m * 60)),
            ..ReaperPolicy::default()
        };
        assert_eq!(
            actions(&[only], &policy),
            std::slice::from_ref(expected),
            "{max_age:?} {minutes:?}"
        );
    }
}

#[test]
fn stale_wins_over_superseded_and_unknown_branches_can_be_stale() {
    let old = started_minutes_ago(on("refs/heads/x", 1), 120);
    let newer = on("refs/heads/x", 2);
    let unknown = started_minutes_ago(batch("app", Some(3)), 120);
    assert_eq!(
        actions(&[old, newer, unknown], &with_max_age(60)),
        [stale(), skip(SkipReason::Current), stale()]
    );
}

#[test]
fn a_batch_whose_branch_is_unknown_is_never_superseded() {
    let sha = "046e8b67481d53bdc86c3f6affdd5d1afae6d369";
    let batches = [
        on(sha, 1),
        on(sha, 2),
        on("refs/tags/v1", 3),
        on("refs/tags/v1", 4),
        batch("app", Some(5)),
        batch("app", Some(6)),
    ];
    assert_eq!(
        actions(&batches, &ReaperPolicy::default()),
        vec![skip(SkipReason::BranchUnknown); 6]
    );
}

#[test]
fn excluded_initiators_are_never_touched() {
    let policy = ReaperPolicy {
        excluded_initiators: globs(&["codepipeline/*", "release-bot"]),
        ..with_max_age(60)
    };
    let by = |initiator: Option<&str>, number| BuildBatch {
        initiator: initiator.map(str::to_owned),
        ..started_minutes_ago(on("refs/heads/x", number), 600)
    };
    let batches = [
        by(Some("codepipeline/deploy-web"), 1),
        by(Some("release-bot"), 2),
        by(Some("release-bot-2"), 3),
        by(None, 4),
        by(Some("alice"), 5),
    ];
    assert_eq!(
        actions(&batches, &policy),
        [
            skip(SkipReason::ExcludedInitiator),
            skip(SkipReason::ExcludedInitiator),
            stale(),
            stale(),
            stale(),
        ]
    );
    // An excluded batch still counts as the newer one: the branch has moved on.
    let batches = [on("refs/heads/x", 1), by(Some("release-bot"), 2)];
    assert_eq!(
        actions(
            &batches,
            &ReaperPolicy {
                max_age: None,
                ..policy
            }
        ),
        [superseded(&batches[1]), skip(SkipReason::ExcludedInitiator)]
    );
}

#[test]
fn finishing_batches_are_never_touched() {
    let stale_and_superseded = |number| started_minutes_ago(on("refs/heads/x", number), 600);
    let combining = BuildBatch {
        current_phase: Some("COMBINE_ARTIFACTS".into()),
        ..stale_and_superseded(1)
    };
    let all_done = BuildBatch {
        groups: vec![group(BuildStatus::Succeeded), group(BuildStatus::Failed)],
        ..stale_and_superseded(2)
    };
    let one_left = BuildBatch {
        groups: vec![
            group(BuildStatus::Succeeded),
            group(BuildStatus::InProgress),
        ],
        ..stale_and_superseded(3)
    };
    // Still reading its batch spec: no groups yet, not finishing.
    let no_groups = BuildBatch {
        groups: Vec::new(),
        current_phase: Some("DOWNLOAD_BATCHSPEC".into()),
        ..stale_and_superseded(4)
    };
    let newest = on("refs/heads/x", 9);
    let batches = [combining, all_done, one_left, no_groups, newest];
    assert_eq!(
        actions(&batches, &with_max_age(60)),
        [
            skip(SkipReason::Finishing),
            skip(SkipReason::Finishing),
            stale(),
            stale(),
            skip(SkipReason::Current),
        ]
    );
    assert_eq!(
        actions(&batches, &ReaperPolicy::default())[..4],
        [
            skip(SkipReason::Finishing),
            skip(SkipReason::Finishing),
            superseded(&batches[4]),
            superseded(&batches[4]),
        ]
    );
}

#[test]
fn batches_no_longer_in_progress_are_never_touched() {
    let ended = |status: BuildStatus, number| BuildBatch {
        status,
        ..started_minutes_ago(on("refs/heads/x", number), 600)
    };
    let complete = BuildBatch {
        complete: true,
        ..started_minutes_ago(on("refs/heads/x", 5), 600)
    };
    let batches = [
        ended(BuildStatus::Succeeded, 1),
        ended(BuildStatus::Failed, 2),
        ended(BuildStatus::Stopped, 3),
        ended(BuildStatus::Unknown("PAUSED".into()), 4),
        complete,
        on("refs/heads/x", 9),
    ];
    let mut expected = vec![skip(SkipReason::NotInProgress); 5];
    expected.push(skip(SkipReason::Current));
    assert_eq!(actions(&batches, &with_max_age(60)), expected);
}

#[test]
fn a_stopped_newer_batch_supersedes_nothing() {
    let batches = [
        on("refs/heads/x", 1),
        BuildBatch {
            status: BuildStatus::Stopped,
            ..on("refs/heads/x", 2)
        },
        on("refs/heads/y", 3),
        BuildBatch {
            status: BuildStatus::Failed,
            ..on("refs/heads/y", 4)
        },
    ];
    assert_eq!(
        actions(&batches, &ReaperPolicy::default()),
        [
            skip(SkipReason::Current),
            skip(SkipReason::NotInProgress),
            superseded(&batches[3]),
            skip(SkipReason::NotInProgress),
        ]
    );
}

#[test]
fn a_batch_without_a_number_neither_supersedes_nor_is_superseded() {
    let batches = [
        on("refs/heads/x", 1),
        BuildBatch {
            source_version: Some("refs/heads/x".into()),
            ..batch("app", None)
        },
    ];
    assert_eq!(
        actions(&batches, &ReaperPolicy::default()),
        [skip(SkipReason::Current), skip(SkipReason::Unnumbered)]
    );
}

#[test]
fn supersede_off_leaves_everything_but_stale_batches() {
    let policy = ReaperPolicy {
        supersede: false,
        ..with_max_age(60)
    };
    let batches = [
        on("refs/heads/x", 1),
        on("refs/heads/x", 2),
        started_minutes_ago(on("refs/heads/x", 3), 90),
    ];
    assert_eq!(
        actions(&batches, &policy),
        [
            skip(SkipReason::NotStale),
            skip(SkipReason::NotStale),
            stale()
        ]
    );
}

#[test]
fn branches_pull_requests_and_projects_are_independent() {
    let in_project = |project: &str, source: &str, number| BuildBatch {
        source_version: Some(source.into()),
        ..batch(project, Some(number))
    };
    let via_env = BuildBatch {
        environment_variables: vec![env("AUTOPILOT_PR", "42")],
        ..in_project("app", "046e8b67481d53bdc86c3f6affdd5d1afae6d369", 4)
    };
    let batches = [
        in_project("app", "pr/42", 1),
        in_project("app", "refs/heads/42", 2),
        in_project("app", "refs/heads/pr-42", 3),
        via_env,
        // Same PR, higher numbers, another project: no effect on `app`.
        in_project("other", "pr/42", 50),
        in_project("other", "pr/42", 51),
    ];
    assert_eq!(
        actions(&batches, &ReaperPolicy::default()),
        [
            superseded(&batches[3]),
            skip(SkipReason::Current),
            skip(SkipReason::Current),
            skip(SkipReason::Current),
            superseded(&batches[5]),
            skip(SkipReason::Current),
        ]
    );
}

#[test]
fn decisions_carry_branch_age_and_running_builds() {
    let running = BuildBatch {
        groups: vec![
            group(BuildStatus::InProgress),
            group(BuildStatus::Succeeded),
            group(BuildStatus::InProgress),
        ],
        ..started_minutes_ago(on("refs/heads/x", 1), 42)
    };
    let decision = &plan_project(&[running], &ReaperPolicy::default(), now())[0];
    assert_eq!(decision.branch, branch("x"));
    assert_eq!(decision.age, Some(Duration::from_secs(42 * 60)));
    assert_eq!(decision.running_builds, 2);

    let unknown = BuildBatch {
        start_time: None,
        ..batch("app", Some(2))
    };
    let decision = &plan_project(&[unknown], &ReaperPolicy::default(), now())[0];
    assert_eq!((decision.branch.clone(), decision.age), (None, None));
    assert_eq!(decision.running_builds, 1);
}

#[test]
fn dry_run_is_not_the_plans_concern() {
    // dry_run lives on the project entry; the plan says what WOULD be stopped and the sweep
    // decides whether to act, so the two report the same decisions.
    let config = Config::from_toml(
        "[[projects]]\nname = \"app\"\ndry_run = true\n[projects.reaper]\nmax_age_minutes = 60\n",
        &AllowedProjects::all(),
    )
    .unwrap();
    let entry = config.entry_for("app").unwrap();
    assert!(entry.dry_run);
    let batches = [
        started_minutes_ago(on("refs/heads/x", 1), 61),
        on("refs/heads/y", 2),
        on("refs/heads/y", 3),
    ];
    assert_eq!(
        actions(&batches, &entry.reaper),
        [stale(), superseded(&batches[2]), skip(SkipReason::Current)]
    );
}

#[test]
fn superseded_by_is_the_same_rule_for_auto_retry() {
    let failed = |source: &str, number| BuildBatch {
        status: BuildStatus::Failed,
        ..on(source, number)
    };
    let x1 = failed("refs/heads/x", 1);
    let x2 = on("refs/heads/x", 2);
    let x3 = failed("refs/heads/x", 3);
    let x4_stopped = BuildBatch {
        status: BuildStatus::Stopped,
        ..on("refs/heads/x", 4)
    };
    let y5 = on("refs/heads/y", 5);
    let other_project = BuildBatch {
        source_version: Some("refs/heads/x".into()),
        ..batch("other", Some(9))
    };
    let everything = [
        x1.clone(),
        x2.clone(),
        x3.clone(),
        x4_stopped.clone(),
        y5.clone(),
        other_project.clone(),
    ];
    let default = ReaperPolicy::default();
    // The newest newer one, whatever its status but stopped; itself and others ignored.
    assert_eq!(
        superseded_by(&x1, &everything, &default),
        Some(x3.id.clone())
    );
    assert_eq!(
        superseded_by(&x2, &everything, &default),
        Some(x3.id.clone())
    );
    assert_eq!(superseded_by(&x3, &everything, &default), None);
    assert_eq!(superseded_by(&y5, &everything, &default), None);
    assert_eq!(superseded_by(&x1, &[], &default), None);
    assert_eq!(
        superseded_by(&x1, &[x4_stopped, other_project], &default),
        None
    );

    let off = ReaperPolicy {
        supersede: false,
        ..ReaperPolicy::default()
    };
    assert_eq!(superseded_by(&x1, &everything, &off), None);

    let main1 = failed("refs/heads/main", 1);
    let main2 = on("refs/heads/main", 2);
    assert_eq!(superseded_by(&main1, &[main2], &default), None, "protected");

    let sha = "046e8b67481d53bdc86c3f6affdd5d1afae6d369";
    assert_eq!(
        superseded_by(&failed(sha, 1), &[on(sha, 2)], &default),
        None,
        "unknown branch"
    );
    let unnumbered = BuildBatch {
        status: BuildStatus::Failed,
        ..BuildBatch {
            source_version: Some("refs/heads/x".into()),
            ..batch("app", None)
        }
    };
    assert_eq!(superseded_by(&unnumbered, &everything, &default), None);

    // Whatever plan_project would stop as superseded, superseded_by names the same batch.
    for decision in plan_project(&everything, &default, now()) {
        let batch = everything.iter().find(|b| b.id == decision.batch).unwrap();
        if let ReapAction::Stop {
            reason: StopReason::Superseded,
            superseded_by: by,
        } = decision.action
        {
            assert_eq!(superseded_by(batch, &everything, &default), by);
        }
    }
}
