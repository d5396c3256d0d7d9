//! Shared support for secmail's integration tests: the real Dovecot and
//! Postfix started by `tests/harness/servers.sh` (and the other IMAP servers
//! it runs beside them: Cyrus, a hosting-panel style Dovecot, a Dovecot
//! without MOVE and UIDPLUS; see [`IMAP_SERVERS`]), helpers that act as a
//! reporter (send over SMTP, read a mailbox over IMAP), and a handle on the
//! `secmail` binary under test.
//!
//! Side effects: starts the harness servers once per test process (they keep
//! running afterwards, shared by every test binary; `servers.sh stop` stops
//! them), spawns `secmail` processes that are killed when their [`Daemon`] is
//! dropped. Tests never mock a server and never sleep-and-assert: they poll
//! with [`wait_for`].
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt as _;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// The domain every harness mailbox lives in; Postfix delivers only there.
pub const DOMAIN: &str = "example.test";
/// The domain of the Cyrus IMAP server's users (Postfix delivers there too).
pub const CYRUS_DOMAIN: &str = "cyrus.example.test";
/// The domain of the hosting-panel style Dovecot's users.
pub const HOSTING_DOMAIN: &str = "hosting.example.test";
/// The domain of the Dovecot that offers neither MOVE nor UIDPLUS.
pub const NOMOVE_DOMAIN: &str = "nomove.example.test";

/// One of the harness's IMAP servers (`tests/harness/servers.sh`), for tests
/// that run against each of them. Every one: IMAP on 127.0.0.1 with STARTTLS
/// offered and cleartext login allowed, any `<name>@<domain>` a user with
/// password "secret" whose INBOX exists from the first login or delivery,
/// and Postfix (SMTP 14025) delivering `@<domain>` into it over LMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapServer {
    /// Short name, for messages: "dovecot", "cyrus", "dovecot-hosting", ...
    pub name: &'static str,
    /// Its users' domain.
    pub domain: &'static str,
    /// IMAP (plain, STARTTLS offered).
    pub imap_port: u16,
    /// LMTP, what Postfix delivers into.
    pub lmtp_port: u16,
    /// Personal namespace prefix, as NAMESPACE reports it ("" or "INBOX.").
    pub prefix: &'static str,
    /// Hierarchy delimiter.
    pub delimiter: char,
    /// Whether its post-login CAPABILITY lists MOVE and UIDPLUS.
    pub move_and_uidplus: bool,
    /// Its log file in the harness directory ([`Servers::dir`]).
    pub log: &'static str,
}

/// The main Dovecot (the servers of [`Servers::imap_port`]).
pub const MAIN_DOVECOT: ImapServer = ImapServer {
    name: "dovecot",
    domain: DOMAIN,
    imap_port: 14143,
    lmtp_port: 14024,
    prefix: "",
    delimiter: '/',
    move_and_uidplus: true,
    log: "dovecot.log",
};
/// Cyrus IMAP 3.6 with Debian's defaults: folders are `INBOX.<name>`, a
/// top-level folder or a `/` in a name is refused; any password is accepted.
pub const CYRUS: ImapServer = ImapServer {
    name: "cyrus",
    domain: CYRUS_DOMAIN,
    imap_port: 14243,
    lmtp_port: 14224,
    prefix: "INBOX.",
    delimiter: '.',
    move_and_uidplus: true,
    log: "cyrus.log",
};
/// Dovecot as cPanel and Plesk ship it: namespace prefix `INBOX.`, `.`.
pub const HOSTING_DOVECOT: ImapServer = ImapServer {
    name: "dovecot-hosting",
    domain: HOSTING_DOMAIN,
    imap_port: 14343,
    lmtp_port: 14324,
    prefix: "INBOX.",
    delimiter: '.',
    move_and_uidplus: true,
    log: "dovecot-hosting.log",
};
/// Dovecot whose CAPABILITY lacks MOVE and UIDPLUS (IDLE kept).
pub const NOMOVE_DOVECOT: ImapServer = ImapServer {
    name: "dovecot-nomove",
    domain: NOMOVE_DOMAIN,
    imap_port: 14443,
    lmtp_port: 14424,
    prefix: "",
    delimiter: '/',
    move_and_uidplus: false,
    log: "dovecot-nomove.log",
};
/// Every IMAP server of the harness.
pub const IMAP_SERVERS: [ImapServer; 4] = [MAIN_DOVECOT, CYRUS, HOSTING_DOVECOT, NOMOVE_DOVECOT];

impl ImapServer {
    /// A fresh address of this server's domain (see [`unique_addr`]).
    pub fn unique_addr(&self, tag: &str) -> String {
        unique_addr_in(tag, self.domain)
    }

    /// The folder named by `path` (`["secmail", "processed"]`) as this
    /// server spells it: `secmail/processed`, or `INBOX.secmail.processed`.
    pub fn folder(&self, path: &[&str]) -> String {
        format!("{}{}", self.prefix, path.join(&self.delimiter.to_string()))
    }

    /// Logs in as `user` after STARTTLS (see [`imap_connect_starttls_port`]).
    pub async fn connect(&self, user: &str) -> ImapSession {
        imap_connect_starttls_port(self.imap_port, user).await
    }

    /// Every message in `folder` of `user`'s mailbox (see [`imap_fetch_all`]).
    pub async fn fetch_all(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        imap_fetch_all_port(self.imap_port, user, folder).await
    }
}
/// Upper bound for one network operation against the harness servers, so a
/// wedged server fails the test instead of hanging it.
pub const NET_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Daemon::stop`] waits for a clean exit after SIGTERM.
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Poll interval of [`wait_for`].
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The running harness servers (all on 127.0.0.1).
#[derive(Debug)]
pub struct Servers {
    /// IMAP, plain with STARTTLS offered (cleartext login allowed).
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    /// Dovecot LMTP, what Postfix delivers into.
    pub lmtp_port: u16,
    /// SMTP without auth for loopback clients: how "reporters" send mail.
    pub smtp_port: u16,
    /// Submission: STARTTLS and AUTH required.
    pub submission_port: u16,
    /// SMTP over implicit TLS, AUTH required.
    pub smtps_port: u16,
    /// The CA that signed the servers' certificate (SAN localhost, 127.0.0.1).
    pub ca_file: PathBuf,
    /// The password of every `<anything>@example.test` user.
    pub password: &'static str,
    /// The harness directory (configs, logs, mail store).
    pub dir: PathBuf,
    /// Cyrus IMAP ([`CYRUS`]), plain with STARTTLS offered.
    pub cyrus_imap_port: u16,
    /// Cyrus LMTP (Postfix delivers `@cyrus.example.test` there).
    pub cyrus_lmtp_port: u16,
    /// The hosting-panel style Dovecot's IMAP ([`HOSTING_DOVECOT`]).
    pub hosting_imap_port: u16,
    /// Its LMTP (`@hosting.example.test`).
    pub hosting_lmtp_port: u16,
    /// The Dovecot without MOVE and UIDPLUS, IMAP ([`NOMOVE_DOVECOT`]).
    pub nomove_imap_port: u16,
    /// Its LMTP (`@nomove.example.test`).
    pub nomove_lmtp_port: u16,
}

impl Servers {
    /// Tail of the Dovecot and Postfix logs, for panic messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        self.log_tail("dovecot.log", lines) + &self.log_tail("postfix.log", lines)
    }

    /// Tail of one log of the harness directory (`cyrus.log`, [`ImapServer::log`]...),
    /// headed by its name, for panic messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!("----- {name} -----\n{}\n", all[start..].join("\n"))
    }
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the harness servers (once per process; `servers.sh start` is
/// itself idempotent and locked, so parallel test binaries are safe) and
/// describes them. Panics with the script's output when they do not start.
pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let script = repo_dir().join("tests/harness/servers.sh");
        // Output goes to a file, not a pipe: were a server ever to inherit
        // a pipe, reading it to EOF would wait as long as the server runs.
        let mut output = tempfile::tempfile().expect("temp file");
        let status = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("dup"))
            .stderr(output.try_clone().expect("dup"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        if !status.success() {
            let mut text = String::new();
            output.seek(SeekFrom::Start(0)).expect("seek");
            output.read_to_string(&mut text).expect("read output");
            panic!("{} start failed ({status}):\n{text}", script.display());
        }
        let dir = std::env::var_os("SECMAIL_HARNESS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_dir().join("target/harness"));
        Servers {
            imap_port: 14143,
            imaps_port: 14993,
            lmtp_port: 14024,
            smtp_port: 14025,
            submission_port: 14587,
            smtps_port: 14465,
            ca_file: dir.join("ca.pem"),
            password: "secret",
            dir,
            cyrus_imap_port: CYRUS.imap_port,
            cyrus_lmtp_port: CYRUS.lmtp_port,
            hosting_imap_port: HOSTING_DOVECOT.imap_port,
            hosting_lmtp_port: HOSTING_DOVECOT.lmtp_port,
            nomove_imap_port: NOMOVE_DOVECOT.imap_port,
            nomove_lmtp_port: NOMOVE_DOVECOT.lmtp_port,
        }
    })
}

/// A fresh address no other test (in this or any concurrent process) uses,
/// so each test has mailboxes of its own: `{tag}-{pid}-{nanos}-{n}@example.test`.
/// Lower-cased, as Dovecot lower-cases user names.
pub fn unique_addr(tag: &str) -> String {
    unique_addr_in(tag, DOMAIN)
}

/// [`unique_addr`] in another domain, e.g. [`CYRUS_DOMAIN`]. Keep `tag`
/// free of dots: Cyrus's user names cannot have one (it is its separator).
pub fn unique_addr_in(tag: &str, domain: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{}-{}-{nanos}-{n}@{domain}",
        tag.to_lowercase(),
        std::process::id()
    )
}

/// Delivers raw RFC 5322 bytes to the harness Postfix on port 14025 (plain
/// SMTP, no auth: loopback is in mynetworks), as a reporter's MTA would.
/// An empty `from` sends with a null return path (`MAIL FROM:<>`), like a
/// bounce. Returns once Postfix has queued it; delivery into Dovecot follows
/// within milliseconds, so readers poll with [`wait_for`].
pub async fn smtp_send(from: &str, to: &[&str], raw: &[u8]) {
    let s = servers();
    let from = (!from.is_empty()).then(|| {
        from.parse::<Address>()
            .unwrap_or_else(|e| panic!("bad from {from:?}: {e}"))
    });
    let to = to
        .iter()
        .map(|a| {
            a.parse::<Address>()
                .unwrap_or_else(|e| panic!("bad to {a:?}: {e}"))
        })
        .collect();
    let envelope = Envelope::new(from, to).expect("envelope");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(s.smtp_port)
        .timeout(Some(NET_TIMEOUT))
        .build();
    if let Err(e) = transport.send_raw(&envelope, raw).await {
        panic!(
            "smtp_send to {to_list:?} failed: {e:#}\n{}",
            s.logs_tail(20),
            to_list = envelope.to()
        );
    }
}

/// rustls client config trusting only the harness CA.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let s = servers();
    let pem =
        fs::read(&s.ca_file).unwrap_or_else(|e| panic!("cannot read {}: {e}", s.ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// A logged-in IMAP session over TLS (STARTTLS or implicit).
pub type ImapSession = async_imap::Session<TlsStream<TcpStream>>;

async fn tls_wrap(tcp: TcpStream) -> TlsStream<TcpStream> {
    let name = ServerName::try_from("localhost").expect("server name");
    with_timeout(
        "TLS handshake",
        TlsConnector::from(tls_config()).connect(name, tcp),
    )
    .await
    .expect("TLS handshake with the harness server (is ca.pem current?)")
}

async fn with_timeout<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(NET_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {NET_TIMEOUT:?}"))
}

async fn imap_login<T>(client: async_imap::Client<T>, user: &str) -> async_imap::Session<T>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match with_timeout("IMAP LOGIN", client.login(user, servers().password)).await {
        Ok(session) => session,
        Err((e, _)) => panic!("IMAP login as {user} failed: {e}"),
    }
}

/// Logs in as `user` on port 14143 after STARTTLS, trusting the harness CA.
pub async fn imap_connect_starttls(user: &str) -> ImapSession {
    imap_connect_starttls_port(servers().imap_port, user).await
}

/// Logs in as `user` after STARTTLS on any of the harness's IMAP ports
/// (14143, or an [`ImapServer::imap_port`]), trusting the harness CA.
pub async fn imap_connect_starttls_port(port: u16, user: &str) -> ImapSession {
    servers();
    let tcp = with_timeout("IMAP connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .unwrap_or_else(|e| panic!("connect to harness IMAP on port {port}: {e}"));
    let mut client = async_imap::Client::new(tcp);
    with_timeout("IMAP greeting", client.read_response())
        .await
        .expect("IMAP greeting")
        .expect("IMAP greeting: connection closed");
    with_timeout(
        "STARTTLS",
        client.run_command_and_check_ok("STARTTLS", None),
    )
    .await
    .expect("STARTTLS");
    let tls = tls_wrap(client.into_inner()).await;
    imap_login(async_imap::Client::new(tls), user).await
}

/// Logs in as `user` on `port` after STARTTLS, sends the one IMAP `command`
/// and returns the server's answer to it as text: its untagged lines and the
/// tagged completion (`t3 OK ...`), CRLFs kept. For what async-imap cannot
/// parse or does not offer, such as NAMESPACE; the answer must carry no
/// literals.
pub async fn imap_raw_command_port(port: u16, user: &str, command: &str) -> String {
    let s = servers();
    let tcp = with_timeout("IMAP connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .unwrap_or_else(|e| panic!("connect to harness IMAP on port {port}: {e}"));
    let mut plain = BufReader::new(tcp);
    let mut greeting = String::new();
    with_timeout("IMAP greeting", plain.read_line(&mut greeting))
        .await
        .expect("IMAP greeting");
    assert!(
        greeting.starts_with("* OK"),
        "IMAP greeting on {port}: {greeting:?}"
    );
    let answer = raw_exchange(&mut plain, "t1", "STARTTLS").await;
    assert!(tagged_ok(&answer, "t1"), "STARTTLS on {port}: {answer}");
    let mut tls = BufReader::new(tls_wrap(plain.into_inner()).await);
    let login = format!("LOGIN \"{user}\" \"{}\"", s.password);
    let answer = raw_exchange(&mut tls, "t2", &login).await;
    assert!(
        tagged_ok(&answer, "t2"),
        "LOGIN as {user} on {port}: {answer}"
    );
    let answer = raw_exchange(&mut tls, "t3", command).await;
    let _ = raw_exchange(&mut tls, "t4", "LOGOUT").await;
    answer
}

/// Sends `{tag} {command}` and reads lines up to the tagged completion.
async fn raw_exchange<S>(stream: &mut BufReader<S>, tag: &str, command: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let what = format!("IMAP {command}");
    with_timeout(&what, async {
        let inner = stream.get_mut();
        inner
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        inner.flush().await
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut answer = String::new();
    loop {
        let mut line = String::new();
        let n = with_timeout(&what, stream.read_line(&mut line))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(n > 0, "{what}: connection closed; read so far: {answer}");
        answer.push_str(&line);
        if line.starts_with(&format!("{tag} ")) {
            return answer;
        }
    }
}

fn tagged_ok(answer: &str, tag: &str) -> bool {
    answer
        .lines()
        .last()
        .is_some_and(|l| l.starts_with(&format!("{tag} OK")))
}

/// Logs in as `user` on port 14993 (implicit TLS), trusting the harness CA.
pub async fn imap_connect_implicit(user: &str) -> ImapSession {
    let s = servers();
    let tcp = with_timeout(
        "IMAPS connect",
        TcpStream::connect(("127.0.0.1", s.imaps_port)),
    )
    .await
    .expect("connect to harness IMAPS");
    let mut client = async_imap::Client::new(tls_wrap(tcp).await);
    with_timeout("IMAPS greeting", client.read_response())
        .await
        .expect("IMAPS greeting")
        .expect("IMAPS greeting: connection closed");
    imap_login(client, user).await
}

/// Every message in `folder` of `user`'s mailbox, raw (`BODY.PEEK[]`, so
/// `\Seen` is left alone), in sequence order. A folder that does not exist
/// (yet) reads as empty, so this can be polled with [`wait_for`].
pub async fn imap_fetch_all(user: &str, folder: &str) -> Vec<Vec<u8>> {
    imap_fetch_all_port(servers().imap_port, user, folder).await
}

/// [`imap_fetch_all`] on another of the harness's IMAP ports.
pub async fn imap_fetch_all_port(port: u16, user: &str, folder: &str) -> Vec<Vec<u8>> {
    let mut session = imap_connect_starttls_port(port, user).await;
    let mailbox = match with_timeout("IMAP SELECT", session.select(folder)).await {
        Ok(mailbox) => mailbox,
        Err(async_imap::error::Error::No(_)) => {
            let _ = session.logout().await;
            return Vec::new();
        }
        Err(e) => panic!("IMAP SELECT {folder:?} as {user}: {e}"),
    };
    let mut out = Vec::new();
    if mailbox.exists > 0 {
        let fetches: Vec<_> = with_timeout("IMAP FETCH", async {
            session
                .fetch("1:*", "BODY.PEEK[]")
                .await
                .expect("IMAP FETCH")
                .try_collect::<Vec<_>>()
                .await
                .expect("IMAP FETCH responses")
        })
        .await;
        let mut fetches: Vec<_> = fetches.into_iter().filter(|f| f.body().is_some()).collect();
        fetches.sort_by_key(|f| f.message);
        out = fetches
            .iter()
            .map(|f| f.body().expect("filtered").to_vec())
            .collect();
    }
    let _ = with_timeout("IMAP LOGOUT", session.logout()).await;
    out
}

/// Polls `f` every 100 ms until it yields `Some`, and returns that value;
/// panics naming `what` when `timeout` passes first.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Writes a secret file with mode 0600 (secmail refuses looser ones).
pub fn write_secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    file.write_all(value.as_bytes()).expect("write secret");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    path
}

/// Runs the secmail CLI: `secmail --config <config> <args...>`.
pub fn secmail(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secmail"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SECMAIL_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run secmail")
}

/// A running `secmail --config <config> run`. Its stdout and stderr go to
/// `log_path` (next to the config, i.e. in the test's temp dir). Dropping it
/// kills the process; [`Daemon::stop`] stops it the way systemd does.
pub struct Daemon {
    /// The process; `None` once it has been reaped.
    child: Option<Child>,
    /// Where its output goes, for [`Daemon::log`] and failure messages.
    pub log_path: PathBuf,
}

impl Daemon {
    /// Spawns the daemon with `RUST_LOG=secmail=debug`, logging to
    /// `<config dir>/secmail.log`.
    pub fn start(config: &Path) -> Daemon {
        let dir = config.parent().expect("config has a parent directory");
        Daemon::start_with_log(config, &dir.join("secmail.log"))
    }

    /// Like [`Daemon::start`] with an explicit log file (appended to).
    pub fn start_with_log(config: &Path, log_path: &Path) -> Daemon {
        Daemon::start_logging(config, log_path, "secmail=debug")
    }

    /// Like [`Daemon::start`] with this `RUST_LOG`.
    pub fn start_logging(config: &Path, log_path: &Path, rust_log: &str) -> Daemon {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()))
        };
        let child = Command::new(env!("CARGO_BIN_EXE_secmail"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", rust_log)
            .env_remove("SECMAIL_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(open())
            .stderr(open())
            .spawn()
            .expect("spawn secmail run");
        Daemon {
            child: Some(child),
            log_path: log_path.to_path_buf(),
        }
    }

    /// The process id (while it has not been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `Some(status)` once the process has exited (without blocking).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("try_wait")
    }

    /// Waits until the log contains `needle`; panics at `timeout`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        wait_for(
            &format!("{needle:?} in the daemon log"),
            timeout,
            || async { self.log().contains(needle).then_some(()) },
        )
        .await
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit, which it
    /// returns. Panics, with the log, if the daemon does not stop in time.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        let kill = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "secmail did not stop within {STOP_DEADLINE:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
