//! The pure core: enrich, route, correlate, lifecycle. No IO here: functions of
//! (signal, cluster view, work-order state, now) → decisions.

pub mod context;
pub mod correlate;
pub mod enrich;
pub mod lifecycle;
pub mod redact;
pub mod route;
pub mod workorder;

use crate::signal::Signal;
use context::Context;
use route::Route;

/// What the pipeline asks of the cluster-aware core for each signal: the context the
/// cluster gives it right now, and the route that context leads to. Implemented over
/// the cluster snapshots by `enrich`; tests may implement it with fixed answers.
pub trait Assessor: Send + Sync {
    /// Never fails and never blocks: an unknown or unsynced cluster is said in the context.
    fn enrich(&self, signal: &Signal) -> Context;
    fn route(&self, signal: &Signal, context: &Context) -> Route;
}
