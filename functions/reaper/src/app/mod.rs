//! The use cases every entry point shares (the Lambda, `reaperctl`, a later function), generic
//! over the ports: a sweep and its report, the report's delivery, extend and why. The entry points only wire
//! adapters to these.

pub mod click;
mod deliver;
mod enrolment;
pub mod evidence;
mod extend;
#[cfg(test)]
mod gate_tests;
mod savings;
mod sweep;
mod why;

pub use deliver::deliver;
pub use deliver::{App, MAX_LOG_LINE_BYTES};
pub use enrolment::Enrolment;
pub use extend::{extend, Extend, TagWrite};
pub use sweep::{sweep, sweep_priced};
pub use why::why;
