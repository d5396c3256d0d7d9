//! The MIME side of OpenPGP mail: where the ciphertext, signatures and keys sit in
//! a message (RFC 3156, Autocrypt), and the entity synthesized from decrypted
//! inline parts. Pure: bytes in, values out.

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;

use super::{CryptoLimits, SignatureStatus};

const BEGIN_MESSAGE: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END_MESSAGE: &[u8] = b"-----END PGP MESSAGE-----";
const BEGIN_KEY: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
const END_KEY: &[u8] = b"-----END PGP PUBLIC KEY BLOCK-----";

/// File name endings of encrypted attachments (GnuPG's `.gpg`/`.asc`, PGP's `.pgp`).
const ENCRYPTED_EXTENSIONS: [&str; 3] = [".asc", ".gpg", ".pgp"];

/// Where an encrypted item was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The second part of a `multipart/encrypted` (RFC 3156 §4): decrypts to a
    /// MIME entity.
    PgpMime,
    /// An armored block in a text body: decrypts to text.
    Inline,
    /// An attachment: decrypts to a file.
    Attachment,
}

/// One piece of ciphertext found in a message.
pub(super) struct Item {
    /// The OpenPGP message, armored or binary.
    pub data: Vec<u8>,
    pub kind: Kind,
    /// Attachment file name, if the part had one.
    pub filename: Option<String>,
    /// Labelled as OpenPGP (PGP/MIME, armor, `.gpg` name): failing to parse it is
    /// a failure, not a sign that it was some other binary.
    pub sure: bool,
}

impl Item {
    /// Names the item in a failure reason (never its content).
    pub fn describe(&self) -> String {
        match (self.kind, &self.filename) {
            (Kind::PgpMime, _) => "PGP/MIME part".into(),
            (Kind::Inline, None) => "inline armored text".into(),
            (_, Some(name)) => format!("attachment {name:?}"),
            (Kind::Attachment, None) => "encrypted attachment".into(),
        }
    }
}

/// What [`find_encrypted`] found.
pub(super) struct Found {
    pub items: Vec<Item>,
    /// Keys carried by the message (attachments, Autocrypt), for verifying.
    pub certs: Vec<Cert>,
}

/// The prescan bounds for content the OpenPGP layer parses (decrypted
/// entities are attacker-made too: a nesting bomb may hide inside encryption).
fn prescan_limits(limits: &CryptoLimits) -> crate::prescan::Limits {
    crate::prescan::Limits {
        max_message_size: limits.max_decrypted_size,
        // The walk below counts containers; the prescan counts the leaves
        // inside the deepest container as one more level.
        max_mime_depth: limits.max_mime_depth.saturating_add(1),
        max_mime_parts: limits.max_mime_parts,
        ..crate::prescan::Limits::default()
    }
}

/// Parse `data` with mail-parser only if it passes the prescan.
fn parse_bounded<'a>(data: &'a [u8], limits: &CryptoLimits) -> Option<Message<'a>> {
    crate::prescan::scan(data, &prescan_limits(limits)).ok()?;
    MessageParser::default().parse(data)
}

/// Walks the MIME tree of `raw` and collects every encrypted item. Errors are the
/// limit violations (one sentence each).
pub(super) fn find_encrypted(raw: &[u8], limits: &CryptoLimits) -> Result<Found, String> {
    crate::prescan::scan(raw, &prescan_limits(limits)).map_err(|b| b.to_string())?;
    let Some(msg) = MessageParser::default().parse(raw) else {
        // Not even headers: maybe bare armor.
        let items = armored_blocks(raw, BEGIN_MESSAGE, END_MESSAGE)
            .into_iter()
            .map(|data| Item {
                data,
                kind: Kind::Inline,
                filename: None,
                sure: true,
            })
            .collect();
        return Ok(Found {
            items,
            certs: Vec::new(),
        });
    };
    if msg.parts.len() > limits.max_mime_parts {
        return Err(format!(
            "message has {} MIME parts, more than max_mime_parts ({})",
            msg.parts.len(),
            limits.max_mime_parts
        ));
    }
    let mut items = Vec::new();
    walk(&msg, 0, 0, limits, &mut items)?;
    let mut certs = attached_keys(&msg);
    certs.extend(autocrypt_keys(&msg, None));
    Ok(Found { items, certs })
}

fn walk(
    msg: &Message<'_>,
    id: u32,
    depth: usize,
    limits: &CryptoLimits,
    items: &mut Vec<Item>,
) -> Result<(), String> {
    if depth > limits.max_mime_depth {
        return Err(format!(
            "MIME nesting deeper than max_mime_depth ({})",
            limits.max_mime_depth
        ));
    }
    let Some(part) = msg.part(id) else {
        return Ok(());
    };
    match &part.body {
        PartType::Multipart(children) => {
            let parts: Vec<&MessagePart<'_>> =
                children.iter().filter_map(|c| msg.part(*c)).collect();
            if is_type(part, "multipart", "encrypted") {
                // RFC 3156 §4: the control part (application/pgp-encrypted) and
                // the ciphertext (application/octet-stream), in that order; some
                // clients mislabel the second, so fall back to it by position.
                let ciphertext = parts
                    .iter()
                    .find(|c| is_type(c, "application", "octet-stream"))
                    .or_else(|| parts.get(1));
                match ciphertext {
                    Some(c) => items.push(Item {
                        data: c.contents().to_vec(),
                        kind: Kind::PgpMime,
                        filename: None,
                        sure: true,
                    }),
                    None => return Err("multipart/encrypted without an encrypted part".into()),
                }
                return Ok(());
            }
            if let Some(data) = exchange_mangled(&parts) {
                items.push(Item {
                    data,
                    kind: Kind::PgpMime,
                    filename: None,
                    sure: true,
                });
                return Ok(());
            }
            if is_type(part, "multipart", "alternative") {
                // The alternatives carry the same content (RFC 2046 §5.1.4):
                // decrypt one, preferring text/plain over HTML.
                let mut order: Vec<u32> = children.clone();
                order.sort_by_key(|c| msg.part(*c).is_none_or(|p| !is_type(p, "text", "plain")));
                for c in order {
                    let mut found = Vec::new();
                    walk(msg, c, depth + 1, limits, &mut found)?;
                    if !found.is_empty() {
                        items.extend(found);
                        break;
                    }
                }
                return Ok(());
            }
            for c in children {
                walk(msg, *c, depth + 1, limits, items)?;
            }
        }
        PartType::Text(text) => inline_items(text.as_bytes(), part, items),
        PartType::Html(html) => {
            let text = mail_parser::decoders::html::html_to_text(html);
            inline_items(text.as_bytes(), part, items);
        }
        PartType::Binary(data) | PartType::InlineBinary(data) => {
            if is_type(part, "application", "pgp-keys")
                || is_type(part, "application", "pgp-signature")
            {
                return Ok(());
            }
            if data
                .windows(BEGIN_MESSAGE.len())
                .any(|w| w == BEGIN_MESSAGE)
            {
                inline_items(data, part, items);
                return Ok(());
            }
            let named = part.attachment_name().is_some_and(|n| {
                ENCRYPTED_EXTENSIONS
                    .iter()
                    .any(|e| n.to_ascii_lowercase().ends_with(e))
            });
            let typed = is_type(part, "application", "pgp-encrypted")
                || is_type(part, "application", "pgp")
                || is_type(part, "application", "octet-stream");
            if (named || typed) && looks_like_encrypted_packet(data) {
                items.push(Item {
                    data: data.to_vec(),
                    kind: Kind::Attachment,
                    filename: part.attachment_name().map(str::to_string),
                    sure: named,
                });
            }
        }
        // A forwarded message is the forwarder's quote, not this report's
        // encryption; it stays as it is.
        PartType::Message(_) => {}
    }
    Ok(())
}

/// Microsoft Exchange rewrites PGP/MIME into `multipart/mixed` { empty text,
/// `application/pgp-encrypted` "Version: 1", `application/octet-stream`
/// `encrypted.asc` }. The content is still a PGP/MIME entity, so it is treated as
/// one (as Enigmail and Thunderbird do).
fn exchange_mangled(parts: &[&MessagePart<'_>]) -> Option<Vec<u8>> {
    let control = parts.iter().any(|p| {
        is_type(p, "application", "pgp-encrypted")
            && String::from_utf8_lossy(p.contents())
                .trim()
                .eq_ignore_ascii_case("Version: 1")
    });
    if !control {
        return None;
    }
    parts
        .iter()
        .find(|p| {
            is_type(p, "application", "octet-stream") && find(p.contents(), BEGIN_MESSAGE).is_some()
        })
        .map(|p| p.contents().to_vec())
}

fn inline_items(text: &[u8], part: &MessagePart<'_>, items: &mut Vec<Item>) {
    let filename = part.attachment_name().map(str::to_string);
    for data in armored_blocks(text, BEGIN_MESSAGE, END_MESSAGE) {
        items.push(Item {
            data,
            kind: if filename.is_some() {
                Kind::Attachment
            } else {
                Kind::Inline
            },
            filename: filename.clone(),
            sure: true,
        });
    }
}

/// The first octet of a binary OpenPGP message that starts with a session key
/// packet (RFC 9580 §4.2: old or new format header, tag 1 PKESK or 3 SKESK) or a
/// bare encrypted data packet (tags 9, 18, 20).
fn looks_like_encrypted_packet(data: &[u8]) -> bool {
    let Some(&b) = data.first() else {
        return false;
    };
    if b & 0x80 == 0 {
        return false;
    }
    let tag = if b & 0x40 != 0 {
        b & 0x3f
    } else {
        (b >> 2) & 0x0f
    };
    matches!(tag, 1 | 3 | 9 | 18 | 20)
}

/// Every `BEGIN ... END` armored block in `text`, with its lines, cut at the end
/// marker (trailing text on the END line dropped).
fn armored_blocks(text: &[u8], begin: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, begin) {
        let after = &rest[start..];
        let Some(stop) = find(after, end) else {
            // Truncated armor: hand it over anyway, the parser will say so.
            out.push(after.to_vec());
            break;
        };
        let block_end = stop + end.len();
        out.push(after[..block_end].to_vec());
        rest = &after[block_end..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_type(part: &MessagePart<'_>, t: &str, sub: &str) -> bool {
    part.is_content_type(t, sub)
}

// -------------------------------------------------------------------- keys

/// Keys attached as `application/pgp-keys` (RFC 3156 §7) or armored public key
/// blocks in any text part.
fn attached_keys(msg: &Message<'_>) -> Vec<Cert> {
    let mut out = Vec::new();
    for part in &msg.parts {
        match &part.body {
            PartType::Binary(d) | PartType::InlineBinary(d)
                if is_type(part, "application", "pgp-keys") =>
            {
                out.extend(parse_certs(d));
            }
            PartType::Binary(d) | PartType::InlineBinary(d) => {
                for block in armored_blocks(d, BEGIN_KEY, END_KEY) {
                    out.extend(parse_certs(&block));
                }
            }
            PartType::Text(t) => {
                for block in armored_blocks(t.as_bytes(), BEGIN_KEY, END_KEY) {
                    out.extend(parse_certs(&block));
                }
            }
            _ => {}
        }
    }
    out
}

fn parse_certs(data: &[u8]) -> Vec<Cert> {
    match CertParser::from_bytes(data) {
        Ok(p) => p.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// Keys from `Autocrypt:` headers (Autocrypt Level 1 §2.1): `addr=` must be
/// present and, when `addr` is given, equal to it (ASCII case-insensitive); a
/// header with an unknown critical attribute (one not starting with `_`) is
/// ignored, as the spec requires.
fn autocrypt_keys(msg: &Message<'_>, addr: Option<&str>) -> Vec<Cert> {
    let raw = msg.raw_message();
    let mut out = Vec::new();
    for h in msg.root_part().headers.iter() {
        if !h.name().eq_ignore_ascii_case("Autocrypt") {
            continue;
        }
        let Some(value) = raw.get(h.offset_start() as usize..h.offset_end() as usize) else {
            continue;
        };
        let value = String::from_utf8_lossy(value);
        let mut header_addr = None;
        let mut keydata = None;
        let mut critical_unknown = false;
        for attr in value.split(';') {
            let Some((k, v)) = attr.split_once('=') else {
                continue;
            };
            match k.trim() {
                "addr" => header_addr = Some(v.trim().to_string()),
                "keydata" => keydata = Some(v.split_whitespace().collect::<String>()),
                "prefer-encrypt" => {}
                k if k.starts_with('_') => {}
                _ => critical_unknown = true,
            }
        }
        let (Some(a), Some(k)) = (header_addr, keydata) else {
            continue;
        };
        if critical_unknown || addr.is_some_and(|want| !want.eq_ignore_ascii_case(&a)) {
            continue;
        }
        // keydata is base64 of binary key packets: wrap it as armor (the CRC is
        // optional, RFC 9580 §6.1) and let the OpenPGP parser decode it.
        let mut armored = Vec::new();
        armored.extend_from_slice(BEGIN_KEY);
        armored.extend_from_slice(b"\n\n");
        for line in k.as_bytes().chunks(64) {
            armored.extend_from_slice(line);
            armored.push(b'\n');
        }
        armored.extend_from_slice(END_KEY);
        armored.push(b'\n');
        out.extend(parse_certs(&armored));
    }
    out
}

/// The keys a message offers for `sender`: (attached, Autocrypt).
pub(super) fn keys_in_message(raw: &[u8], sender: &str) -> (Vec<Cert>, Vec<Cert>) {
    match parse_bounded(raw, &CryptoLimits::default()) {
        Some(msg) => (attached_keys(&msg), autocrypt_keys(&msg, Some(sender))),
        None => (Vec::new(), Vec::new()),
    }
}

/// Keys inside decrypted content: a MIME entity with key attachments, or armored
/// key blocks in plain text.
pub(super) fn certs_in(plain: &[u8], limits: &CryptoLimits) -> Vec<Cert> {
    let mut out = Vec::new();
    if let Some(msg) = parse_bounded(plain, limits)
    {
        out.extend(attached_keys(&msg));
    }
    if out.is_empty() {
        for block in armored_blocks(plain, BEGIN_KEY, END_KEY) {
            out.extend(parse_certs(&block));
        }
    }
    out
}

// --------------------------------------------------------------- signatures

/// If `entity` is `multipart/signed` with `protocol="application/pgp-signature"`
/// at its root (RFC 3156 §5), the status of its signature over the first part;
/// otherwise `None`.
pub(super) fn verify_signed_entity(
    entity: &[u8],
    certs: &[Cert],
    now: DateTime<Utc>,
    limits: &CryptoLimits,
) -> Option<SignatureStatus> {
    if crate::prescan::scan(entity, &prescan_limits(limits)).is_err() {
        return Some(SignatureStatus::Bad);
    }
    let msg = MessageParser::default().parse(entity)?;
    let root = msg.root_part();
    if !is_type(root, "multipart", "signed") {
        return None;
    }
    let protocol = root.content_type().and_then(|ct| ct.attribute("protocol"));
    if !protocol.is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-signature")) {
        return None;
    }
    let PartType::Multipart(children) = &root.body else {
        return None;
    };
    let (Some(signed), Some(sig)) = (
        children.first().and_then(|c| msg.part(*c)),
        children.get(1).and_then(|c| msg.part(*c)),
    ) else {
        return Some(SignatureStatus::Bad);
    };
    let raw = msg.raw_message();
    let start = signed.raw_header_offset() as usize;
    let end = signed.raw_end_offset() as usize;
    let Some(bytes) = raw.get(start..end) else {
        return Some(SignatureStatus::Bad);
    };
    // mail-parser ends the part before the CRLF that belongs to the boundary
    // (RFC 2046 §5.1.1), which is exactly the signed data.
    let data = to_crlf(bytes);
    Some(super::verify_detached(&data, sig.contents(), certs, now))
}

// ---------------------------------------------------------------- building

/// Bare LF to CRLF, leaving CRLF alone (MIME canonical form, RFC 2046 §4.1.1).
pub(super) fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// A multipart boundary derived from the content (FNV-1a), so output is
/// deterministic; it cannot occur in base64 or armor (no `=` runs, no `_`).
pub(super) fn boundary_for(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("=_secmail_{h:016x}")
}

/// The MIME entity standing for decrypted inline text and attachments: one part
/// per item, wrapped in `multipart/mixed` when there are several.
pub(super) fn synthesize(items: &[Item], plains: &[Vec<u8>]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = items
        .iter()
        .zip(plains)
        .map(|(i, p)| entity_for(i, p))
        .collect();
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let mut all = Vec::new();
    for p in &parts {
        all.extend_from_slice(p);
    }
    let mut boundary = boundary_for(&all);
    while find(&all, boundary.as_bytes()).is_some() {
        boundary.push('x');
    }
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").into_bytes();
    for p in &parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(p);
        if !p.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fn entity_for(item: &Item, plain: &[u8]) -> Vec<u8> {
    match (item.kind, &item.filename) {
        (Kind::PgpMime, _) => to_crlf(plain),
        (Kind::Inline, None) => {
            let text = String::from_utf8_lossy(plain);
            let mut out =
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
            out.extend_from_slice(&base64_lines(text.as_bytes()));
            out
        }
        (_, name) => {
            let name = name
                .as_deref()
                .map(decrypted_name)
                .unwrap_or_else(|| "decrypted.bin".into());
            let mut out = format!(
                "Content-Type: application/octet-stream; name=\"{name}\"\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            )
            .into_bytes();
            out.extend_from_slice(&base64_lines(plain));
            out
        }
    }
}

/// `poc.txt.asc` -> `poc.txt`; quotes and control characters replaced so the
/// name is safe inside a quoted MIME parameter.
fn decrypted_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let base = ENCRYPTED_EXTENSIONS
        .iter()
        .find(|e| lower.ends_with(*e) && name.len() > e.len())
        .map(|e| &name[..name.len() - e.len()])
        .unwrap_or(name);
    base.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Base64 (RFC 2045 §6.8) in 76-character CRLF lines.
pub(super) fn base64_lines(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 4);
    let mut line = 0;
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let quad = [
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            if chunk.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            },
            if chunk.len() > 2 {
                ALPHABET[n as usize & 63]
            } else {
                b'='
            },
        ];
        out.extend_from_slice(&quad);
        line += 4;
        if line == 76 {
            out.extend_from_slice(b"\r\n");
            line = 0;
        }
    }
    if line > 0 {
        out.extend_from_slice(b"\r\n");
    }
    out
}
