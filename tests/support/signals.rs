//! Signal builders for tests that journal deliveries directly (below the HTTP edge).

use std::collections::BTreeMap;

use jiff::Timestamp;
use triage::signal::{
    AlertDetail, AlertGroup, ArgocdDetail, Signal, SignalKind, SignalStatus, Source, Subject,
};

/// One KubePodCrashLooping-style alert for `pod` in `namespace`.
pub fn alert(
    name: &str,
    fingerprint: &str,
    namespace: &str,
    pod: &str,
    status: SignalStatus,
    started_at: Timestamp,
) -> Signal {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), name.to_string());
    labels.insert("namespace".to_string(), namespace.to_string());
    labels.insert("pod".to_string(), pod.to_string());
    Signal {
        source: Source::Alertmanager,
        kind: SignalKind::Alert,
        status,
        subject: Subject::Pod {
            namespace: namespace.into(),
            name: pod.into(),
        },
        cluster: None,
        title: name.into(),
        message: Some(format!("Pod {namespace}/{pod} is crash looping.")),
        started_at: Some(started_at),
        ended_at: None,
        labels,
        annotations: BTreeMap::new(),
        alert: Some(AlertDetail {
            name: name.into(),
            fingerprint: fingerprint.into(),
            generator_url: Some("http://prometheus:9090/graph".into()),
            group: AlertGroup {
                group_key: format!("{{}}:{{alertname=\"{name}\"}}"),
                receiver: "triage".into(),
                status,
                group_labels: BTreeMap::new(),
                common_labels: BTreeMap::new(),
                common_annotations: BTreeMap::new(),
                external_url: Some("http://alertmanager:9093".into()),
                truncated_alerts: 0,
            },
        }),
        argocd: None,
    }
}

/// An Argo CD notification for `app`.
pub fn argocd(kind: SignalKind, status: SignalStatus, app: &str, revision: &str) -> Signal {
    Signal {
        source: Source::Argocd,
        kind,
        status,
        subject: Subject::Application {
            namespace: Some("argocd".into()),
            name: app.into(),
        },
        cluster: None,
        title: format!("on-{kind}"),
        message: None,
        started_at: None,
        ended_at: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        alert: None,
        argocd: Some(ArgocdDetail {
            app: app.into(),
            app_namespace: Some("argocd".into()),
            revision: Some(revision.into()),
            ..ArgocdDetail::default()
        }),
    }
}
