//! Reading a function's deployment settings from its environment, the same way for every
//! function: empty values count as unset (templates often pass `""` for "not given"), and every
//! error names its variable. Each function's settings type (`AutoRetrySettings`,
//! `ReaperSettings`, `StarterSettings`, `WebhookSettings`) says which variables it reads; [`Env`]
//! says how.

use std::time::Duration;

/// A setting that is missing or unreadable; always names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required variable is unset or empty.
    #[error("{variable} is required")]
    Missing {
        /// The variable.
        variable: &'static str,
    },
    /// A variable's value cannot be read as what it must be.
    #[error("{variable}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// The variables of one environment, read through `lookup` (the process environment, or a map
/// in tests).
pub(crate) struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// An environment read through `lookup`.
    pub(crate) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The variable's value as set; `None` when unset or blank.
    pub(crate) fn text(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable).filter(|value| !value.trim().is_empty())
    }

    /// The variable's value, or `default` when unset.
    pub(crate) fn text_or(&self, variable: &str, default: &str) -> String {
        self.text(variable).unwrap_or_else(|| default.to_owned())
    }

    /// The variable's value; [`SettingsError::Missing`] when unset.
    pub(crate) fn required(&self, variable: &'static str) -> Result<String, SettingsError> {
        self.text(variable)
            .ok_or(SettingsError::Missing { variable })
    }

    /// A whole number (`expected` says what of, for the error), or `default` when unset.
    pub(crate) fn whole_number(
        &self,
        variable: &'static str,
        default: u32,
        expected: &'static str,
    ) -> Result<u32, SettingsError> {
        self.text(variable)
            .map_or(Ok(default), |value| parse_u32(variable, &value, expected))
    }

    /// Whole seconds, or `default` when unset.
    pub(crate) fn seconds(
        &self,
        variable: &'static str,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        match self.text(variable) {
            None => Ok(default),
            Some(value) => parse_u32(variable, &value, "whole seconds")
                .map(|seconds| Duration::from_secs(u64::from(seconds))),
        }
    }

    /// A switch (`true`/`false`, `1`/`0`, `yes`/`no`, any case), or `default` when unset.
    pub(crate) fn switch(
        &self,
        variable: &'static str,
        default: bool,
    ) -> Result<bool, SettingsError> {
        self.text(variable)
            .map_or(Ok(default), |value| parse_bool(variable, &value))
    }
}

/// A whole number from an environment variable, or an error naming it.
fn parse_u32(
    variable: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<u32, SettingsError> {
    value.trim().parse().map_err(|_| SettingsError::Invalid {
        variable,
        value: value.to_owned(),
        expected,
    })
}

/// A switch from an environment variable, or an error naming it.
fn parse_bool(variable: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(SettingsError::Invalid {
            variable,
            value: value.to_owned(),
            expected: "true or false",
        }),
    }
}

/// A lookup over `pairs`, for the settings types' tests.
#[cfg(test)]
pub(crate) fn lookup_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let env: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name| env.get(name).cloned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn blank_values_count_as_unset() {
        let env = Env::new(lookup_from(&[("A", " "), ("B", "x")]));
        assert_eq!(env.text("A"), None);
        assert_eq!(env.text_or("A", "*"), "*");
        assert_eq!(
            env.required("A"),
            Err(SettingsError::Missing { variable: "A" })
        );
        assert_eq!(env.required("B").unwrap(), "x");
        assert_eq!(
            env.seconds("A", Duration::from_secs(7)).unwrap(),
            Duration::from_secs(7)
        );
        assert!(env.switch("A", true).unwrap());
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let env = Env::new(lookup_from(&[("S", " 5 "), ("B", "No"), ("N", "x")]));
        assert_eq!(
            env.seconds("S", Duration::ZERO).unwrap(),
            Duration::from_secs(5)
        );
        assert!(!env.switch("B", true).unwrap());
        assert_eq!(
            env.whole_number("N", 1, "a whole number").unwrap_err(),
            SettingsError::Invalid {
                variable: "N",
                value: "x".into(),
                expected: "a whole number",
            }
        );
        assert!(
            env.switch("N", false)
                .unwrap_err()
                .to_string()
                .contains("N=\"x\"")
        );
    }
}
