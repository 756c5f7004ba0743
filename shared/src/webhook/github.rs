//! GitHub webhook payloads (`X-GitHub-Event`: `push`, `pull_request`, `ping`) turned into
//! [`SourceEvent`]s.
//!
//! Only the fields routing needs are modelled; everything else in GitHub's large payloads is
//! ignored.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::payload::{
    LenientId, LenientU64, changed_files_union, is_from_fork, is_zero_sha, read,
    unsupported_action, unsupported_event, unsupported_ref,
};
use super::{
    ChangedFiles, EventKind, PayloadError, Provider, PullRequest, Repository, SourceEvent,
    Understood,
};

/// GitHub lists at most this many commits in a push payload; at or past it the file list may
/// be incomplete.
const PUSH_COMMIT_LIST_CAP: usize = 20;

/// Understands one GitHub delivery.
///
/// `event` is the `X-GitHub-Event` header, `delivery_id` the `X-GitHub-Delivery` header, and
/// `body` the verified JSON body. Unsupported events and pull request actions come back as
/// [`Understood::Ignored`]; a body that is not what its event promises is a [`PayloadError`].
pub fn parse(event: &str, delivery_id: &str, body: &[u8]) -> Result<Understood, PayloadError> {
    match event {
        // Nothing to read, but a ping that is not JSON is still not a GitHub ping.
        "ping" => read::<IgnoredAny>(Provider::GitHub, event, body).map(|_| Understood::Ping),
        "push" => read::<PushPayload>(Provider::GitHub, event, body)
            .map(|push| push.understand(delivery_id)),
        "pull_request" => read::<PullRequestPayload>(Provider::GitHub, event, body)
            .map(|pr| pr.understand(delivery_id)),
        other => Ok(unsupported_event(other)),
    }
}

#[derive(Deserialize)]
struct RepositoryPayload {
    full_name: String,
    #[serde(default)]
    clone_url: Option<String>,
}

impl RepositoryPayload {
    fn into_repository(self) -> Repository {
        Repository {
            full_name: self.full_name,
            clone_url: self.clone_url,
        }
    }
}

#[derive(Deserialize)]
struct Sender {
    id: LenientId,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    /// Missing on some GitHub Enterprise versions; then the file list is unknown.
    #[serde(default)]
    commits: Option<Vec<PushCommit>>,
    #[serde(default)]
    head_commit: Option<HeadCommit>,
    /// Present in some payload shapes (Events API); more than listed means a truncated list.
    #[serde(default)]
    size: Option<LenientU64>,
    #[serde(default)]
    distinct_size: Option<LenientU64>,
    repository: RepositoryPayload,
    #[serde(default)]
    sender: Option<Sender>,
}

#[derive(Deserialize)]
struct PushCommit {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

#[derive(Deserialize)]
struct HeadCommit {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl PushPayload {
    fn understand(self, delivery_id: &str) -> Understood {
        let is_tag = self.git_ref.starts_with("refs/tags/");
        if !is_tag && !self.git_ref.starts_with("refs/heads/") {
            return unsupported_ref(&self.git_ref);
        }
        let deleted = self.deleted || is_zero_sha(&self.after);
        let kind = match (deleted, is_tag) {
            (true, _) => EventKind::RefDeleted,
            (false, true) => EventKind::TagPush,
            (false, false) => EventKind::Push,
        };
        let changed_files = self.changed_files(deleted);
        let (head_id, head_message) = match self.head_commit {
            Some(head) => (head.id, head.message),
            None => (None, None),
        };
        let commit = match kind {
            EventKind::RefDeleted => None,
            // An annotated tag's `after` is the tag object; the head commit is what to build.
            EventKind::TagPush => head_id.or(Some(self.after)),
            _ => Some(self.after),
        };
        Understood::Changes(vec![SourceEvent {
            provider: Provider::GitHub,
            delivery_id: delivery_id.to_owned(),
            change_index: None,
            kind,
            repository: self.repository.into_repository(),
            head_ref: Some(self.git_ref),
            base_ref: None,
            commit,
            commit_message: if deleted { None } else { head_message },
            actor_account_id: self.sender.map(|s| s.id.0),
            pull_request: None,
            changed_files,
        }])
    }

    fn changed_files(&self, deleted: bool) -> ChangedFiles {
        let Some(commits) = &self.commits else {
            return ChangedFiles::Unavailable;
        };
        let listed = commits.len() as u64;
        let truncated = commits.len() >= PUSH_COMMIT_LIST_CAP
            || [self.size, self.distinct_size]
                .into_iter()
                .flatten()
                .any(|count| count.0 > listed);
        // No commits on a live ref (a new branch at an existing commit, a force-push back):
        // the payload cannot say which files differ, so it must not look like "none".
        if truncated || (commits.is_empty() && !deleted) {
            return ChangedFiles::Unavailable;
        }
        changed_files_union(
            commits
                .iter()
                .map(|c| [&c.added, &c.modified, &c.removed].into_iter().flatten()),
        )
    }
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    pull_request: PullRequestBody,
    #[serde(default)]
    changes: Option<PullRequestChanges>,
    repository: RepositoryPayload,
    #[serde(default)]
    sender: Option<Sender>,
}

#[derive(Deserialize)]
struct PullRequestBody {
    number: LenientU64,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    merged: Option<bool>,
    head: Branch,
    base: Branch,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    /// `null` when the head's fork was deleted.
    #[serde(default)]
    repo: Option<BranchRepo>,
}

#[derive(Deserialize)]
struct BranchRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct PullRequestChanges {
    /// Present on `edited` when the base branch changed.
    #[serde(default)]
    base: Option<IgnoredAny>,
}

impl PullRequestPayload {
    fn understand(self, delivery_id: &str) -> Understood {
        let base_changed = self.changes.as_ref().is_some_and(|c| c.base.is_some());
        let kind = match self.action.as_str() {
            "opened" => EventKind::PullRequestOpened,
            "synchronize" => EventKind::PullRequestUpdated,
            // The contract's "its base changed": the diff to build against is new.
            "edited" if base_changed => EventKind::PullRequestUpdated,
            "reopened" => EventKind::PullRequestReopened,
            "closed" if self.pull_request.merged == Some(true) => EventKind::PullRequestMerged,
            "closed" => EventKind::PullRequestClosed,
            other => return unsupported_action(other),
        };
        let pr = self.pull_request;
        let from_fork = is_from_fork(
            pr.head.repo.as_ref().map(|r| r.full_name.as_str()),
            pr.base.repo.as_ref().map(|r| r.full_name.as_str()),
            &self.repository.full_name,
        );
        Understood::Changes(vec![SourceEvent {
            provider: Provider::GitHub,
            delivery_id: delivery_id.to_owned(),
            change_index: None,
            kind,
            repository: self.repository.into_repository(),
            head_ref: Some(format!("refs/heads/{}", pr.head.git_ref)),
            base_ref: Some(format!("refs/heads/{}", pr.base.git_ref)),
            commit: Some(pr.head.sha),
            // GitHub's pull_request payload carries no commit message.
            commit_message: None,
            actor_account_id: self.sender.map(|s| s.id.0),
            pull_request: Some(PullRequest {
                number: pr.number.0,
                draft: pr.draft.unwrap_or(false),
                from_fork,
            }),
            changed_files: ChangedFiles::Unavailable,
        }])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::webhook::payload::test_support::*;
    use serde_json::{Value, json};

    const PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/push.json");
    const PING: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/ping.json");
    const PR_SYNCHRONIZE: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/github/pull_request.synchronize.json");
    const PR_CLOSED: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/github/pull_request.closed.json");

    const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const HEAD_SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

    fn hello_world() -> Repository {
        Repository {
            full_name: "Codertocat/Hello-World".into(),
            clone_url: Some("https://github.com/Codertocat/Hello-World.git".into()),
        }
    }

    fn one_change(event: &str, body: &[u8]) -> SourceEvent {
        crate::webhook::payload::test_support::one_change(parse, DELIVERY, event, body)
    }

    /// The fixture push, turned into a live branch push of `commits`.
    fn branch_push(commits: Value) -> Vec<u8> {
        edited(PUSH, |v| {
            v["ref"] = json!("refs/heads/main");
            v["deleted"] = json!(false);
            v["after"] = json!("1111111111111111111111111111111111111111");
            v["commits"] = commits;
            v["head_commit"] = json!({
                "id": "1111111111111111111111111111111111111111",
                "message": "Fix the build"
            });
        })
    }

    fn commit(added: &[&str], modified: &[&str], removed: &[&str]) -> Value {
        json!({ "added": added, "modified": modified, "removed": removed })
    }

    #[test]
    fn fixture_push_is_a_tag_deletion() {
        // The octokit sample deletes tag `simple-tag`.
        let change = one_change("push", PUSH);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::GitHub,
                delivery_id: DELIVERY.into(),
                change_index: None,
                kind: EventKind::RefDeleted,
                repository: hello_world(),
                head_ref: Some("refs/tags/simple-tag".into()),
                base_ref: None,
                commit: None,
                commit_message: None,
                actor_account_id: Some("21031067".into()),
                pull_request: None,
                changed_files: ChangedFiles::Complete(vec![]),
            }
        );
    }

    #[test]
    fn branch_push_lists_every_file_once() {
        let body = branch_push(json!([
            commit(&["a.rs"], &["README.md"], &[]),
            commit(&["b.rs"], &["a.rs"], &["old.txt"]),
        ]));
        let change = one_change("push", &body);
        assert_eq!(change.kind, EventKind::Push);
        assert_eq!(change.head_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(change.branch(), Some("main"));
        assert_eq!(
            change.commit.as_deref(),
            Some("1111111111111111111111111111111111111111")
        );
        assert_eq!(change.commit_message.as_deref(), Some("Fix the build"));
        assert_eq!(change.actor_account_id.as_deref(), Some("21031067"));
        assert_eq!(
            change.changed_files,
            ChangedFiles::Complete(vec![
                "a.rs".into(),
                "README.md".into(),
                "b.rs".into(),
                "old.txt".into()
            ])
        );
    }

    #[test]
    fn push_of_twenty_commits_has_no_complete_file_list() {
        let nineteen: Vec<Value> = (0..19)
            .map(|i| commit(&[&format!("f{i}")], &[], &[]))
            .collect();
        let body = branch_push(Value::Array(nineteen.clone()));
        assert!(matches!(
            one_change("push", &body).changed_files,
            ChangedFiles::Complete(paths) if paths.len() == 19
        ));

        let mut twenty = nineteen;
        twenty.push(commit(&["f19"], &[], &[]));
        let body = branch_push(Value::Array(twenty));
        assert_eq!(
            one_change("push", &body).changed_files,
            ChangedFiles::Unavailable
        );
    }

    #[test]
    fn push_whose_size_exceeds_the_list_has_no_complete_file_list() {
        let body = edited(&branch_push(json!([commit(&["a"], &[], &[])])), |v| {
            v["size"] = json!(3.0);
        });
        assert_eq!(
            one_change("push", &body).changed_files,
            ChangedFiles::Unavailable
        );
    }

    #[test]
    fn new_branch_without_commits_has_no_complete_file_list() {
        let body = branch_push(json!([]));
        let change = one_change("push", &body);
        assert_eq!(change.kind, EventKind::Push);
        assert_eq!(change.changed_files, ChangedFiles::Unavailable);
    }

    #[test]
    fn branch_deletion_by_zero_after_has_no_commit() {
        let body = edited(PUSH, |v| {
            v["ref"] = json!("refs/heads/feature");
            // Only the all-zeros `after` says so here.
            v["deleted"] = json!(false);
        });
        let change = one_change("push", &body);
        assert_eq!(change.kind, EventKind::RefDeleted);
        assert_eq!(change.head_ref.as_deref(), Some("refs/heads/feature"));
        assert_eq!(change.commit, None);
    }

    #[test]
    fn tag_push_builds_the_tagged_commit() {
        let body = edited(PUSH, |v| {
            v["deleted"] = json!(false);
            v["created"] = json!(true);
            // An annotated tag: `after` is the tag object, head_commit the commit.
            v["after"] = json!("2222222222222222222222222222222222222222");
            v["head_commit"] = json!({
                "id": "3333333333333333333333333333333333333333",
                "message": "Release 1.0"
            });
        });
        let change = one_change("push", &body);
        assert_eq!(change.kind, EventKind::TagPush);
        assert_eq!(change.tag(), Some("simple-tag"));
        assert_eq!(
            change.commit.as_deref(),
            Some("3333333333333333333333333333333333333333")
        );
        assert_eq!(change.commit_message.as_deref(), Some("Release 1.0"));
    }

    #[test]
    fn push_to_other_refs_is_ignored() {
        let body = edited(PUSH, |v| v["ref"] = json!("refs/notes/commits"));
        assert_eq!(
            parse("push", DELIVERY, &body).unwrap(),
            Understood::Ignored {
                reason: "unsupported_ref: refs/notes/commits".into()
            }
        );
    }

    #[test]
    fn fixture_synchronize_is_an_update() {
        let change = one_change("pull_request", PR_SYNCHRONIZE);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::GitHub,
                delivery_id: DELIVERY.into(),
                change_index: None,
                kind: EventKind::PullRequestUpdated,
                repository: hello_world(),
                head_ref: Some("refs/heads/changes".into()),
                base_ref: Some("refs/heads/master".into()),
                commit: Some(HEAD_SHA.into()),
                commit_message: None,
                actor_account_id: Some("21031067".into()),
                pull_request: Some(PullRequest {
                    number: 2,
                    draft: false,
                    from_fork: false
                }),
                changed_files: ChangedFiles::Unavailable,
            }
        );
    }

    #[test]
    fn fixture_closed_without_merge_is_closed_and_with_merge_is_merged() {
        let closed = one_change("pull_request", PR_CLOSED);
        assert_eq!(closed.kind, EventKind::PullRequestClosed);
        assert_eq!(closed.commit.as_deref(), Some(HEAD_SHA));
        assert_eq!(closed.pull_request.map(|p| p.number), Some(2));

        let body = edited(PR_CLOSED, |v| v["pull_request"]["merged"] = json!(true));
        assert_eq!(
            one_change("pull_request", &body).kind,
            EventKind::PullRequestMerged
        );
    }

    #[test]
    fn actions_map_to_kinds() {
        for (action, kind) in [
            ("opened", EventKind::PullRequestOpened),
            ("reopened", EventKind::PullRequestReopened),
            ("synchronize", EventKind::PullRequestUpdated),
        ] {
            let body = edited(PR_SYNCHRONIZE, |v| v["action"] = json!(action));
            assert_eq!(one_change("pull_request", &body).kind, kind, "{action}");
        }
    }

    #[test]
    fn edited_base_is_an_update_and_other_edits_are_ignored() {
        let body = edited(PR_SYNCHRONIZE, |v| {
            v["action"] = json!("edited");
            v["changes"] = json!({ "base": { "ref": { "from": "develop" } } });
        });
        assert_eq!(
            one_change("pull_request", &body).kind,
            EventKind::PullRequestUpdated
        );

        let body = edited(PR_SYNCHRONIZE, |v| {
            v["action"] = json!("edited");
            v["changes"] = json!({ "title": { "from": "Old title" } });
        });
        assert_eq!(
            parse("pull_request", DELIVERY, &body).unwrap(),
            Understood::Ignored {
                reason: "unsupported_action: edited".into()
            }
        );
    }

    #[test]
    fn unsupported_actions_are_ignored() {
        for action in ["labeled", "assigned", "review_requested"] {
            let body = edited(PR_SYNCHRONIZE, |v| v["action"] = json!(action));
            assert_eq!(
                parse("pull_request", DELIVERY, &body).unwrap(),
                Understood::Ignored {
                    reason: format!("unsupported_action: {action}")
                }
            );
        }
    }

    #[test]
    fn draft_pull_request_is_marked() {
        let body = edited(PR_SYNCHRONIZE, |v| v["pull_request"]["draft"] = json!(true));
        let pr = one_change("pull_request", &body).pull_request.unwrap();
        assert!(pr.draft);
    }

    #[test]
    fn fork_pull_request_is_marked() {
        let body = edited(PR_SYNCHRONIZE, |v| {
            v["pull_request"]["head"]["repo"]["full_name"] = json!("forker/Hello-World");
        });
        assert!(
            one_change("pull_request", &body)
                .pull_request
                .unwrap()
                .from_fork
        );

        // A deleted fork leaves `head.repo` null.
        let body = edited(PR_SYNCHRONIZE, |v| {
            v["pull_request"]["head"]["repo"] = Value::Null;
        });
        assert!(
            one_change("pull_request", &body)
                .pull_request
                .unwrap()
                .from_fork
        );
    }

    #[test]
    fn float_numbers_are_accepted() {
        let body = edited(PR_SYNCHRONIZE, |v| {
            v["pull_request"]["number"] = json!(55.0);
            v["sender"]["id"] = json!(21031067.0);
        });
        let change = one_change("pull_request", &body);
        assert_eq!(change.pull_request.unwrap().number, 55);
        assert_eq!(change.actor_account_id.as_deref(), Some("21031067"));
    }

    #[test]
    fn ping_is_ping() {
        assert_eq!(parse("ping", DELIVERY, PING).unwrap(), Understood::Ping);
        assert!(parse("ping", DELIVERY, b"not json").is_err());
    }

    #[test]
    fn unsupported_events_are_ignored() {
        assert_events_ignored(parse, DELIVERY, &["issues", "star"]);
    }

    #[test]
    fn malformed_json_is_a_payload_error() {
        assert_payload_error(parse, Provider::GitHub, "push", b"{\"ref\": ", "EOF");
    }

    #[test]
    fn missing_required_field_is_a_payload_error() {
        let body = edited(PUSH, |v| {
            v.as_object_mut().unwrap().remove("ref");
        });
        assert_payload_error(
            parse,
            Provider::GitHub,
            "push",
            &body,
            "missing field `ref`",
        );

        let body = edited(PR_SYNCHRONIZE, |v| {
            v["pull_request"]["head"]
                .as_object_mut()
                .unwrap()
                .remove("sha");
        });
        let event = "pull_request";
        assert_payload_error(parse, Provider::GitHub, event, &body, "missing field `sha`");
    }
}
