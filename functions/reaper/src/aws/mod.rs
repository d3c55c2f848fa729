//! The only module that knows the AWS SDK.

pub mod ec2;
pub mod s3;
pub mod ses;

use crate::fleet::ApiError;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Error codes that mean "try again later", not "this instance is the problem".
const TRANSIENT_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "SlowDown",
];

/// Retries: the SDK's adaptive mode (client-side rate limiting + backoff) with headroom for a
/// throttled account; every attempt is counted by `CallCounter`.
pub fn retry_config() -> RetryConfig {
    RetryConfig::adaptive().with_max_attempts(8)
}

/// Counts every attempt of every operation, retries included: the real API cost of a run.
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn record(&self, operation: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(operation.to_string()).or_default() += 1;
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let name = cfg.load::<Metadata>().map_or("unknown", |m| m.name());
        self.record(name);
        Ok(())
    }
}

/// An EC2 client whose every call is counted.
pub fn ec2_client(sdk: &aws_config::SdkConfig, calls: &CallCounter) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::config::Builder::from(sdk)
        .interceptor(calls.clone())
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// An S3 client whose every call is counted.
pub fn s3_client(sdk: &aws_config::SdkConfig, calls: &CallCounter) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).interceptor(calls.clone());
    // Path-style only when an endpoint override (a local emulator) is in use.
    if sdk.endpoint_url().is_some() {
        conf = conf.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// Loads the SDK configuration from the default chain with the reaper's retry policy.
pub async fn load_sdk_config(
    region: Option<String>,
    profile: Option<String>,
) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry_config());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// Turns any SDK error into the report's `ApiError`, with the full context as the message.
pub fn api_error<E>(err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown").to_string();
            let message = inner
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            let transient =
                TRANSIENT_CODES.contains(&code.as_str()) || status.is_some_and(|s| s >= 500);
            ApiError {
                code,
                message,
                transient,
            }
        }
        SdkError::TimeoutError(_) => ApiError {
            code: "Timeout".into(),
            message: DisplayErrorContext(&err).to_string(),
            transient: true,
        },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ApiError {
            code: "Transport".into(),
            message: DisplayErrorContext(&err).to_string(),
            transient: true,
        },
        _ => ApiError {
            code: "Client".into(),
            message: DisplayErrorContext(&err).to_string(),
            transient: false,
        },
    }
}

/// The account the credentials belong to (one STS call).
pub async fn account_id(sdk: &aws_config::SdkConfig) -> Result<String, ApiError> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(api_error)?;
    Ok(out.account().unwrap_or("unknown").to_string())
}

/// The regions enabled for the account (DescribeRegions lists only those by default).
pub async fn enabled_regions(sdk: &aws_config::SdkConfig) -> Result<Vec<String>, ApiError> {
    let out = aws_sdk_ec2::Client::new(sdk)
        .describe_regions()
        .send()
        .await
        .map_err(api_error)?;
    let mut regions: Vec<String> = out
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    regions.sort();
    Ok(regions)
}
