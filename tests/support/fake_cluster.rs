//! A fake cluster for tests below the HTTP edge: an `Assessor` over a table of
//! Deployments whose health the test changes at will. Pods resolve to their Deployment
//! by name (`store-front-7d9f-abc` → `store-front`), Argo CD apps by equal name.

use std::collections::BTreeMap;
use std::sync::Mutex;

use triage::signal::{Signal, SignalStatus, Subject, WorkloadKind};
use triage::triage::Assessor;
use triage::triage::context::{
    AppRef, ClusterInfo, Context, Health, HealthStatus, Replicas, SnapshotState, Tier, WorkloadRef,
};
use triage::triage::route::{Action, Priority, Route};

pub struct FakeCluster {
    namespace: String,
    workloads: Mutex<BTreeMap<String, (Tier, HealthStatus)>>,
}

impl FakeCluster {
    pub fn new(namespace: &str) -> Self {
        FakeCluster {
            namespace: namespace.into(),
            workloads: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn set(&self, name: &str, tier: Tier, health: HealthStatus) {
        self.workloads
            .lock()
            .unwrap()
            .insert(name.to_string(), (tier, health));
    }

    pub fn set_health(&self, name: &str, health: HealthStatus) {
        if let Some(w) = self.workloads.lock().unwrap().get_mut(name) {
            w.1 = health;
        }
    }

    fn workload_of(&self, signal: &Signal) -> Option<String> {
        let name = match &signal.subject {
            Subject::Pod { name, .. } => {
                let mut parts: Vec<&str> = name.split('-').collect();
                if parts.len() > 2 {
                    parts.truncate(parts.len() - 2);
                }
                parts.join("-")
            }
            Subject::Workload { name, .. } | Subject::Application { name, .. } => name.clone(),
            Subject::Other { .. } => return None,
        };
        self.workloads
            .lock()
            .unwrap()
            .contains_key(&name)
            .then_some(name)
    }
}

impl Assessor for FakeCluster {
    fn enrich(&self, signal: &Signal) -> Context {
        let mut c = Context::unknown(ClusterInfo {
            name: "prod".into(),
            state: SnapshotState::Static,
        });
        let Some(name) = self.workload_of(signal) else {
            return c;
        };
        let (tier, health) = self.workloads.lock().unwrap()[&name];
        c.workload = Some(WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: self.namespace.clone(),
            name: name.clone(),
        });
        c.app = Some(AppRef {
            namespace: Some("argocd".into()),
            name: name.clone(),
            health: Some(
                if health == HealthStatus::Green {
                    "Healthy"
                } else {
                    "Degraded"
                }
                .into(),
            ),
            sync: Some("Synced".into()),
            operation_phase: Some("Succeeded".into()),
        });
        c.annotations.tier = Some(tier);
        c.annotations.owner = Some("team-pets".into());
        c.health = Some(Health {
            status: health,
            reason: match health {
                HealthStatus::Green => "3 of 3 replicas ready".into(),
                HealthStatus::Yellow => "1 of 3 replicas ready".into(),
                HealthStatus::Red => "0 of 3 replicas ready".into(),
            },
            since: None,
            replicas: Replicas::default(),
        });
        c
    }

    fn route(&self, signal: &Signal, context: &Context) -> Route {
        let tier = context.annotations.tier.unwrap_or(Tier::Standard);
        let status = match (signal.status, context.health.as_ref().map(|h| h.status)) {
            (SignalStatus::Resolved, _) => HealthStatus::Green,
            (_, Some(HealthStatus::Green)) | (_, None) => HealthStatus::Yellow,
            (_, Some(s)) => s,
        };
        let (action, priority) = match (tier, status) {
            (_, HealthStatus::Green) => (Action::Observe, None),
            (Tier::Critical, HealthStatus::Red) => (Action::Escalate, Some(Priority::P0)),
            (Tier::Critical, HealthStatus::Yellow) => (Action::Warn, Some(Priority::P1)),
            (Tier::Standard, HealthStatus::Red) => (Action::Inform, Some(Priority::P1)),
            (Tier::Standard, HealthStatus::Yellow) => (Action::Log, Some(Priority::P2)),
            (Tier::BestEffort, HealthStatus::Red) => (Action::Log, Some(Priority::P2)),
            (Tier::BestEffort, HealthStatus::Yellow) => (Action::Observe, None),
        };
        Route {
            action,
            priority,
            status,
            tier,
            reason: format!("{} workload, {} → {action}", tier.as_str(), status.as_str()),
        }
    }
}
