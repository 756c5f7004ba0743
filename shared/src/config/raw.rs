//! The configuration text as written: serde structs (every key optional, unknown keys refused)
//! with the position of every value, and the reading that reports every unknown key and wrong
//! type rather than only the first.
//!
//! serde stops at the first error in a struct. To report them all, the text is first parsed
//! into toml's spanned tree; each table is then checked key by key against its struct (a table
//! holding just that key deserializes exactly when the key is known and its value has the right
//! type, since every field is optional), bad keys are reported and dropped, and the cleaned tree
//! is deserialized. The structs stay the one definition of which keys exist and their types.

use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};

use super::ConfigProblem;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDocument {
    pub defaults: Option<RawDefaults>,
    pub account: Option<RawAccount>,
    pub projects: Option<Vec<Spanned<RawProject>>>,
    pub webhooks: Option<RawWebhooks>,
    pub repositories: Option<Vec<Spanned<RawRepository>>>,
}

/// `[defaults]`: what every project entry starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub dry_run: Option<Spanned<bool>>,
    pub retry: Option<RawRetry>,
    pub reaper: Option<RawReaper>,
    pub start: Option<RawStart>,
}

/// `[account]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub hourly_retry_limit: Option<Spanned<i64>>,
    pub notify_gave_up: Option<Spanned<bool>>,
}

/// One `[[projects]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProject {
    pub name: Option<Spanned<String>>,
    pub dry_run: Option<Spanned<bool>>,
    pub retry: Option<RawRetry>,
    pub reaper: Option<RawReaper>,
    pub start: Option<RawStart>,
}

/// `[defaults.retry]` and `[projects.retry]`. Counts are read as `i64` so that a negative or
/// huge number gets a range message from the validator instead of a serde type error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub enabled: Option<Spanned<bool>>,
    pub classes: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_retries: Option<Spanned<i64>>,
    pub retry_timed_out: Option<Spanned<bool>>,
    pub backoff_seconds: Option<Spanned<i64>>,
    pub hourly_budget: Option<Spanned<i64>>,
    pub read_log_tail: Option<Spanned<bool>>,
    pub log_tail_lines: Option<Spanned<i64>>,
}

/// `[defaults.reaper]` and `[projects.reaper]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReaper {
    pub max_age_minutes: Option<Spanned<i64>>,
    pub supersede: Option<Spanned<bool>>,
    pub protected_branches: Option<Spanned<Vec<Spanned<String>>>>,
    pub excluded_initiators: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[defaults.start]` and `[projects.start]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStart {
    pub allowed_overrides: Option<Spanned<Vec<Spanned<String>>>>,
    pub environment_variable_names: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_timeout_minutes: Option<Spanned<i64>>,
}

/// `[webhooks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhooks {
    pub max_body_bytes: Option<Spanned<i64>>,
    pub allow_draft_pull_requests: Option<Spanned<bool>>,
    pub allow_fork_pull_requests: Option<Spanned<bool>>,
    pub secrets: Option<RawSecrets>,
}

/// `[webhooks.secrets]`: one list per provider (the keys are `Provider::as_str`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecrets {
    pub github: Option<Spanned<Vec<Spanned<String>>>>,
    pub gitlab: Option<Spanned<Vec<Spanned<String>>>>,
    pub bitbucket: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `[[repositories]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepository {
    pub provider: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub targets: Option<Vec<Spanned<RawTarget>>>,
}

/// One `[[repositories.targets]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub project: Option<Spanned<String>>,
    pub report_status: Option<Spanned<bool>>,
    pub allow_draft_pull_requests: Option<Spanned<bool>>,
    pub allow_fork_pull_requests: Option<Spanned<bool>>,
    pub filter_groups: Option<Spanned<Vec<RawFilterGroup>>>,
}

/// One filter group: filters that must all pass.
pub(super) type RawFilterGroup = Spanned<Vec<Spanned<RawFilter>>>;

/// One filter of a filter group (CodeBuild's `WebhookFilter`, in snake case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilter {
    #[serde(rename = "type")]
    pub filter_type: Option<Spanned<String>>,
    pub pattern: Option<Spanned<String>>,
    pub exclude_matched_pattern: Option<Spanned<bool>>,
}

/// Cleans one value of a nested key (reporting what it drops); `None` drops the key.
type Cleaner = for<'i> fn(
    Spanned<DeValue<'i>>,
    &str,
    &str,
    &mut Vec<ConfigProblem>,
) -> Option<Spanned<DeValue<'i>>>;

/// A table of the file, with the keys whose values are tables or arrays of tables themselves.
trait Section: DeserializeOwned {
    fn nested(_key: &str) -> Option<Cleaner> {
        None
    }
}

impl Section for RawDocument {
    fn nested(key: &str) -> Option<Cleaner> {
        match key {
            "defaults" => Some(clean_table::<RawDefaults>),
            "account" => Some(clean_table::<RawAccount>),
            "projects" => Some(clean_array_of_tables::<RawProject>),
            "webhooks" => Some(clean_table::<RawWebhooks>),
            "repositories" => Some(clean_array_of_tables::<RawRepository>),
            _ => None,
        }
    }
}

impl Section for RawWebhooks {
    fn nested(key: &str) -> Option<Cleaner> {
        (key == "secrets").then_some(clean_table::<RawSecrets> as Cleaner)
    }
}

impl Section for RawRepository {
    fn nested(key: &str) -> Option<Cleaner> {
        (key == "targets").then_some(clean_array_of_tables::<RawTarget> as Cleaner)
    }
}

impl Section for RawTarget {
    fn nested(key: &str) -> Option<Cleaner> {
        (key == "filter_groups").then_some(clean_filter_groups as Cleaner)
    }
}

impl Section for RawDefaults {
    fn nested(key: &str) -> Option<Cleaner> {
        policy_section(key)
    }
}

impl Section for RawProject {
    fn nested(key: &str) -> Option<Cleaner> {
        policy_section(key)
    }
}

/// The policy tables that `[defaults]` and every `[[projects]]` entry hold.
fn policy_section(key: &str) -> Option<Cleaner> {
    match key {
        "retry" => Some(clean_table::<RawRetry>),
        "reaper" => Some(clean_table::<RawReaper>),
        "start" => Some(clean_table::<RawStart>),
        _ => None,
    }
}

impl Section for RawAccount {}
impl Section for RawSecrets {}
impl Section for RawFilter {}
impl Section for RawRetry {}
impl Section for RawReaper {}
impl Section for RawStart {}

/// Reads `text`: the document when it is TOML (possibly with bad keys dropped), and every
/// problem found on the way. `None` only for a TOML syntax error.
pub(super) fn read_document(text: &str) -> (Option<RawDocument>, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let (tree, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree is a guess; checking its keys would report consequences of the
        // syntax error, not real problems.
        problems.extend(syntax_errors.iter().map(|error| ConfigProblem {
            line: error.span().map(|span| line_of(text, span.start)),
            path: String::new(),
            message: format!("invalid TOML: {}", error.message().trim()),
        }));
        return (None, problems);
    }
    let span = tree.span();
    let root = Spanned::new(span.clone(), DeValue::Table(tree.into_inner()));
    let Some(cleaned) = clean_table::<RawDocument>(root, "", text, &mut problems) else {
        return (None, problems);
    };
    match RawDocument::deserialize(ValueDeserializer::from(cleaned)) {
        Ok(document) => (Some(document), problems),
        Err(error) => {
            // Every key was checked on its own above, so this means a check missed something;
            // still a clear report rather than a panic.
            problems.push(problem_from_de(&error, span, "", text));
            (None, problems)
        }
    }
}

fn clean_table<'i, T: Section>(
    value: Spanned<DeValue<'i>>,
    path: &str,
    text: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Spanned<DeValue<'i>>> {
    let (span, table) = expect(value, as_table, "a table", path, text, problems)?;
    let mut kept = DeTable::new();
    for (key, item) in table {
        let key_path = join(path, key.get_ref());
        if let Some(clean_nested) = T::nested(key.get_ref()) {
            if let Some(item) = clean_nested(item, &key_path, text, problems) {
                kept.insert(key, item);
            }
            continue;
        }
        let mut alone = DeTable::new();
        alone.insert(key.clone(), item.clone());
        let alone = Spanned::new(key.span().start..item.span().end, DeValue::Table(alone));
        match T::deserialize(ValueDeserializer::from(alone)) {
            Ok(_) => {
                kept.insert(key, item);
            }
            Err(error) => problems.push(problem_from_de(&error, key.span(), &key_path, text)),
        }
    }
    Some(Spanned::new(span, DeValue::Table(kept)))
}

fn clean_array_of_tables<'i, T: Section>(
    value: Spanned<DeValue<'i>>,
    path: &str,
    text: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Spanned<DeValue<'i>>> {
    let expected = format!("an array of tables (`[[{path}]]`)");
    let (span, items) = expect(value, as_array, &expected, path, text, problems)?;
    let cleaned = clean_each_table::<T>(items, path, text, problems);
    Some(Spanned::new(span, DeValue::Array(cleaned)))
}

/// `filter_groups = [[{ type = …, pattern = … }, …], …]`: an array of arrays of filter tables,
/// each filter's keys checked like any table's. A group of the wrong type is reported and kept
/// as an empty group, so later groups keep the indexes a person counts.
fn clean_filter_groups<'i>(
    value: Spanned<DeValue<'i>>,
    path: &str,
    text: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Spanned<DeValue<'i>>> {
    let expected = "an array of filter groups (arrays of filter tables)";
    let (span, groups) = expect(value, as_array, expected, path, text, problems)?;
    let cleaned: DeArray<'i> = groups
        .into_iter()
        .enumerate()
        .map(|(index, group)| {
            let group_path = format!("{path}[{index}]");
            let group_span = group.span();
            let expected = "a filter group (an array of filter tables)";
            let filters = match expect(group, as_array, expected, &group_path, text, problems) {
                Some((_, filters)) => {
                    clean_each_table::<RawFilter>(filters, &group_path, text, problems)
                }
                None => DeArray::new(),
            };
            Spanned::new(group_span, DeValue::Array(filters))
        })
        .collect();
    Some(Spanned::new(span, DeValue::Array(cleaned)))
}

/// Cleans each table of an array (`path[0]`, `path[1]`, …). An entry that is no table becomes
/// an empty table, which keeps the later entries' indexes as the person counts them.
fn clean_each_table<'i, T: Section>(
    items: DeArray<'i>,
    path: &str,
    text: &str,
    problems: &mut Vec<ConfigProblem>,
) -> DeArray<'i> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let item_span = item.span();
            clean_table::<T>(item, &format!("{path}[{index}]"), text, problems)
                .unwrap_or_else(|| Spanned::new(item_span, DeValue::Table(DeTable::new())))
        })
        .collect()
}

/// The span and contents of `value` when `take` finds it the right kind; otherwise a "wrong
/// type" problem saying what was `expected`, and `None`.
fn expect<'i, C>(
    value: Spanned<DeValue<'i>>,
    take: fn(DeValue<'i>) -> Option<C>,
    expected: &str,
    path: &str,
    text: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(Range<usize>, C)> {
    let span = value.span();
    let kind = value.get_ref().type_str();
    let taken = take(value.into_inner());
    if taken.is_none() {
        problems.push(ConfigProblem {
            line: Some(line_of(text, span.start)),
            path: path.to_owned(),
            message: format!("wrong type: expected {expected}, got {kind}"),
        });
    }
    taken.map(|contents| (span, contents))
}

fn as_table(value: DeValue<'_>) -> Option<DeTable<'_>> {
    match value {
        DeValue::Table(table) => Some(table),
        _ => None,
    }
}

fn as_array(value: DeValue<'_>) -> Option<DeArray<'_>> {
    match value {
        DeValue::Array(array) => Some(array),
        _ => None,
    }
}

/// A serde error as a problem, with a person's wording for the two common cases.
fn problem_from_de(
    error: &toml::de::Error,
    fallback: Range<usize>,
    path: &str,
    text: &str,
) -> ConfigProblem {
    let at = error.span().unwrap_or(fallback).start;
    ConfigProblem {
        line: Some(line_of(text, at)),
        path: path.to_owned(),
        message: humanize(error.message()),
    }
}

/// `unknown field` → `unknown key`; `invalid type: X, expected i64` → `wrong type: expected an
/// integer, got X`.
fn humanize(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return format!(
            "unknown key {}",
            rest.replacen(", expected", "; expected", 1)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        let expected = match expected {
            "i64" | "u32" | "u64" => "an integer",
            "a sequence" => "an array",
            "a map" | "struct" => "a table",
            other => other,
        };
        return format!("wrong type: expected {expected}, got {got}");
    }
    message.to_owned()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
