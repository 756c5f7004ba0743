//! The HTTP front (`harness::http_front`) over the harness's echo function: plain HTTP requests
//! become the HTTP API v2 events API Gateway sends, with the IAM caller in the request context,
//! and the function's answers become HTTP responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_smithy_types::base64;
use harness::http_front::{self, FrontOptions, HttpFront, IamCaller, Routing};
use harness::lambda::{self, FunctionSpec, RunningFunction};
use serde_json::{Value, json};

async fn echo_function() -> RunningFunction {
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_fixture-fn"));
    lambda::start(FunctionSpec::new("echo", binary))
        .await
        .unwrap()
}

/// How many times the function was invoked so far.
fn invocations(function: &RunningFunction) -> usize {
    function
        .logs()
        .iter()
        .filter(|line| line.line.contains("fixture-invoked"))
        .count()
}

/// Sends `request`; returns the status, the `apigw-requestid` header and the event the
/// function saw (the echo function answers `{"echo": event, ...}` without a status code, which
/// API Gateway passes on as a 200 JSON body).
async fn echoed(request: reqwest::RequestBuilder) -> (u16, String, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("apigw-requestid")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.unwrap();
    if status == 200 {
        assert_eq!(content_type.unwrap(), "application/json");
    }
    (status, request_id, body["echo"].clone())
}

async fn front(function: &RunningFunction, options: FrontOptions) -> HttpFront {
    http_front::start(function.clone(), options).await.unwrap()
}

#[tokio::test]
async fn a_get_becomes_a_v2_event_with_the_iam_caller() {
    let function = echo_function().await;
    let front = front(&function, FrontOptions::default()).await;
    let id = "arn%3Aaws%3Acodebuild%3Aus-east-1%3A123456789012%3Abuild%2Fweb%3Aabc";

    let (status, request_id, event) = echoed(
        reqwest::Client::new()
            .get(front.url(&format!("/builds/{id}?ids=a%2Cb&x=1&x=2&empty=")))
            .header("X-Custom", "one")
            .header("x-custom", "two")
            .header("Cookie", "session=abc; theme=dark")
            .header("User-Agent", "front-test/1.0"),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    // The path keeps its percent-encoding: the ARN stays one segment.
    assert_eq!(event["rawPath"], format!("/builds/{id}"));
    assert_eq!(event["rawQueryString"], "ids=a%2Cb&x=1&x=2&empty=");
    assert_eq!(
        event["queryStringParameters"],
        json!({"ids": "a,b", "x": "1,2", "empty": ""})
    );
    assert!(event.get("pathParameters").is_none(), "{event}");
    assert_eq!(event["cookies"], json!(["session=abc", "theme=dark"]));
    let headers = &event["headers"];
    assert_eq!(headers["x-custom"], "one,two");
    assert_eq!(headers["user-agent"], "front-test/1.0");
    assert!(headers.get("cookie").is_none(), "{headers}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert!(
        headers
            .as_object()
            .unwrap()
            .keys()
            .all(|name| name == &name.to_lowercase()),
        "{headers}"
    );
    assert_eq!(event["isBase64Encoded"], false);
    assert!(event.get("body").is_none(), "{event}");

    let context = &event["requestContext"];
    assert_eq!(context["http"]["method"], "GET");
    assert_eq!(context["http"]["path"], format!("/builds/{id}"));
    assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["http"]["userAgent"], "front-test/1.0");
    assert_eq!(context["routeKey"], "$default");
    assert_eq!(context["stage"], "$default");
    assert_eq!(context["accountId"], "123456789012");
    assert_eq!(context["requestId"], request_id.as_str());
    let time = context["time"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").unwrap();
    assert_eq!(
        parsed.timestamp(),
        context["timeEpoch"].as_i64().unwrap() / 1000
    );
    let default = IamCaller::default();
    assert_eq!(
        context["authorizer"],
        json!({"iam": {
            "accessKey": default.access_key,
            "accountId": "123456789012",
            "callerId": default.caller_id,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": "arn:aws:iam::123456789012:user/ops-operator",
            "userId": default.user_id,
        }})
    );
    front.shutdown().await;
    function.shutdown().await;
}

#[tokio::test]
async fn text_bodies_pass_as_is_and_binary_ones_base64_encoded() {
    let function = echo_function().await;
    let front = front(&function, FrontOptions::default()).await;
    let http = reqwest::Client::new();

    let (_, _, event) = echoed(
        http.post(front.url("/batches"))
            .header("content-type", "application/json")
            .body(r#"{"reason":"release ✓"}"#),
    )
    .await;
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["body"], r#"{"reason":"release ✓"}"#);
    assert_eq!(event["isBase64Encoded"], false);

    let binary = vec![0xff_u8, 0xfe, 0x00, 0x80, b'a'];
    let (_, _, event) = echoed(http.put(front.url("/blob")).body(binary.clone())).await;
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(
        base64::decode(event["body"].as_str().unwrap()).unwrap(),
        binary
    );
    assert_eq!(event["headers"]["content-length"], "5");
    front.shutdown().await;
    function.shutdown().await;
}

#[tokio::test]
async fn callers_can_be_chosen_or_left_out() {
    let function = echo_function().await;
    let http = reqwest::Client::new();

    let anonymous = front(
        &function,
        FrontOptions {
            caller: None,
            ..FrontOptions::default()
        },
    )
    .await;
    let (_, _, event) = echoed(http.get(anonymous.url("/builds"))).await;
    assert!(
        event["requestContext"].get("authorizer").is_none(),
        "{event}"
    );

    let other = IamCaller::user("release-bot");
    let named = front(
        &function,
        FrontOptions {
            caller: Some(other.clone()),
            ..FrontOptions::default()
        },
    )
    .await;
    let (_, _, event) = echoed(http.get(named.url("/builds"))).await;
    let iam = &event["requestContext"]["authorizer"]["iam"];
    assert_eq!(iam["userArn"], "arn:aws:iam::123456789012:user/release-bot");
    assert_eq!(iam["userId"], other.user_id.as_str());
    assert_ne!(other.user_id, IamCaller::default().user_id);
    anonymous.shutdown().await;
    named.shutdown().await;
    function.shutdown().await;
}

#[tokio::test]
async fn routes_give_route_keys_and_path_parameters_and_unknown_routes_never_reach_the_function() {
    let function = echo_function().await;
    let routing = Routing::routes(&[
        ("GET", "/builds"),
        ("GET", "/builds/{id}"),
        ("POST", "/builds/{id}/retry"),
    ]);
    let front = front(
        &function,
        FrontOptions {
            routing,
            ..FrontOptions::default()
        },
    )
    .await;
    let http = reqwest::Client::new();

    let (status, _, event) = echoed(http.get(front.url("/builds/web%3Aabc"))).await;
    assert_eq!(status, 200);
    assert_eq!(event["routeKey"], "GET /builds/{id}");
    assert_eq!(event["requestContext"]["routeKey"], "GET /builds/{id}");
    assert_eq!(event["pathParameters"], json!({"id": "web:abc"}));
    assert_eq!(event["rawPath"], "/builds/web%3Aabc");

    let (_, _, event) = echoed(http.post(front.url("/builds/web%3Aabc/retry"))).await;
    assert_eq!(event["routeKey"], "POST /builds/{id}/retry");

    let (_, _, event) = echoed(http.get(front.url("/builds"))).await;
    assert_eq!(event["routeKey"], "GET /builds");
    assert!(event.get("pathParameters").is_none(), "{event}");

    let before = invocations(&function);
    for (method, path) in [
        (reqwest::Method::DELETE, "/builds"),
        (reqwest::Method::GET, "/nowhere"),
        (reqwest::Method::GET, "/builds/a/b"),
    ] {
        let response = http.request(method, front.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"message": "Not Found"}));
    }
    assert_eq!(invocations(&function), before);
    front.shutdown().await;
    function.shutdown().await;
}
