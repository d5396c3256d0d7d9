//! Who speaks for the team (SPEC §5.2, §6): a mail is a team member's only when
//! a good OpenPGP signature by that member's configured key (`[[team.member]]
//! key_file`, matched by fingerprint) covers the whole message. The From line,
//! keys attached to the mail, Autocrypt headers and the reporter keyring never
//! make anyone a member.
//!
//! Accepted: PGP/MIME `multipart/signed` at the root (RFC 3156 §5, verified over
//! the exact bytes of the signed part), and PGP/MIME `multipart/encrypted` at the
//! root whose content is signed (RFC 3156 §6.1 and §6.2). Refused (the "Johnny
//! You Are Fired" classes): a signed part wrapped inside unsigned text or
//! forwarded as an attachment (the root is not the signature), inline-signed
//! fragments in an unsigned body, inline-encrypted text with cleartext around it,
//! a signature by a key that is not the member's, by a revoked or expired key,
//! or older than `team.max_signature_age`. Replays (the same signature again)
//! are refused by the store, which records every applied signature.
//!
//! Pure apart from signature verification: no I/O, `now` is passed in.

use chrono::{DateTime, Utc};

use crate::config::TeamConfig;
use crate::crypto::{self, SignatureStatus};
use crate::daemon::seen::Seen;
use crate::keys::{Keys, Reading};

/// Clock skew tolerated for a signature made "in the future".
const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(10);

/// A verified team mail: who signed it, with which key, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The member's configured address.
    pub member: String,
    /// Fingerprint of the member's configured key that made the signature.
    pub fingerprint: String,
    /// When the signature says it was made.
    pub signed_at: DateTime<Utc>,
    /// SHA-256 of the signature packet: recorded so a replay is refused.
    pub signature_id: String,
    /// Whether the mail was also encrypted (to the team key).
    pub encrypted: bool,
    /// The From address, when it is not the member's (identity is the key).
    pub from_differs: Option<String>,
}

/// What a message is, as far as the team is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamCheck {
    /// Neither from a team address nor signed by a member's key.
    NotTeam,
    /// Signed over the whole message by a member's configured key.
    Verified(Verified),
    /// Claims to be team mail (a team From address, or a signature that
    /// names a member's key) but is not verified: why, in one sentence.
    Refused { why: String },
}

/// Check a message (already seen: parsed and decrypted) against the team's keys.
pub fn check(seen: &Seen, raw: &[u8], keys: &Keys, team: &TeamConfig, now: DateTime<Utc>) -> TeamCheck {
    let from = seen.msg.from.as_deref().unwrap_or("");
    let claims_team = !from.is_empty() && team.is_member(from);
    let refused = |why: String| if claims_team { TeamCheck::Refused { why } } else { TeamCheck::NotTeam };

    let (status, encrypted) = match (seen.msg.root_type.as_str(), &seen.reading) {
        ("multipart/signed", _) => (crypto::verify_mime_signature(raw, &keys.member_certs(), now), false),
        ("multipart/encrypted", Reading::Decrypted { signature, inline: false, .. }) => (signature.clone(), true),
        (_, Reading::Decrypted { signature: SignatureStatus::Good { .. }, .. }) => {
            return refused("the signed content does not cover the whole message (it is wrapped in unsigned parts or inline)".into());
        }
        (_, Reading::Unreadable { reason, .. }) => return refused(format!("encrypted, but not readable: {reason}")),
        _ => {
            let why = if memchr::memmem::find(raw, b"-----BEGIN PGP SIGNED MESSAGE-----").is_some() {
                "only an inline-signed fragment, not the whole message, is signed"
            } else if seen.msg.root_type != "multipart/signed" && memchr::memmem::find(raw, b"application/pgp-signature").is_some() {
                "the signed part is wrapped inside an unsigned message (forwarded or attached), so it does not cover the whole message"
            } else {
                "not signed (a team mail must carry a PGP/MIME signature by the member's configured key)"
            };
            return refused(why.into());
        }
    };
    let (fingerprint, created, id) = match status {
        SignatureStatus::Good { fingerprint, created, id } => (fingerprint, created, id),
        SignatureStatus::None => return refused("not signed (a team mail must carry a PGP/MIME signature by the member's configured key)".into()),
        SignatureStatus::Bad => {
            return refused("the signature does not verify: the message was changed after signing, or the key was revoked or expired when it signed".into());
        }
        SignatureStatus::UnknownKey => {
            return refused(format!(
                "signed by a key that is not {}'s configured key (a key attached to the mail or found elsewhere does not count)",
                if claims_team { from } else { "a team member" }
            ));
        }
    };
    // Encrypted mail is checked against more keys (the reporter keyring, keys
    // in the message): only a member's configured key makes a member.
    let Some((member, cert)) = keys.member_by_fingerprint(&fingerprint) else {
        return refused(format!("signed by key {fingerprint}, which is not a team member's configured key"));
    };
    let member = member.to_string();
    // From now on the signature names a member: every refusal is reported.
    let refuse = |why: String| TeamCheck::Refused { why: format!("signed by {member}'s key, but {why}") };
    if let Err(why) = crypto::cert_usable_for_signing(cert, now) {
        return refuse(why);
    }
    let Some(signed_at) = created else {
        return refuse("the signature carries no creation time".into());
    };
    if signed_at > now + MAX_SKEW {
        return refuse(format!("the signature is dated in the future ({})", signed_at.to_rfc3339()));
    }
    let max_age = chrono::Duration::from_std(team.max_signature_age).unwrap_or(chrono::Duration::MAX);
    if now - signed_at > max_age {
        return refuse(format!(
            "the signature is from {}, older than team.max_signature_age ({}): an old signed mail cannot be applied again",
            signed_at.format("%Y-%m-%d %H:%M UTC"),
            humantime::format_duration(team.max_signature_age)
        ));
    }
    TeamCheck::Verified(Verified {
        from_differs: (!from.eq_ignore_ascii_case(&member)).then(|| from.to_string()),
        member,
        fingerprint,
        signed_at,
        signature_id: id,
        encrypted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LimitsConfig, MemberConfig};
    use crate::crypto::Cert;
    use chrono::TimeZone as _;
    use sequoia_openpgp::parse::Parse as _;
    use std::time::Duration;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}{name}")).unwrap()
    }

    fn cert(name: &str) -> Cert {
        Cert::from_bytes(&fixture(name)).unwrap()
    }

    /// `signed-only.eml` is signed 2026-01-02 by the fixtures' reporter key,
    /// From reporter@example.test: here that address is a team member.
    fn team(max_age_days: u64) -> TeamConfig {
        TeamConfig {
            coordinator: None,
            backup: None,
            allow_plaintext_to_team: false,
            members: vec![MemberConfig { address: "reporter@example.test".into(), key_file: None }],
            max_signature_age: Duration::from_secs(max_age_days * 86_400),
        }
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn limits() -> LimitsConfig {
        let d = tempfile::tempdir().unwrap();
        Config::builtin(d.path()).unwrap().limits
    }

    fn check_with(member_key: &str, raw: &[u8], team: &TeamConfig, now: DateTime<Utc>) -> TeamCheck {
        let keys = Keys::new(None, vec![("reporter@example.test".into(), cert(member_key))], vec![]);
        let seen = crate::daemon::seen::see(raw, &keys, &limits(), now);
        check(&seen, raw, &keys, team, now)
    }

    #[test]
    fn a_signature_by_the_configured_key_over_the_whole_message_verifies() {
        let raw = fixture("signed-only.eml");
        match check_with("reporter.pub.asc", &raw, &team(30), at(2026, 1, 10)) {
            TeamCheck::Verified(v) => {
                assert_eq!(v.member, "reporter@example.test");
                assert_eq!(v.fingerprint, cert("reporter.pub.asc").fingerprint().to_hex());
                assert_eq!(v.signed_at.date_naive().to_string(), "2026-01-02");
                assert_eq!(v.signature_id.len(), 64);
                assert!(!v.encrypted && v.from_differs.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_say_why() {
        let raw = fixture("signed-only.eml");
        let why = |r: TeamCheck| match r {
            TeamCheck::Refused { why } => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        // Too old for the default 7 days.
        assert!(why(check_with("reporter.pub.asc", &raw, &team(7), at(2026, 1, 10))).contains("older than team.max_signature_age"));
        // Signed by a key that is not the member's.
        assert!(why(check_with("stranger.pub.asc", &raw, &team(30), at(2026, 1, 10))).contains("a key that is not"));
        // Changed after signing.
        assert!(why(check_with("reporter.pub.asc", &fixture("signed-only-tampered.eml"), &team(30), at(2026, 1, 10))).contains("does not verify"));
        // From a team address, unsigned.
        assert!(why(check_with("reporter.pub.asc", &fixture("plain.eml"), &team(30), at(2026, 1, 10))).contains("not signed"));
    }

    #[test]
    fn strangers_are_not_team_mail_whatever_they_sign() {
        let raw = fixture("signed-only.eml");
        let mut t = team(30);
        t.members[0].address = "alice@example.test".into();
        // Not from a team address and not signed by a member's key.
        let keys = Keys::new(None, vec![("alice@example.test".into(), cert("stranger.pub.asc"))], vec![]);
        let seen = crate::daemon::seen::see(&raw, &keys, &limits(), at(2026, 1, 10));
        assert_eq!(check(&seen, &raw, &keys, &t, at(2026, 1, 10)), TeamCheck::NotTeam);
    }
}
