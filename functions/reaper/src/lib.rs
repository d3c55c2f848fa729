//! ec2-reaper: terminates expired EC2 instances, stamps lifetimes, stops untagged instances.
//!
//! Data flows one way: event -> request -> sweep -> (fleet -> policy -> plan -> fleet) -> ledger
//! -> report -> sinks. Only `adapters` knows the SDK and HTTP; only `policy` knows the rules; only
//! `run::request` decides live vs dry run.

pub mod adapters;
pub mod app;
pub mod click;
pub mod config;
pub mod event;
pub mod handler;
pub mod logging;
pub mod policy;
pub mod ports;
pub mod process;
pub mod render;
pub mod report;
pub mod run;
mod text;

/// The checkout these crates were built from (`.cargo/config.toml`). Reading it makes cargo
/// rebuild the workspace crates when another checkout shared the dependency build last; `reaperctl
/// --version` prints it, so a test can tell whose binary ran.
pub const BUILT_FROM: &str = match option_env!("REAPER_CHECKOUT") {
    Some(dir) => dir,
    None => "(unknown: built outside the repository's cargo configuration)",
};
