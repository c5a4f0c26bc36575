//! Load benchmark of the ingest edge: `cargo bench --bench ingest_load`.
//!
//! Posts the real Alertmanager fixture (two alerts), made distinct per request (pod
//! name and fingerprint), over HTTP/1.1 keep-alive from 50 concurrent connections to
//! the release `triage serve` binary with the durable journal on (SQLite WAL,
//! `synchronous = full`, group commit), then — in the same run, same load — to a bare
//! axum server whose handler only parses the JSON. Prints deliveries/s, latency
//! percentiles, the server's peak RSS, and the ratio. Afterwards it checks that the
//! journal holds exactly the acknowledged deliveries.
//!
//! The load generator runs on one thread in this process; the servers are separate
//! processes (the bare one is this executable re-run with `INGEST_LOAD_BARE=1`).
//!
//! Environment: `INGEST_LOAD_SECONDS` (default 8), `INGEST_LOAD_CONNECTIONS` (50),
//! `INGEST_LOAD_TARGET=127.0.0.1:8080` to only load an already running Triage (its
//! alertmanager token must be `bench-token-0123456789`), e.g. to profile it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const TOKEN: &str = "bench-token-0123456789";
const BARE_ENV: &str = "INGEST_LOAD_BARE";

fn main() {
    if std::env::var_os(BARE_ENV).is_some() {
        bare_server();
        return;
    }
    // `cargo bench` passes `--bench`. Test runners (`cargo test --all-targets`,
    // `cargo nextest run --all-targets`, which lists tests with `--list`) build this
    // file too: it holds no tests, so it does nothing for them.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        if args.iter().any(|a| a == "--list") {
            // nextest's listing format: no tests here.
            return;
        }
        println!("ingest_load is a benchmark: run it with `cargo bench --bench ingest_load`");
        return;
    }
    let seconds: u64 = env_or("INGEST_LOAD_SECONDS", 8);
    let connections: usize = env_or("INGEST_LOAD_CONNECTIONS", 50);
    let warmup = Duration::from_secs(1);
    let duration = Duration::from_secs(seconds);

    if let Ok(target) = std::env::var("INGEST_LOAD_TARGET") {
        let addr: SocketAddr = target
            .parse()
            .expect("INGEST_LOAD_TARGET must be host:port");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let first = jiff::Timestamp::now().as_microsecond().unsigned_abs() << 8;
        let run = rt.block_on(load(addr, connections, warmup, duration, first, None));
        run.print(&format!("server at {addr}"), 0);
        return;
    }

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let db = dir.path().join("bench.db");
    let config = dir.path().join("triage.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {db:?}\nsynchronous = \"full\"\n\n\
             [alertmanager]\nrate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n\n\
             [log]\nlevel = \"warn\"\n"
        ),
    )
    .expect("config");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "ingest_load: {connections} connections, {seconds} s measured after {warmup:?} warm-up, real Alertmanager fixture varied per request"
    );
    println!(
        "machine: {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // --- Triage, durable journal.
    let port = free_port();
    let triage = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TRIAGE_ALERTMANAGER_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn triage");
    let triage = ServerProcess(triage);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    rt.block_on(wait_ready(addr, "/readyz"));
    let triage_run = rt.block_on(load(
        addr,
        connections,
        warmup,
        duration,
        0,
        Some(triage.0.id()),
    ));
    let triage_rss = peak_rss_kib(triage.0.id());
    let journal_metrics = rt.block_on(scrape(addr));
    stop(triage);

    // Every acknowledged delivery is in the journal, none more.
    let stored = count_deliveries(&db);
    assert_eq!(
        stored, triage_run.accepted_total,
        "journal holds {stored} deliveries, {} were acknowledged",
        triage_run.accepted_total
    );

    // --- Bare axum: parse only.
    let bare = Command::new(std::env::current_exe().expect("current exe"))
        .env(BARE_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn bare server");
    let mut bare = ServerProcess(bare);
    let bare_port = read_port(&mut bare.0);
    let bare_addr: SocketAddr = format!("127.0.0.1:{bare_port}").parse().expect("addr");
    rt.block_on(wait_ready(bare_addr, "/healthz"));
    let bare_run = rt.block_on(load(
        bare_addr,
        connections,
        warmup,
        duration,
        1 << 40,
        Some(bare.0.id()),
    ));
    let bare_rss = peak_rss_kib(bare.0.id());
    stop(bare);

    println!();
    triage_run.print("triage (journal, synchronous=full)", triage_rss);
    println!(
        "  journal: {} commits, {:.1} deliveries per commit, mean commit {:.3} ms",
        journal_metrics.commits,
        journal_metrics.batch_sum / journal_metrics.commits.max(1) as f64,
        journal_metrics.commit_seconds_sum * 1e3 / journal_metrics.commits.max(1) as f64
    );
    println!(
        "  journal check: {stored} rows = {} acknowledged",
        triage_run.accepted_total
    );
    bare_run.print("bare axum (parse only)", bare_rss);
    println!();
    println!(
        "ratio triage / bare: {:.2}",
        triage_run.per_second() / bare_run.per_second()
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM and wait: Triage drains and closes the journal.
fn stop(p: ServerProcess) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
    let mut p = p;
    let _ = p.0.wait();
}

fn read_port(child: &mut Child) -> u16 {
    use std::io::BufRead;
    let out = child.stdout.take().expect("bare stdout");
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .expect("bare port");
    line.trim().parse().expect("bare port number")
}

/// User + system CPU time of a process (all threads), from /proc.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Peak resident set size (VmHWM) of a process, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn count_deliveries(db: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open journal");
    conn.query_row("SELECT count(*) FROM deliveries", [], |r| {
        r.get::<_, i64>(0)
    })
    .expect("count") as u64
}

// ---------------------------------------------------------------------------------------
// Request bodies: the real fixture, pod name and fingerprint of the first alert varied.

struct Bodies {
    parts: [Vec<u8>; 3],
}

impl Bodies {
    fn new() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/alertmanager/crashlooping-group-firing.json"
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let pod = "\"store-front-7d9f-abc\"";
        let fp = "\"efcc16dae668ac0f\"";
        let (a, rest) = text.split_at(text.find(pod).expect("pod in fixture"));
        let rest = &rest[pod.len()..];
        let (b, c) = rest.split_at(rest.find(fp).expect("fingerprint in fixture"));
        let c = &c[fp.len()..];
        Bodies {
            parts: [a.into(), b.into(), c.into()],
        }
    }

    fn body(&self, n: u64) -> Bytes {
        let mut out = Vec::with_capacity(self.parts.iter().map(Vec::len).sum::<usize>() + 64);
        out.extend_from_slice(&self.parts[0]);
        out.extend_from_slice(format!("\"store-front-{n}\"").as_bytes());
        out.extend_from_slice(&self.parts[1]);
        out.extend_from_slice(format!("\"{n:016x}\"").as_bytes());
        out.extend_from_slice(&self.parts[2]);
        Bytes::from(out)
    }
}

// ---------------------------------------------------------------------------------------
// The load generator.

struct Run {
    /// Server CPU time (user + system) during the measured window.
    server_cpu: Option<Duration>,
    /// This process's (the load generator's) CPU time during the measured window.
    client_cpu: Duration,
    accepted: u64,
    accepted_total: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str, rss_kib: u64) {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        println!("{name}:");
        println!(
            "  {:.0} accepted deliveries/s ({} in {:.1} s, {} errors)",
            self.per_second(),
            self.accepted,
            self.elapsed.as_secs_f64(),
            self.errors
        );
        println!(
            "  latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            ms(0.50),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1000.0
        );
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.accepted.max(1) as f64;
        if let Some(cpu) = self.server_cpu {
            println!(
                "  CPU per delivery: server {:.1} µs, load generator {:.1} µs",
                per(cpu),
                per(self.client_cpu)
            );
        }
        println!("  server peak RSS {:.1} MiB", rss_kib as f64 / 1024.0);
    }
}

async fn load(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    first_id: u64,
    server_pid: Option<u32>,
) -> Run {
    let bodies = Arc::new(Bodies::new());
    let next = Arc::new(AtomicU64::new(first_id));
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (bodies, next, measuring, done) = (
            bodies.clone(),
            next.clone(),
            measuring.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            connection(addr, bodies, next, measuring, done).await
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let server_cpu0 = server_pid.and_then(cpu_time);
    let client_cpu0 = cpu_time(std::process::id());
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let server_cpu = server_pid
        .and_then(cpu_time)
        .zip(server_cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let client_cpu = cpu_time(std::process::id())
        .zip(client_cpu0)
        .map_or(Duration::ZERO, |(b, a)| b.saturating_sub(a));
    done.store(true, Ordering::Relaxed);
    let mut run = Run {
        server_cpu,
        client_cpu,
        accepted: 0,
        accepted_total: 0,
        errors: 0,
        elapsed,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    };
    for t in tasks {
        let c = t.await.expect("connection task");
        run.accepted += c.accepted;
        run.accepted_total += c.accepted_total;
        run.errors += c.errors;
        run.latency.add(&c.latency).expect("merge");
    }
    run
}

struct ConnStats {
    accepted: u64,
    accepted_total: u64,
    errors: u64,
    latency: Histogram<u64>,
}

async fn connection(
    addr: SocketAddr,
    bodies: Arc<Bodies>,
    next: Arc<AtomicU64>,
    measuring: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> ConnStats {
    let mut stats = ConnStats {
        accepted: 0,
        accepted_total: 0,
        errors: 0,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    };
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let auth = format!("Bearer {TOKEN}");
    while !done.load(Ordering::Relaxed) {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let req = hyper::Request::post("/v1/alertmanager")
            .header("host", "bench")
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header("user-agent", "Alertmanager/0.25.0")
            .body(Full::new(bodies.body(n)))
            .expect("request");
        if sender.ready().await.is_err() {
            stats.errors += 1;
            break;
        }
        let started = Instant::now();
        let measured = measuring.load(Ordering::Relaxed);
        match sender.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status() == hyper::StatusCode::ACCEPTED;
                let _ = resp.into_body().collect().await;
                let micros = started.elapsed().as_micros() as u64;
                if ok {
                    stats.accepted_total += 1;
                    if measured {
                        stats.accepted += 1;
                        let _ = stats.latency.record(micros.max(1));
                    }
                } else {
                    stats.errors += 1;
                }
            }
            Err(_) => {
                stats.errors += 1;
                break;
            }
        }
    }
    stats
}

async fn wait_ready(addr: SocketAddr, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await
            && let Ok((mut s, conn)) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
        {
            tokio::spawn(conn);
            let req = hyper::Request::get(path)
                .header("host", "bench")
                .body(Full::new(Bytes::new()))
                .expect("request");
            if let Ok(r) = s.send_request(req).await
                && r.status().is_success()
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server at {addr} not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct JournalFigures {
    commits: u64,
    batch_sum: f64,
    commit_seconds_sum: f64,
}

async fn scrape(addr: SocketAddr) -> JournalFigures {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut s, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header("host", "bench")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let body = s
        .send_request(req)
        .await
        .expect("metrics")
        .into_body()
        .collect()
        .await
        .expect("metrics body")
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    JournalFigures {
        commits: value("triage_journal_batch_size_count") as u64,
        batch_sum: value("triage_journal_batch_size_sum"),
        commit_seconds_sum: value("triage_journal_commit_duration_seconds_sum"),
    }
}

// ---------------------------------------------------------------------------------------
// The bare server: axum, same runtime shape as `triage serve`, handler parses only.

fn bare_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use axum::routing::{get, post};
        async fn parse_only(body: Bytes) -> (axum::http::StatusCode, &'static str) {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(_) => (
                    axum::http::StatusCode::ACCEPTED,
                    "{\"status\":\"accepted\"}",
                ),
                Err(_) => (
                    axum::http::StatusCode::BAD_REQUEST,
                    "{\"error\":\"bad json\"}",
                ),
            }
        }
        let app = axum::Router::new()
            .route("/v1/alertmanager", post(parse_only))
            .route("/healthz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        axum::serve(listener, app).await.expect("serve");
    });
}
