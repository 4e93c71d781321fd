//! The grid's own operations over a beanstalkd connection, each written once for every
//! process: put a body sealed as what it is into a tube (the connection stays on its
//! tube), record a failure, ask whether a job id is still the job of a given video, and
//! list a namespace's heartbeats with their signatures checked, and keep and read the
//! grid's key marker (which key the grid signs with). A [`Grid`] is made once from the
//! shared flags and this machine's name, and handed to whatever needs them.

use std::sync::Arc;

use chrono::Utc;

use crate::beanstalk::{Client, Error, JobState, JobStats, PutOptions};
use crate::config::{GridArgs, GridConfig};
use crate::sign::{Keys, Kind, Signature};
use crate::wire::{Failure, Heartbeat, Job, SinkState};

/// Where the grid is, the keys it signs and checks with, and who we are: everything an
/// operation on the grid needs besides a connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Grid {
    config: GridConfig,
    keys: Arc<Keys>,
    host: String,
}

/// A body as the grid puts it: in its signature envelope (when the grid has a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Bytes that were sealed by [`Grid::seal`] before they were stored (a spooled
    /// result read back): put as they are, checked by whoever reads them.
    pub fn stored(bytes: Vec<u8>) -> Sealed {
        Sealed(bytes)
    }

    /// The bytes, to store or measure.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What a job id is now, for the question "is it still that job?".
// One value per question, never held in bulk: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum JobNow {
    /// The server has no job with this id (done, discarded, or another server).
    Gone,
    /// A job in another tube (another namespace's, or not a job at all).
    Elsewhere {
        /// Its tube.
        tube: String,
    },
    /// A job of this namespace's jobs tube that the grid did not sign (when it has a
    /// key) or that is no job this build reads.
    Foreign {
        /// Why it is not the grid's.
        why: String,
    },
    /// One of this grid's jobs.
    Ours {
        /// The job.
        job: Job,
        /// Its state, priority, reserves.
        stats: JobStats,
    },
}

impl JobNow {
    /// The job, when it is this grid's job for `output` (and `video`, when given);
    /// otherwise why it is not, for a log line.
    pub fn for_output(
        &self,
        id: u64,
        video: Option<&str>,
        output: &str,
    ) -> Result<&JobStats, String> {
        match self {
            JobNow::Gone => Err(format!("job {id} is gone from this server")),
            JobNow::Elsewhere { tube } => {
                Err(format!("job {id} is in {tube}, not this grid's jobs tube"))
            }
            JobNow::Foreign { why } => Err(format!("job {id} is not this grid's: {why}")),
            JobNow::Ours { job, stats } => {
                if job.output == output && video.is_none_or(|v| v == job.video) {
                    Ok(stats)
                } else {
                    Err(format!("job {id} on this server is another video now"))
                }
            }
        }
    }
}

/// One heartbeat in a status tube, with what its signature says.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The id of the heartbeat's own job (for deleting it).
    pub id: u64,
    /// Its status tube.
    pub tube: String,
    /// The heartbeat.
    pub beat: Heartbeat,
    /// Signed by the grid, unchecked (no key here), unsigned, or refused (forged,
    /// misplaced, nested, of another key).
    pub trust: Trust,
}

/// What a body's signature says, in the terms an operator's screen needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Signed with an accepted key.
    Signed,
    /// Signed, but this process has no key to check it with.
    Unchecked,
    /// Not signed.
    Unsigned,
    /// Signed with a key this process does not accept: a key retired from the grid, or
    /// another grid's (told apart from forgery, which nobody of the grid could do).
    OtherKey,
    /// Refused: a bad HMAC, signed for another place, nested.
    Forged,
}

impl Trust {
    /// The word shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Signed => "signed",
            Trust::Unchecked => "unchecked",
            Trust::Unsigned => "unsigned",
            Trust::OtherKey => "other key",
            Trust::Forged => "forged",
        }
    }
}

impl Grid {
    /// The grid at `config`, signing and checking with `keys`, seen from `host`.
    pub fn new(config: GridConfig, keys: Keys, host: impl Into<String>) -> Grid {
        Grid {
            config,
            keys: Arc::new(keys),
            host: host.into(),
        }
    }

    /// The grid the flags `args` name, seen from `host`: its configuration and keys,
    /// checked.
    pub fn from_args(args: &GridArgs, host: impl Into<String>) -> anyhow::Result<Grid> {
        Ok(Grid::new(args.config()?, args.keys()?, host))
    }

    /// Where the grid is and which tubes are ours.
    pub fn config(&self) -> &GridConfig {
        &self.config
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// This machine's name, for records and heartbeats.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A new connection to the grid's server.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        self.config.connect().await
    }

    /// A new connection that reserves from `tube` alone (a worker's: the filters' jobs
    /// tube, the sink's results tube).
    pub async fn connect_watching(&self, tube: &str) -> anyhow::Result<Client> {
        use anyhow::Context;
        let mut c = self.connect().await?;
        c.watch(tube)
            .await
            .with_context(|| format!("watching {tube}"))?;
        c.ignore("default").await?;
        Ok(c)
    }

    /// What `bytes` read as a `kind` message say of their signature.
    pub fn trust(&self, kind: Kind, bytes: &[u8]) -> Trust {
        match self.keys.open(kind, bytes) {
            Ok((_, Signature::Valid { .. } | Signature::Vouched { .. })) => Trust::Signed,
            Ok((_, Signature::Unchecked { .. })) => Trust::Unchecked,
            Ok((_, Signature::Unsigned)) => Trust::Unsigned,
            Err(crate::sign::SignError::UnknownKey { .. }) => Trust::OtherKey,
            Err(_) => Trust::Forged,
        }
    }

    /// `body` sealed as a `kind` message of this grid (as it is, without a key).
    pub fn seal(&self, kind: Kind, body: &[u8]) -> Sealed {
        Sealed(self.keys.seal(kind, body))
    }

    /// Puts a sealed body ([`Grid::seal`], or one kept sealed in a spool) into `tube`
    /// and returns its id; the connection is back on the tube it used before.
    pub async fn put(
        &self,
        c: &mut Client,
        tube: &str,
        sealed: &Sealed,
        options: PutOptions,
    ) -> Result<u64, Error> {
        let back = c.used_tube().to_owned();
        if back != tube {
            c.use_tube(tube).await?;
        }
        let put = c.put(&sealed.0, options).await;
        if back != tube {
            c.use_tube(&back).await?;
        }
        put
    }

    /// Puts a failure record into `<namespace>.failures`.
    pub async fn record_failure(&self, c: &mut Client, failure: &Failure) -> Result<u64, Error> {
        let tube = self.config.failures_tube();
        let sealed = self.seal(Kind::Failure, &failure.encode());
        self.put(c, &tube, &sealed, PutOptions::default()).await
    }

    /// What job `id` is now: gone, in another tube, not the grid's, or one of its jobs.
    pub async fn job(&self, c: &mut Client, id: u64) -> Result<JobNow, Error> {
        let stats = match c.stats_job(id).await {
            Ok(s) => s,
            Err(Error::NotFound) => return Ok(JobNow::Gone),
            Err(e) => return Err(e),
        };
        self.job_with(c, id, stats).await
    }

    /// [`Grid::job`] for a job whose stats were just read (a walk reads them many ids a
    /// round trip).
    pub async fn job_with(
        &self,
        c: &mut Client,
        id: u64,
        stats: JobStats,
    ) -> Result<JobNow, Error> {
        if stats.tube != self.config.jobs_tube() {
            return Ok(JobNow::Elsewhere { tube: stats.tube });
        }
        let body = match c.peek(id).await {
            Ok(j) => j.body,
            Err(Error::NotFound) => return Ok(JobNow::Gone),
            Err(e) => return Err(e),
        };
        let opened = match self.keys.verify(Kind::Job, &body) {
            Ok(b) => b,
            Err(e) => return Ok(JobNow::Foreign { why: e.to_string() }),
        };
        Ok(match Job::decode(&opened) {
            Ok(job) => JobNow::Ours { job, stats },
            Err(e) => JobNow::Foreign { why: e.to_string() },
        })
    }

    /// True when job `id` is this grid's job for `output` (and `video`, when given) and
    /// nobody holds it: the sink may delete it once its result is committed.
    pub async fn idle_job_for(
        &self,
        c: &mut Client,
        id: u64,
        video: &str,
        output: &str,
    ) -> Result<bool, Error> {
        let now = self.job(c, id).await?;
        Ok(match now.for_output(id, Some(video), output) {
            Ok(stats) => stats.state != JobState::Reserved,
            Err(why) => {
                tracing::debug!(job = id, reason = %why, "the job is not ours to delete");
                false
            }
        })
    }

    /// Every heartbeat of this namespace (the one ready job of each status tube), with
    /// its signature checked. The connection is back on its tube after.
    pub async fn heartbeats(&self, c: &mut Client) -> Result<Vec<Listed>, Error> {
        let prefix = self.config.status_prefix();
        let back = c.used_tube().to_owned();
        let mut out = Vec::new();
        for tube in c.list_tubes().await? {
            if !tube.starts_with(&prefix) {
                continue;
            }
            c.use_tube(&tube).await?;
            let job = match c.peek_ready().await {
                Ok(job) => job,
                Err(Error::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let Ok(beat) = Heartbeat::decode(&job.body) else {
                continue;
            };
            out.push(Listed {
                id: job.id,
                tube,
                trust: self.trust(Kind::Heartbeat, &job.body),
                beat,
            });
        }
        c.use_tube(&back).await?;
        Ok(out)
    }
}

impl Listed {
    /// Seconds since the heartbeat was written (negative when dated in the future).
    pub fn age_seconds(&self) -> i64 {
        (Utc::now() - self.beat.at).num_seconds()
    }
}

impl Grid {
    /// The sink's state of the record (`<namespace>.sink`), with what its signature
    /// says; `None` when no sink has written one (or it cannot be read).
    pub async fn sink_state(&self, c: &mut Client) -> Result<Option<(SinkState, Trust)>, Error> {
        let back = c.used_tube().to_owned();
        c.use_tube(&self.config.sink_tube()).await?;
        let peeked = c.peek_ready().await;
        c.use_tube(&back).await?;
        let job = match peeked {
            Ok(job) => job,
            Err(Error::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let trust = self.trust(Kind::Sink, &job.body);
        let body = crate::sign::unwrap(&job.body);
        Ok(SinkState::decode(&body).ok().map(|s| (s, trust)))
    }

    /// Deletes the ready jobs of `tube` but `keep` (at most `max` of them, oldest first):
    /// for a tube of state that this process alone writes, cleared of what an earlier run
    /// left. The connection is back on the tube it used before.
    pub async fn clear_but(
        &self,
        c: &mut Client,
        tube: &str,
        keep: u64,
        max: usize,
    ) -> Result<(), Error> {
        let back = c.used_tube().to_owned();
        c.use_tube(tube).await?;
        for _ in 0..max {
            match c.peek_ready().await {
                Ok(job) if job.id != keep => match c.delete(job.id).await {
                    Ok(()) | Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                },
                Ok(_) | Err(Error::NotFound) => break,
                Err(e) => return Err(e),
            }
        }
        c.use_tube(&back).await
    }
}

impl Grid {
    /// Counts `n` jobs discarded by an operator: as many puts and deletes in
    /// `<namespace>.discarded`, whose delete count the server keeps while it runs (a job
    /// delayed for ever keeps the tube, and its count, from vanishing). The connection is
    /// back on the tube it used before.
    pub async fn count_discards(&self, c: &mut Client, n: u64) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        let back = c.used_tube().to_owned();
        c.use_tube(&self.config.discarded_tube()).await?;
        if let Err(Error::NotFound) = c.peek_delayed().await {
            let keeper = PutOptions {
                priority: 0,
                delay: MARKER_DELAY,
                ttr: 60,
            };
            c.put(b"{\"keeps\": \"the count of discarded jobs\"}", keeper)
                .await?;
        }
        for _ in 0..n {
            let id = c.put(b"{\"discarded\": 1}", PutOptions::default()).await?;
            c.delete(id).await?;
        }
        c.use_tube(&back).await
    }

    /// Jobs discarded by an operator since the server started.
    pub async fn discarded(&self, c: &mut Client) -> Result<u64, Error> {
        Ok(c.stats_tube_if_any(&self.config.discarded_tube())
            .await?
            .map_or(0, |s| s.cmd_delete))
    }
}

/// What the grid's key marker says of this process's keys: the queuer keeps one signed
/// with the grid's key (and co-signed by the keys it still accepts) in `<namespace>.key`,
/// a job delayed for ever. Anyone who reaches the server can put a marker too, so only a
/// marker this process can verify may change what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMarker {
    /// Signed with one of this process's keys.
    Ours {
        /// The key's id.
        kid: String,
    },
    /// The grid signs with key `kid`, which this process does not hold, as key `by`
    /// (which it holds: one being rotated out) vouches: this process's key is stale.
    Succeeded {
        /// The grid's signing key.
        kid: String,
        /// The key of this process's that vouches for it.
        by: String,
    },
    /// Signed with key `kid`, which this process cannot verify (it does not hold it and
    /// none of its keys vouches for it, or it holds no key at all): proves nothing, and
    /// is reported, never obeyed.
    Unverified {
        /// The key id the marker claims.
        kid: String,
    },
    /// No marker, or one that tells nothing (unsigned, damaged, forged).
    Unknown,
}

impl KeyMarker {
    /// What a job signed with a key this process does not hold is, given this marker:
    /// the grid's (this process's key is stale: give it back, stop), junk (the grid's
    /// marker is ours: nobody of the grid signed it), or unknown (give it back untouched).
    pub fn foreign_job(&self) -> ForeignJob {
        match self {
            KeyMarker::Succeeded { .. } => ForeignJob::StaleKey,
            KeyMarker::Ours { .. } => ForeignJob::Junk,
            KeyMarker::Unverified { .. } | KeyMarker::Unknown => ForeignJob::Unknown,
        }
    }
}

impl std::fmt::Display for KeyMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMarker::Ours { kid } => write!(f, "signed with key {kid}, verified"),
            KeyMarker::Succeeded { kid, by } => write!(
                f,
                "signed with key {kid}, which this process does not hold, as its key {by} vouches: its key is stale"
            ),
            KeyMarker::Unverified { kid } => write!(
                f,
                "UNVERIFIED: claims key {kid}, which no key of this process's can check; nothing obeys it (the queuer replaces a marker not the grid's on its next pass)"
            ),
            KeyMarker::Unknown => write!(f, "none readable"),
        }
    }
}

/// What a job signed with a key this process does not hold is ([`KeyMarker::foreign_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignJob {
    /// The grid's: this process holds a stale key.
    StaleKey,
    /// Not the grid's: refused for good.
    Junk,
    /// Cannot tell: given back untouched for a filter that can.
    Unknown,
}

/// How long the key marker is delayed: 68 years.
const MARKER_DELAY: u32 = i32::MAX as u32;

/// Jobs that are not the current key marker removed in one pass before giving up (six
/// fakes once outlasted a pass of five).
const MARKER_ATTEMPTS: usize = 1000;

impl Grid {
    /// What the key marker says of this process's keys (read, never changed). The
    /// connection is back on the tube it used before (a tube used is a tube that
    /// exists, and `gridctl status` tells a namespace by its tubes).
    pub async fn key_marker(&self, c: &mut Client) -> Result<KeyMarker, Error> {
        let back = c.used_tube().to_owned();
        c.use_tube(&self.config.key_tube()).await?;
        let peeked = c.peek_delayed().await;
        c.use_tube(&back).await?;
        let job = match peeked {
            Ok(job) => job,
            Err(Error::NotFound) => return Ok(KeyMarker::Unknown),
            Err(e) => return Err(e),
        };
        Ok(match self.keys.open(Kind::Marker, &job.body) {
            Ok((_, Signature::Valid { kid })) => KeyMarker::Ours { kid },
            Ok((_, Signature::Vouched { kid, by })) => KeyMarker::Succeeded { kid, by },
            Err(crate::sign::SignError::UnknownKey { kid }) => KeyMarker::Unverified { kid },
            // Signed, and this process holds no key at all.
            Ok((_, Signature::Unchecked { kid })) => KeyMarker::Unverified { kid },
            _ => KeyMarker::Unknown,
        })
    }

    /// Makes the key marker say this process's signing key, co-signed by the others it
    /// accepts: such a marker is kept; anything else at the head of `<namespace>.key` (a
    /// marker of an older key or key set, a fake, junk) is deleted and a new marker put.
    /// Nothing without a key.
    pub async fn keep_key_marker(&self, c: &mut Client) -> Result<(), Error> {
        let Some(kid) = self.keys.signing_id() else {
            return Ok(());
        };
        c.use_tube(&self.config.key_tube()).await?;
        for _ in 0..MARKER_ATTEMPTS {
            match c.peek_delayed().await {
                Ok(job) if self.keys.is_current_marker(&job.body) => return Ok(()),
                Ok(job) => {
                    tracing::info!(tube = %self.config.key_tube(), job = job.id, "replacing the key marker: it is not this grid's current one");
                    match c.delete(job.id).await {
                        Ok(()) | Err(Error::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(Error::NotFound) => {
                    let body = serde_json::json!({ "key": kid, "created": Utc::now() });
                    let sealed = self.seal(Kind::Marker, body.to_string().as_bytes());
                    let options = PutOptions {
                        priority: 0,
                        delay: MARKER_DELAY,
                        ttr: 60,
                    };
                    c.put(sealed.as_bytes(), options).await?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(tube = %self.config.key_tube(), "the key marker tube keeps holding other jobs; filters with another key cannot tell from it");
        Ok(())
    }
}
