//! What a human did to a work order's issue, from a verified forge webhook.
//!
//! A close closes the work order (its next failure follows the reopen rules), a reopen
//! opens it again and holds it open (no automatic close), the mute label stops
//! comments. The change is committed to the store, with a timeline entry, before the
//! webhook is answered. Events about issues Triage did not file, or not the work
//! order's current issue, change nothing; so do echoes of Triage's own changes (the
//! work order already is as the event says, or the event is older than Triage's last
//! state change).

use jiff::Timestamp;
use serde::Serialize;

use super::Pipeline;
use crate::forge::webhook::{IssueAction, IssueEvent};
use crate::store::StoreError;
use crate::store::work::{TimelineEntry, WorkOrderKeyRef};
use crate::triage::lifecycle::{Decision, IssueChange};

/// How an issue event ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IssueEventOutcome {
    /// The work order changed; `decisions` are in its timeline.
    Applied {
        key: String,
        decisions: Vec<Decision>,
    },
    /// The work order already was as the event says (or the event is stale).
    Unchanged { key: String },
    /// Not about a work order Triage tracks.
    NotOurs { reason: String },
}

impl IssueEventOutcome {
    pub fn name(&self) -> &'static str {
        match self {
            IssueEventOutcome::Applied { .. } => "applied",
            IssueEventOutcome::Unchanged { .. } => "unchanged",
            IssueEventOutcome::NotOurs { .. } => "not_ours",
        }
    }
}

/// The changes an event asks for. Gitea reports label edits as the full label set.
pub fn changes(event: &IssueEvent, mute_label: &str) -> Vec<IssueChange> {
    let is_mute = |l: &str| !mute_label.is_empty() && l.eq_ignore_ascii_case(mute_label);
    match &event.action {
        IssueAction::Closed => vec![IssueChange::Closed],
        IssueAction::Reopened => vec![IssueChange::Reopened],
        IssueAction::Labeled if event.label.as_deref().is_some_and(is_mute) => {
            vec![IssueChange::Muted]
        }
        IssueAction::Unlabeled if event.label.as_deref().is_some_and(is_mute) => {
            vec![IssueChange::Unmuted]
        }
        IssueAction::LabelsChanged if !mute_label.is_empty() => {
            if event.labels.iter().any(|l| is_mute(l)) {
                vec![IssueChange::Muted]
            } else {
                vec![IssueChange::Unmuted]
            }
        }
        _ => Vec::new(),
    }
}

impl Pipeline {
    /// Applies a verified issue event to its work order, durably.
    pub async fn apply_issue_event(
        &self,
        event: &IssueEvent,
        now: Timestamp,
    ) -> Result<IssueEventOutcome, StoreError> {
        let Some(key) = event.key.clone() else {
            return Ok(IssueEventOutcome::NotOurs {
                reason: "the issue body has no triage key marker".into(),
            });
        };
        let Some(row) = self.store.work_order(&key).await? else {
            return Ok(IssueEventOutcome::NotOurs {
                reason: format!("no work order with key {key}"),
            });
        };
        let current = row
            .issue
            .as_ref()
            .is_some_and(|i| i.repo == event.repo && i.number == event.number);
        if !current {
            return Ok(IssueEventOutcome::NotOurs {
                reason: format!(
                    "{}#{} is not the current issue of work order {key}",
                    event.repo, event.number
                ),
            });
        }
        let changes = changes(event, &self.settings.labels.mute);
        if changes.is_empty() {
            return Ok(IssueEventOutcome::Unchanged { key });
        }

        let mut tx = self.store.begin().await?;
        let mut rows = tx
            .lock_work_orders(
                &[WorkOrderKeyRef {
                    key: row.key.clone(),
                    key_label: row.key_label.clone(),
                }],
                now,
            )
            .await?;
        let Some(mut row) = rows.pop() else {
            return Ok(IssueEventOutcome::Unchanged { key });
        };
        let changed_at = event.updated_at;
        let decisions: Vec<Decision> = changes
            .into_iter()
            .flat_map(|c| {
                row.state
                    .on_issue_change(c, changed_at, &self.settings.rules, now)
            })
            .collect();
        if decisions.is_empty() {
            // Dropping the transaction rolls it back: nothing to write.
            return Ok(IssueEventOutcome::Unchanged { key });
        }
        tx.save_work_order(&row, now).await?;
        tx.append_timeline(&[TimelineEntry {
            work_order_id: row.id,
            signal: None,
            at: now,
            decisions: decisions.clone(),
            detail: serde_json::json!({
                "forge": event.forge,
                "action": event.action,
                "issue": event.html_url,
                "sender": event.sender,
            }),
        }])
        .await?;
        tx.commit().await?;
        self.metrics.decisions(&decisions);
        self.scheduled.notify_one();
        tracing::info!(
            key = %key,
            issue = %event.html_url,
            sender = event.sender.as_deref().unwrap_or("unknown"),
            decisions = ?decisions.iter().map(Decision::kind).collect::<Vec<_>>(),
            "issue changed on the forge"
        );
        Ok(IssueEventOutcome::Applied { key, decisions })
    }
}
