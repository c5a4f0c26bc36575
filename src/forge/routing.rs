//! Repository routing: which repository on the configured forge a work order goes to.
//!
//! Pure: a function of the signal, its context and the configuration. Order, first hit
//! wins:
//!
//! 1. the workload's `deployscope.dev/gitops-repo`, when `forge.use_gitops_repo` is on
//!    and the URL names a repository on the configured forge's host (and, with
//!    `forge.gitops_repo_owners`, one of those owners). The annotation is the most
//!    specific fact about where a workload's code lives, so it wins over rules; it is
//!    off by default because whoever can write the annotation then chooses where
//!    issues (and the agent's attention) go;
//! 2. `[[forge.routes]]` in order: every matcher a rule gives must match;
//! 3. the forge's default repository (`github.repo`, `gitea.repo`, or [`LOCAL_REPO`]).

use std::fmt;

use regex::Regex;

use crate::config::{Config, ForgeKind, RepoRouteConfig};
use crate::forge::RepoRef;
use crate::signal::{Signal, Source};
use crate::triage::context::{Context, Tier};

/// The repository name work orders get on the local-directory forge, which has no
/// repositories of its own (rules may still send work orders to other names).
pub const LOCAL_REPO: (&str, &str) = ("local", "work-orders");

/// Where a work order goes and why (for logs and the work order's JSON block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoChoice {
    pub repo: RepoRef,
    pub reason: RepoReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoReason {
    /// The workload's `deployscope.dev/gitops-repo`.
    GitopsRepo,
    /// `[[forge.routes]]` entry number `n` (1-based, as a reader counts).
    Rule(usize),
    Default,
}

impl fmt::Display for RepoReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoReason::GitopsRepo => f.write_str("deployscope.dev/gitops-repo"),
            RepoReason::Rule(n) => write!(f, "forge.routes[{n}]"),
            RepoReason::Default => f.write_str("default repository"),
        }
    }
}

/// A compiled routing table for one forge.
#[derive(Debug, Clone)]
pub struct RepoRouter {
    default: RepoRef,
    rules: Vec<Rule>,
    gitops: Option<GitopsRouting>,
}

/// Which gitops-repo URLs count as "on the configured forge".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitopsRouting {
    /// Web host of the forge, lower case, no port (`github.com`, `gitea.example.com`).
    pub host: String,
    /// Path the forge is served under for https URLs (`/git` for
    /// `https://example.com/git/owner/name`), empty when at the root.
    pub path_prefix: String,
    /// Allowed repository owners (case-insensitive); empty allows any.
    pub owners: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    cluster: Option<Glob>,
    namespace: Option<Glob>,
    owner: Option<Glob>,
    tier: Option<Tier>,
    source: Option<Source>,
    repo: RepoRef,
}

/// A pattern where `*` matches any run of characters; everything else is literal.
#[derive(Debug, Clone)]
struct Glob(Regex);

impl Glob {
    fn new(pattern: &str) -> Result<Self, String> {
        let body: Vec<String> = pattern.split('*').map(regex::escape).collect();
        Regex::new(&format!("^{}$", body.join(".*")))
            .map(Glob)
            .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))
    }

    fn matches(&self, value: Option<&str>) -> bool {
        value.is_some_and(|v| self.0.is_match(v))
    }
}

impl RepoRouter {
    /// Compiles the table; errors name the rule (`forge.routes[2].tier`) and what was
    /// expected.
    pub fn new(
        default: RepoRef,
        routes: &[RepoRouteConfig],
        gitops: Option<GitopsRouting>,
    ) -> Result<Self, String> {
        let rules = routes
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(i + 1, r))
            .collect::<Result<_, _>>()?;
        Ok(RepoRouter {
            default,
            rules,
            gitops,
        })
    }

    /// The router for the configured forge. `config` must have been loaded (the forge
    /// kind resolved and the default repository validated).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let kind = crate::forge::settings::forge_kind(config)?;
        let (default, host) = match kind {
            ForgeKind::Github => (
                config.github.repo.as_deref(),
                Some(github_web_host(config.github.api_url.as_deref())?),
            ),
            ForgeKind::Gitea => (
                config.gitea.repo.as_deref(),
                config
                    .gitea
                    .url
                    .as_deref()
                    .map(gitea_web_host)
                    .transpose()?,
            ),
            ForgeKind::Dir | ForgeKind::Auto => (None, None),
        };
        let default = match (kind, default) {
            (_, Some(repo)) => RepoRef::parse(repo).map_err(|e| anyhow::anyhow!("{e}"))?,
            (ForgeKind::Dir | ForgeKind::Auto, None) => RepoRef {
                owner: LOCAL_REPO.0.into(),
                name: LOCAL_REPO.1.into(),
            },
            (_, None) => anyhow::bail!("no default repository configured for the {kind:?} forge"),
        };
        let gitops = match host {
            Some((host, path_prefix)) if config.forge.use_gitops_repo => Some(GitopsRouting {
                host,
                path_prefix,
                owners: config.forge.gitops_repo_owners.clone(),
            }),
            _ => None,
        };
        RepoRouter::new(default, &config.forge.routes, gitops).map_err(anyhow::Error::msg)
    }

    pub fn default_repo(&self) -> &RepoRef {
        &self.default
    }

    pub fn route(&self, signal: &Signal, context: &Context) -> RepoChoice {
        if let Some(repo) = self.gitops_repo(context) {
            return RepoChoice {
                repo,
                reason: RepoReason::GitopsRepo,
            };
        }
        let facts = Facts::of(signal, context);
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(&facts) {
                return RepoChoice {
                    repo: rule.repo.clone(),
                    reason: RepoReason::Rule(i + 1),
                };
            }
        }
        RepoChoice {
            repo: self.default.clone(),
            reason: RepoReason::Default,
        }
    }

    fn gitops_repo(&self, context: &Context) -> Option<RepoRef> {
        let gitops = self.gitops.as_ref()?;
        let url = parse_git_url(context.annotations.gitops_repo.as_deref()?)?;
        if !url.host.eq_ignore_ascii_case(&gitops.host) {
            return None;
        }
        let path = if url.web {
            url.path.strip_prefix(gitops.path_prefix.as_str())?
        } else {
            url.path.as_str()
        };
        let repo = repo_from_path(path)?;
        let allowed = gitops.owners.is_empty()
            || gitops
                .owners
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&repo.owner));
        allowed.then_some(repo)
    }
}

/// What rules match on, read once per signal.
struct Facts<'a> {
    cluster: &'a str,
    namespace: Option<&'a str>,
    owner: Option<&'a str>,
    tier: Tier,
    source: Source,
}

impl<'a> Facts<'a> {
    fn of(signal: &'a Signal, context: &'a Context) -> Self {
        // The workload's namespace when enrichment found one; else what the signal
        // names; for an Argo CD Application (whose own namespace is `argocd`) the
        // namespace it deploys to.
        let namespace = context
            .workload
            .as_ref()
            .map(|w| w.namespace.as_str())
            .or_else(|| signal.subject.namespace())
            .or_else(|| {
                signal
                    .argocd
                    .as_ref()
                    .and_then(|a| a.destination_namespace.as_deref())
            });
        Facts {
            cluster: &context.cluster.name,
            namespace,
            owner: context.annotations.owner.as_deref(),
            // As routing reads it: a missing or unknown tier is standard.
            tier: context.annotations.tier.unwrap_or(Tier::Standard),
            source: signal.source,
        }
    }
}

impl Rule {
    fn matches(&self, f: &Facts<'_>) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|g| g.matches(Some(f.cluster)))
            && self
                .namespace
                .as_ref()
                .is_none_or(|g| g.matches(f.namespace))
            && self.owner.as_ref().is_none_or(|g| g.matches(f.owner))
            && self.tier.is_none_or(|t| t == f.tier)
            && self.source.is_none_or(|s| s == f.source)
    }
}

fn compile_rule(n: usize, r: &RepoRouteConfig) -> Result<Rule, String> {
    let key = |field: &str| format!("forge.routes[{n}].{field}");
    let glob = |field: &str, v: &Option<String>| -> Result<Option<Glob>, String> {
        v.as_deref()
            .map(|p| {
                if p.is_empty() {
                    Err(format!("{} is empty", key(field)))
                } else {
                    Glob::new(p).map_err(|e| format!("{}: {e}", key(field)))
                }
            })
            .transpose()
    };
    let tier = r
        .tier
        .as_deref()
        .map(|t| match t {
            "critical" => Ok(Tier::Critical),
            "standard" => Ok(Tier::Standard),
            "best-effort" => Ok(Tier::BestEffort),
            other => Err(format!(
                "{} must be critical, standard or best-effort, got {other:?}",
                key("tier")
            )),
        })
        .transpose()?;
    let source = r
        .source
        .as_deref()
        .map(|s| {
            Source::ALL
                .into_iter()
                .find(|src| src.as_str() == s)
                .ok_or_else(|| {
                    format!(
                        "{} must be alertmanager or argocd, got {s:?}",
                        key("source")
                    )
                })
        })
        .transpose()?;
    let rule = Rule {
        cluster: glob("cluster", &r.cluster)?,
        namespace: glob("namespace", &r.namespace)?,
        owner: glob("owner", &r.owner)?,
        tier,
        source,
        repo: RepoRef::parse(&r.repo)
            .map_err(|_| format!("{} must be owner/name, got {:?}", key("repo"), r.repo))?,
    };
    if rule.cluster.is_none()
        && rule.namespace.is_none()
        && rule.owner.is_none()
        && rule.tier.is_none()
        && rule.source.is_none()
    {
        return Err(format!(
            "forge.routes[{n}] needs at least one of cluster, namespace, owner, tier or source \
             (a rule matching everything would hide the default repository)"
        ));
    }
    Ok(rule)
}

/// A git remote URL, reduced to what routing compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    /// Lower-case host, no user, no port.
    pub host: String,
    /// The path with a leading `/`, no trailing `/` or `.git`.
    pub path: String,
    /// An http(s) URL (its path may carry the forge's sub-path); ssh paths never do.
    pub web: bool,
}

/// Parses `https://host/o/r(.git)`, `ssh://[user@]host[:port]/o/r(.git)`,
/// `git://host/o/r` and scp-like `[user@]host:o/r(.git)`.
pub fn parse_git_url(raw: &str) -> Option<GitUrl> {
    let raw = raw.trim();
    let (host, path, web) = if let Some((scheme, _)) = raw.split_once("://") {
        let url = reqwest::Url::parse(raw).ok()?;
        let web = matches!(scheme, "http" | "https");
        if !web && !matches!(scheme, "ssh" | "git" | "git+ssh" | "ssh+git") {
            return None;
        }
        (url.host_str()?.to_string(), url.path().to_string(), web)
    } else {
        // scp-like: `user@host:path`; a `/` before the `:` would make it a local path.
        let (authority, path) = raw.split_once(':')?;
        if authority.contains('/') || path.starts_with("//") {
            return None;
        }
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (
            host.to_string(),
            format!("/{}", path.trim_start_matches('/')),
            false,
        )
    };
    if host.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    Some(GitUrl {
        host: host.to_ascii_lowercase(),
        path: path.to_string(),
        web,
    })
}

/// `/owner/name` → `owner/name`; anything deeper or shallower is not a repository.
fn repo_from_path(path: &str) -> Option<RepoRef> {
    RepoRef::parse(path.strip_prefix('/')?).ok()
}

/// The web host GitHub repository URLs use, from the API base: `api.github.com` →
/// `github.com`; Enterprise Server `https://HOST/api/v3/` → `HOST`; GHE.com
/// `api.SUB.ghe.com` → `SUB.ghe.com`. Returns (host, path prefix).
pub fn github_web_host(api_url: Option<&str>) -> anyhow::Result<(String, String)> {
    let Some(api_url) = api_url else {
        return Ok(("github.com".into(), String::new()));
    };
    let url = reqwest::Url::parse(api_url)
        .map_err(|e| anyhow::anyhow!("github.api_url is not a URL ({e}): {api_url:?}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("github.api_url has no host: {api_url:?}"))?
        .to_ascii_lowercase();
    let host = host
        .strip_prefix("api.")
        .map(str::to_string)
        .unwrap_or(host);
    Ok((host, String::new()))
}

/// The web host and sub-path of a Gitea server from `gitea.url`.
pub fn gitea_web_host(url: &str) -> anyhow::Result<(String, String)> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("gitea.url is not a URL ({e}): {url:?}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("gitea.url has no host: {url:?}"))?
        .to_ascii_lowercase();
    Ok((host, parsed.path().trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::signal::{ArgocdDetail, SignalKind, SignalStatus, Subject, WorkloadKind};
    use crate::triage::context::{ClusterInfo, SnapshotState, WorkloadRef};

    fn signal(source: Source, subject: Subject) -> Signal {
        Signal {
            source,
            kind: SignalKind::Alert,
            status: SignalStatus::Firing,
            subject,
            cluster: None,
            title: "KubePodCrashLooping".into(),
            message: None,
            started_at: None,
            ended_at: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            alert: None,
            argocd: None,
        }
    }

    fn pod(ns: &str) -> Signal {
        signal(
            Source::Alertmanager,
            Subject::Pod {
                namespace: ns.into(),
                name: "web-1".into(),
            },
        )
    }

    fn context(cluster: &str) -> Context {
        Context::unknown(ClusterInfo {
            name: cluster.into(),
            state: SnapshotState::Static,
        })
    }

    fn repo(s: &str) -> RepoRef {
        RepoRef::parse(s).unwrap()
    }

    fn route(r: &str, f: impl FnOnce(&mut RepoRouteConfig)) -> RepoRouteConfig {
        let mut c = RepoRouteConfig {
            repo: r.into(),
            ..Default::default()
        };
        f(&mut c);
        c
    }

    fn router(routes: Vec<RepoRouteConfig>, gitops: Option<GitopsRouting>) -> RepoRouter {
        RepoRouter::new(repo("acme/platform"), &routes, gitops).unwrap()
    }

    #[test]
    fn default_when_nothing_matches() {
        let r = router(
            vec![route("acme/payments", |c| {
                c.namespace = Some("payments".into())
            })],
            None,
        );
        let choice = r.route(&pod("shop"), &context("prod"));
        assert_eq!(choice.repo, repo("acme/platform"));
        assert_eq!(choice.reason, RepoReason::Default);
    }

    #[test]
    fn namespace_matcher_reads_workload_then_subject_then_argocd_destination() {
        let r = router(
            vec![route("acme/payments", |c| {
                c.namespace = Some("payments-*".into())
            })],
            None,
        );
        // From the subject.
        assert_eq!(
            r.route(&pod("payments-eu"), &context("prod")).reason,
            RepoReason::Rule(1)
        );
        // The workload found by enrichment wins over the subject.
        let mut ctx = context("prod");
        ctx.workload = Some(WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "shop".into(),
            name: "web".into(),
        });
        assert_eq!(
            r.route(&pod("payments-eu"), &ctx).reason,
            RepoReason::Default
        );
        // An Application subject routes by where it deploys.
        let mut app = signal(
            Source::Argocd,
            Subject::Application {
                namespace: Some("argocd".into()),
                name: "pay".into(),
            },
        );
        app.argocd = Some(ArgocdDetail {
            app: "pay".into(),
            destination_namespace: Some("payments-us".into()),
            ..Default::default()
        });
        assert_eq!(r.route(&app, &context("prod")).repo, repo("acme/payments"));
        // The glob is anchored: `payments-*` does not match `old-payments-x`.
        assert_eq!(
            r.route(&pod("old-payments-x"), &context("prod")).reason,
            RepoReason::Default
        );
    }

    #[test]
    fn cluster_owner_tier_and_source_matchers() {
        let r = router(
            vec![
                route("acme/staging", |c| c.cluster = Some("staging-*".into())),
                route("acme/team-db", |c| c.owner = Some("team-db".into())),
                route("acme/sre", |c| c.tier = Some("critical".into())),
                route("acme/deploys", |c| c.source = Some("argocd".into())),
            ],
            None,
        );
        assert_eq!(
            r.route(&pod("x"), &context("staging-eu")).repo,
            repo("acme/staging")
        );

        let mut owned = context("prod");
        owned.annotations.owner = Some("team-db".into());
        assert_eq!(r.route(&pod("x"), &owned).repo, repo("acme/team-db"));

        let mut critical = context("prod");
        critical.annotations.tier = Some(Tier::Critical);
        assert_eq!(r.route(&pod("x"), &critical).repo, repo("acme/sre"));

        let argo = signal(Source::Argocd, Subject::Other { namespace: None });
        assert_eq!(r.route(&argo, &context("prod")).repo, repo("acme/deploys"));
        assert_eq!(
            r.route(&pod("x"), &context("prod")).reason,
            RepoReason::Default
        );
    }

    #[test]
    fn a_missing_or_unknown_tier_matches_standard() {
        let r = router(
            vec![route("acme/std", |c| c.tier = Some("standard".into()))],
            None,
        );
        let mut ctx = context("prod");
        ctx.annotations.tier_raw = Some("gold".into());
        assert_eq!(r.route(&pod("x"), &ctx).repo, repo("acme/std"));
        ctx.annotations.tier = Some(Tier::BestEffort);
        assert_eq!(r.route(&pod("x"), &ctx).reason, RepoReason::Default);
    }

    #[test]
    fn all_matchers_of_a_rule_must_match_and_first_rule_wins() {
        let r = router(
            vec![
                route("acme/prod-payments", |c| {
                    c.cluster = Some("prod".into());
                    c.namespace = Some("payments".into());
                }),
                route("acme/payments", |c| c.namespace = Some("payments".into())),
                route("acme/never", |c| c.namespace = Some("payments".into())),
            ],
            None,
        );
        assert_eq!(
            r.route(&pod("payments"), &context("prod")),
            RepoChoice {
                repo: repo("acme/prod-payments"),
                reason: RepoReason::Rule(1)
            }
        );
        assert_eq!(
            r.route(&pod("payments"), &context("staging")),
            RepoChoice {
                repo: repo("acme/payments"),
                reason: RepoReason::Rule(2)
            }
        );
        // A rule naming the owner does not match a workload without one.
        let r = router(vec![route("acme/x", |c| c.owner = Some("*".into()))], None);
        assert_eq!(
            r.route(&pod("a"), &context("prod")).reason,
            RepoReason::Default
        );
    }

    fn github_gitops(owners: &[&str]) -> Option<GitopsRouting> {
        Some(GitopsRouting {
            host: "github.com".into(),
            path_prefix: String::new(),
            owners: owners.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn gitops_repo_wins_over_rules_when_on_the_same_forge() {
        let r = router(
            vec![route("acme/payments", |c| {
                c.namespace = Some("payments".into())
            })],
            github_gitops(&[]),
        );
        for url in [
            "https://github.com/acme/payments-gitops",
            "https://github.com/acme/payments-gitops.git",
            "https://GitHub.com/acme/payments-gitops/",
            "git@github.com:acme/payments-gitops.git",
            "ssh://git@github.com/acme/payments-gitops.git",
            "ssh://git@github.com:22/acme/payments-gitops",
        ] {
            let mut ctx = context("prod");
            ctx.annotations.gitops_repo = Some(url.into());
            assert_eq!(
                r.route(&pod("payments"), &ctx),
                RepoChoice {
                    repo: repo("acme/payments-gitops"),
                    reason: RepoReason::GitopsRepo
                },
                "{url}"
            );
        }
        for other in [
            "https://gitlab.com/acme/payments-gitops",
            "https://github.com/acme",
            "https://github.com/acme/payments-gitops/tree/main/deploy",
            "git@gitlab.com:acme/payments-gitops.git",
            "not a url",
            "",
        ] {
            let mut ctx = context("prod");
            ctx.annotations.gitops_repo = Some(other.into());
            assert_eq!(
                r.route(&pod("payments"), &ctx).reason,
                RepoReason::Rule(1),
                "{other}"
            );
        }
    }

    #[test]
    fn gitops_repo_is_ignored_when_off_and_limited_to_allowed_owners() {
        let mut ctx = context("prod");
        ctx.annotations.gitops_repo = Some("https://github.com/evil/elsewhere".into());
        assert_eq!(
            router(vec![], None).route(&pod("x"), &ctx).reason,
            RepoReason::Default
        );
        let r = router(vec![], github_gitops(&["Acme"]));
        assert_eq!(r.route(&pod("x"), &ctx).reason, RepoReason::Default);
        ctx.annotations.gitops_repo = Some("https://github.com/acme/ok".into());
        assert_eq!(r.route(&pod("x"), &ctx).repo, repo("acme/ok"));
    }

    #[test]
    fn gitea_sub_path_applies_to_web_urls_only() {
        let (host, prefix) = gitea_web_host("https://Code.Example.com/git/").unwrap();
        assert_eq!(
            (host.as_str(), prefix.as_str()),
            ("code.example.com", "/git")
        );
        let r = router(
            vec![],
            Some(GitopsRouting {
                host,
                path_prefix: prefix,
                owners: vec![],
            }),
        );
        let mut ctx = context("prod");
        ctx.annotations.gitops_repo = Some("https://code.example.com/git/ops/shop.git".into());
        assert_eq!(r.route(&pod("x"), &ctx).repo, repo("ops/shop"));
        ctx.annotations.gitops_repo = Some("git@code.example.com:ops/shop.git".into());
        assert_eq!(r.route(&pod("x"), &ctx).repo, repo("ops/shop"));
        // Without the sub-path the https URL points elsewhere on that host.
        ctx.annotations.gitops_repo = Some("https://code.example.com/ops/shop".into());
        assert_eq!(r.route(&pod("x"), &ctx).reason, RepoReason::Default);
    }

    #[test]
    fn github_web_host_from_api_url() {
        assert_eq!(github_web_host(None).unwrap().0, "github.com");
        assert_eq!(
            github_web_host(Some("https://api.github.com")).unwrap().0,
            "github.com"
        );
        assert_eq!(
            github_web_host(Some("https://ghe.corp.example/api/v3/"))
                .unwrap()
                .0,
            "ghe.corp.example"
        );
        assert_eq!(
            github_web_host(Some("https://api.acme.ghe.com/"))
                .unwrap()
                .0,
            "acme.ghe.com"
        );
        assert!(github_web_host(Some("not a url")).is_err());
    }

    #[test]
    fn git_url_parsing() {
        let p = |s| parse_git_url(s).map(|u| (u.host, u.path, u.web));
        assert_eq!(
            p("https://user:secret@github.com/a/b.git"),
            Some(("github.com".into(), "/a/b".into(), true))
        );
        assert_eq!(
            p("git@github.com:a/b.git"),
            Some(("github.com".into(), "/a/b".into(), false))
        );
        assert_eq!(
            p("github.com:a/b"),
            Some(("github.com".into(), "/a/b".into(), false))
        );
        assert_eq!(p("ftp://github.com/a/b"), None);
        assert_eq!(p("/local/path"), None);
        assert_eq!(p("./a:b"), None);
    }

    #[test]
    fn rule_errors_name_the_key() {
        let bad = |f: fn(&mut RepoRouteConfig)| {
            RepoRouter::new(
                repo("acme/platform"),
                &[
                    route("acme/ok", |c| c.namespace = Some("a".into())),
                    route("acme/x", f),
                ],
                None,
            )
            .unwrap_err()
        };
        let e = bad(|c| c.tier = Some("gold".into()));
        assert!(
            e.contains("forge.routes[2].tier") && e.contains("best-effort"),
            "{e}"
        );
        let e = bad(|c| c.source = Some("prometheus".into()));
        assert!(e.contains("forge.routes[2].source"), "{e}");
        let e = bad(|c| {
            c.namespace = Some("a".into());
            c.repo = "nope".into();
        });
        assert!(e.contains("forge.routes[2].repo must be owner/name"), "{e}");
        let e = bad(|_| {});
        assert!(e.contains("forge.routes[2] needs at least one of"), "{e}");
        let e = bad(|c| c.cluster = Some(String::new()));
        assert!(e.contains("forge.routes[2].cluster is empty"), "{e}");
    }
}
