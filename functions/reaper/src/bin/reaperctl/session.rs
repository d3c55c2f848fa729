//! What every command needs before it works: the rules from this shell's environment, usable
//! credentials and a region, and one way to say that something is wrong.

use reaper::adapters::{check_credentials, check_profile, load_sdk_config};
use reaper::config::Config;
use std::process::ExitCode;

pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    anstream::eprintln!("reaperctl: {msg}");
    ExitCode::from(2)
}

/// The SDK configuration for `region` (every client, STS included, is built from it), after the
/// profile and the credentials are known to be usable: a person reads one sentence, not the
/// error chain of every credential provider the SDK tried.
pub(crate) async fn sdk_for(
    region: Option<String>,
    profile: Option<String>,
) -> Result<aws_config::SdkConfig, ExitCode> {
    check_profile(profile.as_deref()).await.map_err(fail)?;
    let sdk = load_sdk_config(region, profile).await;
    check_credentials(&sdk).await.map_err(fail)?;
    Ok(sdk)
}

/// Rules from the environment, as the Lambda reads them, and the owner notices' sinks
/// (SLACKWEBHOOK, SLACKWEBHOOK_SECRET_ARN, NOTICE_FROM): a live sweep from a laptop tells the
/// owners what the Lambda would. LIVEMODE and REPORT_BUCKET do not apply to a laptop.
pub(crate) fn rules_config() -> Result<Config, String> {
    let laptop =
        std::env::vars().filter(|(name, _)| !matches!(name.as_str(), "LIVEMODE" | "REPORT_BUCKET"));
    // from_vars: a misspelt variable (MAX_TERMINATION=0) is a warning in every report.
    Config::from_vars(laptop).map_err(|err| format!("configuration error: {err}"))
}
