//! `Fleet` over aws-sdk-ec2: pagination, batching, bisect on failure (SPEC §6).

use super::bisect::bisect;
use super::{api_error, within, CallCounter};
use crate::policy::price::{Attached, Billing, Purchase, Tenancy, Volume};
use crate::policy::{Instance, InstanceState};
use crate::ports::{ApiError, Deadline, ErrorKind, Fleet, IdOutcome, Mutation, VOLUMES_PER_CALL};
use aws_sdk_ec2::types::{Filter, Tag};
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// DescribeInstances page size (the API's maximum).
pub(crate) const PAGE_SIZE: i32 = 1000;
/// Instance ids per `instance-id` filter when listing by id.
const IDS_PER_LISTING: usize = 1000;
/// More pages than any account's fleet fills (a million instances at full pages): an endless
/// pagination is an error, not a hang.
pub const MAX_PAGES: usize = 5000;

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
    /// An EC2 fleet whose every call (retries included) is counted by its own counter.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        let calls = CallCounter::default();
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        Self::with_client(aws_sdk_ec2::Client::from_conf(conf), calls)
    }

    /// `calls` must be the counter installed on `client` (adapter tests with mocked clients).
    fn with_client(client: Client, calls: CallCounter) -> Self {
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

    /// The counter of this fleet's calls; other clients of the same run may share it.
    pub fn counter(&self) -> &CallCounter {
        &self.calls
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

    /// Every page of one listing, with `filters`, following `NextToken` within the deadline.
    /// Instances are kept once by id (pages that overlap count once); a token seen twice or more
    /// than `MAX_PAGES` pages is an error.
    async fn describe_pages(
        &self,
        filters: Vec<Filter>,
        deadline: Deadline,
        seen: &mut Seen,
        on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
    ) -> Result<(), ApiError> {
        let mut token: Option<String> = None;
        let mut tokens: HashSet<String> = HashSet::new();
        for _ in 0..MAX_PAGES {
            if !deadline.has_time() {
                return Err(ApiError::new(
                    "OutOfTime",
                    format!(
                        "listing stopped after {} instances: less than 30 s of the run's time was left",
                        seen.len()
                    ),
                    ErrorKind::Transient,
                ));
            }
            let call = self
                .client
                .describe_instances()
                .max_results(PAGE_SIZE)
                .set_filters(Some(filters.clone()))
                .set_next_token(token.take())
                .send();
            let mut page = within("DescribeInstances", deadline.for_work(), async {
                call.await.map_err(api_error)
            })
            .await?;
            let next_token = page.next_token.take();
            collect(page, seen, on_page);
            if let Some(Progress(report)) = &self.progress {
                report(seen.len());
            }
            match next_token {
                Some(t) if !t.is_empty() => {
                    if !tokens.insert(t.clone()) {
                        return Err(ApiError::new(
                            "EndlessPagination",
                            "DescribeInstances returned a NextToken it had returned before; the listing would never end",
                            ErrorKind::Transient,
                        ));
                    }
                    token = Some(t);
                }
                _ => return Ok(()),
            }
        }
        Err(ApiError::new(
            "EndlessPagination",
            format!(
                "DescribeInstances returned more than {MAX_PAGES} pages; more than any fleet fills"
            ),
            ErrorKind::Transient,
        ))
    }
}

fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The ids a listing has handed over. An EC2 instance id (`i-` and 8 or 17 hex digits) is kept
/// as the number it spells, 16 bytes instead of a 56-byte string (6 MB less at 100 000
/// instances, heaptrack); anything else as it is.
#[derive(Default)]
struct Seen {
    numbers: HashSet<u128>,
    others: HashSet<String>,
    /// Instances handed over by the listings before this one (of the same run).
    before: usize,
}

impl Seen {
    fn number(id: &str) -> Option<u128> {
        let hex = id.strip_prefix("i-")?;
        // Lower case only, as EC2 writes it: `i-0A` and `i-0a` stay two ids (as strings).
        (matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u128::from_str_radix(hex, 16).ok())
        .flatten()
        // The length is part of the id: `i-0000000a` and `i-0000000000000000a` differ.
        .map(|n| n | ((hex.len() as u128) << 120))
    }

    fn contains(&self, id: &str) -> bool {
        match Self::number(id) {
            Some(n) => self.numbers.contains(&n),
            None => self.others.contains(id),
        }
    }

    fn insert(&mut self, id: &str) {
        match Self::number(id) {
            Some(n) => self.numbers.insert(n),
            None => self.others.insert(id.to_string()),
        };
    }

    fn len(&self) -> usize {
        self.before + self.numbers.len() + self.others.len()
    }
}

/// Instances handed to the judge at a time: the converted facts of a whole page (4 MB at
/// 1 000 instances) never sit beside the SDK's structs of the same page.
const CHUNK: usize = 64;

/// Keeps the facts the policy reads from one page (not the SDK's structs) and hands them over
/// `CHUNK` at a time; an id already seen is skipped. The page is consumed: each SDK instance is
/// dropped as soon as it is read, its tags moved rather than copied.
fn collect(
    page: aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput,
    seen: &mut Seen,
    on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
) {
    let mut out = Vec::with_capacity(CHUNK);
    let instances = page
        .reservations
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default());
    for instance in instances {
        let Some(fact) = fact(instance, seen) else {
            continue;
        };
        out.push(fact);
        if out.len() == CHUNK {
            on_page(std::mem::replace(&mut out, Vec::with_capacity(CHUNK)));
        }
    }
    if !out.is_empty() {
        on_page(out);
    }
}

/// The facts of one listed instance, or `None` (seen before, or without a state or launch time).
fn fact(mut instance: aws_sdk_ec2::types::Instance, seen: &mut Seen) -> Option<Instance> {
    let id = instance.instance_id.take()?;
    if seen.contains(&id) {
        return None;
    }
    let Some(state) = instance
        .state()
        .and_then(|s| s.name())
        .and_then(|n| InstanceState::parse(n.as_str()))
    else {
        tracing::warn!(
            instance_id = id,
            "instance without a known state; not judged"
        );
        return None;
    };
    let Some(launch_time) = instance.launch_time().and_then(to_utc) else {
        tracing::warn!(
            instance_id = id,
            "instance without a launch time; not judged"
        );
        return None;
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
        .tags
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
        .collect();
    seen.insert(&id);
    Some(Instance {
        billing: billing(&instance).map(Box::new),
        id,
        state,
        launch_time,
        root_attach_time,
        tags,
    })
}

/// What the instance is billed for, as DescribeInstances says it; `None` without an instance type.
fn billing(instance: &aws_sdk_ec2::types::Instance) -> Option<Billing> {
    use aws_sdk_ec2::types::{InstanceLifecycleType, Tenancy as Ec2Tenancy};
    let instance_type = instance.instance_type()?.as_str().into();
    // EC2 always sends PlatformDetails; without it (an emulator), `Platform` is `windows` for
    // Windows and blank for everything else, which the Price List calls Linux/UNIX.
    let platform = match (instance.platform_details(), instance.platform()) {
        (Some(details), _) if !details.is_empty() => details.into(),
        (_, Some(p)) if p.as_str().eq_ignore_ascii_case("windows") => "Windows".into(),
        _ => "Linux/UNIX".into(),
    };
    let tenancy = match instance.placement().and_then(|p| p.tenancy()) {
        Some(Ec2Tenancy::Dedicated) => Tenancy::Dedicated,
        Some(Ec2Tenancy::Host) => Tenancy::Host,
        _ => Tenancy::Shared,
    };
    let purchase = match instance.instance_lifecycle() {
        Some(InstanceLifecycleType::Spot) => Purchase::Spot,
        Some(InstanceLifecycleType::CapacityBlock) => Purchase::CapacityBlock,
        _ => Purchase::OnDemand,
    };
    // Amazon-assigned addresses only: an Elastic IP (owned by the account) stays allocated and
    // billed after a stop or a termination. EC2 names the owner `amazon`; an answer without an
    // owner (an emulator) counts the address as assigned.
    let mut addresses: Vec<&str> = instance
        .network_interfaces()
        .iter()
        .flat_map(|n| n.private_ip_addresses())
        .filter_map(|p| p.association())
        .filter(|a| a.ip_owner_id().is_none_or(|owner| owner == "amazon"))
        .filter_map(|a| a.public_ip())
        .collect();
    let elastic = |ip: &str| {
        instance
            .network_interfaces()
            .iter()
            .flat_map(|n| n.private_ip_addresses())
            .filter_map(|p| p.association())
            .any(|a| a.public_ip() == Some(ip) && a.ip_owner_id().is_some_and(|o| o != "amazon"))
    };
    if let Some(ip) = instance.public_ip_address().filter(|ip| !elastic(ip)) {
        addresses.push(ip);
    }
    addresses.sort_unstable();
    addresses.dedup();
    let volumes = instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs())
        .filter_map(|ebs| {
            Some(Attached {
                volume_id: ebs.volume_id()?.into(),
                delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
            })
        })
        .collect();
    Some(Billing {
        instance_type,
        platform,
        tenancy,
        purchase,
        public_ipv4: u8::try_from(addresses.len()).unwrap_or(u8::MAX),
        volumes,
    })
}

fn volume(v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    Some(Volume {
        volume_id: v.volume_id()?.to_string(),
        volume_type: v.volume_type()?.as_str().to_string(),
        size_gib: u32::try_from(v.size()?).ok()?,
        iops: v.iops().and_then(|n| u32::try_from(n).ok()),
        throughput_mibps: v.throughput().and_then(|n| u32::try_from(n).ok()),
    })
}

impl Fleet for Ec2Fleet {
    async fn volumes(&self, ids: &[String], deadline: Deadline) -> Result<Vec<Volume>, ApiError> {
        let mut out = Vec::new();
        // A `volume-id` filter, not `VolumeIds`: a volume deleted meanwhile is simply absent
        // (with `VolumeIds` one unknown id fails the whole call).
        for chunk in ids.chunks(VOLUMES_PER_CALL) {
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let call = self
                    .client
                    .describe_volumes()
                    .filters(
                        Filter::builder()
                            .name("volume-id")
                            .set_values(Some(chunk.to_vec()))
                            .build(),
                    )
                    .max_results(VOLUMES_PER_CALL as i32)
                    .set_next_token(token.take())
                    .send();
                let page = within("DescribeVolumes", deadline.for_work(), async {
                    call.await.map_err(api_error)
                })
                .await?;
                out.extend(page.volumes().iter().filter_map(volume));
                match page.next_token {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    async fn list_pages(
        &self,
        ids: Option<&[&str]>,
        deadline: Deadline,
        on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
    ) -> Result<(), ApiError> {
        match ids {
            None => {
                let mut seen = Seen::default();
                self.describe_pages(vec![Self::state_filter()], deadline, &mut seen, on_page)
                    .await?
            }
            // By id: an `instance-id` filter, so an id that does not exist is simply absent (with
            // `InstanceIds` one unknown id fails the whole call), paged like the full listing.
            Some(ids) => {
                // Sorted and distinct, no two chunks ask for the same id, so an instance comes
                // back only in its own chunk's pages and each chunk keeps its own `Seen`: 1 000
                // ids, not the whole re-check's (2 MB at 100 000 instances, `make bench`).
                let sorted;
                let ids = if ids.windows(2).all(|w| w[0] < w[1]) {
                    ids
                } else {
                    let mut copy = ids.to_vec();
                    copy.sort_unstable();
                    copy.dedup();
                    sorted = copy;
                    &sorted[..]
                };
                let mut before = 0;
                for chunk in ids.chunks(IDS_PER_LISTING) {
                    let by_id = Filter::builder()
                        .name("instance-id")
                        .set_values(Some(chunk.iter().map(|id| id.to_string()).collect()))
                        .build();
                    let mut seen = Seen {
                        before,
                        ..Seen::default()
                    };
                    self.describe_pages(
                        vec![by_id, Self::state_filter()],
                        deadline,
                        &mut seen,
                        on_page,
                    )
                    .await?;
                    before = seen.len();
                }
            }
        }
        Ok(())
    }

    async fn apply(
        &self,
        mutation: Mutation<'_>,
        ids: &[String],
        deadline: Deadline,
    ) -> Vec<(String, IdOutcome)> {
        let op = mutation.operation();
        let tags: Vec<Tag> = match mutation {
            Mutation::Tag(tags) => tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
            _ => Vec::new(),
        };
        bisect(ids, deadline, |batch| {
            let client = &self.client;
            let tags = tags.clone();
            within(op, deadline.for_work(), async move {
                match mutation {
                    Mutation::Terminate => client
                        .terminate_instances()
                        .set_instance_ids(Some(batch))
                        .send()
                        .await
                        .map(drop)
                        .map_err(api_error),
                    Mutation::Stop => client
                        .stop_instances()
                        .set_instance_ids(Some(batch))
                        .send()
                        .await
                        .map(drop)
                        .map_err(api_error),
                    Mutation::Tag(_) => client
                        .create_tags()
                        .set_resources(Some(batch))
                        .set_tags(Some(tags))
                        .send()
                        .await
                        .map(drop)
                        .map_err(api_error),
                }
            })
        })
        .await
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seen_ids_are_exact_whatever_their_form() {
        let mut seen = super::Seen::default();
        for id in ["i-0000000a", "i-0123456789abcdef0", "i-0A", "i-0000000A"] {
            assert!(!seen.contains(id), "{id}");
            seen.insert(id);
            assert!(seen.contains(id), "{id}");
        }
        seen.insert("i-0123456789abcdef0");
        assert_eq!(seen.len(), 4);
        // The same digits at another length are another id; upper case is another spelling.
        for other in [
            "i-0000000000000000a",
            "i-0123456789ABCDEF0",
            "i-0a",
            "i-123456789abcdef0",
        ] {
            assert!(!seen.contains(other), "{other}");
        }
    }

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
        Ec2Fleet::with_client(client, CallCounter::default())
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
        let got = fleet(client).list(None, Deadline::NONE).await.unwrap();
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
        let results = fleet(client)
            .apply(Mutation::Terminate, &ids, Deadline::NONE)
            .await;
        let failed: Vec<_> = results
            .iter()
            .filter(|(_, o)| matches!(o, IdOutcome::Failed(_)))
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, protected);
        assert!(matches!(&failed[0].1, IdOutcome::Failed(e)
            if e.code == "OperationNotPermitted" && e.kind == ErrorKind::Protected));
        assert_eq!(
            results
                .iter()
                .filter(|(_, o)| *o == IdOutcome::Done)
                .count(),
            999
        );
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
        let results = fleet(client)
            .apply(Mutation::Terminate, &ids, Deadline::NONE)
            .await;
        assert!(
            results.iter().all(|(_, o)| *o == IdOutcome::Done),
            "{results:?}"
        );
        assert_eq!(throttled.num_calls(), 3);
        let _ = StatusCode::try_from(503u16);
    }

    #[tokio::test]
    async fn listing_by_id_asks_with_a_filter_and_follows_next_token() {
        // 2500 ids, of which most do not exist: three filtered listings (1000, 1000, 500 ids),
        // the first answered in two pages; an unknown id costs nothing.
        let first = mock!(Client::describe_instances)
            .match_requests(|r| {
                r.instance_ids().is_empty()
                    && r.filters()[0].name() == Some("instance-id")
                    && r.filters()[0].values().len() == 1000
                    && r.filters()[0].values()[0] == "i-00000000000000000"
                    && r.next_token().is_none()
            })
            .then_output(|| page(&["i-00000000000000001"], Some("more")));
        let second = mock!(Client::describe_instances)
            .match_requests(|r| r.next_token() == Some("more"))
            .then_output(|| page(&["i-00000000000000002", "i-00000000000000001"], None));
        let rest = mock!(Client::describe_instances)
            .match_requests(|r| {
                r.next_token().is_none() && r.filters()[0].values()[0] != "i-00000000000000000"
            })
            .then_output(|| page(&[], None));
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&first, &second, &rest]);
        let ids: Vec<String> = (0..2500).map(|i| format!("i-{i:017x}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let got = fleet(client)
            .list(Some(&ids), Deadline::NONE)
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["i-00000000000000001", "i-00000000000000002"],
            "pages that overlap count once"
        );
        assert_eq!(
            (first.num_calls(), second.num_calls(), rest.num_calls()),
            (1, 1, 2)
        );
    }

    #[tokio::test]
    async fn a_next_token_seen_twice_is_an_error_not_a_hang() {
        let endless = mock!(Client::describe_instances)
            .then_output(|| page(&["i-00000000000000001"], Some("again")));
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&endless]);
        let err = fleet(client).list(None, Deadline::NONE).await.unwrap_err();
        assert_eq!(err.code, "EndlessPagination");
        assert_eq!(endless.num_calls(), 2);
    }

    #[tokio::test]
    async fn out_of_time_the_listing_stops_before_the_next_page() {
        let never = mock!(Client::describe_instances).then_output(|| page(&[], None));
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&never]);
        let near = Deadline::after(std::time::Duration::from_secs(10));
        let err = fleet(client).list(None, near).await.unwrap_err();
        assert_eq!(err.code, "OutOfTime");
        assert_eq!(never.num_calls(), 0);
    }
}
