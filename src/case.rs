//! Case rules (pure): given a parsed message and what the store knows about it,
//! decide what it gets (SPEC §5). The daemon performs the returned [`Action`]s in
//! one store transaction; nothing here touches the network, the disk or the clock.

use crate::mail::Parsed;

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
    /// The case's state (SPEC §2 spelling).
    pub state: String,
}

/// What a message on a case is, as far as the team is concerned (see
/// [`crate::team`]).
#[derive(Debug, Clone, Default)]
pub enum TeamStatus {
    /// Neither from a team address nor signed by a member's key.
    #[default]
    NotTeam,
    /// Signed over the whole message by a member's configured key, not a
    /// replay: its commands and text, or why a command line is refused.
    Verified { signer: crate::team::Verified, mail: Result<crate::commands::TeamMail, crate::commands::CommandError> },
    /// Claims to speak for the team and is not verified (or is a replay):
    /// why, and the member it names, if any (they are told).
    Refused { why: String, member: Option<String> },
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
    /// The team check of this message (only consulted for mail on a case).
    pub team: TeamStatus,
    /// Who hears about refused team mail besides the member it names: the
    /// coordinator (or everyone when there is none).
    pub alert_to: Vec<String>,
    /// Everyone on the team (members, coordinator, backup).
    pub team_addresses: Vec<String>,
    /// Automatic replies already sent to the reply address in the last hour.
    pub auto_replies_last_hour: u32,
    /// `limits.auto_replies_per_sender_per_hour`.
    pub auto_reply_limit: u32,
    /// The spam filter judged this message spam (only consulted for new mail:
    /// a reply on a case always reaches the team).
    pub spam: bool,
    /// `From` is our own address or an alias and the message is not one of
    /// ours: forged, held for a human (never answered, never a case).
    pub forged_from: bool,
    /// Why the sender may be forged (trusted `Authentication-Results`): a new
    /// case is opened but gets no ack ([`crate::spam::Verdict::unauthenticated`]).
    pub unauthenticated: Option<String>,
    /// Why the reply address must never get mail from us (our own mailbox,
    /// an alias, a postmaster or mailer-daemon), if so.
    pub reply_refused: Option<&'static str>,
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
    /// Mail that claims to speak for the team but is not verified by a member's
    /// key (why): nothing from it is applied or relayed (SPEC §5.2).
    UnverifiedTeamMail(String),
    /// A verified team member answered (`relayed`: the answer went to the
    /// reporter; otherwise it was an internal `#comment` or commands only).
    TeamAnswer { by: String, relayed: bool, applied: Vec<String> },
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
    /// Tell these addresses only.
    Tell { to: Vec<String>, notice: Notice },
    /// Record the team signature this mail was verified by (a second use of
    /// it is a replay) and who signed the stored message.
    RecordSignature,
    /// Apply one verified team command (SPEC §6).
    Apply(crate::commands::Command),
    /// Relay the verified answer (this text, the mail's attachments) to the
    /// case's reporter.
    Relay { text: String },
    /// Tell a member their mail's command was refused (nothing applied).
    CommandRefused { to: String, error: String },
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
    // Our own address in From on mail that is not ours: forged. Held for a
    // human, whatever it claims to answer (a verified team signature aside).
    if ctx.forged_from && !matches!(ctx.team, TeamStatus::Verified { .. }) {
        return vec![Quarantine];
    }
    if let Some(why) = &msg.automatic {
        let case = ctx.by_reference.as_ref().or(ctx.by_tag.as_ref());
        return match case {
            Some(c) => vec![
                Append { case_id: c.id, flag: Some(format!("automatic: {why}")) },
                Event { kind: "automatic-mail", detail: format!("automatic mail recorded ({why}); not answered") },
            ],
            // Bulk spam often carries List-Unsubscribe: held, it is listed
            // and digested for a human, like any other spam.
            None if ctx.spam => vec![Quarantine],
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
        Some(to) if ctx.reply_refused.is_some() => out.push(Event {
            kind: "no-ack",
            detail: format!("ack not sent: {to} is {}; secmail never writes to it", ctx.reply_refused.unwrap_or("ours")),
        }),
        Some(_) if ctx.unauthenticated.is_some() => out.push(Event {
            kind: "ack-withheld",
            detail: format!("ack withheld: {}", ctx.unauthenticated.as_deref().unwrap_or("")),
        }),
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
    match &ctx.team {
        TeamStatus::Verified { signer, mail } => return verified(c, ctx, signer, mail),
        TeamStatus::Refused { why, member } => {
            let mut to: Vec<String> = member.iter().cloned().collect();
            for a in &ctx.alert_to {
                if !to.iter().any(|t| t.eq_ignore_ascii_case(a)) {
                    to.push(a.clone());
                }
            }
            return vec![
                Append { case_id: c.id, flag: Some("unverified-team-mail".into()) },
                Event { kind: "unverified-team-mail", detail: format!("from {from}: {why}; nothing applied or relayed") },
                Tell { to, notice: Notice::UnverifiedTeamMail(why.clone()) },
            ];
        }
        TeamStatus::NotTeam => {}
    }
    let is_reporter = !from.is_empty()
        && (from.eq_ignore_ascii_case(&c.reporter)
            || msg.reply_to.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(&c.reporter)));
    if !is_reporter {
        // Neither the reporter nor (verified) the team: kept and shown, never
        // merged silently, whether it found the case by tag or by reference.
        let (flag, how) = if by_tag_only { ("unknown-sender-tag", "subject tag") } else { ("unknown-sender", "reply") };
        let why = format!("{how} from {from}, who is neither the reporter nor the team");
        return vec![
            Append { case_id: c.id, flag: Some(flag.into()) },
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

/// A verified team mail on a case: its commands are applied (all or none),
/// its text relayed to the reporter unless it is internal, the other members
/// get a copy. An invalid command applies nothing and tells the member.
fn verified(c: &KnownCase, ctx: &Context, signer: &crate::team::Verified, mail: &Result<crate::commands::TeamMail, crate::commands::CommandError>) -> Vec<Action> {
    use Action::*;
    let who = &signer.member;
    let mut out = vec![
        Append { case_id: c.id, flag: Some(format!("team: signed by {who}")) },
        RecordSignature,
        Event {
            kind: "team-mail",
            detail: format!(
                "signed by {who} with their configured key {} at {}{}{}",
                signer.fingerprint,
                signer.signed_at.to_rfc3339(),
                if signer.encrypted { "; encrypted" } else { "" },
                signer.from_differs.as_deref().map(|f| format!("; sent from {f}")).unwrap_or_default()
            ),
        },
    ];
    let checked = mail.as_ref().map_err(|e| e.to_string()).and_then(|m| {
        let current = c.state.parse::<crate::commands::State>().map_err(|e| format!("the case is in an unknown state: {e}"))?;
        crate::commands::state_after(current, &m.commands).map(|_| m)
    });
    let m = match checked {
        Ok(m) => m,
        Err(error) => {
            out.push(Event { kind: "command-refused", detail: format!("{error}; nothing from this mail was applied or relayed") });
            out.push(CommandRefused { to: who.clone(), error });
            return out;
        }
    };
    for cmd in &m.commands {
        out.push(Apply(cmd.clone()));
    }
    let relayed = !m.internal && m.advisory.is_none() && !m.relay_text.trim().is_empty();
    if relayed {
        out.push(Relay { text: m.relay_text.clone() });
    }
    let others: Vec<String> = ctx.team_addresses.iter().filter(|a| !a.eq_ignore_ascii_case(who)).cloned().collect();
    let applied = m.commands.iter().map(|c| c.to_string()).collect();
    out.push(Tell { to: others, notice: Notice::TeamAnswer { by: who.clone(), relayed, applied } });
    out
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
            team: TeamStatus::NotTeam,
            alert_to: vec!["coord@example.org".into()],
            team_addresses: vec!["coord@example.org".into(), "alice@example.org".into()],
            auto_replies_last_hour: 0,
            auto_reply_limit: 5,
            spam: false,
            forged_from: false,
            unauthenticated: None,
            reply_refused: None,
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
        let known = KnownCase { id: 3, reporter: "r@example.org".into(), state: "acknowledged".into() };
        let a = decide(&msg("Auto-Submitted: auto-replied\r\n"), &Context { by_reference: Some(known), ..ctx() });
        assert!(matches!(a[0], Action::Append { case_id: 3, .. }));
        assert!(!a.iter().any(|x| matches!(x, Action::Ack { .. } | Action::Notify(_))));
        assert!(matches!(&decide(&msg(""), &Context { own_message: true, ..ctx() })[..], [Action::Ignore { .. }]));
        // New bulk mail judged spam is held rather than ignored.
        assert_eq!(decide(&msg("List-Unsubscribe: <mailto:u@x>\r\n"), &Context { spam: true, ..ctx() }), vec![Action::Quarantine]);
    }

    #[test]
    fn follow_ups_and_strangers_on_a_tag() {
        let known = KnownCase { id: 7, reporter: "r@example.org".into(), state: "acknowledged".into() };
        let a = decide(&msg(""), &Context { by_tag: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: None });
        let stranger = parse(b"From: eve@evil.example\r\nSubject: [SEC-7] hi\r\nMessage-ID: <e@x>\r\n\r\nx\r\n", &ParseLimits::default());
        let a = decide(&stranger, &Context { by_tag: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: Some("unknown-sender-tag".into()) });
        assert!(matches!(a[2], Action::Notify(Notice::Flagged(_))));
        // By reference too: a stranger's reply is kept and flagged, not merged.
        let a = decide(&stranger, &Context { by_reference: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: Some("unknown-sender".into()) });
        // The reporter's reply is a follow-up.
        let a = decide(&msg(""), &Context { by_reference: Some(known.clone()), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 7, flag: None });
        // Unverified team mail: the named member and the coordinator are told.
        let refused = TeamStatus::Refused { why: "not signed".into(), member: Some("alice@example.org".into()) };
        let a = decide(&msg(""), &Context { by_reference: Some(known), team: refused, ..ctx() });
        assert_eq!(
            a[2],
            Action::Tell { to: vec!["alice@example.org".into(), "coord@example.org".into()], notice: Notice::UnverifiedTeamMail("not signed".into()) }
        );
    }

    #[test]
    fn spam_is_held_but_never_a_reply_on_a_case() {
        assert_eq!(decide(&msg(""), &Context { spam: true, ..ctx() }), vec![Action::Quarantine]);
        let known = KnownCase { id: 2, reporter: "r@example.org".into(), state: "acknowledged".into() };
        let a = decide(&msg(""), &Context { spam: true, by_reference: Some(known), ..ctx() });
        assert_eq!(a[0], Action::Append { case_id: 2, flag: None });
    }

    /// See: issue 15. Our own address forged in From: held, never answered,
    /// never a case, even when it names a case.
    #[test]
    fn forged_own_address_is_held() {
        assert_eq!(decide(&msg(""), &Context { forged_from: true, ..ctx() }), vec![Action::Quarantine]);
        let known = KnownCase { id: 2, reporter: "r@example.org".into(), state: "acknowledged".into() };
        assert_eq!(decide(&msg(""), &Context { forged_from: true, by_reference: Some(known), ..ctx() }), vec![Action::Quarantine]);
        // Our own Message-ID coming back is a loop, not a forgery.
        assert!(matches!(&decide(&msg(""), &Context { forged_from: true, own_message: true, ..ctx() })[..], [Action::Ignore { .. }]));
    }

    /// See: issue 15. A sender the trusted Authentication-Results call forged
    /// still opens a case (a report is a report), without an ack.
    #[test]
    fn unauthenticated_sender_gets_a_case_but_no_ack() {
        let a = decide(&msg(""), &Context { unauthenticated: Some("dmarc=fail".into()), ..ctx() });
        assert_eq!(a[0], Action::OpenCase);
        assert!(!a.iter().any(|x| matches!(x, Action::Ack { .. })), "{a:?}");
        assert!(a.iter().any(|x| matches!(x, Action::Event { kind: "ack-withheld", detail } if detail.contains("dmarc=fail"))), "{a:?}");
        assert!(a.contains(&Action::Notify(Notice::NewCase)));
        let a = decide(&msg(""), &Context { reply_refused: Some("the mailbox's own address"), ..ctx() });
        assert_eq!(a[0], Action::OpenCase);
        assert!(!a.iter().any(|x| matches!(x, Action::Ack { .. })), "{a:?}");
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
