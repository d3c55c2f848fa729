//! Owner actions (issue 23): what a Slack button or an e-mail link asks, verified. Pure: no I/O;
//! `app::click` acts on it and `bin/reaper_actions.rs` wires it to a Function URL.

pub mod request;
pub mod slack;
pub mod token;
