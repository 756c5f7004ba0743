//! The phase sequences of builds and batches, as CodeBuild reports them.

use chrono::{DateTime, Utc};

use crate::model::{Phase, PhaseContext, Status};

/// Build phases in the order CodeBuild runs them.
pub const BUILD_PHASES: [&str; 11] = [
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
];

/// Whether `phase` is a build phase type.
pub fn is_build_phase(phase: &str) -> bool {
    BUILD_PHASES.contains(&phase)
}

fn finished(phase: &str, status: Status, start: DateTime<Utc>, end: DateTime<Utc>) -> Phase {
    Phase {
        phase_type: phase.to_owned(),
        phase_status: Some(status),
        start_time: start,
        end_time: Some(end),
        duration_in_seconds: Some((end - start).num_seconds().max(0)),
        contexts: Vec::new(),
    }
}

fn running(phase: &str, start: DateTime<Utc>) -> Phase {
    Phase {
        phase_type: phase.to_owned(),
        phase_status: None,
        start_time: start,
        end_time: None,
        duration_in_seconds: None,
        contexts: Vec::new(),
    }
}

/// Phases of a running build now in `current` (earlier phases succeeded, `current` runs).
pub fn running_build(start: DateTime<Utc>, current: &str) -> Vec<Phase> {
    let mut phases = Vec::new();
    for phase in BUILD_PHASES {
        if phase == current {
            phases.push(running(phase, start));
            break;
        }
        phases.push(finished(phase, Status::Succeeded, start, start));
    }
    phases
}

/// Phases of a build that ended with `status` in phase `ended_in`, carrying `contexts`.
///
/// Earlier phases succeeded; after a failing phase CodeBuild still runs FINALIZING, then
/// reports COMPLETED without status (as in the EventBridge samples).
pub fn completed_build(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    status: Status,
    ended_in: &str,
    contexts: Vec<PhaseContext>,
) -> Vec<Phase> {
    let mut phases = Vec::new();
    // A successful build runs every phase; a failed one stops at the failing phase.
    let last = if status == Status::Succeeded {
        "FINALIZING"
    } else {
        ended_in
    };
    let mut contexts = Some(contexts);
    for phase in BUILD_PHASES {
        if phase == "COMPLETED" {
            break;
        }
        if phase == last {
            let mut p = finished(phase, status, start, end);
            p.contexts = contexts.take().unwrap_or_default();
            phases.push(p);
            break;
        }
        phases.push(finished(phase, Status::Succeeded, start, start));
    }
    if last != "FINALIZING" {
        phases.push(finished("FINALIZING", Status::Succeeded, end, end));
    }
    phases.push(running("COMPLETED", end));
    phases
}

/// Phases of a batch that is running its builds.
pub fn running_batch(start: DateTime<Utc>) -> Vec<Phase> {
    vec![
        finished("SUBMITTED", Status::Succeeded, start, start),
        finished("DOWNLOAD_BATCHSPEC", Status::Succeeded, start, start),
        running("IN_PROGRESS", start),
    ]
}

/// Phases of a batch whose builds are done, combining their artifacts since `combining_since`.
pub fn combining_batch(start: DateTime<Utc>, combining_since: DateTime<Utc>) -> Vec<Phase> {
    let combining_since = combining_since.max(start);
    vec![
        finished("SUBMITTED", Status::Succeeded, start, start),
        finished("DOWNLOAD_BATCHSPEC", Status::Succeeded, start, start),
        finished("IN_PROGRESS", Status::Succeeded, start, combining_since),
        running("COMBINE_ARTIFACTS", combining_since),
    ]
}

/// Closes the running batch phase and appends the terminal one (`SUCCEEDED`, `FAILED`, `STOPPED`).
pub fn complete_batch(phases: &mut Vec<Phase>, status: Status, end: DateTime<Utc>) {
    if let Some(last) = phases.last_mut()
        && last.phase_status.is_none()
    {
        last.phase_status = Some(status);
        last.end_time = Some(end);
        last.duration_in_seconds = Some((end - last.start_time).num_seconds().max(0));
    }
    let terminal = match status {
        Status::Succeeded => "SUCCEEDED",
        Status::Stopped => "STOPPED",
        _ => "FAILED",
    };
    phases.push(running(terminal, end));
}

/// The phase a batch is in after its phases list.
pub fn current_phase(phases: &[Phase]) -> String {
    phases
        .last()
        .map(|p| p.phase_type.clone())
        .unwrap_or_else(|| "SUBMITTED".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn failed_build_stops_at_failing_phase_then_finalizes() {
        let t = Utc::now();
        let ctx = PhaseContext {
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "m".into(),
        };
        let phases = completed_build(t, t, Status::Failed, "BUILD", vec![ctx.clone()]);
        let types: Vec<_> = phases.iter().map(|p| p.phase_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "SUBMITTED",
                "QUEUED",
                "PROVISIONING",
                "DOWNLOAD_SOURCE",
                "INSTALL",
                "PRE_BUILD",
                "BUILD",
                "FINALIZING",
                "COMPLETED"
            ]
        );
        assert_eq!(phases[6].phase_status, Some(Status::Failed));
        assert_eq!(phases[6].contexts, vec![ctx]);
        assert_eq!(phases[8].phase_status, None);
    }

    #[test]
    fn succeeded_build_runs_every_phase() {
        let t = Utc::now();
        let phases = completed_build(t, t, Status::Succeeded, "BUILD", vec![]);
        assert_eq!(phases.len(), BUILD_PHASES.len());
        assert!(
            phases[..10]
                .iter()
                .all(|p| p.phase_status == Some(Status::Succeeded))
        );
    }
}
