//! The command line (SPEC §2): argument parsing and every subcommand. `main.rs`
//! only maps the result to an exit code.
//!
//! Side effects: reads the config, opens the database, prints to stdout; `run`
//! starts the daemon; `check-config` logs in to the servers unless `--offline`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::case::{case_id, parse_case_id};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{self, Config, ConfigErrors, SourceConfig};
use crate::daemon::{self, TEAM_NOTICE_FLAG};
use crate::deadline;
use crate::keys::Keys;
use crate::store::{self, CaseRow};
use crate::transport::Transport;

/// Exit code for a bad config or bad usage.
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "secmail", version, about = "Runs a software project's security@ mailbox")]
pub struct Args {
    /// Config file.
    #[arg(long, global = true, env = "SECMAIL_CONFIG", default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Use the built-in default config rooted at this directory instead of a file:
    /// Maildir in DIR/maildir, outgoing mail as .eml files in DIR/outbox, database
    /// DIR/secmail.db. Needs no server (quick start, trials).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "config")]
    pub builtin: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (stops cleanly on SIGTERM/SIGINT).
    Run,
    /// Validate the config and keys, then log in to IMAP and SMTP.
    CheckConfig {
        /// Do not contact any server.
        #[arg(long)]
        offline: bool,
    },
    /// Open cases (or all), next deadline first.
    Cases {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One case: fields, deadlines, timeline and messages; or steer it.
    Case {
        /// Case id, e.g. SEC-42 (or 42).
        id: String,
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<CaseAction>,
    },
    /// Health for monitoring: exit 0 healthy, 1 degraded, 2 down (Nagios convention).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Per month: reports, median/p90 time to ack, to first response and between
    /// updates, share of cases with every promise kept (nothing identifying).
    Stats {
        #[arg(long)]
        json: bool,
        /// Only cases opened on or after this date (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
    },
    /// Write a consistent online copy of the database to PATH.
    Backup { path: PathBuf },
    /// What the spam filter held back.
    Quarantine {
        #[arg(long)]
        json: bool,
    },
    /// Release a held message into normal processing (a case and an ack).
    Release {
        /// Quarantine id, e.g. Q3 (or 3).
        qid: String,
    },
    /// Print a shell completion script to stdout (reads no config).
    Completions { shell: clap_complete::Shell },
}

/// Steering a case from the host: the team commands of SPEC §6.
#[derive(Debug, Subcommand)]
pub enum CaseAction {
    /// Set the handler (a team address).
    Assign { addr: String },
    /// Change the state (e.g. triaged, confirmed, fixing, waiting-on-reporter).
    State { state: String },
    /// critical | important | moderate | minor.
    Severity { severity: String },
    /// An internal comment (never sent to the reporter).
    Comment { text: Vec<String> },
    /// Send the reporter the text of FILE from security@ (encrypted to their key when one is pinned).
    Reply {
        #[arg(long)]
        file: PathBuf,
    },
    /// Set the CVE id.
    Cve { id: String },
    /// Embargo until an RFC 3339 time.
    Embargo { until: String },
    /// Affected versions.
    Affected { versions: Vec<String> },
    /// Fixed in versions.
    FixedIn { versions: Vec<String> },
    /// Not a security issue.
    NotSecurity,
    /// A duplicate of another case.
    Duplicate { of: String },
    /// Choose pre-notification lists (e.g. distros).
    Predisclose { lists: Vec<String> },
    /// Set the advisory text from FILE; or print it as a CVE JSON 5 CNA container or an OSV record.
    Advisory {
        #[arg(long, conflicts_with_all = ["cve_json", "osv_json"])]
        file: Option<PathBuf>,
        #[arg(long, conflicts_with = "osv_json")]
        cve_json: bool,
        #[arg(long)]
        osv_json: bool,
    },
    /// Lift the embargo now: the advisory goes out.
    Publish,
    Close,
    Reopen,
}

impl CaseAction {
    /// The command word and arguments, as a team mail would write them.
    fn command(&self) -> (&'static str, String) {
        match self {
            CaseAction::Assign { addr } => ("assign", addr.clone()),
            CaseAction::State { state } => ("state", state.clone()),
            CaseAction::Severity { severity } => ("severity", severity.clone()),
            CaseAction::Comment { text } => ("comment", text.join(" ")),
            CaseAction::Reply { .. } => ("reply", String::new()),
            CaseAction::Cve { id } => ("cve", id.clone()),
            CaseAction::Embargo { until } => ("embargo", until.clone()),
            CaseAction::Affected { versions } => ("affected", versions.join(" ")),
            CaseAction::FixedIn { versions } => ("fixed-in", versions.join(" ")),
            CaseAction::NotSecurity => ("not-security", String::new()),
            CaseAction::Duplicate { of } => ("duplicate", of.clone()),
            CaseAction::Predisclose { lists } => ("predisclose", lists.join(" ")),
            CaseAction::Advisory { .. } => ("advisory", String::new()),
            CaseAction::Publish => ("publish", String::new()),
            CaseAction::Close => ("close", String::new()),
            CaseAction::Reopen => ("reopen", String::new()),
        }
    }
}

/// Parse arguments and run; errors are printed by `main`.
pub fn main() -> Result<ExitCode> {
    let args = Args::parse();
    if let Command::Completions { shell } = args.command {
        return Ok(completions(shell));
    }
    init_logging();
    let cfg = match load_config(&args) {
        Ok(c) => c,
        Err(errs) => {
            for line in &errs.0 {
                eprintln!("secmail: config: {line}");
            }
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let clock: SharedClock = Arc::new(SystemClock);
    match args.command {
        Command::Run => run_daemon(cfg, clock),
        Command::CheckConfig { offline } => check_config(&cfg, offline),
        Command::Cases { all, json } => cases(&cfg, &*clock, all, json),
        Command::Case { id, json, action: None } => show_case(&cfg, &*clock, &id, json),
        Command::Case { id, action: Some(a), .. } => steer_case(cfg, clock, &id, &a),
        Command::Quarantine { json } => quarantine(&cfg, json),
        Command::Status { json } => status(&cfg, &*clock, json),
        Command::Stats { json, since } => stats(&cfg, &*clock, json, since.as_deref()),
        Command::Release { qid } => release(cfg, clock, &qid),
        Command::Completions { shell } => Ok(completions(shell)),
        Command::Backup { path } => {
            daemon::open_store(&cfg)?.backup(&path)?;
            println!("backup written to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Protocol libraries whose debug and trace output carries credentials (the
/// IMAP LOGIN line, SMTP AUTH) or message data: capped at INFO whatever
/// `RUST_LOG` says.
const PROTOCOL_TARGETS: &[&str] = &["async_imap", "imap_proto", "lettre", "rustls", "tokio_rustls"];

fn init_logging() {
    use std::io::IsTerminal as _;
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("secmail=info"));
    let no_secrets = tracing_subscriber::filter::filter_fn(|m| {
        *m.level() <= tracing::Level::INFO || !PROTOCOL_TARGETS.iter().any(|t| m.target().starts_with(t))
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter)
        .with_filter(no_secrets);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

fn load_config(args: &Args) -> Result<Config, ConfigErrors> {
    match &args.builtin {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConfigErrors(vec![format!("--builtin {}: {e}", dir.display())]))?;
            let dir = dir
                .canonicalize()
                .map_err(|e| ConfigErrors(vec![format!("--builtin {}: {e}", dir.display())]))?;
            Config::builtin(&dir)
        }
        None => Config::load(&args.config),
    }
}

fn run_daemon(cfg: Config, clock: SharedClock) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        let origin = cfg.origin.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
            else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                    _ = hup.recv() => {
                        on_hangup(origin.as_deref());
                        continue;
                    }
                }
                break;
            }
            stop.cancel();
        });
        if let SourceConfig::Maildir(m) = &cfg.source {
            tracing::info!("drop reports into {}/new/", m.path.display());
        }
        if let config::TransportConfig::OutboxDir(o) = &cfg.transport {
            tracing::info!("outgoing mail is written to {}/", o.path.display());
        }
        daemon::run(cfg, clock, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: secmail does not swap its config while running (keys, the source
/// connection and the spam rules are built once; a restart is cheap and loses
/// nothing). It checks the file on disk and says whether a restart would work.
fn on_hangup(origin: Option<&std::path::Path>) {
    let Some(path) = origin else {
        tracing::info!("SIGHUP: the built-in default has no file to re-read");
        return;
    };
    match Config::load(path) {
        Ok(_) => tracing::info!(
            "SIGHUP: {} is valid; the running daemon keeps its config: apply it with `systemctl restart secmail` (the message in hand finishes, queued mail waits in the database)",
            path.display()
        ),
        Err(errs) => {
            for e in &errs.0 {
                tracing::error!("SIGHUP: {}: {e}", path.display());
            }
            tracing::warn!("SIGHUP: the new config is refused; the running daemon keeps its old one");
        }
    }
}

fn check_config(cfg: &Config, offline: bool) -> Result<ExitCode> {
    println!(
        "config: {} OK",
        cfg.origin.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in default".into())
    );
    println!("mailbox: {} (cases {}-n)", cfg.mailbox.address, cfg.mailbox.case_prefix);
    println!("team: {}", cfg.team.recipients().join(", "));
    let keys = match Keys::load(cfg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("secmail: keys: {e:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let now = Utc::now();
    match &keys.team {
        None => println!("openpgp: no team key ([openpgp] secret_keys): encrypted reports cannot be read"),
        Some(t) => {
            for (i, k) in t.info(now).iter().enumerate() {
                println!(
                    "openpgp: team key {}{}: {} {}, expires {}",
                    k.fingerprint,
                    if i == 0 { " (signing)" } else { "" },
                    k.algorithm,
                    k.bits.map(|b| format!("{b} bits")).unwrap_or_default(),
                    k.expires.map(rfc3339).unwrap_or_else(|| "never".into())
                );
                for w in &k.warnings {
                    println!("warning: team key {}: {w}", k.fingerprint);
                }
            }
        }
    }
    for m in &cfg.team.members {
        match keys.member_cert(&m.address) {
            Some(c) => println!("openpgp: member {} key {}", m.address, c.fingerprint().to_hex()),
            None => println!(
                "openpgp: member {} has no key_file: gets metadata only{}",
                m.address,
                if cfg.team.allow_plaintext_to_team { " (allow_plaintext_to_team: report text in clear!)" } else { "" }
            ),
        }
    }
    if !keys.reporter_keyring.is_empty() {
        println!("openpgp: reporter keyring with {} key(s)", keys.reporter_keyring.len());
    }
    if offline {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let mut ok = true;
    let mut config_error = false;
    rt.block_on(async {
        match &cfg.source {
            SourceConfig::Imap(i) => match crate::source::imap::check_login(i).await {
                Ok(s) => {
                    for line in s.lines() {
                        println!("imap: {line}");
                    }
                }
                Err(e) => {
                    eprintln!("secmail: imap: {e:#}");
                    ok = false;
                    // A folder the server refuses is a configuration error.
                    if e.downcast_ref::<crate::source::imap::ImapError>().is_some_and(|e| e.is_folder_problem()) {
                        config_error = true;
                    }
                }
            },
            SourceConfig::Maildir(m) => println!("maildir: {}", m.path.display()),
        }
        match Transport::new(&cfg.transport) {
            Ok(t) => match t.check().await {
                Ok(s) => println!("transport: {s}"),
                Err(e) => {
                    eprintln!("secmail: transport: {e:#}");
                    ok = false;
                }
            },
            Err(e) => {
                eprintln!("secmail: transport: {e:#}");
                ok = false;
            }
        }
    });
    Ok(if config_error {
        ExitCode::from(EXIT_CONFIG)
    } else if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(rfc3339(t))).unwrap_or(Value::Null)
}

/// The JSON object of a case (SPEC §2 keys), plus when its next deadline falls.
fn case_json(c: &rusqlite::Connection, cfg: &Config, row: &CaseRow, now: DateTime<Utc>) -> Result<(Value, Option<DateTime<Utc>>)> {
    let deadlines = store::deadlines(c, row.id)?;
    let stopped = deadline::stops_deadlines(&row.state);
    let next = deadlines
        .iter()
        .filter(|d| d.met_at.is_none() && !stopped)
        .map(|d| d.due_at)
        .min();
    let dl: Vec<Value> = deadlines
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind,
                "due": rfc3339(d.due_at),
                "state": deadline::state(d.due_at, d.met_at, now).as_str(),
                // Met after it was due: "met late".
                "late": d.met_at.is_some_and(|m| m > d.due_at),
                "met_at": opt(d.met_at),
            })
        })
        .collect();
    let esc: Vec<Value> = store::escalations(c, row.id)?
        .into_iter()
        .map(|e| json!({"kind": e.kind, "to": e.to, "at": rfc3339(e.at)}))
        .collect();
    let count = store::message_count(c, row.id, TEAM_NOTICE_FLAG)?;
    let extra = store::case_extra(c, row.id)?;
    let v = json!({
        "id": case_id(&cfg.mailbox.case_prefix, row.id),
        "state": row.state,
        "severity": row.severity,
        "handler": row.handler,
        "reporter": row.reporter,
        "subject": row.subject,
        "opened_at": rfc3339(row.opened_at),
        "acknowledged_at": opt(row.acknowledged_at),
        "first_response_at": opt(row.first_response_at),
        "last_team_response_at": opt(row.last_team_response_at),
        "encrypted": row.encrypted,
        "messages": count,
        "next_deadline": opt(next),
        "deadlines": dl,
        "escalations": esc,
        "cve": extra.cve,
        "embargo_until": extra.embargo_until,
        "affected": extra.affected,
        "fixed_in": extra.fixed_in,
        "predisclose": extra.predisclose,
        "advisory": extra.advisory,
        "disclosed_at": extra.disclosed_at,
        "duplicate_of": extra.duplicate_of.map(|n| case_id(&cfg.mailbox.case_prefix, n)),
        "reporter_key": extra.reporter_key_fpr,
    });
    Ok((v, next))
}

fn cases(cfg: &Config, clock: &dyn Clock, all: bool, as_json: bool) -> Result<ExitCode> {
    let store = daemon::open_store(cfg)?;
    let now = clock.now();
    let mut list = store.call_sync(|c| {
        store::list_cases(c, all)?
            .iter()
            .map(|r| Ok((case_json(c, cfg, r, now)?, r.clone())))
            .collect::<Result<Vec<_>>>()
    })?;
    // Next deadline first; cases without a running deadline last, newest first.
    list.sort_by(|((_, a), ra), ((_, b), rb)| match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => rb.id.cmp(&ra.id),
    });
    if as_json {
        let arr: Vec<Value> = list.into_iter().map(|((v, _), _)| v).collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no {}cases", if all { "" } else { "open " });
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<10} {:<13} {:<10} {:<22} {:<30} SUBJECT", "ID", "STATE", "SEVERITY", "NEXT DEADLINE", "REPORTER");
    for ((v, next), row) in list {
        let lapsed = v["deadlines"].as_array().is_some_and(|d| d.iter().any(|d| d["state"] == "lapsed"));
        let next = next.map(rfc3339).unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:<13} {:<10} {:<22} {:<30} {}",
            v["id"].as_str().unwrap_or(""),
            row.state,
            row.severity.as_deref().unwrap_or("-"),
            if lapsed { format!("{next} LAPSED") } else { next },
            row.reporter,
            row.subject
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `secmail case` shows of a message it does not parse: its size and the
/// reason, as the text; the raw bytes stay in the database (`secmail backup`).
fn secmail_unparsed(raw: &[u8], flags: &str) -> crate::mail::Parsed {
    let mut p = crate::mail::kept_raw(raw, flags);
    p.text = format!("[not parsed: {flags}; {} bytes kept raw in the database]", raw.len());
    p
}

fn show_case(cfg: &Config, clock: &dyn Clock, id: &str, as_json: bool) -> Result<ExitCode> {
    let Some(n) = parse_case_id(&cfg.mailbox.case_prefix, id) else {
        eprintln!("secmail: {id:?} is not a case id (expected {}-<n>)", cfg.mailbox.case_prefix);
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let store = daemon::open_store(cfg)?;
    let now = clock.now();
    // Decrypt on read: the database holds ciphertext only (see README, Security).
    let keys = match Keys::load(cfg) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("secmail: warning: cannot load the team keys, encrypted messages stay unread: {e:#}");
            None
        }
    };
    let no_keys = Keys::default();
    let found = store.call_sync(|c| {
        let Some(row) = store::get_case(c, n)? else { return Ok(None) };
        let (mut v, _) = case_json(c, cfg, &row, now)?;
        let events: Vec<Value> = store::events(c, n)?
            .into_iter()
            .map(|e| json!({"at": rfc3339(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail}))
            .collect();
        let messages: Vec<Value> = store::messages(c, n)?
            .into_iter()
            .filter(|m| m.flags != TEAM_NOTICE_FLAG)
            .map(|m| {
                // A message the daemon gave up on may be what breaks the
                // parser: it is shown as stored, not parsed again.
                let seen = if m.flags.starts_with("processing failed") {
                    daemon::Seen {
                        msg: secmail_unparsed(&m.raw, &m.flags),
                        reading: crate::keys::Reading::Plain,
                        inner: None,
                    }
                } else {
                    daemon::see(&m.raw, keys.as_ref().unwrap_or(&no_keys), &cfg.limits, now)
                };
                let text = match (&keys, seen.problem()) {
                    (None, Some(_)) => "[encrypted; the team key is not available to this user]".to_string(),
                    (_, Some(reason)) => format!("[encrypted; not decrypted: {reason}]"),
                    (_, None) => seen.text().to_string(),
                };
                json!({
                    "message_id": m.message_id,
                    "from": m.from,
                    "date": opt(m.date.or(Some(m.received_at))),
                    "direction": m.direction,
                    "encrypted": m.encrypted,
                    "signature": m.signature,
                    "signer": m.signer_fpr,
                    "signer_key_source": m.signer_source,
                    "flags": m.flags,
                    "subject": seen.msg.subject,
                    "protected_subject": seen.protected_subject(),
                    "text": text,
                })
            })
            .collect();
        v["events"] = Value::Array(events);
        v["messages"] = Value::Array(messages);
        Ok(Some(v))
    })?;
    let Some(v) = found else {
        eprintln!("secmail: no case {}", case_id(&cfg.mailbox.case_prefix, n));
        return Ok(ExitCode::FAILURE);
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("{}  [{}]  {}", s("id"), s("state"), s("subject"));
    for k in ["reporter", "reporter_key", "severity", "handler", "cve", "embargo_until", "affected", "fixed_in", "disclosed_at", "duplicate_of", "opened_at", "acknowledged_at", "first_response_at", "last_team_response_at", "encrypted"] {
        println!("  {k:<22} {}", s(k));
    }
    println!("\nDeadlines:");
    for d in v["deadlines"].as_array().into_iter().flatten() {
        println!("  {:<15} due {}  {}", d["kind"].as_str().unwrap_or(""), d["due"].as_str().unwrap_or(""), d["state"].as_str().unwrap_or(""));
    }
    println!("\nTimeline:");
    for e in v["events"].as_array().into_iter().flatten() {
        println!("  {}  {:<20} {}", e["at"].as_str().unwrap_or(""), e["kind"].as_str().unwrap_or(""), e["detail"].as_str().unwrap_or(""));
    }
    println!("\nMessages:");
    for m in v["messages"].as_array().into_iter().flatten() {
        println!(
            "\n--- {} {} from {} at {} (encrypted: {}, signature: {}){}",
            if m["direction"] == "in" { "IN " } else { "OUT" },
            m["message_id"].as_str().unwrap_or(""),
            m["from"].as_str().unwrap_or("-"),
            m["date"].as_str().unwrap_or("-"),
            m["encrypted"],
            match (m["signature"].as_str().unwrap_or(""), m["signer"].as_str(), m["signer_key_source"].as_str()) {
                (sig, Some(fpr), Some(src)) => format!("{sig} by {fpr}, {src}"),
                (sig, _, _) => sig.to_string(),
            },
            match m["flags"].as_str() {
                Some("") | None => String::new(),
                Some(f) => format!(" [{f}]"),
            }
        );
        println!("Subject: {}", m["subject"].as_str().unwrap_or(""));
        if let Some(ps) = m["protected_subject"].as_str() {
            println!("Protected subject: {ps}");
        }
        println!();
        println!("{}", m["text"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

fn quarantine(cfg: &Config, as_json: bool) -> Result<ExitCode> {
    let rows = daemon::open_store(cfg)?.call_sync(|c| store::list_quarantine(c, None))?;
    if as_json {
        let arr: Vec<Value> = rows
            .iter()
            .map(|q| {
                json!({
                    "qid": format!("Q{}", q.qid),
                    "from": q.from,
                    "subject": q.subject,
                    "score": q.score,
                    "rules": serde_json::from_str::<Value>(&q.rules).unwrap_or(Value::Null),
                    "held_at": rfc3339(q.held_at),
                    "released_at": opt(q.released_at),
                    "released_case": q.released_case.map(|n| case_id(&cfg.mailbox.case_prefix, n)),
                    "released_by": q.released_by,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("quarantine is empty");
    }
    for q in rows {
        let status = match (q.released_at, q.released_case) {
            (Some(at), Some(n)) => format!("released {} as {}", rfc3339(at), case_id(&cfg.mailbox.case_prefix, n)),
            (Some(at), None) => format!("released {}", rfc3339(at)),
            _ => "held".into(),
        };
        println!(
            "Q{:<5} {}  score {:>5.1}  {:<30} {}\n       rules: {}  [{status}]",
            q.qid,
            rfc3339(q.held_at),
            q.score,
            q.from.as_deref().unwrap_or("(none)"),
            q.subject.as_deref().unwrap_or(""),
            crate::compose::rules_summary(&q.rules),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A heartbeat older than this means the daemon does not run.
const HEARTBEAT_STALE: chrono::Duration = chrono::Duration::seconds(60);

/// `secmail status`: what the daemon recorded, the outbox, the deadlines and
/// the keys, judged: 0 healthy, 1 degraded, 2 down; one line per finding.
fn status(cfg: &Config, clock: &dyn Clock, as_json: bool) -> Result<ExitCode> {
    let now = clock.now();
    let store = daemon::open_store(cfg)?;
    let (health, (oldest, acks), stale_acks, failed, (next, lapsed)) = store.call_sync(|c| {
        let ack_within = chrono::Duration::from_std(cfg.policy.ack_within).unwrap_or(chrono::Duration::MAX);
        Ok((
            daemon::health::read(c)?,
            store::outbox_oldest(c)?,
            store::acks_waiting_since(c, now - ack_within)?,
            store::outbox_failed_since(c, now - chrono::Duration::hours(24))?,
            store::next_deadline(c, now)?,
        ))
    })?;
    let waiting = store.call_sync(|c| store::outbox_waiting(c))?;
    let canary = store.call_sync(|c| daemon::canary_state(c))?;
    let mut level = 0u8;
    let mut findings: Vec<String> = Vec::new();
    let mut flag = |l: u8, what: String| {
        level = level.max(l);
        findings.push(what);
    };
    let daemon_json = match &health {
        None => {
            flag(2, "daemon: has never run on this database".into());
            json!({"running": false})
        }
        Some(h) if h.stopped => {
            flag(2, format!("daemon: stopped at {} (pid {})", rfc3339(h.at), h.pid));
            json!({"running": false, "stopped_at": rfc3339(h.at), "pid": h.pid})
        }
        Some(h) if now - h.at > HEARTBEAT_STALE => {
            flag(2, format!("daemon: not running (last heartbeat {}, pid {})", rfc3339(h.at), h.pid));
            json!({"running": false, "last_heartbeat": rfc3339(h.at), "pid": h.pid})
        }
        Some(h) => {
            let since = now - h.source_since;
            match h.source_state.as_str() {
                // Down for `health.source_down_after` (when the alert goes
                // out): "down" (2); before that "degraded" (1).
                "down" if since >= chrono::Duration::from_std(cfg.health.source_down_after).unwrap_or(chrono::Duration::MAX) => flag(2, format!("source: {} for {}", h.source_detail, human_secs(since))),
                "down" | "config-error" => flag(1, format!("source: {} for {}", h.source_detail, human_secs(since))),
                _ => {}
            }
            json!({
                "running": true,
                "pid": h.pid,
                "started_at": rfc3339(h.started_at),
                "last_heartbeat": rfc3339(h.at),
                "source": {"state": h.source_state, "detail": h.source_detail, "since": rfc3339(h.source_since), "last_progress": rfc3339(h.source_progress_at)},
            })
        }
    };
    if canary.last_result.as_deref() == Some("missed") || canary.miss_open {
        flag(1, format!("canary: the last canary did not come back (sent {})", canary.sent_at.map(rfc3339).unwrap_or_default()));
    }
    if stale_acks > 0 {
        flag(1, format!("outbox: {stale_acks} ack(s) still queued after policy.ack_within"));
    }
    if failed > 0 {
        flag(1, format!("outbox: {failed} mail(s) refused for good by the SMTP server in the last 24 hours (see secmail case)"));
    }
    let mut keys_json = Vec::new();
    match Keys::load(cfg) {
        Ok(k) => {
            let mut check = |who: String, expires: Option<DateTime<Utc>>| {
                if let Some(e) = expires {
                    if e <= now {
                        flag(1, format!("key: {who} expired {}", rfc3339(e)));
                    } else if e - now < chrono::Duration::days(30) {
                        flag(1, format!("key: {who} expires {} (within 30 days)", rfc3339(e)));
                    }
                }
                keys_json.push(json!({"key": who, "expires": opt(expires)}));
            };
            if let Some(t) = &k.team {
                for i in t.info(now) {
                    check(format!("team key {}", i.fingerprint), i.expires);
                }
            }
            for (addr, cert) in &k.members {
                check(format!("member {addr} key {}", cert.fingerprint()), crate::crypto::cert_expiry(cert, now));
            }
        }
        Err(e) => flag(1, format!("keys: cannot be loaded: {e:#}")),
    }
    let word = ["healthy", "degraded", "down"][level as usize];
    let v = json!({
        "status": word,
        "exit": level,
        "daemon": daemon_json,
        "outbox": {"waiting": waiting, "acks_waiting": acks, "oldest": oldest.as_ref().map(|(t, k)| json!({"queued_at": rfc3339(*t), "kind": k})), "failed_last_24h": failed},
        "next_deadline": next.as_ref().map(|(id, kind, due)| json!({"case": case_id(&cfg.mailbox.case_prefix, *id), "kind": kind, "due": rfc3339(*due)})),
        "lapsed_deadlines": lapsed,
        "canary": if cfg.health.canary_every.is_zero() { json!("off") } else { json!({"last_result": canary.last_result, "last_ok": opt(canary.last_ok_at), "sent_at": opt(canary.sent_at)}) },
        "keys": keys_json,
        "findings": findings,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("secmail: {}", v["status"].as_str().unwrap_or(""));
        match &health {
            Some(h) if v["daemon"]["running"] == true => println!("daemon: running (pid {}), source {} since {}", h.pid, h.source_detail, rfc3339(h.source_since)),
            _ => {}
        }
        println!(
            "outbox: {waiting} waiting{}",
            oldest.map(|(t, k)| format!(", oldest {k} queued {}", rfc3339(t))).unwrap_or_default()
        );
        match next {
            Some((id, kind, due)) => println!("next deadline: {} {kind} due {}{}", case_id(&cfg.mailbox.case_prefix, id), rfc3339(due), if lapsed > 0 { format!("; {lapsed} lapsed") } else { String::new() }),
            None => println!("next deadline: none"),
        }
        for f in v["findings"].as_array().into_iter().flatten() {
            println!("problem: {}", f.as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::from(level))
}

fn human_secs(d: chrono::Duration) -> String {
    crate::deadline::human_approx(d.to_std().unwrap_or_default())
}

/// `secmail stats`.
fn stats(cfg: &Config, clock: &dyn Clock, as_json: bool, since: Option<&str>) -> Result<ExitCode> {
    let since = match since {
        None => None,
        Some(d) => match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => Some(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()),
            Err(_) => {
                eprintln!("secmail: --since {d:?} is not a date (YYYY-MM-DD)");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
    };
    let facts = daemon::open_store(cfg)?.call_sync(|c| store::stats_facts(c))?;
    let months = crate::stats::monthly(&facts, since, clock.now());
    if as_json {
        println!("{}", serde_json::to_string_pretty(&months)?);
        return Ok(ExitCode::SUCCESS);
    }
    let h = |s: Option<i64>| s.map(|s| crate::deadline::human_approx(std::time::Duration::from_secs(s as u64))).unwrap_or_else(|| "-".into());
    println!("{:<8} {:>7}  {:<24} {:<24} {:<24} {:>6}", "MONTH", "REPORTS", "ACK median / p90", "1ST RESPONSE med / p90", "UPDATES median / p90", "KEPT");
    for m in months {
        println!(
            "{:<8} {:>7}  {:<24} {:<24} {:<24} {:>6}",
            m.month,
            m.reports,
            format!("{} / {}", h(m.time_to_ack.median_s), h(m.time_to_ack.p90_s)),
            format!("{} / {}", h(m.time_to_first_response.median_s), h(m.time_to_first_response.p90_s)),
            format!("{} / {}", h(m.time_between_updates.median_s), h(m.time_between_updates.p90_s)),
            m.promises_kept_pct.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Who runs the CLI, for the record (`cli:alice`).
fn operator() -> String {
    let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}

fn steer_case(cfg: Config, clock: SharedClock, id: &str, action: &CaseAction) -> Result<ExitCode> {
    let Some(n) = parse_case_id(&cfg.mailbox.case_prefix, id) else {
        eprintln!("secmail: {id:?} is not a case id (expected {}-<n>)", cfg.mailbox.case_prefix);
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let cfg = Arc::new(cfg);
    let store = daemon::open_store(&cfg)?;
    let keys = Arc::new(crate::keys::Keys::load(&cfg)?);
    let pipeline = daemon::Pipeline::new(cfg.clone(), keys, store.clone(), clock, Arc::new(tokio::sync::Notify::new()))?;
    let by = operator();
    let done = match action {
        CaseAction::Reply { file } => {
            let text = anyhow::Context::with_context(std::fs::read_to_string(file), || format!("reading {}", file.display()))?;
            store.call_sync(|c| pipeline.reply(c, n, &text, &by))
        }
        CaseAction::Advisory { file: Some(file), .. } => {
            let text = anyhow::Context::with_context(std::fs::read_to_string(file), || format!("reading {}", file.display()))?;
            store.call_sync(|c| pipeline.steer(c, n, "advisory", "", &by, Some(&text)))
        }
        CaseAction::Advisory { cve_json, osv_json, .. } => {
            return print_advisory(&cfg, n, *cve_json, *osv_json);
        }
        other => {
            let (word, args) = other.command();
            store.call_sync(|c| pipeline.steer(c, n, word, &args, &by, None))
        }
    };
    match done {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("secmail: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `secmail case ID advisory --cve-json | --osv-json`: the CNA container of a
/// CVE JSON 5 record, or an OSV record, from what the team recorded.
fn print_advisory(cfg: &Config, n: i64, cve_json: bool, osv_json: bool) -> Result<ExitCode> {
    if !cve_json && !osv_json {
        eprintln!("secmail: give --file FILE to set the advisory text, or --cve-json / --osv-json to print it");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let store = daemon::open_store(cfg)?;
    let found = store.call_sync(|c| match store::get_case(c, n)? {
        Some(row) => Ok(Some((row, store::case_extra(c, n)?, daemon::credit(c, n)?))),
        None => Ok(None),
    })?;
    let Some((row, extra, who)) = found else {
        eprintln!("secmail: no case {}", case_id(&cfg.mailbox.case_prefix, n));
        return Ok(ExitCode::FAILURE);
    };
    let d = &cfg.disclosure;
    let project = crate::advisory::Project {
        vendor: d.vendor.clone(),
        product: d.product.clone(),
        ecosystem: d.ecosystem.clone(),
        package: d.package.clone(),
        repository: d.repository.clone(),
    };
    let id = case_id(&cfg.mailbox.case_prefix, n);
    let published = extra.disclosed_at.as_deref().and_then(|t| store::parse_ts(t).ok()).unwrap_or_else(Utc::now);
    let a = crate::advisory::Advisory {
        case_id: &id,
        cve: extra.cve.as_deref(),
        title: &row.subject,
        description: extra.advisory.as_deref().unwrap_or(""),
        affected: extra.affected.as_deref(),
        fixed_in: extra.fixed_in.as_deref(),
        credit: Some(&who),
        published,
        modified: Utc::now(),
        references: Vec::new(),
    };
    let out = if cve_json { crate::advisory::cve_cna_container(&project, &a) } else { crate::advisory::osv(&project, &a) };
    match out {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            eprintln!("secmail: {id}: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn release(cfg: Config, clock: SharedClock, qid: &str) -> Result<ExitCode> {
    let Some(n) = qid.trim().trim_start_matches(['Q', 'q']).parse::<i64>().ok() else {
        eprintln!("secmail: {qid:?} is not a quarantine id (expected Q<n>)");
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let cfg = Arc::new(cfg);
    let store = daemon::open_store(&cfg)?;
    let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "cli".into());
    let keys = Arc::new(crate::keys::Keys::load(&cfg)?);
    let pipeline = daemon::Pipeline::new(cfg.clone(), keys, store.clone(), clock, Arc::new(tokio::sync::Notify::new()))?;
    let outcome = store.call_sync(|c| pipeline.release(c, n, &format!("cli:{by}")))?;
    println!("released Q{n}: {}; the running daemon sends queued mail within seconds", outcome.summary);
    Ok(ExitCode::SUCCESS)
}

/// `secmail completions SHELL`: the completion script for SHELL on stdout
/// (scripts/build-deb.sh packages bash, zsh and fish). Needs no config.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory as _;
    clap_complete::generate(shell, &mut Args::command(), "secmail", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Used by `main` to report an error that ends the program.
pub fn report(err: &anyhow::Error) {
    eprintln!("secmail: {err:#}");
}
