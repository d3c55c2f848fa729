//! When the reaper was enrolled in this account and region (issue 18): the creation time of the
//! stack that deployed it (`REAPER_STACK_ID`), read with DescribeStacks once per container. An
//! instance first launched before it gets ENROLMENT_NOTICE before any stop or termination.

use super::{api_error, within, CallCounter};
use crate::ports::{ApiError, Deadline, ErrorKind};
use aws_smithy_types::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use std::sync::Mutex;
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

/// Where the enrolment time comes from, and what was read (cached for the container's life; a
/// failed read is tried again by the next run).
pub struct Enrolment {
    stack: Option<(aws_sdk_cloudformation::Client, String)>,
    known: Mutex<Option<DateTime<Utc>>>,
}

impl Enrolment {
    /// No stack to read: only ENROLLED_AT, if set, marks instances as pre-enrolment.
    pub fn none() -> Self {
        Enrolment {
            stack: None,
            known: Mutex::new(None),
        }
    }

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
        Enrolment {
            stack: Some((
                aws_sdk_cloudformation::Client::from_conf(conf.build()),
                stack_id,
            )),
            known: Mutex::new(None),
        }
    }

    /// The enrolment time: `explicit` (ENROLLED_AT) when set, else the stack's creation time,
    /// else `None` (nothing is known: no instance counts as pre-enrolment). A failed read is an
    /// error a person can act on; the caller treats every instance as pre-enrolment.
    pub(crate) async fn enrolled_at(
        &self,
        explicit: Option<DateTime<Utc>>,
        deadline: Deadline,
    ) -> Result<Option<DateTime<Utc>>, String> {
        if explicit.is_some() {
            return Ok(explicit);
        }
        let Some((client, stack_id)) = &self.stack else {
            return Ok(None);
        };
        if let Some(at) = *self.known.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(Some(at));
        }
        let at = stack_created_at(client, stack_id, deadline)
            .await
            .map_err(|err| {
                format!(
                    "enrolment: reading when stack {stack_id} (REAPER_STACK_ID) was created failed: {err}; this run treats every instance as launched before enrolment, so nothing is stopped or terminated without ENROLMENT_NOTICE (set ENROLLED_AT, or allow cloudformation:DescribeStacks on the stack)"
                )
            })?;
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
        Ok(Some(at))
    }
}
