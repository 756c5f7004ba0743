//! [`Ledger`] port over `aws-sdk-dynamodb`: one table, partition key `pk` (the [`LedgerKey`]),
//! conditional writes exactly as `design/idempotency.md` describes.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::ledger::{
    Claim, ClaimOutcome, ClaimRequest, Ledger, LedgerError, LedgerKey, LedgerRecord, PayloadHash,
    RecordStatus, epoch_ms, outcome_of_lost_claim,
};

/// Attribute names of a ledger item (shared with the retry book, which keeps its items in the
/// same table).
pub(super) mod attr {
    pub const PK: &str = "pk";
    pub const STATUS: &str = "status";
    pub const CLAIM_ID: &str = "claim_id";
    pub const IN_PROGRESS_UNTIL: &str = "in_progress_until";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const PAYLOAD_HASH: &str = "payload_hash";
    pub const RESULT: &str = "result";
    pub const REASON: &str = "reason";
}

/// Every attribute is referred to through a name placeholder: `status`, `result` and others are
/// DynamoDB reserved words.
const CLAIM_CONDITION: &str = "attribute_not_exists(#pk) OR #expires_at < :now_s \
     OR (#status = :in_progress AND #in_progress_until < :now_ms)";
/// We still hold the claim. The lease is deliberately not checked: if it ran out but nobody
/// claimed the key since, the mutation we made is still the only one, and recording it is right.
const OWNED_CONDITION: &str = "#claim_id = :claim_id AND #status = :in_progress";

/// The DynamoDB-backed ledger (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
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

    /// Creates the ledger table (on-demand, `pk` string hash key) for tests and the demo; the
    /// deployed table, with TTL on `expires_at`, comes from `template.yaml`.
    pub async fn create_table(&self) -> Result<(), LedgerError> {
        const OP: &str = "CreateTable";
        let definition = AttributeDefinition::builder()
            .attribute_name(attr::PK)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| unexpected_build(OP, &e))?;
        let key = KeySchemaElement::builder()
            .attribute_name(attr::PK)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| unexpected_build(OP, &e))?;
        self.client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(definition)
            .key_schema(key)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        Ok(())
    }

    /// The fallback when a lost claim's answer carried no item: a consistent read.
    async fn read(&self, key: &LedgerKey) -> Result<Option<LedgerRecord>, LedgerError> {
        const OP: &str = "GetItem";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::PK, s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, e))?;
        out.item().map(record_from_item).transpose()
    }

    fn owned(&self, claim: &Claim) -> OwnedCondition {
        OwnedCondition {
            names: [("#claim_id", attr::CLAIM_ID), ("#status", attr::STATUS)],
            values: [
                (":claim_id", s(&claim.claim_id)),
                (":in_progress", s(RecordStatus::InProgress.as_str())),
            ],
        }
    }
}

/// The names and values [`OWNED_CONDITION`] refers to.
struct OwnedCondition {
    names: [(&'static str, &'static str); 2],
    values: [(&'static str, AttributeValue); 2],
}

impl Ledger for DynamoLedger {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, LedgerError> {
        const OP: &str = "PutItem";
        let claim = Claim {
            key: request.key.clone(),
            claim_id: uuid::Uuid::new_v4().to_string(),
            in_progress_until_ms: request.in_progress_until_ms(),
        };
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(attr::PK, s(request.key.as_str()))
            .item(attr::STATUS, s(RecordStatus::InProgress.as_str()))
            .item(attr::CLAIM_ID, s(&claim.claim_id))
            .item(attr::IN_PROGRESS_UNTIL, n(claim.in_progress_until_ms))
            .item(attr::EXPIRES_AT, n(request.expires_at_s()))
            .item(attr::PAYLOAD_HASH, s(request.payload_hash.as_str()))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#expires_at", attr::EXPIRES_AT)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#in_progress_until", attr::IN_PROGRESS_UNTIL)
            .expression_attribute_values(":now_s", n(request.now.timestamp()))
            .expression_attribute_values(":now_ms", n(epoch_ms(request.now)))
            .expression_attribute_values(":in_progress", s(RecordStatus::InProgress.as_str()))
            // The loser learns what beat it from the failed write itself, without another read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(ClaimOutcome::Won(claim)),
            Err(err) => err,
        };
        let existing = match lost_claim_item(&err) {
            Some(item) => Some(record_from_item(item)?),
            None if is_condition_failure(&err) => self.read(&request.key).await?,
            None => return Err(map_sdk_error(OP, err)),
        };
        match existing {
            Some(record) => outcome_of_lost_claim(record, &request.payload_hash),
            // It was there when the condition failed and gone when read: released or expired
            // in between. Another claim decides; say so as a retryable error.
            None => Err(LedgerError::Contended {
                key: request.key.clone(),
            }),
        }
    }

    async fn complete(&self, claim: &Claim, result: &serde_json::Value) -> Result<(), LedgerError> {
        self.close(
            claim,
            RecordStatus::Completed,
            attr::RESULT,
            &result.to_string(),
        )
        .await
    }

    async fn release(&self, claim: &Claim) -> Result<(), LedgerError> {
        const OP: &str = "DeleteItem";
        let owned = self.owned(claim);
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(attr::PK, s(claim.key.as_str()))
            .condition_expression(OWNED_CONDITION)
            .set_expression_attribute_names(Some(names(owned.names.into_iter())))
            .set_expression_attribute_values(Some(values(owned.values.into_iter())))
            .send()
            .await;
        owned_write(OP, claim, sent.map(|_| ()))
    }

    async fn fail(&self, claim: &Claim, reason: &str) -> Result<(), LedgerError> {
        self.close(claim, RecordStatus::Failed, attr::REASON, reason)
            .await
    }
}

impl DynamoLedger {
    /// Ends an owned claim: sets its final `status` and the one attribute that goes with it
    /// (the stored result of a completion, the reason of a failure), conditioned on still
    /// holding the claim.
    async fn close(
        &self,
        claim: &Claim,
        status: RecordStatus,
        attribute: &'static str,
        value: &str,
    ) -> Result<(), LedgerError> {
        const OP: &str = "UpdateItem";
        let owned = self.owned(claim);
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::PK, s(claim.key.as_str()))
            .update_expression("SET #status = :status, #detail = :detail")
            .condition_expression(OWNED_CONDITION)
            .set_expression_attribute_names(Some(names(
                owned.names.into_iter().chain([("#detail", attribute)]),
            )))
            .set_expression_attribute_values(Some(values(
                owned
                    .values
                    .into_iter()
                    .chain([(":status", s(status.as_str())), (":detail", s(value))]),
            )))
            .send()
            .await;
        owned_write(OP, claim, sent.map(|_| ()))
    }
}

/// A write conditioned on owning the claim: a failed condition means the claim is lost.
fn owned_write<E>(
    operation: &'static str,
    claim: &Claim,
    sent: Result<(), SdkError<E, HttpResponse>>,
) -> Result<(), LedgerError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(()) => Ok(()),
        Err(err) if is_condition_failure(&err) => Err(LedgerError::ClaimLost {
            key: claim.key.clone(),
        }),
        Err(err) => Err(map_sdk_error(operation, err)),
    }
}

fn lost_claim_item<R>(
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

pub(super) fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err, SdkError::ServiceError(service)
        if service.err().code() == Some("ConditionalCheckFailedException"))
}

/// Reads a stored item back into a [`LedgerRecord`].
fn record_from_item(item: &HashMap<String, AttributeValue>) -> Result<LedgerRecord, LedgerError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    let status_text = text(attr::STATUS).ok_or_else(|| malformed("no status"))?;
    let status = RecordStatus::parse(status_text)
        .ok_or_else(|| malformed(&format!("unknown status {status_text:?}")))?;
    let payload_hash = text(attr::PAYLOAD_HASH).ok_or_else(|| malformed("no payload_hash"))?;
    let in_progress_until_ms = item
        .get(attr::IN_PROGRESS_UNTIL)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| malformed("no numeric in_progress_until"))?;
    let result = text(attr::RESULT)
        .map(|raw| {
            serde_json::from_str(raw).map_err(|e| malformed(&format!("result is not JSON: {e}")))
        })
        .transpose()?;
    Ok(LedgerRecord {
        status,
        payload_hash: PayloadHash::from_stored(payload_hash),
        in_progress_until_ms,
        result,
        reason: text(attr::REASON).map(str::to_owned),
    })
}

/// SDK errors → [`LedgerError`]; "retryable" means the ledger may answer later.
pub(super) fn map_sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            LedgerError::Unavailable { operation, message }
        }
        SdkError::ResponseError(response) if response.raw().status().is_server_error() => {
            LedgerError::Unavailable { operation, message }
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            match service.err().code() {
                Some(
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "LimitExceededException",
                ) => LedgerError::Throttled { operation, message },
                _ if status.is_server_error() => LedgerError::Unavailable { operation, message },
                code => LedgerError::Unexpected {
                    operation,
                    code: code.map(str::to_owned),
                    message,
                },
            }
        }
        _ => LedgerError::Unexpected {
            operation,
            code: None,
            message,
        },
    }
}

pub(super) fn unexpected_build(
    operation: &'static str,
    err: &dyn std::error::Error,
) -> LedgerError {
    LedgerError::Unexpected {
        operation,
        code: None,
        message: err.to_string(),
    }
}

pub(super) fn malformed(message: &str) -> LedgerError {
    LedgerError::Malformed {
        message: message.to_owned(),
    }
}

pub(super) fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

pub(super) fn n(number: i64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn names<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> HashMap<String, String> {
    pairs
        .map(|(placeholder, name)| (placeholder.to_owned(), name.to_owned()))
        .collect()
}

fn values<'a>(
    pairs: impl Iterator<Item = (&'a str, AttributeValue)>,
) -> HashMap<String, AttributeValue> {
    pairs
        .map(|(placeholder, value)| (placeholder.to_owned(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn reads_a_completed_item() {
        let record = record_from_item(&item(&[
            (attr::STATUS, s("COMPLETED")),
            (attr::PAYLOAD_HASH, s("h")),
            (attr::IN_PROGRESS_UNTIL, n(7)),
            (attr::RESULT, s(r#"{"build":"p:1"}"#)),
        ]))
        .unwrap();
        assert_eq!(record.status, RecordStatus::Completed);
        assert_eq!(record.in_progress_until_ms, 7);
        assert_eq!(record.result, Some(serde_json::json!({"build": "p:1"})));
    }

    #[test]
    fn rejects_unreadable_items() {
        let base = [
            (attr::STATUS, s("IN_PROGRESS")),
            (attr::PAYLOAD_HASH, s("h")),
            (attr::IN_PROGRESS_UNTIL, n(7)),
        ];
        assert!(record_from_item(&item(&base)).is_ok());
        for broken in [
            vec![(attr::STATUS, s("DONE"))],
            vec![(attr::IN_PROGRESS_UNTIL, s("7"))],
            vec![(attr::RESULT, s("not json"))],
        ] {
            let mut it = item(&base);
            it.extend(item(&broken));
            assert!(
                matches!(record_from_item(&it), Err(LedgerError::Malformed { .. })),
                "{broken:?}"
            );
        }
        let mut no_hash = item(&base);
        no_hash.remove(attr::PAYLOAD_HASH);
        assert!(record_from_item(&no_hash).is_err());
    }
}
