//! `failpoint` really aborts the process when armed: the test re-runs its own binary with
//! `AUTOPILOT_FAILPOINT` set and checks how the child ended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use autopilot::failpoint::{FAILPOINT_ENV, failpoint};

/// In the child (variable set) this aborts before printing; unarmed it just passes.
#[test]
fn child_reaches_the_step() {
    failpoint("after-claim");
    println!("passed the failpoint");
}

fn run_child(armed_step: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // Its name inside the crate's one integration-test binary (see main.rs).
            "failpoint_abort::child_reaches_the_step",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FAILPOINT_ENV, armed_step)
        .output()
        .unwrap()
}

#[test]
fn armed_step_aborts_the_process() {
    let output = run_child("after-claim");
    assert!(!output.status.success(), "the child should have aborted");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("passed the failpoint"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(6),
            "SIGABRT expected, got {:?}",
            output.status
        );
    }
}

#[test]
fn other_step_is_inert() {
    let output = run_child("some-other-step");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("passed the failpoint"));
}
