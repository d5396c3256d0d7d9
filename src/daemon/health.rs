//! The health task: every [`HEARTBEAT`] the daemon writes what it knows of
//! itself into the database (`meta` key [`HEALTH_META`]): that it runs, what
//! the mail source is doing and since when, and when mail last flowed. `secmail
//! status` reads it from another process, so monitoring learns the truth while
//! the daemon runs, and learns that it does not run when the heartbeat is old.
//!
//! It also raises the alarm when the mailbox cannot be read for longer than
//! `health.source_down_after`: one alert to the coordinator and the backup
//! (sealed to their keys) per episode, and a note when it ends; each also runs
//! `health.alert_command` when one is configured.
//!
//! Side effects: the store (one small write per heartbeat; alert mail queued in
//! the outbox), `health.alert_command`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::intake::Pipeline;
use crate::clock::SharedClock;
use crate::compose;
use crate::source::{Progress, SourceState};
use crate::store::{self, Store};

/// `meta` key of an open "the mailbox cannot be read" episode (its start).
const SOURCE_ALERT_META: &str = "alert:source-down";

/// How often the daemon records its health.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// `meta` key of the record.
pub const HEALTH_META: &str = "health";

/// What the daemon records (JSON in `meta`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// When this was written.
    pub at: DateTime<Utc>,
    /// When the daemon started.
    pub started_at: DateTime<Utc>,
    pub pid: u32,
    /// `idle`, `polling`, `down`, `config-error`, `starting`.
    pub source_state: String,
    pub source_detail: String,
    /// Since when the source is in this state.
    pub source_since: DateTime<Utc>,
    /// When the source last made progress (a cycle, a message, a connection attempt).
    pub source_progress_at: DateTime<Utc>,
    /// Written by a clean stop: the daemon does not run any more.
    #[serde(default)]
    pub stopped: bool,
}

/// Write the health record every [`HEARTBEAT`] until shutdown, and raise or
/// end the source alert.
pub async fn health_loop(pipeline: Arc<Pipeline>, clock: SharedClock, progress: Progress, shutdown: CancellationToken) {
    let store: Store = pipeline.store().clone();
    let started_at = clock.now();
    loop {
        let stopped = shutdown.is_cancelled();
        let now = clock.now();
        let (state, for_how_long) = progress.state();
        let h = Health {
            stopped,
            at: now,
            started_at,
            pid: std::process::id(),
            source_state: state.word().into(),
            source_detail: state.detail(),
            source_since: now - chrono::Duration::from_std(for_how_long).unwrap_or_default(),
            source_progress_at: now - chrono::Duration::from_std(progress.age()).unwrap_or_default(),
        };
        if let Ok(json) = serde_json::to_string(&h)
            && let Err(e) = store.call(move |c| store::meta_set(c, HEALTH_META, &json)).await
        {
            tracing::debug!("health record not written: {e:#}");
        }
        if stopped {
            return;
        }
        let p = pipeline.clone();
        match store.call(move |c| super::canary::tick(&p, c, now)).await {
            Ok(alert) => {
                pipeline.wake_outbox();
                if let Some((kind, text)) = alert {
                    run_alert_command(&pipeline.cfg.health.alert_command, kind, &text);
                }
            }
            Err(e) => tracing::warn!("health: the canary could not be sent: {e:#}"),
        }
        let p = pipeline.clone();
        match store.call(move |c| other_alerts(&p, c, now)).await {
            Ok(Some(text)) => {
                pipeline.wake_outbox();
                run_alert_command(&pipeline.cfg.health.alert_command, "alert", &text);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("health: an alert could not be recorded: {e:#}"),
        }
        let p = pipeline.clone();
        let st = state.clone();
        let since = h.source_since;
        match store.call(move |c| source_alert(&p, c, &st, since, now)).await {
            Ok(Some((kind, text))) => {
                pipeline.wake_outbox();
                run_alert_command(&pipeline.cfg.health.alert_command, kind, &text);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("health: the alert could not be recorded: {e:#}"),
        }
        // Often enough that an outage of `source_down_after` is seen in time.
        let every = HEARTBEAT.min(pipeline.cfg.health.source_down_after / 2).max(Duration::from_secs(1));
        tokio::select! {
            // One last record, saying so.
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Raise the source alert once an outage lasts `source_down_after`, and end
/// it (with a note) when the source works again: `Some((kind, text))` when
/// mail was queued.
fn source_alert(p: &Pipeline, c: &mut rusqlite::Connection, state: &SourceState, since: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<Option<(&'static str, String)>> {
    let cfg = &*p.cfg;
    let open = store::meta_get(c, SOURCE_ALERT_META)?.filter(|s| !s.is_empty());
    let after = chrono::Duration::from_std(cfg.health.source_down_after).unwrap_or(chrono::Duration::MAX);
    let (kind, subject, text) = match (state, &open) {
        (SourceState::Down(why), None) if now - since >= after => (
            "alert",
            format!("secmail ALERT: {} cannot be read", cfg.mailbox.address),
            format!(
                "secmail cannot read the mailbox {addr} since {since} ({for_}): {why}\n\n\
                 Reports sent to {addr} are not being answered. Mail waits on the server;\n\
                 nothing is lost. Check the IMAP server and secmail's log (journalctl -u secmail),\n\
                 or run: secmail status\n\n\
                 You will get one more mail when it can be read again.\n",
                addr = cfg.mailbox.address,
                since = since.format("%Y-%m-%d %H:%M:%S UTC"),
                for_ = crate::deadline::human_approx((now - since).to_std().unwrap_or_default()),
            ),
        ),
        (SourceState::Idle | SourceState::Polling(_), Some(started)) => {
            let down_for = store::parse_ts(started).map(|s| crate::deadline::human_approx((now - s).to_std().unwrap_or_default())).unwrap_or_default();
            (
                "recovered",
                format!("secmail: {} can be read again", cfg.mailbox.address),
                format!("secmail reads the mailbox {} again, after {down_for}. Mail that waited is being processed now.\n", cfg.mailbox.address),
            )
        }
        _ => return Ok(None),
    };
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    store::meta_set(&tx, SOURCE_ALERT_META, if kind == "alert" { store::ts(since) } else { String::new() }.as_str())?;
    alert_mail(p, &tx, &format!("{kind}:source:{}", store::ts(since)), &subject, &text, now)?;
    tx.commit()?;
    tracing::info!("health: {subject}");
    Ok(Some((kind, text)))
}

/// Queue an alert to the coordinator and the backup (`policy.escalate_to`),
/// each sealed to their key when they have one; `decision` makes it once.
pub(crate) fn alert_mail(p: &Pipeline, c: &rusqlite::Connection, decision: &str, subject: &str, text: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let cfg = &*p.cfg;
    p.queue_to_members(c, None, &super::timers::escalate_to(cfg), decision, "alert", now, |to, seal| {
        compose::alert(cfg, to, subject, text, seal, compose::new_message_id(&cfg.mailbox.address), now)
    })
}

/// Keys that expire within 30 days, or have expired, and mail the SMTP server
/// refused for good: one alert each (a key once per state, refused mail once
/// per mail). `Some(text)` when mail was queued.
fn other_alerts(p: &Pipeline, c: &mut rusqlite::Connection, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
    let mut keys: Vec<(String, String, Option<DateTime<Utc>>)> = Vec::new();
    if let Some(t) = &p.keys.team {
        for i in t.info(now) {
            keys.push((format!("the team key {}", i.fingerprint), i.fingerprint.clone(), i.expires));
        }
    }
    for (addr, cert) in &p.keys.members {
        let fpr = cert.fingerprint().to_hex();
        keys.push((format!("{addr}'s key {fpr}"), fpr, crate::crypto::cert_expiry(cert, now)));
    }
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut said = Vec::new();
    for (who, fpr, expires) in keys {
        let Some(e) = expires else { continue };
        let state = if e <= now {
            "expired"
        } else if e - now < chrono::Duration::days(30) {
            "expiring"
        } else {
            continue;
        };
        let decision = format!("alert:key:{fpr}:{state}");
        if store::meta_get(&tx, &decision)?.is_some() {
            continue;
        }
        store::meta_set(&tx, &decision, &store::ts(now))?;
        let text = match state {
            "expired" => format!("{who} expired on {}. Mail that needs it is degraded (metadata only, or no signature). Renew it (gpg --quick-set-expire) and reload secmail.\n", e.format("%Y-%m-%d")),
            _ => format!("{who} expires on {}. Renew it before then (gpg --quick-set-expire), publish it, and reload secmail.\n", e.format("%Y-%m-%d")),
        };
        alert_mail(p, &tx, &decision, &format!("secmail ALERT: {who} {}", if state == "expired" { "has expired" } else { "expires soon" }), &text, now)?;
        said.push(text);
    }
    let failed = store::outbox_failed_unalerted(&tx)?;
    if !failed.is_empty() {
        let mut text = String::from("The SMTP server refused these mails for good (they will not be retried):\n\n");
        for (id, to, err) in &failed {
            text.push_str(&format!("  #{id} to {to}: {err}\n"));
        }
        text.push_str("\nSee secmail case ID for the case of each; check the addresses and the server's policy.\n");
        let last = failed.last().map(|f| f.0).unwrap_or(0);
        alert_mail(p, &tx, &format!("alert:smtp-refused:{last}"), &format!("secmail ALERT: {} mail(s) refused by the SMTP server", failed.len()), &text, now)?;
        store::meta_set(&tx, "alert:smtp-refused", &last.to_string())?;
        said.push(text);
    }
    tx.commit()?;
    Ok((!said.is_empty()).then(|| said.join("\n")))
}

/// `health.alert_command`, in the background (`sh -c`), with the alert in its
/// environment; its failure is logged, never fatal.
fn run_alert_command(cmd: &Option<String>, kind: &str, text: &str) {
    let Some(cmd) = cmd else { return };
    match std::process::Command::new("sh").arg("-c").arg(cmd).env("SECMAIL_ALERT", text).env("SECMAIL_ALERT_KIND", kind).spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || match child.wait() {
                Ok(s) if !s.success() => tracing::warn!("health.alert_command exited with {s}"),
                Err(e) => tracing::warn!("health.alert_command: {e}"),
                _ => {}
            });
        }
        Err(e) => tracing::warn!("health.alert_command could not start: {e}"),
    }
}

/// The last health record, if the daemon ever ran on this database.
pub fn read(c: &rusqlite::Connection) -> anyhow::Result<Option<Health>> {
    Ok(store::meta_get(c, HEALTH_META)?.and_then(|s| serde_json::from_str(&s).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::config::Config;
    use crate::keys::Keys;

    #[test]
    fn one_alert_per_outage_and_one_note_when_it_ends() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config::builtin(d.path()).unwrap();
        let store = Store::open(&cfg.store.path).unwrap();
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let clock = Arc::new(FakeClock::new(now));
        let p = Pipeline::new(Arc::new(cfg), Arc::new(Keys::default()), store.clone(), clock, Arc::new(tokio::sync::Notify::new())).unwrap();
        let down = SourceState::Down("connection refused".into());
        let since = now - chrono::Duration::minutes(9);
        let run = |s: &SourceState, at: DateTime<Utc>| store.call_sync(|c| source_alert(&p, c, s, since, at)).unwrap().map(|(k, _)| k);
        assert_eq!(run(&down, now), None, "9 minutes is within source_down_after (10 min)");
        assert_eq!(run(&down, now + chrono::Duration::minutes(1)), Some("alert"));
        assert_eq!(run(&down, now + chrono::Duration::minutes(5)), None, "one alert per outage");
        assert_eq!(run(&SourceState::Starting, now + chrono::Duration::minutes(6)), None);
        assert_eq!(run(&SourceState::Idle, now + chrono::Duration::minutes(7)), Some("recovered"));
        assert_eq!(run(&SourceState::Idle, now + chrono::Duration::minutes(8)), None);
        let kinds: i64 = store.call_sync(|c| Ok(c.query_row("SELECT count(*) FROM outbox WHERE kind = 'alert'", [], |r| r.get(0))?)).unwrap();
        assert_eq!(kinds, 2, "the alert and the note, to the coordinator");
    }
}
