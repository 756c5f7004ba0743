//! Bitbucket Cloud webhook payloads (`X-Event-Key`: `repo:push`, `pullrequest:created`,
//! `pullrequest:updated`, `pullrequest:fulfilled`, `pullrequest:rejected`) turned into
//! [`SourceEvent`]s.
//!
//! A push may carry several ref changes; each becomes its own [`SourceEvent`] whose
//! `change_index` is its position in `push.changes`. Bitbucket lists no files, so changed
//! files are always [`ChangedFiles::Unavailable`].

use serde::Deserialize;

use super::payload::{LenientU64, is_from_fork, read, unsupported_event};
use super::{
    ChangedFiles, EventKind, PayloadError, Provider, PullRequest, Repository, SourceEvent,
    Understood,
};

/// Understands one Bitbucket Cloud delivery.
///
/// `event` is the `X-Event-Key` header, `delivery_id` the `X-Request-UUID` header, and `body`
/// the verified JSON body. Unsupported events come back as [`Understood::Ignored`]; a body that
/// is not what its event promises is a [`PayloadError`].
pub fn parse(event: &str, delivery_id: &str, body: &[u8]) -> Result<Understood, PayloadError> {
    let pull_request_kind = match event {
        "repo:push" => {
            return read::<PushPayload>(Provider::Bitbucket, event, body)
                .map(|push| push.understand(delivery_id));
        }
        "pullrequest:created" => EventKind::PullRequestOpened,
        // Also sent for title or description edits: the payload cannot tell them apart.
        "pullrequest:updated" => EventKind::PullRequestUpdated,
        "pullrequest:fulfilled" => EventKind::PullRequestMerged,
        "pullrequest:rejected" => EventKind::PullRequestClosed,
        other => return Ok(unsupported_event(other)),
    };
    read::<PullRequestPayload>(Provider::Bitbucket, event, body)
        .map(|pr| pr.understand(pull_request_kind, delivery_id))
}

#[derive(Deserialize)]
struct Actor {
    /// Absent for some app and team actors.
    #[serde(default)]
    account_id: Option<String>,
}

#[derive(Deserialize)]
struct RepositoryPayload {
    full_name: String,
    #[serde(default)]
    links: Option<RepositoryLinks>,
}

#[derive(Deserialize)]
struct RepositoryLinks {
    /// Webhook payloads usually leave it out; the REST shape has it.
    #[serde(default)]
    clone: Option<Vec<CloneLink>>,
}

#[derive(Deserialize)]
struct CloneLink {
    name: String,
    href: String,
}

impl RepositoryPayload {
    fn into_repository(self) -> Repository {
        let clone_url = self
            .links
            .and_then(|links| links.clone)
            .into_iter()
            .flatten()
            .find(|link| link.name == "https")
            .map(|link| link.href);
        Repository {
            full_name: self.full_name,
            clone_url,
        }
    }
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(default)]
    actor: Option<Actor>,
    repository: RepositoryPayload,
    push: Push,
}

#[derive(Deserialize)]
struct Push {
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    /// `null` when the ref was deleted.
    #[serde(default)]
    new: Option<RefState>,
    /// `null` when the ref was created.
    #[serde(default)]
    old: Option<RefState>,
}

#[derive(Deserialize)]
struct RefState {
    #[serde(rename = "type")]
    ref_type: String,
    name: String,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    hash: String,
    #[serde(default)]
    message: Option<String>,
}

/// The full ref name of a branch or tag; `None` for other ref types.
fn full_ref(state: &RefState) -> Option<String> {
    match state.ref_type.as_str() {
        "branch" => Some(format!("refs/heads/{}", state.name)),
        "tag" | "annotated_tag" => Some(format!("refs/tags/{}", state.name)),
        _ => None,
    }
}

impl PushPayload {
    fn understand(self, delivery_id: &str) -> Understood {
        let repository = self.repository.into_repository();
        let actor_account_id = self.actor.and_then(|a| a.account_id);
        let mut events = Vec::new();
        for (index, change) in self.push.changes.into_iter().enumerate() {
            // The index is the change's place in the payload, kept even when an earlier
            // change is skipped, so a redelivery names the same changes the same way.
            let Ok(change_index) = u32::try_from(index) else {
                break;
            };
            let (kind, head_ref, commit, commit_message) = match (&change.new, &change.old) {
                (Some(new), _) => {
                    let Some(head_ref) = full_ref(new) else {
                        continue;
                    };
                    let kind = if new.ref_type == "branch" {
                        EventKind::Push
                    } else {
                        EventKind::TagPush
                    };
                    let target = new.target.as_ref();
                    (
                        kind,
                        head_ref,
                        target.map(|t| t.hash.clone()),
                        target.and_then(|t| t.message.clone()),
                    )
                }
                (None, Some(old)) => {
                    let Some(head_ref) = full_ref(old) else {
                        continue;
                    };
                    (EventKind::RefDeleted, head_ref, None, None)
                }
                // Neither side: nothing to say about this change.
                (None, None) => continue,
            };
            events.push(SourceEvent {
                provider: Provider::Bitbucket,
                delivery_id: delivery_id.to_owned(),
                change_index: Some(change_index),
                kind,
                repository: repository.clone(),
                head_ref: Some(head_ref),
                base_ref: None,
                commit,
                commit_message,
                actor_account_id: actor_account_id.clone(),
                pull_request: None,
                changed_files: ChangedFiles::Unavailable,
            });
        }
        if events.is_empty() {
            return Understood::Ignored {
                reason: "no_branch_or_tag_changes".into(),
            };
        }
        Understood::Changes(events)
    }
}

#[derive(Deserialize)]
struct PullRequestPayload {
    #[serde(default)]
    actor: Option<Actor>,
    repository: RepositoryPayload,
    pullrequest: PullRequestBody,
}

#[derive(Deserialize)]
struct PullRequestBody {
    id: LenientU64,
    /// Newer payloads carry it; older ones have no drafts.
    #[serde(default)]
    draft: Option<bool>,
    source: Endpoint,
    destination: Endpoint,
}

#[derive(Deserialize)]
struct Endpoint {
    branch: BranchName,
    #[serde(default)]
    commit: Option<CommitHash>,
    /// `null` when the source fork was deleted.
    #[serde(default)]
    repository: Option<EndpointRepository>,
}

#[derive(Deserialize)]
struct BranchName {
    name: String,
}

#[derive(Deserialize)]
struct CommitHash {
    hash: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct EndpointRepository {
    full_name: String,
}

impl PullRequestPayload {
    fn understand(self, kind: EventKind, delivery_id: &str) -> Understood {
        let pr = self.pullrequest;
        let from_fork = is_from_fork(
            pr.source.repository.as_ref().map(|r| r.full_name.as_str()),
            pr.destination
                .repository
                .as_ref()
                .map(|r| r.full_name.as_str()),
            &self.repository.full_name,
        );
        let (commit, commit_message) = match pr.source.commit {
            // Bitbucket sends the short (12-character) hash here.
            Some(c) => (Some(c.hash), c.message),
            None => (None, None),
        };
        Understood::Changes(vec![SourceEvent {
            provider: Provider::Bitbucket,
            delivery_id: delivery_id.to_owned(),
            change_index: None,
            kind,
            repository: self.repository.into_repository(),
            head_ref: Some(format!("refs/heads/{}", pr.source.branch.name)),
            base_ref: Some(format!("refs/heads/{}", pr.destination.branch.name)),
            commit,
            commit_message,
            actor_account_id: self.actor.and_then(|a| a.account_id),
            pull_request: Some(PullRequest {
                number: pr.id.0,
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

    const PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/bitbucket/repo_push.json");
    const PR_UPDATED: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/bitbucket/pullrequest_updated.json");

    const DELIVERY: &str = "3c0e3b4a-5f51-4bb7-9c1e-0c7a44a5b0d2";
    const ACCOUNT: &str = "udfy9suggmzpswxc7n200y3c";

    fn team_repo() -> Repository {
        Repository {
            full_name: "team_name/repo_name".into(),
            clone_url: None,
        }
    }

    fn changes(event: &str, body: &[u8]) -> Vec<SourceEvent> {
        crate::webhook::payload::test_support::changes(parse, DELIVERY, event, body)
    }

    fn one_change(event: &str, body: &[u8]) -> SourceEvent {
        crate::webhook::payload::test_support::one_change(parse, DELIVERY, event, body)
    }

    #[test]
    fn fixture_push_is_one_branch_push() {
        let change = one_change("repo:push", PUSH);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::Bitbucket,
                delivery_id: DELIVERY.into(),
                change_index: Some(0),
                kind: EventKind::Push,
                repository: team_repo(),
                head_ref: Some("refs/heads/name-of-branch".into()),
                base_ref: None,
                commit: Some("709d658dc5b6d6afcd46049c2f332ee3f515a67d".into()),
                commit_message: Some("new commit message\n".into()),
                actor_account_id: Some(ACCOUNT.into()),
                pull_request: None,
                changed_files: ChangedFiles::Unavailable,
            }
        );
    }

    #[test]
    fn two_changes_are_two_events_with_their_indices() {
        let body = edited(PUSH, |v| {
            let mut tag = v["push"]["changes"][0].clone();
            tag["new"]["type"] = json!("tag");
            tag["new"]["name"] = json!("v2.0");
            tag["new"]["target"]["hash"] = json!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
            tag["old"] = Value::Null;
            v["push"]["changes"].as_array_mut().unwrap().push(tag);
        });
        let events = changes("repo:push", &body);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].change_index, Some(0));
        assert_eq!(events[0].kind, EventKind::Push);
        assert_eq!(events[0].branch(), Some("name-of-branch"));
        assert_eq!(events[1].change_index, Some(1));
        assert_eq!(events[1].kind, EventKind::TagPush);
        assert_eq!(events[1].head_ref.as_deref(), Some("refs/tags/v2.0"));
        assert_eq!(
            events[1].commit.as_deref(),
            Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        );
        assert!(events.iter().all(|e| e.delivery_id == DELIVERY));
    }

    #[test]
    fn skipped_change_keeps_the_next_index() {
        let body = edited(PUSH, |v| {
            let branch = v["push"]["changes"][0].clone();
            let mut unknown = branch.clone();
            unknown["new"]["type"] = json!("bookmark");
            v["push"]["changes"] = json!([unknown, branch]);
        });
        let change = one_change("repo:push", &body);
        assert_eq!(change.change_index, Some(1));
    }

    #[test]
    fn branch_deletion_has_no_commit() {
        let body = edited(PUSH, |v| v["push"]["changes"][0]["new"] = Value::Null);
        let change = one_change("repo:push", &body);
        assert_eq!(change.kind, EventKind::RefDeleted);
        assert_eq!(
            change.head_ref.as_deref(),
            Some("refs/heads/name-of-branch")
        );
        assert_eq!(change.commit, None);
        assert_eq!(change.commit_message, None);
    }

    #[test]
    fn push_with_no_usable_change_is_ignored() {
        let body = edited(PUSH, |v| v["push"]["changes"] = json!([]));
        assert_eq!(
            parse("repo:push", DELIVERY, &body).unwrap(),
            Understood::Ignored {
                reason: "no_branch_or_tag_changes".into()
            }
        );
    }

    #[test]
    fn https_clone_link_is_used_when_present() {
        let body = edited(PUSH, |v| {
            v["repository"]["links"]["clone"] = json!([
                { "name": "ssh", "href": "git@bitbucket.org:team_name/repo_name.git" },
                { "name": "https", "href": "https://bitbucket.org/team_name/repo_name.git" }
            ]);
        });
        assert_eq!(
            one_change("repo:push", &body)
                .repository
                .clone_url
                .as_deref(),
            Some("https://bitbucket.org/team_name/repo_name.git")
        );
    }

    #[test]
    fn fixture_pull_request_updated() {
        let change = one_change("pullrequest:updated", PR_UPDATED);
        assert_eq!(
            change,
            SourceEvent {
                provider: Provider::Bitbucket,
                delivery_id: DELIVERY.into(),
                change_index: None,
                kind: EventKind::PullRequestUpdated,
                repository: team_repo(),
                head_ref: Some("refs/heads/branch2".into()),
                base_ref: Some("refs/heads/master".into()),
                commit: Some("d3022fc0ca3d".into()),
                commit_message: None,
                actor_account_id: Some(ACCOUNT.into()),
                pull_request: Some(PullRequest {
                    number: 1,
                    draft: false,
                    from_fork: false
                }),
                changed_files: ChangedFiles::Unavailable,
            }
        );
    }

    #[test]
    fn pull_request_event_keys_map_to_kinds() {
        for (event, kind) in [
            ("pullrequest:created", EventKind::PullRequestOpened),
            ("pullrequest:fulfilled", EventKind::PullRequestMerged),
            ("pullrequest:rejected", EventKind::PullRequestClosed),
        ] {
            assert_eq!(one_change(event, PR_UPDATED).kind, kind, "{event}");
        }
    }

    #[test]
    fn fork_pull_request_is_marked() {
        let body = edited(PR_UPDATED, |v| {
            v["pullrequest"]["source"]["repository"]["full_name"] = json!("forker/repo_name");
        });
        let pr = one_change("pullrequest:created", &body)
            .pull_request
            .unwrap();
        assert!(pr.from_fork);
    }

    #[test]
    fn draft_flag_is_read_when_sent() {
        let body = edited(PR_UPDATED, |v| v["pullrequest"]["draft"] = json!(true));
        let pr = one_change("pullrequest:created", &body)
            .pull_request
            .unwrap();
        assert!(pr.draft);
    }

    #[test]
    fn float_pull_request_id_is_accepted() {
        let body = edited(PR_UPDATED, |v| v["pullrequest"]["id"] = json!(55.0));
        let pr = one_change("pullrequest:updated", &body)
            .pull_request
            .unwrap();
        assert_eq!(pr.number, 55);
    }

    #[test]
    fn unsupported_events_are_ignored() {
        assert_events_ignored(parse, DELIVERY, &["repo:fork", "pullrequest:approved"]);
    }

    #[test]
    fn malformed_json_is_a_payload_error() {
        let body = b"{\"push\": {";
        assert_payload_error(parse, Provider::Bitbucket, "repo:push", body, "EOF");
    }

    #[test]
    fn missing_required_field_is_a_payload_error() {
        let body = edited(PUSH, |v| {
            v["push"].as_object_mut().unwrap().remove("changes");
        });
        let fragment = "missing field `changes`";
        assert_payload_error(parse, Provider::Bitbucket, "repo:push", &body, fragment);

        let body = edited(PR_UPDATED, |v| {
            v["pullrequest"]["destination"]
                .as_object_mut()
                .unwrap()
                .remove("branch");
        });
        let event = "pullrequest:fulfilled";
        assert_payload_error(
            parse,
            Provider::Bitbucket,
            event,
            &body,
            "missing field `branch`",
        );
    }
}
