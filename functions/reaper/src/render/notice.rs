//! Owner notices (SPEC §8): who the owner tag names, one notice per owner per run, the e-mail and
//! the Slack digest lines. Pure: no AWS types, no async, no clock (the run's time comes in
//! `EmailContext::now`).
//!
//! What reaches an owner: account, run id, and per instance its id, region, `Name` tag, what will
//! happen or happened and why, and the commands that keep it. The only tag values shown are `Name`
//! and the owner tag itself (plus, inside a reason, an unreadable `termination_date`/`lifetime`
//! value, which is the point of the reason). Nothing from the configuration, no credentials.

use super::mrkdwn::{clean, clip_mrkdwn};
use crate::policy::price::Usd;
use crate::policy::{format_date, ResourceId};
use crate::render::Rendered;
use crate::text::{clip, oneline};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How much longer the `extend` command in a notice keeps an instance.
pub(crate) const EXTEND_BY_DAYS: i64 = 3;
/// The `termination_date` suggested for a stopped instance that its owner wants back.
pub(crate) const RESTART_FOR_DAYS: i64 = 7;
/// Instances listed in one e-mail; the rest are counted (the run report has them all).
pub(crate) const MAX_EMAIL_ITEMS: usize = 100;
/// Instances listed in one owner's Slack line before "and N more".
pub(crate) const MAX_SLACK_ITEMS: usize = 10;
/// One owner's Slack line, so that one owner cannot crowd out the others (Block Kit allows 3000
/// characters per section).
pub(crate) const MAX_SLACK_LINE_CHARS: usize = 1000;
const MAX_NAME_CHARS: usize = 64;
const MAX_OWNER_CHARS: usize = 100;
const MAX_REASON_CHARS: usize = 300;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// One instance an owner should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeItem {
    pub id: String,
    /// The `Name` tag.
    pub name: Option<String>,
    pub region: String,
    pub event: NoticeEvent,
    /// What its stop or termination saves a month at list prices (the ledger of savings), when
    /// the run priced it.
    pub saves: Option<Usd>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeEvent {
    /// `termination_date` entered `WARN_WINDOW` (sent once per date; `reaper:announced` records it).
    WillTerminate {
        at: DateTime<Utc>,
        /// The date is MAX_LIFETIME's (first launch + the organisation's maximum), not the
        /// tag's: extending cannot move it, so the notice must not advise it.
        bound: bool,
    },
    /// A pre-enrolment instance without a usable date: stopped only after ENROLMENT_NOTICE.
    /// `reason` says why and from when.
    WillStop {
        reason: String,
    },
    /// After the fact, same run.
    Terminated {
        reason: String,
    },
    Stopped {
        reason: String,
    },
}

/// Where an owner tag value can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerAddress {
    /// A Slack member id (`U…` or `W…`), bare: mentioned as `<@U…>`.
    SlackMember(String),
    /// An e-mail address, as written.
    Email(String),
    /// Anything else, trimmed: shown by name in the channel digest.
    Name(String),
}

/// Everything one owner hears about in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerNotice {
    /// The owner tag value as first seen (trimmed).
    pub owner: String,
    pub address: OwnerAddress,
    /// Ordered: what the owner can still act on first (soonest termination first), then stops,
    /// then terminations; by id within each.
    pub items: Vec<NoticeItem>,
}

/// Signed "keep" tokens for the instances a run announces (issue 23, docs/ACTIONS.md): per
/// instance id, one token per offered number of days, and where the owner-actions function
/// listens. The app layer signs them; renderers only place them (buttons, links).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keeps {
    pub url: String,
    pub tokens: std::collections::BTreeMap<String, Vec<(u8, String)>>,
}

impl Keeps {
    /// The link for one token: the function's URL with `?t=`.
    pub(crate) fn link(&self, token: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}t={token}", self.url)
    }
}

/// The run an e-mail comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContext {
    pub account: String,
    pub run_id: String,
    /// The run's time; the date suggested for a stopped instance counts from it.
    pub now: DateTime<Utc>,
    /// The owner tag key (`OWNER_TAG`), to tell the reader why the message reached them.
    pub owner_tag: String,
    /// Keep links for the instances announced, when owner actions are configured.
    pub keeps: Option<Keeps>,
}

pub use crate::ports::Email;

// ---------------------------------------------------------------------------------------------
// Classifying and grouping
// ---------------------------------------------------------------------------------------------

/// What an owner tag value is, after trimming surrounding white space.
///
/// - A Slack member id: `U` or `W`, then 8 or more upper-case letters and digits, **at least one
///   a digit** (every real id has one; the rule keeps words such as `UNASSIGNED` or `WEBTEAMOPS`
///   from becoming broken mentions). Slack's own spellings `<@U…>` and `@U…` are accepted and
///   stored bare. `<@U…|alice>`, lower case or inner spaces are names.
/// - An e-mail address `local@domain.tld`: ASCII, no display name or brackets, a dot-atom local
///   part, a domain of at least two labels whose last is alphabetic; at most 254 characters.
/// - Anything else is a name (shown in the channel, never mailed or mentioned).
pub(crate) fn classify(owner_tag_value: &str) -> OwnerAddress {
    let v = owner_tag_value.trim();
    let bare = v
        .strip_prefix("<@")
        .and_then(|s| s.strip_suffix('>'))
        .or_else(|| v.strip_prefix('@'))
        .unwrap_or(v);
    if crate::policy::address::is_slack_member_id(bare) {
        return OwnerAddress::SlackMember(bare.to_string());
    }
    if crate::policy::address::is_email(v) {
        return OwnerAddress::Email(v.to_string());
    }
    OwnerAddress::Name(v.to_string())
}

/// The key owners are grouped by: one member id however it was written, one mailbox whatever
/// the letter case (`Alice@Example.com` and `alice@example.com` get one e-mail, not two).
fn group_key(address: &OwnerAddress) -> OwnerAddress {
    match address {
        OwnerAddress::Email(e) => OwnerAddress::Email(e.to_ascii_lowercase()),
        other => other.clone(),
    }
}

/// One notice per owner, from (owner tag value, item) pairs in any order.
///
/// Owners come out in a fixed order whatever the input order (Slack members, then e-mail
/// addresses, then names, each sorted), so the digest and the e-mails are reproducible. An item
/// given twice for the same owner is kept once.
/// The notices of a run, grouped per owner: every reported instance with a notice and an owner
/// tag. (An instance without an owner is seen only in the channel's message.)
pub fn from_report(report: &crate::report::RunReport) -> Vec<OwnerNotice> {
    use crate::report::NoticeKind;
    group(report.instances.iter().filter_map(|i| {
        let event = match i.notice? {
            NoticeKind::WillTerminate => NoticeEvent::WillTerminate {
                at: i.termination_date?,
                bound: i.bound,
            },
            NoticeKind::Terminated => NoticeEvent::Terminated {
                reason: i.reason.clone(),
            },
            NoticeKind::WillStop => NoticeEvent::WillStop {
                reason: i.reason.clone(),
            },
            NoticeKind::Stopped => NoticeEvent::Stopped {
                reason: i.reason.clone(),
            },
        };
        let item = NoticeItem {
            id: i.id.clone(),
            name: i.name.clone(),
            region: report.region.clone(),
            event,
            saves: i
                .saving
                .as_ref()
                .filter(|s| !s.held)
                .and_then(|s| s.per_month),
        };
        Some((i.owner.clone()?, item))
    }))
}

pub fn group(items: impl IntoIterator<Item = (String, NoticeItem)>) -> Vec<OwnerNotice> {
    let mut owners: BTreeMap<OwnerAddress, OwnerNotice> = BTreeMap::new();
    for (owner, item) in items {
        let address = classify(&owner);
        let notice = owners
            .entry(group_key(&address))
            .or_insert_with(|| OwnerNotice {
                owner: owner.trim().to_string(),
                address,
                items: Vec::new(),
            });
        if !notice.items.contains(&item) {
            notice.items.push(item);
        }
    }
    owners
        .into_values()
        .map(|mut n| {
            n.items.sort_by(|a, b| item_order(a).cmp(&item_order(b)));
            n
        })
        .collect()
}

fn item_order(i: &NoticeItem) -> (u8, Option<DateTime<Utc>>, &str, &str) {
    match &i.event {
        NoticeEvent::WillTerminate { at, .. } => (0, Some(*at), i.id.as_str(), ""),
        NoticeEvent::WillStop { reason } => (0, None, i.id.as_str(), reason.as_str()),
        NoticeEvent::Stopped { reason } => (1, None, i.id.as_str(), reason.as_str()),
        NoticeEvent::Terminated { reason } => (2, None, i.id.as_str(), reason.as_str()),
    }
}

// ---------------------------------------------------------------------------------------------
// The e-mail
// ---------------------------------------------------------------------------------------------

/// One instance's block of the e-mail, before it is written as text or HTML.
struct Entry {
    /// `i-… (Name), region`
    title: String,
    /// What will happen or happened, and why.
    what: String,
    /// The sentence before the commands, if any.
    how: Option<String>,
    commands: Vec<String>,
    /// "Keep N days" links (label, URL), when owner actions are configured.
    links: Vec<(String, String)>,
    after: Option<String>,
}

fn entry(item: &NoticeItem, ctx: &EmailContext) -> Entry {
    let name = item
        .name
        .as_deref()
        .map(|n| format!(" ({})", clip(&oneline(n), MAX_NAME_CHARS)))
        .unwrap_or_default();
    let id = oneline(&item.id);
    let region = oneline(&item.region);
    let title = format!("{id}{name}, {region}");
    // The id and region come from EC2, not from tags; a command is printed only for values that
    // are safe to paste into a shell as they are.
    let safe = shell_word(&id) && shell_word(&region);
    match &item.event {
        NoticeEvent::WillTerminate { at, bound: true } => Entry {
            title,
            what: format!(
                "Will be terminated at {} ({}): that is the longest an instance may live here \
                 (the organisation's maximum lifetime, counted from its first launch), so a later \
                 termination_date does not move it and it cannot be extended.",
                format_date(*at),
                from_now(*at, ctx.now)
            ),
            how: Some(
                "To keep what it does, move it to a new instance before then, or ask the \
                 reaper's administrators for an exception (a longer MAX_LIFETIME, or \
                 termination_date=indefinite where ALLOW_INDEFINITE allows it)."
                    .to_string(),
            ),
            commands: Vec::new(),
            links: Vec::new(),
            after: None,
        },
        NoticeEvent::WillTerminate { at, bound: false } => {
            let later = at.checked_add_signed(TimeDelta::days(EXTEND_BY_DAYS));
            let mut commands = Vec::new();
            if safe {
                commands.push(format!(
                    "reaperctl extend {id} --by {EXTEND_BY_DAYS}d --region {region}"
                ));
                if let Some(later) = later {
                    commands.push(format!(
                        "aws ec2 create-tags --region {region} --resources {id} \
                         --tags Key=termination_date,Value={}",
                        format_date(later)
                    ));
                }
            }
            let links: Vec<(String, String)> = ctx
                .keeps
                .as_ref()
                .and_then(|k| Some((k, k.tokens.get(&item.id)?)))
                .map(|(k, tokens)| {
                    tokens
                        .iter()
                        .map(|(days, t)| {
                            let s = if *days == 1 { "" } else { "s" };
                            (format!("Keep {days} more day{s}"), k.link(t))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Entry {
                links,
                title,
                what: format!(
                    "Will be terminated at {} ({}).",
                    format_date(*at),
                    from_now(*at, ctx.now)
                ),
                how: Some(if commands.is_empty() {
                    "To keep it, set its termination_date tag to a later date.".to_string()
                } else {
                    format!(
                        "To keep it {EXTEND_BY_DAYS} more days, run one of these \
                         (any later termination_date works too):"
                    )
                }),
                commands,
                after: None,
            }
        }
        NoticeEvent::Stopped { reason } => {
            let until = ctx
                .now
                .checked_add_signed(TimeDelta::days(RESTART_FOR_DAYS));
            let mut commands = Vec::new();
            if let (true, Some(until)) = (safe, until) {
                commands.push(format!(
                    "aws ec2 create-tags --region {region} --resources {id} \
                     --tags Key=termination_date,Value={}",
                    format_date(until)
                ));
                commands.push(format!(
                    "aws ec2 start-instances --region {region} --instance-ids {id}"
                ));
            }
            Entry {
                title,
                what: format!("Stopped: {}.{}", sentence(reason), saves(item)),
                how: Some(if commands.is_empty() {
                    "To use it again, give it a termination_date tag (RFC 3339 with a zone, \
                     e.g. 2030-01-01T00:00:00Z) or a lifetime tag (e.g. 7d), then start it."
                        .to_string()
                } else {
                    format!(
                        "To use it again for {RESTART_FOR_DAYS} days, tag it first, then start it:"
                    )
                }),
                commands,
                links: Vec::new(),
                after: Some(
                    "Tag before starting: an instance running without a usable date is stopped \
                     again by the next sweep. A lifetime tag (e.g. lifetime=7d) counts from the first launch, so on \
                     an old instance a termination_date is the clearer choice."
                        .to_string(),
                ),
            }
        }
        NoticeEvent::WillStop { reason } => Entry {
            title,
            what: format!(
                "Will be stopped: it was running before the reaper was enrolled in this account and has no usable date ({}).",
                sentence(reason)
            ),
            how: Some(
                "To keep it running, give it a termination_date tag (RFC 3339 with a zone, \
                 e.g. 2030-01-01T00:00:00Z) or a lifetime tag (e.g. 7d)."
                    .to_string(),
            ),
            commands: Vec::new(),
            links: Vec::new(),
            after: None,
        },
        NoticeEvent::Terminated { reason } => Entry {
            title,
            what: format!("Terminated: {}.{}", sentence(reason), saves(item)),
            how: None,
            commands: Vec::new(),
            links: Vec::new(),
            after: None,
        },
    }
}

/// What the action saves, as a sentence after what happened (nothing without a price).
fn saves(item: &NoticeItem) -> String {
    item.saves
        .map(|usd| format!(" That saves about {usd} a month (list price)."))
        .unwrap_or_default()
}

/// How far `at` is from the run, roughly, so a reader need not do time-zone arithmetic.
fn from_now(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let left = at.signed_duration_since(now);
    let minutes = left.num_minutes();
    if minutes <= 0 {
        "due now".to_string()
    } else if minutes < 120 {
        format!("in {minutes} minutes")
    } else if left.num_hours() < 48 {
        format!("in {} hours", left.num_hours())
    } else {
        format!("in {} days", left.num_days())
    }
}

/// A reason as the middle of a sentence: one line, clipped, without a closing full stop.
fn sentence(reason: &str) -> String {
    let r = clip(&oneline(reason), MAX_REASON_CHARS);
    r.trim_end_matches('.').to_string()
}

/// `[A-Za-z0-9-]+`: an instance id or a region, pasteable into a shell without quoting.
fn shell_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

struct Section {
    title: &'static str,
    entries: Vec<Entry>,
}

fn sections(notice: &OwnerNotice, ctx: &EmailContext) -> (Vec<Section>, usize) {
    let mut will = Section {
        title: "Will be terminated soon",
        entries: Vec::new(),
    };
    let mut will_stop = Section {
        title: "Will be stopped",
        entries: Vec::new(),
    };
    let mut stopped = Section {
        title: "Stopped",
        entries: Vec::new(),
    };
    let mut terminated = Section {
        title: "Terminated",
        entries: Vec::new(),
    };
    for item in notice.items.iter().take(MAX_EMAIL_ITEMS) {
        let target = match item.event {
            NoticeEvent::WillTerminate { .. } => &mut will,
            NoticeEvent::WillStop { .. } => &mut will_stop,
            NoticeEvent::Stopped { .. } => &mut stopped,
            NoticeEvent::Terminated { .. } => &mut terminated,
        };
        target.entries.push(entry(item, ctx));
    }
    let left_out = notice.items.len().saturating_sub(MAX_EMAIL_ITEMS);
    let sections = [will, will_stop, stopped, terminated]
        .into_iter()
        .filter(|s| !s.entries.is_empty())
        .collect();
    (sections, left_out)
}

/// The subject: counts only, no tag value.
fn subject(notice: &OwnerNotice, ctx: &EmailContext) -> String {
    let count = |f: fn(&NoticeEvent) -> bool| notice.items.iter().filter(|i| f(&i.event)).count();
    let will = count(|e| matches!(e, NoticeEvent::WillTerminate { .. }));
    let will_stop = count(|e| matches!(e, NoticeEvent::WillStop { .. }));
    let stopped = count(|e| matches!(e, NoticeEvent::Stopped { .. }));
    let terminated = count(|e| matches!(e, NoticeEvent::Terminated { .. }));
    let mut parts = Vec::new();
    if will > 0 {
        parts.push(format!("{will} to be terminated soon"));
    }
    if will_stop > 0 {
        parts.push(format!("{will_stop} to be stopped"));
    }
    if stopped > 0 {
        parts.push(format!("{stopped} stopped"));
    }
    if terminated > 0 {
        parts.push(format!("{terminated} terminated"));
    }
    let noun = if notice.items.len() == 1 {
        "instance"
    } else {
        "instances"
    };
    format!(
        "EC2 reaper, account {}: your {noun}: {}",
        oneline(&ctx.account),
        parts.join(", ")
    )
}

fn intro(notice: &OwnerNotice, ctx: &EmailContext) -> String {
    let n = notice.items.len();
    format!(
        "The EC2 reaper in AWS account {} has news about {n} instance{} tagged {}={}.",
        oneline(&ctx.account),
        if n == 1 { "" } else { "s" },
        oneline(&ctx.owner_tag),
        clip(&oneline(&notice.owner), MAX_OWNER_CHARS),
    )
}

fn footer(notice: &OwnerNotice, ctx: &EmailContext) -> [String; 2] {
    // A MAX_LIFETIME date cannot be moved: promise a later date only where one works.
    let movable = notice
        .items
        .iter()
        .any(|i| !matches!(i.event, NoticeEvent::WillTerminate { bound: true, .. }));
    [
        if movable {
            "You get one notice per termination date; setting a later date is all it takes, \
             and you will hear again before that one."
                .to_string()
        } else {
            "You get one notice per termination date.".to_string()
        },
        format!(
            "Sent by the EC2 reaper, run {} at {}.",
            oneline(&ctx.run_id),
            format_date(ctx.now)
        ),
    ]
}

/// The e-mail for one owner, plain text and HTML with the same content, with the instances it
/// lists (not those it counts in "…and N more"). Every value from outside is made one line in
/// the text and HTML-escaped in the HTML.
pub fn render_email(notice: &OwnerNotice, ctx: &EmailContext) -> Rendered<Email> {
    let (sections, left_out) = sections(notice, ctx);
    let more = (left_out > 0).then(|| {
        format!(
            "…and {left_out} more instance{}; the run report lists them all.",
            if left_out == 1 { "" } else { "s" }
        )
    });
    let [notify, sent_by] = footer(notice, ctx);

    let mut text = String::new();
    let _ = writeln!(text, "{}\n", intro(notice, ctx));
    for s in &sections {
        let heading = format!("{} ({})", s.title, s.entries.len());
        let _ = writeln!(text, "{heading}\n{}\n", "-".repeat(heading.chars().count()));
        for e in &s.entries {
            let _ = writeln!(text, "* {}", e.title);
            let _ = writeln!(text, "  {}", e.what);
            if let Some(how) = &e.how {
                let _ = writeln!(text, "  {how}");
            }
            for c in &e.commands {
                let _ = writeln!(text, "      {c}");
            }
            if !e.links.is_empty() {
                let _ = writeln!(text, "  Or from here (the page asks before it acts):");
                for (label, url) in &e.links {
                    let _ = writeln!(text, "      {label}: {url}");
                }
            }
            if let Some(after) = &e.after {
                let _ = writeln!(text, "  {after}");
            }
            text.push('\n');
        }
    }
    if let Some(more) = &more {
        let _ = writeln!(text, "{more}\n");
    }
    let _ = writeln!(text, "--\n{notify}\n{sent_by}");

    let mut html = String::new();
    html.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family: sans-serif; font-size: 14px;\">\n",
    );
    let _ = writeln!(html, "<p>{}</p>", esc(&intro(notice, ctx)));
    for s in &sections {
        let _ = writeln!(
            html,
            "<h3>{} ({})</h3>\n<ul>",
            esc(s.title),
            s.entries.len()
        );
        for e in &s.entries {
            let _ = write!(
                html,
                "<li><p><b>{}</b><br>\n{}",
                esc(&e.title),
                esc(&e.what)
            );
            if let Some(how) = &e.how {
                let _ = write!(html, "<br>\n{}", esc(how));
            }
            html.push_str("</p>\n");
            if !e.commands.is_empty() {
                html.push_str("<pre style=\"background: #f4f4f4; padding: 6px;\">");
                let cmds: Vec<String> = e.commands.iter().map(|c| esc(c)).collect();
                html.push_str(&cmds.join("\n"));
                html.push_str("</pre>\n");
            }
            if !e.links.is_empty() {
                let links: Vec<String> = e
                    .links
                    .iter()
                    .map(|(label, url)| format!("<a href=\"{}\">{}</a>", esc(url), esc(label)))
                    .collect();
                let _ = writeln!(html, "<p>{}</p>", links.join(" &middot; "));
            }
            if let Some(after) = &e.after {
                let _ = writeln!(html, "<p>{}</p>", esc(after));
            }
            html.push_str("</li>\n");
        }
        html.push_str("</ul>\n");
    }
    if let Some(more) = &more {
        let _ = writeln!(html, "<p>{}</p>", esc(more));
    }
    let _ = writeln!(
        html,
        "<hr>\n<p style=\"color: #666; font-size: 12px;\">{}<br>\n{}</p>\n</body></html>",
        esc(&notify),
        esc(&sent_by)
    );

    let mut named: Vec<ResourceId> = Vec::new();
    for item in notice.items.iter().take(MAX_EMAIL_ITEMS) {
        if !named.iter().any(|n| n.id == item.id) {
            named.push(ResourceId::instance(item.id.clone()));
        }
    }
    Rendered {
        payload: Email {
            subject: subject(notice, ctx),
            text,
            html,
        },
        named,
    }
}

/// HTML escaping for text and attribute values (one rule for every page: `evidence_html`).
fn esc(s: &str) -> String {
    super::evidence_html::escape(s)
}

// ---------------------------------------------------------------------------------------------
// Slack
// ---------------------------------------------------------------------------------------------

/// The per-owner section of the run's Slack message, one mrkdwn line per owner: a Slack member
/// is mentioned (`<@U…>`), an e-mail owner shown by address, any other owner by name. Each line
/// lists the owner's instances (`id` Name, and what happens), at most `MAX_SLACK_ITEMS` of them;
/// tag values are escaped and kept on one line.
pub(crate) fn slack_owner_lines(notices: &[OwnerNotice]) -> Vec<String> {
    notices.iter().map(slack_owner_line).collect()
}

/// The shorter per-owner lines, for a message with too many owners to list their instances:
/// who, and how many instances.
pub(crate) fn slack_owner_count_lines(notices: &[OwnerNotice]) -> Vec<String> {
    notices
        .iter()
        .map(|n| format!("• {}: {}", slack_who(n), n.items.len()))
        .collect()
}

fn slack_who(n: &OwnerNotice) -> String {
    match &n.address {
        // `classify` admitted only [A-Z0-9]: nothing to escape, and escaping would break it.
        OwnerAddress::SlackMember(id) => format!("<@{id}>"),
        OwnerAddress::Email(e) => slack_clean(e, MAX_OWNER_CHARS),
        OwnerAddress::Name(name) if name.is_empty() => "(blank owner tag)".to_string(),
        OwnerAddress::Name(name) => slack_clean(name, MAX_OWNER_CHARS),
    }
}

fn slack_owner_line(n: &OwnerNotice) -> String {
    let who = slack_who(n);
    let regions: std::collections::BTreeSet<&str> =
        n.items.iter().map(|i| i.region.as_str()).collect();
    let show_region = regions.len() > 1;
    let mut parts: Vec<String> = n
        .items
        .iter()
        .take(MAX_SLACK_ITEMS)
        .map(|i| {
            let mut s = format!("`{}`", slack_clean(&i.id, 64));
            if let Some(name) = &i.name {
                s.push(' ');
                s.push_str(&slack_clean(name, MAX_NAME_CHARS));
            }
            if show_region {
                let _ = write!(s, " ({})", slack_clean(&i.region, 32));
            }
            match &i.event {
                NoticeEvent::WillTerminate { at, .. } => {
                    let _ = write!(s, " terminates at {}", format_date(*at));
                }
                NoticeEvent::WillStop { .. } => s.push_str(" will be stopped"),
                NoticeEvent::Stopped { .. } => s.push_str(" stopped"),
                NoticeEvent::Terminated { .. } => s.push_str(" terminated"),
            }
            s
        })
        .collect();
    if n.items.len() > MAX_SLACK_ITEMS {
        parts.push(format!("…and {} more", n.items.len() - MAX_SLACK_ITEMS));
    }
    clip_mrkdwn(
        &format!("• {who} ({}): {}", n.items.len(), parts.join(" · ")),
        MAX_SLACK_LINE_CHARS,
    )
}

fn slack_clean(s: &str, max: usize) -> String {
    clean(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Issue 17: whether a notice may advise extending came from `reason.contains("MAX_LIFETIME")`
    /// and its date from parsing the report's string back. Both now come typed from the verdict:
    /// a reason that merely mentions MAX_LIFETIME changes nothing, a bound without the words
    /// still forbids extending, and the date is the one the verdict enforces.
    #[test]
    fn the_notice_takes_the_bound_and_the_date_typed_not_from_the_reason() {
        use crate::policy::VerdictKind;
        use crate::report::{InstanceReport, Mode, NoticeKind, RunReport, TriggerKind};
        let at = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        let mut r = RunReport::new(
            "run".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::Live,
            TriggerKind::Schedule,
            at,
        );
        let line = |id: &str, reason: &str, bound: bool| InstanceReport {
            owner: Some("ana@example.com".into()),
            termination_date: Some(at),
            bound,
            notice: Some(NoticeKind::WillTerminate),
            ..InstanceReport::sample(id, VerdictKind::Expiring, reason)
        };
        r.instances.push(line(
            "i-1",
            "expires soon (MAX_LIFETIME is mentioned here)",
            false,
        ));
        r.instances.push(line("i-2", "expires soon", true));
        let notices = from_report(&r);
        assert_eq!(notices.len(), 1);
        let events: Vec<(&str, &NoticeEvent)> = notices[0]
            .items
            .iter()
            .map(|i| (i.id.as_str(), &i.event))
            .collect();
        assert_eq!(
            events,
            [
                ("i-1", &NoticeEvent::WillTerminate { at, bound: false }),
                ("i-2", &NoticeEvent::WillTerminate { at, bound: true }),
            ]
        );
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn item(id: &str, name: Option<&str>, region: &str, event: NoticeEvent) -> NoticeItem {
        NoticeItem {
            id: id.into(),
            name: name.map(str::to_string),
            region: region.into(),
            event,
            saves: None,
        }
    }

    fn will(at: DateTime<Utc>) -> NoticeEvent {
        NoticeEvent::WillTerminate { at, bound: false }
    }

    fn stopped(reason: &str) -> NoticeEvent {
        NoticeEvent::Stopped {
            reason: reason.into(),
        }
    }

    fn terminated(reason: &str) -> NoticeEvent {
        NoticeEvent::Terminated {
            reason: reason.into(),
        }
    }

    fn ctx() -> EmailContext {
        EmailContext {
            account: "123456789012".into(),
            run_id: "0b6c3c1e-5f0e-4c2b-9a53-7f1d2a9e8c41".into(),
            now: at(2030, 3, 7, 9, 0),
            owner_tag: "owner".into(),
            keeps: None,
        }
    }

    /// The golden fixture: one owner, every kind of notice, a Name that needs escaping.
    fn alice() -> OwnerNotice {
        let mut notices = group([
            (
                "alice@example.com".to_string(),
                item(
                    "i-0dead0dead0dead00",
                    None,
                    "eu-west-1",
                    terminated("termination_date 2030-03-01T00:00:00Z has passed"),
                ),
            ),
            (
                "alice@example.com".to_string(),
                item(
                    "i-0a1b2c3d4e5f60718",
                    Some("web <1> & \"co\""),
                    "eu-west-1",
                    will(at(2030, 3, 8, 6, 0)),
                ),
            ),
            (
                "alice@example.com".to_string(),
                item(
                    "i-0b0b0b0b0b0b0b0b0",
                    Some("build box"),
                    "us-east-1",
                    stopped("no termination_date or lifetime tag"),
                ),
            ),
            (
                "alice@example.com".to_string(),
                item(
                    "i-0c0ffee0c0ffee000",
                    Some("ci-runner"),
                    "eu-west-1",
                    will(at(2030, 3, 7, 21, 30)),
                ),
            ),
        ]);
        assert_eq!(notices.len(), 1);
        notices.remove(0)
    }

    // -- classify -------------------------------------------------------------------------------

    #[test]
    fn classify_table() {
        use OwnerAddress::*;
        let slack = |s: &str| SlackMember(s.to_string());
        let email = |s: &str| Email(s.to_string());
        let name = |s: &str| Name(s.to_string());
        let cases = [
            ("U024BE7LH", slack("U024BE7LH")),
            ("W012A3CDE", slack("W012A3CDE")),
            ("U01ABCDEF23", slack("U01ABCDEF23")),
            (" U024BE7LH \n", slack("U024BE7LH")),
            // Slack's own spellings, stored bare so they group with the bare id.
            ("<@U024BE7LH>", slack("U024BE7LH")),
            ("@U024BE7LH", slack("U024BE7LH")),
            // Words that fit the letters but are not ids: no digit.
            ("UNASSIGNED", name("UNASSIGNED")),
            ("WEBTEAMOPS", name("WEBTEAMOPS")),
            ("u024be7lh", name("u024be7lh")),
            ("U024BE7", name("U024BE7")),
            ("X024BE7LH", name("X024BE7LH")),
            ("U024 BE7LH", name("U024 BE7LH")),
            ("<@U024BE7LH|alice>", name("<@U024BE7LH|alice>")),
            ("<@U024BE7LH", name("<@U024BE7LH")),
            ("U024BE7LH>", name("U024BE7LH>")),
            ("<!channel>", name("<!channel>")),
            ("alice@example.com", email("alice@example.com")),
            (
                "Alice.Smith+ec2@mail.example.co.uk",
                email("Alice.Smith+ec2@mail.example.co.uk"),
            ),
            ("  bob@example.org\t", email("bob@example.org")),
            ("o'brien@ex-ample.io", email("o'brien@ex-ample.io")),
            ("alice", name("alice")),
            ("Alice Smith", name("Alice Smith")),
            ("alice@localhost", name("alice@localhost")),
            ("alice@example", name("alice@example")),
            (
                "Alice <alice@example.com>",
                name("Alice <alice@example.com>"),
            ),
            ("<alice@example.com>", name("<alice@example.com>")),
            ("mailto:alice@example.com", name("mailto:alice@example.com")),
            ("alice@@example.com", name("alice@@example.com")),
            (
                "alice@example.com, bob@example.com",
                name("alice@example.com, bob@example.com"),
            ),
            ("a@b.c", name("a@b.c")),
            (
                "=?utf-8?B?YWxpY2U=?=@example.com",
                name("=?utf-8?B?YWxpY2U=?=@example.com"),
            ),
            (
                "=?iso-8859-1?q?al=E9?=@example.com",
                name("=?iso-8859-1?q?al=E9?=@example.com"),
            ),
            ("a=b?c@example.com", email("a=b?c@example.com")),
            ("@example.com", name("@example.com")),
            (".alice@example.com", name(".alice@example.com")),
            ("alice.@example.com", name("alice.@example.com")),
            ("alice..x@example.com", name("alice..x@example.com")),
            ("alice@-example.com", name("alice@-example.com")),
            ("alice@example-.com", name("alice@example-.com")),
            ("alice@example.com.", name("alice@example.com.")),
            ("alice@exa_mple.com", name("alice@exa_mple.com")),
            ("alice@example.123", name("alice@example.123")),
            ("élise@example.com", name("élise@example.com")),
            ("alice@exämple.com", name("alice@exämple.com")),
            ("al ice@example.com", name("al ice@example.com")),
            ("", name("")),
            ("   ", name("")),
        ];
        for (input, expected) in cases {
            assert_eq!(classify(input), expected, "classify({input:?})");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(classify(&long_local), name(&long_local));
        let long = format!("a@{}.com", "b.".repeat(130));
        assert_eq!(classify(&long), name(&long));
    }

    // -- group ----------------------------------------------------------------------------------

    #[test]
    fn one_notice_per_owner_in_a_fixed_order() {
        let input = vec![
            (
                "team-data".to_string(),
                item("i-5", None, "eu-west-1", stopped("x")),
            ),
            (
                "bob@example.org".to_string(),
                item("i-4", None, "eu-west-1", terminated("y")),
            ),
            (
                "U024BE7LH".to_string(),
                item("i-3", None, "eu-west-1", will(at(2030, 3, 8, 0, 0))),
            ),
            (
                "alice@example.com".to_string(),
                item("i-2", None, "eu-west-1", stopped("z")),
            ),
            (
                "<@U024BE7LH>".to_string(),
                item("i-1", None, "eu-west-1", will(at(2030, 3, 7, 12, 0))),
            ),
            (
                "Alice@Example.com".to_string(),
                item("i-0", None, "eu-west-1", will(at(2030, 3, 9, 0, 0))),
            ),
        ];
        let notices = group(input.clone());
        let owners: Vec<(&str, &OwnerAddress)> = notices
            .iter()
            .map(|n| (n.owner.as_str(), &n.address))
            .collect();
        assert_eq!(
            owners,
            [
                ("U024BE7LH", &OwnerAddress::SlackMember("U024BE7LH".into())),
                // The first spelling seen is the one shown; both land in one e-mail.
                (
                    "alice@example.com",
                    &OwnerAddress::Email("alice@example.com".into())
                ),
                (
                    "bob@example.org",
                    &OwnerAddress::Email("bob@example.org".into())
                ),
                ("team-data", &OwnerAddress::Name("team-data".into())),
            ]
        );
        let ids = |n: &OwnerNotice| n.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        // Soonest termination first.
        assert_eq!(ids(&notices[0]), ["i-1", "i-3"]);
        // What the owner can act on (i-0) before what was done (i-2).
        assert_eq!(ids(&notices[1]), ["i-0", "i-2"]);

        // The input's order does not matter (owners spelled one way each here).
        let plain: Vec<(String, NoticeItem)> = input
            .into_iter()
            .map(|(owner, i)| match classify(&owner) {
                OwnerAddress::SlackMember(id) => (id, i),
                OwnerAddress::Email(e) => (e.to_lowercase(), i),
                OwnerAddress::Name(n) => (n, i),
            })
            .collect();
        let mut reversed = plain.clone();
        reversed.reverse();
        assert_eq!(group(plain), group(reversed));
    }

    #[test]
    fn an_item_given_twice_is_listed_once() {
        let i = item(
            "i-1",
            Some("web"),
            "eu-west-1",
            stopped("no termination_date or lifetime tag"),
        );
        let notices = group([
            ("alice@example.com".to_string(), i.clone()),
            ("alice@example.com".to_string(), i.clone()),
            // The same instance can have several owners (a tag per run, grouped by the caller).
            ("bob@example.org".to_string(), i),
        ]);
        assert_eq!(notices.len(), 2);
        assert_eq!(notices[0].items.len(), 1);
        assert_eq!(notices[1].items.len(), 1);
        assert!(group(Vec::new()).is_empty());
    }

    // -- the e-mail -----------------------------------------------------------------------------

    fn golden(name: &str, actual: &str) {
        crate::text::golden(name, actual, "notice");
    }

    #[test]
    fn golden_email() {
        let email = render_email(&alice(), &ctx()).payload;
        golden(
            "notice_email.txt",
            &format!("Subject: {}\n\n{}", email.subject, email.text),
        );
        golden("notice_email.html", &email.html);
    }

    #[test]
    fn the_email_says_what_each_action_saves_when_it_was_priced() {
        let priced = |saves: Option<&str>, event: NoticeEvent| NoticeItem {
            saves: saves.map(|u| Usd::parse(u).unwrap()),
            ..item("i-1", None, "eu-west-1", event)
        };
        let notices = group([
            (
                "alice@example.com".to_string(),
                priced(
                    Some("34.018"),
                    stopped("no termination_date or lifetime tag"),
                ),
            ),
            (
                "alice@example.com".to_string(),
                NoticeItem {
                    id: "i-2".into(),
                    ..priced(Some("75.33"), terminated("termination_date has passed"))
                },
            ),
            (
                "alice@example.com".to_string(),
                NoticeItem {
                    id: "i-3".into(),
                    ..priced(None, terminated("termination_date has passed"))
                },
            ),
        ]);
        let email = render_email(&notices[0], &ctx()).payload;
        for body in [&email.text, &email.html] {
            assert!(
                body.contains("That saves about $34.02 a month (list price)."),
                "{body}"
            );
            assert!(body.contains("That saves about $75.33 a month (list price)."));
            assert_eq!(body.matches("That saves about").count(), 2, "{body}");
        }
    }

    #[test]
    fn the_email_gives_the_exact_commands_that_keep_each_instance() {
        let email = render_email(&alice(), &ctx()).payload;
        for body in [&email.text, &email.html] {
            // Will be terminated: extend by 3 days, or the same as a tag edit (date + 3 days).
            assert!(
                body.contains("reaperctl extend i-0c0ffee0c0ffee000 --by 3d --region eu-west-1")
            );
            assert!(body.contains(
                "aws ec2 create-tags --region eu-west-1 --resources i-0c0ffee0c0ffee000 \
                 --tags Key=termination_date,Value=2030-03-10T21:30:00Z"
            ));
            assert!(body.contains("Will be terminated at 2030-03-07T21:30:00Z (in 12 hours)."));
            assert!(body.contains(
                "aws ec2 create-tags --region eu-west-1 --resources i-0a1b2c3d4e5f60718 \
                 --tags Key=termination_date,Value=2030-03-11T06:00:00Z"
            ));
            // Stopped: the reason, a termination_date a week from the run, then start it.
            assert!(body.contains("Stopped: no termination_date or lifetime tag."));
            assert!(body.contains(
                "aws ec2 create-tags --region us-east-1 --resources i-0b0b0b0b0b0b0b0b0 \
                 --tags Key=termination_date,Value=2030-03-14T09:00:00Z"
            ));
            assert!(body.contains(
                "aws ec2 start-instances --region us-east-1 --instance-ids i-0b0b0b0b0b0b0b0b0"
            ));
            // Terminated: what and why, nothing to run.
            assert!(body.contains("Terminated: termination_date 2030-03-01T00:00:00Z has passed."));
            assert!(!body.contains("--resources i-0dead0dead0dead00"));
            assert!(!body.contains("extend i-0dead0dead0dead00"));
        }
        assert_eq!(
            email.subject,
            "EC2 reaper, account 123456789012: your instances: 2 to be terminated soon, 1 stopped, 1 terminated"
        );
        // The soonest termination is listed first.
        let first = email.text.find("i-0c0ffee0c0ffee000").unwrap();
        assert!(first < email.text.find("i-0a1b2c3d4e5f60718").unwrap());
    }

    #[test]
    fn tag_values_are_html_escaped_and_cannot_forge_lines() {
        let hostile = "<script>alert(1)</script> & \"x\" 'y'\n* i-forged (evil), eu-west-1\u{202E}";
        let notices = group([(
            "<b>boss</b>@example.com".to_string(),
            item(
                "i-0123456789abcdef0",
                Some(hostile),
                "eu-west-1",
                stopped("no termination_date or lifetime tag\nforged"),
            ),
        )]);
        let email = render_email(&notices[0], &ctx()).payload;
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(!email.html.contains("<b>boss"), "{}", email.html);
        assert!(email
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;"));
        assert!(email.html.contains("&lt;b&gt;boss&lt;/b&gt;@example.com"));
        // In the text, one line per instance title, whatever the tag says.
        assert_eq!(
            email.text.lines().filter(|l| l.starts_with("* ")).count(),
            1,
            "{}",
            email.text
        );
        assert!(!email.text.contains('\u{202E}'));
        assert!(!email.text.lines().any(|l| l.starts_with("forged")));
        // The subject carries no tag value at all.
        assert!(!email.subject.contains("script") && !email.subject.contains("boss"));
        assert!(!email.subject.contains('\n'));
    }

    #[test]
    fn no_command_is_printed_for_values_a_shell_would_misread() {
        let notices = group([
            (
                "a@example.com".to_string(),
                item(
                    "i-1; rm -rf ~",
                    None,
                    "eu-west-1",
                    will(at(2030, 3, 8, 0, 0)),
                ),
            ),
            (
                "a@example.com".to_string(),
                item("i-2", None, "eu-west-1 $(id)", stopped("no tag")),
            ),
        ]);
        let email = render_email(&notices[0], &ctx()).payload;
        assert!(!email.text.contains("reaperctl"), "{}", email.text);
        assert!(!email.text.contains("aws ec2"), "{}", email.text);
        assert!(email
            .text
            .contains("To keep it, set its termination_date tag to a later date."));
        assert!(email.text.contains("then start it."));
    }

    #[test]
    fn a_date_at_the_end_of_time_renders_without_its_tag_command() {
        let notices = group([(
            "a@example.com".to_string(),
            item("i-1", None, "eu-west-1", will(DateTime::<Utc>::MAX_UTC)),
        )]);
        let email = render_email(&notices[0], &ctx()).payload;
        assert!(email
            .text
            .contains("reaperctl extend i-1 --by 3d --region eu-west-1"));
        assert!(!email.text.contains("aws ec2 create-tags"));
    }

    #[test]
    fn the_date_is_also_said_relative_to_the_run() {
        let now = at(2030, 3, 7, 9, 0);
        let cases = [
            (at(2030, 3, 7, 8, 0), "due now"),
            (now, "due now"),
            (at(2030, 3, 7, 9, 45), "in 45 minutes"),
            (at(2030, 3, 7, 10, 59), "in 119 minutes"),
            (at(2030, 3, 7, 11, 0), "in 2 hours"),
            (at(2030, 3, 9, 8, 59), "in 47 hours"),
            (at(2030, 3, 9, 9, 0), "in 2 days"),
        ];
        for (when, expected) in cases {
            assert_eq!(from_now(when, now), expected, "{when}");
        }
    }

    #[test]
    fn a_long_list_is_cut_and_counted() {
        let n = MAX_EMAIL_ITEMS + 7;
        let notices = group((0..n).map(|k| {
            (
                "a@example.com".to_string(),
                item(
                    &format!("i-{k:04}"),
                    None,
                    "eu-west-1",
                    terminated("expired"),
                ),
            )
        }));
        let rendered = render_email(&notices[0], &ctx());
        // Named is what the e-mail lists: the seven it only counts were told nothing.
        assert_eq!(rendered.named.len(), MAX_EMAIL_ITEMS);
        for k in 0..n {
            let id = format!("i-{k:04}");
            let listed = rendered.payload.text.contains(&format!("\n* {id}"));
            assert_eq!(rendered.named.iter().any(|i| i.id == id), listed, "{id}");
        }
        let email = rendered.payload;
        assert_eq!(email.text.matches("\n* i-").count(), MAX_EMAIL_ITEMS);
        assert!(email
            .text
            .contains("…and 7 more instances; the run report lists them all."));
        assert!(email.html.contains("…and 7 more instances"));
        assert!(email.subject.ends_with(&format!("{n} terminated")));
    }

    // -- Slack ----------------------------------------------------------------------------------

    #[test]
    fn slack_lines_mention_members_and_show_the_others() {
        let notices = group([
            (
                "<@U024BE7LH>".to_string(),
                item("i-1", Some("web"), "eu-west-1", will(at(2030, 3, 8, 6, 0))),
            ),
            (
                "alice@example.com".to_string(),
                item("i-2", None, "eu-west-1", stopped("no tag")),
            ),
            (
                "team <data> & co".to_string(),
                item("i-3", Some("etl"), "eu-west-1", terminated("expired")),
            ),
            (
                "   ".to_string(),
                item("i-4", None, "eu-west-1", terminated("expired")),
            ),
        ]);
        assert_eq!(
            slack_owner_lines(&notices),
            [
                "• <@U024BE7LH> (1): `i-1` web terminates at 2030-03-08T06:00:00Z",
                "• alice@example.com (1): `i-2` stopped",
                // A blank owner tag still tells the channel something is unowned.
                "• (blank owner tag) (1): `i-4` terminated",
                "• team &lt;data&gt; &amp; co (1): `i-3` etl terminated",
            ]
        );
    }

    #[test]
    fn slack_lines_escape_tag_values_and_stay_on_one_line() {
        let mut items = vec![(
            "<!channel>\n• forged".to_string(),
            item(
                "i-1",
                Some("<https://evil.example|click>\nline"),
                "eu-west-1",
                stopped("x"),
            ),
        )];
        // Two regions: each instance says where it is.
        items.push((
            "<!channel>\n• forged".to_string(),
            item("i-2", None, "us-east-1", stopped("x")),
        ));
        let lines = slack_owner_lines(&group(items));
        assert_eq!(
            lines,
            ["• &lt;!channel&gt; • forged (2): `i-1` &lt;https://evil.example|click&gt; line (eu-west-1) stopped · `i-2` (us-east-1) stopped"]
        );
    }

    #[test]
    fn a_busy_owner_gets_one_bounded_line() {
        let ugly = "&".repeat(500);
        let notices = group((0..25).map(|k| {
            (
                "U024BE7LH".to_string(),
                item(
                    &format!("i-{k:02}"),
                    Some(&ugly),
                    "eu-west-1",
                    terminated("expired"),
                ),
            )
        }));
        let line = &slack_owner_lines(&notices)[0];
        assert!(
            line.starts_with("• <@U024BE7LH> (25): `i-00` &amp;"),
            "{line}"
        );
        assert!(line.chars().count() <= MAX_SLACK_LINE_CHARS);
        assert!(line.ends_with('…'));
        for (k, _) in line.match_indices('&') {
            assert!(line[k..].starts_with("&amp;"), "an entity was cut: {line}");
        }
        // Few and short: every item, then the count of the rest.
        let small = group((0..12).map(|k| {
            (
                "U024BE7LH".to_string(),
                item(&format!("i-{k:02}"), None, "eu-west-1", terminated("x")),
            )
        }));
        let line = &slack_owner_lines(&small)[0];
        assert_eq!(line.matches(" terminated").count(), MAX_SLACK_ITEMS);
        assert!(line.ends_with(" · …and 2 more"), "{line}");
    }

    // -- properties -----------------------------------------------------------------------------

    proptest::proptest! {
        #[test]
        fn classify_is_total_and_strict(value in ".{0,80}|[UW@<][A-Z0-9>]{0,14}|[a-z.+]{1,10}@[a-z.-]{1,12}") {
            match classify(&value) {
                OwnerAddress::SlackMember(id) => {
                    proptest::prop_assert!(crate::policy::address::is_slack_member_id(&id));
                    proptest::prop_assert!(id.len() >= 9);
                }
                OwnerAddress::Email(e) => {
                    proptest::prop_assert_eq!(e.matches('@').count(), 1);
                    proptest::prop_assert!(!e.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ','));
                }
                OwnerAddress::Name(n) => proptest::prop_assert_eq!(n.as_str(), value.trim()),
            }
        }

        #[test]
        fn any_tag_values_render_safely(
            owner in ".{0,120}",
            names in proptest::collection::vec(proptest::option::of(".{0,200}"), 1..15),
        ) {
            let notices = group(names.iter().enumerate().map(|(k, name)| {
                let event = match k % 3 {
                    0 => will(at(2030, 3, 8, 0, 0)),
                    1 => stopped("no termination_date or lifetime tag"),
                    _ => terminated("expired"),
                };
                (owner.clone(), item(&format!("i-{k:04}"), name.as_deref(), "eu-west-1", event))
            }));
            proptest::prop_assert_eq!(notices.len(), 1);
            let email = render_email(&notices[0], &ctx()).payload;
            proptest::prop_assert_eq!(email.text.lines().filter(|l| l.starts_with("* ")).count(), names.len());
            proptest::prop_assert!(!email.subject.contains('\n'));
            // Outside the markup this module writes, no tag value can open a tag.
            let tags: Vec<&str> = email.html.match_indices('<').map(|(k, _)| {
                let end = email.html[k..].find('>').map_or(email.html.len(), |e| k + e + 1);
                &email.html[k..end]
            }).collect();
            for t in tags {
                let known = ["<!DOCTYPE html>", "<html>", "<head>", "<meta charset=\"utf-8\">", "</head>",
                    "<body style=\"font-family: sans-serif; font-size: 14px;\">", "<p>", "</p>", "<h3>", "</h3>",
                    "<ul>", "</ul>", "<li>", "</li>", "<b>", "</b>", "<br>",
                    "<pre style=\"background: #f4f4f4; padding: 6px;\">", "</pre>", "<hr>",
                    "<p style=\"color: #666; font-size: 12px;\">", "</body>", "</html>"];
                proptest::prop_assert!(known.contains(&t), "unexpected markup {:?}", t);
            }
            for line in slack_owner_lines(&notices) {
                proptest::prop_assert!(!line.contains('\n'));
                proptest::prop_assert!(line.chars().count() <= MAX_SLACK_LINE_CHARS);
                let rest = match &notices[0].address {
                    OwnerAddress::SlackMember(id) => line.replacen(&format!("<@{id}>"), "", 1),
                    _ => line.clone(),
                };
                proptest::prop_assert!(!rest.contains('<') && !rest.contains('>'), "{}", line);
            }
        }
    }

    #[test]
    fn keep_links_follow_an_announced_termination_and_only_that() {
        let mut c = ctx();
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "i-0a1b2c3d4e5f60718".to_string(),
            vec![(1, "v1.one.x".to_string()), (3, "v1.three.y".to_string())],
        );
        // A stopped instance has nothing to keep, even with a token.
        tokens.insert(
            "i-0b0b0b0b0b0b0b0b0".to_string(),
            vec![(1, "v1.stop.z".to_string())],
        );
        c.keeps = Some(Keeps {
            url: "https://abc.lambda-url.eu-west-1.on.aws/".into(),
            tokens,
        });
        let e = render_email(&alice(), &c).payload;
        assert!(
            e.text
                .contains("Keep 1 more day: https://abc.lambda-url.eu-west-1.on.aws/?t=v1.one.x"),
            "{}",
            e.text
        );
        assert!(e
            .text
            .contains("Keep 3 more days: https://abc.lambda-url.eu-west-1.on.aws/?t=v1.three.y"));
        assert!(!e.text.contains("v1.stop.z"));
        assert!(e.html.contains("<a href=\"https://abc.lambda-url.eu-west-1.on.aws/?t=v1.one.x\">Keep 1 more day</a>"), "{}", e.html);
        // Without owner actions the e-mail is the golden one.
        assert!(!render_email(&alice(), &ctx()).payload.text.contains("?t="));
    }
}
