//! Crash injection for tests: `failpoint("step")` aborts the process when the environment
//! variable `AUTOPILOT_FAILPOINT` names that step, so end-to-end tests can crash a function
//! between any two steps. Inert (one string compare) when the variable is unset.

use std::sync::OnceLock;

/// The environment variable naming the step at which to abort.
pub const FAILPOINT_ENV: &str = "AUTOPILOT_FAILPOINT";

/// Read once: the variable is set when the process starts and must not cost a syscall per step.
fn armed_step() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(FAILPOINT_ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// True when `step` is the armed failpoint.
pub fn is_armed(step: &str) -> bool {
    armed_step() == Some(step)
}

/// Aborts the process (no unwinding, no cleanup, like a crash) when `step` is armed.
pub fn failpoint(step: &str) {
    if is_armed(step) {
        tracing::error!(action = "failpoint", reason = step, "aborting at failpoint");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test process never sets the variable, so every step is inert; the abort path is
    // exercised by the end-to-end tests, which run the binaries with the variable set.
    #[test]
    fn inert_when_unset() {
        assert!(
            std::env::var(FAILPOINT_ENV).is_err(),
            "tests must run without {FAILPOINT_ENV}"
        );
        assert!(!is_armed("any-step"));
        failpoint("any-step");
    }
}
