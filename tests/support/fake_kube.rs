//! A fake Kubernetes API server on loopback, faithful where the watchers care:
//!
//! - list (`GET /api/v1/pods`, `/apis/apps/v1/deployments`…, cluster-wide or per
//!   namespace) with `limit`/`continue` pagination over a consistent snapshot,
//!   `metadata.resourceVersion`, `fieldSelector` (`type=Warning`, `metadata.namespace`),
//!   items without apiVersion/kind as the real server sends them;
//! - watch (`watch=true`) from a resourceVersion: newline-delimited JSON events
//!   (ADDED/MODIFIED/DELETED with the object's new resourceVersion), BOOKMARKs when
//!   `allowWatchBookmarks=true`, `timeoutSeconds`, and a `410 Gone` ERROR event ("too
//!   old resource version") when the version was compacted away;
//! - metadata-only list and watch (`Accept: application/json;as=PartialObjectMetadataList…`);
//! - discovery (`/api/v1`, `/apis/<group>/<version>`; Argo CD's group can be absent);
//! - `GET /version`; `POST …/selfsubjectaccessreviews` answered from a deny list.
//!
//! Test controls: change objects (events reach open watches), compact history and
//! expire watches (410), drop connections abruptly, deny permissions, see requests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A resource the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Res {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
}

impl Res {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }
}

pub const PODS: Res = Res {
    group: "",
    version: "v1",
    plural: "pods",
    kind: "Pod",
};
pub const EVENTS: Res = Res {
    group: "",
    version: "v1",
    plural: "events",
    kind: "Event",
};
pub const DEPLOYMENTS: Res = Res {
    group: "apps",
    version: "v1",
    plural: "deployments",
    kind: "Deployment",
};
pub const STATEFULSETS: Res = Res {
    group: "apps",
    version: "v1",
    plural: "statefulsets",
    kind: "StatefulSet",
};
pub const DAEMONSETS: Res = Res {
    group: "apps",
    version: "v1",
    plural: "daemonsets",
    kind: "DaemonSet",
};
pub const REPLICASETS: Res = Res {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    kind: "ReplicaSet",
};
pub const JOBS: Res = Res {
    group: "batch",
    version: "v1",
    plural: "jobs",
    kind: "Job",
};
pub const CRONJOBS: Res = Res {
    group: "batch",
    version: "v1",
    plural: "cronjobs",
    kind: "CronJob",
};
pub const APPLICATIONS: Res = Res {
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "applications",
    kind: "Application",
};

pub const ALL: [Res; 9] = [
    PODS,
    EVENTS,
    DEPLOYMENTS,
    STATEFULSETS,
    DAEMONSETS,
    REPLICASETS,
    JOBS,
    CRONJOBS,
    APPLICATIONS,
];

/// The resource an object of `kind` belongs to.
pub fn res_of_kind(kind: &str) -> Option<Res> {
    ALL.into_iter().find(|r| r.kind == kind)
}

#[derive(Debug, Clone)]
enum Msg {
    Event {
        key: String,
        rv: u64,
        kind: &'static str,
        object: Arc<Value>,
    },
    /// Every open watch gets a 410 ERROR event and ends.
    Expire,
    /// Every open watch is cut off mid-stream.
    Drop,
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub accept: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
}

struct Inner {
    rv: u64,
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
    /// (rv, resource key, event type, object) for watches to replay.
    log: Vec<(u64, String, &'static str, Arc<Value>)>,
    /// Versions at or below this are gone: a watch from before it gets 410.
    compacted: u64,
    pages: HashMap<String, (u64, Arc<Vec<Value>>)>,
    next_page: u64,
    requests: Vec<Logged>,
    denied: HashSet<(String, String, String)>,
    argo_served: bool,
    unavailable: bool,
    bookmark_every: Duration,
}

#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<Msg>,
    pub addr: SocketAddr,
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

fn error(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        [("content-type", "application/json")],
        status(code.as_u16(), reason, message).to_string(),
    )
        .into_response()
}

fn ns_name(obj: &Value) -> (String, String) {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_string(),
        m["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// `a=b,c=d` against dotted JSON paths (`type`, `metadata.namespace`, `involvedObject.kind`).
fn matches_fields(obj: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let (path, want, negate) = match term.split_once("!=") {
            Some((p, v)) => (p, v, true),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((p, v)) => (p, v, false),
                None => return false,
            },
        };
        let mut v = obj;
        for part in path.split('.') {
            v = &v[part];
        }
        (v.as_str().unwrap_or_default() == want) != negate
    })
}

fn in_namespace(obj: &Value, ns: Option<&str>) -> bool {
    ns.is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
}

/// What the client asked to see of each object.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Full,
    Metadata,
}

fn shaped(res: &Res, obj: &Value, shape: Shape, with_types: bool) -> Value {
    match shape {
        Shape::Metadata => {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
        }
        Shape::Full => {
            let mut o = obj.clone();
            if let Some(map) = o.as_object_mut() {
                if with_types {
                    map.insert("apiVersion".into(), res.api_version().into());
                    map.insert("kind".into(), res.kind.into());
                } else {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
            }
            o
        }
    }
}

impl FakeKube {
    /// Starts the server on 127.0.0.1 (an ephemeral port unless `port` is given).
    pub async fn start_on(port: u16) -> FakeKube {
        let (tx, _) = broadcast::channel(1 << 16);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeKube {
            inner: Arc::new(Mutex::new(Inner {
                rv: 1000,
                objects: HashMap::new(),
                log: Vec::new(),
                compacted: 0,
                pages: HashMap::new(),
                next_page: 0,
                requests: Vec::new(),
                denied: HashSet::new(),
                argo_served: true,
                unavailable: false,
                bookmark_every: Duration::from_millis(500),
            })),
            tx,
            addr,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    pub async fn start() -> FakeKube {
        Self::start_on(0).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file pointing at this server.
    pub fn kubeconfig(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n- name: other\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: {context}\n  context:\n    cluster: fake\n    user: triage\n- name: other\n  context:\n    cluster: other\n    user: triage\nusers:\n- name: triage\n  user:\n    token: fake-token\n",
            url = self.url()
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub fn set_argo_served(&self, served: bool) {
        self.lock().argo_served = served;
    }

    pub fn set_bookmark_every(&self, every: Duration) {
        self.lock().bookmark_every = every;
    }

    /// While set, every connection breaks before an answer (an API server that is
    /// down); open watches are cut off.
    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
        if down {
            let _ = self.tx.send(Msg::Drop);
        }
    }

    pub fn deny(&self, group: &str, resource: &str, verb: &str) {
        self.lock()
            .denied
            .insert((group.into(), resource.into(), verb.into()));
    }

    /// Stores objects as the cluster's starting state (no watch history).
    pub fn seed(&self, objects: impl IntoIterator<Item = Value>) {
        let mut inner = self.lock();
        for mut obj in objects {
            let kind = obj["kind"].as_str().unwrap_or_default().to_string();
            let res = res_of_kind(&kind).unwrap_or_else(|| panic!("fake does not serve {kind}"));
            inner.rv += 1;
            let rv = inner.rv;
            obj["metadata"]["resourceVersion"] = rv.to_string().into();
            let key = ns_name(&obj);
            inner.objects.entry(res.key()).or_default().insert(key, obj);
        }
        inner.compacted = inner.rv;
    }

    fn record(&self, res: Res, kind: &'static str, obj: Value) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let mut obj = obj;
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        let key = ns_name(&obj);
        let store = inner.objects.entry(res.key()).or_default();
        if kind == "DELETED" {
            store.remove(&key);
        } else {
            store.insert(key, obj.clone());
        }
        let obj = Arc::new(shaped(&res, &obj, Shape::Full, true));
        inner.log.push((rv, res.key(), kind, obj.clone()));
        // Sent while the lock is held: whoever takes the lock next knows every event up
        // to `inner.rv` is already queued to the watches (bookmarks rely on it).
        let _ = self.tx.send(Msg::Event {
            key: res.key(),
            rv,
            kind,
            object: obj,
        });
        rv
    }

    /// Creates or replaces an object; open watches see ADDED or MODIFIED.
    pub fn apply(&self, obj: Value) -> u64 {
        let res = res_of_kind(obj["kind"].as_str().unwrap()).unwrap();
        let exists = self
            .lock()
            .objects
            .get(&res.key())
            .is_some_and(|m| m.contains_key(&ns_name(&obj)));
        self.record(res, if exists { "MODIFIED" } else { "ADDED" }, obj)
    }

    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> u64 {
        let res = res_of_kind(kind).unwrap();
        let obj = self.get(kind, ns, name).unwrap();
        self.record(res, "DELETED", obj)
    }

    /// Removes an object with no watch event: a change the watchers missed.
    pub fn delete_silently(&self, kind: &str, ns: &str, name: &str) {
        let res = res_of_kind(kind).unwrap();
        let mut inner = self.lock();
        inner.rv += 1;
        inner
            .objects
            .entry(res.key())
            .or_default()
            .remove(&(ns.to_string(), name.to_string()));
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let res = res_of_kind(kind)?;
        self.lock()
            .objects
            .get(&res.key())?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Forgets the watch history (etcd compaction) and ends every open watch with a
    /// `410 Gone` ERROR event, as an API server does when its watch cache is too far behind.
    pub fn compact_and_expire(&self) {
        {
            let mut inner = self.lock();
            inner.compacted = inner.rv;
            inner.log.clear();
        }
        let _ = self.tx.send(Msg::Expire);
    }

    /// Cuts every open watch connection mid-stream (a network failure).
    pub fn drop_watches(&self) {
        let _ = self.tx.send(Msg::Drop);
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.lock().requests.clone()
    }

    /// Requests for one resource: (lists, watches).
    pub fn calls(&self, res: Res) -> (Vec<Logged>, Vec<Logged>) {
        let path_all = if res.group.is_empty() {
            format!("/api/v1/{}", res.plural)
        } else {
            format!("/apis/{}/{}/{}", res.group, res.version, res.plural)
        };
        let mine: Vec<Logged> = self
            .requests()
            .into_iter()
            .filter(|r| r.path == path_all)
            .collect();
        let (watches, lists) = mine
            .into_iter()
            .partition(|r| r.query.get("watch").is_some_and(|w| w == "true"));
        (lists, watches)
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }
}

enum Route {
    Version,
    Discovery { group: String, version: String },
    Collection { res: Res, namespace: Option<String> },
    AccessReview,
    NotFound,
}

fn route(method: &Method, path: &str, argo: bool) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let find = |group: &str, version: &str, plural: &str| {
        ALL.into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .filter(|r| argo || r.group != "argoproj.io")
    };
    match (method, parts.as_slice()) {
        (&Method::GET, ["version"]) => Route::Version,
        (&Method::GET, ["api", v]) => Route::Discovery {
            group: String::new(),
            version: v.to_string(),
        },
        (&Method::GET, ["apis", g, v]) => Route::Discovery {
            group: g.to_string(),
            version: v.to_string(),
        },
        (
            &Method::POST,
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ],
        ) => Route::AccessReview,
        (&Method::GET, ["api", v, plural]) => {
            find("", v, plural).map_or(Route::NotFound, |res| Route::Collection {
                res,
                namespace: None,
            })
        }
        (&Method::GET, ["api", v, "namespaces", ns, plural]) => {
            find("", v, plural).map_or(Route::NotFound, |res| Route::Collection {
                res,
                namespace: Some(ns.to_string()),
            })
        }
        (&Method::GET, ["apis", g, v, plural]) => {
            find(g, v, plural).map_or(Route::NotFound, |res| Route::Collection {
                res,
                namespace: None,
            })
        }
        (&Method::GET, ["apis", g, v, "namespaces", ns, plural]) => {
            find(g, v, plural).map_or(Route::NotFound, |res| Route::Collection {
                res,
                namespace: Some(ns.to_string()),
            })
        }
        _ => Route::NotFound,
    }
}

fn query(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .map(|q| url_pairs(q).collect())
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(fake): State<FakeKube>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = query(req.uri());
    let headers = req.headers().clone();
    let (argo, down) = {
        let mut inner = fake.lock();
        inner.requests.push(Logged {
            method: method.to_string(),
            accept: headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            path: path.clone(),
            query: q.clone(),
        });
        (inner.argo_served, inner.unavailable)
    };
    if down {
        // The connection breaks before an answer arrives, as with a server that is gone.
        let broken = futures::stream::once(async {
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "server down",
            ))
        });
        return Response::new(Body::from_stream(broken));
    }
    match route(&method, &path, argo) {
        Route::Version => json_response(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0000000",
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
            "compiler": "gc", "platform": "linux/amd64"})),
        Route::Discovery { group, version } => {
            let resources: Vec<Value> = ALL
                .into_iter()
                .filter(|r| r.group == group && r.version == version && (argo || r.group != "argoproj.io"))
                .map(|r| json!({"name": r.plural, "singularName": r.kind.to_ascii_lowercase(), "namespaced": true,
                    "kind": r.kind, "verbs": ["get", "list", "watch"]}))
                .collect();
            if resources.is_empty() {
                return error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            json_response(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            )
        }
        Route::AccessReview => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let attrs = &review["spec"]["resourceAttributes"];
            let key = (
                attrs["group"].as_str().unwrap_or_default().to_string(),
                attrs["resource"].as_str().unwrap_or_default().to_string(),
                attrs["verb"].as_str().unwrap_or_default().to_string(),
            );
            let allowed = !fake.lock().denied.contains(&key);
            let mut answer = review.clone();
            answer["status"] = if allowed {
                json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"triage\""})
            } else {
                json!({"allowed": false})
            };
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
        Route::Collection { res, namespace } => {
            let shape = if headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
            {
                Shape::Metadata
            } else {
                Shape::Full
            };
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(fake, res, namespace, q, shape)
            } else {
                list(&fake, res, namespace.as_deref(), &q, shape)
            }
        }
        Route::NotFound => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

fn list(
    fake: &FakeKube,
    res: Res,
    ns: Option<&str>,
    q: &BTreeMap<String, String>,
    shape: Shape,
) -> Response {
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let mut inner = fake.lock();
    let (rv, items, offset) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let Some((id, offset)) = token.split_once(':') else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "invalid continue token",
                );
            };
            let Some((rv, items)) = inner.pages.get(id).cloned() else {
                return error(
                    StatusCode::GONE,
                    "Expired",
                    "the provided continue parameter is too old to display a consistent list result",
                );
            };
            (rv, items, offset.parse::<usize>().unwrap_or(0))
        }
        None => {
            let items: Vec<Value> = inner
                .objects
                .get(&res.key())
                .map(|m| {
                    m.values()
                        .filter(|o| {
                            in_namespace(o, ns) && matches_fields(o, q.get("fieldSelector"))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (inner.rv, Arc::new(items), 0)
        }
    };
    let end = offset.saturating_add(limit).min(items.len());
    let page: Vec<Value> = items[offset..end]
        .iter()
        .map(|o| shaped(&res, o, shape, false))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if end < items.len() {
        let id = match q.get("continue").and_then(|c| c.split_once(':')) {
            Some((id, _)) => id.to_string(),
            None => {
                inner.next_page += 1;
                let id = inner.next_page.to_string();
                inner.pages.insert(id.clone(), (rv, Arc::clone(&items)));
                id
            }
        };
        meta["continue"] = format!("{id}:{end}").into();
        meta["remainingItemCount"] = (items.len() - end).into();
    }
    let (api_version, kind) = match shape {
        Shape::Metadata => (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        ),
        Shape::Full => (res.api_version(), format!("{}List", res.kind)),
    };
    drop(inner);
    json_response(json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "items": page}))
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

struct WatchState {
    rx: broadcast::Receiver<Msg>,
    backlog: std::collections::VecDeque<Bytes>,
    res: Res,
    ns: Option<String>,
    fields: Option<String>,
    shape: Shape,
    bookmarks: bool,
    last_rv: u64,
    fake: FakeKube,
    deadline: tokio::time::Instant,
    tick: tokio::time::Interval,
    done: bool,
}

fn event_line(res: &Res, kind: &str, obj: &Value, shape: Shape) -> Bytes {
    line(&json!({"type": kind, "object": shaped(res, obj, shape, true)}))
}

fn watch(
    fake: FakeKube,
    res: Res,
    ns: Option<String>,
    q: BTreeMap<String, String>,
    shape: Shape,
) -> Response {
    let rx = fake.tx.subscribe();
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800u64);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let fields = q.get("fieldSelector").cloned();
    let (backlog, gone, every, current) = {
        let inner = fake.lock();
        let gone = from != 0 && from < inner.compacted;
        let backlog: std::collections::VecDeque<Bytes> = if gone {
            std::iter::once(line(
                &json!({"type": "ERROR", "object": status(410, "Expired",
                &format!("too old resource version: {from} ({})", inner.compacted))}),
            ))
            .collect()
        } else {
            inner
                .log
                .iter()
                .filter(|(rv, key, _, obj)| {
                    *rv > from
                        && *key == res.key()
                        && in_namespace(obj, ns.as_deref())
                        && matches_fields(obj, fields.as_ref())
                })
                .map(|(_, _, kind, obj)| event_line(&res, kind, obj, shape))
                .collect()
        };
        (backlog, gone, inner.bookmark_every, inner.rv)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = WatchState {
        rx,
        backlog,
        res,
        ns,
        fields,
        shape,
        bookmarks,
        last_rv: from.max(current),
        fake,
        deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
        tick,
        done: gone,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.backlog.pop_front() {
                return Some((Ok::<Bytes, std::io::Error>(b), st));
            }
            if st.done {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep_until(st.deadline) => return None,
                _ = st.tick.tick() => {
                    // A bookmark promises every event up to its version was sent: only
                    // when nothing is waiting in this watch's queue.
                    let rv = {
                        let inner = st.fake.lock();
                        st.rx.is_empty().then_some(inner.rv.max(st.last_rv))
                    };
                    if st.bookmarks && let Some(rv) = rv {
                        st.last_rv = rv;
                        let b = line(&json!({"type": "BOOKMARK", "object": {"kind": st.res.kind,
                            "apiVersion": st.res.api_version(), "metadata": {"resourceVersion": rv.to_string()}}}));
                        return Some((Ok(b), st));
                    }
                }
                msg = st.rx.recv() => match msg {
                    Ok(Msg::Event { key, rv, kind, object }) => {
                        if key == st.res.key() && rv > st.last_rv
                            && in_namespace(&object, st.ns.as_deref())
                            && matches_fields(&object, st.fields.as_ref())
                        {
                            st.last_rv = rv;
                            return Some((Ok(event_line(&st.res, kind, &object, st.shape)), st));
                        }
                    }
                    Ok(Msg::Expire) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        st.done = true;
                        let compacted = st.fake.lock().compacted;
                        let b = line(&json!({"type": "ERROR", "object": status(410, "Expired",
                            &format!("too old resource version: {} ({compacted})", st.last_rv))}));
                        return Some((Ok(b), st));
                    }
                    Ok(Msg::Drop) => {
                        st.done = true;
                        return Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection dropped")), st));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::OK, headers, Body::from_stream(stream)).into_response()
}
