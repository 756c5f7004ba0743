//! Source-provider webhooks: verify a delivery, understand it, route it to CodeBuild projects.
//!
//! Every provider's payload becomes one common shape, [`SourceEvent`] (one per change: a
//! Bitbucket push may carry several), so routing, starting and superseding never look at a
//! provider's JSON again. Verification comes first and works on the raw bytes: nothing is parsed
//! before the signature is good.
//!
//! Pure code: secrets come in as values (the webhook function reads them from Secrets Manager
//! through [`crate::ports::Secrets`]), and nothing here does I/O.

pub mod bitbucket;
pub mod body;
pub mod delivery;
pub mod github;
pub mod gitlab;
pub mod handler;
mod payload;
pub mod route;
pub mod secret_cache;
pub mod settings;
pub mod verify;

use serde::{Deserialize, Serialize};

/// The source providers that send webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// GitLab.
    GitLab,
    /// Bitbucket Cloud.
    Bitbucket,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Provider::GitHub, Provider::GitLab, Provider::Bitbucket];

    /// The name used in paths (`/webhooks/github`), configuration, the ledger and the
    /// `AUTOPILOT_PROVIDER` variable.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
        }
    }

    /// The provider named by a path segment or configuration value; `None` when unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened in the repository, in CodeBuild's webhook vocabulary where it has a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Commits pushed to a branch (CodeBuild `PUSH`).
    Push,
    /// A tag pushed (CodeBuild `PUSH` with a `refs/tags/…` head ref).
    TagPush,
    /// A branch or tag deleted: nothing to build.
    RefDeleted,
    /// Pull / merge request opened (`PULL_REQUEST_CREATED`).
    PullRequestOpened,
    /// New commits on a pull / merge request, or its base changed (`PULL_REQUEST_UPDATED`).
    PullRequestUpdated,
    /// Reopened (`PULL_REQUEST_REOPENED`).
    PullRequestReopened,
    /// Merged (`PULL_REQUEST_MERGED`): its batches are stopped.
    PullRequestMerged,
    /// Closed without merging (`PULL_REQUEST_CLOSED`): its batches are stopped.
    PullRequestClosed,
}

impl EventKind {
    /// CodeBuild's `EVENT` filter value for this kind.
    pub fn codebuild_event(self) -> &'static str {
        match self {
            EventKind::Push | EventKind::TagPush | EventKind::RefDeleted => "PUSH",
            EventKind::PullRequestOpened => "PULL_REQUEST_CREATED",
            EventKind::PullRequestUpdated => "PULL_REQUEST_UPDATED",
            EventKind::PullRequestReopened => "PULL_REQUEST_REOPENED",
            EventKind::PullRequestMerged => "PULL_REQUEST_MERGED",
            EventKind::PullRequestClosed => "PULL_REQUEST_CLOSED",
        }
    }

    /// The name in logs, responses and `AUTOPILOT_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Push => "push",
            EventKind::TagPush => "tag_push",
            EventKind::RefDeleted => "ref_deleted",
            EventKind::PullRequestOpened => "pull_request_opened",
            EventKind::PullRequestUpdated => "pull_request_updated",
            EventKind::PullRequestReopened => "pull_request_reopened",
            EventKind::PullRequestMerged => "pull_request_merged",
            EventKind::PullRequestClosed => "pull_request_closed",
        }
    }

    /// True for the kinds that end a pull request (its batches are stopped, nothing started).
    pub fn ends_pull_request(self) -> bool {
        matches!(
            self,
            EventKind::PullRequestMerged | EventKind::PullRequestClosed
        )
    }
}

/// The repository a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// `owner/name` (GitHub `full_name`, GitLab `path_with_namespace`, Bitbucket `full_name`):
    /// what configuration matches against.
    pub full_name: String,
    /// The HTTPS clone URL, when the payload carries one.
    pub clone_url: Option<String>,
}

/// A pull / merge request's facts that routing and starting need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// GitHub / Bitbucket number, GitLab `iid`.
    pub number: u64,
    /// A draft (GitHub `draft`, GitLab `draft`/`work_in_progress`; Bitbucket has none).
    pub draft: bool,
    /// The head lives in another repository than the base (a fork).
    pub from_fork: bool,
}

/// The files a change touched, when the payload can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "paths", rename_all = "snake_case")]
pub enum ChangedFiles {
    /// Every file added, modified or removed (deduplicated, in first-seen order).
    Complete(Vec<String>),
    /// The payload has no complete list (pull requests; a GitHub push of more than 20 commits;
    /// Bitbucket pushes). A `FILE_PATH` filter then matches, with reason
    /// `file_list_unavailable`.
    Unavailable,
}

/// One change a delivery reports, in the one shape every provider's payload becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The provider's delivery id (kept across redeliveries): GitHub `X-GitHub-Delivery`,
    /// GitLab `Idempotency-Key` else `X-Gitlab-Event-UUID`, Bitbucket `X-Request-UUID`.
    pub delivery_id: String,
    /// The change's index within the delivery when a delivery carries several (Bitbucket
    /// pushes); `None` for a delivery of one change. Part of the idempotency identity.
    pub change_index: Option<u32>,
    /// What happened.
    pub kind: EventKind,
    /// The repository.
    pub repository: Repository,
    /// CodeBuild's `HEAD_REF`: `refs/heads/<branch>` or `refs/tags/<tag>`; for a pull request
    /// its source branch.
    pub head_ref: Option<String>,
    /// CodeBuild's `BASE_REF`: a pull request's target branch as `refs/heads/<branch>`.
    pub base_ref: Option<String>,
    /// The commit to build (the pushed head, or the pull request's head); `None` for a deletion.
    pub commit: Option<String>,
    /// The head commit's message (CodeBuild's `COMMIT_MESSAGE`).
    pub commit_message: Option<String>,
    /// The account id of who caused it (CodeBuild's `ACTOR_ACCOUNT_ID`: GitHub `sender.id`,
    /// GitLab `user_id`, Bitbucket `actor.account_id`).
    pub actor_account_id: Option<String>,
    /// Set for pull / merge request events.
    pub pull_request: Option<PullRequest>,
    /// Files touched.
    pub changed_files: ChangedFiles,
}

impl SourceEvent {
    /// The branch the change builds: the short name of a `refs/heads/…` head ref.
    pub fn branch(&self) -> Option<&str> {
        self.head_ref.as_deref()?.strip_prefix("refs/heads/")
    }

    /// The tag a tag push builds.
    pub fn tag(&self) -> Option<&str> {
        self.head_ref.as_deref()?.strip_prefix("refs/tags/")
    }
}

/// What a verified delivery turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Understood {
    /// The provider checking the hook (GitHub `ping`): answer 200, do nothing.
    Ping,
    /// An event type we do not act on (`issues`, `star`, …): answer 202 "ignored" with the
    /// reason.
    Ignored {
        /// Why, in a few words (`unsupported_event: issues`).
        reason: String,
    },
    /// One or more changes to route.
    Changes(Vec<SourceEvent>),
}

/// A payload that is not what its provider's event type promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {provider} {event} payload: {message}")]
pub struct PayloadError {
    /// The provider.
    pub provider: Provider,
    /// The event type header's value.
    pub event: String,
    /// What is wrong (a JSON error with its line and column, or the missing field) — never a
    /// secret, and never more than a short excerpt of the body.
    pub message: String,
}
