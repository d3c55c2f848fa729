//! The only code that knows the AWS SDK and HTTP: `Fleet` over EC2, the S3 archive, Slack.

pub(crate) mod bisect;
pub mod cloudformation;
pub mod ec2;
pub mod folder;
pub mod lambda;
pub mod member;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod pricing;
pub mod s3;
pub mod ses;
pub mod slack;

use crate::ports::{ApiError, ErrorKind};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
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
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

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

    pub(crate) fn record(&self, operation: &str) {
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

/// A Secrets Manager client for the secret `arn`, in the secret's own region (an Organization
/// shares one secret with functions in every region; Secrets Manager answers only where it lives),
/// every call counted by `calls`.
pub(crate) fn secrets_client_for(
    sdk: &aws_config::SdkConfig,
    calls: &CallCounter,
    arn: &str,
) -> aws_sdk_secretsmanager::Client {
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(calls.clone());
    // `arn:<partition>:secretsmanager:<region>:…`; the configuration has checked the form.
    if let Some(region) = arn.split(':').nth(3).filter(|r| !r.is_empty()) {
        conf = conf.region(aws_types::region::Region::new(region.to_string()));
    }
    aws_sdk_secretsmanager::Client::from_conf(conf.build())
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

/// Every region of every partition, as the SDK's endpoint partitions list them (aws-sdk-ec2
/// 1.274, `endpoint_lib.rs`; refresh with the SDK). The SDK itself resolves any name that fits a
/// partition's pattern, so without this list a typo reached AWS as a host that does not exist.
pub(crate) const PARTITION_REGIONS: &[(&str, &[&str])] = &[
    (
        "aws",
        &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    ),
    ("aws-cn", &["cn-north-1", "cn-northwest-1"]),
    ("aws-eusc", &["eusc-de-east-1"]),
    ("aws-iso", &["us-iso-east-1", "us-iso-west-1"]),
    ("aws-iso-b", &["us-isob-east-1", "us-isob-west-1"]),
    ("aws-iso-e", &["eu-isoe-west-1"]),
    ("aws-iso-f", &["us-isof-east-1", "us-isof-south-1"]),
    ("aws-us-gov", &["us-gov-east-1", "us-gov-west-1"]),
];

/// `Ok` for a region some partition lists; otherwise one sentence naming the closest one.
pub fn check_region(region: &str) -> Result<(), String> {
    let all = PARTITION_REGIONS
        .iter()
        .flat_map(|(_, regions)| regions.iter());
    if all.clone().any(|r| *r == region) {
        return Ok(());
    }
    let lower = region.to_ascii_lowercase();
    let closest = all
        .map(|r| (strsim::damerau_levenshtein(&lower, r), *r))
        .filter(|(d, _)| *d <= 3)
        .min();
    Err(match closest {
        Some((_, r)) => format!("unknown region '{region}'; did you mean {r}?"),
        None => format!(
            "unknown region '{region}'; a region is named like eu-west-1 (`aws ec2 describe-regions` lists your account's)"
        ),
    })
}

/// `Err` in one sentence when the profile that will be used (`--profile`, else `AWS_PROFILE`)
/// is in neither AWS file: the SDK would otherwise fall through to the instance metadata service
/// and fail with a page of connector errors.
pub async fn check_profile(flag: Option<&str>) -> Result<(), String> {
    let from_env = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let (name, via) = match (flag, from_env) {
        (Some(p), _) => (p.to_string(), ""),
        (None, Some(p)) => (p, " (AWS_PROFILE)"),
        (None, None) => return Ok(()),
    };
    let set = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &aws_runtime::env_config::file::EnvConfigFiles::default(),
        None,
    )
    .await
    .map_err(|err| {
        format!(
            "the AWS config files could not be read: {}",
            crate::text::oneline(&err.to_string())
        )
    })?;
    if set.get_profile(&name).is_some() {
        Ok(())
    } else {
        Err(format!(
            "profile '{name}'{via} is not in ~/.aws/config or ~/.aws/credentials"
        ))
    }
}

/// Resolves the credentials once before any call, so that a missing or expired one is one
/// sentence instead of the error chain of every provider the default chain tried.
pub async fn check_credentials(sdk: &aws_config::SdkConfig) -> Result<(), String> {
    use aws_credential_types::provider::{error::CredentialsError, ProvideCredentials};
    let Some(provider) = sdk.credentials_provider() else {
        return Err("no AWS credentials are configured; run `aws configure` or `aws sso login`, or pass --profile NAME".into());
    };
    let cause = |err: &CredentialsError| {
        std::error::Error::source(err)
            .map(|s| crate::text::clip(&crate::text::oneline(&s.to_string()), 200))
            .unwrap_or_else(|| err.to_string())
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(CredentialsError::CredentialsNotLoaded(_)) => Err("no AWS credentials found (environment, profile, SSO or instance role); run `aws configure` or `aws sso login`, or pass --profile NAME".into()),
        Err(CredentialsError::ProviderTimedOut(_)) => Err(
            "loading AWS credentials timed out; check the profile's SSO or credential_process settings".into(),
        ),
        Err(err @ CredentialsError::InvalidConfiguration(_)) => Err(format!(
            "the AWS profile's credential settings are invalid: {}",
            cause(&err)
        )),
        Err(err) => Err(format!("could not load AWS credentials: {}", cause(&err))),
    }
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

/// An error and its causes, each by its `Display`, on one line: what a person reads. (The SDK's
/// `DisplayErrorContext` appends the `Debug` structure, which no person should have to read.)
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    crate::text::clip(&crate::text::oneline(&parts.join(": ")), 400)
}

/// Turns any SDK error into the report's `ApiError`, with the full context as the message. The
/// only place that reads AWS error codes to decide what kind of failure it is.
pub(crate) fn api_error<E>(err: SdkError<E, HttpResponse>) -> ApiError
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
                .unwrap_or_else(|| error_chain(&err));
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
        SdkError::TimeoutError(_) => ApiError::new("Timeout", error_chain(&err), ErrorKind::Lost),
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() || d.is_other() => {
            ApiError::new("Transport", error_chain(&err), ErrorKind::Lost)
        }
        SdkError::ResponseError(_) => {
            ApiError::new("Transport", error_chain(&err), ErrorKind::Lost)
        }
        // A dispatch failure of another sort (the user's configuration) never left the client.
        SdkError::DispatchFailure(_) => {
            ApiError::new("Transport", error_chain(&err), ErrorKind::Transient)
        }
        _ => ApiError::new("Client", error_chain(&err), ErrorKind::AccountWide),
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
