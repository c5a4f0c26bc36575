//! State-machine tests: every transition, driven with an injected clock.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use pretty_assertions::assert_eq;

use super::*;
use crate::signal::{AlertDetail, AlertGroup, WorkloadKind};
use crate::triage::context::{AppRef, ClusterInfo, Health, Replicas, Tier, WorkloadRef};
use crate::triage::route::Priority;

const T0: &str = "2026-11-23T16:00:00Z";

fn t(secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(secs)
}

fn rules() -> Rules {
    Rules::default()
}

fn route(action: Action, priority: Option<Priority>, status: HealthStatus) -> Route {
    Route {
        action,
        priority,
        status,
        tier: Tier::Standard,
        reason: format!("{action} {status:?}"),
    }
}

fn warn() -> Route {
    route(Action::Warn, Some(Priority::P1), HealthStatus::Yellow)
}

fn escalate() -> Route {
    route(Action::Escalate, Some(Priority::P0), HealthStatus::Red)
}

fn observe() -> Route {
    route(Action::Observe, None, HealthStatus::Yellow)
}

fn store_front() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "pets".into(),
        name: "store-front".into(),
    }
}

/// A context whose snapshot says `health` about the Deployment (`None`: no health known).
fn ctx(health: Option<HealthStatus>) -> Context {
    let mut c = Context::unknown(ClusterInfo {
        name: "prod".into(),
        state: SnapshotState::Synced,
    });
    c.workload = Some(store_front());
    c.health = health.map(|status| Health {
        status,
        reason: format!("{status:?}"),
        since: None,
        replicas: Replicas::default(),
    });
    c
}

fn unknown_ctx() -> Context {
    Context::unknown(ClusterInfo {
        name: "prod".into(),
        state: SnapshotState::Synced,
    })
}

fn app_ctx(health: &str, sync: &str) -> Context {
    let mut c = unknown_ctx();
    c.app = Some(AppRef {
        namespace: Some("argocd".into()),
        name: "store-front".into(),
        health: Some(health.into()),
        sync: Some(sync.into()),
        operation_phase: None,
    });
    c
}

fn alert(name: &str, fingerprint: &str, pod: &str, status: SignalStatus, started: i64) -> Signal {
    alert_truncated(name, fingerprint, pod, status, started, 0)
}

fn alert_truncated(
    name: &str,
    fingerprint: &str,
    pod: &str,
    status: SignalStatus,
    started: i64,
    truncated: u64,
) -> Signal {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), name.to_string());
    labels.insert("namespace".to_string(), "pets".to_string());
    labels.insert("pod".to_string(), pod.to_string());
    Signal {
        source: Source::Alertmanager,
        kind: SignalKind::Alert,
        status,
        subject: Subject::Pod {
            namespace: "pets".into(),
            name: pod.into(),
        },
        cluster: None,
        title: name.into(),
        message: Some(format!("{pod} is failing")),
        started_at: Some(t(started)),
        ended_at: None,
        labels,
        annotations: BTreeMap::new(),
        alert: Some(AlertDetail {
            name: name.into(),
            fingerprint: fingerprint.into(),
            generator_url: None,
            group: AlertGroup {
                group_key: "{}:{alertname=\"x\"}".into(),
                receiver: "triage".into(),
                status,
                group_labels: BTreeMap::new(),
                common_labels: BTreeMap::new(),
                common_annotations: BTreeMap::new(),
                external_url: None,
                truncated_alerts: truncated,
            },
        }),
        argocd: None,
    }
}

fn crashloop(fp: &str, pod: &str, started: i64) -> Signal {
    alert(
        "KubePodCrashLooping",
        fp,
        pod,
        SignalStatus::Firing,
        started,
    )
}

fn crashloop_resolved(fp: &str, pod: &str, started: i64) -> Signal {
    alert(
        "KubePodCrashLooping",
        fp,
        pod,
        SignalStatus::Resolved,
        started,
    )
}

/// An alert the snapshot cannot observe (error rate).
fn errors(status: SignalStatus, started: i64) -> Signal {
    alert(
        "HighErrorRate",
        "00000000000000e1",
        "store-front-1",
        status,
        started,
    )
}

fn argocd(kind: SignalKind, status: SignalStatus, revision: &str) -> Signal {
    Signal {
        source: Source::Argocd,
        kind,
        status,
        subject: Subject::Application {
            namespace: Some("argocd".into()),
            name: "store-front".into(),
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
            app: "store-front".into(),
            app_namespace: Some("argocd".into()),
            revision: Some(revision.into()),
            ..ArgocdDetail::default()
        }),
    }
}

/// Feeds a signal received at `at`, processed at `at`.
fn feed(
    state: &mut State,
    signal: &Signal,
    context: &Context,
    route: &Route,
    at: Timestamp,
) -> Vec<Decision> {
    feed_with(state, signal, context, route, at, &rules())
}

fn feed_with(
    state: &mut State,
    signal: &Signal,
    context: &Context,
    route: &Route,
    at: Timestamp,
    rules: &Rules,
) -> Vec<Decision> {
    state.on_signal(
        Observation {
            signal,
            context,
            route,
            received_at: at,
        },
        rules,
        at,
    )
}

fn tick(state: &mut State, context: &Context, route: &Route, at: Timestamp) -> Vec<Decision> {
    state.on_tick(context, route, &rules(), at)
}

/// A work order opened at t=60 by a crash loop (warn, 60 s debounce) on a red workload.
fn opened() -> State {
    let mut s = State::new();
    feed(
        &mut s,
        &crashloop("00000000000000a1", "store-front-a", 0),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    let d = tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(60));
    assert_eq!(
        d,
        vec![Decision::Open {
            follows_previous: false
        }]
    );
    s
}

/// `opened()`, recovered at t=600 (snapshot green).
fn resolved() -> State {
    let mut s = opened();
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(600)),
        vec![Decision::Resolve]
    );
    s
}

/// `resolved()`, closed after the 15 min quiet period.
fn closed() -> State {
    let mut s = resolved();
    assert_eq!(
        tick(
            &mut s,
            &ctx(Some(HealthStatus::Green)),
            &warn(),
            t(600 + 900)
        ),
        vec![Decision::Close]
    );
    assert_eq!(s.phase, Phase::Closed);
    s
}

// ---- quiet → pending → open / suppress ------------------------------------------------

#[test]
fn firing_starts_a_debounce_per_action() {
    for (action, secs) in [
        (Action::Warn, 60),
        (Action::Inform, 120),
        (Action::Log, 300),
    ] {
        let mut s = State::new();
        let r = route(action, Some(Priority::P2), HealthStatus::Red);
        let d = feed(
            &mut s,
            &crashloop("00000000000000a1", "p", 0),
            &ctx(Some(HealthStatus::Red)),
            &r,
            t(0),
        );
        assert_eq!(d, vec![Decision::Wait { deadline: t(secs) }], "{action}");
        assert_eq!(s.phase, Phase::Pending);
        assert_eq!(s.next_check, Some(t(secs)));
        assert_eq!(s.route, None, "no issue yet");
    }
}

#[test]
fn tick_before_the_deadline_does_nothing() {
    let mut s = State::new();
    feed(
        &mut s,
        &crashloop("00000000000000a1", "p", 0),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(59)),
        vec![]
    );
    assert_eq!(s.phase, Phase::Pending);
}

#[test]
fn deadline_opens_when_the_snapshot_still_fails() {
    let s = opened();
    assert_eq!(s.phase, Phase::Open);
    assert_eq!(s.route, Some(warn()));
    assert_eq!(s.opened_at, Some(t(60)));
    assert_eq!(s.issues_opened, 1);
    assert_eq!(s.next_check, Some(t(120)), "recheck after recheck_interval");
}

#[test]
fn escalate_opens_at_once() {
    let mut s = State::new();
    let d = feed(
        &mut s,
        &crashloop("00000000000000a1", "p", 0),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(0),
    );
    assert_eq!(
        d,
        vec![Decision::Open {
            follows_previous: false
        }]
    );
    assert_eq!(s.phase, Phase::Open);
}

#[test]
fn a_backlog_past_its_deadline_is_judged_at_once() {
    // Received at t=0, processed at t=600 (after a restart): the window is over.
    let mut s = State::new();
    let d = s.on_signal(
        Observation {
            signal: &crashloop("00000000000000a1", "p", 0),
            context: &ctx(Some(HealthStatus::Red)),
            route: &warn(),
            received_at: t(0),
        },
        &rules(),
        t(600),
    );
    assert_eq!(
        d,
        vec![Decision::Open {
            follows_previous: false
        }]
    );
}

#[test]
fn resolve_inside_the_window_is_a_suppressed_transient() {
    let mut s = State::new();
    feed(
        &mut s,
        &errors(SignalStatus::Firing, 0),
        &unknown_ctx(),
        &warn(),
        t(0),
    );
    let d = feed(
        &mut s,
        &errors(SignalStatus::Resolved, 0),
        &unknown_ctx(),
        &warn(),
        t(30),
    );
    assert_eq!(d, vec![Decision::Suppress]);
    assert_eq!(s.phase, Phase::Quiet);
    assert_eq!(s.suppressed, 1);
    assert_eq!(s.next_check, None);
    // Nothing left to open at the old deadline.
    assert_eq!(tick(&mut s, &unknown_ctx(), &warn(), t(60)), vec![]);
}

#[test]
fn healed_snapshot_at_the_deadline_suppresses_without_a_resolve_message() {
    // The crash loop still "fires" in Alertmanager, but the Deployment is all ready.
    let mut s = State::new();
    feed(
        &mut s,
        &crashloop("00000000000000a1", "p", 0),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    let d = tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(60));
    assert_eq!(d, vec![Decision::Suppress]);
    assert_eq!(s.phase, Phase::Quiet);
    assert_eq!(s.suppressed, 1);
}

#[test]
fn argocd_degraded_is_judged_by_the_snapshot_at_the_deadline() {
    // Argo CD never says "healthy again": only the snapshot can end it.
    let mut s = State::new();
    let degraded = argocd(SignalKind::Degraded, SignalStatus::Firing, "abc");
    feed(
        &mut s,
        &degraded,
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(60)),
        vec![Decision::Suppress]
    );

    let mut s = State::new();
    feed(
        &mut s,
        &degraded,
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(60)),
        vec![Decision::Open {
            follows_previous: false
        }]
    );
}

#[test]
fn the_snapshot_cannot_clear_what_it_cannot_see() {
    // An error-rate alert on a workload whose replicas are all ready: the snapshot is
    // green throughout, so only Alertmanager can end it.
    let mut s = State::new();
    feed(
        &mut s,
        &errors(SignalStatus::Firing, 0),
        &ctx(Some(HealthStatus::Green)),
        &warn(),
        t(0),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(60)),
        vec![Decision::Open {
            follows_previous: false
        }]
    );
    // But if it fired while the workload was red, a green snapshot does end it.
    let mut s = State::new();
    feed(
        &mut s,
        &errors(SignalStatus::Firing, 0),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(60)),
        vec![Decision::Suppress]
    );
}

#[test]
fn an_untrusted_snapshot_changes_nothing() {
    let mut unreachable = ctx(Some(HealthStatus::Green));
    unreachable.cluster.state = SnapshotState::Unreachable;
    let mut s = State::new();
    feed(
        &mut s,
        &crashloop("00000000000000a1", "p", 0),
        &unreachable,
        &warn(),
        t(0),
    );
    assert_eq!(
        tick(&mut s, &unreachable, &warn(), t(60)),
        vec![Decision::Open {
            follows_previous: false
        }],
        "a still-firing alert with no trustworthy snapshot opens"
    );
}

#[test]
fn a_sooner_route_shortens_the_debounce() {
    let mut s = State::new();
    feed(
        &mut s,
        &crashloop("00000000000000a1", "a", 0),
        &ctx(Some(HealthStatus::Yellow)),
        &route(Action::Log, Some(Priority::P2), HealthStatus::Yellow),
        t(0),
    );
    assert_eq!(s.deadline, Some(t(300)));
    let d = feed(
        &mut s,
        &crashloop("00000000000000a2", "b", 5),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(10),
    );
    assert_eq!(d, vec![Decision::Wait { deadline: t(60) }]);
    let d = feed(
        &mut s,
        &crashloop("00000000000000a3", "c", 5),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(20),
    );
    assert_eq!(
        d,
        vec![Decision::Open {
            follows_previous: false
        }]
    );
    assert_eq!(
        s.route,
        Some(escalate()),
        "the issue carries the most urgent route"
    );
    assert_eq!(s.occurrences, 3);
}

// ---- ignore ---------------------------------------------------------------------------

#[test]
fn observe_route_ignored_workload_and_informational_are_ignored() {
    let mut s = State::new();
    let d = feed(
        &mut s,
        &crashloop("00000000000000a1", "p", 0),
        &ctx(Some(HealthStatus::Yellow)),
        &observe(),
        t(0),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::Observe
        }]
    );
    assert_eq!(s.phase, Phase::Quiet);

    let mut ignored = ctx(Some(HealthStatus::Red));
    ignored.ignored = true;
    let d = feed(
        &mut s,
        &crashloop("00000000000000a2", "p", 0),
        &ignored,
        &escalate(),
        t(1),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::IgnoredWorkload
        }]
    );
    assert_eq!(s.phase, Phase::Quiet);
    assert!(
        !s.series.contains_key("alert:00000000000000a2"),
        "an ignored workload leaves no trace"
    );

    let running = argocd(SignalKind::Informational, SignalStatus::Firing, "abc");
    let d = feed(
        &mut s,
        &running,
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(2),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::Informational
        }]
    );
    assert_eq!(s.phase, Phase::Quiet);
}

#[test]
fn duplicates_are_ignored() {
    let mut s = opened();
    let again = crashloop("00000000000000a1", "store-front-a", 0);
    let d = feed(
        &mut s,
        &again,
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(2000),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::Duplicate
        }]
    );
    assert_eq!(s.occurrences, 1);

    let mut s = State::new();
    let degraded = argocd(SignalKind::Degraded, SignalStatus::Firing, "abc");
    feed(
        &mut s,
        &degraded,
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(0),
    );
    let d = feed(
        &mut s,
        &degraded,
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(1),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::Duplicate
        }]
    );
    // A new revision is a new observation.
    let d = feed(
        &mut s,
        &argocd(SignalKind::Degraded, SignalStatus::Firing, "def"),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(2),
    );
    assert_eq!(d, vec![Decision::Wait { deadline: t(60) }]);
}

#[test]
fn a_late_firing_for_a_resolved_alert_instance_is_stale() {
    // Processed out of order (two replicas, a retry): resolved, then the older firing.
    let mut s = opened();
    let d = feed(
        &mut s,
        &crashloop_resolved("00000000000000a1", "store-front-a", 0),
        &ctx(Some(HealthStatus::Green)),
        &warn(),
        t(100),
    );
    assert_eq!(d, vec![Decision::Resolve]);
    let d = feed(
        &mut s,
        &crashloop("00000000000000a1", "store-front-a", 0),
        &ctx(Some(HealthStatus::Green)),
        &warn(),
        t(101),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::Duplicate
        }]
    );
    assert_eq!(s.phase, Phase::Resolved);
    // The same alert firing again (a new startsAt) is news.
    let d = feed(
        &mut s,
        &crashloop("00000000000000a1", "store-front-a", 500),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(600),
    );
    assert!(
        matches!(
            d[..],
            [Decision::Comment {
                reason: CommentReason::Relapse,
                ..
            }]
        ),
        "{d:?}"
    );
}

#[test]
fn never_create_on_resolve() {
    let mut s = State::new();
    let d = feed(
        &mut s,
        &crashloop_resolved("00000000000000a1", "p", 0),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(0),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::NothingOpen
        }]
    );
    assert_eq!(s.phase, Phase::Quiet);
    let d = feed(
        &mut s,
        &argocd(SignalKind::Recovered, SignalStatus::Resolved, "abc"),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(1),
    );
    assert_eq!(
        d,
        vec![Decision::Ignore {
            reason: IgnoreReason::NothingOpen
        }]
    );
    assert_eq!(s.phase, Phase::Quiet);
}

// ---- open: repeats, throttling, route changes ----------------------------------------

#[test]
fn repeats_become_throttled_comments_with_a_counter() {
    let mut s = opened();
    let red = ctx(Some(HealthStatus::Red));
    // Within comment_min_interval (10 min) of the opening: counted, not commented.
    let d = feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", 100),
        &red,
        &warn(),
        t(200),
    );
    assert_eq!(
        d,
        vec![Decision::Throttle {
            reason: ThrottleReason::Interval
        }]
    );
    let d = feed(
        &mut s,
        &crashloop("00000000000000c1", "store-front-c", 100),
        &red,
        &warn(),
        t(300),
    );
    assert_eq!(
        d,
        vec![Decision::Throttle {
            reason: ThrottleReason::Interval
        }]
    );
    // After it: a comment that says how many happened since the last one.
    let d = feed(
        &mut s,
        &crashloop("00000000000000d1", "store-front-d", 600),
        &red,
        &warn(),
        t(700),
    );
    assert_eq!(
        d,
        vec![Decision::Comment {
            reason: CommentReason::Repeat,
            occurrences: 4,
            since_last: 3
        }]
    );
    assert_eq!(s.last_comment_at, Some(t(700)));
}

#[test]
fn identical_repeats_are_suppressed_even_after_the_interval() {
    let mut s = opened();
    let red = ctx(Some(HealthStatus::Red));
    // The same pod's alert restarting (new startsAt): same text as the opening.
    let d = feed(
        &mut s,
        &crashloop("00000000000000a1", "store-front-a", 1000),
        &red,
        &warn(),
        t(5000),
    );
    assert_eq!(
        d,
        vec![Decision::Throttle {
            reason: ThrottleReason::Identical
        }]
    );
    assert_eq!(s.occurrences, 2);
}

#[test]
fn route_upgrade_relabels_and_says_so_downgrade_does_not() {
    let mut s = opened();
    let d = feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", 100),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(100),
    );
    assert_eq!(
        d,
        vec![Decision::RouteChange {
            from: warn(),
            to: escalate()
        }]
    );
    assert_eq!(s.route, Some(escalate()));
    // Back to yellow/warn: the issue keeps P0 for this episode.
    let d = feed(
        &mut s,
        &crashloop("00000000000000c1", "store-front-c", 100),
        &ctx(Some(HealthStatus::Yellow)),
        &warn(),
        t(2000),
    );
    assert_eq!(
        d,
        vec![Decision::Comment {
            reason: CommentReason::Repeat,
            occurrences: 3,
            since_last: 1
        }]
    );
    assert_eq!(s.route, Some(escalate()));
}

#[test]
fn status_worsening_with_the_same_labels_is_a_route_change() {
    let mut s = opened();
    let red_warn = route(Action::Warn, Some(Priority::P1), HealthStatus::Red);
    let d = tick(&mut s, &ctx(Some(HealthStatus::Red)), &red_warn, t(120));
    assert_eq!(
        d,
        vec![Decision::RouteChange {
            from: warn(),
            to: red_warn.clone()
        }]
    );
    assert!(!route_labels_differ(&warn(), &red_warn));
}

// ---- open → resolved → closed ----------------------------------------------------------

#[test]
fn partial_resolve_keeps_the_work_order_open() {
    // Three pods firing, one resolved: still failing (no snapshot to say otherwise).
    let unknown = unknown_ctx();
    let mut s = State::new();
    for (fp, pod) in [
        ("00000000000000a1", "a"),
        ("00000000000000a2", "b"),
        ("00000000000000a3", "c"),
    ] {
        feed(&mut s, &crashloop(fp, pod, 0), &unknown, &escalate(), t(0));
    }
    assert_eq!(s.phase, Phase::Open);
    let d = feed(
        &mut s,
        &crashloop_resolved("00000000000000a1", "a", 0),
        &unknown,
        &escalate(),
        t(100),
    );
    assert_eq!(d, vec![Decision::Record]);
    assert_eq!(s.phase, Phase::Open);
    feed(
        &mut s,
        &crashloop_resolved("00000000000000a2", "b", 0),
        &unknown,
        &escalate(),
        t(110),
    );
    let d = feed(
        &mut s,
        &crashloop_resolved("00000000000000a3", "c", 0),
        &unknown,
        &escalate(),
        t(120),
    );
    assert_eq!(d, vec![Decision::Resolve], "all firing alerts resolved");
    assert_eq!(s.phase, Phase::Resolved);
    assert_eq!(s.resolved_at, Some(t(120)));
    assert_eq!(
        s.next_check,
        Some(t(180)),
        "recheck before the close at t(1020)"
    );
}

#[test]
fn resolved_alerts_on_a_still_red_workload_keep_it_open_until_the_snapshot_heals() {
    let mut s = opened();
    let d = feed(
        &mut s,
        &crashloop_resolved("00000000000000a1", "store-front-a", 0),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(100),
    );
    assert_eq!(d, vec![Decision::Record]);
    assert_eq!(s.phase, Phase::Open);
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(160)),
        vec![]
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(220)),
        vec![Decision::Resolve]
    );
}

#[test]
fn truncated_groups_never_resolve_by_message_alone() {
    let unknown = unknown_ctx();
    let mut s = State::new();
    let fire = alert_truncated(
        "KubePodCrashLooping",
        "00000000000000a1",
        "a",
        SignalStatus::Firing,
        0,
        3,
    );
    feed(&mut s, &fire, &unknown, &escalate(), t(0));
    assert_eq!(s.phase, Phase::Open);
    let res = alert_truncated(
        "KubePodCrashLooping",
        "00000000000000a1",
        "a",
        SignalStatus::Resolved,
        0,
        3,
    );
    assert_eq!(
        feed(&mut s, &res, &unknown, &escalate(), t(100)),
        vec![Decision::Record]
    );
    assert_eq!(
        s.phase,
        Phase::Open,
        "alerts dropped by max_alerts may still fire"
    );
    // A complete notification (nothing truncated) that resolves ends it.
    let complete = alert(
        "KubePodCrashLooping",
        "00000000000000a2",
        "b",
        SignalStatus::Resolved,
        0,
    );
    assert_eq!(
        feed(&mut s, &complete, &unknown, &escalate(), t(200)),
        vec![Decision::Resolve]
    );

    // And a healthy snapshot is enough even when truncated.
    let mut s = State::new();
    feed(
        &mut s,
        &fire,
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(0),
    );
    feed(
        &mut s,
        &res,
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(100),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &escalate(), t(160)),
        vec![Decision::Resolve]
    );
}

#[test]
fn argocd_open_work_order_recovers_from_the_snapshot_alone() {
    let mut s = State::new();
    feed(
        &mut s,
        &argocd(SignalKind::Degraded, SignalStatus::Firing, "abc"),
        &app_ctx("Degraded", "Synced"),
        &escalate(),
        t(0),
    );
    assert_eq!(s.phase, Phase::Open);
    assert_eq!(
        tick(
            &mut s,
            &app_ctx("Progressing", "Synced"),
            &escalate(),
            t(60)
        ),
        vec![]
    );
    assert_eq!(
        tick(&mut s, &app_ctx("Healthy", "Synced"), &escalate(), t(120)),
        vec![Decision::Resolve]
    );
}

#[test]
fn argocd_sync_failure_is_not_cleared_by_a_healthy_workload() {
    let mut s = State::new();
    let failed = argocd(SignalKind::SyncFailed, SignalStatus::Firing, "abc");
    let mut c = ctx(Some(HealthStatus::Green));
    c.app = Some(AppRef {
        namespace: None,
        name: "store-front".into(),
        health: Some("Healthy".into()),
        sync: Some("OutOfSync".into()),
        operation_phase: None,
    });
    feed(&mut s, &failed, &c, &escalate(), t(0));
    assert_eq!(
        s.phase,
        Phase::Open,
        "the old version running fine is no deployment"
    );
    assert_eq!(tick(&mut s, &c, &escalate(), t(60)), vec![]);
    c.app.as_mut().unwrap().sync = Some("Synced".into());
    assert_eq!(
        tick(&mut s, &c, &escalate(), t(120)),
        vec![Decision::Resolve]
    );

    // `on-deployed` ends it too, with no snapshot at all.
    let mut s = State::new();
    feed(&mut s, &failed, &unknown_ctx(), &escalate(), t(0));
    let d = feed(
        &mut s,
        &argocd(SignalKind::Recovered, SignalStatus::Resolved, "def"),
        &unknown_ctx(),
        &escalate(),
        t(30),
    );
    assert_eq!(d, vec![Decision::Resolve]);
}

#[test]
fn quiet_period_closes_when_auto_close() {
    let mut s = resolved();
    assert_eq!(s.next_check, Some(t(660)));
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(1499)),
        vec![]
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &warn(), t(1500)),
        vec![Decision::Close]
    );
    assert_eq!(s.phase, Phase::Closed);
    assert_eq!(s.closed_at, Some(t(1500)));
    assert_eq!(s.next_check, None);
}

#[test]
fn without_auto_close_the_issue_waits_for_a_human() {
    let manual = Rules {
        auto_close: false,
        ..rules()
    };
    let mut s = opened();
    assert_eq!(
        s.on_tick(&ctx(Some(HealthStatus::Green)), &warn(), &manual, t(600)),
        vec![Decision::Resolve]
    );
    assert_eq!(
        s.on_tick(
            &ctx(Some(HealthStatus::Green)),
            &warn(),
            &manual,
            t(100_000)
        ),
        vec![]
    );
    assert_eq!(s.phase, Phase::Resolved);
    assert_eq!(
        s.next_check,
        Some(t(100_060)),
        "still rechecked for a relapse"
    );
}

#[test]
fn relapse_during_the_quiet_period_comments_and_reopens_the_work_order() {
    let mut s = resolved();
    let d = feed(
        &mut s,
        &errors(SignalStatus::Firing, 700),
        &ctx(Some(HealthStatus::Green)),
        &warn(),
        t(700),
    );
    assert_eq!(
        d,
        vec![Decision::Comment {
            reason: CommentReason::Relapse,
            occurrences: 2,
            since_last: 1
        }]
    );
    assert_eq!(s.phase, Phase::Open);
    assert_eq!(s.resolved_at, None);

    // Seen by the snapshot only.
    let mut s = resolved();
    let d = tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(700));
    assert!(
        matches!(
            d[..],
            [Decision::Comment {
                reason: CommentReason::Relapse,
                ..
            }]
        ),
        "{d:?}"
    );
    assert_eq!(s.phase, Phase::Open);
}

#[test]
fn a_healed_crash_loop_renotified_during_the_quiet_period_is_recorded_only() {
    let mut s = resolved();
    let d = feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", 650),
        &ctx(Some(HealthStatus::Green)),
        &warn(),
        t(700),
    );
    assert_eq!(d, vec![Decision::Record]);
    assert_eq!(s.phase, Phase::Resolved);
}

// ---- closed → reopen / new issue ------------------------------------------------------

#[test]
fn failure_back_within_the_reopen_window_reopens_the_same_issue() {
    let mut s = closed();
    let d = feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", 2000),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(2000),
    );
    assert_eq!(
        d,
        vec![Decision::Wait { deadline: t(2060) }],
        "a reopen is debounced too"
    );
    assert!(s.reopen_candidate);
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(2060)),
        vec![Decision::Reopen]
    );
    assert_eq!(s.phase, Phase::Open);
    assert_eq!(s.issues_opened, 1);
    assert_eq!(s.occurrences, 2, "the counter continues on the same issue");
}

#[test]
fn reopen_carries_the_current_route() {
    let mut s = closed();
    feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", 2000),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(2000),
    );
    let d = s.on_signal(
        Observation {
            signal: &crashloop("00000000000000b2", "store-front-c", 2000),
            context: &ctx(Some(HealthStatus::Red)),
            route: &escalate(),
            received_at: t(2001),
        },
        &rules(),
        t(2001),
    );
    // Escalate has no debounce, so the first signal already reopened.
    assert_eq!(
        d,
        vec![Decision::Throttle {
            reason: ThrottleReason::Interval
        }]
    );
    let mut s = closed();
    let d = feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", 2000),
        &ctx(Some(HealthStatus::Red)),
        &escalate(),
        t(2000),
    );
    assert_eq!(
        d,
        vec![
            Decision::Reopen,
            Decision::RouteChange {
                from: warn(),
                to: escalate()
            }
        ]
    );
    assert_eq!(s.route, Some(escalate()));
}

#[test]
fn failure_back_after_the_window_opens_a_new_issue_that_follows_the_old() {
    let mut s = closed();
    let later = 1500 + 24 * 3600 + 1;
    feed(
        &mut s,
        &crashloop("00000000000000b1", "store-front-b", later),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(later),
    );
    assert!(!s.reopen_candidate);
    let d = tick(
        &mut s,
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(later + 60),
    );
    assert_eq!(
        d,
        vec![Decision::Open {
            follows_previous: true
        }]
    );
    assert_eq!(s.issues_opened, 2);
    assert_eq!(s.occurrences, 1, "a new issue counts afresh");
}

#[test]
fn a_transient_after_closing_leaves_the_work_order_closed() {
    let mut s = closed();
    feed(
        &mut s,
        &errors(SignalStatus::Firing, 2000),
        &unknown_ctx(),
        &warn(),
        t(2000),
    );
    let d = feed(
        &mut s,
        &errors(SignalStatus::Resolved, 2000),
        &unknown_ctx(),
        &warn(),
        t(2010),
    );
    assert_eq!(d, vec![Decision::Suppress]);
    assert_eq!(s.phase, Phase::Closed);
    assert_eq!(s.closed_at, Some(t(1500)));
}

// ---- reconciled from the forge --------------------------------------------------------

#[test]
fn a_reconciled_open_issue_closes_only_when_the_snapshot_is_healthy() {
    let probe = probe_for_key("prod/pets/deployment/store-front").unwrap();
    assert_eq!(
        probe.subject,
        Subject::Workload {
            kind: WorkloadKind::Deployment,
            namespace: "pets".into(),
            name: "store-front".into()
        }
    );
    assert_eq!(probe.cluster.as_deref(), Some("prod"));
    let mut s = State::reconciled(true, Some(escalate()), Some(probe), t(0));
    assert_eq!((s.phase, s.next_check), (Phase::Open, Some(t(0))));
    assert_eq!(
        tick(&mut s, &unknown_ctx(), &escalate(), t(0)),
        vec![],
        "no snapshot: stays open"
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Red)), &escalate(), t(60)),
        vec![]
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Green)), &escalate(), t(120)),
        vec![Decision::Resolve]
    );

    // A closed one: the next failure opens a new issue that follows it.
    let mut s = State::reconciled(false, None, None, t(0));
    assert_eq!(s.phase, Phase::Closed);
    feed(
        &mut s,
        &crashloop("00000000000000a1", "p", 10),
        &ctx(Some(HealthStatus::Red)),
        &warn(),
        t(10),
    );
    assert_eq!(
        tick(&mut s, &ctx(Some(HealthStatus::Red)), &warn(), t(70)),
        vec![Decision::Open {
            follows_previous: true
        }]
    );

    assert!(probe_for_key("prod/pets/alert/KubePodCrashLooping/container=x").is_none());
    let app = probe_for_key("prod/argocd/application/shop").unwrap();
    assert_eq!(
        app.subject,
        Subject::Application {
            namespace: Some("argocd".into()),
            name: "shop".into()
        }
    );
}

// ---- helpers --------------------------------------------------------------------------

#[test]
fn urgency_ordering() {
    assert!(is_more_urgent(&escalate(), Some(&warn())));
    assert!(!is_more_urgent(&warn(), Some(&escalate())));
    assert!(!is_more_urgent(&warn(), Some(&warn())));
    assert!(is_more_urgent(&warn(), None));
    let p2 = route(Action::Log, Some(Priority::P2), HealthStatus::Red);
    let p1 = route(Action::Inform, Some(Priority::P1), HealthStatus::Red);
    assert!(is_more_urgent(&p1, Some(&p2)));
}

#[test]
fn probe_widens_the_subject_to_the_workload() {
    let s = opened();
    let probe = s.probe().unwrap();
    assert_eq!(
        probe.subject,
        Subject::Workload {
            kind: WorkloadKind::Deployment,
            namespace: "pets".into(),
            name: "store-front".into()
        }
    );
    assert!(State::new().probe().is_none());
}

#[test]
fn state_round_trips_through_json() {
    let s = resolved();
    let json = serde_json::to_string(&s).unwrap();
    let back: State = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let _ = Duration::ZERO;
}

#[test]
fn a_crash_loop_through_many_pods_keeps_the_state_bounded() {
    // Days of crash-looping pods: each pod is a new alert that never resolves.
    let mut s = opened();
    let red = ctx(Some(HealthStatus::Red));
    for i in 0..(SERIES_MAX as i64 + 300) {
        feed(
            &mut s,
            &crashloop(
                &format!("{i:016x}"),
                &format!("store-front-7d9f-{i}"),
                100 + i,
            ),
            &red,
            &warn(),
            t(100 + i),
        );
    }
    assert!(s.series.len() <= SERIES_MAX, "{}", s.series.len());
    let newest = format!("{:016x}", SERIES_MAX as i64 + 299);
    assert!(
        s.series.keys().any(|k| k.contains(&newest)),
        "the newest alert is kept"
    );
    assert!(s.failing(&red), "still failing after the trim");
    assert_eq!(s.phase, Phase::Open);
}
