//! The SQS delay queue, the SNS notifier and the CloudWatch Logs tail against moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use autopilot::aws::{CloudWatchBuildLogs, SnsNotifier, SqsDelayQueue};
use autopilot::model::{BatchId, BuildId, LogLocation};
use autopilot::ports::{BuildLogs, DelayQueue, Notifier, ServiceError};
use autopilot::retry::work::{DelayedWork, GaveUpBecause, GaveUpNotice};
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use harness::moto::MotoServer;

/// An upper bound on waiting for a delayed message to show up, not an expectation.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

async fn sqs(moto: &MotoServer) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto.sdk_config().await)
}

async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

async fn queue_attribute(
    client: &aws_sdk_sqs::Client,
    url: &str,
    name: QueueAttributeName,
) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|attributes| attributes.get(&name))
        .cloned()
        .unwrap()
}

/// Whatever is receivable right now (no long polling).
async fn receive_now(client: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap()
        .messages()
        .to_vec()
}

/// Polls until one message is receivable, within [`DELIVERY_DEADLINE`].
async fn receive_one(client: &aws_sdk_sqs::Client, url: &str) -> Message {
    let started = std::time::Instant::now();
    loop {
        let mut messages = receive_now(client, url).await;
        if let Some(message) = messages.pop() {
            assert!(messages.is_empty(), "more than one message: {messages:?}");
            return message;
        }
        assert!(
            started.elapsed() < DELIVERY_DEADLINE,
            "no message on {url} within {DELIVERY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn build(n: u32) -> BuildId {
    BuildId::new("web", &format!("00000000-0000-0000-0000-{n:012}")).unwrap()
}

fn recheck() -> DelayedWork {
    DelayedWork::BatchRecheck {
        batch: BatchId::parse(
            "arn:aws:codebuild:us-east-1:123456789012:build-batch/web:11111111-0000-0000-0000-000000000001",
        )
        .unwrap(),
        build: build(1),
        observed_attempts: 2,
        rechecks: 1,
    }
}

#[tokio::test]
async fn delayed_work_round_trips_through_the_queue() {
    let moto = MotoServer::start().await.unwrap();
    let client = sqs(&moto).await;
    let url = create_queue(&client, "autopilot-delay").await;
    let queue = SqsDelayQueue::new(client.clone(), &url);

    let retry = DelayedWork::RetryAfterBackoff {
        event: serde_json::json!({
            "detail-type": "CodeBuild Build State Change",
            "detail": {"build-status": "FAILED", "project-name": "web"}
        }),
        attempt: 2,
    };
    for work in [retry, recheck()] {
        queue.send_later(&work, Duration::ZERO).await.unwrap();
        let message = receive_one(&client, &url).await;
        let read: DelayedWork = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(read, work);
        client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_delay_is_sent_as_delay_seconds() {
    let moto = MotoServer::start().await.unwrap();
    let client = sqs(&moto).await;
    let url = create_queue(&client, "autopilot-delay").await;
    let queue = SqsDelayQueue::new(client.clone(), &url);

    // A fraction of a second rounds up to a whole one: never back early. Several seconds, so a
    // loaded machine still looks before the message is due.
    queue
        .send_later(&recheck(), Duration::from_millis(4500))
        .await
        .unwrap();
    // Functional, not a timing check: right after sending, the message is held back as
    // delayed; it shows up later.
    assert!(receive_now(&client, &url).await.is_empty());
    assert_eq!(
        queue_attribute(
            &client,
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed
        )
        .await,
        "1"
    );
    let message = receive_one(&client, &url).await;
    assert_eq!(
        serde_json::from_str::<DelayedWork>(message.body().unwrap()).unwrap(),
        recheck()
    );
}

#[tokio::test]
async fn a_delay_beyond_what_sqs_allows_is_clamped() {
    let moto = MotoServer::start().await.unwrap();
    let client = sqs(&moto).await;
    let url = create_queue(&client, "autopilot-delay").await;
    let queue = SqsDelayQueue::new(client.clone(), &url);

    // SQS (and moto) refuse a DelaySeconds above 900: this only succeeds when clamped.
    queue
        .send_later(&recheck(), Duration::from_secs(2000))
        .await
        .unwrap();
    assert!(receive_now(&client, &url).await.is_empty());
    assert_eq!(
        queue_attribute(
            &client,
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed
        )
        .await,
        "1"
    );
}

#[tokio::test]
async fn a_missing_queue_is_not_found() {
    let moto = MotoServer::start().await.unwrap();
    let client = sqs(&moto).await;
    let url = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let err = SqsDelayQueue::new(client, url)
        .send_later(&recheck(), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { .. }), "got {err:?}");
}

fn notice(because: GaveUpBecause) -> GaveUpNotice {
    GaveUpNotice {
        project: "web".to_owned(),
        root_build: build(0),
        last_build: build(3),
        batch: None,
        attempts: 3,
        because,
        reasons: vec!["rate_limited".to_owned()],
    }
}

#[tokio::test]
async fn a_notice_reaches_subscribers_with_subject_and_filterable_attributes() {
    let moto = MotoServer::start().await.unwrap();
    let config = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("autopilot-gave-up")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    // Everything, in SNS's envelope (with the subject), and only open breakers, raw.
    let everything = create_queue(&sqs, "everything").await;
    let breakers = create_queue(&sqs, "breakers").await;
    for (url, raw, filter) in [
        (&everything, false, None),
        (&breakers, true, Some(r#"{"because": ["breaker_open"]}"#)),
    ] {
        let arn = queue_attribute(&sqs, url, QueueAttributeName::QueueArn).await;
        let mut subscribe = sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", raw.to_string());
        if let Some(policy) = filter {
            subscribe = subscribe.attributes("FilterPolicy", policy);
        }
        subscribe.send().await.unwrap();
    }

    let notifier = SnsNotifier::new(sns, &topic);
    let capped = notice(GaveUpBecause::RetryCapReached);
    let breaker = notice(GaveUpBecause::BreakerOpen);
    notifier.gave_up(&capped).await.unwrap();
    notifier.gave_up(&breaker).await.unwrap();

    let mut enveloped = receive_now(&sqs, &everything).await;
    assert_eq!(enveloped.len(), 2, "{enveloped:?}");
    let envelope: serde_json::Value =
        serde_json::from_str(enveloped.remove(0).body().unwrap()).unwrap();
    assert_eq!(envelope["Subject"], "CodeBuild Autopilot gave up on web");
    assert_eq!(envelope["MessageAttributes"]["project"]["Value"], "web");
    assert_eq!(
        envelope["MessageAttributes"]["because"]["Value"],
        "retry_cap_reached"
    );
    let inner: GaveUpNotice = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(inner, capped);

    // The filter on `because` let only the breaker notice through.
    let raw = receive_one(&sqs, &breakers).await;
    let read: GaveUpNotice = serde_json::from_str(raw.body().unwrap()).unwrap();
    assert_eq!(read, breaker);
    let attributes = raw.message_attributes().unwrap();
    assert_eq!(attributes["project"].string_value(), Some("web"));
    assert_eq!(attributes["because"].string_value(), Some("breaker_open"));
}

#[tokio::test]
async fn a_missing_topic_is_not_found() {
    let moto = MotoServer::start().await.unwrap();
    let sns = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    let err = SnsNotifier::new(sns, "arn:aws:sns:us-east-1:123456789012:no-such-topic")
        .gave_up(&notice(GaveUpBecause::RetryCapReached))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { .. }), "got {err:?}");
}

#[tokio::test]
async fn the_tail_is_the_last_lines_oldest_first() {
    let moto = MotoServer::start().await.unwrap();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk_config().await);
    let location = LogLocation {
        group: "/aws/codebuild/web".to_owned(),
        stream: "00000000-0000-0000-0000-000000000001".to_owned(),
    };
    logs.create_log_group()
        .log_group_name(&location.group)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(&location.group)
        .log_stream_name(&location.stream)
        .send()
        .await
        .unwrap();
    let start = chrono::Utc::now().timestamp_millis() - 60_000;
    let events = (0..100).map(|i| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(start + i64::from(i))
            .message(format!("line {i}\n"))
            .build()
            .unwrap()
    });
    logs.put_log_events()
        .log_group_name(&location.group)
        .log_stream_name(&location.stream)
        .set_log_events(Some(events.collect()))
        .send()
        .await
        .unwrap();

    let tail = CloudWatchBuildLogs::new(logs);
    let last: Vec<String> = (95..100).map(|i| format!("line {i}")).collect();
    assert_eq!(tail.tail(&location, 5).await.unwrap(), last);
    // More than the stream holds: all of it, once.
    let all = tail.tail(&location, 500).await.unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all.first().map(String::as_str), Some("line 0"));
    assert_eq!(all.last().map(String::as_str), Some("line 99"));
    assert!(tail.tail(&location, 0).await.unwrap().is_empty());

    let missing = LogLocation {
        stream: "no-such-stream".to_owned(),
        ..location
    };
    let err = tail.tail(&missing, 5).await.unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { .. }), "got {err:?}");
}
