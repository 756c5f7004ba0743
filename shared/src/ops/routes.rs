//! Path and query parsing for the ops API.

use percent_encoding::percent_decode_str;

use crate::http::ApiError;
use crate::model::BuildId;

/// Most ids one `GET /builds?ids=` request may carry.
pub const MAX_IDS: usize = 100;

/// A request the ops API understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `GET /builds/{id}`.
    GetBuild(RequestedId),
    /// `GET /builds?ids=a,b`.
    GetBuilds(Vec<RequestedId>),
}

/// An id as the caller wrote it (decoded) and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedId {
    /// What the caller sent, percent-decoded: echoed back in `notFound`.
    pub given: String,
    /// The parsed id.
    pub id: BuildId,
}

impl RequestedId {
    fn parse(encoded: &str) -> Result<Self, ApiError> {
        let given = percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| ApiError::BadRequest("build id is not valid UTF-8".into()))?
            .into_owned();
        let id = BuildId::parse(&given).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { given, id })
    }
}

/// Routes a method, a raw (still percent-encoded) path and a raw query string. The route is
/// matched first, then the method (405 beats 400), then the ids are validated.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let single = match segments.as_slice() {
        ["builds"] => None,
        ["builds", id] if !id.is_empty() => Some(*id),
        // An unencoded ARN has a `/` and spills into a third segment: say how to fix it.
        ["builds", first, ..] if first.starts_with("arn:") => {
            return Err(ApiError::BadRequest(
                "a build ARN in the path must be percent-encoded".into(),
            ));
        }
        _ => return Err(ApiError::NotFound(format!("no route for {path}"))),
    };
    if method != "GET" {
        return Err(ApiError::MethodNotAllowed(format!(
            "{method} {path}: only GET is allowed"
        )));
    }
    match single {
        Some(id) => Ok(Route::GetBuild(RequestedId::parse(id)?)),
        None => Ok(Route::GetBuilds(parse_ids_query(query)?)),
    }
}

fn parse_ids_query(query: Option<&str>) -> Result<Vec<RequestedId>, ApiError> {
    let raw: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("ids="))
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
    raw.into_iter().map(RequestedId::parse).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
            route("POST", &format!("/builds/p1:{UUID}"), None),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route("DELETE", "/builds", None),
            Err(ApiError::MethodNotAllowed(_))
        ));
    }
}
