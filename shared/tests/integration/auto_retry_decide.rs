//! `decide_retry` on every sample event: the classifier's answer through the default policy,
//! as a root build (no retries yet) and at the cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use autopilot::config::RetryPolicy;
use autopilot::model::BuildStateChangeEvent;
use autopilot::retry::{RetryContext, RetryDecision, classify, decide_retry};

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codebuild-events")
}

fn sample(name: &str) -> BuildStateChangeEvent {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn decide(name: &str, policy: &RetryPolicy, prior_attempts: u32) -> RetryDecision {
    decide_retry(&RetryContext {
        classification: classify(&sample(name)),
        policy,
        native_auto_retry: None,
        prior_attempts,
    })
}

/// An expected decision: (action, reason).
type Expected = (&'static str, &'static str);

/// (sample, decision for a root, decision once the cap is reached).
const TABLE: [(&str, Expected, Expected); 9] = [
    (
        "build-state-failed-download-source.json",
        ("retry", "network_timeout"),
        ("give_up", "retry_cap_reached"),
    ),
    (
        "build-state-failed-provisioning.json",
        ("retry", "rate_limited"),
        ("give_up", "retry_cap_reached"),
    ),
    (
        "build-state-failed-tests.json",
        ("skip", "command_failed"),
        ("skip", "command_failed"),
    ),
    (
        "build-state-failed-yaml.json",
        ("skip", "buildspec_error"),
        ("skip", "buildspec_error"),
    ),
    (
        "build-state-fault.json",
        ("retry", "service_fault"),
        ("give_up", "retry_cap_reached"),
    ),
    (
        "build-state-in-progress.json",
        ("skip", "in_progress"),
        ("skip", "in_progress"),
    ),
    (
        "build-state-stopped.json",
        ("skip", "stopped"),
        ("skip", "stopped"),
    ),
    (
        "build-state-succeeded.json",
        ("skip", "succeeded"),
        ("skip", "succeeded"),
    ),
    (
        "build-state-timed-out.json",
        ("skip", "timed_out_not_enabled"),
        ("skip", "timed_out_not_enabled"),
    ),
];

#[test]
fn every_sample_event_gets_its_decision_under_the_default_policy() {
    let policy = RetryPolicy::default();
    for (name, root, capped) in TABLE {
        let first = decide(name, &policy, 0);
        assert_eq!((first.action(), first.reason()), root, "{name} as a root");
        // Transient runs to max_retries (2); retry-once to 1.
        let cap = if root.1 == "rate_limited" { 2 } else { 1 };
        let last = decide(name, &policy, cap);
        assert_eq!((last.action(), last.reason()), capped, "{name} at the cap");
        if let RetryDecision::Retry {
            attempt, backoff, ..
        } = first
        {
            assert_eq!((attempt, backoff), (1, Duration::from_secs(30)), "{name}");
        }
    }
    // Every sample is in the table: a new sample must get a decision here.
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let in_table: BTreeSet<String> = TABLE.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    assert_eq!(on_disk, in_table);
}

#[test]
fn a_timed_out_build_is_retried_once_when_the_project_says_so() {
    let policy = RetryPolicy {
        retry_timed_out: true,
        ..RetryPolicy::default()
    };
    let name = "build-state-timed-out.json";
    let first = decide(name, &policy, 0);
    assert_eq!((first.action(), first.reason()), ("retry", "timed_out"));
    let second = decide(name, &policy, 1);
    assert_eq!(second.action(), "give_up");
}

#[test]
fn classify_build_agrees_with_classify_on_every_sample() {
    use autopilot::model::{Build, BuildId, BuildPhase};
    use autopilot::retry::classify_build;
    for (name, _, _) in TABLE {
        let event = sample(name);
        // The build as `BatchGetBuilds` would describe it: same status, same phases.
        let build = Build {
            id: BuildId::new(event.build_id().project(), event.build_id().uuid()).unwrap(),
            arn: None,
            build_number: None,
            status: event.status().clone(),
            current_phase: None,
            build_complete: true,
            source_version: None,
            resolved_source_version: None,
            initiator: None,
            batch_arn: None,
            start_time: None,
            end_time: None,
            logs_link: None,
            phases: event
                .phases()
                .iter()
                .map(|p| BuildPhase {
                    phase_type: p.phase_type.clone(),
                    phase_status: p.phase_status.clone(),
                    start_time: None,
                    end_time: None,
                    duration_seconds: None,
                    contexts: p.contexts(),
                })
                .collect(),
            environment_variables: Vec::new(),
            native_auto_retry: None,
            log_location: None,
        };
        assert_eq!(classify_build(&build), classify(&event), "{name}");
    }
}
