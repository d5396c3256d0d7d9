//! Tests over the GnuPG-made fixtures in `fixtures/pgp/` (see its README and
//! `scripts/make-pgp-fixtures.sh`). Keys there are dated 2026-01-01, messages
//! 2026-01-02; [`now`] is 2026-03-01, when everything but `expired` is valid and
//! `team-weak` expires within 30 days.

use super::*;

use chrono::TimeZone;
use mail_parser::MimeHeaders;
use openpgp::cert::CertBuilder;
use openpgp::serialize::stream::Compressor;
use openpgp::types::CompressionAlgorithm;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/");
const TEAM_RSA_PASSPHRASE: &str = "fixture passphrase";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cert(name: &str) -> Cert {
    Cert::from_bytes(&fixture(name)).unwrap()
}

/// The rotated team: the new Cv25519 key first (signs), the old RSA key second.
fn team() -> TeamKeys {
    TeamKeys::from_certs(
        vec![cert("team-cv25519.sec.asc"), cert("team-rsa.sec.asc")],
        Some(TEAM_RSA_PASSPHRASE),
    )
    .unwrap()
}

fn fpr(name: &str) -> String {
    cert(name).fingerprint().to_hex()
}

fn decrypt(name: &str, verify_with: &[Cert]) -> Decryption {
    decrypt_message(
        &fixture(name),
        &team(),
        verify_with,
        &CryptoLimits::default(),
        now(),
    )
}

/// Asserts `Decrypted`, that `inner` parses as MIME, and returns (inner, sig, inline).
fn decrypted(name: &str, verify_with: &[Cert]) -> (String, SignatureStatus, bool) {
    match decrypt(name, verify_with) {
        Decryption::Decrypted {
            inner,
            signature,
            inline,
        } => {
            assert!(
                mail_parser::MessageParser::default()
                    .parse(&inner)
                    .is_some(),
                "{name}: inner is not parseable MIME"
            );
            (String::from_utf8(inner).unwrap(), signature, inline)
        }
        other => panic!("{name}: expected Decrypted, got {other:?}"),
    }
}

/// The decoded text of the first text part of `inner`.
fn body_text(inner: &str) -> String {
    let msg = mail_parser::MessageParser::default()
        .parse(inner.as_bytes())
        .unwrap();
    msg.body_text(0).unwrap_or_default().into_owned()
}

// ------------------------------------------------------------------ decryption

#[test]
fn plain_mail_is_not_encrypted() {
    assert_eq!(decrypt("plain.eml", &[]), Decryption::NotEncrypted);
}

#[test]
fn pgp_mime_decrypts_to_the_inner_entity() {
    let (inner, sig, inline) = decrypted("pgpmime-encrypted.eml", &[]);
    assert!(inner.starts_with("Content-Type: text/plain"), "{inner}");
    assert!(inner.contains("MARKER-PGPMIME:"));
    assert_eq!(sig, SignatureStatus::None);
    assert!(!inline);
}

#[test]
fn sign_then_encrypt_reports_the_signer() {
    let reporter = cert("reporter.pub.asc");
    let (inner, sig, _) = decrypted("pgpmime-signed-encrypted.eml", &[reporter]);
    assert!(inner.contains("MARKER-SIGNED:"));
    assert_eq!(sig.signer(), Some(fpr("reporter.pub.asc").as_str()));
}

#[test]
fn sign_then_encrypt_by_an_unknown_key() {
    let (inner, sig, _) = decrypted("pgpmime-signed-encrypted.eml", &[cert("stranger.pub.asc")]);
    assert!(inner.contains("MARKER-SIGNED:"));
    assert_eq!(sig, SignatureStatus::UnknownKey);
}

#[test]
fn signed_by_an_expired_key_is_bad() {
    // `expired` stopped being valid on 2026-02-01; a signature it makes on
    // 2026-02-15 must not count.
    let signer_cert = cert("expired.sec.asc");
    let signer = signer_cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let p = policy();
    let team_cert = cert("team-cv25519.pub.asc");
    let keys: Vec<_> = team_cert
        .keys()
        .with_policy(&p, sys(now()))
        .for_transport_encryption()
        .collect();
    let mut armored = Vec::new();
    {
        let m = Message::new(&mut armored);
        let m = Armorer::new(m).build().unwrap();
        let m = Encryptor::for_recipients(m, keys).build().unwrap();
        let when = Utc.with_ymd_and_hms(2026, 2, 15, 0, 0, 0).unwrap();
        let m = Signer::new(m, signer)
            .unwrap()
            .creation_time(when)
            .build()
            .unwrap();
        let mut w = LiteralWriter::new(m).build().unwrap();
        w.write_all(b"MARKER-EXPIRED-SIGNER").unwrap();
        w.finalize().unwrap();
    }
    let mut raw = b"From: expired@example.test\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    raw.extend_from_slice(&armored);
    let public = cert("expired.pub.asc");
    match decrypt_message(&raw, &team(), &[public], &CryptoLimits::default(), now()) {
        Decryption::Decrypted { signature, .. } => assert_eq!(signature, SignatureStatus::Bad),
        other => panic!("expected Decrypted, got {other:?}"),
    }
}

#[test]
fn nested_multipart_signed_inside_encryption() {
    // RFC 3156 §6.1: the decrypted entity is multipart/signed.
    let (inner, sig, inline) = decrypted("pgpmime-nested-signed.eml", &[cert("reporter.pub.asc")]);
    assert!(inner.contains("MARKER-NESTED-SIGNED:"));
    assert!(inner.contains("multipart/signed"));
    assert_eq!(sig.signer(), Some(fpr("reporter.pub.asc").as_str()));
    assert!(!inline);
    let (_, sig, _) = decrypted("pgpmime-nested-signed.eml", &[]);
    assert_eq!(sig, SignatureStatus::UnknownKey);
}

#[test]
fn inline_armor_decrypts_to_a_synthesized_text_part() {
    let (inner, sig, inline) = decrypted("inline-armored.eml", &[]);
    assert!(inline);
    assert_eq!(sig, SignatureStatus::None);
    let text = body_text(&inner);
    assert!(text.contains("MARKER-INLINE:"), "{text}");
    // Unauthenticated cleartext around the block is not mixed in.
    assert!(!text.contains("cleartext"), "{text}");
}

#[test]
fn inline_armor_in_quoted_printable() {
    let (inner, _, inline) = decrypted("inline-armored-qp.eml", &[]);
    assert!(inline);
    assert!(body_text(&inner).contains("MARKER-INLINE-QP:"));
}

#[test]
fn armored_attachment() {
    let (inner, _, inline) = decrypted("attachment-asc.eml", &[]);
    assert!(inline);
    let msg = mail_parser::MessageParser::default()
        .parse(inner.as_bytes())
        .unwrap();
    let att = msg.attachment(0).expect("decrypted attachment");
    assert_eq!(att.attachment_name(), Some("poc.txt"));
    assert!(String::from_utf8_lossy(att.contents()).contains("MARKER-ATTACH-ASC:"));
}

#[test]
fn binary_attachment() {
    let (inner, _, inline) = decrypted("attachment-gpg.eml", &[]);
    assert!(inline);
    let msg = mail_parser::MessageParser::default()
        .parse(inner.as_bytes())
        .unwrap();
    let att = msg.attachment(0).expect("decrypted attachment");
    assert_eq!(att.attachment_name(), Some("poc.bin"));
    assert!(String::from_utf8_lossy(att.contents()).contains("MARKER-ATTACH-GPG:"));
}

#[test]
fn html_alternative_decrypts_once() {
    let (inner, _, inline) = decrypted("html-alternative.eml", &[]);
    assert!(inline);
    assert_eq!(body_text(&inner).matches("MARKER-HTML-ALT:").count(), 1);
    assert!(
        !inner.contains("multipart/mixed"),
        "one alternative only: {inner}"
    );
}

#[test]
fn html_only_body_decrypts() {
    // The HTML alternative alone (armor inside <pre> with <br> line ends).
    let raw = String::from_utf8(fixture("html-alternative.eml")).unwrap();
    let start = raw.find("--alt\r\nContent-Type: text/plain").unwrap();
    let end = raw.find("--alt\r\nContent-Type: text/html").unwrap();
    let html_only = format!("{}{}", &raw[..start], &raw[end..]);
    match decrypt_message(
        html_only.as_bytes(),
        &team(),
        &[],
        &CryptoLimits::default(),
        now(),
    ) {
        Decryption::Decrypted { inner, .. } => {
            assert!(body_text(&String::from_utf8(inner).unwrap()).contains("MARKER-HTML-ALT:"))
        }
        other => panic!("expected Decrypted, got {other:?}"),
    }
}

#[test]
fn exchange_mangled_pgp_mime_is_pgp_mime() {
    // What Exchange makes of pgpmime-encrypted.eml: multipart/mixed with the
    // control part and the ciphertext as base64 attachments.
    let raw = String::from_utf8(fixture("pgpmime-encrypted.eml")).unwrap();
    let start = raw.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let end = raw.find("-----END PGP MESSAGE-----").unwrap() + 25;
    let armor = mime::base64_lines(&raw.as_bytes()[start..end]);
    let mut mangled = b"From: reporter@example.test\r\nTo: security@example.test\r\n\
        Subject: Encrypted report\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n\
        --x\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n\r\n\
        --x\r\nContent-Type: application/pgp-encrypted; name=\"PGPMIME version identification\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nVmVyc2lvbjogMQ0K\r\n\
        --x\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
        Content-Disposition: attachment; filename=\"encrypted.asc\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    mangled.extend_from_slice(&armor);
    mangled.extend_from_slice(b"--x--\r\n");
    match decrypt_message(&mangled, &team(), &[], &CryptoLimits::default(), now()) {
        Decryption::Decrypted { inner, inline, .. } => {
            assert!(!inline);
            assert!(
                String::from_utf8(inner)
                    .unwrap()
                    .contains("MARKER-PGPMIME:")
            );
        }
        other => panic!("expected Decrypted, got {other:?}"),
    }
}

#[test]
fn pgp_mime_nested_in_alternative_and_mixed() {
    let (inner, _, inline) = decrypted("pgpmime-in-alternative.eml", &[]);
    assert!(inner.contains("MARKER-PGPMIME-ALT:"));
    assert!(!inline);
    let (inner, _, inline) = decrypted("pgpmime-in-mixed.eml", &[]);
    assert!(inner.contains("MARKER-PGPMIME-MIXED:"));
    assert!(!inline);
}

#[test]
fn bcc_delivery_does_not_need_our_address() {
    let raw = String::from_utf8(fixture("bcc-delivery.eml")).unwrap();
    assert!(!raw.contains("security@"));
    let (inner, _, _) = decrypted("bcc-delivery.eml", &[]);
    assert!(inner.contains("MARKER-BCC:"));
}

#[test]
fn autocrypt_key_verifies_the_signature() {
    let (inner, sig, _) = decrypted("autocrypt.eml", &[]);
    assert!(inner.contains("MARKER-AUTOCRYPT:"));
    assert_eq!(sig.signer(), Some(fpr("reporter.pub.asc").as_str()));
}

#[test]
fn attached_key_verifies_the_signature() {
    let (inner, sig, inline) = decrypted("attached-key.eml", &[]);
    assert!(inline);
    assert!(body_text(&inner).contains("MARKER-ATTACHED-KEY:"));
    assert_eq!(sig.signer(), Some(fpr("reporter2.pub.asc").as_str()));
}

#[test]
fn old_team_key_still_decrypts() {
    let (inner, _, _) = decrypted("old-team-key.eml", &[]);
    assert!(inner.contains("MARKER-OLD-KEY:"));
    // Without the old key it cannot.
    let only_new = TeamKeys::from_certs(vec![cert("team-cv25519.sec.asc")], None).unwrap();
    let r = decrypt_message(
        &fixture("old-team-key.eml"),
        &only_new,
        &[],
        &CryptoLimits::default(),
        now(),
    );
    assert!(matches!(r, Decryption::Failed { .. }), "{r:?}");
}

#[test]
fn no_mdc_is_refused_without_plaintext() {
    // The fixture really is a SED packet (tag 9) addressed to our key.
    let raw = fixture("no-mdc.eml");
    let found = mime::find_encrypted(&raw, &CryptoLimits::default()).unwrap();
    assert!(matches!(
        scan_packets(&found.items[0].data),
        Scan::NoIntegrity
    ));
    assert_eq!(decrypt("no-mdc.eml", &[]), Decryption::NoIntegrity);
}

#[test]
fn corrupt_ciphertext_fails_without_plaintext() {
    match decrypt("corrupt.eml", &[]) {
        Decryption::Failed { reason } => {
            assert!(!reason.contains("MARKER"), "{reason}");
            assert!(reason.starts_with("PGP/MIME part: "), "{reason}");
            assert!(reason.contains("corrupt or was modified"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn encrypted_to_a_stranger_fails_and_names_keys() {
    match decrypt("stranger-only.eml", &[]) {
        Decryption::Failed { reason } => {
            assert!(reason.contains("not encrypted to any team key"), "{reason}");
            assert!(reason.contains(&team().signing_fingerprint()), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn protected_subject_stays_inside() {
    let raw = String::from_utf8(fixture("protected-subject.eml")).unwrap();
    assert!(!raw.contains("MARKER-PROTECTED-SUBJECT"));
    let (inner, _, _) = decrypted("protected-subject.eml", &[]);
    let msg = mail_parser::MessageParser::default()
        .parse(inner.as_bytes())
        .unwrap();
    assert_eq!(
        msg.subject(),
        Some("MARKER-PROTECTED-SUBJECT RCE in the config parser")
    );
    assert!(body_text(&inner).contains("MARKER-PROTECTED-BODY:"));
}

#[test]
fn compression_bomb_stops_at_the_limit() {
    // 4 MiB of zeros compress to a few KiB.
    let recipient = cert("team-cv25519.pub.asc");
    let p = policy();
    let keys: Vec<_> = recipient
        .keys()
        .with_policy(&p, sys(now()))
        .for_transport_encryption()
        .collect();
    let mut armored = Vec::new();
    {
        let m = Message::new(&mut armored);
        let m = Armorer::new(m).build().unwrap();
        let m = Encryptor::for_recipients(m, keys).build().unwrap();
        let m = Compressor::new(m)
            .algo(CompressionAlgorithm::Zlib)
            .build()
            .unwrap();
        let mut w = LiteralWriter::new(m).build().unwrap();
        w.write_all(&vec![0u8; 4 << 20]).unwrap();
        w.finalize().unwrap();
    }
    assert!(armored.len() < 64 << 10);
    let mut raw = b"From: bomb@example.test\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    raw.extend_from_slice(&armored);
    let small = CryptoLimits {
        max_decrypted_size: 1 << 20,
        ..CryptoLimits::default()
    };
    match decrypt_message(&raw, &team(), &[], &small, now()) {
        Decryption::Failed { reason } => assert!(reason.contains("max_decrypted_size"), "{reason}"),
        other => panic!("expected Failed, got {:?}", std::mem::discriminant(&other)),
    }
    let large = CryptoLimits {
        max_decrypted_size: 5 << 20,
        ..CryptoLimits::default()
    };
    assert!(matches!(
        decrypt_message(&raw, &team(), &[], &large, now()),
        Decryption::Decrypted { .. }
    ));
}

#[test]
fn mime_limits_fail_the_message() {
    let few_parts = CryptoLimits {
        max_mime_parts: 2,
        ..CryptoLimits::default()
    };
    let r = decrypt_message(
        &fixture("attachment-asc.eml"),
        &team(),
        &[],
        &few_parts,
        now(),
    );
    assert!(matches!(r, Decryption::Failed { .. }), "{r:?}");
    let shallow = CryptoLimits {
        max_mime_depth: 1,
        ..CryptoLimits::default()
    };
    let r = decrypt_message(
        &fixture("pgpmime-in-alternative.eml"),
        &team(),
        &[],
        &shallow,
        now(),
    );
    assert!(
        matches!(r, Decryption::Decrypted { .. }),
        "depth 1 is allowed: {r:?}"
    );
    let none = CryptoLimits {
        max_mime_depth: 0,
        ..CryptoLimits::default()
    };
    let r = decrypt_message(
        &fixture("pgpmime-in-alternative.eml"),
        &team(),
        &[],
        &none,
        now(),
    );
    assert!(matches!(r, Decryption::Failed { .. }), "{r:?}");
}

#[test]
fn every_fixture_gives_the_expected_variant() {
    // One table of what each message yields (the README lists the same).
    let reporter = [cert("reporter.pub.asc")];
    let expected: &[(&str, &str)] = &[
        ("plain.eml", "NotEncrypted"),
        ("pgpmime-encrypted.eml", "Decrypted"),
        ("pgpmime-signed-encrypted.eml", "Decrypted"),
        ("pgpmime-nested-signed.eml", "Decrypted"),
        ("signed-only.eml", "NotEncrypted"),
        ("signed-only-tampered.eml", "NotEncrypted"),
        ("inline-armored.eml", "Decrypted"),
        ("inline-armored-qp.eml", "Decrypted"),
        ("attachment-asc.eml", "Decrypted"),
        ("attachment-gpg.eml", "Decrypted"),
        ("html-alternative.eml", "Decrypted"),
        ("pgpmime-in-alternative.eml", "Decrypted"),
        ("pgpmime-in-mixed.eml", "Decrypted"),
        ("bcc-delivery.eml", "Decrypted"),
        ("autocrypt.eml", "Decrypted"),
        ("attached-key.eml", "Decrypted"),
        ("old-team-key.eml", "Decrypted"),
        ("no-mdc.eml", "NoIntegrity"),
        ("corrupt.eml", "Failed"),
        ("stranger-only.eml", "Failed"),
        ("protected-subject.eml", "Decrypted"),
    ];
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = expected.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "every .eml fixture is in this table");
    for (name, want) in expected {
        let got = match decrypt(name, &reporter) {
            Decryption::NotEncrypted => "NotEncrypted",
            Decryption::Decrypted { .. } => "Decrypted",
            Decryption::NoIntegrity => "NoIntegrity",
            Decryption::Failed { .. } => "Failed",
        };
        assert_eq!(got, *want, "{name}");
    }
}

// ------------------------------------------------------------ signed mail

#[test]
fn multipart_signed_verifies() {
    let reporter = [cert("reporter.pub.asc")];
    assert_eq!(verify_mime_signature(&fixture("signed-only.eml"), &reporter, now()).signer(), Some(fpr("reporter.pub.asc").as_str()));
    assert_eq!(
        verify_mime_signature(&fixture("signed-only-tampered.eml"), &reporter, now()),
        SignatureStatus::Bad
    );
    assert_eq!(
        verify_mime_signature(&fixture("signed-only.eml"), &[], now()),
        SignatureStatus::UnknownKey
    );
    assert_eq!(
        verify_mime_signature(&fixture("plain.eml"), &reporter, now()),
        SignatureStatus::None
    );
}

#[test]
fn multipart_signed_verifies_when_stored_with_bare_lf() {
    let lf: Vec<u8> = fixture("signed-only.eml")
        .into_iter()
        .filter(|b| *b != b'\r')
        .collect();
    assert_eq!(verify_mime_signature(&lf, &[cert("reporter.pub.asc")], now()).signer(), Some(fpr("reporter.pub.asc").as_str()));
}

// ------------------------------------------------------------------ team keys

/// Copies key fixtures into a private temp dir (0600, as the config loader
/// demands of secret files).
fn private_copies(names: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let paths = names
        .iter()
        .map(|n| {
            let p = dir.path().join(n);
            std::fs::write(&p, fixture(n)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        })
        .collect();
    (dir, paths)
}

#[test]
fn load_team_keys_from_files() {
    let (_dir, paths) = private_copies(&["team-cv25519.sec.asc", "team-rsa.sec.asc"]);
    let keys = TeamKeys::load(&paths, Some(TEAM_RSA_PASSPHRASE)).unwrap();
    assert_eq!(keys.signing_fingerprint(), fpr("team-cv25519.pub.asc"));
    let shown = format!("{keys:?}");
    assert!(
        shown.contains(&fpr("team-rsa.pub.asc")) && shown.len() < 200,
        "{shown}"
    );
    let published = keys.public_certs_armored();
    assert!(published.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    assert!(!published.contains("PRIVATE"));
    let certs: Vec<Cert> = CertParser::from_bytes(published.as_bytes())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(certs.len(), 2);
    assert!(certs.iter().all(|c| !c.is_tsk()));
    assert_eq!(certs[0].fingerprint().to_hex(), keys.signing_fingerprint());
    let current = Cert::from_bytes(keys.signing_cert_armored().as_bytes()).unwrap();
    assert_eq!(current.fingerprint().to_hex(), keys.signing_fingerprint());
}

#[test]
fn protected_key_needs_the_right_passphrase() {
    let (_dir, paths) = private_copies(&["team-rsa.sec.asc"]);
    let e = TeamKeys::load(&paths, None).unwrap_err().to_string();
    assert!(e.contains("passphrase"), "{e}");
    let e = TeamKeys::load(&paths, Some("wrong"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot unlock"), "{e}");
    assert!(!e.contains("wrong"), "no secret in errors: {e}");
}

#[test]
fn a_public_key_is_not_a_team_key() {
    let (_dir, paths) = private_copies(&["team-cv25519.pub.asc"]);
    let e = format!("{:#}", TeamKeys::load(&paths, None).unwrap_err());
    assert!(e.contains("no secret parts"), "{e}");
    assert!(TeamKeys::load(&[], None).is_err());
}

#[test]
fn key_info_warns_about_weak_and_expiring_keys() {
    let keys = TeamKeys::from_certs(
        vec![
            cert("team-cv25519.sec.asc"),
            cert("team-rsa.sec.asc"),
            cert("team-weak.sec.asc"),
        ],
        Some(TEAM_RSA_PASSPHRASE),
    )
    .unwrap();
    let info = keys.info(now());
    assert_eq!(info.len(), 3);
    assert_eq!(info[0].fingerprint, fpr("team-cv25519.pub.asc"));
    assert!(
        info[0].algorithm.contains("Ed25519"),
        "{}",
        info[0].algorithm
    );
    assert_eq!(info[0].expires, None);
    assert!(info[0].warnings.is_empty(), "{:?}", info[0].warnings);
    assert_eq!(info[1].bits, Some(3072));
    assert!(info[1].warnings.is_empty(), "{:?}", info[1].warnings);

    let weak = &info[2];
    assert_eq!(weak.bits, Some(2048));
    assert!(weak.expires.is_some());
    assert!(
        weak.warnings.iter().any(|w| w.contains("RSA-2048")),
        "{:?}",
        weak.warnings
    );
    assert!(
        weak.warnings.iter().any(|w| w.contains("within 30 days")),
        "{:?}",
        weak.warnings
    );

    let later = keys.info(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap());
    assert!(
        later[2].warnings.iter().any(|w| w.starts_with("expired")),
        "{:?}",
        later[2].warnings
    );
}

// -------------------------------------------------------------- reporter keys

#[test]
fn reporter_key_from_autocrypt() {
    let raw = fixture("autocrypt.eml");
    let c = reporter_cert(&raw, "Reporter@Example.Test", &[], now()).expect("autocrypt key");
    assert_eq!(c.fingerprint().to_hex(), fpr("reporter.pub.asc"));
    assert!(reporter_cert(&raw, "someone@example.test", &[], now()).is_none());
}

#[test]
fn reporter_key_from_attachment() {
    let raw = fixture("attached-key.eml");
    let c = reporter_cert(&raw, "reporter2@example.test", &[], now()).expect("attached key");
    assert_eq!(c.fingerprint().to_hex(), fpr("reporter2.pub.asc"));
    assert!(reporter_cert(&raw, "reporter@example.test", &[], now()).is_none());
}

#[test]
fn reporter_key_from_keyring() {
    let ring = load_keyring(&PathBuf::from(format!("{DIR}reporters.pgp"))).unwrap();
    assert_eq!(ring.len(), 3);
    let plain = fixture("plain.eml");
    let c = reporter_cert(&plain, "reporter@example.test", &ring, now()).unwrap();
    assert_eq!(c.fingerprint().to_hex(), fpr("reporter.pub.asc"));
    assert!(reporter_cert(&plain, "stranger@example.test", &ring, now()).is_none());
    // Expired on 2026-02-01: refused at `now`, accepted before.
    assert!(reporter_cert(&plain, "expired@example.test", &ring, now()).is_none());
    let before = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
    assert!(reporter_cert(&plain, "expired@example.test", &ring, before).is_some());
}

#[test]
fn keyring_wins_over_a_key_in_the_message() {
    // A forged From: with an attached key does not displace the vetted key.
    let mut raw = fixture("autocrypt.eml");
    let other = cert("reporter2.pub.asc");
    let c = reporter_cert(
        &raw,
        "reporter@example.test",
        &[cert("reporter.pub.asc")],
        now(),
    )
    .unwrap();
    assert_eq!(c.fingerprint().to_hex(), fpr("reporter.pub.asc"));
    raw.clear();
    assert!(reporter_cert(&raw, "reporter2@example.test", &[other], now()).is_some());
}

#[test]
fn revoked_or_signing_only_reporter_keys_are_refused() {
    let created = sys(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let (c, rev) = CertBuilder::general_purpose(Some("Rev <revoked@example.test>"))
        .set_creation_time(created)
        .generate()
        .unwrap();
    let plain = fixture("plain.eml");
    assert!(
        reporter_cert(
            &plain,
            "revoked@example.test",
            std::slice::from_ref(&c),
            now()
        )
        .is_some()
    );
    let revoked = c.insert_packets(rev).unwrap().0;
    assert!(reporter_cert(&plain, "revoked@example.test", &[revoked], now()).is_none());

    let (sign_only, _) = CertBuilder::new()
        .add_userid("Sig <sig@example.test>")
        .add_signing_subkey()
        .set_creation_time(created)
        .generate()
        .unwrap();
    assert!(reporter_cert(&plain, "sig@example.test", &[sign_only], now()).is_none());
}

// ------------------------------------------------------------------- outgoing

const REPLY: &str = "Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\n\
                     Subject: [SEC-7] MARKER-REPLY-SUBJECT\n\
                     \n\
                     MARKER-REPLY-BODY: we confirmed the issue.\n";

/// The outer message around `encrypt_and_sign_mime`'s output.
fn outgoing() -> Vec<u8> {
    let (ct, body) = encrypt_and_sign_mime(
        REPLY.as_bytes(),
        &[cert("reporter.pub.asc")],
        &team(),
        now(),
    )
    .unwrap();
    assert!(
        ct.starts_with("multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=")
    );
    let mut raw = format!(
        "From: security@example.test\r\nTo: reporter@example.test\r\nSubject: [SEC-7] ...\r\n\
         MIME-Version: 1.0\r\nContent-Type: {ct}\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw
}

#[test]
fn outgoing_round_trip_with_the_reporter_key() {
    let raw = outgoing();
    assert!(!String::from_utf8_lossy(&raw).contains("MARKER"));
    let reporter = TeamKeys::from_certs(vec![cert("reporter.sec.asc")], None).unwrap();
    let team_public = team().public_certs();
    match decrypt_message(
        &raw,
        &reporter,
        &team_public,
        &CryptoLimits::default(),
        now(),
    ) {
        Decryption::Decrypted {
            inner,
            signature,
            inline,
        } => {
            assert_eq!(inner, mime::to_crlf(REPLY.as_bytes()));
            assert_eq!(signature.signer(), Some(fpr("team-cv25519.pub.asc").as_str()));
            assert!(!inline);
        }
        other => panic!("expected Decrypted, got {other:?}"),
    }
    // The team can read what it sent.
    assert!(matches!(
        decrypt_message(&raw, &team(), &[], &CryptoLimits::default(), now()),
        Decryption::Decrypted { .. }
    ));
    // The stranger cannot.
    let stranger = TeamKeys::from_certs(vec![cert("stranger.sec.asc")], None).unwrap();
    assert!(matches!(
        decrypt_message(&raw, &stranger, &[], &CryptoLimits::default(), now()),
        Decryption::Failed { .. }
    ));
}

#[test]
fn outgoing_refuses_a_recipient_without_a_usable_key() {
    let expired = cert("expired.pub.asc");
    let e = encrypt_and_sign_mime(REPLY.as_bytes(), &[expired], &team(), now()).unwrap_err();
    assert!(format!("{e:#}").contains(&fpr("expired.pub.asc")), "{e:#}");
}

#[test]
fn outgoing_verifies_with_gnupg() {
    let gpg_ok = std::process::Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !gpg_ok {
        println!("SKIPPED outgoing_verifies_with_gnupg: gpg not found");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str], stdin: Option<&[u8]>| {
        let mut child = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or_default()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    };
    let out = gpg(&["--import"], Some(&fixture("reporter.sec.asc")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gpg(&["--import"], Some(&fixture("team-cv25519.pub.asc")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let raw = outgoing();
    let text = String::from_utf8(raw).unwrap();
    let start = text.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let end = text.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
    let out = gpg(&["--decrypt"], Some(&text.as_bytes()[start..end]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Good signature"), "{stderr}");
    assert!(
        stderr.contains(&fpr("team-cv25519.pub.asc")[24..]),
        "{stderr}"
    );
    let plain = String::from_utf8_lossy(&out.stdout);
    assert!(plain.contains("MARKER-REPLY-BODY:"), "{plain}");
    assert!(
        plain.contains("Subject: [SEC-7] MARKER-REPLY-SUBJECT"),
        "{plain}"
    );
}
