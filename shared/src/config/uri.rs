//! [`ConfigUri`] from and to text: `file:`, `ssm:` and `s3:` addresses of the configuration.

use std::fmt;
use std::path::PathBuf;

use super::{ConfigError, ConfigUri};

/// The accepted forms, quoted in every error so the fix is in the message.
const ACCEPTED_FORMS: &str = "file:/absolute/path.toml, ssm:/parameter/name (or ssm:name), \
                              s3://bucket/key";

impl ConfigUri {
    /// Parses `file:/abs/path` (also `file:///abs/path`), `ssm:/param/name` or `ssm:name`, and
    /// `s3://bucket/key`.
    pub fn parse(text: &str) -> Result<ConfigUri, ConfigError> {
        let text = text.trim();
        let invalid = |reason: &str| ConfigError::InvalidUri {
            uri: text.to_owned(),
            reason: format!("{reason}; accepted forms: {ACCEPTED_FORMS}"),
        };
        let (scheme, rest) = text.split_once(':').ok_or_else(|| invalid("no scheme"))?;
        match scheme {
            "file" => parse_file(rest).ok_or_else(|| invalid("a file path must be absolute")),
            "ssm" => parse_ssm(rest).ok_or_else(|| invalid("an SSM parameter name is required")),
            "s3" => parse_s3(rest).ok_or_else(|| invalid("an S3 address needs a bucket and a key")),
            other => Err(invalid(&format!("unknown scheme `{other}`"))),
        }
    }
}

/// `file:/abs`, `file:///abs` or `file://localhost/abs`; relative paths are refused because a
/// Lambda's working directory is not something a configuration should depend on.
fn parse_file(rest: &str) -> Option<ConfigUri> {
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let slash = authority_and_path.find('/')?;
            let (host, path) = authority_and_path.split_at(slash);
            if !(host.is_empty() || host == "localhost") {
                return None;
            }
            path
        }
        None => rest,
    };
    path.starts_with('/')
        .then(|| ConfigUri::File(PathBuf::from(path)))
}

/// `ssm:/a/b` (a hierarchical name) or `ssm:name` (a flat one). SSM treats `name` and `/name` as
/// two different parameters, so the text is kept exactly as written.
fn parse_ssm(rest: &str) -> Option<ConfigUri> {
    let valid = !rest.is_empty() && rest != "/" && !rest.chars().any(char::is_whitespace);
    valid.then(|| ConfigUri::Ssm(rest.to_owned()))
}

/// `s3://bucket/key/with/slashes`.
fn parse_s3(rest: &str) -> Option<ConfigUri> {
    let (bucket, key) = rest.strip_prefix("//")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then(|| ConfigUri::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

impl fmt::Display for ConfigUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Ssm(name) => write!(f, "ssm:{name}"),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl std::str::FromStr for ConfigUri {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn accepted_forms_parse_and_print_back() {
        let cases = [
            (
                "file:/etc/autopilot.toml",
                ConfigUri::File("/etc/autopilot.toml".into()),
                "file:/etc/autopilot.toml",
            ),
            (
                "file:///etc/autopilot.toml",
                ConfigUri::File("/etc/autopilot.toml".into()),
                "file:/etc/autopilot.toml",
            ),
            (
                "file://localhost/etc/a.toml",
                ConfigUri::File("/etc/a.toml".into()),
                "file:/etc/a.toml",
            ),
            (
                "ssm:/autopilot/config",
                ConfigUri::Ssm("/autopilot/config".into()),
                "ssm:/autopilot/config",
            ),
            (
                "ssm:autopilot-config",
                ConfigUri::Ssm("autopilot-config".into()),
                "ssm:autopilot-config",
            ),
            (
                " s3://my-bucket/conf/autopilot.toml ",
                ConfigUri::S3 {
                    bucket: "my-bucket".into(),
                    key: "conf/autopilot.toml".into(),
                },
                "s3://my-bucket/conf/autopilot.toml",
            ),
        ];
        for (text, expected, printed) in cases {
            let uri = ConfigUri::parse(text).unwrap();
            assert_eq!(uri, expected, "{text}");
            assert_eq!(uri.to_string(), printed);
            assert_eq!(ConfigUri::parse(printed).unwrap(), expected, "round trip");
        }
    }

    #[test]
    fn everything_else_is_refused_naming_the_accepted_forms() {
        for text in [
            "",
            "autopilot.toml",
            "/etc/autopilot.toml",
            "file:relative.toml",
            "file://otherhost/etc/a.toml",
            "ssm:",
            "ssm:/",
            "ssm:with space",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3:bucket/key",
            "https://example.com/autopilot.toml",
        ] {
            let err = ConfigUri::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(ACCEPTED_FORMS), "{text}: {message}");
        }
        assert_eq!(
            ConfigUri::parse("http://x/y").unwrap_err().to_string(),
            format!(
                "invalid configuration URI `http://x/y`: unknown scheme `http`; accepted forms: \
                 {ACCEPTED_FORMS}"
            )
        );
    }
}
