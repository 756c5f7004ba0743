//! `GET /builds/{id}/lineage`: the retry chain auto-retry recorded for a build.

use serde::Serialize;
use serde_json::{Value, json};

use super::builds::fetch_builds;
use super::routes::RequestedId;
use super::{ledger_unavailable, upstream};
use crate::http::ApiError;
use crate::model::BuildId;
use crate::ports::{CodeBuild, Lineage, RetryBook};

/// Longest chain walked: far more retries than any policy allows, and a bound should the
/// records ever loop.
pub const MAX_CHAIN: usize = 50;

/// One build of a retry chain. JSON: `{"build": "web:…", "attempt": 1, "parent": "web:…",
/// "createdAt": "2026-12-01T03:04:05Z"}`; the root has `"attempt": 0` and `null` parent and
/// `createdAt` (it was not made by a retry).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainLink {
    /// The build, `project:uuid`.
    pub build: String,
    /// 0 for the root, 1 for its first retry, ...
    pub attempt: u32,
    /// The build this one retried, `project:uuid`; null for the root.
    pub parent: Option<String>,
    /// When the retry was made (RFC 3339); null for the root.
    pub created_at: Option<String>,
}

impl ChainLink {
    fn root(build: &BuildId) -> Self {
        Self {
            build: build.id(),
            attempt: 0,
            parent: None,
            created_at: None,
        }
    }
}

impl From<&Lineage> for ChainLink {
    fn from(link: &Lineage) -> Self {
        Self {
            build: link.build.id(),
            attempt: link.attempt,
            parent: Some(link.parent.id()),
            created_at: Some(
                link.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
        }
    }
}

/// `GET /builds/{id}/lineage` → 200
/// `{"build": "web:…", "root": "web:…", "chain": [ChainLink, root first]}`.
///
/// The chain runs from the root through every retry auto-retry recorded, whichever build of it
/// is asked about. A build no retry made and none retried is a chain of itself alone (after
/// CodeBuild confirms the build exists: 404 otherwise).
pub async fn get_lineage<C: CodeBuild, R: RetryBook>(
    codebuild: &C,
    book: &R,
    requested: &RequestedId,
) -> Result<Value, ApiError> {
    let asked = requested.id.id();
    let own = book
        .lineage_of(&requested.id)
        .await
        .map_err(ledger_unavailable)?;
    let root = own
        .as_ref()
        .map_or_else(|| requested.id.clone(), |link| link.root.clone());
    let mut chain = vec![ChainLink::root(&root)];
    let mut current = root.clone();
    while chain.len() < MAX_CHAIN {
        let Some(next) = book
            .retried_by(&current)
            .await
            .map_err(ledger_unavailable)?
        else {
            break;
        };
        if chain.iter().any(|link| link.build == next.build.id()) {
            break;
        }
        chain.push(ChainLink::from(&next));
        current = next.build;
    }
    // The walk down follows "retried by" records; should one be missing, the asked build's own
    // link still says where it belongs.
    if let Some(link) = &own
        && !chain.iter().any(|l| l.build == asked)
    {
        chain.push(ChainLink::from(link));
    }
    if chain.len() == 1 {
        let found = fetch_builds(codebuild, std::slice::from_ref(&requested.id))
            .await
            .map_err(upstream)?;
        if !found.contains_key(&asked) {
            return Err(ApiError::NotFound(format!(
                "build {} not found",
                requested.given
            )));
        }
    }
    Ok(json!({ "build": asked, "root": root.id(), "chain": chain }))
}
