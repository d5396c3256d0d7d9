//! TLS client configurations for the connections secmail opens (IMAP, SMTP):
//! the built-in Mozilla roots (`webpki-roots`) plus, optionally, the PEM
//! certificates of a private CA named in the config (`ca_file`).
//!
//! Side effects: reads `ca_file`. The ring crypto provider is passed explicitly,
//! so no process-wide default provider has to be installed.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio_rustls::rustls;

/// A rustls client config that trusts the webpki roots plus the PEM
/// certificates in `ca_file` (if any).
///
/// Certificates are verified against the server name as usual (RFC 6125); there is
/// deliberately no way to turn verification off: a private server gets a
/// `ca_file` instead. A `ca_file` that cannot be read, holds no certificate, or
/// holds a certificate rustls refuses gives an error naming the file.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        add_pem_file(&mut roots, path)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS: no safe protocol version available")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Add every certificate of the PEM file at `path` to `roots`.
fn add_pem_file(roots: &mut rustls::RootCertStore, path: &Path) -> anyhow::Result<()> {
    let file =
        File::open(path).with_context(|| format!("ca_file {}: cannot open", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("ca_file {}: not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!(
            "ca_file {}: no PEM certificate (\"-----BEGIN CERTIFICATE-----\") found",
            path.display()
        );
    }
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).with_context(|| {
            format!(
                "ca_file {}: certificate #{} is unusable",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ca_file_uses_builtin_roots() {
        client_config(None).unwrap();
    }

    #[test]
    fn missing_ca_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope.pem");
        let e = format!("{:#}", client_config(Some(&p)).unwrap_err());
        assert!(e.contains("nope.pem") && e.contains("cannot open"), "{e}");
    }

    #[test]
    fn ca_file_without_certificates_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("empty.pem");
        std::fs::write(&p, "this is not a certificate\n").unwrap();
        let e = format!("{:#}", client_config(Some(&p)).unwrap_err());
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn ca_file_with_garbage_certificate_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.pem");
        std::fs::write(
            &p,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = format!("{:#}", client_config(Some(&p)).unwrap_err());
        assert!(e.contains("bad.pem"), "{e}");
    }
}
