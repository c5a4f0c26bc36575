//! Dependencies: `deployscope.dev/depends-on` names resolved to workloads.
//!
//! A name resolves, in this order: a workload of that name in the dependent's own
//! namespace; `namespace/name` exactly; a name that is unique across the cluster.
//! Several matches at one step make the name ambiguous (candidates listed, none
//! chosen); no match anywhere makes it missing. Ignored workloads and Jobs run by a
//! CronJob are not candidates.

use super::health;
use super::model::Workload;
use super::owners::is_visible;
use super::snapshot::Snapshot;
use crate::triage::context::{Dependency, DependencyResolution, HealthStatus};

fn candidates<'a>(snapshot: &'a Snapshot, found: Vec<&'a Workload>) -> Vec<&'a Workload> {
    found
        .into_iter()
        .filter(|w| is_visible(snapshot, w))
        .collect()
}

fn resolved(snapshot: &Snapshot, name: &str, w: &Workload) -> Dependency {
    let h = health::assess(w, snapshot);
    Dependency {
        name: name.to_string(),
        resolution: DependencyResolution::Resolved,
        workload: Some(w.reference()),
        health: Some(h.status),
        reason: Some(h.reason),
    }
}

fn ambiguous(name: &str, found: &[&Workload], scope: &str) -> Dependency {
    let list: Vec<String> = found.iter().map(|w| w.reference().to_string()).collect();
    Dependency {
        name: name.to_string(),
        resolution: DependencyResolution::Ambiguous(list.clone()),
        workload: None,
        health: None,
        reason: Some(format!(
            "{} workloads {scope} are named {name:?}: {}; write namespace/name",
            found.len(),
            list.join(", ")
        )),
    }
}

fn missing(name: &str, reason: String) -> Dependency {
    Dependency {
        name: name.to_string(),
        resolution: DependencyResolution::Missing,
        workload: None,
        health: None,
        reason: Some(reason),
    }
}

/// Resolves one `depends-on` name for a workload in `namespace`.
pub fn resolve_one(snapshot: &Snapshot, namespace: &str, name: &str) -> Dependency {
    if let Some((ns, bare)) = name.split_once('/') {
        let found = candidates(snapshot, snapshot.workloads_named_in(ns, bare));
        return match found.as_slice() {
            [w] => resolved(snapshot, name, w),
            [] => missing(
                name,
                format!("no workload named {bare:?} in namespace {ns}"),
            ),
            many => ambiguous(name, many, &format!("in namespace {ns}")),
        };
    }
    let local = candidates(snapshot, snapshot.workloads_named_in(namespace, name));
    match local.as_slice() {
        [w] => return resolved(snapshot, name, w),
        [] => {}
        many => return ambiguous(name, many, &format!("in namespace {namespace}")),
    }
    let anywhere = candidates(snapshot, snapshot.workloads_named(name));
    match anywhere.as_slice() {
        [w] => resolved(snapshot, name, w),
        [] => missing(
            name,
            format!(
                "no workload named {name:?} in namespace {namespace} or elsewhere in the cluster"
            ),
        ),
        many => ambiguous(name, many, "across the cluster"),
    }
}

pub fn resolve(snapshot: &Snapshot, namespace: &str, names: &[String]) -> Vec<Dependency> {
    names
        .iter()
        .map(|n| resolve_one(snapshot, namespace, n))
        .collect()
}

/// The upstream most likely behind a failure, in words: the first red dependency; else
/// the first yellow one, said more softly.
pub fn likely_cause(deps: &[Dependency]) -> Option<String> {
    let pick = |status| {
        deps.iter()
            .find(|d| d.health == Some(status))
            .and_then(|d| Some((d, d.workload.as_ref()?)))
    };
    if let Some((d, w)) = pick(HealthStatus::Red) {
        return Some(format!(
            "upstream {w} is red: {}",
            d.reason.as_deref().unwrap_or("not ready")
        ));
    }
    pick(HealthStatus::Yellow).map(|(d, w)| {
        format!(
            "upstream {w} is degraded (yellow): {}; it may be related",
            d.reason.as_deref().unwrap_or("degraded")
        )
    })
}
