//! The first run a new user makes: `triage demo`, `triage replay` over the example
//! payloads, the README's quickstart followed word for word, and the example payloads
//! checked to be what the real senders produce.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde::Deserialize as _;
use serde_json::Value;
use support::{fixture, render_argocd, repo};
use triage::commands::demo::{self, PAYLOADS};

fn triage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(args)
        .current_dir(repo())
        .env_remove("TRIAGE_CONFIG")
        .output()
        .expect("run the triage binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example_payloads() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("examples/payloads"))
        .expect("examples/payloads")
        .map(|e| {
            let path = e.expect("directory entry").path();
            path.strip_prefix(repo())
                .expect("under the repo")
                .display()
                .to_string()
        })
        .filter(|p| p.ends_with(".json"))
        .collect();
    files.sort();
    files
}

/// The fenced JSON document in an issue body.
fn json_block(body: &str) -> Value {
    let start = body.find("```json\n").expect("a JSON block") + "```json\n".len();
    let end = start + body[start..].find("\n```").expect("its closing fence");
    serde_json::from_str(&body[start..end]).expect("valid JSON in the block")
}

fn yaml_docs(text: &str) -> Vec<serde_yaml_ng::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn example_object(kind: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("examples/cluster.yaml")).unwrap();
    let doc = yaml_docs(&text)
        .into_iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{kind} {name} in examples/cluster.yaml"));
    serde_json::to_value(doc).unwrap()
}

// ---------------------------------------------------------------------------------------
// triage demo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_opens_comments_and_leaves_alone_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let run = demo::run_in(dir.path()).await.expect("the demo runs");

    // Every payload accepted; the word-for-word repeat answered as a duplicate.
    let statuses: Vec<(usize, &str, u16)> = run
        .sent
        .iter()
        .map(|s| (s.round, s.file, s.status))
        .collect();
    assert_eq!(statuses.len(), 8, "{statuses:?}");
    assert!(statuses[..7].iter().all(|s| s.2 == 202), "{statuses:?}");
    assert_eq!(statuses[6], (2, PAYLOADS[6].0, 202));
    assert_eq!(statuses[7], (2, PAYLOADS[0].0, 200));
    assert!(
        run.sent[7].answer.contains("duplicate"),
        "{}",
        run.sent[7].answer
    );

    // One work order per failing workload, with the route the tier calls for.
    let opened: Vec<(String, String, String)> = run
        .outcome
        .work_orders
        .iter()
        .map(|f| {
            let route = f.work_order.route.as_ref().expect("a route");
            (
                f.work_order.key.to_string(),
                route.action.as_str().to_string(),
                route.priority.map(|p| p.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        opened,
        [
            ("default/pets/deployment/store-front", "escalate", "P0"),
            ("default/data/statefulset/orders-db", "log", "P2"),
            ("default/reports/cronjob/nightly-report", "log", "P2"),
        ]
        .map(|(k, a, p)| (k.to_string(), a.to_string(), p.to_string()))
    );
    // Argo CD's degraded notification for store-front joined its open work order as a
    // comment instead of a second issue.
    let commented: Vec<_> = run
        .outcome
        .commented()
        .map(|f| f.work_order.key.to_string())
        .collect();
    assert_eq!(commented, ["default/pets/deployment/store-front"]);

    let left: BTreeSet<(String, String)> = run
        .outcome
        .not_filed
        .iter()
        .map(|n| (n.key.to_string(), n.decision.to_string()))
        .collect();
    assert!(
        left.contains(&(
            "default/pets/deployment/order-service".into(),
            "suppress".into()
        )),
        "the transient that resolved inside its window is suppressed: {left:?}"
    );
    assert!(
        left.contains(&(
            "default/pets/deployment/store-front-canary".into(),
            "ignore".into()
        )),
        "the ignored canary files nothing: {left:?}"
    );

    // The report names all of it and where the files are.
    let mut report = Vec::new();
    demo::write_report(&run, &mut report).unwrap();
    let report = text(&report);
    for needle in [
        "Opened (3):",
        "Commented (1):",
        "suppress KubeDeploymentReplicasMismatch on deployment pets/order-service",
        "ignore   KubePodCrashLooping on pod pets/store-front-canary",
        "INDEX.md",
    ] {
        assert!(
            report.contains(needle),
            "report lacks {needle:?}:\n{report}"
        );
    }
}

#[test]
fn demo_binary_writes_readable_work_orders_and_refuses_to_overwrite_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = triage(&["demo", "--dir", d]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Opened (3):"), "{stdout}");

    let forge = dir.path().join("work-orders");
    let mut files: Vec<String> = std::fs::read_dir(&forge)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.'))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "00001-default-pets-deployment-store-front.md",
            "00002-default-data-statefulset-orders-db.md",
            "00003-default-reports-cronjob-nightly-report.md",
            "INDEX.md"
        ]
    );
    for f in &files[..3] {
        assert!(
            stdout.contains(&forge.join(f).display().to_string()),
            "{stdout}"
        );
    }

    let store_front = std::fs::read_to_string(forge.join(&files[0])).unwrap();
    assert!(store_front.contains("state: open"), "{store_front}");
    assert!(store_front.contains("comments: 1"), "{store_front}");
    assert!(store_front.contains("- cluster-doctor\n"), "{store_front}");
    assert!(store_front.contains("OOMKilled"), "evidence: {store_front}");
    assert!(
        store_front.contains("<!-- triage:key=default/pets/deployment/store-front -->"),
        "key marker: {store_front}"
    );
    // The log route does not wake the agent.
    let orders_db = std::fs::read_to_string(forge.join(&files[1])).unwrap();
    assert!(!orders_db.contains("cluster-doctor"), "{orders_db}");
    let index = std::fs::read_to_string(forge.join("INDEX.md")).unwrap();
    assert!(index.contains(&files[2]), "{index}");

    // A second run into the same directory would mix two runs: refused, nothing touched.
    let again = triage(&["demo", "--dir", d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already holds a Triage run"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(forge.join(&files[0])).unwrap(),
        store_front
    );
}

// ---------------------------------------------------------------------------------------
// triage replay

#[test]
fn replay_prints_each_work_order_as_filed_and_the_same_every_time() {
    let files = example_payloads();
    let mut args = vec!["replay"];
    args.extend(files.iter().map(String::as_str));
    let first = triage(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let md = text(&first.stdout);

    let headers: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("==> work order "))
        .collect();
    assert_eq!(
        headers,
        [
            "==> work order default/pets/deployment/store-front (1 of 3)",
            "==> work order default/data/statefulset/orders-db (2 of 3)",
            "==> work order default/reports/cronjob/nightly-report (3 of 3)",
        ]
    );
    assert!(
        md.contains("title: [P0] deployment pets/store-front in default: KubePodCrashLooping\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "labels: cluster-doctor, source/alertmanager, priority/P0, tier/critical, action/escalate, triage/"
        ),
        "{md}"
    );
    assert!(md.contains("==> not filed"), "{md}");
    assert!(
        text(&first.stderr).contains("3 work orders would be filed, 4 signals not"),
        "{}",
        text(&first.stderr)
    );

    // Virtual time from the payloads, not the wall clock: the same bytes every run.
    let second = triage(&args);
    assert_eq!(text(&second.stdout), md);
}

#[test]
fn replay_json_is_the_work_order_document_of_each_body() {
    let files = example_payloads();
    let mut args = vec!["replay", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let out = triage(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");

    let work_orders = doc["work_orders"].as_array().unwrap();
    assert_eq!(work_orders.len(), 3);
    for wo in work_orders {
        // The body's block is the work order when the issue was created; the replay's
        // document is the same structure at the end of the replay (later signals added).
        let issue = &wo["filed"]["issue"];
        let block = json_block(issue["body"].as_str().unwrap());
        let mut fields: BTreeSet<&String> = wo.as_object().unwrap().keys().collect();
        fields.remove(&"filed".to_string());
        assert_eq!(
            block.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            fields,
            "replay's JSON for {} has the fields of the body's JSON block",
            wo["key"]
        );
        for field in ["key", "key_label", "cluster", "workload", "route"] {
            assert_eq!(block[field], wo[field], "{field} of {}", wo["key"]);
        }
        assert!(issue["title"].as_str().unwrap().starts_with('['));
    }
    let store_front = &work_orders[0];
    assert_eq!(store_front["route"]["action"], "escalate");
    assert_eq!(store_front["workload"]["name"], "store-front");

    let not_filed = doc["not_filed"].as_array().unwrap();
    let reasons: Vec<(&str, &str)> = not_filed
        .iter()
        .map(|n| (n["key"].as_str().unwrap(), n["decision"].as_str().unwrap()))
        .collect();
    assert!(
        reasons.contains(&("default/pets/deployment/order-service", "suppress")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("default/pets/deployment/store-front-canary", "ignore")),
        "{reasons:?}"
    );
    assert!(
        not_filed
            .iter()
            .all(|n| !n["why"].as_str().unwrap().is_empty())
    );
}

/// The debounce check at the deadline reads the snapshot: the same firing alert is a
/// transient against the example cluster (order-service all ready) and a work order
/// against a snapshot where order-service is down.
#[test]
fn replay_checks_debounced_failures_against_the_snapshot() {
    let firing = "examples/payloads/03-alertmanager-order-service-replicas-mismatch.json";
    let green = triage(&["replay", "--format", "json", firing]);
    assert!(green.status.success(), "{}", text(&green.stderr));
    let green: Value = serde_json::from_slice(&green.stdout).unwrap();
    assert_eq!(green["work_orders"].as_array().unwrap().len(), 0);
    assert_eq!(green["not_filed"][0]["decision"], "suppress");

    let text_in = std::fs::read_to_string(repo().join("examples/cluster.yaml")).unwrap();
    let mut docs = yaml_docs(&text_in);
    let deployment = docs
        .iter_mut()
        .find(|d| {
            d["kind"].as_str() == Some("Deployment")
                && d["metadata"]["name"].as_str() == Some("order-service")
        })
        .expect("order-service");
    let status = deployment["status"].as_mapping_mut().unwrap();
    for field in ["readyReplicas", "availableReplicas"] {
        status.insert(field.into(), 0.into());
    }
    status.insert("unavailableReplicas".into(), 3.into());
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("down.yaml");
    let docs: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect();
    std::fs::write(&snapshot, docs.join("---\n")).unwrap();

    let red = triage(&[
        "replay",
        "--format",
        "json",
        "--snapshot",
        snapshot.to_str().unwrap(),
        firing,
    ]);
    assert!(red.status.success(), "{}", text(&red.stderr));
    let red: Value = serde_json::from_slice(&red.stdout).unwrap();
    let filed = red["work_orders"].as_array().unwrap();
    assert_eq!(filed.len(), 1, "{red:#}");
    assert_eq!(filed[0]["key"], "default/pets/deployment/order-service");
    assert_eq!(
        filed[0]["context"]["health"]["status"], "red",
        "{:#}",
        filed[0]["context"]
    );
}

#[test]
fn replay_names_the_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.json");
    std::fs::write(
        &bad,
        r#"{"version":"4","status":"firing","alerts":[{"labels":"#,
    )
    .unwrap();
    let out = triage(&["replay", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("broken.json"), "{err}");
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------
// The README's quickstart, word for word

/// The commands between the quickstart markers, one per line.
fn quickstart() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- quickstart:begin -->")
        .expect("README has <!-- quickstart:begin -->");
    let end = readme[start..]
        .find("<!-- quickstart:end -->")
        .expect("README has <!-- quickstart:end -->")
        + start;
    let block = &readme[start..end];
    let code = block
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block inside the quickstart markers");
    code.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn readme_quickstart_runs_the_demo_as_written() {
    let commands = quickstart();
    assert!(!commands.is_empty());
    for command in &commands {
        // As a user would from the root of a fresh clone: through the shell, with cargo
        // building what it needs.
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(repo())
            .env_remove("TRIAGE_CONFIG")
            .output()
            .expect("sh");
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "`{command}` failed:\n{stdout}\n{}",
            text(&out.stderr)
        );
        if command.contains("demo") {
            for needle in [
                "Opened (3):",
                "Commented (1):",
                "Not filed (3):",
                "INDEX.md",
            ] {
                assert!(stdout.contains(needle), "`{command}` printed:\n{stdout}");
            }
            // The files it points to are there.
            let index = stdout
                .split_whitespace()
                .map(|w| w.trim_end_matches([',', '.']))
                .find(|w| w.starts_with('/') && w.ends_with("INDEX.md"))
                .expect("the report names INDEX.md");
            assert!(Path::new(index).is_file(), "{index}");
            let run_dir = Path::new(index).parent().unwrap().parent().unwrap();
            std::fs::remove_dir_all(run_dir).ok();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The example payloads are what the real senders send

#[test]
fn first_example_payload_is_the_real_alertmanager_capture() {
    let shipped = std::fs::read(
        repo().join("examples/payloads/01-alertmanager-store-front-crashlooping.json"),
    )
    .unwrap();
    assert_eq!(
        shipped,
        fixture("alertmanager/crashlooping-group-firing.json")
    );
}

#[test]
fn argocd_example_payload_is_what_the_shipped_template_renders() {
    let app = example_object("Application", "store-front");
    let vars = serde_json::json!({
        "app": app,
        "context": {"argocdUrl": "https://argocd.example.com", "notificationType": "webhook"},
    });
    let rendered = render_argocd(
        &repo().join("argocd/argocd-notifications-cm.yaml"),
        "triage-on-health-degraded",
        "triage",
        &vars,
    );
    assert_eq!(
        (rendered.method.as_str(), rendered.path.as_str()),
        ("POST", "/v1/argocd")
    );
    let shipped = std::fs::read_to_string(
        repo().join("examples/payloads/07-argocd-store-front-degraded.json"),
    )
    .unwrap();
    assert_eq!(
        rendered.body.trim_end(),
        shipped.trim_end(),
        "re-render examples/payloads/07 with tests/go/render after changing the template \
         or the example Application"
    );
}

/// Every example Alertmanager payload is a valid v4 body whose alerts name workloads
/// of the example cluster, so the demo's enrichment has something to find.
#[test]
fn example_alerts_name_objects_of_the_example_cluster() {
    let cluster = std::fs::read_to_string(repo().join("examples/cluster.yaml")).unwrap();
    let names: BTreeSet<String> = yaml_docs(&cluster)
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str().map(String::from))
        .collect();
    for (file, body) in PAYLOADS {
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{file}: {e}"));
        if v.get("version").is_none() {
            continue;
        }
        assert_eq!(v["version"], "4", "{file}");
        for alert in v["alerts"].as_array().unwrap() {
            let l = &alert["labels"];
            // A pod of a Deployment is named <deployment>-<pod-template-hash>-<suffix>.
            let named = ["pod", "deployment", "statefulset", "job_name", "cronjob"]
                .iter()
                .filter_map(|k| l[*k].as_str())
                .any(|n| {
                    names.contains(n) || n.rsplitn(3, '-').nth(2).is_some_and(|d| names.contains(d))
                });
            assert!(
                named,
                "{file}: {l} names no object of examples/cluster.yaml"
            );
        }
    }
}
