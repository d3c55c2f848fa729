//! `check-config`: the function's own validation of a set of variables, before a deploy.

use reaper::config::{near_miss, ActionsConfig, Config, ACTIONS_VARS, KNOWN_VARS};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Variables the function accepts only together (or neither).
const PAIRED: [(&str, &str); 1] = [("ACTIONS_URL", "LINK_KEY_ARN")];

/// `check-config [--actions] NAME=VALUE...`: the function's own validation of exactly these
/// variables (the reaper's, or with `--actions` the owner-actions function's).
pub(crate) fn check_config(pairs: &[String], actions: bool) -> ExitCode {
    if actions {
        return check_actions(pairs);
    }
    let (vars, mut errors) = parse(pairs, "the reaper", &KNOWN_VARS, near_miss, "MAX_STOPS=200");
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
    conclude(errors, || {
        Config::from_lookup(|name| vars.get(name).cloned())
            .map(|config| config.warnings)
            .map_err(|err| err.to_string())
    })
}

/// With no error so far, the whole set read as the function reads it (`read`: its warnings, or
/// its start-up error in the same words); then `configuration ok` (exit 0) or every error (exit 2).
fn conclude(
    mut errors: Vec<String>,
    read: impl FnOnce() -> Result<Vec<String>, String>,
) -> ExitCode {
    if errors.is_empty() {
        match read() {
            Ok(warnings) => {
                for warning in &warnings {
                    anstream::eprintln!("reaperctl: warning: {warning}");
                }
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

/// The owner-actions function's variables, read as `reaper-actions` reads them at start: the
/// first bad value is named, as its start-up line would name it.
fn check_actions(pairs: &[String]) -> ExitCode {
    let (vars, errors) = parse(
        pairs,
        "reaper-actions",
        &ACTIONS_VARS,
        |_| None,
        "ADMIN_SLACK_IDS=U0123ABCD",
    );
    conclude(errors, || {
        ActionsConfig::from_lookup(|name| vars.get(name).cloned())
            .map(|_| Vec::new())
            .map_err(|err| err.to_string())
    })
}

/// NAME=VALUE pairs of the variables `function` reads (`known`): the variables, and one error
/// for each pair that is not NAME=VALUE, names an unknown variable (with `suggest`'s "did you
/// mean") or repeats one. Only a name is ever shown: a value may be the webhook.
fn parse(
    pairs: &[String],
    function: &str,
    known: &[&str],
    suggest: impl Fn(&str) -> Option<&'static str>,
    example: &str,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut vars = BTreeMap::new();
    let mut errors = Vec::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            let shown: String = pair.chars().take_while(|c| *c != '=').take(40).collect();
            errors.push(format!("{shown:?} is not NAME=VALUE; write e.g. {example}"));
            continue;
        };
        if !known.contains(&name) {
            errors.push(match suggest(name) {
                Some(near) => {
                    format!("{name} is not a variable {function} reads; did you mean {near}?")
                }
                None => format!(
                    "{name} is not a variable {function} reads; it reads {}",
                    known.join(", ")
                ),
            });
        } else if vars.insert(name.to_string(), value.to_string()).is_some() {
            errors.push(format!("{name} is given twice; give it once"));
        }
    }
    (vars, errors)
}
