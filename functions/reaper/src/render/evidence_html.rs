//! `reaperctl report`'s views of the evidence totals: the table a terminal shows and one
//! self-contained HTML page (inline CSS, inline SVG drawn here; no script, nothing fetched).
//! Pure. Every string from a record (an account, an owner, a name) is untrusted and escaped.

use crate::policy::price::Usd;
use crate::report::totals::Evidence;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn money(usd: Usd) -> String {
    serde_json::to_string(&usd)
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

fn share(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
}

/// Per account and month: the actions, what they save a month, and compliance.
pub fn table(e: &Evidence) -> String {
    let compliance: BTreeMap<(&str, &str), Option<f64>> = e
        .compliance
        .iter()
        .map(|c| ((c.account.as_str(), c.month.as_str()), c.share))
        .collect();
    let mut keys: BTreeSet<(&str, &str)> = compliance.keys().copied().collect();
    keys.extend(
        e.months
            .iter()
            .map(|m| (m.account.as_str(), m.month.as_str())),
    );
    let mut out = format!(
        "{:<12}  {:<7}  {:>10}  {:>7}  {:>7}  {:>6}  {:>14}  {:>10}\n",
        "ACCOUNT",
        "MONTH",
        "TERMINATED",
        "STOPPED",
        "STAMPED",
        "FAILED",
        "SAVED/MO (USD)",
        "COMPLIANT"
    );
    for (account, month) in keys {
        let m = e
            .months
            .iter()
            .find(|m| m.account == account && m.month == month)
            .cloned()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12}  {:<7}  {:>10}  {:>7}  {:>7}  {:>6}  {:>14}  {:>10}",
            account,
            month,
            m.terminated,
            m.stopped,
            m.stamped,
            m.failed,
            m.saved_per_month.fixed(2),
            share(compliance.get(&(account, month)).copied().flatten())
        );
    }
    let _ = writeln!(
        out,
        "{} files, {} records, {} malformed lines; {} instances coming due (latest run of each account and region)",
        e.files,
        e.records,
        e.malformed_lines,
        e.upcoming.len()
    );
    if !e.owner_actions.is_empty() {
        let _ = writeln!(
            out,
            "\nOwner actions (keep buttons and links, {} clicks):\n{:<16}  {:<7}  {:>6}  {:>5}  {:>7}  {:>6}  {:>9}",
            e.click_records, "ACCOUNT", "MONTH", "CLICKS", "KEPT", "REFUSED", "FAILED", "DAYS KEPT"
        );
        for a in &e.owner_actions {
            let _ = writeln!(
                out,
                "{:<16}  {:<7}  {:>6}  {:>5}  {:>7}  {:>6}  {:>9}",
                a.account, a.month, a.clicks, a.kept, a.refused, a.failed, a.days_kept
            );
        }
    }
    out
}

const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];
const W: f64 = 860.0;
const H: f64 = 260.0;
const LEFT: f64 = 96.0;
const BOTTOM: f64 = 40.0;

/// An axis value: whole when it is or when it is large (the label must fit left of the plot),
/// else two decimals.
fn axis(v: f64) -> String {
    if v.fract() == 0.0 || v >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Stacked bars: one bar per x label, one segment per series (in `series` order).
fn stacked(x: &[String], series: &[(String, Vec<f64>)], unit: &str) -> String {
    let totals: Vec<f64> = (0..x.len())
        .map(|i| series.iter().map(|(_, v)| v[i]).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1e-9);
    let plot_h = H - BOTTOM - 10.0;
    let slot = (W - LEFT - 10.0) / x.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {H}" width="100%" role="img"><line x1="{LEFT}" y1="{y0}" x2="{x2}" y2="{y0}" class="axis"/>"#,
        y0 = H - BOTTOM,
        x2 = W - 10.0
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="14" class="lbl" text-anchor="end">{}</text><text x="{}" y="{}" class="lbl" text-anchor="end">0</text>"#,
        LEFT - 6.0,
        escape(&format!("{} {unit}", axis(max))),
        LEFT - 6.0,
        H - BOTTOM
    );
    let every = (x.len() / 8).max(1);
    for (i, label) in x.iter().enumerate() {
        let bx = LEFT + slot * i as f64 + slot * 0.1;
        let mut y = H - BOTTOM;
        for (n, (name, values)) in series.iter().enumerate() {
            let h = values[i] / max * plot_h;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{bx:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                slot * 0.8,
                COLOURS[n % COLOURS.len()],
                escape(label),
                escape(name),
                values[i]
            );
        }
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" class="lbl" text-anchor="middle">{}</text>"#,
                bx + slot * 0.4,
                H - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg + &legend(series.iter().map(|(n, _)| n.as_str()))
}

fn legend<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from(r#"<p class="legend">"#);
    for (n, name) in names.enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span> "#,
            COLOURS[n % COLOURS.len()],
            escape(name)
        );
    }
    out + "</p>"
}

/// One line per series over the x labels, 0 to 100 %.
fn lines(x: &[String], series: &[(String, Vec<Option<f64>>)]) -> String {
    let plot_h = H - BOTTOM - 10.0;
    let step = (W - LEFT - 40.0) / (x.len().max(2) - 1) as f64;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {H}" width="100%" role="img"><line x1="{LEFT}" y1="{y0}" x2="{x2}" y2="{y0}" class="axis"/><text x="{l}" y="14" class="lbl" text-anchor="end">100%</text><text x="{l}" y="{y0}" class="lbl" text-anchor="end">0%</text>"#,
        y0 = H - BOTTOM,
        x2 = W - 10.0,
        l = LEFT - 6.0
    );
    for (n, (name, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| {
                    format!(
                        "{:.1},{:.1}",
                        LEFT + step * i as f64,
                        H - BOTTOM - v * plot_h
                    )
                })
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            COLOURS[n % COLOURS.len()],
            points.join(" "),
            escape(name)
        );
    }
    for (i, label) in x.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="lbl" text-anchor="middle">{}</text>"#,
            LEFT + step * i as f64,
            H - BOTTOM + 16.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg + &legend(series.iter().map(|(n, _)| n.as_str()))
}

/// Cents as dollars, for drawing only (the totals themselves are exact and shown as text).
fn dollars(usd: Usd) -> f64 {
    usd.cents() as f64 / 100.0
}

/// One series per account over `months`: the value given for that account and month, or
/// `missing`.
fn per_account<'a, T: Clone>(
    accounts: &[String],
    months: &[String],
    values: impl Iterator<Item = ((&'a str, &'a str), T)>,
    missing: T,
) -> Vec<(String, Vec<T>)> {
    let at: BTreeMap<(&str, &str), T> = values.collect();
    accounts
        .iter()
        .map(|a| {
            let series = months
                .iter()
                .map(|mo| {
                    at.get(&(a.as_str(), mo.as_str()))
                        .cloned()
                        .unwrap_or(missing.clone())
                })
                .collect();
            (a.clone(), series)
        })
        .collect()
}

/// The whole page: savings per month per account, actions per day, compliance per account, and
/// what is coming due.
pub fn page(e: &Evidence) -> String {
    let months: Vec<String> = e
        .months
        .iter()
        .map(|m| m.month.clone())
        .chain(e.compliance.iter().map(|c| c.month.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let savings = per_account(
        &e.accounts,
        &months,
        e.months
            .iter()
            .map(|m| ((&*m.account, &*m.month), dollars(m.saved_per_month))),
        0.0,
    );
    let days: Vec<String> = e.days.keys().cloned().collect();
    let pick = |f: fn(&crate::report::totals::DayActions) -> u64| -> Vec<f64> {
        e.days.values().map(|d| f(d) as f64).collect()
    };
    let actions = vec![
        ("terminated".to_string(), pick(|d| d.terminated)),
        ("stopped".to_string(), pick(|d| d.stopped)),
        ("stamped".to_string(), pick(|d| d.stamped)),
        ("failed".to_string(), pick(|d| d.failed)),
    ];
    let compliance = per_account(
        &e.accounts,
        &months,
        e.compliance
            .iter()
            .map(|c| ((&*c.account, &*c.month), c.share)),
        None,
    );
    let total: Usd = e
        .months
        .iter()
        .fold(Usd::ZERO, |t, m| t.plus(m.saved_per_month));
    let range = format!(
        "{} to {}",
        e.since.map_or("the first record".into(), |d| d.to_string()),
        e.until.map_or("the last record".into(), |d| d.to_string())
    );
    let mut upcoming = String::new();
    for u in &e.upcoming {
        let _ = write!(
            upcoming,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&u.termination_date),
            escape(&u.account),
            escape(&u.region),
            escape(&u.instance_id),
            escape(u.name.as_deref().unwrap_or("")),
            escape(u.owner.as_deref().unwrap_or("")),
            escape(u.instance_type.as_deref().unwrap_or(""))
        );
    }
    let mut owner_actions = String::new();
    for a in &e.owner_actions {
        let _ = write!(
            owner_actions,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.account),
            escape(&a.month),
            a.clicks,
            a.kept,
            a.refused,
            a.failed,
            a.days_kept
        );
    }
    let owner_actions = if owner_actions.is_empty() {
        "<p>No owner actions recorded in this range.</p>".to_string()
    } else {
        format!("<table><tr><th>account</th><th>month</th><th>clicks</th><th>kept</th><th>refused</th><th>failed</th><th>days kept</th></tr>{owner_actions}</table>")
    };
    let table_text = escape(&table(e));
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ec2-reaper evidence</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}}
h1{{font-size:1.5em}} h2{{font-size:1.15em;margin-top:2em}}
.axis{{stroke:#888}} .lbl{{font-size:11px;fill:#555}}
.legend span{{margin-right:1em}} .legend i{{display:inline-block;width:10px;height:10px;margin-right:4px}}
table{{border-collapse:collapse}} td,th{{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}
</style></head><body>
<h1>ec2-reaper: what it did</h1>
<p>Live runs from {range}: {files} records files, {accounts} accounts. Saved per month (list prices, exact): <b>${total}</b>.{malformed}</p>
<h2>Savings per month, by account (USD a month)</h2>
{savings}
<h2>Actions per day</h2>
{actions}
<h2>Compliance: instances with a usable termination_date or lifetime</h2>
{compliance}
<h2>Coming due (latest run of each account and region)</h2>
<table><tr><th>termination_date</th><th>account</th><th>region</th><th>instance</th><th>Name</th><th>owner</th><th>type</th></tr>{upcoming}</table>
<h2>Owner actions: keep buttons and links</h2>
{owner_actions}
<h2>Totals</h2>
<pre>{table_text}</pre>
</body></html>
"#,
        files = e.files,
        accounts = e.accounts.len(),
        total = money(total),
        malformed = if e.malformed_lines > 0 {
            format!(" {} malformed lines were not counted.", e.malformed_lines)
        } else {
            String::new()
        },
        savings = stacked(&months, &savings, "USD"),
        actions = stacked(&days, &actions, ""),
        compliance = lines(&months, &compliance),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::totals::{Compliance, MonthTotal, Upcoming};

    fn evidence() -> Evidence {
        Evidence {
            accounts: vec!["111111111111".into()],
            months: vec![MonthTotal {
                account: "111111111111".into(),
                month: "2030-01".into(),
                terminated: 2,
                saved_per_month: Usd::parse("12.5").unwrap(),
                ..MonthTotal::default()
            }],
            compliance: vec![Compliance {
                account: "111111111111".into(),
                month: "2030-01".into(),
                compliant: 3,
                subject: 4,
                share: Some(0.75),
            }],
            upcoming: vec![Upcoming {
                account: "111111111111".into(),
                region: "eu-west-1".into(),
                instance_id: "i-1".into(),
                name: Some("<script>alert(1)</script>".into()),
                owner: Some("o'neil & \"co\"".into()),
                termination_date: "2030-01-09T00:00:00Z".into(),
                instance_type: None,
            }],
            files: 1,
            ..Evidence::default()
        }
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_records_say() {
        let page = page(&evidence());
        assert!(!page.contains("<script"), "a record cannot add a script");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("o&#39;neil &amp; &quot;co&quot;"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched"
        );
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(page.contains("<b>$12.50</b>"));
    }

    #[test]
    fn owner_actions_are_a_table_on_the_page_and_a_section_in_the_text() {
        let mut e = evidence();
        assert!(page(&e).contains("No owner actions recorded"));
        assert!(!table(&e).contains("Owner actions"));
        e.click_records = 3;
        e.owner_actions = vec![crate::report::totals::OwnerActions {
            account: "<b>".into(),
            month: "2030-01".into(),
            clicks: 3,
            kept: 2,
            refused: 1,
            failed: 0,
            days_kept: 4,
        }];
        let p = page(&e);
        assert!(p.contains("<td>&lt;b&gt;</td><td>2030-01</td><td>3</td><td>2</td><td>1</td><td>0</td><td>4</td>"), "{p}");
        let t = table(&e);
        assert!(
            t.contains("Owner actions (keep buttons and links, 3 clicks)"),
            "{t}"
        );
        assert!(
            t.lines()
                .last()
                .unwrap()
                .split_whitespace()
                .eq(["<b>", "2030-01", "3", "2", "1", "0", "4"]),
            "{t}"
        );
    }

    #[test]
    fn the_table_has_a_row_per_account_and_month() {
        let t = table(&evidence());
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("111111111111  2030-01"), "{t}");
        assert!(row.contains("12.50") && row.contains("75.0%"), "{row}");
    }
}
