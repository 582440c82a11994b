//! Routine schedules: a cron expression (parsed by the `cron` crate) read in an IANA time zone.
//!
//! Two choices the `cron` crate leaves to us:
//! - Expressions follow standard cron: 5 fields (minute hour day month weekday), or 6/7 with
//!   seconds first (and a year last). Weekday numbers are standard cron's in every form: 0 or
//!   7 is Sunday, 1 is Monday (the crate itself counts 1 = Sunday, so numbers are translated
//!   to names before it sees them).
//! - Daylight-saving changes are resolved on the wall clock, as JavaScript Temporal's
//!   `compatible` disambiguation does: a slot that falls in the spring-forward gap fires the
//!   gap's length later (02:30 → 03:30), and a slot the fall-back hour repeats fires once,
//!   at its first occurrence.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// Candidate wall-clock slots examined for one answer: covers a fall-back hour of an
/// every-second schedule with room to spare, and bounds a schedule that never fires.
const MAX_CANDIDATES: usize = 10_000;

/// A parsed, valid schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: cron::Schedule,
    tz: Tz,
}

impl Schedule {
    /// `expression` in standard cron syntax, `timezone` an IANA name (`America/New_York`),
    /// as an admin saves it: also refused if it never fires again. Errors name the part at
    /// fault.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let schedule = Self::read(expression, timezone)?;
        if schedule.next_after(Utc::now().timestamp_millis()).is_none() {
            return Err(ScheduleError::Cron(format!(
                "{expression:?} never fires after today"
            )));
        }
        Ok(schedule)
    }

    /// A stored schedule (checked by `parse` when it was saved): the syntax only, so the
    /// scheduler's every look at a routine does not also search ahead for a first slot.
    pub fn read(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz = Tz::from_str(timezone).map_err(|_| {
            ScheduleError::Timezone(format!(
                "{timezone:?} is not an IANA time zone name such as UTC, America/New_York or Europe/Berlin"
            ))
        })?;
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let (with_seconds, weekday_at) = match fields.len() {
            5 => (false, 4),
            6 | 7 => (true, 5),
            n => {
                return Err(ScheduleError::Cron(format!(
                    "needs 5 fields (minute hour day-of-month month day-of-week), or 6-7 with seconds first; got {n}"
                )));
            }
        };
        check_ranges(expression, &fields, with_seconds)?;
        let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        fields[weekday_at] = standard_weekdays(&fields[weekday_at])?;
        let mut crate_form = fields.join(" ");
        if !with_seconds {
            crate_form = format!("0 {crate_form}");
        }
        let cron = cron::Schedule::from_str(&crate_form)
            .map_err(|e| ScheduleError::Cron(format!("{expression:?} is not valid cron: {e}")))?;
        Ok(Self { cron, tz })
    }

    /// The first slot strictly after `after_ms` (Unix ms), if the schedule has one.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let wall = self.wall(after_ms)?;
        self.cron
            .after(&Utc.from_utc_datetime(&wall))
            .take(MAX_CANDIDATES)
            .filter_map(|slot| self.instant(&slot.naive_utc()))
            .find(|&at| at > after_ms)
    }

    /// The latest slot at or before `at_ms`, if there is one within the search bound.
    pub fn latest_at_or_before(&self, at_ms: i64) -> Option<i64> {
        // Start one second past `at_ms` on the wall clock so a slot exactly at it counts.
        let wall = self.wall(at_ms)? + chrono::Duration::seconds(1);
        self.cron
            .after(&Utc.from_utc_datetime(&wall))
            .rev()
            .take(MAX_CANDIDATES)
            .filter_map(|slot| self.instant(&slot.naive_utc()))
            .find(|&at| at <= at_ms)
    }

    /// The next `n` slots after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut from = after_ms;
        while out.len() < n {
            match self.next_after(from) {
                Some(at) => {
                    out.push(at);
                    from = at;
                }
                None => break,
            }
        }
        out
    }

    /// `at_ms` as this schedule's zone shows it, labelled with the zone:
    /// `2026-11-23 04:00:00 America/New_York` (a routine's runs are read in its own zone).
    pub fn wall_text(&self, at_ms: i64) -> Option<String> {
        let wall = self.wall(at_ms)?;
        Some(format!(
            "{} {}",
            wall.format("%Y-%m-%d %H:%M:%S"),
            self.tz.name()
        ))
    }

    /// `at_ms` on this zone's wall clock, at whole-second precision.
    fn wall(&self, at_ms: i64) -> Option<NaiveDateTime> {
        let utc = DateTime::<Utc>::from_timestamp(at_ms.div_euclid(1000), 0)?;
        Some(utc.with_timezone(&self.tz).naive_local())
    }

    /// The instant a wall-clock slot means in this zone (see the module comment for DST).
    fn instant(&self, wall: &NaiveDateTime) -> Option<i64> {
        match self.tz.from_local_datetime(wall) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp_millis()),
            LocalResult::None => {
                // In a gap: read the wall time with the offset in force before the gap, which
                // lands the gap's length later on the new offset.
                let before = *wall - chrono::Duration::hours(24);
                let offset = match self.tz.from_local_datetime(&before) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.offset().fix(),
                    LocalResult::None => return None,
                };
                let utc = *wall - chrono::Duration::seconds(i64::from(offset.local_minus_utc()));
                Some(utc.and_utc().timestamp_millis())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Cron(String),
    #[error("{0}")]
    Timezone(String),
}

/// Rewrites a day-of-week field from standard cron numbers (0/7 = Sunday) to day names,
/// which the `cron` crate reads unambiguously. Names, `*` and `?` pass through.
fn standard_weekdays(field: &str) -> Result<String, ScheduleError> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let bad = |item: &str| {
        ScheduleError::Cron(format!(
            "day-of-week {item:?} is not valid: use 0-7 (0 and 7 are Sunday) or SUN-SAT"
        ))
    };
    let number = |s: &str| -> Result<usize, ScheduleError> {
        match s.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(n % 7),
            _ => Err(bad(s)),
        }
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<usize>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| bad(item))?,
                ),
            ),
            None => (item, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let days: Vec<usize> = match range.split_once('-') {
            _ if range == "*" => (0..7).collect(),
            Some((a, b)) if all_digits(a) && all_digits(b) => {
                let (a, b) = (
                    a.parse::<usize>().map_err(|_| bad(item))?,
                    b.parse::<usize>().map_err(|_| bad(item))?,
                );
                if a > 7 || b > 7 || a > b {
                    return Err(bad(item));
                }
                (a..=b).collect()
            }
            None if all_digits(range) => {
                let start = number(range)?;
                if step.is_some() {
                    (start..7).collect()
                } else {
                    vec![start]
                }
            }
            // Names (MON, MON-FRI) and anything else are the crate's to read and judge.
            _ => {
                out.push(item.to_owned());
                continue;
            }
        };
        let step = step.unwrap_or(1);
        out.extend(
            days.into_iter()
                .step_by(step)
                .map(|d| DAY_NAMES[d % 7].to_owned()),
        );
    }
    out.dedup();
    Ok(out.join(","))
}

/// A schedule in words for the common shapes — every N minutes, hourly at :MM, every N
/// hours, daily, on weekdays, weekends or some days of the week, monthly on a day — such as
/// "Weekdays at 09:00". None for anything else (and for an invalid expression): the page
/// shows the expression itself. The zone is the caller's to add.
pub fn describe(expression: &str) -> Option<String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let fields = match fields.len() {
        5 => &fields[..],
        6 if fields[0] == "0" => &fields[1..],
        7 if fields[0] == "0" && fields[6] == "*" => &fields[1..6],
        _ => return None,
    };
    let [minute, hour, day, month, weekday] = fields else {
        return None;
    };
    if *month != "*" {
        return None;
    }
    let weekdays = days_of_week(weekday)?;
    let every_day = weekdays.len() == 7;
    let plural = |n: u32, one: &str| {
        if n == 1 {
            format!("every {one}")
        } else {
            format!("every {n} {one}s")
        }
    };
    let step = |f: &str, most: u32| {
        let n = if f == "*" {
            1
        } else {
            f.strip_prefix("*/")?.parse::<u32>().ok()?
        };
        (1..=most).contains(&n).then_some(n)
    };
    // Every N minutes / hours: any day of the month and week only.
    if *day == "*" && every_day {
        if *hour == "*" {
            if let Some(n) = step(minute, 59) {
                return Some(capitalized(&plural(n, "minute")));
            }
            let m = number(minute, 59)?;
            return Some(format!("Hourly at :{m:02}"));
        }
        if hour.starts_with("*/") {
            let n = step(hour, 23)?;
            let m = number(minute, 59)?;
            return Some(capitalized(&format!("{} at :{m:02}", plural(n, "hour"))));
        }
    }
    let m = number(minute, 59)?;
    let mut hours = Vec::new();
    for h in hour.split(',') {
        hours.push(number(h, 23)?);
    }
    let times: Vec<String> = hours.iter().map(|h| format!("{h:02}:{m:02}")).collect();
    let at = format!("at {}", joined(&times));
    if *day != "*" {
        let d = number(day, 31).filter(|d| *d >= 1)?;
        return every_day.then(|| format!("Monthly on day {d} {at}"));
    }
    let days = match weekdays.as_slice() {
        _ if every_day => "Daily".to_owned(),
        [1, 2, 3, 4, 5] => "Weekdays".to_owned(),
        [0, 6] => "Weekends".to_owned(),
        _ => {
            // In the week's order from Monday, as a calendar shows it.
            let mut order: Vec<usize> = weekdays.iter().map(|d| (d + 6) % 7).collect();
            order.sort_unstable();
            let names: Vec<String> = order
                .into_iter()
                .map(|d| format!("{}s", WEEKDAY_WORDS[(d + 1) % 7]))
                .collect();
            format!("On {}", joined(&names))
        }
    };
    Some(format!("{days} {at}"))
}

const WEEKDAY_WORDS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A plain number within 0..=most (no lists, ranges or steps).
fn number(field: &str, most: u32) -> Option<u32> {
    all_digits(field)
        .then(|| field.parse::<u32>().ok())
        .flatten()
        .filter(|n| *n <= most)
}

/// The days (0 = Sunday) a day-of-week field of single days and ranges names, sorted, each
/// once; None for steps and the crate's other notations.
fn days_of_week(field: &str) -> Option<Vec<usize>> {
    if field == "*" || field == "?" {
        return Some((0..7).collect());
    }
    let day = |s: &str| -> Option<usize> {
        if all_digits(s) {
            return s.parse::<usize>().ok().filter(|n| *n <= 7).map(|n| n % 7);
        }
        DAY_NAMES.iter().position(|n| n.eq_ignore_ascii_case(s))
    };
    let mut days = Vec::new();
    for item in field.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                // 7 (Sunday) may end a range: 5-7 is Friday to Sunday.
                let b = if b == 0 && a > 0 { 7 } else { b };
                if a > b {
                    return None;
                }
                days.extend((a..=b).map(|d| d % 7));
            }
            None => days.push(day(item)?),
        }
    }
    days.sort_unstable();
    days.dedup();
    Some(days)
}

/// "a", "a and b", "a, b and c".
fn joined(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Each field's name and range, seconds first (a 5-field expression starts at the minute).
const FIELDS: [(&str, &str, u32, u32); 7] = [
    ("second", "seconds", 0, 59),
    ("minute", "minutes", 0, 59),
    ("hour", "hours", 0, 23),
    ("day of the month", "days of the month", 1, 31),
    ("month", "months", 1, 12),
    ("day of the week", "days of the week", 0, 7),
    ("year", "years", 1970, 2099),
];

fn ordinal(n: usize) -> String {
    match n {
        1 => "1st".into(),
        2 => "2nd".into(),
        3 => "3rd".into(),
        n => format!("{n}th"),
    }
}

/// Numbers out of their field's range, named in the expression as typed: the crate reads a
/// 5-field expression as 6 fields with seconds first, and its messages (e.g. "Hours must be
/// less than 23" for an hour of 25) describe that rewrite rather than what was typed. Names,
/// `?`, `L` and the like are left to the crate.
fn check_ranges(
    expression: &str,
    fields: &[&str],
    with_seconds: bool,
) -> Result<(), ScheduleError> {
    let specs = if with_seconds {
        &FIELDS[..]
    } else {
        &FIELDS[1..6]
    };
    for (i, (field, &(name, plural, lo, hi))) in fields.iter().zip(specs).enumerate() {
        if name == "day of the week" {
            // standard_weekdays reads and explains it (0-7 or SUN-SAT).
            continue;
        }
        let at = format!("{expression:?}: the {name} ({} field)", ordinal(i + 1));
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(step) = step
                && all_digits(step)
                && step.parse::<u32>().is_ok_and(|n| n == 0)
            {
                return Err(ScheduleError::Cron(format!(
                    "{at} steps by 0 in {item:?}: a step is 1 or more"
                )));
            }
            for n in range.split('-').filter(|n| all_digits(n)) {
                let value = n.parse::<u32>().unwrap_or(u32::MAX);
                if value < lo || value > hi {
                    return Err(ScheduleError::Cron(format!(
                        "{at} is {n}, but {plural} go from {lo} to {hi}"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn common_schedules_read_in_words() {
        for (cron, words) in [
            ("0 9 * * MON-FRI", "Weekdays at 09:00"),
            ("0 9 * * 1-5", "Weekdays at 09:00"),
            ("30 8 * * mon-fri", "Weekdays at 08:30"),
            ("*/15 * * * *", "Every 15 minutes"),
            ("* * * * *", "Every minute"),
            ("*/1 * * * *", "Every minute"),
            ("5 * * * *", "Hourly at :05"),
            ("0 */2 * * *", "Every 2 hours at :00"),
            ("0 9 * * *", "Daily at 09:00"),
            ("0 9,17 * * *", "Daily at 09:00 and 17:00"),
            ("0 9 * * ?", "Daily at 09:00"),
            ("0 0 1 * *", "Monthly on day 1 at 00:00"),
            ("15 6 28 * *", "Monthly on day 28 at 06:15"),
            ("0 10 * * SAT,SUN", "Weekends at 10:00"),
            ("0 10 * * 6,0", "Weekends at 10:00"),
            ("0 10 * * 6-7", "Weekends at 10:00"),
            (
                "0 7 * * 1,3,5",
                "On Mondays, Wednesdays and Fridays at 07:00",
            ),
            ("0 7 * * SUN,MON", "On Mondays and Sundays at 07:00"),
            ("0 7 * * 7", "On Sundays at 07:00"),
            (
                "0 7 * * TUE-THU",
                "On Tuesdays, Wednesdays and Thursdays at 07:00",
            ),
            ("0 0 9 * * MON-FRI", "Weekdays at 09:00"),
            ("0 0 9 * * MON-FRI *", "Weekdays at 09:00"),
        ] {
            assert_eq!(describe(cron).as_deref(), Some(words), "{cron}");
            // Every one it describes is a schedule the scheduler reads.
            Schedule::read(cron, "UTC").unwrap();
        }
    }

    #[test]
    fn other_schedules_are_not_put_in_words() {
        for cron in [
            "30 0 9 * * *",
            "0 9 1 * MON",
            "0 9 * 1 *",
            "0 9-17 * * *",
            "0 9 * * MON/2",
            "0 9 L * *",
            "0 9 1,15 * *",
            "0,30 9 * * *",
            "0 */0 * * *",
            "0 9 * * * 2030",
            "61 * * * *",
            "0 25 * * *",
            "nonsense",
            "",
        ] {
            assert_eq!(describe(cron), None, "{cron}");
        }
    }
    use super::*;

    #[test]
    fn an_out_of_range_number_is_named_as_typed() {
        let e = |expr: &str| match Schedule::read(expr, "UTC") {
            Err(ScheduleError::Cron(m)) => m,
            other => panic!("{expr}: {other:?}"),
        };
        assert_eq!(
            e("0 25 * * MON-FRI"),
            "\"0 25 * * MON-FRI\": the hour (2nd field) is 25, but hours go from 0 to 23"
        );
        assert!(
            e("60 9 * * *").contains("the minute (1st field) is 60, but minutes go from 0 to 59")
        );
        assert!(e("0 9 32 * *").contains("the day of the month (3rd field) is 32"));
        assert!(
            e("0 9 * 13 *").contains("the month (4th field) is 13, but months go from 1 to 12")
        );
        assert!(e("0 9 * * 8").contains("day-of-week \"8\" is not valid"));
        assert!(e("0 9-30 * * *").contains("the hour (2nd field) is 30"));
        assert!(e("*/0 * * * *").contains("steps by 0"));
        // With seconds first, the positions are the typed ones too.
        assert!(e("0 0 24 * * *").contains("the hour (3rd field) is 24"));
        for fine in [
            "0 9 * * MON-FRI",
            "*/15 8-17 1,15 JAN-JUN 1-5",
            "30 0 9 * * 0 2030",
        ] {
            assert!(Schedule::read(fine, "UTC").is_ok(), "{fine}");
        }
    }

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn iso(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn five_fields_with_standard_weekdays() {
        // 2026-11-27 is a Friday.
        let s = Schedule::parse("0 9 * * 1-5", "UTC").unwrap();
        let next: Vec<String> = s
            .upcoming(ms("2026-11-27T10:00:00Z"), 3)
            .into_iter()
            .map(iso)
            .collect();
        assert_eq!(
            next,
            [
                "2026-11-30T09:00:00+00:00",
                "2026-12-01T09:00:00+00:00",
                "2026-12-02T09:00:00+00:00"
            ]
        );
        let sunday = Schedule::parse("0 9 * * 0", "UTC").unwrap();
        let also_sunday = Schedule::parse("0 9 * * 7", "UTC").unwrap();
        let named = Schedule::parse("0 9 * * SUN", "UTC").unwrap();
        let from = ms("2026-11-27T10:00:00Z");
        assert_eq!(
            iso(sunday.next_after(from).unwrap()),
            "2026-11-29T09:00:00+00:00"
        );
        assert_eq!(sunday.next_after(from), also_sunday.next_after(from));
        assert_eq!(sunday.next_after(from), named.next_after(from));
        let mon_fri = Schedule::parse("0 9 * * MON-FRI", "UTC").unwrap();
        assert_eq!(mon_fri.upcoming(from, 3), s.upcoming(from, 3));
        let weekend = Schedule::parse("0 9 * * 6-7", "UTC").unwrap();
        assert_eq!(
            iso(weekend.next_after(from).unwrap()),
            "2026-11-28T09:00:00+00:00"
        );
        assert_eq!(
            iso(weekend.upcoming(from, 2)[1]),
            "2026-11-29T09:00:00+00:00"
        );
    }

    #[test]
    fn seconds_forms() {
        let s = Schedule::parse("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(ms("2026-11-27T10:00:07Z")),
            Some(ms("2026-11-27T10:00:15Z"))
        );
        let y = Schedule::parse("0 0 12 1 1 * 2030", "UTC").unwrap();
        assert_eq!(
            y.next_after(ms("2026-11-27T10:00:00Z")),
            Some(ms("2030-01-01T12:00:00Z"))
        );
    }

    #[test]
    fn bad_input_names_the_part() {
        assert!(
            matches!(Schedule::parse("0 9 * *", "UTC"), Err(ScheduleError::Cron(m)) if m.contains("5 fields"))
        );
        assert!(matches!(
            Schedule::parse("0 25 * * *", "UTC"),
            Err(ScheduleError::Cron(_))
        ));
        assert!(
            matches!(Schedule::parse("0 9 * * 8", "UTC"), Err(ScheduleError::Cron(m)) if m.contains("day-of-week"))
        );
        assert!(matches!(
            Schedule::parse("0 9 * * *", "Mars/Olympus"),
            Err(ScheduleError::Timezone(_))
        ));
        assert!(
            matches!(Schedule::parse("0 0 0 1 1 * 2001", "UTC"), Err(ScheduleError::Cron(m)) if m.contains("never"))
        );
    }

    #[test]
    fn zones_and_dst() {
        let ny = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        // US DST starts 2027-03-14: 02:30 does not exist that day and fires at 03:30 EDT.
        let next: Vec<String> = ny
            .upcoming(ms("2027-03-13T12:00:00Z"), 3)
            .into_iter()
            .map(iso)
            .collect();
        assert_eq!(
            next,
            [
                "2027-03-14T07:30:00+00:00",
                "2027-03-15T06:30:00+00:00",
                "2027-03-16T06:30:00+00:00"
            ]
        );
        // DST ends 2026-11-01: 01:30 happens twice and fires once, at the first (EDT).
        let ny = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        let next: Vec<String> = ny
            .upcoming(ms("2026-10-31T12:00:00Z"), 3)
            .into_iter()
            .map(iso)
            .collect();
        assert_eq!(
            next,
            [
                "2026-11-01T05:30:00+00:00",
                "2026-11-02T06:30:00+00:00",
                "2026-11-03T06:30:00+00:00"
            ]
        );
        // Hourly through the fall-back night: the repeated 01:00 fires once, like any other slot.
        let hourly = Schedule::parse("0 * * * *", "America/New_York").unwrap();
        let next: Vec<String> = hourly
            .upcoming(ms("2026-11-01T04:30:00Z"), 3)
            .into_iter()
            .map(iso)
            .collect();
        assert_eq!(
            next,
            [
                "2026-11-01T05:00:00+00:00",
                "2026-11-01T07:00:00+00:00",
                "2026-11-01T08:00:00+00:00"
            ]
        );
    }

    #[test]
    fn latest_slot_for_catching_up() {
        let s = Schedule::parse("0 * * * *", "UTC").unwrap();
        assert_eq!(
            s.latest_at_or_before(ms("2026-11-27T10:59:59Z")),
            Some(ms("2026-11-27T10:00:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(ms("2026-11-27T10:00:00Z")),
            Some(ms("2026-11-27T10:00:00Z"))
        );
        let ny = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        // During the repeated hour, the slot already fired at its first occurrence.
        assert_eq!(
            ny.latest_at_or_before(ms("2026-11-01T06:45:00Z")),
            Some(ms("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn a_run_reads_in_the_schedules_own_zone() {
        let s = Schedule::read("0 9 * * *", "America/New_York").unwrap();
        // 2026-11-23T14:00:00Z is 09:00 in New York (EST, UTC-5).
        assert_eq!(
            s.wall_text(1_795_442_400_000).as_deref(),
            Some("2026-11-23 09:00:00 America/New_York")
        );
        let utc = Schedule::read("0 9 * * *", "UTC").unwrap();
        assert_eq!(
            utc.wall_text(1_795_442_400_000).as_deref(),
            Some("2026-11-23 14:00:00 UTC")
        );
    }
}
