//! Signed bodies: a shared grid key, and an envelope that carries a body's exact bytes
//! with an HMAC-SHA256 over them and the id of the key that made it. Every body the grid
//! puts is sealed when a key is configured; filters refuse unsigned or forged jobs and
//! the sink unsigned or forged results. Several keys can be accepted at once, so a key
//! can be rotated. Readers that only show bodies unwrap envelopes without a key.
//!
//! ```json
//! {"signed": 1, "kid": "3f2a9c1d", "hmac": "<64 hex digits>", "body": "<the body, as a JSON string>"}
//! ```

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The smallest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// One grid key.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish()
    }
}

impl Key {
    /// A key from its secret bytes; its id is the first 8 hex digits of their SHA-256.
    pub fn new(secret: Vec<u8>) -> Key {
        let digest = Sha256::digest(&secret);
        Key {
            id: hex(&digest[..4]),
            secret,
        }
    }

    /// Reads a key file (at least 32 bytes; surrounding whitespace is not trimmed).
    pub fn load(path: &Path) -> anyhow::Result<Key> {
        let secret = std::fs::read(path)
            .with_context(|| format!("reading the grid key {}", path.display()))?;
        anyhow::ensure!(
            secret.len() >= MIN_KEY_BYTES,
            "the grid key {} has {} bytes; a key has at least {MIN_KEY_BYTES} (make one with `gridctl keygen FILE`)",
            path.display(),
            secret.len()
        );
        Ok(Key::new(secret))
    }

    /// The key's id, as carried in envelopes.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }
}

/// Writes 32 random bytes to `path` with mode 0600 (refusing to overwrite a file).
pub fn keygen(path: &Path) -> anyhow::Result<Key> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut secret = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("reading /dev/urandom")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(&secret)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Key::new(secret))
}

/// The keys a process signs with and accepts.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    signing: Option<Key>,
    accepted: Vec<Key>,
}

/// What an envelope said about a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Signed with an accepted key, and the HMAC matches.
    Valid {
        /// The key's id.
        kid: String,
    },
    /// Signed, but this process has no key to check it with.
    Unchecked {
        /// The key's id.
        kid: String,
    },
    /// Not in an envelope.
    Unsigned,
}

/// Why a signed body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The body carries no signature, and a key is configured.
    #[error("unsigned: the grid has a key and this body carries no signature")]
    Unsigned,
    /// Signed with a key this process does not accept.
    #[error("signed with key {kid}, which is not one of this grid's keys")]
    UnknownKey {
        /// The id in the envelope.
        kid: String,
    },
    /// The HMAC does not match the body: forged or altered.
    #[error("forged or altered: the signature by key {kid} does not match the body")]
    Forged {
        /// The id in the envelope.
        kid: String,
    },
    /// An envelope that is not well formed.
    #[error("malformed signature envelope: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    signed: u32,
    kid: Cow<'a, str>,
    hmac: Cow<'a, str>,
    body: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Probe {
    signed: Option<serde::de::IgnoredAny>,
}

impl Keys {
    /// No key: bodies are put as they are, envelopes unwrapped unchecked.
    pub fn none() -> Keys {
        Keys::default()
    }

    /// Signs with `signing`, and accepts it and `also` (keys being rotated out or in).
    pub fn new(signing: Key, also: Vec<Key>) -> Keys {
        let mut accepted = vec![signing.clone()];
        accepted.extend(also);
        Keys {
            signing: Some(signing),
            accepted,
        }
    }

    /// Loads the signing key file and any others to accept.
    pub fn load(signing: Option<&Path>, also: &[PathBuf]) -> anyhow::Result<Keys> {
        let Some(path) = signing else {
            anyhow::ensure!(
                also.is_empty(),
                "--also-accept-key-file needs --key-file (GRID_KEY_FILE) too"
            );
            return Ok(Keys::none());
        };
        let also = also
            .iter()
            .map(|p| Key::load(p))
            .collect::<anyhow::Result<_>>()?;
        Ok(Keys::new(Key::load(path)?, also))
    }

    /// True when a key is configured: bodies are signed and must be.
    pub fn enabled(&self) -> bool {
        self.signing.is_some()
    }

    /// `body` in a signed envelope, or as it is without a key.
    pub fn seal(&self, body: &[u8]) -> Vec<u8> {
        let Some(key) = &self.signing else {
            return body.to_vec();
        };
        let text = String::from_utf8_lossy(body);
        let mut mac = key.mac();
        mac.update(text.as_bytes());
        let envelope = Envelope {
            signed: 1,
            kid: Cow::Borrowed(&key.id),
            hmac: Cow::Owned(hex(&mac.finalize().into_bytes())),
            body: text,
        };
        serde_json::to_vec(&envelope).unwrap_or_else(|_| body.to_vec())
    }

    /// The body inside `bytes` and what its signature says; an envelope with a bad or
    /// unknown signature is an error when this process has keys.
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Result<(Cow<'a, [u8]>, Signature), SignError> {
        let Some(envelope) = envelope(bytes)? else {
            return Ok((Cow::Borrowed(bytes), Signature::Unsigned));
        };
        let kid = envelope.kid.into_owned();
        let body = Cow::Owned(envelope.body.into_owned().into_bytes());
        if self.accepted.is_empty() {
            return Ok((body, Signature::Unchecked { kid }));
        }
        let key = self
            .accepted
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| SignError::UnknownKey { kid: kid.clone() })?;
        let tag = unhex(&envelope.hmac).ok_or_else(|| SignError::Forged { kid: kid.clone() })?;
        let mut mac = key.mac();
        mac.update(&body);
        mac.verify_slice(&tag)
            .map_err(|_| SignError::Forged { kid: kid.clone() })?;
        Ok((body, Signature::Valid { kid }))
    }

    /// [`Keys::open`], refusing unsigned bodies too when a key is configured: what a
    /// filter does with a job and the sink with a result.
    pub fn verify<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, SignError> {
        match self.open(bytes)? {
            (_, Signature::Unsigned) if self.enabled() => Err(SignError::Unsigned),
            (body, _) => Ok(body),
        }
    }
}

/// The body inside an envelope, unchecked: for readers that only show or parse bodies.
pub fn unwrap(bytes: &[u8]) -> Cow<'_, [u8]> {
    match envelope(bytes) {
        Ok(Some(e)) => Cow::Owned(e.body.into_owned().into_bytes()),
        _ => Cow::Borrowed(bytes),
    }
}

/// The envelope in `bytes`, if they are one.
fn envelope(bytes: &[u8]) -> Result<Option<Envelope<'_>>, SignError> {
    // Cheap first: every envelope starts with its `signed` key.
    let head: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .take(10)
        .collect();
    if !head.starts_with(b"{\"signed\"") {
        return Ok(None);
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe { signed: Some(_) }) => {}
        _ => return Ok(None),
    }
    let e: Envelope =
        serde_json::from_slice(bytes).map_err(|e| SignError::Malformed(e.to_string()))?;
    if e.signed != 1 {
        return Err(SignError::Malformed(format!(
            "envelope version {}",
            e.signed
        )));
    }
    Ok(Some(e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::new(vec![b; 32])
    }

    #[test]
    fn a_sealed_body_opens_with_its_key_and_not_with_another() {
        let keys = Keys::new(key(1), vec![]);
        let body = br#"{"version": 1, "video": "a.mov"}"#;
        let sealed = keys.seal(body);
        assert_eq!(keys.verify(&sealed).unwrap().as_ref(), body);
        let other = Keys::new(key(2), vec![]);
        assert!(matches!(
            other.verify(&sealed),
            Err(SignError::UnknownKey { .. })
        ));
        assert_eq!(
            unwrap(&sealed).as_ref(),
            body,
            "readers without a key still see it"
        );
        assert!(matches!(
            Keys::none().open(&sealed).unwrap().1,
            Signature::Unchecked { .. }
        ));
    }

    #[test]
    fn an_altered_or_unsigned_body_is_refused_when_keys_are_configured() {
        let keys = Keys::new(key(1), vec![]);
        let sealed = String::from_utf8(keys.seal(b"{\"version\": 1}")).unwrap();
        let altered = sealed.replace("version", "versioN");
        assert!(matches!(
            keys.verify(altered.as_bytes()),
            Err(SignError::Forged { .. })
        ));
        assert_eq!(keys.verify(b"{\"version\": 1}"), Err(SignError::Unsigned));
        assert!(Keys::none().verify(b"{\"version\": 1}").is_ok());
    }

    #[test]
    fn during_a_rotation_old_and_new_keys_are_both_accepted() {
        let old = Keys::new(key(1), vec![]);
        let new = Keys::new(key(2), vec![]);
        let rotating = Keys::new(key(2), vec![key(1)]);
        for sealed in [old.seal(b"{}"), new.seal(b"{}")] {
            assert!(rotating.verify(&sealed).is_ok());
        }
    }
}
