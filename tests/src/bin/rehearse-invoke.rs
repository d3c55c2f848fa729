//! `scripts/rehearse`'s last step: what Lambda would do with one scheduled event, which the local
//! emulator cannot do itself. Serves the Lambda Runtime API on 127.0.0.1, runs the given
//! `bootstrap` (from the published zip, under qemu on x86) with the given environment (the
//! deployed function's, plus the emulator's endpoint and credentials), feeds it one event and
//! prints the function's answer (the run report) as JSON on stdout.
//!
//! Usage: rehearse-invoke --bootstrap PATH --env-file FILE --region REGION --event FILE [--timeout SECONDS]
//! FILE for --env-file is a JSON object of environment variables. Exit 0 with the report, 1 when
//! the function failed or did not answer (its output then goes to stderr), 2 on bad arguments.

use reaper_e2e::{Function, Invocation, RuntimeApi};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

struct Args {
    bootstrap: PathBuf,
    env_file: PathBuf,
    region: String,
    event: PathBuf,
    timeout: Duration,
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("rehearse-invoke: error: {problem}");
    eprintln!("usage: rehearse-invoke --bootstrap PATH --env-file FILE --region REGION --event FILE [--timeout SECONDS]");
    ExitCode::from(2)
}

fn parse() -> Result<Args, String> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bootstrap" | "--env-file" | "--region" | "--event" | "--timeout" => {
                let value = it.next().ok_or(format!("{flag} needs a value"))?;
                found.insert(flag, value);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let timeout = match found.remove("--timeout") {
        None => Duration::from_secs(300),
        Some(v) => Duration::from_secs(
            v.parse::<u64>()
                .map_err(|_| format!("--timeout: '{v}' is not a whole number of seconds"))?,
        ),
    };
    let mut take = |flag: &str| found.remove(flag).ok_or(format!("{flag} is required"));
    Ok(Args {
        bootstrap: take("--bootstrap")?.into(),
        env_file: take("--env-file")?.into(),
        region: take("--region")?,
        event: take("--event")?.into(),
        timeout,
    })
}

fn read_json(path: &Path, what: &str) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{what}: {} is not JSON: {e}", path.display()))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(problem) => return usage(&problem),
    };
    let (env, event) = match (
        read_json(&args.env_file, "--env-file"),
        read_json(&args.event, "--event"),
    ) {
        (Ok(env), Ok(event)) => (env, event),
        (Err(problem), _) | (_, Err(problem)) => return usage(&problem),
    };
    let Some(vars) = env.as_object() else {
        return usage("--env-file: expected a JSON object of environment variables");
    };
    let mut pairs = Vec::with_capacity(vars.len());
    for (k, v) in vars {
        let Some(v) = v.as_str() else {
            return usage(&format!("--env-file: {k} is not a string"));
        };
        pairs.push((k.clone(), v.to_owned()));
    }
    let runtime = RuntimeApi::start(&args.region);
    let function = Function::spawn(&args.bootstrap, &runtime, &pairs);
    let answer = function.invoke(&runtime, event, args.timeout, args.timeout);
    let failed = |what: String| {
        eprintln!("rehearse-invoke: {what}");
        eprintln!("--- function stdout ---\n{}", function.stdout());
        eprintln!("--- function stderr ---\n{}", function.stderr());
        ExitCode::FAILURE
    };
    match answer {
        Invocation::Response(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string())
            );
            ExitCode::SUCCESS
        }
        Invocation::Error {
            error_type,
            error_message,
        } => failed(format!(
            "the function returned an error: {error_type}: {error_message}"
        )),
        Invocation::InitError {
            error_type,
            error_message,
        } => failed(format!(
            "the function failed to start: {error_type}: {error_message}"
        )),
        Invocation::TimedOut => failed(format!("no answer within {} s", args.timeout.as_secs())),
        Invocation::Exited(status) => {
            failed(format!("the function exited without answering ({status})"))
        }
    }
}
