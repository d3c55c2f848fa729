//! When the reaper was enrolled in this account and region (SPEC §5): ENROLLED_AT when set, else
//! the deploying stack's creation time, read once per container through the `StackClock` port.

use crate::ports::{Deadline, StackClock};
use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// Where the enrolment time comes from, and what was read (cached for the container's life; a
/// failed read is tried again by the next run).
pub struct Enrolment {
    stack: Option<Box<dyn StackClock>>,
    known: Mutex<Option<DateTime<Utc>>>,
}

impl Enrolment {
    /// No stack to read: only ENROLLED_AT, if set, marks instances as pre-enrolment.
    pub fn none() -> Self {
        Enrolment {
            stack: None,
            known: Mutex::new(None),
        }
    }

    /// The creation time of the stack `clock` reads.
    pub fn of_stack(clock: impl StackClock + 'static) -> Self {
        Enrolment {
            stack: Some(Box::new(clock)),
            known: Mutex::new(None),
        }
    }

    /// The enrolment time: `explicit` (ENROLLED_AT) when set, else the stack's creation time,
    /// else `None` (nothing is known: no instance counts as pre-enrolment). A failed read is an
    /// error a person can act on; the caller treats every instance as pre-enrolment.
    pub(crate) async fn enrolled_at(
        &self,
        explicit: Option<DateTime<Utc>>,
        deadline: Deadline,
    ) -> Result<Option<DateTime<Utc>>, String> {
        if explicit.is_some() {
            return Ok(explicit);
        }
        let Some(clock) = &self.stack else {
            return Ok(None);
        };
        if let Some(at) = *self.known.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(Some(at));
        }
        let at = clock.created_at(deadline).await.map_err(|err| {
            format!(
                "enrolment: reading when stack {} (REAPER_STACK_ID) was created failed: {err}; this run treats every instance as launched before enrolment, so nothing is stopped or terminated without ENROLMENT_NOTICE (set ENROLLED_AT, or allow cloudformation:DescribeStacks on the stack)",
                clock.stack()
            )
        })?;
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
        Ok(Some(at))
    }
}
