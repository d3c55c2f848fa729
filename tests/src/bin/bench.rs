//! `make bench` (issue 13): ec2-reaper side by side with Cloud Custodian, the bare listing (the
//! floor) and an unbatched baseline, on identical fleets, each tool a whole process measured the
//! same way (wall time, user+sys CPU and peak RSS from `wait4`), every API call counted by the
//! same loopback proxy, and the final EC2 states and tags checked against SPEC §3.
//!
//! Fleets: moto holds the 1 000-instance fleet (a cross-check, one run per tool, fresh moto
//! each); moto is far too slow on a 2-core machine to seed and list 5 000+ instances a dozen
//! times, so the measured sizes run against the fake EC2 (`reaper_e2e::fake_ec2`: moto's XML
//! item shape, pages of at most 1 000 instances, state kept), fresh per run, same seed.
//!
//! Environment: BENCH_SIZES (default 1000,5000,10000), BENCH_REPS (3), BENCH_BIG (100000),
//! BENCH_MOTO (1: run the moto cross-check), BENCH_INIT_RUNS (30), CUSTODIAN (the `custodian`
//! executable; default ~/.cache/ec2-reaper/venv-bench/bin/custodian), BENCH_BIN_DIR (where
//! `reaper` and `reaperctl` are; default the release directory of the cargo target).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reaper_e2e::fake_ec2::{FakeEc2, FakeInstance, State};
use reaper_e2e::measure::{self, Measured};
use reaper_e2e::proxy::{top_level_items, Proxy};
use reaper_e2e::{Function, Moto, PriceListStub, PricingMode, RuntimeApi};
use std::sync::OnceLock;

const REGION: &str = "eu-west-1";
const SEED: u64 = 13;
/// Instances per reservation (per RunInstances call): small, so pages hold ≤ 1 000 instances
/// in moto too, which pages by reservations.
const PER_RESERVATION: usize = 10;
const MB: f64 = 1_000_000.0;
const TOOL_LIMIT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// The unbatched baseline and the floor run as child processes of this binary (`bench --child
// unbatched|floor`), so they are measured like every other tool. The baseline wraps the
// library's `Fleet` trait; this block is the only code here that knows the reaper's library API.
mod baseline {
    use reaper::adapters::{ec2::Ec2Fleet, load_sdk_config};
    use reaper::app::sweep;
    use reaper::config::Config;
    use reaper::policy::Instance;
    use reaper::ports::{ApiError, Deadline, Fleet, IdOutcome, Mutation};
    use reaper::run::{RunContext, RunRequest};
    use std::collections::BTreeMap;

    /// The same decisions as the reaper, one API call per instance per action.
    struct Unbatched(Ec2Fleet);

    impl Fleet for Unbatched {
        async fn list_pages(
            &self,
            ids: Option<&[&str]>,
            deadline: Deadline,
            on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
        ) -> Result<(), ApiError> {
            self.0.list_pages(ids, deadline, on_page).await
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

    /// A live sweep of the region in the environment; prints the verdict and outcome counts.
    pub async fn unbatched() -> Result<String, String> {
        let config = Config::from_env().map_err(|e| format!("configuration error: {e}"))?;
        let sdk = load_sdk_config(None, None).await;
        let fleet = Unbatched(Ec2Fleet::from_sdk(&sdk));
        let ctx = RunContext {
            run_id: "bench-unbatched".into(),
            account: "123456789012".into(),
            region: super::REGION.into(),
        };
        let req = RunRequest::from_cli(true, None, None, chrono::Utc::now(), Deadline::NONE)?;
        let report = sweep(&fleet, &config, ctx, &req).await;
        serde_json::to_string(&report.counts).map_err(|e| e.to_string())
    }
}

/// The floor: the paginated DescribeInstances every tool needs, with the same SDK and the same
/// request the reaper makes (MaxResults 1000, the state filter), and nothing else.
async fn floor_listing() -> Result<String, String> {
    let sdk = reaper::adapters::load_sdk_config(None, None).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "stopping", "stopped"]
                .map(String::from)
                .to_vec(),
        ))
        .build();
    let mut pages = ec2
        .describe_instances()
        .max_results(1000)
        .filters(filter)
        .into_paginator()
        .send();
    let mut count = 0usize;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_sdk_ec2::error::DisplayErrorContext(e).to_string())?;
        count += page
            .reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum::<usize>();
    }
    Ok(format!("{count}"))
}

fn child(mode: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench child: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match mode {
        "unbatched" => runtime.block_on(baseline::unbatched()),
        "floor" => runtime.block_on(floor_listing()),
        other => Err(format!("unknown child mode {other:?} (unbatched, floor)")),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench child {mode}: {e}");
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fleet: groups that between them reach every verdict of SPEC §3.

#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    Untouched,
    /// Untouched but for the record of its announcement (SPEC §8, `reaper:announced`).
    Expiring,
    Terminated,
    /// Stopped, with `reaper:stopped_at` and `reaper:stop_reason`.
    StoppedTagged,
    /// Running, with a `termination_date` (this value when given).
    Stamped(Option<&'static str>),
    /// Stamped, then terminated (a young instance whose lifetime is already over).
    StampedTerminated,
}

struct Group {
    name: &'static str,
    verdict: &'static str,
    /// Percent of the fleet (multiples of 5).
    share: usize,
    tags: fn(DateTime<Utc>) -> Vec<(String, String)>,
    young: bool,
    stopped: bool,
    expect: Expect,
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

const GROUPS: &[Group] = &[
    Group {
        name: "managed (karpenter), date passed",
        verdict: "skip-managed",
        share: 5,
        tags: |now| {
            tags(&[
                ("karpenter.sh/nodepool", "default"),
                ("termination_date", &date(now - TimeDelta::days(1))),
            ])
        },
        young: false,
        stopped: false,
        expect: Expect::Untouched,
    },
    Group {
        name: "termination_date=indefinite",
        verdict: "keep",
        share: 10,
        tags: |_| tags(&[("termination_date", "indefinite")]),
        young: false,
        stopped: false,
        expect: Expect::Untouched,
    },
    Group {
        name: "termination_date passed",
        verdict: "terminate",
        share: 10,
        // Announced to its owner two days before it passed (SPEC §8: no termination otherwise).
        tags: |now| {
            let due = date(now - TimeDelta::days(1));
            let told = date(now - TimeDelta::days(3));
            tags(&[
                ("termination_date", &due),
                ("reaper:announced", &format!("terminate {due} told {told}")),
            ])
        },
        young: false,
        stopped: false,
        expect: Expect::Terminated,
    },
    Group {
        name: "termination_date in 6 h",
        verdict: "expiring",
        share: 5,
        tags: |now| tags(&[("termination_date", &date(now + TimeDelta::hours(6)))]),
        young: false,
        stopped: false,
        expect: Expect::Expiring,
    },
    Group {
        name: "termination_date=2030-01-01T00:00:00Z",
        verdict: "keep",
        share: 10,
        tags: |_| tags(&[("termination_date", "2030-01-01T00:00:00Z")]),
        young: false,
        stopped: false,
        expect: Expect::Untouched,
    },
    Group {
        name: "termination_date=2030-01-01 (no zone)",
        verdict: "stop",
        share: 5,
        tags: |_| tags(&[("termination_date", "2030-01-01")]),
        young: false,
        stopped: false,
        expect: Expect::StoppedTagged,
    },
    Group {
        name: "lifetime=indefinite",
        verdict: "stamp",
        share: 5,
        tags: |_| tags(&[("lifetime", "indefinite")]),
        young: false,
        stopped: false,
        expect: Expect::Stamped(Some("indefinite")),
    },
    Group {
        name: "lifetime=7d",
        verdict: "stamp",
        share: 5,
        tags: |_| tags(&[("lifetime", "7d")]),
        young: false,
        stopped: false,
        expect: Expect::Stamped(None),
    },
    Group {
        name: "lifetime=0m, launched 1 min ago",
        verdict: "stamp+terminate",
        share: 5,
        tags: |_| tags(&[("lifetime", "0m")]),
        young: true,
        stopped: false,
        expect: Expect::StampedTerminated,
    },
    Group {
        name: "untagged, launched 1 min ago",
        verdict: "wait",
        share: 5,
        tags: |_| Vec::new(),
        young: true,
        stopped: false,
        expect: Expect::Untouched,
    },
    Group {
        name: "untagged, running",
        verdict: "stop",
        share: 20,
        tags: |_| Vec::new(),
        young: false,
        stopped: false,
        expect: Expect::StoppedTagged,
    },
    Group {
        name: "untagged, stopped",
        verdict: "noncompliant",
        share: 5,
        tags: |_| Vec::new(),
        young: false,
        stopped: true,
        expect: Expect::Untouched,
    },
    Group {
        name: "lifetime=\"3 days\" (invalid)",
        verdict: "stop",
        share: 10,
        tags: |_| tags(&[("lifetime", "3 days")]),
        young: false,
        stopped: false,
        expect: Expect::StoppedTagged,
    },
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The group of each reservation, shuffled with the seed (groups spread over every page).
/// Which groups a fleet is drawn from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Every group at its share.
    Usual,
    /// 1 % of the instances from the groups that need anything (every verdict but `keep`), the
    /// rest from the `keep` groups: a large, well-tagged account.
    Sparse,
}

fn layout(n: usize, mix: Mix) -> Vec<usize> {
    let mut reservations = Vec::new();
    match mix {
        Mix::Usual => {
            for (g, group) in GROUPS.iter().enumerate() {
                let count = n * group.share / 100 / PER_RESERVATION;
                reservations.extend(std::iter::repeat_n(g, count));
            }
        }
        Mix::Sparse => {
            let (keep, act): (Vec<usize>, Vec<usize>) =
                (0..GROUPS.len()).partition(|&g| GROUPS[g].verdict == "keep");
            let total = n / PER_RESERVATION;
            let acting = total / 100;
            reservations.extend((0..acting).map(|k| act[k % act.len()]));
            reservations.extend((acting..total).map(|k| keep[k % keep.len()]));
        }
    }
    let mut rng = Rng(SEED.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for i in (1..reservations.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        reservations.swap(i, j);
    }
    reservations
}

/// One seeded instance: its group and the state and tags it started with.
#[derive(Clone)]
struct Seeded {
    group: usize,
    state: State,
    tags: Vec<(String, String)>,
}

fn fake_fleet(
    n: usize,
    now: DateTime<Utc>,
    mix: Mix,
) -> (Vec<FakeInstance>, HashMap<String, Seeded>) {
    let mut rng = Rng(SEED | 1);
    let mut instances = Vec::with_capacity(n);
    let mut seeded = HashMap::with_capacity(n);
    for (r, &g) in layout(n, mix).iter().enumerate() {
        let group = &GROUPS[g];
        // Old instances were launched between 1 h and 3 days ago, a reservation at a time.
        let launch = if group.young {
            now - TimeDelta::minutes(1)
        } else {
            now - TimeDelta::seconds(3600 + (rng.next() % (3 * 86_400)) as i64)
        };
        let state = if group.stopped {
            State::Stopped
        } else {
            State::Running
        };
        let tags = (group.tags)(now);
        for k in 0..PER_RESERVATION {
            let id = format!(
                "i-{:017x}",
                0x0b_0000_0000_0000u64 + (r * PER_RESERVATION + k) as u64
            );
            seeded.insert(
                id.clone(),
                Seeded {
                    group: g,
                    state,
                    tags: tags.clone(),
                },
            );
            instances.push(FakeInstance {
                id,
                reservation: format!("r-{:017x}", 0x0c_0000_0000_0000u64 + r as u64),
                state,
                launch_time: launch,
                tags: tags.clone(),
            });
        }
    }
    (instances, seeded)
}

/// What became of one instance: state and tags at the end.
#[derive(Clone)]
struct Final {
    state: String,
    tags: BTreeMap<String, String>,
}

fn meets(expect: Expect, seeded: &Seeded, fin: &Final) -> bool {
    let gone = fin.state == "terminated" || fin.state == "shutting-down";
    let stopped = fin.state == "stopped" || fin.state == "stopping";
    let td = fin.tags.get("termination_date").map(String::as_str);
    match expect {
        Expect::Untouched => {
            fin.state == seeded.state.name()
                && fin.tags == seeded.tags.iter().cloned().collect::<BTreeMap<_, _>>()
        }
        Expect::Expiring => {
            let mut tags = fin.tags.clone();
            tags.remove("reaper:announced");
            fin.state == seeded.state.name()
                && tags == seeded.tags.iter().cloned().collect::<BTreeMap<_, _>>()
        }
        Expect::Terminated => gone,
        Expect::StoppedTagged => {
            stopped
                && fin.tags.contains_key("reaper:stopped_at")
                && fin.tags.contains_key("reaper:stop_reason")
        }
        Expect::Stamped(value) => {
            fin.state == "running" && td.is_some() && value.is_none_or(|v| td == Some(v))
        }
        Expect::StampedTerminated => gone && td.is_some(),
    }
}

/// A short description of what a tool left behind, for mismatches.
fn shape(seeded: &Seeded, fin: &Final) -> String {
    let mut s = fin.state.clone();
    let before: BTreeSet<&String> = seeded.tags.iter().map(|(k, _)| k).collect();
    let added: Vec<&String> = fin.tags.keys().filter(|k| !before.contains(k)).collect();
    if added.is_empty() {
        s.push_str(", no tag added");
    } else {
        let keys: Vec<&str> = added.iter().map(|k| k.as_str()).collect();
        let _ = write!(s, ", tagged {}", keys.join(" "));
    }
    s
}

struct Outcomes {
    /// Per group: (as SPEC, total, the most common shape of the misses).
    groups: Vec<(usize, usize, Option<String>)>,
    /// Instances that gained tags, by the set of tags gained (for the calls floor).
    tag_sets: BTreeMap<Vec<(String, String)>, usize>,
    terminated: usize,
    stopped: usize,
}

impl Outcomes {
    fn ok(&self) -> usize {
        self.groups.iter().map(|g| g.0).sum()
    }
    fn total(&self) -> usize {
        self.groups.iter().map(|g| g.1).sum()
    }
}

fn outcomes(seeded: &HashMap<String, Seeded>, finals: &HashMap<String, Final>) -> Outcomes {
    let mut groups: Vec<(usize, usize, BTreeMap<String, usize>)> =
        GROUPS.iter().map(|_| (0, 0, BTreeMap::new())).collect();
    let mut tag_sets = BTreeMap::new();
    let (mut terminated, mut stopped) = (0, 0);
    for (id, s) in seeded {
        let entry = &mut groups[s.group];
        entry.1 += 1;
        let Some(fin) = finals.get(id) else {
            *entry
                .2
                .entry("missing from the listing".into())
                .or_default() += 1;
            continue;
        };
        if meets(GROUPS[s.group].expect, s, fin) {
            entry.0 += 1;
        } else {
            *entry.2.entry(shape(s, fin)).or_default() += 1;
        }
        if fin.state == "terminated" || fin.state == "shutting-down" {
            terminated += 1;
        } else if (fin.state == "stopped" || fin.state == "stopping") && s.state != State::Stopped {
            stopped += 1;
        }
        let before: BTreeMap<&String, &String> = s.tags.iter().map(|(k, v)| (k, v)).collect();
        let gained: Vec<(String, String)> = fin
            .tags
            .iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            // The stamp and the stop tags are separate calls in every tool that writes both.
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (stamp, rest): (Vec<_>, Vec<_>) = gained
            .into_iter()
            .partition(|(k, _)| k == "termination_date");
        for set in [stamp, rest] {
            if !set.is_empty() {
                *tag_sets.entry(set).or_default() += 1;
            }
        }
    }
    Outcomes {
        groups: groups
            .into_iter()
            .map(|(ok, total, misses)| {
                let worst = misses
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(shape, n)| format!("{n}× {shape}"));
                (ok, total, worst)
            })
            .collect(),
        tag_sets,
        terminated,
        stopped,
    }
}

fn finals_from_fake(fake: &FakeEc2) -> HashMap<String, Final> {
    fake.instances()
        .into_iter()
        .map(|i| {
            (
                i.id,
                Final {
                    state: i.state.name().to_owned(),
                    tags: i.tags.into_iter().collect(),
                },
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tools.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    Reaper,
    Custodian,
    Floor,
    Unbatched,
}

const TOOLS: [Tool; 4] = [Tool::Reaper, Tool::Custodian, Tool::Floor, Tool::Unbatched];

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Reaper => "ec2-reaper (reaperctl sweep --live)",
            Tool::Custodian => "Cloud Custodian (custodian run)",
            Tool::Floor => "floor: paginated DescribeInstances",
            Tool::Unbatched => "unbatched baseline (1 call/instance)",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Tool::Reaper => "ec2-reaper",
            Tool::Custodian => "Cloud Custodian",
            Tool::Floor => "floor (listing only)",
            Tool::Unbatched => "unbatched baseline",
        }
    }
}

struct Bins {
    reaperctl: PathBuf,
    reaper: PathBuf,
    custodian: Option<PathBuf>,
    policy: PathBuf,
    this: PathBuf,
}

/// The environment every tool gets: only PATH and HOME from ours, the endpoint, static
/// credentials, the region; rules as the SPEC's defaults but caps lifted (the bench measures
/// cost, not the circuit breaker).
fn tool_env(cmd: &mut Command, endpoint: &str) {
    cmd.env_clear();
    // glibc's allocator settings pass through, so their effect on peak RSS can be compared.
    for keep in [
        "PATH",
        "HOME",
        "MALLOC_ARENA_MAX",
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
    ] {
        if let Some(v) = env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    let nowhere = "/nonexistent/reaper-bench/aws";
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", Moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", Moto::SECRET_ACCESS_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", format!("{nowhere}/config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            format!("{nowhere}/credentials"),
        )
        .env("MAX_TERMINATIONS", "unlimited")
        .env("MAX_STOPS", "unlimited");
    // The reaper prices what it does (SPEC §8): its Price List calls go to the bench's stub.
    if let Some(url) = PRICING.get() {
        cmd.env("AWS_ENDPOINT_URL_PRICING", url);
    }
}

/// The Price List stub every tool run is pointed at (`AWS_ENDPOINT_URL_PRICING`).
static PRICING: OnceLock<String> = OnceLock::new();

/// What pricing one run cost: the Price List calls, the DescribeVolumes calls, and what the
/// target allows for the fleet (distinct compute keys + volume types + one call per 500
/// volumes deleted by terminations).
struct SavingsCalls {
    get_products: u64,
    describe_volumes: u64,
    allowed: u64,
    formula: String,
}

/// The savings' target for a fake fleet: the distinct instance types of the running instances
/// it stops or terminates (one region, Linux, shared tenancy), its one volume type (gp3), and
/// one DescribeVolumes per 500 root volumes of the terminations.
fn savings_allowed(seeded: &HashMap<String, Seeded>) -> (u64, String) {
    let mut types = BTreeSet::new();
    let mut doomed = 0u64;
    for (id, s) in seeded {
        let verdict = GROUPS[s.group].verdict;
        let terminates = verdict.ends_with("terminate");
        if (terminates || verdict == "stop") && s.state == State::Running {
            types.insert(reaper_e2e::fake_ec2::instance_type(id));
        }
        doomed += u64::from(terminates);
    }
    let calls = doomed.div_ceil(500);
    (
        types.len() as u64 + 1 + calls,
        format!(
            "{} types + 1 volume type + ⌈{doomed} volumes / 500⌉ = {}",
            types.len(),
            types.len() as u64 + 1 + calls
        ),
    )
}

fn command(tool: Tool, bins: &Bins, endpoint: &str, scratch: &Path) -> Option<Command> {
    let mut cmd = match tool {
        Tool::Reaper => {
            let mut c = Command::new(&bins.reaperctl);
            c.args([
                "sweep", "--live", "--yes", "--region", REGION, "--output", "json",
            ]);
            c
        }
        Tool::Custodian => {
            let mut c = Command::new(bins.custodian.as_ref()?);
            c.arg("run")
                .arg("--cache-period")
                .arg("0")
                .arg("--region")
                .arg(REGION)
                .arg("-s")
                .arg(scratch)
                .arg(&bins.policy);
            c
        }
        Tool::Floor | Tool::Unbatched => {
            let mut c = Command::new(&bins.this);
            c.args([
                "--child",
                if tool == Tool::Floor {
                    "floor"
                } else {
                    "unbatched"
                },
            ]);
            c
        }
    };
    tool_env(&mut cmd, endpoint);
    Some(cmd)
}

struct Run {
    calls: BTreeMap<String, u64>,
    m: Measured,
    outcomes: Outcomes,
}

fn run_tool(tool: Tool, bins: &Bins, endpoint: &str) -> Option<Measured> {
    let scratch = env::temp_dir().join(format!("reaper-bench-c7n-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let cmd = command(tool, bins, endpoint, &scratch)?;
    let m = measure_whole(cmd);
    let _ = fs::remove_dir_all(&scratch);
    let reaper_reported_failures = tool == Tool::Reaper && m.code == Some(1);
    if !(m.ok() || reaper_reported_failures) {
        eprintln!(
            "bench: {} exited {:?}{}; stderr tail:\n{}",
            tool.short(),
            m.code,
            if m.timed_out {
                " (killed after the time limit)"
            } else {
                ""
            },
            reaper_e2e::net::tail_str(&m.stderr, 15)
        );
    }
    Some(m)
}

/// One run on a fresh fake fleet.
fn fake_run(tool: Tool, bins: &Bins, n: usize, mix: Mix) -> Option<Run> {
    let now = Utc::now();
    let (instances, seeded) = fake_fleet(n, now, mix);
    let fake = FakeEc2::start(instances);
    let proxy = Proxy::start(&fake.endpoint());
    let m = run_tool(tool, bins, &proxy.endpoint())?;
    let calls = proxy.calls();
    drop(proxy);
    let outcomes = outcomes(&seeded, &finals_from_fake(&fake));
    Some(Run { calls, m, outcomes })
}

fn median_by<T>(mut runs: Vec<T>, key: impl Fn(&T) -> Duration) -> T {
    runs.sort_by_key(|r| key(r));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median-wall run of `reps`, with the CPU and RSS medians of all of them.
struct Row {
    run: Run,
    wall: f64,
    cpu: f64,
    rss: f64,
    calls_varied: bool,
}

fn measure_tool(tool: Tool, bins: &Bins, n: usize, reps: usize) -> Option<Row> {
    let mut runs = Vec::new();
    for _ in 0..reps {
        runs.push(fake_run(tool, bins, n, Mix::Usual)?);
    }
    let cpu = median(runs.iter().map(|r| r.m.cpu().as_secs_f64()).collect());
    let rss = median(runs.iter().map(|r| r.m.max_rss as f64).collect());
    let totals: BTreeSet<u64> = runs.iter().map(|r| r.calls.values().sum()).collect();
    let run = median_by(runs, |r| r.m.wall);
    Some(Row {
        wall: run.m.wall.as_secs_f64(),
        run,
        cpu,
        rss,
        calls_varied: totals.len() > 1,
    })
}

// ---------------------------------------------------------------------------------------------
// Printing.

const OPS: [&str; 4] = [
    "DescribeInstances",
    "CreateTags",
    "StopInstances",
    "TerminateInstances",
];

fn call_cells(calls: &BTreeMap<String, u64>) -> (Vec<u64>, u64, u64) {
    let cells: Vec<u64> = OPS
        .iter()
        .map(|op| calls.get(*op).copied().unwrap_or(0))
        .collect();
    let total: u64 = calls.values().sum();
    let other = total - cells.iter().sum::<u64>();
    (cells, other, total)
}

fn print_table(title: &str, n: usize, rows: &[(Tool, Option<Row>)]) {
    println!("{title}");
    println!(
        "| tool | Describe | CreateTags | Stop | Terminate | other | calls | wall s | CPU s | CPU s/1k | peak RSS MB | outcomes as SPEC §3 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (tool, row) in rows {
        let Some(row) = row else {
            println!("| {} | not run (see above) |||||||||||", tool.label());
            continue;
        };
        let (cells, other, total) = call_cells(&row.run.calls);
        let o = &row.run.outcomes;
        println!(
            "| {} | {} | {} | {} | {} | {other} | {total}{} | {:.2} | {:.2} | {:.3} | {:.1} | {} |",
            tool.label(),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            if row.calls_varied { " (varied)" } else { "" },
            row.wall,
            row.cpu,
            row.cpu / (n as f64 / 1000.0),
            row.rss / MB,
            if *tool == Tool::Floor {
                "n/a (lists only)".to_owned()
            } else {
                format!("{}/{}", o.ok(), o.total())
            }
        );
    }
}

fn print_misses(tool: Tool, o: &Outcomes) {
    for (g, (ok, total, worst)) in o.groups.iter().enumerate() {
        if ok != total {
            println!(
                "  - {}: {} — SPEC §3 `{}`: {ok}/{total} as SPEC; instead {}",
                tool.short(),
                GROUPS[g].name,
                GROUPS[g].verdict,
                worst.clone().unwrap_or_default()
            );
        }
    }
}

/// pages + one call per (action, tag set) per 1 000 ids, from what the run did.
fn floor_calls(n_listed: usize, o: &Outcomes) -> (u64, u64) {
    let per = |k: usize| k.div_ceil(1000) as u64;
    let pages = per(n_listed.max(1));
    let batches =
        per(o.terminated) + per(o.stopped) + o.tag_sets.values().map(|&k| per(k)).sum::<u64>();
    let actioned = o.terminated + o.stopped + o.tag_sets.values().sum::<usize>();
    (pages + batches, per(actioned))
}

struct Target {
    what: String,
    measured: String,
    target: String,
    met: Option<bool>,
}

fn target(
    targets: &mut Vec<Target>,
    what: impl Into<String>,
    measured: impl Into<String>,
    target: impl Into<String>,
    met: Option<bool>,
) {
    targets.push(Target {
        what: what.into(),
        measured: measured.into(),
        target: target.into(),
        met,
    });
}

// ---------------------------------------------------------------------------------------------
// moto cross-check: the same layout in moto (RunInstances per reservation), each tool once on a
// fresh server; old instances' launch times are backdated 2 h by the proxy (moto cannot backdate
// a launch), for every tool alike.

fn backdate(shift: Arc<HashMap<String, i64>>) -> reaper_e2e::proxy::Rewrite {
    Arc::new(move |op: &str, body: &mut Vec<u8>| {
        if op != "DescribeInstances" {
            return;
        }
        let text = String::from_utf8_lossy(body).into_owned();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut search = 0;
        while let Some(at) = text[search..].find("<instancesSet>") {
            let base = search + at;
            for (s, e) in top_level_items(&text[base..], "instancesSet") {
                let (s, e) = (base + s, base + e);
                let item = &text[s..e];
                let id = between(item, "<instanceId>", "</instanceId>");
                let Some(secs) = id.and_then(|id| shift.get(id)) else {
                    continue;
                };
                out.push_str(&text[copied..s]);
                out.push_str(&shift_times(item, *secs));
                copied = e;
            }
            search = base + "<instancesSet>".len();
        }
        out.push_str(&text[copied..]);
        *body = out.into_bytes();
    })
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = start + s[start..].find(close)?;
    Some(&s[start..end])
}

fn shift_times(item: &str, secs: i64) -> String {
    let mut out = item.to_owned();
    for tag in ["launchTime", "attachTime"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut from = 0;
        while let Some(at) = out[from..].find(&open) {
            let start = from + at + open.len();
            let Some(len) = out[start..].find(&close) else {
                break;
            };
            let value = &out[start..start + len];
            if let Ok(t) = DateTime::parse_from_rfc3339(value) {
                let moved = (t.with_timezone(&Utc) - TimeDelta::seconds(secs))
                    .format("%Y-%m-%dT%H:%M:%S.000Z")
                    .to_string();
                out.replace_range(start..start + len, &moved);
            }
            from = start;
        }
    }
    out
}

fn moto_run(tool: Tool, bins: &Bins, n: usize, rt: &tokio::runtime::Runtime) -> Option<Run> {
    let moto = Moto::start();
    let ec2 = moto.ec2(REGION);
    let now = Utc::now();
    let mut seeded = HashMap::new();
    let mut shift = HashMap::new();
    let mut to_stop = Vec::new();
    rt.block_on(async {
        for &g in &layout(n, Mix::Usual) {
            let group = &GROUPS[g];
            let tags = (group.tags)(now);
            let pairs: Vec<(&str, &str)> =
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let ids = reaper_e2e::launch(&ec2, PER_RESERVATION as i32, &pairs).await;
            for id in ids {
                if !group.young {
                    shift.insert(id.clone(), 2 * 3600);
                }
                if group.stopped {
                    to_stop.push(id.clone());
                }
                let state = if group.stopped {
                    State::Stopped
                } else {
                    State::Running
                };
                seeded.insert(
                    id,
                    Seeded {
                        group: g,
                        state,
                        tags: tags.clone(),
                    },
                );
            }
        }
        for chunk in to_stop.chunks(1000) {
            ec2.stop_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "StopInstances: {}",
                        aws_sdk_ec2::error::DisplayErrorContext(e)
                    )
                });
        }
    });
    let proxy = Proxy::start(&moto.endpoint());
    proxy.set_rewrite(Some(backdate(Arc::new(shift))));
    let m = run_tool(tool, bins, &proxy.endpoint())?;
    let calls = proxy.calls();
    drop(proxy);
    let finals = rt.block_on(async {
        let mut finals = HashMap::new();
        let mut pages = ec2
            .describe_instances()
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| {
                panic!(
                    "DescribeInstances: {}",
                    aws_sdk_ec2::error::DisplayErrorContext(e)
                )
            });
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let id = i.instance_id().unwrap_or_default().to_owned();
                let state = i
                    .state()
                    .and_then(|s| s.name())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                let tags = i
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                finals.insert(id, Final { state, tags });
            }
        }
        finals
    });
    Some(Run {
        calls,
        m,
        outcomes: outcomes(&seeded, &finals),
    })
}

// ---------------------------------------------------------------------------------------------
// The Lambda binary: peak RSS of a sweep, and init time.

fn lambda_env(endpoint: &str) -> Vec<(String, String)> {
    let mut cmd = Command::new("true");
    tool_env(&mut cmd, endpoint);
    let mut env: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .filter(|(k, _)| k != "PATH" && k != "HOME")
        .collect();
    env.push(("LIVEMODE".into(), "true".into()));
    env
}

/// A live sweep of an `n`-instance fake fleet by the release Lambda binary: (peak RSS, CPU, ok,
/// what its pricing cost).
fn lambda_sweep(
    reaper: &Path,
    n: usize,
    mix: Mix,
    stub: &PriceListStub,
) -> (u64, Duration, Result<String, String>, SavingsCalls) {
    let (instances, seeded) = fake_fleet(n, Utc::now(), mix);
    let (allowed, formula) = savings_allowed(&seeded);
    let priced_before = stub.requests().len();
    let fake = FakeEc2::start(instances);
    let proxy = Proxy::start(&fake.endpoint());
    let runtime = RuntimeApi::start(REGION);
    let function = Function::spawn(reaper, &runtime, &lambda_env(&proxy.endpoint()));
    let answer = function.invoke(
        &runtime,
        serde_json::json!({}),
        TOOL_LIMIT,
        Duration::from_secs(900),
    );
    let usage = measure::proc_usage(function.pid());
    function.kill();
    let result = match answer {
        reaper_e2e::Invocation::Response(report) => {
            let judged = report["instances_judged"].as_u64().unwrap_or(0);
            Ok(format!("{judged} judged, {} calls", proxy.total_calls()))
        }
        other => Err(format!(
            "{other:?}; stderr tail: {}",
            reaper_e2e::net::tail_str(&function.stderr(), 5)
        )),
    };
    let (rss, cpu) = usage.unwrap_or((0, Duration::ZERO));
    let savings = SavingsCalls {
        get_products: (stub.requests().len() - priced_before) as u64,
        describe_volumes: proxy.calls().get("DescribeVolumes").copied().unwrap_or(0),
        allowed,
        formula,
    };
    (rss, cpu, result, savings)
}

/// GNU time, when installed: its `wait4` of a child it forked itself gives that child's own peak
/// RSS. The bench's own `wait4` would not: Linux starts a spawned child's `ru_maxrss` at the
/// spawner's RSS (the bench holds fake fleets of up to 100 000 instances).
const GNU_TIME: &str = "/usr/bin/time";

/// Runs a tool's command (its environment set explicitly, see `tool_env`) to its end, measured;
/// peak RSS through GNU time when it is installed.
fn measure_whole(cmd: Command) -> measure::Measured {
    if !Path::new(GNU_TIME).is_file() {
        return measure::run(cmd, TOOL_LIMIT);
    }
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let rss_file = env::temp_dir().join(format!(
        "reaper-bench-rss-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut wrapped = Command::new(GNU_TIME);
    wrapped.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let mut m = measure::run(wrapped, TOOL_LIMIT);
    let kb = fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse::<u64>().ok()));
    let _ = fs::remove_file(&rss_file);
    match kb {
        Some(kb) => m.max_rss = kb * 1024,
        None => eprintln!("bench: {GNU_TIME} wrote no peak RSS; the figure is wait4's"),
    }
    m
}

/// Process start → first `GET /runtime/invocation/next`, for `program` (median of `runs`).
fn init_time(runs: usize, start: &dyn Fn(&RuntimeApi) -> Box<dyn FnOnce()>) -> Option<f64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let runtime = RuntimeApi::start(REGION);
        let started = Instant::now();
        let stop = start(&runtime);
        let polled = runtime.wait_for_polls(1, Duration::from_secs(20));
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        stop();
        if !polled {
            return None;
        }
        times.push(elapsed);
    }
    Some(median(times))
}

// ---------------------------------------------------------------------------------------------
// Plots: hand-written SVG (log-scale y), one line per tool.

fn svg_chart(title: &str, unit: &str, sizes: &[usize], series: &[(&str, Vec<f64>)]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 80.0, 220.0, 40.0, 50.0);
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-3)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let xmax = *sizes.iter().max().unwrap_or(&1) as f64;
    let x = |s: f64| left + (s / xmax) * (w - left - right);
    let y = |v: f64| top + (hi - v.max(1e-3).log10()) / (hi - lo) * (h - top - bottom);
    let colours = ["#d62728", "#1f77b4", "#7f7f7f", "#2ca02c"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"15\">{title}</text>\n"
    );
    let mut decade = lo;
    while decade <= hi {
        let yy = y(10f64.powf(decade));
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            yy + 4.0,
            10f64.powf(decade)
        );
        decade += 1.0;
    }
    for &s in sizes {
        let xx = x(s as f64);
        let _ = writeln!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{s}</text>",
            h - bottom,
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">instances</text><text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">{unit} (log scale)</text>",
        (left + w - right) / 2.0,
        h - 10.0,
        h / 2.0,
        h / 2.0
    );
    for (k, (name, vals)) in series.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let points: Vec<String> = sizes
            .iter()
            .zip(vals)
            .filter(|(_, v)| **v > 0.0)
            .map(|(s, v)| format!("{:.1},{:.1}", x(*s as f64), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let ly = top + 20.0 * k as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            w - right + 12.0,
            ly,
            w - right + 30.0,
            ly + 5.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

// ---------------------------------------------------------------------------------------------

fn env_num(name: &str, default: usize) -> usize {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| {
            panic!("bench: {name}={v:?} is not a whole number (e.g. {name}={default})")
        }),
        _ => default,
    }
}

fn sizes() -> Vec<usize> {
    let raw = env::var("BENCH_SIZES").unwrap_or_else(|_| "1000,5000,10000".into());
    raw.split(',')
        .map(|s| {
            let n: usize = s.trim().parse().unwrap_or_else(|_| {
                panic!("bench: BENCH_SIZES={raw:?}: {s:?} is not a whole number (e.g. 1000,5000,10000)")
            });
            assert!(
                n >= 1000 && n % 1000 == 0,
                "bench: BENCH_SIZES={raw:?}: {n} must be a multiple of 1000 (the fleet's groups are 5 % shares of 10-instance reservations)"
            );
            n
        })
        .collect()
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split(' ').next().unwrap_or("?");
    format!("{cores} cores ({cpu}), load average {load}")
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(args.get(2).map_or("", String::as_str));
    }
    let started = Instant::now();
    let pricing = PriceListStub::start(PricingMode::Ok);
    let _ = PRICING.set(pricing.url());
    let root = reaper_e2e::workspace_root();
    // The release binaries are what ships; BENCH_BIN_DIR points elsewhere (figures then say so).
    let release = env::var_os("BENCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| reaper_e2e::target_dir().join("release"));
    let profile = release
        .file_name()
        .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned());
    let bins = Bins {
        reaperctl: release.join("reaperctl"),
        reaper: release.join("reaper"),
        custodian: Some(env::var_os("CUSTODIAN").map_or_else(
            || {
                PathBuf::from(env::var_os("HOME").unwrap_or_default())
                    .join(".cache/ec2-reaper/venv-bench/bin/custodian")
            },
            PathBuf::from,
        ))
        .filter(|p| p.is_file()),
        policy: root.join("bench/custodian.yml"),
        this: env::current_exe().unwrap_or_else(|e| panic!("bench: where am I? {e}")),
    };
    for bin in [&bins.reaperctl, &bins.reaper] {
        if !bin.is_file() {
            eprintln!(
                "bench: {} is missing: `make bench` builds it (cargo build --release -p reaper --bins)",
                bin.display()
            );
            return ExitCode::from(2);
        }
    }
    if bins.custodian.is_none() {
        eprintln!("bench: Cloud Custodian not found (CUSTODIAN or ~/.cache/ec2-reaper/venv-bench/bin/custodian): its rows are not run; `make bench` installs it");
    }
    let sizes = sizes();
    let reps = env_num("BENCH_REPS", 3).max(1);
    let big = env_num("BENCH_BIG", 100_000);
    let init_runs = env_num("BENCH_INIT_RUNS", 30).max(1);
    let with_moto = env_num("BENCH_MOTO", 1) != 0;

    println!("# ec2-reaper bench (issue 13)");
    println!();
    println!(
        "machine: {}; started {}",
        machine(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "fleet: seed {SEED}, reservations of {PER_RESERVATION}; groups (share → SPEC §3 verdict): {}",
        GROUPS
            .iter()
            .map(|g| format!("{} {}% → {}", g.name, g.share, g.verdict))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "each tool is one whole process behind the same counting proxy; reaper rules are the SPEC defaults (GRACE_PERIOD 15m, WARN_WINDOW 1d) with caps unlimited; wall, CPU and RSS are medians of {reps} runs on fresh fleets; peak RSS {}"
    , if Path::new(GNU_TIME).is_file() { "from GNU time (its wait4 of the tool alone)" } else { "from wait4 (no /usr/bin/time: on Linux it includes the bench's own RSS at spawn, an overestimate)" });
    println!();

    let mut results: BTreeMap<usize, Vec<(Tool, Option<Row>)>> = BTreeMap::new();
    let mut targets = Vec::new();
    for &n in &sizes {
        let rows: Vec<(Tool, Option<Row>)> = TOOLS
            .iter()
            .map(|&t| (t, measure_tool(t, &bins, n, reps)))
            .collect();
        print_table(
            &format!("## {n} instances (fake EC2, pages of ≤ 1 000 instances)"),
            n,
            &rows,
        );
        println!();
        for (tool, row) in &rows {
            if let Some(row) = row {
                if *tool != Tool::Floor {
                    print_misses(*tool, &row.run.outcomes);
                }
            }
        }
        let get = |t: Tool| {
            rows.iter()
                .find(|(k, _)| *k == t)
                .and_then(|(_, r)| r.as_ref())
        };
        if let Some(reaper) = get(Tool::Reaper) {
            let calls: u64 = reaper.run.calls.values().sum();
            let (floor, recheck) = floor_calls(n, &reaper.run.outcomes);
            // reaperctl asks STS who the account is; the floor of the job does not include it.
            let sts = reaper
                .run
                .calls
                .get("GetCallerIdentity")
                .copied()
                .unwrap_or(0);
            // The savings' DescribeVolumes is not the job's: it has its own target below.
            let volumes = reaper
                .run
                .calls
                .get("DescribeVolumes")
                .copied()
                .unwrap_or(0);
            let calls = calls - volumes;
            let reaper_ec2 = calls - sts;
            target(
                &mut targets,
                format!("{n}: reaper EC2 calls (the sweep; the savings' DescribeVolumes apart) ≤ floor (pages + batches) + re-check"),
                format!("{reaper_ec2}"),
                format!("≤ {} ({floor} + {recheck})", floor + recheck),
                Some(reaper_ec2 <= floor + recheck),
            );
            if let Some(c7n) = get(Tool::Custodian) {
                let c7n_calls: u64 = c7n.run.calls.values().sum();
                target(
                    &mut targets,
                    format!("{n}: reaper calls ≤ Custodian's + re-check"),
                    format!("{calls}"),
                    format!("≤ {} ({c7n_calls} + {recheck})", c7n_calls + recheck),
                    Some(calls <= c7n_calls + recheck),
                );
                let per_k = |r: &Row| r.cpu / (n as f64 / 1000.0);
                target(
                    &mut targets,
                    format!("{n}: reaper CPU per 1 000 instances ≤ 1/10 of Custodian's"),
                    format!("{:.3} s", per_k(reaper)),
                    format!("≤ {:.3} s ({:.3}/10)", per_k(c7n) / 10.0, per_k(c7n)),
                    Some(per_k(reaper) <= per_k(c7n) / 10.0),
                );
                target(
                    &mut targets,
                    format!("{n}: reaper wall ≤ Custodian's"),
                    format!("{:.2} s", reaper.wall),
                    format!("≤ {:.2} s", c7n.wall),
                    Some(reaper.wall <= c7n.wall),
                );
            }
            if n == 10_000 {
                target(
                    &mut targets,
                    "10000: reaperctl peak RSS".to_string(),
                    format!("{:.1} MB", reaper.rss / MB),
                    "≤ 48 MB",
                    Some(reaper.rss <= 48.0 * MB),
                );
            }
        }
        println!();
        results.insert(n, rows);
    }

    println!("Cloud Custodian's policy (bench/custodian.yml) is the closest it has to SPEC §3: terminate when `termination_date` < now, stop running instances with neither tag, skip the managed tags. Beyond the misses counted above, by design: it has no `lifetime` (no stamps), no grace period, no expiring/notice, no reason tags, no re-check before acting and no caps; it parses dates with dateutil, so `2030-01-01` (no zone) is a valid date to it (kept) where SPEC §3 calls it invalid (stop), and an epoch number is a date to it.");
    println!();

    if with_moto {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("bench: no tokio runtime: {e}");
                return ExitCode::from(2);
            }
        };
        let n = 1000;
        let rows: Vec<(Tool, Option<Row>)> = TOOLS
            .iter()
            .map(|&t| {
                let row = moto_run(t, &bins, n, &rt).map(|run| Row {
                    wall: run.m.wall.as_secs_f64(),
                    cpu: run.m.cpu().as_secs_f64(),
                    rss: run.m.max_rss as f64,
                    run,
                    calls_varied: false,
                });
                (t, row)
            })
            .collect();
        print_table(
            &format!("## cross-check: {n} instances in moto (one run each, fresh moto per tool; launch times of old instances backdated 2 h by the proxy)"),
            n,
            &rows,
        );
        println!();
        for (tool, row) in &rows {
            if let Some(row) = row {
                if *tool != Tool::Floor {
                    print_misses(*tool, &row.run.outcomes);
                }
            }
        }
        if let (Some(fake), Some(moto)) = (results.get(&n), Some(&rows)) {
            let agree = TOOLS.iter().filter(|&&t| t != Tool::Floor).all(|&t| {
                let pick = |rows: &[(Tool, Option<Row>)]| {
                    rows.iter()
                        .find(|(k, _)| *k == t)
                        .and_then(|(_, r)| r.as_ref())
                        .map(|r| {
                            r.run
                                .outcomes
                                .groups
                                .iter()
                                .map(|g| (g.0, g.1))
                                .collect::<Vec<_>>()
                        })
                };
                pick(fake) == pick(moto)
            });
            println!(
                "moto and the fake EC2 {} on every outcome per group at {n} instances (calls differ only where launch seconds differ: stamps are one CreateTags per distinct date).",
                if agree { "agree" } else { "DISAGREE" }
            );
            target(
                &mut targets,
                "fake EC2 agrees with moto on outcomes (1000)",
                if agree { "yes" } else { "no" },
                "yes",
                Some(agree),
            );
        }
        println!();
    }

    println!("## Lambda binary and reaperctl at scale (fake EC2 replaying generated pages of 1 000 instances; moto cannot hold 100 000)");
    println!();
    println!("| binary | instances | peak RSS MB | CPU s | result |");
    println!("|---|---:|---:|---:|---|");
    // The figures before issue 17 (bench/results/bench-2026-11-24.md): the whole listing, tag maps
    // included, was held until the report was written.
    const OLD: &str = "100 000 usual mix: reaper 133.9 MB, reaperctl 131.9 MB";
    let mut savings_calls: Option<SavingsCalls> = None;
    let mut rss_points: Vec<(String, usize, f64)> = Vec::new();
    let mut sparse_points: Vec<(String, usize, f64)> = Vec::new();
    for (n, mix) in [(10_000, Mix::Usual), (big, Mix::Usual), (big, Mix::Sparse)] {
        let label = match mix {
            Mix::Usual => format!("{n}"),
            Mix::Sparse => format!("{n}, 1 % need action"),
        };
        let points = match mix {
            Mix::Usual => &mut rss_points,
            Mix::Sparse => &mut sparse_points,
        };
        let (rss, cpu, result, priced) = lambda_sweep(&bins.reaper, n, mix, &pricing);
        if n == 10_000 && mix == Mix::Usual {
            savings_calls = Some(priced);
        }
        let mb = rss as f64 / MB;
        println!(
            "| reaper (Lambda, {profile}) | {label} | {mb:.1} | {:.2} | {} |",
            cpu.as_secs_f64(),
            result
                .as_ref()
                .map_or_else(|e| format!("FAILED: {e}"), String::clone)
        );
        points.push(("reaper".into(), n, mb));
        let run = fake_run(Tool::Reaper, &bins, n, mix);
        if let Some(run) = run {
            let mb = run.m.max_rss as f64 / MB;
            println!(
                "| reaperctl ({profile}) | {label} | {mb:.1} | {:.2} | exit {:?}, {} calls |",
                run.m.cpu().as_secs_f64(),
                run.m.code,
                run.calls.values().sum::<u64>()
            );
            points.push(("reaperctl".into(), n, mb));
        }
    }
    for (name, n, mb) in &rss_points {
        let (limit, was) = if *n >= 100_000 {
            (64.0, format!(" (before: {OLD})"))
        } else {
            (48.0, String::new())
        };
        target(
            &mut targets,
            format!("{n}: {name} peak RSS"),
            format!("{mb:.1} MB"),
            format!("≤ {limit} MB{was}"),
            Some(*mb <= limit),
        );
    }
    if let Some(c) = &savings_calls {
        let used = c.get_products + c.describe_volumes;
        println!(
            "savings at 10 000 instances (Lambda, Price List stub): {} GetProducts + {} DescribeVolumes = {used} calls",
            c.get_products, c.describe_volumes
        );
        target(
            &mut targets,
            "10000: calls the savings add (GetProducts + DescribeVolumes)",
            format!("{used} ({} + {})", c.get_products, c.describe_volumes),
            format!("≤ {}", c.formula),
            Some(used <= c.allowed),
        );
    }
    for (name, n, mb) in &sparse_points {
        target(
            &mut targets,
            format!("{n}, 1 % need action: {name} peak RSS"),
            format!("{mb:.1} MB"),
            format!("≤ 40 MB (before: not measured; {OLD})"),
            Some(*mb <= 40.0),
        );
    }
    let per_instance = |name: &str| {
        let pts: Vec<&(String, usize, f64)> = rss_points.iter().filter(|p| p.0 == name).collect();
        (pts.len() == 2 && pts[1].1 > pts[0].1)
            .then(|| (pts[1].2 - pts[0].2) * MB / (pts[1].1 - pts[0].1) as f64)
    };
    for name in ["reaper", "reaperctl"] {
        if let Some(bytes) = per_instance(name) {
            println!(
                "{name}: memory grows by {:.1} KB per instance between 10 000 and {big}",
                bytes / 1000.0
            );
        }
    }
    println!();

    let lambda_init = init_time(init_runs, &|runtime| {
        let f = Function::spawn(&bins.reaper, runtime, &lambda_env("http://127.0.0.1:9"));
        Box::new(move || f.kill())
    });
    let curl_init = init_time(init_runs, &|runtime| {
        let url = format!(
            "http://{}/2018-06-01/runtime/invocation/next",
            runtime.address()
        );
        let child = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "30", &url])
            .spawn();
        Box::new(move || {
            if let Ok(mut c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
        })
    });
    match (lambda_init, curl_init) {
        (Some(l), Some(c)) => {
            println!("Lambda init ({profile} `reaper`: process start → first GET …/invocation/next, median of {init_runs}): {l:.1} ms; curl doing only that GET: {c:.1} ms; ratio {:.2}", l / c);
            target(
                &mut targets,
                "Lambda init ≤ 1.3 × curl's",
                format!("{l:.1} ms ({:.2}×)", l / c),
                format!("≤ {:.1} ms", 1.3 * c),
                Some(l <= 1.3 * c),
            );
        }
        (l, c) => {
            println!("Lambda init not measured: reaper {l:?}, curl {c:?} (is curl installed?)");
            target(
                &mut targets,
                "Lambda init ≤ 1.3 × curl's",
                "not measured",
                "≤ 1.3×",
                None,
            );
        }
    }
    let zip = reaper_e2e::target_dir().join("lambda/reaper/bootstrap.zip");
    match fs::metadata(&zip) {
        Ok(meta) => {
            let mb = meta.len() as f64 / MB;
            target(
                &mut targets,
                "arm64 zip",
                format!("{mb:.2} MB"),
                "≤ 6 MB",
                Some(mb <= 6.0),
            );
        }
        Err(_) => target(
            &mut targets,
            "arm64 zip",
            format!("not measured: {} not built (`make build`)", zip.display()),
            "≤ 6 MB",
            None,
        ),
    }
    println!();

    println!("## Targets");
    println!();
    println!("| target | measured | target | met |");
    println!("|---|---|---|---|");
    for t in &targets {
        println!(
            "| {} | {} | {} | {} |",
            t.what,
            t.measured,
            t.target,
            match t.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "not measured",
            }
        );
    }
    println!();

    // Plots.
    let out = root.join("out/bench");
    if let Err(e) = fs::create_dir_all(&out) {
        eprintln!("bench: cannot create {}: {e}", out.display());
    } else {
        let series = |f: &dyn Fn(&Row) -> f64| -> Vec<(&str, Vec<f64>)> {
            TOOLS
                .iter()
                .map(|&t| {
                    let vals = results
                        .values()
                        .map(|rows| {
                            rows.iter()
                                .find(|(k, _)| *k == t)
                                .and_then(|(_, r)| r.as_ref())
                                .map_or(0.0, f)
                        })
                        .collect();
                    (t.short(), vals)
                })
                .collect()
        };
        let ns: Vec<usize> = results.keys().copied().collect();
        let calls = svg_chart(
            "API calls per sweep vs fleet size",
            "calls",
            &ns,
            &series(&|r: &Row| r.run.calls.values().sum::<u64>() as f64),
        );
        let wall = svg_chart(
            "Wall time per sweep vs fleet size (median of runs)",
            "seconds",
            &ns,
            &series(&|r: &Row| r.wall),
        );
        for (name, svg) in [("calls.svg", calls), ("wall.svg", wall)] {
            let path = out.join(name);
            match fs::write(&path, svg) {
                Ok(()) => println!("plot: {}", path.display()),
                Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
            }
        }
    }
    println!(
        "bench finished in {:.0} s; machine at the end: {}",
        started.elapsed().as_secs_f64(),
        machine()
    );
    ExitCode::SUCCESS
}
