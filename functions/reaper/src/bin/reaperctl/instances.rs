//! `extend` and `why` on named instances in one region: the use cases in `reaper::app`, wired to
//! EC2 and printed for a person.

use super::flags::Target;
use super::session::{fail, rules_config, sdk_for};
use chrono::{DateTime, Utc};
use reaper::adapters::check_region;
use reaper::adapters::ec2::Ec2Fleet;
use reaper::adapters::lambda::function_environment;
use reaper::app::{self, Extend, TagWrite};
use reaper::config::Config;
use reaper::policy::extend::Extension;
use reaper::policy::format_date;
use reaper::policy::tags::format_duration;
use reaper::ports::Deadline;
use reaper::report::explain::explain;
use std::process::ExitCode;
use std::time::Duration;

/// The rules from this shell, and the fleet of the one region the instances are in.
struct Region {
    config: Config,
    sdk: aws_config::SdkConfig,
    fleet: Ec2Fleet,
    region: String,
}

async fn region(target: Target) -> Result<Region, ExitCode> {
    let config = rules_config().map_err(fail)?;
    let sdk = sdk_for(target.region, target.profile).await?;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(fail("no region: pass --region REGION or set AWS_REGION"));
    };
    check_region(&region).map_err(fail)?;
    let fleet = Ec2Fleet::from_sdk(&sdk);
    Ok(Region {
        config,
        sdk,
        fleet,
        region,
    })
}

/// How long `extend` and `why` may take, their one listing and every write included.
const NAMED_TIMEOUT: Duration = Duration::from_secs(120);

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

pub(crate) async fn extend(
    ids: Vec<String>,
    how: Extension,
    target: Target,
    function: String,
) -> ExitCode {
    let Region {
        config,
        sdk,
        fleet,
        region,
    } = match region(target).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let rules = extend_rules(&config, &sdk, &function, &region).await;
    let deadline = Deadline::after(NAMED_TIMEOUT);
    let results = match app::extend(&fleet, &ids, how, Utc::now(), &rules, deadline).await {
        Ok(results) => results,
        Err(err) => return fail(format!("describing the instances failed: {err}")),
    };
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

pub(crate) async fn why(ids: Vec<String>, target: Target, at: Option<DateTime<Utc>>) -> ExitCode {
    let Region {
        config,
        fleet,
        region,
        ..
    } = match region(target).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let now = at.unwrap_or_else(Utc::now);
    let deadline = Deadline::after(NAMED_TIMEOUT);
    let judged = match app::why(&fleet, &ids, now, &config.rules, deadline).await {
        Ok(judged) => judged,
        Err(err) => return fail(format!("describing the instances failed: {err}")),
    };
    let mut all_found = true;
    for (id, found) in judged {
        match found {
            Some((instance, verdict)) => {
                println!(
                    "{}\n",
                    explain(&instance, &verdict, &config.rules, now, &region)
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
