//! `reaperctl extend`: the later `termination_date` an owner asks for, within MAX_LIFETIME.

use super::tags::{format_date, parse_termination_date, TerminationDate, TERMINATION_DATE};
use super::verdict::{Instance, Rules};
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// From the current date (or from now, when that has passed or is unreadable).
    By(TimeDelta),
    Until(DateTime<Utc>),
}

/// The new date for `instance`, or why not: never earlier than now or than the current date,
/// never `indefinite`-to-a-date, never past first launch + MAX_LIFETIME (naming the bound).
pub fn extended(
    instance: &Instance,
    how: Extension,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<DateTime<Utc>, String> {
    let current = match instance.tag(TERMINATION_DATE).map(parse_termination_date) {
        Some(Ok(TerminationDate::Indefinite)) => {
            return Err(format!(
                "{TERMINATION_DATE} is indefinite already; nothing to extend"
            ))
        }
        Some(Ok(TerminationDate::At(at))) => Some(at),
        _ => None,
    };
    let new = match how {
        Extension::By(by) => current.map_or(now, |c| c.max(now)) + by,
        Extension::Until(at) => at,
    };
    // Written with second precision, as the reaper writes dates.
    let new = DateTime::from_timestamp(new.timestamp(), 0).unwrap_or(new);
    if new <= now || current.is_some_and(|c| new <= c) {
        return Err(format!(
            "{} is not later than {}; an extension only moves the date later",
            format_date(new),
            format_date(current.map_or(now, |c| c.max(now)))
        ));
    }
    if let Some(max) = rules.max_lifetime {
        let bound = instance.first_launch() + max;
        if new > bound {
            return Err(format!(
                "{} is beyond MAX_LIFETIME: first launch {} + {} = {}, the latest date allowed",
                format_date(new),
                format_date(instance.first_launch()),
                super::tags::format_duration(max),
                format_date(bound)
            ));
        }
    }
    Ok(new)
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
        let got = |d, how| extended(&inst(d), how, now(), &rules).map(format_date);
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
        assert!(extended(
            &inst(None),
            Extension::By(TimeDelta::days(3)),
            now(),
            &rules
        )
        .is_ok());
    }
}
