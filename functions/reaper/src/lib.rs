//! ec2-reaper: terminates expired EC2 instances, stamps lifetimes, stops untagged instances.
//!
//! Data flows one way: event -> request -> sweep -> (fleet -> policy -> plan -> fleet) -> ledger
//! -> report -> sinks. Only `adapters` knows the SDK and HTTP; only `policy` knows the rules; only
//! `run::request` decides live vs dry run.

pub mod adapters;
pub mod config;
pub mod event;
pub mod handler;
pub mod logging;
pub mod notice;
pub mod policy;
pub mod ports;
pub mod report;
pub mod run;
mod text;
