//! Writing one result into the checkout: its signature checked, its body accepted
//! (`incoming`), its path resolved by the path policy, and its document written
//! atomically — or kept, when the JSON is committed already and the job is not forced.
//! What must never be written, or cannot be, comes back as the [`Event`] the sink
//! settles (`fate::decide`); only a fault of the whole checkout is an error.

use std::sync::Arc;

use anyhow::Context;
use common::beanstalk::RawJob;
use common::paths::resolve_output;
use common::sign::{Keys, Kind};
use common::wire::Job;

use crate::batch::Written;
use crate::checkout::Checkout;
use crate::fate::Event;
use crate::incoming;

/// What became of one result.
#[derive(Debug)]
pub(crate) enum Wrote {
    /// Written (or kept), to be committed with the batch.
    Written(Box<Written>),
    /// Never to be written as it is: settled as `fate::decide` says of `event`, with the
    /// job when the result names one (for the failure record).
    Refused {
        /// The job the result answers, as far as it could be read.
        job: Option<Box<Job>>,
        /// What happened to it.
        event: Event,
    },
}

/// Writes (or keeps) one result, signed with one of `keys` and of at most `max_document`
/// bytes of document, into `checkout`, whose uncommitted `batch` counts as committed (a
/// second result for a file in it is kept, not written again). Fails only for a fault
/// of the whole checkout.
pub(crate) fn write_result(
    keys: &Keys,
    max_document: usize,
    checkout: &Checkout,
    batch: &[Written],
    result: &RawJob,
) -> anyhow::Result<Wrote> {
    let refused = |job, event| Ok(Wrote::Refused { job, event });
    let body = match keys.verify(Kind::Result, &result.body) {
        Ok(body) => body,
        Err(e) => {
            let said = common::wire::job_said(&result.body).map(Box::new);
            return refused(said, Event::SignatureRefused(e.to_string()));
        }
    };
    let accepted = match incoming::accept(&body, max_document) {
        Ok(a) => a,
        Err((of, refusal)) => return refused(of, Event::BodyRefused(refusal.to_string())),
    };
    let rel = accepted.job.output.clone();
    let path = match resolve_output(checkout.root(), &rel) {
        Ok(p) => p,
        Err(e) => {
            return refused(
                Some(Box::new(accepted.job)),
                Event::HostilePath(e.to_string()),
            )
        }
    };
    let (id, video) = (result.id, &accepted.job.video);
    let in_batch = batch.iter().any(|p| p.rel == rel);
    let exists = path.is_file() && (in_batch || checkout.tracked(&rel)?);
    let written = if exists && !accepted.job.force {
        tracing::info!(job = id, video = %video, "JSON exists; kept");
        None
    } else {
        match checkout.write(&path, &accepted.text) {
            Ok(()) => {
                tracing::info!(job = id, video = %video, path = %path.display(), "written");
                Some(accepted.text.len())
            }
            Err(e) if checkout.healthy() => {
                let why = format!("cannot write {rel} in the checkout: {e}");
                return refused(Some(Box::new(accepted.job)), Event::Unwritable(why));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "the checkout {} cannot be written (read-only, full, or its permissions changed)",
                        checkout.root().display()
                    )
                })
            }
        }
    };
    Ok(Wrote::Written(Box::new(Written {
        id,
        path,
        rel,
        written,
        video: accepted.job.video.clone(),
        job_id: accepted.job_id,
        job: accepted.job,
        regions: written.map(|_| Arc::new(accepted.regions)),
    })))
}
