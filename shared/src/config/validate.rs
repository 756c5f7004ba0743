//! From the text as written to a [`Config`]: ranges, classes, globs, duplicates and the IAM bound
//! checked, and the defaults merged (built-in < `[defaults]` < the project entry).

use std::time::Duration;

use toml::Spanned;

use super::allowed::covers;
use super::raw::{
    RawAccount, RawDocument, RawProject, RawReaper, RawRetry, line_of, read_document,
};
use super::{
    AccountSettings, AllowedProjects, Config, ConfigErrors, ConfigProblem, MAX_BACKOFF,
    ProjectEntry, ProjectPattern, ReaperPolicy, RetryClass, RetryPolicy,
};

/// Most retries per chain a project may configure.
pub const MAX_RETRIES_LIMIT: u32 = 10;
/// Most log lines a project may read from a build's tail.
pub const MAX_LOG_TAIL_LINES: u32 = 1000;
/// Longest `max_age_minutes` a project may configure (one week: CodeBuild's longest build
/// timeout is 36 hours, so anything longer would never fire anyway, and a larger number is
/// more likely a unit mistake).
pub const MAX_AGE_MINUTES_LIMIT: u32 = 10_080;

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
            });
        }
        Config { projects, account }
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
