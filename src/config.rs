//! Configuration: read the TOML file (stage 1, [`RawConfig`], nothing checked but
//! syntax), then validate every key into the typed [`Config`] (stage 2), collecting
//! every problem as one line `key: what is wrong` instead of stopping at the first.
//!
//! Side effects: reads the config file and the secret files it names (passwords,
//! passphrases), refusing secret files that group or others can access.

use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the config lives when neither `--config` nor `SECMAIL_CONFIG` says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/secmail/secmail.toml";

/// Every problem found while validating, one line each.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}

/// A secret read from a file. Its `Debug` never shows the value, so a config dump
/// in a log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is handed to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a connection to a server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded by STARTTLS (RFC 3501 §6.2.1, RFC 3207).
    Starttls,
    /// No TLS at all; only allowed to loopback hosts.
    None,
}

/// The validated configuration the daemon and CLI run on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file came from (for messages); `None` for the built-in default.
    pub origin: Option<PathBuf>,
    pub mailbox: MailboxConfig,
    pub store: StoreConfig,
    /// Exactly one source (SPEC §3).
    pub source: SourceConfig,
    /// Exactly one transport (SPEC §3).
    pub transport: TransportConfig,
    pub openpgp: OpenPgpConfig,
    pub team: TeamConfig,
    pub policy: PolicyConfig,
    pub spam: SpamConfig,
    pub limits: LimitsConfig,
    pub disclosure: DisclosureConfig,
    pub health: HealthConfig,
}

/// `[health]`: when silence becomes an alert.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// The mailbox unreachable (or refusing the login) this long: the
    /// coordinator and the backup get an alert, and a note when it ends.
    pub source_down_after: Duration,
    /// Also run this (`sh -c`) on each alert and recovery, with the text in
    /// `SECMAIL_ALERT` and `alert` / `recovered` in `SECMAIL_ALERT_KIND` (e.g. to page).
    pub alert_command: Option<String>,
    /// How often the team gets the digest of open cases, lapses, cases opened
    /// and closed, and the quarantine (default 7 days; 0 = never).
    pub digest_every: Duration,
    /// How often secmail sends itself a signed token through the real SMTP
    /// path to the mailbox (default 1 hour; 0 = off; needs a team key).
    pub canary_every: Duration,
    /// How long a canary may take to come back before it is a miss (15 min).
    pub canary_within: Duration,
}

/// `[disclosure]` (SPEC §7b): embargoes, pre-notification, the lift.
#[derive(Debug, Clone)]
pub struct DisclosureConfig {
    /// The public announcement list: gets the advisory (signed, in clear) at the lift.
    pub announce: Option<String>,
    /// Trusted parties told ahead under embargo (`#predisclose NAME`).
    pub lists: Vec<DisclosureList>,
    /// Pre-notification this long before the lift.
    pub prenotice_before: Duration,
    /// Reminder to the handler this long before the lift.
    pub remind_before: Duration,
    /// The mail to a reporter whose report is not a security issue (`#not-security`).
    pub not_security_text: String,
    /// For machine-readable advisories (`secmail case ID advisory --cve-json|--osv-json`).
    pub vendor: String,
    pub product: String,
    pub ecosystem: String,
    pub package: String,
    pub repository: Option<String>,
}

/// A pre-notification list (e.g. distros).
#[derive(Debug, Clone)]
pub struct DisclosureList {
    pub name: String,
    pub address: String,
    pub key_file: PathBuf,
    /// The longest embargo this list accepts.
    pub max_embargo: Duration,
}

/// The built-in `#not-security` mail; `{case_id}` and `{team_address}` are filled in.
pub const DEFAULT_NOT_SECURITY: &str = "Hello,

thank you for your report {case_id}. The security team has looked at it and
does not consider it a security vulnerability, so it is not handled as an
undisclosed security issue. Please file it as an ordinary bug in the project's
public issue tracker, where it can be discussed and fixed in the open.

If you disagree, or have more information that shows a security impact, just
answer this mail.

-- 
The security team <{team_address}>
";

#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// The published security@ address reporters write to; From of all our mail.
    pub address: String,
    /// Other addresses that deliver to the same mailbox (`mailbox.aliases`):
    /// secmail never sends to them, and mail claiming to be from them is
    /// forged.
    pub aliases: Vec<String>,
    /// Display name on our outgoing mail.
    pub name: String,
    /// Case ids are `<prefix>-<n>`.
    pub case_prefix: String,
    /// Optional file replacing the built-in ack template.
    pub ack_template: Option<PathBuf>,
    /// Ack template text (built-in or read from `ack_template`).
    pub ack_template_text: String,
}

impl MailboxConfig {
    /// Whether `addr` is the mailbox address or one of its aliases
    /// (case-insensitive).
    pub fn is_ours(&self, addr: &str) -> bool {
        let addr = addr.trim();
        addr.eq_ignore_ascii_case(&self.address) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(addr))
    }

    /// Why secmail must never send mail to `addr`, if it must not: our own
    /// mailbox (a loop), an alias of it, or an MTA's postmaster or
    /// mailer-daemon (any domain: they answer mail with mail, RFC 5321 §4.5.1).
    pub fn never_send_to(&self, addr: &str) -> Option<&'static str> {
        let local = addr.trim().rsplit_once('@').map(|(l, _)| l).unwrap_or(addr);
        if addr.trim().eq_ignore_ascii_case(&self.address) {
            Some("the mailbox's own address")
        } else if self.is_ours(addr) {
            Some("an alias of the mailbox (mailbox.aliases)")
        } else if local.eq_ignore_ascii_case("postmaster") || local.eq_ignore_ascii_case("mailer-daemon") {
            Some("an MTA's postmaster or mailer-daemon")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// SQLite database file.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Imap(ImapConfig),
    Maildir(MaildirConfig),
}

#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    pub password: Secret,
    /// Extra CA certificate(s) (PEM) trusted in addition to the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Where new reports arrive.
    pub folder: String,
    /// Where a message goes once its effects are committed.
    pub processed_folder: String,
    /// Where spam is held.
    pub quarantine_folder: String,
    /// Use IDLE (RFC 2177) when the server offers it; `false` forces polling.
    pub idle: bool,
    /// Poll period without IDLE, and the IDLE re-issue period's upper bound.
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct MaildirConfig {
    /// The Maildir root (holding `new/`, `cur/`, `tmp/`).
    pub path: PathBuf,
    /// How often `new/` is rescanned (besides at start).
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub enum TransportConfig {
    Smtp(SmtpConfig),
    OutboxDir(OutboxDirConfig),
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// No username means no AUTH (loopback relays).
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct OutboxDirConfig {
    /// Each outgoing mail becomes an `.eml` file here (dry run).
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct OpenPgpConfig {
    /// Team secret keys, newest first is not required: all are tried (rotation).
    pub secret_keys: Vec<PathBuf>,
    pub passphrase: Option<Secret>,
    pub reporter_keyring: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct TeamConfig {
    pub coordinator: Option<String>,
    pub backup: Option<String>,
    /// Send decrypted report text to members without a key (off by default).
    pub allow_plaintext_to_team: bool,
    pub members: Vec<MemberConfig>,
    /// A signed team mail older than this (by its signature's creation time)
    /// is refused: an old signed mail cannot be replayed later (default 7 days).
    pub max_signature_age: Duration,
}

impl TeamConfig {
    /// Everyone who gets team mail: members, coordinator and backup, deduplicated
    /// case-insensitively, in that order.
    pub fn recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = self
            .members
            .iter()
            .map(|m| m.address.clone())
            .chain(self.coordinator.clone())
            .chain(self.backup.clone());
        for a in all {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
                out.push(a);
            }
        }
        out
    }

    /// Whether `addr` belongs to the team (member, coordinator or backup).
    pub fn is_member(&self, addr: &str) -> bool {
        self.recipients().iter().any(|a| a.eq_ignore_ascii_case(addr))
    }
}

#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub address: String,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum Calendar {
    /// Deadlines run around the clock.
    AllDay,
    /// Deadlines run only in working hours (`policy.timezone`, `days`,
    /// `hours`, `holidays`).
    Business(std::sync::Arc<crate::calendar::BusinessCalendar>),
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub ack_within: Duration,
    pub first_response_within: Duration,
    pub update_every: Duration,
    pub remind_before: Duration,
    pub re_escalate_every: Duration,
    pub escalate_to: Vec<String>,
    pub calendar: Calendar,
    /// A case waiting on the reporter this long without an answer is closed,
    /// with a polite notice to the reporter.
    pub close_if_silent: Duration,
}

#[derive(Debug, Clone)]
pub struct SpamConfig {
    /// A score at or above this quarantines a new message.
    pub threshold: f64,
    /// Use the shipped default rules in addition to `rules`.
    pub default_rules: bool,
    pub rules: Vec<SpamRuleConfig>,
    /// `[spam.signals] name = score`: re-weights (0.0 silences) one of the
    /// signals beyond the subject ([`crate::spam::SIGNALS`]).
    pub signals: Vec<(String, f64)>,
    /// The authserv-id (RFC 8601 §2.2) of our own MTA's
    /// `Authentication-Results`; only those count. `None`: none count (any
    /// other header may have been written by the sender).
    pub trusted_authserv_id: Option<String>,
    /// How often the team gets a digest of newly held messages (none when
    /// nothing was held).
    pub digest_every: Duration,
}

#[derive(Debug, Clone)]
pub struct SpamRuleConfig {
    pub name: String,
    pub pattern: String,
    pub score: f64,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub auto_replies_per_sender_per_hour: u32,
    pub max_message_size: u64,
    /// Top-level header block, bytes.
    pub max_header_size: usize,
    /// Header fields in one header block.
    pub max_headers: usize,
    /// Message ids in References + In-Reply-To.
    pub max_references: usize,
    pub max_mime_depth: usize,
    pub max_mime_parts: usize,
    pub max_decrypted_size: u64,
    /// Secret-key decryptions tried per encrypted message (PKESKs x keys).
    pub max_pkesk_attempts: usize,
    /// Failed attempts at one message before it is kept raw on a case,
    /// flagged "processing failed" (counted in the database, across restarts).
    pub max_attempts: u32,
}

// ---------------------------------------------------------------- stage 1: raw

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    mailbox: Option<RawMailbox>,
    store: Option<RawStore>,
    imap: Option<RawImap>,
    maildir: Option<RawMaildir>,
    smtp: Option<RawSmtp>,
    outbox_dir: Option<RawOutboxDir>,
    openpgp: Option<RawOpenPgp>,
    team: Option<RawTeam>,
    policy: Option<RawPolicy>,
    spam: Option<RawSpam>,
    limits: Option<RawLimits>,
    disclosure: Option<RawDisclosure>,
    health: Option<RawHealth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    source_down_after: Option<String>,
    alert_command: Option<String>,
    digest_every: Option<String>,
    canary_every: Option<String>,
    canary_within: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisclosure {
    announce: Option<String>,
    list: Option<Vec<RawDisclosureList>>,
    prenotice_before: Option<String>,
    remind_before: Option<String>,
    not_security_template: Option<PathBuf>,
    vendor: Option<String>,
    product: Option<String>,
    ecosystem: Option<String>,
    package: Option<String>,
    repository: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisclosureList {
    name: Option<String>,
    address: Option<String>,
    key_file: Option<PathBuf>,
    max_embargo: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    address: Option<String>,
    aliases: Option<Vec<String>>,
    name: Option<String>,
    case_prefix: Option<String>,
    ack_template: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    folder: Option<String>,
    processed_folder: Option<String>,
    quarantine_folder: Option<String>,
    idle: Option<bool>,
    poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaildir {
    path: Option<PathBuf>,
    poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutboxDir {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpenPgp {
    secret_keys: Option<Vec<PathBuf>>,
    passphrase_file: Option<PathBuf>,
    reporter_keyring: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    coordinator: Option<String>,
    backup: Option<String>,
    allow_plaintext_to_team: Option<bool>,
    max_signature_age: Option<String>,
    member: Option<Vec<RawMember>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    address: Option<String>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    ack_within: Option<String>,
    first_response_within: Option<String>,
    update_every: Option<String>,
    remind_before: Option<String>,
    re_escalate_every: Option<String>,
    escalate_to: Option<Vec<String>>,
    calendar: Option<String>,
    timezone: Option<String>,
    days: Option<Vec<String>>,
    hours: Option<String>,
    holidays: Option<Vec<String>>,
    close_if_silent: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpam {
    threshold: Option<f64>,
    default_rules: Option<bool>,
    digest_every: Option<String>,
    rule: Option<Vec<RawSpamRule>>,
    signals: Option<std::collections::BTreeMap<String, f64>>,
    trusted_authserv_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpamRule {
    name: Option<String>,
    pattern: Option<String>,
    score: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    auto_replies_per_sender_per_hour: Option<u32>,
    max_message_size: Option<String>,
    max_header_size: Option<String>,
    max_headers: Option<usize>,
    max_references: Option<usize>,
    max_mime_depth: Option<usize>,
    max_mime_parts: Option<usize>,
    max_decrypted_size: Option<String>,
    max_pkesk_attempts: Option<usize>,
    max_attempts: Option<u32>,
}

// ---------------------------------------------------------------- defaults

/// The ack body used when `[mailbox] ack_template` is not set. Placeholders:
/// `{case_id}`, `{subject}`, `{first_response_due}`, `{update_every}`,
/// `{team_address}`, `{fingerprint_note}`.
pub const DEFAULT_ACK_TEMPLATE: &str = "\
Hello,

thank you for your report. It has been received and recorded as case {case_id}.

What happens next:
- a member of the security team will answer you in detail by {first_response_due};
- after that, you will hear from us at least every {update_every} until the case is closed.

Please keep \"[{case_id}]\" in the subject of any follow-up so it reaches the same case,
and do not share details of the issue publicly until it has been resolved.
{fingerprint_note}
You can reach the team at {team_address}.

-- 
This message was sent automatically by secmail on behalf of the security team.
";

/// IMAP poll period without IDLE.
const DEFAULT_POLL: Duration = Duration::from_secs(60);
/// Maildir rescan period: one directory listing, cheap, and acks go out within
/// about a second of delivery.
const MAILDIR_POLL: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- stage 2

impl Config {
    /// Read and validate the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
        let mut cfg = Config::parse(&text, path.parent().unwrap_or(Path::new(".")))?;
        cfg.origin = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parse and validate config text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![format!("config syntax: {}", e.to_string().trim().replace('\n', " "))])
        })?;
        validate(raw, base)
    }

    /// The built-in default: a local Maildir in, `.eml` files out, SQLite beside
    /// them, all under `dir`. Needs no outside server (quick start).
    pub fn builtin(dir: &Path) -> Result<Config, ConfigErrors> {
        let text = r#"
[mailbox]
address = "security@localhost"
[store]
path = "secmail.db"
[maildir]
path = "maildir"
poll_interval = "1s"
[outbox_dir]
path = "outbox"
[team]
coordinator = "coordinator@localhost"
"#;
        let mut cfg = Config::parse(text, dir)?;
        cfg.origin = None;
        Ok(cfg)
    }
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errs: Vec<String> = Vec::new();
    let abs = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };

    // [mailbox]
    let rm = raw.mailbox.unwrap_or_default();
    let address = match rm.address {
        Some(a) => check_address("mailbox.address", a, &mut errs),
        None => {
            errs.push("mailbox.address: missing (the security@ address reporters write to)".into());
            String::new()
        }
    };
    let case_prefix = rm.case_prefix.unwrap_or_else(|| "SEC".into());
    if case_prefix.is_empty()
        || !case_prefix.chars().all(|c| c.is_ascii_alphanumeric())
        || case_prefix.len() > 16
    {
        errs.push(format!(
            "mailbox.case_prefix: {case_prefix:?} must be 1-16 ASCII letters or digits"
        ));
    }
    let ack_template = rm.ack_template.map(abs);
    let ack_template_text = match &ack_template {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                errs.push(format!("mailbox.ack_template: cannot read {}: {e}", p.display()));
                String::new()
            }
        },
        None => DEFAULT_ACK_TEMPLATE.to_string(),
    };
    let aliases = rm
        .aliases
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, a)| check_address(&format!("mailbox.aliases[{i}]"), a, &mut errs).to_ascii_lowercase())
        .collect();
    let mailbox = MailboxConfig {
        aliases,
        address,
        name: rm.name.unwrap_or_else(|| "Security Team".into()),
        case_prefix,
        ack_template,
        ack_template_text,
    };

    // [store]
    let store = StoreConfig {
        path: abs(raw
            .store
            .and_then(|s| s.path)
            .unwrap_or_else(|| PathBuf::from("/var/lib/secmail/secmail.db"))),
    };

    // source
    let source = match (raw.imap, raw.maildir) {
        (Some(_), Some(_)) => {
            errs.push("imap, maildir: configure exactly one source, not both".into());
            None
        }
        (None, None) => {
            errs.push("imap, maildir: no source configured (add [imap] or [maildir])".into());
            None
        }
        (Some(i), None) => validate_imap(i, &abs, &mut errs).map(SourceConfig::Imap),
        (None, Some(m)) => {
            let poll_interval = duration("maildir.poll_interval", m.poll_interval, MAILDIR_POLL, &mut errs);
            match m.path {
                Some(p) => Some(SourceConfig::Maildir(MaildirConfig { path: abs(p), poll_interval })),
                None => {
                    errs.push("maildir.path: missing".into());
                    None
                }
            }
        }
    };

    // transport
    let transport = match (raw.smtp, raw.outbox_dir) {
        (Some(_), Some(_)) => {
            errs.push("smtp, outbox_dir: configure exactly one transport, not both".into());
            None
        }
        (None, None) => {
            errs.push("smtp, outbox_dir: no transport configured (add [smtp] or [outbox_dir])".into());
            None
        }
        (Some(s), None) => validate_smtp(s, &abs, &mut errs).map(TransportConfig::Smtp),
        (None, Some(o)) => match o.path {
            Some(p) => Some(TransportConfig::OutboxDir(OutboxDirConfig { path: abs(p) })),
            None => {
                errs.push("outbox_dir.path: missing".into());
                None
            }
        },
    };

    // [openpgp]
    let ro = raw.openpgp.unwrap_or_default();
    let openpgp = OpenPgpConfig {
        secret_keys: ro.secret_keys.unwrap_or_default().into_iter().map(&abs).collect(),
        passphrase: ro
            .passphrase_file
            .map(&abs)
            .and_then(|p| read_secret("openpgp.passphrase_file", &p, &mut errs)),
        reporter_keyring: ro.reporter_keyring.map(&abs),
    };
    for (i, k) in openpgp.secret_keys.iter().enumerate() {
        check_private_file(&format!("openpgp.secret_keys[{i}]"), k, &mut errs);
    }

    // [team]
    let rt = raw.team.unwrap_or_default();
    let mut members = Vec::new();
    for (i, m) in rt.member.unwrap_or_default().into_iter().enumerate() {
        let key = format!("team.member[{i}].address");
        match m.address {
            Some(a) => members.push(MemberConfig {
                address: check_address(&key, a, &mut errs),
                key_file: m.key_file.map(&abs),
            }),
            None => errs.push(format!("{key}: missing")),
        }
    }
    let team = TeamConfig {
        coordinator: rt.coordinator.map(|a| check_address("team.coordinator", a, &mut errs)),
        backup: rt.backup.map(|a| check_address("team.backup", a, &mut errs)),
        allow_plaintext_to_team: rt.allow_plaintext_to_team.unwrap_or(false),
        max_signature_age: duration("team.max_signature_age", rt.max_signature_age, Duration::from_secs(7 * 24 * 3600), &mut errs),
        members,
    };
    if team.recipients().is_empty() {
        errs.push("team: nobody to notify (set team.coordinator or add a [[team.member]])".into());
    }

    // [policy]
    let rp = raw.policy.unwrap_or_default();
    let h = |n: u64| Duration::from_secs(n * 3600);
    let policy = PolicyConfig {
        ack_within: duration("policy.ack_within", rp.ack_within, h(24), &mut errs),
        first_response_within: duration(
            "policy.first_response_within",
            rp.first_response_within,
            h(48),
            &mut errs,
        ),
        update_every: duration("policy.update_every", rp.update_every, h(24 * 5), &mut errs),
        remind_before: duration("policy.remind_before", rp.remind_before, h(6), &mut errs),
        re_escalate_every: duration("policy.re_escalate_every", rp.re_escalate_every, h(24), &mut errs),
        escalate_to: rp
            .escalate_to
            .unwrap_or_else(|| vec!["coordinator".into(), "backup".into()]),
        calendar: match rp.calendar.as_deref() {
            None | Some("24x7") => Calendar::AllDay,
            Some("business") => {
                let days = rp.days.clone().unwrap_or_else(|| vec!["mon-fri".into()]);
                let hours = rp.hours.clone().unwrap_or_else(|| "09:00-17:00".into());
                let holidays = rp.holidays.clone().unwrap_or_default();
                match rp.timezone.as_deref() {
                    None => {
                        errs.push("policy.timezone: missing; calendar = \"business\" needs an IANA time zone such as \"Europe/Berlin\"".into());
                        Calendar::AllDay
                    }
                    Some(tz) => match crate::calendar::BusinessCalendar::new(tz, &days, &hours, &holidays) {
                        Ok(c) => Calendar::Business(std::sync::Arc::new(c)),
                        Err(lines) => {
                            errs.extend(lines);
                            Calendar::AllDay
                        }
                    },
                }
            }
            Some(other) => {
                errs.push(format!("policy.calendar: {other:?} must be \"24x7\" or \"business\""));
                Calendar::AllDay
            }
        },
        close_if_silent: duration("policy.close_if_silent", rp.close_if_silent, h(24 * 30), &mut errs),
    };
    for who in &policy.escalate_to {
        if who != "coordinator" && who != "backup" && !who.contains('@') {
            errs.push(format!(
                "policy.escalate_to: {who:?} must be \"coordinator\", \"backup\" or an address"
            ));
        }
    }

    // [spam]
    let rs = raw.spam.unwrap_or_default();
    let mut rules = Vec::new();
    for (i, r) in rs.rule.unwrap_or_default().into_iter().enumerate() {
        let key = format!("spam.rule[{i}]");
        let Some(pattern) = r.pattern else {
            errs.push(format!("{key}.pattern: missing"));
            continue;
        };
        if let Err(e) = regex::Regex::new(&pattern) {
            errs.push(format!(
                "{key}.pattern: invalid regex: {}",
                e.to_string().replace('\n', " ")
            ));
        }
        rules.push(SpamRuleConfig {
            name: r.name.unwrap_or_else(|| format!("rule{i}")),
            pattern,
            score: r.score.unwrap_or(1.0),
        });
    }
    let mut signals = Vec::new();
    for (name, score) in rs.signals.unwrap_or_default() {
        if !crate::spam::SIGNALS.iter().any(|(n, ..)| *n == name) {
            let known: Vec<&str> = crate::spam::SIGNALS.iter().map(|(n, ..)| *n).collect();
            errs.push(format!("spam.signals.{name}: unknown signal (known: {})", known.join(", ")));
        } else if !score.is_finite() {
            errs.push(format!("spam.signals.{name}: must be a finite number"));
        } else {
            signals.push((name, score));
        }
    }
    let trusted_authserv_id = rs.trusted_authserv_id.map(|s| s.trim().to_string());
    if trusted_authserv_id.as_deref().is_some_and(|s| s.is_empty() || s.contains(char::is_whitespace) || s.contains(';')) {
        errs.push("spam.trusted_authserv_id: must be one token, the authserv-id your MTA writes first in Authentication-Results (e.g. \"mx.example.org\")".into());
    }
    let spam = SpamConfig {
        threshold: rs.threshold.unwrap_or(5.0),
        default_rules: rs.default_rules.unwrap_or(true),
        rules,
        signals,
        trusted_authserv_id,
        digest_every: duration("spam.digest_every", rs.digest_every, h(24), &mut errs),
    };
    if !spam.threshold.is_finite() || spam.threshold <= 0.0 {
        errs.push("spam.threshold: must be a positive number".into());
    }

    // [limits]
    let rl = raw.limits.unwrap_or_default();
    let limits = LimitsConfig {
        auto_replies_per_sender_per_hour: rl.auto_replies_per_sender_per_hour.unwrap_or(5),
        max_message_size: size("limits.max_message_size", rl.max_message_size, 50 << 20, &mut errs),
        max_header_size: size("limits.max_header_size", rl.max_header_size, 1 << 20, &mut errs) as usize,
        max_headers: rl.max_headers.unwrap_or(1000),
        max_references: rl.max_references.unwrap_or(1000),
        max_mime_depth: rl.max_mime_depth.unwrap_or(50),
        max_mime_parts: rl.max_mime_parts.unwrap_or(1000),
        max_decrypted_size: size("limits.max_decrypted_size", rl.max_decrypted_size, 100 << 20, &mut errs),
        max_pkesk_attempts: rl.max_pkesk_attempts.unwrap_or(16),
        max_attempts: rl.max_attempts.unwrap_or(3),
    };
    for (key, v) in [
        ("limits.max_headers", limits.max_headers),
        ("limits.max_references", limits.max_references),
        ("limits.max_mime_depth", limits.max_mime_depth),
        ("limits.max_mime_parts", limits.max_mime_parts),
        ("limits.max_pkesk_attempts", limits.max_pkesk_attempts),
        ("limits.max_attempts", limits.max_attempts as usize),
    ] {
        if v == 0 {
            errs.push(format!("{key}: must be at least 1"));
        }
    }
    // mail-parser keeps one nested message per level on the stack; the
    // prescan is what keeps it shallow, so the bound itself must stay sane.
    if limits.max_mime_depth > 1000 {
        errs.push(format!("limits.max_mime_depth: {} is too deep to parse safely (at most 1000)", limits.max_mime_depth));
    }

    let disclosure = validate_disclosure(raw.disclosure.unwrap_or_default(), &mailbox.address, &abs, &mut errs);
    let rh = raw.health.unwrap_or_default();
    let health = HealthConfig {
        source_down_after: duration("health.source_down_after", rh.source_down_after, Duration::from_secs(600), &mut errs),
        alert_command: rh.alert_command.filter(|c| !c.trim().is_empty()),
        digest_every: match rh.digest_every.as_deref().map(str::trim) {
            Some("0" | "0s" | "off") => Duration::ZERO,
            _ => duration("health.digest_every", rh.digest_every, Duration::from_secs(7 * 86_400), &mut errs),
        },
        canary_every: match rh.canary_every.as_deref().map(str::trim) {
            Some("0" | "0s" | "off") => Duration::ZERO,
            _ => duration("health.canary_every", rh.canary_every, Duration::from_secs(3600), &mut errs),
        },
        canary_within: duration("health.canary_within", rh.canary_within, Duration::from_secs(900), &mut errs),
    };

    match (source, transport) {
        (Some(source), Some(transport)) if errs.is_empty() => Ok(Config {
            origin: None,
            mailbox,
            store,
            source,
            transport,
            openpgp,
            team,
            policy,
            spam,
            limits,
            disclosure,
            health,
        }),
        _ => Err(ConfigErrors(errs)),
    }
}

fn validate_disclosure(d: RawDisclosure, mailbox: &str, abs: &dyn Fn(PathBuf) -> PathBuf, errs: &mut Vec<String>) -> DisclosureConfig {
    let h = |n: u64| Duration::from_secs(n * 3600);
    let mut lists: Vec<DisclosureList> = Vec::new();
    for (i, l) in d.list.unwrap_or_default().into_iter().enumerate() {
        let key = |f: &str| format!("disclosure.list[{i}].{f}");
        let name = required(&key("name"), l.name, errs);
        let address = l.address.map(|a| check_address(&key("address"), a, errs));
        if address.is_none() {
            errs.push(format!("{}: missing", key("address")));
        }
        let key_file = match l.key_file {
            Some(p) => Some(abs(p)),
            None => {
                errs.push(format!("{}: missing (pre-notices go out encrypted to the list's key only)", key("key_file")));
                None
            }
        };
        let max_embargo = duration(&key("max_embargo"), l.max_embargo, h(24 * 14), errs);
        if let (Some(name), Some(address), Some(key_file)) = (name, address, key_file) {
            if lists.iter().any(|o| o.name.eq_ignore_ascii_case(&name)) {
                errs.push(format!("{}: {name:?} is listed twice", key("name")));
            }
            lists.push(DisclosureList { name, address, key_file, max_embargo });
        }
    }
    let not_security_text = match d.not_security_template {
        Some(p) => {
            let p = abs(p);
            match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) => {
                    errs.push(format!("disclosure.not_security_template: cannot read {}: {e}", p.display()));
                    String::new()
                }
            }
        }
        None => DEFAULT_NOT_SECURITY.to_string(),
    };
    let project = mailbox.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
    DisclosureConfig {
        announce: d.announce.map(|a| check_address("disclosure.announce", a, errs)),
        lists,
        prenotice_before: duration("disclosure.prenotice_before", d.prenotice_before, h(72), errs),
        remind_before: duration("disclosure.remind_before", d.remind_before, h(24), errs),
        not_security_text,
        vendor: d.vendor.unwrap_or_else(|| project.clone()),
        product: d.product.clone().or_else(|| d.package.clone()).unwrap_or_else(|| project.clone()),
        ecosystem: d.ecosystem.unwrap_or_default(),
        package: d.package.or(d.product).unwrap_or(project),
        repository: d.repository,
    }
}

fn validate_imap(
    i: RawImap,
    abs: &dyn Fn(PathBuf) -> PathBuf,
    errs: &mut Vec<String>,
) -> Option<ImapConfig> {
    let host = required("imap.host", i.host, errs);
    let tls = tls_mode("imap.tls", i.tls, Tls::Implicit, host.as_deref(), errs);
    let port = i.port.unwrap_or(if tls == Tls::Implicit { 993 } else { 143 });
    let username = required("imap.username", i.username, errs);
    let password = match i.password_file {
        Some(p) => read_secret("imap.password_file", &abs(p), errs),
        None => {
            errs.push("imap.password_file: missing (passwords are read from a file)".into());
            None
        }
    };
    let ca_file = i.ca_file.map(abs);
    if let Some(ca) = &ca_file
        && !ca.is_file() {
            errs.push(format!("imap.ca_file: {} does not exist", ca.display()));
        }
    let poll_interval = duration("imap.poll_interval", i.poll_interval, DEFAULT_POLL, errs);
    Some(ImapConfig {
        host: host?,
        port,
        tls,
        username: username?,
        password: password?,
        ca_file,
        folder: i.folder.unwrap_or_else(|| "INBOX".into()),
        processed_folder: i.processed_folder.unwrap_or_else(|| "secmail/processed".into()),
        quarantine_folder: i.quarantine_folder.unwrap_or_else(|| "secmail/quarantine".into()),
        idle: i.idle.unwrap_or(true),
        poll_interval,
    })
}

fn validate_smtp(
    s: RawSmtp,
    abs: &dyn Fn(PathBuf) -> PathBuf,
    errs: &mut Vec<String>,
) -> Option<SmtpConfig> {
    let host = required("smtp.host", s.host, errs);
    let tls = tls_mode("smtp.tls", s.tls, Tls::Starttls, host.as_deref(), errs);
    let port = s.port.unwrap_or(match tls {
        Tls::Implicit => 465,
        Tls::Starttls => 587,
        Tls::None => 25,
    });
    let password = s
        .password_file
        .map(abs)
        .and_then(|p| read_secret("smtp.password_file", &p, errs));
    if s.username.is_some() && password.is_none() && !errs.iter().any(|e| e.starts_with("smtp.password_file")) {
        errs.push("smtp.password_file: missing (smtp.username is set)".into());
    }
    let ca_file = s.ca_file.map(abs);
    if let Some(ca) = &ca_file
        && !ca.is_file() {
            errs.push(format!("smtp.ca_file: {} does not exist", ca.display()));
        }
    Some(SmtpConfig { host: host?, port, tls, username: s.username, password, ca_file })
}

fn required(key: &str, v: Option<String>, errs: &mut Vec<String>) -> Option<String> {
    match v {
        Some(s) if !s.trim().is_empty() => Some(s),
        _ => {
            errs.push(format!("{key}: missing"));
            None
        }
    }
}

fn check_address(key: &str, a: String, errs: &mut Vec<String>) -> String {
    if a.parse::<lettre::Address>().is_err() {
        errs.push(format!("{key}: {a:?} is not an email address"));
    }
    a
}

/// Whether `host` is a loopback name or address (where `tls = "none"` is allowed).
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

fn tls_mode(key: &str, v: Option<String>, default: Tls, host: Option<&str>, errs: &mut Vec<String>) -> Tls {
    let mode = match v.as_deref() {
        None => default,
        Some("implicit") => Tls::Implicit,
        Some("starttls") => Tls::Starttls,
        Some("none") => Tls::None,
        Some(other) => {
            errs.push(format!("{key}: {other:?} must be \"implicit\", \"starttls\" or \"none\""));
            default
        }
    };
    if mode == Tls::None
        && let Some(h) = host
            && !is_loopback(h) {
                errs.push(format!(
                    "{key}: \"none\" is only allowed for loopback hosts, not {h:?} (credentials and reports would cross the network in clear)"
                ));
            }
    mode
}

fn duration(key: &str, v: Option<String>, default: Duration, errs: &mut Vec<String>) -> Duration {
    match v {
        None => default,
        Some(s) => match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                errs.push(format!("{key}: must be longer than zero"));
                default
            }
            Err(e) => {
                errs.push(format!("{key}: {s:?} is not a duration ({e}); use e.g. \"48h\", \"5d\", \"30s\""));
                default
            }
        },
    }
}

/// Parse a size like `50MiB`, `100 MB`, `1024` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn size(key: &str, v: Option<String>, default: u64, errs: &mut Vec<String>) -> u64 {
    match v {
        None => default,
        Some(s) => parse_size(&s).filter(|n| *n > 0).unwrap_or_else(|| {
            errs.push(format!("{key}: {s:?} is not a size; use e.g. \"50MiB\""));
            default
        }),
    }
}

/// Refuse a secret file that group or others can access (SPEC §8).
fn check_private_file(key: &str, path: &Path, errs: &mut Vec<String>) -> bool {
    match std::fs::metadata(path) {
        Err(e) => {
            errs.push(format!("{key}: cannot read {}: {e}", path.display()));
            false
        }
        Ok(md) => {
            let mode = md.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                errs.push(format!(
                    "{key}: {} is accessible by group/others (mode {mode:04o}); run chmod 600 on it",
                    path.display()
                ));
                false
            } else {
                true
            }
        }
    }
}

fn read_secret(key: &str, path: &Path, errs: &mut Vec<String>) -> Option<Secret> {
    if !check_private_file(key, path, errs) {
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim_end_matches(['\n', '\r']).to_string();
            if s.is_empty() {
                errs.push(format!("{key}: {} is empty", path.display()));
                None
            } else {
                Some(Secret(s))
            }
        }
        Err(e) => {
            errs.push(format!("{key}: cannot read {}: {e}", path.display()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "hunter2\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn builtin_default_is_valid() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::builtin(d.path()).unwrap();
        assert!(matches!(c.source, SourceConfig::Maildir(_)));
        assert!(matches!(c.transport, TransportConfig::OutboxDir(_)));
        assert_eq!(c.mailbox.case_prefix, "SEC");
        assert_eq!(c.store.path, d.path().join("secmail.db"));
    }

    #[test]
    fn a_business_calendar_drives_deadlines_and_bad_values_get_a_line_each() {
        let d = tempfile::tempdir().unwrap();
        let base = "[mailbox]\naddress = \"security@example.org\"\n[outbox_dir]\npath = \"out\"\n[maildir]\npath = \"md\"\n[team]\ncoordinator = \"a@example.org\"\n";
        let ok = format!("{base}[policy]\ncalendar = \"business\"\ntimezone = \"Europe/Berlin\"\ndays = [\"mon-fri\"]\nhours = \"09:00-17:00\"\nholidays = [\"2026-12-25\"]\nfirst_response_within = \"8h\"\n");
        let c = Config::parse(&ok, d.path()).unwrap();
        // Thursday 2026-12-24 16:00 Berlin (15:00 UTC) + 8 working hours:
        // 1 h on Thursday, Friday 25th is a holiday, 7 h on Monday 28th: 16:00 Berlin.
        let due = crate::deadline::on_open(&c.policy, "2026-12-24T15:00:00Z".parse().unwrap())[1].1;
        assert_eq!(due, "2026-12-28T15:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        let bad = format!("{base}[policy]\ncalendar = \"business\"\ntimezone = \"Mars/Olympus\"\nhours = \"17:00-09:00\"\n");
        let e = Config::parse(&bad, d.path()).unwrap_err();
        assert!(e.0.iter().any(|l| l.starts_with("policy.timezone:")), "{e}");
        assert!(e.0.iter().any(|l| l.starts_with("policy.hours:")), "{e}");
        let missing = format!("{base}[policy]\ncalendar = \"business\"\n");
        assert!(Config::parse(&missing, d.path()).unwrap_err().to_string().contains("policy.timezone: missing"));
    }

    /// See: issue 15. `mailbox.aliases`, `spam.trusted_authserv_id` and
    /// `[spam.signals]`, with one line per bad value.
    #[test]
    fn aliases_trusted_authserv_id_and_signals() {
        let d = tempfile::tempdir().unwrap();
        let base = "[outbox_dir]\npath = \"out\"\n[maildir]\npath = \"md\"\n[team]\ncoordinator = \"a@example.org\"\n";
        let ok = format!(
            "{base}[mailbox]\naddress = \"security@example.org\"\naliases = [\"Secure@Example.org\"]\n\
             [spam]\ntrusted_authserv_id = \"mx.example.org\"\n[spam.signals]\nlink-density = 0.0\nhtml-only = 2.5\n"
        );
        let c = Config::parse(&ok, d.path()).unwrap();
        assert!(c.mailbox.is_ours("secure@example.org") && c.mailbox.is_ours("SECURITY@example.org"));
        assert!(!c.mailbox.is_ours("alice@example.org"));
        for addr in ["security@example.org", "secure@example.org", "postmaster@elsewhere.example", "MAILER-DAEMON@mx.example"] {
            assert!(c.mailbox.never_send_to(addr).is_some(), "{addr}");
        }
        assert_eq!(c.mailbox.never_send_to("alice@example.org"), None);
        assert_eq!(c.spam.trusted_authserv_id.as_deref(), Some("mx.example.org"));
        assert_eq!(c.spam.signals, [("html-only".to_string(), 2.5), ("link-density".to_string(), 0.0)]);
        let bad = format!(
            "{base}[mailbox]\naddress = \"security@example.org\"\naliases = [\"not an address\"]\n\
             [spam]\ntrusted_authserv_id = \"mx; spf=pass\"\n[spam.signals]\nlink_density = 0.0\n"
        );
        let e = Config::parse(&bad, d.path()).unwrap_err();
        for key in ["mailbox.aliases[0]:", "spam.trusted_authserv_id:", "spam.signals.link_density: unknown signal"] {
            assert!(e.0.iter().any(|l| l.starts_with(key)), "{key}: {e}");
        }
        let unset = Config::parse(&format!("{base}[mailbox]\naddress = \"security@example.org\"\n"), d.path()).unwrap();
        assert_eq!(unset.spam.trusted_authserv_id, None, "unset: no Authentication-Results is trusted");
    }

    #[test]
    fn every_problem_gets_its_own_line() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"
[mailbox]
address = "not an address"
case_prefix = "S E C"
[imap]
host = "imap.example.org"
tls = "none"
poll_interval = "soon"
[policy]
calendar = "weekly"
"#;
        let e = Config::parse(text, d.path()).unwrap_err();
        let joined = e.to_string();
        for want in [
            "mailbox.address:",
            "mailbox.case_prefix:",
            "imap.tls: \"none\" is only allowed for loopback",
            "imap.username: missing",
            "imap.password_file: missing",
            "imap.poll_interval:",
            "smtp, outbox_dir: no transport",
            "policy.calendar:",
            "team: nobody to notify",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
        assert!(e.0.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn secrets_readable_by_others_are_refused_and_never_printed() {
        let d = tempfile::tempdir().unwrap();
        let open = secret_file(d.path(), "open.pass", 0o644);
        let closed = secret_file(d.path(), "closed.pass", 0o600);
        let text = |p: &Path| {
            format!(
                r#"
[mailbox]
address = "security@example.org"
[imap]
host = "127.0.0.1"
tls = "none"
username = "security@example.org"
password_file = "{}"
[outbox_dir]
path = "out"
[team]
coordinator = "alice@example.org"
"#,
                p.display()
            )
        };
        let e = Config::parse(&text(&open), d.path()).unwrap_err();
        assert!(e.to_string().contains("accessible by group/others (mode 0644)"), "{e}");
        let c = Config::parse(&text(&closed), d.path()).unwrap();
        let SourceConfig::Imap(i) = &c.source else { panic!() };
        assert_eq!(i.password.expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn the_example_config_is_valid_but_for_its_secret_files() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
        let e = Config::parse(&text, Path::new("/etc/secmail")).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.0.iter().all(|l| l.contains("password_file") && l.contains("cannot read")), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MiB"), Some(50 << 20));
        assert_eq!(parse_size("100 MB"), Some(100_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("lots"), None);
    }
}
