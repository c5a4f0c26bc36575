//! Webhook bodies as the real senders post them: Alertmanager v4 groups (the shape of
//! `tests/fixtures/alertmanager/*.json`) and Argo CD notifications in Triage's own
//! `argocd/v1` format (the templates in `argocd/`), for tests and benches that go
//! through HTTP.

use jiff::Timestamp;
use serde_json::{Value, json};

/// One alert of a group.
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub fingerprint: String,
    pub firing: bool,
    pub starts_at: Timestamp,
}

impl Alert {
    /// A KubePodCrashLooping alert for `pod` of `workload`.
    pub fn crashloop(
        namespace: &str,
        workload: &str,
        pod: &str,
        fingerprint: &str,
        starts_at: Timestamp,
    ) -> Alert {
        Alert {
            name: "KubePodCrashLooping".into(),
            namespace: namespace.into(),
            pod: pod.into(),
            container: workload.into(),
            fingerprint: fingerprint.into(),
            firing: true,
            starts_at,
        }
    }

    pub fn resolved(mut self) -> Alert {
        self.firing = false;
        self
    }

    fn to_json(&self, ends_at: Timestamp) -> Value {
        json!({
            "status": if self.firing { "firing" } else { "resolved" },
            "labels": {
                "alertname": self.name,
                "container": self.container,
                "job": "kube-state-metrics",
                "namespace": self.namespace,
                "pod": self.pod,
                "severity": "warning",
            },
            "annotations": {
                "description": format!("Pod {}/{} ({}) is in waiting state (reason: CrashLoopBackOff).", self.namespace, self.pod, self.container),
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
                "summary": "Pod is crash looping.",
            },
            "startsAt": self.starts_at.to_string(),
            "endsAt": if self.firing { "0001-01-01T00:00:00Z".to_string() } else { ends_at.to_string() },
            "generatorURL": "http://prometheus:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%7Breason%3D%22CrashLoopBackOff%22%7D%5B5m%5D%29+%3E%3D+1",
            "fingerprint": self.fingerprint,
        })
    }
}

/// An Alertmanager notification for one group (grouped by alertname and namespace).
pub fn alertmanager_group(alerts: &[Alert], now: Timestamp) -> Vec<u8> {
    let first = &alerts[0];
    let status = if alerts.iter().any(|a| a.firing) {
        "firing"
    } else {
        "resolved"
    };
    let body = json!({
        "receiver": "triage",
        "status": status,
        "alerts": alerts.iter().map(|a| a.to_json(now)).collect::<Vec<_>>(),
        "groupLabels": {"alertname": first.name, "namespace": first.namespace},
        "commonLabels": {"alertname": first.name, "job": "kube-state-metrics", "namespace": first.namespace, "severity": "warning"},
        "commonAnnotations": {"summary": "Pod is crash looping."},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\", namespace=\"{}\"}}", first.name, first.namespace),
        "truncatedAlerts": 0,
    });
    serde_json::to_vec(&body).expect("JSON")
}

/// An Argo CD `on-health-degraded` notification for `app` deploying to `namespace`.
pub fn argocd_degraded(app: &str, namespace: &str, revision: &str, at: Timestamp) -> Vec<u8> {
    let body = json!({
        "triage": "argocd/v1",
        "trigger": "on-health-degraded",
        "app": {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": app, "namespace": "argocd", "uid": format!("uid-{app}")},
            "spec": {
                "project": "default",
                "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
                "source": {"repoURL": "https://github.com/acme/gitops.git", "path": format!("apps/{app}"), "targetRevision": "main"},
            },
            "status": {
                "sync": {"status": "Synced", "revision": revision},
                "health": {"status": "Degraded", "message": format!("Deployment {app} has 0 of 3 replicas ready"), "lastTransitionTime": at.to_string()},
                "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)", "startedAt": at.to_string(), "finishedAt": at.to_string(),
                    "syncResult": {"revision": revision, "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": namespace, "name": app, "status": "Synced", "message": "deployment.apps/configured"}]}},
            },
        },
        "context": {"argocdUrl": "https://argocd.example.com"},
    });
    serde_json::to_vec(&body).expect("JSON")
}
