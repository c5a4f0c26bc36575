//! The store suite: the same tests against SQLite and against the real PostgreSQL.

mod support;

use std::time::Duration;

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use triage::config::{Secret, SqliteSync, StoreConfig, StoreKind};
use triage::forge::{FoundIssue, IssueRef, IssueState, RepoRef};
use triage::metrics::JournalMetrics;
use triage::pipeline::plan::Operation;
use triage::signal::{Signal, SignalKind, SignalStatus, Source};
use triage::store::work::{
    OperationStatus, Reconciled, TimelineEntry, WorkOrderKeyRef, WorkOrderRow,
};
use triage::store::{Appended, DeliveryId, NewDelivery, Store, open_store};
use triage::triage::lifecycle::{Decision, Phase, State};

use support::pg::TestDb;
use support::signals::{alert, argocd};

struct Harness {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    db: Option<TestDb>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            kind: StoreKind::Sqlite,
            path: dir.path().join("triage.db"),
            synchronous: SqliteSync::Normal,
            ..StoreConfig::default()
        };
        Harness {
            store: open_store(&config, JournalMetrics::default())
                .await
                .unwrap(),
            _dir: Some(dir),
            db: None,
        }
    }

    async fn postgres(tag: &str) -> Harness {
        let db = TestDb::create(tag).await;
        let store = open_store(&pg_config(&db), JournalMetrics::default())
            .await
            .unwrap();
        Harness {
            store,
            _dir: None,
            db: Some(db),
        }
    }

    async fn finish(self) {
        let Harness { store, db, .. } = self;
        let _ = store.journal.close().await;
        drop(store);
        if let Some(db) = db {
            db.drop_db().await;
        }
    }
}

fn pg_config(db: &TestDb) -> StoreConfig {
    StoreConfig {
        kind: StoreKind::Postgres,
        postgres_url: Some(Secret::new(db.url.clone())),
        postgres_max_connections: 4,
        ..StoreConfig::default()
    }
}

/// Runs `$name(&Harness)` against both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let h = super::Harness::sqlite().await;
                super::$name(&h).await;
                h.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let h = super::Harness::postgres(stringify!($name)).await;
                super::$name(&h).await;
                h.finish().await;
            }
        }
    };
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_790_000_000).unwrap() + SignedDuration::from_secs(secs)
}

async fn journal(h: &Harness, body: &str, signals: &[Signal]) -> DeliveryId {
    let d = NewDelivery::new(
        Source::Alertmanager,
        Timestamp::now(),
        "token:0".into(),
        format!("req-{body}"),
        Bytes::from(body.to_string()),
        signals,
    )
    .unwrap();
    match h.store.journal.append(d).await.unwrap() {
        Appended::Stored(id) => id,
        other => panic!("{other:?}"),
    }
}

fn key(k: &str) -> WorkOrderKeyRef {
    WorkOrderKeyRef {
        key: k.to_string(),
        key_label: format!("triage/{}", &k.len()),
    }
}

fn comment(body: &str) -> Operation {
    Operation::Comment {
        body: body.to_string(),
    }
}

fn issue(n: u64) -> IssueRef {
    IssueRef {
        repo: RepoRef::parse("acme/ops").unwrap(),
        number: n,
        url: format!("https://forge/acme/ops/issues/{n}"),
    }
}

fn entry(wo: &WorkOrderRow, signal: Option<(DeliveryId, u32)>, at: Timestamp) -> TimelineEntry {
    TimelineEntry {
        work_order_id: wo.id,
        signal,
        at,
        decisions: vec![Decision::Wait { deadline: t(60) }],
        detail: serde_json::json!({"title": "KubePodCrashLooping"}),
    }
}

// ---------------------------------------------------------------------------------------

async fn transaction_commits_everything_or_nothing(h: &Harness) {
    let s1 = alert(
        "KubePodCrashLooping",
        "00000000000000a1",
        "pets",
        "a",
        SignalStatus::Firing,
        t(0),
    );
    let s2 = alert(
        "KubePodCrashLooping",
        "00000000000000a2",
        "pets",
        "b",
        SignalStatus::Firing,
        t(0),
    );
    let s3 = argocd(SignalKind::Degraded, SignalStatus::Firing, "shop", "abc");
    let d1 = journal(h, "one", &[s1, s2]).await;
    let d2 = journal(h, "two", &[s3]).await;

    for commit in [false, true] {
        let mut tx = h.store.work.begin().await.unwrap();
        let claimed = tx.claim_deliveries(10).await.unwrap();
        assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [d1, d2]);
        assert_eq!(claimed[0].signals().unwrap().len(), 2);
        let rows = tx
            .lock_work_orders(
                &[
                    key("prod/shop/app"),
                    key("prod/pets/deployment/a"),
                    key("prod/shop/app"),
                ],
                t(1),
            )
            .await
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["prod/pets/deployment/a", "prod/shop/app"],
            "deduplicated, key order"
        );
        assert!(
            rows.iter()
                .all(|r| r.state.phase == Phase::Quiet && r.issue.is_none())
        );
        let mut pets = rows[0].clone();
        pets.state.phase = Phase::Pending;
        pets.state.next_check = Some(t(60));
        tx.save_work_order(&pets, t(1)).await.unwrap();
        tx.append_timeline(&[
            entry(&pets, Some((d1, 0)), t(1)),
            entry(&pets, Some((d1, 1)), t(1)),
            entry(&rows[1], Some((d2, 0)), t(1)),
        ])
        .await
        .unwrap();
        tx.enqueue(pets.id, &[comment("first"), comment("second")], t(1))
            .await
            .unwrap();
        tx.mark_processed(&[d1, d2], t(1)).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            drop(tx);
            // Rolled back: nothing happened.
            assert!(h.store.work.work_orders().await.unwrap().is_empty());
            assert_eq!(h.store.journal.stats().await.unwrap().unprocessed, 2);
            assert!(h.store.work.operations(None).await.unwrap().is_empty());
        }
    }

    let pets = h
        .store
        .work
        .work_order("prod/pets/deployment/a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pets.state.phase, Phase::Pending);
    assert_eq!(pets.state.next_check, Some(t(60)));
    let timeline = h.store.work.timeline(pets.id).await.unwrap();
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[0].signal, Some((d1, 0)));
    assert_eq!(timeline[0].decision, "wait");
    assert_eq!(timeline[0].detail["signal"]["title"], "KubePodCrashLooping");
    let ops = h.store.work.operations(Some(pets.id)).await.unwrap();
    assert_eq!(
        ops.iter().map(|o| &o.operation).collect::<Vec<_>>(),
        [&comment("first"), &comment("second")]
    );
    assert!(
        ops.iter()
            .all(|o| o.status == OperationStatus::Pending && o.attempts == 0)
    );

    let stats = h.store.work.work_stats(t(2)).await.unwrap();
    assert_eq!(stats.journal_signals, 3);
    assert_eq!(stats.timeline_signals, 3);
    assert_eq!(stats.unprocessed_deliveries, 0);
    assert_eq!(stats.outbox_pending, 2);
    assert_eq!(stats.work_orders_by_phase.get(&Phase::Pending), Some(&1));
    assert_eq!(stats.work_orders_by_phase.get(&Phase::Quiet), Some(&1));
    let gauges = h.store.work.gauge_stats().await.unwrap();
    assert_eq!(gauges.work_orders_by_phase, stats.work_orders_by_phase);
    assert_eq!(
        (gauges.outbox_pending, gauges.oldest_pending),
        (2, stats.oldest_pending)
    );

    // Nothing left to claim.
    let mut tx = h.store.work.begin().await.unwrap();
    assert!(tx.claim_deliveries(10).await.unwrap().is_empty());
}
both!(transaction_commits_everything_or_nothing);

async fn every_signal_lands_in_the_timeline_once(h: &Harness) {
    let d = journal(
        h,
        "one",
        &[argocd(
            SignalKind::Degraded,
            SignalStatus::Firing,
            "shop",
            "a",
        )],
    )
    .await;
    let mut tx = h.store.work.begin().await.unwrap();
    let rows = tx
        .lock_work_orders(&[key("k1"), key("k2")], t(0))
        .await
        .unwrap();
    tx.append_timeline(&[entry(&rows[0], Some((d, 0)), t(0))])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = h.store.work.begin().await.unwrap();
    let err = tx
        .append_timeline(&[entry(&rows[1], Some((d, 0)), t(1))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timeline"), "{err}");
    drop(tx);
    // Scheduler entries (no signal) may repeat freely.
    let mut tx = h.store.work.begin().await.unwrap();
    tx.append_timeline(&[entry(&rows[0], None, t(2)), entry(&rows[0], None, t(3))])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(h.store.work.timeline(rows[0].id).await.unwrap().len(), 3);
}
both!(every_signal_lands_in_the_timeline_once);

async fn outbox_runs_in_order_per_work_order(h: &Harness) {
    let lease = Duration::from_secs(30);
    let mut tx = h.store.work.begin().await.unwrap();
    let rows = tx
        .lock_work_orders(&[key("a"), key("b")], t(0))
        .await
        .unwrap();
    let (a, b) = (rows[0].id, rows[1].id);
    tx.enqueue(a, &[comment("a1"), comment("a2"), comment("a3")], t(0))
        .await
        .unwrap();
    tx.enqueue(b, &[comment("b1")], t(0)).await.unwrap();
    tx.commit().await.unwrap();
    let w = &h.store.work;

    let a1 = w.claim_operation(t(0), lease).await.unwrap().unwrap();
    assert_eq!(
        (a1.key.as_str(), &a1.operation, a1.attempts),
        ("a", &comment("a1"), 1)
    );
    assert_eq!(a1.issue, None);
    // a2 waits for a1; b1 is free.
    let b1 = w.claim_operation(t(0), lease).await.unwrap().unwrap();
    assert_eq!(b1.operation, comment("b1"));
    assert!(w.claim_operation(t(0), lease).await.unwrap().is_none());

    // A transient failure: retried after its backoff, not before.
    w.retry_operation(a1.id, t(10), "HTTP 502").await.unwrap();
    assert!(w.claim_operation(t(5), lease).await.unwrap().is_none());
    assert_eq!(
        w.next_operation_due().await.unwrap(),
        Some(t(10)),
        "a1 due before b1's lease ends"
    );
    let again = w.claim_operation(t(11), lease).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (a1.id, 2));
    let ops = w.operations(Some(a)).await.unwrap();
    assert_eq!(ops[0].last_error.as_deref(), Some("HTTP 502"));

    // Done with an issue: the work order now points at it.
    w.complete_operation(a1.id, t(12), Some(&issue(1)))
        .await
        .unwrap();
    assert_eq!(
        w.work_order("a").await.unwrap().unwrap().issue,
        Some(issue(1))
    );
    let a2 = w.claim_operation(t(12), lease).await.unwrap().unwrap();
    assert_eq!(
        (a2.operation.clone(), a2.issue.clone()),
        (comment("a2"), Some(issue(1)))
    );
    // A permanent failure parks it, visibly, and does not block what follows.
    w.park_operation(a2.id, t(13), "HTTP 422: body too long")
        .await
        .unwrap();
    let a3 = w.claim_operation(t(13), lease).await.unwrap().unwrap();
    assert_eq!(a3.operation, comment("a3"));
    w.complete_operation(a3.id, t(14), None).await.unwrap();

    // A worker that died: its lease runs out and the operation is taken over.
    assert!(w.claim_operation(t(20), lease).await.unwrap().is_none());
    let taken = w.claim_operation(t(31), lease).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (b1.id, 2));
    // A later create replaces the issue; the old one becomes the previous.
    w.complete_operation(taken.id, t(32), Some(&issue(1)))
        .await
        .unwrap();
    let mut tx = h.store.work.begin().await.unwrap();
    tx.enqueue(a, &[comment("a4")], t(33)).await.unwrap();
    tx.commit().await.unwrap();
    let a4 = w.claim_operation(t(33), lease).await.unwrap().unwrap();
    w.complete_operation(a4.id, t(34), Some(&issue(5)))
        .await
        .unwrap();
    let row = w.work_order("a").await.unwrap().unwrap();
    assert_eq!(
        (row.issue, row.previous_issue),
        (Some(issue(5)), Some(issue(1)))
    );

    let ops = w.operations(None).await.unwrap();
    let parked: Vec<_> = ops
        .iter()
        .filter(|o| o.status == OperationStatus::Parked)
        .collect();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].last_error.as_deref(),
        Some("HTTP 422: body too long")
    );
    let stats = w.work_stats(t(40)).await.unwrap();
    assert_eq!(
        (stats.outbox_pending, stats.outbox_parked, stats.outbox_done),
        (0, 1, 4)
    );
    assert_eq!(stats.oldest_pending, None);
    assert_eq!(w.next_operation_due().await.unwrap(), None);
}
both!(outbox_runs_in_order_per_work_order);

async fn due_work_orders_come_back_in_deadline_order(h: &Harness) {
    let mut tx = h.store.work.begin().await.unwrap();
    let mut rows = tx
        .lock_work_orders(&[key("x"), key("y"), key("z")], t(0))
        .await
        .unwrap();
    for (row, due) in rows.iter_mut().zip([Some(t(50)), Some(t(10)), None]) {
        row.state.phase = Phase::Pending;
        row.state.next_check = due;
        tx.save_work_order(row, t(0)).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(h.store.work.next_check_due().await.unwrap(), Some(t(10)));
    let mut tx = h.store.work.begin().await.unwrap();
    assert!(tx.lock_due_work_orders(t(5), 10).await.unwrap().is_empty());
    let due = tx.lock_due_work_orders(t(60), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["y", "x"]
    );
}
both!(due_work_orders_come_back_in_deadline_order);

async fn reconcile_maps_forge_issues_to_keys(h: &Harness) {
    let found = |n: u64, k: &str| FoundIssue {
        issue: issue(n),
        state: IssueState::Open,
        labels: vec![],
        key: k.to_string(),
    };
    let mut initial = State::new();
    initial.phase = Phase::Open;
    initial.next_check = Some(t(0));
    let w = &h.store.work;
    assert_eq!(
        w.reconcile_issue(&found(3, "k"), "triage/k", &initial, t(0))
            .await
            .unwrap(),
        Reconciled::Created
    );
    assert_eq!(
        w.reconcile_issue(&found(3, "k"), "triage/k", &initial, t(0))
            .await
            .unwrap(),
        Reconciled::Unchanged
    );
    assert_eq!(
        w.reconcile_issue(&found(2, "k"), "triage/k", &initial, t(0))
            .await
            .unwrap(),
        Reconciled::Unchanged
    );
    assert_eq!(
        w.reconcile_issue(&found(7, "k"), "triage/k", &initial, t(0))
            .await
            .unwrap(),
        Reconciled::Mapped
    );
    let row = w.work_order("k").await.unwrap().unwrap();
    assert_eq!(
        (row.issue, row.previous_issue),
        (Some(issue(7)), Some(issue(3)))
    );
    assert_eq!(row.state.phase, Phase::Open);
    assert_eq!(row.key_label, "triage/k");
    // An existing work order without an issue gets mapped.
    let mut tx = h.store.work.begin().await.unwrap();
    tx.lock_work_orders(&[key("fresh")], t(0)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        w.reconcile_issue(&found(9, "fresh"), "triage/f", &initial, t(0))
            .await
            .unwrap(),
        Reconciled::Mapped
    );
    let fresh = w.work_order("fresh").await.unwrap().unwrap();
    assert_eq!(fresh.issue, Some(issue(9)));
    assert_eq!(fresh.state.phase, Phase::Quiet, "its own state is kept");
}
both!(reconcile_maps_forge_issues_to_keys);

// ---------------------------------------------------------------------------------------
// PostgreSQL with several replicas

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_share_deliveries_and_serialize_on_a_key() {
    let db = TestDb::create("replicas").await;
    let one = open_store(&pg_config(&db), JournalMetrics::default())
        .await
        .unwrap();
    let two = open_store(&pg_config(&db), JournalMetrics::default())
        .await
        .unwrap();
    let h = Harness {
        store: one.clone(),
        _dir: None,
        db: None,
    };
    for i in 0..10 {
        journal(
            &h,
            &format!("d{i}"),
            &[argocd(
                SignalKind::Degraded,
                SignalStatus::Firing,
                "shop",
                &format!("{i}"),
            )],
        )
        .await;
    }
    let mut tx1 = one.work.begin().await.unwrap();
    let mut tx2 = two.work.begin().await.unwrap();
    let first: Vec<i64> = tx1
        .claim_deliveries(6)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.0)
        .collect();
    let second: Vec<i64> = tx2
        .claim_deliveries(6)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.0)
        .collect();
    assert_eq!(first.len(), 6);
    assert_eq!(second.len(), 4, "skips what the other replica holds");
    assert!(first.iter().all(|id| !second.contains(id)));

    // Both want the same work order: the second waits for the first and sees its write.
    let mut rows = tx1
        .lock_work_orders(&[key("prod/pets/deployment/a")], t(0))
        .await
        .unwrap();
    rows[0].state.phase = Phase::Pending;
    tx1.save_work_order(&rows[0], t(0)).await.unwrap();
    let waiter = tokio::spawn(async move {
        let rows = tx2
            .lock_work_orders(&[key("prod/pets/deployment/a")], t(0))
            .await
            .unwrap();
        tx2.commit().await.unwrap();
        rows
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the second replica must wait for the row lock"
    );
    tx1.commit().await.unwrap();
    let seen = waiter.await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].state.phase,
        Phase::Pending,
        "sees the first replica's decision"
    );
    assert_eq!(
        one.work.work_orders().await.unwrap().len(),
        1,
        "one row per key"
    );

    // Two replicas leasing operations never get the same one.
    let mut tx = one.work.begin().await.unwrap();
    let rows = tx
        .lock_work_orders(&[key("a"), key("b"), key("c")], t(0))
        .await
        .unwrap();
    for r in &rows {
        tx.enqueue(r.id, &[comment("x"), comment("y")], t(0))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let (w1, w2) = (one.work.clone(), two.work.clone());
    let claims = futures::future::join_all((0..6).map(|i| {
        let w = if i % 2 == 0 { w1.clone() } else { w2.clone() };
        async move {
            w.claim_operation(t(0), Duration::from_secs(60))
                .await
                .unwrap()
        }
    }))
    .await;
    let claimed: Vec<i64> = claims
        .into_iter()
        .flatten()
        .map(|c| c.work_order_id)
        .collect();
    let mut distinct = claimed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        claimed.len(),
        3,
        "only the head of each work order: {claimed:?}"
    );
    assert_eq!(distinct.len(), 3);
    drop((one, two, h));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_journal_stores_a_delivery_posted_to_two_replicas_once() {
    let db = TestDb::create("dedup").await;
    let one = open_store(&pg_config(&db), JournalMetrics::default())
        .await
        .unwrap();
    let two = open_store(&pg_config(&db), JournalMetrics::default())
        .await
        .unwrap();
    let now = Timestamp::now();
    let make = || {
        NewDelivery::new(
            Source::Alertmanager,
            now,
            "token:0".into(),
            "r".into(),
            Bytes::from_static(b"{\"same\":1}"),
            &[],
        )
        .unwrap()
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let j = if i % 2 == 0 {
            one.journal.clone()
        } else {
            two.journal.clone()
        };
        let d = make();
        tasks.push(tokio::spawn(async move { j.append(d).await.unwrap() }));
    }
    let mut stored = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Appended::Stored(_)) {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(one.journal.stats().await.unwrap().deliveries, 1);
    one.journal.check_writable().await.unwrap();
    one.journal.close().await.unwrap();
    assert!(one.journal.check_writable().await.is_err());
    drop((one, two));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_journal_waits_for_a_pipeline_transaction() {
    let h = Harness::sqlite().await;
    let mut tx = h.store.work.begin().await.unwrap();
    tx.lock_work_orders(&[key("k")], t(0)).await.unwrap();
    let journal = h.store.journal.clone();
    let append = tokio::spawn(async move {
        let d = NewDelivery::new(
            Source::Argocd,
            Timestamp::now(),
            "t".into(),
            "r".into(),
            Bytes::from_static(b"x"),
            &[],
        )
        .unwrap();
        journal.append(d).await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!append.is_finished(), "the pipeline holds the write lock");
    tx.commit().await.unwrap();
    assert!(matches!(append.await.unwrap(), Appended::Stored(_)));
    h.finish().await;
}
