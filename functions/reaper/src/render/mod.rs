//! PURE renderers: the Slack message (Block Kit, owner lines, mrkdwn safety), the owners' e-mail
//! (text and HTML), and the owner grouping they share. They know no adapter: a sink gets the
//! payload they return.
//!
//! What every renderer returns: the payload a sink takes, and the resources it named. A message
//! that folds an instance into "…and N more" has not told anyone about it, so what is recorded
//! as announced (`reaper:announced`) comes from `named`, never from what the run meant to say.

pub mod click;
pub mod evidence_html;
pub(crate) mod mrkdwn;
pub mod notice;
pub(crate) mod slack;
#[cfg(any(test, feature = "test-util"))]
pub mod slack_text;

use crate::policy::ResourceId;

/// A rendered message and the resources a reader of it sees by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<T> {
    pub payload: T,
    /// Each at most once, in the order first named.
    pub named: Vec<ResourceId>,
}
