//! Deterministic routing: tier × status → action and priority.
//!
//! A table, not judgment (see DESIGN.md "Default routing"). The built-in table can be
//! overridden cell by cell from config.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::context::{Context, HealthStatus, Tier};
use crate::config::RoutingConfig;
use crate::signal::{Signal, SignalKind, SignalStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Escalate,
    Warn,
    Inform,
    Log,
    /// No work order.
    Observe,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Escalate,
        Action::Warn,
        Action::Inform,
        Action::Log,
        Action::Observe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Escalate => "escalate",
            Action::Warn => "warn",
            Action::Inform => "inform",
            Action::Log => "log",
            Action::Observe => "observe",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P0 => "P0",
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The routing decision for one signal in its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub action: Action,
    /// `None` exactly when `action` is `Observe`.
    pub priority: Option<Priority>,
    /// The status the table was read with (a resolved signal maps to green).
    pub status: HealthStatus,
    /// The tier the table was read with (missing or unknown → standard).
    pub tier: Tier,
    /// Why, in words: "critical workload, red (0 of 3 ready) → escalate P0".
    pub reason: String,
}

impl Route {
    /// True when this route asks for a work order at all.
    pub fn wants_work_order(&self) -> bool {
        self.action != Action::Observe
    }
}

// ---------------------------------------------------------------------------------------
// The table

/// One cell of the table: what a tier × status leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    pub action: Action,
    pub priority: Option<Priority>,
}

impl Cell {
    const fn new(action: Action, priority: Priority) -> Cell {
        Cell {
            action,
            priority: Some(priority),
        }
    }

    const OBSERVE: Cell = Cell {
        action: Action::Observe,
        priority: None,
    };

    /// `escalate/P0`, or `observe`.
    pub fn parse(text: &str) -> Result<Cell, String> {
        let text = text.trim();
        let (action, priority) = match text.split_once('/') {
            Some((a, p)) => (a.trim(), Some(p.trim())),
            None => (text, None),
        };
        let action = Action::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(action))
            .ok_or_else(|| {
                format!(
                    "unknown action {action:?}; expected one of escalate, warn, inform, log, observe"
                )
            })?;
        let priority = match priority {
            None => None,
            Some(p) => Some(
                [Priority::P0, Priority::P1, Priority::P2, Priority::P3]
                    .into_iter()
                    .find(|x| x.as_str().eq_ignore_ascii_case(p))
                    .ok_or_else(|| format!("unknown priority {p:?}; expected P0, P1, P2 or P3"))?,
            ),
        };
        match (action, priority) {
            (Action::Observe, Some(_)) => {
                Err("observe means no work order and takes no priority; write \"observe\"".into())
            }
            (Action::Observe, None) => Ok(Cell::OBSERVE),
            (a, None) => Err(format!(
                "{a} needs a priority, e.g. \"{a}/P1\" (only observe goes without)"
            )),
            (action, priority) => Ok(Cell { action, priority }),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.priority {
            Some(p) => write!(f, "{} {p}", self.action),
            None => write!(f, "{}", self.action),
        }
    }
}

/// The built-in table (DESIGN.md "Default routing"). Green is not in the table: a
/// recovered workload never asks for a new work order (see [`RoutingTable::decide`]).
pub fn default_cell(tier: Tier, status: HealthStatus) -> Cell {
    use Action::*;
    use Priority::*;
    match (tier, status) {
        (_, HealthStatus::Green) => Cell::OBSERVE,
        (Tier::Critical, HealthStatus::Red) => Cell::new(Escalate, P0),
        (Tier::Critical, HealthStatus::Yellow) => Cell::new(Warn, P1),
        (Tier::Standard, HealthStatus::Red) => Cell::new(Inform, P1),
        (Tier::Standard, HealthStatus::Yellow) => Cell::new(Log, P2),
        (Tier::BestEffort, HealthStatus::Red) => Cell::new(Log, P2),
        (Tier::BestEffort, HealthStatus::Yellow) => Cell::OBSERVE,
    }
}

const TIERS: [Tier; 3] = [Tier::Critical, Tier::Standard, Tier::BestEffort];

/// The default table with the `[routing] table` overrides applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingTable {
    overrides: BTreeMap<(Tier, HealthStatus), Cell>,
}

impl RoutingTable {
    /// Reads `[routing] table`: keys `<tier>.<status>` (tier critical, standard or
    /// best-effort; status red or yellow), values `<action>/<priority>` or `observe`.
    /// Every invalid entry is an error naming `routing.table."<key>"`.
    pub fn from_config(config: &RoutingConfig) -> anyhow::Result<RoutingTable> {
        let mut overrides = BTreeMap::new();
        for (key, value) in &config.table {
            let name = format!("routing.table.\"{key}\"");
            let (tier, status) = key.split_once('.').ok_or_else(|| {
                anyhow::anyhow!(
                    "{name}: a key is <tier>.<status>, e.g. \"critical.red\" or \"best-effort.yellow\""
                )
            })?;
            let tier = TIERS
                .into_iter()
                .find(|t| t.as_str().eq_ignore_ascii_case(tier.trim()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{name}: unknown tier {tier:?}; expected critical, standard or best-effort"
                    )
                })?;
            let status = match status.trim().to_ascii_lowercase().as_str() {
                "red" => HealthStatus::Red,
                "yellow" => HealthStatus::Yellow,
                "green" => anyhow::bail!(
                    "{name}: green cannot be routed: a recovered workload never opens a work order (it resolves the open one)"
                ),
                other => {
                    anyhow::bail!("{name}: unknown status {other:?}; expected red or yellow")
                }
            };
            let cell =
                Cell::parse(value).map_err(|e| anyhow::anyhow!("{name} = {value:?}: {e}"))?;
            overrides.insert((tier, status), cell);
        }
        Ok(RoutingTable { overrides })
    }

    /// The cell for a tier and status, and whether it came from an override.
    pub fn cell(&self, tier: Tier, status: HealthStatus) -> (Cell, bool) {
        match self.overrides.get(&(tier, status)) {
            Some(cell) if status != HealthStatus::Green => (*cell, true),
            _ => (default_cell(tier, status), false),
        }
    }

    /// The route for a tier (`None`: missing or unknown, read as standard) and status,
    /// with `why` (the status reason in words) folded into the reason.
    pub fn decide(&self, tier: Option<Tier>, status: HealthStatus, why: &str) -> Route {
        let tier_known = tier.is_some();
        let tier = tier.unwrap_or(Tier::Standard);
        let (cell, overridden) = self.cell(tier, status);
        let tier_words = if tier_known {
            format!("{} tier", tier.as_str())
        } else {
            "no tier (read as standard)".to_string()
        };
        let outcome = if status == HealthStatus::Green {
            "observe (recovered: no new work order; an open one follows its lifecycle)".to_string()
        } else if cell.action == Action::Observe {
            "observe (no work order)".to_string()
        } else {
            cell.to_string()
        };
        let source = if overridden {
            format!(" [routing.table.\"{}.{}\"]", tier.as_str(), status.as_str())
        } else {
            String::new()
        };
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        };
        Route {
            action: cell.action,
            priority: cell.priority,
            status,
            tier,
            reason: format!("{tier_words}, {}{why} → {outcome}{source}", status.as_str()),
        }
    }

    /// A route that asks for nothing, with the reason given (ignored workloads).
    pub fn observe(tier: Option<Tier>, status: HealthStatus, reason: String) -> Route {
        Route {
            action: Action::Observe,
            priority: None,
            status,
            tier: tier.unwrap_or(Tier::Standard),
            reason,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signal + context → status → route

/// Alert severities that make a firing alert red, and those that add nothing.
const RED_SEVERITIES: [&str; 6] = ["critical", "page", "high", "error", "emergency", "fatal"];
const QUIET_SEVERITIES: [&str; 5] = ["info", "informational", "none", "low", "debug"];

/// What the signal itself says, given the current state of its Argo CD application
/// (the context's app, from the live watch when Triage has one, else from the signal):
/// the floor under the workload's health.
fn signal_floor(signal: &Signal, ctx: &Context) -> Option<(HealthStatus, String)> {
    let app = ctx.app.as_ref();
    match signal.kind {
        SignalKind::SyncFailed => match app.and_then(|a| a.operation_phase.as_deref()) {
            None => Some((HealthStatus::Red, "sync failed".into())),
            Some(p @ ("Failed" | "Error")) => {
                Some((HealthStatus::Red, format!("sync failed (operation {p})")))
            }
            Some(p @ ("Running" | "Terminating")) => Some((
                HealthStatus::Yellow,
                format!("sync failed and is being retried (operation {p})"),
            )),
            // Succeeded since: the failure is over; the workload's health decides.
            Some(_) => None,
        },
        SignalKind::Degraded => match app.and_then(|a| a.health.as_deref()) {
            None | Some("Degraded") => Some((
                HealthStatus::Yellow,
                "Argo CD reports the application Degraded".into(),
            )),
            Some("Missing") => Some((
                HealthStatus::Red,
                "Argo CD reports the application's resources Missing".into(),
            )),
            Some("Unknown") => Some((
                HealthStatus::Yellow,
                "Argo CD reports the application's health Unknown".into(),
            )),
            Some(_) => None,
        },
        SignalKind::SyncUnknown => match app.and_then(|a| a.sync.as_deref()) {
            None | Some("Unknown") => Some((
                HealthStatus::Yellow,
                "Argo CD cannot compare the application with its source (sync status Unknown)"
                    .into(),
            )),
            Some(_) => None,
        },
        SignalKind::Alert => {
            let name = signal
                .alert
                .as_ref()
                .map_or(signal.title.as_str(), |a| a.name.as_str());
            let severity = signal
                .labels
                .get("severity")
                .map(|s| s.trim().to_ascii_lowercase());
            match severity.as_deref() {
                Some(s) if RED_SEVERITIES.contains(&s) => Some((
                    HealthStatus::Red,
                    format!("alert {name} firing with severity {s}"),
                )),
                Some(s) if QUIET_SEVERITIES.contains(&s) => None,
                Some(s) => Some((
                    HealthStatus::Yellow,
                    format!("alert {name} firing with severity {s}"),
                )),
                None => Some((
                    HealthStatus::Yellow,
                    format!("alert {name} firing without severity"),
                )),
            }
        }
        SignalKind::Recovered | SignalKind::Informational => None,
    }
}

/// The status the table is read with, and why in words. A resolved or recovered signal
/// is green. Otherwise the worse of the workload's health (when known) and what the
/// signal itself says ([`signal_floor`]); green when neither says anything is wrong.
pub fn status_for(signal: &Signal, ctx: &Context) -> (HealthStatus, String) {
    if signal.status == SignalStatus::Resolved {
        return (HealthStatus::Green, "the signal is resolved".into());
    }
    match signal.kind {
        SignalKind::Recovered => {
            return (
                HealthStatus::Green,
                "Argo CD reports the application deployed and healthy".into(),
            );
        }
        SignalKind::Informational => {
            return (HealthStatus::Green, "informational notification".into());
        }
        _ => {}
    }
    let health = ctx.health.as_ref().map(|h| (h.status, h.reason.clone()));
    match (health, signal_floor(signal, ctx)) {
        (Some((hs, hr)), Some((fs, fr))) if fs > hs => {
            (fs, format!("{fr}; the workload is {}: {hr}", hs.as_str()))
        }
        (Some(h), _) => h,
        (None, Some(f)) => f,
        (None, None) => (
            HealthStatus::Green,
            "nothing is failing now (no workload health, and the signal reports no failure)".into(),
        ),
    }
}

/// The route for a signal in its context: ignored workloads observe; everything else
/// reads the table with the context's tier and [`status_for`].
pub fn route(table: &RoutingTable, signal: &Signal, ctx: &Context) -> Route {
    let tier = ctx.annotations.tier;
    let (status, why) = status_for(signal, ctx);
    if ctx.ignored {
        let what = ctx
            .workload
            .as_ref()
            .map_or_else(|| "the workload".to_string(), ToString::to_string);
        return RoutingTable::observe(
            tier,
            status,
            format!(
                "{what} is ignored (deployscope.dev/ignore: \"true\") → observe (no work order)"
            ),
        );
    }
    table.decide(tier, status, &why)
}
