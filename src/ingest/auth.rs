//! Sender verification per source: bearer tokens (several at once, for rotation), HTTP
//! basic auth, and HMAC-SHA256 of the raw body. Any configured method that verifies
//! passes. Secrets are compared in constant time: tokens and passwords through their
//! SHA-256 digests (so neither content nor length leaks through timing), signatures
//! with `hmac::Mac::verify_slice`.
//!
//! A refusal never says which part was wrong; the sender identity recorded for an
//! accepted delivery never contains a secret.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::SourceConfig;

/// Who sent a verified delivery: journaled and used as the rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// The n-th accepted bearer token (1-based: `token` first, then `tokens`).
    Token(usize),
    Basic(String),
    Hmac,
    /// No credentials, accepted because `allow_unauthenticated` is set.
    Anonymous(Option<IpAddr>),
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Token(n) => write!(f, "token:{n}"),
            Sender::Basic(user) => write!(f, "basic:{user}"),
            Sender::Hmac => f.write_str("hmac"),
            Sender::Anonymous(Some(ip)) => write!(f, "anonymous@{ip}"),
            Sender::Anonymous(None) => f.write_str("anonymous"),
        }
    }
}

type Digest32 = [u8; 32];

fn digest(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

struct HmacCheck {
    key: Vec<u8>,
    header: HeaderName,
    prefix: String,
}

/// The verification settings of one source.
pub struct Verifier {
    tokens: Vec<Digest32>,
    basic: Option<(String, Digest32, Digest32)>,
    hmac: Option<HmacCheck>,
    allow_unauthenticated: bool,
    challenges: Vec<HeaderValue>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("tokens", &self.tokens.len())
            .field("basic", &self.basic.is_some())
            .field("hmac", &self.hmac.is_some())
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish()
    }
}

/// What the headers alone say.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    Verified(Sender),
    /// A signature header is present: verify it against the body.
    NeedsBody,
    Refused,
}

impl Verifier {
    /// Built from a validated config section (secret files already read).
    pub fn new(config: &SourceConfig) -> Self {
        let tokens: Vec<Digest32> = config
            .bearer_tokens()
            .map(|t| digest(t.expose().as_bytes()))
            .collect();
        let basic = match (&config.basic_username, &config.basic_password) {
            (Some(user), Some(pass)) => Some((
                user.clone(),
                digest(user.as_bytes()),
                digest(pass.expose().as_bytes()),
            )),
            _ => None,
        };
        let hmac = config.hmac_secret.as_ref().and_then(|secret| {
            Some(HmacCheck {
                key: secret.expose().as_bytes().to_vec(),
                // Validated by the config loader; an invalid name disables HMAC.
                header: HeaderName::from_bytes(config.hmac_header.as_bytes()).ok()?,
                prefix: config.hmac_prefix.clone(),
            })
        });
        let mut challenges = Vec::new();
        if !tokens.is_empty() || (basic.is_none() && hmac.is_none()) {
            challenges.push(HeaderValue::from_static("Bearer realm=\"triage\""));
        }
        if basic.is_some() {
            challenges.push(HeaderValue::from_static(
                "Basic realm=\"triage\", charset=\"UTF-8\"",
            ));
        }
        if let Some(h) = &hmac
            && let Ok(v) = HeaderValue::from_str(&format!(
                "HMAC-SHA256 realm=\"triage\", header=\"{}\"",
                h.header
            ))
        {
            challenges.push(v);
        }
        Verifier {
            tokens,
            basic,
            hmac,
            allow_unauthenticated: config.allow_unauthenticated,
            challenges,
        }
    }

    /// `WWW-Authenticate` values for a 401: one per configured scheme.
    pub fn challenges(&self) -> &[HeaderValue] {
        &self.challenges
    }

    /// Bearer and basic credentials, and the anonymous case, from the headers alone.
    pub fn check_headers(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> HeaderCheck {
        let authorization = headers.get(AUTHORIZATION);
        if let Some(value) = authorization
            && let Some(sender) = self.check_authorization(value.as_bytes())
        {
            return HeaderCheck::Verified(sender);
        }
        if let Some(h) = &self.hmac
            && headers.contains_key(&h.header)
        {
            return HeaderCheck::NeedsBody;
        }
        if self.allow_unauthenticated && authorization.is_none() {
            return HeaderCheck::Verified(Sender::Anonymous(peer));
        }
        HeaderCheck::Refused
    }

    /// The HMAC-SHA256 signature header against the raw body.
    pub fn check_body(&self, headers: &HeaderMap, body: &[u8]) -> Option<Sender> {
        let h = self.hmac.as_ref()?;
        let value = headers.get(&h.header)?.to_str().ok()?.trim();
        let hex_sig = match value.get(..h.prefix.len()) {
            Some(p) if !h.prefix.is_empty() && p.eq_ignore_ascii_case(&h.prefix) => {
                &value[h.prefix.len()..]
            }
            _ => value,
        };
        let signature = hex::decode(hex_sig).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&h.key).ok()?;
        mac.update(body);
        mac.verify_slice(&signature).ok().map(|()| Sender::Hmac)
    }

    fn check_authorization(&self, value: &[u8]) -> Option<Sender> {
        let (scheme, rest) = split_scheme(value)?;
        if scheme.eq_ignore_ascii_case(b"bearer") {
            let presented = digest(rest);
            // Compare with every token, no early exit.
            let mut found = 0usize;
            for (i, t) in self.tokens.iter().enumerate() {
                let hit: bool = t.ct_eq(&presented).into();
                found |= usize::from(hit) * (i + 1);
            }
            (found != 0).then_some(Sender::Token(found))
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            let (user, user_digest, pass_digest) = self.basic.as_ref()?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let colon = decoded.iter().position(|&b| b == b':')?;
            let user_ok = user_digest.ct_eq(&digest(&decoded[..colon]));
            let pass_ok = pass_digest.ct_eq(&digest(&decoded[colon + 1..]));
            bool::from(user_ok & pass_ok).then(|| Sender::Basic(user.clone()))
        } else {
            None
        }
    }
}

/// `Scheme credentials` → (scheme, credentials), surrounding spaces removed.
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = value.trim_ascii();
    let space = value.iter().position(|&b| b == b' ')?;
    let rest = value[space..].trim_ascii();
    (!rest.is_empty()).then_some((&value[..space], rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config() -> SourceConfig {
        SourceConfig {
            token: Some(Secret::new("old-token")),
            tokens: vec![Secret::new("new-token")],
            basic_username: Some("am".into()),
            basic_password: Some(Secret::new("pw")),
            hmac_secret: Some(Secret::new("key")),
            ..SourceConfig::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_rotation_basic_and_refusals() {
        let v = Verifier::new(&config());
        let check = |pairs: &[(&str, &str)]| v.check_headers(&headers(pairs), None);
        assert_eq!(
            check(&[("authorization", "Bearer old-token")]),
            HeaderCheck::Verified(Sender::Token(1))
        );
        assert_eq!(
            check(&[("authorization", "bearer  new-token ")]),
            HeaderCheck::Verified(Sender::Token(2))
        );
        assert_eq!(
            check(&[("authorization", "Bearer nope")]),
            HeaderCheck::Refused
        );
        assert_eq!(
            check(&[("authorization", "Bearer old-token2")]),
            HeaderCheck::Refused
        );
        assert_eq!(check(&[]), HeaderCheck::Refused);
        let basic = base64::engine::general_purpose::STANDARD.encode("am:pw");
        assert_eq!(
            check(&[("authorization", &format!("Basic {basic}"))]),
            HeaderCheck::Verified(Sender::Basic("am".into()))
        );
        let wrong = base64::engine::general_purpose::STANDARD.encode("am:pw2");
        assert_eq!(
            check(&[("authorization", &format!("Basic {wrong}"))]),
            HeaderCheck::Refused
        );
        assert_eq!(Sender::Token(2).to_string(), "token:2");
        assert_eq!(v.challenges().len(), 3);
    }

    #[test]
    fn hmac_with_and_without_prefix() {
        let v = Verifier::new(&config());
        let body = b"{\"a\":1}";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        for value in [
            format!("sha256={sig}"),
            sig.clone(),
            format!("SHA256={sig}"),
        ] {
            let h = headers(&[("x-hub-signature-256", &value)]);
            assert_eq!(v.check_headers(&h, None), HeaderCheck::NeedsBody);
            assert_eq!(v.check_body(&h, body), Some(Sender::Hmac), "{value}");
            assert_eq!(v.check_body(&h, b"{\"a\":2}"), None);
        }
        let h = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert_eq!(v.check_body(&h, body), None);
    }

    #[test]
    fn anonymous_only_when_allowed_and_no_credentials_presented() {
        let open = SourceConfig {
            allow_unauthenticated: true,
            ..config()
        };
        let v = Verifier::new(&open);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        match v.check_headers(&headers(&[]), Some(ip)) {
            HeaderCheck::Verified(s) => assert_eq!(s.to_string(), "anonymous@10.0.0.7"),
            other => panic!("{other:?}"),
        }
        // Wrong credentials are refused even when anonymous deliveries are allowed.
        assert_eq!(
            v.check_headers(&headers(&[("authorization", "Bearer bad")]), Some(ip)),
            HeaderCheck::Refused
        );
        // Nothing configured, nothing allowed: refused, with a Bearer challenge.
        let closed = Verifier::new(&SourceConfig::default());
        assert_eq!(
            closed.check_headers(&headers(&[]), None),
            HeaderCheck::Refused
        );
        assert_eq!(closed.challenges().len(), 1);
    }
}
