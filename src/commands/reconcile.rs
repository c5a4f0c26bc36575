//! `triage reconcile`: rebuild the key → issue mapping from the forge after a lost
//! database.
//!
//! Lists every issue carrying a work-order marker in the repositories Triage writes to
//! (the default repository and every `[[forge.routes]]` target; repositories chosen
//! through `deployscope.dev/gitops-repo` cannot be enumerated and are not scanned), and
//! for each key maps its newest issue into the store: a missing work order is created
//! (open issues as `open`, rechecked against the cluster at once and closed only when
//! it is healthy; closed ones as `closed`), an existing one without an issue (or with
//! an older one) is pointed at it. Safe to run again; safe while Triage runs on
//! PostgreSQL (the local-directory forge allows one process at a time).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use jiff::Timestamp;

use crate::cli::ConfigArgs;
use crate::config::{Config, LabelsConfig, Overrides};
use crate::forge::routing::RepoRouter;
use crate::forge::{Forge, ForgeMetrics, FoundIssue, IssueState, RepoRef};
use crate::metrics::JournalMetrics;
use crate::store::WorkStore;
use crate::store::work::Reconciled;
use crate::triage::context::{HealthStatus, Tier};
use crate::triage::correlate::WorkOrderKey;
use crate::triage::lifecycle::{State, probe_for_key};
use crate::triage::route::{Action, Priority, Route};

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load(&Overrides::default())?;
    crate::telemetry::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = crate::store::open_store(&config.store, JournalMetrics::default())
            .await
            .context("cannot open the store")?;
        let forge = crate::forge::from_config(&config, &ForgeMetrics::new())?;
        let report = reconcile(
            &config,
            forge.as_ref(),
            store.work.as_ref(),
            Timestamp::now(),
        )
        .await?;
        let mut out = std::io::stdout().lock();
        report.print(&mut out)?;
        store.journal.close().await.ok();
        Ok(ExitCode::SUCCESS)
    })
}

/// What reconcile did, per issue.
#[derive(Debug, Default)]
pub struct Report {
    pub repos: Vec<RepoRef>,
    pub lines: Vec<(FoundIssue, Reconciled)>,
    /// Older issues of a key that has a newer one (left alone).
    pub older: usize,
}

impl Report {
    pub fn count(&self, what: Reconciled) -> usize {
        self.lines.iter().filter(|(_, r)| *r == what).count()
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        for (found, outcome) in &self.lines {
            let state = match found.state {
                IssueState::Open => "open",
                IssueState::Closed => "closed",
            };
            let outcome = match outcome {
                Reconciled::Created => "created",
                Reconciled::Mapped => "mapped",
                Reconciled::Unchanged => "unchanged",
            };
            writeln!(
                out,
                "{:<9} {}#{:<6} {:<6} {}",
                outcome, found.issue.repo, found.issue.number, state, found.key
            )?;
        }
        writeln!(
            out,
            "{} issue(s) in {} repositor{}: {} work order(s) created, {} mapped, {} unchanged, {} older issue(s) of the same keys left alone",
            self.lines.len() + self.older,
            self.repos.len(),
            if self.repos.len() == 1 { "y" } else { "ies" },
            self.count(Reconciled::Created),
            self.count(Reconciled::Mapped),
            self.count(Reconciled::Unchanged),
            self.older,
        )
    }
}

/// Reconciles every repository Triage writes to. Forge errors abort with their reason
/// (nothing half-written: each issue is mapped in its own transaction).
pub async fn reconcile(
    config: &Config,
    forge: &dyn Forge,
    store: &dyn WorkStore,
    now: Timestamp,
) -> anyhow::Result<Report> {
    let router = RepoRouter::from_config(config)?;
    let mut repos = vec![router.default_repo().clone()];
    for route in &config.forge.routes {
        let repo = RepoRef::parse(&route.repo).map_err(anyhow::Error::msg)?;
        if !repos.contains(&repo) {
            repos.push(repo);
        }
    }
    let mut report = Report::default();
    for repo in &repos {
        let found = forge
            .list_work_orders(repo)
            .await
            .with_context(|| format!("cannot list the work orders in {repo}"))?;
        // The newest issue of each key is its work order's issue.
        let mut newest: BTreeMap<String, FoundIssue> = BTreeMap::new();
        for f in found {
            match newest.get(&f.key) {
                Some(existing) if existing.issue.number >= f.issue.number => report.older += 1,
                Some(_) => {
                    report.older += 1;
                    newest.insert(f.key.clone(), f);
                }
                None => {
                    newest.insert(f.key.clone(), f);
                }
            }
        }
        for (key, found) in newest {
            let key_label = WorkOrderKey::from_stored(key.clone()).label(&config.labels.key_prefix);
            let initial = State::reconciled(
                found.state == IssueState::Open,
                route_from_labels(&found.labels, &config.labels),
                probe_for_key(&key),
                now,
            );
            let outcome = store
                .reconcile_issue(&found, &key_label, &initial, now)
                .await
                .with_context(|| format!("cannot map {key} to {}", found.issue.url))?;
            report.lines.push((found, outcome));
        }
    }
    report.repos = repos;
    Ok(report)
}

/// The route an issue's labels say (`priority/P0`, `action/escalate`, `tier/critical`,
/// with the configured prefixes).
pub fn route_from_labels(labels: &[String], config: &LabelsConfig) -> Option<Route> {
    let value = |prefix: &str| {
        if prefix.is_empty() {
            return None;
        }
        labels.iter().find_map(|l| l.strip_prefix(prefix))
    };
    let action = value(&config.action_prefix)
        .and_then(|a| Action::ALL.into_iter().find(|x| x.as_str() == a))?;
    let priority = value(&config.priority_prefix).and_then(|p| {
        [Priority::P0, Priority::P1, Priority::P2, Priority::P3]
            .into_iter()
            .find(|x| x.as_str() == p)
    });
    let tier = match value(&config.tier_prefix) {
        Some("critical") => Tier::Critical,
        Some("best-effort") => Tier::BestEffort,
        _ => Tier::Standard,
    };
    Some(Route {
        action,
        priority,
        status: HealthStatus::Red,
        tier,
        reason: "reconciled from the issue's labels".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_back_the_route() {
        let labels: Vec<String> = [
            "cluster-doctor",
            "priority/P0",
            "tier/critical",
            "action/escalate",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let config = LabelsConfig::default();
        let r = route_from_labels(&labels, &config).unwrap();
        assert_eq!(
            (r.action, r.priority, r.tier),
            (Action::Escalate, Some(Priority::P0), Tier::Critical)
        );
        assert!(route_from_labels(&["cluster-doctor".to_string()], &config).is_none());
    }
}
