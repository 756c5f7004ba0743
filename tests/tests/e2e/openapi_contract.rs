//! Keeps docs/openapi.json true to the code without running anything: the operations are exactly
//! the routes the ops API serves (`autopilot::ops::ROUTES`), the limits it states are the code's
//! constants, and the response schemas name exactly the fields the code serialises. What the
//! function really answers is checked against the same document by `ops_api_schemathesis`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use autopilot::http::ApiError;
use autopilot::model::BuildSummary;
use autopilot::ops::idempotent::MAX_IDEMPOTENCY_KEY_LEN;
use autopilot::ops::{
    BatchGroupSummary, BatchSummary, ChainLink, DEFAULT_PAGE_SIZE, MAX_BODY_BYTES, MAX_CHAIN,
    MAX_IDS, MAX_PAGE_SIZE, MAX_REASON_CHARS, ROUTES, RetryBatchBody, StartBatchBody,
};
use autopilot::start::overrides::{
    MAX_BUILDSPEC_BYTES, MAX_ENVIRONMENT_VARIABLES, MAX_SOURCE_VERSION_CHARS,
    MAX_VARIABLE_NAME_CHARS, MAX_VARIABLE_VALUE_CHARS, OverrideVariable,
};
use harness::workspace;
use serde_json::{Value, json};

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    let path = workspace::root().join("docs").join("openapi.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

/// Resolves a local `$ref` (`#/components/...`) once; anything else is returned as is.
fn resolve<'d>(doc: &'d Value, node: &'d Value) -> &'d Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references: {reference}"));
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"))
        }
        None => node,
    }
}

fn schema<'d>(doc: &'d Value, name: &str) -> &'d Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("no schema {name}"))
}

/// Every (METHOD, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut found = Vec::new();
    for (path, item) in paths {
        for (key, operation) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&key.as_str()) {
                found.push((key.to_uppercase(), path.clone(), operation));
            }
        }
    }
    found
}

/// The parameters of an operation, its path item's included, references resolved.
fn parameters<'d>(doc: &'d Value, path: &str, operation: &'d Value) -> Vec<&'d Value> {
    let shared = doc["paths"][path]["parameters"].as_array();
    let own = operation["parameters"].as_array();
    shared
        .into_iter()
        .chain(own)
        .flatten()
        .map(|parameter| resolve(doc, parameter))
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn property_names(schema: &Value) -> BTreeSet<String> {
    keys(&schema["properties"])
}

fn required_names(schema: &Value) -> BTreeSet<String> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|name| {
            name.as_str()
                .expect("required names are strings")
                .to_owned()
        })
        .collect()
}

#[test]
fn the_operations_are_exactly_the_routes_the_code_serves() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "docs/openapi.json is out of step with autopilot::ops::ROUTES:\n\
         served but not documented: {undocumented:?}\n\
         documented but not served: {not_served:?}"
    );
    assert_eq!(doc["openapi"], "3.0.3");
}

#[test]
fn every_mutation_requires_an_idempotency_key_with_the_code_s_limits() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let keys: Vec<&Value> = parameters(&doc, &path, operation)
            .into_iter()
            .filter(|p| p["in"] == "header" && p["name"] == "Idempotency-Key")
            .collect();
        if method == "GET" {
            assert!(keys.is_empty(), "{method} {path} takes no Idempotency-Key");
            continue;
        }
        assert_eq!(keys.len(), 1, "{method} {path}: one Idempotency-Key header");
        let key = keys[0];
        assert_eq!(key["required"], true, "{method} {path}");
        assert_eq!(key["schema"]["minLength"], 1);
        assert_eq!(key["schema"]["maxLength"], MAX_IDEMPOTENCY_KEY_LEN);
        // Printable ASCII: space to tilde.
        assert_eq!(key["schema"]["pattern"], "^[ -~]+$");
        for status in ["400", "401", "409", "422"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{method} {path} must document {status}"
            );
        }
    }
}

#[test]
fn every_path_parameter_is_declared_and_required() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = parameters(&doc, &path, operation)
            .into_iter()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .collect();
        assert_eq!(declared, in_template, "{method} {path}");
    }
}

#[test]
fn stated_limits_are_the_code_s_constants() {
    let doc = document();
    let ids = &doc["paths"]["/builds"]["get"]["parameters"][0];
    assert_eq!(ids["name"], "ids");
    assert_eq!(ids["schema"]["maxItems"], MAX_IDS);

    let list = &doc["paths"]["/projects/{name}/batches"]["get"]["parameters"];
    let max_results = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "maxResults")
        .expect("maxResults");
    assert_eq!(max_results["schema"]["maximum"], MAX_PAGE_SIZE);
    assert_eq!(max_results["schema"]["default"], DEFAULT_PAGE_SIZE);
    assert_eq!(
        schema(&doc, "BatchPage")["properties"]["batches"]["maxItems"],
        MAX_PAGE_SIZE
    );
    assert_eq!(
        schema(&doc, "Lineage")["properties"]["chain"]["maxItems"],
        MAX_CHAIN
    );

    let start = &schema(&doc, "StartBatchBody")["properties"];
    assert_eq!(start["reason"]["maxLength"], MAX_REASON_CHARS);
    assert_eq!(
        start["sourceVersion"]["maxLength"],
        MAX_SOURCE_VERSION_CHARS
    );
    assert_eq!(start["buildspecOverride"]["maxLength"], MAX_BUILDSPEC_BYTES);
    assert_eq!(
        start["environmentVariables"]["maxItems"],
        MAX_ENVIRONMENT_VARIABLES
    );
    assert_eq!(
        start["timeoutInMinutes"]["minimum"],
        autopilot::config::CODEBUILD_MIN_TIMEOUT_MINUTES
    );
    assert_eq!(
        start["timeoutInMinutes"]["maximum"],
        autopilot::config::CODEBUILD_MAX_TIMEOUT_MINUTES
    );
    let variable = &schema(&doc, "EnvironmentVariable")["properties"];
    assert_eq!(variable["value"]["maxLength"], MAX_VARIABLE_VALUE_CHARS);
    assert_eq!(
        variable["name"]["pattern"],
        format!(
            "^[A-Za-z_][A-Za-z0-9_]{{0,{}}}$",
            MAX_VARIABLE_NAME_CHARS - 1
        )
    );
    let too_large = resolve(&doc, &doc["components"]["responses"]["payload_too_large"]);
    assert!(
        too_large["description"]
            .as_str()
            .unwrap()
            .contains(&format!("{} KiB", MAX_BODY_BYTES / 1024)),
        "{too_large}"
    );
}

/// A value of every serialised answer type, its optional fields filled so none is skipped.
fn build_summary() -> Value {
    json!(BuildSummary {
        id: "web:5a1b2c3d-0000-4000-8000-000000000001".into(),
        arn: Some("arn".into()),
        project: "web".into(),
        build_number: Some(1),
        status: "SUCCEEDED".into(),
        current_phase: Some("COMPLETED".into()),
        source_version: Some("main".into()),
        initiator: Some("me".into()),
        batch_id: Some("web:0f2b6c1e-8a7d-4c3b-9e2f-1a2b3c4d5e6f".into()),
        start_time: Some("2026-12-01T03:00:00Z".into()),
        end_time: Some("2026-12-01T03:10:00Z".into()),
        duration_seconds: Some(600),
        logs_link: Some("https://example.com".into()),
    })
}

fn batch_summary() -> Value {
    json!(BatchSummary {
        id: "web:0f2b6c1e-8a7d-4c3b-9e2f-1a2b3c4d5e6f".into(),
        arn: None,
        project: "web".into(),
        build_batch_number: None,
        status: "IN_PROGRESS".into(),
        complete: false,
        current_phase: None,
        source_version: None,
        resolved_source_version: None,
        initiator: None,
        start_time: None,
        end_time: None,
        duration_seconds: None,
        build_ids: Vec::new(),
        groups: Vec::new(),
    })
}

#[test]
fn response_schemas_name_exactly_the_serialised_fields() {
    let doc = document();
    let group = json!(BatchGroupSummary {
        identifier: None,
        build: None,
        status: "SUCCEEDED".into(),
    });
    let link = json!(ChainLink {
        build: "web:5a1b2c3d-0000-4000-8000-000000000001".into(),
        attempt: 0,
        parent: None,
        created_at: None,
    });
    for (name, value) in [
        ("BuildSummary", build_summary()),
        ("BatchSummary", batch_summary()),
        ("BatchGroup", group),
        ("ChainLink", link),
    ] {
        let schema = schema(&doc, name);
        // Every field is always there (null when absent): each one is required.
        assert_eq!(property_names(schema), keys(&value), "{name}");
        assert_eq!(required_names(schema), keys(&value), "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
}

#[test]
fn request_body_schemas_name_exactly_the_accepted_fields() {
    let doc = document();
    let start = json!(StartBatchBody {
        source_version: Some("main".into()),
        environment_variables: vec![OverrideVariable {
            name: "A".into(),
            value: "b".into(),
        }],
        buildspec_override: Some("version: 0.2".into()),
        timeout_in_minutes: Some(60),
        reason: Some("why".into()),
    });
    let variable = start["environmentVariables"][0].clone();
    for (name, value) in [
        ("StartBatchBody", start),
        ("RetryBatchBody", json!(RetryBatchBody::default())),
        ("EnvironmentVariable", variable),
    ] {
        let schema = schema(&doc, name);
        assert_eq!(property_names(schema), keys(&value), "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
    // Both variable fields are required; no field of the bodies is.
    assert_eq!(
        required_names(schema(&doc, "EnvironmentVariable")),
        BTreeSet::from(["name".to_owned(), "value".to_owned()])
    );
    assert!(required_names(schema(&doc, "StartBatchBody")).is_empty());
}

#[test]
fn the_error_body_lists_every_code_with_its_status() {
    let doc = document();
    let errors = [
        ApiError::BadRequest(String::new()),
        ApiError::Unauthorized(String::new()),
        ApiError::NotFound(String::new()),
        ApiError::MethodNotAllowed(String::new()),
        ApiError::Conflict(String::new()),
        ApiError::PayloadTooLarge(String::new()),
        ApiError::Unprocessable(String::new()),
        ApiError::Throttled(String::new()),
        ApiError::UpstreamUnavailable(String::new()),
        ApiError::Internal(String::new()),
    ];
    let codes: BTreeSet<String> = errors.iter().map(|e| e.code().to_owned()).collect();
    let documented: BTreeSet<String> =
        schema(&doc, "Error")["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap().to_owned())
            .collect();
    assert_eq!(documented, codes);
    assert_eq!(
        keys(&errors[0].body()),
        property_names(schema(&doc, "Error"))
    );
    // Each documented error response pins the code of its status.
    for (method, path, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            let schema = &response["content"]["application/json"]["schema"];
            let Some(pinned) = schema
                .pointer("/allOf/1/properties/error/properties/code/enum/0")
                .and_then(Value::as_str)
            else {
                continue;
            };
            let error = errors.iter().find(|e| e.code() == pinned).unwrap();
            assert_eq!(
                error.status().as_str(),
                status,
                "{method} {path}: {status} documents code {pinned}"
            );
        }
    }
}

#[test]
fn links_lead_to_documented_operations_and_their_parameters() {
    let doc = document();
    let all = operations(&doc);
    let mut links = 0;
    for (method, path, operation) in &all {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                links += 1;
                let target = link["operationId"].as_str().unwrap();
                let (_, target_path, target_operation) = all
                    .iter()
                    .find(|(_, _, op)| op["operationId"] == target)
                    .unwrap_or_else(|| {
                        panic!("{method} {path} {status} link {name}: no operation {target}")
                    });
                let declared: BTreeSet<String> = parameters(&doc, target_path, target_operation)
                    .into_iter()
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                for parameter in keys(&link["parameters"]) {
                    assert!(
                        declared.contains(&parameter),
                        "{method} {path} {status} link {name}: {target} has no `{parameter}`"
                    );
                }
                // The expression points into a field this response's schema has.
                let expression = link["parameters"]["id"].as_str().unwrap_or_default();
                let field = expression
                    .strip_prefix("$response.body#/")
                    .and_then(|pointer| pointer.split('/').next())
                    .unwrap_or_else(|| panic!("{name}: unexpected expression {expression}"));
                let schema = resolve(&doc, &response["content"]["application/json"]["schema"]);
                assert!(
                    property_names(schema).contains(field),
                    "{method} {path} {status} link {name}: no `{field}` in the body"
                );
            }
        }
    }
    assert!(links > 0, "the document has no links");
}
