//! Committing a batch of written results: exactly their paths, with a message that
//! lists exactly the videos each commit holds, and every written path checked to be in
//! the commit after it. A batch git refuses is halved until the result to blame is
//! found; the rest are committed.

use crate::batch::Written;
use crate::checkout::Checkout;
use crate::metrics;

/// Committed results, and refused ones with the reason.
pub type Split = (Vec<Written>, Vec<(Written, String)>);

/// Commits batches into a checkout, counting the commits it makes.
#[derive(Debug)]
pub struct Committer<'a> {
    checkout: &'a Checkout,
    /// Commits made so far.
    pub commits: u64,
}

impl<'a> Committer<'a> {
    /// A committer into `checkout`.
    pub fn new(checkout: &'a Checkout) -> Committer<'a> {
        Committer {
            checkout,
            commits: 0,
        }
    }

    /// Commits `items`, halving on failure; returns the committed ones and the refused
    /// ones with the reason. Fails (handing the items back) when git fails while the
    /// checkout itself is not writable: then no result is to blame.
    pub fn commit(&mut self, items: Vec<Written>) -> Result<Split, (Vec<Written>, anyhow::Error)> {
        let checkout = self.checkout;
        let rels: Vec<String> = items
            .iter()
            .filter(|p| p.written.is_some())
            .map(|p| p.rel.clone())
            .collect();
        if rels.is_empty() {
            return Ok((items, Vec::new()));
        }
        match checkout.commit(&rels, |changed| message(&items, changed)) {
            Ok(commit) => {
                if let Some(id) = &commit {
                    metrics::COMMITS.inc();
                    self.commits += 1;
                    tracing::info!(commit = %id, results = items.len(), "committed");
                }
                let written: Vec<(String, usize)> = items
                    .iter()
                    .filter_map(|p| p.written.map(|n| (p.rel.clone(), n)))
                    .collect();
                let missing = match checkout.not_in_head(&written) {
                    Ok(m) => m,
                    Err(e) => return Err((items, e)),
                };
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                for p in items {
                    if missing.contains(&p.rel) {
                        checkout.discard(&p.rel, &p.path);
                        let why = format!("git did not take {} into the commit", p.rel);
                        bad.push((p, why));
                    } else {
                        ok.push(p);
                    }
                }
                Ok((ok, bad))
            }
            Err(e) if !checkout.healthy() => Err((items, e)),
            Err(e) if rels.len() == 1 => {
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                for p in items {
                    if p.written.is_some() {
                        checkout.discard(&p.rel, &p.path);
                        bad.push((p, format!("git refused it: {e:#}")));
                    } else {
                        ok.push(p);
                    }
                }
                Ok((ok, bad))
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), results = items.len(), "commit failed; splitting the batch to find the result git refuses");
                checkout.unstage(&rels);
                let mut items = items;
                let second = items.split_off(items.len() / 2);
                let (mut ok, mut bad) = self.commit(items)?;
                match self.commit(second) {
                    Ok((ok2, bad2)) => {
                        ok.extend(ok2);
                        bad.extend(bad2);
                        Ok((ok, bad))
                    }
                    Err((mut back, e)) => {
                        // The first half is committed; hand back only what is not.
                        bad.into_iter().for_each(|(p, _)| back.push(p));
                        drop(ok);
                        Err((back, e))
                    }
                }
            }
        }
    }
}

/// The commit message: a count, then one line per video (control characters and bidi overrides dropped),
/// of the items whose file is among `changed`, the paths the commit holds.
fn message(items: &[Written], changed: &[String]) -> String {
    let changed: std::collections::HashSet<&str> = changed.iter().map(String::as_str).collect();
    let shown: Vec<&Written> = items
        .iter()
        .filter(|p| p.written.is_some() && changed.contains(p.rel.as_str()))
        .collect();
    let mut message = format!("Add optical flow for {} video(s)\n\n", shown.len());
    for p in shown {
        message.push_str(&format!("- {}\n", common::text::plain_line(&p.video)));
    }
    message
}
