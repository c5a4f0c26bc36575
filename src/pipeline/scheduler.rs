//! The scheduler: debounce deadlines, rechecks and quiet-period closes, judged against
//! a freshly enriched context.

use jiff::Timestamp;

use super::Pipeline;
use crate::store::StoreError;
use crate::store::work::TimelineEntry;

const RETRIES: u32 = 3;

impl Pipeline {
    /// Ticks up to one batch of due work orders at `now`; returns how many.
    pub async fn tick_at(&self, now: Timestamp) -> anyhow::Result<usize> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.tick_batch(now).await {
                Err(e)
                    if attempt < RETRIES
                        && e.downcast_ref::<StoreError>()
                            .is_some_and(crate::store::postgres::is_retryable) => {}
                other => return other,
            }
        }
    }

    async fn tick_batch(&self, now: Timestamp) -> anyhow::Result<usize> {
        let mut tx = self.store.begin().await?;
        let rows = tx.lock_due_work_orders(now, super::TICK_BATCH).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let count = rows.len();
        let mut timeline = Vec::new();
        let mut enqueued = false;
        for mut row in rows {
            let Some(probe) = row.state.probe() else {
                // Nothing to look at (no signal ever kept): stop scheduling it.
                tracing::warn!(key = %row.key, "scheduler: work order has no signal to re-check; unscheduled");
                row.state.next_check = None;
                tx.save_work_order(&row, now).await?;
                continue;
            };
            // The deadline check the design asks for: the live snapshot, now.
            let context = self.assessor.enrich(&probe);
            let route = self.assessor.route(&probe, &context);
            let decisions = row
                .state
                .on_tick(&context, &route, &self.settings.rules, now);
            self.metrics.decisions(&decisions);
            let ops = self.plan_for(&row, &decisions, None, &context);
            if !ops.is_empty() {
                tx.enqueue(row.id, &ops, now).await?;
                enqueued = true;
            }
            if !decisions.is_empty() {
                timeline.push(TimelineEntry {
                    work_order_id: row.id,
                    signal: None,
                    at: now,
                    decisions,
                    detail: serde_json::json!({
                        "tick": true,
                        "health": context.health.as_ref().map(|h| h.status),
                        "health_reason": context.health.as_ref().map(|h| h.reason.clone()),
                        "snapshot": context.cluster.state,
                    }),
                });
            }
            tx.save_work_order(&row, now).await?;
        }
        tx.append_timeline(&timeline).await?;
        tx.commit().await?;
        if enqueued {
            self.enqueued.notify_waiters();
        }
        Ok(count)
    }
}
