//! The IAM bound on which projects may be configured at all.
//!
//! The template parameter `ProjectNamePatterns` is used twice: in the functions' IAM policies
//! (CodeBuild calls are only allowed on those project ARNs) and, through the environment variable
//! [`PROJECT_PATTERNS_ENV`], here. A configured project outside the bound could never be acted
//! on (every call would be denied), so the validator refuses it up front.

use super::{ConfigError, ProjectPattern};

/// The environment variable holding the bound, comma-separated (`web-*,api-prod`; `*` = all).
pub const PROJECT_PATTERNS_ENV: &str = "AUTOPILOT_PROJECT_PATTERNS";

/// The project names IAM lets the functions act on.
#[derive(Debug, Clone)]
pub struct AllowedProjects {
    patterns: Vec<ProjectPattern>,
}

impl AllowedProjects {
    /// Every project (`*`).
    pub fn all() -> Self {
        // `*` always compiles; were it ever to fail, the bound would allow nothing (fail closed)
        // rather than panic.
        Self {
            patterns: ProjectPattern::new("*").into_iter().collect(),
        }
    }

    /// Parses comma-separated names or globs; blanks around items are ignored. An empty list is
    /// an error: it would allow nothing, which is never what a deployment means.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidAllowedProjects {
            patterns: text.to_owned(),
            reason,
        };
        let patterns = text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                ProjectPattern::new(item)
                    .map_err(|err| invalid(format!("`{item}` is not a valid glob: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err(invalid(
                "no pattern given (use `*` to allow every project)".into(),
            ));
        }
        Ok(Self { patterns })
    }

    /// Reads [`PROJECT_PATTERNS_ENV`]. Unset is an error rather than "all": the template always
    /// sets it, so its absence means a mis-wired function.
    pub fn from_env() -> Result<Self, ConfigError> {
        let text = std::env::var(PROJECT_PATTERNS_ENV).map_err(|_| ConfigError::MissingEnv {
            name: PROJECT_PATTERNS_ENV,
        })?;
        Self::parse(&text)
    }

    /// The patterns, as configured.
    pub fn patterns(&self) -> &[ProjectPattern] {
        &self.patterns
    }

    /// True when `project` (a name) is inside the bound.
    pub fn allows(&self, project: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(project))
    }

    /// `Ok` when every project `pattern` can match is inside the bound; otherwise why not, for a
    /// person. A glob is only accepted when that is certain (see [`covers`]).
    pub fn check(&self, pattern: &ProjectPattern) -> Result<(), String> {
        let listed = || {
            self.patterns
                .iter()
                .map(|p| format!("`{}`", p.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if pattern.is_exact() {
            return if self.allows(pattern.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "project `{}` is outside ProjectNamePatterns ({}); IAM would deny every call \
                     on it",
                    pattern.as_str(),
                    listed()
                ))
            };
        }
        if self.patterns.iter().any(|allowed| covers(allowed, pattern)) {
            return Ok(());
        }
        Err(format!(
            "glob `{}` is not certainly inside ProjectNamePatterns ({}); a glob is accepted only \
             when an allowed pattern is `*`, the same glob, or a `prefix*`/`*suffix`/`prefix*suffix` \
             that every match of it starts/ends with; list exact names or narrow the glob",
            pattern.as_str(),
            listed()
        ))
    }
}

/// Characters that make a pattern a glob (globset syntax; CodeBuild names contain none of them).
const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// True when `outer` certainly matches every name `inner` matches. Decided only for shapes
/// where it is simple and sure; anything else is "not certain" (false), because an answer of
/// "covered" that is wrong would configure a project IAM denies.
///
/// `outer` may be: `*`; the same text as `inner`; an exact name (covers only itself, handled by
/// the caller); or one `*` with literal text around it (`P*`, `*S`, `P*S`). `inner` is covered by
/// `P*S` when the literal text before its first wildcard starts with `P` and the literal text
/// after its last wildcard ends with `S` (those two stretches never overlap in a match, so every
/// match is at least `|P| + |S|` long).
pub fn covers(outer: &ProjectPattern, inner: &ProjectPattern) -> bool {
    let (outer, inner) = (outer.as_str(), inner.as_str());
    if outer == inner || outer.chars().all(|c| c == '*') && !outer.is_empty() {
        return true;
    }
    let Some((prefix, suffix)) = outer.split_once('*') else {
        // An exact outer name covers only an identical exact inner (handled above).
        return false;
    };
    if prefix.contains(GLOB_META) || suffix.contains(GLOB_META) {
        return false;
    }
    match (inner.find(GLOB_META), inner.rfind(GLOB_META)) {
        (Some(first), Some(last)) => {
            inner[..first].starts_with(prefix) && inner[last + 1..].ends_with(suffix)
        }
        // An exact inner name: the outer glob decides.
        _ => outer_matches_exact(prefix, suffix, inner),
    }
}

fn outer_matches_exact(prefix: &str, suffix: &str, name: &str) -> bool {
    name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn p(text: &str) -> ProjectPattern {
        ProjectPattern::new(text).unwrap()
    }

    #[test]
    fn parse_splits_trims_and_refuses_nothing() {
        let allowed = AllowedProjects::parse(" web-* , api-prod,,").unwrap();
        let texts: Vec<_> = allowed.patterns().iter().map(|p| p.as_str()).collect();
        assert_eq!(texts, ["web-*", "api-prod"]);
        assert!(allowed.allows("web-frontend"));
        assert!(allowed.allows("api-prod"));
        assert!(!allowed.allows("api-staging"));

        assert!(AllowedProjects::parse("").is_err());
        assert!(AllowedProjects::parse(" , ").is_err());
        let err = AllowedProjects::parse("web-[").unwrap_err().to_string();
        assert!(err.contains("`web-[` is not a valid glob"), "{err}");
        assert!(AllowedProjects::parse("*").unwrap().allows("anything"));
    }

    #[test]
    fn coverage_table() {
        // (allowed, configured, covered)
        let cases = [
            ("*", "anything-*", true),
            ("*", "x?y", true),
            ("**", "web-*", true),
            ("web-*", "web-*", true),
            ("web-*", "web-api-*", true),
            ("web-*", "web-?", true),
            ("web-*", "web-a*-prod", true),
            ("web-*", "web*", false),
            ("web-*", "*-web-*", false),
            ("*-prod", "api-*-prod", true),
            ("*-prod", "api-*", false),
            ("web-*-prod", "web-api-*-prod", true),
            ("web-*-prod", "web-*", false),
            // Two wildcards in the allowed pattern: not decided, so refused.
            ("web-*-*", "web-a-*", false),
            ("web-?", "web-?", true),
            ("web-?", "web-*", false),
            ("web-[ab]", "web-a*", false),
            // An exact allowed name never covers a glob.
            ("web-api", "web-*", false),
            // Exact configured names through an outer glob.
            ("web-*", "web-api", true),
            ("web-*-prod", "web-prod", false),
            ("web-*", "api", false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(covers(&p(outer), &p(inner)), expected, "{outer} ⊇ {inner}?");
        }
    }

    #[test]
    fn check_explains_refusals() {
        let allowed = AllowedProjects::parse("web-*,api-prod").unwrap();
        assert!(allowed.check(&p("web-api")).is_ok());
        assert!(allowed.check(&p("api-prod")).is_ok());
        assert!(allowed.check(&p("web-api-*")).is_ok());

        let exact = allowed.check(&p("billing")).unwrap_err();
        assert_eq!(
            exact,
            "project `billing` is outside ProjectNamePatterns (`web-*`, `api-prod`); IAM would \
             deny every call on it"
        );
        let glob = allowed.check(&p("api-*")).unwrap_err();
        assert!(
            glob.starts_with("glob `api-*` is not certainly inside ProjectNamePatterns"),
            "{glob}"
        );
    }
}
