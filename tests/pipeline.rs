//! The pipeline below the HTTP edge, with a deterministic clock: journal → processor →
//! scheduler → outbox → the local-directory forge (and wrappers that fail on purpose).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use triage::config::{LabelsConfig, LinksConfig, Secret, SqliteSync, StoreConfig, StoreKind};
use triage::forge::dir::DirForge;
use triage::forge::routing::RepoRouter;
use triage::forge::{
    CloseReason, Forge, ForgeError, FoundIssue, IssueDraft, IssueRef, IssueState, LabelSpec,
    RepoRef,
};
use triage::metrics::JournalMetrics;
use triage::pipeline::{Attempt, Pipeline, PipelineMetrics, Settings};
use triage::render::PlainRenderer;
use triage::signal::{Signal, SignalKind, SignalStatus, Source, Subject, WorkloadKind};
use triage::store::work::OperationStatus;
use triage::store::{NewDelivery, Store, open_store};
use triage::triage::context::{HealthStatus, Tier};
use triage::triage::lifecycle::{Phase, Rules};

use support::fake_cluster::FakeCluster;
use support::pg::TestDb;
use support::signals::{alert, argocd};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_790_000_000).unwrap() + SignedDuration::from_secs(secs)
}

fn settings() -> Settings {
    Settings {
        rules: Rules::default(),
        labels: LabelsConfig::default(),
        links: LinksConfig::default(),
        cluster_label: "cluster".into(),
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        lease: Duration::from_secs(60),
        idle_poll: Duration::from_millis(20),
        redactor: triage::triage::redact::Redactor::builtin(),
    }
}

fn local() -> RepoRef {
    RepoRef::parse("local/work-orders").unwrap()
}

struct Rig {
    pipeline: Arc<Pipeline>,
    store: Store,
    dir: Arc<DirForge>,
    cluster: Arc<FakeCluster>,
    _tmp: tempfile::TempDir,
}

async fn sqlite_store(tmp: &tempfile::TempDir) -> Store {
    let config = StoreConfig {
        kind: StoreKind::Sqlite,
        path: tmp.path().join("triage.db"),
        synchronous: SqliteSync::Normal,
        ..StoreConfig::default()
    };
    open_store(&config, JournalMetrics::default())
        .await
        .unwrap()
}

async fn rig_with(wrap: impl FnOnce(Arc<DirForge>) -> Arc<dyn Forge>) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(&tmp).await;
    let dir = Arc::new(DirForge::open(tmp.path().join("work-orders")).unwrap());
    let cluster = Arc::new(FakeCluster::new("pets"));
    let pipeline = Pipeline::new(
        store.work.clone(),
        cluster.clone(),
        wrap(dir.clone()),
        Arc::new(PlainRenderer),
        RepoRouter::new(local(), &[], None).unwrap(),
        settings(),
        PipelineMetrics::default(),
    );
    Rig {
        pipeline,
        store,
        dir,
        cluster,
        _tmp: tmp,
    }
}

async fn rig() -> Rig {
    rig_with(|d| d as Arc<dyn Forge>).await
}

static BODY: AtomicU32 = AtomicU32::new(0);

async fn journal_at(store: &Store, at: Timestamp, signals: &[Signal]) {
    let n = BODY.fetch_add(1, Ordering::Relaxed);
    let d = NewDelivery::new(
        signals[0].source,
        at,
        "token:0".into(),
        format!("req-{n}"),
        Bytes::from(format!("body {n}")),
        signals,
    )
    .unwrap();
    store.journal.append(d).await.unwrap();
}

/// Runs the outbox until nothing is due at `now`.
async fn drain(p: &Pipeline, now: Timestamp) -> Vec<Attempt> {
    let mut out = Vec::new();
    while let Some(a) = p.deliver_at(now).await.unwrap() {
        out.push(a);
        assert!(out.len() < 1000, "the outbox does not drain");
    }
    out
}

fn crashloop(fp: &str, pod: &str, status: SignalStatus, started: i64) -> Signal {
    alert("KubePodCrashLooping", fp, "pets", pod, status, t(started))
}

fn replica_mismatch(workload: &str) -> Signal {
    let mut s = alert(
        "KubeDeploymentReplicasMismatch",
        "00000000000000ff",
        "pets",
        "kube-state-metrics-5c4f-xyz",
        SignalStatus::Firing,
        t(0),
    );
    s.subject = Subject::Workload {
        kind: WorkloadKind::Deployment,
        namespace: "pets".into(),
        name: workload.into(),
    };
    s
}

fn issue_file(issue: &IssueRef) -> String {
    std::fs::read_to_string(&issue.url).unwrap_or_else(|e| panic!("{}: {e}", issue.url))
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn one_failing_workload_one_issue_through_its_whole_life() {
    let rig = rig().await;
    rig.cluster
        .set("store-front", Tier::Critical, HealthStatus::Red);
    let p = &rig.pipeline;

    // An Argo CD degraded notification, three crash-looping pods, a replica mismatch.
    journal_at(
        &rig.store,
        t(0),
        &[argocd(
            SignalKind::Degraded,
            SignalStatus::Firing,
            "store-front",
            "abc",
        )],
    )
    .await;
    journal_at(
        &rig.store,
        t(1),
        &[
            crashloop(
                "00000000000000a1",
                "store-front-7d9f-aaaaa",
                SignalStatus::Firing,
                0,
            ),
            crashloop(
                "00000000000000a2",
                "store-front-7d9f-bbbbb",
                SignalStatus::Firing,
                0,
            ),
            crashloop(
                "00000000000000a3",
                "store-front-7d9f-ccccc",
                SignalStatus::Firing,
                0,
            ),
        ],
    )
    .await;
    journal_at(&rig.store, t(2), &[replica_mismatch("store-front")]).await;
    assert_eq!(p.process_at(t(3)).await.unwrap(), 3);
    assert_eq!(p.process_at(t(3)).await.unwrap(), 0);

    let orders = rig.store.work.work_orders().await.unwrap();
    assert_eq!(
        orders.len(),
        1,
        "one work order: {:?}",
        orders.iter().map(|o| &o.key).collect::<Vec<_>>()
    );
    let wo = &orders[0];
    assert_eq!(wo.key, "prod/pets/deployment/store-front");
    assert_eq!(wo.state.phase, Phase::Open, "escalate: no debounce");
    assert_eq!(wo.state.occurrences, 5);

    assert_eq!(drain(p, t(3)).await, [Attempt::Done]);
    let issues = rig.dir.list_work_orders(&local()).await.unwrap();
    assert_eq!(issues.len(), 1);
    let issue = rig
        .store
        .work
        .work_order(&wo.key)
        .await
        .unwrap()
        .unwrap()
        .issue
        .unwrap();
    let text = issue_file(&issue);
    for label in [
        "cluster-doctor",
        "priority/P0",
        "tier/critical",
        "action/escalate",
        "source/argocd",
        &wo.key_label,
    ] {
        assert!(
            text.contains(&format!("- {label}\n")),
            "label {label} missing:\n{text}"
        );
    }
    assert!(text.contains("<!-- triage:key=prod/pets/deployment/store-front -->"));

    // Every signal is in the timeline of exactly this work order.
    let timeline = rig.store.work.timeline(wo.id).await.unwrap();
    let signals: Vec<_> = timeline.iter().filter_map(|e| e.signal).collect();
    assert_eq!(signals.len(), 5);
    assert_eq!(timeline[0].decision, "open");
    assert!(
        timeline[1..].iter().all(|e| e.decision == "throttle"),
        "{timeline:?}"
    );
    let stats = rig.store.work.work_stats(t(3)).await.unwrap();
    assert_eq!((stats.journal_signals, stats.timeline_signals), (5, 5));

    // The Deployment heals: "recovered" at the next recheck, closed after the quiet period.
    rig.cluster.set_health("store-front", HealthStatus::Green);
    assert_eq!(p.tick_at(t(30)).await.unwrap(), 0, "not due yet");
    assert_eq!(p.tick_at(t(70)).await.unwrap(), 1);
    assert_eq!(
        rig.store
            .work
            .work_order(&wo.key)
            .await
            .unwrap()
            .unwrap()
            .state
            .phase,
        Phase::Resolved
    );
    assert_eq!(drain(p, t(70)).await, [Attempt::Done]);
    let mut now = 70;
    while rig
        .store
        .work
        .work_order(&wo.key)
        .await
        .unwrap()
        .unwrap()
        .state
        .phase
        == Phase::Resolved
    {
        now += 60;
        p.tick_at(t(now)).await.unwrap();
        assert!(now < 70 + 900 + 120, "never closed");
    }
    assert!(
        now >= 70 + 900,
        "closed before the quiet period ended: {now}"
    );
    assert_eq!(drain(p, t(now)).await, [Attempt::Done, Attempt::Done]);
    let text = issue_file(&issue);
    assert!(text.contains("state: closed"), "{text}");
    assert!(
        text.contains("**Recovered.**") && text.contains("**Closing:**"),
        "{text}"
    );

    // Back within the reopen window: the same issue, reopened.
    rig.cluster.set_health("store-front", HealthStatus::Red);
    journal_at(
        &rig.store,
        t(now + 100),
        &[crashloop(
            "00000000000000a1",
            "store-front-7d9f-ddddd",
            SignalStatus::Firing,
            now + 90,
        )],
    )
    .await;
    p.process_at(t(now + 100)).await.unwrap();
    assert_eq!(drain(p, t(now + 100)).await, [Attempt::Done, Attempt::Done]);
    let text = issue_file(&issue);
    assert!(
        text.contains("state: open") && text.contains("state_reason: reopened"),
        "{text}"
    );
    assert!(text.contains("**Reopened:**"));
    assert_eq!(rig.dir.list_work_orders(&local()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_in_payload_text_never_reach_the_forge() {
    let rig = rig().await;
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    let mut s = crashloop(
        "00000000000000c1",
        "cart-66b9-aaaaa",
        SignalStatus::Firing,
        0,
    );
    s.message = Some("pull failed for https://deploy:hunter2@registry.example.com with token ghp_abcdefghijklmnopqrstuvwxyz0123456789".into());
    journal_at(&rig.store, t(0), &[s]).await;
    rig.pipeline.process_at(t(0)).await.unwrap();
    drain(&rig.pipeline, t(0)).await;
    let wo = &rig.store.work.work_orders().await.unwrap()[0];
    let text = issue_file(wo.issue.as_ref().unwrap());
    assert!(
        !text.contains("hunter2") && !text.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        "{text}"
    );
    assert!(
        text.contains("registry.example.com"),
        "the rest stays readable: {text}"
    );
}

#[tokio::test]
async fn a_transient_resolved_inside_its_window_files_nothing() {
    let rig = rig().await;
    rig.cluster
        .set("cart", Tier::Standard, HealthStatus::Yellow);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(0)).await.unwrap();
    let wo = &rig.store.work.work_orders().await.unwrap()[0];
    assert_eq!(wo.state.phase, Phase::Pending);
    assert_eq!(wo.state.deadline, Some(t(300)), "log: 300 s");
    journal_at(
        &rig.store,
        t(30),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Resolved,
            0,
        )],
    )
    .await;
    p.process_at(t(30)).await.unwrap();
    assert_eq!(p.tick_at(t(301)).await.unwrap(), 0);
    assert!(drain(p, t(301)).await.is_empty());
    assert!(rig.dir.list_work_orders(&local()).await.unwrap().is_empty());
    assert_eq!(p.metrics().suppressed_count(), 1);
    let wo = rig.store.work.work_order(&wo.key).await.unwrap().unwrap();
    assert_eq!((wo.state.phase, wo.state.suppressed), (Phase::Quiet, 1));
}

#[tokio::test]
async fn the_deadline_asks_the_live_snapshot() {
    // The alert never resolves in time, but the Deployment is healthy at the deadline.
    let rig = rig().await;
    rig.cluster
        .set("cart", Tier::Critical, HealthStatus::Yellow);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(0)).await.unwrap();
    rig.cluster.set_health("cart", HealthStatus::Green);
    assert_eq!(p.tick_at(t(60)).await.unwrap(), 1);
    assert!(drain(p, t(60)).await.is_empty());
    assert_eq!(p.metrics().suppressed_count(), 1);

    // Still failing at the deadline: opened.
    journal_at(
        &rig.store,
        t(100),
        &[crashloop(
            "00000000000000c2",
            "cart-66b9-bbbbb",
            SignalStatus::Firing,
            100,
        )],
    )
    .await;
    rig.cluster.set_health("cart", HealthStatus::Yellow);
    p.process_at(t(100)).await.unwrap();
    p.tick_at(t(160)).await.unwrap();
    assert_eq!(drain(p, t(160)).await, [Attempt::Done]);
    assert_eq!(rig.dir.list_work_orders(&local()).await.unwrap().len(), 1);
}

/// Performs creates but loses the first answer, as a timeout after GitHub created it.
struct LosesFirstAnswer {
    inner: Arc<DirForge>,
    lost: AtomicU32,
}

#[async_trait]
impl Forge for LosesFirstAnswer {
    fn kind(&self) -> &'static str {
        "lossy"
    }
    async fn ensure_labels(&self, r: &RepoRef, l: &[LabelSpec]) -> Result<(), ForgeError> {
        self.inner.ensure_labels(r, l).await
    }
    async fn find_by_key(
        &self,
        r: &RepoRef,
        k: &str,
        l: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        self.inner.find_by_key(r, k, l).await
    }
    async fn create(&self, r: &RepoRef, d: &IssueDraft) -> Result<IssueRef, ForgeError> {
        let created = self.inner.create(r, d).await?;
        if self.lost.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(ForgeError::Transient {
                reason: "timed out reading the answer".into(),
                retry_after: None,
            });
        }
        Ok(created)
    }
    async fn comment(&self, i: &IssueRef, b: &str) -> Result<(), ForgeError> {
        self.inner.comment(i, b).await
    }
    async fn set_state(
        &self,
        i: &IssueRef,
        s: IssueState,
        r: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        self.inner.set_state(i, s, r).await
    }
    async fn add_labels(&self, i: &IssueRef, l: &[String]) -> Result<(), ForgeError> {
        self.inner.add_labels(i, l).await
    }
    async fn remove_labels(&self, i: &IssueRef, l: &[String]) -> Result<(), ForgeError> {
        self.inner.remove_labels(i, l).await
    }
    async fn list_work_orders(&self, r: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        self.inner.list_work_orders(r).await
    }
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_not_repeated() {
    let rig = rig_with(|d| {
        Arc::new(LosesFirstAnswer {
            inner: d,
            lost: AtomicU32::new(0),
        }) as Arc<dyn Forge>
    })
    .await;
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(0)).await.unwrap();
    assert_eq!(p.deliver_at(t(0)).await.unwrap(), Some(Attempt::Retry));
    assert_eq!(p.deliver_at(t(0)).await.unwrap(), None, "backing off");
    assert_eq!(drain(p, t(3600)).await, [Attempt::Done]);
    assert_eq!(
        rig.dir.list_work_orders(&local()).await.unwrap().len(),
        1,
        "no duplicate issue"
    );
    let wo = &rig.store.work.work_orders().await.unwrap()[0];
    assert_eq!(wo.issue.as_ref().map(|i| i.number), Some(1));
    let ops = rig.store.work.operations(Some(wo.id)).await.unwrap();
    assert_eq!((ops[0].status, ops[0].attempts), (OperationStatus::Done, 2));
    assert_eq!(p.metrics().failure_count("create", "transient"), 1);
}

/// Refuses every create: issues disabled on the repository (HTTP 410).
struct IssuesDisabled(Arc<DirForge>);

#[async_trait]
impl Forge for IssuesDisabled {
    fn kind(&self) -> &'static str {
        "disabled"
    }
    async fn ensure_labels(&self, _: &RepoRef, _: &[LabelSpec]) -> Result<(), ForgeError> {
        Ok(())
    }
    async fn find_by_key(
        &self,
        r: &RepoRef,
        k: &str,
        l: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        self.0.find_by_key(r, k, l).await
    }
    async fn create(&self, _: &RepoRef, _: &IssueDraft) -> Result<IssueRef, ForgeError> {
        Err(ForgeError::Permanent {
            reason: "HTTP 410: issues are disabled for this repository".into(),
        })
    }
    async fn comment(&self, i: &IssueRef, b: &str) -> Result<(), ForgeError> {
        self.0.comment(i, b).await
    }
    async fn set_state(
        &self,
        i: &IssueRef,
        s: IssueState,
        r: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        self.0.set_state(i, s, r).await
    }
    async fn add_labels(&self, i: &IssueRef, l: &[String]) -> Result<(), ForgeError> {
        self.0.add_labels(i, l).await
    }
    async fn remove_labels(&self, i: &IssueRef, l: &[String]) -> Result<(), ForgeError> {
        self.0.remove_labels(i, l).await
    }
    async fn list_work_orders(&self, r: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        self.0.list_work_orders(r).await
    }
}

#[tokio::test]
async fn permanent_failures_are_parked_with_their_reason() {
    let rig = rig_with(|d| Arc::new(IssuesDisabled(d)) as Arc<dyn Forge>).await;
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(0)).await.unwrap();
    assert_eq!(drain(p, t(0)).await, [Attempt::Parked]);
    // A later route upgrade on the work order has no issue to act on: parked too.
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    let wo = &rig.store.work.work_orders().await.unwrap()[0];
    let ops = rig.store.work.operations(Some(wo.id)).await.unwrap();
    assert_eq!(ops[0].status, OperationStatus::Parked);
    assert!(
        ops[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("issues are disabled"),
        "{:?}",
        ops[0]
    );
    let stats = rig.store.work.work_stats(t(1)).await.unwrap();
    assert_eq!((stats.outbox_parked, stats.outbox_pending), (1, 0));
    assert_eq!(p.metrics().failure_count("create", "permanent"), 1);

    journal_at(
        &rig.store,
        t(700),
        &[crashloop(
            "00000000000000c9",
            "cart-66b9-zzzzz",
            SignalStatus::Firing,
            700,
        )],
    )
    .await;
    p.process_at(t(700)).await.unwrap();
    assert_eq!(drain(p, t(700)).await, [Attempt::Parked]);
    assert_eq!(p.metrics().failure_count("comment", "no_issue"), 1);
}

/// A token that may write issues but not manage labels.
struct NoLabelPermission(Arc<DirForge>);

#[async_trait]
impl Forge for NoLabelPermission {
    fn kind(&self) -> &'static str {
        "no-labels"
    }
    async fn ensure_labels(&self, _: &RepoRef, _: &[LabelSpec]) -> Result<(), ForgeError> {
        Err(ForgeError::Permanent {
            reason: "HTTP 403: Resource not accessible by integration".into(),
        })
    }
    async fn find_by_key(
        &self,
        r: &RepoRef,
        k: &str,
        l: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        self.0.find_by_key(r, k, l).await
    }
    async fn create(&self, r: &RepoRef, d: &IssueDraft) -> Result<IssueRef, ForgeError> {
        self.0.create(r, d).await
    }
    async fn comment(&self, i: &IssueRef, b: &str) -> Result<(), ForgeError> {
        self.0.comment(i, b).await
    }
    async fn set_state(
        &self,
        i: &IssueRef,
        s: IssueState,
        r: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        self.0.set_state(i, s, r).await
    }
    async fn add_labels(&self, i: &IssueRef, l: &[String]) -> Result<(), ForgeError> {
        self.0.add_labels(i, l).await
    }
    async fn remove_labels(&self, i: &IssueRef, l: &[String]) -> Result<(), ForgeError> {
        self.0.remove_labels(i, l).await
    }
    async fn list_work_orders(&self, r: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        self.0.list_work_orders(r).await
    }
}

#[tokio::test]
async fn labels_that_cannot_be_made_ahead_do_not_block_the_issue() {
    let rig = rig_with(|d| Arc::new(NoLabelPermission(d)) as Arc<dyn Forge>).await;
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    rig.pipeline.process_at(t(0)).await.unwrap();
    assert_eq!(drain(&rig.pipeline, t(0)).await, [Attempt::Done]);
    assert_eq!(rig.dir.list_work_orders(&local()).await.unwrap().len(), 1);
    assert_eq!(
        rig.pipeline
            .metrics()
            .failure_count("ensure_labels", "permanent"),
        1
    );
}

#[tokio::test]
async fn the_github_forge_reads_label_pages_past_the_first() {
    use support::fake_github::FakeGithub;
    use triage::forge::Pacing;
    use triage::forge::github::{GithubCredentials, GithubForge, GithubSettings};
    let gh = FakeGithub::start().await;
    gh.create_repo("acme/ops");
    // 250 labels already on the repository: three pages of 100.
    let many: Vec<String> = (0..250).map(|i| format!("triage/{i:012x}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    gh.seed_issue("acme/ops", "old", "body", &refs, "closed");
    let forge = GithubForge::new(
        GithubSettings {
            api_url: Some(gh.base_url()),
            credentials: GithubCredentials::Token(Secret::new(gh.token())),
            pacing: Pacing {
                per_second: 50,
                per_minute: 3000,
                per_hour: 100_000,
            },
            request_timeout: Duration::from_secs(5),
        },
        triage::forge::ForgeMetrics::new(),
    )
    .unwrap();
    let repo = RepoRef::parse("acme/ops").unwrap();
    let specs = triage::render::label_specs(
        &["cluster-doctor".to_string(), "priority/P0".to_string()],
        &LabelsConfig::default(),
    );
    forge.ensure_labels(&repo, &specs).await.unwrap();
    let names: Vec<String> = gh.labels("acme/ops").into_iter().map(|l| l.name).collect();
    assert!(
        names.contains(&"cluster-doctor".to_string()) && names.contains(&"priority/P0".to_string())
    );
    assert_eq!(names.len(), 252);
}

#[tokio::test]
async fn undecodable_deliveries_are_set_aside_with_the_reason() {
    let rig = rig().await;
    let d = NewDelivery {
        source: Source::Alertmanager,
        received_at: t(0),
        sender: "token:0".into(),
        request_id: "r".into(),
        body_sha256: "0".repeat(64),
        body: Bytes::from_static(b"{}"),
        signals_json: "[{\"not\": \"a signal\"}]".into(),
        signal_count: 1,
    };
    rig.store.journal.append(d).await.unwrap();
    assert_eq!(rig.pipeline.process_at(t(0)).await.unwrap(), 1);
    assert_eq!(rig.store.journal.stats().await.unwrap().unprocessed, 0);
    let stats = rig.store.work.work_stats(t(0)).await.unwrap();
    assert_eq!(stats.journal_signals, 0, "not counted as accounted for");
}

// ---------------------------------------------------------------------------------------
// Several replicas on one PostgreSQL, in one process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_file_each_work_order_once() {
    let db = TestDb::create("pipeline_ha").await;
    let config = StoreConfig {
        kind: StoreKind::Postgres,
        postgres_url: Some(Secret::new(db.url.clone())),
        postgres_max_connections: 4,
        ..StoreConfig::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(DirForge::open(tmp.path().join("wo")).unwrap());
    let cluster = Arc::new(FakeCluster::new("pets"));
    let workloads: Vec<String> = (0..20).map(|i| format!("svc{i:02}")).collect();
    for w in &workloads {
        cluster.set(w, Tier::Critical, HealthStatus::Red);
    }
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = open_store(&config, JournalMetrics::default())
            .await
            .unwrap();
        let p = Pipeline::new(
            store.work.clone(),
            cluster.clone(),
            dir.clone(),
            Arc::new(PlainRenderer),
            RepoRouter::new(local(), &[], None).unwrap(),
            settings(),
            PipelineMetrics::default(),
        );
        replicas.push((store, p));
    }
    // An Alertmanager HA pair: each notification reaches both replicas (bodies differ
    // in whitespace, so the journal keeps both and the lifecycle sees duplicates).
    for (i, w) in workloads.iter().enumerate() {
        for r in 0..3 {
            let s = crashloop(
                &format!("{i:014x}{r:02x}"),
                &format!("{w}-7d9f-{r:05}"),
                SignalStatus::Firing,
                0,
            );
            journal_at(&replicas[0].0, t(0), std::slice::from_ref(&s)).await;
            journal_at(&replicas[1].0, t(0), &[s]).await;
        }
    }
    let work = |p: Arc<Pipeline>| async move {
        loop {
            let n = p.process_at(t(1)).await.unwrap();
            let d = p.deliver_at(t(1)).await.unwrap();
            if n == 0 && d.is_none() {
                break;
            }
        }
    };
    tokio::join!(work(replicas[0].1.clone()), work(replicas[1].1.clone()));
    let issues = dir.list_work_orders(&local()).await.unwrap();
    assert_eq!(
        issues.len(),
        workloads.len(),
        "exactly one issue per workload"
    );
    let stats = replicas[0].0.work.work_stats(t(2)).await.unwrap();
    assert_eq!(stats.journal_signals, 120);
    assert_eq!(stats.timeline_signals, 120);
    assert_eq!(stats.outbox_pending, 0);
    let dup: u64 = replicas
        .iter()
        .map(|(_, p)| p.metrics().decision_count("ignore"))
        .sum();
    assert_eq!(dup, 60, "the HA twin of every alert is a duplicate");
    drop(replicas);
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------
// triage reconcile

#[tokio::test]
async fn reconcile_rebuilds_the_mapping_after_a_lost_database() {
    let rig = rig().await;
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    rig.cluster.set("shop", Tier::Critical, HealthStatus::Red);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000d1",
            "shop-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(0)).await.unwrap();
    drain(p, t(0)).await;
    // shop recovers and is closed.
    rig.cluster.set_health("shop", HealthStatus::Green);
    p.tick_at(t(60)).await.unwrap();
    p.tick_at(t(1000)).await.unwrap();
    drain(p, t(1000)).await;

    // The database is lost; a new, empty one.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = sqlite_store(&tmp).await;
    let config = triage::config::Config::default();
    let report = triage::commands::reconcile::reconcile(
        &config,
        rig.dir.as_ref(),
        fresh.work.as_ref(),
        t(2000),
    )
    .await
    .unwrap();
    assert_eq!(report.count(triage::store::work::Reconciled::Created), 2);
    let mut out = Vec::new();
    report.print(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("created   local/work-orders#1      open   prod/pets/deployment/cart"),
        "{out}"
    );
    assert!(out.contains("2 work order(s) created"), "{out}");
    let again = triage::commands::reconcile::reconcile(
        &config,
        rig.dir.as_ref(),
        fresh.work.as_ref(),
        t(2001),
    )
    .await
    .unwrap();
    assert_eq!(again.count(triage::store::work::Reconciled::Unchanged), 2);

    let cart = fresh
        .work
        .work_order("prod/pets/deployment/cart")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cart.state.phase, Phase::Open);
    assert_eq!(cart.issue.as_ref().map(|i| i.number), Some(1));
    assert_eq!(
        cart.state.route.as_ref().map(|r| r.action),
        Some(triage::triage::route::Action::Escalate)
    );
    let shop = fresh
        .work
        .work_order("prod/pets/deployment/shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shop.state.phase, Phase::Closed);

    // A pipeline on the rebuilt store goes on with the same issues.
    let p2 = Pipeline::new(
        fresh.work.clone(),
        rig.cluster.clone(),
        rig.dir.clone(),
        Arc::new(PlainRenderer),
        RepoRouter::new(local(), &[], None).unwrap(),
        settings(),
        PipelineMetrics::default(),
    );
    assert_eq!(p2.tick_at(t(2000)).await.unwrap(), 1, "rechecked at once");
    assert_eq!(
        fresh
            .work
            .work_order(&cart.key)
            .await
            .unwrap()
            .unwrap()
            .state
            .phase,
        Phase::Open,
        "still red"
    );
    journal_at(
        &fresh,
        t(2700),
        &[crashloop(
            "00000000000000c2",
            "cart-66b9-bbbbb",
            SignalStatus::Firing,
            2700,
        )],
    )
    .await;
    p2.process_at(t(2700)).await.unwrap();
    assert_eq!(
        drain(&p2, t(2700)).await,
        [Attempt::Done],
        "a comment on issue #1"
    );
    rig.cluster.set_health("cart", HealthStatus::Green);
    p2.tick_at(t(2800)).await.unwrap();
    p2.tick_at(t(3800)).await.unwrap();
    drain(&p2, t(3800)).await;
    let issues = rig.dir.list_work_orders(&local()).await.unwrap();
    assert_eq!(issues.len(), 2, "no new issue");
    assert!(issues.iter().all(|i| i.state == IssueState::Closed));
    // shop fails again long after: a new issue that follows #2.
    rig.cluster.set_health("shop", HealthStatus::Red);
    let later = 2000 + 2 * 86_400;
    journal_at(
        &fresh,
        t(later),
        &[crashloop(
            "00000000000000d2",
            "shop-66b9-bbbbb",
            SignalStatus::Firing,
            later,
        )],
    )
    .await;
    p2.process_at(t(later)).await.unwrap();
    drain(&p2, t(later)).await;
    let shop = fresh.work.work_order(&shop.key).await.unwrap().unwrap();
    assert_eq!(shop.issue.as_ref().map(|i| i.number), Some(3));
    assert_eq!(shop.previous_issue.as_ref().map(|i| i.number), Some(2));
    let text = issue_file(shop.issue.as_ref().unwrap());
    assert!(text.contains("| Follows | #2 "), "{text}");
}

#[test]
fn reconcile_command_runs_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let forge_dir = tmp.path().join("wo");
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = DirForge::open(&forge_dir).unwrap();
            let key = "prod/pets/deployment/cart";
            let label = triage::triage::correlate::WorkOrderKey::from_stored(key).label("triage/");
            dir.create(
                &local(),
                &IssueDraft {
                    title: "cart".into(),
                    body: format!("body\n{}", triage::forge::key_marker(key)),
                    labels: vec!["cluster-doctor".into(), label],
                },
            )
            .await
            .unwrap();
        });
    }
    let config = tmp.path().join("triage.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[forge]\ndir = {:?}\n",
            tmp.path().join("t.db"),
            forge_dir
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["reconcile", "-c"])
        .arg(&config)
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created   local/work-orders#1      open   prod/pets/deployment/cart"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------
// A forge outage: 5xx, then 429 and 403 with retry-after, then recovery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_forge_outage_delays_but_loses_nothing_and_keeps_order() {
    use support::fake_github::{FakeGithub, Fault};
    use triage::forge::Pacing;
    use triage::forge::github::{GithubCredentials, GithubForge, GithubSettings};

    let gh = FakeGithub::start().await;
    gh.create_repo("acme/ops");
    let forge = Arc::new(
        GithubForge::new(
            GithubSettings {
                api_url: Some(gh.base_url()),
                credentials: GithubCredentials::Token(Secret::new(gh.token())),
                pacing: Pacing {
                    per_second: 50,
                    per_minute: 3000,
                    per_hour: 100_000,
                },
                request_timeout: Duration::from_secs(5),
            },
            triage::forge::ForgeMetrics::new(),
        )
        .unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(&tmp).await;
    let cluster = Arc::new(FakeCluster::new("pets"));
    let mut s = settings();
    s.rules = Rules {
        debounce_escalate: Duration::ZERO,
        debounce_warn: Duration::ZERO,
        debounce_inform: Duration::ZERO,
        debounce_log: Duration::ZERO,
        comment_min_interval: Duration::ZERO,
        close_after: Duration::from_millis(400),
        recheck_interval: Duration::from_millis(100),
        ..Rules::default()
    };
    s.retry_initial = Duration::from_millis(20);
    s.retry_max = Duration::from_millis(300);
    let pipeline = Pipeline::new(
        store.work.clone(),
        cluster.clone(),
        forge,
        Arc::new(PlainRenderer),
        RepoRouter::new(RepoRef::parse("acme/ops").unwrap(), &[], None).unwrap(),
        s,
        PipelineMetrics::default(),
    );
    let tasks = tokio_util::task::TaskTracker::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stored = Arc::new(tokio::sync::Notify::new());
    pipeline.spawn(&tasks, shutdown.clone(), stored.clone(), 1);

    // The forge is down from the start.
    gh.set_outage(Some(Fault::Status(502)));
    let workloads = ["cart", "shop", "pay", "auth"];
    for (i, w) in workloads.iter().enumerate() {
        cluster.set(w, Tier::Critical, HealthStatus::Yellow);
        let s = crashloop(
            &format!("{i:016x}"),
            &format!("{w}-66b9-aaaaa"),
            SignalStatus::Firing,
            0,
        );
        journal_at(&store, Timestamp::now(), &[s]).await;
    }
    stored.notify_one();
    let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
    sleep(400).await;
    // Worse (red → escalate P0), then healthy, then closed: all queued behind the outage.
    for w in workloads {
        cluster.set_health(w, HealthStatus::Red);
    }
    sleep(500).await;
    for w in workloads {
        cluster.set_health(w, HealthStatus::Green);
    }
    sleep(1200).await;
    gh.set_outage(Some(Fault::TooManyRequests {
        retry_after_secs: 1,
    }));
    sleep(2500).await;
    gh.set_outage(Some(Fault::SecondaryRateLimit {
        retry_after_secs: 1,
    }));
    sleep(2500).await;
    let before = store.work.work_stats(Timestamp::now()).await.unwrap();
    assert!(before.outbox_pending > 0, "everything waited for the forge");
    assert!(gh.issues("acme/ops").is_empty());
    gh.set_outage(None);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats = store.work.work_stats(Timestamp::now()).await.unwrap();
        let closed = stats
            .work_orders_by_phase
            .get(&Phase::Closed)
            .copied()
            .unwrap_or(0);
        if stats.outbox_pending == 0 && closed == workloads.len() as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered after the outage: {stats:?}"
        );
        sleep(100).await;
    }
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;

    let issues = gh.issues("acme/ops");
    assert_eq!(
        issues.len(),
        workloads.len(),
        "one issue per workload, none twice"
    );
    for issue in &issues {
        assert_eq!(
            (issue.state.as_str(), issue.state_reason.as_deref()),
            ("closed", Some("completed")),
            "{issue:?}"
        );
        assert!(
            issue.labels.contains(&"priority/P0".to_string())
                && issue.labels.contains(&"action/escalate".to_string()),
            "{:?}",
            issue.labels
        );
        assert!(
            !issue.labels.contains(&"priority/P1".to_string()),
            "{:?}",
            issue.labels
        );
        let order: Vec<&str> = issue
            .comments
            .iter()
            .map(|c| {
                if c.contains("**Route changed:**") {
                    "route"
                } else if c.contains("**Recovered.**") {
                    "recovered"
                } else if c.contains("**Closing:**") {
                    "closing"
                } else {
                    "other"
                }
            })
            .collect();
        assert_eq!(
            order,
            ["route", "recovered", "closing"],
            "in decision order: {:?}",
            issue.comments
        );
    }
    let log = gh.request_log();
    let count = |status: u16| log.iter().filter(|r| r.status == status).count();
    assert!(count(502) >= 3, "several 5xx cycles: {}", count(502));
    assert!(count(429) >= 2, "several 429 cycles: {}", count(429));
    assert!(count(403) >= 2, "several 403 cycles: {}", count(403));
    // Rate limits were honoured: no two requests within a 429/403's retry-after.
    let limited: Vec<_> = log
        .iter()
        .filter(|r| r.status == 429 || r.status == 403)
        .collect();
    for pair in limited.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(950),
            "retry-after ignored: {gap:?}"
        );
    }
    let stats = store.work.work_stats(Timestamp::now()).await.unwrap();
    assert_eq!(stats.outbox_parked, 0);
    assert_eq!(pipeline.metrics().failure_count("create", "permanent"), 0);
}

#[tokio::test]
async fn metrics_are_exposed_under_their_documented_names() {
    let rig = rig().await;
    let mut metrics = triage::metrics::Metrics::new();
    rig.pipeline.metrics().register(metrics.registry_mut());
    rig.cluster.set("cart", Tier::Critical, HealthStatus::Red);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000c1",
            "cart-66b9-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(0)).await.unwrap();
    p.refresh_metrics().await;
    let text = metrics.encode();
    for line in [
        "triage_work_orders{state=\"open\"} 1",
        "triage_decisions_total{decision=\"open\"} 1",
        "triage_ignored_signals_total{reason=\"duplicate\"} 1",
        "triage_deliveries_processed_total 2",
        "triage_outbox_depth 1",
        "triage_outbox_parked 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("triage_outbox_oldest_age_seconds "), "{text}");
    drain(p, t(0)).await;
    let text = metrics.encode();
    assert!(
        text.contains("triage_outbox_operations_total{op=\"create\",outcome=\"done\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("triage_outbox_delivery_seconds_count{op=\"create\"} 1"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// With the real enrichment over the example cluster snapshot

#[tokio::test]
async fn the_real_enricher_correlates_argocd_and_crash_loops_into_one_work_order() {
    let mut config = triage::config::Config::default();
    config.kubernetes.snapshot =
        Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/cluster.yaml"));
    let clusters = Arc::new(triage::cluster::Clusters::load_static(&config).unwrap());
    let enricher = Arc::new(triage::triage::enrich::Enricher::new(&config, clusters).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(&tmp).await;
    let dir = Arc::new(DirForge::open(tmp.path().join("wo")).unwrap());
    let p = Pipeline::new(
        store.work.clone(),
        enricher,
        dir.clone(),
        Arc::new(PlainRenderer),
        RepoRouter::new(local(), &[], None).unwrap(),
        settings(),
        PipelineMetrics::default(),
    );
    // The Alertmanager fixture's pods, an Argo CD degraded notification for the app
    // that tracks the Deployment, and a replica mismatch naming the Deployment.
    let mut degraded = argocd(
        SignalKind::Degraded,
        SignalStatus::Firing,
        "store-front",
        "abc",
    );
    degraded.argocd.as_mut().unwrap().destination_server =
        Some("https://kubernetes.default.svc".into());
    degraded.argocd.as_mut().unwrap().destination_namespace = Some("pets".into());
    degraded.argocd.as_mut().unwrap().health_status = Some("Degraded".into());
    journal_at(&store, t(0), &[degraded]).await;
    journal_at(
        &store,
        t(1),
        &[
            crashloop(
                "efcc16dae668ac0f",
                "store-front-7d9f-abc",
                SignalStatus::Firing,
                0,
            ),
            crashloop(
                "26f157d86bb2592c",
                "store-front-7d9f-def",
                SignalStatus::Firing,
                0,
            ),
        ],
    )
    .await;
    journal_at(&store, t(2), &[replica_mismatch("store-front")]).await;
    p.process_at(t(3)).await.unwrap();
    let orders = store.work.work_orders().await.unwrap();
    assert_eq!(
        orders.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["default/pets/deployment/store-front"],
        "one work order for the Deployment"
    );
    let wo = &orders[0];
    // critical (pod template annotation) × red (0 of 2 ready) → escalate P0, at once.
    assert_eq!(wo.state.phase, Phase::Open);
    let route = wo.state.route.as_ref().unwrap();
    assert_eq!(
        (route.action, route.priority),
        (
            triage::triage::route::Action::Escalate,
            Some(triage::triage::route::Priority::P0)
        )
    );
    drain(&p, t(3)).await;
    let issue = store
        .work
        .work_order(&wo.key)
        .await
        .unwrap()
        .unwrap()
        .issue
        .unwrap();
    let text = issue_file(&issue);
    assert!(text.contains("| Owner | `team-storefront` |"), "{text}");
    assert!(
        text.contains("OOMKilled"),
        "evidence from the snapshot: {text}"
    );
    assert!(
        text.contains("[runbook](https://runbooks.example.com/store-front)"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// The real `triage serve`: kill -9 during a storm; two replicas on one PostgreSQL

mod process {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use jiff::Timestamp;
    use rand::Rng as _;
    use triage::config::{Secret, SqliteSync, StoreConfig, StoreKind};
    use triage::metrics::JournalMetrics;
    use triage::store::open_store;

    use super::support::fake_github::FakeGithub;
    use super::support::payloads::{Alert, alertmanager_group};
    use super::support::{AM_TOKEN, TriageProcess, client};

    const REPO: &str = "acme/ops";

    /// A configuration that makes everything happen fast: no debounce, no comment
    /// throttle, quick rechecks, short leases and backoffs, generous forge pacing.
    fn config_text(store: &str, gh: &FakeGithub) -> String {
        format!(
            r#"
{store}
[alertmanager]
token = "{AM_TOKEN}"
rate_limit_per_second = 10000
rate_limit_burst = 10000
[github]
token = "{token}"
repo = "{REPO}"
api_url = "{api}"
per_second = 200
per_minute = 12000
per_hour = 720000
[lifecycle]
debounce_escalate = "0s"
debounce_warn = "0s"
debounce_inform = "0s"
debounce_log = "0s"
comment_min_interval = "0s"
recheck_interval = "500ms"
[forge]
retry_initial = "50ms"
retry_max = "500ms"
lease = "2s"
"#,
            token = gh.token(),
            api = gh.base_url(),
        )
    }

    /// Posts `body` until a replica acknowledges it (2xx), as Alertmanager retries on
    /// transport errors and 5xx. Returns the status.
    async fn deliver(http: &reqwest::Client, base: &Mutex<String>, body: &[u8]) -> u16 {
        loop {
            let url = format!("{}/v1/alertmanager", base.lock().unwrap());
            match http
                .post(&url)
                .bearer_auth(AM_TOKEN)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return r.status().as_u16(),
                Ok(r) if r.status().is_client_error() => panic!(
                    "refused: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Storm bodies: `groups` notifications over `workloads` workloads; every alert a
    /// new instance (new fingerprint or startsAt), a few of them resolved.
    fn storm(workloads: usize, groups: usize) -> Vec<Vec<u8>> {
        let now = Timestamp::now();
        (0..groups)
            .map(|g| {
                let w = g % workloads;
                let name = format!("svc{w:03}");
                let alerts: Vec<Alert> = (0..3)
                    .map(|a| {
                        let alert = Alert::crashloop(
                            "pets",
                            &name,
                            &format!("{name}-7d9f-{a:05}"),
                            &format!("{w:08x}{a:08x}"),
                            now + jiff::SignedDuration::from_secs((g / workloads) as i64),
                        );
                        if (g + a) % 7 == 0 {
                            alert.resolved()
                        } else {
                            alert
                        }
                    })
                    .collect();
                alertmanager_group(&alerts, now)
            })
            .collect()
    }

    async fn wait_drained(
        store: &triage::store::Store,
        what: &str,
    ) -> triage::store::work::WorkStats {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let stats = store.work.work_stats(Timestamp::now()).await.unwrap();
            if stats.unprocessed_deliveries == 0 && stats.outbox_pending == 0 {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what}: not drained: {stats:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Issues per key (from the marker), and the keys seen more than once.
    fn issues_by_key(gh: &FakeGithub) -> (BTreeMap<String, u64>, Vec<String>) {
        let mut by_key = BTreeMap::new();
        let mut duplicates = Vec::new();
        for issue in gh.issues(REPO) {
            let key = triage::forge::parse_key_marker(&issue.body)
                .expect("marker")
                .to_string();
            if by_key.insert(key.clone(), issue.number).is_some() {
                duplicates.push(key);
            }
        }
        (by_key, duplicates)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_a_storm_loses_nothing_and_duplicates_nothing() {
        let gh = FakeGithub::start().await;
        gh.create_repo(REPO);
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("triage.db");
        let config = tmp.path().join("triage.toml");
        std::fs::write(
            &config,
            config_text(
                &format!("[store]\npath = {db:?}\nsynchronous = \"normal\""),
                &gh,
            ),
        )
        .unwrap();

        let first = TriageProcess::start(&config, &[]).await;
        let base = Arc::new(Mutex::new(first.base.clone()));
        let process = Arc::new(Mutex::new(Some(first)));
        let bodies = storm(20, 400);
        let accepted: Arc<Mutex<BTreeSet<Vec<u8>>>> = Arc::default();

        let sender = {
            let (base, accepted, bodies) = (base.clone(), accepted.clone(), bodies.clone());
            tokio::spawn(async move {
                let http = client();
                for body in bodies {
                    deliver(&http, &base, &body).await;
                    accepted.lock().unwrap().insert(body);
                }
            })
        };
        // kill -9 at random points, restart each time.
        let mut kills = 0;
        while !sender.is_finished() || kills < 4 {
            let wait = rand::rng().random_range(300..1200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if let Some(mut p) = process.lock().unwrap().take() {
                p.child.kill().unwrap(); // SIGKILL
                p.child.wait().unwrap();
            }
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rand::rng().random_range(50..300))).await;
            let p = TriageProcess::start(&config, &[]).await;
            *base.lock().unwrap() = p.base.clone();
            *process.lock().unwrap() = Some(p);
            if kills >= 8 {
                break;
            }
        }
        sender.await.unwrap();
        assert!(kills >= 4, "only {kills} kills");

        let store = open_store(
            &StoreConfig {
                kind: StoreKind::Sqlite,
                path: db.clone(),
                synchronous: SqliteSync::Normal,
                ..StoreConfig::default()
            },
            JournalMetrics::default(),
        )
        .await
        .unwrap();
        let stats = wait_drained(&store, "after the storm").await;
        let journal = store.journal.stats().await.unwrap();
        assert_eq!(
            journal.deliveries as usize,
            accepted.lock().unwrap().len(),
            "every acknowledged delivery, once"
        );
        assert_eq!(
            stats.journal_signals, stats.timeline_signals,
            "every signal in exactly one timeline"
        );
        assert_eq!(stats.journal_signals, 3 * 400);
        assert_eq!(stats.outbox_parked, 0);

        let (by_key, duplicates) = issues_by_key(&gh);
        let retried = store
            .work
            .operations(None)
            .await
            .unwrap()
            .iter()
            .filter(|o| o.attempts > 1)
            .count();
        eprintln!(
            "kill -9 storm: {kills} kills, {} deliveries, {} signals, {} issues, {} comments, {} operations ({retried} retried after a crash or failure)",
            journal.deliveries,
            stats.journal_signals,
            by_key.len(),
            gh.issues(REPO)
                .iter()
                .map(|i| i.comments.len())
                .sum::<usize>(),
            stats.outbox_done,
        );
        assert!(duplicates.is_empty(), "duplicate issues for {duplicates:?}");
        assert_eq!(by_key.len(), 20, "one issue per workload: {by_key:?}");
        // No operation lost: every work order with an issue points at a real one, and
        // every comment the store says it made is on that issue (at least once).
        let issues = gh.issues(REPO);
        for wo in store.work.work_orders().await.unwrap() {
            let Some(issue) = &wo.issue else { continue };
            let fake = issues
                .iter()
                .find(|i| i.number == issue.number)
                .expect("issue exists");
            let ops = store.work.operations(Some(wo.id)).await.unwrap();
            let comments = ops
                .iter()
                .filter(|o| {
                    matches!(
                        o.operation,
                        triage::pipeline::plan::Operation::Comment { .. }
                    )
                })
                .count();
            assert!(
                fake.comments.len() >= comments,
                "{}: {} comments on the forge, {comments} done",
                wo.key,
                fake.comments.len()
            );
        }
        drop(process);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_on_one_postgres_file_each_issue_once() {
        let db = super::support::pg::TestDb::create("serve_ha").await;
        let gh = FakeGithub::start().await;
        gh.create_repo(REPO);
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("triage.toml");
        std::fs::write(
            &config,
            config_text(
                &format!("[store]\nkind = \"postgres\"\npostgres_url = {:?}", db.url),
                &gh,
            ),
        )
        .unwrap();
        let a = TriageProcess::start(&config, &[]).await;
        let b = TriageProcess::start(&config, &[]).await;
        let (base_a, base_b) = (Mutex::new(a.base.clone()), Mutex::new(b.base.clone()));
        let http = client();
        let bodies = storm(30, 150);
        // An Alertmanager HA pair: every notification to both replicas at once; every
        // other one differs in formatting, so both journal it and the lifecycle must
        // recognise the duplicate alerts.
        for (i, body) in bodies.iter().enumerate() {
            let twin = if i % 2 == 0 {
                body.clone()
            } else {
                [body.as_slice(), b"\n"].concat()
            };
            tokio::join!(
                deliver(&http, &base_a, body),
                deliver(&http, &base_b, &twin)
            );
        }
        let store = open_store(
            &StoreConfig {
                kind: StoreKind::Postgres,
                postgres_url: Some(Secret::new(db.url.clone())),
                postgres_max_connections: 2,
                ..StoreConfig::default()
            },
            JournalMetrics::default(),
        )
        .await
        .unwrap();
        let stats = wait_drained(&store, "two replicas").await;
        let (by_key, duplicates) = issues_by_key(&gh);
        assert!(duplicates.is_empty(), "duplicate issues for {duplicates:?}");
        assert_eq!(by_key.len(), 30, "exactly one issue per key");
        assert_eq!(stats.journal_signals, stats.timeline_signals);
        assert_eq!(
            store.journal.stats().await.unwrap().deliveries,
            150 + 75,
            "identical twins stored once"
        );
        let mut duplicates = 0;
        for wo in store.work.work_orders().await.unwrap() {
            duplicates += store
                .work
                .timeline(wo.id)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.decision == "ignore")
                .count();
        }
        assert!(
            duplicates >= 75 * 3,
            "the journaled twins' alerts are duplicates: {duplicates}"
        );
        // Both replicas took part.
        for p in [&a, &b] {
            let text = http
                .get(format!("{}/metrics", p.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let processed: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("triage_deliveries_processed_total "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            assert!(
                processed > 0.0,
                "replica {} processed nothing:\n{text}",
                p.base
            );
        }
        drop((a, b, store));
        db.drop_db().await;
    }
}

/// A real GitHub `issues` event (from octocrab's captured payloads), pointed at the work
/// order's issue: the repository, number, body marker and time are set, the rest is as
/// GitHub sent it.
fn github_issue_event(
    name: &str,
    issue: &IssueRef,
    key: &str,
    updated_at: Timestamp,
    label: Option<&str>,
) -> triage::forge::webhook::IssueEvent {
    let mut v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/tests/fixtures/github/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    v["repository"]["full_name"] = issue.repo.to_string().into();
    v["issue"]["number"] = issue.number.into();
    v["issue"]["body"] = format!("work order\n\n<!-- triage:key={key} -->").into();
    v["issue"]["updated_at"] = updated_at.to_string().into();
    if let Some(label) = label {
        v["label"]["name"] = label.into();
    }
    triage::forge::webhook::parse_github_issue_event("issues", &serde_json::to_vec(&v).unwrap())
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_human_closing_muting_and_reopening_the_issue_is_followed() {
    use triage::pipeline::issue_events::IssueEventOutcome;
    let rig = rig().await;
    rig.cluster
        .set("store-front", Tier::Critical, HealthStatus::Red);
    let p = &rig.pipeline;
    journal_at(
        &rig.store,
        t(0),
        &[crashloop(
            "00000000000000a1",
            "store-front-7d9f-aaaaa",
            SignalStatus::Firing,
            0,
        )],
    )
    .await;
    p.process_at(t(1)).await.unwrap();
    assert_eq!(drain(p, t(1)).await, [Attempt::Done]);
    let key = "prod/pets/deployment/store-front";
    let row = rig.store.work.work_order(key).await.unwrap().unwrap();
    let issue = row.issue.clone().unwrap();

    // An issue Triage does not track, and an older issue of the same key: not ours.
    let mut other = issue.clone();
    other.number += 1;
    let outcome = p
        .apply_issue_event(
            &github_issue_event("issues_closed_webhook_event.json", &other, key, t(2), None),
            t(2),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, IssueEventOutcome::NotOurs { .. }),
        "{outcome:?}"
    );
    // A label other than the mute label changes nothing.
    let outcome = p
        .apply_issue_event(
            &github_issue_event("issues_labeled_webhook_event.json", &issue, key, t(2), None),
            t(2),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, IssueEventOutcome::Unchanged { .. }),
        "{outcome:?}"
    );

    // Muted: a new occurrence after the comment interval is counted, not commented.
    let mute = github_issue_event(
        "issues_labeled_webhook_event.json",
        &issue,
        key,
        t(3),
        Some("triage/mute"),
    );
    let outcome = p.apply_issue_event(&mute, t(3)).await.unwrap();
    assert!(
        matches!(&outcome, IssueEventOutcome::Applied { decisions, .. } if decisions[0].kind() == "mute"),
        "{outcome:?}"
    );
    journal_at(
        &rig.store,
        t(700),
        &[crashloop(
            "00000000000000a2",
            "store-front-7d9f-bbbbb",
            SignalStatus::Firing,
            690,
        )],
    )
    .await;
    p.process_at(t(700)).await.unwrap();
    assert_eq!(drain(p, t(700)).await, [], "muted: no comment");
    let row = rig.store.work.work_order(key).await.unwrap().unwrap();
    let timeline = rig.store.work.timeline(row.id).await.unwrap();
    assert_eq!(
        timeline
            .iter()
            .map(|e| e.decision.as_str())
            .collect::<Vec<_>>(),
        ["open", "mute", "throttle"]
    );
    assert!(
        timeline[2].detail.to_string().contains("muted"),
        "{:?}",
        timeline[2]
    );
    // The same label event again (a redelivery) changes nothing.
    assert!(matches!(
        p.apply_issue_event(&mute, t(701)).await.unwrap(),
        IssueEventOutcome::Unchanged { .. }
    ));

    // A close from before Triage opened the issue is stale; a human's close now counts.
    let stale = github_issue_event("issues_closed_webhook_event.json", &issue, key, t(0), None);
    assert!(matches!(
        p.apply_issue_event(&stale, t(702)).await.unwrap(),
        IssueEventOutcome::Unchanged { .. }
    ));
    let closed = github_issue_event(
        "issues_closed_webhook_event.json",
        &issue,
        key,
        t(702),
        None,
    );
    let outcome = p.apply_issue_event(&closed, t(702)).await.unwrap();
    assert!(
        matches!(&outcome, IssueEventOutcome::Applied { decisions, .. } if decisions[0].kind() == "human_close"),
        "{outcome:?}"
    );
    let row = rig.store.work.work_order(key).await.unwrap().unwrap();
    assert_eq!(row.state.phase, Phase::Closed);
    assert_eq!(
        row.state.next_check, None,
        "no rechecks of a closed work order"
    );
    // Triage's own close echoing back later changes nothing either.
    assert!(matches!(
        p.apply_issue_event(&closed, t(703)).await.unwrap(),
        IssueEventOutcome::Unchanged { .. }
    ));

    // A human reopens it: open again, held open — the recovered comment does not
    // promise a close and the quiet period does not close it.
    let reopened = github_issue_event(
        "issues_closed_webhook_event.json",
        &issue,
        key,
        t(800),
        None,
    );
    let mut reopened = reopened;
    reopened.action = triage::forge::webhook::IssueAction::Reopened;
    let outcome = p.apply_issue_event(&reopened, t(800)).await.unwrap();
    assert!(
        matches!(&outcome, IssueEventOutcome::Applied { decisions, .. } if decisions[0].kind() == "human_reopen"),
        "{outcome:?}"
    );
    let row = rig.store.work.work_order(key).await.unwrap().unwrap();
    assert_eq!(row.state.phase, Phase::Open);
    assert!(row.state.held_open && row.state.muted);
    rig.cluster.set_health("store-front", HealthStatus::Green);
    p.tick_at(t(900)).await.unwrap();
    p.tick_at(t(900 + 2000)).await.unwrap();
    let row = rig.store.work.work_order(key).await.unwrap().unwrap();
    assert_eq!(
        row.state.phase,
        Phase::Resolved,
        "held open: recovered, not closed"
    );
    assert_eq!(drain(p, t(2900)).await, [], "muted: no recovered comment");
}
