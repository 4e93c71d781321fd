//! The spool: results the server refused for their size (or could not take while we shut
//! down), kept as files named by their job's id in a folder of this grid's own (server
//! and namespace), and offered to the server again later. A spooled result is offered
//! only while its job is still this grid's job for the same video and output; any other
//! is moved to `aside/`, never deleted and never delivered.

use std::path::{Path, PathBuf};

use common::beanstalk::{Client, Error as BsError};
use common::grid::{Grid, Sealed};

use super::conn::result_options;
use super::outcome::JobError;

/// A folder of spooled results.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool in `dir` (made when the first result is kept).
    pub fn new(dir: PathBuf) -> Spool {
        Spool { dir }
    }

    /// Keeps the sealed result of job `id`; the error to finish the job with says where
    /// it is (or why it could not be kept).
    pub fn keep(&self, id: u64, sealed: &Sealed) -> JobError {
        let path = self.dir.join(format!("{id}.result.json"));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&path, sealed.as_bytes()));
        match written {
            Ok(()) => JobError::ResultTooBig {
                size: sealed.as_bytes().len(),
                spool: path.display().to_string(),
            },
            Err(e) => JobError::Internal(format!(
                "the result is too big for the server (raise beanstalkd -z) and could not be spooled to {}: {e}",
                path.display()
            )),
        }
    }

    /// Offers each spooled result to the server again; one that is taken is removed from
    /// the spool. The job that was buried for it stays until the sink commits the result
    /// and deletes it, like every delivered job.
    pub async fn offer(&self, c: &mut Client, grid: &Grid) -> Result<(), BsError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        let results = grid.config().results_tube();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(id) = job_id_of(&path) else {
                continue;
            };
            let Ok(body) = std::fs::read(&path) else {
                continue;
            };
            if let Some(why) = not_its_job(c, grid, id, &body).await? {
                self.set_aside(&path, &why);
                continue;
            }
            match grid
                .put(c, &results, &Sealed::stored(body), result_options())
                .await
            {
                Ok(rid) => {
                    tracing::info!(job = id, result = rid, spool = %path.display(), "spooled result delivered");
                    let _ = std::fs::remove_file(&path);
                }
                Err(BsError::JobTooBig) => {
                    tracing::warn!(
                        job = id,
                        "a spooled result is still too big; raise beanstalkd -z"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves a spooled result that must not be delivered into `aside/`.
    fn set_aside(&self, path: &Path, why: &str) {
        let aside = self.dir.join("aside");
        let target = aside.join(path.file_name().unwrap_or_default());
        let moved = std::fs::create_dir_all(&aside).and_then(|()| std::fs::rename(path, &target));
        match moved {
            Ok(()) => {
                tracing::warn!(reason = why, kept = %target.display(), "a spooled result no longer matches its job; kept aside, not delivered")
            }
            Err(e) => {
                tracing::warn!(reason = why, error = %e, "a spooled result no longer matches its job and could not be moved aside")
            }
        }
    }
}

/// The job id a spool file is named by (`ID.result.json`).
fn job_id_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".result.json")?
        .parse()
        .ok()
}

/// Why the spooled result `body` no longer answers job `id` on this server, if it does not.
async fn not_its_job(
    c: &mut Client,
    grid: &Grid,
    id: u64,
    body: &[u8],
) -> Result<Option<String>, BsError> {
    let Some(job) = common::wire::job_said(body) else {
        return Ok(Some("the spooled result cannot be read".into()));
    };
    let now = grid.job(c, id).await?;
    Ok(now.for_output(id, Some(&job.video), &job.output).err())
}
