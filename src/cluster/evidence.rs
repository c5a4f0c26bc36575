//! Evidence: what the cluster shows about a failing workload right now.
//!
//! Its troubled pods (not ready, a container that cannot start, restarts) with waiting
//! reasons, last termination reason and exit code, restart counts and nodes; its recent
//! Warning events, grouped by reason with counts, over the workload, its ReplicaSets or
//! Jobs, and its pods; and its conditions that are not as they should be. Messages are
//! passed through the redactor here, because this is where cluster text is copied out.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::model::{PodView, StoredEvent, Workload, WorkloadState};
use super::snapshot::Snapshot;
use crate::triage::context::{
    ConditionEvidence, ContainerEvidence, EventGroup, Evidence, PodEvidence,
};
use crate::triage::redact::Redactor;

/// How much evidence one context carries.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceLimits {
    pub pods: usize,
    pub event_groups: usize,
    pub objects_per_group: usize,
}

impl Default for EvidenceLimits {
    fn default() -> Self {
        EvidenceLimits {
            pods: 10,
            event_groups: 10,
            objects_per_group: 5,
        }
    }
}

fn redact_opt(r: &Redactor, s: &Option<String>) -> Option<String> {
    s.as_deref().map(|s| r.redact_owned(s))
}

pub fn pod_evidence(p: &PodView, r: &Redactor) -> PodEvidence {
    PodEvidence {
        name: p.name.clone(),
        node: p.node.clone(),
        phase: p.phase.clone(),
        ready: p.ready,
        containers: p
            .containers
            .iter()
            .map(|c| ContainerEvidence {
                name: if c.init {
                    format!("{} (init)", c.name)
                } else {
                    c.name.clone()
                },
                ready: c.ready,
                restart_count: c.restart_count,
                waiting_reason: c
                    .waiting_reason
                    .clone()
                    .or_else(|| c.terminated_reason.clone()),
                waiting_message: redact_opt(r, &c.waiting_message),
                last_termination_reason: c.last_reason.clone(),
                last_exit_code: c.last_exit_code.or(c.terminated_exit_code),
                last_finished_at: c.last_finished_at,
            })
            .collect(),
    }
}

/// Pods worth showing, worst first: the focus pod (the one a signal names), then pods
/// that are not ready, then by restarts.
fn pick_pods<'a>(
    pods: &[&'a PodView],
    focus: Option<&'a PodView>,
    limit: usize,
) -> Vec<&'a PodView> {
    let mut troubled: Vec<&PodView> = pods
        .iter()
        .copied()
        .filter(|p| p.is_troubled() && focus.is_none_or(|f| f.name != p.name))
        .collect();
    troubled.sort_by(|a, b| {
        (
            a.ready,
            std::cmp::Reverse(a.failing_wait().is_some()),
            std::cmp::Reverse(a.restarts()),
            &a.name,
        )
            .cmp(&(
                b.ready,
                std::cmp::Reverse(b.failing_wait().is_some()),
                std::cmp::Reverse(b.restarts()),
                &b.name,
            ))
    });
    focus.into_iter().chain(troubled).take(limit).collect()
}

struct Group {
    count: i64,
    last_seen: Option<Timestamp>,
    message: Option<String>,
    /// (last seen, Kind/name), most recent first after sorting.
    objects: Vec<(Option<Timestamp>, String)>,
}

/// Groups events by reason; each comes with the `Kind/name` of its object.
fn group_events<'a>(
    events: impl Iterator<Item = (&'a str, &'a StoredEvent)>,
    r: &Redactor,
    limits: &EvidenceLimits,
) -> Vec<EventGroup> {
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    for (object, e) in events {
        let g = groups.entry(&*e.reason).or_insert(Group {
            count: 0,
            last_seen: None,
            message: None,
            objects: Vec::new(),
        });
        g.count += e.count;
        if g.message.is_none() || e.last_seen > g.last_seen {
            g.message = e.message.as_deref().map(str::to_string);
        }
        g.last_seen = g.last_seen.max(e.last_seen);
        match g.objects.iter_mut().find(|(_, o)| o == object) {
            Some(entry) => entry.0 = entry.0.max(e.last_seen),
            None => g.objects.push((e.last_seen, object.to_string())),
        }
    }
    let mut out: Vec<EventGroup> = groups
        .into_iter()
        .map(|(reason, mut g)| {
            g.objects
                .sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            EventGroup {
                reason: reason.to_string(),
                count: g.count,
                last_seen: g.last_seen,
                message: redact_opt(r, &g.message),
                objects: g
                    .objects
                    .into_iter()
                    .take(limits.objects_per_group)
                    .map(|(_, o)| o)
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then_with(|| a.reason.cmp(&b.reason))
    });
    out.truncate(limits.event_groups);
    out
}

/// Conditions that are not as they should be: Available/Progressing/Ready False;
/// ReplicaFailure/Failed/FailureTarget True.
fn bad_conditions(w: &Workload, r: &Redactor) -> Vec<ConditionEvidence> {
    w.conditions
        .iter()
        .filter(|c| match c.kind.as_str() {
            "Available" | "Progressing" | "Ready" => c.is_false(),
            "ReplicaFailure" | "Failed" | "FailureTarget" => c.is_true(),
            _ => false,
        })
        .map(|c| ConditionEvidence {
            kind: c.kind.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: redact_opt(r, &c.message),
            last_transition_time: c.last_transition,
        })
        .collect()
}

/// Evidence for a workload (and the pod a signal names, shown first).
pub fn for_workload(
    snapshot: &Snapshot,
    w: &Workload,
    pods: &[&PodView],
    focus: Option<&PodView>,
    r: &Redactor,
    limits: &EvidenceLimits,
) -> Evidence {
    let ns = w.namespace.as_str();
    let focus = focus.filter(|f| f.namespace == w.namespace);
    let mut sources: Vec<(String, &[StoredEvent])> = Vec::new();
    let mut add = |kind: &str, name: &str| {
        let events = snapshot.events_about(ns, kind, name);
        if !events.is_empty() {
            sources.push((format!("{kind}/{name}"), events));
        }
    };
    add(w.kind.as_str(), &w.name);
    let mut conditions = bad_conditions(w, r);
    match &w.state {
        WorkloadState::Deployment { .. } => {
            for rs in snapshot.replica_sets_of(ns, &w.name) {
                add("ReplicaSet", rs);
            }
        }
        WorkloadState::CronJob { .. } => {
            let mut jobs = snapshot.jobs_of(ns, &w.name);
            jobs.sort_by_key(|j| std::cmp::Reverse(j.created));
            for job in &jobs {
                add("Job", &job.name);
            }
            // The latest run's conditions say why the CronJob is failing.
            if let Some(job) = jobs.first() {
                conditions.extend(bad_conditions(job, r));
            }
        }
        _ => {}
    }
    for p in pods {
        add("Pod", &p.name);
    }
    if let Some(f) = focus
        && !pods.iter().any(|p| p.name == f.name)
    {
        add("Pod", &f.name);
    }
    let events = sources
        .iter()
        .flat_map(|(key, list)| list.iter().map(move |e| (key.as_str(), e)));
    Evidence {
        pods: pick_pods(pods, focus, limits.pods)
            .into_iter()
            .map(|p| pod_evidence(p, r))
            .collect(),
        events: group_events(events, r, limits),
        conditions,
    }
}

/// Evidence for a pod without a workload (bare, or its controller is unknown).
pub fn for_pod(
    snapshot: &Snapshot,
    p: &PodView,
    r: &Redactor,
    limits: &EvidenceLimits,
) -> Evidence {
    Evidence {
        pods: vec![pod_evidence(p, r)],
        events: {
            let key = format!("Pod/{}", p.name);
            group_events(
                snapshot
                    .events_about(&p.namespace, "Pod", &p.name)
                    .iter()
                    .map(|e| (key.as_str(), e)),
                r,
                limits,
            )
        },
        conditions: Vec::new(),
    }
}
