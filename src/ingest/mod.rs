//! The HTTP edge: verify the sender, bound the body, rate-limit, parse into Signals,
//! journal durably, answer. Nothing is acknowledged before it is committed.
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/v1/alertmanager`, `/v1/argocd` | POST | 202 stored, 200 duplicate, 400 bad body, 401, 413, 429/503 rate limited, 503 store failure |
//! | same | other | 405 with `Allow: POST` |
//! | `/healthz` | GET | 200 while the process serves |
//! | `/readyz` | GET | 200 when every readiness component is ready, else 503 |
//! | `/metrics` | GET | Prometheus/OpenMetrics text |
//!
//! Build with [`Ingest::new`], serve [`Ingest::router`] with connect info
//! (`into_make_service_with_connect_info::<SocketAddr>()`), so anonymous senders are
//! keyed by their address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::signal::Source;
use crate::store::Journal;

pub mod alertmanager;
pub mod argocd;
pub mod auth;
pub mod forge_webhook;
pub mod json;
pub mod limits;
pub mod readiness;
pub mod repair;
mod webhook;

pub use readiness::{ComponentState, Readiness, ReadinessReport};
pub use webhook::ErrorBody;

/// Which source a saved payload comes from, judged by its top-level keys (for `replay`
/// and `render`, which take files): Alertmanager's `alerts` + `version`, or Argo CD's
/// `triage`, `client_payload` or `app_name`. `None` when it is neither (or not JSON).
pub fn detect_source(body: &[u8]) -> Option<Source> {
    #[derive(serde::Deserialize)]
    struct Keys {
        alerts: Option<serde::de::IgnoredAny>,
        version: Option<serde::de::IgnoredAny>,
        triage: Option<serde::de::IgnoredAny>,
        client_payload: Option<serde::de::IgnoredAny>,
        app_name: Option<serde::de::IgnoredAny>,
    }
    let k: Keys = serde_json::from_slice(body).ok().or_else(|| {
        // Broken Argo CD template output still names its keys.
        let text = std::str::from_utf8(body).ok()?;
        serde_json::from_str(&repair::repair(text)?).ok()
    })?;
    if k.alerts.is_some() && k.version.is_some() {
        Some(Source::Alertmanager)
    } else if k.triage.is_some() || k.client_payload.is_some() || k.app_name.is_some() {
        Some(Source::Argocd)
    } else {
        None
    }
}

/// The readiness component the journal check reports under.
pub const JOURNAL_COMPONENT: &str = "journal";

/// Per-source verification and limits.
struct SourceState {
    verifier: auth::Verifier,
    limits: limits::SenderLimits,
}

/// Everything the handlers share.
struct IngestState {
    journal: Arc<dyn Journal>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    alertmanager: SourceState,
    argocd: SourceState,
    alertmanager_options: alertmanager::AlertmanagerOptions,
    body_limit: u64,
    request_timeout: Duration,
    stored: Arc<Notify>,
}

impl IngestState {
    fn source(&self, source: Source) -> &SourceState {
        match source {
            Source::Alertmanager => &self.alertmanager,
            Source::Argocd => &self.argocd,
        }
    }
}

/// The ingest edge, ready to be served.
#[derive(Clone)]
pub struct Ingest {
    state: Arc<IngestState>,
}

impl Ingest {
    /// `config` must be validated (`Config::load`). `metrics` is the frozen registry
    /// (`GET /metrics` encodes all of it); `readiness` is shared with other components.
    ///
    /// `stored` is notified (`notify_one`) after each newly stored delivery: the
    /// pipeline waits on it instead of polling the journal in a tight loop.
    pub fn new(
        config: &Config,
        journal: Arc<dyn Journal>,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        stored: Arc<Notify>,
    ) -> Self {
        let source = |c: &crate::config::SourceConfig| SourceState {
            verifier: auth::Verifier::new(c),
            limits: limits::SenderLimits::new(c.rate_limit_per_second, c.rate_limit_burst),
        };
        Ingest {
            state: Arc::new(IngestState {
                journal,
                metrics,
                readiness,
                alertmanager: source(&config.alertmanager),
                argocd: source(&config.argocd),
                alertmanager_options: alertmanager::AlertmanagerOptions {
                    cluster_label: config.kubernetes.cluster_label.clone(),
                },
                body_limit: config.server.body_limit.as_u64(),
                request_timeout: config.server.request_timeout,
                stored,
            }),
        }
    }

    /// The full router: webhooks, probes, metrics, with request ids and tracing.
    pub fn router(&self) -> Router {
        self.router_with(Router::new())
    }

    /// [`Ingest::router`] plus `extra` routes (the forge webhooks), under the same
    /// request ids, tracing and panic handling.
    pub fn router_with(&self, extra: Router) -> Router {
        let not_post = || webhook::method_not_allowed;
        Router::new()
            .route(
                "/v1/alertmanager",
                post(webhook::alertmanager).fallback(not_post()),
            )
            .route("/v1/argocd", post(webhook::argocd).fallback(not_post()))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(self.state.clone())
            .merge(extra)
            // A bug must not drop the connection silently: answer 500 in JSON.
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(TraceLayer::new_for_http().make_span_with(make_span))
            .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    webhook::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error while handling the request; retry (a repeat of a stored delivery is recognised)",
    )
}

/// One span per request, carrying the request id every log line of it repeats.
fn make_span(req: &Request<Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// Request ids for requests that bring none: a random per-process prefix and a
/// counter — unique, short, cheap.
#[derive(Clone)]
struct RequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: rand::random(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Checks the journal (open and writable, bounded wait) before reporting.
async fn readyz(State(state): State<Arc<IngestState>>) -> Response {
    let check = tokio::time::timeout(Duration::from_secs(2), state.journal.check_writable()).await;
    let backend = state.journal.backend();
    match check {
        Ok(Ok(())) => state.readiness.set_ready(
            JOURNAL_COMPONENT,
            format!("{backend} journal open and writable"),
        ),
        Ok(Err(e)) => state
            .readiness
            .set_not_ready(JOURNAL_COMPONENT, format!("{backend} journal: {e}")),
        Err(_) => state.readiness.set_not_ready(
            JOURNAL_COMPONENT,
            format!("{backend} journal did not answer within 2s"),
        ),
    }
    let report = state.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn metrics(State(state): State<Arc<IngestState>>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    webhook::error(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {} {}: Triage accepts POST /v1/alertmanager and POST /v1/argocd, and serves GET /healthz, /readyz, /metrics",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The peer address when served with connect info.
fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_source_of_saved_payloads() {
        let am = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/alertmanager/crashlooping-group-firing.json"),
        )
        .unwrap();
        assert_eq!(detect_source(&am), Some(Source::Alertmanager));
        assert_eq!(
            detect_source(br#"{"triage":"argocd/v1","trigger":"x","app":{}}"#),
            Some(Source::Argocd)
        );
        assert_eq!(
            detect_source(b"{\"app_name\": \"a\", \"message\": \"say \"hi\"\"}"),
            Some(Source::Argocd),
            "broken template output"
        );
        assert_eq!(detect_source(br#"{"hello": 1}"#), None);
        assert_eq!(detect_source(b"not json"), None);
    }
}
