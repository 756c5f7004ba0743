//! A reverse proxy in front of moto that lets DynamoDB requests through one at a time.
//!
//! moto serves every request on its own thread without a lock, so its conditional writes are
//! not atomic under concurrency (two racing `PutItem … attribute_not_exists(pk)` can both
//! succeed; a cancelled `TransactWriteItems` restores a stale copy of the table). DynamoDB
//! applies the writes to one item one at a time; taking turns gives moto the same, while every
//! caller still races freely for its turn — so a check-then-write bug in our code still shows.
//! Other services pass straight through (an SQS long poll must not block the table).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use axum::response::{IntoResponse, Response};

/// DynamoDB's JSON protocol names the operation in this header: `DynamoDB_20120810.PutItem`.
const TARGET_HEADER: &str = "x-amz-target";

struct Upstream {
    target: String,
    http: reqwest::Client,
    dynamodb_turn: tokio::sync::Mutex<()>,
    serialized: AtomicUsize,
}

/// The running proxy; stops serving when dropped.
#[derive(Debug)]
pub(crate) struct SerialProxy {
    endpoint: String,
    upstream: Arc<Upstream>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl SerialProxy {
    /// Serves on a free 127.0.0.1 port, forwarding to `target`.
    pub(crate) async fn start(target: &str) -> std::io::Result<SerialProxy> {
        let upstream = Arc::new(Upstream {
            target: target.to_owned(),
            http: reqwest::Client::new(),
            dynamodb_turn: tokio::sync::Mutex::new(()),
            serialized: AtomicUsize::new(0),
        });
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(upstream.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(SerialProxy {
            endpoint,
            upstream,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// DynamoDB requests forwarded so far (each in its own turn).
    pub(crate) fn serialized(&self) -> usize {
        self.upstream.serialized.load(Ordering::SeqCst)
    }
}

impl Drop for SerialProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
    let is_dynamodb = request
        .headers()
        .get(TARGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("DynamoDB_"));
    let _turn = if is_dynamodb {
        Some(upstream.dynamodb_turn.lock().await)
    } else {
        None
    };
    match relay(&upstream, request).await {
        Ok(response) => {
            if is_dynamodb {
                upstream.serialized.fetch_add(1, Ordering::SeqCst);
            }
            response
        }
        // moto down or the request unreadable: answer as a gateway would, so the SDK sees a 5xx.
        Err(message) => (StatusCode::BAD_GATEWAY, message).into_response(),
    }
}

async fn relay(upstream: &Upstream, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(HOST);
    let answer = upstream
        .http
        .request(parts.method, format!("{}{path}", upstream.target))
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let mut headers = answer.headers().clone();
    // The body is passed on whole; hyper sets its own framing.
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}
