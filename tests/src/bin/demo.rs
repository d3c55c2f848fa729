//! `make demo`: the whole job on a local AWS emulator, as a person first meets it.
//!
//! Starts moto on loopback, seeds ~30 instances that cover every verdict, runs the real `reaper`
//! binary through a local Lambda Runtime API (a dry run, then live), shows the verdict table and
//! the Slack message, writes both reports to `out/demo/`, checks the result, and stops everything
//! it started. Exits non-zero if anything did not go as the SPEC says.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, InstanceStateName, ResourceType, Tag, TagSpecification,
};
use chrono::{TimeDelta, Utc};
use reaper::policy::{format_date, VerdictKind};
use reaper::report::{Outcome, RunReport};
use reaper_e2e::{
    fixture, reaper_binary, workspace_root, Function, Moto, RuntimeApi, WebhookMode, WebhookSink,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";
/// moto cannot backdate LaunchTime, so the first wave really ages past a 1-minute grace period.
const GRACE: Duration = Duration::from_secs(61);

struct Seed<'a> {
    name: &'a str,
    owner: &'a str,
    tags: Vec<(&'a str, String)>,
    stopped: bool,
    protected: bool,
    expect: VerdictKind,
}

fn seed<'a>(
    name: &'a str,
    owner: &'a str,
    tags: &[(&'a str, &str)],
    expect: VerdictKind,
) -> Seed<'a> {
    Seed {
        name,
        owner,
        tags: tags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        stopped: false,
        protected: false,
        expect,
    }
}

async fn launch(ec2: &aws_sdk_ec2::Client, s: &Seed<'_>) -> Result<String, String> {
    let mut spec = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value(s.name).build())
        .tags(Tag::builder().key("owner").value(s.owner).build());
    for (k, v) in &s.tags {
        spec = spec.tags(Tag::builder().key(*k).value(v).build());
    }
    let out = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .map_err(|e| {
            format!(
                "RunInstances: {}",
                aws_sdk_ec2::error::DisplayErrorContext(e)
            )
        })?;
    let id = out.instances()[0]
        .instance_id()
        .unwrap_or_default()
        .to_string();
    if s.stopped {
        ec2.stop_instances()
            .instance_ids(&id)
            .send()
            .await
            .map_err(|e| format!("StopInstances: {e}"))?;
    }
    if s.protected {
        ec2.modify_instance_attribute()
            .instance_id(&id)
            .disable_api_termination(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| format!("ModifyInstanceAttribute: {e}"))?;
    }
    Ok(id)
}

fn banner(text: &str) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!("\n\x1b[1m== {text}\x1b[0m");
    } else {
        println!("\n== {text}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("\ndemo: OK — every verdict seen, every outcome as expected; everything started was stopped.");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("\ndemo: FAILED");
            for p in problems {
                eprintln!("  - {p}");
            }
            ExitCode::FAILURE
        }
    }
}

const NOTICE_FROM: &str = "reaper@example.com";

/// The e-mail the expiring instance's owner got: SES's record read back from the emulator, and
/// the text part as the reaper rendered it.
fn show_owner_email(moto: &Moto, report: &RunReport, problems: &mut Vec<String>) {
    let url = format!("{}/moto-api/data.json", moto.endpoint());
    let sent: Vec<serde_json::Value> = reaper_e2e::net::agent(Duration::from_secs(10))
        .get(&url)
        .call()
        .ok()
        // The whole emulator state, EC2's image catalogue included: past ureq's 10 MB default.
        .and_then(|mut r| {
            r.body_mut()
                .with_config()
                .limit(512 * 1024 * 1024)
                .read_to_string()
                .ok()
        })
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|d| d["ses"]["Message"].as_array().cloned())
        .unwrap_or_default();
    let to_kim = sent
        .iter()
        .filter(|m| m["destinations"]["ToAddresses"][0] == "kim@example.com")
        .count();
    if to_kim != 1 {
        problems.push(format!(
            "expected 1 e-mail to kim@example.com, SES recorded {to_kim} of {}: {}",
            sent.len(),
            sent.first().map(|m| m.to_string()).unwrap_or_default()
        ));
    }
    let ctx = reaper::render::notice::EmailContext {
        account: report.account.clone(),
        run_id: report.run_id.clone(),
        now: report.evaluated_at,
        owner_tag: "owner".into(),
        keeps: None,
    };
    let Some(notice) = reaper::render::notice::from_report(report)
        .into_iter()
        .find(|n| n.owner == "kim@example.com")
    else {
        problems.push("no owner notice for kim@example.com in the live report".into());
        return;
    };
    let email = reaper::render::notice::render_email(&notice, &ctx).payload;
    banner(&format!(
        "…and the e-mail its owner got (SES v2 from {NOTICE_FROM}; the emulator recorded {} message(s) to kim@example.com)",
        to_kim
    ));
    println!("Subject: {}\n\n{}", email.subject, email.text);
}

async fn run() -> Result<(), Vec<String>> {
    let started = Instant::now();
    let one = |e: String| vec![e];
    banner("Starting a local AWS (moto server), a Slack stand-in and a Lambda Runtime API on 127.0.0.1");
    let binary = reaper_binary();
    let moto = Moto::start();
    let sink = WebhookSink::start(WebhookMode::Ok);
    let runtime = RuntimeApi::start(REGION);
    // moto has no Price List: the stub answers GetProducts as AWS does, for the demo's types.
    let prices = reaper_e2e::PriceListStub::start(reaper_e2e::PricingMode::Ok);
    println!("moto      {} (pid {})", moto.endpoint(), moto.pid());
    println!("pricing   {} (the Price List stub)", prices.url());
    println!("slack     {} (records messages)", sink.url());
    println!(
        "runtime   {} (the Lambda Runtime API the real binary polls)",
        runtime.address()
    );
    let ec2 = moto.ec2(REGION);
    let bucket = "ec2-reaper-reports-demo";
    moto.create_bucket(REGION, bucket).await;
    // The sender of owner e-mails, verified as an operator would (SES v2).
    if let Err(e) = aws_sdk_sesv2::Client::new(&moto.sdk_config(REGION))
        .create_email_identity()
        .email_identity(NOTICE_FROM)
        .send()
        .await
    {
        return Err(one(format!(
            "CreateEmailIdentity {NOTICE_FROM}: {}",
            aws_sdk_sesv2::error::DisplayErrorContext(e)
        )));
    }

    use VerdictKind::*;
    let now = Utc::now();
    let past = format_date(now - TimeDelta::days(2));
    let yesterday = format_date(now - TimeDelta::hours(20));
    let in_3h = format_date(now + TimeDelta::hours(3));
    let in_20h = format_date(now + TimeDelta::hours(20));
    let next_month = format_date(now + TimeDelta::days(30));
    let mut first_wave = vec![
        seed("jupyter-ana", "ana", &[], Stop),
        seed("load-test-7", "bo", &[], Stop),
        seed("tmp", "unknown", &[], Stop),
        seed(
            "etl-staging",
            "carla",
            &[("termination_date", "2030-01-01")],
            Stop,
        ),
        seed("gpu-box", "dev", &[("lifetime", "3 days")], Stop),
        seed(
            "ci-runner-old",
            "ci",
            &[("Termination_Date", "2030-01-01T00:00:00Z")],
            Stop,
        ),
        seed("forgotten-1", "eve", &[], Noncompliant),
        seed("forgotten-2", "eve", &[("lifetime", "1w2d")], Noncompliant),
        // Past their 1-minute lifetime when first judged, outside the grace period: the stamp
        // gives notice (now + WARN_WINDOW) instead of terminating at once (SPEC §2).
        seed("spike-1", "finn", &[("lifetime", "1m")], Stamp),
        seed("spike-2", "finn", &[("lifetime", "1m")], Stamp),
    ];
    first_wave[6].stopped = true;
    first_wave[7].stopped = true;
    let mut second_wave = vec![
        seed("demo-old", "gus", &[("termination_date", &past)], Terminate),
        seed(
            "hackathon",
            "hana",
            &[("termination_date", &yesterday)],
            Terminate,
        ),
        seed("parked", "ivo", &[("termination_date", &past)], Terminate),
        seed(
            "ledger-db",
            "dba",
            &[("termination_date", &past)],
            Terminate,
        ),
        seed("scratch-1", "jo", &[("lifetime", "0m")], Terminate),
        seed("scratch-2", "jo", &[("lifetime", "0m")], Terminate),
        seed(
            "review-app",
            "kim@example.com",
            &[("termination_date", &in_3h)],
            Expiring,
        ),
        seed(
            "training-run",
            "lee",
            &[("termination_date", &in_20h)],
            Expiring,
        ),
        seed(
            "sandbox",
            "mo",
            &[("termination_date", "2030-01-01 10:00 UTC")],
            Keep,
        ),
        seed(
            "staging-web",
            "web",
            &[("termination_date", &next_month)],
            Keep,
        ),
        seed(
            "bastion",
            "ops",
            &[("termination_date", "indefinite")],
            Keep,
        ),
        seed("vpn", "ops", &[("termination_date", "indefinite")], Keep),
        seed("build-cache", "ci", &[("lifetime", "indefinite")], Stamp),
        seed("feature-x", "nia", &[("lifetime", "7d")], Stamp),
        seed("perf-lab", "oz", &[("lifetime", "2w")], Stamp),
        seed("notebook", "pat", &[("lifetime", "12h")], Stamp),
        seed(
            "eks-worker",
            "platform",
            &[("eks:nodegroup-name", "workers")],
            SkipManaged,
        ),
        seed(
            "karpenter-node",
            "platform",
            &[
                ("karpenter.sh/nodepool", "default"),
                ("termination_date", &past),
            ],
            SkipManaged,
        ),
        seed("just-launched-1", "quinn", &[], Wait),
        seed("just-launched-2", "quinn", &[("lifetime", "forever")], Wait),
    ];
    second_wave[2].stopped = true;
    second_wave[3].protected = true;

    banner("Seeding 30 instances in eu-west-1 (two waves a minute apart: moto cannot backdate launch times)");
    let mut expected: BTreeMap<String, (String, VerdictKind, bool)> = BTreeMap::new();
    for s in &first_wave {
        let id = launch(&ec2, s).await.map_err(one)?;
        expected.insert(id, (s.name.to_string(), s.expect, s.protected));
    }
    let first_at = Instant::now();
    println!(
        "first wave: {} instances (untagged, mistyped tags, 1-minute lifetimes); GRACE_PERIOD=1m",
        first_wave.len()
    );
    let wait = GRACE.saturating_sub(first_at.elapsed());
    println!(
        "waiting {} s so they outlive the grace period…",
        wait.as_secs()
    );
    tokio::time::sleep(wait).await;
    for s in &second_wave {
        let id = launch(&ec2, s).await.map_err(one)?;
        expected.insert(id, (s.name.to_string(), s.expect, s.protected));
    }
    println!(
        "second wave: {} instances (expired, expiring, kept, lifetimes, managed, just launched)",
        second_wave.len()
    );

    let mut env = moto.env(REGION);
    for (k, v) in [
        ("LIVEMODE", "true"),
        ("GRACE_PERIOD", "1m"),
        ("SLACKWEBHOOK", sink.url().as_str()),
        ("REPORT_BUCKET", bucket),
        ("NOTICE_FROM", NOTICE_FROM),
        ("AWS_ENDPOINT_URL_PRICING", prices.url().as_str()),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    let function = Function::spawn(&binary, &runtime, &env);
    let out_dir = workspace_root().join("out/demo");
    std::fs::create_dir_all(&out_dir).map_err(|e| one(format!("{}: {e}", out_dir.display())))?;

    let mut problems = Vec::new();
    let mut reports = Vec::new();
    for (title, event, file) in [
        ("Dry run: a manual invoke with {\"dry_run\": true} (LIVEMODE=true, but the payload forces a dry run)", json!({"dry_run": true}), "dry-run.json"),
        ("Live run: the hourly schedule event", fixture("schedule.json"), "live.json"),
    ] {
        banner(title);
        let before = sink.requests().len();
        let response = function.invoke(&runtime, event, Duration::from_secs(90), Duration::from_secs(300));
        let report: RunReport = match response {
            reaper_e2e::Invocation::Response(v) => serde_json::from_value(v).map_err(|e| one(format!("response is not a report: {e}")))?,
            other => return Err(one(format!("the function did not answer with a report: {other:?}\nstderr: {}", function.stderr()))),
        };
        print!("{}", reaper::report::table::render(std::slice::from_ref(&report)));
        // The ledger of savings (SPEC §8), priced by the stub.
        match &report.savings {
            Some(s) if s.priced() && s.saved.per_month.is_some_and(|m| !m.is_zero()) => {}
            other => problems.push(format!("{file}: no priced savings: {other:?}")),
        }
        match sink.requests().get(before) {
            Some(message) => {
                banner("…and the Slack message it posted");
                let text = reaper::render::slack_text::to_text(message);
                if !text.contains("save about $") && !text.contains("Saves about $") {
                    problems.push(format!("{file}: the Slack message has no savings line"));
                }
                println!("{text}");
            }
            None => problems.push(format!("{file}: no Slack message was posted")),
        }
        let path = out_dir.join(file);
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, json) {
            problems.push(format!("{}: {e}", path.display()));
        }
        println!(
            "report: {}  (also {})",
            path.display(),
            report.delivery.s3.as_deref().unwrap_or("not archived")
        );
        if report.mode == reaper::report::Mode::Live {
            show_owner_email(&moto, &report, &mut problems);
        }
        reports.push(report);
    }

    banner("Checking the result against the SPEC");
    let states: BTreeMap<String, InstanceStateName> = match ec2.describe_instances().send().await {
        Ok(out) => out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| Some((i.instance_id()?.to_string(), i.state()?.name()?.clone())))
            .collect(),
        Err(e) => return Err(one(format!("DescribeInstances: {e}"))),
    };
    let (dry, live) = (&reports[0], &reports[1]);
    for (id, (name, want, protected)) in &expected {
        for r in [dry, live] {
            let got = r
                .instances
                .iter()
                .find(|i| &i.id == id)
                .map_or(Keep, |i| i.verdict);
            if got != *want {
                problems.push(format!(
                    "{name} ({id}): {} verdict {got}, expected {want}",
                    r.mode
                ));
            }
        }
        let state = &states[id];
        let outcome = live
            .instances
            .iter()
            .find(|i| &i.id == id)
            .and_then(|i| i.outcome);
        let ok = match (want, protected) {
            (Terminate, true) => {
                *state == InstanceStateName::Running && outcome == Some(Outcome::Failed)
            }
            (Terminate, false) => {
                *state == InstanceStateName::Terminated && outcome == Some(Outcome::Done)
            }
            (Stop, _) => *state == InstanceStateName::Stopped && outcome == Some(Outcome::Done),
            (Noncompliant, _) => *state == InstanceStateName::Stopped,
            _ => *state == InstanceStateName::Running,
        };
        if !ok {
            problems.push(format!(
                "{name} ({id}): ended {state:?} with outcome {outcome:?} after the live run"
            ));
        }
    }
    let dry_mutations: u64 = ["TerminateInstances", "StopInstances", "CreateTags"]
        .iter()
        .filter_map(|op| dry.api_calls.get(*op))
        .sum();
    if dry_mutations > 0 {
        problems.push(format!("the dry run made {dry_mutations} mutating calls"));
    }
    if sink.requests().len() != 2 {
        problems.push(format!(
            "expected 2 Slack messages, got {}",
            sink.requests().len()
        ));
    }
    println!(
        "{} instances; dry run: {} mutating calls; live: {} terminated, {} stopped, {} stamped, {} failed (termination-protected); {:.0} s",
        expected.len(),
        dry_mutations,
        live.instances.iter().filter(|i| i.verdict == Terminate && i.outcome == Some(Outcome::Done)).count(),
        live.instances.iter().filter(|i| i.verdict == Stop && i.outcome == Some(Outcome::Done)).count(),
        live.instances.iter().filter(|i| i.verdict == Stamp && i.outcome == Some(Outcome::Done)).count(),
        live.outcome_count(Outcome::Failed),
        started.elapsed().as_secs_f64()
    );
    drop(function);
    drop(runtime);
    drop(sink);
    drop(moto);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
