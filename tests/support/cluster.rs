//! Helpers for the cluster tests: fixtures, variants of them, snapshots and signals.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use triage::cluster::loader;
use triage::cluster::{Limits, Snapshot};
use triage::signal::{
    AlertDetail, AlertGroup, ArgocdDetail, Signal, SignalKind, SignalStatus, Source, Subject,
};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under tests/fixtures.
pub fn fixture(path: &str) -> String {
    let p = root().join("tests/fixtures").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A Kubernetes fixture as JSON, ready to be changed by a test.
pub fn object(name: &str) -> Value {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fixture(&format!("kubernetes/{name}.yaml"))).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// A fixture with `edit` applied.
pub fn variant(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = object(name);
    edit(&mut v);
    v
}

/// A snapshot of these objects (a JSON List through the static loader).
pub fn snapshot(objects: &[Value]) -> Snapshot {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    loader::load_str(&list.to_string(), Limits::default())
        .unwrap()
        .0
}

pub fn example_yaml() -> String {
    std::fs::read_to_string(root().join("examples/cluster.yaml")).unwrap()
}

pub fn example() -> Snapshot {
    loader::load_str(&example_yaml(), Limits::default())
        .unwrap()
        .0
}

/// Every document of the example cluster as JSON, to build variants of it.
pub fn example_objects() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&example_yaml())
        .filter_map(|d| {
            let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(d).unwrap();
            (!v.is_null()).then(|| serde_json::to_value(v).unwrap())
        })
        .collect()
}

pub fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        v
    } else {
        v.pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent} in object"))
    };
    match target {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        Value::Object(map) => {
            map.insert(key.replace("~1", "/"), value);
        }
        _ => panic!("{parent} is neither an object nor a list"),
    }
}

pub fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    if let Some(obj) = v.pointer_mut(parent).and_then(Value::as_object_mut) {
        obj.remove(&key.replace("~1", "/"));
    }
}

/// A Deployment built from the degraded fixture with the given figures and no
/// conditions: `(spec.replicas, status.replicas, ready, updated, unavailable)`.
pub fn deployment(ns: &str, name: &str, figures: (i64, i64, i64, i64, i64)) -> Value {
    let (desired, current, ready, updated, unavailable) = figures;
    variant("deployment-degraded", |d| {
        set(d, "/metadata/name", name.into());
        set(d, "/metadata/namespace", ns.into());
        set(d, "/metadata/annotations", serde_json::json!({}));
        set(d, "/spec/replicas", desired.into());
        set(
            d,
            "/status",
            serde_json::json!({
                "observedGeneration": 4,
                "replicas": current,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "updatedReplicas": updated,
                "unavailableReplicas": unavailable,
            }),
        );
    })
}

/// A healthy StatefulSet from the fixture, renamed.
pub fn stateful_set(ns: &str, name: &str) -> Value {
    variant("statefulset", |s| {
        set(s, "/metadata/name", name.into());
        set(s, "/metadata/namespace", ns.into());
        set(s, "/metadata/annotations", serde_json::json!({}));
    })
}

/// A pod (from the crash-loop fixture) owned by `kind/owner`.
pub fn pod(ns: &str, name: &str, owner: Option<(&str, &str)>) -> Value {
    variant("pod-crashloop", |p| {
        set(p, "/metadata/name", name.into());
        set(p, "/metadata/namespace", ns.into());
        if let Some((kind, owner)) = owner {
            set(
                p,
                "/metadata/ownerReferences",
                serde_json::json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                    "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]),
            );
        }
    })
}

pub fn replica_set(ns: &str, name: &str, deployment: &str) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
             "uid": "00000000-0000-0000-0000-000000000002", "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": deployment}}},
    })
}

pub fn annotate(v: &mut Value, pointer: &str, pairs: &[(&str, &str)]) {
    if v.pointer(pointer).is_none_or(Value::is_null) {
        set(v, pointer, serde_json::json!({}));
    }
    let map = v.pointer_mut(pointer).unwrap().as_object_mut().unwrap();
    for (k, val) in pairs {
        map.insert(format!("deployscope.dev/{k}"), Value::from(*val));
    }
}

/// The firing alerts of the real Alertmanager capture, one signal each, as the
/// ingest parser produces them (subject: the pod the alert names).
pub fn alertmanager_signals(file: &str) -> Vec<Signal> {
    let body: Value = serde_json::from_str(&fixture(&format!("alertmanager/{file}"))).unwrap();
    let labels = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let status = |s: &str| {
        if s == "resolved" {
            SignalStatus::Resolved
        } else {
            SignalStatus::Firing
        }
    };
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let l = labels(&a["labels"]);
            Signal {
                source: Source::Alertmanager,
                kind: SignalKind::Alert,
                status: status(a["status"].as_str().unwrap()),
                subject: Subject::Pod {
                    namespace: l["namespace"].clone(),
                    name: l["pod"].clone(),
                },
                cluster: None,
                title: l["alertname"].clone(),
                message: a["annotations"]["description"].as_str().map(str::to_string),
                started_at: a["startsAt"].as_str().and_then(|s| s.parse().ok()),
                ended_at: None,
                annotations: labels(&a["annotations"]),
                alert: Some(AlertDetail {
                    name: l["alertname"].clone(),
                    fingerprint: a["fingerprint"].as_str().unwrap().to_string(),
                    generator_url: a["generatorURL"].as_str().map(str::to_string),
                    group: AlertGroup {
                        group_key: body["groupKey"].as_str().unwrap().to_string(),
                        receiver: body["receiver"].as_str().unwrap().to_string(),
                        status: status(body["status"].as_str().unwrap()),
                        group_labels: labels(&body["groupLabels"]),
                        common_labels: labels(&body["commonLabels"]),
                        common_annotations: labels(&body["commonAnnotations"]),
                        external_url: body["externalURL"].as_str().map(str::to_string),
                        truncated_alerts: 0,
                    },
                }),
                argocd: None,
                labels: l,
            }
        })
        .collect()
}

/// An alert signal about `subject` with these labels.
pub fn alert(subject: Subject, severity: Option<&str>, extra: &[(&str, &str)]) -> Signal {
    let mut s = alertmanager_signals("crashlooping-group-firing.json").remove(0);
    s.subject = subject;
    s.labels.clear();
    s.labels
        .insert("alertname".into(), "KubePodCrashLooping".into());
    if let Some(sev) = severity {
        s.labels.insert("severity".into(), sev.into());
    }
    for (k, v) in extra {
        s.labels.insert(k.to_string(), v.to_string());
    }
    s
}

/// An Argo CD signal of `kind` for app `namespace/name` deploying to `dest_ns`.
pub fn argocd(kind: SignalKind, app_ns: &str, app: &str, dest_ns: &str) -> Signal {
    Signal {
        source: Source::Argocd,
        kind,
        status: if kind == SignalKind::Recovered {
            SignalStatus::Resolved
        } else {
            SignalStatus::Firing
        },
        subject: Subject::Application {
            namespace: Some(app_ns.into()),
            name: app.into(),
        },
        cluster: None,
        title: format!("{kind}"),
        message: None,
        started_at: None,
        ended_at: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        alert: None,
        argocd: Some(ArgocdDetail {
            app: app.into(),
            app_namespace: Some(app_ns.into()),
            destination_namespace: Some(dest_ns.into()),
            ..ArgocdDetail::default()
        }),
    }
}
