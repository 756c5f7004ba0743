//! GitHub webhook payloads (`X-GitHub-Event`: `push`, `pull_request`, `ping`) turned into
//! [`SourceEvent`]s.
//!
//! Only the fields routing needs are modelled; everything else in GitHub's large payloads is
//! ignored. Also home of the small lenient-number types the other providers' parsers share
//! ([`payload`]), since real payloads send ids as integers, floats (`55.0`) or strings.

use serde::Deserialize;
use serde::de::IgnoredAny;

use self::payload::{LenientId, LenientU64, changed_files_union, is_zero_sha, payload_error};
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
        "ping" => {
            // Nothing to read, but a ping that is not JSON is still not a GitHub ping.
            serde_json::from_slice::<IgnoredAny>(body)
                .map_err(|e| payload_error(Provider::GitHub, event, &e))?;
            Ok(Understood::Ping)
        }
        "push" => {
            let push: PushPayload = serde_json::from_slice(body)
                .map_err(|e| payload_error(Provider::GitHub, event, &e))?;
            Ok(push.understand(delivery_id))
        }
        "pull_request" => {
            let pr: PullRequestPayload = serde_json::from_slice(body)
                .map_err(|e| payload_error(Provider::GitHub, event, &e))?;
            Ok(pr.understand(delivery_id))
        }
        other => Ok(Understood::Ignored {
            reason: format!("unsupported_event: {other}"),
        }),
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
            return Understood::Ignored {
                reason: format!("unsupported_ref: {}", self.git_ref),
            };
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
            other => {
                return Understood::Ignored {
                    reason: format!("unsupported_action: {other}"),
                };
            }
        };
        let pr = self.pull_request;
        let base_full_name = pr
            .base
            .repo
            .as_ref()
            .map_or(self.repository.full_name.as_str(), |r| r.full_name.as_str());
        let from_fork = pr
            .head
            .repo
            .as_ref()
            .is_none_or(|head| head.full_name != base_full_name);
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

/// Pieces every provider's payload parser shares: lenient numbers and ids, the all-zeros
/// commit id, the changed-files union and the error constructor.
pub(super) mod payload {
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};

    use super::super::{ChangedFiles, PayloadError, Provider};

    /// Longest error message kept: serde_json quotes offending strings, which come from the
    /// body and may be long.
    const MAX_MESSAGE_CHARS: usize = 200;

    /// A [`PayloadError`] from a serde_json error, its message cut short.
    pub(in super::super) fn payload_error(
        provider: Provider,
        event: &str,
        error: &serde_json::Error,
    ) -> PayloadError {
        let full = error.to_string();
        let message = if full.chars().count() > MAX_MESSAGE_CHARS {
            let mut cut: String = full.chars().take(MAX_MESSAGE_CHARS).collect();
            cut.push('…');
            cut
        } else {
            full
        };
        PayloadError {
            provider,
            event: event.to_owned(),
            message,
        }
    }

    /// True for Git's "no commit" id (`0000…`), which marks a created or deleted ref.
    pub(in super::super) fn is_zero_sha(sha: &str) -> bool {
        !sha.is_empty() && sha.bytes().all(|b| b == b'0')
    }

    /// Every path, deduplicated in first-seen order, as a complete list.
    pub(in super::super) fn changed_files_union<'a, C, P>(commits: C) -> ChangedFiles
    where
        C: IntoIterator<Item = P>,
        P: IntoIterator<Item = &'a String>,
    {
        let mut seen = HashSet::new();
        let mut paths = Vec::new();
        for path in commits.into_iter().flatten() {
            if seen.insert(path.as_str()) {
                paths.push(path.clone());
            }
        }
        ChangedFiles::Complete(paths)
    }

    /// A non-negative whole number sent as an integer, a float without fraction (`55.0`) or a
    /// decimal string.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(in super::super) struct LenientU64(pub u64);

    /// An id kept as text: a number (normalised to its decimal form, so `4.0` is `"4"`) or a
    /// string (Bitbucket's account ids).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(in super::super) struct LenientId(pub String);

    /// Largest float that still holds every whole number exactly.
    const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

    fn whole_f64<E: de::Error>(v: f64) -> Result<u64, E> {
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= MAX_EXACT_F64 {
            // Checked above: whole, non-negative and within u64's exact range.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(v as u64)
        } else {
            Err(E::invalid_value(
                de::Unexpected::Float(v),
                &"a non-negative whole number",
            ))
        }
    }

    struct U64Visitor;

    impl Visitor<'_> for U64Visitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative whole number")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            whole_f64(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    impl<'de> serde::Deserialize<'de> for LenientU64 {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(U64Visitor).map(LenientU64)
        }
    }

    struct IdVisitor;

    impl Visitor<'_> for IdVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id (number or string)")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            whole_f64(v).map(|n| n.to_string())
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
    }

    impl<'de> serde::Deserialize<'de> for LenientId {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(IdVisitor).map(LenientId)
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, clippy::expect_used)]
        use super::*;

        #[test]
        fn numbers_arrive_as_integers_floats_or_strings() {
            let parse = |json: &str| serde_json::from_str::<LenientU64>(json).map(|n| n.0);
            assert_eq!(parse("55").unwrap(), 55);
            assert_eq!(parse("55.0").unwrap(), 55);
            assert_eq!(parse("\"55\"").unwrap(), 55);
            assert!(parse("55.5").is_err());
            assert!(parse("-1").is_err());
            assert!(parse("true").is_err());
        }

        #[test]
        fn ids_become_their_decimal_text() {
            let parse = |json: &str| serde_json::from_str::<LenientId>(json).map(|n| n.0);
            assert_eq!(parse("4").unwrap(), "4");
            assert_eq!(parse("4.0").unwrap(), "4");
            assert_eq!(parse("\"udfy9\"").unwrap(), "udfy9");
            assert!(parse("null").is_err());
        }

        #[test]
        fn zero_sha_is_all_zeros_only() {
            assert!(is_zero_sha("0000000000000000000000000000000000000000"));
            assert!(!is_zero_sha("0000000000000000000000000000000000000001"));
            assert!(!is_zero_sha(""));
        }

        #[test]
        fn long_error_messages_are_cut() {
            // serde_json quotes the offending string whole.
            let long = format!("\"{}\"", "y".repeat(1000));
            let error = serde_json::from_str::<u64>(&long).unwrap_err();
            assert!(error.to_string().len() > 1000);
            let built = payload_error(Provider::GitHub, "push", &error);
            assert!(built.message.chars().count() < 300, "{}", built.message);
            assert!(built.message.ends_with('…'));
            assert!(built.message.starts_with("invalid type: string \"yyy"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
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
        match parse(event, DELIVERY, body).unwrap() {
            Understood::Changes(mut changes) => {
                assert_eq!(changes.len(), 1);
                changes.remove(0)
            }
            other => panic!("expected one change, got {other:?}"),
        }
    }

    fn edited(fixture: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(fixture).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
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
        let mut body: Value =
            serde_json::from_slice(&branch_push(json!([commit(&["a"], &[], &[])]))).unwrap();
        body["size"] = json!(3.0);
        let body = serde_json::to_vec(&body).unwrap();
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
        for event in ["issues", "star"] {
            assert_eq!(
                parse(event, DELIVERY, b"{}").unwrap(),
                Understood::Ignored {
                    reason: format!("unsupported_event: {event}")
                }
            );
        }
    }

    #[test]
    fn malformed_json_is_a_payload_error() {
        let error = parse("push", DELIVERY, b"{\"ref\": ").unwrap_err();
        assert_eq!(error.provider, Provider::GitHub);
        assert_eq!(error.event, "push");
        assert!(error.message.contains("EOF"), "{}", error.message);
    }

    #[test]
    fn missing_required_field_is_a_payload_error() {
        let body = edited(PUSH, |v| {
            v.as_object_mut().unwrap().remove("ref");
        });
        let error = parse("push", DELIVERY, &body).unwrap_err();
        assert!(
            error.message.contains("missing field `ref`"),
            "{}",
            error.message
        );

        let body = edited(PR_SYNCHRONIZE, |v| {
            v["pull_request"]["head"]
                .as_object_mut()
                .unwrap()
                .remove("sha");
        });
        let error = parse("pull_request", DELIVERY, &body).unwrap_err();
        assert_eq!(error.event, "pull_request");
        assert!(
            error.message.contains("missing field `sha`"),
            "{}",
            error.message
        );
    }
}
