//! Flood drain through the real servers: N reports from N senders are
//! submitted to Postfix at once; secmail (IMAP IDLE in, SMTP submission out)
//! must open N cases and get N acks accepted by Postfix. Prints the time from
//! the first submission until every case is acknowledged.
//!
//! `cargo bench --bench imap_flood` (N = 500; needs root: it starts the test
//! harness). Under `cargo test` it runs N = 10 as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/world/mod.rs"]
mod world;

use std::time::{Duration, Instant};

use common::{Daemon, smtp_send, unique_addr};
use world::*;

#[tokio::main]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 500 } else { 10 };
    let w = world_with("flood", Mode::IdleStarttls, "[limits]\nauto_replies_per_sender_per_hour = 1000000\n");
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    let start = Instant::now();
    let mut sends = Vec::new();
    for i in 0..n {
        let security = w.security.clone();
        sends.push(tokio::spawn(async move {
            let r = unique_addr(&format!("fr{i}"));
            smtp_send(&r, &[&security], &report(&r, &security, &format!("Flood {i}: XSS"), &format!("flood{i}.{r}"), "", "x")).await;
        }));
        if sends.len() >= 16 {
            for s in sends.drain(..) {
                s.await.unwrap();
            }
        }
    }
    for s in sends {
        s.await.unwrap();
    }
    let submitted = start.elapsed();
    let timeout = Duration::from_secs(if bench { 600 } else { 60 });
    common::wait_for("every case acknowledged", timeout, || async {
        let c = cases_json(&w.config, true);
        (c.len() == n && c.iter().all(|c| c["acknowledged_at"].is_string())).then_some(())
    })
    .await;
    let total = start.elapsed();
    d.stop();
    // Where the time went: the daemon's own timestamps.
    let log = d.log();
    for what in ["message processed", "mail sent"] {
        let ts: Vec<&str> = log.lines().filter(|l| l.contains(what)).filter_map(|l| l.split_whitespace().next()).collect();
        if let (Some(a), Some(b)) = (ts.first(), ts.last()) {
            println!("[bench]   {what}: {} lines, first {a}, last {b}", ts.len());
        }
    }
    println!(
        "[bench] imap flood: {n} reports submitted in {submitted:.2?}; all {n} cases acknowledged after {total:.2?} = {:.0} reports/s",
        n as f64 / total.as_secs_f64()
    );
}
