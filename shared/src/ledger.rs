//! The idempotency ledger (see `design/idempotency.md`, layer 2): one durable record per intended
//! mutation, so an input delivered again after CodeBuild's five-minute token window still causes
//! no second mutation.
//!
//! The protocol is claim → call CodeBuild → complete (or release / fail). This module holds the
//! pure part: keys, the claim request and the held claim, the record a lost claim reads back, the
//! decision it leads to, the error type, and the [`Ledger`] port. `aws::DynamoLedger` implements
//! the port over DynamoDB.
//!
//! Time is always passed in (`now`), never read here, so tests can move it.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::idempotency::IdempotencyKey;

/// How long a completed record is kept by default (DynamoDB TTL): longer than any redelivery we
/// know of (EventBridge retries for 24 h, GitHub lets people redeliver by hand for 3 days).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The ledger item's partition key: one item per (operation, identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LedgerKey(String);

impl LedgerKey {
    /// A key from an operation name and an identity. Neither may be empty; `#` separates them
    /// and the identity comes last, so the joined text is unambiguous.
    pub fn new(operation: &str, identity: &str) -> Result<Self, LedgerError> {
        if operation.is_empty() || identity.is_empty() || operation.contains('#') {
            return Err(LedgerError::InvalidKey {
                operation: operation.to_owned(),
                identity: identity.to_owned(),
            });
        }
        Ok(Self(format!("{operation}#{identity}")))
    }

    /// The key of the mutation an [`IdempotencyKey`] names: its operation, project and token.
    /// The token (a digest), not the raw identity, is stored, so an ops API caller's
    /// `Idempotency-Key` header value never lands in the table.
    pub fn for_mutation(key: &IdempotencyKey) -> Self {
        Self(format!(
            "{}#{}#{}",
            key.operation().as_str(),
            key.project(),
            key.token()
        ))
    }

    /// The key text (the item's `pk`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// sha256 (hex) of the CodeBuild request parameters a claim is for — never of transport details
/// such as a provider's attempt-number header, or a redelivery would look like another request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadHash(String);

impl PayloadHash {
    /// The hash of the canonical text of the request parameters.
    pub fn of(canonical_parameters: &str) -> Self {
        Self(hex::encode(Sha256::digest(canonical_parameters.as_bytes())))
    }

    /// The hash of a JSON value, with object keys sorted first: `serde_json`'s
    /// `preserve_order` feature is switched on in this build by another crate, so the plain text
    /// of two equal values can differ.
    pub fn of_json(parameters: &serde_json::Value) -> Self {
        let mut canonical = String::new();
        write_canonical(parameters, &mut canonical);
        Self::of(&canonical)
    }

    /// A hash read back from the ledger, as stored.
    pub fn from_stored(hex: &str) -> Self {
        Self(hex.to_owned())
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request to claim a key: "I am about to make this mutation".
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// What is claimed.
    pub key: LedgerKey,
    /// What exactly will be asked of CodeBuild.
    pub payload_hash: PayloadHash,
    /// The current time.
    pub now: DateTime<Utc>,
    /// How long the claim holds if never completed: the invocation's remaining time, kept well
    /// under CodeBuild's five-minute token window so a redelivery after a crash reuses the token.
    pub lease: Duration,
    /// How long the record is kept (DynamoDB TTL).
    pub retention: Duration,
}

impl ClaimRequest {
    /// A claim of `key` for `payload_hash` at `now`, held for `lease`, kept for
    /// [`DEFAULT_RETENTION`].
    pub fn new(
        key: LedgerKey,
        payload_hash: PayloadHash,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Self {
        Self {
            key,
            payload_hash,
            now,
            lease,
            retention: DEFAULT_RETENTION,
        }
    }

    /// Epoch milliseconds until which the claim holds.
    pub fn in_progress_until_ms(&self) -> i64 {
        epoch_ms(self.now).saturating_add(duration_ms(self.lease))
    }

    /// Epoch seconds after which the record is expired (the TTL attribute, which DynamoDB
    /// requires in seconds).
    pub fn expires_at_s(&self) -> i64 {
        self.now
            .timestamp()
            .saturating_add(i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A claim that was won: proof of ownership for [`Ledger::complete`], [`Ledger::release`] and
/// [`Ledger::fail`]. The claim id is random per claim, so an invocation whose lease ran out and
/// whose key was claimed again cannot complete or delete the new owner's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The key held.
    pub key: LedgerKey,
    /// This claim's unique id, stored in the record.
    pub claim_id: String,
    /// Epoch milliseconds until which it holds.
    pub in_progress_until_ms: i64,
}

/// The state of a ledger record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// Claimed; the mutation may be under way.
    InProgress,
    /// Done; the result is stored.
    Completed,
    /// Failed in a way retrying cannot fix; the reason is stored.
    Failed,
}

impl RecordStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    /// Reads the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A record as read back when a claim is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRecord {
    /// Its state.
    pub status: RecordStatus,
    /// The hash of the request the holder claimed for.
    pub payload_hash: PayloadHash,
    /// Epoch milliseconds until which an `IN_PROGRESS` claim holds.
    pub in_progress_until_ms: i64,
    /// The stored result of a `COMPLETED` record.
    pub result: Option<serde_json::Value>,
    /// The reason of a `FAILED` record.
    pub reason: Option<String>,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The key is ours: make the mutation, then complete, release or fail the claim.
    Won(Claim),
    /// Already done: answer with the stored result and act no more.
    Completed(serde_json::Value),
    /// Someone else holds the key (HTTP 409, or a retryable error for an event).
    InProgress {
        /// Epoch milliseconds until which their claim holds.
        until_ms: i64,
    },
    /// The same key was claimed for another request (HTTP 422); never overwrite it.
    PayloadMismatch,
    /// The mutation failed before in a way retrying cannot fix: do not call CodeBuild again.
    Failed {
        /// The stored reason.
        reason: String,
    },
}

/// What a lost claim means, from the record that beat it.
pub fn outcome_of_lost_claim(
    record: LedgerRecord,
    payload_hash: &PayloadHash,
) -> Result<ClaimOutcome, LedgerError> {
    // A different request under the same key is a conflict whatever state the record is in:
    // answering it with another request's result would be a silent lie.
    if &record.payload_hash != payload_hash {
        return Ok(ClaimOutcome::PayloadMismatch);
    }
    match record.status {
        RecordStatus::InProgress => Ok(ClaimOutcome::InProgress {
            until_ms: record.in_progress_until_ms,
        }),
        RecordStatus::Completed => {
            record
                .result
                .map(ClaimOutcome::Completed)
                .ok_or_else(|| LedgerError::Malformed {
                    message: "a COMPLETED record without a result".to_owned(),
                })
        }
        RecordStatus::Failed => Ok(ClaimOutcome::Failed {
            reason: record.reason.unwrap_or_default(),
        }),
    }
}

/// Every way a ledger call fails, and whether trying again can help. Callers fail closed: no
/// mutation without a won claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The ledger did not answer (connection refused, timeout) or answered with a 5xx.
    #[error("ledger {operation} unavailable: {message}")]
    Unavailable {
        /// The DynamoDB operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The ledger throttled the call.
    #[error("ledger {operation} throttled: {message}")]
    Throttled {
        /// The DynamoDB operation.
        operation: &'static str,
        /// DynamoDB's message.
        message: String,
    },
    /// A claim lost, yet the record that beat it was gone when read (deleted in between):
    /// claiming again will decide.
    #[error("ledger record for {key} changed while it was read")]
    Contended {
        /// The key.
        key: LedgerKey,
    },
    /// The claim is no longer ours (its lease ran out and someone else claimed the key, or the
    /// record was completed, released or failed already).
    #[error("claim on {key} is no longer held")]
    ClaimLost {
        /// The key.
        key: LedgerKey,
    },
    /// A key with an empty part or a separator in the operation.
    #[error("invalid ledger key: operation {operation:?}, identity {identity:?}")]
    InvalidKey {
        /// The operation given.
        operation: String,
        /// The identity given.
        identity: String,
    },
    /// A stored record we cannot read.
    #[error("malformed ledger record: {message}")]
    Malformed {
        /// What is wrong with it.
        message: String,
    },
    /// Anything else (a missing table, a validation error, an unknown error code).
    #[error("ledger {operation} failed ({code:?}): {message}")]
    Unexpected {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The error code, when there was one.
        code: Option<String>,
        /// What went wrong.
        message: String,
    },
}

impl LedgerError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Throttled { .. } | Self::Contended { .. } => true,
            Self::ClaimLost { .. }
            | Self::InvalidKey { .. }
            | Self::Malformed { .. }
            | Self::Unexpected { .. } => false,
        }
    }
}

/// The durable ledger: claim → (call CodeBuild) → complete, release or fail.
pub trait Ledger: Send + Sync {
    /// Claims a key: wins when no live record holds it (none, expired, or an in-progress claim
    /// whose lease ran out); otherwise says what the record holds.
    fn claim(
        &self,
        request: &ClaimRequest,
    ) -> impl Future<Output = Result<ClaimOutcome, LedgerError>> + Send;
    /// Records the mutation's result, if the claim is still ours.
    fn complete(
        &self,
        claim: &Claim,
        result: &serde_json::Value,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Gives the key up after a failure that retrying can fix, if the claim is still ours, so
    /// the redelivery can claim it at once.
    fn release(&self, claim: &Claim) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Records a failure that retrying cannot fix, if the claim is still ours, so a redelivery
    /// does not hammer CodeBuild.
    fn fail(
        &self,
        claim: &Claim,
        reason: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

/// Compact JSON text with every object's keys in sorted order.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Epoch milliseconds of `time`.
pub fn epoch_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::BuildId;
    use serde_json::json;

    const UUID: &str = "8745a7a9-c340-456a-9166-edf953571bEX";

    fn record(status: RecordStatus, hash: &str) -> LedgerRecord {
        LedgerRecord {
            status,
            payload_hash: PayloadHash::from_stored(hash),
            in_progress_until_ms: 42,
            result: None,
            reason: None,
        }
    }

    #[test]
    fn key_for_a_mutation_names_operation_project_and_token_only() {
        let root = BuildId::parse(&format!("proj:{UUID}")).unwrap();
        let idem = IdempotencyKey::for_retry(&root, 1);
        let key = LedgerKey::for_mutation(&idem);
        assert_eq!(key.as_str(), format!("RetryBuild#proj#{}", idem.token()));
        assert_ne!(
            key,
            LedgerKey::for_mutation(&IdempotencyKey::for_retry(&root, 2))
        );
    }

    #[test]
    fn ops_header_value_never_reaches_the_key() {
        let idem = IdempotencyKey::for_ops(
            crate::idempotency::Operation::StartBuildBatch,
            "proj",
            "secret-header-value",
            "/batches",
            "alice",
        );
        assert!(
            !LedgerKey::for_mutation(&idem)
                .as_str()
                .contains("secret-header-value")
        );
    }

    #[test]
    fn plain_keys_reject_empty_parts_and_ambiguous_operations() {
        assert_eq!(
            LedgerKey::new("lineage", "proj:1").unwrap().as_str(),
            "lineage#proj:1"
        );
        assert!(LedgerKey::new("", "x").is_err());
        assert!(LedgerKey::new("op", "").is_err());
        assert!(LedgerKey::new("a#b", "c").is_err());
    }

    #[test]
    fn payload_hash_is_sha256_hex_and_json_key_order_does_not_matter() {
        assert_eq!(
            PayloadHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(PayloadHash::of_json(&a), PayloadHash::of_json(&b));
        assert_ne!(
            PayloadHash::of_json(&a),
            PayloadHash::of_json(&json!({"a": 3}))
        );
    }

    #[test]
    fn claim_times_follow_now_lease_and_retention() {
        let now = DateTime::from_timestamp(1_700_000_000, 500_000_000).unwrap();
        let request = ClaimRequest::new(
            LedgerKey::new("op", "id").unwrap(),
            PayloadHash::of("p"),
            now,
            Duration::from_secs(90),
        );
        assert_eq!(request.in_progress_until_ms(), 1_700_000_090_500);
        assert_eq!(request.expires_at_s(), 1_700_000_000 + 7 * 24 * 3600);
    }

    #[test]
    fn status_text_round_trips() {
        for status in [
            RecordStatus::InProgress,
            RecordStatus::Completed,
            RecordStatus::Failed,
        ] {
            assert_eq!(RecordStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RecordStatus::parse("in_progress"), None);
    }

    #[test]
    fn lost_claim_outcomes() {
        let mine = PayloadHash::from_stored("h1");
        assert_eq!(
            outcome_of_lost_claim(record(RecordStatus::InProgress, "h1"), &mine).unwrap(),
            ClaimOutcome::InProgress { until_ms: 42 }
        );
        let mut done = record(RecordStatus::Completed, "h1");
        done.result = Some(json!({"build": "proj:2"}));
        assert_eq!(
            outcome_of_lost_claim(done, &mine).unwrap(),
            ClaimOutcome::Completed(json!({"build": "proj:2"}))
        );
        let mut failed = record(RecordStatus::Failed, "h1");
        failed.reason = Some("invalid input".to_owned());
        assert_eq!(
            outcome_of_lost_claim(failed, &mine).unwrap(),
            ClaimOutcome::Failed {
                reason: "invalid input".to_owned()
            }
        );
        for status in [
            RecordStatus::InProgress,
            RecordStatus::Completed,
            RecordStatus::Failed,
        ] {
            assert_eq!(
                outcome_of_lost_claim(record(status, "h2"), &mine).unwrap(),
                ClaimOutcome::PayloadMismatch,
                "{status:?}"
            );
        }
        let err = outcome_of_lost_claim(record(RecordStatus::Completed, "h1"), &mine).unwrap_err();
        assert!(matches!(err, LedgerError::Malformed { .. }));
    }

    #[test]
    fn retryability_per_variant() {
        let key = || LedgerKey::new("op", "id").unwrap();
        let retryable = [
            LedgerError::Unavailable {
                operation: "PutItem",
                message: String::new(),
            },
            LedgerError::Throttled {
                operation: "PutItem",
                message: String::new(),
            },
            LedgerError::Contended { key: key() },
        ];
        let permanent = [
            LedgerError::ClaimLost { key: key() },
            LedgerError::Malformed {
                message: String::new(),
            },
            LedgerError::Unexpected {
                operation: "PutItem",
                code: None,
                message: String::new(),
            },
            LedgerError::InvalidKey {
                operation: String::new(),
                identity: String::new(),
            },
        ];
        assert!(retryable.iter().all(LedgerError::is_retryable));
        assert!(!permanent.iter().any(LedgerError::is_retryable));
    }
}
