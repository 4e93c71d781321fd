//! Where videos are found: a local folder (walked recursively), a list file or stdin
//! (one path or URL a line), an HTTP directory index (Apache or nginx autoindex, followed
//! into subfolders) or a lazycache directory (its JSON listing). Directory listings over
//! HTTP are fetched several at a time (`listing`), so a walk far from the archive waits
//! for a few round trips per level of folders, not one per folder.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::paths::{archive_relative, LAZYCACHE_MARKER};
use movie::hosts::Hosts;
use movie::http::{Http, HttpLimits};

use crate::found::{Candidate, Found, Rejected};

/// Walks one SOURCE.
pub fn walk(source: &str, archive: &Arc<Hosts>) -> Found {
    let mut found = Found::default();
    let lower = source.to_ascii_lowercase();
    if source == "-" {
        let mut text = String::new();
        match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => list(&text, &mut found),
            Err(e) => reject(&mut found, "-", format!("cannot read stdin: {e}")),
        }
    } else if lower.starts_with("http://") || lower.starts_with("https://") {
        let base = if source.ends_with('/') {
            source.to_owned()
        } else {
            format!("{source}/")
        };
        let http = listing_client(archive);
        let lazycache = source.contains(LAZYCACHE_MARKER);
        let pages = crate::listing::walk(&base, archive.cap(), |page| match lazycache {
            true => lazycache_dir(&http, page),
            false => http_index(&http, &base, page),
        });
        pages.into_found(&mut found);
    } else {
        let path = Path::new(source);
        if path.is_dir() {
            folder(path, path, &mut found);
        } else if path.is_file() {
            match std::fs::read_to_string(path) {
                Ok(text) => list(&text, &mut found),
                Err(e) => reject(&mut found, source, format!("cannot read the list: {e}")),
            }
        } else {
            reject(
                &mut found,
                source,
                "no such folder, list file or URL".into(),
            );
        }
    }
    found
}

fn reject(found: &mut Found, entry: &str, reason: String) {
    found.rejected.push(Rejected {
        entry: entry.to_owned(),
        reason,
    });
}

fn is_mov(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".mov")
}

/// Below `root`, or below an archive `files/` folder on the way, whichever is nearer
/// the file: a copy of the archive keeps its layout wherever it is mounted.
fn folder(root: &Path, dir: &Path, found: &mut Found) {
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().collect(),
        Err(e) => {
            return reject(
                found,
                &dir.display().to_string(),
                format!("cannot list: {e}"),
            )
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            folder(root, &path, found);
        } else if is_mov(&name) {
            let abs = std::path::absolute(&path).unwrap_or(path.clone());
            let video = abs.to_string_lossy().into_owned();
            let rel = archive_relative(&video).unwrap_or_else(|| {
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned()
            });
            found.videos.push(Candidate { video, rel });
        }
    }
}

fn list(text: &str, found: &mut Found) {
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !is_mov(line) {
            reject(found, line, "not a .mov".into());
            continue;
        }
        match archive_relative(line) {
            Some(rel) => found.videos.push(Candidate {
                video: line.to_owned(),
                rel,
            }),
            None => reject(
                found,
                line,
                "no /files/ in it, so its place in the archive (and its JSON's) is unknown".into(),
            ),
        }
    }
}

/// The most bytes of one listing page read (an archive day's index is a few KB).
const MAX_PAGE: u64 = 8 << 20;

/// The longest one listing page may take.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// The client listings are fetched with: the filter's (`movie::http`), so the archive
/// sees one rule from the grid — a 503 or 429 waited out (its `Retry-After` honoured)
/// and asked again, a refused connection to a host that answered before taken as busy,
/// each page within [`PAGE_DEADLINE`] — through the pass's one pool and budget per host
/// (`--http-connections`) and, with a grid budget, its tokens.
fn listing_client(archive: &Arc<Hosts>) -> Http {
    Http::new(HttpLimits {
        deadline: PAGE_DEADLINE,
        hosts: Arc::clone(archive),
        ..HttpLimits::default()
    })
}

/// One listing page as text, at most [`MAX_PAGE`] bytes; the error says why not (the
/// caller names the page).
fn get(http: &Http, url: &str) -> Result<String, String> {
    let why = |e: movie::ReadError| {
        if let movie::ReadError::TooSlow { .. } = e {
            // Its own text names the filter's flags; a page has its own bound.
            return format!(
                "the server is too slow: the page took more than {} s",
                PAGE_DEADLINE.as_secs()
            );
        }
        let text = e.to_string();
        match text.strip_prefix(url).and_then(|t| t.strip_prefix(": ")) {
            Some(reason) => reason.to_owned(),
            None => text,
        }
    };
    let body = http
        .get(url, None, MAX_PAGE)
        .and_then(|reply| reply.body_within(MAX_PAGE))
        .map_err(why)?
        .ok_or_else(|| format!("a listing of more than {MAX_PAGE} bytes"))?;
    String::from_utf8(body).map_err(|_| "the page is not UTF-8 text".to_owned())
}

/// One page of an Apache or nginx directory index: its videos and its subfolders, in
/// the page's order.
fn http_index(http: &Http, root: &str, page: &str) -> crate::listing::Page {
    let mut out = crate::listing::Page::default();
    let html = match get(http, page) {
        Ok(html) => html,
        Err(e) => return out.rejected(page, e),
    };
    let Ok(base) = url::Url::parse(page) else {
        return out.rejected(page, "not a valid URL".into());
    };
    for href in hrefs(&html) {
        let Ok(link) = base.join(&href) else { continue };
        let link = link.as_str().to_owned();
        // Only links below this page: skips parents, sort links (?C=M) and other sites.
        if !link.starts_with(page) || link == page || link.contains('?') {
            continue;
        }
        if link.ends_with('/') {
            out.folder(link);
        } else if is_mov(&link) {
            let rel = archive_relative(&link).unwrap_or_else(|| link[root.len()..].to_owned());
            out.video(Candidate { video: link, rel });
        }
    }
    out
}

/// The `href` values of an HTML page.
fn hrefs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("href=") {
        at += i + 5;
        let rest = &html[at..];
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next(),
            _ => rest.split(|c: char| c.is_whitespace() || c == '>').next(),
        };
        if let Some(v) = value {
            out.push(v.replace("&amp;", "&"));
        }
    }
    out
}

/// One lazycache directory listing: its videos, then its subdirectories.
fn lazycache_dir(http: &Http, dir: &str) -> crate::listing::Page {
    let mut out = crate::listing::Page::default();
    let listing: serde_json::Value = match get(http, dir).map(|t| serde_json::from_str(&t)) {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => return out.rejected(dir, "the reply is not lazycache's JSON".into()),
        Err(e) => return out.rejected(dir, e),
    };
    if let Some(e) = listing.get("Error") {
        return out.rejected(dir, format!("lazycache says: {e}"));
    }
    let names = |key: &str| -> Vec<String> {
        listing[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for file in names("Files").into_iter().filter(|f| is_mov(f)) {
        let video = format!("{dir}{file}");
        if let Some(rel) = archive_relative(&video) {
            out.video(Candidate { video, rel });
        }
    }
    for sub in names("Directories") {
        out.folder(format!("{dir}{}/", sub.trim_end_matches('/')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_are_found_in_autoindex_pages() {
        let apache = r#"<a href="?C=N;O=D">Name</a> <a href="/files/">Parent</a> <a href="14/">14/</a> <a href='a.mov'>a</a> <a href=b.mov>b</a>"#;
        assert_eq!(
            hrefs(apache),
            ["?C=N;O=D", "/files/", "14/", "a.mov", "b.mov"]
        );
    }

    #[test]
    fn list_entries_need_an_archive_path() {
        let mut found = Found::default();
        list(
            "# comment\n\nhttps://h/files/RS03ASHS/2017/06/14/a.mov\n/data/b.mov\n/x/files/c.txt\n",
            &mut found,
        );
        assert_eq!(found.videos.len(), 1);
        assert_eq!(found.videos[0].rel, "RS03ASHS/2017/06/14/a.mov");
        assert_eq!(found.rejected.len(), 2);
    }
}
