//! reaperctl: the reaper's sweep from a laptop, with your own AWS credentials, across regions.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt};
use reaper::adapters::ec2::{Ec2Fleet, Progress};
use reaper::adapters::lambda::{function_environment, DEFAULT_FUNCTION};
use reaper::adapters::{
    account_id, check_credentials, check_profile, check_region, enabled_regions, load_sdk_config,
};
use reaper::adapters::{
    cloudformation::Enrolment, pricing::PriceList, s3::S3Archive, ses::Mailer, slack::SlackWebhook,
};
use reaper::app::{self, sweep_priced, App, Extend, TagWrite};
use reaper::config::{near_miss, Config, KNOWN_VARS};
use reaper::event::valid_instance_id;
use reaper::policy::extend::Extension;
use reaper::policy::format_date;
use reaper::policy::tags::format_duration;
use reaper::ports::Deadline;
use reaper::ports::Fleet;
use reaper::report::explain::explain;
use reaper::report::{table, Outcome, RunReport};
use reaper::run::{RunContext, RunRequest};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// One line on each variable the function reads (`config::KNOWN_VARS`); a variable added there
/// without a line here fails `every_configuration_variable_is_described`.
fn describe(var: &str) -> Option<&'static str> {
    Some(match var {
        "LIVEMODE" => "`true`: the Lambda acts, else a dry run (reaperctl: only sweep --live)",
        "SLACKWEBHOOK" => "Slack incoming-webhook URL for run summaries (a secret)",
        "SLACKWEBHOOK_SECRET_ARN" => "Secrets Manager secret that holds that URL instead",
        "GRACE_PERIOD" => "how long a new instance may lack a valid tag before a stop (15m)",
        "WARN_WINDOW" => "how long before its date an instance is expiring, owner told (1d)",
        "MAX_TERMINATIONS" => "most terminations per region and run, or unlimited (100)",
        "MAX_STOPS" => "most stops per region and run, or unlimited (200)",
        "SKIP_MANAGED" => "leave Auto Scaling, EKS, EMR and similar instances alone (true)",
        "OWNER_TAG" => "the tag key that names an instance's owner (owner)",
        "REPORT_BUCKET" => "S3 bucket for each run's JSON report (none)",
        "MAX_LIFETIME" => "longest life from first launch, whatever the tags (unlimited)",
        "ALLOW_INDEFINITE" => "whether `indefinite` in a tag is honoured (true)",
        "ACTION_WINDOW" => "when to act, e.g. Mon-Fri 09:00-17:00 Europe/Berlin (always)",
        "NOTICE_FROM" => "SES address owner e-mails come from; empty sends none (none)",
        "ENROLMENT_NOTICE" => "least notice before acting on machines older than the reaper (7d)",
        "ENROLLED_AT" => "when the reaper was enrolled here, RFC 3339 (the stack's creation)",
        "DIGEST_AT" => "hour of the daily channel digest, 00-23, window's zone or UTC (09)",
        "REAPER_STACK_ID" => "the deploying stack; its creation time is the enrolment (template)",
        _ => return None,
    })
}

/// `--help`'s epilogue: exit codes, then every configuration variable with its meaning.
static AFTER_HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let width = KNOWN_VARS.iter().map(|v| v.len()).max().unwrap_or(0);
    let vars: String = KNOWN_VARS
        .iter()
        .map(|v| format!("  {v:<width$}  {}\n", describe(v).unwrap_or("")))
        .collect();
    format!(
        "\
Exit codes:
  0  every region swept; nothing failed and no circuit opened
  1  an instance action failed, a circuit opened, or a region reported an error
  2  bad arguments or configuration, or a live sweep not confirmed (nothing was changed)

Configuration: the environment variables the Lambda reads (defaults in parentheses). reaperctl
reads the rules from the same variables in its own environment; `extend` takes MAX_LIFETIME and
ALLOW_INDEFINITE from the deployed function when it can read them. `check-config NAME=VALUE...`
validates a set before a deploy.
{vars}
Credentials and region come from the usual AWS chain (--profile, AWS_PROFILE, environment, SSO);
--region is used for every call, STS included. Colour only on a terminal; NO_COLOR turns it off."
    )
});

/// `--version` also names the checkout the binary was built from (`-V` stays short).
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}\nbuilt from: {}",
        env!("CARGO_PKG_VERSION"),
        reaper::BUILT_FROM
    )
});

#[derive(Parser)]
#[command(name = "reaperctl", version, long_version = LONG_VERSION.as_str(), about = "See (and, if you say so, do) what ec2-reaper does to your EC2 instances", after_help = AFTER_HELP.as_str())]
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
        /// Really terminate, stop and tag instances. Lists what it is about to change and asks you
        /// to type the account id first.
        #[arg(long)]
        live: bool,
        /// With --live: do not ask (scripts). Without a terminal, --live needs --yes.
        #[arg(long, requires = "live")]
        yes: bool,
        /// Refuse to run in any other account (a guard for scripts and wrong profiles).
        #[arg(long, value_name = "ACCOUNT_ID", value_parser = parse_account)]
        expect_account: Option<String>,
    },
    /// Write a later termination_date on instances, within MAX_LIFETIME.
    ///
    /// With your own credentials. Refuses beyond MAX_LIFETIME (the deployed function's when it
    /// can be read, else this shell's; the bound is named) and beyond 100 years. Prints the old
    /// and the new date.
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
        /// The deployed reaper function whose MAX_LIFETIME and ALLOW_INDEFINITE apply
        /// (lambda:GetFunctionConfiguration in the instances' region).
        #[arg(long, value_name = "NAME", default_value = DEFAULT_FUNCTION)]
        function: String,
    },
    /// Why the reaper would (or would not) act on instances. Reads only.
    ///
    /// Verdict, reason and when, in one paragraph per instance.
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
    /// Check NAME=VALUE configuration with the function's own rules.
    ///
    /// Only the arguments are read, nothing from this shell's environment. Exit 0 and
    /// `configuration ok`, or exit 2 with the function's own error (one line each) on stderr.
    /// Values are never echoed.
    CheckConfig {
        /// Variables as NAME=VALUE.
        #[arg(value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
}

/// One account and region, for the commands that work on named instances.
#[derive(Args)]
struct Target {
    /// Region of the instances (one). Default: the profile's region.
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    region: Option<String>,
    /// AWS profile to use.
    #[arg(long)]
    profile: Option<String>,
}

#[derive(Args)]
struct Common {
    /// Region(s) to sweep: repeatable or comma-separated (--region eu-west-1,us-east-1).
    /// Default: the profile's region.
    #[arg(long = "region", value_name = "REGION", value_delimiter = ',', value_parser = parse_region)]
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
    /// Table: every cell in full. Otherwise rows fit the terminal (or COLUMNS), Name, Owner and
    /// Reason cut with `…`.
    #[arg(long)]
    wide: bool,
    /// Regions swept at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    concurrency: u16,
    /// Give up after this many seconds: no new work starts in the last 30 s, every AWS call is
    /// held to what is left, and what was not done is reported `deferred`.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn parse_region(s: &str) -> Result<String, String> {
    check_region(s).map(|()| s.to_string())
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
    anstream::eprintln!("reaperctl: {msg}");
    ExitCode::from(2)
}

/// The SDK configuration for `region` (every client, STS included, is built from it), after the
/// profile and the credentials are known to be usable: a person reads one sentence, not the
/// error chain of every credential provider the SDK tried.
async fn sdk_for(
    region: Option<String>,
    profile: Option<String>,
) -> Result<aws_config::SdkConfig, ExitCode> {
    check_profile(profile.as_deref()).await.map_err(fail)?;
    let sdk = load_sdk_config(region, profile).await;
    check_credentials(&sdk).await.map_err(fail)?;
    Ok(sdk)
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

use std::fmt::Write as _;

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

/// Rules from the environment, as the Lambda reads them, and the owner notices' sinks
/// (SLACKWEBHOOK, SLACKWEBHOOK_SECRET_ARN, NOTICE_FROM): a live sweep from a laptop tells the
/// owners what the Lambda would. LIVEMODE and REPORT_BUCKET do not apply to a laptop.
fn rules_config() -> Result<Config, String> {
    let laptop =
        std::env::vars().filter(|(name, _)| !matches!(name.as_str(), "LIVEMODE" | "REPORT_BUCKET"));
    // from_vars: a misspelt variable (MAX_TERMINATION=0) is a warning in every report.
    Config::from_vars(laptop).map_err(|err| format!("configuration error: {err}"))
}

/// The rules, the fleet of one region, and the named instances as listed now: what `why` and
/// `extend` work on.
struct Named {
    config: Config,
    sdk: aws_config::SdkConfig,
    fleet: Ec2Fleet,
    region: String,
    listed: Vec<reaper::policy::Instance>,
    deadline: Deadline,
}

async fn named(ids: &[String], target: Target) -> Result<Named, ExitCode> {
    let config = rules_config().map_err(fail)?;
    let sdk = sdk_for(target.region, target.profile).await?;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(fail("no region: pass --region REGION or set AWS_REGION"));
    };
    check_region(&region).map_err(fail)?;
    let fleet = Ec2Fleet::from_sdk(&sdk);
    let deadline = Deadline::after(Duration::from_secs(120));
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    let listed = fleet
        .list(Some(&wanted), deadline)
        .await
        .map_err(|err| fail(format!("describing the instances failed: {err}")))?;
    Ok(Named {
        config,
        sdk,
        fleet,
        region,
        listed,
        deadline,
    })
}

/// MAX_LIFETIME and ALLOW_INDEFINITE as the deployed function has them, else as this shell has
/// them; one line on stderr says which and from where.
async fn extend_rules(
    local: &Config,
    sdk: &aws_config::SdkConfig,
    function: &str,
    region: &str,
) -> reaper::policy::Rules {
    let mut rules = local.rules.clone();
    let source = match function_environment(sdk, function).await {
        Ok(vars) => match Config::from_lookup(|name| vars.get(name).cloned()) {
            Ok(deployed) => {
                rules.max_lifetime = deployed.rules.max_lifetime;
                rules.allow_indefinite = deployed.rules.allow_indefinite;
                format!("from the deployed function {function} in {region}")
            }
            Err(err) => format!(
                "from this shell's environment: the deployed function {function}'s configuration is refused ({err})"
            ),
        },
        Err(err) => format!(
            "from this shell's environment: the deployed function {function} in {region} could not be read ({})",
            err.code
        ),
    };
    anstream::eprintln!(
        "reaperctl: MAX_LIFETIME={}, ALLOW_INDEFINITE={} {source}",
        rules
            .max_lifetime
            .map_or_else(|| "unlimited".to_string(), format_duration),
        rules.allow_indefinite
    );
    rules
}

async fn extend(ids: Vec<String>, how: Extension, target: Target, function: String) -> ExitCode {
    let Named {
        config,
        sdk,
        fleet,
        region,
        listed,
        deadline,
    } = match named(&ids, target).await {
        Ok(named) => named,
        Err(code) => return code,
    };
    let rules = extend_rules(&config, &sdk, &function, &region).await;
    let results = app::extend(&fleet, &ids, &listed, how, Utc::now(), &rules, deadline).await;
    let mut ok = true;
    for (id, result) in results {
        let (old, new, ext, write) = match result {
            Extend::NotFound => {
                ok = false;
                eprintln!("{id}: not found in a judged state in {region}; nothing written");
                continue;
            }
            Extend::Refused(why) => {
                ok = false;
                eprintln!("{id}: {why}; nothing written");
                continue;
            }
            Extend::Tried {
                old,
                new,
                extension,
                write,
            } => (old, new, extension, write),
        };
        if let Some(note) = &ext.note {
            eprintln!("{id}: {note}");
        }
        match write {
            TagWrite::Done => {
                println!("{id}: termination_date {old} -> {new}");
                if let Some(bound) = ext.bound {
                    eprintln!(
                        "{id}: MAX_LIFETIME ends it at {} at the latest, whatever its tag says",
                        format_date(bound)
                    );
                }
            }
            TagWrite::Failed(err) => {
                ok = false;
                eprintln!("{id}: writing termination_date={new} failed: {err}");
            }
            TagWrite::Lost(err) => {
                ok = false;
                eprintln!(
                    "{id}: writing termination_date={new}: the answer was lost ({err}); run `reaperctl why {id} --region {region}` to see what the tag is now"
                );
            }
            TagWrite::NotAttempted => {
                ok = false;
                eprintln!("{id}: termination_date={new} not written: time ran out");
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
    for (id, found) in app::why(&ids, &listed, now, &config.rules) {
        match found {
            Some((instance, verdict)) => {
                println!(
                    "{}\n",
                    explain(instance, &verdict, &config.rules, now, &region)
                );
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

/// `check-config NAME=VALUE...`: the function's own validation of exactly these variables.
fn check_config(pairs: &[String]) -> ExitCode {
    let mut vars = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for pair in pairs {
        // Only the name is ever shown: a value may be the webhook.
        let Some((name, value)) = pair.split_once('=') else {
            let shown: String = pair.chars().take_while(|c| *c != '=').take(40).collect();
            errors.push(format!(
                "{shown:?} is not NAME=VALUE; write e.g. MAX_STOPS=200"
            ));
            continue;
        };
        if !KNOWN_VARS.contains(&name) {
            errors.push(match near_miss(name) {
                Some(known) => {
                    format!("{name} is not a variable the reaper reads; did you mean {known}?")
                }
                None => format!(
                    "{name} is not a variable the reaper reads; it reads {}",
                    KNOWN_VARS.join(", ")
                ),
            });
        } else if vars.insert(name.to_string(), value.to_string()).is_some() {
            errors.push(format!("{name} is given twice; give it once"));
        }
    }
    // Each variable alone first, so that every bad value is named, not only the first.
    for (name, value) in &vars {
        if let Err(err) = Config::from_lookup(|n| (n == name).then(|| value.clone())) {
            errors.push(format!("configuration error: {err}"));
        }
    }
    if errors.is_empty() {
        match Config::from_lookup(|name| vars.get(name).cloned()) {
            Ok(config) => {
                for warning in &config.warnings {
                    anstream::eprintln!("reaperctl: warning: {warning}");
                }
                println!("configuration ok");
                return ExitCode::SUCCESS;
            }
            // The same words as the function's start-up error.
            Err(err) => errors.push(format!("configuration error: {err}")),
        }
    }
    for error in errors {
        anstream::eprintln!("reaperctl: {error}");
    }
    ExitCode::from(2)
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

// One thread: regions run concurrently as futures (`buffer_unordered`); worker threads would only
// add malloc arenas (peak memory).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    reaper::process::tune_allocator();
    let cli = Cli::parse();
    let (common, live, yes, expect_account) = match cli.command {
        Command::CheckConfig { vars } => return check_config(&vars),
        Command::Why { ids, target, at } => return why(ids, target, at).await,
        Command::Extend {
            ids,
            by,
            until,
            target,
            function,
        } => {
            let how = match (by, until) {
                (Some(by), _) => Extension::By(by),
                (None, Some(until)) => Extension::Until(until),
                (None, None) => return fail("--by or --until is needed"),
            };
            return extend(ids, how, target, function).await;
        }
        Command::Plan(common) => (common, false, false, None),
        Command::Sweep {
            common,
            live,
            yes,
            expect_account,
        } => (common, live, yes, expect_account),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_configuration_variable_is_described() {
        for var in KNOWN_VARS {
            assert!(describe(var).is_some(), "{var} has no line in --help");
        }
        Cli::command().debug_assert();
    }
}
