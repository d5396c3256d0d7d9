//! secmail runs a software project's security@ mailbox: every report becomes a
//! case, the reporter is acknowledged at once, and the team is told.
//!
//! # Layout
//! Edges (side effects) around a pure core that decides.
//!
//! Edges:
//! - [`config`]: TOML in two stages (raw, then validated), secret files.
//! - [`store`]: SQLite (WAL): cases, messages, events, deadlines, the outbox.
//! - [`source`]: where mail comes from: [`source::imap`] (IDLE or polling) and
//!   [`source::maildir`].
//! - [`transport`]: where mail goes: SMTP or a directory of `.eml` files.
//! - [`keys`]: the OpenPGP key files a config names, loaded once.
//! - [`tls`]: rustls client configs (built-in roots plus an optional CA file).
//! - [`daemon`]: the tasks, one file each (intake, outbox, digest) and the
//!   per-message pipeline (attempts, see, decide, perform).
//! - [`cli`]: the subcommands other than `run`.
//!
//! Core (pure: values and `now` in, decisions out):
//! - [`prescan`]: the `[limits]` checked before the MIME parser sees bytes.
//! - [`mail`]: parse raw bytes into what the rules need; spot automatic mail.
//! - [`body`]: what the spam signals see of a body (text head, structure).
//! - [`case`]: case ids, states, and what a message gets ([`case::Action`]).
//! - [`deadline`]: when promises fall due.
//! - [`calendar`]: business calendars (time zone, days, hours, holidays).
//! - [`compose`]: the outgoing messages (ack, team notification).
//! - [`advisory`]: CVE JSON 5 and OSV records from what a case recorded.
//! - [`spam`]: subject heuristics and upstream spam signals.
//! - [`crypto`]: OpenPGP over bytes and keys.
//! - [`clock`]: time as an input.

pub mod advisory;
pub mod body;
pub mod calendar;
pub mod case;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod compose;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod deadline;
pub mod keys;
pub mod mail;
pub mod prescan;
pub mod source;
pub mod spam;
pub mod stats;
pub mod store;
pub mod team;
pub mod tls;
pub mod transport;
