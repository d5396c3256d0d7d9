//! Business calendars (SPEC §7, `calendar = "business"`): which instants are
//! working time in a time zone, given working days, daily hours and holidays,
//! and the arithmetic deadlines need on top of that (`start` plus so much
//! business time; business time elapsed between two instants).
//!
//! Side effects: only [`BusinessCalendar::new`], which looks the time zone up
//! in the tz database (the system's `/usr/share/zoneinfo`, or the copy bundled
//! into the binary when a machine has none). Everything after that is pure.
//!
//! Working time is local wall-clock time: a working day on a DST-change day
//! has the hours its wall clock shows, so an hour that does not exist is not
//! worked and an hour that happens twice is worked once. Each day's opening
//! and closing are resolved in the zone separately; days are never 24 hours
//! of UTC.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use jiff::civil::{self, Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};

/// How many days [`BusinessCalendar::add`] walks looking for enough working
/// time (ten years) before it gives up and counts around the clock: a guard
/// that ends every loop, far beyond any deadline a policy sets.
const MAX_DAYS: u32 = 3660;

/// Day names as `policy.days` accepts them (Monday first, as in
/// [`BusinessCalendar::days`]): the usual abbreviation or the full name.
const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// A business calendar: working hours on working days in one time zone,
/// minus holidays. Built once from the config by [`BusinessCalendar::new`].
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    /// Where the team's wall clock hangs: hours, days and holidays are local
    /// to it, DST included.
    tz: TimeZone,
    /// Working weekdays, Monday first (`days[0]` is Monday, `days[6]` Sunday).
    days: [bool; 7],
    /// When a working day's hours begin (local wall-clock time).
    start: Time,
    /// When they end; always after `start` (a day's hours never cross
    /// midnight). A deadline may fall exactly here.
    end: Time,
    /// Local dates on which nobody works although their weekday is a working day.
    holidays: BTreeSet<Date>,
}

impl BusinessCalendar {
    /// Builds a calendar from the `[policy]` keys `timezone` (an IANA name,
    /// "Europe/Berlin"), `days` ("mon".."sun" or full names, any case, and
    /// ranges such as "mon-fri"), `hours` ("09:00-17:00") and `holidays`
    /// ("2026-12-25").
    ///
    /// Errors are one line per problem, each starting with the key it is
    /// about, as config validation reports them.
    pub fn new(timezone: &str, days: &[String], hours: &str, holidays: &[String]) -> Result<Self, Vec<String>> {
        let mut errs = Vec::new();
        let tz = parse_time_zone(timezone).map_err(|e| errs.push(e)).ok();
        let days = parse_days(days, &mut errs);
        let hours = parse_hours(hours).map_err(|e| errs.push(e)).ok();
        let holidays = parse_holidays(holidays, &mut errs);
        match (tz, hours) {
            (Some(tz), Some((start, end))) if errs.is_empty() => Ok(BusinessCalendar { tz, days, start, end, holidays }),
            _ => Err(errs),
        }
    }

    /// The instant at which `d` of business time has elapsed after `start`:
    /// the earliest instant `t >= start` with
    /// `business_time_between(start, t) == d`.
    ///
    /// Counting begins at `start` if that is working time, else at the next
    /// opening. A deadline that ends exactly at a closing stays there rather
    /// than moving to the next opening; a zero `d` is `start` itself.
    /// Should there be no such instant within ten years (a calendar without
    /// working time, or an absurd `d`), the answer is `start + d` around the
    /// clock, so a deadline always exists.
    pub fn add(&self, start: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
        if d.is_zero() {
            return start;
        }
        self.try_add(start, d).unwrap_or_else(|| around_the_clock(start, d))
    }

    /// Business time elapsed from `a` to `b` (zero if `b <= a`): how long a
    /// lapsed deadline has been lapsed, in the calendar's terms.
    pub fn business_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::ZERO;
        }
        match (to_jiff(a), to_jiff(b)) {
            (Some(a), Some(b)) => self.between(a, b),
            // Beyond the years jiff knows (±9999): around the clock.
            _ => (b - a).to_std().unwrap_or(Duration::MAX),
        }
    }

    /// `t` on the calendar's wall clock, with the zone: `2026-12-10 15:00 CET`.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        match to_jiff(t) {
            Some(ts) => ts.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%d %H:%M %Z").to_string(),
            None => t.to_rfc3339(),
        }
    }

    /// Whether `t` is working time (an opening is, a closing is not).
    pub fn is_working(&self, t: DateTime<Utc>) -> bool {
        let Some(t) = to_jiff(t) else { return false };
        let today = self.local_date(t);
        [today.yesterday().ok(), Some(today)]
            .into_iter()
            .flatten()
            .filter_map(|date| self.period(date))
            .any(|(open, close)| open <= t && t < close)
    }

    fn try_add(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        let from = to_jiff(start)?;
        let mut left = d;
        let mut date = self.first_date(from);
        for _ in 0..MAX_DAYS {
            if let Some((open, close)) = self.period(date)
                && close > from
            {
                let begin = open.max(from);
                let available = close.duration_since(begin).unsigned_abs();
                if left <= available {
                    return to_chrono(begin.checked_add(left).ok()?);
                }
                left -= available;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn between(&self, a: Timestamp, b: Timestamp) -> Duration {
        let last = self.local_date(b);
        let mut date = self.first_date(a);
        let mut total = Duration::ZERO;
        while date <= last {
            if let Some((open, close)) = self.period(date) {
                let (lo, hi) = (open.max(a), close.min(b));
                if lo < hi {
                    total += hi.duration_since(lo).unsigned_abs();
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        total
    }

    /// The first local date whose working period may still matter at `t`:
    /// the day before `t`'s, in case a zone's clock ever steps back across
    /// midnight (one wasted look-up otherwise).
    fn first_date(&self, t: Timestamp) -> Date {
        let today = self.local_date(t);
        today.yesterday().unwrap_or(today)
    }

    fn local_date(&self, t: Timestamp) -> Date {
        self.tz.to_datetime(t).date()
    }

    /// The working period of local date `date` as `[open, close)` instants,
    /// or `None` on a day off (or a day whose hours the clock skips).
    fn period(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        let weekday = usize::try_from(date.weekday().to_monday_zero_offset()).ok()?;
        if !self.days[weekday] || self.holidays.contains(&date) {
            return None;
        }
        let open = self.first_instant(date.to_datetime(self.start))?;
        let close = self.first_instant(date.to_datetime(self.end))?;
        (open < close).then_some((open, close))
    }

    /// The first instant at which the local wall clock reads `dt`: in a DST
    /// gap (the clock jumps over `dt`), the jump itself; in a fold (the clock
    /// reads `dt` twice), the first time.
    fn first_instant(&self, dt: civil::DateTime) -> Option<Timestamp> {
        let ambiguous = self.tz.to_ambiguous_timestamp(dt);
        match ambiguous.offset() {
            AmbiguousOffset::Gap { after, .. } => {
                // `dt` read with the offset after the gap lies before the jump.
                let before_jump = after.to_timestamp(dt).ok()?;
                self.tz.following(before_jump).next().map(|t| t.timestamp())
            }
            _ => ambiguous.earlier().ok(),
        }
    }
}

fn to_jiff(t: DateTime<Utc>) -> Option<Timestamp> {
    let nanos = i32::try_from(t.timestamp_subsec_nanos()).ok()?;
    Timestamp::new(t.timestamp(), nanos).ok()
}

fn to_chrono(t: Timestamp) -> Option<DateTime<Utc>> {
    // jiff gives instants before 1970 a negative fraction; chrono a positive one.
    let (mut secs, mut nanos) = (t.as_second(), t.subsec_nanosecond());
    if nanos < 0 {
        secs -= 1;
        nanos += 1_000_000_000;
    }
    DateTime::from_timestamp(secs, u32::try_from(nanos).ok()?)
}

/// The fallback when business time cannot be counted: `start + d`, saturating.
fn around_the_clock(start: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The zone from the system tz database, or from the bundled copy when the
/// system's lacks it (no tzdata at all, or Debian's split-off `tzdata-legacy`
/// names such as "US/Eastern").
fn parse_time_zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("policy.timezone: missing (an IANA time zone name such as \"Europe/Berlin\")".into());
    }
    jiff::tz::db()
        .get(name)
        .or_else(|_| TimeZoneDatabase::bundled().get(name))
        .map_err(|_| format!("policy.timezone: {name:?} is not a known time zone; use an IANA name such as \"Europe/Berlin\""))
}

fn parse_days(items: &[String], errs: &mut Vec<String>) -> [bool; 7] {
    let mut days = [false; 7];
    if items.is_empty() {
        errs.push("policy.days: no working days; list some, e.g. [\"mon-fri\"]".into());
    }
    for item in items {
        match parse_day_range(item) {
            Some(range) => range.for_each(|i| days[i] = true),
            None => errs.push(format!(
                "policy.days: {item:?} is not a day or a range of days; use \"mon\"..\"sun\" or e.g. \"mon-fri\""
            )),
        }
    }
    days
}

/// "mon" or "mon-fri" (wrapping: "fri-mon" is Friday to Monday) as indices
/// into [`BusinessCalendar::days`].
fn parse_day_range(item: &str) -> Option<impl Iterator<Item = usize>> {
    let (first, last) = match item.split_once('-') {
        Some((a, b)) => (parse_day(a)?, parse_day(b)?),
        None => (parse_day(item)?, parse_day(item)?),
    };
    let len = (last + 7 - first) % 7 + 1;
    Some((0..len).map(move |k| (first + k) % 7))
}

fn parse_day(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    DAY_NAMES.iter().position(|(short, long)| s == *short || s == *long)
}

fn parse_hours(hours: &str) -> Result<(Time, Time), String> {
    let parsed = hours.split_once('-').and_then(|(a, b)| Some((parse_time(a)?, parse_time(b)?)));
    match parsed {
        None => Err(format!(
            "policy.hours: {hours:?} is not a span of hours; use \"HH:MM-HH:MM\", e.g. \"09:00-17:00\""
        )),
        Some((start, end)) if end <= start => Err(format!(
            "policy.hours: {hours:?} does not end after it starts; the hours of a day cannot cross midnight"
        )),
        Some(span) => Ok(span),
    }
}

/// "9:00", "09:00", "17:30": hours 0 to 23, minutes 00 to 59.
fn parse_time(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |t: &str, max_len: usize| !t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

fn parse_holidays(items: &[String], errs: &mut Vec<String>) -> BTreeSet<Date> {
    let mut holidays = BTreeSet::new();
    for item in items {
        match parse_date(item) {
            Some(date) => {
                holidays.insert(date);
            }
            None => errs.push(format!("policy.holidays: {item:?} is not a date; use YYYY-MM-DD, e.g. \"2026-12-25\"")),
        }
    }
    holidays
}

/// Exactly `YYYY-MM-DD`, and a day that exists.
fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let shape = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shape {
        return None;
    }
    Date::new(s[0..4].parse().ok()?, s[5..7].parse().ok()?, s[8..10].parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    fn hours(n: u64) -> Duration {
        Duration::from_secs(n * H)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("bad test instant {s:?}: {e}"))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// A calendar from config-like values; a zone missing from both the
    /// system's tz database and the bundled copy fails with a clear message.
    fn calendar(tz: &str, days: &[&str], span: &str, holidays: &[&str]) -> BusinessCalendar {
        BusinessCalendar::new(tz, &strings(days), span, &strings(holidays)).unwrap_or_else(|errs| {
            panic!(
                "test calendar {tz} {days:?} {span} did not build: {errs:?}\n\
                 (a missing zone means no tz database: install tzdata, or build jiff with tzdb-bundle-always)"
            )
        })
    }

    /// Europe/Berlin, Mon-Fri 09:00-17:00: CET is UTC+1, CEST (last Sunday of
    /// March to last Sunday of October) UTC+2.
    fn berlin(holidays: &[&str]) -> BusinessCalendar {
        calendar("Europe/Berlin", &["mon-fri"], "09:00-17:00", holidays)
    }

    /// America/New_York, Mon-Fri 09:00-17:00: EST is UTC-5, EDT (second Sunday
    /// of March to first Sunday of November) UTC-4.
    fn new_york(holidays: &[&str]) -> BusinessCalendar {
        calendar("America/New_York", &["Mon-Fri"], "09:00-17:00", holidays)
    }

    #[test]
    fn friday_evening_report_counts_from_monday_morning() {
        let cal = berlin(&[]);
        // Fri 2026-11-20 18:30 CET. 48h = 6 working days of 8h: Mon 23 to
        // Fri 27 (40h) and Mon 30 09:00-17:00 CET, i.e. 16:00Z, kept at the
        // closing rather than moved to Tue 09:00.
        assert_eq!(cal.add(utc("2026-11-20T17:30:00Z"), hours(48)), utc("2026-11-30T16:00:00Z"));
        // 1h: Mon 23 10:00 CET.
        assert_eq!(cal.add(utc("2026-11-20T17:30:00Z"), hours(1)), utc("2026-11-23T09:00:00Z"));
    }

    #[test]
    fn a_day_of_business_time_is_eight_hours() {
        let cal = berlin(&[]);
        // Mon 2026-11-23 09:00 CET + 24h = Mon, Tue, Wed: Wed 25 17:00 CET.
        assert_eq!(cal.add(utc("2026-11-23T08:00:00Z"), hours(24)), utc("2026-11-25T16:00:00Z"));
        // Mon 12:00 CET + 24h: 5h Mon, 8h Tue, 8h Wed, 3h Thu: Thu 26 12:00 CET.
        assert_eq!(cal.add(utc("2026-11-23T11:00:00Z"), hours(24)), utc("2026-11-26T11:00:00Z"));
    }

    #[test]
    fn monday_holiday_is_skipped() {
        let cal = berlin(&["2026-11-23"]);
        // Fri 2026-11-20 18:30 CET, Mon 23 off: 8h is Tue 24 09:00-17:00 CET.
        assert_eq!(cal.add(utc("2026-11-20T17:30:00Z"), hours(8)), utc("2026-11-24T16:00:00Z"));
        // 10h: all of Tue and Wed 25 09:00-11:00 CET.
        assert_eq!(cal.add(utc("2026-11-20T17:30:00Z"), hours(10)), utc("2026-11-25T10:00:00Z"));
        assert!(!cal.is_working(utc("2026-11-23T10:00:00Z")));
    }

    #[test]
    fn deadline_outside_hours_moves_to_next_morning() {
        let cal = berlin(&[]);
        // Mon 2026-11-23 16:00 CET + 2h: 1h Mon, then Tue 24 09:00-10:00 CET.
        assert_eq!(cal.add(utc("2026-11-23T15:00:00Z"), hours(2)), utc("2026-11-24T09:00:00Z"));
        // Before opening: Mon 07:00 CET + 2h = Mon 11:00 CET.
        assert_eq!(cal.add(utc("2026-11-23T06:00:00Z"), hours(2)), utc("2026-11-23T10:00:00Z"));
        // At the closing: Mon 17:00 CET + 1h = Tue 10:00 CET.
        assert_eq!(cal.add(utc("2026-11-23T16:00:00Z"), hours(1)), utc("2026-11-24T09:00:00Z"));
    }

    #[test]
    fn report_on_a_holiday_weekend_starts_tuesday() {
        // Easter 2026: Good Friday 3 April, Easter Monday 6 April (CEST, UTC+2).
        let cal = berlin(&["2026-04-03", "2026-04-06"]);
        // Sat 2026-04-04 11:00 CEST; Sun and Mon off: counting starts Tue 7
        // 09:00 CEST (07:00Z). 1h: 10:00 CEST; 8h: 17:00 CEST.
        assert_eq!(cal.add(utc("2026-04-04T09:00:00Z"), hours(1)), utc("2026-04-07T08:00:00Z"));
        assert_eq!(cal.add(utc("2026-04-04T09:00:00Z"), hours(8)), utc("2026-04-07T15:00:00Z"));
        // From Thu 2 April 16:00 CEST: 1h Thu, then Tue 7 09:00-10:00 CEST.
        assert_eq!(cal.add(utc("2026-04-02T14:00:00Z"), hours(2)), utc("2026-04-07T08:00:00Z"));
    }

    #[test]
    fn spring_forward_in_berlin() {
        let cal = berlin(&[]);
        // Sun 2026-03-29 02:00 CET -> 03:00 CEST. Fri 27 16:00 CET (15:00Z)
        // + 2h: 1h Fri, Mon 30 09:00-10:00 CEST = 08:00Z. Counting 24h days
        // in UTC would say 09:00Z.
        assert_eq!(cal.add(utc("2026-03-27T15:00:00Z"), hours(2)), utc("2026-03-30T08:00:00Z"));
        // Fri 18:30 CET + 16h: Mon 30 and Tue 31 whole, Tue 17:00 CEST = 15:00Z,
        // where the week before (CET) it is 16:00Z.
        assert_eq!(cal.add(utc("2026-03-27T17:30:00Z"), hours(16)), utc("2026-03-31T15:00:00Z"));
        assert_eq!(cal.add(utc("2026-03-20T17:30:00Z"), hours(16)), utc("2026-03-24T16:00:00Z"));
        // Fri 18:30 CET + 12h: Mon 8h, Tue 09:00-13:00 CEST = 11:00Z.
        assert_eq!(cal.add(utc("2026-03-27T17:30:00Z"), hours(12)), utc("2026-03-31T11:00:00Z"));
        assert_eq!(cal.business_time_between(utc("2026-03-27T15:00:00Z"), utc("2026-03-30T08:00:00Z")), hours(2));
    }

    #[test]
    fn fall_back_in_berlin() {
        let cal = berlin(&[]);
        // Sun 2026-10-25 03:00 CEST -> 02:00 CET. Fri 23 16:00 CEST (14:00Z)
        // + 2h: 1h Fri, Mon 26 09:00-10:00 CET = 09:00Z (not 08:00Z).
        assert_eq!(cal.add(utc("2026-10-23T14:00:00Z"), hours(2)), utc("2026-10-26T09:00:00Z"));
        // Fri 18:30 CEST + 12h: Mon 8h, Tue 27 09:00-13:00 CET = 12:00Z,
        // where the week before (CEST) it is 11:00Z.
        assert_eq!(cal.add(utc("2026-10-23T16:30:00Z"), hours(12)), utc("2026-10-27T12:00:00Z"));
        assert_eq!(cal.add(utc("2026-10-16T16:30:00Z"), hours(12)), utc("2026-10-20T11:00:00Z"));
        assert_eq!(cal.business_time_between(utc("2026-10-23T14:00:00Z"), utc("2026-10-26T09:00:00Z")), hours(2));
    }

    #[test]
    fn longer_than_a_week() {
        let cal = berlin(&[]);
        // Mon 2026-11-02 09:00 CET + 100h = 12.5 working days: Nov 2-6,
        // 9-13, 16-17 whole (96h), then Wed 18 09:00-13:00 CET = 12:00Z.
        assert_eq!(cal.add(utc("2026-11-02T08:00:00Z"), hours(100)), utc("2026-11-18T12:00:00Z"));
        // Across the October change: Mon 2026-10-19 09:00 CEST (07:00Z) +
        // 100h: Oct 19-23, 26-30, Nov 2-3 whole, Wed 4 Nov 13:00 CET = 12:00Z.
        assert_eq!(cal.add(utc("2026-10-19T07:00:00Z"), hours(100)), utc("2026-11-04T12:00:00Z"));
        // 5 business weeks from Fri 2026-12-18 17:00 CET, with Dec 24-25 and
        // 31, Jan 1 off: 200h = 25 working days. Dec 21-23 (3), 28-30 (6),
        // Jan 4-8 (11), 11-15 (16), 18-22 (21), 25-28 (25): Thu 28 Jan
        // 17:00 CET = 16:00Z.
        let cal = berlin(&["2026-12-24", "2026-12-25", "2026-12-31", "2027-01-01"]);
        assert_eq!(cal.add(utc("2026-12-18T16:00:00Z"), hours(200)), utc("2027-01-28T16:00:00Z"));
    }

    #[test]
    fn new_york_across_both_changes_and_thanksgiving() {
        // Sun 2026-03-08 02:00 EST -> 03:00 EDT. Fri 6 16:00 EST (21:00Z) +
        // 2h: 1h Fri, Mon 9 09:00-10:00 EDT = 14:00Z.
        let cal = new_york(&["2026-11-26", "2026-11-27"]);
        assert_eq!(cal.add(utc("2026-03-06T21:00:00Z"), hours(2)), utc("2026-03-09T14:00:00Z"));
        // Sun 2026-11-01 02:00 EDT -> 01:00 EST. Fri Oct 30 16:00 EDT (20:00Z)
        // + 2h: Mon Nov 2 10:00 EST = 15:00Z.
        assert_eq!(cal.add(utc("2026-10-30T20:00:00Z"), hours(2)), utc("2026-11-02T15:00:00Z"));
        // Wed Nov 25 16:00 EST (21:00Z) + 4h, Thanksgiving Thu and Fri off:
        // 1h Wed, Mon 30 09:00-12:00 EST = 17:00Z.
        assert_eq!(cal.add(utc("2026-11-25T21:00:00Z"), hours(4)), utc("2026-11-30T17:00:00Z"));
        assert!(cal.is_working(utc("2026-03-09T13:00:00Z"))); // Mon 09:00 EDT
        assert!(!cal.is_working(utc("2026-03-09T21:00:00Z"))); // Mon 17:00 EDT
    }

    #[test]
    fn hours_inside_the_dst_jump_are_the_hours_the_clock_shows() {
        // 02:30-04:00 every day in Berlin: usually 1.5h.
        let cal = calendar("Europe/Berlin", &["mon-sun"], "02:30-04:00", &[]);
        let day = |d: &str| cal.business_time_between(utc(&format!("{d}T00:00:00Z")), utc(&format!("{d}T12:00:00Z")));
        assert_eq!(day("2026-03-28"), Duration::from_secs(90 * 60));
        // Sun 2026-03-29: 02:00-03:00 does not exist, so 03:00-04:00 CEST
        // (01:00Z-02:00Z): 1h.
        assert_eq!(day("2026-03-29"), hours(1));
        assert!(!cal.is_working(utc("2026-03-29T00:59:59Z")));
        assert!(cal.is_working(utc("2026-03-29T01:00:00Z")));
        // Sun 2026-10-25: from the first 02:30 CEST (00:30Z) to 04:00 CET
        // (03:00Z): 2.5h.
        assert_eq!(day("2026-10-25"), Duration::from_secs(150 * 60));
        // Sat 2026-03-28 12:00Z + 2h: Sun 29 01:00Z-02:00Z, then Mon 30 from
        // 02:30 CEST (00:30Z) for 1h: 01:30Z.
        assert_eq!(cal.add(utc("2026-03-28T12:00:00Z"), hours(2)), utc("2026-03-30T01:30:00Z"));
    }

    #[test]
    fn is_working_edges() {
        let cal = berlin(&["2026-12-25"]);
        assert!(cal.is_working(utc("2026-11-23T08:00:00Z"))); // Mon 09:00 CET
        assert!(cal.is_working(utc("2026-11-23T15:59:59Z"))); // Mon 16:59:59
        assert!(!cal.is_working(utc("2026-11-23T16:00:00Z"))); // Mon 17:00
        assert!(!cal.is_working(utc("2026-11-23T07:59:59Z"))); // Mon 08:59:59
        assert!(!cal.is_working(utc("2026-11-21T10:00:00Z"))); // Saturday
        assert!(!cal.is_working(utc("2026-12-25T10:00:00Z"))); // holiday (Friday)
    }

    #[test]
    fn zero_and_sub_second_durations() {
        let cal = berlin(&[]);
        // Zero is `start`, even outside hours.
        assert_eq!(cal.add(utc("2026-11-21T10:00:00Z"), Duration::ZERO), utc("2026-11-21T10:00:00Z"));
        assert_eq!(
            cal.add(utc("2026-11-23T15:59:59.750Z"), Duration::from_millis(500)),
            utc("2026-11-24T08:00:00.250Z")
        );
        assert_eq!(
            cal.business_time_between(utc("2026-11-23T15:59:59.750Z"), utc("2026-11-24T08:00:00.250Z")),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn between_basics() {
        let cal = berlin(&[]);
        // Fri 2026-11-20 12:00 CET to Tue 24 10:00 CET: 5h + 8h + 1h.
        assert_eq!(cal.business_time_between(utc("2026-11-20T11:00:00Z"), utc("2026-11-24T09:00:00Z")), hours(14));
        // Reversed or equal: zero.
        assert_eq!(cal.business_time_between(utc("2026-11-24T09:00:00Z"), utc("2026-11-20T11:00:00Z")), Duration::ZERO);
        assert_eq!(cal.business_time_between(utc("2026-11-24T09:00:00Z"), utc("2026-11-24T09:00:00Z")), Duration::ZERO);
        // A weekend only: zero.
        assert_eq!(cal.business_time_between(utc("2026-11-21T00:00:00Z"), utc("2026-11-22T23:00:00Z")), Duration::ZERO);
    }

    #[test]
    fn no_working_time_falls_back_to_around_the_clock() {
        // Not buildable through `new`; guarded anyway.
        let cal = BusinessCalendar { days: [false; 7], ..berlin(&[]) };
        assert_eq!(cal.add(utc("2026-11-20T17:30:00Z"), hours(48)), utc("2026-11-22T17:30:00Z"));
        assert!(!cal.is_working(utc("2026-11-23T10:00:00Z")));
        // An absurd duration ends too, saturating.
        let cal = berlin(&[]);
        assert_eq!(cal.add(utc("2026-11-20T17:30:00Z"), Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            cal.add(utc("2026-11-20T17:30:00Z"), hours(100_000)),
            utc("2026-11-20T17:30:00Z") + chrono::Duration::hours(100_000)
        );
    }

    #[test]
    fn day_lists() {
        let days = |items: &[&str]| calendar("UTC", items, "09:00-17:00", &[]).days;
        assert_eq!(days(&["mon-fri"]), [true, true, true, true, true, false, false]);
        assert_eq!(days(&["MON", "Wednesday", " fri "]), [true, false, true, false, true, false, false]);
        assert_eq!(days(&["fri-mon"]), [true, false, false, false, true, true, true]);
        assert_eq!(days(&["sun-thu"]), [true, true, true, true, false, false, true]);
        assert_eq!(days(&["sat - sun", "tue"]), [false, true, false, false, false, true, true]);
        assert_eq!(days(&["mon-sun"]), [true; 7]);
        let cal = calendar("UTC", &["mon"], "9:05-17:30", &[]);
        assert_eq!((cal.start, cal.end), (Time::constant(9, 5, 0, 0), Time::constant(17, 30, 0, 0)));
    }

    #[test]
    fn new_reports_each_problem_on_its_own_line() {
        let errs = BusinessCalendar::new(
            "Mars/Olympus",
            &strings(&["mon-fri", "funday"]),
            "09:00-08:00",
            &strings(&["2026-12-25", "2026-13-01"]),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].starts_with("policy.timezone: \"Mars/Olympus\""), "{}", errs[0]);
        assert!(errs[1].starts_with("policy.days: \"funday\""), "{}", errs[1]);
        assert!(errs[2].starts_with("policy.hours: \"09:00-08:00\" does not end after it starts"), "{}", errs[2]);
        assert!(errs[3].starts_with("policy.holidays: \"2026-13-01\""), "{}", errs[3]);
        assert!(errs.iter().all(|e| !e.contains('\n')), "{errs:#?}");
    }

    #[test]
    fn new_rejects_malformed_values() {
        let err = |tz: &str, days: &[&str], span: &str, holidays: &[&str]| {
            BusinessCalendar::new(tz, &strings(days), span, &strings(holidays)).unwrap_err()
        };
        let ok = (&["mon-fri"][..], "09:00-17:00");
        assert_eq!(err("", ok.0, ok.1, &[])[0], "policy.timezone: missing (an IANA time zone name such as \"Europe/Berlin\")");
        assert!(err("UTC", &[], ok.1, &[])[0].starts_with("policy.days: no working days"));
        for bad in ["mon-", "-fri", "mon-funday", "mo", "mon,tue"] {
            assert!(err("UTC", &[bad], ok.1, &[])[0].starts_with("policy.days:"), "{bad}");
        }
        for bad in ["09:00", "9-17", "09:00-24:00", "09:60-17:00", "09:00-17:0", "009:00-17:00", "09:00-09:00", "x"] {
            assert!(err("UTC", ok.0, bad, &[])[0].starts_with("policy.hours:"), "{bad}");
        }
        for bad in ["2026-02-29", "2026-12-25T00:00", "26-12-25", "2026/12/25", "christmas", ""] {
            assert!(err("UTC", ok.0, ok.1, &[bad])[0].starts_with("policy.holidays:"), "{bad}");
        }
        assert!(BusinessCalendar::new("UTC", &strings(ok.0), ok.1, &strings(&["2028-02-29"])).is_ok());
    }

    /// splitmix64: a tiny deterministic PRNG for property tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// An instant in 2026-2027, to the nanosecond half of the time.
        fn instant(&mut self) -> DateTime<Utc> {
            let secs = utc("2026-01-01T00:00:00Z").timestamp() + self.below(2 * 365 * 86_400) as i64;
            let nanos = if self.below(2) == 0 { 0 } else { self.below(1_000_000_000) as u32 };
            DateTime::from_timestamp(secs, nanos).unwrap()
        }

        /// Up to 200h, whole minutes half of the time.
        fn duration(&mut self) -> Duration {
            match self.below(4) {
                0 => Duration::from_secs(self.below(200 * 60 + 1) * 60),
                1 => Duration::from_secs(self.below(8 * H + 1)),
                _ => Duration::new(self.below(200 * H), self.below(1_000_000_000) as u32),
            }
        }
    }

    fn property_calendars() -> Vec<BusinessCalendar> {
        vec![
            berlin(&["2026-04-06", "2026-12-24", "2026-12-25", "2027-01-01"]),
            new_york(&["2026-11-26", "2027-07-05"]),
            calendar("Europe/Berlin", &["mon-sun"], "02:30-04:00", &[]),
            calendar("America/New_York", &["sun-thu"], "00:00-23:59", &["2026-12-25"]),
            calendar("Australia/Lord_Howe", &["wed"], "01:00-03:00", &[]),
        ]
    }

    #[test]
    fn add_and_between_agree() {
        let ns = Duration::from_nanos(1);
        let mut rng = Rng(0x5EC_3A11);
        for cal in property_calendars() {
            for _ in 0..1500 {
                let (start, d) = (rng.instant(), rng.duration());
                let due = cal.add(start, d);
                let ctx = format!("{:?} start {start} d {d:?} due {due}", cal.tz.iana_name());
                assert!(due >= start, "{ctx}");
                assert_eq!(cal.business_time_between(start, due), d, "{ctx}");
                if !d.is_zero() {
                    // The earliest such instant, and the last moment before it was worked.
                    let before = due - ns;
                    assert!(cal.business_time_between(start, before) < d, "{ctx}");
                    assert!(cal.is_working(before), "{ctx}");
                }
                // Adding in two steps is adding once.
                let d1 = Duration::from_nanos(rng.below(d.as_nanos() as u64 + 1));
                assert_eq!(cal.add(cal.add(start, d1), d - d1), due, "{ctx} d1 {d1:?}");
                // Between is additive over any split point.
                let (a, b) = (start.min(due), start.max(due) + chrono::Duration::hours(rng.below(100) as i64));
                let mid = a + (b - a) / 3;
                assert_eq!(
                    cal.business_time_between(a, mid) + cal.business_time_between(mid, b),
                    cal.business_time_between(a, b),
                    "{ctx}"
                );
            }
        }
    }

    #[test]
    fn is_working_matches_between() {
        let second = chrono::Duration::seconds(1);
        let mut rng = Rng(42);
        for cal in property_calendars() {
            for _ in 0..3000 {
                let t = DateTime::from_timestamp(rng.instant().timestamp(), 0).unwrap();
                let worked = cal.business_time_between(t, t + second) == Duration::from_secs(1);
                assert_eq!(cal.is_working(t), worked, "{:?} at {t}", cal.tz.iana_name());
            }
        }
    }
}
