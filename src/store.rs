//! The store: one SQLite database (WAL, foreign keys on) holding cases, messages
//! as received, events, deadlines, the durable outbox and per-folder IMAP state.
//!
//! Side effects: file I/O on the database. Blocking calls run on tokio's blocking
//! pool via [`Store::call`]; the per-message pipeline runs inside one transaction.
//! Schema: `tables.sql` is version 1; later versions append to [`MIGRATIONS`],
//! keyed on `PRAGMA user_version` (chatmail/core's ladder).

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// The append-only migration ladder: entry `i` takes the schema from version `i`
/// to `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("tables.sql"), include_str!("tables_v2.sql"), include_str!("tables_v3.sql"), include_str!("tables_v4.sql"), include_str!("tables_v5.sql"), include_str!("tables_v6.sql")];

/// How long a writer waits for a lock held by another process (the CLI) before
/// failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A handle on the database, cheap to clone; one connection behind a mutex
/// (SQLite serialises writers anyway, and the daemon's writes are small).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Format a time the way every column stores it: RFC 3339, UTC, milliseconds,
/// so that text order is time order.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parse a stored time.
pub fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("bad timestamp in database: {s:?}"))?
        .with_timezone(&Utc))
}

fn opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

impl Store {
    /// Open (creating if needed) the database at `path` and migrate it.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::setup(conn)
    }

    /// A throwaway database (tests).
    pub fn open_in_memory() -> Result<Store> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // FULL, not NORMAL: under WAL a NORMAL commit can roll back after an
        // OS crash or power loss, yet the source moves the message out of the
        // inbox right after the commit; the report would vanish.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Every write transaction takes the write lock at BEGIN: busy_timeout
        // then covers it (a deferred read-to-write upgrade fails at once with
        // "database is locked" beside a busy daemon).
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        migrate(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Run `f` on the connection off the async threads.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .context("store task panicked")?
    }

    /// Run `f` on the connection on this thread (CLI, tests).
    pub fn call_sync<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R>) -> Result<R> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    /// The UIDVALIDITY and highest processed UID recorded for an IMAP folder.
    pub async fn imap_sync(&self, folder: &str) -> Result<Option<(u32, u32)>> {
        let folder = folder.to_string();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT uidvalidity, last_uid FROM imap_sync WHERE folder = ?1",
                [folder],
                |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)),
            )
            .optional()?)
        })
        .await
    }

    /// Record the UIDVALIDITY and highest processed UID of an IMAP folder.
    pub async fn set_imap_sync(&self, folder: &str, uidvalidity: u32, last_uid: u32) -> Result<()> {
        let folder = folder.to_string();
        self.call(move |c| {
            c.execute(
                "INSERT INTO imap_sync (folder, uidvalidity, last_uid) VALUES (?1, ?2, ?3)
                 ON CONFLICT(folder) DO UPDATE SET uidvalidity = ?2, last_uid = ?3",
                params![folder, uidvalidity, last_uid],
            )?;
            Ok(())
        })
        .await
    }

    /// A consistent online copy of the database at `dest` (SQLite backup API).
    /// The file is created 0600 before anything is written to it (never
    /// readable by others, whatever the umask), and never overwritten.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => anyhow::anyhow!("{} already exists; refusing to overwrite", dest.display()),
                _ => anyhow::Error::new(e).context(format!("creating {}", dest.display())),
            })?;
        let res = self.call_sync(|c| {
            c.backup(rusqlite::MAIN_DB, dest, None)
                .with_context(|| format!("writing backup to {}", dest.display()))
        });
        if res.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        res
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "database schema version {version} is newer than this secmail knows ({}); upgrade secmail",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).with_context(|| format!("migration to schema {}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

// ---------------------------------------------------------------- rows

/// A case as listed and decided upon.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    pub id: i64,
    pub state: String,
    pub severity: Option<String>,
    pub handler: Option<String>,
    pub reporter: String,
    pub subject: String,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub last_team_response_at: Option<DateTime<Utc>>,
    pub encrypted: bool,
}

/// Whether a failed store operation may succeed if tried again later (the
/// database busy or locked by another process, the disk full or failing): such
/// a failure does not count against `limits.max_attempts`.
pub fn is_transient(err: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode::*;
    err.chain().any(|e| match e.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(f, _)) => {
            matches!(f.code, DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen | OutOfMemory)
        }
        _ => false,
    })
}

impl CaseRow {
    /// What the pure core (rules, compose) sees of the case.
    pub fn view(&self) -> crate::case::CaseView {
        crate::case::CaseView {
            id: self.id,
            state: self.state.clone(),
            reporter: self.reporter.clone(),
            subject: self.subject.clone(),
        }
    }
}

const CASE_COLS: &str = "id, state, severity, handler, reporter, subject, opened_at, acknowledged_at, \
     first_response_at, last_team_response_at, encrypted";

fn case_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(CaseRow, [Option<String>; 4])> {
    Ok((
        CaseRow {
            id: r.get(0)?,
            state: r.get(1)?,
            severity: r.get(2)?,
            handler: r.get(3)?,
            reporter: r.get(4)?,
            subject: r.get(5)?,
            opened_at: Utc::now(),
            acknowledged_at: None,
            first_response_at: None,
            last_team_response_at: None,
            encrypted: r.get(10)?,
        },
        [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?],
    ))
}

fn finish_case((mut c, t): (CaseRow, [Option<String>; 4])) -> Result<CaseRow> {
    let [opened, ack, first, last] = t;
    c.opened_at = parse_ts(opened.as_deref().unwrap_or_default())?;
    c.acknowledged_at = opt_ts(ack)?;
    c.first_response_at = opt_ts(first)?;
    c.last_team_response_at = opt_ts(last)?;
    Ok(c)
}

/// One case by number.
pub fn get_case(c: &Connection, id: i64) -> Result<Option<CaseRow>> {
    let row = c
        .query_row(&format!("SELECT {CASE_COLS} FROM cases WHERE id = ?1"), [id], case_from_row)
        .optional()?;
    row.map(finish_case).transpose()
}

/// All cases, or only those not in a final state.
pub fn list_cases(c: &Connection, all: bool) -> Result<Vec<CaseRow>> {
    let filter = if all {
        ""
    } else {
        "WHERE state NOT IN ('closed', 'disclosed', 'not-security', 'duplicate')"
    };
    let mut st = c.prepare(&format!("SELECT {CASE_COLS} FROM cases {filter} ORDER BY id"))?;
    let rows = st.query_map([], case_from_row)?;
    rows.map(|r| finish_case(r?)).collect()
}

/// The case that any of these Message-IDs belongs to (incoming or our own).
pub fn case_for_message_ids(c: &Connection, ids: &[String]) -> Result<Option<i64>> {
    let mut st = c.prepare_cached(
        "SELECT case_id FROM messages WHERE message_id = ?1 AND case_id IS NOT NULL LIMIT 1",
    )?;
    // Most recent reference first (RFC 5322 §3.6.4: References ends with the parent).
    for id in ids.iter().rev() {
        if let Some(case) = st.query_row([id], |r| r.get::<_, i64>(0)).optional()? {
            return Ok(Some(case));
        }
    }
    Ok(None)
}

/// Whether a message with this dedupe key was already stored.
pub fn message_seen(c: &Connection, direction: &str, dedupe_key: &str) -> Result<bool> {
    Ok(c
        .query_row(
            "SELECT 1 FROM messages WHERE direction = ?1 AND dedupe_key = ?2",
            params![direction, dedupe_key],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Whether the incoming message with this dedupe key is held in quarantine
/// (and not released): a second delivery of it is filed as quarantine too.
pub fn is_quarantined(c: &Connection, dedupe_key: &str) -> Result<bool> {
    Ok(c
        .query_row(
            "SELECT 1 FROM messages m JOIN quarantine q ON q.message_pk = m.id
             WHERE m.direction = 'in' AND m.dedupe_key = ?1 AND q.released_at IS NULL",
            [dedupe_key],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Whether secmail sent a message with this Message-ID (a loop if it comes back).
pub fn is_outgoing_message_id(c: &Connection, message_id: &str) -> Result<bool> {
    Ok(c
        .query_row("SELECT 1 FROM messages WHERE direction = 'out' AND message_id = ?1", [message_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A new case; returns its number.
pub fn insert_case(c: &Connection, reporter: &str, subject: &str, encrypted: bool, now: DateTime<Utc>) -> Result<i64> {
    c.execute(
        "INSERT INTO cases (state, reporter, subject, opened_at, encrypted) VALUES ('new', ?1, ?2, ?3, ?4)",
        params![reporter, subject, ts(now), encrypted],
    )?;
    Ok(c.last_insert_rowid())
}

/// A message to store (either direction).
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub case_id: Option<i64>,
    pub direction: &'a str,
    pub message_id: &'a str,
    pub dedupe_key: &'a str,
    pub from: Option<&'a str>,
    pub date: Option<DateTime<Utc>>,
    pub subject: Option<&'a str>,
    pub encrypted: bool,
    pub signature: &'a str,
    pub flags: &'a str,
    pub raw: &'a [u8],
}

/// Store a message; returns its row id.
pub fn insert_message(c: &Connection, m: &NewMessage<'_>, now: DateTime<Utc>) -> Result<i64> {
    c.execute(
        "INSERT INTO messages (case_id, direction, message_id, dedupe_key, from_addr, date, subject,
                               encrypted, signature, flags, raw, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            m.case_id,
            m.direction,
            m.message_id,
            m.dedupe_key,
            m.from,
            m.date.map(ts),
            m.subject,
            m.encrypted,
            m.signature,
            m.flags,
            m.raw,
            ts(now)
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// Append an event to a case's timeline.
pub fn add_event(c: &Connection, case_id: i64, at: DateTime<Utc>, kind: &str, actor: Option<&str>, detail: &str) -> Result<()> {
    c.execute(
        "INSERT INTO events (case_id, at, kind, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![case_id, ts(at), kind, actor, detail],
    )?;
    Ok(())
}

/// Add a deadline (idempotent for the same kind and due time).
pub fn add_deadline(c: &Connection, case_id: i64, kind: &str, due: DateTime<Utc>) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO deadlines (case_id, kind, due_at) VALUES (?1, ?2, ?3)",
        params![case_id, kind, ts(due)],
    )?;
    Ok(())
}

/// Mark the open deadlines of `kind` on a case met.
pub fn meet_deadlines(c: &Connection, case_id: i64, kind: &str, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE deadlines SET met_at = ?3 WHERE case_id = ?1 AND kind = ?2 AND met_at IS NULL",
        params![case_id, kind, ts(at)],
    )?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineRow {
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub met_at: Option<DateTime<Utc>>,
}

pub fn deadlines(c: &Connection, case_id: i64) -> Result<Vec<DeadlineRow>> {
    let mut st = c.prepare("SELECT kind, due_at, met_at FROM deadlines WHERE case_id = ?1 ORDER BY due_at, id")?;
    let rows = st.query_map([case_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
    })?;
    rows.map(|r| {
        let (kind, due, met) = r?;
        Ok(DeadlineRow { kind, due_at: parse_ts(&due)?, met_at: opt_ts(met)? })
    })
    .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct EscalationRow {
    pub kind: String,
    pub to: Vec<String>,
    pub at: DateTime<Utc>,
}

pub fn escalations(c: &Connection, case_id: i64) -> Result<Vec<EscalationRow>> {
    let mut st = c.prepare("SELECT kind, recipients, at FROM escalations WHERE case_id = ?1 ORDER BY at, id")?;
    let rows = st.query_map([case_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    rows.map(|r| {
        let (kind, to, at) = r?;
        Ok(EscalationRow { kind, to: serde_json::from_str(&to)?, at: parse_ts(&at)? })
    })
    .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: Option<String>,
    pub detail: String,
}

pub fn events(c: &Connection, case_id: i64) -> Result<Vec<EventRow>> {
    let mut st = c.prepare("SELECT at, kind, actor, detail FROM events WHERE case_id = ?1 ORDER BY id")?;
    let rows = st.query_map([case_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.map(|r| {
        let (at, kind, actor, detail) = r?;
        Ok(EventRow { at: parse_ts(&at)?, kind, actor, detail })
    })
    .collect()
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub message_id: String,
    pub direction: String,
    pub from: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub encrypted: bool,
    pub signature: String,
    pub flags: String,
    pub raw: Vec<u8>,
    /// Fingerprint of the key a good signature was made with, if any.
    pub signer_fpr: Option<String>,
    /// Where that key came from ("configured key of alice@...", ...).
    pub signer_source: Option<String>,
}

pub fn messages(c: &Connection, case_id: i64) -> Result<Vec<MessageRow>> {
    let mut st = c.prepare(
        "SELECT message_id, direction, from_addr, date, received_at, encrypted, signature, flags, raw,
                signer_fpr, signer_source
         FROM messages WHERE case_id = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([case_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, bool>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, Vec<u8>>(8)?,
            (r.get::<_, Option<String>>(9)?, r.get::<_, Option<String>>(10)?),
        ))
    })?;
    rows.map(|r| {
        let (message_id, direction, from, date, received, encrypted, signature, flags, raw, (signer_fpr, signer_source)) = r?;
        Ok(MessageRow {
            message_id,
            direction,
            from,
            date: opt_ts(date)?,
            received_at: parse_ts(&received)?,
            encrypted,
            signature,
            flags,
            raw,
            signer_fpr,
            signer_source,
        })
    })
    .collect()
}

/// How many messages a case has, not counting those whose flags are exactly
/// `except_flags` (team notices are kept for threading, not listed).
pub fn message_count(c: &Connection, case_id: i64, except_flags: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT count(*) FROM messages WHERE case_id = ?1 AND flags != ?2",
        params![case_id, except_flags],
        |r| r.get(0),
    )?)
}

// ---------------------------------------------------------------- outbox

/// A mail to queue. `decision` names the decision that caused it, unique: queuing
/// the same decision twice is a no-op.
#[derive(Debug, Clone)]
pub struct OutMail {
    pub case_id: Option<i64>,
    pub decision: String,
    pub kind: String,
    pub message_id: String,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

/// Queue a mail; `false` if that decision was already queued.
pub fn enqueue(c: &Connection, m: &OutMail, now: DateTime<Utc>) -> Result<bool> {
    let n = c.execute(
        "INSERT OR IGNORE INTO outbox (case_id, decision, kind, message_id, envelope_from, recipients, raw,
                                       created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            m.case_id,
            m.decision,
            m.kind,
            m.message_id,
            m.envelope_from,
            serde_json::to_string(&m.recipients)?,
            m.raw,
            ts(now)
        ],
    )?;
    Ok(n == 1)
}

/// A queued mail waiting to be sent.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub case_id: Option<i64>,
    pub kind: String,
    pub message_id: String,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// Mails due for a (re)try at `now`: acks first (the reporter's promise),
/// then oldest first.
pub fn outbox_due(c: &Connection, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>> {
    let mut st = c.prepare(
        "SELECT id, case_id, kind, message_id, envelope_from, recipients, raw, attempts, created_at
         FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1
         ORDER BY kind != 'ack', next_attempt_at, id LIMIT ?2",
    )?;
    let rows = st.query_map(params![ts(now), limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Vec<u8>>(6)?,
            r.get::<_, u32>(7)?,
            r.get::<_, String>(8)?,
        ))
    })?;
    rows.map(|r| {
        let (id, case_id, kind, message_id, envelope_from, rcpts, raw, attempts, created) = r?;
        Ok(OutboxRow {
            id,
            case_id,
            kind,
            message_id,
            envelope_from,
            recipients: serde_json::from_str(&rcpts)?,
            raw,
            attempts,
            created_at: parse_ts(&created)?,
        })
    })
    .collect()
}

/// When the next queued mail is due, if any.
/// How many mails wait in the outbox (not sent, not failed).
pub fn outbox_waiting(c: &Connection) -> Result<i64> {
    Ok(c.query_row("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL", [], |r| r.get(0))?)
}

/// The oldest waiting mail (queued at, kind), and how many acks wait.
pub type OutboxOldest = (Option<(DateTime<Utc>, String)>, i64);

/// The oldest mail still waiting: (created, kind), and how many acks wait.
pub fn outbox_oldest(c: &Connection) -> Result<OutboxOldest> {
    let oldest = c
        .query_row(
            "SELECT created_at, kind FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY created_at LIMIT 1",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    let acks: i64 = c.query_row("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND kind = 'ack'", [], |r| r.get(0))?;
    Ok((oldest.map(|(t, k)| Ok::<_, anyhow::Error>((parse_ts(&t)?, k))).transpose()?, acks))
}

/// Acks still waiting that were queued before `before`.
pub fn acks_waiting_since(c: &Connection, before: DateTime<Utc>) -> Result<i64> {
    Ok(c.query_row(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND kind = 'ack' AND created_at < ?1",
        [ts(before)],
        |r| r.get(0),
    )?)
}

/// Mails refused for good whose alert has not gone out yet (after the id in
/// `meta` `alert:smtp-refused`): (id, recipients, error). Alerts themselves
/// are not alerted on.
pub fn outbox_failed_unalerted(c: &Connection) -> Result<Vec<(i64, String, String)>> {
    let after: i64 = meta_get(c, "alert:smtp-refused")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut st = c.prepare(
        "SELECT id, recipients, coalesce(last_error, '') FROM outbox WHERE failed_at IS NOT NULL AND id > ?1 AND kind != 'alert' ORDER BY id LIMIT 50",
    )?;
    let rows = st.query_map([after], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The facts `secmail stats` needs of every case (nothing identifying).
pub fn stats_facts(c: &Connection) -> Result<Vec<crate::stats::CaseFacts>> {
    let mut out = Vec::new();
    for row in list_cases(c, true)? {
        let mut st = c.prepare_cached("SELECT at FROM events WHERE case_id = ?1 AND kind = 'relayed' ORDER BY at")?;
        let responses = st.query_map([row.id], |r| r.get::<_, String>(0))?.map(|r| parse_ts(&r?)).collect::<Result<Vec<_>>>()?;
        let deadlines = deadlines(c, row.id)?.into_iter().map(|d| (d.due_at, d.met_at)).collect();
        out.push(crate::stats::CaseFacts {
            opened_at: row.opened_at,
            acknowledged_at: row.acknowledged_at,
            first_response_at: row.first_response_at,
            responses,
            deadlines,
            stopped: crate::deadline::stops_deadlines(&row.state),
        });
    }
    Ok(out)
}

/// Mails refused for good since `since`.
pub fn outbox_failed_since(c: &Connection, since: DateTime<Utc>) -> Result<i64> {
    Ok(c.query_row("SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL AND failed_at >= ?1", [ts(since)], |r| r.get(0))?)
}

/// The next open deadline (case, kind, due), and how many are lapsed.
pub type NextDeadline = (Option<(i64, String, DateTime<Utc>)>, i64);

/// The next open deadline of a case that is not closed, and how many are lapsed at `now`.
pub fn next_deadline(c: &Connection, now: DateTime<Utc>) -> Result<NextDeadline> {
    const OPEN: &str = "d.met_at IS NULL AND c.state NOT IN ('closed', 'disclosed', 'not-security', 'duplicate')";
    let next = c
        .query_row(
            &format!("SELECT d.case_id, d.kind, d.due_at FROM deadlines d JOIN cases c ON c.id = d.case_id WHERE {OPEN} ORDER BY d.due_at LIMIT 1"),
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
        )
        .optional()?;
    let lapsed: i64 = c.query_row(
        &format!("SELECT count(*) FROM deadlines d JOIN cases c ON c.id = d.case_id WHERE {OPEN} AND d.due_at < ?1"),
        [ts(now)],
        |r| r.get(0),
    )?;
    Ok((next.map(|(id, k, t)| Ok::<_, anyhow::Error>((id, k, parse_ts(&t)?))).transpose()?, lapsed))
}

pub fn outbox_next_due(c: &Connection) -> Result<Option<DateTime<Utc>>> {
    let s: Option<String> = c.query_row(
        "SELECT min(next_attempt_at) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    opt_ts(s)
}

pub fn outbox_sent(c: &Connection, id: i64, now: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
        params![id, ts(now)],
    )?;
    Ok(())
}

pub fn outbox_retry(c: &Connection, id: i64, next: DateTime<Utc>, err: &str) -> Result<()> {
    c.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
        params![id, ts(next), err],
    )?;
    Ok(())
}

pub fn outbox_failed(c: &Connection, id: i64, now: DateTime<Utc>, err: &str) -> Result<()> {
    c.execute(
        "UPDATE outbox SET attempts = attempts + 1, failed_at = ?2, last_error = ?3 WHERE id = ?1",
        params![id, ts(now), err],
    )?;
    Ok(())
}

/// Record an automatic reply to `recipient` (rate limiting).
pub fn record_auto_reply(c: &Connection, recipient: &str, now: DateTime<Utc>) -> Result<()> {
    c.execute(
        "INSERT INTO auto_replies (recipient, at) VALUES (lower(?1), ?2)",
        params![recipient, ts(now)],
    )?;
    Ok(())
}

/// Automatic replies to `recipient` at or after `since`.
pub fn auto_replies_since(c: &Connection, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
    Ok(c.query_row(
        "SELECT count(*) FROM auto_replies WHERE recipient = lower(?1) AND at >= ?2",
        params![recipient, ts(since)],
        |r| r.get(0),
    )?)
}

/// The ack for a case went out: record when, and move `new` to `acknowledged`.
pub fn case_acknowledged(c: &Connection, id: i64, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE cases SET acknowledged_at = coalesce(acknowledged_at, ?2),
                          state = CASE state WHEN 'new' THEN 'acknowledged' ELSE state END
         WHERE id = ?1",
        params![id, ts(at)],
    )?;
    Ok(())
}

// ---------------------------------------------------------------- the team

/// Record who signed a stored message, with which key, and where the key came from.
pub fn set_signer(c: &Connection, message_pk: i64, fingerprint: &str, source: &str) -> Result<()> {
    c.execute("UPDATE messages SET signer_fpr = ?2, signer_source = ?3 WHERE id = ?1", params![message_pk, fingerprint, source])?;
    Ok(())
}

/// A team signature already applied: when, on which case, by whom.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedSignature {
    pub applied_at: DateTime<Utc>,
    pub case_id: Option<i64>,
    pub member: String,
    pub message_id: String,
}

/// The earlier use of this signature, if it was applied before (a replay).
pub fn signature_applied(c: &Connection, signature_id: &str) -> Result<Option<AppliedSignature>> {
    let row = c
        .query_row(
            "SELECT applied_at, case_id, member, message_id FROM team_signatures WHERE signature_id = ?1",
            [signature_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)),
        )
        .optional()?;
    row.map(|(at, case_id, member, message_id)| Ok(AppliedSignature { applied_at: parse_ts(&at)?, case_id, member, message_id }))
        .transpose()
}

/// Record a team signature as applied (a second use is a replay).
#[allow(clippy::too_many_arguments)]
pub fn record_signature(
    c: &Connection,
    signature_id: &str,
    case_id: Option<i64>,
    member: &str,
    fingerprint: &str,
    signed_at: DateTime<Utc>,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "INSERT INTO team_signatures (signature_id, case_id, member, fingerprint, signed_at, applied_at, message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![signature_id, case_id, member, fingerprint, ts(signed_at), ts(now), message_id],
    )?;
    Ok(())
}

/// The reporter key pinned on a case: fingerprint and the certificate bytes.
pub fn reporter_key(c: &Connection, case_id: i64) -> Result<Option<(String, Vec<u8>)>> {
    Ok(c
        .query_row(
            "SELECT reporter_key_fpr, reporter_key FROM cases WHERE id = ?1 AND reporter_key IS NOT NULL",
            [case_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?)
}

/// Pin the reporter's key on a case (only the first one sticks).
pub fn pin_reporter_key(c: &Connection, case_id: i64, fingerprint: &str, cert: &[u8]) -> Result<bool> {
    Ok(c.execute(
        "UPDATE cases SET reporter_key_fpr = ?2, reporter_key = ?3 WHERE id = ?1 AND reporter_key IS NULL",
        params![case_id, fingerprint, cert],
    )? == 1)
}

/// A case field the team sets by command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseField {
    State,
    Severity,
    Handler,
    Cve,
    EmbargoUntil,
    DuplicateOf,
    Affected,
    FixedIn,
    Advisory,
    Predisclose,
    DisclosedAt,
}

impl CaseField {
    fn column(self) -> &'static str {
        match self {
            CaseField::State => "state",
            CaseField::Severity => "severity",
            CaseField::Handler => "handler",
            CaseField::Cve => "cve",
            CaseField::EmbargoUntil => "embargo_until",
            CaseField::DuplicateOf => "duplicate_of",
            CaseField::Affected => "affected",
            CaseField::FixedIn => "fixed_in",
            CaseField::Advisory => "advisory",
            CaseField::Predisclose => "predisclose",
            CaseField::DisclosedAt => "disclosed_at",
        }
    }
}

/// Set one case field (the column name comes from [`CaseField`], never from input).
pub fn set_case_field(c: &Connection, case_id: i64, field: CaseField, value: Option<&str>) -> Result<()> {
    c.execute(&format!("UPDATE cases SET {} = ?2 WHERE id = ?1", field.column()), params![case_id, value])?;
    Ok(())
}

/// A team response reached the reporter's side: the first one, and the latest.
pub fn record_team_response(c: &Connection, case_id: i64, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE cases SET first_response_at = coalesce(first_response_at, ?2), last_team_response_at = ?2 WHERE id = ?1",
        params![case_id, ts(at)],
    )?;
    Ok(())
}

/// The Message-ID of the latest incoming message on a case from `from`.
pub fn last_message_from(c: &Connection, case_id: i64, from: &str) -> Result<Option<String>> {
    Ok(c
        .query_row(
            "SELECT message_id FROM messages WHERE case_id = ?1 AND direction = 'in' AND lower(from_addr) = lower(?2)
             ORDER BY id DESC LIMIT 1",
            params![case_id, from],
            |r| r.get(0),
        )
        .optional()?)
}

/// Extra case fields beyond [`CaseRow`]: cve, embargo, duplicate-of, pinned key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseExtra {
    pub cve: Option<String>,
    pub embargo_until: Option<String>,
    pub duplicate_of: Option<i64>,
    pub reporter_key_fpr: Option<String>,
    pub affected: Option<String>,
    pub fixed_in: Option<String>,
    pub advisory: Option<String>,
    /// Pre-notification lists chosen (`#predisclose`).
    pub predisclose: Vec<String>,
    pub disclosed_at: Option<String>,
}

pub fn case_extra(c: &Connection, case_id: i64) -> Result<CaseExtra> {
    Ok(c
        .query_row(
            "SELECT cve, embargo_until, duplicate_of, reporter_key_fpr, affected, fixed_in, advisory, predisclose, disclosed_at FROM cases WHERE id = ?1",
            [case_id],
            |r| {
                let lists: Option<String> = r.get(7)?;
                Ok(CaseExtra {
                    cve: r.get(0)?,
                    embargo_until: r.get(1)?,
                    duplicate_of: r.get(2)?,
                    reporter_key_fpr: r.get(3)?,
                    affected: r.get(4)?,
                    fixed_in: r.get(5)?,
                    advisory: r.get(6)?,
                    predisclose: lists.and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default(),
                    disclosed_at: r.get(8)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

// ---------------------------------------------------------------- timer jobs

/// A job of the timer task.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub due_at: DateTime<Utc>,
    pub kind: String,
    pub case_id: i64,
    pub deadline_id: Option<i64>,
    pub decision: String,
}

/// Schedule a job; a second one with the same decision is a no-op.
pub fn add_job(c: &Connection, due: DateTime<Utc>, kind: &str, case_id: i64, deadline_id: Option<i64>, decision: &str) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO jobs (due_at, kind, case_id, deadline_id, decision) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ts(due), kind, case_id, deadline_id, decision],
    )?;
    Ok(())
}

/// When the next job falls due (index `jobs_due`: one step, whatever the number of cases).
pub fn next_job_due(c: &Connection) -> Result<Option<DateTime<Utc>>> {
    let s: Option<String> = c.query_row("SELECT min(due_at) FROM jobs WHERE done_at IS NULL", [], |r| r.get(0))?;
    s.map(|s| parse_ts(&s)).transpose()
}

/// Jobs due at `now`, oldest first, at most `limit`.
pub fn due_jobs(c: &Connection, now: DateTime<Utc>, limit: usize) -> Result<Vec<JobRow>> {
    let mut st = c.prepare_cached(
        "SELECT id, due_at, kind, case_id, deadline_id, decision FROM jobs
         WHERE done_at IS NULL AND due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
    )?;
    let rows = st.query_map(params![ts(now), limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, r.get::<_, Option<i64>>(4)?, r.get::<_, String>(5)?))
    })?;
    rows.map(|r| {
        let (id, due, kind, case_id, deadline_id, decision) = r?;
        Ok(JobRow { id, due_at: parse_ts(&due)?, kind, case_id, deadline_id, decision })
    })
    .collect()
}

/// Mark a job done (in the transaction that queued its mail).
pub fn job_done(c: &Connection, id: i64, now: DateTime<Utc>, outcome: &str) -> Result<()> {
    c.execute("UPDATE jobs SET done_at = ?2, outcome = ?3 WHERE id = ?1", params![id, ts(now), outcome])?;
    Ok(())
}

/// One deadline row by id: (case, kind, due, met).
pub fn deadline_by_id(c: &Connection, id: i64) -> Result<Option<DeadlineRow>> {
    let row = c
        .query_row("SELECT kind, due_at, met_at FROM deadlines WHERE id = ?1", [id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
        })
        .optional()?;
    row.map(|(kind, due, met)| Ok(DeadlineRow { kind, due_at: parse_ts(&due)?, met_at: opt_ts(met)? })).transpose()
}

/// Add a deadline and return its row id (an existing identical one is reused).
pub fn add_deadline_id(c: &Connection, case_id: i64, kind: &str, due: DateTime<Utc>) -> Result<i64> {
    add_deadline(c, case_id, kind, due)?;
    Ok(c.query_row(
        "SELECT id FROM deadlines WHERE case_id = ?1 AND kind = ?2 AND due_at = ?3",
        params![case_id, kind, ts(due)],
        |r| r.get(0),
    )?)
}

/// Record that a deadline's reminder went out / it was escalated.
pub fn deadline_reminded(c: &Connection, id: i64, at: DateTime<Utc>) -> Result<()> {
    c.execute("UPDATE deadlines SET reminded_at = ?2 WHERE id = ?1", params![id, ts(at)])?;
    Ok(())
}

pub fn deadline_escalated(c: &Connection, id: i64, at: DateTime<Utc>) -> Result<()> {
    c.execute("UPDATE deadlines SET escalated_at = ?2 WHERE id = ?1", params![id, ts(at)])?;
    Ok(())
}

/// Record an escalation of a case (SPEC §2 `escalations`).
pub fn add_escalation(c: &Connection, case_id: i64, kind: &str, to: &[String], at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "INSERT INTO escalations (case_id, kind, recipients, at) VALUES (?1, ?2, ?3, ?4)",
        params![case_id, kind, serde_json::to_string(to)?, ts(at)],
    )?;
    Ok(())
}

/// The Message-ID of the first message of a case (its thread's root).
pub fn first_message_id(c: &Connection, case_id: i64) -> Result<Option<String>> {
    Ok(c
        .query_row("SELECT message_id FROM messages WHERE case_id = ?1 ORDER BY id LIMIT 1", [case_id], |r| r.get(0))
        .optional()?)
}

/// Whether the reporter wrote on the case after `since`.
pub fn reporter_wrote_since(c: &Connection, case_id: i64, reporter: &str, since: DateTime<Utc>) -> Result<bool> {
    Ok(c
        .query_row(
            "SELECT 1 FROM messages WHERE case_id = ?1 AND direction = 'in' AND lower(from_addr) = lower(?2) AND received_at > ?3 LIMIT 1",
            params![case_id, reporter, ts(since)],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

// ---------------------------------------------------------------- quarantine

/// A message held as spam.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    pub qid: i64,
    pub message_pk: i64,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub score: f64,
    /// JSON array of `{rule, score}`.
    pub rules: String,
    pub held_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub released_case: Option<i64>,
    pub released_by: Option<String>,
}

impl QuarantineRow {
    /// What the quarantine digest shows of it.
    pub fn held(&self) -> crate::compose::Held {
        crate::compose::Held {
            qid: self.qid,
            held_at: self.held_at,
            score: self.score,
            from: self.from.clone(),
            subject: self.subject.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// Count one more attempt at the message with this raw hash; returns the
/// count so far (this one included) and the last recorded error.
pub fn begin_attempt(c: &Connection, raw_hash: &str, now: DateTime<Utc>) -> Result<(u32, Option<String>)> {
    c.execute(
        "INSERT INTO attempts (raw_hash, count, first_at, last_at) VALUES (?1, 1, ?2, ?2)
         ON CONFLICT(raw_hash) DO UPDATE SET count = count + 1, last_at = ?2",
        params![raw_hash, ts(now)],
    )?;
    Ok(c.query_row("SELECT count, last_error FROM attempts WHERE raw_hash = ?1", [raw_hash], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Record why an attempt failed.
pub fn attempt_failed(c: &Connection, raw_hash: &str, error: &str) -> Result<()> {
    c.execute("UPDATE attempts SET last_error = ?2 WHERE raw_hash = ?1", params![raw_hash, error])?;
    Ok(())
}

/// Take back an attempt that failed for a transient reason (it does not count).
pub fn attempt_uncounted(c: &Connection, raw_hash: &str) -> Result<()> {
    c.execute("UPDATE attempts SET count = max(count - 1, 0) WHERE raw_hash = ?1", [raw_hash])?;
    Ok(())
}

/// The message is done (its effects are committed in the same transaction).
pub fn attempts_done(c: &Connection, raw_hash: &str) -> Result<()> {
    c.execute("DELETE FROM attempts WHERE raw_hash = ?1", [raw_hash])?;
    Ok(())
}

/// Hold a stored message in quarantine; returns the QID.
pub fn quarantine(c: &Connection, message_pk: i64, score: f64, rules_json: &str, now: DateTime<Utc>) -> Result<i64> {
    c.execute(
        "INSERT INTO quarantine (message_pk, score, rules, held_at) VALUES (?1, ?2, ?3, ?4)",
        params![message_pk, score, rules_json, ts(now)],
    )?;
    Ok(c.last_insert_rowid())
}

const QUARANTINE_SELECT: &str = "SELECT q.id, q.message_pk, m.from_addr, m.subject, q.score, q.rules, q.held_at,
            q.released_at, q.released_case, q.released_by
     FROM quarantine q JOIN messages m ON m.id = q.message_pk";

fn quarantine_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(QuarantineRow, String, Option<String>)> {
    Ok((
        QuarantineRow {
            qid: r.get(0)?,
            message_pk: r.get(1)?,
            from: r.get(2)?,
            subject: r.get(3)?,
            score: r.get(4)?,
            rules: r.get(5)?,
            held_at: Utc::now(),
            released_at: None,
            released_case: r.get(8)?,
            released_by: r.get(9)?,
        },
        r.get(6)?,
        r.get(7)?,
    ))
}

fn finish_quarantine((mut q, held, released): (QuarantineRow, String, Option<String>)) -> Result<QuarantineRow> {
    q.held_at = parse_ts(&held)?;
    q.released_at = opt_ts(released)?;
    Ok(q)
}

/// Held messages, oldest first; with `since`, only those held after it and
/// not released (for the digest).
pub fn list_quarantine(c: &Connection, since: Option<DateTime<Utc>>) -> Result<Vec<QuarantineRow>> {
    let (sql, arg) = match since {
        Some(t) => (format!("{QUARANTINE_SELECT} WHERE q.held_at > ?1 AND q.released_at IS NULL ORDER BY q.id"), ts(t)),
        None => (format!("{QUARANTINE_SELECT} WHERE ?1 = ?1 ORDER BY q.id"), String::new()),
    };
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([arg], quarantine_row)?;
    rows.map(|r| finish_quarantine(r?)).collect()
}

pub fn get_quarantine(c: &Connection, qid: i64) -> Result<Option<QuarantineRow>> {
    let row = c
        .query_row(&format!("{QUARANTINE_SELECT} WHERE q.id = ?1"), [qid], quarantine_row)
        .optional()?;
    row.map(finish_quarantine).transpose()
}

pub fn mark_released(c: &Connection, qid: i64, case_id: Option<i64>, by: &str, now: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE quarantine SET released_at = ?2, released_case = ?3, released_by = ?4 WHERE id = ?1",
        params![qid, ts(now), case_id, by],
    )?;
    Ok(())
}

/// The raw bytes of a stored message.
pub fn message_raw(c: &Connection, pk: i64) -> Result<Vec<u8>> {
    Ok(c.query_row("SELECT raw FROM messages WHERE id = ?1", [pk], |r| r.get(0))?)
}

/// Point a stored message at a case and set its flags (release from quarantine).
pub fn refile_message(c: &Connection, pk: i64, case_id: Option<i64>, flags: &str) -> Result<()> {
    c.execute("UPDATE messages SET case_id = ?2, flags = ?3 WHERE id = ?1", params![pk, case_id, flags])?;
    Ok(())
}

pub fn meta_get(c: &Connection, key: &str) -> Result<Option<String>> {
    Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

pub fn meta_set(c: &Connection, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_cases_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("db.sqlite");
        let now = parse_ts("2026-01-02T03:04:05.000Z").unwrap();
        {
            let s = Store::open(&p).unwrap();
            s.call_sync(|c| {
                let id = insert_case(c, "r@example.org", "XSS", false, now)?;
                assert_eq!(id, 1);
                Ok(())
            })
            .unwrap();
        }
        let s = Store::open(&p).unwrap();
        let case = s.call_sync(|c| get_case(c, 1)).unwrap().unwrap();
        assert_eq!(case.state, "new");
        assert_eq!(case.opened_at, now);
    }

    #[test]
    fn a_decision_queues_one_mail() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        let m = OutMail {
            case_id: None,
            decision: "ack:1".into(),
            kind: "ack".into(),
            message_id: "<a@b>".into(),
            envelope_from: "s@example.org".into(),
            recipients: vec!["r@example.org".into()],
            raw: b"x".to_vec(),
        };
        s.call_sync(|c| {
            assert!(enqueue(c, &m, now)?);
            assert!(!enqueue(c, &m, now)?);
            assert_eq!(outbox_due(c, now, 10)?.len(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn backup_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("a.db")).unwrap();
        let dest = d.path().join("b.db");
        s.backup(&dest).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(s.backup(&dest).unwrap_err().to_string().contains("refusing to overwrite"));
        let copy = Store::open(&dest).unwrap();
        assert!(copy.call_sync(|c| list_cases(c, true)).unwrap().is_empty());
    }
}
