//! Readiness: named components, each ready or not with a detail string. `/readyz`
//! answers 200 when all are ready, else 503 listing what is not. Components are set by
//! their owners (the journal check, the cluster snapshot, shutdown).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentState {
    pub ready: bool,
    pub detail: String,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<RwLock<BTreeMap<String, ComponentState>>>,
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

    pub fn report(&self) -> ReadinessReport {
        let map = self
            .components
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ReadinessReport {
            ready: map.values().all(|c| c.ready),
            components: map.clone(),
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
}
