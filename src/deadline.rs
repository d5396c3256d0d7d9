//! Deadline arithmetic (pure): when each promise of the disclosure policy falls
//! due, and whether it is pending, met or lapsed at a given `now` (SPEC §7).
//! Only the 24x7 calendar exists so far; a business calendar slots in here by
//! changing [`add`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Calendar, PolicyConfig};

/// The kinds of promise, as named in the JSON (`deadlines[].kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The ack to the reporter (sent at once; this bounds outages).
    Ack,
    /// The first response from a human on the team.
    FirstResponse,
    /// The next update after each team response.
    Update,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ack => "ack",
            Kind::FirstResponse => "first-response",
            Kind::Update => "update",
        }
    }
}

/// A deadline's state at some `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Met,
    Lapsed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Met => "met",
            State::Lapsed => "lapsed",
        }
    }
}

/// `start` plus `d` on the policy's calendar.
pub fn add(calendar: &Calendar, start: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    match calendar {
        Calendar::AllDay => start + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX),
        Calendar::Business(b) => b.add(start, d),
    }
}

/// How much of the policy's time has passed from `a` to `b` (for "lapsed by").
pub fn elapsed(calendar: &Calendar, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    match calendar {
        Calendar::AllDay => (b - a).to_std().unwrap_or(Duration::ZERO),
        Calendar::Business(c) => c.business_time_between(a, b),
    }
}

/// The deadlines a new case starts with.
pub fn on_open(policy: &PolicyConfig, opened: DateTime<Utc>) -> Vec<(Kind, DateTime<Utc>)> {
    vec![
        (Kind::Ack, add(&policy.calendar, opened, policy.ack_within)),
        (Kind::FirstResponse, add(&policy.calendar, opened, policy.first_response_within)),
    ]
}

/// The update deadline a team response starts (SPEC §7: an update at least
/// every `update_every` after each team response).
pub fn on_response(policy: &PolicyConfig, at: DateTime<Utc>) -> (Kind, DateTime<Utc>) {
    (Kind::Update, add(&policy.calendar, at, policy.update_every))
}

/// A deadline's state: met once met (even late), lapsed once `now` is past due.
pub fn state(due: DateTime<Utc>, met: Option<DateTime<Utc>>, now: DateTime<Utc>) -> State {
    match met {
        Some(_) => State::Met,
        None if now > due => State::Lapsed,
        None => State::Pending,
    }
}

/// States in which no deadline runs (SPEC §7).
pub fn stops_deadlines(case_state: &str) -> bool {
    matches!(case_state, "closed" | "disclosed" | "not-security" | "duplicate")
}

/// Human form of a duration for mail text: "5 days", "48 hours", "90 seconds"
/// (the largest unit that divides it).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0 => (0, "second"),
        _ if s.is_multiple_of(86_400) => (s / 86_400, "day"),
        _ if s.is_multiple_of(3_600) => (s / 3_600, "hour"),
        _ if s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A lapse for people: "3 hours", "2 days 4 hours", "45 seconds" (the two
/// largest units, rounded down).
pub fn human_approx(d: Duration) -> String {
    let s = d.as_secs();
    let units = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")];
    let mut parts = Vec::new();
    let mut rest = s;
    for (size, name) in units {
        if rest >= size && parts.len() < 2 {
            let n = rest / size;
            rest -= n * size;
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() { "0 seconds".into() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};

    fn policy() -> PolicyConfig {
        PolicyConfig {
            ack_within: Duration::from_secs(24 * 3600),
            first_response_within: Duration::from_secs(48 * 3600),
            update_every: Duration::from_secs(5 * 24 * 3600),
            remind_before: Duration::from_secs(6 * 3600),
            re_escalate_every: Duration::from_secs(24 * 3600),
            escalate_to: vec![],
            calendar: Calendar::AllDay,
            close_if_silent: Duration::from_secs(30 * 24 * 3600),
        }
    }

    #[test]
    fn lapses_in_words() {
        assert_eq!(human_approx(Duration::from_secs(2 * 86_400 + 4 * 3_600 + 59)), "2 days 4 hours");
        assert_eq!(human_approx(Duration::from_secs(3 * 3_600)), "3 hours");
        assert_eq!(human_approx(Duration::from_secs(45)), "45 seconds");
        assert_eq!(human_approx(Duration::from_secs(0)), "0 seconds");
        assert_eq!(human_approx(Duration::from_secs(86_400 + 30)), "1 day");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(human(Duration::from_secs(48 * 3_600)), "2 days");
        assert_eq!(human(Duration::from_secs(6 * 3_600)), "6 hours");
        assert_eq!(human(Duration::from_secs(60)), "1 minute");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn first_response_lapses_after_48h() {
        let clock = FakeClock::new("2026-11-25T10:00:00Z".parse().unwrap());
        let opened = clock.now();
        let d = on_open(&policy(), opened);
        assert_eq!(d[1].0, Kind::FirstResponse);
        assert_eq!(d[1].1, "2026-11-27T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
        clock.advance(Duration::from_secs(48 * 3600));
        assert_eq!(state(d[1].1, None, clock.now()), State::Pending);
        clock.advance(Duration::from_secs(1));
        assert_eq!(state(d[1].1, None, clock.now()), State::Lapsed);
        assert_eq!(state(d[1].1, Some(clock.now()), clock.now()), State::Met);
    }
}
