//! A real stunnel (Debian's `stunnel4`) terminating TLS in front of a server for one test,
//! with a throwaway CA, a server certificate for 127.0.0.1 and a client certificate made
//! by the `openssl` command; killed on drop, its log printed if the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Certificates made for one test.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA in `dir` (named `name`), a server certificate for 127.0.0.1 and localhost, and
    /// a client certificate, all signed by it.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("running openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let subj = format!("/CN={name}-ca");
        run(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", &subj,
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            let key = format!("{who}.key");
            let csr = format!("{who}.csr");
            let pem = format!("{who}.pem");
            let ext = format!("{who}.ext");
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Pki { dir }
    }

    /// A file of this PKI: `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A running stunnel server in front of `upstream`.
#[derive(Debug)]
pub struct Stunnel {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Stunnel {
    /// Accepts TLS on a free loopback port with `pki`'s server certificate and forwards
    /// to `upstream`; with `require_client_cert`, only clients with a certificate of
    /// `pki`'s CA get through.
    pub fn start(pki: &Pki, upstream: &str, require_client_cert: bool) -> Stunnel {
        let port = free_port().unwrap();
        let conf = pki.dir.join(format!("stunnel-{port}.conf"));
        let log = pki.dir.join(format!("stunnel-{port}.log"));
        let verify = if require_client_cert {
            format!(
                "CAfile = {}\nverifyChain = yes\n",
                pki.file("ca.pem").display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = 5\n[grid]\naccept = 127.0.0.1:{port}\nconnect = {upstream}\ncert = {}\nkey = {}\n{verify}",
                pki.file("server.pem").display(),
                pki.file("server.key").display()
            ),
        )
        .unwrap();
        let child = Command::new("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting stunnel4 (apt-get install stunnel4)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "stunnel never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Stunnel { child, port, log }
    }

    /// `tls://127.0.0.1:PORT`, for `GRID_SERVER`.
    pub fn server(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- stunnel log ---\n{log}");
        }
    }
}
