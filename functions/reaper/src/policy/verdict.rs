//! One instance + now + rules -> one verdict (SPEC §3). First matching row wins.

use super::tags::{
    format_date, parse_lifetime, parse_termination_date, Lifetime, TagError, TerminationDate,
    INDEFINITE, LIFETIME, TERMINATION_DATE,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Tags that say "something else owns this instance and will replace it" (SPEC §5).
/// Data in one place: add a key here and every rule, test and report follows.
pub const MANAGED_TAG_KEYS: &[&str] = &[
    "aws:autoscaling:groupName",
    "aws:ec2spot:fleet-request-id",
    "aws:ec2:fleet-id",
    "eks:nodegroup-name",
    "karpenter.sh/nodepool",
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
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The states a sweep judges; the server-side listing filter uses exactly these.
    pub const JUDGED: [InstanceState; 4] =
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
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    /// When the instance first launched (SPEC §2): root volume attach time, else LaunchTime.
    pub fn first_launch(&self) -> DateTime<Utc> {
        // A root volume attached after launch (a replaced root) must not extend the lifetime.
        self.root_attach_time
            .map_or(self.launch_time, |attached| attached.min(self.launch_time))
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// The knobs the rules read (from `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub grace_period: TimeDelta,
    pub warn_window: TimeDelta,
    pub skip_managed: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            grace_period: TimeDelta::minutes(15),
            warn_window: TimeDelta::days(1),
            skip_managed: true,
        }
    }
}

/// What the value written into `termination_date` will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Indefinite,
    At(DateTime<Utc>),
}

impl Stamp {
    pub fn tag_value(self) -> String {
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
    /// Rows 2 and 5.
    Keep { until: Option<DateTime<Utc>> },
    /// Row 3, and row 7 when the stamped date is already due (`stamp` is then `Some`).
    Terminate {
        date: DateTime<Utc>,
        stamp: Option<Stamp>,
    },
    /// Row 4.
    Expiring { date: DateTime<Utc> },
    /// Rows 6 and 7 (not yet due).
    Stamp { stamp: Stamp },
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
    pub const ALL: [VerdictKind; 8] = [
        Self::Terminate,
        Self::Stop,
        Self::Stamp,
        Self::Expiring,
        Self::Wait,
        Self::Noncompliant,
        Self::SkipManaged,
        Self::Keep,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Verdict {
    pub fn kind(&self) -> VerdictKind {
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

    /// The termination date the verdict rests on, if any.
    pub fn termination_date(&self) -> Option<DateTime<Utc>> {
        match self {
            Verdict::Keep { until } => *until,
            Verdict::Terminate { date, .. } | Verdict::Expiring { date } => Some(*date),
            Verdict::Stamp {
                stamp: Stamp::At(at),
            } => Some(*at),
            _ => None,
        }
    }

    /// One sentence for the report and Slack.
    pub fn reason(&self) -> String {
        match self {
            Verdict::SkipManaged { tag_key } => {
                format!("managed (tag {tag_key}); its owner would replace it")
            }
            Verdict::Keep { until: None } => format!("{TERMINATION_DATE}={INDEFINITE}"),
            Verdict::Keep { until: Some(at) } => format!("expires {}", format_date(*at)),
            Verdict::Terminate { date, stamp: None } => {
                format!("{TERMINATION_DATE} {} has passed", format_date(*date))
            }
            Verdict::Terminate {
                date,
                stamp: Some(_),
            } => format!(
                "{LIFETIME} ended {} (stamped {TERMINATION_DATE})",
                format_date(*date)
            ),
            Verdict::Expiring { date } => format!("expires {}", format_date(*date)),
            Verdict::Stamp { stamp } => {
                format!("{LIFETIME} -> {TERMINATION_DATE}={}", stamp.tag_value())
            }
            Verdict::Wait { until, problem } => {
                format!("{problem}; grace period until {}", format_date(*until))
            }
            Verdict::Stop { problem } => problem.to_string(),
            Verdict::Noncompliant { problem } => format!("{problem}; already stopped"),
        }
    }

    /// The `termination_date` value to write, when the verdict writes one.
    pub fn stamp(&self) -> Option<Stamp> {
        match self {
            Verdict::Stamp { stamp } => Some(*stamp),
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

    let problem = match instance.tag(TERMINATION_DATE).map(parse_termination_date) {
        Some(Ok(TerminationDate::Indefinite)) => return Verdict::Keep { until: None },
        Some(Ok(TerminationDate::At(date))) => return by_date(date, now, rules),
        Some(Err(err)) => Problem::Invalid(err),
        // Once an instance has a termination_date, lifetime is never consulted (SPEC §2).
        None => match instance.tag(LIFETIME).map(parse_lifetime) {
            Some(Ok(Lifetime::Indefinite)) => {
                return Verdict::Stamp {
                    stamp: Stamp::Indefinite,
                }
            }
            Some(Ok(Lifetime::For(lifetime))) => {
                let date = stamped_date(instance.first_launch(), lifetime);
                return if date <= now {
                    Verdict::Terminate {
                        date,
                        stamp: Some(Stamp::At(date)),
                    }
                } else {
                    Verdict::Stamp {
                        stamp: Stamp::At(date),
                    }
                };
            }
            Some(Err(err)) => Problem::Invalid(err),
            None => Problem::Missing {
                near_miss: near_miss(instance),
            },
        },
    };

    let grace_ends = instance.first_launch() + rules.grace_period;
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

fn by_date(date: DateTime<Utc>, now: DateTime<Utc>, rules: &Rules) -> Verdict {
    if date <= now {
        Verdict::Terminate { date, stamp: None }
    } else if date <= now + rules.warn_window {
        Verdict::Expiring { date }
    } else {
        Verdict::Keep { until: Some(date) }
    }
}

/// The date written for a lifetime: truncated to whole seconds, as it is written (SPEC §2), so
/// the verdict made from the tag next run is the verdict made from the lifetime now.
fn stamped_date(first_launch: DateTime<Utc>, lifetime: TimeDelta) -> DateTime<Utc> {
    let at = first_launch + lifetime;
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
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
                "2 indefinite",
                inst(
                    Running,
                    old,
                    &[(TERMINATION_DATE, "indefinite"), (LIFETIME, "0m")],
                ),
                Verdict::Keep { until: None },
            ),
            (
                "3 expired, running",
                inst(Running, old, &[(TERMINATION_DATE, "2030-01-01T11:59:59Z")]),
                Verdict::Terminate {
                    date: t("2030-01-01T11:59:59Z"),
                    stamp: None,
                },
            ),
            (
                "3 expired exactly now, stopped (terminated in any state)",
                inst(Stopped, old, &[(TERMINATION_DATE, "2030-01-01T12:00:00Z")]),
                Verdict::Terminate {
                    date: now(),
                    stamp: None,
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
                },
            ),
            (
                "4 inside the warn window",
                inst(Running, old, &[(TERMINATION_DATE, "2030-01-02T12:00:00Z")]),
                Verdict::Expiring {
                    date: t("2030-01-02T12:00:00Z"),
                },
            ),
            (
                "5 beyond the warn window",
                inst(Running, old, &[(TERMINATION_DATE, "2030-01-02T12:00:01Z")]),
                Verdict::Keep {
                    until: Some(t("2030-01-02T12:00:01Z")),
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
                },
            ),
            (
                "6 lifetime indefinite",
                inst(Running, old, &[(LIFETIME, "indefinite")]),
                Verdict::Stamp {
                    stamp: Stamp::Indefinite,
                },
            ),
            (
                "7 lifetime not yet due",
                inst(Running, old, &[(LIFETIME, "1d")]),
                Verdict::Stamp {
                    stamp: Stamp::At(now() - old + TimeDelta::days(1)),
                },
            ),
            (
                "7 lifetime due: stamp then terminate",
                inst(Running, old, &[(LIFETIME, "1h")]),
                Verdict::Terminate {
                    date: now() - TimeDelta::hours(1),
                    stamp: Some(Stamp::At(now() - TimeDelta::hours(1))),
                },
            ),
            (
                "7 lifetime 0m, brand new",
                inst(Pending, TimeDelta::zero(), &[(LIFETIME, "0m")]),
                Verdict::Terminate {
                    date: now(),
                    stamp: Some(Stamp::At(now())),
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
        let mut i = inst(Running, TimeDelta::hours(1), &[(LIFETIME, "1d")]);
        i.root_attach_time = Some(now() - TimeDelta::days(3));
        assert_eq!(
            judge(&i, now(), &Rules::default()),
            Verdict::Terminate {
                date: now() - TimeDelta::days(2),
                stamp: Some(Stamp::At(now() - TimeDelta::days(2)))
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
                    root_attach_time: None,
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
            ) {
                let mut tags = BTreeMap::new();
                if use_date {
                    tags.insert(TERMINATION_DATE.to_string(), format_date(now() + TimeDelta::minutes(offset_min)));
                }
                if let Some(l) = lifetime_min { tags.insert(LIFETIME.to_string(), format!("{l}m")); }
                let i = Instance { id: "i-1".into(), state, launch_time: now() - TimeDelta::minutes(age_min), root_attach_time: None, tags };
                let rules = Rules::default();
                if judge(&i, now(), &rules).kind() == VerdictKind::Terminate {
                    let later = now() + TimeDelta::minutes(later_min);
                    prop_assert_eq!(judge(&i, later, &rules).kind(), VerdictKind::Terminate);
                }
            }
        }
    }
}
