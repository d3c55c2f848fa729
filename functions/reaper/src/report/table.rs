//! Plain-text tables of run reports, for people (reaperctl, `make demo`).

use super::{Outcome, RunReport};
use crate::policy::{format_date, VerdictKind};
use crate::text::clip;
use anstyle::{AnsiColor, Style};
use std::fmt::Write;

const COLUMNS: usize = 10;
const HEADERS: [&str; COLUMNS] = [
    "REGION", "INSTANCE", "NAME", "OWNER", "STATE", "VERDICT", "OUTCOME", "DATE", "SAVES/MO",
    "REASON",
];
const REGION: usize = 0;
const NAME: usize = 2;
const OWNER: usize = 3;
const VERDICT: usize = 5;
const OUTCOME: usize = 6;
const SAVES: usize = 8;
const REASON: usize = 9;
/// Without a known width (a pipe, `make demo`): rows stay on one line at these widths.
const DEFAULT_NAME: usize = 24;
const DEFAULT_OWNER: usize = 24;
const DEFAULT_REASON: usize = 90;
/// The narrowest the truncated columns get, however narrow the terminal: below these they say
/// nothing.
const MIN_NAME: usize = 8;
const MIN_OWNER: usize = 6;
const MIN_REASON: usize = 16;
const GAP: usize = 2;

/// How the table is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Fit rows to this many columns by truncating Name, Owner and Reason with `…`; `None` keeps
    /// the fixed default widths.
    pub width: Option<usize>,
    /// Every cell in full, whatever the width.
    pub wide: bool,
    /// ANSI colour on verdicts, failures and warnings (the caller strips it where unwanted).
    pub colour: bool,
}

/// One row per reported instance (every verdict but `keep`), then a summary line per region.
pub fn render(reports: &[RunReport]) -> String {
    render_with(reports, Layout::default())
}

pub fn render_with(reports: &[RunReport], layout: Layout) -> String {
    let mut rows: Vec<([String; COLUMNS], Style)> = Vec::new();
    for r in reports {
        for i in &r.instances {
            let style = if i.outcome == Some(Outcome::Failed) {
                AnsiColor::Red.on_default().bold()
            } else {
                verdict_style(i.verdict)
            };
            rows.push((
                [
                    r.region.clone(),
                    i.id.clone(),
                    i.name.clone().unwrap_or_else(|| "-".into()),
                    i.owner.clone().unwrap_or_else(|| "-".into()),
                    i.state.to_string(),
                    i.verdict.to_string(),
                    i.outcome.map_or("-".to_string(), |o| o.to_string()),
                    i.termination_date.map_or_else(|| "-".into(), format_date),
                    saves(i),
                    match &i.error {
                        Some(e) => format!("{} [{e}]", i.reason),
                        None => i.reason.clone(),
                    },
                ],
                style,
            ));
        }
    }
    // One region: its name is in the summary line, and the column only takes width.
    let mut shown = [true; COLUMNS];
    shown[REGION] = reports.len() > 1;
    let mut natural = HEADERS.map(|h| h.chars().count());
    for (row, _) in &rows {
        for (w, cell) in natural.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let widths = widths(natural, &mut shown, layout);

    let mut out = String::new();
    let line = |out: &mut String, cells: &[String; COLUMNS], style: Style| {
        let mut text = String::new();
        let last = (0..COLUMNS).rev().find(|&n| shown[n]).unwrap_or(REASON);
        for (n, cell) in cells.iter().enumerate().filter(|(n, _)| shown[*n]) {
            let cell = clip(cell, widths[n]);
            let padded = if n == last {
                cell
            } else {
                format!("{cell:<w$}{:GAP$}", "", w = widths[n])
            };
            if layout.colour && (n == VERDICT || n == OUTCOME) && style != Style::new() {
                let _ = write!(text, "{style}{padded}{style:#}");
            } else {
                text.push_str(&padded);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    if !rows.is_empty() {
        let bold = if layout.colour {
            Style::new().bold()
        } else {
            Style::new()
        };
        let mut header = String::new();
        line(&mut header, &HEADERS.map(str::to_string), Style::new());
        let _ = writeln!(out, "{bold}{}{bold:#}", header.trim_end());
        for (row, style) in &rows {
            line(&mut out, row, *style);
        }
        out.push('\n');
    }
    for r in reports {
        let text = summary(r);
        if layout.colour {
            for l in text.lines() {
                let style = if l.starts_with("  !") {
                    AnsiColor::Red.on_default()
                } else if l.starts_with("  ~") {
                    AnsiColor::Yellow.on_default()
                } else {
                    Style::new()
                };
                let _ = writeln!(out, "{style}{l}{style:#}");
            }
        } else {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

/// What the row's action saves a month at list prices: `$34.02`; in brackets when held back (at
/// stake, not saved); `?` when the run could not price it; `-` when it saves nothing.
fn saves(i: &super::InstanceReport) -> String {
    match i.saving.as_deref() {
        None => "-".into(),
        Some(s) => match (s.per_month, s.held) {
            (Some(usd), false) => usd.to_string(),
            (Some(usd), true) => format!("({usd})"),
            (None, _) => "?".into(),
        },
    }
}

fn verdict_style(kind: VerdictKind) -> Style {
    match kind {
        VerdictKind::Terminate => AnsiColor::Red.on_default().bold(),
        VerdictKind::Stop => AnsiColor::Yellow.on_default().bold(),
        VerdictKind::Stamp => AnsiColor::Cyan.on_default(),
        VerdictKind::Expiring => AnsiColor::Magenta.on_default(),
        _ => Style::new(),
    }
}

/// Column widths: every cell in full when wide; the fixed defaults without a width; otherwise
/// Reason, Owner and Name shrink (Reason first, to a share it can still be read in) until the row
/// fits, never below their minimums; when even that is too wide, Owner goes, then Saves/mo (JSON
/// and `--wide` keep them).
fn widths(
    natural: [usize; COLUMNS],
    shown: &mut [bool; COLUMNS],
    layout: Layout,
) -> [usize; COLUMNS] {
    let mut w = natural;
    if layout.wide {
        return w;
    }
    let Some(width) = layout.width else {
        w[NAME] = w[NAME].min(DEFAULT_NAME);
        w[OWNER] = w[OWNER].min(DEFAULT_OWNER);
        w[REASON] = w[REASON].min(DEFAULT_REASON);
        return w;
    };
    let total = |w: &[usize; COLUMNS], shown: &[bool; COLUMNS]| {
        let columns = shown.iter().filter(|s| **s).count();
        (0..COLUMNS)
            .filter(|&n| shown[n])
            .map(|n| w[n])
            .sum::<usize>()
            + GAP * columns.saturating_sub(1)
    };
    let shrink = |w: &mut [usize; COLUMNS], col: usize, floor: usize, over: &mut usize| {
        let floor = floor.min(w[col]);
        let cut = (*over).min(w[col] - floor);
        w[col] -= cut;
        *over -= cut;
    };
    let mut over = total(&w, shown).saturating_sub(width);
    for (col, floor) in [
        (REASON, 40),
        (OWNER, 12),
        (NAME, 16),
        (OWNER, MIN_OWNER),
        (REASON, MIN_REASON),
        (NAME, MIN_NAME),
    ] {
        shrink(&mut w, col, floor, &mut over);
    }
    if over > 0 {
        // Owner goes first, then what each row saves (the summary line still totals it).
        for hide in [OWNER, SAVES] {
            if total(&w, shown) > width {
                shown[hide] = false;
            }
        }
        // What they took goes back to Reason, then Name.
        let mut spare = width.saturating_sub(total(&w, shown));
        for col in [REASON, NAME] {
            let give = spare.min(natural[col] - w[col]);
            w[col] += give;
            spare -= give;
        }
    }
    w
}

/// `eu-west-1 [live] 30 judged: terminate 4, stop 3, ... | done 9, failed 1 | 7 API calls`
pub fn summary(r: &RunReport) -> String {
    let verdicts: Vec<String> = r
        .counts
        .verdicts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let outcomes: Vec<String> = r
        .counts
        .outcomes
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let calls: u64 = r.api_calls.values().sum();
    let mut s = format!(
        "{} [{}{}] {} judged: {}",
        r.region,
        r.mode,
        if r.forecast {
            format!(
                ", forecast for {}",
                crate::policy::format_date(r.evaluated_at)
            )
        } else {
            String::new()
        },
        r.instances_judged,
        if verdicts.is_empty() {
            "-".to_string()
        } else {
            verdicts.join(", ")
        },
    );
    if !outcomes.is_empty() {
        let _ = write!(s, " | {}", outcomes.join(", "));
    }
    let _ = write!(
        s,
        " | {calls} API call{}",
        if calls == 1 { "" } else { "s" }
    );
    // The ledger of savings, as the Slack message leads with it.
    if let Some((lead, rest)) = super::savings::headline(r, str::to_string) {
        let _ = write!(s, "\n  $ {lead} {rest}");
    }
    for c in &r.circuits {
        let _ = write!(s, "\n  ! {}", c.message);
    }
    for e in &r.errors {
        let _ = write!(s, "\n  ! error: {e}");
    }
    for w in &r.warnings {
        let _ = write!(s, "\n  ~ {w}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_width(w: &[usize; COLUMNS], shown: &[bool; COLUMNS]) -> usize {
        let columns = shown.iter().filter(|s| **s).count();
        (0..COLUMNS)
            .filter(|&n| shown[n])
            .map(|n| w[n])
            .sum::<usize>()
            + GAP * (columns - 1)
    }

    /// Issue 20, item 5: 196 characters on a 100-column terminal.
    #[test]
    fn rows_fit_the_width_truncating_name_owner_and_reason() {
        // One region, a terminate row (a full date) and long Name, Owner and Reason.
        let natural = [9, 19, 80, 30, 7, 9, 7, 20, 8, 150];
        // 100 columns and more: below that the fixed columns alone nearly fill a row.
        for width in [100, 120, 160] {
            let mut shown = [true; COLUMNS];
            shown[REGION] = false;
            let w = widths(
                natural,
                &mut shown,
                Layout {
                    width: Some(width),
                    ..Layout::default()
                },
            );
            assert!(row_width(&w, &shown) <= width, "{width}: {w:?}");
            assert!(
                w[REASON] >= MIN_REASON && w[NAME] >= MIN_NAME,
                "{width}: {w:?}"
            );
        }
        // Wide: everything; no width known: the fixed defaults.
        let mut shown = [true; COLUMNS];
        let wide = Layout {
            width: Some(80),
            wide: true,
            colour: false,
        };
        assert_eq!(widths(natural, &mut shown, wide), natural);
        let w = widths(natural, &mut shown, Layout::default());
        assert_eq!((w[NAME], w[OWNER], w[REASON]), (24, 24, 90));
    }

    /// Issue 21: `reaperctl plan` and `sweep` show what each action saves, and the total.
    #[test]
    fn each_row_says_what_its_action_saves_and_the_summary_totals_it() {
        use crate::policy::price::Usd;
        use crate::report::savings::{InstanceSaving, SavingAction, Savings, Total};
        use crate::report::{InstanceReport, Mode};
        use crate::run::TriggerKind;
        let mut r = RunReport::new(
            "run".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::Live,
            TriggerKind::Schedule,
            chrono::Utc::now(),
        );
        let usd = |s: &str| Usd::parse(s).unwrap();
        let line = |id: &str, verdict, saving: Option<InstanceSaving>| InstanceReport {
            outcome: Some(Outcome::Done),
            saving: saving.map(Box::new),
            ..InstanceReport::sample(id, verdict, "why")
        };
        let saving = |per_month: Option<&str>, held| InstanceSaving {
            action: SavingAction::Stop,
            held,
            per_hour: None,
            per_month: per_month.map(usd),
            unpriced: None,
            instance_type: None,
            platform: None,
        };
        r.instances = vec![
            line(
                "i-saved",
                VerdictKind::Stop,
                Some(saving(Some("34.018"), false)),
            ),
            line(
                "i-held",
                VerdictKind::Stop,
                Some(saving(Some("81.53"), true)),
            ),
            line("i-unpriced", VerdictKind::Stop, Some(saving(None, false))),
            line("i-stamp", VerdictKind::Stamp, None),
        ];
        let total = |n, month: &str| Total {
            instances: n,
            instance_hours_per_month: 730 * n,
            per_hour: None,
            per_month: Some(usd(month)),
        };
        r.savings = Some(Savings {
            price_source: "pricing-api".into(),
            saved: total(2, "34.018"),
            by_action: [(SavingAction::Stop, total(2, "34.018"))].into(),
            at_stake: total(1, "81.53"),
            unpriced: 1,
            ..Savings::default()
        });
        let out = render(&[r]);
        let row = |id: &str| out.lines().find(|l| l.contains(id)).unwrap().to_string();
        assert!(out.lines().next().unwrap().contains("SAVES/MO"), "{out}");
        assert!(row("i-saved").contains("$34.02"), "{out}");
        assert!(row("i-held").contains("($81.53)"), "{out}");
        assert!(row("i-unpriced").contains("  ?  "), "{out}");
        assert!(!row("i-stamp").contains('$'), "{out}");
        assert!(out.contains("$ Saves about $34.02/month"), "{out}");
    }
}
