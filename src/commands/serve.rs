//! `triage serve`: the long-running service.
//!
//! Start: logging → startup warnings → store (open, migrate) → cluster snapshot →
//! work-order pipeline (processor, scheduler, outbox; resuming whatever the store holds)
//! → HTTP. Stop (SIGTERM/SIGINT): not ready → stop accepting → finish in-flight
//! requests and background tasks (bounded by `server.shutdown_timeout`) → flush and
//! close the journal.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Clusters;
use crate::config::Config;
use crate::ingest::{ComponentState, Ingest, JOURNAL_COMPONENT, Readiness};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::store::{self, Journal};
use crate::triage::Assessor;
use crate::triage::context::SnapshotState;

/// The readiness component that turns not-ready when shutdown begins, so load
/// balancers stop sending before the listener closes.
pub const SHUTDOWN_COMPONENT: &str = "shutdown";

/// Entry point of `triage serve` (config already loaded with CLI overrides).
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&config.log)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("triage")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.server.listen;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {listen}"))?;
        let server = Server::start(config, listener).await?;
        let signal = shutdown_signal().await?;
        tracing::info!(
            signal,
            "shutting down: no new connections, finishing in-flight requests"
        );
        server.stop().await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// A running Triage: the HTTP edge and its background tasks, over one journal.
pub struct Server {
    addr: SocketAddr,
    journal: Arc<dyn Journal>,
    store: store::Store,
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    http: JoinHandle<std::io::Result<()>>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens the store and starts serving on `listener` (bound by the caller, so tests
    /// can use an ephemeral port).
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
        let addr = listener
            .local_addr()
            .context("cannot read the listening address")?;
        let mut metrics = Metrics::new();
        let readiness = Readiness::new();
        readiness.set_ready(SHUTDOWN_COMPONENT, "serving");
        let opened = store::open_store(&config.store, metrics.journal.clone())
            .await
            .context("cannot open the store")?;
        let journal = opened.journal.clone();
        readiness.set_ready(
            JOURNAL_COMPONENT,
            format!("{} journal open", journal.backend()),
        );
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let stored = Arc::new(Notify::new());

        // The work-order pipeline: unprocessed deliveries, due work orders and pending
        // forge operations are picked up where the last process left them. Its tasks
        // run on `tasks`; `stop` waits for them before it closes the journal.
        let (assessor, clusters) = assessor(&config, shutdown.clone()).await?;
        if let Some(clusters) = &clusters {
            report_cluster_readiness(&readiness, clusters);
            crate::cluster::metrics::register(clusters.clone(), metrics.registry_mut());
        }
        let forge_metrics = crate::forge::ForgeMetrics::new();
        forge_metrics.register(metrics.registry_mut());
        let forge = crate::forge::from_config(&config, &forge_metrics)
            .context("cannot set up the forge")?;
        let pipeline = crate::pipeline::start(
            &config,
            opened.work.clone(),
            assessor,
            forge,
            crate::render::renderer(&config)?,
            metrics.registry_mut(),
            &tasks,
            shutdown.clone(),
            stored.clone(),
        )?;

        let metrics = Arc::new(metrics);
        let ingest = Ingest::new(
            &config,
            journal.clone(),
            metrics.clone(),
            readiness.clone(),
            stored,
        );
        let forge_webhooks =
            crate::ingest::forge_webhook::ForgeWebhooks::new(&config, pipeline.clone());
        let app = ingest
            .router_with(forge_webhooks.router())
            .into_make_service_with_connect_info::<SocketAddr>();
        let token = shutdown.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
        });
        tracing::info!(
            listen = %addr,
            store = journal.backend(),
            body_limit = %config.server.body_limit,
            "triage serving: POST /v1/alertmanager, POST /v1/argocd"
        );
        Ok(Server {
            addr,
            journal,
            store: opened,
            pipeline,
            metrics,
            readiness,
            shutdown,
            tasks,
            http,
            shutdown_timeout: config.server.shutdown_timeout,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// Work orders, timeline and outbox.
    pub fn work_store(&self) -> &Arc<dyn store::WorkStore> {
        &self.store.work
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Stops accepting, lets in-flight requests and background tasks finish (at most
    /// `server.shutdown_timeout`), then commits and closes the journal.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.readiness
            .set_not_ready(SHUTDOWN_COMPONENT, "shutting down");
        self.shutdown.cancel();
        self.tasks.close();
        let mut http = self.http;
        let tasks = self.tasks.clone();
        let drained = tokio::time::timeout(self.shutdown_timeout, async {
            let served = (&mut http).await;
            tasks.wait().await;
            served
        })
        .await;
        match drained {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server task failed"),
            Err(_) => {
                tracing::warn!(
                    timeout = ?self.shutdown_timeout,
                    "in-flight work did not finish within server.shutdown_timeout; stopping anyway \
                     (unanswered senders retry; their repeats are recognised as duplicates)"
                );
                http.abort();
            }
        }
        self.journal
            .close()
            .await
            .context("cannot flush and close the journal")?;
        Ok(())
    }
}

/// The cluster-aware assessor over the configured clusters (static snapshots or live
/// watches). With no cluster configured at all and no kubeconfig to be found, Triage
/// still files work orders, routed by their signals alone, and says so.
/// The enricher over the configured clusters (also returned, for readiness and
/// metrics), or, when nothing is configured and no kubeconfig can be found, routing by
/// the signals alone.
async fn assessor(
    config: &Config,
    cancel: CancellationToken,
) -> anyhow::Result<(Arc<dyn Assessor>, Option<Arc<Clusters>>)> {
    let configured = config.kubernetes.snapshot.is_some()
        || config.kubernetes.kubeconfig.is_some()
        || !config.clusters.is_empty();
    match Clusters::start(config, cancel).await {
        Ok(clusters) => Ok((
            Arc::new(crate::triage::enrich::Enricher::new(
                config,
                clusters.clone(),
            )?),
            Some(clusters),
        )),
        Err(err) if !configured => {
            tracing::warn!(
                error = %format!("{err:#}"),
                "no cluster access (no kubernetes.snapshot, no kubeconfig, not in a cluster): \
                 work orders are routed by their signals alone, without workload context"
            );
            Ok((
                Arc::new(crate::pipeline::assess::ContextlessAssessor::new(
                    config.kubernetes.default_cluster.clone(),
                )),
                None,
            ))
        }
        Err(err) => Err(err.context("cannot set up the cluster snapshot")),
    }
}

/// One `/readyz` component per cluster, `cluster:<name>`, read from its snapshot at
/// each request: a live cluster is ready once every watch has listed, and stops being
/// ready while its API server is unreachable (enrichment would be stale), unless
/// `kubernetes.serve_before_sync` says to accept deliveries regardless — they are
/// journaled either way and enriched at their debounce deadline.
fn report_cluster_readiness(readiness: &Readiness, clusters: &Arc<Clusters>) {
    let serve_anyway = clusters.serves_before_sync();
    for cluster in clusters.clusters() {
        let cluster = cluster.clone();
        readiness.add_probe(
            &format!("cluster:{}", cluster.name),
            Arc::new(move || {
                let (state, detail) = cluster.state();
                let synced = matches!(state, SnapshotState::Synced | SnapshotState::Static);
                let mut detail = match (state, detail) {
                    (SnapshotState::Static, _) => "static snapshot".to_string(),
                    (SnapshotState::Synced, _) => "synced, watching".to_string(),
                    (_, Some(detail)) => detail,
                    (_, None) => "not synced".to_string(),
                };
                if !synced && serve_anyway {
                    detail.push_str(" (serving anyway: kubernetes.serve_before_sync)");
                }
                ComponentState {
                    ready: synced || serve_anyway,
                    detail,
                }
            }),
        );
    }
}

/// Waits for SIGTERM (Kubernetes) or SIGINT (Ctrl-C); returns which.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot watch Ctrl-C")?;
        Ok("Ctrl-C")
    }
}
