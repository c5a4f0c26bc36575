//! Sample work orders and comment events that exercise every field a template can read.
//!
//! The template renderer renders every template against these at start, so a user's
//! template that names an unknown field, or that breaks on a missing value, fails then
//! — with its file and line — and not on the first real failure at 3 a.m. The rich
//! sample has every optional value set and every list non-empty; the sparse one has
//! nothing that can be missing.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::CommentEvent;
use crate::forge::{IssueRef, RepoRef};
use crate::signal::{
    AlertDetail, AlertGroup, AppCondition, AppResource, AppSource, ArgocdDetail, Signal,
    SignalKind, SignalStatus, Source, Subject, SyncResource, WorkloadKind,
};
use crate::triage::context::{
    Annotations, AppRef, ClusterInfo, ConditionEvidence, ContainerEvidence, Context, Dependency,
    DependencyResolution, EventGroup, Evidence, Health, HealthStatus, PodEvidence, Replicas,
    SnapshotState, Tier, WorkloadRef,
};
use crate::triage::lifecycle::{Phase, SeriesKind};
use crate::triage::route::{Action, Priority, Route};
use crate::triage::workorder::{Links, SCHEMA_VERSION, SeriesSummary, SignalSummary, WorkOrder};

fn t(s: &str) -> Timestamp {
    // Constant, valid RFC 3339 literals only.
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn route(action: Action, priority: Priority, status: HealthStatus) -> Route {
    Route {
        action,
        priority: Some(priority),
        status,
        tier: Tier::Critical,
        reason: format!(
            "critical tier, {} (0 of 2 replicas ready) → {action} {priority}",
            status.as_str()
        ),
    }
}

fn workload() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "pets".into(),
        name: "store-front".into(),
    }
}

fn app() -> AppRef {
    AppRef {
        namespace: Some("argocd".into()),
        name: "store-front".into(),
        health: Some("Degraded".into()),
        sync: Some("OutOfSync".into()),
        operation_phase: Some("Failed".into()),
    }
}

fn argocd_detail() -> ArgocdDetail {
    ArgocdDetail {
        app: "store-front".into(),
        app_namespace: Some("argocd".into()),
        project: Some("pets".into()),
        trigger: Some("on-sync-failed".into()),
        sync_status: Some("OutOfSync".into()),
        health_status: Some("Degraded".into()),
        health_message: Some("Deployment \"store-front\" exceeded its progress deadline".into()),
        operation_phase: Some("Failed".into()),
        operation_message: Some("one or more objects failed to apply".into()),
        revision: Some("4f1c2e9".into()),
        sources: vec![AppSource {
            repo_url: Some("https://github.com/example/pets-gitops.git".into()),
            path: Some("apps/store-front".into()),
            target_revision: Some("main".into()),
            chart: Some("store-front".into()),
        }],
        destination_server: Some("https://kubernetes.default.svc".into()),
        destination_name: Some("in-cluster".into()),
        destination_namespace: Some("pets".into()),
        sync_result: vec![SyncResource {
            group: Some("apps".into()),
            version: Some("v1".into()),
            kind: "Deployment".into(),
            namespace: Some("pets".into()),
            name: "store-front".into(),
            status: Some("SyncFailed".into()),
            message: Some("Deployment.apps \"store-front\" is invalid".into()),
            hook_phase: Some("Failed".into()),
            sync_phase: Some("Sync".into()),
        }],
        conditions: vec![AppCondition {
            kind: "SyncError".into(),
            message: Some("Failed sync attempt to 4f1c2e9".into()),
            last_transition_time: Some(t("2026-11-23T16:00:00Z")),
        }],
        resources: vec![AppResource {
            group: Some("apps".into()),
            version: Some("v1".into()),
            kind: "Deployment".into(),
            namespace: Some("pets".into()),
            name: "store-front".into(),
            status: Some("OutOfSync".into()),
            health_status: Some("Degraded".into()),
            health_message: Some("exceeded its progress deadline".into()),
        }],
        argocd_url: Some("https://argocd.example.com".into()),
        compat: false,
        repaired: false,
    }
}

fn context() -> Context {
    Context {
        cluster: ClusterInfo {
            name: "prod".into(),
            state: SnapshotState::Synced,
        },
        workload: Some(workload()),
        app: Some(app()),
        ignored: false,
        annotations: Annotations {
            owner: Some("team-storefront".into()),
            oncall: Some("@storefront-oncall".into()),
            tier: Some(Tier::Critical),
            tier_raw: Some("critical".into()),
            gitops_repo: Some("https://github.com/example/pets-gitops".into()),
            gitops_path: Some("apps/store-front".into()),
            runbook: Some("https://runbooks.example.com/store-front".into()),
            dashboard: Some("https://grafana.example.com/d/store-front".into()),
            depends_on: vec!["orders-db".into()],
        },
        health: Some(Health {
            status: HealthStatus::Red,
            reason: "0 of 2 replicas ready".into(),
            since: Some(t("2026-11-23T15:58:02Z")),
            replicas: Replicas {
                desired: 2,
                ready: 0,
                updated: 2,
                available: 0,
                unavailable: 2,
            },
        }),
        evidence: Evidence {
            pods: vec![PodEvidence {
                name: "store-front-7d9f-abc".into(),
                node: Some("node-1".into()),
                phase: Some("Running".into()),
                ready: false,
                containers: vec![ContainerEvidence {
                    name: "store-front".into(),
                    ready: false,
                    restart_count: 12,
                    waiting_reason: Some("CrashLoopBackOff".into()),
                    waiting_message: Some("back-off 5m0s restarting failed container".into()),
                    last_termination_reason: Some("OOMKilled".into()),
                    last_exit_code: Some(137),
                    last_finished_at: Some(t("2026-11-23T16:09:58Z")),
                }],
            }],
            events: vec![EventGroup {
                reason: "BackOff".into(),
                count: 40,
                last_seen: Some(t("2026-11-23T16:10:30Z")),
                message: Some("Back-off restarting failed container".into()),
                objects: vec!["Pod/store-front-7d9f-abc".into()],
            }],
            conditions: vec![ConditionEvidence {
                kind: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"store-front-7d9f\" has timed out progressing.".into()),
                last_transition_time: Some(t("2026-11-23T16:00:12Z")),
            }],
        },
        dependencies: vec![
            Dependency {
                name: "orders-db".into(),
                resolution: DependencyResolution::Resolved,
                workload: Some(WorkloadRef {
                    kind: WorkloadKind::StatefulSet,
                    namespace: "data".into(),
                    name: "orders-db".into(),
                }),
                health: Some(HealthStatus::Red),
                reason: Some("0 of 3 replicas ready".into()),
            },
            Dependency {
                name: "cache".into(),
                resolution: DependencyResolution::Ambiguous(vec![
                    "a/deployment/cache".into(),
                    "b/deployment/cache".into(),
                ]),
                workload: None,
                health: None,
                reason: None,
            },
        ],
        likely_cause: Some(
            "upstream data/statefulset/orders-db is red: 0 of 3 replicas ready".into(),
        ),
        notes: vec!["cluster prod: static snapshot".into()],
    }
}

fn series() -> SeriesSummary {
    SeriesSummary {
        kind: SeriesKind::Alert,
        source: Source::Alertmanager,
        title: "KubePodCrashLooping".into(),
        subject: "pod pets/store-front-7d9f-abc".into(),
        status: "firing".into(),
        message: Some("Pod pets/store-front-7d9f-abc is crash looping.".into()),
        started_at: Some(t("2026-11-23T16:10:38Z")),
        first_seen: t("2026-11-23T16:10:40Z"),
        last_seen: t("2026-11-23T16:12:40Z"),
        occurrences: 3,
        generator_url: Some("http://prometheus:9090/graph?g0.expr=up".into()),
        labels: map(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "pets"),
            ("pod", "store-front-7d9f-abc"),
        ]),
    }
}

fn issue(number: u64) -> IssueRef {
    IssueRef {
        repo: RepoRef {
            owner: "example".into(),
            name: "ops".into(),
        },
        number,
        url: format!("https://github.com/example/ops/issues/{number}"),
    }
}

/// Every optional value set, every list non-empty.
pub fn rich() -> WorkOrder {
    WorkOrder {
        schema: SCHEMA_VERSION,
        key: "prod/pets/deployment/store-front".into(),
        key_label: "triage/3f9a0c1e22b4".into(),
        state: Phase::Open,
        route: Some(route(Action::Escalate, Priority::P0, HealthStatus::Red)),
        cluster: Some("prod".into()),
        workload: Some(workload()),
        app: Some(app()),
        context: Some(context()),
        signals: SignalSummary {
            sources: vec![Source::Alertmanager, Source::Argocd],
            kinds: vec![SignalKind::Alert, SignalKind::SyncFailed],
            first_seen: Some(t("2026-11-23T16:10:40Z")),
            last_seen: Some(t("2026-11-23T16:12:40Z")),
            occurrences: 4,
            active: 2,
            total_series: 2,
            suppressed_transients: 1,
        },
        series: vec![series()],
        argocd: Some(argocd_detail()),
        links: Links {
            argocd_app: Some("https://argocd.example.com/applications/argocd/store-front".into()),
            alert_generators: vec!["http://prometheus:9090/graph?g0.expr=up".into()],
            silence: Some("http://alertmanager:9093/#/silences/new?filter=%7B%7D".into()),
            runbook: Some("https://runbooks.example.com/store-front".into()),
            dashboard: Some("https://grafana.example.com/d/store-front".into()),
            previous_issue: Some("https://github.com/example/ops/issues/41".into()),
        },
        issue: Some(issue(42)),
        previous_issue: Some(issue(41)),
        opened_at: Some(t("2026-11-23T16:10:40Z")),
        resolved_at: Some(t("2026-11-23T16:30:00Z")),
        closed_at: Some(t("2026-11-23T17:00:00Z")),
    }
}

/// Nothing that can be missing is there.
pub fn sparse() -> WorkOrder {
    WorkOrder {
        schema: SCHEMA_VERSION,
        key: "default/_cluster/alert/Watchdog".into(),
        key_label: "triage/000000000000".into(),
        state: Phase::Open,
        route: None,
        cluster: None,
        workload: None,
        app: None,
        context: None,
        signals: SignalSummary {
            sources: Vec::new(),
            kinds: Vec::new(),
            first_seen: None,
            last_seen: None,
            occurrences: 0,
            active: 0,
            total_series: 0,
            suppressed_transients: 0,
        },
        series: Vec::new(),
        argocd: None,
        links: Links::default(),
        issue: None,
        previous_issue: None,
        opened_at: None,
        resolved_at: None,
        closed_at: None,
    }
}

/// A context-less work order with an empty-but-present context (a signal about a
/// cluster Triage does not know).
pub fn unknown_context() -> WorkOrder {
    let mut wo = sparse();
    wo.context = Some(Context::unknown(ClusterInfo {
        name: "elsewhere".into(),
        state: SnapshotState::UnknownCluster,
    }));
    wo.route = Some(Route {
        action: Action::Log,
        priority: None,
        status: HealthStatus::Yellow,
        tier: Tier::Standard,
        reason: "x".into(),
    });
    wo
}

fn alert_signal() -> Signal {
    Signal {
        source: Source::Alertmanager,
        kind: SignalKind::Alert,
        status: SignalStatus::Firing,
        subject: Subject::Pod {
            namespace: "pets".into(),
            name: "store-front-7d9f-abc".into(),
        },
        cluster: Some("prod".into()),
        title: "KubePodCrashLooping".into(),
        message: Some("Pod pets/store-front-7d9f-abc is crash looping.".into()),
        started_at: Some(t("2026-11-23T16:10:38Z")),
        ended_at: Some(t("2026-11-23T16:40:38Z")),
        labels: map(&[("alertname", "KubePodCrashLooping"), ("namespace", "pets")]),
        annotations: map(&[("summary", "Pod is crash looping.")]),
        alert: Some(AlertDetail {
            name: "KubePodCrashLooping".into(),
            fingerprint: "efcc16dae668ac0f".into(),
            generator_url: Some("http://prometheus:9090/graph?g0.expr=up".into()),
            group: AlertGroup {
                group_key: "{}:{alertname=\"KubePodCrashLooping\"}".into(),
                receiver: "triage".into(),
                status: SignalStatus::Firing,
                group_labels: map(&[("alertname", "KubePodCrashLooping")]),
                common_labels: map(&[("namespace", "pets")]),
                common_annotations: map(&[("summary", "Pod is crash looping.")]),
                external_url: Some("http://alertmanager:9093".into()),
                truncated_alerts: 0,
            },
        }),
        argocd: Some(argocd_detail()),
    }
}

fn bare_signal() -> Signal {
    Signal {
        source: Source::Argocd,
        kind: SignalKind::Degraded,
        status: SignalStatus::Firing,
        subject: Subject::Other { namespace: None },
        cluster: None,
        title: "on-health-degraded".into(),
        message: None,
        started_at: None,
        ended_at: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        alert: None,
        argocd: None,
    }
}

/// Every comment event, each with its optional parts set and unset.
pub fn events() -> Vec<CommentEvent> {
    let lower = route(Action::Warn, Priority::P1, HealthStatus::Yellow);
    let higher = route(Action::Escalate, Priority::P0, HealthStatus::Red);
    vec![
        CommentEvent::Repeat {
            signal: Box::new(alert_signal()),
            occurrences: 5,
            since_last: 3,
        },
        CommentEvent::Repeat {
            signal: Box::new(bare_signal()),
            occurrences: 1,
            since_last: 1,
        },
        CommentEvent::Relapse {
            signal: Some(Box::new(alert_signal())),
            occurrences: 6,
        },
        CommentEvent::Relapse {
            signal: Some(Box::new(bare_signal())),
            occurrences: 6,
        },
        CommentEvent::Relapse {
            signal: None,
            occurrences: 6,
        },
        CommentEvent::RouteChange {
            from: lower,
            to: higher,
        },
        CommentEvent::RouteChange {
            from: Route {
                priority: None,
                ..route(Action::Observe, Priority::P3, HealthStatus::Green)
            },
            to: Route {
                priority: None,
                ..route(Action::Log, Priority::P3, HealthStatus::Yellow)
            },
        },
        CommentEvent::Recovered {
            closes_at: Some(t("2026-11-23T17:00:00Z")),
        },
        CommentEvent::Recovered { closes_at: None },
        CommentEvent::Reopened {
            closed_at: Some(t("2026-11-23T17:00:00Z")),
        },
        CommentEvent::Reopened { closed_at: None },
        CommentEvent::Closed,
    ]
}

/// The work orders every template is tried with.
pub fn work_orders() -> Vec<WorkOrder> {
    vec![rich(), sparse(), unknown_context()]
}
