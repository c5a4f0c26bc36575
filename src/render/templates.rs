//! The template renderer: minijinja templates for titles, bodies and comments.
//!
//! The built-in templates live in `templates/` and are embedded in the binary. A
//! directory (`[templates] dir`) overrides them file by file: a file there replaces the
//! built-in of the same name, a missing one falls back to it. Everything is parsed and
//! tried at start: a syntax error, an unknown variable or field, or a template that
//! fails on a work order with missing values is an error naming the file and line, so
//! a broken override stops Triage before it accepts anything rather than at the first
//! failure.
//!
//! Templates see plain data: `wo` (the work order, the same shape as the body's JSON
//! block), `subject`, `commands`, `omitted`, and in comments `event` — see
//! docs/templates.md. Markdown templates (`*.md.j2`) escape every printed value for
//! Markdown unless a filter made it safe (`code`, `fence`, `link`, `md`), so a `|` or a
//! backtick in an alert description cannot break the page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde::Serialize;

use super::{CommentEvent, Omitted, Renderer, commands, markdown, sample};
use crate::config::TemplatesConfig;
use crate::triage::workorder::WorkOrder;

pub const TITLE: &str = "title.txt.j2";
pub const BODY: &str = "body.md.j2";
pub const MACROS: &str = "macros.md.j2";

/// The built-in templates, by file name.
pub const BUILTIN: &[(&str, &str)] = &[
    (TITLE, include_str!("../../templates/title.txt.j2")),
    (BODY, include_str!("../../templates/body.md.j2")),
    (MACROS, include_str!("../../templates/macros.md.j2")),
    (
        "comment_repeat.md.j2",
        include_str!("../../templates/comment_repeat.md.j2"),
    ),
    (
        "comment_relapse.md.j2",
        include_str!("../../templates/comment_relapse.md.j2"),
    ),
    (
        "comment_route_change.md.j2",
        include_str!("../../templates/comment_route_change.md.j2"),
    ),
    (
        "comment_recovered.md.j2",
        include_str!("../../templates/comment_recovered.md.j2"),
    ),
    (
        "comment_reopened.md.j2",
        include_str!("../../templates/comment_reopened.md.j2"),
    ),
    (
        "comment_closed.md.j2",
        include_str!("../../templates/comment_closed.md.j2"),
    ),
];

/// The template that writes comments about `event`.
pub fn comment_template(event: &CommentEvent) -> String {
    format!("comment_{}.md.j2", event.name())
}

/// Variables every template gets; comments also get `event`.
const VARIABLES: &[&str] = &["wo", "subject", "commands", "omitted"];

/// Functions and tests templates may call besides the variables (minijinja's
/// built-ins, which `undeclared_variables` reports like variables).
const GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "self",
    "super",
];

/// The Markdown auto-escape mode of `*.md.j2` templates.
const MARKDOWN: &str = "markdown";

/// Where a template came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Builtin,
    File(PathBuf),
}

/// See the module docs. Cheap to share (`Arc<dyn Renderer>`); rendering is `&self`.
pub struct TemplateRenderer {
    env: Environment<'static>,
    origins: BTreeMap<&'static str, Origin>,
}

impl std::fmt::Debug for TemplateRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateRenderer")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

/// The template data besides the work order.
#[derive(Serialize)]
struct Data<'a> {
    wo: &'a WorkOrder,
    subject: String,
    commands: Vec<commands::Command>,
    omitted: &'a Omitted,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a CommentEvent>,
}

impl TemplateRenderer {
    /// The built-in templates only.
    pub fn builtin() -> TemplateRenderer {
        // The built-ins are checked by tests like any override; they always load.
        match Self::from_dir(None) {
            Ok(r) => r,
            Err(e) => unreachable!("built-in templates must load: {e:#}"),
        }
    }

    /// The built-ins overridden by `[templates] dir`, parsed and tried.
    pub fn from_config(config: &TemplatesConfig) -> anyhow::Result<TemplateRenderer> {
        Self::from_dir(config.dir.as_deref())
    }

    /// The built-ins overridden by the files in `dir` (file by file).
    pub fn from_dir(dir: Option<&Path>) -> anyhow::Result<TemplateRenderer> {
        let mut env = environment();
        let mut origins = BTreeMap::new();
        let overrides = match dir {
            Some(dir) => read_overrides(dir)?,
            None => BTreeMap::new(),
        };
        for (name, builtin) in BUILTIN {
            let (source, origin) = match overrides.get(*name) {
                Some((path, text)) => (text.clone(), Origin::File(path.clone())),
                None => (builtin.to_string(), Origin::Builtin),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| describe(&e, &origin, name))?;
            origins.insert(*name, origin);
        }
        let renderer = TemplateRenderer { env, origins };
        renderer.check()?;
        Ok(renderer)
    }

    /// Where each template came from: `builtin` or the override's path.
    pub fn sources(&self) -> BTreeMap<&'static str, String> {
        self.origins
            .iter()
            .map(|(name, origin)| {
                let from = match origin {
                    Origin::Builtin => "builtin".to_string(),
                    Origin::File(p) => p.display().to_string(),
                };
                (*name, from)
            })
            .collect()
    }

    fn render(
        &self,
        name: &str,
        wo: &WorkOrder,
        omitted: &Omitted,
        event: Option<&CommentEvent>,
    ) -> anyhow::Result<String> {
        let data = Data {
            wo,
            subject: subject(wo),
            commands: commands::troubleshooting(wo),
            omitted,
            event,
        };
        let template = self
            .env
            .get_template(name)
            .map_err(|e| self.describe(&e, name))?;
        let text = template
            .render(Value::from(Serde(&data)))
            .map_err(|e| self.describe(&e, name))?;
        Ok(if name.ends_with(".md.j2") {
            markdown::tidy(&text)
        } else {
            text
        })
    }

    fn describe(&self, e: &Error, name: &str) -> anyhow::Error {
        // An error inside an imported template (the macros) names that one.
        let at = e.name().unwrap_or(name);
        let origin = self
            .origins
            .iter()
            .find(|(n, _)| **n == at)
            .map_or(Origin::Builtin, |(_, o)| o.clone());
        describe(e, &origin, at)
    }

    /// Every template against the samples: names checked against the data, then
    /// rendered with every sample work order (and, for comments, every event of their
    /// kind), so a template that breaks on missing values fails now.
    fn check(&self) -> anyhow::Result<()> {
        let work_orders = sample::work_orders();
        let events = sample::events();
        let none = Omitted::default();
        let some = Omitted {
            pods: 3,
            events: 2,
            series: 1,
            sync_resources: 1,
        };
        for (name, _) in BUILTIN {
            let event_kind = name
                .strip_prefix("comment_")
                .and_then(|n| n.strip_suffix(".md.j2"));
            let samples: Vec<&CommentEvent> = match event_kind {
                Some(kind) => events.iter().filter(|e| e.name() == kind).collect(),
                None => Vec::new(),
            };
            self.check_names(name, event_kind.is_some(), &work_orders, &samples)?;
            if *name == MACROS {
                continue;
            }
            for wo in &work_orders {
                if samples.is_empty() {
                    self.render(name, wo, &none, None)?;
                    self.render(name, wo, &some, None)?;
                }
                for event in &samples {
                    self.render(name, wo, &none, Some(event))?;
                }
            }
        }
        Ok(())
    }

    /// The variables and fields a template names, against what the data holds.
    fn check_names(
        &self,
        name: &str,
        is_comment: bool,
        work_orders: &[WorkOrder],
        events: &[&CommentEvent],
    ) -> anyhow::Result<()> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| self.describe(&e, name))?;
        // The shape every sample shares: objects merged, nulls filled from the others.
        let mut shape = serde_json::Value::Null;
        for wo in work_orders {
            let data = Data {
                wo,
                subject: String::new(),
                commands: commands::troubleshooting(wo),
                omitted: &Omitted::default(),
                event: None,
            };
            merge(&mut shape, serde_json::to_value(&data)?);
        }
        for event in events {
            merge(
                &mut shape,
                serde_json::json!({ "event": serde_json::to_value(event)? }),
            );
        }
        let known: BTreeSet<&str> = VARIABLES
            .iter()
            .chain(GLOBALS)
            .copied()
            .chain(is_comment.then_some("event"))
            .collect();
        let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        names.sort();
        for path in names {
            let mut parts = path.split('.');
            let root = parts.next().unwrap_or_default();
            if known.contains(root) && (root != "event" || is_comment) {
                let mut at = shape.get(root);
                let mut walked = root.to_string();
                for part in parts {
                    match at {
                        Some(serde_json::Value::Object(map)) => {
                            if !map.contains_key(part) {
                                return Err(self.unknown(name, &format!("{walked}.{part}")));
                            }
                            at = map.get(part);
                            walked = format!("{walked}.{part}");
                        }
                        // Strings, lists, numbers: their methods and items are not fields.
                        _ => break,
                    }
                }
                continue;
            }
            if self.env.get_template(root).is_ok() {
                continue;
            }
            return Err(self.unknown(name, root));
        }
        Ok(())
    }

    fn unknown(&self, name: &str, path: &str) -> anyhow::Error {
        let origin = self.origins.get(name).cloned().unwrap_or(Origin::Builtin);
        let source = self
            .env
            .get_template(name)
            .map(|t| t.source().to_string())
            .unwrap_or_default();
        let line = source
            .lines()
            .position(|l| l.contains(path))
            .map(|i| format!(":{}", i + 1))
            .unwrap_or_default();
        let variables = if name.starts_with("comment_") {
            "wo, subject, commands, omitted, event"
        } else {
            "wo, subject, commands, omitted"
        };
        anyhow::anyhow!(
            "template {}{line}: unknown variable `{path}` (templates get {variables}; see docs/templates.md)",
            where_(&origin, name)
        )
    }
}

impl Renderer for TemplateRenderer {
    fn title(&self, wo: &WorkOrder) -> anyhow::Result<String> {
        self.render(TITLE, wo, &Omitted::default(), None)
    }

    fn body(&self, wo: &WorkOrder) -> anyhow::Result<String> {
        self.render(BODY, wo, &Omitted::default(), None)
    }

    fn trimmed_body(&self, wo: &WorkOrder, omitted: &Omitted) -> anyhow::Result<String> {
        self.render(BODY, wo, omitted, None)
    }

    fn comment(&self, wo: &WorkOrder, event: &CommentEvent) -> anyhow::Result<String> {
        self.render(
            &comment_template(event),
            wo,
            &Omitted::default(),
            Some(event),
        )
    }
}

/// What the work order is about, as text: its workload or application, else what its
/// newest signal named (`namespace monitoring`, `pod pets/x`), else its key.
pub fn subject(wo: &WorkOrder) -> String {
    if wo.workload.is_some() || wo.app.is_some() {
        return wo.subject_text();
    }
    wo.series
        .first()
        .map(|s| s.subject.clone())
        .unwrap_or_else(|| wo.subject_text())
}

fn where_(origin: &Origin, name: &str) -> String {
    match origin {
        Origin::Builtin => format!("{name} (built-in)"),
        Origin::File(path) => path.display().to_string(),
    }
}

/// `template path:line: what (detail)` for a minijinja error.
fn describe(e: &Error, origin: &Origin, name: &str) -> anyhow::Error {
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(" ({d})")).unwrap_or_default();
    anyhow::anyhow!(
        "template {}{line}: {}{detail}",
        where_(origin, name),
        e.kind()
    )
}

/// The `*.j2` files of an override directory, by name; an unknown name is an error
/// (a typo would otherwise silently keep the built-in).
fn read_overrides(dir: &Path) -> anyhow::Result<BTreeMap<String, (PathBuf, String)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("templates.dir: cannot read {}", dir.display()))?;
    let known: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("templates.dir: cannot read {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".j2") {
            continue;
        }
        if !known.contains(&name) {
            bail!(
                "templates.dir: {} is not a template Triage uses (expected one of: {})",
                path.display(),
                known.join(", ")
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("templates.dir: cannot read {}", path.display()))?;
        out.insert(name.to_string(), (path, text));
    }
    Ok(out)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .unwrap_or_default(),
    );
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".md.j2") {
            AutoEscape::Custom(MARKDOWN.into())
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(format_value);
    env.add_filter("code", |v: Value| -> Result<Value, Error> {
        Ok(Value::from_safe_string(super::code(&text(&v, "code")?)))
    });
    env.add_filter("md", |v: Value| -> Result<Value, Error> {
        Ok(Value::from_safe_string(markdown::escape(&text(&v, "md")?)))
    });
    env.add_filter(
        "fence",
        |v: Value, lang: Option<String>| -> Result<Value, Error> {
            Ok(Value::from_safe_string(markdown::fence(
                &text(&v, "fence")?,
                lang.as_deref().unwrap_or(""),
            )))
        },
    );
    env.add_filter(
        "link",
        |v: Value, label: Option<String>| -> Result<Value, Error> {
            Ok(Value::from_safe_string(markdown::link(
                label.as_deref().unwrap_or(""),
                &text(&v, "link")?,
            )))
        },
    );
    env.add_filter("shell", |v: Value| -> Result<Value, Error> {
        Ok(Value::from(markdown::shell_quote(&text(&v, "shell")?)))
    });
    env.add_filter("clip", |v: Value, max: usize| -> Result<Value, Error> {
        Ok(Value::from(markdown::clip(&text(&v, "clip")?, max)))
    });
    env.add_filter("when", |v: Value| -> Result<Value, Error> {
        Ok(Value::from(markdown::when(&text(&v, "when")?)))
    });
    env.add_filter("oneline", |v: Value| -> Result<Value, Error> {
        let s = text(&v, "oneline")?;
        Ok(Value::from(
            s.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    });
    env.add_filter(
        "count",
        |n: i64, noun: String, kwargs: Kwargs| -> Result<Value, Error> {
            let plural: Option<String> = kwargs.get("plural")?;
            kwargs.assert_all_used()?;
            let word = if n == 1 {
                noun
            } else {
                plural.unwrap_or_else(|| format!("{noun}s"))
            };
            Ok(Value::from(format!("{n} {word}")))
        },
    );
    env
}

/// Text of a filter's input; a missing value is an error that says how to handle it.
fn text(v: &Value, filter: &str) -> Result<String, Error> {
    if v.is_none() || v.is_undefined() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "`{filter}` got a missing value: guard it with `{{% if … %}}` or give a default with `or \"…\"`"
            ),
        ));
    }
    Ok(match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    })
}

/// Prints values: Markdown-escaped in `*.md.j2` unless safe; a missing value (`none`)
/// is an error rather than the word "none" in an issue.
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    if value.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "printed a missing value (none): guard it with `{% if … %}` or give a default with `or \"…\"`",
        ));
    }
    let markdown = matches!(state.auto_escape(), AutoEscape::Custom(name) if name == MARKDOWN);
    if markdown && !value.is_safe() {
        let s = match value.as_str() {
            Some(s) => markdown::escape(s),
            None => markdown::escape(&value.to_string()),
        };
        return out.write_str(&s).map_err(Error::from);
    }
    if markdown {
        // Safe strings are written as they are.
        return out.write_str(&value.to_string()).map_err(Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// Merges `b` into `a`: objects key by key, `null` replaced by a value.
fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            for (k, v) in y {
                merge(x.entry(k).or_insert(J::Null), v);
            }
        }
        (J::Array(x), J::Array(y)) => {
            if x.is_empty() {
                *x = y;
            } else if let (Some(first), Some(other)) = (x.first_mut(), y.into_iter().next()) {
                merge(first, other);
            }
        }
        (slot @ J::Null, b) => *slot = b,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every comment event has a built-in template, and the samples the start-up check
    /// renders cover every event (a new variant fails to compile here first).
    #[test]
    fn every_comment_event_has_a_template_and_a_sample() {
        let all = |e: &CommentEvent| match e {
            CommentEvent::Repeat { .. }
            | CommentEvent::Relapse { .. }
            | CommentEvent::RouteChange { .. }
            | CommentEvent::Recovered { .. }
            | CommentEvent::Reopened { .. }
            | CommentEvent::Closed => e.name(),
        };
        let names: BTreeSet<&str> = sample::events().iter().map(all).collect();
        assert_eq!(
            names,
            [
                "closed",
                "recovered",
                "relapse",
                "reopened",
                "repeat",
                "route_change"
            ]
            .into_iter()
            .collect()
        );
        for event in sample::events() {
            let name = comment_template(&event);
            assert!(
                BUILTIN.iter().any(|(n, _)| *n == name),
                "{name} is not built in"
            );
        }
    }

    #[test]
    fn builtins_load_and_render_every_sample_without_the_word_none() {
        let r = TemplateRenderer::builtin();
        for wo in sample::work_orders() {
            let body = r.body(&wo).unwrap();
            assert!(!body.contains("none"), "{body}");
            assert!(!r.title(&wo).unwrap().contains("none"));
            for event in sample::events() {
                let text = r.comment(&wo, &event).unwrap();
                assert!(!text.contains("none"), "{event:?}: {text}");
            }
        }
    }

    #[test]
    fn printing_a_missing_value_is_an_error_not_the_word_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TITLE), "{{ wo.cluster }}").unwrap();
        let err = format!(
            "{:#}",
            TemplateRenderer::from_dir(Some(dir.path())).unwrap_err()
        );
        assert!(err.contains("printed a missing value"), "{err}");
    }

    #[test]
    fn filters() {
        let env = environment();
        let render = |src: &str| {
            env.render_str(src, minijinja::context! { x => "a|b", n => 2 })
                .unwrap()
        };
        assert_eq!(render("{{ x | code }}"), "`a\\|b`");
        assert_eq!(render("{{ n | count(\"pod\") }}"), "2 pods");
        assert_eq!(render("{{ 1 | count(\"pod\") }}"), "1 pod");
        assert_eq!(
            render("{{ 3 | count(\"event reason\", plural=\"event reasons\") }}"),
            "3 event reasons"
        );
        assert_eq!(render("{{ \"it's\" | shell }}"), "'it'\\''s'");
        assert_eq!(
            render("{{ \"2026-11-23T15:58:02Z\" | when }}"),
            "2026-11-23 15:58 UTC"
        );
        assert!(env.render_str("{{ none | code }}", ()).is_err());
    }
}
