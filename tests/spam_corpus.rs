//! The spam filter measured on whole real messages (issue 15, item 5):
//! `fixtures/spam/corpus/{tune,heldout}/{spam,reports}/*.eml`, sources in
//! `fixtures/spam/corpus/SOURCES.md`.
//!
//! Each message goes through the path the daemon takes for new mail
//! ([`secmail::daemon::see`]: prescan, parse, decrypt; then
//! [`secmail::daemon::spam_input`], the filter built from the default config,
//! and [`secmail::case::decide`]), and ends one of three ways:
//! - **held**: the filter quarantines it;
//! - **automatic**: RFC 3834 and bulk mail (`Parsed::automatic`), kept
//!   without a case and never answered;
//! - **case**: a new case, an ack, a team notice.
//!
//! # Tune and held-out
//! Rules may be written from what `tune/` holds. **No rule is written from
//! `heldout/`: only this test reads those files.** Nothing is tuned here: the
//! test measures. The bar applies to the held-out part: no real report held,
//! and at least [`SPAM_HELD_FLOOR`] of the spam held. Both parts' figures and
//! misses are printed (`cargo test --test spam_corpus -- --nocapture`).
//!
//! A part that is missing or empty is reported, not failed: the corpus is
//! gathered separately and grows over time.

use std::path::{Path, PathBuf};

use secmail::case::{Action, Context, TeamStatus, decide};
use secmail::config::Config;
use secmail::daemon::{see, spam_input};
use secmail::keys::Keys;
use secmail::spam::{SpamFilter, Verdict};

/// Share of held-out spam that must be held (issue 15: at least 85%).
const SPAM_HELD_FLOOR: f64 = 0.85;

/// How many of the highest-scoring reports each part prints: the margin
/// below the threshold matters as much as the count above it.
const NEAR_MISSES: usize = 10;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/spam/corpus")
}

/// The `.eml` files of one directory, sorted (none when it is missing).
fn messages(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Where one message ends.
enum End {
    Held(Verdict),
    Automatic(String),
    Case(Verdict),
}

struct Judge {
    cfg: Config,
    filter: SpamFilter,
    keys: Keys,
    _dir: tempfile::TempDir,
}

impl Judge {
    fn new() -> Judge {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::builtin(dir.path()).unwrap();
        let filter = SpamFilter::new(&cfg.spam).unwrap().for_mailbox(&cfg.mailbox);
        Judge { cfg, filter, keys: Keys::default(), _dir: dir }
    }

    fn end(&self, raw: &[u8]) -> (String, End) {
        let now = "2026-12-01T10:00:00Z".parse().unwrap();
        let seen = see(raw, &self.keys, &self.cfg.limits, now);
        let msg = &seen.msg;
        let verdict = self.filter.judge(&spam_input(msg, &self.cfg.mailbox));
        // What the rules decide for it as new mail (no case knows it).
        let ctx = Context {
            by_reference: None,
            by_tag: None,
            own_message: false,
            team: TeamStatus::NotTeam,
            alert_to: Vec::new(),
            team_addresses: Vec::new(),
            auto_replies_last_hour: 0,
            auto_reply_limit: u32::MAX,
            spam: verdict.spam,
            forged_from: msg.from.as_deref().is_some_and(|f| self.cfg.mailbox.is_ours(f)),
            unauthenticated: verdict.unauthenticated.clone(),
            reply_refused: None,
        };
        let actions = decide(msg, &ctx);
        let end = match actions.first() {
            Some(Action::Quarantine) => End::Held(verdict),
            Some(Action::Ignore { reason }) => End::Automatic(reason.clone()),
            _ => End::Case(verdict),
        };
        (msg.subject.chars().take(70).collect(), end)
    }
}

fn hits(v: &Verdict) -> String {
    v.matched.iter().map(|h| format!("{}{:+}", h.rule, h.score)).collect::<Vec<_>>().join(" ")
}

/// The figures of one part (`tune` or `heldout`).
struct Part {
    spam: usize,
    spam_held: usize,
    spam_automatic: usize,
    reports: usize,
    reports_held: Vec<String>,
    reports_automatic: Vec<String>,
}

fn measure(judge: &Judge, part: &str) -> Part {
    let spam = messages(&corpus().join(part).join("spam"));
    let reports = messages(&corpus().join(part).join("reports"));
    let mut p = Part { spam: spam.len(), spam_held: 0, spam_automatic: 0, reports: reports.len(), reports_held: Vec::new(), reports_automatic: Vec::new() };
    let mut misses = Vec::new();
    for (name, raw) in &spam {
        match judge.end(raw) {
            (_, End::Held(_)) => p.spam_held += 1,
            (_, End::Automatic(_)) => p.spam_automatic += 1,
            (subject, End::Case(v)) => misses.push(format!("  {:5.1}  {name}  {subject:?}  [{}]", v.score, hits(&v))),
        }
    }
    let mut closest: Vec<(f64, String)> = Vec::new();
    for (name, raw) in &reports {
        match judge.end(raw) {
            (subject, End::Held(v)) => p.reports_held.push(format!("  {:5.1}  {name}  {subject:?}  [{}]", v.score, hits(&v))),
            (subject, End::Automatic(why)) => p.reports_automatic.push(format!("  {name}  {subject:?}  ({why})")),
            (subject, End::Case(v)) => closest.push((v.score, format!("  {:5.1}  {name}  {subject:?}  [{}]", v.score, hits(&v)))),
        }
    }
    closest.sort_by(|a, b| b.0.total_cmp(&a.0));

    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!("== {part} ==");
    println!(
        "spam: {} messages, {} held ({:.1}%), {} kept as automatic/bulk without a case ({:.1}%), {} would open a case ({:.1}%)",
        p.spam,
        p.spam_held,
        pct(p.spam_held, p.spam),
        p.spam_automatic,
        pct(p.spam_automatic, p.spam),
        misses.len(),
        pct(misses.len(), p.spam)
    );
    for m in &misses {
        println!("{m}");
    }
    println!(
        "reports: {} messages, {} held as spam, {} kept as automatic/bulk without a case",
        p.reports,
        p.reports_held.len(),
        p.reports_automatic.len()
    );
    for r in p.reports_held.iter().chain(&p.reports_automatic) {
        println!("{r}");
    }
    // SECMAIL_CORPUS_ALL=1 prints every report, not only the closest.
    let shown = if std::env::var_os("SECMAIL_CORPUS_ALL").is_some() { closest.len() } else { NEAR_MISSES };
    println!("reports closest to the threshold:");
    for (_, c) in closest.iter().take(shown) {
        println!("{c}");
    }
    if p.spam == 0 || p.reports == 0 {
        println!("NOTE: {part}: {} spam and {} report messages found under {}; the bar cannot be judged on an empty set", p.spam, p.reports, corpus().join(part).display());
    }
    p
}

/// Tune figures are printed, held-out figures are held to the bar.
#[test]
fn held_out_corpus_meets_the_bar() {
    let judge = Judge::new();
    measure(&judge, "tune");
    let h = measure(&judge, "heldout");
    assert!(h.reports_held.is_empty(), "{} held-out real reports would be quarantined:\n{}", h.reports_held.len(), h.reports_held.join("\n"));
    if h.spam > 0 {
        let held = h.spam_held as f64 / h.spam as f64;
        assert!(held >= SPAM_HELD_FLOOR, "held-out spam held: {:.1}%, below the bar of {:.0}%", 100.0 * held, 100.0 * SPAM_HELD_FLOOR);
    }
}

/// The real-world reports the end-to-end tests send (`fixtures/world`: many
/// scripts and legacy charsets, terse bodies) are never held either.
#[test]
fn world_reports_are_never_held() {
    let judge = Judge::new();
    let reports = messages(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/world"));
    assert!(reports.len() > 10, "fixtures/world found");
    let held: Vec<String> = reports
        .iter()
        .filter_map(|(name, raw)| match judge.end(raw) {
            (subject, End::Held(v)) => Some(format!("  {:5.1}  {name}  {subject:?}  [{}]", v.score, hits(&v))),
            _ => None,
        })
        .collect();
    assert!(held.is_empty(), "world reports held as spam:\n{}", held.join("\n"));
}
