//! TLS to the grid's server (`--server tls://HOST:PORT`), for a beanstalkd behind a TLS
//! terminator such as stunnel: the server's certificate is checked against the system's
//! roots or `GRID_CA_FILE`, and a client certificate (`GRID_CERT_FILE`,
//! `GRID_CERT_KEY_FILE`) is offered where the terminator requires one (mutual TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls;

/// Where the TLS material is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of the CAs trusted for the server (default: the system's).
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain, for mutual TLS.
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The rustls client configuration these files make.
    pub fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                for cert in certs(path)? {
                    roots.add(cert).with_context(|| {
                        format!("a certificate in {} is not usable", path.display())
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("setting up TLS")?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let key_der = rustls_pemfile::private_key(&mut reader(key)?)
                    .with_context(|| format!("reading the key {}", key.display()))?
                    .with_context(|| format!("{} holds no private key", key.display()))?;
                builder
                    .with_client_auth_cert(certs(cert)?, key_der)
                    .map_err(|e| client_certificate_error(cert, e))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => anyhow::bail!(
                "a client certificate needs both GRID_CERT_FILE (--cert-file) and GRID_CERT_KEY_FILE (--cert-key-file)"
            ),
        };
        Ok(Arc::new(config))
    }
}

/// Why a client certificate was refused, saying how to make one that works: rustls reads
/// only X.509 version 3, and `openssl x509 -req` without extensions makes version 1.
fn client_certificate_error(cert: &Path, e: rustls::Error) -> anyhow::Error {
    if format!("{e:?}").contains("UnsupportedCertVersion") {
        anyhow::anyhow!(
            "{} is an X.509 version 1 certificate, which TLS clients refuse: sign it again as version 3 (`openssl x509 -req … -extfile FILE` with at least one extension, e.g. extendedKeyUsage=clientAuth; docs/deploy.md shows the commands)",
            cert.display()
        )
    } else {
        anyhow::Error::new(e).context("the client certificate and key do not fit together")
    }
}

fn reader(path: &Path) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(std::io::BufReader::new(file))
}

fn certs(path: &Path) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut reader(path)?)
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A CA and a client certificate made by `openssl x509 -req` with the given extensions
    /// file (none: OpenSSL makes a version 1 certificate).
    fn client_certificate(dir: &Path, extensions: Option<&str>) -> TlsFiles {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=client",
        ]);
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "2",
        ];
        if let Some(ext) = extensions {
            std::fs::write(dir.join("client.ext"), ext).unwrap();
            sign.extend(["-extfile", "client.ext"]);
        }
        openssl(&sign);
        TlsFiles {
            ca: Some(dir.join("ca.pem")),
            cert: Some(dir.join("client.pem")),
            key: Some(dir.join("client.key")),
        }
    }

    #[test]
    fn a_version_1_client_certificate_is_named_as_such_and_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = client_certificate(dir.path(), None);
        let err = format!("{:#}", files.client_config().unwrap_err());
        assert!(
            err.contains("X.509 version 1") && err.contains("-extfile"),
            "{err}"
        );
        assert!(!err.contains("do not fit together"), "{err}");
    }

    #[test]
    fn a_version_3_client_certificate_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let files = client_certificate(dir.path(), Some("extendedKeyUsage=clientAuth\n"));
        files.client_config().unwrap();
    }
}
