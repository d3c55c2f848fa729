//! Plain-text tables of run reports, for people (reaperctl, `make demo`).

use super::RunReport;
use crate::text::clip;
use std::fmt::Write;

const HEADERS: [&str; 9] = [
    "REGION", "INSTANCE", "NAME", "OWNER", "STATE", "VERDICT", "OUTCOME", "DATE", "REASON",
];
/// Reasons can be long (they quote the bad tag); the table keeps rows on one line.
const MAX_REASON: usize = 90;

/// One row per reported instance (every verdict but `keep`), then a summary line per region.
pub fn render(reports: &[RunReport]) -> String {
    let mut rows: Vec<[String; 9]> = Vec::new();
    for r in reports {
        for i in &r.instances {
            rows.push([
                r.region.clone(),
                i.id.clone(),
                clip(i.name.as_deref().unwrap_or("-"), 24),
                clip(i.owner.as_deref().unwrap_or("-"), 24),
                i.state.clone(),
                i.verdict.to_string(),
                i.outcome.map_or("-".to_string(), |o| o.to_string()),
                i.termination_date.clone().unwrap_or_else(|| "-".into()),
                clip(
                    &match &i.error {
                        Some(e) => format!("{} [{e}]", i.reason),
                        None => i.reason.clone(),
                    },
                    MAX_REASON,
                ),
            ]);
        }
    }
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (n, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if n + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    if !rows.is_empty() {
        line(&mut out, &HEADERS.map(str::to_string));
        for row in &rows {
            line(&mut out, row);
        }
        out.push('\n');
    }
    for r in reports {
        out.push_str(&summary(r));
        out.push('\n');
    }
    out
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
    let _ = write!(s, " | {calls} API calls");
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
