//! Where videos are found: a local folder (walked recursively), a list file or stdin
//! (one path or URL a line), an HTTP directory index (Apache or nginx autoindex, followed
//! into subfolders) or a lazycache directory (its JSON listing).

use std::io::Read;
use std::path::Path;

use common::paths::{archive_relative, LAZYCACHE_MARKER};

/// A video found in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The path or URL a filter will read.
    pub video: String,
    /// Its path below the archive root (ends in `.mov`).
    pub rel: String,
}

/// An entry that could not become a job, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The entry.
    pub entry: String,
    /// Why.
    pub reason: String,
}

/// Everything a source yields.
#[derive(Debug, Default)]
pub struct Found {
    /// Videos.
    pub videos: Vec<Candidate>,
    /// Entries refused.
    pub rejected: Vec<Rejected>,
}

/// Walks one SOURCE.
pub fn walk(source: &str) -> Found {
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
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(60))
            .build();
        if source.contains(LAZYCACHE_MARKER) {
            lazycache_dir(&agent, &base, 0, &mut found);
        } else {
            http_index(&agent, &base, &base, 0, &mut found);
        }
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

/// Depth limit against index pages that link in circles.
const MAX_DEPTH: usize = 16;

fn get(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    match agent.get(url).call() {
        Ok(r) => r
            .into_string()
            .map_err(|e| format!("reading the page: {e}")),
        Err(ureq::Error::Status(s, _)) => Err(format!("HTTP {s}")),
        Err(e) => Err(format!("cannot reach the server: {e}")),
    }
}

fn http_index(agent: &ureq::Agent, root: &str, page: &str, depth: usize, found: &mut Found) {
    if depth > MAX_DEPTH {
        return reject(found, page, "directory index nested too deep".into());
    }
    let html = match get(agent, page) {
        Ok(html) => html,
        Err(e) => return reject(found, page, e),
    };
    let Ok(base) = url::Url::parse(page) else {
        return reject(found, page, "not a valid URL".into());
    };
    for href in hrefs(&html) {
        let Ok(link) = base.join(&href) else { continue };
        let link = link.as_str().to_owned();
        // Only links below this page: skips parents, sort links (?C=M) and other sites.
        if !link.starts_with(page) || link == page || link.contains('?') {
            continue;
        }
        if link.ends_with('/') {
            http_index(agent, root, &link, depth + 1, found);
        } else if is_mov(&link) {
            let rel = archive_relative(&link).unwrap_or_else(|| link[root.len()..].to_owned());
            found.videos.push(Candidate { video: link, rel });
        }
    }
}

/// The `href` values of an HTML page.
fn hrefs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.to_ascii_lowercase().find("href=") {
        rest = &rest[i + 5..];
        let quote = rest.chars().next();
        let value = match quote {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next(),
            _ => rest.split(|c: char| c.is_whitespace() || c == '>').next(),
        };
        if let Some(v) = value {
            out.push(v.replace("&amp;", "&"));
        }
    }
    out
}

fn lazycache_dir(agent: &ureq::Agent, dir: &str, depth: usize, found: &mut Found) {
    if depth > MAX_DEPTH {
        return reject(found, dir, "directory nested too deep".into());
    }
    let listing: serde_json::Value = match get(agent, dir).map(|t| serde_json::from_str(&t)) {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => return reject(found, dir, "the reply is not lazycache's JSON".into()),
        Err(e) => return reject(found, dir, e),
    };
    if let Some(e) = listing.get("Error") {
        return reject(found, dir, format!("lazycache says: {e}"));
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
            found.videos.push(Candidate { video, rel });
        }
    }
    for sub in names("Directories") {
        lazycache_dir(
            agent,
            &format!("{dir}{}/", sub.trim_end_matches('/')),
            depth + 1,
            found,
        );
    }
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
