//! What can be wrong with a configuration's address, its IAM bound, or its text.

use std::fmt;

/// A configuration URI or the allowed-project bound could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not one of the accepted URI forms.
    #[error("invalid configuration URI `{uri}`: {reason}")]
    InvalidUri {
        /// The text as given.
        uri: String,
        /// Why, with the accepted forms.
        reason: String,
    },
    /// The allowed-project bound (`ProjectNamePatterns`) is empty or holds an invalid glob.
    #[error("invalid allowed project patterns `{patterns}`: {reason}")]
    InvalidAllowedProjects {
        /// The text as given.
        patterns: String,
        /// Why.
        reason: String,
    },
    /// A required environment variable is not set.
    #[error("environment variable {name} is not set")]
    MissingEnv {
        /// The variable.
        name: &'static str,
    },
}

/// One problem found in a configuration text: where (line and key path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line, when the TOML parser could tell it.
    pub line: Option<usize>,
    /// The key path, as `projects[2].retry.max_retries` (array indexes start at 0); empty for a
    /// problem with the whole text (a TOML syntax error).
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration text, in the order of the text. Displayed one per
/// line, which is exactly what `autopilot config validate` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    problems: Vec<ConfigProblem>,
}

impl ConfigErrors {
    /// The errors of `problems`, ordered by line (problems without a line last, in the order
    /// found); `None` when there are none.
    pub fn from_problems(mut problems: Vec<ConfigProblem>) -> Option<Self> {
        // A stable sort keeps the order of discovery among problems on the same line.
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        (!problems.is_empty()).then_some(Self { problems })
    }

    /// Errors of exactly one problem.
    pub fn one(problem: ConfigProblem) -> Self {
        Self {
            problems: vec![problem],
        }
    }

    /// The problems.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// Always false (there is at least one problem); here for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
