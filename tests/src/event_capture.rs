//! An event sink that only records: point codebuild-local's event sink at it to get the exact
//! `CodeBuild Build State Change` events EventBridge would deliver, then deliver them to a
//! function yourself (several times, concurrently, after a crash) and watch each outcome.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

type Events = Arc<(Mutex<Vec<Value>>, Notify)>;

/// A running capture sink on 127.0.0.1.
pub struct EventCapture {
    url: String,
    events: Events,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl EventCapture {
    /// Starts the sink on an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/events", listener.local_addr()?);
        let events: Events = Arc::default();
        let router = Router::new()
            .route("/events", post(record))
            .with_state(events.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            url,
            events,
            stop,
            server,
        })
    }

    /// The URL to POST events to (codebuild-local's `event_sink`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every event received so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.events
            .0
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }

    /// The first event matching `wanted`, waiting for it up to `within` (a bound on the wait,
    /// not an expectation of speed); `None` if it never came.
    pub async fn wait_for(
        &self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.events.1.notified();
            if let Some(found) = self.events().into_iter().find(|event| wanted(event)) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Woken by the next event, or re-checked after a while in case it was missed.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// The state-change event of `build_id` (id or ARN) reaching `status`, waiting up to 30 s.
    pub async fn build_event(&self, build_id: &str, status: &str) -> Option<Value> {
        let id = build_id.rsplit_once('/').map_or(build_id, |(_, id)| id);
        self.wait_for(Duration::from_secs(30), |event| {
            event["detail"]["build-status"] == status
                && event["detail"]["build-id"]
                    .as_str()
                    .is_some_and(|arn| arn.ends_with(&format!("/{id}")))
        })
        .await
    }

    /// Stops the sink.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

async fn record(State(events): State<Events>, body: axum::body::Bytes) -> StatusCode {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Ok(mut list) = events.0.lock() {
        list.push(event);
    }
    events.1.notify_waiters();
    // What Lambda's Invoke API answers an `Event` invocation with.
    StatusCode::ACCEPTED
}
