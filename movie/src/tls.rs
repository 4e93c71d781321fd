//! Whom an `https://` archive must prove itself to, and the TLS set-ups made from that:
//! the CAs its certificate is checked against (webpki's roots, as ureq has them, or only
//! those of `--http-ca-file`), one set-up for HTTP/1.1 (ureq's agent) and one that offers
//! HTTP/2 by ALPN (`movie::h2`), so both protocols trust exactly the same servers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// The TLS client set-ups of a process's archive connections.
#[derive(Clone)]
pub struct ArchiveTls {
    /// For HTTP/1.1 (no ALPN offered: ureq speaks only HTTP/1.1).
    pub http1: Arc<rustls::ClientConfig>,
    /// Offering `h2` and then `http/1.1` by ALPN: the server's choice says which it is.
    pub http2: Arc<rustls::ClientConfig>,
    /// Where the trusted CAs came from (for logs and errors).
    pub trusting: Trusting,
}

impl std::fmt::Debug for ArchiveTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveTls")
            .field("trusting", &self.trusting)
            .finish()
    }
}

/// Whose certificates an archive's must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusting {
    /// The public web's CAs (Mozilla's list, built in as `webpki-roots`).
    PublicRoots,
    /// Only the CAs in this PEM file.
    CaFile(PathBuf),
}

/// Why the archive's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("cannot read the CA file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds no certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in it cannot serve as a trust anchor.
    #[error("a certificate in {} is not usable as a CA: {detail}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        detail: String,
    },
    /// rustls refused the set-up itself.
    #[error("setting up TLS: {0}")]
    Setup(String),
}

impl ArchiveTls {
    /// Trusting the public web's CAs, as a browser (and ureq by default) does.
    pub fn public() -> ArchiveTls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        ArchiveTls::with_roots(roots, Trusting::PublicRoots)
            .expect("the built-in roots and ring's protocol versions fit together")
    }

    /// Trusting only the CAs in the PEM file at `path` (an archive mirror with a private
    /// CA, a test server): the public roots are not trusted then.
    pub fn from_ca_file(path: &Path) -> Result<ArchiveTls, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsError::Empty {
                path: path.to_owned(),
            });
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::Unusable {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        }
        ArchiveTls::with_roots(roots, Trusting::CaFile(path.to_owned()))
    }

    fn with_roots(
        roots: rustls::RootCertStore,
        trusting: Trusting,
    ) -> Result<ArchiveTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http2 = config.clone();
        http2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ArchiveTls {
            http1: Arc::new(config),
            http2: Arc::new(http2),
            trusting,
        })
    }
}

/// A TLS failure's text with what to do about it, when it is the archive's certificate
/// that was not trusted (a private CA, a mirror, an interception proxy).
pub fn with_hint(detail: String) -> String {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "{detail} (the archive's certificate is not trusted: give its CA with --http-ca-file)"
        )
    } else {
        detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_roots_offer_http2_then_http1_and_the_plain_set_up_offers_nothing() {
        let tls = ArchiveTls::public();
        assert_eq!(tls.trusting, Trusting::PublicRoots);
        assert_eq!(
            tls.http2.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(tls.http1.alpn_protocols.is_empty());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = ArchiveTls::from_ca_file(&path).unwrap_err();
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("ca.pem"), "{e}");
        let missing = ArchiveTls::from_ca_file(&dir.path().join("none.pem")).unwrap_err();
        assert!(matches!(missing, TlsError::Read { .. }), "{missing}");
    }

    #[test]
    fn an_untrusted_certificate_says_how_to_trust_it() {
        let hinted = with_hint("invalid peer certificate: UnknownIssuer".into());
        assert!(hinted.contains("--http-ca-file"), "{hinted}");
        assert_eq!(with_hint("connection refused".into()), "connection refused");
    }
}
