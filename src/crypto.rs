//! OpenPGP over bytes and keys (SPEC §4): decrypt incoming reports (PGP/MIME,
//! inline armor, encrypted attachments), report who signed them, find a reporter's
//! key, and wrap outgoing MIME entities into signed-and-encrypted PGP/MIME.
//!
//! Pure: bytes, keys and `now` in, values out. The only side effects are in
//! [`TeamKeys::load`] and [`load_keyring`], which read the key files named by the
//! config. Nothing here logs, and no error or [`Decryption::Failed`] reason ever
//! carries decrypted text or secret material.
//!
//! Rules and where they come from:
//! - RFC 9580 §5.13 / RFC 4880 §5.13: encrypted data must be integrity protected
//!   (SEIPD with MDC, or AEAD); a Symmetrically Encrypted Data packet (tag 9,
//!   RFC 9580 §5.7) is refused as [`Decryption::NoIntegrity`] before any key is
//!   touched, so no plaintext can leak (EFAIL).
//! - RFC 3156 §4 (PGP/MIME encrypted), §5 (signed), §6.1/§6.2 (signed and
//!   encrypted, nested or combined).
//! - Autocrypt Level 1 §2.1 (the `Autocrypt:` header) for reporter keys.
//! - Protected headers (draft-ietf-lamps-header-protection): the decrypted PGP/MIME
//!   entity is handed back whole, so a protected `Subject:` stays inside it.

mod mime;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use sequoia_openpgp as openpgp;

use openpgp::KeyHandle;
use openpgp::cert::CertParser;
use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::crypto::{Password, S2K, SessionKey};
use openpgp::packet::key::{SecretKeyMaterial, SecretParts, UnspecifiedRole};
use openpgp::packet::{Key, PKESK, SKESK, Tag};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, DetachedVerifierBuilder, MessageLayer, MessageStructure,
    VerificationError, VerificationHelper,
};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::{Policy, StandardPolicy};
use openpgp::serialize::SerializeInto;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message, Signer};
use openpgp::types::{PublicKeyAlgorithm, RevocationStatus, SymmetricAlgorithm};

/// An OpenPGP certificate (RFC 9580 §10.1 transferable public key), re-exported
/// so callers can write `crypto::Cert`.
pub use openpgp::Cert;

/// A team key that expires within this many days gets a warning in
/// `check-config`, so the rotation happens before reporters hit an expired key.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// RSA keys shorter than this get a "weak" warning (NIST SP 800-57: 3072 bits for
/// 128-bit security, the level of Curve25519).
pub const MIN_RSA_BITS: usize = 3072;

/// How many bytes of plaintext sequoia holds back to check the MDC/AEAD tag before
/// handing any out (it never releases unauthenticated data below this size).
const DECRYPT_BUFFER: usize = 4 << 20;

type SecretKey = Key<SecretParts, UnspecifiedRole>;

/// The sequoia policy every decision here is taken under (rejects SHA-1 data
/// signatures, MD5, short RSA in signatures after their cut-off dates, SED).
fn policy() -> StandardPolicy<'static> {
    StandardPolicy::new()
}

fn sys(now: DateTime<Utc>) -> std::time::SystemTime {
    now.into()
}

// ------------------------------------------------------------------- team keys

/// The team's secret keys. All of them are tried when decrypting (key rotation:
/// reporters may still encrypt to the old key); the FIRST one signs everything
/// secmail sends and is the one named in acks.
///
/// Secret key material is unlocked once, at load time, and never printed: the
/// `Debug` impl shows fingerprints only.
pub struct TeamKeys {
    /// In configured order; `keys[0]` is the current (signing) key.
    keys: Vec<TeamKey>,
}

struct TeamKey {
    /// The certificate as loaded; its own secret parts may still be locked.
    cert: Cert,
    /// Every secret (sub)key of `cert`, unlocked with the passphrase.
    secrets: Vec<SecretKey>,
}

impl std::fmt::Debug for TeamKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamKeys")
            .field(
                "fingerprints",
                &self
                    .keys
                    .iter()
                    .map(|k| k.cert.fingerprint().to_hex())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TeamKeys {
    /// Reads every team secret key file (`[openpgp] secret_keys`, armored or
    /// binary, one or more keys per file) and unlocks the secret parts with
    /// `passphrase` where they are protected. The first key of the first file is
    /// the signing key. File permissions are checked by the config loader.
    pub fn load(paths: &[PathBuf], passphrase: Option<&str>) -> anyhow::Result<TeamKeys> {
        let mut certs = Vec::new();
        for path in paths {
            let found = read_certs(path)?;
            if found.is_empty() {
                bail!("{}: no OpenPGP key found", path.display());
            }
            for cert in found {
                if !cert.is_tsk() {
                    bail!(
                        "{}: key {} has no secret parts (a public key was configured as a team secret key)",
                        path.display(),
                        cert.fingerprint()
                    );
                }
                certs.push(cert);
            }
        }
        Self::from_certs(certs, passphrase)
    }

    /// Builds the team keys from already parsed certificates (tests, and
    /// [`TeamKeys::load`]). Fails if there is no key, a certificate has no secret
    /// key material, or a protected secret key cannot be unlocked.
    pub fn from_certs(certs: Vec<Cert>, passphrase: Option<&str>) -> anyhow::Result<TeamKeys> {
        if certs.is_empty() {
            bail!("no team secret key configured");
        }
        let password = passphrase.map(Password::from);
        let mut keys = Vec::new();
        for cert in certs {
            let fpr = cert.fingerprint();
            let mut secrets = Vec::new();
            for ka in cert.keys().secret() {
                let key: SecretKey = ka.key().clone().role_into_unspecified();
                match key.optional_secret() {
                    Some(SecretKeyMaterial::Unencrypted(_)) => secrets.push(key),
                    Some(SecretKeyMaterial::Encrypted(e)) => {
                        // GnuPG exports offline keys as stubs (S2K "gnu-dummy",
                        // private tag 101): nothing to unlock, nothing to use.
                        if matches!(e.s2k(), S2K::Private { .. } | S2K::Unknown { .. }) {
                            continue;
                        }
                        let Some(pw) = &password else {
                            bail!(
                                "team key {fpr}: the secret key is passphrase-protected and no passphrase_file is configured"
                            );
                        };
                        let unlocked = key.decrypt_secret(pw).map_err(|_| {
                            anyhow!("team key {fpr}: cannot unlock the secret key with the configured passphrase")
                        })?;
                        secrets.push(unlocked);
                    }
                    None => {}
                }
            }
            if secrets.is_empty() {
                bail!("team key {fpr}: no usable secret key material");
            }
            keys.push(TeamKey { cert, secrets });
        }
        Ok(TeamKeys { keys })
    }

    /// One line of facts per team key for `secmail check-config`, with warnings
    /// an operator should act on (expiry within [`EXPIRY_WARNING_DAYS`], expired,
    /// revoked, weaker than RSA-3072 / Curve25519, no usable encryption or
    /// signing key at `now` under the standard policy).
    pub fn info(&self, now: DateTime<Utc>) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| key_info(&k.cert, i == 0, now))
            .collect()
    }

    /// The fingerprint (40 or 64 upper-case hex digits, no spaces) of the signing
    /// key, which the ack names when a report could not be decrypted (SPEC §4).
    pub fn signing_fingerprint(&self) -> String {
        self.keys[0].cert.fingerprint().to_hex()
    }

    /// All team public keys, current (signing) key first, ASCII-armored (RFC 9580
    /// §6), secret parts stripped: for publishing. To attach to mail, prefer
    /// [`TeamKeys::signing_cert_armored`] so reporters do not encrypt to a retired key.
    pub fn public_certs_armored(&self) -> String {
        self.keys
            .iter()
            .map(|k| armored_public(&k.cert))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The current (signing) team public key, ASCII-armored, to attach to acks.
    pub fn signing_cert_armored(&self) -> String {
        armored_public(&self.keys[0].cert)
    }

    /// The team public keys (secret parts stripped), current first: to verify
    /// secmail's own signatures or to encrypt to the team.
    pub fn public_certs(&self) -> Vec<Cert> {
        self.keys
            .iter()
            .map(|k| k.cert.clone().strip_secret_key_material())
            .collect()
    }
}

fn armored_public(cert: &Cert) -> String {
    let bytes = cert
        .armored()
        .to_vec()
        .expect("serializing a parsed certificate into memory");
    String::from_utf8(bytes).expect("ASCII armor is ASCII")
}

/// What `check-config` prints about one team key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Primary key fingerprint, upper-case hex: what reporters compare.
    pub fingerprint: String,
    /// Primary key algorithm, e.g. `RSA`, `EdDSA (Ed25519)`.
    pub algorithm: String,
    /// Primary key size in bits (modulus for RSA, curve size for ECC).
    pub bits: Option<usize>,
    /// When the certificate stops being usable, if ever.
    pub expires: Option<DateTime<Utc>>,
    /// Problems an operator should fix, one sentence each; empty when all is well.
    pub warnings: Vec<String>,
}

fn key_info(cert: &Cert, signing: bool, now: DateTime<Utc>) -> KeyInfo {
    let p = policy();
    let primary = cert.primary_key().key();
    let mut warnings = Vec::new();
    let mut expires = None;
    match cert.with_policy(&p, sys(now)) {
        Err(e) => warnings.push(format!("not valid under the standard policy: {e}")),
        Ok(vc) => {
            expires = vc
                .primary_key()
                .key_expiration_time()
                .map(DateTime::<Utc>::from);
            if let Some(exp) = expires {
                if exp <= now {
                    warnings.push(format!("expired on {}", exp.format("%Y-%m-%d")));
                } else if exp - now <= chrono::Duration::days(EXPIRY_WARNING_DAYS) {
                    warnings.push(format!(
                        "expires on {} (within {EXPIRY_WARNING_DAYS} days): rotate it",
                        exp.format("%Y-%m-%d")
                    ));
                }
            }
            if let RevocationStatus::Revoked(_) = vc.revocation_status() {
                warnings.push("revoked".into());
            }
            let enc = vc
                .keys()
                .alive()
                .revoked(false)
                .supported()
                .key_flags(encryption_flags())
                .count();
            if enc == 0 {
                warnings
                    .push("no valid encryption-capable key: reporters cannot encrypt to it".into());
            }
            if signing
                && vc
                    .keys()
                    .alive()
                    .revoked(false)
                    .supported()
                    .for_signing()
                    .count()
                    == 0
            {
                warnings.push("no valid signing key: outgoing mail cannot be signed".into());
            }
        }
    }
    for ka in cert.keys() {
        if let Some(w) = weakness(ka.key().pk_algo(), ka.key().mpis().bits()) {
            let which = if ka.key().fingerprint() == cert.fingerprint() {
                "primary key".to_string()
            } else {
                format!("subkey {}", ka.key().fingerprint())
            };
            warnings.push(format!("{which}: {w}"));
        }
    }
    KeyInfo {
        fingerprint: cert.fingerprint().to_hex(),
        algorithm: algorithm_name(primary.pk_algo(), primary.mpis()),
        bits: primary.mpis().bits(),
        expires,
        warnings,
    }
}

/// When a certificate's primary key expires (under the standard policy at `now`), if ever.
pub fn cert_expiry(cert: &Cert, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let p = policy();
    cert.with_policy(&p, sys(now)).ok()?.primary_key().key_expiration_time().map(DateTime::<Utc>::from)
}

/// A certificate from bytes (binary or armored OpenPGP).
pub fn cert_from_bytes(bytes: &[u8]) -> anyhow::Result<Cert> {
    Cert::from_bytes(bytes)
}

/// A public certificate as bytes (binary OpenPGP), secret parts stripped.
pub fn cert_bytes(cert: &Cert) -> anyhow::Result<Vec<u8>> {
    cert.clone().strip_secret_key_material().to_vec()
}

/// Whether `cert` may vouch for a signature at `now`: valid under the standard
/// policy, not revoked, not expired, with a live signing-capable key. `Err` is
/// one sentence for the team ("the key expired on 2026-06-01").
pub fn cert_usable_for_signing(cert: &Cert, now: DateTime<Utc>) -> Result<(), String> {
    let p = policy();
    if let RevocationStatus::Revoked(_) = cert.revocation_status(&p, sys(now)) {
        return Err("the key is revoked".into());
    }
    let vc = cert.with_policy(&p, sys(now)).map_err(|e| format!("the key is not valid now ({e})"))?;
    if let Err(e) = vc.alive() {
        let when = vc
            .primary_key()
            .key_expiration_time()
            .map(|t| format!(" on {}", DateTime::<Utc>::from(t).format("%Y-%m-%d")))
            .unwrap_or_default();
        return Err(format!("the key expired{when} ({e})"));
    }
    if vc.keys().alive().revoked(false).for_signing().count() == 0 {
        return Err("the key has no valid signing (sub)key now".into());
    }
    Ok(())
}

fn encryption_flags() -> openpgp::types::KeyFlags {
    openpgp::types::KeyFlags::empty()
        .set_transport_encryption()
        .set_storage_encryption()
}

fn algorithm_name(algo: PublicKeyAlgorithm, mpis: &openpgp::crypto::mpi::PublicKey) -> String {
    use openpgp::crypto::mpi::PublicKey as P;
    match mpis {
        P::EdDSA { curve, .. } | P::ECDSA { curve, .. } | P::ECDH { curve, .. } => {
            format!("{algo} ({curve})")
        }
        _ => algo.to_string(),
    }
}

/// Why a key is weaker than RSA-3072 / Curve25519 class (about 128-bit security).
fn weakness(algo: PublicKeyAlgorithm, bits: Option<usize>) -> Option<String> {
    use PublicKeyAlgorithm as A;
    #[allow(deprecated)]
    match algo {
        A::RSAEncryptSign | A::RSAEncrypt | A::RSASign => match bits {
            Some(b) if b >= MIN_RSA_BITS => None,
            Some(b) => Some(format!("RSA-{b} is weaker than RSA-{MIN_RSA_BITS}")),
            None => Some("RSA key of unknown size".into()),
        },
        A::DSA | A::ElGamalEncrypt | A::ElGamalEncryptSign => Some(format!(
            "{algo} is obsolete (RFC 9580 §9.1): use Ed25519/Cv25519"
        )),
        A::EdDSA | A::ECDH | A::ECDSA => match bits {
            Some(b) if b >= 255 => None,
            _ => Some(format!("{algo} on a curve below 255 bits")),
        },
        A::X25519 | A::X448 | A::Ed25519 | A::Ed448 => None,
        _ => Some(format!("unsupported algorithm {algo}")),
    }
}

/// Reads every certificate in a file (armored or binary, one or many).
fn read_certs(path: &Path) -> anyhow::Result<Vec<Cert>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    CertParser::from_bytes(&bytes)
        .with_context(|| format!("{}: not an OpenPGP key file", path.display()))?
        .collect::<openpgp::Result<Vec<Cert>>>()
        .with_context(|| format!("{}: malformed OpenPGP key", path.display()))
}

/// Loads a keyring of reporter (or team member) public keys (`reporter_keyring`,
/// `key_file`): armored or binary, any number of certificates. Secret parts, if
/// someone put a private key there, are dropped.
pub fn load_keyring(path: &Path) -> anyhow::Result<Vec<Cert>> {
    Ok(read_certs(path)?
        .into_iter()
        .map(Cert::strip_secret_key_material)
        .collect())
}

// ------------------------------------------------------------------ decryption

/// Who signed the decrypted content (RFC 9580 §5.2, checked under the standard
/// policy at `now`).
///
/// `Good` only says the signature verifies under the certificate with that
/// fingerprint. That certificate may have come from the message itself (an
/// attached key or Autocrypt header), so anything that *authorizes* on a signature
/// (team commands, SPEC §5.2) must compare `fingerprint` with the key it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Not signed.
    None,
    /// Verified; the signer's primary key fingerprint, upper-case hex, when
    /// the signature says it was made, and `id`: the SHA-256 (hex) of the
    /// signature packet, the same however often the signed mail is re-sent or
    /// re-encrypted (what replay detection records).
    Good { fingerprint: String, created: Option<DateTime<Utc>>, id: String },
    /// A signature that does not verify, or made by a key that was expired,
    /// revoked or not valid under the policy when it signed.
    Bad,
    /// Signed by a key we have no certificate for.
    UnknownKey,
}

impl SignatureStatus {
    /// The SPEC §2 JSON spelling: `none`, `good`, `bad`, `unknown-key`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SignatureStatus::None => "none",
            SignatureStatus::Good { .. } => "good",
            SignatureStatus::Bad => "bad",
            SignatureStatus::UnknownKey => "unknown-key",
        }
    }

    /// The signer's fingerprint when the signature is good.
    pub fn signer(&self) -> Option<&str> {
        match self {
            SignatureStatus::Good { fingerprint, .. } => Some(fingerprint),
            _ => None,
        }
    }
}

/// What decrypting an incoming message gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decryption {
    /// No OpenPGP encryption anywhere in the message.
    NotEncrypted,
    /// Decrypted. `inner` is always a MIME entity (headers, blank line, body) the
    /// caller can parse with mail-parser:
    /// - PGP/MIME (RFC 3156 §4): the decrypted entity as the sender built it,
    ///   including protected headers (a real `Subject:` that must never be copied
    ///   into a cleartext header, SPEC §4). `inline` is false.
    /// - inline armor or encrypted attachments: a synthesized entity, a
    ///   `text/plain` part per decrypted text and an attachment per decrypted file
    ///   (name without `.asc`/`.gpg`/`.pgp`), in a `multipart/mixed` when there is
    ///   more than one. Cleartext around an armored block is NOT included (it is
    ///   unauthenticated); it stays in the raw message. `inline` is true.
    Decrypted {
        inner: Vec<u8>,
        signature: SignatureStatus,
        inline: bool,
    },
    /// Encrypted without integrity protection (SED, RFC 9580 §5.7, no MDC/AEAD):
    /// refused before decryption, no plaintext exists (EFAIL).
    NoIntegrity,
    /// Could not decrypt: not encrypted to any team key, corrupt or modified
    /// ciphertext, unsupported algorithm, or a limit was hit. `reason` is one
    /// sentence for the team and never contains plaintext.
    Failed { reason: String },
}

/// Bounds on what one message may cost (SPEC §9 `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoLimits {
    /// Total plaintext over all encrypted parts of one message; more is a
    /// compression bomb and gives [`Decryption::Failed`].
    pub max_decrypted_size: u64,
    /// Deepest multipart nesting looked into.
    pub max_mime_depth: usize,
    /// Most MIME parts in one message (or one decrypted entity).
    pub max_mime_parts: usize,
    /// Most secret-key decryptions tried for one encrypted item (each PKESK
    /// against each matching key; anonymous recipients match every key).
    pub max_pkesk_attempts: usize,
}

impl Default for CryptoLimits {
    /// The SPEC §9 defaults: 100 MiB, depth 50, 1000 parts.
    fn default() -> Self {
        CryptoLimits {
            max_decrypted_size: 100 << 20,
            max_mime_depth: 50,
            max_mime_parts: 1000,
            max_pkesk_attempts: 16,
        }
    }
}

/// Finds and decrypts the OpenPGP-encrypted content of a raw message (RFC 5322
/// bytes): PGP/MIME anywhere in the tree (also inside `multipart/mixed` or
/// `multipart/alternative`), ASCII armor in text bodies (any transfer encoding,
/// also in HTML), and encrypted attachments (armored or binary). Every team key is
/// tried. Signatures inside the encryption are checked against `verify_with` plus
/// any key found in the message (attached `application/pgp-keys`, `Autocrypt:`).
///
/// Nothing depends on the `To:`/`Cc:` headers, so Bcc deliveries work. When a
/// message holds several encrypted parts, any failure fails the whole message
/// (no partial plaintext), and the signature is `Good` only if every part was
/// signed by the same key (`Bad` if any is bad, else `UnknownKey` if any signer
/// is unknown, else `None`).
pub fn decrypt_message(
    raw: &[u8],
    keys: &TeamKeys,
    verify_with: &[Cert],
    limits: &CryptoLimits,
    now: DateTime<Utc>,
) -> Decryption {
    let found = match mime::find_encrypted(raw, limits) {
        Ok(f) => f,
        Err(reason) => return Decryption::Failed { reason },
    };
    if found.items.is_empty() {
        return Decryption::NotEncrypted;
    }

    // Refuse EFAIL-prone ciphertext before any key is used (RFC 9580 §5.7).
    let mut items = Vec::new();
    for item in found.items {
        match scan_packets(&item.data) {
            Scan::Encrypted => items.push(item),
            Scan::NoIntegrity => return Decryption::NoIntegrity,
            Scan::NotEncrypted => {}
            Scan::Unparsable(e) if item.sure => {
                return Decryption::Failed {
                    reason: format!("{}: not a valid OpenPGP message ({e})", item.describe()),
                };
            }
            Scan::Unparsable(_) => {}
        }
    }
    if items.is_empty() {
        return Decryption::NotEncrypted;
    }

    let mut certs: Vec<Cert> = verify_with.to_vec();
    certs.extend(found.certs);
    let mut budget = limits.max_decrypted_size;
    let mut parts = Vec::new();
    let mut statuses = Vec::new();
    for item in &items {
        let (plain, mut status) = match decrypt_one(&item.data, keys, &certs, budget, limits.max_pkesk_attempts, now) {
            Ok(r) => r,
            Err(reason) => {
                return Decryption::Failed {
                    reason: format!("{}: {reason}", item.describe()),
                };
            }
        };
        budget -= plain.len() as u64;
        if status == SignatureStatus::UnknownKey {
            // The signer's key may travel inside the encryption (Thunderbird
            // attaches it there): verify again with those keys.
            let inside = mime::certs_in(&plain, limits);
            if !inside.is_empty() {
                let mut more = certs.clone();
                more.extend(inside);
                if let Ok((_, s)) =
                    decrypt_one(&item.data, keys, &more, budget + plain.len() as u64, limits.max_pkesk_attempts, now)
                {
                    status = s;
                }
            }
        }
        if item.kind == mime::Kind::PgpMime && status == SignatureStatus::None {
            // RFC 3156 §6.1: signed (multipart/signed), then encrypted.
            if let Some(s) = mime::verify_signed_entity(&plain, &certs, now, limits) {
                status = s;
            }
        }
        statuses.push(status);
        parts.push(plain);
    }

    let signature = combine(&statuses);
    if items.len() == 1 && items[0].kind == mime::Kind::PgpMime {
        let inner = parts.pop().expect("one part");
        return Decryption::Decrypted {
            inner,
            signature,
            inline: false,
        };
    }
    let inner = mime::synthesize(&items, &parts);
    Decryption::Decrypted {
        inner,
        signature,
        inline: items.iter().any(|i| i.kind != mime::Kind::PgpMime),
    }
}

fn combine(statuses: &[SignatureStatus]) -> SignatureStatus {
    if statuses.contains(&SignatureStatus::Bad) {
        return SignatureStatus::Bad;
    }
    if statuses.contains(&SignatureStatus::UnknownKey) {
        return SignatureStatus::UnknownKey;
    }
    match statuses.first() {
        Some(first @ SignatureStatus::Good { .. }) if statuses.iter().all(|s| s.signer() == first.signer()) => {
            first.clone()
        }
        _ => SignatureStatus::None,
    }
}

/// What the outer packets of an OpenPGP message say, before decrypting.
enum Scan {
    /// PKESK/SKESK followed by SEIPD (v1 with MDC, v2 AEAD) or AED.
    Encrypted,
    /// A SED packet (tag 9): no integrity protection.
    NoIntegrity,
    /// Valid OpenPGP but not encrypted (a key, a signature, a signed message).
    NotEncrypted,
    Unparsable(String),
}

/// Looks at the top-level packets only (RFC 9580 §10.3 message grammar), without
/// decrypting anything.
fn scan_packets(data: &[u8]) -> Scan {
    let mut ppr = match PacketParser::from_bytes(data) {
        Ok(p) => p,
        Err(e) => return Scan::Unparsable(e.to_string()),
    };
    let mut encrypted = false;
    while let PacketParserResult::Some(pp) = ppr {
        match pp.packet.tag() {
            Tag::SED => return Scan::NoIntegrity,
            Tag::SEIP | Tag::AED | Tag::PKESK | Tag::SKESK => encrypted = true,
            _ => {}
        }
        ppr = match pp.next() {
            Ok((_, next)) => next,
            Err(e) => return Scan::Unparsable(e.to_string()),
        };
    }
    if encrypted {
        Scan::Encrypted
    } else {
        Scan::NotEncrypted
    }
}

/// Decrypts one OpenPGP message, reading at most `budget` bytes of plaintext.
/// Everything is read before anything is returned, so a failed integrity check at
/// the end discards all plaintext.
fn decrypt_one(
    data: &[u8],
    keys: &TeamKeys,
    certs: &[Cert],
    budget: u64,
    max_pkesk_attempts: usize,
    now: DateTime<Utc>,
) -> Result<(Vec<u8>, SignatureStatus), String> {
    let p = policy();
    let helper = Helper {
        keys,
        certs,
        status: SignatureStatus::None,
        attempts_left: max_pkesk_attempts,
    };
    let buffer = usize::try_from(budget.saturating_add(1))
        .unwrap_or(usize::MAX)
        .min(DECRYPT_BUFFER);
    let builder = DecryptorBuilder::from_bytes(data).map_err(|e| format!("cannot parse: {e}"))?;
    let mut decryptor = match builder
        .buffer_size(buffer)
        .with_policy(&p, sys(now), helper)
    {
        Ok(d) => d,
        Err(e) => return Err(explain(e)),
    };
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match decryptor.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => {
                out.clear();
                return Err(explain(e.into()));
            }
        };
        if n == 0 {
            break;
        }
        if (out.len() + n) as u64 > budget {
            out.clear();
            return Err("decrypted size exceeds max_decrypted_size (compression bomb?)".into());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    let helper = decryptor.into_helper();
    Ok((out, helper.status))
}

/// Turns a sequoia error into a reason for the team (no plaintext in sequoia
/// errors; they name packets, algorithms and key ids).
fn explain(e: anyhow::Error) -> String {
    if let Some(NotForUs(msg)) = e.downcast_ref::<NotForUs>() {
        return msg.clone();
    }
    let text = format!("{e:#}");
    let lower = text.to_ascii_lowercase();
    if [
        "manipulated",
        "mdc",
        "authentication",
        "malformed",
        "truncated",
        "decompress",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return format!("the ciphertext is corrupt or was modified ({text})");
    }
    format!("decryption failed ({text})")
}

/// Raised by [`Helper::decrypt`] when no team key opens any session key, so the
/// reason (which key ids the sender used) reaches the team unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotForUs(String);

/// What sequoia's streaming decryptor/verifier asks for: secret keys to open the
/// session key, certificates to check signatures, and where to put the verdict.
struct Helper<'a> {
    /// Tried in order for each PKESK (empty when only verifying).
    keys: &'a TeamKeys,
    /// Certificates that may have signed (`verify_with` plus keys in the message).
    certs: &'a [Cert],
    /// Set by `check` once the whole message has been read.
    status: SignatureStatus,
    /// Secret-key decryptions still allowed (`max_pkesk_attempts`).
    attempts_left: usize,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self
            .certs
            .iter()
            .filter(|c| {
                c.keys()
                    .any(|k| ids.iter().any(|id| id.aliases(k.key().key_handle())))
            })
            .cloned()
            .collect())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        self.status = status_of(structure);
        Ok(())
    }
}

/// Collapses the signature results of a message: `Good` if some signature verifies
/// and none is bad; `Bad` if any is bad; `UnknownKey` if the only signatures are
/// by keys we lack.
fn status_of(structure: MessageStructure) -> SignatureStatus {
    let mut good = None;
    let mut bad = false;
    let mut missing = false;
    for layer in structure.into_iter() {
        if let MessageLayer::SignatureGroup { results } = layer {
            for r in results {
                match r {
                    Ok(g) => {
                        good.get_or_insert_with(|| {
                            use sha2::Digest as _;
                            let packet = openpgp::Packet::from(g.sig.clone()).to_vec().unwrap_or_default();
                            let id = sha2::Sha256::digest(&packet).iter().map(|b| format!("{b:02x}")).collect::<String>();
                            let created = g.sig.signature_creation_time().map(DateTime::<Utc>::from);
                            (g.ka.cert().fingerprint().to_hex(), created, id)
                        });
                    }
                    Err(VerificationError::MissingKey { .. }) => missing = true,
                    Err(_) => bad = true,
                }
            }
        }
    }
    match (good, bad, missing) {
        (_, true, _) => SignatureStatus::Bad,
        (Some((fingerprint, created, id)), false, _) => SignatureStatus::Good { fingerprint, created, id },
        (None, false, true) => SignatureStatus::UnknownKey,
        (None, false, false) => SignatureStatus::None,
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let mut recipients = Vec::new();
        for pkesk in pkesks {
            let recipient = pkesk.recipient();
            recipients.push(match &recipient {
                Some(r) => r.to_hex(),
                None => "anonymous recipient".into(),
            });
            for tk in &self.keys.keys {
                for sk in &tk.secrets {
                    if let Some(r) = &recipient
                        && !r.aliases(sk.key_handle())
                    {
                        continue;
                    }
                    if self.attempts_left == 0 {
                        return Err(NotForUs(format!(
                            "gave up after limits.max_pkesk_attempts decryption attempts ({} PKESK packets)",
                            pkesks.len()
                        ))
                        .into());
                    }
                    self.attempts_left -= 1;
                    let Ok(mut pair) = sk.clone().into_keypair() else {
                        continue;
                    };
                    if let Some((algo, session_key)) = pkesk.decrypt(&mut pair, sym_algo)
                        && decrypt(algo, &session_key)
                    {
                        return Ok(Some(tk.cert.clone().strip_secret_key_material()));
                    }
                }
            }
        }
        let reason = if pkesks.is_empty() && !skesks.is_empty() {
            "encrypted with a password, not to the team key".to_string()
        } else {
            format!(
                "not encrypted to any team key (encrypted to {}; team key is {})",
                recipients.join(", "),
                self.keys.signing_fingerprint()
            )
        };
        Err(NotForUs(reason).into())
    }
}

/// Checks a top-level `multipart/signed` message (RFC 3156 §5) against `certs`,
/// the way SPEC §5.2 wants team mail signed: over the whole message. Returns
/// `None` when the message is not `multipart/signed` at its root (a signed part
/// deeper in the tree does not cover the whole message). Lines are canonicalized
/// to CRLF before verifying (RFC 3156 §5, RFC 2046 §4.1.1), so mail stored with
/// bare LF still verifies.
pub fn verify_mime_signature(raw: &[u8], certs: &[Cert], now: DateTime<Utc>) -> SignatureStatus {
    mime::verify_signed_entity(raw, certs, now, &CryptoLimits::default())
        .unwrap_or(SignatureStatus::None)
}

/// Verifies a detached signature over `data` (RFC 9580 §5.2.4).
fn verify_detached(data: &[u8], sig: &[u8], certs: &[Cert], now: DateTime<Utc>) -> SignatureStatus {
    let p = policy();
    let helper = Helper {
        keys: &EMPTY_KEYS,
        certs,
        status: SignatureStatus::Bad,
        attempts_left: 0,
    };
    let verifier =
        DetachedVerifierBuilder::from_bytes(sig).and_then(|b| b.with_policy(&p, sys(now), helper));
    let mut v = match verifier {
        Ok(v) => v,
        Err(_) => return SignatureStatus::Bad,
    };
    // `verify_bytes` fails when no signature is good; the helper has recorded why.
    let _ = v.verify_bytes(data);
    v.into_helper().status
}

/// No secret keys: for the verify-only helper.
static EMPTY_KEYS: TeamKeys = TeamKeys { keys: Vec::new() };

// ------------------------------------------------------------- reporter keys

/// The key to encrypt replies to `sender` with (SPEC §4), or `None` to send in
/// the clear. Sources, in order of trust: the operator's `keyring` (vetted, so a
/// forged `From:` with an attached key cannot displace it), then a key attached to
/// the message (`application/pgp-keys`, RFC 3156 §7), then an `Autocrypt:` header
/// whose `addr=` is `sender` (Autocrypt Level 1 §2.1). A certificate qualifies only
/// if one of its valid user ids has the e-mail address `sender` (ASCII
/// case-insensitive), it is neither expired nor revoked at `now` under the
/// standard policy, and it has a live encryption-capable key. Secret parts are
/// stripped. Call it on the decrypted `inner` too: keys often travel inside the
/// encryption.
pub fn reporter_cert(
    raw: &[u8],
    sender: &str,
    keyring: &[Cert],
    now: DateTime<Utc>,
) -> Option<Cert> {
    let sender = sender.trim();
    if sender.is_empty() {
        return None;
    }
    if let Some(c) = keyring.iter().find(|c| usable_for(c, sender, now)) {
        return Some(c.clone().strip_secret_key_material());
    }
    let (attached, autocrypt) = mime::keys_in_message(raw, sender);
    attached
        .into_iter()
        .chain(autocrypt)
        .find(|c| usable_for(c, sender, now))
        .map(Cert::strip_secret_key_material)
}

fn usable_for(cert: &Cert, sender: &str, now: DateTime<Utc>) -> bool {
    let p = policy();
    let Ok(vc) = cert.with_policy(&p, sys(now)) else {
        return false;
    };
    if vc.alive().is_err() || matches!(vc.revocation_status(), RevocationStatus::Revoked(_)) {
        return false;
    }
    let uid_matches = vc.userids().any(|ua| {
        !matches!(ua.revocation_status(), RevocationStatus::Revoked(_))
            && ua
                .userid()
                .email()
                .ok()
                .flatten()
                .is_some_and(|e| e.eq_ignore_ascii_case(sender))
    });
    uid_matches && encryption_keys(cert, now).map(|k| k > 0).unwrap_or(false)
}

fn encryption_keys(cert: &Cert, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let p = policy();
    Ok(cert
        .with_policy(&p, sys(now))?
        .keys()
        .alive()
        .revoked(false)
        .supported()
        .key_flags(encryption_flags())
        .count())
}

// -------------------------------------------------------------------- outgoing

/// Wraps an already-built MIME entity (`inner_entity`: headers, blank line, body;
/// it may carry protected headers) into a PGP/MIME `multipart/encrypted` body
/// (RFC 3156 §4), signed then encrypted in one OpenPGP message (RFC 3156 §6.2):
/// signed by the team signing key, encrypted to every live encryption key of
/// every `recipients` cert AND of the team signing cert (so the team can read
/// what it sent). Lines are canonicalized to CRLF first (RFC 3156 §3).
///
/// Returns `(content_type, body)`: the outer message's `Content-Type` header value
/// (with `protocol` and `boundary`) and its body with CRLF line ends. Fails if a
/// recipient has no usable encryption key at `now` (never silently drops one) or
/// the team key cannot sign at `now`.
pub fn encrypt_and_sign_mime(
    inner_entity: &[u8],
    recipients: &[Cert],
    keys: &TeamKeys,
    now: DateTime<Utc>,
) -> anyhow::Result<(String, Vec<u8>)> {
    let p = policy();
    let team = &keys.keys[0];
    let signer = signing_keypair(team, &p, now)?;

    let mut certs: Vec<&Cert> = recipients.iter().collect();
    certs.push(&team.cert);
    let mut enc_keys = Vec::new();
    for cert in &certs {
        let vc = cert
            .with_policy(&p, sys(now))
            .with_context(|| format!("key {} is not valid now", cert.fingerprint()))?;
        let before = enc_keys.len();
        for ka in vc
            .keys()
            .alive()
            .revoked(false)
            .supported()
            .key_flags(encryption_flags())
        {
            enc_keys.push(ka);
        }
        if enc_keys.len() == before {
            bail!(
                "key {} has no valid encryption key at {now}",
                cert.fingerprint()
            );
        }
    }

    let entity = mime::to_crlf(inner_entity);
    let mut armored = Vec::new();
    {
        let message = Message::new(&mut armored);
        let message = Armorer::new(message).build()?;
        let message = Encryptor::for_recipients(message, enc_keys).build()?;
        let mut sb = Signer::new(message, signer)?.creation_time(now);
        for cert in recipients {
            sb = sb.add_intended_recipient(cert);
        }
        sb = sb.add_intended_recipient(&team.cert);
        let message = sb.build()?;
        let mut w = LiteralWriter::new(message).date(now)?.build()?;
        w.write_all(&entity)?;
        w.finalize()?;
    }
    let armored = mime::to_crlf(&armored);
    let boundary = mime::boundary_for(&armored);
    let content_type = format!(
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"{boundary}\""
    );
    let mut body = Vec::new();
    write!(
        body,
        "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n\
         --{boundary}\r\n\
         Content-Type: application/pgp-encrypted\r\n\
         Content-Description: PGP/MIME version identification\r\n\
         \r\n\
         Version: 1\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
         Content-Description: OpenPGP encrypted message\r\n\
         Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\
         \r\n"
    )?;
    body.extend_from_slice(&armored);
    if !armored.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "\r\n--{boundary}--\r\n")?;
    Ok((content_type, body))
}

/// Signs an already-built MIME entity for a cleartext mail (RFC 3156 §5
/// `multipart/signed`, detached SHA-256 signature by the team signing key): for
/// what is public anyway (the advisory at the lift) but must be provably ours.
/// Returns `(content_type, body)` with CRLF line ends.
pub fn sign_mime(entity: &[u8], keys: &TeamKeys, now: DateTime<Utc>) -> anyhow::Result<(String, Vec<u8>)> {
    let p = policy();
    let team = keys.keys.first().context("no team key to sign with")?;
    let signer = signing_keypair(team, &p, now)?;
    let entity = mime::to_crlf(entity);
    let mut sig = Vec::new();
    {
        let message = Message::new(&mut sig);
        let message = Armorer::new(message).kind(openpgp::armor::Kind::Signature).build()?;
        let mut w = Signer::new(message, signer)?
            .creation_time(now)
            .hash_algo(openpgp::types::HashAlgorithm::SHA256)?
            .detached()
            .build()?;
        w.write_all(&entity)?;
        w.finalize()?;
    }
    let b = mime::boundary_for(&entity);
    let mut body = Vec::with_capacity(entity.len() + sig.len() + 256);
    body.extend_from_slice(format!("--{b}\r\n").as_bytes());
    body.extend_from_slice(&entity);
    body.extend_from_slice(format!("\r\n--{b}\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\nContent-Description: OpenPGP signature\r\n\r\n").as_bytes());
    body.extend_from_slice(&mime::to_crlf(&sig));
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    Ok((format!("multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"{b}\""), body))
}

fn signing_keypair(
    team: &TeamKey,
    p: &dyn Policy,
    now: DateTime<Utc>,
) -> anyhow::Result<openpgp::crypto::KeyPair> {
    let vc = team
        .cert
        .with_policy(p, sys(now))
        .with_context(|| format!("team key {} is not valid now", team.cert.fingerprint()))?;
    for ka in vc.keys().alive().revoked(false).supported().for_signing() {
        let fpr = ka.key().fingerprint();
        if let Some(sk) = team.secrets.iter().find(|s| s.fingerprint() == fpr) {
            return sk.clone().into_keypair();
        }
    }
    Err(anyhow!(
        "team key {} has no valid signing key with secret parts at {now}",
        team.cert.fingerprint()
    ))
}

#[cfg(test)]
mod tests;
