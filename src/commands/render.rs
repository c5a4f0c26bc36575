//! `triage render FILE`: the templates rendered against a saved payload, for template
//! authors. The payload goes through what `serve` does to it — parse (source detected
//! from the content unless `--source`), enrich from a static snapshot (the embedded
//! example cluster unless `--snapshot`), route, correlate, the lifecycle with its
//! debounce windows treated as elapsed — and each work order it leads to is printed as
//! it would be filed when opened: title, labels, body; with `--comments`, every comment
//! kind too. Nothing is stored and no forge is touched.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jiff::Timestamp;

use crate::cli::{ConfigArgs, SourceArg};
use crate::cluster::{Cluster, Clusters, Limits, loader};
use crate::config::{Config, Overrides};
use crate::forge::IssueDraft;
use crate::ingest::alertmanager::{self, AlertmanagerOptions};
use crate::ingest::argocd;
use crate::render::templates::TemplateRenderer;
use crate::render::{self, CommentEvent, Renderer};
use crate::signal::{Signal, Source};
use crate::triage::Assessor;
use crate::triage::context::{HealthStatus, Tier};
use crate::triage::correlate::{WorkOrderKey, work_order_key};
use crate::triage::enrich::Enricher;
use crate::triage::lifecycle::{Observation, Phase, Rules, State, is_more_urgent};
use crate::triage::redact::Redactor;
use crate::triage::route::{Action, Priority, Route, RoutingTable};
use crate::triage::workorder::WorkOrder;

/// The example cluster `render` (and `demo`, `replay`) enrich from by default.
pub const EXAMPLE_CLUSTER: &str = include_str!("../../examples/cluster.yaml");

/// One work order the payload leads to, rendered as it would be filed.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub work_order: WorkOrder,
    pub draft: IssueDraft,
    /// Each comment kind (`repeat`, `relapse`, …) with its text, when asked for.
    pub comments: Vec<(&'static str, String)>,
    /// Why the pipeline would not open this work order now, when it would not (the
    /// snapshot shows the subject healthy): it is rendered anyway.
    pub note: Option<String>,
}

/// What a payload renders to.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub source: Option<Source>,
    pub signals: usize,
    pub rendered: Vec<Rendered>,
    /// Signals that lead to no work order, and why.
    pub skipped: Vec<String>,
}

/// The source of a payload: an Alertmanager webhook body has `version` and `alerts`;
/// anything else is taken for Argo CD (whose parser also repairs broken JSON).
pub fn detect_source(payload: &[u8]) -> Source {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) if v.get("version").is_some() && v.get("alerts").is_some() => Source::Alertmanager,
        _ => Source::Argocd,
    }
}

/// Parses a payload with the same parsers the webhook endpoints use.
pub fn parse(payload: &[u8], source: Source, config: &Config) -> anyhow::Result<Vec<Signal>> {
    match source {
        Source::Alertmanager => alertmanager::parse(
            payload,
            &AlertmanagerOptions {
                cluster_label: config.kubernetes.cluster_label.clone(),
            },
        )
        .map_err(|e| anyhow::anyhow!("not a valid Alertmanager webhook body: {e}")),
        Source::Argocd => argocd::parse(payload)
            .map(|s| vec![s])
            .map_err(|e| anyhow::anyhow!("not a valid Argo CD notification body: {e}")),
    }
}

/// The clusters to enrich from: the configured static snapshots (`--snapshot`,
/// `kubernetes.snapshot`, `[[clusters]] snapshot`), else the embedded example cluster
/// as the default cluster. Render never talks to a live cluster.
pub fn clusters(config: &Config) -> anyhow::Result<(Clusters, String)> {
    let any_snapshot = config.kubernetes.snapshot.is_some()
        || config.clusters.iter().any(|c| c.snapshot.is_some());
    if any_snapshot {
        let what = match &config.kubernetes.snapshot {
            Some(p) => format!("snapshot {}", p.display()),
            None => "the configured cluster snapshots".to_string(),
        };
        return Ok((Clusters::load_static(config)?, what));
    }
    let limits = Limits {
        events_per_object: config.kubernetes.events_per_object,
    };
    let (snapshot, _) = loader::load_str(EXAMPLE_CLUSTER, limits)
        .context("the embedded example cluster does not load")?;
    let cluster = Cluster::from_snapshot(
        config.kubernetes.default_cluster.clone(),
        Vec::new(),
        snapshot,
    );
    Ok((
        Clusters::from_clusters(config, vec![Arc::new(cluster)]),
        "the embedded example cluster (examples/cluster.yaml)".to_string(),
    ))
}

/// Everything `triage render` does short of printing.
pub fn render_payload(
    config: &Config,
    clusters: Arc<Clusters>,
    payload: &[u8],
    source: Option<Source>,
    renderer: &dyn Renderer,
    with_comments: bool,
) -> anyhow::Result<Report> {
    let source = source.unwrap_or_else(|| detect_source(payload));
    let signals = parse(payload, source, config)?;
    let enricher = Enricher::new(config, clusters)?;
    let redactor = Redactor::from_config(&config.redaction)?;
    let table = RoutingTable::from_config(&config.routing)?;
    // Debounce windows treated as elapsed: each failure is judged at once against the
    // snapshot, as the scheduler would at its deadline.
    let rules = Rules {
        debounce_escalate: Duration::ZERO,
        debounce_warn: Duration::ZERO,
        debounce_inform: Duration::ZERO,
        debounce_log: Duration::ZERO,
        ..Rules::from(&config.lifecycle)
    };
    // Rendered as if received when the payload says the failure started, so the text
    // does not depend on when the command runs.
    let now = signals
        .iter()
        .filter_map(|s| s.started_at)
        .max()
        .unwrap_or_else(Timestamp::now);

    struct Entry {
        state: State,
        route: Route,
        last: Signal,
    }
    let mut entries: BTreeMap<WorkOrderKey, Entry> = BTreeMap::new();
    let mut report = Report {
        source: Some(source),
        signals: signals.len(),
        ..Report::default()
    };
    for signal in &signals {
        let context = enricher.enrich(signal);
        let route = enricher.route(signal, &context);
        let subject = crate::triage::lifecycle::subject_text(&signal.subject);
        if context.ignored {
            report.skipped.push(format!(
                "{} on {subject}: the workload is ignored (deployscope.dev/ignore)",
                signal.title
            ));
            continue;
        }
        let (key, _) = work_order_key(signal, &context, &config.kubernetes.cluster_label);
        let entry = entries.entry(key).or_insert_with(|| Entry {
            state: State::new(),
            route: route.clone(),
            last: signal.clone(),
        });
        if is_more_urgent(&route, Some(&entry.route)) {
            entry.route = route.clone();
        }
        entry.last = signal.clone();
        entry.state.on_signal(
            Observation {
                signal,
                context: &context,
                route: &route,
                received_at: now,
            },
            &rules,
            now,
        );
    }

    for (key, mut entry) in entries {
        let mut note = None;
        if !entry.route.wants_work_order() {
            report.skipped.push(format!(
                "{}: routed to observe ({}): no work order",
                key, entry.route.reason
            ));
            continue;
        }
        if entry.state.phase != Phase::Open {
            if entry.state.series.values().all(|s| !s.firing) {
                report
                    .skipped
                    .push(format!("{key}: only resolved signals, nothing to open"));
                continue;
            }
            note = Some(format!(
                "the pipeline would not open {key} now: the snapshot does not show the failure \
                 (a transient, suppressed at the end of its debounce window); rendered as if it did"
            ));
            let state = &mut entry.state;
            state.phase = Phase::Open;
            state.route = Some(entry.route.clone());
            state.opened_at = Some(now);
        }
        let label = key.label(&config.labels.key_prefix);
        let mut wo = WorkOrder::build(&key, &label, &entry.state, None, None, &config.links);
        redactor.work_order(&mut wo);
        let labels = render::labels(&wo, &config.labels);
        let draft = render::issue_draft(renderer, &wo, labels)?;
        let comments = if with_comments {
            let mut last = entry.last.clone();
            redactor.signal(&mut last);
            comment_events(&wo, &last, &table, &rules, now)
                .into_iter()
                .map(|event| {
                    let text = render::comment_body(renderer, &wo, &event)?;
                    Ok((event.name(), text))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        report.rendered.push(Rendered {
            work_order: wo,
            draft,
            comments,
            note,
        });
    }
    Ok(report)
}

/// One event of each kind, as the lifecycle would raise it for this work order.
pub fn comment_events(
    wo: &WorkOrder,
    last: &Signal,
    table: &RoutingTable,
    rules: &Rules,
    now: Timestamp,
) -> Vec<CommentEvent> {
    let occurrences = wo.signals.occurrences;
    let to = wo.route.clone().unwrap_or(Route {
        action: Action::Inform,
        priority: Some(Priority::P1),
        status: HealthStatus::Red,
        tier: Tier::Standard,
        reason: "no route".into(),
    });
    // The route this one would have escalated from: the same tier one status better,
    // else the least urgent route that still files a work order, else observe.
    let candidates = [
        table.decide(Some(to.tier), HealthStatus::Yellow, "fewer replicas down"),
        Route {
            action: Action::Log,
            priority: Some(Priority::P2),
            status: HealthStatus::Yellow,
            tier: to.tier,
            reason: format!("{} tier, yellow → log P2", to.tier.as_str()),
        },
    ];
    let from = candidates
        .into_iter()
        .find(|from| is_more_urgent(&to, Some(from)))
        .unwrap_or_else(|| Route {
            action: Action::Observe,
            priority: None,
            status: HealthStatus::Green,
            tier: to.tier,
            reason: format!("{} tier, green → observe", to.tier.as_str()),
        });
    let closes_at = rules
        .auto_close
        .then(|| now.checked_add(rules.close_after).ok())
        .flatten();
    vec![
        CommentEvent::Repeat {
            signal: Box::new(last.clone()),
            occurrences,
            since_last: occurrences.min(1),
        },
        CommentEvent::Relapse {
            signal: Some(Box::new(last.clone())),
            occurrences,
        },
        CommentEvent::RouteChange { from, to },
        CommentEvent::Recovered { closes_at },
        CommentEvent::Reopened {
            closed_at: Some(now),
        },
        CommentEvent::Closed,
    ]
}

/// What `triage render` prints on standard output: per work order its key, title,
/// labels, body, and the comments when asked for.
pub fn write_report(report: &Report, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let total = report.rendered.len();
    for (i, r) in report.rendered.iter().enumerate() {
        writeln!(
            out,
            "==> work order {} ({} of {total})",
            r.work_order.key,
            i + 1
        )?;
        writeln!(out, "title: {}", r.draft.title)?;
        writeln!(out, "labels: {}", r.draft.labels.join(", "))?;
        writeln!(
            out,
            "==> body ({} characters)",
            r.draft.body.chars().count()
        )?;
        writeln!(out, "{}", r.draft.body.trim_end())?;
        for (name, text) in &r.comments {
            writeln!(out, "==> comment: {name}")?;
            writeln!(out, "{}", text.trim_end())?;
        }
        if i + 1 < total {
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `triage render`.
pub fn run(
    config: &ConfigArgs,
    file: &Path,
    snapshot: Option<PathBuf>,
    source: Option<SourceArg>,
    templates: Option<PathBuf>,
    with_comments: bool,
) -> anyhow::Result<ExitCode> {
    let mut config = config.load(&Overrides {
        listen: None,
        snapshot,
    })?;
    if templates.is_some() {
        config.templates.dir = templates;
    }
    let renderer = TemplateRenderer::from_config(&config.templates)?;
    let payload = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if payload.is_empty() {
        bail!("{} is empty", file.display());
    }
    let (clusters, snapshot_text) = clusters(&config)?;
    let source = source.map(Source::from);
    let report = render_payload(
        &config,
        Arc::new(clusters),
        &payload,
        source,
        &renderer,
        with_comments,
    )
    .with_context(|| file.display().to_string())?;

    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "triage render: {} ({} payload, {} signal{}), enriched from {snapshot_text}, templates: {}",
        file.display(),
        report.source.map_or("unknown", |s| s.as_str()),
        report.signals,
        if report.signals == 1 { "" } else { "s" },
        match &config.templates.dir {
            Some(d) => format!("{} over the built-ins", d.display()),
            None => "built-in".to_string(),
        }
    )?;
    for skipped in &report.skipped {
        writeln!(err, "  no work order: {skipped}")?;
    }
    if report.rendered.is_empty() {
        writeln!(err, "nothing to render: the payload opens no work order")?;
    }
    for r in &report.rendered {
        if let Some(note) = &r.note {
            writeln!(err, "  note: {note}")?;
        }
    }
    write_report(&report, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}
