//! The `Idempotency-Key` of the mutating routes: one outer ledger record per (caller, key) that
//! keeps the first answer.
//!
//! The record's key is `ops-request#hex(sha256(caller | key))` (the header value never lands in
//! the table); its payload hash covers the method, the route template, the path ids and the
//! canonical body. Claim → act → complete with `{"status": n, "body": {...}}`:
//! - the same key with the same request → the stored status and body again, nothing called;
//! - the same key with another request → 422;
//! - the first still in flight → 409;
//! - an answer retrying can change (429, 5xx, the inner start in flight) releases the record,
//!   so the caller can send the same key again; any other answer (2xx, 4xx) is kept.
//!
//! CodeBuild's token is derived separately (`IdempotencyKey::for_ops`), so a crash between the
//! call and completing is covered by CodeBuild's five-minute window as for every other mutation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::caller::Caller;
use super::ledger_unavailable;
use crate::http::ApiError;
use crate::ledger::{ClaimOutcome, ClaimRequest, Ledger, LedgerKey, PayloadHash};

/// The header every mutating route requires.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// The ledger operation of the outer records.
pub const OPS_REQUEST_OPERATION: &str = "ops-request";
/// Failpoint step just after the outer record was claimed, before anything is called (see
/// [`crate::failpoint`]): a crash there leaves the record in flight until its lease ends.
pub const FAILPOINT_AFTER_CLAIM: &str = "ops-api:after-claim";

/// A valid `Idempotency-Key` header value: 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyHeader(String);

impl std::fmt::Debug for IdempotencyHeader {
    // The value is the caller's secret-ish handle on a request: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyHeader(..)")
    }
}

impl IdempotencyHeader {
    /// Reads and checks the header; 400 when missing, repeated or malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::BadRequest(format!(
                "exactly one Idempotency-Key header is required \
                 (1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters)"
            )));
        };
        Self::parse(value.as_bytes())
    }

    /// Checks one header value.
    pub fn parse(value: &[u8]) -> Result<Self, ApiError> {
        let printable = value.iter().all(|b| (0x20..=0x7e).contains(b));
        if value.is_empty() || value.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
            return Err(ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII \
                 characters"
            )));
        }
        // Printable ASCII is valid UTF-8.
        Ok(Self(String::from_utf8_lossy(value).into_owned()))
    }

    /// The value (for the CodeBuild token derivation only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The outer record of one request: where it lives and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsRequest {
    /// `ops-request#hex(sha256(caller|key))`.
    pub key: LedgerKey,
    /// sha256 of the request's fingerprint (method, route template, path ids, canonical body).
    pub payload: PayloadHash,
}

impl OpsRequest {
    /// The record of `caller`'s request under `header`, whose fingerprint is `fingerprint`.
    pub fn new(
        caller: &Caller,
        header: &IdempotencyHeader,
        fingerprint: &Value,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            key: Self::ledger_key(caller, header)?,
            payload: PayloadHash::of_json(fingerprint),
        })
    }

    /// The ledger key of `caller`'s requests under `header`.
    pub fn ledger_key(caller: &Caller, header: &IdempotencyHeader) -> Result<LedgerKey, ApiError> {
        let mut digest = Sha256::new();
        digest.update(caller.as_str().as_bytes());
        digest.update(b"|");
        digest.update(header.as_str().as_bytes());
        LedgerKey::new(OPS_REQUEST_OPERATION, &hex::encode(digest.finalize()))
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// The fingerprint of a request: what its payload hash covers.
pub fn fingerprint(method: &str, template: &str, path_ids: Value, body: Value) -> Value {
    json!({"method": method, "route": template, "path": path_ids, "body": body})
}

/// What acting on a request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Acted {
    /// An answer to keep: the same key and request get it again.
    Answer(StatusCode, Value),
    /// A failure retrying may cure: the record is released and the caller told why.
    Retryable(ApiError),
}

impl Acted {
    /// A kept answer from an error that retrying cannot change.
    pub fn error(err: ApiError) -> Self {
        let status = err.status();
        Self::Answer(status, err.body())
    }

    /// An error, kept or released by its status: 429 and 5xx release.
    pub fn from_error(err: ApiError) -> Self {
        let status = err.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Self::Retryable(err)
        } else {
            Self::error(err)
        }
    }
}

/// When a request runs: now, and the lease its claim holds if it never completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The current time.
    pub now: DateTime<Utc>,
    /// How long the claim holds (under the invocation's remaining time).
    pub lease: Duration,
}

/// Runs `act` at most once per (caller, key, request) and answers as the first time did.
pub async fn once<L, F, Fut>(
    ledger: &L,
    request: &OpsRequest,
    lease: Lease,
    act: F,
) -> Result<(StatusCode, Value), ApiError>
where
    L: Ledger,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Acted>,
{
    let claim_request = ClaimRequest::new(
        request.key.clone(),
        request.payload.clone(),
        lease.now,
        lease.lease,
    );
    let claim = match ledger
        .claim(&claim_request)
        .await
        .map_err(ledger_unavailable)?
    {
        ClaimOutcome::Won(claim) => claim,
        ClaimOutcome::Completed(stored) => {
            tracing::info!(action = "replayed", reason = "idempotency_key_seen", key = %request.key,
                "answering with the stored first answer");
            return replay(&stored);
        }
        ClaimOutcome::InProgress { .. } => {
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still in flight; try again shortly".into(),
            ));
        }
        ClaimOutcome::PayloadMismatch => {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was used for another request (method, route, ids or body \
                 differ); use a new key"
                    .into(),
            ));
        }
        ClaimOutcome::Failed { reason } => {
            // This module never records FAILED; a record that says so was written by hand.
            return Err(ApiError::Internal(format!(
                "the request under this Idempotency-Key is recorded as failed: {reason}"
            )));
        }
    };
    crate::failpoint::failpoint(FAILPOINT_AFTER_CLAIM);
    match act().await {
        Acted::Answer(status, body) => {
            let stored = json!({"status": status.as_u16(), "body": body});
            if let Err(err) = ledger.complete(&claim, &stored).await {
                // The mutation happened: answer it. The claim runs out with its lease; a retry
                // with the same key then acts again with the same CodeBuild token, which
                // CodeBuild answers with this same result inside its five-minute window.
                tracing::warn!(action = "not_recorded", key = %request.key, error = %err,
                    "could not store the ops answer");
            }
            Ok((status, body))
        }
        Acted::Retryable(err) => {
            if let Err(release) = ledger.release(&claim).await {
                tracing::warn!(key = %request.key, error = %release,
                    "could not release the ops claim; it runs out with its lease");
            }
            Err(err)
        }
    }
}

/// The stored `{status, body}` as the answer.
fn replay(stored: &Value) -> Result<(StatusCode, Value), ApiError> {
    let status = stored["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    match (status, stored.get("body")) {
        (Some(status), Some(body)) => Ok((status, body.clone())),
        _ => Err(ApiError::Internal(
            "the stored answer of this Idempotency-Key is unreadable".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testing::{FakeLedger, now};
    use lambda_http::http::HeaderValue;

    fn header(value: &str) -> IdempotencyHeader {
        IdempotencyHeader::parse(value.as_bytes()).unwrap()
    }

    #[test]
    fn header_is_one_to_255_printable_ascii() {
        assert!(IdempotencyHeader::parse(b"k").is_ok());
        assert!(IdempotencyHeader::parse(" a~Z ".as_bytes()).is_ok());
        assert!(IdempotencyHeader::parse("x".repeat(255).as_bytes()).is_ok());
        for bad in [
            "".as_bytes(),
            "x".repeat(256).as_bytes(),
            "tab\there".as_bytes(),
            "é".as_bytes(),
            b"\x7f",
        ] {
            assert!(IdempotencyHeader::parse(bad).is_err(), "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        assert!(IdempotencyHeader::from_headers(&headers).is_err());
        headers.append("Idempotency-Key", HeaderValue::from_static("a"));
        assert_eq!(
            IdempotencyHeader::from_headers(&headers).unwrap(),
            header("a")
        );
        headers.append("Idempotency-Key", HeaderValue::from_static("b"));
        assert!(IdempotencyHeader::from_headers(&headers).is_err());
        assert_eq!(format!("{:?}", header("secret")), "IdempotencyHeader(..)");
    }

    #[test]
    fn key_is_per_caller_and_header_and_never_holds_the_value() {
        let alice = Caller::new("arn:aws:iam::123456789012:user/alice");
        let bob = Caller::new("arn:aws:iam::123456789012:user/bob");
        let key = |c: &Caller, h: &str| OpsRequest::ledger_key(c, &header(h)).unwrap();
        assert_ne!(key(&alice, "k1"), key(&bob, "k1"));
        assert_ne!(key(&alice, "k1"), key(&alice, "k2"));
        assert_eq!(key(&alice, "k1"), key(&alice, "k1"));
        let text = key(&alice, "secret-value").as_str().to_owned();
        assert!(text.starts_with("ops-request#"), "{text}");
        assert!(!text.contains("secret-value"));
        let expected = hex::encode(Sha256::digest(
            "arn:aws:iam::123456789012:user/alice|k1".as_bytes(),
        ));
        assert_eq!(
            key(&alice, "k1").as_str(),
            format!("ops-request#{expected}")
        );
    }

    fn lease() -> Lease {
        Lease {
            now: now(),
            lease: Duration::from_secs(30),
        }
    }

    fn request(body: Value) -> OpsRequest {
        OpsRequest::new(
            &Caller::new("arn:aws:iam::123456789012:user/alice"),
            &header("k1"),
            &fingerprint("POST", "/batches/{id}/stop", json!({"id": "web:1"}), body),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_first_answer_is_kept_and_replayed_without_acting() {
        let ledger = FakeLedger::default();
        let calls = std::cell::Cell::new(0);
        let counted = &calls;
        let first = once(&ledger, &request(json!({})), lease(), move || async move {
            counted.set(counted.get() + 1);
            Acted::Answer(StatusCode::CREATED, json!({"n": 1}))
        })
        .await
        .unwrap();
        let again = once(&ledger, &request(json!({})), lease(), || async {
            panic!("acted twice")
        })
        .await
        .unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(first, (StatusCode::CREATED, json!({"n": 1})));
        assert_eq!(again, first);

        let other = once(&ledger, &request(json!({"x": 1})), lease(), || async {
            panic!("acted for another request")
        })
        .await
        .unwrap_err();
        assert!(matches!(other, ApiError::Unprocessable(_)), "{other:?}");
    }

    #[tokio::test]
    async fn a_kept_error_is_replayed_and_a_retryable_one_releases() {
        let ledger = FakeLedger::default();
        let kept = once(&ledger, &request(json!({})), lease(), || async {
            Acted::from_error(ApiError::NotFound("gone".into()))
        })
        .await
        .unwrap();
        assert_eq!(kept.0, StatusCode::NOT_FOUND);
        let replayed = once(&ledger, &request(json!({})), lease(), || async {
            panic!("acted twice")
        })
        .await
        .unwrap();
        assert_eq!(replayed, kept);

        let fresh = FakeLedger::default();
        let err = once(&fresh, &request(json!({})), lease(), || async {
            Acted::from_error(ApiError::Throttled("slow down".into()))
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ApiError::Throttled(_)));
        assert_eq!(fresh.record(&request(json!({})).key), None, "released");
        let retried = once(&fresh, &request(json!({})), lease(), || async {
            Acted::Answer(StatusCode::OK, json!({}))
        })
        .await
        .unwrap();
        assert_eq!(retried.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn in_flight_is_409_and_a_down_ledger_acts_never() {
        let ledger = FakeLedger::default();
        // A claim held by someone else (an invocation that crashed after claiming).
        ledger
            .claim(&ClaimRequest::new(
                request(json!({})).key,
                request(json!({})).payload,
                now(),
                Duration::from_secs(60),
            ))
            .await
            .unwrap();
        let err = once(&ledger, &request(json!({})), lease(), || async {
            panic!("acted while in flight")
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ApiError::Conflict(_)), "{err:?}");

        let down = FakeLedger::default();
        down.set_unavailable(true);
        let err = once(&down, &request(json!({})), lease(), || async {
            panic!("acted without a claim")
        })
        .await
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
