//! Kubeconfig resolution, as kubectl does it: an explicit kubeconfig path (config or
//! `--kubeconfig`), else `KUBECONFIG` (a list of files, merged), else
//! `~/.kube/config`, else the in-cluster service account. A context option picks a
//! context other than the current one (and then a kubeconfig is required).

use std::path::Path;

use anyhow::{Context as _, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

fn options(context: Option<&str>) -> KubeConfigOptions {
    KubeConfigOptions {
        context: context.map(str::to_string),
        cluster: None,
        user: None,
    }
}

/// The client configuration for one cluster, and where it came from in words.
pub async fn resolve_described(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<(kube::Config, String)> {
    let ctx_words = context.map_or(String::from("current context"), |c| format!("context {c}"));
    if let Some(path) = kubeconfig {
        let file = Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
        let config = kube::Config::from_custom_kubeconfig(file, &options(context))
            .await
            .with_context(|| format!("kubeconfig {} ({ctx_words})", path.display()))?;
        return Ok((
            config,
            format!("kubeconfig {} ({ctx_words})", path.display()),
        ));
    }
    let from_env = Kubeconfig::from_env().context("KUBECONFIG names an unreadable kubeconfig")?;
    let (file, origin) = match from_env {
        Some(file) => (
            Some(file),
            format!(
                "KUBECONFIG={}",
                std::env::var("KUBECONFIG").unwrap_or_default()
            ),
        ),
        None => match home_kubeconfig() {
            Some(path) if path.is_file() => (
                Some(
                    Kubeconfig::read_from(&path)
                        .with_context(|| format!("cannot read kubeconfig {}", path.display()))?,
                ),
                path.display().to_string(),
            ),
            _ => (None, String::new()),
        },
    };
    if let Some(file) = file {
        let config = kube::Config::from_custom_kubeconfig(file, &options(context))
            .await
            .with_context(|| format!("kubeconfig {origin} ({ctx_words})"))?;
        return Ok((config, format!("kubeconfig {origin} ({ctx_words})")));
    }
    if let Some(c) = context {
        bail!(
            "kubernetes context {c:?} is set but no kubeconfig was found (set kubernetes.kubeconfig, KUBECONFIG, or create ~/.kube/config)"
        );
    }
    match kube::Config::incluster() {
        Ok(config) => Ok((config, "in-cluster service account".to_string())),
        Err(e) => bail!(
            "no Kubernetes configuration found: no kubernetes.kubeconfig, no KUBECONFIG, no ~/.kube/config, and not running in a cluster ({e}); \
             use --snapshot FILE to work from a static snapshot"
        ),
    }
}

/// The client configuration for one cluster.
pub async fn resolve(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    resolve_described(kubeconfig, context).await.map(|(c, _)| c)
}

fn home_kubeconfig() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".kube").join("config"))
}
