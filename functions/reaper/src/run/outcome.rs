//! What a run did, as typed facts: the single source of every view of it (the report, the EMF
//! line, Slack, the owners' e-mails, the `reaper:announced` tags, the CLI table). A view reads
//! these types; nothing downstream parses a string the sweep produced.

use super::ledger::{Deferral, Entry, Fate, Upcoming};
use super::request::{Mode, TriggerKind};
use crate::policy::announce::Deed;
use crate::policy::price::Volume;
use crate::policy::{Circuit, NoticeKind, VerdictKind};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The run itself: where, how, when.
#[derive(Debug, Clone)]
pub struct Header {
    pub run_id: String,
    pub account: String,
    pub region: String,
    pub mode: Mode,
    pub trigger: TriggerKind,
    pub started_at: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    pub forecast: bool,
}

/// The outcome of one sweep: every instance that needs anything (its facts, verdict, fate and
/// notice), the count of those judged `keep` (counted as listed, never held), and the run's
/// circuits, errors, warnings and API calls.
#[derive(Debug)]
pub struct RunOutcome {
    pub header: Header,
    pub entries: Vec<Entry>,
    pub kept: u64,
    /// The `keep` instances whose date comes within a week (the evidence's `upcoming` records).
    pub upcoming: Upcoming,
    pub circuits: Vec<Circuit>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub api_calls: BTreeMap<String, u64>,
    /// The volumes of the instances judged `terminate`, described before the run acted (a
    /// termination deletes them): `None` when there were none, `Err` says why they are not known.
    pub volumes: Option<Result<Vec<Volume>, String>>,
}

/// What the owner hears about this instance in this run: a notice before the reaper acts (once
/// per date, SPEC §8), and after the fact for what it did. Not for a forecast.
pub(crate) fn notice(entry: &Entry, header: &Header) -> Option<NoticeKind> {
    if header.forecast {
        return None;
    }
    // A dry run's notices are those the live run would give (its owner preview lists every
    // owner the live run tells): what it would do has no fate yet.
    let acted = match header.mode {
        Mode::Live => matches!(entry.fate, Some(Fate::Done)),
        Mode::DryRun => entry.fate.is_none(),
    };
    match (&entry.fate, entry.verdict.kind()) {
        (_, VerdictKind::Terminate) if acted => Some(NoticeKind::Terminated),
        (_, VerdictKind::Stop) if acted => Some(NoticeKind::Stopped),
        (Some(Fate::Deferred(Deferral::StoppedAtLaunch)), _) => Some(NoticeKind::Stopped),
        // What the notice gate asked to announce in this run (the date enforced, whatever held
        // it back); only what a delivered message names is recorded as told.
        _ => match entry.announce()? {
            Deed::Terminate => Some(NoticeKind::WillTerminate),
            Deed::Stop => Some(NoticeKind::WillStop),
        },
    }
}
