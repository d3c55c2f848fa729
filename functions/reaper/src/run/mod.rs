//! One run: the request (the only live/dry decision), the sweep, and the ledger of what happened.

pub mod ledger;
pub mod outcome;
pub mod request;
pub mod sweep;

pub use outcome::RunOutcome;
pub use request::{Mode, RunRequest, Scope, TriggerKind};
pub(crate) use sweep::sweep;
pub use sweep::RunContext;
