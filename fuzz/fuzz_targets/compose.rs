//! `compose`: parse, then build the ack (to the reply address, when
//! `compose::check_address` accepts it) and the team notices, without a seal.
//!
//! Invariant: the composed header block (up to the first empty line) has no
//! `Bcc:` line, and every line is a continuation (space/tab first) or
//! `Name: value` with a Name secmail writes: decoded text never injects a header.
#![no_main]

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use secmail::case::{CaseView, Notice};
use secmail::compose::{self, AckNote, Content};
use secmail::config::Config;
use secmail::mail::{self, ParseLimits};

const ALLOWED: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-Secmail-Case",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
];

struct Env {
    _dir: tempfile::TempDir,
    /// `allow_plaintext_to_team` false, then true.
    cfgs: [Config; 2],
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::builtin(dir.path()).expect("builtin config");
        let mut open = cfg.clone();
        open.team.allow_plaintext_to_team = true;
        Env { _dir: dir, cfgs: [cfg, open] }
    })
}

fn check_headers(what: &str, raw: &[u8]) {
    let end = memfind(raw, b"\r\n\r\n").map(|i| i + 2).unwrap_or(raw.len());
    let head = &raw[..end];
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let shown = String::from_utf8_lossy(line);
        assert!(!line.contains(&b'\r'), "{what}: bare CR in a header line {shown:?}\n{}", String::from_utf8_lossy(head));
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        assert!(
            !line.to_ascii_lowercase().starts_with(b"bcc:"),
            "{what}: Bcc header injected: {shown:?}\n{}",
            String::from_utf8_lossy(head)
        );
        let name = line.split(|b| *b == b':').next().unwrap_or(line);
        let ok = line.len() > name.len() + 1
            && line[name.len() + 1] == b' '
            && ALLOWED.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(name));
        assert!(ok, "{what}: unexpected header line {shown:?}\n{}", String::from_utf8_lossy(head));
    }
}

fn memfind(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let msg = mail::parse(data, &ParseLimits::default());
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let sel = data.last().copied().unwrap_or(0);
    let cfg = &env.cfgs[usize::from(sel & 1)];
    let case = CaseView {
        id: i64::from(sel >> 1) + 1,
        state: "new".into(),
        reporter: msg.reply_address().unwrap_or("(none)").to_string(),
        subject: msg.subject.clone(),
    };

    if let Some(to) = msg.reply_address()
        && compose::check_address(to).is_ok()
    {
        let fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
        let note = match sel % 4 {
            0 => AckNote::None,
            1 => AckNote::Decrypted,
            2 => AckNote::Unreadable { team_fingerprint: Some(fpr) },
            _ => AckNote::Unreadable { team_fingerprint: None },
        };
        let mid = compose::new_message_id(&cfg.mailbox.address);
        let a = compose::ack(cfg, &case, &msg, to, now, note, None, mid, now)
            .unwrap_or_else(|e| panic!("ack to an accepted address {to:?} failed: {e:#}"));
        check_headers("ack", &a.raw);
    }

    let problems = vec![msg.subject.clone(), msg.malformed.clone().unwrap_or_default()];
    let content = Content {
        text: &msg.text,
        protected_subject: Some(&msg.subject),
        crypto: "not encrypted",
        problems: &problems,
    };
    let notices = [
        Notice::NewCase,
        Notice::FollowUp,
        Notice::Flagged(format!("subject tag from {}", msg.from.as_deref().unwrap_or(""))),
        Notice::UnverifiedTeamMail("not signed".into()),
    ];
    let notice = &notices[usize::from(sel >> 1) % notices.len()];
    let n = compose::team_notice(cfg, &case, &msg, &content, notice, "coordinator@localhost", None, "n.1@localhost".into(), now)
        .unwrap_or_else(|e| panic!("team notice failed: {e:#}"));
    check_headers("team_notice", &n.raw);
});
