//! A run's outcome -> the run report. The only place that turns fates into outcomes and words.

use super::savings::{item, PriceBook, Tally};
use super::{CircuitReport, InstanceReport, Mode, Outcome, RunReport};
use crate::policy::VerdictKind;
use crate::run::ledger::{Entry, Fate};
use crate::run::outcome::RunOutcome;
use chrono::Utc;

fn outcome(entry: &Entry, mode: Mode) -> Option<Outcome> {
    Some(match &entry.fate {
        Some(Fate::Done) => Outcome::Done,
        Some(Fate::Failed { .. }) => Outcome::Failed,
        Some(Fate::Unknown { .. }) => Outcome::Unknown,
        Some(Fate::Deferred(_)) => Outcome::Deferred,
        Some(Fate::CircuitOpen) => Outcome::CircuitOpen,
        None if entry.is_actionable() => match mode {
            Mode::Live => Outcome::Done,
            Mode::DryRun => Outcome::Would,
        },
        None => return None,
    })
}

/// The report of a run: a view of its outcome.
pub(crate) fn build(run: RunOutcome, prices: &PriceBook) -> RunReport {
    let RunOutcome {
        header,
        mut entries,
        kept,
        upcoming,
        circuits,
        errors,
        warnings,
        api_calls,
        // Priced by the savings ledger before the report is built.
        volumes: _,
    } = run;
    let mut report = RunReport::new(
        header.run_id.clone(),
        header.account.clone(),
        header.region.clone(),
        header.mode,
        header.trigger,
        header.started_at,
    );
    report.evaluated_at = header.evaluated_at;
    report.forecast = header.forecast;
    report.circuits = circuits.iter().map(CircuitReport::from).collect();
    report.errors = errors;
    report.warnings = warnings;
    report.api_calls = api_calls;
    report.upcoming = upcoming;

    let mut savings = Tally::new(&header.region, prices);
    report.instances_judged = entries.len() as u64 + kept;
    if kept > 0 {
        report.counts.verdicts.insert(VerdictKind::Keep, kept);
    }
    let rank = |e: &Entry| VerdictKind::ALL.iter().position(|k| *k == e.verdict.kind());
    // In place (ids are unique, so the order is the one a stable sort gives): a stable sort's
    // scratch buffer is half the entries, 10 MB at 80 000 of them.
    entries.sort_unstable_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.fact.id.cmp(&b.fact.id))
    });
    // Sized once: grown by doubling, 80 000 lines would hold 131 072 slots and, while growing,
    // both the old and the new list.
    report.instances = Vec::with_capacity(entries.len());
    // Each entry is consumed as its line is written, and the outcome's list gives its memory
    // back as it empties (taken from the end, shrunk whenever 4 096 slots, 1 MB, are unused: a
    // list this large is its own mapping, and shrinking it unmaps its tail): a 100 000-instance
    // run never holds the outcome and the report whole at once.
    entries.reverse();
    while let Some(e) = entries.pop() {
        if entries.capacity() - entries.len() >= 4096 {
            entries.shrink_to_fit();
        }
        let kind = e.verdict.kind();
        let outcome = outcome(&e, header.mode);
        let saving = item(&e).map(|i| Box::new(savings.add(&i)));
        *report.counts.verdicts.entry(kind).or_default() += 1;
        if let Some(outcome) = outcome {
            *report.counts.outcomes.entry(outcome).or_default() += 1;
        }
        if kind == VerdictKind::Keep {
            continue;
        }
        let mut reason = e.verdict.reason();
        if let Some(Fate::Deferred(why)) = &e.fate {
            reason = format!("{reason} ({why})");
        }
        report.instances.push(InstanceReport {
            notice: e.notice,
            name: e.fact.name.map(String::from),
            owner: e.fact.owner.map(String::from),
            state: e.fact.state,
            verdict: kind,
            reason,
            // The date the reaper acts on: the tag's, or MAX_LIFETIME's bound (the reason says).
            termination_date: e.verdict.enforced_date(),
            bound: e.verdict.bound().is_some(),
            heads_up: e.heads_up,
            outcome,
            error: e
                .fate
                .as_ref()
                .and_then(Fate::error_text)
                .or(e.afterwards.map(|a| *a)),
            id: e.fact.id.into(),
            saving,
        });
    }
    report.savings = Some(savings.finish());
    report.finished_at = Utc::now();
    report
}
