//! The CLI's idempotency keys: what makes one command's mutation distinct, fed to the crate's
//! one token derivation ([`IdempotencyKey`]). Given with `--idempotency-key`, else derived from
//! the command's input, so the same command run twice within CodeBuild's five-minute token
//! window mutates once.

use autopilot::idempotency::{IdempotencyKey, Operation};
use autopilot::ledger::PayloadHash;
use autopilot::model::BuildId;
use serde_json::Value;

use crate::error::CliError;

/// Longest `--idempotency-key` (as the ops API's `Idempotency-Key` header).
pub const MAX_KEY_LEN: usize = 255;

/// Checks a `--idempotency-key`: 1 to 255 printable ASCII characters.
pub fn check_given(key: &str) -> Result<(), CliError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::Usage(format!(
            "--idempotency-key must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

/// The key of retrying `build`: the given key, else the build (`project:uuid`, so the id and
/// the ARN name one retry).
pub fn for_retry(build: &BuildId, given: Option<&str>) -> Result<IdempotencyKey, CliError> {
    let identity = match given {
        Some(key) => {
            check_given(key)?;
            format!("cli|key|{key}")
        }
        None => format!("cli|build|{}", build.id()),
    };
    Ok(IdempotencyKey::new(
        Operation::RetryBuild,
        build.project(),
        &identity,
    ))
}

/// The key of starting a batch of `project`: the given key, else a digest of `parameters`
/// (everything sent to CodeBuild besides the project).
pub fn for_start(
    project: &str,
    parameters: &Value,
    given: Option<&str>,
) -> Result<IdempotencyKey, CliError> {
    let identity = match given {
        Some(key) => {
            check_given(key)?;
            format!("cli|key|{key}")
        }
        None => {
            // The ledger's canonical hash: key order in `parameters` does not matter.
            let digest = PayloadHash::of_json(parameters);
            format!("cli|parameters|{}", digest.as_str())
        }
    };
    Ok(IdempotencyKey::new(
        Operation::StartBuildBatch,
        project,
        &identity,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const UUID: &str = "8745a7a9-c340-456a-9166-edf953571bEX";

    #[test]
    fn a_retry_of_one_build_has_one_token_whatever_its_spelling() {
        let id = BuildId::parse(&format!("web:{UUID}")).unwrap();
        let arn = BuildId::parse(&format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/web:{UUID}"
        ))
        .unwrap();
        let a = for_retry(&id, None).unwrap().token();
        assert_eq!(a, for_retry(&arn, None).unwrap().token());
        // A given key makes another retry; the same given key the same one.
        let keyed = for_retry(&id, Some("incident-42")).unwrap().token();
        assert_ne!(a, keyed);
        assert_eq!(keyed, for_retry(&arn, Some("incident-42")).unwrap().token());
    }

    #[test]
    fn other_parameters_make_another_start() {
        let a = json!({"sourceVersion": "main"});
        let b = json!({"sourceVersion": "release"});
        let token = |p: &Value, k| for_start("web", p, k).unwrap().token();
        assert_eq!(token(&a, None), token(&a.clone(), None));
        assert_ne!(token(&a, None), token(&b, None));
        assert_ne!(token(&a, None), for_start("api", &a, None).unwrap().token());
        assert_eq!(token(&a, Some("k")), token(&b, Some("k")));
    }

    #[test]
    fn a_bad_key_is_a_usage_error() {
        let id = BuildId::parse(&format!("web:{UUID}")).unwrap();
        for bad in ["", "has space", "tab\t", &"x".repeat(256), "é"] {
            assert!(
                matches!(for_retry(&id, Some(bad)), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(for_retry(&id, Some(&"x".repeat(255))).is_ok());
    }
}
