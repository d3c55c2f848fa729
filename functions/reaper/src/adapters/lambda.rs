//! The deployed function's own configuration (Lambda `GetFunctionConfiguration`): `reaperctl
//! extend` holds an owner to the MAX_LIFETIME the reaper enforces, not the laptop's.

use super::{api_error, within};
use crate::ports::{ApiError, ErrorKind};
use std::collections::BTreeMap;
use std::time::Duration;

/// The function name the templates deploy.
pub const DEFAULT_FUNCTION: &str = "ec2-reaper";

/// The environment variables of function `name` (one call). A function whose environment Lambda
/// could not decrypt is an error, never an empty environment.
pub async fn function_environment(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    let call = async {
        aws_sdk_lambda::Client::new(sdk)
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(api_error)
    };
    let out = within(
        "lambda:GetFunctionConfiguration",
        Some(Duration::from_secs(30)),
        call,
    )
    .await?;
    let Some(env) = out.environment() else {
        return Ok(BTreeMap::new());
    };
    if let Some(err) = env.error() {
        return Err(ApiError::new(
            err.error_code().unwrap_or("EnvironmentError"),
            err.message()
                .unwrap_or("Lambda could not read the function's environment")
                .to_string(),
            ErrorKind::AccountWide,
        ));
    }
    Ok(env
        .variables()
        .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}
