//! Argo CD notification webhook → one [`Signal`].
//!
//! Two body shapes are understood:
//!
//! 1. Triage's own format, produced by the templates in `argocd/` (one per trigger,
//!    because Argo CD templates have no trigger variable):
//!    `{"triage":"argocd/v1","trigger":"on-sync-failed","app":{{toJson .app}},"context":{{toJson .context}}}`.
//!    It carries the whole Application, so every [`ArgocdDetail`] field is filled.
//! 2. The widely copied "client_payload" shape (`app_name`, `health_status`,
//!    `sync_status`, `message`, `revision`, `repo_url`, `cluster`, `namespace`,
//!    `resources`, plus `operation_phase`/`timestamp`/…), bare or wrapped as
//!    `{"event_type": …, "client_payload": {…}}`. Marked `compat`.
//!
//! Go renders a missing key as the text `<no value>`: it means null everywhere. A body
//! that is not valid JSON because a template interpolated raw text is repaired (see
//! [`super::repair`]) if and only if the repaired text parses into one of the shapes
//! above; otherwise the 400 carries the original parse error's line and column.
//!
//! The signal kind comes from the trigger name when there is one (`on-sync-failed`,
//! `on-health-degraded`, `on-sync-status-unknown`, `on-deployed`; any other trigger is
//! informational), else from the Application status.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::json::{self, BadPayload};
use crate::signal::{
    AppCondition, AppResource, AppSource, ArgocdDetail, Signal, SignalKind, SignalStatus, Source,
    Subject, SyncResource,
};

/// The `triage` field value of Triage's own body format.
pub const FORMAT: &str = "argocd/v1";

/// Go's rendering of a missing map key.
pub const NO_VALUE: &str = "<no value>";

/// Annotations not copied into signals: a whole copy of the object, never useful here.
const DROPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

const TEMPLATE_HINT: &str = "; the notification template probably interpolated raw text inside a JSON string: \
render values with {{toJson .app}} (no surrounding quotes), as the templates in Triage's argocd/ directory do";

/// Parses one Argo CD webhook body.
pub fn parse(body: &[u8]) -> Result<Signal, BadPayload> {
    let text = json::text(body)?;
    match serde_json::from_str::<Value>(text) {
        Ok(value) => from_value(value, false),
        Err(err) => {
            let bad = json::describe(&err, None);
            let syntax = matches!(
                err.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            );
            if !syntax || bad.0.contains("nesting") {
                return Err(bad);
            }
            let original = BadPayload(format!("{}{TEMPLATE_HINT}", bad.0));
            let Some(fixed) = super::repair::repair(text) else {
                return Err(original);
            };
            let Ok(value) = serde_json::from_str::<Value>(&fixed) else {
                return Err(original);
            };
            from_value(value, true).map_err(|_| original)
        }
    }
}

fn from_value(mut value: Value, repaired: bool) -> Result<Signal, BadPayload> {
    null_no_value(&mut value);
    let Value::Object(obj) = &value else {
        return Err(wrong_shape(&value));
    };
    if let Some(format) = obj.get("triage") {
        if format.as_str() != Some(FORMAT) {
            return Err(BadPayload(format!(
                "unsupported Triage Argo CD body format {format}: this Triage understands \"{FORMAT}\" (update the templates from argocd/)"
            )));
        }
        let own: Own = deserialize(value, "")?;
        own.into_signal(repaired)
    } else if obj.contains_key("client_payload") {
        let wrapped: Wrapped = deserialize(value, "")?;
        let Some(payload) = wrapped.client_payload else {
            return Err(BadPayload(
                "client_payload is null: expected an object with at least app_name".into(),
            ));
        };
        payload.into_signal(wrapped.event_type.0, repaired)
    } else if obj.contains_key("app_name") {
        let payload: Compat = deserialize(value, "")?;
        payload.into_signal(None, repaired)
    } else {
        Err(wrong_shape(&value))
    }
}

fn wrong_shape(value: &Value) -> BadPayload {
    let got = match value {
        Value::Object(o) => {
            let keys: Vec<&str> = o.keys().take(8).map(String::as_str).collect();
            format!("an object with keys {keys:?}")
        }
        Value::Array(_) => "an array".into(),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Null => "null".into(),
    };
    BadPayload(format!(
        "unexpected JSON shape: got {got}; expected Triage's Argo CD body {{\"triage\":\"{FORMAT}\",\"trigger\":…,\"app\":{{…}}}} \
         (templates in argocd/), or a client_payload object with app_name"
    ))
}

fn deserialize<T: for<'de> Deserialize<'de>>(value: Value, prefix: &str) -> Result<T, BadPayload> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            prefix.to_string()
        } else {
            format!("{prefix}{path}")
        };
        BadPayload(format!("unexpected JSON shape at {path}: {}", e.inner()))
    })
}

/// `<no value>` → null, everywhere in the tree.
fn null_no_value(v: &mut Value) {
    match v {
        Value::String(s) if s == NO_VALUE => *v = Value::Null,
        Value::Array(a) => a.iter_mut().for_each(null_no_value),
        Value::Object(o) => o.values_mut().for_each(null_no_value),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Lenient field types: Argo CD versions and hand-written templates vary; a field of an
// unexpected type is treated as absent rather than refusing the whole notification.

/// Text: a string (empty → none), or a number/bool as its text; anything else → none.
#[derive(Debug, Default, Clone)]
struct Txt(Option<String>);

impl<'de> Deserialize<'de> for Txt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Txt(match Value::deserialize(d)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }))
    }
}

impl Txt {
    fn time(&self) -> Option<Timestamp> {
        self.0.as_deref().and_then(|s| s.parse().ok())
    }
}

/// A string map (labels, annotations); non-text values are dropped.
#[derive(Debug, Default)]
struct TxtMap(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for TxtMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::Object(o) = Value::deserialize(d)? else {
            return Ok(TxtMap::default());
        };
        Ok(TxtMap(
            o.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Number(n) => Some((k, n.to_string())),
                    Value::Bool(b) => Some((k, b.to_string())),
                    _ => None,
                })
                .collect(),
        ))
    }
}

/// Null reads as the default (Go's `toJson` of an absent list or object is `null`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Triage's own format: the Application object as Argo CD holds it.

#[derive(Deserialize)]
struct Own {
    #[serde(default)]
    trigger: Txt,
    app: Application,
    #[serde(default, deserialize_with = "nullable")]
    context: TxtMap,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Application {
    #[serde(deserialize_with = "nullable")]
    metadata: Metadata,
    #[serde(deserialize_with = "nullable")]
    spec: Spec,
    #[serde(deserialize_with = "nullable")]
    status: Status,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Metadata {
    name: Txt,
    namespace: Txt,
    labels: TxtMap,
    annotations: TxtMap,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Spec {
    project: Txt,
    source: Option<SourceSpec>,
    #[serde(deserialize_with = "nullable")]
    sources: Vec<SourceSpec>,
    #[serde(deserialize_with = "nullable")]
    destination: Destination,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SourceSpec {
    #[serde(rename = "repoURL")]
    repo_url: Txt,
    path: Txt,
    target_revision: Txt,
    chart: Txt,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Destination {
    server: Txt,
    name: Txt,
    namespace: Txt,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    #[serde(deserialize_with = "nullable")]
    sync: SyncStatus,
    #[serde(deserialize_with = "nullable")]
    health: Health,
    #[serde(deserialize_with = "nullable")]
    operation_state: OperationState,
    #[serde(deserialize_with = "nullable")]
    conditions: Vec<Condition>,
    #[serde(deserialize_with = "nullable")]
    resources: Vec<ResourceStatus>,
    reconciled_at: Txt,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SyncStatus {
    status: Txt,
    revision: Txt,
    #[serde(deserialize_with = "nullable")]
    revisions: Vec<Txt>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Health {
    status: Txt,
    message: Txt,
    last_transition_time: Txt,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct OperationState {
    phase: Txt,
    message: Txt,
    started_at: Txt,
    finished_at: Txt,
    #[serde(deserialize_with = "nullable")]
    sync_result: SyncResult,
    #[serde(deserialize_with = "nullable")]
    operation: Operation,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Operation {
    #[serde(deserialize_with = "nullable")]
    sync: SyncStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SyncResult {
    revision: Txt,
    #[serde(deserialize_with = "nullable")]
    revisions: Vec<Txt>,
    #[serde(deserialize_with = "nullable")]
    resources: Vec<ResourceResult>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ResourceResult {
    group: Txt,
    version: Txt,
    kind: Txt,
    namespace: Txt,
    name: Txt,
    status: Txt,
    message: Txt,
    hook_phase: Txt,
    sync_phase: Txt,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type")]
    kind: Txt,
    message: Txt,
    last_transition_time: Txt,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResourceStatus {
    group: Txt,
    version: Txt,
    kind: Txt,
    namespace: Txt,
    name: Txt,
    status: Txt,
    #[serde(deserialize_with = "nullable")]
    health: Health,
}

fn revisions(list: &[Txt]) -> Option<String> {
    let revs: Vec<&str> = list.iter().filter_map(|t| t.0.as_deref()).collect();
    (!revs.is_empty()).then(|| revs.join(","))
}

impl Own {
    fn into_signal(self, repaired: bool) -> Result<Signal, BadPayload> {
        let app = self.app;
        let Some(name) = app.metadata.name.0 else {
            return Err(BadPayload(
                "app.metadata.name is missing: the body must carry the Application ({{toJson .app}})".into(),
            ));
        };
        let status = app.status;
        let op = status.operation_state;
        let sources: Vec<AppSource> = app
            .spec
            .source
            .into_iter()
            .chain(app.spec.sources)
            .map(|s| AppSource {
                repo_url: s.repo_url.0,
                path: s.path.0,
                target_revision: s.target_revision.0,
                chart: s.chart.0,
            })
            .collect();
        let revision = op
            .sync_result
            .revision
            .0
            .or_else(|| revisions(&op.sync_result.revisions))
            .or(status.sync.revision.0)
            .or_else(|| revisions(&status.sync.revisions))
            .or(op.operation.sync.revision.0)
            .or_else(|| revisions(&op.operation.sync.revisions));
        let detail = ArgocdDetail {
            app: name,
            app_namespace: app.metadata.namespace.0,
            project: app.spec.project.0,
            trigger: self.trigger.0,
            sync_status: status.sync.status.0,
            health_status: status.health.status.0,
            health_message: status.health.message.0,
            operation_phase: op.phase.0,
            operation_message: op.message.0,
            revision,
            sources,
            destination_server: app.spec.destination.server.0,
            destination_name: app.spec.destination.name.0,
            destination_namespace: app.spec.destination.namespace.0,
            sync_result: op
                .sync_result
                .resources
                .into_iter()
                .map(|r| SyncResource {
                    group: r.group.0,
                    version: r.version.0,
                    kind: r.kind.0.unwrap_or_default(),
                    namespace: r.namespace.0,
                    name: r.name.0.unwrap_or_default(),
                    status: r.status.0,
                    message: r.message.0,
                    hook_phase: r.hook_phase.0,
                    sync_phase: r.sync_phase.0,
                })
                .collect(),
            conditions: status
                .conditions
                .into_iter()
                .map(|c| AppCondition {
                    last_transition_time: c.last_transition_time.time(),
                    kind: c.kind.0.unwrap_or_default(),
                    message: c.message.0,
                })
                .collect(),
            resources: status
                .resources
                .into_iter()
                .map(|r| AppResource {
                    group: r.group.0,
                    version: r.version.0,
                    kind: r.kind.0.unwrap_or_default(),
                    namespace: r.namespace.0,
                    name: r.name.0.unwrap_or_default(),
                    status: r.status.0,
                    health_status: r.health.status.0,
                    health_message: r.health.message.0,
                })
                .collect(),
            argocd_url: self
                .context
                .0
                .get("argocdUrl")
                .filter(|u| !u.is_empty())
                .cloned(),
            compat: false,
            repaired,
        };
        let times = Times {
            operation_started: op.started_at.time(),
            operation_finished: op.finished_at.time(),
            health_changed: status.health.last_transition_time.time(),
            reconciled: status.reconciled_at.time(),
            sent: None,
        };
        let mut annotations = app.metadata.annotations.0;
        for key in DROPPED_ANNOTATIONS {
            annotations.remove(*key);
        }
        Ok(finish(detail, times, app.metadata.labels.0, annotations))
    }
}

// ---------------------------------------------------------------------------------------
// The compatibility shape.

#[derive(Deserialize)]
struct Wrapped {
    #[serde(default)]
    event_type: Txt,
    client_payload: Option<Compat>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Compat {
    app_name: Txt,
    app_namespace: Txt,
    project: Txt,
    health_status: Txt,
    health_message: Txt,
    sync_status: Txt,
    message: Txt,
    revision: Txt,
    repo_url: Txt,
    cluster: Txt,
    namespace: Txt,
    resources: Value,
    // The tenth field differs between the copies in circulation; all are understood.
    operation_phase: Txt,
    phase: Txt,
    status: Txt,
    timestamp: Txt,
    trigger: Txt,
    argocd_url: Txt,
}

impl Compat {
    fn into_signal(self, event_type: Option<String>, repaired: bool) -> Result<Signal, BadPayload> {
        let Some(name) = self.app_name.0 else {
            return Err(BadPayload(
                "client_payload.app_name is missing or empty: it names the Application".into(),
            ));
        };
        // `status` is the operation phase in some copies; only take it when it is one.
        let operation_phase = self.operation_phase.0.or(self.phase.0).or(self
            .status
            .0
            .filter(|s| OPERATION_PHASES.contains(&s.as_str())));
        let trigger = self
            .trigger
            .0
            .or_else(|| {
                event_type
                    .as_deref()
                    .and_then(trigger_from_event_type)
                    .map(String::from)
            })
            .or(event_type);
        let cluster = self.cluster.0;
        let (destination_server, destination_name) = match cluster {
            Some(c) if c.contains("://") => (Some(c), None),
            other => (None, other),
        };
        let detail = ArgocdDetail {
            app: name,
            app_namespace: self.app_namespace.0,
            project: self.project.0,
            trigger,
            sync_status: self.sync_status.0,
            health_status: self.health_status.0,
            health_message: self.health_message.0,
            operation_phase,
            operation_message: self.message.0,
            revision: self.revision.0,
            sources: match self.repo_url.0 {
                Some(url) => vec![AppSource {
                    repo_url: Some(url),
                    ..AppSource::default()
                }],
                None => Vec::new(),
            },
            destination_server,
            destination_name,
            destination_namespace: self.namespace.0,
            sync_result: Vec::new(),
            conditions: Vec::new(),
            resources: compat_resources(self.resources),
            argocd_url: self.argocd_url.0,
            compat: true,
            repaired,
        };
        let times = Times {
            sent: self.timestamp.time(),
            ..Times::default()
        };
        Ok(finish(detail, times, BTreeMap::new(), BTreeMap::new()))
    }
}

const OPERATION_PHASES: &[&str] = &["Running", "Succeeded", "Failed", "Error", "Terminating"];

/// `resources` is `{{toJson .app.status.resources}}` in good copies; anything else
/// (a quoted Go map, a string) carries nothing reliable.
fn compat_resources(v: Value) -> Vec<AppResource> {
    let list = match v {
        Value::Array(a) => a,
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => a,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    list.into_iter()
        .filter_map(|item| serde_json::from_value::<ResourceStatus>(item).ok())
        .filter(|r| r.kind.0.is_some() && r.name.0.is_some())
        .map(|r| AppResource {
            group: r.group.0,
            version: r.version.0,
            kind: r.kind.0.unwrap_or_default(),
            namespace: r.namespace.0,
            name: r.name.0.unwrap_or_default(),
            status: r.status.0,
            health_status: r.health.status.0,
            health_message: r.health.message.0,
        })
        .collect()
}

/// `event_type` values in circulation: `argocd-on-sync-failed`, `app_sync_failed`,
/// `argocd-deployed`, … → the catalog trigger they stand for.
fn trigger_from_event_type(event_type: &str) -> Option<&'static str> {
    let e = event_type.to_ascii_lowercase().replace('_', "-");
    if e.contains("sync-failed") {
        Some("on-sync-failed")
    } else if e.contains("health-degraded") || e.ends_with("degraded") {
        Some("on-health-degraded")
    } else if e.contains("sync-status-unknown") {
        Some("on-sync-status-unknown")
    } else if e.ends_with("deployed") {
        Some("on-deployed")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Kind, status, title, times: shared by both shapes.

#[derive(Default)]
struct Times {
    operation_started: Option<Timestamp>,
    operation_finished: Option<Timestamp>,
    health_changed: Option<Timestamp>,
    reconciled: Option<Timestamp>,
    /// The compat `timestamp` field: when the template rendered.
    sent: Option<Timestamp>,
}

/// The kind a trigger name stands for (any other trigger is informational).
pub fn kind_from_trigger(trigger: &str) -> SignalKind {
    match trigger {
        "on-sync-failed" => SignalKind::SyncFailed,
        "on-health-degraded" => SignalKind::Degraded,
        "on-sync-status-unknown" => SignalKind::SyncUnknown,
        "on-deployed" => SignalKind::Recovered,
        _ => SignalKind::Informational,
    }
}

/// The kind the Application status shows, most severe first.
pub fn kind_from_status(
    operation_phase: Option<&str>,
    health: Option<&str>,
    sync: Option<&str>,
) -> SignalKind {
    match (operation_phase, health, sync) {
        (Some("Failed" | "Error"), _, _) => SignalKind::SyncFailed,
        (_, Some("Degraded"), _) => SignalKind::Degraded,
        (_, _, Some("Unknown")) => SignalKind::SyncUnknown,
        (Some("Succeeded"), Some("Healthy"), _) => SignalKind::Recovered,
        _ => SignalKind::Informational,
    }
}

fn finish(
    detail: ArgocdDetail,
    times: Times,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Signal {
    // A compat event_type that names no catalog trigger says nothing about the kind.
    let known_trigger = detail
        .trigger
        .as_deref()
        .filter(|t| !detail.compat || t.starts_with("on-"));
    let kind = match known_trigger {
        Some(t) => kind_from_trigger(t),
        None => kind_from_status(
            detail.operation_phase.as_deref(),
            detail.health_status.as_deref(),
            detail.sync_status.as_deref(),
        ),
    };
    let status = if kind == SignalKind::Recovered {
        SignalStatus::Resolved
    } else {
        SignalStatus::Firing
    };
    let operation_message = detail.operation_message.clone();
    let health_message = detail.health_message.clone();
    let message = match kind {
        SignalKind::Degraded => health_message.or(operation_message),
        _ => operation_message.or(health_message),
    };
    let started_at = times.sent.or(match kind {
        SignalKind::Degraded => times.health_changed.or(times.reconciled),
        SignalKind::SyncUnknown => times.reconciled,
        _ => times.operation_started.or(times.operation_finished),
    });
    let ended_at = match kind {
        SignalKind::Recovered => times.operation_finished,
        _ => None,
    };
    Signal {
        source: Source::Argocd,
        kind,
        status,
        subject: Subject::Application {
            namespace: detail.app_namespace.clone(),
            name: detail.app.clone(),
        },
        cluster: detail
            .destination_name
            .clone()
            .or_else(|| detail.destination_server.clone()),
        title: detail
            .trigger
            .clone()
            .unwrap_or_else(|| kind.as_str().to_string()),
        message,
        started_at,
        ended_at,
        labels,
        annotations,
        alert: None,
        argocd: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The real Application fixture as JSON.
    fn app() -> Value {
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/argocd/application-real-synced.yaml"),
        )
        .unwrap();
        serde_yaml_ng::from_str(&yaml).unwrap()
    }

    fn own(trigger: &str, app: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "triage": FORMAT, "trigger": trigger, "app": app,
            "context": {"argocdUrl": "https://argocd.example.com", "notificationType": "webhook"}
        }))
        .unwrap()
    }

    #[test]
    fn own_format_fills_the_detail_from_the_real_application() {
        let s = parse(&own("on-deployed", app())).unwrap();
        assert_eq!(s.kind, SignalKind::Recovered);
        assert_eq!(s.status, SignalStatus::Resolved);
        assert_eq!(
            s.subject,
            Subject::Application {
                namespace: Some("argo-cd".into()),
                name: "velero-test".into()
            }
        );
        assert_eq!(s.cluster.as_deref(), Some("gke-alpha-01-europe-west1"));
        assert_eq!(s.title, "on-deployed");
        assert_eq!(
            s.message.as_deref(),
            Some("successfully synced (all tasks run)")
        );
        assert_eq!(s.started_at.unwrap().to_string(), "2024-03-05T07:33:03Z");
        assert_eq!(s.ended_at.unwrap().to_string(), "2024-03-05T07:33:04Z");
        assert_eq!(s.labels["cluster_name"], "gke-alpha-01-europe-west1");
        assert_eq!(
            s.annotations["argocd-image-updater.argoproj.io/update-strategy"],
            "semver"
        );
        let d = s.argocd.unwrap();
        assert_eq!(d.project.as_deref(), Some("sre"));
        assert_eq!(d.sync_status.as_deref(), Some("Synced"));
        assert_eq!(d.health_status.as_deref(), Some("Healthy"));
        assert_eq!(d.operation_phase.as_deref(), Some("Succeeded"));
        assert_eq!(
            d.revision.as_deref(),
            Some("ea8759964626a583667a2bfd08f334ec2070040a")
        );
        assert_eq!(d.sources.len(), 1);
        assert_eq!(
            d.sources[0].repo_url.as_deref(),
            Some("https://github.com/foo/manifests-velero.git")
        );
        assert_eq!(d.sources[0].path.as_deref(), Some("instances/test"));
        assert_eq!(d.sources[0].target_revision.as_deref(), Some("test-lla"));
        assert_eq!(
            d.destination_name.as_deref(),
            Some("gke-alpha-01-europe-west1")
        );
        assert_eq!(d.destination_server, None);
        assert_eq!(d.destination_namespace.as_deref(), Some("test-lla"));
        assert_eq!(d.sync_result.len(), 2);
        assert_eq!(d.sync_result[1].kind, "Deployment");
        assert_eq!(d.sync_result[1].group.as_deref(), Some("apps"));
        // Group "" in the fixture means the core group: no group.
        assert_eq!(d.sync_result[0].group, None);
        assert_eq!(d.sync_result[1].hook_phase.as_deref(), Some("Running"));
        assert_eq!(d.resources.len(), 2);
        assert_eq!(d.resources[1].health_status.as_deref(), Some("Healthy"));
        assert_eq!(d.argocd_url.as_deref(), Some("https://argocd.example.com"));
        assert!(!d.compat && !d.repaired);
    }

    #[test]
    fn kind_from_status_when_there_is_no_trigger() {
        let mut a = app();
        a["status"]["operationState"]["phase"] = "Failed".into();
        a["status"]["operationState"]["message"] = "one or more objects failed".into();
        let mut body: Value = serde_json::from_slice(&own("x", a)).unwrap();
        body.as_object_mut().unwrap().remove("trigger");
        let s = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(s.kind, SignalKind::SyncFailed);
        assert_eq!(s.title, "sync_failed");
        assert_eq!(s.message.as_deref(), Some("one or more objects failed"));

        assert_eq!(
            kind_from_status(Some("Succeeded"), Some("Degraded"), Some("Synced")),
            SignalKind::Degraded
        );
        assert_eq!(
            kind_from_status(Some("Running"), Some("Progressing"), Some("Unknown")),
            SignalKind::SyncUnknown
        );
        assert_eq!(
            kind_from_status(Some("Running"), Some("Progressing"), Some("OutOfSync")),
            SignalKind::Informational
        );
        assert_eq!(
            kind_from_trigger("on-sync-running"),
            SignalKind::Informational
        );
    }

    #[test]
    fn multi_source_and_missing_values() {
        let mut a = app();
        let source = a["spec"]["source"].take();
        a["spec"].as_object_mut().unwrap().remove("source");
        a["spec"]["sources"] = json!([source, {"repoURL": "https://charts.example.com", "chart": "velero", "targetRevision": "5.0.0"}]);
        a["status"]["health"] = json!({"status": "Degraded", "message": "<no value>", "lastTransitionTime": "2024-03-05T08:00:00Z"});
        let s = parse(&own("on-health-degraded", a)).unwrap();
        assert_eq!(s.kind, SignalKind::Degraded);
        assert_eq!(s.started_at.unwrap().to_string(), "2024-03-05T08:00:00Z");
        let d = s.argocd.unwrap();
        assert_eq!(d.sources.len(), 2);
        assert_eq!(d.sources[1].chart.as_deref(), Some("velero"));
        assert_eq!(d.health_message, None, "<no value> is null");
    }

    #[test]
    fn compat_shapes_bare_and_wrapped() {
        let payload = json!({
            "app_name": "web", "health_status": "Degraded", "sync_status": "Synced",
            "message": "<no value>", "revision": "abc", "repo_url": "https://git/x.git",
            "cluster": "https://kubernetes.default.svc", "namespace": "shop",
            "resources": [{"kind": "Deployment", "name": "web", "namespace": "shop", "health": {"status": "Degraded"}}],
            "timestamp": "2024-03-05T09:00:00Z"
        });
        let s = parse(&serde_json::to_vec(&payload).unwrap()).unwrap();
        assert_eq!(s.kind, SignalKind::Degraded);
        assert_eq!(s.cluster.as_deref(), Some("https://kubernetes.default.svc"));
        assert_eq!(s.started_at.unwrap().to_string(), "2024-03-05T09:00:00Z");
        let d = s.argocd.as_ref().unwrap();
        assert!(d.compat);
        assert_eq!(d.operation_message, None);
        assert_eq!(d.resources[0].health_status.as_deref(), Some("Degraded"));
        assert_eq!(d.destination_namespace.as_deref(), Some("shop"));

        let wrapped = json!({"event_type": "argocd-on-sync-failed", "client_payload": {
            "app_name": "web", "health_status": "Healthy", "sync_status": "OutOfSync",
            "operation_phase": "Failed", "message": "boom"}});
        let s = parse(&serde_json::to_vec(&wrapped).unwrap()).unwrap();
        assert_eq!(s.kind, SignalKind::SyncFailed);
        assert_eq!(
            s.argocd.as_ref().unwrap().trigger.as_deref(),
            Some("on-sync-failed")
        );
        assert_eq!(s.message.as_deref(), Some("boom"));

        // An event_type naming no trigger: kind from the status fields.
        let wrapped = json!({"event_type": "deploy-notification", "client_payload": {
            "app_name": "web", "health_status": "Healthy", "status": "Succeeded"}});
        let s = parse(&serde_json::to_vec(&wrapped).unwrap()).unwrap();
        assert_eq!(s.kind, SignalKind::Recovered);
        assert_eq!(s.title, "deploy-notification");
    }

    #[test]
    fn broken_template_output_is_repaired_only_into_a_known_shape() {
        let body = "{\n  \"event_type\": \"on-sync-failed\",\n  \"client_payload\": {\n    \"app_name\": \"web\",\n    \"message\": \"Deployment.apps \"web\" is invalid:\n\tspec.replicas: must be >= 0\",\n    \"revision\": \"<no value>\"\n  }\n}";
        let s = parse(body.as_bytes()).unwrap();
        let d = s.argocd.as_ref().unwrap();
        assert!(d.repaired && d.compat);
        assert_eq!(
            s.message.as_deref(),
            Some("Deployment.apps \"web\" is invalid:\n\tspec.replicas: must be >= 0")
        );
        assert_eq!(d.revision, None);

        // Repairable JSON, but not a shape Triage knows: the original error is reported.
        let e = parse(b"{\n \"x\": \"say \"hi\"\"\n}").unwrap_err();
        assert!(e.0.contains("line 2 column"), "{e}");
        assert!(e.0.contains("toJson"), "{e}");
        // Beyond repair.
        let e = parse(b"{\"app_name\": \"web\", \"message\": map[a:b]}").unwrap_err();
        assert!(e.0.contains("line 1 column 32"), "{e}");
    }

    #[test]
    fn wrong_shapes_and_formats_are_named() {
        let e = parse(br#"{"hello": 1}"#).unwrap_err();
        assert!(
            e.0.contains("unexpected JSON shape") && e.0.contains("hello"),
            "{e}"
        );
        let e = parse(br#"{"triage": "argocd/v9", "app": {}}"#).unwrap_err();
        assert!(e.0.contains("argocd/v9"), "{e}");
        let e = parse(br#"{"triage": "argocd/v1", "app": {"metadata": {}}}"#).unwrap_err();
        assert!(e.0.contains("app.metadata.name"), "{e}");
        let e = parse(br#"{"triage": "argocd/v1", "app": "web"}"#).unwrap_err();
        assert!(e.0.contains("at app"), "{e}");
        let e = parse(br#"{"client_payload": {"sync_status": "Synced"}}"#).unwrap_err();
        assert!(e.0.contains("app_name"), "{e}");
        let e = parse(b"[]").unwrap_err();
        assert!(e.0.contains("got an array"), "{e}");
    }
}
