//! Health: red / yellow / green per workload, with the rule that decided in words and
//! since when.
//!
//! Red: nothing is serving (no ready replica, a failed Job). Yellow: degraded or a
//! rollout that is not complete (some but not all ready, progress deadline exceeded,
//! replica failure, old revision still running, a pod that cannot start). Green: all
//! desired ready and the rollout complete. The rules run in the order written; the
//! first that matches decides. docs/cluster.md has the same table for readers.
//!
//! "Since" comes from the condition a rule read when it read one (its
//! lastTransitionTime), else from when the live snapshot saw the workload's status
//! change ([`Observed`]); `None` when neither is known (a static file, or a status that
//! was already so when Triage started).

use jiff::Timestamp;

use super::model::{PodView, Workload, WorkloadState};
use super::snapshot::Snapshot;
use crate::triage::context::{Health, HealthStatus, Replicas};

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: HealthStatus,
    pub reason: String,
    /// The lastTransitionTime of the condition the rule read, if it read one.
    pub since: Option<Timestamp>,
}

impl Verdict {
    fn new(status: HealthStatus, reason: impl Into<String>) -> Verdict {
        Verdict {
            status,
            reason: reason.into(),
            since: None,
        }
    }

    fn at(mut self, since: Option<Timestamp>) -> Verdict {
        self.since = since;
        self
    }
}

use HealthStatus::{Green, Red, Yellow};

fn with_message(head: String, message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{head}: {m}"),
        _ => head,
    }
}

/// The workload's health from its own object alone (replica counts, conditions,
/// generations, revisions). Pods and Jobs are added by [`assess`].
pub fn own_verdict(w: &Workload) -> Verdict {
    let generation_lag = match (w.generation, w.observed_generation) {
        (Some(g), Some(o)) if o < g => Some((g, o)),
        _ => None,
    };
    match &w.state {
        WorkloadState::Deployment {
            desired,
            current,
            ready,
            updated,
            available: _,
            unavailable,
            paused,
        } => {
            let available = w.condition("Available");
            let progressing = w.condition("Progressing");
            let replica_failure = w.condition("ReplicaFailure").filter(|c| c.is_true());
            if *desired == 0 {
                return Verdict::new(Green, "scaled to zero");
            }
            if *ready == 0 {
                return Verdict::new(Red, format!("0 of {desired} replicas ready")).at(available
                    .filter(|c| c.is_false())
                    .and_then(|c| c.last_transition));
            }
            if let Some(p) = progressing
                .filter(|c| c.is_false() && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            {
                return Verdict::new(
                    Yellow,
                    with_message(
                        "rollout exceeded its progress deadline".into(),
                        p.message.as_deref(),
                    ),
                )
                .at(p.last_transition);
            }
            if let Some(c) = replica_failure {
                let head = match &c.reason {
                    Some(r) => format!("replica failure ({r})"),
                    None => "replica failure".into(),
                };
                return Verdict::new(Yellow, with_message(head, c.message.as_deref()))
                    .at(c.last_transition);
            }
            if ready < desired {
                return Verdict::new(Yellow, format!("{ready} of {desired} replicas ready"));
            }
            if let Some(a) = available.filter(|c| c.is_false()) {
                return Verdict::new(
                    Yellow,
                    with_message("not available".into(), a.message.as_deref()),
                )
                .at(a.last_transition);
            }
            if *paused && updated < desired {
                return Verdict::new(
                    Yellow,
                    format!("rollout paused with {updated} of {desired} replicas updated"),
                );
            }
            if let Some((g, o)) = generation_lag {
                return Verdict::new(
                    Yellow,
                    format!("rollout pending: controller has observed generation {o} of {g}"),
                );
            }
            if updated < desired || current > updated || *unavailable > 0 {
                return Verdict::new(
                    Yellow,
                    format!(
                        "rollout in progress: {updated} of {desired} replicas updated, {current} running, {unavailable} unavailable"
                    ),
                );
            }
            Verdict::new(
                Green,
                format!("all {desired} replicas ready and up to date"),
            )
        }
        WorkloadState::StatefulSet {
            desired,
            ready,
            updated,
            current_revision,
            update_revision,
            on_delete,
            partition,
            ..
        } => {
            if *desired == 0 {
                return Verdict::new(Green, "scaled to zero");
            }
            if *ready == 0 {
                return Verdict::new(Red, format!("0 of {desired} replicas ready"));
            }
            if ready < desired {
                return Verdict::new(Yellow, format!("{ready} of {desired} replicas ready"));
            }
            if let Some((g, o)) = generation_lag {
                return Verdict::new(
                    Yellow,
                    format!("rollout pending: controller has observed generation {o} of {g}"),
                );
            }
            let revisions_differ = matches!(
                (current_revision, update_revision),
                (Some(c), Some(u)) if c != u
            );
            let expected = (desired - partition).max(0);
            if revisions_differ && !on_delete && *updated < expected {
                return Verdict::new(
                    Yellow,
                    format!(
                        "rollout in progress: {updated} of {expected} replicas on revision {}",
                        update_revision.as_deref().unwrap_or("?")
                    ),
                );
            }
            if revisions_differ && *on_delete {
                return Verdict::new(
                    Green,
                    format!(
                        "all {desired} replicas ready ({} on the new revision; OnDelete waits for pods to be deleted)",
                        updated
                    ),
                );
            }
            Verdict::new(Green, format!("all {desired} replicas ready"))
        }
        WorkloadState::DaemonSet {
            desired,
            ready,
            unavailable,
            updated,
            on_delete,
            ..
        } => {
            if *desired == 0 {
                return Verdict::new(Green, "no node to run on");
            }
            if *ready == 0 {
                return Verdict::new(Red, format!("0 of {desired} pods ready"));
            }
            if ready < desired || *unavailable > 0 {
                return Verdict::new(
                    Yellow,
                    format!("{ready} of {desired} pods ready, {unavailable} unavailable"),
                );
            }
            if let Some((g, o)) = generation_lag {
                return Verdict::new(
                    Yellow,
                    format!("rollout pending: controller has observed generation {o} of {g}"),
                );
            }
            let updated = updated.unwrap_or(0);
            if !on_delete && updated < *desired {
                return Verdict::new(
                    Yellow,
                    format!("rollout in progress: {updated} of {desired} pods updated"),
                );
            }
            Verdict::new(Green, format!("all {desired} pods ready"))
        }
        WorkloadState::Job {
            active,
            failed,
            backoff_limit,
            suspended,
            ..
        } => {
            for kind in ["Failed", "FailureTarget"] {
                if let Some(c) = w.condition(kind).filter(|c| c.is_true()) {
                    let head = match &c.reason {
                        Some(r) => format!("job failed ({r})"),
                        None => "job failed".into(),
                    };
                    return Verdict::new(Red, with_message(head, c.message.as_deref()))
                        .at(c.last_transition);
                }
            }
            for kind in ["Complete", "SuccessCriteriaMet"] {
                if let Some(c) = w.condition(kind).filter(|c| c.is_true()) {
                    return Verdict::new(Green, "completed").at(c.last_transition);
                }
            }
            if *suspended {
                return Verdict::new(Green, "suspended");
            }
            if *failed > 0 {
                let limit =
                    backoff_limit.map_or(String::new(), |l| format!(" (backoff limit {l})"));
                return Verdict::new(
                    Yellow,
                    format!("{failed} failed attempt(s) so far, retrying{limit}"),
                );
            }
            if *active > 0 {
                return Verdict::new(Green, format!("running ({active} active)"));
            }
            Verdict::new(Green, "not started yet")
        }
        WorkloadState::CronJob { suspended, .. } => {
            if *suspended {
                Verdict::new(Green, "suspended")
            } else {
                Verdict::new(Green, "no run in the snapshot")
            }
        }
    }
}

/// A Job is finished when it has a terminal condition.
fn finished(job: &Workload) -> bool {
    ["Failed", "FailureTarget", "Complete", "SuccessCriteriaMet"]
        .iter()
        .any(|k| job.condition(k).is_some_and(|c| c.is_true()))
}

/// The health of a workload in its snapshot: its own verdict, the last runs of a
/// CronJob, and pods that cannot start.
pub fn assess(w: &Workload, snapshot: &Snapshot) -> Health {
    assess_with(w, snapshot, &snapshot.pods_of(w))
}

/// [`assess`] with the workload's pods already looked up (`Snapshot::pods_of`).
pub fn assess_with(w: &Workload, snapshot: &Snapshot, pods: &[&PodView]) -> Health {
    let mut verdict = own_verdict(w);
    let own_status = verdict.status;

    if let WorkloadState::CronJob { suspended, .. } = &w.state {
        // The last finished run decides, unless the run in progress already looks worse:
        // a failing CronJob must not flip to green each time a new run starts.
        let mut jobs = snapshot.jobs_of(&w.namespace, &w.name);
        jobs.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
        let last_finished = jobs.iter().find(|j| finished(j));
        let latest = jobs.first().filter(|j| !finished(j));
        let mut candidates: Vec<(&Workload, Health)> = last_finished
            .into_iter()
            .chain(latest)
            .map(|j| (*j, assess(j, snapshot)))
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.1.status));
        if let Some((job, h)) = candidates.into_iter().next() {
            let suffix = if *suspended {
                " (CronJob suspended)"
            } else {
                ""
            };
            verdict = Verdict {
                status: h.status,
                reason: format!("last run job/{}: {}{suffix}", job.name, h.reason),
                since: h.since,
            };
        }
    }

    if verdict.status == Green
        && !matches!(w.state, WorkloadState::CronJob { .. })
        && let Some(v) = failing_pods(pods)
    {
        verdict = v;
    }

    let since = verdict.since.or_else(|| {
        w.observed
            .filter(|o| o.status == verdict.status && o.status == own_status)
            .and_then(|o| o.since)
    });
    Health {
        status: verdict.status,
        reason: verdict.reason,
        since,
        replicas: replicas(w),
    }
}

/// Yellow when a pod has a container that cannot run although the counts look fine
/// (a crash loop between restarts, a new pod that cannot pull its image).
fn failing_pods(pods: &[&PodView]) -> Option<Verdict> {
    let failing: Vec<(&PodView, &str, &str)> = pods
        .iter()
        .filter_map(|p| p.failing_wait().map(|(c, r)| (*p, c, r)))
        .collect();
    let (pod, container, reason) = failing.first()?;
    let more = match failing.len() {
        1 => String::new(),
        n => format!(" (and {} more pods)", n - 1),
    };
    Some(
        Verdict::new(
            Yellow,
            format!(
                "pod {}: container {container} is in {reason}{more}",
                pod.name
            ),
        )
        .at(failing.iter().filter_map(|(p, _, _)| p.ready_since).min()),
    )
}

/// The health of a pod without a controller: it is its own only replica.
pub fn pod_health(p: &PodView) -> Health {
    let ready = i32::from(p.ready);
    let replicas = Replicas {
        desired: 1,
        ready,
        updated: 1,
        available: ready,
        unavailable: 1 - ready,
    };
    let (status, reason) = match (p.phase.as_deref(), p.ready, p.failing_wait()) {
        (Some("Succeeded"), _, _) => (Green, "completed".to_string()),
        (Some("Failed"), _, _) => (
            Red,
            format!(
                "pod failed{}",
                p.reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(" ({r})"))
            ),
        ),
        (_, true, _) => (Green, "ready".to_string()),
        (_, false, Some((c, r))) => (Red, format!("container {c} is in {r}")),
        (phase, false, None) => (
            Red,
            format!("not ready (phase {})", phase.unwrap_or("unknown")),
        ),
    };
    Health {
        status,
        reason,
        since: p.ready_since,
        replicas,
    }
}

/// Replica figures for the context. Jobs: desired = completions, ready = succeeded,
/// available = active, unavailable = failed. CronJobs: available = active runs.
pub fn replicas(w: &Workload) -> Replicas {
    match &w.state {
        WorkloadState::Deployment {
            desired,
            ready,
            updated,
            available,
            unavailable,
            ..
        } => Replicas {
            desired: *desired,
            ready: *ready,
            updated: *updated,
            available: *available,
            unavailable: *unavailable,
        },
        WorkloadState::StatefulSet {
            desired,
            ready,
            updated,
            available,
            ..
        } => Replicas {
            desired: *desired,
            ready: *ready,
            updated: *updated,
            available: *available,
            unavailable: (desired - available).max(0),
        },
        WorkloadState::DaemonSet {
            desired,
            ready,
            available,
            unavailable,
            updated,
            ..
        } => Replicas {
            desired: *desired,
            ready: *ready,
            updated: updated.unwrap_or(0),
            available: *available,
            unavailable: *unavailable,
        },
        WorkloadState::Job {
            active,
            succeeded,
            failed,
            completions,
            ..
        } => Replicas {
            desired: completions.unwrap_or(1),
            ready: *succeeded,
            updated: 0,
            available: *active,
            unavailable: *failed,
        },
        WorkloadState::CronJob { active, .. } => Replicas {
            available: *active,
            ..Replicas::default()
        },
    }
}
