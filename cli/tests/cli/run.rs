//! Running the real `autopilot` binary against an endpoint, with an environment of our own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Output;

use serde_json::Value;

/// What one run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// stdout as the one JSON document it must be.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }

    /// Asserts exit code 0 and returns the JSON.
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        self.json()
    }

    /// Asserts exit `code` with a one-line message on stderr containing `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(self.stderr.contains(needle), "{needle:?} not in {self:?}");
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `autopilot args...` with AWS settings from the environment pointing at `endpoint`
/// (static test credentials, us-east-1, one attempt per call, no host profile or IMDS).
pub async fn autopilot(endpoint: &str, args: &[&str]) -> Run {
    autopilot_env(Some(endpoint), args, &[]).await
}

/// Like [`autopilot`], with extra environment variables and an optional endpoint.
pub async fn autopilot_env(endpoint: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_autopilot"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(endpoint) = endpoint {
        command.env("AWS_ENDPOINT_URL", endpoint);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().await.unwrap();
    Run {
        code: status.code(),
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// `http://127.0.0.1:PORT` where nothing listens (a port that was free a moment ago).
pub fn unreachable_endpoint() -> String {
    let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    format!("http://127.0.0.1:{port}")
}
