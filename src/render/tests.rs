use std::collections::BTreeMap;

use super::*;
use crate::config::LinksConfig;
use crate::forge::parse_key_marker;
use crate::signal::{
    AlertDetail, AlertGroup, SignalKind, SignalStatus, Source, Subject, WorkloadKind,
};
use crate::triage::context::{
    ClusterInfo, ContainerEvidence, Context, EventGroup, Health, HealthStatus, PodEvidence,
    Replicas, SnapshotState, Tier, WorkloadRef,
};
use crate::triage::correlate::WorkOrderKey;
use crate::triage::lifecycle::{Observation, Rules, State};
use crate::triage::route::{Action, Priority};

fn signal(message: &str) -> Signal {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), "KubePodCrashLooping".to_string());
    labels.insert("namespace".to_string(), "pets".to_string());
    labels.insert("pod".to_string(), "store-front-7d9f-abc".to_string());
    Signal {
        source: Source::Alertmanager,
        kind: SignalKind::Alert,
        status: SignalStatus::Firing,
        subject: Subject::Pod {
            namespace: "pets".into(),
            name: "store-front-7d9f-abc".into(),
        },
        cluster: None,
        title: "KubePodCrashLooping".into(),
        message: Some(message.into()),
        started_at: Some("2026-11-23T16:10:38Z".parse().unwrap()),
        ended_at: None,
        labels,
        annotations: BTreeMap::new(),
        alert: Some(AlertDetail {
            name: "KubePodCrashLooping".into(),
            fingerprint: "efcc16dae668ac0f".into(),
            generator_url: Some("http://prometheus:9090/graph?g0.expr=up".into()),
            group: AlertGroup {
                group_key: "{}:{}".into(),
                receiver: "triage".into(),
                status: SignalStatus::Firing,
                group_labels: BTreeMap::new(),
                common_labels: BTreeMap::new(),
                common_annotations: BTreeMap::new(),
                external_url: Some("http://alertmanager:9093".into()),
                truncated_alerts: 0,
            },
        }),
        argocd: None,
    }
}

fn context(pods: usize) -> Context {
    let mut c = Context::unknown(ClusterInfo {
        name: "prod".into(),
        state: SnapshotState::Synced,
    });
    c.workload = Some(WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "pets".into(),
        name: "store-front".into(),
    });
    c.annotations.owner = Some("team-pets".into());
    c.annotations.tier = Some(Tier::Critical);
    c.annotations.runbook = Some("https://runbooks.example.com/store-front".into());
    c.health = Some(Health {
        status: HealthStatus::Red,
        reason: "0 of 3 replicas ready".into(),
        since: None,
        replicas: Replicas {
            desired: 3,
            ..Replicas::default()
        },
    });
    c.evidence.pods = (0..pods)
        .map(|i| PodEvidence {
            name: format!("store-front-7d9f-{i:05}"),
            node: Some("node-1".into()),
            phase: Some("Running".into()),
            ready: false,
            containers: vec![ContainerEvidence {
                name: "store-front".into(),
                ready: false,
                restart_count: 12,
                waiting_reason: Some("CrashLoopBackOff".into()),
                waiting_message: Some("back-off 5m0s restarting failed container".repeat(20)),
                last_termination_reason: Some("OOMKilled".into()),
                last_exit_code: Some(137),
                last_finished_at: None,
            }],
        })
        .collect();
    c.evidence.events = vec![EventGroup {
        reason: "BackOff".into(),
        count: 40,
        last_seen: None,
        message: Some("Back-off restarting failed container | with a pipe".into()),
        objects: vec!["Pod/store-front-7d9f-abc".into()],
    }];
    c
}

fn work_order(message: &str, pods: usize) -> WorkOrder {
    work_order_with(message, pods, 1)
}

fn work_order_with(message: &str, pods: usize, alerts: usize) -> WorkOrder {
    let route = Route {
        action: Action::Escalate,
        priority: Some(Priority::P0),
        status: HealthStatus::Red,
        tier: Tier::Critical,
        reason: "critical workload, red (0 of 3 ready) → escalate P0".into(),
    };
    let mut state = State::new();
    let now: Timestamp = "2026-11-23T16:11:00Z".parse().unwrap();
    let ctx = context(pods);
    for i in 0..alerts {
        let mut s = signal(message);
        if let Some(a) = s.alert.as_mut() {
            a.fingerprint = format!("{i:016x}");
        }
        state.on_signal(
            Observation {
                signal: &s,
                context: &ctx,
                route: &route,
                received_at: now,
            },
            &Rules::default(),
            now,
        );
    }
    let key = WorkOrderKey::from_stored("prod/pets/deployment/store-front");
    WorkOrder::build(
        &key,
        &key.label("triage/"),
        &state,
        None,
        None,
        &LinksConfig::default(),
    )
}

fn json_block(body: &str) -> serde_json::Value {
    let start = body.find("```json\n").expect("json block") + "```json\n".len();
    let end = start + body[start..].find("\n```").expect("closing fence");
    serde_json::from_str(&body[start..end]).expect("valid JSON")
}

#[test]
fn body_has_the_document_the_marker_and_safe_text() {
    let wo = work_order("Pod is crash looping; ping @pets-team | now", 3);
    let draft = issue_draft(&PlainRenderer, &wo, labels(&wo, &LabelsConfig::default())).unwrap();
    assert_eq!(
        draft.title,
        "[P0] deployment pets/store-front in prod: KubePodCrashLooping"
    );
    assert_eq!(
        parse_key_marker(&draft.body),
        Some("prod/pets/deployment/store-front")
    );
    let doc: WorkOrder = serde_json::from_value(json_block(&draft.body)).unwrap();
    assert_eq!(doc, wo);
    // Free text sits in code spans: no mention, no broken table.
    assert!(
        draft
            .body
            .contains("`Pod is crash looping; ping @pets-team \\| now`"),
        "{}",
        draft.body
    );
    assert!(draft.body.contains("| Owner | `team-pets` |"));
    assert!(
        draft
            .body
            .contains("[runbook](https://runbooks.example.com/store-front)")
    );
    assert!(
        draft
            .body
            .contains("[silence this alert](http://alertmanager:9093/#/silences/new?filter=")
    );
    assert!(draft.body.contains("last exit OOMKilled (137)"));
}

#[test]
fn labels_follow_the_route_and_key() {
    let wo = work_order("x", 0);
    let config = LabelsConfig::default();
    assert_eq!(
        labels(&wo, &config),
        vec![
            "cluster-doctor".to_string(),
            "source/alertmanager".into(),
            "priority/P0".into(),
            "tier/critical".into(),
            "action/escalate".into(),
            wo.key_label.clone(),
        ]
    );
    assert!(wo.key_label.len() <= 50);
    let specs = label_specs(&labels(&wo, &config), &config);
    assert!(
        specs
            .iter()
            .all(|s| s.color.len() == 6 && s.color.chars().all(|c| c.is_ascii_hexdigit()))
    );
    assert_eq!(specs[2].color, "b60205");
}

#[test]
fn huge_work_orders_fit_the_forge_limits_and_keep_marker_and_json() {
    let wo = work_order_with(&"very long message ".repeat(10_000), 2_000, 40);
    let draft = issue_draft(&PlainRenderer, &wo, vec![]).unwrap();
    assert!(
        draft.body.chars().count() <= MAX_BODY_CHARS,
        "{}",
        draft.body.chars().count()
    );
    assert!(draft.title.chars().count() <= MAX_TITLE_CHARS);
    assert_eq!(parse_key_marker(&draft.body), Some(wo.key.as_str()));
    let doc = json_block(&draft.body);
    assert_eq!(doc["key"], wo.key);
    assert_eq!(
        doc["signals"]["occurrences"], 40,
        "counts survive compaction"
    );
    assert_eq!(doc["signals"]["total_series"], 40);
    // Re-rendered with fewer series until it fit: no cut was needed.
    assert!(!draft.body.contains("truncated to fit"));
    let listed = draft
        .body
        .matches("- **`KubePodCrashLooping`** (alertmanager)")
        .count();
    // At most the document's own cap (per-series messages are short since lifecycle
    // clips them, so the evidence trimming alone may make it fit).
    assert!((1..=20).contains(&listed), "{listed} series listed");
}

#[test]
fn every_comment_event_renders_with_its_json_block() {
    let wo = work_order("x", 1);
    let route = wo.route.clone().unwrap();
    let lower = Route {
        action: Action::Warn,
        priority: Some(Priority::P1),
        status: HealthStatus::Yellow,
        ..route.clone()
    };
    let events = [
        (
            CommentEvent::Repeat {
                signal: Box::new(signal("again")),
                occurrences: 5,
                since_last: 3,
            },
            "3 new occurrence(s) since the last update, 5 in total",
        ),
        (
            CommentEvent::Relapse {
                signal: None,
                occurrences: 2,
            },
            "**Failing again:** the cluster shows `deployment pets/store-front` unhealthy",
        ),
        (
            CommentEvent::RouteChange {
                from: lower,
                to: route,
            },
            "**Route changed:** **escalate · P0** (red) (was **warn · P1** (yellow))",
        ),
        (
            CommentEvent::Recovered {
                closes_at: Some("2026-11-23T17:00:00Z".parse().unwrap()),
            },
            "closes at 2026-11-23T17:00:00Z",
        ),
        (
            CommentEvent::Recovered { closes_at: None },
            "Automatic closing is off",
        ),
        (CommentEvent::Reopened { closed_at: None }, "**Reopened:**"),
        (CommentEvent::Closed, "**Closing:**"),
    ];
    for (event, expected) in events {
        let body = comment_body(&PlainRenderer, &wo, &event).unwrap();
        assert!(body.contains(expected), "{event:?}: {body}");
        let json = json_block(&body);
        assert_eq!(json["event"], event.name());
        assert_eq!(json["key"], wo.key);
        assert!(
            parse_key_marker(&body).is_none(),
            "comments carry no marker"
        );
    }
}

#[test]
fn code_spans_survive_backticks() {
    assert_eq!(code("a `b` c"), "``a `b` c``");
    assert_eq!(code("`x`"), "`` `x` ``");
    assert_eq!(code("line\nbreak"), "`line break`");
    assert_eq!(code(""), "`-`");
}
