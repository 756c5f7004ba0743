//! `Clients::from_env()` honours the standard endpoint variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_CODEBUILD`) — the only way tests and the demo redirect the functions.
//! One test in its own binary, because it changes the process environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use autopilot::aws::Clients;
use autopilot::ports::CodeBuild;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-request HTTP server that answers `ListProjects` with `[name]` and returns the request
/// head it received.
async fn one_shot_codebuild(name: &'static str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the request head");
            received.extend_from_slice(&chunk[..n]);
            if let Some(pos) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
        };
        let head = String::from_utf8_lossy(&received[..head_end]).to_string();
        let body = format!(r#"{{"projects":["{name}"]}}"#);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        head
    });
    (endpoint, task)
}

fn set(name: &str, value: &str) {
    // SAFETY: this binary holds a single test; nothing else reads the environment concurrently.
    unsafe { std::env::set_var(name, value) }
}

#[tokio::test]
async fn endpoint_variables_redirect_codebuild() {
    set("AWS_REGION", "us-east-1");
    set("AWS_ACCESS_KEY_ID", "test");
    set("AWS_SECRET_ACCESS_KEY", "test");
    set("AWS_EC2_METADATA_DISABLED", "true");

    // The generic variable alone.
    let (endpoint, server) = one_shot_codebuild("via-generic").await;
    set("AWS_ENDPOINT_URL", &endpoint);
    let clients = Clients::from_env().await;
    let page = clients.codebuild.list_projects(None).await.unwrap();
    assert_eq!(page.items, ["via-generic"]);
    let head = server.await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains("x-amz-target: codebuild_20161006.listprojects"),
        "{head}"
    );

    // The service-specific variable wins over the generic one (left pointing at a closed port).
    let (endpoint, server) = one_shot_codebuild("via-service").await;
    set("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    set("AWS_ENDPOINT_URL_CODEBUILD", &endpoint);
    let clients = Clients::from_env().await;
    let page = clients.codebuild.list_projects(None).await.unwrap();
    assert_eq!(page.items, ["via-service"]);
    server.await.unwrap();
}
