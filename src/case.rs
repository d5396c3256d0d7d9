//! Case rules (pure): given a parsed message and what the store knows about it,
//! decide what it gets (SPEC §5). The daemon performs the returned [`Action`]s in
//! one store transaction; nothing here touches the network, the disk or the clock.

use crate::mail::Parsed;

/// Case states (SPEC §2).
pub const STATES: &[&str] = &[
    "new",
    "acknowledged",
    "triaged",
    "confirmed",
    "fixing",
    "embargoed",
    "disclosed",
    "closed",
    "not-security",
    "duplicate",
];

/// `SEC-42` from prefix and number.
pub fn case_id(prefix: &str, n: i64) -> String {
    format!("{prefix}-{n}")
}

/// The number in `SEC-42` (prefix matched case-insensitively), or a bare `42`.
pub fn parse_case_id(prefix: &str, s: &str) -> Option<i64> {
    let s = s.trim();
    let num = match s.split_once('-') {
        Some((p, n)) if p.eq_ignore_ascii_case(prefix) => n,
        Some(_) => return None,
        None => s,
    };
    num.parse().ok().filter(|n| *n > 0)
}

/// A case as the pure core sees it (what mail about it says).
#[derive(Debug, Clone)]
pub struct CaseView {
    pub id: i64,
    pub state: String,
    pub reporter: String,
    pub subject: String,
}

/// What the store knows about a case a message may belong to.
#[derive(Debug, Clone)]
pub struct KnownCase {
    pub id: i64,
    pub reporter: String,
}

/// Everything the rules look at besides the message.
#[derive(Debug, Clone)]
pub struct Context {
    /// The case found by In-Reply-To/References (incoming or our own Message-IDs).
    pub by_reference: Option<KnownCase>,
    /// The case named by a `[SEC-n]` subject tag, if it exists.
    pub by_tag: Option<KnownCase>,
    /// The Message-ID is one secmail itself generated (a loop).
    pub own_message: bool,
    /// The sender is on the team (member, coordinator or backup).
    pub sender_is_team: bool,
    /// Automatic replies already sent to the reply address in the last hour.
    pub auto_replies_last_hour: u32,
    /// `limits.auto_replies_per_sender_per_hour`.
    pub auto_reply_limit: u32,
    /// The spam filter judged this message spam (only consulted for new mail:
    /// a reply on a case always reaches the team).
    pub spam: bool,
}

/// Why the team is being told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new case was opened.
    NewCase,
    /// More mail on a case from its reporter.
    FollowUp,
    /// Mail on a case that needs a human look (unknown sender on a tag, ...).
    Flagged(String),
    /// Mail from a team address that is not (yet) verified by signature: nothing
    /// from it is applied or relayed (SPEC §5.2).
    UnverifiedTeamMail,
}

/// One thing the daemon must do for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store the message without a case, and do nothing else.
    Ignore { reason: String },
    /// Open a new case for this message (the reporter is its reply address).
    OpenCase,
    /// Store the message on an existing case.
    Append { case_id: i64, flag: Option<String> },
    /// Add an event to the case this message ends up on.
    Event { kind: &'static str, detail: String },
    /// Acknowledge the report to this address (RFC 3834 auto-reply).
    Ack { to: String },
    /// Tell the team.
    Notify(Notice),
    /// Hold the message in quarantine: no case, no ack (SPEC §5.4).
    Quarantine,
}

/// Decide what a message gets (SPEC §5). A message over a `[limits]` bound
/// is kept like any other, with an `over-limit` event naming the bound.
pub fn decide(msg: &Parsed, ctx: &Context) -> Vec<Action> {
    let mut out = decide_kind(msg, ctx);
    if let Some(b) = &msg.over_limit
        && let Some(pos) = out.iter().position(|a| matches!(a, Action::OpenCase | Action::Append { .. }))
    {
        out.insert(pos + 1, Action::Event { kind: "over-limit", detail: format!("{b}; kept raw, body not parsed") });
    }
    out
}

fn decide_kind(msg: &Parsed, ctx: &Context) -> Vec<Action> {
    use Action::*;
    // §5.1: our own mail coming back, automatic or bulk mail: never answered.
    if ctx.own_message {
        return vec![Ignore { reason: "our own message (loop)".into() }];
    }
    if let Some(why) = &msg.automatic {
        let case = ctx.by_reference.as_ref().or(ctx.by_tag.as_ref());
        return match case {
            Some(c) => vec![
                Append { case_id: c.id, flag: Some(format!("automatic: {why}")) },
                Event { kind: "automatic-mail", detail: format!("automatic mail recorded ({why}); not answered") },
            ],
            None => vec![Ignore { reason: format!("automatic mail: {why}") }],
        };
    }

    // §5.2/§5.3: mail on an existing case.
    if let Some(c) = &ctx.by_reference {
        return on_case(msg, ctx, c, false);
    }
    if let Some(c) = &ctx.by_tag {
        return on_case(msg, ctx, c, true);
    }

    // §5.4: new mail judged spam.
    if ctx.spam {
        return vec![Quarantine];
    }

    // §5.5: a new report.
    let mut out = vec![OpenCase];
    if let Some(why) = &msg.malformed {
        out.push(Event { kind: "malformed", detail: why.clone() });
    }
    match msg.reply_address() {
        None => out.push(Event { kind: "no-ack", detail: "no reply address; ack not sent".into() }),
        Some(_) if ctx.auto_replies_last_hour >= ctx.auto_reply_limit => out.push(Event {
            kind: "no-ack",
            detail: format!(
                "ack suppressed: {} automatic replies to this sender in the last hour (limit {})",
                ctx.auto_replies_last_hour, ctx.auto_reply_limit
            ),
        }),
        // An address the SMTP library refuses will never work: no ack, and
        // the team learns why (issue 7: it used to be retried for ever).
        Some(to) => match crate::compose::check_address(to) {
            Ok(()) => out.push(Ack { to: to.to_string() }),
            Err(why) => out.push(Event { kind: "no-ack", detail: format!("ack not sent: {why}") }),
        },
    }
    out.push(Notify(Notice::NewCase));
    out
}

fn on_case(msg: &Parsed, ctx: &Context, c: &KnownCase, by_tag_only: bool) -> Vec<Action> {
    use Action::*;
    let from = msg.from.as_deref().unwrap_or("");
    if ctx.sender_is_team {
        let why = "team mail without a verified OpenPGP signature: stored, nothing applied or relayed";
        return vec![
            Append { case_id: c.id, flag: Some("unverified-team-mail".into()) },
            Event { kind: "unverified-team-mail", detail: format!("from {from}: {why}") },
            Notify(Notice::UnverifiedTeamMail),
        ];
    }
    let is_reporter = !from.is_empty()
        && (from.eq_ignore_ascii_case(&c.reporter)
            || msg.reply_to.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(&c.reporter)));
    if by_tag_only && !is_reporter {
        let why = format!("subject tag from {from}, who is neither the reporter nor the team");
        return vec![
            Append { case_id: c.id, flag: Some("unknown-sender-tag".into()) },
            Event { kind: "flagged", detail: why.clone() },
            Notify(Notice::Flagged(why)),
        ];
    }
    vec![
        Append { case_id: c.id, flag: None },
        Event { kind: "message", detail: format!("follow-up from {from}") },
        Notify(Notice::FollowUp),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{ParseLimits, parse};

    fn ctx() -> Context {
        Context {
            by_reference: None,
            by_tag: None,
            own_message: false,
            sender_is_team: false,
            auto_replies_last_hour: 0,
            auto_reply_limit: 5,
            spam: false,
        }
    }

    fn msg(extra: &str) -> Parsed {
        parse(
            format!("{extra}From: r@example.org\r\nSubject: XSS\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n").as_bytes(),
            &ParseLimits::default(),
        )
    }

    #[test]
    fn new_report_opens_acks_and_notifies() {
        assert_eq!(
            decide(&msg(""), &ctx()),
            vec![Action::OpenCase, Action::Ack { to: "r@example.org".into() }, Action::Notify(Notice::NewCase)]
        );
    }

    #[test]
    fn ack_goes_to_reply_to() {
        let a = decide(&msg("Reply-To: other@example.org\r\n"), &ctx());
        assert!(a.contains(&Action::Ack { to: "other@example.org".into() }));
    }

    #[test]
    fn rate_limit_suppresses_the_ack_but_opens_the_case() {
        let a = decide(&msg(""), &Context { auto_replies_last_hour: 5, ..ctx() });
        assert_eq!(a[0], Action::OpenCase);
        assert!(!a.iter().any(|x| matches!(x, Action::Ack { .. })));
    }

    #[test]
    fn automatic_mail_is_never_answered() {
        let a = decide(&msg("Auto-Submitted: auto-replied\r\n"), &ctx());
        assert!(matches!(&a[..], [Action::Ignore { .. }]));
        let known = KnownCase { id: 3, reporter: "r@example.org".into() };
        let a = decide(&msg("Auto-Submitted: auto-replied\r\n"), &Context { by_reference: Some(known), ..ctx() });
        assert!(matches!(a[0], Action::Append { case_id: 3, .. }));
        assert!(!a.iter().any(|x| matches!(x, Action::Ack { .. } | Action::Notify(_))));
        assert!(matches!(&decide(&msg(""), &Context { own_message: true, ..ctx() })[..], [Action::Ignore { .. }]));
    }

    #[test]
    fn follow_ups_and_strangers_on_a_tag() {
        let known = KnownCase { id: 7, reporter: "r@example.org".into() };
        let a = decide(&msg(""), &Context { by_tag: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: None });
        let stranger = parse(b"From: eve@evil.example\r\nSubject: [SEC-7] hi\r\nMessage-ID: <e@x>\r\n\r\nx\r\n", &ParseLimits::default());
        let a = decide(&stranger, &Context { by_tag: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: Some("unknown-sender-tag".into()) });
        assert!(matches!(a[2], Action::Notify(Notice::Flagged(_))));
        // By reference, anyone's reply is a follow-up (they saw the thread).
        let a = decide(&stranger, &Context { by_reference: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: None });
        let a = decide(&msg(""), &Context { by_reference: Some(known), sender_is_team: true, ..ctx() });
        assert!(a.contains(&Action::Notify(Notice::UnverifiedTeamMail)));
    }

    #[test]
    fn spam_is_held_but_never_a_reply_on_a_case() {
        assert_eq!(decide(&msg(""), &Context { spam: true, ..ctx() }), vec![Action::Quarantine]);
        let known = KnownCase { id: 2, reporter: "r@example.org".into() };
        let a = decide(&msg(""), &Context { spam: true, by_reference: Some(known), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 2, flag: None });
    }

    /// See: issue 7 (an address lettre refuses made the message retry for ever).
    #[test]
    fn a_refused_reply_address_opens_a_case_without_an_ack() {
        for from in ["taro..yamada@docomo.ne.jp", "\"john doe\"@example.org"] {
            let m = parse(format!("From: {from}\r\nSubject: XSS\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n").as_bytes(), &ParseLimits::default());
            let a = decide(&m, &ctx());
            assert_eq!(a[0], Action::OpenCase, "{from}");
            assert!(!a.iter().any(|x| matches!(x, Action::Ack { .. })), "{from}: {a:?}");
            assert!(a.iter().any(|x| matches!(x, Action::Event { kind: "no-ack", .. })), "{from}: {a:?}");
            assert!(a.contains(&Action::Notify(Notice::NewCase)));
        }
    }

    #[test]
    fn over_limit_mail_is_kept_on_a_case_and_flagged() {
        let ids: String = (0..2000).map(|i| format!(" <{i}@x>")).collect();
        let m = msg(&format!("References:{ids}\r\n"));
        let a = decide(&m, &ctx());
        assert_eq!(a[0], Action::OpenCase);
        assert!(matches!(&a[1], Action::Event { kind: "over-limit", detail } if detail.contains("limits.max_references")), "{a:?}");
        assert!(a.iter().any(|x| matches!(x, Action::Ack { .. })), "the header still addresses the ack");
    }

    #[test]
    fn case_ids() {
        assert_eq!(case_id("SEC", 42), "SEC-42");
        assert_eq!(parse_case_id("SEC", "sec-42"), Some(42));
        assert_eq!(parse_case_id("SEC", "42"), Some(42));
        assert_eq!(parse_case_id("SEC", "BUG-42"), None);
        assert_eq!(parse_case_id("SEC", "SEC-0"), None);
    }
}
