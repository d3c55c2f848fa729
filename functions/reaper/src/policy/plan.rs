//! Verdicts -> Plan: what to call, in batches, within the blast-radius caps (SPEC §5, §6).

use super::resource::{Id, ResourceKind};
use super::tags::{format_date, TERMINATION_DATE};
use super::verdict::Verdict;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// EC2 accepts at most this many instance ids in one mutating call.
/// EC2 tag values are at most 256 characters.
pub(crate) const MAX_TAG_VALUE_CHARS: usize = 256;
pub(crate) const STOPPED_AT_TAG: &str = "reaper:stopped_at";
pub(crate) const STOP_REASON_TAG: &str = "reaper:stop_reason";

/// A per-run, per-region limit on one destructive action. In JSON: a number or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CapJson", into = "CapJson")]
pub enum Cap {
    Limited(u64),
    Unlimited,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CapJson {
    Number(u64),
    Word(String),
}

impl From<Cap> for CapJson {
    fn from(cap: Cap) -> Self {
        match cap {
            Cap::Limited(n) => CapJson::Number(n),
            Cap::Unlimited => CapJson::Word("unlimited".into()),
        }
    }
}

impl TryFrom<CapJson> for Cap {
    type Error = String;
    fn try_from(json: CapJson) -> Result<Self, String> {
        match json {
            CapJson::Number(n) => Ok(Cap::Limited(n)),
            CapJson::Word(w) => w
                .parse()
                .map_err(|_| format!("cap {w:?} is not a number or \"unlimited\"")),
        }
    }
}

/// `unlimited` or a whole number: the one parser for caps (environment and JSON).
impl std::str::FromStr for Cap {
    type Err = String;
    fn from_str(v: &str) -> Result<Self, String> {
        if v == "unlimited" {
            return Ok(Cap::Unlimited);
        }
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = v.parse::<u64>() {
                return Ok(Cap::Limited(n));
            }
        }
        Err("a whole number of instances (0 or more) or `unlimited`".into())
    }
}

impl Cap {
    pub(crate) fn allows(self, planned: usize) -> bool {
        match self {
            Cap::Limited(max) => planned as u64 <= max,
            Cap::Unlimited => true,
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Limited(n) => write!(f, "{n}"),
            Cap::Unlimited => f.write_str("unlimited"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub terminations: Cap,
    pub stops: Cap,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            terminations: Cap::Limited(100),
            stops: Cap::Limited(200),
        }
    }
}

/// The destructive actions that have caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Terminate,
    Stop,
}

impl Action {
    pub(crate) fn env_var(self) -> &'static str {
        match self {
            Action::Terminate => "MAX_TERMINATIONS",
            Action::Stop => "MAX_STOPS",
        }
    }
}

/// A tripped circuit breaker: `planned` exceeded `cap`, so nothing of that action happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Circuit {
    pub action: Action,
    pub planned: usize,
    pub cap: Cap,
}

impl Circuit {
    pub(crate) fn message(&self) -> String {
        let what = match self.action {
            Action::Terminate => "terminations",
            Action::Stop => "stops",
        };
        format!(
            "circuit open: {} {what} planned, cap is {}; nothing was {}. A mass expiry is more often a clock, \
             tag or deployment mistake than intent: check the instances, then raise {} (a number or `unlimited`) \
             for one run if it is right",
            self.planned,
            self.cap,
            match self.action {
                Action::Terminate => "terminated",
                Action::Stop => "stopped",
            },
            self.action.env_var()
        )
    }
}

pub(crate) type TagSet = Vec<(String, String)>;

/// One mutating call on resources of one kind: a tag set (empty for terminate/stop) and at
/// most `kind.max_batch()` ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub kind: ResourceKind,
    pub tags: TagSet,
    pub ids: Vec<Id>,
}

/// What a run will do to the resources of one kind, in the order it will do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: ResourceKind,
    /// CreateTags `termination_date=<stamp>`, grouped by value. Never capped: tagging destroys nothing.
    pub stamps: Vec<Batch>,
    /// TerminateInstances; ids stamped in this run come after their stamp succeeds.
    pub terminations: Vec<Batch>,
    /// CreateTags `reaper:stopped_at` / `reaper:stop_reason`, grouped by reason; written only on
    /// the instances that stopped. The stops themselves are `stops()`: the same ids, not a copy.
    pub stop_tags: Vec<Batch>,
    /// Ids whose action was withheld because a circuit opened.
    pub withheld: BTreeMap<Id, Action>,
    pub circuits: Vec<Circuit>,
}

impl Plan {
    /// Every id the plan would act on (for the pre-action re-check).
    /// Sorted, each once; borrowed (owned copies cost 10 MB at 100 000 instances).
    pub(crate) fn action_ids(&self) -> Vec<&str> {
        let batches = || {
            self.stamps
                .iter()
                .chain(&self.terminations)
                .chain(&self.stop_tags)
        };
        // Sized once: grown by doubling, the list held up to twice its size at the run's peak.
        let mut ids: Vec<&str> = Vec::with_capacity(batches().map(|b| b.ids.len()).sum());
        ids.extend(batches().flat_map(|b| b.ids.iter().map(Id::as_str)));
        ids.sort();
        ids.dedup();
        ids
    }

    /// StopInstances, regardless of reason (the reason is a tag, not a reason to split the
    /// call): every id of `stop_tags`, at most `kind.max_batch()` a call. Borrowed: a second
    /// owned list of 35 000 ids cost 2 MB at 100 000 instances.
    pub fn stops(&self) -> Vec<Vec<&str>> {
        let all: Vec<&str> = self
            .stop_tags
            .iter()
            .flat_map(|b| b.ids.iter().map(Id::as_str))
            .collect();
        all.chunks(self.kind.max_batch())
            .map(<[&str]>::to_vec)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty() && self.terminations.is_empty() && self.stop_tags.is_empty()
    }
}

/// Truncates to EC2's tag value limit on a character boundary.
pub fn tag_value(s: &str) -> String {
    s.chars().take(MAX_TAG_VALUE_CHARS).collect()
}

/// Builds the plan for EC2 instances. `now` is what `reaper:stopped_at` records.
pub fn plan<'a>(
    verdicts: impl IntoIterator<Item = (&'a str, &'a Verdict)>,
    caps: &Caps,
    now: DateTime<Utc>,
) -> Plan {
    plan_with(
        ResourceKind::Ec2Instance,
        verdicts,
        caps,
        now,
        Acting::default(),
    )
}

/// The reason tag of an expired instance stopped at launch rather than terminated (SPEC §7).
pub(crate) fn stopped_at_launch_reason(date: DateTime<Utc>) -> String {
    format!(
        "{TERMINATION_DATE} {} had passed when it started; stopped at launch, the scheduled sweep terminates it",
        format_date(date)
    )
}

/// How a run may act, beyond the verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acting {
    /// A launch event: a `terminate` verdict's instance is stopped, with the reason tags,
    /// instead of terminated; its stamp, if any, is still written first.
    pub stop_expired: bool,
    /// False outside ACTION_WINDOW: no termination and no stop is planned (nor counted against
    /// a cap); stamps are.
    pub destructive: bool,
}

impl Default for Acting {
    fn default() -> Self {
        Self {
            stop_expired: false,
            destructive: true,
        }
    }
}

/// `plan` for the resources of `kind` (the ids of `verdicts`), acting as `acting` says.
pub fn plan_with<'a>(
    kind: ResourceKind,
    verdicts: impl IntoIterator<Item = (&'a str, &'a Verdict)>,
    caps: &Caps,
    now: DateTime<Utc>,
    acting: Acting,
) -> Plan {
    let Acting {
        stop_expired,
        destructive,
    } = acting;
    let mut stamps: BTreeMap<TagSet, Vec<Id>> = BTreeMap::new();
    let mut terminate: Vec<Id> = Vec::new();
    let mut stops: BTreeMap<TagSet, Vec<Id>> = BTreeMap::new();
    let stopped_at = format_date(now);

    for (id, verdict) in verdicts {
        if let Some(stamp) = verdict.stamp() {
            stamps
                .entry(vec![(TERMINATION_DATE.to_string(), stamp.tag_value())])
                .or_default()
                .push(Id::from(id));
        }
        match verdict {
            Verdict::Terminate { .. } | Verdict::Stop { .. } if !destructive => {}
            Verdict::Terminate { date, .. } if stop_expired => stops
                .entry(vec![
                    (STOPPED_AT_TAG.to_string(), stopped_at.clone()),
                    (
                        STOP_REASON_TAG.to_string(),
                        tag_value(&stopped_at_launch_reason(*date)),
                    ),
                ])
                .or_default()
                .push(Id::from(id)),
            Verdict::Terminate { .. } => terminate.push(Id::from(id)),
            Verdict::Stop { problem } => stops
                .entry(vec![
                    (STOPPED_AT_TAG.to_string(), stopped_at.clone()),
                    (STOP_REASON_TAG.to_string(), tag_value(&problem.to_string())),
                ])
                .or_default()
                .push(Id::from(id)),
            _ => {}
        }
    }

    let batches = |groups| batches(kind, groups);
    let mut plan = Plan {
        kind,
        stamps: batches(stamps),
        terminations: Vec::new(),
        stop_tags: Vec::new(),
        withheld: BTreeMap::new(),
        circuits: Vec::new(),
    };
    let stop_count: usize = stops.values().map(Vec::len).sum();
    if caps.terminations.allows(terminate.len()) {
        plan.terminations = batches(BTreeMap::from([(Vec::new(), terminate)]));
    } else {
        plan.circuits.push(Circuit {
            action: Action::Terminate,
            planned: terminate.len(),
            cap: caps.terminations,
        });
        plan.withheld
            .extend(terminate.into_iter().map(|id| (id, Action::Terminate)));
    }
    if caps.stops.allows(stop_count) {
        plan.stop_tags = batches(stops);
    } else {
        plan.circuits.push(Circuit {
            action: Action::Stop,
            planned: stop_count,
            cap: caps.stops,
        });
        plan.withheld
            .extend(stops.into_values().flatten().map(|id| (id, Action::Stop)));
    }
    plan
}

fn batches(kind: ResourceKind, groups: BTreeMap<TagSet, Vec<Id>>) -> Vec<Batch> {
    groups
        .into_iter()
        .flat_map(|(tags, ids)| {
            ids.chunks(kind.max_batch())
                .map(|chunk| Batch {
                    kind,
                    tags: tags.clone(),
                    ids: chunk.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::verdict::{Asked, Problem, Stamp, StampRule};
    use chrono::{TimeDelta, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn terminate() -> Verdict {
        Verdict::Terminate {
            date: now(),
            stamp: None,
            bound: None,
        }
    }

    fn stop() -> Verdict {
        Verdict::Stop {
            problem: Problem::Missing { near_miss: None },
        }
    }

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("i-{prefix}{i:05}")).collect()
    }

    #[test]
    fn batches_hold_at_most_1000_ids_per_action_and_tag_set() {
        let term = ids("t", 2500);
        let stop_ids = ids("s", 1001);
        let mut verdicts: Vec<(String, Verdict)> =
            term.iter().map(|id| (id.clone(), terminate())).collect();
        verdicts.extend(stop_ids.iter().map(|id| (id.clone(), stop())));
        let caps = Caps {
            terminations: Cap::Unlimited,
            stops: Cap::Unlimited,
        };
        let p = plan(verdicts.iter().map(|(i, v)| (i.as_str(), v)), &caps, now());
        assert_eq!(
            p.terminations
                .iter()
                .map(|b| b.ids.len())
                .collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        assert_eq!(
            p.stops().iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 1]
        );
        assert_eq!(
            p.stop_tags[0].tags,
            vec![
                (
                    STOPPED_AT_TAG.to_string(),
                    "2030-01-01T12:00:00Z".to_string()
                ),
                (
                    STOP_REASON_TAG.to_string(),
                    "no termination_date or lifetime tag".to_string()
                )
            ]
        );
        assert!(p.circuits.is_empty());
        assert_eq!(p.action_ids().len(), 3501);
    }

    #[test]
    fn one_stamp_call_per_distinct_value() {
        let day = now() + TimeDelta::days(1);
        let verdicts = [
            (
                "i-1",
                Verdict::Stamp {
                    stamp: Stamp::At(day),
                    rule: StampRule::Lifetime {
                        asked: Asked::Lifetime("1d".into()),
                    },
                    bound: None,
                },
            ),
            (
                "i-2",
                Verdict::Stamp {
                    stamp: Stamp::At(day),
                    rule: StampRule::Lifetime {
                        asked: Asked::Lifetime("1d".into()),
                    },
                    bound: None,
                },
            ),
            (
                "i-3",
                Verdict::Stamp {
                    stamp: Stamp::Indefinite,
                    rule: StampRule::Indefinite,
                    bound: None,
                },
            ),
            (
                "i-4",
                Verdict::Terminate {
                    date: now(),
                    stamp: Some(Stamp::At(now())),
                    bound: None,
                },
            ),
        ];
        let p = plan(
            verdicts.iter().map(|(i, v)| (*i, v)),
            &Caps::default(),
            now(),
        );
        let got: Vec<(String, Vec<Id>)> = p
            .stamps
            .iter()
            .map(|b| (b.tags[0].1.clone(), b.ids.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2030-01-01T12:00:00Z".into(), vec!["i-4".into()]),
                (
                    "2030-01-02T12:00:00Z".into(),
                    vec!["i-1".into(), "i-2".into()]
                ),
                ("indefinite".into(), vec!["i-3".into()]),
            ]
        );
        assert_eq!(p.terminations.len(), 1);
        assert_eq!(p.terminations[0].ids, vec!["i-4".to_string()]);
    }

    #[test]
    fn a_plan_over_a_cap_takes_that_action_for_no_instance() {
        let term = ids("t", 101);
        let stop_ids = ids("s", 3);
        let mut verdicts: Vec<(String, Verdict)> =
            term.iter().map(|id| (id.clone(), terminate())).collect();
        verdicts.extend(stop_ids.iter().map(|id| (id.clone(), stop())));
        let p = plan(
            verdicts.iter().map(|(i, v)| (i.as_str(), v)),
            &Caps::default(),
            now(),
        );
        assert!(p.terminations.is_empty());
        assert_eq!(p.stops().iter().map(Vec::len).sum::<usize>(), 3);
        assert_eq!(
            p.circuits,
            vec![Circuit {
                action: Action::Terminate,
                planned: 101,
                cap: Cap::Limited(100)
            }]
        );
        assert_eq!(p.withheld.len(), 101);
        let msg = p.circuits[0].message();
        assert!(
            msg.contains("101 terminations planned, cap is 100"),
            "{msg}"
        );
        assert!(msg.contains("MAX_TERMINATIONS"), "{msg}");
    }

    #[test]
    fn exactly_at_the_cap_acts_and_zero_cap_blocks_everything() {
        let term = ids("t", 100);
        let verdicts: Vec<(String, Verdict)> =
            term.iter().map(|id| (id.clone(), terminate())).collect();
        let p = plan(
            verdicts.iter().map(|(i, v)| (i.as_str(), v)),
            &Caps::default(),
            now(),
        );
        assert_eq!(p.terminations[0].ids.len(), 100);
        let zero = Caps {
            terminations: Cap::Limited(0),
            stops: Cap::Limited(0),
        };
        let p = plan(verdicts.iter().map(|(i, v)| (i.as_str(), v)), &zero, now());
        assert!(p.terminations.is_empty());
        assert_eq!(p.circuits.len(), 1);
        // An empty plan never trips a circuit, even with a zero cap.
        let p = plan(std::iter::empty(), &zero, now());
        assert!(p.circuits.is_empty() && p.is_empty());
    }

    #[test]
    fn one_stop_call_for_every_reason_and_one_tag_call_per_reason() {
        let missing = stop();
        let invalid = Verdict::Stop {
            problem: Problem::Invalid(crate::policy::tags::parse_lifetime("2D").unwrap_err()),
        };
        let verdicts = [("i-1", &missing), ("i-2", &invalid), ("i-3", &missing)];
        let p = plan(verdicts, &Caps::default(), now());
        assert_eq!(p.stops().len(), 1);
        let mut ids = p.stops()[0].clone();
        ids.sort();
        assert_eq!(ids, vec!["i-1", "i-2", "i-3"]);
        assert_eq!(p.stop_tags.len(), 2);
        assert_eq!(p.stop_tags.iter().map(|b| b.ids.len()).sum::<usize>(), 3);
    }

    #[test]
    fn stopping_expired_instances_plans_no_termination_but_keeps_the_stamp() {
        let stamped = Verdict::Terminate {
            date: now(),
            stamp: Some(super::super::verdict::Stamp::At(now())),
            bound: None,
        };
        let verdicts = [
            ("i-1".to_string(), terminate()),
            ("i-2".to_string(), stamped),
        ];
        let p = plan_with(
            ResourceKind::Ec2Instance,
            verdicts.iter().map(|(i, v)| (i.as_str(), v)),
            &Caps::default(),
            now(),
            Acting {
                stop_expired: true,
                destructive: true,
            },
        );
        assert!(p.terminations.is_empty());
        assert_eq!(p.stops()[0], ["i-1", "i-2"]);
        assert_eq!(p.stamps.len(), 1, "the stamp is still written");
        assert!(p.stop_tags[0].tags[1].1.contains("stopped at launch"));
    }

    #[test]
    fn outside_the_action_window_only_stamps_are_planned_and_no_cap_trips() {
        let stamped = Verdict::Terminate {
            date: now(),
            stamp: Some(super::super::verdict::Stamp::At(now())),
            bound: None,
        };
        let verdicts = [
            ("i-1".to_string(), terminate()),
            ("i-2".to_string(), stamped),
            ("i-3".to_string(), stop()),
        ];
        let p = plan_with(
            ResourceKind::Ec2Instance,
            verdicts.iter().map(|(i, v)| (i.as_str(), v)),
            &Caps {
                terminations: Cap::Limited(0),
                stops: Cap::Limited(0),
            },
            now(),
            Acting {
                stop_expired: false,
                destructive: false,
            },
        );
        assert!(p.terminations.is_empty() && p.stops().is_empty() && p.circuits.is_empty());
        assert_eq!(p.stamps[0].ids, ["i-2"]);
    }

    #[test]
    fn caps_are_a_number_or_unlimited_in_json() {
        assert_eq!(serde_json::to_string(&Cap::Limited(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&Cap::Unlimited).unwrap(),
            "\"unlimited\""
        );
        assert_eq!(
            serde_json::from_str::<Cap>("200").unwrap(),
            Cap::Limited(200)
        );
        assert_eq!(
            serde_json::from_str::<Cap>("\"unlimited\"").unwrap(),
            Cap::Unlimited
        );
        assert!(serde_json::from_str::<Cap>("\"lots\"").is_err());
    }

    #[test]
    fn stop_reasons_fit_in_a_tag_value() {
        let long = "x".repeat(600);
        let v = Verdict::Stop {
            problem: Problem::Invalid(crate::policy::tags::parse_lifetime(&long).unwrap_err()),
        };
        let p = plan([("i-1", &v)], &Caps::default(), now());
        assert_eq!(
            p.stop_tags[0].tags[1].1.chars().count(),
            MAX_TAG_VALUE_CHARS
        );
    }
}
