//! What the spam signals see of a body (pure): the first part of the decoded
//! text and a few facts about the message's structure (which text parts, how
//! many images and links, attachment names, the names inside attached zip
//! archives). Facts only; [`crate::spam`] turns them into named, scored hits.
//!
//! Everything here is bounded: the text is cut at [`HEAD_CHARS`] characters
//! (on a character boundary), link counting looks at the first [`HTML_SCAN`]
//! bytes of HTML, and a zip's central directory is read for at most
//! [`MAX_ZIP_NAMES`] names. An encrypted message gets no shape at all: its
//! body is never scored on content.

use std::sync::LazyLock;

use mail_parser::{Message, MimeHeaders, PartType};
use regex::Regex;

/// How much decoded text the body signals read: the opening of a message
/// carries its pitch (or its report), and the cost stays flat.
pub const HEAD_CHARS: usize = 4096;
/// How many bytes of an HTML part are scanned for links.
const HTML_SCAN: usize = 64 * 1024;
/// Names read from one zip archive's central directory, at most.
const MAX_ZIP_NAMES: usize = 1000;
/// How a nested message (`message/rfc822`) is listed among the attachments.
pub const FORWARDED: &str = "(forwarded message)";
/// Attachments looked at, at most (the prescan already bounds the parts).
const MAX_ATTACHMENTS: usize = 100;

/// The facts about one message's body that the spam signals use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyShape {
    /// The first [`HEAD_CHARS`] characters of the decoded text (the first
    /// text/plain part, or the first HTML part with its tags removed).
    pub head: String,
    /// Non-blank characters of text in every text/plain and HTML body part
    /// (HTML without its tags): 0 for an image-only or empty message.
    pub text_chars: usize,
    /// Whether a text/plain body part exists.
    pub has_plain: bool,
    /// Whether an HTML body part exists.
    pub has_html: bool,
    /// Image parts (inline or attached).
    pub images: usize,
    /// Links in the head of the text (`http(s)://`, `www.`) or in the HTML
    /// (`href=`), whichever is more.
    pub links: usize,
    /// Links in `head` or the HTML to a public IPv4 address instead of a
    /// name (`http://81.9.8.40/...`); loopback and private addresses, common
    /// in a proof of concept, do not count.
    pub ip_links: usize,
    /// Share of upper-case letters among the letters of `head` (0 when it
    /// has fewer than [`CAPS_MIN_LETTERS`]).
    pub caps_ratio: f64,
    /// Words in `head`.
    pub words: usize,
    /// File names of the attachments, lowercased ([`FORWARDED`] for a
    /// nested message).
    pub attachments: Vec<String>,
    /// File names inside attached zip archives, lowercased.
    pub zipped: Vec<String>,
}

/// Letters `head` needs before its share of capitals means anything.
pub const CAPS_MIN_LETTERS: usize = 200;

static IP_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bhttps?://(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}\b").expect("static regex")
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bhttps?://|\bwww\.[a-z0-9-]+\.").expect("static regex"));
static HREF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)<a\s[^>]*href\s*="#).expect("static regex"));
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)<(?:style|script)\b.*?</(?:style|script)\s*>|<!--.*?-->|<[^>]*>")
        .expect("static regex")
});

/// The first `n` characters of `s` (never cut inside a character).
pub fn head_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// `s` cut to at most `n` bytes, backing off to a character boundary.
fn head_bytes(s: &str, n: usize) -> &str {
    let mut cut = n.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// HTML with its tags, comments, scripts and styles removed and the common
/// entities decoded (good enough to count words and read vocabulary).
pub fn html_text(html: &str) -> String {
    TAG.replace_all(html, " ")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Reads the shape of a parsed (unencrypted) message.
pub fn shape(msg: &Message<'_>) -> BodyShape {
    let mut out = BodyShape::default();
    let mut first_text: Option<String> = None;
    let mut first_html: Option<String> = None;
    let mut hrefs = 0usize;
    let mut html_ip_links = 0usize;
    for part in &msg.parts {
        let is_attachment = part.attachment_name().is_some()
            || part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let ct = part.content_type();
        let is_image = ct.is_some_and(|c| c.ctype().eq_ignore_ascii_case("image"));
        match &part.body {
            PartType::Text(t) if !is_attachment => {
                let plain =
                    ct.is_none_or(|c| c.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain")));
                if plain {
                    out.has_plain = true;
                    out.text_chars += t.chars().filter(|c| !c.is_whitespace()).count();
                    first_text.get_or_insert_with(|| head_chars(t, HEAD_CHARS).to_string());
                }
            }
            PartType::Html(h) if !is_attachment => {
                out.has_html = true;
                let scan = head_bytes(h, HTML_SCAN);
                hrefs += HREF.find_iter(scan).count();
                html_ip_links += public_ip_links(scan);
                let text = html_text(h);
                out.text_chars += text.chars().filter(|c| !c.is_whitespace()).count();
                first_html.get_or_insert_with(|| head_chars(&text, HEAD_CHARS).to_string());
            }
            PartType::Binary(data) | PartType::InlineBinary(data) => {
                if is_image {
                    out.images += 1;
                }
                if let Some(name) = part
                    .attachment_name()
                    .filter(|_| out.attachments.len() < MAX_ATTACHMENTS)
                {
                    let name = name.trim().to_lowercase();
                    if is_zip(&name, ct.map(|c| c.subtype().unwrap_or(""))) {
                        out.zipped
                            .extend(zip_names(data).into_iter().map(|n| n.to_lowercase()));
                        out.zipped.truncate(MAX_ZIP_NAMES);
                    }
                    out.attachments.push(name);
                }
            }
            PartType::Text(_) | PartType::Html(_) => {
                if let Some(name) = part
                    .attachment_name()
                    .filter(|_| out.attachments.len() < MAX_ATTACHMENTS)
                {
                    out.attachments.push(name.trim().to_lowercase());
                }
            }
            // A forwarded message is content (a report may come as one).
            PartType::Message(_) if out.attachments.len() < MAX_ATTACHMENTS => {
                out.attachments.push(FORWARDED.into())
            }
            PartType::Message(_) | PartType::Multipart(_) => {}
        }
    }
    out.head = first_text
        .filter(|t| !t.trim().is_empty())
        .or(first_html)
        .unwrap_or_default();
    out.words = out.head.split_whitespace().count();
    out.links = URL.find_iter(&out.head).count().max(hrefs);
    out.ip_links = public_ip_links(&out.head).max(html_ip_links);
    let (letters, caps) = out
        .head
        .chars()
        .filter(|c| c.is_alphabetic())
        .fold((0usize, 0usize), |(l, u), c| {
            (l + 1, u + c.is_uppercase() as usize)
        });
    out.caps_ratio = if letters >= CAPS_MIN_LETTERS {
        caps as f64 / letters as f64
    } else {
        0.0
    };
    out
}

/// Links to a literal public IPv4 address in `text`.
fn public_ip_links(text: &str) -> usize {
    IP_URL
        .captures_iter(text)
        .filter(|c| {
            let (a, b): (u8, u8) = (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0));
            !(a == 0
                || a == 10
                || a == 127
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168))
        })
        .count()
}

fn is_zip(name: &str, subtype: Option<&str>) -> bool {
    name.ends_with(".zip")
        || subtype.is_some_and(|s| {
            s.eq_ignore_ascii_case("zip") || s.eq_ignore_ascii_case("x-zip-compressed")
        })
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// The file names a zip archive lists, read from its central directory
/// (APPNOTE.TXT §4.3.12, §4.3.16): the end-of-central-directory record is
/// found in the last 64 KiB + 22 bytes, then each directory entry gives a
/// name. At most [`MAX_ZIP_NAMES`]; a damaged archive gives what could be read.
pub fn zip_names(data: &[u8]) -> Vec<String> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const ENTRY: &[u8] = b"PK\x01\x02";
    let from = data.len().saturating_sub(65_536 + 22);
    let Some(eocd) = memchr::memmem::rfind(&data[from..], EOCD).map(|i| from + i) else {
        return Vec::new();
    };
    let (Some(count), Some(mut pos)) = (u16_at(data, eocd + 10), u32_at(data, eocd + 16)) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for _ in 0..count.min(MAX_ZIP_NAMES) {
        if data.get(pos..pos + 4) != Some(ENTRY) {
            break;
        }
        let (Some(name_len), Some(extra), Some(comment)) = (
            u16_at(data, pos + 28),
            u16_at(data, pos + 30),
            u16_at(data, pos + 32),
        ) else {
            break;
        };
        let Some(name) = data.get(pos + 46..pos + 46 + name_len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        pos += 46 + name_len + extra + comment;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored (uncompressed) zip archive holding these names, built by hand.
    pub(crate) fn zip(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut dir = Vec::new();
        for n in names {
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[
                20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            out.extend_from_slice(&(n.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(n.as_bytes());
            dir.extend_from_slice(b"PK\x01\x02");
            dir.extend_from_slice(&[
                20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            dir.extend_from_slice(&(n.len() as u16).to_le_bytes());
            dir.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            dir.extend_from_slice(&offset.to_le_bytes());
            dir.extend_from_slice(n.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&dir);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(dir.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn zip_central_directory_names() {
        assert_eq!(
            zip_names(&zip(&["invoice.pdf.exe", "readme.txt"])),
            ["invoice.pdf.exe", "readme.txt"]
        );
        assert!(zip_names(b"not a zip").is_empty());
        // Damaged: a directory offset past the end gives nothing, no panic.
        let mut z = zip(&["a.exe"]);
        let n = z.len();
        z[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(zip_names(&z).is_empty());
        for cut in 0..n {
            let _ = zip_names(&z[..cut]);
        }
    }

    #[test]
    fn heads_are_cut_on_character_boundaries() {
        let s = "é".repeat(5000);
        assert_eq!(head_chars(&s, HEAD_CHARS).chars().count(), HEAD_CHARS);
        assert_eq!(head_bytes("aé", 2), "a");
        assert_eq!(head_chars("abc", 10), "abc");
    }

    fn parse(raw: &str) -> BodyShape {
        shape(
            &mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .unwrap(),
        )
    }

    #[test]
    fn plain_html_images_links() {
        let s = parse(
            "From: a@b.c\r\nSubject: x\r\n\r\nSee https://a.example/x and www.b.example.org now\r\n",
        );
        assert!(s.has_plain && !s.has_html);
        assert_eq!((s.links, s.words, s.images), (2, 5, 0));
        let s = parse(
            "From: a@b.c\r\n\r\nhttp://81.9.8.40/x and http://127.0.0.1:8080/poc http://192.168.1.1/ http://10.0.0.1/\r\n",
        );
        assert_eq!((s.links, s.ip_links), (4, 1));
        let html = "From: a@b.c\r\nContent-Type: text/html\r\n\r\n<html><style>p{}</style><a href=\"x\"><img src=\"cid:1\"></a><a href='y'>Buy</a></html>\r\n";
        let s = parse(html);
        assert!(s.has_html && !s.has_plain);
        assert_eq!(s.links, 2);
        assert_eq!(s.head.trim(), "Buy");
        assert_eq!(s.text_chars, 3);
    }

    #[test]
    fn attachments_and_zipped_names() {
        let z = zip(&["Scan_0042.PDF.js"]);
        let enc = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &z);
        let raw = format!(
            "From: a@b.c\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b\r\nContent-Type: application/zip; name=\"Docs.zip\"\r\nContent-Disposition: attachment; filename=\"Docs.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{enc}\r\n\
--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"a.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"
        );
        let s = parse(&raw);
        assert_eq!(s.attachments, ["docs.zip", "a.png"]);
        assert_eq!(s.zipped, ["scan_0042.pdf.js"]);
        assert_eq!(s.images, 1);
        assert_eq!(s.head.trim(), "see attached");
        let fwd = parse(
            "From: a@b.c\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nthe report\r\n",
        );
        assert_eq!(fwd.attachments, [FORWARDED]);
    }
}
