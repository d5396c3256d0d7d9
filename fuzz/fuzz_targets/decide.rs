//! `decide`: parse, judge spam, then `case::decide` under contexts varied by
//! the input, plus the subject helpers (`mail::subject_tag`,
//! `compose::case_subject`).
//!
//! The context comes from the LAST bytes of the input (the body's tail, which
//! mutations can change without breaking the headers); the whole input is the
//! message.
//!
//! Invariants: no panic; `decide` returns a non-empty list; an `Ack` goes only to
//! the message's reply address and only when `compose::check_address` accepts
//! it, never for own/automatic mail, new spam, a forged sender or one of our
//! own addresses; `case_subject` is one tagged line.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secmail::case::{self, Action, Context, KnownCase, TeamStatus};
use secmail::config::Config;
use secmail::mail::{self, ParseLimits};
use secmail::spam::SpamFilter;
use secmail::compose;

struct Env {
    _dir: tempfile::TempDir,
    cfg: Config,
    filter: SpamFilter,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::builtin(dir.path()).expect("builtin config");
        let filter = SpamFilter::new(&cfg.spam).expect("spam filter");
        Env { _dir: dir, cfg, filter }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let prefix = env.cfg.mailbox.case_prefix.as_str();
    let msg = mail::parse(data, &ParseLimits::default());

    // Control bytes from the tail.
    let mut ctl = [0u8; 4];
    for (i, b) in data.iter().rev().take(4).enumerate() {
        ctl[i] = *b;
    }
    let flags = ctl[0];
    let reporter = match (flags >> 4) & 3 {
        0 => msg.from.clone().unwrap_or_default(),
        1 => msg.reply_to.clone().unwrap_or_default(),
        2 => "r@example.org".to_string(),
        _ => msg.from.clone().map(|f| f.to_ascii_uppercase()).unwrap_or_default(),
    };
    let id = i64::from(ctl[1]) - 8;
    let tag = mail::subject_tag(&msg.subject, prefix);
    const STATES: [&str; 4] = ["new", "triaged", "waiting-on-reporter", "closed"];
    let known = |id: i64| KnownCase { id, reporter: reporter.clone(), state: STATES[usize::from(ctl[2] >> 6)].to_string() };
    let by_reference = (flags & 1 != 0).then(|| known(id));
    let by_tag = if flags & 2 != 0 { tag.or(Some(id)).map(known) } else { None };

    let mut input = secmail::daemon::spam_input(&msg, &env.cfg.mailbox);
    input.on_existing_case = by_reference.is_some() || by_tag.is_some();
    let verdict = env.filter.judge(&input);
    assert!(verdict.score.is_finite(), "spam score {}", verdict.score);

    let ctx = Context {
        by_reference,
        by_tag,
        own_message: flags & 4 != 0 && flags & 0x80 != 0,
        team: if flags & 8 != 0 { TeamStatus::Refused { why: "not signed".into(), member: None } } else { TeamStatus::NotTeam },
        alert_to: vec!["coordinator@example.org".into()],
        team_addresses: vec!["member@example.org".into()],
        auto_replies_last_hour: u32::from(ctl[2] & 7),
        auto_reply_limit: u32::from(ctl[3] & 7),
        spam: verdict.spam || flags & 0x40 != 0,
        forged_from: msg.from.as_deref().is_some_and(|f| env.cfg.mailbox.is_ours(f)),
        unauthenticated: verdict.unauthenticated.clone().or_else(|| (flags & 0x20 != 0).then(|| "DMARC fails".into())),
        reply_refused: msg.reply_address().and_then(|a| env.cfg.mailbox.never_send_to(a)),
    };
    let actions = case::decide(&msg, &ctx);
    assert!(!actions.is_empty(), "decide returned no action for {ctx:?}");
    for a in &actions {
        if let Action::Ack { to } = a {
            assert!(compose::check_address(to).is_ok(), "Ack to an address check_address refuses: {to:?}");
            assert_eq!(Some(to.as_str()), msg.reply_address(), "Ack not to the reply address");
            assert!(!ctx.own_message, "Ack on our own message");
            assert!(msg.automatic.is_none(), "Ack on automatic mail: {:?}", msg.automatic);
            assert!(ctx.by_reference.is_none() && ctx.by_tag.is_none(), "Ack on an existing case");
            assert!(!ctx.spam, "Ack on spam");
            assert!(!ctx.forged_from && ctx.unauthenticated.is_none() && ctx.reply_refused.is_none(), "Ack to a forged or refused sender: {ctx:?}");
        }
    }

    for (n, reply) in [(id, true), (tag.unwrap_or(1), false), (i64::MAX, true)] {
        let s = compose::case_subject(prefix, n, &msg.subject, reply);
        let want = format!("[{}] ", case::case_id(prefix, n));
        assert!(s.starts_with(&want), "case_subject {s:?} does not start with {want:?}");
        assert!(!s.chars().any(char::is_control), "case_subject has a control character: {s:?}");
    }
    let _ = mail::subject_tag(&String::from_utf8_lossy(data), prefix);
});
