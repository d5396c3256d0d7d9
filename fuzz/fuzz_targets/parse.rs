//! `parse`: the limits walk (`prescan::scan`), the parser (`mail::parse`) and
//! the raw header peek (`mail::peek_headers`) on arbitrary bytes.
//!
//! Invariants: nothing panics (or overflows the stack / runs away); a message
//! `scan` refuses is parsed header-only and flagged: `parse(..).over_limit` is
//! the very `Broken` that `scan` returned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secmail::mail::{self, ParseLimits};
use secmail::prescan::{self, Limits};

/// Tight limits, so the over-limit paths are reached with small inputs.
const SMALL: Limits = Limits {
    max_message_size: 256 << 10,
    max_header_size: 4096,
    max_headers: 40,
    max_references: 8,
    max_mime_depth: 4,
    max_mime_parts: 24,
};

/// Known finding (fuzz/regressions/parse-over-limit-flag-lost-*): a message
/// whose first header line alone is over `max_header_size` is returned as
/// `unparseable` without `over_limit`. With `SECMAIL_FUZZ_SKIP_KNOWN=1` that
/// one case is let through so the fuzzer can look for others; by default it
/// fails.
fn skip_known(parsed: &mail::Parsed) -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("SECMAIL_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
        && parsed.malformed.as_deref().is_some_and(|m| m.starts_with("not an RFC 5322 message"))
}

fn check(data: &[u8], limits: &ParseLimits) {
    let scanned = prescan::scan(data, limits);
    let parsed = mail::parse(data, limits);
    if let Err(broken) = &scanned
        && !skip_known(&parsed)
    {
        assert_eq!(
            parsed.over_limit.as_ref(),
            Some(broken),
            "scan refused the message ({broken}) but parse did not flag it over_limit; parsed.malformed = {:?}",
            parsed.malformed
        );
    }
    assert!(parsed.refs.len() <= limits.max_references, "more refs than max_references");
    assert!(!parsed.message_id.is_empty(), "empty message_id");
    let _ = parsed.reply_address();
}

fuzz_target!(|data: &[u8]| {
    let start = prescan::body_start(data);
    assert!(start <= data.len());
    check(data, &ParseLimits::default());
    check(data, &SMALL);
    let peek = mail::peek_headers(data);
    assert!(!peek.subject.contains(['\r', '\n']), "peek subject is not one line: {:?}", peek.subject);
});
