//! The heart: pure rules. No AWS types, no async, no clock.

pub(crate) mod address;
pub(crate) mod announce;
pub mod extend;
pub(crate) mod notice;
pub mod plan;
pub mod price;
pub(crate) mod resource;
pub mod tags;
pub(crate) mod verdict;
pub(crate) mod window;

pub(crate) use notice::NoticeKind;
pub use plan::{plan, plan_with, Acting, Action, Batch, Cap, Caps, Circuit, Plan};
pub use resource::{ResourceId, ResourceKind};
pub use tags::{
    format_date, format_duration, parse_lifetime, parse_termination_date, Lifetime, TagError,
    TerminationDate,
};
pub use verdict::{
    judge, Asked, Bound, Instance, InstanceState, Problem, Rules, Stamp, StampRule, Tags, Verdict,
    VerdictKind, MANAGED_TAG_KEYS,
};
pub use window::{ActionWindow, WindowError};
