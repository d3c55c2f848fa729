//! Log lines (tracing). Inside a run every line carries the run id (from the `run` span).
//!
//! The level and format follow the function's `LoggingConfig` as Lambda passes it:
//! `AWS_LAMBDA_LOG_LEVEL` first, then `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=Text` gives
//! plain text, anything else JSON lines (SPEC §8: logs are JSON lines). The runtime's own
//! `init_default_subscriber` reads the same variables but writes text unless told JSON and drops
//! the timestamp, which the report's log line needs beside it.

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

pub fn init() {
    init_with(|name| std::env::var(name).ok());
}

fn filter(lookup: &impl Fn(&str) -> Option<String>) -> EnvFilter {
    // The SDK's own chatter stays at warn unless asked for by RUST_LOG directives.
    let quiet = "aws_config=warn,aws_smithy_runtime=warn";
    match lookup("AWS_LAMBDA_LOG_LEVEL").filter(|v| !v.is_empty()) {
        Some(level) => {
            let level = level.parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
            EnvFilter::new(format!("{level},{quiet}"))
        }
        None => lookup("RUST_LOG")
            .and_then(|v| EnvFilter::try_new(v).ok())
            .unwrap_or_else(|| EnvFilter::new(format!("info,{quiet}"))),
    }
}

fn init_with(lookup: impl Fn(&str) -> Option<String>) {
    let filter = filter(&lookup);
    let text = lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
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
        let f = filter(&env(&[
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("RUST_LOG", "error"),
        ]));
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
        let f = filter(&env(&[("RUST_LOG", "error")]));
        assert_eq!(f.max_level_hint(), Some(LevelFilter::ERROR));
        let f = filter(&env(&[]));
        assert_eq!(f.max_level_hint(), Some(LevelFilter::INFO));
    }
}
