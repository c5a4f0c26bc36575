//! The work-order document: what an issue says about one work order, for people (the
//! rendered Markdown) and for machines (the fenced JSON block in every body).
//!
//! Built from the persisted lifecycle [`State`] and the issue references the outbox
//! learned. Every optional field serializes as `null`, never an omitted key, because
//! agents and scripts read the JSON block.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::context::{AppRef, Context, WorkloadRef};
use super::correlate::WorkOrderKey;
use super::lifecycle::{Phase, Series, SeriesKind, State};
use super::route::Route;
use crate::config::LinksConfig;
use crate::forge::IssueRef;
use crate::signal::{ArgocdDetail, SignalKind, Source};

/// Version of the JSON block's shape; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Most series listed in one document (the newest first); the counts cover all.
const MAX_SERIES_LISTED: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub schema: u32,
    /// `prod/pets/deployment/store-front`.
    pub key: String,
    /// The short forge label, `triage/3f9a0c1e22b4`.
    pub key_label: String,
    pub state: Phase,
    /// The route the issue is labelled with.
    pub route: Option<Route>,
    pub cluster: Option<String>,
    pub workload: Option<WorkloadRef>,
    pub app: Option<AppRef>,
    /// What the cluster said at the latest look.
    pub context: Option<Context>,
    pub signals: SignalSummary,
    /// The failure streams (alerts, Argo CD health and sync), newest first.
    pub series: Vec<SeriesSummary>,
    /// The latest Argo CD notification's detail.
    pub argocd: Option<ArgocdDetail>,
    pub links: Links,
    pub issue: Option<IssueRef>,
    /// The closed issue this one follows (a failure back after the reopen window).
    pub previous_issue: Option<IssueRef>,
    pub opened_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSummary {
    pub sources: Vec<Source>,
    pub kinds: Vec<SignalKind>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// Occurrences since the issue opened (debounce window included).
    pub occurrences: u64,
    /// Series still failing.
    pub active: usize,
    /// All series known to this work order.
    pub total_series: usize,
    /// Transient failures suppressed over the work order's life.
    pub suppressed_transients: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    pub kind: SeriesKind,
    pub source: Source,
    pub title: String,
    pub subject: String,
    /// `firing`, `resolved`, or `cleared` (the snapshot shows it gone; the source has
    /// not said so yet).
    pub status: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub occurrences: u64,
    pub generator_url: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl From<&Series> for SeriesSummary {
    fn from(s: &Series) -> Self {
        let status = if !s.firing {
            "resolved"
        } else if s.cleared {
            "cleared"
        } else {
            "firing"
        };
        SeriesSummary {
            kind: s.kind,
            source: s.source,
            title: s.title.clone(),
            subject: s.subject.clone(),
            status: status.to_string(),
            message: s.message.clone(),
            started_at: s.started_at,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            occurrences: s.occurrences,
            generator_url: s.generator_url.clone(),
            labels: s.labels.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// The Application in the Argo CD UI.
    pub argocd_app: Option<String>,
    /// Prometheus graph links of the alerts (`generatorURL`), deduplicated.
    pub alert_generators: Vec<String>,
    /// A pre-filled Alertmanager silence for the newest alert of this work order.
    pub silence: Option<String>,
    pub runbook: Option<String>,
    pub dashboard: Option<String>,
    pub previous_issue: Option<String>,
}

impl WorkOrder {
    pub fn build(
        key: &WorkOrderKey,
        key_label: &str,
        state: &State,
        issue: Option<IssueRef>,
        previous_issue: Option<IssueRef>,
        links: &LinksConfig,
    ) -> WorkOrder {
        let context = state.context.clone();
        let mut series: Vec<&Series> = state.series.values().collect();
        series.sort_by(|a, b| {
            b.active()
                .cmp(&a.active())
                .then(b.last_seen.cmp(&a.last_seen))
        });
        let summaries: Vec<SeriesSummary> = series
            .iter()
            .take(MAX_SERIES_LISTED)
            .map(|s| SeriesSummary::from(*s))
            .collect();
        let app = context.as_ref().and_then(|c| c.app.clone()).or_else(|| {
            state.argocd.as_ref().map(|d| AppRef {
                namespace: d.app_namespace.clone(),
                name: d.app.clone(),
                health: d.health_status.clone(),
                sync: d.sync_status.clone(),
                operation_phase: d.operation_phase.clone(),
            })
        });
        let links = Links {
            argocd_app: argocd_app_link(state.argocd.as_ref(), app.as_ref(), links),
            alert_generators: {
                let mut out: Vec<String> = Vec::new();
                for s in &series {
                    if let Some(u) = &s.generator_url
                        && !out.contains(u)
                        && out.len() < 5
                    {
                        out.push(u.clone());
                    }
                }
                out
            },
            silence: silence_link(&series, links),
            runbook: context
                .as_ref()
                .and_then(|c| c.annotations.runbook.clone())
                .or_else(|| series.iter().find_map(|s| s.runbook_url.clone())),
            dashboard: context
                .as_ref()
                .and_then(|c| c.annotations.dashboard.clone()),
            previous_issue: previous_issue.as_ref().map(|i| i.url.clone()),
        };
        WorkOrder {
            schema: SCHEMA_VERSION,
            key: key.as_str().to_string(),
            key_label: key_label.to_string(),
            state: state.phase,
            route: state.route.clone().or_else(|| state.pending_route.clone()),
            cluster: context.as_ref().map(|c| c.cluster.name.clone()),
            workload: context.as_ref().and_then(|c| c.workload.clone()),
            app,
            signals: SignalSummary {
                sources: state.sources.iter().copied().collect(),
                kinds: state.kinds.iter().copied().collect(),
                first_seen: state.first_seen,
                last_seen: state.last_seen,
                occurrences: state.occurrences,
                active: state.series.values().filter(|s| s.active()).count(),
                total_series: state.series.len(),
                suppressed_transients: state.suppressed,
            },
            series: summaries,
            argocd: state.argocd.clone(),
            context,
            links,
            issue,
            previous_issue,
            opened_at: state.opened_at,
            resolved_at: state.resolved_at,
            closed_at: state.closed_at,
        }
    }

    /// `deployment pets/store-front`, `application argocd/shop`, or the key.
    pub fn subject_text(&self) -> String {
        if let Some(w) = &self.workload {
            return format!("{} {}/{}", w.kind.kubectl_name(), w.namespace, w.name);
        }
        if let Some(a) = &self.app {
            return format!("application {}", a.name);
        }
        self.key.clone()
    }
}

fn trim_base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Argo CD ≥ 2.5 addresses applications as `/applications/<namespace>/<name>`.
fn argocd_app_link(
    detail: Option<&ArgocdDetail>,
    app: Option<&AppRef>,
    links: &LinksConfig,
) -> Option<String> {
    let base = detail
        .and_then(|d| d.argocd_url.as_deref())
        .or(links.argocd_url.as_deref())?;
    let app = app?;
    let name = utf8_percent_encode(&app.name);
    Some(match &app.namespace {
        Some(ns) => format!(
            "{}/applications/{}/{name}",
            trim_base(base),
            utf8_percent_encode(ns)
        ),
        None => format!("{}/applications/{name}", trim_base(base)),
    })
}

/// Alertmanager's UI pre-fills a silence from `#/silences/new?filter={…}`. The matchers
/// are the alert's labels minus the volatile ones, so the silence covers this failure
/// across pod restarts and nothing else.
fn silence_link(series: &[&Series], links: &LinksConfig) -> Option<String> {
    let alert = series.iter().find(|s| s.kind == SeriesKind::Alert)?;
    let base = alert
        .external_url
        .as_deref()
        .or(links.alertmanager_url.as_deref())?;
    let matchers: Vec<String> = alert
        .labels
        .iter()
        .filter(|(k, _)| !super::correlate::VOLATILE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if matchers.is_empty() {
        return None;
    }
    let filter = format!("{{{}}}", matchers.join(","));
    Some(format!(
        "{}/#/silences/new?filter={}",
        trim_base(base),
        utf8_percent_encode(&filter)
    ))
}

/// Everything but RFC 3986's unreserved characters is encoded: `store-front` stays
/// readable in links.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn utf8_percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{AlertDetail, AlertGroup, Signal, SignalStatus, Subject};
    use crate::triage::context::{ClusterInfo, SnapshotState};
    use crate::triage::context::{HealthStatus, Tier};
    use crate::triage::lifecycle::{Observation, Rules};
    use crate::triage::route::{Action, Priority};
    use std::collections::BTreeMap;

    #[test]
    fn document_serializes_nulls_and_links() {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "KubePodCrashLooping".to_string());
        labels.insert("namespace".to_string(), "pets".to_string());
        labels.insert("pod".to_string(), "store-front-1".to_string());
        let signal = Signal {
            source: Source::Alertmanager,
            kind: SignalKind::Alert,
            status: SignalStatus::Firing,
            subject: Subject::Pod {
                namespace: "pets".into(),
                name: "store-front-1".into(),
            },
            cluster: None,
            title: "KubePodCrashLooping".into(),
            message: Some("Pod is crash looping.".into()),
            started_at: Some("2026-11-23T16:10:38Z".parse().unwrap()),
            ended_at: None,
            labels,
            annotations: BTreeMap::new(),
            alert: Some(AlertDetail {
                name: "KubePodCrashLooping".into(),
                fingerprint: "efcc16dae668ac0f".into(),
                generator_url: Some("http://prometheus:9090/graph?g0.expr=x".into()),
                group: AlertGroup {
                    group_key: "{}:{}".into(),
                    receiver: "triage".into(),
                    status: SignalStatus::Firing,
                    group_labels: BTreeMap::new(),
                    common_labels: BTreeMap::new(),
                    common_annotations: BTreeMap::new(),
                    external_url: Some("http://alertmanager:9093/".into()),
                    truncated_alerts: 0,
                },
            }),
            argocd: None,
        };
        let ctx = Context::unknown(ClusterInfo {
            name: "prod".into(),
            state: SnapshotState::Synced,
        });
        let route = Route {
            action: Action::Escalate,
            priority: Some(Priority::P0),
            status: HealthStatus::Red,
            tier: Tier::Critical,
            reason: "critical, red".into(),
        };
        let mut state = State::new();
        let now: Timestamp = "2026-11-23T16:11:00Z".parse().unwrap();
        state.on_signal(
            Observation {
                signal: &signal,
                context: &ctx,
                route: &route,
                received_at: now,
            },
            &Rules::default(),
            now,
        );
        let key = WorkOrderKey::from_stored("prod/pets/alert/KubePodCrashLooping");
        let doc = WorkOrder::build(
            &key,
            &key.label("triage/"),
            &state,
            None,
            None,
            &LinksConfig::default(),
        );
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["state"], "open");
        assert!(json["issue"].is_null());
        assert!(json["previous_issue"].is_null());
        assert!(json["links"]["argocd_app"].is_null());
        assert_eq!(json["signals"]["occurrences"], 1);
        assert_eq!(json["series"][0]["status"], "firing");
        let silence = doc.links.silence.unwrap();
        assert!(
            silence.starts_with("http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22KubePodCrashLooping%22"),
            "{silence}"
        );
        assert!(
            !silence.contains("pod"),
            "volatile labels stay out: {silence}"
        );
        assert_eq!(doc.links.alert_generators.len(), 1);
    }
}
