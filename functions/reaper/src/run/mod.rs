//! One run: the request (the only live/dry decision), the sweep, and the ledger of what happened.

pub(crate) mod ledger;
pub(crate) mod outcome;
pub(crate) mod request;
pub(crate) mod sweep;

pub use outcome::RunOutcome;
pub use request::{Mode, RunRequest, Scope, TriggerKind};
pub(crate) use sweep::sweep;
pub use sweep::RunContext;
