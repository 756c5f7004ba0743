//! Which CodeBuild projects a [`SourceEvent`] starts (or stops), decided from the
//! `[[repositories]]` configuration with filter groups that mean what CodeBuild's webhook filter
//! groups mean.
//!
//! CodeBuild's rules, as documented
//! (<https://docs.aws.amazon.com/codebuild/latest/userguide/github-webhook.html> and the
//! `WebhookFilter` / `Webhook.filterGroups` API reference,
//! <https://docs.aws.amazon.com/codebuild/latest/APIReference/API_WebhookFilter.html>):
//! - a filter group passes when **every** filter in it passes; a target accepts an event when
//!   **any** of its groups passes;
//! - `EVENT` holds a comma-separated list of event names; the others hold a regular expression
//!   that is searched for (not anchored: `^refs/heads/` matches every branch);
//! - `exclude_matched_pattern = true` inverts a filter: the event passes when it does **not**
//!   match;
//! - `HEAD_REF` is `refs/heads/<branch>` or `refs/tags/<tag>` (for a pull request: its source
//!   branch), `BASE_REF` a pull request's target branch (pull requests only), `FILE_PATH` any
//!   changed file, `COMMIT_MESSAGE` the head commit's message, `ACTOR_ACCOUNT_ID` who caused it.
//!
//! Where CodeBuild says nothing, the choices made here:
//! - a target with no filter groups accepts every event (as a CodeBuild webhook without filter
//!   groups builds every push and pull request);
//! - a value the event does not carry (no `BASE_REF` on a push, no commit message in a pull
//!   request payload) matches no pattern, so an including filter fails and an excluding filter
//!   passes — CodeBuild's own wording of `excludeMatchedPattern` ("an event that does not match
//!   the pattern triggers a build");
//! - `FILE_PATH` when the payload has no complete file list ([`ChangedFiles::Unavailable`]):
//!   the filter passes (including or excluding: a build is never lost for lack of information)
//!   and the outcome carries the note [`NOTE_FILE_LIST_UNAVAILABLE`];
//! - patterns are compiled with the `regex` crate, not Java's `java.util.regex`: look-around,
//!   back-references, possessive quantifiers and atomic groups are refused when the
//!   configuration is validated;
//! - a merged or closed pull request never starts anything: it stops the pull request's
//!   batches in every target configured for the repository, whatever the filters say (a
//!   closed pull request's builds are pointless in every project).
//!
//! Gates applied after the filters accept an event: draft pull requests and pull requests from
//! forks are ignored unless allowed (a fork's buildspec would run with the project's service
//! role and its secrets).

use regex::Regex;

use crate::config::{Config, WebhookTarget};
use crate::model::{EnvironmentVariable, EnvironmentVariableType};
use crate::start::{BatchStart, StartIdentity, StarterWork, SupersedeScope};
use crate::webhook::{ChangedFiles, EventKind, SourceEvent};

/// Note on a start whose `FILE_PATH` filter passed without a complete file list.
pub const NOTE_FILE_LIST_UNAVAILABLE: &str = "file_list_unavailable";
/// No `[[repositories]]` entry matches the event's provider and repository.
pub const REASON_REPOSITORY_NOT_CONFIGURED: &str = "repository_not_configured";
/// A branch or tag deletion (or an event without a commit): nothing to build.
pub const REASON_REF_DELETED: &str = "ref_deleted";
/// A draft pull request, and the target does not build drafts.
pub const REASON_DRAFT_NOT_ALLOWED: &str = "draft_not_allowed";
/// A pull request from a fork, and the target does not build forks.
pub const REASON_FORK_NOT_ALLOWED: &str = "fork_not_allowed";
/// None of the target's filter groups accepts the event.
pub const REASON_NO_FILTER_GROUP_MATCHED: &str = "no_filter_group_matched";
/// The target's project has no `[[projects]]` entry (only possible for a [`Config`] built
/// without validation, which refuses such a target).
pub const REASON_PROJECT_NOT_CONFIGURED: &str = "project_not_configured";

/// The environment variable naming the provider (`github`).
pub const PROVIDER_ENV: &str = "AUTOPILOT_PROVIDER";
/// The environment variable naming the event kind (`push`, `pull_request_opened`, …).
pub const EVENT_ENV: &str = "AUTOPILOT_EVENT";
/// The environment variable holding the branch's short name (pushes and PR source branches).
pub const BRANCH_ENV: &str = crate::reaper::branch::BRANCH_ENV;
/// The environment variable holding the pull request number.
pub const PR_ENV: &str = crate::reaper::branch::PR_ENV;
/// The environment variable holding the provider's delivery id.
pub const DELIVERY_ENV: &str = "AUTOPILOT_DELIVERY";

/// The CodeBuild `EVENT` names the autopilot starts builds for.
pub const ROUTED_EVENTS: [&str; 4] = [
    "PUSH",
    "PULL_REQUEST_CREATED",
    "PULL_REQUEST_UPDATED",
    "PULL_REQUEST_REOPENED",
];

/// A CodeBuild webhook filter type the autopilot evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterType {
    /// `EVENT`: the event's CodeBuild name is in the list.
    Event,
    /// `HEAD_REF`: `refs/heads/<branch>` / `refs/tags/<tag>`; a pull request's source branch.
    HeadRef,
    /// `BASE_REF`: a pull request's target branch (`refs/heads/<branch>`).
    BaseRef,
    /// `FILE_PATH`: any changed file's path.
    FilePath,
    /// `COMMIT_MESSAGE`: the head commit's message.
    CommitMessage,
    /// `ACTOR_ACCOUNT_ID`: the account id of who caused the event.
    ActorAccountId,
}

impl FilterType {
    /// Every type, in CodeBuild's spelling order of the documentation.
    pub const ALL: [FilterType; 6] = [
        FilterType::Event,
        FilterType::HeadRef,
        FilterType::BaseRef,
        FilterType::FilePath,
        FilterType::CommitMessage,
        FilterType::ActorAccountId,
    ];

    /// CodeBuild's name (`HEAD_REF`).
    pub fn as_str(self) -> &'static str {
        match self {
            FilterType::Event => "EVENT",
            FilterType::HeadRef => "HEAD_REF",
            FilterType::BaseRef => "BASE_REF",
            FilterType::FilePath => "FILE_PATH",
            FilterType::CommitMessage => "COMMIT_MESSAGE",
            FilterType::ActorAccountId => "ACTOR_ACCOUNT_ID",
        }
    }

    /// The type CodeBuild calls `name`; an error explaining the types CodeBuild has that the
    /// autopilot cannot evaluate.
    pub fn parse(name: &str) -> Result<Self, FilterError> {
        if let Some(found) = Self::ALL.into_iter().find(|t| t.as_str() == name) {
            return Ok(found);
        }
        let why = match name {
            "TAG_NAME" | "RELEASE_NAME" => {
                "it applies to GitHub release events, which are not routed; filter tag pushes \
                 with HEAD_REF `^refs/tags/…`"
            }
            "REPOSITORY_NAME" | "ORGANIZATION_NAME" => {
                "it applies to GitHub global and organization webhooks; match repositories with \
                 the entry's `name` instead"
            }
            "WORKFLOW_NAME" => "it applies to WORKFLOW_JOB_QUEUED events, which are not routed",
            _ => return Err(FilterError::UnknownType(name.to_owned())),
        };
        Err(FilterError::UnsupportedType {
            name: name.to_owned(),
            why,
        })
    }
}

impl std::fmt::Display for FilterType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a filter could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not a CodeBuild filter type.
    #[error(
        "unknown filter type `{0}`; expected one of `EVENT`, `HEAD_REF`, `BASE_REF`, \
         `FILE_PATH`, `COMMIT_MESSAGE`, `ACTOR_ACCOUNT_ID`"
    )]
    UnknownType(String),
    /// A CodeBuild filter type for events the autopilot does not route.
    #[error("filter type `{name}` is not supported: {why}")]
    UnsupportedType {
        /// The type as written.
        name: String,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// An empty pattern.
    #[error("must not be empty")]
    EmptyPattern,
    /// An `EVENT` pattern naming no event (`" , "`).
    #[error("an EVENT pattern lists one or more events, comma-separated")]
    NoEvents,
    /// Not a CodeBuild event name.
    #[error(
        "unknown event `{0}`; expected `PUSH`, `PULL_REQUEST_CREATED`, `PULL_REQUEST_UPDATED` \
         or `PULL_REQUEST_REOPENED`"
    )]
    UnknownEvent(String),
    /// A CodeBuild event name the autopilot never starts a build for.
    #[error("event `{name}` is not supported: {why}")]
    UnroutedEvent {
        /// The event as written.
        name: String,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// An event listed twice.
    #[error("event `{0}` is listed twice")]
    DuplicateEvent(String),
    /// `exclude_matched_pattern = true` on an `EVENT` filter.
    #[error("an EVENT filter cannot be excluded; list the events that should build instead")]
    ExcludedEvent,
    /// The pattern is not a regular expression the `regex` crate accepts.
    #[error("`{pattern}` is not a valid regular expression: {message}")]
    InvalidRegex {
        /// The pattern as written.
        pattern: String,
        /// The parser's message (Java-only syntax such as look-around lands here).
        message: String,
    },
}

/// Why a filter group is not one CodeBuild would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterGroupError {
    /// No filter at all.
    #[error("a filter group needs at least an EVENT filter")]
    Empty,
    /// No `EVENT` filter.
    #[error("a filter group needs exactly one EVENT filter (CodeBuild requires one)")]
    NoEventFilter,
    /// More than one `EVENT` filter.
    #[error("a filter group has exactly one EVENT filter; list every event in it")]
    SeveralEventFilters,
    /// A `BASE_REF` filter in a group whose events include `PUSH`.
    #[error(
        "a BASE_REF filter applies to pull request events only; move PUSH to another filter \
         group"
    )]
    BaseRefWithPush,
}

/// What a filter compares against.
#[derive(Debug, Clone)]
enum FilterPattern {
    /// `EVENT`: CodeBuild event names.
    Events(Vec<&'static str>),
    /// Every other type: a regular expression, searched for (not anchored).
    Regex(Regex),
}

/// One CodeBuild webhook filter, compiled.
#[derive(Debug, Clone)]
pub struct WebhookFilter {
    filter_type: FilterType,
    pattern: FilterPattern,
    text: String,
    exclude_matched_pattern: bool,
}

impl WebhookFilter {
    /// A filter from CodeBuild's three fields: `EVENT` patterns are comma-separated event names
    /// (blanks around them ignored), every other pattern a regular expression.
    pub fn new(
        filter_type: FilterType,
        pattern: &str,
        exclude_matched_pattern: bool,
    ) -> Result<Self, FilterError> {
        if pattern.trim().is_empty() {
            return Err(FilterError::EmptyPattern);
        }
        let compiled = match filter_type {
            FilterType::Event => {
                if exclude_matched_pattern {
                    return Err(FilterError::ExcludedEvent);
                }
                FilterPattern::Events(parse_events(pattern)?)
            }
            _ => FilterPattern::Regex(Regex::new(pattern).map_err(|error| {
                FilterError::InvalidRegex {
                    pattern: pattern.to_owned(),
                    message: regex_message(&error),
                }
            })?),
        };
        Ok(Self {
            filter_type,
            pattern: compiled,
            text: pattern.to_owned(),
            exclude_matched_pattern,
        })
    }

    /// The type.
    pub fn filter_type(&self) -> FilterType {
        self.filter_type
    }

    /// The pattern as configured.
    pub fn pattern(&self) -> &str {
        &self.text
    }

    /// The events of an `EVENT` filter (CodeBuild names); empty for other types.
    pub fn events(&self) -> &[&'static str] {
        match &self.pattern {
            FilterPattern::Events(events) => events,
            FilterPattern::Regex(_) => &[],
        }
    }

    /// True when the filter passes on a non-match instead.
    pub fn exclude_matched_pattern(&self) -> bool {
        self.exclude_matched_pattern
    }

    /// True when this filter lets `event` through; pushes a note when it did so without the
    /// information it needed.
    fn passes(&self, event: &SourceEvent, notes: &mut Vec<&'static str>) -> bool {
        let matched = match &self.pattern {
            FilterPattern::Events(events) => events.contains(&event.kind.codebuild_event()),
            FilterPattern::Regex(regex) => {
                let value = match self.filter_type {
                    FilterType::HeadRef => event.head_ref.as_deref(),
                    FilterType::BaseRef => event.base_ref.as_deref(),
                    FilterType::CommitMessage => event.commit_message.as_deref(),
                    FilterType::ActorAccountId => event.actor_account_id.as_deref(),
                    FilterType::FilePath => {
                        return match &event.changed_files {
                            ChangedFiles::Complete(paths) => {
                                paths.iter().any(|p| regex.is_match(p))
                                    != self.exclude_matched_pattern
                            }
                            ChangedFiles::Unavailable => {
                                notes.push(NOTE_FILE_LIST_UNAVAILABLE);
                                true
                            }
                        };
                    }
                    // An EVENT filter always holds events (see `new`).
                    FilterType::Event => None,
                };
                value.is_some_and(|v| regex.is_match(v))
            }
        };
        matched != self.exclude_matched_pattern
    }
}

/// `PUSH, PULL_REQUEST_CREATED` → the names, each known, routed and listed once.
fn parse_events(pattern: &str) -> Result<Vec<&'static str>, FilterError> {
    let mut events: Vec<&'static str> = Vec::new();
    for name in pattern.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(known) = ROUTED_EVENTS.into_iter().find(|e| *e == name) else {
            let why = match name {
                "PULL_REQUEST_MERGED" | "PULL_REQUEST_CLOSED" => {
                    "a merged or closed pull request never starts a build here; it stops the \
                     pull request's batches in every target of the repository (to build a \
                     merge, filter PUSH on the base branch)"
                }
                "RELEASED" | "PRERELEASED" => {
                    "release events are not routed; filter tag pushes with HEAD_REF \
                     `^refs/tags/…`"
                }
                "WORKFLOW_JOB_QUEUED" => "GitHub Actions runner jobs are not routed",
                _ => return Err(FilterError::UnknownEvent(name.to_owned())),
            };
            return Err(FilterError::UnroutedEvent {
                name: name.to_owned(),
                why,
            });
        };
        if events.contains(&known) {
            return Err(FilterError::DuplicateEvent(name.to_owned()));
        }
        events.push(known);
    }
    if events.is_empty() {
        return Err(FilterError::NoEvents);
    }
    Ok(events)
}

/// The regex parser's message on one line (it draws a caret diagram over several).
fn regex_message(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .filter_map(|line| line.strip_prefix("error: "))
            .next()
            .unwrap_or("syntax error")
            .to_owned(),
        other => other.to_string(),
    }
}

/// Filters that must all pass: CodeBuild's filter group.
#[derive(Debug, Clone)]
pub struct FilterGroup(Vec<WebhookFilter>);

impl FilterGroup {
    /// A group from its filters, checked as CodeBuild checks them: exactly one `EVENT` filter,
    /// and no `BASE_REF` filter where `PUSH` is one of the events.
    pub fn new(filters: Vec<WebhookFilter>) -> Result<Self, FilterGroupError> {
        if filters.is_empty() {
            return Err(FilterGroupError::Empty);
        }
        let mut events = filters
            .iter()
            .filter(|f| f.filter_type == FilterType::Event);
        let Some(event) = events.next() else {
            return Err(FilterGroupError::NoEventFilter);
        };
        if events.next().is_some() {
            return Err(FilterGroupError::SeveralEventFilters);
        }
        if event.events().contains(&"PUSH")
            && filters.iter().any(|f| f.filter_type == FilterType::BaseRef)
        {
            return Err(FilterGroupError::BaseRefWithPush);
        }
        Ok(Self(filters))
    }

    /// The filters, in configuration order.
    pub fn filters(&self) -> &[WebhookFilter] {
        &self.0
    }

    /// `Some(notes)` when every filter passes.
    fn accepts(&self, event: &SourceEvent) -> Option<Vec<&'static str>> {
        let mut notes = Vec::new();
        // The EVENT filter first: it fails most often, and a group for other events should
        // not leave notes behind.
        let (events, others): (Vec<_>, Vec<_>) = self
            .0
            .iter()
            .partition(|f| f.filter_type == FilterType::Event);
        events
            .into_iter()
            .chain(others)
            .all(|f| f.passes(event, &mut notes))
            .then_some(notes)
    }
}

/// `Some(notes)` when `groups` accept `event`: any group passing. A group that passes on
/// complete information is preferred, so a note says something only when it mattered.
pub fn accepts(groups: &[FilterGroup], event: &SourceEvent) -> Option<Vec<&'static str>> {
    if groups.is_empty() {
        return Some(Vec::new());
    }
    let mut noted: Option<Vec<&'static str>> = None;
    for notes in groups.iter().filter_map(|g| g.accepts(event)) {
        if notes.is_empty() {
            return Some(notes);
        }
        noted.get_or_insert(notes);
    }
    noted
}

/// What routing decided for one project (or, for an unconfigured repository, for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Start a batch.
    Start {
        /// The CodeBuild project.
        project: String,
        /// `reportBuildBatchStatusOverride`, when the target sets it.
        report_status: Option<bool>,
        /// What the decision assumed ([`NOTE_FILE_LIST_UNAVAILABLE`]).
        notes: Vec<&'static str>,
    },
    /// The pull request was merged or closed: stop its batches in this project.
    StopPullRequest {
        /// The CodeBuild project.
        project: String,
    },
    /// Nothing to do.
    Ignored {
        /// The project, when the event reached a target.
        project: Option<String>,
        /// Why (one of the `REASON_…` constants).
        reason: &'static str,
    },
}

impl RouteOutcome {
    /// The project the outcome is about.
    pub fn project(&self) -> Option<&str> {
        match self {
            RouteOutcome::Start { project, .. } | RouteOutcome::StopPullRequest { project } => {
                Some(project)
            }
            RouteOutcome::Ignored { project, .. } => project.as_deref(),
        }
    }

    /// True for [`RouteOutcome::Start`].
    pub fn is_start(&self) -> bool {
        matches!(self, RouteOutcome::Start { .. })
    }
}

/// The outcome per project for `event`: every `[[repositories]]` entry whose provider and name
/// match contributes its targets, in file order. A project reached through several targets gets
/// one outcome: the first target that starts it (its `report_status` applies), else the first
/// target's.
pub fn route(config: &Config, event: &SourceEvent) -> Vec<RouteOutcome> {
    let targets: Vec<&WebhookTarget> = config
        .repositories_for(event.provider, &event.repository.full_name)
        .flat_map(|entry| &entry.targets)
        .collect();
    if targets.is_empty() {
        return vec![RouteOutcome::Ignored {
            project: None,
            reason: REASON_REPOSITORY_NOT_CONFIGURED,
        }];
    }
    let mut outcomes: Vec<RouteOutcome> = Vec::new();
    for target in targets {
        let outcome = route_target(config, target, event);
        match outcomes
            .iter_mut()
            .find(|o| o.project() == Some(target.project.as_str()))
        {
            None => outcomes.push(outcome),
            Some(earlier) if !earlier.is_start() && outcome.is_start() => *earlier = outcome,
            Some(_) => {}
        }
    }
    outcomes
}

fn route_target(config: &Config, target: &WebhookTarget, event: &SourceEvent) -> RouteOutcome {
    let project = target.project.clone();
    let ignored = |reason| RouteOutcome::Ignored {
        project: Some(target.project.clone()),
        reason,
    };
    if config.entry_for(&project).is_none() {
        return ignored(REASON_PROJECT_NOT_CONFIGURED);
    }
    if event.kind.ends_pull_request() {
        return RouteOutcome::StopPullRequest { project };
    }
    if event.kind == EventKind::RefDeleted || event.commit.is_none() {
        return ignored(REASON_REF_DELETED);
    }
    let Some(notes) = accepts(&target.filter_groups, event) else {
        return ignored(REASON_NO_FILTER_GROUP_MATCHED);
    };
    if let Some(pr) = &event.pull_request {
        if pr.draft && !target.allow_draft_pull_requests {
            return ignored(REASON_DRAFT_NOT_ALLOWED);
        }
        if pr.from_fork && !target.allow_fork_pull_requests {
            return ignored(REASON_FORK_NOT_ALLOWED);
        }
    }
    RouteOutcome::Start {
        project,
        report_status: target.report_status,
        notes,
    }
}

/// The work the batch starter does for `outcome`: a [`BatchStart`] of the event's commit with
/// the `AUTOPILOT_*` variables, or a pull request stop; `None` for an ignored outcome (and for
/// a start without a commit, or a stop without a pull request, which `route` never gives).
pub fn work_for(event: &SourceEvent, outcome: &RouteOutcome) -> Option<StarterWork> {
    let identity = StartIdentity::Webhook {
        provider: event.provider,
        delivery_id: event.delivery_id.clone(),
        change_index: event.change_index,
    };
    match outcome {
        RouteOutcome::Ignored { .. } => None,
        RouteOutcome::StopPullRequest { project } => Some(StarterWork::StopPullRequest {
            project: project.clone(),
            pull_request: event.pull_request.as_ref()?.number.to_string(),
            identity,
        }),
        RouteOutcome::Start {
            project,
            report_status,
            ..
        } => {
            let commit = event.commit.clone()?;
            Some(StarterWork::Start(BatchStart {
                project: project.clone(),
                source_version: Some(commit),
                environment: environment(event),
                report_status: *report_status,
                buildspec_override: None,
                timeout_minutes: None,
                reason: Some(reason(event)),
                identity,
                supersede: supersede_scope(event),
            }))
        }
    }
}

/// The `AUTOPILOT_*` variables that have a value, all plain text.
fn environment(event: &SourceEvent) -> Vec<EnvironmentVariable> {
    let pr = event.pull_request.as_ref().map(|pr| pr.number.to_string());
    [
        (PROVIDER_ENV, Some(event.provider.as_str().to_owned())),
        (EVENT_ENV, Some(event.kind.as_str().to_owned())),
        (BRANCH_ENV, event.branch().map(str::to_owned)),
        (PR_ENV, pr),
        (
            DELIVERY_ENV,
            Some(event.delivery_id.clone()).filter(|d| !d.is_empty()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        Some(EnvironmentVariable {
            name: name.to_owned(),
            value: value.filter(|v| !v.is_empty())?,
            variable_type: EnvironmentVariableType::Plaintext,
        })
    })
    .collect()
}

/// A pull request supersedes by its number, a branch push by its branch; a tag never does.
fn supersede_scope(event: &SourceEvent) -> Option<SupersedeScope> {
    if let Some(pr) = &event.pull_request {
        return Some(SupersedeScope::PullRequest(pr.number.to_string()));
    }
    match event.kind {
        EventKind::Push => event
            .branch()
            .map(|branch| SupersedeScope::Branch(branch.to_owned())),
        _ => None,
    }
}

/// `push to feature/x`, `tag v1.0`, `pull request #42 opened (feature/x → main)`.
fn reason(event: &SourceEvent) -> String {
    let head = event.branch().or(event.head_ref.as_deref()).unwrap_or("?");
    match (&event.pull_request, event.kind) {
        (Some(pr), kind) => {
            let action = match kind {
                EventKind::PullRequestOpened => "opened",
                EventKind::PullRequestReopened => "reopened",
                _ => "updated",
            };
            let base = event
                .base_ref
                .as_deref()
                .map(|b| b.strip_prefix("refs/heads/").unwrap_or(b));
            match base {
                Some(base) => format!("pull request #{} {action} ({head} → {base})", pr.number),
                None => format!("pull request #{} {action} ({head})", pr.number),
            }
        }
        (None, EventKind::TagPush) => format!("tag {}", event.tag().unwrap_or(head)),
        (None, _) => format!("push to {head}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::AllowedProjects;
    use crate::webhook::{Provider, PullRequest, Repository};

    // ---- events, built directly (the provider parsers are tested on their own) ----

    fn push(branch: &str, files: &[&str]) -> SourceEvent {
        SourceEvent {
            provider: Provider::GitHub,
            delivery_id: "d-1".into(),
            change_index: None,
            kind: EventKind::Push,
            repository: Repository {
                full_name: "octo-org/web".into(),
                clone_url: None,
            },
            head_ref: Some(format!("refs/heads/{branch}")),
            base_ref: None,
            commit: Some("a".repeat(40)),
            commit_message: Some("fix the build".into()),
            actor_account_id: Some("12345".into()),
            pull_request: None,
            changed_files: ChangedFiles::Complete(files.iter().map(|f| (*f).to_owned()).collect()),
        }
    }

    fn tag(name: &str) -> SourceEvent {
        SourceEvent {
            kind: EventKind::TagPush,
            head_ref: Some(format!("refs/tags/{name}")),
            ..push("x", &[])
        }
    }

    fn pull_request(kind: EventKind, head: &str, base: &str) -> SourceEvent {
        SourceEvent {
            kind,
            head_ref: Some(format!("refs/heads/{head}")),
            base_ref: Some(format!("refs/heads/{base}")),
            commit: Some("b".repeat(40)),
            // A pull request payload has no head commit message.
            commit_message: None,
            pull_request: Some(PullRequest {
                number: 7,
                draft: false,
                from_fork: false,
            }),
            changed_files: ChangedFiles::Unavailable,
            ..push(head, &[])
        }
    }

    fn opened(head: &str, base: &str) -> SourceEvent {
        pull_request(EventKind::PullRequestOpened, head, base)
    }

    fn with_message(message: Option<&str>, event: SourceEvent) -> SourceEvent {
        SourceEvent {
            commit_message: message.map(str::to_owned),
            ..event
        }
    }

    fn with_actor(actor: &str, event: SourceEvent) -> SourceEvent {
        SourceEvent {
            actor_account_id: Some(actor.into()),
            ..event
        }
    }

    // ---- filters ----

    /// `(type, pattern, exclude)` per filter.
    type Spec<'a> = &'a [(&'a str, &'a str, bool)];
    /// `(what it shows, groups, event, accepted with these notes)`.
    type Case<'a> = (
        &'a str,
        &'a [Spec<'a>],
        SourceEvent,
        Option<Vec<&'static str>>,
    );

    fn group(filters: Spec<'_>) -> FilterGroup {
        FilterGroup::new(
            filters
                .iter()
                .map(|(t, p, x)| WebhookFilter::new(FilterType::parse(t).unwrap(), p, *x).unwrap())
                .collect(),
        )
        .unwrap()
    }

    /// The filter-group table, written from CodeBuild's documentation:
    /// <https://docs.aws.amazon.com/codebuild/latest/userguide/github-webhook.html> (filter
    /// types, the SDK examples, "every filter in the group must pass, any group triggers")
    /// and <https://docs.aws.amazon.com/codebuild/latest/APIReference/API_WebhookFilter.html>
    /// (`excludeMatchedPattern`: "an event that does not match the pattern triggers a build").
    #[test]
    fn filter_groups_mean_what_codebuild_documents() {
        const E: &str = "EVENT";
        let none: Option<Vec<&str>> = None;
        let yes = Some(Vec::<&str>::new());
        let noted = Some(vec![NOTE_FILE_LIST_UNAVAILABLE]);
        let main_or_pr: &[Spec<'_>] = &[
            &[(E, "PUSH", false), ("HEAD_REF", "^refs/heads/main$", false)],
            &[
                (E, "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED", false),
                ("BASE_REF", "^refs/heads/main$", false),
            ],
        ];
        let cases: Vec<Case<'_>> = vec![
            (
                "EVENT PUSH: a push",
                &[&[(E, "PUSH", false)]],
                push("x", &[]),
                yes.clone(),
            ),
            (
                "EVENT PUSH: not a PR",
                &[&[(E, "PUSH", false)]],
                opened("x", "main"),
                none.clone(),
            ),
            (
                "EVENT list: PR updated is in it",
                &[&[(E, "PULL_REQUEST_CREATED,PULL_REQUEST_UPDATED", false)]],
                pull_request(EventKind::PullRequestUpdated, "x", "main"),
                yes.clone(),
            ),
            (
                "EVENT list: reopened is not created",
                &[&[(E, "PULL_REQUEST_CREATED", false)]],
                pull_request(EventKind::PullRequestReopened, "x", "main"),
                none.clone(),
            ),
            (
                "EVENT PUSH: a tag push is a PUSH",
                &[&[(E, "PUSH", false)]],
                tag("v1.0"),
                yes.clone(),
            ),
            (
                "HEAD_REF ^refs/heads/main$: push to main",
                &[&[(E, "PUSH", false), ("HEAD_REF", "^refs/heads/main$", false)]],
                push("main", &[]),
                yes.clone(),
            ),
            (
                "HEAD_REF ^refs/heads/main$: push to main-old",
                &[&[(E, "PUSH", false), ("HEAD_REF", "^refs/heads/main$", false)]],
                push("main-old", &[]),
                none.clone(),
            ),
            (
                "HEAD_REF ^refs/heads/ is searched, not anchored at the end: every branch",
                &[&[(E, "PUSH", false), ("HEAD_REF", "^refs/heads/", false)]],
                push("feature/x", &[]),
                yes.clone(),
            ),
            (
                "HEAD_REF ^refs/heads/: not a tag",
                &[&[(E, "PUSH", false), ("HEAD_REF", "^refs/heads/", false)]],
                tag("v1.0"),
                none.clone(),
            ),
            (
                "HEAD_REF of a PR is its source branch",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("HEAD_REF", "^refs/heads/feature/", false),
                ]],
                opened("feature/x", "main"),
                yes.clone(),
            ),
            (
                "HEAD_REF of a PR is not its base branch",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("HEAD_REF", "^refs/heads/main$", false),
                ]],
                opened("feature/x", "main"),
                none.clone(),
            ),
            (
                "exclude HEAD_REF ^refs/tags/.*: every request except tags (doc example), a branch",
                &[&[(E, "PUSH", false), ("HEAD_REF", "^refs/tags/.*", true)]],
                push("main", &[]),
                yes.clone(),
            ),
            (
                "exclude HEAD_REF ^refs/tags/.*: a tag",
                &[&[(E, "PUSH", false), ("HEAD_REF", "^refs/tags/.*", true)]],
                tag("v1.0"),
                none.clone(),
            ),
            (
                "BASE_REF ^refs/heads/main$: PR into main",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("BASE_REF", "^refs/heads/main$", false),
                ]],
                opened("x", "main"),
                yes.clone(),
            ),
            (
                "BASE_REF ^refs/heads/main$: PR into develop",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("BASE_REF", "^refs/heads/main$", false),
                ]],
                opened("x", "develop"),
                none.clone(),
            ),
            (
                "BASE_REF on an event without a base: an including filter fails",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("BASE_REF", "main", false),
                ]],
                SourceEvent {
                    base_ref: None,
                    ..opened("x", "main")
                },
                none.clone(),
            ),
            (
                "BASE_REF on an event without a base: an excluding filter passes",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("BASE_REF", "main", true),
                ]],
                SourceEvent {
                    base_ref: None,
                    ..opened("x", "main")
                },
                yes.clone(),
            ),
            (
                "FILE_PATH ^buildspec.*: buildspec changed (doc example)",
                &[&[(E, "PUSH", false), ("FILE_PATH", "^buildspec.*", false)]],
                push("main", &["src/a.rs", "buildspec.yml"]),
                yes.clone(),
            ),
            (
                "FILE_PATH ^buildspec.*: only sources changed",
                &[&[(E, "PUSH", false), ("FILE_PATH", "^buildspec.*", false)]],
                push("main", &["src/a.rs"]),
                none.clone(),
            ),
            (
                "FILE_PATH with an empty complete list: nothing matches",
                &[&[(E, "PUSH", false), ("FILE_PATH", ".*", false)]],
                push("main", &[]),
                none.clone(),
            ),
            (
                "FILE_PATH without a file list: passes, with a note",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("FILE_PATH", "^api/", false),
                ]],
                opened("x", "main"),
                noted.clone(),
            ),
            (
                "exclude FILE_PATH READ_ME (doc example): READ_ME changed",
                &[&[(E, "PUSH", false), ("FILE_PATH", "READ_ME", true)]],
                push("main", &["docs/READ_ME"]),
                none.clone(),
            ),
            (
                "exclude FILE_PATH READ_ME: other files",
                &[&[(E, "PUSH", false), ("FILE_PATH", "READ_ME", true)]],
                push("main", &["src/a.rs"]),
                yes.clone(),
            ),
            (
                "exclude FILE_PATH without a file list: passes too, with a note",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("FILE_PATH", "READ_ME", true),
                ]],
                opened("x", "main"),
                noted.clone(),
            ),
            (
                "COMMIT_MESSAGE \\[CodeBuild\\] (doc example): tagged message",
                &[&[
                    (E, "PUSH", false),
                    ("COMMIT_MESSAGE", "\\[CodeBuild\\]", false),
                ]],
                with_message(Some("fix [CodeBuild]"), push("main", &[])),
                yes.clone(),
            ),
            (
                "COMMIT_MESSAGE \\[CodeBuild\\]: other message",
                &[&[
                    (E, "PUSH", false),
                    ("COMMIT_MESSAGE", "\\[CodeBuild\\]", false),
                ]],
                push("main", &[]),
                none.clone(),
            ),
            (
                "exclude COMMIT_MESSAGE \\[skip ci\\]: skipped",
                &[&[
                    (E, "PUSH", false),
                    ("COMMIT_MESSAGE", "\\[skip ci\\]", true),
                ]],
                with_message(Some("[skip ci] docs"), push("main", &[])),
                none.clone(),
            ),
            (
                "exclude COMMIT_MESSAGE on a PR without a message: passes",
                &[&[
                    (E, "PULL_REQUEST_CREATED", false),
                    ("COMMIT_MESSAGE", "\\[skip ci\\]", true),
                ]],
                opened("x", "main"),
                yes.clone(),
            ),
            (
                "ACTOR_ACCOUNT_ID: the allowed user",
                &[&[(E, "PUSH", false), ("ACTOR_ACCOUNT_ID", "^12345$", false)]],
                push("main", &[]),
                yes.clone(),
            ),
            (
                "ACTOR_ACCOUNT_ID: another user",
                &[&[(E, "PUSH", false), ("ACTOR_ACCOUNT_ID", "^12345$", false)]],
                with_actor("99", push("main", &[])),
                none.clone(),
            ),
            (
                "exclude ACTOR_ACCOUNT_ID 12345 (CloudFormation example): that user",
                &[&[(E, "PUSH", false), ("ACTOR_ACCOUNT_ID", "12345", true)]],
                push("main", &[]),
                none.clone(),
            ),
            (
                "ACTOR_ACCOUNT_ID on an event without an actor: an including filter fails",
                &[&[(E, "PUSH", false), ("ACTOR_ACCOUNT_ID", ".*", false)]],
                SourceEvent {
                    actor_account_id: None,
                    ..push("main", &[])
                },
                none.clone(),
            ),
            (
                "groups OR: the push group",
                main_or_pr,
                push("main", &[]),
                yes.clone(),
            ),
            (
                "groups OR: the PR group",
                main_or_pr,
                opened("x", "main"),
                yes.clone(),
            ),
            (
                "groups OR: neither",
                main_or_pr,
                push("feature/x", &[]),
                none.clone(),
            ),
            (
                "groups OR: a PR into develop",
                main_or_pr,
                opened("x", "develop"),
                none.clone(),
            ),
            (
                "filters AND: branch matches, files do not",
                &[&[
                    (E, "PUSH", false),
                    ("HEAD_REF", "^refs/heads/main$", false),
                    ("FILE_PATH", "^src/", false),
                ]],
                push("main", &["docs/a.md"]),
                none.clone(),
            ),
            (
                "filters AND: all match",
                &[&[
                    (E, "PUSH", false),
                    ("HEAD_REF", "^refs/heads/main$", false),
                    ("FILE_PATH", "^src/", false),
                ]],
                push("main", &["docs/a.md", "src/lib.rs"]),
                yes.clone(),
            ),
            ("no groups: every event", &[], tag("v1"), yes.clone()),
            (
                "a group passing on complete information wins over a noted one",
                &[
                    &[
                        (E, "PULL_REQUEST_CREATED", false),
                        ("FILE_PATH", "^api/", false),
                    ],
                    &[
                        (E, "PULL_REQUEST_CREATED", false),
                        ("BASE_REF", "main", false),
                    ],
                ],
                opened("x", "main"),
                yes.clone(),
            ),
            (
                "a failing group leaves no note",
                &[
                    &[
                        (E, "PULL_REQUEST_CREATED", false),
                        ("FILE_PATH", "^api/", false),
                        ("BASE_REF", "^x$", false),
                    ],
                    &[(E, "PULL_REQUEST_CREATED", false)],
                ],
                opened("x", "main"),
                yes.clone(),
            ),
        ];
        assert!(cases.len() >= 20);
        for (name, specs, event, expected) in cases {
            let groups: Vec<FilterGroup> = specs.iter().map(|s| group(s)).collect();
            assert_eq!(accepts(&groups, &event), expected, "{name}");
        }
    }

    #[test]
    fn filters_refuse_what_codebuild_or_the_autopilot_cannot_mean() {
        let err = |t: FilterType, p: &str, x: bool| WebhookFilter::new(t, p, x).unwrap_err();
        assert_eq!(err(FilterType::Event, " , ", false), FilterError::NoEvents);
        assert_eq!(
            err(FilterType::HeadRef, "  ", false),
            FilterError::EmptyPattern
        );
        assert_eq!(
            err(FilterType::Event, "PUSH, PUSHED", false),
            FilterError::UnknownEvent("PUSHED".into())
        );
        assert!(matches!(
            err(FilterType::Event, "PUSH,PUSH", false),
            FilterError::DuplicateEvent(_)
        ));
        assert!(matches!(
            err(FilterType::Event, "PULL_REQUEST_MERGED", false),
            FilterError::UnroutedEvent { .. }
        ));
        assert!(matches!(
            err(FilterType::Event, "RELEASED", false),
            FilterError::UnroutedEvent { .. }
        ));
        assert_eq!(
            err(FilterType::Event, "PUSH", true),
            FilterError::ExcludedEvent
        );
        // Java's look-ahead: the regex crate refuses it, so the configuration is refused.
        let FilterError::InvalidRegex { message, .. } =
            err(FilterType::FilePath, "^(?!docs/)", false)
        else {
            panic!("expected an invalid regex");
        };
        assert!(message.contains("look-around"), "{message}");
        assert!(matches!(
            FilterType::parse("TAG_NAME"),
            Err(FilterError::UnsupportedType { .. })
        ));
        assert!(matches!(
            FilterType::parse("HEAD"),
            Err(FilterError::UnknownType(_))
        ));

        let filter = |t, p| WebhookFilter::new(t, p, false).unwrap();
        assert_eq!(
            FilterGroup::new(vec![]).unwrap_err(),
            FilterGroupError::Empty
        );
        assert_eq!(
            FilterGroup::new(vec![filter(FilterType::HeadRef, "main")]).unwrap_err(),
            FilterGroupError::NoEventFilter
        );
        assert_eq!(
            FilterGroup::new(vec![
                filter(FilterType::Event, "PUSH"),
                filter(FilterType::Event, "PUSH")
            ])
            .unwrap_err(),
            FilterGroupError::SeveralEventFilters
        );
        assert_eq!(
            FilterGroup::new(vec![
                filter(FilterType::Event, "PUSH, PULL_REQUEST_CREATED"),
                filter(FilterType::BaseRef, "main"),
            ])
            .unwrap_err(),
            FilterGroupError::BaseRefWithPush
        );
    }

    // ---- routing ----

    const CONFIG: &str = r#"
[webhooks.secrets]
github = ["autopilot/webhooks/github"]
gitlab = ["autopilot/webhooks/gitlab"]

[[projects]]
name = "web-*"
[[projects]]
name = "api-ci"

[[repositories]]
provider = "github"
name = "octo-org/web"
[[repositories.targets]]
project = "web-ci"
report_status = true
filter_groups = [
  [ { type = "EVENT", pattern = "PUSH" }, { type = "HEAD_REF", pattern = "^refs/heads/main$" } ],
  [ { type = "EVENT", pattern = "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED" } ],
]
[[repositories.targets]]
project = "web-lint"
allow_draft_pull_requests = true
filter_groups = [[ { type = "EVENT", pattern = "PULL_REQUEST_CREATED" } ]]

[[repositories]]
provider = "github"
name = "octo-org/*"
[[repositories.targets]]
project = "web-lint"
report_status = false
[[repositories.targets]]
project = "api-ci"
allow_fork_pull_requests = true
filter_groups = [[ { type = "EVENT", pattern = "PULL_REQUEST_CREATED" }, { type = "FILE_PATH", pattern = "^api/" } ]]
"#;

    fn config(text: &str) -> Config {
        match Config::from_toml(text, &AllowedProjects::all()) {
            Ok(config) => config,
            Err(errors) => panic!("{errors}"),
        }
    }

    fn start(project: &str, report_status: Option<bool>, notes: &[&'static str]) -> RouteOutcome {
        RouteOutcome::Start {
            project: project.into(),
            report_status,
            notes: notes.to_vec(),
        }
    }

    fn ignored(project: &str, reason: &'static str) -> RouteOutcome {
        RouteOutcome::Ignored {
            project: Some(project.into()),
            reason,
        }
    }

    fn stop(project: &str) -> RouteOutcome {
        RouteOutcome::StopPullRequest {
            project: project.into(),
        }
    }

    fn in_repository(provider: Provider, full_name: &str, event: SourceEvent) -> SourceEvent {
        SourceEvent {
            provider,
            repository: Repository {
                full_name: full_name.into(),
                clone_url: None,
            },
            ..event
        }
    }

    #[test]
    fn an_unconfigured_repository_or_provider_reaches_nothing() {
        let config = config(CONFIG);
        let not_configured = vec![RouteOutcome::Ignored {
            project: None,
            reason: REASON_REPOSITORY_NOT_CONFIGURED,
        }];
        let other_org = in_repository(Provider::GitHub, "other-org/web", push("main", &[]));
        assert_eq!(route(&config, &other_org), not_configured);
        // The same name at another provider is another repository.
        let gitlab = in_repository(Provider::GitLab, "octo-org/web", push("main", &[]));
        assert_eq!(route(&config, &gitlab), not_configured);
        assert_eq!(
            route(&Config::default(), &push("main", &[])),
            not_configured
        );
    }

    #[test]
    fn every_matching_entry_fans_out_and_a_project_is_started_once() {
        let config = config(CONFIG);
        // web-lint: its first target wants pull requests only, the glob entry's takes
        // everything, so the push starts it once, with the glob target's report_status.
        assert_eq!(
            route(&config, &push("main", &["src/a.rs"])),
            [
                start("web-ci", Some(true), &[]),
                start("web-lint", Some(false), &[]),
                ignored("api-ci", REASON_NO_FILTER_GROUP_MATCHED),
            ]
        );
        assert_eq!(
            route(&config, &push("feature/x", &[])),
            [
                ignored("web-ci", REASON_NO_FILTER_GROUP_MATCHED),
                start("web-lint", Some(false), &[]),
                ignored("api-ci", REASON_NO_FILTER_GROUP_MATCHED),
            ]
        );
        // A pull request: the first target that starts web-lint decides (report_status unset).
        assert_eq!(
            route(&config, &opened("x", "main")),
            [
                start("web-ci", Some(true), &[]),
                start("web-lint", None, &[]),
                start("api-ci", None, &[NOTE_FILE_LIST_UNAVAILABLE]),
            ]
        );
    }

    #[test]
    fn a_glob_entry_matches_other_repositories_ignoring_case() {
        let config = config(CONFIG);
        let api = in_repository(Provider::GitHub, "octo-org/api", opened("x", "main"));
        assert_eq!(
            route(&config, &api),
            [
                start("web-lint", Some(false), &[]),
                start("api-ci", None, &[NOTE_FILE_LIST_UNAVAILABLE])
            ]
        );
        let shouted = in_repository(Provider::GitHub, "Octo-Org/Web", push("main", &[]));
        assert_eq!(route(&config, &shouted).len(), 3);
    }

    #[test]
    fn drafts_and_forks_are_ignored_unless_allowed() {
        let config = config(CONFIG);
        let mut draft = opened("x", "main");
        draft.pull_request = Some(PullRequest {
            number: 7,
            draft: true,
            from_fork: false,
        });
        assert_eq!(
            route(&config, &draft),
            [
                ignored("web-ci", REASON_DRAFT_NOT_ALLOWED),
                // Its first target allows drafts.
                start("web-lint", None, &[]),
                ignored("api-ci", REASON_DRAFT_NOT_ALLOWED),
            ]
        );
        let mut fork = opened("x", "main");
        fork.pull_request = Some(PullRequest {
            number: 7,
            draft: false,
            from_fork: true,
        });
        assert_eq!(
            route(&config, &fork),
            [
                ignored("web-ci", REASON_FORK_NOT_ALLOWED),
                ignored("web-lint", REASON_FORK_NOT_ALLOWED),
                start("api-ci", None, &[NOTE_FILE_LIST_UNAVAILABLE]),
            ]
        );

        // The [webhooks] defaults apply where a target says nothing, and a target overrides.
        let permissive = config_with_defaults(true, "");
        assert_eq!(route(&permissive, &draft), [start("web-ci", None, &[])]);
        assert_eq!(route(&permissive, &fork), [start("web-ci", None, &[])]);
        let overridden = config_with_defaults(
            true,
            "allow_draft_pull_requests = false\nallow_fork_pull_requests = false\n",
        );
        assert_eq!(
            route(&overridden, &draft),
            [ignored("web-ci", REASON_DRAFT_NOT_ALLOWED)]
        );
        assert_eq!(
            route(&overridden, &fork),
            [ignored("web-ci", REASON_FORK_NOT_ALLOWED)]
        );
    }

    fn config_with_defaults(allow: bool, target_keys: &str) -> Config {
        config(&format!(
            "[webhooks]\nallow_draft_pull_requests = {allow}\nallow_fork_pull_requests = {allow}\n\
             [webhooks.secrets]\ngithub = [\"s\"]\n[[projects]]\nname = \"web-ci\"\n\
             [[repositories]]\nprovider = \"github\"\nname = \"octo-org/web\"\n\
             [[repositories.targets]]\nproject = \"web-ci\"\n{target_keys}"
        ))
    }

    #[test]
    fn a_deleted_ref_builds_nothing() {
        let config = config(CONFIG);
        let deleted = SourceEvent {
            kind: EventKind::RefDeleted,
            commit: None,
            ..push("main", &[])
        };
        assert_eq!(
            route(&config, &deleted),
            [
                ignored("web-ci", REASON_REF_DELETED),
                ignored("web-lint", REASON_REF_DELETED),
                ignored("api-ci", REASON_REF_DELETED),
            ]
        );
        let mut no_commit = push("main", &[]);
        no_commit.commit = None;
        assert!(route(&config, &no_commit).iter().all(|o| !o.is_start()));
    }

    #[test]
    fn a_merged_or_closed_pull_request_stops_in_every_target_whatever_the_filters() {
        let config = config(CONFIG);
        for kind in [EventKind::PullRequestMerged, EventKind::PullRequestClosed] {
            // Into develop: no target's filters would start it, yet its batches are stopped.
            let closed = pull_request(kind, "x", "develop");
            assert_eq!(
                route(&config, &closed),
                [stop("web-ci"), stop("web-lint"), stop("api-ci")],
                "{kind:?}"
            );
        }
    }

    // ---- work ----

    fn env(work: &StarterWork) -> Vec<(String, String)> {
        let StarterWork::Start(start) = work else {
            panic!("expected a start")
        };
        assert!(
            start
                .environment
                .iter()
                .all(|v| v.variable_type == EnvironmentVariableType::Plaintext)
        );
        start
            .environment
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_branch_push_starts_its_commit_and_supersedes_the_branch() {
        let event = SourceEvent {
            change_index: Some(2),
            ..push("feature/x", &[])
        };
        let work = work_for(&event, &start("web-ci", Some(true), &[])).unwrap();
        assert_eq!(
            env(&work),
            pairs(&[
                ("AUTOPILOT_PROVIDER", "github"),
                ("AUTOPILOT_EVENT", "push"),
                ("AUTOPILOT_BRANCH", "feature/x"),
                ("AUTOPILOT_DELIVERY", "d-1"),
            ])
        );
        let StarterWork::Start(start) = work else {
            unreachable!()
        };
        assert_eq!(start.project, "web-ci");
        assert_eq!(
            start.source_version.as_deref(),
            Some("a".repeat(40).as_str())
        );
        assert_eq!(start.report_status, Some(true));
        assert_eq!(
            start.supersede,
            Some(SupersedeScope::Branch("feature/x".into()))
        );
        assert_eq!(start.reason.as_deref(), Some("push to feature/x"));
        assert_eq!(
            start.identity,
            StartIdentity::Webhook {
                provider: Provider::GitHub,
                delivery_id: "d-1".into(),
                change_index: Some(2),
            }
        );
    }

    #[test]
    fn a_pull_request_starts_its_head_and_supersedes_by_number() {
        let event = pull_request(EventKind::PullRequestUpdated, "feature/x", "main");
        let work = work_for(&event, &start("web-ci", None, &[])).unwrap();
        assert_eq!(
            env(&work),
            pairs(&[
                ("AUTOPILOT_PROVIDER", "github"),
                ("AUTOPILOT_EVENT", "pull_request_updated"),
                ("AUTOPILOT_BRANCH", "feature/x"),
                ("AUTOPILOT_PR", "7"),
                ("AUTOPILOT_DELIVERY", "d-1"),
            ])
        );
        let StarterWork::Start(start) = work else {
            unreachable!()
        };
        assert_eq!(
            start.source_version.as_deref(),
            Some("b".repeat(40).as_str())
        );
        assert_eq!(start.report_status, None);
        assert_eq!(
            start.supersede,
            Some(SupersedeScope::PullRequest("7".into()))
        );
        assert_eq!(
            start.reason.as_deref(),
            Some("pull request #7 updated (feature/x → main)")
        );
    }

    #[test]
    fn a_tag_push_has_no_branch_and_supersedes_nothing() {
        let work = work_for(&tag("v1.0"), &start("web-ci", None, &[])).unwrap();
        assert_eq!(
            env(&work),
            pairs(&[
                ("AUTOPILOT_PROVIDER", "github"),
                ("AUTOPILOT_EVENT", "tag_push"),
                ("AUTOPILOT_DELIVERY", "d-1"),
            ])
        );
        let StarterWork::Start(start) = work else {
            unreachable!()
        };
        assert_eq!(start.supersede, None);
        assert_eq!(start.reason.as_deref(), Some("tag v1.0"));
    }

    #[test]
    fn stops_and_ignores_become_a_stop_or_nothing() {
        let closed = pull_request(EventKind::PullRequestClosed, "x", "main");
        assert_eq!(
            work_for(&closed, &stop("web-ci")),
            Some(StarterWork::StopPullRequest {
                project: "web-ci".into(),
                pull_request: "7".into(),
                identity: StartIdentity::Webhook {
                    provider: Provider::GitHub,
                    delivery_id: "d-1".into(),
                    change_index: None,
                },
            })
        );
        assert_eq!(work_for(&push("main", &[]), &stop("web-ci")), None);
        assert_eq!(
            work_for(
                &push("main", &[]),
                &ignored("web-ci", REASON_NO_FILTER_GROUP_MATCHED)
            ),
            None
        );
        let mut no_commit = push("main", &[]);
        no_commit.commit = None;
        assert_eq!(work_for(&no_commit, &start("web-ci", None, &[])), None);
    }

    /// What the reaper reads back from a batch we started (`AUTOPILOT_PR` before
    /// `AUTOPILOT_BRANCH`), so that superseding keys it as routing meant.
    fn reaper_key(event: &SourceEvent) -> Option<crate::reaper::BranchKey> {
        let Some(StarterWork::Start(start)) = work_for(event, &start("web-ci", None, &[])) else {
            panic!("expected a start");
        };
        let batch = crate::model::BuildBatch {
            id: crate::model::BatchId::new("web-ci", "0b6f4d1e-0000-4000-8000-000000000001")
                .unwrap(),
            arn: None,
            status: crate::model::BuildStatus::InProgress,
            complete: false,
            source_version: start.source_version,
            resolved_source_version: None,
            initiator: None,
            start_time: None,
            end_time: None,
            environment_variables: start.environment,
            build_ids: Vec::new(),
            batch_number: Some(1),
            current_phase: None,
            groups: Vec::new(),
        };
        crate::reaper::branch_of(&batch)
    }

    #[test]
    fn the_reaper_keys_our_batches_as_routing_superseded_them() {
        use crate::reaper::BranchKey;
        assert_eq!(
            reaper_key(&opened("feature/x", "main")),
            Some(BranchKey::PullRequest("7".into()))
        );
        assert_eq!(
            reaper_key(&push("feature/x", &[])),
            Some(BranchKey::Branch("feature/x".into()))
        );
        // A tag start carries no key; its commit id names no branch either.
        assert_eq!(reaper_key(&tag("v1.0")), None);
    }

    #[test]
    fn the_example_configuration_routes_a_push() {
        let example = include_str!("../../../infra/autopilot.example.toml");
        let allowed = AllowedProjects::parse("web-*,api-*,nightly-e2e").unwrap();
        let config = Config::from_toml(example, &allowed).unwrap();
        let outcomes = route(&config, &push("main", &["src/a.rs"]));
        assert!(outcomes.iter().any(RouteOutcome::is_start), "{outcomes:?}");
    }
}
