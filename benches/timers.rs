//! The timer task with a large database (issue "deadlines", item 6): 100,000
//! open cases, each with its ack and first-response deadlines and their
//! reminder and escalation jobs (400,000 pending jobs, due over the next 30
//! days), in a file database in a temp dir (synchronous = FULL, as the daemon).
//!
//! - a wake-up with nothing due: `run_due(&pipeline, now)` (the `jobs_due`
//!   index lookup plus the next due time), median and p99; goal ≤ 5 ms;
//! - a wake-up with one batch (50 jobs) due: `now` moves to the due time of the
//!   50th pending job, so each sample runs 50 real jobs (reminders and
//!   escalations composed and queued, one transaction each), as the daemon
//!   does when jobs pile up. Each job commits its own transaction (its mail
//!   queued with it), so on a disk the commit fsyncs dominate; run with
//!   `TMPDIR=/dev/shm` to see the CPU work alone;
//! - start-up on that file: `Store::open` + `Pipeline::new` + the first
//!   `next_job_due`; goal under a second.
//!
//! `cargo bench --bench timers` prints `[bench] timers: ...` lines. Without
//! `--bench` (e.g. `cargo test --benches`) it runs on 2,000 cases as a smoke
//! test so it cannot rot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secmail::clock::{Clock, FakeClock};
use secmail::config::Config;
use secmail::daemon::{Pipeline, run_due};
use secmail::keys::Keys;
use secmail::store::{self, Store};

/// The goal for one wake-up of the timer with 100,000 open cases.
const WAKE_GOAL: Duration = Duration::from_millis(5);
/// The goal for start-up with 100,000 open cases.
const START_GOAL: Duration = Duration::from_secs(1);
/// Jobs the timer runs per batch (`timers::BATCH`).
const BATCH: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A well-mixed 64-bit hash (splitmix64): due times spread over the window,
/// not in case order.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn ok(d: Duration, goal: Duration) -> &'static str {
    if d <= goal { "ok" } else { "OVER GOAL" }
}

/// `n` open cases, each with a first message, its ack and first-response
/// deadlines due between `start + remind_before` and `start + 30 days`, and
/// for each deadline a `remind:{id}` job at due - remind_before and an
/// `escalate:{id}:1` job at due (as `timers::schedule` adds them), in one
/// transaction.
fn build(store: &Store, cfg: &Config, n: u64, start: DateTime<Utc>) {
    let remind_before = chrono::Duration::from_std(cfg.policy.remind_before).unwrap();
    let first = remind_before + chrono::Duration::minutes(1);
    let span_ms = (chrono::Duration::days(30) - first).num_milliseconds() as u64;
    store
        .call_sync(|c| {
            let tx = c.transaction()?;
            for i in 0..n {
                let opened = start - chrono::Duration::hours(1);
                let reporter = format!("reporter{}@example.org", i % 5000);
                let subject = format!("Heap overflow in parser variant {i}");
                let case = store::insert_case(&tx, &reporter, &subject, false, opened)?;
                let mid = format!("<bench-timers-{i}@example.org>");
                let raw = format!(
                    "From: {reporter}\r\nTo: security@localhost\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n\r\nSteps to reproduce: run the parser on the attached file.\r\n"
                );
                store::insert_message(
                    &tx,
                    &store::NewMessage {
                        case_id: Some(case),
                        direction: "in",
                        message_id: &mid,
                        dedupe_key: &mid,
                        from: Some(&reporter),
                        date: Some(opened),
                        subject: Some(&subject),
                        encrypted: false,
                        signature: "none",
                        flags: "",
                        raw: raw.as_bytes(),
                    },
                    opened,
                )?;
                store::add_event(&tx, case, opened, "opened", None, "bench")?;
                for (k, kind) in ["ack", "first-response"].into_iter().enumerate() {
                    let due = start + first + chrono::Duration::milliseconds((mix(2 * i + k as u64) % span_ms) as i64);
                    let id = store::add_deadline_id(&tx, case, kind, due)?;
                    store::add_job(&tx, due - remind_before, "remind", case, Some(id), &format!("remind:{id}"))?;
                    store::add_job(&tx, due, "escalate", case, Some(id), &format!("escalate:{id}:1"))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

/// Jobs due up to `t` count as run before the measurement (a daemon that has
/// been running): so at `t` nothing is due and the jobs after it are a mix of
/// reminders and escalations.
fn mark_done_until(store: &Store, t: DateTime<Utc>) -> usize {
    store
        .call_sync(|c| {
            Ok(c.execute(
                "UPDATE jobs SET done_at = ?1, outcome = 'done before the bench' WHERE done_at IS NULL AND due_at <= ?1",
                [store::ts(t)],
            )?)
        })
        .unwrap()
}

fn pending(store: &Store) -> i64 {
    store.call_sync(|c| Ok(c.query_row("SELECT count(*) FROM jobs WHERE done_at IS NULL", [], |r| r.get(0))?)).unwrap()
}

/// The due time of the `BATCH`th pending job (set-up, not timed).
fn batch_due(store: &Store) -> DateTime<Utc> {
    store
        .call_sync(|c| {
            let s: String = c.query_row(
                "SELECT due_at FROM jobs WHERE done_at IS NULL ORDER BY due_at, id LIMIT 1 OFFSET ?1",
                [BATCH as i64 - 1],
                |r| r.get(0),
            )?;
            store::parse_ts(&s)
        })
        .unwrap()
}

fn pipeline(cfg: &Arc<Config>, store: &Store, clock: &Arc<FakeClock>) -> Arc<Pipeline> {
    Arc::new(Pipeline::new(cfg.clone(), Arc::new(Keys::default()), store.clone(), clock.clone(), Arc::new(tokio::sync::Notify::new())).unwrap())
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, idle_calls, due_samples, due_budget, starts) =
        if bench { (100_000u64, 200, 100, Duration::from_secs(30), 10) } else { (2_000, 20, 3, Duration::from_secs(5), 2) };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let d = tempfile::tempdir().unwrap();
    let cfg = Arc::new(Config::builtin(d.path()).unwrap());
    let db = cfg.store.path.clone();
    let start: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();

    // The database, once.
    let t = Instant::now();
    {
        let store = Store::open(&db).unwrap();
        build(&store, &cfg, n, start);
    }
    let size = std::fs::metadata(&db).unwrap().len();
    println!(
        "[bench] timers: built {n} open cases, {} deadlines, {} jobs in {:.2?} ({:.1} MB at {})",
        2 * n,
        4 * n,
        t.elapsed(),
        size as f64 / 1e6,
        d.path().display()
    );

    // (a) The timer's work per wake-up.
    let store = Store::open(&db).unwrap();
    let now0 = start + chrono::Duration::days(1);
    let before = mark_done_until(&store, now0);
    let clock = Arc::new(FakeClock::new(now0));
    let p = pipeline(&cfg, &store, &clock);
    let open_jobs = pending(&store);

    // Nothing due.
    let mut lat = Vec::with_capacity(idle_calls);
    for _ in 0..idle_calls {
        let t = Instant::now();
        let (ran, next) = rt.block_on(run_due(&p, now0)).unwrap();
        lat.push(t.elapsed());
        assert_eq!(ran, 0);
        assert!(next.unwrap() > now0);
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "[bench] timers: wake-up, nothing due, {n} open cases ({open_jobs} pending jobs, {before} done): {idle_calls} calls p50 {p50:.2?} p99 {p99:.2?} max {:.2?}; goal <= {WAKE_GOAL:?}: {}",
        lat[lat.len() - 1],
        ok(p99, WAKE_GOAL),
    );

    // One batch due, each sample at the due time of the next 50th pending job.
    let mut lat = Vec::with_capacity(due_samples);
    let (mut ran_total, mut reminders, mut escalations) = (0, 0i64, 0i64);
    let outbox0: i64 = store.call_sync(|c| Ok(c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?)).unwrap();
    let began = Instant::now();
    let mut first_now = None;
    let mut last_now = now0;
    while lat.len() < due_samples && (lat.len() < 5 || began.elapsed() < due_budget) {
        let now = batch_due(&store);
        first_now.get_or_insert(now);
        clock.advance((now - clock.now()).to_std().unwrap());
        let (r, e): (i64, i64) = store
            .call_sync(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FILTER (WHERE kind = 'remind'), count(*) FILTER (WHERE kind = 'escalate')
                     FROM jobs WHERE done_at IS NULL AND due_at <= ?1",
                    [store::ts(now)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .unwrap();
        let t = Instant::now();
        let (ran, next) = rt.block_on(run_due(&p, now)).unwrap();
        lat.push(t.elapsed());
        assert!(ran >= BATCH, "ran {ran}");
        assert!(next.unwrap() > now);
        ran_total += ran;
        reminders += r;
        escalations += e;
        last_now = now;
    }
    let outbox: i64 = store.call_sync(|c| Ok(c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?)).unwrap();
    lat.sort();
    let samples = lat.len();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "[bench] timers: wake-up, one batch due ({:.1} jobs avg: {reminders} reminders, {escalations} escalations; {} mails queued), {n} open cases: {samples} wake-ups p50 {p50:.2?} p99 {p99:.2?} max {:.2?} = {:.2?}/job (p50); simulated {:.1} h of jobs",
        ran_total as f64 / samples as f64,
        outbox - outbox0,
        lat[samples - 1],
        p50 / BATCH as u32,
        (last_now - first_now.unwrap()).num_minutes() as f64 / 60.0,
    );
    // And the wake-up after them (nothing due, the re-escalations added).
    let mut lat = Vec::with_capacity(idle_calls);
    for _ in 0..idle_calls {
        let t = Instant::now();
        let (ran, _) = rt.block_on(run_due(&p, last_now)).unwrap();
        lat.push(t.elapsed());
        assert_eq!(ran, 0);
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "[bench] timers: wake-up, nothing due, after the batches: {idle_calls} calls p50 {p50:.2?} p99 {p99:.2?} max {:.2?}; goal <= {WAKE_GOAL:?}: {}",
        lat[lat.len() - 1],
        ok(p99, WAKE_GOAL),
    );
    drop(p);
    drop(store);

    // (b) Start-up on the existing file (closed cleanly: no WAL to replay).
    let mut lat = Vec::with_capacity(starts);
    for _ in 0..starts {
        let t = Instant::now();
        let store = Store::open(&db).unwrap();
        let p = pipeline(&cfg, &store, &clock);
        let next = store.call_sync(|c| store::next_job_due(c)).unwrap();
        lat.push(t.elapsed());
        assert!(next.is_some());
        drop(p);
        drop(store);
    }
    lat.sort();
    let p50 = percentile(&lat, 0.5);
    println!(
        "[bench] timers: start-up (Store::open + Pipeline::new + first next_job_due), {n} open cases: {starts} runs p50 {p50:.2?} max {:.2?}; goal < {START_GOAL:?}: {}",
        lat[lat.len() - 1],
        ok(p50, START_GOAL),
    );
}
