//! `DynamoRetryBook` against moto's DynamoDB: lineage, batch counts and the hourly budgets,
//! in the same table as the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use autopilot::aws::{DynamoLedger, DynamoRetryBook};
use autopilot::ledger::LedgerError;
use autopilot::model::{BatchId, BuildId};
use autopilot::ports::{BudgetOutcome, BudgetRequest, Lineage, RetryBook};
use chrono::{DateTime, TimeDelta, Utc};
use harness::moto::MotoServer;

const TABLE: &str = "autopilot-ledger";

/// A book over a fresh moto server and table; keep the server alive as long as the book.
async fn book() -> (MotoServer, DynamoRetryBook) {
    let moto = MotoServer::start().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    DynamoLedger::new(client.clone(), TABLE)
        .create_table()
        .await
        .unwrap();
    (moto, DynamoRetryBook::new(client, TABLE))
}

fn build(project: &str, n: u32) -> BuildId {
    BuildId::new(project, &format!("00000000-0000-0000-0000-{n:012}")).unwrap()
}

fn batch(n: u32) -> BatchId {
    BatchId::new("web", &format!("11111111-0000-0000-0000-{n:012}")).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn link(child: &BuildId, parent: &BuildId, root: &BuildId, attempt: u32) -> Lineage {
    Lineage {
        build: child.clone(),
        parent: parent.clone(),
        root: root.clone(),
        attempt,
        created_at: at("2025-03-04T05:06:07Z") + TimeDelta::minutes(i64::from(attempt)),
    }
}

fn budget(project: &str, when: &str, project_limit: u32, account_limit: u32) -> BudgetRequest {
    BudgetRequest {
        project: project.to_owned(),
        at: at(when),
        project_limit,
        account_limit,
    }
}

#[tokio::test]
async fn a_chain_of_three_retries_reads_back_both_ways() {
    let (_moto, book) = book().await;
    let root = build("web", 0);
    let (b1, b2, b3) = (build("web", 1), build("web", 2), build("web", 3));
    let links = [
        link(&b1, &root, &root, 1),
        link(&b2, &b1, &root, 2),
        link(&b3, &b2, &root, 3),
    ];
    for l in &links {
        book.record_lineage(l).await.unwrap();
    }

    assert_eq!(book.lineage_of(&root).await.unwrap(), None);
    assert_eq!(
        book.lineage_of(&b3).await.unwrap().as_ref(),
        Some(&links[2])
    );
    assert_eq!(
        book.retried_by(&root).await.unwrap().as_ref(),
        Some(&links[0])
    );
    assert_eq!(
        book.retried_by(&b2).await.unwrap().as_ref(),
        Some(&links[2])
    );
    assert_eq!(book.retried_by(&b3).await.unwrap(), None);

    // Walking back from the last build reaches the root in three steps.
    let mut steps = Vec::new();
    let mut current = b3.clone();
    while let Some(found) = book.lineage_of(&current).await.unwrap() {
        assert_eq!(found.root, root);
        steps.push(found.attempt);
        current = found.parent;
    }
    assert_eq!(steps, [3, 2, 1]);
    assert_eq!(current, root);

    // Keys use `project:uuid`: the ARN form of the same build finds the same link.
    let by_arn = BuildId::parse(&format!(
        "arn:aws:codebuild:us-east-1:123456789012:build/{}",
        b2.id()
    ))
    .unwrap();
    assert_eq!(
        book.lineage_of(&by_arn).await.unwrap().as_ref(),
        Some(&links[1])
    );
}

#[tokio::test]
async fn the_same_link_twice_is_fine_and_another_link_for_the_build_is_not() {
    let (_moto, book) = book().await;
    let (root, child) = (build("web", 0), build("web", 1));
    let first = link(&child, &root, &root, 1);
    book.record_lineage(&first).await.unwrap();

    // A redelivery, a little later: accepted, and the first record stays.
    let again = Lineage {
        created_at: first.created_at + TimeDelta::seconds(90),
        ..first.clone()
    };
    book.record_lineage(&again).await.unwrap();
    assert_eq!(book.lineage_of(&child).await.unwrap(), Some(first.clone()));

    // The same build claimed as the retry of another parent: never expected, refused.
    let other_parent = build("web", 7);
    let conflicting = link(&child, &other_parent, &root, 1);
    let err = book.record_lineage(&conflicting).await.unwrap_err();
    assert!(matches!(err, LedgerError::Unexpected { .. }), "got {err:?}");
    assert!(!err.is_retryable());
    assert_eq!(book.lineage_of(&child).await.unwrap(), Some(first));
    assert_eq!(book.retried_by(&other_parent).await.unwrap(), None);
}

#[tokio::test]
async fn batch_attempts_grow_and_never_shrink() {
    let (_moto, book) = book().await;
    let (id, other) = (batch(1), batch(2));
    assert_eq!(book.batch_attempts(&id).await.unwrap().attempts, 0);

    let mut seen = Vec::new();
    for attempt in [1, 3, 2, 3, 1, 4] {
        book.record_batch_attempt(&id, attempt).await.unwrap();
        seen.push(book.batch_attempts(&id).await.unwrap().attempts);
    }
    assert_eq!(seen, [1, 3, 3, 3, 3, 4]);

    let read = book.batch_attempts(&id).await.unwrap();
    assert_eq!(read.batch, id);
    assert_eq!(book.batch_attempts(&other).await.unwrap().attempts, 0);
}

#[tokio::test]
async fn a_project_budget_is_granted_up_to_its_limit() {
    let (_moto, book) = book().await;
    let when = "2025-03-04T10:15:00Z";
    for _ in 0..3 {
        assert_eq!(
            book.take_budget(&budget("web", when, 3, 100))
                .await
                .unwrap(),
            BudgetOutcome::Granted
        );
    }
    let refused = BudgetOutcome::ProjectExhausted { used: 3, limit: 3 };
    assert_eq!(
        book.take_budget(&budget("web", when, 3, 100))
            .await
            .unwrap(),
        refused
    );
    // A refusal takes nothing: still exactly 3 used, and the account counter saw only the 3
    // granted (an account limit of 4 still lets another project through, once).
    assert_eq!(
        book.take_budget(&budget("web", "2025-03-04T10:59:59Z", 3, 100))
            .await
            .unwrap(),
        refused
    );
    assert_eq!(
        book.take_budget(&budget("api", when, 3, 4)).await.unwrap(),
        BudgetOutcome::Granted
    );
    assert_eq!(
        book.take_budget(&budget("api", when, 3, 4)).await.unwrap(),
        BudgetOutcome::BreakerOpen { used: 4, limit: 4 }
    );
}

#[tokio::test]
async fn the_account_breaker_spans_projects_and_takes_nothing_from_the_project() {
    let (_moto, book) = book().await;
    let when = "2025-03-04T10:15:00Z";
    assert_eq!(
        book.take_budget(&budget("web", when, 10, 2)).await.unwrap(),
        BudgetOutcome::Granted
    );
    assert_eq!(
        book.take_budget(&budget("api", when, 10, 2)).await.unwrap(),
        BudgetOutcome::Granted
    );
    assert_eq!(
        book.take_budget(&budget("web", when, 10, 2)).await.unwrap(),
        BudgetOutcome::BreakerOpen { used: 2, limit: 2 }
    );
    // `web` took exactly one: with the breaker out of the way, a limit of 2 grants one more.
    assert_eq!(
        book.take_budget(&budget("web", when, 2, 100))
            .await
            .unwrap(),
        BudgetOutcome::Granted
    );
    assert_eq!(
        book.take_budget(&budget("web", when, 2, 100))
            .await
            .unwrap(),
        BudgetOutcome::ProjectExhausted { used: 2, limit: 2 }
    );
}

#[tokio::test]
async fn the_next_hour_starts_fresh() {
    let (_moto, book) = book().await;
    book.take_budget(&budget("web", "2025-03-04T10:00:00Z", 1, 1))
        .await
        .unwrap();
    assert_eq!(
        book.take_budget(&budget("web", "2025-03-04T10:59:59Z", 1, 1))
            .await
            .unwrap(),
        BudgetOutcome::BreakerOpen { used: 1, limit: 1 }
    );
    assert_eq!(
        book.take_budget(&budget("web", "2025-03-04T11:00:00Z", 1, 1))
            .await
            .unwrap(),
        BudgetOutcome::Granted
    );
}

#[tokio::test]
async fn a_zero_limit_grants_nothing() {
    let (_moto, book) = book().await;
    let when = "2025-03-04T10:15:00Z";
    assert_eq!(
        book.take_budget(&budget("web", when, 0, 10)).await.unwrap(),
        BudgetOutcome::ProjectExhausted { used: 0, limit: 0 }
    );
    assert_eq!(
        book.take_budget(&budget("web", when, 10, 0)).await.unwrap(),
        BudgetOutcome::BreakerOpen { used: 0, limit: 0 }
    );
}

#[tokio::test]
async fn the_account_scope_is_not_a_project() {
    let (_moto, book) = book().await;
    let err = book
        .take_budget(&budget("*", "2025-03-04T10:15:00Z", 3, 100))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::InvalidKey { .. }), "got {err:?}");
}

#[tokio::test]
async fn concurrent_takes_grant_exactly_the_limit() {
    let (moto, _) = book().await;
    // Straight at moto, 10 racing takes grant 4 to 8 (its conditional writes are not atomic);
    // `MotoServer::endpoint` orders DynamoDB requests as DynamoDB does, while the ten callers
    // still interleave freely. A check-then-write in the adapter (read the counter, decide,
    // write) would still over-grant here.
    let before = moto.dynamodb_requests();
    let book = DynamoRetryBook::new(
        aws_sdk_dynamodb::Client::new(&moto.sdk_config().await),
        TABLE,
    );

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let book = book.clone();
        tasks.spawn(async move {
            book.take_budget(&budget("web", "2025-03-04T10:15:00Z", 3, 100))
                .await
        });
    }
    let mut granted = 0;
    let mut refused = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap().unwrap() {
            BudgetOutcome::Granted => granted += 1,
            BudgetOutcome::ProjectExhausted { used: 3, limit: 3 } => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((granted, refused), (3, 7));
    assert!(moto.dynamodb_requests() >= before + 10);
}

#[tokio::test]
async fn an_unreachable_table_is_a_retryable_error() {
    // No SDK retries: the caller (Lambda's own retry) decides when to come back.
    let client = harness::moto::unreachable_dynamodb().await;
    let book = DynamoRetryBook::new(client, TABLE);

    let err = book
        .take_budget(&budget("web", "2025-03-04T10:15:00Z", 3, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::Unavailable { .. }),
        "got {err:?}"
    );
    assert!(err.is_retryable());
    let err = book.lineage_of(&build("web", 1)).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Unavailable { .. }),
        "got {err:?}"
    );
}
