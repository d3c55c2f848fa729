//! ACTION_WINDOW (SPEC §8): terminations and stops happen only when someone can react.
//!
//! `Mon-Fri 09:00-17:00 Europe/Berlin`: days, a time range and an IANA zone. The window is read
//! off the local wall clock: it is open whenever the clock in that zone shows an allowed day and a
//! time in `[start, end)`. That one rule settles the two DST cases deliberately:
//! - a start time that does not exist that day (the spring-forward gap) opens the window at the
//!   first instant the clock shows a later time, i.e. when the gap ends;
//! - a time the clock shows twice (the fall-back fold) is inside the window both times, so a
//!   window that closed can open again for the repeated hour.

use super::tags::format_date;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;
const FORM: &str =
    "<days> <HH:MM>-<HH:MM> <IANA time zone>, e.g. Mon-Fri 09:00-17:00 Europe/Berlin";

/// A weekly window in one time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionWindow {
    /// Indexed by `Weekday::num_days_from_monday`.
    days: [bool; 7],
    /// Minutes after local midnight; `end` may be 1440 (written `24:00`).
    start: u32,
    end: u32,
    zone: Tz,
}

/// Which part of an ACTION_WINDOW value is wrong, and why. `Display` is the whole sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} {value:?} {reason}; the accepted form is {FORM}")]
pub struct WindowError {
    /// `value`, `days`, `times` or `time zone`.
    pub part: &'static str,
    pub value: String,
    pub reason: String,
}

fn error(part: &'static str, value: &str, reason: impl Into<String>) -> WindowError {
    WindowError {
        part,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl ActionWindow {
    /// A warning for a zone whose name reads the wrong way round: `Etc/GMT+1` is POSIX's
    /// notation for UTC−1 (west of Greenwich), not UTC+1. Accepted (it is a valid IANA name),
    /// but never silently.
    pub(crate) fn zone_warning(&self) -> Option<String> {
        let name = self.zone.name();
        let offset = name.strip_prefix("Etc/GMT")?;
        // (what the name means, what a reader takes it for, the name for the latter)
        let (means, looks, other) = match offset.split_at_checked(1)? {
            ("+", h) => (
                format!("UTC-{h}"),
                format!("UTC+{h}"),
                format!("Etc/GMT-{h}"),
            ),
            ("-", h) => (
                format!("UTC+{h}"),
                format!("UTC-{h}"),
                format!("Etc/GMT+{h}"),
            ),
            _ => return None,
        };
        (offset[1..] != *"0").then(|| {
            format!(
                "ACTION_WINDOW time zone {name} means {means}, not {looks}: Etc/GMT names use the POSIX sign, the opposite of the usual one; for {looks} write {other}"
            )
        })
    }

    pub(crate) fn parse(raw: &str) -> Result<Self, WindowError> {
        let parts: Vec<&str> = raw.split_whitespace().collect();
        let [days, times, zone] = parts[..] else {
            return Err(error(
                "value",
                raw,
                format!(
                    "has {} part(s); write three, separated by spaces: days, times and time zone",
                    parts.len()
                ),
            ));
        };
        let days = parse_days(days)?;
        let (start, end) = parse_times(times)?;
        let zone = parse_zone(zone)?;
        Ok(Self {
            days,
            start,
            end,
            zone,
        })
    }

    pub(crate) fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether the window is open at `now`.
    pub(crate) fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.zone);
        let minute = local.hour() * 60 + local.minute();
        self.days[local.weekday().num_days_from_monday() as usize]
            && self.start <= minute
            && minute < self.end
    }

    /// The first instant at or after `now` when the window is open (`now` itself when it is).
    ///
    /// Found by walking whole minutes rather than by constructing "day D at start" in the zone:
    /// open and close instants are whole minutes (window times are whole minutes, and so are
    /// today's UTC offsets and their transitions), and the walk needs no special case for a start
    /// time lost in a DST gap or a window re-opened by a fold. At most 15 days of minutes
    /// (21 600 offset look-ups), once per run.
    pub(crate) fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.contains(now) {
            return now;
        }
        let whole = DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(60), 0)
            .unwrap_or(now);
        let mut at = whole;
        // Fifteen days: every weekday twice, so a day whose window a DST gap swallowed whole
        // still has its next occurrence in range.
        for _ in 0..15 * MINUTES_PER_DAY {
            at += TimeDelta::minutes(1);
            if self.contains(at) {
                return at;
            }
        }
        // Unreachable for a parsed window (it has a day and at least one minute); `at` is the
        // honest "not within 15 days" rather than a panic.
        at
    }

    /// The reason a termination or stop is deferred at `now`, or `None` inside the window.
    pub(crate) fn deferral(&self, now: DateTime<Utc>) -> Option<String> {
        (!self.contains(now)).then(|| {
            format!(
                "outside ACTION_WINDOW {self}; next opens {}",
                format_date(self.next_open(now))
            )
        })
    }
}

impl FromStr for ActionWindow {
    type Err = WindowError;
    fn from_str(s: &str) -> Result<Self, WindowError> {
        Self::parse(s)
    }
}

/// The canonical text: runs of two or more days as ranges (`Mon-Fri`, `Sun-Thu`), other days
/// listed (`Mon,Wed,Fri`), 24-hour times, the zone's IANA name. It parses back to the same window.
impl fmt::Display for ActionWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}",
            days_text(&self.days),
            hhmm(self.start),
            hhmm(self.end),
            self.zone.name()
        )
    }
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn days_text(days: &[bool; 7]) -> String {
    if days.iter().all(|d| *d) {
        return "Mon-Sun".into();
    }
    // From Monday, unless a run crosses from Sunday into Monday: then from that run's first day,
    // so it stays one range (Fri-Mon, Sun-Thu).
    let mut first = 0;
    while days[(first + 6) % 7] && days[first] {
        first = (first + 6) % 7;
    }
    let order: Vec<usize> = (0..7).map(|k| (first + k) % 7).collect();
    let mut items = Vec::new();
    let mut k = 0;
    while k < order.len() {
        if !days[order[k]] {
            k += 1;
            continue;
        }
        let run_start = k;
        while k + 1 < order.len() && days[order[k + 1]] {
            k += 1;
        }
        let (a, b) = (DAY_NAMES[order[run_start]], DAY_NAMES[order[k]]);
        items.push(if run_start == k {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
        k += 1;
    }
    items.join(",")
}

fn parse_day(part: &str, name: &str) -> Result<usize, WindowError> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            error(
                "days",
                part,
                format!(
                    "has {name:?}, which is not a day; days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, written as one day, a range (Mon-Fri) or a list (Mon,Wed,Fri)"
                ),
            )
        })
}

fn parse_days(part: &str) -> Result<[bool; 7], WindowError> {
    let mut days = [false; 7];
    for item in part.split(',') {
        let mut listed = |d: usize| {
            if std::mem::replace(&mut days[d], true) {
                Err(error(
                    "days",
                    part,
                    format!("lists {} more than once", DAY_NAMES[d]),
                ))
            } else {
                Ok(())
            }
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(part, a)?, parse_day(part, b)?);
                if a == b {
                    return Err(error(
                        "days",
                        part,
                        format!("has the range {item:?}, which starts and ends on the same day; write {} alone", DAY_NAMES[a]),
                    ));
                }
                // A range may run across Sunday (Sun-Thu, Fri-Mon): work weeks do.
                let mut d = a;
                loop {
                    listed(d)?;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => listed(parse_day(part, item)?)?,
        }
    }
    Ok(days)
}

fn parse_hhmm(part: &str, text: &str, end: bool) -> Result<u32, WindowError> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 5
        && bytes[2] == b':'
        && [0, 1, 3, 4].iter().all(|&k| bytes[k].is_ascii_digit());
    let bad = |why: &str| error("times", part, format!("has {text:?}, {why}"));
    if !well_formed {
        return Err(bad("which is not HH:MM (24-hour, two digits each)"));
    }
    let number = |k: usize| u32::from(bytes[k] - b'0') * 10 + u32::from(bytes[k + 1] - b'0');
    let (h, m) = (number(0), number(3));
    if end && h == 24 && m == 0 {
        return Ok(MINUTES_PER_DAY);
    }
    if h > 23 || m > 59 {
        return Err(bad(if end {
            "which is not a time of day (00:00 to 23:59, or 24:00 to end at midnight)"
        } else {
            "which is not a time of day (00:00 to 23:59)"
        }));
    }
    Ok(h * 60 + m)
}

fn parse_times(part: &str) -> Result<(u32, u32), WindowError> {
    let (start, end) = part.split_once('-').ok_or_else(|| {
        error(
            "times",
            part,
            "is not a range; write start-end, e.g. 09:00-17:00",
        )
    })?;
    let start = parse_hhmm(part, start, false)?;
    let end = parse_hhmm(part, end, true)?;
    if start >= end {
        return Err(error(
            "times",
            part,
            "does not end after it starts on the same day; a window may not run past midnight (use 24:00 to end at midnight)",
        ));
    }
    Ok((start, end))
}

fn parse_zone(part: &str) -> Result<Tz, WindowError> {
    Tz::from_str(part).map_err(|_| {
        let hint = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(part))
            .map_or_else(
                || "an IANA name such as Europe/Berlin, America/New_York or UTC".to_string(),
                |tz| format!("names are case-sensitive: {}", tz.name()),
            );
        error(
            "time zone",
            part,
            format!("is not a known IANA time zone; write {hint}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn w(s: &str) -> ActionWindow {
        ActionWindow::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_the_canonical_text() {
        for (raw, canonical) in [
            (
                "Mon-Fri 09:00-17:00 Europe/Berlin",
                "Mon-Fri 09:00-17:00 Europe/Berlin",
            ),
            (
                "  mon-FRI   09:00-17:00\tEurope/Berlin ",
                "Mon-Fri 09:00-17:00 Europe/Berlin",
            ),
            ("Mon,Wed,Fri 08:30-12:00 UTC", "Mon,Wed,Fri 08:30-12:00 UTC"),
            (
                "Wed 00:00-24:00 Asia/Kolkata",
                "Wed 00:00-24:00 Asia/Kolkata",
            ),
            (
                "Sun-Thu 08:00-16:00 Asia/Jerusalem",
                "Sun-Thu 08:00-16:00 Asia/Jerusalem",
            ),
            ("Fri-Mon 10:00-11:00 UTC", "Fri-Mon 10:00-11:00 UTC"),
            (
                "Mon,Tue,Wed,Fri 10:00-11:00 UTC",
                "Mon-Wed,Fri 10:00-11:00 UTC",
            ),
            ("Mon-Sun 10:00-11:00 UTC", "Mon-Sun 10:00-11:00 UTC"),
            ("Sat,Sun,Mon-Fri 10:00-11:00 UTC", "Mon-Sun 10:00-11:00 UTC"),
            ("Sat-Sun 10:00-11:00 UTC", "Sat-Sun 10:00-11:00 UTC"),
            (
                "Mon,Wed,Sat,Sun 10:00-11:00 UTC",
                "Sat-Mon,Wed 10:00-11:00 UTC",
            ),
            (
                "Mon-Fri 09:00-17:00 Australia/Adelaide",
                "Mon-Fri 09:00-17:00 Australia/Adelaide",
            ),
        ] {
            let window = w(raw);
            assert_eq!(window.to_string(), canonical, "{raw}");
            assert_eq!(w(canonical), window, "{raw} round trip");
        }
    }

    #[test]
    fn bad_values_name_the_part_and_the_accepted_form() {
        // (value, part, a fragment of the reason)
        let cases = [
            ("", "value", "has 0 part(s)"),
            ("Mon-Fri 09:00-17:00", "value", "has 2 part(s)"),
            ("Mon - Fri 09:00-17:00 UTC", "value", "has 5 part(s)"),
            (
                "Mon-Fry 09:00-17:00 UTC",
                "days",
                "has \"Fry\", which is not a day",
            ),
            (
                "Monday 09:00-17:00 UTC",
                "days",
                "has \"Monday\", which is not a day",
            ),
            (
                "Mon,,Fri 09:00-17:00 UTC",
                "days",
                "has \"\", which is not a day",
            ),
            (
                "Mon-Mon 09:00-17:00 UTC",
                "days",
                "starts and ends on the same day",
            ),
            (
                "Mon-Fri,Wed 09:00-17:00 UTC",
                "days",
                "lists Wed more than once",
            ),
            (
                "Mon-Fri 9:00-17:00 UTC",
                "times",
                "has \"9:00\", which is not HH:MM",
            ),
            (
                "Mon-Fri 09:00-17 UTC",
                "times",
                "has \"17\", which is not HH:MM",
            ),
            ("Mon-Fri 09:00 UTC", "times", "is not a range"),
            (
                "Mon-Fri 09:00-25:00 UTC",
                "times",
                "not a time of day (00:00 to 23:59, or 24:00",
            ),
            (
                "Mon-Fri 24:00-24:00 UTC",
                "times",
                "not a time of day (00:00 to 23:59)",
            ),
            ("Mon-Fri 09:60-17:00 UTC", "times", "not a time of day"),
            (
                "Mon-Fri 17:00-09:00 UTC",
                "times",
                "may not run past midnight",
            ),
            (
                "Mon-Fri 09:00-09:00 UTC",
                "times",
                "does not end after it starts",
            ),
            ("Mon-Fri 09:00am-05:00pm UTC", "times", "which is not HH:MM"),
            (
                "Mon-Fri 09:00-17:00 Berlin",
                "time zone",
                "not a known IANA time zone; write an IANA name",
            ),
            (
                "Mon-Fri 09:00-17:00 +02:00",
                "time zone",
                "not a known IANA time zone",
            ),
            (
                "Mon-Fri 09:00-17:00 europe/berlin",
                "time zone",
                "names are case-sensitive: Europe/Berlin",
            ),
        ];
        for (raw, part, fragment) in cases {
            let err = ActionWindow::parse(raw).expect_err(raw);
            assert_eq!(err.part, part, "{raw}: {err}");
            let text = err.to_string();
            assert!(text.contains(fragment), "{raw}: {text}");
            assert!(
                text.contains("the accepted form is <days> <HH:MM>-<HH:MM> <IANA time zone>, e.g. Mon-Fri 09:00-17:00 Europe/Berlin"),
                "{raw}: {text}"
            );
        }
    }

    #[test]
    fn berlin_office_hours_follow_summer_time() {
        let window = w("Mon-Fri 09:00-17:00 Europe/Berlin");
        // (instant, open?) around the spring change (Sun 2030-03-31) and the autumn one (Sun 2030-10-27).
        let cases = [
            ("2030-03-29T07:59:59Z", false), // Fri 08:59:59 CET
            ("2030-03-29T08:00:00Z", true),  // Fri 09:00 CET
            ("2030-03-29T15:59:59Z", true),  // Fri 16:59:59 CET
            ("2030-03-29T16:00:00Z", false), // Fri 17:00 CET: the end is not inside
            ("2030-03-31T10:00:00Z", false), // Sunday
            ("2030-04-01T06:59:00Z", false), // Mon 08:59 CEST
            ("2030-04-01T07:00:00Z", true),  // Mon 09:00 CEST
            ("2030-04-01T15:00:00Z", false), // Mon 17:00 CEST
            ("2030-10-25T07:00:00Z", true),  // Fri 09:00 CEST
            ("2030-10-28T07:00:00Z", false), // Mon 08:00 CET
            ("2030-10-28T08:00:00Z", true),  // Mon 09:00 CET
        ];
        for (at, open) in cases {
            assert_eq!(window.contains(t(at)), open, "{at}");
        }
        // (now, next opening)
        let cases = [
            ("2030-03-29T16:00:00Z", "2030-04-01T07:00:00Z"),
            ("2030-03-31T00:30:00Z", "2030-04-01T07:00:00Z"), // before the change, same weekend
            ("2030-10-25T15:00:00Z", "2030-10-28T08:00:00Z"),
            ("2030-10-28T07:59:30Z", "2030-10-28T08:00:00Z"),
            ("2030-01-04T16:00:00Z", "2030-01-07T08:00:00Z"),
        ];
        for (now, next) in cases {
            assert_eq!(window.next_open(t(now)), t(next), "{now}");
        }
        assert_eq!(
            window.next_open(t("2030-04-01T09:00:00Z")),
            t("2030-04-01T09:00:00Z"),
            "open now: now"
        );
        assert_eq!(
            window.deferral(t("2030-03-29T16:00:00Z")).as_deref(),
            Some("outside ACTION_WINDOW Mon-Fri 09:00-17:00 Europe/Berlin; next opens 2030-04-01T07:00:00Z")
        );
        assert_eq!(window.deferral(t("2030-04-01T07:00:00Z")), None);
    }

    #[test]
    fn half_hour_offsets_kolkata_and_adelaide() {
        let kolkata = w("Mon-Fri 09:00-17:00 Asia/Kolkata"); // +05:30, no DST
        assert!(!kolkata.contains(t("2030-01-07T03:29:00Z")));
        assert!(kolkata.contains(t("2030-01-07T03:30:00Z")));
        assert!(kolkata.contains(t("2030-01-07T11:29:59Z")));
        assert!(!kolkata.contains(t("2030-01-07T11:30:00Z")));
        assert_eq!(
            kolkata.next_open(t("2030-01-04T12:00:00Z")),
            t("2030-01-07T03:30:00Z")
        );

        // +10:30 in the southern summer, +09:30 in winter; Monday 09:00 there is Sunday in UTC.
        let adelaide = w("Mon-Fri 09:00-17:00 Australia/Adelaide");
        assert!(!adelaide.contains(t("2030-01-06T22:29:00Z")));
        assert!(adelaide.contains(t("2030-01-06T22:30:00Z"))); // Mon 09:00 ACDT
        assert!(adelaide.contains(t("2030-07-07T23:30:00Z"))); // Mon 09:00 ACST
        assert!(!adelaide.contains(t("2030-07-07T23:29:00Z")));
        // Summer time ends Sun 2030-04-07 03:00 -> 02:00; starts Sun 2030-10-06 02:00 -> 03:00.
        assert_eq!(
            adelaide.next_open(t("2030-04-05T07:30:00Z")), // Fri 18:00 ACDT
            t("2030-04-07T23:30:00Z")                      // Mon 09:00 ACST
        );
        assert_eq!(
            adelaide.next_open(t("2030-10-04T08:30:00Z")), // Fri 18:00 ACST
            t("2030-10-06T22:30:00Z")                      // Mon 09:00 ACDT
        );
        let local = t("2030-10-06T22:30:00Z").with_timezone(&adelaide.zone());
        assert_eq!(local.weekday(), chrono::Weekday::Mon);
    }

    #[test]
    fn a_start_lost_in_the_spring_gap_opens_when_the_gap_ends() {
        // Berlin, Sun 2030-03-31: the clock jumps from 02:00 CET to 03:00 CEST at 01:00Z, so
        // 02:30 never happens; the window opens at the first instant the clock is past it.
        let window = w("Sun 02:30-04:00 Europe/Berlin");
        assert!(!window.contains(t("2030-03-31T00:59:59Z"))); // 01:59:59 CET
        assert!(window.contains(t("2030-03-31T01:00:00Z"))); // 03:00 CEST
        assert!(!window.contains(t("2030-03-31T02:00:00Z"))); // 04:00 CEST
        assert_eq!(
            window.next_open(t("2030-03-30T12:00:00Z")),
            t("2030-03-31T01:00:00Z")
        );
        // A window wholly inside the gap does not happen that day: the next Sunday's does.
        let lost = w("Sun 02:00-03:00 Europe/Berlin");
        assert_eq!(
            lost.next_open(t("2030-03-30T12:00:00Z")),
            t("2030-04-07T00:00:00Z") // 02:00 CEST
        );
    }

    #[test]
    fn a_time_the_autumn_clock_shows_twice_is_inside_both_times() {
        // Berlin, Sun 2030-10-27: at 01:00Z the clock goes back from 03:00 CEST to 02:00 CET.
        let window = w("Sun 02:00-02:30 Europe/Berlin");
        assert!(window.contains(t("2030-10-27T00:00:00Z"))); // 02:00 CEST
        assert!(!window.contains(t("2030-10-27T00:30:00Z"))); // 02:30 CEST
        assert!(window.contains(t("2030-10-27T01:00:00Z"))); // 02:00 CET, again
        assert!(!window.contains(t("2030-10-27T01:30:00Z")));
        assert_eq!(
            window.next_open(t("2030-10-27T00:45:00Z")),
            t("2030-10-27T01:00:00Z")
        );
        // The fold re-opens a window at the change itself, not at a "start" time.
        let window = w("Sun 01:00-02:30 Europe/Berlin");
        assert!(!window.contains(t("2030-10-27T00:45:00Z"))); // 02:45 CEST
        assert_eq!(
            window.next_open(t("2030-10-27T00:45:00Z")),
            t("2030-10-27T01:00:00Z") // 02:00 CET
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_window() -> impl Strategy<Value = ActionWindow> {
            (
                proptest::array::uniform7(any::<bool>())
                    .prop_filter("a day", |d| d.iter().any(|x| *x)),
                0u32..MINUTES_PER_DAY,
                1u32..=MINUTES_PER_DAY,
                0usize..chrono_tz::TZ_VARIANTS.len(),
            )
                .prop_filter_map("start < end", |(days, a, b, z)| {
                    (a < b).then_some(ActionWindow {
                        days,
                        start: a,
                        end: b,
                        zone: chrono_tz::TZ_VARIANTS[z],
                    })
                })
        }

        fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
            // 2025 to 2040, to the second.
            (1_735_689_600i64..2_208_988_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn the_text_reads_back_as_the_same_window(window in any_window()) {
                prop_assert_eq!(ActionWindow::parse(&window.to_string()), Ok(window));
            }

            #[test]
            fn next_open_is_open_and_nothing_before_it_is(window in any_window(), now in any_instant()) {
                let next = window.next_open(now);
                prop_assert!(next >= now);
                prop_assert!(next - now <= TimeDelta::days(15));
                prop_assert!(window.contains(next), "{window} at {next}");
                if next > now {
                    prop_assert!(!window.contains(now));
                    prop_assert!(!window.contains(next - TimeDelta::seconds(1)), "{window} opens before {next}");
                }
            }
        }
    }
}
