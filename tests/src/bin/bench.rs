//! `make bench`: what a sweep costs in AWS API calls, measured side by side in one run.
//!
//! A 2000-instance fleet in 40 reservations (moto server, real SDK) is swept live twice from
//! identical seeds: once by the reaper (batched, 1000 ids per call, bisect on failure) and once by
//! an unbatched baseline that makes one call per instance and action (the shape of a naive
//! reaper). Prints calls by operation, the minimum (pages + one call per batch), wall time, ratios.

use chrono::{TimeDelta, Utc};
use reaper::adapters::ec2::Ec2Fleet;
use reaper::config::Config;
use reaper::policy::{format_date, Cap, Instance};
use reaper::ports::{ApiError, Deadline, Fleet, IdOutcome, Mutation};
use reaper::report::RunReport;
use reaper::run::{sweep, Mode, RunContext, RunRequest, Scope, TriggerKind};
use reaper_e2e::Moto;
use std::collections::BTreeMap;
use std::time::Instant;

const REGION: &str = "eu-west-1";
const RESERVATIONS: usize = 40;
const PER_RESERVATION: i32 = 50;

/// The baseline: the same decisions, one API call per instance per action.
struct Unbatched(Ec2Fleet);

impl Fleet for Unbatched {
    async fn list(
        &self,
        ids: Option<&[String]>,
        deadline: Deadline,
    ) -> Result<Vec<Instance>, ApiError> {
        self.0.list(ids, deadline).await
    }
    async fn apply(
        &self,
        mutation: Mutation<'_>,
        ids: &[String],
        deadline: Deadline,
    ) -> Vec<(String, IdOutcome)> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(
                self.0
                    .apply(mutation, std::slice::from_ref(id), deadline)
                    .await,
            );
        }
        out
    }
    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.0.api_calls()
    }
}

/// 40 reservations of 50: 16 with lifetime 0m, 8 expired, 8 untagged, 8 kept.
async fn seed(moto: &Moto) -> usize {
    let ec2 = moto.ec2(REGION);
    let past = format_date(Utc::now() - TimeDelta::days(1));
    for r in 0..RESERVATIONS {
        let tags: Vec<(&str, &str)> = match r % 5 {
            0 | 1 => vec![("lifetime", "0m")],
            2 => vec![("termination_date", &past)],
            3 => vec![],
            _ => vec![("termination_date", "indefinite")],
        };
        reaper_e2e::launch(&ec2, PER_RESERVATION, &tags).await;
    }
    RESERVATIONS * PER_RESERVATION as usize
}

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.rules.grace_period = TimeDelta::zero();
    cfg.caps.terminations = Cap::Unlimited;
    cfg.caps.stops = Cap::Unlimited;
    cfg
}

async fn measure<F: Fleet>(fleet: &F) -> (RunReport, f64) {
    let ctx = RunContext {
        run_id: "bench".into(),
        account: "123456789012".into(),
        region: REGION.into(),
    };
    let req = RunRequest {
        mode: Mode::Live,
        trigger: TriggerKind::Cli,
        scope: Scope::Sweep,
        now: Utc::now(),
        forecast: false,
        ids: None,
        deadline: Deadline::NONE,
        warnings: Vec::new(),
    };
    let started = Instant::now();
    let report = sweep(fleet, &config(), ctx, &req).await;
    (report, started.elapsed().as_secs_f64())
}

fn fleet(moto: &Moto) -> Ec2Fleet {
    Ec2Fleet::from_sdk(&moto.sdk_config(REGION))
}

#[tokio::main]
async fn main() {
    let moto = Moto::start();
    let n = seed(&moto).await;
    let (batched, t_batched) = measure(&fleet(&moto)).await;
    moto.reset();
    seed(&moto).await;
    let (naive, t_naive) = measure(&Unbatched(fleet(&moto))).await;

    assert_eq!(
        batched.counts, naive.counts,
        "both runs must reach the same verdicts and outcomes"
    );
    let count = |r: &RunReport, k| r.verdict_count(k);
    use reaper::policy::VerdictKind::*;
    let terminate = count(&batched, Terminate) as usize;
    let stop = count(&batched, Stop) as usize;
    let stamped_values = batched
        .instances
        .iter()
        .filter(|i| i.reason.contains("stamped"))
        .filter_map(|i| i.termination_date.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let batches = |k: usize| k.div_ceil(1000);
    let actioned = terminate + stop;
    // moto pages by reservation (40 < 1000: one page); AWS pages by instance (2000: two pages).
    let minimum: BTreeMap<&str, usize> = BTreeMap::from([
        ("DescribeInstances", 1),
        ("CreateTags", stamped_values + usize::from(stop > 0)),
        ("TerminateInstances", batches(terminate)),
        ("StopInstances", batches(stop)),
    ]);

    println!("ec2-reaper bench: {n} instances in {RESERVATIONS} reservations (moto server, real SDK), live sweep, caps unlimited");
    let verdicts: Vec<String> = batched
        .counts
        .verdicts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("verdicts: {}", verdicts.join(", "));
    println!();
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>12}",
        "operation", "minimum", "reaper", "unbatched", "unbatched/reaper"
    );
    let mut ops: Vec<&str> = minimum.keys().copied().collect();
    ops.sort();
    let (mut sum_min, mut sum_b, mut sum_n) = (0, 0u64, 0u64);
    for op in ops {
        let b = batched.api_calls.get(op).copied().unwrap_or(0);
        let u = naive.api_calls.get(op).copied().unwrap_or(0);
        sum_min += minimum[op];
        sum_b += b;
        sum_n += u;
        println!(
            "{op:<20} {:>10} {b:>10} {u:>10} {:>11.1}x",
            minimum[op],
            u as f64 / b.max(1) as f64
        );
    }
    println!(
        "{:<20} {sum_min:>10} {sum_b:>10} {sum_n:>10} {:>11.1}x",
        "total",
        sum_n as f64 / sum_b.max(1) as f64
    );
    println!();
    println!(
        "wall time: reaper {t_batched:.2} s, unbatched {t_naive:.2} s, ratio {:.1}x (same machine, same moto, one run)",
        t_naive / t_batched.max(1e-9)
    );
    println!(
        "reaper over minimum: +{} DescribeInstances = the re-check before acting ({} action ids, one call per 1000);",
        batched.api_calls.get("DescribeInstances").copied().unwrap_or(0) as usize - minimum["DescribeInstances"],
        actioned + count(&batched, Stamp) as usize
    );
    println!(
        "CreateTags: one call per distinct stamped date ({stamped_values} launch seconds) + one per stop reason; on AWS the listing is 2 pages (it counts instances, moto counts reservations)."
    );
}
