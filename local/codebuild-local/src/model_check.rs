//! Checks JSON responses against CodeBuild's service model (botocore's `service-2.json`),
//! the contract the Rust SDK is generated from.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Env var naming the service model file (`service-2.json` or `.json.gz`).
pub const MODEL_ENV: &str = "CODEBUILD_SERVICE_MODEL";

/// Problems loading the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No model file was found.
    #[error(
        "CodeBuild service model not found (set {MODEL_ENV} or run `make venv` to install botocore \
         into <workspace>/.venv); looked in: {0}"
    )]
    NotFound(String),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a service model.
    #[error("{path} is not a service model: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One way a response breaks the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path, e.g. `$.builds[0].buildStatus`.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// A loaded service model.
#[derive(Debug, Clone)]
pub struct ServiceModel {
    shapes: Map<String, Value>,
    operations: Map<String, Value>,
}

impl ServiceModel {
    /// The model at `$CODEBUILD_SERVICE_MODEL`, else in `<workspace>/.venv`'s botocore.
    pub fn locate() -> Result<PathBuf, ModelError> {
        if let Ok(path) = std::env::var(MODEL_ENV) {
            let path = PathBuf::from(path);
            if path.is_file() {
                return Ok(path);
            }
            return Err(ModelError::NotFound(format!(
                "{MODEL_ENV}={}",
                path.display()
            )));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let lib = root.join(".venv/lib");
        let mut looked = vec![lib.display().to_string()];
        if let Ok(entries) = std::fs::read_dir(&lib) {
            for entry in entries.flatten() {
                let dir = entry
                    .path()
                    .join("site-packages/botocore/data/codebuild/2016-10-06");
                for name in ["service-2.json.gz", "service-2.json"] {
                    let candidate = dir.join(name);
                    if candidate.is_file() {
                        return Ok(candidate);
                    }
                    looked.push(candidate.display().to_string());
                }
            }
        }
        Err(ModelError::NotFound(looked.join(", ")))
    }

    /// Loads a model file, gzipped or not.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let text = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = String::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_string(&mut out)
                .map_err(io)?;
            out
        } else {
            String::from_utf8(bytes).map_err(|e| ModelError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
        };
        let json: Value = serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_json(json).ok_or_else(|| ModelError::Invalid {
            path: path.to_owned(),
            reason: "no `shapes` or `operations`".into(),
        })
    }

    /// A model from its parsed JSON (`None` without `shapes` and `operations`).
    pub fn from_json(json: Value) -> Option<Self> {
        let shapes = json.get("shapes")?.as_object()?.clone();
        let operations = json.get("operations")?.as_object()?.clone();
        Some(Self { shapes, operations })
    }

    /// Names of every operation in the model.
    pub fn operation_names(&self) -> Vec<String> {
        self.operations.keys().cloned().collect()
    }

    /// The output shape of `operation`.
    pub fn output_shape(&self, operation: &str) -> Option<&str> {
        self.operations
            .get(operation)?
            .get("output")?
            .get("shape")?
            .as_str()
    }

    /// Checks `response` against the output shape of `operation`.
    pub fn validate_output(&self, operation: &str, response: &Value) -> Vec<Violation> {
        match self.output_shape(operation) {
            Some(shape) => self.validate(shape, response),
            None => vec![Violation {
                path: "$".into(),
                problem: format!("operation {operation} has no output shape"),
            }],
        }
    }

    /// Checks `value` against shape `shape`.
    pub fn validate(&self, shape: &str, value: &Value) -> Vec<Violation> {
        let mut violations = Vec::new();
        self.check(shape, value, "$", &mut violations);
        violations
    }

    fn check(&self, shape_name: &str, value: &Value, path: &str, out: &mut Vec<Violation>) {
        let mut fail = |problem: String| {
            out.push(Violation {
                path: path.to_owned(),
                problem,
            })
        };
        let Some(shape) = self.shapes.get(shape_name) else {
            fail(format!("shape {shape_name} missing from the model"));
            return;
        };
        let kind = shape
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if value.is_null() {
            // JSON null for an optional member is what an absent member means to the SDK.
            return;
        }
        match kind {
            "structure" => {
                let Some(object) = value.as_object() else {
                    fail(format!("expected structure {shape_name}, got {value}"));
                    return;
                };
                let members = shape.get("members").and_then(Value::as_object);
                for required in shape
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = required.as_str()
                        && object.get(name).is_none_or(Value::is_null)
                    {
                        fail(format!("required member {name} of {shape_name} is missing"));
                    }
                }
                for (name, member_value) in object {
                    let target = members
                        .and_then(|m| m.get(name))
                        .and_then(|m| m.get("shape"))
                        .and_then(Value::as_str);
                    match target {
                        Some(target) => {
                            self.check(target, member_value, &format!("{path}.{name}"), out)
                        }
                        None => out.push(Violation {
                            path: format!("{path}.{name}"),
                            problem: format!("unknown member {name} of {shape_name}"),
                        }),
                    }
                }
            }
            "list" => {
                let Some(items) = value.as_array() else {
                    fail(format!("expected list {shape_name}, got {value}"));
                    return;
                };
                let Some(member) = shape
                    .get("member")
                    .and_then(|m| m.get("shape"))
                    .and_then(Value::as_str)
                else {
                    return;
                };
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{path}[{i}]"), out);
                }
            }
            "map" => {
                let Some(object) = value.as_object() else {
                    fail(format!("expected map {shape_name}, got {value}"));
                    return;
                };
                let value_shape = shape
                    .get("value")
                    .and_then(|m| m.get("shape"))
                    .and_then(Value::as_str);
                for (key, item) in object {
                    if let Some(value_shape) = value_shape {
                        self.check(value_shape, item, &format!("{path}.{key}"), out);
                    }
                }
            }
            "string" | "blob" => match value.as_str() {
                None => fail(format!("expected string ({shape_name}), got {value}")),
                Some(s) => {
                    let allowed = shape.get("enum").and_then(Value::as_array);
                    if let Some(allowed) = allowed
                        && !allowed.iter().any(|a| a.as_str() == Some(s))
                    {
                        fail(format!("{s:?} is not a value of enum {shape_name}"));
                    }
                }
            },
            "integer" | "long" => {
                if !(value.is_i64() || value.is_u64()) {
                    fail(format!("expected {kind} ({shape_name}), got {value}"));
                }
            }
            "double" | "float" => {
                if !value.is_number() {
                    fail(format!("expected {kind} ({shape_name}), got {value}"));
                }
            }
            "boolean" => {
                if !value.is_boolean() {
                    fail(format!("expected boolean ({shape_name}), got {value}"));
                }
            }
            // AWS JSON 1.1 sends timestamps as epoch seconds.
            "timestamp" => {
                if !value.is_number() {
                    fail(format!(
                        "expected epoch-seconds timestamp ({shape_name}), got {value}"
                    ));
                }
            }
            other => fail(format!("unsupported shape type {other} ({shape_name})")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn model() -> ServiceModel {
        ServiceModel::from_json(json!({
            "operations": {"Get": {"output": {"shape": "Out"}}},
            "shapes": {
                "Out": {"type": "structure", "required": ["id"], "members": {
                    "id": {"shape": "Str"}, "n": {"shape": "Long"}, "status": {"shape": "Status"},
                    "items": {"shape": "Items"}, "at": {"shape": "Ts"}, "ok": {"shape": "Bool"}}},
                "Str": {"type": "string"},
                "Long": {"type": "long"},
                "Bool": {"type": "boolean"},
                "Ts": {"type": "timestamp"},
                "Status": {"type": "string", "enum": ["A", "B"]},
                "Items": {"type": "list", "member": {"shape": "Str"}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_response_passes() {
        let ok = json!({"id": "x", "n": 3, "status": "A", "items": ["a"], "at": 1.5, "ok": true});
        assert_eq!(model().validate_output("Get", &ok), vec![]);
    }

    #[test]
    fn broken_responses_fail() {
        let m = model();
        let cases = [
            (json!({"id": "x", "n": "3"}), "expected long"),
            (json!({"id": "x", "nn": 3}), "unknown member nn"),
            (json!({"id": "x", "status": "C"}), "not a value of enum"),
            (json!({"n": 3}), "required member id"),
            (json!({"id": "x", "items": [1]}), "expected string"),
            (json!({"id": "x", "at": "2020-01-01"}), "timestamp"),
            (json!({"id": "x", "ok": "yes"}), "expected boolean"),
        ];
        for (response, expected) in cases {
            let violations = m.validate_output("Get", &response);
            assert!(
                violations.iter().any(|v| v.problem.contains(expected)),
                "{response} should fail with {expected:?}, got {violations:?}"
            );
        }
    }
}
