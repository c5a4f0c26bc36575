//! The work-order pipeline: journal → enrich/route/correlate/lifecycle → outbox → forge.
//!
//! Three kinds of task, each a loop over short transactions, all restartable at any
//! point (state lives in the store, never only in memory):
//!
//! - the **processor** ([`Pipeline::process_at`]) claims unprocessed deliveries in id
//!   order, enriches and routes each signal through the [`Assessor`], correlates it to
//!   a work-order key, runs the lifecycle against the locked work-order row, and writes
//!   the new state, the timeline entry, the forge operations and the delivery's
//!   processed mark in one transaction;
//! - the **scheduler** ([`Pipeline::tick_at`]) takes work orders whose `next_check` is
//!   due (debounce deadlines, rechecks, quiet-period closes), re-enriches them against
//!   the live snapshot and runs the lifecycle's tick, again in one transaction;
//! - **outbox workers** ([`Pipeline::deliver_at`]) lease one operation at a time (in
//!   order per work order), perform it through the [`Forge`], and mark it done, retry
//!   it with backoff, or park it.
//!
//! On start nothing special is needed to resume: unprocessed deliveries, due work
//! orders and pending operations are simply what the loops pick up first.

pub mod assess;
pub mod issue_events;
pub mod metrics;
mod outbox;
pub mod plan;
mod processor;
mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LabelsConfig, LinksConfig};
use crate::forge::Forge;
use crate::forge::routing::RepoRouter;
use crate::render::Renderer;
use crate::store::WorkStore;
use crate::triage::Assessor;
use crate::triage::lifecycle::Rules;
use crate::triage::redact::Redactor;
pub use metrics::{Attempt, PipelineMetrics};

/// Deliveries claimed per processor transaction.
pub const PROCESS_BATCH: usize = 32;
/// Work orders per scheduler transaction.
pub const TICK_BATCH: usize = 32;

/// What the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rules: Rules,
    pub labels: LabelsConfig,
    pub links: LinksConfig,
    /// `kubernetes.cluster_label`, excluded from label-based keys.
    pub cluster_label: String,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    /// Longest an idle loop sleeps before looking again (a wake-up may be missed when
    /// another replica did the writing).
    pub idle_poll: Duration,
    /// Applied to every title, body and comment before it is queued for the forge:
    /// alert descriptions and Argo CD messages come from outside and may hold secrets.
    pub redactor: Redactor,
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(Settings {
            rules: Rules::from(&config.lifecycle),
            labels: config.labels.clone(),
            links: config.links.clone(),
            cluster_label: config.kubernetes.cluster_label.clone(),
            retry_initial: config.forge.retry_initial,
            retry_max: config.forge.retry_max,
            lease: config.forge.lease,
            idle_poll: Duration::from_secs(1),
            redactor: Redactor::from_config(&config.redaction)?,
        })
    }
}

/// The pipeline's parts. Build with [`Pipeline::new`], run with [`Pipeline::spawn`].
pub struct Pipeline {
    store: Arc<dyn WorkStore>,
    assessor: Arc<dyn Assessor>,
    forge: Arc<dyn Forge>,
    renderer: Arc<dyn Renderer>,
    router: RepoRouter,
    settings: Settings,
    metrics: PipelineMetrics,
    /// Rung when operations were queued, so idle workers start at once.
    enqueued: Notify,
    /// Rung when a work order got a new deadline sooner than the scheduler's sleep.
    scheduled: Notify,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn WorkStore>,
        assessor: Arc<dyn Assessor>,
        forge: Arc<dyn Forge>,
        renderer: Arc<dyn Renderer>,
        router: RepoRouter,
        settings: Settings,
        metrics: PipelineMetrics,
    ) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            store,
            assessor,
            forge,
            renderer,
            router,
            settings,
            metrics,
            enqueued: Notify::new(),
            scheduled: Notify::new(),
        })
    }

    pub fn metrics(&self) -> &PipelineMetrics {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn WorkStore> {
        &self.store
    }

    /// Starts the processor, the scheduler, `workers` outbox workers and the metrics
    /// refresher on `tasks`; they stop when `shutdown` is cancelled (between
    /// transactions: a cancelled task never leaves half a decision behind).
    /// `stored` is the ingest edge's "a delivery was journaled" notification.
    pub fn spawn(
        self: &Arc<Self>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
        stored: Arc<Notify>,
        workers: usize,
    ) {
        let p = self.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move { p.run_processor(stop, stored).await });
        let p = self.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move { p.run_scheduler(stop).await });
        for n in 0..workers.max(1) {
            let p = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { p.run_outbox(n, stop).await });
        }
        let p = self.clone();
        tasks.spawn(async move { p.run_metrics(shutdown).await });
    }

    async fn run_processor(self: Arc<Self>, shutdown: CancellationToken, stored: Arc<Notify>) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            match guarded(self.process_at(Timestamp::now())).await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = stored.notified() => {}
                        _ = tokio::time::sleep(self.settings.idle_poll) => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(err) => {
                    failures += 1;
                    tracing::error!(error = %err, "processor: batch failed; its deliveries stay unprocessed and are retried");
                    sleep_or_stop(&shutdown, backoff(&self.settings, failures)).await;
                }
            }
        }
    }

    async fn run_scheduler(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            match guarded(self.tick_at(Timestamp::now())).await {
                Ok(0) => {
                    failures = 0;
                    let wait = match self.store.next_check_due().await {
                        Ok(Some(at)) => until(at).min(self.settings.idle_poll),
                        _ => self.settings.idle_poll,
                    };
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = self.scheduled.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(err) => {
                    failures += 1;
                    tracing::error!(error = %err, "scheduler: batch failed; retried");
                    sleep_or_stop(&shutdown, backoff(&self.settings, failures)).await;
                }
            }
        }
    }

    async fn run_outbox(self: Arc<Self>, worker: usize, shutdown: CancellationToken) {
        let mut pause = outbox::Pause::default();
        while !shutdown.is_cancelled() {
            if let Some(wait) = pause.remaining() {
                sleep_or_stop(&shutdown, wait).await;
                continue;
            }
            match guarded(self.deliver_with(Timestamp::now(), &mut pause)).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let wait = match self.store.next_operation_due().await {
                        Ok(Some(at)) => until(at).min(self.settings.idle_poll),
                        _ => self.settings.idle_poll,
                    };
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = self.enqueued.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(err) => {
                    tracing::error!(worker, error = %err, "outbox: store failure; retrying");
                    sleep_or_stop(&shutdown, self.settings.retry_initial).await;
                }
            }
        }
    }

    async fn run_metrics(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            self.refresh_metrics().await;
            sleep_or_stop(&shutdown, Duration::from_secs(5)).await;
        }
    }

    /// Updates the gauges (work orders by state, outbox depth and age) from the store.
    pub async fn refresh_metrics(&self) {
        let now = Timestamp::now();
        match self.store.gauge_stats().await {
            Ok(stats) => self.metrics.stats(&stats, now),
            Err(err) => tracing::warn!(error = %err, "cannot read work-order counts for metrics"),
        }
    }

    /// One outbox attempt at `now` (tests and tools; the workers keep a shared pause).
    pub async fn deliver_at(&self, now: Timestamp) -> anyhow::Result<Option<Attempt>> {
        let mut pause = outbox::Pause::default();
        self.deliver_with(now, &mut pause).await
    }
}

/// Outbox workers per replica. One: GitHub asks for serial mutations, the forge
/// clients pace them anyway, and one worker keeps the order of work orders' first
/// operations the order of their decisions.
pub const OUTBOX_WORKERS: usize = 1;

/// What `serve` calls: builds the pipeline over the opened store, registers its
/// metrics into `registry` (the shared one, `triage_` prefix), and starts its tasks
/// on `tasks` until `shutdown`. `stored` is the ingest edge's notification.
#[allow(clippy::too_many_arguments)]
pub fn start(
    config: &Config,
    work: Arc<dyn WorkStore>,
    assessor: Arc<dyn Assessor>,
    forge: Arc<dyn Forge>,
    renderer: Arc<dyn Renderer>,
    registry: &mut prometheus_client::registry::Registry,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
    stored: Arc<Notify>,
) -> anyhow::Result<Arc<Pipeline>> {
    let metrics = PipelineMetrics::default();
    metrics.register(registry);
    let router = RepoRouter::from_config(config)?;
    let pipeline = Pipeline::new(
        work,
        assessor,
        forge,
        renderer,
        router,
        Settings::from_config(config)?,
        metrics,
    );
    pipeline.spawn(tasks, shutdown, stored, OUTBOX_WORKERS);
    tracing::info!(
        forge = pipeline.forge.kind(),
        store = pipeline.store.backend(),
        "work-order pipeline started (resuming unprocessed deliveries, due work orders and pending operations)"
    );
    Ok(pipeline)
}

/// Runs one iteration, turning a panic into an error so the loop survives it.
async fn guarded<T>(
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow::anyhow!("panicked: {what}"))
        }
    }
}

/// How long until `at` (zero if it has passed).
fn until(at: Timestamp) -> Duration {
    let now = Timestamp::now();
    if at <= now {
        Duration::ZERO
    } else {
        now.duration_until(at).unsigned_abs()
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// `retry_initial · 2^(n-1)`, capped at `retry_max`, with ±20 % jitter so replicas and
/// operations do not retry in lockstep.
pub(crate) fn backoff(settings: &Settings, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let base = settings
        .retry_initial
        .saturating_mul(1u32 << exp)
        .min(settings.retry_max);
    let jitter = rand::random_range(0.8..1.2);
    base.mul_f64(jitter).min(settings.retry_max)
}
