//! The heart: pure rules. No AWS types, no async, no clock.

pub mod plan;
pub mod tags;
pub mod verdict;

pub use plan::{plan, plan_with, Action, Batch, Cap, Caps, Circuit, Plan};
pub use tags::{
    format_date, parse_lifetime, parse_termination_date, Lifetime, TagError, TerminationDate,
};
pub use verdict::{
    judge, Instance, InstanceState, Problem, Rules, Stamp, Verdict, VerdictKind, MANAGED_TAG_KEYS,
};
