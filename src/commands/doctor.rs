//! `triage doctor`: can Triage see the cluster, and can an agent act on what it sees?
//!
//! Per cluster: API reachable (`GET /version`), RBAC for every watched kind
//! (SelfSubjectAccessReview for get, list and watch), annotation coverage per
//! deployscope key, the ignored count, the agent-readiness score (share of visible
//! workloads with at least owner and tier; with gitops-repo and gitops-path too for a
//! fix pull request) with the workloads that miss what, and warnings. On a static
//! snapshot the API and RBAC checks are reported as skipped, not passed.
//!
//! Exit code: 0 when no check failed (warnings allowed), 2 when a check failed (API
//! unreachable, a permission missing, a cluster not synced), 1 on error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use super::status::{open, render_columns, runtime};
use crate::cli::{ConfigArgs, OutputFormat};
use crate::cluster::access::{self, RbacCheck};
use crate::cluster::annotations::{self, KEYS};
use crate::cluster::{Cluster, ClusterSource, Clusters, Kind, deps, owners};
use crate::config::Overrides;
use crate::triage::context::{DependencyResolution, SnapshotState};
use crate::triage::redact::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skipped,
}

impl CheckStatus {
    fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RbacReport {
    pub status: CheckStatus,
    pub detail: String,
    pub checks: Vec<RbacCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub count: usize,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub workload: String,
    /// Keys missing for an agent to act at all (owner, tier).
    pub missing: Vec<String>,
    /// Keys missing for an agent to open a fix pull request (gitops-repo, gitops-path).
    pub missing_for_pr: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Share (0–1) of visible workloads with owner and a valid tier.
    pub score: f64,
    pub ready: usize,
    /// Share (0–1) with owner, tier, gitops-repo and gitops-path.
    pub pr_score: f64,
    pub pr_ready: usize,
    pub total: usize,
    /// Workloads that miss something, worst first.
    pub missing: Vec<Missing>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterDoctor {
    pub name: String,
    pub source: String,
    pub state: SnapshotState,
    pub api: Check,
    pub rbac: RbacReport,
    pub sync: Check,
    /// Whether the cluster serves Argo CD Applications ("served", "not served",
    /// "unknown" for a static snapshot without any).
    pub argocd_applications: String,
    pub workloads: usize,
    pub ignored: usize,
    pub coverage: BTreeMap<String, Coverage>,
    pub agent_readiness: Readiness,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub clusters: Vec<ClusterDoctor>,
    /// Checks that failed, in words; empty when all passed or were skipped.
    pub failed: Vec<String>,
}

impl DoctorReport {
    pub fn exit_code(&self) -> u8 {
        if self.failed.is_empty() { 0 } else { 2 }
    }
}

fn percent(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        // Two decimals are plenty for a coverage figure.
        ((n as f64) * 10000.0 / (total as f64)).round() / 100.0
    }
}

fn share(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        ((n as f64) * 1000.0 / (total as f64)).round() / 1000.0
    }
}

fn looks_like_repo(value: &str) -> bool {
    ["https://", "http://", "ssh://", "git@", "git://"]
        .iter()
        .any(|p| value.starts_with(p))
}

/// What the snapshot says about annotations: coverage, readiness, warnings.
fn inspect_snapshot(cluster: &Cluster, redactor: &Redactor, report: &mut ClusterDoctor) {
    let snapshot = cluster.read();
    let mut visible: Vec<_> = snapshot
        .workloads()
        .filter(|w| owners::is_visible(&snapshot, w))
        .collect();
    visible.sort_by_key(|w| w.reference());
    report.ignored = snapshot
        .workloads()
        .filter(|w| annotations::is_ignored(w))
        .count();
    report.workloads = visible.len();
    let total = visible.len();
    for key in KEYS.iter().filter(|k| **k != "ignore") {
        let n = visible
            .iter()
            .filter(|w| annotations::has_key(w, key))
            .count();
        report.coverage.insert(
            key.to_string(),
            Coverage {
                count: n,
                percent: percent(n, total),
            },
        );
    }
    let mut ready = 0;
    let mut pr_ready = 0;
    let mut missing = Vec::new();
    for w in &visible {
        let r = annotations::resolve(w);
        let a = &r.annotations;
        let name = w.reference().to_string();
        let mut miss = Vec::new();
        if a.owner.is_none() {
            miss.push("owner".to_string());
        }
        if a.tier.is_none() {
            miss.push("tier".to_string());
        }
        let mut miss_pr = Vec::new();
        if a.gitops_repo.is_none() {
            miss_pr.push("gitops-repo".to_string());
        }
        if a.gitops_path.is_none() {
            miss_pr.push("gitops-path".to_string());
        }
        if miss.is_empty() {
            ready += 1;
            if miss_pr.is_empty() {
                pr_ready += 1;
            }
        }
        if !miss.is_empty() || !miss_pr.is_empty() {
            missing.push(Missing {
                workload: name.clone(),
                missing: miss,
                missing_for_pr: miss_pr,
            });
        }
        if let (Some(raw), None) = (&a.tier_raw, a.tier) {
            report.warnings.push(format!(
                "{name}: tier {raw:?} is not critical, standard or best-effort (routed as standard)"
            ));
        }
        if let Some(v) = &r.ignore_unrecognised {
            report.warnings.push(format!(
                "{name}: deployscope.dev/ignore is {v:?}; only \"true\" hides a workload"
            ));
        }
        for k in &r.unknown_keys {
            report.warnings.push(format!(
                "{name}: deployscope.dev/{k} is not a deployscope key (known: {})",
                KEYS.join(", ")
            ));
        }
        if let Some(repo) = &a.gitops_repo
            && !looks_like_repo(repo)
        {
            report.warnings.push(format!(
                "{name}: gitops-repo {:?} is not a repository URL",
                redactor.redact(repo)
            ));
        }
        let values = [
            &a.owner,
            &a.oncall,
            &a.gitops_repo,
            &a.gitops_path,
            &a.runbook,
            &a.dashboard,
        ];
        if values
            .iter()
            .filter_map(|v| v.as_deref())
            .any(|v| redactor.redact(v) != v)
        {
            report.warnings.push(format!(
                "{name}: an annotation value contains a credential; it is redacted in work orders, but remove it from the manifest"
            ));
        }
        for d in deps::resolve(&snapshot, &w.namespace, &a.depends_on) {
            match d.resolution {
                DependencyResolution::Resolved => {}
                DependencyResolution::Ambiguous(_) | DependencyResolution::Missing => {
                    report.warnings.push(format!(
                        "{name}: depends-on {:?}: {}",
                        d.name,
                        d.reason.unwrap_or_default()
                    ));
                }
            }
        }
    }
    missing.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.missing.len()),
            std::cmp::Reverse(a.missing_for_pr.len()),
            &a.workload,
        )
            .cmp(&(
                std::cmp::Reverse(b.missing.len()),
                std::cmp::Reverse(b.missing_for_pr.len()),
                &b.workload,
            ))
    });
    report.agent_readiness = Readiness {
        score: share(ready, total),
        ready,
        pr_score: share(pr_ready, total),
        pr_ready,
        total,
        missing,
    };
    let apps = snapshot
        .counts()
        .into_iter()
        .find(|(k, _)| *k == Kind::Application)
        .map_or(0, |(_, n)| n);
    if matches!(cluster.source, ClusterSource::Static(_)) {
        report.argocd_applications = if apps > 0 {
            format!("{apps} in the snapshot")
        } else {
            "none in the snapshot".into()
        };
    }
}

async fn inspect(clusters: &Clusters, redactor: &Redactor) -> DoctorReport {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for cluster in clusters.clusters() {
        let sync = cluster.sync_status();
        let mut report = ClusterDoctor {
            name: cluster.name.clone(),
            source: match &cluster.source {
                ClusterSource::Static(p) => format!("static snapshot {}", p.display()),
                ClusterSource::Live => "live".into(),
            },
            state: sync.state,
            api: Check {
                status: CheckStatus::Skipped,
                detail: "static snapshot: the API check was skipped".into(),
            },
            rbac: RbacReport {
                status: CheckStatus::Skipped,
                detail: "static snapshot: RBAC checks were skipped".into(),
                checks: Vec::new(),
            },
            sync: Check {
                status: CheckStatus::Skipped,
                detail: "static snapshot".into(),
            },
            argocd_applications: "unknown".into(),
            workloads: 0,
            ignored: 0,
            coverage: BTreeMap::new(),
            agent_readiness: Readiness {
                score: 0.0,
                ready: 0,
                pr_score: 0.0,
                pr_ready: 0,
                total: 0,
                missing: Vec::new(),
            },
            warnings: Vec::new(),
        };
        if let Some(client) = cluster.client() {
            report.api = match access::api_version(client).await {
                Ok(version) => Check {
                    status: CheckStatus::Pass,
                    detail: format!("API server {version} answers"),
                },
                Err(e) => Check {
                    status: CheckStatus::Fail,
                    detail: format!("API server unreachable: {e}"),
                },
            };
            let served = sync
                .kinds
                .get(Kind::Application.as_str())
                .is_none_or(|k| k.served);
            report.argocd_applications = if served { "served" } else { "not served" }.into();
            if report.api.status == CheckStatus::Pass {
                let checks = access::rbac(client, &Kind::ALL).await;
                let denied: Vec<&RbacCheck> = checks.iter().filter(|c| !c.allowed).collect();
                let required_denied: Vec<String> = denied
                    .iter()
                    .filter(|c| served || c.resource != "applications")
                    .map(|c| format!("{} {}", c.verb, resource_name(c)))
                    .collect();
                for c in denied
                    .iter()
                    .filter(|c| !served && c.resource == "applications")
                {
                    report.warnings.push(format!(
                        "RBAC denies {} {}; not needed while Argo CD Applications are not served",
                        c.verb,
                        resource_name(c)
                    ));
                }
                report.rbac = RbacReport {
                    status: if required_denied.is_empty() {
                        CheckStatus::Pass
                    } else {
                        CheckStatus::Fail
                    },
                    detail: if required_denied.is_empty() {
                        format!("{} permissions checked, all allowed", checks.len())
                    } else {
                        format!("denied: {}", required_denied.join(", "))
                    },
                    checks,
                };
            } else {
                report.rbac.detail = "not checked: the API server does not answer".into();
            }
            report.sync = match sync.state {
                SnapshotState::Synced => Check {
                    status: CheckStatus::Pass,
                    detail: "every watch has listed and is watching".into(),
                },
                _ => Check {
                    status: CheckStatus::Fail,
                    detail: sync.detail.clone().unwrap_or_else(|| "not synced".into()),
                },
            };
        }
        inspect_snapshot(cluster, redactor, &mut report);
        for (what, check) in [("API", &report.api), ("sync", &report.sync)] {
            if check.status == CheckStatus::Fail {
                failed.push(format!("cluster {}: {what}: {}", report.name, check.detail));
            }
        }
        if report.rbac.status == CheckStatus::Fail {
            failed.push(format!(
                "cluster {}: RBAC: {}",
                report.name, report.rbac.detail
            ));
        }
        out.push(report);
    }
    DoctorReport {
        clusters: out,
        failed,
    }
}

fn resource_name(c: &RbacCheck) -> String {
    if c.group.is_empty() {
        c.resource.clone()
    } else {
        format!("{}.{}", c.resource, c.group)
    }
}

pub fn render_table(report: &DoctorReport) -> String {
    let mut out = String::new();
    for c in &report.clusters {
        let _ = writeln!(out, "cluster {} ({})", c.name, c.source);
        let _ = writeln!(
            out,
            "  API:     {:<7} {}",
            c.api.status.as_str(),
            c.api.detail
        );
        let _ = writeln!(
            out,
            "  RBAC:    {:<7} {}",
            c.rbac.status.as_str(),
            c.rbac.detail
        );
        let _ = writeln!(
            out,
            "  sync:    {:<7} {}",
            c.sync.status.as_str(),
            c.sync.detail
        );
        let _ = writeln!(out, "  Argo CD Applications: {}", c.argocd_applications);
        let _ = writeln!(
            out,
            "  workloads: {} visible, {} ignored",
            c.workloads, c.ignored
        );
        let r = &c.agent_readiness;
        let _ = writeln!(
            out,
            "  agent readiness: {:.0}% ({} of {} have owner and tier); fix-PR ready: {:.0}% ({} also have gitops-repo and gitops-path)",
            r.score * 100.0,
            r.ready,
            r.total,
            r.pr_score * 100.0,
            r.pr_ready
        );
        out.push_str("\n  annotation coverage:\n");
        let rows: Vec<Vec<String>> = c
            .coverage
            .iter()
            .map(|(k, v)| {
                vec![
                    format!("    deployscope.dev/{k}"),
                    format!("{}/{}", v.count, c.workloads),
                    format!("{:.0}%", v.percent),
                ]
            })
            .collect();
        out.push_str(&render_columns(&["    KEY", "SET", "COVERAGE"], &rows));
        if !r.missing.is_empty() {
            out.push_str("\n  workloads missing annotations:\n");
            let rows: Vec<Vec<String>> = r
                .missing
                .iter()
                .map(|m| {
                    vec![
                        format!("    {}", m.workload),
                        if m.missing.is_empty() {
                            "-".into()
                        } else {
                            m.missing.join(",")
                        },
                        if m.missing_for_pr.is_empty() {
                            "-".into()
                        } else {
                            m.missing_for_pr.join(",")
                        },
                    ]
                })
                .collect();
            out.push_str(&render_columns(
                &["    WORKLOAD", "TO ACT", "FOR A FIX PR"],
                &rows,
            ));
        }
        if !c.warnings.is_empty() {
            out.push_str("\n  warnings:\n");
            for w in &c.warnings {
                let _ = writeln!(out, "    - {w}");
            }
        }
        out.push('\n');
    }
    if report.failed.is_empty() {
        out.push_str("no check failed\n");
    } else {
        for f in &report.failed {
            let _ = writeln!(out, "FAILED: {f}");
        }
    }
    out
}

pub fn run(
    args: &ConfigArgs,
    snapshot: Option<std::path::PathBuf>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let config = args.load(&Overrides {
        listen: None,
        snapshot,
    })?;
    let redactor = Redactor::from_config(&config.redaction)?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let clusters = open(&config).await?;
        Ok::<_, anyhow::Error>(inspect(&clusters, &redactor).await)
    })?;
    rt.shutdown_background();
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print!("{}", render_table(&report)),
    }
    Ok(ExitCode::from(report.exit_code()))
}
