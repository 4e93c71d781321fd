//! Writing one result into the checkout: its signature checked, its body accepted
//! (`incoming`), its path resolved by the path policy, and its document written
//! atomically — or kept, when the JSON is committed already and the job is not forced.
//! What must never be written, or cannot be, is settled as `fate::decide` says.

use std::sync::Arc;

use anyhow::Context;
use common::beanstalk::{self, Client};
use common::paths::resolve_output;
use common::sign::Kind;

use crate::batch::Written;
use crate::fate::{decide, Event};
use crate::incoming;
use crate::sink::Sink;

impl Sink<'_> {
    /// Writes (or keeps) one result; buries what must never be written or cannot be.
    /// Returns an error only for a fault of the whole checkout.
    pub(crate) async fn write_result(
        &mut self,
        c: &mut Client,
        result: beanstalk::RawJob,
    ) -> anyhow::Result<Option<Written>> {
        let id = result.id;
        let body = match self.config.grid.keys().verify(Kind::Result, &result.body) {
            Ok(body) => body,
            Err(e) => {
                let said = common::wire::job_said(&result.body);
                let fate = decide(Event::SignatureRefused(e.to_string()));
                self.settle(c, id, said.as_ref(), fate).await;
                return Ok(None);
            }
        };
        let accepted = match incoming::accept(&body, self.config.max_document) {
            Ok(a) => a,
            Err((of, refusal)) => {
                let fate = decide(Event::BodyRefused(refusal.to_string()));
                self.settle(c, id, of.as_deref(), fate).await;
                return Ok(None);
            }
        };
        let rel = accepted.job.output.clone();
        let path = match resolve_output(self.checkout.root(), &rel) {
            Ok(p) => p,
            Err(e) => {
                let fate = decide(Event::HostilePath(e.to_string()));
                self.settle(c, id, Some(&accepted.job), fate).await;
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
        match self.checkout.write(path, &accepted.text) {
            Ok(()) => {
                tracing::info!(job = id, video = %video, path = %path.display(), "written");
                self.totals.written += 1;
                Ok(Some(Some(accepted.text.len())))
            }
            Err(e) if self.checkout.healthy() => {
                let fate = decide(Event::Unwritable(format!(
                    "cannot write {rel} in the checkout: {e}"
                )));
                self.settle(c, id, Some(&accepted.job), fate).await;
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
}
