//! Signed bodies: a shared grid key, and an envelope that carries a body's exact bytes
//! with an HMAC-SHA256 over them, the namespace and the kind of message they were put as,
//! and the id of the key that made it. Every body the grid puts is sealed when a key is
//! configured; filters refuse unsigned, forged or misplaced jobs, the sink results, and
//! `gridctl` marks such records and heartbeats. Several keys can be accepted at once, so
//! a key can be rotated. Readers that only show bodies unwrap envelopes without a key.
//!
//! ```json
//! {"signed": 2, "kid": "3f2a9c1d", "ns": "camhd", "kind": "job", "hmac": "<64 hex digits>", "body": "<the body, as a JSON string>"}
//! ```
//!
//! The HMAC covers `camhd-grid signed 2`, the namespace, the kind and the body, each
//! followed by a newline (neither a namespace nor a kind can hold one), so a body signed
//! as a job of one namespace is refused as anything else or anywhere else.
//!
//! The grid's key marker is also co-signed (`"also": [{"kid", "hmac"}]`) by every other
//! key the grid still accepts, each over the same text with the signing key's id in its
//! kind: a process that holds only a key being rotated out can prove which key the grid
//! signs with now, and nobody else can make it believe so.

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

    /// Reads a key file (at least 32 bytes; surrounding whitespace is not trimmed). A
    /// file that others may read or write is refused, as ssh refuses such a private key:
    /// whoever reads it can sign jobs for the whole grid.
    pub fn load(path: &Path) -> anyhow::Result<Key> {
        std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
        crate::files::private_file(path, "the grid key")?;
        let secret = std::fs::read(path).map_err(|e| unreadable(path, e))?;
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

/// The error for a key file that cannot be read: a missing or forbidden file is a
/// setting to fix (exit 2, so that a service manager does not restart into it again),
/// anything else an I/O failure.
fn unreadable(path: &Path, err: std::io::Error) -> anyhow::Error {
    let fix = match err.kind() {
        std::io::ErrorKind::NotFound => {
            "make the grid's key once with `gridctl keygen FILE` and copy it to every machine"
        }
        std::io::ErrorKind::PermissionDenied => {
            "give this process's user read access (a service group: chgrp camhd-grid, chmod 640)"
        }
        _ => {
            return anyhow::Error::new(err)
                .context(format!("reading the grid key {}", path.display()))
        }
    };
    crate::exit::usage(format!(
        "cannot read the grid key {}: {err}; {fix}",
        path.display()
    ))
    .into()
}

/// Writes 32 random bytes to `path` with mode 0600 (refusing to overwrite a file).
pub fn keygen(path: &Path) -> anyhow::Result<Key> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret = crate::random::bytes(32).context("reading /dev/urandom")?;
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

/// The keys a process signs with and accepts, for the one namespace it works in.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    namespace: String,
    signing: Option<Key>,
    accepted: Vec<Key>,
}

/// The kinds of message the grid puts, each signed as what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A job, in `<ns>.jobs`.
    Job,
    /// A result, in `<ns>.results`.
    Result,
    /// A failure record, in `<ns>.failures`.
    Failure,
    /// A filter slot's heartbeat, in `<ns>.status.*`.
    Heartbeat,
    /// The grid's key marker, in `<ns>.key`.
    Marker,
    /// The sink's state of the record, in `<ns>.sink`.
    Sink,
}

impl Kind {
    /// The word in envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Job => "job",
            Kind::Result => "result",
            Kind::Failure => "failure",
            Kind::Heartbeat => "heartbeat",
            Kind::Marker => "marker",
            Kind::Sink => "sink",
        }
    }
}

/// The envelope version this build writes and accepts.
const ENVELOPE_VERSION: u32 = 2;

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
    /// A key marker signed with key `kid`, which this process does not hold, and
    /// co-signed with key `by`, which it holds: proof that the grid signs with `kid`.
    Vouched {
        /// The signing key's id.
        kid: String,
        /// The id of the co-signing key this process holds.
        by: String,
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
    /// Signed for another namespace or as another kind of message: copied from where it
    /// belongs.
    #[error("misplaced: signed as a {found_kind} of namespace {found_ns:?}, read as a {kind} of namespace {ns:?}")]
    Misplaced {
        /// The namespace it was signed for.
        found_ns: String,
        /// The kind it was signed as.
        found_kind: String,
        /// The namespace it was read in.
        ns: String,
        /// The kind it was read as.
        kind: &'static str,
    },
    /// An envelope whose body is itself an envelope: nothing the grid puts.
    #[error("an envelope inside an envelope (nothing the grid puts looks like that)")]
    Nested,
    /// An envelope of the first version, which bound a body to no namespace or kind.
    #[error("signed in the version-1 envelope, which does not bind the body to its namespace and kind; put it again with this camhd-grid")]
    Unbound,
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    signed: u32,
    kid: Cow<'a, str>,
    #[serde(default)]
    ns: Cow<'a, str>,
    #[serde(default)]
    kind: Cow<'a, str>,
    hmac: Cow<'a, str>,
    body: Cow<'a, str>,
    /// Co-signatures of a key marker by the other keys the grid accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    also: Vec<CoSignature<'a>>,
}

/// One co-signature: a key's id and its HMAC over the marker, bound to the signing key.
#[derive(Serialize, Deserialize)]
struct CoSignature<'a> {
    kid: Cow<'a, str>,
    hmac: Cow<'a, str>,
}

/// The most co-signatures read from a marker (a grid accepts a few keys at once).
const MAX_CO_SIGNATURES: usize = 8;

#[derive(Deserialize)]
struct Probe {
    signed: Option<serde::de::IgnoredAny>,
}

impl Keys {
    /// No key: bodies are put as they are, envelopes unwrapped unchecked.
    pub fn none() -> Keys {
        Keys::default()
    }

    /// Signs with `signing` for `namespace`, and accepts it and `also` (keys being
    /// rotated out or in).
    pub fn new(namespace: &str, signing: Key, also: Vec<Key>) -> Keys {
        let mut accepted = vec![signing.clone()];
        accepted.extend(also);
        Keys {
            namespace: namespace.to_owned(),
            signing: Some(signing),
            accepted,
        }
    }

    /// Loads the signing key file and any others to accept, for `namespace`.
    pub fn load(namespace: &str, signing: Option<&Path>, also: &[PathBuf]) -> anyhow::Result<Keys> {
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
        Ok(Keys::new(namespace, Key::load(path)?, also))
    }

    /// True when a key is configured: bodies are signed and must be.
    pub fn enabled(&self) -> bool {
        self.signing.is_some()
    }

    /// The id of the key bodies are signed with, if any.
    pub fn signing_id(&self) -> Option<&str> {
        self.signing.as_ref().map(|k| k.id.as_str())
    }

    /// The ids of every key accepted.
    pub fn accepted_ids(&self) -> Vec<&str> {
        self.accepted.iter().map(|k| k.id.as_str()).collect()
    }

    /// `body`, put as a `kind` message, in a signed envelope; as it is without a key.
    pub fn seal(&self, kind: Kind, body: &[u8]) -> Vec<u8> {
        let Some(key) = &self.signing else {
            return body.to_vec();
        };
        let text = String::from_utf8_lossy(body);
        let also = match kind {
            Kind::Marker => self
                .accepted
                .iter()
                .filter(|k| k.id != key.id)
                .map(|k| CoSignature {
                    kid: Cow::Borrowed(&k.id),
                    hmac: Cow::Owned(hex(&tag(
                        k,
                        &self.namespace,
                        &vouching(kind, &key.id),
                        text.as_bytes(),
                    ))),
                })
                .collect(),
            _ => Vec::new(),
        };
        let envelope = Envelope {
            signed: ENVELOPE_VERSION,
            kid: Cow::Borrowed(&key.id),
            ns: Cow::Borrowed(&self.namespace),
            kind: Cow::Borrowed(kind.as_str()),
            hmac: Cow::Owned(hex(&tag(
                key,
                &self.namespace,
                kind.as_str(),
                text.as_bytes(),
            ))),
            body: text,
            also,
        };
        serde_json::to_vec(&envelope).unwrap_or_else(|_| body.to_vec())
    }

    /// The body inside `bytes`, read as a `kind` message, and what its signature says.
    /// With keys, an envelope signed with none of them, forged, signed for another
    /// namespace or kind, nested or of the first version is an error.
    pub fn open<'a>(
        &self,
        kind: Kind,
        bytes: &'a [u8],
    ) -> Result<(Cow<'a, [u8]>, Signature), SignError> {
        let Some(envelope) = envelope(bytes)? else {
            return Ok((Cow::Borrowed(bytes), Signature::Unsigned));
        };
        let kid = envelope.kid.into_owned();
        let body = Cow::Owned(envelope.body.into_owned().into_bytes());
        if is_envelope(&body) {
            return Err(SignError::Nested);
        }
        if self.accepted.is_empty() {
            return Ok((body, Signature::Unchecked { kid }));
        }
        if envelope.signed != ENVELOPE_VERSION {
            return Err(SignError::Unbound);
        }
        if envelope.ns != self.namespace || envelope.kind != kind.as_str() {
            return Err(SignError::Misplaced {
                found_ns: envelope.ns.into_owned(),
                found_kind: envelope.kind.into_owned(),
                ns: self.namespace.clone(),
                kind: kind.as_str(),
            });
        }
        if !self.accepted.iter().any(|k| k.id == kid) {
            if kind == Kind::Marker {
                if let Some(by) = self.vouching_key(&envelope.also, &kid, &body) {
                    return Ok((body, Signature::Vouched { kid, by }));
                }
            }
            return Err(SignError::UnknownKey { kid });
        }
        if self.verifies(&kid, kind.as_str(), &envelope.hmac, &body) {
            Ok((body, Signature::Valid { kid }))
        } else {
            Err(SignError::Forged { kid })
        }
    }

    /// True when an accepted key of id `kid` made `hmac` over `body` as a `kind`. Two
    /// keys may share an id (its 8 hex digits): every one of them is tried.
    fn verifies(&self, kid: &str, kind: &str, hmac: &str, body: &[u8]) -> bool {
        let Some(given) = unhex(hmac) else {
            return false;
        };
        self.accepted.iter().filter(|k| k.id == kid).any(|key| {
            let mut mac = key.mac();
            mac.update(&message(&self.namespace, kind, body));
            mac.verify_slice(&given).is_ok()
        })
    }

    /// The id of a key this process holds that co-signed a marker signed with `kid`.
    fn vouching_key(&self, also: &[CoSignature], kid: &str, body: &[u8]) -> Option<String> {
        let kind = vouching(Kind::Marker, kid);
        also.iter()
            .take(MAX_CO_SIGNATURES)
            .find(|co| self.verifies(&co.kid, &kind, &co.hmac, body))
            .map(|co| co.kid.clone().into_owned())
    }

    /// True when `bytes` are a key marker as this process would make it now: signed
    /// with its signing key and co-signed by exactly its other accepted keys.
    pub fn is_current_marker(&self, bytes: &[u8]) -> bool {
        let Some(key) = &self.signing else {
            return false;
        };
        let Ok((_, Signature::Valid { kid })) = self.open(Kind::Marker, bytes) else {
            return false;
        };
        let Ok(Some(envelope)) = envelope(bytes) else {
            return false;
        };
        let mut co: Vec<&str> = envelope.also.iter().map(|c| c.kid.as_ref()).collect();
        let mut want: Vec<&str> = self
            .accepted
            .iter()
            .filter(|k| k.id != key.id)
            .map(|k| k.id.as_str())
            .collect();
        co.sort_unstable();
        want.sort_unstable();
        kid == key.id && co == want
    }

    /// [`Keys::open`], refusing unsigned bodies too when a key is configured: what a
    /// filter does with a job and the sink with a result.
    pub fn verify<'a>(&self, kind: Kind, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, SignError> {
        match self.open(kind, bytes)? {
            (_, Signature::Unsigned) if self.enabled() => Err(SignError::Unsigned),
            (body, _) => Ok(body),
        }
    }
}

/// What the HMAC is computed over.
fn message(namespace: &str, kind: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("camhd-grid signed {ENVELOPE_VERSION}\n{namespace}\n{kind}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

/// The kind a co-signature of a `kind` signed with key `kid` is made as: bound to that
/// key, so that it vouches for no other.
fn vouching(kind: Kind, kid: &str) -> String {
    format!("{} vouching for {kid}", kind.as_str())
}

fn tag(key: &Key, namespace: &str, kind: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = key.mac();
    mac.update(&message(namespace, kind, body));
    mac.finalize().into_bytes().to_vec()
}

/// True when `bytes` are a signature envelope (of any version).
pub fn is_envelope(bytes: &[u8]) -> bool {
    matches!(envelope(bytes), Ok(Some(_)) | Err(_))
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
    if e.signed != 1 && e.signed != ENVELOPE_VERSION {
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

    fn grid(b: u8) -> Keys {
        Keys::new("alpha", key(b), vec![])
    }

    #[test]
    fn a_missing_key_file_is_a_setting_to_fix_not_a_failure_to_retry() {
        let dir = tempfile::tempdir().unwrap();
        let err = Key::load(&dir.path().join("grid.key")).unwrap_err();
        assert!(err.is::<crate::exit::Usage>(), "{err:#}");
        assert!(format!("{err}").contains("gridctl keygen"), "{err}");
    }

    #[test]
    fn a_sealed_body_opens_with_its_key_and_not_with_another() {
        let keys = grid(1);
        let body = br#"{"version": 1, "video": "a.mov"}"#;
        let sealed = keys.seal(Kind::Job, body);
        assert_eq!(keys.verify(Kind::Job, &sealed).unwrap().as_ref(), body);
        assert!(matches!(
            grid(2).verify(Kind::Job, &sealed),
            Err(SignError::UnknownKey { .. })
        ));
        assert_eq!(
            unwrap(&sealed).as_ref(),
            body,
            "readers without a key still see it"
        );
        assert!(matches!(
            Keys::none().open(Kind::Job, &sealed).unwrap().1,
            Signature::Unchecked { .. }
        ));
    }

    #[test]
    fn an_altered_or_unsigned_body_is_refused_when_keys_are_configured() {
        let keys = grid(1);
        let sealed = String::from_utf8(keys.seal(Kind::Job, b"{\"version\": 1}")).unwrap();
        let altered = sealed.replace("version", "versioN");
        assert!(matches!(
            keys.verify(Kind::Job, altered.as_bytes()),
            Err(SignError::Forged { .. })
        ));
        assert_eq!(
            keys.verify(Kind::Job, b"{\"version\": 1}"),
            Err(SignError::Unsigned)
        );
        assert!(Keys::none().verify(Kind::Job, b"{\"version\": 1}").is_ok());
    }

    #[test]
    fn during_a_rotation_old_and_new_keys_are_both_accepted() {
        let rotating = Keys::new("alpha", key(2), vec![key(1)]);
        for sealed in [
            grid(1).seal(Kind::Job, b"{}"),
            grid(2).seal(Kind::Job, b"{}"),
        ] {
            assert!(rotating.verify(Kind::Job, &sealed).is_ok());
        }
    }

    #[test]
    fn a_body_is_bound_to_its_namespace_and_kind() {
        let alpha = grid(1);
        let beta = Keys::new("beta", key(1), vec![]);
        let job = alpha.seal(Kind::Job, b"{}");
        assert!(matches!(
            beta.verify(Kind::Job, &job),
            Err(SignError::Misplaced { .. })
        ));
        assert!(matches!(
            alpha.verify(Kind::Result, &job),
            Err(SignError::Misplaced { .. })
        ));
        // Rewriting the clear-text namespace does not help: the HMAC covers it.
        let moved = String::from_utf8(job)
            .unwrap()
            .replace("\"alpha\"", "\"beta\"");
        assert!(matches!(
            beta.verify(Kind::Job, moved.as_bytes()),
            Err(SignError::Forged { .. })
        ));
    }

    #[test]
    fn nested_and_version_one_envelopes_are_refused() {
        let keys = grid(1);
        let forged_inner =
            br#"{"signed":2,"kid":"00000000","ns":"alpha","kind":"job","hmac":"00","body":"{}"}"#;
        let outer = keys.seal(Kind::Job, forged_inner);
        assert_eq!(keys.verify(Kind::Job, &outer), Err(SignError::Nested));
        assert_eq!(Keys::none().open(Kind::Job, &outer), Err(SignError::Nested));
        let k = key(1);
        let mut mac = k.mac();
        mac.update(b"{}");
        let v1 = serde_json::json!({
            "signed": 1, "kid": k.id(), "hmac": hex(&mac.finalize().into_bytes()), "body": "{}"
        })
        .to_string();
        assert_eq!(
            keys.verify(Kind::Job, v1.as_bytes()),
            Err(SignError::Unbound)
        );
    }

    #[test]
    fn every_accepted_key_with_the_id_is_tried() {
        // Two keys that share an id (forced here: ids are 8 hex digits of a digest).
        let first = key(1);
        let second = Key {
            id: first.id.clone(),
            secret: vec![9; 32],
        };
        let signer = Keys::new("alpha", second.clone(), vec![]);
        let checker = Keys::new("alpha", first, vec![second]);
        let sealed = signer.seal(Kind::Heartbeat, b"{}");
        assert!(checker.verify(Kind::Heartbeat, &sealed).is_ok());
    }

    #[test]
    fn a_marker_co_signed_by_a_key_being_rotated_out_proves_the_new_key_to_its_holders() {
        let rotating = Keys::new("alpha", key(2), vec![key(1)]);
        let marker = rotating.seal(Kind::Marker, br#"{"key": "new"}"#);
        let (_, said) = grid(1).open(Kind::Marker, &marker).unwrap();
        assert_eq!(
            said,
            Signature::Vouched {
                kid: key(2).id,
                by: key(1).id
            }
        );
        assert!(rotating.is_current_marker(&marker));
        assert!(!grid(2).is_current_marker(&marker), "co-signers differ");
        // Another key holds no proof; a co-signature moved to another signing key is void.
        assert!(matches!(
            grid(3).open(Kind::Marker, &marker),
            Err(SignError::UnknownKey { .. })
        ));
        let moved = String::from_utf8(marker.clone())
            .unwrap()
            .replace(&key(2).id, &key(4).id);
        assert!(matches!(
            grid(1).open(Kind::Marker, moved.as_bytes()),
            Err(SignError::UnknownKey { .. })
        ));
        // Only markers carry co-signatures.
        let job = rotating.seal(Kind::Job, b"{}");
        assert!(!String::from_utf8(job).unwrap().contains("also"));
    }

    #[test]
    fn a_marker_nobody_here_can_check_proves_nothing() {
        let fake = serde_json::json!({
            "signed": 2, "kid": "0badf00d", "ns": "alpha", "kind": "marker",
            "hmac": "00".repeat(32), "body": "{}",
            "also": [{"kid": key(1).id, "hmac": "00".repeat(32)}]
        })
        .to_string();
        assert!(matches!(
            grid(1).open(Kind::Marker, fake.as_bytes()),
            Err(SignError::UnknownKey { .. })
        ));
    }
}
