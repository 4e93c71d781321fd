//! Writing one result into the checkout: its signature checked, its body accepted
//! (`incoming`), its path resolved by the path policy, and its document written
//! atomically — or kept, when the JSON is committed already and the job is not forced.
//! What must never be written, or cannot be, is buried with a failure record.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use common::beanstalk::{self, Client};
use common::paths::resolve_output;
use common::sign::Kind;
use common::wire::{Failure, Job};
use flowdoc::regions::{self, NoRegions};

use crate::incoming;
use crate::metrics;
use crate::sink::Sink;

/// A result written (or kept) and waiting for its commit.
#[derive(Debug)]
pub struct Written {
    /// The result's id in the results tube.
    pub id: u64,
    /// Where it was written.
    pub path: PathBuf,
    /// Its output path, relative to the checkout.
    pub rel: String,
    /// Bytes written, or `None` when the committed JSON was kept.
    pub written: Option<usize>,
    /// Its video.
    pub video: String,
    /// The job it answers, deleted from the jobs tube once the result is committed.
    pub job_id: Option<u64>,
    /// That job, as the result carries it.
    pub job: Job,
    /// What the regions file is derived from, when the document was written (a kept
    /// one's regions come from the committed file).
    pub regions: Option<Arc<Result<regions::Input, NoRegions>>>,
}

impl Sink<'_> {
    /// Writes (or keeps) one result; buries what must never be written or cannot be.
    /// Returns an error only for a fault of the whole checkout.
    pub(crate) async fn write_result(
        &mut self,
        c: &mut Client,
        result: beanstalk::Job,
    ) -> anyhow::Result<Option<Written>> {
        let id = result.id;
        let body = match self.config.grid.keys().verify(Kind::Result, &result.body) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(job = id, error = %e, "burying a result whose signature is refused");
                let said = common::wire::job_said(&result.body);
                self.bury(c, id, said.as_ref(), format!("result refused: {e}"))
                    .await;
                return Ok(None);
            }
        };
        let accepted = match incoming::accept(&body, self.config.max_document) {
            Ok(a) => a,
            Err((of, refusal)) => {
                tracing::error!(job = id, error = %refusal, "burying a result");
                self.bury(c, id, of.as_deref(), refusal.to_string()).await;
                return Ok(None);
            }
        };
        let rel = accepted.job.output.clone();
        let path = match resolve_output(self.checkout.root(), &rel) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(job = id, video = %accepted.job.video, error = %e, "burying a result with a hostile path");
                let error = format!("not written: {e}");
                self.bury(c, id, Some(&accepted.job), error).await;
                return Ok(None);
            }
        };
        let Some(written) = self.write_document(c, id, &accepted, &path).await? else {
            return Ok(None);
        };
        Ok(Some(Written {
            id,
            path,
            rel,
            written,
            video: accepted.job.video.clone(),
            job_id: accepted.job_id,
            job: accepted.job,
            regions: written.map(|_| Arc::new(accepted.regions)),
        }))
    }

    /// Writes the document at `path`, or keeps the committed one: `Some(Some(bytes))`
    /// written, `Some(None)` kept, `None` buried.
    async fn write_document(
        &mut self,
        c: &mut Client,
        id: u64,
        accepted: &incoming::Accepted,
        path: &std::path::Path,
    ) -> anyhow::Result<Option<Option<usize>>> {
        let (rel, video) = (&accepted.job.output, &accepted.job.video);
        let in_batch = self.batch.iter().any(|p| &p.rel == rel);
        let exists = path.is_file() && (in_batch || self.checkout.tracked(rel)?);
        if exists && !accepted.job.force {
            tracing::info!(job = id, video = %video, "JSON exists; kept");
            self.totals.kept += 1;
            return Ok(Some(None));
        }
        match self.checkout.write_atomically(path, &accepted.text) {
            Ok(()) => {
                tracing::info!(job = id, video = %video, path = %path.display(), "written");
                self.totals.written += 1;
                Ok(Some(Some(accepted.text.len())))
            }
            Err(e) if self.checkout.healthy() => {
                let error = format!("cannot write {rel} in the checkout: {e}");
                tracing::error!(job = id, video = %video, error = %error, "burying a result");
                self.bury(c, id, Some(&accepted.job), error).await;
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| {
                format!(
                    "the checkout {} cannot be written (read-only, full, or its permissions changed)",
                    self.checkout.root().display()
                )
            }),
        }
    }

    /// Parks a result that must never be written, with a failure record saying why for
    /// `gridctl failed`. A failure here leaves the result reserved: it comes back with
    /// the connection or its TTR, and is judged again.
    pub(crate) async fn bury(&mut self, c: &mut Client, id: u64, job: Option<&Job>, error: String) {
        let record = Failure::now(id, job, &error, self.config.grid.host());
        let parked = async {
            self.config.grid.record_failure(c, &record).await?;
            c.bury(id, 0).await
        };
        match parked.await {
            Ok(()) => {
                self.totals.buried += 1;
                metrics::BURIED.inc();
            }
            Err(e) => tracing::warn!(job = id, error = %e, "could not bury the result"),
        }
    }
}
