//! Path and query parsing for the ops API: which route a request is, with its ids, project name
//! and query validated. Bodies and headers are the mutating routes' business (`mutate`).

use percent_encoding::percent_decode_str;

use super::page::PageToken;
use crate::http::ApiError;
use crate::model::BuildStatus;
use crate::model::ids::{BatchKind, BuildKind, ResourceId, ResourceKind, validate_project};

/// Most ids one `GET /builds?ids=` request may carry.
pub const MAX_IDS: usize = 100;
/// Batches per page of `GET /projects/{name}/batches` unless `maxResults` says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 25;
/// Largest `maxResults`.
pub const MAX_PAGE_SIZE: usize = 100;

/// Every (method, path template) the ops API serves; the OpenAPI document (docs/openapi.json)
/// has exactly these operations, and the template lists these routes.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/builds"),
    ("GET", "/builds/{id}"),
    ("GET", "/builds/{id}/lineage"),
    ("POST", "/builds/{id}/retry"),
    ("GET", "/batches/{id}"),
    ("POST", "/batches/{id}/retry"),
    ("POST", "/batches/{id}/stop"),
    ("GET", "/projects/{name}/batches"),
    ("POST", "/projects/{name}/batches"),
];

/// A request the ops API understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `GET /builds/{id}`.
    GetBuild(RequestedId),
    /// `GET /builds?ids=a,b`.
    GetBuilds(Vec<RequestedId>),
    /// `GET /builds/{id}/lineage`.
    GetLineage(RequestedId),
    /// `POST /builds/{id}/retry`.
    RetryBuild(RequestedId),
    /// `GET /batches/{id}`.
    GetBatch(RequestedBatchId),
    /// `POST /batches/{id}/retry`.
    RetryBatch(RequestedBatchId),
    /// `POST /batches/{id}/stop`.
    StopBatch(RequestedBatchId),
    /// `GET /projects/{name}/batches`.
    ListBatches {
        /// The project.
        project: String,
        /// Filter and paging.
        query: ListQuery,
    },
    /// `POST /projects/{name}/batches`.
    StartBatch {
        /// The project.
        project: String,
    },
}

impl Route {
    /// The path template (as in [`ROUTES`]).
    pub fn template(&self) -> &'static str {
        match self {
            Self::GetBuild(_) => "/builds/{id}",
            Self::GetBuilds(_) => "/builds",
            Self::GetLineage(_) => "/builds/{id}/lineage",
            Self::RetryBuild(_) => "/builds/{id}/retry",
            Self::GetBatch(_) => "/batches/{id}",
            Self::RetryBatch(_) => "/batches/{id}/retry",
            Self::StopBatch(_) => "/batches/{id}/stop",
            Self::ListBatches { .. } | Self::StartBatch { .. } => "/projects/{name}/batches",
        }
    }

    /// The HTTP method.
    pub fn method(&self) -> &'static str {
        if self.is_mutating() { "POST" } else { "GET" }
    }

    /// True for the routes that change something in CodeBuild (all `POST`).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Self::RetryBuild(_)
                | Self::RetryBatch(_)
                | Self::StopBatch(_)
                | Self::StartBatch { .. }
        )
    }
}

/// `status`, `maxResults` and `nextToken` of `GET /projects/{name}/batches`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Only batches in this status.
    pub status: Option<BuildStatus>,
    /// Most batches in the answer (1..=100, default 25).
    pub max_results: usize,
    /// Where the previous page ended.
    pub next_token: Option<PageToken>,
}

/// An id as the caller wrote it (decoded) and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested<K> {
    /// What the caller sent, percent-decoded: echoed back in `notFound` and in messages.
    pub given: String,
    /// The parsed id.
    pub id: ResourceId<K>,
}

/// A build id from the path or the query.
pub type RequestedId = Requested<BuildKind>;
/// A batch id from the path.
pub type RequestedBatchId = Requested<BatchKind>;

impl<K: ResourceKind> Requested<K> {
    fn parse(encoded: &str) -> Result<Self, ApiError> {
        let given = decode(encoded, K::ARN_RESOURCE)?;
        let id = ResourceId::<K>::parse(&given).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { given, id })
    }
}

/// The path's shape: which template it matched and what stood for `{id}` / `{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape<'a> {
    Builds,
    Build(&'a str),
    Lineage(&'a str),
    BuildRetry(&'a str),
    Batch(&'a str),
    BatchRetry(&'a str),
    BatchStop(&'a str),
    ProjectBatches(&'a str),
}

impl Shape<'_> {
    fn template(self) -> &'static str {
        match self {
            Self::Builds => "/builds",
            Self::Build(_) => "/builds/{id}",
            Self::Lineage(_) => "/builds/{id}/lineage",
            Self::BuildRetry(_) => "/builds/{id}/retry",
            Self::Batch(_) => "/batches/{id}",
            Self::BatchRetry(_) => "/batches/{id}/retry",
            Self::BatchStop(_) => "/batches/{id}/stop",
            Self::ProjectBatches(_) => "/projects/{name}/batches",
        }
    }
}

/// Routes a method, a raw (still percent-encoded) path and a raw query string. The path is
/// matched first (404), then the method (405 beats 400), then ids, names and the query are
/// validated (400).
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let shape = match segments.as_slice() {
        ["builds"] => Shape::Builds,
        ["builds", id] if !id.is_empty() => Shape::Build(id),
        ["builds", id, "lineage"] if !id.is_empty() => Shape::Lineage(id),
        ["builds", id, "retry"] if !id.is_empty() => Shape::BuildRetry(id),
        ["batches", id] if !id.is_empty() => Shape::Batch(id),
        ["batches", id, "retry"] if !id.is_empty() => Shape::BatchRetry(id),
        ["batches", id, "stop"] if !id.is_empty() => Shape::BatchStop(id),
        ["projects", name, "batches"] if !name.is_empty() => Shape::ProjectBatches(name),
        // An unencoded ARN has a `/` and spills into the next segment: say how to fix it.
        ["builds" | "batches", first, ..] if first.starts_with("arn:") => {
            return Err(ApiError::BadRequest(
                "an ARN in the path must be percent-encoded".into(),
            ));
        }
        _ => return Err(ApiError::NotFound(format!("no route for {path}"))),
    };
    let template = shape.template();
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, t)| *t == template)
        .map(|(m, _)| *m)
        .collect();
    if !allowed.contains(&method) {
        return Err(ApiError::MethodNotAllowed(format!(
            "{method} {template}: allowed {}",
            allowed.join(", ")
        )));
    }
    let query = query.unwrap_or_default();
    match (shape, method) {
        (Shape::Builds, _) => Ok(Route::GetBuilds(parse_ids_query(query)?)),
        // The foundation's read route ignores query parameters; kept as it was.
        (Shape::Build(id), _) => Ok(Route::GetBuild(Requested::parse(id)?)),
        (Shape::Lineage(id), _) => {
            no_query(query)?;
            Ok(Route::GetLineage(Requested::parse(id)?))
        }
        (Shape::BuildRetry(id), _) => {
            no_query(query)?;
            Ok(Route::RetryBuild(Requested::parse(id)?))
        }
        (Shape::Batch(id), _) => {
            no_query(query)?;
            Ok(Route::GetBatch(Requested::parse(id)?))
        }
        (Shape::BatchRetry(id), _) => {
            no_query(query)?;
            Ok(Route::RetryBatch(Requested::parse(id)?))
        }
        (Shape::BatchStop(id), _) => {
            no_query(query)?;
            Ok(Route::StopBatch(Requested::parse(id)?))
        }
        (Shape::ProjectBatches(name), "GET") => Ok(Route::ListBatches {
            project: parse_project(name)?,
            query: parse_list_query(query)?,
        }),
        (Shape::ProjectBatches(name), _) => {
            no_query(query)?;
            Ok(Route::StartBatch {
                project: parse_project(name)?,
            })
        }
    }
}

/// A percent-decoded path segment.
fn decode(encoded: &str, what: &str) -> Result<String, ApiError> {
    percent_decode_str(encoded)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ApiError::BadRequest(format!("{what} in the path is not valid UTF-8")))
}

/// A project name from the path: an exact CodeBuild project name, never a glob.
fn parse_project(encoded: &str) -> Result<String, ApiError> {
    let name = decode(encoded, "project name")?;
    validate_project(&name).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid_project: {name:?} is not a CodeBuild project name \
             (2 to 255 letters, digits, `-` and `_`, starting with a letter or digit)"
        ))
    })?;
    Ok(name)
}

fn parse_ids_query(query: &str) -> Result<Vec<RequestedId>, ApiError> {
    // Decoded before splitting: clients (and SigV4 signers) may send the commas as `%2C`.
    let values: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "ids")
        .map(|(_, value)| value.into_owned())
        .collect();
    let raw: Vec<&str> = values
        .iter()
        .flat_map(|value| value.split(','))
        .filter(|id| !id.is_empty())
        .collect();
    if raw.is_empty() {
        return Err(ApiError::BadRequest(
            "query parameter `ids` is required (1 to 100 build ids)".into(),
        ));
    }
    if raw.len() > MAX_IDS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_IDS} ids, got {}",
            raw.len()
        )));
    }
    raw.into_iter()
        .map(|given| {
            let id = ResourceId::parse(given).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Ok(Requested {
                given: given.to_owned(),
                id,
            })
        })
        .collect()
}

/// The query parameters of a route that defines only `known`: decoded, each at most once, none
/// other.
fn query_pairs(query: &str, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !known.contains(&name.as_ref()) {
            return Err(ApiError::BadRequest(match known {
                [] => format!("this route takes no query parameters, got `{name}`"),
                _ => format!(
                    "unknown query parameter `{name}` (known: {})",
                    known.join(", ")
                ),
            }));
        }
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return Err(ApiError::BadRequest(format!(
                "query parameter `{name}` is given more than once"
            )));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

fn no_query(query: &str) -> Result<(), ApiError> {
    query_pairs(query, &[]).map(|_| ())
}

/// The batch statuses `status=` accepts (CodeBuild's `StatusType`).
const LIST_STATUSES: [&str; 6] = [
    "SUCCEEDED",
    "FAILED",
    "FAULT",
    "TIMED_OUT",
    "IN_PROGRESS",
    "STOPPED",
];

fn parse_list_query(query: &str) -> Result<ListQuery, ApiError> {
    let mut parsed = ListQuery {
        status: None,
        max_results: DEFAULT_PAGE_SIZE,
        next_token: None,
    };
    for (name, value) in query_pairs(query, &["status", "maxResults", "nextToken"])? {
        match name.as_str() {
            "status" => {
                if !LIST_STATUSES.contains(&value.as_str()) {
                    return Err(ApiError::BadRequest(format!(
                        "status must be one of {}, got {value:?}",
                        LIST_STATUSES.join(", ")
                    )));
                }
                parsed.status = Some(BuildStatus::from(value.as_str()));
            }
            "maxResults" => {
                parsed.max_results = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "maxResults must be a whole number from 1 to {MAX_PAGE_SIZE}, got {value:?}"
                        ))
                    })?;
            }
            _ => parsed.next_token = Some(PageToken::decode(&value)?),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::{BatchId, BuildId};

    const UUID: &str = "8745a7a9-c340-456a-9166-edf953571bEX";

    fn bad_request(result: Result<Route, ApiError>) -> bool {
        matches!(result, Err(ApiError::BadRequest(_)))
    }

    #[test]
    fn single_build_by_id_or_encoded_arn() {
        let Route::GetBuild(id) = route("GET", &format!("/builds/proj:{UUID}"), None).unwrap()
        else {
            panic!("wrong route")
        };
        assert_eq!(id.id.id(), format!("proj:{UUID}"));
        let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build/proj:{UUID}");
        let encoded = BuildId::parse(&arn).unwrap().url_encoded();
        let Route::GetBuild(id) = route("GET", &format!("/builds/{encoded}"), None).unwrap() else {
            panic!("wrong route")
        };
        assert_eq!(id.given, arn);
        assert!(bad_request(route("GET", &format!("/builds/{arn}"), None)));
        assert!(bad_request(route(
            "POST",
            &format!("/builds/{arn}/retry"),
            None
        )));
    }

    #[test]
    fn ids_query_keeps_order_and_limits() {
        let Route::GetBuilds(ids) = route(
            "GET",
            "/builds",
            Some(&format!("ids=b1:{UUID},a1:{UUID}&x=1")),
        )
        .unwrap() else {
            panic!("wrong route")
        };
        let projects: Vec<_> = ids.iter().map(|r| r.id.project().to_owned()).collect();
        assert_eq!(projects, ["b1", "a1"]);

        let Route::GetBuilds(encoded) = route(
            "GET",
            "/builds",
            Some(&format!("ids=b1:{UUID}%2Ca1%3A{UUID}")),
        )
        .unwrap() else {
            panic!("wrong route")
        };
        assert_eq!(encoded, ids, "`%2C` and `%3A` are a comma and a colon");

        let hundred = vec![format!("p1:{UUID}"); 100].join(",");
        assert!(route("GET", "/builds", Some(&format!("ids={hundred}"))).is_ok());
        let too_many = vec![format!("p1:{UUID}"); 101].join(",");
        assert!(bad_request(route(
            "GET",
            "/builds",
            Some(&format!("ids={too_many}"))
        )));
    }

    #[test]
    fn bad_input_is_400() {
        assert!(bad_request(route("GET", "/builds", None)));
        assert!(bad_request(route("GET", "/builds", Some("ids="))));
        assert!(bad_request(route("GET", "/builds", Some("other=1"))));
        assert!(bad_request(route(
            "GET",
            "/builds",
            Some(&format!("ids=p1:{UUID},nope"))
        )));
        assert!(bad_request(route("GET", "/builds/not-an-id", None)));
        assert!(bad_request(route("GET", "/builds/%FF", None)));
    }

    #[test]
    fn unknown_route_404_wrong_method_405() {
        assert!(matches!(
            route("GET", "/projects", None),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route("GET", "/", None),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route("GET", &format!("/builds/p1:{UUID}/nope"), None),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route("POST", &format!("/builds/p1:{UUID}"), None),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route("DELETE", "/builds", None),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route("GET", &format!("/batches/p1:{UUID}/stop"), None),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route("PUT", "/projects/web/batches", None),
            Err(ApiError::MethodNotAllowed(_))
        ));
        // 405 beats 400: a wrong method on a malformed id is still the wrong method.
        assert!(matches!(
            route("DELETE", "/batches/garbage", None),
            Err(ApiError::MethodNotAllowed(_))
        ));
    }

    #[test]
    fn every_route_in_the_table_is_reachable_with_its_method() {
        let build = format!("web:{UUID}");
        for (method, template) in ROUTES {
            let path = template.replace("{id}", &build).replace("{name}", "web");
            let query = format!("ids={build}");
            let query = (*template == "/builds").then_some(query.as_str());
            let routed = route(method, &path, query).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                (routed.method(), routed.template()),
                (*method, *template),
                "{routed:?}"
            );
        }
    }

    #[test]
    fn batch_routes_parse_batch_ids_and_arns() {
        let arn = format!("arn:aws:codebuild:us-east-1:123456789012:build-batch/web:{UUID}");
        let encoded = BatchId::parse(&arn).unwrap().url_encoded();
        let Route::StopBatch(id) =
            route("POST", &format!("/batches/{encoded}/stop"), None).unwrap()
        else {
            panic!("wrong route")
        };
        assert_eq!(id.id.id(), format!("web:{UUID}"));
        // A build ARN is not a batch id.
        let build_arn = BuildId::parse(&format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/web:{UUID}"
        ))
        .unwrap()
        .url_encoded();
        assert!(bad_request(route(
            "GET",
            &format!("/batches/{build_arn}"),
            None
        )));
        assert!(bad_request(route("POST", "/batches/web:nope/retry", None)));
    }

    #[test]
    fn project_names_are_exact_codebuild_names() {
        for good in ["web", "my_project-2", "A1"] {
            let Route::StartBatch { project } =
                route("POST", &format!("/projects/{good}/batches"), None).unwrap()
            else {
                panic!("wrong route")
            };
            assert_eq!(project, good);
        }
        let long = "a".repeat(256);
        for bad in [
            "w*",
            "-web",
            "a",
            "we%20b",
            "web%2Fx",
            "%FF%FE",
            long.as_str(),
        ] {
            assert!(
                bad_request(route("GET", &format!("/projects/{bad}/batches"), None)),
                "{bad}"
            );
        }
    }

    #[test]
    fn list_query_defaults_limits_and_rejects_the_unknown() {
        let Route::ListBatches { query, .. } = route("GET", "/projects/web/batches", None).unwrap()
        else {
            panic!("wrong route")
        };
        assert_eq!(
            query,
            ListQuery {
                status: None,
                max_results: 25,
                next_token: None
            }
        );
        let token = PageToken {
            codebuild: Some("cb+/=token".into()),
            after: Some(format!("web:{UUID}")),
        };
        let Route::ListBatches { query, .. } = route(
            "GET",
            "/projects/web/batches",
            Some(&format!(
                "status=IN_PROGRESS&maxResults=100&nextToken={}",
                token.encode()
            )),
        )
        .unwrap() else {
            panic!("wrong route")
        };
        assert_eq!(query.status, Some(BuildStatus::InProgress));
        assert_eq!(query.max_results, 100);
        assert_eq!(query.next_token, Some(token));
        for bad in [
            "status=RUNNING",
            "status=in_progress",
            "maxResults=0",
            "maxResults=101",
            "maxResults=ten",
            "maxResults=1&maxResults=2",
            "nextToken=%%%",
            "nextToken=bm90IGpzb24",
            "limit=5",
        ] {
            assert!(
                bad_request(route("GET", "/projects/web/batches", Some(bad))),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_routes_take_no_stray_query_parameters() {
        let id = format!("web:{UUID}");
        for (method, path) in [
            ("GET", format!("/builds/{id}/lineage")),
            ("POST", format!("/builds/{id}/retry")),
            ("GET", format!("/batches/{id}")),
            ("POST", format!("/batches/{id}/stop")),
            ("POST", "/projects/web/batches".to_owned()),
        ] {
            assert!(bad_request(route(method, &path, Some("x=1"))), "{path}");
            assert!(route(method, &path, Some("")).is_ok(), "{path}");
        }
    }
}
