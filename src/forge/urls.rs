//! URLs the forge clients build and follow: percent-encoded path segments and query
//! values, and RFC 8288 `Link` headers as GitHub and Gitea use them for pagination.

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment or query value (`priority/P0` → `priority%2FP0`).
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The `rel="next"` target, if any. URLs are taken between `<` and `>` so a comma
/// inside one (an unencoded `labels=a,b`) does not split it.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|value| {
            let mut rest = value;
            while let Some(start) = rest.find('<') {
                let after = &rest[start + 1..];
                let end = after.find('>')?;
                let url = &after[..end];
                let params_end = after[end..].find('<').map_or(after.len(), |i| end + i);
                let params = &after[end + 1..params_end];
                let is_next = params.split(';').any(|p| {
                    let p = p.trim().trim_end_matches(',').trim();
                    p.strip_prefix("rel=").is_some_and(|rel| {
                        rel.trim_matches('"')
                            .split_whitespace()
                            .any(|r| r == "next")
                    })
                });
                if is_next {
                    return Some(url.to_string());
                }
                rest = &after[params_end..];
            }
            None
        })
}

/// `https://host/api/v3/repos/o/r/issues?page=2` → `/api/v3/repos/o/r/issues?page=2`:
/// pagination stays on the configured host whatever the header says.
pub(crate) fn path_and_query(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    Some(match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(http::header::LINK, v.parse().unwrap());
        m
    }

    #[test]
    fn finds_next_among_rels() {
        let github = r#"<https://api.github.com/repositories/1/issues?state=all&page=2>; rel="next", <https://api.github.com/repositories/1/issues?state=all&page=5>; rel="last""#;
        assert_eq!(
            next_link(&h(github)).as_deref(),
            Some("https://api.github.com/repositories/1/issues?state=all&page=2")
        );
        let last_page =
            r#"<https://x/issues?page=1>; rel="first", <https://x/issues?page=4>; rel="prev""#;
        assert_eq!(next_link(&h(last_page)), None);
        let commas = r#"<https://x/issues?labels=a,b&page=3>; rel="next""#;
        assert_eq!(
            next_link(&h(commas)).as_deref(),
            Some("https://x/issues?labels=a,b&page=3")
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn encodes_components() {
        assert_eq!(encode("triage/prod-a_b.c~d"), "triage%2Fprod-a_b.c~d");
        assert_eq!(encode("a,b c&d"), "a%2Cb%20c%26d");
    }

    #[test]
    fn keeps_path_and_query_only() {
        assert_eq!(
            path_and_query("https://ghe.example.com/api/v3/repos/o/r/issues?page=2").as_deref(),
            Some("/api/v3/repos/o/r/issues?page=2")
        );
    }
}
