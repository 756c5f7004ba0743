//! EventBridge `CodeBuild Build State Change` events, POSTed to a sink without blocking calls.

use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::model::{Build, Phase};

/// Where events go; cheap to clone. One background task posts them in order.
#[derive(Clone, Debug)]
pub struct EventSink {
    url: Arc<RwLock<Option<String>>>,
    queue: mpsc::UnboundedSender<(String, Value)>,
}

impl EventSink {
    /// Starts the posting task (needs a Tokio runtime) with an optional initial sink URL.
    pub fn start(url: Option<String>) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<(String, Value)>();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while let Some((url, event)) = rx.recv().await {
                // Fire-and-forget: a sink that is down must never fail or slow a CodeBuild call.
                // EventBridge invokes Lambda targets asynchronously; the header makes a Lambda
                // Invoke API sink (the test harness's) do the same, and other sinks ignore it.
                let request = client
                    .post(&url)
                    .header("X-Amz-Invocation-Type", "Event")
                    .json(&event);
                match request.send().await {
                    Ok(resp) if !resp.status().is_success() => {
                        tracing::warn!(%url, status = %resp.status(), "event sink rejected an event");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%url, %error, "event sink unreachable"),
                }
            }
        });
        Self {
            url: Arc::new(RwLock::new(url)),
            queue,
        }
    }

    /// Changes (or removes) the sink URL.
    pub fn set_url(&self, url: Option<String>) {
        *self.url.write().unwrap_or_else(PoisonError::into_inner) = url;
    }

    /// Queues the state-change event of `build`, if a sink is set.
    pub fn emit(&self, build: &Build, region: &str, account: &str, now: DateTime<Utc>) {
        let url = self
            .url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(url) = url {
            let event = state_change_event(build, region, account, now);
            if self.queue.send((url, event)).is_err() {
                tracing::warn!("event task has stopped; event dropped");
            }
        }
    }
}

/// The console's date format that CodeBuild events use, e.g. `Sep 1, 2017 4:12:29 PM`.
fn event_time(t: DateTime<Utc>) -> String {
    t.format("%b %-d, %Y %-I:%M:%S %p").to_string()
}

fn phase_json(phase: &Phase) -> Value {
    let mut p = json!({
        "phase-type": phase.phase_type,
        "start-time": event_time(phase.start_time),
    });
    // As in the samples: the running and final COMPLETED phases carry only type and start.
    if let Some(status) = phase.phase_status {
        p["phase-status"] = json!(status.as_str());
        p["phase-context"] = json!(contexts(phase));
        if let Some(end) = phase.end_time {
            p["end-time"] = json!(event_time(end));
        }
        p["duration-in-seconds"] = json!(phase.duration_in_seconds.unwrap_or(0));
    }
    p
}

fn contexts(phase: &Phase) -> Vec<String> {
    phase
        .contexts
        .iter()
        .map(|c| format!("{}: {}", c.status_code, c.message))
        .collect()
}

/// The event's `source`: only `location` (when the project has one) and `type`.
fn event_source(source: &Value) -> Value {
    let mut out = json!({ "type": source.get("type").cloned().unwrap_or(Value::Null) });
    if let Some(location) = source.get("location") {
        out["location"] = location.clone();
    }
    out
}

/// The EventBridge event for the current state of `build` (shape of the samples in
/// `shared/events/codebuild/`).
pub fn state_change_event(build: &Build, region: &str, account: &str, now: DateTime<Utc>) -> Value {
    let env = &build.environment;
    let variables: Vec<Value> = build
        .environment_variables
        .iter()
        .map(|v| json!({"name": v.name, "type": v.kind, "value": v.value}))
        .collect();
    // Real events carry `artifact` (consumers such as aws_lambda_events require it).
    let artifact_location = build
        .artifacts
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut info = json!({
        "artifact": { "location": artifact_location },
        "environment": {
            "image": env.get("image").cloned().unwrap_or(Value::Null),
            "privileged-mode": env.get("privilegedMode").and_then(Value::as_bool).unwrap_or(false),
            "compute-type": env.get("computeType").cloned().unwrap_or(Value::Null),
            "type": env.get("type").cloned().unwrap_or(Value::Null),
            "environment-variables": variables,
        },
        "timeout-in-minutes": f64::from(build.timeout_in_minutes),
        "build-complete": build.build_complete,
        "build-number": build.build_number as f64,
        "initiator": build.initiator,
        "build-start-time": event_time(build.start_time),
        "source": event_source(&build.source),
        "logs": {
            "group-name": build.logs.group_name,
            "stream-name": build.logs.stream_name,
            "deep-link": build.logs.deep_link,
        },
        "phases": build.phases.iter().map(phase_json).collect::<Vec<_>>(),
    });
    if let Some(version) = &build.source_version {
        info["source-version"] = json!(version);
    }
    let current_context = build
        .phases
        .iter()
        .rev()
        .find(|p| p.phase_type == build.current_phase)
        .map(contexts)
        .unwrap_or_default();
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "CodeBuild Build State Change",
        "source": "aws.codebuild",
        "account": account,
        "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": [build.arn],
        "detail": {
            "build-status": build.build_status.as_str(),
            "project-name": build.project_name,
            "build-id": build.arn,
            "additional-information": info,
            "current-phase": build.current_phase,
            "current-phase-context": serde_json::to_string(&current_context).unwrap_or_else(|_| "[]".into()),
            "version": "1",
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn event_time_matches_the_console_format() {
        let t = Utc.with_ymd_and_hms(2017, 9, 1, 16, 12, 29).unwrap();
        assert_eq!(event_time(t), "Sep 1, 2017 4:12:29 PM");
    }
}
