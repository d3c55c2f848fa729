//! The command line: every command, flag and argument, and how each value is checked before
//! anything is called (clap). Nothing here calls AWS.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use reaper::adapters::check_region;
use reaper::adapters::lambda::DEFAULT_FUNCTION;
use reaper::config::KNOWN_VARS;
use reaper::event::valid_instance_id;

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
        "ACTIONS_URL" => {
            "owner-actions URL: Keep buttons and links in notices; with LINK_KEY_ARN (none)"
        }
        "LINK_KEY_ARN" => "secret that signs the Keep buttons and links; with ACTIONS_URL (none)",
        _ => return None,
    })
}

/// `--help`'s epilogue: exit codes, then every configuration variable with its meaning.
pub(crate) static AFTER_HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
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
pub(crate) static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}\nbuilt from: {}",
        env!("CARGO_PKG_VERSION"),
        reaper::BUILT_FROM
    )
});

#[derive(Parser)]
#[command(name = "reaperctl", version, long_version = LONG_VERSION.as_str(), about = "See (and, if you say so, do) what ec2-reaper does to your EC2 instances", after_help = AFTER_HELP.as_str())]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Totals of the evidence store: actions, savings and compliance per account and month.
    ///
    /// Reads the records files (docs/EVIDENCE.md) of an S3 bucket or a folder with its layout,
    /// only the `account=` and `dt=` partitions asked for, 16 at once. Live runs only.
    Report {
        /// s3://BUCKET[/PREFIX], or a folder holding `evidence/`.
        #[arg(long, value_name = "SOURCE")]
        source: String,
        /// First date (of the runs, UTC) to count: YYYY-MM-DD.
        #[arg(long, value_name = "DATE", value_parser = reaper::app::evidence::parse_date)]
        since: Option<chrono::NaiveDate>,
        /// Last date to count (inclusive): YYYY-MM-DD.
        #[arg(long, value_name = "DATE", value_parser = reaper::app::evidence::parse_date)]
        until: Option<chrono::NaiveDate>,
        /// Only this account (repeatable). Default: every account in the store.
        #[arg(long = "account", value_name = "ACCOUNT_ID", value_parser = parse_account)]
        accounts: Vec<String>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Also write one self-contained HTML page with charts to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
        /// AWS profile (an s3:// source).
        #[arg(long)]
        profile: Option<String>,
        /// Region of the bucket (an s3:// source). Default: the profile's region.
        #[arg(long, value_name = "REGION", value_parser = parse_region)]
        region: Option<String>,
    },
    /// Check NAME=VALUE configuration with the function's own rules.
    ///
    /// Only the arguments are read, nothing from this shell's environment. Exit 0 and
    /// `configuration ok`, or exit 2 with the function's own error (one line each) on stderr.
    /// Values are never echoed.
    CheckConfig {
        /// Check the owner-actions function's variables (reaper-actions) instead of the reaper's.
        #[arg(long)]
        actions: bool,
        /// Variables as NAME=VALUE.
        #[arg(value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
}

/// One account and region, for the commands that work on named instances.
#[derive(Args)]
pub(crate) struct Target {
    /// Region of the instances (one). Default: the profile's region.
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    pub(crate) region: Option<String>,
    /// AWS profile to use.
    #[arg(long)]
    pub(crate) profile: Option<String>,
}

#[derive(Args)]
pub(crate) struct Common {
    /// Region(s) to sweep: repeatable or comma-separated (--region eu-west-1,us-east-1).
    /// Default: the profile's region.
    #[arg(long = "region", value_name = "REGION", value_delimiter = ',', value_parser = parse_region)]
    pub(crate) regions: Vec<String>,
    /// Sweep every region enabled for the account (DescribeRegions).
    #[arg(long, conflicts_with = "regions")]
    pub(crate) all_regions: bool,
    /// AWS profile to use.
    #[arg(long)]
    pub(crate) profile: Option<String>,
    /// Forecast: judge as if it were this time (RFC 3339, e.g. 2030-01-01T00:00:00Z). Dry run only.
    #[arg(long, value_parser = parse_at)]
    pub(crate) at: Option<DateTime<Utc>>,
    /// Judge only these instances (repeatable).
    #[arg(long = "instance-id", value_name = "ID", value_parser = parse_instance_id)]
    pub(crate) instance_ids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    /// Table: every cell in full. Otherwise rows fit the terminal (or COLUMNS), Name, Owner and
    /// Reason cut with `…`.
    #[arg(long)]
    pub(crate) wide: bool,
    /// Regions swept at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub(crate) concurrency: u16,
    /// Give up after this many seconds: no new work starts in the last 30 s, every AWS call is
    /// held to what is left, and what was not done is reported `deferred`.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub(crate) timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
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
