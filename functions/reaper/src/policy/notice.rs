//! Owner notices, the pure part (SPEC §8): which notice an instance gets in a run. Whether one
//! is due before the reaper acts is the notice gate's (`policy::announce`); sending it and
//! recording `reaper:announced` are delivery's.

use serde::{Deserialize, Serialize};

/// The owner notice an instance gets in a run (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum NoticeKind {
    /// Its `termination_date` entered WARN_WINDOW and the owner has not been told of that date.
    WillTerminate,
    /// It was launched before the reaper was enrolled here and has no usable date: it is
    /// stopped only ENROLMENT_NOTICE after this notice (issue 18).
    WillStop,
    Terminated,
    Stopped,
}
