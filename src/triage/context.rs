//! Context: what the cluster says about a signal's subject right now.
//!
//! Produced by `triage::enrich` from a signal and a cluster view; read by routing,
//! correlation, the lifecycle and the templates. Plain serializable data: every
//! optional field serializes as `null` (never an omitted key), because agents and
//! scripts read the JSON block of each work order.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::signal::WorkloadKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: ClusterInfo,
    /// The owning workload, when one was found.
    pub workload: Option<WorkloadRef>,
    /// The Argo CD Application, when the signal names one or the workload is tracked by one.
    pub app: Option<AppRef>,
    /// `deployscope.dev/ignore: "true"` on the workload: no work order, no output.
    pub ignored: bool,
    pub annotations: Annotations,
    pub health: Option<Health>,
    pub evidence: Evidence,
    pub dependencies: Vec<Dependency>,
    /// A red upstream dependency, said in words ("upstream postgres/orders-db is red: …").
    pub likely_cause: Option<String>,
    /// Things the reader should know about how this context was built
    /// ("cluster prod not synced yet", "pod not found in snapshot").
    pub notes: Vec<String>,
}

impl Context {
    /// A context that knows nothing about the cluster (unknown cluster, not synced, or
    /// no snapshot); enrichment never fails, it says what it could not do.
    pub fn unknown(cluster: ClusterInfo) -> Self {
        Context {
            cluster,
            workload: None,
            app: None,
            ignored: false,
            annotations: Annotations::default(),
            health: None,
            evidence: Evidence::default(),
            dependencies: Vec::new(),
            likely_cause: None,
            notes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The configured cluster name the signal was mapped to.
    pub name: String,
    pub state: SnapshotState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    /// Live reflectors have completed their initial list and are watching.
    Synced,
    /// Live reflectors are still listing.
    Syncing,
    /// The API server cannot be reached (last error is in `Context::notes`).
    Unreachable,
    /// A static snapshot file (demo, replay, tests).
    Static,
    /// The signal names a cluster that is not configured.
    UnknownCluster,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.namespace,
            self.kind.kubectl_name(),
            self.name
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRef {
    pub namespace: Option<String>,
    pub name: String,
    /// Application health and sync status as the snapshot (or the signal) last saw them.
    pub health: Option<String>,
    pub sync: Option<String>,
    /// `status.operationState.phase` (Running, Succeeded, Failed, Error, Terminating):
    /// routing reads it to tell a sync failure that persists from one that was retried
    /// successfully.
    #[serde(default)]
    pub operation_phase: Option<String>,
}

/// Workload tiers of the deployscope convention. A missing or unknown tier routes as
/// `Standard`; `Annotations::tier_raw` keeps what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Critical,
    Standard,
    BestEffort,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::BestEffort => "best-effort",
        }
    }
}

/// `deployscope.dev/*` annotations (workload, overridden by its pod template), redacted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotations {
    pub owner: Option<String>,
    pub oncall: Option<String>,
    /// Parsed tier; `None` when missing or not one of the three known values.
    pub tier: Option<Tier>,
    /// The tier exactly as written, when present.
    pub tier_raw: Option<String>,
    pub gitops_repo: Option<String>,
    pub gitops_path: Option<String>,
    pub runbook: Option<String>,
    pub dashboard: Option<String>,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Green,
    Yellow,
    Red,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Green => "green",
            HealthStatus::Yellow => "yellow",
            HealthStatus::Red => "red",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    /// The rule that decided, in words ("0 of 3 replicas ready", "rollout exceeded its
    /// progress deadline").
    pub reason: String,
    /// Since when the workload has had this status: from condition times where they
    /// exist, else from when the snapshot saw the change; `None` if neither is known.
    pub since: Option<Timestamp>,
    pub replicas: Replicas,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub pods: Vec<PodEvidence>,
    /// Recent Warning events for the workload and its pods, grouped by reason.
    pub events: Vec<EventGroup>,
    /// Workload conditions that are not as they should be (Progressing=False…).
    pub conditions: Vec<ConditionEvidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodEvidence {
    pub name: String,
    pub node: Option<String>,
    pub phase: Option<String>,
    pub ready: bool,
    pub containers: Vec<ContainerEvidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerEvidence {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    /// CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError…
    pub waiting_reason: Option<String>,
    pub waiting_message: Option<String>,
    /// OOMKilled, Error, Completed…
    pub last_termination_reason: Option<String>,
    pub last_exit_code: Option<i32>,
    pub last_finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventGroup {
    pub reason: String,
    pub count: i64,
    pub last_seen: Option<Timestamp>,
    /// The most recent message of this reason, redacted.
    pub message: Option<String>,
    /// `Kind/name` of the objects involved, e.g. `Pod/web-7d9f-abc`.
    pub objects: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionEvidence {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    /// The name as written in `deployscope.dev/depends-on`.
    pub name: String,
    pub resolution: DependencyResolution,
    pub workload: Option<WorkloadRef>,
    pub health: Option<HealthStatus>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "candidates")]
pub enum DependencyResolution {
    Resolved,
    /// Several workloads match the name cluster-wide; none chosen.
    Ambiguous(Vec<String>),
    Missing,
}
