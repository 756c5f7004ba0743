//! What the commands print about builds and batches: the ops API's shapes (camelCase), so a
//! script reads the CLI and the API alike.

use autopilot::model::{BuildBatch, BuildSummary};
use autopilot::ops::BatchSummary;
use serde_json::{Value, json};

use crate::output::{Table, cell};

/// One batch as JSON: the ops API's `BatchSummary`, plus the batch's environment variables
/// (the API leaves them out for read-only callers; the CLI runs with the operator's own rights).
pub fn batch(batch: &BuildBatch) -> Value {
    let mut json = serde_json::to_value(BatchSummary::from(batch)).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut json {
        fields.insert(
            "environmentVariables".into(),
            json!(batch.environment_variables),
        );
    }
    json
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
