//! The run report (SPEC §8): the Lambda's return value, one JSON log line, the S3 object and the
//! source of the Slack message. `build` makes it from a run's ledger, `emf` the metrics line,
//! `table` the text a person reads in a terminal.

pub(crate) mod build;
pub(crate) mod emf;
pub(crate) mod evidence;
pub mod explain;
pub mod savings;
pub mod table;
pub mod totals;

pub(crate) use crate::policy::NoticeKind;
use crate::policy::{Action, Cap, Circuit, InstanceState, VerdictKind};
pub use crate::run::{Mode, TriggerKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a field changes meaning or disappears (adding a field does not bump it).
pub(crate) const SCHEMA_VERSION: u32 = 1;
/// Errors and warnings kept in a trimmed copy, and the length of each.
const MAX_NOTES: usize = 50;
const MAX_NOTE_CHARS: usize = 2000;
/// An owner tag value in a trimmed copy's `notices` (tag values are at most 256 characters).
const MAX_OWNER_CHARS: usize = 256;

/// `Option<DateTime<Utc>>` as the reaper writes dates: `2030-01-01T00:00:00Z`.
mod report_date {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        date: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match date {
            Some(d) => s.serialize_str(&crate::policy::format_date(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|v| {
                DateTime::parse_from_rfc3339(&v)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| {
                        serde::de::Error::custom(format!(
                            "termination_date {v:?} is not an RFC 3339 date-time: {e}"
                        ))
                    })
            })
            .transpose()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What happened to an instance's action.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Outcome {
    Done,
    Would,
    Failed,
    /// The call's answer was lost and a re-describe could not show whether it happened.
    Unknown,
    Deferred,
    CircuitOpen,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::Done,
        Outcome::Would,
        Outcome::Failed,
        Outcome::Unknown,
        Outcome::Deferred,
        Outcome::CircuitOpen,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One instance that got any verdict other than `keep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub id: String,
    pub name: Option<String>,
    pub owner: Option<String>,
    /// Typed (EC2's names, `shutting-down`): no heap string per line.
    pub state: InstanceState,
    pub verdict: VerdictKind,
    pub reason: String,
    /// Written as the reaper writes dates (RFC 3339 UTC, whole seconds); kept typed so no view
    /// parses back a string the run produced.
    #[serde(with = "report_date")]
    pub termination_date: Option<DateTime<Utc>>,
    /// The date is MAX_LIFETIME's bound, not the tag's: extending cannot move it. Typed from the
    /// verdict for the owner notice; the JSON says it in `reason`.
    #[serde(skip)]
    pub bound: bool,
    /// A `will-terminate` notice for the creator's own date (SPEC §8's one notice per date):
    /// recorded as `warned` once delivered, not `told`, so the telling does not move the date.
    #[serde(skip)]
    pub heads_up: bool,
    /// `None` for verdicts that call for no action (expiring, wait, noncompliant, skip-managed).
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    /// What the owner is told about it in this run (absent when nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<NoticeKind>,
    /// What its stop or termination saves (or would, or would have if not held back): its line
    /// of the ledger of savings. Absent for the instances the ledger does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<Box<savings::InstanceSaving>>,
}

/// How one owner was told (live runs; a dry run sends nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeDelivery {
    pub owner: String,
    /// `slack-mention`, `email` or `channel` (named in the channel's message).
    pub via: String,
    pub instances: usize,
    /// `sent`, or why not.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitReport {
    pub action: Action,
    pub planned: usize,
    pub cap: Cap,
    pub message: String,
}

impl From<&Circuit> for CircuitReport {
    fn from(c: &Circuit) -> Self {
        Self {
            action: c.action,
            planned: c.planned,
            cap: c.cap,
            message: c.message(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Every judged instance, keep included.
    pub verdicts: BTreeMap<VerdictKind, u64>,
    pub outcomes: BTreeMap<Outcome, u64>,
}

/// What became of the run's Slack message. In JSON: `sent`, `skipped (nothing to report)`,
/// `not configured`, or `failed: <why>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum SlackStatus {
    Sent,
    NotConfigured,
    NothingToReport,
    Failed(String),
}

const SENT: &str = "sent";
const NOT_CONFIGURED: &str = "not configured";
const NOTHING_TO_REPORT: &str = "skipped (nothing to report)";

impl From<SlackStatus> for String {
    fn from(status: SlackStatus) -> String {
        match status {
            SlackStatus::Sent => SENT.into(),
            SlackStatus::NotConfigured => NOT_CONFIGURED.into(),
            SlackStatus::NothingToReport => NOTHING_TO_REPORT.into(),
            SlackStatus::Failed(why) => format!("failed: {why}"),
        }
    }
}

impl From<String> for SlackStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            SENT => SlackStatus::Sent,
            NOT_CONFIGURED => SlackStatus::NotConfigured,
            NOTHING_TO_REPORT => SlackStatus::NothingToReport,
            _ => SlackStatus::Failed(s.strip_prefix("failed: ").unwrap_or(&s).to_string()),
        }
    }
}

/// Where the report went besides the return value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub slack: Option<SlackStatus>,
    /// `s3://bucket/key` once written.
    pub s3: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub run_id: String,
    pub account: String,
    pub region: String,
    pub mode: Mode,
    pub trigger: TriggerKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The time the verdicts were computed for: now, or a forecast's `at`.
    pub evaluated_at: DateTime<Utc>,
    pub forecast: bool,
    /// Instances listed and judged.
    pub instances_judged: u64,
    pub counts: Counts,
    pub instances: Vec<InstanceReport>,
    /// How many `instances` entries were left out of this copy (the S3 copy is always whole).
    #[serde(default)]
    pub instances_omitted: u64,
    pub circuits: Vec<CircuitReport>,
    pub errors: Vec<String>,
    /// How many `errors` were left out of this copy (present only when some were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub errors_omitted: u64,
    pub warnings: Vec<String>,
    /// How many `warnings` were left out of this copy (present only when some were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warnings_omitted: u64,
    pub api_calls: BTreeMap<String, u64>,
    pub delivery: Delivery,
    /// One entry per owner told in this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeDelivery>,
    /// How many `notices` were left out of this copy (present only when some were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub notices_omitted: u64,
    /// What the run's stops and terminations save (SPEC §8 "Savings"); absent only from reports
    /// that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savings: Option<savings::Savings>,
    /// The `keep` instances whose date comes within a week: the evidence's `upcoming` records
    /// (docs/EVIDENCE.md), not in the report's JSON.
    #[serde(skip)]
    pub(crate) upcoming: crate::run::ledger::Upcoming,
}

impl RunReport {
    /// Its key in the archive: `reports/<account>/<region>/<YYYY>/<MM>/<DD>/<run id>.json`, the
    /// date being the run's start in UTC.
    pub fn archive_key(&self) -> String {
        format!(
            "reports/{}/{}/{}/{}.json",
            self.account,
            self.region,
            self.started_at.format("%Y/%m/%d"),
            self.run_id
        )
    }

    /// Where a dry run keeps the fingerprint of its findings for the next one (announce once,
    /// SPEC §8): beside the account-region's reports, outside the dated prefixes of the evidence.
    pub fn dry_run_record_key(&self) -> String {
        format!("reports/{}/{}/last-dry-run.json", self.account, self.region)
    }

    /// A fingerprint of what the run found: each instance's id, verdict and outcome (and, where
    /// it is the instance's own, its date), the circuits and their sizes. Two dry runs with the
    /// same findings have the same fingerprint; a stamp's would-be date moves with the clock and
    /// is left out, as is every free text.
    pub(crate) fn findings(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut lines: Vec<&InstanceReport> = self.instances.iter().collect();
        lines.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut hash = Sha256::new();
        for i in lines {
            let outcome = i.outcome.map_or("-", <&'static str>::from);
            let date = match i.verdict {
                VerdictKind::Stamp => None,
                _ => i.termination_date,
            };
            hash.update(format!(
                "{} {} {outcome} {}\n",
                i.id,
                <&'static str>::from(i.verdict),
                date.map(crate::policy::format_date).unwrap_or_default()
            ));
        }
        for c in &self.circuits {
            hash.update(format!("circuit {:?} {}\n", c.action, c.planned));
        }
        hex::encode(hash.finalize())
    }

    pub(crate) fn new(
        run_id: String,
        account: String,
        region: String,
        mode: Mode,
        trigger: TriggerKind,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            run_id,
            account,
            region,
            mode,
            trigger,
            started_at,
            finished_at: started_at,
            evaluated_at: started_at,
            forecast: false,
            instances_judged: 0,
            counts: Counts::default(),
            instances: Vec::new(),
            instances_omitted: 0,
            circuits: Vec::new(),
            errors: Vec::new(),
            errors_omitted: 0,
            warnings: Vec::new(),
            warnings_omitted: 0,
            api_calls: BTreeMap::new(),
            delivery: Delivery::default(),
            notices: Vec::new(),
            notices_omitted: 0,
            savings: None,
            upcoming: Default::default(),
        }
    }

    pub fn verdict_count(&self, kind: VerdictKind) -> u64 {
        self.counts.verdicts.get(&kind).copied().unwrap_or(0)
    }

    pub fn outcome_count(&self, outcome: Outcome) -> u64 {
        self.counts.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Did or would the run do anything, or has it something a person must see (SPEC §8)?
    /// Counts, not the instance list, so a trimmed copy answers the same. `noncompliant` alone is
    /// not news: a machine the reaper stopped would otherwise be re-announced every hour. A launch
    /// event speaks only of terminations and trouble: stamping at launch is routine, and waiting
    /// instances are the scheduled sweep's to report.
    pub fn is_noteworthy(&self) -> bool {
        use VerdictKind::*;
        let trouble = self.outcome_count(Outcome::Failed) > 0
            || !self.circuits.is_empty()
            || !self.errors.is_empty();
        if self.trigger == TriggerKind::InstanceState {
            return trouble || self.verdict_count(Terminate) > 0;
        }
        trouble
            || [Terminate, Stop, Stamp, Expiring, Wait]
                .iter()
                .any(|k| self.verdict_count(*k) > 0)
    }

    /// True when anything failed or a circuit opened (reaperctl's exit code, alarms).
    pub fn has_failures(&self) -> bool {
        self.outcome_count(Outcome::Failed) > 0
            || !self.circuits.is_empty()
            || !self.errors.is_empty()
    }

    pub(crate) fn duration_ms(&self) -> i64 {
        (self.finished_at - self.started_at).num_milliseconds()
    }

    /// A copy whose JSON stays below `max_bytes` (Lambda responses are limited to 6 MB): errors and
    /// warnings are kept to `MAX_NOTES` each, instances dropped from the end, most important
    /// verdicts first being kept; counts stay exact and `*_omitted` say what was left out.
    pub(crate) fn trimmed(&self, max_bytes: usize) -> RunReport {
        // Everything but the instances is cloned; the instances are measured one by one (no copy
        // of a 100 000-entry list, no serialisation of the whole report) and only the kept ones
        // are cloned.
        let mut copy = RunReport {
            schema_version: self.schema_version,
            run_id: self.run_id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            mode: self.mode,
            trigger: self.trigger,
            started_at: self.started_at,
            finished_at: self.finished_at,
            evaluated_at: self.evaluated_at,
            forecast: self.forecast,
            instances_judged: self.instances_judged,
            counts: self.counts.clone(),
            instances: Vec::new(),
            instances_omitted: self.instances_omitted,
            circuits: self.circuits.clone(),
            errors: self.errors.clone(),
            errors_omitted: self.errors_omitted,
            warnings: self.warnings.clone(),
            warnings_omitted: self.warnings_omitted,
            api_calls: self.api_calls.clone(),
            delivery: self.delivery.clone(),
            notices: Vec::new(),
            notices_omitted: self.notices_omitted,
            savings: self.savings.as_ref().map(savings::Savings::trimmed),
            upcoming: Default::default(),
        };
        for (list, omitted) in [
            (&mut copy.errors, &mut copy.errors_omitted),
            (&mut copy.warnings, &mut copy.warnings_omitted),
        ] {
            if list.len() > MAX_NOTES {
                *omitted += (list.len() - MAX_NOTES) as u64;
                list.truncate(MAX_NOTES);
            }
            for line in list.iter_mut() {
                *line = crate::text::clip(line, MAX_NOTE_CHARS);
            }
        }
        // One entry per owner, so as many as the fleet has owners: the ones not sent first (a
        // person acts on those), the rest up to `MAX_NOTES`.
        let mut notices: Vec<&NoticeDelivery> = self.notices.iter().collect();
        notices.sort_by_key(|n| n.status == "sent");
        copy.notices = notices
            .into_iter()
            .take(MAX_NOTES)
            .map(|n| NoticeDelivery {
                owner: crate::text::clip(&n.owner, MAX_OWNER_CHARS),
                via: n.via.clone(),
                instances: n.instances,
                status: crate::text::clip(&n.status, MAX_NOTE_CHARS),
            })
            .collect();
        copy.notices_omitted += (self.notices.len() - copy.notices.len()) as u64;
        // Notes are bounded, but 150 of them at their longest can still outgrow a small budget:
        // drop the last of the longest list until the frame fits (counts stay exact).
        while json_len(&copy).saturating_add(40) > max_bytes {
            let lists = [copy.errors.len(), copy.warnings.len(), copy.notices.len()];
            match lists.iter().enumerate().max_by_key(|(_, n)| **n) {
                Some((_, 0)) | None => break,
                Some((0, _)) => {
                    copy.errors.pop();
                    copy.errors_omitted += 1;
                }
                Some((1, _)) => {
                    copy.warnings.pop();
                    copy.warnings_omitted += 1;
                }
                Some(_) => {
                    copy.notices.pop();
                    copy.notices_omitted += 1;
                }
            }
        }
        // The rest of the report, with room for the digits of `instances_omitted`.
        let frame = json_len(&copy).saturating_add(20);
        // Each entry's JSON plus its comma.
        let sizes: Vec<usize> = self
            .instances
            .iter()
            .map(|i| json_len(i).saturating_add(1))
            .collect();
        if frame.saturating_add(sizes.iter().sum()) <= max_bytes {
            copy.instances = self.instances.clone();
            return copy;
        }
        // Keep the instances a person acts on: terminate, stop, failed first.
        let mut order: Vec<usize> = (0..self.instances.len()).collect();
        order.sort_by_key(|&n| {
            let i = &self.instances[n];
            (
                i.outcome != Some(Outcome::Failed),
                VerdictKind::ALL.iter().position(|k| *k == i.verdict),
            )
        });
        let mut room = max_bytes.saturating_sub(frame);
        let kept: Vec<usize> = order
            .into_iter()
            .take_while(|&n| match room.checked_sub(sizes[n]) {
                Some(left) => {
                    room = left;
                    true
                }
                None => false,
            })
            .collect();
        copy.instances = kept.iter().map(|&n| self.instances[n].clone()).collect();
        copy.instances_omitted += (self.instances.len() - kept.len()) as u64;
        copy
    }

    /// The single JSON log line that carries the whole report.
    pub(crate) fn log_line(&self) -> String {
        serde_json::json!({
            "timestamp": self.finished_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "level": "INFO",
            "message": "run report",
            "run_id": self.run_id,
            "report": self,
        })
        .to_string()
    }
}

/// The length of `value`'s JSON, counted without building it.
fn json_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

#[cfg(test)]
impl InstanceReport {
    /// A test's line: a running instance with `id`, `verdict` and `reason` and nothing else
    /// (no name, owner, date, outcome, notice or saving); a test sets what it is about.
    pub(crate) fn sample(id: &str, verdict: VerdictKind, reason: &str) -> Self {
        InstanceReport {
            id: id.into(),
            name: None,
            owner: None,
            state: InstanceState::Running,
            verdict,
            reason: reason.into(),
            termination_date: None,
            bound: false,
            heads_up: false,
            outcome: None,
            error: None,
            notice: None,
            saving: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(n: usize) -> RunReport {
        let mut r = RunReport::new(
            "run-1".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::DryRun,
            TriggerKind::Schedule,
            DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        );
        for i in 0..n {
            r.instances.push(InstanceReport {
                id: format!("i-{i:017x}"),
                name: Some("web".into()),
                owner: Some("team@example.com".into()),
                state: InstanceState::Running,
                verdict: if i % 2 == 0 {
                    VerdictKind::Stop
                } else {
                    VerdictKind::Wait
                },
                reason: "no termination_date or lifetime tag".into(),
                termination_date: None,
                bound: false,
                heads_up: false,
                outcome: (i % 2 == 0).then_some(Outcome::Would),
                error: None,
                notice: None,
                saving: None,
            });
        }
        *r.counts.verdicts.entry(VerdictKind::Stop).or_default() = n.div_ceil(2) as u64;
        r
    }

    /// Issue 19 item 3: `notices` (one per owner) was never trimmed; 3 500 owners made a 1.24 MB
    /// return value. At 20 000 owners the return value and the log line stay within their
    /// budgets, the counts exact, the notices not sent kept first.
    #[test]
    fn twenty_thousand_owners_fit_the_return_value_and_the_log_line() {
        let owners = 20_000;
        let mut r = report_with(owners);
        let long = "o".repeat(300);
        r.notices = (0..owners)
            .map(|i| NoticeDelivery {
                owner: format!("owner-{i}-{long}@example.com"),
                via: "email".into(),
                instances: 1,
                status: if i % 1000 == 7 {
                    format!("failed: {}", "throttled ".repeat(300))
                } else {
                    "sent".into()
                },
            })
            .collect();
        r.errors = (0..200)
            .map(|i| format!("error {i} {}", "e".repeat(3000)))
            .collect();
        r.warnings = (0..200)
            .map(|i| format!("warning {i} {}", "w".repeat(3000)))
            .collect();
        let response = r.trimmed(crate::handler::MAX_RESPONSE_BYTES);
        let response_json = serde_json::to_string(&response).unwrap();
        assert!(response_json.len() <= 1_000_000, "{}", response_json.len());
        assert_eq!(
            response.notices.len() as u64 + response.notices_omitted,
            owners as u64
        );
        assert!(response.notices_omitted > 0);
        assert_eq!(
            response.notices[..20]
                .iter()
                .filter(|n| n.status != "sent")
                .count(),
            20,
            "the failed deliveries come first"
        );
        assert!(response
            .notices
            .iter()
            .all(|n| n.owner.chars().count() <= 256));
        let round: RunReport = serde_json::from_str(&response_json).unwrap();
        assert_eq!(round.notices_omitted, response.notices_omitted);

        let logged = r.trimmed(crate::handler::MAX_LOG_LINE_BYTES);
        assert!(
            logged.log_line().len() <= crate::handler::MAX_LOG_LINE_BYTES,
            "{}",
            logged.log_line().len()
        );
        assert_eq!(
            logged.notices.len() as u64 + logged.notices_omitted,
            owners as u64
        );
        assert_eq!(logged.errors.len() as u64 + logged.errors_omitted, 200);
        assert_eq!(logged.warnings.len() as u64 + logged.warnings_omitted, 200);
        assert_eq!(
            logged.instances.len() as u64 + logged.instances_omitted,
            owners as u64
        );
        // The full report is untouched.
        assert_eq!(r.notices.len(), owners);
    }

    #[test]
    fn launch_events_post_only_terminations_and_trouble() {
        let mut r = report_with(0);
        r.trigger = TriggerKind::InstanceState;
        r.counts.verdicts.clear();
        r.counts.verdicts.insert(VerdictKind::Stamp, 1);
        assert!(!r.is_noteworthy());
        r.counts.verdicts.insert(VerdictKind::Terminate, 1);
        assert!(r.is_noteworthy());
        r.trigger = TriggerKind::Schedule;
        r.counts.verdicts.clear();
        r.counts.verdicts.insert(VerdictKind::Noncompliant, 3);
        r.counts.verdicts.insert(VerdictKind::SkipManaged, 3);
        assert!(!r.is_noteworthy());
        r.counts.verdicts.insert(VerdictKind::Wait, 1);
        assert!(r.is_noteworthy());
    }

    #[test]
    fn round_trips_through_json() {
        let r = report_with(3);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"mode\":\"dry-run\""));
        assert!(json.contains("\"verdict\":\"stop\""));
        assert!(json.contains("\"outcome\":\"would\""));
        assert_eq!(serde_json::from_str::<RunReport>(&json).unwrap(), r);
    }

    #[test]
    fn trimming_keeps_counts_and_says_what_was_left_out() {
        let r = report_with(2000);
        let t = r.trimmed(50_000);
        let len = serde_json::to_vec(&t).unwrap().len();
        assert!(len <= 50_000, "{len}");
        assert!(
            len > 49_000,
            "the copy is filled to its limit, not cut by quarters: {len}"
        );
        assert_eq!(t.counts, r.counts);
        assert_eq!(t.instances.len() as u64 + t.instances_omitted, 2000);
        assert!(t.instances_omitted > 0);
        assert!(t
            .instances
            .iter()
            .take(10)
            .all(|i| i.verdict == VerdictKind::Stop));
        assert_eq!(r.trimmed(usize::MAX), r);
    }

    #[test]
    fn errors_and_warnings_are_trimmed_with_exact_counts() {
        let mut r = report_with(1);
        r.warnings = (0..10_000).map(|i| format!("warning {i}")).collect();
        r.errors = vec!["x".repeat(100_000)];
        let t = r.trimmed(usize::MAX);
        assert_eq!(t.warnings.len() as u64 + t.warnings_omitted, 10_000);
        assert_eq!(t.warnings_omitted, 9_950);
        assert!(t.errors[0].chars().count() <= 2000);
        assert!(serde_json::to_vec(&t).unwrap().len() < 200_000);
        let json = serde_json::to_value(report_with(1)).unwrap();
        assert!(
            json.get("warnings_omitted").is_none(),
            "absent when nothing was left out"
        );
    }
}
