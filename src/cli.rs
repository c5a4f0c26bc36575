//! The `triage` command line. Parsing only; each command lives in `commands::*`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "triage",
    version,
    about = "Turns Argo CD and Alertmanager failures into enriched, deduplicated work orders (GitHub/Gitea issues) for the cluster-doctor agent.",
    long_about = None,
    after_help = "Every setting can also come from the environment: section.key is TRIAGE_SECTION_KEY \
(e.g. TRIAGE_ALERTMANAGER_TOKEN, TRIAGE_SERVER_LISTEN). See README.md, \"Configuration\"."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (TOML). Without one, Triage runs on safe local defaults plus TRIAGE_* variables.
    #[arg(long, short = 'c', env = "TRIAGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn load(&self, overrides: &Overrides) -> anyhow::Result<Config> {
        Config::load(self.config.as_deref(), overrides)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReplayFormat {
    #[default]
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Alertmanager,
    Argocd,
}

impl From<SourceArg> for crate::signal::Source {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Alertmanager => crate::signal::Source::Alertmanager,
            SourceArg::Argocd => crate::signal::Source::Argocd,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook receiver and the work-order pipeline.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on (overrides server.listen / TRIAGE_SERVER_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Use a static cluster snapshot file instead of a live cluster.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
    },
    /// Validate the configuration and print the effective settings, secrets masked.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Every visible workload with health, owner, tier, integration fields and route.
    /// Exit code: 0 all green, 2 something not green, 1 error.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Use a static cluster snapshot file instead of a live cluster.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
        /// Show only workloads that are not green.
        #[arg(long)]
        unhealthy: bool,
    },
    /// Check API access, RBAC, annotation coverage and agent readiness.
    Doctor {
        #[command(flatten)]
        config: ConfigArgs,
        /// Use a static cluster snapshot file instead of a live cluster.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Rebuild the key → issue mapping from the forge (after a lost database).
    Reconcile {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run the whole pipeline on the embedded example cluster and payloads, with the
    /// local-directory forge; prints what it opened, commented and suppressed.
    Demo {
        /// Where to write the work-order files (default: a new temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Replay saved payloads through the whole pipeline without touching any forge and
    /// print the work orders exactly as they would be filed.
    Replay {
        #[command(flatten)]
        config: ConfigArgs,
        /// Payload files, replayed in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Static cluster snapshot to enrich from (default: the embedded example cluster).
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        /// Payload source; detected from the content when omitted.
        #[arg(long, value_enum)]
        source: Option<SourceArg>,
        #[arg(long, value_enum, default_value_t)]
        format: ReplayFormat,
    },
    /// Render the issue templates against a payload, for template authors.
    Render {
        #[command(flatten)]
        config: ConfigArgs,
        /// The payload to render.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Static cluster snapshot to enrich from (default: the embedded example cluster).
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        /// Payload source; detected from the content when omitted.
        #[arg(long, value_enum)]
        source: Option<SourceArg>,
        /// Template directory overriding the built-in templates.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// Also render each comment kind (repeat, relapse, route change, recovered,
        /// reopened, closed) for every work order.
        #[arg(long)]
        comments: bool,
    },
}
