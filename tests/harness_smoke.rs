//! Proves the test harness itself: the real Dovecot and Postfix started by
//! `tests/harness/servers.sh` accept, deliver and serve mail the way the
//! behaviour tests rely on (plain SMTP in, IMAP over STARTTLS and implicit
//! TLS out, authenticated submission over STARTTLS and implicit TLS, nothing
//! relayed off the machine).

mod common;

use std::time::Duration;

use common::{
    imap_connect_implicit, imap_connect_starttls, imap_fetch_all, servers, smtp_send, unique_addr,
    wait_for,
};
use futures::TryStreamExt as _;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

/// Postfix hands mail to Dovecot within milliseconds; this bounds a slow CI.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

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
    let names: Vec<String> = implicit
        .list(Some(""), Some("*"))
        .await
        .expect("LIST")
        .map_ok(|n| n.name().to_owned())
        .try_collect()
        .await
        .expect("LIST responses");
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
