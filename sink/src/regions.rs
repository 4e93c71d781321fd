//! After a batch of flow files is committed, each one's regions file: derived from what
//! the sink read of the document it wrote (from the flow file, for one kept), naming the
//! commit that holds it, written beside it and committed in a commit of its own, before
//! the batch's results are deleted (a sink killed in between derives them again when the
//! results come back). A regions file already committed is kept unless the job was
//! forced; a flow file whose regions cannot be derived stays committed, and why is
//! logged, counted and written into the regions commit's message.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::paths::{resolve_output, resolve_regions};
use flowdoc::regions::{self, NoRegions, Source};

use crate::batch::Written;
use crate::checkout::Checkout;
use crate::metrics;

/// Why a committed flow file is left without a regions file (logged, counted, and named
/// in the regions commit's message; `sink regions` tries again).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Skipped {
    /// The flow file is in no commit the regions file could name.
    #[error("its flow file is not in any commit")]
    NotCommitted,
    /// The flow file's path or the regions file's beside it breaks the path policy.
    #[error(transparent)]
    Path(#[from] common::paths::UnsafePath),
    /// Region finding cannot read the document, or it has no valid entry.
    #[error(transparent)]
    Derive(#[from] NoRegions),
    /// The batch's budget for regions ran out first.
    #[error("not derived within the batch's budget ({0} s); `sink regions` derives it")]
    OverBudget(u64),
    /// The flow file could not be read, or the regions file written.
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: String,
        /// The system's words.
        error: String,
    },
    /// The flow file is a FIFO, device, socket or folder.
    #[error("{0} is not a regular file (a FIFO, device, socket or folder)")]
    NotAFile(String),
    /// The flow file is larger than the sink accepts.
    #[error("the flow file has {size} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its size when opened (or read, when it grew).
        size: u64,
        /// The most accepted.
        max: usize,
    },
    /// The flow file grew while it was read.
    #[error("the flow file grew past the {0} bytes accepted")]
    Grew(usize),
}

/// A regions file written and waiting for its commit.
pub struct Derived {
    /// Its path relative to the checkout.
    pub rel: String,
    /// Where it was written.
    pub path: PathBuf,
    /// What the commit message names it by (the video, or the flow file).
    pub label: String,
}

/// Derives, writes and commits the regions of `committed` (results whose flow file is
/// in HEAD), `new_commits` being how many commits the batch made. Never fails: what
/// goes wrong is logged and left for `sink regions` to fill in.
pub fn commit_regions(
    checkout: &Checkout,
    committed: &[Written],
    new_commits: u64,
    max_document: usize,
    budget: Duration,
) {
    let wanted: Vec<&Written> = last_written(committed)
        .into_iter()
        .filter(|w| w.written.is_some() || !regions_committed(checkout, &w.rel))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let commits = match flow_commits(checkout, &wanted, new_commits) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot tell which commits hold the flow files; their regions are left to `sink regions`");
            return;
        }
    };
    // Which need a regions file, and from what: decided here, where the checkout is.
    let plans: Vec<Result<Option<Plan>, Skipped>> = wanted
        .iter()
        .map(|w| match commits.get(&w.rel) {
            Some(commit) => plan_one(checkout, &w.rel, commit, w.job.force)
                .map(|plan| plan.map(|p| p.deriving_from(w))),
            None => Err(Skipped::NotCommitted),
        })
        .collect();
    let tasks: Vec<(usize, Plan)> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().ok().cloned().flatten().map(|p| (i, p)))
        .collect();
    let mut texts = derive_within(tasks, max_document, budget);
    let outcomes: Vec<(&Written, Result<Option<Derived>, Skipped>)> = wanted
        .iter()
        .zip(plans)
        .enumerate()
        .map(|(i, (w, plan))| {
            let outcome = match plan {
                Ok(Some(plan)) => match texts.remove(&i) {
                    Some(Ok(text)) => write_planned(checkout, plan, &text).map(Some),
                    Some(Err(why)) => Err(why),
                    None => Err(Skipped::OverBudget(budget.as_secs())),
                },
                Ok(None) => Ok(None),
                Err(why) => Err(why),
            };
            (*w, outcome)
        })
        .collect();
    let (mut derived, mut skipped) = (Vec::new(), Vec::new());
    for (w, outcome) in outcomes {
        match outcome {
            Ok(Some(d)) => derived.push(Derived {
                label: w.video.clone(),
                ..d
            }),
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(video = %w.video, reason = %why, "no regions file");
                metrics::REGIONS_SKIPPED.inc();
                skipped.push((w.video.clone(), why.to_string()));
            }
        }
    }
    if let Err(e) = commit_derived(checkout, derived, &skipped) {
        tracing::error!(error = %format!("{e:#}"), "could not commit regions files; they are left to `sink regions`");
    }
}

/// One result per flow file, in the batch's order: a video whose result came twice is
/// derived once, from the last one written (what the file holds), or the first when
/// none was.
fn last_written(committed: &[Written]) -> Vec<&Written> {
    let mut chosen: Vec<&Written> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for w in committed {
        match at.get(w.rel.as_str()) {
            None => {
                at.insert(w.rel.as_str(), chosen.len());
                chosen.push(w);
            }
            Some(&i) if w.written.is_some() => chosen[i] = w,
            Some(_) => {}
        }
    }
    chosen
}

/// True when the regions file of the flow file `rel` is committed.
fn regions_committed(checkout: &Checkout, rel: &str) -> bool {
    resolve_regions(checkout.root(), rel)
        .map_or(true, |(r, _)| checkout.tracked(&r).unwrap_or(false))
}

/// The commit holding each flow file: among the batch's own commits for those written,
/// in all of history for those kept.
fn flow_commits(
    checkout: &Checkout,
    wanted: &[&Written],
    new_commits: u64,
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let rels: Vec<String> = wanted.iter().map(|w| w.rel.clone()).collect();
    let mut found = checkout.last_commits(&rels, Some(new_commits.max(1)))?;
    let older: Vec<String> = rels
        .into_iter()
        .filter(|r| !found.contains_key(r))
        .collect();
    if !older.is_empty() {
        found.extend(checkout.last_commits(&older, None)?);
    }
    Ok(found)
}

/// A regions file to derive: where it goes, and the flow file it comes from.
#[derive(Debug, Clone)]
pub struct Plan {
    rel: String,
    path: PathBuf,
    flow_rel: String,
    from: Origin,
    commit: String,
}

/// What a regions file is derived from.
#[derive(Debug, Clone)]
enum Origin {
    /// The flow file in the checkout (a result kept, or `sink regions`).
    File(PathBuf),
    /// The document the sink wrote, as it read it then.
    Written(Arc<Result<regions::Input, NoRegions>>),
}

/// What the regions file of `flow_rel` (committed in `commit`) needs: `Ok(None)` when a
/// committed one is kept (not `force`), `Err` with the reason when none can be made.
pub fn plan_one(
    checkout: &Checkout,
    flow_rel: &str,
    commit: &str,
    force: bool,
) -> Result<Option<Plan>, Skipped> {
    let (rel, path) = resolve_regions(checkout.root(), flow_rel)?;
    if !force && path.is_file() && checkout.tracked(&rel).unwrap_or(false) {
        return Ok(None);
    }
    let flow_path = resolve_output(checkout.root(), flow_rel)?;
    Ok(Some(Plan {
        rel,
        path,
        flow_rel: flow_rel.to_owned(),
        from: Origin::File(flow_path),
        commit: commit.to_owned(),
    }))
}

/// The regions file's text: derived from what the sink read of the document it wrote,
/// or from the flow file read (bounded). Touches nothing of the checkout but that one
/// file, so it may run on a thread of its own.
pub fn derive_text(plan: &Plan, max_document: usize) -> Result<Vec<u8>, Skipped> {
    let source = Source {
        flow_path: &plan.flow_rel,
        flow_commit: &plan.commit,
        version: common::cli::VERSION,
    };
    match &plan.from {
        Origin::Written(input) => match &**input {
            Ok(input) => Ok(input.derive(source)),
            Err(why) => Err(why.clone().into()),
        },
        Origin::File(path) => {
            let flow = read_bounded(path, max_document)?;
            Ok(regions::derive(&flow, source)?)
        }
    }
}

impl Plan {
    /// The plan, deriving from what the sink read of `written`'s document when it wrote
    /// one (its regions then need no second reading of the file).
    fn deriving_from(self, written: &Written) -> Plan {
        match &written.regions {
            Some(input) => Plan {
                from: Origin::Written(Arc::clone(input)),
                ..self
            },
            None => self,
        }
    }

    /// What a plan names, as if it had been written (a dry run).
    pub fn into_derived(self) -> Derived {
        Derived {
            rel: self.rel,
            path: self.path,
            label: self.flow_rel,
        }
    }
}

/// Writes a derived regions file where its plan says.
pub fn write_planned(checkout: &Checkout, plan: Plan, text: &[u8]) -> Result<Derived, Skipped> {
    checkout.write(&plan.path, text).map_err(|e| Skipped::Io {
        action: "write",
        path: plan.rel.clone(),
        error: e.to_string(),
    })?;
    Ok(plan.into_derived())
}

/// Derives the tasks' texts across the machine's cores, for at most `budget`: a task
/// not done by then is left out (its thread finishes it and is forgotten; no new one
/// starts), so one slow document never holds the batch longer.
fn derive_within(
    tasks: Vec<(usize, Plan)>,
    max_document: usize,
    budget: Duration,
) -> std::collections::HashMap<usize, Result<Vec<u8>, Skipped>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    let count = tasks.len();
    if budget.is_zero() || count == 0 {
        // A budget of 0: no regions in the batch at all, every one left to `sink regions`.
        return std::collections::HashMap::new();
    }
    let deadline = Instant::now() + budget;
    let queue = Arc::new(Mutex::new(tasks));
    let over = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(count);
    for _ in 0..workers {
        let (queue, over, tx) = (Arc::clone(&queue), Arc::clone(&over), tx.clone());
        std::thread::spawn(move || loop {
            let task = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((i, plan)) = task else { break };
            if over.load(Ordering::Relaxed) {
                break;
            }
            if tx.send((i, derive_text(&plan, max_document))).is_err() {
                break;
            }
        });
    }
    drop(tx);
    let mut texts = std::collections::HashMap::new();
    while texts.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, text)) => {
                texts.insert(i, text);
            }
            Err(_) => break,
        }
    }
    over.store(true, Ordering::Relaxed);
    texts
}

/// The flow file as written, if it is a regular file no larger than the sink accepts:
/// opened without blocking (a FIFO put in its place would hang the open) and checked by
/// what was opened, so nothing swapped in between is read.
fn read_bounded(path: &std::path::Path, max: usize) -> Result<Vec<u8>, Skipped> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| Skipped::Io {
        action: "read",
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(Skipped::NotAFile(path.display().to_string()));
    }
    if meta.len() > max as u64 {
        return Err(Skipped::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > max {
        return Err(Skipped::Grew(max));
    }
    Ok(bytes)
}

/// Commits the regions files written, with those left without one in the message. A
/// failed commit is undone (nothing of it stays staged or written).
pub fn commit_derived(
    checkout: &Checkout,
    derived: Vec<Derived>,
    skipped: &[(String, String)],
) -> anyhow::Result<()> {
    if derived.is_empty() {
        return Ok(());
    }
    let rels: Vec<String> = derived.iter().map(|d| d.rel.clone()).collect();
    let message = |changed: &[String]| message(&derived, changed, skipped);
    match checkout.commit(&rels, message) {
        Ok(Some(id)) => {
            metrics::REGIONS.add(derived.len() as f64);
            tracing::info!(commit = %id, regions = derived.len(), "committed regions");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            checkout.unstage(&rels);
            for d in &derived {
                checkout.discard(&d.rel, &d.path);
            }
            Err(e)
        }
    }
}

/// "Add regions for N video(s)", one line per video, then those without regions and why.
fn message(derived: &[Derived], changed: &[String], skipped: &[(String, String)]) -> String {
    let clean = common::text::plain_line;
    let changed: std::collections::HashSet<&str> = changed.iter().map(String::as_str).collect();
    let shown: Vec<&Derived> = derived
        .iter()
        .filter(|d| changed.contains(d.rel.as_str()))
        .collect();
    let mut m = format!("Add regions for {} video(s)\n\n", shown.len());
    for d in shown {
        m.push_str(&format!("- {}\n", clean(&d.label)));
    }
    if !skipped.is_empty() {
        m.push_str(&format!("\nNo regions for {} video(s):\n", skipped.len()));
        for (label, why) in skipped {
            m.push_str(&format!("- {}: {}\n", clean(label), clean(why)));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &[u8] = br#"{"movie": {"URL": "x.mov"}, "frameStats": [
        {"frameNumber": 1, "opticalFlow": {"center": [0, 0], "similarity": [1, 0, 0, 0], "valid": true}},
        {"frameNumber": 11, "opticalFlow": {"center": [0, 0], "similarity": [1, 0, 0, 0], "valid": true}}]}"#;

    fn written(id: u64, wrote: bool) -> Written {
        let input = regions::Input::read(FLOW).unwrap();
        Written {
            id,
            path: "/nowhere/x_optical_flow.json".into(),
            rel: "x_optical_flow.json".into(),
            written: wrote.then_some(1),
            video: "x.mov".into(),
            job_id: None,
            job: common::wire::Job::new("x.mov", "x_optical_flow.json"),
            regions: wrote.then(|| Arc::new(Ok(input))),
        }
    }

    #[test]
    fn a_written_documents_regions_come_from_what_the_sink_read_not_from_the_file() {
        let plan = Plan {
            rel: "x_optical_flow_regions.json".into(),
            path: "/nowhere/x_optical_flow_regions.json".into(),
            flow_rel: "x_optical_flow.json".into(),
            from: Origin::File("/nowhere/x_optical_flow.json".into()),
            commit: "abc".into(),
        };
        let err = derive_text(&plan, 1 << 20).unwrap_err();
        assert!(matches!(err, Skipped::Io { action: "read", .. }), "{err}");
        let text = derive_text(&plan.deriving_from(&written(1, true)), 1 << 20).unwrap();
        let source = Source {
            flow_path: "x_optical_flow.json",
            flow_commit: "abc",
            version: common::cli::VERSION,
        };
        assert_eq!(text, regions::derive(FLOW, source).unwrap());
    }

    #[test]
    fn a_video_twice_in_a_batch_is_derived_from_its_last_written_result() {
        let batch = [
            written(1, true),
            written(2, false),
            written(3, true),
            written(4, false),
        ];
        let chosen: Vec<u64> = last_written(&batch).iter().map(|w| w.id).collect();
        assert_eq!(chosen, [3]);
        let kept_only = [written(5, false), written(6, false)];
        let chosen: Vec<u64> = last_written(&kept_only).iter().map(|w| w.id).collect();
        assert_eq!(chosen, [5]);
    }
}
