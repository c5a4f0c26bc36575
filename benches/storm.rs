//! Storm benchmark: 10,000 alerts across 200 workloads in 60 s, plus an Argo CD
//! "degraded" notification for each workload's app, over HTTP into the release build
//! of `triage serve`, with the GitHub fake on loopback as the forge (GitHub's real
//! pacing: 1/s, 80/min, 500/h; the fake also enforces 80 mutations a minute).
//!
//! Prints: issues created (target ≤ 200, one per workload), comments, forge mutations
//! per minute, ingest p50/p99 latency during the storm, time from a workload's first
//! signal to its issue (minus its debounce) — both to the create being decided and
//! queued (Triage's own latency) and to the issue being on the forge (which GitHub's
//! 500 mutations an hour stretch to many minutes for 200 issues) — and signals
//! accounted for (journal = timeline).
//!
//! `cargo bench --bench storm`. Environment: `STORM_WORKLOADS` (200), `STORM_ALERTS`
//! (10000), `STORM_SECONDS` (60), `STORM_PER_MINUTE` (80) and `STORM_PER_HOUR` (500):
//! GitHub.com's limits by default; raise them to model a GitHub Enterprise Server with
//! relaxed limits.

#[path = "../tests/support/fake_github.rs"]
mod fake_github;
#[allow(dead_code)]
#[path = "../tests/support/payloads.rs"]
mod payloads;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_github::FakeGithub;
use hdrhistogram::Histogram;
use jiff::Timestamp;
use payloads::{Alert, alertmanager_group, argocd_degraded};

const REPO: &str = "acme/ops";
const AM_TOKEN: &str = "storm-am-token-0123456789";
const ARGO_TOKEN: &str = "storm-argo-token-0123456789";
const NAMESPACES: usize = 20;
const PODS: usize = 3;
/// Alerts per notification (one Alertmanager group: one workload's alerts).
const GROUP: usize = 10;
/// Notifications in flight at once (Alertmanager sends groups concurrently).
const CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
struct Workload {
    namespace: String,
    name: String,
    critical: bool,
}

impl Workload {
    /// Debounce its route gets: critical red → escalate (0 s), standard red → inform.
    fn debounce(&self) -> Duration {
        if self.critical {
            Duration::ZERO
        } else {
            Duration::from_secs(120)
        }
    }

    fn pod(&self, i: usize) -> String {
        format!("{}-7d9f4c-{i:05}", self.name)
    }
}

fn main() {
    triage::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let workloads_n = env_usize("STORM_WORKLOADS", 200);
    let alerts_n = env_usize("STORM_ALERTS", 10_000);
    let seconds = env_usize("STORM_SECONDS", 60);
    let per_minute = env_usize("STORM_PER_MINUTE", 80);
    let per_hour = env_usize("STORM_PER_HOUR", 500);
    let workloads: Vec<Workload> = (0..workloads_n)
        .map(|i| Workload {
            namespace: format!("team-{:02}", i % NAMESPACES),
            name: format!("app-{i:03}"),
            critical: i % 2 == 0,
        })
        .collect();

    let gh = Arc::new(FakeGithub::start().await);
    gh.create_repo(REPO);
    gh.set_content_limit(Some(per_minute as u32));
    let tmp = tempfile::tempdir().expect("tempdir");
    let snapshot = tmp.path().join("cluster.yaml");
    std::fs::write(&snapshot, snapshot_yaml(&workloads)).expect("snapshot");
    let db = tmp.path().join("triage.db");
    let config = tmp.path().join("triage.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log]
level = "warn"
[store]
path = {db:?}
[kubernetes]
snapshot = {snapshot:?}
[alertmanager]
token = "{AM_TOKEN}"
rate_limit_per_second = 100000
rate_limit_burst = 100000
[argocd]
token = "{ARGO_TOKEN}"
rate_limit_per_second = 100000
rate_limit_burst = 100000
[github]
token = "{token}"
repo = "{REPO}"
api_url = "{api}"
per_second = 1
per_minute = {per_minute}
per_hour = {per_hour}
"#,
            token = gh.token(),
            api = gh.base_url(),
        ),
    )
    .expect("config");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn triage serve");
    let http = reqwest::Client::new();
    wait_ready(&http, &base, &mut child).await;

    // The storm: every workload's pods crash-loop; Alertmanager re-notifies groups as
    // alerts come and go (restarts give new startsAt), so most alerts are repeats.
    let mut bodies: Vec<(usize, &'static str, Vec<u8>)> = Vec::new();
    let start_time = Timestamp::now();
    let groups = alerts_n.div_ceil(GROUP);
    for g in 0..groups {
        let w = g % workloads.len();
        let wl = &workloads[w];
        let round = g / workloads.len();
        let alerts: Vec<Alert> = (0..GROUP)
            .map(|a| {
                let pod = a % PODS;
                // A pod restarts every few rounds: a new alert instance.
                let restart = (round + pod) / 3;
                let starts = start_time + jiff::SignedDuration::from_secs(restart as i64);
                Alert::crashloop(
                    &wl.namespace,
                    &wl.name,
                    &wl.pod(pod),
                    &format!("{w:08x}{pod:04x}{a:04x}"),
                    starts,
                )
            })
            .collect();
        bodies.push((w, "alertmanager", alertmanager_group(&alerts, start_time)));
    }
    for (w, wl) in workloads.iter().enumerate() {
        // Interleave one Argo CD notification per app through the storm.
        let at = (w * bodies.len()) / workloads.len() + w;
        bodies.insert(
            at.min(bodies.len()),
            (
                w,
                "argocd",
                argocd_degraded(&wl.name, &wl.namespace, "4f2c9a1", start_time),
            ),
        );
    }
    let total = bodies.len();
    let interval = Duration::from_secs_f64(seconds as f64 / total as f64);

    let first_signal: Arc<Mutex<BTreeMap<usize, (Instant, Timestamp)>>> = Arc::default();
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let issue_seen: Arc<Mutex<BTreeMap<usize, Instant>>> = Arc::default();
    let names: Vec<String> = workloads.iter().map(|w| w.name.clone()).collect();

    // Watch the forge for each workload's issue.
    let watcher = {
        let (seen, names, gh) = (issue_seen.clone(), names.clone(), gh.clone());
        tokio::spawn(async move {
            loop {
                let keys: Vec<String> = gh
                    .issues(REPO)
                    .iter()
                    .filter_map(|i| triage::forge::parse_key_marker(&i.body).map(str::to_string))
                    .collect();
                for key in keys {
                    if let Some(w) = names.iter().position(|n| {
                        key.ends_with(&format!("/{n}")) || key.contains(&format!("={n}"))
                    }) {
                        seen.lock()
                            .expect("lock")
                            .entry(w)
                            .or_insert_with(Instant::now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    println!(
        "storm: {} notifications ({} alerts, {} Argo CD) over {seconds} s into {base}",
        total,
        groups * GROUP,
        workloads.len()
    );
    let storm_started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::with_capacity(total);
    for (i, (w, source, body)) in bodies.into_iter().enumerate() {
        let due = storm_started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (http, base, lat, first) = (
            http.clone(),
            base.clone(),
            latencies.clone(),
            first_signal.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let token = if source == "argocd" {
                ARGO_TOKEN
            } else {
                AM_TOKEN
            };
            first
                .lock()
                .expect("lock")
                .entry(w)
                .or_insert_with(|| (Instant::now(), Timestamp::now()));
            loop {
                let sent = Instant::now();
                let r = http
                    .post(format!("{base}/v1/{source}"))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let took = sent.elapsed();
                match r {
                    Ok(r) if r.status().is_success() => {
                        lat.lock()
                            .expect("lock")
                            .record(took.as_micros().max(1) as u64)
                            .ok();
                        return;
                    }
                    Ok(r) if r.status().is_client_error() => {
                        panic!(
                            "{source} delivery refused: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let storm_took = storm_started.elapsed();

    // Drain: every workload's issue created and the outbox empty.
    let store = triage::store::open_store(
        &triage::config::StoreConfig {
            path: db.clone(),
            ..triage::config::StoreConfig::default()
        },
        triage::metrics::JournalMetrics::default(),
    )
    .await
    .expect("open the store read side");
    let drain_started = Instant::now();
    let stats = loop {
        let stats = store
            .work
            .work_stats(Timestamp::now())
            .await
            .expect("stats");
        let seen = issue_seen.lock().expect("lock").len();
        let pending_debounce = stats
            .work_orders_by_phase
            .get(&triage::triage::lifecycle::Phase::Pending)
            .copied()
            .unwrap_or(0);
        if stats.unprocessed_deliveries == 0
            && stats.outbox_pending == 0
            && pending_debounce == 0
            && seen
                >= workloads
                    .len()
                    .min(stats.work_orders_by_phase.values().sum::<u64>() as usize)
        {
            break stats;
        }
        if drain_started.elapsed() > Duration::from_secs(3600) {
            println!("gave up draining after an hour: {stats:?}");
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    watcher.abort();
    let _ = child.kill();
    let _ = child.wait();

    // Figures.
    let issues = gh.issues(REPO);
    let comments: usize = issues.iter().map(|i| i.comments.len()).sum();
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for i in &issues {
        *keys
            .entry(
                triage::forge::parse_key_marker(&i.body)
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default() += 1;
    }
    let duplicates = keys.values().filter(|n| **n > 1).count();
    let log = gh.request_log();
    let mutations: Vec<Instant> = log
        .iter()
        .filter(|r| r.is_mutation() && r.status < 300)
        .map(|r| r.at)
        .collect();
    let refused = log
        .iter()
        .filter(|r| r.status == 403 || r.status == 429)
        .count();
    let max_per_minute = max_in_window(&mutations, Duration::from_secs(60));
    let span = match (mutations.first(), mutations.last()) {
        (Some(a), Some(b)) if b > a => b.duration_since(*a),
        _ => Duration::from_secs(1),
    };
    let orders = store.work.work_orders().await.expect("work orders");
    let operations = store.work.operations(None).await.expect("operations");
    let lat = latencies.lock().expect("lock").clone();
    let first = first_signal.lock().expect("lock").clone();
    let seen = issue_seen.lock().expect("lock").clone();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    // Triage's own part: first signal → the create decided and queued in the outbox.
    let mut to_decision = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram");
    let workload_of = |key: &str| {
        names
            .iter()
            .position(|n| key.ends_with(&format!("/{n}")) || key.contains(&format!("={n}")))
    };
    for op in operations {
        if op.operation.kind() != "create" {
            continue;
        }
        let Some(w) = orders
            .iter()
            .find(|o| o.id == op.work_order_id)
            .and_then(|o| workload_of(&o.key))
        else {
            continue;
        };
        if let Some((_, f)) = first.get(&w) {
            let d = f
                .duration_until(op.created_at)
                .unsigned_abs()
                .saturating_sub(workloads[w].debounce());
            to_decision.record(d.as_millis().max(1) as u64).ok();
        }
    }
    // And with the forge's pacing queue: first signal → the issue visible on GitHub.
    let mut to_issue = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram");
    for (w, at) in seen.iter() {
        if let Some((f, _)) = first.get(w) {
            let d = at
                .saturating_duration_since(*f)
                .saturating_sub(workloads[*w].debounce());
            to_issue.record(d.as_millis().max(1) as u64).ok();
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== storm: {} workloads, {} alerts + {} Argo CD notifications in {:.1} s ===",
        workloads.len(),
        groups * GROUP,
        workloads.len(),
        storm_took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "issues created            {} (target ≤ {}; {} keys, {} with more than one issue)",
        issues.len(),
        workloads.len(),
        keys.len(),
        duplicates
    );
    let _ = writeln!(out, "comments                  {comments}");
    let _ = writeln!(
        out,
        "forge mutations           {} in {:.0} s: max {} in any 60 s window, max {} in any hour, {:.1}/min average \
         (pacing 1/s, {per_minute}/min, {per_hour}/h); {} answered 403/429",
        mutations.len(),
        span.as_secs_f64(),
        max_per_minute,
        max_in_window(&mutations, Duration::from_secs(3600)),
        mutations.len() as f64 * 60.0 / span.as_secs_f64().max(1.0),
        refused
    );
    let _ = writeln!(
        out,
        "ingest latency            p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
        ms(&lat, 0.5),
        ms(&lat, 0.99),
        lat.max() as f64 / 1000.0,
        lat.len()
    );
    let _ = writeln!(
        out,
        "first signal → decided    p50 {:.2} s, p99 {:.2} s, max {:.2} s minus debounce: the create queued ({} workloads)",
        ms(&to_decision, 0.5),
        ms(&to_decision, 0.99),
        to_decision.max() as f64 / 1000.0,
        to_decision.len()
    );
    let _ = writeln!(
        out,
        "first signal → issue      p50 {:.1} s, p99 {:.1} s, max {:.1} s minus debounce: on the forge, after its pacing queue ({} workloads)",
        ms(&to_issue, 0.5),
        ms(&to_issue, 0.99),
        to_issue.max() as f64 / 1000.0,
        to_issue.len()
    );
    let _ = writeln!(
        out,
        "signals accounted for     journal {} = timeline {} ({})",
        stats.journal_signals,
        stats.timeline_signals,
        if stats.journal_signals == stats.timeline_signals {
            "all"
        } else {
            "MISMATCH"
        }
    );
    let _ = writeln!(
        out,
        "work orders               {:?}; outbox pending {}, parked {}",
        stats.work_orders_by_phase, stats.outbox_pending, stats.outbox_parked
    );
    let _ = writeln!(
        out,
        "drained                   {:.1} s after the storm",
        drain_started.elapsed().as_secs_f64()
    );
    print!("{out}");
}

fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

async fn wait_ready(http: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("triage serve exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "triage serve not ready after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A static cluster snapshot: per workload a Deployment (tracked by the Argo CD app of
/// the same name, `deployscope.dev/*` annotations), its ReplicaSet and crash-looping
/// Pods — the shapes of `examples/cluster.yaml`.
fn snapshot_yaml(workloads: &[Workload]) -> String {
    let mut out = String::from("# Generated by benches/storm.rs\n");
    for (i, w) in workloads.iter().enumerate() {
        let uid = format!("00000000-0000-4000-8000-{i:012}");
        let rs_uid = format!("00000000-0000-4000-9000-{i:012}");
        let tier = if w.critical { "critical" } else { "standard" };
        let (ns, name) = (&w.namespace, &w.name);
        let _ = write!(
            out,
            r#"---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  generation: 3
  uid: {uid}
  labels:
    app: {name}
    app.kubernetes.io/instance: {name}
  annotations:
    argocd.argoproj.io/tracking-id: {name}:apps/Deployment:{ns}/{name}
    deployscope.dev/owner: team-{ns}
    deployscope.dev/tier: {tier}
    deployscope.dev/gitops-repo: https://github.com/acme/gitops
    deployscope.dev/gitops-path: apps/{name}
spec:
  replicas: {PODS}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: {name}
        image: ghcr.io/acme/{name}:1.0.0
status:
  observedGeneration: 3
  replicas: {PODS}
  updatedReplicas: {PODS}
  unavailableReplicas: {PODS}
  conditions:
  - type: Available
    status: "False"
    reason: MinimumReplicasUnavailable
    message: Deployment does not have minimum availability.
    lastTransitionTime: "2026-11-23T15:58:02Z"
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}-7d9f4c
  namespace: {ns}
  uid: {rs_uid}
  labels:
    app: {name}
    pod-template-hash: 7d9f4c
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: {name}
    uid: {uid}
    controller: true
spec:
  replicas: {PODS}
status:
  replicas: {PODS}
"#
        );
        for p in 0..PODS {
            let pod = w.pod(p);
            let _ = write!(
                out,
                r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: {ns}
  uid: 00000000-0000-4000-a{p:03}-{i:012}
  labels:
    app: {name}
    pod-template-hash: 7d9f4c
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: {name}-7d9f4c
    uid: {rs_uid}
    controller: true
spec:
  nodeName: node-{node}
  containers:
  - name: {name}
    image: ghcr.io/acme/{name}:1.0.0
status:
  phase: Running
  containerStatuses:
  - name: {name}
    ready: false
    restartCount: 9
    image: ghcr.io/acme/{name}:1.0.0
    lastState:
      terminated:
        reason: Error
        exitCode: 1
        finishedAt: "2026-11-23T16:08:51Z"
    state:
      waiting:
        reason: CrashLoopBackOff
        message: back-off 5m0s restarting failed container
"#,
                node = p % 4
            );
        }
    }
    out
}
