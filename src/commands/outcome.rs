//! What a run of the pipeline amounted to, read back from the work store: the issues
//! it filed (or would file) with their comments, and every signal that led to no forge
//! operation, with the reason in words. `demo` and `replay` print it.

use serde::Serialize;

use crate::forge::{IssueDraft, IssueRef};
use crate::pipeline::plan::Operation;
use crate::store::WorkStore;
use crate::store::work::TimelineRow;
use crate::triage::correlate::WorkOrderKey;
use crate::triage::lifecycle::{Decision, IgnoreReason, Phase, ThrottleReason};
use crate::triage::route::Action;
use crate::triage::workorder::WorkOrder;

/// A work order that reached the forge (or, in `replay`, would have).
#[derive(Debug, Clone, Serialize)]
pub struct Filed {
    /// The structure of the body's JSON block, at the end of the run.
    #[serde(flatten)]
    pub work_order: WorkOrder,
    pub filed: Operations,
}

/// The forge operations of one work order, in the order they were queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Operations {
    /// The issue as created: title, labels, body.
    pub issue: Option<IssueDraft>,
    pub comments: Vec<String>,
    /// `closed (completed)`, `open`, `labels +priority/P0 -priority/P2` …
    pub changes: Vec<String>,
}

/// A signal, or a debounced failure, that led to no forge operation.
#[derive(Debug, Clone, Serialize)]
pub struct NotFiled {
    pub key: String,
    /// `KubePodCrashLooping on pets/pod/store-front-7d9f-abc`, or the work order's
    /// latest signal when the scheduler decided.
    pub what: String,
    /// `suppress`, `ignore`, `throttle` or `wait`.
    pub decision: &'static str,
    pub why: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub work_orders: Vec<Filed>,
    pub not_filed: Vec<NotFiled>,
}

impl Outcome {
    /// Filed work orders whose issue got at least one comment.
    pub fn commented(&self) -> impl Iterator<Item = &Filed> {
        self.work_orders
            .iter()
            .filter(|f| !f.filed.comments.is_empty())
    }
}

/// Reads the outcome of everything the store holds. `links` as the pipeline uses them.
pub async fn read(
    store: &dyn WorkStore,
    links: &crate::config::LinksConfig,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    for row in store.work_orders().await? {
        let ops = store.operations(Some(row.id)).await?;
        let mut filed = Operations::default();
        for op in ops {
            match op.operation {
                Operation::Create { draft, .. } => filed.issue = Some(draft),
                Operation::Comment { body } => filed.comments.push(body),
                Operation::SetState { state, reason } => filed.changes.push(match reason {
                    Some(r) => format!("{} ({})", state_text(state), close_text(r)),
                    None => state_text(state).to_string(),
                }),
                Operation::AddLabels { labels } => {
                    filed.changes.push(format!("labels +{}", labels.join(" +")))
                }
                Operation::RemoveLabels { labels } => {
                    filed.changes.push(format!("labels -{}", labels.join(" -")))
                }
            }
        }
        let last = row
            .state
            .last_signal
            .as_ref()
            .map(|s| {
                signal_text(
                    &s.title,
                    &crate::triage::lifecycle::subject_text(&s.subject),
                )
            })
            .unwrap_or_else(|| row.key.clone());
        for entry in store.timeline(row.id).await? {
            outcome.not_filed.extend(not_filed(&row.key, &entry, &last));
        }
        if row.state.phase == Phase::Pending {
            outcome.not_filed.push(NotFiled {
                key: row.key.clone(),
                what: last.clone(),
                decision: "wait",
                why: match row.state.deadline {
                    Some(d) => format!("still debouncing: decided at {d}"),
                    None => "still debouncing".into(),
                },
            });
        }
        if filed.issue.is_some() || !filed.comments.is_empty() || !filed.changes.is_empty() {
            let key = WorkOrderKey::from_stored(row.key.clone());
            let work_order = WorkOrder::build(
                &key,
                &row.key_label,
                &row.state,
                row.issue.clone(),
                row.previous_issue.clone(),
                links,
            );
            outcome.work_orders.push(Filed { work_order, filed });
        }
    }
    Ok(outcome)
}

/// The issue a filed work order ended on, if the forge was reached.
pub fn issue(filed: &Filed) -> Option<&IssueRef> {
    filed.work_order.issue.as_ref()
}

fn not_filed(key: &str, entry: &TimelineRow, last: &str) -> Vec<NotFiled> {
    let decisions: Vec<Decision> = entry
        .detail
        .get("decisions")
        .cloned()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    let signal = entry.detail.get("signal");
    let what = signal
        .and_then(|s| {
            Some(signal_text(
                s.get("title")?.as_str()?,
                s.get("subject")?.as_str()?,
            ))
        })
        .unwrap_or_else(|| last.to_string());
    let route = signal.and_then(|s| s.get("route"));
    decisions
        .iter()
        .filter_map(|d| {
            let (decision, why) = match d {
                Decision::Suppress => (
                    "suppress",
                    "a transient: the failure was gone when its debounce window ended \
                     (checked against the cluster snapshot)"
                        .to_string(),
                ),
                Decision::Ignore { reason } => ("ignore", ignore_text(*reason, route)),
                Decision::Throttle { reason } => (
                    "throttle",
                    match reason {
                        ThrottleReason::Interval => "counted, not commented: the issue was \
                            opened or last commented less than lifecycle.comment_min_interval ago"
                            .into(),
                        ThrottleReason::Identical => {
                            "counted, not commented: it would say what the last comment said".into()
                        }
                        ThrottleReason::Muted => {
                            "counted, not commented: the issue is muted (triage/mute label)".into()
                        }
                    },
                ),
                _ => return None,
            };
            Some(NotFiled {
                key: key.to_string(),
                what: what.clone(),
                decision,
                why,
            })
        })
        .collect()
}

fn ignore_text(reason: IgnoreReason, route: Option<&serde_json::Value>) -> String {
    match reason {
        IgnoreReason::Observe => {
            let why = route
                .and_then(|r| r.get("reason"))
                .and_then(|r| r.as_str())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!("routed to {}{why}: no work order", Action::Observe.as_str())
        }
        IgnoreReason::IgnoredWorkload => {
            "the workload is ignored (deployscope.dev/ignore: \"true\")".into()
        }
        IgnoreReason::Duplicate => "already processed: a duplicate notification".into(),
        IgnoreReason::Informational => {
            "an Argo CD notification Triage records but does not act on".into()
        }
        IgnoreReason::NothingOpen => {
            "a resolve with nothing open (Triage never creates on resolve)".into()
        }
    }
}

fn signal_text(title: &str, subject: &str) -> String {
    format!("{title} on {subject}")
}

fn state_text(state: crate::forge::IssueState) -> &'static str {
    match state {
        crate::forge::IssueState::Open => "reopened",
        crate::forge::IssueState::Closed => "closed",
    }
}

fn close_text(reason: crate::forge::CloseReason) -> &'static str {
    match reason {
        crate::forge::CloseReason::Completed => "completed",
        crate::forge::CloseReason::NotPlanned => "not planned",
    }
}
