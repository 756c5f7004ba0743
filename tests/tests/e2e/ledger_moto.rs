//! The idempotency ledger's DynamoDB adapter against moto's real DynamoDB: every path of the
//! claim → complete / release / fail protocol in `design/idempotency.md`.
//!
//! moto never enforces TTL, which suits these tests: expiry is decided by the claim's own
//! condition (`expires_at < :now`), and time is moved by passing another `now`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use autopilot::aws::DynamoLedger;
use autopilot::ledger::{
    Claim, ClaimOutcome, ClaimRequest, DEFAULT_RETENTION, Ledger, LedgerError, LedgerKey,
    PayloadHash,
};
use chrono::{DateTime, TimeDelta, Utc};
use harness::moto::MotoServer;
use serde_json::json;

const TABLE: &str = "autopilot-ledger";
const LEASE: Duration = Duration::from_secs(60);

async fn ledger(moto: &MotoServer) -> DynamoLedger {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let ledger = DynamoLedger::new(client, TABLE);
    ledger.create_table().await.unwrap();
    ledger
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn key() -> LedgerKey {
    LedgerKey::new("RetryBuild", "proj:8745a7a9#1").unwrap()
}

fn request(payload: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest::new(key(), PayloadHash::of(payload), now, LEASE)
}

async fn win(ledger: &DynamoLedger, request: &ClaimRequest) -> Claim {
    match ledger.claim(request).await.unwrap() {
        ClaimOutcome::Won(claim) => claim,
        other => panic!("expected to win, got {other:?}"),
    }
}

#[tokio::test]
async fn a_claim_wins_once_and_the_loser_sees_in_progress() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let claim = win(&ledger, &request("p", t0())).await;
    assert_eq!(claim.key, key());
    assert_eq!(
        ledger.claim(&request("p", t0())).await.unwrap(),
        ClaimOutcome::InProgress {
            until_ms: claim.in_progress_until_ms
        }
    );
    // Another key is independent.
    let other = ClaimRequest::new(
        LedgerKey::new("RetryBuild", "proj:8745a7a9#2").unwrap(),
        PayloadHash::of("p"),
        t0(),
        LEASE,
    );
    win(&ledger, &other).await;
}

#[tokio::test]
async fn five_concurrent_claims_have_exactly_one_winner() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let mut claims = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let ledger = ledger.clone();
        claims.spawn(async move { ledger.claim(&request("p", t0())).await.unwrap() });
    }
    let outcomes: Vec<ClaimOutcome> = claims.join_all().await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::Won(_)))
        .count();
    let in_progress = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::InProgress { .. }))
        .count();
    assert_eq!((won, in_progress), (1, 4), "{outcomes:?}");
}

#[tokio::test]
async fn a_completed_key_answers_with_the_stored_result() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;
    let result = json!({"build": "proj:new-build", "attempt": 1});

    let claim = win(&ledger, &request("p", t0())).await;
    ledger.complete(&claim, &result).await.unwrap();

    // Even long after the lease (a redelivery after CodeBuild's token window).
    let later = t0() + TimeDelta::minutes(10);
    assert_eq!(
        ledger.claim(&request("p", later)).await.unwrap(),
        ClaimOutcome::Completed(result)
    );
}

#[tokio::test]
async fn the_same_key_with_another_payload_is_a_mismatch() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let claim = win(&ledger, &request("p", t0())).await;
    assert_eq!(
        ledger.claim(&request("other", t0())).await.unwrap(),
        ClaimOutcome::PayloadMismatch
    );
    ledger.complete(&claim, &json!({"ok": true})).await.unwrap();
    assert_eq!(
        ledger.claim(&request("other", t0())).await.unwrap(),
        ClaimOutcome::PayloadMismatch
    );
}

#[tokio::test]
async fn an_in_progress_claim_past_its_lease_can_be_claimed_again() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let crashed = win(&ledger, &request("p", t0())).await;
    // Still held at the lease's last millisecond...
    let at_end = DateTime::from_timestamp_millis(crashed.in_progress_until_ms).unwrap();
    assert!(matches!(
        ledger.claim(&request("p", at_end)).await.unwrap(),
        ClaimOutcome::InProgress { .. }
    ));
    // ...and free just after it.
    let after = at_end + TimeDelta::milliseconds(1);
    let second = win(&ledger, &request("p", after)).await;
    assert_ne!(second.claim_id, crashed.claim_id);

    // The first owner woke up: it may no longer complete, and the new owner's claim stands.
    assert_eq!(
        ledger.complete(&crashed, &json!({"stale": true})).await,
        Err(LedgerError::ClaimLost { key: key() })
    );
    ledger
        .complete(&second, &json!({"fresh": true}))
        .await
        .unwrap();
    assert_eq!(
        ledger.claim(&request("p", after)).await.unwrap(),
        ClaimOutcome::Completed(json!({"fresh": true}))
    );
}

#[tokio::test]
async fn a_released_claim_can_be_claimed_again_at_once() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let claim = win(&ledger, &request("p", t0())).await;
    ledger.release(&claim).await.unwrap();
    let again = win(&ledger, &request("p", t0())).await;

    // Releasing twice, or someone else's claim, is refused.
    assert_eq!(
        ledger.release(&claim).await,
        Err(LedgerError::ClaimLost { key: key() })
    );
    assert!(matches!(
        ledger.claim(&request("p", t0())).await.unwrap(),
        ClaimOutcome::InProgress { .. }
    ));
    ledger.release(&again).await.unwrap();
}

#[tokio::test]
async fn an_expired_record_can_be_claimed_again() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let claim = win(&ledger, &request("p", t0())).await;
    ledger
        .complete(&claim, &json!({"old": true}))
        .await
        .unwrap();

    let retention = TimeDelta::from_std(DEFAULT_RETENTION).unwrap();
    // At its expiry second the record still answers...
    assert_eq!(
        ledger.claim(&request("p", t0() + retention)).await.unwrap(),
        ClaimOutcome::Completed(json!({"old": true}))
    );
    // ...one second later it is gone as far as the ledger is concerned (TTL deletion is lazy).
    let after = t0() + retention + TimeDelta::seconds(1);
    win(&ledger, &request("p", after)).await;
}

#[tokio::test]
async fn only_the_owner_can_complete_or_fail() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let claim = win(&ledger, &request("p", t0())).await;
    let impostor = Claim {
        claim_id: "someone-else".to_owned(),
        ..claim.clone()
    };
    assert_eq!(
        ledger.complete(&impostor, &json!({"x": 1})).await,
        Err(LedgerError::ClaimLost { key: key() })
    );
    assert_eq!(
        ledger.fail(&impostor, "nope").await,
        Err(LedgerError::ClaimLost { key: key() })
    );
    assert_eq!(
        ledger.release(&impostor).await,
        Err(LedgerError::ClaimLost { key: key() })
    );
    // A claim on a key never claimed is not held either.
    let unknown = Claim {
        key: LedgerKey::new("RetryBuild", "never").unwrap(),
        ..claim.clone()
    };
    assert!(matches!(
        ledger.complete(&unknown, &json!({})).await,
        Err(LedgerError::ClaimLost { .. })
    ));

    // The owner's claim is untouched, and a completed record cannot be completed again.
    ledger.complete(&claim, &json!({"x": 2})).await.unwrap();
    let second = ledger.complete(&claim, &json!({"x": 3})).await.unwrap_err();
    assert!(!second.is_retryable());
    assert_eq!(
        ledger.claim(&request("p", t0())).await.unwrap(),
        ClaimOutcome::Completed(json!({"x": 2}))
    );
}

#[tokio::test]
async fn a_failed_record_stops_redeliveries() {
    let moto = MotoServer::start().await.unwrap();
    let ledger = ledger(&moto).await;

    let claim = win(&ledger, &request("p", t0())).await;
    ledger
        .fail(&claim, "InvalidInputException: no such build")
        .await
        .unwrap();
    let later = t0() + TimeDelta::hours(1);
    assert_eq!(
        ledger.claim(&request("p", later)).await.unwrap(),
        ClaimOutcome::Failed {
            reason: "InvalidInputException: no such build".to_owned()
        }
    );
}

#[tokio::test]
async fn an_unreachable_ledger_is_a_retryable_error() {
    // No SDK retries: the caller (Lambda's own retry) decides when to come back.
    let client = harness::moto::unreachable_dynamodb().await;
    let ledger = DynamoLedger::new(client, TABLE);

    let err = ledger.claim(&request("p", t0())).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Unavailable { .. }),
        "got {err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_missing_table_is_not_retryable() {
    let moto = MotoServer::start().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let ledger = DynamoLedger::new(client, "no-such-table");

    let err = ledger.claim(&request("p", t0())).await.unwrap_err();
    assert!(
        matches!(&err, LedgerError::Unexpected { code: Some(code), .. } if code == "ResourceNotFoundException"),
        "got {err:?}"
    );
    assert!(!err.is_retryable());
}
