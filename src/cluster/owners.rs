//! Owner resolution: from what a signal names to the workload that owns it.
//!
//! Pod → ReplicaSet → Deployment; Pod → StatefulSet or DaemonSet; Pod → Job → CronJob;
//! a Pod with no controller is bare. A Job run by a CronJob resolves to the CronJob (each
//! run has a new name; the CronJob is what a team owns and fixes). Argo CD Applications
//! resolve to the workloads they manage (see [`app_workloads`]).

use super::annotations;
use super::model::{AppResourceView, AppView, PodView, Workload};
use super::snapshot::Snapshot;
use crate::signal::{ArgocdDetail, WorkloadKind};

/// Where a pod leads.
#[derive(Debug, Clone, PartialEq)]
pub enum PodOwner<'a> {
    Workload(&'a Workload),
    /// No controller (or a static pod mirrored by its Node).
    Bare,
    /// The controller is not a workload Triage knows, or is missing from the snapshot;
    /// the text says which.
    Unresolved(String),
}

/// Lifts a Job run by a CronJob to the CronJob, when the CronJob is in the snapshot.
pub fn top_level<'a>(snapshot: &'a Snapshot, w: &'a Workload) -> &'a Workload {
    if w.kind == WorkloadKind::Job
        && let Some(owner) = w.owner.as_ref().filter(|o| o.kind == "CronJob")
        && let Some(cron) = snapshot.workload(WorkloadKind::CronJob, &w.namespace, &owner.name)
    {
        return cron;
    }
    w
}

/// True for workloads that `status` lists and dependencies resolve to: not ignored,
/// and not a Job run by a CronJob (its CronJob stands for it).
pub fn is_visible(snapshot: &Snapshot, w: &Workload) -> bool {
    if annotations::is_ignored(w) {
        return false;
    }
    w.kind != WorkloadKind::Job || std::ptr::eq(top_level(snapshot, w), w)
}

pub fn workload_of_pod<'a>(snapshot: &'a Snapshot, pod: &PodView) -> PodOwner<'a> {
    let Some(owner) = pod.owner.as_ref().filter(|o| o.kind != "Node") else {
        return PodOwner::Bare;
    };
    let ns = pod.namespace.as_str();
    let direct = |kind: WorkloadKind, name: &str| {
        snapshot.workload(kind, ns, name).map_or_else(
            || {
                PodOwner::Unresolved(format!(
                    "pod {}'s controller {kind}/{name} is not in the snapshot",
                    pod.name
                ))
            },
            |w| PodOwner::Workload(top_level(snapshot, w)),
        )
    };
    match owner.kind.as_str() {
        "ReplicaSet" => match snapshot.replica_set(ns, &owner.name) {
            Some(rs) => match rs.owner.as_ref() {
                Some(o) if o.kind == "Deployment" => direct(WorkloadKind::Deployment, &o.name),
                Some(o) => PodOwner::Unresolved(format!(
                    "pod {}'s ReplicaSet {} is controlled by {}/{}, which Triage does not watch",
                    pod.name, owner.name, o.kind, o.name
                )),
                None => PodOwner::Unresolved(format!(
                    "pod {}'s ReplicaSet {} has no Deployment",
                    pod.name, owner.name
                )),
            },
            None => PodOwner::Unresolved(format!(
                "pod {}'s ReplicaSet {} is not in the snapshot",
                pod.name, owner.name
            )),
        },
        kind => match WorkloadKind::from_kind(kind) {
            Some(k) => direct(k, &owner.name),
            None => PodOwner::Unresolved(format!(
                "pod {} is controlled by {}/{}, which Triage does not watch",
                pod.name, owner.kind, owner.name
            )),
        },
    }
}

fn strip_segment(name: &str) -> Option<&str> {
    name.rsplit_once('-')
        .map(|(head, _)| head)
        .filter(|h| !h.is_empty())
}

/// For a pod that is gone from the snapshot (replaced, or the alert is older than the
/// pod): the workload its name implies, by the controllers' naming schemes.
/// `<deployment>-<hash>-<suffix>`, `<statefulset>-<ordinal>`, `<daemonset|job>-<suffix>`.
pub fn workload_by_pod_name<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
    pod: &str,
) -> Option<&'a Workload> {
    let one = strip_segment(pod)?;
    if let Some(rs) = snapshot.replica_set(namespace, one)
        && let Some(o) = rs.owner.as_ref().filter(|o| o.kind == "Deployment")
        && let Some(w) = snapshot.workload(WorkloadKind::Deployment, namespace, &o.name)
    {
        return Some(w);
    }
    let ordinal = pod
        .rsplit_once('-')
        .is_some_and(|(_, o)| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()));
    if ordinal && let Some(w) = snapshot.workload(WorkloadKind::StatefulSet, namespace, one) {
        return Some(w);
    }
    for kind in [WorkloadKind::DaemonSet, WorkloadKind::Job] {
        if let Some(w) = snapshot.workload(kind, namespace, one) {
            return Some(top_level(snapshot, w));
        }
    }
    let two = strip_segment(one)?;
    snapshot.workload(WorkloadKind::Deployment, namespace, two)
}

/// How a workload was tied to an Argo CD Application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AppLink {
    /// Named in `operationState.syncResult.resources` with status `SyncFailed`.
    SyncFailed,
    SyncResult,
    StatusResources,
    /// `argocd.argoproj.io/tracking-id` or `app.kubernetes.io/instance`.
    Tracking,
}

impl AppLink {
    pub fn as_str(self) -> &'static str {
        match self {
            AppLink::SyncFailed => "failed in the last sync",
            AppLink::SyncResult => "in the last sync result",
            AppLink::StatusResources => "in the application's resources",
            AppLink::Tracking => "tracking id or instance label",
        }
    }
}

fn from_signal(detail: &ArgocdDetail) -> (Vec<AppResourceView>, Vec<AppResourceView>) {
    let sync = detail
        .sync_result
        .iter()
        .filter_map(|r| {
            Some(AppResourceView {
                kind: WorkloadKind::from_kind(&r.kind)?,
                namespace: r.namespace.clone().filter(|n| !n.is_empty()),
                name: r.name.clone(),
                status: r.status.clone(),
            })
        })
        .collect();
    let resources = detail
        .resources
        .iter()
        .filter_map(|r| {
            Some(AppResourceView {
                kind: WorkloadKind::from_kind(&r.kind)?,
                namespace: r.namespace.clone().filter(|n| !n.is_empty()),
                name: r.name.clone(),
                status: None,
            })
        })
        .collect();
    (sync, resources)
}

/// The workloads (ignored ones included) an Application manages, each with how it was found, in the
/// snapshot of the destination cluster. Sources: the notification's syncResult and
/// resources, the live Application's (when watched), then tracking ids and instance
/// labels. A resource without a namespace is looked up in the destination namespace.
pub fn app_workloads<'a>(
    snapshot: &'a Snapshot,
    app_name: &str,
    app_namespace: Option<&str>,
    detail: Option<&ArgocdDetail>,
    live: Option<&AppView>,
) -> Vec<(&'a Workload, AppLink)> {
    let mut found: Vec<(&'a Workload, AppLink)> = Vec::new();
    let default_ns = detail
        .and_then(|d| d.destination_namespace.clone())
        .or_else(|| live.and_then(|a| a.destination_namespace.clone()));
    let mut add = |w: &'a Workload, link: AppLink| {
        let w = top_level(snapshot, w);
        match found.iter_mut().find(|(x, _)| std::ptr::eq(*x, w)) {
            Some(entry) => entry.1 = entry.1.min(link),
            None => found.push((w, link)),
        }
    };
    let (mut sync, mut resources) = detail.map(from_signal).unwrap_or_default();
    if let Some(app) = live {
        sync.extend(app.sync_result.iter().cloned());
        resources.extend(app.resources.iter().cloned());
    }
    let lookup = |r: &AppResourceView| {
        let ns = r.namespace.as_deref().or(default_ns.as_deref())?;
        snapshot.workload(r.kind, ns, &r.name)
    };
    for r in &sync {
        if let Some(w) = lookup(r) {
            let link = if r.status.as_deref() == Some("SyncFailed") {
                AppLink::SyncFailed
            } else {
                AppLink::SyncResult
            };
            add(w, link);
        }
    }
    for r in &resources {
        if let Some(w) = lookup(r) {
            add(w, AppLink::StatusResources);
        }
    }
    let mut tracking_names = vec![app_name.to_string()];
    if let Some(ns) = app_namespace {
        tracking_names.push(format!("{ns}_{app_name}"));
    }
    for name in &tracking_names {
        for r in snapshot.tracked_by(name) {
            if let Some(w) = snapshot.workload_ref(r)
                && tracking_matches(w, app_name, app_namespace)
            {
                add(w, AppLink::Tracking);
            }
        }
    }
    found
}

/// The tracking id's app part is `<app>` or `<namespace>_<app>`; the instance label is
/// the bare app name. Guards against two apps of the same name in different namespaces.
fn tracking_matches(w: &Workload, app: &str, app_namespace: Option<&str>) -> bool {
    if let Some(id) = &w.tracking_id
        && let Some((owner, _)) = id.split_once(':')
    {
        return match owner.split_once('_') {
            Some((ns, name)) => name == app && app_namespace.is_none_or(|a| a == ns),
            None => owner == app,
        };
    }
    w.instance.as_deref() == Some(app)
}
