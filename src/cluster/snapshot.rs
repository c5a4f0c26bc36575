//! The snapshot: one cluster's compact projections and the indexes enrichment needs.
//!
//! Filled either by live watches (`cluster::live`) or by a static file
//! (`cluster::loader`); read by enrichment, `status` and `doctor` through the query
//! methods here. All lookups are by namespace and name, through indexes kept on every
//! change, so enrichment does no scans over pods or events.

use std::collections::{BTreeSet, HashSet};

/// Maps keyed by names from the API server: a fast hasher (the keys are not chosen by
/// an attacker who could aim for collisions; lookups are the enrichment hot path).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use jiff::Timestamp;

use super::health;
use super::model::{AppView, EventView, Observed, PodView, ReplicaSetView, StoredEvent, Workload};
use crate::signal::WorkloadKind;
use crate::triage::context::WorkloadRef;

/// The kinds a snapshot holds, as watched (one watch each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    Pod,
    Event,
    Application,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::Job,
        Kind::CronJob,
        Kind::Pod,
        Kind::Event,
        Kind::Application,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Pod => "Pod",
            Kind::Event => "Event",
            Kind::Application => "Application",
        }
    }

    /// API group, version and plural resource name, as RBAC and the API paths name them.
    pub fn resource(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Deployment => ("apps", "v1", "deployments"),
            Kind::StatefulSet => ("apps", "v1", "statefulsets"),
            Kind::DaemonSet => ("apps", "v1", "daemonsets"),
            Kind::ReplicaSet => ("apps", "v1", "replicasets"),
            Kind::Job => ("batch", "v1", "jobs"),
            Kind::CronJob => ("batch", "v1", "cronjobs"),
            Kind::Pod => ("", "v1", "pods"),
            Kind::Event => ("", "v1", "events"),
            Kind::Application => ("argoproj.io", "v1alpha1", "applications"),
        }
    }

    pub fn of_workload(kind: WorkloadKind) -> Kind {
        match kind {
            WorkloadKind::Deployment => Kind::Deployment,
            WorkloadKind::StatefulSet => Kind::StatefulSet,
            WorkloadKind::DaemonSet => Kind::DaemonSet,
            WorkloadKind::Job => Kind::Job,
            WorkloadKind::CronJob => Kind::CronJob,
        }
    }
}

fn slot(kind: WorkloadKind) -> usize {
    match kind {
        WorkloadKind::Deployment => 0,
        WorkloadKind::StatefulSet => 1,
        WorkloadKind::DaemonSet => 2,
        WorkloadKind::Job => 3,
        WorkloadKind::CronJob => 4,
    }
}

const WORKLOAD_KINDS: [WorkloadKind; 5] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::Job,
    WorkloadKind::CronJob,
];

/// Bounds on what the snapshot keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most Warning events kept per involved object (the most recent win).
    pub events_per_object: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            events_per_object: 10,
        }
    }
}

/// Everything in one namespace.
#[derive(Debug, Default)]
struct Namespace {
    workloads: [HashMap<String, Workload>; 5],
    pods: HashMap<String, PodView>,
    replica_sets: HashMap<String, ReplicaSetView>,
    /// Warning events by involved object kind and name, most recent first.
    events: KindMap<Vec<StoredEvent>>,
    apps: HashMap<String, AppView>,
    /// Pod names by controlling owner kind and name.
    pods_by_owner: KindMap<BTreeSet<String>>,
    /// ReplicaSet names by their Deployment.
    rs_by_deployment: HashMap<String, BTreeSet<String>>,
    /// Job names by their CronJob.
    jobs_by_cronjob: HashMap<String, BTreeSet<String>>,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.workloads.iter().all(HashMap::is_empty)
            && self.pods.is_empty()
            && self.replica_sets.is_empty()
            && self.events.is_empty()
            && self.apps.is_empty()
    }
}

fn index_add(index: &mut HashMap<String, BTreeSet<String>>, key: String, name: &str) {
    index.entry(key).or_default().insert(name.to_string());
}

fn index_remove(index: &mut HashMap<String, BTreeSet<String>>, key: &str, name: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(name);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// A map by object kind, then name: lookups by `&str` pairs without building a key.
#[derive(Debug)]
struct KindMap<V> {
    by_kind: HashMap<Box<str>, HashMap<Box<str>, V>>,
}

impl<V> Default for KindMap<V> {
    fn default() -> Self {
        KindMap {
            by_kind: HashMap::default(),
        }
    }
}

impl<V: Default> KindMap<V> {
    fn get(&self, kind: &str, name: &str) -> Option<&V> {
        self.by_kind.get(kind)?.get(name)
    }

    fn get_mut(&mut self, kind: &str, name: &str) -> Option<&mut V> {
        self.by_kind.get_mut(kind)?.get_mut(name)
    }

    fn get_or_default(&mut self, kind: &str, name: &str) -> &mut V {
        // Writes only (watch events): the key allocations do not matter here.
        self.by_kind
            .entry(kind.into())
            .or_default()
            .entry(name.into())
            .or_default()
    }

    /// Removes the entry when `empty` says it holds nothing any more.
    fn prune(&mut self, kind: &str, name: &str, empty: impl Fn(&V) -> bool) {
        if let Some(names) = self.by_kind.get_mut(kind) {
            if names.get(name).is_some_and(empty) {
                names.remove(name);
            }
            if names.is_empty() {
                self.by_kind.remove(kind);
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        self.by_kind.retain(|_, names| {
            names.retain(|_, v| keep(v));
            !names.is_empty()
        });
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.by_kind.values().flat_map(HashMap::values)
    }

    fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }
}

/// One cluster's state.
#[derive(Debug, Default)]
pub struct Snapshot {
    namespaces: HashMap<String, Namespace>,
    /// Workloads by the Argo CD application their tracking id or instance label names.
    by_app: HashMap<String, BTreeSet<WorkloadRef>>,
    /// Keys present when a relist of a kind began; whatever the relist does not
    /// mention again is gone.
    relists: HashMap<Kind, HashSet<(String, String)>>,
    limits: Limits,
    /// Whether workload status changes are timestamped (live: yes; static: no, a file
    /// has no "when it changed").
    track_transitions: bool,
}

impl Snapshot {
    pub fn new(limits: Limits, track_transitions: bool) -> Snapshot {
        Snapshot {
            limits,
            track_transitions,
            ..Snapshot::default()
        }
    }

    fn ns_mut(&mut self, ns: &str) -> &mut Namespace {
        self.namespaces.entry(ns.to_string()).or_default()
    }

    fn prune_ns(&mut self, ns: &str) {
        if self.namespaces.get(ns).is_some_and(Namespace::is_empty) {
            self.namespaces.remove(ns);
        }
    }

    // -----------------------------------------------------------------------------------
    // Writes

    /// Adds or replaces a workload. `now` is when the change was seen (live), used as
    /// "since" when its own status changed.
    pub fn apply_workload(&mut self, mut w: Workload, now: Option<Timestamp>) {
        self.mark_seen(Kind::of_workload(w.kind), &w.namespace, &w.name);
        let verdict = health::own_verdict(&w);
        // Taken out: the new version replaces it below.
        let previous = self
            .namespaces
            .get_mut(&w.namespace)
            .and_then(|ns| ns.workloads[slot(w.kind)].remove(&w.name));
        w.observed = if self.track_transitions {
            Some(match previous.as_ref().and_then(|p| p.observed) {
                Some(o) if o.status == verdict.status => o,
                Some(_) => Observed {
                    status: verdict.status,
                    since: now,
                },
                None => Observed {
                    status: verdict.status,
                    since: None,
                },
            })
        } else {
            None
        };
        if let Some(prev) = &previous {
            self.unindex_workload(prev);
        }
        self.index_workload(&w);
        let ns = self.ns_mut(&w.namespace.clone());
        ns.workloads[slot(w.kind)].insert(w.name.clone(), w);
    }

    pub fn delete_workload(&mut self, kind: WorkloadKind, namespace: &str, name: &str) {
        let removed = self
            .namespaces
            .get_mut(namespace)
            .and_then(|ns| ns.workloads[slot(kind)].remove(name));
        if let Some(w) = removed {
            self.unindex_workload(&w);
        }
        self.prune_ns(namespace);
    }

    fn index_workload(&mut self, w: &Workload) {
        for app in w.tracking_apps() {
            self.by_app.entry(app).or_default().insert(w.reference());
        }
        if w.kind == WorkloadKind::Job
            && let Some(owner) = w.owner.as_ref().filter(|o| o.kind == "CronJob")
        {
            let key = owner.name.clone();
            let name = w.name.clone();
            index_add(&mut self.ns_mut(&w.namespace).jobs_by_cronjob, key, &name);
        }
    }

    fn unindex_workload(&mut self, w: &Workload) {
        let reference = w.reference();
        for app in w.tracking_apps() {
            if let Some(set) = self.by_app.get_mut(&app) {
                set.remove(&reference);
                if set.is_empty() {
                    self.by_app.remove(&app);
                }
            }
        }
        if w.kind == WorkloadKind::Job
            && let Some(owner) = w.owner.as_ref().filter(|o| o.kind == "CronJob")
            && let Some(ns) = self.namespaces.get_mut(&w.namespace)
        {
            index_remove(&mut ns.jobs_by_cronjob, &owner.name, &w.name);
        }
    }

    pub fn apply_pod(&mut self, pod: PodView) {
        self.mark_seen(Kind::Pod, &pod.namespace, &pod.name);
        let ns = self.ns_mut(&pod.namespace.clone());
        if let Some(prev) = ns.pods.get(&pod.name)
            && let Some(o) = &prev.owner
        {
            if let Some(set) = ns.pods_by_owner.get_mut(&o.kind, &o.name) {
                set.remove(&pod.name);
            }
            ns.pods_by_owner.prune(&o.kind, &o.name, BTreeSet::is_empty);
        }
        if let Some(o) = &pod.owner {
            ns.pods_by_owner
                .get_or_default(&o.kind, &o.name)
                .insert(pod.name.clone());
        }
        ns.pods.insert(pod.name.clone(), pod);
    }

    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace)
            && let Some(prev) = ns.pods.remove(name)
            && let Some(o) = &prev.owner
        {
            if let Some(set) = ns.pods_by_owner.get_mut(&o.kind, &o.name) {
                set.remove(name);
            }
            ns.pods_by_owner.prune(&o.kind, &o.name, BTreeSet::is_empty);
        }
        self.prune_ns(namespace);
    }

    pub fn apply_replica_set(&mut self, rs: ReplicaSetView) {
        self.mark_seen(Kind::ReplicaSet, &rs.namespace, &rs.name);
        let ns = self.ns_mut(&rs.namespace.clone());
        if let Some(prev) = ns.replica_sets.get(&rs.name)
            && let Some(o) = prev.owner.as_ref().filter(|o| o.kind == "Deployment")
        {
            let key = o.name.clone();
            index_remove(&mut ns.rs_by_deployment, &key, &rs.name);
        }
        if let Some(o) = rs.owner.as_ref().filter(|o| o.kind == "Deployment") {
            index_add(&mut ns.rs_by_deployment, o.name.clone(), &rs.name);
        }
        ns.replica_sets.insert(rs.name.clone(), rs);
    }

    pub fn delete_replica_set(&mut self, namespace: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace)
            && let Some(prev) = ns.replica_sets.remove(name)
            && let Some(o) = prev.owner.as_ref().filter(|o| o.kind == "Deployment")
        {
            index_remove(&mut ns.rs_by_deployment, &o.name, name);
        }
        self.prune_ns(namespace);
    }

    /// Adds or replaces a Warning event; keeps the most recent `events_per_object` per
    /// involved object.
    pub fn apply_event(&mut self, ev: EventView) {
        self.mark_seen(Kind::Event, &ev.namespace, &ev.name);
        let limit = self.limits.events_per_object.max(1);
        let ns = self.ns_mut(&ev.namespace.clone());
        let list = ns
            .events
            .get_or_default(&ev.involved_kind, &ev.involved_name);
        let ev = StoredEvent::from(ev);
        list.retain(|e| e.name != ev.name);
        let at = list
            .iter()
            .position(|e| e.last_seen < ev.last_seen)
            .unwrap_or(list.len());
        list.insert(at, ev);
        list.truncate(limit);
        // Most objects have one or two events: keep the list exactly that long.
        list.shrink_to_fit();
    }

    /// Removes event `name` about object `kind/involved` in `namespace`.
    pub fn delete_event(&mut self, namespace: &str, kind: &str, involved: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            if let Some(list) = ns.events.get_mut(kind, involved) {
                list.retain(|e| &*e.name != name);
            }
            ns.events.prune(kind, involved, Vec::is_empty);
        }
        self.prune_ns(namespace);
    }

    /// Drops events last seen before `cutoff` (and events with no time at all).
    pub fn expire_events(&mut self, cutoff: Timestamp) -> usize {
        let mut dropped = 0;
        for ns in self.namespaces.values_mut() {
            ns.events.retain(|list| {
                let before = list.len();
                list.retain(|e| e.last_seen.is_some_and(|t| t >= cutoff));
                dropped += before - list.len();
                !list.is_empty()
            });
        }
        self.namespaces.retain(|_, ns| !ns.is_empty());
        dropped
    }

    pub fn apply_app(&mut self, app: AppView) {
        self.mark_seen(Kind::Application, &app.namespace, &app.name);
        let ns = self.ns_mut(&app.namespace.clone());
        ns.apps.insert(app.name.clone(), app);
    }

    pub fn delete_app(&mut self, namespace: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.apps.remove(name);
        }
        self.prune_ns(namespace);
    }

    /// A full relist of `kind` begins: remember what is there now.
    pub fn begin_relist(&mut self, kind: Kind) {
        let keys = self.keys_of(kind);
        self.relists.insert(kind, keys);
    }

    /// The relist of `kind` is complete: whatever it did not mention is gone.
    pub fn end_relist(&mut self, kind: Kind) {
        let Some(stale) = self.relists.remove(&kind) else {
            return;
        };
        for (ns, name) in stale {
            match kind {
                Kind::Deployment => self.delete_workload(WorkloadKind::Deployment, &ns, &name),
                Kind::StatefulSet => self.delete_workload(WorkloadKind::StatefulSet, &ns, &name),
                Kind::DaemonSet => self.delete_workload(WorkloadKind::DaemonSet, &ns, &name),
                Kind::Job => self.delete_workload(WorkloadKind::Job, &ns, &name),
                Kind::CronJob => self.delete_workload(WorkloadKind::CronJob, &ns, &name),
                Kind::Pod => self.delete_pod(&ns, &name),
                Kind::ReplicaSet => self.delete_replica_set(&ns, &name),
                Kind::Application => self.delete_app(&ns, &name),
                Kind::Event => {
                    if let Some(n) = self.namespaces.get_mut(&ns) {
                        n.events.retain(|list| {
                            list.retain(|e| *e.name != *name);
                            !list.is_empty()
                        });
                    }
                    self.prune_ns(&ns);
                }
            }
        }
    }

    fn mark_seen(&mut self, kind: Kind, ns: &str, name: &str) {
        if let Some(stale) = self.relists.get_mut(&kind) {
            stale.remove(&(ns.to_string(), name.to_string()));
        }
    }

    fn keys_of(&self, kind: Kind) -> HashSet<(String, String)> {
        let mut out = HashSet::new();
        for (ns_name, ns) in &self.namespaces {
            let mut add = |name: &String| {
                out.insert((ns_name.clone(), name.clone()));
            };
            match kind {
                Kind::Deployment => ns.workloads[0].keys().for_each(&mut add),
                Kind::StatefulSet => ns.workloads[1].keys().for_each(&mut add),
                Kind::DaemonSet => ns.workloads[2].keys().for_each(&mut add),
                Kind::Job => ns.workloads[3].keys().for_each(&mut add),
                Kind::CronJob => ns.workloads[4].keys().for_each(&mut add),
                Kind::Pod => ns.pods.keys().for_each(&mut add),
                Kind::ReplicaSet => ns.replica_sets.keys().for_each(&mut add),
                Kind::Application => ns.apps.keys().for_each(&mut add),
                Kind::Event => ns
                    .events
                    .values()
                    .flatten()
                    .for_each(|e| add(&e.name.to_string())),
            }
        }
        out
    }

    // -----------------------------------------------------------------------------------
    // Reads

    pub fn workload(&self, kind: WorkloadKind, namespace: &str, name: &str) -> Option<&Workload> {
        self.namespaces.get(namespace)?.workloads[slot(kind)].get(name)
    }

    pub fn workload_ref(&self, r: &WorkloadRef) -> Option<&Workload> {
        self.workload(r.kind, &r.namespace, &r.name)
    }

    /// Every workload (ignored ones included), in no particular order.
    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.namespaces
            .values()
            .flat_map(|ns| ns.workloads.iter().flat_map(HashMap::values))
    }

    /// Workloads named `name` in `namespace`, any kind.
    pub fn workloads_named_in(&self, namespace: &str, name: &str) -> Vec<&Workload> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        WORKLOAD_KINDS
            .iter()
            .filter_map(|k| ns.workloads[slot(*k)].get(name))
            .collect()
    }

    /// Workloads named `name` in any namespace, any kind.
    pub fn workloads_named(&self, name: &str) -> Vec<&Workload> {
        let mut out: Vec<&Workload> = self
            .namespaces
            .keys()
            .flat_map(|ns| self.workloads_named_in(ns, name))
            .collect();
        out.sort_by(|a, b| (&a.namespace, a.kind).cmp(&(&b.namespace, b.kind)));
        out
    }

    /// Workloads whose tracking id or instance label names Argo CD app `app`.
    pub fn tracked_by(&self, app: &str) -> impl Iterator<Item = &WorkloadRef> {
        self.by_app.get(app).into_iter().flatten()
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodView> {
        self.namespaces.get(namespace)?.pods.get(name)
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodView> {
        self.namespaces.values().flat_map(|ns| ns.pods.values())
    }

    pub fn replica_set(&self, namespace: &str, name: &str) -> Option<&ReplicaSetView> {
        self.namespaces.get(namespace)?.replica_sets.get(name)
    }

    /// Pods whose controller is `kind/name` directly.
    pub fn pods_owned_by(&self, namespace: &str, kind: &str, name: &str) -> Vec<&PodView> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        ns.pods_by_owner
            .get(kind, name)
            .into_iter()
            .flatten()
            .filter_map(|p| ns.pods.get(p))
            .collect()
    }

    /// ReplicaSets controlled by Deployment `name`.
    pub fn replica_sets_of(&self, namespace: &str, deployment: &str) -> Vec<&str> {
        self.namespaces
            .get(namespace)
            .and_then(|ns| ns.rs_by_deployment.get(deployment))
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// Jobs controlled by CronJob `name`.
    pub fn jobs_of(&self, namespace: &str, cronjob: &str) -> Vec<&Workload> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        ns.jobs_by_cronjob
            .get(cronjob)
            .into_iter()
            .flatten()
            .filter_map(|j| ns.workloads[slot(WorkloadKind::Job)].get(j))
            .collect()
    }

    /// Every pod a workload runs: through its ReplicaSets for a Deployment, through its
    /// Jobs for a CronJob, directly otherwise.
    pub fn pods_of(&self, w: &Workload) -> Vec<&PodView> {
        let ns = w.namespace.as_str();
        let mut pods = match w.kind {
            WorkloadKind::Deployment => self
                .replica_sets_of(ns, &w.name)
                .into_iter()
                .flat_map(|rs| self.pods_owned_by(ns, "ReplicaSet", rs))
                .collect(),
            WorkloadKind::CronJob => self
                .jobs_of(ns, &w.name)
                .into_iter()
                .flat_map(|j| self.pods_owned_by(ns, "Job", &j.name))
                .collect(),
            kind => self.pods_owned_by(ns, kind.as_str(), &w.name),
        };
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }

    /// Warning events about object `kind/name`, most recent first.
    pub fn events_about(&self, namespace: &str, kind: &str, name: &str) -> &[StoredEvent] {
        self.namespaces
            .get(namespace)
            .and_then(|ns| ns.events.get(kind, name))
            .map_or(&[], Vec::as_slice)
    }

    pub fn app(&self, namespace: &str, name: &str) -> Option<&AppView> {
        self.namespaces.get(namespace)?.apps.get(name)
    }

    /// Applications named `name` in any namespace.
    pub fn apps_named(&self, name: &str) -> Vec<&AppView> {
        let mut out: Vec<&AppView> = self
            .namespaces
            .values()
            .filter_map(|ns| ns.apps.get(name))
            .collect();
        out.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        out
    }

    /// Object counts per kind (metrics, `doctor`, the benchmark).
    pub fn counts(&self) -> Vec<(Kind, usize)> {
        Kind::ALL
            .iter()
            .map(|&kind| {
                let n = self
                    .namespaces
                    .values()
                    .map(|ns| match kind {
                        Kind::Deployment => ns.workloads[0].len(),
                        Kind::StatefulSet => ns.workloads[1].len(),
                        Kind::DaemonSet => ns.workloads[2].len(),
                        Kind::Job => ns.workloads[3].len(),
                        Kind::CronJob => ns.workloads[4].len(),
                        Kind::Pod => ns.pods.len(),
                        Kind::ReplicaSet => ns.replica_sets.len(),
                        Kind::Event => ns.events.values().map(Vec::len).sum(),
                        Kind::Application => ns.apps.len(),
                    })
                    .sum();
                (kind, n)
            })
            .collect()
    }
}
