//! Repair of JSON broken by text templating.
//!
//! Argo CD bodies are Go templates; the widely copied `"message": "{{...message}}"`
//! interpolates raw text, so a sync error holding quotes, newlines, tabs or backslashes
//! yields invalid JSON. This module rewrites such text into what the template author
//! meant: unescaped quotes and control characters inside strings are escaped, stray
//! backslashes doubled, Go's `<no value>` outside strings becomes `null`, and trailing
//! commas (from `range` loops) are dropped.
//!
//! Deciding whether a `"` inside a string ends it is a guess from what follows: it ends
//! a key if `:` follows; a value in an object if `}`, the end, or `,` and then a quoted
//! key and `:` follow; a value in an array if `,` or `]` follows. The guess can be wrong,
//! so the caller accepts a repair only if the result parses into an expected shape.

/// Longest object key the lookahead considers (template keys are short).
const MAX_KEY: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    /// `expect_key`: the next string is a key.
    Object {
        expect_key: bool,
    },
    Array,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    ObjectValue,
    ArrayValue,
    TopLevel,
}

/// The repaired text, or `None` when nothing needed changing (so repair cannot help).
pub fn repair(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 64);
    let mut stack: Vec<Container> = Vec::new();
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'{' => {
                stack.push(Container::Object { expect_key: true });
                out.push(b);
            }
            b'[' => {
                stack.push(Container::Array);
                out.push(b);
            }
            b'}' | b']' => {
                changed |= drop_trailing_comma(&mut out);
                stack.pop();
                out.push(b);
            }
            b',' => {
                if let Some(Container::Object { expect_key }) = stack.last_mut() {
                    *expect_key = true;
                }
                out.push(b);
            }
            b':' => {
                if let Some(Container::Object { expect_key }) = stack.last_mut() {
                    *expect_key = false;
                }
                out.push(b);
            }
            b'<' if bytes[i..].starts_with(b"<no value>") => {
                out.extend_from_slice(b"null");
                changed = true;
                i += "<no value>".len();
                continue;
            }
            b'"' => {
                let role = match stack.last() {
                    Some(Container::Object { expect_key: true }) => Role::Key,
                    Some(Container::Object { expect_key: false }) => Role::ObjectValue,
                    Some(Container::Array) => Role::ArrayValue,
                    None => Role::TopLevel,
                };
                let (end, string_changed) = copy_string(bytes, i, role, &stack, &mut out);
                changed |= string_changed;
                i = end;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    // Only ASCII bytes were inserted or removed and multi-byte sequences copied whole.
    changed.then(|| String::from_utf8(out).ok()).flatten()
}

/// Copies the string starting at `bytes[start] == '"'`, returning the index after its
/// closing quote and whether anything was rewritten.
fn copy_string(
    bytes: &[u8],
    start: usize,
    role: Role,
    stack: &[Container],
    out: &mut Vec<u8>,
) -> (usize, bool) {
    let mut changed = false;
    out.push(b'"');
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => match bytes.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    out.extend_from_slice(&bytes[i..i + 2]);
                    i += 2;
                    continue;
                }
                Some(b'u')
                    if bytes.len() >= i + 6
                        && bytes[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) =>
                {
                    out.extend_from_slice(&bytes[i..i + 6]);
                    i += 6;
                    continue;
                }
                _ => {
                    // A literal backslash (regex, Windows path) the template did not escape.
                    out.extend_from_slice(b"\\\\");
                    changed = true;
                }
            },
            b'"' => {
                if ends_string(bytes, i + 1, role, stack) {
                    out.push(b'"');
                    return (i + 1, changed);
                }
                out.extend_from_slice(b"\\\"");
                changed = true;
            }
            0x00..=0x1f => {
                match b {
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0x08 => out.extend_from_slice(b"\\b"),
                    0x0c => out.extend_from_slice(b"\\f"),
                    _ => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                }
                changed = true;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    // Unterminated: leave it to the parser to report.
    (i, changed)
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Whether a quote at `after - 1` plausibly closes a string in `role`.
fn ends_string(bytes: &[u8], after: usize, role: Role, stack: &[Container]) -> bool {
    let i = skip_ws(bytes, after);
    let next = bytes.get(i).copied();
    match role {
        Role::Key => next == Some(b':'),
        Role::TopLevel => next.is_none(),
        Role::ArrayValue => match next {
            Some(b']') => closes_container(bytes, i + 1, stack.len().saturating_sub(1)),
            Some(b',') | None => true,
            _ => false,
        },
        Role::ObjectValue => match next {
            None => true,
            Some(b'}') => closes_container(bytes, i + 1, stack.len().saturating_sub(1)),
            Some(b',') => {
                let j = skip_ws(bytes, i + 1);
                match bytes.get(j) {
                    Some(b'}') => true,
                    Some(b'"') => is_key_then_colon(bytes, j),
                    _ => false,
                }
            }
            _ => false,
        },
    }
}

/// After a container closes at depth `remaining`, what follows must fit: the end of
/// the text at depth 0, else `,`, `}` or `]`.
fn closes_container(bytes: &[u8], after: usize, remaining: usize) -> bool {
    let i = skip_ws(bytes, after);
    match bytes.get(i) {
        None => remaining == 0,
        Some(b',' | b'}' | b']') => remaining > 0,
        _ => false,
    }
}

/// `bytes[start] == '"'`: a short key without quotes or newlines, then `:`.
fn is_key_then_colon(bytes: &[u8], start: usize) -> bool {
    let body = &bytes[start + 1..bytes.len().min(start + 1 + MAX_KEY)];
    match body.iter().position(|&b| b == b'"' || b == b'\n') {
        Some(n) if body[n] == b'"' => bytes.get(skip_ws(bytes, start + 1 + n + 1)) == Some(&b':'),
        _ => false,
    }
}

/// Removes a `,` that is the last non-space output before a closing bracket.
fn drop_trailing_comma(out: &mut Vec<u8>) -> bool {
    let end = out
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    match end {
        Some(p) if out[p] == b',' => {
            out.remove(p);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(s: &str) -> serde_json::Value {
        let r = repair(s).expect("something to repair");
        serde_json::from_str(&r).unwrap_or_else(|e| panic!("{e}: {r}"))
    }

    #[test]
    fn escapes_quotes_newlines_tabs_and_backslashes_in_values() {
        let body = "{\n  \"app_name\": \"web\",\n  \"message\": \"one or more objects failed to apply, reason: Deployment.apps \"web\" is invalid:\n\tspec.replicas: \"-1\", must be >= 0 (regex \\d+)\",\n  \"revision\": \"abc\"\n}";
        let v = fixed(body);
        assert_eq!(
            v["message"],
            "one or more objects failed to apply, reason: Deployment.apps \"web\" is invalid:\n\tspec.replicas: \"-1\", must be >= 0 (regex \\d+)"
        );
        assert_eq!(v["revision"], "abc");
        assert_eq!(v["app_name"], "web");
    }

    #[test]
    fn quote_comma_quote_inside_a_message_is_not_an_end() {
        let v = fixed(r#"{"message": "error: "a", "b" failed", "app_name": "x"}"#);
        assert_eq!(v["message"], r#"error: "a", "b" failed"#);
        assert_eq!(v["app_name"], "x");
    }

    #[test]
    fn message_ending_in_a_quote_and_nested_objects() {
        let v = fixed(
            "{\"client_payload\": {\"message\": \"failed: \"web\"\", \"resources\": [\"a\", \"b\",]}}",
        );
        assert_eq!(v["client_payload"]["message"], "failed: \"web\"");
        assert_eq!(v["client_payload"]["resources"][1], "b");
    }

    #[test]
    fn bare_no_value_becomes_null_and_quoted_stays() {
        let v = fixed(r#"{"a": <no value>, "b": "<no value>", "c": [<no value>]}"#);
        assert!(v["a"].is_null());
        assert_eq!(v["b"], "<no value>");
        assert!(v["c"][0].is_null());
    }

    #[test]
    fn valid_json_needs_no_repair_and_multibyte_text_survives() {
        assert_eq!(repair(r#"{"a": "b \"c\" é"}"#), None);
        let v = fixed("{\"m\": \"é \"ü\" — ok\"}");
        assert_eq!(v["m"], "é \"ü\" — ok");
    }
}
