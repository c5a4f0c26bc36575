//! `POST /v1/github` and `POST /v1/gitea`: issue events from the forge, so a human
//! closing, reopening or muting a work order's issue is reflected in the work order.
//!
//! Verified with HMAC-SHA256 over the exact body (`X-Hub-Signature-256`,
//! `X-Gitea-Signature`, compared in constant time) before anything is parsed; without a
//! configured secret every delivery is refused. The change is committed before the
//! 200. Events other than `issues` (`ping`, comments) are answered 200 and ignored.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;

use super::webhook::{error, method_not_allowed};
use crate::config::{Config, Secret};
use crate::forge::webhook::{self as events, WebhookForge};
use crate::pipeline::Pipeline;

/// What the forge-webhook routes need.
pub struct ForgeWebhooks {
    pipeline: Arc<Pipeline>,
    github_secret: Option<Secret>,
    gitea_secret: Option<Secret>,
    body_limit: usize,
}

impl ForgeWebhooks {
    pub fn new(config: &Config, pipeline: Arc<Pipeline>) -> ForgeWebhooks {
        ForgeWebhooks {
            pipeline,
            github_secret: config.github.webhook_secret.clone(),
            gitea_secret: config.gitea.webhook_secret.clone(),
            body_limit: usize::try_from(config.server.body_limit.as_u64()).unwrap_or(usize::MAX),
        }
    }

    /// The two routes, to merge into the ingest router (which adds request ids,
    /// tracing and panic handling).
    pub fn router(self) -> Router {
        let limit = axum::extract::DefaultBodyLimit::max(self.body_limit);
        Router::new()
            .route(
                "/v1/github",
                post(github).fallback(method_not_allowed).layer(limit),
            )
            .route(
                "/v1/gitea",
                post(gitea).fallback(method_not_allowed).layer(limit),
            )
            .with_state(Arc::new(self))
    }
}

async fn github(State(s): State<Arc<ForgeWebhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, WebhookForge::Github, &headers, &body).await
}

async fn gitea(State(s): State<Arc<ForgeWebhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, WebhookForge::Gitea, &headers, &body).await
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    s: &ForgeWebhooks,
    forge: WebhookForge,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (path, secret, secret_key) = match forge {
        WebhookForge::Github => ("/v1/github", &s.github_secret, "github.webhook_secret"),
        WebhookForge::Gitea => ("/v1/gitea", &s.gitea_secret, "gitea.webhook_secret"),
    };
    let Some(secret) = secret else {
        tracing::warn!(
            path,
            "forge webhook refused: {secret_key} is not configured"
        );
        return unauthorized(format!(
            "{path} refuses every delivery: no webhook secret is configured ({secret_key})"
        ));
    };
    let secret = secret.expose().as_bytes();
    let verified = match forge {
        WebhookForge::Github => events::verify_github_signature(
            secret,
            body,
            header_str(headers, events::GITHUB_SIGNATURE_HEADER),
        ),
        WebhookForge::Gitea => events::verify_gitea_signature(
            secret,
            body,
            header_str(headers, events::GITEA_SIGNATURE_HEADER)
                .or_else(|| header_str(headers, "x-forgejo-signature")),
        ),
    };
    if let Err(e) = verified {
        tracing::warn!(path, reason = %e, "forge webhook refused: bad signature");
        return unauthorized(format!("{path}: missing or invalid signature"));
    }

    let parsed = match forge {
        WebhookForge::Github => {
            let event = header_str(headers, "x-github-event").unwrap_or_default();
            events::parse_github_issue_event(event, body)
        }
        WebhookForge::Gitea => {
            let event = header_str(headers, "x-gitea-event")
                .or_else(|| header_str(headers, "x-forgejo-event"))
                .unwrap_or_default();
            events::parse_gitea_issue_event(event, body)
        }
    };
    let event = match parsed {
        Ok(Some(event)) => event,
        Ok(None) => {
            return (
                StatusCode::OK,
                axum::Json(serde_json::json!({
                    "status": "ignored",
                    "reason": "not an issues event about an issue",
                })),
            )
                .into_response();
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match s.pipeline.apply_issue_event(&event, Timestamp::now()).await {
        Ok(outcome) => (StatusCode::OK, axum::Json(outcome)).into_response(),
        Err(e) => {
            tracing::error!(path, error = %e, "forge webhook: the store failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the work-order store could not record the event: {e}; retry later"),
            )
        }
    }
}

fn unauthorized(message: String) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("HMAC-SHA256 realm=\"triage\""),
    );
    response
}
