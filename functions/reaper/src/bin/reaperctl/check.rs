//! `check-config`: the function's own validation of a set of variables, before a deploy.

use reaper::config::{near_miss, ActionsConfig, Config, ACTIONS_VARS, KNOWN_VARS};
use std::process::ExitCode;

/// Variables the function accepts only together (or neither).
const PAIRED: [(&str, &str); 1] = [("ACTIONS_URL", "LINK_KEY_ARN")];

/// `check-config [--actions] NAME=VALUE...`: the function's own validation of exactly these
/// variables (the reaper's, or with `--actions` the owner-actions function's).
pub(crate) fn check_config(pairs: &[String], actions: bool) -> ExitCode {
    if actions {
        return check_actions(pairs);
    }
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
    // Each variable alone first, so that every bad value is named, not only the first; a
    // variable that is only valid with its partner (ACTIONS_URL and LINK_KEY_ARN) is checked
    // with it when both are given.
    for (name, value) in &vars {
        let partner = PAIRED
            .iter()
            .find_map(|&(a, b)| (a == name).then_some(b).or((b == name).then_some(a)));
        if let Err(err) = Config::from_lookup(|n| {
            if n == name {
                Some(value.clone())
            } else if Some(n) == partner {
                vars.get(n).cloned()
            } else {
                None
            }
        }) {
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

/// The owner-actions function's variables, read as `reaper-actions` reads them at start: the
/// first bad value is named, as its start-up line would name it.
fn check_actions(pairs: &[String]) -> ExitCode {
    let mut vars = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            let shown: String = pair.chars().take_while(|c| *c != '=').take(40).collect();
            errors.push(format!(
                "{shown:?} is not NAME=VALUE; write e.g. ADMIN_SLACK_IDS=U0123ABCD"
            ));
            continue;
        };
        if !ACTIONS_VARS.contains(&name) {
            errors.push(format!(
                "{name} is not a variable reaper-actions reads; it reads {}",
                ACTIONS_VARS.join(", ")
            ));
        } else if vars.insert(name.to_string(), value.to_string()).is_some() {
            errors.push(format!("{name} is given twice; give it once"));
        }
    }
    if errors.is_empty() {
        match ActionsConfig::from_lookup(|name| vars.get(name).cloned()) {
            Ok(_) => {
                println!("configuration ok");
                return ExitCode::SUCCESS;
            }
            Err(err) => errors.push(format!("configuration error: {err}")),
        }
    }
    for error in errors {
        anstream::eprintln!("reaperctl: {error}");
    }
    ExitCode::from(2)
}
