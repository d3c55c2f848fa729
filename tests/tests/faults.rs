//! Fault injection and deadlines (issue 10): the real SDK talks to moto through the loopback fault
//! proxy (`reaper_e2e::proxy`), and the real `reaper` binary meets hung sinks under a short
//! Lambda deadline.
//!
//! moto cannot backdate LaunchTime, so "past the grace period" is made real by waiting a few
//! seconds with a short grace period, and dates are written relative to the run's `now`.

use aws_sdk_ec2::types::InstanceStateName;
use chrono::{DateTime, TimeDelta, Utc};
use reaper::adapters::ec2::{Ec2Fleet, MAX_PAGES};
use reaper::app::sweep;
use reaper::config::Config;
use reaper::policy::{format_date, Cap, VerdictKind};
use reaper::ports::Deadline;
use reaper::report::{Outcome, RunReport};
use reaper::run::{RunContext, RunRequest};
use reaper_e2e::proxy::{Fault, Proxy};
use reaper_e2e::{
    fixture, reaper_binary, Function, Invocation, Moto, RuntimeApi, WebhookMode, WebhookSink,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";
const MUTATING: [&str; 3] = ["TerminateInstances", "StopInstances", "CreateTags"];

/// The SDK configuration the reaper would load (its own retry and timeout policy), pointed at
/// the proxy. Only the backoff is shortened: 8 attempts at the SDK's 1 s base backoff would make
/// a 50 % fault run take minutes; the number of attempts, which decides outcomes, is the reaper's.
fn sdk_via(moto: &Moto, proxy: &Proxy) -> aws_config::SdkConfig {
    moto.sdk_config(REGION)
        .into_builder()
        .endpoint_url(proxy.endpoint())
        .retry_config(
            reaper::adapters::retry_config()
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(500)),
        )
        .timeout_config(reaper::adapters::timeout_config())
        .build()
}

fn request(live: bool, now: DateTime<Utc>, deadline: Deadline) -> RunRequest {
    RunRequest::scheduled(live, now, deadline)
}

async fn run(fleet: &Ec2Fleet, cfg: &Config, req: &RunRequest) -> RunReport {
    let ctx = RunContext {
        run_id: "faults".into(),
        account: "123456789012".into(),
        region: REGION.into(),
    };
    sweep(fleet, cfg, ctx, req).await
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: InstanceStateName,
    tags: BTreeMap<String, String>,
    launch: DateTime<Utc>,
}

/// Every instance as moto sees it, straight (not through the proxy), by id.
async fn all(ec2: &aws_sdk_ec2::Client) -> BTreeMap<String, Seen> {
    let mut seen = BTreeMap::new();
    let mut token = None;
    loop {
        let out = ec2
            .describe_instances()
            .set_next_token(token)
            .send()
            .await
            .expect("DescribeInstances straight to moto");
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let lt = i.launch_time().expect("moto sets LaunchTime");
            seen.insert(
                i.instance_id().expect("an id").to_string(),
                Seen {
                    state: i.state().and_then(|s| s.name()).expect("a state").clone(),
                    tags: i
                        .tags()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or_default().to_string(),
                                t.value().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
                    launch: DateTime::from_timestamp(lt.secs(), lt.subsec_nanos())
                        .expect("a valid LaunchTime"),
                },
            );
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return seen,
        }
    }
}

async fn protect(ec2: &aws_sdk_ec2::Client, id: &str) {
    // moto ignores DisableApiTermination on RunInstances; it honours the attribute.
    ec2.modify_instance_attribute()
        .instance_id(id)
        .disable_api_termination(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .expect("ModifyInstanceAttribute");
}

/// Launches one reservation of `n` instances named `{role}-{k}` with `tags`; returns the ids.
async fn launch_role(
    ec2: &aws_sdk_ec2::Client,
    names: &mut BTreeMap<String, String>,
    role: &str,
    n: usize,
    tags: &[(&str, &str)],
) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let k = names.values().filter(|v| v.starts_with(role)).count();
        let name = format!("{role}-{k}");
        let mut t: Vec<(&str, &str)> = vec![("Name", name.as_str())];
        t.extend_from_slice(tags);
        let id = reaper_e2e::launch(ec2, 1, &t).await.remove(0);
        names.insert(id.clone(), name);
        ids.push(id);
    }
    ids
}

const GRACE: i64 = 6;

/// The matrix's fleet: every SPEC §3 verdict, one instance per reservation (so a real listing
/// would page by reservation), in roles whose names survive a fresh launch. Returns id -> name
/// and the `now` to judge at (every "old" instance past the grace period, every "new" one in it).
async fn seed_fleet(ec2: &aws_sdk_ec2::Client) -> (BTreeMap<String, String>, DateTime<Utc>) {
    let mut names = BTreeMap::new();
    // Old (launched first, past the grace period when judged).
    launch_role(ec2, &mut names, "stop", 4, &[]).await;
    launch_role(
        ec2,
        &mut names,
        "typo",
        2,
        &[("termination_date", "2030-01-01")],
    )
    .await;
    for id in launch_role(ec2, &mut names, "noncompliant", 2, &[]).await {
        ec2.stop_instances()
            .instance_ids(&id)
            .send()
            .await
            .expect("StopInstances");
    }
    let old_done = Utc::now();
    let base = old_done + TimeDelta::seconds(GRACE + 2);
    let past = format_date(base - TimeDelta::hours(1));
    let soon = format_date(base + TimeDelta::hours(2));
    // The expired ones were announced two days ago: the notice gate lets them go.
    let told = format!(
        "terminate {past} told {}",
        format_date(base - TimeDelta::days(2))
    );
    launch_role(
        ec2,
        &mut names,
        "managed",
        2,
        &[
            ("karpenter.sh/nodepool", "default"),
            ("termination_date", &past),
        ],
    )
    .await;
    launch_role(
        ec2,
        &mut names,
        "keep-date",
        1,
        &[("termination_date", "indefinite")],
    )
    .await;
    launch_role(
        ec2,
        &mut names,
        "keep-later",
        1,
        &[("termination_date", "2099-01-01T00:00:00Z")],
    )
    .await;
    launch_role(
        ec2,
        &mut names,
        "keep-life",
        1,
        &[("lifetime", "indefinite")],
    )
    .await;
    launch_role(
        ec2,
        &mut names,
        "expired",
        4,
        &[
            ("termination_date", &past),
            ("reaper:announced", &told),
            ("owner", "ana"),
        ],
    )
    .await;
    for id in launch_role(
        ec2,
        &mut names,
        "expired-stopped",
        2,
        &[("termination_date", &past), ("reaper:announced", &told)],
    )
    .await
    {
        ec2.stop_instances()
            .instance_ids(&id)
            .send()
            .await
            .expect("StopInstances");
    }
    launch_role(
        ec2,
        &mut names,
        "expiring",
        2,
        &[("termination_date", &soon)],
    )
    .await;
    launch_role(ec2, &mut names, "stamp", 4, &[("lifetime", "1d")]).await;
    for id in launch_role(
        ec2,
        &mut names,
        "protected",
        1,
        &[("termination_date", &past), ("reaper:announced", &told)],
    )
    .await
    {
        protect(ec2, &id).await;
    }
    let wait = base - Utc::now();
    if let Ok(wait) = wait.to_std() {
        tokio::time::sleep(wait).await;
    }
    // New (in the grace period when judged), and `0m` lifetimes, due as soon as launched.
    launch_role(ec2, &mut names, "zero", 3, &[("lifetime", "0m")]).await;
    launch_role(ec2, &mut names, "wait", 3, &[]).await;
    (names, base.max(Utc::now()))
}

/// A tag value with the run's times replaced by names, so runs on fresh fleets compare.
fn normalise(value: &str, now: DateTime<Utc>, launch: DateTime<Utc>) -> String {
    // `reaper:announced`: `<action> <date> told|set|warned <when>`, each time named on its own.
    if let [deed, date, how, when] = value.split(' ').collect::<Vec<_>>()[..] {
        // When it was told or set is the run's own clock: any time from launch to now is the
        // same outcome (a fast run writes its launch second, a slow one a later one).
        let run_time = DateTime::parse_from_rfc3339(when).is_ok_and(|t| {
            let t = t.with_timezone(&Utc);
            t >= launch - TimeDelta::seconds(1) && t <= now + TimeDelta::seconds(5)
        });
        return format!(
            "{deed} {} {how} {}",
            normalise(date, now, launch),
            if run_time {
                "during-the-run".to_string()
            } else {
                normalise(when, now, launch)
            }
        );
    }
    let base_candidates = [("base-1h", -3600), ("base+2h", 7200), ("base-2d", -172_800)];
    // `base` (the seed's reference) is within a second or two of `now`; try a few seconds.
    for (label, offset) in base_candidates {
        for drift in -5..=5 {
            if value == format_date(now + TimeDelta::seconds(offset + drift)) {
                return label.to_string();
            }
        }
    }
    if value == format_date(now) && value != format_date(launch) {
        return "now".into();
    }
    if value == format_date(launch) {
        return "launch".into();
    }
    if value == format_date(launch + TimeDelta::days(1)) {
        return "launch+1d".into();
    }
    // SPEC §2: outside the grace period a stamp is never less than WARN_WINDOW (1d) away.
    for drift in -5..=5 {
        if value == format_date(now + TimeDelta::days(1) + TimeDelta::seconds(drift)) {
            return "now+1d".into();
        }
    }
    value.to_string()
}

/// What one run left and said, by role name: final EC2 state and tags, and the report's verdict,
/// outcome and error kind per instance, plus the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Picture {
    ec2: BTreeMap<String, (InstanceStateName, BTreeMap<String, String>)>,
    report: BTreeMap<String, (VerdictKind, Option<Outcome>, Option<String>)>,
    counts: reaper::report::Counts,
    judged: u64,
    errors: Vec<String>,
    circuits: usize,
}

async fn picture(
    ec2: &aws_sdk_ec2::Client,
    names: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    r: &RunReport,
) -> Picture {
    let seen = all(ec2).await;
    let ec2_pic = seen
        .iter()
        .map(|(id, s)| {
            let tags = s
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), normalise(v, now, s.launch)))
                .collect();
            (names[id].clone(), (s.state.clone(), tags))
        })
        .collect();
    let report = r
        .instances
        .iter()
        .map(|i| {
            // The AWS error's code, without its request-specific message.
            let error = i.error.as_ref().map(|e| {
                let mut e = e.clone();
                for (id, name) in names {
                    e = e.replace(id, name);
                }
                e.split(": ").take(2).collect::<Vec<_>>().join(": ")
            });
            (names[&i.id].clone(), (i.verdict, i.outcome, error))
        })
        .collect();
    Picture {
        ec2: ec2_pic,
        report,
        counts: r.counts.clone(),
        judged: r.instances_judged,
        errors: r.errors.clone(),
        circuits: r.circuits.len(),
    }
}

fn matrix_config() -> Config {
    let mut cfg = Config::default();
    cfg.rules.grace_period = TimeDelta::seconds(GRACE);
    cfg
}

/// The 10 % cell's seed: with ~15 requests per run, some seeds inject nothing at 10 %.
const SEED_10: u64 = 11;

/// One cell: a fresh fleet, a live sweep through the proxy with `faults`, its picture.
async fn cell(
    moto: &Moto,
    proxy: &Proxy,
    rate: f64,
    seed: u64,
) -> (Picture, u64, Duration, BTreeMap<String, u64>) {
    moto.reset();
    proxy.clear_faults();
    let ec2 = moto.ec2(REGION);
    let (names, now) = seed_fleet(&ec2).await;
    let fleet = Ec2Fleet::from_sdk(&sdk_via(moto, proxy));
    proxy.reset_counts();
    if rate > 0.0 {
        // Four rules tried in turn: each fires at q so that one of them fires at `rate`.
        let faults = [
            Fault::Throttle,
            Fault::Unavailable,
            Fault::ResetBeforeForward,
            Fault::ResetAfterForward,
        ];
        let q = 1.0 - (1.0 - rate).powf(1.0 / faults.len() as f64);
        for (k, f) in faults.into_iter().enumerate() {
            proxy.fault_rate("*", f, q, seed.wrapping_mul(31).wrapping_add(k as u64 + 1));
        }
    }
    let started = Instant::now();
    let r = run(
        &fleet,
        &matrix_config(),
        &request(true, now, Deadline::NONE),
    )
    .await;
    let wall = started.elapsed();
    let calls = proxy.total_calls();
    let injected = proxy.injected();
    proxy.clear_faults();
    (picture(&ec2, &names, now, &r).await, calls, wall, injected)
}

/// Issue 10, fault injection: the same fleet swept fault-free and under 10/30/50 % of requests
/// throttled, refused with 503, reset before or after forwarding (seeded) ends in the same EC2
/// state, the same tags and the same report outcomes.
#[tokio::test(flavor = "multi_thread")]
async fn outcomes_under_10_30_50_percent_faults_equal_the_fault_free_run() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let (clean, calls, wall, _) = cell(&moto, &proxy, 0.0, 0).await;

    // The fault-free run itself is what SPEC §3 says, so equality below means "right".
    let outcome_of = |role: &str| clean.report[role].1;
    for role in [
        "expired-0",
        "expired-3",
        "expired-stopped-1",
        "zero-2",
        "stamp-0",
        "stop-3",
        "typo-1",
    ] {
        assert_eq!(outcome_of(role), Some(Outcome::Done), "{role}: {clean:#?}");
    }
    assert_eq!(outcome_of("protected-0"), Some(Outcome::Failed));
    for (role, verdict) in [
        ("managed-0", VerdictKind::SkipManaged),
        ("expiring-0", VerdictKind::Expiring),
        ("wait-0", VerdictKind::Wait),
        ("noncompliant-0", VerdictKind::Noncompliant),
        ("stamp-0", VerdictKind::Stamp),
        ("stop-0", VerdictKind::Stop),
        ("typo-0", VerdictKind::Stop),
        ("zero-0", VerdictKind::Terminate),
        ("expired-0", VerdictKind::Terminate),
    ] {
        assert_eq!(clean.report[role].0, verdict, "{role}");
    }
    assert_eq!(clean.judged, 32);
    assert_eq!(clean.counts.verdicts[&VerdictKind::Keep], 2);
    assert_eq!(clean.report["keep-life-0"].0, VerdictKind::Stamp);
    assert_eq!(clean.ec2["keep-life-0"].1["termination_date"], "indefinite");
    assert_eq!(clean.ec2["expired-0"].0, InstanceStateName::Terminated);
    assert_eq!(clean.ec2["zero-0"].1["termination_date"], "launch");
    // Launched before the grace period ended: stamped now + WARN_WINDOW, so the owner hears first.
    assert_eq!(clean.ec2["stamp-0"].1["termination_date"], "now+1d");
    assert_eq!(clean.ec2["stop-0"].1["reaper:stopped_at"], "now");
    assert!(clean.errors.is_empty(), "{:?}", clean.errors);

    let mut rows = vec![format!(
        "{:>5} | {:^14} | {:>11} | {:>8} | injected",
        "rate", "outcomes equal", "proxy calls", "wall"
    )];
    rows.push(format!(
        "{:>4}% | {:^14} | {:>11} | {:>7.1}s | -",
        0,
        "(reference)",
        calls,
        wall.as_secs_f64()
    ));
    let mut diffs = Vec::new();
    for (rate, seed) in [(0.10, SEED_10), (0.30, 30), (0.50, 50)] {
        let (pic, calls, wall, injected) = cell(&moto, &proxy, rate, seed).await;
        let equal = pic == clean;
        // A cell where nothing fired would prove nothing: the seeds are chosen so every cell
        // injects, and this says so if the proxy's generator ever changes.
        assert!(
            !injected.is_empty(),
            "{}%: no fault was injected",
            rate * 100.0
        );
        let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
        for (key, n) in &injected {
            let kind = key.rsplit(' ').next().unwrap_or(key);
            *by_kind.entry(kind).or_default() += n;
        }
        let injected = by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(format!(
            "{:>4}% | {:^14} | {:>11} | {:>7.1}s | {injected}",
            (rate * 100.0) as u32,
            if equal { "yes" } else { "NO" },
            calls,
            wall.as_secs_f64()
        ));
        if !equal {
            let differ: Vec<String> = pic
                .report
                .iter()
                .filter(|(k, v)| clean.report.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: {v:?} (fault-free {:?})", clean.report.get(k)))
                .chain(
                    pic.ec2
                        .iter()
                        .filter(|(k, v)| clean.ec2.get(*k) != Some(v))
                        .map(|(k, v)| {
                            format!("{k}: EC2 {v:?} (fault-free {:?})", clean.ec2.get(k))
                        }),
                )
                .collect();
            diffs.push(format!(
                "{}%: {differ:#?} errors {:?}",
                rate * 100.0,
                pic.errors
            ));
        }
    }
    println!("fault matrix (Throttle, Unavailable, ResetBeforeForward, ResetAfterForward mixed):");
    for row in &rows {
        println!("  {row}");
    }
    assert!(
        diffs.is_empty(),
        "outcomes differ under faults:\n{}",
        diffs.join("\n")
    );
}

/// A small fleet for the listing and deadline tests: 3 expired, 2 untagged (grace 0), 1 keep.
async fn small_fleet(ec2: &aws_sdk_ec2::Client) -> (Vec<String>, Vec<String>, String) {
    let past = format_date(Utc::now() - TimeDelta::hours(1));
    // Announced two days ago: the notice gate lets them go.
    let told = format!(
        "terminate {past} told {}",
        format_date(Utc::now() - TimeDelta::days(2))
    );
    let mut expired = Vec::new();
    for _ in 0..3 {
        expired.extend(
            reaper_e2e::launch(
                ec2,
                1,
                &[("termination_date", &past), ("reaper:announced", &told)],
            )
            .await,
        );
    }
    let mut untagged = Vec::new();
    for _ in 0..2 {
        untagged.extend(reaper_e2e::launch(ec2, 1, &[]).await);
    }
    let keep = reaper_e2e::launch(ec2, 1, &[("termination_date", "indefinite")])
        .await
        .remove(0);
    (expired, untagged, keep)
}

fn small_config() -> Config {
    let mut cfg = Config::default();
    cfg.rules.grace_period = TimeDelta::zero();
    cfg
}

fn states(seen: &BTreeMap<String, Seen>) -> BTreeMap<String, InstanceStateName> {
    seen.iter()
        .map(|(k, v)| (k.clone(), v.state.clone()))
        .collect()
}

/// Issue 10: a later page that fails (every attempt) aborts the run: nothing judged, the error
/// in the report, no mutating call, EC2 untouched. The proxy gives the first page a NextToken
/// (moto pages only past 1000 reservations), so the second request is a real later-page request.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_later_page_aborts_the_run_and_nothing_is_acted_on() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let ec2 = moto.ec2(REGION);
    small_fleet(&ec2).await;
    let before = states(&all(&ec2).await);
    proxy.fault_script("DescribeInstances", [Some(Fault::EndlessNextToken)]);
    proxy.fault_rate("DescribeInstances", Fault::FailPage, 1.0, 7);
    let fleet = Ec2Fleet::from_sdk(&sdk_via(&moto, &proxy));
    let r = run(
        &fleet,
        &small_config(),
        &request(true, Utc::now(), Deadline::NONE),
    )
    .await;

    assert_eq!(r.instances_judged, 0);
    assert!(r.instances.is_empty());
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with("listing instances failed, nothing was judged: InternalError: "),
        "{}",
        r.errors[0]
    );
    let calls = proxy.calls();
    for op in MUTATING {
        assert!(!calls.contains_key(op), "{op} called: {calls:?}");
    }
    // The first page once, then every attempt of the reaper's retry policy on the second.
    let attempts = u64::from(reaper::adapters::retry_config().max_attempts());
    assert_eq!(calls["DescribeInstances"], 1 + attempts, "{calls:?}");
    assert_eq!(proxy.injected()["DescribeInstances FailPage"], attempts);
    assert_eq!(states(&all(&ec2).await), before);
}

/// Issue 10 finding 1: a NextToken that never ends is an error, not a hang, and the report comes
/// back before the deadline.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_next_token_ends_with_an_error_within_the_deadline() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let ec2 = moto.ec2(REGION);
    small_fleet(&ec2).await;
    let before = states(&all(&ec2).await);
    proxy.fault_rate("DescribeInstances", Fault::EndlessNextToken, 1.0, 3);
    let fleet = Ec2Fleet::from_sdk(&sdk_via(&moto, &proxy));
    let budget = Duration::from_secs(40);
    let started = Instant::now();
    let r = run(
        &fleet,
        &small_config(),
        &request(true, Utc::now(), Deadline::after(budget)),
    )
    .await;
    let took = started.elapsed();
    println!(
        "endless NextToken: {} DescribeInstances calls, report after {:.1} s",
        proxy.calls()["DescribeInstances"],
        took.as_secs_f64()
    );

    assert!(
        took < budget,
        "the report came after the deadline: {took:?}"
    );
    assert_eq!(r.instances_judged, 0);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let pages = proxy.calls()["DescribeInstances"];
    // Either bound may end it first on this machine: the page bound, or the deadline's margin.
    let expected = if pages as usize >= MAX_PAGES {
        "listing instances failed, nothing was judged: EndlessPagination: "
    } else {
        "listing instances failed, nothing was judged: OutOfTime: "
    };
    assert!(
        r.errors[0].starts_with(expected),
        "{} ({pages} pages)",
        r.errors[0]
    );
    assert!(pages as usize <= MAX_PAGES, "{pages} pages");
    for op in MUTATING {
        assert!(!proxy.calls().contains_key(op));
    }
    assert_eq!(states(&all(&ec2).await), before);
}

/// Issue 10 finding 5: pages that overlap are de-duplicated: each instance judged once, and a
/// termination cap equal to the real number of expired instances is not tripped by the repeats.
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_pages_are_judged_once_and_do_not_trip_the_cap() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let ec2 = moto.ec2(REGION);
    let (expired, untagged, keep) = small_fleet(&ec2).await;
    // Page 2 is page 1 again, plus the last reservation of page 1 once more.
    proxy.fault_script(
        "DescribeInstances",
        [Some(Fault::EndlessNextToken), Some(Fault::OverlappingPage)],
    );
    let fleet = Ec2Fleet::from_sdk(&sdk_via(&moto, &proxy));
    let mut cfg = small_config();
    cfg.caps.terminations = Cap::Limited(expired.len() as u64);
    cfg.caps.stops = Cap::Limited(untagged.len() as u64);
    let r = run(&fleet, &cfg, &request(true, Utc::now(), Deadline::NONE)).await;

    assert_eq!(proxy.injected()["DescribeInstances OverlappingPage"], 1);
    assert_eq!(r.instances_judged, 6);
    assert_eq!(
        r.instances.len(),
        5,
        "keep is not listed: {:#?}",
        r.instances
    );
    assert!(r.circuits.is_empty(), "{:?}", r.circuits);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.counts.verdicts[&VerdictKind::Terminate], 3);
    assert_eq!(r.counts.verdicts[&VerdictKind::Stop], 2);
    assert_eq!(r.counts.verdicts[&VerdictKind::Keep], 1);
    assert_eq!(r.counts.outcomes[&Outcome::Done], 5);
    let after = all(&ec2).await;
    for id in &expired {
        assert_eq!(after[id].state, InstanceStateName::Terminated, "{id}");
    }
    for id in &untagged {
        assert!(
            matches!(
                after[id].state,
                InstanceStateName::Stopped | InstanceStateName::Stopping
            ),
            "{id}"
        );
    }
    assert_eq!(after[&keep].state, InstanceStateName::Running);
}

/// Issue 10 finding 1: a DescribeInstances that never answers cannot hold the run past its
/// deadline: the report comes back in time, with the listing error, and nothing is acted on.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_listing_returns_the_report_before_the_deadline() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let ec2 = moto.ec2(REGION);
    small_fleet(&ec2).await;
    let before = states(&all(&ec2).await);
    proxy.fault_rate("DescribeInstances", Fault::Hang, 1.0, 1);
    let fleet = Ec2Fleet::from_sdk(&sdk_via(&moto, &proxy));
    let budget = Duration::from_secs(35);
    let started = Instant::now();
    let r = run(
        &fleet,
        &small_config(),
        &request(true, Utc::now(), Deadline::after(budget)),
    )
    .await;
    let took = started.elapsed();
    println!(
        "hung DescribeInstances: report after {:.1} s of a {} s deadline",
        took.as_secs_f64(),
        budget.as_secs()
    );

    assert!(
        took < budget,
        "the report came after the deadline: {took:?}"
    );
    assert_eq!(r.instances_judged, 0);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with("listing instances failed, nothing was judged: Timeout: "),
        "{}",
        r.errors[0]
    );
    for op in MUTATING {
        assert!(!proxy.calls().contains_key(op));
    }
    assert_eq!(states(&all(&ec2).await), before);
}

/// Issue 10 findings 1 and 3: a TerminateInstances that never answers: the report comes back in
/// time; the ids whose call went out are `unknown` (the re-describe found no time), the stops
/// that never started are `deferred`; nothing is `failed`, and EC2 is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_termination_is_unknown_never_failed_and_the_report_is_in_time() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let ec2 = moto.ec2(REGION);
    let (expired, untagged, _) = small_fleet(&ec2).await;
    let before = states(&all(&ec2).await);
    proxy.fault_rate("TerminateInstances", Fault::Hang, 1.0, 1);
    let fleet = Ec2Fleet::from_sdk(&sdk_via(&moto, &proxy));
    let budget = Duration::from_secs(35);
    let started = Instant::now();
    let r = run(
        &fleet,
        &small_config(),
        &request(true, Utc::now(), Deadline::after(budget)),
    )
    .await;
    let took = started.elapsed();
    println!(
        "hung TerminateInstances: report after {:.1} s of a {} s deadline",
        took.as_secs_f64(),
        budget.as_secs()
    );

    assert!(
        took < budget,
        "the report came after the deadline: {took:?}"
    );
    let entry = |id: &str| {
        r.instances
            .iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("{id} not in the report"))
    };
    for id in &expired {
        let e = entry(id);
        assert_eq!(e.outcome, Some(Outcome::Unknown), "{e:?}");
        let err = e.error.as_deref().unwrap_or_default();
        assert!(
            err.starts_with(
                "terminate: the answer was lost and EC2 does not show it yet: Timeout: "
            ),
            "{err}"
        );
    }
    for id in &untagged {
        assert_eq!(
            entry(id).outcome,
            Some(Outcome::Deferred),
            "{:?}",
            entry(id)
        );
    }
    assert_eq!(r.counts.outcomes.get(&Outcome::Failed), None);
    assert_eq!(r.counts.outcomes[&Outcome::Unknown], 3);
    assert_eq!(r.counts.outcomes[&Outcome::Deferred], 2);
    assert_eq!(proxy.calls().get("StopInstances"), None);
    // The proxy never forwarded the hung call.
    assert_eq!(proxy.forwarded().get("TerminateInstances"), None);
    assert_eq!(states(&all(&ec2).await), before);
}

/// Issue 10 finding 1, on Lambda: the real binary with a short function deadline, a Slack webhook
/// that never answers and an S3 PutObject that hangs (through the proxy): the response (the
/// report) comes back before the deadline, and the report's log line and metrics line were on
/// stdout before either sink was tried.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_with_hung_sinks_answers_before_its_deadline_and_logs_first() {
    let bucket = "reaper-reports";
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    proxy.fault_rate("PutObject", Fault::Hang, 1.0, 1);
    let sink = WebhookSink::start(WebhookMode::Hang);
    let runtime = RuntimeApi::start(REGION);
    let mut env = moto.env(REGION);
    env.extend([
        ("AWS_ENDPOINT_URL_S3".to_string(), proxy.endpoint()),
        ("REPORT_BUCKET".to_string(), bucket.to_string()),
        ("SLACKWEBHOOK".to_string(), sink.url()),
        ("GRACE_PERIOD".to_string(), "0m".to_string()),
        ("LIVEMODE".to_string(), "true".to_string()),
    ]);
    moto.create_bucket(REGION, bucket).await;
    let ec2 = moto.ec2(REGION);
    let past = format_date(Utc::now() - TimeDelta::hours(1));
    // Announced two days ago: the notice gate lets it go.
    let told = format!(
        "terminate {past} told {}",
        format_date(Utc::now() - TimeDelta::days(2))
    );
    let expired = reaper_e2e::launch(
        &ec2,
        1,
        &[("termination_date", &past), ("reaper:announced", &told)],
    )
    .await
    .remove(0);
    let function = Function::spawn(&reaper_binary(), &runtime, &env);

    let deadline = Duration::from_secs(34);
    let log_line = "\"message\":\"run report\"";
    let metrics_line = "\"_aws\"";
    let delivered = "\"message\":\"report delivered\"";
    let (invocation, took, at_slack, at_s3) = std::thread::scope(|s| {
        let invoker = s.spawn(|| {
            let started = Instant::now();
            let inv = function.invoke(
                &runtime,
                fixture("schedule.json"),
                Duration::from_secs(60),
                deadline,
            );
            (inv, started.elapsed())
        });
        // What stdout held at the moment each sink first saw a request.
        let mut at_slack = None;
        let mut at_s3 = None;
        while !invoker.is_finished() && (at_slack.is_none() || at_s3.is_none()) {
            if at_slack.is_none() && !sink.recorded().is_empty() {
                at_slack = Some(function.stdout());
            }
            if at_s3.is_none() && proxy.calls().contains_key("PutObject") {
                at_s3 = Some(function.stdout());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (inv, took) = invoker.join().expect("the invoking thread");
        (inv, took, at_slack, at_s3)
    });
    println!(
        "hung Slack and S3: response after {:.1} s of a {} s deadline",
        took.as_secs_f64(),
        deadline.as_secs()
    );

    let report: RunReport = match invocation {
        Invocation::Response(v) => serde_json::from_value(v).expect("a run report"),
        other => panic!("no response: {other:?}\nstderr: {}", function.stderr()),
    };
    assert!(
        took < deadline,
        "the response came after the deadline: {took:?}"
    );
    let at_slack = at_slack.expect("Slack was tried");
    let at_s3 = at_s3.expect("S3 was tried");
    for (sink_name, stdout) in [("slack", &at_slack), ("s3", &at_s3)] {
        assert!(
            stdout.contains(log_line),
            "{sink_name} tried before the log line: {stdout}"
        );
        assert!(
            stdout.contains(metrics_line),
            "{sink_name} tried before the metrics line: {stdout}"
        );
        assert!(!stdout.contains(delivered), "{sink_name}: {stdout}");
    }
    assert_eq!(report.instances.len(), 1);
    assert_eq!(report.instances[0].id, expired);
    assert_eq!(report.instances[0].outcome, Some(Outcome::Done));
    // S3 first, with a bounded share of the time (Slack still gets tried), and not linked from
    // Slack since it was not written; not retried after it failed. The evidence records, after
    // Slack, hang too and cost only what the deadline left (docs/EVIDENCE.md).
    assert_eq!(report.errors.len(), 3, "{:?}", report.errors);
    assert!(
        report.errors[2].starts_with("evidence: Timeout: PutObject"),
        "{:?}",
        report.errors
    );
    assert!(report.errors[0].starts_with("s3: "), "{:?}", report.errors);
    assert!(
        report.errors[1].starts_with("slack: "),
        "{:?}",
        report.errors
    );
    assert_eq!(
        proxy.calls().get("PutObject"),
        Some(&2),
        "the report, the records"
    );
    for posted in sink.recorded() {
        assert!(
            !posted.body.to_string().contains("s3://"),
            "{}",
            posted.body
        );
    }
    assert!(matches!(
        report.delivery.slack,
        Some(reaper::report::SlackStatus::Failed(_))
    ));
    assert_eq!(report.delivery.s3, None);
    assert_eq!(proxy.forwarded().get("PutObject"), None);
    // The webhook URL is a secret: not in the report nor on stdout.
    assert!(!serde_json::to_string(&report)
        .unwrap()
        .contains(&sink.url()));
    assert!(!function.stdout().contains(&sink.url()));
    let after = all(&ec2).await;
    assert!(matches!(
        after[&expired].state,
        InstanceStateName::Terminated | InstanceStateName::ShuttingDown
    ));
}

/// Issue 10 finding 3: every mutating call's answer is lost after EC2 acted (each of the SDK's
/// attempts forwarded, then reset): the re-describe shows the actions, so every outcome is
/// `done`, never `failed`, and the report carries no error.
#[tokio::test(flavor = "multi_thread")]
async fn answers_lost_after_the_action_are_confirmed_done_by_the_re_describe() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let ec2 = moto.ec2(REGION);
    let (expired, untagged, _) = small_fleet(&ec2).await;
    let stamp = reaper_e2e::launch(&ec2, 1, &[("lifetime", "1d")])
        .await
        .remove(0);
    for op in MUTATING {
        proxy.fault_rate(op, Fault::ResetAfterForward, 1.0, 5);
    }
    let fleet = Ec2Fleet::from_sdk(&sdk_via(&moto, &proxy));
    let r = run(
        &fleet,
        &small_config(),
        &request(true, Utc::now(), Deadline::NONE),
    )
    .await;

    let attempts = u64::from(reaper::adapters::retry_config().max_attempts());
    let injected = proxy.injected();
    assert_eq!(
        injected["TerminateInstances ResetAfterForward"], attempts,
        "{injected:?}"
    );
    assert_eq!(
        injected["StopInstances ResetAfterForward"], attempts,
        "{injected:?}"
    );
    // The stamp, then the stop reason tags: two CreateTags calls, every attempt lost.
    assert_eq!(
        injected["CreateTags ResetAfterForward"],
        2 * attempts,
        "{injected:?}"
    );
    assert_eq!(r.counts.outcomes.len(), 1, "{:?}", r.counts.outcomes);
    assert_eq!(r.counts.outcomes[&Outcome::Done], 6);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let after = all(&ec2).await;
    for id in &expired {
        assert_eq!(after[id].state, InstanceStateName::Terminated, "{id}");
    }
    for id in &untagged {
        assert!(
            matches!(
                after[id].state,
                InstanceStateName::Stopped | InstanceStateName::Stopping
            ),
            "{id}"
        );
        // The reason tag was written too (its answer was lost); the report says it is unknown.
        assert!(after[id].tags.contains_key("reaper:stopped_at"), "{id}");
    }
    // SPEC §2: no grace period here, so the stamp is the later of first launch + 1d and
    // now + WARN_WINDOW (1d), rounded up to a whole second.
    let notice = r.evaluated_at + TimeDelta::days(1);
    let notice = DateTime::from_timestamp(
        notice.timestamp() + i64::from(notice.timestamp_subsec_nanos() > 0),
        0,
    )
    .unwrap();
    assert_eq!(
        after[&stamp].tags[&"termination_date".to_owned()],
        format_date((after[&stamp].launch + TimeDelta::days(1)).max(notice))
    );
}
