//! Proves the test harness itself: the real Dovecot and Postfix started by
//! `tests/harness/servers.sh` accept, deliver and serve mail the way the
//! behaviour tests rely on (plain SMTP in, IMAP over STARTTLS and implicit
//! TLS out, authenticated submission over STARTTLS and implicit TLS, nothing
//! relayed off the machine); and the other IMAP servers beside them (Cyrus,
//! a hosting-panel style Dovecot, a Dovecot without MOVE and UIDPLUS) get
//! mail from Postfix and show the habits they are there for.

mod common;

use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response};
use common::{
    CYRUS, HOSTING_DOVECOT, ImapServer, ImapSession, NOMOVE_DOVECOT, imap_connect_implicit,
    imap_connect_starttls, imap_fetch_all, imap_raw_command_port, servers, smtp_send, unique_addr,
    wait_for,
};
use futures::TryStreamExt as _;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

/// Postfix hands mail to Dovecot within milliseconds; this bounds a slow CI.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// How soon an IDLEing Cyrus client must hear of a delivery. idled pushes it
/// within milliseconds; without idled, imapd would poll once a minute
/// (imapidlepoll), so this bound tells the two apart even on a slow CI.
const IDLE_WAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn message(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.test>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\
         \r\nHello from the harness smoke test.\r\n"
    )
    .into_bytes()
}

async fn inbox_with(user: &str, needle: &str) -> Vec<u8> {
    wait_for(
        &format!("{needle:?} in {user}'s INBOX"),
        DELIVERY_TIMEOUT,
        || async {
            imap_fetch_all(user, "INBOX")
                .await
                .into_iter()
                .find(|m| String::from_utf8_lossy(m).contains(needle))
        },
    )
    .await
}

fn submission(port: u16, tls: Tls, user: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls)
        .credentials(Credentials::new(
            user.to_owned(),
            servers().password.to_owned(),
        ))
        .timeout(Some(common::NET_TIMEOUT))
        .build()
}

fn tls_params() -> TlsParameters {
    let ca = std::fs::read(&servers().ca_file).expect("read ca.pem");
    TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&ca).expect("CA PEM"))
        .build_rustls()
        .expect("TLS parameters")
}

#[tokio::test]
async fn plain_smtp_in_imap_out() {
    let from = unique_addr("reporter");
    let to = unique_addr("security");
    let subject = format!("smoke-{}", unique_addr("subj").replace('@', "."));
    smtp_send(&from, &[&to], &message(&from, &to, &subject)).await;

    let raw = inbox_with(&to, &subject).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Hello from the harness smoke test."),
        "{text}"
    );
    // Dovecot's LMTP adds the envelope recipient; proves it came through Postfix.
    assert!(text.contains(&format!("Delivered-To: {to}")), "{text}");
    // The sender's mailbox is a different one and stays empty.
    assert!(imap_fetch_all(&from, "INBOX").await.is_empty());
}

#[tokio::test]
async fn missing_folder_reads_as_empty() {
    let user = unique_addr("nofolder");
    assert!(imap_fetch_all(&user, "secmail/processed").await.is_empty());
}

#[tokio::test]
async fn imaps_and_starttls_logins_offer_what_secmail_needs() {
    let user = unique_addr("caps");

    let mut implicit = imap_connect_implicit(&user).await;
    let caps = implicit.capabilities().await.expect("CAPABILITY");
    for cap in ["IDLE", "MOVE", "UIDPLUS"] {
        assert!(caps.has_str(cap), "IMAPS lacks {cap}");
    }
    // Clients create their own folders; the '/' separator nests them.
    implicit.create("secmail/processed").await.expect("CREATE");
    let names = folder_names(&mut implicit).await;
    assert!(names.iter().any(|n| n == "secmail/processed"), "{names:?}");
    implicit.logout().await.expect("LOGOUT");

    let mut starttls = imap_connect_starttls(&user).await;
    let caps = starttls.capabilities().await.expect("CAPABILITY");
    assert!(caps.has_str("IDLE"), "STARTTLS session lacks IDLE");
    let mailbox = starttls.select("secmail/processed").await.expect("SELECT");
    assert_eq!(mailbox.exists, 0);
    starttls.logout().await.expect("LOGOUT");
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let s = servers();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.imap_port))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    let user = unique_addr("badpass");
    assert!(client.login(&user, "not-the-password").await.is_err());
}

#[tokio::test]
async fn submission_starttls_with_auth_delivers() {
    let from = unique_addr("team");
    let to = unique_addr("reporter");
    let subject = format!("submission-{}", unique_addr("subj").replace('@', "."));
    let envelope = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    let port = servers().submission_port;

    submission(port, Tls::Required(tls_params()), &from)
        .send_raw(&envelope, &message(&from, &to, &subject))
        .await
        .unwrap_or_else(|e| panic!("submission: {e:#}\n{}", servers().logs_tail(20)));
    inbox_with(&to, &subject).await;

    // Without TLS the server offers no AUTH, so the credentials cannot be used.
    let cleartext = submission(port, Tls::None, &from)
        .send_raw(&envelope, &message(&from, &to, "never"))
        .await;
    assert!(
        cleartext.is_err(),
        "submission accepted mail without STARTTLS"
    );
}

#[tokio::test]
async fn smtps_with_auth_delivers() {
    let from = unique_addr("team");
    let to = unique_addr("reporter");
    let subject = format!("smtps-{}", unique_addr("subj").replace('@', "."));
    let envelope = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();

    submission(servers().smtps_port, Tls::Wrapper(tls_params()), &from)
        .send_raw(&envelope, &message(&from, &to, &subject))
        .await
        .unwrap_or_else(|e| panic!("smtps: {e:#}\n{}", servers().logs_tail(20)));
    inbox_with(&to, &subject).await;
}

#[tokio::test]
async fn mail_to_other_domains_bounces_instead_of_leaving() {
    let from = unique_addr("sender");
    let subject = format!("outside-{}", unique_addr("subj").replace('@', "."));
    smtp_send(
        &from,
        &["someone@example.org"],
        &message(&from, "someone@example.org", &subject),
    )
    .await;
    // The bounce (a DSN quoting our message) lands in the sender's INBOX.
    let dsn = inbox_with(&from, &subject).await;
    let text = String::from_utf8_lossy(&dsn);
    assert!(text.contains("delivers only to @example.test"), "{text}");
}

/// Sends a mail over SMTP 14025 from a fresh @example.test reporter to a
/// fresh user of `server`, and waits until it is in that user's INBOX there.
/// Returns the user and the message as the server serves it.
async fn deliver_to(server: &ImapServer) -> (String, Vec<u8>) {
    let from = unique_addr("reporter");
    let to = server.unique_addr("security");
    let subject = format!("{}-{}", server.name, unique_addr("subj").replace('@', "."));
    smtp_send(&from, &[&to], &message(&from, &to, &subject)).await;
    let raw = wait_for(
        &format!("{subject:?} in {to}'s INBOX on {}", server.name),
        DELIVERY_TIMEOUT,
        || async {
            server
                .fetch_all(&to, "INBOX")
                .await
                .into_iter()
                .find(|m| String::from_utf8_lossy(m).contains(&subject))
        },
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Hello from the harness smoke test."),
        "{text}"
    );
    (to, raw)
}

async fn folder_names(session: &mut ImapSession) -> Vec<String> {
    session
        .list(Some(""), Some("*"))
        .await
        .expect("LIST")
        .map_ok(|n| n.name().to_owned())
        .try_collect()
        .await
        .expect("LIST responses")
}

/// NAMESPACE's answer; async-imap cannot parse it, so it is read raw.
async fn namespace(server: &ImapServer, user: &str) -> String {
    let answer = imap_raw_command_port(server.imap_port, user, "NAMESPACE").await;
    assert!(answer.contains("* NAMESPACE "), "{}: {answer}", server.name);
    answer
}

/// What Cyrus (Debian's defaults) and the hosting-panel Dovecot share: the
/// personal namespace is "INBOX." with "." as delimiter, a client's folders
/// live under INBOX (`INBOX.secmail.processed`) and Dovecot's default
/// spelling (`secmail/processed`) is refused; MOVE, UIDPLUS and IDLE are
/// offered. Returns the LIST afterwards.
async fn assert_folders_live_under_inbox(server: &ImapServer, user: &str) -> Vec<String> {
    let answer = namespace(server, user).await;
    assert!(
        answer.contains(r#"* NAMESPACE (("INBOX." "."))"#),
        "{}: {answer}",
        server.name
    );

    let mut session = server.connect(user).await;
    let caps = session.capabilities().await.expect("CAPABILITY");
    for cap in ["IDLE", "MOVE", "UIDPLUS"] {
        assert!(caps.has_str(cap), "{} lacks {cap}", server.name);
    }
    let processed = server.folder(&["secmail", "processed"]);
    assert_eq!(processed, "INBOX.secmail.processed");
    session
        .create(&processed)
        .await
        .unwrap_or_else(|e| panic!("CREATE {processed} on {}: {e}", server.name));
    match session.create("secmail/processed").await {
        Err(async_imap::error::Error::No(_)) => {}
        other => panic!(
            "CREATE \"secmail/processed\" on {}: {other:?}, want NO",
            server.name
        ),
    }
    let names = folder_names(&mut session).await;
    assert!(names.contains(&processed), "{}: {names:?}", server.name);
    session.logout().await.expect("LOGOUT");
    names
}

#[tokio::test]
async fn cyrus_gets_mail_and_has_debians_namespace() {
    let (user, _) = deliver_to(&CYRUS).await;
    let names = assert_folders_live_under_inbox(&CYRUS, &user).await;
    assert!(!names.iter().any(|n| n.contains('/')), "{names:?}");
}

#[tokio::test]
async fn cyrus_idle_wakes_on_a_delivery() {
    let from = unique_addr("reporter");
    let user = CYRUS.unique_addr("idle");
    let subject = format!("idle-{}", unique_addr("subj").replace('@', "."));
    // The login creates the INBOX; nothing is in it yet.
    let mut session = CYRUS.connect(&user).await;
    let inbox = session.select("INBOX").await.expect("SELECT INBOX");
    assert_eq!(inbox.exists, 0);
    let mut idle = session.idle();
    idle.init().await.expect("IDLE");

    smtp_send(&from, &[&user], &message(&from, &user, &subject)).await;
    let sent = Instant::now();
    loop {
        let left = IDLE_WAKE_TIMEOUT.saturating_sub(sent.elapsed());
        let (wake, _stop) = idle.wait_with_timeout(left);
        match wake.await.expect("IDLE wait") {
            IdleResponse::NewData(data)
                if matches!(
                    data.parsed(),
                    Response::MailboxData(MailboxDatum::Exists(1))
                ) =>
            {
                break;
            }
            // "* 1 RECENT" and the like: wait on for the EXISTS.
            IdleResponse::NewData(_) => {}
            other => panic!(
                "IDLE on Cyrus heard nothing within {IDLE_WAKE_TIMEOUT:?} of a delivery: {other:?}\n{}{}",
                servers().log_tail(CYRUS.log, 30),
                servers().log_tail("postfix.log", 10)
            ),
        }
    }
    println!(
        "[measure] Cyrus IDLE: EXISTS {:?} after the SMTP send",
        sent.elapsed()
    );
    let mut session = idle.done().await.expect("DONE");
    let mut fetched = CYRUS.fetch_all(&user, "INBOX").await;
    assert_eq!(fetched.len(), 1);
    let raw = fetched.pop().expect("one message");
    assert!(String::from_utf8_lossy(&raw).contains(&subject));
    session.logout().await.expect("LOGOUT");
}

#[tokio::test]
async fn hosting_dovecot_gets_mail_and_keeps_folders_under_inbox() {
    let (user, raw) = deliver_to(&HOSTING_DOVECOT).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains(&format!("Delivered-To: {user}")), "{text}");
    assert_folders_live_under_inbox(&HOSTING_DOVECOT, &user).await;
}

#[tokio::test]
async fn nomove_dovecot_gets_mail_and_offers_neither_move_nor_uidplus() {
    let (user, _) = deliver_to(&NOMOVE_DOVECOT).await;

    let answer = namespace(&NOMOVE_DOVECOT, &user).await;
    assert!(answer.contains(r#"* NAMESPACE (("" "/"))"#), "{answer}");

    let mut session = NOMOVE_DOVECOT.connect(&user).await;
    let caps = session.capabilities().await.expect("CAPABILITY");
    for cap in ["MOVE", "UIDPLUS"] {
        assert!(!caps.has_str(cap), "the nomove Dovecot offers {cap}");
    }
    for cap in ["IMAP4rev1", "IDLE", "LITERAL+", "NAMESPACE"] {
        assert!(caps.has_str(cap), "the nomove Dovecot lacks {cap}");
    }
    let processed = NOMOVE_DOVECOT.folder(&["secmail", "processed"]);
    assert_eq!(processed, "secmail/processed");
    session
        .create(&processed)
        .await
        .expect("CREATE secmail/processed");
    session.logout().await.expect("LOGOUT");
}
