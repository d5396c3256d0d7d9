//! Limits before the parser (pure): a cheap, non-recursive walk over a raw
//! message that checks it against `[limits]` before mail-parser sees the bytes.
//!
//! mail-parser builds one nested `Message` per `message/rfc822` level; tens of
//! thousands of levels overflow the stack (in parsing or in dropping the tree),
//! which `catch_unwind` cannot catch. So the walk here bounds, with a heap stack
//! and no recursion: the message size, the header block's size and field count,
//! the References/In-Reply-To ids, the MIME nesting depth (multipart and
//! `message/*`, also inside base64 or quoted-printable encoded `message/*`
//! parts, which mail-parser decodes and parses up to three levels deep) and the
//! total number of MIME parts. Its counts are upper bounds of what mail-parser
//! builds (a `--boundary` anywhere counts, as mail-parser's seek does), so a
//! message that passes cannot make the parser go deeper than the limit.

use std::borrow::Cow;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use memchr::memmem;

/// The bounds a message is checked against (from `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_header_size: usize,
    pub max_headers: usize,
    pub max_references: usize,
    pub max_mime_depth: usize,
    pub max_mime_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 50 << 20,
            max_header_size: 1 << 20,
            max_headers: 1000,
            max_references: 1000,
            max_mime_depth: 50,
            max_mime_parts: 1000,
        }
    }
}

/// The limit a message broke: the config key and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// `limits.max_mime_depth`, ...: what an operator would raise.
    pub key: &'static str,
    /// What was found, e.g. "MIME nesting deeper than 50".
    pub detail: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.detail)
    }
}

/// How many levels of encoded `message/*` mail-parser decodes and parses
/// (its `MAX_NESTED_ENCODED`); deeper ones stay binary.
const MAX_NESTED_ENCODED: usize = 3;

/// Where the top-level header block ends and the body starts: after the first
/// empty line (CRLF or bare LF), or the end when there is none.
pub fn body_start(raw: &[u8]) -> usize {
    let mut pos = 0;
    while pos < raw.len() {
        let end = memchr::memchr(b'\n', &raw[pos..]).map(|i| pos + i + 1).unwrap_or(raw.len());
        if &raw[pos..end] == b"\r\n" || &raw[pos..end] == b"\n" {
            return end;
        }
        pos = end;
    }
    raw.len()
}

/// One MIME entity still to look at.
struct Entity {
    /// Index into the buffers (0 is the raw message; others are decoded bodies).
    buf: usize,
    start: usize,
    end: usize,
    depth: usize,
    encoded: usize,
    in_digest: bool,
}

/// The header fields the walk needs of one entity.
#[derive(Default)]
struct Head {
    content_type: Option<String>,
    transfer_encoding: Option<String>,
    body_start: usize,
}

/// Check `raw` against the limits: the first one it breaks, if any.
pub fn scan(raw: &[u8], l: &Limits) -> Result<(), Broken> {
    if raw.len() as u64 > l.max_message_size {
        return Err(Broken {
            key: "limits.max_message_size",
            detail: format!("message is {} bytes, over {}", raw.len(), l.max_message_size),
        });
    }
    // The top-level header block: size, fields, References (counted as read).
    header_block(raw, 0, raw.len(), l)?;
    let mut bufs: Vec<Cow<'_, [u8]>> = vec![Cow::Borrowed(raw)];
    let mut stack = vec![Entity { buf: 0, start: 0, end: raw.len(), depth: 0, encoded: 0, in_digest: false }];
    let mut parts = 0usize;
    while let Some(e) = stack.pop() {
        parts += 1;
        if parts > l.max_mime_parts {
            return Err(too_many_parts(l));
        }
        let data: &[u8] = &bufs[e.buf];
        let head = header_block(data, e.start, e.end, l)?;
        let ct = head.content_type.as_deref().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim().to_string();
        let is_message = mime == "message/rfc822" || mime == "message/global" || (head.content_type.is_none() && e.in_digest);
        let child_depth = e.depth + 1;
        if mime.starts_with("multipart/") {
            let Some(boundary) = boundary(head.content_type.as_deref().unwrap_or("")) else { continue };
            let mut delim = Vec::with_capacity(boundary.len() + 2);
            delim.extend_from_slice(b"--");
            delim.extend_from_slice(boundary.as_bytes());
            let body = &data[head.body_start..e.end];
            let mut children = Vec::new();
            let mut found = memmem::find_iter(body, &delim).peekable();
            while let Some(at) = found.next() {
                let after = at + delim.len();
                if body[after..].starts_with(b"--") {
                    break;
                }
                if child_depth > l.max_mime_depth {
                    return Err(too_deep(l));
                }
                let start = memchr::memchr(b'\n', &body[after..]).map(|i| after + i + 1).unwrap_or(body.len());
                let end = found.peek().copied().unwrap_or(body.len()).max(start);
                children.push((head.body_start + start, head.body_start + end));
                if parts + stack.len() + children.len() > l.max_mime_parts {
                    return Err(too_many_parts(l));
                }
            }
            let in_digest = mime == "multipart/digest";
            for (start, end) in children.into_iter().rev() {
                stack.push(Entity { buf: e.buf, start, end, depth: child_depth, encoded: e.encoded, in_digest });
            }
        } else if is_message {
            if child_depth > l.max_mime_depth {
                return Err(too_deep(l));
            }
            let cte = head.transfer_encoding.as_deref().unwrap_or("").trim().to_ascii_lowercase();
            let body = &data[head.body_start..e.end];
            let decoded = match cte.as_str() {
                "base64" => Some(base64_decode(body)),
                "quoted-printable" => Some(quoted_printable_decode(body)),
                _ => None,
            };
            match decoded {
                None => stack.push(Entity { buf: e.buf, start: head.body_start, end: e.end, depth: child_depth, encoded: e.encoded, in_digest: false }),
                Some(_) if e.encoded + 1 > MAX_NESTED_ENCODED => {}
                Some(Some(bytes)) => {
                    let end = bytes.len();
                    bufs.push(Cow::Owned(bytes));
                    stack.push(Entity { buf: bufs.len() - 1, start: 0, end, depth: child_depth, encoded: e.encoded + 1, in_digest: false });
                }
                // mail-parser's streaming decoders are more lenient than these:
                // what cannot be decoded here cannot be checked, so it is refused.
                Some(None) => {
                    return Err(Broken {
                        key: "limits.max_mime_depth",
                        detail: format!("an encoded {mime} part that could not be decoded to check its nesting"),
                    });
                }
            }
        }
    }
    Ok(())
}

fn too_many_refs(n: usize, l: &Limits) -> Broken {
    Broken {
        key: "limits.max_references",
        detail: format!("more than {} message ids in References/In-Reply-To ({n} so far)", l.max_references),
    }
}

fn too_deep(l: &Limits) -> Broken {
    Broken { key: "limits.max_mime_depth", detail: format!("MIME nesting deeper than {}", l.max_mime_depth) }
}

fn too_many_parts(l: &Limits) -> Broken {
    Broken { key: "limits.max_mime_parts", detail: format!("more than {} MIME parts", l.max_mime_parts) }
}

/// Read the header block of the entity at `data[start..end]`: its size and
/// field count against the limits, and the fields the walk needs.
fn header_block(data: &[u8], start: usize, end: usize, l: &Limits) -> Result<Head, Broken> {
    let mut head = Head { body_start: end, ..Head::default() };
    let mut pos = start;
    let mut fields = 0usize;
    let mut refs = 0usize;
    // The field being read: which of ours it is, and its unfolded value.
    let mut current: Option<(u8, String)> = None;
    let finish = |head: &mut Head, cur: Option<(u8, String)>| {
        if let Some((which, v)) = cur {
            match which {
                b'c' => head.content_type = Some(v),
                b't' => head.transfer_encoding = Some(v),
                _ => {}
            }
        }
    };
    while pos < end {
        let line_end = memchr::memchr(b'\n', &data[pos..end]).map(|i| pos + i + 1).unwrap_or(end);
        let line = &data[pos..line_end];
        if pos - start > l.max_header_size {
            return Err(Broken {
                key: "limits.max_header_size",
                detail: format!("header block over {} bytes", l.max_header_size),
            });
        }
        if line == b"\r\n" || line == b"\n" {
            head.body_start = line_end;
            break;
        }
        if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
            if let Some((which, v)) = current.as_mut() {
                // References are counted as they come: a huge References
                // field is named as such, not only as a big header.
                if *which == b'r' {
                    refs += memchr::memchr_iter(b'<', line).count();
                    if refs > l.max_references {
                        return Err(too_many_refs(refs, l));
                    }
                } else {
                    v.push(' ');
                    v.push_str(String::from_utf8_lossy(line).trim());
                }
            }
        } else {
            finish(&mut head, current.take());
            fields += 1;
            if fields > l.max_headers {
                return Err(Broken { key: "limits.max_headers", detail: format!("more than {} header fields", l.max_headers) });
            }
            if let Some(colon) = memchr::memchr(b':', line) {
                let name = &line[..colon];
                let which = if name.eq_ignore_ascii_case(b"content-type") {
                    Some(b'c')
                } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
                    Some(b't')
                } else if name.eq_ignore_ascii_case(b"references") || name.eq_ignore_ascii_case(b"in-reply-to") {
                    Some(b'r')
                } else {
                    None
                };
                if which == Some(b'r') {
                    refs += memchr::memchr_iter(b'<', &line[colon + 1..]).count();
                    if refs > l.max_references {
                        return Err(too_many_refs(refs, l));
                    }
                    current = Some((b'r', String::new()));
                } else {
                    current = which.map(|w| (w, String::from_utf8_lossy(&line[colon + 1..]).trim().to_string()));
                }
            }
        }
        pos = line_end;
    }
    if head.body_start == end && pos - start > l.max_header_size {
        return Err(Broken { key: "limits.max_header_size", detail: format!("header block over {} bytes", l.max_header_size) });
    }
    finish(&mut head, current);
    Ok(head)
}

/// The `boundary` parameter of a Content-Type value (also the RFC 2231
/// `boundary*` and `boundary*0` forms), unquoted.
fn boundary(content_type: &str) -> Option<String> {
    for param in content_type.split(';').skip(1) {
        let Some((name, value)) = param.split_once('=') else { continue };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        let value = match name.as_str() {
            "boundary" => value.trim_matches('"'),
            "boundary*" | "boundary*0" | "boundary*0*" => value.trim_matches('"').rsplit('\'').next().unwrap_or(""),
            _ => continue,
        };
        if !value.is_empty() {
            return Some(value.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc822_bomb(depth: usize) -> Vec<u8> {
        let mut s = String::from("From: a@example.org\r\nMessage-ID: <bomb@x>\r\nSubject: bomb\r\n");
        for _ in 0..depth {
            s.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        s.push_str("Subject: bottom\r\n\r\nbottom\r\n");
        s.into_bytes()
    }

    fn multipart(depth: usize, width: usize) -> Vec<u8> {
        let mut s = String::from("From: a@example.org\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\n");
        for i in 0..depth {
            s.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}z\"\r\n\r\n--b{i}z\r\n"));
        }
        s.push_str("Content-Type: multipart/mixed; boundary=w\r\n\r\n");
        for i in 0..width {
            s.push_str(&format!("--w\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"));
        }
        s.push_str("--w--\r\n");
        for i in (0..depth).rev() {
            s.push_str(&format!("--b{i}z--\r\n"));
        }
        s.into_bytes()
    }

    #[test]
    fn ordinary_mail_passes() {
        let m = b"From: a@example.org\r\nSubject: hi\r\nContent-Type: multipart/alternative; boundary=\"x\"\r\n\r\n\
--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--x--\r\n";
        scan(m, &Limits::default()).unwrap();
        let s = body_start(m);
        assert_eq!(&m[s..s + 3], b"--x");
        assert_eq!(body_start(b"A: b\nC: d\n\nbody"), 11);
        assert_eq!(body_start(b"A: b"), 4);
        assert!(scan(&multipart(10, 100), &Limits::default()).is_ok());
        assert!(scan(&rfc822_bomb(50), &Limits::default()).is_ok());
    }

    #[test]
    fn the_rfc822_nesting_bomb_at_ten_times_the_limit_is_refused() {
        // See: issue 7 (40,000 nested message/rfc822 aborted the process).
        for depth in [51, 500, 40_000] {
            let b = scan(&rfc822_bomb(depth), &Limits::default()).unwrap_err();
            assert_eq!(b.key, "limits.max_mime_depth", "{depth}");
        }
    }

    #[test]
    fn encoded_nesting_is_looked_into() {
        use std::fmt::Write as _;
        // A bomb hidden in one base64 message/rfc822 layer.
        let inner = rfc822_bomb(500);
        let b64 = {
            // The same alphabet mail-parser decodes; lines of 76.
            const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for (n, c) in inner.chunks(3).enumerate() {
                let v = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
                for i in 0..4 {
                    if i <= c.len() {
                        out.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
                if n % 19 == 18 {
                    out.push_str("\r\n");
                }
            }
            out
        };
        let mut m = String::from("From: a@example.org\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        writeln!(m, "{b64}").unwrap();
        assert_eq!(scan(m.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_mime_depth");
        // And in quoted-printable, which keeps '='-free text as it is.
        let mut q = String::from("From: a@example.org\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
        q.push_str(&String::from_utf8(inner).unwrap());
        assert_eq!(scan(q.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_mime_depth");
    }

    #[test]
    fn deep_and_wide_multipart_are_refused() {
        assert_eq!(scan(&multipart(5000, 1), &Limits::default()).unwrap_err().key, "limits.max_mime_depth");
        assert_eq!(scan(&multipart(1, 10_000), &Limits::default()).unwrap_err().key, "limits.max_mime_parts");
    }

    #[test]
    fn header_size_count_and_references() {
        let big = format!("From: a@example.org\r\nSubject: {}\r\n\r\nx", "A".repeat(2_000_000));
        assert_eq!(scan(big.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_header_size");
        let no_body = format!("From: a@example.org\r\nSubject: {}", "A".repeat(2_000_000));
        assert_eq!(scan(no_body.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_header_size");
        let many = format!("From: a@example.org\r\n{}\r\nx", "X-A: b\r\n".repeat(2000));
        assert_eq!(scan(many.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_headers");
        let ids: String = (0..100_000).map(|i| format!(" <{i}@x>\r\n")).collect();
        let refs = format!("From: a@example.org\r\nReferences:{ids}\r\nx");
        assert_eq!(scan(refs.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_references");
        let one_line = format!("From: a@example.org\r\nIn-Reply-To: {}\r\n\r\nx", "<a@b>".repeat(1001));
        assert_eq!(scan(one_line.as_bytes(), &Limits::default()).unwrap_err().key, "limits.max_references");
    }

    #[test]
    fn size_is_checked_and_odd_input_does_not_panic() {
        let l = Limits { max_message_size: 10, ..Limits::default() };
        assert_eq!(scan(b"From: a@example.org\r\n\r\nlong body", &l).unwrap_err().key, "limits.max_message_size");
        for raw in [&b""[..], b"\n", b"\r\n\r\n", b"Content-Type: multipart/x; boundary=\"\"\r\n\r\n--", b"Content-Type: multipart/x; boundary=a\r\n\r\n--a", b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!"] {
            let _ = scan(raw, &Limits::default());
        }
    }
}
