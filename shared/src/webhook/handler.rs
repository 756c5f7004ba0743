//! The webhook function's flow: answer fast, act reliably. A delivery is checked for size,
//! verified, understood and routed; each (delivery, change, project) is claimed in the ledger
//! and put on the start queue as [`StarterWork`]; the answer (202) says what was queued, what
//! was a duplicate and what was ignored and why. The batch starter does the CodeBuild calls.
//!
//! Why a queue and not `StartBuildBatch` here: API Gateway invokes synchronously, so no
//! dead-letter queue catches a failure, and GitHub does not redeliver by itself. A message on
//! the queue is retried and, at worst, dead-lettered; it is never lost.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use super::body::{BodyError, check_size};
use super::delivery::{DeliveryError, delivery_headers, understand};
use super::route::{RouteOutcome, route, work_for};
use super::secret_cache::{SecretCacheError, WebhookSecretCache};
use super::verify::{SignatureError, verify_signature};
use super::{Provider, SourceEvent, Understood};
use crate::config::{Config, ConfigLoadError};
use crate::http::{ApiError, json_response};
use crate::ledger::{Claim, ClaimOutcome, ClaimRequest, Ledger, LedgerKey, PayloadHash};
use crate::metrics;
use crate::ports::{Secrets, StartQueue};
use crate::start::StarterWork;

/// The function name in metrics and logs.
pub const FUNCTION_NAME: &str = "webhook";
/// The ledger operation of queueing one start (or stop) for one (delivery, change, project).
pub const ENQUEUE_OPERATION: &str = "webhook-enqueue";
/// The environment variable with the start queue's URL.
pub const START_QUEUE_URL_ENV: &str = "AUTOPILOT_START_QUEUE_URL";

/// What the webhook flow needs from the outside world.
pub struct WebhookPorts<S, L, Q> {
    /// The webhook secrets, cached.
    pub secrets: WebhookSecretCache<S>,
    /// The idempotency ledger.
    pub ledger: L,
    /// The start queue.
    pub queue: Q,
}

/// One HTTP request as the flow sees it (built from API Gateway's event by the function).
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The `{provider}` path segment.
    pub provider: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body's raw bytes (API Gateway's base64 already decoded).
    pub body: &'a [u8],
}

/// Answers one delivery. `config` is the function's cached configuration (or why there is
/// none); `now` and `lease` bound the ledger claims (the lease ends before the invocation does).
pub async fn handle<S: Secrets, L: Ledger, Q: StartQueue>(
    ports: &WebhookPorts<S, L, Q>,
    config: Result<&Config, &ConfigLoadError>,
    request: WebhookRequest<'_>,
    now: DateTime<Utc>,
    lease: Duration,
) -> Response<Body> {
    match answer(ports, config, request, now, lease).await {
        Ok((status, body)) => json_response(status, &body),
        Err(error) => {
            reject(request.provider, &error, now);
            error.into_response()
        }
    }
}

async fn answer<S: Secrets, L: Ledger, Q: StartQueue>(
    ports: &WebhookPorts<S, L, Q>,
    config: Result<&Config, &ConfigLoadError>,
    request: WebhookRequest<'_>,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<(StatusCode, Value), ApiError> {
    let provider = Provider::parse(request.provider).ok_or_else(|| {
        ApiError::NotFound(format!("unknown webhook provider {:?}", request.provider))
    })?;
    if request.method != Method::POST {
        return Err(ApiError::MethodNotAllowed(format!(
            "{} /webhooks/{provider}: only POST",
            request.method
        )));
    }
    let config = config.map_err(config_unavailable)?;
    check_size(request.body.len(), config.webhooks.max_body_bytes).map_err(body_error)?;
    let names = config.webhooks.secrets.for_provider(provider);
    if names.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{provider} webhooks are not configured (no secret in [webhooks.secrets])"
        )));
    }
    let secrets = ports
        .secrets
        .secrets_for(names)
        .await
        .map_err(secrets_unavailable)?;
    verify_signature(provider, request.headers, request.body, &secrets).map_err(signature_error)?;
    let events =
        match understand(provider, request.headers, request.body).map_err(delivery_error)? {
            Understood::Ping => return Ok((StatusCode::OK, json!({"status": "pong"}))),
            Understood::Ignored { reason } => {
                // `understand` read and checked the delivery headers already.
                let delivery = delivery_headers(provider, request.headers)
                    .map(|h| h.delivery_id)
                    .ok();
                tracing::info!(action = "ignored", reason = %reason, provider = %provider,
                    delivery = delivery.as_deref().unwrap_or(""), "webhook delivery not acted on");
                let body = json!({"provider": provider, "delivery": delivery, "queued": [],
                    "duplicates": [], "ignored": [{"project": null, "reason": reason}]});
                return Ok((StatusCode::ACCEPTED, body));
            }
            Understood::Changes(events) => events,
        };
    let answer = enqueue(ports, config, &events, now, lease).await?;
    emit_metrics(&answer, now);
    Ok((StatusCode::ACCEPTED, answer.into_json(provider, &events)))
}

/// What one delivery came to.
#[derive(Debug, Default)]
struct Answer {
    queued: Vec<Value>,
    duplicates: Vec<Value>,
    ignored: Vec<Value>,
}

impl Answer {
    fn into_json(self, provider: Provider, events: &[SourceEvent]) -> Value {
        let delivery = events.first().map(|e| e.delivery_id.as_str());
        json!({
            "provider": provider,
            "delivery": delivery,
            "queued": self.queued,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
        })
    }
}

/// Routes every change, claims each piece of work, queues what was won, then completes the
/// claims (or releases them all when the queue refused: the provider's redelivery, or a
/// person's, then finds them free).
async fn enqueue<S: Secrets, L: Ledger, Q: StartQueue>(
    ports: &WebhookPorts<S, L, Q>,
    config: &Config,
    events: &[SourceEvent],
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Answer, ApiError> {
    let mut answer = Answer::default();
    let mut won: Vec<Won<'_>> = Vec::new();
    for event in events {
        for outcome in route(config, event) {
            let Some(work) = work_for(event, &outcome) else {
                if let RouteOutcome::Ignored { project, reason } = &outcome {
                    log_decision(event, project.as_deref(), "ignored", reason);
                    answer
                        .ignored
                        .push(json!({"project": project, "reason": reason}));
                }
                continue;
            };
            let project = outcome.project().unwrap_or_default().to_owned();
            let claimed = match claim(&ports.ledger, event, &project, &work, now, lease).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    release_all(&ports.ledger, &won).await;
                    return Err(error);
                }
            };
            match claimed {
                Some(claim) => won.push(Won {
                    claim,
                    entry: queued_entry(event, &outcome),
                    work,
                    event,
                }),
                None => {
                    log_decision(event, Some(&project), "duplicate", "delivered_before");
                    answer.duplicates.push(json!({"project": project}));
                }
            }
        }
    }
    if won.is_empty() {
        return Ok(answer);
    }
    let works: Vec<StarterWork> = won.iter().map(|w| w.work.clone()).collect();
    if let Err(error) = ports.queue.enqueue(&works).await {
        release_all(&ports.ledger, &won).await;
        return Err(ApiError::UpstreamUnavailable(format!(
            "the start queue refused the work: {error}"
        )));
    }
    for Won {
        claim,
        entry,
        event,
        ..
    } in won
    {
        // The work is queued: a failed completion only means a redelivery inside the lease
        // answers "in flight"; after it, a redelivery queues again and the starter's own
        // ledger claim (the CodeBuild token) keeps that from starting a second batch.
        if let Err(error) = ports
            .ledger
            .complete(&claim, &json!({"queued": true}))
            .await
        {
            tracing::warn!(action = "queued", key = %claim.key, error = %error,
                "queued, but the ledger record could not be completed");
        }
        let action = entry["action"].as_str().unwrap_or("start");
        log_decision(event, entry["project"].as_str(), "queued", action);
        answer.queued.push(entry);
    }
    Ok(answer)
}

/// Claims the work's (delivery, change, project). `None` when it was claimed before (queued,
/// in flight elsewhere, or the same delivery id with another body, which is never queued twice).
async fn claim<L: Ledger>(
    ledger: &L,
    event: &SourceEvent,
    project: &str,
    work: &StarterWork,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<Claim>, ApiError> {
    let change = event
        .change_index
        .map_or_else(String::new, |i| format!("#{i}"));
    let identity = format!("{}|{}{change}|{project}", event.provider, event.delivery_id);
    let key = LedgerKey::new(ENQUEUE_OPERATION, &identity)
        .map_err(|e| ApiError::BadRequest(format!("unusable delivery id: {e}")))?;
    let payload = serde_json::to_value(work)
        .map_err(|e| ApiError::Internal(format!("start work is not serialisable: {e}")))?;
    let request = ClaimRequest::new(key, PayloadHash::of_json(&payload), now, lease);
    match ledger.claim(&request).await {
        Ok(ClaimOutcome::Won(claim)) => Ok(Some(claim)),
        Ok(ClaimOutcome::PayloadMismatch) => {
            tracing::warn!(action = "duplicate", reason = "delivery_id_reused", project,
                delivery = %event.delivery_id,
                "the same delivery id came with another body; not queued again");
            Ok(None)
        }
        Ok(_) => Ok(None),
        Err(error) => Err(if error.is_retryable() {
            ApiError::UpstreamUnavailable(format!("ledger: {error}"))
        } else {
            ApiError::Internal(format!("ledger: {error}"))
        }),
    }
}

/// A piece of work whose claim this delivery won.
struct Won<'a> {
    claim: Claim,
    work: StarterWork,
    /// Its entry in the answer's `queued`.
    entry: Value,
    event: &'a SourceEvent,
}

async fn release_all<L: Ledger>(ledger: &L, won: &[Won<'_>]) {
    for Won { claim, .. } in won {
        if let Err(error) = ledger.release(claim).await {
            tracing::warn!(key = %claim.key, error = %error,
                "claim not released; it runs out with its lease");
        }
    }
}

/// The answer's entry for queued work.
fn queued_entry(event: &SourceEvent, outcome: &RouteOutcome) -> Value {
    let action = match outcome {
        RouteOutcome::StopPullRequest { .. } => "stop_pull_request",
        _ => "start",
    };
    let mut entry = json!({
        "project": outcome.project(),
        "action": action,
        "event": event.kind.as_str(),
    });
    if let Some(object) = entry.as_object_mut() {
        if let Some(branch) = event.branch() {
            object.insert("branch".into(), json!(branch));
        }
        if let Some(tag) = event.tag() {
            object.insert("tag".into(), json!(tag));
        }
        if let Some(pr) = &event.pull_request {
            object.insert("pull_request".into(), json!(pr.number.to_string()));
        }
        if let RouteOutcome::Start { notes, .. } = outcome
            && !notes.is_empty()
        {
            object.insert("notes".into(), json!(notes));
        }
    }
    entry
}

fn log_decision(event: &SourceEvent, project: Option<&str>, action: &str, reason: &str) {
    tracing::info!(
        action,
        reason,
        project = project.unwrap_or(""),
        provider = %event.provider,
        delivery = %event.delivery_id,
        event = event.kind.as_str(),
        branch = event.branch().unwrap_or(""),
        "webhook decision"
    );
}

/// One log line and one count for a refused delivery. Never the signature or a secret: the
/// errors' messages carry neither.
fn reject(provider: &str, error: &ApiError, now: DateTime<Utc>) {
    let status = error.status().as_u16();
    if status >= 500 {
        tracing::error!(action = "rejected", reason = error.code(), status, provider,
            error = %error, "webhook delivery failed");
    } else {
        tracing::warn!(action = "rejected", reason = error.code(), status, provider,
            error = %error, "webhook delivery refused");
    }
    let document = metrics::emf_document(
        FUNCTION_NAME,
        now,
        Some(("Reason", error.code())),
        &[("Rejected", "Count", 1.0)],
    );
    println!("{document}");
}

fn emit_metrics(answer: &Answer, now: DateTime<Utc>) {
    let count = |items: &Vec<Value>| items.len() as f64;
    let document = metrics::emf_document(
        FUNCTION_NAME,
        now,
        None,
        &[
            ("Queued", "Count", count(&answer.queued)),
            ("Duplicates", "Count", count(&answer.duplicates)),
            ("Ignored", "Count", count(&answer.ignored)),
        ],
    );
    println!("{document}");
}

fn config_unavailable(error: &ConfigLoadError) -> ApiError {
    if error.is_retryable() {
        ApiError::UpstreamUnavailable(format!("configuration: {error}"))
    } else {
        ApiError::Internal(format!("configuration: {error}"))
    }
}

fn secrets_unavailable(error: SecretCacheError) -> ApiError {
    if error.is_retryable() {
        ApiError::UpstreamUnavailable(format!("webhook secrets: {error}"))
    } else {
        ApiError::Internal(format!("webhook secrets: {error}"))
    }
}

fn body_error(error: BodyError) -> ApiError {
    match error {
        BodyError::TooLarge { .. } => ApiError::PayloadTooLarge(error.to_string()),
        BodyError::Malformed { .. } => ApiError::BadRequest(error.to_string()),
    }
}

fn signature_error(error: SignatureError) -> ApiError {
    match error {
        // Our configuration, not the caller's fault: a 500 raises the alarm.
        SignatureError::NoSecretConfigured => ApiError::Internal(error.to_string()),
        _ => ApiError::Unauthorized(error.to_string()),
    }
}

fn delivery_error(error: DeliveryError) -> ApiError {
    match error {
        DeliveryError::Body(body) => body_error(body),
        other => ApiError::BadRequest(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
