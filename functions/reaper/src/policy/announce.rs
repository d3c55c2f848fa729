//! The notice gate (SPEC §5, §8): nothing is terminated that its owner was not told about in
//! time, and an instance that predates the reaper's enrolment is not stopped without
//! ENROLMENT_NOTICE. Pure: the sweep reads the `reaper:announced` tag, asks `gate` or
//! `gate_stop`, delivers what the answer says to announce, and records only what was delivered.
//!
//! The record lives on the instance (stateless) in one tag, because EC2 allows 50 tags and
//! owners need most of them: `<action> <date> <provenance> <when>`, e.g.
//! `terminate 2030-01-02T00:00:00Z told 2030-01-01T00:00:00Z`. A changed date or action does not
//! match the record and so re-arms the notice; a value the reaper cannot read counts as never
//! announced, with a reason a person can read.

use super::tags::format_date;
use chrono::{DateTime, TimeDelta, Utc};
use std::fmt;

/// The tag that records what was announced. IAM requires `terminate *` in it for
/// `TerminateInstances` (docs/IAM.md).
pub(crate) const ANNOUNCED_TAG: &str = "reaper:announced";

/// How far in the future a record's `when` may lie before it is taken for a hand-made value
/// rather than the reaper's own clock being a little behind another writer's.
pub(crate) const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// What the reaper said it will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deed {
    Terminate,
    Stop,
}

impl Deed {
    fn as_str(self) -> &'static str {
        match self {
            Deed::Terminate => "terminate",
            Deed::Stop => "stop",
        }
    }
}

/// Who fixed the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provenance {
    /// The reaper named the instance and the date in a delivered message at `when`.
    Told,
    /// The creator's own date (a `termination_date` or a lifetime present inside the grace
    /// period); `when` is the moment the reaper saw it.
    Set,
    /// The creator's own date, and a delivered heads-up named it at `when` (SPEC §8: one notice
    /// per date when it enters WARN_WINDOW). Counts as announced from the date itself, like
    /// `set`: telling the owner of their own date must not postpone it, as `told` would.
    Warned,
}

impl Provenance {
    fn as_str(self) -> &'static str {
        match self {
            Provenance::Told => "told",
            Provenance::Set => "set",
            Provenance::Warned => "warned",
        }
    }
}

/// One `reaper:announced` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Announcement {
    pub(crate) deed: Deed,
    pub(crate) date: DateTime<Utc>,
    pub(crate) provenance: Provenance,
    pub(crate) when: DateTime<Utc>,
}

/// Why a `reaper:announced` value counts as "not announced". The message is for a person
/// (`reaperctl why`, the report); it quotes the value and says what the reaper writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AnnouncementError {
    #[error("reaper:announced={value:?} is not four fields separated by single spaces (<action> <date> told|set|warned <when>, e.g. `terminate 2030-01-02T00:00:00Z told 2030-01-01T00:00:00Z`), so it counts as not announced")]
    Shape { value: String },
    #[error("reaper:announced={value:?}: the action {field:?} is neither `terminate` nor `stop`, so it counts as not announced")]
    Action { value: String, field: String },
    #[error("reaper:announced={value:?}: {field:?} is not a UTC time to the second as the reaper writes it (e.g. 2030-01-02T00:00:00Z), so it counts as not announced")]
    Time { value: String, field: String },
    #[error("reaper:announced={value:?}: the provenance {field:?} is none of `told`, `set`, `warned`, so it counts as not announced")]
    Provenance { value: String, field: String },
    #[error("reaper:announced={value:?}: it says the announcement was made at {when}, which is later than now ({now}), so it counts as not announced")]
    Future {
        value: String,
        when: String,
        now: String,
    },
}

/// Exactly what `format_date` writes: RFC 3339, UTC as `Z`, whole seconds.
fn strict_time(field: &str) -> Option<DateTime<Utc>> {
    let at = DateTime::parse_from_rfc3339(field)
        .ok()?
        .with_timezone(&Utc);
    (format_date(at) == field).then_some(at)
}

impl Announcement {
    /// The strict grammar, and nothing else: one wrong space, an upper-case letter, extra text or
    /// a time written any other way than the reaper writes it is an error.
    pub(crate) fn parse(value: &str) -> Result<Announcement, AnnouncementError> {
        let fields: Vec<&str> = value.split(' ').collect();
        let [deed, date, provenance, when] = fields[..] else {
            return Err(AnnouncementError::Shape {
                value: value.into(),
            });
        };
        let deed = match deed {
            "terminate" => Deed::Terminate,
            "stop" => Deed::Stop,
            other => {
                return Err(AnnouncementError::Action {
                    value: value.into(),
                    field: other.into(),
                })
            }
        };
        let time = |field: &str| {
            strict_time(field).ok_or_else(|| AnnouncementError::Time {
                value: value.into(),
                field: field.into(),
            })
        };
        let date = time(date)?;
        let provenance = match provenance {
            "told" => Provenance::Told,
            "set" => Provenance::Set,
            "warned" => Provenance::Warned,
            other => {
                return Err(AnnouncementError::Provenance {
                    value: value.into(),
                    field: other.into(),
                })
            }
        };
        let when = time(when)?;
        Ok(Announcement {
            deed,
            date,
            provenance,
            when,
        })
    }

    /// `parse`, and a record dated after `now` (beyond CLOCK_SKEW) is refused too: a notice
    /// cannot have been delivered in the future, so such a value was not written by the reaper.
    pub(crate) fn read(value: &str, now: DateTime<Utc>) -> Result<Announcement, AnnouncementError> {
        let a = Announcement::parse(value)?;
        if a.when > now + CLOCK_SKEW {
            return Err(AnnouncementError::Future {
                value: value.into(),
                when: format_date(a.when),
                now: format_date(now),
            });
        }
        Ok(a)
    }

    /// The record of announcing `deed` on `date` now, in a message that was delivered.
    pub(crate) fn told(deed: Deed, date: DateTime<Utc>, now: DateTime<Utc>) -> Announcement {
        Announcement {
            deed,
            date: whole_seconds(date),
            provenance: Provenance::Told,
            when: whole_seconds(now),
        }
    }

    /// The record of a delivered heads-up on the creator's own termination date.
    pub(crate) fn warned(date: DateTime<Utc>, now: DateTime<Utc>) -> Announcement {
        Announcement {
            provenance: Provenance::Warned,
            ..Announcement::told(Deed::Terminate, date, now)
        }
    }

    fn matches(&self, deed: Deed, date: DateTime<Utc>) -> bool {
        self.deed == deed && self.date == whole_seconds(date)
    }
}

impl fmt::Display for Announcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.deed.as_str(),
            format_date(self.date),
            self.provenance.as_str(),
            format_date(self.when)
        )
    }
}

/// The tag holds whole seconds; a date with a fraction must compare equal to what was written.
fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// How long before an action the owner must have been told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) warn_window: TimeDelta,
    pub(crate) enrolment_notice: TimeDelta,
    /// First launched before the reaper was enrolled in its account and region.
    pub(crate) pre_enrolment: bool,
}

impl Notice {
    /// WARN_WINDOW, or the longer of it and ENROLMENT_NOTICE for a pre-enrolment instance.
    pub(crate) fn lead(&self) -> TimeDelta {
        if self.pre_enrolment {
            self.warn_window.max(self.enrolment_notice)
        } else {
            self.warn_window
        }
    }
}

/// Why the gate holds an action back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeferReason {
    /// The date is further away than the notice lead; nothing to announce yet.
    NotDue,
    /// No delivered announcement names this action and date (never told, told another date or
    /// action, an unreadable record, a failed delivery): it is announced now.
    NotAnnounced,
    /// Announced at `told_at`; the notice lead has not yet passed since.
    Notice { told_at: DateTime<Utc> },
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// The action may happen now. `record` is a `set` announcement to write (the creator's own
    /// date, seen for the first time).
    Act { record: Option<Announcement> },
    /// Not before `earliest`. `record`: a `told` announcement to deliver now and write only once
    /// delivered, or a `set` one to write at once. `heads_up`: the creator's own date has
    /// entered WARN_WINDOW and its owner has not had the one notice for it: deliver it now and,
    /// once delivered, write `warned` (which, unlike `told`, does not move the date).
    Defer {
        earliest: DateTime<Utc>,
        reason: DeferReason,
        record: Option<Announcement>,
        heads_up: bool,
    },
}

/// May the reaper terminate on `date` (the enforced date: the tag's, or MAX_LIFETIME's bound)?
/// `announced` is the instance's readable record, if any; `creators_own` says the date was
/// present while the instance is inside its grace period. A MAX_LIFETIME bound, a date a cap
/// held back, a late lifetime and a date moved earlier are all just "no matching announcement".
///
/// Also the answer for an expiring instance the sweep does not act on: a `told` record in a
/// `Defer` is the notice due now, and so is `heads_up` for the creator's own date.
pub(crate) fn gate(
    date: DateTime<Utc>,
    announced: Option<&Announcement>,
    creators_own: bool,
    now: DateTime<Utc>,
    notice: Notice,
) -> Gate {
    let date = whole_seconds(date);
    let lead = notice.lead();
    // `warned`: the creator's date whose heads-up has been delivered; `Some(false)`: the
    // creator's date, not yet the subject of a heads-up.
    let (earliest, record, warned) = match announced.filter(|a| a.matches(Deed::Terminate, date)) {
        Some(a) => match a.provenance {
            Provenance::Set => (date, None, Some(false)),
            Provenance::Warned => (date, None, Some(true)),
            Provenance::Told => (date.max(a.when + lead), None, None),
        },
        None if creators_own => (
            date,
            Some(Announcement {
                deed: Deed::Terminate,
                date,
                provenance: Provenance::Set,
                when: whole_seconds(now),
            }),
            Some(false),
        ),
        None if date > now + lead => {
            return Gate::Defer {
                earliest: date,
                reason: DeferReason::NotDue,
                record: None,
                heads_up: false,
            }
        }
        None => {
            return Gate::Defer {
                earliest: date.max(now + lead),
                reason: DeferReason::NotAnnounced,
                record: Some(Announcement::told(Deed::Terminate, date, now)),
                heads_up: false,
            }
        }
    };
    if now >= earliest {
        return Gate::Act { record };
    }
    Gate::Defer {
        earliest,
        reason: match announced {
            Some(a) if a.provenance == Provenance::Told && record.is_none() => {
                DeferReason::Notice { told_at: a.when }
            }
            _ => DeferReason::NotDue,
        },
        record,
        // The creator's own date needs no notice to be acted on, but its owner still hears of
        // it once, when it enters WARN_WINDOW (not ENROLMENT_NOTICE: such a date is set inside
        // the grace period, long after enrolment).
        heads_up: warned == Some(false) && date <= now + notice.warn_window,
    }
}

/// May the reaper stop an untagged or invalid instance now? Instances launched after enrolment
/// are stopped as before (a stop loses nothing and the owner is told in the same run); a
/// pre-enrolment one first gets a `stop` announcement ENROLMENT_NOTICE ahead.
pub(crate) fn gate_stop(
    announced: Option<&Announcement>,
    now: DateTime<Utc>,
    notice: Notice,
) -> Gate {
    if !notice.pre_enrolment {
        return Gate::Act { record: None };
    }
    // A stop is never the creator's date: only a delivered `told` record counts.
    let told = announced.filter(|a| a.deed == Deed::Stop && a.provenance == Provenance::Told);
    match told {
        Some(a) => {
            let earliest = a.date.max(a.when + notice.enrolment_notice);
            if now >= earliest {
                Gate::Act { record: None }
            } else {
                Gate::Defer {
                    earliest,
                    reason: DeferReason::Notice { told_at: a.when },
                    record: None,
                    heads_up: false,
                }
            }
        }
        None => {
            let date = whole_seconds(now) + notice.enrolment_notice;
            Gate::Defer {
                earliest: date,
                reason: DeferReason::NotAnnounced,
                record: Some(Announcement::told(Deed::Stop, date, now)),
                heads_up: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 10, 12, 0, 0).unwrap()
    }

    fn day() -> Notice {
        Notice {
            warn_window: TimeDelta::days(1),
            enrolment_notice: TimeDelta::days(7),
            pre_enrolment: false,
        }
    }

    fn pre() -> Notice {
        Notice {
            pre_enrolment: true,
            ..day()
        }
    }

    /// The role may write only `reaper:*` keys (TagOnlyReaperKeys, docs/IAM.md), and IAM's
    /// TerminateInstances condition names this key: it must stay in that namespace.
    #[test]
    fn the_record_is_a_reaper_key() {
        assert_eq!(ANNOUNCED_TAG, "reaper:announced");
    }

    #[test]
    fn the_example_round_trips() {
        let raw = "terminate 2030-01-02T00:00:00Z told 2030-01-01T00:00:00Z";
        let a = Announcement::parse(raw).unwrap();
        assert_eq!(a.deed, Deed::Terminate);
        assert_eq!(a.date, t("2030-01-02T00:00:00Z"));
        assert_eq!(a.provenance, Provenance::Told);
        assert_eq!(a.when, t("2030-01-01T00:00:00Z"));
        assert_eq!(a.to_string(), raw);
        let s = "stop 2030-01-02T00:00:00Z set 2030-01-01T00:00:00Z";
        assert_eq!(Announcement::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn anything_else_is_not_announced_with_a_readable_reason() {
        let d = "2030-01-02T00:00:00Z";
        let cases = [
            ("", "not four fields"),
            ("terminate", "not four fields"),
            (&*format!("terminate  {d} told {d}"), "not four fields"),
            (&*format!("terminate {d} told {d} "), "not four fields"),
            (&*format!(" terminate {d} told {d}"), "not four fields"),
            (&*format!("terminate {d} told {d} extra"), "not four fields"),
            (&*format!("terminate\t{d} told {d}"), "not four fields"),
            (
                &*format!("Terminate {d} told {d}"),
                "neither `terminate` nor `stop`",
            ),
            (
                &*format!("hibernate {d} told {d}"),
                "neither `terminate` nor `stop`",
            ),
            (
                &*format!("terminate {d} TOLD {d}"),
                "none of `told`, `set`, `warned`",
            ),
            (
                &*format!("terminate {d} said {d}"),
                "none of `told`, `set`, `warned`",
            ),
            (
                "terminate 2030-01-02 told 2030-01-01T00:00:00Z",
                "not a UTC time",
            ),
            (
                "terminate 2030-01-02T00:00:00+00:00 told 2030-01-01T00:00:00Z",
                "not a UTC time",
            ),
            (
                "terminate 2030-01-02T00:00:00.000Z told 2030-01-01T00:00:00Z",
                "not a UTC time",
            ),
            (
                "terminate 2030-01-02t00:00:00z told 2030-01-01T00:00:00Z",
                "not a UTC time",
            ),
            (
                "terminate 2030-02-30T00:00:00Z told 2030-01-01T00:00:00Z",
                "not a UTC time",
            ),
            (
                "terminate 2030-01-02T00:00:00Z told yesterday",
                "not a UTC time",
            ),
        ];
        for (raw, why) in cases {
            let err = Announcement::parse(raw).expect_err(raw).to_string();
            assert!(err.contains(why), "{raw:?}: {err}");
            assert!(err.contains("counts as not announced"), "{raw:?}: {err}");
            assert!(
                err.contains(&format!("{raw:?}")),
                "the value is quoted: {err}"
            );
        }
    }

    #[test]
    fn a_record_from_the_future_is_not_the_reapers() {
        let raw = "terminate 2030-01-11T00:00:00Z told 2030-01-10T12:06:00Z";
        let err = Announcement::read(raw, now()).unwrap_err().to_string();
        assert!(
            err.contains("later than now (2030-01-10T12:00:00Z)"),
            "{err}"
        );
        // Within the skew another writer's clock is believed.
        let raw = "terminate 2030-01-11T00:00:00Z told 2030-01-10T12:05:00Z";
        assert!(Announcement::read(raw, now()).is_ok());
    }

    fn told(date: &str, when: &str) -> Announcement {
        Announcement::told(Deed::Terminate, t(date), t(when))
    }

    /// Findings 1, 3, 4 and 5 of issue 18 are one case each of "no matching announcement":
    /// a date already passed (a MAX_LIFETIME bound, a cap-held date, a late lifetime's bound) or
    /// a date moved earlier after its notice. None acts; each is announced now and may act only
    /// a full notice later.
    #[test]
    fn a_date_never_announced_is_announced_and_deferred_however_it_came_about() {
        let past = t("2030-01-01T00:00:00Z");
        let earlier = t("2030-01-10T18:00:00Z");
        let cases: [(&str, DateTime<Utc>, Option<Announcement>); 4] = [
            (
                "MAX_LIFETIME bound passed, never told (finding 1)",
                past,
                None,
            ),
            (
                "cap held a passed date without notice (finding 3)",
                past,
                None,
            ),
            (
                "date moved earlier after its notice (finding 5)",
                earlier,
                Some(told("2030-01-11T00:00:00Z", "2030-01-09T00:00:00Z")),
            ),
            (
                "stop announced, terminate due",
                past,
                Some(Announcement::told(
                    Deed::Stop,
                    past,
                    t("2030-01-01T00:00:00Z"),
                )),
            ),
        ];
        for (case, date, announced) in cases {
            let g = gate(date, announced.as_ref(), false, now(), day());
            assert_eq!(
                g,
                Gate::Defer {
                    earliest: date.max(now() + TimeDelta::days(1)),
                    reason: DeferReason::NotAnnounced,
                    record: Some(Announcement::told(Deed::Terminate, date, now())),
                    heads_up: false,
                },
                "{case}"
            );
        }
    }

    /// Finding 2: a failed delivery records nothing, so the next run finds no announcement and
    /// defers again instead of terminating.
    #[test]
    fn a_failed_notice_is_never_followed_by_the_termination() {
        let date = t("2030-01-10T00:00:00Z");
        let later = now() + TimeDelta::days(3);
        assert!(matches!(
            gate(date, None, false, later, day()),
            Gate::Defer {
                reason: DeferReason::NotAnnounced,
                ..
            }
        ));
    }

    #[test]
    fn a_told_date_acts_a_full_notice_after_the_telling() {
        let date = t("2030-01-10T00:00:00Z");
        let a = told("2030-01-10T00:00:00Z", "2030-01-10T06:00:00Z");
        assert_eq!(
            gate(date, Some(&a), false, now(), day()),
            Gate::Defer {
                earliest: t("2030-01-11T06:00:00Z"),
                reason: DeferReason::Notice {
                    told_at: t("2030-01-10T06:00:00Z")
                },
                record: None,
                heads_up: false,
            }
        );
        assert_eq!(
            gate(date, Some(&a), false, t("2030-01-11T06:00:00Z"), day()),
            Gate::Act { record: None }
        );
        // Pre-enrolment: ENROLMENT_NOTICE after the telling.
        assert!(matches!(
            gate(date, Some(&a), false, t("2030-01-11T06:00:00Z"), pre()),
            Gate::Defer { earliest, .. } if earliest == t("2030-01-17T06:00:00Z")
        ));
    }

    #[test]
    fn the_creators_own_date_acts_on_the_date_and_is_recorded_as_set() {
        // `lifetime=0m` on a fresh instance: due now, acts now.
        assert_eq!(
            gate(now(), None, true, now(), day()),
            Gate::Act {
                record: Some(Announcement {
                    deed: Deed::Terminate,
                    date: now(),
                    provenance: Provenance::Set,
                    when: now(),
                })
            }
        );
        let soon = now() + TimeDelta::hours(2);
        let g = gate(soon, None, true, now(), day());
        let Gate::Defer {
            earliest,
            record: Some(set),
            ..
        } = g
        else {
            panic!("{g:?}")
        };
        assert_eq!((earliest, set.provenance), (soon, Provenance::Set));
        // Once recorded, the grace period may end: the record is what counts.
        assert_eq!(
            gate(soon, Some(&set), false, soon, day()),
            Gate::Act { record: None }
        );
    }

    /// SPEC §8: the creator's own date gets its one notice when it enters WARN_WINDOW, and the
    /// delivered notice (`warned`) does not move it, as a `told` record would. Failed on the
    /// gate before `heads_up` (the creator's date was never the subject of a notice).
    #[test]
    fn the_creators_own_date_gets_one_heads_up_and_keeps_its_date() {
        let date = now() + TimeDelta::days(3);
        // First seen far ahead: recorded as `set`, nothing to tell yet.
        let Gate::Defer {
            record: Some(set),
            heads_up: false,
            reason: DeferReason::NotDue,
            ..
        } = gate(date, None, true, now(), day())
        else {
            panic!("a far creator's date is recorded, not announced")
        };
        assert_eq!(set.provenance, Provenance::Set);
        // Outside the grace period the record is what counts; the date enters WARN_WINDOW.
        let inside = date - TimeDelta::hours(20);
        assert_eq!(
            gate(date, Some(&set), false, inside, day()),
            Gate::Defer {
                earliest: date,
                reason: DeferReason::NotDue,
                record: None,
                heads_up: true,
            }
        );
        // Delivered 20 h before the date: the termination still happens on the date, not a
        // full WARN_WINDOW after the heads-up.
        let warned = Announcement {
            provenance: Provenance::Warned,
            when: inside,
            ..set
        };
        assert_eq!(
            warned.to_string(),
            "terminate 2030-01-13T12:00:00Z warned 2030-01-12T16:00:00Z"
        );
        assert_eq!(Announcement::parse(&warned.to_string()), Ok(warned));
        assert_eq!(
            gate(
                date,
                Some(&warned),
                false,
                inside + TimeDelta::hours(1),
                day()
            ),
            Gate::Defer {
                earliest: date,
                reason: DeferReason::NotDue,
                record: None,
                heads_up: false,
            }
        );
        assert_eq!(
            gate(date, Some(&warned), false, date, day()),
            Gate::Act { record: None }
        );
        // Seen for the first time already inside WARN_WINDOW: recorded and announced at once.
        assert!(matches!(
            gate(now() + TimeDelta::hours(2), None, true, now(), day()),
            Gate::Defer {
                record: Some(Announcement {
                    provenance: Provenance::Set,
                    ..
                }),
                heads_up: true,
                ..
            }
        ));
        // A `warned` record of another date is no announcement of this one.
        let moved = date - TimeDelta::hours(1);
        assert!(matches!(
            gate(moved, Some(&warned), false, inside, day()),
            Gate::Defer {
                reason: DeferReason::NotAnnounced,
                ..
            }
        ));
    }

    #[test]
    fn a_far_date_is_not_announced_yet() {
        let far = now() + TimeDelta::days(30);
        assert_eq!(
            gate(far, None, false, now(), day()),
            Gate::Defer {
                earliest: far,
                reason: DeferReason::NotDue,
                record: None,
                heads_up: false,
            }
        );
        // …but for a pre-enrolment instance it is announced ENROLMENT_NOTICE ahead.
        let week = now() + TimeDelta::days(6);
        assert!(matches!(
            gate(week, None, false, now(), pre()),
            Gate::Defer {
                reason: DeferReason::NotAnnounced,
                record: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn a_pre_enrolment_instance_is_stopped_only_after_enrolment_notice() {
        assert_eq!(gate_stop(None, now(), day()), Gate::Act { record: None });
        let g = gate_stop(None, now(), pre());
        let Gate::Defer {
            earliest,
            record: Some(a),
            reason: DeferReason::NotAnnounced,
            heads_up: false,
        } = g
        else {
            panic!("{g:?}")
        };
        assert_eq!(earliest, now() + TimeDelta::days(7));
        assert_eq!(
            a.to_string(),
            "stop 2030-01-17T12:00:00Z told 2030-01-10T12:00:00Z"
        );
        assert!(matches!(
            gate_stop(Some(&a), now() + TimeDelta::days(6), pre()),
            Gate::Defer { .. }
        ));
        assert_eq!(
            gate_stop(Some(&a), now() + TimeDelta::days(7), pre()),
            Gate::Act { record: None }
        );
    }

    /// One instance through a random sequence of runs and edits.
    #[derive(Debug, Clone)]
    enum Step {
        Clock(i64),
        MoveDate(i64),
        Garbage(String),
        RemoveRecord,
        WarnWindow(i64),
        Run { delivered: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0i64..4 * 24 * 60).prop_map(Step::Clock),
            1 => (-10 * 24 * 60i64..10 * 24 * 60).prop_map(Step::MoveDate),
            1 => prop_oneof![
                Just("terminate".to_string()),
                "[a-z0-9 :TZ-]{0,60}",
                Just("terminate 2030-01-01T00:00:00Z told 2999-01-01T00:00:00Z".to_string()),
            ]
            .prop_map(Step::Garbage),
            1 => Just(Step::RemoveRecord),
            1 => (0i64..3 * 24 * 60).prop_map(Step::WarnWindow),
            4 => any::<bool>().prop_map(|delivered| Step::Run { delivered }),
        ]
    }

    proptest! {
        /// Issue 18 "done when": whatever the sequence, a termination happens only after a
        /// delivered announcement of that date at least the notice lead earlier, or on the
        /// creator's own date; a pre-enrolment instance is stopped only ENROLMENT_NOTICE after
        /// a delivered stop announcement.
        #[test]
        fn fuzz_no_termination_without_a_delivered_announcement_in_time(
            launched_ago in 0i64..3 * 24 * 60,
            initial_offset in -20 * 24 * 60i64..20 * 24 * 60,
            pre_enrolment in any::<bool>(),
            steps in prop::collection::vec(step(), 1..60),
        ) {
            let grace = TimeDelta::hours(1);
            let mut clock = now();
            let launch = clock - TimeDelta::minutes(launched_ago);
            let mut date = whole_seconds(clock + TimeDelta::minutes(initial_offset));
            let mut notice = Notice { pre_enrolment, ..day() };
            let mut tag: Option<String> = None;
            // What truly happened: delivered announcements and recorded creator's dates.
            let mut delivered: Vec<Announcement> = Vec::new();
            for s in steps {
                match s {
                    Step::Clock(m) => clock += TimeDelta::minutes(m),
                    Step::MoveDate(m) => date = whole_seconds(date + TimeDelta::minutes(m)),
                    Step::Garbage(g) => tag = Some(g),
                    Step::RemoveRecord => tag = None,
                    Step::WarnWindow(m) => notice.warn_window = TimeDelta::minutes(m),
                    Step::Run { delivered: ok } => {
                        let read = tag.as_deref().and_then(|v| Announcement::read(v, clock).ok());
                        let creators_own = clock < launch + grace;
                        match gate(date, read.as_ref(), creators_own, clock, notice) {
                            Gate::Act { record } => {
                                if let Some(r) = record {
                                    prop_assert_eq!(r.provenance, Provenance::Set);
                                    prop_assert!(creators_own);
                                    delivered.push(r);
                                }
                                let lead = notice.lead();
                                prop_assert!(
                                    delivered.iter().any(|a| a.deed == Deed::Terminate
                                        && a.date == date
                                        && (a.provenance != Provenance::Told || a.when + lead <= clock)),
                                    "terminated {} at {} without a delivered announcement {:?}",
                                    date, clock, delivered
                                );
                                prop_assert!(date <= clock, "acted before the date");
                                break;
                            }
                            Gate::Defer { earliest, record, heads_up, .. } => {
                                // Equal only with WARN_WINDOW=0: announced now, it may act from
                                // the next run (delivery comes after this run's actions).
                                prop_assert!(earliest >= clock);
                                if let Some(r) = record {
                                    if r.provenance == Provenance::Set || ok {
                                        tag = Some(r.to_string());
                                        delivered.push(r);
                                    }
                                }
                                // The heads-up for the creator's own date: `warned` once
                                // delivered, and it must not move the date.
                                if heads_up {
                                    prop_assert!(record.is_none_or(|r| r.provenance == Provenance::Set));
                                    prop_assert_eq!(earliest, date);
                                    if ok {
                                        let w = Announcement { deed: Deed::Terminate, date, provenance: Provenance::Warned, when: whole_seconds(clock) };
                                        tag = Some(w.to_string());
                                        delivered.push(w);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn fuzz_no_stop_of_a_pre_enrolment_instance_without_enrolment_notice(
            enrolment_days in 0i64..10,
            steps in prop::collection::vec(step(), 1..60),
        ) {
            let notice = Notice { enrolment_notice: TimeDelta::days(enrolment_days), pre_enrolment: true, ..day() };
            let mut clock = now();
            let mut tag: Option<String> = None;
            let mut delivered: Vec<Announcement> = Vec::new();
            for s in steps {
                match s {
                    Step::Clock(m) => clock += TimeDelta::minutes(m),
                    Step::Garbage(g) => tag = Some(g),
                    Step::RemoveRecord => tag = None,
                    Step::MoveDate(_) | Step::WarnWindow(_) => {}
                    Step::Run { delivered: ok } => {
                        let read = tag.as_deref().and_then(|v| Announcement::read(v, clock).ok());
                        match gate_stop(read.as_ref(), clock, notice) {
                            Gate::Act { .. } => {
                                prop_assert!(
                                    delivered.iter().any(|a| a.deed == Deed::Stop
                                        && a.when + notice.enrolment_notice <= clock),
                                    "stopped at {} without enrolment notice {:?}", clock, delivered
                                );
                                break;
                            }
                            Gate::Defer { record, .. } => {
                                if let (Some(r), true) = (record, ok) {
                                    tag = Some(r.to_string());
                                    delivered.push(r);
                                }
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn fuzz_announcements_round_trip(
            deed in prop_oneof![Just(Deed::Terminate), Just(Deed::Stop)],
            set in any::<bool>(),
            date in 0i64..253_402_300_799i64,
            when in 0i64..253_402_300_799i64,
        ) {
            let a = Announcement {
                deed,
                date: DateTime::from_timestamp(date, 0).unwrap(),
                provenance: if set { Provenance::Set } else { Provenance::Told },
                when: DateTime::from_timestamp(when, 0).unwrap(),
            };
            prop_assert_eq!(Announcement::parse(&a.to_string()), Ok(a));
        }

        #[test]
        fn fuzz_announcement_grammar_never_panics_and_is_canonical(s in "\\PC*") {
            if let Ok(a) = Announcement::parse(&s) {
                prop_assert_eq!(a.to_string(), s);
            }
        }
    }
}
