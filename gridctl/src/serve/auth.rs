//! Who may press the buttons of `gridctl serve --allow-control`: whoever knows the
//! control token (a file, like the grid key). Logging in with it sets a session cookie
//! (HttpOnly, SameSite=Strict); every control form carries a CSRF value; both are HMACs
//! of the token, so neither can be made without it, and nothing is stored.

use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub const COOKIE: &str = "gridctl_session";

/// The shortest token accepted.
const MIN_TOKEN_CHARS: usize = 16;

/// The control token and what is derived from it.
#[derive(Clone)]
pub struct Auth {
    token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

impl Auth {
    /// Reads the token from `path`: one line of at least 16 characters, in a file other
    /// users cannot read (refused otherwise, as the grid key is).
    pub fn load(path: &Path) -> anyhow::Result<Auth> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading the control token {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            return Err(common::cli::usage(format!(
                "the control token {} is open to other users (mode {:04o}): chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            ))
            .into());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the control token {}", path.display()))?;
        let token = text.trim().to_owned();
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(common::cli::usage(format!(
                "the control token in {} is shorter than {MIN_TOKEN_CHARS} characters",
                path.display()
            ))
            .into());
        }
        Ok(Auth { token })
    }

    /// An HMAC of the token for `purpose`, hex.
    fn derive(&self, purpose: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.token.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// True when `given` is the token.
    pub fn is_token(&self, given: &str) -> bool {
        equal(given.trim().as_bytes(), self.token.as_bytes())
    }

    /// The session cookie's value.
    pub fn session(&self) -> String {
        self.derive("gridctl serve session")
    }

    /// The CSRF value every control form carries.
    pub fn csrf(&self) -> String {
        self.derive("gridctl serve csrf")
    }

    /// True when `cookies` (a Cookie header) hold a valid session.
    pub fn logged_in(&self, cookies: Option<&str>) -> bool {
        let session = self.session();
        cookies.is_some_and(|c| {
            c.split(';').any(|kv| {
                kv.trim()
                    .strip_prefix(COOKIE)
                    .and_then(|v| v.strip_prefix('='))
                    .is_some_and(|v| equal(v.as_bytes(), session.as_bytes()))
            })
        })
    }

    /// True when `given` is the CSRF value.
    pub fn csrf_ok(&self, given: &str) -> bool {
        equal(given.as_bytes(), self.csrf().as_bytes())
    }
}

/// Compares in time independent of where they differ.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_opens_a_session_and_its_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "correct horse battery staple\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Auth::load(&path).is_err(),
            "a token others can read is refused"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let auth = Auth::load(&path).unwrap();
        assert!(auth.is_token("correct horse battery staple"));
        assert!(!auth.is_token("correct horse battery stapl"));
        let cookie = format!("other=1; {COOKIE}={}", auth.session());
        assert!(auth.logged_in(Some(&cookie)));
        assert!(!auth.logged_in(Some(&format!("{COOKIE}={}", auth.csrf()))));
        assert!(!auth.logged_in(None));
        assert!(auth.csrf_ok(&auth.csrf()) && !auth.csrf_ok(""));
        std::fs::write(&path, "short\n").unwrap();
        assert!(Auth::load(&path).is_err(), "a short token is refused");
    }
}
