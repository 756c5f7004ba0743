//! The retry classifier on every sample event and on every catalogued published message
//! (`fixtures/phase-contexts.md`, a copy of the team's catalogue).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use autopilot::model::{BuildStateChangeEvent, BuildStatus, PhaseStatus, PhaseType};
use autopilot::retry::{Classification, FailureClass, Reason, classify, classify_message};

use FailureClass::{NotAFailure, Permanent, RetryOnce, TimedOut, Transient, Unclassified};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sample(name: &str) -> BuildStateChangeEvent {
    let path = fixtures().join("codebuild-events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn expect(class: FailureClass, reason: Reason) -> Classification {
    Classification { class, reason }
}

#[test]
fn every_sample_event_gets_its_class_and_reason() {
    let table = [
        (
            "build-state-failed-download-source.json",
            RetryOnce,
            Reason::NetworkTimeout,
        ),
        (
            "build-state-failed-provisioning.json",
            Transient,
            Reason::RateLimited,
        ),
        (
            "build-state-failed-tests.json",
            Permanent,
            Reason::CommandFailed,
        ),
        (
            "build-state-failed-yaml.json",
            Permanent,
            Reason::BuildspecError,
        ),
        ("build-state-fault.json", RetryOnce, Reason::ServiceFault),
        (
            "build-state-in-progress.json",
            NotAFailure,
            Reason::InProgress,
        ),
        ("build-state-stopped.json", NotAFailure, Reason::Stopped),
        ("build-state-succeeded.json", NotAFailure, Reason::Succeeded),
        ("build-state-timed-out.json", TimedOut, Reason::TimedOut),
    ];
    // Every sample is in the table: a new sample must get a decision here.
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures().join("codebuild-events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let named: BTreeSet<String> = table.iter().map(|(n, ..)| (*n).to_owned()).collect();
    assert_eq!(on_disk, named);

    for (name, class, reason) in table {
        assert_eq!(classify(&sample(name)), expect(class, reason), "{name}");
    }
}

#[test]
fn names_are_stable_snake_case() {
    assert_eq!(Reason::BuildQueueFull.as_str(), "build_queue_full");
    assert_eq!(Reason::Unclassified.to_string(), "unclassified");
    assert_eq!(FailureClass::RetryOnce.as_str(), "retry_once");
    assert_eq!(
        serde_json::to_value(expect(TimedOut, Reason::TimedOut)).unwrap(),
        serde_json::json!({"class": "timed_out", "reason": "timed_out"})
    );
}

// ---- the catalogue ----

/// One row of the catalogue table.
#[derive(Debug)]
struct Row {
    number: u32,
    phase: String,
    status_code: Option<String>,
    message: String,
    build_status: String,
    class: String,
}

/// Reads `| # | Phase | statusCode | Message | Build status | Class | ...` rows.
fn catalogue() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("phase-contexts.md")).unwrap();
    let rows: Vec<Row> = text
        .lines()
        .filter(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // "", "#", phase, code, message, status, class, notes, source, ""
            let number = cells.get(1)?.parse().ok()?;
            Some(Row {
                number,
                phase: cells[2].to_owned(),
                status_code: status_code(cells[3]),
                message: message(cells[4]),
                build_status: cells[5].replace("\\*", "").trim().to_owned(),
                class: cells[6].to_owned(),
            })
        })
        .collect();
    assert!(
        rows.len() > 40,
        "catalogue table not found: {} rows",
        rows.len()
    );
    rows
}

/// `COMMAND_EXECUTION_ERROR (inferred)` → the code; `(none shown)`, `unverified ...` → none.
fn status_code(cell: &str) -> Option<String> {
    let first = cell.split_whitespace().next()?;
    first
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'_')
        .then(|| first.to_owned())
}

/// The first back-quoted part, placeholders filled: `<N>` becomes a number (the queue rows need
/// one), any other `<...>` a neutral word.
fn message(cell: &str) -> String {
    let raw = match cell.split('`').nth(1) {
        Some(quoted) => quoted,
        None => cell,
    };
    let mut out = String::new();
    let mut rest = raw;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = &rest[open + 1..open + close];
        out.push_str(if inner == "N" { "7" } else { "placeholder" });
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A realistic event for a row: the failed-tests sample with its failing phase replaced by the
/// row's phase (when it names one), context `"CODE: message"` and the row's build status.
fn event_for(row: &Row) -> BuildStateChangeEvent {
    let mut event = sample("build-state-failed-tests.json");
    let status = BuildStatus::from(row.build_status.as_str());
    assert!(
        matches!(status, BuildStatus::Failed | BuildStatus::TimedOut),
        "row {}: unexpected build status {:?}",
        row.number,
        row.build_status
    );
    event.detail.build_status = status.clone();
    let phases = &mut event.detail.additional_information.phases;
    let failing = phases
        .iter_mut()
        .find(|p| p.phase_status == Some(PhaseStatus::Failed))
        .unwrap();
    let named = row.phase.split_whitespace().next().map(PhaseType::from);
    if let Some(
        phase_type @ (PhaseType::Queued
        | PhaseType::Provisioning
        | PhaseType::DownloadSource
        | PhaseType::PreBuild
        | PhaseType::Build
        | PhaseType::PostBuild
        | PhaseType::UploadArtifacts),
    ) = named
    {
        failing.phase_type = phase_type;
    }
    failing.phase_status = Some(status);
    failing.phase_context = Some(vec![match &row.status_code {
        Some(code) => format!("{code}: {}", row.message),
        None => row.message.clone(),
    }]);
    event
}

/// Rows that are not build events: the message of an API error.
fn is_api_error(row: &Row) -> bool {
    row.build_status.starts_with('(')
}

/// The decision for every catalogued row. T rows must be transient or retry-once, P rows
/// permanent (exceptions in [`P_ALLOWED_UNCLASSIFIED`]), A rows are decided here, one by one.
fn expected() -> BTreeMap<u32, Classification> {
    use Reason as R;
    [
        // A: permanent unless the role was created seconds ago (IAM propagation); the message
        // cannot tell, and a permanent marker (`not authorized`) wins.
        (1, expect(Permanent, R::AccessDenied)),
        // A: usually a too-small CIDR; one retry covers the many-concurrent-builds case.
        (2, expect(RetryOnce, R::InsufficientSubnet)),
        (4, expect(Permanent, R::AccessDenied)),
        (5, expect(Transient, R::RateLimited)),
        (7, expect(Permanent, R::AccessDenied)),
        (9, expect(Permanent, R::InvalidConfiguration)),
        (10, expect(Unclassified, R::Unclassified)),
        // A: OOM is usually deterministic, a host death is not: retry once at most.
        (11, expect(RetryOnce, R::ContainerDied)),
        (13, expect(Permanent, R::BuildspecError)),
        (14, expect(Permanent, R::BuildspecError)),
        (16, expect(Permanent, R::BuildspecError)),
        (17, expect(Permanent, R::BuildspecError)),
        (18, expect(Permanent, R::BuildspecError)),
        (19, expect(Permanent, R::BuildspecError)),
        (20, expect(Permanent, R::BuildspecError)),
        (21, expect(Permanent, R::AccessDenied)),
        (23, expect(Permanent, R::SourceNotFound)),
        (24, expect(Permanent, R::MissingCredentials)),
        (25, expect(Permanent, R::AccessDenied)),
        // A: usually a VPC without NAT/endpoint; a blip gets its one retry.
        (27, expect(RetryOnce, R::NetworkTimeout)),
        (28, expect(RetryOnce, R::NetworkTimeout)),
        // A: "try again later" was permanent in the published case: one retry only.
        (30, expect(RetryOnce, R::TryAgainLater)),
        (32, expect(Permanent, R::ParameterNotFound)),
        (33, expect(Permanent, R::CertificateError)),
        (34, expect(Permanent, R::InvalidConfiguration)),
        (35, expect(Permanent, R::AccessDenied)),
        (36, expect(Permanent, R::AccessDenied)),
        (38, expect(Permanent, R::CommandFailed)),
        // A: only the log tail tells a registry hiccup from a missing permission; without it
        // (a later, switched-on feature) a failed command is permanent.
        (40, expect(Permanent, R::CommandFailed)),
        (41, expect(Permanent, R::CommandFailed)),
        (42, expect(Permanent, R::CommandFailed)),
        (43, expect(Permanent, R::MissingCredentials)),
        (44, expect(Permanent, R::InvalidConfiguration)),
        // A: the timeout has its own class; the per-project switch decides.
        (45, expect(TimedOut, R::TimedOut)),
        (48, expect(Permanent, R::InvalidConfiguration)),
        // A: proxy or endpoint misconfiguration, or a blip: one retry.
        (50, expect(RetryOnce, R::NetworkTimeout)),
        (51, expect(Permanent, R::AccessDenied)),
        (52, expect(Permanent, R::AccessDenied)),
        (53, expect(Permanent, R::CertificateError)),
        (55, expect(Permanent, R::BuildQueueQuotaZero)),
        // A (mostly T): a full queue clears up; a quota of 1 recurs but the cap bounds it.
        (56, expect(Transient, R::BuildQueueFull)),
        (57, expect(Transient, R::RateLimited)),
        (58, expect(Transient, R::BuildFailedToStart)),
    ]
    .into_iter()
    .collect()
}

/// P rows allowed to stay unclassified (no retry either way), each with why.
const P_ALLOWED_UNCLASSIFIED: &[(u32, &str)] = &[(
    10,
    "no message is published, only BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE, a code that covers \
     transient (toomanyrequests) and permanent causes: the code alone must not decide",
)];

fn classify_row(row: &Row) -> Classification {
    if is_api_error(row) {
        classify_message(&row.message)
    } else {
        classify(&event_for(row))
    }
}

#[test]
fn every_catalogued_row_has_its_expected_decision() {
    let expected = expected();
    let rows = catalogue();
    let numbers: BTreeSet<u32> = rows.iter().map(|r| r.number).collect();
    assert_eq!(
        numbers,
        expected.keys().copied().collect(),
        "every catalogue row needs a decision"
    );
    let mismatches: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let got = classify_row(row);
            (got != expected[&row.number]).then(|| {
                format!(
                    "row {}: got {got:?}, expected {:?} ({:?})",
                    row.number, expected[&row.number], row.message
                )
            })
        })
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn catalogue_marks_are_honoured() {
    let allowed: BTreeMap<u32, &str> = P_ALLOWED_UNCLASSIFIED.iter().copied().collect();
    let (mut t, mut p, mut a) = (0, 0, 0);
    for row in catalogue() {
        let got = classify_row(&row);
        match row.class.split_whitespace().next().unwrap() {
            "T" => {
                t += 1;
                assert!(
                    matches!(got.class, Transient | RetryOnce),
                    "T row {}: {got:?}",
                    row.number
                );
            }
            "P" => {
                p += 1;
                let ok = got.class == Permanent
                    || (got.class == Unclassified && allowed.contains_key(&row.number));
                assert!(ok, "P row {}: {got:?} ({:?})", row.number, row.message);
            }
            "A" => {
                a += 1;
                assert_eq!(got, expected()[&row.number], "A row {}", row.number);
            }
            other => panic!("row {}: unknown class mark {other:?}", row.number),
        }
    }
    // The table was really read, in all three kinds.
    assert!(t >= 3 && p >= 30 && a >= 10, "T {t}, P {p}, A {a}");
    // An allow-listed row that became permanent should leave the allow-list.
    for (number, why) in P_ALLOWED_UNCLASSIFIED {
        assert!(!why.is_empty());
        assert_eq!(
            expected()[number].class,
            Unclassified,
            "row {number} is allow-listed but classified"
        );
    }
}

#[test]
fn api_error_rows_go_through_classify_message() {
    let api: Vec<u32> = catalogue()
        .iter()
        .filter(|r| is_api_error(r))
        .map(|r| r.number)
        .collect();
    assert_eq!(api, [55, 56, 57, 58]);
}

// ---- properties of the rules ----

fn failed_with(context: &str) -> BuildStateChangeEvent {
    let mut event = sample("build-state-failed-tests.json");
    let phase = event
        .detail
        .additional_information
        .phases
        .iter_mut()
        .find(|p| p.phase_status == Some(PhaseStatus::Failed))
        .unwrap();
    phase.phase_context = Some(vec![context.to_owned()]);
    event
}

#[test]
fn never_seen_text_is_unclassified() {
    let unseen = "The flux capacitor reported an unexpected polarity";
    assert_eq!(
        classify_message(unseen),
        expect(Unclassified, Reason::Unclassified)
    );
    assert_eq!(
        classify(&failed_with(&format!("CLIENT_ERROR: {unseen}"))),
        expect(Unclassified, Reason::Unclassified)
    );
    // Nothing to read at all: still no retry.
    assert_eq!(
        classify(&failed_with("")),
        expect(Unclassified, Reason::Unclassified)
    );
}

#[test]
fn a_permanent_marker_beats_a_generic_one() {
    let text = "CLIENT_ERROR: Rate exceeded while checking: user is not authorized, \
                please try again later";
    assert_eq!(
        classify(&failed_with(text)),
        expect(Permanent, Reason::AccessDenied)
    );
    // Across messages too: the permanent one is second.
    let mut event = failed_with("CLIENT_ERROR: dial tcp 10.0.0.1:443: i/o timeout");
    let phase = event
        .detail
        .additional_information
        .phases
        .iter_mut()
        .find(|p| p.phase_status == Some(PhaseStatus::Failed))
        .unwrap();
    phase
        .phase_context
        .as_mut()
        .unwrap()
        .push("CLIENT_ERROR: repository not found for primary source".into());
    assert_eq!(classify(&event), expect(Permanent, Reason::SourceNotFound));
}

#[test]
fn status_code_alone_never_makes_a_failure_retryable() {
    // Transient-looking codes with a permanent or unknown message.
    assert_eq!(
        classify(&failed_with(
            "BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE: image too large"
        )),
        expect(Unclassified, Reason::Unclassified)
    );
    // A command failure is judged by its reason, not by the user's command text.
    assert_eq!(
        classify(&failed_with(
            "COMMAND_EXECUTION_ERROR: Error while executing command: ./toomanyrequests-429.sh \
             --retry-later. Reason: exit status 1"
        )),
        expect(Permanent, Reason::CommandFailed)
    );
    // `429` inside a path is not a rate limit.
    assert_eq!(
        classify_message("stat /codebuild/output/src429/src/x: unknown failure"),
        expect(Unclassified, Reason::Unclassified)
    );
}

#[test]
fn fault_without_a_marker_is_retried_once_but_a_marker_still_wins() {
    let mut event = failed_with("INTERNAL_ERROR: something broke");
    event.detail.build_status = BuildStatus::Fault;
    assert_eq!(classify(&event), expect(RetryOnce, Reason::ServiceFault));
    let mut event = failed_with("CLIENT_ERROR: ThrottlingException: Rate exceeded");
    event.detail.build_status = BuildStatus::Fault;
    assert_eq!(classify(&event), expect(Transient, Reason::RateLimited));
}

#[test]
fn queue_limit_depends_on_the_number() {
    let msg = |n: u32| format!("Cannot have more than {n} builds in queue for the account");
    assert_eq!(
        classify_message(&msg(0)),
        expect(Permanent, Reason::BuildQueueQuotaZero)
    );
    for n in [1, 5, 100] {
        assert_eq!(
            classify_message(&msg(n)),
            expect(Transient, Reason::BuildQueueFull)
        );
    }
}

#[test]
fn unknown_build_status_is_not_retried() {
    let mut event = failed_with("CLIENT_ERROR: toomanyrequests");
    event.detail.build_status = BuildStatus::from("SOMETHING_NEW");
    assert_eq!(
        classify(&event),
        expect(Unclassified, Reason::UnknownStatus)
    );
}

/// Markers the catalogue has no published row for (its "honest gaps"), pinned here so each can
/// fail on its own.
#[test]
fn default_markers_without_a_catalogue_row() {
    let table = [
        (
            "InsufficientInstanceCapacity: no capacity in zone",
            Transient,
            Reason::InsufficientCapacity,
        ),
        (
            "Fleet has insufficient capacity right now",
            Transient,
            Reason::InsufficientCapacity,
        ),
        (
            "SlowDown: Please reduce your request rate",
            Transient,
            Reason::RateLimited,
        ),
        (
            "unexpected status code: 429, retry later",
            Transient,
            Reason::RateLimited,
        ),
        (
            "Get https://registry: net/http: TLS handshake timeout",
            RetryOnce,
            Reason::NetworkTimeout,
        ),
        (
            "dial tcp 10.0.0.5:443: connect: connection refused",
            RetryOnce,
            Reason::ConnectionFailed,
        ),
        (
            "pull access denied for myimage",
            Permanent,
            Reason::AccessDenied,
        ),
        (
            "NoSuchKey: The specified key does not exist",
            Permanent,
            Reason::SourceNotFound,
        ),
        (
            "CLIENT_ERROR: reference not found for primary source",
            Permanent,
            Reason::SourceNotFound,
        ),
        (
            "no matching artifact paths found",
            Permanent,
            Reason::InvalidConfiguration,
        ),
    ];
    for (message, class, reason) in table {
        assert_eq!(
            classify_message(message),
            expect(class, reason),
            "{message:?}"
        );
    }
}
