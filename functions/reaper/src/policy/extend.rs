//! `reaperctl extend`: the later `termination_date` an owner asks for, within MAX_LIFETIME and
//! within what the tag grammar reads back.

use super::tags::{
    format_date, format_duration, parse_termination_date, TerminationDate, INDEFINITE,
    MAX_LIFETIME_DAYS, TERMINATION_DATE,
};
use super::verdict::{Instance, Rules};
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// From the current date (or from now, when that has passed or is unreadable).
    By(TimeDelta),
    Until(DateTime<Utc>),
}

/// The date to write, and what a person should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extended {
    pub date: DateTime<Utc>,
    /// Why the date counts from now rather than from the current tag, when it does.
    pub note: Option<String>,
    /// First launch + MAX_LIFETIME: the reaper terminates the instance then, whatever its tag.
    pub bound: Option<DateTime<Utc>>,
}

fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// The new date for `instance`, or why not: never earlier than now or than the current date,
/// never `indefinite`-to-a-date, never past first launch + MAX_LIFETIME (naming the bound), and
/// never a date the reaper could not read back (more than 100 years ahead; 4-digit years).
pub(crate) fn extended(
    instance: &Instance,
    how: Extension,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Extended, String> {
    let bound = rules
        .max_lifetime
        .map(|max| (whole_seconds(instance.first_launch() + max), max));
    let mut note = None;
    let raw = instance.tag(TERMINATION_DATE);
    let current = match raw.map(parse_termination_date) {
        Some(Ok(TerminationDate::Indefinite)) if rules.allow_indefinite => {
            return Err(format!(
                "{TERMINATION_DATE} is {INDEFINITE} already: the reaper never terminates it; nothing to extend"
            ))
        }
        Some(Ok(TerminationDate::Indefinite)) => match bound {
            Some((at, max)) => {
                return Err(format!(
                    "{TERMINATION_DATE} is {INDEFINITE}, but ALLOW_INDEFINITE=false: the reaper terminates it at {} (first launch {} + MAX_LIFETIME {}), and no tag moves that later; to keep it longer, ask the reaper's operator to raise MAX_LIFETIME",
                    format_date(at),
                    format_date(instance.first_launch()),
                    format_duration(max)
                ))
            }
            None => {
                note = Some(format!(
                    "{TERMINATION_DATE}={INDEFINITE} is refused (ALLOW_INDEFINITE=false), so the reaper stops this instance; the new date, counted from now, replaces it"
                ));
                None
            }
        },
        Some(Ok(TerminationDate::At(at))) => Some(at),
        Some(Err(err)) => {
            note = Some(format!(
                "the current {TERMINATION_DATE} {:?} is not one the reaper reads ({}), so the new date counts from now",
                err.value, err.reason
            ));
            None
        }
        None => None,
    };
    let from = current.map_or(now, |c| c.max(now));
    // The 100-year bound of the lifetime grammar: a date the reaper reads back has a 4-digit
    // year, and nobody means a machine to outlive a century.
    let latest = whole_seconds(now) + TimeDelta::days(MAX_LIFETIME_DAYS);
    let too_far = |what: String| {
        format!(
            "{what} is more than 100 years ({MAX_LIFETIME_DAYS} days) from now, the longest the reaper accepts; the latest date extend writes is {}; for a machine that must never be reaped, write {TERMINATION_DATE}={INDEFINITE}",
            format_date(latest)
        )
    };
    let new = match how {
        Extension::By(by) => from
            .checked_add_signed(by)
            .ok_or_else(|| too_far(format!("{} + {}", format_date(from), format_duration(by))))?,
        Extension::Until(at) => at,
    };
    // Written with second precision, as the reaper writes dates.
    let new = whole_seconds(new);
    if new <= now || current.is_some_and(|c| new <= c) {
        return Err(format!(
            "{} is not later than {}; an extension only moves the date later",
            format_date(new),
            format_date(from)
        ));
    }
    if new > latest {
        return Err(too_far(format_date(new)));
    }
    // What is written must be what the reaper reads: never a date its grammar refuses.
    let written = format_date(new);
    if parse_termination_date(&written) != Ok(TerminationDate::At(new)) {
        return Err(format!(
            "{written} is not a date the reaper reads back; write one with a 4-digit year"
        ));
    }
    if let Some((at, max)) = bound {
        if new > at {
            return Err(format!(
                "{} is beyond MAX_LIFETIME: first launch {} + {} = {}, the latest date allowed",
                format_date(new),
                format_date(instance.first_launch()),
                format_duration(max),
                format_date(at)
            ));
        }
    }
    Ok(Extended {
        date: new,
        note,
        bound: bound.map(|(at, _)| at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::InstanceState;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn inst(date: Option<&str>) -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            launch_time: now() - TimeDelta::days(10),
            root_attach_time: None,
            billing: None,
            tags: date
                .map(|d| {
                    [(TERMINATION_DATE.to_string(), d.to_string())]
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    #[test]
    fn by_counts_from_the_current_date_or_now_and_until_must_be_later() {
        let rules = Rules::default();
        let by3 = Extension::By(TimeDelta::days(3));
        let got = |d, how| extended(&inst(d), how, now(), &rules).map(|e| format_date(e.date));
        assert_eq!(
            got(Some("2030-01-02T00:00:00Z"), by3),
            Ok("2030-01-05T00:00:00Z".into())
        );
        assert_eq!(
            got(Some("2029-12-01T00:00:00Z"), by3),
            Ok("2030-01-04T12:00:00Z".into())
        );
        assert_eq!(got(None, by3), Ok("2030-01-04T12:00:00Z".into()));
        assert!(got(Some("indefinite"), by3)
            .unwrap_err()
            .contains("indefinite already"));
        let until = |s: &str| Extension::Until(s.parse().unwrap());
        assert!(
            got(Some("2030-01-05T00:00:00Z"), until("2030-01-03T00:00:00Z"))
                .unwrap_err()
                .contains("not later than 2030-01-05T00:00:00Z")
        );
    }

    #[test]
    fn beyond_max_lifetime_is_refused_naming_the_bound() {
        let rules = Rules {
            max_lifetime: Some(TimeDelta::days(14)),
            ..Rules::default()
        };
        let err = extended(
            &inst(None),
            Extension::By(TimeDelta::days(7)),
            now(),
            &rules,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "2030-01-08T12:00:00Z is beyond MAX_LIFETIME: first launch 2029-12-22T12:00:00Z + 2w = 2030-01-05T12:00:00Z, the latest date allowed"
        );
        let ok = extended(
            &inst(None),
            Extension::By(TimeDelta::days(3)),
            now(),
            &rules,
        )
        .unwrap();
        assert_eq!(
            ok.bound.map(format_date).as_deref(),
            Some("2030-01-05T12:00:00Z")
        );
    }

    /// Issue 19, item 5: `--by 5200w` on 9999-12-31T23:59:59Z wrote `+10099-08-28T23:59:59Z`,
    /// which the reaper cannot read, and exited 0.
    #[test]
    fn a_date_the_reaper_cannot_read_back_is_refused_naming_the_bound() {
        let rules = Rules::default();
        let far = extended(
            &inst(Some("9999-12-31T23:59:59Z")),
            Extension::By(TimeDelta::weeks(5200)),
            now(),
            &rules,
        )
        .unwrap_err();
        assert_eq!(
            far,
            "+10099-08-28T23:59:59Z is more than 100 years (36525 days) from now, the longest the reaper accepts; the latest date extend writes is 2130-01-02T12:00:00Z; for a machine that must never be reaped, write termination_date=indefinite"
        );
        let until = extended(
            &inst(None),
            Extension::Until("9999-01-01T00:00:00Z".parse().unwrap()),
            now(),
            &rules,
        )
        .unwrap_err();
        assert!(
            until.starts_with("9999-01-01T00:00:00Z is more than 100 years"),
            "{until}"
        );
        // Up to the bound is written, and reads back as written.
        let last = extended(
            &inst(None),
            Extension::By(TimeDelta::days(MAX_LIFETIME_DAYS)),
            now(),
            &rules,
        )
        .unwrap();
        assert_eq!(
            parse_termination_date(&format_date(last.date)),
            Ok(TerminationDate::At(last.date))
        );
    }

    /// Issue 19, item 8: on `indefinite` under ALLOW_INDEFINITE=false, extend said "nothing to
    /// extend" although MAX_LIFETIME ends it (or the reaper stops it).
    #[test]
    fn indefinite_refused_by_the_operator_says_what_the_reaper_does() {
        let bounded = Rules {
            max_lifetime: Some(TimeDelta::days(14)),
            allow_indefinite: false,
            ..Rules::default()
        };
        let err = extended(
            &inst(Some("indefinite")),
            Extension::By(TimeDelta::days(3)),
            now(),
            &bounded,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "termination_date is indefinite, but ALLOW_INDEFINITE=false: the reaper terminates it at 2030-01-05T12:00:00Z (first launch 2029-12-22T12:00:00Z + MAX_LIFETIME 2w), and no tag moves that later; to keep it longer, ask the reaper's operator to raise MAX_LIFETIME"
        );
        let unbounded = Rules {
            allow_indefinite: false,
            ..Rules::default()
        };
        let ok = extended(
            &inst(Some("indefinite")),
            Extension::By(TimeDelta::days(3)),
            now(),
            &unbounded,
        )
        .unwrap();
        assert_eq!(format_date(ok.date), "2030-01-04T12:00:00Z");
        assert!(ok
            .note
            .unwrap()
            .contains("refused (ALLOW_INDEFINITE=false), so the reaper stops this instance"));
        let bad = extended(
            &inst(Some("next tuesday")),
            Extension::By(TimeDelta::days(3)),
            now(),
            &unbounded,
        )
        .unwrap();
        assert!(bad
            .note
            .unwrap()
            .contains("\"next tuesday\" is not one the reaper reads"));
    }
}
