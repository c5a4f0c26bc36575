//! `triage status`: every visible workload with its health, since when, owner, tier,
//! integration fields, dependencies and route, and a summary.
//!
//! Exit code: 0 when every listed workload is green, 2 when something is not, 1 on error
//! (including a live cluster that did not sync within `kubernetes.sync_timeout`) — in
//! every format. `--unhealthy` hides green rows; the summary still counts them.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use crate::cli::{ConfigArgs, OutputFormat};
use crate::cluster::{ClusterSync, Clusters, owners};
use crate::config::{Config, Overrides};
use crate::triage::context::{Dependency, HealthStatus, Replicas, SnapshotState};
use crate::triage::enrich::{EnrichOptions, with_view, workload_context};
use crate::triage::redact::Redactor;
use crate::triage::route::{Action, Route, RoutingTable};

/// One workload as `status` shows it. Every key is always present (`null` when unset).
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadRow {
    pub cluster: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub health: HealthStatus,
    pub reason: String,
    pub since: Option<Timestamp>,
    pub replicas: Replicas,
    pub owner: Option<String>,
    pub oncall: Option<String>,
    pub tier: Option<String>,
    pub tier_raw: Option<String>,
    pub gitops_repo: Option<String>,
    pub gitops_path: Option<String>,
    pub runbook: Option<String>,
    pub dashboard: Option<String>,
    pub app: Option<String>,
    pub dependencies: Vec<Dependency>,
    pub likely_cause: Option<String>,
    pub route: Route,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Visible workloads (ignored ones are not counted here).
    pub workloads: usize,
    pub green: usize,
    pub yellow: usize,
    pub red: usize,
    /// Rows in `workloads` (fewer than `workloads` with `--unhealthy`).
    pub shown: usize,
    /// Workloads per route action, every action present.
    pub by_action: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub clusters: Vec<ClusterSync>,
    pub workloads: Vec<WorkloadRow>,
    pub summary: Summary,
}

impl StatusReport {
    /// 0 when every visible workload is green, else 2.
    pub fn exit_code(&self) -> u8 {
        if self.summary.yellow + self.summary.red == 0 {
            0
        } else {
            2
        }
    }
}

/// Builds the report from the clusters' snapshots (pure over their current contents).
pub fn report(
    clusters: &Clusters,
    redactor: &Redactor,
    table: &RoutingTable,
    unhealthy_only: bool,
) -> StatusReport {
    let options = EnrichOptions::default();
    let mut rows = Vec::new();
    for cluster in clusters.clusters() {
        with_view(clusters, cluster, |view| {
            let Some(snapshot) = view.snapshot else {
                return;
            };
            for w in snapshot.workloads() {
                if !owners::is_visible(snapshot, w) {
                    continue;
                }
                let ctx = workload_context(view, w, redactor, &options);
                let Some(health) = ctx.health.clone() else {
                    continue;
                };
                let route = table.decide(ctx.annotations.tier, health.status, &health.reason);
                let a = ctx.annotations;
                rows.push(WorkloadRow {
                    cluster: cluster.name.clone(),
                    namespace: w.namespace.clone(),
                    kind: w.kind.as_str().to_string(),
                    name: w.name.clone(),
                    health: health.status,
                    reason: health.reason,
                    since: health.since,
                    replicas: health.replicas,
                    owner: a.owner,
                    oncall: a.oncall,
                    tier: a.tier.map(|t| t.as_str().to_string()),
                    tier_raw: a.tier_raw,
                    gitops_repo: a.gitops_repo,
                    gitops_path: a.gitops_path,
                    runbook: a.runbook,
                    dashboard: a.dashboard,
                    app: ctx.app.map(|app| match app.namespace {
                        Some(ns) => format!("{ns}/{}", app.name),
                        None => app.name,
                    }),
                    dependencies: ctx.dependencies,
                    likely_cause: ctx.likely_cause,
                    route,
                });
            }
        });
    }
    rows.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.health),
            &a.cluster,
            &a.namespace,
            &a.kind,
            &a.name,
        )
            .cmp(&(
                std::cmp::Reverse(b.health),
                &b.cluster,
                &b.namespace,
                &b.kind,
                &b.name,
            ))
    });
    let mut summary = Summary {
        workloads: rows.len(),
        by_action: Action::ALL
            .iter()
            .map(|a| (a.as_str().to_string(), 0))
            .collect(),
        ..Summary::default()
    };
    for row in &rows {
        match row.health {
            HealthStatus::Green => summary.green += 1,
            HealthStatus::Yellow => summary.yellow += 1,
            HealthStatus::Red => summary.red += 1,
        }
        *summary
            .by_action
            .entry(row.route.action.as_str().to_string())
            .or_default() += 1;
    }
    if unhealthy_only {
        rows.retain(|r| r.health != HealthStatus::Green);
    }
    summary.shown = rows.len();
    StatusReport {
        clusters: clusters.sync_status(),
        workloads: rows,
        summary,
    }
}

fn short_time(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M").to_string(),
    )
}

/// Columns padded to their widest cell.
pub(crate) fn render_columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn dependency_words(d: &Dependency) -> String {
    match (&d.workload, d.health) {
        (Some(_), Some(h)) => format!("{}({})", d.name, h.as_str()),
        _ => match &d.resolution {
            crate::triage::context::DependencyResolution::Ambiguous(_) => {
                format!("{}(ambiguous)", d.name)
            }
            _ => format!("{}(missing)", d.name),
        },
    }
}

pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    for c in &report.clusters {
        let _ = writeln!(
            out,
            "cluster {}: {}{}",
            c.name,
            serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            c.detail
                .as_deref()
                .map_or(String::new(), |d| format!(" ({d})"))
        );
    }
    out.push('\n');
    let multi = report.clusters.len() > 1;
    let mut header = vec![];
    if multi {
        header.push("CLUSTER");
    }
    header.extend([
        "NAMESPACE",
        "WORKLOAD",
        "HEALTH",
        "READY",
        "SINCE",
        "TIER",
        "OWNER",
        "GITOPS",
        "DEPENDS-ON",
        "ROUTE",
        "REASON",
    ]);
    let rows: Vec<Vec<String>> = report
        .workloads
        .iter()
        .map(|r| {
            let mut row = Vec::new();
            if multi {
                row.push(r.cluster.clone());
            }
            let gitops = match (&r.gitops_repo, &r.gitops_path) {
                (Some(repo), Some(path)) => format!("{repo} {path}"),
                (Some(repo), None) => repo.clone(),
                (None, Some(path)) => format!("? {path}"),
                (None, None) => "-".into(),
            };
            let deps: Vec<String> = r.dependencies.iter().map(dependency_words).collect();
            row.extend([
                r.namespace.clone(),
                format!("{}/{}", r.kind.to_ascii_lowercase(), r.name),
                r.health.as_str().to_string(),
                format!("{}/{}", r.replicas.ready, r.replicas.desired),
                short_time(r.since),
                r.tier
                    .clone()
                    .or_else(|| r.tier_raw.as_ref().map(|t| format!("{t}?")))
                    .unwrap_or_else(|| "-".into()),
                r.owner.clone().unwrap_or_else(|| "-".into()),
                gitops,
                if deps.is_empty() {
                    "-".into()
                } else {
                    deps.join(",")
                },
                match r.route.priority {
                    Some(p) => format!("{} {p}", r.route.action),
                    None => r.route.action.to_string(),
                },
                r.reason.clone(),
            ]);
            row
        })
        .collect();
    out.push_str(&render_columns(&header, &rows));
    for r in report.workloads.iter().filter(|r| r.likely_cause.is_some()) {
        let _ = writeln!(
            out,
            "\n{}/{}/{}: likely cause: {}",
            r.namespace,
            r.kind.to_ascii_lowercase(),
            r.name,
            r.likely_cause.as_deref().unwrap_or_default()
        );
    }
    let s = &report.summary;
    let actions: Vec<String> = s
        .by_action
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(a, n)| format!("{a} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "\n{} workloads: {} red, {} yellow, {} green{}; routes: {}",
        s.workloads,
        s.red,
        s.yellow,
        s.green,
        if s.shown < s.workloads {
            format!(" ({} shown)", s.shown)
        } else {
            String::new()
        },
        if actions.is_empty() {
            "none".to_string()
        } else {
            actions.join(", ")
        }
    );
    out
}

/// Starts the clusters for a one-shot command and waits for their first sync.
pub(crate) async fn open(config: &Config) -> anyhow::Result<Arc<Clusters>> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let clusters = Clusters::start(config, cancel.clone()).await?;
    clusters.wait_synced(config.kubernetes.sync_timeout).await;
    Ok(clusters)
}

/// An error when any cluster could not be read completely.
pub(crate) fn require_synced(clusters: &Clusters) -> anyhow::Result<()> {
    let problems: Vec<String> = clusters
        .sync_status()
        .into_iter()
        .filter(|c| !matches!(c.state, SnapshotState::Synced | SnapshotState::Static))
        .map(|c| format!("cluster {}: {}", c.name, c.detail.unwrap_or_default()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("cannot read every cluster: {}", problems.join("; "))
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

pub fn run(
    args: &ConfigArgs,
    snapshot: Option<std::path::PathBuf>,
    format: OutputFormat,
    unhealthy: bool,
) -> anyhow::Result<ExitCode> {
    let config = args.load(&Overrides {
        listen: None,
        snapshot,
    })?;
    let redactor = Redactor::from_config(&config.redaction)?;
    let table = RoutingTable::from_config(&config.routing)?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let clusters = open(&config).await?;
        require_synced(&clusters)?;
        Ok::<_, anyhow::Error>(report(&clusters, &redactor, &table, unhealthy))
    })?;
    rt.shutdown_background();
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print!("{}", render_table(&report)),
    }
    Ok(ExitCode::from(report.exit_code()))
}
