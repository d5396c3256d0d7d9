//! The canary (issue "proof that the mailbox works"): every
//! `health.canary_every` secmail sends itself a token, signed by the team key,
//! through the real SMTP path to its own mailbox, and expects it back on the
//! source within `health.canary_within`. A canary is recognised by its
//! signature (never by its From line), never opens a case, and is filed away.
//! A miss alerts the coordinator and the backup; the next canary that comes
//! back says so too.
//!
//! Side effects: the store (state in `meta`, the canary queued in the outbox).

use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::intake::Pipeline;
use super::seen::Seen;
use crate::compose;
use crate::store;

/// Subject of a canary: this, then the token.
pub(crate) const SUBJECT: &str = "secmail canary ";
const META: &str = "canary";

/// What `meta` holds about the canary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CanaryState {
    /// The token in flight, if one is.
    pub token: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// `ok`, `missed` or `pending`.
    pub last_result: Option<String>,
    pub last_ok_at: Option<DateTime<Utc>>,
    /// A miss was alerted and no canary has come back since.
    pub miss_open: bool,
}

/// The canary's state as the daemon recorded it.
pub fn read(c: &Connection) -> Result<CanaryState> {
    Ok(store::meta_get(c, META)?.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default())
}

fn write(c: &Connection, s: &CanaryState) -> Result<()> {
    store::meta_set(c, META, &serde_json::to_string(s)?)
}

/// The health task's turn: alert a miss, send the next canary when due.
/// `Some((kind, text))` when an alert was queued.
pub(crate) fn tick(p: &Pipeline, c: &mut Connection, now: DateTime<Utc>) -> Result<Option<(&'static str, String)>> {
    let cfg = &*p.cfg;
    let (Some(team), false) = (&p.keys.team, cfg.health.canary_every.is_zero()) else { return Ok(None) };
    let every = chrono::Duration::from_std(cfg.health.canary_every)?;
    let within = chrono::Duration::from_std(cfg.health.canary_within)?;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut st = read(&tx)?;
    let mut alert = None;
    if let (Some(token), Some(sent)) = (&st.token, st.sent_at)
        && now - sent > within
        && st.last_result.as_deref() == Some("pending")
    {
        st.last_result = Some("missed".into());
        let text = format!(
            "secmail sent itself a canary (token {token}) through {smtp} to {addr} at {sent} and it did not come back within {within}.\n\n\
             Mail to {addr} may not be arriving, or not being read. Check the MTA's queue and log, the mailbox, and `secmail status`.\n",
            smtp = "the SMTP server",
            addr = cfg.mailbox.address,
            sent = sent.format("%Y-%m-%d %H:%M:%S UTC"),
            within = humantime::format_duration(cfg.health.canary_within),
        );
        if !st.miss_open {
            super::health::alert_mail(p, &tx, &format!("alert:canary:{token}"), &format!("secmail ALERT: the canary to {} did not come back", cfg.mailbox.address), &text, now)?;
            alert = Some(("alert", text));
        }
        st.miss_open = true;
    }
    let due = st.sent_at.is_none_or(|s| now - s >= every);
    let in_flight = st.last_result.as_deref() == Some("pending");
    if due && !in_flight {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let m = compose::canary(cfg, &format!("{SUBJECT}{token}"), team, compose::new_message_id(&cfg.mailbox.address), now)?;
        p.queue(&tx, None, format!("canary:{token}"), "canary", &m, super::TEAM_NOTICE_FLAG, now)?;
        st.token = Some(token);
        st.sent_at = Some(now);
        st.last_result = Some("pending".into());
    }
    write(&tx, &st)?;
    tx.commit()?;
    Ok(alert)
}

/// A canary coming back: recognised by the team key's signature over the
/// whole message and a token in flight. Stores it (no case) and records the
/// success; `Some(summary)` when it was one.
pub(crate) fn returned(p: &Pipeline, c: &Connection, seen: &Seen, raw: &[u8], now: DateTime<Utc>) -> Result<Option<String>> {
    let cfg = &*p.cfg;
    let msg = &seen.msg;
    let Some(token) = msg.subject.strip_prefix(SUBJECT) else { return Ok(None) };
    let Some(team) = &p.keys.team else { return Ok(None) };
    if msg.root_type != "multipart/signed" {
        return Ok(None);
    }
    let signer = crate::crypto::verify_mime_signature(raw, &team.public_certs(), now);
    if !signer.signer().is_some_and(|f| f.eq_ignore_ascii_case(&team.signing_fingerprint())) {
        return Ok(None);
    }
    let mut st = read(c)?;
    let known = st.token.as_deref() == Some(token.trim());
    store::insert_message(
        c,
        &store::NewMessage {
            case_id: None,
            direction: "in",
            message_id: &msg.message_id,
            dedupe_key: &msg.dedupe_key,
            from: msg.from.as_deref(),
            date: msg.date,
            subject: Some(&msg.subject),
            encrypted: false,
            signature: signer.as_str(),
            flags: if known { "canary" } else { "canary (old token)" },
            raw,
        },
        now,
    )?;
    if !known {
        return Ok(Some("an old canary came back; filed".into()));
    }
    let took = st.sent_at.map(|s| now - s).unwrap_or_default();
    if st.miss_open {
        let text = format!("A canary came back to {} again (after {}): mail arrives and is read.\n", cfg.mailbox.address, crate::deadline::human_approx(took.to_std().unwrap_or_default()));
        super::health::alert_mail(p, c, &format!("recovered:canary:{token}"), &format!("secmail: the canary to {} comes back again", cfg.mailbox.address), &text, now)?;
        st.miss_open = false;
    }
    st.token = None;
    st.last_result = Some("ok".into());
    st.last_ok_at = Some(now);
    write(c, &st)?;
    Ok(Some(format!("canary back after {} ms; filed", took.num_milliseconds())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};
    use crate::config::Config;
    use crate::crypto::TeamKeys;
    use crate::keys::Keys;
    use crate::store::Store;
    use sequoia_openpgp::parse::Parse as _;
    use std::sync::Arc;
    use std::time::Duration;

    fn setup(dir: &std::path::Path) -> (Pipeline, Arc<FakeClock>, Store) {
        let mut cfg = Config::builtin(dir).unwrap();
        cfg.health.canary_every = Duration::from_secs(60);
        cfg.health.canary_within = Duration::from_secs(20);
        let cert = crate::crypto::Cert::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/team-cv25519.sec.asc")).unwrap();
        let keys = Keys::new(Some(TeamKeys::from_certs(vec![cert], None).unwrap()), vec![], vec![]);
        let store = Store::open(&cfg.store.path).unwrap();
        let clock = Arc::new(FakeClock::new("2026-11-25T10:00:00Z".parse().unwrap()));
        let p = Pipeline::new(Arc::new(cfg), Arc::new(keys), store.clone(), clock.clone(), Arc::new(tokio::sync::Notify::new())).unwrap();
        (p, clock, store)
    }

    /// The raw mails of `kind` in the outbox, oldest first.
    fn queued(store: &Store, kind: &'static str) -> Vec<Vec<u8>> {
        store
            .call_sync(move |c| {
                let mut st = c.prepare("SELECT raw FROM outbox WHERE kind = ?1 ORDER BY id")?;
                let rows = st.query_map([kind], |r| r.get::<_, Vec<u8>>(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap()
    }

    #[test]
    fn a_canary_goes_out_comes_back_unopened_and_a_miss_alerts_once() {
        let d = tempfile::tempdir().unwrap();
        let (p, clock, store) = setup(d.path());
        let tick = |at| store.call_sync(|c| tick(&p, c, at)).unwrap();
        assert!(tick(clock.now()).is_none());
        let sent = queued(&store, "canary");
        assert_eq!(sent.len(), 1);
        // It comes back: filed, no case, state ok.
        clock.advance(Duration::from_secs(2));
        let out = store.call_sync(|c| p.process(c, &sent[0])).unwrap();
        assert!(out.case.is_none() && out.summary.starts_with("canary back"), "{out:?}");
        assert_eq!(store.call_sync(|c| read(c)).unwrap().last_result.as_deref(), Some("ok"));
        assert!(store.call_sync(|c| store::list_cases(c, true)).unwrap().is_empty(), "a canary never opens a case");
        // A forged canary (right subject, no signature) is ordinary mail.
        let forged = format!("From: {a}\r\nTo: {a}\r\nSubject: {SUBJECT}abc\r\nMessage-ID: <f@x>\r\n\r\nhi\r\n", a = p.cfg.mailbox.address);
        let out = store.call_sync(|c| p.process(c, forged.as_bytes())).unwrap();
        assert!(!out.summary.starts_with("canary"), "{out:?}");
        // The next one is lost: one alert, not two.
        clock.advance(Duration::from_secs(60));
        tick(clock.now());
        assert_eq!(queued(&store, "canary").len(), 2);
        clock.advance(Duration::from_secs(21));
        assert!(matches!(tick(clock.now()), Some(("alert", _))));
        clock.advance(Duration::from_secs(10));
        assert!(tick(clock.now()).is_none());
        assert_eq!(queued(&store, "alert").len(), 1, "one alert per miss (to the coordinator)");
        // Then one comes back: the note that it works again.
        clock.advance(Duration::from_secs(60));
        tick(clock.now());
        let sent = queued(&store, "canary");
        assert_eq!(sent.len(), 3);
        store.call_sync(|c| p.process(c, sent.last().unwrap())).unwrap();
        assert_eq!(queued(&store, "alert").len(), 2, "the recovery note");
    }
}
