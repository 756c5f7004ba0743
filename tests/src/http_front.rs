//! An HTTP front for a harness function, as an API Gateway HTTP API with the Lambda proxy
//! integration (payload format 2.0) and the IAM authorizer: plain HTTP requests on 127.0.0.1
//! become HTTP API v2 events, the function's v2 response becomes the HTTP response. HTTP tools
//! (curl, schemathesis) can then talk to a compiled function binary as to the deployed API.
//!
//! What the front does as API Gateway does (payload format 2.0, see
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>):
//! - header names lower-cased, repeated headers joined with commas, `cookie` headers moved to
//!   `cookies`; `x-forwarded-*` added;
//! - `queryStringParameters` decoded, repeated keys joined with commas, absent when empty;
//! - with [`Routing::Routes`], the route key `METHOD /template` and decoded `pathParameters`; a
//!   request matching no route is answered 404 `{"message":"Not Found"}` without a call, as
//!   API Gateway does; with [`Routing::CatchAll`], the `$default` route and no path parameters;
//! - `requestContext.authorizer.iam` names the caller ([`IamCaller`]), or is absent;
//! - a body that is not UTF-8 is sent base64-encoded with `isBase64Encoded: true`;
//! - a function error answers 500 `{"message":"Internal Server Error"}`; a response without
//!   `statusCode` is taken as a 200 JSON body.
//!
//! One deliberate difference: `rawPath` and `requestContext.http.path` keep the request's
//! percent-encoding, so a percent-encoded ARN stays one path segment (the ops API's contract).

use std::net::SocketAddr;
use std::sync::Arc;

use aws_smithy_types::base64;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::lambda::{FunctionError, HarnessError, RunningFunction};

/// The account of every harness ARN (moto and codebuild-local use it too).
const ACCOUNT: &str = "123456789012";
/// The most a synchronous Lambda invocation takes (6 MB); API Gateway refuses more.
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// The API id the events name (10 lower-case alphanumerics, as API Gateway's are).
const API_ID: &str = "r3pmxmplak";

/// The IAM principal API Gateway's IAM authorizer puts in `requestContext.authorizer.iam`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamCaller {
    /// `accessKey`: the access key id that signed the request.
    pub access_key: String,
    /// `accountId`: the caller's account.
    pub account_id: String,
    /// `callerId`: the principal's unique id (`AIDA...` for a user).
    pub caller_id: String,
    /// `userArn`: the principal's ARN.
    pub user_arn: String,
    /// `userId`: the principal's unique id again, as API Gateway sends it.
    pub user_id: String,
}

impl IamCaller {
    /// An IAM user of the harness account, e.g. `IamCaller::user("ops-operator")`.
    pub fn user(name: &str) -> Self {
        // A stable unique id per name, shaped like IAM's (AIDA + 17 upper-case alphanumerics):
        // FNV-1a of the name, so two names never share an id in practice.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let unique = format!("{hash:016X}Q");
        let id = format!("AIDA{unique}");
        Self {
            access_key: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            account_id: ACCOUNT.to_owned(),
            caller_id: id.clone(),
            user_arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
            user_id: id,
        }
    }

    /// The `authorizer.iam` object of the event.
    pub fn to_event_json(&self) -> Value {
        json!({
            "accessKey": self.access_key,
            "accountId": self.account_id,
            "callerId": self.caller_id,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": self.user_arn,
            "userId": self.user_id,
        })
    }
}

impl Default for IamCaller {
    /// The IAM user `ops-operator` of the harness account.
    fn default() -> Self {
        Self::user("ops-operator")
    }
}

/// How requests map to routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Routing {
    /// Every request goes to the function on the `$default` route, without path parameters.
    #[default]
    CatchAll,
    /// Only these `(METHOD, path template)` routes exist (`ANY` matches every method; `{name}`
    /// one segment, `{name+}` the rest of the path); other requests get API Gateway's 404.
    Routes(Vec<(String, String)>),
}

impl Routing {
    /// Routes from a static table such as `autopilot::ops::ROUTES`.
    pub fn routes(table: &[(&str, &str)]) -> Self {
        Self::Routes(
            table
                .iter()
                .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
                .collect(),
        )
    }
}

/// How the front presents requests to the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontOptions {
    /// The IAM caller of every request; `None` sends no `authorizer` at all (an unsigned call,
    /// which the real API refuses before the function: the function's own 401 path).
    pub caller: Option<IamCaller>,
    /// Route matching.
    pub routing: Routing,
}

impl Default for FrontOptions {
    /// The default IAM user, every request to the function on `$default`.
    fn default() -> Self {
        Self {
            caller: Some(IamCaller::default()),
            routing: Routing::CatchAll,
        }
    }
}

/// A running front on 127.0.0.1; [`HttpFront::shutdown`] stops it (the function keeps running).
pub struct HttpFront {
    endpoint: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

struct Shared {
    function: RunningFunction,
    options: FrontOptions,
}

/// Serves `function` on an ephemeral 127.0.0.1 port.
pub async fn start(
    function: RunningFunction,
    options: FrontOptions,
) -> Result<HttpFront, HarnessError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(HarnessError::Serve)?;
    let endpoint = format!(
        "http://{}",
        listener.local_addr().map_err(HarnessError::Serve)?
    );
    let shared = Arc::new(Shared { function, options });
    let router = Router::new()
        .fallback(forward)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(HttpFront {
        endpoint,
        stop,
        server,
    })
}

impl HttpFront {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The URL of a path (which must start with `/`) on this front.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    /// Stops accepting requests and lets those in flight finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// The parts of a plain HTTP request an HTTP API v2 event is made of.
#[derive(Debug, Clone)]
pub struct PlainRequest {
    /// e.g. `GET`.
    pub method: String,
    /// The path as sent, percent-encoding kept.
    pub raw_path: String,
    /// The query string without `?`, as sent.
    pub raw_query: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body bytes (empty: no body).
    pub body: Bytes,
    /// The client's address.
    pub source_ip: String,
}

/// Why a request gets no event: API Gateway answers it itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No route matches the method and path.
    NotFound,
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
        }
    };
    let plain = PlainRequest {
        method: parts.method.as_str().to_owned(),
        raw_path: parts.uri.path().to_owned(),
        raw_query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        source_ip: peer.ip().to_string(),
    };
    let request_id = api_request_id();
    let event = match v2_event(&plain, &shared.options, &request_id) {
        Ok(event) => event,
        Err(NoRoute::NotFound) => return gateway_message(StatusCode::NOT_FOUND, "Not Found"),
    };
    let mut response = match shared.function.invoke(event).await {
        Ok(invocation) => http_response(invocation.result),
        Err(error) => {
            tracing::warn!(%error, "http front: the function could not be invoked");
            gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}

/// The HTTP API v2 event API Gateway sends for `request`, or why it sends none.
pub fn v2_event(
    request: &PlainRequest,
    options: &FrontOptions,
    request_id: &str,
) -> Result<Value, NoRoute> {
    let (route_key, path_parameters) = match &options.routing {
        Routing::CatchAll => ("$default".to_owned(), None),
        Routing::Routes(routes) => {
            let (method, template, parameters) =
                match_route(routes, &request.method, &request.raw_path).ok_or(NoRoute::NotFound)?;
            (format!("{method} {template}"), Some(parameters))
        }
    };
    let (headers, cookies) = event_headers(request);
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let now = chrono::Utc::now();
    let mut context = json!({
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "domainName": format!("{API_ID}.execute-api.us-east-1.amazonaws.com"),
        "domainPrefix": API_ID,
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if let Some(caller) = &options.caller {
        context["authorizer"] = json!({ "iam": caller.to_event_json() });
    }
    let mut event = Map::new();
    event.insert("version".to_owned(), json!("2.0"));
    event.insert("routeKey".to_owned(), json!(route_key));
    event.insert("rawPath".to_owned(), json!(request.raw_path));
    event.insert("rawQueryString".to_owned(), json!(request.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".to_owned(), json!(cookies));
    }
    event.insert("headers".to_owned(), Value::Object(headers));
    let query = query_parameters(&request.raw_query);
    if !query.is_empty() {
        event.insert("queryStringParameters".to_owned(), Value::Object(query));
    }
    if let Some(parameters) = path_parameters.filter(|p| !p.is_empty()) {
        event.insert("pathParameters".to_owned(), Value::Object(parameters));
    }
    event.insert("requestContext".to_owned(), context);
    if !request.body.is_empty() {
        let (body, base64) = match std::str::from_utf8(&request.body) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => (base64::encode(&request.body), true),
        };
        event.insert("body".to_owned(), json!(body));
        event.insert("isBase64Encoded".to_owned(), json!(base64));
    } else {
        event.insert("isBase64Encoded".to_owned(), json!(false));
    }
    Ok(Value::Object(event))
}

/// Lower-cased headers, repeated ones joined with commas, `cookie` moved out, the
/// `x-forwarded-*` headers API Gateway adds. Returns (headers, cookies).
fn event_headers(request: &PlainRequest) -> (Map<String, Value>, Vec<String>) {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &request.headers {
        // Header values that are not visible ASCII reach the function as their UTF-8 reading.
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == axum::http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|cookie| !cookie.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        // HeaderName is lower-case already.
        let joined = match headers.get(name.as_str()).and_then(Value::as_str) {
            Some(before) => format!("{before},{value}"),
            None => value,
        };
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    headers.insert("x-forwarded-for".to_owned(), json!(request.source_ip));
    headers.insert("x-forwarded-proto".to_owned(), json!("https"));
    headers.insert("x-forwarded-port".to_owned(), json!("443"));
    headers
        .entry("content-length")
        .or_insert_with(|| json!(request.body.len().to_string()));
    (headers, cookies)
}

/// Decoded query parameters, repeated keys joined with commas in order.
fn query_parameters(raw_query: &str) -> Map<String, Value> {
    let mut parameters = Map::new();
    for pair in raw_query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let value = percent_decode(value);
        let joined = match parameters.get(&key).and_then(Value::as_str) {
            Some(before) => format!("{before},{value}"),
            None => value,
        };
        parameters.insert(key, Value::String(joined));
    }
    parameters
}

/// The first route (most literal segments first) that `method` and `raw_path` match:
/// (method, template, decoded path parameters).
fn match_route<'r>(
    routes: &'r [(String, String)],
    method: &str,
    raw_path: &str,
) -> Option<(&'r str, &'r str, Map<String, Value>)> {
    let path_segments: Vec<&str> = raw_path.split('/').skip(1).collect();
    routes
        .iter()
        .filter(|(route_method, _)| route_method == "ANY" || route_method == method)
        .filter_map(|(route_method, template)| {
            let parameters = match_template(template, &path_segments)?;
            let literals = template
                .split('/')
                .filter(|segment| !segment.starts_with('{'))
                .count();
            Some((
                literals,
                route_method.as_str(),
                template.as_str(),
                parameters,
            ))
        })
        .max_by_key(|(literals, ..)| *literals)
        .map(|(_, method, template, parameters)| (method, template, parameters))
}

fn match_template(template: &str, path_segments: &[&str]) -> Option<Map<String, Value>> {
    let template_segments: Vec<&str> = template.split('/').skip(1).collect();
    let mut parameters = Map::new();
    for (index, pattern) in template_segments.iter().enumerate() {
        if let Some(name) = pattern
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix("+}"))
        {
            // Greedy: the rest of the path, at least one segment.
            let rest = path_segments.get(index..)?;
            if rest.is_empty() || rest.iter().all(|segment| segment.is_empty()) {
                return None;
            }
            parameters.insert(name.to_owned(), json!(percent_decode(&rest.join("/"))));
            return Some(parameters);
        }
        let segment = path_segments.get(index)?;
        match pattern
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
        {
            Some(name) if !segment.is_empty() => {
                parameters.insert(name.to_owned(), json!(percent_decode(segment)));
            }
            Some(_) => return None,
            None if percent_decode(segment) == *pattern => {}
            None => return None,
        }
    }
    (template_segments.len() == path_segments.len()).then_some(parameters)
}

/// Percent-decodes; bytes that do not form UTF-8 become U+FFFD, `+` stays `+`.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An API Gateway style request id (base64 of 12 random bytes, as `JKJaXmPLvHcESHA=`).
fn api_request_id() -> String {
    let random = uuid::Uuid::new_v4();
    base64::encode(&random.as_bytes()[..10])
}

/// Turns the function's answer into the HTTP response API Gateway would send.
pub fn http_response(result: Result<Value, FunctionError>) -> Response {
    let payload = match result {
        Ok(payload) => payload,
        Err(error) => {
            tracing::info!(error_type = %error.error_type, "http front: the function failed");
            return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    match structured_response(&payload) {
        Some(Ok(response)) => response,
        Some(Err(why)) => {
            tracing::warn!(why, "http front: malformed function response");
            gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        // No statusCode: API Gateway takes the whole answer as a 200 JSON body.
        None => (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            payload.to_string(),
        )
            .into_response(),
    }
}

/// The response a `{statusCode, headers, multiValueHeaders, cookies, body, isBase64Encoded}`
/// answer describes; `None` when the answer has no `statusCode`.
fn structured_response(payload: &Value) -> Option<Result<Response, &'static str>> {
    let object = payload.as_object()?;
    let status = object.get("statusCode")?;
    Some(build_structured(object, status))
}

fn build_structured(object: &Map<String, Value>, status: &Value) -> Result<Response, &'static str> {
    let status = status
        .as_u64()
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or("statusCode is not an HTTP status")?;
    let mut headers = HeaderMap::new();
    let single = object.get("headers").and_then(Value::as_object);
    for (name, value) in single.into_iter().flatten() {
        let value = header_text(value).ok_or("a header value is not a string")?;
        headers.append(header_name(name)?, header_value(&value)?);
    }
    let multi = object.get("multiValueHeaders").and_then(Value::as_object);
    for (name, values) in multi.into_iter().flatten() {
        let values = values
            .as_array()
            .ok_or("multiValueHeaders holds a non-list")?;
        for value in values {
            let value = header_text(value).ok_or("a header value is not a string")?;
            headers.append(header_name(name)?, header_value(&value)?);
        }
    }
    let cookies = object.get("cookies").and_then(Value::as_array);
    for cookie in cookies.into_iter().flatten() {
        let cookie = cookie.as_str().ok_or("a cookie is not a string")?;
        headers.append(SET_COOKIE, header_value(cookie)?);
    }
    let base64 = object
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if base64 => {
            base64::decode(text).map_err(|_| "body is not valid base64")?
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        // API Gateway serialises a non-string body as JSON text.
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn header_name(name: &str) -> Result<HeaderName, &'static str> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| "a header name is invalid")
}

fn header_value(value: &str) -> Result<HeaderValue, &'static str> {
    HeaderValue::from_str(value).map_err(|_| "a header value is invalid")
}

/// API Gateway's own answers: `{"message": "..."}`.
fn gateway_message(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn routes() -> Vec<(String, String)> {
        match Routing::routes(&[
            ("GET", "/builds"),
            ("GET", "/builds/{id}"),
            ("GET", "/builds/{id}/lineage"),
            ("POST", "/builds/{id}/retry"),
            ("GET", "/builds/latest"),
            ("ANY", "/files/{path+}"),
        ]) {
            Routing::Routes(routes) => routes,
            Routing::CatchAll => unreachable!(),
        }
    }

    #[test]
    fn routes_match_by_method_template_and_specificity() {
        let routes = routes();
        let (method, template, parameters) =
            match_route(&routes, "GET", "/builds/arn%3Aaws%3Acodebuild%2Fp%3Au").unwrap();
        assert_eq!((method, template), ("GET", "/builds/{id}"));
        assert_eq!(parameters["id"], "arn:aws:codebuild/p:u");

        let (_, template, parameters) = match_route(&routes, "GET", "/builds/latest").unwrap();
        assert_eq!(template, "/builds/latest");
        assert!(parameters.is_empty());

        let (_, template, _) = match_route(&routes, "POST", "/builds/p:u/retry").unwrap();
        assert_eq!(template, "/builds/{id}/retry");
        let (method, template, parameters) = match_route(&routes, "PUT", "/files/a/b%20c").unwrap();
        assert_eq!((method, template), ("ANY", "/files/{path+}"));
        assert_eq!(parameters["path"], "a/b c");

        assert!(match_route(&routes, "DELETE", "/builds").is_none());
        assert!(match_route(&routes, "GET", "/builds/").is_none());
        assert!(match_route(&routes, "GET", "/builds/a/b").is_none());
        assert!(match_route(&routes, "GET", "/files/").is_none());
        assert!(match_route(&routes, "GET", "/nowhere").is_none());
    }

    #[test]
    fn query_parameters_are_decoded_and_repeated_keys_joined() {
        let query = query_parameters("a=1&b=x%2Cy&a=2&flag&c=%E2%82%AC+");
        assert_eq!(
            Value::Object(query),
            json!({"a": "1,2", "b": "x,y", "flag": "", "c": "€+"})
        );
        assert!(query_parameters("").is_empty());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }

    #[test]
    fn structured_responses_keep_status_headers_cookies_and_binary_bodies() {
        let response = http_response(Ok(json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-one": "a,b"},
            "multiValueHeaders": {"x-many": ["1", "2"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": base64::encode([0xff_u8, 0x00, 0x7f]),
            "isBase64Encoded": true,
        })));
        assert_eq!(response.status(), StatusCode::CREATED);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-one"], "a,b");
        let many: Vec<_> = headers.get_all("x-many").iter().collect();
        assert_eq!(many, ["1", "2"]);
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        let body = futures_body(response);
        assert_eq!(body, [0xff, 0x00, 0x7f]);
    }

    #[test]
    fn answers_without_status_are_json_and_failures_are_500() {
        let response = http_response(Ok(json!({"hello": "world"})));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(futures_body(response), br#"{"hello":"world"}"#);

        let failed = http_response(Err(FunctionError {
            error_type: "Runtime.ExitError".to_owned(),
            error_message: "boom".to_owned(),
        }));
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            futures_body(failed),
            br#"{"message":"Internal Server Error"}"#
        );

        for malformed in [
            json!({"statusCode": "200"}),
            json!({"statusCode": 99}),
            json!({"statusCode": 200, "headers": {"bad name": "x"}}),
            json!({"statusCode": 200, "body": "***", "isBase64Encoded": true}),
        ] {
            let response = http_response(Ok(malformed.clone()));
            assert_eq!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{malformed}"
            );
        }
    }

    fn futures_body(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap()
            .to_vec()
    }
}
