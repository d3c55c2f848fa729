//! A fake EC2 (and STS `GetCallerIdentity`) speaking the query protocol, holding generated
//! instances in memory, for fleets moto cannot hold or cannot list fast enough (the bench's
//! 5 000 .. 100 000 instances). Its DescribeInstances items copy moto's XML shape field for field,
//! so every client parses pages as heavy as moto's; it pages by **instances** (at most 1 000 per
//! page, as EC2 does), and applies CreateTags, StopInstances and TerminateInstances to its state.
//!
//! Each instance has one root volume, `vol-<its id's hex>`, deleted with it (`DeleteOnTermination`),
//! and an instance type from [`INSTANCE_TYPES`] by its number: DescribeVolumes (the `volume-id`
//! filter, pages of at most 500) shows the volumes of the instances not yet terminated.
//!
//! It is not an EC2 model: only the `instance-state-name` and `instance-id` filters are
//! understood (an unknown id in the `instance-id` filter is simply absent, as on EC2), any other
//! filter or action is refused with an error that names it, so a client that needs more fails
//! loudly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tiny_http::{Header, Response, Server};

use crate::proxy::percent_decode;

/// EC2 instance states with their API codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::ShuttingDown => "shutting-down",
            State::Terminated => "terminated",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }

    fn code(self) -> u16 {
        match self {
            State::Pending => 0,
            State::Running => 16,
            State::ShuttingDown => 32,
            State::Terminated => 48,
            State::Stopping => 64,
            State::Stopped => 80,
        }
    }
}

/// One instance of the fake fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeInstance {
    pub id: String,
    /// Instances of one reservation are listed together (and were launched together).
    pub reservation: String,
    pub state: State,
    pub launch_time: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
}

impl FakeInstance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

struct Fleet {
    instances: Vec<FakeInstance>,
    index: HashMap<String, usize>,
}

impl Fleet {
    fn new(instances: Vec<FakeInstance>) -> Fleet {
        let index = instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (inst.id.clone(), i))
            .collect();
        Fleet { instances, index }
    }
}

/// The fake, on `127.0.0.1:<free port>`; stopped on drop.
pub struct FakeEc2 {
    fleet: Arc<Mutex<Fleet>>,
    server: Arc<Server>,
    endpoint: String,
    worker: Option<JoinHandle<()>>,
}

/// Largest DescribeInstances page, in instances (EC2's `MaxResults` limit).
pub const MAX_PAGE: usize = 1000;

impl FakeEc2 {
    pub fn start(instances: Vec<FakeInstance>) -> FakeEc2 {
        let server = Arc::new(
            Server::http("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("reaper-e2e fake EC2: cannot bind 127.0.0.1: {e}")),
        );
        let endpoint = format!(
            "http://{}",
            server
                .server_addr()
                .to_ip()
                .expect("a TCP listener has an IP address")
        );
        let fleet = Arc::new(Mutex::new(Fleet::new(instances)));
        let worker = {
            let (server, fleet) = (Arc::clone(&server), Arc::clone(&fleet));
            thread::Builder::new()
                .name("fake-ec2".into())
                .spawn(move || serve(&server, &fleet))
                .expect("spawn the fake EC2 thread")
        };
        FakeEc2 {
            fleet,
            server,
            endpoint,
            worker: Some(worker),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The fleet as it stands now.
    pub fn instances(&self) -> Vec<FakeInstance> {
        lock(&self.fleet).instances.clone()
    }
}

impl Drop for FakeEc2 {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn lock(fleet: &Mutex<Fleet>) -> MutexGuard<'_, Fleet> {
    fleet.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve(server: &Server, fleet: &Mutex<Fleet>) {
    loop {
        let mut request = match server.recv() {
            Ok(r) => r,
            Err(_) => break,
        };
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        if body.is_empty() {
            body = request
                .url()
                .split_once('?')
                .map(|(_, q)| q.to_owned())
                .unwrap_or_default();
        }
        let params = Params::parse(&body);
        let (status, xml) = answer(&params, &mut lock(fleet));
        let response = Response::from_data(xml.into_bytes())
            .with_status_code(status)
            .with_header(
                Header::from_bytes("Content-Type", "text/xml;charset=UTF-8").expect("ASCII header"),
            );
        let _ = request.respond(response);
    }
}

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(form: &str) -> Params {
        Params(
            form.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Prefix.1`, `Prefix.2`, ... in order.
    fn list(&self, prefix: &str) -> Vec<String> {
        (1..)
            .map_while(|n| self.get(&format!("{prefix}.{n}")).map(str::to_owned))
            .collect()
    }
}

const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

fn error(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{}</Message></Error></Errors><RequestID>fake-ec2</RequestID></Response>",
            escape(message)
        ),
    )
}

fn answer(params: &Params, fleet: &mut Fleet) -> (u16, String) {
    match params.get("Action").unwrap_or_default() {
        "DescribeInstances" => describe(params, fleet),
        "CreateTags" => create_tags(params, fleet),
        "DescribeVolumes" => describe_volumes(params, fleet),
        "StopInstances" => transition(params, fleet, "StopInstances"),
        "TerminateInstances" => transition(params, fleet, "TerminateInstances"),
        "GetCallerIdentity" => (
            200,
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><UserId>AKIAIOSFODNN7EXAMPLE</UserId><Account>123456789012</Account>\
             <Arn>arn:aws:sts::123456789012:user/fake</Arn></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>fake-ec2</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                .to_owned(),
        ),
        other => error(
            400,
            "InvalidAction",
            &format!("The action {other:?} is not valid for this web service (the bench's fake EC2 serves DescribeInstances, DescribeVolumes, CreateTags, StopInstances, TerminateInstances, GetCallerIdentity)."),
        ),
    }
}

fn not_found(missing: &[String]) -> (u16, String) {
    let message = if missing.len() == 1 {
        format!("The instance ID '{}' does not exist", missing[0])
    } else {
        format!("The instance IDs '{}' do not exist", missing.join(", "))
    };
    error(400, "InvalidInstanceID.NotFound", &message)
}

/// The indices of `ids`, or the NotFound error EC2 gives when any is unknown.
fn resolve(ids: &[String], fleet: &Fleet) -> Result<Vec<usize>, (u16, String)> {
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !fleet.index.contains_key(*id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(not_found(&missing));
    }
    Ok(ids.iter().map(|id| fleet.index[id]).collect())
}

/// Where a page starts: 0, or the `NextToken` (`fake-<n>`) the last page gave, at most `len`;
/// any other token is refused as EC2 refuses one.
fn start(params: &Params, len: usize) -> Result<usize, (u16, String)> {
    let Some(t) = params.get("NextToken") else {
        return Ok(0);
    };
    match t
        .strip_prefix("fake-")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n <= len => Ok(n),
        _ => Err(error(
            400,
            "InvalidParameterValue",
            &format!("The NextToken {t:?} is not valid"),
        )),
    }
}

fn describe(params: &Params, fleet: &Fleet) -> (u16, String) {
    let mut states: Option<Vec<String>> = None;
    let mut by_id: Option<std::collections::HashSet<String>> = None;
    for n in 1.. {
        let Some(name) = params.get(&format!("Filter.{n}.Name")) else {
            break;
        };
        let values = params.list(&format!("Filter.{n}.Value"));
        match name {
            "instance-state-name" => states = Some(values),
            "instance-id" => by_id = Some(values.into_iter().collect()),
            _ => return error(
                400,
                "InvalidParameterValue",
                &format!("The filter '{name}' is not supported by the bench's fake EC2 (only instance-state-name and instance-id)"),
            ),
        }
    }
    let ids = params.list("InstanceId");
    let max_results = params.get("MaxResults");
    if !ids.is_empty() && max_results.is_some() {
        return error(
            400,
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        );
    }
    let keep = |i: &&FakeInstance| {
        states
            .as_ref()
            .is_none_or(|s| s.iter().any(|s| s == i.state.name()))
            && by_id.as_ref().is_none_or(|ids| ids.contains(&i.id))
    };
    let selected: Vec<&FakeInstance> = if let (true, Some(wanted)) = (ids.is_empty(), &by_id) {
        // By index, not a scan of the whole fleet, in the fleet's order as EC2 keeps it.
        let mut found: Vec<usize> = wanted
            .iter()
            .filter_map(|id| fleet.index.get(id).copied())
            .collect();
        found.sort_unstable();
        found
            .into_iter()
            .map(|i| &fleet.instances[i])
            .filter(keep)
            .collect()
    } else if ids.is_empty() {
        fleet.instances.iter().filter(keep).collect()
    } else {
        match resolve(&ids, fleet) {
            Ok(indices) => indices
                .into_iter()
                .map(|i| &fleet.instances[i])
                .filter(keep)
                .collect(),
            Err(e) => return e,
        }
    };
    let page_size = match max_results.map(str::parse::<usize>) {
        None => MAX_PAGE,
        Some(Ok(n)) if (5..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return error(
                400,
                "InvalidParameterValue",
                &format!(
                    "MaxResults {:?} must be between 5 and 1000",
                    max_results.unwrap_or_default()
                ),
            )
        }
    };
    let start = match start(params, selected.len()) {
        Ok(n) => n,
        Err(e) => return e,
    };
    // Lookups by id come back whole (EC2 does not page them).
    let end = if ids.is_empty() {
        (start + page_size).min(selected.len())
    } else {
        selected.len()
    };
    let page = &selected[start..end];
    let mut xml = String::with_capacity(page.len() * 3200 + 512);
    let _ = write!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"{NS}\"><requestId>fake-ec2</requestId><reservationSet>"
    );
    let mut i = 0;
    while i < page.len() {
        let reservation = &page[i].reservation;
        let _ = write!(
            xml,
            "<item><reservationId>{reservation}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>"
        );
        while i < page.len() && &page[i].reservation == reservation {
            instance_xml(&mut xml, page[i]);
            i += 1;
        }
        xml.push_str("</instancesSet></item>");
    }
    xml.push_str("</reservationSet>");
    if end < selected.len() {
        let _ = write!(xml, "<nextToken>fake-{end}</nextToken>");
    }
    xml.push_str("</DescribeInstancesResponse>");
    (200, xml)
}

/// The instance types of the fake fleet, by instance number (`n % 4`); the Price List stub
/// (`crate::pricing`) has their eu-west-1 Linux prices.
pub const INSTANCE_TYPES: [&str; 4] = ["t3.micro", "m5.large", "c5.xlarge", "t3.medium"];

/// The root volume's size by instance number (`n % 3`), GiB; every volume is gp3 at its free
/// 3 000 IOPS and 125 MiB/s.
pub const VOLUME_GIB: [u32; 3] = [8, 30, 100];

/// The number in an instance's (or its volume's) id: its last eight hex digits.
pub fn number(id: &str) -> u64 {
    let hex = id.trim_start_matches("i-").trim_start_matches("vol-");
    u64::from_str_radix(&hex[hex.len().saturating_sub(8)..], 16).unwrap_or(0)
}

/// The instance type of the instance `id`.
pub fn instance_type(id: &str) -> &'static str {
    INSTANCE_TYPES[(number(id) % INSTANCE_TYPES.len() as u64) as usize]
}

/// The most volumes DescribeVolumes returns in a page (EC2's limit for `MaxResults`).
const MAX_VOLUME_PAGE: usize = 500;

/// DescribeVolumes by the `volume-id` filter: the root volumes of the instances not terminated,
/// paged as EC2 pages them.
fn describe_volumes(params: &Params, fleet: &Fleet) -> (u16, String) {
    let mut wanted: Option<Vec<String>> = None;
    for n in 1.. {
        let Some(name) = params.get(&format!("Filter.{n}.Name")) else {
            break;
        };
        match name {
            "volume-id" => wanted = Some(params.list(&format!("Filter.{n}.Value"))),
            _ => return error(
                400,
                "InvalidParameterValue",
                &format!("The filter '{name}' is not supported by the bench's fake EC2 DescribeVolumes (only volume-id)"),
            ),
        }
    }
    let Some(wanted) = wanted else {
        return error(
            400,
            "InvalidParameterValue",
            "the bench's fake EC2 DescribeVolumes needs the volume-id filter",
        );
    };
    let page_size = match params.get("MaxResults").map(str::parse::<usize>) {
        None => MAX_VOLUME_PAGE,
        Some(Ok(n)) if (5..=MAX_VOLUME_PAGE).contains(&n) => n,
        Some(_) => {
            return error(
                400,
                "InvalidParameterValue",
                "MaxResults must be between 5 and 500",
            )
        }
    };
    let found: Vec<(&FakeInstance, &str)> = wanted
        .iter()
        .filter_map(|v| {
            let id = format!("i-{}", v.strip_prefix("vol-")?);
            let i = &fleet.instances[*fleet.index.get(&id)?];
            (i.state != State::Terminated).then_some((i, v.as_str()))
        })
        .collect();
    let start = match start(params, found.len()) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let end = (start + page_size).min(found.len());
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeVolumesResponse xmlns=\"{NS}\"><requestId>fake-ec2</requestId><volumeSet>"
    );
    for (i, volume) in &found[start..end] {
        let gib = VOLUME_GIB[(number(&i.id) % VOLUME_GIB.len() as u64) as usize];
        let time = i.launch_time.format("%Y-%m-%dT%H:%M:%S.000Z");
        let _ = write!(
            xml,
            "<item><volumeId>{volume}</volumeId><size>{gib}</size><snapshotId/><availabilityZone>eu-west-1a</availabilityZone>\
<status>in-use</status><createTime>{time}</createTime><attachmentSet><item><volumeId>{volume}</volumeId>\
<instanceId>{id}</instanceId><device>/dev/sda1</device><status>attached</status><attachTime>{time}</attachTime>\
<deleteOnTermination>true</deleteOnTermination></item></attachmentSet><volumeType>gp3</volumeType><iops>3000</iops>\
<encrypted>false</encrypted><multiAttachEnabled>false</multiAttachEnabled><throughput>125</throughput></item>",
            id = i.id
        );
    }
    xml.push_str("</volumeSet>");
    if end < found.len() {
        let _ = write!(xml, "<nextToken>fake-{end}</nextToken>");
    }
    xml.push_str("</DescribeVolumesResponse>");
    (200, xml)
}

/// Deterministic pseudo-addresses and resource ids from the instance id, so pages carry as many
/// bytes as moto's.
fn instance_xml(xml: &mut String, i: &FakeInstance) {
    let hex = i.id.trim_start_matches("i-");
    let n = number(&i.id);
    let (a, b) = ((n >> 8) & 0xff, n & 0xff);
    let time = i.launch_time.format("%Y-%m-%dT%H:%M:%S.000Z");
    let state = i.state;
    let _ = write!(
        xml,
        "<item><architecture>x86_64</architecture><blockDeviceMapping><item><deviceName>/dev/sda1</deviceName>\
<ebs><attachTime>{time}</attachTime><deleteOnTermination>true</deleteOnTermination><status>attached</status>\
<volumeId>vol-{hex}</volumeId></ebs></item></blockDeviceMapping><clientToken>fake-{hex}</clientToken>\
<ebsOptimized>false</ebsOptimized><hypervisor>xen</hypervisor><networkInterfaceSet><item><association>\
<ipOwnerId>123456789012</ipOwnerId><publicDnsName>ip-54-214-{a}-{b}.ec2.internal</publicDnsName><publicIp>54.214.{a}.{b}</publicIp>\
</association><attachment><attachTime>{time}</attachTime><attachmentId>eni-attach-{hex}</attachmentId>\
<deleteOnTermination>false</deleteOnTermination><deviceIndex>0</deviceIndex><status>attached</status>\
<networkCardIndex>0</networkCardIndex></attachment><description>Primary network interface</description><groupSet><item>\
<groupId>sg-0fake0000000000001</groupId><groupName>default</groupName></item></groupSet><ipv6AddressesSet/>\
<macAddress>02:00:00:00:{a:02x}:{b:02x}</macAddress><networkInterfaceId>eni-{hex}</networkInterfaceId><ownerId>123456789012</ownerId>\
<privateDnsName>ip-10-81-{a}-{b}.ec2.internal</privateDnsName><privateIpAddress>10.81.{a}.{b}</privateIpAddress><privateIpAddressesSet>\
<item><association><ipOwnerId>123456789012</ipOwnerId><publicDnsName>ip-54-214-{a}-{b}.ec2.internal</publicDnsName>\
<publicIp>54.214.{a}.{b}</publicIp></association><primary>true</primary><privateIpAddress>10.81.{a}.{b}</privateIpAddress></item>\
</privateIpAddressesSet><sourceDestCheck>true</sourceDestCheck><status>in-use</status><subnetId>subnet-0fake00000000001</subnetId>\
<vpcId>vpc-0fake000000000001</vpcId><interfaceType>interface</interfaceType></item></networkInterfaceSet>\
<rootDeviceName>/dev/sda1</rootDeviceName><rootDeviceType>ebs</rootDeviceType><groupSet/><sourceDestCheck>true</sourceDestCheck>\
<sriovNetSupport>simple</sriovNetSupport><stateReason><code/><message/></stateReason><tagSet>"
    );
    for (k, v) in &i.tags {
        let _ = write!(
            xml,
            "<item><key>{}</key><value>{}</value></item>",
            escape(k),
            escape(v)
        );
    }
    let _ = write!(
        xml,
        "</tagSet><virtualizationType>hvm</virtualizationType><hibernationOptions/><metadataOptions><state>applied</state>\
<httpTokens>optional</httpTokens><httpPutResponseHopLimit>1</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint>\
<httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags></metadataOptions>\
<instanceId>{id}</instanceId><imageId>ami-12c6146b</imageId><instanceState><code>{code}</code><name>{name}</name></instanceState>\
<privateDnsName>ip-10-81-{a}-{b}.eu-west-1.compute.internal</privateDnsName><dnsName>ec2-54-214-{a}-{b}.eu-west-1.compute.amazonaws.com</dnsName>\
<reason/><amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>{ty}</instanceType><launchTime>{time}</launchTime>\
<placement><groupName/><tenancy>default</tenancy><availabilityZone>eu-west-1a</availabilityZone></placement>\
<monitoring><state>disabled</state></monitoring><subnetId>subnet-0fake00000000001</subnetId>\
<vpcId>vpc-0fake000000000001</vpcId><privateIpAddress>10.81.{a}.{b}</privateIpAddress><ipAddress>54.214.{a}.{b}</ipAddress></item>",
        id = i.id,
        ty = instance_type(&i.id),
        code = state.code(),
        name = state.name(),
    );
}

fn create_tags(params: &Params, fleet: &mut Fleet) -> (u16, String) {
    let ids = params.list("ResourceId");
    let mut tags = Vec::new();
    for n in 1.. {
        let Some(key) = params.get(&format!("Tag.{n}.Key")) else {
            break;
        };
        let value = params.get(&format!("Tag.{n}.Value")).unwrap_or_default();
        tags.push((key.to_owned(), value.to_owned()));
    }
    if ids.is_empty() || tags.is_empty() {
        return error(
            400,
            "MissingParameter",
            "CreateTags needs ResourceId.N and Tag.N.Key",
        );
    }
    let indices = match resolve(&ids, fleet) {
        Ok(i) => i,
        Err(e) => return e,
    };
    for i in indices {
        let instance = &mut fleet.instances[i];
        for (k, v) in &tags {
            match instance.tags.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => instance.tags.push((k.clone(), v.clone())),
            }
        }
    }
    (
        200,
        format!("<CreateTagsResponse xmlns=\"{NS}\"><requestId>fake-ec2</requestId><return>true</return></CreateTagsResponse>"),
    )
}

fn transition(params: &Params, fleet: &mut Fleet, action: &str) -> (u16, String) {
    let ids = params.list("InstanceId");
    if ids.is_empty() {
        return error(
            400,
            "MissingParameter",
            &format!("{action} needs InstanceId.N"),
        );
    }
    let indices = match resolve(&ids, fleet) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut xml =
        format!("<{action}Response xmlns=\"{NS}\"><requestId>fake-ec2</requestId><instancesSet>");
    for i in indices {
        let instance = &mut fleet.instances[i];
        let previous = instance.state;
        // The answer shows the transition EC2 reports; the fleet keeps its end state, as a later
        // describe (seconds later on EC2) would see it.
        let (shown, end) = match (action, previous) {
            ("StopInstances", State::Running | State::Pending) => (State::Stopping, State::Stopped),
            ("StopInstances", other) => (other, other),
            (_, State::Terminated) => (State::Terminated, State::Terminated),
            _ => (State::ShuttingDown, State::Terminated),
        };
        instance.state = end;
        let _ = write!(
            xml,
            "<item><instanceId>{}</instanceId><currentState><code>{}</code><name>{}</name></currentState>\
             <previousState><code>{}</code><name>{}</name></previousState></item>",
            instance.id,
            shown.code(),
            shown.name(),
            previous.code(),
            previous.name()
        );
    }
    let _ = write!(xml, "</instancesSet></{action}Response>");
    (200, xml)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Waits until the fake answers (it binds before `start` returns; this is for callers that
/// want a health check anyway).
pub fn wait_ready(endpoint: &str) -> bool {
    let agent = crate::net::agent(Duration::from_secs(2));
    agent
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .send("Action=GetCallerIdentity")
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fleet(n: usize) -> Vec<FakeInstance> {
        (0..n)
            .map(|i| FakeInstance {
                id: format!("i-{i:017x}"),
                reservation: format!("r-{:017x}", i / 10),
                state: if i % 3 == 0 {
                    State::Stopped
                } else {
                    State::Running
                },
                launch_time: Utc.timestamp_opt(1_800_000_000 + i as i64, 0).unwrap(),
                tags: vec![("owner".into(), format!("team <{i}>"))],
            })
            .collect()
    }

    fn sdk(fake: &FakeEc2) -> aws_sdk_ec2::Client {
        let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "t");
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("eu-west-1"))
            .endpoint_url(fake.endpoint())
            .credentials_provider(creds)
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }

    /// The real SDK pages through the fake by instances, at most 1 000 a page, filter applied.
    #[tokio::test]
    async fn the_sdk_lists_every_instance_in_pages_of_at_most_1000() {
        let fake = FakeEc2::start(fleet(2500));
        let ec2 = sdk(&fake);
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("instance-state-name")
            .values("running")
            .build();
        let mut pages = ec2
            .describe_instances()
            .max_results(1000)
            .filters(filter)
            .into_paginator()
            .send();
        let (mut count, mut sizes) = (0, Vec::new());
        while let Some(page) = pages.next().await {
            let page = page.unwrap();
            let n: usize = page
                .reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum();
            sizes.push(n);
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                assert_eq!(i.state().unwrap().name().unwrap().as_str(), "running");
                assert!(i.tags()[0].value().unwrap().starts_with("team <"));
                assert!(i.launch_time().is_some());
                count += 1;
            }
        }
        assert_eq!(count, 2500 - 834);
        assert_eq!(sizes, [1000, 666]);
    }

    /// The reaper's own re-check lists by an `instance-id` filter: unknown ids are absent, known
    /// ones come back in pages, whatever their state filter says.
    #[tokio::test]
    async fn the_reaper_lists_by_id_through_the_instance_id_filter() {
        use reaper::ports::{Deadline, Fleet};
        let fake = FakeEc2::start(fleet(2500));
        let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "t");
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(fake.endpoint())
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(creds))
            .build();
        let ec2 = reaper::adapters::ec2::Ec2Fleet::from_sdk(&sdk);
        let mut wanted: Vec<String> = (0..1500).map(|i| format!("i-{i:017x}")).collect();
        wanted.push("i-0000000000000dead".into());
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let listed = ec2.list(Some(&wanted), Deadline::NONE).await.unwrap();
        assert_eq!(listed.len(), 1500);
        assert!(listed.iter().all(|i| i.id != "i-0000000000000dead"));
        assert_eq!(
            ec2.api_calls()["DescribeInstances"],
            2,
            "one call per 1 000 ids"
        );
    }

    #[tokio::test]
    async fn mutations_apply_and_unknown_ids_are_refused_by_name() {
        let fake = FakeEc2::start(fleet(20));
        let ec2 = sdk(&fake);
        ec2.stop_instances()
            .instance_ids("i-00000000000000001")
            .send()
            .await
            .unwrap();
        ec2.terminate_instances()
            .instance_ids("i-00000000000000002")
            .send()
            .await
            .unwrap();
        ec2.create_tags()
            .resources("i-00000000000000004")
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("k")
                    .value("v")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let err = ec2
            .terminate_instances()
            .instance_ids("i-0000000000000dead")
            .send()
            .await
            .unwrap_err();
        let text = format!("{}", aws_sdk_ec2::error::DisplayErrorContext(err));
        assert!(
            text.contains("InvalidInstanceID.NotFound") && text.contains("i-0000000000000dead"),
            "{text}"
        );
        let state = fake.instances();
        assert_eq!(state[1].state, State::Stopped);
        assert_eq!(state[2].state, State::Terminated);
        assert_eq!(state[4].tag("k"), Some("v"));
        let err = ec2.describe_vpcs().send().await.unwrap_err();
        let text = format!("{}", aws_sdk_ec2::error::DisplayErrorContext(err));
        assert!(text.contains("DescribeVpcs"), "{text}");
    }
}
