//! The run's records for the evidence store (docs/EVIDENCE.md): one `run` line, one `instance`
//! line per entry of the report's `instances`, one `upcoming` line per `keep` instance coming
//! due within a week. Pure: the report in, gzipped JSON lines out. Each line is written straight
//! into a small buffer (no JSON tree per line) and compressed as it is finished: a 100 000-instance
//! run's records are 50 MB of text but about 5 MB in memory, beside the run's own 65 MB under the
//! default `MemorySize: 128`.

use super::{Outcome, RunReport};
use crate::policy::price::Usd;
use crate::policy::{format_date, VerdictKind};
use serde::Serialize;
use std::io::Write;

/// The records' `schema` (docs/EVIDENCE.md): bumped only when a field changes meaning or goes.
pub(crate) const EVIDENCE_SCHEMA: u32 = 1;
/// The records file's content type and encoding (Athena and DuckDB read gzip by the `.gz` suffix).
pub const CONTENT_TYPE: &str = "application/x-ndjson";
pub const CONTENT_ENCODING: &str = "gzip";

/// `evidence/account=<account>/region=<region>/dt=<YYYY-MM-DD>/<run id>.jsonl.gz`: Hive-style
/// partitions, the date being the run's start in UTC.
pub fn key(report: &RunReport) -> String {
    format!(
        "evidence/account={}/region={}/dt={}/{}.jsonl.gz",
        report.account,
        report.region,
        report.started_at.format("%Y-%m-%d"),
        report.run_id
    )
}

/// One JSON object written field by field into the buffer.
struct Line<'b> {
    out: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Line<'b> {
    fn open(out: &'b mut Vec<u8>) -> Self {
        out.push(b'{');
        Line { out, first: true }
    }

    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// Any serialisable value (strings escaped, `None` as `null`). Serialising a string, a
    /// number or an enum into a `Vec` cannot fail; were it to, the value is written `null`.
    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) {
        self.name(name);
        let at = self.out.len();
        if serde_json::to_writer(&mut *self.out, value).is_err() {
            self.out.truncate(at);
            self.out.extend_from_slice(b"null");
        }
    }

    fn number(&mut self, name: &str, n: u64) {
        self.name(name);
        let _ = write!(self.out, "{n}");
    }

    /// Money as a JSON number with the report's digits (`"30.368"` → `30.368`), or `null`.
    fn money(&mut self, name: &str, usd: Option<Usd>) {
        self.name(name);
        match usd {
            Some(usd) => self.out.extend_from_slice(usd.digits().as_bytes()),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn close(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// `verdict_<v>`, `outcome_<o>`: the report's names with `-` as `_` (column names in Athena).
fn column(prefix: &str, name: &str) -> String {
    format!("{prefix}_{}", name.replace('-', "_"))
}

/// The records of `report`, as one gzip file of JSON lines. Compressed at the fastest level:
/// JSON lines with the same keys shrink about tenfold even so, and a Lambda with 128 MB has a
/// fraction of a CPU.
pub fn render(report: &RunReport) -> Vec<u8> {
    use flate2::{write::GzEncoder, Compression};
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    let mut failed = None;
    write_lines(report, &mut |line| {
        if failed.is_none() {
            failed = gz.write_all(line).err();
        }
    });
    // Writing into a `Vec` cannot fail; were it to, the file would be cut short, so it is empty.
    match (failed, gz.finish()) {
        (None, Ok(body)) => body,
        _ => Vec::new(),
    }
}

/// The records of `report` as plain JSON lines (what `render` compresses).
#[cfg(test)]
pub(crate) fn plain(report: &RunReport) -> Vec<u8> {
    let mut out = Vec::new();
    write_lines(report, &mut |line| out.extend_from_slice(line));
    out
}

/// Hands each line of the records, newline included, to `sink`, one buffer reused for all.
fn write_lines(report: &RunReport, sink: &mut dyn FnMut(&[u8])) {
    let mut out = Vec::with_capacity(2048);
    let dt = report.started_at.format("%Y-%m-%d").to_string();
    let run_at = format_date(report.started_at);
    let common = |line: &mut Line<'_>, record: &str| {
        line.number("schema", u64::from(EVIDENCE_SCHEMA));
        line.field("record", record);
        line.field("account", &report.account);
        line.field("region", &report.region);
        line.field("dt", &dt);
        line.field("run_id", &report.run_id);
        line.field("run_at", &run_at);
        line.field("mode", &report.mode);
        line.field("trigger", &report.trigger);
    };

    let mut line = Line::open(&mut out);
    common(&mut line, "run");
    line.number("instances_judged", report.instances_judged);
    for v in VerdictKind::ALL {
        line.number(&column("verdict", v.as_str()), report.verdict_count(v));
    }
    for o in Outcome::ALL {
        line.number(&column("outcome", o.as_str()), report.outcome_count(o));
    }
    let (subject, compliant) = compliance(report);
    line.number("subject", subject);
    line.number("compliant", compliant);
    let savings = report.savings.as_ref();
    line.money("saved_per_month", savings.and_then(|s| s.saved.per_month));
    line.field("price_source", &savings.map(|s| s.price_source.as_str()));
    line.number("errors", report.errors.len() as u64 + report.errors_omitted);
    line.number("upcoming_omitted", report.upcoming.omitted);
    line.close();
    sink(&out);
    out.clear();

    for i in &report.instances {
        let mut line = Line::open(&mut out);
        common(&mut line, "instance");
        line.field("instance_id", &i.id);
        line.field("name", &i.name);
        line.field("owner", &i.owner);
        line.field("state", &i.state);
        line.field("verdict", &i.verdict);
        line.field("reason", &i.reason);
        line.field("termination_date", &i.termination_date.map(format_date));
        line.field("outcome", &i.outcome);
        line.field("error", &i.error);
        line.field("notice", &i.notice);
        let saving = i.saving.as_deref();
        line.field(
            "instance_type",
            &saving.and_then(|s| s.instance_type.as_deref()),
        );
        line.field("platform", &saving.and_then(|s| s.platform.as_deref()));
        line.field("saving_action", &saving.map(|s| s.action));
        line.field("saving_held", &saving.is_some_and(|s| s.held));
        line.money("saving_per_hour", saving.and_then(|s| s.per_hour));
        line.money("saving_per_month", saving.and_then(|s| s.per_month));
        line.field(
            "saving_unpriced",
            &saving.and_then(|s| s.unpriced.as_deref()),
        );
        line.close();
        sink(&out);
        out.clear();
    }

    for soon in &report.upcoming.lines {
        let mut line = Line::open(&mut out);
        common(&mut line, "upcoming");
        line.field("instance_id", &*soon.id);
        line.field("name", &soon.name.as_deref());
        line.field("owner", &soon.owner.as_deref());
        line.field("termination_date", &format_date(soon.termination_date));
        line.field("instance_type", &soon.instance_type.as_deref());
        line.close();
        sink(&out);
        out.clear();
    }
}

/// `subject` (the instances the tag rules apply to) and `compliant` (those with a usable date or
/// lifetime), from the report's counts (docs/EVIDENCE.md).
fn compliance(report: &RunReport) -> (u64, u64) {
    use VerdictKind::*;
    let subject = report
        .instances_judged
        .saturating_sub(report.verdict_count(SkipManaged));
    let compliant = [Keep, Terminate, Expiring, Stamp]
        .iter()
        .map(|v| report.verdict_count(*v))
        .sum();
    (subject, compliant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::savings::{InstanceSaving, SavingAction, Savings, Total, PRICING_API};
    use crate::report::{InstanceReport, Mode, NoticeKind, TriggerKind};
    use crate::run::ledger::{Soon, Upcoming};
    use chrono::{TimeZone, Utc};
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn report() -> RunReport {
        // 23:59:58 UTC: the partition is the start's UTC date.
        let started = Utc.with_ymd_and_hms(2030, 3, 7, 23, 59, 58).unwrap();
        let mut r = RunReport::new(
            "run-7".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::Live,
            TriggerKind::Schedule,
            started,
        );
        r.instances_judged = 10;
        for (v, n) in [
            (VerdictKind::Keep, 4),
            (VerdictKind::Terminate, 2),
            (VerdictKind::Stop, 1),
            (VerdictKind::SkipManaged, 3),
        ] {
            r.counts.verdicts.insert(v, n);
        }
        r.counts.outcomes.insert(Outcome::Done, 2);
        r.counts.outcomes.insert(Outcome::CircuitOpen, 1);
        r.errors = vec!["slack: HTTP 500".into()];
        r.savings = Some(Savings {
            price_source: PRICING_API.into(),
            saved: Total {
                instances: 2,
                instance_hours_per_month: 1460,
                per_hour: Some(usd("0.1040000001")),
                per_month: Some(usd("75.9200000730")),
            },
            ..Savings::default()
        });
        r.instances = vec![
            InstanceReport {
                name: Some("web \"1\" <&>\n".into()),
                owner: Some("alice@example.com".into()),
                termination_date: Some(Utc.with_ymd_and_hms(2030, 3, 1, 0, 0, 0).unwrap()),
                outcome: Some(Outcome::Done),
                notice: Some(NoticeKind::Terminated),
                saving: Some(Box::new(InstanceSaving {
                    action: SavingAction::Terminate,
                    held: false,
                    per_hour: Some(usd("0.1040000001")),
                    per_month: Some(usd("75.9200000730")),
                    unpriced: None,
                    instance_type: Some(Arc::from("m5.large")),
                    platform: Some(Arc::from("Linux/UNIX")),
                })),
                ..InstanceReport::sample("i-1", VerdictKind::Terminate, "expired")
            },
            InstanceReport {
                outcome: Some(Outcome::CircuitOpen),
                state: crate::policy::InstanceState::Stopped,
                saving: Some(Box::new(InstanceSaving {
                    action: SavingAction::Stop,
                    held: true,
                    per_hour: None,
                    per_month: None,
                    unpriced: Some("no price for x9.huge".into()),
                    instance_type: Some(Arc::from("x9.huge")),
                    platform: None,
                })),
                ..InstanceReport::sample("i-2", VerdictKind::Stop, "untagged")
            },
            InstanceReport::sample("i-3", VerdictKind::SkipManaged, "asg"),
        ];
        r.upcoming = Upcoming {
            until: None,
            lines: vec![Soon {
                id: "i-9".into(),
                name: None,
                owner: Some("bob".into()),
                termination_date: Utc.with_ymd_and_hms(2030, 3, 10, 12, 0, 0).unwrap(),
                instance_type: Some(Arc::from("t3.micro")),
            }],
            omitted: 5,
        };
        r
    }

    #[test]
    fn the_file_is_the_lines_gzipped_and_smaller() {
        use std::io::Read;
        let mut r = report();
        let one = r.instances[0].clone();
        r.instances = (0..500)
            .map(|n| InstanceReport {
                id: format!("i-{n:017x}"),
                ..one.clone()
            })
            .collect();
        let (body, text) = (render(&r), plain(&r));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
        assert!(
            body.len() * 5 < text.len(),
            "{} bytes gzipped of {}",
            body.len(),
            text.len()
        );
    }

    fn lines(r: &RunReport) -> (String, Vec<Value>) {
        let text = String::from_utf8(plain(r)).unwrap();
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (text, lines)
    }

    fn common(record: &str) -> Value {
        json!({
            "schema": 1, "record": record, "account": "123456789012", "region": "eu-west-1",
            "dt": "2030-03-07", "run_id": "run-7", "run_at": "2030-03-07T23:59:58Z",
            "mode": "live", "trigger": "schedule",
        })
    }

    fn with(mut base: Value, rest: Value) -> Value {
        for (k, v) in rest.as_object().unwrap() {
            assert!(
                base.get(k).is_none(),
                "{k} is a common field and a kind's field"
            );
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn the_key_is_hive_partitioned_by_the_starts_utc_date() {
        assert_eq!(
            key(&report()),
            "evidence/account=123456789012/region=eu-west-1/dt=2030-03-07/run-7.jsonl.gz"
        );
    }

    #[test]
    fn every_record_has_every_field_of_its_kind_and_nothing_else() {
        let (text, got) = lines(&report());
        assert!(text.ends_with("}\n") && !text.contains("\n\n"));
        assert_eq!(got.len(), 1 + 3 + 1, "run, three instances, one upcoming");
        let run = with(
            common("run"),
            json!({
                "instances_judged": 10,
                "verdict_keep": 4, "verdict_terminate": 2, "verdict_stop": 1, "verdict_stamp": 0,
                "verdict_expiring": 0, "verdict_wait": 0, "verdict_noncompliant": 0,
                "verdict_skip_managed": 3,
                "outcome_done": 2, "outcome_would": 0, "outcome_failed": 0, "outcome_unknown": 0,
                "outcome_deferred": 0, "outcome_circuit_open": 1,
                "subject": 7, "compliant": 6,
                "saved_per_month": 75.920000073,
                "price_source": "pricing-api",
                "errors": 1,
                "upcoming_omitted": 5,
            }),
        );
        assert_eq!(got[0], run);
        let first = with(
            common("instance"),
            json!({
                "instance_id": "i-1", "name": "web \"1\" <&>\n", "owner": "alice@example.com",
                "state": "running", "verdict": "terminate", "reason": "expired",
                "termination_date": "2030-03-01T00:00:00Z", "outcome": "done", "error": null,
                "notice": "terminated", "instance_type": "m5.large", "platform": "Linux/UNIX",
                "saving_action": "terminate", "saving_held": false,
                "saving_per_hour": 0.1040000001, "saving_per_month": 75.920000073,
                "saving_unpriced": null,
            }),
        );
        assert_eq!(got[1], first);
        let held = with(
            common("instance"),
            json!({
                "instance_id": "i-2", "name": null, "owner": null, "state": "stopped",
                "verdict": "stop", "reason": "untagged", "termination_date": null,
                "outcome": "circuit-open", "error": null, "notice": null,
                "instance_type": "x9.huge", "platform": null,
                "saving_action": "stop", "saving_held": true,
                "saving_per_hour": null, "saving_per_month": null,
                "saving_unpriced": "no price for x9.huge",
            }),
        );
        assert_eq!(got[2], held);
        let unsaved = &got[3];
        assert_eq!(unsaved["verdict"], "skip-managed");
        assert_eq!(unsaved["outcome"], Value::Null);
        for k in [
            "instance_type",
            "platform",
            "saving_action",
            "saving_per_month",
        ] {
            assert_eq!(unsaved[k], Value::Null, "{k}");
        }
        assert_eq!(unsaved["saving_held"], false);
        let upcoming = with(
            common("upcoming"),
            json!({
                "instance_id": "i-9", "name": null, "owner": "bob",
                "termination_date": "2030-03-10T12:00:00Z", "instance_type": "t3.micro",
            }),
        );
        assert_eq!(got[4], upcoming);
    }

    #[test]
    fn money_keeps_the_reports_digits_exactly() {
        // Not through a float: the text of the line is the report's digits.
        let (text, _) = lines(&report());
        assert!(text.contains("\"saved_per_month\":75.920000073,"), "{text}");
        assert!(text.contains("\"saving_per_hour\":0.1040000001,"), "{text}");
        let mut r = report();
        r.savings.as_mut().unwrap().saved.per_month = Some(usd("8"));
        let (text, _) = lines(&r);
        assert!(text.contains("\"saved_per_month\":8.00,"), "{text}");
    }

    #[test]
    fn without_prices_the_money_is_null_and_the_source_says_why() {
        let mut r = report();
        r.mode = Mode::DryRun;
        r.savings = Some(Savings {
            price_source: "unavailable: AccessDeniedException: no".into(),
            ..Savings::default()
        });
        let (_, got) = lines(&r);
        assert_eq!(got[0]["saved_per_month"], Value::Null);
        assert_eq!(
            got[0]["price_source"],
            "unavailable: AccessDeniedException: no"
        );
        assert!(got.iter().all(|l| l["mode"] == "dry-run"));
        // A report without a savings block at all (older reports) is still rendered.
        r.savings = None;
        let (_, got) = lines(&r);
        assert_eq!(got[0]["price_source"], Value::Null);
    }

    #[test]
    fn an_empty_run_is_one_run_line() {
        let r = RunReport::new(
            "r".into(),
            "123456789012".into(),
            "us-east-1".into(),
            Mode::DryRun,
            TriggerKind::Cli,
            Utc.with_ymd_and_hms(2031, 1, 2, 0, 0, 0).unwrap(),
        );
        let (_, got) = lines(&r);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["subject"], 0);
        assert_eq!(got[0]["trigger"], "cli");
        assert_eq!(got[0]["upcoming_omitted"], 0);
    }
}
