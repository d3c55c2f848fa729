//! The use cases every entry point shares (the Lambda, `reaperctl`, a later function), generic
//! over the ports: a sweep and its report, and the report's delivery. The entry points only wire
//! adapters to these.

mod deliver;
mod sweep;

pub use deliver::{deliver, App, MAX_LOG_LINE_BYTES};
pub use sweep::sweep;
