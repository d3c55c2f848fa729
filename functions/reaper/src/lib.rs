//! ec2-reaper: terminates expired EC2 instances, stamps lifetimes, stops untagged instances.
//!
//! Data flows one way: event -> trigger -> sweep -> (fleet -> policy -> plan -> fleet) -> report
//! -> sinks. Only `aws` knows the SDK; only `policy` knows the rules.

pub mod aws;
pub mod config;
pub mod fleet;
pub mod handler;
pub mod logging;
pub mod notice;
pub mod policy;
pub mod report;
pub mod slack;
pub mod sweep;
pub mod table;
pub mod trigger;
