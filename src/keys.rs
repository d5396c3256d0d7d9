//! The OpenPGP keys a config names, loaded once: the team secret keys (all tried
//! for decryption, the first signs), each team member's public key, and the
//! operator's reporter keyring.
//!
//! Side effects: reads the key files (their permissions were checked by
//! [`crate::config`]). Never logs key material or passphrases.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::crypto::{self, Cert, CryptoLimits, TeamKeys};

/// Keys for one running secmail.
#[derive(Debug, Default)]
pub struct Keys {
    /// `None` when `[openpgp] secret_keys` is empty: encrypted mail then cannot
    /// be read, and the ack says so.
    pub team: Option<TeamKeys>,
    /// Team members' public keys by lowercased address (from `key_file`).
    pub members: Vec<(String, Cert)>,
    /// `[openpgp] reporter_keyring`.
    pub reporter_keyring: Vec<Cert>,
    /// Pre-notification lists' keys by list name (`[[disclosure.list]] key_file`).
    pub lists: Vec<(String, Cert)>,
    /// Members' keys then the reporter keyring: what incoming signatures are
    /// checked against, gathered once instead of per message.
    verify_with: Vec<Cert>,
}

impl Keys {
    /// Load every key file the config names.
    pub fn load(cfg: &Config) -> Result<Keys> {
        let team = if cfg.openpgp.secret_keys.is_empty() {
            None
        } else {
            Some(
                TeamKeys::load(&cfg.openpgp.secret_keys, cfg.openpgp.passphrase.as_ref().map(|p| p.expose()))
                    .context("loading [openpgp] secret_keys")?,
            )
        };
        let mut members = Vec::new();
        for m in &cfg.team.members {
            if let Some(path) = &m.key_file {
                let certs = crypto::load_keyring(path)
                    .with_context(|| format!("loading the key of team member {} from {}", m.address, path.display()))?;
                let cert = certs
                    .into_iter()
                    .next()
                    .with_context(|| format!("{} holds no key", path.display()))?;
                members.push((m.address.to_ascii_lowercase(), cert));
            }
        }
        let reporter_keyring = match &cfg.openpgp.reporter_keyring {
            Some(p) => crypto::load_keyring(p).with_context(|| format!("loading reporter_keyring {}", p.display()))?,
            None => Vec::new(),
        };
        let mut keys = Keys::new(team, members, reporter_keyring);
        for l in &cfg.disclosure.lists {
            let cert = crypto::load_keyring(&l.key_file)
                .with_context(|| format!("loading the key of disclosure list {} from {}", l.name, l.key_file.display()))?
                .into_iter()
                .next()
                .with_context(|| format!("{} holds no key", l.key_file.display()))?;
            keys.lists.push((l.name.clone(), cert));
        }
        Ok(keys)
    }

    /// The key of a pre-notification list.
    pub fn list_cert(&self, name: &str) -> Option<&Cert> {
        self.lists.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, c)| c)
    }

    /// Keys from loaded parts.
    pub fn new(team: Option<TeamKeys>, members: Vec<(String, Cert)>, reporter_keyring: Vec<Cert>) -> Keys {
        let verify_with = members.iter().map(|(_, c)| c.clone()).chain(reporter_keyring.iter().cloned()).collect();
        Keys { team, members, reporter_keyring, lists: Vec::new(), verify_with }
    }

    /// The public key of a team member, if configured.
    pub fn member_cert(&self, addr: &str) -> Option<&Cert> {
        self.members.iter().find(|(a, _)| a.eq_ignore_ascii_case(addr)).map(|(_, c)| c)
    }

    /// The member whose configured key has this primary fingerprint (hex, any
    /// case): the only way a signature identifies a team member.
    pub fn member_by_fingerprint(&self, fingerprint: &str) -> Option<(&str, &Cert)> {
        self.members
            .iter()
            .find(|(_, c)| c.fingerprint().to_hex().eq_ignore_ascii_case(fingerprint))
            .map(|(a, c)| (a.as_str(), c))
    }

    /// Every configured member key (nothing from messages or keyrings).
    pub fn member_certs(&self) -> Vec<Cert> {
        self.members.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Certificates incoming signatures are checked against.
    pub fn verify_with(&self) -> &[Cert] {
        &self.verify_with
    }
}

/// The decryption bounds of `[limits]`.
pub fn crypto_limits(l: &crate::config::LimitsConfig) -> CryptoLimits {
    CryptoLimits {
        max_decrypted_size: l.max_decrypted_size,
        max_mime_depth: l.max_mime_depth,
        max_mime_parts: l.max_mime_parts,
        max_pkesk_attempts: l.max_pkesk_attempts,
    }
}

/// What reading an incoming message's encryption gave (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Not encrypted.
    Plain,
    /// Decrypted: the decrypted MIME entity (may carry protected headers), the
    /// signature over it, and whether it came from inline armor or attachments
    /// (`inline`: cleartext around it is not covered) rather than PGP/MIME.
    Decrypted { inner: Vec<u8>, signature: crypto::SignatureStatus, inline: bool },
    /// Encrypted, but not readable: why (no integrity protection, wrong key,
    /// corrupt, no team key configured). The raw message is kept.
    Unreadable { reason: String, no_integrity: bool },
}

/// Decrypt a raw message if it is encrypted.
pub fn read(raw: &[u8], encrypted: bool, keys: &Keys, limits: &CryptoLimits, now: DateTime<Utc>) -> Reading {
    if !encrypted {
        return Reading::Plain;
    }
    let Some(team) = &keys.team else {
        return Reading::Unreadable {
            reason: "encrypted, but no team key is configured ([openpgp] secret_keys)".into(),
            no_integrity: false,
        };
    };
    match crypto::decrypt_message(raw, team, keys.verify_with(), limits, now) {
        crypto::Decryption::NotEncrypted => Reading::Plain,
        crypto::Decryption::Decrypted { inner, signature, inline } => Reading::Decrypted { inner, signature, inline },
        crypto::Decryption::NoIntegrity => Reading::Unreadable {
            reason: "refused: encrypted without integrity protection (no MDC/AEAD, the EFAIL class); nothing was decrypted".into(),
            no_integrity: true,
        },
        crypto::Decryption::Failed { reason } => Reading::Unreadable { reason, no_integrity: false },
    }
}
