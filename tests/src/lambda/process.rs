//! The function process: started with Lambda's environment, its output kept line by line, its
//! exit observable, and killed when the harness is done with it.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use super::{FunctionSpec, HarnessError};

/// Which of the function's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output (where `lambda_runtime`'s tracing subscriber writes).
    Stdout,
    /// Standard error (panics, aborts).
    Stderr,
}

/// One line the function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The stream it was written to.
    pub stream: LogStream,
    /// The line, without its newline.
    pub line: String,
}

/// Every line of every process of one function, in arrival order (what CloudWatch Logs would hold).
#[derive(Clone, Default)]
pub(crate) struct LogBook(Arc<Mutex<Vec<LogLine>>>);

impl LogBook {
    pub(crate) fn lines(&self) -> Vec<LogLine> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }

    fn push(&self, line: LogLine) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }
}

/// A started function process. Dropping it kills the process.
pub(crate) struct FunctionProcess {
    kill: Option<oneshot::Sender<()>>,
    exit: watch::Receiver<Option<String>>,
}

impl FunctionProcess {
    /// Starts the binary as Lambda would, against the Runtime API at `runtime_api` (host:port).
    pub(crate) fn spawn(
        spec: &FunctionSpec,
        runtime_api: &str,
        logs: &LogBook,
    ) -> Result<Self, HarnessError> {
        let mut command = Command::new(&spec.binary);
        // A clean environment, as in Lambda: the developer's AWS profile or credentials must not
        // leak into the function; the spec passes what it needs explicitly.
        command.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        let region = spec.region();
        let memory = "128";
        let defaults = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.name.as_str()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/harness"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "harness"),
            ("AWS_REGION", region.as_str()),
            ("AWS_DEFAULT_REGION", region.as_str()),
            ("TZ", ":UTC"),
        ];
        command.envs(defaults);
        command.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
            binary: spec.binary.clone(),
            source,
        })?;
        let echo = spec.echo_logs.then(|| spec.name.clone());
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect(
                stdout,
                LogStream::Stdout,
                logs.clone(),
                echo.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect(stderr, LogStream::Stderr, logs.clone(), echo));
        }
        let (kill, kill_rx) = oneshot::channel();
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(supervise(child, kill_rx, exit_tx));
        Ok(Self {
            kill: Some(kill),
            exit,
        })
    }

    /// Whether the process has already ended.
    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Resolves with a Lambda-style description of the exit (`exit status 1`, `signal: aborted`).
    pub(crate) fn exit_status(&self) -> impl Future<Output = String> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            match exit.wait_for(Option::is_some).await {
                Ok(status) => status.clone().unwrap_or_default(),
                // The supervisor is gone, so the process is too.
                Err(_) => "unknown".to_owned(),
            }
        }
    }

    /// Kills the process and waits until it is gone.
    pub(crate) async fn stop(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.exit_status().await;
    }
}

/// Owns the child: reports its exit, or kills it when asked (or when the handle is dropped).
async fn supervise(
    mut child: Child,
    kill: oneshot::Receiver<()>,
    exit: watch::Sender<Option<String>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = kill => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let described = match status {
        Ok(status) => describe(status),
        Err(error) => format!("wait failed: {error}"),
    };
    let _ = exit.send(Some(described));
}

async fn collect(
    stream: impl AsyncRead + Unpin,
    kind: LogStream,
    logs: LogBook,
    echo: Option<String>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(name) = &echo {
            eprintln!("[{name}] {line}");
        }
        logs.push(LogLine { stream: kind, line });
    }
}

/// Describes an exit the way Lambda's `Runtime.ExitError` message does.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(6) => "signal: aborted".to_owned(),
        Some(9) => "signal: killed".to_owned(),
        Some(11) => "signal: segmentation fault".to_owned(),
        Some(15) => "signal: terminated".to_owned(),
        Some(other) => format!("signal: {other}"),
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exits_are_described_like_lambda() {
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit status 1");
        assert_eq!(describe(ExitStatus::from_raw(6)), "signal: aborted");
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal: killed");
    }
}
