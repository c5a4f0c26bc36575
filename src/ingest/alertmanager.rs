//! Alertmanager webhook payload (version 4) → one [`Signal`] per alert.
//!
//! Field facts (CONTRACTS.md): firing alerts carry `endsAt` = the zero time; `receiver`
//! arrives regex-escaped; newer releases add fields (`notification_reason`,
//! `routeLabels`) that are accepted and ignored. The Subject follows kube-state-metrics
//! label conventions (`deployment`, `statefulset`, `daemonset`, `job_name`, `cronjob`,
//! `pod`, each with `namespace`; `job` is Prometheus' scrape job, not a Kubernetes Job).
//!
//! Large label or annotation values are accepted as long as the whole body fits
//! `server.body_limit`: Alertmanager never retries a 4xx, so refusing one oversized
//! value would silently drop every other alert of the group. Renderers truncate.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

use super::json::{self, BadPayload};
use crate::signal::{
    AlertDetail, AlertGroup, Signal, SignalKind, SignalStatus, Source, Subject, WorkloadKind,
};

/// The payload version this parser understands.
pub const VERSION: &str = "4";

/// Parser settings from the configuration.
#[derive(Debug, Clone)]
pub struct AlertmanagerOptions {
    /// The alert label naming the cluster (`kubernetes.cluster_label`).
    pub cluster_label: String,
}

impl Default for AlertmanagerOptions {
    fn default() -> Self {
        AlertmanagerOptions {
            cluster_label: "cluster".into(),
        }
    }
}

type Labels = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    version: String,
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
    status: SignalStatus,
    receiver: String,
    #[serde(default)]
    group_labels: Labels,
    #[serde(default)]
    common_labels: Labels,
    #[serde(default)]
    common_annotations: Labels,
    #[serde(default, rename = "externalURL")]
    external_url: Option<String>,
    alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: SignalStatus,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default)]
    starts_at: Option<Timestamp>,
    #[serde(default)]
    ends_at: Option<Timestamp>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: String,
}

/// Only the version, to say "wrong version" rather than "wrong shape" when both apply.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<serde_json::Value>,
}

/// Parses one webhook body into its signals (one per alert, in payload order).
pub fn parse(body: &[u8], options: &AlertmanagerOptions) -> Result<Vec<Signal>, BadPayload> {
    let text = json::text(body)?;
    // serde skips unknown fields without a depth limit; refuse absurd nesting anyway.
    json::check_depth(text)?;
    let payload: Payload = match serde_json::from_str(text) {
        Ok(p) => p,
        Err(err) => {
            if let Ok(VersionProbe {
                version: Some(v), ..
            }) = serde_json::from_str::<VersionProbe>(text)
                && v != serde_json::Value::String(VERSION.into())
            {
                return Err(wrong_version(&v.to_string()));
            }
            let mut bad = json::explain::<Payload>(text, &err);
            if err.classify() == serde_json::error::Category::Data {
                bad.0.push_str(
                    " (expected an Alertmanager webhook payload, version 4: {\"version\":\"4\",\"status\":…,\"alerts\":[…]})",
                );
            }
            return Err(bad);
        }
    };
    if payload.version != VERSION {
        return Err(wrong_version(&format!("{:?}", payload.version)));
    }
    Ok(to_signals(payload, options))
}

fn wrong_version(got: &str) -> BadPayload {
    BadPayload(format!(
        "unsupported Alertmanager payload version {got}: Triage understands version \"{VERSION}\" (Alertmanager 0.16 and later)"
    ))
}

fn to_signals(p: Payload, options: &AlertmanagerOptions) -> Vec<Signal> {
    let group = AlertGroup {
        group_key: p.group_key,
        receiver: unescape_receiver(&p.receiver),
        status: p.status,
        group_labels: p.group_labels,
        common_labels: p.common_labels,
        common_annotations: p.common_annotations,
        external_url: p.external_url.filter(|u| !u.is_empty()),
        truncated_alerts: p.truncated_alerts,
    };
    p.alerts
        .into_iter()
        .map(|a| {
            let name = a.labels.get("alertname").cloned().unwrap_or_default();
            let title = if name.is_empty() {
                format!("alert {}", a.fingerprint)
            } else {
                name.clone()
            };
            let message = ["description", "summary", "message"]
                .iter()
                .find_map(|k| a.annotations.get(*k).filter(|v| !v.is_empty()))
                .cloned();
            Signal {
                source: Source::Alertmanager,
                kind: SignalKind::Alert,
                status: a.status,
                subject: subject(&a.labels),
                cluster: a
                    .labels
                    .get(&options.cluster_label)
                    .filter(|v| !v.is_empty())
                    .cloned(),
                title,
                message,
                started_at: a.starts_at.filter(|t| !is_zero_time(*t)),
                ended_at: a.ends_at.filter(|t| !is_zero_time(*t)),
                alert: Some(AlertDetail {
                    name,
                    fingerprint: a.fingerprint,
                    generator_url: a.generator_url.filter(|u| !u.is_empty()),
                    group: group.clone(),
                }),
                labels: a.labels,
                annotations: a.annotations,
                argocd: None,
            }
        })
        .collect()
}

/// Go's zero `time.Time`, `0001-01-01T00:00:00Z`: "no end yet" on firing alerts.
fn is_zero_time(t: Timestamp) -> bool {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    t.as_second() == GO_ZERO_TIME && t.subsec_nanosecond() == 0
}

/// The Subject kube-state-metrics labels describe, most specific workload first.
fn subject(labels: &Labels) -> Subject {
    let get = |k: &str| labels.get(k).filter(|v| !v.is_empty());
    let namespace = get("namespace");
    if let Some(ns) = namespace {
        for (label, kind) in [
            ("deployment", WorkloadKind::Deployment),
            ("statefulset", WorkloadKind::StatefulSet),
            ("daemonset", WorkloadKind::DaemonSet),
            ("job_name", WorkloadKind::Job),
            ("cronjob", WorkloadKind::CronJob),
        ] {
            if let Some(name) = get(label) {
                return Subject::Workload {
                    kind,
                    namespace: ns.clone(),
                    name: name.clone(),
                };
            }
        }
        if let Some(pod) = get("pod") {
            return Subject::Pod {
                namespace: ns.clone(),
                name: pod.clone(),
            };
        }
    }
    Subject::Other {
        namespace: namespace.cloned(),
    }
}

/// Alertmanager escapes regex metacharacters in the receiver name (`web\.hook`).
fn unescape_receiver(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/alertmanager")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn real_firing_group_gives_one_signal_per_alert() {
        let signals = parse(
            &fixture("crashlooping-group-firing.json"),
            &AlertmanagerOptions::default(),
        )
        .unwrap();
        assert_eq!(signals.len(), 2);
        let s = &signals[0];
        assert_eq!(s.source, Source::Alertmanager);
        assert_eq!(s.kind, SignalKind::Alert);
        assert_eq!(s.status, SignalStatus::Firing);
        assert_eq!(s.title, "KubePodCrashLooping");
        assert_eq!(
            s.subject,
            Subject::Pod {
                namespace: "pets".into(),
                name: "store-front-7d9f-abc".into()
            }
        );
        assert_eq!(
            s.message.as_deref(),
            Some(
                "Pod pets/store-front-7d9f-abc (store-front) is in waiting state (reason: CrashLoopBackOff)."
            )
        );
        assert_eq!(
            s.started_at.unwrap().to_string(),
            "2026-11-23T16:10:38.218024551Z"
        );
        assert_eq!(s.ended_at, None, "the zero time means no end");
        assert_eq!(s.cluster, None);
        let a = s.alert.as_ref().unwrap();
        assert_eq!(a.fingerprint, "efcc16dae668ac0f");
        assert_eq!(a.name, "KubePodCrashLooping");
        assert!(
            a.generator_url
                .as_deref()
                .unwrap()
                .starts_with("http://prometheus:9090/graph")
        );
        assert_eq!(a.group.receiver, "bridge");
        assert_eq!(a.group.status, SignalStatus::Firing);
        assert_eq!(
            a.group.group_key,
            "{}:{alertname=\"KubePodCrashLooping\", namespace=\"pets\"}"
        );
        assert_eq!(a.group.group_labels.len(), 2);
        assert_eq!(a.group.common_labels["job"], "kube-state-metrics");
        assert_eq!(
            a.group.common_annotations["summary"],
            "Pod is crash looping."
        );
        assert_eq!(a.group.external_url.as_deref(), Some("http://vm:19093"));
        assert_eq!(a.group.truncated_alerts, 0);
        assert_eq!(s.labels["container"], "store-front");
        assert_eq!(
            signals[1].alert.as_ref().unwrap().fingerprint,
            "26f157d86bb2592c"
        );
    }

    #[test]
    fn real_resolved_group_has_end_times() {
        let signals = parse(
            &fixture("crashlooping-group-resolved.json"),
            &AlertmanagerOptions::default(),
        )
        .unwrap();
        assert!(signals.iter().all(|s| s.status == SignalStatus::Resolved));
        assert_eq!(
            signals[0].ended_at.unwrap().to_string(),
            "2026-11-23T16:10:41.570117Z"
        );
    }

    fn variant(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("crashlooping-group-firing.json")).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn workload_labels_cluster_label_escaped_receiver_and_new_fields() {
        let body = variant(|v| {
            v["receiver"] = "web\\.hook".into();
            v["notification_reason"] = "new_alerts".into();
            v["routeLabels"] = serde_json::json!({"team": "a"});
            let labels = &mut v["alerts"][0]["labels"];
            labels["deployment"] = "store-front".into();
            labels["k8s_cluster"] = "prod-eu".into();
            v["alerts"][1]["labels"]
                .as_object_mut()
                .unwrap()
                .remove("pod");
            v["alerts"][1]["annotations"] = serde_json::json!({"summary": "s"});
        });
        let options = AlertmanagerOptions {
            cluster_label: "k8s_cluster".into(),
        };
        let signals = parse(&body, &options).unwrap();
        assert_eq!(
            signals[0].subject,
            Subject::Workload {
                kind: WorkloadKind::Deployment,
                namespace: "pets".into(),
                name: "store-front".into()
            }
        );
        assert_eq!(signals[0].cluster.as_deref(), Some("prod-eu"));
        assert_eq!(
            signals[0].alert.as_ref().unwrap().group.receiver,
            "web.hook"
        );
        assert_eq!(
            signals[1].subject,
            Subject::Other {
                namespace: Some("pets".into())
            }
        );
        assert_eq!(signals[1].message.as_deref(), Some("s"));
    }

    #[test]
    fn wrong_version_and_wrong_shape_say_so() {
        let e = parse(
            &variant(|v| v["version"] = "3".into()),
            &AlertmanagerOptions::default(),
        )
        .unwrap_err();
        assert!(
            e.0.contains("version \"3\"") && e.0.contains("\"4\""),
            "{e}"
        );
        let e = parse(
            &variant(|v| {
                v["version"] = 5.into();
                v["alerts"] = "nope".into();
            }),
            &AlertmanagerOptions::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("version 5"), "{e}");
        let e = parse(
            &variant(|v| v["alerts"][1]["status"] = "pending".into()),
            &AlertmanagerOptions::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("alerts[1].status"), "{e}");
        let e = parse(br#"{"hello":"world"}"#, &AlertmanagerOptions::default()).unwrap_err();
        assert!(e.0.contains("missing field"), "{e}");
        let e = parse(b"[1,2]", &AlertmanagerOptions::default()).unwrap_err();
        assert!(e.0.contains("unexpected JSON shape"), "{e}");
    }
}
