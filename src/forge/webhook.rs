//! Forge webhooks in: signature verification and the `issues` events Triage acts on.
//!
//! Pure functions over the raw body and header values, for the `POST /v1/github` and
//! `POST /v1/gitea` handlers:
//! - GitHub signs with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
//! - Gitea signs with `X-Gitea-Signature: <hex>` (no prefix); Forgejo sends the same
//!   value as `X-Forgejo-Signature`, and both also send a GitHub-style header.
//!
//! The MAC is compared in constant time (`Mac::verify_slice`); the signature must be
//! computed over the exact bytes received, before any parsing.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{IssueState, RepoRef, parse_key_marker};

/// Why a delivery's signature was refused. Messages are safe to return to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {header} header")]
    Missing { header: &'static str },
    #[error("{header} is not {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    #[error("{header} does not match the body and the configured secret")]
    Mismatch { header: &'static str },
}

pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const GITEA_SIGNATURE_HEADER: &str = "x-gitea-signature";

/// Verifies `X-Hub-Signature-256` (`sha256=<64 hex digits>`).
pub fn verify_github_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    const H: &str = "X-Hub-Signature-256";
    const EXPECTED: &str = "sha256= followed by 64 hex digits";
    let value = header.ok_or(SignatureError::Missing { header: H })?;
    let hex_part = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed {
            header: H,
            expected: EXPECTED,
        })?;
    verify_hex(secret, body, hex_part, H, EXPECTED)
}

/// Verifies `X-Gitea-Signature` (64 hex digits, no prefix).
pub fn verify_gitea_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    const H: &str = "X-Gitea-Signature";
    let value = header.ok_or(SignatureError::Missing { header: H })?;
    verify_hex(secret, body, value.trim(), H, "64 hex digits")
}

fn verify_hex(
    secret: &[u8],
    body: &[u8],
    hex_digits: &str,
    header: &'static str,
    expected: &'static str,
) -> Result<(), SignatureError> {
    let signature = hex::decode(hex_digits)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or(SignatureError::Malformed { header, expected })?;
    // An empty secret would let anyone sign; config refuses it, and so does this.
    if secret.is_empty() {
        return Err(SignatureError::Mismatch { header });
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch { header })?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch { header })
}

/// `sha256=<hex>` for a body, as GitHub computes it (for tests and tooling).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", gitea_signature(secret, body))
}

/// `<hex>` for a body, as Gitea computes it.
pub fn gitea_signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Which forge sent an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookForge {
    Github,
    Gitea,
}

/// What happened to the issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueAction {
    Opened,
    Edited,
    Closed,
    Reopened,
    /// GitHub: one label added (`IssueEvent::label`).
    Labeled,
    /// GitHub: one label removed (`IssueEvent::label`).
    Unlabeled,
    /// Gitea `label_updated` / `label_cleared`: compare `IssueEvent::labels`.
    LabelsChanged,
    /// Anything else (assigned, milestoned, deleted…), named as the forge sent it.
    Other(String),
}

/// One `issues` event, reduced to what work orders need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueEvent {
    pub forge: WebhookForge,
    pub action: IssueAction,
    pub repo: RepoRef,
    pub number: u64,
    pub html_url: String,
    /// The issue's state after the event.
    pub state: IssueState,
    /// The work-order key from the body's marker; `None` for issues Triage did not open.
    pub key: Option<String>,
    /// All labels after the event.
    pub labels: Vec<String>,
    /// The label added or removed (GitHub `labeled` / `unlabeled`).
    pub label: Option<String>,
    /// Login of who did it.
    pub sender: Option<String>,
    /// When the forge says the issue last changed (`issue.updated_at`); tells a late
    /// echo of Triage's own change from a human's newer one.
    pub updated_at: Option<jiff::Timestamp>,
}

/// The event payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {forge} {event} event payload: {reason}")]
pub struct EventError {
    pub forge: &'static str,
    pub event: String,
    pub reason: String,
}

// Shared shape: GitHub and Gitea both send `action`, `issue{number, html_url, state,
// body, labels[{name}]}`, `repository{full_name}`, `sender{login}`.
#[derive(Deserialize)]
struct Payload {
    action: String,
    issue: PayloadIssue,
    repository: PayloadRepository,
    sender: Option<PayloadUser>,
    label: Option<PayloadLabel>,
}

#[derive(Deserialize)]
struct PayloadIssue {
    number: u64,
    html_url: String,
    state: String,
    body: Option<String>,
    #[serde(default)]
    labels: Option<Vec<PayloadLabel>>,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct PayloadRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct PayloadUser {
    login: String,
}

#[derive(Deserialize)]
struct PayloadLabel {
    name: String,
}

/// Parses a GitHub delivery. `event` is `X-GitHub-Event`; anything but `issues`
/// (`ping`, `issue_comment`…) is `Ok(None)`.
pub fn parse_github_issue_event(
    event: &str,
    body: &[u8],
) -> Result<Option<IssueEvent>, EventError> {
    parse_issue_event(WebhookForge::Github, "GitHub", event, body)
}

/// Parses a Gitea/Forgejo delivery. `event` is `X-Gitea-Event` (or `X-Forgejo-Event`);
/// label changes arrive as `issues` with action `label_updated`/`label_cleared`.
pub fn parse_gitea_issue_event(event: &str, body: &[u8]) -> Result<Option<IssueEvent>, EventError> {
    parse_issue_event(WebhookForge::Gitea, "Gitea", event, body)
}

fn parse_issue_event(
    forge: WebhookForge,
    name: &'static str,
    event: &str,
    body: &[u8],
) -> Result<Option<IssueEvent>, EventError> {
    if event != "issues" {
        return Ok(None);
    }
    let fail = |reason: String| EventError {
        forge: name,
        event: event.to_string(),
        reason,
    };
    let p: Payload = serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
    if p.issue.pull_request.is_some() {
        return Ok(None);
    }
    let repo = RepoRef::parse(&p.repository.full_name)
        .map_err(|e| fail(format!("repository.full_name: {e}")))?;
    let action = match p.action.as_str() {
        "opened" => IssueAction::Opened,
        "edited" => IssueAction::Edited,
        "closed" => IssueAction::Closed,
        "reopened" => IssueAction::Reopened,
        "labeled" => IssueAction::Labeled,
        "unlabeled" => IssueAction::Unlabeled,
        "label_updated" | "label_cleared" => IssueAction::LabelsChanged,
        other => IssueAction::Other(other.to_string()),
    };
    let state = match p.issue.state.as_str() {
        "open" => IssueState::Open,
        "closed" => IssueState::Closed,
        other => {
            return Err(fail(format!(
                "issue.state {other:?} is neither open nor closed"
            )));
        }
    };
    Ok(Some(IssueEvent {
        forge,
        action,
        repo,
        number: p.issue.number,
        html_url: p.issue.html_url,
        state,
        key: p
            .issue
            .body
            .as_deref()
            .and_then(parse_key_marker)
            .map(str::to_string),
        labels: p
            .issue
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.name)
            .collect(),
        label: p.label.map(|l| l.name),
        sender: p.sender.map(|s| s.login),
        // GitHub writes `Z`, Gitea an offset (`+01:00`); an unreadable time only costs
        // the staleness check.
        updated_at: p
            .issue
            .updated_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signature_round_trip_and_refusals() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let sig = github_signature(b"s3cret", body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(verify_github_signature(b"s3cret", body, Some(&sig)), Ok(()));
        assert!(matches!(
            verify_github_signature(b"other", body, Some(&sig)),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            verify_github_signature(b"s3cret", body, None),
            Err(SignatureError::Missing { .. })
        ));
        let bare = sig.trim_start_matches("sha256=");
        assert!(matches!(
            verify_github_signature(b"s3cret", body, Some(bare)),
            Err(SignatureError::Malformed { .. })
        ));
        assert!(matches!(
            verify_github_signature(b"s3cret", body, Some("sha256=abcd")),
            Err(SignatureError::Malformed { .. })
        ));
        assert!(matches!(
            verify_github_signature(b"", body, Some(&github_signature(b"", body))),
            Err(SignatureError::Mismatch { .. })
        ));
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            gitea_signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn gitea_signature_has_no_prefix() {
        let body = b"{}";
        let sig = gitea_signature(b"k", body);
        assert_eq!(verify_gitea_signature(b"k", body, Some(&sig)), Ok(()));
        assert!(matches!(
            verify_gitea_signature(b"k", body, Some(&format!("sha256={sig}"))),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn other_events_are_ignored() {
        assert_eq!(parse_github_issue_event("ping", b"{}"), Ok(None));
        assert_eq!(parse_gitea_issue_event("push", b"not json"), Ok(None));
        let err = parse_github_issue_event("issues", b"{").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid GitHub issues event payload"),
            "{err}"
        );
    }
}
