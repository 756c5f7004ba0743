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

/// Installs the global JSON subscriber. Safe to call twice (the second call does nothing), so
/// tests and binaries can both call it.
pub fn init() {
    let directive = filter_directive(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok(),
        std::env::var("RUST_LOG").ok(),
    );
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVEL));
    let _already_set = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        // Lambda stamps every line itself; the target adds noise without meaning to operators.
        .without_time()
        .with_target(false)
        .with_current_span(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_level_wins_then_rust_log_then_default() {
        assert_eq!(filter_directive(Some("DEBUG".into()), Some("warn".into())), "debug");
        assert_eq!(filter_directive(None, Some("autopilot=trace".into())), "autopilot=trace");
        assert_eq!(filter_directive(Some(String::new()), None), "info");
        assert_eq!(filter_directive(None, None), "info");
    }
}
