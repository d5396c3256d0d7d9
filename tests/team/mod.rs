//! Team mail as real clients write it: a member's mail to security@ (replies
//! that steer a case with `#commands`), OpenPGP-signed or signed+encrypted the
//! way mutt and Thunderbird do it, and the forged, replayed and tampered
//! variants an attacker would send. Everything is signed by GnuPG 2.2 (the real
//! client) AT TEST RUN TIME, because team mail refers to Message-IDs that only
//! exist while the test runs and signatures must be fresh; `..._at` variants
//! sign at a faked past time (`--faked-system-time`).
//!
//! Keys: `fixtures/team/` (made by `scripts/make-team-fixtures.sh`, see its
//! README) and, as a fallback for names not found there, `fixtures/pgp/` (the
//! team key `team-cv25519`, `reporter`, ...).
//!
//! Every builder returns a whole RFC 5322 message with CRLF line ends; the
//! signed part of a `multipart/signed` is exactly the bytes between the first
//! boundary line and the CRLF before the next one (RFC 3156 §5), signed over
//! those bytes. `Draft::style` chooses the client: [`Style::Mutt`] (default:
//! the signed entity is the bare text/plain part, `--textmode` signature, as
//! mutt's `pgp_sign_command` does) or [`Style::Thunderbird`] (the signed or
//! encrypted entity is `multipart/mixed; protected-headers="v1"` repeating
//! From/To/Subject/..., binary signature, `OpenPGP_signature.asc`, and for
//! encrypted mail the outer Subject is `...`).
//!
//! Side effects: each [`Gpg`] is a fresh GNUPGHOME under `/tmp` (short path:
//! the agent's socket lives there) with its own gpg-agent, killed when the
//! `Gpg` is dropped. Tests running in parallel never share a home.
//! Needs `gpg` and `gpgconf` (GnuPG 2.2) on PATH; no mail servers.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// The domain of every fixture address.
pub const DOMAIN: &str = "example.test";
/// A faked time before dave's expiry (2026-06-01) and after every key's
/// creation (2026-01-01): "signed in the past".
pub const PAST: &str = "20260115T120000!";

// ---------------------------------------------------------------- fixtures

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/team/`.
pub fn team_dir() -> PathBuf {
    root().join("fixtures/team")
}

fn fixture(name: &str, suffix: &str) -> PathBuf {
    let team = team_dir().join(format!("{name}{suffix}"));
    if team.exists() {
        return team;
    }
    let pgp = root().join("fixtures/pgp").join(format!("{name}{suffix}"));
    assert!(pgp.exists(), "no fixture key {name}{suffix} in fixtures/team or fixtures/pgp");
    pgp
}

/// Public key of fixture `name` (`alice`, `carol-revoked`, `team-cv25519`, ...):
/// `fixtures/team/NAME.pub.asc`, else `fixtures/pgp/NAME.pub.asc`.
pub fn key_path(name: &str) -> PathBuf {
    fixture(name, ".pub.asc")
}

/// Secret key of fixture `name` (armored, no passphrase; 0644 in git, see
/// [`copy_secret`]).
pub fn secret_key_path(name: &str) -> PathBuf {
    fixture(name, ".sec.asc")
}

/// The team's public key, `fixtures/pgp/team-cv25519.pub.asc`.
pub fn team_pub_path() -> PathBuf {
    root().join("fixtures/pgp/team-cv25519.pub.asc")
}

/// The team's secret key, `fixtures/pgp/team-cv25519.sec.asc`.
pub fn team_sec_path() -> PathBuf {
    root().join("fixtures/pgp/team-cv25519.sec.asc")
}

/// Copies fixture `name`'s secret key into `dir` as mode 0600 (secmail's config
/// loader refuses group/world-readable secrets); returns the copy's path.
pub fn copy_secret(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(format!("{name}.sec.asc"));
    std::fs::copy(secret_key_path(name), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    to
}

/// Fingerprint (40 upper-case hex digits) of fixture `name`, from
/// `fixtures/team/fingerprints.txt`, else `fixtures/pgp/fingerprints.txt`.
/// `carol-revoked` is carol's key, so it has carol's fingerprint.
pub fn fingerprint(name: &str) -> String {
    let name = name.strip_suffix("-revoked").unwrap_or(name);
    for file in [team_dir().join("fingerprints.txt"), root().join("fixtures/pgp/fingerprints.txt")] {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines() {
            if let Some((n, f)) = line.split_once(' ')
                && n == name
            {
                return f.trim().to_string();
            }
        }
    }
    panic!("no fingerprint for fixture key {name}")
}

// ---------------------------------------------------------------- gpg

/// A throwaway GnuPG home (`/tmp/smgXXXXXX`) with its own gpg-agent. All
/// commands run with `--batch --pinentry-mode loopback --passphrase ''
/// --trust-model always`, `LC_ALL=C`. Dropping it kills the agent and deletes
/// the home.
pub struct Gpg {
    home: tempfile::TempDir,
}

/// What gpg said about a signature (from `--status-file`).
#[derive(Debug, Clone)]
pub struct Verified {
    /// gpg's exit status was 0.
    pub success: bool,
    /// The `[GNUPG:] ...` status lines.
    pub status: String,
    /// gpg's human-readable stderr (LC_ALL=C), for assertion messages.
    pub stderr: String,
}

impl Verified {
    /// Whether a status line starts with `keyword` (`GOODSIG`, `BADSIG`,
    /// `EXPKEYSIG`, `REVKEYSIG`, `ERRSIG`, `DECRYPTION_OKAY`, ...).
    pub fn has(&self, keyword: &str) -> bool {
        self.lines().any(|l| l.split(' ').next() == Some(keyword))
    }

    /// The fields after `keyword` on its first status line.
    pub fn fields(&self, keyword: &str) -> Option<Vec<String>> {
        self.lines()
            .find(|l| l.split(' ').next() == Some(keyword))
            .map(|l| l.split(' ').skip(1).map(str::to_string).collect())
    }

    /// The fields of every status line starting with `keyword` (e.g. one
    /// `ENC_TO` line per recipient key).
    pub fn lines_of(&self, keyword: &str) -> Vec<Vec<String>> {
        self.lines()
            .filter(|l| l.split(' ').next() == Some(keyword))
            .map(|l| l.split(' ').skip(1).map(str::to_string).collect())
            .collect()
    }

    /// Primary-key fingerprint of a cryptographically valid signature
    /// (`VALIDSIG`, also given for expired/revoked keys), if any.
    pub fn valid_sig_primary(&self) -> Option<String> {
        self.fields("VALIDSIG").and_then(|f| f.get(9).cloned())
    }

    /// Fingerprint of the good signature's primary key if gpg says `GOODSIG`
    /// (key neither expired nor revoked) and `VALIDSIG`.
    pub fn good_by(&self) -> Option<String> {
        if self.status.trim().is_empty() {
            // Some gpg runs leave the status file empty (seen under the
            // multi-threaded test runtime): read gpg's own words instead.
            let good = self.stderr.lines().any(|l| l.contains("Good signature from") && !l.contains("[expired]") && !l.contains("[revoked]"));
            let fpr = self.stderr.lines().find_map(|l| l.split_once("using ").and_then(|(_, r)| r.split_whitespace().last()).map(str::to_string));
            return fpr.filter(|_| good);
        }
        if self.has("GOODSIG") { self.valid_sig_primary() } else { None }
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        self.status.lines().filter_map(|l| l.strip_prefix("[GNUPG:] "))
    }
}

impl Gpg {
    /// An empty home (no keys).
    pub fn empty() -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("smg")
            .tempdir_in("/tmp")
            .expect("cannot create a GNUPGHOME under /tmp");
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let gpg = Gpg { home };
        // With --trust-model always, gpg never creates trustdb.gpg, and then
        // `--show-keys` of an expired or revoked key dies with "Fatal: can't
        // open trustdb.gpg"; an empty ownertrust import under the pgp model
        // creates it (under `always` it does not either).
        gpg.run_ok(&["--trust-model", "pgp", "--import-ownertrust"], b"");
        gpg
    }

    /// A home with the team's public key (`fixtures/pgp/team-cv25519.pub.asc`)
    /// and the secret keys of the named fixtures (`fixtures/team/NAME.sec.asc`,
    /// e.g. `["alice", "mallory-as-alice"]`; `carol` is the unrevoked key).
    pub fn with_secret_keys(names: &[&str]) -> Gpg {
        let gpg = Gpg::empty();
        gpg.import(&team_pub_path());
        for name in names {
            gpg.import(&secret_key_path(name));
        }
        gpg
    }

    /// A home with only the given public keys (fixture names), for verifying.
    pub fn with_public_keys(names: &[&str]) -> Gpg {
        let gpg = Gpg::empty();
        for name in names {
            gpg.import(&key_path(name));
        }
        gpg
    }

    /// The GNUPGHOME.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Imports a key file (public or secret, armored or binary); panics on failure.
    pub fn import(&self, path: &Path) -> &Self {
        let out = self.run(&["--import", path.to_str().unwrap()], b"");
        assert!(out.status.success(), "gpg --import {} failed:\n{}", path.display(), stderr(&out));
        self
    }

    /// Runs `gpg --homedir HOME --batch ... ARGS` with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir")
            .arg(self.home())
            .args([
                "--batch",
                "--yes",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--trust-model",
                "always",
                "--no-auto-key-retrieve",
            ])
            .args(args)
            .env("GNUPGHOME", self.home())
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .env_remove("GPG_AGENT_INFO")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot run gpg (GnuPG 2.2 must be installed)");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        // A thread, so a large output cannot dead-lock against our input.
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("gpg did not finish");
        writer.join().unwrap();
        out
    }

    /// [`Gpg::run`] with `--status-file`, returning the output and the status.
    pub fn run_status(&self, args: &[&str], stdin: &[u8]) -> (Output, Verified) {
        let status = self.temp_file(b"");
        let mut all = vec!["--status-file", status.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.run(&all, stdin);
        let v = Verified {
            success: out.status.success(),
            status: std::fs::read_to_string(&status).unwrap_or_default(),
            stderr: stderr(&out),
        };
        let _ = std::fs::remove_file(status);
        (out, v)
    }

    /// Runs gpg and returns its stdout; panics (with gpg's stderr) on failure.
    pub fn run_ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "gpg {args:?} failed:\n{}", stderr(&out));
        out.stdout
    }

    /// `gpg --verify SIG -` over `data` exactly as given (a detached signature).
    pub fn verify_detached(&self, data: &[u8], signature: &[u8]) -> Verified {
        let sig = self.temp_file(signature);
        let (_, v) = self.run_status(&["--verify", sig.to_str().unwrap(), "-"], data);
        let _ = std::fs::remove_file(sig);
        v
    }

    /// `gpg --verify` of a clearsigned (`BEGIN PGP SIGNED MESSAGE`) text.
    pub fn verify_clearsigned(&self, text: &[u8]) -> Verified {
        self.run_status(&["--verify"], text).1
    }

    /// `gpg --decrypt`: the plaintext and what gpg said (signature, decryption).
    pub fn decrypt(&self, armored: &[u8]) -> (Vec<u8>, Verified) {
        let (out, v) = self.run_status(&["--decrypt"], armored);
        (out.stdout, v)
    }

    /// `--with-colons --list-keys` of the home.
    pub fn list_keys(&self) -> String {
        String::from_utf8_lossy(&self.run_ok(&["--with-colons", "--list-keys"], b"")).into_owned()
    }

    fn temp_file(&self, contents: &[u8]) -> PathBuf {
        let f = tempfile::Builder::new().prefix("t").tempfile_in(self.home()).unwrap();
        std::fs::write(f.path(), contents).unwrap();
        f.into_temp_path().keep().unwrap()
    }

    /// Fingerprint of the first key in `file` (without importing it).
    fn file_fingerprint(&self, file: &Path) -> String {
        let out = self.run_ok(
            &["--with-colons", "--import-options", "show-only", "--import", file.to_str().unwrap()],
            b"",
        );
        String::from_utf8_lossy(&out)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string()))
            .unwrap_or_else(|| panic!("no key in {}", file.display()))
    }

    /// Whether key `fpr` can encrypt (at the faked time, if any).
    fn can_encrypt(&self, fpr: &str, faked: Option<&str>) -> bool {
        let mut args = vec![];
        if let Some(t) = faked {
            args.extend(["--faked-system-time", t]);
        }
        args.extend(["--with-colons", "--list-keys", fpr]);
        let out = self.run(&args, b"");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("pub:"))
            .and_then(|l| l.split(':').nth(11))
            .is_some_and(|caps| caps.contains('E'))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home())
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- drafts

/// Which client's layout a builder imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// mutt 2.2: signed entity = the text/plain part itself (multipart/mixed
    /// only with attachments), `gpg --textmode` signatures, `signature.asc`,
    /// the real Subject outside even when encrypted.
    #[default]
    Mutt,
    /// Thunderbird 115: signed/encrypted entity = `multipart/mixed;
    /// protected-headers="v1"` carrying From/To/Message-ID/Subject/References/
    /// In-Reply-To, binary signatures, `OpenPGP_signature.asc`, preambles, and
    /// outer `Subject: ...` on encrypted mail.
    Thunderbird,
}

/// A mail a team member writes. Message-ids are stored without angle
/// brackets (brackets passed in are stripped).
#[derive(Debug, Clone)]
pub struct Draft {
    /// `Alice Member <alice@example.test>` (the header value).
    pub from: String,
    /// The To header value.
    pub to: String,
    /// Subject (RFC 2047-encoded when not ASCII).
    pub subject: String,
    /// The message this replies to.
    pub in_reply_to: Option<String>,
    /// References, oldest first.
    pub references: Vec<String>,
    /// This mail's Message-ID; unique by default.
    pub message_id: String,
    /// Date header (RFC 2822); `now` by default.
    pub date: String,
    /// Text, LF or CRLF line ends (the mail gets CRLF).
    pub body: String,
    /// `(filename, content type, bytes)`, base64-encoded.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// More outer headers, `(name, value)`, e.g. `("Cc", "...")`.
    pub headers: Vec<(String, String)>,
    /// Which client's layout.
    pub style: Style,
}

impl Draft {
    /// A fresh mail dated now with a unique Message-ID.
    pub fn new(from: &str, to: &str, subject: &str, body: &str) -> Draft {
        Draft {
            from: from.to_string(),
            to: to.to_string(),
            subject: subject.to_string(),
            in_reply_to: None,
            references: vec![],
            message_id: new_message_id(),
            date: chrono::Utc::now().to_rfc2822(),
            body: body.to_string(),
            attachments: vec![],
            headers: vec![],
            style: Style::default(),
        }
    }

    /// Makes it a reply to `msgid`: In-Reply-To, and appended to References.
    pub fn replying_to(mut self, msgid: &str) -> Draft {
        let id = strip_brackets(msgid);
        if !self.references.iter().any(|r| strip_brackets(r) == id) {
            self.references.push(id.clone());
        }
        self.in_reply_to = Some(id);
        self
    }

    /// Adds an attachment.
    pub fn attach(mut self, filename: &str, content_type: &str, bytes: &[u8]) -> Draft {
        self.attachments.push((filename.into(), content_type.into(), bytes.to_vec()));
        self
    }

    /// Adds an outer header.
    pub fn header(mut self, name: &str, value: &str) -> Draft {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the client style.
    pub fn style(mut self, style: Style) -> Draft {
        self.style = style;
        self
    }

    /// Sets the Date header to a gpg faked time (`20260115T120000!`).
    pub fn dated(mut self, faked_time: &str) -> Draft {
        self.date = faked_date(faked_time);
        self
    }

    /// The `Message-ID` header value, with brackets.
    pub fn message_id_header(&self) -> String {
        format!("<{}>", strip_brackets(&self.message_id))
    }

    /// The bare address of `from` (`alice@example.test`).
    pub fn sender_address(&self) -> String {
        address_of(&self.from)
    }

    /// The MIME entity that gets signed (or encrypted): CRLF, 7bit-safe.
    /// Mutt: the text/plain part (`charset=utf-8`, 7bit or quoted-printable),
    /// or multipart/mixed {text, attachments...} when there are attachments.
    /// Thunderbird: always multipart/mixed with `protected-headers="v1"`.
    pub fn entity(&self) -> Vec<u8> {
        let text = text_part(&self.body, self.style);
        if self.style == Style::Mutt && self.attachments.is_empty() {
            return text;
        }
        let b = boundary(self.style);
        let mut out = String::new();
        match self.style {
            Style::Mutt => {
                let _ = write!(out, "Content-Type: multipart/mixed; boundary=\"{b}\"\r\nContent-Disposition: inline\r\n\r\n");
            }
            Style::Thunderbird => {
                let _ = write!(out, "Content-Type: multipart/mixed; boundary=\"{b}\";\r\n protected-headers=\"v1\"\r\n");
                let _ = write!(out, "From: {}\r\nTo: {}\r\n", encode_mailbox(&self.from), encode_mailbox(&self.to));
                for (n, v) in &self.headers {
                    if n.eq_ignore_ascii_case("cc") {
                        let _ = write!(out, "Cc: {v}\r\n");
                    }
                }
                let _ = write!(out, "Message-ID: {}\r\nSubject: {}\r\n", self.message_id_header(), encode_word(&self.subject));
                if !self.references.is_empty() {
                    let _ = write!(out, "References: {}\r\n", fold_ids(&self.references));
                }
                if let Some(id) = &self.in_reply_to {
                    let _ = write!(out, "In-Reply-To: <{}>\r\n", strip_brackets(id));
                }
                out.push_str("\r\n");
            }
        }
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(format!("--{b}\r\n").as_bytes());
        bytes.extend_from_slice(&text);
        for (name, ct, data) in &self.attachments {
            bytes.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
            bytes.extend_from_slice(&attachment_part(name, ct, data, self.style));
        }
        bytes.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        bytes
    }

    /// The outer header block (no Content-Type, no final blank line), in the
    /// client's order; `subject` overrides the Subject (Thunderbird's `...`).
    fn outer_headers(&self, subject: Option<&str>) -> String {
        let subject = encode_word(subject.unwrap_or(&self.subject));
        let mut h = String::new();
        let refs = (!self.references.is_empty()).then(|| fold_ids(&self.references));
        let irt = self.in_reply_to.as_ref().map(|i| format!("<{}>", strip_brackets(i)));
        let extra: String = self.headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        match self.style {
            Style::Mutt => {
                let _ = write!(h, "Date: {}\r\nFrom: {}\r\nTo: {}\r\n", self.date, encode_mailbox(&self.from), encode_mailbox(&self.to));
                h.push_str(&extra);
                let _ = write!(h, "Subject: {subject}\r\nMessage-ID: {}\r\n", self.message_id_header());
                if let Some(r) = refs {
                    let _ = write!(h, "References: {r}\r\n");
                }
                if let Some(i) = irt {
                    let _ = write!(h, "In-Reply-To: {i}\r\n");
                }
                h.push_str("MIME-Version: 1.0\r\n");
            }
            Style::Thunderbird => {
                let _ = write!(h, "Message-ID: {}\r\nDate: {}\r\nMIME-Version: 1.0\r\n", self.message_id_header(), self.date);
                h.push_str("User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101\r\n Thunderbird/115.18.0\r\n");
                let _ = write!(h, "Subject: {subject}\r\nContent-Language: en-US\r\nTo: {}\r\n", encode_mailbox(&self.to));
                if let Some(r) = refs {
                    let _ = write!(h, "References: {r}\r\n");
                }
                let _ = write!(h, "From: {}\r\n", encode_mailbox(&self.from));
                if let Some(i) = irt {
                    let _ = write!(h, "In-Reply-To: {i}\r\n");
                }
                h.push_str(&extra);
            }
        }
        h
    }

    /// Mutt's trailing headers after Content-Type.
    fn mutt_tail(&self) -> &'static str {
        match self.style {
            Style::Mutt => "Content-Disposition: inline\r\nUser-Agent: Mutt/2.2.12 (2023-09-09)\r\n",
            Style::Thunderbird => "",
        }
    }
}

/// A unique Message-ID (no brackets) in [`DOMAIN`].
pub fn new_message_id() -> String {
    format!("team-{}@{DOMAIN}", uuid::Uuid::new_v4().simple())
}

/// An RFC 2822 date for a gpg faked time like `20260115T120000!` (UTC).
pub fn faked_date(faked_time: &str) -> String {
    let t = faked_time.trim_end_matches('!');
    let dt = chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%S")
        .unwrap_or_else(|e| panic!("bad faked time {faked_time}: {e}"));
    dt.and_utc().to_rfc2822()
}

/// `Name <addr>` → `addr` (or the input, trimmed, if it has no `<>`).
pub fn address_of(mailbox: &str) -> String {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(a), Some(b)) if a < b => mailbox[a + 1..b].trim().to_string(),
        _ => mailbox.trim().to_string(),
    }
}

fn strip_brackets(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_string()
}

fn fold_ids(ids: &[String]) -> String {
    ids.iter().map(|i| format!("<{}>", strip_brackets(i))).collect::<Vec<_>>().join("\r\n ")
}

/// RFC 2047 `=?utf-8?B?...?=` words when `s` is not printable ASCII.
fn encode_word(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let mut words = vec![];
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?utf-8?B?{}?=", B64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?utf-8?B?{}?=", B64.encode(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// `Näme <addr>` with the display name RFC 2047-encoded when needed.
fn encode_mailbox(mailbox: &str) -> String {
    match mailbox.rfind('<') {
        Some(i) if !mailbox.is_ascii() => {
            let name = mailbox[..i].trim().trim_matches('"');
            format!("{} {}", encode_word(name), &mailbox[i..])
        }
        _ => mailbox.to_string(),
    }
}

fn boundary(style: Style) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    match style {
        Style::Mutt => u[..16].to_string(),
        Style::Thunderbird => format!("------------{}", &u[..24]),
    }
}

/// Text lines (LF or CRLF in), without line ends; a final newline is implied.
fn lines(text: &str) -> Vec<&str> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    t.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect()
}

/// `text` with CRLF line ends and a final CRLF.
pub fn crlf(text: &str) -> String {
    let mut s = lines(text).join("\r\n");
    s.push_str("\r\n");
    s
}

/// Converts any line ends in `bytes` to CRLF (bare LF → CRLF; CRLF kept).
pub fn crlf_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Whether text must be quoted-printable to survive transport and signing
/// (RFC 3156 §3: 7bit, no trailing whitespace, no `From ` lines, short lines).
fn needs_qp(text: &str) -> bool {
    lines(text).iter().any(|l| {
        !l.is_ascii() || l.len() > 76 || l.ends_with(' ') || l.ends_with('\t') || l.starts_with("From ") || l.contains('\r')
    })
}

/// Quoted-printable (RFC 2045 §6.7) of text lines, CRLF hard breaks, soft
/// breaks at 76 columns; `From ` at line start becomes `=46rom `.
fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    for line in lines(text) {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let lit = (b == b' ' || b == b'\t') && !last
                || (33..=126).contains(&b) && b != b'=' && !(i == 0 && b == b'F' && line.starts_with("From "));
            let tok = if lit { (b as char).to_string() } else { format!("={b:02X}") };
            // Keep room for the soft-break '=' (76 columns in all).
            if col + tok.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += tok.len();
            out.push_str(&tok);
        }
        out.push_str("\r\n");
    }
    out
}

/// The text/plain part (headers + body), CRLF.
fn text_part(body: &str, style: Style) -> Vec<u8> {
    let qp = needs_qp(body);
    let flowed = style == Style::Thunderbird && !lines(body).iter().any(|l| l.ends_with(' '));
    let ct = match (style, flowed) {
        (Style::Thunderbird, true) => "text/plain; charset=UTF-8; format=flowed",
        (Style::Thunderbird, false) => "text/plain; charset=UTF-8",
        (Style::Mutt, _) => "text/plain; charset=utf-8",
    };
    let cte = if qp { "quoted-printable" } else { "7bit" };
    let disp = if style == Style::Mutt { "Content-Disposition: inline\r\n" } else { "" };
    let encoded = if qp { quoted_printable(body) } else { crlf(body) };
    format!("Content-Type: {ct}\r\n{disp}Content-Transfer-Encoding: {cte}\r\n\r\n{encoded}").into_bytes()
}

fn base64_lines(data: &[u8]) -> String {
    let b = B64.encode(data);
    let mut out = String::new();
    for chunk in b.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out
}

fn attachment_part(name: &str, ct: &str, data: &[u8], style: Style) -> Vec<u8> {
    let ct_line = match style {
        Style::Thunderbird => format!("Content-Type: {ct}; name=\"{name}\""),
        Style::Mutt => format!("Content-Type: {ct}"),
    };
    format!(
        "{ct_line}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        base64_lines(data)
    )
    .into_bytes()
}

// ---------------------------------------------------------------- signing

fn faked_args(faked: Option<&str>) -> Vec<&str> {
    faked.map(|t| vec!["--faked-system-time", t]).unwrap_or_default()
}

/// Detached armored signature of `data` by fixture `signer` (SHA-256).
fn detach_sign(gpg: &Gpg, signer: &str, data: &[u8], style: Style, faked: Option<&str>) -> Vec<u8> {
    let fpr = fingerprint(signer);
    let mut args = faked_args(faked);
    args.extend(["--armor", "--detach-sign", "--digest-algo", "SHA256", "--local-user", &fpr]);
    if style == Style::Mutt {
        args.push("--textmode");
    }
    gpg.run_ok(&args, data)
}

/// RFC 3156 §5 `multipart/signed` by fixture `signer` (signing now), as
/// mutt or Thunderbird (`d.style`) sends it: the signed entity is
/// `d.entity()`, the signature `gpg --detach-sign --armor --digest-algo
/// SHA256 -u <fpr>` over exactly those CRLF bytes.
pub fn signed(gpg: &Gpg, signer: &str, d: &Draft) -> Vec<u8> {
    signed_at(gpg, signer, d, None)
}

/// [`signed`] at a faked time (`Some("20260115T120000!")`, see [`PAST`]):
/// gpg runs with `--faked-system-time` and the Date header is that time.
/// `None` signs now and keeps `d.date`.
pub fn signed_at(gpg: &Gpg, signer: &str, d: &Draft, faked_time: Option<&str>) -> Vec<u8> {
    let d = &at(d, faked_time);
    let entity = d.entity();
    let sig = crlf_bytes(&detach_sign(gpg, signer, &entity, d.style, faked_time));
    let b = boundary(d.style);
    let mut out = d.outer_headers(None);
    match d.style {
        Style::Mutt => {
            let _ = write!(
                out,
                "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n\tprotocol=\"application/pgp-signature\"; boundary=\"{b}\"\r\n{}\r\n",
                d.mutt_tail()
            );
        }
        Style::Thunderbird => {
            let _ = write!(
                out,
                "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n protocol=\"application/pgp-signature\";\r\n boundary=\"{b}\"\r\n\r\nThis is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
            );
        }
    }
    let mut raw = out.into_bytes();
    raw.extend_from_slice(format!("--{b}\r\n").as_bytes());
    raw.extend_from_slice(&entity);
    raw.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
    let sig_headers = match d.style {
        Style::Mutt => "Content-Type: application/pgp-signature; name=\"signature.asc\"\r\nContent-Description: Digital signature\r\n",
        Style::Thunderbird => "Content-Type: application/pgp-signature; name=\"OpenPGP_signature.asc\"\r\nContent-Description: OpenPGP digital signature\r\nContent-Disposition: attachment; filename=\"OpenPGP_signature.asc\"\r\n",
    };
    raw.extend_from_slice(sig_headers.as_bytes());
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&sig);
    raw.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    raw
}

fn at(d: &Draft, faked_time: Option<&str>) -> Draft {
    match faked_time {
        Some(t) => d.clone().dated(t),
        None => d.clone(),
    }
}

/// RFC 3156 §6.2 combined sign+encrypt (`gpg --sign --encrypt`) by fixture
/// `signer`, encrypted to the key in `to_team_pub` (imported into `gpg`) and,
/// as both clients do, to the signer's own key when it can encrypt:
/// `multipart/encrypted; protocol="application/pgp-encrypted"` with the
/// `Version: 1` part and the armored `application/octet-stream` part. The
/// plaintext is `d.entity()`.
pub fn signed_and_encrypted(gpg: &Gpg, signer: &str, d: &Draft, to_team_pub: &Path) -> Vec<u8> {
    signed_and_encrypted_at(gpg, signer, d, to_team_pub, None)
}

/// [`signed_and_encrypted`] at a faked time (see [`signed_at`]).
pub fn signed_and_encrypted_at(
    gpg: &Gpg,
    signer: &str,
    d: &Draft,
    to_team_pub: &Path,
    faked_time: Option<&str>,
) -> Vec<u8> {
    let d = &at(d, faked_time);
    gpg.import(to_team_pub);
    let team = gpg.file_fingerprint(to_team_pub);
    let me = fingerprint(signer);
    let mut args = faked_args(faked_time);
    args.extend(["--armor", "--sign", "--encrypt", "--digest-algo", "SHA256", "--local-user", &me, "--recipient", &team]);
    if gpg.can_encrypt(&me, faked_time) {
        args.extend(["--recipient", &me]);
    }
    if d.style == Style::Mutt {
        args.push("--textmode");
    }
    let armored = crlf_bytes(&gpg.run_ok(&args, &d.entity()));
    let b = boundary(d.style);
    let mut out = match d.style {
        Style::Mutt => d.outer_headers(None),
        Style::Thunderbird => d.outer_headers(Some("...")),
    };
    match d.style {
        Style::Mutt => {
            let _ = write!(
                out,
                "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\tboundary=\"{b}\"\r\n{}\r\n\
--{b}\r\nContent-Type: application/pgp-encrypted\r\nContent-Disposition: attachment\r\n\r\nVersion: 1\r\n\r\n\
--{b}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: inline; filename=\"msg.asc\"\r\n\r\n",
                d.mutt_tail()
            );
        }
        Style::Thunderbird => {
            let _ = write!(
                out,
                "Content-Type: multipart/encrypted;\r\n protocol=\"application/pgp-encrypted\";\r\n boundary=\"{b}\"\r\n\r\n\
This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n\
--{b}\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n\
--{b}\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\n\
Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
            );
        }
    }
    let mut raw = out.into_bytes();
    raw.extend_from_slice(&armored);
    raw.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    raw
}

// ---------------------------------------------------------------- attacks

/// An unsigned mail with `d`'s headers whose body is `text` (text/plain, or
/// multipart/mixed with `d.attachments` after it; `extra_parts` are appended
/// as ready-made MIME parts).
fn unsigned_mail(d: &Draft, text: &str, extra_parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = d.outer_headers(None);
    if d.attachments.is_empty() && extra_parts.is_empty() {
        let part = String::from_utf8(text_part(text, d.style)).unwrap();
        let (h, body) = part.split_once("\r\n\r\n").unwrap();
        out.push_str(h);
        out.push_str("\r\n");
        if d.style == Style::Mutt {
            out.push_str("User-Agent: Mutt/2.2.12 (2023-09-09)\r\n");
        }
        out.push_str("\r\n");
        out.push_str(body);
        return out.into_bytes();
    }
    let b = boundary(d.style);
    let _ = write!(out, "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n{}\r\n", d.mutt_tail());
    if d.style == Style::Thunderbird {
        out.push_str("This is a multi-part message in MIME format.\r\n");
    }
    let mut raw = out.into_bytes();
    raw.extend_from_slice(format!("--{b}\r\n").as_bytes());
    raw.extend_from_slice(&text_part(text, d.style));
    for (name, ct, data) in &d.attachments {
        raw.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
        raw.extend_from_slice(&attachment_part(name, ct, data, d.style));
    }
    for p in extra_parts {
        raw.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
        raw.extend_from_slice(p);
    }
    raw.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    raw
}

/// `d` as an unsigned mail (`d.body`, `d.attachments`): team mail sent
/// without signing.
pub fn unsigned(d: &Draft) -> Vec<u8> {
    unsigned_mail(d, &d.body, &[])
}

/// "Johnny, You Are Fired" wrapping: an UNSIGNED multipart/mixed with
/// `outer`'s headers (its body and attachments are ignored) whose first part
/// is the unsigned text `preface` (e.g. `#close`) and whose second part is the
/// intact top-level `multipart/signed` entity of `signed_raw` (its Content-*
/// headers and body, byte for byte), so the old signature still verifies.
pub fn signed_then_wrapped(signed_raw: &[u8], outer: &Draft, preface: &str) -> Vec<u8> {
    let (head, body) = split_head(signed_raw);
    let mut part = Vec::new();
    for field in header_fields(head) {
        if field.to_ascii_lowercase().starts_with("content-") {
            part.extend_from_slice(field.as_bytes());
        }
    }
    part.extend_from_slice(b"\r\n");
    part.extend_from_slice(body);
    let mut d = outer.clone();
    d.attachments.clear();
    unsigned_mail(&d, preface, &[part])
}

/// An unsigned text/plain mail (`d`'s headers) whose body is `d.body` (e.g.
/// `#close`) followed by a clearsigned fragment: `fragment` signed by fixture
/// `signer` with `gpg --clearsign` (now) — as when an old signed text is
/// pasted under new unsigned commands. 7bit, or quoted-printable when needed.
pub fn inline_signed_fragment(gpg: &Gpg, signer: &str, d: &Draft, fragment: &str) -> Vec<u8> {
    inline_signed_fragment_at(gpg, signer, d, fragment, None)
}

/// [`inline_signed_fragment`] with the clearsignature made at a faked time
/// (the Date header stays `d.date`: an old signed fragment in a new mail).
pub fn inline_signed_fragment_at(gpg: &Gpg, signer: &str, d: &Draft, fragment: &str, faked_time: Option<&str>) -> Vec<u8> {
    let fpr = fingerprint(signer);
    let mut args = faked_args(faked_time);
    args.extend(["--clearsign", "--digest-algo", "SHA256", "--local-user", &fpr]);
    let mut input = lines(fragment).join("\n");
    input.push('\n');
    let clear = String::from_utf8(gpg.run_ok(&args, input.as_bytes())).unwrap();
    let mut text = crlf(&d.body);
    text.push_str("\r\n");
    text.push_str(&clear);
    unsigned_mail(d, &text, &[])
}

/// An unsigned mail (`d`: headers, `d.body` as its text, `d.attachments`)
/// carrying `old_signed_raw` attached as `message/rfc822` — Thunderbird's
/// "Forward as Attachment".
pub fn forwarded(old_signed_raw: &[u8], d: &Draft) -> Vec<u8> {
    let raw = crlf_bytes(old_signed_raw);
    let cte = if raw.is_ascii() { "7bit" } else { "8bit" };
    let mut part = format!(
        "Content-Type: message/rfc822; name=\"forwarded.eml\"\r\nContent-Transfer-Encoding: {cte}\r\nContent-Disposition: attachment; filename=\"forwarded.eml\"\r\n\r\n"
    )
    .into_bytes();
    part.extend_from_slice(&raw);
    unsigned_mail(d, &d.body, &[part])
}

/// [`signed`] by fixture `signer` whose signed entity is multipart/mixed
/// {text, `application/pgp-keys` attachment `OpenPGP_0x<KEYID>.asc` = the
/// file `fixtures/team/<attach_pub>.pub.asc`}; e.g. mallory signs as
/// `From: alice` and attaches her own key. With `autocrypt`, the outer header
/// also carries `Autocrypt: addr=<From address>; keydata=<that key>`.
pub fn with_key_attached(gpg: &Gpg, signer: &str, attach_pub: &str, d: &Draft, autocrypt: bool) -> Vec<u8> {
    let key = std::fs::read(key_path(attach_pub)).unwrap();
    let fpr = fingerprint(attach_pub);
    let name = format!("OpenPGP_0x{}.asc", &fpr[fpr.len() - 16..]);
    let mut d = d.clone().attach(&name, "application/pgp-keys", &key);
    if autocrypt {
        let bin = dearmor(&key);
        let b64 = B64.encode(bin);
        let folded: Vec<&str> = b64.as_bytes().chunks(72).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let value = format!("addr={}; keydata=\r\n {}", d.sender_address(), folded.join("\r\n "));
        d = d.header("Autocrypt", &value);
    }
    signed(gpg, signer, &d)
}

/// `signed_raw` with one character of the signed text changed after signing:
/// in the first text/plain body of the signed part, the first lower-case
/// ASCII letter on a line not starting with `#` or `-` (commands and the
/// `-- ` signature line stay intact) is
/// replaced by another letter. The MIME structure stays valid; the signature
/// no longer verifies.
pub fn tampered(signed_raw: &[u8]) -> Vec<u8> {
    let mut raw = signed_raw.to_vec();
    let (start, end) = signed_range(&raw);
    let part = &raw[start..end];
    let ct = find_ci(part, b"content-type: text/plain").expect("no text/plain in the signed part");
    let body = start + ct + find(&part[ct..], b"\r\n\r\n").unwrap() + 4;
    let mut pos = None;
    let mut line_start = true;
    let mut skip = false;
    for (i, &c) in raw.iter().enumerate().take(end).skip(body) {
        if line_start {
            skip = c == b'#' || c == b'-';
        }
        line_start = c == b'\n';
        if !skip && c.is_ascii_lowercase() {
            pos = Some(i);
            break;
        }
    }
    let i = pos.or_else(|| (body..end).find(|&i| raw[i].is_ascii_lowercase())).expect("no letter to change");
    raw[i] = if raw[i] == b'x' { b'y' } else { b'x' };
    raw
}

/// `signed_raw` with the first occurrence of `from` inside the signed part
/// replaced by `to` (panics if absent).
pub fn tampered_with(signed_raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (start, end) = signed_range(signed_raw);
    let at = start + find(&signed_raw[start..end], from.as_bytes()).unwrap_or_else(|| panic!("{from:?} not in the signed part"));
    let mut raw = signed_raw[..at].to_vec();
    raw.extend_from_slice(to.as_bytes());
    raw.extend_from_slice(&signed_raw[at + from.len()..]);
    raw
}

// ---------------------------------------------------------------- reading

/// The (signed bytes, armored signature) of a top-level `multipart/signed`
/// mail, split per RFC 3156 §5: the signed bytes are everything between the
/// first `--boundary CRLF` and the CRLF before the next delimiter.
pub fn split_signed(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = signed_range(raw);
    let b = top_boundary(raw);
    let sig_part = &raw[end + 2 + b.len() + 2 + 2..];
    let body = find(sig_part, b"\r\n\r\n").unwrap() + 4;
    let close = find(&sig_part[body..], format!("\r\n--{b}--").as_bytes()).expect("no closing delimiter");
    (raw[start..end].to_vec(), sig_part[body..body + close].to_vec())
}

/// `(start, end)` of the signed entity in a top-level multipart/signed mail.
fn signed_range(raw: &[u8]) -> (usize, usize) {
    let b = top_boundary(raw);
    let first = format!("--{b}\r\n");
    let (head, _) = split_head(raw);
    let body_at = head.len();
    let start = body_at
        + if raw[body_at..].starts_with(first.as_bytes()) {
            0
        } else {
            find(&raw[body_at..], format!("\r\n{first}").as_bytes()).expect("no first boundary") + 2
        }
        + first.len();
    let end = start + find(&raw[start..], format!("\r\n--{b}\r\n").as_bytes()).expect("no second boundary");
    (start, end)
}

/// The `boundary` parameter of the top-level Content-Type.
pub fn top_boundary(raw: &[u8]) -> String {
    let ct = header(raw, "content-type").expect("no Content-Type");
    let i = find_ci(ct.as_bytes(), b"boundary=").expect("no boundary parameter") + 9;
    let rest = &ct[i..];
    if let Some(r) = rest.strip_prefix('"') {
        r[..r.find('"').unwrap()].to_string()
    } else {
        rest.split([';', ' ', '\t']).next().unwrap().to_string()
    }
}

/// The unfolded value of the first top-level header `name`.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let (head, _) = split_head(raw);
    header_fields(head).into_iter().find_map(|f| {
        let (n, v) = f.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.replace("\r\n", "").trim().to_string())
    })
}

/// Header block (including its final blank line) and body.
fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    let i = find(raw, b"\r\n\r\n").expect("no header/body separator") + 4;
    raw.split_at(i)
}

/// The header fields, each with its continuation lines and final CRLF.
fn header_fields(head: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<String> = vec![];
    for line in text.split_inclusive("\r\n") {
        if line == "\r\n" {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str(line);
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// The binary packets of an ASCII-armored block (header lines and CRC skipped).
pub fn dearmor(armored: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(armored);
    let mut b64 = String::new();
    let mut in_body = false;
    let mut started = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("-----BEGIN ") {
            started = true;
            continue;
        }
        if !started {
            continue;
        }
        if line.starts_with("-----END ") {
            break;
        }
        if !in_body {
            in_body = line.is_empty();
            continue;
        }
        if line.starts_with('=') {
            continue;
        }
        b64.push_str(line);
    }
    B64.decode(b64).expect("bad armor")
}
