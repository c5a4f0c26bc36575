//! Forge configuration checks: which forge, and whether its settings make sense.
//!
//! Called by `Config::load` after secrets are read; every error names the key and what
//! was expected, and says how to fix it.

use anyhow::{Context as _, bail};

use crate::config::{Config, ForgeKind, resolve_secret};
use crate::forge::RepoRef;
use crate::forge::routing::{RepoRouter, gitea_web_host, github_web_host};

/// The forge in use. `auto` picks GitHub when `github.repo` is set, Gitea when
/// `gitea.url` is set, else the local directory; both set is an error.
pub fn forge_kind(config: &Config) -> anyhow::Result<ForgeKind> {
    match config.forge.kind {
        ForgeKind::Auto => match (config.github.repo.is_some(), config.gitea.url.is_some()) {
            (true, true) => bail!(
                "forge.kind is auto but both github.repo and gitea.url are set; \
                 set forge.kind (TRIAGE_FORGE_KIND) to \"github\" or \"gitea\""
            ),
            (true, false) => Ok(ForgeKind::Github),
            (false, true) => Ok(ForgeKind::Gitea),
            (false, false) => Ok(ForgeKind::Dir),
        },
        kind => Ok(kind),
    }
}

/// Resolves the forge secrets and kind in place and validates the forge settings.
pub(crate) fn validate(config: &mut Config) -> anyhow::Result<()> {
    resolve_secret(
        "github.private_key",
        &mut config.github.private_key,
        &config.github.private_key_file,
    )?;
    validate_github(config)?;
    validate_gitea(config)?;
    let kind = forge_kind(config)?;
    config.forge.kind = kind;
    match kind {
        ForgeKind::Github => {
            if config.github.repo.is_none() {
                bail!(
                    "forge.kind is github but github.repo (TRIAGE_GITHUB_REPO) is not set: \
                     the default repository, owner/name"
                );
            }
            if config.github.token.is_none() && config.github.app_id.is_none() {
                bail!(
                    "the github forge needs credentials: set github.token (TRIAGE_GITHUB_TOKEN, \
                     or github.token_file), or github.app_id with github.private_key_file"
                );
            }
        }
        ForgeKind::Gitea => {
            for (key, missing) in [
                ("gitea.url (TRIAGE_GITEA_URL)", config.gitea.url.is_none()),
                (
                    "gitea.repo (TRIAGE_GITEA_REPO)",
                    config.gitea.repo.is_none(),
                ),
                (
                    "gitea.token (TRIAGE_GITEA_TOKEN, or gitea.token_file)",
                    config.gitea.token.is_none(),
                ),
            ] {
                if missing {
                    bail!("forge.kind is gitea but {key} is not set");
                }
            }
        }
        ForgeKind::Dir | ForgeKind::Auto => {}
    }
    for (i, owner) in config.forge.gitops_repo_owners.iter().enumerate() {
        if owner.is_empty() || owner.contains('/') {
            bail!(
                "forge.gitops_repo_owners[{}] must be an owner name without '/', got {owner:?}",
                i + 1
            );
        }
    }
    RepoRouter::from_config(config)?;
    Ok(())
}

/// Allowed but risky forge settings, for `Config::warnings`.
pub(crate) fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let kind = forge_kind(config).unwrap_or(config.forge.kind);
    if config.forge.use_gitops_repo && config.forge.gitops_repo_owners.is_empty() {
        out.push(
            "forge.use_gitops_repo is on without forge.gitops_repo_owners: whoever can set a \
             workload's deployscope.dev/gitops-repo can send its work orders to any repository \
             the forge credentials can write to"
                .into(),
        );
    }
    if kind == ForgeKind::Github && config.github.api_url.is_none() {
        let gh = &config.github;
        for (key, value, limit, window) in [
            ("github.per_minute", gh.per_minute, 80, "a minute"),
            ("github.per_hour", gh.per_hour, 500, "an hour"),
        ] {
            if value > limit {
                out.push(format!(
                    "{key} = {value} exceeds GitHub's limit of {limit} content-creating requests \
                     {window}; expect secondary rate limits (403) and delayed work orders"
                ));
            }
        }
    }
    if matches!(kind, ForgeKind::Github | ForgeKind::Gitea) {
        let (name, secret) = match kind {
            ForgeKind::Github => ("github", &config.github.webhook_secret),
            _ => ("gitea", &config.gitea.webhook_secret),
        };
        if secret.is_none() {
            out.push(format!(
                "{name}.webhook_secret is not set: issue events from {name} (a human closing or \
                 muting a work order) are refused on POST /v1/{name}"
            ));
        }
    }
    out
}

fn validate_repo(key: &str, value: &Option<String>) -> anyhow::Result<()> {
    if let Some(repo) = value {
        RepoRef::parse(repo)
            .map_err(|_| anyhow::anyhow!("{key} must be owner/name, got {repo:?}"))?;
    }
    Ok(())
}

fn validate_http_url(key: &str, value: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| anyhow::anyhow!("{key} must be an http(s) URL, got {value:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{key} must be an http(s) URL with a host, got {value:?}");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("{key} must not carry credentials; use the token settings");
    }
    Ok(())
}

fn validate_github(config: &Config) -> anyhow::Result<()> {
    let gh = &config.github;
    validate_repo("github.repo", &gh.repo)?;
    if let Some(url) = &gh.api_url {
        validate_http_url("github.api_url", url)?;
        github_web_host(Some(url))?;
    }
    match (gh.app_id, &gh.private_key) {
        (Some(_), None) => bail!(
            "github.app_id needs github.private_key_file (or github.private_key): the App's PEM private key"
        ),
        (None, Some(_)) => {
            bail!("github.private_key is set but github.app_id is not: set the App's numeric id")
        }
        (Some(_), Some(key)) => {
            if gh.token.is_some() {
                bail!("github.token and github.app_id are both set; use either a token or the App");
            }
            octocrab::EncodingKey::from_rsa_pem(key.expose().as_bytes()).context(
                "github.private_key (or github.private_key_file) is not an RSA private key in PEM format",
            )?;
        }
        (None, None) => {}
    }
    for (key, value) in [
        ("github.per_second", gh.per_second),
        ("github.per_minute", gh.per_minute),
        ("github.per_hour", gh.per_hour),
    ] {
        if value == 0 {
            bail!("{key} must be at least 1 (mutations per period)");
        }
    }
    if gh.request_timeout.is_zero() {
        bail!("github.request_timeout must be more than 0s");
    }
    Ok(())
}

fn validate_gitea(config: &Config) -> anyhow::Result<()> {
    let gitea = &config.gitea;
    validate_repo("gitea.repo", &gitea.repo)?;
    if let Some(url) = &gitea.url {
        validate_http_url("gitea.url", url)?;
        gitea_web_host(url)?;
    }
    if gitea.request_timeout.is_zero() {
        bail!("gitea.request_timeout must be more than 0s");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Overrides;

    fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load_from(file, env, &Overrides::default())
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        format!("{:#}", load(None, pairs).unwrap_err())
    }

    #[test]
    fn forge_is_chosen_automatically_from_the_environment_alone() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.forge.kind, ForgeKind::Dir);

        let c = load(
            None,
            &[
                ("TRIAGE_GITHUB_TOKEN", "ghp_0123456789"),
                ("TRIAGE_GITHUB_REPO", "acme/platform"),
                ("TRIAGE_GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            ],
        )
        .unwrap();
        assert_eq!(c.forge.kind, ForgeKind::Github);
        assert_eq!(c.github.token.as_ref().unwrap().expose(), "ghp_0123456789");
        assert_eq!(c.github.repo.as_deref(), Some("acme/platform"));
        assert_eq!(
            c.github.api_url.as_deref(),
            Some("https://ghe.example.com/api/v3/")
        );

        let c = load(
            None,
            &[
                ("TRIAGE_GITEA_URL", "https://gitea.example.com"),
                ("TRIAGE_GITEA_TOKEN", "0123abcd"),
                ("TRIAGE_GITEA_REPO", "ops/cluster"),
            ],
        )
        .unwrap();
        assert_eq!(c.forge.kind, ForgeKind::Gitea);
        assert_eq!(c.gitea.token.as_ref().unwrap().expose(), "0123abcd");

        let e = err(&[
            ("TRIAGE_GITHUB_TOKEN", "t"),
            ("TRIAGE_GITHUB_REPO", "acme/platform"),
            ("TRIAGE_GITEA_URL", "https://gitea.example.com"),
        ]);
        assert!(e.contains("set forge.kind"), "{e}");

        // An explicit kind settles it.
        let c = load(
            None,
            &[
                ("TRIAGE_FORGE_KIND", "dir"),
                ("TRIAGE_GITHUB_REPO", "acme/platform"),
                ("TRIAGE_GITEA_URL", "https://gitea.example.com"),
            ],
        )
        .unwrap();
        assert_eq!(c.forge.kind, ForgeKind::Dir);
    }

    #[test]
    fn pacing_and_routes_from_the_environment() {
        let c = load(
            None,
            &[
                ("TRIAGE_GITHUB_TOKEN", "t"),
                ("TRIAGE_GITHUB_REPO", "acme/platform"),
                ("TRIAGE_GITHUB_PER_MINUTE", "40"),
                (
                    "TRIAGE_FORGE_ROUTES",
                    r#"[{namespace = "payments", repo = "acme/payments-ops"}]"#,
                ),
                ("TRIAGE_FORGE_USE_GITOPS_REPO", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.github.per_minute, 40);
        assert_eq!(c.github.per_second, 1);
        assert_eq!(c.github.per_hour, 500);
        assert_eq!(c.forge.routes.len(), 1);
        assert_eq!(c.forge.routes[0].repo, "acme/payments-ops");
        assert!(c.forge.use_gitops_repo);
    }

    #[test]
    fn errors_name_the_key_and_what_is_expected() {
        let e = err(&[
            ("TRIAGE_GITHUB_REPO", "platform"),
            ("TRIAGE_GITHUB_TOKEN", "t"),
        ]);
        assert!(e.contains("github.repo must be owner/name"), "{e}");

        let e = err(&[("TRIAGE_GITHUB_REPO", "acme/platform")]);
        assert!(e.contains("TRIAGE_GITHUB_TOKEN"), "{e}");

        let e = err(&[("TRIAGE_GITHUB_APP_ID", "12345")]);
        assert!(
            e.contains("github.app_id needs github.private_key_file"),
            "{e}"
        );

        let e = err(&[("TRIAGE_GITHUB_PRIVATE_KEY", "not a pem")]);
        assert!(e.contains("github.app_id is not"), "{e}");

        let e = err(&[
            ("TRIAGE_GITHUB_APP_ID", "12345"),
            ("TRIAGE_GITHUB_PRIVATE_KEY", "not a pem"),
        ]);
        assert!(e.contains("not an RSA private key"), "{e}");

        let e = err(&[("TRIAGE_GITHUB_API_URL", "ftp://x")]);
        assert!(e.contains("github.api_url must be an http(s) URL"), "{e}");

        let e = err(&[("TRIAGE_GITHUB_PER_HOUR", "0")]);
        assert!(e.contains("github.per_hour must be at least 1"), "{e}");

        let e = err(&[("TRIAGE_GITEA_URL", "https://user:pw@gitea.example.com")]);
        assert!(e.contains("gitea.url must not carry credentials"), "{e}");
        assert!(!e.contains("pw@"), "{e}");

        let e = err(&[("TRIAGE_GITEA_URL", "https://gitea.example.com")]);
        assert!(e.contains("gitea.repo"), "{e}");

        let e = err(&[("TRIAGE_FORGE_ROUTES", r#"[{tier = "gold", repo = "a/b"}]"#)]);
        assert!(e.contains("forge.routes[1].tier"), "{e}");

        let e = err(&[("TRIAGE_FORGE_KIND", "bitbucket")]);
        assert!(e.contains("forge.kind"), "{e}");
    }

    #[test]
    fn risky_settings_are_warned_about() {
        let c = load(
            None,
            &[
                ("TRIAGE_GITHUB_TOKEN", "t"),
                ("TRIAGE_GITHUB_REPO", "acme/platform"),
                ("TRIAGE_GITHUB_PER_MINUTE", "200"),
                ("TRIAGE_FORGE_USE_GITOPS_REPO", "true"),
            ],
        )
        .unwrap();
        let w = c.warnings().join("\n");
        assert!(w.contains("github.per_minute = 200 exceeds"), "{w}");
        assert!(w.contains("forge.gitops_repo_owners"), "{w}");
        assert!(w.contains("github.webhook_secret is not set"), "{w}");

        let c = load(
            None,
            &[
                ("TRIAGE_GITHUB_TOKEN", "t"),
                ("TRIAGE_GITHUB_REPO", "acme/platform"),
                ("TRIAGE_GITHUB_WEBHOOK_SECRET", "s"),
                ("TRIAGE_GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
                ("TRIAGE_GITHUB_PER_MINUTE", "200"),
            ],
        )
        .unwrap();
        let w = c.warnings().join("\n");
        assert!(
            !w.contains("github."),
            "Enterprise sets its own limits: {w}"
        );
    }

    #[test]
    fn app_credentials_from_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("app.pem");
        std::fs::write(
            &key,
            include_str!("../../tests/fixtures/github/test-app-private-key.pem"),
        )
        .unwrap();
        let c = load(
            None,
            &[
                ("TRIAGE_GITHUB_APP_ID", "12345"),
                ("TRIAGE_GITHUB_PRIVATE_KEY_FILE", key.to_str().unwrap()),
                ("TRIAGE_GITHUB_REPO", "acme/platform"),
            ],
        )
        .unwrap();
        assert_eq!(c.forge.kind, ForgeKind::Github);
        assert_eq!(c.github.app_id, Some(12345));
        let shown = c.to_masked_toml().unwrap();
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");

        let e = err(&[
            ("TRIAGE_GITHUB_APP_ID", "12345"),
            ("TRIAGE_GITHUB_PRIVATE_KEY_FILE", key.to_str().unwrap()),
            ("TRIAGE_GITHUB_TOKEN", "t"),
        ]);
        assert!(e.contains("either a token or the App"), "{e}");
    }
}
