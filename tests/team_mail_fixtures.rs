//! The team-mail builders of `tests/team/mod.rs` produce what real clients
//! produce, and a real client (GnuPG 2.2) and a real MIME parser
//! (`mail-parser`) read them as intended: good signatures verify over the
//! RFC 3156 canonical part, tampered/expired/revoked/look-alike ones do not,
//! and each attack mail has the structure it claims. No mail servers needed.

mod team;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders as _, PartType};
use team::*;

const MEMBER: &str = "Alice Member <alice@example.test>";
const SECURITY: &str = "security@example.test";

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default().parse(raw).expect("mail-parser parses it")
}

/// `type/subtype` of a part, lower case.
fn ctype(p: &MessagePart) -> String {
    let ct = p.content_type().expect("has a Content-Type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase()
}

fn children<'a>(m: &'a Message<'a>, p: &MessagePart) -> Vec<&'a MessagePart<'a>> {
    p.sub_parts().expect("multipart").iter().map(|&i| &m.parts[i as usize]).collect()
}

/// Every line ends in CRLF: no bare LF, no bare CR.
fn assert_crlf(raw: &[u8]) {
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && raw[i - 1] == b'\r', "bare LF at byte {i}");
        }
        if b == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'), "bare CR at byte {i}");
        }
    }
    assert!(raw.ends_with(b"\r\n"));
}

/// RFC 5322 essentials: Date, From, Message-ID, MIME-Version, header lines
/// within 998 characters.
fn assert_rfc5322(raw: &[u8], d: &Draft) {
    let m = parse(raw);
    assert!(m.date().is_some(), "Date parses");
    assert_eq!(m.message_id(), Some(d.message_id.as_str()));
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some(d.sender_address().as_str())
    );
    assert!(header(raw, "MIME-Version").is_some());
    for line in raw.split(|&b| b == b'\n') {
        assert!(line.len() <= 1000, "line longer than 998 characters");
    }
}

fn reply(subject: &str, body: &str) -> Draft {
    Draft::new(MEMBER, SECURITY, subject, body)
        .replying_to("<case-opened-1@example.test>")
        .replying_to("ack-2@example.test")
}

fn verify_signed_top(raw: &[u8], verifier: &Gpg) -> Verified {
    let (data, sig) = split_signed(raw);
    verifier.verify_detached(&data, &sig)
}

#[test]
fn signed_mutt_verifies_over_the_crlf_first_part() {
    let gpg = Gpg::with_secret_keys(&["alice"]);
    let d = reply("Re: [SEC-1] Overflow in the header parser", "#severity high\n#assign bob\n\nConfirmed on 2.3.\n-- \nAlice\n");
    let raw = signed(&gpg, "alice", &d);
    assert_crlf(&raw);
    assert_rfc5322(&raw, &d);

    let ct = header(&raw, "Content-Type").unwrap();
    assert!(ct.starts_with("multipart/signed; micalg=pgp-sha256;"), "{ct}");
    assert!(ct.contains("protocol=\"application/pgp-signature\""), "{ct}");

    let (data, sig) = split_signed(&raw);
    assert!(data.starts_with(b"Content-Type: text/plain; charset=utf-8\r\n"));
    assert!(!data.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    assert!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----\r\n"));

    let v = Gpg::with_public_keys(&["alice"]).verify_detached(&data, &sig);
    assert_eq!(v.good_by(), Some(fingerprint("alice")), "{v:?}");
    let f = v.fields("VALIDSIG").unwrap();
    assert_eq!(f[7], "8", "SHA-256, matching micalg=pgp-sha256");
    assert_eq!(f[8], "01", "mutt signs with --textmode (class 0x01)");

    // Only the canonical bytes verify: a LF copy of the part does not.
    let lf: Vec<u8> = data.iter().copied().filter(|&b| b != b'\r').collect();
    let v = Gpg::with_public_keys(&["alice"]).verify_detached(&lf, &sig);
    // A text-mode signature is over canonical CRLF text, so LF input still
    // verifies (gpg canonicalises); a binary one would not. Both are checked.
    assert!(v.has("GOODSIG"), "text-mode signature canonicalises line ends: {v:?}");

    // MIME structure as mail-parser sees it.
    let m = parse(&raw);
    assert_eq!(ctype(m.root_part()), "multipart/signed");
    let kids = children(&m, m.root_part());
    assert_eq!(kids.len(), 2);
    assert_eq!(ctype(kids[0]), "text/plain");
    assert_eq!(kids[0].text_contents().unwrap().replace("\r\n", "\n"), d.body);
    assert_eq!(ctype(kids[1]), "application/pgp-signature");
    assert_eq!(kids[1].attachment_name(), Some("signature.asc"));
    assert_eq!(m.subject(), Some(d.subject.as_str()));
    assert_eq!(m.in_reply_to().as_text(), Some("ack-2@example.test"));
    assert_eq!(
        m.references().as_text_list().map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["case-opened-1@example.test".to_string(), "ack-2@example.test".to_string()])
    );
    // mail-parser's offsets of the first part are exactly the signed bytes.
    let p = kids[0];
    assert_eq!(&raw[p.offset_header as usize..p.offset_end as usize], &data[..]);
}

#[test]
fn signed_thunderbird_has_protected_headers_and_a_binary_signature() {
    let gpg = Gpg::with_secret_keys(&["alice"]);
    let d = reply("Re: [SEC-2] XSS", "#close fixed in 2.4.1\n").style(Style::Thunderbird);
    let raw = signed(&gpg, "alice", &d);
    assert_crlf(&raw);
    assert_rfc5322(&raw, &d);

    let v = verify_signed_top(&raw, &Gpg::with_public_keys(&["alice"]));
    assert_eq!(v.good_by(), Some(fingerprint("alice")), "{v:?}");
    assert_eq!(v.fields("VALIDSIG").unwrap()[8], "00", "binary signature (class 0x00)");

    let (data, sig) = split_signed(&raw);
    // Binary signatures are over the exact bytes: the LF form fails.
    let lf: Vec<u8> = data.iter().copied().filter(|&b| b != b'\r').collect();
    assert!(Gpg::with_public_keys(&["alice"]).verify_detached(&lf, &sig).has("BADSIG"));

    let m = parse(&raw);
    assert_eq!(ctype(m.root_part()), "multipart/signed");
    let kids = children(&m, m.root_part());
    assert_eq!(ctype(kids[0]), "multipart/mixed");
    assert_eq!(kids[0].content_type().unwrap().attribute("protected-headers"), Some("v1"));
    let inner_subject = kids[0].headers().iter().find(|h| h.name() == "Subject").unwrap();
    assert_eq!(inner_subject.value().as_text(), Some(d.subject.as_str()));
    let text = children(&m, kids[0]);
    assert_eq!(ctype(text[0]), "text/plain");
    assert_eq!(text[0].content_type().unwrap().attribute("format"), Some("flowed"));
    assert_eq!(text[0].text_contents().unwrap().replace("\r\n", "\n"), d.body);
    assert_eq!(kids[1].attachment_name(), Some("OpenPGP_signature.asc"));
}

#[test]
fn signed_by_bob_rsa_and_quoted_printable_body_and_attachment() {
    let gpg = Gpg::with_secret_keys(&["bob"]);
    // Non-ASCII, trailing spaces, a "From " line and a long line: quoted-printable.
    let body = "#note Grüße aus Köln  \nFrom here on the CVE is ours.\n".to_string() + &"x".repeat(120) + "\n";
    let d = Draft::new("Bob Member <bob@example.test>", SECURITY, "Re: [SEC-3] Prüfung", &body)
        .attach("poc.py", "text/x-python", b"print('poc')\n")
        .attach("trace.bin", "application/octet-stream", &[0, 1, 2, 255, 254]);
    let raw = signed(&gpg, "bob", &d);
    assert_crlf(&raw);
    assert!(raw.is_ascii(), "signed mail is 7bit (RFC 3156 section 3)");
    let (data, _) = split_signed(&raw);
    let data = String::from_utf8(data).unwrap();
    assert!(data.contains("Content-Transfer-Encoding: quoted-printable"));
    assert!(data.contains("=46rom here"), "From at line start is encoded");
    assert!(data.contains("K=C3=B6ln=20=20\r\n") || data.contains("K=C3=B6ln =20\r\n"), "{data}");
    assert!(data.lines().all(|l| l.len() <= 76 + 1));

    let v = verify_signed_top(&raw, &Gpg::with_public_keys(&["bob"]));
    assert_eq!(v.good_by(), Some(fingerprint("bob")), "{v:?}");
    assert_eq!(v.fields("VALIDSIG").unwrap()[6], "1", "RSA");

    let m = parse(&raw);
    assert_eq!(m.subject(), Some("Re: [SEC-3] Prüfung"));
    let kids = children(&m, m.root_part());
    assert_eq!(ctype(kids[0]), "multipart/mixed");
    let parts = children(&m, kids[0]);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].text_contents().unwrap().replace("\r\n", "\n"), body);
    assert_eq!(parts[1].attachment_name(), Some("poc.py"));
    assert_eq!(parts[1].contents(), b"print('poc')\n");
    assert_eq!(parts[2].contents(), &[0, 1, 2, 255, 254]);
}

#[test]
fn signed_and_encrypted_decrypts_with_the_team_key_and_shows_alices_signature() {
    for style in [Style::Mutt, Style::Thunderbird] {
        let gpg = Gpg::with_secret_keys(&["alice"]);
        let d = reply("Re: [SEC-4] Secret details", "#severity critical\nThe fix is in 7c1e2.\n").style(style);
        let raw = signed_and_encrypted(&gpg, "alice", &d, &team_pub_path());
        assert_crlf(&raw);
        assert_rfc5322(&raw, &d);
        assert!(!String::from_utf8_lossy(&raw).contains("7c1e2"), "no plaintext outside");

        let m = parse(&raw);
        assert_eq!(ctype(m.root_part()), "multipart/encrypted");
        assert_eq!(m.root_part().content_type().unwrap().attribute("protocol"), Some("application/pgp-encrypted"));
        let kids = children(&m, m.root_part());
        assert_eq!(kids.len(), 2);
        assert_eq!(ctype(kids[0]), "application/pgp-encrypted");
        assert!(String::from_utf8_lossy(kids[0].contents()).contains("Version: 1"));
        assert_eq!(ctype(kids[1]), "application/octet-stream");
        let armored = kids[1].contents();
        assert!(armored.starts_with(b"-----BEGIN PGP MESSAGE-----"));

        // The team (secret team key + alice's public key) decrypts it.
        let team = Gpg::with_public_keys(&["alice"]);
        team.import(&team_sec_path());
        let (plain, v) = team.decrypt(armored);
        assert!(v.has("DECRYPTION_OKAY"), "{v:?}");
        assert_eq!(v.good_by(), Some(fingerprint("alice")), "{v:?}");
        assert_eq!(v.lines_of("ENC_TO").len(), 2, "to the team and to alice herself: {v:?}");
        let inner = parse(&plain);
        let text = inner.body_text(0).unwrap().replace("\r\n", "\n");
        assert_eq!(text, d.body);
        match style {
            Style::Mutt => assert_eq!(m.subject(), Some(d.subject.as_str())),
            Style::Thunderbird => {
                assert_eq!(m.subject(), Some("..."));
                assert_eq!(inner.subject(), Some(d.subject.as_str()), "protected Subject");
            }
        }
        // Without alice's key the team still decrypts, but the signer is unknown.
        let bare = Gpg::empty();
        bare.import(&team_sec_path());
        let (_, v) = bare.decrypt(armored);
        assert!(v.has("DECRYPTION_OKAY") && v.has("NO_PUBKEY") && v.good_by().is_none(), "{v:?}");
    }
}

#[test]
fn carol_signs_encrypted_without_an_encryption_subkey() {
    // carol has no encryption subkey: encrypted only to the team.
    let gpg = Gpg::with_secret_keys(&["carol"]);
    let d = Draft::new("Carol Member <carol@example.test>", SECURITY, "Re: [SEC-5] x", "#ack\n");
    let raw = signed_and_encrypted(&gpg, "carol", &d, &team_pub_path());
    let m = parse(&raw);
    let kids = children(&m, m.root_part());
    let team = Gpg::with_public_keys(&["carol"]);
    team.import(&team_sec_path());
    let (_, v) = team.decrypt(kids[1].contents());
    assert_eq!(v.good_by(), Some(fingerprint("carol")), "{v:?}");
    assert_eq!(v.lines_of("ENC_TO").len(), 1, "{v:?}");
}

#[test]
fn tampered_fails_in_both_styles() {
    for style in [Style::Mutt, Style::Thunderbird] {
        let gpg = Gpg::with_secret_keys(&["alice"]);
        let d = reply("Re: [SEC-6]", "#severity low\nnot exploitable\n").style(style);
        let raw = signed(&gpg, "alice", &d);
        let bad = tampered(&raw);
        assert_eq!(raw.len(), bad.len());
        assert_ne!(raw, bad);
        assert_crlf(&bad);
        let verifier = Gpg::with_public_keys(&["alice"]);
        assert!(verify_signed_top(&raw, &verifier).good_by().is_some());
        let v = verify_signed_top(&bad, &verifier);
        assert!(v.has("BADSIG") && v.good_by().is_none(), "{v:?}");
        // Commands untouched, the text changed, the structure intact.
        let m = parse(&bad);
        let text = m.body_text(0).unwrap().to_string();
        assert!(text.contains("#severity low"), "{text}");
        assert!(!text.contains("not exploitable"), "{text}");
        assert_eq!(ctype(m.root_part()), "multipart/signed");

        let bad2 = tampered_with(&raw, "#severity low", "#severity critical");
        assert!(verify_signed_top(&bad2, &verifier).has("BADSIG"));
    }
}

#[test]
fn dave_signed_before_expiry_and_gpg_reports_the_key_expired_now() {
    let gpg = Gpg::with_secret_keys(&["dave"]);
    let d = Draft::new("Dave Member <dave@example.test>", SECURITY, "Re: [SEC-7]", "#close\n");
    // Signing now is refused: the key expired 2026-06-01.
    let out = gpg.run(&["--detach-sign", "--armor", "--local-user", &fingerprint("dave")], b"x\r\n");
    assert!(!out.status.success(), "gpg signs with an expired key?");

    let raw = signed_at(&gpg, "dave", &d, Some(PAST));
    assert_eq!(header(&raw, "Date").unwrap(), faked_date(PAST));
    assert_eq!(header(&raw, "Date").unwrap(), "Thu, 15 Jan 2026 12:00:00 +0000");
    let (data, sig) = split_signed(&raw);
    let verifier = Gpg::with_public_keys(&["dave"]);
    let v = verifier.verify_detached(&data, &sig);
    assert!(v.has("EXPKEYSIG"), "{v:?}");
    assert!(!v.has("GOODSIG") && v.good_by().is_none(), "{v:?}");
    assert_eq!(v.valid_sig_primary(), Some(fingerprint("dave")), "the signature itself is valid");
    let created = v.fields("VALIDSIG").unwrap()[2].clone();
    assert_eq!(created, "1768478400", "signed at 2026-01-15T12:00:00Z");
    assert!(v.stderr.contains("[expired]"), "{}", v.stderr);
    // At the signing time, the signature was good.
    let (_, v) = verifier.run_status(
        &["--faked-system-time", PAST, "--verify", &write_tmp(verifier.home(), &sig), "-"],
        &data,
    );
    assert!(v.has("GOODSIG"), "{v:?}");

    let listing = Gpg::with_public_keys(&["dave"]).list_keys();
    let pub_line = listing.lines().find(|l| l.starts_with("pub:")).unwrap();
    let f: Vec<&str> = pub_line.split(':').collect();
    assert_eq!(f[1], "e", "expired: {pub_line}");
    let expires = chrono::DateTime::from_timestamp(f[6].parse().unwrap(), 0).unwrap();
    assert_eq!(expires.date_naive().to_string(), "2026-06-01", "{pub_line}");
}

fn write_tmp(dir: &std::path::Path, data: &[u8]) -> String {
    let p = dir.join(format!("sig-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn carol_revoked_shows_as_revoked_and_her_signature_with_it() {
    let show = |name: &str| {
        let g = Gpg::empty();
        let out = g.run_ok(&["--with-colons", "--show-keys", key_path(name).to_str().unwrap()], b"");
        String::from_utf8(out).unwrap()
    };
    let revoked = show("carol-revoked");
    assert!(revoked.lines().any(|l| l.starts_with("pub:r:")), "{revoked}");
    assert!(revoked.contains(&fingerprint("carol")));
    let fresh = show("carol");
    assert!(fresh.lines().any(|l| l.starts_with("pub:-:") || l.starts_with("pub:u:") || l.starts_with("pub:f:")), "{fresh}");
    let packets = String::from_utf8(Gpg::empty().run_ok(&["--list-packets", key_path("carol-revoked").to_str().unwrap()], b"")).unwrap();
    assert!(packets.contains("revocation reason 0x02"), "key compromised: {packets}");

    // carol.sec.asc (unrevoked, in its own home) still signs...
    let gpg = Gpg::with_secret_keys(&["carol"]);
    let d = Draft::new("Carol Member <carol@example.test>", SECURITY, "Re: [SEC-8]", "#close\n");
    let raw = signed(&gpg, "carol", &d);
    let v = verify_signed_top(&raw, &Gpg::with_public_keys(&["carol"]));
    assert_eq!(v.good_by(), Some(fingerprint("carol")), "{v:?}");
    // ...and whoever has the revoked cert sees REVKEYSIG.
    let v = verify_signed_top(&raw, &Gpg::with_public_keys(&["carol-revoked"]));
    assert!(v.has("REVKEYSIG") && v.good_by().is_none(), "{v:?}");
}

#[test]
fn mallory_as_alice_attaches_her_lookalike_key() {
    let gpg = Gpg::with_secret_keys(&["mallory-as-alice"]);
    let d = reply("Re: [SEC-9]", "#assign mallory@example.test\nMy new key is attached.\n");
    assert_ne!(fingerprint("mallory-as-alice"), fingerprint("alice"));
    for autocrypt in [false, true] {
        let raw = with_key_attached(&gpg, "mallory-as-alice", "mallory-as-alice", &d, autocrypt);
        assert_crlf(&raw);
        assert_rfc5322(&raw, &d);
        // Against alice's real key: not her signature.
        let v = verify_signed_top(&raw, &Gpg::with_public_keys(&["alice"]));
        assert!(v.good_by().is_none() && v.has("NO_PUBKEY"), "{v:?}");

        let m = parse(&raw);
        let kids = children(&m, m.root_part());
        assert_eq!(ctype(kids[0]), "multipart/mixed");
        let parts = children(&m, kids[0]);
        assert_eq!(ctype(parts[1]), "application/pgp-keys");
        let f = fingerprint("mallory-as-alice");
        assert_eq!(parts[1].attachment_name(), Some(format!("OpenPGP_0x{}.asc", &f[24..]).as_str()));
        let attached = parts[1].contents().to_vec();
        assert_eq!(attached, std::fs::read(key_path("mallory-as-alice")).unwrap());
        // With the attached key, gpg says "good" by the look-alike, whose
        // user id is alice's.
        let g = Gpg::empty();
        let key = write_tmp(g.home(), &attached);
        g.import(std::path::Path::new(&key));
        let v = verify_signed_top(&raw, &g);
        assert_eq!(v.good_by(), Some(f.clone()), "{v:?}");
        assert!(v.fields("GOODSIG").unwrap().join(" ").contains("alice@example.test"));

        let ac = header(&raw, "Autocrypt");
        if autocrypt {
            let ac = ac.expect("Autocrypt header");
            assert!(ac.starts_with("addr=alice@example.test; keydata="), "{ac}");
            let keydata: String = ac.split("keydata=").nth(1).unwrap().split_whitespace().collect();
            use base64::Engine as _;
            let bin = base64::engine::general_purpose::STANDARD.decode(keydata).unwrap();
            assert_eq!(bin, dearmor(&attached));
        } else {
            assert!(ac.is_none());
        }
    }
}

#[test]
fn signed_then_wrapped_keeps_the_old_signature_under_an_unsigned_command() {
    let gpg = Gpg::with_secret_keys(&["alice"]);
    let old = signed(&gpg, "alice", &reply("Re: [SEC-10]", "Looks fine to me.\n"));
    let outer = Draft::new(MEMBER, SECURITY, "Re: [SEC-10]", "").replying_to("<case-opened-1@example.test>");
    let raw = signed_then_wrapped(&old, &outer, "#close\n");
    assert_crlf(&raw);
    assert_rfc5322(&raw, &outer);
    let m = parse(&raw);
    assert_eq!(ctype(m.root_part()), "multipart/mixed", "the outer mail is not signed");
    let kids = children(&m, m.root_part());
    assert_eq!(kids.len(), 2);
    assert_eq!(ctype(kids[0]), "text/plain");
    assert_eq!(kids[0].text_contents().unwrap().trim(), "#close");
    assert_eq!(ctype(kids[1]), "multipart/signed");
    // The inner signed part is intact: it still verifies, by alice.
    let inner = &raw[kids[1].offset_header as usize..kids[1].offset_end as usize];
    let v = verify_signed_top(inner, &Gpg::with_public_keys(&["alice"]));
    assert_eq!(v.good_by(), Some(fingerprint("alice")), "{v:?}");
    let (old_data, old_sig) = split_signed(&old);
    assert_eq!(split_signed(inner), (old_data, old_sig));
}

#[test]
fn inline_signed_fragment_signs_only_the_fragment() {
    let gpg = Gpg::with_secret_keys(&["alice"]);
    let d = reply("Re: [SEC-11]", "#close\n#severity none\n\nAlice wrote:");
    let raw = inline_signed_fragment(&gpg, "alice", &d, "I agree with the triage.\n- Alice\n");
    assert_crlf(&raw);
    assert_rfc5322(&raw, &d);
    let m = parse(&raw);
    assert_eq!(ctype(m.root_part()), "text/plain");
    let text = m.body_text(0).unwrap().to_string();
    assert!(text.starts_with("#close\r\n#severity none\r\n"), "{text}");
    let at = text.find("-----BEGIN PGP SIGNED MESSAGE-----").expect("clearsigned block");
    let block = &text[at..];
    let g = Gpg::with_public_keys(&["alice"]);
    let v = g.verify_clearsigned(block.as_bytes());
    assert_eq!(v.good_by(), Some(fingerprint("alice")), "{v:?}");
    // What the signature covers: the fragment, not the commands.
    let (out, _) = g.run_status(&["--decrypt"], block.as_bytes());
    let signed_text = String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n");
    assert_eq!(signed_text, "I agree with the triage.\n- Alice\n");
    // Verifying the whole body: gpg reports the good signature for the block
    // but the commands are outside it.
    assert!(!signed_text.contains("#close"));
}

#[test]
fn forwarded_carries_the_old_signed_mail_as_message_rfc822() {
    let gpg = Gpg::with_secret_keys(&["alice"]);
    let old_draft = reply("Re: [SEC-12]", "#severity high\n");
    let old = signed(&gpg, "alice", &old_draft);
    let d = Draft::new("Mallory <mallory@example.test>", SECURITY, "Fwd: Re: [SEC-12]", "#close\nsee below\n");
    let raw = forwarded(&old, &d);
    assert_crlf(&raw);
    assert_rfc5322(&raw, &d);
    let m = parse(&raw);
    assert_eq!(ctype(m.root_part()), "multipart/mixed");
    let kids = children(&m, m.root_part());
    assert_eq!(ctype(kids[1]), "message/rfc822");
    let PartType::Message(nested) = &kids[1].body else { panic!("not a nested message") };
    assert_eq!(nested.raw_message(), &old[..]);
    assert_eq!(nested.message_id(), Some(old_draft.message_id.as_str()));
    assert_eq!(ctype(nested.root_part()), "multipart/signed");
    let v = verify_signed_top(nested.raw_message(), &Gpg::with_public_keys(&["alice"]));
    assert_eq!(v.good_by(), Some(fingerprint("alice")), "{v:?}");
}

#[test]
fn fixture_keys_are_what_the_readme_says() {
    let show = |name: &str| {
        let out = Gpg::empty().run_ok(&["--with-colons", "--show-keys", key_path(name).to_str().unwrap()], b"");
        String::from_utf8(out).unwrap()
    };
    // (name, uid, primary algo, primary bits, encryption subkey algo)
    let table = [
        ("alice", "Alice Member <alice@example.test>", "22", Some("18")),
        ("bob", "Bob Member <bob@example.test>", "1", Some("1")),
        ("mallory", "Mallory <mallory@example.test>", "22", Some("18")),
        ("mallory-as-alice", "Alice Member <alice@example.test>", "22", Some("18")),
        ("carol", "Carol Member <carol@example.test>", "22", None),
        ("dave", "Dave Member <dave@example.test>", "22", Some("18")),
    ];
    let mut fprs = std::collections::HashSet::new();
    for (name, uid, algo, sub) in table {
        let k = show(name);
        let fpr = k.lines().find_map(|l| l.strip_prefix("fpr:")).unwrap().trim_matches(':').to_string();
        assert_eq!(fpr, fingerprint(name), "{name}: fingerprints.txt");
        assert!(fprs.insert(fpr));
        assert!(k.lines().any(|l| l.starts_with("uid:") && l.contains(uid)), "{name}: {k}");
        let p: Vec<&str> = k.lines().find(|l| l.starts_with("pub:")).unwrap().split(':').collect();
        assert_eq!(p[3], algo, "{name}");
        if name == "bob" {
            assert_eq!(p[2], "3072");
        }
        if name != "dave" {
            assert_eq!(p[6], "", "{name} has no expiry");
        }
        let s = k.lines().find(|l| l.starts_with("sub:")).map(|l| l.split(':').nth(3).unwrap().to_string());
        assert_eq!(s.as_deref(), sub, "{name}: encryption subkey");
        // The secret file holds the same key, unprotected.
        let sec = String::from_utf8(
            Gpg::empty().run_ok(&["--with-colons", "--show-keys", secret_key_path(name).to_str().unwrap()], b""),
        )
        .unwrap();
        assert!(sec.contains(&fingerprint(name)) && sec.starts_with("sec:"), "{name}: {sec}");
    }
}

#[test]
fn parallel_homes_do_not_collide_and_are_cleaned_up() {
    let homes: Vec<std::path::PathBuf> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                s.spawn(move || {
                    let signer = ["alice", "bob", "carol"][i % 3];
                    let gpg = Gpg::with_secret_keys(&[signer]);
                    let d = Draft::new(MEMBER, SECURITY, &format!("parallel {i}"), "#ack\n");
                    let raw = signed(&gpg, signer, &d);
                    let v = verify_signed_top(&raw, &Gpg::with_public_keys(&[signer]));
                    assert_eq!(v.good_by(), Some(fingerprint(signer)), "{v:?}");
                    gpg.home().to_path_buf()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unique: std::collections::HashSet<_> = homes.iter().collect();
    assert_eq!(unique.len(), homes.len());
    for h in &homes {
        assert!(h.to_str().unwrap().len() < 40, "short home path for the agent socket: {}", h.display());
        assert!(!h.exists(), "{} removed on drop", h.display());
    }
}
