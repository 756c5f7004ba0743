//! The `autopilot` binary, run as a person or CI would: arguments in, exit code and output out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The workspace root (this crate is `cli/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn event(name: &str) -> String {
    root()
        .join("shared/tests/fixtures/codebuild-events")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn autopilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary file holding `contents`, kept alive by the returned handle.
fn temp_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file
}

/// Runs `decide`, expects success, and returns the printed JSON and the stderr line.
fn decide(args: &[&str]) -> (Value, String) {
    let mut all = vec!["decide"];
    all.extend_from_slice(args);
    let out = autopilot(&all);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap();
    (json, text(&out.stderr))
}

#[test]
fn the_example_configuration_validates() {
    let example = root().join("infra/autopilot.example.toml");
    let out = autopilot(&["config", "validate", example.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok: 4 project entries, 3 repositories\n");
}

#[test]
fn a_broken_configuration_names_every_problem_by_line_and_key() {
    let broken = temp_file(
        "[defaults]\ndry_run = false\n\n[[projects]]\nname = \"web-*\"\ncolour = \"blue\"\n\
         [projects.retry]\nmax_retries = 99\n",
    );
    let out = autopilot(&["config", "validate", broken.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 6: projects[0].colour: unknown key `colour`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 8: projects[0].retry.max_retries: must be at most 10"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn project_patterns_bound_the_configuration() {
    let example = root().join("infra/autopilot.example.toml");
    // The example is edited as features land: find the entry's line rather than hard-code it.
    let line = std::fs::read_to_string(&example)
        .unwrap()
        .lines()
        .position(|line| line.trim() == "name = \"nightly-e2e\"")
        .expect("the example configures nightly-e2e")
        + 1;
    let out = autopilot(&[
        "config",
        "validate",
        example.to_str().unwrap(),
        "--project-patterns",
        "web-*",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!("line {line}: projects[3].name: project `nightly-e2e` is outside");
    assert!(
        text(&out.stderr).contains(&expected),
        "{expected}\n{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_exit_2_with_its_name() {
    let out = autopilot(&["config", "validate", "/nonexistent/autopilot.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read /nonexistent/autopilot.toml"),
        "{}",
        text(&out.stderr)
    );
    let out = autopilot(&["decide", "/nonexistent/event.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_provisioning_rate_limit_is_retried_as_transient() {
    let (json, stderr) = decide(&[&event("build-state-failed-provisioning.json")]);
    assert_eq!(json["would"], "retry");
    // First delivery with a backoff: the handler puts the retry on the delay queue.
    assert_eq!(json["action"], "delay");
    assert_eq!(json["reason"], "rate_limited");
    assert_eq!(json["class"], "transient");
    assert_eq!(json["project"], "my-sample-project");
    assert_eq!(
        json["build_id"],
        "my-sample-project:8745a7a9-c340-456a-9166-edf953571bEX"
    );
    assert_eq!(json["attempt"], 1);
    assert_eq!(json["backoff_seconds"], 30);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("assumed the first attempt"), "{stderr}");
}

#[test]
fn failed_tests_are_skipped_as_permanent() {
    let (json, _) = decide(&[&event("build-state-failed-tests.json")]);
    assert_eq!(json["action"], "skip");
    assert_eq!(json["would"], "skip");
    assert_eq!(json["reason"], "command_failed");
    assert_eq!(json["class"], "permanent");
}

#[test]
fn a_success_is_not_a_failure() {
    let (json, _) = decide(&[&event("build-state-succeeded.json")]);
    assert_eq!(json["action"], "skip");
    assert_eq!(json["reason"], "succeeded");
    assert_eq!(json["class"], "not_a_failure");
}

#[test]
fn a_project_the_configuration_does_not_cover_is_skipped() {
    let config = temp_file("[[projects]]\nname = \"web-*\"\n");
    let (json, _) = decide(&[
        &event("build-state-failed-provisioning.json"),
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(json["action"], "skip");
    assert_eq!(json["reason"], "project_not_configured");
    // Not a failure: skipped for what it is, before the configuration is consulted.
    let (json, _) = decide(&[
        &event("build-state-succeeded.json"),
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(json["reason"], "succeeded");
}

#[test]
fn the_project_entry_of_the_configuration_decides() {
    let config = temp_file(
        "[[projects]]\nname = \"my-*\"\ndry_run = true\n[projects.retry]\nbackoff_seconds = 45\n",
    );
    let (json, _) = decide(&[
        &event("build-state-failed-provisioning.json"),
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(json["action"], "dry_run");
    assert_eq!(json["would"], "retry");
    assert_eq!(json["backoff_seconds"], 45);
    assert_eq!(json["dry_run"], true);
}

#[test]
fn a_delay_queue_message_carries_the_attempt() {
    let raw: Value = serde_json::from_str(
        &std::fs::read_to_string(event("build-state-failed-provisioning.json")).unwrap(),
    )
    .unwrap();
    // Retry 3 of a chain whose cap (default `max_retries` 2) is already reached.
    let message = serde_json::json!({"kind": "retry_after_backoff", "event": raw, "attempt": 3});
    let file = temp_file(&message.to_string());
    let (json, _) = decide(&[file.path().to_str().unwrap()]);
    assert_eq!(json["action"], "give_up");
    assert_eq!(json["reason"], "retry_cap_reached");
    assert_eq!(json["attempt"], 2);
}

#[test]
fn an_event_of_another_kind_is_refused() {
    let file = temp_file(r#"{"detail-type": "CodeBuild Build Phase Change", "detail": {}}"#);
    let out = autopilot(&["decide", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected a \"CodeBuild Build State Change\" event"),
        "{}",
        text(&out.stderr)
    );
}

// --- `decide` with build batches: the batch reaper's decision ---

/// The moment every batch test decides at.
const NOW: &str = "2026-12-01T12:00:00Z";
/// `NOW` in epoch seconds.
const NOW_EPOCH: i64 = 1_796_126_400;

/// A batch as `BatchGetBuildBatches` returns it (epoch-second times, the API's JSON), started
/// `minutes_ago` before [`NOW`], building `branch`.
fn batch(project: &str, number: i64, status: &str, branch: &str, minutes_ago: i64) -> Value {
    let id = format!("{project}:00000000-0000-0000-0000-{number:012}");
    serde_json::json!({
        "id": id,
        "arn": format!("arn:aws:codebuild:eu-west-1:123456789012:build-batch/{id}"),
        "startTime": NOW_EPOCH - minutes_ago * 60,
        "currentPhase": "IN_PROGRESS",
        "buildBatchStatus": status,
        "sourceVersion": format!("refs/heads/{branch}"),
        "projectName": project,
        "complete": status != "IN_PROGRESS",
        "initiator": "autopilot-webhook",
        "buildBatchNumber": number,
        "environment": {"environmentVariables": [
            {"name": "CI", "value": "true", "type": "PLAINTEXT"}
        ]},
        "buildGroups": [{
            "identifier": "build1",
            "currentBuildSummary": {
                "arn": format!("arn:aws:codebuild:eu-west-1:123456789012:build/{project}:11111111-0000-0000-0000-{number:012}"),
                "buildStatus": "IN_PROGRESS"
            }
        }]
    })
}

/// Runs `decide --now NOW` on `{"buildBatches": batches}`, with `config` when given.
fn decide_batches(batches: &[Value], config: Option<&str>) -> (Value, String) {
    let file = temp_file(&serde_json::json!({ "buildBatches": batches }).to_string());
    let config = config.map(temp_file);
    let mut args = vec![file.path().to_str().unwrap(), "--now", NOW];
    if let Some(config) = &config {
        args.extend(["--config", config.path().to_str().unwrap()]);
    }
    decide(&args)
}

const STALE_AFTER_AN_HOUR: &str =
    "[[projects]]\nname = \"app\"\n[projects.reaper]\nmax_age_minutes = 60\n";

#[test]
fn a_stale_batch_would_be_stopped() {
    let (json, stderr) = decide_batches(
        &[batch("app", 7, "IN_PROGRESS", "feature/x", 90)],
        Some(STALE_AFTER_AN_HOUR),
    );
    let decision = &json["batches"][0];
    assert_eq!(decision["id"], "app:00000000-0000-0000-0000-000000000007");
    assert_eq!(decision["project"], "app");
    assert_eq!(decision["would"], "stop");
    assert_eq!(decision["reason"], "stale");
    assert_eq!(decision["age_minutes"], 90);
    assert_eq!(decision["branch"]["name"], "feature/x");
    assert_eq!(decision["dry_run"], false);
    assert!(stderr.starts_with("would stop 1 of 1 batches"), "{stderr}");
}

#[test]
fn a_young_batch_is_not_stale() {
    let (json, _) = decide_batches(
        &[batch("app", 7, "IN_PROGRESS", "feature/x", 30)],
        Some(STALE_AFTER_AN_HOUR),
    );
    assert_eq!(json["batches"][0]["would"], "skip");
    assert_eq!(json["batches"][0]["reason"], "current");
}

#[test]
fn the_older_batch_of_a_branch_is_superseded_by_the_newer() {
    // The newer batch first: "newer" is the batch number, not the file's order.
    let (json, stderr) = decide_batches(
        &[
            batch("app", 5, "IN_PROGRESS", "feature/x", 5),
            batch("app", 4, "IN_PROGRESS", "feature/x", 10),
        ],
        None,
    );
    let (newer, older) = (&json["batches"][0], &json["batches"][1]);
    assert_eq!(older["would"], "stop");
    assert_eq!(older["reason"], "superseded");
    assert_eq!(older["superseded_by"], newer["id"]);
    assert_eq!(newer["would"], "skip");
    assert_eq!(newer["reason"], "current");
    assert!(newer.get("superseded_by").is_none());
    assert!(stderr.contains("superseded by app:"), "{stderr}");
    let assumptions = json["assumptions"].to_string();
    assert!(
        assumptions.contains("only the batches in the file are considered"),
        "{assumptions}"
    );
    assert!(assumptions.contains("no --config"), "{assumptions}");
}

#[test]
fn a_protected_branch_is_never_superseded() {
    let (json, _) = decide_batches(
        &[
            batch("app", 4, "IN_PROGRESS", "main", 10),
            batch("app", 5, "IN_PROGRESS", "main", 5),
        ],
        None,
    );
    assert_eq!(json["batches"][0]["would"], "skip");
    assert_eq!(json["batches"][0]["reason"], "protected_branch");
    assert_eq!(json["batches"][1]["would"], "skip");
}

#[test]
fn a_finished_batch_is_not_listed_and_supersedes_nothing() {
    let (json, _) = decide_batches(
        &[
            batch("app", 4, "IN_PROGRESS", "feature/x", 10),
            batch("app", 5, "SUCCEEDED", "feature/x", 5),
        ],
        None,
    );
    assert_eq!(json["batches"][0]["reason"], "current");
    assert_eq!(json["batches"][1]["would"], "skip");
    assert_eq!(json["batches"][1]["reason"], "not_in_progress");
    assert_eq!(json["batches"][1]["status"], "SUCCEEDED");
    assert!(
        json["assumptions"]
            .to_string()
            .contains("lists IN_PROGRESS batches only")
    );
}

#[test]
fn a_project_the_configuration_does_not_cover_is_not_swept() {
    let (json, _) = decide_batches(
        &[batch("other", 7, "IN_PROGRESS", "feature/x", 500)],
        Some(STALE_AFTER_AN_HOUR),
    );
    assert_eq!(json["batches"][0]["would"], "skip");
    assert_eq!(json["batches"][0]["reason"], "project_not_configured");
}

#[test]
fn a_dry_run_project_would_stop_but_only_log() {
    let config =
        "[[projects]]\nname = \"app\"\ndry_run = true\n[projects.reaper]\nmax_age_minutes = 60\n";
    let (json, stderr) = decide_batches(
        &[batch("app", 7, "IN_PROGRESS", "feature/x", 90)],
        Some(config),
    );
    assert_eq!(json["batches"][0]["would"], "stop");
    assert_eq!(json["batches"][0]["reason"], "stale");
    assert_eq!(json["batches"][0]["dry_run"], true);
    assert!(stderr.contains("dry-run"), "{stderr}");
}

#[test]
fn one_batch_as_the_aws_cli_prints_it_is_read() {
    // The AWS CLI prints times as RFC 3339 with an offset; a single batch object is accepted.
    let mut one = batch("app", 7, "IN_PROGRESS", "feature/x", 0);
    one["startTime"] = Value::from("2026-12-01T10:00:00.123000+00:00");
    let file = temp_file(&one.to_string());
    let config = temp_file(STALE_AFTER_AN_HOUR);
    let (json, _) = decide(&[
        file.path().to_str().unwrap(),
        "--now",
        NOW,
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(json["now"], NOW);
    assert_eq!(json["batches"][0]["age_minutes"], 119);
    assert_eq!(json["batches"][0]["reason"], "stale");
}

#[test]
fn a_malformed_batch_file_is_exit_2_with_the_reason() {
    let file = temp_file(
        r#"{"buildBatches": [{"id": "no-uuid-here", "buildBatchStatus": "IN_PROGRESS"}]}"#,
    );
    let out = autopilot(&["decide", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("build batch 0"), "{stderr}");
    assert!(stderr.contains("no-uuid-here"), "{stderr}");
    assert!(out.stdout.is_empty());

    let file = temp_file(r#"{"buildBatches": 3}"#);
    let out = autopilot(&["decide", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a list"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_now_is_refused() {
    let file = temp_file(&serde_json::json!({"buildBatches": []}).to_string());
    let out = autopilot(&[
        "decide",
        file.path().to_str().unwrap(),
        "--now",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--now"), "{}", text(&out.stderr));
}

/// The JSON `codebuild-local` answers `BatchGetBuildBatches` with (CodeBuild's wire shape:
/// epoch-second times, the branch also in `environment.environmentVariables`) reads as the
/// sweep would see it.
#[tokio::test]
async fn codebuild_local_batches_are_decided_as_the_sweep_would() {
    use codebuild_local::control::SeedBatch;
    use codebuild_local::model::{EnvironmentVariable, Status};

    let server = codebuild_local::serve(
        codebuild_local::Config::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let seed = |age_seconds: i64, source_version: &str| SeedBatch {
        project_name: "web".into(),
        age_seconds: Some(age_seconds),
        source_version: Some(source_version.into()),
        ..SeedBatch::default()
    };
    // The newer batch names its branch only in AUTOPILOT_BRANCH (it built a bare commit).
    let newer = SeedBatch {
        environment_variables: Some(vec![EnvironmentVariable {
            name: "AUTOPILOT_BRANCH".into(),
            value: "feature/y".into(),
            kind: "PLAINTEXT".into(),
        }]),
        ..seed(60, "0123456789abcdef0123456789abcdef01234567")
    };
    let finished = SeedBatch {
        build_batch_status: Some(Status::Succeeded),
        ..seed(30, "refs/heads/feature/y")
    };
    let ids = server
        .control()
        .seed_batches(&[
            seed(1800, "refs/heads/feature/y"),
            newer,
            seed(7200, "refs/heads/feature/old"),
            finished,
        ])
        .await
        .unwrap();
    let raw = harness::stack::CodeBuildCli::new(server.endpoint());
    let answer = raw
        .call("BatchGetBuildBatches", &serde_json::json!({ "ids": ids }))
        .await
        .unwrap();
    let file = temp_file(&answer.to_string());
    let config =
        temp_file("[[projects]]\nname = \"web\"\n[projects.reaper]\nmax_age_minutes = 60\n");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args(["decide", file.path().to_str().unwrap()])
        .args(["--config", config.path().to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_id = |id: &str| {
        json["batches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .unwrap()
            .clone()
    };
    let (older, newer, stale, finished) = (
        by_id(&ids[0]),
        by_id(&ids[1]),
        by_id(&ids[2]),
        by_id(&ids[3]),
    );
    assert_eq!(older["would"], "stop");
    assert_eq!(older["reason"], "superseded");
    assert_eq!(older["superseded_by"], ids[1].as_str());
    assert_eq!(newer["would"], "skip");
    assert_eq!(newer["reason"], "current");
    assert_eq!(newer["branch"]["name"], "feature/y");
    assert_eq!(stale["would"], "stop");
    assert_eq!(stale["reason"], "stale");
    assert_eq!(finished["reason"], "not_in_progress");
}
