//! IMAP folder names by the server's rules: the personal namespace (RFC 2342
//! NAMESPACE), the hierarchy delimiter (RFC 3501 §6.3.8, `LIST "" ""`) and
//! modified UTF-7 (RFC 3501 §5.1.3). Pure: no I/O.
//!
//! Configured names are written with `/` between levels, whatever the server
//! uses: `secmail/processed` becomes `secmail/processed` on a stock Dovecot
//! (prefix empty, delimiter `/`), and `INBOX.secmail.processed` on Cyrus or a
//! hosting panel's Dovecot (prefix `INBOX.`, delimiter `.`). A name that
//! already starts with the server's prefix is used as is, and `INBOX` is always
//! `INBOX`.

use base64::Engine as _;
use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The personal namespace the server told us about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespace {
    /// Prefix of the user's own folders (`""` or `INBOX.`), as on the wire.
    pub prefix: String,
    /// Hierarchy delimiter; `None` for a flat server.
    pub delimiter: Option<char>,
}

/// Why a configured folder name cannot be used on this server. A configuration
/// error: nothing a retry can heal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("folder name {0:?} is empty or has an empty level (\"a//b\", a leading or trailing '/')")]
    EmptyLevel(String),
    #[error("folder name {name:?}: level {level:?} contains the server's hierarchy delimiter {delimiter:?}; write levels with '/'")]
    HoldsDelimiter { name: String, level: String, delimiter: char },
    #[error("folder name {0:?} has levels, but the server has no folder hierarchy")]
    FlatServer(String),
    #[error("folder name {0:?} contains a control character")]
    Control(String),
}

/// The name to send to the server for the configured `name`, modified UTF-7
/// encoded. See the module comment for the rules.
pub fn wire_name(name: &str, ns: &Namespace) -> Result<String, NameError> {
    if name.chars().any(char::is_control) {
        return Err(NameError::Control(name.to_string()));
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".to_string());
    }
    let levels: Vec<&str> = name.split('/').collect();
    if levels.iter().any(|l| l.is_empty()) {
        return Err(NameError::EmptyLevel(name.to_string()));
    }
    let joined = match ns.delimiter {
        // The name is written with the server's own delimiter already.
        Some('/') => name.to_string(),
        Some(d) => {
            // `INBOX.secmail.processed` written out in full: used as is.
            if levels.len() == 1 && !ns.prefix.is_empty() && starts_with_prefix(name, &ns.prefix) {
                return Ok(encode_mutf7(name));
            }
            if let Some(level) = levels.iter().find(|l| l.contains(d)) {
                return Err(NameError::HoldsDelimiter { name: name.to_string(), level: level.to_string(), delimiter: d });
            }
            levels.join(&d.to_string())
        }
        None if levels.len() > 1 => return Err(NameError::FlatServer(name.to_string())),
        None => name.to_string(),
    };
    let joined = encode_mutf7(&joined);
    if ns.prefix.is_empty() || starts_with_prefix(&joined, &ns.prefix) {
        Ok(joined)
    } else {
        Ok(format!("{}{joined}", ns.prefix))
    }
}

/// `name` begins with the namespace `prefix`; `INBOX` is case-insensitive
/// (RFC 3501 §5.1), the rest is compared as the server writes it.
fn starts_with_prefix(name: &str, prefix: &str) -> bool {
    if prefix.len() >= 5 && prefix[..5].eq_ignore_ascii_case("INBOX") {
        name.len() >= prefix.len() && name[..5].eq_ignore_ascii_case("INBOX") && name.get(5..prefix.len()) == prefix.get(5..)
    } else {
        name.starts_with(prefix)
    }
}

/// The personal namespace from the text of an untagged NAMESPACE response
/// (RFC 2342 §5): `* NAMESPACE (("" "/")) NIL NIL` or
/// `* NAMESPACE (("INBOX." ".")) NIL (("" "."))`. The first personal namespace
/// is the user's own; `None` if the line is not a NAMESPACE response or has no
/// personal namespace (then the delimiter from `LIST "" ""` and an empty
/// prefix are used).
pub fn parse_namespace(line: &str) -> Option<Namespace> {
    let rest = line.trim_start().strip_prefix('*')?.trim_start();
    let (word, rest) = rest.split_at(rest.find(' ')?);
    if !word.eq_ignore_ascii_case("NAMESPACE") {
        return None;
    }
    let rest = rest.trim_start();
    // personal = "((" prefix SP delimiter [extensions] ")" ... ")" / "NIL"
    let rest = rest.strip_prefix("((")?;
    let (prefix, rest) = quoted(rest)?;
    let rest = rest.trim_start();
    let delimiter = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("NIL") {
        None
    } else {
        let (d, _) = quoted(rest)?;
        let mut chars = d.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => return None,
        }
    };
    Some(Namespace { prefix, delimiter })
}

/// One IMAP quoted string (RFC 3501 §9 `quoted`) at the start of `s`: its value
/// and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[1 + i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Modified BASE64 of RFC 3501 §5.1.3: `,` instead of `/`, no padding.
fn mutf7_engine() -> GeneralPurpose {
    const ALPHABET: Alphabet =
        match Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,") {
            Ok(a) => a,
            Err(_) => panic!("the modified BASE64 alphabet is valid"),
        };
    GeneralPurpose::new(&ALPHABET, GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::RequireNone))
}

/// `name` in modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for
/// itself, `&` is `&-`, every other run is UTF-16BE in modified BASE64 between
/// `&` and `-`. `Entwürfe` → `Entw&APw-rfe`.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if !run.is_empty() {
            let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&mutf7_engine().encode(bytes));
            out.push('-');
            run.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A modified UTF-7 name back to UTF-8; `None` if it is not valid modified
/// UTF-7 (then callers show it as the server sent it).
pub fn decode_mutf7(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = mutf7_engine().decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            let text = String::from_utf16(&units).ok()?;
            // A shifted run must not hold what could have been written directly.
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// A server folder name for people: decoded when it is valid modified UTF-7.
pub fn display(wire: &str) -> String {
    decode_mutf7(wire).unwrap_or_else(|| wire.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(prefix: &str, d: Option<char>) -> Namespace {
        Namespace { prefix: prefix.into(), delimiter: d }
    }

    #[test]
    fn stock_dovecot_keeps_names() {
        let n = ns("", Some('/'));
        assert_eq!(wire_name("secmail/processed", &n).unwrap(), "secmail/processed");
        assert_eq!(wire_name("INBOX", &n).unwrap(), "INBOX");
        assert_eq!(wire_name("inbox", &n).unwrap(), "INBOX");
        assert_eq!(wire_name("Quarantäne", &n).unwrap(), "Quarant&AOQ-ne");
    }

    #[test]
    fn cyrus_and_hosting_panels_map_into_inbox_dot() {
        let n = ns("INBOX.", Some('.'));
        assert_eq!(wire_name("secmail/processed", &n).unwrap(), "INBOX.secmail.processed");
        assert_eq!(wire_name("secmail/quarantine", &n).unwrap(), "INBOX.secmail.quarantine");
        assert_eq!(wire_name("Junk", &n).unwrap(), "INBOX.Junk");
        assert_eq!(wire_name("INBOX", &n).unwrap(), "INBOX");
        // Written with the server's prefix already: as is.
        assert_eq!(wire_name("INBOX.secmail.processed", &n).unwrap(), "INBOX.secmail.processed");
        assert_eq!(wire_name("inbox.Spam", &n).unwrap(), "inbox.Spam");
        // Written with '/' and the prefix's first level.
        assert_eq!(wire_name("INBOX/secmail/processed", &n).unwrap(), "INBOX.secmail.processed");
        assert_eq!(wire_name("Sécurité/traité", &n).unwrap(), "INBOX.S&AOk-curit&AOk-.trait&AOk-");
    }

    #[test]
    fn names_the_server_cannot_take_are_configuration_errors() {
        let dot = ns("INBOX.", Some('.'));
        assert!(matches!(wire_name("secmail.v2/processed", &dot), Err(NameError::HoldsDelimiter { delimiter: '.', .. })));
        assert!(matches!(wire_name("a//b", &dot), Err(NameError::EmptyLevel(_))));
        assert!(matches!(wire_name("/a", &ns("", Some('/'))), Err(NameError::EmptyLevel(_))));
        assert!(matches!(wire_name("a/b", &ns("", None)), Err(NameError::FlatServer(_))));
        assert_eq!(wire_name("flat", &ns("", None)).unwrap(), "flat");
        assert!(matches!(wire_name("a\nb", &dot), Err(NameError::Control(_))));
        let e = wire_name("secmail.v2/processed", &dot).unwrap_err().to_string();
        assert!(e.contains("secmail.v2") && e.contains("'/'"), "{e}");
    }

    #[test]
    fn other_delimiters_and_prefixes() {
        // Courier-like: prefix "INBOX." delimiter "."; Exchange/Gmail: "" and "/".
        assert_eq!(wire_name("a/b", &ns("", Some('.'))).unwrap(), "a.b");
        assert_eq!(wire_name("a/b", &ns("Mail/", Some('/'))).unwrap(), "Mail/a/b");
        assert_eq!(wire_name("Mail/a/b", &ns("Mail/", Some('/'))).unwrap(), "Mail/a/b");
    }

    #[test]
    fn namespace_responses() {
        assert_eq!(parse_namespace("* NAMESPACE ((\"\" \"/\")) NIL NIL"), Some(ns("", Some('/'))));
        assert_eq!(
            parse_namespace("* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"\" \".\"))\r\n"),
            Some(ns("INBOX.", Some('.')))
        );
        assert_eq!(
            parse_namespace("* NAMESPACE ((\"\" \"/\" \"X-PARAM\" (\"FLAG1\"))) ((\"Other Users/\" \"/\")) NIL"),
            Some(ns("", Some('/')))
        );
        assert_eq!(parse_namespace("* namespace ((\"\" NIL)) NIL NIL"), Some(ns("", None)));
        assert_eq!(parse_namespace("* NAMESPACE ((\"a\\\"b.\" \".\")) NIL NIL"), Some(ns("a\"b.", Some('.'))));
        assert_eq!(parse_namespace("* NAMESPACE NIL NIL NIL"), None);
        assert_eq!(parse_namespace("* OK hello"), None);
        assert_eq!(parse_namespace("* NAMESPACE ((\"unterminated"), None);
    }

    #[test]
    fn modified_utf7_round_trips_rfc_3501_examples() {
        // RFC 3501 §5.1.3's example, and the usual suspects.
        let cases = [
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Q&A", "Q&-A"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("📧 reports", "&2D3c5w- reports"),
            ("plain", "plain"),
        ];
        for (utf8, wire) in cases {
            assert_eq!(encode_mutf7(utf8), wire, "{utf8}");
            assert_eq!(decode_mutf7(wire).as_deref(), Some(utf8), "{wire}");
        }
        // Not valid modified UTF-7: shown as sent, never a panic.
        for bad in ["&", "&Jjo", "&AGE-", "&U,BTF-", "&2D3-"] {
            assert_eq!(decode_mutf7(bad), None, "{bad}");
            assert_eq!(display(bad), bad);
        }
    }
}
