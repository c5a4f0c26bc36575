//! The local-directory forge: work orders as Markdown files, the embedded default.
//!
//! ```text
//! work-orders/
//!   INDEX.md                                      a table of every issue, newest first
//!   00001-prod-pets-deployment-store-front.md     front matter (state, labels…) + body + comments
//!   .lock                                         held while a Triage process uses the directory
//! ```
//!
//! Each file is readable as is: YAML front matter with the number, title, state and
//! labels, then the body exactly as rendered (with its key marker), then each comment
//! under a `### Comment N · time` heading. Issue numbers are assigned sequentially.
//!
//! Every change rewrites the whole file through a temporary file in the same directory,
//! fsync and rename, so a reader or a crash never sees half a file. One process at a
//! time: the directory is locked (`.lock`, an advisory file lock released when the
//! process exits, even by kill -9); a second process gets a clear error. Humans may
//! read the files at any time, and edit them while no Triage process runs.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    CloseReason, Forge, ForgeError, FoundIssue, IssueDraft, IssueRef, IssueState, LabelSpec,
    RepoRef, parse_key_marker,
};

const INDEX: &str = "INDEX.md";
const LOCK: &str = ".lock";
const COMMENT_OPEN: &str = "<!-- triage:comment ";

/// Front matter of one issue file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    number: u64,
    repo: String,
    title: String,
    state: IssueState,
    state_reason: Option<String>,
    labels: Vec<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    comments: u64,
}

struct Entry {
    meta: Meta,
    file: String,
}

struct Inner {
    root: PathBuf,
    entries: BTreeMap<u64, Entry>,
    /// Held for the forge's lifetime; the lock goes with it.
    _lock: File,
}

/// See the module docs. Cheap to clone; clones share the directory lock.
#[derive(Clone)]
pub struct DirForge {
    inner: Arc<Mutex<Inner>>,
    root: PathBuf,
}

fn io_err(what: impl std::fmt::Display, err: std::io::Error) -> ForgeError {
    // A full disk or a permissions hiccup may pass; the outbox retries with backoff.
    ForgeError::Transient {
        reason: format!("{what}: {err}"),
        retry_after: None,
    }
}

impl DirForge {
    /// Opens (creating if needed) the directory, takes its lock and reads every issue.
    pub fn open(root: impl Into<PathBuf>) -> anyhow::Result<DirForge> {
        use anyhow::Context as _;
        let root = root.into();
        fs::create_dir_all(&root)
            .with_context(|| format!("forge.dir: cannot create {}", root.display()))?;
        let lock_path = root.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("forge.dir: cannot open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                "forge.dir: {} is in use by another Triage process (the local-directory forge serves one process; use GitHub or Gitea for several replicas)",
                root.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e)
                    .with_context(|| format!("forge.dir: cannot lock {}", lock_path.display()));
            }
        }
        let mut entries = BTreeMap::new();
        for item in fs::read_dir(&root)
            .with_context(|| format!("forge.dir: cannot list {}", root.display()))?
        {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".md") || name == INDEX || name.starts_with('.') {
                continue;
            }
            let text = fs::read_to_string(item.path())
                .with_context(|| format!("forge.dir: cannot read {}", item.path().display()))?;
            match parse_file(&text) {
                Some((meta, _)) => {
                    entries.insert(meta.number, Entry { meta, file: name });
                }
                None => {
                    tracing::warn!(file = %item.path().display(), "forge.dir: not a work-order file (no front matter); left alone")
                }
            }
        }
        Ok(DirForge {
            inner: Arc::new(Mutex::new(Inner {
                root: root.clone(),
                entries,
                _lock: lock,
            })),
            root,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `f` on the state off the async threads: file IO blocks.
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<R, ForgeError> + Send + 'static,
    ) -> Result<R, ForgeError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().map_err(|_| ForgeError::Permanent {
                reason: "local-directory forge state poisoned by an earlier panic".into(),
            })?;
            f(&mut guard)
        })
        .await
        .map_err(|e| ForgeError::Transient {
            reason: format!("local-directory forge task failed: {e}"),
            retry_after: None,
        })?
    }
}

impl Inner {
    fn entry(&self, issue: &IssueRef) -> Result<&Entry, ForgeError> {
        self.entries
            .get(&issue.number)
            .filter(|e| e.meta.repo == issue.repo.to_string())
            .ok_or_else(|| ForgeError::Permanent {
                reason: format!(
                    "issue {}#{} does not exist in {}",
                    issue.repo,
                    issue.number,
                    self.root.display()
                ),
            })
    }

    fn issue_ref(&self, entry: &Entry) -> IssueRef {
        IssueRef {
            repo: RepoRef::parse(&entry.meta.repo).unwrap_or(RepoRef {
                owner: "local".into(),
                name: "work-orders".into(),
            }),
            number: entry.meta.number,
            url: self.root.join(&entry.file).display().to_string(),
        }
    }

    fn read(&self, entry: &Entry) -> Result<String, ForgeError> {
        let path = self.root.join(&entry.file);
        let text = fs::read_to_string(&path)
            .map_err(|e| io_err(format!("cannot read {}", path.display()), e))?;
        let (_, rest) = parse_file(&text).ok_or_else(|| ForgeError::Permanent {
            reason: format!("{} lost its front matter (edited by hand?)", path.display()),
        })?;
        Ok(rest.to_string())
    }

    /// Writes the file atomically, then the index.
    fn write(&mut self, number: u64, rest: &str) -> Result<(), ForgeError> {
        let entry = self
            .entries
            .get(&number)
            .ok_or_else(|| ForgeError::Permanent {
                reason: format!("issue #{number} vanished"),
            })?;
        let text = render_file(&entry.meta, rest)?;
        atomic_write(&self.root, &entry.file, &text)?;
        self.write_index()
    }

    fn write_index(&self) -> Result<(), ForgeError> {
        let mut out = String::from(
            "# Work orders\n\nWritten by Triage's local-directory forge; one file per work order.\n\n\
             | # | State | Priority | Title | Labels | Updated |\n|---|---|---|---|---|---|\n",
        );
        for entry in self.entries.values().rev() {
            let m = &entry.meta;
            let priority = m
                .labels
                .iter()
                .find_map(|l| l.strip_prefix("priority/"))
                .unwrap_or("—");
            let state = match (&m.state, &m.state_reason) {
                (IssueState::Closed, Some(r)) => format!("closed ({r})"),
                (IssueState::Closed, None) => "closed".into(),
                (IssueState::Open, _) => "open".into(),
            };
            out.push_str(&format!(
                "| [{}]({}) | {state} | {priority} | {} | {} | {} |\n",
                m.number,
                entry.file,
                cell(&m.title),
                cell(&m.labels.join(", ")),
                m.updated_at
            ));
        }
        atomic_write(&self.root, INDEX, &out)
    }
}

#[async_trait]
impl Forge for DirForge {
    fn kind(&self) -> &'static str {
        "dir"
    }

    async fn ensure_labels(
        &self,
        _repo: &RepoRef,
        _labels: &[LabelSpec],
    ) -> Result<(), ForgeError> {
        // Labels are plain text in the front matter.
        Ok(())
    }

    async fn find_by_key(
        &self,
        repo: &RepoRef,
        key: &str,
        key_label: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        let (repo, key, key_label) = (repo.to_string(), key.to_string(), key_label.to_string());
        self.with(move |inner| {
            let candidates: Vec<u64> = inner
                .entries
                .values()
                .rev()
                .filter(|e| e.meta.repo == repo && e.meta.labels.contains(&key_label))
                .map(|e| e.meta.number)
                .collect();
            for number in candidates {
                let entry = &inner.entries[&number];
                // Verify the marker in the file as it is now, not as it was loaded.
                let rest = inner.read(entry)?;
                if parse_key_marker(issue_body(&rest)) == Some(key.as_str()) {
                    return Ok(Some(FoundIssue {
                        issue: inner.issue_ref(entry),
                        state: entry.meta.state,
                        labels: entry.meta.labels.clone(),
                        key: key.clone(),
                    }));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn create(&self, repo: &RepoRef, draft: &IssueDraft) -> Result<IssueRef, ForgeError> {
        let (repo, draft) = (repo.to_string(), draft.clone());
        self.with(move |inner| {
            let number = inner.entries.keys().next_back().map_or(1, |n| n + 1);
            let key = parse_key_marker(&draft.body).map(str::to_string);
            let slug = slug(key.as_deref().unwrap_or(&draft.title));
            let file = format!("{number:05}-{slug}.md");
            let now = Timestamp::now();
            let mut labels = Vec::new();
            for l in draft.labels {
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
            let meta = Meta {
                number,
                repo,
                title: draft.title,
                state: IssueState::Open,
                state_reason: None,
                labels,
                created_at: now,
                updated_at: now,
                comments: 0,
            };
            inner.entries.insert(number, Entry { meta, file });
            let body = format!("{}\n", draft.body.trim_end());
            if let Err(e) = inner.write(number, &body) {
                inner.entries.remove(&number);
                return Err(e);
            }
            Ok(inner.issue_ref(&inner.entries[&number]))
        })
        .await
    }

    async fn comment(&self, issue: &IssueRef, body: &str) -> Result<(), ForgeError> {
        let (issue, body) = (issue.clone(), body.to_string());
        self.with(move |inner| {
            let entry = inner.entry(&issue)?;
            let mut rest = inner.read(entry)?;
            let n = entry.meta.comments + 1;
            let now = Timestamp::now();
            rest = format!(
                "{}\n\n{COMMENT_OPEN}{n} -->\n### Comment {n} · {now}\n\n{}\n",
                rest.trim_end(),
                body.trim_end()
            );
            let number = issue.number;
            if let Some(e) = inner.entries.get_mut(&number) {
                e.meta.comments = n;
                e.meta.updated_at = now;
            }
            inner.write(number, &rest)
        })
        .await
    }

    async fn set_state(
        &self,
        issue: &IssueRef,
        state: IssueState,
        reason: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        let issue = issue.clone();
        self.update_meta(issue, move |m| {
            m.state_reason = match (state, reason) {
                (IssueState::Closed, Some(CloseReason::NotPlanned)) => Some("not_planned".into()),
                (IssueState::Closed, _) => Some("completed".into()),
                (IssueState::Open, _) if m.state == IssueState::Closed => Some("reopened".into()),
                (IssueState::Open, _) => m.state_reason.take(),
            };
            m.state = state;
        })
        .await
    }

    async fn add_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError> {
        let labels = labels.to_vec();
        self.update_meta(issue.clone(), move |m| {
            for l in labels {
                if !m.labels.contains(&l) {
                    m.labels.push(l);
                }
            }
        })
        .await
    }

    async fn remove_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError> {
        let labels = labels.to_vec();
        self.update_meta(issue.clone(), move |m| {
            m.labels.retain(|l| !labels.contains(l))
        })
        .await
    }

    async fn list_work_orders(&self, repo: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        let repo = repo.to_string();
        self.with(move |inner| {
            let mut out = Vec::new();
            for entry in inner.entries.values().filter(|e| e.meta.repo == repo) {
                let rest = inner.read(entry)?;
                if let Some(key) = parse_key_marker(issue_body(&rest)) {
                    out.push(FoundIssue {
                        issue: inner.issue_ref(entry),
                        state: entry.meta.state,
                        labels: entry.meta.labels.clone(),
                        key: key.to_string(),
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

impl DirForge {
    async fn update_meta(
        &self,
        issue: IssueRef,
        f: impl FnOnce(&mut Meta) + Send + 'static,
    ) -> Result<(), ForgeError> {
        self.with(move |inner| {
            let entry = inner.entry(&issue)?;
            let rest = inner.read(entry)?;
            let number = issue.number;
            if let Some(e) = inner.entries.get_mut(&number) {
                f(&mut e.meta);
                e.meta.updated_at = Timestamp::now();
            }
            inner.write(number, &rest)
        })
        .await
    }
}

/// The issue body without the appended comments.
fn issue_body(rest: &str) -> &str {
    match rest.find(COMMENT_OPEN) {
        Some(i) => &rest[..i],
        None => rest,
    }
}

fn render_file(meta: &Meta, rest: &str) -> Result<String, ForgeError> {
    let yaml = serde_yaml_ng::to_string(meta).map_err(|e| ForgeError::Permanent {
        reason: format!("cannot write front matter: {e}"),
    })?;
    Ok(format!(
        "---\n{yaml}---\n\n{}",
        rest.trim_start_matches('\n')
    ))
}

fn parse_file(text: &str) -> Option<(Meta, &str)> {
    let after_open = text.strip_prefix("---\n")?;
    let end = after_open.find("\n---\n")?;
    let meta: Meta = serde_yaml_ng::from_str(&after_open[..end + 1]).ok()?;
    let rest = &after_open[end + "\n---\n".len()..];
    Some((meta, rest.trim_start_matches('\n')))
}

fn atomic_write(root: &Path, name: &str, text: &str) -> Result<(), ForgeError> {
    let target = root.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(root)
        .map_err(|e| {
            io_err(
                format!("cannot create a temporary file in {}", root.display()),
                e,
            )
        })?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io_err(format!("cannot write {}", target.display()), e))?;
    tmp.persist(&target)
        .map_err(|e| io_err(format!("cannot replace {}", target.display()), e.error))?;
    // The rename is durable only once the directory is synced.
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(format!("cannot sync {}", root.display()), e))
}

/// `prod/pets/deployment/store-front` → `prod-pets-deployment-store-front`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 80 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "work-order".into()
    } else {
        out
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests;
