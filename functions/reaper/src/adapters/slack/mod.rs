//! Slack (SPEC §8): posting to an incoming webhook. The message itself is rendered in
//! `render::slack`, which knows no adapter.

pub(crate) mod send;

pub use send::SlackWebhook;
