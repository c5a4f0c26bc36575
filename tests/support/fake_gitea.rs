//! A fake Gitea / Forgejo v1 REST API (issues, labels, comments) on loopback.
//!
//! Stateful and strict like a real Gitea 1.2x, including its traps, so the Gitea client
//! is tested against the behaviour it must survive.
//!
//! # API (stable; other test files rely on it)
//!
//! ```ignore
//! let gt = FakeGitea::start().await;       // 127.0.0.1, random port
//! gt.base_url()                             // "http://127.0.0.1:PORT" (API under /api/v1)
//! gt.token()                                // the one valid access token
//! gt.create_repo("ops/cluster");            // unknown repositories answer 404
//! gt.create_label("ops/cluster", "bug") -> id
//! gt.delete_label("ops/cluster", "bug");    // from the repo and every issue
//! gt.seed_issue("ops/cluster", "title", "body", &["bug"], "open") -> number
//! gt.add_pull_request("ops/cluster", "title", "body", &["bug"]) -> number
//! gt.issues("ops/cluster") -> Vec<FakeIssue> // issues only, by number
//! gt.set_issue_state("ops/cluster", 1, "closed");     // as a human would
//! gt.add_issue_label("ops/cluster", 1, "triage/mute"); // as a human would (creates it)
//! gt.labels("ops/cluster") -> Vec<FakeLabel>
//! gt.set_issues_disabled("ops/cluster", true);   // 404 on issue endpoints
//! gt.set_max_response_items(50);            // the server's page-size cap
//! gt.set_outage(Some(Fault::Status(502)));  // every mutation fails until None
//! gt.fail_next(1, Fault::TooManyRequests { retry_after_secs: 2 });
//! gt.fail_next_mutations(1, Fault::ApplyThenStatus(502));
//! gt.request_log() -> Vec<LoggedRequest>    // method, path (with query), at, status
//! ```
//!
//! Behaviour copied from Gitea: `Authorization: token <t>` (or `Bearer`) required (401
//! `token is required`); issues and issue-label endpoints take label **IDs** (unknown
//! IDs are silently skipped, as Gitea does); the issue list's `labels` filter takes
//! names and **drops names the repository does not know — with none known the filter
//! vanishes and every issue comes back**; known labels AND together; `state` (default
//! open), `type=issues|pulls`; pages by `page` and `limit` (default 30, capped at
//! `MAX_RESPONSE_ITEMS`, default 50) with `Link` and `X-Total-Count`; newest first;
//! `PATCH` state answers 201; removing a label id the repository lacks is 422; a title
//! over 255 characters or a missing title is 422; errors are `{"message", "url"}`.
//! Gitea sends no rate-limit headers; `TooManyRequests` mimics a proxy in front.

#![allow(dead_code)]
// Handlers return ready HTTP responses as their errors; size is no concern in a fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use jiff::Timestamp;
use serde_json::{Value, json};

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a Gitea-style error body.
    Status(u16),
    /// 429 with `retry-after`, as a rate-limiting proxy answers.
    TooManyRequests { retry_after_secs: u64 },
    /// Perform the request, then answer this status instead of the result.
    ApplyThenStatus(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub state: String,
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLabel {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub at: Instant,
    pub status: u16,
}

pub struct FakeGitea {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitea {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Inner {
    base: String,
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    max_items: usize,
    outage: Option<Fault>,
    fail_next: (usize, Option<Fault>),
    fail_next_mutations: (usize, Option<Fault>),
    log: Vec<LoggedRequest>,
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    issues: Vec<Issue>,
    labels: Vec<Label>,
    issues_disabled: bool,
    next_number: u64,
}

struct Issue {
    id: u64,
    number: u64,
    title: String,
    body: String,
    label_ids: Vec<u64>,
    state: String,
    comments: Vec<(u64, String, Timestamp)>,
    pull_request: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    closed_at: Option<Timestamp>,
}

#[derive(Clone)]
struct Label {
    id: u64,
    name: String,
    color: String,
    description: String,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap()
}

impl FakeGitea {
    pub async fn start() -> FakeGitea {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Inner {
            base: format!("http://{addr}"),
            repos: BTreeMap::new(),
            next_id: 100,
            max_items: 50,
            outage: None,
            fail_next: (0, None),
            fail_next_mutations: (0, None),
            log: Vec::new(),
        }));
        let app = Router::new()
            .route(
                "/api/v1/repos/{owner}/{repo}/issues",
                get(list_issues).post(create_issue),
            )
            .route(
                "/api/v1/repos/{owner}/{repo}/issues/{number}",
                get(get_issue).patch(edit_issue),
            )
            .route(
                "/api/v1/repos/{owner}/{repo}/issues/{number}/comments",
                post(create_comment),
            )
            .route(
                "/api/v1/repos/{owner}/{repo}/issues/{number}/labels",
                get(issue_labels).post(add_issue_labels),
            )
            .route(
                "/api/v1/repos/{owner}/{repo}/issues/{number}/labels/{id}",
                delete(remove_issue_label),
            )
            .route(
                "/api/v1/repos/{owner}/{repo}/labels",
                get(list_labels).post(create_label),
            )
            .fallback(|| async { not_found_response() })
            .layer(middleware::from_fn_with_state(state.clone(), gatekeeper))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeGitea {
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
        let (owner, name) = full_name.split_once('/').expect("owner/name");
        let mut s = lock(&self.state);
        let id = s.id();
        s.repos.insert(
            full_name.to_lowercase(),
            Repo {
                id,
                owner: owner.into(),
                name: name.into(),
                issues: Vec::new(),
                labels: Vec::new(),
                issues_disabled: false,
                next_number: 1,
            },
        );
    }

    pub fn create_label(&self, repo: &str, name: &str) -> u64 {
        let mut s = lock(&self.state);
        let id = s.id();
        s.repo_mut(repo).labels.push(Label {
            id,
            name: name.into(),
            color: "e11d21".into(),
            description: String::new(),
        });
        id
    }

    pub fn delete_label(&self, repo: &str, name: &str) {
        let mut s = lock(&self.state);
        let r = s.repo_mut(repo);
        if let Some(pos) = r.labels.iter().position(|l| l.name == name) {
            let id = r.labels.remove(pos).id;
            for issue in &mut r.issues {
                issue.label_ids.retain(|l| *l != id);
            }
        }
    }

    /// Adds an issue directly (no request logged); its labels must exist or are created.
    pub fn seed_issue(
        &self,
        repo: &str,
        title: &str,
        body: &str,
        labels: &[&str],
        state: &str,
    ) -> u64 {
        let ids: Vec<u64> = labels
            .iter()
            .map(|l| {
                self.labels(repo)
                    .into_iter()
                    .find(|x| x.name == *l)
                    .map(|x| x.id)
                    .unwrap_or_else(|| self.create_label(repo, l))
            })
            .collect();
        let mut s = lock(&self.state);
        let id = s.id();
        let r = s.repo_mut(repo);
        let number = r.next_number;
        r.next_number += 1;
        r.issues.push(Issue {
            id,
            number,
            title: title.into(),
            body: body.into(),
            label_ids: ids,
            state: state.into(),
            comments: Vec::new(),
            pull_request: false,
            created_at: now(),
            updated_at: now(),
            closed_at: (state == "closed").then(now),
        });
        number
    }

    pub fn add_pull_request(&self, repo: &str, title: &str, body: &str, labels: &[&str]) -> u64 {
        let number = self.seed_issue(repo, title, body, labels, "open");
        let mut s = lock(&self.state);
        s.repo_mut(repo).issues.last_mut().unwrap().pull_request = true;
        number
    }

    /// Closes or reopens an issue directly, as a human in the web UI would.
    pub fn set_issue_state(&self, repo: &str, number: u64, state: &str) {
        let mut s = lock(&self.state);
        let issue = s
            .repo_mut(repo)
            .issues
            .iter_mut()
            .find(|i| i.number == number)
            .expect("no such issue");
        issue.closed_at = (state == "closed").then(now);
        issue.state = state.to_string();
        issue.updated_at = now();
    }

    /// Adds a label directly (creating it in the repository if needed), as a human would.
    pub fn add_issue_label(&self, repo: &str, number: u64, label: &str) {
        let id = self
            .labels(repo)
            .into_iter()
            .find(|l| l.name == label)
            .map(|l| l.id)
            .unwrap_or_else(|| self.create_label(repo, label));
        let mut s = lock(&self.state);
        let issue = s
            .repo_mut(repo)
            .issues
            .iter_mut()
            .find(|i| i.number == number)
            .expect("no such issue");
        if !issue.label_ids.contains(&id) {
            issue.label_ids.push(id);
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
                body: i.body.clone(),
                labels: r.label_names(&i.label_ids),
                state: i.state.clone(),
                comments: i.comments.iter().map(|c| c.1.clone()).collect(),
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
                        id: l.id,
                        name: l.name.clone(),
                        color: l.color.clone(),
                        description: l.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_issues_disabled(&self, repo: &str, disabled: bool) {
        lock(&self.state).repo_mut(repo).issues_disabled = disabled;
    }

    pub fn set_max_response_items(&self, n: usize) {
        lock(&self.state).max_items = n.max(1);
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

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.state).log.clone()
    }
}

impl Inner {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn repo_mut(&mut self, repo: &str) -> &mut Repo {
        self.repos
            .get_mut(&repo.to_lowercase())
            .expect("create_repo first")
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
        None
    }

    fn swagger(&self) -> String {
        format!("{}/api/swagger", self.base)
    }

    fn user_json(&self) -> Value {
        json!({
            "id": 1,
            "login": "triage-bot",
            "login_name": "",
            "source_id": 0,
            "full_name": "",
            "email": "triage-bot@noreply.localhost",
            "avatar_url": format!("{}/avatars/1", self.base),
            "html_url": format!("{}/triage-bot", self.base),
            "language": "",
            "is_admin": false,
            "last_login": "0001-01-01T00:00:00Z",
            "created": "2024-01-01T00:00:00Z",
            "restricted": false,
            "active": false,
            "prohibit_login": false,
            "location": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
            "username": "triage-bot"
        })
    }

    fn label_json(&self, r: &Repo, l: &Label) -> Value {
        json!({
            "id": l.id,
            "name": l.name,
            "exclusive": false,
            "is_archived": false,
            "color": l.color,
            "description": l.description,
            "url": format!("{}/api/v1/repos/{}/{}/labels/{}", self.base, r.owner, r.name, l.id),
        })
    }

    fn issue_json(&self, r: &Repo, i: &Issue) -> Value {
        let kind = if i.pull_request { "pulls" } else { "issues" };
        json!({
            "id": i.id,
            "url": format!("{}/api/v1/repos/{}/{}/issues/{}", self.base, r.owner, r.name, i.number),
            "html_url": format!("{}/{}/{}/{kind}/{}", self.base, r.owner, r.name, i.number),
            "number": i.number,
            "user": self.user_json(),
            "original_author": "",
            "original_author_id": 0,
            "title": i.title,
            "body": i.body,
            "ref": "",
            "assets": [],
            "labels": i.label_ids.iter()
                .filter_map(|id| r.labels.iter().find(|l| l.id == *id))
                .map(|l| self.label_json(r, l)).collect::<Vec<_>>(),
            "milestone": null,
            "assignee": null,
            "assignees": null,
            "state": i.state,
            "is_locked": false,
            "comments": i.comments.len(),
            "created_at": i.created_at.to_string(),
            "updated_at": i.updated_at.to_string(),
            "closed_at": i.closed_at.map(|t| t.to_string()),
            "due_date": null,
            "time_estimate": 0,
            "pull_request": if i.pull_request {
                json!({"merged": false, "merged_at": null, "draft": false,
                       "html_url": format!("{}/{}/{}/pulls/{}", self.base, r.owner, r.name, i.number)})
            } else { Value::Null },
            "repository": {"id": r.id, "name": r.name, "owner": r.owner,
                           "full_name": format!("{}/{}", r.owner, r.name)},
            "pin_order": 0
        })
    }
}

impl Repo {
    fn label_names(&self, ids: &[u64]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.labels.iter().find(|l| l.id == *id))
            .map(|l| l.name.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Middleware

async fn gatekeeper(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mutation = method != Method::GET && method != Method::HEAD;
    let decision = {
        let mut s = lock(&state);
        let token = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("token ")
                    .or_else(|| v.strip_prefix("Bearer "))
                    .unwrap_or("")
                    .to_string()
            });
        match token {
            None => Err(error(&s, StatusCode::UNAUTHORIZED, "token is required")),
            Some(t) if t != TOKEN => Err(error(
                &s,
                StatusCode::UNAUTHORIZED,
                "invalid username, password or token",
            )),
            Some(_) => Ok(s.take_fault(mutation)),
        }
    };
    let response = match decision {
        Err(r) => r,
        Ok(None) => next.run(request).await,
        Ok(Some(Fault::ApplyThenStatus(code))) => {
            let _ = next.run(request).await;
            let s = lock(&state);
            status_error(&s, code)
        }
        Ok(Some(Fault::Status(code))) => {
            let s = lock(&state);
            status_error(&s, code)
        }
        Ok(Some(Fault::TooManyRequests { retry_after_secs })) => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after_secs));
            r
        }
    };
    lock(&state).log.push(LoggedRequest {
        method: method.to_string(),
        path,
        at: arrived,
        status: response.status().as_u16(),
    });
    response
}

fn error(s: &Inner, status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"message": message, "url": s.swagger()})),
    )
        .into_response()
}

fn status_error(s: &Inner, code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    error(s, status, status.canonical_reason().unwrap_or("error"))
}

fn not_found_response() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"errors": [], "message": "The target couldn't be found.", "url": ""})),
    )
        .into_response()
}

fn not_found(s: &Inner) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"errors": [], "message": "The target couldn't be found.", "url": s.swagger()}),
        ),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Handlers

type Params = Query<BTreeMap<String, String>>;

fn key(owner: &str, repo: &str) -> String {
    format!("{owner}/{repo}").to_lowercase()
}

fn check_repo(s: &Inner, key: &str, issues: bool) -> Result<(), Response> {
    match s.repos.get(key) {
        None => Err(not_found(s)),
        Some(r) if issues && r.issues_disabled => Err(not_found(s)),
        Some(_) => Ok(()),
    }
}

fn parse_json(s: &Inner, body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(s, StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
}

fn unwrap(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}

/// `page`/`limit` as Gitea reads them: limit defaults to 30, capped by MAX_RESPONSE_ITEMS.
fn paging(s: &Inner, params: &BTreeMap<String, String>) -> (usize, usize) {
    let page = params
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let limit = params
        .get("limit")
        .and_then(|p| p.parse().ok())
        .filter(|l: &usize| *l > 0)
        .unwrap_or(30)
        .min(s.max_items);
    (page, limit)
}

/// Gitea's `SetLinkHeader`: next/last/first/prev plus `X-Total-Count`.
fn paged(
    s: &Inner,
    path: &str,
    params: &BTreeMap<String, String>,
    page: usize,
    limit: usize,
    total: usize,
    items: Vec<Value>,
) -> Response {
    let last = total.div_ceil(limit).max(1);
    let link = |p: usize, rel: &str| {
        let mut q = params.clone();
        q.insert("page".into(), p.to_string());
        q.insert("limit".into(), limit.to_string());
        let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("<{}{path}?{}>; rel=\"{rel}\"", s.base, qs.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    let mut r = axum::Json(items).into_response();
    if !links.is_empty() {
        r.headers_mut()
            .insert("link", HeaderValue::from_str(&links.join(",")).unwrap());
    }
    r.headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    r
}

async fn list_issues(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let s = lock(&state);
    let k = key(&owner, &repo);
    if let Err(e) = check_repo(&s, &k, true) {
        return e;
    }
    let r = &s.repos[&k];
    let state_filter = params.get("state").map(String::as_str).unwrap_or("open");
    // The trap: names the repository does not know are dropped; with none known the
    // filter is gone and everything matches.
    let label_ids: Vec<u64> = params
        .get("labels")
        .map(|l| {
            l.split(',')
                .filter_map(|name| r.labels.iter().find(|x| x.name == name).map(|x| x.id))
                .collect()
        })
        .unwrap_or_default();
    let kind = params.get("type").map(String::as_str);
    let mut items: Vec<&Issue> = r
        .issues
        .iter()
        .filter(|i| state_filter == "all" || i.state == state_filter)
        .filter(|i| match kind {
            Some("issues") => !i.pull_request,
            Some("pulls") => i.pull_request,
            _ => true,
        })
        .filter(|i| label_ids.iter().all(|id| i.label_ids.contains(id)))
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.number)));
    let (page, limit) = paging(&s, &params);
    let total = items.len();
    let body = items
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|i| s.issue_json(r, i))
        .collect();
    paged(
        &s,
        &format!("/api/v1/repos/{owner}/{repo}/issues"),
        &params,
        page,
        limit,
        total,
        body,
    )
}

fn title_checked(s: &Inner, title: Option<&str>) -> Result<(), Response> {
    match title {
        None | Some("") => Err(error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "[Title]: Required",
        )),
        Some(t) if t.chars().count() > 255 => Err(error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "[Title]: MaxSize",
        )),
        Some(_) => Ok(()),
    }
}

fn id_list(s: &Inner, v: Option<&Value>) -> Result<Vec<u64>, Response> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_u64().ok_or_else(|| {
                    error(
                        s,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "[Labels]: label ids must be integers",
                    )
                })
            })
            .collect(),
        Some(_) => Err(error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "[Labels]: invalid",
        )),
    }
}

async fn create_issue(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let k = key(&owner, &repo);
    unwrap((|| {
        check_repo(&s, &k, true)?;
        let req = parse_json(&s, &body)?;
        title_checked(&s, req.get("title").and_then(Value::as_str))?;
        let wanted = id_list(&s, req.get("labels"))?;
        let id = s.id();
        let r = s.repos.get_mut(&k).unwrap();
        // Unknown or foreign label IDs are skipped without a word, as Gitea does.
        let label_ids = wanted
            .into_iter()
            .filter(|id| r.labels.iter().any(|l| l.id == *id))
            .collect();
        let number = r.next_number;
        r.next_number += 1;
        r.issues.push(Issue {
            id,
            number,
            title: req["title"].as_str().unwrap_or_default().to_string(),
            body: req
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            label_ids,
            state: "open".into(),
            comments: Vec::new(),
            pull_request: false,
            created_at: now(),
            updated_at: now(),
            closed_at: None,
        });
        let r = &s.repos[&k];
        Ok((
            StatusCode::CREATED,
            axum::Json(s.issue_json(r, r.issues.last().unwrap())),
        )
            .into_response())
    })())
}

fn issue_at(s: &Inner, k: &str, number: u64) -> Result<usize, Response> {
    check_repo(s, k, true)?;
    s.repos[k]
        .issues
        .iter()
        .position(|i| i.number == number)
        .ok_or_else(|| not_found(s))
}

async fn get_issue(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let s = lock(&state);
    let k = key(&owner, &repo);
    unwrap(issue_at(&s, &k, number).map(|at| {
        let r = &s.repos[&k];
        axum::Json(s.issue_json(r, &r.issues[at])).into_response()
    }))
}

async fn edit_issue(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let k = key(&owner, &repo);
    unwrap((|| {
        let at = issue_at(&s, &k, number)?;
        let req = parse_json(&s, &body)?;
        if let Some(t) = req.get("title").and_then(Value::as_str) {
            title_checked(&s, Some(t))?;
        }
        let new_state = match req.get("state") {
            None | Some(Value::Null) => None,
            Some(Value::String(st)) if st == "open" || st == "closed" => Some(st.clone()),
            Some(_) => {
                return Err(error(
                    &s,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "[State]: invalid",
                ));
            }
        };
        let issue = &mut s.repos.get_mut(&k).unwrap().issues[at];
        if let Some(t) = req.get("title").and_then(Value::as_str) {
            issue.title = t.to_string();
        }
        if let Some(b) = req.get("body").and_then(Value::as_str) {
            issue.body = b.to_string();
        }
        if let Some(st) = new_state {
            issue.closed_at = (st == "closed").then(now);
            issue.state = st;
        }
        issue.updated_at = now();
        let r = &s.repos[&k];
        // Gitea answers an edit with 201.
        Ok((
            StatusCode::CREATED,
            axum::Json(s.issue_json(r, &r.issues[at])),
        )
            .into_response())
    })())
}

async fn create_comment(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let k = key(&owner, &repo);
    unwrap((|| {
        let at = issue_at(&s, &k, number)?;
        let req = parse_json(&s, &body)?;
        let Some(text) = req
            .get("body")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(error(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "[Body]: Required",
            ));
        };
        let id = s.id();
        let base = s.base.clone();
        let user = s.user_json();
        let r = s.repos.get_mut(&k).unwrap();
        let (owner, name) = (r.owner.clone(), r.name.clone());
        let issue = &mut r.issues[at];
        issue.comments.push((id, text.to_string(), now()));
        issue.updated_at = now();
        Ok((
            StatusCode::CREATED,
            axum::Json(json!({
                "id": id,
                "html_url": format!("{base}/{owner}/{name}/issues/{number}#issuecomment-{id}"),
                "pull_request_url": "",
                "issue_url": format!("{base}/{owner}/{name}/issues/{number}"),
                "user": user,
                "original_author": "",
                "original_author_id": 0,
                "body": text,
                "assets": [],
                "created_at": now().to_string(),
                "updated_at": now().to_string()
            })),
        )
            .into_response())
    })())
}

fn labels_of(s: &Inner, k: &str, at: usize) -> Value {
    let r = &s.repos[k];
    Value::Array(
        r.issues[at]
            .label_ids
            .iter()
            .filter_map(|id| r.labels.iter().find(|l| l.id == *id))
            .map(|l| s.label_json(r, l))
            .collect(),
    )
}

async fn issue_labels(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let s = lock(&state);
    let k = key(&owner, &repo);
    unwrap(issue_at(&s, &k, number).map(|at| axum::Json(labels_of(&s, &k, at)).into_response()))
}

async fn add_issue_labels(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let k = key(&owner, &repo);
    unwrap((|| {
        let at = issue_at(&s, &k, number)?;
        let req = parse_json(&s, &body)?;
        let wanted = id_list(&s, req.get("labels"))?;
        let r = s.repos.get_mut(&k).unwrap();
        let known: Vec<u64> = wanted
            .into_iter()
            .filter(|id| r.labels.iter().any(|l| l.id == *id))
            .collect();
        let issue = &mut r.issues[at];
        for id in known {
            if !issue.label_ids.contains(&id) {
                issue.label_ids.push(id);
            }
        }
        issue.updated_at = now();
        Ok(axum::Json(labels_of(&s, &k, at)).into_response())
    })())
}

async fn remove_issue_label(
    State(state): State<Shared>,
    Path((owner, repo, number, id)): Path<(String, String, u64, u64)>,
) -> Response {
    let mut s = lock(&state);
    let k = key(&owner, &repo);
    unwrap((|| {
        let at = issue_at(&s, &k, number)?;
        if !s.repos[&k].labels.iter().any(|l| l.id == id) {
            return Err(error(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("label does not exist [id: {id}]"),
            ));
        }
        let issue = &mut s.repos.get_mut(&k).unwrap().issues[at];
        issue.label_ids.retain(|l| *l != id);
        issue.updated_at = now();
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

async fn list_labels(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let s = lock(&state);
    let k = key(&owner, &repo);
    if let Err(e) = check_repo(&s, &k, false) {
        return e;
    }
    let r = &s.repos[&k];
    let (page, limit) = paging(&s, &params);
    let items = r
        .labels
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|l| s.label_json(r, l))
        .collect();
    paged(
        &s,
        &format!("/api/v1/repos/{owner}/{repo}/labels"),
        &params,
        page,
        limit,
        r.labels.len(),
        items,
    )
}

async fn create_label(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let k = key(&owner, &repo);
    unwrap((|| {
        check_repo(&s, &k, false)?;
        let req = parse_json(&s, &body)?;
        let name = req.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(error(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "[Name]: Required",
            ));
        }
        let color = req
            .get("color")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('#')
            .to_lowercase();
        if color.is_empty() {
            return Err(error(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "[Color]: Required",
            ));
        }
        if color.len() != 6 || !color.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("invalid color format: {color}"),
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
                .unwrap_or("")
                .to_string(),
        };
        s.repos.get_mut(&k).unwrap().labels.push(label.clone());
        let r = &s.repos[&k];
        Ok((StatusCode::CREATED, axum::Json(s.label_json(r, &label))).into_response())
    })())
}
