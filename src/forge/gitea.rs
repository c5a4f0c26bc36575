//! Gitea and Forgejo issues through their v1 REST API (reqwest).
//!
//! Differences from GitHub this client absorbs:
//! - Issues take label **IDs**. Names map to IDs through a per-repository cache, read
//!   once and refreshed when a name is missing; missing labels are created (name and
//!   color) before use.
//! - The label filter of the issue list silently drops names the repository does not
//!   know, and without any known name the filter vanishes and every issue comes back.
//!   So `find_by_key` first checks that the key label exists (an unknown label means
//!   no issue carries it), filters by it, and still checks every body's marker.
//! - Page size is capped by the server (`MAX_RESPONSE_ITEMS`, default 50): pages are
//!   walked by number while the answer's `Link` header offers a next one.
//! - No `state_reason`; closing is a plain state change.
//!
//! Gitea has no API rate limits of its own; a proxy in front may answer 429, which is
//! classified like GitHub's limits. Mutations are not paced.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, StatusCode};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use super::metrics::ForgeMetrics;
use super::throttle::{Throttle, error_message};
use super::urls::encode;
use super::{
    CloseReason, Forge, ForgeError, FoundIssue, IssueDraft, IssueRef, IssueState, LabelSpec,
    RepoRef, parse_key_marker, urls,
};
use crate::config::{GiteaConfig, Secret};

const FORGE: &str = "Gitea";
/// What we ask for; the server may give fewer (its `MAX_RESPONSE_ITEMS`).
const PAGE_LIMIT: u32 = 50;
/// Color of labels created on the fly for issues (GitHub's default).
const DEFAULT_LABEL_COLOR: &str = "ededed";

#[derive(Debug, Clone)]
pub struct GiteaSettings {
    /// Server base URL (`https://gitea.example.com`, `https://example.com/git`); the
    /// API is under `/api/v1`.
    pub url: String,
    pub token: Secret,
    pub request_timeout: Duration,
}

impl GiteaSettings {
    /// From a loaded (validated) `[gitea]` section.
    pub fn from_config(config: &GiteaConfig) -> anyhow::Result<Self> {
        let (Some(url), Some(token)) = (&config.url, &config.token) else {
            anyhow::bail!("gitea: gitea.url and gitea.token are required");
        };
        Ok(GiteaSettings {
            url: url.clone(),
            token: token.clone(),
            request_timeout: config.request_timeout,
        })
    }
}

pub struct GiteaForge {
    http: reqwest::Client,
    /// `https://host[/sub]/api/v1`, no trailing slash.
    api: String,
    throttle: Throttle,
    metrics: ForgeMetrics,
    /// Label name → id per repository.
    labels: Mutex<HashMap<RepoRef, HashMap<String, u64>>>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

#[derive(Deserialize)]
struct GtIssue {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    labels: Vec<GtLabel>,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct GtLabel {
    id: u64,
    name: String,
}

impl GiteaForge {
    pub fn new(settings: GiteaSettings, metrics: ForgeMetrics) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let mut auth = HeaderValue::from_str(&format!("token {}", settings.token.expose()))
            .map_err(|_| {
                anyhow::anyhow!("gitea.token contains characters not allowed in a header")
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("triage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(settings.request_timeout)
            // A redirect to another host would carry the token along.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the Gitea client: {e}"))?;
        let base = settings.url.trim_end_matches('/');
        let api = if base.ends_with("/api/v1") {
            base.to_string()
        } else {
            format!("{base}/api/v1")
        };
        Ok(GiteaForge {
            http,
            api,
            throttle: Throttle::default(),
            metrics,
            labels: Mutex::new(HashMap::new()),
        })
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<Reply, ForgeError> {
        let result = self.send(method, path, body, accept).await;
        self.metrics
            .count("gitea", operation, result.as_ref().map(|_| ()));
        result
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<Reply, ForgeError> {
        self.throttle.check(FORGE)?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.api));
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| {
            // Without the URL: it is ours anyway, and errors end up in logs.
            let e = e.without_url();
            if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
                ForgeError::Transient {
                    reason: format!("cannot reach {FORGE} for {method} {path}: {e}"),
                    retry_after: None,
                }
            } else {
                ForgeError::Permanent {
                    reason: format!("{FORGE} request {method} {path} failed: {e}"),
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        self.metrics.observe_quota("gitea", &headers);
        if status.is_success() || accept.contains(&status) {
            self.throttle.on_success(&headers);
            Ok(Reply {
                status,
                headers,
                body,
            })
        } else {
            let message = error_message(status, &body);
            Err(self.throttle.on_failure(FORGE, status, &headers, &message))
        }
    }

    /// Every page of a list endpoint (`path` has a query already).
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        mut each: impl FnMut(T),
    ) -> Result<(), ForgeError> {
        for page in 1u32.. {
            let reply = self
                .call(
                    operation,
                    Method::GET,
                    &format!("{path}&page={page}&limit={PAGE_LIMIT}"),
                    None,
                    &[],
                )
                .await?;
            let items: Vec<T> = parse(&reply, "list")?;
            let empty = items.is_empty();
            items.into_iter().for_each(&mut each);
            if empty || urls::next_link(&reply.headers).is_none() {
                break;
            }
        }
        Ok(())
    }

    /// The repository's labels, from the cache unless `refresh`.
    async fn label_ids(
        &self,
        repo: &RepoRef,
        refresh: bool,
    ) -> Result<HashMap<String, u64>, ForgeError> {
        if !refresh && let Some(map) = lock(&self.labels).get(repo) {
            return Ok(map.clone());
        }
        let mut map = HashMap::new();
        self.pages(
            "list_labels",
            &format!("/repos/{}/labels?", repo_path(repo)),
            |l: GtLabel| {
                map.insert(l.name, l.id);
            },
        )
        .await?;
        lock(&self.labels).insert(repo.clone(), map.clone());
        Ok(map)
    }

    /// IDs for `names`, creating missing labels (with `specs`' color and description
    /// when given, else a neutral color).
    async fn ensure_ids(
        &self,
        repo: &RepoRef,
        names: &[&str],
        specs: &[LabelSpec],
    ) -> Result<Vec<u64>, ForgeError> {
        let mut map = self.label_ids(repo, false).await?;
        if names.iter().any(|n| !map.contains_key(*n)) {
            map = self.label_ids(repo, true).await?;
        }
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let id = match map.get(*name) {
                Some(id) => *id,
                None => {
                    let spec = specs.iter().find(|s| s.name == *name);
                    let color =
                        spec.map_or(DEFAULT_LABEL_COLOR, |s| s.color.trim_start_matches('#'));
                    let body = json!({
                        "name": name,
                        "color": format!("#{color}"),
                        "description": spec.map_or("", |s| s.description.as_str()),
                    });
                    let reply = self
                        .call(
                            "create_label",
                            Method::POST,
                            &format!("/repos/{}/labels", repo_path(repo)),
                            Some(&body),
                            &[],
                        )
                        .await?;
                    let label: GtLabel = parse(&reply, "created label")?;
                    map.insert(label.name, label.id);
                    lock(&self.labels).insert(repo.clone(), map.clone());
                    label.id
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    async fn list_issues(
        &self,
        repo: &RepoRef,
        operation: &'static str,
        label: Option<&str>,
        mut each: impl FnMut(GtIssue),
    ) -> Result<(), ForgeError> {
        let mut path = format!("/repos/{}/issues?state=all&type=issues", repo_path(repo));
        if let Some(label) = label {
            path.push_str(&format!("&labels={}", encode(label)));
        }
        self.pages(operation, &path, |issue: GtIssue| {
            if issue.pull_request.is_none() {
                each(issue);
            }
        })
        .await
    }

    fn issue_path(issue: &IssueRef) -> String {
        format!("/repos/{}/issues/{}", repo_path(&issue.repo), issue.number)
    }
}

#[async_trait]
impl Forge for GiteaForge {
    fn kind(&self) -> &'static str {
        "gitea"
    }

    async fn ensure_labels(&self, repo: &RepoRef, labels: &[LabelSpec]) -> Result<(), ForgeError> {
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        self.ensure_ids(repo, &names, labels).await?;
        Ok(())
    }

    async fn find_by_key(
        &self,
        repo: &RepoRef,
        key: &str,
        key_label: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        let mut known = self.label_ids(repo, false).await?;
        if !known.contains_key(key_label) {
            known = self.label_ids(repo, true).await?;
        }
        if !known.contains_key(key_label) {
            // No such label, so no issue carries it; listing with it would list all.
            return Ok(None);
        }
        let mut best: Option<FoundIssue> = None;
        self.list_issues(repo, "find_by_key", Some(key_label), |issue| {
            // The marker decides: the filter may have vanished (label deleted since).
            if issue.body.as_deref().and_then(parse_key_marker) == Some(key)
                && best.as_ref().is_none_or(|b| b.issue.number < issue.number)
            {
                best = Some(found_issue(repo, issue));
            }
        })
        .await?;
        Ok(best)
    }

    async fn create(&self, repo: &RepoRef, draft: &IssueDraft) -> Result<IssueRef, ForgeError> {
        let names: Vec<&str> = draft.labels.iter().map(String::as_str).collect();
        let ids = self.ensure_ids(repo, &names, &[]).await?;
        let body = json!({ "title": draft.title, "body": draft.body, "labels": ids });
        let reply = self
            .call(
                "create",
                Method::POST,
                &format!("/repos/{}/issues", repo_path(repo)),
                Some(&body),
                &[],
            )
            .await?;
        let issue: GtIssue = parse(&reply, "created issue")?;
        Ok(IssueRef {
            repo: repo.clone(),
            number: issue.number,
            url: issue.html_url,
        })
    }

    async fn comment(&self, issue: &IssueRef, body: &str) -> Result<(), ForgeError> {
        self.call(
            "comment",
            Method::POST,
            &format!("{}/comments", Self::issue_path(issue)),
            Some(&json!({ "body": body })),
            &[],
        )
        .await?;
        Ok(())
    }

    async fn set_state(
        &self,
        issue: &IssueRef,
        state: IssueState,
        _reason: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        let state = match state {
            IssueState::Open => "open",
            IssueState::Closed => "closed",
        };
        self.call(
            "set_state",
            Method::PATCH,
            &Self::issue_path(issue),
            Some(&json!({ "state": state })),
            &[],
        )
        .await?;
        Ok(())
    }

    async fn add_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = labels.iter().map(String::as_str).collect();
        let ids = self.ensure_ids(&issue.repo, &names, &[]).await?;
        self.call(
            "add_labels",
            Method::POST,
            &format!("{}/labels", Self::issue_path(issue)),
            Some(&json!({ "labels": ids })),
            &[],
        )
        .await?;
        Ok(())
    }

    async fn remove_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let mut map = self.label_ids(&issue.repo, false).await?;
        if labels.iter().any(|l| !map.contains_key(l)) {
            map = self.label_ids(&issue.repo, true).await?;
        }
        for label in labels {
            // A label the repository does not have is on no issue.
            let Some(id) = map.get(label) else { continue };
            let reply = self
                .call(
                    "remove_label",
                    Method::DELETE,
                    &format!("{}/labels/{id}", Self::issue_path(issue)),
                    None,
                    &[StatusCode::UNPROCESSABLE_ENTITY],
                )
                .await?;
            // 422: the label was deleted from the repository meanwhile.
            if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
                lock(&self.labels).remove(&issue.repo);
            }
        }
        Ok(())
    }

    async fn list_work_orders(&self, repo: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        let mut out = Vec::new();
        self.list_issues(repo, "list_work_orders", None, |issue| {
            if issue.body.as_deref().and_then(parse_key_marker).is_some() {
                out.push(found_issue(repo, issue));
            }
        })
        .await?;
        Ok(out)
    }
}

fn found_issue(repo: &RepoRef, issue: GtIssue) -> FoundIssue {
    let key = issue
        .body
        .as_deref()
        .and_then(parse_key_marker)
        .unwrap_or_default()
        .to_string();
    FoundIssue {
        issue: IssueRef {
            repo: repo.clone(),
            number: issue.number,
            url: issue.html_url,
        },
        state: if issue.state == "closed" {
            IssueState::Closed
        } else {
            IssueState::Open
        },
        labels: issue.labels.into_iter().map(|l| l.name).collect(),
        key,
    }
}

fn parse<T: serde::de::DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, ForgeError> {
    serde_json::from_slice(&reply.body).map_err(|e| ForgeError::Permanent {
        reason: format!("{FORGE} sent an unreadable {what} ({}): {e}", reply.status),
    })
}

fn repo_path(repo: &RepoRef) -> String {
    format!("{}/{}", encode(&repo.owner), encode(&repo.name))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
