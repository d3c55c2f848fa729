//! Owner notices, the pure part (SPEC §8): does this instance need a "will be terminated" notice
//! now, and about which date? Sending it and writing `reaper:notified` are the sweep's job.

use super::tags::format_date;
use super::verdict::{Rules, StampRule, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The date to tell the owner about, when a notice is due: the verdict is `expiring`, or a stamp
/// whose date falls within WARN_WINDOW (a stamp made under the notice rule always does), and the
/// `reaper:notified` tag does not already hold exactly that date (as `format_date` writes it).
///
/// The date is the one the reaper will act on, MAX_LIFETIME included, so the tag written after
/// the notice matches the date of the next run's verdict and the notice is not sent twice. When a
/// MAX_LIFETIME bound has already passed, that date is in the past: the next sweep terminates.
pub fn notice_due(
    announcement: Option<&str>,
    verdict: &Verdict,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Option<DateTime<Utc>> {
    let date = match verdict {
        Verdict::Expiring { date, .. } => *date,
        // Written a full WARN_WINDOW ahead precisely so that this notice goes out; compared with
        // `now + warn_window` it can be up to a second later (whole seconds, rounded up).
        Verdict::Stamp {
            rule: StampRule::NoticeFirst { .. },
            ..
        } => verdict.enforced_date()?,
        Verdict::Stamp { .. } => verdict
            .enforced_date()
            .filter(|date| *date <= now + rules.warn_window)?,
        _ => return None,
    };
    let told = announcement == Some(format_date(date).as_str());
    (!told).then_some(date)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::plan::NOTIFIED_TAG;
    use crate::policy::tags::{LIFETIME, TERMINATION_DATE};
    use crate::policy::verdict::{judge, InstanceState, VerdictKind};
    use crate::policy::Instance;
    use chrono::{TimeDelta, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn inst(age: TimeDelta, tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            launch_time: now() - age,
            root_attach_time: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn notices_are_due_once_per_date() {
        let old = TimeDelta::days(30);
        let bounded = Rules {
            max_lifetime: Some(TimeDelta::days(31)),
            ..Rules::default()
        };
        let plain = Rules::default();
        // (case, instance, rules, the date a notice is due for)
        let cases: Vec<(&str, Instance, &Rules, Option<&str>)> = vec![
            (
                "expiring, never told",
                inst(old, &[(TERMINATION_DATE, "2030-01-02T00:00:00Z")]),
                &plain,
                Some("2030-01-02T00:00:00Z"),
            ),
            (
                "expiring, told about this date",
                inst(
                    old,
                    &[
                        (TERMINATION_DATE, "2030-01-02T00:00:00Z"),
                        (NOTIFIED_TAG, "2030-01-02T00:00:00Z"),
                    ],
                ),
                &plain,
                None,
            ),
            (
                "expiring, told about an earlier date: a changed date re-arms the notice",
                inst(
                    old,
                    &[
                        (TERMINATION_DATE, "2030-01-02T00:00:00Z"),
                        (NOTIFIED_TAG, "2030-01-01T18:00:00Z"),
                    ],
                ),
                &plain,
                Some("2030-01-02T00:00:00Z"),
            ),
            (
                "the same instant written differently is not what the reaper writes",
                inst(
                    old,
                    &[
                        (TERMINATION_DATE, "2030-01-02T00:00:00Z"),
                        (NOTIFIED_TAG, "2030-01-02T01:00:00+01:00"),
                    ],
                ),
                &plain,
                Some("2030-01-02T00:00:00Z"),
            ),
            (
                "kept: beyond the warn window",
                inst(old, &[(TERMINATION_DATE, "2030-01-03T00:00:00Z")]),
                &plain,
                None,
            ),
            (
                "terminated: too late for a notice before",
                inst(old, &[(TERMINATION_DATE, "2030-01-01T00:00:00Z")]),
                &plain,
                None,
            ),
            (
                "indefinite",
                inst(old, &[(TERMINATION_DATE, "indefinite")]),
                &plain,
                None,
            ),
            (
                "lifetime passed: stamped now + WARN_WINDOW, told now",
                inst(old, &[(LIFETIME, "7d")]),
                &plain,
                Some("2030-01-02T12:00:00Z"),
            ),
            (
                "lifetime far off: stamped, nothing to tell yet",
                inst(old, &[(LIFETIME, "40d")]),
                &plain,
                None,
            ),
            (
                "new instance, lifetime within the warn window",
                inst(TimeDelta::minutes(1), &[(LIFETIME, "2h")]),
                &plain,
                Some("2030-01-01T13:59:00Z"),
            ),
            (
                "stamp beyond MAX_LIFETIME: the bound is the date told",
                inst(old, &[(LIFETIME, "40d")]),
                &bounded,
                Some("2030-01-02T12:00:00Z"),
            ),
            (
                "MAX_LIFETIME cuts a kept date into the warn window",
                inst(old, &[(TERMINATION_DATE, "2031-01-01T00:00:00Z")]),
                &bounded,
                Some("2030-01-02T12:00:00Z"),
            ),
        ];
        for (case, instance, rules, want) in cases {
            let verdict = judge(&instance, now(), rules);
            assert_eq!(
                notice_due(instance.tag(NOTIFIED_TAG), &verdict, now(), rules),
                want.map(t),
                "{case}: {verdict:?}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Told once: after the stamp and the `reaper:notified` tag are written, no later run
            /// before the date asks for the same notice again, with or without MAX_LIFETIME.
            #[test]
            fn a_notice_is_not_repeated_for_the_same_date(
                age_min in 0i64..200_000,
                lifetime_min in 0i64..200_000,
                max_min in proptest::option::of(1i64..200_000),
                warn_min in 0i64..10_000,
                later_min in 0i64..20_000,
                sub_second_ms in 0i64..1000,
            ) {
                let rules = Rules {
                    warn_window: TimeDelta::minutes(warn_min),
                    max_lifetime: max_min.map(TimeDelta::minutes),
                    ..Rules::default()
                };
                let now = now() + TimeDelta::milliseconds(sub_second_ms);
                let mut i = inst(TimeDelta::minutes(age_min), &[(LIFETIME, &format!("{lifetime_min}m"))]);
                let v = judge(&i, now, &rules);
                let Some(told) = notice_due(i.tag(NOTIFIED_TAG), &v, now, &rules) else { return Ok(()) };
                if let Some(stamp) = v.stamp() {
                    i.tags.insert(TERMINATION_DATE.into(), stamp.tag_value());
                }
                i.tags.insert(NOTIFIED_TAG.into(), format_date(told));
                let later = now + TimeDelta::minutes(later_min);
                let v2 = judge(&i, later, &rules);
                prop_assert!(notice_due(i.tag(NOTIFIED_TAG), &v2, later, &rules).is_none(), "{v:?} then {v2:?}");
                // ... and the next run acts on the date the owner was told.
                if later < told {
                    prop_assert_eq!(v2.enforced_date(), Some(told));
                    prop_assert_ne!(v2.kind(), VerdictKind::Terminate);
                }
            }
        }
    }
}
