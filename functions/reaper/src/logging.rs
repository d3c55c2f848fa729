//! Log lines (tracing). Inside a run every line carries the run id (from the `run` span).
//!
//! The level and format follow the function's `LoggingConfig` as Lambda passes it:
//! `AWS_LAMBDA_LOG_LEVEL` first, then `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=Text` gives
//! plain text, anything else JSON lines (SPEC §8: logs are JSON lines). The runtime's own
//! `init_default_subscriber` reads the same variables but writes text unless told JSON and drops
//! the timestamp, which the report's log line needs beside it.

//!
//! The filter is `Targets` (`level` or `target=level`, comma-separated), not `EnvFilter`: the
//! same directives the function is ever given, without a regex engine in the zip.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    init_with(|name| std::env::var(name).ok());
}

/// The SDK's own chatter stays at warn unless RUST_LOG names it.
const QUIET: [(&str, LevelFilter); 2] = [
    ("aws_config", LevelFilter::WARN),
    ("aws_smithy_runtime", LevelFilter::WARN),
];

/// The filter, and what was refused (said once on stderr: logging is not up yet).
fn filter(lookup: &impl Fn(&str) -> Option<String>) -> (Targets, Option<String>) {
    let quiet = |level: LevelFilter| Targets::new().with_targets(QUIET).with_default(level);
    match lookup("AWS_LAMBDA_LOG_LEVEL").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<LevelFilter>() {
            Ok(level) => (quiet(level), None),
            Err(_) => (
                quiet(LevelFilter::INFO),
                Some(format!("AWS_LAMBDA_LOG_LEVEL={v:?} is not a level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL or OFF); logging at INFO")),
            ),
        },
        None => match lookup("RUST_LOG").filter(|v| !v.is_empty()) {
            None => (quiet(LevelFilter::INFO), None),
            Some(v) => match v.parse::<Targets>() {
                Ok(targets) => (targets, None),
                Err(_) => (
                    quiet(LevelFilter::INFO),
                    Some(format!("RUST_LOG={v:?} is not a list of `level` or `target=level` directives (e.g. debug,aws_smithy_runtime=warn); logging at INFO")),
                ),
            },
        },
    }
}

fn init_with(lookup: impl Fn(&str) -> Option<String>) {
    let (filter, refused) = filter(&lookup);
    if let Some(refused) = refused {
        eprintln!("{refused}");
    }
    let text = lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
    let _ = if text {
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .with(filter)
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_target(false)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .with(filter)
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_log_level_wins_over_rust_log() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let (f, refused) = filter(&env(&[
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("RUST_LOG", "error"),
        ]));
        assert_eq!(
            (f.default_level(), refused),
            (Some(LevelFilter::DEBUG), None)
        );
        assert!(!f.would_enable("aws_smithy_runtime::client", &tracing::Level::INFO));
        let (f, _) = filter(&env(&[("RUST_LOG", "error")]));
        assert_eq!(f.default_level(), Some(LevelFilter::ERROR));
        let (f, _) = filter(&env(&[("RUST_LOG", "info,aws_smithy_runtime=debug")]));
        assert!(f.would_enable("aws_smithy_runtime::client", &tracing::Level::DEBUG));
        let (f, _) = filter(&env(&[]));
        assert_eq!(f.default_level(), Some(LevelFilter::INFO));
    }

    /// Bad input is said, not silently replaced.
    #[test]
    fn a_level_that_is_not_one_is_said_and_info_is_used() {
        let (f, refused) =
            filter(&|name: &str| (name == "RUST_LOG").then(|| "aws=loud".to_string()));
        assert_eq!(f.default_level(), Some(LevelFilter::INFO));
        assert!(refused
            .unwrap()
            .starts_with("RUST_LOG=\"aws=loud\" is not a list"));
        let (_, refused) =
            filter(&|name: &str| (name == "AWS_LAMBDA_LOG_LEVEL").then(|| "loud".to_string()));
        assert!(refused.unwrap().contains("is not a level"));
    }
}
