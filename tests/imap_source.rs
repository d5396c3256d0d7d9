//! The IMAP source against the real Dovecot and Postfix of the test harness
//! (`tests/harness/servers.sh`): a reporter's mail arrives over SMTP, and
//! `secmail::source::imap::run` must hand it to the pipeline (here a recording
//! handler) and file it into the right folder, over STARTTLS with IDLE and over
//! implicit TLS with polling, retrying failures, surviving a UIDVALIDITY change
//! and stopping promptly. Each test has its own mailbox, so they run in parallel.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{imap_fetch_all, servers, smtp_send, unique_addr, wait_for};
use secmail::config::{ImapConfig, Secret, Tls};
use secmail::source::{Disposition, Handler, imap};
use secmail::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Postfix hands mail to Dovecot within milliseconds; this bounds a slow CI.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `run` may take to return after the token is cancelled.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const PROCESSED: &str = "secmail/processed";
const QUARANTINE: &str = "secmail/quarantine";

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "secmail=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Source config for `user` on the harness; STARTTLS on 14143 by IP address, or
/// implicit TLS on 14993 by name (both are in the certificate).
fn config(user: &str, tls: Tls, idle: bool, poll_interval: Duration) -> ImapConfig {
    let s = servers();
    let (host, port) = match tls {
        Tls::Implicit => ("localhost", s.imaps_port),
        _ => ("127.0.0.1", s.imap_port),
    };
    ImapConfig {
        host: host.into(),
        port,
        tls,
        username: user.into(),
        password: Secret::new(s.password),
        ca_file: Some(s.ca_file.clone()),
        folder: "INBOX".into(),
        processed_folder: PROCESSED.into(),
        quarantine_folder: QUARANTINE.into(),
        idle,
        poll_interval,
    }
}

fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Rita Reporter <rita@example.test>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.test>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\
         \r\nThere is a bug in the parser.\r\n",
        unique_addr("msg").replace('@', ".")
    )
    .into_bytes()
}

/// One handler call: when, and the raw message.
type Offer = (Instant, Vec<u8>);

/// Every message the handler was offered, with when.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Offer>>>);

impl Seen {
    fn times(&self, needle: &str) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, raw)| String::from_utf8_lossy(raw).contains(needle))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Waits until the handler has been offered a message containing `needle`
    /// at least `n` times; returns when it was first offered.
    async fn wait(&self, needle: &str, n: usize) -> Instant {
        wait_for(
            &format!("{needle:?} offered {n} time(s)"),
            DELIVERY_TIMEOUT,
            || async {
                let t = self.times(needle);
                (t.len() >= n).then(|| t[0])
            },
        )
        .await
    }
}

/// A recording handler deciding each message with `decide`.
fn recording(
    seen: &Seen,
    decide: impl Fn(&[u8]) -> anyhow::Result<Disposition> + Send + Sync + 'static,
) -> Handler {
    let seen = seen.clone();
    let decide = Arc::new(decide);
    Arc::new(move |raw: Vec<u8>| {
        let seen = seen.clone();
        let decide = decide.clone();
        Box::pin(async move {
            let d = decide(&raw);
            seen.0.lock().unwrap().push((Instant::now(), raw));
            d
        })
    })
}

fn start(
    cfg: ImapConfig,
    store: Store,
    handler: Handler,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    init_logs();
    let token = CancellationToken::new();
    let task = tokio::spawn(imap::run(cfg, store, handler, token.clone(), Default::default()));
    (token, task)
}

async fn stop(token: CancellationToken, task: JoinHandle<anyhow::Result<()>>) -> Duration {
    let t0 = Instant::now();
    token.cancel();
    tokio::time::timeout(STOP_TIMEOUT, task)
        .await
        .expect("run returns promptly after shutdown")
        .expect("run did not panic")
        .expect("run returns Ok on shutdown");
    t0.elapsed()
}

fn holds(folder: &[Vec<u8>], needle: &str) -> bool {
    folder
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains(needle))
}

/// Waits until `needle` is in `folder` of `user`'s mailbox.
async fn wait_in(user: &str, folder: &str, needle: &str) {
    wait_for(
        &format!("{needle:?} in {folder}"),
        DELIVERY_TIMEOUT,
        || async { holds(&imap_fetch_all(user, folder).await, needle).then_some(()) },
    )
    .await
}

async fn inbox_empty(user: &str) -> bool {
    imap_fetch_all(user, "INBOX").await.is_empty()
}

/// (1) IDLE over STARTTLS: new mail reaches the handler without polling and
/// ends up in processed_folder; INBOX is left empty.
#[tokio::test(flavor = "multi_thread")]
async fn idle_over_starttls_processes_and_moves() {
    let user = unique_addr("imap-idle");
    // The first message creates the mailbox and is picked up by the first scan.
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "first report"),
    )
    .await;
    let seen = Seen::default();
    // A long poll_interval: only IDLE can explain a quick second delivery.
    let cfg = config(&user, Tls::Starttls, true, Duration::from_secs(600));
    let (token, task) = start(
        cfg,
        Store::open_in_memory().unwrap(),
        recording(&seen, |_| Ok(Disposition::Processed)),
    );
    seen.wait("first report", 1).await;
    wait_in(&user, PROCESSED, "first report").await;

    // Now the source idles; this one must come through IDLE.
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "second report"),
    )
    .await;
    let sent = Instant::now();
    let offered = seen.wait("second report", 1).await;
    println!(
        "IDLE (STARTTLS): delivery-to-handler delay {:?}",
        offered.duration_since(sent)
    );
    wait_in(&user, PROCESSED, "second report").await;
    assert!(inbox_empty(&user).await, "INBOX still holds mail");
    assert_eq!(seen.times("report").len(), 2, "each message offered once");
    let processed = imap_fetch_all(&user, PROCESSED).await;
    assert_eq!(processed.len(), 2);
    assert!(
        processed
            .iter()
            .all(|m| !String::from_utf8_lossy(m).is_empty()),
        "messages moved intact"
    );
    println!("IDLE: stopped in {:?}", stop(token, task).await);
}

/// (2) Polling (`idle = false`) over implicit TLS on 14993.
#[tokio::test(flavor = "multi_thread")]
async fn polling_over_implicit_tls() {
    let user = unique_addr("imap-poll");
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "first polled"),
    )
    .await;
    let seen = Seen::default();
    let poll = Duration::from_secs(2);
    let cfg = config(&user, Tls::Implicit, false, poll);
    let (token, task) = start(
        cfg,
        Store::open_in_memory().unwrap(),
        recording(&seen, |_| Ok(Disposition::Processed)),
    );
    seen.wait("first polled", 1).await;
    wait_in(&user, PROCESSED, "first polled").await;

    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "second polled"),
    )
    .await;
    let sent = Instant::now();
    let offered = seen.wait("second polled", 1).await;
    println!(
        "polling every {poll:?} (implicit TLS): delivery-to-handler delay {:?}",
        offered.duration_since(sent)
    );
    wait_in(&user, PROCESSED, "second polled").await;
    assert!(inbox_empty(&user).await, "INBOX still holds mail");
    println!("polling: stopped in {:?}", stop(token, task).await);
}

/// (3) A handler error leaves the message in INBOX; it is offered again on a
/// later cycle and filed once the handler succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn handler_error_leaves_message_and_retries() {
    let user = unique_addr("imap-retry");
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "flaky report"),
    )
    .await;
    let seen = Seen::default();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = failing.clone();
    let handler = recording(&seen, move |_| {
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("database is locked (test)")
        }
        Ok(Disposition::Processed)
    });
    // IDLE re-issued every second: that is the retry cadence.
    let cfg = config(&user, Tls::Starttls, true, Duration::from_secs(1));
    let (token, task) = start(cfg, Store::open_in_memory().unwrap(), handler);

    seen.wait("flaky report", 2).await;
    let inbox = imap_fetch_all(&user, "INBOX").await;
    assert!(
        holds(&inbox, "flaky report"),
        "a failed message must stay in INBOX"
    );
    assert!(imap_fetch_all(&user, PROCESSED).await.is_empty());

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_in(&user, PROCESSED, "flaky report").await;
    assert!(inbox_empty(&user).await);
    let tries = seen.times("flaky report");
    println!(
        "offered {} times; retry gaps: {:?}",
        tries.len(),
        tries.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    );
    stop(token, task).await;
}

/// (4) Quarantine goes to quarantine_folder, the rest to processed_folder.
#[tokio::test(flavor = "multi_thread")]
async fn quarantine_disposition_moves_to_quarantine_folder() {
    let user = unique_addr("imap-quarantine");
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "You WON the lottery"),
    )
    .await;
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "XSS in login form"),
    )
    .await;
    let seen = Seen::default();
    let handler = recording(&seen, |raw| {
        Ok(if String::from_utf8_lossy(raw).contains("lottery") {
            Disposition::Quarantine
        } else {
            Disposition::Processed
        })
    });
    let cfg = config(&user, Tls::Starttls, true, Duration::from_secs(60));
    let (token, task) = start(cfg, Store::open_in_memory().unwrap(), handler);
    wait_in(&user, QUARANTINE, "lottery").await;
    wait_in(&user, PROCESSED, "XSS in login form").await;
    assert!(!holds(&imap_fetch_all(&user, PROCESSED).await, "lottery"));
    assert!(!holds(&imap_fetch_all(&user, QUARANTINE).await, "XSS"));
    assert!(inbox_empty(&user).await);
    stop(token, task).await;
}

/// (5) A stored UIDVALIDITY that no longer matches (the server renumbered the
/// folder) makes the source rescan from scratch and process everything.
#[tokio::test(flavor = "multi_thread")]
async fn uidvalidity_change_rescans() {
    let user = unique_addr("imap-uidvalidity");
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "after renumbering"),
    )
    .await;
    let store = Store::open_in_memory().unwrap();
    // Bogus state: another UIDVALIDITY, and a last UID far beyond the real ones.
    store
        .set_imap_sync("INBOX", 1, 4_000_000_000)
        .await
        .unwrap();
    let seen = Seen::default();
    let cfg = config(&user, Tls::Starttls, true, Duration::from_secs(60));
    let (token, task) = start(
        cfg,
        store.clone(),
        recording(&seen, |_| Ok(Disposition::Processed)),
    );
    wait_in(&user, PROCESSED, "after renumbering").await;
    assert!(inbox_empty(&user).await);
    let (uidvalidity, last_uid) = wait_for("sync state updated", DELIVERY_TIMEOUT, || async {
        store
            .imap_sync("INBOX")
            .await
            .unwrap()
            .filter(|(v, _)| *v != 1)
    })
    .await;
    assert!(
        (1..1000).contains(&last_uid),
        "last_uid {last_uid} was reset and advanced"
    );
    println!("UIDVALIDITY {uidvalidity}, last UID {last_uid}");
    stop(token, task).await;
}

/// (6) Cancelling the token stops an idling source promptly, with `Ok`.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_returns_promptly() {
    let user = unique_addr("imap-shutdown");
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "before shutdown"),
    )
    .await;
    let seen = Seen::default();
    let cfg = config(&user, Tls::Starttls, true, Duration::from_secs(600));
    let (token, task) = start(
        cfg,
        Store::open_in_memory().unwrap(),
        recording(&seen, |_| Ok(Disposition::Processed)),
    );
    wait_in(&user, PROCESSED, "before shutdown").await;
    let took = stop(token, task).await;
    println!("idling source stopped in {took:?}");

    // Same for a polling source in its (600 s) sleep after its first cycle.
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "between polls"),
    )
    .await;
    wait_in(&user, "INBOX", "between polls").await;
    let seen = Seen::default();
    let cfg = config(&user, Tls::Implicit, false, Duration::from_secs(600));
    let (token, task) = start(
        cfg,
        Store::open_in_memory().unwrap(),
        recording(&seen, |_| Ok(Disposition::Processed)),
    );
    wait_in(&user, PROCESSED, "between polls").await;
    let took = stop(token, task).await;
    println!("polling source stopped in {took:?}");
}

/// (7) Shutdown while the handler holds a message: that message is finished
/// and filed before `run` returns (SPEC §2, "finishes the message in hand").
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_the_message_in_hand() {
    let user = unique_addr("imap-inhand");
    smtp_send(
        "rita@example.test",
        &[&user],
        &message(&user, "slow report"),
    )
    .await;
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let handler: Handler = Arc::new(move |_raw| {
        let (e, r) = (e.clone(), r.clone());
        Box::pin(async move {
            e.notify_one();
            r.notified().await;
            Ok(Disposition::Processed)
        })
    });
    let cfg = config(&user, Tls::Starttls, true, Duration::from_secs(600));
    let (token, task) = start(cfg, Store::open_in_memory().unwrap(), handler);
    tokio::time::timeout(DELIVERY_TIMEOUT, entered.notified())
        .await
        .expect("handler called");
    token.cancel();
    release.notify_one();
    tokio::time::timeout(STOP_TIMEOUT, task)
        .await
        .expect("run returns")
        .unwrap()
        .unwrap();
    assert!(
        holds(&imap_fetch_all(&user, PROCESSED).await, "slow report"),
        "the message in hand was filed"
    );
    assert!(inbox_empty(&user).await);
}

/// Runs the source as if the server lacked `ignore`, recording into `seen`;
/// a message whose text holds "handler fails" is refused by the handler, so it
/// stays in INBOX.
fn start_without(user: &str, seen: &Seen, ignore: &'static [&'static str]) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    init_logs();
    let token = CancellationToken::new();
    let cfg = config(user, Tls::Starttls, true, Duration::from_secs(600));
    let task = tokio::spawn(imap::run_without(
        cfg,
        Store::open_in_memory().unwrap(),
        recording(seen, |raw| {
            if String::from_utf8_lossy(raw).contains("handler fails") {
                anyhow::bail!("refused by the test")
            }
            Ok(Disposition::Processed)
        }),
        token.clone(),
        Default::default(),
        ignore,
    ));
    (token, task)
}

/// A person's message in `user`'s INBOX, marked `\Deleted` by them, that the
/// handler refuses: it must still be there after secmail filed the others.
async fn a_persons_deleted_message(user: &str) {
    smtp_send("rita@example.test", &[user], &message(user, "person's draft, handler fails")).await;
    wait_in(user, "INBOX", "person's draft").await;
    let mut session = common::imap_connect_starttls(user).await;
    session.select("INBOX").await.unwrap();
    let uids = session.uid_search("SUBJECT \"person's draft\"").await.unwrap();
    assert_eq!(uids.len(), 1);
    let uid = uids.into_iter().next().unwrap().to_string();
    use futures::TryStreamExt as _;
    session.uid_store(&uid, "+FLAGS.SILENT (\\Deleted)").await.unwrap().try_collect::<Vec<_>>().await.unwrap();
    session.logout().await.unwrap();
}

/// Without MOVE (RFC 6851), with the server's UIDPLUS (RFC 4315): messages are
/// copied to their folder and exactly the copied originals are removed with
/// `UID EXPUNGE`; a person's own `\Deleted` message in INBOX stays (no bare
/// EXPUNGE), and nothing is offered twice, not even by a fresh start.
#[tokio::test(flavor = "multi_thread")]
async fn without_move_copies_then_uid_expunges_only_what_it_copied() {
    let user = unique_addr("imap-nomove-uidplus");
    a_persons_deleted_message(&user).await;
    for n in ["one", "two"] {
        smtp_send("rita@example.test", &[&user], &message(&user, &format!("copied report {n}"))).await;
    }
    wait_for("three messages in INBOX", DELIVERY_TIMEOUT, || async {
        (imap_fetch_all(&user, "INBOX").await.len() == 3).then_some(())
    })
    .await;
    let seen = Seen::default();
    let (token, task) = start_without(&user, &seen, &["MOVE"]);
    wait_in(&user, PROCESSED, "copied report one").await;
    wait_in(&user, PROCESSED, "copied report two").await;
    // New mail during IDLE.
    smtp_send("rita@example.test", &[&user], &message(&user, "copied report three")).await;
    wait_in(&user, PROCESSED, "copied report three").await;
    stop(token, task).await;
    let (token, task) = start_without(&user, &seen, &["MOVE"]);
    smtp_send("rita@example.test", &[&user], &message(&user, "copied report four")).await;
    wait_in(&user, PROCESSED, "copied report four").await;
    stop(token, task).await;

    assert_eq!(seen.times("copied report").len(), 4, "each message offered exactly once");
    let inbox = imap_fetch_all(&user, "INBOX").await;
    assert_eq!(inbox.len(), 1, "only the person's message is left in INBOX");
    assert!(holds(&inbox, "person's draft"), "the person's \\Deleted message was not expunged");
    assert_eq!(imap_fetch_all(&user, PROCESSED).await.len(), 4);
}

/// Without MOVE and without UIDPLUS: messages are copied to their folder and
/// marked `$SecmailProcessed` in INBOX, where they stay (no EXPUNGE of any
/// kind), and are not offered again, not even by a fresh start.
#[tokio::test(flavor = "multi_thread")]
async fn without_move_or_uidplus_copies_and_marks_and_never_deletes() {
    let user = unique_addr("imap-nomove");
    a_persons_deleted_message(&user).await;
    for n in ["one", "two"] {
        smtp_send("rita@example.test", &[&user], &message(&user, &format!("copied report {n}"))).await;
    }
    wait_for("three messages in INBOX", DELIVERY_TIMEOUT, || async {
        (imap_fetch_all(&user, "INBOX").await.len() == 3).then_some(())
    })
    .await;
    let seen = Seen::default();
    let (token, task) = start_without(&user, &seen, &["MOVE", "UIDPLUS"]);
    wait_in(&user, PROCESSED, "copied report one").await;
    wait_in(&user, PROCESSED, "copied report two").await;
    smtp_send("rita@example.test", &[&user], &message(&user, "copied report three")).await;
    wait_in(&user, PROCESSED, "copied report three").await;
    stop(token, task).await;
    // A fresh start (empty store) skips what is marked.
    let (token, task) = start_without(&user, &seen, &["MOVE", "UIDPLUS"]);
    smtp_send("rita@example.test", &[&user], &message(&user, "copied report four")).await;
    wait_in(&user, PROCESSED, "copied report four").await;
    stop(token, task).await;

    assert_eq!(seen.times("copied report").len(), 4, "each message offered exactly once");
    assert_eq!(imap_fetch_all(&user, "INBOX").await.len(), 5, "originals stay in INBOX, the person's too");
    let mut session = common::imap_connect_starttls(&user).await;
    session.select("INBOX").await.unwrap();
    let marked = session.uid_search("KEYWORD $SecmailProcessed").await.unwrap();
    let deleted = session.uid_search("DELETED").await.unwrap();
    session.logout().await.unwrap();
    assert_eq!(marked.len(), 4, "every original carries the keyword");
    assert_eq!(deleted.len(), 1, "only the person's message is marked \\Deleted");
}

/// (9) `check_login` (for `secmail check-config`) over both TLS modes, and a
/// wrong password reported as an authentication failure.
#[tokio::test(flavor = "multi_thread")]
async fn check_login_reports_what_failed() {
    let user = unique_addr("imap-check");
    for tls in [Tls::Starttls, Tls::Implicit] {
        let summary = imap::check_login(&config(&user, tls, true, Duration::from_secs(60)))
            .await
            .unwrap_or_else(|e| panic!("check_login over {tls:?}: {e:#}"));
        println!("check_login ({tls:?}): {summary}");
        assert!(
            summary.contains("IDLE: yes") && summary.contains("MOVE: yes"),
            "{summary}"
        );
    }
    let mut wrong = config(&user, Tls::Starttls, true, Duration::from_secs(60));
    wrong.password = Secret::new("not-the-password");
    let e = imap::check_login(&wrong).await.unwrap_err();
    let text = format!("{e:#}");
    assert!(
        matches!(
            e.downcast_ref::<imap::ImapError>(),
            Some(imap::ImapError::Auth { .. })
        ),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
    println!("wrong password: {text}");
}

/// A target folder the server refuses (Dovecot's Maildir++ layout takes no
/// '.' in a name) is a configuration error, not an outage: `check_login` names
/// the folder and the server's words, and the source still reads INBOX, hands
/// every message over once and marks it `$SecmailProcessed` where it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_target_folder_still_reads_the_inbox_and_marks_in_place() {
    let user = unique_addr("imap-refused");
    let mut cfg = config(&user, Tls::Starttls, true, Duration::from_secs(600));
    cfg.processed_folder = "secmail.v2/processed".into();
    let e = imap::check_login(&cfg).await.unwrap_err();
    let text = format!("{e:#}");
    println!("refused folder: {text}");
    assert!(
        e.downcast_ref::<imap::ImapError>().is_some_and(|e| e.is_folder_problem()),
        "{text}"
    );
    assert!(text.contains("secmail.v2/processed"), "{text}");

    smtp_send("rita@example.test", &[&user], &message(&user, "report despite the folder")).await;
    wait_in(&user, "INBOX", "report despite the folder").await;
    let seen = Seen::default();
    let (token, task) = start(cfg.clone(), Store::open_in_memory().unwrap(), recording(&seen, |_| Ok(Disposition::Processed)));
    seen.wait("report despite the folder", 1).await;
    smtp_send("rita@example.test", &[&user], &message(&user, "second report during IDLE")).await;
    seen.wait("second report during IDLE", 1).await;
    wait_for("both marked $SecmailProcessed", DELIVERY_TIMEOUT, || async {
        let mut session = common::imap_connect_starttls(&user).await;
        session.select("INBOX").await.unwrap();
        let marked = session.uid_search("KEYWORD $SecmailProcessed").await.unwrap();
        session.logout().await.unwrap();
        (marked.len() == 2).then_some(())
    })
    .await;
    stop(token, task).await;
    assert_eq!(seen.times("report").len(), 2, "each message offered exactly once");
    assert_eq!(imap_fetch_all(&user, "INBOX").await.len(), 2, "both stay in INBOX");
}
