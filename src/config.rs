//! Configuration: one TOML file, `TRIAGE_*` environment overrides, secrets from files.
//!
//! Precedence, lowest first: built-in defaults → the config file → environment →
//! command-line flags. Every setting `section.key` can be set as `TRIAGE_SECTION_KEY`
//! (upper case, the dot becomes `_`; section names contain no `_`, so the first `_`
//! after the section ends it). Lists and tables use TOML inline syntax in the variable:
//! `TRIAGE_ALERTMANAGER_TOKENS='["old", "new"]'`. Every secret `x` also has `x_file`,
//! a path whose contents (trailing newline trimmed) are the secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Environment variables that are not settings.
const NON_SETTING_VARS: &[&str] = &["TRIAGE_CONFIG"];

/// Top-level sections, in the order `check-config` prints them. Section names must not
/// contain `_` (see the module docs); a test keeps this list equal to `Config`'s fields.
pub const SECTIONS: &[&str] = &[
    "server",
    "log",
    "store",
    "alertmanager",
    "argocd",
    "kubernetes",
    "clusters",
    "routing",
    "redaction",
    "lifecycle",
    "forge",
    "github",
    "gitea",
    "labels",
    "templates",
    "links",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub alertmanager: SourceConfig,
    pub argocd: SourceConfig,
    pub kubernetes: KubernetesConfig,
    pub clusters: Vec<ClusterConfig>,
    pub routing: RoutingConfig,
    pub redaction: RedactionConfig,
    pub lifecycle: LifecycleConfig,
    pub forge: ForgeConfig,
    pub github: GithubConfig,
    pub gitea: GiteaConfig,
    pub labels: LabelsConfig,
    pub templates: TemplatesConfig,
    pub links: LinksConfig,
}

// ---------------------------------------------------------------------------------------
// Secrets

/// A secret value: deserializes from a string, never prints itself (Debug and Serialize
/// both mask it), compared only through `ingest::auth`'s constant-time checks.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const MASK: &str = "********";

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Environment values are parsed as TOML-ish literals, so a numeric token arrives
        // as a number: accept it as its text.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
            Uint(u64),
            Float(f64),
            Bool(bool),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::Str(s) => s,
            Raw::Int(n) => n.to_string(),
            Raw::Uint(n) => n.to_string(),
            Raw::Float(n) => n.to_string(),
            Raw::Bool(b) => b.to_string(),
        }))
    }
}

/// Reads a secret file named by config key `key`; the error names the key and path,
/// never the contents.
pub fn read_secret_file(key: &str, path: &Path) -> anyhow::Result<Secret> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("{key}: cannot read secret file {}", path.display()))?;
    let value = raw.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        bail!("{key}: secret file {} is empty", path.display());
    }
    Ok(Secret(value.to_string()))
}

/// Resolves `value` / `value_file` into one optional secret; both set is an error.
pub(crate) fn resolve_secret(
    key: &str,
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(path) = file {
        if value.is_some() {
            bail!("{key} and {key}_file are both set; set only one");
        }
        *value = Some(read_secret_file(&format!("{key}_file"), path)?);
    }
    if value.as_ref().is_some_and(Secret::is_empty) {
        bail!("{key} is set but empty");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// [server]

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default: exposing Triage is a decision.
    pub listen: SocketAddr,
    /// Largest accepted webhook body. A full Argo CD Application with history fits in 4 MiB.
    pub body_limit: ByteSize,
    /// Upper bound for one request, body read included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// On SIGTERM, how long in-flight requests may take before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: ByteSize::mib(4),
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

// ---------------------------------------------------------------------------------------
// [log]

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `triage=debug,tower_http=info`, …
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

// ---------------------------------------------------------------------------------------
// [store]

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// SQLite `synchronous` in WAL mode. `full`: a committed delivery survives power loss.
/// `normal`: survives a crash of the process (kill -9), may lose the last commits on
/// power loss or an OS crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// SQLite database file (created if missing).
    pub path: PathBuf,
    pub synchronous: SqliteSync,
    /// PostgreSQL connection URL (secret: it usually holds a password).
    pub postgres_url: Option<Secret>,
    pub postgres_url_file: Option<PathBuf>,
    /// A delivery with the same source and body hash within this window is a duplicate.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Most deliveries committed in one transaction (group commit).
    pub batch_max: usize,
    /// PostgreSQL connection pool size per replica.
    pub postgres_max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sqlite,
            path: PathBuf::from("triage.db"),
            synchronous: SqliteSync::Full,
            postgres_url: None,
            postgres_url_file: None,
            dedup_window: Duration::from_secs(300),
            batch_max: 1024,
            postgres_max_connections: 10,
        }
    }
}

// ---------------------------------------------------------------------------------------
// [alertmanager], [argocd]: sender verification and limits per source

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// One bearer token (`Authorization: Bearer …`).
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// More accepted bearer tokens, for rotation (all are valid at once).
    pub tokens: Vec<Secret>,
    /// A file with one accepted token per line.
    pub tokens_file: Option<PathBuf>,
    /// HTTP basic auth user name; needs `basic_password`.
    pub basic_username: Option<String>,
    pub basic_password: Option<Secret>,
    pub basic_password_file: Option<PathBuf>,
    /// Shared secret for HMAC-SHA256 of the raw body, for senders that sign.
    pub hmac_secret: Option<Secret>,
    pub hmac_secret_file: Option<PathBuf>,
    /// Header carrying the hex HMAC.
    pub hmac_header: String,
    /// Prefix before the hex digest (`sha256=`); the header may also omit it.
    pub hmac_prefix: String,
    /// Accept deliveries with no credentials at all. Must be said explicitly.
    pub allow_unauthenticated: bool,
    /// Sustained deliveries per second per sender.
    pub rate_limit_per_second: u32,
    /// Burst allowance per sender.
    pub rate_limit_burst: u32,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            token: None,
            token_file: None,
            tokens: Vec::new(),
            tokens_file: None,
            basic_username: None,
            basic_password: None,
            basic_password_file: None,
            hmac_secret: None,
            hmac_secret_file: None,
            hmac_header: "X-Hub-Signature-256".into(),
            hmac_prefix: "sha256=".into(),
            allow_unauthenticated: false,
            rate_limit_per_second: 100,
            rate_limit_burst: 1000,
        }
    }
}

impl SourceConfig {
    /// All accepted bearer tokens (`token` and `tokens`), after secret files are read.
    pub fn bearer_tokens(&self) -> impl Iterator<Item = &Secret> {
        self.token.iter().chain(self.tokens.iter())
    }

    /// True when at least one way of verifying the sender is configured.
    pub fn has_credentials(&self) -> bool {
        self.bearer_tokens().next().is_some()
            || self.basic_password.is_some()
            || self.hmac_secret.is_some()
    }

    fn resolve(&mut self, section: &str) -> anyhow::Result<()> {
        resolve_secret(
            &format!("{section}.token"),
            &mut self.token,
            &self.token_file,
        )?;
        if let Some(path) = &self.tokens_file {
            let key = format!("{section}.tokens_file");
            let raw = std::fs::read_to_string(path)
                .with_context(|| format!("{key}: cannot read {}", path.display()))?;
            let before = self.tokens.len();
            self.tokens.extend(
                raw.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(Secret::new),
            );
            if self.tokens.len() == before {
                bail!("{key}: {} holds no token", path.display());
            }
        }
        if self.tokens.iter().any(Secret::is_empty) {
            bail!("{section}.tokens contains an empty token");
        }
        resolve_secret(
            &format!("{section}.basic_password"),
            &mut self.basic_password,
            &self.basic_password_file,
        )?;
        match (&self.basic_username, &self.basic_password) {
            (Some(_), None) => bail!(
                "{section}.basic_username is set without {section}.basic_password (or basic_password_file)"
            ),
            (None, Some(_)) => {
                bail!("{section}.basic_password is set without {section}.basic_username")
            }
            (Some(u), Some(_)) if u.is_empty() || u.contains(':') => {
                bail!("{section}.basic_username must be non-empty and contain no ':', got {u:?}")
            }
            _ => {}
        }
        resolve_secret(
            &format!("{section}.hmac_secret"),
            &mut self.hmac_secret,
            &self.hmac_secret_file,
        )?;
        if self.hmac_secret.is_some()
            && http::HeaderName::from_bytes(self.hmac_header.as_bytes()).is_err()
        {
            bail!(
                "{section}.hmac_header must be an HTTP header name, got {:?}",
                self.hmac_header
            );
        }
        if self.rate_limit_per_second == 0 || self.rate_limit_burst == 0 {
            bail!(
                "{section}.rate_limit_per_second and {section}.rate_limit_burst must be at least 1"
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// [kubernetes] and [[clusters]]: the cluster snapshot (issue 3 extends these)

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// A static snapshot file (multi-document YAML or a `kubectl get -o json` List) used
    /// instead of a live cluster for the default cluster.
    pub snapshot: Option<PathBuf>,
    /// Kubeconfig path; else `KUBECONFIG`, `~/.kube/config`, in-cluster, as kubectl does.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; else the current context.
    pub context: Option<String>,
    /// Name of the cluster signals map to when they name none (or `[[clusters]]` is empty).
    pub default_cluster: String,
    /// Alertmanager label naming the cluster an alert comes from.
    pub cluster_label: String,
    /// Answer `/readyz` before the snapshot has synced (signals are journaled either way).
    pub serve_before_sync: bool,
    /// Most Warning events kept per object (the most recent win).
    pub events_per_object: usize,
    /// Warning events last seen longer ago than this are dropped (live clusters).
    #[serde(with = "humantime_serde")]
    pub event_max_age: Duration,
    /// Objects per page when listing. Smaller pages bound the memory a (re)list needs
    /// at the cost of more requests; 100 keeps 10,000 pods well inside 64 MiB.
    pub list_page_size: u32,
    /// How long `status` and `doctor` wait for a live cluster's initial sync.
    #[serde(with = "humantime_serde")]
    pub sync_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            snapshot: None,
            kubeconfig: None,
            context: None,
            default_cluster: "default".into(),
            cluster_label: "cluster".into(),
            serve_before_sync: false,
            events_per_object: 10,
            event_max_age: Duration::from_secs(3600),
            list_page_size: 100,
            sync_timeout: Duration::from_secs(30),
        }
    }
}

/// One named cluster when Triage watches several.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub name: String,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub snapshot: Option<PathBuf>,
    /// Argo CD destination server URLs and names that mean this cluster.
    pub argocd_destinations: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// [routing], [redaction] (issue 3)

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Overrides of the default table: `"critical.red" = "escalate/P0"`,
    /// `"best-effort.yellow" = "observe"`.
    pub table: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Extra regular expressions whose matches are replaced before text leaves the cluster.
    pub patterns: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// [lifecycle] (issue 4)

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    #[serde(with = "humantime_serde")]
    pub debounce_escalate: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce_warn: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce_inform: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce_log: Duration,
    /// Least time between two comments on one work order.
    #[serde(with = "humantime_serde")]
    pub comment_min_interval: Duration,
    /// A failure returning within this window reopens the same issue.
    #[serde(with = "humantime_serde")]
    pub reopen_window: Duration,
    /// Close the issue after the workload stayed recovered this long.
    #[serde(with = "humantime_serde")]
    pub close_after: Duration,
    /// Close issues automatically at all (some teams want a human to close).
    pub auto_close: bool,
    /// How often open and recovered work orders are re-checked against the live
    /// snapshot (Argo CD never says "healthy again"; a recovery must be noticed).
    #[serde(with = "humantime_serde")]
    pub recheck_interval: Duration,
    /// Alert names whose condition the cluster snapshot observes itself (pod and
    /// workload health): at the deadline and on rechecks the snapshot decides them,
    /// so a crash loop that already healed opens nothing. Other alerts are left to
    /// Alertmanager's resolve unless the snapshot saw their workload unhealthy.
    pub snapshot_alerts: Vec<String>,
}

/// kube-prometheus / kubernetes-mixin alerts about pod and workload health.
pub const DEFAULT_SNAPSHOT_ALERTS: &[&str] = &[
    "KubePodCrashLooping",
    "KubePodNotReady",
    "KubeContainerWaiting",
    "KubeDeploymentReplicasMismatch",
    "KubeDeploymentRolloutStuck",
    "KubeDeploymentGenerationMismatch",
    "KubeStatefulSetReplicasMismatch",
    "KubeStatefulSetGenerationMismatch",
    "KubeStatefulSetUpdateNotRolledOut",
    "KubeDaemonSetRolloutStuck",
    "KubeDaemonSetNotScheduled",
    "KubeDaemonSetMisScheduled",
];

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            debounce_escalate: Duration::ZERO,
            debounce_warn: Duration::from_secs(60),
            debounce_inform: Duration::from_secs(120),
            debounce_log: Duration::from_secs(300),
            comment_min_interval: Duration::from_secs(600),
            reopen_window: Duration::from_secs(24 * 3600),
            close_after: Duration::from_secs(900),
            auto_close: true,
            recheck_interval: Duration::from_secs(60),
            snapshot_alerts: DEFAULT_SNAPSHOT_ALERTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// [forge], [github], [gitea], [labels], [templates], [links] (issues 4 and 5)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// GitHub when `github.repo` is set, Gitea when `gitea.url` is set, else the local
    /// directory; both set is an error. Loading replaces `auto` with what it chose.
    Auto,
    /// Markdown files in a local directory: the embedded default.
    Dir,
    Github,
    Gitea,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForgeConfig {
    pub kind: ForgeKind,
    /// Directory of the local forge.
    pub dir: PathBuf,
    /// Repository routes, first match wins; unmatched work orders go to the forge's
    /// default repository (`github.repo` / `gitea.repo`). See docs/forges.md.
    pub routes: Vec<RepoRouteConfig>,
    /// Send a workload's work orders to its `deployscope.dev/gitops-repo` when that names
    /// a repository on the configured forge (checked before `routes`). Off by default:
    /// it lets whoever writes the annotation choose where issues (and the agent) go.
    pub use_gitops_repo: bool,
    /// With `use_gitops_repo`, only repositories of these owners are used (empty: any).
    pub gitops_repo_owners: Vec<String>,
    /// Outbox: first wait after a transient failure; doubles per attempt up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Outbox: longest wait between attempts. Transient failures are retried until they
    /// succeed (a forge outage ends); only permanent ones are parked.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Outbox: how long a worker holds an operation; if it dies, another takes the
    /// operation over after this.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl Default for ForgeConfig {
    fn default() -> Self {
        ForgeConfig {
            kind: ForgeKind::Auto,
            dir: PathBuf::from("work-orders"),
            routes: Vec::new(),
            use_gitops_repo: false,
            gitops_repo_owners: Vec::new(),
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            lease: Duration::from_secs(300),
        }
    }
}

/// One `[[forge.routes]]` rule: every matcher given must match (`*` is a wildcard in
/// `cluster`, `namespace` and `owner`); at least one matcher is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoRouteConfig {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    /// `deployscope.dev/owner` of the workload.
    pub owner: Option<String>,
    /// `critical`, `standard` or `best-effort` (a missing or unknown tier is `standard`).
    pub tier: Option<String>,
    /// `alertmanager` or `argocd`.
    pub source: Option<String>,
    /// Target repository, `owner/name`, on the configured forge.
    pub repo: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubConfig {
    /// Personal access token (fine-grained: Issues read/write, Metadata read).
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// GitHub App id; authenticates as the App's installation on each repository.
    pub app_id: Option<u64>,
    /// The App's private key (PEM); prefer `private_key_file`.
    pub private_key: Option<Secret>,
    pub private_key_file: Option<PathBuf>,
    /// Default repository, `owner/name`.
    pub repo: Option<String>,
    /// API base; GitHub Enterprise Server is `https://HOST/api/v3/`.
    pub api_url: Option<String>,
    /// Mutation pacing (issues, comments, labels); reads are not paced. GitHub allows
    /// at most 80 content-creating requests a minute and 500 an hour.
    pub per_second: u32,
    pub per_minute: u32,
    pub per_hour: u32,
    /// Upper bound for one API request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Shared secret for `X-Hub-Signature-256` on `POST /v1/github`.
    pub webhook_secret: Option<Secret>,
    pub webhook_secret_file: Option<PathBuf>,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            token: None,
            token_file: None,
            app_id: None,
            private_key: None,
            private_key_file: None,
            repo: None,
            api_url: None,
            per_second: 1,
            per_minute: 80,
            per_hour: 500,
            request_timeout: Duration::from_secs(30),
            webhook_secret: None,
            webhook_secret_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GiteaConfig {
    /// Base URL of the Gitea/Forgejo server (`https://gitea.example.com`).
    pub url: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub repo: Option<String>,
    /// Upper bound for one API request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Shared secret for `X-Gitea-Signature` on `POST /v1/gitea`.
    pub webhook_secret: Option<Secret>,
    pub webhook_secret_file: Option<PathBuf>,
}

impl Default for GiteaConfig {
    fn default() -> Self {
        GiteaConfig {
            url: None,
            token: None,
            token_file: None,
            repo: None,
            request_timeout: Duration::from_secs(30),
            webhook_secret: None,
            webhook_secret_file: None,
        }
    }
}

/// The labels a work order's issue carries (see docs/templates.md, "Labels"). A prefix
/// set to `""` turns that kind of label off; the key label cannot be turned off (the
/// forges find a work order's issue by it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsConfig {
    /// The label that wakes the cluster-doctor agent; `""` never sets it.
    pub agent: String,
    /// Route actions whose issues carry the agent label. `log` is left out by default:
    /// a `log` work order is a record for the owner (a best-effort workload down, a
    /// standard one degraded), not something worth an agent run. When a work order's
    /// route escalates into one of these actions, the agent label is added then.
    pub agent_actions: Vec<crate::triage::route::Action>,
    /// Prefix of the short per-work-order key label.
    pub key_prefix: String,
    /// `source/alertmanager`, `source/argocd`.
    pub source_prefix: String,
    /// `priority/P0` … `priority/P3`.
    pub priority_prefix: String,
    /// `tier/critical`, `tier/standard`, `tier/best-effort`.
    pub tier_prefix: String,
    /// `action/escalate` … `action/log`.
    pub action_prefix: String,
    /// A human adds this label to an issue to stop Triage's comments on it (state and
    /// label changes go on); removing it lets them resume.
    pub mute: String,
}

impl Default for LabelsConfig {
    fn default() -> Self {
        use crate::triage::route::Action;
        LabelsConfig {
            agent: "cluster-doctor".into(),
            agent_actions: vec![Action::Escalate, Action::Warn, Action::Inform],
            key_prefix: "triage/".into(),
            source_prefix: "source/".into(),
            priority_prefix: "priority/".into(),
            tier_prefix: "tier/".into(),
            action_prefix: "action/".into(),
            mute: "triage/mute".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// A directory whose templates override the built-in ones, file by file.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Argo CD UI base URL, used when notifications carry no `context.argocdUrl`.
    pub argocd_url: Option<String>,
    /// Alertmanager base URL for silence links, used when alerts carry no `externalURL`.
    pub alertmanager_url: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Loading

/// Command-line values that override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub snapshot: Option<PathBuf>,
}

impl Config {
    /// Loads defaults → `file` → `TRIAGE_*` environment → `overrides`, reads secret
    /// files and validates. Every error names the setting and what was expected.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        Self::load_from(file, std::env::vars(), overrides)
    }

    /// `load` with an explicit environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("TRIAGE_") && !NON_SETTING_VARS.contains(&k.as_str()))
            .collect();
        for (key, _) in &env {
            if env_key_to_path(key).is_none() {
                bail!(
                    "environment variable {key} does not name a setting: expected TRIAGE_<SECTION>_<KEY> with SECTION one of {}",
                    SECTIONS.join(", ")
                );
            }
        }

        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!(
                    "config file {} does not exist or is not a file",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        for (var, value) in &env {
            if let Some(path) = env_key_to_path(var) {
                figment = figment.merge(EnvVar {
                    var: var.clone(),
                    path,
                    value: parse_env_value(value),
                });
            }
        }

        let mut config: Config = figment.extract().map_err(describe_figment_error)?;
        if let Some(listen) = overrides.listen {
            config.server.listen = listen;
        }
        if let Some(snapshot) = &overrides.snapshot {
            config.kubernetes.snapshot = Some(snapshot.clone());
        }
        config.resolve_and_validate()?;
        Ok(config)
    }

    fn resolve_and_validate(&mut self) -> anyhow::Result<()> {
        self.alertmanager.resolve("alertmanager")?;
        self.argocd.resolve("argocd")?;
        resolve_secret(
            "store.postgres_url",
            &mut self.store.postgres_url,
            &self.store.postgres_url_file,
        )?;
        if self.store.kind == StoreKind::Postgres && self.store.postgres_url.is_none() {
            bail!(
                "store.kind is \"postgres\" but store.postgres_url (or store.postgres_url_file, TRIAGE_STORE_POSTGRES_URL) is not set"
            );
        }
        if self.store.batch_max == 0 {
            bail!("store.batch_max must be at least 1");
        }
        if self.lifecycle.recheck_interval.is_zero() {
            bail!("lifecycle.recheck_interval must be greater than zero");
        }
        if self.forge.retry_initial.is_zero() || self.forge.retry_max < self.forge.retry_initial {
            bail!("forge.retry_initial must be greater than zero and at most forge.retry_max");
        }
        if self.forge.lease < Duration::from_secs(1) {
            bail!("forge.lease must be at least 1s (longer than one forge request)");
        }
        crate::triage::correlate::validate_key_prefix(&self.labels.key_prefix)
            .map_err(anyhow::Error::msg)?;
        crate::render::validate_labels(&self.labels)?;
        crate::render::templates::TemplateRenderer::from_config(&self.templates)?;
        if self.server.body_limit.as_u64() < 1024 {
            bail!(
                "server.body_limit must be at least 1 KiB, got {}",
                self.server.body_limit
            );
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            anyhow::anyhow!(
                "log.level must be a tracing filter such as \"info\" or \"triage=debug\": {e}"
            )
        })?;
        resolve_secret(
            "github.token",
            &mut self.github.token,
            &self.github.token_file,
        )?;
        resolve_secret(
            "github.webhook_secret",
            &mut self.github.webhook_secret,
            &self.github.webhook_secret_file,
        )?;
        resolve_secret("gitea.token", &mut self.gitea.token, &self.gitea.token_file)?;
        self.validate_clusters()?;
        crate::triage::route::RoutingTable::from_config(&self.routing)?;
        crate::triage::redact::Redactor::from_config(&self.redaction)?;
        resolve_secret(
            "gitea.webhook_secret",
            &mut self.gitea.webhook_secret,
            &self.gitea.webhook_secret_file,
        )?;
        crate::forge::settings::validate(self)?;
        Ok(())
    }

    /// `[kubernetes]` bounds and `[[clusters]]`: names unique and non-empty, the default
    /// cluster among them, each Argo CD destination claimed by one cluster only.
    fn validate_clusters(&self) -> anyhow::Result<()> {
        let k = &self.kubernetes;
        if k.default_cluster.trim().is_empty() {
            bail!("kubernetes.default_cluster must not be empty");
        }
        if k.cluster_label.trim().is_empty() {
            bail!("kubernetes.cluster_label must not be empty");
        }
        if k.events_per_object == 0 {
            bail!("kubernetes.events_per_object must be at least 1");
        }
        if k.event_max_age.is_zero() {
            bail!("kubernetes.event_max_age must be longer than zero");
        }
        if k.list_page_size == 0 {
            bail!("kubernetes.list_page_size must be at least 1");
        }
        let mut names: Vec<&str> = Vec::new();
        let mut destinations: BTreeMap<String, &str> = BTreeMap::new();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.trim().is_empty() {
                bail!("clusters[{i}].name must be set");
            }
            if names.contains(&c.name.as_str()) {
                bail!("clusters[{i}].name {:?} is used by another cluster", c.name);
            }
            names.push(&c.name);
            if c.snapshot.is_some() && (c.kubeconfig.is_some() || c.context.is_some()) {
                bail!(
                    "clusters[{i}] ({}): set either snapshot or kubeconfig/context, not both",
                    c.name
                );
            }
            for d in &c.argocd_destinations {
                let key = d.trim().trim_end_matches('/').to_ascii_lowercase();
                if key.is_empty() {
                    bail!("clusters[{i}].argocd_destinations contains an empty entry");
                }
                if let Some(other) = destinations.insert(key, &c.name) {
                    bail!(
                        "clusters[{i}].argocd_destinations: {d:?} is also claimed by cluster {other:?}"
                    );
                }
            }
        }
        if !self.clusters.is_empty() && !names.contains(&k.default_cluster.as_str()) {
            bail!(
                "kubernetes.default_cluster {:?} is not one of the [[clusters]] names ({})",
                k.default_cluster,
                names.join(", ")
            );
        }
        Ok(())
    }

    /// Things that are allowed but risky, said at start and by `check-config`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, source) in [
            ("alertmanager", &self.alertmanager),
            ("argocd", &self.argocd),
        ] {
            if source.allow_unauthenticated {
                out.push(format!(
                    "{name}.allow_unauthenticated is true: anyone who can reach {} can file work orders",
                    self.server.listen
                ));
            } else if !source.has_credentials() {
                out.push(format!(
                    "{name}: no credentials configured, so every delivery to /v1/{name} is refused with 401; \
                     set TRIAGE_{}_TOKEN (or {name}.token_file), or {name}.allow_unauthenticated = true",
                    name.to_ascii_uppercase()
                ));
            }
        }
        if self.store.kind == StoreKind::Sqlite && self.store.synchronous == SqliteSync::Normal {
            out.push(
                "store.synchronous = \"normal\": acknowledged deliveries survive a crash of Triage but may be lost on power loss".into(),
            );
        }
        out.extend(crate::forge::settings::warnings(self));
        out
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("cannot render the effective configuration")
    }
}

/// `TRIAGE_ALERTMANAGER_TOKEN_FILE` → `alertmanager.token_file`; `None` when the name
/// matches no section.
pub fn env_key_to_path(var: &str) -> Option<String> {
    let rest = var.strip_prefix("TRIAGE_")?.to_ascii_lowercase();
    SECTIONS.iter().find_map(|section| {
        if rest == *section {
            // A whole section or list as one inline TOML value: TRIAGE_CLUSTERS='[…]'.
            Some(section.to_string())
        } else {
            let key = rest.strip_prefix(section)?.strip_prefix('_')?;
            (!key.is_empty()).then(|| format!("{section}.{key}"))
        }
    })
}

/// One `TRIAGE_*` variable as a figment provider, so errors name the variable.
struct EnvVar {
    var: String,
    path: String,
    value: figment::value::Value,
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.var))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let dict = match figment::util::nest(&self.path, self.value.clone()) {
            figment::value::Value::Dict(_, dict) => dict,
            // `nest` always wraps a non-empty path in a dictionary.
            _ => figment::value::Dict::new(),
        };
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Parses an environment value: integers, booleans and inline TOML lists/tables become
/// typed values; everything else stays text, verbatim. (A plain TOML-literal parse would
/// turn the token `0123` into the number 123.)
fn parse_env_value(raw: &str) -> figment::value::Value {
    use figment::value::Value;
    let trimmed = raw.trim();
    let is_integer = {
        let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
    };
    let structured = trimmed.starts_with('[') || trimmed.starts_with('{');
    if is_integer || structured || trimmed == "true" || trimmed == "false" {
        let Ok(value) = trimmed.parse::<Value>();
        return value;
    }
    Value::from(raw.to_string())
}

/// figment's errors already name the key and the source (file or variable); make the
/// message one readable line per problem.
fn describe_figment_error(err: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let origin = match &e.metadata {
                Some(m) => match &m.source {
                    Some(source) => format!(" (in {source})"),
                    None if m.name.starts_with("environment") => format!(" (in {})", m.name),
                    None => String::new(),
                },
                None => String::new(),
            };
            format!("{key}{}{origin}", e.kind)
        })
        .collect();
    anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::load_from(file, env(pairs), &Overrides::default())
    }

    #[test]
    fn sections_list_matches_config_fields() {
        let value = toml::Value::try_from(Config::default()).unwrap();
        let mut fields: Vec<&str> = value
            .as_table()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Empty lists serialize too; every field is present.
        fields.sort_unstable();
        let mut sections = SECTIONS.to_vec();
        sections.sort_unstable();
        assert_eq!(fields, sections);
        assert!(SECTIONS.iter().all(|s| !s.contains('_')));
    }

    #[test]
    fn defaults_are_safe_and_local() {
        let c = load(None, &[]).unwrap();
        assert!(c.server.listen.ip().is_loopback());
        assert_eq!(c.store.kind, StoreKind::Sqlite);
        assert_eq!(c.store.path, PathBuf::from("triage.db"));
        assert_eq!(c.server.body_limit, ByteSize::mib(4));
        assert!(!c.alertmanager.has_credentials());
        assert!(!c.alertmanager.allow_unauthenticated);
    }

    #[test]
    fn env_key_mapping_follows_the_documented_rule() {
        assert_eq!(
            env_key_to_path("TRIAGE_ALERTMANAGER_TOKEN").as_deref(),
            Some("alertmanager.token")
        );
        assert_eq!(
            env_key_to_path("TRIAGE_SERVER_BODY_LIMIT").as_deref(),
            Some("server.body_limit")
        );
        assert_eq!(
            env_key_to_path("TRIAGE_GITHUB_API_URL").as_deref(),
            Some("github.api_url")
        );
        assert_eq!(
            env_key_to_path("TRIAGE_CLUSTERS").as_deref(),
            Some("clusters")
        );
        assert_eq!(env_key_to_path("TRIAGE_NOPE_X"), None);
        assert_eq!(env_key_to_path("TRIAGE_SERVER"), Some("server".into()));
    }

    #[test]
    fn env_overrides_file_and_numeric_tokens_stay_text() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("triage.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"0.0.0.0:9000\"\n[alertmanager]\ntoken = \"from-file\"\n",
        )
        .unwrap();
        let c = load(
            Some(&file),
            &[
                ("TRIAGE_ALERTMANAGER_TOKEN", "0123456"),
                ("TRIAGE_ARGOCD_TOKENS", "[\"a\", \"b\"]"),
                ("TRIAGE_SERVER_BODY_LIMIT", "1MiB"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.alertmanager.token.as_ref().unwrap().expose(), "0123456");
        let argo: Vec<&str> = c.argocd.bearer_tokens().map(Secret::expose).collect();
        assert_eq!(argo, ["a", "b"]);
        assert_eq!(c.server.body_limit, ByteSize::mib(1));
    }

    #[test]
    fn errors_name_the_offending_key() {
        let err = load(None, &[("TRIAGE_SERVER_LISTEN", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");

        let err = load(None, &[("TRIAGE_BOGUS", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRIAGE_BOGUS"), "{err}");

        let err = load(None, &[("TRIAGE_ALERTMANAGER_TOKN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tokn"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[store]\nkind = \"mysql\"\n").unwrap();
        let err = load(Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("store.kind") && err.contains("mysql"), "{err}");

        let err = load(None, &[("TRIAGE_STORE_KIND", "postgres")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.postgres_url"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_and_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret-from-file\n").unwrap();
        let c = load(
            None,
            &[("TRIAGE_ALERTMANAGER_TOKEN_FILE", token.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(
            c.alertmanager.token.as_ref().unwrap().expose(),
            "s3cret-from-file"
        );
        let printed = c.to_masked_toml().unwrap();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains(MASK));
        assert!(!format!("{c:?}").contains("s3cret"));

        let err = load(
            None,
            &[
                ("TRIAGE_ALERTMANAGER_TOKEN_FILE", token.to_str().unwrap()),
                ("TRIAGE_ALERTMANAGER_TOKEN", "x"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("both set"), "{err}");

        let err = load(None, &[("TRIAGE_ARGOCD_TOKEN_FILE", "/nonexistent/t")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("argocd.token_file"), "{err}");
    }
}
