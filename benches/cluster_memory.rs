//! Memory and enrichment latency of the live cluster snapshot at the size the project
//! targets: 1,000 workloads, 10,000 pods, 20,000 Warning events (plus 1,600
//! ReplicaSets, 50 Jobs and 200 Argo CD Applications).
//!
//! The synthetic cluster is served by the fake Kubernetes API server
//! (tests/support/fake_kube.rs) running in a child process, so this process holds only
//! what Triage holds: the real kube client, the watchers, the compact snapshot. It
//! syncs over HTTP exactly as in production (paged lists, then watches), then prints
//! the process's peak RSS (VmHWM) and the latency of enrich + route per signal.
//!
//! Run: `cargo bench --bench cluster_memory`. Targets: peak RSS ≤ 64 MiB, p99 ≤ 100 µs.

#[path = "../tests/support/fake_kube.rs"]
mod fake_kube;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use triage::cluster::Clusters;
use triage::config::Config;
use triage::signal::{
    AlertDetail, AlertGroup, ArgocdDetail, Signal, SignalKind, SignalStatus, Source, Subject,
};
use triage::triage::Assessor;
use triage::triage::enrich::Enricher;

const ROLE: &str = "CLUSTER_BENCH_ROLE";
const SCALE: &str = "CLUSTER_BENCH_SCALE";
const NAMESPACES: usize = 50;
const DEPLOYMENTS: usize = 800;
const STATEFULSETS: usize = 100;
const DAEMONSETS: usize = 50;
const CRONJOBS: usize = 50;
const PODS_PER_DEPLOYMENT: usize = 10;
const PODS_PER_STATEFULSET: usize = 10;
const PODS_PER_DAEMONSET: usize = 18;
const PODS_PER_JOB: usize = 2;
const EVENTS_PER_POD: usize = 2;
const APPS: usize = 200;

/// 1 for the full size (`cargo bench`); 20 for the smoke run `cargo test` makes. Set
/// once by `main` (the child process gets it through the environment).
static SCALE_VALUE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn scale() -> usize {
    *SCALE_VALUE.get_or_init(|| {
        std::env::var(SCALE)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
    })
}

fn count(n: usize) -> usize {
    (n / scale()).max(1)
}

fn ns(i: usize) -> String {
    format!("team-{:02}", i % NAMESPACES)
}

fn managed_fields() -> Value {
    // What a real object carries and the snapshot must not keep.
    json!([{"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubelet", "operation": "Update",
        "subresource": "status", "time": "2026-11-23T15:50:12Z",
        "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
            "k:{\"type\":\"Initialized\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
            "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
            "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {".": {}, "k:{\"ip\":\"10.244.1.23\"}": {".": {}, "f:ip": {}}}, "f:startTime": {}}}}])
}

fn template(app: &str, annotations: Value) -> Value {
    json!({"metadata": {"labels": {"app": app}, "annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": format!("ghcr.io/example/{app}:1.2.3"),
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "orders-db.data.svc"}],
            "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}}]}})
}

fn workload_annotations(i: usize, app: &str) -> Value {
    let tier = ["critical", "standard", "best-effort"][i % 3];
    json!({"deployscope.dev/owner": format!("team-{:02}", i % NAMESPACES), "deployscope.dev/tier": tier,
        "deployscope.dev/gitops-repo": "https://github.com/example/gitops",
        "deployscope.dev/gitops-path": format!("apps/{app}"),
        "deployscope.dev/depends-on": format!("db-{}", i % count(STATEFULSETS)),
        "argocd.argoproj.io/tracking-id": format!("app-{}:apps/Deployment:{}/{app}", i % count(APPS), ns(i)),
        "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(1200)})
}

fn pod(ns: &str, name: &str, owner_kind: &str, owner: &str, node: usize, failing: bool) -> Value {
    let state = if failing {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container=main pod={name}_{ns}(0e5b4a61-8f1e-4d0e-b7f2-3c1d9a6e7b11)")}})
    } else {
        json!({"running": {"startedAt": "2026-11-23T15:50:20Z"}})
    };
    let mut spec = template(owner, json!({}))["spec"].clone();
    spec["nodeName"] = format!("node-{node}").into();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": "0e5b4a61-8f1e-4d0e-b7f2-3c1d9a6e7b11",
            "creationTimestamp": "2026-11-23T15:50:12Z", "labels": {"app": owner, "pod-template-hash": "7d9f5c6b8"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "controller": true,
                "blockOwnerDeletion": true, "uid": "7f3e2d1c-0b9a-4c8d-8e7f-6a5b4c3d2e11"}],
            "managedFields": managed_fields()},
        "spec": spec,
        "status": {"phase": "Running", "hostIP": "10.0.1.11", "podIP": "10.244.1.23", "qosClass": "Burstable",
            "startTime": "2026-11-23T15:50:12Z",
            "conditions": [{"type": "Ready", "status": if failing { "False" } else { "True" }, "lastTransitionTime": "2026-11-23T15:58:02Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-23T15:50:12Z"}],
            "containerStatuses": [{"name": "main", "ready": !failing, "restartCount": if failing { 14 } else { 0 },
                "image": "ghcr.io/example/app:1.2.3", "imageID": "ghcr.io/example/app@sha256:9f2c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e",
                "containerID": "containerd://4c1f7d2e9a8b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
                "state": state,
                "lastState": if failing { json!({"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-23T16:08:51Z"}}) } else { json!({}) }}]}})
}

fn event(ns: &str, pod: &str, n: usize) -> Value {
    let (reason, message) = if n.is_multiple_of(2) {
        (
            "BackOff",
            format!(
                "Back-off restarting failed container main in pod {pod}_{ns}(0e5b4a61-8f1e-4d0e-b7f2-3c1d9a6e7b11)"
            ),
        )
    } else {
        ("Unhealthy", "Readiness probe failed: Get \"http://10.244.1.23:8080/healthz\": dial tcp 10.244.1.23:8080: connect: connection refused".to_string())
    };
    json!({"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
        "metadata": {"name": format!("{pod}.{n:016x}"), "namespace": ns, "creationTimestamp": "2026-11-23T15:52:40Z"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns, "fieldPath": "spec.containers{main}"},
        "count": 17 + n, "firstTimestamp": "2026-11-23T15:52:40Z", "lastTimestamp": "2026-11-23T16:09:12Z",
        "source": {"component": "kubelet", "host": "node-1"}, "reportingComponent": "kubelet"})
}

/// The synthetic cluster.
fn cluster() -> Vec<Value> {
    let mut out = Vec::new();
    let add_pods = |out: &mut Vec<Value>,
                    ns: &str,
                    kind: &str,
                    owner: &str,
                    prefix: &str,
                    n: usize,
                    i: usize| {
        for p in 0..n {
            let name = format!("{prefix}-{p}");
            let failing = (i + p).is_multiple_of(7);
            out.push(pod(ns, &name, kind, owner, (i + p) % 30, failing));
            for e in 0..EVENTS_PER_POD {
                out.push(event(ns, &name, e));
            }
        }
    };
    for i in 0..count(DEPLOYMENTS) {
        let (ns, app) = (ns(i), format!("svc-{i}"));
        let ready = if i % 10 == 0 { 0 } else { PODS_PER_DEPLOYMENT };
        out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": ns, "generation": 3, "annotations": workload_annotations(i, &app),
                "labels": {"app": app}, "managedFields": managed_fields()},
            "spec": {"replicas": PODS_PER_DEPLOYMENT, "selector": {"matchLabels": {"app": app}}, "template": template(&app, json!({"deployscope.dev/oncall": "@oncall"}))},
            "status": {"observedGeneration": 3, "replicas": PODS_PER_DEPLOYMENT, "readyReplicas": ready, "updatedReplicas": PODS_PER_DEPLOYMENT,
                "availableReplicas": ready, "unavailableReplicas": PODS_PER_DEPLOYMENT - ready,
                "conditions": [{"type": "Available", "status": if ready > 0 { "True" } else { "False" }, "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.", "lastTransitionTime": "2026-11-23T15:58:02Z"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                    "message": format!("ReplicaSet \"{app}-7d9f5c6b8\" has successfully progressed."), "lastTransitionTime": "2026-11-01T00:00:00Z"}]}}));
        for (rs, current) in [
            (format!("{app}-7d9f5c6b8"), true),
            (format!("{app}-5b6c7d8e9"), false),
        ] {
            out.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": ns, "labels": {"app": app}, "managedFields": managed_fields(),
                    "annotations": {"deployment.kubernetes.io/revision": "3"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "controller": true, "uid": "5d0c6c1e-2f0a-4f3e-9a55-2b7f5c8d1a01"}]},
                "spec": {"replicas": if current { PODS_PER_DEPLOYMENT } else { 0 }, "selector": {"matchLabels": {"app": app}}, "template": template(&app, json!({}))},
                "status": {"replicas": if current { PODS_PER_DEPLOYMENT } else { 0 }}}));
        }
        add_pods(
            &mut out,
            &ns,
            "ReplicaSet",
            &format!("{app}-7d9f5c6b8"),
            &format!("{app}-7d9f5c6b8"),
            PODS_PER_DEPLOYMENT,
            i,
        );
    }
    for i in 0..count(STATEFULSETS) {
        let (ns, app) = (ns(i), format!("db-{i}"));
        out.push(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": app, "namespace": ns, "generation": 1, "annotations": {"deployscope.dev/owner": "team-data", "deployscope.dev/tier": "critical"}},
            "spec": {"replicas": PODS_PER_STATEFULSET, "serviceName": app, "selector": {"matchLabels": {"app": app}}, "template": template(&app, json!({}))},
            "status": {"observedGeneration": 1, "replicas": PODS_PER_STATEFULSET, "readyReplicas": PODS_PER_STATEFULSET - i % 2,
                "currentRevision": format!("{app}-1"), "updateRevision": format!("{app}-1"), "updatedReplicas": PODS_PER_STATEFULSET}}));
        add_pods(
            &mut out,
            &ns,
            "StatefulSet",
            &app,
            &app,
            PODS_PER_STATEFULSET,
            i,
        );
    }
    for i in 0..count(DAEMONSETS) {
        let (ns, app) = (ns(i), format!("agent-{i}"));
        out.push(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": app, "namespace": ns, "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": template(&app, json!({}))},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": PODS_PER_DAEMONSET, "currentNumberScheduled": PODS_PER_DAEMONSET,
                "numberReady": PODS_PER_DAEMONSET, "numberAvailable": PODS_PER_DAEMONSET, "numberMisscheduled": 0, "updatedNumberScheduled": PODS_PER_DAEMONSET}}));
        add_pods(
            &mut out,
            &ns,
            "DaemonSet",
            &app,
            &app,
            PODS_PER_DAEMONSET,
            i,
        );
    }
    for i in 0..count(CRONJOBS) {
        let (ns, app) = (ns(i), format!("batch-{i}"));
        let job = format!("{app}-29400000");
        out.push(json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": app, "namespace": ns, "annotations": {"deployscope.dev/tier": "best-effort"}},
            "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": template(&app, json!({}))}}}}));
        out.push(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job, "namespace": ns, "creationTimestamp": "2026-11-23T02:00:00Z",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": app, "controller": true, "uid": "3c4d5e6f-7081-4a92-b3c4-d5e6f7081a92"}]},
            "spec": {"backoffLimit": 2, "template": template(&app, json!({}))},
            "status": {"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-23T02:03:19Z"}]}}));
        add_pods(&mut out, &ns, "Job", &job, &job, PODS_PER_JOB, i);
    }
    for i in 0..count(APPS) {
        out.push(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": format!("app-{i}"), "namespace": "argocd"},
            "spec": {"destination": {"server": "https://kubernetes.default.svc", "namespace": ns(i)},
                "source": {"repoURL": "https://github.com/example/gitops.git", "path": format!("apps/app-{i}"), "targetRevision": "main"}},
            "status": {"health": {"status": "Degraded"}, "sync": {"status": "Synced"},
                "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                    "syncResult": {"resources": [{"group": "apps", "kind": "Deployment", "namespace": ns(i), "name": format!("svc-{i}"), "status": "Synced"}]}},
                "resources": [{"group": "apps", "kind": "Deployment", "namespace": ns(i), "name": format!("svc-{i}"), "status": "Synced"}]}}));
    }
    out
}

/// The pods `cluster()` creates, by name only (building the objects here would put
/// the whole synthetic cluster into the measured process).
fn pod_names() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |ns: String, prefix: String, n: usize| {
        for p in 0..n {
            out.push((ns.clone(), format!("{prefix}-{p}")));
        }
    };
    for i in 0..count(DEPLOYMENTS) {
        add(ns(i), format!("svc-{i}-7d9f5c6b8"), PODS_PER_DEPLOYMENT);
    }
    for i in 0..count(STATEFULSETS) {
        add(ns(i), format!("db-{i}"), PODS_PER_STATEFULSET);
    }
    for i in 0..count(DAEMONSETS) {
        add(ns(i), format!("agent-{i}"), PODS_PER_DAEMONSET);
    }
    for i in 0..count(CRONJOBS) {
        add(ns(i), format!("batch-{i}-29400000"), PODS_PER_JOB);
    }
    out
}

fn proc_status(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The child: serve the synthetic cluster until the parent closes stdin.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fake = fake_kube::FakeKube::start().await;
        fake.seed(cluster());
        println!("{}", fake.addr.port());
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
    });
}

fn alert(ns: &str, pod: &str, n: usize) -> Signal {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("alertname".to_string(), "KubePodCrashLooping".to_string());
    labels.insert("namespace".to_string(), ns.to_string());
    labels.insert("pod".to_string(), pod.to_string());
    labels.insert("severity".to_string(), "warning".to_string());
    Signal {
        source: Source::Alertmanager,
        kind: SignalKind::Alert,
        status: SignalStatus::Firing,
        subject: Subject::Pod {
            namespace: ns.into(),
            name: pod.into(),
        },
        cluster: None,
        title: "KubePodCrashLooping".into(),
        message: Some(format!(
            "Pod {ns}/{pod} (main) is in waiting state (reason: CrashLoopBackOff)."
        )),
        started_at: None,
        ended_at: None,
        labels,
        annotations: Default::default(),
        alert: Some(AlertDetail {
            name: "KubePodCrashLooping".into(),
            fingerprint: format!("{n:016x}"),
            generator_url: None,
            group: AlertGroup {
                group_key: "{}:{}".into(),
                receiver: "triage".into(),
                status: SignalStatus::Firing,
                group_labels: Default::default(),
                common_labels: Default::default(),
                common_annotations: Default::default(),
                external_url: None,
                truncated_alerts: 0,
            },
        }),
        argocd: None,
    }
}

fn app_signal(i: usize) -> Signal {
    Signal {
        source: Source::Argocd,
        kind: SignalKind::Degraded,
        status: SignalStatus::Firing,
        subject: Subject::Application {
            namespace: Some("argocd".into()),
            name: format!("app-{i}"),
        },
        cluster: None,
        title: "on-health-degraded".into(),
        message: None,
        started_at: None,
        ended_at: None,
        labels: Default::default(),
        annotations: Default::default(),
        alert: None,
        argocd: Some(ArgocdDetail {
            app: format!("app-{i}"),
            app_namespace: Some("argocd".into()),
            health_status: Some("Degraded".into()),
            destination_server: Some("https://kubernetes.default.svc".into()),
            destination_namespace: Some(ns(i)),
            ..ArgocdDetail::default()
        }),
    }
}

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("server") {
        serve();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        // A test runner (nextest, `cargo test -- --list`) asking for tests: there are none.
        return;
    }
    // `cargo bench` passes `--bench`: the full size. Anything else (`cargo test
    // --benches`) is a smoke run at 1/20 of the size that keeps this code working.
    let full = args.iter().any(|a| a == "--bench");
    let _ = SCALE_VALUE.set(if full { 1 } else { 20 });
    triage::tls::install_crypto_provider();
    let baseline = proc_status("VmRSS:");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "server")
        .env(SCALE, scale().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the fake API server process");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port
        .trim()
        .parse()
        .expect("the fake API server prints its port");

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\ncurrent-context: bench\nclusters:\n- name: bench\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\nusers:\n- name: bench\n  user:\n    token: bench\n"),
    )
    .unwrap();
    let mut config = Config::default();
    config.kubernetes.kubeconfig = Some(kubeconfig);
    // CLUSTER_BENCH_PAGE_SIZE tries other list page sizes (the trade-off is documented
    // in docs/cluster.md).
    if let Ok(size) = std::env::var("CLUSTER_BENCH_PAGE_SIZE") {
        config.kubernetes.list_page_size =
            size.parse().expect("CLUSTER_BENCH_PAGE_SIZE is a number");
    }

    // The same runtime shape `serve` uses on a small node: two worker threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pods = pod_names();
    let started = Instant::now();
    let cancel = tokio_util::sync::CancellationToken::new();
    let clusters: Arc<Clusters> = rt.block_on(async {
        let clusters = Clusters::start(&config, cancel.clone()).await.unwrap();
        assert!(
            clusters.wait_synced(Duration::from_secs(120)).await,
            "no sync: {:?}",
            clusters.sync_status()
        );
        clusters
    });
    let sync_time = started.elapsed();
    let cluster = clusters.default_cluster().unwrap();
    let counts = cluster.read().counts();
    let after_sync = proc_status("VmRSS:");
    let peak_sync = proc_status("VmHWM:");

    let enricher = Enricher::new(&config, clusters.clone()).unwrap();
    // Signals are built one at a time, outside the timed region: a pipeline holds one
    // signal at a time too, and holding 10,000 here would measure the benchmark.
    let signal = |i: usize| -> Signal {
        if i % 50 == 49 {
            app_signal(i % count(APPS))
        } else {
            let (ns, pod) = &pods[(i * 7919) % pods.len()];
            alert(ns, pod, i)
        }
    };
    for i in 0..500 {
        let s = signal(i);
        let ctx = enricher.enrich(&s);
        std::hint::black_box(enricher.route(&s, &ctx));
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut found = 0usize;
    for i in 0..(30_000 / scale()) {
        let s = signal(i);
        let t = Instant::now();
        let ctx = enricher.enrich(&s);
        let route = enricher.route(&s, &ctx);
        let ns = t.elapsed().as_nanos() as u64;
        hist.record(ns.max(1)).unwrap();
        if ctx.workload.is_some() {
            found += 1;
        }
        std::hint::black_box(route);
    }
    let peak = proc_status("VmHWM:");
    let rss = proc_status("VmRSS:");
    cancel.cancel();

    let count = |k: &str| {
        counts
            .iter()
            .find(|(kind, _)| kind.as_str() == k)
            .map_or(0, |(_, n)| *n)
    };
    println!(
        "cluster_memory{}: synthetic cluster served over HTTP by the fake API server (child process)",
        if full {
            ""
        } else {
            " (smoke run at 1/20 of the size, no targets; `cargo bench` gives the figures)"
        }
    );
    println!(
        "  objects held: {} Deployments, {} StatefulSets, {} DaemonSets, {} CronJobs ({} workloads), {} Jobs, {} ReplicaSets, {} Pods, {} Warning events, {} Applications",
        count("Deployment"),
        count("StatefulSet"),
        count("DaemonSet"),
        count("CronJob"),
        count("Deployment") + count("StatefulSet") + count("DaemonSet") + count("CronJob"),
        count("Job"),
        count("ReplicaSet"),
        count("Pod"),
        count("Event"),
        count("Application")
    );
    let verdict = |ok: bool| match (full, ok) {
        (false, _) => "not judged in a smoke run",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    println!(
        "  initial sync over HTTP (paged lists, page size {}): {:.2} s",
        config.kubernetes.list_page_size,
        sync_time.as_secs_f64()
    );
    println!(
        "  RSS: before start {}, after sync {}, after enrichment {}",
        mib(baseline),
        mib(after_sync),
        mib(rss)
    );
    println!(
        "  peak RSS (VmHWM): {} during sync, {} overall (target ≤ 64 MiB: {})",
        mib(peak_sync),
        mib(peak),
        verdict(peak <= 64 * 1024)
    );
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  enrich + route: {} signals ({} resolved to a workload), p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs (target p99 ≤ 100 µs: {})",
        hist.len(),
        found,
        us(0.5),
        us(0.9),
        us(0.99),
        hist.max() as f64 / 1000.0,
        verdict(us(0.99) <= 100.0)
    );
    drop(child.stdin.take());
    let _ = child.wait();
    rt.shutdown_timeout(Duration::from_secs(1));
}
