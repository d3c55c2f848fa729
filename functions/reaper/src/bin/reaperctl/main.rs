//! reaperctl: the reaper's sweep from a laptop, with your own AWS credentials, across regions.
//!
//! `main` only dispatches: the flags are in `flags`, each command in its own module, and the
//! use cases they share with the Lambda in `reaper::app`.

mod check;
mod flags;
mod instances;
mod report;
mod session;
mod sweep;

use clap::Parser;
use flags::{Cli, Command};
use reaper::policy::extend::Extension;
use std::process::ExitCode;

// One thread: regions run concurrently as futures (`buffer_unordered`); worker threads would only
// add malloc arenas (peak memory).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    reaper::process::tune_allocator();
    match Cli::parse().command {
        Command::CheckConfig { vars, actions } => check::check_config(&vars, actions),
        Command::Why { ids, target, at } => instances::why(ids, target, at).await,
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
                (None, None) => return session::fail("--by or --until is needed"),
            };
            instances::extend(ids, how, target, function).await
        }
        Command::Report {
            source,
            since,
            until,
            accounts,
            output,
            html,
            profile,
            region,
        } => {
            let query = reaper::app::evidence::Query {
                since,
                until,
                accounts,
            };
            report::run(&source, query, output, html, profile, region).await
        }
        Command::Plan(common) => sweep::run(common, false, false, None).await,
        Command::Sweep {
            common,
            live,
            yes,
            expect_account,
        } => sweep::run(common, live, yes, expect_account).await,
    }
}
