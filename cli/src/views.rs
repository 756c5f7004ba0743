//! What the commands print about builds and batches: the ops API's shapes (camelCase), so a
//! script reads the CLI and the API alike.

use autopilot::model::{BuildBatch, BuildSummary};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::output::{Table, cell};

fn rfc3339(time: Option<&chrono::DateTime<chrono::Utc>>) -> Value {
    time.map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    })
}

/// One batch as JSON.
pub fn batch(batch: &BuildBatch) -> Value {
    json!({
        "id": batch.id.id(),
        "arn": batch.arn.clone().or_else(|| batch.id.arn()),
        "project": batch.id.project(),
        "buildBatchNumber": batch.batch_number,
        "status": batch.status.as_str(),
        "complete": batch.complete,
        "currentPhase": batch.current_phase,
        "sourceVersion": batch.source_version,
        "resolvedSourceVersion": batch.resolved_source_version,
        "initiator": batch.initiator,
        "startTime": rfc3339(batch.start_time.as_ref()),
        "endTime": rfc3339(batch.end_time.as_ref()),
        "environmentVariables": batch.environment_variables,
        "builds": batch.build_ids.iter().map(|id| id.id()).collect::<Vec<_>>(),
    })
}

/// Headings of a batch table.
pub const BATCH_HEADINGS: &[&str] = &["ID", "NUMBER", "STATUS", "SOURCE VERSION", "STARTED"];

/// One batch as a table row (from [`batch`]'s JSON).
pub fn batch_row(batch: &Value) -> Vec<String> {
    [
        "id",
        "buildBatchNumber",
        "status",
        "sourceVersion",
        "startTime",
    ]
    .iter()
    .map(|key| cell(&batch[key]))
    .collect()
}

/// A table of batches (from [`batch`]'s JSON).
pub fn batch_table(batches: &[Value]) -> Table {
    let mut table = Table::new(BATCH_HEADINGS);
    table.rows = batches.iter().map(batch_row).collect();
    table
}

/// Headings of a build table.
pub const BUILD_HEADINGS: &[&str] = &[
    "ID",
    "NUMBER",
    "STATUS",
    "PHASE",
    "SOURCE VERSION",
    "STARTED",
];

/// A table of builds.
pub fn build_table(builds: &[BuildSummary]) -> Table {
    let mut table = Table::new(BUILD_HEADINGS);
    table.rows = builds
        .iter()
        .map(|b| {
            let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            vec![
                b.id.clone(),
                b.build_number.map_or_else(|| "-".into(), |n| n.to_string()),
                b.status.clone(),
                or_dash(&b.current_phase),
                or_dash(&b.source_version),
                or_dash(&b.start_time),
            ]
        })
        .collect();
    table
}
