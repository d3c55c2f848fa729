//! The evidence use case (`reaperctl report`): reads the records files of an evidence store
//! (docs/EVIDENCE.md), pruned by partition, a bounded number at once, and totals them exactly as
//! "Totals" says: live runs only, money summed exactly (`Usd`, ten decimals, never a float).

use crate::policy::price::Usd;
use crate::ports::EvidenceStore;
use chrono::NaiveDate;
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};

/// Files read at once.
pub const READ_AT_ONCE: usize = 16;
/// Malformed lines quoted (all are counted).
const MAX_QUOTED: usize = 10;

/// What to read: the dates (of the `dt=` partitions, inclusive) and the accounts (all when empty).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub accounts: Vec<String>,
}

impl Query {
    fn wants(&self, dt: NaiveDate) -> bool {
        self.since.is_none_or(|s| dt >= s) && self.until.is_none_or(|u| dt <= u)
    }
}

/// A date as the flags and the partitions write it, `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| format!("{text:?} is not a date; write YYYY-MM-DD, e.g. 2030-03-07"))
}

/// An AWS account id: 12 digits.
pub fn parse_account(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not an AWS account id (12 digits)"))
    }
}

// The totals' types are the report's (report::totals): the HTML page renders them without
// knowing this use case.
pub use crate::report::totals::{
    Compliance, DayActions, Evidence, Malformed, MonthTotal, OwnerActions, Upcoming,
};

/// Shown for a click whose button carried no valid token (the record's account is null).
pub const NO_VALID_TOKEN: &str = "(no valid token)";

/// The fields of a click record the totals read (docs/EVIDENCE.md "Owner actions").
#[derive(Deserialize)]
struct Click {
    record: String,
    dt: String,
    account: Option<String>,
    outcome: String,
    days: Option<u64>,
}

/// The fields of a record the totals read (the rest are not parsed).
#[derive(Deserialize)]
struct Record<'a> {
    record: String,
    account: String,
    region: String,
    dt: String,
    mode: String,
    run_at: String,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    verdict: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    saving_held: Option<bool>,
    #[serde(default, borrow)]
    saving_per_month: Option<&'a RawValue>,
    #[serde(default)]
    subject: Option<u64>,
    #[serde(default)]
    compliant: Option<u64>,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    termination_date: Option<String>,
    #[serde(default)]
    instance_type: Option<String>,
}

/// The running totals, folded file by file.
#[derive(Default)]
struct Tally {
    months: BTreeMap<(String, String), MonthTotal>,
    compliance: BTreeMap<(String, String), (u64, u64)>,
    days: BTreeMap<String, DayActions>,
    /// Per account and region: the latest run's time and its upcoming lines.
    latest: BTreeMap<(String, String), (String, Vec<Upcoming>)>,
    accounts: BTreeSet<String>,
    files: u64,
    records: u64,
    malformed_lines: u64,
    malformed: Vec<Malformed>,
    clicks: BTreeMap<(String, String), OwnerActions>,
    click_records: u64,
}

impl Tally {
    fn bad(&mut self, file: &str, line: usize, why: String) {
        self.malformed_lines += 1;
        if self.malformed.len() < MAX_QUOTED {
            self.malformed.push(Malformed {
                file: file.to_string(),
                line,
                why,
            });
        }
    }

    /// Folds one records file in (its text: see `unzipped`).
    fn add_file(&mut self, file: &str, body: &[u8]) {
        self.files += 1;
        let mut upcoming: Option<(String, String, String, Vec<Upcoming>)> = None;
        for (n, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let rec: Record<'_> = match serde_json::from_slice(line) {
                Ok(rec) => rec,
                Err(e) => {
                    self.bad(file, n + 1, format!("not a record: {e}"));
                    continue;
                }
            };
            if let Err(why) = self.add(&rec, &mut upcoming) {
                self.bad(file, n + 1, why);
            }
        }
        if let Some((account, region, order, lines)) = upcoming {
            let slot = self
                .latest
                .entry((account, region))
                .or_insert_with(|| (String::new(), Vec::new()));
            if order > slot.0 {
                *slot = (order, lines);
            }
        }
    }

    /// Folds one click record in (one JSON object a file), when its account is asked for.
    fn add_click(&mut self, file: &str, body: &[u8], query: &Query) {
        let click = match serde_json::from_slice::<Click>(body) {
            Ok(c) if c.record == "click" => c,
            Ok(c) => return self.bad(file, 1, format!("record {:?} is not click", c.record)),
            Err(e) => return self.bad(file, 1, format!("not a click record: {e}")),
        };
        let date = match parse_date(&click.dt) {
            Ok(d) => d,
            Err(e) => return self.bad(file, 1, format!("dt: {e}")),
        };
        if !query.accounts.is_empty()
            && !click
                .account
                .as_ref()
                .is_some_and(|a| query.accounts.contains(a))
        {
            return;
        }
        self.click_records += 1;
        let account = click.account.unwrap_or_else(|| NO_VALID_TOKEN.into());
        let month = date.format("%Y-%m").to_string();
        let t = self
            .clicks
            .entry((account.clone(), month.clone()))
            .or_insert_with(|| OwnerActions {
                account,
                month,
                ..OwnerActions::default()
            });
        t.clicks += 1;
        if click.outcome == "kept" {
            t.kept += 1;
            t.days_kept += click.days.unwrap_or(0);
        } else if click.outcome.starts_with("failed") {
            t.failed += 1;
        } else {
            t.refused += 1;
        }
    }

    fn add(
        &mut self,
        rec: &Record<'_>,
        upcoming: &mut Option<(String, String, String, Vec<Upcoming>)>,
    ) -> Result<(), String> {
        let date = parse_date(&rec.dt).map_err(|e| format!("dt: {e}"))?;
        self.records += 1;
        self.accounts.insert(rec.account.clone());
        let month = date.format("%Y-%m").to_string();
        let key = (rec.account.clone(), month.clone());
        let live = match rec.mode.as_str() {
            "live" => true,
            "dry-run" => false,
            other => return Err(format!("mode {other:?} is not live or dry-run")),
        };
        match rec.record.as_str() {
            "run" => {
                // Every sweep's file names what is coming, even when nothing is.
                if full_run(rec) {
                    upcoming.get_or_insert_with(|| list_of(rec));
                }
                if live {
                    let (Some(subject), Some(compliant)) = (rec.subject, rec.compliant) else {
                        return Err("a run record without subject and compliant".into());
                    };
                    let c = self.compliance.entry(key).or_default();
                    c.0 += compliant;
                    c.1 += subject;
                }
            }
            "instance" => {
                let money = match rec.saving_per_month {
                    None => None,
                    Some(raw) if raw.get() == "null" => None,
                    Some(raw) => {
                        Some(Usd::parse(raw.get()).map_err(|e| format!("saving_per_month: {e}"))?)
                    }
                };
                // What is coming: an instance announced for its action (within WARN_WINDOW), as
                // well as the `upcoming` lines (the named query "what will be reaped" agrees).
                if rec.verdict.as_deref() == Some("expiring") {
                    coming(rec, upcoming);
                }
                if !live {
                    return Ok(());
                }
                let done = rec.outcome.as_deref() == Some("done");
                let m = self.months.entry(key).or_insert_with(|| MonthTotal {
                    account: rec.account.clone(),
                    month,
                    ..MonthTotal::default()
                });
                let day = self.days.entry(rec.dt.clone()).or_default();
                match (rec.verdict.as_deref(), done) {
                    (Some("terminate"), true) => {
                        m.terminated += 1;
                        day.terminated += 1;
                    }
                    (Some("stop"), true) => {
                        m.stopped += 1;
                        day.stopped += 1;
                    }
                    (Some("stamp"), true) => {
                        m.stamped += 1;
                        day.stamped += 1;
                    }
                    _ => {}
                }
                if rec.outcome.as_deref() == Some("failed") {
                    m.failed += 1;
                    day.failed += 1;
                }
                if done && rec.saving_held != Some(true) {
                    if let Some(money) = money {
                        m.saved_per_month = m.saved_per_month.plus(money);
                    }
                }
            }
            "upcoming" => coming(rec, upcoming),
            other => return Err(format!("record {other:?} is not run, instance or upcoming")),
        }
        Ok(())
    }

    fn finish(self, query: &Query) -> Evidence {
        let compliance = self
            .compliance
            .into_iter()
            .map(|((account, month), (compliant, subject))| Compliance {
                account,
                month,
                compliant,
                subject,
                share: (subject > 0)
                    .then(|| (compliant as f64 / subject as f64 * 10_000.0).round() / 10_000.0),
            })
            .collect();
        let mut upcoming: Vec<Upcoming> = self.latest.into_values().flat_map(|(_, l)| l).collect();
        upcoming.sort_by(|a, b| {
            (&a.termination_date, &a.account, &a.instance_id).cmp(&(
                &b.termination_date,
                &b.account,
                &b.instance_id,
            ))
        });
        Evidence {
            since: query.since,
            until: query.until,
            accounts: self.accounts.into_iter().collect(),
            months: self.months.into_values().collect(),
            compliance,
            upcoming,
            files: self.files,
            records: self.records,
            malformed_lines: self.malformed_lines,
            malformed: self.malformed,
            days: self.days,
            owner_actions: self.clicks.into_values().collect(),
            click_records: self.click_records,
        }
    }
}

/// Adds `rec` (an `upcoming` line, or an instance announced as `expiring`) to its run's list of
/// what is coming.
fn coming(rec: &Record<'_>, upcoming: &mut Option<(String, String, String, Vec<Upcoming>)>) {
    if !full_run(rec) {
        return;
    }
    let line = Upcoming {
        account: rec.account.clone(),
        region: rec.region.clone(),
        instance_id: rec.instance_id.clone().unwrap_or_default(),
        name: rec.name.clone(),
        owner: rec.owner.clone(),
        termination_date: rec.termination_date.clone().unwrap_or_default(),
        instance_type: rec.instance_type.clone(),
    };
    upcoming.get_or_insert_with(|| list_of(rec)).3.push(line);
}

/// What is coming is a sweep's view: a run for an instance-state event judged only the instances
/// it names, and would otherwise replace the account's list with theirs.
fn full_run(rec: &Record<'_>) -> bool {
    rec.trigger != "instance-state"
}

/// An empty list for `rec`'s run: account, region, and the run's order (its start, then its id,
/// so that two runs of the same second are ordered the same whatever order the files are read in).
fn list_of(rec: &Record<'_>) -> (String, String, String, Vec<Upcoming>) {
    (
        rec.account.clone(),
        rec.region.clone(),
        format!("{} {}", rec.run_at, rec.run_id),
        Vec::new(),
    )
}

/// The value of a Hive-style folder name (`account=123…` → `123…`) when it is that column's.
fn value<'a>(folder: &'a str, column: &str) -> Option<&'a str> {
    folder
        .trim_end_matches('/')
        .strip_prefix(column)?
        .strip_prefix('=')
}

/// One level down the Hive-style tree: the subfolders of each of `prefixes` that `keep`
/// accepts, as prefixes themselves; listed `READ_AT_ONCE` at a time.
async fn descend<S: EvidenceStore>(
    store: &S,
    prefixes: Vec<String>,
    keep: impl Fn(&str) -> bool + Copy,
) -> Result<Vec<String>, String> {
    let listed = stream::iter(prefixes)
        .map(|prefix| async move {
            let folders = store.folders(&prefix).await?;
            Ok::<_, String>(
                folders
                    .iter()
                    .filter(|f| keep(f))
                    .map(|f| format!("{prefix}{}/", f.trim_end_matches('/')))
                    .collect::<Vec<_>>(),
            )
        })
        .buffer_unordered(READ_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    Ok(listed
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// The records files of the partitions `query` wants: only the `account=` folders asked for
/// (or all), and in each region only the `dt=` folders inside the range.
pub async fn keys<S: EvidenceStore>(store: &S, query: &Query) -> Result<Vec<String>, String> {
    let accounts = if query.accounts.is_empty() {
        descend(store, vec!["evidence/".into()], |f| {
            value(f, "account").is_some()
        })
        .await?
    } else {
        query
            .accounts
            .iter()
            .map(|account| format!("evidence/account={account}/"))
            .collect()
    };
    let regions = descend(store, accounts, |f| value(f, "region").is_some()).await?;
    day_files(store, regions, query, &[".jsonl", ".jsonl.gz"]).await
}

/// The click records (`clicks/dt=<day>/*.json`) of the days `query` wants.
pub async fn click_keys<S: EvidenceStore>(store: &S, query: &Query) -> Result<Vec<String>, String> {
    day_files(store, vec!["clicks/".into()], query, &[".json"]).await
}

/// The files ending in one of `suffixes` in the `dt=` folders under `prefixes` that `query`
/// wants, sorted.
async fn day_files<S: EvidenceStore>(
    store: &S,
    prefixes: Vec<String>,
    query: &Query,
    suffixes: &[&str],
) -> Result<Vec<String>, String> {
    let days = descend(store, prefixes, |f| {
        value(f, "dt")
            .and_then(|d| parse_date(d).ok())
            .is_some_and(|d| query.wants(d))
    })
    .await?;
    let mut files: Vec<String> = stream::iter(days)
        .map(|prefix| async move { store.files(&prefix).await })
        .buffer_unordered(READ_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .filter(|k| suffixes.iter().any(|s| k.ends_with(s)))
        .collect();
    files.sort_unstable();
    Ok(files)
}

/// Reads every records file `query` wants, `READ_AT_ONCE` at a time, and totals them;
/// `progress(read, total)` after each file. A file that cannot be read fails the report (a
/// total without it would be wrong); a malformed line is counted and quoted, not fatal.
pub async fn report<S: EvidenceStore>(
    store: &S,
    query: &Query,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<Evidence, String> {
    let keys = keys(store, query).await?;
    let clicks = click_keys(store, query).await?;
    let total = keys.len() + clicks.len();
    progress(0, total);
    let mut tally = Tally::default();
    let mut reads = stream::iter(keys)
        .map(|key| async move {
            let body = store.read(&key).await;
            (key, body)
        })
        .buffer_unordered(READ_AT_ONCE);
    let mut read = 0;
    while let Some((key, body)) = reads.next().await {
        match unzipped(&body?) {
            Ok(text) => tally.add_file(&key, &text),
            Err(why) => tally.bad(&key, 0, format!("the whole file: a gzip stream that is corrupt or cut short ({why}); none of its lines were counted")),
        }
        read += 1;
        progress(read, total);
    }
    // Owner actions: one small JSON object a file.
    let mut reads = stream::iter(clicks)
        .map(|key| async move {
            let body = store.read(&key).await;
            (key, body)
        })
        .buffer_unordered(READ_AT_ONCE);
    while let Some((key, body)) = reads.next().await {
        tally.add_click(&key, &body?, query);
        read += 1;
        progress(read, total);
    }
    Ok(tally.finish(query))
}

/// A records file's text: the reaper writes them gzipped (`.jsonl.gz`, recognised by gzip's
/// magic bytes, whatever the key or the object's encoding say); plain JSON lines pass as they are.
fn unzipped(body: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, std::io::Error> {
    use std::io::Read;
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(body).read_to_end(&mut text)?;
    Ok(std::borrow::Cow::Owned(text))
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An evidence store in memory: keys to contents; every list call is recorded.
    #[derive(Default)]
    struct Files {
        files: BTreeMap<String, String>,
        listed: Mutex<Vec<String>>,
    }

    impl EvidenceStore for Files {
        async fn folders(&self, prefix: &str) -> Result<Vec<String>, String> {
            self.listed.lock().unwrap().push(prefix.to_string());
            let names: BTreeSet<String> = self
                .files
                .keys()
                .filter_map(|k| k.strip_prefix(prefix)?.split_once('/'))
                .map(|(folder, _)| folder.to_string())
                .collect();
            Ok(names.into_iter().collect())
        }
        async fn files(&self, prefix: &str) -> Result<Vec<String>, String> {
            Ok(self
                .files
                .keys()
                .filter(|k| k.strip_prefix(prefix).is_some_and(|r| !r.contains('/')))
                .cloned()
                .collect())
        }
        async fn read(&self, key: &str) -> Result<Vec<u8>, String> {
            self.files
                .get(key)
                .map(|s| s.clone().into_bytes())
                .ok_or_else(|| format!("{key}: no such file"))
        }
    }

    fn common(record: &str, account: &str, dt: &str, mode: &str) -> String {
        format!(
            r#""schema":1,"record":"{record}","account":"{account}","region":"eu-west-1","dt":"{dt}","run_id":"r-{dt}","run_at":"{dt}T10:00:00Z","mode":"{mode}","trigger":"schedule""#
        )
    }

    fn run(account: &str, dt: &str, mode: &str, subject: u64, compliant: u64) -> String {
        format!(
            "{{{},\"subject\":{subject},\"compliant\":{compliant}}}",
            common("run", account, dt, mode)
        )
    }

    fn inst(
        account: &str,
        dt: &str,
        mode: &str,
        v: &str,
        o: &str,
        money: &str,
        held: bool,
    ) -> String {
        format!(
            "{{{},\"instance_id\":\"i-1\",\"verdict\":\"{v}\",\"outcome\":{o},\"saving_held\":{held},\"saving_per_month\":{money}}}",
            common("instance", account, dt, mode)
        )
    }

    fn store() -> Files {
        let a = "111111111111";
        let b = "222222222222";
        let mut files = BTreeMap::new();
        let mut put = |account: &str, dt: &str, lines: Vec<String>| {
            files.insert(
                format!("evidence/account={account}/region=eu-west-1/dt={dt}/r-{dt}.jsonl"),
                lines.join("\n") + "\n",
            );
        };
        put(
            a,
            "2030-01-31",
            vec![
                run(a, "2030-01-31", "live", 10, 7),
                // 0.1 + 0.2 in floats is 0.30000000000000004; the sum here is exact.
                inst(
                    a,
                    "2030-01-31",
                    "live",
                    "terminate",
                    "\"done\"",
                    "0.1",
                    false,
                ),
                inst(a, "2030-01-31", "live", "stop", "\"done\"", "0.2", false),
                inst(a, "2030-01-31", "live", "stop", "\"done\"", "99.5", true),
                inst(
                    a,
                    "2030-01-31",
                    "live",
                    "terminate",
                    "\"failed\"",
                    "null",
                    false,
                ),
                inst(a, "2030-01-31", "live", "stamp", "\"done\"", "null", false),
                inst(a, "2030-01-31", "live", "expiring", "null", "null", false),
            ],
        );
        put(
            a,
            "2030-02-01",
            vec![
                run(a, "2030-02-01", "live", 4, 4),
                inst(
                    a,
                    "2030-02-01",
                    "live",
                    "terminate",
                    "\"done\"",
                    "1234.5678901234",
                    false,
                ),
                "{not json".into(),
            ],
        );
        put(
            a,
            "2030-02-02",
            vec![
                run(a, "2030-02-02", "dry-run", 100, 1),
                inst(
                    a,
                    "2030-02-02",
                    "dry-run",
                    "terminate",
                    "\"would\"",
                    "5",
                    false,
                ),
            ],
        );
        put(
            b,
            "2030-02-01",
            vec![
                run(b, "2030-02-01", "live", 3, 0),
                inst(
                    b,
                    "2030-02-01",
                    "live",
                    "stop",
                    "\"done\"",
                    "0.0000000001",
                    false,
                ),
            ],
        );
        Files {
            files,
            ..Files::default()
        }
    }

    async fn total(store: &Files, query: &Query) -> Evidence {
        report(store, query, &mut |_, _| {}).await.unwrap()
    }

    #[tokio::test]
    async fn totals_count_live_runs_only_and_sum_money_exactly() {
        let e = total(&store(), &Query::default()).await;
        assert_eq!(e.files, 4);
        assert_eq!(e.accounts, ["111111111111", "222222222222"]);
        let months: Vec<(String, String, [u64; 4], String)> = e
            .months
            .iter()
            .map(|m| {
                (
                    m.account.clone(),
                    m.month.clone(),
                    [m.terminated, m.stopped, m.stamped, m.failed],
                    serde_json::to_string(&m.saved_per_month).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            months,
            [
                (
                    "111111111111".into(),
                    "2030-01".into(),
                    // The held stop is counted as stopped (outcome done) but saves nothing.
                    [1, 2, 1, 1],
                    "\"0.30\"".into()
                ),
                (
                    "111111111111".into(),
                    "2030-02".into(),
                    [1, 0, 0, 0],
                    "\"1234.5678901234\"".into()
                ),
                (
                    "222222222222".into(),
                    "2030-02".into(),
                    [0, 1, 0, 0],
                    "\"0.0000000001\"".into()
                ),
            ]
        );
        let shares: Vec<(u64, u64, Option<f64>)> = e
            .compliance
            .iter()
            .map(|c| (c.compliant, c.subject, c.share))
            .collect();
        assert_eq!(
            shares,
            [(7, 10, Some(0.7)), (4, 4, Some(1.0)), (0, 3, Some(0.0))],
            "the dry run's 1/100 is not counted"
        );
        assert_eq!(e.malformed_lines, 1);
        assert_eq!(e.malformed[0].line, 3);
        assert!(e.malformed[0]
            .file
            .ends_with("dt=2030-02-01/r-2030-02-01.jsonl"));
        assert_eq!(e.days["2030-01-31"].failed, 1);
    }

    #[tokio::test]
    async fn only_the_partitions_asked_for_are_listed_and_read() {
        let s = store();
        let q = Query {
            since: Some(parse_date("2030-02-01").unwrap()),
            until: Some(parse_date("2030-02-01").unwrap()),
            accounts: vec!["222222222222".into()],
        };
        let e = total(&s, &q).await;
        assert_eq!(e.files, 1);
        assert_eq!(e.months.len(), 1);
        let listed = s.listed.lock().unwrap().clone();
        // The records are pruned by account; the click records (partitioned by day only) are
        // listed by day and filtered by their account field.
        let (clicks, records): (Vec<&String>, Vec<&String>) =
            listed.iter().partition(|p| p.starts_with("clicks/"));
        assert!(
            records.iter().all(|p| p.contains("account=222222222222")),
            "{listed:?}"
        );
        assert_eq!(clicks, ["clicks/"]);
        let e = total(
            &s,
            &Query {
                since: Some(parse_date("2030-02-01").unwrap()),
                ..Query::default()
            },
        )
        .await;
        assert_eq!(e.files, 3, "January is pruned");
    }

    /// Owner actions: the `clicks/` records (one JSON object a file, as reaper-actions writes
    /// them: the fixture its unit test compares with), totalled per account and month, within
    /// the dates and accounts asked for; a click file that is not a click record is malformed.
    #[tokio::test]
    async fn owner_actions_are_totalled_from_the_click_records() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/evidence/click.json"
        ))
        .unwrap();
        let click = |dt: &str, account: Option<&str>, outcome: &str, days: u64| {
            let mut c = fixture.clone();
            c["dt"] = dt.into();
            c["account"] = account.into();
            c["outcome"] = outcome.into();
            c["days"] = days.into();
            c.to_string()
        };
        let mut s = store();
        for (n, (dt, account, outcome, days)) in [
            ("2030-01-31", Some("111111111111"), "kept", 3),
            (
                "2030-01-31",
                Some("111111111111"),
                "refused-date-changed",
                3,
            ),
            ("2030-02-01", Some("111111111111"), "kept", 7),
            ("2030-02-01", Some("222222222222"), "failed-write", 1),
            ("2030-02-01", None, "refused-token", 0),
        ]
        .into_iter()
        .enumerate()
        {
            s.files.insert(
                format!("clicks/dt={dt}/12000{n}000-{n}.json"),
                click(dt, account, outcome, days),
            );
        }
        s.files.insert(
            "clicks/dt=2030-02-01/bad.json".into(),
            "{\"record\": 1}".into(),
        );
        let e = total(&s, &Query::default()).await;
        let got: Vec<(&str, &str, [u64; 5])> = e
            .owner_actions
            .iter()
            .map(|a| {
                (
                    a.account.as_str(),
                    a.month.as_str(),
                    [a.clicks, a.kept, a.refused, a.failed, a.days_kept],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (NO_VALID_TOKEN, "2030-02", [1, 0, 1, 0, 0]),
                ("111111111111", "2030-01", [2, 1, 1, 0, 3]),
                ("111111111111", "2030-02", [1, 1, 0, 0, 7]),
                ("222222222222", "2030-02", [1, 0, 0, 1, 0]),
            ]
        );
        assert_eq!(e.click_records, 5);
        assert!(e
            .malformed
            .iter()
            .any(|m| m.file == "clicks/dt=2030-02-01/bad.json"));
        // One account, February only: the others are not counted.
        let q = Query {
            since: Some(parse_date("2030-02-01").unwrap()),
            until: None,
            accounts: vec!["111111111111".into()],
        };
        let e = total(&s, &q).await;
        assert_eq!(e.click_records, 1);
        assert_eq!(e.owner_actions.len(), 1);
        assert_eq!(e.owner_actions[0].days_kept, 7);
    }

    #[test]
    fn records_files_are_read_gzipped_or_plain() {
        use std::io::Write;
        let text = format!("{}\n", run("111111111111", "2030-01-31", "live", 3, 2));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let body = gz.finish().unwrap();
        assert_eq!(&*unzipped(&body).unwrap(), text.as_bytes());
        assert_eq!(&*unzipped(text.as_bytes()).unwrap(), text.as_bytes());
        // Cut short: an error, which the report counts as a malformed file, not a panic.
        assert!(unzipped(&body[..body.len() / 2]).is_err());
    }

    #[test]
    fn dates_and_accounts_say_what_is_accepted() {
        assert_eq!(
            parse_date("2030-3-7"),
            Err("\"2030-3-7\" is not a date; write YYYY-MM-DD, e.g. 2030-03-07".into())
        );
        assert!(parse_date("2030-02-30").is_err());
        assert!(parse_date("2030-03-07").is_ok());
        assert_eq!(
            parse_account("12345"),
            Err("\"12345\" is not an AWS account id (12 digits)".into())
        );
        assert!(parse_account("123456789012").is_ok());
    }

    #[tokio::test]
    async fn what_is_coming_is_the_latest_runs_expiring_and_upcoming_instances() {
        let a = "444444444444";
        let line = |dt: &str, record: &str, id: &str, extra: &str| {
            format!(
                "{{{},\"instance_id\":\"{id}\",\"termination_date\":\"{dt}T{extra}\"{}}}",
                common(record, a, dt, "dry-run"),
                if record == "instance" {
                    ",\"verdict\":\"expiring\",\"outcome\":\"would\""
                } else {
                    ""
                }
            )
        };
        let mut s = Files::default();
        for (dt, lines) in [
            // An older run's list is replaced by the latest run's.
            (
                "2030-04-01",
                vec![line("2030-04-01", "upcoming", "i-old", "20:00:00Z")],
            ),
            (
                "2030-04-02",
                vec![
                    run(a, "2030-04-02", "dry-run", 2, 2),
                    line("2030-04-02", "upcoming", "i-later", "23:00:00Z"),
                    line("2030-04-02", "instance", "i-announced", "12:00:00Z"),
                ],
            ),
        ] {
            s.files.insert(
                format!("evidence/account={a}/region=eu-west-1/dt={dt}/r-{dt}.jsonl"),
                lines.join("\n") + "\n",
            );
        }
        // A later run for an instance-state event judged one instance: not the account's list.
        let event = line("2030-04-03", "upcoming", "i-event", "12:00:00Z")
            .replace("\"trigger\":\"schedule\"", "\"trigger\":\"instance-state\"");
        s.files.insert(
            format!("evidence/account={a}/region=eu-west-1/dt=2030-04-03/r-event.jsonl"),
            event + "\n",
        );
        let e = total(&s, &Query::default()).await;
        assert_eq!(e.malformed_lines, 0, "{:?}", e.malformed);
        let ids: Vec<&str> = e.upcoming.iter().map(|u| u.instance_id.as_str()).collect();
        assert_eq!(ids, ["i-announced", "i-later"]);

        // Two sweeps of the same second: the same one wins whichever file is read first.
        let twin = line("2030-04-02", "upcoming", "i-twin", "13:00:00Z")
            .replace("r-2030-04-02", "r-2030-04-02-b");
        s.files.insert(
            format!("evidence/account={a}/region=eu-west-1/dt=2030-04-02/r-b.jsonl"),
            twin + "\n",
        );
        let e = total(&s, &Query::default()).await;
        let ids: Vec<&str> = e.upcoming.iter().map(|u| u.instance_id.as_str()).collect();
        assert_eq!(
            ids,
            ["i-twin"],
            "run id r-2030-04-02-b orders after r-2030-04-02"
        );
    }

    #[tokio::test]
    async fn money_that_is_not_a_decimal_is_a_malformed_line() {
        let mut s = store();
        s.files.insert(
            "evidence/account=333333333333/region=eu-west-1/dt=2030-03-01/x.jsonl".into(),
            inst(
                "333333333333",
                "2030-03-01",
                "live",
                "stop",
                "\"done\"",
                "-1",
                false,
            ) + "\n",
        );
        let e = total(&s, &Query::default()).await;
        assert_eq!(e.malformed_lines, 2);
        assert!(
            e.malformed[1].why.starts_with("saving_per_month"),
            "{:?}",
            e.malformed
        );
    }
}
