//! One run: the request (the only live/dry decision), the sweep, and the ledger of what happened.

pub mod ledger;
pub mod request;
pub mod sweep;

pub use request::{Mode, RunRequest, Scope, TriggerKind};
pub use sweep::{sweep, RunContext};
