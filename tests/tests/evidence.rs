//! The evidence store's records (docs/EVIDENCE.md) as the real `reaper` binary writes them: EC2
//! and S3 in moto through the real SDK, prices from the loopback Price List stub. A dry run and a
//! live run over a fleet with several verdicts; the records file's key, content type and lines.
//!
//! The same files are the seed of `scripts/gen-evidence` (tests/fixtures/evidence/seed/): with
//! `UPDATE_SEED=1` this test writes them there; without it, it checks that the committed seed has
//! the fields and kinds the reaper writes now (ids and times differ from run to run).

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use reaper::report::RunReport;
use reaper_e2e::function::workspace_root;
use reaper_e2e::{fixture, reaper_binary, Function, Moto, PriceListStub, PricingMode, RuntimeApi};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const REGION: &str = "us-west-2";
const BUCKET: &str = "reaper-evidence";
const ACCOUNT: &str = "123456789012";
const TIMEOUT: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(300);
/// Announced to its owner two days before the date: the notice gate lets it go.
const TOLD_2020: &str = "terminate 2020-01-01T00:00:00Z told 2019-12-30T00:00:00Z";

struct Rig {
    moto: Moto,
    _stub: PriceListStub,
    runtime: RuntimeApi,
    function: Function,
}

fn rig() -> Rig {
    let moto = Moto::start();
    let stub = PriceListStub::start(PricingMode::Ok);
    let runtime = RuntimeApi::start(REGION);
    let mut env = moto.env(REGION);
    env.extend(
        [
            ("AWS_ENDPOINT_URL_PRICING", stub.url()),
            ("GRACE_PERIOD", "0m".into()),
            ("LIVEMODE", "true".into()),
            ("REPORT_BUCKET", BUCKET.into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let function = Function::spawn(&reaper_binary(), &runtime, &env);
    Rig {
        moto,
        _stub: stub,
        runtime,
        function,
    }
}

impl Rig {
    async fn launch(&self, ty: InstanceType, tags: &[(&str, &str)]) -> String {
        let mut req = self
            .moto
            .ec2(REGION)
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(ty)
            .min_count(1)
            .max_count(1);
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            req = req.tag_specifications(spec.build());
        }
        let out = req.send().await.expect("RunInstances");
        out.instances()[0].instance_id().unwrap().to_string()
    }

    fn run(&self, event: Value) -> (RunReport, Value) {
        let v = self
            .function
            .invoke(&self.runtime, event, TIMEOUT, DEADLINE)
            .unwrap_response();
        let report = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("not a run report ({e}): {v:#}"));
        (report, v)
    }

    /// The records file of `report`: its key as listed, its content type, its lines (the object
    /// is gzipped, `Content-Encoding: gzip`; the text is what it unzips to).
    async fn records(&self, report: &RunReport) -> (String, Option<String>, String) {
        let s3 = self.moto.s3(REGION);
        let listed = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("evidence/")
            .send()
            .await
            .expect("ListObjectsV2");
        let key = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .find(|k| k.ends_with(&format!("/{}.jsonl.gz", report.run_id)))
            .unwrap_or_else(|| panic!("no records file for {}: {listed:?}", report.run_id))
            .to_string();
        let obj = s3
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .expect("GetObject");
        let content_type = obj.content_type().map(str::to_string);
        assert_eq!(obj.content_encoding(), Some("gzip"), "{key}");
        let body = obj.body.collect().await.unwrap().into_bytes();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap_or_else(|e| panic!("{key} is not gzip: {e}"));
        (key, content_type, text)
    }
}

/// What the fleet calls it, its type and its tags.
type Launch<'a> = (&'static str, InstanceType, Vec<(&'a str, &'a str)>);

/// The fleet: one of each verdict the tag rules give without an Auto Scaling group.
async fn fleet(rig: &Rig) -> BTreeMap<&'static str, String> {
    let now = chrono::Utc::now();
    let date = |d: chrono::TimeDelta| (now + d).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let soon = date(chrono::TimeDelta::days(3));
    let later = date(chrono::TimeDelta::days(30));
    let expiring = date(chrono::TimeDelta::hours(12));
    let due = ("termination_date", "2020-01-01T00:00:00Z");
    let mut ids = BTreeMap::new();
    let fleet: [Launch; 8] = [
        (
            "terminate",
            InstanceType::M5Large,
            vec![
                due,
                ("reaper:announced", TOLD_2020),
                ("Name", "web <1> & \"co\""),
            ],
        ),
        (
            "held",
            InstanceType::M5Large,
            vec![due, ("Name", "not-told"), ("owner", "alice@example.com")],
        ),
        ("stop", InstanceType::C5Xlarge, vec![("Name", "untagged")]),
        ("stamp", InstanceType::T3Micro, vec![("lifetime", "30d")]),
        (
            "expiring",
            InstanceType::T3Micro,
            vec![("termination_date", expiring.as_str())],
        ),
        (
            "upcoming",
            InstanceType::T3Small,
            vec![
                ("termination_date", soon.as_str()),
                ("Name", "soon"),
                ("owner", "bob"),
            ],
        ),
        (
            "keep",
            InstanceType::T3Micro,
            vec![("termination_date", later.as_str())],
        ),
        (
            "bad",
            InstanceType::T3Micro,
            vec![("termination_date", "next tuesday")],
        ),
    ];
    for (what, ty, tags) in fleet {
        ids.insert(what, rig.launch(ty, &tags).await);
    }
    ids
}

fn parse(text: &str) -> Vec<Value> {
    assert!(text.ends_with('\n'), "one object per line: {text}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every line is one of the three kinds, carries the common fields of its run, and the file is
/// the report's: one run line first, one instance line per report line, the upcoming lines.
fn check_file(report: &RunReport, json: &Value, key: &str, lines: &[Value]) {
    let dt = report.started_at.format("%Y-%m-%d").to_string();
    assert_eq!(
        key,
        format!(
            "evidence/account={ACCOUNT}/region={REGION}/dt={dt}/{}.jsonl.gz",
            report.run_id
        )
    );
    let mode = json["mode"].as_str().unwrap();
    // The run's start, to the second (the report's has the nanoseconds).
    let run_at = report.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for l in lines {
        assert_eq!(l["schema"], 1);
        assert_eq!(l["account"], ACCOUNT);
        assert_eq!(l["region"], REGION);
        assert_eq!(l["dt"], dt.as_str());
        assert_eq!(l["run_id"], report.run_id.as_str());
        assert_eq!(l["run_at"], run_at.as_str());
        assert_eq!(l["mode"], mode);
        assert_eq!(l["trigger"], json["trigger"]);
    }
    let run = &lines[0];
    assert_eq!(run["record"], "run");
    assert_eq!(
        lines.iter().filter(|l| l["record"] == "run").count(),
        1,
        "one run line"
    );
    assert_eq!(run["instances_judged"], report.instances_judged);
    for (v, n) in json["counts"]["verdicts"].as_object().unwrap() {
        assert_eq!(run[format!("verdict_{}", v.replace('-', "_"))], *n, "{v}");
    }
    for (o, n) in json["counts"]["outcomes"].as_object().unwrap() {
        assert_eq!(run[format!("outcome_{}", o.replace('-', "_"))], *n, "{o}");
    }
    assert_eq!(run["errors"], report.errors.len());
    assert_eq!(run["upcoming_omitted"], 0);
    let instances: Vec<&Value> = lines.iter().filter(|l| l["record"] == "instance").collect();
    assert_eq!(instances.len(), report.instances.len());
    for (line, entry) in instances.iter().zip(json["instances"].as_array().unwrap()) {
        assert_eq!(line["instance_id"], entry["id"]);
        for f in [
            "name",
            "owner",
            "state",
            "verdict",
            "reason",
            "termination_date",
        ] {
            assert_eq!(line[f], entry[f], "{f} of {}", entry["id"]);
        }
        assert_eq!(line["outcome"], entry["outcome"]);
        assert_eq!(line["error"], entry["error"]);
        assert_eq!(line["notice"], *entry.get("notice").unwrap_or(&Value::Null));
        let saving = &entry["saving"];
        assert_eq!(line["saving_action"], saving["action"]);
        assert_eq!(
            line["saving_held"],
            saving["held"].as_bool().unwrap_or(false)
        );
        assert_eq!(line["saving_unpriced"], saving["unpriced"]);
    }
}

/// The money of a record, as the text of its line says it: the report's digits, not a float's.
fn raw_money<'a>(text: &'a str, instance: &str, field: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.contains(&format!("\"instance_id\":\"{instance}\"")))
        .unwrap();
    let at = line.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
    let end = at + line[at..].find([',', '}']).unwrap();
    &line[at..end]
}

/// Field names per record kind, and the record kinds, verdicts and outcomes seen.
fn shape(files: &[Vec<Value>]) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for l in files.iter().flatten() {
        let kind = l["record"].as_str().unwrap().to_string();
        fields
            .entry(kind.clone())
            .or_default()
            .extend(l.as_object().unwrap().keys().cloned());
        seen.insert(format!("record {kind}"));
        seen.insert(format!("mode {}", l["mode"].as_str().unwrap()));
        if let Some(v) = l["verdict"].as_str() {
            seen.insert(format!("verdict {v}"));
        }
        if let Some(o) = l["outcome"].as_str() {
            seen.insert(format!("outcome {o}"));
        }
    }
    (fields, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_and_a_live_run_write_their_records_beside_the_report() {
    let rig = rig();
    rig.moto.create_bucket(REGION, BUCKET).await;
    let ids = fleet(&rig).await;

    let (dry, dry_json) = rig.run(json!({"dry_run": true}));
    assert_eq!(dry_json["mode"], "dry-run");
    let (live, live_json) = rig.run(fixture("schedule.json"));
    assert_eq!(live_json["mode"], "live");
    assert!(live.errors.is_empty(), "{:?}", live.errors);

    let mut files = Vec::new();
    let mut texts = Vec::new();
    for (report, json) in [(&dry, &dry_json), (&live, &live_json)] {
        let (key, content_type, text) = rig.records(report).await;
        assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
        let lines = parse(&text);
        check_file(report, json, &key, &lines);
        files.push(lines);
        texts.push(text);
    }
    let live_lines = &files[1];
    let by_id = |id: &str| {
        live_lines
            .iter()
            .find(|l| l["record"] == "instance" && l["instance_id"] == id)
            .unwrap_or_else(|| panic!("no instance line for {id}"))
    };
    // The termination: done, priced, as the report says it to the digit.
    let t = by_id(&ids["terminate"]);
    assert_eq!(
        (&t["verdict"], &t["outcome"], &t["saving_action"]),
        (&json!("terminate"), &json!("done"), &json!("terminate"))
    );
    assert_eq!(t["name"], "web <1> & \"co\"");
    assert_eq!(t["instance_type"], "m5.large");
    // moto's image reads as Windows (its `Platform`); what the listing said, whatever it was.
    assert!(t["platform"].as_str().is_some_and(|p| !p.is_empty()), "{t}");
    let entry = live_json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == ids["terminate"].as_str())
        .unwrap();
    let digits = entry["saving"]["per_month"].as_str().unwrap();
    assert_eq!(
        raw_money(&texts[1], &ids["terminate"], "saving_per_month"),
        digits
    );
    // Not told in time: held back, at stake.
    let h = by_id(&ids["held"]);
    assert_eq!(h["outcome"], "deferred");
    assert_eq!(h["saving_held"], true);
    assert_eq!(h["owner"], "alice@example.com");
    for (what, verdict) in [
        ("stamp", "stamp"),
        ("expiring", "expiring"),
        ("bad", "stop"),
    ] {
        assert_eq!(by_id(&ids[what])["verdict"], verdict, "{what}");
    }
    // The run line: compliance from the counts, the savings total as the report's digits.
    let run = &live_lines[0];
    let judged = live.instances_judged;
    assert_eq!(judged, 8);
    assert_eq!(run["subject"], 8, "no managed instance");
    // keep ×2 + terminate ×2 + expiring + stamp; the untagged and the unreadable are not.
    assert_eq!(run["compliant"], 6);
    assert_eq!(run["price_source"], "pricing-api");
    let saved = live_json["savings"]["saved"]["per_month"].as_str().unwrap();
    assert!(
        texts[1].contains(&format!("\"saved_per_month\":{saved},")),
        "{saved}: {}",
        texts[1].lines().next().unwrap()
    );
    // Upcoming: only the keep instance due within a week, in both runs.
    for lines in &files {
        let up: Vec<&Value> = lines.iter().filter(|l| l["record"] == "upcoming").collect();
        assert_eq!(up.len(), 1, "{up:?}");
        assert_eq!(up[0]["instance_id"], ids["upcoming"].as_str());
        assert_eq!(up[0]["instance_type"], "t3.small");
        assert_eq!(up[0]["owner"], "bob");
        assert_eq!(up[0]["name"], "soon");
    }
    // The dry run would have done what the live run did.
    let dry_t = files[0]
        .iter()
        .find(|l| l["instance_id"] == ids["terminate"].as_str())
        .unwrap();
    assert_eq!(dry_t["outcome"], "would");

    let seed = workspace_root().join("tests/fixtures/evidence/seed");
    if std::env::var_os("UPDATE_SEED").is_some() {
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(seed.join("dry-run.jsonl"), &texts[0]).unwrap();
        std::fs::write(seed.join("live.jsonl"), &texts[1]).unwrap();
        return;
    }
    let committed: Vec<Vec<Value>> = ["dry-run.jsonl", "live.jsonl"]
        .iter()
        .map(|name| {
            let path = seed.join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; write it with UPDATE_SEED=1 cargo test -p reaper-e2e --test evidence",
                    path.display()
                )
            });
            parse(&text)
        })
        .collect();
    assert_eq!(
        shape(&committed),
        shape(&files),
        "the seed of scripts/gen-evidence no longer has the fields the reaper writes: \
         UPDATE_SEED=1 cargo test -p reaper-e2e --test evidence"
    );
}

/// Money as units of 1e-10 dollars (the records never have more decimals): the test's own sum.
fn units(text: &str) -> i128 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<10}");
    whole.parse::<i128>().unwrap() * 10_000_000_000 + frac.parse::<i128>().unwrap()
}

/// Units as reaperctl writes money: every digit that counts, at least two decimals.
fn dollars(units: i128) -> String {
    let text = format!("{}.{:010}", units / 10_000_000_000, units % 10_000_000_000);
    let trimmed = text.trim_end_matches('0');
    let decimals = trimmed.len() - trimmed.find('.').unwrap() - 1;
    if decimals < 2 {
        format!(
            "{}.{:02}",
            units / 10_000_000_000,
            (units % 10_000_000_000) / 100_000_000
        )
    } else {
        trimmed.to_string()
    }
}

/// A store of records files: two accounts, three days over two months, live and dry runs, money
/// whose float sum is not exact, and one malformed line. Returns the files and the expected
/// JSON totals, computed here from the lines written.
fn synthetic() -> (Vec<(String, String)>, Value) {
    let accounts = ["111111111111", "222222222222"];
    let days = ["2030-01-15", "2030-01-31", "2030-02-01"];
    let kinds = [
        ("terminate", "done", false),
        ("terminate", "failed", false),
        ("stop", "done", false),
        ("stop", "deferred", true),
        ("stamp", "done", false),
        ("expiring", "", false),
    ];
    let money = [
        "0.1",
        "0.2",
        "12.3456789012",
        "730.00",
        "0.0000000001",
        "49.07",
    ];
    let mut files = Vec::new();
    let mut months: BTreeMap<(String, String), [i128; 5]> = BTreeMap::new();
    let mut compliance: BTreeMap<(String, String), [u64; 2]> = BTreeMap::new();
    let mut n = 0usize;
    for (a, account) in accounts.iter().enumerate() {
        for (d, dt) in days.iter().enumerate() {
            for mode in ["live", "dry-run"] {
                let run_id = format!("run-{a}-{d}-{mode}");
                let common = format!(
                    r#""schema":1,"account":"{account}","region":"eu-west-1","dt":"{dt}","run_id":"{run_id}","run_at":"{dt}T10:00:00Z","mode":"{mode}","trigger":"schedule""#
                );
                let (subject, compliant) = (10 + a as u64 + d as u64, 7 + d as u64);
                let mut lines = vec![format!(
                    r#"{{{common},"record":"run","subject":{subject},"compliant":{compliant}}}"#
                )];
                let month = (account.to_string(), dt[..7].to_string());
                let live = mode == "live";
                if live {
                    let c = compliance.entry(month.clone()).or_default();
                    c[0] += compliant;
                    c[1] += subject;
                }
                for (verdict, outcome, held) in kinds {
                    n += 1;
                    let m = money[n % money.len()];
                    // A dry run would have done what a live run does.
                    let outcome = match outcome {
                        "" => "",
                        _ if !live => "would",
                        o => o,
                    };
                    let outcome_json = if outcome.is_empty() {
                        "null".to_string()
                    } else {
                        format!("\"{outcome}\"")
                    };
                    lines.push(format!(
                        r#"{{{common},"record":"instance","instance_id":"i-{n}","name":"<b>{n}</b>","verdict":"{verdict}","outcome":{outcome_json},"saving_held":{held},"saving_per_month":{m}}}"#
                    ));
                    if live {
                        let t = months.entry(month.clone()).or_default();
                        let done = outcome == "done";
                        match verdict {
                            "terminate" if done => t[0] += 1,
                            "stop" if done => t[1] += 1,
                            "stamp" if done => t[2] += 1,
                            _ => {}
                        }
                        if outcome == "failed" {
                            t[3] += 1;
                        }
                        if done && !held {
                            t[4] += units(m);
                        }
                    }
                }
                if a == 1 && d == 2 && live {
                    lines.push("{\"record\": not json".into());
                }
                files.push((
                    format!("evidence/account={account}/region=eu-west-1/dt={dt}/{run_id}.jsonl"),
                    lines.join("\n") + "\n",
                ));
            }
        }
    }
    let expected = json!({
        "months": months.iter().map(|((account, month), t)| json!({
            "account": account, "month": month, "terminated": t[0], "stopped": t[1],
            "stamped": t[2], "failed": t[3], "saved_per_month": dollars(t[4]),
        })).collect::<Vec<_>>(),
        "compliance": compliance.iter().map(|((account, month), c)| json!({
            "account": account, "month": month, "compliant": c[0], "subject": c[1],
        })).collect::<Vec<_>>(),
        "files": files.len(),
        "malformed_lines": 1,
    });
    (files, expected)
}

/// `reaperctl report` (the real binary): its JSON, or its stderr when it fails.
fn reaperctl_report(env: &[(String, String)], args: &[&str]) -> Value {
    let out = std::process::Command::new(reaper_e2e::reaperctl_binary())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .arg("report")
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("run reaperctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 malformed lines"), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The totals `reaperctl report` prints, without the compliance shares (checked apart).
fn totals(v: &Value) -> Value {
    let mut compliance = v["compliance"].clone();
    for c in compliance.as_array_mut().unwrap() {
        let share = c.as_object_mut().unwrap().remove("share").unwrap();
        let expected = c["compliant"].as_f64().unwrap() / c["subject"].as_f64().unwrap();
        assert!((share.as_f64().unwrap() - expected).abs() < 0.00005, "{c}");
    }
    json!({
        "months": v["months"], "compliance": compliance, "files": v["files"],
        "malformed_lines": v["malformed_lines"],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn reaperctl_report_totals_a_folder_and_a_bucket_exactly() {
    let (files, expected) = synthetic();
    let dir = std::env::temp_dir().join(format!("reaper-evidence-{}", std::process::id()));
    for (key, body) in &files {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let from_folder = reaperctl_report(&[], &["--source", dir.to_str().unwrap()]);
    assert_eq!(totals(&from_folder), expected);
    // 0.1 + 0.2 in a float is 0.30000000000000004: the sums here are exact.
    assert!(
        from_folder["months"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["saved_per_month"].is_string()),
        "{from_folder:#}"
    );
    // Pruned: one account, one month.
    let one = reaperctl_report(
        &[],
        &[
            "--source",
            dir.to_str().unwrap(),
            "--account",
            "222222222222",
            "--since",
            "2030-02-01",
            "--until",
            "2030-02-28",
        ],
    );
    assert_eq!(one["files"], 2);
    assert_eq!(one["months"].as_array().unwrap().len(), 1);
    assert_eq!(one["months"][0], expected["months"][3]);

    let moto = Moto::start();
    moto.create_bucket(REGION, BUCKET).await;
    let s3 = moto.s3(REGION);
    // Every other file gzipped, as the reaper writes them (`.jsonl.gz`); the rest plain, as a
    // generator or an older copy may have left them: the totals are the same.
    for (n, (key, body)) in files.iter().enumerate() {
        let (key, body) = if n % 2 == 0 {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body.as_bytes()).unwrap();
            (format!("org/{key}.gz"), gz.finish().unwrap())
        } else {
            (format!("org/{key}"), body.clone().into_bytes())
        };
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    let from_bucket = reaperctl_report(
        &moto.env(REGION),
        &["--source", &format!("s3://{BUCKET}/org")],
    );
    assert_eq!(totals(&from_bucket), expected);
    assert_eq!(from_bucket["upcoming"], from_folder["upcoming"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
