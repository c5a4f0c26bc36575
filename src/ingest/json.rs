//! Decoding webhook bodies: the checks every source shares, with 400 messages that say
//! exactly what was wrong and where.

use serde::de::DeserializeOwned;

/// Why a body was refused with 400; the text is the response's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPayload(pub String);

impl BadPayload {
    pub fn new(message: impl Into<String>) -> Self {
        BadPayload(message.into())
    }
}

/// serde_json's nesting limit (it refuses the 128th level); deeper bodies are refused.
pub const MAX_DEPTH: usize = 127;

/// The body as text: refuses an empty body and invalid UTF-8 (naming the byte offset).
pub fn text(body: &[u8]) -> Result<&str, BadPayload> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BadPayload::new(
            "empty body: expected a JSON object (is the sender's body template empty?)",
        ));
    }
    std::str::from_utf8(body).map_err(|e| {
        BadPayload(format!(
            "body is not valid UTF-8: invalid byte sequence at byte offset {}",
            e.valid_up_to()
        ))
    })
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`], wherever it is — also inside fields
/// a typed parser would skip — with the line and column of the first bracket too many.
/// One pass over the bytes, string contents skipped.
pub fn check_depth(text: &str) -> Result<(), BadPayload> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    // Jump between structural bytes; string contents are skipped whole.
    while let Some(off) = memchr::memchr3(b'"', b'[', b'{', &bytes[i..]) {
        let at = i + off;
        // Closing brackets between `i` and `at` lower the depth first.
        depth = depth.saturating_sub(count_closers(&bytes[i..at]));
        match bytes[at] {
            b'"' => {
                i = skip_string(bytes, at + 1);
                continue;
            }
            _ => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let before = &bytes[..at];
                    let line = memchr::memchr_iter(b'\n', before).count() + 1;
                    let column = at - memchr::memrchr(b'\n', before).map_or(0, |p| p + 1) + 1;
                    return Err(BadPayload(format!(
                        "JSON nesting is deeper than {MAX_DEPTH} levels (at line {line} column {column}); a webhook body never needs that"
                    )));
                }
            }
        }
        i = at + 1;
    }
    Ok(())
}

fn count_closers(bytes: &[u8]) -> usize {
    memchr::memchr2_iter(b']', b'}', bytes).count()
}

/// The index after the closing quote of a string whose contents start at `i`.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while let Some(off) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
        let at = i + off;
        if bytes[at] == b'"' {
            return at + 1;
        }
        i = at + 2;
        if i >= bytes.len() {
            break;
        }
    }
    bytes.len()
}

/// A 400 message for a JSON error: syntax errors and nesting with line and column,
/// shape errors with the path to the offending field.
pub fn describe(err: &serde_json::Error, path: Option<&str>) -> BadPayload {
    use serde_json::error::Category;
    let at = format!("line {} column {}", err.line(), err.column());
    let msg = match err.classify() {
        Category::Syntax if err.to_string().starts_with("recursion limit exceeded") => format!(
            "JSON nesting is deeper than {MAX_DEPTH} levels (at {at}); a webhook body never needs that"
        ),
        Category::Syntax | Category::Eof => format!("body is not valid JSON: {err}"),
        Category::Data => match path {
            Some(p) if !p.is_empty() && p != "." => {
                format!("unexpected JSON shape at {p}: {}", strip_position(err))
            }
            _ => format!("unexpected JSON shape: {}", strip_position(err)),
        },
        Category::Io => format!("cannot read the body: {err}"),
    };
    BadPayload(msg)
}

/// serde_json appends " at line L column C" to data errors; the path says more.
fn strip_position(err: &serde_json::Error) -> String {
    let s = err.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The 400 for a failed `serde_json::from_str::<T>(text)`: shape errors are parsed
/// again with path tracking (only then, to keep the fast path fast), so the message
/// names the field.
pub fn explain<T: DeserializeOwned>(text: &str, err: &serde_json::Error) -> BadPayload {
    if err.classify() != serde_json::error::Category::Data {
        return describe(err, None);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => describe(e.inner(), Some(&e.path().to_string())),
        Ok(_) => describe(err, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_invalid_utf8_are_named() {
        assert!(text(b"").unwrap_err().0.contains("empty body"));
        assert!(text(b"  \n").unwrap_err().0.contains("empty body"));
        let e = text(b"{\"a\":\"\xff\"}").unwrap_err().0;
        assert!(e.contains("byte offset 6"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column_and_depth_is_bounded() {
        let err = serde_json::from_str::<serde_json::Value>("{\n  \"a\": x}").unwrap_err();
        let m = describe(&err, None).0;
        assert!(m.contains("line 2 column 8"), "{m}");
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        let err = serde_json::from_str::<serde_json::Value>(&deep).unwrap_err();
        let m = describe(&err, None).0;
        assert!(m.contains("deeper than 127"), "{m}");
        let m = check_depth(&format!("{{\"a\": \"[[[\\\"\",\n \"b\": {deep}}}"))
            .unwrap_err()
            .0;
        assert!(
            m.contains("deeper than 127 levels (at line 2 column 133)"),
            "{m}"
        );
        let ok = "[".repeat(127) + &"]".repeat(127);
        check_depth(&ok).unwrap();
        serde_json::from_str::<serde_json::Value>(&ok).unwrap();
    }

    #[test]
    fn shape_errors_name_the_path() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Inner>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
        }
        let body = r#"{"items":[{"n":1},{"n":"two"}]}"#;
        let err = serde_json::from_str::<Outer>(body).unwrap_err();
        let m = explain::<Outer>(body, &err).0;
        assert_eq!(
            m,
            "unexpected JSON shape at items[1].n: invalid type: string \"two\", expected u32"
        );
    }
}
