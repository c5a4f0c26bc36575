//! GitHub (and GitHub Enterprise Server) issues through octocrab.
//!
//! - Auth: a personal access token, or a GitHub App. As an App, the installation is
//!   looked up per repository (`GET /repos/{o}/{r}/installation`, cached) and octocrab
//!   mints and caches installation tokens, refreshing them 30 s before they expire.
//! - octocrab is built without its retry layer: a blind retry of a create duplicates
//!   issues, so writes are retried by the outbox only, after `find_by_key`. (The one
//!   re-send octocrab does is on 401 with an expired installation token, which GitHub
//!   rejected before doing anything.)
//! - Requests go through octocrab's raw `_get`/`_post`/… so every answer's rate-limit
//!   headers reach the metrics and the throttle; bodies are read into small local
//!   structs that take only the fields Triage needs, so a new or missing GitHub field
//!   elsewhere in the object cannot break parsing.
//! - Mutations are paced (see `pacing`); reads are not.
//! - Never the search API: listing by the key label is strongly consistent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};
use octocrab::Octocrab;
use octocrab::models::InstallationId;
use serde::Deserialize;
use serde_json::json;

use super::metrics::ForgeMetrics;
use super::pacing::{Pacer, Pacing};
use super::throttle::{Throttle, error_message};
use super::urls::encode;
use super::{
    CloseReason, Forge, ForgeError, FoundIssue, IssueDraft, IssueRef, IssueState, LabelSpec,
    RepoRef, parse_key_marker, urls,
};
use crate::config::{GithubConfig, Secret};

const FORGE: &str = "GitHub";
/// GitHub's page size limit for list endpoints.
const PER_PAGE: u32 = 100;

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum GithubCredentials {
    /// A personal access token (classic or fine-grained) or any bearer token.
    Token(Secret),
    /// A GitHub App: its id and PEM private key.
    App {
        app_id: u64,
        private_key_pem: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct GithubSettings {
    /// API base: `None` for api.github.com, `https://HOST/api/v3/` for Enterprise
    /// Server, or a test server.
    pub api_url: Option<String>,
    pub credentials: GithubCredentials,
    pub pacing: Pacing,
    pub request_timeout: Duration,
}

impl GithubSettings {
    /// From a loaded (validated) `[github]` section.
    pub fn from_config(config: &GithubConfig) -> anyhow::Result<Self> {
        let credentials = match (&config.token, config.app_id, &config.private_key) {
            (Some(token), None, _) => GithubCredentials::Token(token.clone()),
            (None, Some(app_id), Some(key)) => GithubCredentials::App {
                app_id,
                private_key_pem: key.clone(),
            },
            _ => anyhow::bail!(
                "github: set either github.token or github.app_id with github.private_key_file"
            ),
        };
        Ok(GithubSettings {
            api_url: config.api_url.clone(),
            credentials,
            pacing: Pacing {
                per_second: config.per_second,
                per_minute: config.per_minute,
                per_hour: config.per_hour,
            },
            request_timeout: config.request_timeout,
        })
    }
}

enum Auth {
    Token(Arc<Octocrab>),
    App {
        app: Box<Octocrab>,
        /// Which installation serves a repository.
        repos: Mutex<HashMap<RepoRef, u64>>,
        /// One client per installation, shared (not cloned: a cloned octocrab client
        /// copies its token cache, and the copy's renewals would be lost).
        installations: Mutex<HashMap<u64, Arc<Octocrab>>>,
    },
}

pub struct GithubForge {
    auth: Auth,
    pacer: Pacer,
    throttle: Throttle,
    metrics: ForgeMetrics,
    timeout: Duration,
    /// Labels known to exist, per repository (lower case: GitHub label names are
    /// case-insensitive), so `ensure_labels` costs nothing after the first time.
    known_labels: Mutex<HashSet<(RepoRef, String)>>,
}

/// One HTTP answer, body read.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

#[derive(Deserialize)]
struct GhIssue {
    number: u64,
    html_url: String,
    state: String,
    body: Option<String>,
    #[serde(default)]
    labels: Vec<GhLabel>,
    /// Present on pull requests, which the issues list mixes in.
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct GhLabel {
    name: String,
}

#[derive(Deserialize)]
struct GhInstallation {
    id: u64,
}

impl GithubForge {
    /// Builds the client. Needs a Tokio runtime (octocrab spawns its dispatcher).
    pub fn new(settings: GithubSettings, metrics: ForgeMetrics) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let mut builder = Octocrab::builder()
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(settings.request_timeout))
            .set_write_timeout(Some(settings.request_timeout));
        if let Some(url) = &settings.api_url {
            builder = builder
                .base_uri(url.as_str())
                .map_err(|e| anyhow::anyhow!("github.api_url {url:?} is not usable: {e}"))?;
        }
        let auth = match &settings.credentials {
            GithubCredentials::Token(token) => Auth::Token(Arc::new(
                builder
                    .personal_token(token.expose().to_string())
                    .build()
                    .map_err(|e| anyhow::anyhow!("cannot build the GitHub client: {e}"))?,
            )),
            GithubCredentials::App {
                app_id,
                private_key_pem,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "github.private_key is not an RSA private key in PEM format: {e}"
                        )
                    })?;
                Auth::App {
                    app: Box::new(
                        builder.app((*app_id).into(), key).build().map_err(|e| {
                            anyhow::anyhow!("cannot build the GitHub App client: {e}")
                        })?,
                    ),
                    repos: Mutex::new(HashMap::new()),
                    installations: Mutex::new(HashMap::new()),
                }
            }
        };
        Ok(GithubForge {
            auth,
            pacer: Pacer::new(settings.pacing),
            throttle: Throttle::default(),
            metrics,
            timeout: settings.request_timeout,
            known_labels: Mutex::new(HashSet::new()),
        })
    }

    /// The client that may act on `repo`.
    async fn client(&self, repo: &RepoRef) -> Result<Arc<Octocrab>, ForgeError> {
        let (app, repos, installations) = match &self.auth {
            Auth::Token(crab) => return Ok(crab.clone()),
            Auth::App {
                app,
                repos,
                installations,
            } => (app, repos, installations),
        };
        let known = lock(repos).get(repo).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let path = format!("/repos/{}/installation", repo_path(repo));
                let reply = self
                    .send(
                        app,
                        "installation",
                        Method::GET,
                        &path,
                        None,
                        &[StatusCode::NOT_FOUND],
                    )
                    .await
                    .map_err(|e| match e {
                        ForgeError::Permanent { reason } => ForgeError::Permanent {
                            reason: format!(
                                "GitHub refused the App's credentials (check github.app_id and \
                                 the private key): {reason}"
                            ),
                        },
                        other => other,
                    })?;
                if reply.status == StatusCode::NOT_FOUND {
                    return Err(ForgeError::Permanent {
                        reason: format!(
                            "the GitHub App is not installed on {repo} (GET {path} answered 404)"
                        ),
                    });
                }
                let installation: GhInstallation = parse(&reply, "installation")?;
                lock(repos).insert(repo.clone(), installation.id);
                installation.id
            }
        };
        if let Some(crab) = lock(installations).get(&id) {
            return Ok(crab.clone());
        }
        let crab =
            Arc::new(
                app.installation(InstallationId(id))
                    .map_err(|e| ForgeError::Permanent {
                        reason: format!("cannot act as GitHub App installation {id}: {e}"),
                    })?,
            );
        Ok(lock(installations).entry(id).or_insert(crab).clone())
    }

    /// Forgets a repository's installation, so the next call looks it up again (the App
    /// may have been reinstalled under a new id).
    fn forget_installation(&self, repo: &RepoRef) {
        if let Auth::App {
            repos,
            installations,
            ..
        } = &self.auth
            && let Some(id) = lock(repos).remove(repo)
        {
            lock(installations).remove(&id);
        }
    }

    /// One request on `repo`'s client; see [`Self::send`].
    async fn call(
        &self,
        repo: &RepoRef,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<Reply, ForgeError> {
        let crab = self.client(repo).await?;
        let result = self
            .send(&crab, operation, method, path, body, accept)
            .await;
        if matches!(&result, Err(ForgeError::Permanent { reason }) if reason.contains("installation token"))
        {
            self.forget_installation(repo);
        }
        result
    }

    /// Sends one request: waits for pacing (mutations only), refuses while rate
    /// limited, records quota headers, and classifies failures. Statuses in `accept`
    /// count as answers the caller inspects, not failures.
    async fn send(
        &self,
        crab: &Octocrab,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<Reply, ForgeError> {
        let result = self
            .send_unclassified(crab, method, path, body, accept)
            .await;
        self.metrics
            .count("github", operation, result.as_ref().map(|_| ()));
        result
    }

    async fn send_unclassified(
        &self,
        crab: &Octocrab,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<Reply, ForgeError> {
        self.throttle.check(FORGE)?;
        if method != Method::GET {
            self.pacer.ready().await;
            self.throttle.check(FORGE)?;
        }
        let exchange = async {
            let response = if method == Method::GET {
                crab._get(path).await
            } else if method == Method::POST {
                crab._post(path, body).await
            } else if method == Method::PATCH {
                crab._patch(path, body).await
            } else {
                crab._delete(path, body).await
            }?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = crab.body_to_string(response).await?;
            Ok::<_, octocrab::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        let reply = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => {
                return Err(ForgeError::Transient {
                    reason: format!(
                        "{FORGE} did not answer {method} {path} within {:?}",
                        self.timeout
                    ),
                    retry_after: None,
                });
            }
            Ok(Err(e)) => return Err(self.client_error(e)),
            Ok(Ok(reply)) => reply,
        };
        self.metrics.observe_quota("github", &reply.headers);
        if reply.status.is_success() || accept.contains(&reply.status) {
            self.throttle.on_success(&reply.headers);
            Ok(reply)
        } else {
            let message = error_message(reply.status, reply.body.as_bytes());
            Err(self
                .throttle
                .on_failure(FORGE, reply.status, &reply.headers, &message))
        }
    }

    /// octocrab's own errors: transport problems, or a failed installation-token
    /// request (the only place octocrab itself maps a GitHub status).
    fn client_error(&self, error: octocrab::Error) -> ForgeError {
        match error {
            octocrab::Error::GitHub { source, .. } => {
                let headers = source.headers.clone().unwrap_or_default();
                let message = format!("installation token: {}", source.message);
                self.throttle
                    .on_failure(FORGE, source.status_code, &headers, &message)
            }
            octocrab::Error::Hyper { .. }
            | octocrab::Error::Service { .. }
            | octocrab::Error::Http { .. } => ForgeError::Transient {
                reason: format!("cannot reach {FORGE}: {error}"),
                retry_after: None,
            },
            other => ForgeError::Permanent {
                reason: format!("{FORGE} client error: {other}"),
            },
        }
    }

    /// Every item of a paginated list, following `Link: rel="next"`; `stop` ends early.
    async fn list_issues(
        &self,
        repo: &RepoRef,
        operation: &'static str,
        query: &str,
        mut stop: impl FnMut(GhIssue) -> bool,
    ) -> Result<(), ForgeError> {
        let mut next = Some(format!(
            "/repos/{}/issues?{query}&per_page={PER_PAGE}",
            repo_path(repo)
        ));
        while let Some(path) = next.take() {
            let reply = self
                .call(repo, operation, Method::GET, &path, None, &[])
                .await?;
            let page: Vec<GhIssue> = parse(&reply, "issue list")?;
            for issue in page {
                if issue.pull_request.is_none() && stop(issue) {
                    return Ok(());
                }
            }
            next = urls::next_link(&reply.headers).and_then(|url| urls::path_and_query(&url));
        }
        Ok(())
    }

    fn issue_path(issue: &IssueRef) -> String {
        format!("/repos/{}/issues/{}", repo_path(&issue.repo), issue.number)
    }
}

#[async_trait]
impl Forge for GithubForge {
    fn kind(&self) -> &'static str {
        "github"
    }

    async fn ensure_labels(&self, repo: &RepoRef, labels: &[LabelSpec]) -> Result<(), ForgeError> {
        let known =
            |name: &str| lock(&self.known_labels).contains(&(repo.clone(), name.to_lowercase()));
        if labels.iter().all(|l| known(&l.name)) {
            return Ok(());
        }
        // One read of the repository's labels, then create only what is missing.
        let mut existing = HashSet::new();
        let mut next = Some(format!(
            "/repos/{}/labels?per_page={PER_PAGE}",
            repo_path(repo)
        ));
        while let Some(path) = next.take() {
            let reply = self
                .call(repo, "list_labels", Method::GET, &path, None, &[])
                .await?;
            let page: Vec<GhLabel> = parse(&reply, "label list")?;
            existing.extend(page.into_iter().map(|l| l.name.to_lowercase()));
            next = urls::next_link(&reply.headers).and_then(|url| urls::path_and_query(&url));
        }
        for label in labels {
            let lower = label.name.to_lowercase();
            if !existing.contains(&lower) {
                let body = json!({
                    "name": label.name,
                    "color": label.color.trim_start_matches('#'),
                    "description": label.description,
                });
                let path = format!("/repos/{}/labels", repo_path(repo));
                let reply = self
                    .call(
                        repo,
                        "create_label",
                        Method::POST,
                        &path,
                        Some(&body),
                        &[StatusCode::UNPROCESSABLE_ENTITY],
                    )
                    .await?;
                // Created by someone else since the listing: fine. Any other 422 is not.
                if reply.status == StatusCode::UNPROCESSABLE_ENTITY
                    && !reply.body.contains("already_exists")
                {
                    return Err(ForgeError::Permanent {
                        reason: format!(
                            "{FORGE} answered {}: {}",
                            reply.status,
                            error_message(reply.status, reply.body.as_bytes())
                        ),
                    });
                }
            }
            lock(&self.known_labels).insert((repo.clone(), lower));
        }
        Ok(())
    }

    async fn find_by_key(
        &self,
        repo: &RepoRef,
        key: &str,
        key_label: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        let query = format!(
            "state=all&labels={}&sort=created&direction=desc",
            encode(key_label)
        );
        let mut found = None;
        self.list_issues(repo, "find_by_key", &query, |issue| {
            // The label could have been put on by hand: the marker decides.
            if issue.body.as_deref().and_then(parse_key_marker) == Some(key) {
                found = Some(found_issue(repo, issue));
                true
            } else {
                false
            }
        })
        .await?;
        Ok(found)
    }

    async fn create(&self, repo: &RepoRef, draft: &IssueDraft) -> Result<IssueRef, ForgeError> {
        let body = json!({
            "title": draft.title,
            "body": draft.body,
            "labels": draft.labels,
        });
        let path = format!("/repos/{}/issues", repo_path(repo));
        let reply = self
            .call(repo, "create", Method::POST, &path, Some(&body), &[])
            .await?;
        let issue: GhIssue = parse(&reply, "created issue")?;
        for label in &draft.labels {
            lock(&self.known_labels).insert((repo.clone(), label.to_lowercase()));
        }
        Ok(IssueRef {
            repo: repo.clone(),
            number: issue.number,
            url: issue.html_url,
        })
    }

    async fn comment(&self, issue: &IssueRef, body: &str) -> Result<(), ForgeError> {
        let path = format!("{}/comments", Self::issue_path(issue));
        self.call(
            &issue.repo,
            "comment",
            Method::POST,
            &path,
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
        reason: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        // `state_reason` only ever goes together with the state it explains.
        let body = match (state, reason) {
            (IssueState::Open, _) => json!({ "state": "open", "state_reason": "reopened" }),
            (IssueState::Closed, Some(CloseReason::NotPlanned)) => {
                json!({ "state": "closed", "state_reason": "not_planned" })
            }
            (IssueState::Closed, _) => json!({ "state": "closed", "state_reason": "completed" }),
        };
        self.call(
            &issue.repo,
            "set_state",
            Method::PATCH,
            &Self::issue_path(issue),
            Some(&body),
            &[],
        )
        .await?;
        Ok(())
    }

    async fn add_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        // POST adds; PATCH with `labels` would replace every label a human put on.
        let path = format!("{}/labels", Self::issue_path(issue));
        self.call(
            &issue.repo,
            "add_labels",
            Method::POST,
            &path,
            Some(&json!({ "labels": labels })),
            &[],
        )
        .await?;
        Ok(())
    }

    async fn remove_labels(&self, issue: &IssueRef, labels: &[String]) -> Result<(), ForgeError> {
        for label in labels {
            let path = format!("{}/labels/{}", Self::issue_path(issue), encode(label));
            let reply = self
                .call(
                    &issue.repo,
                    "remove_label",
                    Method::DELETE,
                    &path,
                    None,
                    &[StatusCode::NOT_FOUND],
                )
                .await?;
            // 404 "Label does not exist": it was not on the issue, which is the goal.
            // A 404 for the issue itself is a real error.
            if reply.status == StatusCode::NOT_FOUND {
                let message = error_message(reply.status, reply.body.as_bytes());
                if !message.contains("Label does not exist") {
                    return Err(ForgeError::Permanent {
                        reason: format!("{FORGE} answered {}: {message}", reply.status),
                    });
                }
            }
        }
        Ok(())
    }

    async fn list_work_orders(&self, repo: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        let mut out = Vec::new();
        self.list_issues(
            repo,
            "list_work_orders",
            "state=all&sort=created&direction=desc",
            |issue| {
                if issue.body.as_deref().and_then(parse_key_marker).is_some() {
                    out.push(found_issue(repo, issue));
                }
                false
            },
        )
        .await?;
        Ok(out)
    }
}

fn found_issue(repo: &RepoRef, issue: GhIssue) -> FoundIssue {
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
    // An unexpected body from a 2xx is not going to change on retry.
    serde_json::from_str(&reply.body).map_err(|e| ForgeError::Permanent {
        reason: format!("{FORGE} sent an unreadable {what}: {e}"),
    })
}

fn repo_path(repo: &RepoRef) -> String {
    format!("{}/{}", encode(&repo.owner), encode(&repo.name))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
