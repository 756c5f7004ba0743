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
