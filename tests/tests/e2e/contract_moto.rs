//! Contract test: codebuild-local answers CodeBuild's JSON protocol with the same response SHAPES
//! as moto's CodeBuild, for the operations both implement (CreateProject, BatchGetProjects,
//! ListProjects, StartBuild, BatchGetBuilds, StopBuild, ListBuildsForProject and their
//! not-found errors).
//!
//! The same SDK call sequence runs against both: one `aws-sdk-codebuild` client per endpoint
//! (static credentials, us-east-1, retries off, so each call is exactly one request). The SDK
//! must take every answer on both sides: a success as its typed output, an error as a service
//! error whose code is the body's `__type`. An answer the SDK cannot parse fails the test.
//!
//! Values are not compared: moto's are no reference (it reports every build SUCCEEDED on read,
//! even a stopped one, and answers StartBuild with a hard-coded CodeCommit source). Shapes are:
//! member names and JSON types, recursively, with array elements merged into one shape. They
//! are read from the raw response bodies, captured by an SDK interceptor ([`Capture`]): the
//! typed outputs would hide missing members behind `Option`s and drop unknown ones.
//!
//! Neither side is complete, so differences are judged, not just counted:
//! - a member moto sends and the emulator does not → FAIL, unless listed in
//!   [`EMULATOR_MAY_OMIT`] with the reason the autopilot can do without it;
//! - a member the emulator sends and moto does not → FAIL, unless listed in [`MOTO_OMITS`]
//!   (members the real service sends but moto leaves out); this keeps the emulator from
//!   inventing members. Check botocore's model (`$CODEBUILD_SERVICE_MODEL`) before adding one;
//! - the same member with different JSON types → always FAIL (`null` matches anything).
//!
//! An allow-listed member covers the members below it. Shapes of a structure (Build, Project)
//! are merged over every response that carries one before comparing, because members depend on
//! state (`endTime` only once a build has ended; moto sends it always, the emulator after
//! StopBuild). Error answers are compared one by one: same HTTP status, same `__type`, same
//! error code as the SDK reads it.
//!
//! moto routes requests by the SigV4 `Authorization` header's credential scope; the SDK signs
//! for `codebuild`, so no workaround is needed (moto does not verify signatures; the emulator
//! ignores them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::local_services;
use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_codebuild::config::retry::RetryConfig;
use aws_sdk_codebuild::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_codebuild::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, EnvironmentVariable, EnvironmentVariableType,
    ProjectArtifacts, ProjectEnvironment, ProjectSource, SourceType,
};
use harness::moto::MotoServer;
use serde_json::{Value, json};

/// Members moto sends that the emulator may leave out: the real service sends them too, but
/// nothing in the autopilot reads them (it reads ids, status, phases and their contexts,
/// times, initiator, source version, environment variables, batch ARN and logs deep link).
const EMULATOR_MAY_OMIT: &[(&str, &str)] = &[
    ("Project.cache", "build cache settings; never read"),
    ("Project.badge", "build badge settings; never read"),
    ("Build.cache", "build cache settings; never read"),
    (
        "Build.secondarySources",
        "only with secondary sources; never read",
    ),
    (
        "Build.secondarySourceVersions",
        "only with secondary sources; never read",
    ),
    (
        "Build.secondaryArtifacts",
        "only with secondary artifacts; never read",
    ),
    (
        "Build.source.gitCloneDepth",
        "source checkout detail; never read",
    ),
    (
        "Build.source.gitSubmodulesConfig",
        "source checkout detail; never read",
    ),
    (
        "Build.source.buildspec",
        "sent only when the project sets one; never read",
    ),
    (
        "Build.source.insecureSsl",
        "source checkout detail; never read",
    ),
    (
        "Build.environment.privilegedMode",
        "container setting; never read",
    ),
    (
        "Build.environment.imagePullCredentialsType",
        "container setting; never read",
    ),
    (
        "Build.logs.cloudWatchLogs",
        "log configuration; the autopilot reads logs.deepLink only",
    ),
    ("Build.logs.s3Logs", "log configuration; never read"),
];

/// Members the emulator sends that moto leaves out although the real service sends them
/// (checked against botocore's CodeBuild model and the API reference).
const MOTO_OMITS: &[(&str, &str)] = &[
    (
        "BatchGetBuilds.buildsNotFound",
        "moto drops unknown ids silently",
    ),
    (
        "BatchGetProjects.projectsNotFound",
        "moto drops unknown names silently",
    ),
    ("Project.lastModified", "moto does not track modification"),
    ("Build.artifacts", "moto's Build has no artifacts member"),
    (
        "Build.logs.groupName",
        "moto sends only deepLink and cloudWatchLogsArn",
    ),
    (
        "Build.logs.streamName",
        "moto sends only deepLink and cloudWatchLogsArn",
    ),
    ("Build.phases.contexts", "moto never fails a phase"),
];

/// An SDK interceptor that keeps the HTTP status and raw body of every response the client
/// receives. It reads after deserialization: only then has the SDK buffered the body (before
/// it, `body().bytes()` is `None` for a response still streaming in).
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<RawResponse>>>);

/// A response as it came over the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "ContractCapture"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let body = response
            .body()
            .bytes()
            .ok_or("response body was not buffered")?
            .to_vec();
        self.0.lock().unwrap().push(RawResponse {
            status: response.status().as_u16(),
            body,
        });
        Ok(())
    }
}

/// A response reduced to what the contract is about.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    /// The error code the SDK read from an error answer; `None` for a success.
    error_code: Option<String>,
}

/// One CodeBuild endpoint spoken to through the SDK, recording every answer in call order.
struct Endpoint {
    client: Client,
    capture: Capture,
    answers: Vec<(&'static str, Answer)>,
}

impl Endpoint {
    fn new(url: &str) -> Self {
        let capture = Capture::default();
        let config = aws_sdk_codebuild::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "contract"))
            .retry_config(RetryConfig::disabled())
            .interceptor(capture.clone())
            .build();
        Self {
            client: Client::from_conf(config),
            capture,
            answers: Vec::new(),
        }
    }

    /// Records the answer to the call just made: the captured raw body, checked against what
    /// the SDK made of it. Returns the typed output of a success.
    fn record<O, E>(&mut self, label: &'static str, result: Result<O, SdkError<E>>) -> Option<O>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let captured = std::mem::take(&mut *self.capture.0.lock().unwrap());
        if captured.len() != 1 {
            let error = result.err().map(|e| DisplayErrorContext(e).to_string());
            panic!(
                "{label}: expected exactly one captured response, got {}; SDK error: {error:?}",
                captured.len()
            );
        }
        let RawResponse {
            status,
            body: bytes,
        } = captured.into_iter().next().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|error| panic!("{label}: not JSON ({error}): {text}"));
        match result {
            Ok(output) => {
                assert_eq!(
                    status, 200,
                    "{label}: the SDK took HTTP {status} as a success"
                );
                self.answers.push((
                    label,
                    Answer {
                        status,
                        body,
                        error_code: None,
                    },
                ));
                Some(output)
            }
            Err(error) if error.as_service_error().is_some() => {
                let code = error.code().map(str::to_owned);
                // The SDK strips a `namespace#` prefix and a `:suffix` from `__type`.
                let wire_type = body["__type"].as_str().map(|t| {
                    let t = t.rsplit('#').next().unwrap_or(t);
                    t.split(':').next().unwrap_or(t).to_owned()
                });
                assert!(
                    code.is_some() && code == wire_type,
                    "{label}: the SDK read error code {code:?} from HTTP {status}: {text}"
                );
                self.answers.push((
                    label,
                    Answer {
                        status,
                        body,
                        error_code: code,
                    },
                ));
                None
            }
            Err(error) => panic!(
                "{label}: the SDK could not take the HTTP {status} answer ({}): {text}",
                DisplayErrorContext(error)
            ),
        }
    }
}

/// The JSON type of a value, recursively; array elements merged into one shape.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Null,
    Bool,
    Number,
    String,
    Array(Box<Shape>),
    Object(BTreeMap<String, Shape>),
}

impl Shape {
    fn of(value: &Value) -> Shape {
        match value {
            Value::Null => Shape::Null,
            Value::Bool(_) => Shape::Bool,
            Value::Number(_) => Shape::Number,
            Value::String(_) => Shape::String,
            Value::Array(items) => Shape::Array(Box::new(
                items.iter().map(Shape::of).fold(Shape::Null, Shape::merge),
            )),
            Value::Object(members) => Shape::Object(
                members
                    .iter()
                    .map(|(name, value)| (name.clone(), Shape::of(value)))
                    .collect(),
            ),
        }
    }

    /// The union of two shapes of the same place (elements of one array). `Null` is unknown.
    fn merge(self, other: Shape) -> Shape {
        match (self, other) {
            (Shape::Null, shape) | (shape, Shape::Null) => shape,
            (Shape::Object(mut left), Shape::Object(right)) => {
                for (name, shape) in right {
                    let merged = match left.remove(&name) {
                        Some(existing) => existing.merge(shape),
                        None => shape,
                    };
                    left.insert(name, merged);
                }
                Shape::Object(left)
            }
            (Shape::Array(left), Shape::Array(right)) => Shape::Array(Box::new(left.merge(*right))),
            // Mixed scalar types inside one array: keep the first; the comparison reports it.
            (left, _) => left,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Shape::Null => "null",
            Shape::Bool => "boolean",
            Shape::Number => "number",
            Shape::String => "string",
            Shape::Array(_) => "array",
            Shape::Object(_) => "object",
        }
    }
}

/// What differs between two shapes of the same response.
#[derive(Debug, Default)]
struct Differences {
    only_moto: BTreeSet<String>,
    only_local: BTreeSet<String>,
    type_mismatch: Vec<String>,
}

fn compare(path: &str, moto: &Shape, local: &Shape, out: &mut Differences) {
    match (moto, local) {
        (Shape::Null, _) | (_, Shape::Null) => {}
        (Shape::Object(moto_members), Shape::Object(local_members)) => {
            for (name, moto_shape) in moto_members {
                let member = format!("{path}.{name}");
                match local_members.get(name) {
                    Some(local_shape) => compare(&member, moto_shape, local_shape, out),
                    None => {
                        out.only_moto.insert(member.clone());
                        nested_members(&member, moto_shape, &mut out.only_moto);
                    }
                }
            }
            for (name, local_shape) in local_members {
                if !moto_members.contains_key(name) {
                    let member = format!("{path}.{name}");
                    out.only_local.insert(member.clone());
                    nested_members(&member, local_shape, &mut out.only_local);
                }
            }
        }
        (Shape::Array(moto_item), Shape::Array(local_item)) => {
            compare(path, moto_item, local_item, out)
        }
        (moto, local) if moto.kind() == local.kind() => {}
        (moto, local) => out.type_mismatch.push(format!(
            "{path}: moto {} vs emulator {}",
            moto.kind(),
            local.kind()
        )),
    }
}

/// Every member path below a member present on one side only (each must be allow-listed too).
fn nested_members(path: &str, shape: &Shape, into: &mut BTreeSet<String>) {
    match shape {
        Shape::Object(members) => {
            for (name, member) in members {
                let member_path = format!("{path}.{name}");
                into.insert(member_path.clone());
                nested_members(&member_path, member, into);
            }
        }
        Shape::Array(item) => nested_members(path, item, into),
        _ => {}
    }
}

/// Top-level members that are shared structures get the structure's name as their path, so
/// that one allow-list entry covers a Build wherever it appears.
fn structure_root(operation: &str, member: &str) -> String {
    match member {
        "build" | "builds" => "Build".to_owned(),
        "project" | "projects" if operation != "ListProjects" => "Project".to_owned(),
        _ => format!("{operation}.{member}"),
    }
}

/// Every successful response of one side, as shapes merged per root path (see
/// [`structure_root`]), so a member seen in any response of a structure counts.
fn merged_shapes(answers: &[(&'static str, Answer)]) -> BTreeMap<String, Shape> {
    let mut merged: BTreeMap<String, Shape> = BTreeMap::new();
    for (label, answer) in answers {
        if answer.status != 200 {
            continue;
        }
        let Shape::Object(members) = Shape::of(&answer.body) else {
            panic!("{label}: response is not a JSON object: {:?}", answer.body);
        };
        for (name, shape) in members {
            let path = structure_root(operation_of(label), &name);
            let shape = match merged.remove(&path) {
                Some(existing) => existing.merge(shape),
                None => shape,
            };
            merged.insert(path, shape);
        }
    }
    merged
}

fn compare_errors(label: &str, moto: &Answer, local: &Answer) {
    assert_eq!(
        moto.status, local.status,
        "{label}: HTTP status differs; moto {:?}, emulator {:?}",
        moto.body, local.body
    );
    assert_eq!(
        moto.error_code.is_some(),
        local.error_code.is_some(),
        "{label}: the SDK took one answer as an error and the other not; moto {:?}, emulator {:?}",
        moto.body,
        local.body
    );
    if moto.status != 200 {
        // The SDK reads `__type` (and `message`) of an error: the same type is the contract.
        assert_eq!(
            moto.body["__type"], local.body["__type"],
            "{label}: error type differs; moto {:?}, emulator {:?}",
            moto.body, local.body
        );
        assert_eq!(
            moto.error_code, local.error_code,
            "{label}: the SDK reads different error codes"
        );
        assert!(
            local.body["message"].is_string(),
            "{label}: {:?}",
            local.body
        );
    }
}

fn compare_sides(
    moto: &BTreeMap<String, Shape>,
    local: &BTreeMap<String, Shape>,
    out: &mut Differences,
) {
    let roots: BTreeSet<&String> = moto.keys().chain(local.keys()).collect();
    for root in roots {
        match (moto.get(root), local.get(root)) {
            (Some(moto_shape), Some(local_shape)) => compare(root, moto_shape, local_shape, out),
            (Some(moto_shape), None) => {
                out.only_moto.insert(root.clone());
                nested_members(root, moto_shape, &mut out.only_moto);
            }
            (None, Some(local_shape)) => {
                out.only_local.insert(root.clone());
                nested_members(root, local_shape, &mut out.only_local);
            }
            (None, None) => {}
        }
    }
}

/// Whether a member path or one of its ancestors is in an allow-list.
fn allowed(path: &str, list: &[(&str, &str)]) -> bool {
    list.iter().any(|(allowed, _)| {
        path == *allowed
            || path
                .strip_prefix(allowed)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Runs the same SDK call sequence against one endpoint; returns (label, answer) in order.
async fn call_sequence(url: &str) -> Vec<(&'static str, Answer)> {
    const UNKNOWN_BUILD: &str = "contract-app:00000000-0000-0000-0000-000000000000";
    let mut endpoint = Endpoint::new(url);
    let client = endpoint.client.clone();

    let create_project = client
        .create_project()
        .name("contract-app")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location("https://github.com/example/app.git")
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::NoArtifacts)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::123456789012:role/codebuild");
    endpoint.record("CreateProject", create_project.clone().send().await);
    endpoint.record("CreateProject(again)", create_project.send().await);
    endpoint.record(
        "BatchGetProjects",
        client
            .batch_get_projects()
            .names("contract-app")
            .names("ghost")
            .send()
            .await,
    );
    endpoint.record("ListProjects", client.list_projects().send().await);

    let started = endpoint
        .record(
            "StartBuild",
            client
                .start_build()
                .project_name("contract-app")
                .source_version("refs/heads/main")
                .environment_variables_override(
                    EnvironmentVariable::builder()
                        .name("STAGE")
                        .value("test")
                        .r#type(EnvironmentVariableType::Plaintext)
                        .build()
                        .unwrap(),
                )
                .send()
                .await,
        )
        .expect("StartBuild failed");
    let build_id = started
        .build_value()
        .and_then(|build| build.id())
        .expect("StartBuild without build.id")
        .to_owned();
    endpoint.record(
        "BatchGetBuilds",
        client
            .batch_get_builds()
            .ids(&build_id)
            .ids(UNKNOWN_BUILD)
            .send()
            .await,
    );
    endpoint.record("StopBuild", client.stop_build().id(&build_id).send().await);
    endpoint.record(
        "BatchGetBuilds(stopped)",
        client.batch_get_builds().ids(&build_id).send().await,
    );
    endpoint.record(
        "ListBuildsForProject",
        client
            .list_builds_for_project()
            .project_name("contract-app")
            .send()
            .await,
    );
    endpoint.record(
        "StartBuild(unknown project)",
        client.start_build().project_name("ghost").send().await,
    );
    endpoint.record(
        "StopBuild(unknown build)",
        client.stop_build().id(UNKNOWN_BUILD).send().await,
    );
    endpoint.record(
        "ListBuildsForProject(unknown project)",
        client
            .list_builds_for_project()
            .project_name("ghost")
            .send()
            .await,
    );
    endpoint.answers
}

/// The operation name without the "(variant)" suffix used to label a call.
fn operation_of(label: &str) -> &str {
    label.split('(').next().unwrap_or(label)
}

#[tokio::test]
async fn codebuild_local_answers_with_the_shapes_moto_answers_with() {
    let moto = MotoServer::start().await.unwrap();
    let local = local_services::codebuild_local().await;

    let moto_answers = call_sequence(moto.endpoint()).await;
    let local_answers = call_sequence(&local.endpoint()).await;
    local.shutdown().await;

    assert_eq!(moto_answers.len(), local_answers.len());
    for ((label, moto_answer), (_, local_answer)) in moto_answers.iter().zip(&local_answers) {
        compare_errors(label, moto_answer, local_answer);
    }
    let mut differences = Differences::default();
    compare_sides(
        &merged_shapes(&moto_answers),
        &merged_shapes(&local_answers),
        &mut differences,
    );

    let missing: Vec<&String> = differences
        .only_moto
        .iter()
        .filter(|path| !allowed(path, EMULATOR_MAY_OMIT))
        .collect();
    let invented: Vec<&String> = differences
        .only_local
        .iter()
        .filter(|path| !allowed(path, MOTO_OMITS))
        .collect();
    assert!(
        missing.is_empty() && invented.is_empty() && differences.type_mismatch.is_empty(),
        "CodeBuild shape contract broken:\n  members moto sends, the emulator does not: {missing:?}\n  \
         members only the emulator sends (not known to be real): {invented:?}\n  \
         type mismatches: {:?}",
        differences.type_mismatch
    );
}

#[test]
fn a_missing_member_a_new_member_and_a_type_change_are_all_detected() {
    let moto = Shape::of(&json!({"id": "x", "phases": [{"phaseType": "BUILD"}], "n": 1}));
    let local = Shape::of(&json!({"id": 1, "phases": [{"contexts": []}], "extra": {"a": true}}));
    let mut out = Differences::default();
    compare("Build", &moto, &local, &mut out);
    assert_eq!(
        out.only_moto,
        BTreeSet::from(["Build.n".to_owned(), "Build.phases.phaseType".to_owned()])
    );
    assert_eq!(
        out.only_local,
        BTreeSet::from([
            "Build.extra".to_owned(),
            "Build.extra.a".to_owned(),
            "Build.phases.contexts".to_owned()
        ])
    );
    assert_eq!(
        out.type_mismatch,
        vec!["Build.id: moto string vs emulator number"]
    );
}

#[test]
fn array_elements_are_merged_and_null_matches_anything() {
    let moto = Shape::of(&json!({"phases": [{"a": 1}, {"b": "x"}], "endTime": null}));
    let local = Shape::of(&json!({"phases": [{"a": 2, "b": "y"}], "endTime": 1.5}));
    let mut out = Differences::default();
    compare("Build", &moto, &local, &mut out);
    assert!(out.only_moto.is_empty(), "{out:?}");
    assert!(out.only_local.is_empty(), "{out:?}");
    assert!(out.type_mismatch.is_empty(), "{out:?}");
}

#[test]
fn an_allow_listed_member_covers_its_children_only() {
    let list = [("Build.cache", "reason")];
    assert!(allowed("Build.cache", &list));
    assert!(allowed("Build.cache.type", &list));
    assert!(!allowed("Build.cacheKey", &list));
    assert!(!allowed("Build", &list));
}
