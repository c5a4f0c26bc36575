//! Readiness: named components, each ready or not with a detail string. `/readyz`
//! answers 200 when all are ready, else 503 listing what is not. Components are set by
//! their owners (the journal check, shutdown) or, when their state changes on its own
//! (a cluster snapshot syncing, losing its API server), read through a probe at each
//! report so `/readyz` never shows a stale answer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentState {
    pub ready: bool,
    pub detail: String,
}

/// Computes a component's state when `/readyz` is asked.
pub type Probe = Arc<dyn Fn() -> ComponentState + Send + Sync>;

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    components: Arc<RwLock<BTreeMap<String, ComponentState>>>,
    probes: Arc<RwLock<BTreeMap<String, Probe>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("report", &self.report())
            .finish()
    }
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessReport {
    pub ready: bool,
    pub components: BTreeMap<String, ComponentState>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or adds) a component.
    pub fn set(&self, component: &str, ready: bool, detail: impl Into<String>) {
        let state = ComponentState {
            ready,
            detail: detail.into(),
        };
        let mut map = self
            .components
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(component.to_string(), state);
    }

    pub fn set_ready(&self, component: &str, detail: impl Into<String>) {
        self.set(component, true, detail);
    }

    pub fn set_not_ready(&self, component: &str, detail: impl Into<String>) {
        self.set(component, false, detail);
    }

    /// Adds (or replaces) a component whose state `probe` computes at each report.
    pub fn add_probe(&self, component: &str, probe: Probe) {
        self.probes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(component.to_string(), probe);
    }

    pub fn report(&self) -> ReadinessReport {
        let mut components = self
            .components
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let probes = self
            .probes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, probe) in probes.iter() {
            components.insert(name.clone(), probe());
        }
        ReadinessReport {
            ready: components.values().all(|c| c.ready),
            components,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let r = Readiness::new();
        assert!(r.report().ready, "no components: nothing is waiting");
        r.set_ready("journal", "sqlite writable");
        r.set_not_ready("cluster:prod", "initial list in progress");
        let report = r.report();
        assert!(!report.ready);
        assert_eq!(
            report.components["cluster:prod"].detail,
            "initial list in progress"
        );
        r.clone().set_ready("cluster:prod", "synced");
        assert!(r.report().ready);
    }

    #[test]
    fn probes_are_read_at_each_report() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let r = Readiness::new();
        let synced = Arc::new(AtomicBool::new(false));
        let seen = synced.clone();
        r.add_probe(
            "cluster:prod",
            Arc::new(move || ComponentState {
                ready: seen.load(Ordering::Relaxed),
                detail: "probed".into(),
            }),
        );
        assert!(!r.report().ready);
        synced.store(true, Ordering::Relaxed);
        let report = r.report();
        assert!(report.ready);
        assert_eq!(report.components["cluster:prod"].detail, "probed");
    }
}
