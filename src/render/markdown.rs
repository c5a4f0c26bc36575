//! Markdown that survives any value: escaping for inline text, fenced blocks, safe
//! links, shell quoting for commands, clipping and time formatting.
//!
//! Values in work orders come from alerts, Argo CD and the cluster: a `|` breaks a
//! table, a backtick a code span, a newline a list item, an `<img>` becomes HTML. Each
//! helper here takes such a value and returns Markdown that shows it as text.

use jiff::Timestamp;

/// Inline text: whitespace runs (newlines included) collapsed to one space, and what
/// would start Markdown or HTML escaped with a backslash — backticks, `*`, `|`, `<`,
/// `~` and `\` always; `_` at word boundaries (GitHub ignores it inside words, so pod
/// names stay readable); brackets when they could form a link; `&` before an entity
/// name; and a leading character that would start a heading, list or quote.
pub fn escape(s: &str) -> String {
    // Whitespace runs become one space; a single leading or trailing space is kept,
    // since `", "` between words is text too.
    let mut flat: Vec<char> = Vec::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            flat.push(' ');
        }
        space = false;
        flat.push(c);
    }
    if space {
        flat.push(' ');
    }
    let text: String = flat.iter().collect();
    let links = text.contains("](") || text.contains("][") || text.contains("]:");
    let first = flat.iter().position(|c| *c != ' ');
    // `1.` or `1)` at the start would begin an ordered list: escape the `.`/`)`.
    let list_mark = first.and_then(|f| {
        let digits = flat[f..].iter().take_while(|c| c.is_ascii_digit()).count();
        (digits > 0 && matches!(flat.get(f + digits), Some('.' | ')'))).then_some(f + digits)
    });
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in flat.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| flat.get(j));
        let next = flat.get(i + 1);
        let escape = match c {
            '\\' | '`' | '*' | '|' | '<' | '~' => true,
            '_' => !(word(prev) && word(next)),
            '[' | ']' => links,
            '&' => next.is_some_and(|n| n.is_ascii_alphanumeric() || *n == '#'),
            '#' | '-' | '+' | '=' | '>' => Some(i) == first,
            _ => Some(i) == list_mark,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fenced code block (no trailing newline): the fence is longer than any run of
/// backticks in the text, so nothing inside can close it.
pub fn fence(s: &str, lang: &str) -> String {
    let text = s.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim_end();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let lang: String = lang
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
        .collect();
    format!("{fence}{lang}\n{text}\n{fence}")
}

/// Blank-line runs collapsed to one blank line and leading blank lines dropped,
/// outside fenced code blocks: templates can be written for readability without
/// counting newlines around optional sections.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<String> = None;
    let mut blank = true;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let ticks: String = trimmed.chars().take_while(|c| *c == '`').collect();
        if fence.is_none() && line.trim().is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        match &fence {
            Some(open) if ticks.len() >= open.len() && trimmed.trim_end() == ticks => fence = None,
            None if ticks.len() >= 3 => fence = Some(ticks),
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `[text](url)` for an http(s) URL; anything else (a `javascript:` URL, text that is
/// not a URL at all) is shown as code, never as a link.
pub fn link(text: &str, url: &str) -> String {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let web = (lower.starts_with("https://") || lower.starts_with("http://"))
        && url.len() > "http://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    let label = if text.trim().is_empty() {
        escape(url)
    } else {
        escape(text)
    };
    if !web {
        return format!("{label} ({})", super::code(url));
    }
    // Characters that end or confuse a link destination, percent-encoded.
    let mut dest = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' => dest.push_str("%28"),
            ')' => dest.push_str("%29"),
            '<' => dest.push_str("%3C"),
            '>' => dest.push_str("%3E"),
            '`' => dest.push_str("%60"),
            '"' => dest.push_str("%22"),
            '|' => dest.push_str("%7C"),
            c => dest.push(c),
        }
    }
    format!("[{label}]({dest})")
}

/// A word the shell passes through unchanged: left as is when it only holds safe
/// characters, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@')
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// At most `max` characters, ending in `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some(_) if max == 0 => String::new(),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{}…", keep.trim_end())
        }
        None => s.to_string(),
    }
}

/// `2026-11-23 15:58 UTC` for an RFC 3339 timestamp; other text unchanged.
pub fn when(s: &str) -> String {
    match s.parse::<Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_text_and_defuses_markup() {
        assert_eq!(escape("store-front"), "store-front");
        assert_eq!(escape("a | b\nc"), r"a \| b c");
        assert_eq!(
            escape("`x` *y* [z](u) <img>"),
            r"\`x\` \*y\* \[z\](u) \<img>"
        );
        assert_eq!(
            escape("[REDACTED] pod_x _y_ a & b &amp;"),
            r"[REDACTED] pod_x \_y\_ a & b \&amp;"
        );
        assert_eq!(escape(", "), ", ");
        assert_eq!(escape("1. first"), r"1\. first");
        assert_eq!(escape("> quote >"), r"\> quote >");
        assert_eq!(escape("# not a heading"), r"\# not a heading");
        assert_eq!(escape("- not a list"), r"\- not a list");
        assert_eq!(escape("a-b #c"), "a-b #c");
    }

    #[test]
    fn fences_outgrow_the_backticks_inside() {
        assert_eq!(fence("a\r\nb", ""), "```\na\nb\n```");
        assert_eq!(fence("x ``` y", "sh"), "````sh\nx ``` y\n````");
        assert_eq!(fence("x", "sh; rm"), "```shrm\nx\n```");
    }

    #[test]
    fn links_only_for_web_urls() {
        assert_eq!(
            link("runbook", "https://x.example/a (b)"),
            "runbook (`https://x.example/a (b)`)"
        );
        assert_eq!(
            link("runbook", "https://x.example/a(b)"),
            "[runbook](https://x.example/a%28b%29)"
        );
        assert_eq!(
            link("x", "javascript:alert(1)"),
            "x (`javascript:alert(1)`)"
        );
        assert_eq!(link("", "http://h/p"), "[http://h/p](http://h/p)");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("store-front-7d9f-abc"), "store-front-7d9f-abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn tidy_collapses_blank_lines_outside_fences() {
        assert_eq!(tidy("\n\na\n\n\n\nb\n"), "a\n\nb\n");
        assert_eq!(
            tidy("```\nx\n\n\ny\n```\n\n\nz"),
            "```\nx\n\n\ny\n```\n\nz\n"
        );
    }

    #[test]
    fn clip_and_when() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(when("2026-11-23T15:58:02Z"), "2026-11-23 15:58 UTC");
        assert_eq!(when("soon"), "soon");
    }
}
