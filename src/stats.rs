//! Numbers a project can publish to show reporters that security@ is read
//! (`secmail stats`): per month of opening, how many reports came in, the
//! median and 90th percentile of the time to the ack, to the first response and
//! between updates, and the share of cases whose every promise was kept.
//! Nothing in them identifies a case. Pure: rows in, figures out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the statistics need of one case.
#[derive(Debug, Clone)]
pub struct CaseFacts {
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    /// Every answer relayed to the reporter, oldest first.
    pub responses: Vec<DateTime<Utc>>,
    /// Each deadline: (due, met); `stopped` says whether the case is in a
    /// state where no clock runs (closed, disclosed, ...).
    pub deadlines: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    pub stopped: bool,
}

/// Median and 90th percentile of some durations, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median_s: Option<i64>,
    pub p90_s: Option<i64>,
}

/// One month's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Month {
    /// `2026-12`.
    pub month: String,
    pub reports: usize,
    pub time_to_ack: Spread,
    pub time_to_first_response: Spread,
    pub time_between_updates: Spread,
    /// Cases whose every deadline was met in time (or is still pending), in percent.
    pub promises_kept_pct: Option<f64>,
}

/// Nearest-rank percentile (`q` in 0..=1) of sorted values.
fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn spread(mut v: Vec<i64>) -> Spread {
    v.sort_unstable();
    Spread { count: v.len(), median_s: percentile(&v, 0.5), p90_s: percentile(&v, 0.9) }
}

/// Whether every promise of a case was kept as of `now`: no deadline met late,
/// none lapsed while its clock ran.
pub fn kept(c: &CaseFacts, now: DateTime<Utc>) -> bool {
    c.deadlines.iter().all(|(due, met)| match met {
        Some(m) => m <= due,
        None => c.stopped || *due >= now,
    })
}

/// The figures per month of opening (cases opened at or after `since`).
pub fn monthly(cases: &[CaseFacts], since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Vec<Month> {
    let mut by_month: BTreeMap<String, Vec<&CaseFacts>> = BTreeMap::new();
    for c in cases.iter().filter(|c| since.is_none_or(|s| c.opened_at >= s)) {
        by_month.entry(c.opened_at.format("%Y-%m").to_string()).or_default().push(c);
    }
    by_month
        .into_iter()
        .map(|(month, cs)| {
            let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_seconds().max(0);
            let ack = cs.iter().filter_map(|c| c.acknowledged_at.map(|a| secs(c.opened_at, a))).collect();
            let first = cs.iter().filter_map(|c| c.first_response_at.map(|f| secs(c.opened_at, f))).collect();
            let updates = cs.iter().flat_map(|c| c.responses.windows(2).map(|w| secs(w[0], w[1])).collect::<Vec<_>>()).collect();
            let with_deadlines: Vec<&&CaseFacts> = cs.iter().filter(|c| !c.deadlines.is_empty()).collect();
            let promises_kept_pct = (!with_deadlines.is_empty())
                .then(|| 100.0 * with_deadlines.iter().filter(|c| kept(c, now)).count() as f64 / with_deadlines.len() as f64);
            Month {
                month,
                reports: cs.len(),
                time_to_ack: spread(ack),
                time_to_first_response: spread(first),
                time_between_updates: spread(updates),
                promises_kept_pct,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn case(opened: &str, ack_s: Option<i64>, first_h: Option<i64>, responses: &[&str], deadlines: &[(&str, Option<&str>)]) -> CaseFacts {
        let o = t(opened);
        CaseFacts {
            opened_at: o,
            acknowledged_at: ack_s.map(|s| o + chrono::Duration::seconds(s)),
            first_response_at: first_h.map(|h| o + chrono::Duration::hours(h)),
            responses: responses.iter().map(|r| t(r)).collect(),
            deadlines: deadlines.iter().map(|(d, m)| (t(d), m.map(t))).collect(),
            stopped: false,
        }
    }

    #[test]
    fn monthly_figures_by_hand() {
        let now = t("2026-12-20T00:00:00Z");
        let cases = vec![
            // Kept: acked in 1 s, first response in 10 h (due 48 h).
            case("2026-11-02T10:00:00Z", Some(1), Some(10), &["2026-11-02T20:00:00Z", "2026-11-05T20:00:00Z"], &[("2026-11-04T10:00:00Z", Some("2026-11-02T20:00:00Z"))]),
            // Met late: first response after 50 h.
            case("2026-11-10T10:00:00Z", Some(3), Some(50), &["2026-11-12T12:00:00Z"], &[("2026-11-12T10:00:00Z", Some("2026-11-12T12:00:00Z"))]),
            // Lapsed and never answered.
            case("2026-11-20T10:00:00Z", Some(2), None, &[], &[("2026-11-22T10:00:00Z", None)]),
            // December: pending, not due yet.
            case("2026-12-19T10:00:00Z", Some(1), None, &[], &[("2026-12-21T10:00:00Z", None)]),
        ];
        let m = monthly(&cases, None, now);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].month, "2026-11");
        assert_eq!(m[0].reports, 3);
        assert_eq!(m[0].time_to_ack, Spread { count: 3, median_s: Some(2), p90_s: Some(3) });
        assert_eq!(m[0].time_to_first_response, Spread { count: 2, median_s: Some(10 * 3600), p90_s: Some(50 * 3600) });
        assert_eq!(m[0].time_between_updates, Spread { count: 1, median_s: Some(3 * 86_400), p90_s: Some(3 * 86_400) });
        assert!((m[0].promises_kept_pct.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(m[1].promises_kept_pct, Some(100.0));
        let since = monthly(&cases, Some(t("2026-12-01T00:00:00Z")), now);
        assert_eq!(since.len(), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.9), Some(7));
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.5), Some(5));
        assert_eq!(percentile(&v, 0.9), Some(9));
    }
}
