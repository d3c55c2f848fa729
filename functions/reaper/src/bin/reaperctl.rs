//! reaperctl: the reaper's sweep from a laptop, with your own AWS credentials, across regions.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt};
use reaper::adapters::ec2::{Ec2Fleet, Progress};
use reaper::adapters::{account_id, enabled_regions, load_sdk_config};
use reaper::config::Config;
use reaper::event::valid_instance_id;
use reaper::policy::extend::{extended, Extension};
use reaper::policy::format_date;
use reaper::ports::Deadline;
use reaper::ports::{Fleet, IdOutcome, Mutation};
use reaper::report::explain::explain;
use reaper::report::{table, RunReport};
use reaper::run::{sweep, RunContext, RunRequest};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  every region swept; nothing failed and no circuit opened
  1  an instance action failed, a circuit opened, or a region reported an error
  2  bad arguments or configuration, or a live sweep not confirmed (nothing was changed)

Rules come from the same environment variables as the Lambda (GRACE_PERIOD, WARN_WINDOW,
MAX_TERMINATIONS, MAX_STOPS, SKIP_MANAGED, OWNER_TAG). LIVEMODE is ignored: only
`reaperctl sweep --live` changes anything. Credentials and region come from the usual AWS chain
(--profile, AWS_PROFILE, environment, SSO).";

/// `--version` also names the checkout the binary was built from (`-V` stays short).
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}\nbuilt from: {}",
        env!("CARGO_PKG_VERSION"),
        reaper::BUILT_FROM
    )
});

#[derive(Parser)]
#[command(name = "reaperctl", version, long_version = LONG_VERSION.as_str(), about = "See (and, if you say so, do) what ec2-reaper does to your EC2 instances", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a sweep would do. Always a dry run.
    Plan(Common),
    /// Run a sweep. A dry run unless --live.
    Sweep {
        #[command(flatten)]
        common: Common,
        /// Really terminate, stop and tag instances. Shows what it is about to do and asks you to
        /// type the account id first.
        #[arg(long)]
        live: bool,
        /// With --live: do not ask (scripts). Without a terminal, --live needs --yes.
        #[arg(long, requires = "live")]
        yes: bool,
        /// Refuse to run in any other account (a guard for scripts and wrong profiles).
        #[arg(long, value_name = "ACCOUNT_ID", value_parser = parse_account)]
        expect_account: Option<String>,
    },
    /// Write a later termination_date on instances, with your own credentials; refuses beyond
    /// MAX_LIFETIME (naming the bound). Prints the old and the new date.
    Extend {
        /// Instance ids.
        #[arg(required = true, value_name = "ID", value_parser = parse_instance_id)]
        ids: Vec<String>,
        /// How much later: from the current date, or from now when that has passed (e.g. 3d).
        #[arg(long, value_parser = parse_by, conflicts_with = "until", required_unless_present = "until")]
        by: Option<chrono::TimeDelta>,
        /// The new date (RFC 3339), later than the current one.
        #[arg(long, value_parser = parse_at)]
        until: Option<DateTime<Utc>>,
        #[command(flatten)]
        target: Target,
    },
    /// Why the reaper would (or would not) act on instances: verdict, reason and when, in one
    /// paragraph each. Reads only.
    Why {
        /// Instance ids.
        #[arg(required = true, value_name = "ID", value_parser = parse_instance_id)]
        ids: Vec<String>,
        #[command(flatten)]
        target: Target,
        /// Judge as if it were this time (RFC 3339).
        #[arg(long, value_parser = parse_at)]
        at: Option<DateTime<Utc>>,
    },
}

/// One account and region, for the commands that work on named instances.
#[derive(Args)]
struct Target {
    /// Region of the instances. Default: the profile's region.
    #[arg(long)]
    region: Option<String>,
    /// AWS profile to use.
    #[arg(long)]
    profile: Option<String>,
}

#[derive(Args)]
struct Common {
    /// Region to sweep (repeatable). Default: the profile's region.
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// Sweep every region enabled for the account (DescribeRegions).
    #[arg(long, conflicts_with = "regions")]
    all_regions: bool,
    /// AWS profile to use.
    #[arg(long)]
    profile: Option<String>,
    /// Forecast: judge as if it were this time (RFC 3339, e.g. 2030-01-01T00:00:00Z). Dry run only.
    #[arg(long, value_parser = parse_at)]
    at: Option<DateTime<Utc>>,
    /// Judge only these instances (repeatable).
    #[arg(long = "instance-id", value_name = "ID", value_parser = parse_instance_id)]
    instance_ids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Regions swept at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    concurrency: u16,
    /// Give up after this many seconds: no new work starts in the last 30 s, every AWS call is
    /// held to what is left, and what was not done is reported `deferred`.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    timeout: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn parse_at(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "{s:?} is not an RFC 3339 date-time with a time zone, e.g. 2030-01-01T00:00:00Z"
            )
        })
}

fn parse_instance_id(s: &str) -> Result<String, String> {
    if valid_instance_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an EC2 instance id (i- and 8 or 17 hex digits)"
        ))
    }
}

fn parse_by(s: &str) -> Result<chrono::TimeDelta, String> {
    reaper::policy::tags::parse_duration(s)
        .map_err(|e| format!("{s:?}: {}; e.g. 3d, 12h, 2w", e.reason))
}

fn parse_account(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not an AWS account id (12 digits)"))
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("reaperctl: {msg}");
    ExitCode::from(2)
}

/// Sweeps every region with one request; reports sorted by region.
async fn sweep_regions(
    base: &aws_config::SdkConfig,
    regions: &[String],
    account: &str,
    config: &Config,
    req: &RunRequest,
    concurrency: u16,
) -> Vec<RunReport> {
    let tty = std::io::stderr().is_terminal();
    let mut reports: Vec<RunReport> = stream::iter(regions.iter().cloned())
        .map(|region| async move {
            let sdk = base
                .to_builder()
                .region(aws_config::Region::new(region.clone()))
                .build();
            let r = region.clone();
            let fleet = Ec2Fleet::from_sdk(&sdk).with_progress(Progress(Arc::new(move |n| {
                if tty {
                    eprint!("\r{r}: {n} instances listed…");
                    let _ = std::io::stderr().flush();
                }
            })));
            let ctx = RunContext {
                run_id: uuid::Uuid::new_v4().to_string(),
                account: account.to_string(),
                region,
            };
            let report = sweep(&fleet, config, ctx, req).await;
            if tty {
                eprint!("\r\x1b[K");
            }
            eprintln!(
                "{}",
                table::summary(&report).lines().next().unwrap_or_default()
            );
            report
        })
        .buffer_unordered(usize::from(concurrency))
        .collect()
        .await;
    reports.sort_by(|a, b| a.region.cmp(&b.region));
    reports
}

/// What a live sweep is about to do, from a dry run a moment before.
fn about_to(reports: &[RunReport]) -> String {
    use reaper::policy::VerdictKind::{Stamp, Stop, Terminate};
    let count = |k| reports.iter().map(|r| r.verdict_count(k)).sum::<u64>();
    format!(
        "terminate {}, stop {}, stamp {} instance(s) in {} region(s)",
        count(Terminate),
        count(Stop),
        count(Stamp),
        reports.len()
    )
}

/// aws-nuke's guard: a live sweep goes ahead only when the person types the account id.
fn confirmed(account: &str, plan: &[RunReport]) -> Result<(), String> {
    if !std::io::stdin().is_terminal() {
        return Err(
            "--live needs a terminal to confirm, or --yes (and, in scripts, --expect-account ID)"
                .into(),
        );
    }
    eprint!(
        "reaperctl: about to {} in account {account}.\nType the account id to go ahead: ",
        about_to(plan)
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("could not read the answer: {e}"))?;
    if answer.trim() == account {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not the account id {account}; nothing was changed",
            answer.trim()
        ))
    }
}

/// Rules from the environment, as the Lambda reads them; delivery settings and LIVEMODE do not
/// apply to a laptop.
fn rules_config() -> Result<Config, String> {
    let laptop = std::env::vars().filter(|(name, _)| {
        !matches!(
            name.as_str(),
            "LIVEMODE"
                | "SLACKWEBHOOK"
                | "SLACKWEBHOOK_SECRET_ARN"
                | "REPORT_BUCKET"
                | "NOTICE_FROM"
        )
    });
    // from_vars: a misspelt variable (MAX_TERMINATION=0) is a warning in every report.
    Config::from_vars(laptop).map_err(|err| format!("configuration error: {err}"))
}

/// The rules, the fleet of one region, and the named instances as listed now: what `why` and
/// `extend` work on.
struct Named {
    config: Config,
    fleet: Ec2Fleet,
    region: String,
    listed: Vec<reaper::policy::Instance>,
    deadline: Deadline,
}

async fn named(ids: &[String], target: Target) -> Result<Named, ExitCode> {
    let config = rules_config().map_err(fail)?;
    let sdk = load_sdk_config(target.region, target.profile).await;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(fail("no region: pass --region REGION or set AWS_REGION"));
    };
    let fleet = Ec2Fleet::from_sdk(&sdk);
    let deadline = Deadline::after(Duration::from_secs(120));
    let listed = fleet
        .list(Some(ids), deadline)
        .await
        .map_err(|err| fail(format!("describing the instances failed: {err}")))?;
    Ok(Named {
        config,
        fleet,
        region,
        listed,
        deadline,
    })
}

async fn extend(ids: Vec<String>, how: Extension, target: Target) -> ExitCode {
    let Named {
        config,
        fleet,
        listed,
        deadline,
        ..
    } = match named(&ids, target).await {
        Ok(named) => named,
        Err(code) => return code,
    };
    let now = Utc::now();
    let mut ok = true;
    for id in &ids {
        let Some(instance) = listed.iter().find(|i| &i.id == id) else {
            ok = false;
            eprintln!("{id}: not found in a judged state; nothing written");
            continue;
        };
        let old = instance
            .tag("termination_date")
            .unwrap_or("(none)")
            .to_string();
        let new = match extended(instance, how, now, &config.rules) {
            Ok(new) => format_date(new),
            Err(why) => {
                ok = false;
                eprintln!("{id}: {why}; nothing written");
                continue;
            }
        };
        let tags = vec![("termination_date".to_string(), new.clone())];
        match fleet
            .apply(Mutation::Tag(&tags), std::slice::from_ref(id), deadline)
            .await
            .pop()
        {
            Some((_, IdOutcome::Done)) => println!("{id}: termination_date {old} -> {new}"),
            other => {
                ok = false;
                eprintln!("{id}: writing termination_date={new} failed: {other:?}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn why(ids: Vec<String>, target: Target, at: Option<DateTime<Utc>>) -> ExitCode {
    let Named {
        config,
        region,
        listed,
        ..
    } = match named(&ids, target).await {
        Ok(named) => named,
        Err(code) => return code,
    };
    let now = at.unwrap_or_else(Utc::now);
    let mut all_found = true;
    for id in &ids {
        match listed.iter().find(|i| &i.id == id) {
            Some(instance) => {
                let verdict = reaper::policy::judge(instance, now, &config.rules);
                println!("{}\n", explain(instance, &verdict, &config.rules, now));
            }
            None => {
                all_found = false;
                println!(
                    "{id}: not found in a judged state (pending, running, stopping, stopped) in {}; \
                     terminated, or in another region?\n",
                    region
                );
            }
        }
    }
    if all_found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

// One thread: regions run concurrently as futures (`buffer_unordered`); worker threads would only
// add malloc arenas (peak memory).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (common, live, yes, expect_account) = match cli.command {
        Command::Why { ids, target, at } => return why(ids, target, at).await,
        Command::Extend {
            ids,
            by,
            until,
            target,
        } => {
            let how = match (by, until) {
                (Some(by), _) => Extension::By(by),
                (None, Some(until)) => Extension::Until(until),
                (None, None) => return fail("--by or --until is needed"),
            };
            return extend(ids, how, target).await;
        }
        Command::Plan(common) => (common, false, false, None),
        Command::Sweep {
            common,
            live,
            yes,
            expect_account,
        } => (common, live, yes, expect_account),
    };
    let deadline = Deadline::after(Duration::from_secs(common.timeout));
    let ids = (!common.instance_ids.is_empty()).then(|| common.instance_ids.clone());
    let req = match RunRequest::from_cli(live, common.at, ids, Utc::now(), deadline) {
        Ok(req) => req,
        Err(err) => return fail(err),
    };
    let config = match rules_config() {
        Ok(config) => config,
        Err(err) => return fail(err),
    };

    let base = load_sdk_config(None, common.profile.clone()).await;
    let regions = if common.all_regions {
        if base.region().is_none() {
            return fail("--all-regions needs a region to ask DescribeRegions in: set AWS_REGION or the profile's region");
        }
        match enabled_regions(&base).await {
            Ok(r) => r,
            Err(err) => return fail(format!("listing enabled regions failed: {err}")),
        }
    } else if !common.regions.is_empty() {
        common.regions.clone()
    } else if let Some(region) = base.region() {
        vec![region.to_string()]
    } else {
        return fail(
            "no region: pass --region REGION (repeatable) or --all-regions, or set AWS_REGION",
        );
    };
    let account = match account_id(&base).await {
        Ok(a) => a,
        Err(err) => {
            return fail(format!(
                "could not identify the account (sts:GetCallerIdentity): {err}"
            ))
        }
    };
    if let Some(expected) = expect_account.filter(|e| *e != account) {
        return fail(format!(
            "these credentials are for account {account}, not {expected} (--expect-account); nothing was listed or changed"
        ));
    }
    eprintln!(
        "reaperctl: account {account}, {} region(s), {}",
        regions.len(),
        if req.is_live() {
            "LIVE: instances will be changed"
        } else {
            "dry run: nothing will be changed"
        }
    );
    if req.is_live() && !yes {
        let mut preview = req.clone();
        preview.mode = reaper::run::Mode::DryRun;
        let plan = sweep_regions(
            &base,
            &regions,
            &account,
            &config,
            &preview,
            common.concurrency,
        )
        .await;
        if let Err(why) = confirmed(&account, &plan) {
            return fail(why);
        }
    }

    let reports = sweep_regions(&base, &regions, &account, &config, &req, common.concurrency).await;
    match common.output {
        Output::Table => print!("{}", table::render(&reports)),
        // Streamed: a 100 000-instance report is never held as one string.
        Output::Json => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = serde_json::to_writer_pretty(&mut out, &reports)
                .map_err(|err| err.to_string())
                .and_then(|()| {
                    use std::io::Write as _;
                    writeln!(out)
                        .and_then(|()| out.flush())
                        .map_err(|err| err.to_string())
                });
            if let Err(err) = written {
                return fail(format!("could not write the reports: {err}"));
            }
        }
    }
    if reports.iter().any(RunReport::has_failures) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
