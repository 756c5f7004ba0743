//! Idempotency tokens for CodeBuild's five-minute window (see `design/idempotency.md`).
//!
//! `token = hex(sha256(operation | project | identity))[..TOKEN_LEN]`: a pure function of the
//! input's identity, never of time or randomness, so a redelivered input yields the same token.

use sha2::{Digest, Sha256};

use crate::model::{BatchId, BuildId};

/// Hex characters kept from the digest: 128 bits, far from collisions, well under CodeBuild's
/// token length limit.
pub const TOKEN_LEN: usize = 32;

/// The mutating CodeBuild operations that take a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `RetryBuild`.
    RetryBuild,
    /// `RetryBuildBatch`.
    RetryBuildBatch,
    /// `StartBuildBatch`.
    StartBuildBatch,
    /// `StartBuild`.
    StartBuild,
}

impl Operation {
    /// The API name, used in the digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryBuild => "RetryBuild",
            Self::RetryBuildBatch => "RetryBuildBatch",
            Self::StartBuildBatch => "StartBuildBatch",
            Self::StartBuild => "StartBuild",
        }
    }
}

/// The identity of one intended mutation: operation, project and what makes the input distinct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    operation: Operation,
    project: String,
    identity: String,
}

/// The token sent to CodeBuild as `idempotencyToken`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyToken(String);

impl IdempotencyToken {
    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl IdempotencyKey {
    /// A key from its three parts (prefer the named constructors).
    pub fn new(operation: Operation, project: &str, identity: &str) -> Self {
        Self {
            operation,
            project: project.to_owned(),
            identity: identity.to_owned(),
        }
    }

    /// Auto-retry number `attempt` of the chain rooted at `root`. The identity uses the
    /// `project:uuid` form, so the root given as an ARN or as an id gives the same token.
    pub fn for_retry(root: &BuildId, attempt: u32) -> Self {
        Self::new(
            Operation::RetryBuild,
            root.project(),
            &format!("{}#{attempt}", root.id()),
        )
    }

    /// Batch retry number `attempt` of `batch`.
    pub fn for_batch_retry(batch: &BatchId, attempt: u32) -> Self {
        Self::new(
            Operation::RetryBuildBatch,
            batch.project(),
            &format!("{}#{attempt}", batch.id()),
        )
    }

    /// A batch started by a webhook delivery (`change_index` for multi-change pushes).
    pub fn for_webhook_start(
        provider: &str,
        delivery_id: &str,
        project: &str,
        change_index: Option<u32>,
    ) -> Self {
        let change = change_index.map_or_else(String::new, |i| format!("#{i}"));
        Self::new(
            Operation::StartBuildBatch,
            project,
            &format!("{provider}|{delivery_id}{change}"),
        )
    }

    /// A batch started by an EventBridge trigger event.
    pub fn for_trigger_start(event_id: &str, project: &str) -> Self {
        Self::new(Operation::StartBuildBatch, project, event_id)
    }

    /// A mutation requested through the ops API: the caller's `Idempotency-Key` header, the
    /// route and the caller. Only the digest reaches CodeBuild, never the raw header value.
    pub fn for_ops(
        operation: Operation,
        project: &str,
        header_key: &str,
        route: &str,
        caller: &str,
    ) -> Self {
        Self::new(
            operation,
            project,
            &format!("ops|{route}|{caller}|{header_key}"),
        )
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The token: `hex(sha256(operation | project | identity))[..TOKEN_LEN]`. Project names
    /// cannot contain `|` and the identity comes last, so the joined text is unambiguous.
    pub fn token(&self) -> IdempotencyToken {
        let mut hasher = Sha256::new();
        hasher.update(self.operation.as_str().as_bytes());
        hasher.update(b"|");
        hasher.update(self.project.as_bytes());
        hasher.update(b"|");
        hasher.update(self.identity.as_bytes());
        let mut hex = hex::encode(hasher.finalize());
        hex.truncate(TOKEN_LEN);
        IdempotencyToken(hex)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashSet;

    const UUID: &str = "8745a7a9-c340-456a-9166-edf953571bEX";

    fn root() -> BuildId {
        BuildId::parse(&format!("proj:{UUID}")).unwrap()
    }

    #[test]
    fn token_is_a_pure_function_of_the_key() {
        let a = IdempotencyKey::for_retry(&root(), 1).token();
        let b = IdempotencyKey::for_retry(&root(), 1).token();
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn token_matches_the_documented_formula() {
        let expected = hex::encode(Sha256::digest(
            format!("RetryBuild|proj|proj:{UUID}#2").as_bytes(),
        ));
        assert_eq!(
            IdempotencyKey::for_retry(&root(), 2).token().as_str(),
            &expected[..TOKEN_LEN]
        );
    }

    #[test]
    fn root_given_as_arn_or_id_gives_one_token() {
        let arn = BuildId::parse(&format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/proj:{UUID}"
        ))
        .unwrap();
        assert_eq!(
            IdempotencyKey::for_retry(&arn, 1).token(),
            IdempotencyKey::for_retry(&root(), 1).token()
        );
    }

    #[test]
    fn distinct_inputs_give_distinct_tokens() {
        let other_root = BuildId::parse("proj:00000000-0000-4000-8000-000000000001").unwrap();
        let batch = BatchId::parse(&format!("proj:{UUID}")).unwrap();
        let keys = [
            IdempotencyKey::for_retry(&root(), 1),
            IdempotencyKey::for_retry(&root(), 2),
            IdempotencyKey::for_retry(&other_root, 1),
            IdempotencyKey::for_batch_retry(&batch, 1),
            IdempotencyKey::for_webhook_start("github", "d1", "proj", None),
            IdempotencyKey::for_webhook_start("github", "d1", "proj", Some(0)),
            IdempotencyKey::for_webhook_start("github", "d1", "proj2", None),
            IdempotencyKey::for_webhook_start("gitlab", "d1", "proj", None),
            IdempotencyKey::for_trigger_start("e1", "proj"),
            IdempotencyKey::for_trigger_start("e2", "proj"),
            IdempotencyKey::new(Operation::StartBuild, "proj", "e1"),
            IdempotencyKey::for_ops(
                Operation::RetryBuild,
                "proj",
                "k1",
                "POST /builds/x/retry",
                "alice",
            ),
            IdempotencyKey::for_ops(
                Operation::RetryBuild,
                "proj",
                "k1",
                "POST /builds/x/retry",
                "bob",
            ),
            IdempotencyKey::for_ops(
                Operation::RetryBuild,
                "proj",
                "k2",
                "POST /builds/x/retry",
                "alice",
            ),
        ];
        let tokens: HashSet<_> = keys.iter().map(IdempotencyKey::token).collect();
        assert_eq!(tokens.len(), keys.len());
    }

    #[test]
    fn ops_token_never_carries_the_raw_header() {
        let token =
            IdempotencyKey::for_ops(Operation::RetryBuild, "proj", "secret-key-1", "r", "c")
                .token();
        assert!(!token.as_str().contains("secret"));
    }
}
