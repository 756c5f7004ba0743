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
}

/// `[defaults]`: what every project entry starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub dry_run: Option<Spanned<bool>>,
    pub retry: Option<RawRetry>,
    pub reaper: Option<RawReaper>,
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
            _ => None,
        }
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
        _ => None,
    }
}

impl Section for RawAccount {}
impl Section for RawRetry {}
impl Section for RawReaper {}

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
    let span = value.span();
    let kind = value.get_ref().type_str();
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(ConfigProblem {
            line: Some(line_of(text, span.start)),
            path: path.to_owned(),
            message: format!("wrong type: expected a table, got {kind}"),
        });
        return None;
    };
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
    let span = value.span();
    let kind = value.get_ref().type_str();
    let DeValue::Array(items) = value.into_inner() else {
        problems.push(ConfigProblem {
            line: Some(line_of(text, span.start)),
            path: path.to_owned(),
            message: format!("wrong type: expected an array of tables (`[[{path}]]`), got {kind}"),
        });
        return None;
    };
    let cleaned: DeArray<'i> = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let item_span = item.span();
            clean_table::<T>(item, &format!("{path}[{index}]"), text, problems)
                // An empty table keeps the later entries' indexes as the person counts them.
                .unwrap_or_else(|| Spanned::new(item_span, DeValue::Table(DeTable::new())))
        })
        .collect();
    Some(Spanned::new(span, DeValue::Array(cleaned)))
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
