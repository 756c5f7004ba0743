//! Counts as CloudWatch embedded metric format (EMF): one JSON line on stdout per decision,
//! which CloudWatch Logs turns into metrics without a `PutMetricData` call (no latency, no IAM).
//!
//! The line goes to stdout directly, not through `tracing`: EMF must be the whole log line,
//! and the JSON subscriber would wrap it in its own object.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The CloudWatch namespace of every autopilot metric.
pub const NAMESPACE: &str = "CodeBuildAutopilot";
/// The one dimension: which function counted.
pub const DIMENSION: &str = "Function";

/// What was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A retry was made.
    Retried,
    /// A build was left alone (including duplicates and dropped inputs).
    Skipped,
    /// A chain reached its cap, budget or breaker.
    GaveUp,
    /// A decision was only reported.
    DryRun,
    /// Work was put on the delay queue (backoff, batch re-check).
    Delayed,
}

impl Metric {
    /// The metric name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Retried => "Retried",
            Self::Skipped => "Skipped",
            Self::GaveUp => "GaveUp",
            Self::DryRun => "DryRun",
            Self::Delayed => "Delayed",
        }
    }
}

/// The EMF document counting one `metric` for `function` at `at`.
pub fn emf_count(function: &str, metric: Metric, at: DateTime<Utc>) -> Value {
    emf_document(function, at, None, &[(metric.name(), "Count", 1.0)])
}

/// One EMF document with several `(name, unit, value)` metrics under the `Function` dimension
/// and, when given, one more dimension (`("Reason", "stale")`). Every EMF line the functions
/// print is built here, so they all have the one documented shape.
pub fn emf_document(
    function: &str,
    at: DateTime<Utc>,
    extra_dimension: Option<(&str, &str)>,
    values: &[(&str, &str, f64)],
) -> Value {
    let mut dimensions = vec![DIMENSION];
    dimensions.extend(extra_dimension.map(|(name, _)| name));
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": definitions,
            }],
        },
        DIMENSION: function,
    });
    if let Some(object) = document.as_object_mut() {
        if let Some((name, value)) = extra_dimension {
            object.insert(name.to_owned(), json!(value));
        }
        for (name, _, value) in values {
            // Counts stay integers in the line (`"Retried": 1`), as CloudWatch shows them.
            let number = if value.fract() == 0.0 && value.abs() < 9.0e15 {
                json!(*value as i64)
            } else {
                json!(value)
            };
            object.insert((*name).to_owned(), number);
        }
    }
    document
}

/// Prints one count to stdout as an EMF line.
pub fn emit_count(function: &str, metric: Metric, at: DateTime<Utc>) {
    println!("{}", emf_count(function, metric, at));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn emf_document_has_the_documented_shape() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let doc = emf_count("auto-retry", Metric::GaveUp, at);
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "CodeBuildAutopilot",
                        "Dimensions": [["Function"]],
                        "Metrics": [{"Name": "GaveUp", "Unit": "Count"}],
                    }],
                },
                "Function": "auto-retry",
                "GaveUp": 1,
            })
        );
        // One line: CloudWatch reads EMF per log event.
        assert!(!doc.to_string().contains('\n'));
    }

    #[test]
    fn every_metric_names_its_own_member() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        for metric in [
            Metric::Retried,
            Metric::Skipped,
            Metric::GaveUp,
            Metric::DryRun,
            Metric::Delayed,
        ] {
            let doc = emf_count("f", metric, at);
            assert_eq!(doc[metric.name()], json!(1));
            assert_eq!(
                doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
                json!(metric.name())
            );
        }
    }
}
