//! `triage demo`: the whole pipeline on a laptop, no cluster and no token.
//!
//! A real `serve` (the same [`Server`] as production) starts on an ephemeral loopback
//! port over a new directory: SQLite journal, the local-directory forge, and the
//! example cluster (`examples/cluster.yaml`) as its static snapshot. The payloads in
//! `examples/payloads/` — the real Alertmanager capture, an Argo CD notification
//! rendered by Go's text/template from the shipped `argocd/` templates, and alerts
//! derived from the capture for the other workloads — are posted over HTTP with a
//! bearer token made up for the run. When the pipeline has settled, the demo prints
//! what it opened, commented and left alone, and where the files are.
//!
//! The one change from the defaults: the debounce windows are seconds instead of
//! minutes, so the run takes seconds. The demo says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jiff::Timestamp;

use super::outcome::{self, Outcome};
use super::render::EXAMPLE_CLUSTER;
use super::serve::Server;
use crate::config::{Config, ForgeKind, Secret};
use crate::signal::Source;
use crate::triage::lifecycle::Phase;

/// The payloads of `examples/payloads/`: (file name, contents).
pub const PAYLOADS: &[(&str, &str)] = &[
    (
        "01-alertmanager-store-front-crashlooping.json",
        include_str!("../../examples/payloads/01-alertmanager-store-front-crashlooping.json"),
    ),
    (
        "02-alertmanager-orders-db-replicas-mismatch.json",
        include_str!("../../examples/payloads/02-alertmanager-orders-db-replicas-mismatch.json"),
    ),
    (
        "03-alertmanager-order-service-replicas-mismatch.json",
        include_str!(
            "../../examples/payloads/03-alertmanager-order-service-replicas-mismatch.json"
        ),
    ),
    (
        "04-alertmanager-order-service-resolved.json",
        include_str!("../../examples/payloads/04-alertmanager-order-service-resolved.json"),
    ),
    (
        "05-alertmanager-canary-crashlooping.json",
        include_str!("../../examples/payloads/05-alertmanager-canary-crashlooping.json"),
    ),
    (
        "06-alertmanager-nightly-report-job-failed.json",
        include_str!("../../examples/payloads/06-alertmanager-nightly-report-job-failed.json"),
    ),
    (
        "07-argocd-store-front-degraded.json",
        include_str!("../../examples/payloads/07-argocd-store-front-degraded.json"),
    ),
];

/// What is sent, by index into [`PAYLOADS`], in two rounds: the first has a failure
/// of every kind; the second comes once the first has settled (its debounce windows
/// over, its issues filed): Argo CD's notification for an app whose Deployment already
/// has an open work order, and Alertmanager repeating the first notification word for
/// word, as it does every `repeat_interval` and as an HA pair does at once.
pub const ROUNDS: [&[usize]; 2] = [&[0, 1, 2, 3, 4, 5], &[6, 0]];

/// Debounce windows of the demo (escalate, warn, inform, log): the defaults are
/// 0 s, 60 s, 120 s and 300 s.
pub const DEBOUNCE: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(3),
];

/// Least time between two comments on one work order in the demo (default 10 min).
pub const COMMENT_MIN_INTERVAL: Duration = Duration::from_secs(2);

/// How long the demo waits for the pipeline to settle before it gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What one POST got back.
pub struct Sent {
    /// 1 or 2: see [`ROUNDS`].
    pub round: usize,
    pub file: &'static str,
    pub path: &'static str,
    pub status: u16,
    pub answer: String,
}

pub struct DemoRun {
    pub dir: PathBuf,
    pub sent: Vec<Sent>,
    pub outcome: Outcome,
}

/// The configuration the demo serves with, over `dir`.
pub fn config(dir: &Path, token: &str) -> Config {
    let mut c = Config::default();
    c.server.listen = ([127, 0, 0, 1], 0).into();
    c.store.path = dir.join("triage.db");
    c.forge.kind = ForgeKind::Dir;
    c.forge.dir = dir.join("work-orders");
    c.kubernetes.snapshot = Some(dir.join("cluster.yaml"));
    c.alertmanager.token = Some(Secret::new(token));
    c.argocd.token = Some(Secret::new(token));
    c.links.argocd_url = Some("https://argocd.example.com".into());
    c.links.alertmanager_url = Some("http://alertmanager.example.com:9093".into());
    [
        c.lifecycle.debounce_escalate,
        c.lifecycle.debounce_warn,
        c.lifecycle.debounce_inform,
        c.lifecycle.debounce_log,
    ] = DEBOUNCE;
    c.lifecycle.comment_min_interval = COMMENT_MIN_INTERVAL;
    c
}

/// Runs the demo in `dir` (created if missing; must not hold an earlier run).
pub async fn run_in(dir: &Path) -> anyhow::Result<DemoRun> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if dir.join("triage.db").exists() || dir.join("work-orders").exists() {
        bail!(
            "{} already holds a Triage run (triage.db, work-orders/): pass a new --dir",
            dir.display()
        );
    }
    std::fs::write(dir.join("cluster.yaml"), EXAMPLE_CLUSTER)
        .with_context(|| format!("cannot write {}", dir.join("cluster.yaml").display()))?;
    let token = format!("demo-{:032x}", rand::random::<u128>());
    let config = config(dir, &token);
    let links = config.links.clone();
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .context("cannot listen on 127.0.0.1")?;
    let server = Server::start(config, listener).await?;
    let base = format!("http://{}", server.addr());

    crate::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut sent = Vec::new();
    let mut settled = Ok(());
    for (n, round) in ROUNDS.iter().enumerate() {
        for &i in *round {
            let (file, body) = PAYLOADS[i];
            let mut answer = post(&http, &base, &token, file, body).await?;
            answer.round = n + 1;
            sent.push(answer);
        }
        settled = settle(&server).await;
        if settled.is_err() {
            break;
        }
    }
    let outcome = outcome::read(server.work_store().as_ref(), &links).await;
    server.stop().await?;
    settled?;
    Ok(DemoRun {
        dir: dir.to_path_buf(),
        sent,
        outcome: outcome?,
    })
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    file: &'static str,
    body: &'static str,
) -> anyhow::Result<Sent> {
    let path = match super::render::detect_source(body.as_bytes()) {
        Source::Alertmanager => "/v1/alertmanager",
        _ => "/v1/argocd",
    };
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {path} ({file})"))?;
    let status = response.status().as_u16();
    let answer = response.text().await.unwrap_or_default();
    Ok(Sent {
        round: 0,
        file,
        path,
        status,
        answer,
    })
}

/// Waits until every delivery is processed, no failure is debouncing and the outbox
/// is empty.
async fn settle(server: &Server) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let stats = server.work_store().work_stats(Timestamp::now()).await?;
        let pending = stats
            .work_orders_by_phase
            .get(&Phase::Pending)
            .copied()
            .unwrap_or(0);
        if stats.unprocessed_deliveries == 0 && pending == 0 && stats.outbox_pending == 0 {
            return Ok(());
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!(
                "the pipeline did not settle within {SETTLE_TIMEOUT:?}: {} deliveries unprocessed, \
                 {pending} work orders debouncing, {} forge operations pending, {} parked",
                stats.unprocessed_deliveries,
                stats.outbox_pending,
                stats.outbox_parked
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The demo's report, for people.
pub fn write_report(run: &DemoRun, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let [e, w, i, l] = DEBOUNCE.map(|d| d.as_secs());
    writeln!(
        out,
        "Triage demo: a real `triage serve` on loopback, the example cluster as its snapshot, \
         the local-directory forge.\n\
         Debounce windows shortened for the demo: escalate {e} s, warn {w} s, inform {i} s, log {l} s \
         (defaults 0/60/120/300 s).\n"
    )?;
    writeln!(out, "Sent over HTTP:")?;
    for (i, s) in run.sent.iter().enumerate() {
        if i > 0 && run.sent[i - 1].round != s.round {
            writeln!(
                out,
                "  … once the first round settled (debounce windows over, issues filed):"
            )?;
        }
        writeln!(
            out,
            "  {:<54} POST {:<17} → {} {}",
            s.file,
            s.path,
            s.status,
            s.answer.trim()
        )?;
    }
    let o = &run.outcome;
    writeln!(out, "\nOpened ({}):", o.work_orders.len())?;
    for f in &o.work_orders {
        let action = f
            .work_order
            .route
            .as_ref()
            .map_or("", |r| r.action.as_str());
        let title = f.filed.issue.as_ref().map_or("", |d| d.title.as_str());
        let file = outcome::issue(f).map_or("(not delivered)", |i| i.url.as_str());
        writeln!(out, "  {action:<8} {title}\n           {file}")?;
    }
    writeln!(out, "\nCommented ({}):", o.commented().count())?;
    for f in o.commented() {
        let number = outcome::issue(f).map_or(String::new(), |i| format!("#{} ", i.number));
        writeln!(
            out,
            "  {number}{}: {} comment{}",
            f.work_order.key,
            f.filed.comments.len(),
            if f.filed.comments.len() == 1 { "" } else { "s" }
        )?;
    }
    writeln!(out, "\nNot filed ({}):", o.not_filed.len())?;
    for n in &o.not_filed {
        writeln!(out, "  {:<8} {}\n           {}", n.decision, n.what, n.why)?;
    }
    let forge = run.dir.join("work-orders");
    writeln!(
        out,
        "\nFiles:\n  {}  one Markdown file per work order, and INDEX.md\n  {}  the journal, work orders, timeline and outbox\n\n\
         Next: read {}, then try\n  triage status --snapshot {}\n  triage replay examples/payloads/*.json",
        forge.display(),
        run.dir.join("triage.db").display(),
        forge.join("INDEX.md").display(),
        run.dir.join("cluster.yaml").display(),
    )?;
    Ok(())
}

/// `triage demo`.
pub fn run(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("triage-demo-")
            .tempdir()
            .context("cannot create a directory for the demo")?
            .keep(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let run = runtime.block_on(run_in(&dir))?;
    write_report(&run, &mut std::io::stdout().lock())?;
    let refused: Vec<_> = run.sent.iter().filter(|s| s.status >= 300).collect();
    if !refused.is_empty() {
        bail!(
            "{} payload(s) were refused: {}",
            refused.len(),
            refused
                .iter()
                .map(|s| format!("{} ({})", s.file, s.status))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
