//! What happened to each judged instance during a run: one typed fate per instance, with the
//! precedence of fates decided here and nowhere else.

use super::request::STOPPED_AT_LAUNCH;
use crate::policy::announce::{Announcement, Deed, Provenance, ANNOUNCED_TAG};
use crate::policy::price::Billing;
use crate::policy::resource::Id;
use crate::policy::{
    format_date, Instance, InstanceState, NoticeKind, ResourceKind, Verdict, VerdictKind,
};
use crate::ports::{ApiError, ErrorKind, IdOutcome};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// EC2 allows at most this many tags on an instance.
pub(crate) const MAX_TAGS: usize = 50;

/// The step of the run an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Stamp,
    /// Writing the `reaper:announced` record of the creator's own date, which IAM requires
    /// before a termination.
    Announce,
    Terminate,
    Stop,
}

impl Step {
    /// As the report's error text names it.
    fn describe(self) -> &'static str {
        match self {
            Step::Stamp => "tagging termination_date",
            Step::Announce => "tagging reaper:announced",
            Step::Terminate => "terminate",
            Step::Stop => "stop",
        }
    }
}

/// Why an action was not taken in this run (the next run picks it up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferral {
    OutOfTime,
    /// The re-check before acting saw another verdict (`None`: the instance is gone).
    Changed {
        now: Option<VerdictKind>,
    },
    RecheckFailed,
    /// The scope of the run does not take this action (e.g. a launch event does not stop).
    NotInScope(&'static str),
    /// A launch event stopped the expired instance instead of terminating it (SPEC §7).
    StoppedAtLaunch,
    /// Outside ACTION_WINDOW: terminations and stops wait for it to open; stamps do not.
    /// Shared: every action the run holds back has the same reason.
    OutsideWindow(Arc<str>),
    /// The instance carries EC2's maximum of 50 tags: a stamp cannot be written, and a due
    /// lifetime is not acted on without it.
    TagLimit,
    /// The notice gate (SPEC §8): the owner has not been told of this action and date at least
    /// the notice lead ahead. Boxed, like the other rare payloads: `Option<Fate>` stays 24
    /// bytes in each of 80 000 entries (issue 17).
    NotAnnounced(Box<NoticePeriod>),
}

/// When a termination held back by the notice gate may happen, and when its owner was told of
/// it (`None`: not yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePeriod {
    pub earliest: DateTime<Utc>,
    pub told_at: Option<DateTime<Utc>>,
}

impl fmt::Display for Deferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deferral::OutOfTime => {
                f.write_str("less than 30 s of the run's time was left; the next run picks it up")
            }
            Deferral::Changed { now } => write!(
                f,
                "changed since the listing (now: {}); not acted on, the next run re-judges it",
                now.map_or("gone", VerdictKind::as_str)
            ),
            Deferral::RecheckFailed => f.write_str("re-check failed; the next run picks it up"),
            Deferral::NotInScope(why) => f.write_str(why),
            Deferral::StoppedAtLaunch => f.write_str(STOPPED_AT_LAUNCH),
            Deferral::OutsideWindow(why) => f.write_str(why),
            Deferral::TagLimit => write!(
                f,
                "has {MAX_TAGS} tags, EC2's limit; remove one so the reaper can stamp termination_date"
            ),
            Deferral::NotAnnounced(period) => match **period {
                NoticePeriod {
                    earliest,
                    told_at: None,
                } => write!(
                f,
                    "not announced to its owner in time; announced in this run, earliest {}",
                    format_date(earliest)
                ),
                NoticePeriod {
                    earliest,
                    told_at: Some(told),
                } => write!(
                    f,
                    "announced to its owner at {}; the notice period runs until {}",
                    format_date(told),
                    format_date(earliest)
                ),
            },
        }
    }
}

/// What happened to an instance's action. `None` in the ledger: nothing yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Done,
    /// AWS refused, with its error.
    Failed {
        step: Step,
        /// Boxed: failures are rare, and every entry of 100 000 would carry its size.
        error: Box<ApiError>,
    },
    /// The call's answer was lost and a re-describe could not tell whether it happened.
    Unknown {
        step: Step,
        error: Box<ApiError>,
    },
    Deferred(Deferral),
    /// A blast-radius cap was exceeded: that action is taken for no instance this run.
    CircuitOpen,
}

impl Fate {
    /// The error text of the report for a fate that has one.
    pub(crate) fn error_text(&self) -> Option<String> {
        match self {
            Fate::Failed { step, error } if error.kind == ErrorKind::Protected => {
                Some(format!("protected: {} refused: {error}", step.describe()))
            }
            Fate::Failed { step, error } => Some(format!("{} failed: {error}", step.describe())),
            Fate::Unknown { step, error } => Some(format!(
                "{}: the answer was lost and EC2 does not show it yet: {error}",
                step.describe()
            )),
            _ => None,
        }
    }

    /// A failure, an unknown outcome or a tripped circuit is the more important news: a deferral
    /// never replaces them.
    fn outranks_deferral(&self) -> bool {
        matches!(
            self,
            Fate::Failed { .. } | Fate::Unknown { .. } | Fate::CircuitOpen
        )
    }
}

/// What the run keeps of a listed instance that needs anything: the few facts the plan, the
/// report and the notices read, not its tag map (a sweep of 100 000 instances holds these, not
/// the listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Inline (`policy::resource::Id`): an instance id needs no heap block.
    pub id: Id,
    pub state: InstanceState,
    pub first_launch: DateTime<Utc>,
    // `Box<str>`, not `String`: 8 bytes less each, for every entry of a 100 000-instance run.
    pub name: Option<Box<str>>,
    /// The value of the owner tag (`OWNER_TAG`).
    pub owner: Option<Box<str>>,
    /// How many tags it carries (EC2 allows `MAX_TAGS`, 50: a stamp needs room).
    pub tag_count: u8,
    /// The raw value of the reaper's announcement tag (`reaper:announced`); read, strictly, by
    /// the notice gate.
    pub announcement: Option<Box<str>>,
    /// What it is billed for: only for a termination or a stop (the ledger of savings).
    pub billing: Option<Box<Billing>>,
}

impl Fact {
    /// Takes what it needs out of `instance` (after it was judged) and drops the rest.
    pub(crate) fn of(mut instance: Instance, owner_tag: &str) -> Self {
        let first_launch = instance.first_launch();
        // Saturates: only `>= MAX_TAGS` is ever asked.
        let tag_count = u8::try_from(instance.tags.len()).unwrap_or(u8::MAX);
        let owner = instance.tags.remove(owner_tag).map(String::into_boxed_str);
        Fact {
            billing: instance.billing,
            name: instance.tags.remove("Name").map(String::into_boxed_str),
            announcement: instance
                .tags
                .remove(ANNOUNCED_TAG)
                .map(String::into_boxed_str),
            owner,
            tag_count,
            first_launch,
            state: instance.state,
            id: Id::from(instance.id),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub fact: Fact,
    pub verdict: Verdict,
    pub fate: Option<Fate>,
    /// A problem after the action was done (e.g. stopped, but the reason tag was not written).
    /// Rare, so one pointer (`Box<String>`), not a wide `Box<str>`: 8 bytes less in every entry.
    #[expect(
        clippy::box_collection,
        reason = "a thin pointer on purpose: `Box<str>` is two words in each of 80 000 entries"
    )]
    pub afterwards: Option<Box<String>>,
    /// What the owner hears about it in this run; set once the run has acted.
    pub notice: Option<NoticeKind>,
    /// What the notice gate asks this run to write in `reaper:announced`, by its provenance:
    /// `told` is delivered first and recorded only for the ids a delivered message named
    /// (`announce`); `set` is the creator's own date, written before any action (`record`; IAM
    /// requires it for TerminateInstances). One field: an entry never needs both.
    /// Boxed: only the entries the gate records for hold one (20 bytes less in each entry).
    pub(crate) pending: Option<Box<Announcement>>,
    /// The creator's own date entered WARN_WINDOW and its owner has not yet had the one notice
    /// for it (SPEC §8); once delivered it is recorded as `warned`, which does not move the date.
    pub(crate) heads_up: bool,
}

impl Entry {
    /// What to deliver in this run: the `told` announcement, or the heads-up for the creator's
    /// own date. Either way the owner is told the action and the date.
    pub(crate) fn announce(&self) -> Option<Deed> {
        if self.heads_up {
            return Some(Deed::Terminate);
        }
        self.pending
            .as_deref()
            .filter(|a| a.provenance == Provenance::Told)
            .map(|a| a.deed)
    }

    /// The creator's own date to record before acting (`set`).
    pub(crate) fn record(&self) -> Option<&Announcement> {
        self.pending
            .as_deref()
            .filter(|a| a.provenance == Provenance::Set)
    }

    pub(crate) fn is_actionable(&self) -> bool {
        matches!(
            self.verdict.kind(),
            VerdictKind::Terminate | VerdictKind::Stamp | VerdictKind::Stop
        )
    }
}

/// Every judged resource of one kind that needs anything, keyed by its id within that kind
/// (a second kind, an EBS volume, is a second ledger); those judged `keep` are counted.
///
/// No index beside the entries: once the listing is done, `seal` sorts them by id and lookups
/// are binary searches. A map of 80 000 ids cost 17 MB at 100 000 instances (heaptrack, issue
/// 17) — more than half of what the entries themselves hold.
#[derive(Debug)]
pub(crate) struct Ledger {
    kind: ResourceKind,
    entries: Vec<Entry>,
    kept: u64,
    sorted: bool,
    /// Instance types and platforms, one copy each: 50 000 acted instances share a few dozen.
    names: HashSet<Arc<str>>,
    /// The `keep` instances whose date comes within `UPCOMING_WITHIN` (docs/EVIDENCE.md), kept
    /// compactly and at most `MAX_UPCOMING`; `None` until `watch_upcoming` says from when.
    upcoming: Option<Upcoming>,
}

/// How far ahead the evidence's `upcoming` records look (docs/EVIDENCE.md).
pub(crate) const UPCOMING_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// The most `upcoming` records a run keeps; the rest are counted.
pub(crate) const MAX_UPCOMING: usize = 10_000;

/// One instance judged `keep` whose date comes within a week: what the evidence records of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soon {
    pub id: Id,
    pub name: Option<Box<str>>,
    pub owner: Option<Box<str>>,
    pub termination_date: DateTime<Utc>,
    pub instance_type: Option<Arc<str>>,
}

/// The `keep` instances coming due: until `until`, at most `MAX_UPCOMING`, by date then id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upcoming {
    pub until: Option<DateTime<Utc>>,
    pub lines: Vec<Soon>,
    /// Past `MAX_UPCOMING`: counted, not kept.
    pub omitted: u64,
}

impl Ledger {
    pub(crate) fn new(kind: ResourceKind) -> Self {
        Ledger {
            kind,
            entries: Vec::new(),
            kept: 0,
            sorted: false,
            names: HashSet::new(),
            upcoming: None,
        }
    }

    /// Keeps, from now on, the `keep` instances whose date is before `now + UPCOMING_WITHIN`.
    pub(crate) fn watch_upcoming(&mut self, now: DateTime<Utc>) {
        self.upcoming = Some(Upcoming {
            until: Some(now + UPCOMING_WITHIN),
            ..Upcoming::default()
        });
    }

    /// The `keep` instances coming due, sorted by date then id (empty unless watched).
    pub(crate) fn take_upcoming(&mut self) -> Upcoming {
        let mut up = self.upcoming.take().unwrap_or_default();
        up.lines
            .sort_unstable_by(|a, b| (a.termination_date, &a.id).cmp(&(b.termination_date, &b.id)));
        up
    }

    /// Notes a `keep` instance whose date comes within the watched horizon.
    fn note_upcoming(&mut self, mut instance: Instance, verdict: &Verdict, owner_tag: &str) {
        let Some(until) = self.upcoming.as_ref().and_then(|u| u.until) else {
            return;
        };
        let Some(date) = verdict.enforced_date().filter(|d| *d <= until) else {
            return;
        };
        let instance_type = instance
            .billing
            .as_ref()
            .map(|b| Arc::clone(&b.instance_type))
            .map(|t| self.shared(&t));
        let Some(up) = self.upcoming.as_mut() else {
            return;
        };
        if up.lines.len() >= MAX_UPCOMING {
            up.omitted += 1;
            return;
        }
        up.lines.push(Soon {
            owner: instance.tags.remove(owner_tag).map(String::into_boxed_str),
            name: instance.tags.remove("Name").map(String::into_boxed_str),
            id: Id::from(instance.id),
            termination_date: date,
            instance_type,
        });
    }

    /// The ledger's one copy of `name`.
    fn shared(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return Arc::clone(known);
        }
        self.names.insert(Arc::clone(name));
        Arc::clone(name)
    }

    /// The kind of every resource in it: what the plan batches for and how many a call takes.
    pub(crate) fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// Enters one judged instance as it is listed: `keep` is only counted; anything else is
    /// kept as its `Fact`.
    pub(crate) fn enter(&mut self, instance: Instance, verdict: Verdict, owner_tag: &str) {
        if verdict.kind() == VerdictKind::Keep {
            self.kept += 1;
            self.note_upcoming(instance, &verdict, owner_tag);
            return;
        }
        self.sorted = false;
        let mut fact = Fact::of(instance, owner_tag);
        // What it is billed for matters only to what the run may do: a termination (compute,
        // addresses, the volumes deleted or left behind) or a stop (compute and addresses; a
        // stop keeps every volume).
        match verdict.kind() {
            VerdictKind::Terminate => {}
            VerdictKind::Stop => {
                if let Some(billing) = fact.billing.as_mut() {
                    billing.volumes = Box::default();
                }
            }
            _ => fact.billing = None,
        }
        if let Some(billing) = fact.billing.as_mut() {
            billing.instance_type = self.shared(&billing.instance_type);
            billing.platform = self.shared(&billing.platform);
        }
        self.entries.push(Entry {
            fact,
            verdict,
            fate: None,
            afterwards: None,
            notice: None,
            pending: None,
            heads_up: false,
        });
    }

    /// How many instances were judged `keep` (and not kept).
    #[cfg(test)]
    fn kept(&self) -> u64 {
        self.kept
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries and the count of `keep`.
    pub(crate) fn into_parts(self) -> (Vec<Entry>, u64) {
        (self.entries, self.kept)
    }

    /// Ends the listing: sorts the entries by id and keeps one of each id (listings are
    /// de-duplicated by the fleet, so repeats are one instance listed twice; counted twice they
    /// would double-count caps).
    pub(crate) fn seal(&mut self) {
        if !self.sorted {
            // In place: a stable sort takes a scratch buffer of half the entries (10 MB at
            // 80 000 of them, measured by `make bench`).
            self.entries
                .sort_unstable_by(|a, b| a.fact.id.cmp(&b.fact.id));
            self.entries
                .dedup_by(|later, first| later.fact.id == first.fact.id);
            self.entries.shrink_to_fit();
            self.sorted = true;
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        if self.sorted {
            self.entries.binary_search_by(|e| (*e.fact.id).cmp(id)).ok()
        } else {
            self.entries.iter().position(|e| *e.fact.id == *id)
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Entry> {
        self.position(id).map(|i| &self.entries[i])
    }

    pub(crate) fn entries_mut(&mut self) -> &mut [Entry] {
        &mut self.entries
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.position(id).map(|i| &mut self.entries[i])
    }

    /// Still waiting for its action (no fate yet).
    pub(crate) fn is_pending(&self, id: &str) -> bool {
        self.get(id).is_some_and(|e| e.fate.is_none())
    }

    /// May still be tagged: pending, or held back by a tripped circuit or the action window (a
    /// stamp destroys nothing, and the date it writes is what a person checks).
    pub(crate) fn may_stamp(&self, id: &str) -> bool {
        self.get(id).is_some_and(|e| {
            matches!(
                e.fate,
                None | Some(Fate::CircuitOpen) | Some(Fate::Deferred(Deferral::OutsideWindow(_)))
            )
        })
    }

    /// Records `fate`, keeping the precedence: a deferral never replaces a failure, an unknown
    /// outcome or a tripped circuit.
    pub(crate) fn set(&mut self, id: &str, fate: Fate) {
        if let Some(entry) = self.get_mut(id) {
            let keep = matches!(fate, Fate::Deferred(_))
                && entry.fate.as_ref().is_some_and(Fate::outranks_deferral);
            if !keep {
                entry.fate = Some(fate);
            }
        }
    }

    pub(crate) fn defer_all<I: AsRef<str>>(
        &mut self,
        ids: impl IntoIterator<Item = I>,
        why: &Deferral,
    ) {
        for id in ids {
            self.set(id.as_ref(), Fate::Deferred(why.clone()));
        }
    }

    pub(crate) fn note_afterwards(&mut self, id: &str, problem: String) {
        if let Some(entry) = self.get_mut(id) {
            entry.afterwards = Some(Box::new(problem));
        }
    }

    /// Records what a mutating call answered, for a `step` whose success is recorded later (or
    /// not at all: `Done` leaves the entry pending for the next step). Returns the ids done and
    /// the ids whose answer was lost, to be confirmed by a re-describe.
    pub(crate) fn record(
        &mut self,
        step: Step,
        results: Vec<(String, IdOutcome)>,
    ) -> (Vec<String>, Vec<(String, ApiError)>) {
        let (mut done, mut lost) = (Vec::new(), Vec::new());
        for (id, outcome) in results {
            match outcome {
                IdOutcome::Done => done.push(id),
                IdOutcome::Failed(error) => self.set(
                    &id,
                    Fate::Failed {
                        step,
                        error: Box::new(error),
                    },
                ),
                IdOutcome::NotAttempted => self.set(&id, Fate::Deferred(Deferral::OutOfTime)),
                IdOutcome::Lost(error) => lost.push((id, error)),
            }
        }
        (done, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::InstanceState;
    use chrono::Utc;

    fn ledger() -> Ledger {
        let instance = Instance {
            id: "i-1".into(),
            state: InstanceState::Running,
            launch_time: Utc::now(),
            root_attach_time: None,
            billing: None,
            tags: Default::default(),
        };
        let verdict = Verdict::Stop {
            problem: crate::policy::Problem::Missing { near_miss: None },
        };
        let mut ledger = Ledger::new(ResourceKind::Ec2Instance);
        ledger.enter(instance.clone(), verdict.clone(), "owner");
        ledger.enter(instance, verdict, "owner");
        ledger.seal();
        ledger
    }

    #[test]
    fn a_deferral_never_hides_a_failure_an_unknown_or_a_circuit() {
        let err = ApiError::new("X", "y", ErrorKind::Instance);
        for fate in [
            Fate::CircuitOpen,
            Fate::Failed {
                step: Step::Stop,
                error: Box::new(err.clone()),
            },
            Fate::Unknown {
                step: Step::Stop,
                error: Box::new(err.clone()),
            },
        ] {
            let mut l = ledger();
            l.set("i-1", fate.clone());
            l.set("i-1", Fate::Deferred(Deferral::OutOfTime));
            assert_eq!(l.get("i-1").unwrap().fate, Some(fate));
        }
        let mut l = ledger();
        l.set("i-1", Fate::Deferred(Deferral::OutOfTime));
        l.set(
            "i-1",
            Fate::Failed {
                step: Step::Stop,
                error: Box::new(err),
            },
        );
        assert!(matches!(
            l.get("i-1").unwrap().fate,
            Some(Fate::Failed { .. })
        ));
    }

    #[test]
    fn an_entry_stays_small() {
        // 80 000 of them at 100 000 instances (`make bench`): a byte here is 80 kB there. It was
        // 368 before the error was boxed and the strings became `Box<str>` (issue 17), 264 before
        // the rare MAX_LIFETIME bound was boxed, 248 before the gate's pending record and the
        // notice period of a held-back termination were boxed. The id is inline now (24 bytes, not
        // a 16-byte box and a 32-byte heap block); the rare `afterwards` is a thin box to pay for it.
        let size = std::mem::size_of::<Entry>();
        assert!(size <= 224, "Entry grew to {size} bytes");
    }

    #[test]
    fn an_instance_listed_many_times_is_one_entry() {
        // Many repeats across the listing, so the in-place sort meets many equal ids.
        let mut l = Ledger::new(ResourceKind::Ec2Instance);
        let stop = Verdict::Stop {
            problem: crate::policy::Problem::Missing { near_miss: None },
        };
        for _ in 0..40 {
            for k in (0..50).rev() {
                let instance = Instance {
                    id: format!("i-{k:03}"),
                    state: InstanceState::Running,
                    launch_time: Utc::now(),
                    root_attach_time: None,
                    billing: None,
                    tags: Default::default(),
                };
                l.enter(instance, stop.clone(), "owner");
            }
        }
        l.seal();
        let ids: Vec<&str> = l.entries().iter().map(|e| &*e.fact.id).collect();
        let want: Vec<String> = (0..50).map(|k| format!("i-{k:03}")).collect();
        assert_eq!(ids, want);
    }

    #[test]
    fn an_instance_is_entered_once() {
        assert_eq!(ledger().entries().len(), 1);
    }

    #[test]
    fn keep_is_counted_not_held_and_the_rest_as_its_facts() {
        let mut l = Ledger::new(ResourceKind::Ec2Instance);
        let tags = [
            ("Name", "web"),
            ("team", "x"),
            ("owner", "ana"),
            (ANNOUNCED_TAG, "d"),
        ];
        let instance = |id: &str| Instance {
            id: id.into(),
            state: InstanceState::Running,
            launch_time: Utc::now(),
            root_attach_time: None,
            billing: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        l.enter(
            instance("i-keep"),
            Verdict::Keep {
                until: None,
                bound: None,
            },
            "owner",
        );
        l.enter(
            instance("i-stop"),
            Verdict::Stop {
                problem: crate::policy::Problem::Missing { near_miss: None },
            },
            "owner",
        );
        assert_eq!(l.kept(), 1);
        assert!(l.get("i-keep").is_none());
        let fact = &l.get("i-stop").unwrap().fact;
        assert_eq!(
            (
                fact.name.as_deref(),
                fact.owner.as_deref(),
                fact.announcement.as_deref(),
                fact.tag_count
            ),
            (Some("web"), Some("ana"), Some("d"), 4)
        );
    }

    #[test]
    fn protected_reads_as_refused() {
        let error = ApiError::new("OperationNotPermitted", "no", ErrorKind::Protected);
        let fate = Fate::Failed {
            step: Step::Terminate,
            error: Box::new(error),
        };
        assert_eq!(
            fate.error_text().unwrap(),
            "protected: terminate refused: OperationNotPermitted: no"
        );
    }
}
