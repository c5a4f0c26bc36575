//! The cluster view: what each configured cluster says right now.
//!
//! One [`Snapshot`] per cluster, filled by one of two sources: live watches through the
//! Kubernetes API (`live`), or a static file of objects (`loader`). Enrichment, `status`
//! and `doctor` read snapshots only through the same query methods, so a static file
//! and a live cluster behave alike. [`Clusters`] holds them all, maps signals to a
//! cluster, and reports sync status for `/readyz`.

pub mod access;
pub mod annotations;
pub mod deps;
pub mod evidence;
pub mod health;
pub mod kubeconfig;
pub mod live;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod owners;
pub mod snapshot;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::signal::{Signal, Source};
use crate::triage::context::SnapshotState;
pub use snapshot::{Kind, Limits, Snapshot};

/// Argo CD's names for "the cluster Argo CD itself runs in".
const IN_CLUSTER: [&str; 2] = ["in-cluster", "https://kubernetes.default.svc"];

/// Where a cluster's snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    Static(PathBuf),
    Live,
}

/// Watch progress of one kind in a live cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindSync {
    /// The initial list completed (stays true across later relists).
    pub synced: bool,
    /// False when the API does not serve the kind (Argo CD not installed).
    pub served: bool,
    /// The last watch error, cleared by the next successful event.
    pub last_error: Option<String>,
    pub errors: u64,
}

#[derive(Debug, Default)]
struct SyncState {
    kinds: BTreeMap<Kind, KindSync>,
    /// `Some(error)` while the API server does not answer.
    unreachable: Option<(Timestamp, String)>,
    synced_at: Option<Timestamp>,
}

/// One configured cluster.
pub struct Cluster {
    pub name: String,
    /// Argo CD destination server URLs and names that mean this cluster.
    pub destinations: Vec<String>,
    pub source: ClusterSource,
    snapshot: RwLock<Snapshot>,
    sync: Mutex<SyncState>,
    /// The API client (live clusters), for `doctor`'s access checks.
    client: Option<kube::Client>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("destinations", &self.destinations)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Per-cluster sync status, as `/readyz` and `doctor` report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSync {
    pub name: String,
    pub state: SnapshotState,
    /// What is pending or failing, in words; `null` when synced or static.
    pub detail: Option<String>,
    pub synced_at: Option<Timestamp>,
    pub kinds: BTreeMap<String, KindSync>,
}

impl Cluster {
    fn new(
        name: String,
        destinations: Vec<String>,
        source: ClusterSource,
        snapshot: Snapshot,
        client: Option<kube::Client>,
    ) -> Cluster {
        Cluster {
            name,
            destinations,
            source,
            snapshot: RwLock::new(snapshot),
            sync: Mutex::new(SyncState::default()),
            client,
        }
    }

    /// A cluster over a snapshot built elsewhere (tests, `demo`, `replay`).
    pub fn from_snapshot(
        name: impl Into<String>,
        destinations: Vec<String>,
        snapshot: Snapshot,
    ) -> Cluster {
        Cluster::new(
            name.into(),
            destinations,
            ClusterSource::Static(PathBuf::new()),
            snapshot,
            None,
        )
    }

    /// Read access to the snapshot. Writers never panic while holding the lock, but a
    /// poisoned lock still holds a consistent-enough snapshot to read.
    pub fn read(&self) -> RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Snapshot> {
        self.snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sync_state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn client(&self) -> Option<&kube::Client> {
        self.client.as_ref()
    }

    /// The state enrichment reports, and what is wrong when not synced.
    pub fn state(&self) -> (SnapshotState, Option<String>) {
        if matches!(self.source, ClusterSource::Static(_)) {
            return (SnapshotState::Static, None);
        }
        let sync = self.sync_state();
        if let Some((since, err)) = &sync.unreachable {
            return (
                SnapshotState::Unreachable,
                Some(format!("API server unreachable since {since}: {err}")),
            );
        }
        let pending: Vec<String> = sync
            .kinds
            .iter()
            .filter(|(_, k)| k.served && !k.synced)
            .map(|(kind, k)| match &k.last_error {
                Some(e) => format!("{} ({e})", kind.as_str()),
                None => kind.as_str().to_string(),
            })
            .collect();
        if sync.kinds.is_empty() || !pending.is_empty() {
            let detail = if pending.is_empty() {
                "starting watches".to_string()
            } else {
                format!("waiting for the initial list of {}", pending.join(", "))
            };
            return (SnapshotState::Syncing, Some(detail));
        }
        (SnapshotState::Synced, None)
    }

    pub fn sync_status(&self) -> ClusterSync {
        let (state, detail) = self.state();
        let sync = self.sync_state();
        ClusterSync {
            name: self.name.clone(),
            state,
            detail,
            synced_at: sync.synced_at,
            kinds: sync
                .kinds
                .iter()
                .map(|(k, s)| (k.as_str().to_string(), s.clone()))
                .collect(),
        }
    }

    pub fn is_synced(&self) -> bool {
        matches!(
            self.state().0,
            SnapshotState::Synced | SnapshotState::Static
        )
    }

    // Live bookkeeping (called by `live`).

    pub(crate) fn register_kind(&self, kind: Kind) {
        self.sync_state().kinds.entry(kind).or_insert(KindSync {
            served: true,
            ..KindSync::default()
        });
    }

    pub(crate) fn kind_not_served(&self, kind: Kind) {
        let mut sync = self.sync_state();
        let k = sync.kinds.entry(kind).or_default();
        k.served = false;
        k.synced = true;
        k.last_error = None;
        Self::update_synced_at(&mut sync);
    }

    pub(crate) fn kind_synced(&self, kind: Kind) {
        let mut sync = self.sync_state();
        let k = sync.kinds.entry(kind).or_default();
        k.synced = true;
        k.served = true;
        k.last_error = None;
        Self::update_synced_at(&mut sync);
    }

    fn update_synced_at(sync: &mut SyncState) {
        if sync.synced_at.is_none() && sync.kinds.values().all(|k| k.synced) {
            sync.synced_at = Some(Timestamp::now());
        }
    }

    pub(crate) fn kind_ok(&self, kind: Kind) {
        let mut sync = self.sync_state();
        if let Some(k) = sync.kinds.get_mut(&kind)
            && k.last_error.is_some()
        {
            k.last_error = None;
        }
    }

    pub(crate) fn kind_error(&self, kind: Kind, error: String) {
        let mut sync = self.sync_state();
        let k = sync.kinds.entry(kind).or_default();
        k.errors += 1;
        k.last_error = Some(error);
    }

    pub(crate) fn set_reachable(&self, result: Result<(), String>) {
        let mut sync = self.sync_state();
        match result {
            Ok(()) => sync.unreachable = None,
            Err(e) => {
                let since = sync
                    .unreachable
                    .as_ref()
                    .map_or_else(Timestamp::now, |(t, _)| *t);
                sync.unreachable = Some((since, e));
            }
        }
    }

    /// Does this cluster answer to `name` (its own name, or one of its destinations)?
    fn answers_to(&self, name: &str) -> bool {
        let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
        let wanted = norm(name);
        norm(&self.name) == wanted || self.destinations.iter().any(|d| norm(d) == wanted)
    }
}

/// The clusters a signal can be about.
#[derive(Debug)]
pub struct Clusters {
    clusters: Vec<Arc<Cluster>>,
    default_cluster: String,
    cluster_label: String,
    serve_before_sync: bool,
    /// `[[clusters]]` was empty: one implicit cluster takes every signal.
    implicit: bool,
}

/// Which cluster a signal maps to.
#[derive(Debug, Clone)]
pub enum Mapping<'a> {
    Cluster(&'a Arc<Cluster>),
    /// The signal names a cluster that is not configured.
    Unknown(String),
}

/// One cluster as configured, after `[kubernetes]` defaults are applied.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    snapshot: Option<PathBuf>,
    destinations: Vec<String>,
}

fn specs(config: &Config) -> Vec<Spec> {
    let k = &config.kubernetes;
    if config.clusters.is_empty() {
        return vec![Spec {
            name: k.default_cluster.clone(),
            kubeconfig: k.kubeconfig.clone(),
            context: k.context.clone(),
            snapshot: k.snapshot.clone(),
            destinations: Vec::new(),
        }];
    }
    config
        .clusters
        .iter()
        .map(|c| Spec {
            name: c.name.clone(),
            kubeconfig: c.kubeconfig.clone().or_else(|| k.kubeconfig.clone()),
            context: c.context.clone(),
            // `kubernetes.snapshot` (and `--snapshot`) replaces the default cluster's source.
            snapshot: if c.name == k.default_cluster && k.snapshot.is_some() {
                k.snapshot.clone()
            } else {
                c.snapshot.clone()
            },
            destinations: c.argocd_destinations.clone(),
        })
        .collect()
}

impl Clusters {
    /// Builds every configured cluster: static ones load their file now (an error is
    /// fatal: the operator asked for that file); live ones resolve their kubeconfig (an
    /// error is fatal too) and start watching in the background, so an unreachable API
    /// server never blocks start-up — it shows in [`Clusters::sync_status`].
    pub async fn start(
        config: &Config,
        cancel: CancellationToken,
    ) -> anyhow::Result<Arc<Clusters>> {
        let limits = limits(config);
        let mut clusters = Vec::new();
        for spec in specs(config) {
            let cluster = match &spec.snapshot {
                Some(path) => {
                    let (snapshot, _) = loader::load_file(path, limits)
                        .with_context(|| format!("cluster {}", spec.name))?;
                    Arc::new(Cluster::new(
                        spec.name.clone(),
                        spec.destinations.clone(),
                        ClusterSource::Static(path.clone()),
                        snapshot,
                        None,
                    ))
                }
                None => {
                    let (client_config, origin) = kubeconfig::resolve_described(
                        spec.kubeconfig.as_deref(),
                        spec.context.as_deref(),
                    )
                    .await
                    .with_context(|| format!("cluster {}", spec.name))?;
                    tracing::info!(
                        cluster = %spec.name,
                        server = %client_config.cluster_url,
                        "watching the cluster with {origin}"
                    );
                    let client = kube::Client::try_from(client_config).with_context(|| {
                        format!("cluster {}: cannot build the Kubernetes client", spec.name)
                    })?;
                    let cluster = Arc::new(Cluster::new(
                        spec.name.clone(),
                        spec.destinations.clone(),
                        ClusterSource::Live,
                        Snapshot::new(limits, true),
                        Some(client.clone()),
                    ));
                    live::spawn(
                        cluster.clone(),
                        client,
                        live::Options::from_config(config),
                        cancel.clone(),
                    );
                    cluster
                }
            };
            clusters.push(cluster);
        }
        Ok(Arc::new(Clusters::new(config, clusters)))
    }

    /// Static snapshots only (no runtime needed); an error when a cluster has no snapshot.
    pub fn load_static(config: &Config) -> anyhow::Result<Clusters> {
        let limits = limits(config);
        let clusters = specs(config)
            .into_iter()
            .map(|spec| {
                let path = spec.snapshot.clone().with_context(|| {
                    format!(
                        "cluster {} has no snapshot file (set kubernetes.snapshot or --snapshot)",
                        spec.name
                    )
                })?;
                let (snapshot, _) = loader::load_file(&path, limits)
                    .with_context(|| format!("cluster {}", spec.name))?;
                Ok(Arc::new(Cluster::new(
                    spec.name,
                    spec.destinations,
                    ClusterSource::Static(path),
                    snapshot,
                    None,
                )))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Clusters::new(config, clusters))
    }

    /// Clusters built by the caller; the config supplies the mapping settings.
    pub fn from_clusters(config: &Config, clusters: Vec<Arc<Cluster>>) -> Clusters {
        Clusters::new(config, clusters)
    }

    fn new(config: &Config, clusters: Vec<Arc<Cluster>>) -> Clusters {
        Clusters {
            clusters,
            default_cluster: config.kubernetes.default_cluster.clone(),
            cluster_label: config.kubernetes.cluster_label.clone(),
            serve_before_sync: config.kubernetes.serve_before_sync,
            implicit: config.clusters.is_empty(),
        }
    }

    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn default_cluster(&self) -> Option<&Arc<Cluster>> {
        self.get(&self.default_cluster)
    }

    /// The cluster a signal is about. Argo CD signals: the destination name or server
    /// URL; Alertmanager signals: the signal's cluster, else the `cluster_label` label.
    /// A signal that names no cluster, or Argo CD's in-cluster destination, goes to the
    /// default cluster. With no `[[clusters]]` configured, every signal goes to the one
    /// cluster there is.
    pub fn map(&self, signal: &Signal) -> Mapping<'_> {
        let mut names: Vec<&str> = Vec::new();
        match signal.source {
            Source::Argocd => {
                if let Some(d) = &signal.argocd {
                    names.extend(d.destination_name.as_deref());
                    names.extend(d.destination_server.as_deref());
                }
                names.extend(signal.cluster.as_deref());
            }
            Source::Alertmanager => {
                names.extend(signal.cluster.as_deref());
                names.extend(signal.labels.get(&self.cluster_label).map(String::as_str));
            }
        }
        names.retain(|n| !n.trim().is_empty());
        let default = || match self.default_cluster() {
            Some(c) => Mapping::Cluster(c),
            None => Mapping::Unknown(self.default_cluster.clone()),
        };
        if self.implicit || names.is_empty() {
            return default();
        }
        for name in &names {
            if let Some(c) = self.clusters.iter().find(|c| c.answers_to(name)) {
                return Mapping::Cluster(c);
            }
        }
        if names
            .iter()
            .all(|n| IN_CLUSTER.contains(&n.trim().trim_end_matches('/')))
        {
            return default();
        }
        Mapping::Unknown(names[0].to_string())
    }

    pub fn sync_status(&self) -> Vec<ClusterSync> {
        self.clusters.iter().map(|c| c.sync_status()).collect()
    }

    pub fn all_synced(&self) -> bool {
        self.clusters.iter().all(|c| c.is_synced())
    }

    /// `kubernetes.serve_before_sync`: `/readyz` does not wait for the first sync.
    pub fn serves_before_sync(&self) -> bool {
        self.serve_before_sync
    }

    /// For `/readyz`: every cluster synced (or static), or `serve_before_sync` is set.
    pub fn is_ready(&self) -> bool {
        self.serve_before_sync || self.all_synced()
    }

    /// Waits until every cluster has synced; false on timeout.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.all_synced() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        events_per_object: config.kubernetes.events_per_object,
    }
}
