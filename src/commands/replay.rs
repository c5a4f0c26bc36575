//! `triage replay FILE…`: saved payloads through the whole pipeline, without a forge.
//!
//! The real pipeline runs over a throwaway SQLite store: each payload is parsed by the
//! webhook parsers and journaled as if received one second after the previous one, the
//! processor enriches (from a static snapshot), routes, correlates and decides, and then
//! the clock jumps past the longest debounce window so the scheduler checks every
//! pending failure against the snapshot, as it would at its deadline. Nothing is
//! delivered: the report shows the outbox — each issue as it would be created (title,
//! labels, body), its comments and state changes — and every signal that led to none,
//! with the reason.
//!
//! Time is virtual and starts at the newest time the payloads carry (not the wall
//! clock), so the same files print the same work orders on every run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};

use super::outcome::{self, Outcome};
use super::render::{clusters, detect_source, parse};
use crate::cli::{ConfigArgs, ReplayFormat, SourceArg};
use crate::config::{Config, Overrides, SqliteSync, StoreKind};
use crate::forge::routing::RepoRouter;
use crate::forge::{
    CloseReason, Forge, ForgeError, FoundIssue, IssueDraft, IssueRef, IssueState, LabelSpec,
    RepoRef,
};
use crate::metrics::JournalMetrics;
use crate::pipeline::{Pipeline, PipelineMetrics, Settings};
use crate::signal::{Signal, Source};
use crate::store::{Appended, NewDelivery};
use crate::triage::enrich::Enricher;

/// A payload to replay: where it came from, its bytes, its source if known.
pub struct Payload {
    pub name: String,
    pub body: Vec<u8>,
    pub source: Option<Source>,
}

/// What `replay` computed, before printing.
pub struct Replayed {
    pub outcome: Outcome,
    /// Per payload: its name, source and signal count.
    pub payloads: Vec<(String, Source, usize)>,
}

/// Runs `payloads` in order through the pipeline on `config`'s static snapshot.
pub async fn replay(config: &Config, payloads: &[Payload]) -> anyhow::Result<Replayed> {
    let mut parsed = Vec::with_capacity(payloads.len());
    for p in payloads {
        let source = p.source.unwrap_or_else(|| detect_source(&p.body));
        let signals = parse(&p.body, source, config).with_context(|| p.name.clone())?;
        parsed.push((p, source, signals));
    }
    let start = start_time(parsed.iter().flat_map(|(_, _, s)| s.iter()));

    let tmp = tempfile::Builder::new()
        .prefix("triage-replay-")
        .tempdir()
        .context("cannot create a temporary directory for the replay store")?;
    let store_config = crate::config::StoreConfig {
        kind: StoreKind::Sqlite,
        path: tmp.path().join("replay.db"),
        // Thrown away at the end: no need to wait for fsync.
        synchronous: SqliteSync::Normal,
        ..config.store.clone()
    };
    let store = crate::store::open_store(&store_config, JournalMetrics::default()).await?;
    let (clusters, _) = clusters(config)?;
    let pipeline = Pipeline::new(
        store.work.clone(),
        Arc::new(Enricher::new(config, Arc::new(clusters))?),
        Arc::new(NoForge),
        crate::render::renderer(config)?,
        RepoRouter::from_config(config)?,
        Settings::from_config(config)?,
        PipelineMetrics::default(),
    );

    let mut now = start;
    let mut report = Vec::with_capacity(parsed.len());
    for (i, (payload, source, signals)) in parsed.iter().enumerate() {
        let delivery = NewDelivery::new(
            *source,
            now,
            "replay".into(),
            format!("replay-{}", i + 1),
            Bytes::from(payload.body.clone()),
            signals,
        )?;
        if let Appended::Duplicate { .. } = store.journal.append(delivery).await? {
            report.push((
                format!("{} (duplicate of an earlier file)", payload.name),
                *source,
                0,
            ));
            continue;
        }
        while pipeline.process_at(now).await? > 0 {}
        report.push((payload.name.clone(), *source, signals.len()));
        now = now
            .checked_add(SignedDuration::from_secs(1))
            .context("replay time overflows")?;
    }

    // Every debounce window elapses; each pending failure is judged against the snapshot.
    let rules = &config.lifecycle;
    let longest = [
        rules.debounce_escalate,
        rules.debounce_warn,
        rules.debounce_inform,
        rules.debounce_log,
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    let deadline = now
        .checked_add(SignedDuration::try_from(longest)? + SignedDuration::from_secs(1))
        .context("replay time overflows")?;
    for _ in 0..1000 {
        if pipeline.tick_at(deadline).await? == 0 {
            break;
        }
    }
    let outcome = outcome::read(store.work.as_ref(), &config.links).await?;
    store.journal.close().await?;
    Ok(Replayed {
        outcome,
        payloads: report,
    })
}

/// The newest time any signal carries, so output does not depend on when it runs.
fn start_time<'a>(signals: impl Iterator<Item = &'a Signal>) -> Timestamp {
    signals
        .flat_map(|s| [s.started_at, s.ended_at])
        .flatten()
        .max()
        .unwrap_or_else(Timestamp::now)
}

/// The forge of a replay: there is none. The outbox is read, never delivered.
struct NoForge;

fn untouched() -> ForgeError {
    ForgeError::Permanent {
        reason: "replay touches no forge".into(),
    }
}

#[async_trait]
impl Forge for NoForge {
    fn kind(&self) -> &'static str {
        "none"
    }
    async fn ensure_labels(&self, _: &RepoRef, _: &[LabelSpec]) -> Result<(), ForgeError> {
        Err(untouched())
    }
    async fn find_by_key(
        &self,
        _: &RepoRef,
        _: &str,
        _: &str,
    ) -> Result<Option<FoundIssue>, ForgeError> {
        Err(untouched())
    }
    async fn create(&self, _: &RepoRef, _: &IssueDraft) -> Result<IssueRef, ForgeError> {
        Err(untouched())
    }
    async fn comment(&self, _: &IssueRef, _: &str) -> Result<(), ForgeError> {
        Err(untouched())
    }
    async fn set_state(
        &self,
        _: &IssueRef,
        _: IssueState,
        _: Option<CloseReason>,
    ) -> Result<(), ForgeError> {
        Err(untouched())
    }
    async fn add_labels(&self, _: &IssueRef, _: &[String]) -> Result<(), ForgeError> {
        Err(untouched())
    }
    async fn remove_labels(&self, _: &IssueRef, _: &[String]) -> Result<(), ForgeError> {
        Err(untouched())
    }
    async fn list_work_orders(&self, _: &RepoRef) -> Result<Vec<FoundIssue>, ForgeError> {
        Err(untouched())
    }
}

/// The Markdown report: each work order as it would be filed, then what was not.
pub fn write_markdown(outcome: &Outcome, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let total = outcome.work_orders.len();
    for (i, f) in outcome.work_orders.iter().enumerate() {
        writeln!(
            out,
            "==> work order {} ({} of {total})",
            f.work_order.key,
            i + 1
        )?;
        if let Some(issue) = &f.filed.issue {
            writeln!(out, "title: {}", issue.title)?;
            writeln!(out, "labels: {}", issue.labels.join(", "))?;
            writeln!(out, "==> body ({} characters)", issue.body.chars().count())?;
            writeln!(out, "{}", issue.body.trim_end())?;
        }
        for (n, comment) in f.filed.comments.iter().enumerate() {
            writeln!(out, "==> comment {}", n + 1)?;
            writeln!(out, "{}", comment.trim_end())?;
        }
        for change in &f.filed.changes {
            writeln!(out, "==> {change}")?;
        }
        writeln!(out)?;
    }
    if !outcome.not_filed.is_empty() {
        writeln!(out, "==> not filed ({})", outcome.not_filed.len())?;
        for n in &outcome.not_filed {
            writeln!(out, "- {} [{}] {}: {}", n.key, n.decision, n.what, n.why)?;
        }
    }
    Ok(())
}

/// `triage replay`.
pub fn run(
    config: &ConfigArgs,
    files: &[PathBuf],
    snapshot: Option<PathBuf>,
    source: Option<SourceArg>,
    format: ReplayFormat,
) -> anyhow::Result<ExitCode> {
    let config = config.load(&Overrides {
        listen: None,
        snapshot,
    })?;
    let source = source.map(Source::from);
    let payloads = files
        .iter()
        .map(|f| read_payload(f, source))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let replayed = runtime.block_on(replay(&config, &payloads))?;

    let mut err = std::io::stderr().lock();
    for (name, source, count) in &replayed.payloads {
        writeln!(
            err,
            "triage replay: {name}: {} payload, {count} signal{}",
            source.as_str(),
            if *count == 1 { "" } else { "s" }
        )?;
    }
    writeln!(
        err,
        "triage replay: {} work order{} would be filed, {} signal{} not",
        replayed.outcome.work_orders.len(),
        if replayed.outcome.work_orders.len() == 1 {
            ""
        } else {
            "s"
        },
        replayed.outcome.not_filed.len(),
        if replayed.outcome.not_filed.len() == 1 {
            ""
        } else {
            "s"
        },
    )?;
    let mut out = std::io::stdout().lock();
    match format {
        ReplayFormat::Markdown => write_markdown(&replayed.outcome, &mut out)?,
        ReplayFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &replayed.outcome)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_payload(file: &Path, source: Option<Source>) -> anyhow::Result<Payload> {
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if body.is_empty() {
        bail!("{} is empty", file.display());
    }
    Ok(Payload {
        name: file.display().to_string(),
        body,
        source,
    })
}
