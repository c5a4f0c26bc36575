//! The webhook handlers: one pipeline for both sources, in the order that spends the
//! least on requests that will be refused — size from headers, credentials from
//! headers, rate limit, body (bounded), signature, parse, journal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::auth::{HeaderCheck, Sender};
use super::json::BadPayload;
use super::{IngestState, peer};
use crate::metrics::Outcome;
use crate::signal::{Signal, Source};
use crate::store::{Appended, DeliveryId, NewDelivery, StoreError};

/// Bodies larger than this are parsed on the blocking pool, so one big Argo CD
/// Application does not hold up the requests sharing its worker thread.
const PARSE_INLINE_MAX: usize = 256 * 1024;

/// Longest request id journaled and logged; a longer incoming one is cut.
const REQUEST_ID_MAX: usize = 128;

/// The body of every error answer. Argo CD logs it, so it says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

/// Why a delivery was not accepted.
enum Rejection {
    Unauthorized,
    TooLarge,
    RateLimited { sender: String, wait: Duration },
    BadRequest(String),
    Store(StoreError),
    Timeout,
    Internal(String),
}

/// Why a delivery was accepted.
enum Accepted {
    Stored {
        id: DeliveryId,
        signals: usize,
    },
    Duplicate {
        original: DeliveryId,
        first: Timestamp,
    },
}

pub(super) async fn alertmanager(State(state): State<Arc<IngestState>>, req: Request) -> Response {
    handle(&state, Source::Alertmanager, req).await
}

pub(super) async fn argocd(State(state): State<Arc<IngestState>>, req: Request) -> Response {
    handle(&state, Source::Argocd, req).await
}

pub(super) async fn method_not_allowed(req: Request) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} is not allowed on {}: webhook senders must use POST \
             (Argo CD's webhook template defaults to GET: set `method: POST` in the template's webhook section)",
            req.method(),
            req.uri().path()
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn handle(state: &IngestState, source: Source, req: Request) -> Response {
    let started = Instant::now();
    let result =
        match tokio::time::timeout(state.request_timeout, process(state, source, req)).await {
            Ok(r) => r,
            Err(_) => Err(Rejection::Timeout),
        };
    let (outcome, response) = match result {
        Ok(accepted) => accept(accepted),
        Err(rejection) => reject(state, source, rejection),
    };
    let m = &state.metrics.ingest;
    m.delivery(source, outcome);
    m.request_duration(source, started.elapsed().as_secs_f64());
    response
}

async fn process(state: &IngestState, source: Source, req: Request) -> Result<Accepted, Rejection> {
    let received_at = Timestamp::now();
    let peer_ip = peer(&req).map(|p| p.ip());
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let src = state.source(source);

    if content_length(headers).is_some_and(|n| n > state.body_limit) {
        return Err(Rejection::TooLarge);
    }
    // Header credentials are checked (and rate-limited) before the body is read.
    let verified = match src.verifier.check_headers(headers, peer_ip) {
        HeaderCheck::Verified(s) => {
            rate_limit(src, &s)?;
            Some(s)
        }
        HeaderCheck::NeedsBody => None,
        HeaderCheck::Refused => return Err(Rejection::Unauthorized),
    };
    let body = read_body(body, state.body_limit).await?;
    let sender = match verified {
        Some(s) => s,
        None => {
            let s = src
                .verifier
                .check_body(headers, &body)
                .ok_or(Rejection::Unauthorized)?;
            rate_limit(src, &s)?;
            s
        }
    };

    let signals = parse(state, source, body.clone()).await?;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| truncate(id, REQUEST_ID_MAX))
        .unwrap_or_default();
    let delivery = NewDelivery::new(
        source,
        received_at,
        sender.to_string(),
        request_id,
        body,
        &signals,
    )
    .map_err(Rejection::Store)?;
    match state
        .journal
        .append(delivery)
        .await
        .map_err(Rejection::Store)?
    {
        Appended::Stored(id) => {
            state.stored.notify_one();
            for s in &signals {
                state.metrics.ingest.signal(source, s.kind, s.status);
            }
            tracing::info!(%source, %sender, delivery_id = %id, signals = signals.len(), "delivery stored");
            Ok(Accepted::Stored {
                id,
                signals: signals.len(),
            })
        }
        Appended::Duplicate {
            original,
            original_received_at,
        } => {
            tracing::info!(%source, %sender, original = %original, "duplicate delivery, not stored again");
            Ok(Accepted::Duplicate {
                original,
                first: original_received_at,
            })
        }
    }
}

fn rate_limit(src: &super::SourceState, sender: &Sender) -> Result<(), Rejection> {
    src.limits
        .check(sender)
        .map_err(|wait| Rejection::RateLimited {
            sender: sender.to_string(),
            wait,
        })
}

async fn parse(state: &IngestState, source: Source, body: Bytes) -> Result<Vec<Signal>, Rejection> {
    let parsed = if body.len() > PARSE_INLINE_MAX {
        let options = state.alertmanager_options.clone();
        tokio::task::spawn_blocking(move || parse_now(source, &body, &options))
            .await
            .map_err(|e| Rejection::Internal(format!("the parser failed: {e}")))?
    } else {
        parse_now(source, &body, &state.alertmanager_options)
    };
    parsed.map_err(|e| Rejection::BadRequest(e.0))
}

fn parse_now(
    source: Source,
    body: &[u8],
    options: &super::alertmanager::AlertmanagerOptions,
) -> Result<Vec<Signal>, BadPayload> {
    match source {
        Source::Alertmanager => super::alertmanager::parse(body, options),
        Source::Argocd => super::argocd::parse(body).map(|s| vec![s]),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn read_body(body: Body, limit: u64) -> Result<Bytes, Rejection> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Rejection::TooLarge)
        }
        Err(e) => Err(Rejection::BadRequest(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The body of a 2xx answer.
#[derive(Serialize)]
struct AcceptedBody {
    status: &'static str,
    delivery_id: DeliveryId,
    #[serde(skip_serializing_if = "Option::is_none")]
    signals: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_received_at: Option<Timestamp>,
}

fn accept(accepted: Accepted) -> (Outcome, Response) {
    match accepted {
        Accepted::Stored { id, signals } => (
            Outcome::Accepted,
            (
                StatusCode::ACCEPTED,
                axum::Json(AcceptedBody {
                    status: "accepted",
                    delivery_id: id,
                    signals: Some(signals),
                    first_received_at: None,
                }),
            )
                .into_response(),
        ),
        Accepted::Duplicate { original, first } => (
            Outcome::Duplicate,
            (
                StatusCode::OK,
                axum::Json(AcceptedBody {
                    status: "duplicate",
                    delivery_id: original,
                    signals: None,
                    first_received_at: Some(first),
                }),
            )
                .into_response(),
        ),
    }
}

fn reject(state: &IngestState, source: Source, rejection: Rejection) -> (Outcome, Response) {
    match rejection {
        Rejection::Unauthorized => {
            tracing::warn!(%source, "delivery refused: missing or invalid credentials");
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                format!("missing or invalid credentials for /v1/{source}"),
            );
            for challenge in state.source(source).verifier.challenges() {
                r.headers_mut()
                    .append(header::WWW_AUTHENTICATE, challenge.clone());
            }
            (Outcome::Unauthorized, r)
        }
        Rejection::TooLarge => {
            let limit = bytesize::ByteSize::b(state.body_limit);
            tracing::warn!(%source, %limit, "delivery refused: body too large");
            (
                Outcome::TooLarge,
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "body is larger than the limit of {limit} ({} bytes; server.body_limit)",
                        state.body_limit
                    ),
                ),
            )
        }
        Rejection::RateLimited { sender, wait } => {
            // Alertmanager retries 5xx only, Argo CD also retries 429.
            let status = match source {
                Source::Alertmanager => StatusCode::SERVICE_UNAVAILABLE,
                Source::Argocd => StatusCode::TOO_MANY_REQUESTS,
            };
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            tracing::warn!(%source, %sender, retry_after = secs, "delivery refused: rate limit");
            let mut r = error(
                status,
                format!(
                    "rate limit exceeded for sender {sender} on /v1/{source}; retry in {secs}s"
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            (Outcome::RateLimited, r)
        }
        Rejection::BadRequest(message) => {
            tracing::warn!(%source, error = %message, "delivery refused: bad request");
            (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, message))
        }
        Rejection::Store(e) => {
            tracing::error!(%source, error = %e, "delivery not stored: journal failure");
            (
                Outcome::StoreError,
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the delivery could not be stored; retry later",
                ),
            )
        }
        Rejection::Internal(message) => {
            tracing::error!(%source, error = %message, "delivery failed: internal error");
            (
                Outcome::Internal,
                error(StatusCode::INTERNAL_SERVER_ERROR, message),
            )
        }
        Rejection::Timeout => {
            tracing::error!(%source, timeout = ?state.request_timeout, "delivery not answered in time");
            (
                Outcome::Timeout,
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the delivery could not be completed within {:?} (server.request_timeout); retry later",
                        state.request_timeout
                    ),
                ),
            )
        }
    }
}
