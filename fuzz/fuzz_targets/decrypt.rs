//! `decrypt`: `crypto::decrypt_message` and `keys::read` on arbitrary bytes,
//! with the fixture team keys (fixtures/pgp: the Cv25519 key, then the RSA key,
//! as in src/crypto/tests.rs) loaded once.
//!
//! Invariants: no panic; with small limits it stays fast; when both succeed,
//! the plaintext does not depend on the certs signatures are checked against;
//! the decrypted entity goes through `mail::parse` like the daemon does.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use secmail::crypto::{self, Cert, CryptoLimits, Decryption, TeamKeys};
use secmail::keys::{self, Keys, Reading};
use secmail::mail::{self, ParseLimits};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pgp/");
const TEAM_RSA_PASSPHRASE: &str = "fixture passphrase";

const LIMITS: CryptoLimits = CryptoLimits {
    max_decrypted_size: 1 << 20,
    max_mime_depth: 20,
    max_mime_parts: 200,
    max_pkesk_attempts: 8,
};

fn cert(name: &str) -> Cert {
    let path = PathBuf::from(format!("{DIR}{name}"));
    let certs = crypto::load_keyring(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    certs.into_iter().next().unwrap_or_else(|| panic!("{name}: no cert"))
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // `TeamKeys::load` = read the files, then `TeamKeys::from_certs` (a Cert
        // cannot be read here without a direct sequoia dependency, and
        // `crypto::load_keyring` strips secret parts).
        let paths = ["team-cv25519.sec.asc", "team-rsa.sec.asc"].map(|n| PathBuf::from(format!("{DIR}{n}")));
        let team = TeamKeys::load(&paths, Some(TEAM_RSA_PASSPHRASE)).expect("fixture team keys");
        // The harness is useless if the keys cannot decrypt: check once.
        let sample = std::fs::read(format!("{DIR}pgpmime-encrypted.eml")).expect("fixture message");
        let got = crypto::decrypt_message(&sample, &team, &[], &LIMITS, now());
        assert!(matches!(got, Decryption::Decrypted { .. }), "fixture does not decrypt: {got:?}");
        Keys::new(Some(team), vec![], vec![cert("reporter.pub.asc"), cert("reporter2.pub.asc")])
    })
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let team = keys.team.as_ref().unwrap();
    let now = now();
    let plain = crypto::decrypt_message(data, team, &[], &LIMITS, now);
    let read = keys::read(data, true, keys, &LIMITS, now);
    match (&plain, &read) {
        (Decryption::Decrypted { inner: a, .. }, Reading::Decrypted { inner: b, .. }) => {
            assert_eq!(a, b, "plaintext depends on the verification certs");
        }
        (Decryption::NotEncrypted, r) => assert_eq!(*r, Reading::Plain),
        (Decryption::NoIntegrity, r) => {
            assert!(matches!(r, Reading::Unreadable { no_integrity: true, .. }), "{r:?}")
        }
        _ => {}
    }
    if let Decryption::Decrypted { inner, .. } = &plain {
        assert!(inner.len() as u64 <= LIMITS.max_decrypted_size + (64 << 10), "inner is {} bytes", inner.len());
        let _ = mail::parse(inner, &ParseLimits::default());
    }
    // Not marked encrypted: never decrypted.
    assert_eq!(keys::read(data, false, keys, &LIMITS, now), Reading::Plain);
});
