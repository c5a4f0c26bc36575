//! Signals: the normalized observations every later stage works on.
//!
//! One Argo CD notification is one Signal; one alert of an Alertmanager group is one
//! Signal. Parsers (`ingest::alertmanager`, `ingest::argocd`) produce them, the journal
//! stores them as JSON next to the raw body, and the core (`triage::*`) reads them.
//! Everything here is plain data: serializable, comparable, no IO.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Who sent the delivery a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Alertmanager,
    Argocd,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Alertmanager, Source::Argocd];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Argocd => "argocd",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a signal reports. Argo CD kinds come from the trigger name, else from the
/// Application status; every Alertmanager alert is `Alert` (its meaning is in its labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Argo CD: operation phase `Failed`/`Error` (trigger `on-sync-failed`).
    SyncFailed,
    /// Argo CD: health `Degraded` (trigger `on-health-degraded`).
    Degraded,
    /// Argo CD: sync status `Unknown` (trigger `on-sync-status-unknown`).
    SyncUnknown,
    /// Argo CD: operation `Succeeded` and health `Healthy` (trigger `on-deployed`).
    Recovered,
    /// Argo CD: a notification Triage records but does not act on
    /// (`on-sync-running`, `on-created`, a status that maps to nothing above…).
    Informational,
    /// Alertmanager: one alert of a group.
    Alert,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::SyncFailed => "sync_failed",
            SignalKind::Degraded => "degraded",
            SignalKind::SyncUnknown => "sync_unknown",
            SignalKind::Recovered => "recovered",
            SignalKind::Informational => "informational",
            SignalKind::Alert => "alert",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the reported problem is present (`Firing`) or gone (`Resolved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalStatus {
    Firing,
    Resolved,
}

impl SignalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalStatus::Firing => "firing",
            SignalStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for SignalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kubernetes kinds Triage treats as workloads (things with an owner, a tier and a health).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    /// The lower-case resource name `kubectl` accepts (`kubectl get deployment/x`).
    pub fn kubectl_name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
        }
    }

    /// Parses a Kubernetes `kind` (case-insensitive, as found in `syncResult.resources`,
    /// ownerReferences and tracking ids).
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind.to_ascii_lowercase().as_str() {
            "deployment" => Some(WorkloadKind::Deployment),
            "statefulset" => Some(WorkloadKind::StatefulSet),
            "daemonset" => Some(WorkloadKind::DaemonSet),
            "job" => Some(WorkloadKind::Job),
            "cronjob" => Some(WorkloadKind::CronJob),
            _ => None,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a signal is about, as precisely as the payload says. Enrichment resolves it
/// further (a Pod to its owning Deployment, an Application to its workloads).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// An Argo CD Application (`namespace` is the Application's own namespace, e.g. `argocd`).
    Application {
        namespace: Option<String>,
        name: String,
    },
    Workload {
        kind: WorkloadKind,
        namespace: String,
        name: String,
    },
    Pod {
        namespace: String,
        name: String,
    },
    /// Nothing more precise is known (an alert with only a namespace, or none).
    Other {
        namespace: Option<String>,
    },
}

impl Subject {
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Subject::Application { .. } => None,
            Subject::Workload { namespace, .. } | Subject::Pod { namespace, .. } => Some(namespace),
            Subject::Other { namespace } => namespace.as_deref(),
        }
    }
}

/// One normalized observation. Field order follows what a reader needs first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub source: Source,
    pub kind: SignalKind,
    pub status: SignalStatus,
    pub subject: Subject,
    /// The cluster the payload names, if any: the Alertmanager cluster label, or the
    /// Argo CD destination (server URL or name). Mapped to a configured cluster by `cluster`.
    pub cluster: Option<String>,
    /// Short name of what happened: the alert name, or the Argo CD trigger / kind.
    pub title: String,
    /// Longer human text: alert description/summary, Argo CD operation message.
    pub message: Option<String>,
    /// When the problem started (alert `startsAt`, Argo CD health/operation time).
    pub started_at: Option<Timestamp>,
    /// When it ended (alert `endsAt`; `None` for the zero time firing alerts carry).
    pub ended_at: Option<Timestamp>,
    /// Alert labels, or the Application's labels.
    pub labels: BTreeMap<String, String>,
    /// Alert annotations, or the Application's annotations.
    pub annotations: BTreeMap<String, String>,
    /// Present for Alertmanager signals.
    pub alert: Option<AlertDetail>,
    /// Present for Argo CD signals.
    pub argocd: Option<ArgocdDetail>,
}

impl Signal {
    /// The identity of this observation for duplicate detection downstream: the same
    /// alert (fingerprint, start, status) or the same Argo CD notification (app, kind,
    /// revision, operation/health time) seen twice is one observation.
    pub fn identity(&self) -> String {
        let ts = |t: &Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
        match (&self.alert, &self.argocd) {
            (Some(a), _) => format!(
                "am:{}:{}:{}",
                a.fingerprint,
                ts(&self.started_at),
                self.status
            ),
            (None, Some(d)) => format!(
                "argocd:{}/{}:{}:{}:{}",
                d.app_namespace.as_deref().unwrap_or(""),
                d.app,
                self.kind,
                d.revision.as_deref().unwrap_or(""),
                ts(&self.started_at)
            ),
            (None, None) => format!("{}:{}:{}", self.source, self.kind, self.title),
        }
    }
}

/// Alertmanager-specific fields of one alert and the group it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    /// `labels.alertname`, empty if the alert has none.
    pub name: String,
    /// 16 hex chars, stable per label set.
    pub fingerprint: String,
    pub generator_url: Option<String>,
    pub group: AlertGroup,
}

/// Group metadata of the notification an alert arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    /// Contains the route path: changes when routes change. Never a work-order key.
    pub group_key: String,
    /// The receiver name with Alertmanager's regex escaping removed (`web\.hook` → `web.hook`).
    pub receiver: String,
    /// Group status, computed by Alertmanager after `max_alerts` truncation.
    pub status: SignalStatus,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: Option<String>,
    /// Alerts dropped by `max_alerts`. When > 0 the group status must not resolve anything.
    pub truncated_alerts: u64,
}

/// Argo CD-specific fields of one notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArgocdDetail {
    pub app: String,
    pub app_namespace: Option<String>,
    pub project: Option<String>,
    /// The trigger name as the template stated it (`on-sync-failed`), if any.
    pub trigger: Option<String>,
    /// `status.sync.status`: Synced, OutOfSync, Unknown.
    pub sync_status: Option<String>,
    /// `status.health.status`: Healthy, Progressing, Degraded, Suspended, Missing, Unknown.
    pub health_status: Option<String>,
    pub health_message: Option<String>,
    /// `status.operationState.phase`: Running, Succeeded, Failed, Error, Terminating.
    pub operation_phase: Option<String>,
    pub operation_message: Option<String>,
    pub revision: Option<String>,
    /// `spec.source`, or each of `spec.sources[]` for multi-source applications.
    pub sources: Vec<AppSource>,
    pub destination_server: Option<String>,
    pub destination_name: Option<String>,
    pub destination_namespace: Option<String>,
    /// `status.operationState.syncResult.resources[]`: the most reliable failure detail.
    pub sync_result: Vec<SyncResource>,
    pub conditions: Vec<AppCondition>,
    /// `status.resources[]` (health there is optional since Argo CD 3.0).
    pub resources: Vec<AppResource>,
    /// `context.argocdUrl`, only when the operator configured it.
    pub argocd_url: Option<String>,
    /// True when the body used the widely copied ten-field `client_payload` shape,
    /// which carries less detail than Triage's own format.
    pub compat: bool,
    /// True when the body was not valid JSON and was repaired (unescaped quotes/newlines).
    pub repaired: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSource {
    pub repo_url: Option<String>,
    pub path: Option<String>,
    pub target_revision: Option<String>,
    pub chart: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncResource {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Synced, SyncFailed, Pruned, PruneSkipped…
    pub status: Option<String>,
    pub message: Option<String>,
    pub hook_phase: Option<String>,
    pub sync_phase: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: Option<String>,
    pub last_transition_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppResource {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub status: Option<String>,
    pub health_status: Option<String>,
    pub health_message: Option<String>,
}
