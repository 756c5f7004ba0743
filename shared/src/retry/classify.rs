//! [`classify`]: from a build state change event to a [`Classification`].

use super::class::{Classification, FailureClass, Reason};
use super::rules::first_match;
use crate::model::build_event::{BuildStateChangeEvent, EventPhase};
use crate::model::{Build, BuildStatus, PhaseContext, PhaseStatus};

/// The status code CodeBuild gives a missing or invalid buildspec: always permanent.
const YAML_FILE_ERROR: &str = "YAML_FILE_ERROR";
/// How CodeBuild words a buildspec command that failed.
const COMMAND_PREFIX: &str = "Error while executing command: ";
/// What separates the echoed command from the reason in such a message.
const COMMAND_REASON: &str = ". Reason: ";

/// Classifies a build from its status, its failing phase and that phase's context messages.
///
/// Status first: `SUCCEEDED`, `IN_PROGRESS` and `STOPPED` are not failures; `TIMED_OUT` has its
/// own class (the caller's per-project switch decides). For `FAILED` and `FAULT` the messages
/// decide, through [`super::rules::RULES`] in order, then these fallbacks:
/// `FAULT` → retry once (`service_fault`); a buildspec command's `exit status` → permanent
/// (`command_failed`); the `YAML_FILE_ERROR` code → permanent (`buildspec_error`; the only rule
/// keyed on a status code, and it can only withhold a retry); else `unclassified`.
pub fn classify(event: &BuildStateChangeEvent) -> Classification {
    let class = |class, reason| Classification::new(class, reason);
    match event.status() {
        BuildStatus::Succeeded => class(FailureClass::NotAFailure, Reason::Succeeded),
        BuildStatus::InProgress => class(FailureClass::NotAFailure, Reason::InProgress),
        BuildStatus::Stopped => class(FailureClass::NotAFailure, Reason::Stopped),
        BuildStatus::TimedOut => class(FailureClass::TimedOut, Reason::TimedOut),
        BuildStatus::Failed | BuildStatus::Fault => classify_failure(event),
        BuildStatus::Unknown(_) => class(FailureClass::Unclassified, Reason::UnknownStatus),
    }
}

/// Classifies a bare message that is not part of a build event, e.g. a `StartBuild` API error
/// (`Cannot have more than 5 builds in queue for the account`, `Rate exceeded`). Only the rule
/// table applies; text it does not know is `unclassified`.
pub fn classify_message(message: &str) -> Classification {
    first_match(&[matchable_text(message)]).unwrap_or(Classification::UNCLASSIFIED)
}

/// Classifies a build as `BatchGetBuilds` describes it (a batch's member builds, which have no
/// event of their own at decision time), with the same rules as [`classify`] over its phases.
pub fn classify_build(build: &Build) -> Classification {
    let class = |class, reason| Classification::new(class, reason);
    match &build.status {
        BuildStatus::Succeeded => class(FailureClass::NotAFailure, Reason::Succeeded),
        BuildStatus::InProgress => class(FailureClass::NotAFailure, Reason::InProgress),
        BuildStatus::Stopped => class(FailureClass::NotAFailure, Reason::Stopped),
        BuildStatus::TimedOut => class(FailureClass::TimedOut, Reason::TimedOut),
        BuildStatus::Failed | BuildStatus::Fault => {
            let failing: Vec<_> = build
                .phases
                .iter()
                .filter(|p| {
                    p.phase_status
                        .as_ref()
                        .is_some_and(|s| *s != PhaseStatus::Succeeded)
                })
                .collect();
            let fault = build.status == BuildStatus::Fault
                || failing
                    .iter()
                    .any(|p| p.phase_status == Some(PhaseStatus::Fault));
            let contexts: Vec<PhaseContext> =
                failing.iter().flat_map(|p| p.contexts.clone()).collect();
            classify_contexts(fault, &contexts)
        }
        BuildStatus::Unknown(_) => class(FailureClass::Unclassified, Reason::UnknownStatus),
    }
}

fn classify_failure(event: &BuildStateChangeEvent) -> Classification {
    let failing: Vec<&EventPhase> = event.phases().iter().filter(|p| is_failing(p)).collect();
    let mut contexts: Vec<PhaseContext> = failing.iter().flat_map(|p| p.contexts()).collect();
    if contexts.is_empty() {
        // Some events name the problem only in `current-phase-context`. Unreadable there means
        // no text, which ends as `unclassified` (no retry): the safe side.
        contexts = event.current_phase_contexts().unwrap_or_default();
    }
    let fault = *event.status() == BuildStatus::Fault
        || failing
            .iter()
            .any(|p| p.phase_status == Some(PhaseStatus::Fault));
    classify_contexts(fault, &contexts)
}

/// The rules, then the fallbacks, over the failing phases' contexts; `fault` when the build or
/// one of those phases ended in `FAULT`. Shared by events and `BatchGetBuilds` builds.
fn classify_contexts(fault: bool, contexts: &[PhaseContext]) -> Classification {
    let texts: Vec<&str> = contexts
        .iter()
        .map(|c| matchable_text(&c.message))
        .collect();
    if let Some(found) = first_match(&texts) {
        return found;
    }

    if fault {
        return Classification::new(FailureClass::RetryOnce, Reason::ServiceFault);
    }
    if contexts.iter().any(|c| is_command_failure(&c.message)) {
        return Classification::new(FailureClass::Permanent, Reason::CommandFailed);
    }
    if contexts
        .iter()
        .any(|c| c.status_code.as_deref() == Some(YAML_FILE_ERROR))
    {
        return Classification::new(FailureClass::Permanent, Reason::BuildspecError);
    }
    Classification::UNCLASSIFIED
}

/// A phase that ended in anything but success (`COMPLETED` has no status and is skipped).
fn is_failing(phase: &EventPhase) -> bool {
    phase
        .phase_status
        .as_ref()
        .is_some_and(|s| *s != PhaseStatus::Succeeded)
}

/// The part of a message the rules may look at. For a failed buildspec command that is only the
/// reason after the echoed command: the command is the user's own text (`make test-429`,
/// `./check-rate-exceeded.sh`) and would trip markers that say nothing about the failure.
fn matchable_text(message: &str) -> &str {
    match message.strip_prefix(COMMAND_PREFIX) {
        Some(rest) => rest
            .rsplit_once(COMMAND_REASON)
            .map_or("", |(_, reason)| reason),
        None => message,
    }
}

/// `Error while executing command: <cmd>. Reason: exit status <N>`.
fn is_command_failure(message: &str) -> bool {
    message.starts_with(COMMAND_PREFIX)
}
