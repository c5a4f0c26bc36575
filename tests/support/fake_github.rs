//! A fake GitHub REST API (issues, labels, comments, App installations) on loopback.
//!
//! Stateful and strict like api.github.com, so the real octocrab client can be tested
//! against it. Response bodies follow real GitHub responses (the shapes of octocrab's
//! `tests/resources/*.json`; octocrab's typed models deserialize them).
//!
//! # API (stable; other test files rely on it)
//!
//! ```ignore
//! let gh = FakeGithub::start().await;      // 127.0.0.1, random port
//! gh.base_url()                             // "http://127.0.0.1:PORT" (octocrab base_uri)
//! gh.token()                                // the one valid personal access token
//! gh.create_repo("acme/platform");          // unknown repositories answer 404
//! gh.seed_issue("acme/platform", "title", "body", &["label"], "open") -> number
//! gh.add_pull_request("acme/platform", "title", "body", &["label"]) -> number
//! gh.issues("acme/platform") -> Vec<FakeIssue> // issues only, by number
//! gh.set_issue_state("acme/platform", 1, "closed", Some("not_planned")); // as a human would
//! gh.add_issue_label("acme/platform", 1, "triage/mute");                  // as a human would
//! gh.labels("acme/platform") -> Vec<FakeLabel>
//! gh.set_issues_disabled("acme/platform", true);   // 410 on issue endpoints
//! gh.set_outage(Some(Fault::Status(502)));  // every mutation fails until None
//! gh.fail_next(2, Fault::SecondaryRateLimit { retry_after_secs: 3 }); // next 2 requests
//! gh.fail_next_mutations(1, Fault::ApplyThenStatus(502)); // next mutation
//! gh.set_content_limit(Some(80));           // real secondary limit: N mutations/minute
//! gh.request_log() -> Vec<LoggedRequest>    // method, path (with query), at, status
//! gh.enable_app(APP_ID, public_key_pem);    // accept RS256 App JWTs signed by that key
//! gh.install_app("acme/platform") -> installation id
//! gh.set_installation_token_ttl(Duration::from_secs(3600));
//! gh.minted_tokens() -> usize               // installation tokens issued so far
//! ```
//!
//! Faults apply to requests under `/repos/` and `/repositories/` (not to the App's
//! installation lookup and token endpoints); a faulted request changes nothing, except
//! `ApplyThenStatus`, which performs the change and then answers the error (a lost
//! answer). Authentication is checked before faults, as GitHub does.
//!
//! Behaviour copied from GitHub: `Authorization: Bearer|token <t>` required (401
//! `Bad credentials` / `Requires authentication`); title ≤ 256, body ≤ 65 536 and label
//! names ≤ 50 characters (422 `Validation Failed` with GitHub's `errors`); labels
//! created on the fly by issue create and label add; issue lists filter by `state`
//! (default open) and `labels` (AND, case-insensitive), sort by `created`/`updated`,
//! mix in pull requests (items with `pull_request`), paginate with `per_page`
//! (default 30, max 100) and `Link` headers pointing at `/repositories/{id}/issues`;
//! `PATCH` sets `state` and `state_reason` (only with a state); removing a label not on
//! the issue is 404 `Label does not exist`; disabled issues answer 410; rate-limit
//! headers on every response.

#![allow(dead_code)]
// Handlers return ready HTTP responses as their errors; size is no concern in a fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use jiff::Timestamp;
use octocrab::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

pub const TOKEN: &str = "ghp_FakeGithubPersonalToken0123456789abcd";
const DOCS: &str = "https://docs.github.com/rest";

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a GitHub-style JSON error body.
    Status(u16),
    /// 403 with `retry-after` and GitHub's secondary-rate-limit message.
    SecondaryRateLimit { retry_after_secs: u64 },
    /// 403 with the secondary-rate-limit message and no `retry-after`.
    SecondaryRateLimitNoRetryAfter,
    /// 429 with `retry-after`.
    TooManyRequests { retry_after_secs: u64 },
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` this far ahead.
    PrimaryRateLimit { reset_in_secs: u64 },
    /// Perform the request, then answer this status instead of the result.
    ApplyThenStatus(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    pub state_reason: Option<String>,
    /// Comment bodies, oldest first.
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLabel {
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// When the request arrived.
    pub at: Instant,
    pub status: u16,
}

impl LoggedRequest {
    pub fn is_mutation(&self) -> bool {
        self.method != "GET"
    }
}

pub struct FakeGithub {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Inner {
    base: String,
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    outage: Option<Fault>,
    fail_next: (usize, Option<Fault>),
    fail_next_mutations: (usize, Option<Fault>),
    content_limit: Option<u32>,
    recent_mutations: Vec<Instant>,
    log: Vec<LoggedRequest>,
    app: Option<App>,
    tokens: BTreeMap<String, (u64, Timestamp)>,
    token_ttl: Duration,
    minted: usize,
    rate_used: u64,
    rate_reset: i64,
}

struct App {
    id: u64,
    key: DecodingKey,
    installations: BTreeMap<String, u64>,
}

struct Repo {
    id: u64,
    full_name: String,
    issues: Vec<Issue>,
    labels: Vec<Label>,
    issues_disabled: bool,
    next_number: u64,
}

struct Issue {
    id: u64,
    number: u64,
    title: String,
    body: Option<String>,
    labels: Vec<String>,
    state: String,
    state_reason: Option<String>,
    comments: Vec<Comment>,
    pull_request: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    closed_at: Option<Timestamp>,
}

struct Comment {
    id: u64,
    body: String,
    created_at: Timestamp,
}

#[derive(Clone)]
struct Label {
    id: u64,
    name: String,
    color: String,
    description: Option<String>,
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    User,
    Installation(u64),
    App,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap()
}

impl FakeGithub {
    pub async fn start() -> FakeGithub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Inner {
            base: format!("http://{addr}"),
            repos: BTreeMap::new(),
            next_id: 1000,
            outage: None,
            fail_next: (0, None),
            fail_next_mutations: (0, None),
            content_limit: None,
            recent_mutations: Vec::new(),
            log: Vec::new(),
            app: None,
            tokens: BTreeMap::new(),
            token_ttl: Duration::from_secs(3600),
            minted: 0,
            rate_used: 0,
            rate_reset: Timestamp::now().as_second() + 3600,
        }));
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/issues",
                get(list_issues).post(create_issue),
            )
            .route("/repositories/{id}/issues", get(list_issues_by_id))
            .route("/repositories/{id}/labels", get(list_labels_by_id))
            .route(
                "/repos/{owner}/{repo}/issues/{number}",
                get(get_issue).patch(update_issue),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(list_comments).post(create_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/labels",
                get(issue_labels).post(add_issue_labels),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/labels/{name}",
                delete(remove_issue_label),
            )
            .route(
                "/repos/{owner}/{repo}/labels",
                get(list_labels).post(create_label),
            )
            .route("/repos/{owner}/{repo}/installation", get(repo_installation))
            .route(
                "/app/installations/{id}/access_tokens",
                post(installation_token),
            )
            .fallback(|| async { gh_error(StatusCode::NOT_FOUND, "Not Found") })
            .layer(middleware::from_fn_with_state(state.clone(), gatekeeper))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeGithub {
            addr,
            state,
            server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> String {
        TOKEN.to_string()
    }

    pub fn create_repo(&self, full_name: &str) {
        let mut s = lock(&self.state);
        let id = s.id();
        s.repos.insert(
            full_name.to_lowercase(),
            Repo {
                id,
                full_name: full_name.to_string(),
                issues: Vec::new(),
                labels: Vec::new(),
                issues_disabled: false,
                next_number: 1,
            },
        );
    }

    /// Adds an issue directly (no request logged), creating its labels.
    pub fn seed_issue(
        &self,
        repo: &str,
        title: &str,
        body: &str,
        labels: &[&str],
        state: &str,
    ) -> u64 {
        let mut s = lock(&self.state);
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        s.ensure_repo_labels(repo, &labels);
        let id = s.id();
        let r = s
            .repos
            .get_mut(&repo.to_lowercase())
            .expect("create_repo first");
        let number = r.next_number;
        r.next_number += 1;
        r.issues.push(Issue {
            id,
            number,
            title: title.into(),
            body: Some(body.into()),
            labels,
            state: state.into(),
            state_reason: (state == "closed").then(|| "completed".into()),
            comments: Vec::new(),
            pull_request: false,
            created_at: now(),
            updated_at: now(),
            closed_at: (state == "closed").then(now),
        });
        number
    }

    /// A pull request: the issues list returns it too, with a `pull_request` object.
    pub fn add_pull_request(&self, repo: &str, title: &str, body: &str, labels: &[&str]) -> u64 {
        let number = self.seed_issue(repo, title, body, labels, "open");
        let mut s = lock(&self.state);
        let r = s.repos.get_mut(&repo.to_lowercase()).unwrap();
        r.issues.last_mut().unwrap().pull_request = true;
        number
    }

    /// Closes or reopens an issue directly, as a human in the web UI would.
    pub fn set_issue_state(&self, repo: &str, number: u64, state: &str, reason: Option<&str>) {
        let mut s = lock(&self.state);
        let r = s
            .repos
            .get_mut(&repo.to_lowercase())
            .expect("create_repo first");
        let issue = r
            .issues
            .iter_mut()
            .find(|i| i.number == number)
            .expect("no such issue");
        issue.closed_at = (state == "closed").then(now);
        issue.state = state.to_string();
        issue.state_reason = reason.map(str::to_string);
        issue.updated_at = now();
    }

    /// Adds a label directly (creating it), as a human would.
    pub fn add_issue_label(&self, repo: &str, number: u64, label: &str) {
        let mut s = lock(&self.state);
        s.ensure_repo_labels(repo, &[label.to_string()]);
        let r = s.repos.get_mut(&repo.to_lowercase()).unwrap();
        let issue = r
            .issues
            .iter_mut()
            .find(|i| i.number == number)
            .expect("no such issue");
        if !issue.labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
            issue.labels.push(label.to_string());
        }
    }

    pub fn issues(&self, repo: &str) -> Vec<FakeIssue> {
        let s = lock(&self.state);
        let Some(r) = s.repos.get(&repo.to_lowercase()) else {
            return Vec::new();
        };
        r.issues
            .iter()
            .filter(|i| !i.pull_request)
            .map(|i| FakeIssue {
                number: i.number,
                title: i.title.clone(),
                body: i.body.clone().unwrap_or_default(),
                labels: i.labels.clone(),
                state: i.state.clone(),
                state_reason: i.state_reason.clone(),
                comments: i.comments.iter().map(|c| c.body.clone()).collect(),
            })
            .collect()
    }

    pub fn labels(&self, repo: &str) -> Vec<FakeLabel> {
        let s = lock(&self.state);
        s.repos
            .get(&repo.to_lowercase())
            .map(|r| {
                r.labels
                    .iter()
                    .map(|l| FakeLabel {
                        name: l.name.clone(),
                        color: l.color.clone(),
                        description: l.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_issues_disabled(&self, repo: &str, disabled: bool) {
        if let Some(r) = lock(&self.state).repos.get_mut(&repo.to_lowercase()) {
            r.issues_disabled = disabled;
        }
    }

    pub fn set_outage(&self, fault: Option<Fault>) {
        lock(&self.state).outage = fault;
    }

    pub fn fail_next(&self, n: usize, fault: Fault) {
        lock(&self.state).fail_next = (n, Some(fault));
    }

    pub fn fail_next_mutations(&self, n: usize, fault: Fault) {
        lock(&self.state).fail_next_mutations = (n, Some(fault));
    }

    /// Enforce GitHub's content-creation limit: more than `n` mutations within a minute
    /// get the secondary-rate-limit 403 with `retry-after: 60`.
    pub fn set_content_limit(&self, per_minute: Option<u32>) {
        lock(&self.state).content_limit = per_minute;
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.state).log.clone()
    }

    pub fn enable_app(&self, app_id: u64, public_key_pem: &str) {
        lock(&self.state).app = Some(App {
            id: app_id,
            key: DecodingKey::from_rsa_pem(public_key_pem.as_bytes()).unwrap(),
            installations: BTreeMap::new(),
        });
    }

    pub fn install_app(&self, repo: &str) -> u64 {
        let mut s = lock(&self.state);
        let id = s.id();
        s.app
            .as_mut()
            .expect("enable_app first")
            .installations
            .insert(repo.to_lowercase(), id);
        id
    }

    pub fn set_installation_token_ttl(&self, ttl: Duration) {
        lock(&self.state).token_ttl = ttl;
    }

    pub fn minted_tokens(&self) -> usize {
        lock(&self.state).minted
    }
}

impl Inner {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Creates missing labels (GitHub's default color), case-insensitively.
    fn ensure_repo_labels(&mut self, repo: &str, names: &[String]) {
        let mut ids = Vec::new();
        for _ in names {
            ids.push(self.id());
        }
        let r = self
            .repos
            .get_mut(&repo.to_lowercase())
            .expect("create_repo first");
        for (name, id) in names.iter().zip(ids) {
            if !r.labels.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
                r.labels.push(Label {
                    id,
                    name: name.clone(),
                    color: "ededed".into(),
                    description: None,
                });
            }
        }
    }

    fn take_fault(&mut self, mutation: bool) -> Option<Fault> {
        if mutation && let Some(f) = self.outage {
            return Some(f);
        }
        if self.fail_next.0 > 0 {
            self.fail_next.0 -= 1;
            return self.fail_next.1;
        }
        if mutation && self.fail_next_mutations.0 > 0 {
            self.fail_next_mutations.0 -= 1;
            return self.fail_next_mutations.1;
        }
        if mutation && let Some(limit) = self.content_limit {
            let cutoff = Instant::now() - Duration::from_secs(60);
            self.recent_mutations.retain(|t| *t > cutoff);
            if self.recent_mutations.len() >= limit as usize {
                return Some(Fault::SecondaryRateLimit {
                    retry_after_secs: 60,
                });
            }
            self.recent_mutations.push(Instant::now());
        }
        None
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Response> {
        let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Err(gh_error(
                StatusCode::UNAUTHORIZED,
                "Requires authentication",
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("token "))
            .unwrap_or("");
        if token == TOKEN {
            return Ok(Caller::User);
        }
        if let Some((installation, expires)) = self.tokens.get(token) {
            return if *expires > Timestamp::now() {
                Ok(Caller::Installation(*installation))
            } else {
                Err(gh_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
            };
        }
        if token.split('.').count() == 3 {
            return self.verify_jwt(token).map(|()| Caller::App);
        }
        Err(gh_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
    }

    fn verify_jwt(&self, token: &str) -> Result<(), Response> {
        #[derive(serde::Deserialize)]
        struct Claims {
            iss: Value,
            iat: i64,
            exp: i64,
        }
        let undecodable = || {
            gh_error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            )
        };
        let app = self.app.as_ref().ok_or_else(undecodable)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let claims = decode::<Claims>(token, &app.key, &validation)
            .map_err(|_| undecodable())?
            .claims;
        let iss = match &claims.iss {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        if iss != Some(app.id) {
            return Err(gh_error(
                StatusCode::UNAUTHORIZED,
                "'Issuer' claim ('iss') must be an Integer",
            ));
        }
        let now = Timestamp::now().as_second();
        if claims.exp - claims.iat > 600 || claims.iat > now + 60 {
            return Err(gh_error(
                StatusCode::UNAUTHORIZED,
                "'Expiration time' claim ('exp') is too far in the future",
            ));
        }
        Ok(())
    }

    fn rate_headers(&mut self, headers: &mut HeaderMap, exhausted_until: Option<i64>) {
        self.rate_used += 1;
        let (remaining, reset) = match exhausted_until {
            Some(reset) => (0, reset),
            None => (5000u64.saturating_sub(self.rate_used), self.rate_reset),
        };
        for (k, v) in [
            ("x-ratelimit-limit", "5000".to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
            ("x-ratelimit-used", self.rate_used.to_string()),
            ("x-ratelimit-resource", "core".to_string()),
            (
                "x-github-request-id",
                format!("FAKE:{:08X}", self.rate_used),
            ),
        ] {
            headers.insert(k, HeaderValue::from_str(&v).unwrap());
        }
    }

    fn issue_json(&self, repo: &Repo, i: &Issue) -> Value {
        let api = format!("{}/repos/{}", self.base, repo.full_name);
        let mut v = json!({
            "url": format!("{api}/issues/{}", i.number),
            "repository_url": api,
            "labels_url": format!("{api}/issues/{}/labels{{/name}}", i.number),
            "comments_url": format!("{api}/issues/{}/comments", i.number),
            "events_url": format!("{api}/issues/{}/events", i.number),
            "html_url": format!("{}/{}/{}/{}", self.base, repo.full_name,
                if i.pull_request { "pull" } else { "issues" }, i.number),
            "id": i.id,
            "node_id": format!("I_kwDOFake{}", i.id),
            "number": i.number,
            "title": i.title,
            "user": self.user_json(),
            "labels": i.labels.iter().filter_map(|n| repo.labels.iter().find(|l| l.name.eq_ignore_ascii_case(n)))
                .map(|l| self.label_json(repo, l)).collect::<Vec<_>>(),
            "state": i.state,
            "locked": false,
            "assignee": null,
            "assignees": [],
            "milestone": null,
            "comments": i.comments.len(),
            "created_at": i.created_at.to_string(),
            "updated_at": i.updated_at.to_string(),
            "closed_at": i.closed_at.map(|t| t.to_string()),
            "author_association": "OWNER",
            "active_lock_reason": null,
            "body": i.body,
            "reactions": {
                "url": format!("{api}/issues/{}/reactions", i.number),
                "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
                "confused": 0, "heart": 0, "rocket": 0, "eyes": 0
            },
            "timeline_url": format!("{api}/issues/{}/timeline", i.number),
            "performed_via_github_app": null,
            "state_reason": i.state_reason,
        });
        if i.pull_request {
            v["pull_request"] = json!({
                "url": format!("{api}/pulls/{}", i.number),
                "html_url": format!("{}/{}/pull/{}", self.base, repo.full_name, i.number),
                "diff_url": format!("{}/{}/pull/{}.diff", self.base, repo.full_name, i.number),
                "patch_url": format!("{}/{}/pull/{}.patch", self.base, repo.full_name, i.number),
                "merged_at": null
            });
            v["draft"] = json!(false);
        }
        v
    }

    fn label_json(&self, repo: &Repo, l: &Label) -> Value {
        json!({
            "id": l.id,
            "node_id": format!("LA_kwDOFake{}", l.id),
            "url": format!("{}/repos/{}/labels/{}", self.base, repo.full_name, l.name.replace('/', "%2F")),
            "name": l.name,
            "color": l.color,
            "default": false,
            "description": l.description,
        })
    }

    fn user_json(&self) -> Value {
        let u = format!("{}/users/triage-bot", self.base);
        json!({
            "login": "triage-bot",
            "id": 10496163,
            "node_id": "MDQ6VXNlcjEwNDk2MTYz",
            "avatar_url": "https://avatars.githubusercontent.com/u/10496163?v=4",
            "gravatar_id": "",
            "url": u,
            "html_url": format!("{}/triage-bot", self.base),
            "followers_url": format!("{u}/followers"),
            "following_url": format!("{u}/following{{/other_user}}"),
            "gists_url": format!("{u}/gists{{/gist_id}}"),
            "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{u}/subscriptions"),
            "organizations_url": format!("{u}/orgs"),
            "repos_url": format!("{u}/repos"),
            "events_url": format!("{u}/events{{/privacy}}"),
            "received_events_url": format!("{u}/received_events"),
            "type": "User",
            "site_admin": false
        })
    }

    fn comment_json(&self, repo: &Repo, issue: &Issue, c: &Comment) -> Value {
        let api = format!("{}/repos/{}", self.base, repo.full_name);
        json!({
            "url": format!("{api}/issues/comments/{}", c.id),
            "html_url": format!("{}/{}/issues/{}#issuecomment-{}", self.base, repo.full_name, issue.number, c.id),
            "issue_url": format!("{api}/issues/{}", issue.number),
            "id": c.id,
            "node_id": format!("IC_kwDOFake{}", c.id),
            "user": self.user_json(),
            "created_at": c.created_at.to_string(),
            "updated_at": c.created_at.to_string(),
            "author_association": "OWNER",
            "body": c.body,
            "reactions": {
                "url": format!("{api}/issues/comments/{}/reactions", c.id),
                "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
                "confused": 0, "heart": 0, "rocket": 0, "eyes": 0
            },
            "performed_via_github_app": null
        })
    }
}

// ---------------------------------------------------------------------------------------
// Middleware: log, authenticate, inject faults, add rate-limit headers.

async fn gatekeeper(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let plain_path = request.uri().path().to_string();
    let app_endpoint = plain_path.starts_with("/app/") || plain_path.ends_with("/installation");
    let mutation = method != Method::GET && method != Method::HEAD;

    let decision = {
        let mut s = lock(&state);
        match s.authenticate(request.headers()) {
            Err(response) => Err(response),
            Ok(caller) => {
                let wrong_credentials = if app_endpoint {
                    (caller != Caller::App).then(|| {
                        gh_error(
                            StatusCode::UNAUTHORIZED,
                            "A JSON web token could not be decoded",
                        )
                    })
                } else if caller == Caller::App {
                    Some(gh_error(
                        StatusCode::FORBIDDEN,
                        "Resource not accessible by integration",
                    ))
                } else if let Caller::Installation(id) = caller {
                    let repo = repo_of(&plain_path);
                    let covered = s.app.as_ref().is_some_and(|a| {
                        repo.is_some_and(|r| a.installations.get(&r) == Some(&id))
                    });
                    (!covered).then(|| gh_error(StatusCode::NOT_FOUND, "Not Found"))
                } else {
                    None
                };
                match wrong_credentials {
                    Some(response) => Err(response),
                    None if app_endpoint => Ok(None),
                    None => Ok(s.take_fault(mutation)),
                }
            }
        }
    };

    let mut response = match decision {
        Err(response) => response,
        Ok(None) => next.run(request).await,
        Ok(Some(Fault::ApplyThenStatus(code))) => {
            let _ = next.run(request).await;
            status_error(code)
        }
        Ok(Some(fault)) => fault_response(fault),
    };

    let mut s = lock(&state);
    let exhausted = response.extensions().get::<Exhausted>().map(|e| e.0);
    s.rate_headers(response.headers_mut(), exhausted);
    s.log.push(LoggedRequest {
        method: method.to_string(),
        path,
        at: arrived,
        status: response.status().as_u16(),
    });
    response
}

/// Marks a response as sent with the primary quota exhausted until this Unix time.
#[derive(Clone, Copy)]
struct Exhausted(i64);

const SECONDARY_MESSAGE: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FAKE:0001.";
const SECONDARY_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";

fn fault_response(fault: Fault) -> Response {
    let limited = |status: StatusCode, retry_after: Option<u64>| {
        let mut r = (
            status,
            axum::Json(json!({
                "message": SECONDARY_MESSAGE,
                "documentation_url": SECONDARY_DOCS,
                "status": status.as_u16().to_string(),
            })),
        )
            .into_response();
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        r
    };
    match fault {
        Fault::Status(code) | Fault::ApplyThenStatus(code) => status_error(code),
        Fault::SecondaryRateLimit { retry_after_secs } => {
            limited(StatusCode::FORBIDDEN, Some(retry_after_secs))
        }
        Fault::SecondaryRateLimitNoRetryAfter => limited(StatusCode::FORBIDDEN, None),
        Fault::TooManyRequests { retry_after_secs } => {
            limited(StatusCode::TOO_MANY_REQUESTS, Some(retry_after_secs))
        }
        Fault::PrimaryRateLimit { reset_in_secs } => {
            let mut r = gh_error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 10496163. If you reach out to GitHub Support for help, please include the request ID FAKE:0002.",
            );
            let reset = Timestamp::now().as_second() + reset_in_secs as i64;
            r.extensions_mut().insert(Exhausted(reset));
            r
        }
    }
}

fn status_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    gh_error(status, status.canonical_reason().unwrap_or("Error"))
}

fn gh_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": DOCS,
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

fn validation_failed(errors: Value) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
            "status": "422",
        })),
    )
        .into_response()
}

/// `/repos/{o}/{r}/…` → `o/r` (lower case).
fn repo_of(path: &str) -> Option<String> {
    let mut parts = path.strip_prefix("/repos/")?.split('/');
    let owner = parts.next()?;
    let name = parts.next()?;
    Some(format!("{owner}/{name}").to_lowercase())
}

fn parse_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|_| gh_error(StatusCode::BAD_REQUEST, "Problems parsing JSON"))
}

// ---------------------------------------------------------------------------------------
// Handlers

type Params = Query<BTreeMap<String, String>>;

fn repo_key(owner: &str, repo: &str) -> String {
    format!("{owner}/{repo}").to_lowercase()
}

/// The repository, or GitHub's 404 / 410.
fn with_repo<T>(
    s: &mut Inner,
    key: &str,
    issues_endpoint: bool,
    f: impl FnOnce(&mut Inner, String) -> Result<T, Response>,
) -> Result<T, Response> {
    let repo = s
        .repos
        .get(key)
        .ok_or_else(|| gh_error(StatusCode::NOT_FOUND, "Not Found"))?;
    if issues_endpoint && repo.issues_disabled {
        return Err((
            StatusCode::GONE,
            axum::Json(json!({
                "message": "Issues are disabled for this repo",
                "documentation_url": "https://docs.github.com/v3/issues/",
                "status": "410",
            })),
        )
            .into_response());
    }
    f(s, key.to_string())
}

fn unwrap(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}

async fn list_issues(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| Ok(render_issue_list(s, &key, &params)),
    ))
}

async fn list_issues_by_id(
    State(state): State<Shared>,
    Path(id): Path<u64>,
    Query(params): Params,
) -> Response {
    let mut s = lock(&state);
    let Some(key) = s
        .repos
        .iter()
        .find(|(_, r)| r.id == id)
        .map(|(k, _)| k.clone())
    else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    unwrap(with_repo(&mut s, &key, true, |s, key| {
        Ok(render_issue_list(s, &key, &params))
    }))
}

fn render_issue_list(s: &Inner, key: &str, params: &BTreeMap<String, String>) -> Response {
    let repo = &s.repos[key];
    let state = params.get("state").map(String::as_str).unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return validation_failed(
            json!([{"resource": "Issue", "field": "state", "code": "invalid"}]),
        );
    }
    let wanted: Vec<String> = params
        .get("labels")
        .map(|l| {
            l.split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let per_page: usize = params
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = params
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut items: Vec<&Issue> = repo
        .issues
        .iter()
        .filter(|i| state == "all" || i.state == state)
        .filter(|i| {
            wanted
                .iter()
                .all(|w| i.labels.iter().any(|l| l.to_lowercase() == *w))
        })
        .collect();
    let by_updated = params.get("sort").map(String::as_str) == Some("updated");
    items.sort_by_key(|i| {
        (
            if by_updated {
                i.updated_at
            } else {
                i.created_at
            },
            i.number,
        )
    });
    if params.get("direction").map(String::as_str) != Some("asc") {
        items.reverse();
    }
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|i| s.issue_json(repo, i))
        .collect();

    // Link URLs as GitHub writes them: by repository id, every query parameter kept.
    let mut query: BTreeMap<String, String> = params.clone();
    query.remove("page");
    let link = |p: usize, rel: &str| {
        let mut q = query.clone();
        q.insert("page".into(), p.to_string());
        let qs = q
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        format!(
            "<{}/repositories/{}/issues?{qs}>; rel=\"{rel}\"",
            s.base, repo.id
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut response = axum::Json(body).into_response();
    if !links.is_empty() {
        response
            .headers_mut()
            .insert("link", HeaderValue::from_str(&links.join(", ")).unwrap());
    }
    response
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GitHub's limits on what a request may carry.
fn check_lengths(
    title: Option<&str>,
    body: Option<&str>,
    labels: &[String],
) -> Result<(), Response> {
    if let Some(t) = title
        && t.chars().count() > 256
    {
        return Err(validation_failed(json!([{
            "resource": "Issue", "code": "custom", "field": "title",
            "message": "title is too long (maximum is 256 characters)"
        }])));
    }
    if let Some(b) = body
        && b.chars().count() > 65536
    {
        return Err(validation_failed(json!([{
            "resource": "Issue", "code": "custom", "field": "body",
            "message": "body is too long (maximum is 65536 characters)"
        }])));
    }
    for l in labels {
        if l.chars().count() > 50 {
            return Err(validation_failed(json!([{
                "resource": "Label", "code": "custom", "field": "name",
                "message": "name is too long (maximum is 50 characters)"
            }])));
        }
        if l.trim().is_empty() {
            return Err(validation_failed(json!([{
                "resource": "Label", "code": "missing_field", "field": "name"
            }])));
        }
    }
    Ok(())
}

fn string_list(v: &Value) -> Result<Vec<String>, Response> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        validation_failed(
                            json!([{"resource": "Label", "code": "invalid", "field": "labels"}]),
                        )
                    }),
                _ => Err(validation_failed(
                    json!([{"resource": "Label", "code": "invalid", "field": "labels"}]),
                )),
            })
            .collect(),
        _ => Err(validation_failed(
            json!([{"resource": "Issue", "code": "invalid", "field": "labels"}]),
        )),
    }
}

async fn create_issue(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let req = parse_json(&body)?;
            let Some(title) = req.get("title").and_then(Value::as_str) else {
                return Err(validation_failed(
                    json!([{"resource": "Issue", "code": "missing_field", "field": "title"}]),
                ));
            };
            let text = req.get("body").and_then(Value::as_str);
            let labels = string_list(req.get("labels").unwrap_or(&Value::Null))?;
            check_lengths(Some(title), text, &labels)?;
            s.ensure_repo_labels(&key, &labels);
            let id = s.id();
            let r = s.repos.get_mut(&key).unwrap();
            let number = r.next_number;
            r.next_number += 1;
            // GitHub keeps the repository's spelling of an existing label.
            let labels = labels
                .iter()
                .map(|l| {
                    r.labels
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case(l))
                        .map(|x| x.name.clone())
                        .unwrap_or_else(|| l.clone())
                })
                .collect();
            r.issues.push(Issue {
                id,
                number,
                title: title.to_string(),
                body: text.map(str::to_string),
                labels,
                state: "open".into(),
                state_reason: None,
                comments: Vec::new(),
                pull_request: false,
                created_at: now(),
                updated_at: now(),
                closed_at: None,
            });
            let r = &s.repos[&key];
            let json = s.issue_json(r, r.issues.last().unwrap());
            Ok((StatusCode::CREATED, axum::Json(json)).into_response())
        },
    ))
}

fn find_issue(s: &Inner, key: &str, number: u64) -> Result<usize, Response> {
    s.repos[key]
        .issues
        .iter()
        .position(|i| i.number == number)
        .ok_or_else(|| gh_error(StatusCode::NOT_FOUND, "Not Found"))
}

async fn get_issue(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            let r = &s.repos[&key];
            Ok(axum::Json(s.issue_json(r, &r.issues[at])).into_response())
        },
    ))
}

async fn update_issue(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            let req = parse_json(&body)?;
            let title = req.get("title").and_then(Value::as_str);
            let text = req.get("body").and_then(Value::as_str);
            let labels = match req.get("labels") {
                Some(v) => Some(string_list(v)?),
                None => None,
            };
            check_lengths(title, text, labels.as_deref().unwrap_or(&[]))?;
            let new_state = match req.get("state") {
                None | Some(Value::Null) => None,
                Some(Value::String(st)) if st == "open" || st == "closed" => Some(st.clone()),
                Some(_) => {
                    return Err(validation_failed(
                        json!([{"resource": "Issue", "code": "invalid", "field": "state"}]),
                    ));
                }
            };
            let reason = match req.get("state_reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(r))
                    if ["completed", "not_planned", "reopened", "duplicate"]
                        .contains(&r.as_str()) =>
                {
                    Some(r.clone())
                }
                Some(_) => {
                    return Err(validation_failed(
                        json!([{"resource": "Issue", "code": "invalid", "field": "state_reason"}]),
                    ));
                }
            };
            if let Some(labels) = &labels {
                s.ensure_repo_labels(&key, labels);
            }
            let issue = &mut s.repos.get_mut(&key).unwrap().issues[at];
            if let Some(t) = title {
                issue.title = t.to_string();
            }
            if let Some(b) = text {
                issue.body = Some(b.to_string());
            }
            if let Some(labels) = labels {
                // PATCH replaces every label.
                issue.labels = labels;
            }
            // `state_reason` applies only together with a state.
            if let Some(st) = new_state {
                if st == "closed" {
                    if issue.state != "closed" {
                        issue.closed_at = Some(now());
                    }
                    issue.state_reason = Some(reason.unwrap_or_else(|| "completed".into()));
                } else {
                    if issue.state == "closed" {
                        issue.state_reason = Some(reason.unwrap_or_else(|| "reopened".into()));
                    }
                    issue.closed_at = None;
                }
                issue.state = st;
            }
            issue.updated_at = now();
            let r = &s.repos[&key];
            Ok(axum::Json(s.issue_json(r, &r.issues[at])).into_response())
        },
    ))
}

async fn list_comments(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            let r = &s.repos[&key];
            let issue = &r.issues[at];
            let items: Vec<Value> = issue
                .comments
                .iter()
                .map(|c| s.comment_json(r, issue, c))
                .collect();
            Ok(axum::Json(items).into_response())
        },
    ))
}

async fn create_comment(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            let req = parse_json(&body)?;
            let Some(text) = req.get("body").and_then(Value::as_str) else {
                return Err(validation_failed(
                    json!([{"resource": "IssueComment", "code": "missing_field", "field": "body"}]),
                ));
            };
            if text.chars().count() > 65536 {
                return Err(validation_failed(json!([{
                    "resource": "IssueComment", "code": "custom", "field": "body",
                    "message": "Body is too long (maximum is 65536 characters)"
                }])));
            }
            let id = s.id();
            let issue = &mut s.repos.get_mut(&key).unwrap().issues[at];
            issue.comments.push(Comment {
                id,
                body: text.to_string(),
                created_at: now(),
            });
            issue.updated_at = now();
            let r = &s.repos[&key];
            let issue = &r.issues[at];
            let json = s.comment_json(r, issue, issue.comments.last().unwrap());
            Ok((StatusCode::CREATED, axum::Json(json)).into_response())
        },
    ))
}

fn issue_labels_json(s: &Inner, key: &str, at: usize) -> Value {
    let r = &s.repos[key];
    Value::Array(
        r.issues[at]
            .labels
            .iter()
            .filter_map(|n| r.labels.iter().find(|l| l.name.eq_ignore_ascii_case(n)))
            .map(|l| s.label_json(r, l))
            .collect(),
    )
}

async fn issue_labels(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            Ok(axum::Json(issue_labels_json(s, &key, at)).into_response())
        },
    ))
}

async fn add_issue_labels(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            let req = parse_json(&body)?;
            // `{"labels": [...]}` or a bare array, as GitHub accepts both.
            let labels = match &req {
                Value::Array(_) => string_list(&req)?,
                other => string_list(other.get("labels").unwrap_or(&Value::Null))?,
            };
            check_lengths(None, None, &labels)?;
            s.ensure_repo_labels(&key, &labels);
            let r = s.repos.get_mut(&key).unwrap();
            let names: Vec<String> = labels
                .iter()
                .map(|l| {
                    r.labels
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case(l))
                        .map(|x| x.name.clone())
                        .unwrap_or_else(|| l.clone())
                })
                .collect();
            let issue = &mut r.issues[at];
            for name in names {
                if !issue.labels.iter().any(|l| l.eq_ignore_ascii_case(&name)) {
                    issue.labels.push(name);
                }
            }
            issue.updated_at = now();
            Ok(axum::Json(issue_labels_json(s, &key, at)).into_response())
        },
    ))
}

async fn remove_issue_label(
    State(state): State<Shared>,
    Path((owner, repo, number, name)): Path<(String, String, u64, String)>,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        true,
        |s, key| {
            let at = find_issue(s, &key, number)?;
            let issue = &mut s.repos.get_mut(&key).unwrap().issues[at];
            let before = issue.labels.len();
            issue.labels.retain(|l| !l.eq_ignore_ascii_case(&name));
            if issue.labels.len() == before {
                return Err((
                StatusCode::NOT_FOUND,
                axum::Json(json!({
                    "message": "Label does not exist",
                    "documentation_url": "https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue",
                    "status": "404",
                })),
            )
                .into_response());
            }
            issue.updated_at = now();
            Ok(axum::Json(issue_labels_json(s, &key, at)).into_response())
        },
    ))
}

/// `GET /repositories/{id}/labels`: where the `Link` headers of label pages point, as
/// on GitHub.
async fn list_labels_by_id(
    State(state): State<Shared>,
    Path(id): Path<u64>,
    Query(params): Params,
) -> Response {
    let key = {
        let s = lock(&state);
        s.repos
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(k, _)| k.clone())
    };
    let Some(key) = key else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    list_labels_of(&state, key, &params)
}

async fn list_labels(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    list_labels_of(&state, repo_key(&owner, &repo), &params)
}

fn list_labels_of(state: &Shared, key: String, params: &BTreeMap<String, String>) -> Response {
    let mut s = lock(state);
    unwrap(with_repo(&mut s, &key, false, |s, key| {
        let r = &s.repos[&key];
        let per_page: usize = params
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page: usize = params
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let items: Vec<Value> = r
            .labels
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|l| s.label_json(r, l))
            .collect();
        let mut response = axum::Json(items).into_response();
        if page * per_page < r.labels.len() {
            let next = format!(
                "<{}/repositories/{}/labels?per_page={per_page}&page={}>; rel=\"next\"",
                s.base,
                r.id,
                page + 1
            );
            response
                .headers_mut()
                .insert("link", HeaderValue::from_str(&next).unwrap());
        }
        Ok(response)
    }))
}

async fn create_label(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    unwrap(with_repo(
        &mut s,
        &repo_key(&owner, &repo),
        false,
        |s, key| {
            let req = parse_json(&body)?;
            let Some(name) = req.get("name").and_then(Value::as_str) else {
                return Err(validation_failed(
                    json!([{"resource": "Label", "code": "missing_field", "field": "name"}]),
                ));
            };
            check_lengths(None, None, &[name.to_string()])?;
            let color = req
                .get("color")
                .and_then(Value::as_str)
                .unwrap_or("ededed")
                .trim_start_matches('#')
                .to_string();
            if color.len() != 6 || !color.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(validation_failed(
                    json!([{"resource": "Label", "code": "invalid", "field": "color"}]),
                ));
            }
            if s.repos[&key]
                .labels
                .iter()
                .any(|l| l.name.eq_ignore_ascii_case(name))
            {
                return Err(validation_failed(
                    json!([{"resource": "Label", "code": "already_exists", "field": "name"}]),
                ));
            }
            let id = s.id();
            let label = Label {
                id,
                name: name.to_string(),
                color,
                description: req
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            s.repos.get_mut(&key).unwrap().labels.push(label.clone());
            let json = s.label_json(&s.repos[&key], &label);
            Ok((StatusCode::CREATED, axum::Json(json)).into_response())
        },
    ))
}

async fn repo_installation(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let s = lock(&state);
    let key = repo_key(&owner, &repo);
    let Some(id) = s
        .app
        .as_ref()
        .and_then(|a| a.installations.get(&key))
        .copied()
    else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let app_id = s.app.as_ref().map(|a| a.id).unwrap_or_default();
    let account = s.user_json();
    axum::Json(json!({
        "id": id,
        "account": account,
        "repository_selection": "selected",
        "access_tokens_url": format!("{}/app/installations/{id}/access_tokens", s.base),
        "repositories_url": format!("{}/installation/repositories", s.base),
        "html_url": format!("{}/settings/installations/{id}", s.base),
        "app_id": app_id,
        "app_slug": "triage",
        "target_id": 10496163,
        "target_type": "Organization",
        "permissions": {"issues": "write", "metadata": "read"},
        "events": ["issues"],
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null
    }))
    .into_response()
}

async fn installation_token(State(state): State<Shared>, Path(id): Path<u64>) -> Response {
    let mut s = lock(&state);
    if !s
        .app
        .as_ref()
        .is_some_and(|a| a.installations.values().any(|i| *i == id))
    {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    s.minted += 1;
    let token = format!("ghs_fakeInstallation{id}x{:04}", s.minted);
    let ttl = jiff::SignedDuration::try_from(s.token_ttl).unwrap();
    let expires = Timestamp::now().checked_add(ttl).unwrap();
    s.tokens.insert(token.clone(), (id, expires));
    let expires_at = Timestamp::from_second(expires.as_second()).unwrap();
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "expires_at": expires_at.to_string(),
            "permissions": {"issues": "write", "metadata": "read"},
            "repository_selection": "selected"
        })),
    )
        .into_response()
}
