//! Rendering: work orders → issue titles, bodies, comments and labels.
//!
//! A [`Renderer`] writes only the human-readable Markdown. What machines rely on is
//! added here, around whatever a renderer (or a user's template) produced, so no
//! template can drop it: every body ends with a fenced JSON block holding the full
//! [`WorkOrder`] and the hidden key marker (`forge::key_marker`); every comment ends
//! with a small JSON block describing the event. Sizes are kept within GitHub's limits
//! (title 256, body 65 536 characters).
//!
//! [`templates::TemplateRenderer`] renders the templates in `templates/` (overridable
//! from `[templates] dir`); [`PlainRenderer`] is the fallback the pipeline uses when a
//! template fails. The pipeline only sees `Arc<dyn Renderer>` (see [`renderer`]).
//!
//! When a body would exceed the limit, it is rendered again with less evidence (fewer
//! pods and events, then none; then fewer alerts and sync results), the renderer being
//! told what was left out ([`Omitted`]) so the text can say so; only if that is not
//! enough is the human part cut at a line. The summary comes first, so it is never cut.

pub mod commands;
pub mod markdown;
pub mod sample;
pub mod templates;

use std::fmt::Write as _;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{Config, LabelsConfig};
use crate::forge::{IssueDraft, LabelSpec, key_marker};
use crate::signal::Signal;
use crate::triage::correlate::MAX_LABEL_LEN;
use crate::triage::lifecycle::Phase;
use crate::triage::route::Route;
use crate::triage::workorder::WorkOrder;

/// GitHub's limits (Gitea's are larger).
pub const MAX_TITLE_CHARS: usize = 256;
pub const MAX_BODY_CHARS: usize = 65_536;

/// What a comment is about. Serializable: templates receive it as `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CommentEvent {
    /// The failure goes on; `signal` is the occurrence that triggered the comment.
    Repeat {
        signal: Box<Signal>,
        occurrences: u64,
        since_last: u64,
    },
    /// The failure came back during the quiet period. `signal` is `None` when the
    /// snapshot, not a notification, saw it.
    Relapse {
        signal: Option<Box<Signal>>,
        occurrences: u64,
    },
    /// The route became more urgent; the labels were changed accordingly.
    RouteChange { from: Route, to: Route },
    /// The failure cleared. `closes_at`: when the issue closes if it stays healthy
    /// (`None` without `auto_close`).
    Recovered { closes_at: Option<Timestamp> },
    /// The failure is back within the reopen window; the issue was reopened.
    Reopened { closed_at: Option<Timestamp> },
    /// The quiet period ended; the issue is being closed.
    Closed,
}

impl CommentEvent {
    pub fn name(&self) -> &'static str {
        match self {
            CommentEvent::Repeat { .. } => "repeat",
            CommentEvent::Relapse { .. } => "relapse",
            CommentEvent::RouteChange { .. } => "route_change",
            CommentEvent::Recovered { .. } => "recovered",
            CommentEvent::Reopened { .. } => "reopened",
            CommentEvent::Closed => "closed",
        }
    }
}

/// What a body leaves out to fit the forge's size limit: how many items of each list
/// the work order it was given lacks compared to the full one. Templates get it as
/// `omitted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Omitted {
    /// Pods of `context.evidence.pods`.
    pub pods: usize,
    /// Event groups of `context.evidence.events`.
    pub events: usize,
    /// Entries of `series` (alerts, Argo CD health and sync).
    pub series: usize,
    /// Failed resources of `argocd.sync_result`.
    pub sync_resources: usize,
}

impl Omitted {
    pub fn any(&self) -> bool {
        *self != Omitted::default()
    }
}

/// Writes the human-readable parts. Implementations must be deterministic (the same
/// work order renders the same text) and must not include the key marker or the JSON
/// block themselves.
pub trait Renderer: Send + Sync {
    fn title(&self, work_order: &WorkOrder) -> anyhow::Result<String>;
    /// Markdown body of a new issue.
    fn body(&self, work_order: &WorkOrder) -> anyhow::Result<String>;
    /// The body of a work order whose lists were shortened to fit the size limit;
    /// `omitted` says by how much, so the text can say "3 more pods not shown".
    fn trimmed_body(&self, work_order: &WorkOrder, omitted: &Omitted) -> anyhow::Result<String> {
        let _ = omitted;
        self.body(work_order)
    }
    /// Markdown of a comment about `event`.
    fn comment(&self, work_order: &WorkOrder, event: &CommentEvent) -> anyhow::Result<String>;
}

/// The renderer `serve` uses: the templates (built-in, overridden by `[templates] dir`).
pub fn renderer(config: &Config) -> anyhow::Result<Arc<dyn Renderer>> {
    Ok(Arc::new(templates::TemplateRenderer::from_config(
        &config.templates,
    )?))
}

/// A new issue for `work_order`, fully assembled: title within limits, the renderer's
/// body (re-rendered with less evidence while it does not fit), the JSON block and the
/// marker.
pub fn issue_draft(
    renderer: &dyn Renderer,
    work_order: &WorkOrder,
    labels: Vec<String>,
) -> anyhow::Result<IssueDraft> {
    let title = one_line(&renderer.title(work_order)?);
    let title = clip_chars(&title, MAX_TITLE_CHARS);
    let tail = machine_tail(work_order)?;
    let room = MAX_BODY_CHARS.saturating_sub(tail.chars().count());
    let mut human = renderer.body(work_order)?;
    if chars(human.trim_end()) > room {
        for level in TRIM_LEVELS {
            let (trimmed, omitted) = trim(work_order, level);
            human = renderer.trimmed_body(&trimmed, &omitted)?;
            if chars(human.trim_end()) <= room {
                break;
            }
        }
    }
    Ok(IssueDraft {
        title,
        body: format!("{}{tail}", fit(human.trim_end(), room)),
        labels,
    })
}

/// How far a body is shortened, step by step: evidence first, then the failure lists.
#[derive(Debug, Clone, Copy)]
struct TrimLevel {
    pods: usize,
    events: usize,
    series: Option<usize>,
    sync_resources: Option<usize>,
}

const TRIM_LEVELS: [TrimLevel; 5] = [
    TrimLevel {
        pods: 5,
        events: 5,
        series: None,
        sync_resources: None,
    },
    TrimLevel {
        pods: 1,
        events: 1,
        series: None,
        sync_resources: None,
    },
    TrimLevel {
        pods: 0,
        events: 0,
        series: None,
        sync_resources: None,
    },
    TrimLevel {
        pods: 0,
        events: 0,
        series: Some(5),
        sync_resources: Some(5),
    },
    TrimLevel {
        pods: 0,
        events: 0,
        series: Some(1),
        sync_resources: Some(1),
    },
];

fn trim(wo: &WorkOrder, level: TrimLevel) -> (WorkOrder, Omitted) {
    let mut out = wo.clone();
    let mut omitted = Omitted::default();
    if let Some(ctx) = out.context.as_mut() {
        let ev = &mut ctx.evidence;
        omitted.pods = ev.pods.len().saturating_sub(level.pods);
        omitted.events = ev.events.len().saturating_sub(level.events);
        ev.pods.truncate(level.pods);
        ev.events.truncate(level.events);
    }
    if let Some(max) = level.series {
        omitted.series = out.series.len().saturating_sub(max);
        out.series.truncate(max);
    }
    if let (Some(max), Some(detail)) = (level.sync_resources, out.argocd.as_mut()) {
        // Only failed resources are worth showing once space is short.
        detail
            .sync_result
            .retain(|r| r.status.as_deref() != Some("Synced"));
        omitted.sync_resources = detail.sync_result.len().saturating_sub(max);
        detail.sync_result.truncate(max);
    }
    (out, omitted)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A comment, assembled: the renderer's text and a JSON block describing the event.
pub fn comment_body(
    renderer: &dyn Renderer,
    work_order: &WorkOrder,
    event: &CommentEvent,
) -> anyhow::Result<String> {
    let human = renderer.comment(work_order, event)?;
    let machine = serde_json::json!({
        "event": event.name(),
        "key": work_order.key,
        "state": work_order.state,
        "route": work_order.route,
        "occurrences": work_order.signals.occurrences,
        "health": work_order.context.as_ref().and_then(|c| c.health.as_ref()),
    });
    let json = serde_json::to_string_pretty(&machine)?;
    let tail = format!("\n\n```json\n{json}\n```\n");
    let room = MAX_BODY_CHARS.saturating_sub(tail.chars().count());
    Ok(format!("{}{tail}", fit(human.trim_end(), room)))
}

/// The JSON block and the marker, about half of `MAX_BODY_CHARS` at most: when too long
/// the document is compacted (evidence and series trimmed — the counts stay — then
/// minified, then without evidence and Argo CD detail, then with fewer notes, then
/// without the context). Never cut, so it always parses.
fn machine_tail(work_order: &WorkOrder) -> anyhow::Result<String> {
    let marker = key_marker(&work_order.key);
    let mut doc = work_order.clone();
    let mut json = serde_json::to_string_pretty(&doc)?;
    let budget = MAX_BODY_CHARS / 2;
    if json.chars().count() > budget {
        if let Some(ctx) = doc.context.as_mut() {
            ctx.evidence.pods.truncate(5);
            ctx.evidence.events.truncate(10);
        }
        doc.series.truncate(5);
        json = serde_json::to_string_pretty(&doc)?;
    }
    if json.chars().count() > budget {
        json = serde_json::to_string(&doc)?;
    }
    if json.chars().count() > budget {
        if let Some(ctx) = doc.context.as_mut() {
            ctx.evidence = Default::default();
        }
        doc.series.clear();
        doc.argocd = None;
        json = serde_json::to_string(&doc)?;
    }
    if json.chars().count() > budget {
        // Only pathological contexts get here (thousands of notes or dependencies).
        if let Some(ctx) = doc.context.as_mut() {
            ctx.notes.truncate(10);
            for n in &mut ctx.notes {
                *n = clip_chars(n, 300);
            }
            ctx.dependencies.truncate(20);
        }
        json = serde_json::to_string(&doc)?;
    }
    if json.chars().count() > budget {
        doc.context = None;
        json = serde_json::to_string(&doc)?;
    }
    Ok(format!(
        "\n\n<details><summary>Work order (JSON)</summary>\n\n```json\n{json}\n```\n\n</details>\n\n{marker}\n"
    ))
}

/// Cuts Markdown to `max` characters at a line end, closing a code fence left open,
/// and says so.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    const NOTE: &str = "\n\n… (truncated to fit the forge's size limit)";
    // Room for the note and a closing fence.
    let keep = max.saturating_sub(NOTE.chars().count() + 12);
    let cut = clip_raw(text, keep);
    let cut = match cut.rfind('\n') {
        Some(i) if i > 0 => &cut[..i],
        _ => cut.as_str(),
    };
    let mut out = cut.to_string();
    if let Some(fence) = open_fence(&out) {
        out.push('\n');
        out.push_str(&fence);
    }
    out.push_str(NOTE);
    out
}

/// The fence of a code block `text` leaves open, if any.
fn open_fence(text: &str) -> Option<String> {
    let mut open: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        let ticks: String = t.chars().take_while(|c| *c == '`').collect();
        if ticks.len() < 3 {
            continue;
        }
        match &open {
            Some(f) if ticks.len() >= f.len() && t.trim_end() == ticks => open = None,
            Some(_) => {}
            None => open = Some(ticks),
        }
    }
    open
}

fn clip_raw(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// At most `max` characters, ending in `…` when cut.
fn clip_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    format!("{}…", clip_raw(s, max.saturating_sub(1)).trim_end())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------
// Labels

/// The labels a work order's issue carries: the agent label (for routes in
/// `agent_actions`), `source/<x>` per source, `priority/<P>`, `tier/<t>`, `action/<a>`
/// and the short key label — each kind with its configured prefix, or left out when
/// that prefix is `""`. Names are at most 50 characters (validated with the config).
pub fn labels(work_order: &WorkOrder, config: &LabelsConfig) -> Vec<String> {
    let route = work_order.route.as_ref();
    let mut out: Vec<String> = route
        .and_then(|r| agent_label(r, config))
        .into_iter()
        .collect();
    if !config.source_prefix.is_empty() {
        for source in &work_order.signals.sources {
            out.push(format!("{}{source}", config.source_prefix));
        }
    }
    if let Some(route) = route {
        out.extend(routed_labels(route, config));
    }
    out.push(work_order.key_label.clone());
    out.into_iter()
        .map(|l| clip_raw(&l, MAX_LABEL_LEN))
        .collect()
}

/// The labels that depend on the route (the agent label included); a route change
/// swaps exactly these, so escalating a `log` work order adds the agent label.
pub fn route_labels(route: &Route, config: &LabelsConfig) -> Vec<String> {
    let mut out: Vec<String> = agent_label(route, config).into_iter().collect();
    out.extend(routed_labels(route, config));
    out
}

fn agent_label(route: &Route, config: &LabelsConfig) -> Option<String> {
    (!config.agent.is_empty() && config.agent_actions.contains(&route.action))
        .then(|| config.agent.clone())
}

fn routed_labels(route: &Route, config: &LabelsConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = route.priority
        && !config.priority_prefix.is_empty()
    {
        out.push(format!("{}{p}", config.priority_prefix));
    }
    if !config.tier_prefix.is_empty() {
        out.push(format!("{}{}", config.tier_prefix, route.tier.as_str()));
    }
    if !config.action_prefix.is_empty() {
        out.push(format!("{}{}", config.action_prefix, route.action));
    }
    out
}

/// `[labels]`: every label Triage can make fits the forges' 50 characters and contains
/// no `,` (label filters split on it).
pub fn validate_labels(config: &LabelsConfig) -> anyhow::Result<()> {
    let longest_value = |setting: &str| match setting {
        "source_prefix" => "alertmanager",
        "priority_prefix" => "P0",
        "tier_prefix" => "best-effort",
        _ => "escalate",
    };
    let mut checks = vec![("agent", config.agent.clone())];
    for (setting, prefix) in [
        ("source_prefix", &config.source_prefix),
        ("priority_prefix", &config.priority_prefix),
        ("tier_prefix", &config.tier_prefix),
        ("action_prefix", &config.action_prefix),
    ] {
        if !prefix.is_empty() {
            checks.push((setting, format!("{prefix}{}", longest_value(setting))));
        }
    }
    for (setting, label) in checks {
        if label.chars().count() > MAX_LABEL_LEN {
            anyhow::bail!(
                "labels.{setting}: the label {label:?} is {} characters; forges allow at most {MAX_LABEL_LEN}",
                label.chars().count()
            );
        }
        if label.contains(',') {
            anyhow::bail!(
                "labels.{setting} must not contain ',' (forges split label filters on it): {label:?}"
            );
        }
        if label.trim() != label {
            anyhow::bail!("labels.{setting} must not start or end with spaces: {label:?}");
        }
    }
    Ok(())
}

/// Colour and description for each label, for forges that need labels to exist.
pub fn label_specs(labels: &[String], config: &LabelsConfig) -> Vec<LabelSpec> {
    let kind = |name: &str, prefix: &str| -> Option<String> {
        if prefix.is_empty() {
            return None;
        }
        name.strip_prefix(prefix).map(str::to_string)
    };
    labels
        .iter()
        .map(|name| {
            let (color, description) = if !config.agent.is_empty() && *name == config.agent {
                ("5319e7", "Work order for the cluster-doctor agent")
            } else if name.starts_with(&config.key_prefix)
                && name.len() == config.key_prefix.len() + 12
            {
                ("ededed", "Triage work-order key")
            } else if let Some(p) = kind(name, &config.priority_prefix) {
                match p.as_str() {
                    "P0" => ("b60205", "Priority P0: act now"),
                    "P1" => ("d93f0b", "Priority P1"),
                    "P2" => ("fbca04", "Priority P2"),
                    _ => ("c5def5", "Priority P3"),
                }
            } else if kind(name, &config.tier_prefix).is_some() {
                ("0e8a16", "deployscope tier of the workload")
            } else if kind(name, &config.action_prefix).is_some() {
                ("1d76db", "Triage routing action")
            } else if kind(name, &config.source_prefix).is_some() {
                ("bfdadc", "Where the signal came from")
            } else {
                ("ededed", "Triage")
            };
            LabelSpec {
                name: name.clone(),
                color: color.to_string(),
                description: description.to_string(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The plain renderer

/// Built-in Markdown, no templates: what a person on call needs first, then evidence.
/// Free text from payloads and the cluster goes into code spans, so an `@team` in an
/// alert description pings nobody and a `|` cannot break a table.
#[derive(Debug, Clone, Default)]
pub struct PlainRenderer;

impl Renderer for PlainRenderer {
    fn title(&self, wo: &WorkOrder) -> anyhow::Result<String> {
        let priority = wo
            .route
            .as_ref()
            .and_then(|r| r.priority)
            .map(|p| format!("[{p}] "))
            .unwrap_or_default();
        let mut what: Vec<&str> = Vec::new();
        for s in &wo.series {
            if !what.contains(&s.title.as_str()) && what.len() < 3 {
                what.push(&s.title);
            }
        }
        let cluster = wo
            .cluster
            .as_deref()
            .map(|c| format!(" in {c}"))
            .unwrap_or_default();
        let headline = if what.is_empty() {
            String::new()
        } else {
            format!(": {}", what.join(", "))
        };
        Ok(format!(
            "{priority}{}{cluster}{headline}",
            wo.subject_text()
        ))
    }

    fn body(&self, wo: &WorkOrder) -> anyhow::Result<String> {
        let mut out = String::new();
        let status = wo
            .route
            .as_ref()
            .map(|r| r.status.as_str())
            .unwrap_or("failing");
        writeln!(out, "## {} is {status}", wo.subject_text())?;
        writeln!(out)?;
        if let Some(route) = &wo.route {
            writeln!(
                out,
                "**{}{}** — {}",
                route.action,
                route
                    .priority
                    .map(|p| format!(" · {p}"))
                    .unwrap_or_default(),
                code(&route.reason)
            )?;
            writeln!(out)?;
        }
        if let Some(cause) = wo.context.as_ref().and_then(|c| c.likely_cause.as_deref()) {
            writeln!(out, "> **Likely cause:** {}", code(cause))?;
            writeln!(out)?;
        }

        writeln!(out, "| | |")?;
        writeln!(out, "|---|---|")?;
        row(&mut out, "Work order", &code(&wo.key))?;
        row(&mut out, "Cluster", &opt_code(wo.cluster.as_deref()))?;
        if let Some(w) = &wo.workload {
            row(&mut out, "Workload", &code(&w.to_string()))?;
        }
        if let Some(app) = &wo.app {
            let name = match &wo.links.argocd_app {
                Some(link) => format!("[{}]({link})", code(&app.name)),
                None => code(&app.name),
            };
            let status = [app.health.as_deref(), app.sync.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            row(
                &mut out,
                "Argo CD app",
                &format!("{name} {}", opt_code(Some(&status))),
            )?;
        }
        if let Some(ctx) = &wo.context {
            let a = &ctx.annotations;
            row(&mut out, "Owner", &opt_code(a.owner.as_deref()))?;
            row(&mut out, "On call", &opt_code(a.oncall.as_deref()))?;
            row(
                &mut out,
                "Tier",
                &opt_code(a.tier.map(|t| t.as_str()).or(a.tier_raw.as_deref())),
            )?;
            if let Some(h) = &ctx.health {
                let since = h.since.map(|s| format!(" since {s}")).unwrap_or_default();
                row(
                    &mut out,
                    "Health",
                    &format!("**{}** {}{since}", h.status.as_str(), code(&h.reason)),
                )?;
            }
            if a.gitops_repo.is_some() || a.gitops_path.is_some() {
                row(
                    &mut out,
                    "GitOps",
                    &format!(
                        "{} {}",
                        opt_code(a.gitops_repo.as_deref()),
                        opt_code(a.gitops_path.as_deref())
                    ),
                )?;
            }
        }
        let s = &wo.signals;
        row(
            &mut out,
            "Seen",
            &format!(
                "{} occurrence(s), first {}, last {}",
                s.occurrences,
                opt_time(s.first_seen),
                opt_time(s.last_seen)
            ),
        )?;
        if let Some(prev) = &wo.previous_issue {
            row(
                &mut out,
                "Follows",
                &format!("#{} ({})", prev.number, code(&prev.url)),
            )?;
        }
        writeln!(out)?;

        if !wo.series.is_empty() {
            writeln!(out, "### What fired")?;
            writeln!(out)?;
            for series in &wo.series {
                write!(
                    out,
                    "- **{}** ({}) on {} — {}",
                    code(&series.title),
                    series.source,
                    code(&series.subject),
                    series.status
                )?;
                if let Some(started) = series.started_at {
                    write!(out, ", since {started}")?;
                }
                if let Some(url) = &series.generator_url {
                    write!(out, " · [graph]({url})")?;
                }
                writeln!(out)?;
                if let Some(msg) = &series.message {
                    writeln!(out, "  {}", code(msg))?;
                }
            }
            writeln!(out)?;
        }

        if let Some(detail) = &wo.argocd {
            let failed: Vec<_> = detail
                .sync_result
                .iter()
                .filter(|r| r.status.as_deref() != Some("Synced"))
                .collect();
            if detail.operation_message.is_some() || !failed.is_empty() {
                writeln!(out, "### Argo CD")?;
                writeln!(out)?;
                if let Some(phase) = &detail.operation_phase {
                    writeln!(out, "- operation: {}", code(phase))?;
                }
                if let Some(msg) = &detail.operation_message {
                    writeln!(out, "- message: {}", code(msg))?;
                }
                if let Some(rev) = &detail.revision {
                    writeln!(out, "- revision: {}", code(rev))?;
                }
                for r in failed.iter().take(10) {
                    writeln!(
                        out,
                        "- {} {}: {} {}",
                        code(&r.kind),
                        code(&r.name),
                        opt_code(r.status.as_deref()),
                        opt_code(r.message.as_deref())
                    )?;
                }
                writeln!(out)?;
            }
        }

        if let Some(ctx) = &wo.context {
            let ev = &ctx.evidence;
            if !ev.pods.is_empty() || !ev.events.is_empty() || !ev.conditions.is_empty() {
                writeln!(out, "### Evidence")?;
                writeln!(out)?;
                for pod in ev.pods.iter().take(10) {
                    for c in &pod.containers {
                        let mut parts = vec![format!("restarts {}", c.restart_count)];
                        if let Some(r) = &c.waiting_reason {
                            parts.push(format!("waiting {r}"));
                        }
                        if let Some(r) = &c.last_termination_reason {
                            parts.push(format!(
                                "last exit {r}{}",
                                c.last_exit_code
                                    .map(|e| format!(" ({e})"))
                                    .unwrap_or_default()
                            ));
                        }
                        writeln!(
                            out,
                            "- pod {} container {}: {}",
                            code(&pod.name),
                            code(&c.name),
                            code(&parts.join(", "))
                        )?;
                    }
                }
                for e in ev.events.iter().take(10) {
                    writeln!(
                        out,
                        "- event {} ×{}: {}",
                        code(&e.reason),
                        e.count,
                        opt_code(e.message.as_deref())
                    )?;
                }
                for c in &ev.conditions {
                    writeln!(
                        out,
                        "- condition {}={} {} {}",
                        code(&c.kind),
                        code(&c.status),
                        opt_code(c.reason.as_deref()),
                        opt_code(c.message.as_deref())
                    )?;
                }
                writeln!(out)?;
            }
            if !ctx.notes.is_empty() {
                writeln!(out, "### Notes")?;
                writeln!(out)?;
                for note in &ctx.notes {
                    writeln!(out, "- {}", code(note))?;
                }
                writeln!(out)?;
            }
        }

        let l = &wo.links;
        let mut links = Vec::new();
        if let Some(u) = &l.runbook {
            links.push(format!("[runbook]({u})"));
        }
        if let Some(u) = &l.dashboard {
            links.push(format!("[dashboard]({u})"));
        }
        if let Some(u) = &l.argocd_app {
            links.push(format!("[Argo CD]({u})"));
        }
        if let Some(u) = &l.silence {
            links.push(format!("[silence this alert]({u})"));
        }
        if !links.is_empty() {
            writeln!(out, "{}", links.join(" · "))?;
        }
        Ok(out)
    }

    fn comment(&self, wo: &WorkOrder, event: &CommentEvent) -> anyhow::Result<String> {
        let mut out = String::new();
        match event {
            CommentEvent::Repeat {
                signal,
                occurrences,
                since_last,
            } => {
                writeln!(
                    out,
                    "**Still failing:** {} on {} — {since_last} new occurrence(s) since the last update, {occurrences} in total.",
                    code(&signal.title),
                    code(&crate::triage::lifecycle::subject_text(&signal.subject)),
                )?;
                if let Some(msg) = &signal.message {
                    writeln!(out, "\n{}", code(msg))?;
                }
            }
            CommentEvent::Relapse {
                signal,
                occurrences,
            } => {
                match signal {
                    Some(s) => writeln!(
                        out,
                        "**Failing again:** {} on {} ({occurrences} occurrence(s) in total).",
                        code(&s.title),
                        code(&crate::triage::lifecycle::subject_text(&s.subject))
                    )?,
                    None => writeln!(
                        out,
                        "**Failing again:** the cluster shows {} unhealthy.",
                        code(&wo.subject_text())
                    )?,
                }
                health_line(&mut out, wo)?;
            }
            CommentEvent::RouteChange { from, to } => {
                writeln!(
                    out,
                    "**Route changed:** {} (was {}) — {}. Labels updated.",
                    route_text(to),
                    route_text(from),
                    code(&to.reason)
                )?;
            }
            CommentEvent::Recovered { closes_at } => {
                writeln!(out, "**Recovered.**")?;
                health_line(&mut out, wo)?;
                match closes_at {
                    Some(at) => writeln!(
                        out,
                        "\nThis issue closes at {at} if nothing fails again until then."
                    )?,
                    None => writeln!(
                        out,
                        "\nAutomatic closing is off: close this issue when you are satisfied."
                    )?,
                }
            }
            CommentEvent::Reopened { closed_at } => {
                let when = closed_at
                    .map(|t| format!(" (closed at {t})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "**Reopened:** the failure is back within the reopen window{when}."
                )?;
                health_line(&mut out, wo)?;
            }
            CommentEvent::Closed => {
                writeln!(
                    out,
                    "**Closing:** {} stayed healthy through the quiet period.",
                    code(&wo.subject_text())
                )?;
            }
        }
        Ok(out)
    }
}

fn health_line(out: &mut String, wo: &WorkOrder) -> std::fmt::Result {
    if let Some(h) = wo.context.as_ref().and_then(|c| c.health.as_ref()) {
        writeln!(
            out,
            "\nHealth now: **{}** {}",
            h.status.as_str(),
            code(&h.reason)
        )?;
    }
    Ok(())
}

fn route_text(r: &Route) -> String {
    match r.priority {
        Some(p) => format!("**{} · {p}** ({})", r.action, r.status.as_str()),
        None => format!("**{}** ({})", r.action, r.status.as_str()),
    }
}

fn row(out: &mut String, name: &str, value: &str) -> std::fmt::Result {
    writeln!(out, "| {name} | {value} |")
}

/// Inline code that survives any content: a fence longer than the longest backtick
/// run inside, newlines flattened, table pipes escaped.
pub fn code(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = flat.replace('|', "\\|");
    if flat.is_empty() {
        return "`-`".to_string();
    }
    let longest = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if flat.starts_with('`') || flat.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{flat}{pad}{fence}")
}

fn opt_code(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => code(s),
        _ => "—".to_string(),
    }
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "—".to_string())
}

/// The phase as people say it, for templates and logs.
pub fn phase_text(phase: Phase) -> &'static str {
    match phase {
        Phase::Quiet => "quiet",
        Phase::Pending => "debouncing",
        Phase::Open => "open",
        Phase::Resolved => "recovered",
        Phase::Closed => "closed",
    }
}

#[cfg(test)]
mod tests;
