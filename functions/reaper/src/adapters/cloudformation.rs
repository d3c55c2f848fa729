//! When the reaper was enrolled in this account and region (issue 18): the creation time of the
//! stack that deployed it (`REAPER_STACK_ID`), read with DescribeStacks (`app::Enrolment` reads
//! it once per container). An instance first launched before it gets ENROLMENT_NOTICE before any
//! stop or termination.

use super::{api_error, within, CallCounter};
use crate::ports::{ApiError, Deadline, ErrorKind, StackClock};
use aws_smithy_types::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::time::Duration;

/// One DescribeStacks, retries included, and one attempt of it: a small answer, so a hung
/// connection is given up on long before the run's deadline.
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The stack's creation time (`CreationTime` of DescribeStacks for `stack_id`).
pub(crate) async fn stack_created_at(
    client: &aws_sdk_cloudformation::Client,
    stack_id: &str,
    deadline: Deadline,
) -> Result<DateTime<Utc>, ApiError> {
    within("DescribeStacks", deadline.for_work(), async {
        let out = client
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(api_error)?;
        let created = out
            .stacks()
            .first()
            .and_then(|s| s.creation_time())
            .ok_or_else(|| {
                ApiError::new(
                    "NoCreationTime",
                    format!("DescribeStacks for {stack_id} named no stack with a CreationTime"),
                    ErrorKind::AccountWide,
                )
            })?;
        DateTime::from_timestamp(created.secs(), created.subsec_nanos()).ok_or_else(|| {
            ApiError::new(
                "NoCreationTime",
                format!("the CreationTime DescribeStacks gave for {stack_id} is out of range"),
                ErrorKind::AccountWide,
            )
        })
    })
    .await
}

/// The creation time of the stack that deployed the reaper, read through CloudFormation.
pub struct StackCreation {
    client: aws_sdk_cloudformation::Client,
    stack_id: String,
}

impl StackCreation {
    /// Reads `stack_id`'s creation time through the SDK configuration, every attempt counted.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, stack_id: String, calls: &CallCounter) -> Self {
        let conf = aws_sdk_cloudformation::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        StackCreation {
            client: aws_sdk_cloudformation::Client::from_conf(conf.build()),
            stack_id,
        }
    }
}

impl StackClock for StackCreation {
    fn stack(&self) -> &str {
        &self.stack_id
    }

    fn created_at(&self, deadline: Deadline) -> BoxFuture<'_, Result<DateTime<Utc>, ApiError>> {
        Box::pin(stack_created_at(&self.client, &self.stack_id, deadline))
    }
}
