//! Correlate: which work order a signal belongs to.
//!
//! The key is what makes "one failing workload → one issue" true: an Argo CD degraded
//! notification, the KubePodCrashLooping alerts of the Deployment's pods and a
//! KubeDeploymentReplicasMismatch for it all name the same workload once enriched, so
//! they share a key. In order of preference:
//!
//! 1. the owning workload, from the context (or the signal's own subject when the
//!    payload names a workload): `prod/pets/deployment/store-front`;
//! 2. the Argo CD Application: `prod/argocd/application/store-front`;
//! 3. the alert's identifying labels — every label except the volatile ones
//!    ([`VOLATILE_LABELS`]) and those already in the key (`alertname`, `namespace`, the
//!    cluster label): `prod/pets/alert/KubePodCrashLooping/container=store-front,job=kube-state-metrics`.
//!    Never `groupKey`: it holds the route path and changes when routes are edited.
//!
//! Keys are human-readable and stable; they go into the hidden marker. The
//! forge also gets a short label (`triage/3f9a…`) so the issue can be found by label.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::context::Context;
use crate::signal::{Signal, Subject};

/// Alert labels that name one instance of a failure, not the failure: they change when a
/// pod is replaced, a target is rescheduled, a rollout happens or a Prometheus replica
/// evaluates the rule. Keying on them would open one issue per pod.
///
/// `severity` is here too: many rules come in warning/critical pairs for one condition,
/// and one condition is one work order (the route carries the urgency).
pub const VOLATILE_LABELS: &[&str] = &[
    "pod",
    "pod_name",
    "pod_ip",
    "pod_uid",
    "uid",
    "instance",
    "endpoint",
    "service",
    "container_id",
    "image",
    "image_id",
    "image_spec",
    "pod_template_hash",
    "pod_template_generation",
    "controller_revision_hash",
    "host_ip",
    "ip",
    "prometheus",
    "prometheus_replica",
    "replica",
    "__replica__",
    "severity",
];

/// Longest key kept human-readable; longer label sets are hashed.
const MAX_READABLE_KEY: usize = 160;

/// Hex digits of the key hash in the short key label.
const KEY_LABEL_HASH_LEN: usize = 12;

/// GitHub's limit on label names.
pub const MAX_LABEL_LEN: usize = 50;

/// A work-order key: `cluster/namespace/kind/name` and friends (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkOrderKey(String);

impl WorkOrderKey {
    /// Wraps a key read back from the store or a forge marker.
    pub fn from_stored(key: impl Into<String>) -> Self {
        WorkOrderKey(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short forge label: `prefix` + 12 hex digits of SHA-256 of the key.
    /// 48 bits of hash make a collision among even a million keys unlikely (~0.2 %),
    /// and the marker in the body is checked anyway.
    pub fn label(&self, prefix: &str) -> String {
        let digest = hex::encode(Sha256::digest(self.0.as_bytes()));
        format!("{prefix}{}", &digest[..KEY_LABEL_HASH_LEN])
    }
}

impl fmt::Display for WorkOrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a key-label prefix so that prefix + hash fits a forge label.
pub fn validate_key_prefix(prefix: &str) -> Result<(), String> {
    let max = MAX_LABEL_LEN - KEY_LABEL_HASH_LEN;
    if prefix.chars().count() > max {
        return Err(format!(
            "labels.key_prefix is {} characters; at most {max} fit, since labels are limited to {MAX_LABEL_LEN}",
            prefix.chars().count()
        ));
    }
    if prefix.contains(',') {
        return Err(
            "labels.key_prefix must not contain ',' (forges split label filters on it)".into(),
        );
    }
    Ok(())
}

/// What the key was derived from, for the work order's document and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyBasis {
    Workload,
    Application,
    Labels,
    Title,
}

/// The work-order key of a signal in its context. `cluster_label` is the Alertmanager
/// label naming the cluster (`kubernetes.cluster_label`): it is already in the key.
pub fn work_order_key(
    signal: &Signal,
    context: &Context,
    cluster_label: &str,
) -> (WorkOrderKey, KeyBasis) {
    let cluster = segment(&context.cluster.name);

    if let Some(w) = &context.workload {
        return (
            WorkOrderKey(format!(
                "{cluster}/{}/{}/{}",
                segment(&w.namespace),
                w.kind.kubectl_name(),
                segment(&w.name)
            )),
            KeyBasis::Workload,
        );
    }
    if let Subject::Workload {
        kind,
        namespace,
        name,
    } = &signal.subject
    {
        return (
            WorkOrderKey(format!(
                "{cluster}/{}/{}/{}",
                segment(namespace),
                kind.kubectl_name(),
                segment(name)
            )),
            KeyBasis::Workload,
        );
    }

    let from_subject = match &signal.subject {
        Subject::Application { namespace, name } => Some((namespace.as_deref(), name.as_str())),
        _ => None,
    };
    let from_detail = signal
        .argocd
        .as_ref()
        .map(|d| (d.app_namespace.as_deref(), d.app.as_str()));
    let app = context
        .app
        .as_ref()
        .map(|a| (a.namespace.as_deref(), a.name.as_str()))
        .or(from_subject)
        .or(from_detail);
    if let Some((namespace, name)) = app {
        // Applications live in Argo CD's own namespace, `argocd` unless apps-in-any-
        // namespace is used; a payload that omits it means the default one.
        return (
            WorkOrderKey(format!(
                "{cluster}/{}/application/{}",
                segment(namespace.unwrap_or("argocd")),
                segment(name)
            )),
            KeyBasis::Application,
        );
    }

    let namespace = signal
        .subject
        .namespace()
        .map(segment)
        .unwrap_or_else(|| "_cluster".to_string());
    if let Some(alert) = &signal.alert {
        let name = if alert.name.is_empty() {
            "unnamed"
        } else {
            &alert.name
        };
        let prefix = format!("{cluster}/{namespace}/alert/{}", segment(name));
        return (
            WorkOrderKey(label_key(&prefix, &signal.labels, cluster_label)),
            KeyBasis::Labels,
        );
    }
    (
        WorkOrderKey(format!(
            "{cluster}/{namespace}/{}/{}",
            signal.source,
            segment(&signal.title)
        )),
        KeyBasis::Title,
    )
}

/// `prefix/k=v,k=v` over the identifying labels, or `prefix/#<hash>` when that would be
/// long or the values hold characters that do not belong in a key.
fn label_key(prefix: &str, labels: &BTreeMap<String, String>, cluster_label: &str) -> String {
    let identifying: Vec<(&str, &str)> = labels
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k != "alertname"
                && k != "namespace"
                && k != cluster_label
                && !VOLATILE_LABELS.contains(&k)
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if identifying.is_empty() {
        return prefix.to_string();
    }
    let readable = identifying
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let safe = identifying
        .iter()
        .all(|(k, v)| is_safe(k) && is_safe(v) && !v.contains('='));
    if safe && prefix.len() + 1 + readable.len() <= MAX_READABLE_KEY {
        return format!("{prefix}/{readable}");
    }
    let mut hasher = Sha256::new();
    for (k, v) in &identifying {
        // Length-prefixed so that {a="b,c"} and {a="b", c=""} cannot collide.
        hasher.update((k.len() as u64).to_be_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_be_bytes());
        hasher.update(v.as_bytes());
    }
    let digest = hex::encode(hasher.finalize());
    format!("{prefix}/#{}", &digest[..16])
}

fn is_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
}

/// One path segment of a key: `/` would change the key's shape and `-->` would end the
/// hidden marker, so both are replaced; Kubernetes names never contain them anyway.
fn segment(s: &str) -> String {
    let cleaned: String = s
        .trim()
        .chars()
        .map(|c| {
            if c == '/' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{
        AlertDetail, AlertGroup, ArgocdDetail, SignalKind, SignalStatus, Source, WorkloadKind,
    };
    use crate::triage::context::{AppRef, ClusterInfo, SnapshotState, WorkloadRef};

    fn ctx(workload: Option<WorkloadRef>, app: Option<AppRef>) -> Context {
        let mut c = Context::unknown(ClusterInfo {
            name: "prod".into(),
            state: SnapshotState::Synced,
        });
        c.workload = workload;
        c.app = app;
        c
    }

    fn store_front() -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "pets".into(),
            name: "store-front".into(),
        }
    }

    fn alert(name: &str, labels: &[(&str, &str)], subject: Subject) -> Signal {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("alertname".to_string(), name.to_string())])
            .collect();
        Signal {
            source: Source::Alertmanager,
            kind: SignalKind::Alert,
            status: SignalStatus::Firing,
            subject,
            cluster: None,
            title: name.into(),
            message: None,
            started_at: None,
            ended_at: None,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
            alert: Some(AlertDetail {
                name: name.into(),
                fingerprint: "0123456789abcdef".into(),
                generator_url: None,
                group: AlertGroup {
                    group_key: "{}:{alertname=\"x\"}".into(),
                    receiver: "triage".into(),
                    status: SignalStatus::Firing,
                    group_labels: BTreeMap::new(),
                    common_labels: BTreeMap::new(),
                    common_annotations: BTreeMap::new(),
                    external_url: None,
                    truncated_alerts: 0,
                },
            }),
            argocd: None,
        }
    }

    fn argocd_degraded(app: &str) -> Signal {
        Signal {
            source: Source::Argocd,
            kind: SignalKind::Degraded,
            status: SignalStatus::Firing,
            subject: Subject::Application {
                namespace: Some("argocd".into()),
                name: app.into(),
            },
            cluster: Some("https://kubernetes.default.svc".into()),
            title: "on-health-degraded".into(),
            message: Some("Deployment store-front has 0 of 3 ready".into()),
            started_at: None,
            ended_at: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            alert: None,
            argocd: Some(ArgocdDetail {
                app: app.into(),
                app_namespace: Some("argocd".into()),
                health_status: Some("Degraded".into()),
                ..ArgocdDetail::default()
            }),
        }
    }

    /// The acceptance case of the issue: an Argo CD degraded notification, three crash
    /// looping pods and a replica mismatch for their Deployment are one work order.
    #[test]
    fn argocd_crashloops_and_replica_mismatch_share_one_key() {
        let app = AppRef {
            namespace: Some("argocd".into()),
            name: "store-front".into(),
            health: Some("Degraded".into()),
            sync: Some("Synced".into()),
            operation_phase: None,
        };
        let mut keys = vec![work_order_key(
            &argocd_degraded("store-front"),
            &ctx(Some(store_front()), Some(app.clone())),
            "cluster",
        )];
        for pod in [
            "store-front-7d9f-abc",
            "store-front-7d9f-def",
            "store-front-7d9f-ghi",
        ] {
            let signal = alert(
                "KubePodCrashLooping",
                &[
                    ("namespace", "pets"),
                    ("pod", pod),
                    ("container", "store-front"),
                    ("job", "kube-state-metrics"),
                    ("severity", "warning"),
                ],
                Subject::Pod {
                    namespace: "pets".into(),
                    name: pod.into(),
                },
            );
            keys.push(work_order_key(
                &signal,
                &ctx(Some(store_front()), Some(app.clone())),
                "cluster",
            ));
        }
        let mismatch = alert(
            "KubeDeploymentReplicasMismatch",
            &[
                ("namespace", "pets"),
                ("deployment", "store-front"),
                ("pod", "kube-state-metrics-5c4f-xyz"),
                ("instance", "10.0.0.7:8080"),
            ],
            Subject::Workload {
                kind: WorkloadKind::Deployment,
                namespace: "pets".into(),
                name: "store-front".into(),
            },
        );
        // Even without a snapshot answer, the alert names the workload itself.
        keys.push(work_order_key(&mismatch, &ctx(None, None), "cluster"));

        for (key, basis) in &keys {
            assert_eq!(key.as_str(), "prod/pets/deployment/store-front");
            assert_eq!(*basis, KeyBasis::Workload);
        }
    }

    #[test]
    fn without_a_workload_the_application_is_the_key() {
        let (key, basis) =
            work_order_key(&argocd_degraded("store-front"), &ctx(None, None), "cluster");
        assert_eq!(key.as_str(), "prod/argocd/application/store-front");
        assert_eq!(basis, KeyBasis::Application);

        // An alert whose context found the app (tracking id) but no workload.
        let signal = alert(
            "KubeQuotaExceeded",
            &[("namespace", "pets")],
            Subject::Other {
                namespace: Some("pets".into()),
            },
        );
        let app = AppRef {
            namespace: None,
            name: "pets".into(),
            health: None,
            sync: None,
            operation_phase: None,
        };
        let (key, _) = work_order_key(&signal, &ctx(None, Some(app)), "cluster");
        assert_eq!(key.as_str(), "prod/argocd/application/pets");
    }

    #[test]
    fn label_keys_ignore_volatile_labels_and_the_group_key() {
        let a = alert(
            "KubePodCrashLooping",
            &[
                ("namespace", "pets"),
                ("pod", "store-front-7d9f-abc"),
                ("instance", "10.0.0.1:8080"),
                ("container", "store-front"),
                ("severity", "warning"),
                ("cluster", "prod-eu"),
            ],
            Subject::Pod {
                namespace: "pets".into(),
                name: "store-front-7d9f-abc".into(),
            },
        );
        let mut b = alert(
            "KubePodCrashLooping",
            &[
                ("namespace", "pets"),
                ("pod", "store-front-7d9f-xyz"),
                ("instance", "10.0.0.2:8080"),
                ("container", "store-front"),
                ("severity", "critical"),
                ("cluster", "prod-eu"),
            ],
            Subject::Pod {
                namespace: "pets".into(),
                name: "store-front-7d9f-xyz".into(),
            },
        );
        b.alert.as_mut().unwrap().group.group_key = "{}/{team=\"pets\"}:{alertname=\"x\"}".into();
        let (ka, basis) = work_order_key(&a, &ctx(None, None), "cluster");
        let (kb, _) = work_order_key(&b, &ctx(None, None), "cluster");
        assert_eq!(basis, KeyBasis::Labels);
        assert_eq!(ka, kb);
        assert_eq!(
            ka.as_str(),
            "prod/pets/alert/KubePodCrashLooping/container=store-front"
        );

        // A different container is a different failure.
        let c = alert(
            "KubePodCrashLooping",
            &[("namespace", "pets"), ("container", "sidecar")],
            Subject::Other {
                namespace: Some("pets".into()),
            },
        );
        assert_ne!(work_order_key(&c, &ctx(None, None), "cluster").0, ka);
    }

    #[test]
    fn unsafe_or_long_label_values_are_hashed_stably() {
        let long = "x".repeat(300);
        let a = alert(
            "ProbeFailed",
            &[
                ("target", "https://shop.example.com/health?x=1"),
                ("note", &long),
            ],
            Subject::Other { namespace: None },
        );
        let (k1, _) = work_order_key(&a, &ctx(None, None), "cluster");
        let (k2, _) = work_order_key(&a.clone(), &ctx(None, None), "cluster");
        assert_eq!(k1, k2);
        assert!(
            k1.as_str().starts_with("prod/_cluster/alert/ProbeFailed/#"),
            "{k1}"
        );
        assert!(k1.as_str().len() < 80);
        assert!(!k1.as_str().contains("-->"));
    }

    #[test]
    fn key_label_is_short_stable_and_prefixed() {
        let key = WorkOrderKey::from_stored("prod/pets/deployment/store-front");
        let label = key.label("triage/");
        assert_eq!(label, key.label("triage/"));
        assert!(label.starts_with("triage/"));
        assert_eq!(label.len(), "triage/".len() + 12);
        assert_ne!(
            label,
            WorkOrderKey::from_stored("prod/pets/deployment/other").label("triage/")
        );
        let longest = "p".repeat(38);
        assert!(validate_key_prefix(&longest).is_ok());
        assert!(key.label(&longest).len() <= MAX_LABEL_LEN);
        let err = validate_key_prefix(&"p".repeat(39)).unwrap_err();
        assert!(err.contains("labels.key_prefix"), "{err}");
    }

    #[test]
    fn segments_cannot_break_the_key_or_the_marker() {
        let mut s = alert("X", &[], Subject::Other { namespace: None });
        s.alert = None;
        s.title = "bad/title --> here".into();
        let (key, basis) = work_order_key(&s, &ctx(None, None), "cluster");
        assert_eq!(basis, KeyBasis::Title);
        assert_eq!(
            key.as_str(),
            "prod/_cluster/alertmanager/bad_title_--__here"
        );
    }
}
