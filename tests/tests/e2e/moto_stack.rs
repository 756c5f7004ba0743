//! The local AWS stack works: the real SDK against moto's server for the services our functions
//! use besides CodeBuild (DynamoDB for the idempotency ledger, SQS for on-failure destinations).
//!
//! moto's limits that tests elsewhere must work around (documented here, where the stack is
//! proven):
//! - EventBridge `TestEventPattern` is a stub that does not evaluate patterns. To test an event
//!   pattern, create a rule with an SQS target, `PutEvents`, and read the queue.
//! - DynamoDB TTL is stored but never enforced: expired items stay readable. Tests of expiry must
//!   compare the `expires_at` attribute with the clock themselves.
//! - moto's values are not a reference for the real service (see `contract_moto.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::path::Path;

use harness::moto::MotoServer;

const TABLE: &str = "autopilot-ledger";

async fn create_ledger_table(ddb: &aws_sdk_dynamodb::Client) {
    ddb.create_table()
        .table_name(TABLE)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// The ledger's claim is a conditional put: only the first of two claims of a key may win.
async fn claim(ddb: &aws_sdk_dynamodb::Client, key: &str, owner: &str) -> Result<(), String> {
    ddb.put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(key.to_owned()))
        .item("owner", AttributeValue::S(owner.to_owned()))
        .item("state", AttributeValue::S("in_flight".to_owned()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map(|_| ())
        .map_err(|error| {
            let service_error = error.into_service_error();
            if service_error.is_conditional_check_failed_exception() {
                "ConditionalCheckFailed".to_owned()
            } else {
                format!("unexpected error: {service_error:?}")
            }
        })
}

#[tokio::test]
async fn dynamodb_conditional_put_lets_only_the_first_claim_win() {
    let moto = MotoServer::start().await.unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_ledger_table(&ddb).await;

    claim(&ddb, "retry#proj:1#1", "first").await.unwrap();
    let second = claim(&ddb, "retry#proj:1#1", "second").await;
    assert_eq!(second, Err("ConditionalCheckFailed".to_owned()));
    // Another key is independent of the first.
    claim(&ddb, "retry#proj:1#2", "second").await.unwrap();

    let stored = ddb
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S("retry#proj:1#1".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let owner = stored.item().and_then(|item| item.get("owner")).cloned();
    assert_eq!(owner, Some(AttributeValue::S("first".to_owned())));
}

/// Twenty racing claims of one key through `endpoint()` (the ordering proxy): exactly one wins,
/// as with DynamoDB. (Straight at moto this race can let two through: its conditional writes
/// are not atomic, which is why the proxy exists.) An SQS long poll meanwhile does not wait
/// for the DynamoDB turns and is not counted as one.
#[tokio::test]
async fn racing_claims_through_the_endpoint_have_one_winner() {
    let moto = MotoServer::start().await.unwrap();
    let config = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    create_ledger_table(&ddb).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name("idle")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let poll = tokio::spawn(async move {
        sqs.receive_message()
            .queue_url(queue)
            .wait_time_seconds(2)
            .send()
            .await
    });
    let before = moto.dynamodb_requests();

    let mut racers = tokio::task::JoinSet::new();
    for owner in 0..20 {
        let ddb = ddb.clone();
        racers.spawn(async move { claim(&ddb, "retry#proj:1#1", &owner.to_string()).await });
    }
    let mut winners = 0;
    while let Some(result) = racers.join_next().await {
        match result.unwrap() {
            Ok(()) => winners += 1,
            Err(code) => assert_eq!(code, "ConditionalCheckFailed"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(moto.dynamodb_requests(), before + 20);
    assert!(poll.await.unwrap().is_ok());
    assert_ne!(moto.endpoint(), moto.direct_endpoint());
}

#[tokio::test]
async fn sqs_delivers_a_sent_message() {
    let moto = MotoServer::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);

    let queue_url = sqs
        .create_queue()
        .queue_name("autopilot-on-failure")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let body = r#"{"requestContext":{"condition":"RetriesExhausted"}}"#;
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(body)
        .send()
        .await
        .unwrap();

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = received
        .messages()
        .iter()
        .filter_map(|message| message.body())
        .collect();
    assert_eq!(bodies, vec![body]);
}

#[tokio::test]
async fn each_server_has_its_own_state() {
    let first = MotoServer::start().await.unwrap();
    let second = MotoServer::start().await.unwrap();
    assert_ne!(first.endpoint(), second.endpoint());

    let sqs_first = aws_sdk_sqs::Client::new(&first.sdk_config().await);
    let sqs_second = aws_sdk_sqs::Client::new(&second.sdk_config().await);
    sqs_first
        .create_queue()
        .queue_name("only-on-first")
        .send()
        .await
        .unwrap();
    let on_second = sqs_second.list_queues().send().await.unwrap();
    assert!(on_second.queue_urls().is_empty(), "{on_second:?}");
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let moto = MotoServer::start().await.unwrap();
    let endpoint = moto.endpoint().to_owned();
    let http = reqwest::Client::new();
    http.get(format!("{endpoint}/moto-api/data.json"))
        .send()
        .await
        .unwrap();
    drop(moto);
    let after = http
        .get(format!("{endpoint}/moto-api/data.json"))
        .send()
        .await;
    assert!(after.is_err(), "moto still answers after drop: {after:?}");
}

#[tokio::test]
async fn a_missing_executable_tells_how_to_install_it() {
    let error = MotoServer::start_with_binary(Path::new("/nowhere/moto_server"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("make venv"), "{message}");
    assert!(message.contains("/nowhere/moto_server"), "{message}");
}

#[tokio::test]
async fn a_server_that_dies_on_start_is_reported_with_its_log() {
    // `false` exits at once whatever its arguments: stands in for a broken moto install.
    let error = MotoServer::start_with_binary(Path::new("/bin/false"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, harness::moto::MotoError::Exited { .. }),
        "{error}"
    );
}
