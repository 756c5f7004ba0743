//! The configuration model: parsing, merging, every validation rule with its key path and line,
//! the IAM bound, and the example file shipped in `infra/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use autopilot::config::{
    AllowedProjects, Config, ConfigErrors, DEFAULT_ACCOUNT_HOURLY_LIMIT, DEFAULT_BACKOFF_INITIAL,
    DEFAULT_HOURLY_BUDGET, DEFAULT_LOG_TAIL_LINES, DEFAULT_MAX_RETRIES, ProjectPattern,
    ReaperPolicy, RetryClass, RetryPolicy,
};

const EXAMPLE: &str = include_str!("../../../infra/autopilot.example.toml");

fn all() -> AllowedProjects {
    AllowedProjects::all()
}

fn parse(text: &str) -> Config {
    match Config::from_toml(text, &all()) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
    }
}

fn errors(text: &str, allowed: &AllowedProjects) -> ConfigErrors {
    match Config::from_toml(text, allowed) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors,
    }
}

/// The displayed errors, one string per line.
fn lines(text: &str) -> Vec<String> {
    errors(text, &all())
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_example_file_validates_and_says_what_it_means() {
    let allowed = AllowedProjects::parse("web-*,api-*,nightly-e2e").unwrap();
    let config = match Config::from_toml(EXAMPLE, &allowed) {
        Ok(config) => config,
        Err(errors) => panic!("infra/autopilot.example.toml is invalid:\n{errors}"),
    };
    let names: Vec<_> = config.projects.iter().map(|p| p.pattern.as_str()).collect();
    assert_eq!(names, ["web-frontend", "web-*", "api-*", "nightly-e2e"]);

    let frontend = config.entry_for("web-frontend").unwrap();
    assert_eq!(frontend.retry.max_retries, 3);
    assert_eq!(frontend.retry.backoff_initial, Duration::from_secs(120));
    assert!(frontend.retry.read_log_tail);
    assert_eq!(frontend.retry.log_tail_lines, 200);

    let api = config.entry_for("api-billing").unwrap();
    assert!(api.dry_run);
    assert_eq!(api.retry.classes, [RetryClass::Transient]);
    assert_eq!(api.retry.hourly_budget, 5);
    assert_eq!(api.retry.max_retries, 2);

    assert!(
        config
            .entry_for("nightly-e2e")
            .unwrap()
            .retry
            .retry_timed_out
    );
    assert!(config.entry_for("web-other").unwrap().retry == RetryPolicy::default());
    assert!(config.entry_for("billing").is_none());
    assert_eq!(config.account.hourly_retry_limit, 200);
    assert!(config.account.notify_gave_up);

    assert_eq!(frontend.reaper.max_age, Some(Duration::from_secs(90 * 60)));
    assert!(frontend.reaper.supersede);
    assert_eq!(
        texts(&frontend.reaper.protected_branches),
        ["main", "master", "release/*"]
    );
    assert_eq!(
        texts(&frontend.reaper.excluded_initiators),
        ["codepipeline/*"]
    );
    let web = &config.entry_for("web-other").unwrap().reaper;
    assert_eq!(web.max_age, Some(Duration::from_secs(120 * 60)));
    assert_eq!(
        api.reaper.max_age, None,
        "stale stopping stays off unless set"
    );
    let nightly = &config.entry_for("nightly-e2e").unwrap().reaper;
    assert!(!nightly.supersede);
    assert_eq!(nightly.max_age, Some(Duration::from_secs(600 * 60)));
    assert_eq!(texts(&nightly.excluded_initiators), ["nightly-scheduler*"]);
}

fn texts(patterns: &[ProjectPattern]) -> Vec<&str> {
    patterns.iter().map(ProjectPattern::as_str).collect()
}

#[test]
fn the_example_file_uses_every_key() {
    // A key added to the model but not to the example would go undocumented there.
    for key in [
        "[defaults]",
        "dry_run",
        "[defaults.retry]",
        "enabled",
        "classes",
        "max_retries",
        "retry_timed_out",
        "backoff_seconds",
        "hourly_budget",
        "read_log_tail",
        "log_tail_lines",
        "[account]",
        "hourly_retry_limit",
        "notify_gave_up",
        "[defaults.reaper]",
        "max_age_minutes",
        "supersede",
        "protected_branches",
        "excluded_initiators",
        "[[projects]]",
        "name",
        "[projects.retry]",
        "[projects.reaper]",
    ] {
        assert!(
            EXAMPLE
                .lines()
                .any(|line| line.trim_start().starts_with(key)),
            "{key} is missing from the example"
        );
    }
}

#[test]
fn an_empty_text_is_valid_and_touches_nothing() {
    for text in ["", "projects = []", "[defaults]\ndry_run = true\n"] {
        let config = parse(text);
        assert!(config.projects.is_empty(), "{text}");
        assert!(config.entry_for("anything").is_none());
        assert_eq!(
            config.account.hourly_retry_limit,
            DEFAULT_ACCOUNT_HOURLY_LIMIT
        );
    }
}

#[test]
fn built_in_defaults_apply_when_nothing_is_said() {
    let config = parse("[[projects]]\nname = \"app\"\n");
    let entry = config.entry_for("app").unwrap();
    assert!(!entry.dry_run);
    let retry = &entry.retry;
    assert!(retry.enabled);
    assert_eq!(
        retry.classes,
        [RetryClass::Transient, RetryClass::RetryOnce]
    );
    assert_eq!(retry.max_retries, DEFAULT_MAX_RETRIES);
    assert!(!retry.retry_timed_out);
    assert_eq!(retry.backoff_initial, DEFAULT_BACKOFF_INITIAL);
    assert_eq!(retry.hourly_budget, DEFAULT_HOURLY_BUDGET);
    assert!(!retry.read_log_tail);
    assert_eq!(retry.log_tail_lines, DEFAULT_LOG_TAIL_LINES);
}

#[test]
fn reaper_defaults_stop_nothing_stale_and_protect_the_usual_branches() {
    let config = parse("[[projects]]\nname = \"app\"\n");
    let reaper = &config.entry_for("app").unwrap().reaper;
    assert_eq!(reaper.max_age, None);
    assert!(reaper.supersede);
    assert_eq!(
        texts(&reaper.protected_branches),
        ["main", "master", "release/*"]
    );
    assert!(
        reaper
            .protected_branches
            .iter()
            .any(|p| p.matches("release/2.1"))
    );
    assert!(reaper.excluded_initiators.is_empty());
    let built_in = ReaperPolicy::default();
    assert_eq!(
        texts(&built_in.protected_branches),
        texts(&reaper.protected_branches)
    );
}

#[test]
fn reaper_merge_order_is_builtin_then_defaults_then_entry() {
    let config = parse(
        r#"
[defaults.reaper]
max_age_minutes = 120
protected_branches = ["trunk"]
excluded_initiators = ["codepipeline/*"]

[[projects]]
name = "a"
[projects.reaper]
supersede = false
protected_branches = []
max_age_minutes = 30

[[projects]]
name = "b"
[projects.reaper]
excluded_initiators = ["bot-?", "alice"]

[[projects]]
name = "c"
"#,
    );
    let a = &config.entry_for("a").unwrap().reaper;
    assert_eq!(a.max_age, Some(Duration::from_secs(30 * 60)));
    assert!(!a.supersede);
    assert!(
        a.protected_branches.is_empty(),
        "a list replaces the inherited one"
    );
    assert_eq!(texts(&a.excluded_initiators), ["codepipeline/*"]);

    let b = &config.entry_for("b").unwrap().reaper;
    assert_eq!(b.max_age, Some(Duration::from_secs(120 * 60)));
    assert!(b.supersede, "built-in last");
    assert_eq!(texts(&b.protected_branches), ["trunk"]);
    assert_eq!(texts(&b.excluded_initiators), ["bot-?", "alice"]);
    assert!(b.excluded_initiators[0].matches("bot-1"));

    let c = &config.entry_for("c").unwrap().reaper;
    assert_eq!(c.max_age, Some(Duration::from_secs(120 * 60)));
    assert_eq!(texts(&c.protected_branches), ["trunk"]);
}

#[test]
fn reaper_keys_are_checked_with_their_path_and_line() {
    let text = r#"[defaults.reaper]
max_age_minutes = 0
protected_branches = ["main", "", "rel-[a"]

[[projects]]
name = "a"
[projects.reaper]
max_age_minutes = 10081
excluded_initiators = ["bot", "bot"]
supersede = "no"
max_age = 5
[[projects]]
name = "b"
reaper = []
"#;
    assert_eq!(
        lines(text),
        [
            "line 2: defaults.reaper.max_age_minutes: must be at least 1, got 0",
            "line 3: defaults.reaper.protected_branches[1]: must not be empty",
            "line 3: defaults.reaper.protected_branches[2]: `rel-[a` is not a valid glob: \
             unclosed character class; missing ']'",
            "line 8: projects[0].reaper.max_age_minutes: must be at most 10080 (one week), got \
             10081",
            "line 9: projects[0].reaper.excluded_initiators[1]: `bot` is listed twice",
            "line 10: projects[0].reaper.supersede: wrong type: expected a boolean, got string \
             \"no\"",
            "line 11: projects[0].reaper.max_age: unknown key `max_age`; expected one of \
             `max_age_minutes`, `supersede`, `protected_branches`, `excluded_initiators`",
            "line 14: projects[1].reaper: wrong type: expected a table, got array",
        ]
    );
}

#[test]
fn reaper_limits_themselves_are_accepted() {
    let config = parse(
        "[[projects]]\nname = \"a\"\n[projects.reaper]\nmax_age_minutes = 1\n\
         [[projects]]\nname = \"b\"\n[projects.reaper]\nmax_age_minutes = 10080\n",
    );
    let age = |name: &str| config.entry_for(name).unwrap().reaper.max_age;
    assert_eq!(age("a"), Some(Duration::from_secs(60)));
    assert_eq!(age("b"), Some(Duration::from_secs(7 * 24 * 3600)));
}

#[test]
fn merge_order_is_builtin_then_defaults_then_entry() {
    let config = parse(
        r#"
[defaults]
dry_run = true
[defaults.retry]
max_retries = 5
hourly_budget = 7
classes = ["transient"]

[[projects]]
name = "a"
dry_run = false
[projects.retry]
max_retries = 1

[[projects]]
name = "b"
"#,
    );
    let a = config.entry_for("a").unwrap();
    assert!(!a.dry_run, "the entry beats [defaults]");
    assert_eq!(a.retry.max_retries, 1, "the entry beats [defaults]");
    assert_eq!(
        a.retry.hourly_budget, 7,
        "[defaults] fills what the entry leaves out"
    );
    assert_eq!(a.retry.classes, [RetryClass::Transient]);
    assert_eq!(
        a.retry.log_tail_lines, DEFAULT_LOG_TAIL_LINES,
        "built-in last"
    );

    let b = config.entry_for("b").unwrap();
    assert!(b.dry_run);
    assert_eq!(b.retry.max_retries, 5);
}

#[test]
fn the_first_matching_entry_wins() {
    let config = parse(
        r#"
[[projects]]
name = "web-api"
[projects.retry]
max_retries = 0
[[projects]]
name = "web-*"
"#,
    );
    assert_eq!(config.entry_for("web-api").unwrap().retry.max_retries, 0);
    assert_eq!(
        config.entry_for("web-ui").unwrap().retry.max_retries,
        DEFAULT_MAX_RETRIES
    );
    assert!(config.entry_for("web").is_none());
}

#[test]
fn range_errors_name_the_key_the_line_and_the_value() {
    let text = r#"[defaults.retry]
max_retries = 11

[account]
hourly_retry_limit = 0

[[projects]]
name = "a"
[projects.retry]
backoff_seconds = 901
hourly_budget = 0
log_tail_lines = 0

[[projects]]
name = "b"
[projects.retry]
max_retries = 50
log_tail_lines = 1001
max_retries_typo = 1
"#;
    assert_eq!(
        lines(text),
        [
            "line 2: defaults.retry.max_retries: must be at most 10, got 11",
            "line 5: account.hourly_retry_limit: must be at least 1, got 0",
            "line 10: projects[0].retry.backoff_seconds: must be at most 900 (SQS delays a \
             message at most 15 minutes), got 901",
            "line 11: projects[0].retry.hourly_budget: must be at least 1, got 0",
            "line 12: projects[0].retry.log_tail_lines: must be at least 1, got 0",
            "line 17: projects[1].retry.max_retries: must be at most 10, got 50",
            "line 18: projects[1].retry.log_tail_lines: must be at most 1000, got 1001",
            "line 19: projects[1].retry.max_retries_typo: unknown key `max_retries_typo`; \
             expected one of `enabled`, `classes`, `max_retries`, `retry_timed_out`, \
             `backoff_seconds`, `hourly_budget`, `read_log_tail`, `log_tail_lines`",
        ]
    );
}

#[test]
fn limits_themselves_are_accepted() {
    let config = parse(
        r#"
[account]
hourly_retry_limit = 1
[[projects]]
name = "a"
[projects.retry]
max_retries = 10
backoff_seconds = 900
hourly_budget = 1
log_tail_lines = 1000
[[projects]]
name = "b"
[projects.retry]
max_retries = 0
backoff_seconds = 0
log_tail_lines = 1
"#,
    );
    let a = &config.entry_for("a").unwrap().retry;
    assert_eq!(
        (
            a.max_retries,
            a.backoff_initial,
            a.hourly_budget,
            a.log_tail_lines
        ),
        (10, Duration::from_secs(900), 1, 1000)
    );
    let b = &config.entry_for("b").unwrap().retry;
    assert_eq!((b.max_retries, b.backoff_initial), (0, Duration::ZERO));
    assert_eq!(config.account.hourly_retry_limit, 1);
}

#[test]
fn negative_numbers_get_a_range_message_not_a_type_error() {
    assert_eq!(
        lines("[defaults.retry]\nmax_retries = -1\n"),
        ["line 2: defaults.retry.max_retries: must be at least 0, got -1"]
    );
}

#[test]
fn unknown_keys_are_reported_everywhere_at_once() {
    let found = lines(
        r#"
colour = "blue"
[defaults]
dryrun = true
[defaults.retry]
max_retry = 3
[account]
limit = 5
[[projects]]
name = "a"
enable = true
[projects.retry]
classess = []
"#,
    );
    let expected = [
        ("line 2: colour: unknown key `colour`", "`defaults`"),
        ("line 4: defaults.dryrun: unknown key `dryrun`", "`dry_run`"),
        (
            "line 6: defaults.retry.max_retry: unknown key `max_retry`",
            "`max_retries`",
        ),
        (
            "line 8: account.limit: unknown key `limit`",
            "`hourly_retry_limit`",
        ),
        (
            "line 11: projects[0].enable: unknown key `enable`",
            "`dry_run`",
        ),
        (
            "line 13: projects[0].retry.classess: unknown key `classess`",
            "`classes`",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (line, (start, hint)) in found.iter().zip(expected) {
        assert!(line.starts_with(start), "{line} should start with {start}");
        assert!(line.contains(hint), "{line} should suggest {hint}");
    }
}

#[test]
fn wrong_types_are_reported_with_what_was_expected() {
    assert_eq!(
        lines(
            r#"[defaults]
dry_run = "yes"
[defaults.retry]
max_retries = "two"
classes = "transient"
[account]
notify_gave_up = 1
[[projects]]
name = 7
"#
        ),
        [
            "line 2: defaults.dry_run: wrong type: expected a boolean, got string \"yes\"",
            "line 4: defaults.retry.max_retries: wrong type: expected an integer, got string \
             \"two\"",
            "line 5: defaults.retry.classes: wrong type: expected an array, got string \
             \"transient\"",
            "line 7: account.notify_gave_up: wrong type: expected a boolean, got integer `1`",
            "line 9: projects[0].name: wrong type: expected a string, got integer `7`",
        ]
    );
}

#[test]
fn sections_of_the_wrong_shape_are_reported() {
    assert_eq!(
        lines("defaults = 3\naccount = []\nprojects = \"web-*\"\n"),
        [
            "line 1: defaults: wrong type: expected a table, got integer",
            "line 2: account: wrong type: expected a table, got array",
            "line 3: projects: wrong type: expected an array of tables (`[[projects]]`), got \
             string",
        ]
    );
    assert_eq!(
        lines("[[projects]]\nname = \"a\"\nretry = 1\n"),
        ["line 3: projects[0].retry: wrong type: expected a table, got integer"]
    );
}

#[test]
fn classes_must_be_known_and_listed_once() {
    assert_eq!(
        lines("[defaults.retry]\nclasses = [\"transient\",\n  \"permanent\",\n  \"transient\"]\n"),
        [
            "line 3: defaults.retry.classes[1]: unknown class `permanent`; expected `transient` \
             or `retry_once`",
            "line 4: defaults.retry.classes[2]: `transient` is listed twice",
        ]
    );
    let config = parse("[[projects]]\nname = \"a\"\n[projects.retry]\nclasses = []\n");
    assert!(config.entry_for("a").unwrap().retry.classes.is_empty());
}

#[test]
fn project_names_are_required_valid_and_unique() {
    assert_eq!(
        lines(
            r#"[[projects]]
dry_run = true

[[projects]]
name = ""

[[projects]]
name = "web-[a"

[[projects]]
name = "web-*"

[[projects]]
name = "web-*"

[[projects]]
name = "web-api"

[[projects]]
name = "web-api-*"
"#
        ),
        [
            "line 1: projects[0].name: required: the project name or glob",
            "line 5: projects[1].name: must not be empty",
            "line 8: projects[2].name: `web-[a` is not a valid glob: unclosed character class; \
             missing ']'",
            "line 14: projects[4].name: duplicate project pattern `web-*`: projects[3] (line 11) \
             already has it, and only the first entry applies",
            "line 17: projects[5].name: never applies: projects[3] `web-*` (line 11) matches \
             every project `web-api` does, and the first matching entry wins; move this entry \
             above it",
            "line 20: projects[6].name: never applies: projects[3] `web-*` (line 11) matches \
             every project `web-api-*` does, and the first matching entry wins; move this entry \
             above it",
        ]
    );
}

#[test]
fn every_project_must_lie_inside_the_allowed_patterns() {
    let allowed = AllowedProjects::parse("web-*,api-prod").unwrap();
    let text = r#"[[projects]]
name = "web-api"
[[projects]]
name = "web-api-*"
[[projects]]
name = "api-prod"
[[projects]]
name = "api-staging"
[[projects]]
name = "api-*"
[[projects]]
name = "*"
"#;
    let found: Vec<String> = errors(text, &allowed)
        .problems()
        .iter()
        .map(|p| format!("{}:{}", p.line.unwrap(), p.path))
        .collect();
    assert_eq!(
        found,
        [
            "8:projects[3].name",
            "10:projects[4].name",
            "12:projects[5].name"
        ]
    );
    let first = errors(text, &allowed).problems()[0].message.clone();
    assert_eq!(
        first,
        "project `api-staging` is outside ProjectNamePatterns (`web-*`, `api-prod`); IAM would \
         deny every call on it"
    );

    // The same text is fine when everything is allowed.
    assert!(Config::from_toml(text, &AllowedProjects::parse("*").unwrap()).is_ok());
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let errors = errors("[defaults]\ndry_run = \n", &all());
    let problem = &errors.problems()[0];
    assert_eq!(problem.line, Some(2), "{errors}");
    assert!(problem.path.is_empty());
    assert!(
        errors.to_string().starts_with("line 2: invalid TOML: "),
        "{errors}"
    );
}

#[test]
fn errors_display_one_per_line_in_line_order() {
    let errors = errors(
        "[[projects]]\nname = \"b\"\n[projects.retry]\nmax_retries = 50\n[account]\nhourly_retry_limit = 0\n",
        &all(),
    );
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors.to_string(),
        "line 4: projects[0].retry.max_retries: must be at most 10, got 50\n\
         line 6: account.hourly_retry_limit: must be at least 1, got 0"
    );
}

#[test]
fn the_examples_in_the_configuration_reference_validate() {
    let doc = include_str!("../../../docs/configuration.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(
        !blocks.is_empty(),
        "docs/configuration.md has no TOML example"
    );
    let allowed = AllowedProjects::parse("web-*,api-*").unwrap();
    for block in blocks {
        if let Err(errors) = Config::from_toml(block, &allowed) {
            panic!("docs/configuration.md example is invalid:\n{errors}\n{block}");
        }
    }
}
