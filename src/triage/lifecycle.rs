//! Lifecycle: what to do with a work order when a signal arrives or its time comes.
//!
//! A pure state machine: `(state, signal + context + route | tick + fresh context, now)
//! → decisions`, with the clock passed in. The pipeline persists [`State`] in the store,
//! turns decisions into forge operations (outbox) and records them in the timeline.
//!
//! ```text
//!            firing (not observe)                 deadline: still failing
//!   quiet ───────────────────────▶ pending ───────────────────────────────▶ open ◀─┐
//!     ▲                            │    │ resolved in window /                │     │ firing again
//!     └────── suppress ────────────┘    │ snapshot healthy at deadline        │     │ (comment)
//!                                       ▼                                     ▼     │
//!   closed ◀── close (quiet period, auto_close) ─────────────────────── resolved ──┘
//!     │  firing within reopen_window → pending → reopen (same issue)
//!     └─ firing after it            → pending → open (new issue linking the old)
//! ```
//!
//! The failure a work order tracks is a set of **series**: one per Alertmanager alert
//! (fingerprint), one for the Argo CD app's health and one for its sync. The work order
//! is failing while a series is active; the live snapshot decides the series it can
//! observe (see [`State::failing`] for the exact rule, and `docs/workorders.md`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::context::{Context, HealthStatus, SnapshotState};
use super::route::{Action, Route};
use crate::config::LifecycleConfig;
use crate::signal::{ArgocdDetail, Signal, SignalKind, SignalStatus, Source, Subject};

/// Lifecycle settings, from `[lifecycle]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub debounce_escalate: Duration,
    pub debounce_warn: Duration,
    pub debounce_inform: Duration,
    pub debounce_log: Duration,
    pub comment_min_interval: Duration,
    pub reopen_window: Duration,
    pub close_after: Duration,
    pub auto_close: bool,
    pub recheck_interval: Duration,
    /// Alert names whose condition the snapshot observes directly (pod and workload
    /// health): the snapshot decides them like it decides Argo CD health.
    pub snapshot_alerts: BTreeSet<String>,
}

impl Rules {
    pub fn debounce(&self, action: Action) -> Duration {
        match action {
            Action::Escalate => self.debounce_escalate,
            Action::Warn => self.debounce_warn,
            Action::Inform => self.debounce_inform,
            // Observe never opens; the longest window is the safe answer if asked.
            Action::Log | Action::Observe => self.debounce_log,
        }
    }
}

impl From<&LifecycleConfig> for Rules {
    fn from(c: &LifecycleConfig) -> Self {
        Rules {
            debounce_escalate: c.debounce_escalate,
            debounce_warn: c.debounce_warn,
            debounce_inform: c.debounce_inform,
            debounce_log: c.debounce_log,
            comment_min_interval: c.comment_min_interval,
            reopen_window: c.reopen_window,
            close_after: c.close_after,
            auto_close: c.auto_close,
            recheck_interval: c.recheck_interval,
            snapshot_alerts: c.snapshot_alerts.iter().cloned().collect(),
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules::from(&LifecycleConfig::default())
    }
}

/// Where a work order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No failure being tracked and no issue ever filed (only observed, ignored or
    /// transient signals so far).
    Quiet,
    /// A failure is debouncing; the issue is opened at the deadline if it persists.
    Pending,
    /// The issue is open and the failure persists.
    Open,
    /// The failure cleared; the issue is still open while the quiet period runs
    /// (or until a human closes it, without `auto_close`).
    Resolved,
    /// The issue is closed.
    Closed,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Quiet,
        Phase::Pending,
        Phase::Open,
        Phase::Resolved,
        Phase::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Quiet => "quiet",
            Phase::Pending => "pending",
            Phase::Open => "open",
            Phase::Resolved => "resolved",
            Phase::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why a signal changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The route is `observe`: no work order for this failure.
    Observe,
    /// The workload carries `deployscope.dev/ignore: "true"`.
    IgnoredWorkload,
    /// The same observation was already processed (HA pair, re-notification).
    Duplicate,
    /// An Argo CD notification Triage records but does not act on.
    Informational,
    /// A resolve for a work order with nothing open: never create on resolve.
    NothingOpen,
}

/// Why a repeat did not become a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    /// The last comment is younger than `comment_min_interval`.
    Interval,
    /// The comment would say what the last one said.
    Identical,
    /// A human put the `triage/mute` label on the issue.
    Muted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentReason {
    /// The failure goes on: a new occurrence.
    Repeat,
    /// The failure came back during the quiet period after a recovery.
    Relapse,
}

/// What the lifecycle decided. Each maps to zero or more forge operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Debouncing until `deadline`.
    Wait {
        deadline: Timestamp,
    },
    /// Open a new issue. `follows_previous`: an earlier issue of this key was closed
    /// longer than `reopen_window` ago; the new issue links it.
    Open {
        follows_previous: bool,
    },
    /// Reopen the closed issue (the failure is back within `reopen_window`).
    Reopen,
    /// Comment on the open issue.
    Comment {
        reason: CommentReason,
        /// Occurrences since the issue opened.
        occurrences: u64,
        /// Occurrences since the last comment (or the opening), this one included.
        since_last: u64,
    },
    /// A repeat that was counted but not commented.
    Throttle {
        reason: ThrottleReason,
    },
    /// The route became more urgent: relabel the issue and say so.
    RouteChange {
        from: Route,
        to: Route,
    },
    /// The failure cleared: comment "recovered"; the quiet period starts.
    Resolve,
    /// Close the issue (quiet period over, `auto_close`).
    Close,
    /// The failure went away inside the debounce window: no issue (a transient).
    Suppress,
    /// The signal updated the work order; nothing to tell the forge.
    Record,
    Ignore {
        reason: IgnoreReason,
    },
    /// A human closed the issue: the work order is closed; its next failure follows the
    /// reopen rules.
    HumanClose,
    /// A human reopened the issue: the work order is open again and is not closed
    /// automatically (the human decides when it is done).
    HumanReopen,
    /// A human added (`true`) or removed the mute label: no comments while muted.
    Mute {
        muted: bool,
    },
}

/// What a human did to a work order's issue, from a forge webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueChange {
    Closed,
    Reopened,
    Muted,
    Unmuted,
}

impl Decision {
    /// Stable lower-case name for metrics and the timeline.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Wait { .. } => "wait",
            Decision::Open { .. } => "open",
            Decision::Reopen => "reopen",
            Decision::Comment { .. } => "comment",
            Decision::Throttle { .. } => "throttle",
            Decision::RouteChange { .. } => "route_change",
            Decision::Resolve => "resolve",
            Decision::Close => "close",
            Decision::Suppress => "suppress",
            Decision::Record => "record",
            Decision::Ignore { .. } => "ignore",
            Decision::HumanClose => "human_close",
            Decision::HumanReopen => "human_reopen",
            Decision::Mute { .. } => "mute",
        }
    }

    pub const KINDS: [&'static str; 14] = [
        "wait",
        "open",
        "reopen",
        "comment",
        "throttle",
        "route_change",
        "resolve",
        "close",
        "suppress",
        "record",
        "ignore",
        "human_close",
        "human_reopen",
        "mute",
    ];
}

/// What kind of failure a series is, which decides what ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// One Alertmanager alert. Ended by its resolved notification; while it fires, the
    /// snapshot decides it if it is observable (see [`Series::observable`]).
    Alert,
    /// Argo CD app health (`Degraded`). Ended by `on-deployed`; always observable, since
    /// Argo CD sends no "healthy again" notification.
    ArgocdHealth,
    /// Argo CD sync (`SyncFailed`, `SyncUnknown`). Cleared by `on-deployed`, or by the
    /// snapshot showing the app `Synced`. A healthy workload does not clear it: the old
    /// version running fine does not mean the new one was deployed.
    ArgocdSync,
    /// A work order rebuilt from an open forge issue by `triage reconcile`: the signals
    /// are gone with the old database, so only the snapshot can say it recovered.
    Reconciled,
}

/// One failure stream within a work order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub kind: SeriesKind,
    pub source: Source,
    /// Alert name, or the Argo CD trigger/kind.
    pub title: String,
    /// What the signal named: `pod pets/store-front-7d9f-abc`.
    pub subject: String,
    pub message: Option<String>,
    /// As its source last said.
    pub firing: bool,
    /// The snapshot can see this failure, so a healthy snapshot clears it and an
    /// unhealthy one keeps it: Argo CD health, alerts listed in
    /// `lifecycle.snapshot_alerts` (pod and workload health), and any alert that fired
    /// while the snapshot showed the subject unhealthy. Others (an error-rate alert on a
    /// workload whose replicas are all ready) are left to their source.
    pub observable: bool,
    /// The latest trustworthy snapshot showed this failure gone although its source
    /// did not say so. Re-evaluated on every look, never sticky.
    pub cleared: bool,
    pub started_at: Option<Timestamp>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub occurrences: u64,
    pub generator_url: Option<String>,
    /// Alertmanager `externalURL`, for silence links.
    pub external_url: Option<String>,
    /// The alert's `runbook_url` annotation.
    pub runbook_url: Option<String>,
    /// The alert's labels (Argo CD: none).
    pub labels: BTreeMap<String, String>,
}

impl Series {
    pub fn active(&self) -> bool {
        self.firing && !self.cleared
    }
}

/// The persisted state of one work order. Everything the lifecycle needs to decide,
/// plus what the work-order document shows (latest context, series, Argo CD detail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub phase: Phase,
    /// The route the issue is labelled with (the most urgent of the episode); `None`
    /// while no issue exists.
    pub route: Option<Route>,
    /// The most urgent route of the episode being debounced.
    pub pending_route: Option<Route>,
    /// When the current failure episode began (first firing signal after quiet/closed).
    pub episode_started_at: Option<Timestamp>,
    /// Debounce deadline while pending.
    pub deadline: Option<Timestamp>,
    /// When the scheduler must look at this work order again (`None`: only on signals).
    pub next_check: Option<Timestamp>,
    /// The pending episode would reopen the closed issue (it began within the window).
    pub reopen_candidate: bool,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub opened_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// Non-duplicate firing signals since the current issue was opened (debounce included).
    pub occurrences: u64,
    /// `occurrences` when the last comment (or the issue) was written.
    pub commented_occurrences: u64,
    pub last_comment_at: Option<Timestamp>,
    /// Digest of what the last comment (or the issue) said, for identical suppression.
    pub last_comment_digest: Option<String>,
    /// Transients suppressed over the work order's life.
    pub suppressed: u64,
    /// Issues opened over the work order's life (reopens not counted).
    pub issues_opened: u32,
    /// The latest Alertmanager notification for this work order was truncated
    /// (`truncatedAlerts > 0`): resolves by message alone cannot end the failure.
    pub truncated: bool,
    pub sources: BTreeSet<Source>,
    pub kinds: BTreeSet<SignalKind>,
    pub series: BTreeMap<String, Series>,
    /// Identities of recent non-alert signals (alerts are deduplicated by series).
    pub recent: VecDeque<String>,
    /// The latest context the work order was evaluated with.
    pub context: Option<Context>,
    /// The latest Argo CD notification detail.
    pub argocd: Option<ArgocdDetail>,
    /// The latest firing signal, for re-enriching at the deadline and on rechecks
    /// (see [`State::probe`]).
    pub last_signal: Option<Signal>,
    /// A human put the mute label on the issue: no comments until it is removed.
    #[serde(default)]
    pub muted: bool,
    /// A human reopened the issue: Triage does not close it automatically.
    #[serde(default)]
    pub held_open: bool,
    /// When Triage last decided to open, reopen or close the issue. A forge event about
    /// the issue's state from before then is an echo of Triage's own change (or older
    /// than it), not a human's.
    #[serde(default)]
    pub issue_changed_at: Option<Timestamp>,
}

const RECENT_MAX: usize = 64;
pub const SERIES_MAX: usize = 512;
// The state is rewritten with every batch that touches the work order: keep it small.
const MESSAGE_MAX: usize = 1000;

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// A signal as the lifecycle sees it: enriched, routed, with its arrival time.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub signal: &'a Signal,
    pub context: &'a Context,
    pub route: &'a Route,
    /// When the delivery was journaled: debounce windows count from here, so a backlog
    /// after a restart does not delay work orders further.
    pub received_at: Timestamp,
}

fn after(ts: Timestamp, d: Duration) -> Timestamp {
    ts.saturating_add(d).unwrap_or(Timestamp::MAX)
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    to.duration_since(from).unsigned_abs()
}

impl State {
    pub fn new() -> Self {
        State {
            phase: Phase::Quiet,
            route: None,
            pending_route: None,
            episode_started_at: None,
            deadline: None,
            next_check: None,
            reopen_candidate: false,
            first_seen: None,
            last_seen: None,
            opened_at: None,
            resolved_at: None,
            closed_at: None,
            occurrences: 0,
            commented_occurrences: 0,
            last_comment_at: None,
            last_comment_digest: None,
            suppressed: 0,
            issues_opened: 0,
            truncated: false,
            sources: BTreeSet::new(),
            kinds: BTreeSet::new(),
            series: BTreeMap::new(),
            recent: VecDeque::new(),
            context: None,
            argocd: None,
            last_signal: None,
            muted: false,
            held_open: false,
            issue_changed_at: None,
        }
    }

    /// The state of a work order rebuilt from a forge issue after a lost database
    /// (`triage reconcile`). An open issue is `open` with a snapshot-judged series, so
    /// the next recheck closes it only if the cluster shows the subject healthy; a
    /// closed one is `closed` (a new failure opens a new issue that follows it). `probe`
    /// is what rechecks enrich (see [`probe_for_key`]); `route` is read from labels.
    pub fn reconciled(
        issue_open: bool,
        route: Option<Route>,
        probe: Option<Signal>,
        now: Timestamp,
    ) -> State {
        let mut state = State::new();
        state.issues_opened = 1;
        state.route = route;
        state.first_seen = Some(now);
        state.last_seen = Some(now);
        if issue_open {
            state.phase = Phase::Open;
            state.opened_at = Some(now);
            state.last_comment_at = Some(now);
            state.episode_started_at = Some(now);
            state.next_check = Some(now);
            let subject = probe
                .as_ref()
                .map(|p| subject_text(&p.subject))
                .unwrap_or_else(|| "unknown".into());
            state.series.insert(
                "reconciled".into(),
                Series {
                    kind: SeriesKind::Reconciled,
                    source: probe.as_ref().map_or(Source::Alertmanager, |p| p.source),
                    title: "reconciled from the forge".into(),
                    subject,
                    message: None,
                    firing: true,
                    observable: true,
                    cleared: false,
                    started_at: None,
                    first_seen: now,
                    last_seen: now,
                    occurrences: 0,
                    generator_url: None,
                    external_url: None,
                    runbook_url: None,
                    labels: BTreeMap::new(),
                },
            );
        } else {
            state.phase = Phase::Closed;
        }
        state.last_signal = probe;
        state
    }

    /// True while an issue exists and is open on the forge (or about to be).
    pub fn issue_open(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Resolved)
    }

    /// The signal to re-enrich at the deadline and on rechecks: the latest firing signal
    /// with its subject widened to the resolved workload (or app), because the pod an
    /// alert named is often gone by then while its Deployment is what matters.
    pub fn probe(&self) -> Option<Signal> {
        let mut probe = self.last_signal.clone()?;
        if let Some(ctx) = &self.context {
            if let Some(w) = &ctx.workload {
                probe.subject = Subject::Workload {
                    kind: w.kind,
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                };
            } else if let Some(app) = &ctx.app {
                probe.subject = Subject::Application {
                    namespace: app.namespace.clone(),
                    name: app.name.clone(),
                };
            }
        }
        Some(probe)
    }

    /// Handles one journaled signal. Mutates the state and returns what to do.
    pub fn on_signal(
        &mut self,
        obs: Observation<'_>,
        rules: &Rules,
        now: Timestamp,
    ) -> Vec<Decision> {
        let before = self.phase;
        let decisions = self.signal_decisions(obs, rules, now);
        self.reschedule(rules, now, self.phase != before);
        decisions
    }

    /// Handles a scheduled look (debounce deadline, recheck, quiet period) with a
    /// context freshly enriched from [`State::probe`] and the route it leads to.
    pub fn on_tick(
        &mut self,
        context: &Context,
        route: &Route,
        rules: &Rules,
        now: Timestamp,
    ) -> Vec<Decision> {
        let decisions = self.tick_decisions(context, route, rules, now);
        self.reschedule(rules, now, true);
        decisions
    }

    /// Handles what a human did to the issue (a verified forge webhook). `changed_at` is
    /// when the forge says the issue changed; a state change from before Triage's own
    /// latest open, reopen or close is stale and changes nothing. Returns nothing when
    /// the work order already is as the event says (Triage's own changes echo back).
    pub fn on_issue_change(
        &mut self,
        change: IssueChange,
        changed_at: Option<Timestamp>,
        rules: &Rules,
        now: Timestamp,
    ) -> Vec<Decision> {
        let stale = matches!(change, IssueChange::Closed | IssueChange::Reopened)
            && matches!((changed_at, self.issue_changed_at), (Some(at), Some(ours)) if at < ours);
        if stale {
            return Vec::new();
        }
        let decision = match change {
            IssueChange::Closed if self.issue_open() => {
                self.close(now);
                // Whatever fired belongs to the episode the human closed; the next
                // failure starts a new one (and reopens within the window).
                for series in self.series.values_mut() {
                    series.firing = false;
                }
                self.held_open = false;
                Decision::HumanClose
            }
            IssueChange::Reopened if !self.issue_open() && self.issues_opened > 0 => {
                if self.phase == Phase::Pending {
                    // A failure was debouncing towards a reopen: the human was faster.
                    if let Some(route) = self.pending_route.take() {
                        self.route = Some(route);
                    }
                    self.deadline = None;
                    self.reopen_candidate = false;
                }
                self.phase = Phase::Open;
                self.closed_at = None;
                self.resolved_at = None;
                self.held_open = true;
                self.issue_changed_at = Some(now);
                Decision::HumanReopen
            }
            IssueChange::Muted if !self.muted => {
                self.muted = true;
                Decision::Mute { muted: true }
            }
            IssueChange::Unmuted if self.muted => {
                self.muted = false;
                Decision::Mute { muted: false }
            }
            _ => return Vec::new(),
        };
        self.reschedule(rules, now, true);
        vec![decision]
    }

    fn signal_decisions(
        &mut self,
        obs: Observation<'_>,
        rules: &Rules,
        now: Timestamp,
    ) -> Vec<Decision> {
        let Observation {
            signal,
            context,
            route,
            received_at,
        } = obs;
        if context.ignored {
            return vec![Decision::Ignore {
                reason: IgnoreReason::IgnoredWorkload,
            }];
        }
        if self.is_duplicate(signal) {
            return vec![Decision::Ignore {
                reason: IgnoreReason::Duplicate,
            }];
        }
        self.first_seen.get_or_insert(received_at);
        self.last_seen = Some(self.last_seen.map_or(received_at, |t| t.max(received_at)));
        self.sources.insert(signal.source);
        self.kinds.insert(signal.kind);
        if signal.argocd.is_some() {
            self.argocd = signal.argocd.clone();
        }
        self.context = Some(context.clone());

        let resolving =
            signal.status == SignalStatus::Resolved || signal.kind == SignalKind::Recovered;
        if signal.kind == SignalKind::Informational && !resolving {
            self.remember_identity(signal);
            return vec![Decision::Ignore {
                reason: IgnoreReason::Informational,
            }];
        }

        if resolving {
            self.apply_resolve(signal, received_at);
            return match self.phase {
                Phase::Quiet | Phase::Closed => vec![Decision::Ignore {
                    reason: IgnoreReason::NothingOpen,
                }],
                Phase::Pending => {
                    if self.failing(context) {
                        vec![Decision::Wait {
                            deadline: self.deadline.unwrap_or(now),
                        }]
                    } else {
                        self.suppress();
                        vec![Decision::Suppress]
                    }
                }
                Phase::Open => {
                    if self.failing(context) {
                        vec![Decision::Record]
                    } else {
                        self.resolve(now);
                        vec![Decision::Resolve]
                    }
                }
                Phase::Resolved => vec![Decision::Record],
            };
        }

        // Firing.
        if matches!(self.phase, Phase::Quiet | Phase::Closed) && route.wants_work_order() {
            self.start_episode(route, received_at, rules);
        }
        self.apply_firing(signal, received_at, rules);
        self.observe_snapshot(context);
        match self.phase {
            Phase::Quiet | Phase::Closed => vec![Decision::Ignore {
                reason: IgnoreReason::Observe,
            }],
            Phase::Pending => {
                self.occurrences += 1;
                if route.wants_work_order() && is_more_urgent(route, self.pending_route.as_ref()) {
                    self.pending_route = Some(route.clone());
                    if let Some(start) = self.episode_started_at {
                        let sooner = after(start, rules.debounce(route.action));
                        self.deadline = Some(self.deadline.map_or(sooner, |d| d.min(sooner)));
                    }
                }
                self.after_pending_update(context, now)
            }
            Phase::Open => {
                self.occurrences += 1;
                if let Some(change) = self.upgrade(route, now, signal) {
                    return vec![change];
                }
                vec![self.repeat(signal, rules, now)]
            }
            Phase::Resolved => {
                if !self.failing(context) {
                    // An observable failure the snapshot already sees healthy again.
                    return vec![Decision::Record];
                }
                self.occurrences += 1;
                self.phase = Phase::Open;
                self.resolved_at = None;
                let mut out =
                    vec![self.comment(CommentReason::Relapse, signal_digest(signal), now)];
                out.extend(self.upgrade(route, now, signal));
                out
            }
        }
    }

    fn tick_decisions(
        &mut self,
        context: &Context,
        route: &Route,
        rules: &Rules,
        now: Timestamp,
    ) -> Vec<Decision> {
        if context.ignored {
            return Vec::new();
        }
        match self.phase {
            Phase::Quiet | Phase::Closed => Vec::new(),
            Phase::Pending => {
                self.context = Some(context.clone());
                if self.deadline.is_some_and(|d| d <= now) {
                    self.evaluate_deadline(context, now)
                } else {
                    Vec::new()
                }
            }
            Phase::Open => {
                self.context = Some(context.clone());
                if !self.failing(context) {
                    self.resolve(now);
                    return vec![Decision::Resolve];
                }
                let digest = format!("route:{}", route.reason);
                self.upgrade_with(route, now, digest).into_iter().collect()
            }
            Phase::Resolved => {
                self.context = Some(context.clone());
                if self.failing(context) {
                    self.phase = Phase::Open;
                    self.resolved_at = None;
                    let digest = format!("relapse:{}", context_digest(context));
                    let mut out = vec![self.comment(CommentReason::Relapse, digest, now)];
                    out.extend(self.upgrade_with(route, now, format!("route:{}", route.reason)));
                    return out;
                }
                let quiet_over = self
                    .resolved_at
                    .is_some_and(|r| after(r, rules.close_after) <= now);
                if rules.auto_close && !self.held_open && quiet_over {
                    self.close(now);
                    vec![Decision::Close]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// After a firing signal while pending: open at once if the deadline has passed
    /// (zero debounce, or a backlog), judged by the context just enriched.
    fn after_pending_update(&mut self, context: &Context, now: Timestamp) -> Vec<Decision> {
        match self.deadline {
            Some(deadline) if deadline <= now => self.evaluate_deadline(context, now),
            Some(deadline) => vec![Decision::Wait { deadline }],
            None => vec![Decision::Wait { deadline: now }],
        }
    }

    fn evaluate_deadline(&mut self, context: &Context, now: Timestamp) -> Vec<Decision> {
        if !self.failing(context) {
            self.suppress();
            return vec![Decision::Suppress];
        }
        let pending_route = self.pending_route.take();
        self.deadline = None;
        self.phase = Phase::Open;
        self.issue_changed_at = Some(now);
        self.last_comment_at = Some(now);
        self.last_comment_digest = self.last_signal.as_ref().map(signal_digest);
        self.commented_occurrences = self.occurrences;
        if self.reopen_candidate {
            self.reopen_candidate = false;
            self.closed_at = None;
            let mut out = vec![Decision::Reopen];
            // A reopened issue carries the route of the failure as it is now.
            if let (Some(old), Some(new)) = (&self.route, &pending_route)
                && route_labels_differ(old, new)
            {
                out.push(Decision::RouteChange {
                    from: old.clone(),
                    to: new.clone(),
                });
            }
            if pending_route.is_some() {
                self.route = pending_route;
            }
            out
        } else {
            let follows_previous = self.issues_opened > 0;
            self.closed_at = None;
            self.opened_at = Some(now);
            self.issues_opened += 1;
            self.route = pending_route;
            vec![Decision::Open { follows_previous }]
        }
    }

    fn start_episode(&mut self, route: &Route, received_at: Timestamp, rules: &Rules) {
        self.reopen_candidate = self
            .closed_at
            .is_some_and(|closed| elapsed(closed, received_at) <= rules.reopen_window);
        if !self.reopen_candidate {
            self.occurrences = 0;
            self.commented_occurrences = 0;
        }
        self.phase = Phase::Pending;
        self.pending_route = Some(route.clone());
        self.episode_started_at = Some(received_at);
        self.deadline = Some(after(received_at, rules.debounce(route.action)));
        // Series that ended belong to the previous episode. Cleared-but-firing ones
        // stay, so that their re-notifications are still recognised as duplicates.
        self.series.retain(|_, s| s.firing);
    }

    fn suppress(&mut self) {
        self.suppressed += 1;
        self.deadline = None;
        self.pending_route = None;
        self.reopen_candidate = false;
        self.phase = if self.closed_at.is_some() {
            Phase::Closed
        } else {
            Phase::Quiet
        };
    }

    fn resolve(&mut self, now: Timestamp) {
        self.phase = Phase::Resolved;
        self.resolved_at = Some(now);
        self.last_comment_at = Some(now);
        self.last_comment_digest = Some("resolved".into());
        self.commented_occurrences = self.occurrences;
    }

    fn close(&mut self, now: Timestamp) {
        self.phase = Phase::Closed;
        self.closed_at = Some(now);
        self.resolved_at = None;
        self.issue_changed_at = Some(now);
    }

    fn repeat(&mut self, signal: &Signal, rules: &Rules, now: Timestamp) -> Decision {
        let digest = signal_digest(signal);
        if self.last_comment_digest.as_deref() == Some(digest.as_str()) {
            return Decision::Throttle {
                reason: ThrottleReason::Identical,
            };
        }
        if self
            .last_comment_at
            .is_some_and(|last| elapsed(last, now) < rules.comment_min_interval && last <= now)
        {
            return Decision::Throttle {
                reason: ThrottleReason::Interval,
            };
        }
        self.comment(CommentReason::Repeat, digest, now)
    }

    fn comment(&mut self, reason: CommentReason, digest: String, now: Timestamp) -> Decision {
        if self.muted {
            // Counted (occurrences stay ahead of commented_occurrences), not said: the
            // first comment after unmuting tells how many happened meanwhile.
            return Decision::Throttle {
                reason: ThrottleReason::Muted,
            };
        }
        let since_last = self.occurrences.saturating_sub(self.commented_occurrences);
        self.last_comment_at = Some(now);
        self.last_comment_digest = Some(digest);
        self.commented_occurrences = self.occurrences;
        Decision::Comment {
            reason,
            occurrences: self.occurrences,
            since_last,
        }
    }

    fn upgrade(&mut self, route: &Route, now: Timestamp, signal: &Signal) -> Option<Decision> {
        self.upgrade_with(route, now, signal_digest(signal))
    }

    /// A route change is acted on only upwards (more urgent action or priority, or a
    /// worse status): downgrades while the failure lasts would relabel issues back and
    /// forth as pods restart, so the issue keeps the most urgent route of its episode.
    fn upgrade_with(&mut self, route: &Route, now: Timestamp, digest: String) -> Option<Decision> {
        if !route.wants_work_order() {
            return None;
        }
        let current = self.route.clone()?;
        if !is_more_urgent(route, Some(&current)) {
            return None;
        }
        self.route = Some(route.clone());
        self.last_comment_at = Some(now);
        self.last_comment_digest = Some(digest);
        self.commented_occurrences = self.occurrences;
        Some(Decision::RouteChange {
            from: current,
            to: route.clone(),
        })
    }

    /// The same observation seen before. For alerts this is also where order is
    /// restored: Alertmanager gives an alert that fires again a new `startsAt`, so a
    /// "firing" for an instance already resolved is a stale, reordered notification
    /// (replicas and retries do not deliver in order).
    fn is_duplicate(&self, signal: &Signal) -> bool {
        if let Some(alert) = &signal.alert {
            let firing = signal.status == SignalStatus::Firing;
            return self
                .series
                .get(&alert_series_key(&alert.fingerprint))
                .is_some_and(|s| {
                    s.started_at == signal.started_at && (s.firing == firing || !s.firing)
                });
        }
        let identity = signal.identity();
        self.recent.iter().any(|i| *i == identity)
    }

    fn remember_identity(&mut self, signal: &Signal) {
        if signal.alert.is_some() {
            return;
        }
        if self.recent.len() >= RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(signal.identity());
    }

    fn apply_firing(&mut self, signal: &Signal, at: Timestamp, rules: &Rules) {
        self.remember_identity(signal);
        self.last_signal = Some(signal.clone());
        if let Some(alert) = &signal.alert {
            self.truncated = alert.group.truncated_alerts > 0;
        }
        let (key, kind) = series_key(signal);
        let observable = match kind {
            SeriesKind::Alert => signal
                .alert
                .as_ref()
                .is_some_and(|a| rules.snapshot_alerts.contains(&a.name)),
            SeriesKind::ArgocdHealth | SeriesKind::Reconciled => true,
            SeriesKind::ArgocdSync => false,
        };
        let entry = self.series.entry(key).or_insert_with(|| Series {
            kind,
            source: signal.source,
            title: signal.title.clone(),
            subject: subject_text(&signal.subject),
            message: None,
            firing: true,
            observable,
            cleared: false,
            started_at: signal.started_at,
            first_seen: at,
            last_seen: at,
            occurrences: 0,
            generator_url: None,
            external_url: None,
            runbook_url: None,
            labels: BTreeMap::new(),
        });
        if entry.started_at != signal.started_at || !entry.firing {
            // A new instance of the alert (or the series firing again): judged afresh.
            entry.observable = observable;
        }
        entry.firing = true;
        entry.cleared = false;
        entry.started_at = signal.started_at;
        entry.last_seen = at;
        entry.occurrences += 1;
        entry.title = signal.title.clone();
        entry.subject = subject_text(&signal.subject);
        entry.message = signal.message.as_deref().map(|m| truncate(m, MESSAGE_MAX));
        if let Some(alert) = &signal.alert {
            entry.generator_url = alert.generator_url.clone();
            entry.external_url = alert.group.external_url.clone();
            entry.runbook_url = signal.annotations.get("runbook_url").cloned();
            entry.labels = signal.labels.clone();
        }
        self.trim_series();
    }

    /// Keeps at most `SERIES_MAX` series: the state is rewritten with every batch that
    /// touches the work order, and a workload whose pods crash-loop for days produces a
    /// new alert (fingerprint) per pod. Drops the longest-quiet series that no longer
    /// counts first; when every one still fires, the longest-quiet alert whose failure
    /// the snapshot observes (its workload's health still decides), then any alert.
    /// Argo CD series are never dropped: there are at most two.
    fn trim_series(&mut self) {
        while self.series.len() > SERIES_MAX {
            let oldest = |keep: &dyn Fn(&Series) -> bool| {
                self.series
                    .iter()
                    .filter(|(_, s)| keep(s))
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            };
            let alert = |s: &Series| s.kind == SeriesKind::Alert;
            let victim = oldest(&|s| !s.active())
                .or_else(|| oldest(&|s| alert(s) && s.observable))
                .or_else(|| oldest(&alert));
            match victim {
                Some(key) => {
                    self.series.remove(&key);
                }
                None => break,
            }
        }
    }

    fn apply_resolve(&mut self, signal: &Signal, at: Timestamp) {
        self.remember_identity(signal);
        if let Some(alert) = &signal.alert {
            self.truncated = alert.group.truncated_alerts > 0;
            let key = alert_series_key(&alert.fingerprint);
            let entry = self.series.entry(key).or_insert_with(|| Series {
                kind: SeriesKind::Alert,
                source: signal.source,
                title: signal.title.clone(),
                subject: subject_text(&signal.subject),
                message: signal.message.as_deref().map(|m| truncate(m, MESSAGE_MAX)),
                firing: false,
                observable: false,
                cleared: false,
                started_at: signal.started_at,
                first_seen: at,
                last_seen: at,
                occurrences: 0,
                generator_url: alert.generator_url.clone(),
                external_url: alert.group.external_url.clone(),
                runbook_url: signal.annotations.get("runbook_url").cloned(),
                labels: signal.labels.clone(),
            });
            entry.firing = false;
            entry.started_at = signal.started_at;
            entry.last_seen = at;
            self.trim_series();
            return;
        }
        // Argo CD `on-deployed` (or any resolved Argo CD signal): the app is synced and
        // healthy, so both of its series end.
        for series in self.series.values_mut() {
            if series.source == Source::Argocd {
                series.firing = false;
                series.last_seen = at;
            }
        }
    }

    /// Reads the snapshot's verdict on the subject and applies it to the firing series:
    /// `Some(false)` failing, `Some(true)` healthy, `None` the snapshot cannot tell (no
    /// workload or app health known, or the cluster view is not trustworthy: still
    /// syncing, unreachable, unknown cluster).
    fn observe_snapshot(&mut self, context: &Context) -> Option<bool> {
        let trusted = matches!(
            context.cluster.state,
            SnapshotState::Synced | SnapshotState::Static
        );
        if !trusted {
            return None;
        }
        let workload = context
            .workload
            .as_ref()
            .and(context.health.as_ref())
            .map(|h| h.status == HealthStatus::Green);
        let app = context.app.as_ref();
        let app_health = app.and_then(|a| a.health.as_deref()).and_then(|h| match h {
            "Healthy" => Some(true),
            "Degraded" | "Missing" => Some(false),
            _ => None,
        });
        let app_sync = app.and_then(|a| a.sync.as_deref());
        let view = workload.or(app_health);
        for series in self.series.values_mut().filter(|s| s.firing) {
            match series.kind {
                SeriesKind::Alert | SeriesKind::ArgocdHealth | SeriesKind::Reconciled => match view
                {
                    Some(false) => {
                        // It fires while the snapshot shows the failure: from now on
                        // the snapshot can vouch for it either way.
                        series.observable = true;
                        series.cleared = false;
                    }
                    Some(true) => series.cleared = series.observable,
                    None => {}
                },
                SeriesKind::ArgocdSync => {
                    if let Some(sync) = app_sync {
                        series.cleared = sync == "Synced" && app_health == Some(true);
                    }
                }
            }
        }
        view
    }

    /// Whether the failure persists, judged with a fresh context. The exact rule:
    ///
    /// 1. The snapshot's verdict is applied to the firing series (see
    ///    [`Series::observable`]): healthy clears the observable ones, unhealthy keeps
    ///    them. An untrustworthy or silent snapshot changes nothing.
    /// 2. Failing if any series is active (firing and not cleared).
    /// 3. Else, while an issue is open, failing if the snapshot shows the subject
    ///    unhealthy and this episode had an observable series: alerts that resolved
    ///    while pods are still not ready do not end the work order.
    /// 4. Else failing if the latest Alertmanager notification was truncated and the
    ///    snapshot does not confirm health: resolves may be missing for dropped alerts.
    /// 5. Else recovered.
    pub fn failing(&mut self, context: &Context) -> bool {
        let view = self.observe_snapshot(context);
        if self.series.values().any(Series::active) {
            return true;
        }
        if view == Some(false) && self.issue_open() {
            let since = self.episode_started_at;
            if self
                .series
                .values()
                .any(|s| s.observable && since.is_none_or(|t| s.last_seen >= t))
            {
                return true;
            }
        }
        self.truncated && view != Some(true)
    }

    fn reschedule(&mut self, rules: &Rules, now: Timestamp, fresh: bool) {
        let recheck = |current: Option<Timestamp>| match current {
            Some(t) if !fresh => t,
            _ => after(now, rules.recheck_interval),
        };
        self.next_check = match self.phase {
            Phase::Quiet | Phase::Closed => None,
            Phase::Pending => self.deadline,
            Phase::Open => Some(recheck(self.next_check)),
            Phase::Resolved => {
                let close = self
                    .resolved_at
                    .filter(|_| rules.auto_close && !self.held_open)
                    .map(|r| after(r, rules.close_after));
                let recheck = recheck(self.next_check);
                Some(close.map_or(recheck, |c| c.min(recheck)))
            }
        };
    }
}

/// True when `new` asks for more than `old`: a more urgent action or priority, or the
/// same ones with a worse status (yellow → red).
pub fn is_more_urgent(new: &Route, old: Option<&Route>) -> bool {
    let Some(old) = old else {
        return true;
    };
    let rank = |r: &Route| {
        (
            // Lower is more urgent for both.
            r.priority.map_or(u8::MAX, |p| p as u8),
            Action::ALL
                .iter()
                .position(|a| *a == r.action)
                .unwrap_or(usize::MAX),
        )
    };
    let (np, na) = rank(new);
    let (op, oa) = rank(old);
    if np != op {
        return np < op;
    }
    if na != oa {
        return na < oa;
    }
    status_rank(new.status) > status_rank(old.status)
}

fn status_rank(s: HealthStatus) -> u8 {
    match s {
        HealthStatus::Green => 0,
        HealthStatus::Yellow => 1,
        HealthStatus::Red => 2,
    }
}

/// True when the routes put different labels on the issue.
pub fn route_labels_differ(a: &Route, b: &Route) -> bool {
    a.action != b.action || a.priority != b.priority || a.tier != b.tier
}

fn alert_series_key(fingerprint: &str) -> String {
    format!("alert:{fingerprint}")
}

fn series_key(signal: &Signal) -> (String, SeriesKind) {
    if let Some(alert) = &signal.alert {
        return (alert_series_key(&alert.fingerprint), SeriesKind::Alert);
    }
    let app = signal.argocd.as_ref().map_or("", |d| d.app.as_str());
    match signal.kind {
        SignalKind::SyncFailed | SignalKind::SyncUnknown => {
            (format!("argocd:{app}:sync"), SeriesKind::ArgocdSync)
        }
        _ => (format!("argocd:{app}:health"), SeriesKind::ArgocdHealth),
    }
}

/// What makes two repeats "the same comment": the failure and where it shows, not the
/// time or counters.
fn signal_digest(signal: &Signal) -> String {
    let mut h = Sha256::new();
    for part in [
        signal.source.as_str(),
        signal.kind.as_str(),
        signal.status.as_str(),
        &signal.title,
        &subject_text(&signal.subject),
        signal.message.as_deref().unwrap_or(""),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

fn context_digest(context: &Context) -> String {
    context
        .health
        .as_ref()
        .map(|h| format!("{}:{}", h.status.as_str(), h.reason))
        .unwrap_or_default()
}

/// A synthetic firing signal about what `key` names (`prod/pets/deployment/x` → the
/// Deployment, `prod/argocd/application/x` → the Application), for rechecking a work
/// order that has no signal of its own (one rebuilt by `triage reconcile`). `None` for
/// label-based keys, which name no object.
pub fn probe_for_key(key: &str) -> Option<Signal> {
    let parts: Vec<&str> = key.split('/').collect();
    let [cluster, namespace, kind, name] = parts[..] else {
        return None;
    };
    let (source, kind, subject) = if kind == "application" {
        (
            Source::Argocd,
            SignalKind::Degraded,
            Subject::Application {
                namespace: Some(namespace.to_string()),
                name: name.to_string(),
            },
        )
    } else {
        let kind = crate::signal::WorkloadKind::from_kind(kind)?;
        (
            Source::Alertmanager,
            SignalKind::Alert,
            Subject::Workload {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
        )
    };
    Some(Signal {
        source,
        kind,
        status: SignalStatus::Firing,
        subject,
        cluster: Some(cluster.to_string()),
        title: "reconciled".into(),
        message: None,
        started_at: None,
        ended_at: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        alert: None,
        argocd: None,
    })
}

/// `pod pets/store-front-7d9f-abc`, `deployment pets/store-front`, `application argocd/shop`.
pub fn subject_text(subject: &Subject) -> String {
    match subject {
        Subject::Application { namespace, name } => match namespace {
            Some(ns) => format!("application {ns}/{name}"),
            None => format!("application {name}"),
        },
        Subject::Workload {
            kind,
            namespace,
            name,
        } => format!("{} {namespace}/{name}", kind.kubectl_name()),
        Subject::Pod { namespace, name } => format!("pod {namespace}/{name}"),
        Subject::Other { namespace } => match namespace {
            Some(ns) => format!("namespace {ns}"),
            None => "cluster".to_string(),
        },
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
