//! Typed `stats`, `stats-job` and `stats-tube` replies.
//!
//! A field the server does not send (older beanstalkd versions lack some) is left at its
//! default; a field it sends that does not parse is an error.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::Error;

/// The state of one job, from `stats-job`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JobState {
    /// Waiting to be reserved.
    #[default]
    Ready,
    /// Waiting for its delay to pass.
    Delayed,
    /// Held by a connection.
    Reserved,
    /// Parked until kicked.
    Buried,
    /// A state this client does not know.
    Other(String),
}

impl FromStr for JobState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ready" => JobState::Ready,
            "delayed" => JobState::Delayed,
            "reserved" => JobState::Reserved,
            "buried" => JobState::Buried,
            other => JobState::Other(other.to_owned()),
        })
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::Reserved => "reserved",
            JobState::Buried => "buried",
            JobState::Other(s) => s,
        })
    }
}

/// One stats value parsed from its text form.
trait StatValue: Sized {
    fn parse_stat(text: &str) -> Option<Self>;
}

macro_rules! stat_value_via_fromstr {
    ($($ty:ty),*) => {$(
        impl StatValue for $ty {
            fn parse_stat(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}
stat_value_via_fromstr!(u64, i64, u32, f64, String, JobState);

impl StatValue for bool {
    fn parse_stat(text: &str) -> Option<Self> {
        match text {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

fn field<T: StatValue + Default>(
    map: &BTreeMap<String, String>,
    key: &str,
    command: &'static str,
) -> Result<T, Error> {
    match map.get(key) {
        None => Ok(T::default()),
        Some(text) => T::parse_stat(text).ok_or_else(|| Error::UnexpectedReply {
            command,
            reply: format!("{key}: {text}"),
        }),
    }
}

macro_rules! stats_struct {
    (
        $(#[$meta:meta])* $name:ident for $command:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal ),* $(,)?
        }
        $( extra { $( $(#[$emeta:meta])* $efield:ident : $ety:ty ),* $(,)? } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            $($( $(#[$emeta])* pub $efield: $ety, )*)?
        }

        impl $name {
            pub(crate) fn from_map(map: &BTreeMap<String, String>) -> Result<Self, Error> {
                Ok(Self {
                    $( $field: field(map, $key, $command)?, )*
                    $($( $efield: Default::default(), )*)?
                })
            }
        }
    };
}

stats_struct! {
    /// The reply to `stats-job`.
    JobStats for "stats-job" {
        /// The job's id.
        id: u64 = "id",
        /// The tube that holds it.
        tube: String = "tube",
        /// Ready, delayed, reserved or buried.
        state: JobState = "state",
        /// Priority (0 is most urgent).
        pri: u32 = "pri",
        /// Seconds since it was put.
        age: u64 = "age",
        /// Delay in seconds given to put or release.
        delay: u64 = "delay",
        /// Time-to-run in seconds.
        ttr: u64 = "ttr",
        /// Seconds until a reserved job's TTR runs out or a delayed job becomes ready.
        /// Negative when beanstalkd has not yet returned an overdue job (it can lag,
        /// beanstalkd issues #262 and #380).
        time_left: i64 = "time-left",
        /// The binlog file holding it.
        file: u64 = "file",
        /// Times reserved.
        reserves: u64 = "reserves",
        /// Times its TTR ran out.
        timeouts: u64 = "timeouts",
        /// Times released.
        releases: u64 = "releases",
        /// Times buried.
        buries: u64 = "buries",
        /// Times kicked.
        kicks: u64 = "kicks",
    }
}

stats_struct! {
    /// The reply to `stats-tube`.
    TubeStats for "stats-tube" {
        /// The tube's name.
        name: String = "name",
        /// Ready jobs with priority below 1024.
        current_jobs_urgent: u64 = "current-jobs-urgent",
        /// Ready jobs.
        current_jobs_ready: u64 = "current-jobs-ready",
        /// Reserved jobs.
        current_jobs_reserved: u64 = "current-jobs-reserved",
        /// Delayed jobs.
        current_jobs_delayed: u64 = "current-jobs-delayed",
        /// Buried jobs.
        current_jobs_buried: u64 = "current-jobs-buried",
        /// Jobs ever put into this tube.
        total_jobs: u64 = "total-jobs",
        /// Connections using it.
        current_using: u64 = "current-using",
        /// Connections watching it.
        current_watching: u64 = "current-watching",
        /// Connections waiting in reserve on it.
        current_waiting: u64 = "current-waiting",
        /// `delete` commands for it.
        cmd_delete: u64 = "cmd-delete",
        /// `pause-tube` commands for it.
        cmd_pause_tube: u64 = "cmd-pause-tube",
        /// Seconds it is paused for.
        pause: u64 = "pause",
        /// Seconds until the pause ends.
        pause_time_left: u64 = "pause-time-left",
    }
}

stats_struct! {
    /// The reply to `stats`: the whole server.
    ServerStats for "stats" {
        /// Ready jobs with priority below 1024, all tubes.
        current_jobs_urgent: u64 = "current-jobs-urgent",
        /// Ready jobs, all tubes.
        current_jobs_ready: u64 = "current-jobs-ready",
        /// Reserved jobs, all tubes.
        current_jobs_reserved: u64 = "current-jobs-reserved",
        /// Delayed jobs, all tubes.
        current_jobs_delayed: u64 = "current-jobs-delayed",
        /// Buried jobs, all tubes.
        current_jobs_buried: u64 = "current-jobs-buried",
        /// `stats-job` commands served.
        cmd_stats_job: u64 = "cmd-stats-job",
        /// Times any job's TTR ran out.
        job_timeouts: u64 = "job-timeouts",
        /// Jobs ever created.
        total_jobs: u64 = "total-jobs",
        /// The largest job body accepted, in bytes (beanstalkd -z).
        max_job_size: u64 = "max-job-size",
        /// Tubes that exist.
        current_tubes: u64 = "current-tubes",
        /// Open connections.
        current_connections: u64 = "current-connections",
        /// Connections that have put a job.
        current_producers: u64 = "current-producers",
        /// Connections that have reserved a job.
        current_workers: u64 = "current-workers",
        /// Connections waiting in reserve.
        current_waiting: u64 = "current-waiting",
        /// Connections ever opened.
        total_connections: u64 = "total-connections",
        /// The server's process id.
        pid: u64 = "pid",
        /// The server's version.
        version: String = "version",
        /// User CPU seconds.
        rusage_utime: f64 = "rusage-utime",
        /// System CPU seconds.
        rusage_stime: f64 = "rusage-stime",
        /// Seconds since the server started.
        uptime: u64 = "uptime",
        /// Index of the oldest binlog file needed.
        binlog_oldest_index: u64 = "binlog-oldest-index",
        /// Index of the binlog file being written (0: no binlog).
        binlog_current_index: u64 = "binlog-current-index",
        /// Records written to the binlog as part of compaction.
        binlog_records_migrated: u64 = "binlog-records-migrated",
        /// Records written to the binlog.
        binlog_records_written: u64 = "binlog-records-written",
        /// Largest binlog file size.
        binlog_max_size: u64 = "binlog-max-size",
        /// True in drain mode (no new jobs accepted).
        draining: bool = "draining",
        /// A random id made at start, or kept in the binlog.
        id: String = "id",
        /// The server's hostname.
        hostname: String = "hostname",
        /// The server's OS version string.
        os: String = "os",
        /// The server's machine architecture.
        platform: String = "platform",
    }
    extra {
        /// Counts of each command received (`put`, `reserve`, …), from the `cmd-*` keys.
        commands: BTreeMap<String, u64>,
    }
}

impl ServerStats {
    pub(crate) fn parse(map: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut stats = Self::from_map(map)?;
        for key in map.keys() {
            if let Some(command) = key.strip_prefix("cmd-") {
                let count = field(map, key, "stats")?;
                stats.commands.insert(command.to_owned(), count);
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::parse_yaml_map;
    use super::*;

    #[test]
    fn job_stats_parse_every_field() {
        let map = parse_yaml_map(
            b"---\nid: 9\ntube: camhd.jobs\nstate: buried\npri: 10\nage: 3\ndelay: 0\nttr: 60\n\
              time-left: 0\nfile: 2\nreserves: 4\ntimeouts: 1\nreleases: 2\nburies: 1\nkicks: 0\n",
        );
        let s = JobStats::from_map(&map).unwrap();
        assert_eq!(s.id, 9);
        assert_eq!(s.tube, "camhd.jobs");
        assert_eq!(s.state, JobState::Buried);
        assert_eq!((s.pri, s.ttr, s.reserves, s.timeouts), (10, 60, 4, 1));
    }

    #[test]
    fn an_overdue_reserved_job_has_negative_time_left() {
        // Seen from beanstalkd 1.12 under load: the TTR ran out, the job not yet back.
        let map = parse_yaml_map(b"---\nid: 4\nstate: reserved\nttr: 1\ntime-left: -10\n");
        assert_eq!(JobStats::from_map(&map).unwrap().time_left, -10);
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error() {
        let map = parse_yaml_map(b"---\nid: nine\n");
        assert!(matches!(
            JobStats::from_map(&map),
            Err(Error::UnexpectedReply { .. })
        ));
    }

    #[test]
    fn server_stats_collect_command_counts() {
        let map = parse_yaml_map(b"---\ncmd-put: 3\ncmd-reserve: 2\ndraining: true\n");
        let s = ServerStats::parse(&map).unwrap();
        assert_eq!(s.commands["put"], 3);
        assert_eq!(s.commands["reserve"], 2);
        assert!(s.draining);
    }
}
