//! The in-process Triage on an ephemeral port, the real `triage` binary, a real
//! Alertmanager, Go's template renderer, and a raw HTTP/1.1 writer for requests a
//! polite client would not send.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triage::commands::serve::Server;
use triage::config::{Config, Secret};
use triage::store::{Journal, StoredDelivery};

pub const AM_TOKEN: &str = "am-token-0123456789";
pub const ARGO_TOKEN: &str = "argo-token-0123456789";

/// An HTTP client (installs the process-wide rustls provider reqwest needs first).
pub fn client() -> reqwest::Client {
    triage::tls::install_crypto_provider();
    reqwest::Client::new()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures").join(path))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A configuration for tests: tokens for both sources, the journal in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.store.path = dir.join("triage.db");
    // The local-directory forge the pipeline writes to, inside the test's directory.
    c.forge.dir = dir.join("work-orders");
    c.alertmanager.token = Some(Secret::new(AM_TOKEN));
    c.argocd.token = Some(Secret::new(ARGO_TOKEN));
    c
}

/// Triage in this process, on 127.0.0.1 with an ephemeral port.
pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub dir: TempDir,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(edit: impl FnOnce(&mut Config)) -> TestServer {
        triage::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        edit(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(config, listener).await.unwrap();
        let base = format!("http://{}", server.addr());
        TestServer {
            server: Some(server),
            base,
            dir,
            http: client(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        self.server.as_ref().unwrap().journal()
    }

    pub async fn deliveries(&self) -> Vec<StoredDelivery> {
        self.journal().list(None, 100_000).await.unwrap()
    }

    /// POST `body` to `path` with a bearer token (or none).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Answer {
        let mut req = self.http.post(self.url(path)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Answer::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::from(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn from(r: reqwest::Response) -> Answer {
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `error` field of an error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {}", self.body))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Writes `request` verbatim to `addr` and returns (status, whole response text).
/// For requests reqwest would not produce (chunked bodies, odd framing).
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The real `triage` binary.

/// A `triage serve` child process; killed (SIGKILL) on drop.
pub struct TriageProcess {
    pub child: Child,
    pub base: String,
    pub addr: SocketAddr,
}

impl TriageProcess {
    /// Starts `triage serve --config <config>` listening on a free loopback port.
    pub async fn start(config: &Path, env: &[(&str, &str)]) -> TriageProcess {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage"));
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn triage");
        let p = TriageProcess {
            child,
            base: format!("http://{addr}"),
            addr,
        };
        let client = client();
        let url = format!("{}/readyz", p.base);
        eventually(Duration::from_secs(20), "triage to become ready", || {
            let client = client.clone();
            let url = url.clone();
            async move {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        p
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for TriageProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The real Alertmanager (Debian prometheus-alertmanager 0.25).

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    child: Child,
    pub base: String,
    _dir: TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager on a free loopback port with `config` (YAML), clustering off.
    pub async fn start(config: &str) -> Alertmanager {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} is missing: install Debian's prometheus-alertmanager (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url={base}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn alertmanager");
        let am = Alertmanager {
            child,
            base,
            _dir: dir,
        };
        let client = client();
        let url = format!("{}/-/ready", am.base);
        eventually(
            Duration::from_secs(20),
            "alertmanager to become ready",
            || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => Some(()),
                        _ => None,
                    }
                }
            },
        )
        .await;
        am
    }

    /// `POST /api/v2/alerts`.
    pub async fn post_alerts(&self, alerts: &serde_json::Value) {
        let r = client()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text().await);
    }

    /// Sum of every sample of `metric` whose labels contain `label_filter`.
    pub async fn metric_sum(&self, metric: &str, label_filter: &str) -> f64 {
        let text = client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(label_filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Go's text/template + sprig, as Argo CD renders notification templates.

/// Builds `tests/go/render` once per test process; panics (loudly) if Go or sprig is
/// missing.
pub fn go_renderer() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("triage-go-render-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let bin = out.join("render");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg("./tests/go/render")
            .current_dir(repo())
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOFLAGS", "")
            .status()
            .expect("`go` is missing: install golang-go and golang-github-masterminds-sprig-dev (.ci/run does)");
        assert!(status.success(), "go build of tests/go/render failed");
        bin
    })
}

/// A webhook request as the renderer produced it.
#[derive(Debug, serde::Deserialize)]
pub struct Rendered {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// Renders `template.<template>`'s `webhook.<service>` of `configmap` with `vars`.
pub fn render_argocd(
    configmap: &Path,
    template: &str,
    service: &str,
    vars: &serde_json::Value,
) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let vars_path = dir.path().join("vars.json");
    std::fs::write(&vars_path, serde_json::to_vec(vars).unwrap()).unwrap();
    let out = Command::new(go_renderer())
        .arg(configmap)
        .arg(template)
        .arg(service)
        .arg(&vars_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
