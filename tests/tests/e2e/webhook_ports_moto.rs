//! The webhook function's adapters against moto: webhook secrets from Secrets Manager (alone and
//! through the secret cache) and the SQS start queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autopilot::aws::{Clients, MAX_BATCH_ENTRIES, SecretsManagerSecrets, SqsStartQueue};
use autopilot::model::EnvironmentVariable;
use autopilot::ports::{Secrets, ServiceError, StartQueue};
use autopilot::start::{BatchStart, StartIdentity, StarterWork, SupersedeScope};
use autopilot::webhook::Provider;
use autopilot::webhook::secret_cache::WebhookSecretCache;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use harness::moto::MotoServer;
use harness::stack;

/// An upper bound on waiting for sent messages to be receivable, not an expectation.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

async fn clients(moto: &MotoServer) -> Clients {
    Clients::from_sdk_config(&moto.sdk_config().await)
}

async fn create_secret(clients: &Clients, name: &str, value: &str) {
    stack::create_secret(&clients.secretsmanager, name, value)
        .await
        .unwrap();
}

/// Creates the start queue; returns its URL.
async fn start_queue(sqs: &aws_sdk_sqs::Client) -> String {
    stack::create_queue(sqs, "autopilot-start", &[])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_secret_string_is_read_by_name_and_by_arn() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    let arn = clients
        .secretsmanager
        .create_secret()
        .name("autopilot/github")
        .secret_string("s3cr3t")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let secrets = clients.secrets();

    assert_eq!(
        secrets.secret_value("autopilot/github").await.unwrap(),
        "s3cr3t"
    );
    assert_eq!(secrets.secret_value(&arn).await.unwrap(), "s3cr3t");
}

#[tokio::test]
async fn a_binary_secret_is_rejected_without_its_value() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    clients
        .secretsmanager
        .create_secret()
        .name("binary")
        .secret_binary(Blob::new(b"b1nary-value".to_vec()))
        .send()
        .await
        .unwrap();

    let error = clients.secrets().secret_value("binary").await.unwrap_err();
    assert!(matches!(error, ServiceError::Rejected { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("SecretString"), "{text}");
    assert!(!text.contains("b1nary"), "{text}");
}

#[tokio::test]
async fn a_missing_or_deleted_secret_is_not_found() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    create_secret(&clients, "rotated-away", "old").await;
    clients
        .secretsmanager
        .delete_secret()
        .secret_id("rotated-away")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let secrets = clients.secrets();

    for name in ["never-created", "rotated-away"] {
        let error = secrets.secret_value(name).await.unwrap_err();
        assert!(
            matches!(error, ServiceError::NotFound { .. }),
            "{name}: {error:?}"
        );
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn an_unreachable_secrets_manager_is_unavailable() {
    let moto = MotoServer::start().await.unwrap();
    // A port that was free a moment ago: nothing answers there.
    let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = moto.sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config)
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build(),
    );

    let error = SecretsManagerSecrets::new(client)
        .secret_value("anything")
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn the_cache_serves_the_secrets_that_exist() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    create_secret(&clients, "github-current", "one").await;
    create_secret(&clients, "github-next", "two").await;
    let cache = WebhookSecretCache::new(clients.secrets(), Duration::from_secs(300));
    let names: Vec<String> = ["github-current", "github-missing", "github-next"]
        .map(String::from)
        .to_vec();

    let values = cache.secrets_for(&names).await.unwrap();
    let exposed: Vec<&[u8]> = values.iter().map(|v| v.expose_secret()).collect();
    assert_eq!(exposed, [b"one".as_slice(), b"two".as_slice()]);

    let error = cache
        .secrets_for(&["github-missing".to_owned()])
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error:?}");
}

/// Counts the entries of every `SendMessageBatch` request a client sends (retries included).
#[derive(Debug, Clone, Default)]
struct BatchSizes(Arc<Mutex<Vec<usize>>>);

impl BatchSizes {
    fn seen(&self) -> Vec<usize> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for BatchSizes {
    fn name(&self) -> &'static str {
        "BatchSizes"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        if request.headers().get("x-amz-target") == Some("AmazonSQS.SendMessageBatch") {
            let body: serde_json::Value =
                serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
            let entries = body["Entries"].as_array().map_or(0, Vec::len);
            self.0.lock().unwrap().push(entries);
        }
        Ok(())
    }
}

fn starter_work(n: usize) -> StarterWork {
    let identity = StartIdentity::Webhook {
        provider: Provider::GitHub,
        delivery_id: format!("delivery-{n}"),
        change_index: Some(u32::try_from(n).unwrap()),
    };
    if n % 4 == 3 {
        return StarterWork::StopPullRequest {
            project: format!("project-{n:02}"),
            pull_request: n.to_string(),
            identity,
        };
    }
    StarterWork::Start(BatchStart {
        project: format!("project-{n:02}"),
        source_version: Some(format!("refs/heads/feature/{n}")),
        environment: vec![EnvironmentVariable {
            name: "AUTOPILOT_BRANCH".into(),
            value: format!("feature/{n}"),
            variable_type: Default::default(),
        }],
        report_status: Some(true),
        buildspec_override: None,
        timeout_minutes: None,
        reason: Some(format!("push to feature/{n}")),
        identity,
        supersede: Some(SupersedeScope::Branch(format!("feature/{n}"))),
    })
}

fn project(work: &StarterWork) -> &str {
    match work {
        StarterWork::Start(start) => &start.project,
        StarterWork::StopPullRequest { project, .. } => project,
    }
}

/// Receives until `count` messages arrived (within [`DELIVERY_DEADLINE`]), then checks that no
/// more follow.
async fn receive_works(client: &aws_sdk_sqs::Client, url: &str, count: usize) -> Vec<StarterWork> {
    let started = Instant::now();
    let mut works = Vec::new();
    loop {
        let messages = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap()
            .messages()
            .to_vec();
        let empty = messages.is_empty();
        for message in messages {
            works.push(serde_json::from_str::<StarterWork>(message.body().unwrap()).unwrap());
        }
        if works.len() >= count && empty {
            return works;
        }
        assert!(
            started.elapsed() < DELIVERY_DEADLINE,
            "{} of {count} messages within {DELIVERY_DEADLINE:?}",
            works.len()
        );
        if empty {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn every_work_arrives_once_in_batches_of_at_most_ten() {
    let moto = MotoServer::start().await.unwrap();
    let config = moto.sdk_config().await;
    let clients = Clients::from_sdk_config(&config);
    let url = start_queue(&clients.sqs).await;
    let sizes = BatchSizes::default();
    let counted = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(sizes.clone())
            .build(),
    );
    let queue = SqsStartQueue::new(counted, &url);
    let sent: Vec<StarterWork> = (0..23).map(starter_work).collect();

    queue.enqueue(&sent).await.unwrap();

    assert_eq!(sizes.seen(), [MAX_BATCH_ENTRIES, MAX_BATCH_ENTRIES, 3]);
    let mut received = receive_works(&clients.sqs, &url, sent.len()).await;
    received.sort_by(|a, b| project(a).cmp(project(b)));
    assert_eq!(received, sent);
}

#[tokio::test]
async fn the_queue_built_from_clients_sends_and_nothing_is_sent_for_no_work() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    let url = start_queue(&clients.sqs).await;
    let queue = clients.start_queue(&url);

    queue.enqueue(&[]).await.unwrap();
    queue.enqueue(&[starter_work(1)]).await.unwrap();

    let received = receive_works(&clients.sqs, &url, 1).await;
    assert_eq!(received, [starter_work(1)]);
}

#[tokio::test]
async fn oversized_work_sends_nothing() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    let url = start_queue(&clients.sqs).await;
    let mut huge = starter_work(2);
    if let StarterWork::Start(start) = &mut huge {
        start.reason = Some("x".repeat(autopilot::aws::MAX_MESSAGE_BYTES));
    }

    let error = clients
        .start_queue(&url)
        .enqueue(&[starter_work(1), huge])
        .await
        .unwrap_err();
    assert!(matches!(error, ServiceError::Rejected { .. }), "{error:?}");
    let left = clients
        .sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap();
    assert!(left.messages().is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_missing_queue_is_not_found() {
    let moto = MotoServer::start().await.unwrap();
    let clients = clients(&moto).await;
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());

    let error = clients
        .start_queue(&missing)
        .enqueue(&[starter_work(1)])
        .await
        .unwrap_err();
    assert!(matches!(error, ServiceError::NotFound { .. }), "{error:?}");
}
