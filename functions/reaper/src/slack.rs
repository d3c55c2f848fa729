//! Slack (SPEC §8): one Block Kit message per noteworthy run, posted to an incoming webhook.
//!
//! Rendering is pure (`render`, `to_text`); sending (`notify`) never fails the run: a timeout or a
//! non-2xx answer is retried once when it may be transient, then recorded in the report.
//!
//! What reaches Slack: account, region, mode, trigger, run id, counts, and per instance its id,
//! `Name` and owner tag values, verdict, reason (which may quote an unreadable
//! `termination_date`/`lifetime` value: that is the point) and AWS error. No other tag value, no
//! configuration value, and never the webhook URL, which is also kept out of every log line,
//! error and report.

use crate::config::Webhook;
use crate::policy::VerdictKind;
use crate::report::{InstanceReport, Mode, Outcome, RunReport};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Instances listed per section before "…and N more".
pub const MAX_LINES: usize = 20;
/// Block Kit: at most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Block Kit: a section's text is at most 3000 characters.
pub const MAX_SECTION_CHARS: usize = 3000;
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
const MAX_WARNINGS: usize = 5;
/// Pause before the retry: long enough for a blip to pass, short enough for a Lambda.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

pub const SENT: &str = "sent";
pub const NOT_CONFIGURED: &str = "not configured";
pub const NOTHING_TO_REPORT: &str = "skipped (nothing to report)";

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The message's sections, in the order a person should read them: what needs a human first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    CircuitOpen,
    Failed,
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
    const ORDER: [Group; 10] = [
        Group::CircuitOpen,
        Group::Failed,
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

/// The Block Kit message for this run, or `None` when there is nothing worth a message
/// (`RunReport::is_noteworthy`).
pub fn render(report: &RunReport) -> Option<Value> {
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
    let mut chars = 0;
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
                .map(|c| clip_mrkdwn(&format!("⚠ {}", clean(&c.message, 1000)), MAX_LINE_CHARS)),
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
    Some(json!({ "text": escape(&text), "blocks": blocks }))
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

fn context(report: &RunReport) -> Value {
    let mut elements = vec![
        format!("*Trigger:* {}", clean(&report.trigger, MAX_NAME_CHARS)),
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
        (Group::Failed, Some(error)) => format!("{error} ({reason})"),
        (Group::Failed, None) => format!("{} failed ({reason})", i.verdict),
        (Group::CircuitOpen | Group::Deferred, _) => format!("{}: {reason}", i.verdict),
        // Done, with a problem afterwards (e.g. stopped, but the reason tag was not written).
        (_, Some(error)) => format!("{reason} · {error}"),
        (_, None) => reason,
    };
    let mut line = format!("• `{}` {name} · {owner} · {what}", clean(&i.id, 64));
    if let Some(d) = &i.termination_date {
        if !i.reason.contains(d.as_str()) {
            line.push_str(&format!(" · termination_date {}", clean(d, 64)));
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

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Slack's escaping for mrkdwn text: only these three characters, so that a tag value can never
/// become a link, a mention (`<!channel>`) or a user reference.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Control characters (a newline in a tag value would fake a line of its own) become spaces.
fn oneline(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// At most `max` characters, an ellipsis marking the cut.
fn clip(s: &str, max: usize) -> String {
    if len(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text from outside (tags, AWS messages) made safe for mrkdwn: one line, clipped, escaped.
fn clean(s: &str, max: usize) -> String {
    escape(&clip(&oneline(s), max))
}

/// Clips already-escaped mrkdwn without cutting an entity (`&amp;`) in half.
fn clip_mrkdwn(s: &str, max: usize) -> String {
    if len(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    out.push('…');
    out
}

/// The message as a person reads it in Slack: headers, sections and context as plain lines,
/// mrkdwn markers and escapes undone. Used by `make demo` and the README.
pub fn to_text(message: &Value) -> String {
    let mut out = String::new();
    let Some(blocks) = message["blocks"].as_array() else {
        return unescape(message["text"].as_str().unwrap_or_default()) + "\n";
    };
    for block in blocks {
        match block["type"].as_str() {
            Some("header") => {
                let text = block["text"]["text"].as_str().unwrap_or_default();
                out.push_str(text);
                out.push('\n');
                out.push_str(&"=".repeat(len(text)));
                out.push('\n');
            }
            Some("section") => {
                if !out.is_empty() {
                    out.push('\n');
                }
                for line in block["text"]["text"].as_str().unwrap_or_default().lines() {
                    out.push_str(&plain(line));
                    out.push('\n');
                }
            }
            Some("context") => {
                let parts: Vec<String> = block["elements"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(|e| e["text"].as_str())
                            .map(plain)
                            .collect()
                    })
                    .unwrap_or_default();
                if !out.is_empty() && !out.ends_with("=\n") {
                    out.push('\n');
                }
                for line in parts.join("  |  ").lines() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Some("divider") => out.push_str("\n---\n"),
            _ => {}
        }
    }
    out
}

/// One mrkdwn line as Slack shows it: the `*bold*` and `` `code` `` markers this module writes
/// are not seen, escapes are undone.
fn plain(line: &str) -> String {
    let s = line.replace('`', "");
    // Only a leading bold run is ours: a `*` inside a tag value stays as it is.
    let s = match s.strip_prefix('*').and_then(|rest| rest.split_once('*')) {
        Some((bold, rest)) if !bold.is_empty() => format!("{bold}{rest}"),
        _ => s,
    };
    unescape(&s)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------

/// The HTTP client for Slack, built once per process (rustls, no redirects: a webhook that
/// redirects is misconfigured, and the message should not follow it elsewhere).
pub fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("ec2-reaper/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(3))
                .redirect(reqwest::redirect::Policy::none())
                // No idle connections: one message per run does not need them, and a pooled
                // connection belongs to the Tokio runtime that opened it, so sharing this client
                // across runtimes (tests, reaperctl) could otherwise hand out a dead one.
                .pool_max_idle_per_host(0)
                .build()
                // Building fails only when the TLS backend cannot start (bundled rustls with
                // aws-lc-rs and the platform verifier): nothing the function could run without.
                .expect("the HTTP client (rustls) could not be built")
        })
        .clone()
}

/// How `notify` posts: per-attempt timeout and how many retries after a 5xx, a timeout or a
/// failed connection. Other answers (4xx: a bad or revoked webhook) are not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlackSender {
    pub timeout: Duration,
    pub retries: u32,
}

impl Default for SlackSender {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retries: 1,
        }
    }
}

/// `SlackSender::default().notify(..)`: 5 s per attempt, one retry.
pub async fn notify(http: &reqwest::Client, webhook: Option<&Webhook>, report: &mut RunReport) {
    SlackSender::default().notify(http, webhook, report).await;
}

struct Failure {
    why: String,
    transient: bool,
}

impl SlackSender {
    /// Renders and posts the run's message and records what happened in `report.delivery.slack`
    /// (`sent`, `not configured`, `skipped (nothing to report)`, `failed: <why>`); a failure also
    /// goes into `report.errors` as `slack: <why>`. Never returns an error, never panics.
    pub async fn notify(
        &self,
        http: &reqwest::Client,
        webhook: Option<&Webhook>,
        report: &mut RunReport,
    ) {
        let Some(webhook) = webhook else {
            report.delivery.slack = Some(NOT_CONFIGURED.into());
            return;
        };
        let Some(message) = render(report) else {
            report.delivery.slack = Some(NOTHING_TO_REPORT.into());
            tracing::info!("slack: nothing to report, no message");
            return;
        };
        let started = Instant::now();
        match self.post(http, webhook, &message).await {
            Ok(attempts) => {
                report.delivery.slack = Some(SENT.into());
                tracing::info!(
                    attempts,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "slack message sent"
                );
            }
            Err(why) => {
                let why = redact(&why, webhook);
                tracing::warn!(
                    error = %why,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "slack message not sent"
                );
                report.delivery.slack = Some(format!("failed: {why}"));
                report.errors.push(format!("slack: {why}"));
            }
        }
    }

    /// The number of attempts it took, or why it failed.
    async fn post(
        &self,
        http: &reqwest::Client,
        webhook: &Webhook,
        message: &Value,
    ) -> Result<u32, String> {
        let attempts = self.retries.saturating_add(1);
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            match self.attempt(http, webhook, message).await {
                Ok(()) => return Ok(attempt),
                Err(f) if f.transient && attempt < attempts => {
                    tracing::info!(attempt, error = %redact(&f.why, webhook), "slack: retrying");
                }
                Err(f) if attempt > 1 => {
                    return Err(format!("{} (after {attempt} attempts)", f.why))
                }
                Err(f) => return Err(f.why),
            }
        }
        Err("no attempt was made".into())
    }

    async fn attempt(
        &self,
        http: &reqwest::Client,
        webhook: &Webhook,
        message: &Value,
    ) -> Result<(), Failure> {
        let response = http
            .post(webhook.url())
            .timeout(self.timeout)
            .json(message)
            .send()
            .await
            .map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Slack says what is wrong in a short body: `invalid_payload`, `no_service`, ...
        let body = response.text().await.unwrap_or_default();
        let body = clip(&oneline(&body), 200);
        let mut why = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string();
        if !body.is_empty() {
            why.push_str(": ");
            why.push_str(&body);
        }
        Err(Failure {
            why,
            transient: status.is_server_error(),
        })
    }

    fn transport_failure(&self, err: reqwest::Error) -> Failure {
        // reqwest puts the URL, the secret, into its errors.
        let err = err.without_url();
        if err.is_timeout() {
            return Failure {
                why: format!("timed out after {}", human(self.timeout)),
                transient: true,
            };
        }
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            let text = s.to_string();
            if !chain.contains(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            source = s.source();
        }
        Failure {
            transient: err.is_connect(),
            why: chain,
        }
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Belt and braces: whatever produced `text`, the webhook URL (or its secret path) leaves here
/// as `<webhook>`.
fn redact(text: &str, webhook: &Webhook) -> String {
    let mut out = text.replace(webhook.url(), "<webhook>");
    if let Ok(url) = reqwest::Url::parse(webhook.url()) {
        let path = url.path();
        if path.len() > 1 {
            out = out.replace(path, "/<webhook>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::{Action, Cap};
    use crate::report::CircuitReport;
    use chrono::{TimeDelta, TimeZone, Utc};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    // -- fixtures -----------------------------------------------------------------------------

    fn base(mode: Mode) -> RunReport {
        let started = Utc.with_ymd_and_hms(2030, 3, 7, 9, 0, 0).unwrap();
        let mut r = RunReport::new(
            "4f1c2a7e-0d3b-4b8e-9a61-2c5d7e8f9a10".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            mode,
            "schedule",
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
                "stopped".into()
            } else {
                "running".into()
            },
            verdict,
            reason: reason.into(),
            termination_date: date.map(str::to_string),
            outcome,
            error: None,
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
                "\"2030-01-01\" has no time zone; write 2030-01-01T00:00:00Z",
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
            r.trigger = "manual".into();
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
    }

    // -- rendering ----------------------------------------------------------------------------

    #[test]
    fn nothing_to_say_means_no_message() {
        let empty = base(Mode::Live);
        assert!(render(&empty).is_none());
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
        assert!(render(&managed_only).is_none());

        for kind in [VerdictKind::Expiring, VerdictKind::Wait] {
            let mut r = base(Mode::Live);
            push(&mut r, inst(1, Some("x"), None, kind, "soon", None, None));
            assert!(render(&r).is_some(), "{kind}");
        }
        let mut errors_only = base(Mode::Live);
        errors_only
            .errors
            .push("list: UnauthorizedOperation: You are not authorized".into());
        let m = render(&errors_only).unwrap();
        assert!(to_text(&m).contains("UnauthorizedOperation"));
    }

    #[test]
    fn a_live_message_says_live_and_past_tense() {
        let m = render(&fleet_report(Mode::Live)).unwrap();
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
        let m = render(&r).unwrap();
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
        let m = render(&fleet_report(Mode::DryRun)).unwrap();
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
        let m = render(&many(Mode::Live, 27)).unwrap();
        let text = to_text(&m);
        assert!(text.contains("Terminated (27)"));
        assert_eq!(text.matches("• i-0").count(), MAX_LINES);
        assert!(text.contains("node-19"));
        assert!(!text.contains("node-20 "));
        assert!(text.contains("…and 7 more"));
        let exactly = to_text(&render(&many(Mode::Live, 20)).unwrap());
        assert!(!exactly.contains("more"), "{exactly}");
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
        let m = render(&r).unwrap();
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
                    Some(&ugly),
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
        let m = render(&r).unwrap();
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
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `UPDATE_GOLDEN=1 cargo test -p reaper --lib slack` to create it",
                path.display()
            )
        });
        assert!(
            actual == expected,
            "{} differs from the rendering; if the change is intended, run \
             `UPDATE_GOLDEN=1 cargo test -p reaper --lib slack` and review the diff.\n--- got:\n{actual}",
            path.display()
        );
    }

    #[test]
    fn golden_messages() {
        let live = render(&fleet_report(Mode::Live)).unwrap();
        let dry = render(&fleet_report(Mode::DryRun)).unwrap();
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
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(dir.join("../../README.md"))
            .expect("README.md (moved? update this test)");
        let golden = std::fs::read_to_string(dir.join("tests/golden/slack_live.txt")).unwrap();
        assert!(
            doc.contains(&golden),
            "README.md shows an outdated Slack message: paste tests/golden/slack_live.txt"
        );
    }

    // -- sending to a real HTTP server ----------------------------------------------------------

    #[derive(Clone, Copy)]
    enum Answer {
        Status(u16),
        Never,
    }

    struct Hook {
        webhook: Webhook,
        bodies: Arc<Mutex<Vec<Value>>>,
        hits: Arc<AtomicUsize>,
    }

    /// A stand-in for Slack on 127.0.0.1, with a secret-looking path.
    fn hook(answer: Answer) -> Hook {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (bodies.clone(), hits.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                b.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                h.fetch_add(1, Ordering::SeqCst);
                match answer {
                    Answer::Status(200) => {
                        drop(req.respond(tiny_http::Response::from_string("ok")))
                    }
                    Answer::Status(code) => drop(req.respond(
                        tiny_http::Response::from_string("internal_error").with_status_code(code),
                    )),
                    Answer::Never => held.push(req),
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/services/T0SECRET/B0SECRET/XXXXSECRETXXXX");
        let webhook = Config::from_lookup(|k| (k == "SLACKWEBHOOK").then(|| url.clone()))
            .unwrap()
            .slack_webhook
            .unwrap();
        Hook {
            webhook,
            bodies,
            hits,
        }
    }

    fn assert_no_secret(r: &RunReport) {
        let json = serde_json::to_string(r).unwrap();
        assert!(
            !json.contains("SECRET"),
            "the webhook leaked into the report: {json}"
        );
    }

    const FAST: SlackSender = SlackSender {
        timeout: Duration::from_millis(300),
        retries: 1,
    };

    #[tokio::test]
    async fn a_live_run_is_posted_once() {
        let h = hook(Answer::Status(200));
        let mut r = fleet_report(Mode::Live);
        notify(&http_client(), Some(&h.webhook), &mut r).await;
        assert_eq!(r.delivery.slack.as_deref(), Some("sent"));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(h.hits.load(Ordering::SeqCst), 1);
        let posted = h.bodies.lock().unwrap()[0].clone();
        assert_eq!(Some(&posted), render(&fleet_report(Mode::Live)).as_ref());
        assert!(to_text(&posted).starts_with("LIVE · EC2 reaper"));
    }

    #[tokio::test]
    async fn a_dry_run_is_posted_with_would_wording_and_truncation() {
        let h = hook(Answer::Status(200));
        let mut r = many(Mode::DryRun, 23);
        FAST.notify(&http_client(), Some(&h.webhook), &mut r).await;
        assert_eq!(r.delivery.slack.as_deref(), Some("sent"));
        let posted = h.bodies.lock().unwrap()[0].clone();
        let text = to_text(&posted);
        assert!(text
            .starts_with("DRY RUN — nothing was changed · EC2 reaper · 123456789012 · eu-west-1"));
        assert!(text.contains("Would terminate (23)"));
        assert!(text.contains("…and 3 more"));
    }

    #[tokio::test]
    async fn an_empty_run_posts_nothing() {
        let h = hook(Answer::Status(200));
        let mut r = base(Mode::Live);
        r.instances_judged = 10;
        FAST.notify(&http_client(), Some(&h.webhook), &mut r).await;
        assert_eq!(
            r.delivery.slack.as_deref(),
            Some("skipped (nothing to report)")
        );
        assert_eq!(h.hits.load(Ordering::SeqCst), 0);
        assert!(r.errors.is_empty());

        let mut unconfigured = fleet_report(Mode::Live);
        FAST.notify(&http_client(), None, &mut unconfigured).await;
        assert_eq!(
            unconfigured.delivery.slack.as_deref(),
            Some("not configured")
        );
        assert!(unconfigured.errors.is_empty());
    }

    #[tokio::test]
    async fn a_500_is_retried_once_then_recorded() {
        let h = hook(Answer::Status(500));
        let mut r = fleet_report(Mode::Live);
        FAST.notify(&http_client(), Some(&h.webhook), &mut r).await;
        assert_eq!(h.hits.load(Ordering::SeqCst), 2);
        assert_eq!(
            r.delivery.slack.as_deref(),
            Some("failed: HTTP 500 Internal Server Error: internal_error (after 2 attempts)")
        );
        assert_eq!(
            r.errors.last().map(String::as_str),
            Some("slack: HTTP 500 Internal Server Error: internal_error (after 2 attempts)")
        );
        assert_no_secret(&r);
    }

    #[tokio::test]
    async fn a_4xx_is_not_retried() {
        let h = hook(Answer::Status(404));
        let mut r = fleet_report(Mode::Live);
        FAST.notify(&http_client(), Some(&h.webhook), &mut r).await;
        assert_eq!(h.hits.load(Ordering::SeqCst), 1);
        assert_eq!(
            r.delivery.slack.as_deref(),
            Some("failed: HTTP 404 Not Found: internal_error")
        );
    }

    #[tokio::test]
    async fn a_webhook_that_never_answers_costs_a_bounded_time() {
        let h = hook(Answer::Never);
        let mut r = fleet_report(Mode::DryRun);
        let started = Instant::now();
        FAST.notify(&http_client(), Some(&h.webhook), &mut r).await;
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
        assert_eq!(h.hits.load(Ordering::SeqCst), 2);
        assert_eq!(
            r.delivery.slack.as_deref(),
            Some("failed: timed out after 300ms (after 2 attempts)")
        );
        assert!(r.errors.iter().any(|e| e.starts_with("slack: timed out")));
        assert_no_secret(&r);
    }

    #[tokio::test]
    async fn a_refused_connection_is_recorded_without_the_url() {
        // Bind and drop: nothing listens on the port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/services/T0SECRET/B0SECRET/XXXXSECRETXXXX");
        let webhook = Config::from_lookup(|k| (k == "SLACKWEBHOOK").then(|| url.clone()))
            .unwrap()
            .slack_webhook
            .unwrap();
        let mut r = fleet_report(Mode::Live);
        FAST.notify(&http_client(), Some(&webhook), &mut r).await;
        let status = r.delivery.slack.clone().unwrap();
        assert!(
            status.starts_with("failed: error sending request"),
            "{status}"
        );
        assert!(status.ends_with("(after 2 attempts)"), "{status}");
        assert_no_secret(&r);
    }

    #[test]
    fn redaction_catches_the_url_and_its_path() {
        let url = "https://hooks.slack.com/services/T0/B0/SECRET".to_string();
        let webhook = Config::from_lookup(|k| (k == "SLACKWEBHOOK").then(|| url.clone()))
            .unwrap()
            .slack_webhook
            .unwrap();
        assert_eq!(
            redact(&format!("bad {url} here"), &webhook),
            "bad <webhook> here"
        );
        assert_eq!(
            redact("path /services/T0/B0/SECRET", &webhook),
            "path /<webhook>"
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
            if let Some(m) = render(&r) {
                assert_within_block_kit_limits(&m);
                for t in all_texts(&m) {
                    proptest::prop_assert!(!t.contains('<') && !t.contains('>'));
                    proptest::prop_assert!(!t.contains('\n') || t.lines().all(|l| !l.is_empty()));
                }
            }
        }
    }
}
