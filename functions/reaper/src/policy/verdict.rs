//! One instance + now + rules -> one verdict (SPEC §3). First matching row wins.

use super::tags::{
    format_date, format_duration, parse_lifetime, parse_termination_date, Lifetime, TagError,
    TerminationDate, INDEFINITE, LIFETIME, TERMINATION_DATE,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Tags that say "something else owns this instance and will replace it" (SPEC §5).
/// Data in one place: add a key here and every rule, test and report follows.
pub const MANAGED_TAG_KEYS: &[&str] = &[
    "aws:autoscaling:groupName",
    "aws:ec2spot:fleet-request-id",
    "aws:ec2:fleet-id",
    "eks:nodegroup-name",
    "karpenter.sh/nodepool",
    // Karpenter before v1 (v1alpha5 Provisioners) names the provisioner instead.
    "karpenter.sh/provisioner-name",
    "aws:elasticmapreduce:job-flow-id",
];

/// EC2 instance states, as the policy needs them. Names are EC2's (`shutting-down`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The states a sweep judges; the server-side listing filter uses exactly these.
    pub(crate) const JUDGED: [InstanceState; 4] =
        [Self::Pending, Self::Running, Self::Stopping, Self::Stopped];
}

/// The facts about one instance that the policy reads. No AWS types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub launch_time: DateTime<Utc>,
    /// Attach time of the root EBS volume: survives stop/start, unlike `launch_time`.
    pub root_attach_time: Option<DateTime<Utc>>,
    pub tags: Tags,
    /// What it is billed for (the ledger of savings); `None` when the listing did not say.
    pub billing: Option<Box<crate::policy::price::Billing>>,
}

/// An instance's tags, sorted by key. A sorted `Vec`, not a `BTreeMap`: a 100 000-instance
/// listing keeps every instance's tags, and a B-tree spends a 544-byte node on even one tag.
pub type Tags = litemap::LiteMap<String, String>;

impl Instance {
    /// When the instance first launched (SPEC §2): root volume attach time, else LaunchTime.
    pub(crate) fn first_launch(&self) -> DateTime<Utc> {
        // A root volume attached after launch (a replaced root) must not extend the lifetime.
        self.root_attach_time
            .map_or(self.launch_time, |attached| attached.min(self.launch_time))
    }

    pub(crate) fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// The knobs the rules read (from `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub grace_period: TimeDelta,
    pub warn_window: TimeDelta,
    pub skip_managed: bool,
    /// MAX_LIFETIME (SPEC §2): no instance outlives first launch + this, whatever its tags say.
    /// `None` is `unlimited`.
    pub max_lifetime: Option<TimeDelta>,
    /// ALLOW_INDEFINITE: whether `indefinite` is honoured.
    pub allow_indefinite: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            grace_period: TimeDelta::minutes(15),
            warn_window: TimeDelta::days(1),
            skip_managed: true,
            max_lifetime: None,
            allow_indefinite: true,
        }
    }
}

/// MAX_LIFETIME in force (SPEC §2): the reaper acts on `at` (first launch + `max_lifetime`), not
/// on what the tag says. The tag itself is left as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub at: DateTime<Utc>,
    pub max_lifetime: TimeDelta,
    /// The `termination_date` the bound overrides: a later date, or `indefinite` while
    /// ALLOW_INDEFINITE=false.
    pub written: TerminationDate,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = format_duration(self.max_lifetime);
        let at = format_date(self.at);
        match self.written {
            TerminationDate::At(written) => write!(
                f,
                "{TERMINATION_DATE} {} is beyond first launch + MAX_LIFETIME {max}, so {at} is enforced",
                format_date(written)
            ),
            TerminationDate::Indefinite => write!(
                f,
                "{TERMINATION_DATE}={INDEFINITE} is not allowed (ALLOW_INDEFINITE=false), so first launch + MAX_LIFETIME {max} = {at} is enforced"
            ),
        }
    }
}

/// The lifetime a stamp counts from first launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The `lifetime` tag as written (trimmed), e.g. `7d`.
    Lifetime(String),
    /// `lifetime=indefinite` while ALLOW_INDEFINITE=false: MAX_LIFETIME counts instead.
    MaxLifetime(TimeDelta),
}

impl fmt::Display for Asked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Asked::Lifetime(value) => write!(f, "{LIFETIME} {value}"),
            Asked::MaxLifetime(max) => write!(
                f,
                "{LIFETIME} {INDEFINITE} is not allowed (ALLOW_INDEFINITE=false), so MAX_LIFETIME {}",
                format_duration(*max)
            ),
        }
    }
}

/// How a stamped date was chosen; the reason quotes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampRule {
    /// `lifetime=indefinite`, honoured.
    Indefinite,
    /// First launch + the lifetime, as asked (always so inside the grace period).
    Lifetime { asked: Asked },
    /// The notice rule of SPEC §2: outside the grace period, first launch + lifetime (`due`) had
    /// passed or was less than WARN_WINDOW away, so the date written is now + WARN_WINDOW and the
    /// owner hears of it before it bites.
    NoticeFirst {
        asked: Asked,
        due: DateTime<Utc>,
        passed: bool,
    },
}

/// What the value written into `termination_date` will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Indefinite,
    At(DateTime<Utc>),
}

impl Stamp {
    pub(crate) fn tag_value(self) -> String {
        match self {
            Stamp::Indefinite => INDEFINITE.to_string(),
            Stamp::At(at) => format_date(at),
        }
    }
}

/// The verdict for one instance. Deciding is here; doing is in `sweep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Row 1: an owner (ASG, fleet, EKS, Karpenter, EMR) would replace it.
    SkipManaged { tag_key: &'static str },
    /// Rows 2 and 5. `bound` is set when MAX_LIFETIME, not the tag, gives `until`.
    Keep {
        until: Option<DateTime<Utc>>,
        bound: Option<Box<Bound>>,
    },
    /// Row 3, and row 7 inside the grace period when the date is already due (`stamp` is then
    /// `Some`). `date` is the date enforced: the tag's, or MAX_LIFETIME's when `bound` is set.
    Terminate {
        date: DateTime<Utc>,
        stamp: Option<Stamp>,
        bound: Option<Box<Bound>>,
    },
    /// Row 4; `date` as for `Terminate`.
    Expiring {
        date: DateTime<Utc>,
        bound: Option<Box<Bound>>,
    },
    /// Rows 6 and 7 (not yet due, or outside the grace period, where a stamp never terminates).
    /// `bound` is set when MAX_LIFETIME will cut the date written once it is judged.
    Stamp {
        stamp: Stamp,
        rule: StampRule,
        bound: Option<Box<Bound>>,
    },
    /// Row 8: missing or invalid tags, still inside the grace period.
    Wait {
        until: DateTime<Utc>,
        problem: Problem,
    },
    /// Row 9.
    Stop { problem: Problem },
    /// Row 10.
    Noncompliant { problem: Problem },
}

/// Why an instance has no usable date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        /// A tag whose key differs from a real one only in case or white space.
        near_miss: Option<String>,
    },
    Invalid(TagError),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { near_miss: None } => {
                write!(f, "no {TERMINATION_DATE} or {LIFETIME} tag")
            }
            Problem::Missing {
                near_miss: Some(key),
            } => write!(
                f,
                "no {TERMINATION_DATE} or {LIFETIME} tag (found {key:?}; tag keys are case-sensitive)"
            ),
            Problem::Invalid(err) => err.fmt(f),
        }
    }
}

/// The verdict names used in reports, counts and metrics.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum VerdictKind {
    SkipManaged,
    Keep,
    Terminate,
    Expiring,
    Stamp,
    Wait,
    Stop,
    Noncompliant,
}

impl VerdictKind {
    /// In the order a person should read them: what the reaper does first.
    pub(crate) const ALL: [VerdictKind; 8] = [
        Self::Terminate,
        Self::Stop,
        Self::Stamp,
        Self::Expiring,
        Self::Wait,
        Self::Noncompliant,
        Self::SkipManaged,
        Self::Keep,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Verdict {
    pub(crate) fn kind(&self) -> VerdictKind {
        match self {
            Verdict::SkipManaged { .. } => VerdictKind::SkipManaged,
            Verdict::Keep { .. } => VerdictKind::Keep,
            Verdict::Terminate { .. } => VerdictKind::Terminate,
            Verdict::Expiring { .. } => VerdictKind::Expiring,
            Verdict::Stamp { .. } => VerdictKind::Stamp,
            Verdict::Wait { .. } => VerdictKind::Wait,
            Verdict::Stop { .. } => VerdictKind::Stop,
            Verdict::Noncompliant { .. } => VerdictKind::Noncompliant,
        }
    }

    /// The termination date the verdict rests on, if any: for a stamp, the date written.
    pub(crate) fn termination_date(&self) -> Option<DateTime<Utc>> {
        match self {
            Verdict::Keep { until, .. } => *until,
            Verdict::Terminate { date, .. } | Verdict::Expiring { date, .. } => Some(*date),
            Verdict::Stamp {
                stamp: Stamp::At(at),
                ..
            } => Some(*at),
            _ => None,
        }
    }

    /// The date the reaper will act on: `termination_date`, unless MAX_LIFETIME cuts it.
    pub(crate) fn enforced_date(&self) -> Option<DateTime<Utc>> {
        self.bound()
            .map(|b| b.at)
            .or_else(|| self.termination_date())
    }

    /// MAX_LIFETIME, when it (not the tag) decides the date.
    pub(crate) fn bound(&self) -> Option<&Bound> {
        match self {
            Verdict::Keep { bound, .. }
            | Verdict::Terminate { bound, .. }
            | Verdict::Expiring { bound, .. }
            | Verdict::Stamp { bound, .. } => bound.as_deref(),
            _ => None,
        }
    }

    /// One sentence for the report and Slack.
    pub(crate) fn reason(&self) -> String {
        match self {
            Verdict::SkipManaged { tag_key } => {
                format!("managed (tag {tag_key}); its owner would replace it")
            }
            Verdict::Keep { until: None, .. } => format!("{TERMINATION_DATE}={INDEFINITE}"),
            Verdict::Keep {
                until: Some(at),
                bound: None,
            }
            | Verdict::Expiring {
                date: at,
                bound: None,
            } => format!("expires {}", format_date(*at)),
            Verdict::Keep {
                bound: Some(bound), ..
            }
            | Verdict::Expiring {
                bound: Some(bound), ..
            } => format!("{bound}; expires {}", format_date(bound.at)),
            Verdict::Terminate {
                date,
                stamp: None,
                bound: None,
            } => format!("{TERMINATION_DATE} {} has passed", format_date(*date)),
            Verdict::Terminate {
                date,
                stamp: Some(_),
                bound: None,
            } => format!(
                "{LIFETIME} ended {} (stamped {TERMINATION_DATE})",
                format_date(*date)
            ),
            Verdict::Terminate {
                stamp,
                bound: Some(bound),
                ..
            } => {
                let stamped = stamp.map_or(String::new(), |s| {
                    format!("stamped {TERMINATION_DATE}={}; ", s.tag_value())
                });
                format!("{stamped}{bound}, which has passed")
            }
            Verdict::Stamp { stamp, rule, bound } => {
                let value = stamp.tag_value();
                let stamped = match rule {
                    StampRule::Indefinite
                    | StampRule::Lifetime {
                        asked: Asked::Lifetime(_),
                    } => format!("{LIFETIME} -> {TERMINATION_DATE}={value}"),
                    StampRule::Lifetime { asked } => {
                        format!("{asked} from first launch -> {TERMINATION_DATE}={value}")
                    }
                    StampRule::NoticeFirst {
                        asked,
                        passed: true,
                        ..
                    } => format!(
                        "{asked} from first launch had passed; stamped now + WARN_WINDOW so the owner is told first: {TERMINATION_DATE}={value}"
                    ),
                    StampRule::NoticeFirst {
                        asked,
                        due,
                        passed: false,
                    } => format!(
                        "{asked} from first launch ends {}, less than WARN_WINDOW away; stamped now + WARN_WINDOW so the owner is told first: {TERMINATION_DATE}={value}",
                        format_date(*due)
                    ),
                };
                match bound {
                    Some(bound) => format!("{stamped}; {bound} when judged"),
                    None => stamped,
                }
            }
            Verdict::Wait { until, problem } => {
                format!("{problem}; grace period until {}", format_date(*until))
            }
            Verdict::Stop { problem } => problem.to_string(),
            Verdict::Noncompliant { problem } => format!("{problem}; already stopped"),
        }
    }

    /// The `termination_date` value to write, when the verdict writes one.
    pub(crate) fn stamp(&self) -> Option<Stamp> {
        match self {
            Verdict::Stamp { stamp, .. } => Some(*stamp),
            Verdict::Terminate { stamp, .. } => *stamp,
            _ => None,
        }
    }
}

/// Judges one instance (SPEC §3). Pure: `now` is a parameter, never the clock.
pub fn judge(instance: &Instance, now: DateTime<Utc>, rules: &Rules) -> Verdict {
    if rules.skip_managed {
        if let Some(tag_key) = MANAGED_TAG_KEYS
            .iter()
            .find(|key| instance.tags.contains_key(**key))
        {
            return Verdict::SkipManaged { tag_key };
        }
    }

    let first_launch = instance.first_launch();
    let problem = match instance.tag(TERMINATION_DATE) {
        Some(raw) => match parse_termination_date(raw) {
            Ok(written) => match enforced(raw, written, first_launch, rules) {
                Ok((None, _)) => {
                    return Verdict::Keep {
                        until: None,
                        bound: None,
                    }
                }
                Ok((Some(date), bound)) => return by_date(date, bound, now, rules),
                Err(err) => Problem::Invalid(err),
            },
            Err(err) => Problem::Invalid(err),
        },
        // Once an instance has a termination_date, lifetime is never consulted (SPEC §2).
        None => match instance.tag(LIFETIME).map(|raw| (raw, parse_lifetime(raw))) {
            Some((_, Ok(Lifetime::Indefinite))) if rules.allow_indefinite => {
                return Verdict::Stamp {
                    stamp: Stamp::Indefinite,
                    rule: StampRule::Indefinite,
                    bound: None,
                }
            }
            Some((raw, Ok(Lifetime::Indefinite))) => match rules.max_lifetime {
                Some(max) => {
                    return stamp_lifetime(first_launch, Asked::MaxLifetime(max), max, now, rules)
                }
                None => Problem::Invalid(indefinite_refused(LIFETIME, raw, "7d")),
            },
            Some((raw, Ok(Lifetime::For(lifetime)))) => {
                let asked = Asked::Lifetime(raw.trim().to_string());
                return stamp_lifetime(first_launch, asked, lifetime, now, rules);
            }
            Some((_, Err(err))) => Problem::Invalid(err),
            None => Problem::Missing {
                near_miss: near_miss(instance),
            },
        },
    };

    let grace_ends = first_launch + rules.grace_period;
    if now < grace_ends {
        return Verdict::Wait {
            until: grace_ends,
            problem,
        };
    }
    match instance.state {
        InstanceState::Running | InstanceState::Pending => Verdict::Stop { problem },
        _ => Verdict::Noncompliant { problem },
    }
}

/// The date enforced (none for `indefinite`, when allowed) and the MAX_LIFETIME bound, if it
/// decides the date.
type Enforced = (Option<DateTime<Utc>>, Option<Box<Bound>>);

/// The date a valid `termination_date` is enforced as (`None`: kept indefinitely), with the
/// MAX_LIFETIME bound when that, not the tag, decides it.
fn enforced(
    raw: &str,
    written: TerminationDate,
    first_launch: DateTime<Utc>,
    rules: &Rules,
) -> Result<Enforced, TagError> {
    let bound = |max_lifetime| {
        Box::new(Bound {
            at: whole_seconds(first_launch + max_lifetime),
            max_lifetime,
            written,
        })
    };
    match (written, rules.max_lifetime) {
        (TerminationDate::Indefinite, _) if rules.allow_indefinite => Ok((None, None)),
        (TerminationDate::Indefinite, Some(max)) => {
            let bound = bound(max);
            Ok((Some(bound.at), Some(bound)))
        }
        // Without a bound to put in its place, a refused `indefinite` is an unusable tag: the
        // instance is stopped, never terminated, like any other tag the reaper cannot honour.
        (TerminationDate::Indefinite, None) => Err(indefinite_refused(
            TERMINATION_DATE,
            raw,
            "2030-01-01T00:00:00Z",
        )),
        (TerminationDate::At(date), Some(max)) if date > bound(max).at => {
            let bound = bound(max);
            Ok((Some(bound.at), Some(bound)))
        }
        (TerminationDate::At(date), _) => Ok((Some(date), None)),
    }
}

fn indefinite_refused(key: &'static str, raw: &str, example: &str) -> TagError {
    TagError {
        key,
        value: raw.to_string(),
        reason: format!(
            "{INDEFINITE} is not allowed here (ALLOW_INDEFINITE=false); write e.g. {example}"
        ),
    }
}

fn by_date(
    date: DateTime<Utc>,
    bound: Option<Box<Bound>>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Verdict {
    if date <= now {
        Verdict::Terminate {
            date,
            stamp: None,
            bound,
        }
    } else if date <= now + rules.warn_window {
        Verdict::Expiring { date, bound }
    } else {
        Verdict::Keep {
            until: Some(date),
            bound,
        }
    }
}

/// Row 7: a lifetime becomes a date (SPEC §2).
///
/// Inside the grace period the date is first launch + lifetime, due at once if that has passed:
/// a new instance launched with `lifetime=0m` asks for exactly that. Outside it, whoever adds a
/// lifetime to an old machine means "this much more", so the date written is never less than
/// WARN_WINDOW away and a stamp never terminates: the owner is told first.
///
/// The date is written as computed even beyond MAX_LIFETIME; the bound applies when the tag is
/// judged, and the verdict carries it so the report and the owner's notice show the real date.
fn stamp_lifetime(
    first_launch: DateTime<Utc>,
    asked: Asked,
    lifetime: TimeDelta,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Verdict {
    let due = whole_seconds(first_launch + lifetime);
    let cut = |written: DateTime<Utc>| {
        rules.max_lifetime.and_then(|max_lifetime| {
            let at = whole_seconds(first_launch + max_lifetime);
            (at < written).then(|| {
                Box::new(Bound {
                    at,
                    max_lifetime,
                    written: TerminationDate::At(written),
                })
            })
        })
    };

    if now < first_launch + rules.grace_period {
        let bound = cut(due);
        let enforced = bound.as_ref().map_or(due, |b| b.at);
        return if enforced <= now {
            Verdict::Terminate {
                date: enforced,
                stamp: Some(Stamp::At(due)),
                bound,
            }
        } else {
            Verdict::Stamp {
                stamp: Stamp::At(due),
                rule: StampRule::Lifetime { asked },
                bound,
            }
        };
    }

    // Rounded up, not down: a whole-second date must still be a full WARN_WINDOW away.
    let earliest = ceil_seconds(now + rules.warn_window);
    let (written, rule) = if due < earliest {
        let passed = due <= now;
        (earliest, StampRule::NoticeFirst { asked, due, passed })
    } else {
        (due, StampRule::Lifetime { asked })
    };
    Verdict::Stamp {
        stamp: Stamp::At(written),
        rule,
        bound: cut(written),
    }
}

/// Truncated to whole seconds, as dates are written (SPEC §2), so the verdict made from the tag
/// next run is the verdict made now.
fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

fn ceil_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = whole_seconds(at);
    if floor < at {
        floor + TimeDelta::seconds(1)
    } else {
        floor
    }
}

fn near_miss(instance: &Instance) -> Option<String> {
    instance
        .tags
        .keys()
        .find(|key| {
            let k = key.trim();
            k.eq_ignore_ascii_case(TERMINATION_DATE) || k.eq_ignore_ascii_case(LIFETIME)
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn inst(state: InstanceState, age: TimeDelta, tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            state,
            launch_time: now() - age,
            root_attach_time: None,
            billing: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    use InstanceState::*;

    #[test]
    fn every_row_of_the_spec_table() {
        let rules = Rules::default();
        let old = TimeDelta::hours(2);
        let young = TimeDelta::minutes(5);
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // (row, instance, expected verdict)
        let rows: Vec<(&str, Instance, Verdict)> = vec![
            (
                "1 managed (ASG), even if expired",
                inst(
                    Running,
                    old,
                    &[
                        ("aws:autoscaling:groupName", "web"),
                        (TERMINATION_DATE, "2020-01-01T00:00:00Z"),
                    ],
                ),
                Verdict::SkipManaged {
                    tag_key: "aws:autoscaling:groupName",
                },
            ),
            (
                "1 managed (karpenter), untagged",
                inst(Running, old, &[("karpenter.sh/nodepool", "default")]),
                Verdict::SkipManaged {
                    tag_key: "karpenter.sh/nodepool",
                },
            ),
            (
                "1 managed (karpenter before v1), even if expired",
                inst(
                    Running,
                    old,
                    &[
                        ("karpenter.sh/provisioner-name", "default"),
                        (TERMINATION_DATE, "2020-01-01T00:00:00Z"),
                    ],
                ),
                Verdict::SkipManaged {
                    tag_key: "karpenter.sh/provisioner-name",
                },
            ),
            (
                "2 indefinite",
                inst(
                    Running,
                    old,
                    &[(TERMINATION_DATE, "indefinite"), (LIFETIME, "0m")],
                ),
                Verdict::Keep {
                    until: None,
                    bound: None,
                },
            ),
            (
                "3 expired, running",
                inst(Running, old, &[(TERMINATION_DATE, "2030-01-01T11:59:59Z")]),
                Verdict::Terminate {
                    date: t("2030-01-01T11:59:59Z"),
                    stamp: None,
                    bound: None,
                },
            ),
            (
                "3 expired exactly now, stopped (terminated in any state)",
                inst(Stopped, old, &[(TERMINATION_DATE, "2030-01-01T12:00:00Z")]),
                Verdict::Terminate {
                    date: now(),
                    stamp: None,
                    bound: None,
                },
            ),
            (
                "3 expired, young (grace does not protect a valid date)",
                inst(
                    Pending,
                    young,
                    &[(TERMINATION_DATE, "2030-01-01 11:00 UTC")],
                ),
                Verdict::Terminate {
                    date: t("2030-01-01T11:00:00Z"),
                    stamp: None,
                    bound: None,
                },
            ),
            (
                "4 inside the warn window",
                inst(Running, old, &[(TERMINATION_DATE, "2030-01-02T12:00:00Z")]),
                Verdict::Expiring {
                    date: t("2030-01-02T12:00:00Z"),
                    bound: None,
                },
            ),
            (
                "5 beyond the warn window",
                inst(Running, old, &[(TERMINATION_DATE, "2030-01-02T12:00:01Z")]),
                Verdict::Keep {
                    until: Some(t("2030-01-02T12:00:01Z")),
                    bound: None,
                },
            ),
            (
                "5 date wins over lifetime",
                inst(
                    Running,
                    old,
                    &[(TERMINATION_DATE, "2031-01-01T00:00:00Z"), (LIFETIME, "0m")],
                ),
                Verdict::Keep {
                    until: Some(t("2031-01-01T00:00:00Z")),
                    bound: None,
                },
            ),
            (
                "6 lifetime indefinite",
                inst(Running, old, &[(LIFETIME, "indefinite")]),
                Verdict::Stamp {
                    stamp: Stamp::Indefinite,
                    rule: StampRule::Indefinite,
                    bound: None,
                },
            ),
            (
                "7 lifetime not yet due, a full warn window away",
                inst(Running, old, &[(LIFETIME, "2d")]),
                Verdict::Stamp {
                    stamp: Stamp::At(now() - old + TimeDelta::days(2)),
                    rule: StampRule::Lifetime {
                        asked: Asked::Lifetime("2d".into()),
                    },
                    bound: None,
                },
            ),
            (
                "7 lifetime ends inside the warn window, outside grace: now + WARN_WINDOW",
                inst(Running, old, &[(LIFETIME, "1d")]),
                Verdict::Stamp {
                    stamp: Stamp::At(now() + TimeDelta::days(1)),
                    rule: StampRule::NoticeFirst {
                        asked: Asked::Lifetime("1d".into()),
                        due: now() - old + TimeDelta::days(1),
                        passed: false,
                    },
                    bound: None,
                },
            ),
            (
                "7 lifetime passed, outside grace: stamped now + WARN_WINDOW, never terminated",
                inst(Running, old, &[(LIFETIME, "1h")]),
                Verdict::Stamp {
                    stamp: Stamp::At(now() + TimeDelta::days(1)),
                    rule: StampRule::NoticeFirst {
                        asked: Asked::Lifetime("1h".into()),
                        due: now() - TimeDelta::hours(1),
                        passed: true,
                    },
                    bound: None,
                },
            ),
            (
                "7 lifetime due inside grace: stamp then terminate",
                inst(Running, young, &[(LIFETIME, "1m")]),
                Verdict::Terminate {
                    date: now() - young + TimeDelta::minutes(1),
                    stamp: Some(Stamp::At(now() - young + TimeDelta::minutes(1))),
                    bound: None,
                },
            ),
            (
                "7 lifetime 0m, brand new",
                inst(Pending, TimeDelta::zero(), &[(LIFETIME, "0m")]),
                Verdict::Terminate {
                    date: now(),
                    stamp: Some(Stamp::At(now())),
                    bound: None,
                },
            ),
            (
                "8 missing tags, young",
                inst(Pending, young, &[("Name", "x")]),
                Verdict::Wait {
                    until: now() - young + TimeDelta::minutes(15),
                    problem: Problem::Missing { near_miss: None },
                },
            ),
            (
                "9 missing tags, running",
                inst(Running, old, &[]),
                Verdict::Stop {
                    problem: Problem::Missing { near_miss: None },
                },
            ),
            (
                "9 invalid date, pending",
                inst(Pending, old, &[(TERMINATION_DATE, "2030-01-01")]),
                Verdict::Stop {
                    problem: Problem::Invalid(parse_termination_date("2030-01-01").unwrap_err()),
                },
            ),
            (
                "9 invalid date never falls back to a valid lifetime",
                inst(
                    Running,
                    old,
                    &[(TERMINATION_DATE, "tomorrow"), (LIFETIME, "0m")],
                ),
                Verdict::Stop {
                    problem: Problem::Invalid(parse_termination_date("tomorrow").unwrap_err()),
                },
            ),
            (
                "9 invalid lifetime",
                inst(Running, old, &[(LIFETIME, "1w2d")]),
                Verdict::Stop {
                    problem: Problem::Invalid(parse_lifetime("1w2d").unwrap_err()),
                },
            ),
            (
                "9 near-miss key",
                inst(
                    Running,
                    old,
                    &[("Termination_Date", "2020-01-01T00:00:00Z")],
                ),
                Verdict::Stop {
                    problem: Problem::Missing {
                        near_miss: Some("Termination_Date".into()),
                    },
                },
            ),
            (
                "10 missing tags, stopped",
                inst(Stopped, old, &[]),
                Verdict::Noncompliant {
                    problem: Problem::Missing { near_miss: None },
                },
            ),
            (
                "10 invalid lifetime, stopping",
                inst(Stopping, old, &[(LIFETIME, "2D")]),
                Verdict::Noncompliant {
                    problem: Problem::Invalid(parse_lifetime("2D").unwrap_err()),
                },
            ),
        ];
        for (row, instance, want) in rows {
            assert_eq!(judge(&instance, now(), &rules), want, "row {row}");
        }
    }

    #[test]
    fn skip_managed_off_judges_managed_instances() {
        let rules = Rules {
            skip_managed: false,
            ..Rules::default()
        };
        for key in MANAGED_TAG_KEYS {
            let i = inst(Running, TimeDelta::hours(2), &[(key, "x")]);
            assert_eq!(
                judge(&i, now(), &Rules::default()).kind(),
                VerdictKind::SkipManaged,
                "{key}"
            );
            assert_eq!(judge(&i, now(), &rules).kind(), VerdictKind::Stop, "{key}");
        }
    }

    #[test]
    fn lifetime_counts_from_the_root_volume_attach_time() {
        // Stopped and started an hour ago: LaunchTime is recent, the root volume is old.
        let mut i = inst(Running, TimeDelta::hours(1), &[(LIFETIME, "5d")]);
        i.root_attach_time = Some(now() - TimeDelta::days(3));
        assert_eq!(
            judge(&i, now(), &Rules::default()).stamp(),
            Some(Stamp::At(now() + TimeDelta::days(2)))
        );
        // Its lifetime has passed: outside the grace period the stamp gives notice first.
        i.tags.insert(LIFETIME.into(), "1d".into());
        assert_eq!(
            judge(&i, now(), &Rules::default()),
            Verdict::Stamp {
                stamp: Stamp::At(now() + TimeDelta::days(1)),
                rule: StampRule::NoticeFirst {
                    asked: Asked::Lifetime("1d".into()),
                    due: now() - TimeDelta::days(2),
                    passed: true,
                },
                bound: None,
            }
        );
        // ... and so does the grace period.
        let mut i = inst(Running, TimeDelta::minutes(1), &[]);
        i.root_attach_time = Some(now() - TimeDelta::days(3));
        assert_eq!(
            judge(&i, now(), &Rules::default()).kind(),
            VerdictKind::Stop
        );
    }

    #[test]
    fn stamped_dates_have_whole_seconds() {
        let mut i = inst(Running, TimeDelta::zero(), &[(LIFETIME, "1d")]);
        i.launch_time += TimeDelta::milliseconds(750);
        let v = judge(&i, now(), &Rules::default());
        assert_eq!(v.stamp().unwrap().tag_value(), "2030-01-02T12:00:00Z");
    }

    #[test]
    fn grace_period_zero_stops_at_once() {
        let rules = Rules {
            grace_period: TimeDelta::zero(),
            ..Rules::default()
        };
        let i = inst(Pending, TimeDelta::zero(), &[]);
        assert_eq!(judge(&i, now(), &rules).kind(), VerdictKind::Stop);
    }

    #[test]
    fn reasons_name_the_problem() {
        let i = inst(
            Running,
            TimeDelta::hours(2),
            &[(TERMINATION_DATE, "2030-01-01T10:00")],
        );
        let reason = judge(&i, now(), &Rules::default()).reason();
        assert!(
            reason.contains("has no time zone; write 2030-01-01T10:00:00Z"),
            "{reason}"
        );
        let i = inst(Stopped, TimeDelta::hours(2), &[]);
        assert_eq!(
            judge(&i, now(), &Rules::default()).reason(),
            "no termination_date or lifetime tag; already stopped"
        );
    }

    /// Issue 12's first hole: on the code of 77bea9e this instance was terminated at once.
    #[test]
    fn a_lifetime_added_to_an_old_machine_is_stamped_with_notice_not_terminated() {
        let i = inst(Stopped, TimeDelta::weeks(3), &[(LIFETIME, "7d")]);
        let v = judge(&i, now(), &Rules::default());
        assert_eq!(v.kind(), VerdictKind::Stamp);
        assert_eq!(v.stamp(), Some(Stamp::At(t("2030-01-02T12:00:00Z"))));
        assert_eq!(
            v.reason(),
            "lifetime 7d from first launch had passed; stamped now + WARN_WINDOW so the owner is told first: termination_date=2030-01-02T12:00:00Z"
        );
        let soon = inst(
            Running,
            TimeDelta::days(6) + TimeDelta::hours(20),
            &[(LIFETIME, "7d")],
        );
        assert_eq!(
            judge(&soon, now(), &Rules::default()).reason(),
            "lifetime 7d from first launch ends 2030-01-01T16:00:00Z, less than WARN_WINDOW away; stamped now + WARN_WINDOW so the owner is told first: termination_date=2030-01-02T12:00:00Z"
        );
        // The date written is rounded up to whole seconds: never less than WARN_WINDOW away.
        let v = judge(&i, now() + TimeDelta::milliseconds(1), &Rules::default());
        assert_eq!(v.stamp(), Some(Stamp::At(t("2030-01-02T12:00:01Z"))));
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn max_lifetime_and_allow_indefinite() {
        let max = TimeDelta::days(30);
        let bounded = Rules {
            max_lifetime: Some(max),
            ..Rules::default()
        };
        let strict = Rules {
            allow_indefinite: false,
            ..bounded.clone()
        };
        let no_indefinite = Rules {
            allow_indefinite: false,
            ..Rules::default()
        };
        let tiny = Rules {
            max_lifetime: Some(TimeDelta::minutes(5)),
            ..Rules::default()
        };
        let far = "2031-06-01T00:00:00Z";
        let bound = |age: TimeDelta, written: TerminationDate| {
            Box::new(Bound {
                at: now() - age + max,
                max_lifetime: max,
                written,
            })
        };
        let far_date = TerminationDate::At(t(far));
        // (case, instance, rules, verdict, reason)
        let cases: Vec<(&str, Instance, &Rules, Verdict, &str)> = vec![
            (
                "a later date is enforced as the bound (kept)",
                inst(Running, TimeDelta::days(10), &[(TERMINATION_DATE, far)]),
                &bounded,
                Verdict::Keep {
                    until: Some(t("2030-01-21T12:00:00Z")),
                    bound: Some(bound(TimeDelta::days(10), far_date)),
                },
                "termination_date 2031-06-01T00:00:00Z is beyond first launch + MAX_LIFETIME 30d, so 2030-01-21T12:00:00Z is enforced; expires 2030-01-21T12:00:00Z",
            ),
            (
                "a later date is enforced as the bound (expiring)",
                inst(Running, TimeDelta::days(29) + TimeDelta::hours(12), &[(TERMINATION_DATE, far)]),
                &bounded,
                Verdict::Expiring {
                    date: t("2030-01-02T00:00:00Z"),
                    bound: Some(bound(TimeDelta::days(29) + TimeDelta::hours(12), far_date)),
                },
                "termination_date 2031-06-01T00:00:00Z is beyond first launch + MAX_LIFETIME 30d, so 2030-01-02T00:00:00Z is enforced; expires 2030-01-02T00:00:00Z",
            ),
            (
                "a later date is enforced as the bound (terminated, stopped or not)",
                inst(Stopped, TimeDelta::days(31), &[(TERMINATION_DATE, far)]),
                &bounded,
                Verdict::Terminate {
                    date: t("2029-12-31T12:00:00Z"),
                    stamp: None,
                    bound: Some(bound(TimeDelta::days(31), far_date)),
                },
                "termination_date 2031-06-01T00:00:00Z is beyond first launch + MAX_LIFETIME 30d, so 2029-12-31T12:00:00Z is enforced, which has passed",
            ),
            (
                "an earlier date is the tag's own",
                inst(Running, TimeDelta::days(10), &[(TERMINATION_DATE, "2030-01-05T00:00:00Z")]),
                &bounded,
                Verdict::Keep {
                    until: Some(t("2030-01-05T00:00:00Z")),
                    bound: None,
                },
                "expires 2030-01-05T00:00:00Z",
            ),
            (
                "indefinite is honoured while ALLOW_INDEFINITE=true, bound or not",
                inst(Running, TimeDelta::days(100), &[(TERMINATION_DATE, "indefinite")]),
                &bounded,
                Verdict::Keep {
                    until: None,
                    bound: None,
                },
                "termination_date=indefinite",
            ),
            (
                "indefinite refused: the bound stands in",
                inst(Running, TimeDelta::days(10), &[(TERMINATION_DATE, "indefinite")]),
                &strict,
                Verdict::Keep {
                    until: Some(t("2030-01-21T12:00:00Z")),
                    bound: Some(bound(TimeDelta::days(10), TerminationDate::Indefinite)),
                },
                "termination_date=indefinite is not allowed (ALLOW_INDEFINITE=false), so first launch + MAX_LIFETIME 30d = 2030-01-21T12:00:00Z is enforced; expires 2030-01-21T12:00:00Z",
            ),
            (
                "indefinite refused without a bound: an unusable tag, stopped, never terminated",
                inst(Running, TimeDelta::days(100), &[(TERMINATION_DATE, "indefinite")]),
                &no_indefinite,
                Verdict::Stop {
                    problem: Problem::Invalid(TagError {
                        key: TERMINATION_DATE,
                        value: "indefinite".into(),
                        reason: "indefinite is not allowed here (ALLOW_INDEFINITE=false); write e.g. 2030-01-01T00:00:00Z".into(),
                    }),
                },
                "termination_date \"indefinite\": indefinite is not allowed here (ALLOW_INDEFINITE=false); write e.g. 2030-01-01T00:00:00Z",
            ),
            (
                "lifetime indefinite refused without a bound: stopped",
                inst(Running, TimeDelta::days(100), &[(LIFETIME, " indefinite")]),
                &no_indefinite,
                Verdict::Stop {
                    problem: Problem::Invalid(TagError {
                        key: LIFETIME,
                        value: " indefinite".into(),
                        reason: "indefinite is not allowed here (ALLOW_INDEFINITE=false); write e.g. 7d".into(),
                    }),
                },
                "lifetime \" indefinite\": indefinite is not allowed here (ALLOW_INDEFINITE=false); write e.g. 7d",
            ),
            (
                "lifetime indefinite refused: stamped first launch + MAX_LIFETIME",
                inst(Running, TimeDelta::days(10), &[(LIFETIME, "indefinite")]),
                &strict,
                Verdict::Stamp {
                    stamp: Stamp::At(t("2030-01-21T12:00:00Z")),
                    rule: StampRule::Lifetime { asked: Asked::MaxLifetime(max) },
                    bound: None,
                },
                "lifetime indefinite is not allowed (ALLOW_INDEFINITE=false), so MAX_LIFETIME 30d from first launch -> termination_date=2030-01-21T12:00:00Z",
            ),
            (
                "a lifetime beyond the bound is written as computed; the bound is carried",
                inst(Running, TimeDelta::days(10), &[(LIFETIME, "60d")]),
                &bounded,
                Verdict::Stamp {
                    stamp: Stamp::At(t("2030-02-20T12:00:00Z")),
                    rule: StampRule::Lifetime { asked: Asked::Lifetime("60d".into()) },
                    bound: Some(bound(TimeDelta::days(10), TerminationDate::At(t("2030-02-20T12:00:00Z")))),
                },
                "lifetime -> termination_date=2030-02-20T12:00:00Z; termination_date 2030-02-20T12:00:00Z is beyond first launch + MAX_LIFETIME 30d, so 2030-01-21T12:00:00Z is enforced when judged",
            ),
            (
                "a bound newly in the past does not make a stamp terminate outside grace",
                inst(Stopped, TimeDelta::days(40), &[(LIFETIME, "7d")]),
                &bounded,
                Verdict::Stamp {
                    stamp: Stamp::At(t("2030-01-02T12:00:00Z")),
                    rule: StampRule::NoticeFirst {
                        asked: Asked::Lifetime("7d".into()),
                        due: t("2029-11-29T12:00:00Z"),
                        passed: true,
                    },
                    bound: Some(bound(TimeDelta::days(40), TerminationDate::At(t("2030-01-02T12:00:00Z")))),
                },
                "lifetime 7d from first launch had passed; stamped now + WARN_WINDOW so the owner is told first: termination_date=2030-01-02T12:00:00Z; termination_date 2030-01-02T12:00:00Z is beyond first launch + MAX_LIFETIME 30d, so 2029-12-22T12:00:00Z is enforced when judged",
            ),
            (
                "inside grace the bound applies at once",
                inst(Pending, TimeDelta::minutes(10), &[(LIFETIME, "1h")]),
                &tiny,
                Verdict::Terminate {
                    date: t("2030-01-01T11:55:00Z"),
                    stamp: Some(Stamp::At(t("2030-01-01T12:50:00Z"))),
                    bound: Some(Box::new(Bound {
                        at: t("2030-01-01T11:55:00Z"),
                        max_lifetime: TimeDelta::minutes(5),
                        written: TerminationDate::At(t("2030-01-01T12:50:00Z")),
                    })),
                },
                "stamped termination_date=2030-01-01T12:50:00Z; termination_date 2030-01-01T12:50:00Z is beyond first launch + MAX_LIFETIME 5m, so 2030-01-01T11:55:00Z is enforced, which has passed",
            ),
            (
                "managed instances are skipped before any bound",
                inst(Running, TimeDelta::days(100), &[("eks:nodegroup-name", "n"), (TERMINATION_DATE, far)]),
                &strict,
                Verdict::SkipManaged { tag_key: "eks:nodegroup-name" },
                "managed (tag eks:nodegroup-name); its owner would replace it",
            ),
        ];
        for (case, instance, rules, want, reason) in cases {
            let got = judge(&instance, now(), rules);
            assert_eq!(got, want, "{case}");
            assert_eq!(got.reason(), reason, "{case}");
            assert_eq!(
                got.enforced_date(),
                got.bound().map(|b| b.at).or(got.termination_date()),
                "{case}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_state() -> impl Strategy<Value = InstanceState> {
            prop_oneof![Just(Pending), Just(Running), Just(Stopping), Just(Stopped)]
        }

        /// Tag values that are certainly not valid: random text, and near-misses of valid forms.
        fn invalid_value() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,40}",
                "[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2})?",
                "[0-9]+[WDHMy]",
                "[0-9]+[wdhm][0-9]+[wdhm]",
                "-[0-9]+[wdhm]",
                "Indefinite|INDEFINITE| indefinite x",
            ]
            .prop_filter("must be invalid for both tags", |v| {
                parse_termination_date(v).is_err() && parse_lifetime(v).is_err()
            })
        }

        proptest! {
            #[test]
            fn missing_or_invalid_tags_never_terminate(
                state in any_state(),
                age_min in 0i64..100_000,
                date in proptest::option::of(invalid_value()),
                lifetime in proptest::option::of(invalid_value()),
                grace in 0i64..1000,
            ) {
                let mut tags = vec![("Name", "x".to_string())];
                if let Some(d) = &date { tags.push((TERMINATION_DATE, d.clone())); }
                if let Some(l) = &lifetime { tags.push((LIFETIME, l.clone())); }
                let i = Instance {
                    id: "i-1".into(), state,
                    launch_time: now() - TimeDelta::minutes(age_min),
                    root_attach_time: None, billing: None,
                    tags: tags.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                };
                let rules = Rules { grace_period: TimeDelta::minutes(grace), ..Rules::default() };
                let v = judge(&i, now(), &rules);
                prop_assert!(matches!(v.kind(), VerdictKind::Wait | VerdictKind::Stop | VerdictKind::Noncompliant), "{v:?}");
            }

            #[test]
            fn terminate_is_monotonic_in_time(
                state in any_state(),
                age_min in 0i64..100_000,
                offset_min in -100_000i64..100_000,
                lifetime_min in proptest::option::of(0i64..100_000),
                later_min in 0i64..1_000_000,
                use_date in any::<bool>(),
                max_min in proptest::option::of(1i64..100_000),
            ) {
                let mut tags = Tags::new();
                if use_date {
                    tags.insert(TERMINATION_DATE.to_string(), format_date(now() + TimeDelta::minutes(offset_min)));
                }
                if let Some(l) = lifetime_min { tags.insert(LIFETIME.to_string(), format!("{l}m")); }
                let mut i = Instance { id: "i-1".into(), state, launch_time: now() - TimeDelta::minutes(age_min), root_attach_time: None, billing: None, tags };
                let rules = Rules { max_lifetime: max_min.map(TimeDelta::minutes), ..Rules::default() };
                let v = judge(&i, now(), &rules);
                if v.kind() == VerdictKind::Terminate {
                    // As the instance will be after this run: a lifetime due inside the grace period
                    // is stamped before it is terminated (outside it, the notice rule stamps later).
                    if let Some(stamp) = v.stamp() {
                        i.tags.insert(TERMINATION_DATE.to_string(), stamp.tag_value());
                    }
                    let later = now() + TimeDelta::minutes(later_min);
                    prop_assert_eq!(judge(&i, later, &rules).kind(), VerdictKind::Terminate);
                }
            }

            #[test]
            fn a_stamp_outside_grace_never_terminates_and_gives_a_full_warn_window(
                state in any_state(),
                grace_min in 0i64..1000,
                extra_age_min in 0i64..1_000_000,
                lifetime in prop_oneof![
                    (0i64..=36_525 * 1440).prop_map(|m| format!("{m}m")),
                    (0i64..=36_525).prop_map(|d| format!("{d}d")),
                    Just("indefinite".to_string()),
                ],
                warn_min in 0i64..20_000,
                max_min in proptest::option::of(1i64..1_000_000),
                allow_indefinite in any::<bool>(),
                sub_second_ms in 0i64..1000,
            ) {
                let now = now() + TimeDelta::milliseconds(sub_second_ms);
                let rules = Rules {
                    grace_period: TimeDelta::minutes(grace_min),
                    warn_window: TimeDelta::minutes(warn_min),
                    max_lifetime: max_min.map(TimeDelta::minutes),
                    allow_indefinite,
                    ..Rules::default()
                };
                let mut i = Instance {
                    id: "i-1".into(), state,
                    launch_time: now - TimeDelta::minutes(grace_min + extra_age_min),
                    root_attach_time: None, billing: None,
                    tags: [(LIFETIME.to_string(), lifetime.clone())].into_iter().collect(),
                };
                let v = judge(&i, now, &rules);
                prop_assert_ne!(v.kind(), VerdictKind::Terminate, "{:?}", v);
                let Some(Stamp::At(written)) = v.stamp() else {
                    // `indefinite`: stamped as such, or refused (no MAX_LIFETIME to stand in).
                    prop_assert!(lifetime == INDEFINITE, "{:?}", v);
                    return Ok(());
                };
                prop_assert_eq!(v.kind(), VerdictKind::Stamp);
                prop_assert!(written >= now + rules.warn_window, "{} < now + {}", format_date(written), warn_min);
                // The stamp is what the next runs judge: no termination before the date written,
                // unless MAX_LIFETIME (an organisation's bound, carried in the verdict) cuts it.
                i.tags.insert(TERMINATION_DATE.to_string(), format_date(written));
                let just_before = written - TimeDelta::seconds(1);
                if just_before >= now && v.bound().is_none() {
                    prop_assert_ne!(judge(&i, just_before, &rules).kind(), VerdictKind::Terminate);
                }
                prop_assert_eq!(judge(&i, now, &rules).enforced_date(), v.enforced_date());
            }

            #[test]
            fn a_stamp_inside_grace_is_first_launch_plus_lifetime(
                age_min in 0i64..15,
                lifetime_min in 0i64..1_000_000,
                warn_min in 0i64..20_000,
            ) {
                let rules = Rules { warn_window: TimeDelta::minutes(warn_min), ..Rules::default() };
                let i = Instance {
                    id: "i-1".into(), state: Pending,
                    launch_time: now() - TimeDelta::minutes(age_min),
                    root_attach_time: None, billing: None,
                    tags: [(LIFETIME.to_string(), format!("{lifetime_min}m"))].into_iter().collect(),
                };
                let due = i.first_launch() + TimeDelta::minutes(lifetime_min);
                let v = judge(&i, now(), &rules);
                prop_assert_eq!(v.stamp(), Some(Stamp::At(due)));
                prop_assert_eq!(v.kind() == VerdictKind::Terminate, due <= now());
            }

            #[test]
            fn max_lifetime_cannot_be_evaded_with_tags(
                state in any_state(),
                age_min in 0i64..1_000_000,
                max_min in 1i64..1_000_000,
                date in proptest::option::of(prop_oneof![
                    (-2_000_000i64..100_000_000).prop_map(|m| format_date(now() + TimeDelta::minutes(m))),
                    Just("indefinite".to_string()),
                ]),
                lifetime in proptest::option::of(prop_oneof![
                    (0i64..=36_525).prop_map(|d| format!("{d}d")),
                    Just("indefinite".to_string()),
                ]),
                later_min in 0i64..1_000_000,
            ) {
                let rules = Rules {
                    max_lifetime: Some(TimeDelta::minutes(max_min)),
                    allow_indefinite: false,
                    ..Rules::default()
                };
                let mut tags = Tags::new();
                if let Some(d) = date { tags.insert(TERMINATION_DATE.to_string(), d); }
                if let Some(l) = lifetime { tags.insert(LIFETIME.to_string(), l); }
                let mut i = Instance { id: "i-1".into(), state, launch_time: now() - TimeDelta::minutes(age_min), root_attach_time: None, billing: None, tags };
                let bound = i.first_launch() + TimeDelta::minutes(max_min);
                let v = judge(&i, now(), &rules);
                prop_assert!(!matches!(v, Verdict::Keep { until: None, .. }), "{:?}", v);
                prop_assert!(v.enforced_date().is_none_or(|d| d <= bound), "{:?}", v);
                if let Some(stamp) = v.stamp() {
                    i.tags.insert(TERMINATION_DATE.to_string(), stamp.tag_value());
                }
                // The run after: whatever was stamped, the bound holds and is reached.
                let later = now() + TimeDelta::minutes(later_min);
                let v2 = judge(&i, later, &rules);
                prop_assert!(v2.enforced_date().is_none_or(|d| d <= bound), "{:?}", v2);
                if later >= bound && v.enforced_date().is_some() {
                    prop_assert_eq!(v2.kind(), VerdictKind::Terminate, "{:?}", v2);
                }
            }
        }
    }
}
