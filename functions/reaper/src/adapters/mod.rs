//! The only code that knows the AWS SDK and HTTP: `Fleet` over EC2, the S3 archive, Slack.

pub mod bisect;
pub mod ec2;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod s3;
pub mod ses;
pub mod slack;

use crate::ports::{ApiError, ErrorKind};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// aws-config sets only a connect timeout by default; a hung read would hold a run past its
/// deadline. One attempt may take `ATTEMPT_TIMEOUT` (a 1000-instance DescribeInstances page is a
/// few MB), the whole operation with its retries `OPERATION_TIMEOUT`; each call is further held
/// to what the run's deadline leaves (`ports::Deadline::for_work`).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

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

/// An S3 client whose every call is counted.
pub(crate) fn s3_client(sdk: &aws_config::SdkConfig, calls: &CallCounter) -> aws_sdk_s3::Client {
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
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// Error codes that say "this caller may not", never "this instance may not": splitting a batch
/// cannot help.
const ACCOUNT_WIDE_CODES: &[&str] = &[
    "AuthFailure",
    "Blocked",
    "OptInRequired",
    "PendingVerification",
    "SignatureDoesNotMatch",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "ExpiredToken",
];

/// The instance refuses: termination or stop protection (EC2's code for both).
const PROTECTED_CODE: &str = "OperationNotPermitted";

/// Turns any SDK error into the report's `ApiError`, with the full context as the message. The
/// only place that reads AWS error codes to decide what kind of failure it is.
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
            let kind =
                if TRANSIENT_CODES.contains(&code.as_str()) || status.is_some_and(|s| s >= 500) {
                    ErrorKind::Transient
                } else if ACCOUNT_WIDE_CODES.contains(&code.as_str()) {
                    ErrorKind::AccountWide
                } else if code == PROTECTED_CODE {
                    ErrorKind::Protected
                } else {
                    ErrorKind::Instance
                };
            ApiError::new(code, message, kind)
        }
        // The request may have reached AWS: what happened is not known from here.
        SdkError::TimeoutError(_) => ApiError::new(
            "Timeout",
            DisplayErrorContext(&err).to_string(),
            ErrorKind::Lost,
        ),
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() || d.is_other() => {
            ApiError::new(
                "Transport",
                DisplayErrorContext(&err).to_string(),
                ErrorKind::Lost,
            )
        }
        SdkError::ResponseError(_) => ApiError::new(
            "Transport",
            DisplayErrorContext(&err).to_string(),
            ErrorKind::Lost,
        ),
        // A dispatch failure of another sort (the user's configuration) never left the client.
        SdkError::DispatchFailure(_) => ApiError::new(
            "Transport",
            DisplayErrorContext(&err).to_string(),
            ErrorKind::Transient,
        ),
        _ => ApiError::new(
            "Client",
            DisplayErrorContext(&err).to_string(),
            ErrorKind::AccountWide,
        ),
    }
}

/// A call that did not finish before the run's deadline allowed: its answer is lost.
pub(crate) fn deadline_error(what: &str, after: Duration) -> ApiError {
    ApiError::new(
        "Timeout",
        format!(
            "{what} did not answer within the {} s the run's deadline left",
            after.as_secs()
        ),
        ErrorKind::Lost,
    )
}

/// Runs `fut` within what the run's deadline leaves for work; past it, the answer is lost.
pub(crate) async fn within<T>(
    what: &str,
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match limit {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(deadline_error(what, limit))),
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
