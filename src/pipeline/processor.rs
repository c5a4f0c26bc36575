//! The processor: journaled deliveries → decisions, timeline and outbox, atomically.

use std::collections::BTreeMap;

use anyhow::Context as _;
use jiff::Timestamp;

use super::Pipeline;
use super::plan::{Operation, PlanContext, plan};
use crate::signal::Signal;
use crate::store::work::{TimelineEntry, WorkOrderKeyRef, WorkOrderRow};
use crate::store::{DeliveryId, StoreError};
use crate::triage::context::Context;
use crate::triage::correlate::{KeyBasis, WorkOrderKey, work_order_key};
use crate::triage::lifecycle::{Decision, Observation};
use crate::triage::route::Route;
use crate::triage::workorder::WorkOrder;

/// One signal, assessed and correlated, waiting for its work order's lock.
struct Assessed {
    delivery: DeliveryId,
    index: u32,
    received_at: Timestamp,
    signal: Signal,
    context: Context,
    route: Route,
    key: WorkOrderKey,
    basis: KeyBasis,
}

/// Attempts of one batch when PostgreSQL reports a deadlock or serialization failure.
const RETRIES: u32 = 3;

impl Pipeline {
    /// Processes up to one batch of unprocessed deliveries at `now`; returns how many.
    pub async fn process_at(&self, now: Timestamp) -> anyhow::Result<usize> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.process_batch(now).await {
                Err(e)
                    if attempt < RETRIES
                        && e.downcast_ref::<StoreError>()
                            .is_some_and(crate::store::postgres::is_retryable) =>
                {
                    tracing::debug!(error = %e, attempt, "processor: retrying the batch");
                }
                other => return other,
            }
        }
    }

    async fn process_batch(&self, now: Timestamp) -> anyhow::Result<usize> {
        let mut tx = self.store.begin().await?;
        let deliveries = tx.claim_deliveries(super::PROCESS_BATCH).await?;
        if deliveries.is_empty() {
            return Ok(0);
        }

        // Enrich, route and correlate before locking anything: pure and in memory.
        let mut items = Vec::new();
        let mut processed = Vec::with_capacity(deliveries.len());
        for d in &deliveries {
            match d.signals() {
                Ok(signals) => {
                    for (i, signal) in signals.into_iter().enumerate() {
                        let context = self.assessor.enrich(&signal);
                        let route = self.assessor.route(&signal, &context);
                        let (key, basis) =
                            work_order_key(&signal, &context, &self.settings.cluster_label);
                        items.push(Assessed {
                            delivery: d.id,
                            index: u32::try_from(i).unwrap_or(u32::MAX),
                            received_at: d.received_at,
                            signal,
                            context,
                            route,
                            key,
                            basis,
                        });
                    }
                    processed.push(d.id);
                }
                Err(err) => {
                    // Never block the journal behind one row: record why and move on.
                    tracing::error!(delivery = %d.id, error = %err, "processor: delivery cannot be decoded; marked failed");
                    self.metrics.delivery_undecodable();
                    tx.mark_failed(d.id, now, &err.to_string()).await?;
                }
            }
        }

        let keys: Vec<WorkOrderKeyRef> = items
            .iter()
            .map(|a| WorkOrderKeyRef {
                key: a.key.as_str().to_string(),
                key_label: a.key.label(&self.settings.labels.key_prefix),
            })
            .collect();
        let mut rows: BTreeMap<String, WorkOrderRow> = tx
            .lock_work_orders(&keys, now)
            .await?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();

        let mut timeline = Vec::with_capacity(items.len());
        let mut ops: BTreeMap<i64, Vec<Operation>> = BTreeMap::new();
        let mut touched = std::collections::BTreeSet::new();
        for a in &items {
            let row = rows
                .get_mut(a.key.as_str())
                .with_context(|| format!("work order {} was not locked", a.key))?;
            let before_deadline = row.state.next_check;
            let decisions = row.state.on_signal(
                Observation {
                    signal: &a.signal,
                    context: &a.context,
                    route: &a.route,
                    received_at: a.received_at,
                },
                &self.settings.rules,
                now,
            );
            self.metrics.decisions(&decisions);
            if row
                .state
                .next_check
                .is_some_and(|n| before_deadline.is_none_or(|b| n < b))
            {
                self.scheduled.notify_one();
            }
            let planned = self.plan_for(row, &decisions, Some(&a.signal), &a.context);
            if !planned.is_empty() {
                ops.entry(row.id).or_default().extend(planned);
            }
            timeline.push(TimelineEntry {
                work_order_id: row.id,
                signal: Some((a.delivery, a.index)),
                at: now,
                decisions,
                detail: signal_detail(&a.signal, &a.route, a.basis),
            });
            touched.insert(a.key.as_str().to_string());
        }

        for key in &touched {
            if let Some(row) = rows.get(key) {
                tx.save_work_order(row, now).await?;
            }
        }
        tx.append_timeline(&timeline).await?;
        for (wo, list) in &ops {
            tx.enqueue(*wo, list, now).await?;
        }
        tx.mark_processed(&processed, now).await?;
        tx.commit().await?;

        for _ in &deliveries {
            self.metrics.delivery_processed();
        }
        if !ops.is_empty() {
            self.enqueued.notify_waiters();
        }
        Ok(deliveries.len())
    }

    /// Forge operations for `decisions` on `row` (whose state already includes them).
    pub(super) fn plan_for(
        &self,
        row: &WorkOrderRow,
        decisions: &[Decision],
        trigger: Option<&Signal>,
        context: &Context,
    ) -> Vec<Operation> {
        let needs_ops = decisions.iter().any(|d| {
            !matches!(
                d,
                Decision::Wait { .. }
                    | Decision::Throttle { .. }
                    | Decision::Suppress
                    | Decision::Record
                    | Decision::Ignore { .. }
                    | Decision::HumanClose
                    | Decision::HumanReopen
                    | Decision::Mute { .. }
            )
        });
        if !needs_ops {
            return Vec::new();
        }
        let opens_new = decisions.iter().any(|d| matches!(d, Decision::Open { .. }));
        // A new issue has no number yet and follows the current (closed) one, if any.
        let (issue, previous) = if opens_new {
            (
                None,
                row.issue.clone().or_else(|| row.previous_issue.clone()),
            )
        } else {
            (row.issue.clone(), row.previous_issue.clone())
        };
        let key = WorkOrderKey::from_stored(row.key.clone());
        let mut doc = WorkOrder::build(
            &key,
            &row.key_label,
            &row.state,
            issue,
            previous.clone(),
            &self.settings.links,
        );
        // Redacted before rendering (templates clip values; a clipped token escapes the
        // patterns), and the finished text once more below.
        self.settings.redactor.work_order(&mut doc);
        let redacted_trigger = trigger.map(|s| {
            let mut s = s.clone();
            self.settings.redactor.signal(&mut s);
            s
        });
        let trigger = redacted_trigger.as_ref();
        let choice = match trigger {
            Some(signal) => self.router.route(signal, context),
            None => match row.state.last_signal.as_ref() {
                Some(signal) => self.router.route(signal, context),
                None => crate::forge::routing::RepoChoice {
                    repo: self.router.default_repo().clone(),
                    reason: crate::forge::routing::RepoReason::Default,
                },
            },
        };
        let mut ops = plan(
            decisions,
            &PlanContext {
                work_order: &doc,
                trigger,
                rules: &self.settings.rules,
                labels: &self.settings.labels,
                renderer: self.renderer.as_ref(),
                previous_issue: if opens_new {
                    previous.map(|p| p.number)
                } else {
                    None
                },
                repo: &choice.repo,
                muted: row.state.muted,
                held_open: row.state.held_open,
            },
        );
        let redactor = &self.settings.redactor;
        for op in &mut ops {
            match op {
                Operation::Create { draft, .. } => {
                    draft.title = redactor.redact_owned(&draft.title);
                    draft.body = redactor.redact_owned(&draft.body);
                }
                Operation::Comment { body } => *body = redactor.redact_owned(body),
                Operation::SetState { .. }
                | Operation::AddLabels { .. }
                | Operation::RemoveLabels { .. } => {}
            }
        }
        ops
    }
}

fn signal_detail(signal: &Signal, route: &Route, basis: KeyBasis) -> serde_json::Value {
    serde_json::json!({
        "identity": signal.identity(),
        "source": signal.source,
        "kind": signal.kind,
        "status": signal.status,
        "title": signal.title,
        "subject": crate::triage::lifecycle::subject_text(&signal.subject),
        "route": {
            "action": route.action,
            "priority": route.priority,
            "status": route.status,
            "tier": route.tier,
            "reason": route.reason,
        },
        "key_basis": basis,
    })
}
