//! Enrich: what the cluster says about a signal's subject right now.
//!
//! [`enrich`] is a pure function of the signal, a read-only view of one cluster's
//! snapshot and the options: no IO, no clock, no locks. It never fails: an unknown
//! cluster, a snapshot that is still syncing or an API server that stopped answering
//! are said in `Context.cluster.state` and `Context.notes`, and the context carries
//! whatever could still be found. [`Enricher`] is the pipeline's [`Assessor`]: it maps a
//! signal to its cluster, takes read access to the snapshots, enriches and routes.

use std::sync::Arc;

use crate::cluster::evidence::{self, EvidenceLimits};
use crate::cluster::model::{AppView, PodView, Workload};
use crate::cluster::owners::{self, AppLink, PodOwner};
use crate::cluster::{Clusters, Mapping, Snapshot, annotations, deps, health};
use crate::config::Config;
use crate::signal::{Signal, Subject, WorkloadKind};
use crate::triage::Assessor;
use crate::triage::context::{
    Annotations, AppRef, ClusterInfo, Context, HealthStatus, SnapshotState, WorkloadRef,
};
use crate::triage::redact::Redactor;
use crate::triage::route::{self, Route, RoutingTable};

/// How much an enrichment collects.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrichOptions {
    pub evidence: EvidenceLimits,
    /// Most other workloads of an Argo CD application listed in the notes.
    pub max_listed_workloads: Option<usize>,
}

impl EnrichOptions {
    fn listed(&self) -> usize {
        self.max_listed_workloads.unwrap_or(10)
    }
}

/// A read-only view of the cluster a signal maps to.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    /// The configured cluster name (or the unknown name the signal gave).
    pub name: &'a str,
    pub state: SnapshotState,
    /// Why the cluster is not synced, in words.
    pub detail: Option<&'a str>,
    /// `None` only for an unknown cluster.
    pub snapshot: Option<&'a Snapshot>,
    /// Where to look for Argo CD Applications: this cluster's snapshot first, then the
    /// others (Argo CD often runs in another cluster than the one it deploys to).
    pub app_sources: &'a [&'a Snapshot],
}

/// What a signal's subject resolved to.
enum Target<'a> {
    Workload(&'a Workload, Option<&'a PodView>),
    Pod(&'a PodView),
    /// The signal names a workload the snapshot does not hold.
    Named(WorkloadRef),
    Nothing,
}

/// The context for `signal` in `view`. Pure: same inputs, same context.
pub fn enrich(
    signal: &Signal,
    view: &ClusterView<'_>,
    redactor: &Redactor,
    options: &EnrichOptions,
) -> Context {
    let mut ctx = Context::unknown(ClusterInfo {
        name: view.name.to_string(),
        state: view.state,
    });
    match view.state {
        SnapshotState::Syncing => ctx.notes.push(format!(
            "cluster {} is still syncing{}; this context may be incomplete",
            view.name,
            view.detail.map_or(String::new(), |d| format!(" ({d})"))
        )),
        SnapshotState::Unreachable => ctx.notes.push(format!(
            "cluster {} is unreachable{}; this context may be stale",
            view.name,
            view.detail.map_or(String::new(), |d| format!(" ({d})"))
        )),
        SnapshotState::UnknownCluster => ctx.notes.push(format!(
            "the signal names cluster {:?}, which is not configured; no cluster context",
            view.name
        )),
        SnapshotState::Synced | SnapshotState::Static => {}
    }

    let live_app = signal
        .argocd
        .as_ref()
        .and_then(|d| find_app(view.app_sources, d.app_namespace.as_deref(), &d.app));
    if signal.argocd.is_some() {
        ctx.app = Some(app_ref_from_signal(signal, live_app, &mut ctx.notes));
    }

    let Some(snapshot) = view.snapshot else {
        return ctx;
    };
    let target = resolve_target(signal, snapshot, live_app, options, &mut ctx.notes);
    match target {
        Target::Workload(w, focus) => {
            fill_workload(
                &mut ctx,
                snapshot,
                view.app_sources,
                w,
                focus,
                redactor,
                options,
            );
        }
        Target::Pod(p) => {
            let resolved = annotations::resolve_pod(p);
            if resolved.ignored {
                ctx.ignored = true;
                ctx.notes.push(format!(
                    "pod {}/{} is ignored (deployscope.dev/ignore: \"true\"): no work order",
                    p.namespace, p.name
                ));
                return ctx;
            }
            fill_annotations(&mut ctx, resolved.annotations, redactor);
            let mut h = health::pod_health(p);
            h.reason = redactor.redact_owned(&h.reason);
            ctx.health = Some(h);
            ctx.evidence = evidence::for_pod(snapshot, p, redactor, &options.evidence);
            fill_dependencies(&mut ctx, snapshot, &p.namespace, redactor);
        }
        Target::Named(r) => ctx.workload = Some(r),
        Target::Nothing => {}
    }
    ctx
}

/// Everything the snapshot says about one workload (and the pod a signal names).
fn fill_workload(
    ctx: &mut Context,
    snapshot: &Snapshot,
    app_sources: &[&Snapshot],
    w: &Workload,
    focus: Option<&PodView>,
    redactor: &Redactor,
    options: &EnrichOptions,
) {
    ctx.workload = Some(w.reference());
    let resolved = annotations::resolve(w);
    if resolved.ignored {
        ctx.ignored = true;
        ctx.notes.push(format!(
            "{} is ignored (deployscope.dev/ignore: \"true\"): no work order",
            w.reference()
        ));
        return;
    }
    fill_annotations(ctx, resolved.annotations, redactor);
    let pods = snapshot.pods_of(w);
    let mut h = health::assess_with(w, snapshot, &pods);
    h.reason = redactor.redact_owned(&h.reason);
    ctx.health = Some(h);
    ctx.evidence = evidence::for_workload(snapshot, w, &pods, focus, redactor, &options.evidence);
    fill_dependencies(ctx, snapshot, &w.namespace, redactor);
    if ctx.app.is_none() {
        ctx.app = tracked_app(app_sources, w);
    }
}

/// The context of a workload by itself, as `status` shows it: the same annotations,
/// health, evidence, dependencies and application a signal about it would get.
pub fn workload_context(
    view: &ClusterView<'_>,
    w: &Workload,
    redactor: &Redactor,
    options: &EnrichOptions,
) -> Context {
    let mut ctx = Context::unknown(ClusterInfo {
        name: view.name.to_string(),
        state: view.state,
    });
    if let Some(snapshot) = view.snapshot {
        fill_workload(
            &mut ctx,
            snapshot,
            view.app_sources,
            w,
            None,
            redactor,
            options,
        );
    }
    ctx
}

fn fill_annotations(ctx: &mut Context, a: Annotations, r: &Redactor) {
    if let (Some(raw), None) = (&a.tier_raw, a.tier) {
        ctx.notes.push(format!(
            "unknown tier {raw:?} (expected critical, standard or best-effort): routed as standard"
        ));
    }
    let red = |v: Option<String>| v.map(|s| r.redact_owned(&s));
    ctx.annotations = Annotations {
        owner: red(a.owner),
        oncall: red(a.oncall),
        tier: a.tier,
        tier_raw: red(a.tier_raw),
        gitops_repo: red(a.gitops_repo),
        gitops_path: red(a.gitops_path),
        runbook: red(a.runbook),
        dashboard: red(a.dashboard),
        depends_on: a.depends_on.iter().map(|d| r.redact_owned(d)).collect(),
    };
}

fn fill_dependencies(ctx: &mut Context, snapshot: &Snapshot, namespace: &str, r: &Redactor) {
    let mut deps = deps::resolve(snapshot, namespace, &ctx.annotations.depends_on);
    for d in &mut deps {
        d.reason = d.reason.take().map(|s| r.redact_owned(&s));
    }
    // A cause explains a failure: a green workload has none to explain.
    let failing = ctx
        .health
        .as_ref()
        .is_some_and(|h| h.status != HealthStatus::Green);
    ctx.likely_cause = if failing {
        deps::likely_cause(&deps)
    } else {
        None
    };
    ctx.dependencies = deps;
}

/// An Application by namespace (when known) and name, in the first source that has it.
fn find_app<'a>(
    sources: &[&'a Snapshot],
    namespace: Option<&str>,
    name: &str,
) -> Option<&'a AppView> {
    sources.iter().find_map(|s| match namespace {
        Some(ns) if !ns.is_empty() => s.app(ns, name),
        _ => match s.apps_named(name).as_slice() {
            [one] => Some(*one),
            _ => None,
        },
    })
}

/// The Application a signal names, with its current state when the watch has it.
fn app_ref_from_signal(signal: &Signal, live: Option<&AppView>, notes: &mut Vec<String>) -> AppRef {
    let d = signal.argocd.as_ref();
    let from_signal = |f: fn(&crate::signal::ArgocdDetail) -> Option<String>| d.and_then(f);
    match live {
        Some(app) => {
            let said = from_signal(|d| d.health_status.clone());
            if let (Some(said), Some(now)) = (&said, &app.health)
                && said != now
            {
                notes.push(format!(
                    "Argo CD now reports application {} {now} (the notification said {said})",
                    app.name
                ));
            }
            AppRef {
                namespace: Some(app.namespace.clone()).filter(|n| !n.is_empty()),
                name: app.name.clone(),
                health: app.health.clone().or(said),
                sync: app
                    .sync
                    .clone()
                    .or_else(|| from_signal(|d| d.sync_status.clone())),
                operation_phase: app
                    .operation_phase
                    .clone()
                    .or_else(|| from_signal(|d| d.operation_phase.clone())),
            }
        }
        None => AppRef {
            namespace: from_signal(|d| d.app_namespace.clone()),
            name: d.map_or_else(|| signal.title.clone(), |d| d.app.clone()),
            health: from_signal(|d| d.health_status.clone()),
            sync: from_signal(|d| d.sync_status.clone()),
            operation_phase: from_signal(|d| d.operation_phase.clone()),
        },
    }
}

/// The Application a workload is tracked by, when exactly one is found.
fn tracked_app(sources: &[&Snapshot], w: &Workload) -> Option<AppRef> {
    w.tracking_apps().iter().find_map(|name| {
        let (ns, bare) = match name.split_once('_') {
            Some((ns, bare)) => (Some(ns), bare),
            None => (None, name.as_str()),
        };
        find_app(sources, ns, bare).map(|app| AppRef {
            namespace: Some(app.namespace.clone()).filter(|n| !n.is_empty()),
            name: app.name.clone(),
            health: app.health.clone(),
            sync: app.sync.clone(),
            operation_phase: app.operation_phase.clone(),
        })
    })
}

fn resolve_target<'a>(
    signal: &Signal,
    snapshot: &'a Snapshot,
    live_app: Option<&AppView>,
    options: &EnrichOptions,
    notes: &mut Vec<String>,
) -> Target<'a> {
    match &signal.subject {
        Subject::Workload {
            kind,
            namespace,
            name,
        } => workload_target(snapshot, *kind, namespace, name, notes),
        Subject::Pod { namespace, name } => pod_target(snapshot, namespace, name, notes),
        Subject::Application { namespace, name } => app_target(
            signal,
            snapshot,
            name,
            namespace.as_deref(),
            live_app,
            options,
            notes,
        ),
        Subject::Other { namespace } => {
            let ns = namespace
                .clone()
                .or_else(|| signal.labels.get("namespace").cloned());
            let Some(ns) = ns else {
                notes.push("the signal names no namespace or workload; no workload context".into());
                return Target::Nothing;
            };
            if let Some(pod) = signal.labels.get("pod") {
                return pod_target(snapshot, &ns, pod, notes);
            }
            for (label, kind) in [
                ("deployment", WorkloadKind::Deployment),
                ("statefulset", WorkloadKind::StatefulSet),
                ("daemonset", WorkloadKind::DaemonSet),
                ("cronjob", WorkloadKind::CronJob),
                ("job_name", WorkloadKind::Job),
            ] {
                if let Some(name) = signal.labels.get(label) {
                    return workload_target(snapshot, kind, &ns, name, notes);
                }
            }
            notes.push(format!(
                "the signal names namespace {ns} but no workload or pod; no workload context"
            ));
            Target::Nothing
        }
    }
}

fn workload_target<'a>(
    snapshot: &'a Snapshot,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    notes: &mut Vec<String>,
) -> Target<'a> {
    match snapshot.workload(kind, namespace, name) {
        Some(w) => {
            let top = owners::top_level(snapshot, w);
            if !std::ptr::eq(top, w) {
                notes.push(format!(
                    "{} is a run of {}; reported as the CronJob",
                    w.reference(),
                    top.reference()
                ));
            }
            Target::Workload(top, None)
        }
        None => {
            let r = WorkloadRef {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
            };
            notes.push(format!("{r} is not in the cluster snapshot"));
            Target::Named(r)
        }
    }
}

fn pod_target<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
    name: &str,
    notes: &mut Vec<String>,
) -> Target<'a> {
    match snapshot.pod(namespace, name) {
        Some(pod) => match owners::workload_of_pod(snapshot, pod) {
            PodOwner::Workload(w) => Target::Workload(w, Some(pod)),
            PodOwner::Bare => {
                notes.push(format!(
                    "pod {namespace}/{name} has no controller (bare pod)"
                ));
                Target::Pod(pod)
            }
            PodOwner::Unresolved(why) => {
                notes.push(why);
                Target::Pod(pod)
            }
        },
        None => match owners::workload_by_pod_name(snapshot, namespace, name) {
            Some(w) => {
                notes.push(format!(
                    "pod {namespace}/{name} is not in the snapshot (replaced or deleted); {} matched by the pod's name",
                    w.reference()
                ));
                Target::Workload(w, None)
            }
            None => {
                notes.push(format!(
                    "pod {namespace}/{name} is not in the snapshot and no workload matches its name"
                ));
                Target::Nothing
            }
        },
    }
}

/// An Argo CD application's workload: the one that is failing. Order: not ignored
/// first; then a resource whose last sync failed; then the worst health; then how it
/// was found (sync result, resources, tracking); then by name. The others are listed
/// in the notes.
fn app_target<'a>(
    signal: &Signal,
    snapshot: &'a Snapshot,
    app: &str,
    app_namespace: Option<&str>,
    live_app: Option<&AppView>,
    options: &EnrichOptions,
    notes: &mut Vec<String>,
) -> Target<'a> {
    let found = owners::app_workloads(
        snapshot,
        app,
        app_namespace,
        signal.argocd.as_ref(),
        live_app,
    );
    if found.is_empty() {
        notes.push(format!(
            "no workload of application {app} found in this cluster (sync result, resources, tracking ids and instance labels checked)"
        ));
        return Target::Nothing;
    }
    let mut ranked: Vec<(&Workload, AppLink, HealthStatus, bool)> = found
        .into_iter()
        .map(|(w, link)| {
            (
                w,
                link,
                health::assess(w, snapshot).status,
                annotations::is_ignored(w),
            )
        })
        .collect();
    ranked.sort_by(|a, b| {
        (
            a.3,
            a.1 != AppLink::SyncFailed,
            std::cmp::Reverse(a.2),
            a.1,
            a.0.reference(),
        )
            .cmp(&(
                b.3,
                b.1 != AppLink::SyncFailed,
                std::cmp::Reverse(b.2),
                b.1,
                b.0.reference(),
            ))
    });
    let (chosen, link, _, _) = ranked[0];
    if ranked.len() > 1 {
        let others: Vec<String> = ranked[1..]
            .iter()
            .take(options.listed())
            .map(|(w, _, status, ignored)| {
                if *ignored {
                    format!("{} (ignored)", w.reference())
                } else {
                    format!("{} ({})", w.reference(), status.as_str())
                }
            })
            .collect();
        let more = ranked.len() - 1 - others.len();
        notes.push(format!(
            "application {app} manages {} workloads; chose {} ({}); others: {}{}",
            ranked.len(),
            chosen.reference(),
            link.as_str(),
            others.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    Target::Workload(chosen, None)
}

// ---------------------------------------------------------------------------------------
// The Assessor over the configured clusters

/// The pipeline's [`Assessor`]: the configured clusters, redaction, the routing table.
#[derive(Debug, Clone)]
pub struct Enricher {
    clusters: Arc<Clusters>,
    redactor: Redactor,
    routing: RoutingTable,
    options: EnrichOptions,
}

impl Enricher {
    /// From config (`[routing]`, `[redaction]`) and the started clusters.
    pub fn new(config: &Config, clusters: Arc<Clusters>) -> anyhow::Result<Enricher> {
        Ok(Enricher {
            clusters,
            redactor: Redactor::from_config(&config.redaction)?,
            routing: RoutingTable::from_config(&config.routing)?,
            options: EnrichOptions::default(),
        })
    }

    pub fn with_options(mut self, options: EnrichOptions) -> Enricher {
        self.options = options;
        self
    }

    pub fn clusters(&self) -> &Arc<Clusters> {
        &self.clusters
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn routing(&self) -> &RoutingTable {
        &self.routing
    }
}

/// Runs `f` over a read-only view of `cluster` (its snapshot read-locked, the other
/// clusters' snapshots as Application sources). Live snapshots are read even before
/// their first sync completes; the view's state says how far they got.
pub fn with_view<R>(
    clusters: &Clusters,
    cluster: &Arc<crate::cluster::Cluster>,
    f: impl FnOnce(&ClusterView<'_>) -> R,
) -> R {
    let (state, detail) = cluster.state();
    let ordered = std::iter::once(cluster).chain(
        clusters
            .clusters()
            .iter()
            .filter(|c| !Arc::ptr_eq(c, cluster)),
    );
    let guards: Vec<_> = ordered.map(|c| c.read()).collect();
    let sources: Vec<&Snapshot> = guards.iter().map(|g| &**g).collect();
    let view = ClusterView {
        name: &cluster.name,
        state,
        detail: detail.as_deref(),
        snapshot: sources.first().copied(),
        app_sources: &sources,
    };
    f(&view)
}

impl Assessor for Enricher {
    fn enrich(&self, signal: &Signal) -> Context {
        let all = self.clusters.clusters();
        match self.clusters.map(signal) {
            Mapping::Unknown(name) => {
                let guards: Vec<_> = all.iter().map(|c| c.read()).collect();
                let sources: Vec<&Snapshot> = guards.iter().map(|g| &**g).collect();
                let view = ClusterView {
                    name: &name,
                    state: SnapshotState::UnknownCluster,
                    detail: None,
                    snapshot: None,
                    app_sources: &sources,
                };
                enrich(signal, &view, &self.redactor, &self.options)
            }
            Mapping::Cluster(cluster) => with_view(&self.clusters, cluster, |view| {
                enrich(signal, view, &self.redactor, &self.options)
            }),
        }
    }

    fn route(&self, signal: &Signal, context: &Context) -> Route {
        route::route(&self.routing, signal, context)
    }
}
