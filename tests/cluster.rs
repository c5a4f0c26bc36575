//! Cluster context logic: the static loader, health rules, owner resolution,
//! annotations, dependencies, evidence, redaction, routing, enrichment, cluster
//! mapping, and the `status` and `doctor` commands on static snapshots.
//!
//! Objects come from tests/fixtures/kubernetes (real objects from Argo CD's
//! health-assessment test data) and examples/cluster.yaml, and variants built here.

#[path = "support/cluster.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};
use support::*;
use triage::cluster::model::Workload;
use triage::cluster::owners::{self, AppLink, PodOwner};
use triage::cluster::{Cluster, Clusters, Limits, Mapping, Snapshot, deps, health, loader};
use triage::config::{ClusterConfig, Config, Overrides, RedactionConfig, RoutingConfig};
use triage::signal::{SignalKind, SignalStatus, Subject, WorkloadKind};
use triage::triage::Assessor;
use triage::triage::context::{
    Context, DependencyResolution, Health, HealthStatus, SnapshotState, Tier,
};
use triage::triage::enrich::{ClusterView, EnrichOptions, Enricher, enrich};
use triage::triage::redact::Redactor;
use triage::triage::route::{Action, Priority, RoutingTable, status_for};

use HealthStatus::{Green, Red, Yellow};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn workload<'a>(s: &'a Snapshot, kind: WorkloadKind, ns: &str, name: &str) -> &'a Workload {
    s.workload(kind, ns, name)
        .unwrap_or_else(|| panic!("{kind} {ns}/{name} not in snapshot"))
}

fn health_of(objects: &[Value], kind: WorkloadKind, ns: &str, name: &str) -> Health {
    let s = snapshot(objects);
    health::assess(workload(&s, kind, ns, name), &s)
}

fn view<'a>(name: &'a str, s: &'a Snapshot, sources: &'a [&'a Snapshot]) -> ClusterView<'a> {
    ClusterView {
        name,
        state: SnapshotState::Static,
        detail: None,
        snapshot: Some(s),
        app_sources: sources,
    }
}

fn enrich_in(signal: &triage::signal::Signal, s: &Snapshot) -> Context {
    let sources = [s];
    enrich(
        signal,
        &view("default", s, &sources),
        &Redactor::builtin(),
        &EnrichOptions::default(),
    )
}

fn pod_subject(ns: &str, name: &str) -> Subject {
    Subject::Pod {
        namespace: ns.into(),
        name: name.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Static loader

#[test]
fn yaml_and_kubectl_json_list_load_the_same_cluster() {
    let (yaml, yaml_report) =
        loader::load_file(&root().join("examples/cluster.yaml"), Limits::default()).unwrap();
    let (json, json_report) =
        loader::load_file(&root().join("examples/cluster.json"), Limits::default()).unwrap();
    assert_eq!(yaml_report, json_report);
    // 23 documents: one Normal event is skipped, everything else is read.
    assert_eq!(yaml_report.objects, 22);
    assert_eq!(yaml_report.skipped, 1);
    assert_eq!(yaml.counts(), json.counts());
    let counts: std::collections::BTreeMap<&str, usize> = yaml
        .counts()
        .into_iter()
        .map(|(k, n)| (k.as_str(), n))
        .collect();
    assert_eq!(counts["Deployment"], 4);
    assert_eq!(counts["StatefulSet"], 1);
    assert_eq!(counts["DaemonSet"], 1);
    assert_eq!(counts["CronJob"], 1);
    assert_eq!(counts["Job"], 1);
    assert_eq!(counts["ReplicaSet"], 1);
    assert_eq!(counts["Pod"], 6);
    assert_eq!(counts["Event"], 6);
    assert_eq!(counts["Application"], 1);
    for w in yaml.workloads() {
        let other = json.workload_ref(&w.reference()).unwrap();
        assert_eq!(w, other);
    }
}

#[test]
fn every_real_fixture_loads_and_kind_lists_and_unknown_kinds_are_handled() {
    let names = [
        "daemonset-ondelete",
        "deployment-degraded",
        "deployment-progressing",
        "pod-crashloop",
        "pod-error",
        "pod-pending",
        "pod-running-not-ready",
        "statefulset",
    ];
    for n in names {
        let text = fixture(&format!("kubernetes/{n}.yaml"));
        let (_, report) = loader::load_str(&text, Limits::default()).unwrap();
        assert_eq!(report.objects, 1, "{n}");
    }
    // A typed list (`kubectl get deployments -o json`) and a kind Triage does not read.
    let list = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "12"},
        "items": [deployment("a", "x", (1, 1, 1, 1, 0))]});
    let (s, report) = loader::load_str(&list.to_string(), Limits::default()).unwrap();
    assert_eq!(report.objects, 1);
    assert!(s.workload(WorkloadKind::Deployment, "a", "x").is_some());
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\n---\n---\n";
    let (_, report) = loader::load_str(yaml, Limits::default()).unwrap();
    assert_eq!((report.objects, report.skipped), (0, 1));
}

#[test]
fn loader_errors_name_the_document_and_the_object() {
    let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {replicas: lots}\n";
    let err = format!(
        "{:#}",
        loader::load_str(bad, Limits::default()).unwrap_err()
    );
    assert!(
        err.contains("YAML document 2") && err.contains("Deployment shop/web"),
        "{err}"
    );

    let err = format!("{:#}", loader::load_str("", Limits::default()).unwrap_err());
    assert!(err.contains("no Kubernetes objects"), "{err}");

    let err = format!(
        "{:#}",
        loader::load_str("{\"items\": 3}", Limits::default()).unwrap_err()
    );
    assert!(err.contains("no kind"), "{err}");

    let list = json!({"kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": 7}}]});
    let err = format!(
        "{:#}",
        loader::load_str(&list.to_string(), Limits::default()).unwrap_err()
    );
    assert!(err.contains("item 1") && err.contains("Pod p"), "{err}");

    let err = format!(
        "{:#}",
        loader::load_file(&root().join("no/such/file.yaml"), Limits::default()).unwrap_err()
    );
    assert!(err.contains("no/such/file.yaml"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Health: Deployments

#[test]
fn deployment_past_its_progress_deadline_is_yellow_since_the_condition() {
    let h = health_of(
        &[object("deployment-degraded")],
        WorkloadKind::Deployment,
        "default",
        "guestbook-ui",
    );
    assert_eq!(h.status, Yellow);
    assert_eq!(
        h.reason,
        "rollout exceeded its progress deadline: ReplicaSet \"guestbook-ui-75dd4d49d5\" has timed out progressing."
    );
    assert_eq!(h.since, Some(ts("2018-07-18T06:29:23Z")));
    assert_eq!(h.replicas.desired, 1);
    assert_eq!(h.replicas.ready, 1);
    assert_eq!(h.replicas.unavailable, 1);
}

#[test]
fn deployment_with_an_old_replica_set_still_running_is_a_rollout_in_progress() {
    let h = health_of(
        &[object("deployment-progressing")],
        WorkloadKind::Deployment,
        "default",
        "guestbook-ui",
    );
    assert_eq!(h.status, Yellow);
    assert_eq!(
        h.reason,
        "rollout in progress: 1 of 1 replicas updated, 2 running, 1 unavailable"
    );
    // No condition decided, and a static snapshot saw no transition.
    assert_eq!(h.since, None);
}

#[test]
fn deployment_rules_each_decide_in_order() {
    let with = |edit: &dyn Fn(&mut Value)| {
        let d = variant("deployment-progressing", |d| edit(d));
        health_of(&[d], WorkloadKind::Deployment, "default", "guestbook-ui")
    };
    let healthy = |d: &mut Value| {
        set(d, "/status/replicas", 1.into());
        set(d, "/status/unavailableReplicas", 0.into());
    };

    // Green: all desired ready, rollout complete.
    let h = with(&healthy);
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Green, "all 1 replicas ready and up to date")
    );

    // Red: no ready replica; since from Available=False.
    let h = with(&|d| {
        set(d, "/spec/replicas", 3.into());
        set(d, "/status/readyReplicas", 0.into());
        set(
            d,
            "/status/conditions/0",
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                   "lastTransitionTime": "2024-01-02T03:04:05Z"}),
        );
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Red, "0 of 3 replicas ready")
    );
    assert_eq!(h.since, Some(ts("2024-01-02T03:04:05Z")));

    // A missing readyReplicas is zero.
    let h = with(&|d| remove(d, "/status/readyReplicas"));
    assert_eq!(h.status, Red);

    // Scaled to zero is green.
    let h = with(&|d| {
        set(d, "/spec/replicas", 0.into());
        set(d, "/status/readyReplicas", 0.into());
    });
    assert_eq!((h.status, h.reason.as_str()), (Green, "scaled to zero"));

    // ReplicaFailure (quota, admission webhook…) is yellow, since the condition.
    let h = with(&|d| {
        healthy(d);
        d["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"guestbook-ui-x\" is forbidden: exceeded quota: compute",
            "lastTransitionTime": "2024-02-02T00:00:00Z"}));
    });
    assert_eq!(h.status, Yellow);
    assert_eq!(
        h.reason,
        "replica failure (FailedCreate): pods \"guestbook-ui-x\" is forbidden: exceeded quota: compute"
    );
    assert_eq!(h.since, Some(ts("2024-02-02T00:00:00Z")));

    // Some but not all ready.
    let h = with(&|d| {
        healthy(d);
        set(d, "/spec/replicas", 3.into());
        set(d, "/status/readyReplicas", 2.into());
        set(d, "/status/updatedReplicas", 3.into());
        set(d, "/status/replicas", 3.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Yellow, "2 of 3 replicas ready")
    );

    // Available=False although the counts look fine (minReadySeconds not yet passed).
    let h = with(&|d| {
        healthy(d);
        set(d, "/status/conditions/0/status", "False".into());
        set(
            d,
            "/status/conditions/0/message",
            "Deployment does not have minimum availability.".into(),
        );
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (
            Yellow,
            "not available: Deployment does not have minimum availability."
        )
    );
    assert_eq!(h.since, Some(ts("2018-07-18T04:48:48Z")));

    // A paused rollout that has not updated every replica.
    let h = with(&|d| {
        healthy(d);
        set(d, "/spec/paused", true.into());
        set(d, "/status/updatedReplicas", 0.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Yellow, "rollout paused with 0 of 1 replicas updated")
    );

    // The controller has not observed the latest spec yet.
    let h = with(&|d| {
        healthy(d);
        set(d, "/metadata/generation", 5.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (
            Yellow,
            "rollout pending: controller has observed generation 4 of 5"
        )
    );

    // Not every replica updated.
    let h = with(&|d| {
        healthy(d);
        set(d, "/status/updatedReplicas", 0.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (
            Yellow,
            "rollout in progress: 0 of 1 replicas updated, 1 running, 0 unavailable"
        )
    );

    // A missing spec.replicas means one.
    let h = with(&|d| {
        healthy(d);
        remove(d, "/spec/replicas");
    });
    assert_eq!(h.replicas.desired, 1);
    assert_eq!(h.status, Green);
}

#[test]
fn a_pod_that_cannot_start_makes_a_green_looking_workload_yellow() {
    let d = variant("deployment-progressing", |d| {
        set(d, "/metadata/namespace", "argocd".into());
        set(d, "/status/replicas", 1.into());
        set(d, "/status/unavailableReplicas", 0.into());
    });
    let rs = replica_set("argocd", "guestbook-ui-75dd4d49d5", "guestbook-ui");
    let p = pod(
        "argocd",
        "guestbook-ui-75dd4d49d5-x1",
        Some(("ReplicaSet", "guestbook-ui-75dd4d49d5")),
    );
    let h = health_of(
        &[d, rs, p],
        WorkloadKind::Deployment,
        "argocd",
        "guestbook-ui",
    );
    assert_eq!(h.status, Yellow);
    assert_eq!(
        h.reason,
        "pod guestbook-ui-75dd4d49d5-x1: container main is in CrashLoopBackOff"
    );
    // The pod's Ready condition says since when.
    assert_eq!(h.since, Some(ts("2018-12-02T09:19:36Z")));
}

// ---------------------------------------------------------------------------------------
// Health: StatefulSets, DaemonSets, Jobs, CronJobs, bare pods

#[test]
fn stateful_set_rules() {
    let h = health_of(
        &[object("statefulset")],
        WorkloadKind::StatefulSet,
        "default",
        "redis-master",
    );
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Green, "all 1 replicas ready")
    );
    let with = |edit: &dyn Fn(&mut Value)| {
        let s = variant("statefulset", |s| edit(s));
        health_of(&[s], WorkloadKind::StatefulSet, "default", "redis-master")
    };
    let h = with(&|s| set(s, "/status/readyReplicas", 0.into()));
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Red, "0 of 1 replicas ready")
    );
    let h = with(&|s| {
        set(s, "/spec/replicas", 3.into());
        set(s, "/status/replicas", 3.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Yellow, "1 of 3 replicas ready")
    );
    let h = with(&|s| set(s, "/spec/replicas", 0.into()));
    assert_eq!((h.status, h.reason.as_str()), (Green, "scaled to zero"));
    let h = with(&|s| set(s, "/metadata/generation", 2.into()));
    assert_eq!(
        (h.status, h.reason.as_str()),
        (
            Yellow,
            "rollout pending: controller has observed generation 1 of 2"
        )
    );
    // RollingUpdate: revisions differ and not every replica is on the new one.
    let rolling = |s: &mut Value| {
        set(s, "/spec/updateStrategy", json!({"type": "RollingUpdate"}));
        set(s, "/status/updateRevision", "redis-master-99".into());
        set(s, "/status/updatedReplicas", 0.into());
    };
    let h = with(&rolling);
    assert_eq!(
        (h.status, h.reason.as_str()),
        (
            Yellow,
            "rollout in progress: 0 of 1 replicas on revision redis-master-99"
        )
    );
    // A partition holds the low ordinals back on purpose: done when the rest updated.
    let h = with(&|s| {
        rolling(s);
        set(s, "/spec/replicas", 3.into());
        set(s, "/status/readyReplicas", 3.into());
        set(
            s,
            "/spec/updateStrategy/rollingUpdate",
            json!({"partition": 2}),
        );
        set(s, "/status/updatedReplicas", 1.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Green, "all 3 replicas ready")
    );
    // OnDelete (the fixture's strategy): a new revision waits for deletions; not a failure.
    let h = with(&|s| {
        set(s, "/status/updateRevision", "redis-master-99".into());
        set(s, "/status/updatedReplicas", 0.into());
    });
    assert_eq!(h.status, Green);
    assert_eq!(
        h.reason,
        "all 1 replicas ready (0 on the new revision; OnDelete waits for pods to be deleted)"
    );
}

#[test]
fn daemon_set_rules() {
    let h = health_of(
        &[object("daemonset-ondelete")],
        WorkloadKind::DaemonSet,
        "kube-system",
        "fluentd-elasticsearch",
    );
    assert_eq!((h.status, h.reason.as_str()), (Green, "all 1 pods ready"));
    let with = |edit: &dyn Fn(&mut Value)| {
        let d = variant("daemonset-ondelete", |d| edit(d));
        health_of(
            &[d],
            WorkloadKind::DaemonSet,
            "kube-system",
            "fluentd-elasticsearch",
        )
    };
    let h = with(&|d| set(d, "/status/numberReady", 0.into()));
    assert_eq!((h.status, h.reason.as_str()), (Red, "0 of 1 pods ready"));
    let h = with(&|d| {
        set(d, "/status/desiredNumberScheduled", 4.into());
        set(d, "/status/numberReady", 3.into());
        set(d, "/status/numberUnavailable", 1.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Yellow, "3 of 4 pods ready, 1 unavailable")
    );
    let h = with(&|d| set(d, "/status/numberUnavailable", 1.into()));
    assert_eq!(h.status, Yellow);
    let h = with(&|d| {
        set(d, "/status/desiredNumberScheduled", 0.into());
        set(d, "/status/numberReady", 0.into());
    });
    assert_eq!((h.status, h.reason.as_str()), (Green, "no node to run on"));
    let h = with(&|d| set(d, "/metadata/generation", 5.into()));
    assert_eq!(
        (h.status, h.reason.as_str()),
        (
            Yellow,
            "rollout pending: controller has observed generation 4 of 5"
        )
    );
    // RollingUpdate counts updated pods; OnDelete (the fixture) does not.
    let h = with(&|d| {
        set(d, "/spec/updateStrategy", json!({"type": "RollingUpdate"}));
        set(d, "/status/updatedNumberScheduled", 0.into());
    });
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Yellow, "rollout in progress: 0 of 1 pods updated")
    );
}

fn job(ns: &str, name: &str, cron: Option<&str>, created: &str, status: Value) -> Value {
    let mut meta = json!({"name": name, "namespace": ns, "creationTimestamp": created});
    if let Some(c) = cron {
        meta["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": c,
            "uid": "00000000-0000-0000-0000-000000000003", "controller": true}]);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
        "spec": {"backoffLimit": 2, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
        "status": status})
}

fn cron_job(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}})
}

fn failed_status(at: &str) -> Value {
    json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit", "lastTransitionTime": at}]})
}

#[test]
fn job_rules() {
    let h = |status: Value| {
        health_of(
            &[job("b", "j", None, "2024-01-01T00:00:00Z", status)],
            WorkloadKind::Job,
            "b",
            "j",
        )
    };
    let failed = h(failed_status("2024-01-01T00:03:00Z"));
    assert_eq!(failed.status, Red);
    assert_eq!(
        failed.reason,
        "job failed (BackoffLimitExceeded): Job has reached the specified backoff limit"
    );
    assert_eq!(failed.since, Some(ts("2024-01-01T00:03:00Z")));
    assert_eq!(failed.replicas.unavailable, 3);
    let done = h(
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:01:00Z"}]}),
    );
    assert_eq!((done.status, done.reason.as_str()), (Green, "completed"));
    assert_eq!(done.since, Some(ts("2024-01-01T00:01:00Z")));
    let retrying = h(json!({"active": 1, "failed": 1}));
    assert_eq!(
        (retrying.status, retrying.reason.as_str()),
        (
            Yellow,
            "1 failed attempt(s) so far, retrying (backoff limit 2)"
        )
    );
    let running = h(json!({"active": 2}));
    assert_eq!(
        (running.status, running.reason.as_str()),
        (Green, "running (2 active)")
    );
    let suspended = health_of(
        &[variant_of(
            job("b", "j", None, "2024-01-01T00:00:00Z", json!({})),
            |j| set(j, "/spec/suspend", true.into()),
        )],
        WorkloadKind::Job,
        "b",
        "j",
    );
    assert_eq!(
        (suspended.status, suspended.reason.as_str()),
        (Green, "suspended")
    );
}

fn variant_of(mut v: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut v);
    v
}

#[test]
fn cron_job_health_follows_its_last_finished_run_unless_the_current_one_is_worse() {
    let cron = cron_job("b", "report");
    // Failed yesterday, a new run is running fine now: still red (no flip to green).
    let objects = [
        cron.clone(),
        job(
            "b",
            "report-1",
            Some("report"),
            "2024-01-01T00:00:00Z",
            failed_status("2024-01-01T00:03:00Z"),
        ),
        job(
            "b",
            "report-2",
            Some("report"),
            "2024-01-02T00:00:00Z",
            json!({"active": 1}),
        ),
    ];
    let h = health_of(&objects, WorkloadKind::CronJob, "b", "report");
    assert_eq!(h.status, Red);
    assert!(
        h.reason.starts_with("last run job/report-1: job failed"),
        "{}",
        h.reason
    );
    assert_eq!(h.since, Some(ts("2024-01-01T00:03:00Z")));

    // Succeeded last time, the running one crash-loops: yellow from its pod.
    let objects = [
        cron.clone(),
        job(
            "b",
            "report-1",
            Some("report"),
            "2024-01-01T00:00:00Z",
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
        ),
        job(
            "b",
            "report-2",
            Some("report"),
            "2024-01-02T00:00:00Z",
            json!({"active": 1}),
        ),
        pod("b", "report-2-abcde", Some(("Job", "report-2"))),
    ];
    let h = health_of(&objects, WorkloadKind::CronJob, "b", "report");
    assert_eq!(h.status, Yellow);
    assert_eq!(
        h.reason,
        "last run job/report-2: pod report-2-abcde: container main is in CrashLoopBackOff"
    );

    // No run yet.
    let h = health_of(
        std::slice::from_ref(&cron),
        WorkloadKind::CronJob,
        "b",
        "report",
    );
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Green, "no run in the snapshot")
    );
    let suspended = variant_of(cron, |c| set(c, "/spec/suspend", true.into()));
    let h = health_of(&[suspended], WorkloadKind::CronJob, "b", "report");
    assert_eq!((h.status, h.reason.as_str()), (Green, "suspended"));
}

#[test]
fn bare_pods_are_their_own_only_replica() {
    let s = snapshot(&[object("pod-crashloop")]);
    let p = s.pod("argocd", "my-pod").unwrap();
    let h = health::pod_health(p);
    assert_eq!(
        (h.status, h.reason.as_str()),
        (Red, "container main is in CrashLoopBackOff")
    );
    assert_eq!(h.since, Some(ts("2018-12-02T09:19:36Z")));
    for (name, pod_name, reason) in [
        ("pod-error", "my-pod", "not ready (phase Running)"),
        (
            "pod-pending",
            "image-pull-backoff",
            "not ready (phase Pending)",
        ),
        (
            "pod-running-not-ready",
            "never-ready",
            "not ready (phase Running)",
        ),
    ] {
        let s = snapshot(&[object(name)]);
        let h = health::pod_health(s.pod("argocd", pod_name).unwrap());
        assert_eq!((h.status, h.reason.as_str()), (Red, reason), "{name}");
    }
    let ok = variant("pod-running-not-ready", |p| {
        set(p, "/status/conditions/1/status", "True".into());
    });
    let s = snapshot(&[ok]);
    assert_eq!(
        health::pod_health(s.pod("argocd", "never-ready").unwrap()).status,
        Green
    );
    let done = variant("pod-error", |p| set(p, "/status/phase", "Succeeded".into()));
    let s = snapshot(&[done]);
    assert_eq!(
        health::pod_health(s.pod("argocd", "my-pod").unwrap()).reason,
        "completed"
    );
}

#[test]
fn live_snapshots_time_status_changes_they_see() {
    let green = Workload::from_deployment(
        serde_json::from_value(deployment("a", "web", (2, 2, 2, 2, 0))).unwrap(),
    );
    let yellow = Workload::from_deployment(
        serde_json::from_value(deployment("a", "web", (2, 2, 1, 2, 1))).unwrap(),
    );
    let mut s = Snapshot::new(Limits::default(), true);
    s.apply_workload(green.clone(), Some(ts("2024-05-01T10:00:00Z")));
    let first = health::assess(workload(&s, WorkloadKind::Deployment, "a", "web"), &s);
    assert_eq!(
        (first.status, first.since),
        (Green, None),
        "first sight: since unknown"
    );
    s.apply_workload(yellow.clone(), Some(ts("2024-05-01T10:05:00Z")));
    let h = health::assess(workload(&s, WorkloadKind::Deployment, "a", "web"), &s);
    assert_eq!(
        (h.status, h.since),
        (Yellow, Some(ts("2024-05-01T10:05:00Z")))
    );
    // The same status again keeps the first time it was seen.
    s.apply_workload(yellow, Some(ts("2024-05-01T10:09:00Z")));
    let h = health::assess(workload(&s, WorkloadKind::Deployment, "a", "web"), &s);
    assert_eq!(h.since, Some(ts("2024-05-01T10:05:00Z")));
    s.apply_workload(green, Some(ts("2024-05-01T10:12:00Z")));
    let h = health::assess(workload(&s, WorkloadKind::Deployment, "a", "web"), &s);
    assert_eq!(
        (h.status, h.since),
        (Green, Some(ts("2024-05-01T10:12:00Z")))
    );
    // A static snapshot never invents a time.
    let st = snapshot(&[deployment("a", "web", (2, 2, 1, 2, 1))]);
    assert_eq!(
        health::assess(workload(&st, WorkloadKind::Deployment, "a", "web"), &st).since,
        None
    );
}

// ---------------------------------------------------------------------------------------
// Owner resolution

#[test]
fn pods_resolve_to_their_workloads_through_every_chain() {
    let s = example();
    let owner = |ns: &str, pod: &str| match owners::workload_of_pod(&s, s.pod(ns, pod).unwrap()) {
        PodOwner::Workload(w) => w.reference().to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(
        owner("pets", "store-front-7d9f-abc"),
        "pets/deployment/store-front"
    );
    assert_eq!(owner("data", "orders-db-1"), "data/statefulset/orders-db");
    // Pod → Job → CronJob.
    assert_eq!(
        owner("reports", "nightly-report-29400000-x7k2p"),
        "reports/cronjob/nightly-report"
    );

    let ds_pod = pod(
        "kube-system",
        "fluentd-elasticsearch-x2x9q",
        Some(("DaemonSet", "fluentd-elasticsearch")),
    );
    let bare = object("pod-crashloop");
    let static_pod = pod("kube-system", "etcd-node-a", Some(("Node", "node-a")));
    let orphan_rs = pod("argocd", "web-5c9-abcde", Some(("ReplicaSet", "web-5c9")));
    let custom = pod("argocd", "rollout-pod", Some(("Rollout", "canary")));
    let s = snapshot(&[
        object("daemonset-ondelete"),
        ds_pod,
        bare,
        static_pod,
        orphan_rs,
        custom,
    ]);
    let resolve = |ns: &str, p: &str| owners::workload_of_pod(&s, s.pod(ns, p).unwrap());
    assert!(
        matches!(resolve("kube-system", "fluentd-elasticsearch-x2x9q"),
        PodOwner::Workload(w) if w.kind == WorkloadKind::DaemonSet)
    );
    assert_eq!(resolve("argocd", "my-pod"), PodOwner::Bare);
    assert_eq!(resolve("kube-system", "etcd-node-a"), PodOwner::Bare);
    assert_eq!(
        resolve("argocd", "web-5c9-abcde"),
        PodOwner::Unresolved(
            "pod web-5c9-abcde's ReplicaSet web-5c9 is not in the snapshot".into()
        )
    );
    assert_eq!(
        resolve("argocd", "rollout-pod"),
        PodOwner::Unresolved(
            "pod rollout-pod is controlled by Rollout/canary, which Triage does not watch".into()
        )
    );
}

#[test]
fn pods_gone_from_the_snapshot_match_their_workload_by_name() {
    let s = example();
    let by_name = |ns: &str, p: &str| {
        owners::workload_by_pod_name(&s, ns, p).map(|w| w.reference().to_string())
    };
    // Through the ReplicaSet (<deployment>-<hash>-<suffix>).
    assert_eq!(
        by_name("pets", "store-front-7d9f-zzzzz").as_deref(),
        Some("pets/deployment/store-front")
    );
    // A ReplicaSet no longer listed: the Deployment by the name minus two segments.
    assert_eq!(
        by_name("pets", "order-service-5b7c9d-q1w2e").as_deref(),
        Some("pets/deployment/order-service")
    );
    assert_eq!(
        by_name("data", "orders-db-7").as_deref(),
        Some("data/statefulset/orders-db")
    );
    assert_eq!(
        by_name("reports", "nightly-report-29400000-abcde").as_deref(),
        Some("reports/cronjob/nightly-report")
    );
    assert_eq!(by_name("pets", "unknown-pod"), None);
    assert_eq!(by_name("pets", "nohyphen"), None);
}

/// The real Application fixture with a workload to find, in a cluster of its own.
fn argocd_app_cluster() -> (Snapshot, triage::signal::Signal) {
    let app: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fixture("argocd/application-real-synced.yaml")).unwrap();
    let app = serde_json::to_value(app).unwrap();
    let d = deployment("test-lla", "test-lla", (2, 2, 0, 2, 2));
    let healthy = deployment("test-lla", "test-lla-worker", (1, 1, 1, 1, 0));
    let s = snapshot(&[app, d, healthy]);
    let signal = argocd(SignalKind::Degraded, "argo-cd", "velero-test", "test-lla");
    (s, signal)
}

#[test]
fn applications_resolve_to_workloads_from_every_source() {
    let (s, signal) = argocd_app_cluster();
    let live = s.app("argo-cd", "velero-test");
    assert!(live.is_some(), "the real Application fixture loads");
    let found = owners::app_workloads(
        &s,
        "velero-test",
        Some("argo-cd"),
        signal.argocd.as_ref(),
        live,
    );
    let refs: Vec<(String, AppLink)> = found
        .iter()
        .map(|(w, l)| (w.reference().to_string(), *l))
        .collect();
    assert_eq!(
        refs,
        vec![(
            "test-lla/deployment/test-lla".to_string(),
            AppLink::SyncResult
        )]
    );

    // Tracking id (Argo CD 3.x), `<ns>_<app>` form for apps outside Argo CD's namespace,
    // and the instance label of older installs.
    let mut tracked = deployment("shop", "web", (1, 1, 1, 1, 0));
    set(
        &mut tracked,
        "/metadata/annotations",
        json!({"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}),
    );
    let mut other_ns = deployment("shop", "api", (1, 1, 1, 1, 0));
    set(
        &mut other_ns,
        "/metadata/annotations",
        json!({"argocd.argoproj.io/tracking-id": "team-a_shop:apps/Deployment:shop/api"}),
    );
    let mut labelled = deployment("shop", "worker", (1, 1, 0, 1, 1));
    set(
        &mut labelled,
        "/metadata/labels",
        json!({"app.kubernetes.io/instance": "shop"}),
    );
    let s = snapshot(&[tracked, other_ns, labelled]);
    let mut names: Vec<String> = owners::app_workloads(&s, "shop", Some("argocd"), None, None)
        .iter()
        .map(|(w, l)| format!("{} {l:?}", w.reference()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "shop/deployment/web Tracking",
            "shop/deployment/worker Tracking"
        ]
    );
    let names: Vec<String> = owners::app_workloads(&s, "shop", Some("team-a"), None, None)
        .iter()
        .map(|(w, _)| w.reference().to_string())
        .collect();
    assert!(
        names.contains(&"shop/deployment/api".to_string()),
        "{names:?}"
    );
}

#[test]
fn an_application_signal_picks_the_failing_workload_and_lists_the_others() {
    let (s, mut signal) = argocd_app_cluster();
    // The notification's own syncResult names a healthy worker; the live app names the
    // failing Deployment: the failing one is chosen.
    signal
        .argocd
        .as_mut()
        .unwrap()
        .sync_result
        .push(triage::signal::SyncResource {
            kind: "Deployment".into(),
            name: "test-lla-worker".into(),
            namespace: Some("test-lla".into()),
            status: Some("Synced".into()),
            ..Default::default()
        });
    let ctx = enrich_in(&signal, &s);
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "test-lla/deployment/test-lla"
    );
    assert_eq!(ctx.health.as_ref().unwrap().status, Red);
    assert!(
        ctx.notes.iter().any(|n| n.contains("manages 2 workloads")
            && n.contains("others: test-lla/deployment/test-lla-worker (green)")),
        "{:?}",
        ctx.notes
    );
    // The live Application's state is in the context, and the difference is noted.
    let app = ctx.app.as_ref().unwrap();
    assert_eq!(app.health.as_deref(), Some("Healthy"));
    assert_eq!(app.operation_phase.as_deref(), Some("Succeeded"));

    // A resource that failed to sync wins over worse health elsewhere.
    signal.argocd.as_mut().unwrap().sync_result[0].status = Some("SyncFailed".into());
    let ctx = enrich_in(&signal, &s);
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "test-lla/deployment/test-lla-worker"
    );
}

// ---------------------------------------------------------------------------------------
// Annotations

#[test]
fn annotations_template_wins_blank_values_are_unset() {
    let s = example();
    let w = workload(&s, WorkloadKind::Deployment, "pets", "store-front");
    let a = triage::cluster::annotations::resolve(w).annotations;
    // The Deployment says standard, its pod template critical: the template wins.
    assert_eq!(a.tier, Some(Tier::Critical));
    assert_eq!(a.owner.as_deref(), Some("team-storefront"));
    assert_eq!(a.depends_on, ["orders-db", "order-service"]);

    let mut d = deployment("a", "web", (1, 1, 1, 1, 0));
    annotate(
        &mut d,
        "/metadata/annotations",
        &[
            ("owner", "team-web"),
            ("runbook", "https://r"),
            ("tier", "Best-Effort"),
        ],
    );
    annotate(
        &mut d,
        "/spec/template/metadata/annotations",
        &[("owner", "  "), ("runbook", ""), ("depends-on", "a, ,b,a,")],
    );
    let s = snapshot(&[d]);
    let r =
        triage::cluster::annotations::resolve(workload(&s, WorkloadKind::Deployment, "a", "web"));
    assert_eq!(
        r.annotations.owner.as_deref(),
        Some("team-web"),
        "a blank template value does not hide the workload's"
    );
    assert_eq!(r.annotations.runbook.as_deref(), Some("https://r"));
    assert_eq!(r.annotations.tier, Some(Tier::BestEffort));
    assert_eq!(r.annotations.depends_on, ["a", "b"]);
    assert_eq!(r.annotations.oncall, None);
    assert!(!r.ignored);

    let mut d = deployment("a", "web", (1, 1, 1, 1, 0));
    annotate(
        &mut d,
        "/metadata/annotations",
        &[("tier", "gold"), ("ignore", "yes"), ("tire", "critical")],
    );
    let s = snapshot(&[d]);
    let r =
        triage::cluster::annotations::resolve(workload(&s, WorkloadKind::Deployment, "a", "web"));
    assert_eq!(
        (r.annotations.tier, r.annotations.tier_raw.as_deref()),
        (None, Some("gold"))
    );
    assert!(!r.ignored);
    assert_eq!(r.ignore_unrecognised.as_deref(), Some("yes"));
    assert_eq!(r.unknown_keys, ["tire"]);
}

#[test]
fn ignored_workloads_are_invisible_everywhere() {
    let s = example();
    let canary = workload(&s, WorkloadKind::Deployment, "pets", "store-front-canary");
    assert!(triage::cluster::annotations::is_ignored(canary));
    assert!(!owners::is_visible(&s, canary));
    // A dependency on it does not resolve.
    let d = deps::resolve_one(&s, "pets", "store-front-canary");
    assert_eq!(d.resolution, DependencyResolution::Missing);
    // A signal about it: ignored, nothing else, and routed to observe.
    let signal = alert(
        Subject::Workload {
            kind: WorkloadKind::Deployment,
            namespace: "pets".into(),
            name: "store-front-canary".into(),
        },
        Some("critical"),
        &[],
    );
    let ctx = enrich_in(&signal, &s);
    assert!(ctx.ignored);
    assert_eq!(ctx.health, None);
    assert_eq!(ctx.annotations.owner, None);
    assert!(ctx.evidence.pods.is_empty());
    let route = triage::triage::route::route(&RoutingTable::default(), &signal, &ctx);
    assert_eq!((route.action, route.priority), (Action::Observe, None));
    assert!(route.reason.contains("ignored"), "{}", route.reason);
    // Case and blanks do not matter for "true"; the template can ignore too.
    let mut d = deployment("a", "web", (1, 1, 1, 1, 0));
    annotate(
        &mut d,
        "/spec/template/metadata/annotations",
        &[("ignore", " TRUE ")],
    );
    let s = snapshot(&[d]);
    assert!(triage::cluster::annotations::is_ignored(workload(
        &s,
        WorkloadKind::Deployment,
        "a",
        "web"
    )));
}

// ---------------------------------------------------------------------------------------
// Dependencies

#[test]
fn dependencies_resolve_same_namespace_then_qualified_then_unique() {
    let objects = [
        stateful_set("shop", "db"),
        stateful_set("billing", "db"),
        stateful_set("payments", "ledger"),
        deployment("x", "cache", (1, 1, 1, 1, 0)),
        deployment("y", "cache", (1, 1, 0, 1, 1)),
        deployment("shop", "queue", (1, 1, 1, 1, 0)),
        stateful_set("shop", "queue"),
    ];
    let s = snapshot(&objects);
    let r = |ns: &str, name: &str| deps::resolve_one(&s, ns, name);

    let same_ns = r("shop", "db");
    assert_eq!(same_ns.resolution, DependencyResolution::Resolved);
    assert_eq!(same_ns.workload.unwrap().to_string(), "shop/statefulset/db");
    assert_eq!(same_ns.health, Some(Green));

    let qualified = r("shop", "billing/db");
    assert_eq!(
        qualified.workload.unwrap().to_string(),
        "billing/statefulset/db"
    );

    let unique = r("shop", "ledger");
    assert_eq!(
        unique.workload.unwrap().to_string(),
        "payments/statefulset/ledger"
    );

    let ambiguous = r("shop", "cache");
    assert_eq!(
        ambiguous.resolution,
        DependencyResolution::Ambiguous(vec![
            "x/deployment/cache".into(),
            "y/deployment/cache".into()
        ])
    );
    assert_eq!(ambiguous.workload, None);
    assert!(ambiguous.reason.unwrap().contains("write namespace/name"));

    // Two kinds of one name in the same namespace.
    let both = r("shop", "queue");
    assert!(matches!(both.resolution, DependencyResolution::Ambiguous(ref c) if c.len() == 2));

    let missing = r("shop", "nope");
    assert_eq!(missing.resolution, DependencyResolution::Missing);
    assert_eq!(
        missing.reason.as_deref(),
        Some("no workload named \"nope\" in namespace shop or elsewhere in the cluster")
    );
    let missing_q = r("shop", "billing/nope");
    assert_eq!(
        missing_q.reason.as_deref(),
        Some("no workload named \"nope\" in namespace billing")
    );
}

#[test]
fn a_red_upstream_is_the_likely_cause_before_a_yellow_one() {
    let objects = [
        deployment("a", "red-db", (1, 1, 0, 1, 1)),
        deployment("a", "slow-cache", (2, 2, 1, 2, 1)),
        deployment("a", "fine", (1, 1, 1, 1, 0)),
    ];
    let s = snapshot(&objects);
    let list = deps::resolve(
        &s,
        "a",
        &["fine".into(), "slow-cache".into(), "red-db".into()],
    );
    assert_eq!(
        deps::likely_cause(&list).as_deref(),
        Some("upstream a/deployment/red-db is red: 0 of 1 replicas ready")
    );
    let list = deps::resolve(&s, "a", &["fine".into(), "slow-cache".into()]);
    assert_eq!(
        deps::likely_cause(&list).as_deref(),
        Some(
            "upstream a/deployment/slow-cache is degraded (yellow): 1 of 2 replicas ready; it may be related"
        )
    );
    let list = deps::resolve(&s, "a", &["fine".into(), "gone".into()]);
    assert_eq!(deps::likely_cause(&list), None);
}

// ---------------------------------------------------------------------------------------
// Evidence

#[test]
fn evidence_of_the_crash_looping_service() {
    let s = example();
    let signal = alertmanager_signals("crashlooping-group-firing.json").remove(1);
    let ctx = enrich_in(&signal, &s);
    let e = &ctx.evidence;
    // The pod the alert names first, then the other troubled one.
    let names: Vec<&str> = e.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["store-front-7d9f-def", "store-front-7d9f-abc"]);
    let abc = &e.pods[1];
    assert_eq!(abc.node.as_deref(), Some("node-a"));
    assert_eq!(abc.phase.as_deref(), Some("Running"));
    assert!(!abc.ready);
    let c = &abc.containers[0];
    assert_eq!(c.name, "store-front");
    assert_eq!(c.restart_count, 14);
    assert_eq!(c.waiting_reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(c.last_termination_reason.as_deref(), Some("OOMKilled"));
    assert_eq!(c.last_exit_code, Some(137));
    assert_eq!(c.last_finished_at, Some(ts("2026-11-23T16:08:51Z")));

    // Events grouped by reason: counts summed, most recent message, objects by recency.
    assert_eq!(e.events.len(), 2, "{:?}", e.events);
    let backoff = e.events.iter().find(|g| g.reason == "BackOff").unwrap();
    assert_eq!(backoff.count, 61 + 54);
    assert_eq!(backoff.last_seen, Some(ts("2026-11-23T16:09:12Z")));
    assert_eq!(
        backoff.objects,
        ["Pod/store-front-7d9f-abc", "Pod/store-front-7d9f-def"]
    );
    assert!(
        backoff
            .message
            .as_deref()
            .unwrap()
            .contains("store-front-7d9f-abc")
    );
    let unhealthy = e.events.iter().find(|g| g.reason == "Unhealthy").unwrap();
    assert_eq!(unhealthy.count, 9);
    // The probe URL's token is redacted, the rest stays readable.
    assert_eq!(
        unhealthy.message.as_deref(),
        Some(
            "Readiness probe failed: Get \"http://10.244.1.23:8080/healthz?token=[REDACTED]\": dial tcp 10.244.1.23:8080: connect: connection refused"
        )
    );
    // Conditions that are not as they should be.
    let kinds: Vec<(&str, &str)> = e
        .conditions
        .iter()
        .map(|c| (c.kind.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(kinds, [("Available", "False"), ("Progressing", "False")]);
    assert_eq!(
        e.conditions[1].reason.as_deref(),
        Some("ProgressDeadlineExceeded")
    );
}

#[test]
fn warning_events_are_bounded_per_object_and_aged_out() {
    let mut objects = vec![object("pod-crashloop")];
    for i in 0..15 {
        objects.push(
            json!({"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "BackOff",
            "metadata": {"name": format!("my-pod.{i:02}"), "namespace": "argocd"},
            "involvedObject": {"kind": "Pod", "name": "my-pod", "namespace": "argocd"},
            "count": 1, "lastTimestamp": format!("2024-01-01T00:{i:02}:00Z")}),
        );
    }
    objects.push(
        json!({"apiVersion": "v1", "kind": "Event", "type": "Normal", "reason": "Pulled",
        "metadata": {"name": "my-pod.n", "namespace": "argocd"},
        "involvedObject": {"kind": "Pod", "name": "my-pod", "namespace": "argocd"}}),
    );
    let list = json!({"kind": "List", "items": objects});
    let (mut s, report) = loader::load_str(
        &list.to_string(),
        Limits {
            events_per_object: 4,
        },
    )
    .unwrap();
    assert_eq!(report.skipped, 1, "Normal events are not kept");
    let kept: Vec<&str> = s
        .events_about("argocd", "Pod", "my-pod")
        .iter()
        .map(|e| &*e.name)
        .collect();
    assert_eq!(kept, ["my-pod.14", "my-pod.13", "my-pod.12", "my-pod.11"]);
    let dropped = s.expire_events(ts("2024-01-01T00:13:00Z"));
    assert_eq!(dropped, 2);
    let kept: Vec<&str> = s
        .events_about("argocd", "Pod", "my-pod")
        .iter()
        .map(|e| &*e.name)
        .collect();
    assert_eq!(kept, ["my-pod.14", "my-pod.13"]);
    s.delete_event("argocd", "Pod", "my-pod", "my-pod.14");
    assert_eq!(s.events_about("argocd", "Pod", "my-pod").len(), 1);
}

// ---------------------------------------------------------------------------------------
// Redaction

#[test]
fn redaction_of_every_builtin_pattern_keeps_text_readable() {
    let r = Redactor::builtin();
    let cases = [
        (
            "clone https://deploy:hunter2@git.example.com/org/repo.git failed",
            "clone https://[REDACTED]@git.example.com/org/repo.git failed",
        ),
        (
            "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 expired",
            "token ghp_[REDACTED] expired",
        ),
        (
            "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz here",
            "pat github_pat_[REDACTED] here",
        ),
        (
            "gitlab glpat-aB3dE6gH9jK2mN5pQ8sT used",
            "gitlab glpat-[REDACTED] used",
        ),
        (
            "slack xoxb-123456789012-abcdefghij ok",
            "slack xoxb-[REDACTED] ok",
        ),
        (
            "aws AKIAIOSFODNN7EXAMPLE in env",
            "aws AKIA[REDACTED] in env",
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
            "jwt [REDACTED] end",
        ),
        (
            "GET /api?user=x&api_key=s3cr3t&page=2",
            "GET /api?user=x&api_key=[REDACTED]&page=2",
        ),
        (
            "GET /hook?token=abc123#frag",
            "GET /hook?token=[REDACTED]#frag",
        ),
        (
            "Authorization: Bearer abcdef0123456789",
            "Authorization: Bearer [REDACTED]",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(r.redact(input), want, "{input}");
    }
    // Nothing to hide: borrowed, unchanged.
    let plain = "Back-off restarting failed container store-front in pod store-front-7d9f-abc_pets";
    assert!(matches!(r.redact(plain), std::borrow::Cow::Borrowed(_)));
    assert_eq!(
        r.redact("https://github.com/example/pets-gitops"),
        "https://github.com/example/pets-gitops"
    );
}

#[test]
fn configurable_redaction_patterns() {
    let r = Redactor::from_config(&RedactionConfig {
        patterns: vec![
            r"internal-[0-9]{6}".into(),
            r"password is (?P<secret>\S+)".into(),
        ],
    })
    .unwrap();
    assert_eq!(
        r.redact("ticket internal-123456 open"),
        "ticket [REDACTED] open"
    );
    assert_eq!(
        r.redact("the password is opensesame, ok"),
        "the password is [REDACTED] ok"
    );
    let err = Redactor::from_config(&RedactionConfig {
        patterns: vec!["ok".into(), "(unclosed".into()],
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("redaction.patterns[1]"), "{err}");
    let err = Redactor::from_config(&RedactionConfig {
        patterns: vec!["x*".into()],
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("redaction.patterns[0]") && err.contains("empty string"),
        "{err}"
    );
}

#[test]
fn annotation_values_are_redacted_in_contexts() {
    let mut d = deployment("a", "web", (1, 1, 0, 1, 1));
    annotate(
        &mut d,
        "/metadata/annotations",
        &[
            (
                "gitops-repo",
                "https://bot:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/a/b",
            ),
            ("dashboard", "https://grafana.example.com/d/x?api_key=abc"),
        ],
    );
    let s = snapshot(&[d]);
    let signal = alert(
        Subject::Workload {
            kind: WorkloadKind::Deployment,
            namespace: "a".into(),
            name: "web".into(),
        },
        Some("warning"),
        &[],
    );
    let ctx = enrich_in(&signal, &s);
    assert_eq!(
        ctx.annotations.gitops_repo.as_deref(),
        Some("https://[REDACTED]@github.com/a/b")
    );
    assert_eq!(
        ctx.annotations.dashboard.as_deref(),
        Some("https://grafana.example.com/d/x?api_key=[REDACTED]")
    );
}

// ---------------------------------------------------------------------------------------
// Routing

#[test]
fn every_default_routing_cell() {
    let t = RoutingTable::default();
    let cases = [
        (
            Some(Tier::Critical),
            Red,
            Action::Escalate,
            Some(Priority::P0),
        ),
        (
            Some(Tier::Critical),
            Yellow,
            Action::Warn,
            Some(Priority::P1),
        ),
        (
            Some(Tier::Standard),
            Red,
            Action::Inform,
            Some(Priority::P1),
        ),
        (
            Some(Tier::Standard),
            Yellow,
            Action::Log,
            Some(Priority::P2),
        ),
        (None, Red, Action::Inform, Some(Priority::P1)),
        (None, Yellow, Action::Log, Some(Priority::P2)),
        (Some(Tier::BestEffort), Red, Action::Log, Some(Priority::P2)),
        (Some(Tier::BestEffort), Yellow, Action::Observe, None),
        (Some(Tier::Critical), Green, Action::Observe, None),
        (Some(Tier::Standard), Green, Action::Observe, None),
        (None, Green, Action::Observe, None),
        (Some(Tier::BestEffort), Green, Action::Observe, None),
    ];
    for (tier, status, action, priority) in cases {
        let r = t.decide(tier, status, "why");
        assert_eq!(
            (r.action, r.priority, r.status),
            (action, priority, status),
            "{tier:?} {status:?}"
        );
        assert_eq!(r.tier, tier.unwrap_or(Tier::Standard));
        assert_eq!(r.wants_work_order(), action != Action::Observe);
    }
    let r = t.decide(Some(Tier::Critical), Red, "0 of 3 replicas ready");
    assert_eq!(
        r.reason,
        "critical tier, red (0 of 3 replicas ready) → escalate P0"
    );
    let r = t.decide(None, Yellow, "1 of 2 ready");
    assert_eq!(
        r.reason,
        "no tier (read as standard), yellow (1 of 2 ready) → log P2"
    );
    let r = t.decide(Some(Tier::Critical), Green, "the signal is resolved");
    assert!(r.reason.contains("→ observe (recovered"), "{}", r.reason);
}

#[test]
fn routing_overrides_and_their_errors() {
    let table = |pairs: &[(&str, &str)]| {
        RoutingTable::from_config(&RoutingConfig {
            table: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    };
    let t = table(&[
        ("critical.red", "escalate/P0"),
        ("critical.yellow", "escalate/P1"),
        ("standard.red", "warn/P1"),
        ("standard.yellow", "observe"),
        ("best-effort.red", "inform/P3"),
        ("best-effort.yellow", "log/P3"),
    ])
    .unwrap();
    let cell = |tier, status| {
        let r = t.decide(Some(tier), status, "");
        (r.action, r.priority)
    };
    assert_eq!(
        cell(Tier::Critical, Yellow),
        (Action::Escalate, Some(Priority::P1))
    );
    assert_eq!(
        cell(Tier::Standard, Red),
        (Action::Warn, Some(Priority::P1))
    );
    assert_eq!(cell(Tier::Standard, Yellow), (Action::Observe, None));
    assert_eq!(
        cell(Tier::BestEffort, Red),
        (Action::Inform, Some(Priority::P3))
    );
    assert_eq!(
        cell(Tier::BestEffort, Yellow),
        (Action::Log, Some(Priority::P3))
    );
    let r = t.decide(Some(Tier::BestEffort), Yellow, "x");
    assert!(
        r.reason.ends_with("[routing.table.\"best-effort.yellow\"]"),
        "{}",
        r.reason
    );
    // Unmentioned tiers keep defaults; green is never overridden.
    let t = table(&[("critical.red", "warn/P2")]).unwrap();
    assert_eq!(
        t.decide(Some(Tier::Standard), Red, "").action,
        Action::Inform
    );

    for (key, value, expect) in [
        ("critical", "warn/P1", "<tier>.<status>"),
        ("gold.red", "warn/P1", "unknown tier"),
        ("critical.orange", "warn/P1", "unknown status"),
        ("critical.green", "warn/P1", "green cannot be routed"),
        ("critical.red", "page/P0", "unknown action"),
        ("critical.red", "warn/P9", "unknown priority"),
        ("critical.red", "warn", "needs a priority"),
        ("best-effort.yellow", "observe/P2", "takes no priority"),
    ] {
        let err = table(&[(key, value)]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("routing.table.\"{key}\"")) && err.contains(expect),
            "{key}={value}: {err}"
        );
    }
    // The same validation runs when the config loads.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "[routing.table]\n\"critical.red\" = \"page\"\n").unwrap();
    let err = format!(
        "{:#}",
        Config::load_from(Some(&file), Vec::new(), &Overrides::default()).unwrap_err()
    );
    assert!(err.contains("routing.table.\"critical.red\""), "{err}");
}

fn ctx_with(health: Option<HealthStatus>, app: Option<(&str, &str, &str)>) -> Context {
    let mut ctx = Context::unknown(triage::triage::context::ClusterInfo {
        name: "c".into(),
        state: SnapshotState::Static,
    });
    ctx.health = health.map(|status| Health {
        status,
        reason: format!("health {}", status.as_str()),
        since: None,
        replicas: Default::default(),
    });
    ctx.app = app.map(|(h, sync, phase)| triage::triage::context::AppRef {
        namespace: None,
        name: "app".into(),
        health: Some(h.to_string()),
        sync: Some(sync.to_string()),
        operation_phase: Some(phase.to_string()),
    });
    ctx
}

#[test]
fn the_status_a_signal_routes_with() {
    let sync_failed = argocd(SignalKind::SyncFailed, "argocd", "app", "ns");
    let degraded = argocd(SignalKind::Degraded, "argocd", "app", "ns");
    let unknown = argocd(SignalKind::SyncUnknown, "argocd", "app", "ns");
    let status = |s: &triage::signal::Signal, c: &Context| status_for(s, c).0;

    // A failed sync is red while the app's operation is still failed, or unknown.
    assert_eq!(status(&sync_failed, &ctx_with(Some(Green), None)), Red);
    assert_eq!(
        status(
            &sync_failed,
            &ctx_with(Some(Green), Some(("Healthy", "OutOfSync", "Failed")))
        ),
        Red
    );
    assert_eq!(
        status(
            &sync_failed,
            &ctx_with(None, Some(("Healthy", "OutOfSync", "Running")))
        ),
        Yellow
    );
    // Retried successfully since: the workload decides (debounce sees the recovery).
    assert_eq!(
        status(
            &sync_failed,
            &ctx_with(Some(Green), Some(("Healthy", "Synced", "Succeeded")))
        ),
        Green
    );
    assert_eq!(
        status(
            &sync_failed,
            &ctx_with(Some(Yellow), Some(("Healthy", "Synced", "Succeeded")))
        ),
        Yellow
    );

    assert_eq!(status(&degraded, &ctx_with(None, None)), Yellow);
    assert_eq!(
        status(
            &degraded,
            &ctx_with(Some(Red), Some(("Degraded", "Synced", "Succeeded")))
        ),
        Red
    );
    assert_eq!(
        status(
            &degraded,
            &ctx_with(None, Some(("Missing", "OutOfSync", "Succeeded")))
        ),
        Red
    );
    assert_eq!(
        status(
            &degraded,
            &ctx_with(Some(Green), Some(("Healthy", "Synced", "Succeeded")))
        ),
        Green
    );

    assert_eq!(status(&unknown, &ctx_with(Some(Green), None)), Yellow);
    assert_eq!(
        status(
            &unknown,
            &ctx_with(Some(Green), Some(("Healthy", "Synced", "Succeeded")))
        ),
        Green
    );

    let pod = pod_subject("a", "p");
    for (severity, no_health, green_health, red_health) in [
        (Some("critical"), Red, Red, Red),
        (Some("warning"), Yellow, Yellow, Red),
        (None, Yellow, Yellow, Red),
        (Some("info"), Green, Green, Red),
    ] {
        let a = alert(pod.clone(), severity, &[]);
        assert_eq!(status(&a, &ctx_with(None, None)), no_health, "{severity:?}");
        assert_eq!(
            status(&a, &ctx_with(Some(Green), None)),
            green_health,
            "{severity:?}"
        );
        assert_eq!(
            status(&a, &ctx_with(Some(Red), None)),
            red_health,
            "{severity:?}"
        );
    }

    let mut resolved = alert(pod, Some("critical"), &[]);
    resolved.status = SignalStatus::Resolved;
    assert_eq!(
        status_for(&resolved, &ctx_with(Some(Red), None)),
        (Green, "the signal is resolved".into())
    );
    let recovered = argocd(SignalKind::Recovered, "argocd", "app", "ns");
    assert_eq!(status(&recovered, &ctx_with(Some(Red), None)), Green);
    let info = argocd(SignalKind::Informational, "argocd", "app", "ns");
    assert_eq!(status(&info, &ctx_with(None, None)), Green);

    let (st, why) = status_for(&sync_failed, &ctx_with(Some(Yellow), None));
    assert_eq!(st, Red);
    assert_eq!(why, "sync failed; the workload is yellow: health yellow");
}

// ---------------------------------------------------------------------------------------
// Enrichment end to end, on the real Alertmanager capture and the example cluster

#[test]
fn the_real_alertmanager_capture_enriches_fully() {
    let s = example();
    let signals = alertmanager_signals("crashlooping-group-firing.json");
    assert_eq!(signals.len(), 2);
    let table = RoutingTable::default();
    for signal in &signals {
        let ctx = enrich_in(signal, &s);
        assert_eq!(ctx.cluster.state, SnapshotState::Static);
        assert_eq!(
            ctx.workload.as_ref().unwrap().to_string(),
            "pets/deployment/store-front"
        );
        assert!(!ctx.ignored);
        let a = &ctx.annotations;
        assert_eq!(a.owner.as_deref(), Some("team-storefront"));
        assert_eq!(a.oncall.as_deref(), Some("@storefront-oncall"));
        assert_eq!(a.tier, Some(Tier::Critical));
        assert_eq!(
            a.gitops_repo.as_deref(),
            Some("https://github.com/example/pets-gitops")
        );
        assert_eq!(a.gitops_path.as_deref(), Some("apps/store-front"));
        let h = ctx.health.as_ref().unwrap();
        assert_eq!(
            (h.status, h.reason.as_str()),
            (Red, "0 of 2 replicas ready")
        );
        assert_eq!(h.since, Some(ts("2026-11-23T15:58:02Z")));
        assert_eq!(ctx.evidence.pods[0].name, signal.labels["pod"]);
        let deps: Vec<(String, Option<HealthStatus>)> = ctx
            .dependencies
            .iter()
            .map(|d| (d.workload.as_ref().unwrap().to_string(), d.health))
            .collect();
        assert_eq!(
            deps,
            [
                ("data/statefulset/orders-db".to_string(), Some(Yellow)),
                ("pets/deployment/order-service".to_string(), Some(Green)),
            ]
        );
        assert_eq!(
            ctx.likely_cause.as_deref(),
            Some(
                "upstream data/statefulset/orders-db is degraded (yellow): 1 of 3 replicas ready; it may be related"
            )
        );
        // The Deployment's tracking id leads to the Argo CD application.
        let app = ctx.app.as_ref().unwrap();
        assert_eq!(
            (app.namespace.as_deref(), app.name.as_str()),
            (Some("argocd"), "store-front")
        );
        assert_eq!(app.health.as_deref(), Some("Degraded"));
        assert!(ctx.notes.is_empty(), "{:?}", ctx.notes);
        let route = table.decide(ctx.annotations.tier, h.status, &h.reason);
        let via_signal = triage::triage::route::route(&table, signal, &ctx);
        assert_eq!(
            (via_signal.action, via_signal.priority),
            (Action::Escalate, Some(Priority::P0))
        );
        assert_eq!(route.action, via_signal.action);
        // Every optional field is a key in the JSON, null when unset.
        let v = serde_json::to_value(&ctx).unwrap();
        assert!(
            v["annotations"]
                .as_object()
                .unwrap()
                .contains_key("dashboard")
        );
        assert!(v.as_object().unwrap().contains_key("likely_cause"));
    }
    // The resolved capture routes to observe (green).
    for signal in alertmanager_signals("crashlooping-group-resolved.json") {
        let ctx = enrich_in(&signal, &s);
        let r = triage::triage::route::route(&table, &signal, &ctx);
        assert_eq!((r.status, r.action), (Green, Action::Observe));
    }
}

#[test]
fn enrichment_says_what_it_could_not_find() {
    let s = example();
    let ctx = enrich_in(
        &alert(pod_subject("pets", "ghost"), Some("warning"), &[]),
        &s,
    );
    assert_eq!(ctx.workload, None);
    assert_eq!(
        ctx.notes,
        ["pod pets/ghost is not in the snapshot and no workload matches its name"]
    );
    let ctx = enrich_in(
        &alert(
            Subject::Workload {
                kind: WorkloadKind::Deployment,
                namespace: "pets".into(),
                name: "gone".into(),
            },
            None,
            &[],
        ),
        &s,
    );
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "pets/deployment/gone"
    );
    assert_eq!(ctx.health, None);
    assert_eq!(
        ctx.notes,
        ["pets/deployment/gone is not in the cluster snapshot"]
    );
    // Labels guide an alert whose subject is only a namespace.
    let ctx = enrich_in(
        &alert(
            Subject::Other {
                namespace: Some("data".into()),
            },
            Some("warning"),
            &[("statefulset", "orders-db")],
        ),
        &s,
    );
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "data/statefulset/orders-db"
    );
    let ctx = enrich_in(&alert(Subject::Other { namespace: None }, None, &[]), &s);
    assert_eq!(ctx.workload, None);
    assert_eq!(ctx.notes.len(), 1);
    // A Job subject is reported as its CronJob.
    let ctx = enrich_in(
        &alert(
            Subject::Workload {
                kind: WorkloadKind::Job,
                namespace: "reports".into(),
                name: "nightly-report-29400000".into(),
            },
            None,
            &[],
        ),
        &s,
    );
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "reports/cronjob/nightly-report"
    );
    assert_eq!(ctx.annotations.tier, Some(Tier::BestEffort));
    // A bare pod is its own subject.
    let bare = snapshot(&[object("pod-crashloop")]);
    let ctx = enrich_in(&alert(pod_subject("argocd", "my-pod"), None, &[]), &bare);
    assert_eq!(ctx.workload, None);
    assert_eq!(ctx.health.as_ref().unwrap().status, Red);
    assert_eq!(
        ctx.evidence.pods[0].containers[0].waiting_reason.as_deref(),
        Some("CrashLoopBackOff")
    );
    assert_eq!(
        ctx.notes,
        ["pod argocd/my-pod has no controller (bare pod)"]
    );
    // Syncing and unreachable clusters say so and still answer.
    let sources = [&s];
    for (state, word) in [
        (SnapshotState::Syncing, "still syncing"),
        (SnapshotState::Unreachable, "unreachable"),
    ] {
        let v = ClusterView {
            name: "prod",
            state,
            detail: Some("pods pending"),
            snapshot: Some(&s),
            app_sources: &sources,
        };
        let signal = alertmanager_signals("crashlooping-group-firing.json").remove(0);
        let ctx = enrich(&signal, &v, &Redactor::builtin(), &EnrichOptions::default());
        assert_eq!(ctx.cluster.state, state);
        assert!(
            ctx.notes[0].contains(word) && ctx.notes[0].contains("pods pending"),
            "{:?}",
            ctx.notes
        );
        assert!(ctx.health.is_some());
    }
}

#[test]
fn a_sync_failure_that_was_retried_successfully_no_longer_asks_for_a_work_order() {
    let s = example();
    // The notification said Failed; the live Application (in the snapshot) shows the
    // last operation Succeeded, and the workload health decides: still red here.
    let mut signal = argocd(SignalKind::SyncFailed, "argocd", "store-front", "pets");
    signal.argocd.as_mut().unwrap().operation_phase = Some("Failed".into());
    let ctx = enrich_in(&signal, &s);
    assert_eq!(
        ctx.app.as_ref().unwrap().operation_phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "pets/deployment/store-front"
    );
    let r = triage::triage::route::route(&RoutingTable::default(), &signal, &ctx);
    assert_eq!((r.status, r.action), (Red, Action::Escalate));
    // With a healthy Deployment the same signal routes to observe.
    let mut objects = example_objects();
    for o in &mut objects {
        if o["kind"] == "Deployment" && o["metadata"]["name"] == "store-front" {
            set(o, "/status/readyReplicas", 2.into());
            set(o, "/status/availableReplicas", 2.into());
            set(o, "/status/unavailableReplicas", 0.into());
            set(o, "/status/conditions", json!([]));
        }
        if o["kind"] == "Pod"
            && o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("store-front-7d9f")
        {
            set(
                o,
                "/status/conditions",
                json!([{"type": "Ready", "status": "True"}]),
            );
            set(
                o,
                "/status/containerStatuses/0/state",
                json!({"running": {"startedAt": "2026-11-23T16:20:00Z"}}),
            );
            set(o, "/status/containerStatuses/0/ready", true.into());
        }
    }
    let healed = snapshot(&objects);
    let ctx = enrich_in(&signal, &healed);
    let r = triage::triage::route::route(&RoutingTable::default(), &signal, &ctx);
    assert_eq!(
        (r.status, r.action),
        (Green, Action::Observe),
        "{}",
        r.reason
    );
}

// ---------------------------------------------------------------------------------------
// Several clusters

fn multi_config() -> Config {
    let mut config = Config::default();
    config.kubernetes.default_cluster = "prod".into();
    config.clusters = vec![
        ClusterConfig {
            name: "prod".into(),
            argocd_destinations: vec!["https://prod.example.com:6443".into(), "prod-eu".into()],
            ..ClusterConfig::default()
        },
        ClusterConfig {
            name: "gke-alpha".into(),
            argocd_destinations: vec!["gke-alpha-01-europe-west1".into()],
            ..ClusterConfig::default()
        },
    ];
    config
}

#[test]
fn signals_map_to_clusters_by_destination_label_or_default() {
    let config = multi_config();
    let clusters = Clusters::from_clusters(
        &config,
        vec![
            Arc::new(Cluster::from_snapshot(
                "prod",
                config.clusters[0].argocd_destinations.clone(),
                example(),
            )),
            Arc::new(Cluster::from_snapshot(
                "gke-alpha",
                config.clusters[1].argocd_destinations.clone(),
                argocd_app_cluster().0,
            )),
        ],
    );
    let name = |m: Mapping<'_>| match m {
        Mapping::Cluster(c) => c.name.clone(),
        Mapping::Unknown(n) => format!("unknown:{n}"),
    };
    let mut a = argocd(SignalKind::Degraded, "argo-cd", "velero-test", "test-lla");
    a.argocd.as_mut().unwrap().destination_name = Some("gke-alpha-01-europe-west1".into());
    assert_eq!(name(clusters.map(&a)), "gke-alpha");
    a.argocd.as_mut().unwrap().destination_name = None;
    a.argocd.as_mut().unwrap().destination_server = Some("https://prod.example.com:6443/".into());
    assert_eq!(name(clusters.map(&a)), "prod");
    a.argocd.as_mut().unwrap().destination_server = Some("https://kubernetes.default.svc".into());
    assert_eq!(
        name(clusters.map(&a)),
        "prod",
        "in-cluster means the default cluster"
    );
    a.argocd.as_mut().unwrap().destination_server = Some("https://elsewhere:6443".into());
    assert_eq!(name(clusters.map(&a)), "unknown:https://elsewhere:6443");

    let pod = pod_subject("pets", "store-front-7d9f-abc");
    assert_eq!(
        name(clusters.map(&alert(pod.clone(), None, &[("cluster", "gke-alpha")]))),
        "gke-alpha"
    );
    assert_eq!(
        name(clusters.map(&alert(pod.clone(), None, &[("cluster", "prod-eu")]))),
        "prod"
    );
    assert_eq!(name(clusters.map(&alert(pod.clone(), None, &[]))), "prod");
    assert_eq!(
        name(clusters.map(&alert(pod.clone(), None, &[("cluster", "staging")]))),
        "unknown:staging"
    );

    // Through the Assessor: the right snapshot answers, an unknown cluster is said.
    let enricher = Enricher::new(&config, Arc::new(clusters)).unwrap();
    let ctx = enricher.enrich(&alert(pod.clone(), Some("warning"), &[]));
    assert_eq!(ctx.cluster.name, "prod");
    assert_eq!(ctx.workload.as_ref().unwrap().name, "store-front");
    let signal = alert(pod.clone(), Some("warning"), &[("cluster", "staging")]);
    let ctx = enricher.enrich(&signal);
    assert_eq!(
        (ctx.cluster.name.as_str(), ctx.cluster.state),
        ("staging", SnapshotState::UnknownCluster)
    );
    assert_eq!(ctx.workload, None);
    let route = enricher.route(&signal, &ctx);
    assert_eq!((route.status, route.action), (Yellow, Action::Log));
    // Argo CD often runs elsewhere: the app is found in another cluster's snapshot.
    let mut a = argocd(SignalKind::Degraded, "argo-cd", "velero-test", "pets");
    a.argocd.as_mut().unwrap().destination_name = Some("prod-eu".into());
    let ctx = enricher.enrich(&a);
    assert_eq!(ctx.cluster.name, "prod");
    assert_eq!(ctx.app.as_ref().unwrap().health.as_deref(), Some("Healthy"));

    // With no [[clusters]], one implicit cluster takes every signal.
    let single = Config::default();
    let one = Clusters::from_clusters(
        &single,
        vec![Arc::new(Cluster::from_snapshot(
            "default",
            vec![],
            example(),
        ))],
    );
    assert_eq!(
        name(one.map(&alert(pod, None, &[("cluster", "anything")]))),
        "default"
    );
}

#[test]
fn cluster_config_is_validated_with_errors_naming_the_key() {
    let load = |toml: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Vec::new(), &Overrides::default())
            .map_err(|e| format!("{e:#}"))
    };
    let ok = load(
        "[kubernetes]\ndefault_cluster = \"a\"\n[[clusters]]\nname = \"a\"\nargocd_destinations = [\"https://a\"]\n[[clusters]]\nname = \"b\"\nsnapshot = \"b.yaml\"\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
    for (toml, expect) in [
        (
            "[[clusters]]\nname = \"a\"\n",
            "kubernetes.default_cluster \"default\" is not one of",
        ),
        (
            "[kubernetes]\ndefault_cluster = \"a\"\n[[clusters]]\nname = \"a\"\n[[clusters]]\nname = \"a\"\n",
            "clusters[1].name",
        ),
        (
            "[kubernetes]\ndefault_cluster = \"a\"\n[[clusters]]\nname = \"\"\n",
            "clusters[0].name",
        ),
        (
            "[kubernetes]\ndefault_cluster = \"a\"\n[[clusters]]\nname = \"a\"\nargocd_destinations = [\"x\"]\n[[clusters]]\nname = \"b\"\nargocd_destinations = [\"X/\"]\n",
            "clusters[1].argocd_destinations",
        ),
        (
            "[kubernetes]\ndefault_cluster = \"a\"\n[[clusters]]\nname = \"a\"\nsnapshot = \"s\"\ncontext = \"c\"\n",
            "clusters[0]",
        ),
        (
            "[kubernetes]\nevents_per_object = 0\n",
            "kubernetes.events_per_object",
        ),
        (
            "[kubernetes]\nlist_page_size = 0\n",
            "kubernetes.list_page_size",
        ),
        ("[redaction]\npatterns = [\"(\"]\n", "redaction.patterns[0]"),
    ] {
        let err = load(toml).unwrap_err();
        assert!(err.contains(expect), "{toml}\n→ {err}");
    }
}

// ---------------------------------------------------------------------------------------
// `status` and `doctor` on static snapshots (the real binary)

fn triage_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(args)
        .env_remove("TRIAGE_CONFIG")
        .env_remove("KUBECONFIG")
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn row<'a>(report: &'a Value, ns: &str, name: &str) -> &'a Value {
    report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["namespace"] == ns && w["name"] == name)
        .unwrap_or_else(|| panic!("no row {ns}/{name}"))
}

#[test]
fn status_json_on_the_example_cluster_field_by_field() {
    let (code, out, err) = triage_cmd(&[
        "status",
        "--snapshot",
        "examples/cluster.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(code, 2, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["clusters"][0]["name"], "default");
    assert_eq!(r["clusters"][0]["state"], "static");
    assert_eq!(r["clusters"][0]["detail"], Value::Null);
    let s = &r["summary"];
    assert_eq!(
        (
            s["workloads"].as_u64(),
            s["red"].as_u64(),
            s["yellow"].as_u64(),
            s["green"].as_u64(),
            s["shown"].as_u64()
        ),
        (Some(6), Some(2), Some(1), Some(3), Some(6))
    );
    assert_eq!(
        s["by_action"],
        json!({"escalate": 1, "inform": 0, "log": 2, "observe": 3, "warn": 0})
    );
    // Red first, then by cluster/namespace/kind/name.
    let order: Vec<String> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}/{}",
                w["namespace"].as_str().unwrap(),
                w["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "pets/store-front",
            "reports/nightly-report",
            "data/orders-db",
            "monitoring/node-exporter",
            "pets/order-service",
            "pets/pet-images"
        ]
    );
    assert!(
        !order.iter().any(|o| o.contains("canary")),
        "ignored workloads are invisible"
    );

    let sf = row(&r, "pets", "store-front");
    assert_eq!(sf["cluster"], "default");
    assert_eq!(sf["kind"], "Deployment");
    assert_eq!(sf["health"], "red");
    assert_eq!(sf["reason"], "0 of 2 replicas ready");
    assert_eq!(sf["since"], "2026-11-23T15:58:02Z");
    assert_eq!(
        sf["replicas"],
        json!({"desired": 2, "ready": 0, "updated": 2, "available": 0, "unavailable": 2})
    );
    assert_eq!(sf["owner"], "team-storefront");
    assert_eq!(sf["oncall"], "@storefront-oncall");
    assert_eq!(sf["tier"], "critical");
    assert_eq!(sf["tier_raw"], "critical");
    assert_eq!(sf["gitops_repo"], "https://github.com/example/pets-gitops");
    assert_eq!(sf["gitops_path"], "apps/store-front");
    assert_eq!(sf["runbook"], "https://runbooks.example.com/store-front");
    assert_eq!(sf["dashboard"], "https://grafana.example.com/d/store-front");
    assert_eq!(sf["app"], "argocd/store-front");
    assert_eq!(sf["dependencies"][0]["name"], "orders-db");
    assert_eq!(
        sf["dependencies"][0]["workload"],
        json!({"kind": "StatefulSet", "namespace": "data", "name": "orders-db"})
    );
    assert_eq!(sf["dependencies"][0]["health"], "yellow");
    assert_eq!(sf["dependencies"][1]["health"], "green");
    assert!(
        sf["likely_cause"]
            .as_str()
            .unwrap()
            .starts_with("upstream data/statefulset/orders-db is degraded")
    );
    assert_eq!(
        sf["route"],
        json!({"action": "escalate", "priority": "P0", "status": "red", "tier": "critical",
        "reason": "critical tier, red (0 of 2 replicas ready) → escalate P0"})
    );

    let cron = row(&r, "reports", "nightly-report");
    assert_eq!(
        (
            cron["kind"].as_str(),
            cron["health"].as_str(),
            cron["tier"].as_str()
        ),
        (Some("CronJob"), Some("red"), Some("best-effort"))
    );
    assert_eq!(cron["route"]["action"], "log");
    assert_eq!(cron["route"]["priority"], "P2");
    assert_eq!(cron["since"], "2026-11-23T02:03:19Z");

    let db = row(&r, "data", "orders-db");
    assert_eq!(
        (db["health"].as_str(), db["reason"].as_str()),
        (Some("yellow"), Some("1 of 3 replicas ready"))
    );
    assert_eq!(db["since"], Value::Null);
    assert_eq!(db["route"]["action"], "log");

    // Unset integration fields are null, never missing keys.
    let bare = row(&r, "pets", "pet-images");
    for key in [
        "owner",
        "oncall",
        "tier",
        "tier_raw",
        "gitops_repo",
        "gitops_path",
        "runbook",
        "dashboard",
        "app",
        "likely_cause",
        "since",
    ] {
        assert!(bare.as_object().unwrap().contains_key(key), "{key}");
        assert_eq!(bare[key], Value::Null, "{key}");
    }
    assert_eq!(bare["dependencies"], json!([]));
    assert_eq!(bare["route"]["tier"], "standard");
    assert_eq!(bare["route"]["priority"], Value::Null);
    // A green workload has no likely cause even when an upstream is degraded.
    assert_eq!(
        row(&r, "pets", "order-service")["likely_cause"],
        Value::Null
    );

    // --unhealthy hides green rows; the summary still counts them; the exit code stays.
    let (code, out, _) = triage_cmd(&[
        "status",
        "--snapshot",
        "examples/cluster.json",
        "--format",
        "json",
        "--unhealthy",
    ]);
    assert_eq!(code, 2);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["workloads"].as_array().unwrap().len(), 3);
    assert_eq!(r["summary"]["workloads"], 6);
    assert_eq!(r["summary"]["shown"], 3);
}

#[test]
fn status_table_and_exit_codes_in_both_formats() {
    let (code, out, _) = triage_cmd(&["status", "--snapshot", "examples/cluster.yaml"]);
    assert_eq!(code, 2);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "cluster default: static");
    assert!(
        lines[2].starts_with("NAMESPACE") && lines[2].contains("ROUTE"),
        "{out}"
    );
    let sf = lines
        .iter()
        .find(|l| l.contains("deployment/store-front "))
        .unwrap();
    for word in [
        "red",
        "0/2",
        "2026-11-23 15:58",
        "critical",
        "team-storefront",
        "orders-db(yellow),order-service(green)",
        "escalate P0",
        "0 of 2 replicas ready",
    ] {
        assert!(sf.contains(word), "{word} missing in {sf}");
    }
    assert!(out.contains(
        "pets/deployment/store-front: likely cause: upstream data/statefulset/orders-db"
    ));
    assert!(
        out.trim_end().ends_with(
            "6 workloads: 2 red, 1 yellow, 3 green; routes: escalate 1, log 2, observe 3"
        ),
        "{out}"
    );

    // An all-green snapshot from the real fixtures: exit 0 in both formats.
    let dir = tempfile::tempdir().unwrap();
    let green = dir.path().join("green.yaml");
    std::fs::write(
        &green,
        format!(
            "{}\n---\n{}",
            fixture("kubernetes/statefulset.yaml"),
            fixture("kubernetes/daemonset-ondelete.yaml")
        ),
    )
    .unwrap();
    let green = green.to_str().unwrap();
    let (code, out, _) = triage_cmd(&["status", "--snapshot", green]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2 workloads: 0 red, 0 yellow, 2 green"),
        "{out}"
    );
    let (code, out, _) = triage_cmd(&["status", "--snapshot", green, "--format", "json"]);
    assert_eq!(code, 0);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        row(&r, "default", "redis-master")["reason"],
        "all 1 replicas ready"
    );
    assert_eq!(
        row(&r, "kube-system", "fluentd-elasticsearch")["health"],
        "green"
    );

    // The degraded fixture alone: exit 2.
    let degraded = dir.path().join("degraded.yaml");
    std::fs::write(&degraded, fixture("kubernetes/deployment-degraded.yaml")).unwrap();
    let (code, out, _) = triage_cmd(&[
        "status",
        "--snapshot",
        degraded.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 2);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        row(&r, "default", "guestbook-ui")["since"],
        "2018-07-18T06:29:23Z"
    );

    // Errors exit 1, in both formats, with the reason on stderr.
    for format in ["table", "json"] {
        let (code, out, err) = triage_cmd(&[
            "status",
            "--snapshot",
            "no-such-file.yaml",
            "--format",
            format,
        ]);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(err.contains("no-such-file.yaml"), "{err}");
    }
}

#[test]
fn doctor_on_a_static_snapshot_skips_api_checks_and_scores_annotations() {
    let (code, out, err) = triage_cmd(&[
        "doctor",
        "--snapshot",
        "examples/cluster.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["failed"], json!([]));
    let c = &r["clusters"][0];
    assert_eq!(c["name"], "default");
    assert_eq!(c["source"], "static snapshot examples/cluster.yaml");
    assert_eq!(c["state"], "static");
    assert_eq!(c["api"]["status"], "skipped");
    assert_eq!(c["rbac"]["status"], "skipped");
    assert_eq!(c["rbac"]["checks"], json!([]));
    assert_eq!(c["argocd_applications"], "1 in the snapshot");
    assert_eq!(
        (c["workloads"].as_u64(), c["ignored"].as_u64()),
        (Some(6), Some(1))
    );
    assert_eq!(
        c["coverage"]["owner"],
        json!({"count": 5, "percent": 83.33})
    );
    assert_eq!(c["coverage"]["tier"], json!({"count": 5, "percent": 83.33}));
    assert_eq!(c["coverage"]["gitops-repo"]["count"], 4);
    assert_eq!(c["coverage"]["dashboard"]["count"], 1);
    assert!(c["coverage"].get("ignore").is_none());
    let a = &c["agent_readiness"];
    assert_eq!(
        (
            a["ready"].as_u64(),
            a["pr_ready"].as_u64(),
            a["total"].as_u64()
        ),
        (Some(5), Some(4), Some(6))
    );
    assert_eq!(a["score"], 0.833);
    assert_eq!(a["pr_score"], 0.667);
    assert_eq!(
        a["missing"],
        json!([
            {"workload": "pets/deployment/pet-images", "missing": ["owner", "tier"], "missing_for_pr": ["gitops-repo", "gitops-path"]},
            {"workload": "pets/deployment/order-service", "missing": [], "missing_for_pr": ["gitops-repo", "gitops-path"]},
        ])
    );
    assert_eq!(c["warnings"], json!([]));

    let (code, out, _) = triage_cmd(&["doctor", "--snapshot", "examples/cluster.yaml"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("API:     skipped static snapshot: the API check was skipped"),
        "{out}"
    );
    assert!(
        out.contains("agent readiness: 83% (5 of 6 have owner and tier)"),
        "{out}"
    );
    assert!(
        out.contains("pets/deployment/pet-images     owner,tier  gitops-repo,gitops-path"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("no check failed"));
}

#[test]
fn doctor_warns_about_annotation_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mistakes.json");
    let mut a = deployment("shop", "web", (1, 1, 1, 1, 0));
    annotate(
        &mut a,
        "/metadata/annotations",
        &[
            ("owner", "team-web"),
            ("tier", "gold"),
            ("ignore", "yes"),
            ("tire", "x"),
            ("depends-on", "nope"),
            (
                "gitops-repo",
                "https://bot:hunter2@git.example.com/shop.git",
            ),
        ],
    );
    let mut b = deployment("shop", "api", (1, 1, 1, 1, 0));
    annotate(
        &mut b,
        "/metadata/annotations",
        &[
            ("owner", "o"),
            ("tier", "standard"),
            ("gitops-repo", "shop-repo"),
            ("gitops-path", "p"),
        ],
    );
    std::fs::write(&file, json!({"kind": "List", "items": [a, b]}).to_string()).unwrap();
    let (code, out, _) = triage_cmd(&[
        "doctor",
        "--snapshot",
        file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "warnings do not fail the doctor");
    let r: Value = serde_json::from_str(&out).unwrap();
    let warnings: Vec<String> = r["clusters"][0]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let expect = [
        "shop/deployment/api: gitops-repo \"shop-repo\" is not a repository URL",
        "shop/deployment/web: tier \"gold\" is not critical, standard or best-effort (routed as standard)",
        "shop/deployment/web: deployscope.dev/ignore is \"yes\"; only \"true\" hides a workload",
        "shop/deployment/web: deployscope.dev/tire is not a deployscope key",
        "shop/deployment/web: an annotation value contains a credential",
        "shop/deployment/web: depends-on \"nope\": no workload named \"nope\"",
    ];
    for e in expect {
        assert!(
            warnings.iter().any(|w| w.starts_with(e)),
            "missing {e:?} in {warnings:#?}"
        );
    }
    assert!(!out.contains("hunter2"), "credentials never printed");
    assert_eq!(r["clusters"][0]["agent_readiness"]["ready"], 1);
}

#[test]
fn cluster_metrics_are_read_from_the_snapshots() {
    let config = Config::default();
    let clusters = Arc::new(Clusters::from_clusters(
        &config,
        vec![Arc::new(Cluster::from_snapshot(
            "default",
            vec![],
            example(),
        ))],
    ));
    let mut registry = prometheus_client::registry::Registry::default();
    triage::cluster::metrics::register(clusters, &mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "triage_cluster_synced{cluster=\"default\"} 1",
        "triage_cluster_objects{cluster=\"default\",kind=\"Pod\"} 6",
        "triage_cluster_objects{cluster=\"default\",kind=\"Deployment\"} 4",
        "triage_cluster_ignored_workloads{cluster=\"default\"} 1",
        "# TYPE triage_cluster_watch_errors counter",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}
