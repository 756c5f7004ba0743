//! The webhook flow over fakes: verify → understand → route → claim → queue, and every way a
//! delivery is refused. The real binary's end-to-end tests are in tests/tests/e2e/webhook_e2e.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::config::{AllowedProjects, Config, ConfigLoadError};
use crate::ports::ServiceError;
use crate::testing::{FakeLedger, now};

const SECRET: &str = "it's a secret to everybody";

#[derive(Default)]
struct FakeSecrets(HashMap<String, String>);

impl Secrets for FakeSecrets {
    async fn secret_value(&self, name: &str) -> Result<String, ServiceError> {
        self.0.get(name).cloned().ok_or(ServiceError::NotFound {
            service: "secretsmanager",
            operation: "GetSecretValue",
            message: name.to_owned(),
        })
    }
}

#[derive(Default)]
struct FakeQueue {
    sent: Mutex<Vec<StarterWork>>,
    down: Mutex<bool>,
}

impl StartQueue for FakeQueue {
    async fn enqueue(&self, work: &[StarterWork]) -> Result<(), ServiceError> {
        if *self.down.lock().unwrap() {
            return Err(ServiceError::Unavailable {
                service: "sqs",
                operation: "SendMessageBatch",
                message: "down".into(),
            });
        }
        self.sent.lock().unwrap().extend(work.iter().cloned());
        Ok(())
    }
}

fn ports() -> WebhookPorts<FakeSecrets, FakeLedger, FakeQueue> {
    let secrets = FakeSecrets(HashMap::from([(
        "hooks/github".to_owned(),
        SECRET.to_owned(),
    )]));
    WebhookPorts {
        secrets: WebhookSecretCache::new(secrets, Duration::from_secs(300)),
        ledger: FakeLedger::default(),
        queue: FakeQueue::default(),
    }
}

fn config() -> Config {
    let text = r#"
[webhooks]
max_body_bytes = 20000
[webhooks.secrets]
github = ["hooks/github"]

[[projects]]
name = "hello-*"

[[repositories]]
provider = "github"
name = "Codertocat/Hello-World"
[[repositories.targets]]
project = "hello-ci"
filter_groups = [[{ type = "EVENT", pattern = "PUSH, PULL_REQUEST_UPDATED" }]]
"#;
    Config::from_toml(text, &AllowedProjects::parse("hello-*").unwrap()).unwrap()
}

/// The published GitHub push sample is a tag deletion; this is the same delivery as a push of
/// one commit to `feature/x`.
fn push_body() -> Vec<u8> {
    let mut push: Value = serde_json::from_slice(include_bytes!(
        "../../../tests/fixtures/webhooks/github/push.json"
    ))
    .unwrap();
    push["ref"] = json!("refs/heads/feature/x");
    push["deleted"] = json!(false);
    push["after"] = json!("a10867b14bb761a232cd80139fbd4c0d33264240");
    push["head_commit"] = json!({"id": "a10867b14bb761a232cd80139fbd4c0d33264240",
        "message": "fix", "added": [], "removed": [], "modified": ["README.md"]});
    push["commits"] = json!([push["head_commit"].clone()]);
    serde_json::to_vec(&push).unwrap()
}

fn signed(event: &str, delivery: &str, body: &[u8], secret: &str) -> HeaderMap {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut headers = HeaderMap::new();
    headers.insert("x-github-event", HeaderValue::from_str(event).unwrap());
    headers.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).unwrap(),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

async fn post(
    ports: &WebhookPorts<FakeSecrets, FakeLedger, FakeQueue>,
    config: Result<&Config, &ConfigLoadError>,
    provider: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Value) {
    let request = WebhookRequest {
        method: &Method::POST,
        provider,
        headers,
        body,
    };
    let response = handle(ports, config, request, now(), Duration::from_secs(10)).await;
    let status = response.status();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not a text body: {other:?}"),
    };
    (status, body)
}

fn sent(ports: &WebhookPorts<FakeSecrets, FakeLedger, FakeQueue>) -> Vec<StarterWork> {
    ports.queue.sent.lock().unwrap().clone()
}

#[tokio::test]
async fn a_verified_push_queues_one_start_with_the_autopilot_variables() {
    let (ports, config, body) = (ports(), config(), push_body());
    let headers = signed("push", "d-1", &body, SECRET);
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer["queued"],
        json!([{"project": "hello-ci", "action": "start", "event": "push", "branch": "feature/x"}])
    );
    let sent = sent(&ports);
    assert_eq!(sent.len(), 1);
    let StarterWork::Start(start) = &sent[0] else {
        panic!("not a start: {sent:?}")
    };
    assert_eq!(start.project, "hello-ci");
    assert_eq!(
        start.source_version.as_deref(),
        Some("a10867b14bb761a232cd80139fbd4c0d33264240")
    );
    let vars: HashMap<_, _> = start
        .environment
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(vars.get("AUTOPILOT_BRANCH"), Some(&"feature/x"));
    assert_eq!(vars.get("AUTOPILOT_DELIVERY"), Some(&"d-1"));
    assert_eq!(vars.get("AUTOPILOT_PROVIDER"), Some(&"github"));
}

#[tokio::test]
async fn the_same_delivery_again_is_a_duplicate_and_queues_nothing() {
    let (ports, config, body) = (ports(), config(), push_body());
    let headers = signed("push", "d-2", &body, SECRET);
    post(&ports, Ok(&config), "github", &headers, &body).await;
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["queued"], json!([]));
    assert_eq!(answer["duplicates"], json!([{"project": "hello-ci"}]));
    assert_eq!(sent(&ports).len(), 1);
    // Another delivery of the same commit is another delivery.
    let headers = signed("push", "d-3", &body, SECRET);
    post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(sent(&ports).len(), 2);
}

#[tokio::test]
async fn one_changed_byte_or_another_secret_is_401_and_nothing_is_claimed_or_queued() {
    let (ports, config, body) = (ports(), config(), push_body());
    let headers = signed("push", "d-4", &body, SECRET);
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"]["code"], "unauthorized");
    let headers = signed("push", "d-4", &body, "another secret");
    let (status, _) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(sent(&ports).is_empty());
    assert_eq!(ports.ledger.claims_made(), 0);
}

#[tokio::test]
async fn bad_requests_get_their_status_and_a_json_error() {
    let (ports, config, body) = (ports(), config(), push_body());
    let headers = signed("push", "d-5", &body, SECRET);
    let (status, answer) = post(&ports, Ok(&config), "gitea", &headers, &body).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    // GitLab has no secret configured: the provider is not set up here.
    let (status, _) = post(&ports, Ok(&config), "gitlab", &headers, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let big = vec![b' '; 20001];
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "payload_too_large");
    let garbage = b"{not json".to_vec();
    let headers = signed("push", "d-6", &garbage, SECRET);
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let mut no_delivery = signed("push", "d-7", &body, SECRET);
    no_delivery.remove("x-github-delivery");
    let (status, _) = post(&ports, Ok(&config), "github", &no_delivery, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let request = WebhookRequest {
        method: &Method::GET,
        provider: "github",
        headers: &headers,
        body: &[],
    };
    let response = handle(&ports, Ok(&config), request, now(), Duration::from_secs(5)).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(sent(&ports).is_empty());
}

#[tokio::test]
async fn ping_is_200_and_unsupported_events_are_ignored_with_the_reason() {
    let (ports, config) = (ports(), config());
    let ping = include_bytes!("../../../tests/fixtures/webhooks/github/ping.json");
    let headers = signed("ping", "d-8", ping, SECRET);
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, ping).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"status": "pong"}))
    );
    let headers = signed("star", "d-9", b"{}", SECRET);
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, b"{}").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["ignored"][0]["reason"], "unsupported_event: star");
    assert_eq!(answer["delivery"], "d-9");
    // The published push sample deletes a tag: nothing to build.
    let deletion = include_bytes!("../../../tests/fixtures/webhooks/github/push.json");
    let headers = signed("push", "d-10", deletion, SECRET);
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, deletion).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        answer["ignored"],
        json!([{"project": "hello-ci", "reason": "ref_deleted"}])
    );
    assert!(sent(&ports).is_empty());
}

#[tokio::test]
async fn a_queue_failure_is_503_and_releases_the_claims_so_a_redelivery_queues() {
    let (ports, config, body) = (ports(), config(), push_body());
    let headers = signed("push", "d-11", &body, SECRET);
    *ports.queue.down.lock().unwrap() = true;
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], "upstream_unavailable");
    *ports.queue.down.lock().unwrap() = false;
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["queued"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(sent(&ports).len(), 1);
}

#[tokio::test]
async fn an_unavailable_ledger_or_configuration_is_503_and_queues_nothing() {
    let (ports, config, body) = (ports(), config(), push_body());
    let headers = signed("push", "d-12", &body, SECRET);
    ports.ledger.set_unavailable(true);
    let (status, _) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    ports.ledger.set_unavailable(false);
    let down = ConfigLoadError::Unavailable(ServiceError::Unavailable {
        service: "ssm",
        operation: "GetParameter",
        message: "throttled".into(),
    });
    let (status, _) = post(&ports, Err(&down), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(sent(&ports).is_empty());
}

#[tokio::test]
async fn an_unconfigured_repository_is_ignored_with_the_reason() {
    let (ports, config) = (ports(), config());
    let mut push: Value = serde_json::from_slice(&push_body()).unwrap();
    push["repository"]["full_name"] = json!("someone/else");
    let body = serde_json::to_vec(&push).unwrap();
    let headers = signed("push", "d-13", &body, SECRET);
    let (status, answer) = post(&ports, Ok(&config), "github", &headers, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        answer["ignored"],
        json!([{"project": null, "reason": "repository_not_configured"}])
    );
    assert!(sent(&ports).is_empty());
}
