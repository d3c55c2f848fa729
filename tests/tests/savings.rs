//! The ledger of savings (SPEC §8 "Savings") through the real `reaper` binary: EC2 in moto
//! (behind the loopback proxy, which adds the fields EC2 sends and moto does not), prices from
//! the loopback Price List stub that speaks the real protocol.

use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, InstanceType, VolumeType};
use aws_sdk_ec2::types::{InstanceStateName, Placement, ResourceType, Tag, TagSpecification};
use reaper::report::RunReport;
use reaper_e2e::proxy::{top_level_items, Proxy, Rewrite};
use reaper_e2e::{fixture, reaper_binary, Function, Moto, PriceListStub, PricingMode, RuntimeApi};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const REGION: &str = "us-west-2";
const ZONE: &str = "us-west-2a";
const TIMEOUT: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(300);
/// Announced to its owner two days before the date: the notice gate lets it go.
const TOLD_2020: &str = "terminate 2020-01-01T00:00:00Z told 2019-12-30T00:00:00Z";
const DUE: (&str, &str) = ("termination_date", "2020-01-01T00:00:00Z");
const ANNOUNCED: (&str, &str) = ("reaper:announced", TOLD_2020);

/// What EC2 says of an instance and moto does not: `PlatformDetails`, a tenancy, a purchase
/// option, and whether the public address is Amazon's (moto names the account as its owner, which
/// on EC2 means an Elastic IP).
#[derive(Clone, Default)]
struct Ec2Says {
    platform: &'static str,
    dedicated: bool,
    spot: bool,
    amazon_ip: bool,
}

type Says = Arc<Mutex<HashMap<String, Ec2Says>>>;

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// Rewrites each DescribeInstances item of a known instance as EC2 would have written it.
fn as_ec2_says(says: Says) -> Rewrite {
    Arc::new(move |op: &str, body: &mut Vec<u8>| {
        if op != "DescribeInstances" {
            return;
        }
        let says = says.lock().unwrap().clone();
        let text = String::from_utf8_lossy(body).into_owned();
        let mut out = String::with_capacity(text.len() + 1024);
        let mut copied = 0;
        let mut search = 0;
        while let Some(at) = text[search..].find("<instancesSet>") {
            let base = search + at;
            for (s, e) in top_level_items(&text[base..], "instancesSet") {
                let (s, e) = (base + s, base + e);
                let item = &text[s..e];
                let Some(say) =
                    between(item, "<instanceId>", "</instanceId>").and_then(|id| says.get(id))
                else {
                    continue;
                };
                let mut item = item.replacen(
                    "</instanceId>",
                    &format!(
                        "</instanceId><platformDetails>{}</platformDetails>{}",
                        say.platform,
                        if say.spot {
                            "<instanceLifecycle>spot</instanceLifecycle>"
                        } else {
                            ""
                        }
                    ),
                    1,
                );
                if say.dedicated {
                    item =
                        item.replace("<tenancy>default</tenancy>", "<tenancy>dedicated</tenancy>");
                }
                if say.amazon_ip {
                    item = item.replace(
                        "<ipOwnerId>123456789012</ipOwnerId>",
                        "<ipOwnerId>amazon</ipOwnerId>",
                    );
                }
                out.push_str(&text[copied..s]);
                out.push_str(&item);
                copied = e;
            }
            search = base + "<instancesSet>".len();
        }
        out.push_str(&text[copied..]);
        *body = out.into_bytes();
    })
}

struct Rig {
    moto: Moto,
    proxy: Proxy,
    says: Says,
    stub: PriceListStub,
    runtime: RuntimeApi,
    function: Function,
}

fn rig(mode: PricingMode, extra_env: &[(&str, &str)]) -> Rig {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let says: Says = Arc::default();
    proxy.set_rewrite(Some(as_ec2_says(Arc::clone(&says))));
    let stub = PriceListStub::start(mode);
    let runtime = RuntimeApi::start(REGION);
    let mut env = moto.env(REGION);
    for (k, v) in env.iter_mut() {
        if k == "AWS_ENDPOINT_URL" {
            *v = proxy.endpoint();
        }
    }
    env.push(("AWS_ENDPOINT_URL_PRICING".into(), stub.url()));
    env.push(("GRACE_PERIOD".into(), "0m".into()));
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let function = Function::spawn(&reaper_binary(), &runtime, &env);
    Rig {
        moto,
        proxy,
        says,
        stub,
        runtime,
        function,
    }
}

/// One EBS volume at launch: (device, type, GiB, DeleteOnTermination).
type Disk = (&'static str, VolumeType, i32, bool);

impl Rig {
    fn ec2(&self) -> aws_sdk_ec2::Client {
        self.moto.ec2(REGION)
    }

    async fn launch(
        &self,
        ty: InstanceType,
        disks: &[Disk],
        tags: &[(&str, &str)],
        says: Ec2Says,
    ) -> String {
        let mut req = self
            .ec2()
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(ty)
            .placement(Placement::builder().availability_zone(ZONE).build())
            .min_count(1)
            .max_count(1);
        for (device, kind, gib, delete) in disks {
            req = req.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(*device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_type(kind.clone())
                            .volume_size(*gib)
                            .delete_on_termination(*delete)
                            .build(),
                    )
                    .build(),
            );
        }
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            req = req.tag_specifications(spec.build());
        }
        let out = req.send().await.expect("RunInstances");
        let id = out.instances()[0].instance_id().unwrap().to_string();
        self.says.lock().unwrap().insert(id.clone(), says);
        id
    }

    /// An io2 volume created apart and attached: EC2 keeps such a volume after a termination.
    async fn attach_io2(&self, instance: &str, gib: i32, iops: i32) -> String {
        let vol = self
            .ec2()
            .create_volume()
            .availability_zone(ZONE)
            .volume_type(VolumeType::Io2)
            .size(gib)
            .iops(iops)
            .send()
            .await
            .expect("CreateVolume");
        let id = vol.volume_id().unwrap().to_string();
        self.ec2()
            .attach_volume()
            .volume_id(&id)
            .instance_id(instance)
            .device("/dev/sdg")
            .send()
            .await
            .expect("AttachVolume");
        id
    }

    fn report(&self) -> (RunReport, Value) {
        let v = self
            .function
            .invoke(&self.runtime, fixture("schedule.json"), TIMEOUT, DEADLINE)
            .unwrap_response();
        let report = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("not a run report ({e}): {v:#}"));
        (report, v)
    }

    /// `reaperctl` (the real binary) against the same EC2 and prices; its standard output.
    fn reaperctl(&self, args: &[&str]) -> String {
        let mut cmd = std::process::Command::new(reaper_e2e::reaperctl_binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.moto.env(REGION))
            .env("AWS_ENDPOINT_URL", self.proxy.endpoint())
            .env("AWS_ENDPOINT_URL_PRICING", self.stub.url())
            .env("GRACE_PERIOD", "0m")
            .env("NO_COLOR", "1")
            .args(args);
        let out = cmd.output().expect("run reaperctl");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    async fn state(&self, id: &str) -> InstanceStateName {
        let out = self
            .ec2()
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        out.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .clone()
    }
}

fn linux() -> Ec2Says {
    Ec2Says {
        platform: "Linux/UNIX",
        amazon_ip: true,
        ..Ec2Says::default()
    }
}

/// The fixture fleet, with what the hand computation below expects of each instance (Price List
/// stub, us-west-2): returns (A, B, C, D, E, F) and the two left-behind volume ids.
async fn fleet(rig: &Rig) -> ([String; 6], String, String) {
    use InstanceType as T;
    use VolumeType as V;
    // A: m5.large Linux, Amazon IPv4; deletes gp3 20 GiB, leaves gp2 50 GiB.
    let a = rig
        .launch(
            T::M5Large,
            &[
                ("/dev/sda1", V::Gp3, 20, true),
                ("/dev/sdf", V::Gp2, 50, false),
            ],
            &[DUE, ANNOUNCED, ("Name", "a")],
            linux(),
        )
        .await;
    // B: t3.medium Windows behind an Elastic IP (not released by a termination); deletes gp2
    // 30 GiB, leaves an io2 20 GiB / 1000 IOPS attached after launch.
    let b = rig
        .launch(
            T::T3Medium,
            &[("/dev/sda1", V::Gp2, 30, true)],
            &[DUE, ANNOUNCED, ("Name", "b")],
            Ec2Says {
                platform: "Windows",
                ..Ec2Says::default()
            },
        )
        .await;
    let b_io2 = rig.attach_io2(&b, 20, 1000).await;
    // C: m5.large Windows with SQL Server Standard, Spot (priced at list), Amazon IPv4: stopped.
    let c = rig
        .launch(
            T::M5Large,
            &[],
            &[("Name", "c")],
            Ec2Says {
                platform: "Windows with SQL Server Standard",
                spot: true,
                amazon_ip: true,
                ..Ec2Says::default()
            },
        )
        .await;
    // D: c5.xlarge Red Hat Enterprise Linux, Amazon IPv4: stopped.
    let d = rig
        .launch(
            T::C5Xlarge,
            &[],
            &[("Name", "d")],
            Ec2Says {
                platform: "Red Hat Enterprise Linux",
                amazon_ip: true,
                ..Ec2Says::default()
            },
        )
        .await;
    // E: due but never announced (the notice gate holds it back): at stake. m5.large Linux on
    // dedicated tenancy, Amazon IPv4, deletes a 10 GiB magnetic volume.
    let e = rig
        .launch(
            T::M5Large,
            &[("/dev/sda1", V::Standard, 10, true)],
            &[DUE, ("Name", "e")],
            Ec2Says {
                dedicated: true,
                ..linux()
            },
        )
        .await;
    // F: a lifetime to stamp: no action, no saving.
    let f = rig
        .launch(T::T3Micro, &[], &[("lifetime", "30d")], linux())
        .await;
    let a_gp2 = volume_at(rig, &a, "/dev/sdf").await;
    ([a, b, c, d, e, f], a_gp2, b_io2)
}

async fn volume_at(rig: &Rig, instance: &str, device: &str) -> String {
    let out = rig
        .ec2()
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(device))
        .and_then(|m| m.ebs()?.volume_id())
        .unwrap()
        .to_string()
}

/// The instance's line of the ledger, on its line of the report (`instances[].saving`).
fn line<'a>(report: &'a Value, id: &str) -> &'a Value {
    let instance = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no report line for {id}: {report:#}"));
    let saving = &instance["saving"];
    assert!(saving.is_object(), "no savings line for {id}: {instance:#}");
    saving
}

/// The fixture's own lines of the ledger, by hand (see the dry run's test): A to D counted at
/// their monthly figures, E held back.
fn assert_the_fixture_lines(report: &Value, [a, b, c, d, e]: [&str; 5]) {
    assert_eq!(
        line(report, a)["per_month"],
        "75.33",
        "{:#}",
        line(report, a)
    );
    assert_eq!(line(report, b)["per_month"], "46.80");
    assert_eq!(line(report, c)["per_month"], "491.29");
    assert_eq!(line(report, d)["per_month"], "171.55");
    assert_eq!(line(report, e)["held"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_reports_what_it_would_save_to_the_cent() {
    let rig = rig(PricingMode::Ok, &[]);
    let ([a, b, c, d, e, f], a_gp2, b_io2) = fleet(&rig).await;
    let (report, json) = rig.report();
    let s = &json["savings"];
    assert_eq!(s["price_source"], "pricing-api", "{s:#}");
    // By hand, per month (730 h):
    //   A terminate: (0.096 m5.large + 0.005 IPv4) * 730 + 20 GiB * 0.08 gp3     =  75.33
    //   B terminate: 0.060 t3.medium Windows * 730 + 30 GiB * 0.10 gp2            =  46.80
    //   C stop:      (0.668 m5.large Windows+SQL Std + 0.005) * 730                = 491.29
    //   D stop:      (0.230 c5.xlarge RHEL + 0.005) * 730                           = 171.55
    //   would save                                                                 = 784.97
    //   E held back: (0.106 m5.large dedicated + 0.005) * 730 + 10 GiB * 0.05     =  81.53
    //   left behind: A's gp2 50 GiB * 0.10 = 5.00; B's io2 20 * 0.125 + 1000 * 0.065 = 67.50
    assert_the_fixture_lines(&json, [&a, &b, &c, &d, &e]);
    // F is kept: the ledger does not count it, and its report line (if any) has no saving.
    assert!(json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["id"] != f.as_str() || l.get("saving").is_none()));
    assert_eq!(s["by_action"]["terminate"]["per_month"], "122.13");
    assert_eq!(s["by_action"]["stop"]["per_month"], "662.84");
    assert_eq!(s["saved"]["per_month"], "784.97");
    assert_eq!(s["saved"]["instances"], 4);
    assert_eq!(s["saved"]["instance_hours_per_month"], 2920);
    // 1.054 compute + 0.015 IPv4 + 4.60 / 730 EBS, per hour.
    assert_eq!(s["saved"]["per_hour"], "1.0753013699");
    assert_eq!(s["by_kind"]["compute"], "769.42");
    assert_eq!(s["by_kind"]["ebs"], "4.60");
    assert_eq!(s["by_kind"]["public_ipv4"], "10.95");
    assert_eq!(s["at_stake"]["per_month"], "81.53");
    assert_eq!(s["at_stake"]["instances"], 1);
    let mut left: Vec<(String, String, String)> = s["left_behind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["volume_id"].as_str().unwrap().to_string(),
                l["instance_id"].as_str().unwrap().to_string(),
                l["per_month"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    left.sort();
    let mut want = vec![
        (a_gp2, a.clone(), "5.00".to_string()),
        (b_io2, b.clone(), "67.50".to_string()),
    ];
    want.sort();
    assert_eq!(left, want);
    // One GetProducts per distinct (type, OS, tenancy) — 5 — and per volume type — gp3, gp2,
    // io2, standard — and one DescribeVolumes for the terminations' 6 volumes.
    let requests = rig.stub.requests();
    assert_eq!(requests.len(), 9, "{requests:#?}");
    assert!(requests
        .iter()
        .all(|r| r.target == "AWSPriceListService.GetProducts"));
    assert_eq!(report.api_calls["GetProducts"], 9);
    assert_eq!(report.api_calls["DescribeVolumes"], 1);
    assert_eq!(rig.proxy.calls()["DescribeVolumes"], 1);
    // A dry run changes nothing.
    assert_eq!(rig.state(&a).await, InstanceStateName::Running);
    // The metrics line carries the dollars.
    assert!(rig
        .function
        .wait_for_stdout("SavingsPerMonthUSD", Duration::from_secs(5)));
    let emf = rig
        .function
        .json_lines()
        .into_iter()
        .find(|l| l.get("_aws").is_some())
        .expect("EMF line");
    assert_eq!(emf["SavingsPerMonthUSD"], 784.97);
    assert_eq!(emf["SavingsPerMonthUSD.stop"], 662.84);
    // reaperctl plan, with the same prices: the total under the table.
    let plan = rig.reaperctl(&["plan", "--region", REGION]);
    assert!(
        plan.contains("$ Would save about $784.97/month (4 instances: terminate $122.13, stop $662.84; list prices). Held back: $81.53/month more (1 instances)"),
        "{plan}"
    );
    // The filters are the documented ones.
    let compute = requests
        .iter()
        .find(|r| r.body.to_string().contains("\"c5.xlarge\""))
        .expect("the c5.xlarge lookup");
    let fields: Vec<(&str, &str)> = compute.body["Filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["Type"], "TERM_MATCH");
            (f["Field"].as_str().unwrap(), f["Value"].as_str().unwrap())
        })
        .collect();
    for want in [
        ("instanceType", "c5.xlarge"),
        ("regionCode", REGION),
        ("operatingSystem", "RHEL"),
        ("tenancy", "Shared"),
        ("preInstalledSw", "NA"),
        ("capacitystatus", "Used"),
    ] {
        assert!(fields.contains(&want), "{want:?} not in {fields:?}");
    }
    assert_eq!(compute.body["ServiceCode"], "AmazonEC2");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_pricing_get_products_the_run_acts_and_reports_hours_and_why() {
    let rig = rig(PricingMode::Denied, &[("LIVEMODE", "true")]);
    let ([a, _, c, _, e, _], _, _) = fleet(&rig).await;
    let (report, json) = rig.report();
    let s = &json["savings"];
    let source = s["price_source"].as_str().unwrap();
    assert!(
        source.starts_with("unavailable: AccessDeniedException: ")
            && source.contains("pricing:GetProducts"),
        "{source}"
    );
    assert!(s["saved"]["per_month"].is_null(), "{s:#}");
    assert_eq!(s["saved"]["instance_hours_per_month"], 2920);
    assert_eq!(s["at_stake"]["instance_hours_per_month"], 730);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // The refusal changed no outcome: terminated, stopped, held as judged.
    assert_eq!(rig.state(&a).await, InstanceStateName::Terminated);
    assert_eq!(rig.state(&c).await, InstanceStateName::Stopped);
    assert_eq!(rig.state(&e).await, InstanceStateName::Running);
    // The first refusal ends the pricing: one call, not one per key.
    assert_eq!(rig.stub.requests().len(), 1);
}

/// A live run prices what its terminations delete: the volumes are described before the
/// instances are terminated (EC2, like moto, deletes a `DeleteOnTermination` volume with its
/// instance, and DescribeVolumes no longer shows it). Before the fix the live run described them
/// afterwards and A's and B's lines had no price ("DescribeVolumes does not show it").
#[tokio::test(flavor = "multi_thread")]
async fn a_live_run_prices_the_volumes_its_terminations_delete() {
    let rig = rig(PricingMode::Ok, &[("LIVEMODE", "true")]);
    let ([a, b, c, d, e, _], _, _) = fleet(&rig).await;
    let (report, json) = rig.report();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(rig.state(&a).await, InstanceStateName::Terminated);
    assert_eq!(rig.state(&b).await, InstanceStateName::Terminated);
    let s = &json["savings"];
    assert_eq!(s["price_source"], "pricing-api", "{s:#}");
    assert!(s.get("unpriced").is_none(), "{s:#}");
    // The same figures as the dry run's, now saved rather than "would".
    assert_the_fixture_lines(&json, [&a, &b, &c, &d, &e]);
    assert_eq!(s["saved"]["per_month"], "784.97");
    assert_eq!(s["by_kind"]["ebs"], "4.60");
}
