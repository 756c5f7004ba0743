//! `SdkConfigSource` against moto's SSM (String and SecureString) and S3 (path-style), and a
//! temporary file; what "not found" looks like for each; and the example configuration loaded
//! end to end from each source.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use autopilot::aws::{Clients, SdkConfigSource};
use autopilot::config::{AllowedProjects, ConfigLoadError, ConfigUri, load_config};
use autopilot::ports::{ConfigSource, ServiceError};
use harness::moto::MotoServer;

const EXAMPLE: &str = include_str!("../../../infra/autopilot.example.toml");
const BUCKET: &str = "autopilot-config";

struct Stack {
    // Dropping it stops moto; keep it alive as long as the clients.
    _moto: MotoServer,
    clients: Clients,
    source: SdkConfigSource,
}

async fn stack() -> Stack {
    let moto = MotoServer::start().await.unwrap();
    let clients = Clients::from_sdk_config(&moto.sdk_config().await);
    let source = SdkConfigSource::from_clients(&clients);
    Stack {
        _moto: moto,
        clients,
        source,
    }
}

fn uri(text: &str) -> ConfigUri {
    ConfigUri::parse(text).unwrap()
}

async fn put_parameter(stack: &Stack, name: &str, kind: &str, value: &str) {
    stack
        .clients
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        // `ParameterType` from its wire name: the test crate does not depend on aws-sdk-ssm.
        .r#type(kind.into())
        .send()
        .await
        .unwrap();
}

async fn put_object(stack: &Stack, key: &str, body: Vec<u8>) {
    let s3 = &stack.clients.s3;
    // Creating it again is refused once it exists; ignoring that keeps the helper reusable.
    let _ = s3.create_bucket().bucket(BUCKET).send().await;
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

/// A file under the system temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn with(contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("autopilot-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn uri(&self) -> ConfigUri {
        uri(&format!("file:{}", self.0.display()))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn assert_not_found(result: Result<String, ServiceError>, service: &str) {
    match result {
        Err(ServiceError::NotFound { service: s, .. }) if s == service => {}
        other => panic!("expected {service} NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn ssm_string_and_secure_string_parameters_are_read() {
    let stack = stack().await;
    put_parameter(&stack, "/autopilot/plain", "String", "dry = 1").await;
    put_parameter(&stack, "/autopilot/secret", "SecureString", EXAMPLE).await;
    put_parameter(&stack, "flat-name", "String", "flat").await;

    let plain = stack.source.fetch(&uri("ssm:/autopilot/plain")).await;
    assert_eq!(plain.unwrap(), "dry = 1");
    // Decrypted: the plain text comes back, not moto's ciphertext.
    let secret = stack.source.fetch(&uri("ssm:/autopilot/secret")).await;
    assert_eq!(secret.unwrap(), EXAMPLE);
    let flat = stack.source.fetch(&uri("ssm:flat-name")).await;
    assert_eq!(flat.unwrap(), "flat");
}

#[tokio::test]
async fn s3_objects_are_read_path_style() {
    let stack = stack().await;
    put_object(&stack, "conf/autopilot.toml", EXAMPLE.as_bytes().to_vec()).await;
    let text = stack
        .source
        .fetch(&uri(&format!("s3://{BUCKET}/conf/autopilot.toml")))
        .await
        .unwrap();
    assert_eq!(text, EXAMPLE);
}

#[tokio::test]
async fn a_non_utf8_object_is_rejected() {
    let stack = stack().await;
    put_object(&stack, "binary", vec![0xff, 0xfe, 0x00]).await;
    let err = stack
        .source
        .fetch(&uri(&format!("s3://{BUCKET}/binary")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Rejected { service: "s3", .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_file_is_read() {
    let stack = stack().await;
    let file = TempFile::with(EXAMPLE.as_bytes());
    assert_eq!(stack.source.fetch(&file.uri()).await.unwrap(), EXAMPLE);
}

#[tokio::test]
async fn missing_parameters_objects_buckets_and_files_are_not_found() {
    let stack = stack().await;
    put_object(&stack, "present", b"x".to_vec()).await;

    assert_not_found(
        stack.source.fetch(&uri("ssm:/autopilot/missing")).await,
        "ssm",
    );
    assert_not_found(
        stack
            .source
            .fetch(&uri(&format!("s3://{BUCKET}/missing")))
            .await,
        "s3",
    );
    assert_not_found(
        stack.source.fetch(&uri("s3://no-such-bucket/key")).await,
        "s3",
    );
    let gone = std::env::temp_dir().join(format!("autopilot-{}.toml", uuid::Uuid::new_v4()));
    assert_not_found(
        stack
            .source
            .fetch(&uri(&format!("file:{}", gone.display())))
            .await,
        "file",
    );
}

#[tokio::test]
async fn the_example_loads_and_validates_from_every_source() {
    let stack = stack().await;
    put_parameter(&stack, "/autopilot/config", "SecureString", EXAMPLE).await;
    put_object(&stack, "autopilot.toml", EXAMPLE.as_bytes().to_vec()).await;
    let file = TempFile::with(EXAMPLE.as_bytes());
    let allowed = AllowedProjects::parse("web-*,api-*,nightly-e2e").unwrap();

    for source_uri in [
        uri("ssm:/autopilot/config"),
        uri(&format!("s3://{BUCKET}/autopilot.toml")),
        file.uri(),
    ] {
        let config = load_config(&stack.source, &source_uri, &allowed)
            .await
            .unwrap_or_else(|err| panic!("{source_uri}: {err}"));
        assert_eq!(config.projects.len(), 4, "{source_uri}");
    }

    let missing = load_config(&stack.source, &uri("ssm:/nope"), &allowed)
        .await
        .unwrap_err();
    assert_eq!(
        missing,
        ConfigLoadError::NotFound {
            uri: uri("ssm:/nope")
        }
    );
}
