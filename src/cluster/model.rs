//! Compact projections: what the snapshot keeps of each Kubernetes object.
//!
//! Only what enrichment, health and owner resolution read. No managedFields, no pod
//! specs, no annotations other than `deployscope.dev/*` and Argo CD's tracking id, no
//! labels other than `app.kubernetes.io/instance`. Live watches and the static loader
//! both parse the API objects (k8s-openapi types) and keep only these, so both paths
//! share one store and one set of rules.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Deserialize;

use super::wire;
use crate::signal::WorkloadKind;

/// Annotation prefix of the deployscope convention.
pub const ANNOTATION_PREFIX: &str = "deployscope.dev/";
/// Argo CD 3.x resource tracking annotation: `<app>:<group>/<kind>:<ns>/<name>`.
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Label-based tracking of older Argo CD installs.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Longest message kept from the cluster (events, conditions, container states).
/// Kubernetes messages can be kilobytes (stack traces in termination messages); a work
/// order needs the start of it.
pub const MAX_MESSAGE: usize = 512;

/// Cuts `s` to `MAX_MESSAGE` bytes on a char boundary, marking the cut.
pub fn clip(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn clip_opt(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
        .map(|s| if s.len() <= MAX_MESSAGE { s } else { clip(&s) })
}

/// The controlling owner of an object (`ownerReferences[controller=true]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

/// The controlling owner among `ownerReferences` (Kubernetes allows at most one); a
/// lone owner counts too, for objects created by tools that forget the flag.
fn controller(refs: Option<Vec<OwnerReference>>) -> Option<OwnerRef> {
    let mut refs = refs?;
    let at = refs
        .iter()
        .position(|r| r.controller == Some(true))
        .or(if refs.len() == 1 { Some(0) } else { None })?;
    let r = refs.swap_remove(at);
    Some(OwnerRef {
        kind: r.kind,
        name: r.name,
    })
}

/// `deployscope.dev/*` annotations, prefix stripped, in key order.
pub type DeployscopeAnnotations = Vec<(String, String)>;

fn deployscope(annotations: Option<BTreeMap<String, String>>) -> DeployscopeAnnotations {
    annotations
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix(ANNOTATION_PREFIX)
                .map(|key| (key.to_string(), v))
        })
        .collect()
}

/// A workload condition, as the controller wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition: Option<Timestamp>,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
    pub fn is_false(&self) -> bool {
        self.status == "False"
    }
}

fn conditions(list: Vec<wire::ConditionWire>) -> Vec<Condition> {
    list.into_iter()
        .map(|c| Condition {
            kind: c.kind,
            status: c.status,
            reason: c.reason.filter(|s| !s.is_empty()),
            message: clip_opt(c.message),
            last_transition: c.last_transition_time,
        })
        .collect()
}

/// Replica and rollout figures per kind, with Kubernetes' defaults applied
/// (a missing count is zero, a missing `spec.replicas` is one).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadState {
    Deployment {
        desired: i32,
        /// `status.replicas`: pods of every ReplicaSet, old ones included.
        current: i32,
        ready: i32,
        updated: i32,
        available: i32,
        unavailable: i32,
        paused: bool,
    },
    StatefulSet {
        desired: i32,
        current: i32,
        ready: i32,
        updated: i32,
        available: i32,
        current_revision: Option<String>,
        update_revision: Option<String>,
        /// `updateStrategy: OnDelete`: pods move to a new revision only when deleted.
        on_delete: bool,
        /// `rollingUpdate.partition`: ordinals below it stay on the old revision.
        partition: i32,
    },
    DaemonSet {
        desired: i32,
        current: i32,
        ready: i32,
        available: i32,
        unavailable: i32,
        /// `None` when the controller did not report it.
        updated: Option<i32>,
        on_delete: bool,
    },
    Job {
        active: i32,
        succeeded: i32,
        failed: i32,
        completions: Option<i32>,
        backoff_limit: Option<i32>,
        suspended: bool,
    },
    CronJob {
        suspended: bool,
        active: i32,
        last_schedule: Option<Timestamp>,
        last_successful: Option<Timestamp>,
    },
}

/// What the live snapshot saw happen to a workload's own status: the status it last
/// computed and when it first saw that status (`None`: it was so when first listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub status: crate::triage::context::HealthStatus,
    pub since: Option<Timestamp>,
}

/// A Deployment, StatefulSet, DaemonSet, Job or CronJob.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub created: Option<Timestamp>,
    /// `deployscope.dev/*` on the object's metadata.
    pub annotations: DeployscopeAnnotations,
    /// `deployscope.dev/*` on the pod template (wins over `annotations`).
    pub template_annotations: DeployscopeAnnotations,
    pub tracking_id: Option<String>,
    pub instance: Option<String>,
    /// The controlling owner (a Job's CronJob).
    pub owner: Option<OwnerRef>,
    pub state: WorkloadState,
    pub conditions: Vec<Condition>,
    pub observed: Option<Observed>,
}

impl Workload {
    fn base(kind: WorkloadKind, meta: ObjectMeta, state: WorkloadState) -> Workload {
        let owner = controller(meta.owner_references);
        let mut annotations = meta.annotations.unwrap_or_default();
        let tracking_id = annotations.remove(TRACKING_ID);
        Workload {
            kind,
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            generation: meta.generation,
            observed_generation: None,
            created: meta.creation_timestamp.map(|t| t.0),
            annotations: deployscope(Some(annotations)),
            template_annotations: Vec::new(),
            tracking_id,
            instance: meta.labels.and_then(|mut l| l.remove(INSTANCE_LABEL)),
            owner,
            state,
            conditions: Vec::new(),
            observed: None,
        }
    }

    pub fn from_deployment(d: wire::Deployment) -> Workload {
        let (spec, st) = (d.spec, d.status);
        let mut w = Workload::base(
            WorkloadKind::Deployment,
            d.metadata,
            WorkloadState::Deployment {
                desired: spec.replicas.unwrap_or(1),
                current: st.replicas.unwrap_or(0),
                ready: st.ready_replicas.unwrap_or(0),
                updated: st.updated_replicas.unwrap_or(0),
                available: st.available_replicas.unwrap_or(0),
                unavailable: st.unavailable_replicas.unwrap_or(0),
                paused: spec.paused.unwrap_or(false),
            },
        );
        w.template_annotations = deployscope(spec.template.metadata.annotations);
        w.observed_generation = st.observed_generation;
        w.conditions = conditions(st.conditions);
        w
    }

    pub fn from_stateful_set(s: wire::StatefulSet) -> Workload {
        let (spec, st) = (s.spec, s.status);
        let strategy = spec.update_strategy.unwrap_or_default();
        let mut w = Workload::base(
            WorkloadKind::StatefulSet,
            s.metadata,
            WorkloadState::StatefulSet {
                desired: spec.replicas.unwrap_or(1),
                current: st.replicas.unwrap_or(0),
                ready: st.ready_replicas.unwrap_or(0),
                updated: st.updated_replicas.unwrap_or(0),
                available: st.available_replicas.unwrap_or(0),
                current_revision: st.current_revision,
                update_revision: st.update_revision,
                on_delete: strategy.kind.as_deref() == Some("OnDelete"),
                partition: strategy
                    .rolling_update
                    .and_then(|r| r.partition)
                    .unwrap_or(0),
            },
        );
        w.template_annotations = deployscope(spec.template.metadata.annotations);
        w.observed_generation = st.observed_generation;
        w.conditions = conditions(st.conditions);
        w
    }

    pub fn from_daemon_set(d: wire::DaemonSet) -> Workload {
        let (spec, st) = (d.spec, d.status);
        let mut w = Workload::base(
            WorkloadKind::DaemonSet,
            d.metadata,
            WorkloadState::DaemonSet {
                desired: st.desired_number_scheduled.unwrap_or(0),
                current: st.current_number_scheduled.unwrap_or(0),
                ready: st.number_ready.unwrap_or(0),
                available: st.number_available.unwrap_or(0),
                unavailable: st.number_unavailable.unwrap_or(0),
                updated: st.updated_number_scheduled,
                on_delete: spec.update_strategy.and_then(|s| s.kind).as_deref() == Some("OnDelete"),
            },
        );
        w.template_annotations = deployscope(spec.template.metadata.annotations);
        w.observed_generation = st.observed_generation;
        w.conditions = conditions(st.conditions);
        w
    }

    pub fn from_job(j: wire::Job) -> Workload {
        let (spec, st) = (j.spec, j.status);
        let mut w = Workload::base(
            WorkloadKind::Job,
            j.metadata,
            WorkloadState::Job {
                active: st.active.unwrap_or(0),
                succeeded: st.succeeded.unwrap_or(0),
                failed: st.failed.unwrap_or(0),
                completions: spec.completions,
                backoff_limit: spec.backoff_limit,
                suspended: spec.suspend.unwrap_or(false),
            },
        );
        w.template_annotations = deployscope(spec.template.metadata.annotations);
        w.conditions = conditions(st.conditions);
        w
    }

    pub fn from_cron_job(c: wire::CronJob) -> Workload {
        let (spec, st) = (c.spec, c.status);
        let mut w = Workload::base(
            WorkloadKind::CronJob,
            c.metadata,
            WorkloadState::CronJob {
                suspended: spec.suspend.unwrap_or(false),
                active: i32::try_from(st.active.len()).unwrap_or(i32::MAX),
                last_schedule: st.last_schedule_time,
                last_successful: st.last_successful_time,
            },
        );
        // A CronJob's pods come from spec.jobTemplate.spec.template.
        w.template_annotations = deployscope(spec.job_template.spec.template.metadata.annotations);
        w
    }

    /// The reference used in contexts and indexes.
    pub fn reference(&self) -> crate::triage::context::WorkloadRef {
        crate::triage::context::WorkloadRef {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Argo CD applications this workload says it belongs to: the app part of the
    /// tracking id (`<app>:…`, or `<namespace>_<app>` for apps outside Argo CD's own
    /// namespace) and the instance label.
    pub fn tracking_apps(&self) -> Vec<String> {
        let mut apps = Vec::new();
        if let Some(id) = &self.tracking_id
            && let Some((app, _)) = id.split_once(':')
            && !app.is_empty()
        {
            apps.push(app.to_string());
            if let Some((_, bare)) = app.split_once('_') {
                apps.push(bare.to_string());
            }
        }
        if let Some(instance) = &self.instance
            && !instance.is_empty()
            && !apps.contains(instance)
        {
            apps.push(instance.clone());
        }
        apps
    }

    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// One container's status, for evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub init: bool,
    pub ready: bool,
    pub restart_count: i32,
    pub waiting_reason: Option<String>,
    pub waiting_message: Option<String>,
    /// The current state when it is `terminated` (a Job's failed container).
    pub terminated_reason: Option<String>,
    pub terminated_exit_code: Option<i32>,
    pub last_reason: Option<String>,
    pub last_exit_code: Option<i32>,
    pub last_finished_at: Option<Timestamp>,
}

impl Container {
    fn from_status(s: wire::ContainerStatus, init: bool) -> Container {
        let waiting = s.state.waiting;
        let terminated = s.state.terminated;
        let last = s.last_state.terminated;
        let (waiting_reason, waiting_message) = match waiting {
            Some(w) => (w.reason, clip_opt(w.message)),
            None => (None, None),
        };
        Container {
            name: s.name,
            init,
            ready: s.ready,
            restart_count: s.restart_count,
            waiting_reason,
            waiting_message,
            terminated_exit_code: terminated.as_ref().map(|t| t.exit_code),
            terminated_reason: terminated.and_then(|t| t.reason),
            last_exit_code: last.as_ref().map(|t| t.exit_code),
            last_finished_at: last.as_ref().and_then(|t| t.finished_at),
            last_reason: last.and_then(|t| t.reason),
        }
    }

    /// A waiting reason that means the container cannot run as it is (not a normal
    /// start-up state such as ContainerCreating or PodInitializing).
    pub fn failing_wait(&self) -> Option<&str> {
        const BAD: &[&str] = &[
            "CrashLoopBackOff",
            "ImagePullBackOff",
            "ErrImagePull",
            "ErrImageNeverPull",
            "InvalidImageName",
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
            "PreStartHookError",
            "PostStartHookError",
        ];
        self.waiting_reason.as_deref().filter(|r| BAD.contains(r))
    }
}

/// A Pod: its controller, node, readiness and container states.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub owner: Option<OwnerRef>,
    pub node: Option<String>,
    pub phase: Option<String>,
    /// `status.reason` (Evicted, NodeLost…).
    pub reason: Option<String>,
    pub ready: bool,
    /// `Ready` condition's lastTransitionTime.
    pub ready_since: Option<Timestamp>,
    pub created: Option<Timestamp>,
    pub containers: Vec<Container>,
    /// `deployscope.dev/*`, kept only for pods without a controller (bare pods).
    pub annotations: DeployscopeAnnotations,
}

impl PodView {
    pub fn from_pod(p: wire::Pod) -> PodView {
        let status = p.status;
        let ready_cond = status.conditions.iter().find(|c| c.kind == "Ready");
        let ready = ready_cond.is_some_and(|c| c.status == "True");
        let ready_since = ready_cond.and_then(|c| c.last_transition_time);
        let meta = p.metadata;
        let owner = controller(meta.owner_references);
        let mut containers: Vec<Container> = Vec::new();
        for c in status.init_container_statuses {
            // Init containers that finished fine say nothing; keep the others.
            let done_ok = c
                .state
                .terminated
                .as_ref()
                .is_some_and(|t| t.exit_code == 0);
            if !done_ok {
                containers.push(Container::from_status(c, true));
            }
        }
        for c in status.container_statuses {
            containers.push(Container::from_status(c, false));
        }
        containers.shrink_to_fit();
        let bare = owner.as_ref().is_none_or(|o| o.kind == "Node");
        PodView {
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            owner,
            node: p.spec.node_name,
            phase: status.phase,
            reason: status.reason,
            ready,
            ready_since,
            created: meta.creation_timestamp.map(|t| t.0),
            containers,
            annotations: if bare {
                deployscope(meta.annotations)
            } else {
                Vec::new()
            },
        }
    }

    pub fn restarts(&self) -> i32 {
        self.containers.iter().map(|c| c.restart_count).sum()
    }

    /// The first container that cannot run, with its waiting reason.
    pub fn failing_wait(&self) -> Option<(&str, &str)> {
        self.containers
            .iter()
            .find_map(|c| c.failing_wait().map(|r| (c.name.as_str(), r)))
    }

    /// True when the pod needs a look: not ready (and not completed), a container that
    /// cannot run, or restarts.
    pub fn is_troubled(&self) -> bool {
        let completed = self.phase.as_deref() == Some("Succeeded");
        (!self.ready && !completed) || self.failing_wait().is_some() || self.restarts() > 0
    }
}

/// A ReplicaSet: only which Deployment controls it (metadata-only watch).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetView {
    pub namespace: String,
    pub name: String,
    pub owner: Option<OwnerRef>,
}

impl ReplicaSetView {
    pub fn from_replica_set(rs: wire::ReplicaSet) -> ReplicaSetView {
        let meta = rs.metadata;
        ReplicaSetView {
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            owner: controller(meta.owner_references),
        }
    }
}

/// One Warning event, attached to the object it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    pub namespace: String,
    /// The event object's own name (for updates and deletes).
    pub name: String,
    pub involved_kind: String,
    pub involved_name: String,
    pub reason: String,
    pub message: Option<String>,
    pub count: i64,
    pub last_seen: Option<Timestamp>,
}

impl EventView {
    /// `None` for events that are not Warnings or name no object.
    pub fn from_event(e: wire::Event) -> Option<EventView> {
        if e.kind.as_deref() != Some("Warning") {
            return None;
        }
        let involved = e.involved_object;
        let involved_name = involved.name.filter(|n| !n.is_empty())?;
        let series = e.series.unwrap_or_default();
        let last_seen = series
            .last_observed_time
            .or(e.last_timestamp)
            .or(e.event_time)
            .or(e.first_timestamp)
            .or(e.metadata.creation_timestamp.map(|t| t.0));
        let count = series.count.or(e.count).map_or(1, i64::from).max(1);
        Some(EventView {
            namespace: e
                .metadata
                .namespace
                .or(involved.namespace)
                .unwrap_or_default(),
            name: e.metadata.name.unwrap_or_default(),
            involved_kind: involved.kind.unwrap_or_default(),
            involved_name,
            reason: e.reason.unwrap_or_else(|| "Unknown".into()),
            message: clip_opt(e.message),
            count,
            last_seen,
        })
    }

    /// `Kind/name` of the involved object: the key events are grouped under.
    pub fn involved_key(&self) -> String {
        format!("{}/{}", self.involved_kind, self.involved_name)
    }
}

/// A Warning event as the snapshot keeps it, under the object it is about (the
/// namespace and involved object are the keys it is stored under).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event object's own name (for updates and deletes).
    pub name: Box<str>,
    pub reason: Box<str>,
    pub message: Option<Box<str>>,
    pub count: i64,
    pub last_seen: Option<Timestamp>,
}

impl From<EventView> for StoredEvent {
    fn from(e: EventView) -> StoredEvent {
        StoredEvent {
            name: e.name.into_boxed_str(),
            reason: e.reason.into_boxed_str(),
            message: e.message.map(String::into_boxed_str),
            count: e.count,
            last_seen: e.last_seen,
        }
    }
}

/// A resource an Argo CD Application manages (workload kinds only are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppResourceView {
    pub kind: WorkloadKind,
    pub namespace: Option<String>,
    pub name: String,
    /// Per-resource sync result status (`Synced`, `SyncFailed`…), when from syncResult.
    pub status: Option<String>,
}

/// An Argo CD Application: destination, current health/sync/operation, resources.
#[derive(Debug, Clone, PartialEq)]
pub struct AppView {
    pub namespace: String,
    pub name: String,
    pub destination_server: Option<String>,
    pub destination_name: Option<String>,
    pub destination_namespace: Option<String>,
    pub health: Option<String>,
    pub health_message: Option<String>,
    pub sync: Option<String>,
    pub operation_phase: Option<String>,
    pub operation_message: Option<String>,
    pub repo_url: Option<String>,
    pub path: Option<String>,
    pub sync_result: Vec<AppResourceView>,
    pub resources: Vec<AppResourceView>,
}

/// The parts of an Application Triage reads (serde ignores the rest).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AppWire {
    metadata: AppMeta,
    spec: AppSpec,
    status: AppStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppMeta {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppSpec {
    destination: AppDestination,
    source: Option<AppSourceWire>,
    sources: Vec<AppSourceWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AppSourceWire {
    #[serde(rename = "repoURL")]
    repo_url: Option<String>,
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppDestination {
    server: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AppStatus {
    health: AppHealth,
    sync: AppSync,
    operation_state: Option<AppOperation>,
    resources: Vec<AppResourceWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppHealth {
    status: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppSync {
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AppOperation {
    phase: Option<String>,
    message: Option<String>,
    sync_result: Option<AppSyncResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppSyncResult {
    resources: Vec<AppResourceWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppResourceWire {
    kind: String,
    namespace: Option<String>,
    name: String,
    status: Option<String>,
}

impl AppResourceWire {
    fn view(&self, keep_status: bool) -> Option<AppResourceView> {
        Some(AppResourceView {
            kind: WorkloadKind::from_kind(&self.kind)?,
            namespace: self.namespace.clone().filter(|n| !n.is_empty()),
            name: self.name.clone(),
            status: if keep_status {
                self.status.clone()
            } else {
                None
            },
        })
    }
}

impl AppView {
    /// Parses an Application from its JSON (a watch event's object or a file's document).
    pub fn from_json(value: serde_json::Value) -> anyhow::Result<AppView> {
        let wire: AppWire = serde_json::from_value(value)
            .map_err(|e| anyhow::anyhow!("not an Argo CD Application: {e}"))?;
        let name = wire
            .metadata
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow::anyhow!("Application without metadata.name"))?;
        let source = wire
            .spec
            .source
            .or_else(|| wire.spec.sources.into_iter().next());
        let operation = wire.status.operation_state;
        Ok(AppView {
            namespace: wire.metadata.namespace.unwrap_or_default(),
            name,
            destination_server: wire.spec.destination.server,
            destination_name: wire.spec.destination.name,
            destination_namespace: wire.spec.destination.namespace,
            health: wire.status.health.status,
            health_message: clip_opt(wire.status.health.message),
            sync: wire.status.sync.status,
            operation_phase: operation.as_ref().and_then(|o| o.phase.clone()),
            operation_message: operation.as_ref().and_then(|o| clip_opt(o.message.clone())),
            repo_url: source.as_ref().and_then(|s| s.repo_url.clone()),
            path: source.as_ref().and_then(|s| s.path.clone()),
            sync_result: operation
                .and_then(|o| o.sync_result)
                .map(|r| r.resources.iter().filter_map(|r| r.view(true)).collect())
                .unwrap_or_default(),
            resources: wire
                .status
                .resources
                .iter()
                .filter_map(|r| r.view(false))
                .collect(),
        })
    }
}
