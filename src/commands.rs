//! Team commands (SPEC §6), pure: the text of a verified team member's reply
//! becomes typed [`Command`]s plus the member's own words to relay to the
//! reporter (the quoted notification trimmed off). Also the case state machine
//! ([`State::transition`]) the commands move a case through.
//!
//! No I/O and no clock: `now` comes in with the [`CommandContext`]. Used by the
//! pure `case` rules for signed team mail and by the `secmail case ID ...`
//! subcommands, which parse one command's arguments with [`parse_args`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

use crate::case::parse_case_id;

/// Case states (SPEC §2). Stored and shown as [`State::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Opened; the ack is not sent yet.
    New,
    /// The reporter got the ack.
    Acknowledged,
    /// A team member has looked at it.
    Triaged,
    /// The team asked the reporter something; pauses the update clock.
    WaitingOnReporter,
    /// The team reproduced it: a real vulnerability.
    Confirmed,
    /// A fix is being written.
    Fixing,
    /// Fixed or being fixed under an embargo with a lift date (`#embargo`).
    Embargoed,
    /// The advisory is out. Terminal.
    Disclosed,
    /// Done without disclosure (won't fix, no answer, ...). Terminal.
    Closed,
    /// Not a security problem. Terminal.
    NotSecurity,
    /// Another case covers it. Terminal.
    Duplicate,
}

/// Why a state cannot be left except by `#reopen`.
const HINT_REOPEN: &str = "use #reopen first";
/// Why `new` and `acknowledged` are not a command's to set.
const HINT_SECMAIL: &str = "secmail itself sets new and acknowledged";
/// Why `#state embargoed` is refused.
const HINT_EMBARGO: &str = "use #embargo RFC3339 (when the embargo lifts) instead";
/// Where an embargoed case may go.
const HINT_FROM_EMBARGOED: &str = "an embargoed case goes only to disclosed, fixing (embargo cancelled) or closed";
/// Which cases may be disclosed.
const HINT_DISCLOSE: &str = "only a confirmed, fixing or embargoed case is disclosed";
/// Which cases may be embargoed.
const HINT_EMBARGO_FROM: &str = "only a triaged, confirmed or fixing case is embargoed";

impl State {
    /// Every state, in the order of SPEC §2.
    pub const ALL: [State; 11] = [
        State::New,
        State::Acknowledged,
        State::Triaged,
        State::WaitingOnReporter,
        State::Confirmed,
        State::Fixing,
        State::Embargoed,
        State::Disclosed,
        State::Closed,
        State::NotSecurity,
        State::Duplicate,
    ];

    /// The SPEC spelling (`waiting-on-reporter`), as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Acknowledged => "acknowledged",
            State::Triaged => "triaged",
            State::WaitingOnReporter => "waiting-on-reporter",
            State::Confirmed => "confirmed",
            State::Fixing => "fixing",
            State::Embargoed => "embargoed",
            State::Disclosed => "disclosed",
            State::Closed => "closed",
            State::NotSecurity => "not-security",
            State::Duplicate => "duplicate",
        }
    }

    /// A final state: deadlines stop here (SPEC §7) and only `#reopen` leaves it.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Disclosed | State::Closed | State::NotSecurity | State::Duplicate)
    }

    /// A state `#state` may name: all but `new` and `acknowledged` (secmail's
    /// own) and `embargoed` (only `#embargo`, which carries the lift date).
    pub fn is_settable(self) -> bool {
        !matches!(self, State::New | State::Acknowledged | State::Embargoed)
    }

    /// Move to `to` (`#state`, `#close`, `#not-security`, `#duplicate`,
    /// `#publish`; `new` → `acknowledged` is secmail's own move when the ack
    /// goes out). Entering `embargoed` is [`State::embargo`], leaving a terminal
    /// state is [`State::reopen`]; both are refused here with a hint.
    ///
    /// `y` allowed here, `A` only secmail (the ack), `E` only [`State::embargo`]
    /// (`E*`: again, the lift date moves), `R` only [`State::reopen`], `-` the
    /// same state ("already ..."), `.` refused:
    ///
    /// | from \ to           | new | ack | tri | wor | con | fix | emb | dis | clo | n-s | dup |
    /// |---------------------|-----|-----|-----|-----|-----|-----|-----|-----|-----|-----|-----|
    /// | new                 |  -  |  A  |  y  |  y  |  y  |  y  |  .  |  .  |  y  |  y  |  y  |
    /// | acknowledged        |  .  |  -  |  y  |  y  |  y  |  y  |  .  |  .  |  y  |  y  |  y  |
    /// | triaged             |  .  |  .  |  -  |  y  |  y  |  y  |  E  |  .  |  y  |  y  |  y  |
    /// | waiting-on-reporter |  .  |  .  |  y  |  -  |  y  |  y  |  .  |  .  |  y  |  y  |  y  |
    /// | confirmed           |  .  |  .  |  y  |  y  |  -  |  y  |  E  |  y  |  y  |  y  |  y  |
    /// | fixing              |  .  |  .  |  y  |  y  |  y  |  -  |  E  |  y  |  y  |  y  |  y  |
    /// | embargoed           |  .  |  .  |  .  |  .  |  .  |  y  |  E* |  y  |  y  |  .  |  .  |
    /// | disclosed           |  .  |  .  |  R  |  .  |  .  |  .  |  .  |  -  |  .  |  .  |  .  |
    /// | closed              |  .  |  .  |  R  |  .  |  .  |  .  |  .  |  .  |  -  |  .  |  .  |
    /// | not-security        |  .  |  .  |  R  |  .  |  .  |  .  |  .  |  .  |  .  |  -  |  .  |
    /// | duplicate           |  .  |  .  |  R  |  .  |  .  |  .  |  .  |  .  |  .  |  .  |  -  |
    pub fn transition(self, to: State) -> Result<State, TransitionError> {
        use State::*;
        let refuse = |hint| Err(TransitionError::Refused { from: self, to, hint });
        if self == to {
            return Err(TransitionError::Already(to));
        }
        match (self, to) {
            (Disclosed | Closed | NotSecurity | Duplicate, _) => refuse(HINT_REOPEN),
            (New, Acknowledged) => Ok(to),
            (_, New | Acknowledged) => refuse(HINT_SECMAIL),
            (_, Embargoed) => refuse(HINT_EMBARGO),
            (Embargoed, Fixing | Disclosed | Closed) => Ok(to),
            (Embargoed, _) => refuse(HINT_FROM_EMBARGOED),
            (Confirmed | Fixing, Disclosed) => Ok(to),
            (_, Disclosed) => refuse(HINT_DISCLOSE),
            (
                New | Acknowledged | Triaged | WaitingOnReporter | Confirmed | Fixing,
                Triaged | WaitingOnReporter | Confirmed | Fixing | Closed | NotSecurity | Duplicate,
            ) => Ok(to),
        }
    }

    /// `#embargo`: from triaged, confirmed or fixing into `embargoed`; on an
    /// embargoed case it only moves the lift date (column `emb` above).
    pub fn embargo(self) -> Result<State, TransitionError> {
        use State::*;
        let refuse = |hint| Err(TransitionError::Refused { from: self, to: Embargoed, hint });
        match self {
            Triaged | Confirmed | Fixing | Embargoed => Ok(Embargoed),
            Disclosed | Closed | NotSecurity | Duplicate => refuse(HINT_REOPEN),
            New | Acknowledged | WaitingOnReporter => refuse(HINT_EMBARGO_FROM),
        }
    }

    /// `#reopen`: a terminal state back to `triaged` (the `R` cells above).
    pub fn reopen(self) -> Result<State, TransitionError> {
        if self.is_terminal() { Ok(State::Triaged) } else { Err(TransitionError::NotClosed(self)) }
    }
}

/// Why a state change is refused; the message is one sentence for a team member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The case is in that state already.
    #[error("the case is already {0}")]
    Already(State),
    /// The table of [`State::transition`] has no such move.
    #[error("cannot go from {from} to {to}: {hint}")]
    Refused { from: State, to: State, hint: &'static str },
    /// `#reopen` on a case that is not in a terminal state.
    #[error("the case is {0}, not closed: #reopen is for a closed, disclosed, not-security or duplicate case")]
    NotClosed(State),
}

/// How bad a vulnerability is (`#severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Critical,
    Important,
    Moderate,
    Minor,
}

impl Severity {
    /// Every severity, worst first.
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::Important, Severity::Moderate, Severity::Minor];

    /// The spelling stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Important => "important",
            Severity::Moderate => "moderate",
            Severity::Minor => "minor",
        }
    }
}

/// `Display` and `FromStr` (ASCII-case-insensitive) by `as_str` over `ALL`,
/// and SQLite text storage, for [`State`] and [`Severity`].
macro_rules! spelled_enum {
    ($t:ident, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $t::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
                    format!(concat!($what, " must be one of {}"), list($t::ALL.iter().map(|v| v.as_str())))
                })
            }
        }

        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                v.as_str()?.parse().map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}

spelled_enum!(State, "state");
spelled_enum!(Severity, "severity");

/// One team command (SPEC §6), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `#comment [TEXT]`: the mail is internal; nothing is relayed.
    Comment(Option<String>),
    /// `#assign ADDR`: the handler, as the team list spells the address.
    Assign(String),
    /// `#severity critical|important|moderate|minor`.
    Severity(Severity),
    /// `#state STATE`: one of [`State::is_settable`].
    State(State),
    /// `#not-security`: to `not-security`.
    NotSecurity,
    /// `#duplicate SEC-N`: to `duplicate`, of case N.
    Duplicate(i64),
    /// `#embargo RFC3339`: to `embargoed` until then (or move the date).
    Embargo(DateTime<Utc>),
    /// `#cve CVE-YYYY-NNNN`: upper case.
    Cve(String),
    /// `#release QID`: release quarantined message N into normal processing.
    Release(i64),
    /// `#close`: to `closed`.
    Close,
    /// `#reopen`: a terminal case back to `triaged`.
    Reopen,
    /// `#affected VERSIONS`.
    Affected(String),
    /// `#fixed-in VERSIONS`.
    FixedIn(String),
    /// `#predisclose LIST`: who hears before the embargo lifts.
    Predisclose(String),
    /// `#advisory`: the rest of the mail is the advisory text; nothing relayed.
    Advisory,
    /// `#publish`: send the advisory; to `disclosed`.
    Publish,
}

/// The command words, as a member types them after `#`.
pub const COMMAND_WORDS: [&str; 16] = [
    "comment",
    "assign",
    "severity",
    "state",
    "not-security",
    "duplicate",
    "embargo",
    "cve",
    "release",
    "close",
    "reopen",
    "affected",
    "fixed-in",
    "predisclose",
    "advisory",
    "publish",
];

impl Command {
    /// The command word, without `#`.
    pub fn word(&self) -> &'static str {
        match self {
            Command::Comment(_) => "comment",
            Command::Assign(_) => "assign",
            Command::Severity(_) => "severity",
            Command::State(_) => "state",
            Command::NotSecurity => "not-security",
            Command::Duplicate(_) => "duplicate",
            Command::Embargo(_) => "embargo",
            Command::Cve(_) => "cve",
            Command::Release(_) => "release",
            Command::Close => "close",
            Command::Reopen => "reopen",
            Command::Affected(_) => "affected",
            Command::FixedIn(_) => "fixed-in",
            Command::Predisclose(_) => "predisclose",
            Command::Advisory => "advisory",
            Command::Publish => "publish",
        }
    }

    /// The state this command moves a case to by [`State::transition`], if any.
    fn target(&self) -> Option<State> {
        match self {
            Command::State(s) => Some(*s),
            Command::Close => Some(State::Closed),
            Command::NotSecurity => Some(State::NotSecurity),
            Command::Duplicate(_) => Some(State::Duplicate),
            Command::Publish => Some(State::Disclosed),
            _ => None,
        }
    }

    /// Once per mail: a second one would contradict or repeat the first.
    /// `#comment`, `#cve` (a case may get several ids) and `#release` may repeat.
    fn once_per_mail(&self) -> bool {
        !matches!(self, Command::Comment(_) | Command::Cve(_) | Command::Release(_))
    }
}

impl fmt::Display for Command {
    /// The canonical command line (`#severity critical`), which parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.word())?;
        match self {
            Command::Comment(Some(s))
            | Command::Assign(s)
            | Command::Cve(s)
            | Command::Affected(s)
            | Command::FixedIn(s)
            | Command::Predisclose(s) => write!(f, " {s}"),
            Command::Severity(v) => write!(f, " {v}"),
            Command::State(s) => write!(f, " {s}"),
            Command::Duplicate(n) => write!(f, " {n}"),
            Command::Embargo(t) => write!(f, " {}", t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            Command::Release(n) => write!(f, " Q{n}"),
            Command::Comment(None)
            | Command::NotSecurity
            | Command::Close
            | Command::Reopen
            | Command::Advisory
            | Command::Publish => Ok(()),
        }
    }
}

/// What validating a command needs besides its text.
#[derive(Debug, Clone, Copy)]
pub struct CommandContext<'a> {
    /// `mailbox.case_prefix`, for `#duplicate SEC-N`.
    pub case_prefix: &'a str,
    /// The case the mail is about: it cannot be its own duplicate.
    pub case_id: i64,
    /// Addresses `#assign` accepts (compared ASCII-case-insensitively).
    pub team: &'a [String],
    /// For `#embargo` (strictly in the future) and `#cve` (year bound).
    pub now: DateTime<Utc>,
}

/// One command line (`#assign alice@example.org`): `#`, the command word
/// (case-insensitive), then its arguments after whitespace.
pub fn parse_command(line: &str, ctx: &CommandContext) -> Result<Command, String> {
    let rest = line.trim().strip_prefix('#').unwrap_or_default();
    if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("a command is # and a word, like #close; the commands are {}", known_commands()));
    }
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    parse_args(word, args, ctx)
}

/// One command from its word (without `#`, case-insensitive) and its
/// arguments: what `secmail case SEC-4 state confirmed` calls.
pub fn parse_args(word: &str, args: &str, ctx: &CommandContext) -> Result<Command, String> {
    let args = args.trim();
    let cmd = match word.to_ascii_lowercase().as_str() {
        "comment" => Command::Comment((!args.is_empty()).then(|| args.to_string())),
        "assign" => Command::Assign(team_address(args, ctx.team)?),
        "severity" => Command::Severity(args.parse()?),
        "state" => Command::State(settable_state(args)?),
        "duplicate" => Command::Duplicate(duplicate_of(args, ctx)?),
        "embargo" => Command::Embargo(embargo_end(args, ctx.now)?),
        "cve" => Command::Cve(cve_id(args, ctx.now)?),
        "release" => Command::Release(quarantine_id(args)?),
        "affected" => Command::Affected(required(args, "#affected needs the affected versions")?),
        "fixed-in" => Command::FixedIn(required(args, "#fixed-in needs the versions with the fix")?),
        "predisclose" => Command::Predisclose(required(args, "#predisclose needs the lists to tell first")?),
        "not-security" => bare(Command::NotSecurity, args)?,
        "close" => bare(Command::Close, args)?,
        "reopen" => bare(Command::Reopen, args)?,
        "advisory" => bare(Command::Advisory, args)?,
        "publish" => bare(Command::Publish, args)?,
        _ => return Err(format!("unknown command #{word}; the commands are {}", known_commands())),
    };
    Ok(cmd)
}

fn known_commands() -> String {
    list(COMMAND_WORDS.iter().map(|w| format!("#{w}")))
}

fn list<T: AsRef<str>>(items: impl Iterator<Item = T>) -> String {
    items.map(|s| s.as_ref().to_string()).collect::<Vec<_>>().join(", ")
}

fn bare(cmd: Command, args: &str) -> Result<Command, String> {
    if args.is_empty() { Ok(cmd) } else { Err(format!("#{} takes no argument (found \"{args}\")", cmd.word())) }
}

fn required(args: &str, why: &str) -> Result<String, String> {
    if args.is_empty() { Err(why.to_string()) } else { Ok(args.to_string()) }
}

/// The team's own spelling of the address, `<...>` allowed around it.
fn team_address(args: &str, team: &[String]) -> Result<String, String> {
    let addr = args.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(args).trim();
    if addr.is_empty() {
        return Err("#assign needs a team member's address".into());
    }
    team.iter()
        .find(|t| t.eq_ignore_ascii_case(addr))
        .cloned()
        .ok_or_else(|| format!("{addr} is not on the team (the team: {})", list(team.iter())))
}

fn settable_list() -> String {
    list(State::ALL.into_iter().filter(|s| s.is_settable()).map(State::as_str))
}

/// The state `#state` names, if a command may set it (the message says how
/// the others are reached).
fn settable(s: State) -> Result<State, String> {
    match s {
        State::Embargoed => Err("use #embargo RFC3339 (when the embargo lifts) to embargo a case, not #state".into()),
        s if !s.is_settable() => Err(format!("{s} is set by secmail itself; state must be one of {}", settable_list())),
        s => Ok(s),
    }
}

fn settable_state(args: &str) -> Result<State, String> {
    settable(args.parse().map_err(|_| format!("state must be one of {}", settable_list()))?)
}

/// `SEC-12` (prefix case-insensitive) or `12`, not the case itself.
fn duplicate_of(args: &str, ctx: &CommandContext) -> Result<i64, String> {
    let example = format!("{}-12", ctx.case_prefix);
    if args.is_empty() {
        return Err(format!("#duplicate needs the case this one duplicates, like {example}"));
    }
    match parse_case_id(ctx.case_prefix, args) {
        None => Err(format!("\"{args}\" is not a case id like {example}")),
        Some(n) if n == ctx.case_id => Err("a case cannot be a duplicate of itself".into()),
        Some(n) => Ok(n),
    }
}

/// An RFC 3339 time strictly after `now`.
fn embargo_end(args: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let end = DateTime::parse_from_rfc3339(args).map_err(|_| {
        format!(
            "#embargo needs when the embargo lifts, as an RFC 3339 time like 2026-06-01T12:00:00Z (found \"{args}\")"
        )
    })?;
    let end = end.with_timezone(&Utc);
    if end <= now {
        return Err(format!("the embargo end {} is not in the future", end.to_rfc3339_opts(SecondsFormat::Secs, true)));
    }
    Ok(end)
}

/// Lowest CVE year: the CVE list started in 1999.
const CVE_FIRST_YEAR: i32 = 1999;
/// Digits in a CVE id's sequence number: the CVE JSON 5 schema's
/// `^CVE-[0-9]{4}-[0-9]{4,19}$`.
const CVE_DIGITS: std::ops::RangeInclusive<usize> = 4..=19;

/// `CVE-YYYY-NNNN+`, case-insensitive, upper-cased; a year from 1999 to next year.
fn cve_id(args: &str, now: DateTime<Utc>) -> Result<String, String> {
    let bad = || format!("\"{args}\" is not a CVE id like CVE-{}-12345", now.year());
    let rest = match args.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("CVE-") => &args[4..],
        _ => return Err(bad()),
    };
    let (year, seq) = rest.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if year.len() != 4 || !digits(year) || !digits(seq) || !CVE_DIGITS.contains(&seq.len()) {
        return Err(bad());
    }
    let y: i32 = year.parse().map_err(|_| bad())?;
    let last = now.year() + 1;
    if !(CVE_FIRST_YEAR..=last).contains(&y) {
        return Err(format!("the year in {args} is not between {CVE_FIRST_YEAR} and {last}"));
    }
    Ok(format!("CVE-{year}-{seq}"))
}

/// `Q12` (case-insensitive) → 12, as `secmail quarantine` lists them.
fn quarantine_id(args: &str) -> Result<i64, String> {
    let bad =
        || format!("#release needs a quarantine id like Q12, as secmail quarantine lists them (found \"{args}\")");
    let n = args.strip_prefix(['Q', 'q']).ok_or_else(bad)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    n.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad)
}

/// What a verified team mail says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMail {
    /// The commands, in the order of their lines.
    pub commands: Vec<Command>,
    /// The member's own words for the reporter (quotes trimmed, LF line ends);
    /// empty when `internal` or an advisory: nothing is relayed then.
    pub relay_text: String,
    /// A `#comment` is present: the mail is for the team only.
    pub internal: bool,
    /// `#advisory`: the advisory text (the mail after the command lines,
    /// quotes and signature trimmed).
    pub advisory: Option<String>,
}

/// Why a team mail is refused as a whole (nothing from it is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line_no}: \"{line}\": {why}")]
pub struct CommandError {
    /// 1-based, in the body as given.
    pub line_no: usize,
    /// The offending line, trimmed.
    pub line: String,
    /// One sentence for the member.
    pub why: String,
}

impl CommandError {
    fn at(index: usize, line: &str, why: String) -> Self {
        CommandError { line_no: index + 1, line: line.trim().to_string(), why }
    }
}

/// Split a verified team member's mail body into commands and the text to
/// relay (SPEC §5.2, §6). Commands are the lines at the top: leading blank
/// lines skipped, then every line starting with `#` and an ASCII letter, up to
/// the first other non-blank line. Any invalid command, two commands that
/// contradict each other, or a command word at the start of a line after the
/// text (it would be relayed instead of applied) refuses the whole mail.
pub fn parse_team_mail(body: &str, ctx: &CommandContext) -> Result<TeamMail, CommandError> {
    let body = unify_line_ends(body.strip_prefix('\u{feff}').unwrap_or(body));
    let lines: Vec<&str> = body.split('\n').collect();
    let mut commands = Vec::new();
    let mut command_lines = Vec::new();
    let mut text_start = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if is_command_line(line) {
            commands.push(parse_command(line, ctx).map_err(|why| CommandError::at(i, line, why))?);
            command_lines.push(i);
        } else if !is_blank(line) {
            text_start = i;
            break;
        }
    }
    check_consistent(&commands).map_err(|(k, why)| {
        let i = command_lines[k];
        CommandError::at(i, lines[i], why)
    })?;

    let advisory_at = commands.iter().position(|c| *c == Command::Advisory).map(|k| command_lines[k]);
    let rest: Vec<(usize, &str)> = lines.iter().copied().enumerate().skip(text_start).collect();
    let pieces = own_words(&rest, advisory_at.is_some());
    if let Some((i, line)) = pieces.iter().find_map(|p| match p {
        Piece::Line(i, l) if is_known_command(l) => Some((*i, *l)),
        _ => None,
    }) {
        let why = "a command goes at the top of the mail, before any text".to_string();
        return Err(CommandError::at(i, line, why));
    }
    let text = render(&pieces);
    let internal = commands.iter().any(|c| matches!(c, Command::Comment(_)));
    let (relay_text, advisory) = match advisory_at {
        Some(i) if text.is_empty() => {
            let why = "#advisory needs the advisory text below the command lines".to_string();
            return Err(CommandError::at(i, lines[i], why));
        }
        Some(_) => (String::new(), Some(text)),
        None if internal => (String::new(), None),
        None => (text, None),
    };
    Ok(TeamMail { commands, relay_text, internal, advisory })
}

/// The state the commands of one mail lead to from `current`, by the state
/// machine, applied top to bottom: `Ok(None)` when none of them changes the
/// state. `#reopen` → [`State::reopen`], `#embargo` → [`State::embargo`] (on
/// an embargoed case `Some(Embargoed)`: the date moves), `#state`, `#close`,
/// `#not-security`, `#duplicate`, `#publish` → [`State::transition`].
/// Applying the commands one at a time, each from the state the one before
/// left, gives the same result as applying the list at once.
pub fn state_after(current: State, commands: &[Command]) -> Result<Option<State>, String> {
    check_consistent(commands).map_err(|(_, why)| why)?;
    let mut state = None;
    for cmd in commands {
        let from = state.unwrap_or(current);
        let next = match cmd {
            Command::Reopen => from.reopen(),
            Command::Embargo(_) => from.embargo(),
            Command::State(to) => from.transition(settable(*to)?),
            other => match other.target() {
                Some(to) => from.transition(to),
                None => continue,
            },
        };
        state = Some(next.map_err(|e| e.to_string())?);
    }
    Ok(state)
}

/// Commands of one mail that cannot all be meant: the same once-per-mail
/// command twice, two commands naming states, or `#reopen`/`#embargo` with a
/// command that ends the case. The error names the index of the later one.
fn check_consistent(commands: &[Command]) -> Result<(), (usize, String)> {
    use std::mem::discriminant;
    for (k, c) in commands.iter().enumerate() {
        if c.once_per_mail() && commands[..k].iter().any(|e| discriminant(e) == discriminant(c)) {
            return Err((k, format!("#{} is given twice in one mail", c.word())));
        }
    }
    let mut targets = commands.iter().enumerate().filter(|(_, c)| c.target().is_some());
    let first_target = targets.next();
    if let (Some((_, first)), Some((k, second))) = (first_target, targets.next()) {
        return Err((k, format!("{second} contradicts {first}: one mail gives a case one new state")));
    }
    let terminal = first_target.filter(|(_, c)| c.target().is_some_and(State::is_terminal));
    let other = commands.iter().position(|c| matches!(c, Command::Reopen | Command::Embargo(_)));
    if let (Some((t, _)), Some(o)) = (terminal, other) {
        let (earlier, later) = (t.min(o), t.max(o));
        return Err((later, format!("{} contradicts {}", commands[later], commands[earlier])));
    }
    Ok(())
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `#` and an ASCII letter (after optional indentation): `#1 problem` is text.
fn is_command_line(line: &str) -> bool {
    line.trim_start().strip_prefix('#').is_some_and(|r| r.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// A command line whose word is a known command (for text after the commands).
fn is_known_command(line: &str) -> bool {
    let rest = line.trim_start().strip_prefix('#').unwrap_or_default();
    let word = rest.split(char::is_whitespace).next().unwrap_or_default();
    COMMAND_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// CRLF and lone CR to LF (a bare CR must never reach an outgoing mail).
fn unify_line_ends(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// The member's own words in a reply: quoted lines, their attribution line
/// and everything from an Outlook-style original-message separator on are
/// dropped; the signature is kept; runs of 3+ blank lines become one, and
/// so does any blank run where something was cut; LF line ends.
pub fn own_text(reply: &str) -> String {
    let reply = unify_line_ends(reply);
    let lines: Vec<(usize, &str)> = reply.split('\n').enumerate().collect();
    render(&own_words(&lines, false))
}

/// A line kept (index in the body, text), or the place of something cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Line(usize, &'a str),
    Cut,
}

/// The kept lines of `lines`; `drop_signature` also cuts from a `-- ` line on
/// (an advisory carries no personal signature).
fn own_words<'a>(lines: &[(usize, &'a str)], drop_signature: bool) -> Vec<Piece<'a>> {
    let end = (0..lines.len())
        .find(|&k| original_starts(&lines[k..]) || (drop_signature && matches!(lines[k].1.trim_end(), "--")))
        .unwrap_or(lines.len());
    let lines = &lines[..end];
    let quoted: Vec<bool> = lines.iter().map(|(_, l)| is_quoted(l)).collect();
    let mut drop = quoted.clone();
    for s in 0..lines.len() {
        if !quoted[s] || (s > 0 && quoted[s - 1]) {
            continue;
        }
        // A quote block starts at s: its attribution is the non-blank line above.
        let mut a = s;
        while a > 0 && is_blank(lines[a - 1].1) {
            a -= 1;
        }
        if a == 0 || quoted[a - 1] || !is_attribution(lines[a - 1].1) {
            continue;
        }
        let mut from = a - 1;
        // Gmail and others wrap a long attribution: "On ... Team <" / "team@x> wrote:".
        if from > 0 && !quoted[from - 1] && opens_attribution(lines[from - 1].1) && wrapped_tail(lines[from].1) {
            from -= 1;
        }
        drop[from..s].iter_mut().for_each(|d| *d = true);
    }
    let mut out: Vec<Piece> = Vec::new();
    for (k, &(i, line)) in lines.iter().enumerate() {
        if !drop[k] {
            out.push(Piece::Line(i, line));
        } else if out.last() != Some(&Piece::Cut) {
            out.push(Piece::Cut);
        }
    }
    out
}

/// Join the kept lines: leading and trailing blank lines go; a blank run
/// with a cut in it becomes one blank line (a cut between two lines, too);
/// otherwise a run of 3+ blank lines becomes one.
fn render(pieces: &[Piece]) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut k = 0;
    while k < pieces.len() {
        if let Piece::Line(_, l) = pieces[k]
            && !is_blank(l)
        {
            out.push(l);
            k += 1;
            continue;
        }
        let start = k;
        while k < pieces.len() && !matches!(pieces[k], Piece::Line(_, l) if !is_blank(l)) {
            k += 1;
        }
        let run = &pieces[start..k];
        if out.is_empty() || k == pieces.len() {
            continue;
        }
        let blanks = if run.contains(&Piece::Cut) || run.len() >= 3 { 1 } else { run.len() };
        out.extend(std::iter::repeat_n("", blanks));
    }
    out.join("\n")
}

/// `>` after optional spaces or tabs.
fn is_quoted(line: &str) -> bool {
    line.trim_start_matches([' ', '\t']).starts_with('>')
}

/// How attribution lines end ("On ... wrote:", "... schrieb:", "... a écrit :").
const ATTRIBUTION_ENDS: &[&str] = &[
    "wrote:",
    "schrieb:",
    "a écrit :",
    "a écrit:",
    "escribió:",
    "ha scritto:",
    "schreef:",
    "skrev:",
    "kirjoitti:",
    "escreveu:",
    "napisał:",
    "написал:",
    "написала:",
    "написал(а):",
    "写道:",
    "写道：",
    "寫道:",
    "寫道：",
];

/// How a wrapped attribution's first line starts (English, German, French, Spanish, Dutch).
const ATTRIBUTION_OPENINGS: &[&str] = &["On ", "Am ", "Le ", "El ", "Op "];

/// Verbs of attributions that put the name after the verb ("Am 3.3.2026
/// um 10:00 schrieb Security Team <security@example.org>:").
const ATTRIBUTION_VERBS: &[&str] = &[" schrieb ", " wrote ", " écrit ", " escribió ", " schreef "];

fn is_attribution(line: &str) -> bool {
    // French puts a (narrow) no-break space before the colon.
    let l = line.trim().replace(['\u{a0}', '\u{202f}'], " ");
    let lower = l.to_lowercase();
    ATTRIBUTION_ENDS.iter().any(|e| lower.ends_with(e))
        || (ATTRIBUTION_OPENINGS.iter().any(|o| l.starts_with(o))
            && lower.ends_with(':')
            && ATTRIBUTION_VERBS.iter().any(|v| lower.contains(v)))
}

/// The first line of a wrapped attribution: an opening word, a date (some
/// digit) and no sentence end ("On Monday we release." is the member's).
fn opens_attribution(line: &str) -> bool {
    let l = line.trim();
    ATTRIBUTION_OPENINGS.iter().any(|o| l.starts_with(o))
        && l.contains(|c: char| c.is_ascii_digit())
        && !l.ends_with(['.', '!', '?'])
}

/// The second line of a wrapped attribution: the address, or the verb alone.
fn wrapped_tail(line: &str) -> bool {
    let l = line.trim();
    !opens_attribution(l) && (l.contains(['@', '>']) || ATTRIBUTION_ENDS.iter().any(|e| l.eq_ignore_ascii_case(e)))
}

/// Outlook's rule lines ("-----Original Message-----" and translations).
const ORIGINAL_MESSAGE: &[&str] = &[
    "original message",
    "ursprüngliche nachricht",
    "message d'origine",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
];
/// First header of a pasted original (Outlook), by language.
const FROM_HEADERS: &[&str] = &["from:", "von:", "de :", "de:", "van:", "da:"];
/// Second header of a pasted original without a rule line.
const SENT_HEADERS: &[&str] =
    &["sent:", "date:", "gesendet:", "datum:", "envoyé :", "envoyé:", "date :", "verzonden:", "inviato:", "enviado:"];

fn starts_with_any(line: &str, prefixes: &[&str]) -> bool {
    let l = line.trim().replace('\u{a0}', " ").to_lowercase();
    prefixes.iter().any(|p| l.starts_with(p))
}

/// Does an Outlook-style pasted original start at `rest[0]`? A
/// `-----Original Message-----` rule, a rule of underscores followed by a
/// `From:` line, or `From:` directly followed by `Sent:`/`Date:`.
fn original_starts(rest: &[(usize, &str)]) -> bool {
    let line = rest[0].1.trim();
    if let Some(inner) = line.strip_prefix("-----").and_then(|l| l.strip_suffix("-----")) {
        let inner = inner.trim_matches(['-', ' ']).to_lowercase();
        if ORIGINAL_MESSAGE.contains(&inner.as_str()) {
            return true;
        }
    }
    let next = rest.get(1).map(|(_, l)| *l);
    if line.chars().count() >= 10 && line.chars().all(|c| c == '_') {
        let next_text = rest[1..].iter().map(|(_, l)| *l).find(|l| !is_blank(l));
        return next_text.is_some_and(|l| starts_with_any(l, FROM_HEADERS));
    }
    starts_with_any(line, FROM_HEADERS) && next.is_some_and(|l| starts_with_any(l, SENT_HEADERS))
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use chrono::TimeZone;

    use super::*;
    use State::*;

    static TEAM: LazyLock<Vec<String>> =
        LazyLock::new(|| vec!["Alice@Example.org".to_string(), "bob@example.org".to_string()]);

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0).unwrap()
    }

    fn ctx() -> CommandContext<'static> {
        CommandContext { case_prefix: "SEC", case_id: 4, team: &TEAM, now: now() }
    }

    fn cmd(line: &str) -> Result<Command, String> {
        parse_command(line, &ctx())
    }

    fn mail(body: &str) -> Result<TeamMail, CommandError> {
        parse_team_mail(body, &ctx())
    }

    fn relay(body: &str) -> String {
        let m = mail(body).unwrap();
        assert!(!m.internal);
        m.relay_text
    }

    // ---- states ----

    #[test]
    fn states_have_the_spec_spellings_and_parse_back_case_insensitively() {
        let spelled: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "new",
                "acknowledged",
                "triaged",
                "waiting-on-reporter",
                "confirmed",
                "fixing",
                "embargoed",
                "disclosed",
                "closed",
                "not-security",
                "duplicate"
            ]
        );
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
            assert_eq!(s.as_str().to_uppercase().parse::<State>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(" Waiting-On-Reporter ".parse::<State>(), Ok(WaitingOnReporter));
        assert_eq!(
            "waiting_on_reporter".parse::<State>(),
            Err("state must be one of new, acknowledged, triaged, waiting-on-reporter, confirmed, fixing, \
                 embargoed, disclosed, closed, not-security, duplicate"
                .to_string())
        );
    }

    #[test]
    fn terminal_states_are_where_deadlines_stop() {
        let terminal: Vec<State> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [Disclosed, Closed, NotSecurity, Duplicate]);
    }

    /// The table of [`State::transition`]'s doc comment, typed again: `y`
    /// allowed by `transition`, `E` only by `embargo`, `R` only by `reopen`.
    const TABLE: [&str; 11] = [
        "- A y y y y . . y y y",
        ". - y y y y . . y y y",
        ". . - y y y E . y y y",
        ". . y - y y . . y y y",
        ". . y y - y E y y y y",
        ". . y y y - E y y y y",
        ". . . . . y E* y y . .",
        ". . R . . . . - . . .",
        ". . R . . . . . - . .",
        ". . R . . . . . . - .",
        ". . R . . . . . . . -",
    ];

    #[test]
    fn transition_follows_the_table_for_every_pair() {
        for (row, from) in TABLE.iter().zip(State::ALL) {
            let cells: Vec<&str> = row.split(' ').collect();
            assert_eq!(cells.len(), State::ALL.len());
            for (cell, to) in cells.iter().zip(State::ALL) {
                let got = from.transition(to);
                match *cell {
                    "y" | "A" => assert_eq!(got, Ok(to), "{from} -> {to}"),
                    "-" | "E*" => assert_eq!(got, Err(TransitionError::Already(to)), "{from} -> {to}"),
                    _ => assert!(matches!(got, Err(TransitionError::Refused { .. })), "{from} -> {to}: {got:?}"),
                }
            }
            assert_eq!(from.embargo().is_ok(), cells[6].starts_with('E'), "{from} embargo");
            assert_eq!(from.reopen().is_ok(), cells[2] == "R", "{from} reopen");
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let msg = |from: State, to: State| from.transition(to).unwrap_err().to_string();
        assert_eq!(msg(Closed, Fixing), "cannot go from closed to fixing: use #reopen first");
        for t in [Disclosed, Closed, NotSecurity, Duplicate] {
            assert_eq!(msg(t, Triaged), format!("cannot go from {t} to triaged: use #reopen first"));
            assert_eq!(msg(t, t), format!("the case is already {t}"));
            assert_eq!(t.reopen(), Ok(Triaged));
            assert_eq!(
                t.embargo().unwrap_err().to_string(),
                format!("cannot go from {t} to embargoed: use #reopen first")
            );
        }
        assert_eq!(msg(Fixing, Fixing), "the case is already fixing");
        assert!(msg(Triaged, Embargoed).contains("use #embargo RFC3339"));
        assert!(msg(Triaged, Disclosed).contains("only a confirmed, fixing or embargoed case is disclosed"));
        assert!(msg(Embargoed, Confirmed).contains("disclosed, fixing (embargo cancelled) or closed"));
        assert!(msg(Triaged, New).contains("secmail itself"));
        assert!(msg(Triaged, Acknowledged).contains("secmail itself"));
        assert_eq!(
            Fixing.reopen().unwrap_err().to_string(),
            "the case is fixing, not closed: #reopen is for a closed, disclosed, not-security or duplicate case"
        );
        assert!(WaitingOnReporter.embargo().unwrap_err().to_string().contains("only a triaged, confirmed or fixing"));
        assert_eq!(Embargoed.embargo(), Ok(Embargoed));
    }

    #[test]
    fn severities_parse_case_insensitively() {
        for v in Severity::ALL {
            assert_eq!(v.as_str().to_uppercase().parse::<Severity>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        assert_eq!(
            "huge".parse::<Severity>(),
            Err("severity must be one of critical, important, moderate, minor".to_string())
        );
    }

    #[test]
    fn states_and_severities_round_trip_through_sqlite() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for s in State::ALL {
            let back: State = db.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, s);
        }
        let back: Severity = db.query_row("SELECT ?1", [Severity::Moderate], |r| r.get(0)).unwrap();
        assert_eq!(back, Severity::Moderate);
        let bad: rusqlite::Result<State> = db.query_row("SELECT 'open'", [], |r| r.get(0));
        assert!(bad.is_err());
    }

    // ---- one command ----

    #[test]
    fn every_command_parses() {
        let embargo_end = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let cases: Vec<(&str, Command)> = vec![
            ("#comment", Command::Comment(None)),
            ("#comment  reproduced on 2.3  ", Command::Comment(Some("reproduced on 2.3".into()))),
            ("#assign alice@example.org", Command::Assign("Alice@Example.org".into())),
            ("#assign <BOB@example.org>", Command::Assign("bob@example.org".into())),
            ("#severity Critical", Command::Severity(Severity::Critical)),
            ("#severity minor", Command::Severity(Severity::Minor)),
            ("#state confirmed", Command::State(Confirmed)),
            ("#state waiting-on-reporter", Command::State(WaitingOnReporter)),
            ("#state disclosed", Command::State(Disclosed)),
            ("#not-security", Command::NotSecurity),
            ("#duplicate SEC-3", Command::Duplicate(3)),
            ("#duplicate sec-12", Command::Duplicate(12)),
            ("#duplicate 7", Command::Duplicate(7)),
            ("#embargo 2026-06-01T12:00:00Z", Command::Embargo(embargo_end)),
            ("#embargo 2026-06-01T14:00:00+02:00", Command::Embargo(embargo_end)),
            ("#cve cve-2026-12345", Command::Cve("CVE-2026-12345".into())),
            ("#cve CVE-1999-0001", Command::Cve("CVE-1999-0001".into())),
            ("#cve CVE-2027-0001", Command::Cve("CVE-2027-0001".into())),
            ("#release Q12", Command::Release(12)),
            ("#release q1", Command::Release(1)),
            ("#close", Command::Close),
            ("#reopen", Command::Reopen),
            ("#affected < 2.3.1, 3.0.0-3.0.4", Command::Affected("< 2.3.1, 3.0.0-3.0.4".into())),
            ("#fixed-in 2.3.1, 3.0.5", Command::FixedIn("2.3.1, 3.0.5".into())),
            ("#predisclose distros", Command::Predisclose("distros".into())),
            ("#advisory", Command::Advisory),
            ("#publish", Command::Publish),
            ("#CLOSE", Command::Close),
            ("  #Fixed-In\t2.4  ", Command::FixedIn("2.4".into())),
        ];
        for (line, want) in cases {
            assert_eq!(cmd(line), Ok(want.clone()), "{line}");
            // The canonical form parses back to the same command.
            assert_eq!(cmd(&want.to_string()), Ok(want), "{line}");
        }
    }

    #[test]
    fn every_command_refuses_bad_arguments() {
        let cases: Vec<(&str, &str)> = vec![
            ("#assign", "needs a team member's address"),
            (
                "#assign eve@evil.example",
                "eve@evil.example is not on the team (the team: Alice@Example.org, bob@example.org)",
            ),
            ("#assign alice@example.org bob@example.org", "is not on the team"),
            ("#severity huge", "severity must be one of critical, important, moderate, minor"),
            ("#severity", "severity must be one of"),
            (
                "#state",
                "state must be one of triaged, waiting-on-reporter, confirmed, fixing, disclosed, closed, not-security, duplicate",
            ),
            ("#state open", "state must be one of"),
            ("#state new", "new is set by secmail itself"),
            ("#state acknowledged", "acknowledged is set by secmail itself"),
            ("#state embargoed", "use #embargo RFC3339"),
            ("#duplicate", "needs the case this one duplicates, like SEC-12"),
            ("#duplicate SEC-4", "cannot be a duplicate of itself"),
            ("#duplicate 4", "cannot be a duplicate of itself"),
            ("#duplicate FOO-3", "\"FOO-3\" is not a case id like SEC-12"),
            ("#duplicate SEC-0", "is not a case id"),
            ("#duplicate SEC-x", "is not a case id"),
            ("#embargo", "RFC 3339"),
            ("#embargo 2026-06-01", "RFC 3339"),
            ("#embargo next tuesday", "RFC 3339"),
            ("#embargo 2026-03-03T10:00:00Z", "the embargo end 2026-03-03T10:00:00Z is not in the future"),
            ("#embargo 2025-01-01T00:00:00Z", "not in the future"),
            ("#cve", "is not a CVE id like CVE-2026-12345"),
            ("#cve 2026-1234", "is not a CVE id"),
            ("#cve CVE-2026-123", "is not a CVE id"),
            ("#cve CVE-26-1234", "is not a CVE id"),
            ("#cve CVE-2026-12345678901234567890", "is not a CVE id"),
            ("#cve CVE-2026-12a4", "is not a CVE id"),
            ("#cve CVE-2026-+1234", "is not a CVE id"),
            ("#cve CVE-1998-1234", "not between 1999 and 2027"),
            ("#cve CVE-2028-1234", "not between 1999 and 2027"),
            ("#cve CVE-２０２６-1234", "is not a CVE id"),
            ("#cve ÇVE-2026-1234", "is not a CVE id"),
            ("#cve C€-2026-1234", "is not a CVE id"),
            ("#release", "needs a quarantine id like Q12"),
            ("#release 12", "needs a quarantine id like Q12"),
            ("#release Q0", "needs a quarantine id"),
            ("#release Q-1", "needs a quarantine id"),
            ("#release Q+1", "needs a quarantine id"),
            ("#release Q99999999999999999999", "needs a quarantine id"),
            ("#affected", "#affected needs the affected versions"),
            ("#fixed-in   ", "#fixed-in needs the versions with the fix"),
            ("#predisclose", "#predisclose needs the lists"),
            ("#close now", "#close takes no argument (found \"now\")"),
            ("#reopen please", "#reopen takes no argument"),
            ("#not-security really", "#not-security takes no argument"),
            ("#advisory below", "#advisory takes no argument"),
            ("#publish today", "#publish takes no argument"),
            (
                "#frobnicate",
                "unknown command #frobnicate; the commands are #comment, #assign, #severity, #state, #not-security, #duplicate, #embargo, #cve, #release, #close, #reopen, #affected, #fixed-in, #predisclose, #advisory, #publish",
            ),
            ("#close.", "unknown command #close."),
            ("#", "a command is # and a word"),
            ("close", "a command is # and a word"),
        ];
        for (line, want) in cases {
            let err = cmd(line).expect_err(line);
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn arguments_parse_on_their_own_for_the_cli() {
        assert_eq!(parse_args("state", "confirmed", &ctx()), Ok(Command::State(Confirmed)));
        assert_eq!(parse_args("Severity", " important ", &ctx()), Ok(Command::Severity(Severity::Important)));
        assert_eq!(parse_args("comment", "looked at it", &ctx()), Ok(Command::Comment(Some("looked at it".into()))));
        assert_eq!(parse_args("close", "", &ctx()), Ok(Command::Close));
        assert!(parse_args("state", "embargoed", &ctx()).unwrap_err().contains("#embargo"));
        assert!(parse_args("nope", "", &ctx()).unwrap_err().starts_with("unknown command #nope"));
    }

    // ---- a whole mail ----

    #[test]
    fn commands_are_the_lines_at_the_top() {
        let m = mail("\n\n#severity important\n\n#assign bob@example.org\nThanks, we can reproduce it.\n#1 problem is the parser.\n")
            .unwrap();
        assert_eq!(m.commands, [Command::Severity(Severity::Important), Command::Assign("bob@example.org".into())]);
        assert_eq!(m.relay_text, "Thanks, we can reproduce it.\n#1 problem is the parser.");
        assert!(!m.internal);
        assert_eq!(m.advisory, None);

        let plain = mail("Hi,\n\nthanks for the report.\n").unwrap();
        assert!(plain.commands.is_empty());
        assert_eq!(plain.relay_text, "Hi,\n\nthanks for the report.");

        let only = mail("#close\n").unwrap();
        assert_eq!((only.commands, only.relay_text), (vec![Command::Close], String::new()));
        assert_eq!(mail("").unwrap().relay_text, "");
    }

    #[test]
    fn a_hash_without_a_letter_is_text() {
        let m = mail("#1 problem: the parser\n#2 problem: the lexer\n").unwrap();
        assert!(m.commands.is_empty());
        assert_eq!(m.relay_text, "#1 problem: the parser\n#2 problem: the lexer");
        let m = mail("# Heading\n#привет\n").unwrap();
        assert!(m.commands.is_empty());
        assert_eq!(m.relay_text, "# Heading\n#привет");
    }

    #[test]
    fn an_invalid_command_refuses_the_whole_mail_with_its_line() {
        let err = mail("#close\n#severity huge\n\nHello").unwrap_err();
        assert_eq!(err.line_no, 2);
        assert_eq!(
            err.to_string(),
            "line 2: \"#severity huge\": severity must be one of critical, important, moderate, minor"
        );
        let err = mail("\r\n\r\n  #wat  \r\nHi").unwrap_err();
        assert_eq!((err.line_no, err.line.as_str()), (3, "#wat"));
        assert!(err.why.starts_with("unknown command #wat"));
    }

    #[test]
    fn contradicting_commands_refuse_the_mail() {
        let cases = [
            ("#close\n#reopen\n", 2, "#reopen contradicts #close"),
            ("#reopen\n#close\n", 2, "#close contradicts #reopen"),
            ("#state fixing\n#state confirmed\n", 2, "#state is given twice in one mail"),
            ("#close\n\n#state fixing\n", 3, "#state fixing contradicts #close: one mail gives a case one new state"),
            ("#not-security\n#duplicate SEC-2\n", 2, "#duplicate 2 contradicts #not-security"),
            ("#publish\n#embargo 2026-06-01T00:00:00Z\n", 2, "#embargo 2026-06-01T00:00:00Z contradicts #publish"),
            ("#embargo 2026-06-01T00:00:00Z\n#state closed\n", 2, "#state closed contradicts #embargo"),
            ("#reopen\n#state disclosed\n", 2, "#state disclosed contradicts #reopen"),
            ("#severity minor\n#severity critical\n", 2, "#severity is given twice"),
            ("#assign bob@example.org\n#assign alice@example.org\n", 2, "#assign is given twice"),
            ("#close\n#close\n", 2, "#close is given twice"),
        ];
        for (body, line_no, why) in cases {
            let err = mail(body).expect_err(body);
            assert_eq!(err.line_no, line_no, "{body}");
            assert!(err.why.contains(why), "{body}: {}", err.why);
        }
        // These go together.
        for body in [
            "#reopen\n#state fixing\n",
            "#state confirmed\n#embargo 2026-06-01T00:00:00Z\n",
            "#comment one\n#comment two\n",
            "#cve CVE-2026-1111\n#cve CVE-2026-2222\n",
            "#release Q1\n#release Q2\n",
            "#close\n#severity minor\n#comment done\n",
        ] {
            assert!(mail(body).is_ok(), "{body}");
        }
    }

    #[test]
    fn a_comment_makes_the_mail_internal() {
        let m = mail("#comment\n\nReproduced on 2.3; the bug is in parse_header().\n").unwrap();
        assert!(m.internal);
        assert_eq!(m.relay_text, "");
        assert_eq!(m.commands, [Command::Comment(None)]);
    }

    #[test]
    fn advisory_takes_the_rest_of_the_mail() {
        let body = "#advisory\n#affected < 2.3.1\n\nSEC-4: heap overflow in the header parser\n\nAffected: < 2.3.1.\n\n-- \nAlice\n\nOn Tue, 3 Mar 2026 at 10:00, secmail <security@example.org> wrote:\n> New report SEC-4 from r@example.org.\n";
        let m = mail(body).unwrap();
        assert_eq!(m.advisory.as_deref(), Some("SEC-4: heap overflow in the header parser\n\nAffected: < 2.3.1."));
        assert_eq!(m.relay_text, "");
        assert!(!m.internal);
        let err = mail("#advisory\n\n> quoted only\n").unwrap_err();
        assert_eq!(err.line_no, 1);
        assert!(err.why.contains("needs the advisory text"));
    }

    #[test]
    fn a_command_after_the_text_refuses_the_mail() {
        // It would otherwise be relayed to the reporter instead of applied.
        let err = mail("Thanks, looking into it.\n\n#comment the fix is ugly\n").unwrap_err();
        assert_eq!((err.line_no, err.why.as_str()), (3, "a command goes at the top of the mail, before any text"));
        // Quoted commands and unknown words are just text.
        let m = mail("Thanks.\n\n> #close\n#include <stdio.h>\n").unwrap();
        assert_eq!(m.relay_text, "Thanks.\n\n#include <stdio.h>");
    }

    #[test]
    fn crlf_and_lone_cr_become_lf() {
        let m = mail("#severity minor\r\n\r\nLine one\r\nLine two\rLine three\r\n\r\n-- \r\nBob\r\n").unwrap();
        assert_eq!(m.relay_text, "Line one\nLine two\nLine three\n\n-- \nBob");
        assert!(!m.relay_text.contains('\r'));
        assert_eq!(mail("\u{feff}#close\r\n").unwrap().commands, [Command::Close]);
    }

    // ---- state_after ----

    #[test]
    fn state_after_follows_the_machine_top_to_bottom() {
        let after = |from: State, body: &str| state_after(from, &mail(body).unwrap().commands);
        assert_eq!(after(Triaged, "#severity minor"), Ok(None));
        assert_eq!(after(Triaged, "#close"), Ok(Some(Closed)));
        assert_eq!(after(Closed, "#reopen"), Ok(Some(Triaged)));
        assert_eq!(after(Closed, "#reopen\n#state fixing"), Ok(Some(Fixing)));
        assert_eq!(after(Acknowledged, "#not-security"), Ok(Some(NotSecurity)));
        assert_eq!(after(New, "#duplicate SEC-2"), Ok(Some(Duplicate)));
        assert_eq!(after(Confirmed, "#embargo 2026-06-01T00:00:00Z"), Ok(Some(Embargoed)));
        assert_eq!(after(Triaged, "#state confirmed\n#embargo 2026-06-01T00:00:00Z"), Ok(Some(Embargoed)));
        assert_eq!(after(Embargoed, "#embargo 2026-07-01T00:00:00Z"), Ok(Some(Embargoed)));
        assert_eq!(after(Embargoed, "#publish"), Ok(Some(Disclosed)));
        assert_eq!(after(Fixing, "#publish"), Ok(Some(Disclosed)));
        assert_eq!(after(Embargoed, "#state fixing"), Ok(Some(Fixing)));

        assert_eq!(after(Closed, "#state fixing"), Err("cannot go from closed to fixing: use #reopen first".into()));
        assert_eq!(
            after(Closed, "#state fixing\n#reopen"),
            Err("cannot go from closed to fixing: use #reopen first".into())
        );
        assert_eq!(after(Closed, "#reopen\n#state triaged"), Err("the case is already triaged".into()));
        assert_eq!(after(Closed, "#close"), Err("the case is already closed".into()));
        assert!(
            after(Triaged, "#embargo 2026-06-01T00:00:00Z\n#state confirmed")
                .unwrap_err()
                .contains("an embargoed case goes only")
        );
        assert!(after(Triaged, "#publish").unwrap_err().contains("only a confirmed, fixing or embargoed"));
        assert!(after(New, "#embargo 2026-06-01T00:00:00Z").unwrap_err().contains("only a triaged"));
        assert!(after(Fixing, "#reopen").unwrap_err().contains("not closed"));
        assert!(after(Embargoed, "#not-security").unwrap_err().contains("an embargoed case goes only"));
    }

    #[test]
    fn state_after_one_command_at_a_time_agrees_with_the_whole_list() {
        // The daemon may apply the commands one by one; the mail was checked whole.
        let bodies = [
            "#reopen\n#state fixing",
            "#state confirmed\n#embargo 2026-06-01T00:00:00Z",
            "#embargo 2026-06-01T00:00:00Z\n#state confirmed",
            "#severity minor\n#close\n#comment done",
            "#reopen\n#embargo 2026-06-01T00:00:00Z",
            "#cve CVE-2026-1234\n#publish",
        ];
        for body in bodies {
            let commands = mail(body).unwrap().commands;
            for from in State::ALL {
                let whole = state_after(from, &commands);
                let stepwise = commands.iter().try_fold(None, |state: Option<State>, c| {
                    Ok::<_, String>(state_after(state.unwrap_or(from), std::slice::from_ref(c))?.or(state))
                });
                assert_eq!(whole, stepwise, "{from}: {body}");
            }
        }
    }

    #[test]
    fn state_after_is_sound_on_commands_not_from_the_parser() {
        assert!(state_after(New, &[Command::State(Acknowledged)]).unwrap_err().contains("set by secmail itself"));
        assert!(state_after(Triaged, &[Command::State(Embargoed)]).unwrap_err().contains("#embargo RFC3339"));
        assert!(state_after(Triaged, &[Command::Close, Command::Reopen]).unwrap_err().contains("contradicts"));
        assert!(state_after(Triaged, &[Command::State(Fixing), Command::State(Fixing)]).is_err());
    }

    // ---- trimming replies ----

    #[test]
    fn thunderbird_bottom_posting_drops_attribution_and_quote() {
        let body = "#state confirmed\n\
                    \n\
                    On 03.03.26 10:00, secmail wrote:\n\
                    > New report SEC-4 from r@example.org.\n\
                    >\n\
                    > ----- message text -----\n\
                    > The header parser overflows.\n\
                    \n\
                    Thank you, we could reproduce it and are working on a fix.\n\
                    \n\
                    -- \n\
                    Alice, example.org security team\n";
        assert_eq!(
            relay(body),
            "Thank you, we could reproduce it and are working on a fix.\n\n-- \nAlice, example.org security team"
        );
    }

    #[test]
    fn top_posting_keeps_the_signature_and_drops_the_quote_below() {
        let body = "Thanks, fixed in 2.3.1.\n\
                    \n\
                    -- \n\
                    Bob\n\
                    \n\
                    On Tue, Mar 3, 2026 at 10:00 AM Reporter <r@example.org> wrote:\n\
                    \n\
                    > Any news?\n\
                    > \n\
                    > > older quote\n";
        assert_eq!(relay(body), "Thanks, fixed in 2.3.1.\n\n-- \nBob");
    }

    #[test]
    fn mutt_interleaved_replies_keep_each_answer() {
        let body = "#severity moderate\n\
                    \n\
                    Hi,\n\
                    \n\
                    * On Tue, Mar 03, 2026 at 10:00:00AM +0100, Reporter wrote:\n\
                    > Which versions are affected?\n\
                    \n\
                    All from 2.0 on.\n\
                    \n\
                    > Will there be a CVE?\n\
                    Yes, we requested one.\n\
                    >> nested\n\
                    > and the embargo?\n\
                    \n\
                    \n\
                    Until June.\n\
                    \n\
                    -- \n\
                    Carol\n";
        assert_eq!(relay(body), "Hi,\n\nAll from 2.0 on.\n\nYes, we requested one.\n\nUntil June.\n\n-- \nCarol");
    }

    #[test]
    fn outlook_original_message_and_everything_after_it_goes() {
        let body = "#assign bob@example.org\r\n\
                    \r\n\
                    Bob will look at this today.\r\n\
                    \r\n\
                    Regards, Dave\r\n\
                    \r\n\
                    -----Original Message-----\r\n\
                    From: secmail <security@example.org>\r\n\
                    Sent: Tuesday, March 3, 2026 10:00 AM\r\n\
                    To: dave@example.org\r\n\
                    Subject: [SEC-4] New report: overflow\r\n\
                    \r\n\
                    New report SEC-4 from r@example.org.\r\n";
        assert_eq!(relay(body), "Bob will look at this today.\n\nRegards, Dave");

        let web = "Looking into it.\n\n________________________________\nFrom: secmail <security@example.org>\nSent: 03 March 2026 10:00\nsecret report text\n";
        assert_eq!(relay(web), "Looking into it.");
        let german =
            "Wir schauen es uns an.\n\n-----Ursprüngliche Nachricht-----\nVon: secmail\nGesendet: Dienstag\nBericht\n";
        assert_eq!(relay(german), "Wir schauen es uns an.");
        let bare = "On it.\n\nFrom: secmail <security@example.org>\nDate: Tue, 3 Mar 2026 10:00:00 +0000\nreport\n";
        assert_eq!(relay(bare), "On it.");
        // A rule of underscores in the text, not followed by From:, stays.
        assert_eq!(relay("Sign here:\n__________\nThanks\n"), "Sign here:\n__________\nThanks");
    }

    #[test]
    fn attributions_in_many_clients_and_languages_go_with_their_quote() {
        let cases = [
            // Apple Mail (iOS) puts the attribution inside the quote.
            (
                "We will ship the fix on Friday.\n\nSent from my iPhone\n\n> On 3 Mar 2026, at 10:00, Reporter <r@example.org> wrote:\n> \n> Any news?\n",
                "We will ship the fix on Friday.\n\nSent from my iPhone",
            ),
            // Gmail wraps a long attribution onto two lines.
            (
                "Confirmed.\n\nOn Tue, 3 Mar 2026 at 10:00, Security Team via secmail <\nsecurity@example.org> wrote:\n\n> Report text\n",
                "Confirmed.",
            ),
            ("Done.\n\nOn Tue, 3 Mar 2026 at 10:00, Security Team <security@example.org>\nwrote:\n> Report\n", "Done."),
            // The member's line above a one-line attribution stays.
            ("On Monday we release.\nThe reporter wrote:\n> details\nOK\n", "On Monday we release.\n\nOK"),
            (
                "On 2.3.1 the bug is gone, see below\nThe reporter wrote:\n> details\n",
                "On 2.3.1 the bug is gone, see below",
            ),
            ("Danke, ist behoben.\n\nAm 03.03.2026 um 10:00 schrieb secmail:\n> Bericht\n", "Danke, ist behoben."),
            (
                "Danke.\n\nAm Di., 3. März 2026 um 10:00 Uhr schrieb Security Team <security@example.org>:\n\n> Bericht\n",
                "Danke.",
            ),
            ("Danke.\n\nsecmail schrieb:\n> Bericht\n", "Danke."),
            // French: a (narrow) no-break space before the colon.
            (
                "Merci, c'est corrigé.\n\nLe 03/03/2026 à 10:00, secmail a\u{a0}écrit\u{202f}:\n> Rapport\n",
                "Merci, c'est corrigé.",
            ),
            ("Merci.\n\nLe mar. 3 mars 2026 à 10:00, Équipe <security@example.org> a écrit :\n> Rapport\n", "Merci."),
            ("谢谢，已修复。\n\n在 2026/3/3 10:00, secmail 写道:\n> 报告\n", "谢谢，已修复。"),
        ];
        for (body, want) in cases {
            assert_eq!(relay(body), want, "{body}");
        }
    }

    #[test]
    fn an_attribution_like_line_without_a_quote_below_stays() {
        assert_eq!(
            relay("As the maintainer wrote:\n\nthe fix is in 2.3.1.\n"),
            "As the maintainer wrote:\n\nthe fix is in 2.3.1."
        );
    }

    #[test]
    fn blank_runs_collapse() {
        assert_eq!(relay("a\n\nb\n\n\n\nc\n\n\n\n\n\nd\n"), "a\n\nb\n\nc\n\nd");
        assert_eq!(relay("\n\n\n  \na\n \t \n\n\n"), "a");
        // Two blank lines the member typed stay; whitespace-only lines become empty.
        assert_eq!(relay("a\n \n\t\nb"), "a\n\n\nb");
    }

    #[test]
    fn utf8_text_is_never_cut_inside_a_character() {
        let body = "#severity critical\n\
                    \n\
                    Спасибо! Мы исправили ошибку 🎉🔒\n\
                    修正版は 2.3.1 です。\n\
                    \n\
                    -- \n\
                    Алиса\n\
                    \n\
                    В Вт, 3 мар. 2026 г. в 10:00, Репортёр <r@example.org> написал:\n\
                    > 漏洞报告 🐛\n";
        assert_eq!(relay(body), "Спасибо! Мы исправили ошибку 🎉🔒\n修正版は 2.3.1 です。\n\n-- \nАлиса");
        // Odd lines made only of multi-byte characters, in every role.
        for s in ["🎉", "ж", "—", "\u{a0}", "_", "-----", "ＣＶＥ", ">🎉", "#ж", "#🎉"] {
            let _ = mail(s);
            let _ = own_text(&format!("{s}\n{s}\n> {s}\n{s}"));
            let _ = cmd(s);
            let _ = parse_args(s, s, &ctx());
        }
        assert!(cmd("#assign ü@example.org").unwrap_err().contains("ü@example.org is not on the team"));
    }

    #[test]
    fn own_text_alone_trims_a_reply() {
        assert_eq!(own_text("Yes.\r\n\r\nOn Tue, X wrote:\r\n> q\r\n"), "Yes.");
    }
}
