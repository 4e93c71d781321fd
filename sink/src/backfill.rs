//! `sink regions`: the regions file of every committed flow file in a checkout that has
//! none (or of all, forced), derived as the sink derives them and committed in batches,
//! with a progress bar. Memory grows with the number of paths, not with the documents:
//! one is read at a time.

use std::collections::HashSet;
use std::time::Instant;

use common::paths::{resolve_regions, OUTPUT_SUFFIX, REGIONS_SUFFIX};

use crate::checkout::Checkout;
use crate::regions::{commit_derived, derive_text, plan_one, write_planned, Derived, Skipped};
use rayon::prelude::*;

/// What to fill in.
#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Remake regions files that are committed already.
    pub force: bool,
    /// List what would be written; write and commit nothing.
    pub dry_run: bool,
    /// Regions files per commit.
    pub per_commit: usize,
    /// Folders or flow files (relative to the checkout) to cover; all when empty.
    pub paths: Vec<String>,
    /// The largest flow file read, in bytes.
    pub max_document: usize,
}

/// What a backfill did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Flow files looked at.
    pub flow_files: usize,
    /// Regions files written (or, in a dry run, that would be).
    pub derived: usize,
    /// Flow files left without regions (no valid entry, unreadable), each reported.
    pub skipped: usize,
    /// Commits made.
    pub commits: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// Fills in the regions files of `checkout`.
pub fn run(checkout: &Checkout, config: &BackfillConfig) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let files = checkout.tracked_files()?;
    let have: HashSet<&str> = files
        .iter()
        .filter(|f| f.ends_with(REGIONS_SUFFIX))
        .map(String::as_str)
        .collect();
    let scope: Vec<String> = config.paths.iter().map(|p| normalise(p)).collect();
    let flows: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(OUTPUT_SUFFIX) && in_scope(f, &scope))
        .collect();
    let wanted: Vec<String> = flows
        .iter()
        .filter(|f| {
            config.force
                || resolve_regions(checkout.root(), f)
                    .is_ok_and(|(r, _)| !have.contains(r.as_str()))
        })
        .map(|f| f.to_string())
        .collect();
    let mut summary = Summary {
        flow_files: flows.len(),
        ..Summary::default()
    };
    tracing::info!(
        flow_files = flows.len(),
        lacking = wanted.len(),
        "regions backfill"
    );
    let commits = checkout.last_commits(&wanted, None)?;
    let bar = progress_bar(wanted.len() as u64);
    let (mut batch, mut skipped) = (Vec::new(), Vec::new());
    // A commit's worth at a time, each file derived on whichever core is free.
    for chunk in wanted.chunks(config.per_commit) {
        let outcomes: Vec<_> = chunk
            .par_iter()
            .map(|flow| {
                let commit = commits.get(flow).map_or("", String::as_str);
                let outcome = derive(checkout, flow, commit, config);
                bar.inc(1);
                (flow, outcome)
            })
            .collect();
        for (flow, outcome) in outcomes {
            match outcome {
                Ok(Some(d)) if config.dry_run => {
                    bar.suspend(|| common::cli::out_line(format_args!("{}", shown(&d.rel))))?;
                    summary.derived += 1;
                }
                Ok(Some(d)) => batch.push(d),
                Ok(None) => {}
                Err(why) => {
                    let why = why.to_string();
                    bar.suspend(|| eprintln!("no regions for {}: {}", shown(flow), shown(&why)));
                    skipped.push((flow.clone(), why));
                    summary.skipped += 1;
                }
            }
        }
        if !batch.is_empty() {
            summary.derived += batch.len();
            summary.commits += 1;
            commit_derived(
                checkout,
                std::mem::take(&mut batch),
                &std::mem::take(&mut skipped),
            )?;
        }
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A path as given, as git lists them: no `./` in front, no `/` behind.
fn normalise(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    p.to_owned()
}

/// True when `file` is one of `scope` or inside one of its folders (all when empty).
fn in_scope(file: &str, scope: &[String]) -> bool {
    scope.is_empty()
        || scope.iter().any(|s| {
            s.is_empty()
                || file == s
                || file
                    .strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// A bar on stderr when it is a terminal (indicatif draws nothing otherwise).
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} flow files ({per_sec}, {eta} left)",
        )
        .expect("a valid template"),
    );
    bar
}

/// A name as a terminal may be shown it: control characters (escapes, line breaks)
/// and bidi overrides written as escapes, never obeyed.
fn shown(name: &str) -> String {
    common::text::one_line(name)
}

/// Derives the regions file of the flow file `flow_rel` (committed in `commit`) and,
/// unless a dry run, writes it: `Ok(None)` when a committed one is kept (not forced),
/// `Err` with the reason when there is none to write.
fn derive(
    checkout: &Checkout,
    flow_rel: &str,
    commit: &str,
    config: &BackfillConfig,
) -> Result<Option<Derived>, Skipped> {
    let Some(plan) = plan_one(checkout, flow_rel, commit, config.force)? else {
        return Ok(None);
    };
    let text = derive_text(&plan, config.max_document)?;
    if config.dry_run {
        return Ok(Some(plan.into_derived()));
    }
    write_planned(checkout, plan, &text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_with_their_control_characters_escaped() {
        assert_eq!(shown("a/b_optical_flow.json"), "a/b_optical_flow.json");
        assert_eq!(shown("x\u{1b}[2J\ny"), "x\\u{1b}[2J\\ny");
    }

    #[test]
    fn paths_cover_whole_folders_and_files() {
        let scope = vec![
            normalise("./RS03ASHS/2016/"),
            normalise("b_optical_flow.json"),
        ];
        assert!(in_scope("RS03ASHS/2016/x_optical_flow.json", &scope));
        assert!(!in_scope("RS03ASHS/2016x/x_optical_flow.json", &scope));
        assert!(in_scope("b_optical_flow.json", &scope));
        assert!(!in_scope("c/b_optical_flow.json", &scope));
        assert!(in_scope("anything", &[]));
    }
}
