//! `plan` and `sweep`: the Lambda's sweep from a laptop, across regions at once, with a typed
//! confirmation before a live sweep changes anything.

use super::flags::{Common, Output};
use super::session::{fail, rules_config, sdk_for};
use chrono::Utc;
use futures::stream::{self, StreamExt};
use reaper::adapters::ec2::{Ec2Fleet, Progress};
use reaper::adapters::{account_id, check_region, enabled_regions};
use reaper::adapters::{pricing::PriceList, s3::S3Archive, ses::Mailer, slack::SlackWebhook};
use reaper::app::{self, sweep_priced, App, Enrolment};
use reaper::config::Config;
use reaper::ports::Deadline;
use reaper::report::{table, Outcome, RunReport};
use reaper::run::{RunContext, RunRequest};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `plan` (`live` false) or `sweep`: every region, then the table or the JSON on stdout.
pub(crate) async fn run(
    common: Common,
    live: bool,
    yes: bool,
    expect_account: Option<String>,
) -> ExitCode {
    // Before anything is listed: a live sweep that cannot be confirmed goes no further.
    if live && !yes && !std::io::stdin().is_terminal() {
        return fail("--live without a terminal to confirm on needs --yes (in scripts, with --expect-account ACCOUNT_ID); nothing was listed or changed");
    }
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

    // Every call, STS's included, goes to a region the person named when they named one.
    let mut regions = common.regions.clone();
    regions.sort();
    regions.dedup();
    let base = match sdk_for(regions.first().cloned(), common.profile.clone()).await {
        Ok(sdk) => sdk,
        Err(code) => return code,
    };
    if let Some(region) = base.region().filter(|_| regions.is_empty()) {
        if let Err(err) = check_region(region.as_ref()) {
            return fail(format!("{err} (the profile's or AWS_REGION's region)"));
        }
    }
    let regions = if common.all_regions {
        if base.region().is_none() {
            return fail("--all-regions needs a region to ask DescribeRegions in: set AWS_REGION or the profile's region");
        }
        match enabled_regions(&base).await {
            Ok(r) => r,
            Err(err) => return fail(format!("listing enabled regions failed: {err}")),
        }
    } else if !regions.is_empty() {
        regions
    } else if let Some(region) = base.region() {
        vec![region.to_string()]
    } else {
        return fail(
            "no region: pass --region REGION (repeatable or comma-separated) or --all-regions, or set AWS_REGION",
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
    let summaries = common.output == Output::Json;
    let in_regions = format!(
        "{} region{}",
        regions.len(),
        if regions.len() == 1 { "" } else { "s" }
    );
    if req.is_live() && !yes {
        eprintln!(
            "reaperctl: account {account}, {in_regions}: listing what a live sweep would change"
        );
        let preview = req.preview();
        let plan = sweep_regions(
            &base,
            &regions,
            &account,
            &config,
            &preview,
            common.concurrency,
            false,
        )
        .await;
        if let Err(why) = confirmed(&account, &plan) {
            return fail(why);
        }
    }
    eprintln!(
        "reaperctl: account {account}, {in_regions}, {}",
        if req.is_live() {
            "LIVE: instances will be changed"
        } else {
            "dry run: nothing will be changed"
        }
    );

    let reports = sweep_regions(
        &base,
        &regions,
        &account,
        &config,
        &req,
        common.concurrency,
        summaries,
    )
    .await;
    match common.output {
        Output::Table => {
            let mut out = anstream::stdout().lock();
            let written =
                out.write_all(table::render_with(&reports, table_layout(common.wide)).as_bytes());
            if let Err(err) = written.and_then(|()| out.flush()) {
                return fail(format!("could not write the table: {err}"));
            }
        }
        // Streamed: a 100 000-instance report is never held as one string.
        Output::Json => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = serde_json::to_writer_pretty(&mut out, &reports)
                .map_err(|err| err.to_string())
                .and_then(|()| {
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

/// Sweeps every region with one request; reports sorted by region. With JSON on stdout, each
/// region's summary line goes to stderr as it finishes (the table prints its own, once).
async fn sweep_regions(
    base: &aws_config::SdkConfig,
    regions: &[String],
    account: &str,
    config: &Config,
    req: &RunRequest,
    concurrency: u16,
    summaries: bool,
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
            let prices = PriceList::from_sdk(&sdk, &ctx.region);
            let mut report = sweep_priced(&fleet, Some(&prices), config, ctx, req).await;
            // A live sweep tells the owners and records what reached them, as the Lambda does;
            // its log lines are not wanted on a terminal (the table or JSON is the output).
            if req.is_live() {
                let app = App {
                    chat: SlackWebhook::configured(config, &sdk, fleet.counter()),
                    mailer: Mailer::configured(config, &sdk, fleet.counter()),
                    archive: None::<S3Archive>,
                    config: config.clone(),
                    region: report.region.clone(),
                    enrolment: Enrolment::none(),
                    prices: None,
                    keep_links: None,
                    fleet,
                };
                app::deliver(&app, &mut report, Deadline::NONE, &mut std::io::sink()).await;
            }
            if tty {
                eprint!("\r\x1b[K");
            }
            if summaries {
                eprintln!(
                    "{}",
                    table::summary(&report).lines().next().unwrap_or_default()
                );
            }
            report
        })
        .buffer_unordered(usize::from(concurrency))
        .collect()
        .await;
    reports.sort_by(|a, b| a.region.cmp(&b.region));
    reports
}

/// How many instances the confirmation prompt lists by name before it only counts.
const PROMPT_LIST: usize = 20;

/// What a live sweep is about to change, from a dry run a moment before: the first instances by
/// id, Name and action, then counts.
fn about_to(reports: &[RunReport]) -> String {
    use reaper::policy::VerdictKind::{Stamp, Stop, Terminate};
    let acting: Vec<(&str, &reaper::report::InstanceReport)> = reports
        .iter()
        .flat_map(|r| r.instances.iter().map(move |i| (r.region.as_str(), i)))
        .filter(|(_, i)| {
            matches!(i.verdict, Terminate | Stop | Stamp) && i.outcome == Some(Outcome::Would)
        })
        .collect();
    let bold = anstyle::Style::new().bold();
    let mut out = String::new();
    for (region, i) in acting.iter().take(PROMPT_LIST) {
        let name = i.name.as_deref().unwrap_or("-");
        let name = if name.chars().count() > 32 {
            format!("{}…", name.chars().take(31).collect::<String>())
        } else {
            name.to_string()
        };
        let _ = writeln!(
            out,
            "  {bold}{:<9}{bold:#}  {}  {:<32}  {region}",
            i.verdict.to_string(),
            i.id,
            name
        );
    }
    let count = |k| reports.iter().map(|r| r.verdict_count(k)).sum::<u64>();
    if acting.len() > PROMPT_LIST {
        let _ = writeln!(out, "  … and {} more", acting.len() - PROMPT_LIST);
    }
    let _ = write!(
        out,
        "  in all: terminate {}, stop {}, stamp {} in {} region{}",
        count(Terminate),
        count(Stop),
        count(Stamp),
        reports.len(),
        if reports.len() == 1 { "" } else { "s" }
    );
    out
}

/// aws-nuke's guard: a live sweep goes ahead only when the person types the account id.
fn confirmed(account: &str, plan: &[RunReport]) -> Result<(), String> {
    anstream::eprint!(
        "reaperctl: a live sweep in account {account} is about to change:\n{}\nType the account id to go ahead: ",
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

/// The table's width: none with --wide; else COLUMNS, else the terminal's; none on a pipe.
fn table_layout(wide: bool) -> table::Layout {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .or_else(|| {
            terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
        })
        .filter(|w| *w > 0);
    table::Layout {
        width: if wide { None } else { width },
        wide,
        // anstream strips it again off a terminal, and under NO_COLOR or TERM=dumb.
        colour: true,
    }
}
