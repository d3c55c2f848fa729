//! `Fleet` over aws-sdk-ec2: pagination, batching, bisect on failure (SPEC §6).

use super::{api_error, CallCounter};
use crate::fleet::{bisect, has_time, ApiError, Fleet, IdResult};
use crate::policy::plan::TagSet;
use crate::policy::{Instance, InstanceState};
use aws_sdk_ec2::types::{Filter, Tag};
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// DescribeInstances page size (the API's maximum).
pub const PAGE_SIZE: i32 = 1000;

/// Called after each listed page with the number of instances listed so far.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(usize) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

#[derive(Clone, Debug)]
pub struct Ec2Fleet {
    client: Client,
    calls: CallCounter,
    progress: Option<Progress>,
}

impl Ec2Fleet {
    /// `calls` must be the counter installed on `client` (see `aws::ec2_client`).
    pub fn new(client: Client, calls: CallCounter) -> Self {
        Self {
            client,
            calls,
            progress: None,
        }
    }

    /// Reports listing progress (reaperctl prints it on stderr during long listings).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn state_filter() -> Filter {
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(
                InstanceState::JUDGED
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect(),
            ))
            .build()
    }

    async fn list_all(&self) -> Result<Vec<Instance>, ApiError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .max_results(PAGE_SIZE)
                .filters(Self::state_filter())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(api_error)?;
            collect(&page, &mut out);
            if let Some(Progress(report)) = &self.progress {
                report(out.len());
            }
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// By id: `InstanceIds` (which cannot be combined with `MaxResults`, and so comes back in one
    /// response) in chunks of 1000. An unknown id fails the whole call; it is dropped and the
    /// call repeated, so a vanished instance costs one extra call, not a failed re-check.
    async fn list_ids(&self, ids: &[String]) -> Result<Vec<Instance>, ApiError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(crate::policy::plan::MAX_BATCH) {
            let mut wanted: Vec<String> = chunk.to_vec();
            while !wanted.is_empty() {
                let result = self
                    .client
                    .describe_instances()
                    .set_instance_ids(Some(wanted.clone()))
                    .filters(Self::state_filter())
                    .send()
                    .await;
                match result {
                    Ok(page) => {
                        collect(&page, &mut out);
                        break;
                    }
                    Err(e) => {
                        let err = api_error(e);
                        if err.code != "InvalidInstanceID.NotFound" {
                            return Err(err);
                        }
                        let missing: BTreeSet<&str> = instance_ids_in(&err.message).collect();
                        let before = wanted.len();
                        wanted.retain(|id| !missing.contains(id.as_str()));
                        if wanted.len() == before {
                            return Err(err);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The instance ids quoted in an EC2 error message ("The instance IDs 'i-1, i-2' do not exist").
fn instance_ids_in(message: &str) -> impl Iterator<Item = &str> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("i-") && w.len() > 2)
}

fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn collect(
    page: &aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput,
    out: &mut Vec<Instance>,
) {
    for instance in page.reservations().iter().flat_map(|r| r.instances()) {
        let Some(id) = instance.instance_id() else {
            continue;
        };
        let Some(state) = instance
            .state()
            .and_then(|s| s.name())
            .and_then(|n| InstanceState::parse(n.as_str()))
        else {
            tracing::warn!(
                instance_id = id,
                "instance without a known state; not judged"
            );
            continue;
        };
        let Some(launch_time) = instance.launch_time().and_then(to_utc) else {
            tracing::warn!(
                instance_id = id,
                "instance without a launch time; not judged"
            );
            continue;
        };
        let root_attach_time = instance.root_device_name().and_then(|root| {
            instance
                .block_device_mappings()
                .iter()
                .find(|m| m.device_name() == Some(root))
                .and_then(|m| m.ebs())
                .and_then(|ebs| ebs.attach_time())
                .and_then(to_utc)
        });
        let tags = instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect();
        out.push(Instance {
            id: id.to_string(),
            state,
            launch_time,
            root_attach_time,
            tags,
        });
    }
}

impl Fleet for Ec2Fleet {
    async fn list(&self, ids: Option<&[String]>) -> Result<Vec<Instance>, ApiError> {
        match ids {
            None => self.list_all().await,
            Some([]) => Ok(Vec::new()),
            Some(ids) => self.list_ids(ids).await,
        }
    }

    async fn terminate(&self, ids: &[String], deadline: Option<Instant>) -> Vec<IdResult> {
        bisect(ids, &|| has_time(deadline), |batch| async move {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(batch))
                .send()
                .await
                .map(|_| ())
                .map_err(api_error)
        })
        .await
    }

    async fn stop(&self, ids: &[String], deadline: Option<Instant>) -> Vec<IdResult> {
        bisect(ids, &|| has_time(deadline), |batch| async move {
            self.client
                .stop_instances()
                .set_instance_ids(Some(batch))
                .send()
                .await
                .map(|_| ())
                .map_err(api_error)
        })
        .await
    }

    async fn tag(&self, ids: &[String], tags: &TagSet, deadline: Option<Instant>) -> Vec<IdResult> {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        bisect(ids, &|| has_time(deadline), |batch| {
            let tags = tags.clone();
            async move {
                self.client
                    .create_tags()
                    .set_resources(Some(batch))
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(api_error)
            }
        })
        .await
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::operation::terminate_instances::{
        TerminateInstancesError, TerminateInstancesOutput,
    };
    use aws_sdk_ec2::types::{
        EbsInstanceBlockDevice, Instance as Ec2Instance, InstanceBlockDeviceMapping,
        InstanceStateName, Reservation,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::error::ErrorMetadata;

    fn ec2_instance(id: &str) -> Ec2Instance {
        Ec2Instance::builder()
            .instance_id(id)
            .state(
                aws_sdk_ec2::types::InstanceState::builder()
                    .name(InstanceStateName::Running)
                    .build(),
            )
            .launch_time(aws_smithy_types::DateTime::from_secs(1_900_000_000))
            .root_device_name("/dev/xvda")
            .block_device_mappings(
                InstanceBlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(
                        EbsInstanceBlockDevice::builder()
                            .attach_time(aws_smithy_types::DateTime::from_secs(1_800_000_000))
                            .build(),
                    )
                    .build(),
            )
            .tags(Tag::builder().key("lifetime").value("1d").build())
            .build()
    }

    fn page(ids: &[&str], next: Option<&str>) -> DescribeInstancesOutput {
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .set_instances(Some(ids.iter().map(|id| ec2_instance(id)).collect()))
                    .build(),
            )
            .set_next_token(next.map(str::to_string))
            .build()
    }

    fn fleet(client: Client) -> Ec2Fleet {
        Ec2Fleet::new(client, CallCounter::default())
    }

    #[tokio::test]
    async fn listing_follows_every_next_token_with_max_results_and_the_state_filter() {
        let first = mock!(Client::describe_instances)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.max_results() == Some(PAGE_SIZE)
                    && r.filters()[0].name() == Some("instance-state-name")
                    && r.filters()[0].values().len() == 4
            })
            .then_output(|| page(&["i-00000000000000001", "i-00000000000000002"], Some("t1")));
        let second = mock!(Client::describe_instances)
            .match_requests(|r| r.next_token() == Some("t1"))
            .then_output(|| page(&["i-00000000000000003"], Some("t2")));
        let third = mock!(Client::describe_instances)
            .match_requests(|r| r.next_token() == Some("t2"))
            .then_output(|| page(&[], None));
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&first, &second, &third]);
        let got = fleet(client).list(None).await.unwrap();
        assert_eq!(
            got.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            [
                "i-00000000000000001",
                "i-00000000000000002",
                "i-00000000000000003"
            ]
        );
        assert_eq!(
            (first.num_calls(), second.num_calls(), third.num_calls()),
            (1, 1, 1)
        );
        let i = &got[0];
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.root_attach_time.unwrap().timestamp(), 1_800_000_000);
        assert_eq!(i.launch_time.timestamp(), 1_900_000_000);
        assert_eq!(i.tag("lifetime"), Some("1d"));
    }

    #[tokio::test]
    async fn one_protected_instance_among_1000_is_isolated_in_at_most_21_calls() {
        let ids: Vec<String> = (0..1000).map(|i| format!("i-{i:017x}")).collect();
        let protected = ids[333].clone();
        let p1 = protected.clone();
        let refused = mock!(Client::terminate_instances)
            .match_requests(move |r| r.instance_ids().contains(&p1))
            .then_error(|| {
                TerminateInstancesError::generic(
                    ErrorMetadata::builder()
                        .code("OperationNotPermitted")
                        .message("The instance 'i-000000000000014d' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.")
                        .build(),
                )
            });
        let p2 = protected.clone();
        let accepted = mock!(Client::terminate_instances)
            .match_requests(move |r| !r.instance_ids().contains(&p2))
            .then_output(|| TerminateInstancesOutput::builder().build());
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&refused, &accepted]);
        let results = fleet(client).terminate(&ids, None).await;
        let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, protected);
        assert_eq!(
            failed[0].1.as_ref().unwrap_err().code,
            "OperationNotPermitted"
        );
        assert_eq!(results.iter().filter(|(_, r)| r.is_ok()).count(), 999);
        let calls = refused.num_calls() + accepted.num_calls();
        assert!(calls <= 21, "{calls} calls");
    }

    #[tokio::test]
    async fn throttling_is_retried_to_success() {
        let throttled = mock!(Client::terminate_instances)
            .sequence()
            .http_status(503, None)
            .times(2)
            .output(|| TerminateInstancesOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&throttled], |b| {
            b.retry_config(aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(5))
        });
        let ids = vec![
            "i-00000000000000001".to_string(),
            "i-00000000000000002".to_string(),
        ];
        let results = fleet(client).terminate(&ids, None).await;
        assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
        assert_eq!(throttled.num_calls(), 3);
        let _ = StatusCode::try_from(503u16);
    }

    #[tokio::test]
    async fn re_describe_drops_vanished_ids_and_retries_once() {
        let gone = mock!(Client::describe_instances)
            .match_requests(|r| r.instance_ids().len() == 2)
            .then_error(|| {
                aws_sdk_ec2::operation::describe_instances::DescribeInstancesError::generic(
                    ErrorMetadata::builder()
                        .code("InvalidInstanceID.NotFound")
                        .message("The instance ID 'i-0000000000000dead' does not exist")
                        .build(),
                )
            });
        let ok = mock!(Client::describe_instances)
            .match_requests(|r| {
                r.instance_ids() == ["i-00000000000000001"] && r.max_results().is_none()
            })
            .then_output(|| page(&["i-00000000000000001"], None));
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&gone, &ok]);
        let ids = vec![
            "i-00000000000000001".to_string(),
            "i-0000000000000dead".to_string(),
        ];
        let got = fleet(client).list(Some(&ids)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(gone.num_calls() + ok.num_calls(), 2);
    }

    #[test]
    fn ids_are_read_from_not_found_messages() {
        let ids: Vec<&str> =
            instance_ids_in("The instance IDs 'i-0abc, i-0def' do not exist").collect();
        assert_eq!(ids, ["i-0abc", "i-0def"]);
    }
}
