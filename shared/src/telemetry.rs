//! Logging set-up: JSON lines for CloudWatch, level from Lambda's or the usual variable.

use tracing_subscriber::EnvFilter;

/// The level used when neither variable is set.
const DEFAULT_LEVEL: &str = "info";

/// The filter directive: `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls) wins over
/// `RUST_LOG`, which wins over `info`.
pub fn filter_directive(lambda_level: Option<String>, rust_log: Option<String>) -> String {
    lambda_level
        .filter(|s| !s.is_empty())
        .map(|level| level.to_ascii_lowercase())
        .or(rust_log.filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_LEVEL.to_owned())
}

/// True unless Lambda's `AWS_LAMBDA_LOG_FORMAT` asks for `Text`: JSON is our default because
/// CloudWatch Logs Insights queries the fixed field names.
pub fn wants_json(log_format: Option<&str>) -> bool {
    !log_format.is_some_and(|f| f.eq_ignore_ascii_case("text"))
}

/// Installs the global subscriber (JSON lines unless `AWS_LAMBDA_LOG_FORMAT=Text`). Safe to call
/// twice (the second call does nothing), so tests and binaries can both call it.
pub fn init() {
    let directive = filter_directive(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok(),
        std::env::var("RUST_LOG").ok(),
    );
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVEL));
    // Lambda stamps every line itself; the target adds noise without meaning to operators.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time()
        .with_target(false);
    let _already_set = if wants_json(std::env::var("AWS_LAMBDA_LOG_FORMAT").ok().as_deref()) {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// Error texts in a decision line are cut to this many characters: a parse error may quote the
/// input, and an input (a queued message, an event) is never logged whole.
pub const MAX_LOGGED_ERROR_CHARS: usize = 300;

/// `text` cut to `limit` characters (an ellipsis marks the cut), for log fields.
pub fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_level_wins_then_rust_log_then_default() {
        assert_eq!(
            filter_directive(Some("DEBUG".into()), Some("warn".into())),
            "debug"
        );
        assert_eq!(
            filter_directive(None, Some("autopilot=trace".into())),
            "autopilot=trace"
        );
        assert_eq!(filter_directive(Some(String::new()), None), "info");
        assert_eq!(filter_directive(None, None), "info");
    }

    #[test]
    fn json_unless_lambda_asks_for_text() {
        assert!(wants_json(None));
        assert!(wants_json(Some("JSON")));
        assert!(!wants_json(Some("Text")));
    }
}
