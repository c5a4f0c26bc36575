//! Turning forge HTTP failures into [`ForgeError`]s, and staying quiet while limited.
//!
//! GitHub's documented rules for 403/429 (Gitea behind a rate-limiting proxy answers
//! the same way): wait `retry-after` seconds if present; else, if
//! `x-ratelimit-remaining` is 0, wait until `x-ratelimit-reset`; else wait at least one
//! minute, longer each time it happens again. While limited, a forge sends nothing:
//! GitHub may ban integrations that keep calling through a limit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use super::ForgeError;

/// The wait for a rate limit that names no time, doubled per consecutive hit.
const UNNAMED_LIMIT_WAIT: Duration = Duration::from_secs(60);
const UNNAMED_LIMIT_WAIT_MAX: Duration = Duration::from_secs(15 * 60);

/// Per-forge rate-limit memory.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    blocked_until: Option<Instant>,
    /// Rate-limit answers in a row (reset by any success), for the backoff.
    consecutive: u32,
}

impl Throttle {
    /// Refuses without a request while an earlier answer said to wait.
    pub(crate) fn check(&self, forge: &str) -> Result<(), ForgeError> {
        let state = self.lock();
        match state.blocked_until {
            Some(until) if until > Instant::now() => Err(ForgeError::RateLimited {
                reason: format!("{forge} rate limit still in effect; not calling until it ends"),
                retry_after: until - Instant::now(),
            }),
            _ => Ok(()),
        }
    }

    /// A successful answer: the backoff restarts, and an exhausted quota
    /// (`x-ratelimit-remaining: 0`) blocks until its reset without another failure.
    pub(crate) fn on_success(&self, headers: &HeaderMap) {
        let mut state = self.lock();
        state.consecutive = 0;
        if header_u64(headers, "x-ratelimit-remaining") == Some(0)
            && let Some(wait) = until_reset(headers)
        {
            state.blocked_until = Some(Instant::now() + wait);
        }
    }

    /// Classifies a failed answer; a rate limit also blocks further calls for its wait.
    pub(crate) fn on_failure(
        &self,
        forge: &str,
        status: StatusCode,
        headers: &HeaderMap,
        message: &str,
    ) -> ForgeError {
        let mut state = self.lock();
        let error = classify(forge, status, headers, message, state.consecutive);
        if let ForgeError::RateLimited { retry_after, .. } = &error {
            state.consecutive = state.consecutive.saturating_add(1);
            state.blocked_until = Some(Instant::now() + *retry_after);
        }
        error
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: plain fields.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Pure classification of one failed answer. `consecutive` is how many rate-limit
/// answers came just before this one.
pub(crate) fn classify(
    forge: &str,
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    consecutive: u32,
) -> ForgeError {
    let reason = format!("{forge} answered {status}: {message}");
    let code = status.as_u16();
    if code == 403 || code == 429 {
        if let Some(secs) = header_u64(headers, "retry-after") {
            return ForgeError::RateLimited {
                reason,
                retry_after: Duration::from_secs(secs.max(1)),
            };
        }
        if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
            return ForgeError::RateLimited {
                reason,
                retry_after: until_reset(headers).unwrap_or(UNNAMED_LIMIT_WAIT),
            };
        }
        // A 403 is a rate limit only when it says so; otherwise it is a permission
        // problem ("Resource not accessible by integration") that waiting won't fix.
        if code == 429 || message.to_ascii_lowercase().contains("rate limit") {
            let factor = 1u32 << consecutive.min(4);
            return ForgeError::RateLimited {
                reason,
                retry_after: (UNNAMED_LIMIT_WAIT * factor).min(UNNAMED_LIMIT_WAIT_MAX),
            };
        }
        return ForgeError::Permanent { reason };
    }
    if code == 408 || status.is_server_error() {
        return ForgeError::Transient {
            reason,
            retry_after: header_u64(headers, "retry-after").map(Duration::from_secs),
        };
    }
    ForgeError::Permanent { reason }
}

pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Time until `x-ratelimit-reset` (UTC epoch seconds), at least one second.
fn until_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset = i64::try_from(header_u64(headers, "x-ratelimit-reset")?).ok()?;
    let now = jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(
        u64::try_from(reset - now).unwrap_or(0).max(1),
    ))
}

/// A readable message from an error body: GitHub's and Gitea's `{"message", "errors"}`
/// JSON, else the start of the text, else the status reason.
pub(crate) fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body)
        && let Some(message) = parsed.message.filter(|m| !m.is_empty())
    {
        let details: Vec<String> = parsed
            .errors
            .iter()
            .filter_map(|e| match e {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => {
                    let text = |k: &str| o.get(k).and_then(|v| v.as_str());
                    text("message").map(str::to_string).or_else(|| {
                        let field = [text("resource"), text("field")]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(".");
                        text("code").map(|c| format!("{field} {c}").trim().to_string())
                    })
                }
                _ => None,
            })
            .collect();
        return if details.is_empty() {
            message
        } else {
            format!("{message}: {}", details.join("; "))
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text.chars().take(300).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn wait(e: &ForgeError) -> Duration {
        match e {
            ForgeError::RateLimited { retry_after, .. } => *retry_after,
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    #[test]
    fn secondary_limit_with_retry_after() {
        let h = headers(&[("retry-after", "42".into())]);
        for code in [403, 429] {
            let e = classify(
                "GitHub",
                StatusCode::from_u16(code).unwrap(),
                &h,
                "You have exceeded a secondary rate limit",
                0,
            );
            assert_eq!(wait(&e), Duration::from_secs(42));
        }
    }

    #[test]
    fn primary_limit_waits_until_reset() {
        let reset = jiff::Timestamp::now().as_second() + 120;
        let h = headers(&[
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", reset.to_string()),
        ]);
        let e = classify(
            "GitHub",
            StatusCode::FORBIDDEN,
            &h,
            "API rate limit exceeded",
            0,
        );
        let w = wait(&e);
        assert!(
            w > Duration::from_secs(110) && w <= Duration::from_secs(120),
            "{w:?}"
        );
        // A reset in the past still waits a moment.
        let h = headers(&[
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", "1".into()),
        ]);
        assert_eq!(
            wait(&classify("GitHub", StatusCode::FORBIDDEN, &h, "x", 0)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn unnamed_limit_waits_a_minute_then_backs_off() {
        let h = HeaderMap::new();
        let msg = "You have exceeded a secondary rate limit. Please wait a few minutes";
        let waits: Vec<u64> = (0..7)
            .map(|n| wait(&classify("GitHub", StatusCode::FORBIDDEN, &h, msg, n)).as_secs())
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(
            wait(&classify(
                "Gitea",
                StatusCode::TOO_MANY_REQUESTS,
                &h,
                "slow down",
                0
            )),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn permissions_and_validation_are_permanent_server_errors_transient() {
        let h = HeaderMap::new();
        let e = classify(
            "GitHub",
            StatusCode::FORBIDDEN,
            &h,
            "Resource not accessible by integration",
            0,
        );
        assert!(e.is_permanent(), "{e:?}");
        for code in [401, 404, 410, 422] {
            let e = classify("GitHub", StatusCode::from_u16(code).unwrap(), &h, "m", 0);
            assert!(e.is_permanent(), "{code}: {e:?}");
        }
        for code in [408, 500, 502, 503, 504] {
            let e = classify("GitHub", StatusCode::from_u16(code).unwrap(), &h, "m", 0);
            assert!(matches!(e, ForgeError::Transient { .. }), "{code}: {e:?}");
        }
        let h = headers(&[("retry-after", "7".into())]);
        assert_eq!(
            classify("Gitea", StatusCode::SERVICE_UNAVAILABLE, &h, "m", 0),
            ForgeError::Transient {
                reason: "Gitea answered 503 Service Unavailable: m".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn throttle_blocks_while_limited_and_resets_on_success() {
        let t = Throttle::default();
        assert!(t.check("GitHub").is_ok());
        let h = headers(&[("retry-after", "30".into())]);
        let e = t.on_failure("GitHub", StatusCode::FORBIDDEN, &h, "secondary rate limit");
        assert_eq!(wait(&e), Duration::from_secs(30));
        let blocked = t.check("GitHub").unwrap_err();
        assert!(wait(&blocked) > Duration::from_secs(28));

        // An exhausted quota on a success blocks too.
        let t = Throttle::default();
        let reset = jiff::Timestamp::now().as_second() + 60;
        t.on_success(&headers(&[
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", reset.to_string()),
        ]));
        assert!(t.check("GitHub").is_err());
    }

    #[test]
    fn error_messages_from_github_and_gitea_bodies() {
        let gh = br#"{"message":"Validation Failed","errors":[{"resource":"Issue","code":"custom","field":"title","message":"title is too long (maximum is 256 characters)"}],"documentation_url":"https://docs.github.com/rest/issues/issues#create-an-issue","status":"422"}"#;
        assert_eq!(
            error_message(StatusCode::UNPROCESSABLE_ENTITY, gh),
            "Validation Failed: title is too long (maximum is 256 characters)"
        );
        let exists = br#"{"message":"Validation Failed","errors":[{"resource":"Label","code":"already_exists","field":"name"}]}"#;
        assert_eq!(
            error_message(StatusCode::UNPROCESSABLE_ENTITY, exists),
            "Validation Failed: Label.name already_exists"
        );
        let gitea =
            br#"{"message":"token is required","url":"https://gitea.example.com/api/swagger"}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, gitea),
            "token is required"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
    }
}
