//! ec2-reaper: terminates expired EC2 instances, stamps lifetimes, stops untagged instances.
//!
//! Data flows one way: event -> trigger -> sweep -> (fleet -> policy -> plan -> fleet) -> report
//! -> sinks. Only `aws` knows the SDK; only `policy` knows the rules.

pub mod config;
pub mod policy;
