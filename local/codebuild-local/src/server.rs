//! The HTTP server: AWS protocol on `/`, control API on `/_local/`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::routing::post;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::control::{self, ControlClient};
use crate::error::Error;
use crate::events::EventSink;
use crate::faults::Faults;
use crate::model::Build;
use crate::protocol::{self, CallRecord};
use crate::state::Store;

/// Emulator settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Region in ARNs and events.
    pub region: String,
    /// Account in ARNs and events.
    pub account: String,
    /// Initial EventBridge sink URL (events are POSTed there).
    pub event_sink: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            event_sink: None,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) clock: Clock,
    pub(crate) config: Arc<Config>,
    pub(crate) faults: Arc<Mutex<Faults>>,
    pub(crate) calls: Arc<Mutex<Vec<CallRecord>>>,
    pub(crate) events: EventSink,
}

impl AppState {
    /// Runs `f` with the store locked (never across an await).
    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut store)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn calls(&self) -> MutexGuard<'_, Vec<CallRecord>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record_call(&self, call: CallRecord) {
        self.calls().push(call);
    }

    /// Sends the state-change events of `changed` builds to the sink.
    pub(crate) fn emit(&self, changed: &[Build], now: DateTime<Utc>) {
        for build in changed {
            self.events
                .emit(build, &self.config.region, &self.config.account, now);
        }
    }
}

/// A running emulator. Dropping it without `shutdown` leaves the server task running until
/// the runtime ends.
pub struct Server {
    addr: SocketAddr,
    clock: Clock,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts the emulator on `addr` (`127.0.0.1:0` picks a free port).
pub async fn serve(config: Config, addr: SocketAddr) -> Result<Server, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let clock = Clock::new();
    let state = AppState {
        store: Arc::default(),
        clock: clock.clone(),
        events: EventSink::start(config.event_sink.clone()),
        config: Arc::new(config),
        faults: Arc::default(),
        calls: Arc::default(),
    };
    let app = Router::new()
        .route("/", post(protocol::handle))
        .nest("/_local", control::routes())
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "codebuild-local server stopped");
        }
    });
    tracing::info!(%addr, "codebuild-local listening");
    Ok(Server {
        addr,
        clock,
        stop,
        task,
    })
}

impl Server {
    /// `http://127.0.0.1:PORT`: the endpoint URL for the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulator's clock (advance it to age builds or expire idempotency tokens).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// A client of the control API.
    pub fn control(&self) -> ControlClient {
        ControlClient::new(&self.endpoint())
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "codebuild-local server task failed");
        }
    }
}
