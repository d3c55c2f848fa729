//! What an instance costs while it runs, and so what a stop or a termination saves (SPEC §8
//! "Savings"): the facts the fleet lists, money exact to the Price List's ten decimals, and the
//! arithmetic. Pure: the prices come in as arguments.

use std::fmt;
use std::sync::Arc;

/// AWS's published rate for a public IPv4 address: $0.005 per IP per hour, in use or idle
/// (https://aws.amazon.com/vpc/pricing/, "Public IPv4 Addresses", in force since 2024-02-01).
/// The Price List carries it under AmazonVPC, but one constant is cheaper than a lookup.
pub(crate) const IPV4_PER_HOUR: Usd = Usd(50_000_000);
/// The month a report's monthly figures assume (AWS's own convention: 730 hours).
pub(crate) const HOURS_PER_MONTH: u64 = 730;
/// gp3 includes 3 000 IOPS and 125 MiB/s; only what is provisioned above is billed
/// (https://aws.amazon.com/ebs/pricing/).
const GP3_FREE_IOPS: u32 = 3000;
const GP3_FREE_MIBPS: u32 = 125;

/// Ten decimal places: the Price List writes `"0.0416000000"`.
const SCALE: u64 = 10_000_000_000;

/// US dollars, exact to ten decimal places (no float drift: a month of a fleet sums to the
/// cent a person computes by hand).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

impl Usd {
    pub const ZERO: Usd = Usd(0);

    /// A Price List amount (`"0.0416000000"`). Digits past the tenth decimal are rounded half
    /// up; anything but a plain non-negative decimal is refused, naming the value.
    pub(crate) fn parse(text: &str) -> Result<Usd, String> {
        let bad = || format!("price {text:?} is not a decimal amount of dollars like 0.0416");
        let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut units: u64 = 0;
        for (i, d) in frac.bytes().enumerate() {
            let digit = u64::from(d - b'0');
            match i {
                0..10 => units += digit * 10u64.pow(9 - i as u32),
                10 if digit >= 5 => units += 1,
                _ => {}
            }
        }
        whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(units))
            .map(Usd)
            .ok_or_else(bad)
    }

    pub(crate) fn times(self, n: u64) -> Usd {
        Usd(self.0.saturating_mul(n))
    }

    pub(crate) fn plus(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// A monthly amount as the hourly one it averages to (rounded half up at the tenth decimal).
    pub(crate) fn per_hour_of_month(self) -> Usd {
        Usd((self.0 + HOURS_PER_MONTH / 2) / HOURS_PER_MONTH)
    }

    /// A rate per GiB/s as the rate per MiB/s (rounded half up at the tenth decimal).
    pub(crate) fn per_mib_of_gib(self) -> Usd {
        Usd((self.0 + 512) / 1024)
    }

    /// Rounded half up to `decimals` (at most ten), as a plain decimal: `30.37`.
    pub fn fixed(self, decimals: u32) -> String {
        let decimals = decimals.min(10);
        let step = 10u64.pow(10 - decimals);
        let rounded = (self.0 + step / 2) / step;
        let unit = 10u64.pow(decimals);
        if decimals == 0 {
            return rounded.to_string();
        }
        format!(
            "{}.{:0width$}",
            rounded / unit,
            rounded % unit,
            width = decimals as usize
        )
    }

    /// Whole cents, rounded half up.
    pub fn cents(self) -> u64 {
        (self.0 + SCALE / 200) / (SCALE / 100)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Usd {
    /// Every digit that counts, at least two decimals: `30.368`, `8.00`.
    pub(crate) fn digits(self) -> String {
        let full = self.fixed(10);
        let trimmed = full.trim_end_matches('0');
        let decimals = trimmed.len() - trimmed.find('.').unwrap_or(trimmed.len()) - 1;
        if decimals < 2 {
            self.fixed(2)
        } else {
            trimmed.to_string()
        }
    }
}

/// In JSON, a string of `digits` (`"30.368"`, `"8.00"`): exact, where a float would not be.
impl serde::Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.digits())
    }
}

impl<'de> serde::Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Usd::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `$30.37`: to the cent, as a person reads an amount.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.fixed(2))
    }
}

/// Where an instance runs (`Placement.Tenancy`), as the Price List names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tenancy {
    Shared,
    Dedicated,
    Host,
}

impl Tenancy {
    pub(crate) fn price_list_name(self) -> &'static str {
        match self {
            Tenancy::Shared => "Shared",
            Tenancy::Dedicated => "Dedicated",
            Tenancy::Host => "Host",
        }
    }
}

/// How the instance is bought (`InstanceLifecycle`). The ledger uses list (on-demand) prices for
/// all of them: what a Spot or Capacity Block instance really costs is not in the Price List.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purchase {
    OnDemand,
    Spot,
    CapacityBlock,
}

/// An EBS volume attached to an instance, as DescribeInstances shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub volume_id: Box<str>,
    pub delete_on_termination: bool,
}

/// What an instance is billed for, as the fleet lists it. Kept only for instances the run acts
/// on or holds back (`Option<Box<_>>` in the ledger: eight bytes for the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billing {
    /// Shared: the run keeps one copy of each type and platform (`Ledger`), not one per instance.
    pub instance_type: Arc<str>,
    /// `PlatformDetails` (`Linux/UNIX`, `Windows with SQL Server Standard`, …).
    pub platform: Arc<str>,
    pub tenancy: Tenancy,
    pub purchase: Purchase,
    /// Public IPv4 addresses Amazon assigned (released with a stop or a termination; an Elastic
    /// IP stays allocated and billed, so it is not counted).
    pub public_ipv4: u8,
    pub volumes: Box<[Attached]>,
}

/// An EBS volume as DescribeVolumes shows it: what its price depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub volume_id: String,
    /// `gp3`, `io2`, … (the Price List's `volumeApiName`).
    pub volume_type: String,
    pub size_gib: u32,
    pub iops: Option<u32>,
    pub throughput_mibps: Option<u32>,
}

/// One Price List question for compute: every attribute that changes the hourly price.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputeKey {
    pub instance_type: String,
    pub region: String,
    pub operating_system: &'static str,
    pub pre_installed_sw: &'static str,
    pub license_model: &'static str,
    pub tenancy: Tenancy,
}

/// `PlatformDetails` -> (operatingSystem, preInstalledSw, licenseModel) as the Price List's
/// AmazonEC2 products name them.
const PLATFORMS: &[(&str, &str, &str, &str)] = &[
    ("Linux/UNIX", "Linux", "NA", "No License required"),
    (
        "Red Hat Enterprise Linux",
        "RHEL",
        "NA",
        "No License required",
    ),
    (
        "Red Hat Enterprise Linux with HA",
        "Red Hat Enterprise Linux with HA",
        "NA",
        "No License required",
    ),
    ("SUSE Linux", "SUSE", "NA", "No License required"),
    ("Ubuntu Pro", "Ubuntu Pro", "NA", "No License required"),
    ("Windows", "Windows", "NA", "No License required"),
    ("Windows BYOL", "Windows", "NA", "Bring your own license"),
    (
        "Windows with SQL Server Standard",
        "Windows",
        "SQL Std",
        "No License required",
    ),
    (
        "Windows with SQL Server Web",
        "Windows",
        "SQL Web",
        "No License required",
    ),
    (
        "Windows with SQL Server Enterprise",
        "Windows",
        "SQL Ent",
        "No License required",
    ),
    (
        "Linux with SQL Server Standard",
        "Linux",
        "SQL Std",
        "No License required",
    ),
    (
        "Linux with SQL Server Web",
        "Linux",
        "SQL Web",
        "No License required",
    ),
    (
        "Linux with SQL Server Enterprise",
        "Linux",
        "SQL Ent",
        "No License required",
    ),
];

impl Billing {
    /// The Price List question for this instance's compute in `region`, or why there is none.
    pub(crate) fn compute_key(&self, region: &str) -> Result<ComputeKey, String> {
        let Some((_, os, sw, license)) = PLATFORMS.iter().find(|p| *p.0 == *self.platform) else {
            return Err(format!(
                "platform '{}' has no Price List equivalent the reaper knows",
                self.platform
            ));
        };
        Ok(ComputeKey {
            instance_type: self.instance_type.to_string(),
            region: region.to_string(),
            operating_system: os,
            pre_installed_sw: sw,
            license_model: license,
            tenancy: self.tenancy,
        })
    }
}

/// The Price List's rates for one EBS volume type in one region, per month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeRates {
    pub per_gib: Usd,
    /// Per provisioned IOPS (io1, io2, gp3 above its free 3 000).
    pub per_iops: Option<Usd>,
    /// Per provisioned MiB/s (gp3 above its free 125).
    pub per_mibps: Option<Usd>,
}

impl VolumeRates {
    /// What `volume` costs a month.
    pub(crate) fn monthly(&self, volume: &Volume) -> Usd {
        let gp3 = volume.volume_type == "gp3";
        let (free_iops, free_mibps) = if gp3 {
            (GP3_FREE_IOPS, GP3_FREE_MIBPS)
        } else {
            (0, 0)
        };
        let mut total = self.per_gib.times(u64::from(volume.size_gib));
        if let (Some(rate), Some(iops)) = (self.per_iops, volume.iops) {
            total = total.plus(rate.times(u64::from(iops.saturating_sub(free_iops))));
        }
        if let (Some(rate), Some(mibps)) = (self.per_mibps, volume.throughput_mibps) {
            total = total.plus(rate.times(u64::from(mibps.saturating_sub(free_mibps))));
        }
        total
    }
}

/// What one action stops paying for, by kind: compute and public IPv4 per hour, EBS per month
/// (as each is priced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saving {
    pub compute_per_hour: Usd,
    pub ipv4_per_hour: Usd,
    pub ebs_per_month: Usd,
}

impl Saving {
    /// Exact: the hourly kinds times 730, plus the monthly one.
    pub fn per_month(&self) -> Usd {
        self.compute_per_hour
            .plus(self.ipv4_per_hour)
            .times(HOURS_PER_MONTH)
            .plus(self.ebs_per_month)
    }

    /// The monthly EBS share averaged to the hour (rounded at the tenth decimal).
    pub fn per_hour(&self) -> Usd {
        self.compute_per_hour
            .plus(self.ipv4_per_hour)
            .plus(self.ebs_per_month.per_hour_of_month())
    }

    pub(crate) fn add(&mut self, other: &Saving) {
        self.compute_per_hour = self.compute_per_hour.plus(other.compute_per_hour);
        self.ipv4_per_hour = self.ipv4_per_hour.plus(other.ipv4_per_hour);
        self.ebs_per_month = self.ebs_per_month.plus(other.ebs_per_month);
    }
}

/// What an action on a running (or stopped) instance saves. A stopped instance runs no compute
/// and holds no Amazon-assigned address; a stop keeps every volume; a termination deletes the
/// volumes marked `DeleteOnTermination` (the others are left behind, still billed).
pub(crate) fn saving(
    running: bool,
    terminate: bool,
    billing: &Billing,
    compute_per_hour: Usd,
    volumes: &[(bool, Usd)],
) -> Saving {
    let (compute, ipv4) = if running {
        (
            compute_per_hour,
            IPV4_PER_HOUR.times(u64::from(billing.public_ipv4)),
        )
    } else {
        (Usd::ZERO, Usd::ZERO)
    };
    let ebs = if terminate {
        volumes
            .iter()
            .filter(|(deleted, _)| *deleted)
            .fold(Usd::ZERO, |sum, (_, monthly)| sum.plus(*monthly))
    } else {
        Usd::ZERO
    };
    Saving {
        compute_per_hour: compute,
        ipv4_per_hour: ipv4,
        ebs_per_month: ebs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[test]
    fn price_list_amounts_are_exact() {
        assert_eq!(usd("0.0416000000"), Usd(416_000_000));
        assert_eq!(usd("1"), Usd(SCALE));
        assert_eq!(usd(".5"), Usd(SCALE / 2));
        assert_eq!(
            usd("0.00000000005"),
            Usd(1),
            "half up at the eleventh decimal"
        );
        for bad in ["", ".", "-1", "1e3", "0,04", "USD 1", "1.2.3"] {
            let err = Usd::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(usd("0.0416").times(730).fixed(2), "30.37");
        assert_eq!(usd("0.005").to_string(), "$0.01");
        assert_eq!(usd("0.0416").fixed(4), "0.0416");
        assert_eq!(usd("12.345").fixed(0), "12");
        let json = |u: Usd| serde_json::to_string(&u).unwrap();
        assert_eq!(json(usd("30.368")), "\"30.368\"");
        assert_eq!(json(usd("8")), "\"8.00\"");
        assert_eq!(json(usd("0.0000000001")), "\"0.0000000001\"");
        assert_eq!(
            serde_json::from_str::<Usd>("\"0.0416\"").unwrap(),
            usd("0.0416")
        );
    }

    #[test]
    fn a_month_of_many_small_rates_adds_up_to_the_cent() {
        // 1000 instances at $0.0104/h: an f64 sum of 7.592 drifts, this does not.
        let one = Saving {
            compute_per_hour: usd("0.0104"),
            ..Saving::default()
        };
        let mut all = Saving::default();
        for _ in 0..1000 {
            all.add(&one);
        }
        assert_eq!(all.per_month().fixed(2), "7592.00");
        assert_eq!(all.per_hour().fixed(4), "10.4000");
    }

    fn billing(platform: &str, ipv4: u8) -> Billing {
        Billing {
            instance_type: "m5.large".into(),
            platform: platform.into(),
            tenancy: Tenancy::Shared,
            purchase: Purchase::OnDemand,
            public_ipv4: ipv4,
            volumes: Box::new([]),
        }
    }

    #[test]
    fn a_stop_saves_compute_and_addresses_a_termination_also_the_volumes_it_deletes() {
        let b = billing("Linux/UNIX", 2);
        let vols = [(true, usd("8.00")), (false, usd("80.00"))];
        let stop = saving(true, false, &b, usd("0.096"), &vols);
        assert_eq!(
            (
                stop.compute_per_hour,
                stop.ipv4_per_hour,
                stop.ebs_per_month
            ),
            (usd("0.096"), usd("0.01"), Usd::ZERO)
        );
        let term = saving(true, true, &b, usd("0.096"), &vols);
        assert_eq!(term.ebs_per_month, usd("8"));
        // 0.106 * 730 + 8 = 85.38
        assert_eq!(term.per_month().fixed(2), "85.38");
        let stopped = saving(false, true, &b, usd("0.096"), &vols);
        assert_eq!(
            stopped.per_month(),
            usd("8"),
            "a stopped machine costs its disks"
        );
    }

    #[test]
    fn gp3_bills_only_above_its_free_iops_and_throughput() {
        let rates = VolumeRates {
            per_gib: usd("0.08"),
            per_iops: Some(usd("0.005")),
            per_mibps: Some(usd("0.04")),
        };
        let vol = |t: &str, iops, tp| Volume {
            volume_id: "vol-1".into(),
            volume_type: t.into(),
            size_gib: 100,
            iops,
            throughput_mibps: tp,
        };
        assert_eq!(rates.monthly(&vol("gp3", Some(3000), Some(125))), usd("8"));
        // 8 + 1000 * 0.005 + 125 * 0.04
        assert_eq!(rates.monthly(&vol("gp3", Some(4000), Some(250))), usd("18"));
        // io2 bills every provisioned IOPS.
        assert_eq!(rates.monthly(&vol("io2", Some(1000), None)), usd("13"));
    }

    #[test]
    fn platforms_map_to_price_list_attributes_or_say_why_not() {
        let key = billing("Windows with SQL Server Standard", 0)
            .compute_key("eu-west-1")
            .unwrap();
        assert_eq!(
            (
                key.operating_system,
                key.pre_installed_sw,
                key.license_model
            ),
            ("Windows", "SQL Std", "No License required")
        );
        let err = billing("Plan 9", 0).compute_key("eu-west-1").unwrap_err();
        assert_eq!(
            err,
            "platform 'Plan 9' has no Price List equivalent the reaper knows"
        );
    }
}
