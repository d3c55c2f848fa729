//! Slack (SPEC §8): Block Kit rendering (`render`), mrkdwn safety (`mrkdwn`), posting to an
//! incoming webhook (`send`), and the text rendering the demo and golden files use (`text`).

pub mod mrkdwn;
pub mod render;
pub mod send;
#[cfg(any(test, feature = "test-util"))]
pub mod text;

pub use render::render;
pub use send::SlackWebhook;
