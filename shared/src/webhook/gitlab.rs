//! GitLab webhook payloads (`X-Gitlab-Event`: `Push Hook`, `Tag Push Hook`,
//! `Merge Request Hook`) turned into [`SourceEvent`]s.

use serde::Deserialize;

use super::payload::{
    LenientId, LenientU64, changed_files_union, is_zero_sha, read, unsupported_action,
    unsupported_event, unsupported_ref,
};
use super::{
    ChangedFiles, EventKind, PayloadError, Provider, PullRequest, Repository, SourceEvent,
    Understood,
};

/// GitLab lists at most this many commits in a push payload (`total_commits_count` tells the
/// real number).
const PUSH_COMMIT_LIST_CAP: usize = 20;

/// Understands one GitLab delivery.
///
/// `event` is the `X-Gitlab-Event` header, `delivery_id` the `Idempotency-Key` (else
/// `X-Gitlab-Event-UUID`) header, and `body` the verified JSON body. Unsupported events and
/// merge request actions come back as [`Understood::Ignored`]; a body that is not what its event
/// promises is a [`PayloadError`].
pub fn parse(event: &str, delivery_id: &str, body: &[u8]) -> Result<Understood, PayloadError> {
    match event {
        // Both hooks share one shape; the ref tells a branch from a tag.
        "Push Hook" | "Tag Push Hook" => read::<PushPayload>(Provider::GitLab, event, body)
            .map(|push| push.understand(delivery_id)),
        "Merge Request Hook" => read::<MergeRequestPayload>(Provider::GitLab, event, body)
            .map(|mr| mr.understand(delivery_id)),
        other => Ok(unsupported_event(other)),
    }
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
    #[serde(default)]
    git_http_url: Option<String>,
    /// Older name of `git_http_url`.
    #[serde(default)]
    http_url: Option<String>,
}

impl Project {
    fn into_repository(self) -> Repository {
        Repository {
            full_name: self.path_with_namespace,
            clone_url: self.git_http_url.or(self.http_url),
        }
    }
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    /// The commit a tag points at (`after` is the tag object for an annotated tag).
    #[serde(default)]
    checkout_sha: Option<String>,
    #[serde(default)]
    user_id: Option<LenientId>,
    project: Project,
    #[serde(default)]
    commits: Option<Vec<PushCommit>>,
    #[serde(default)]
    total_commits_count: Option<LenientU64>,
}

#[derive(Deserialize)]
struct PushCommit {
    id: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

impl PushPayload {
    fn understand(self, delivery_id: &str) -> Understood {
        let is_tag = self.git_ref.starts_with("refs/tags/");
        if !is_tag && !self.git_ref.starts_with("refs/heads/") {
            return unsupported_ref(&self.git_ref);
        }
        let deleted = is_zero_sha(&self.after);
        let kind = match (deleted, is_tag) {
            (true, _) => EventKind::RefDeleted,
            (false, true) => EventKind::TagPush,
            (false, false) => EventKind::Push,
        };
        let changed_files = self.changed_files(deleted);
        let commit_message = self
            .commits
            .iter()
            .flatten()
            .find(|c| c.id == self.after)
            .and_then(|c| c.message.clone());
        let commit = if deleted {
            None
        } else {
            Some(
                self.checkout_sha
                    .filter(|sha| !sha.is_empty() && !is_zero_sha(sha))
                    .unwrap_or(self.after),
            )
        };
        Understood::Changes(vec![SourceEvent {
            provider: Provider::GitLab,
            delivery_id: delivery_id.to_owned(),
            change_index: None,
            kind,
            repository: self.project.into_repository(),
            head_ref: Some(self.git_ref),
            base_ref: None,
            commit,
            commit_message,
            actor_account_id: self.user_id.map(|id| id.0),
            pull_request: None,
            changed_files,
        }])
    }

    fn changed_files(&self, deleted: bool) -> ChangedFiles {
        let Some(commits) = &self.commits else {
            return ChangedFiles::Unavailable;
        };
        let truncated = match self.total_commits_count {
            Some(total) => total.0 > commits.len() as u64,
            // Without the count, a full list may be the cap.
            None => commits.len() >= PUSH_COMMIT_LIST_CAP,
        };
        // No commits on a live ref (a new branch or tag at an existing commit): the payload
        // cannot say which files differ, so it must not look like "none".
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
struct MergeRequestPayload {
    #[serde(default)]
    user: Option<User>,
    project: Project,
    object_attributes: MergeRequestAttributes,
}

#[derive(Deserialize)]
struct User {
    id: LenientId,
}

#[derive(Deserialize)]
struct MergeRequestAttributes {
    iid: LenientU64,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    source_project_id: Option<LenientU64>,
    #[serde(default)]
    target_project_id: Option<LenientU64>,
    #[serde(default)]
    draft: Option<bool>,
    /// Older GitLab's name for a draft.
    #[serde(default)]
    work_in_progress: Option<bool>,
    #[serde(default)]
    last_commit: Option<LastCommit>,
    /// Missing on very old GitLab versions.
    #[serde(default)]
    action: Option<String>,
    /// Present on `update` only when new commits were pushed.
    #[serde(default)]
    oldrev: Option<String>,
}

#[derive(Deserialize)]
struct LastCommit {
    id: String,
    #[serde(default)]
    message: Option<String>,
}

impl MergeRequestPayload {
    fn understand(self, delivery_id: &str) -> Understood {
        let mr = self.object_attributes;
        let has_new_commits = mr.oldrev.as_deref().is_some_and(|rev| !rev.is_empty());
        let action = mr.action.as_deref().unwrap_or("none");
        let kind = match action {
            "open" => EventKind::PullRequestOpened,
            "reopen" => EventKind::PullRequestReopened,
            "update" if has_new_commits => EventKind::PullRequestUpdated,
            "merge" => EventKind::PullRequestMerged,
            "close" => EventKind::PullRequestClosed,
            // `update` without new commits (title, labels, …), `approved`, `unapproved`, …
            other => return unsupported_action(other),
        };
        let from_fork = match (mr.source_project_id, mr.target_project_id) {
            (Some(source), Some(target)) => source != target,
            // Without both ids nothing says it is a fork.
            _ => false,
        };
        let (commit, commit_message) = match mr.last_commit {
            Some(last) => (Some(last.id), last.message),
            None => (None, None),
        };
        Understood::Changes(vec![SourceEvent {
            provider: Provider::GitLab,
            delivery_id: delivery_id.to_owned(),
            change_index: None,
            kind,
            repository: self.project.into_repository(),
            head_ref: Some(format!("refs/heads/{}", mr.source_branch)),
            base_ref: Some(format!("refs/heads/{}", mr.target_branch)),
            commit,
            commit_message,
            actor_account_id: self.user.map(|u| u.id.0),
            pull_request: Some(PullRequest {
                number: mr.iid.0,
                draft: mr.draft.unwrap_or(false) || mr.work_in_progress.unwrap_or(false),
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

    const PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/gitlab/push.json");
    const TAG_PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/gitlab/tag_push.json");
    const MERGE_REQUEST: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/gitlab/merge_request.json");

    const DELIVERY: &str = "9cf63e4e-0e26-4a05-b1f6-6e1f2b5e8a11";
    const ZEROS: &str = "0000000000000000000000000000000000000000";

    fn one_change(event: &str, body: &[u8]) -> SourceEvent {
        crate::webhook::payload::test_support::one_change(parse, DELIVERY, event, body)
    }

    fn diaspora() -> Repository {
        Repository {
            full_name: "mike/diaspora".into(),
            clone_url: Some("http://example.com/mike/diaspora.git".into()),
        }
    }

    #[test]
    fn fixture_push_of_two_of_four_commits_has_no_complete_file_list() {
        // The sample lists 2 commits but `total_commits_count` is 4.
        let change = one_change("Push Hook", PUSH);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::GitLab,
                delivery_id: DELIVERY.into(),
                change_index: None,
                kind: EventKind::Push,
                repository: diaspora(),
                head_ref: Some("refs/heads/master".into()),
                base_ref: None,
                commit: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into()),
                commit_message: Some("fixed readme".into()),
                actor_account_id: Some("4".into()),
                pull_request: None,
                changed_files: ChangedFiles::Unavailable,
            }
        );
    }

    #[test]
    fn push_with_every_commit_listed_has_the_union_of_files() {
        let body = edited(PUSH, |v| {
            v["total_commits_count"] = json!(2);
            v["commits"][1]["removed"] = json!(["doc/old.md"]);
        });
        assert_eq!(
            one_change("Push Hook", &body).changed_files,
            ChangedFiles::Complete(vec![
                "CHANGELOG".into(),
                "app/controller/application.rb".into(),
                "doc/old.md".into()
            ])
        );
    }

    #[test]
    fn push_of_a_full_list_without_count_has_no_complete_file_list() {
        let commits: Vec<Value> = (0..20)
            .map(|i| json!({ "id": format!("{i:040}"), "added": [format!("f{i}")] }))
            .collect();
        let body = edited(PUSH, |v| {
            v.as_object_mut().unwrap().remove("total_commits_count");
            v["commits"] = Value::Array(commits);
        });
        assert_eq!(
            one_change("Push Hook", &body).changed_files,
            ChangedFiles::Unavailable
        );
    }

    #[test]
    fn branch_deletion_has_no_commit() {
        let body = edited(PUSH, |v| {
            v["after"] = json!(ZEROS);
            v["checkout_sha"] = Value::Null;
            v["commits"] = json!([]);
            v["total_commits_count"] = json!(0);
        });
        let change = one_change("Push Hook", &body);
        assert_eq!(change.kind, EventKind::RefDeleted);
        assert_eq!(change.head_ref.as_deref(), Some("refs/heads/master"));
        assert_eq!(change.commit, None);
        assert_eq!(change.commit_message, None);
        assert_eq!(change.changed_files, ChangedFiles::Complete(vec![]));
    }

    #[test]
    fn fixture_tag_push_is_a_tag_push() {
        let change = one_change("Tag Push Hook", TAG_PUSH);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::GitLab,
                delivery_id: DELIVERY.into(),
                change_index: None,
                kind: EventKind::TagPush,
                repository: Repository {
                    full_name: "jsmith/example".into(),
                    clone_url: Some("http://example.com/jsmith/example.git".into()),
                },
                head_ref: Some("refs/tags/v1.0.0".into()),
                base_ref: None,
                commit: Some("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7".into()),
                commit_message: None,
                actor_account_id: Some("1".into()),
                pull_request: None,
                changed_files: ChangedFiles::Unavailable,
            }
        );
    }

    #[test]
    fn annotated_tag_builds_the_checked_out_commit() {
        let body = edited(TAG_PUSH, |v| {
            v["after"] = json!("1111111111111111111111111111111111111111");
        });
        assert_eq!(
            one_change("Tag Push Hook", &body).commit.as_deref(),
            Some("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7")
        );
    }

    #[test]
    fn tag_deletion_is_a_ref_deletion() {
        let body = edited(TAG_PUSH, |v| {
            v["before"] = json!("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7");
            v["after"] = json!(ZEROS);
            v["checkout_sha"] = Value::Null;
        });
        let change = one_change("Tag Push Hook", &body);
        assert_eq!(change.kind, EventKind::RefDeleted);
        assert_eq!(change.tag(), Some("v1.0.0"));
        assert_eq!(change.commit, None);
    }

    #[test]
    fn fixture_merge_request_is_opened() {
        let change = one_change("Merge Request Hook", MERGE_REQUEST);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::GitLab,
                delivery_id: DELIVERY.into(),
                change_index: None,
                kind: EventKind::PullRequestOpened,
                repository: Repository {
                    full_name: "gitlabhq/gitlab-test".into(),
                    clone_url: Some("http://example.com/gitlabhq/gitlab-test.git".into()),
                },
                head_ref: Some("refs/heads/ms-viewport".into()),
                base_ref: Some("refs/heads/master".into()),
                commit: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into()),
                commit_message: Some("fixed readme".into()),
                actor_account_id: Some("1".into()),
                pull_request: Some(PullRequest {
                    number: 1,
                    draft: false,
                    from_fork: false
                }),
                changed_files: ChangedFiles::Unavailable,
            }
        );
    }

    fn with_action(action: &str, oldrev: Option<&str>) -> Vec<u8> {
        edited(MERGE_REQUEST, |v| {
            v["object_attributes"]["action"] = json!(action);
            if let Some(rev) = oldrev {
                v["object_attributes"]["oldrev"] = json!(rev);
            }
        })
    }

    #[test]
    fn merge_request_actions_map_to_kinds() {
        let old = Some("95790bf891e76fee5e1747ab589903a6a1f80f22");
        for (action, oldrev, kind) in [
            ("reopen", None, EventKind::PullRequestReopened),
            ("update", old, EventKind::PullRequestUpdated),
            ("merge", None, EventKind::PullRequestMerged),
            ("close", None, EventKind::PullRequestClosed),
        ] {
            let body = with_action(action, oldrev);
            assert_eq!(
                one_change("Merge Request Hook", &body).kind,
                kind,
                "{action}"
            );
        }
    }

    #[test]
    fn update_without_new_commits_and_approvals_are_ignored() {
        for action in ["update", "approved", "unapproved"] {
            assert_eq!(
                parse("Merge Request Hook", DELIVERY, &with_action(action, None)).unwrap(),
                Understood::Ignored {
                    reason: format!("unsupported_action: {action}")
                }
            );
        }
    }

    #[test]
    fn draft_and_work_in_progress_are_drafts() {
        for field in ["draft", "work_in_progress"] {
            let body = edited(MERGE_REQUEST, |v| {
                v["object_attributes"][field] = json!(true);
            });
            let pr = one_change("Merge Request Hook", &body)
                .pull_request
                .unwrap();
            assert!(pr.draft, "{field}");
        }
    }

    #[test]
    fn merge_request_from_another_project_is_a_fork() {
        let body = edited(MERGE_REQUEST, |v| {
            v["object_attributes"]["source_project_id"] = json!(15.0);
        });
        let pr = one_change("Merge Request Hook", &body)
            .pull_request
            .unwrap();
        assert!(pr.from_fork);
    }

    #[test]
    fn float_ids_are_accepted() {
        let body = edited(MERGE_REQUEST, |v| {
            v["object_attributes"]["iid"] = json!(7.0);
            v["object_attributes"]["source_project_id"] = json!(14.0);
            v["user"]["id"] = json!(1.0);
        });
        let change = one_change("Merge Request Hook", &body);
        assert_eq!(change.actor_account_id.as_deref(), Some("1"));
        let pr = change.pull_request.unwrap();
        assert_eq!(pr.number, 7);
        assert!(!pr.from_fork);
    }

    #[test]
    fn unsupported_events_are_ignored() {
        assert_events_ignored(parse, DELIVERY, &["Note Hook", "Pipeline Hook"]);
    }

    #[test]
    fn malformed_json_is_a_payload_error() {
        let fragment = "expected value";
        assert_payload_error(parse, Provider::GitLab, "Push Hook", b"<html>", fragment);
    }

    #[test]
    fn missing_required_field_is_a_payload_error() {
        let body = edited(PUSH, |v| {
            v["project"]
                .as_object_mut()
                .unwrap()
                .remove("path_with_namespace");
        });
        let fragment = "missing field `path_with_namespace`";
        assert_payload_error(parse, Provider::GitLab, "Push Hook", &body, fragment);

        let body = edited(MERGE_REQUEST, |v| {
            v["object_attributes"]
                .as_object_mut()
                .unwrap()
                .remove("iid");
        });
        let event = "Merge Request Hook";
        assert_payload_error(parse, Provider::GitLab, event, &body, "missing field `iid`");
    }
}
