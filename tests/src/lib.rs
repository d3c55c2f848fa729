//! End-to-end test harness for ec2-reaper: a moto server, a local Lambda Runtime API, the real
//! `reaper` binary as a child process, a Slack webhook stand-in, and event fixtures.
//!
//! Every server listens on 127.0.0.1 only and is stopped (by PID, for child processes) on drop.

pub mod actions;
pub mod ec2;
pub mod fake_ec2;
pub mod fixtures;
pub mod function;
pub mod measure;
pub mod moto;
pub mod net;
pub mod pricing;
pub mod proxy;
pub mod runtime_api;
pub mod webhook;

pub use ec2::launch;
pub use fixtures::{fixture, fixtures_dir};
pub use function::{
    actions_binary, reaper_binary, reaperctl_binary, target_dir, workspace_root, Function,
};
pub use moto::{moto_binary, Moto};
pub use pricing::{PriceListStub, PricingMode};
pub use runtime_api::{Invocation, RuntimeApi, FUNCTION_NAME};
pub use webhook::{RecordedRequest, WebhookMode, WebhookSink};
