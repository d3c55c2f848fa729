//! The `termination_date` and `lifetime` tag grammar (SPEC §2).
//!
//! Strict on purpose: a value the reaper misreads could terminate the wrong machine, so anything
//! outside the grammar is rejected with a reason that says what was wrong and how to write it.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use std::fmt;

/// Tag keys and keywords, exact and case-sensitive.
pub const TERMINATION_DATE: &str = "termination_date";
pub const LIFETIME: &str = "lifetime";
pub const INDEFINITE: &str = "indefinite";

/// The longest lifetime accepted; anything longer is almost certainly a typo (and 100 years of
/// minutes still fits comfortably in chrono's range, so the date arithmetic cannot overflow).
pub const MAX_LIFETIME_DAYS: i64 = 36_525;

/// A parsed `termination_date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationDate {
    Indefinite,
    At(DateTime<Utc>),
}

/// A parsed `lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Indefinite,
    For(TimeDelta),
}

/// Why a tag value was rejected. `Display` gives the whole sentence a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.key, self.value, self.reason)
    }
}

impl std::error::Error for TagError {}

fn date_error(value: &str, reason: impl Into<String>) -> TagError {
    TagError {
        key: TERMINATION_DATE,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn lifetime_error(value: &str, reason: impl Into<String>) -> TagError {
    TagError {
        key: LIFETIME,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// RFC 3339, UTC, second precision: the one form the reaper writes.
pub fn format_date(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

const EXAMPLE_DATE: &str = "2030-01-01T00:00:00Z";

/// Parses a `termination_date` value (SPEC §2).
pub fn parse_termination_date(raw: &str) -> Result<TerminationDate, TagError> {
    let value = raw.trim();
    if value == INDEFINITE {
        return Ok(TerminationDate::Indefinite);
    }
    if value.is_empty() {
        return Err(date_error(
            raw,
            format!("is empty; write a date-time with a time zone such as {EXAMPLE_DATE}, or {INDEFINITE}"),
        ));
    }
    if value.eq_ignore_ascii_case(INDEFINITE) {
        return Err(date_error(
            raw,
            format!("the keyword is case-sensitive; write {INDEFINITE}"),
        ));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(date_error(
            raw,
            format!("epoch numbers are not accepted; write an RFC 3339 date-time such as {EXAMPLE_DATE}"),
        ));
    }
    let (local, rest) = split_local(value).ok_or_else(|| {
        date_error(
            raw,
            format!(
                "is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM[:SS] with a time zone); write e.g. {EXAMPLE_DATE}"
            ),
        )
    })?;
    let local = local.map_err(|what| date_error(raw, what))?;
    let corrected = local.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if rest.is_empty() {
        return Err(date_error(
            raw,
            format!("has no time zone; write {corrected} (UTC) or add an offset such as +01:00"),
        ));
    }
    if rest.starts_with(' ') && rest != " UTC" && parse_offset(rest.trim_start()).is_some() {
        return Err(date_error(
            raw,
            format!(
                "has a space before the time zone {:?}; write it without, e.g. {}{}",
                rest.trim_start(),
                &value[..value.len() - rest.len()],
                rest.trim_start()
            ),
        ));
    }
    if rest.starts_with('.') {
        return Err(date_error(
            raw,
            format!("has a fraction of a minute; fractions need seconds, e.g. {corrected}"),
        ));
    }
    let offset = parse_offset(rest).ok_or_else(|| {
        date_error(
            raw,
            format!(
                "time zone {:?} is not accepted (only Z, UTC, +HH:MM, +HHMM or +HH; named zones are ambiguous); write e.g. {corrected}",
                rest.trim_start()
            ),
        )
    })?;
    let at = local
        .checked_sub_offset(offset)
        .ok_or_else(|| date_error(raw, "is out of range"))?;
    Ok(TerminationDate::At(at.and_utc()))
}

/// Splits `YYYY-MM-DD[T ]HH:MM[:SS[.fff]]` off the front. `None` when the value does not even start
/// like a date-time; `Some(Err)` when it does but is not a real one (or has only a date).
#[allow(clippy::type_complexity)]
fn split_local(value: &str) -> Option<(Result<NaiveDateTime, String>, &str)> {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10))
    {
        return None;
    }
    let date_part = &value[..10];
    let Ok(date) = NaiveDate::parse_from_str(date_part, "%Y-%m-%d") else {
        return Some((Err(format!("{date_part} is not a calendar date")), ""));
    };
    if bytes.len() == 10 {
        return Some((
            Err(format!(
                "has no time or time zone; write {date_part}T00:00:00Z"
            )),
            "",
        ));
    }
    let sep = bytes[10];
    if !(sep == b'T' || sep == b' ')
        || !(digits(11..13) && bytes.get(13) == Some(&b':') && digits(14..16))
    {
        return None;
    }
    let mut end = 16;
    if bytes.get(16) == Some(&b':') {
        if !digits(17..19) {
            return None;
        }
        end = 19;
        if bytes.get(19) == Some(&b'.') {
            let frac = bytes[20..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if frac == 0 || frac > 9 {
                return None;
            }
            end = 20 + frac;
        }
    }
    let clock = &value[11..end];
    let format = match clock.len() {
        5 => "%H:%M",
        8 => "%H:%M:%S",
        _ => "%H:%M:%S%.f",
    };
    let time = match chrono::NaiveTime::parse_from_str(clock, format) {
        Ok(t) => t,
        Err(_) => return Some((Err(format!("{clock} is not a time of day")), "")),
    };
    Some((Ok(date.and_time(time)), &value[end..]))
}

/// `Z`, `UTC` (optionally after one space), `+HH:MM`, `+HHMM`, `+HH` (and `-`).
fn parse_offset(rest: &str) -> Option<FixedOffset> {
    if rest == "Z" || rest == "UTC" || rest == " UTC" {
        return FixedOffset::east_opt(0);
    }
    let bytes = rest.as_bytes();
    let sign = match bytes.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let num = |s: &[u8]| -> Option<i32> {
        (s.len() == 2 && s.iter().all(u8::is_ascii_digit))
            .then(|| i32::from(s[0] - b'0') * 10 + i32::from(s[1] - b'0'))
    };
    let (hours, minutes) = match bytes.len() {
        3 => (num(&bytes[1..3])?, 0),
        5 => (num(&bytes[1..3])?, num(&bytes[3..5])?),
        6 if bytes[3] == b':' => (num(&bytes[1..3])?, num(&bytes[4..6])?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Parses a `lifetime` value (SPEC §2): `indefinite` or `^[0-9]+[wdhm]$`, `m` meaning minutes.
pub fn parse_lifetime(raw: &str) -> Result<Lifetime, TagError> {
    let value = raw.trim();
    if value == INDEFINITE {
        return Ok(Lifetime::Indefinite);
    }
    if value.eq_ignore_ascii_case(INDEFINITE) {
        return Err(lifetime_error(
            raw,
            format!("the keyword is case-sensitive; write {INDEFINITE}"),
        ));
    }
    const FORM: &str =
        "write a whole number and one unit: w (weeks), d (days), h (hours) or m (minutes), e.g. 7d";
    if value.is_empty() {
        return Err(lifetime_error(
            raw,
            format!("is empty; {FORM}, or {INDEFINITE}"),
        ));
    }
    let digits_end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    if number.is_empty() {
        let reason = if value.starts_with('-') {
            format!("cannot be negative; {FORM}")
        } else {
            format!("does not start with a number; {FORM}")
        };
        return Err(lifetime_error(raw, reason));
    }
    let per_unit_minutes: i64 = match unit {
        "w" => 7 * 24 * 60,
        "d" => 24 * 60,
        "h" => 60,
        "m" => 1,
        "" => {
            return Err(lifetime_error(
                raw,
                format!("has no unit; write {number}d, {number}h or {number}m (m is minutes)"),
            ))
        }
        "W" | "D" | "H" | "M" => {
            return Err(lifetime_error(
                raw,
                format!(
                    "the unit is case-sensitive; write {number}{}",
                    unit.to_ascii_lowercase()
                ),
            ))
        }
        _ if unit.starts_with('.') || unit.starts_with(',') => {
            return Err(lifetime_error(
                raw,
                "fractions are not accepted; use a smaller unit (1.5h is 90m)",
            ))
        }
        _ if unit.trim_start() != unit => {
            let letter = unit
                .trim_start()
                .chars()
                .next()
                .map_or('d', |c| c.to_ascii_lowercase());
            return Err(lifetime_error(
                raw,
                format!("has a space between number and unit; write {number}{letter} (units: w, d, h, m = minutes)"),
            ));
        }
        _ if unit.len() > 1 && unit.bytes().any(|b| b.is_ascii_digit()) => {
            return Err(lifetime_error(
                raw,
                format!("combined units are not accepted; {FORM} (1w2d is 9d)"),
            ))
        }
        _ => {
            return Err(lifetime_error(
                raw,
                format!("unit {unit:?} is not accepted; {FORM}"),
            ))
        }
    };
    let too_long = || {
        lifetime_error(
            raw,
            format!("is more than 100 years ({MAX_LIFETIME_DAYS} days); use {INDEFINITE} for a machine that must never be reaped"),
        )
    };
    let count: i64 = number.parse().map_err(|_| too_long())?;
    let minutes = count.checked_mul(per_unit_minutes).ok_or_else(too_long)?;
    if minutes > MAX_LIFETIME_DAYS * 24 * 60 {
        return Err(too_long());
    }
    Ok(Lifetime::For(TimeDelta::minutes(minutes)))
}

/// A duration in the lifetime grammar without `indefinite` (GRACE_PERIOD, WARN_WINDOW).
pub fn parse_duration(raw: &str) -> Result<TimeDelta, TagError> {
    match parse_lifetime(raw)? {
        Lifetime::For(d) => Ok(d),
        Lifetime::Indefinite => Err(lifetime_error(
            raw,
            "indefinite is not a duration here; write e.g. 15m, 1h or 1d",
        )),
    }
}

/// A duration in the lifetime grammar, in the largest unit that is exact (`30d`, `36h`, `90m`):
/// how reasons quote WARN_WINDOW and MAX_LIFETIME back to the operator.
pub fn format_duration(d: TimeDelta) -> String {
    let minutes = d.num_minutes();
    [("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)]
        .into_iter()
        .find(|(_, per)| minutes != 0 && minutes % per == 0)
        .map_or_else(
            || format!("{minutes}m"),
            |(unit, per)| format!("{}{unit}", minutes / per),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn spec_examples_that_parse() {
        let cases = [
            ("2030-01-01T00:00:00Z", utc(2030, 1, 1, 0, 0, 0)),
            ("2030-01-01 10:00 UTC", utc(2030, 1, 1, 10, 0, 0)),
            ("2030-01-01T10:00:00-0800", utc(2030, 1, 1, 18, 0, 0)),
            ("2030-01-01T10:00+05:30", utc(2030, 1, 1, 4, 30, 0)),
            (
                "2030-01-01T00:00:00.123456+00:00",
                utc(2030, 1, 1, 0, 0, 0) + TimeDelta::microseconds(123_456),
            ),
            // The rest of the grammar: +HH, space separator with Z, surrounding white space.
            ("2030-01-01T10:00+02", utc(2030, 1, 1, 8, 0, 0)),
            ("2030-01-01 10:00:30Z", utc(2030, 1, 1, 10, 0, 30)),
            ("  2030-06-30T23:59:59Z\t", utc(2030, 6, 30, 23, 59, 59)),
            ("2030-01-01T10:00UTC", utc(2030, 1, 1, 10, 0, 0)),
            ("2029-12-31T23:00:00-01:00", utc(2030, 1, 1, 0, 0, 0)),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_termination_date(raw),
                Ok(TerminationDate::At(want)),
                "{raw}"
            );
        }
        assert_eq!(
            parse_termination_date("indefinite"),
            Ok(TerminationDate::Indefinite)
        );
        assert_eq!(
            parse_termination_date(" indefinite "),
            Ok(TerminationDate::Indefinite)
        );
    }

    #[test]
    fn spec_examples_that_are_rejected_say_why_and_how() {
        // (value, a fragment the reason must contain)
        let cases = [
            (
                "2030-01-01",
                "has no time or time zone; write 2030-01-01T00:00:00Z",
            ),
            (
                "2030-01-01T10:00",
                "has no time zone; write 2030-01-01T10:00:00Z",
            ),
            ("2030-01-01T10:00 PST", "time zone \"PST\" is not accepted"),
            ("2030-01-01T10:00:00 EST", "named zones are ambiguous"),
            ("1893456000", "epoch numbers are not accepted"),
            ("January 1, 2030", "is not an ISO 8601 date-time"),
            ("1 Jan 2030 10:00 UTC", "is not an ISO 8601 date-time"),
            ("Indefinite", "case-sensitive; write indefinite"),
            ("", "is empty"),
            ("   ", "is empty"),
            ("2030-02-30T00:00:00Z", "is not a calendar date"),
            ("2030-01-01T25:00:00Z", "is not a time of day"),
            ("2030-01-01T10:00:00+25:00", "is not accepted"),
            ("2030-01-01T10:00:00z", "is not accepted"),
            ("2030-01-01t10:00:00Z", "is not an ISO 8601 date-time"),
            ("2030-01-01T10:00:00.Z", "is not an ISO 8601 date-time"),
            ("2030-01-01T10Z", "is not an ISO 8601 date-time"),
            ("2030-01-01T10:00:00+5", "is not accepted"),
            ("2030-01-01T10:00:00Z extra", "is not accepted"),
            ("2030-01-01T10:00 +05:30", "has a space before the time zone \"+05:30\"; write it without, e.g. 2030-01-01T10:00+05:30"),
            ("2030-01-01T10:00.5Z", "fractions need seconds"),
            ("2030-01-01  10:00:00Z", "is not an ISO 8601 date-time"),
            ("+2030-01-01T10:00:00Z", "is not an ISO 8601 date-time"),
        ];
        for (raw, fragment) in cases {
            let err = parse_termination_date(raw).expect_err(raw);
            assert_eq!(err.key, TERMINATION_DATE);
            assert_eq!(err.value, raw);
            let text = err.to_string();
            assert!(text.contains(fragment), "{raw:?}: {text}");
            assert!(text.starts_with("termination_date "), "{text}");
        }
    }

    #[test]
    fn the_date_only_reason_is_the_specs_sentence() {
        let err = parse_termination_date("2030-01-01").unwrap_err();
        assert_eq!(
            err.to_string(),
            "termination_date \"2030-01-01\": has no time or time zone; write 2030-01-01T00:00:00Z"
        );
    }

    #[test]
    fn lifetimes_that_parse() {
        let cases = [
            ("1w", TimeDelta::weeks(1)),
            ("2d", TimeDelta::days(2)),
            ("12h", TimeDelta::hours(12)),
            ("30m", TimeDelta::minutes(30)),
            ("0m", TimeDelta::zero()),
            (" 3d ", TimeDelta::days(3)),
            ("007h", TimeDelta::hours(7)),
            ("36525d", TimeDelta::days(36_525)),
            ("5217w", TimeDelta::weeks(5217)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_lifetime(raw), Ok(Lifetime::For(want)), "{raw}");
        }
        assert_eq!(parse_lifetime("indefinite"), Ok(Lifetime::Indefinite));
    }

    #[test]
    fn lifetimes_that_are_rejected_say_why_and_how() {
        let cases = [
            ("1w2d", "combined units are not accepted"),
            ("2D", "case-sensitive; write 2d"),
            ("3 days", "space between number and unit"),
            ("-1h", "cannot be negative"),
            (
                "1.5h",
                "fractions are not accepted; use a smaller unit (1.5h is 90m)",
            ),
            ("36526d", "more than 100 years"),
            ("5218w", "more than 100 years"),
            ("99999999999999999999999h", "more than 100 years"),
            ("9223372036854775807w", "more than 100 years"),
            ("10", "has no unit; write 10d"),
            ("", "is empty"),
            ("h", "does not start with a number"),
            ("1y", "unit \"y\" is not accepted"),
            ("1 h", "space between number and unit"),
            ("Indefinite", "case-sensitive"),
            ("forever", "does not start with a number"),
        ];
        for (raw, fragment) in cases {
            let err = parse_lifetime(raw).expect_err(raw);
            assert_eq!(err.key, LIFETIME);
            let text = err.to_string();
            assert!(text.contains(fragment), "{raw:?}: {text}");
        }
    }

    #[test]
    fn format_is_rfc3339_utc_seconds() {
        let at = utc(2030, 1, 1, 0, 0, 0) + TimeDelta::milliseconds(999);
        assert_eq!(format_date(at), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn durations_refuse_indefinite() {
        assert_eq!(parse_duration("15m"), Ok(TimeDelta::minutes(15)));
        assert!(parse_duration("indefinite")
            .unwrap_err()
            .to_string()
            .contains("not a duration"));
    }

    #[test]
    fn durations_are_quoted_in_the_largest_exact_unit() {
        for (minutes, want) in [
            (0, "0m"),
            (15, "15m"),
            (90, "90m"),
            (60, "1h"),
            (36 * 60, "36h"),
            (24 * 60, "1d"),
            (30 * 24 * 60, "30d"),
            (14 * 24 * 60, "2w"),
        ] {
            assert_eq!(format_duration(TimeDelta::minutes(minutes)), want);
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsing_never_panics(s in "\\PC*") {
                let _ = parse_termination_date(&s);
                let _ = parse_lifetime(&s);
            }

            #[test]
            fn date_like_strings_never_panic(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{0,12})?)?( ?UTC|Z|[+-][0-9]{1,4}|[+-][0-9]{2}:[0-9]{2}|[A-Za-z ]{0,4})?") {
                let _ = parse_termination_date(&s);
            }

            #[test]
            fn written_dates_read_back(secs in 0i64..4_102_444_800) {
                let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
                prop_assert_eq!(parse_termination_date(&format_date(at)), Ok(TerminationDate::At(at)));
            }

            #[test]
            fn quoted_durations_read_back(minutes in 0i64..=36_525 * 1440) {
                let d = TimeDelta::minutes(minutes);
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            }

            #[test]
            fn lifetimes_in_range_parse(n in 0i64..=36_525, unit in "[wdhm]") {
                let per = match unit.as_str() { "w" => 7 * 1440, "d" => 1440, "h" => 60, _ => 1 };
                let raw = format!("{n}{unit}");
                let got = parse_lifetime(&raw);
                if n * per <= MAX_LIFETIME_DAYS * 1440 {
                    prop_assert_eq!(got, Ok(Lifetime::For(TimeDelta::minutes(n * per))));
                } else {
                    prop_assert!(got.is_err());
                }
            }
        }
    }
}
