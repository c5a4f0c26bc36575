//! Outbox workers: perform queued forge operations, in order per work order.
//!
//! - **Idempotent create**: labels are made ahead (best effort); then, before creating, the worker looks the key up on the forge
//!   (key label + hidden marker). An open issue found there that is not the one being
//!   superseded was made by an earlier attempt whose answer was lost: it is adopted,
//!   not duplicated.
//! - **Transient failures** (5xx, timeouts) are retried with exponential backoff
//!   (`forge.retry_initial` doubling up to `forge.retry_max`, jittered), honouring a
//!   `retry-after` the forge sent; they are never given up — a forge outage ends.
//! - **Rate limits** (403/429 with `retry-after`) pause this worker for at least that
//!   long: every operation would hit the same limit.
//! - **Permanent failures** (401, 404, 410, 422) park the operation with the forge's
//!   message, visible in the store (`outbox.last_error`) and in
//!   `triage_outbox_failures_total{reason="permanent"}`; later operations of the work
//!   order go on.
//! - Comments are at-least-once: a worker that dies after the forge accepted a comment
//!   but before recording it will post it again when the lease runs out.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::metrics::Attempt;
use super::plan::Operation;
use super::{Pipeline, backoff};
use crate::forge::{ForgeError, IssueRef};
use crate::store::work::ClaimedOperation;

/// A worker-wide pause after rate limits and failures that hit every operation.
#[derive(Debug, Default)]
pub(super) struct Pause {
    until: Option<Instant>,
    consecutive_failures: u32,
}

impl Pause {
    pub(super) fn remaining(&self) -> Option<Duration> {
        let until = self.until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    fn at_least(&mut self, d: Duration) {
        let until = Instant::now() + d;
        if self.until.is_none_or(|u| u < until) {
            self.until = Some(until);
        }
    }
}

impl Pipeline {
    pub(super) async fn deliver_with(
        &self,
        now: Timestamp,
        pause: &mut Pause,
    ) -> anyhow::Result<Option<Attempt>> {
        let Some(claimed) = self.store.claim_operation(now, self.settings.lease).await? else {
            return Ok(None);
        };
        let op = claimed.operation.kind();
        let started = Instant::now();
        let result = self.perform(&claimed).await;
        // On the caller's clock (tests inject one), advanced by the real time it took.
        let done_at = after(now, started.elapsed());
        let attempt = match result {
            Ok(issue) => {
                self.store
                    .complete_operation(claimed.id, done_at, issue.as_ref())
                    .await?;
                self.metrics
                    .delivered(op, done_at.duration_since(claimed.created_at).as_secs_f64());
                pause.consecutive_failures = 0;
                Attempt::Done
            }
            Err(Failure::NoIssue) => {
                let reason = "the work order has no issue to act on (its create was parked; see the earlier operation)";
                self.metrics.failure(op, "no_issue");
                self.store
                    .park_operation(claimed.id, done_at, reason)
                    .await?;
                tracing::error!(key = %claimed.key, op, "outbox: parked: {reason}");
                Attempt::Parked
            }
            Err(Failure::Forge(ForgeError::Permanent { reason })) => {
                self.metrics.failure(op, "permanent");
                self.store
                    .park_operation(claimed.id, done_at, &reason)
                    .await?;
                tracing::error!(key = %claimed.key, op, reason = %reason, "outbox: permanent failure; operation parked");
                Attempt::Parked
            }
            Err(Failure::Forge(ForgeError::RateLimited {
                reason,
                retry_after,
            })) => {
                self.metrics.failure(op, "rate_limited");
                pause.consecutive_failures += 1;
                // At least what the forge asked for, then backing off as attempts add up.
                let wait = retry_after.max(backoff(&self.settings, claimed.attempts));
                pause.at_least(retry_after);
                let next = after(done_at, wait);
                self.store
                    .retry_operation(claimed.id, next, &format!("rate limited: {reason}"))
                    .await?;
                tracing::warn!(key = %claimed.key, op, ?retry_after, reason = %reason, "outbox: rate limited; pausing");
                Attempt::Retry
            }
            Err(Failure::Forge(ForgeError::Transient {
                reason,
                retry_after,
            })) => {
                self.metrics.failure(op, "transient");
                pause.consecutive_failures += 1;
                let wait = retry_after.unwrap_or_else(|| backoff(&self.settings, claimed.attempts));
                // The forge is likely down for everyone: back off the worker too, so an
                // outage costs one request per backoff step, not one per operation.
                pause.at_least(
                    retry_after
                        .unwrap_or_else(|| backoff(&self.settings, pause.consecutive_failures)),
                );
                let next = after(done_at, wait);
                self.store
                    .retry_operation(claimed.id, next, &reason)
                    .await?;
                tracing::warn!(key = %claimed.key, op, attempt = claimed.attempts, reason = %reason, "outbox: transient failure; will retry");
                Attempt::Retry
            }
        };
        self.metrics.attempt(op, attempt);
        Ok(Some(attempt))
    }

    /// Performs one operation; a create returns the issue it made or adopted.
    async fn perform(&self, claimed: &ClaimedOperation) -> Result<Option<IssueRef>, Failure> {
        let issue = || claimed.issue.as_ref().ok_or(Failure::NoIssue);
        match &claimed.operation {
            Operation::Create {
                repo,
                draft,
                labels,
                supersedes,
            } => {
                // Labels are made ahead only for their colours: forges create missing
                // ones with the issue. A permanent refusal (no permission to manage
                // labels, say) must not keep the work order from its issue.
                match self.forge.ensure_labels(repo, labels).await {
                    Ok(()) => {}
                    Err(ForgeError::Permanent { reason }) => {
                        tracing::warn!(key = %claimed.key, reason = %reason, "outbox: cannot create labels ahead of the issue; creating it anyway");
                        self.metrics.failure("ensure_labels", "permanent");
                    }
                    Err(other) => return Err(other.into()),
                }
                if let Some(found) = self
                    .forge
                    .find_by_key(repo, &claimed.key, &claimed.key_label)
                    .await?
                {
                    let superseded = Some(found.issue.number) == *supersedes
                        || claimed.issue.as_ref() == Some(&found.issue);
                    if found.state == crate::forge::IssueState::Open && !superseded {
                        tracing::info!(key = %claimed.key, issue = %found.issue.url, "outbox: adopting the issue an earlier attempt created");
                        return Ok(Some(found.issue));
                    }
                }
                let created = self.forge.create(repo, draft).await?;
                tracing::info!(key = %claimed.key, issue = %created.url, "outbox: issue created");
                Ok(Some(created))
            }
            Operation::Comment { body } => {
                self.forge.comment(issue()?, body).await?;
                Ok(None)
            }
            Operation::SetState { state, reason } => {
                self.forge.set_state(issue()?, *state, *reason).await?;
                Ok(None)
            }
            Operation::AddLabels { labels } => {
                self.forge.add_labels(issue()?, labels).await?;
                Ok(None)
            }
            Operation::RemoveLabels { labels } => {
                self.forge.remove_labels(issue()?, labels).await?;
                Ok(None)
            }
        }
    }
}

enum Failure {
    NoIssue,
    Forge(ForgeError),
}

impl From<ForgeError> for Failure {
    fn from(e: ForgeError) -> Self {
        Failure::Forge(e)
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}
