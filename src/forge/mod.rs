//! Forges: where work orders live (GitHub, Gitea/Forgejo, a local directory).
//!
//! The outbox performs every forge operation through this interface, so it must be
//! idempotent-friendly: `find_by_key` lets a retried create discover the issue an
//! earlier attempt made. Implementations never retry writes themselves (a blind retry
//! of a create duplicates issues); they classify failures so the outbox can.

pub mod dir;
pub mod gitea;
pub mod github;
pub mod metrics;
mod pacing;
pub mod routing;
pub mod settings;
mod throttle;
mod urls;
pub mod webhook;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ForgeKind};
pub use metrics::ForgeMetrics;
pub use pacing::Pacing;

/// A repository on a forge, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    /// Parses `owner/name`; the message says what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(RepoRef {
                    owner: owner.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("expected a repository as owner/name, got {s:?}")),
        }
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// An issue on a forge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IssueRef {
    pub repo: RepoRef,
    pub number: u64,
    /// Web URL for humans (`html_url`), or a file path for the local directory forge.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    Open,
    Closed,
}

/// Why an issue is closed; GitHub's `state_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Completed,
    NotPlanned,
}

/// A new issue, fully rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueDraft {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

/// What `find_by_key` and `list_work_orders` return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundIssue {
    pub issue: IssueRef,
    pub state: IssueState,
    pub labels: Vec<String>,
    /// The work-order key read from the body's hidden marker.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSpec {
    pub name: String,
    /// Six hex digits, no `#`.
    pub color: String,
    pub description: String,
}

/// How a forge operation failed, as the outbox needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// Worth retrying: 5xx, transport errors, timeouts. `retry_after` when the forge said.
    #[error("transient forge error: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A primary or secondary rate limit: wait at least `retry_after`, then back off.
    #[error("forge rate limit: {reason} (retry after {retry_after:?})")]
    RateLimited {
        reason: String,
        retry_after: Duration,
    },
    /// Retrying will not help (401, 404, 410, 422 …): park the operation with this reason.
    #[error("permanent forge error: {reason}")]
    Permanent { reason: String },
}

impl ForgeError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, ForgeError::Permanent { .. })
    }
}

/// The hidden marker every work-order body carries, so the key → issue mapping can be
/// rebuilt from the forge alone.
pub fn key_marker(key: &str) -> String {
    format!("<!-- triage:key={key} -->")
}

/// Reads the key back from a body's marker (the last one wins if a human pasted another).
pub fn parse_key_marker(body: &str) -> Option<&str> {
    const OPEN: &str = "<!-- triage:key=";
    let start = body.rfind(OPEN)? + OPEN.len();
    let rest = &body[start..];
    let end = rest.find(" -->")?;
    let key = &rest[..end];
    (!key.is_empty()).then_some(key)
}

#[async_trait]
pub trait Forge: Send + Sync {
    /// `github`, `gitea` or `dir`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Makes sure the labels exist (creating missing ones); a no-op where the forge
    /// creates labels on the fly.
    async fn ensure_labels(&self, repo: &RepoRef, labels: &[LabelSpec]) -> Result<(), ForgeError>;

    /// Finds the issue of a work order by its short key label, verifying the hidden
    /// marker client-side (label filters can be wrong: Gitea drops unknown labels).
    /// Open and closed issues are both searched; the most recent match wins.
    async fn find_by_key(
        &self,
        repo: &RepoRef,
        key: &str,
        key_label: &str,
    ) -> Result<Option<FoundIssue>, ForgeError>;

    async fn create(&self, repo: &RepoRef, draft: &IssueDraft) -> Result<IssueRef, ForgeError>;

    async fn comment(&self, issue: &IssueRef, body: &str) -> Result<(), ForgeError>;

    /// Opens or closes; `reason` applies to closing only.
    async fn set_state(
        &self,
        issue: &IssueRef,
        state: IssueState,
        reason: Option<CloseReason>,
    ) -> Result<(), ForgeError>;

    async fn add_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError>;

    async fn remove_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError>;

    /// Every issue in the repository that carries a key marker (all states, all pages):
    /// used by `triage reconcile` after a lost database, never in the steady state.
    async fn list_work_orders(&self, repo: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError>;
}

/// Builds the configured remote forge (GitHub or Gitea) from a loaded configuration.
/// Needs a Tokio runtime. The local-directory forge lives in `forge::dir`.
pub fn from_config(config: &Config, metrics: &ForgeMetrics) -> anyhow::Result<Arc<dyn Forge>> {
    match settings::forge_kind(config)? {
        ForgeKind::Github => Ok(Arc::new(github::GithubForge::new(
            github::GithubSettings::from_config(&config.github)?,
            metrics.clone(),
        )?)),
        ForgeKind::Gitea => Ok(Arc::new(gitea::GiteaForge::new(
            gitea::GiteaSettings::from_config(&config.gitea)?,
            metrics.clone(),
        )?)),
        // `auto` was resolved at load time; here it can only mean "nothing configured".
        ForgeKind::Dir | ForgeKind::Auto => Ok(Arc::new(dir::DirForge::open(&config.forge.dir)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_last_one_wins() {
        let body = format!(
            "hello\n{}\nbye",
            key_marker("prod/pets/deployment/store-front")
        );
        assert_eq!(
            parse_key_marker(&body),
            Some("prod/pets/deployment/store-front")
        );
        let pasted = format!("{}\n{}", key_marker("other"), key_marker("mine"));
        assert_eq!(parse_key_marker(&pasted), Some("mine"));
        assert_eq!(parse_key_marker("no marker"), None);
        assert_eq!(parse_key_marker("<!-- triage:key= -->"), None);
    }

    #[test]
    fn repo_ref_parse_says_what_is_wrong() {
        assert_eq!(
            RepoRef::parse("acme/platform").map(|r| r.to_string()),
            Ok("acme/platform".to_string())
        );
        for bad in ["", "acme", "/x", "acme/", "a/b/c"] {
            let err = RepoRef::parse(bad).unwrap_err();
            assert!(err.contains("owner/name"), "{err}");
        }
    }
}
