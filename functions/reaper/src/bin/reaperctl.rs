//! reaperctl: the reaper's sweep from a laptop, with your own AWS credentials, across regions.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt};
use reaper::aws::ec2::{Ec2Fleet, Progress};
use reaper::aws::{account_id, ec2_client, enabled_regions, load_sdk_config, CallCounter};
use reaper::config::Config;
use reaper::report::RunReport;
use reaper::sweep::{sweep, RunContext, SweepRequest, TriggerKind};
use reaper::trigger::valid_instance_id;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

const EXIT_CODES: &str = "\
Exit codes:
  0  every region swept; nothing failed and no circuit opened
  1  an instance action failed, a circuit opened, or a region reported an error
  2  bad arguments or configuration (nothing was listed or changed)

Rules come from the same environment variables as the Lambda (GRACE_PERIOD, WARN_WINDOW,
MAX_TERMINATIONS, MAX_STOPS, SKIP_MANAGED, OWNER_TAG). LIVEMODE is ignored: only
`reaperctl sweep --live` changes anything. Credentials and region come from the usual AWS chain
(--profile, AWS_PROFILE, environment, SSO).";

#[derive(Parser)]
#[command(name = "reaperctl", version, about = "See (and, if you say so, do) what ec2-reaper does to your EC2 instances", after_help = EXIT_CODES)]
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
        /// Really terminate, stop and tag instances.
        #[arg(long)]
        live: bool,
        /// Skip the account confirmation (a no-op in this branch; the bench passes it).
        #[arg(long)]
        yes: bool,
    },
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

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("reaperctl: {msg}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (common, live) = match cli.command {
        Command::Plan(common) => (common, false),
        Command::Sweep { common, live, .. } => (common, live),
    };
    if live && common.at.is_some() {
        return fail("--at forecasts only in a dry run; drop --live or --at");
    }
    // The same rules as the Lambda; delivery settings and LIVEMODE do not apply here.
    let config = match Config::from_lookup(|name| match name {
        "LIVEMODE" | "SLACKWEBHOOK" | "REPORT_BUCKET" => None,
        _ => std::env::var(name).ok(),
    }) {
        Ok(config) => Config { live, ..config },
        Err(err) => return fail(format!("configuration error: {err}")),
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
    eprintln!(
        "reaperctl: account {account}, {} region(s), {}",
        regions.len(),
        if live {
            "LIVE: instances will be changed"
        } else {
            "dry run: nothing will be changed"
        }
    );

    let now = common.at.unwrap_or_else(Utc::now);
    let ids = (!common.instance_ids.is_empty()).then(|| common.instance_ids.clone());
    let tty = std::io::stderr().is_terminal();
    let config = &config;
    let mut reports: Vec<RunReport> = stream::iter(regions)
        .map(|region| {
            let sdk = base
                .to_builder()
                .region(aws_config::Region::new(region.clone()))
                .build();
            let account = account.clone();
            let ids = ids.clone();
            async move {
                let calls = CallCounter::default();
                let r = region.clone();
                let fleet = Ec2Fleet::new(ec2_client(&sdk, &calls), calls).with_progress(Progress(
                    Arc::new(move |n| {
                        if tty {
                            eprint!("\r{r}: {n} instances listed…");
                            let _ = std::io::stderr().flush();
                        }
                    }),
                ));
                let req = SweepRequest {
                    trigger: TriggerKind::Cli,
                    live,
                    now,
                    forecast: common.at.is_some(),
                    instance_ids: ids,
                    deadline: None,
                };
                let ctx = RunContext {
                    run_id: uuid::Uuid::new_v4().to_string(),
                    account,
                    region: region.clone(),
                };
                let report = sweep(&fleet, config, ctx, req).await;
                if tty {
                    eprint!("\r\x1b[K");
                }
                eprintln!(
                    "{}",
                    reaper::table::summary(&report)
                        .lines()
                        .next()
                        .unwrap_or_default()
                );
                report
            }
        })
        .buffer_unordered(usize::from(common.concurrency))
        .collect()
        .await;
    reports.sort_by(|a, b| a.region.cmp(&b.region));

    match common.output {
        Output::Table => print!("{}", reaper::table::render(&reports)),
        Output::Json => match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(err) => return fail(format!("could not serialise the reports: {err}")),
        },
    }
    if reports.iter().any(RunReport::has_failures) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
