//! `codebuild-local`: runs the local CodeBuild until Ctrl-C.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use codebuild_local::{Config, serve};

/// A local AWS CodeBuild (AWS JSON 1.1) for tests and the demo.
#[derive(Debug, Parser)]
#[command(name = "codebuild-local", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4599)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// URL that EventBridge-style build state change events are POSTed to.
    #[arg(long)]
    event_sink: Option<String>,
    /// Region used in ARNs and events.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Account used in ARNs and events.
    #[arg(long, default_value = "123456789012")]
    account: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        region: args.region,
        account: args.account,
        event_sink: args.event_sink,
    };
    let server = serve(config, SocketAddr::new(args.bind, args.port)).await?;
    // Scripts wait for this exact line on stdout before using the endpoint.
    println!("codebuild-local listening on {}", server.endpoint());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
