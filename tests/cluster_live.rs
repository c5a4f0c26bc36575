//! The live path over HTTP: the real kube client and Triage's watchers against a fake
//! Kubernetes API server on loopback (tests/support/fake_kube.rs). Initial sync with
//! pagination, watch events that change health and its since-time, a `410 Gone` that
//! forces a relist, a dropped connection that is recovered, an API server that is
//! down and comes back, Argo CD absent, `status`/`doctor` against the live server, and
//! `/readyz` and `/metrics` of `triage serve` following the snapshot.

#[path = "support/fake_kube.rs"]
mod fake_kube;
#[path = "support/cluster.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use fake_kube::{DEPLOYMENTS, EVENTS, FakeKube, PODS, REPLICASETS};
use jiff::Timestamp;
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;
use triage::cluster::{Clusters, health};
use triage::config::Config;
use triage::signal::WorkloadKind;
use triage::triage::Assessor;
use triage::triage::context::{HealthStatus, SnapshotState};
use triage::triage::enrich::Enricher;
use triage::triage::redact::Redactor;
use triage::triage::route::RoutingTable;

struct Live {
    fake: FakeKube,
    clusters: Arc<Clusters>,
    config: Config,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn config_for(fake: &FakeKube, dir: &tempfile::TempDir) -> Config {
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig("triage-test")).unwrap();
    let mut config = Config::default();
    config.kubernetes.kubeconfig = Some(kubeconfig);
    // Not the current context: the context option picks the fake.
    config.kubernetes.context = Some("triage-test".into());
    config.kubernetes.list_page_size = 3;
    config
}

async fn start(fake: FakeKube) -> Live {
    triage::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&fake, &dir);
    let cancel = CancellationToken::new();
    let clusters = Clusters::start(&config, cancel.clone()).await.unwrap();
    Live {
        fake,
        clusters,
        config,
        cancel,
        _dir: dir,
    }
}

async fn synced(live: &Live) {
    assert!(
        live.clusters.wait_synced(Duration::from_secs(10)).await,
        "no sync: {:?}",
        live.clusters.sync_status()
    );
}

/// Polls `check` until it holds (the watchers apply events asynchronously).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn health_now(live: &Live, ns: &str, name: &str) -> Option<triage::triage::context::Health> {
    let cluster = live.clusters.default_cluster().unwrap();
    let s = cluster.read();
    s.workload(WorkloadKind::Deployment, ns, name)
        .map(|w| health::assess(w, &s))
}

fn ready_deployment(ns: &str, name: &str, ready: i64) -> Value {
    let mut d = deployment(ns, name, (2, 2, ready, 2, 2 - ready));
    d["apiVersion"] = "apps/v1".into();
    d["kind"] = "Deployment".into();
    set(
        &mut d,
        "/status/conditions",
        json!([{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]),
    );
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_over_http_matches_the_static_snapshot() {
    let fake = FakeKube::start().await;
    fake.seed(example_objects());
    let live = start(fake).await;
    synced(&live).await;

    // The same cluster read live and from the file gives the same status report.
    let redactor = Redactor::builtin();
    let table = RoutingTable::default();
    let live_report = triage::commands::status::report(&live.clusters, &redactor, &table, false);
    let mut file_config = Config::default();
    file_config.kubernetes.snapshot = Some(root().join("examples/cluster.yaml"));
    let file_clusters = Clusters::load_static(&file_config).unwrap();
    let file_report = triage::commands::status::report(&file_clusters, &redactor, &table, false);
    assert_eq!(
        serde_json::to_value(&live_report.workloads).unwrap(),
        serde_json::to_value(&file_report.workloads).unwrap()
    );
    assert_eq!(live_report.summary.workloads, 6);

    let sync = &live_report.clusters[0];
    assert_eq!(sync.state, SnapshotState::Synced);
    assert!(sync.synced_at.is_some());
    assert!(
        sync.kinds
            .values()
            .all(|k| k.synced && k.served && k.last_error.is_none()),
        "{sync:?}"
    );

    // Paged lists (page size 3), Warning events only, ReplicaSets as metadata.
    let (pod_lists, pod_watches) = live.fake.calls(PODS);
    assert_eq!(pod_lists.len(), 2, "6 pods in pages of 3");
    assert_eq!(
        pod_lists[0].query.get("limit").map(String::as_str),
        Some("3")
    );
    assert!(pod_lists[1].query.contains_key("continue"));
    assert!(!pod_watches.is_empty());
    assert!(
        pod_watches
            .iter()
            .all(|w| w.query.get("allowWatchBookmarks").map(String::as_str) == Some("true"))
    );
    let (event_lists, _) = live.fake.calls(EVENTS);
    assert_eq!(
        event_lists[0]
            .query
            .get("fieldSelector")
            .map(String::as_str),
        Some("type=Warning")
    );
    let (rs_lists, _) = live.fake.calls(REPLICASETS);
    assert!(
        rs_lists[0].accept.contains("as=PartialObjectMetadataList"),
        "{}",
        rs_lists[0].accept
    );

    // The real Alertmanager capture enriches from the live snapshot as from the file.
    let enricher = Enricher::new(&live.config, live.clusters.clone()).unwrap();
    let signal = alertmanager_signals("crashlooping-group-firing.json").remove(0);
    let ctx = enricher.enrich(&signal);
    assert_eq!(ctx.cluster.state, SnapshotState::Synced);
    assert_eq!(
        ctx.workload.as_ref().unwrap().to_string(),
        "pets/deployment/store-front"
    );
    assert_eq!(
        ctx.evidence.events.iter().map(|e| e.count).sum::<i64>(),
        61 + 54 + 9
    );
    let route = enricher.route(&signal, &ctx);
    assert_eq!(route.action.as_str(), "escalate");
    assert!(live.clusters.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_update_health_and_its_since_time() {
    let fake = FakeKube::start().await;
    fake.set_bookmark_every(Duration::from_millis(100));
    fake.seed([ready_deployment("shop", "web", 2)]);
    let live = start(fake).await;
    synced(&live).await;
    let h = health_now(&live, "shop", "web").unwrap();
    assert_eq!(
        (h.status, h.since),
        (HealthStatus::Green, None),
        "green since before Triage started"
    );

    // Ready → unready: one replica goes, Available stays True (within maxUnavailable).
    let before = Timestamp::now();
    live.fake.apply(ready_deployment("shop", "web", 1));
    eventually("yellow", || {
        health_now(&live, "shop", "web").is_some_and(|h| h.status == HealthStatus::Yellow)
    })
    .await;
    let after = Timestamp::now();
    let h = health_now(&live, "shop", "web").unwrap();
    assert_eq!(h.reason, "1 of 2 replicas ready");
    let since = h.since.expect("the snapshot saw the change");
    assert!(
        before <= since && since <= after,
        "{before} <= {since} <= {after}"
    );

    // Another event with the same status keeps the since-time.
    let mut same = ready_deployment("shop", "web", 1);
    set(&mut same, "/metadata/labels", json!({"touched": "yes"}));
    live.fake.apply(same);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health_now(&live, "shop", "web").unwrap().since, Some(since));

    // Nothing ready, Available=False with a condition time: red since that time.
    let mut red = ready_deployment("shop", "web", 0);
    set(
        &mut red,
        "/status/conditions",
        json!([{"type": "Available", "status": "False",
        "reason": "MinimumReplicasUnavailable", "lastTransitionTime": "2026-03-04T05:06:07Z"}]),
    );
    live.fake.apply(red);
    eventually("red", || {
        health_now(&live, "shop", "web").is_some_and(|h| h.status == HealthStatus::Red)
    })
    .await;
    assert_eq!(
        health_now(&live, "shop", "web").unwrap().since,
        Some("2026-03-04T05:06:07Z".parse().unwrap())
    );

    // Pods and Warning events arrive by watch too; deletes remove.
    let mut rs = replica_set("shop", "web-abc", "web");
    rs["metadata"]["resourceVersion"] = "1".into();
    live.fake.apply(rs);
    let mut p = pod("shop", "web-abc-1", Some(("ReplicaSet", "web-abc")));
    p["apiVersion"] = "v1".into();
    live.fake.apply(p);
    live.fake.apply(json!({"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "BackOff",
        "metadata": {"name": "web-abc-1.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-abc-1", "namespace": "shop"},
        "count": 3, "lastTimestamp": "2026-03-04T05:07:00Z", "message": "Back-off restarting failed container"}));
    live.fake.apply(
        json!({"apiVersion": "v1", "kind": "Event", "type": "Normal", "reason": "Pulled",
        "metadata": {"name": "web-abc-1.2", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-abc-1", "namespace": "shop"}}),
    );
    let enricher = Enricher::new(&live.config, live.clusters.clone()).unwrap();
    let signal = alert(
        triage::signal::Subject::Pod {
            namespace: "shop".into(),
            name: "web-abc-1".into(),
        },
        None,
        &[],
    );
    eventually("pod and event", || {
        let ctx = enricher.enrich(&signal);
        ctx.workload.is_some() && ctx.evidence.events.len() == 1
    })
    .await;
    let ctx = enricher.enrich(&signal);
    assert_eq!(ctx.workload.unwrap().to_string(), "shop/deployment/web");
    assert_eq!(
        ctx.evidence.events[0].reason, "BackOff",
        "Normal events are filtered by the server"
    );
    assert_eq!(
        ctx.evidence.pods[0].containers[0].waiting_reason.as_deref(),
        Some("CrashLoopBackOff")
    );
    live.fake.delete("Deployment", "shop", "web");
    eventually("deleted", || health_now(&live, "shop", "web").is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_gone_forces_a_relist_that_drops_what_was_missed() {
    let fake = FakeKube::start().await;
    fake.seed([
        ready_deployment("shop", "web", 2),
        ready_deployment("shop", "api", 2),
    ]);
    let live = start(fake).await;
    synced(&live).await;
    let (lists_before, _) = live.fake.calls(DEPLOYMENTS);
    assert_eq!(lists_before.len(), 1);

    // The watchers miss a delete and an update, then the server's history is compacted
    // and every watch ends with "410 Gone: too old resource version".
    live.fake.delete_silently("Deployment", "shop", "api");
    {
        let mut inner_change = ready_deployment("shop", "web", 0);
        inner_change["metadata"]["resourceVersion"] = "0".into();
        // Stored without an event: only a relist can see it.
        live.fake.seed([inner_change]);
    }
    live.fake.compact_and_expire();
    eventually("relist", || live.fake.calls(DEPLOYMENTS).0.len() >= 2).await;
    eventually("missed delete applied", || {
        health_now(&live, "shop", "api").is_none()
    })
    .await;
    eventually("missed update applied", || {
        health_now(&live, "shop", "web").is_some_and(|h| h.status == HealthStatus::Red)
    })
    .await;
    let c = live.clusters.default_cluster().unwrap();
    let sync = c.sync_status();
    let deployments = &sync.kinds["Deployment"];
    assert!(
        deployments.errors >= 1,
        "the 410 is counted: {deployments:?}"
    );
    assert_eq!(
        sync.state,
        SnapshotState::Synced,
        "a relist keeps the cluster synced"
    );

    // Watching continues after the relist.
    live.fake.apply(ready_deployment("shop", "web", 2));
    eventually("green again", || {
        health_now(&live, "shop", "web").is_some_and(|h| h.status == HealthStatus::Green)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_the_watch_without_a_relist() {
    let fake = FakeKube::start().await;
    fake.seed([ready_deployment("shop", "web", 2)]);
    let live = start(fake).await;
    synced(&live).await;
    live.fake.apply(ready_deployment("shop", "web", 1));
    eventually("yellow", || {
        health_now(&live, "shop", "web").is_some_and(|h| h.status == HealthStatus::Yellow)
    })
    .await;
    let seen_rv = live.fake.resource_version();
    let (lists_before, watches_before) = live.fake.calls(DEPLOYMENTS);

    live.fake.drop_watches();
    eventually("re-watch", || {
        live.fake.calls(DEPLOYMENTS).1.len() > watches_before.len()
    })
    .await;
    let (lists_after, watches_after) = live.fake.calls(DEPLOYMENTS);
    assert_eq!(
        lists_after.len(),
        lists_before.len(),
        "no relist after a dropped connection"
    );
    let resumed: u64 = watches_after.last().unwrap().query["resourceVersion"]
        .parse()
        .unwrap();
    assert!(
        resumed >= seen_rv,
        "resumed from {resumed}, had seen {seen_rv}"
    );

    live.fake.apply(ready_deployment("shop", "web", 2));
    eventually("change after reconnect", || {
        health_now(&live, "shop", "web").is_some_and(|h| h.status == HealthStatus::Green)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_is_down_is_reported_and_recovered_from() {
    let fake = FakeKube::start().await;
    fake.seed([ready_deployment("shop", "web", 2)]);
    fake.set_unavailable(true);
    let live = start(fake).await;
    let cluster = live.clusters.default_cluster().unwrap().clone();
    eventually("unreachable", || {
        cluster.state().0 == SnapshotState::Unreachable
    })
    .await;
    let (_, detail) = cluster.state();
    assert!(
        detail.unwrap().contains("API server unreachable"),
        "{:?}",
        cluster.state()
    );
    assert!(!live.clusters.is_ready(), "/readyz waits for the sync");

    // Enrichment does not block: it says the cluster is unreachable.
    let enricher = Enricher::new(&live.config, live.clusters.clone()).unwrap();
    let signal = alertmanager_signals("crashlooping-group-firing.json").remove(0);
    let ctx = enricher.enrich(&signal);
    assert_eq!(ctx.cluster.state, SnapshotState::Unreachable);
    assert!(ctx.notes[0].contains("unreachable"), "{:?}", ctx.notes);
    assert_eq!(ctx.health, None);

    live.fake.set_unavailable(false);
    assert!(
        live.clusters.wait_synced(Duration::from_secs(15)).await,
        "{:?}",
        live.clusters.sync_status()
    );
    assert!(health_now(&live, "shop", "web").is_some());

    // serve_before_sync makes /readyz answer before the first sync.
    let mut config = live.config.clone();
    config.kubernetes.serve_before_sync = true;
    live.fake.set_unavailable(true);
    let cancel = CancellationToken::new();
    let early = Clusters::start(&config, cancel.clone()).await.unwrap();
    assert!(!early.all_synced());
    assert!(early.is_ready());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_not_installed_is_not_an_error() {
    let fake = FakeKube::start().await;
    fake.set_argo_served(false);
    fake.seed([ready_deployment("shop", "web", 2)]);
    let live = start(fake).await;
    synced(&live).await;
    let sync = live.clusters.default_cluster().unwrap().sync_status();
    let apps = &sync.kinds["Application"];
    assert!(
        !apps.served && apps.synced && apps.last_error.is_none(),
        "{apps:?}"
    );
    assert_eq!(sync.state, SnapshotState::Synced);
}

fn run_triage(args: Vec<String>) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(&args)
        .env_remove("TRIAGE_CONFIG")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_doctor_against_the_live_server() {
    triage::tls::install_crypto_provider();
    let fake = FakeKube::start().await;
    fake.seed(example_objects());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig("triage-test")).unwrap();
    let config = dir.path().join("triage.toml");
    std::fs::write(
        &config,
        format!(
            "[kubernetes]\nkubeconfig = {:?}\ncontext = \"triage-test\"\nsync_timeout = \"10s\"\n",
            kubeconfig.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap().to_string();
    let args = |a: &[&str]| {
        let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        v.extend(["--config".to_string(), cfg.clone()]);
        v
    };

    let (code, out, err) = tokio::task::spawn_blocking({
        let a = args(&["status", "--format", "json"]);
        move || run_triage(a)
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["clusters"][0]["state"], "synced");
    assert_eq!(r["summary"]["red"], 2);

    let (code, out, err) = tokio::task::spawn_blocking({
        let a = args(&["doctor", "--format", "json"]);
        move || run_triage(a)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let c = &r["clusters"][0];
    assert_eq!(c["source"], "live");
    assert_eq!(c["api"]["status"], "pass");
    assert_eq!(c["api"]["detail"], "API server v1.33.0-fake answers");
    assert_eq!(c["rbac"]["status"], "pass");
    assert_eq!(c["rbac"]["checks"].as_array().unwrap().len(), 9 * 3);
    assert_eq!(c["sync"]["status"], "pass");
    assert_eq!(c["argocd_applications"], "served");
    assert_eq!(c["agent_readiness"]["ready"], 5);
    let reviews = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("selfsubjectaccessreviews"))
        .count();
    assert_eq!(reviews, 27);

    // A missing permission fails the doctor (exit 2) and names what is missing.
    fake.deny("", "pods", "watch");
    fake.deny("apps", "replicasets", "list");
    let (code, out, _) = tokio::task::spawn_blocking({
        let a = args(&["doctor"]);
        move || run_triage(a)
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("RBAC:    fail    denied: list replicasets.apps, watch pods"),
        "{out}"
    );
    assert!(
        out.contains("FAILED: cluster default: RBAC: denied: list replicasets.apps, watch pods"),
        "{out}"
    );

    // An API server that does not answer: status cannot report (exit 1), doctor fails (2).
    fake.set_unavailable(true);
    std::fs::write(
        &config,
        format!(
            "[kubernetes]\nkubeconfig = {:?}\ncontext = \"triage-test\"\nsync_timeout = \"2s\"\n",
            kubeconfig.to_str().unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = tokio::task::spawn_blocking({
        let a = args(&["status"]);
        move || run_triage(a)
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cluster default"), "{err}");
    let (code, out, _) = tokio::task::spawn_blocking({
        let a = args(&["doctor", "--format", "json"]);
        move || run_triage(a)
    })
    .await
    .unwrap();
    assert_eq!(code, 2);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["clusters"][0]["api"]["status"], "fail");
    assert_eq!(r["clusters"][0]["rbac"]["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_is_found_as_kubectl_finds_it() {
    let fake = FakeKube::start().await;
    fake.seed([ready_deployment("shop", "web", 2)]);
    let dir = tempfile::tempdir().unwrap();
    // The current context points at the fake (no context option this time).
    let kubeconfig = fake
        .kubeconfig("triage-test")
        .replace("current-context: other", "current-context: triage-test");
    let run = |envs: Vec<(&'static str, String)>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_triage"));
        cmd.args(["status", "--format", "json"])
            .env_remove("TRIAGE_CONFIG")
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("TRIAGE_KUBERNETES_SYNC_TIMEOUT", "10s");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };

    // KUBECONFIG wins over ~/.kube/config (here there is none).
    let via_env = dir.path().join("via-env");
    std::fs::write(&via_env, &kubeconfig).unwrap();
    let empty_home = dir.path().join("empty-home");
    std::fs::create_dir(&empty_home).unwrap();
    let out = run(vec![
        ("KUBECONFIG", via_env.to_str().unwrap().into()),
        ("HOME", empty_home.to_str().unwrap().into()),
    ])
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["workloads"][0]["name"], "web");

    // ~/.kube/config when KUBECONFIG is unset.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".kube")).unwrap();
    std::fs::write(home.join(".kube/config"), &kubeconfig).unwrap();
    let out = run(vec![("HOME", home.to_str().unwrap().into())])
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A context option picks a context other than the current one.
    let out = run(vec![
        ("HOME", home.to_str().unwrap().into()),
        ("TRIAGE_KUBERNETES_CONTEXT", "other".into()),
        ("TRIAGE_KUBERNETES_SYNC_TIMEOUT", "1s".into()),
    ])
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the other context's server does not answer"
    );

    // Nothing at all (and not in a cluster): a clear error, exit 1.
    let out = run(vec![("HOME", empty_home.to_str().unwrap().into())])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Kubernetes configuration found") && err.contains("--snapshot"),
        "{err}"
    );
}

/// `/readyz` of a running `triage serve` follows the live snapshot: not ready while the
/// API server is down (the component says why), ready once the watches have listed;
/// `/metrics` carries the cluster gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_metrics_of_serve_follow_the_snapshot() {
    triage::tls::install_crypto_provider();
    let fake = FakeKube::start().await;
    fake.seed([ready_deployment("shop", "web", 2)]);
    fake.set_unavailable(true);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&fake, &dir);
    config.store.path = dir.path().join("triage.db");
    config.forge.dir = dir.path().join("work-orders");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = triage::commands::serve::Server::start(config, listener)
        .await
        .unwrap();
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::new();
    let readyz = || async {
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = readyz().await;
        let detail = body["components"]["cluster:default"]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if detail.contains("unreachable") || tokio::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(
        body["components"]["cluster:default"]["ready"], false,
        "{body}"
    );
    assert!(
        body["components"]["cluster:default"]["detail"]
            .as_str()
            .unwrap()
            .contains("API server unreachable"),
        "{body}"
    );
    assert_eq!(body["components"]["journal"]["ready"], true, "{body}");

    fake.set_unavailable(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (status, body) = loop {
        let (status, body) = readyz().await;
        if status == 200 || tokio::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["components"]["cluster:default"],
        json!({"ready": true, "detail": "synced, watching"})
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("triage_cluster_synced{cluster=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("triage_cluster_objects{cluster=\"default\",kind=\"Deployment\"} 1"),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

/// With `serve_before_sync`, `/readyz` answers 200 while the first sync is still
/// impossible, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_before_sync_is_ready_and_says_it_is_not_synced() {
    triage::tls::install_crypto_provider();
    let fake = FakeKube::start().await;
    fake.set_unavailable(true);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&fake, &dir);
    config.store.path = dir.path().join("triage.db");
    config.forge.dir = dir.path().join("work-orders");
    config.kubernetes.serve_before_sync = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = triage::commands::serve::Server::start(config, listener)
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .get(format!("http://{}/readyz", server.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let component = &body["components"]["cluster:default"];
    assert_eq!(component["ready"], true, "{body}");
    assert!(
        component["detail"]
            .as_str()
            .unwrap()
            .ends_with("(serving anyway: kubernetes.serve_before_sync)"),
        "{body}"
    );
    server.stop().await.unwrap();
}
