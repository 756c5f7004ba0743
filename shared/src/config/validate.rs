//! From the text as written to a [`Config`]: ranges, classes, globs, duplicates and the IAM bound
//! checked, and the defaults merged (built-in < `[defaults]` < the project entry).

use std::time::Duration;

use toml::Spanned;

use super::allowed::covers;
use super::raw::{
    RawAccount, RawDocument, RawFilter, RawFilterGroup, RawProject, RawReaper, RawRepository,
    RawRetry, RawSecrets, RawStart, RawTarget, RawWebhooks, line_of, read_document,
};
use super::{
    AccountSettings, AllowedProjects, CODEBUILD_MAX_TIMEOUT_MINUTES, CODEBUILD_MIN_TIMEOUT_MINUTES,
    Config, ConfigErrors, ConfigProblem, MAX_BACKOFF, OverrideKind, ProjectEntry, ProjectPattern,
    ReaperPolicy, RepositoryEntry, RepositoryPattern, RetryClass, RetryPolicy, StartPolicy,
    WEBHOOK_MAX_BODY_BYTES_LIMIT, WebhookSettings, WebhookTarget,
};
use crate::webhook::Provider;
use crate::webhook::route::{FilterError, FilterGroup, FilterType, WebhookFilter};

/// Most retries per chain a project may configure.
pub const MAX_RETRIES_LIMIT: u32 = 10;
/// Most log lines a project may read from a build's tail.
pub const MAX_LOG_TAIL_LINES: u32 = 1000;
/// Longest `max_age_minutes` a project may configure (one week: CodeBuild's longest build
/// timeout is 36 hours, so anything longer would never fire anyway, and a larger number is
/// more likely a unit mistake).
pub const MAX_AGE_MINUTES_LIMIT: u32 = 10_080;
/// Smallest `webhooks.max_body_bytes` (a GitHub `ping` alone is several kilobytes, so less would
/// refuse every delivery).
pub const MIN_WEBHOOK_BODY_BYTES: usize = 1024;
/// Longest Secrets Manager secret name.
const MAX_SECRET_NAME_LEN: usize = 512;
/// Longest Secrets Manager secret ARN (the API's `SecretId` limit).
const MAX_SECRET_ID_LEN: usize = 2048;

impl Config {
    /// Parses and validates `text`, checking every project against `allowed`. Every problem is
    /// reported, not only the first, each with its key path and line.
    pub fn from_toml(text: &str, allowed: &AllowedProjects) -> Result<Config, ConfigErrors> {
        let (document, mut problems) = read_document(text);
        let config = document.map(|document| {
            Checker {
                text,
                problems: &mut problems,
            }
            .config(document, allowed)
        });
        if let Some(errors) = ConfigErrors::from_problems(problems) {
            return Err(errors);
        }
        // No document without a recorded problem cannot happen; still an error, not a panic.
        config.ok_or_else(|| {
            ConfigErrors::one(ConfigProblem {
                line: None,
                path: String::new(),
                message: "the configuration could not be read".into(),
            })
        })
    }
}

struct Checker<'a> {
    text: &'a str,
    problems: &'a mut Vec<ConfigProblem>,
}

impl Checker<'_> {
    fn config(&mut self, document: RawDocument, allowed: &AllowedProjects) -> Config {
        let defaults = document.defaults.unwrap_or_default();
        let default_dry_run = defaults.dry_run.map(|v| *v.get_ref()).unwrap_or(false);
        let default_policy = match &defaults.retry {
            Some(raw) => self.policy(RetryPolicy::default(), raw, "defaults.retry"),
            None => RetryPolicy::default(),
        };
        let default_reaper = match &defaults.reaper {
            Some(raw) => self.reaper(ReaperPolicy::default(), raw, "defaults.reaper"),
            None => ReaperPolicy::default(),
        };
        let default_start = match &defaults.start {
            Some(raw) => self.start(StartPolicy::default(), raw, "defaults.start"),
            None => StartPolicy::default(),
        };
        let account = self.account(document.account.unwrap_or_default());

        let mut projects: Vec<ProjectEntry> = Vec::new();
        // (pattern, index, line) of the entries read so far, for duplicates and shadowing.
        let mut earlier: Vec<(ProjectPattern, usize, usize)> = Vec::new();
        for (index, raw) in document
            .projects
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let path = format!("projects[{index}]");
            let entry_line = line_of(self.text, raw.span().start);
            let raw: RawProject = raw.into_inner();
            let policy = match &raw.retry {
                Some(retry) => self.policy(default_policy.clone(), retry, &format!("{path}.retry")),
                None => default_policy.clone(),
            };
            let reaper = match &raw.reaper {
                Some(reaper) => {
                    self.reaper(default_reaper.clone(), reaper, &format!("{path}.reaper"))
                }
                None => default_reaper.clone(),
            };
            let start = match &raw.start {
                Some(start) => self.start(default_start.clone(), start, &format!("{path}.start")),
                None => default_start.clone(),
            };
            let Some(pattern) = self.pattern(raw.name.as_ref(), &path, entry_line, allowed) else {
                continue;
            };
            let line = raw.name.as_ref().map_or(entry_line, |name| self.line(name));
            self.check_order(&pattern, &earlier, &path, line);
            earlier.push((pattern.clone(), index, line));
            projects.push(ProjectEntry {
                pattern,
                dry_run: raw.dry_run.map_or(default_dry_run, |v| *v.get_ref()),
                retry: policy,
                reaper,
                start,
            });
        }
        let webhooks = self.webhooks(document.webhooks.unwrap_or_default());
        let repositories = self.repositories(
            document.repositories.unwrap_or_default(),
            &projects,
            &webhooks,
            allowed,
        );
        Config {
            projects,
            account,
            webhooks,
            repositories,
        }
    }

    /// `[webhooks]` over the built-in defaults.
    fn webhooks(&mut self, raw: RawWebhooks) -> WebhookSettings {
        let mut settings = WebhookSettings::default();
        if let Some(v) = &raw.max_body_bytes {
            let least = u32::try_from(MIN_WEBHOOK_BODY_BYTES).unwrap_or(u32::MAX);
            let most = u32::try_from(WEBHOOK_MAX_BODY_BYTES_LIMIT).unwrap_or(u32::MAX);
            let why = " (4 MiB)";
            if let Some(n) = self.count(v, "webhooks.max_body_bytes", least, most, why)
                && let Ok(n) = usize::try_from(n)
            {
                settings.max_body_bytes = n;
            }
        }
        if let Some(v) = &raw.allow_draft_pull_requests {
            settings.allow_draft_pull_requests = *v.get_ref();
        }
        if let Some(v) = &raw.allow_fork_pull_requests {
            settings.allow_fork_pull_requests = *v.get_ref();
        }
        if let Some(secrets) = &raw.secrets {
            for provider in Provider::ALL {
                let path = format!("webhooks.secrets.{provider}");
                if let Some(list) = raw_secrets(secrets, provider)
                    && let Some(ids) = self.secret_ids(list, &path)
                {
                    match provider {
                        Provider::GitHub => settings.secrets.github = ids,
                        Provider::GitLab => settings.secrets.gitlab = ids,
                        Provider::Bitbucket => settings.secrets.bitbucket = ids,
                    }
                }
            }
        }
        settings
    }

    /// Secrets Manager secret names or ARNs: each valid and listed once. `None` when any is not.
    fn secret_ids(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
        path: &str,
    ) -> Option<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        let mut valid = true;
        for (index, id) in raw.get_ref().iter().enumerate() {
            let line = self.line(id);
            let item_path = format!("{path}[{index}]");
            let id = id.get_ref();
            let problem = if ids.contains(id) {
                Some(format!("`{id}` is listed twice"))
            } else {
                secret_id_problem(id)
            };
            match problem {
                Some(message) => {
                    self.problem(line, &item_path, message);
                    valid = false;
                }
                None => ids.push(id.clone()),
            }
        }
        valid.then_some(ids)
    }

    /// `[[repositories]]`: each with a known provider that has a secret, a valid name, and
    /// targets that are configured projects.
    fn repositories(
        &mut self,
        raw: Vec<Spanned<RawRepository>>,
        projects: &[ProjectEntry],
        webhooks: &WebhookSettings,
        allowed: &AllowedProjects,
    ) -> Vec<RepositoryEntry> {
        let mut entries = Vec::new();
        for (index, raw) in raw.into_iter().enumerate() {
            let path = format!("repositories[{index}]");
            let entry_line = line_of(self.text, raw.span().start);
            let raw: RawRepository = raw.into_inner();
            let provider = self.provider(raw.provider.as_ref(), &path, entry_line, webhooks);
            let name = self.repository_name(raw.name.as_ref(), &path, entry_line);
            let targets = self.targets(raw.targets, &path, entry_line, projects, webhooks, allowed);
            if let (Some(provider), Some(name)) = (provider, name) {
                entries.push(RepositoryEntry {
                    provider,
                    name,
                    targets,
                });
            }
        }
        entries
    }

    fn provider(
        &mut self,
        raw: Option<&Spanned<String>>,
        path: &str,
        entry_line: usize,
        webhooks: &WebhookSettings,
    ) -> Option<Provider> {
        let path = format!("{path}.provider");
        let Some(raw) = raw else {
            self.required(entry_line, &path, "`github`, `gitlab` or `bitbucket`");
            return None;
        };
        let line = self.line(raw);
        let Some(provider) = Provider::parse(raw.get_ref()) else {
            self.problem(
                line,
                &path,
                format!(
                    "unknown provider `{}`; expected `github`, `gitlab` or `bitbucket`",
                    raw.get_ref()
                ),
            );
            return None;
        };
        let secrets_path = format!("webhooks.secrets.{provider}");
        let secrets_reported = self
            .problems
            .iter()
            .any(|p| p.path.starts_with(&secrets_path));
        if webhooks.secrets.for_provider(provider).is_empty() && !secrets_reported {
            self.problem(
                line,
                &path,
                format!(
                    "no secret for `{provider}` in [webhooks.secrets]: its deliveries could not \
                     be verified, so none would reach this entry"
                ),
            );
        }
        Some(provider)
    }

    fn repository_name(
        &mut self,
        raw: Option<&Spanned<String>>,
        path: &str,
        entry_line: usize,
    ) -> Option<RepositoryPattern> {
        let path = format!("{path}.name");
        let Some(raw) = raw else {
            self.required(
                entry_line,
                &path,
                "the repository's full name `owner/name`, or a glob",
            );
            return None;
        };
        let line = self.line(raw);
        let text = raw.get_ref();
        if text.trim().is_empty() {
            self.problem(line, &path, "must not be empty".into());
            return None;
        }
        match RepositoryPattern::new(text) {
            Ok(pattern) => Some(pattern),
            Err(error) => {
                self.problem(
                    line,
                    &path,
                    format!("`{text}` is not a valid glob: {}", error.kind()),
                );
                None
            }
        }
    }

    fn targets(
        &mut self,
        raw: Option<Vec<Spanned<RawTarget>>>,
        path: &str,
        entry_line: usize,
        projects: &[ProjectEntry],
        webhooks: &WebhookSettings,
        allowed: &AllowedProjects,
    ) -> Vec<WebhookTarget> {
        let targets_path = format!("{path}.targets");
        let raw = raw.unwrap_or_default();
        if raw.is_empty() && !self.problems.iter().any(|p| p.path == targets_path) {
            self.problem(
                entry_line,
                &targets_path,
                "required: at least one [[repositories.targets]] entry (the project to start)"
                    .into(),
            );
        }
        let mut targets: Vec<WebhookTarget> = Vec::new();
        for (index, raw) in raw.into_iter().enumerate() {
            let path = format!("{targets_path}[{index}]");
            let target_line = line_of(self.text, raw.span().start);
            let raw: RawTarget = raw.into_inner();
            let project =
                self.target_project(raw.project.as_ref(), &path, target_line, projects, allowed);
            let filter_groups = match &raw.filter_groups {
                Some(groups) => self.filter_groups(groups, &format!("{path}.filter_groups")),
                None => Vec::new(),
            };
            let Some(project) = project else { continue };
            if targets.iter().any(|t| t.project == project) {
                let line = raw.project.as_ref().map_or(target_line, |p| self.line(p));
                self.problem(
                    line,
                    &format!("{path}.project"),
                    format!(
                        "project `{project}` is already a target of this repository; put all its \
                         filter groups in one target"
                    ),
                );
                continue;
            }
            targets.push(WebhookTarget {
                project,
                report_status: raw.report_status.map(Spanned::into_inner),
                allow_draft_pull_requests: raw
                    .allow_draft_pull_requests
                    .map_or(webhooks.allow_draft_pull_requests, Spanned::into_inner),
                allow_fork_pull_requests: raw
                    .allow_fork_pull_requests
                    .map_or(webhooks.allow_fork_pull_requests, Spanned::into_inner),
                filter_groups,
            });
        }
        targets
    }

    /// An exact project name that a `[[projects]]` entry covers and IAM allows.
    fn target_project(
        &mut self,
        raw: Option<&Spanned<String>>,
        path: &str,
        target_line: usize,
        projects: &[ProjectEntry],
        allowed: &AllowedProjects,
    ) -> Option<String> {
        let path = format!("{path}.project");
        let Some(raw) = raw else {
            self.required(target_line, &path, "the CodeBuild project's name");
            return None;
        };
        let line = self.line(raw);
        let name = raw.get_ref();
        if name.trim().is_empty() {
            self.problem(line, &path, "must not be empty".into());
            return None;
        }
        let exact = ProjectPattern::new(name)
            .ok()
            .filter(ProjectPattern::is_exact);
        let Some(pattern) = exact.filter(|_| !name.contains(['\\', ']', '}'])) else {
            self.problem(
                line,
                &path,
                format!(
                    "`{name}` must be an exact project name, not a glob: a start names one project"
                ),
            );
            return None;
        };
        if let Err(reason) = allowed.check(&pattern) {
            self.problem(line, &path, reason);
            return None;
        }
        if !projects.iter().any(|entry| entry.pattern.matches(name)) {
            self.problem(
                line,
                &path,
                format!(
                    "project `{name}` has no [[projects]] entry, and the autopilot never touches \
                     a project that is not configured; add one"
                ),
            );
            return None;
        }
        Some(name.clone())
    }

    /// Every group whose filters are all valid; each problem reported at its filter's key.
    fn filter_groups(
        &mut self,
        raw: &Spanned<Vec<RawFilterGroup>>,
        path: &str,
    ) -> Vec<FilterGroup> {
        let mut groups = Vec::new();
        for (index, raw_group) in raw.get_ref().iter().enumerate() {
            let group_path = format!("{path}[{index}]");
            let already_reported = self
                .problems
                .iter()
                .any(|p| p.path.starts_with(&group_path));
            let mut filters = Vec::new();
            let mut valid = true;
            for (index, raw_filter) in raw_group.get_ref().iter().enumerate() {
                match self.filter(raw_filter, &format!("{group_path}[{index}]")) {
                    Some(filter) => filters.push(filter),
                    None => valid = false,
                }
            }
            if !valid || already_reported {
                continue;
            }
            match FilterGroup::new(filters) {
                Ok(group) => groups.push(group),
                Err(error) => {
                    let line = self.line(raw_group);
                    self.problem(line, &group_path, error.to_string());
                }
            }
        }
        groups
    }

    fn filter(&mut self, raw: &Spanned<RawFilter>, path: &str) -> Option<WebhookFilter> {
        let filter_line = self.line(raw);
        let raw = raw.get_ref();
        let type_path = format!("{path}.type");
        let filter_type = match &raw.filter_type {
            None => {
                self.required(
                    filter_line,
                    &type_path,
                    "the CodeBuild filter type (`EVENT`, `HEAD_REF`, …)",
                );
                None
            }
            Some(name) => match FilterType::parse(name.get_ref()) {
                Ok(filter_type) => Some(filter_type),
                Err(error) => {
                    let line = self.line(name);
                    self.problem(line, &type_path, error.to_string());
                    None
                }
            },
        };
        let pattern_path = format!("{path}.pattern");
        let Some(pattern) = &raw.pattern else {
            self.required(
                filter_line,
                &pattern_path,
                "event names for EVENT, else a regular expression",
            );
            return None;
        };
        let exclude = raw.exclude_matched_pattern.as_ref();
        match WebhookFilter::new(
            filter_type?,
            pattern.get_ref(),
            exclude.is_some_and(|e| *e.get_ref()),
        ) {
            Ok(filter) => Some(filter),
            Err(error) => {
                let (line, path) = match (&error, exclude) {
                    (FilterError::ExcludedEvent, Some(exclude)) => (
                        self.line(exclude),
                        format!("{path}.exclude_matched_pattern"),
                    ),
                    _ => (self.line(pattern), pattern_path),
                };
                self.problem(line, &path, error.to_string());
                None
            }
        }
    }

    /// "required: …" unless the key was already reported (a value of the wrong type is dropped
    /// while reading, and "required" would then be noise).
    fn required(&mut self, line: usize, path: &str, what: &str) {
        if !self.problems.iter().any(|p| p.path == path) {
            self.problem(line, path, format!("required: {what}"));
        }
    }

    fn pattern(
        &mut self,
        name: Option<&Spanned<String>>,
        path: &str,
        entry_line: usize,
        allowed: &AllowedProjects,
    ) -> Option<ProjectPattern> {
        let path = format!("{path}.name");
        let Some(name) = name else {
            // A name of the wrong type was reported and dropped already; "required" would be noise.
            if !self.problems.iter().any(|p| p.path == path) {
                self.problem(
                    entry_line,
                    &path,
                    "required: the project name or glob".into(),
                );
            }
            return None;
        };
        let line = self.line(name);
        let text = name.get_ref();
        if text.trim().is_empty() {
            self.problem(line, &path, "must not be empty".into());
            return None;
        }
        let pattern = match ProjectPattern::new(text) {
            Ok(pattern) => pattern,
            Err(error) => {
                self.problem(
                    line,
                    &path,
                    format!("`{text}` is not a valid glob: {}", error.kind()),
                );
                return None;
            }
        };
        if let Err(reason) = allowed.check(&pattern) {
            self.problem(line, &path, reason);
        }
        Some(pattern)
    }

    /// The first matching entry wins, so an entry that repeats or is covered by an earlier one
    /// would never apply: almost certainly not what was meant.
    fn check_order(
        &mut self,
        pattern: &ProjectPattern,
        earlier: &[(ProjectPattern, usize, usize)],
        path: &str,
        line: usize,
    ) {
        let path = format!("{path}.name");
        for (before, index, before_line) in earlier {
            if before.as_str() == pattern.as_str() {
                self.problem(
                    line,
                    &path,
                    format!(
                        "duplicate project pattern `{}`: projects[{index}] (line {before_line}) \
                         already has it, and only the first entry applies",
                        pattern.as_str()
                    ),
                );
                return;
            }
            if covers(before, pattern) {
                self.problem(
                    line,
                    &path,
                    format!(
                        "never applies: projects[{index}] `{}` (line {before_line}) matches every \
                         project `{}` does, and the first matching entry wins; move this entry \
                         above it",
                        before.as_str(),
                        pattern.as_str()
                    ),
                );
                return;
            }
        }
    }

    /// `base` with every key present in `raw` applied (invalid values leave `base`'s).
    fn policy(&mut self, base: RetryPolicy, raw: &RawRetry, path: &str) -> RetryPolicy {
        let key = |name: &str| format!("{path}.{name}");
        let mut policy = base;
        if let Some(v) = &raw.enabled {
            policy.enabled = *v.get_ref();
        }
        if let Some(v) = &raw.classes
            && let Some(classes) = self.classes(v, &key("classes"))
        {
            policy.classes = classes;
        }
        if let Some(v) = &raw.max_retries
            && let Some(n) = self.count(v, &key("max_retries"), 0, MAX_RETRIES_LIMIT, "")
        {
            policy.max_retries = n;
        }
        if let Some(v) = &raw.retry_timed_out {
            policy.retry_timed_out = *v.get_ref();
        }
        if let Some(v) = &raw.backoff_seconds {
            let most = u32::try_from(MAX_BACKOFF.as_secs()).unwrap_or(u32::MAX);
            let why = " (SQS delays a message at most 15 minutes)";
            if let Some(n) = self.count(v, &key("backoff_seconds"), 0, most, why) {
                policy.backoff_initial = Duration::from_secs(u64::from(n));
            }
        }
        if let Some(v) = &raw.hourly_budget
            && let Some(n) = self.count(v, &key("hourly_budget"), 1, u32::MAX, "")
        {
            policy.hourly_budget = n;
        }
        if let Some(v) = &raw.read_log_tail {
            policy.read_log_tail = *v.get_ref();
        }
        if let Some(v) = &raw.log_tail_lines
            && let Some(n) = self.count(v, &key("log_tail_lines"), 1, MAX_LOG_TAIL_LINES, "")
        {
            policy.log_tail_lines = n;
        }
        policy
    }

    /// `base` with every key present in `raw` applied (invalid values leave `base`'s). A list
    /// replaces the inherited one rather than extending it, so `protected_branches = []` really
    /// protects nothing.
    fn reaper(&mut self, base: ReaperPolicy, raw: &RawReaper, path: &str) -> ReaperPolicy {
        let key = |name: &str| format!("{path}.{name}");
        let mut policy = base;
        if let Some(v) = &raw.max_age_minutes {
            let why = " (one week)";
            if let Some(n) = self.count(v, &key("max_age_minutes"), 1, MAX_AGE_MINUTES_LIMIT, why) {
                policy.max_age = Some(Duration::from_secs(u64::from(n) * 60));
            }
        }
        if let Some(v) = &raw.supersede {
            policy.supersede = *v.get_ref();
        }
        if let Some(v) = &raw.protected_branches
            && let Some(globs) = self.globs(v, &key("protected_branches"))
        {
            policy.protected_branches = globs;
        }
        if let Some(v) = &raw.excluded_initiators
            && let Some(globs) = self.globs(v, &key("excluded_initiators"))
        {
            policy.excluded_initiators = globs;
        }
        policy
    }

    /// `base` with every key of `[…start]` present in `raw` applied (a list replaces the
    /// inherited one, as for the reaper).
    fn start(&mut self, base: StartPolicy, raw: &RawStart, path: &str) -> StartPolicy {
        let key = |name: &str| format!("{path}.{name}");
        let mut policy = base;
        if let Some(v) = &raw.allowed_overrides
            && let Some(kinds) = self.override_kinds(v, &key("allowed_overrides"))
        {
            policy.allowed = kinds;
        }
        if let Some(v) = &raw.environment_variable_names
            && let Some(globs) = self.globs(v, &key("environment_variable_names"))
        {
            policy.environment_variable_names = globs;
        }
        if let Some(v) = &raw.max_timeout_minutes {
            let why = " (CodeBuild's longest build timeout, 36 hours)";
            if let Some(n) = self.count(
                v,
                &key("max_timeout_minutes"),
                CODEBUILD_MIN_TIMEOUT_MINUTES,
                CODEBUILD_MAX_TIMEOUT_MINUTES,
                why,
            ) {
                policy.max_timeout_minutes = n;
            }
        }
        policy
    }

    fn override_kinds(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
        path: &str,
    ) -> Option<Vec<OverrideKind>> {
        let mut kinds = Vec::new();
        let mut valid = true;
        for (index, text) in raw.get_ref().iter().enumerate() {
            let line = self.line(text);
            let item_path = format!("{path}[{index}]");
            match OverrideKind::parse(text.get_ref()) {
                Some(kind) if kinds.contains(&kind) => {
                    let message = format!("`{}` is listed twice", kind.as_str());
                    self.problem(line, &item_path, message);
                    valid = false;
                }
                Some(kind) => kinds.push(kind),
                None => {
                    let known: Vec<&str> = OverrideKind::ALL.iter().map(|k| k.as_str()).collect();
                    let message = format!(
                        "unknown override `{}` (expected one of: {})",
                        text.get_ref(),
                        known.join(", ")
                    );
                    self.problem(line, &item_path, message);
                    valid = false;
                }
            }
        }
        valid.then_some(kinds)
    }

    /// A list of names or globs: each non-empty, valid and listed once. `None` when any is not
    /// (the inherited list then stays, rather than half of a list meant as a whole).
    fn globs(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
        path: &str,
    ) -> Option<Vec<ProjectPattern>> {
        let mut globs: Vec<ProjectPattern> = Vec::new();
        let mut valid = true;
        for (index, text) in raw.get_ref().iter().enumerate() {
            let line = self.line(text);
            let item_path = format!("{path}[{index}]");
            let text = text.get_ref();
            if text.trim().is_empty() {
                self.problem(line, &item_path, "must not be empty".into());
                valid = false;
                continue;
            }
            if globs.iter().any(|g| g.as_str() == text) {
                self.problem(line, &item_path, format!("`{text}` is listed twice"));
                valid = false;
                continue;
            }
            match ProjectPattern::new(text) {
                Ok(glob) => globs.push(glob),
                Err(error) => {
                    self.problem(
                        line,
                        &item_path,
                        format!("`{text}` is not a valid glob: {}", error.kind()),
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(globs)
    }

    fn classes(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
        path: &str,
    ) -> Option<Vec<RetryClass>> {
        let mut classes = Vec::new();
        let mut valid = true;
        for (index, name) in raw.get_ref().iter().enumerate() {
            let line = self.line(name);
            let item_path = format!("{path}[{index}]");
            let class = match name.get_ref().as_str() {
                "transient" => RetryClass::Transient,
                "retry_once" => RetryClass::RetryOnce,
                other => {
                    self.problem(
                        line,
                        &item_path,
                        format!("unknown class `{other}`; expected `transient` or `retry_once`"),
                    );
                    valid = false;
                    continue;
                }
            };
            if classes.contains(&class) {
                self.problem(
                    line,
                    &item_path,
                    format!("`{}` is listed twice", name.get_ref()),
                );
                valid = false;
                continue;
            }
            classes.push(class);
        }
        valid.then_some(classes)
    }

    fn account(&mut self, raw: RawAccount) -> AccountSettings {
        let mut account = AccountSettings::default();
        if let Some(v) = &raw.hourly_retry_limit
            && let Some(n) = self.count(v, "account.hourly_retry_limit", 1, u32::MAX, "")
        {
            account.hourly_retry_limit = n;
        }
        if let Some(v) = raw.notify_gave_up {
            account.notify_gave_up = v.into_inner();
        }
        account
    }

    /// The number when it lies in `min..=max`; otherwise a problem (`why` explains a limit).
    fn count(
        &mut self,
        raw: &Spanned<i64>,
        path: &str,
        min: u32,
        max: u32,
        why: &str,
    ) -> Option<u32> {
        let value = *raw.get_ref();
        let line = self.line(raw);
        if value < i64::from(min) {
            self.problem(line, path, format!("must be at least {min}, got {value}"));
            return None;
        }
        if value > i64::from(max) {
            self.problem(
                line,
                path,
                format!("must be at most {max}{why}, got {value}"),
            );
            return None;
        }
        u32::try_from(value).ok()
    }

    fn line<T>(&self, spanned: &Spanned<T>) -> usize {
        line_of(self.text, spanned.span().start)
    }

    fn problem(&mut self, line: usize, path: &str, message: String) {
        self.problems.push(ConfigProblem {
            line: Some(line),
            path: path.to_owned(),
            message,
        });
    }
}

fn raw_secrets(raw: &RawSecrets, provider: Provider) -> Option<&Spanned<Vec<Spanned<String>>>> {
    match provider {
        Provider::GitHub => raw.github.as_ref(),
        Provider::GitLab => raw.gitlab.as_ref(),
        Provider::Bitbucket => raw.bitbucket.as_ref(),
    }
}

/// Why `id` is not a Secrets Manager secret name or ARN, if it is not.
fn secret_id_problem(id: &str) -> Option<String> {
    if id.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if id.starts_with("arn:") {
        let is_secret_arn = id.split(':').nth(2) == Some("secretsmanager")
            && id.split(':').nth(5) == Some("secret")
            && id.split(':').nth(6).is_some_and(|name| !name.is_empty());
        if !is_secret_arn || id.len() > MAX_SECRET_ID_LEN {
            return Some(format!(
                "`{id}` is not a Secrets Manager secret ARN \
                 (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>)"
            ));
        }
        return None;
    }
    if id.len() > MAX_SECRET_NAME_LEN {
        return Some(format!(
            "is longer than {MAX_SECRET_NAME_LEN} characters, Secrets Manager's limit for a name"
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
    {
        return Some(format!(
            "`{id}` is not a Secrets Manager secret name: `{bad}` is not allowed (letters, digits \
             and /_+=.@- only), or give the secret's ARN"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::{DEFAULT_WEBHOOK_MAX_BODY_BYTES, WebhookSecrets};
    use crate::webhook::route::FilterType;

    fn parse(text: &str) -> Config {
        match Config::from_toml(text, &AllowedProjects::all()) {
            Ok(config) => config,
            Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
        }
    }

    fn lines(text: &str, allowed: &AllowedProjects) -> Vec<String> {
        match Config::from_toml(text, allowed) {
            Ok(config) => panic!("expected errors, got {config:?}"),
            Err(errors) => errors.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn start_policy_defaults_merge_and_project_keys_win() {
        let config = parse(
            r#"
[defaults.start]
allowed_overrides = ["source_version", "environment_variables"]
environment_variable_names = ["DEPLOY_*"]

[[projects]]
name = "web"

[[projects]]
name = "nightly"
[projects.start]
allowed_overrides = ["timeout", "buildspec"]
max_timeout_minutes = 120
"#,
        );
        let web = &config.entry_for("web").unwrap().start;
        assert_eq!(
            web.allowed,
            [
                OverrideKind::SourceVersion,
                OverrideKind::EnvironmentVariables
            ]
        );
        assert_eq!(web.environment_variable_names[0].as_str(), "DEPLOY_*");
        assert_eq!(
            web.max_timeout_minutes,
            crate::config::DEFAULT_MAX_TIMEOUT_MINUTES
        );
        let nightly = &config.entry_for("nightly").unwrap().start;
        assert_eq!(
            nightly.allowed,
            [OverrideKind::Timeout, OverrideKind::Buildspec]
        );
        assert_eq!(nightly.environment_variable_names[0].as_str(), "DEPLOY_*");
        assert_eq!(nightly.max_timeout_minutes, 120);
        let plain = parse("[[projects]]\nname = \"app\"\n");
        assert_eq!(
            plain.entry_for("app").unwrap().start.allowed,
            [OverrideKind::SourceVersion]
        );
    }

    #[test]
    fn bad_start_keys_are_reported_with_line_and_key() {
        let found = lines(
            r#"[[projects]]
name = "web"
[projects.start]
allowed_overrides = ["source_version", "privileged_mode", "source_version"]
environment_variable_names = [""]
max_timeout_minutes = 3000
unknown = 1
"#,
            &AllowedProjects::all(),
        );
        let text = found.join("\n");
        assert!(
            text.contains(
                "line 4: projects[0].start.allowed_overrides[1]: unknown override `privileged_mode`"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "line 4: projects[0].start.allowed_overrides[2]: `source_version` is listed twice"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "line 5: projects[0].start.environment_variable_names[0]: must not be empty"
            ),
            "{text}"
        );
        assert!(
            text.contains("line 6: projects[0].start.max_timeout_minutes: must be at most 2160"),
            "{text}"
        );
        assert!(text.contains("unknown"), "{text}");
        assert_eq!(found.len(), 5, "{text}");
    }

    #[test]
    fn without_webhook_keys_the_defaults_apply_and_nothing_is_routed() {
        let config = parse("[[projects]]\nname = \"app\"\n");
        assert_eq!(config.webhooks, WebhookSettings::default());
        assert_eq!(
            config.webhooks.max_body_bytes,
            DEFAULT_WEBHOOK_MAX_BODY_BYTES
        );
        assert!(!config.webhooks.allow_draft_pull_requests);
        assert!(!config.webhooks.allow_fork_pull_requests);
        assert_eq!(config.webhooks.secrets, WebhookSecrets::default());
        assert!(config.repositories.is_empty());
    }

    #[test]
    fn webhook_keys_are_read_and_targets_merge_the_defaults() {
        let config = parse(
            r#"
[webhooks]
max_body_bytes = 2097152
allow_draft_pull_requests = true
[webhooks.secrets]
github = ["autopilot/webhooks/github", "autopilot/webhooks/github-next"]
bitbucket = ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:bb-AbCdEf"]

[[projects]]
name = "web-*"

[[repositories]]
provider = "github"
name = "octo-org/*"
[[repositories.targets]]
project = "web-ci"
report_status = true
allow_fork_pull_requests = true
filter_groups = [
  [ { type = "EVENT", pattern = "PUSH, PULL_REQUEST_CREATED" },
    { type = "HEAD_REF", pattern = "^refs/heads/main$", exclude_matched_pattern = false } ],
  [ { type = "EVENT", pattern = "PULL_REQUEST_UPDATED" },
    { type = "FILE_PATH", pattern = "^docs/", exclude_matched_pattern = true } ],
]
[[repositories.targets]]
project = "web-lint"
allow_draft_pull_requests = false
"#,
        );
        let webhooks = &config.webhooks;
        assert_eq!(webhooks.max_body_bytes, 2 << 20);
        assert_eq!(
            webhooks.secrets.for_provider(Provider::GitHub),
            [
                "autopilot/webhooks/github",
                "autopilot/webhooks/github-next"
            ]
        );
        assert!(webhooks.secrets.for_provider(Provider::GitLab).is_empty());
        assert_eq!(webhooks.secrets.bitbucket.len(), 1);

        let [entry] = config.repositories.as_slice() else {
            panic!("one entry")
        };
        assert_eq!(entry.provider, Provider::GitHub);
        assert_eq!(entry.name.as_str(), "octo-org/*");
        let [ci, lint] = entry.targets.as_slice() else {
            panic!("two targets")
        };
        assert_eq!(ci.project, "web-ci");
        assert_eq!(ci.report_status, Some(true));
        assert!(ci.allow_draft_pull_requests, "from [webhooks]");
        assert!(ci.allow_fork_pull_requests, "the target's own");
        assert_eq!(ci.filter_groups.len(), 2);
        let first = ci.filter_groups[0].filters();
        assert_eq!(first[0].filter_type(), FilterType::Event);
        assert_eq!(first[0].events(), ["PUSH", "PULL_REQUEST_CREATED"]);
        assert_eq!(first[1].filter_type(), FilterType::HeadRef);
        assert_eq!(first[1].pattern(), "^refs/heads/main$");
        assert!(!first[1].exclude_matched_pattern());
        assert!(ci.filter_groups[1].filters()[1].exclude_matched_pattern());
        assert_eq!(lint.report_status, None);
        assert!(!lint.allow_draft_pull_requests, "the target overrides");
        assert!(!lint.allow_fork_pull_requests);
        assert!(lint.filter_groups.is_empty());
    }

    #[test]
    fn every_webhook_problem_is_reported_with_its_line_and_path() {
        let text = r#"[webhooks]
max_body_bytes = 5000000
allow_fork_pull_requests = "no"
retries = 1
[webhooks.secrets]
github = ["ok/name", "ok/name", "bad name!"]
gitlab = ["arn:aws:s3:::bucket"]
codecommit = []

[[projects]]
name = "web-*"

[[repositories]]
provider = "gitea"
name = ""
[[repositories.targets]]
project = "web-*"

[[repositories]]
provider = "bitbucket"
name = "team/app"
targets = []

[[repositories]]
name = "octo-org/web"
[[repositories.targets]]
project = "api-ci"
[[repositories.targets]]
project = "web-ci"
filter_groups = [
  [ { type = "HEAD_REF", pattern = "^refs/heads/main$" } ],
  [ { type = "EVENT", pattern = "PUSH, PULL_REQUEST_MERGED" } ],
  [ { type = "EVENT", pattern = "PUSH, PULL_REQUEST_CREATED" }, { type = "BASE_REF", pattern = "main" } ],
  [ { type = "EVENT", pattern = "PUSH", exclude_matched_pattern = true } ],
  [ { type = "EVENT", pattern = "PUSH" }, { type = "FILE_PATH", pattern = "(?!docs/)" } ],
  [ { type = "TAG_NAME", pattern = "v1" }, { pattern = "x" }, { type = "EVENT" } ],
  [ { type = "EVENT", pattern = "PUSH", negate = true } ],
  "PUSH",
]
[[repositories.targets]]
project = "web-ci"
"#;
        let allowed = AllowedProjects::parse("web-*").unwrap();
        assert_eq!(
            lines(text, &allowed),
            [
                "line 2: webhooks.max_body_bytes: must be at most 4194304 (4 MiB), got 5000000",
                "line 3: webhooks.allow_fork_pull_requests: wrong type: expected a boolean, got string \"no\"",
                "line 4: webhooks.retries: unknown key `retries`; expected one of `max_body_bytes`, `allow_draft_pull_requests`, `allow_fork_pull_requests`, `secrets`",
                "line 6: webhooks.secrets.github[1]: `ok/name` is listed twice",
                "line 6: webhooks.secrets.github[2]: `bad name!` is not a Secrets Manager secret name: ` ` is not allowed (letters, digits and /_+=.@- only), or give the secret's ARN",
                "line 7: webhooks.secrets.gitlab[0]: `arn:aws:s3:::bucket` is not a Secrets Manager secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>)",
                "line 8: webhooks.secrets.codecommit: unknown key `codecommit`; expected one of `github`, `gitlab`, `bitbucket`",
                "line 14: repositories[0].provider: unknown provider `gitea`; expected `github`, `gitlab` or `bitbucket`",
                "line 15: repositories[0].name: must not be empty",
                "line 17: repositories[0].targets[0].project: `web-*` must be an exact project name, not a glob: a start names one project",
                "line 19: repositories[1].targets: required: at least one [[repositories.targets]] entry (the project to start)",
                "line 20: repositories[1].provider: no secret for `bitbucket` in [webhooks.secrets]: its deliveries could not be verified, so none would reach this entry",
                "line 24: repositories[2].provider: required: `github`, `gitlab` or `bitbucket`",
                "line 27: repositories[2].targets[0].project: project `api-ci` is outside ProjectNamePatterns (`web-*`); IAM would deny every call on it",
                "line 31: repositories[2].targets[1].filter_groups[0]: a filter group needs exactly one EVENT filter (CodeBuild requires one)",
                "line 32: repositories[2].targets[1].filter_groups[1][0].pattern: event `PULL_REQUEST_MERGED` is not supported: a merged or closed pull request never starts a build here; it stops the pull request's batches in every target of the repository (to build a merge, filter PUSH on the base branch)",
                "line 33: repositories[2].targets[1].filter_groups[2]: a BASE_REF filter applies to pull request events only; move PUSH to another filter group",
                "line 34: repositories[2].targets[1].filter_groups[3][0].exclude_matched_pattern: an EVENT filter cannot be excluded; list the events that should build instead",
                "line 35: repositories[2].targets[1].filter_groups[4][1].pattern: `(?!docs/)` is not a valid regular expression: look-around, including look-ahead and look-behind, is not supported",
                "line 36: repositories[2].targets[1].filter_groups[5][0].type: filter type `TAG_NAME` is not supported: it applies to GitHub release events, which are not routed; filter tag pushes with HEAD_REF `^refs/tags/…`",
                "line 36: repositories[2].targets[1].filter_groups[5][1].type: required: the CodeBuild filter type (`EVENT`, `HEAD_REF`, …)",
                "line 36: repositories[2].targets[1].filter_groups[5][2].pattern: required: event names for EVENT, else a regular expression",
                "line 37: repositories[2].targets[1].filter_groups[6][0].negate: unknown key `negate`; expected one of `type`, `pattern`, `exclude_matched_pattern`",
                "line 38: repositories[2].targets[1].filter_groups[7]: wrong type: expected a filter group (an array of filter tables), got string",
                "line 41: repositories[2].targets[2].project: project `web-ci` is already a target of this repository; put all its filter groups in one target",
            ]
        );
    }

    #[test]
    fn a_target_must_be_a_configured_project() {
        let text = "[webhooks.secrets]\ngithub = [\"s\"]\n[[projects]]\nname = \"web-*\"\n\
                    [[repositories]]\nprovider = \"github\"\nname = \"o/r\"\n\
                    [[repositories.targets]]\nproject = \"api-ci\"\n";
        assert_eq!(
            lines(text, &AllowedProjects::all()),
            [
                "line 9: repositories[0].targets[0].project: project `api-ci` has no [[projects]] \
              entry, and the autopilot never touches a project that is not configured; add one"
            ]
        );
    }

    #[test]
    fn a_body_limit_below_a_kilobyte_is_refused() {
        assert_eq!(
            lines(
                "[webhooks]\nmax_body_bytes = 100\n",
                &AllowedProjects::all()
            ),
            ["line 2: webhooks.max_body_bytes: must be at least 1024, got 100"]
        );
    }

    #[test]
    fn the_example_file_configures_webhooks_with_every_key() {
        let example = include_str!("../../../infra/autopilot.example.toml");
        for key in [
            "[webhooks]",
            "max_body_bytes",
            "allow_draft_pull_requests",
            "allow_fork_pull_requests",
            "[webhooks.secrets]",
            "github",
            "gitlab",
            "bitbucket",
            "[[repositories]]",
            "provider",
            "[[repositories.targets]]",
            "project",
            "report_status",
            "filter_groups",
            "exclude_matched_pattern",
        ] {
            assert!(
                example
                    .lines()
                    .any(|line| line.trim_start().starts_with(key)
                        || line.contains(&format!("{{ {key}"))
                        || line.contains(&format!(", {key}"))),
                "{key} is missing from the example"
            );
        }
        let allowed = AllowedProjects::parse("web-*,api-*,nightly-e2e").unwrap();
        let config = match Config::from_toml(example, &allowed) {
            Ok(config) => config,
            Err(errors) => panic!("infra/autopilot.example.toml is invalid:\n{errors}"),
        };
        assert!(!config.repositories.is_empty());
        assert!(!config.webhooks.secrets.github.is_empty());
    }
}
