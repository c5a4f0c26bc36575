//! Live snapshot: kube-rs watchers, one per kind, feeding the compact projections.
//!
//! Each watch lists (paged), then watches from the list's resourceVersion with
//! bookmarks; a `410 Gone` makes the watcher relist, and the relist replaces what the
//! snapshot held of that kind (objects the relist does not mention are dropped). Errors
//! back off (client-go's schedule: 0.8 s doubling to 30 s, with jitter). Full objects
//! are parsed one event at a time and only their projection is kept, so memory is
//! bounded by the projections, not by the API objects. ReplicaSets are watched as
//! metadata only. Events are watched with `type=Warning` and aged out. Argo CD
//! Applications are watched when the API serves `argoproj.io/v1alpha1` applications.
//!
//! Whether the API server is reachable is decided by a probe (`GET /version`) that runs
//! whenever a watch fails, until it answers again.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::model::{AppView, EventView, PodView, ReplicaSetView, Workload};
use super::snapshot::{Kind, Snapshot};
use super::wire::{CronJob, DaemonSet, Deployment, Event, Job, Pod, ReplicaSet, StatefulSet};
use crate::config::Config;
use crate::signal::WorkloadKind;

/// How long the reachability probe waits for `GET /version`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the live watches.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects per list page (client-go uses 500; smaller pages bound the memory a
    /// relist needs).
    pub page_size: u32,
    /// Warning events older than this are dropped.
    pub event_max_age: Duration,
    /// How often aged events are swept.
    pub sweep_every: Duration,
    /// Server-side watch timeout; the watch is renewed after it.
    pub watch_timeout: u32,
    /// Wait between reachability probes while the API server does not answer.
    pub probe_every: Duration,
}

impl Options {
    pub fn from_config(config: &Config) -> Options {
        let k = &config.kubernetes;
        Options {
            page_size: k.list_page_size,
            event_max_age: k.event_max_age,
            sweep_every: (k.event_max_age / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            watch_timeout: 290,
            probe_every: Duration::from_secs(2),
        }
    }
}

/// A kind the snapshot watches: how its objects enter and leave the snapshot.
trait Watched: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static {
    const KIND: Kind;
    fn apply(self, snapshot: &mut Snapshot, now: Timestamp);
    fn remove(self, snapshot: &mut Snapshot);
}

fn ns_name<K: kube::Resource>(k: &K) -> (String, String) {
    let m = k.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

macro_rules! watched_workload {
    ($ty:ty, $kind:ident, $from:path) => {
        impl Watched for $ty {
            const KIND: Kind = Kind::$kind;
            fn apply(self, snapshot: &mut Snapshot, now: Timestamp) {
                snapshot.apply_workload($from(self), Some(now));
            }
            fn remove(self, snapshot: &mut Snapshot) {
                let (ns, name) = ns_name(&self);
                snapshot.delete_workload(WorkloadKind::$kind, &ns, &name);
            }
        }
    };
}

watched_workload!(Deployment, Deployment, Workload::from_deployment);
watched_workload!(StatefulSet, StatefulSet, Workload::from_stateful_set);
watched_workload!(DaemonSet, DaemonSet, Workload::from_daemon_set);
watched_workload!(Job, Job, Workload::from_job);
watched_workload!(CronJob, CronJob, Workload::from_cron_job);

impl Watched for Pod {
    const KIND: Kind = Kind::Pod;
    fn apply(self, snapshot: &mut Snapshot, _now: Timestamp) {
        snapshot.apply_pod(PodView::from_pod(self));
    }
    fn remove(self, snapshot: &mut Snapshot) {
        let (ns, name) = ns_name(&self);
        snapshot.delete_pod(&ns, &name);
    }
}

impl Watched for ReplicaSet {
    const KIND: Kind = Kind::ReplicaSet;
    fn apply(self, snapshot: &mut Snapshot, _now: Timestamp) {
        snapshot.apply_replica_set(ReplicaSetView::from_replica_set(self));
    }
    fn remove(self, snapshot: &mut Snapshot) {
        let (ns, name) = ns_name(&self);
        snapshot.delete_replica_set(&ns, &name);
    }
}

impl Watched for Event {
    const KIND: Kind = Kind::Event;
    fn apply(self, snapshot: &mut Snapshot, _now: Timestamp) {
        if let Some(ev) = EventView::from_event(self) {
            snapshot.apply_event(ev);
        }
    }
    fn remove(self, snapshot: &mut Snapshot) {
        if let Some(ev) = EventView::from_event(self) {
            snapshot.delete_event(
                &ev.namespace,
                &ev.involved_kind,
                &ev.involved_name,
                &ev.name,
            );
        }
    }
}

impl Watched for DynamicObject {
    const KIND: Kind = Kind::Application;
    fn apply(self, snapshot: &mut Snapshot, _now: Timestamp) {
        let mut value = self.data;
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "metadata".into(),
                serde_json::json!({
                    "name": self.metadata.name,
                    "namespace": self.metadata.namespace,
                }),
            );
        }
        match AppView::from_json(value) {
            Ok(app) => snapshot.apply_app(app),
            Err(e) => tracing::warn!(
                app = self.metadata.name.as_deref().unwrap_or(""),
                "skipping an Argo CD Application that does not parse: {e:#}"
            ),
        }
    }
    fn remove(self, snapshot: &mut Snapshot) {
        let (ns, name) = ns_name(&self);
        snapshot.delete_app(&ns, &name);
    }
}

/// Starts every watch of a live cluster, the event sweep and the reachability probe.
pub fn spawn(
    cluster: Arc<Cluster>,
    client: kube::Client,
    options: Options,
    cancel: CancellationToken,
) {
    let probe = Arc::new(Notify::new());
    let cfg = watcher::Config::default()
        .page_size(options.page_size)
        .timeout(options.watch_timeout);
    for kind in Kind::ALL {
        cluster.register_kind(kind);
    }

    macro_rules! typed {
        ($ty:ty) => {
            tokio::spawn(run::<$ty, _>(
                cluster.clone(),
                watcher::watcher(Api::<$ty>::all(client.clone()), cfg.clone()).default_backoff(),
                probe.clone(),
                cancel.clone(),
            ));
        };
    }
    typed!(Deployment);
    typed!(StatefulSet);
    typed!(DaemonSet);
    typed!(Job);
    typed!(CronJob);
    typed!(Pod);
    // Metadata only: `wire::ReplicaSet` asks for PartialObjectMetadata.
    typed!(ReplicaSet);
    tokio::spawn(run::<Event, _>(
        cluster.clone(),
        watcher::watcher(
            Api::<Event>::all(client.clone()),
            cfg.clone().fields("type=Warning"),
        )
        .default_backoff(),
        probe.clone(),
        cancel.clone(),
    ));
    tokio::spawn(watch_apps(
        cluster.clone(),
        client.clone(),
        cfg,
        probe.clone(),
        cancel.clone(),
    ));
    tokio::spawn(sweep_events(
        cluster.clone(),
        options.clone(),
        cancel.clone(),
    ));
    tokio::spawn(probe_loop(
        cluster,
        client,
        probe,
        options.probe_every,
        cancel,
    ));
}

/// Feeds one watch into the snapshot until cancelled.
async fn run<K, S>(cluster: Arc<Cluster>, stream: S, probe: Arc<Notify>, cancel: CancellationToken)
where
    K: Watched,
    S: Stream<Item = Result<WatchEvent<K>, watcher::Error>> + Send,
{
    let kind = K::KIND;
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Ok(event)) => {
                let now = Timestamp::now();
                let mut done = false;
                {
                    let mut snapshot = cluster.write();
                    match event {
                        WatchEvent::Init => snapshot.begin_relist(kind),
                        WatchEvent::InitApply(obj) | WatchEvent::Apply(obj) => {
                            obj.apply(&mut snapshot, now)
                        }
                        WatchEvent::Delete(obj) => obj.remove(&mut snapshot),
                        WatchEvent::InitDone => {
                            snapshot.end_relist(kind);
                            done = true;
                        }
                    }
                }
                if done {
                    tracing::debug!(cluster = %cluster.name, kind = kind.as_str(), "listed");
                    cluster.kind_synced(kind);
                } else {
                    cluster.kind_ok(kind);
                }
            }
            Some(Err(err)) => {
                // An expired watch is routine (the watcher relists); anything else is not.
                if matches!(&err, watcher::Error::WatchError(s) if s.code == 410) {
                    tracing::info!(cluster = %cluster.name, kind = kind.as_str(), "watch expired, relisting");
                } else {
                    tracing::warn!(cluster = %cluster.name, kind = kind.as_str(), "watch failed: {err}");
                }
                cluster.kind_error(kind, describe(&err));
                probe.notify_one();
            }
        }
    }
}

/// A watch error in words, without URLs (they can carry query parameters).
fn describe(err: &watcher::Error) -> String {
    match err {
        watcher::Error::WatchError(status) if status.code == 410 => {
            "watch expired (410 Gone), relisting".into()
        }
        watcher::Error::WatchError(status) => format!("{} ({})", status.message, status.code),
        watcher::Error::InitialListFailed(e) => format!("list failed: {}", client_error(e)),
        watcher::Error::WatchStartFailed(e) => {
            format!("watch failed to start: {}", client_error(e))
        }
        watcher::Error::WatchFailed(e) => format!("watch failed: {}", client_error(e)),
        watcher::Error::NoResourceVersion => "the API returned no resourceVersion".into(),
    }
}

fn client_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.is_forbidden() => format!("forbidden by RBAC: {}", s.message),
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => {
            // The whole chain, for "connection refused" and friends.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// The Application resource, when the API serves it; `None` when Argo CD's CRD is not
/// installed (not an error: Triage works without it).
pub async fn discover_apps(client: &kube::Client) -> Result<Option<ApiResource>, kube::Error> {
    match client
        .list_api_group_resources("argoproj.io/v1alpha1")
        .await
    {
        Ok(list) => Ok(list
            .resources
            .iter()
            .find(|r| r.name == "applications")
            .map(|r| {
                ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk("argoproj.io", "v1alpha1", &r.kind),
                    "applications",
                )
            })),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn watch_apps(
    cluster: Arc<Cluster>,
    client: kube::Client,
    cfg: watcher::Config,
    probe: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut wait = Duration::from_millis(500);
    let resource = loop {
        match discover_apps(&client).await {
            Ok(Some(r)) => break r,
            Ok(None) => {
                tracing::info!(cluster = %cluster.name, "Argo CD Applications are not served here; not watching them");
                cluster.kind_not_served(Kind::Application);
                return;
            }
            Err(e) => {
                cluster.kind_error(
                    Kind::Application,
                    format!("discovery failed: {}", client_error(&e)),
                );
                probe.notify_one();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    };
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    run::<DynamicObject, _>(
        cluster,
        watcher::watcher(api, cfg).default_backoff(),
        probe,
        cancel,
    )
    .await;
}

async fn sweep_events(cluster: Arc<Cluster>, options: Options, cancel: CancellationToken) {
    let max_age =
        jiff::SignedDuration::try_from(options.event_max_age).unwrap_or(jiff::SignedDuration::MAX);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(options.sweep_every) => {}
        }
        let cutoff = Timestamp::now()
            .checked_sub(max_age)
            .unwrap_or(Timestamp::MIN);
        let dropped = cluster.write().expire_events(cutoff);
        if dropped > 0 {
            tracing::debug!(cluster = %cluster.name, dropped, "aged out Warning events");
        }
    }
}

async fn probe_loop(
    cluster: Arc<Cluster>,
    client: kube::Client,
    probe: Arc<Notify>,
    every: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = probe.notified() => {}
        }
        loop {
            // An answer that takes this long counts as none (the client retries 429/503
            // on its own; a server that keeps answering 503 is not serving).
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                r = tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()) => r,
            };
            match result {
                Ok(Ok(_)) => {
                    cluster.set_reachable(Ok(()));
                    break;
                }
                Ok(Err(e)) => {
                    cluster.set_reachable(Err(client_error(&e)));
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                }
                Err(_) => {
                    cluster.set_reachable(Err(format!(
                        "GET /version got no answer within {} s",
                        PROBE_TIMEOUT.as_secs()
                    )));
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                }
            }
        }
    }
}
