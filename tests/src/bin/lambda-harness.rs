//! `lambda-harness`: serves Lambda's Invoke API over real function binaries run through the
//! harness's Runtime API, for the demo and for anything that speaks Lambda (e.g. codebuild-local's
//! event sink).
//!
//! `lambda-harness --function NAME=PATH [--env K=V]... [--port N]
//!                 [--sqs-endpoint URL [--on-failure-queue URL] [--sqs-source QUEUE_URL=NAME]...]`

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use harness::lambda::{self, FunctionSpec, OnFailureDestination, SqsSourceSpec, invoke_api};

/// Serve Lambda's Invoke API (`POST /2015-03-31/functions/NAME/invocations`) over local binaries.
#[derive(Debug, Parser)]
#[command(name = "lambda-harness", version)]
struct Args {
    /// A function to serve, as NAME=PATH (repeatable).
    #[arg(long = "function", value_parser = parse_pair, required = true)]
    functions: Vec<(String, String)>,
    /// An environment variable given to every function, as K=V (repeatable).
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Port of the Invoke API (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Per-invocation timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// SQS queue URL receiving failed asynchronous invocations (needs --sqs-endpoint).
    #[arg(long, requires = "sqs_endpoint")]
    on_failure_queue: Option<String>,
    /// SQS endpoint of the on-failure queue and the SQS sources (e.g. moto's).
    #[arg(long)]
    sqs_endpoint: Option<String>,
    /// An SQS event source mapping, as QUEUE_URL=FUNCTION: the queue is polled and its messages
    /// invoke the function in batches, partial batch responses honoured (repeatable; needs
    /// --sqs-endpoint).
    #[arg(long = "sqs-source", value_parser = parse_source, requires = "sqs_endpoint")]
    sqs_sources: Vec<(String, String)>,
    /// Copy the functions' log lines to stderr.
    #[arg(long)]
    show_logs: bool,
}

/// `QUEUE_URL=FUNCTION`: split at the last `=` (a queue URL has none, but be safe).
fn parse_source(raw: &str) -> Result<(String, String), String> {
    match raw.rsplit_once('=') {
        Some((queue, function)) if !queue.is_empty() && !function.is_empty() => {
            Ok((queue.to_owned(), function.to_owned()))
        }
        _ => Err(format!("expected QUEUE_URL=FUNCTION, got {raw:?}")),
    }
}

fn parse_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-harness: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let on_failure = match (&args.on_failure_queue, &args.sqs_endpoint) {
        (Some(queue), Some(endpoint)) => Some(OnFailureDestination::new(queue, endpoint)),
        _ => None,
    };
    let mut running = Vec::new();
    for (name, path) in args.functions {
        let spec = FunctionSpec {
            env: args.env.clone(),
            timeout: Duration::from_secs(args.timeout_secs),
            on_failure: on_failure.clone(),
            echo_logs: args.show_logs,
            ..FunctionSpec::new(name, PathBuf::from(path))
        };
        running.push(lambda::start(spec).await?);
    }
    let mut sources = Vec::new();
    for (queue, name) in args.sqs_sources {
        let function = running
            .iter()
            .find(|function| function.name() == name)
            .ok_or_else(|| format!("--sqs-source names {name}, which no --function defines"))?
            .clone();
        let endpoint = args.sqs_endpoint.clone().unwrap_or_default();
        sources
            .push(lambda::sqs_source::start(SqsSourceSpec::new(queue, endpoint), function).await?);
    }
    let server = invoke_api::serve(running, SocketAddr::new(args.bind, args.port)).await?;
    println!("lambda-harness listening on {}", server.endpoint());
    wait_for_stop_signal().await?;
    for source in sources {
        source.stop().await;
    }
    server.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
