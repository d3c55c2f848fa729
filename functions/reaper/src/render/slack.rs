//! The run's Slack message (SPEC §8) as Block Kit: sections in the order a person should read
//! them, each within Block Kit's limits, with "and N more" where a list is long.
//!
//! What reaches Slack: account, region, mode, trigger, run id, counts, and per instance its id,
//! `Name` and owner tag values, verdict, reason (which may quote an unreadable
//! `termination_date`/`lifetime` value: that is the point) and AWS error. No other tag value, no
//! configuration value, and never the webhook URL.

use super::mrkdwn::{clean, clip_mrkdwn, escape, len, oneline};
use crate::policy::{format_date, ResourceId, VerdictKind};
use crate::render::notice::OwnerNotice;
use crate::render::Rendered;
use crate::report::{InstanceReport, Mode, Outcome, RunReport};
use crate::text::clip;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Instances listed per section before "…and N more".
pub(crate) const MAX_LINES: usize = 20;
/// Block Kit: at most 50 blocks per message.
pub(crate) const MAX_BLOCKS: usize = 50;
/// Block Kit: a section's text is at most 3000 characters.
pub(crate) const MAX_SECTION_CHARS: usize = 3000;
/// Block Kit: a header's plain text is at most 150 characters.
const MAX_HEADER_CHARS: usize = 150;
/// A context element's text; Block Kit allows 3000 but these are one-liners.
const MAX_CONTEXT_CHARS: usize = 2000;
/// Slack refuses messages much beyond 40,000 characters; stay well below across all sections.
const MAX_MESSAGE_CHARS: usize = 30_000;
/// One instance line, so that one odd instance cannot crowd out the others.
const MAX_LINE_CHARS: usize = 1000;
const MAX_NAME_CHARS: usize = 64;
const MAX_REASON_CHARS: usize = 300;
const MAX_ERRORS: usize = 10;
/// The owners' share of a message: blocks and characters. Beyond it the section degrades.
const MAX_OWNER_SECTIONS: usize = 4;
const MAX_OWNER_CHARS: usize = 8_000;
const MAX_WARNINGS: usize = 5;

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The message's sections, in the order a person should read them: what needs a human first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    CircuitOpen,
    Failed,
    Unknown,
    Terminate,
    Stop,
    Stamp,
    Expiring,
    Deferred,
    Wait,
    Noncompliant,
    Skipped,
}

impl Group {
    const ORDER: [Group; 11] = [
        Group::CircuitOpen,
        Group::Failed,
        Group::Unknown,
        Group::Terminate,
        Group::Stop,
        Group::Stamp,
        Group::Expiring,
        Group::Deferred,
        Group::Wait,
        Group::Noncompliant,
        Group::Skipped,
    ];

    /// Failed, held back and deferred instances are grouped by outcome whatever their verdict;
    /// the rest by verdict.
    fn of(i: &InstanceReport) -> Option<Group> {
        match i.outcome {
            Some(Outcome::Failed) => return Some(Group::Failed),
            Some(Outcome::Unknown) => return Some(Group::Unknown),
            Some(Outcome::CircuitOpen) => return Some(Group::CircuitOpen),
            Some(Outcome::Deferred) => return Some(Group::Deferred),
            Some(Outcome::Done | Outcome::Would) | None => {}
        }
        Some(match i.verdict {
            VerdictKind::Terminate => Group::Terminate,
            VerdictKind::Stop => Group::Stop,
            VerdictKind::Stamp => Group::Stamp,
            VerdictKind::Expiring => Group::Expiring,
            VerdictKind::Wait => Group::Wait,
            VerdictKind::Noncompliant => Group::Noncompliant,
            VerdictKind::SkipManaged => Group::Skipped,
            VerdictKind::Keep => return None,
        })
    }

    fn title(self, mode: Mode) -> &'static str {
        let live = mode == Mode::Live;
        match self {
            Group::CircuitOpen => "Held back: circuit breaker open",
            Group::Failed => "Failed",
            Group::Unknown => "Outcome unknown (the answer was lost; the next run re-checks)",
            Group::Terminate if live => "Terminated",
            Group::Terminate => "Would terminate",
            Group::Stop if live => "Stopped (no usable termination_date or lifetime)",
            Group::Stop => "Would stop (no usable termination_date or lifetime)",
            Group::Stamp if live => "Stamped termination_date from lifetime",
            Group::Stamp => "Would stamp termination_date from lifetime",
            Group::Expiring => "Expiring soon",
            Group::Deferred => "Deferred to the next run",
            Group::Wait => "Waiting for tags (grace period)",
            Group::Noncompliant => "Already stopped, still no usable termination_date",
            Group::Skipped => "Skipped (managed: its owner would replace it)",
        }
    }

    /// For the one-line summary (the message's `text` fallback).
    fn short(self, mode: Mode) -> &'static str {
        let live = mode == Mode::Live;
        match self {
            Group::CircuitOpen => "held back by a circuit breaker",
            Group::Failed => "failed",
            Group::Unknown => "outcome unknown",
            Group::Terminate if live => "terminated",
            Group::Terminate => "would terminate",
            Group::Stop if live => "stopped",
            Group::Stop => "would stop",
            Group::Stamp if live => "stamped",
            Group::Stamp => "would stamp",
            Group::Expiring => "expiring soon",
            Group::Deferred => "deferred",
            Group::Wait => "waiting",
            Group::Noncompliant => "already stopped",
            Group::Skipped => "skipped (managed)",
        }
    }
}

/// The Block Kit message for this run, with the instances it names by id, or `None` when there
/// is nothing worth a message (`RunReport::is_noteworthy`). Delivery groups the owners once and
/// calls `render_for`; this is the same for a report alone.
#[cfg(test)]
fn render(report: &RunReport) -> Option<Rendered<Value>> {
    render_for(report, &super::notice::from_report(report), None)
}

/// `render`, with the run's owner notices grouped once by the caller: delivery mails the same
/// groups the message names, so the grouping is built once per run, not once per view.
/// With `keeps`, each announced instance of an owner with a Slack id (at most
/// `MAX_KEEP_BUTTONS`, within Block Kit's 50 blocks) gets "Keep 1 day / 3 days / 7 days" buttons
/// whose values are signed tokens; only that owner (or an admin) can use them (docs/ACTIONS.md).
pub(crate) fn render_for(
    report: &RunReport,
    owners: &[OwnerNotice],
    keeps: Option<&super::notice::Keeps>,
) -> Option<Rendered<Value>> {
    let mut payload = message_for(report, owners)?;
    if let Some(keeps) = keeps {
        add_keep_buttons(&mut payload, owners, keeps);
    }
    let named = named(&payload, report);
    Some(Rendered { payload, named })
}

/// At most this many instances get keep buttons in one message (two blocks each).
pub(crate) const MAX_KEEP_BUTTONS: usize = 10;

fn add_keep_buttons(payload: &mut Value, owners: &[OwnerNotice], keeps: &super::notice::Keeps) {
    let Some(blocks) = payload["blocks"].as_array_mut() else {
        return;
    };
    let mut added = 0;
    for notice in owners {
        if !matches!(notice.address, super::notice::OwnerAddress::SlackMember(_)) {
            continue;
        }
        for item in &notice.items {
            let Some(tokens) = keeps.tokens.get(&item.id) else {
                continue;
            };
            if added == MAX_KEEP_BUTTONS || blocks.len() + 2 > MAX_BLOCKS {
                return;
            }
            let name = item
                .name
                .as_deref()
                .map(|n| format!(" ({})", clean(n, 60)))
                .unwrap_or_default();
            blocks.push(section(format!(
                "Keep `{}`{name} longer? Only its owner can.",
                clean(&item.id, 64)
            )));
            let buttons: Vec<Value> = tokens
                .iter()
                .map(|(days, token)| {
                    let s = if *days == 1 { "" } else { "s" };
                    json!({"type": "button", "action_id": format!("keep-{days}"),
                           "text": {"type": "plain_text", "text": format!("Keep {days} day{s}")},
                           "value": token})
                })
                .collect();
            blocks.push(json!({"type": "actions", "elements": buttons}));
            added += 1;
        }
    }
}

/// The report's instances the message shows by id: an id stands in a code span (`` `i-…` ``) at
/// the start of its section line and in its owner's line. Read from the finished blocks, so an
/// id cut by a limit, folded into "…and N more" or in a section left out is not named. Tag
/// values cannot forge a span: `clean` defuses their backticks.
fn named(message: &Value, report: &RunReport) -> Vec<ResourceId> {
    let mut spans: HashSet<&str> = HashSet::new();
    let texts = message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| {
            let own = b["text"]["text"].as_str();
            let elements = b["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["text"].as_str());
            own.into_iter().chain(elements)
        });
    for text in texts {
        for line in text.lines() {
            // Odd pieces are inside a pair; a lone backtick left by a clip opens nothing.
            let pieces: Vec<&str> = line.split('`').collect();
            let closed = pieces.len() - if pieces.len() % 2 == 0 { 2 } else { 1 };
            spans.extend(pieces[..closed].iter().skip(1).step_by(2).copied());
        }
    }
    let mut seen = HashSet::new();
    report
        .instances
        .iter()
        .filter(|i| spans.contains(i.id.as_str()) && seen.insert(i.id.as_str()))
        .map(|i| ResourceId::instance(i.id.clone()))
        .collect()
}

#[cfg(test)]
fn message(report: &RunReport) -> Option<Value> {
    message_for(report, &super::notice::from_report(report))
}

fn message_for(report: &RunReport, owners: &[OwnerNotice]) -> Option<Value> {
    if !report.is_noteworthy() {
        return None;
    }
    let mode = report.mode;
    let dry = mode == Mode::DryRun;

    let mut grouped: Vec<(Group, Vec<&InstanceReport>)> =
        Group::ORDER.iter().map(|g| (*g, Vec::new())).collect();
    for i in &report.instances {
        if let Some(g) = Group::of(i) {
            if let Some((_, list)) = grouped.iter_mut().find(|(k, _)| *k == g) {
                list.push(i);
            }
        }
    }

    let mut head = vec![header(report), context(report)];
    head.extend(savings_line(report).map(section));
    if dry {
        let what = if report.forecast {
            format!(
                "*Forecast, dry run:* what a run at {} would do. Nothing was terminated, stopped or tagged.",
                date(report.evaluated_at)
            )
        } else {
            "*Dry run:* nothing was terminated, stopped or tagged. Each line says what a live run would do."
                .to_string()
        };
        head.push(section(what));
    }
    if !owners.is_empty() {
        head.extend(owner_sections(owners, dry).into_iter().map(section));
    }
    if !report.errors.is_empty() {
        let mut lines = vec![format!("*Errors* ({})", report.errors.len())];
        lines.extend(
            report
                .errors
                .iter()
                .take(MAX_ERRORS)
                .map(|e| format!("• {}", clean(e, MAX_REASON_CHARS))),
        );
        if report.errors.len() > MAX_ERRORS {
            lines.push(format!("…and {} more", report.errors.len() - MAX_ERRORS));
        }
        head.extend(pack(lines).into_iter().map(section));
    }

    let mut tail = Vec::new();
    if report.instances_omitted > 0 {
        tail.push(context_text(format!(
            "{} more instances are left out of this copy of the report; the S3 copy and the log line are whole.",
            report.instances_omitted
        )));
    }
    if !report.warnings.is_empty() {
        let mut text = report
            .warnings
            .iter()
            .take(MAX_WARNINGS)
            .map(|w| format!("Warning: {}", clean(w, MAX_REASON_CHARS)))
            .collect::<Vec<_>>()
            .join("\n");
        if report.warnings.len() > MAX_WARNINGS {
            text.push_str(&format!(
                "\n…and {} more",
                report.warnings.len() - MAX_WARNINGS
            ));
        }
        tail.push(context_text(text));
    }
    if let Some(s3) = &report.delivery.s3 {
        tail.push(context_text(format!("Full report: {}", escape(s3))));
    }

    // Sections fill what the header and the tail leave, one block kept for "left out".
    let budget = MAX_BLOCKS.saturating_sub(head.len() + tail.len() + 1);
    let mut body = Vec::new();
    let mut chars: usize = head.iter().chain(&tail).map(block_chars).sum();
    let (mut left_out, mut left_out_sections) = (0usize, 0usize);
    let mut summary = Vec::new();
    for (group, list) in &grouped {
        let circuits = if *group == Group::CircuitOpen {
            report.circuits.as_slice()
        } else {
            &[]
        };
        if list.is_empty() && circuits.is_empty() {
            continue;
        }
        summary.push(format!("{} {}", list.len(), group.short(mode)));
        let mut lines = vec![format!("*{}* ({})", group.title(mode), list.len())];
        lines.extend(
            circuits
                .iter()
                // The circuit's message is the reaper's own text: its `code` marks stay.
                .map(|c| {
                    clip_mrkdwn(
                        &format!("⚠ {}", escape(&clip(&c.message, 1000))),
                        MAX_LINE_CHARS,
                    )
                }),
        );
        lines.extend(
            list.iter()
                .take(MAX_LINES)
                .map(|i| instance_line(i, *group)),
        );
        if list.len() > MAX_LINES {
            lines.push(format!("…and {} more", list.len() - MAX_LINES));
        }
        let sections = pack(lines);
        let size: usize = sections.iter().map(|s| len(s)).sum();
        if body.len() + sections.len() > budget || chars + size > MAX_MESSAGE_CHARS {
            left_out += list.len();
            left_out_sections += 1;
            continue;
        }
        chars += size;
        body.extend(sections.into_iter().map(section));
    }
    if left_out_sections > 0 {
        body.push(context_text(format!(
            "{left_out_sections} more sections ({left_out} instances) did not fit in a Slack message; \
             the full report has them."
        )));
    }

    let mut blocks = head;
    blocks.extend(body);
    blocks.extend(tail);

    let mut text = format!(
        "{}: EC2 reaper {} {} ({})",
        headline(report),
        report.account,
        report.region,
        report.trigger
    );
    if !summary.is_empty() {
        text.push_str(": ");
        text.push_str(&summary.join(", "));
    }
    if !report.errors.is_empty() {
        text.push_str(&format!("; {} error(s)", report.errors.len()));
    }
    Some(json!({
        "text": clip_mrkdwn(&escape(&text), MAX_SECTION_CHARS),
        "blocks": blocks,
    }))
}

/// The owners' section, in the first form that fits its share of the message: each owner with
/// their instances; else each owner with a count; else the totals alone (the report lists each
/// owner). However many owners, it takes at most `MAX_OWNER_SECTIONS` blocks.
fn owner_sections(owners: &[OwnerNotice], dry: bool) -> Vec<String> {
    let title = if dry {
        "Owners who would be told"
    } else {
        "Owners told in this run"
    };
    let fits = |sections: &[String]| {
        sections.len() <= MAX_OWNER_SECTIONS
            && sections.iter().map(|s| len(s)).sum::<usize>() <= MAX_OWNER_CHARS
    };
    let mut lines = vec![format!("*{title}* ({})", owners.len())];
    lines.extend(super::notice::slack_owner_lines(owners));
    let full = pack(lines);
    if fits(&full) {
        return full;
    }
    let mut lines = vec![format!(
        "*{title}* ({}; instances per owner, each listed in the full report)",
        owners.len()
    )];
    lines.extend(super::notice::slack_owner_count_lines(owners));
    let counted = pack(lines);
    if fits(&counted) {
        return counted;
    }
    let (mut warned, mut stopped, mut terminated) = (0usize, 0usize, 0usize);
    for item in owners.iter().flat_map(|o| &o.items) {
        match item.event {
            super::notice::NoticeEvent::WillTerminate { .. }
            | super::notice::NoticeEvent::WillStop { .. } => warned += 1,
            super::notice::NoticeEvent::Stopped { .. } => stopped += 1,
            super::notice::NoticeEvent::Terminated { .. } => terminated += 1,
        }
    }
    let mut what = Vec::new();
    for (n, said) in [
        (warned, "told of a termination or stop to come"),
        (stopped, "told of a stop"),
        (terminated, "told of a termination"),
    ] {
        if n > 0 {
            what.push(format!("{n} instances {said}"));
        }
    }
    vec![format!(
        "*{title}* ({} owners): {}. Too many owners to list here; the full report lists each.",
        owners.len(),
        what.join(", ")
    )]
}

/// The characters of a block's texts, as Slack counts them towards a message.
fn block_chars(block: &Value) -> usize {
    let own = block["text"]["text"].as_str().map_or(0, len);
    let elements: usize = block["elements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["text"].as_str())
        .map(len)
        .sum();
    own + elements
}

/// The first words of the message; a dry run must be unmistakable.
fn headline(report: &RunReport) -> &'static str {
    match (report.mode, report.forecast) {
        (Mode::Live, _) => "LIVE",
        (Mode::DryRun, false) => "DRY RUN — nothing was changed",
        (Mode::DryRun, true) => "DRY RUN (forecast) — nothing was changed",
    }
}

fn header(report: &RunReport) -> Value {
    let text = format!(
        "{} · EC2 reaper · {} · {}",
        headline(report),
        oneline(&report.account),
        oneline(&report.region)
    );
    // Plain text: Slack does not parse it, so it needs no escaping.
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": clip(&text, MAX_HEADER_CHARS), "emoji": true },
    })
}

/// The ledger of savings in one line, at the top (SPEC §8), its lead in bold; the words are the
/// report's (`report::savings::headline`), the price source's text made safe for mrkdwn.
pub(crate) fn savings_line(report: &RunReport) -> Option<String> {
    let (lead, rest) =
        crate::report::savings::headline(report, |why| clean(why, MAX_REASON_CHARS))?;
    Some(format!("*{lead}* {rest}"))
}

fn context(report: &RunReport) -> Value {
    let mut elements = vec![
        format!("*Trigger:* {}", report.trigger),
        format!("*Run:* `{}`", clean(&report.run_id, 100)),
        format!("*Started:* {}", date(report.started_at)),
        format!("*Judged:* {} instances", report.instances_judged),
    ];
    if report.forecast {
        elements.push(format!("*Forecast for:* {}", date(report.evaluated_at)));
    }
    json!({
        "type": "context",
        "elements": elements
            .into_iter()
            .map(|t| json!({ "type": "mrkdwn", "text": t }))
            .collect::<Vec<_>>(),
    })
}

fn context_text(text: String) -> Value {
    json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": clip_mrkdwn(&text, MAX_CONTEXT_CHARS) }],
    })
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn instance_line(i: &InstanceReport, group: Group) -> String {
    let name = i
        .name
        .as_deref()
        .map_or_else(|| "(no Name)".to_string(), |n| clean(n, MAX_NAME_CHARS));
    let owner = i.owner.as_deref().map_or_else(
        || "no owner".to_string(),
        |o| format!("owner {}", clean(o, MAX_NAME_CHARS)),
    );
    let reason = clean(&i.reason, MAX_REASON_CHARS);
    let error = i.error.as_deref().map(|e| clean(e, MAX_REASON_CHARS));
    let what = match (group, error) {
        (Group::Failed | Group::Unknown, Some(error)) => format!("{error} ({reason})"),
        (Group::Failed, None) => format!("{} failed ({reason})", i.verdict),
        (Group::CircuitOpen | Group::Deferred, _) => format!("{}: {reason}", i.verdict),
        // Done, with a problem afterwards (e.g. stopped, but the reason tag was not written).
        (_, Some(error)) => format!("{reason} · {error}"),
        (_, None) => reason,
    };
    let mut line = format!("• `{}` {name} · {owner} · {what}", clean(&i.id, 64));
    if let Some(d) = i.termination_date.map(format_date) {
        if !i.reason.contains(d.as_str()) {
            line.push_str(&format!(" · termination_date {d}"));
        }
    }
    clip_mrkdwn(&line, MAX_LINE_CHARS)
}

/// Joins lines into section texts of at most `MAX_SECTION_CHARS` each.
fn pack(lines: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in lines {
        let line = clip_mrkdwn(&line, MAX_SECTION_CHARS);
        if !current.is_empty() && len(&current) + 1 + len(&line) > MAX_SECTION_CHARS {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn date(at: chrono::DateTime<chrono::Utc>) -> String {
    crate::policy::format_date(at)
}

#[cfg(test)]
mod tests {
    use super::super::slack_text::to_text;
    use super::*;
    use crate::policy::{Action, Cap};
    use crate::report::{CircuitReport, TriggerKind};
    use chrono::{TimeDelta, TimeZone, Utc};

    // -- fixtures -----------------------------------------------------------------------------

    #[test]
    fn the_savings_line_leads_the_message_in_dollars_or_in_hours_and_why() {
        use crate::policy::price::Usd;
        use crate::report::savings::{SavingAction, Savings, Total, PRICING_API};
        let total = |n, usd: &str| Total {
            instances: n,
            instance_hours_per_month: 730 * n,
            per_hour: None,
            per_month: Some(Usd::parse(usd).unwrap()),
        };
        let mut r = base(Mode::DryRun);
        r.savings = Some(Savings {
            price_source: PRICING_API.into(),
            saved: total(4, "784.968"),
            by_action: [
                (SavingAction::Terminate, total(2, "122.13")),
                (SavingAction::Stop, total(2, "662.838")),
            ]
            .into_iter()
            .collect(),
            at_stake: total(1, "81.53"),
            ..Savings::default()
        });
        assert_eq!(
            savings_line(&r).unwrap(),
            "*Would save about $784.97/month* (4 instances: terminate $122.13, stop $662.84; list prices). Held back: $81.53/month more (1 instances)"
        );
        // Noteworthy: something to stop.
        r.counts
            .verdicts
            .insert(crate::policy::VerdictKind::Stop, 2);
        let m = message(&r).unwrap();
        let first_section = m["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "section")
            .unwrap();
        assert!(
            first_section["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Would save about $784.97/month*"),
            "{first_section}"
        );
        r.mode = Mode::Live;
        r.savings = Some(Savings {
            price_source: "unavailable: AccessDeniedException: no".into(),
            saved: Total {
                instances: 2,
                instance_hours_per_month: 1460,
                ..Total::default()
            },
            ..Savings::default()
        });
        assert_eq!(
            savings_line(&r).unwrap(),
            "*Saves 1460 instance-hours a month* (2 instances); no dollar figure: unavailable: AccessDeniedException: no"
        );
        r.savings = Some(Savings::default());
        assert_eq!(savings_line(&r), None, "nothing acted on, no line");
    }

    fn base(mode: Mode) -> RunReport {
        let started = Utc.with_ymd_and_hms(2030, 3, 7, 9, 0, 0).unwrap();
        let mut r = RunReport::new(
            "4f1c2a7e-0d3b-4b8e-9a61-2c5d7e8f9a10".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            mode,
            TriggerKind::Schedule,
            started,
        );
        r.finished_at = started + TimeDelta::milliseconds(1840);
        r
    }

    fn inst(
        n: u32,
        name: Option<&str>,
        owner: Option<&str>,
        verdict: VerdictKind,
        reason: &str,
        date: Option<&str>,
        outcome: Option<Outcome>,
    ) -> InstanceReport {
        InstanceReport {
            id: format!("i-0{n:016x}"),
            name: name.map(str::to_string),
            owner: owner.map(str::to_string),
            state: if verdict == VerdictKind::Noncompliant {
                crate::policy::InstanceState::Stopped
            } else {
                crate::policy::InstanceState::Running
            },
            verdict,
            reason: reason.into(),
            termination_date: date.map(|d| d.parse().expect("a test date")),
            bound: false,
            heads_up: false,
            outcome,
            error: None,
            notice: None,
            saving: None,
        }
    }

    fn push(r: &mut RunReport, i: InstanceReport) {
        *r.counts.verdicts.entry(i.verdict).or_default() += 1;
        if let Some(o) = i.outcome {
            *r.counts.outcomes.entry(o).or_default() += 1;
        }
        r.instances.push(i);
    }

    /// A run that exercises every section a live run can show.
    fn fleet_report(mode: Mode) -> RunReport {
        let mut r = base(mode);
        let acted = Some(if mode == Mode::Live {
            Outcome::Done
        } else {
            Outcome::Would
        });
        use VerdictKind::*;
        push(
            &mut r,
            inst(
                1,
                Some("ci-runner-17"),
                Some("alice@example.com"),
                Terminate,
                "termination_date 2030-03-01T00:00:00Z has passed",
                Some("2030-03-01T00:00:00Z"),
                acted,
            ),
        );
        push(
            &mut r,
            inst(
                2,
                Some("build <tmp> & test"),
                Some("bob"),
                Terminate,
                "lifetime ended 2030-03-07T08:00:00Z (stamped termination_date)",
                Some("2030-03-07T08:00:00Z"),
                acted,
            ),
        );
        push(
            &mut r,
            inst(
                3,
                None,
                None,
                Stop,
                "no termination_date or lifetime tag",
                None,
                acted,
            ),
        );
        push(
            &mut r,
            inst(
                4,
                Some("scratch"),
                Some("carol"),
                Stop,
                // The reason as the sweep gives it, from the parser, so the sample cannot drift.
                &crate::policy::tags::parse_termination_date("2030-01-01")
                    .expect_err("a date without a time is refused")
                    .to_string(),
                None,
                acted,
            ),
        );
        push(
            &mut r,
            inst(
                5,
                Some("etl-nightly"),
                Some("data-team"),
                Stamp,
                "lifetime -> termination_date=2030-03-14T09:00:00Z",
                Some("2030-03-14T09:00:00Z"),
                acted,
            ),
        );
        push(
            &mut r,
            inst(
                6,
                Some("bastion"),
                Some("ops"),
                Expiring,
                "expires 2030-03-07T20:00:00Z",
                Some("2030-03-07T20:00:00Z"),
                None,
            ),
        );
        push(
            &mut r,
            inst(
                7,
                Some("fresh"),
                Some("dave"),
                Wait,
                "no termination_date or lifetime tag; grace period until 2030-03-07T09:10:00Z",
                None,
                None,
            ),
        );
        push(&mut r, inst(8, Some("old-db"), None, Noncompliant,
            "no termination_date or lifetime tag (found \"Termination_Date\"; tag keys are case-sensitive); already stopped",
            None, None));
        push(
            &mut r,
            inst(
                9,
                Some("eks-node"),
                None,
                SkipManaged,
                "managed (tag eks:nodegroup-name); its owner would replace it",
                None,
                None,
            ),
        );
        if mode == Mode::Live {
            let mut failed = inst(
                10,
                Some("prod-db"),
                Some("erin"),
                Terminate,
                "termination_date 2030-03-05T00:00:00Z has passed",
                Some("2030-03-05T00:00:00Z"),
                Some(Outcome::Failed),
            );
            failed.error = Some("protected: terminate refused: OperationNotPermitted: The instance 'i-0000000000000000a' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.".into());
            push(&mut r, failed);
            push(
                &mut r,
                inst(
                    14,
                    Some("gpu-box"),
                    Some("grace"),
                    Stop,
                    "no termination_date or lifetime tag (less than 30 s of the run's time was left; the next run picks it up)",
                    None,
                    Some(Outcome::Deferred),
                ),
            );
            r.instances[3].error =
                Some("stopped, but tagging the reason failed: RequestLimitExceeded: Request limit exceeded.".into());
        } else {
            // A forecast that trips the stop cap.
            r.forecast = true;
            r.evaluated_at = Utc.with_ymd_and_hms(2030, 3, 10, 0, 0, 0).unwrap();
            r.trigger = TriggerKind::Manual;
            for n in 11..14 {
                push(
                    &mut r,
                    inst(
                        n,
                        Some("batch-worker"),
                        Some("frank"),
                        Stop,
                        "no termination_date or lifetime tag",
                        None,
                        Some(Outcome::CircuitOpen),
                    ),
                );
            }
            r.circuits.push(CircuitReport {
                action: Action::Stop,
                planned: 5,
                cap: Cap::Limited(2),
                message: "circuit open: 5 stops planned, cap is 2; nothing was stopped. A mass expiry is more often a clock, tag or deployment mistake than intent: check the instances, then raise MAX_STOPS (a number or `unlimited`) for one run if it is right".into(),
            });
        }
        r.instances_judged = 42;
        // Owner notices: the bastion's owner is a Slack member told before the date, the
        // terminated runner's owner an e-mail address told after the fact.
        for i in &mut r.instances {
            if i.verdict == Expiring {
                i.owner = Some("U024BE7LH".into());
                i.notice = Some(crate::report::NoticeKind::WillTerminate);
            }
            if i.owner.as_deref() == Some("alice@example.com") && mode == Mode::Live {
                i.notice = Some(crate::report::NoticeKind::Terminated);
            }
        }
        r
    }

    fn many(mode: Mode, n: u32) -> RunReport {
        let mut r = base(mode);
        let outcome = Some(if mode == Mode::Live {
            Outcome::Done
        } else {
            Outcome::Would
        });
        for k in 0..n {
            push(
                &mut r,
                inst(
                    k,
                    Some(&format!("node-{k}")),
                    Some("alice"),
                    VerdictKind::Terminate,
                    "termination_date 2030-03-01T00:00:00Z has passed",
                    Some("2030-03-01T00:00:00Z"),
                    outcome,
                ),
            );
        }
        r
    }

    fn all_texts(message: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for b in message["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                out.push(t.to_string());
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                out.push(e["text"].as_str().unwrap().to_string());
            }
        }
        out
    }

    fn assert_within_block_kit_limits(message: &Value) {
        let blocks = message["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
        for b in blocks {
            match b["type"].as_str().unwrap() {
                "header" => assert!(len(b["text"]["text"].as_str().unwrap()) <= MAX_HEADER_CHARS),
                "section" => assert!(len(b["text"]["text"].as_str().unwrap()) <= MAX_SECTION_CHARS),
                "context" => {
                    let e = b["elements"].as_array().unwrap();
                    assert!(!e.is_empty() && e.len() <= 10);
                    for e in e {
                        assert!(len(e["text"].as_str().unwrap()) <= 3000);
                    }
                }
                other => panic!("unexpected block {other}"),
            }
        }
        assert!(len(message["text"].as_str().unwrap()) <= 3000);
        for b in blocks {
            // Not used today; counted so that a section with fields cannot slip past.
            if let Some(fields) = b["fields"].as_array() {
                assert!(fields.len() <= 10);
                for f in fields {
                    assert!(len(f["text"].as_str().unwrap()) <= 2000);
                }
            }
        }
    }

    // -- rendering ----------------------------------------------------------------------------

    #[test]
    fn nothing_to_say_means_no_message() {
        let empty = base(Mode::Live);
        assert!(message(&empty).is_none());
        let mut managed_only = base(Mode::Live);
        push(
            &mut managed_only,
            inst(
                1,
                Some("asg"),
                None,
                VerdictKind::SkipManaged,
                "managed",
                None,
                None,
            ),
        );
        assert!(message(&managed_only).is_none());

        for kind in [VerdictKind::Expiring, VerdictKind::Wait] {
            let mut r = base(Mode::Live);
            push(&mut r, inst(1, Some("x"), None, kind, "soon", None, None));
            assert!(message(&r).is_some(), "{kind}");
        }
        let mut errors_only = base(Mode::Live);
        errors_only
            .errors
            .push("list: UnauthorizedOperation: You are not authorized".into());
        let m = message(&errors_only).unwrap();
        assert!(to_text(&m).contains("UnauthorizedOperation"));
    }

    #[test]
    fn a_live_message_says_live_and_past_tense() {
        let m = message(&fleet_report(Mode::Live)).unwrap();
        assert_within_block_kit_limits(&m);
        let header = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header, "LIVE · EC2 reaper · 123456789012 · eu-west-1");
        let text = to_text(&m);
        for want in [
            "Terminated (2)",
            "Stopped (no usable termination_date or lifetime) (2)",
            "Stamped termination_date from lifetime (1)",
            "Expiring soon (1)",
            "Waiting for tags (grace period) (1)",
            "Already stopped, still no usable termination_date (1)",
            "Skipped (managed: its owner would replace it) (1)",
            "Failed (1)",
            "Deferred to the next run (1)",
            "• i-0000000000000000e gpu-box · owner grace · stop: no termination_date or lifetime tag (less than 30 s",
            "write 2030-01-01T00:00:00Z · stopped, but tagging the reason failed: RequestLimitExceeded",
            "prod-db · owner erin · protected: terminate refused: OperationNotPermitted",
            "build <tmp> & test",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        assert!(!text.to_lowercase().contains("would terminate"), "{text}");
        assert!(!text.contains("DRY RUN"));
        assert!(m["text"].as_str().unwrap().starts_with(
            "LIVE: EC2 reaper 123456789012 eu-west-1 (schedule): 1 failed, 2 terminated"
        ));
    }

    #[test]
    fn a_dry_run_is_unmistakable() {
        let mut r = fleet_report(Mode::DryRun);
        r.forecast = false;
        let m = message(&r).unwrap();
        assert_within_block_kit_limits(&m);
        let header = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            header.starts_with("DRY RUN — nothing was changed"),
            "{header}"
        );
        assert!(m["text"]
            .as_str()
            .unwrap()
            .starts_with("DRY RUN — nothing was changed"));
        let text = to_text(&m);
        assert!(text.contains("Dry run: nothing was terminated, stopped or tagged"));
        assert!(text.contains("Would terminate (2)"));
        assert!(text.contains("Would stop (no usable termination_date or lifetime) (2)"));
        assert!(text.contains("Would stamp termination_date"));
        assert!(!text.contains("\nTerminated"), "{text}");
        assert!(!text.contains("LIVE"), "{text}");
        assert!(text.contains("Held back: circuit breaker open (3)"));
        assert!(text.contains("raise MAX_STOPS"));
    }

    #[test]
    fn a_forecast_says_for_when() {
        let m = message(&fleet_report(Mode::DryRun)).unwrap();
        let text = to_text(&m);
        assert!(
            text.starts_with("DRY RUN (forecast) — nothing was changed"),
            "{text}"
        );
        assert!(text.contains("Forecast for: 2030-03-10T00:00:00Z"));
        assert!(text.contains("what a run at 2030-03-10T00:00:00Z would do"));
    }

    #[test]
    fn sections_stop_at_twenty_lines_and_say_how_many_more() {
        let m = message(&many(Mode::Live, 27)).unwrap();
        let text = to_text(&m);
        assert!(text.contains("Terminated (27)"));
        assert_eq!(text.matches("• i-0").count(), MAX_LINES);
        assert!(text.contains("node-19"));
        assert!(!text.contains("node-20 "));
        assert!(text.contains("…and 7 more"));
        let exactly = to_text(&message(&many(Mode::Live, 20)).unwrap());
        assert!(!exactly.contains("more"), "{exactly}");
    }

    /// Issue 18 finding 6 (the renderer's half): what the message names is what it shows, not
    /// what the run meant to say. Instances folded into "…and N more", or whose section did not
    /// fit, are not named; an id in a tag value is not a name.
    #[test]
    fn the_named_instances_are_exactly_those_the_message_shows() {
        let mut r = many(Mode::Live, 27);
        // A Name quoting another instance's id in a code span must not count as naming it.
        r.instances[0].name = Some(format!("see `{}`", r.instances[26].id));
        let rendered = render(&r).unwrap();
        let text = to_text(&rendered.payload);
        let named: Vec<&str> = rendered.named.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(named.len(), MAX_LINES, "{named:?}");
        for i in &r.instances {
            let shown = text.contains(&format!("• {} ", i.id));
            assert_eq!(named.contains(&i.id.as_str()), shown, "{}", i.id);
        }
        assert!(rendered
            .named
            .iter()
            .all(|n| n.kind == crate::policy::ResourceKind::Ec2Instance));

        // Owners are named in their own lines too, ten instances each.
        let told = owners_report(3, 36);
        let rendered = render(&told).unwrap();
        let text = to_text(&rendered.payload);
        for i in &told.instances {
            let named = rendered.named.iter().any(|n| n.id == i.id);
            assert_eq!(named, text.contains(&i.id), "{}", i.id);
        }
        assert!(rendered.named.len() < told.instances.len());
        assert!(render(&base(Mode::Live)).is_none());
    }

    #[test]
    fn tag_values_are_escaped_and_kept_on_one_line() {
        let mut r = base(Mode::Live);
        push(
            &mut r,
            inst(
                1,
                Some("<!channel> & <https://evil.example|click>"),
                Some("x\n• `i-fake` forged line"),
                VerdictKind::Stop,
                "no termination_date or lifetime tag",
                None,
                Some(Outcome::Done),
            ),
        );
        let m = message(&r).unwrap();
        for t in all_texts(&m) {
            assert!(!t.contains('<') && !t.contains('>'), "{t}");
        }
        let body = m.to_string();
        assert!(body.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"));
        let text = to_text(&m);
        assert_eq!(
            text.matches("• ").count(),
            2,
            "a newline in a tag value cannot add a line:\n{text}"
        );
    }

    #[test]
    fn huge_runs_respect_block_kit_limits() {
        // Every group full of long, escape-heavy values, plus many errors and circuits.
        let mut r = base(Mode::Live);
        let ugly = "<&>".repeat(100);
        let groups = [
            (VerdictKind::Terminate, Some(Outcome::Done)),
            (VerdictKind::Stop, Some(Outcome::Done)),
            (VerdictKind::Stamp, Some(Outcome::Done)),
            (VerdictKind::Expiring, None),
            (VerdictKind::Wait, None),
            (VerdictKind::Noncompliant, None),
            (VerdictKind::SkipManaged, None),
            (VerdictKind::Terminate, Some(Outcome::Failed)),
            (VerdictKind::Stop, Some(Outcome::CircuitOpen)),
            (VerdictKind::Terminate, Some(Outcome::Deferred)),
        ];
        let mut n = 0;
        for (verdict, outcome) in groups {
            for _ in 0..40 {
                n += 1;
                let mut i = inst(
                    n,
                    Some(&ugly),
                    Some(&ugly),
                    verdict,
                    &ugly,
                    // The date is typed now: only a real date can reach the message.
                    Some("2030-01-01T00:00:00Z"),
                    outcome,
                );
                i.error = Some(ugly.clone());
                push(&mut r, i);
            }
        }
        for _ in 0..30 {
            r.errors.push(ugly.clone());
            r.warnings.push(ugly.clone());
        }
        r.circuits.push(CircuitReport {
            action: Action::Stop,
            planned: 40,
            cap: Cap::Limited(1),
            message: ugly.clone(),
        });
        r.instances_omitted = 5;
        let m = message(&r).unwrap();
        assert_within_block_kit_limits(&m);
        let total: usize = all_texts(&m).iter().map(|t| len(t)).sum();
        assert!(total <= MAX_MESSAGE_CHARS + 20_000, "{total}");
        let text = to_text(&m);
        assert!(text.contains("did not fit in a Slack message"), "{text}");
        // Entities are never cut in half.
        for t in all_texts(&m) {
            for (k, _) in t.match_indices('&') {
                let rest = &t[k..];
                assert!(
                    rest.starts_with("&amp;")
                        || rest.starts_with("&lt;")
                        || rest.starts_with("&gt;"),
                    "{t}"
                );
            }
        }
    }

    /// A live run that terminated `instances` machines spread over `owners` owners, each told.
    fn owners_report(owners: u32, instances: u32) -> RunReport {
        let mut r = base(Mode::Live);
        for k in 0..instances {
            let mut i = inst(
                k,
                Some(&format!("node-{k}")),
                Some(&format!("owner-{}@example.com", k % owners)),
                VerdictKind::Terminate,
                "termination_date 2030-03-01T00:00:00Z has passed",
                Some("2030-03-01T00:00:00Z"),
                Some(Outcome::Done),
            );
            i.notice = Some(crate::report::NoticeKind::Terminated);
            push(&mut r, i);
        }
        r.instances_judged = u64::from(instances);
        r.delivery.s3 = Some("s3://reports/ec2-reaper/run.json".into());
        r
    }

    /// Issue 19 item 2: the owners' section was not counted against the 50-block limit; 700
    /// owners made 57 blocks and Slack refused the whole message. Now it degrades to totals and
    /// the message keeps the header, the counts and the link to the S3 report.
    #[test]
    fn seven_hundred_and_ten_thousand_owners_fit_one_message() {
        for owners in [700, 10_000] {
            let m = message(&owners_report(owners, owners * 4)).unwrap();
            let blocks = m["blocks"].as_array().unwrap().len();
            assert!(blocks <= MAX_BLOCKS, "{owners} owners: {blocks} blocks");
            assert_within_block_kit_limits(&m);
            let total: usize = all_texts(&m).iter().map(|t| len(t)).sum();
            assert!(total <= MAX_MESSAGE_CHARS, "{owners}: {total} characters");
            let text = to_text(&m);
            assert!(
                text.starts_with("LIVE · EC2 reaper · 123456789012 · eu-west-1"),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "Owners told in this run ({owners} owners): {} instances told of a termination",
                    owners * 4
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!("Terminated ({})", owners * 4)),
                "{text}"
            );
            assert!(
                text.contains("Full report: s3://reports/ec2-reaper/run.json"),
                "{text}"
            );
            assert!(m["text"]
                .as_str()
                .unwrap()
                .contains(&format!("{} terminated", owners * 4)));
        }
    }

    /// The first step down: too many instances per owner to list, few enough owners to name.
    #[test]
    fn owners_with_many_instances_are_listed_with_counts() {
        let m = message(&owners_report(100, 500)).unwrap();
        assert_within_block_kit_limits(&m);
        let text = to_text(&m);
        assert!(
            text.contains("Owners told in this run (100; instances per owner"),
            "{text}"
        );
        assert!(text.contains("• owner-7@example.com: 5\n"), "{text}");
        assert!(!text.contains("node-7 terminated"), "{text}");
    }

    #[test]
    fn to_text_reads_like_slack() {
        let m = json!({"text": "x", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "*A:* 1"}, {"type": "mrkdwn", "text": "*B:* `2`"}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Head* (1)\n• `i-1` a &lt;b&gt; &amp;amp; * c"}},
        ]});
        assert_eq!(
            to_text(&m),
            "Title\n=====\nA: 1  |  B: 2\n\nHead (1)\n• i-1 a <b> &amp; * c\n"
        );
    }

    // -- golden files ---------------------------------------------------------------------------

    fn golden(name: &str, actual: &str) {
        crate::text::golden(name, actual, "slack");
    }

    #[test]
    fn golden_messages() {
        let live = message(&fleet_report(Mode::Live)).unwrap();
        let dry = message(&fleet_report(Mode::DryRun)).unwrap();
        golden(
            "slack_live.json",
            &(serde_json::to_string_pretty(&live).unwrap() + "\n"),
        );
        golden(
            "slack_dry_run.json",
            &(serde_json::to_string_pretty(&dry).unwrap() + "\n"),
        );
        golden("slack_live.txt", &to_text(&live));
        golden("slack_dry_run.txt", &to_text(&dry));
    }

    #[test]
    fn the_documented_message_is_the_golden_one() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(dir.join("../../README.md"))
            .expect("README.md (moved? update this test)");
        let golden = std::fs::read_to_string(dir.join("tests/golden/slack_live.txt")).unwrap();
        assert!(
            doc.contains(&golden),
            "README.md shows an outdated Slack message: paste tests/golden/slack_live.txt"
        );
    }

    // -- properties -----------------------------------------------------------------------------

    proptest::proptest! {
        #[test]
        fn any_tag_values_render_safely(
            names in proptest::collection::vec(proptest::option::of(".{0,300}"), 1..60),
            owner in ".{0,300}",
            reason in ".{0,400}",
        ) {
            let mut r = base(Mode::DryRun);
            for (k, name) in names.iter().enumerate() {
                let verdict = VerdictKind::ALL[k % 7];
                push(&mut r, inst(k as u32, name.as_deref(), Some(&owner), verdict, &reason, None, Some(Outcome::Would)));
            }
            if let Some(m) = message(&r) {
                assert_within_block_kit_limits(&m);
                for t in all_texts(&m) {
                    proptest::prop_assert!(!t.contains('<') && !t.contains('>'));
                    proptest::prop_assert!(!t.contains('\n') || t.lines().all(|l| !l.is_empty()));
                }
            }
        }
    }

    #[test]
    fn keep_buttons_go_to_slack_owners_announced_instances() {
        use super::super::notice::{Keeps, NoticeEvent, NoticeItem, OwnerAddress, OwnerNotice};
        let report = fleet_report(Mode::Live);
        let owners = vec![OwnerNotice {
            owner: "U0OWNER1".into(),
            address: OwnerAddress::SlackMember("U0OWNER1".into()),
            items: vec![NoticeItem {
                id: "i-0a1b2c3d4e5f60718".into(),
                name: Some("web *bold*".into()),
                region: "eu-west-1".into(),
                event: NoticeEvent::WillTerminate {
                    at: report.evaluated_at,
                    bound: false,
                },
                saves: None,
            }],
        }];
        let mut keeps = Keeps {
            url: "https://x.example/".into(),
            ..Keeps::default()
        };
        keeps.tokens.insert(
            "i-0a1b2c3d4e5f60718".into(),
            vec![
                (1, "v1.a.b".into()),
                (3, "v1.c.d".into()),
                (7, "v1.e.f".into()),
            ],
        );
        let with = render_for(&report, &owners, Some(&keeps)).unwrap().payload;
        let blocks = with["blocks"].as_array().unwrap();
        let actions: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "actions").collect();
        assert_eq!(actions.len(), 1, "{with:#}");
        let values: Vec<&str> = actions[0]["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["v1.a.b", "v1.c.d", "v1.e.f"]);
        assert!(blocks.len() <= MAX_BLOCKS);
        // Without keeps, no buttons.
        let without = render_for(&report, &owners, None).unwrap().payload;
        assert!(!without["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "actions"));
    }
}
