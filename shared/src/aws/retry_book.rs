//! [`RetryBook`] port over `aws-sdk-dynamodb`, in the ledger's table (partition key `pk`, TTL
//! on `expires_at`). Items, by key:
//!
//! - `lineage#<project:uuid>`: the link that made a build;
//! - `retried-by#<project:uuid>`: the same link, keyed by the build that was retried;
//! - `batch-attempts#<project:uuid>`: how many times the autopilot retried a batch;
//! - `budget#<project>#<YYYY-MM-DDTHH>`: retries taken for a project in a clock hour (UTC);
//! - `budget#*#<YYYY-MM-DDTHH>`: retries taken across all projects in that hour (the breaker;
//!   `*` is not a valid project name, so it cannot collide).
//!
//! Keys use the `project:uuid` form, never the ARN, so an id parsed either way finds the item.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::ledger::{attr, is_condition_failure, malformed, map_sdk_error, n, s, unexpected_build};
use crate::ledger::{LedgerError, LedgerKey};
use crate::model::{BatchId, BuildId};
use crate::ports::{BatchAttempts, BudgetOutcome, BudgetRequest, Lineage, RetryBook};

/// How long lineage and batch counts are kept: far longer than any retry chain lives.
const LINK_TTL: TimeDelta = TimeDelta::days(30);
/// How long an hourly budget counter is kept after its hour began.
const COUNTER_TTL: TimeDelta = TimeDelta::days(1);
/// The project part of the account-wide counter's key.
const ACCOUNT_SCOPE: &str = "*";
/// Attempts at a budget transaction that DynamoDB cancelled only because another transaction
/// was touching the same counters at the same moment (`TransactionConflict`).
const CONFLICT_ATTEMPTS: u32 = 5;
/// Base of the pause between those attempts (grows linearly, plus jitter).
const CONFLICT_PAUSE: Duration = Duration::from_millis(15);

/// Attribute names of the retry book's items (besides `pk` and `expires_at`).
mod field {
    pub const BUILD: &str = "build";
    pub const PARENT: &str = "parent";
    pub const ROOT: &str = "root";
    pub const ATTEMPT: &str = "attempt";
    pub const CREATED_AT: &str = "created_at";
    pub const BATCH: &str = "batch";
    pub const ATTEMPTS: &str = "attempts";
    pub const USED: &str = "used";
}

/// The DynamoDB-backed retry book (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct DynamoRetryBook {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRetryBook {
    /// Wraps a configured SDK client and the ledger table's name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, LedgerError> {
        const OP: &str = "GetItem";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::PK, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        Ok(out.item)
    }

    async fn link(&self, key: &str) -> Result<Option<Lineage>, LedgerError> {
        self.get(key)
            .await?
            .as_ref()
            .map(lineage_from_item)
            .transpose()
    }

    /// Writes one link item unless the key holds one already; an existing item must hold the
    /// same link (a redelivery), anything else is an error.
    async fn put_link(&self, key: &str, lineage: &Lineage) -> Result<(), LedgerError> {
        const OP: &str = "PutItem";
        let expires_at = (lineage.created_at + LINK_TTL).timestamp();
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(attr::PK, s(key))
            .item(field::BUILD, s(&lineage.build.as_given()))
            .item(field::PARENT, s(&lineage.parent.as_given()))
            .item(field::ROOT, s(&lineage.root.as_given()))
            .item(field::ATTEMPT, n(i64::from(lineage.attempt)))
            .item(field::CREATED_AT, s(&lineage.created_at.to_rfc3339()))
            .item(attr::EXPIRES_AT, n(expires_at))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", attr::PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(()),
            Err(err) if is_condition_failure(&err) => err,
            Err(err) => return Err(map_sdk_error(OP, err)),
        };
        let existing = match condition_failure_item(&err) {
            Some(item) => Some(lineage_from_item(item)?),
            None => self.link(key).await?,
        };
        match existing {
            Some(stored) if same_link(&stored, lineage) => Ok(()),
            // Never expected: one build is made by one retry. Not retryable, and loud.
            Some(stored) => Err(LedgerError::Unexpected {
                operation: OP,
                code: None,
                message: format!(
                    "{key} already records {} retried as {} (attempt {}), not {} as {} (attempt {})",
                    stored.parent,
                    stored.build,
                    stored.attempt,
                    lineage.parent,
                    lineage.build,
                    lineage.attempt
                ),
            }),
            // Deleted between the failed write and the read (only TTL deletes these): the next
            // delivery writes it again.
            None => Err(LedgerError::Contended {
                key: ledger_key(key)?,
            }),
        }
    }

    /// The current value of an hourly counter (0 when none was taken yet).
    async fn counter(&self, key: &str) -> Result<u32, LedgerError> {
        Ok(self.get(key).await?.as_ref().and_then(used_in).unwrap_or(0))
    }

    fn budget_update(
        &self,
        key: &str,
        limit: u32,
        expires_at: i64,
    ) -> Result<TransactWriteItem, LedgerError> {
        const OP: &str = "TransactWriteItems";
        let update = Update::builder()
            .table_name(&self.table)
            .key(attr::PK, s(key))
            .update_expression("ADD #used :one SET #expires_at = :expires_at")
            .condition_expression("attribute_not_exists(#used) OR #used < :limit")
            .expression_attribute_names("#used", field::USED)
            .expression_attribute_names("#expires_at", attr::EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .expression_attribute_values(":expires_at", n(expires_at))
            // The counter that stopped us comes back in the cancellation reasons: `used`
            // without another read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| unexpected_build(OP, &e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

impl RetryBook for DynamoRetryBook {
    async fn lineage_of(&self, build: &BuildId) -> Result<Option<Lineage>, LedgerError> {
        self.link(&lineage_key(build)).await
    }

    async fn retried_by(&self, parent: &BuildId) -> Result<Option<Lineage>, LedgerError> {
        self.link(&retried_by_key(parent)).await
    }

    async fn record_lineage(&self, lineage: &Lineage) -> Result<(), LedgerError> {
        // Two idempotent writes rather than one transaction: a crash between them leaves a
        // state the redelivery completes. `lineage#` goes first because it is what stops a
        // retried build from being mistaken for a new root (and retried from attempt 1 again).
        self.put_link(&lineage_key(&lineage.build), lineage).await?;
        self.put_link(&retried_by_key(&lineage.parent), lineage)
            .await
    }

    async fn batch_attempts(&self, batch: &BatchId) -> Result<BatchAttempts, LedgerError> {
        let item = self.get(&batch_attempts_key(batch)).await?;
        let attempts = match item {
            None => 0,
            Some(item) => number_in(&item, field::ATTEMPTS)
                .ok_or_else(|| malformed("a batch-attempts item without a numeric attempts"))?,
        };
        Ok(BatchAttempts {
            batch: batch.clone(),
            attempts,
        })
    }

    async fn record_batch_attempt(&self, batch: &BatchId, attempt: u32) -> Result<(), LedgerError> {
        const OP: &str = "UpdateItem";
        let expires_at = (Utc::now() + LINK_TTL).timestamp();
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::PK, s(&batch_attempts_key(batch)))
            .update_expression(
                "SET #attempts = :attempt, #batch = :batch, #expires_at = :expires_at",
            )
            .condition_expression("attribute_not_exists(#attempts) OR #attempts < :attempt")
            .expression_attribute_names("#attempts", field::ATTEMPTS)
            .expression_attribute_names("#batch", field::BATCH)
            .expression_attribute_names("#expires_at", attr::EXPIRES_AT)
            .expression_attribute_values(":attempt", n(i64::from(attempt)))
            .expression_attribute_values(":batch", s(&batch.as_given()))
            .expression_attribute_values(":expires_at", n(expires_at))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // A count at or above `attempt` is already there: the count only grows.
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(map_sdk_error(OP, err)),
        }
    }

    async fn take_budget(&self, request: &BudgetRequest) -> Result<BudgetOutcome, LedgerError> {
        const OP: &str = "TransactWriteItems";
        let hour = request
            .at
            .duration_trunc(TimeDelta::hours(1))
            .map_err(|e| unexpected_build(OP, &e))?;
        // A project named like the account scope (or with the separator) would share or
        // split a counter; CodeBuild allows neither in a name, so it is a caller's bug.
        if request.project.is_empty()
            || request.project == ACCOUNT_SCOPE
            || request.project.contains('#')
        {
            return Err(LedgerError::InvalidKey {
                operation: "budget".to_owned(),
                identity: request.project.clone(),
            });
        }
        let account_key = budget_key(ACCOUNT_SCOPE, hour);
        let project_key = budget_key(&request.project, hour);
        let account_limit = request.account_limit;
        let project_limit = request.project_limit;

        // `attribute_not_exists` lets the first retry of an hour through whatever the limit:
        // a limit of 0 is answered here, without a write.
        if account_limit == 0 {
            let used = self.counter(&account_key).await?;
            return Ok(BudgetOutcome::BreakerOpen { used, limit: 0 });
        }
        if project_limit == 0 {
            let used = self.counter(&project_key).await?;
            return Ok(BudgetOutcome::ProjectExhausted { used, limit: 0 });
        }

        let expires_at = (hour + COUNTER_TTL).timestamp();
        // Order matters: the cancellation reasons come back in this order.
        let items = vec![
            self.budget_update(&account_key, account_limit, expires_at)?,
            self.budget_update(&project_key, project_limit, expires_at)?,
        ];
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(BudgetOutcome::Granted),
                Err(err) => err,
            };
            let reasons = match cancellation_reasons(&err) {
                Some(reasons) => reasons,
                None => return Err(map_sdk_error(OP, err)),
            };
            match budget_refusal(reasons) {
                // The breaker first: when both are spent, the account-wide incident is the
                // cause worth reporting.
                Refusal::Account(item) => {
                    let used = match item.and_then(used_in) {
                        Some(used) => used,
                        None => self.counter(&account_key).await?,
                    };
                    return Ok(BudgetOutcome::BreakerOpen {
                        used,
                        limit: account_limit,
                    });
                }
                Refusal::Project(item) => {
                    let used = match item.and_then(used_in) {
                        Some(used) => used,
                        None => self.counter(&project_key).await?,
                    };
                    return Ok(BudgetOutcome::ProjectExhausted {
                        used,
                        limit: project_limit,
                    });
                }
                Refusal::Conflict if attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(conflict_pause(attempt)).await;
                }
                Refusal::Conflict => {
                    return Err(LedgerError::Contended {
                        key: ledger_key(&project_key)?,
                    });
                }
                Refusal::Other(codes) => {
                    return Err(LedgerError::Unexpected {
                        operation: OP,
                        code: Some("TransactionCanceledException".to_owned()),
                        message: format!("cancellation reasons: {codes}"),
                    });
                }
            }
        }
        Err(LedgerError::Contended {
            key: ledger_key(&project_key)?,
        })
    }
}

/// Why DynamoDB cancelled a budget transaction.
#[derive(Debug, PartialEq)]
enum Refusal<'a> {
    /// The account counter's condition failed (with the counter, when it came back).
    Account(Option<&'a HashMap<String, AttributeValue>>),
    /// The project counter's condition failed.
    Project(Option<&'a HashMap<String, AttributeValue>>),
    /// Only concurrent transactions on the same items: trying again decides.
    Conflict,
    /// Anything else (the reason codes, for the error message).
    Other(String),
}

/// Reads the cancellation reasons of `[account, project]` updates.
fn budget_refusal(reasons: &[CancellationReason]) -> Refusal<'_> {
    let failed = |index: usize| {
        reasons
            .get(index)
            .filter(|r| r.code() == Some("ConditionalCheckFailed"))
    };
    if let Some(reason) = failed(0) {
        return Refusal::Account(reason.item());
    }
    if let Some(reason) = failed(1) {
        return Refusal::Project(reason.item());
    }
    let codes: Vec<&str> = reasons
        .iter()
        .filter_map(CancellationReason::code)
        .filter(|code| *code != "None")
        .collect();
    if !codes.is_empty() && codes.iter().all(|code| *code == "TransactionConflict") {
        Refusal::Conflict
    } else {
        Refusal::Other(codes.join(", "))
    }
}

fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<&[CancellationReason]> {
    match err {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                Some(cancelled.cancellation_reasons())
            }
            _ => None,
        },
        _ => None,
    }
}

fn condition_failure_item<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> Option<&HashMap<String, AttributeValue>> {
    match err {
        SdkError::ServiceError(service) => match service.err() {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                failed,
            ) => failed.item(),
            _ => None,
        },
        _ => None,
    }
}

/// A growing pause with jitter, so that racing callers do not collide again in lockstep.
fn conflict_pause(attempt: u32) -> Duration {
    let jitter_ms = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 16);
    CONFLICT_PAUSE * attempt + Duration::from_millis(jitter_ms)
}

/// Two records of a link agree on everything but when they were written.
fn same_link(a: &Lineage, b: &Lineage) -> bool {
    a.build.id() == b.build.id()
        && a.parent.id() == b.parent.id()
        && a.root.id() == b.root.id()
        && a.attempt == b.attempt
}

fn lineage_key(build: &BuildId) -> String {
    format!("lineage#{}", build.id())
}

fn retried_by_key(parent: &BuildId) -> String {
    format!("retried-by#{}", parent.id())
}

fn batch_attempts_key(batch: &BatchId) -> String {
    format!("batch-attempts#{}", batch.id())
}

fn budget_key(scope: &str, hour: DateTime<Utc>) -> String {
    format!("budget#{scope}#{}", hour.format("%Y-%m-%dT%H"))
}

/// The [`LedgerKey`] an error names an item by: its kind, then the rest of its key.
fn ledger_key(pk: &str) -> Result<LedgerKey, LedgerError> {
    let (kind, identity) = pk.split_once('#').unwrap_or((pk, ""));
    LedgerKey::new(kind, identity)
}

fn lineage_from_item(item: &HashMap<String, AttributeValue>) -> Result<Lineage, LedgerError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .ok_or_else(|| malformed(&format!("a lineage item without {name}")))
    };
    let build_id = |name: &str| {
        BuildId::parse(text(name)?)
            .map_err(|e| malformed(&format!("lineage {name} is not a build id: {e}")))
    };
    let created_at = DateTime::parse_from_rfc3339(text(field::CREATED_AT)?)
        .map_err(|e| malformed(&format!("lineage created_at is not RFC 3339: {e}")))?
        .with_timezone(&Utc);
    Ok(Lineage {
        build: build_id(field::BUILD)?,
        parent: build_id(field::PARENT)?,
        root: build_id(field::ROOT)?,
        attempt: number_in(item, field::ATTEMPT)
            .ok_or_else(|| malformed("a lineage item without a numeric attempt"))?,
        created_at,
    })
}

fn used_in(item: &HashMap<String, AttributeValue>) -> Option<u32> {
    number_in(item, field::USED)
}

fn number_in(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u32> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn reason(code: &str, used: Option<u32>) -> CancellationReason {
        let builder = CancellationReason::builder().code(code);
        match used {
            Some(used) => builder.item(field::USED, n(i64::from(used))).build(),
            None => builder.build(),
        }
    }

    #[test]
    fn budget_keys_name_the_hour() {
        let at = DateTime::parse_from_rfc3339("2025-03-04T05:59:59Z")
            .unwrap()
            .with_timezone(&Utc)
            .duration_trunc(TimeDelta::hours(1))
            .unwrap();
        assert_eq!(budget_key("web", at), "budget#web#2025-03-04T05");
        assert_eq!(budget_key(ACCOUNT_SCOPE, at), "budget#*#2025-03-04T05");
    }

    #[test]
    fn refusals_read_in_order() {
        let account = [
            reason("ConditionalCheckFailed", Some(9)),
            reason("None", None),
        ];
        assert!(
            matches!(budget_refusal(&account), Refusal::Account(Some(item)) if used_in(item) == Some(9))
        );
        let project = [
            reason("None", None),
            reason("ConditionalCheckFailed", Some(3)),
        ];
        assert!(
            matches!(budget_refusal(&project), Refusal::Project(Some(item)) if used_in(item) == Some(3))
        );
        let both = [
            reason("ConditionalCheckFailed", None),
            reason("ConditionalCheckFailed", None),
        ];
        assert_eq!(budget_refusal(&both), Refusal::Account(None));
        let conflict = [reason("TransactionConflict", None), reason("None", None)];
        assert_eq!(budget_refusal(&conflict), Refusal::Conflict);
        let other = [reason("ValidationError", None), reason("None", None)];
        assert_eq!(
            budget_refusal(&other),
            Refusal::Other("ValidationError".to_owned())
        );
    }

    #[test]
    fn error_keys_are_the_item_keys() {
        assert_eq!(
            ledger_key("budget#web#2025-03-04T05").unwrap().as_str(),
            "budget#web#2025-03-04T05"
        );
    }
}
