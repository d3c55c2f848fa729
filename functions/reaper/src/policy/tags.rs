//! The `termination_date` and `lifetime` tag grammar (SPEC §2).
//!
//! Strict on purpose: a value the reaper misreads could terminate the wrong machine, so anything
//! outside the grammar is rejected with a reason that says what was wrong and how to write it.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta,
    Timelike, Utc,
};
use std::fmt;

/// Tag keys and keywords, exact and case-sensitive.
pub(crate) const TERMINATION_DATE: &str = "termination_date";
pub(crate) const LIFETIME: &str = "lifetime";
pub(crate) const INDEFINITE: &str = "indefinite";

/// The longest lifetime accepted; anything longer is almost certainly a typo (and 100 years of
/// minutes still fits comfortably in chrono's range, so the date arithmetic cannot overflow).
pub(crate) const MAX_LIFETIME_DAYS: i64 = 36_525;

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
    let Local { at: local, leap } = local.map_err(|what| date_error(raw, what))?;
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
    let at = if leap { leap_second(raw, at)? } else { at };
    Ok(TerminationDate::At(at.and_utc()))
}

/// A wall-clock reading. `leap` is set when the seconds field was 60: `at` then holds second 59
/// (and the fraction), and the caller decides, once the offset is known, whether a leap second
/// really happened at that moment.
#[derive(Debug, Clone, Copy)]
struct Local {
    at: NaiveDateTime,
    leap: bool,
}

/// The UTC days that ended in a leap second (23:59:60 UTC), from IERS Bulletin C. None has been
/// announced since 2016, so a second 60 anywhere else names a moment that did not exist.
const LEAP_SECOND_DAYS: [(i32, u32, u32); 27] = [
    (1972, 6, 30),
    (1972, 12, 31),
    (1973, 12, 31),
    (1974, 12, 31),
    (1975, 12, 31),
    (1976, 12, 31),
    (1977, 12, 31),
    (1978, 12, 31),
    (1979, 12, 31),
    (1981, 6, 30),
    (1982, 6, 30),
    (1983, 6, 30),
    (1985, 6, 30),
    (1987, 12, 31),
    (1989, 12, 31),
    (1990, 12, 31),
    (1992, 6, 30),
    (1993, 6, 30),
    (1994, 6, 30),
    (1995, 12, 31),
    (1997, 6, 30),
    (1998, 12, 31),
    (2005, 12, 31),
    (2008, 12, 31),
    (2012, 6, 30),
    (2015, 6, 30),
    (2016, 12, 31),
];

/// `utc` is the reading with second 59 in place of 60, already moved to UTC.
fn leap_second(raw: &str, utc: NaiveDateTime) -> Result<NaiveDateTime, TagError> {
    let real = utc.hour() == 23
        && utc.minute() == 59
        && LEAP_SECOND_DAYS
            .iter()
            .any(|&(y, m, d)| (utc.year(), utc.month(), utc.day()) == (y, m, d));
    let leap = utc
        .date()
        .and_hms_nano_opt(23, 59, 59, 1_000_000_000 + utc.nanosecond());
    match leap {
        Some(at) if real => Ok(at),
        _ => {
            let next_minute = utc.with_nanosecond(0).unwrap_or(utc) + TimeDelta::seconds(1);
            Err(date_error(
                raw,
                format!(
                    "has second 60, a leap second, but there was no leap second at {} UTC (they happen only at 23:59:60 UTC at the end of June or December when IERS announces one; the last was 2016-12-31); write {} or {}",
                    utc.format("%Y-%m-%dT%H:%M:60"),
                    utc.with_nanosecond(0).unwrap_or(utc).format("%Y-%m-%dT%H:%M:%SZ"),
                    next_minute.format("%Y-%m-%dT%H:%M:%SZ"),
                ),
            ))
        }
    }
}

/// Splits `YYYY-MM-DD[Tt ]HH:MM[:SS[.fff]]` off the front. `None` when the value does not even
/// start like a date-time; `Some(Err)` when it does but is not a real one (or has only a date).
#[allow(clippy::type_complexity)]
fn split_local(value: &str) -> Option<(Result<Local, String>, &str)> {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let two = |at: usize| u32::from(bytes[at] - b'0') * 10 + u32::from(bytes[at + 1] - b'0');
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
    // RFC 3339 §5.6: the `T` may be written lower case.
    let sep = bytes[10];
    if !(sep == b'T' || sep == b't' || sep == b' ')
        || !(digits(11..13) && bytes.get(13) == Some(&b':') && digits(14..16))
    {
        return None;
    }
    let (hour, minute) = (two(11), two(14));
    let (mut second, mut nanos, mut end) = (0, 0, 16);
    if bytes.get(16) == Some(&b':') {
        if !digits(17..19) {
            return None;
        }
        second = two(17);
        end = 19;
        if bytes.get(19) == Some(&b'.') {
            let frac = &bytes[20..];
            let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            if n > 9 {
                return Some((
                    Err(format!(
                        "has a fraction of a second with {n} digits; at most 9 (nanoseconds) are accepted, e.g. {}.123456789Z",
                        &value[..19]
                    )),
                    "",
                ));
            }
            let padded = frac[..n]
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(9)
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
            nanos = padded;
            end = 20 + n;
        }
    }
    let clock = &value[11..end];
    let leap = second == 60;
    let time =
        match NaiveTime::from_hms_nano_opt(hour, minute, if leap { 59 } else { second }, nanos) {
            Some(t) if second <= 60 => t,
            _ => return Some((Err(format!("{clock} is not a time of day")), "")),
        };
    Some((
        Ok(Local {
            at: date.and_time(time),
            leap,
        }),
        &value[end..],
    ))
}

/// `Z`, `UTC` (optionally after one space), `+HH:MM`, `+HHMM`, `+HH` (and `-`).
fn parse_offset(rest: &str) -> Option<FixedOffset> {
    // RFC 3339 §5.6: the `Z` may be written lower case; `UTC` is this grammar's own and exact.
    if rest == "Z" || rest == "z" || rest == "UTC" || rest == " UTC" {
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
            ("2030-01-01T10:00:00utc", "is not accepted"),
            ("2030-01-01x10:00:00Z", "is not an ISO 8601 date-time"),
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

    /// Issue 10, finding 5: `2020-01-01T12:34:60Z` was accepted as a leap second that never was.
    #[test]
    fn a_leap_second_where_none_exists_is_refused_and_says_so() {
        let cases = [
            (
                "2020-01-01T12:34:60Z",
                "2020-01-01T12:34:59Z or 2020-01-01T12:35:00Z",
            ),
            (
                "2030-06-30T23:59:60Z",
                "2030-06-30T23:59:59Z or 2030-07-01T00:00:00Z",
            ),
            // The right clock time on a leap day, but not at 23:59 UTC.
            (
                "2016-12-31T23:59:60+01:00",
                "there was no leap second at 2016-12-31T22:59:60 UTC",
            ),
            ("2016-12-30T23:59:60Z", "no leap second"),
            ("2020-01-01T12:34:60.5Z", "no leap second"),
        ];
        for (raw, fragment) in cases {
            let text = parse_termination_date(raw).expect_err(raw).to_string();
            assert!(
                text.contains("has second 60, a leap second"),
                "{raw}: {text}"
            );
            assert!(text.contains(fragment), "{raw}: {text}");
        }
        for raw in ["2030-01-01T10:00:61Z", "2016-12-31T23:59:61Z"] {
            let text = parse_termination_date(raw).expect_err(raw).to_string();
            assert!(text.contains("is not a time of day"), "{raw}: {text}");
        }
    }

    #[test]
    fn real_leap_seconds_are_read_in_any_offset() {
        let leap = utc(2016, 12, 31, 23, 59, 59) + TimeDelta::seconds(1);
        for raw in [
            "2016-12-31T23:59:60Z",
            "2016-12-31T18:59:60-05:00",
            "2017-01-01T00:59:60+01:00",
            "1972-06-30 23:59:60 UTC",
        ] {
            let Ok(TerminationDate::At(at)) = parse_termination_date(raw) else {
                panic!("{raw} should parse");
            };
            // chrono keeps the leap second inside 23:59:59; the next second is the new day.
            assert!(
                at.second() == 59 && at.nanosecond() >= 1_000_000_000,
                "{raw}: {at:?}"
            );
            if raw.starts_with("2016") || raw.starts_with("2017") {
                assert!(
                    at < leap && at + TimeDelta::seconds(1) >= leap,
                    "{raw}: {at:?}"
                );
            }
        }
    }

    /// Issue 10, finding 5: lower-case `t` and `z` are valid RFC 3339 (§5.6) and were refused.
    #[test]
    fn lowercase_t_and_z_are_rfc3339() {
        let cases = [
            ("2030-01-01t10:00:00Z", utc(2030, 1, 1, 10, 0, 0)),
            ("2030-01-01T10:00:00z", utc(2030, 1, 1, 10, 0, 0)),
            ("2030-01-01t10:00:00z", utc(2030, 1, 1, 10, 0, 0)),
            ("2030-01-01t10:00+01:00", utc(2030, 1, 1, 9, 0, 0)),
            ("2030-01-01 10:00z", utc(2030, 1, 1, 10, 0, 0)),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_termination_date(raw),
                Ok(TerminationDate::At(want)),
                "{raw}"
            );
        }
    }

    /// Issue 10, finding 5: fractions of up to 9 digits (nanoseconds) are valid RFC 3339.
    #[test]
    fn fractions_of_up_to_nine_digits_are_read() {
        let base = utc(2030, 1, 1, 0, 0, 0);
        let cases = [
            ("2030-01-01T00:00:00.5Z", TimeDelta::milliseconds(500)),
            (
                "2030-01-01T00:00:00.123456789Z",
                TimeDelta::nanoseconds(123_456_789),
            ),
            (
                "2030-01-01T00:00:00.000000001+00:00",
                TimeDelta::nanoseconds(1),
            ),
            (
                "2030-01-01T00:00:00.999999999z",
                TimeDelta::nanoseconds(999_999_999),
            ),
            (
                "2030-01-01T01:00:00.12345678+01:00",
                TimeDelta::nanoseconds(123_456_780),
            ),
        ];
        for (raw, frac) in cases {
            assert_eq!(
                parse_termination_date(raw),
                Ok(TerminationDate::At(base + frac)),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_fraction_of_ten_or_more_digits_is_refused_saying_so() {
        for raw in [
            "2030-01-01T00:00:00.1234567890Z",
            "2030-01-01T00:00:00.000000000000000000001Z",
        ] {
            let text = parse_termination_date(raw).expect_err(raw).to_string();
            assert!(
                text.contains("digits; at most 9 (nanoseconds) are accepted, e.g. 2030-01-01T00:00:00.123456789Z"),
                "{raw}: {text}"
            );
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

    /// Property tests. Named `fuzz_*` so `make fuzz` can select them and run them long;
    /// proptest's default config reads PROPTEST_CASES, so the count is set from outside.
    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// One piece of a date-time: its text and whether the grammar accepts it there.
        #[derive(Debug, Clone)]
        struct Part<T> {
            text: String,
            value: Option<T>,
        }

        fn two_digits(max_valid: u32, span: u32) -> impl Strategy<Value = Part<u32>> {
            (0..=span).prop_map(move |n| Part {
                text: format!("{n:02}"),
                value: (n <= max_valid).then_some(n),
            })
        }

        fn year() -> impl Strategy<Value = Part<i32>> {
            prop_oneof![
                8 => (0i32..=9999).prop_map(|y| Part { text: format!("{y:04}"), value: Some(y) }),
                1 => (0i32..=999).prop_map(|y| Part { text: format!("{y}"), value: None }),
                1 => (10_000i32..=99_999).prop_map(|y| Part { text: format!("{y}"), value: None }),
            ]
        }

        fn separator() -> impl Strategy<Value = Part<()>> {
            prop_oneof![
                Just(Part {
                    text: "T".into(),
                    value: Some(())
                }),
                Just(Part {
                    text: "t".into(),
                    value: Some(())
                }),
                Just(Part {
                    text: " ".into(),
                    value: Some(())
                }),
                Just(Part {
                    text: "  ".into(),
                    value: None
                }),
                Just(Part {
                    text: "_".into(),
                    value: None
                }),
                Just(Part {
                    text: "x".into(),
                    value: None
                }),
            ]
        }

        /// Seconds and fraction: `(text, Some((second, nanos)))` when the grammar accepts them.
        /// `None` seconds with a fraction is the invalid `10:00.5Z`.
        fn seconds() -> impl Strategy<Value = Part<(u32, u32)>> {
            let fraction = prop_oneof![
                3 => Just(None),
                6 => "[0-9]{1,9}".prop_map(Some),
                1 => "[0-9]{10,14}".prop_map(Some),
                1 => Just(Some(String::new())),
            ];
            (prop::option::of(0u32..=61), fraction).prop_map(|(second, fraction)| {
                let mut text = second.map(|s| format!(":{s:02}")).unwrap_or_default();
                if let Some(f) = &fraction {
                    text.push('.');
                    text.push_str(f);
                }
                let nanos = match &fraction {
                    None => Some(0),
                    Some(f) if (1..=9).contains(&f.len()) => {
                        Some(format!("{f:0<9}").parse::<u32>().unwrap_or(u32::MAX))
                    }
                    Some(_) => None,
                };
                let value = match (second, nanos) {
                    (None, Some(0)) if fraction.is_none() => Some((0, 0)),
                    (Some(s), Some(n)) if s <= 60 => Some((s, n)),
                    _ => None,
                };
                Part { text, value }
            })
        }

        /// Offsets in seconds east of UTC.
        fn zone() -> impl Strategy<Value = Part<i32>> {
            let numeric = (prop::bool::ANY, 0u32..=25, 0u32..=61, 0usize..3).prop_map(
                |(east, h, m, form)| {
                    let sign = if east { '+' } else { '-' };
                    let text = match form {
                        0 => format!("{sign}{h:02}:{m:02}"),
                        1 => format!("{sign}{h:02}{m:02}"),
                        _ => format!("{sign}{h:02}"),
                    };
                    let m = if form == 2 { 0 } else { m };
                    let secs = (h * 3600 + m * 60) as i32;
                    let value = (h <= 23 && m <= 59).then_some(if east { secs } else { -secs });
                    Part { text, value }
                },
            );
            prop_oneof![
                2 => Just(Part { text: "Z".into(), value: Some(0) }),
                1 => Just(Part { text: "z".into(), value: Some(0) }),
                1 => Just(Part { text: "UTC".into(), value: Some(0) }),
                1 => Just(Part { text: " UTC".into(), value: Some(0) }),
                4 => numeric,
                1 => prop::sample::select(vec!["", " Z", "utc", "PST", "+5", " +01:00", "ZZ", "+01:00:00", "GMT"])
                    .prop_map(|t| Part { text: t.to_string(), value: None }),
            ]
        }

        proptest! {
            #[test]
            fn fuzz_tag_grammar_never_panics(s in "\\PC*") {
                let _ = parse_termination_date(&s);
                let _ = parse_lifetime(&s);
                let _ = parse_duration(&s);
            }

            #[test]
            fn fuzz_tag_grammar_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..48)) {
                let s = String::from_utf8_lossy(&bytes);
                let _ = parse_termination_date(&s);
                let _ = parse_lifetime(&s);
            }

            /// The grammar of SPEC §2 built up from its pieces, each valid or not: the parser
            /// returns exactly the date the pieces name when all are valid, and never a date
            /// otherwise (an invalid `termination_date` must never terminate).
            #[test]
            fn fuzz_termination_date_is_exactly_the_grammar(
                year in year(),
                month in two_digits(12, 13),
                day in two_digits(31, 32),
                sep in separator(),
                hour in two_digits(23, 25),
                minute in two_digits(59, 61),
                seconds in seconds(),
                zone in zone(),
                lead in "[ \t]{0,2}",
                trail in "[ \t]{0,2}",
            ) {
                let raw = format!("{lead}{}-{}-{}{}{}:{}{}{}{trail}",
                    year.text, month.text, day.text, sep.text, hour.text, minute.text, seconds.text, zone.text);
                let expected = (|| {
                    let (y, mo, d) = (year.value?, month.value?, day.value?);
                    sep.value?;
                    let (s, nanos) = seconds.value?;
                    let offset = FixedOffset::east_opt(zone.value?)?;
                    let date = NaiveDate::from_ymd_opt(y, mo, d)?;
                    let leap = s == 60;
                    let local = date.and_hms_nano_opt(hour.value?, minute.value?, if leap { 59 } else { s }, nanos)?;
                    let at = local.checked_sub_offset(offset)?;
                    if leap {
                        let real = at.hour() == 23 && at.minute() == 59
                            && LEAP_SECOND_DAYS.contains(&(at.year(), at.month(), at.day()));
                        if !real {
                            return None;
                        }
                        return Some(at.date().and_hms_nano_opt(23, 59, 59, 1_000_000_000 + nanos)?.and_utc());
                    }
                    Some(at.and_utc())
                })();
                let got = parse_termination_date(&raw);
                match expected {
                    Some(at) => prop_assert_eq!(got, Ok(TerminationDate::At(at)), "{:?}", raw),
                    None => {
                        let err = got.expect_err(&raw);
                        prop_assert_eq!(err.key, TERMINATION_DATE);
                        prop_assert_eq!(&err.value, &raw);
                        prop_assert!(!err.reason.is_empty());
                    }
                }
            }

            #[test]
            fn fuzz_written_dates_read_back(secs in 0i64..253_402_300_799i64, nanos in 0u32..1_000_000_000) {
                let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
                prop_assert_eq!(parse_termination_date(&format_date(at)), Ok(TerminationDate::At(at)));
                let precise = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
                let text = precise.to_rfc3339_opts(SecondsFormat::Nanos, true);
                prop_assert_eq!(parse_termination_date(&text), Ok(TerminationDate::At(precise)));
            }

            #[test]
            fn fuzz_quoted_durations_read_back(minutes in 0i64..=36_525 * 1440) {
                let d = TimeDelta::minutes(minutes);
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            }

            #[test]
            fn fuzz_lifetimes_are_exactly_the_grammar(n in 0i64..=400_000, unit in "[wdhmWDHMsy]?", pad in "[ \t]{0,2}") {
                let per = match unit.as_str() { "w" => Some(7 * 1440), "d" => Some(1440), "h" => Some(60), "m" => Some(1), _ => None };
                let raw = format!("{pad}{n}{unit}{pad}");
                let got = parse_lifetime(&raw);
                match per {
                    Some(per) if n * per <= MAX_LIFETIME_DAYS * 1440 => {
                        prop_assert_eq!(got, Ok(Lifetime::For(TimeDelta::minutes(n * per))));
                    }
                    _ => prop_assert_eq!(got.map_err(|e| e.key), Err(LIFETIME)),
                }
            }
        }
    }
}
