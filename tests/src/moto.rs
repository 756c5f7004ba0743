//! Starts moto's standalone server (`moto_server`) on 127.0.0.1 for tests that need real AWS
//! APIs we do not emulate ourselves (DynamoDB, SQS, EventBridge, ...).
//!
//! Each [`MotoServer`] is its own process on its own ephemeral port, so tests never share state.
//! The process is killed when the value is dropped.
//!
//! Known limits of moto worth remembering when writing tests against it:
//! - EventBridge `TestEventPattern` is a stub; test a pattern with a rule → SQS target →
//!   `PutEvents` → read the queue.
//! - DynamoDB TTL is stored but items never expire.
//! - Conditional writes are not atomic under concurrency; [`MotoServer::endpoint`] is therefore
//!   a proxy that gives DynamoDB requests one turn each, as DynamoDB itself orders writes to an
//!   item (see `serial_proxy`).

mod serial_proxy;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;

use crate::workspace;
use serial_proxy::SerialProxy;

/// Environment variable naming the `moto_server` executable (the Makefile exports it).
pub const MOTO_SERVER_BIN_ENV: &str = "MOTO_SERVER_BIN";

/// Region every [`MotoServer::sdk_config`] uses; moto keeps separate state per region.
pub const REGION: &str = "us-east-1";

/// moto imports every service backend on start, which takes a few seconds on a slow machine;
/// this is only an upper bound after which we give up, not an expectation.
const READY_DEADLINE: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(100);
/// The free port we pick can be taken by someone else before moto binds it; try a few.
const START_ATTEMPTS: usize = 3;

/// Why moto's server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The `moto_server` executable is not where we looked.
    #[error(
        "moto_server not found at {path} (set {MOTO_SERVER_BIN_ENV} or run `make venv` at the workspace root)"
    )]
    NotInstalled {
        /// Where we looked.
        path: PathBuf,
    },
    /// Picking a port, creating the log file or spawning the process failed.
    #[error("could not start moto_server: {0}")]
    Io(#[from] std::io::Error),
    /// The process ended before it answered.
    #[error("moto_server exited with {status} before it was ready; log: {log}\n{tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The process never answered within the deadline.
    #[error("moto_server did not answer on {endpoint} within {deadline:?}; log: {log}")]
    NotReady {
        /// Where it should have answered.
        endpoint: String,
        /// How long we waited.
        deadline: Duration,
        /// Its log file.
        log: PathBuf,
    },
}

/// A running `moto_server` process on 127.0.0.1; killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// moto itself.
    direct: String,
    proxy: Option<SerialProxy>,
    log: PathBuf,
}

impl MotoServer {
    /// Starts `moto_server` on a free 127.0.0.1 port and waits until it answers HTTP.
    ///
    /// The executable is `$MOTO_SERVER_BIN`, else `<workspace>/.venv/bin/moto_server`. A missing
    /// executable is an error (tests fail, never skip) whose message says to run `make venv`.
    pub async fn start() -> Result<MotoServer, MotoError> {
        Self::start_with_binary(&server_binary()).await
    }

    /// Like [`MotoServer::start`] with an explicit `moto_server` executable.
    pub async fn start_with_binary(bin: &Path) -> Result<MotoServer, MotoError> {
        if !bin.is_file() {
            return Err(MotoError::NotInstalled {
                path: bin.to_path_buf(),
            });
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(bin).await {
                Ok(server) => return Ok(server),
                // Most likely the port was taken between picking and binding: pick another.
                Err(error @ MotoError::Exited { .. }) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(MotoError::NotInstalled {
            path: bin.to_path_buf(),
        }))
    }

    async fn start_once(bin: &Path) -> Result<MotoServer, MotoError> {
        let port = free_port()?;
        let log = log_path(port)?;
        let log_file = File::create(&log)?;
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()?;
        // From here on, Drop kills the process whatever happens below.
        let mut server = MotoServer {
            child,
            direct: format!("http://127.0.0.1:{port}"),
            proxy: None,
            log,
        };
        server.wait_ready().await?;
        server.proxy = Some(SerialProxy::start(&server.direct).await?);
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), MotoError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        // `/moto-api/data.json` is moto's own state dump: cheap and served once every backend is
        // loaded. Any HTTP answer means the server is up.
        let probe = format!("{}/moto-api/data.json", self.direct);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(MotoError::Exited {
                    status,
                    log: self.log.clone(),
                    tail: log_tail(&self.log),
                });
            }
            if http.get(&probe).send().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_DEADLINE {
                return Err(MotoError::NotReady {
                    endpoint: self.direct.clone(),
                    deadline: READY_DEADLINE,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL for every AWS service moto serves (through the
    /// proxy that orders DynamoDB requests).
    pub fn endpoint(&self) -> &str {
        self.proxy
            .as_ref()
            .map_or(self.direct.as_str(), |p| p.endpoint())
    }

    /// moto itself, without the ordering proxy (for tests of the proxy).
    pub fn direct_endpoint(&self) -> &str {
        &self.direct
    }

    /// DynamoDB requests that went through the ordering proxy so far.
    pub fn dynamodb_requests(&self) -> usize {
        self.proxy.as_ref().map_or(0, SerialProxy::serialized)
    }

    /// The file holding the server's stdout and stderr (under `target/moto/`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// An SDK configuration pointed at this server: static credentials `test`/`test`, region
    /// `us-east-1`, and no influence from the host's `AWS_*` variables or profile.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .empty_test_environment()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .endpoint_url(self.endpoint())
            .load()
            .await
    }

    /// Environment variables that point a child process (a Lambda binary) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Errors mean the process is already gone; reaping it avoids a zombie per test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$MOTO_SERVER_BIN`, else the one in the workspace's `.venv`.
pub fn server_binary() -> PathBuf {
    match std::env::var_os(MOTO_SERVER_BIN_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace::root()
            .join(".venv")
            .join("bin")
            .join("moto_server"),
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

fn log_path(port: u16) -> std::io::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join("target"));
    let dir = target.join("moto");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("moto-{port}.log")))
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A DynamoDB client for a 127.0.0.1 port where nothing listens (a port that was free a moment
/// ago), with the SDK's retries off: the "ledger unavailable" case, answered at once.
pub async fn unreachable_dynamodb() -> aws_sdk_dynamodb::Client {
    let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|listener| listener.local_addr())
        .map_or(9, |addr| addr.port());
    let config = aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}
