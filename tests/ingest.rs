//! The ingest edge end to end: real Alertmanager, Argo CD templates rendered by Go's
//! text/template + sprig, bad input, auth modes, limits, duplicates, probes, and
//! durability of the real binary against kill -9.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use serde_json::{Value, json};
use support::*;
use triage::config::Secret;
use triage::signal::{SignalKind, SignalStatus, Source, Subject};
use triage::store::{Journal as _, StoredDelivery};

fn signals(d: &StoredDelivery) -> Vec<triage::signal::Signal> {
    d.signals().unwrap()
}

/// The real Application fixture as JSON, the way Argo CD hands it to templates.
fn application() -> Value {
    let yaml = String::from_utf8(fixture("argocd/application-real-synced.yaml")).unwrap();
    serde_yaml_ng::from_str(&yaml).unwrap()
}

fn argocd_vars(app: Value) -> Value {
    json!({"app": app, "context": {"argocdUrl": "https://argocd.example.com", "notificationType": "webhook"}})
}

// ---------------------------------------------------------------------------------------
// Real Alertmanager

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_firing_then_resolved_and_wrong_token_refused() {
    let triage = TestServer::start(|_| {}).await;
    let url = triage.url("/v1/alertmanager");
    let am = Alertmanager::start(&format!(
        r#"
route:
  receiver: blackhole
  group_by: ['alertname', 'namespace']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
  - receiver: triage.good
    continue: true
  - receiver: triage-wrong-token
receivers:
- name: blackhole
- name: triage.good
  webhook_configs:
  - url: {url}
    send_resolved: true
    http_config:
      authorization:
        type: Bearer
        credentials: {AM_TOKEN}
- name: triage-wrong-token
  webhook_configs:
  - url: {url}
    send_resolved: true
    http_config:
      authorization:
        type: Bearer
        credentials: not-the-token
"#
    ))
    .await;

    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let alert = |pod: &str, ends: Option<jiff::Timestamp>| {
        let mut a = json!({
            "labels": {
                "alertname": "KubePodCrashLooping", "namespace": "pets", "pod": pod,
                "container": "store-front", "severity": "warning", "cluster": "prod-eu",
                "job": "kube-state-metrics"
            },
            "annotations": {
                "description": format!("Pod pets/{pod} (store-front) is in waiting state (reason: CrashLoopBackOff)."),
                "summary": "Pod is crash looping."
            },
            "startsAt": started.to_string(),
            "generatorURL": "http://prometheus:9090/graph?g0.expr=kube_pod_container_status_waiting_reason"
        });
        if let Some(e) = ends {
            a["endsAt"] = json!(e.to_string());
        }
        a
    };
    let pods = ["store-front-7d9f-abc", "store-front-7d9f-def"];
    am.post_alerts(&json!([alert(pods[0], None), alert(pods[1], None)]))
        .await;

    let collect = |status: SignalStatus| {
        let triage = &triage;
        async move {
            let mut by_pod = BTreeMap::new();
            for d in triage.deliveries().await {
                for s in signals(&d) {
                    if s.status == status {
                        by_pod.insert(s.labels["pod"].clone(), (d.clone(), s));
                    }
                }
            }
            (by_pod.len() == 2).then_some(by_pod)
        }
    };
    let firing = eventually(Duration::from_secs(30), "firing signals", || {
        collect(SignalStatus::Firing)
    })
    .await;
    for pod in pods {
        let (d, s) = &firing[pod];
        assert_eq!(d.source, Source::Alertmanager);
        assert_eq!(d.sender, "token:1");
        assert!(!d.request_id.is_empty());
        assert_eq!(s.kind, SignalKind::Alert);
        assert_eq!(s.title, "KubePodCrashLooping");
        assert_eq!(
            s.subject,
            Subject::Pod {
                namespace: "pets".into(),
                name: pod.into()
            }
        );
        assert_eq!(s.cluster.as_deref(), Some("prod-eu"));
        assert!(s.message.as_deref().unwrap().contains(pod));
        assert_eq!(s.started_at.unwrap().as_second(), started.as_second());
        assert_eq!(s.ended_at, None, "firing alerts carry the zero endsAt");
        let a = s.alert.as_ref().unwrap();
        assert_eq!(a.fingerprint.len(), 16);
        assert!(a.fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            a.generator_url.as_deref(),
            Some("http://prometheus:9090/graph?g0.expr=kube_pod_container_status_waiting_reason")
        );
        assert_eq!(a.group.receiver, "triage.good", "receiver unescaped");
        assert_eq!(a.group.status, SignalStatus::Firing);
        assert_eq!(a.group.external_url.as_deref(), Some(am.base.as_str()));
        assert_eq!(a.group.group_labels["namespace"], "pets");
        assert_eq!(
            a.group.common_annotations["summary"],
            "Pod is crash looping."
        );
        assert!(a.group.group_key.contains("KubePodCrashLooping"));
    }

    let ended = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    am.post_alerts(&json!([
        alert(pods[0], Some(ended)),
        alert(pods[1], Some(ended))
    ]))
    .await;
    let resolved = eventually(Duration::from_secs(30), "resolved signals", || {
        collect(SignalStatus::Resolved)
    })
    .await;
    for pod in pods {
        let (_, s) = &resolved[pod];
        assert_eq!(s.ended_at.unwrap().as_second(), ended.as_second());
        assert_eq!(
            s.alert.as_ref().unwrap().fingerprint,
            firing[pod].1.alert.as_ref().unwrap().fingerprint,
            "same alert, same fingerprint"
        );
        assert_eq!(
            s.alert.as_ref().unwrap().group.status,
            SignalStatus::Resolved
        );
    }

    // The receiver with the wrong token was refused, as Alertmanager itself reports,
    // and nothing it sent was stored.
    let failed = eventually(Duration::from_secs(30), "failed notifications", || {
        let am = &am;
        async move {
            let n = am
                .metric_sum(
                    "alertmanager_notifications_failed_total",
                    "integration=\"webhook\"",
                )
                .await;
            (n >= 1.0).then_some(n)
        }
    })
    .await;
    assert!(failed >= 1.0);
    let all = triage.deliveries().await;
    assert!(all.iter().all(|d| d.sender == "token:1"), "{all:?}");
    let metrics = triage.get("/metrics").await.body;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "triage_ingest_deliveries_total{source=\"alertmanager\",outcome=\"unauthorized\"}"
        )),
        "{metrics}"
    );
    triage.stop().await;
}

// ---------------------------------------------------------------------------------------
// Real Argo CD templates

fn shipped_cm() -> std::path::PathBuf {
    repo().join("argocd/argocd-notifications-cm.yaml")
}

fn compat_cm() -> std::path::PathBuf {
    repo().join("tests/fixtures/argocd/compat-templates-cm.yaml")
}

const FAILED_MESSAGE: &str = "one or more objects failed to apply, reason: Deployment.apps \"test-lla\" is invalid: spec.template.spec.containers[0].image: Required value\n\tretried 3 times: \"last error\"";

fn failed_sync(mut app: Value) -> Value {
    let op = &mut app["status"]["operationState"];
    op["phase"] = json!("Failed");
    op["message"] = json!(FAILED_MESSAGE);
    op["syncResult"]["resources"][1]["status"] = json!("SyncFailed");
    op["syncResult"]["resources"][1]["message"] = json!(
        "Deployment.apps \"test-lla\" is invalid: spec.template.spec.containers[0].image: Required value"
    );
    app["status"]["sync"]["status"] = json!("OutOfSync");
    app["metadata"]["managedFields"] =
        json!([{"manager": "argocd-controller", "operation": "Update"}]);
    app
}

/// Posts what Argo CD would send for `rendered` (method, path and exact bytes).
async fn send_rendered(triage: &TestServer, r: &Rendered) -> Answer {
    let method: reqwest::Method = r.method.parse().unwrap();
    let resp = triage
        .http
        .request(method, triage.url(&r.path))
        .bearer_auth(ARGO_TOKEN)
        .header("content-type", "application/json")
        .body(r.body.clone())
        .send()
        .await
        .unwrap();
    Answer::from(resp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_argocd_templates_rendered_by_go_are_understood() {
    let triage = TestServer::start(|_| {}).await;

    // 1. A failed sync whose message holds quotes, a newline and a tab.
    let r = render_argocd(
        &shipped_cm(),
        "triage-on-sync-failed",
        "triage",
        &argocd_vars(failed_sync(application())),
    );
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/argocd"));
    let body: Value =
        serde_json::from_str(&r.body).expect("the shipped template renders valid JSON");
    assert!(
        body["app"]["status"].get("history").is_none(),
        "history is trimmed"
    );
    assert!(body["app"]["metadata"].get("managedFields").is_none());
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.json()["signals"], 1);
    let id = a.json()["delivery_id"].as_i64().unwrap();
    let d = triage
        .journal()
        .get(triage::store::DeliveryId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.body, r.body.as_bytes(), "the exact bytes are journaled");
    let s = &signals(&d)[0];
    assert_eq!(s.kind, SignalKind::SyncFailed);
    assert_eq!(s.status, SignalStatus::Firing);
    assert_eq!(s.title, "on-sync-failed");
    assert_eq!(s.message.as_deref(), Some(FAILED_MESSAGE));
    assert_eq!(
        s.subject,
        Subject::Application {
            namespace: Some("argo-cd".into()),
            name: "velero-test".into()
        }
    );
    assert_eq!(s.cluster.as_deref(), Some("gke-alpha-01-europe-west1"));
    let detail = s.argocd.as_ref().unwrap();
    assert_eq!(detail.trigger.as_deref(), Some("on-sync-failed"));
    assert_eq!(detail.operation_phase.as_deref(), Some("Failed"));
    assert_eq!(detail.sync_status.as_deref(), Some("OutOfSync"));
    assert_eq!(detail.sync_result[1].status.as_deref(), Some("SyncFailed"));
    assert!(
        detail.sync_result[1]
            .message
            .as_deref()
            .unwrap()
            .contains("\"test-lla\"")
    );
    assert_eq!(
        detail.argocd_url.as_deref(),
        Some("https://argocd.example.com")
    );
    assert_eq!(
        detail.revision.as_deref(),
        Some("ea8759964626a583667a2bfd08f334ec2070040a")
    );
    assert!(!detail.compat && !detail.repaired);

    // 2. A degraded app.
    let mut app = application();
    app["status"]["health"] = json!({
        "status": "Degraded",
        "message": "Deployment \"test-lla\" exceeded its progress deadline",
        "lastTransitionTime": "2024-03-05T08:00:00Z"
    });
    app["status"]["resources"][1]["health"] = json!({"status": "Degraded", "message": "Deployment \"test-lla\" exceeded its progress deadline"});
    let r = render_argocd(
        &shipped_cm(),
        "triage-on-health-degraded",
        "triage",
        &argocd_vars(app),
    );
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let d = triage.deliveries().await.pop().unwrap();
    let s = &signals(&d)[0];
    assert_eq!(s.kind, SignalKind::Degraded);
    assert_eq!(
        s.message.as_deref(),
        Some("Deployment \"test-lla\" exceeded its progress deadline")
    );
    assert_eq!(s.started_at.unwrap().to_string(), "2024-03-05T08:00:00Z");
    let detail = s.argocd.as_ref().unwrap();
    assert_eq!(
        detail.resources[1].health_status.as_deref(),
        Some("Degraded")
    );

    // 3. A multi-source app (no spec.source) that recovered.
    let mut app = application();
    let source = app["spec"]
        .as_object_mut()
        .unwrap()
        .remove("source")
        .unwrap();
    app["spec"]["sources"] = json!([source, {"repoURL": "https://charts.example.com", "chart": "velero", "targetRevision": "5.1.0"}]);
    app["status"]["health"]["lastTransitionTime"] = json!("2024-03-05T07:33:04Z");
    let r = render_argocd(
        &shipped_cm(),
        "triage-on-deployed",
        "triage",
        &argocd_vars(app),
    );
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let d = triage.deliveries().await.pop().unwrap();
    let s = &signals(&d)[0];
    assert_eq!(s.kind, SignalKind::Recovered);
    assert_eq!(s.status, SignalStatus::Resolved);
    let detail = s.argocd.as_ref().unwrap();
    assert_eq!(detail.sources.len(), 2);
    assert_eq!(detail.sources[1].chart.as_deref(), Some("velero"));
    assert_eq!(
        detail.sources[0].repo_url.as_deref(),
        Some("https://github.com/foo/manifests-velero.git")
    );

    // 4. The sync-status-unknown template renders and maps too.
    let mut app = application();
    app["status"]["sync"]["status"] = json!("Unknown");
    let r = render_argocd(
        &shipped_cm(),
        "triage-on-sync-status-unknown",
        "triage",
        &argocd_vars(app),
    );
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let d = triage.deliveries().await.pop().unwrap();
    assert_eq!(signals(&d)[0].kind, SignalKind::SyncUnknown);

    assert_eq!(triage.deliveries().await.len(), 4);
    triage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_compat_templates_are_repaired_or_refused_with_the_position() {
    let triage = TestServer::start(|_| {}).await;
    // A multi-source app: `.app.spec.source.repoURL` renders "<no value>".
    let mut app = failed_sync(application());
    let source = app["spec"]
        .as_object_mut()
        .unwrap()
        .remove("source")
        .unwrap();
    app["spec"]["sources"] = json!([source]);

    let r = render_argocd(
        &compat_cm(),
        "compat-naive",
        "triage",
        &argocd_vars(app.clone()),
    );
    assert!(
        r.body.contains("\"repo_url\": \"<no value>\""),
        "{}",
        r.body
    );
    assert!(
        serde_json::from_str::<Value>(&r.body).is_err(),
        "the naive template must produce invalid JSON for this test to mean anything"
    );
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let d = triage.deliveries().await.pop().unwrap();
    assert_eq!(
        d.body,
        r.body.as_bytes(),
        "the original bytes are kept, not the repair"
    );
    let s = &signals(&d)[0];
    let detail = s.argocd.as_ref().unwrap();
    assert!(detail.compat && detail.repaired);
    assert_eq!(s.kind, SignalKind::SyncFailed);
    assert_eq!(detail.trigger.as_deref(), Some("on-sync-failed"));
    assert_eq!(s.message.as_deref(), Some(FAILED_MESSAGE));
    assert!(detail.sources.is_empty(), "<no value> is null");
    assert_eq!(s.cluster, None, "destination.server is absent: <no value>");
    assert_eq!(detail.destination_namespace.as_deref(), Some("test-lla"));
    assert_eq!(detail.resources.len(), 2);

    // Go map syntax where JSON belongs: 400 naming line and column, nothing stored.
    let r = render_argocd(
        &compat_cm(),
        "compat-broken",
        "triage",
        &argocd_vars(app.clone()),
    );
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let e = a.error();
    assert!(e.contains("line 3 column"), "{e}");
    assert!(e.contains("toJson"), "{e}");

    // A template without `method:` makes Argo CD send GET: 405 that says what to do.
    let r = render_argocd(&compat_cm(), "compat-get", "triage", &argocd_vars(app));
    assert_eq!(r.method, "GET");
    let a = send_rendered(&triage, &r).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
    assert!(a.error().contains("method: POST"), "{}", a.body);

    assert_eq!(triage.deliveries().await.len(), 1);
    triage.stop().await;
}

// ---------------------------------------------------------------------------------------
// Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_message_and_nothing_is_stored() {
    let triage = TestServer::start(|c| {
        c.server.body_limit = bytesize::ByteSize::kib(64);
        c.argocd.hmac_secret = Some(Secret::new("hmac-key"));
    })
    .await;
    let am = |body: &[u8]| triage.post("/v1/alertmanager", Some(AM_TOKEN), body.to_vec());
    let firing = fixture("alertmanager/crashlooping-group-firing.json");
    let mut wrong_version: Value = serde_json::from_slice(&firing).unwrap();
    wrong_version["version"] = json!("3");
    // Deep nesting where the payload allows any JSON: an unknown field, or Argo CD.
    let deep_array = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep = format!(
        "{{\"extra\": {deep_array},{}",
        &String::from_utf8_lossy(&firing)[1..]
    );
    let mut oversize: Value = serde_json::from_slice(&firing).unwrap();
    oversize["alerts"][0]["annotations"]["description"] = json!("x".repeat(70 * 1024));

    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        ("empty body", am(b"").await, 400, "empty body"),
        ("not JSON", am(b"hello").await, 400, "not valid JSON"),
        (
            "wrong shape",
            am(br#"{"hello": "world"}"#).await,
            400,
            "missing field",
        ),
        (
            "wrong version",
            am(&serde_json::to_vec(&wrong_version).unwrap()).await,
            400,
            "version \"3\"",
        ),
        (
            "deep nesting",
            am(deep.as_bytes()).await,
            400,
            "deeper than 127",
        ),
        (
            "argocd deep nesting",
            triage
                .post(
                    "/v1/argocd",
                    Some(ARGO_TOKEN),
                    deep_array.clone().into_bytes(),
                )
                .await,
            400,
            "deeper than 127",
        ),
        (
            "invalid UTF-8",
            am(b"{\"version\": \"4\", \"receiver\": \"\xc3\x28\"}").await,
            400,
            "byte offset 30",
        ),
        (
            "oversize",
            am(&serde_json::to_vec(&oversize).unwrap()).await,
            413,
            "64.0 KiB",
        ),
        (
            "wrong token",
            triage
                .post("/v1/alertmanager", Some("nope"), firing.clone())
                .await,
            401,
            "missing or invalid credentials",
        ),
        (
            "missing token",
            triage.post("/v1/alertmanager", None, firing.clone()).await,
            401,
            "missing or invalid credentials",
        ),
        (
            "token of the other source",
            triage
                .post("/v1/alertmanager", Some(ARGO_TOKEN), firing.clone())
                .await,
            401,
            "missing or invalid credentials",
        ),
        (
            "wrong HMAC",
            Answer::from(
                triage
                    .http
                    .post(triage.url("/v1/argocd"))
                    .header("x-hub-signature-256", "sha256=00ff")
                    .body(b"{\"app_name\":\"x\"}".to_vec())
                    .send()
                    .await
                    .unwrap(),
            )
            .await,
            401,
            "missing or invalid credentials",
        ),
        (
            "argocd wrong shape",
            triage
                .post(
                    "/v1/argocd",
                    Some(ARGO_TOKEN),
                    br#"{"application": "x"}"#.to_vec(),
                )
                .await,
            400,
            "unexpected JSON shape",
        ),
    ];
    for (what, answer, status, needle) in &cases {
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        let e = answer.error();
        assert!(e.contains(needle), "{what}: {e:?} lacks {needle:?}");
        assert!(!e.contains(AM_TOKEN) && !e.contains("hmac-key"));
    }
    let unauthorized = &cases[8].1;
    assert_eq!(
        unauthorized.header("www-authenticate"),
        Some("Bearer realm=\"triage\"")
    );

    // Oversize without Content-Length (chunked): refused while reading.
    let chunk = "y".repeat(40 * 1024);
    let request = format!(
        "POST /v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AM_TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let (status, text) = raw_http(triage.addr(), request.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("64.0 KiB"), "{text}");

    assert!(
        triage.deliveries().await.is_empty(),
        "nothing may be stored"
    );
    assert_eq!(triage.get("/healthz").await.status, 200);
    assert_eq!(triage.get("/readyz").await.status, 200);
    assert_eq!(am(&firing).await.status, 202, "still serving");
    let metrics = triage.get("/metrics").await.body;
    for line in [
        "triage_ingest_deliveries_total{source=\"alertmanager\",outcome=\"bad_request\"} 6",
        "triage_ingest_deliveries_total{source=\"alertmanager\",outcome=\"too_large\"} 2",
        "triage_ingest_deliveries_total{source=\"alertmanager\",outcome=\"unauthorized\"} 3",
        "triage_ingest_deliveries_total{source=\"alertmanager\",outcome=\"accepted\"} 1",
        "triage_ingest_signals_total{source=\"alertmanager\",kind=\"alert\",status=\"firing\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    triage.stop().await;
}

/// Decision (docs/ingest.md): label and annotation values are not capped on their own;
/// the body limit bounds them. Alertmanager never retries a 4xx, so refusing one huge
/// value would drop every alert of the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_label_values_within_the_body_limit_are_stored_intact() {
    let triage = TestServer::start(|_| {}).await;
    let mut body: Value =
        serde_json::from_slice(&fixture("alertmanager/crashlooping-group-firing.json")).unwrap();
    let huge = "z".repeat(1024 * 1024);
    body["alerts"][0]["labels"]["huge"] = json!(huge);
    let a = triage
        .post(
            "/v1/alertmanager",
            Some(AM_TOKEN),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let d = triage.deliveries().await.pop().unwrap();
    assert_eq!(signals(&d)[0].labels["huge"].len(), 1024 * 1024);

    // A large Argo CD Application (parsed off the async workers) is accepted too.
    let mut app = application();
    app["metadata"]["annotations"]["big"] = json!("a".repeat(2 * 1024 * 1024));
    let body = serde_json::to_vec(
        &json!({"triage": "argocd/v1", "trigger": "on-sync-failed", "app": app}),
    )
    .unwrap();
    let a = triage.post("/v1/argocd", Some(ARGO_TOKEN), body).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let d = triage.deliveries().await.pop().unwrap();
    assert_eq!(signals(&d)[0].annotations["big"].len(), 2 * 1024 * 1024);
    triage.stop().await;
}

// ---------------------------------------------------------------------------------------
// Auth modes, duplicates, limits, probes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_basic_hmac_and_anonymous_senders() {
    let triage = TestServer::start(|c| {
        c.alertmanager.tokens = vec![Secret::new("rotated-in")];
        c.alertmanager.basic_username = Some("alertmanager".into());
        c.alertmanager.basic_password = Some(Secret::new("pw"));
        c.argocd.token = None;
        c.argocd.hmac_secret = Some(Secret::new("hmac-key"));
        c.argocd.hmac_header = "X-Gitea-Signature".into();
    })
    .await;
    let firing = fixture("alertmanager/crashlooping-group-firing.json");
    let vary = |n: u32| {
        let mut v: Value = serde_json::from_slice(&firing).unwrap();
        v["groupKey"] = json!(format!("variant-{n}"));
        serde_json::to_vec(&v).unwrap()
    };
    assert_eq!(
        triage
            .post("/v1/alertmanager", Some(AM_TOKEN), vary(1))
            .await
            .status,
        202
    );
    assert_eq!(
        triage
            .post("/v1/alertmanager", Some("rotated-in"), vary(2))
            .await
            .status,
        202
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("alertmanager:pw");
    let a = Answer::from(
        triage
            .http
            .post(triage.url("/v1/alertmanager"))
            .header("authorization", format!("Basic {basic}"))
            .body(vary(3))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let a = triage.post("/v1/alertmanager", None, vary(4)).await;
    assert_eq!(a.status, 401);
    let challenges: Vec<&str> = a
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"triage\"",
            "Basic realm=\"triage\", charset=\"UTF-8\""
        ]
    );

    // HMAC over the raw body, header without the prefix (Gitea style).
    let body = br#"{"app_name": "web", "health_status": "Degraded"}"#.to_vec();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hmac-key").unwrap();
    mac.update(&body);
    let sig = hex::encode(mac.finalize().into_bytes());
    let signed = |sig: &str, body: Vec<u8>| {
        triage
            .http
            .post(triage.url("/v1/argocd"))
            .header("x-gitea-signature", sig)
            .body(body)
            .send()
    };
    let a = Answer::from(signed(&sig, body.clone()).await.unwrap()).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let mut tampered = body.clone();
    tampered[3] = b'X';
    let a = Answer::from(signed(&sig, tampered).await.unwrap()).await;
    assert_eq!(a.status, 401);

    let senders: Vec<String> = triage
        .deliveries()
        .await
        .into_iter()
        .map(|d| d.sender)
        .collect();
    assert_eq!(
        senders,
        ["token:1", "token:2", "basic:alertmanager", "hmac"]
    );
    triage.stop().await;

    // Anonymous only when explicitly allowed, identified by the peer address.
    let open = TestServer::start(|c| c.alertmanager.allow_unauthenticated = true).await;
    let a = open
        .post(
            "/v1/alertmanager",
            None,
            fixture("alertmanager/crashlooping-group-firing.json"),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(open.deliveries().await[0].sender, "anonymous@127.0.0.1");
    open.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_delivery_is_a_duplicate_and_stored_once() {
    let triage = TestServer::start(|_| {}).await;
    let body = fixture("alertmanager/crashlooping-group-firing.json");
    let first = triage
        .post("/v1/alertmanager", Some(AM_TOKEN), body.clone())
        .await;
    assert_eq!(first.status, 202);
    let again = triage
        .post("/v1/alertmanager", Some(AM_TOKEN), body.clone())
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["delivery_id"], first.json()["delivery_id"]);
    // The same bytes from the other source are not a duplicate of it (and not valid
    // Argo CD either).
    assert_eq!(
        triage
            .post("/v1/argocd", Some(ARGO_TOKEN), body)
            .await
            .status,
        400
    );
    assert_eq!(triage.deliveries().await.len(), 1);
    triage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_senders_get_a_status_they_retry() {
    let triage = TestServer::start(|c| {
        for s in [&mut c.alertmanager, &mut c.argocd] {
            s.rate_limit_per_second = 1;
            s.rate_limit_burst = 2;
        }
    })
    .await;
    let firing = fixture("alertmanager/crashlooping-group-firing.json");
    let mut statuses = Vec::new();
    for n in 0..3 {
        let mut v: Value = serde_json::from_slice(&firing).unwrap();
        v["groupKey"] = json!(n.to_string());
        statuses.push(
            triage
                .post(
                    "/v1/alertmanager",
                    Some(AM_TOKEN),
                    serde_json::to_vec(&v).unwrap(),
                )
                .await,
        );
    }
    assert_eq!(statuses[0].status, 202);
    assert_eq!(statuses[1].status, 202);
    let limited = &statuses[2];
    assert_eq!(
        limited.status, 503,
        "Alertmanager retries 5xx only: {}",
        limited.body
    );
    assert!(limited.header("retry-after").is_some());
    assert!(limited.error().contains("rate limit"));

    let argo = |n: u32| format!("{{\"app_name\": \"a{n}\"}}").into_bytes();
    assert_eq!(
        triage
            .post("/v1/argocd", Some(ARGO_TOKEN), argo(1))
            .await
            .status,
        202
    );
    assert_eq!(
        triage
            .post("/v1/argocd", Some(ARGO_TOKEN), argo(2))
            .await
            .status,
        202
    );
    let limited = triage.post("/v1/argocd", Some(ARGO_TOKEN), argo(3)).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(triage.deliveries().await.len(), 4);
    triage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_request_ids_and_unknown_paths() {
    let triage = TestServer::start(|_| {}).await;
    let h = triage.get("/healthz").await;
    assert_eq!(h.status, 200);
    assert!(h.header("x-request-id").is_some_and(|id| !id.is_empty()));

    let r = triage.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["components"]["journal"]["ready"], true);
    // A component another stage registers (the cluster snapshot) gates readiness.
    triage
        .server
        .as_ref()
        .unwrap()
        .readiness()
        .set_not_ready("cluster:prod", "initial list in progress");
    let r = triage.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["components"]["cluster:prod"]["detail"],
        "initial list in progress"
    );

    let a = Answer::from(
        triage
            .http
            .post(triage.url("/v1/alertmanager"))
            .bearer_auth(AM_TOKEN)
            .header("x-request-id", "from-the-sender-42")
            .body(fixture("alertmanager/crashlooping-group-firing.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 202);
    assert_eq!(a.header("x-request-id"), Some("from-the-sender-42"));
    assert_eq!(
        triage.deliveries().await[0].request_id,
        "from-the-sender-42"
    );

    let m = triage.get("/metrics").await;
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    for needle in [
        "triage_ingest_request_duration_seconds_bucket",
        "triage_journal_commit_duration_seconds_bucket",
        "triage_journal_batch_size_bucket",
        "# EOF",
    ] {
        assert!(m.body.contains(needle), "{needle}");
    }

    let nf = triage.get("/v2/nothing").await;
    assert_eq!(nf.status, 404);
    assert!(nf.error().contains("POST /v1/alertmanager"));
    let get = triage.get("/v1/alertmanager").await;
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
    triage.stop().await;
}

// ---------------------------------------------------------------------------------------
// Durability of the real binary

fn config_file(dir: &std::path::Path, synchronous: &str) -> std::path::PathBuf {
    let path = dir.join("triage.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\npath = {:?}\nsynchronous = \"{synchronous}\"\n\n[forge]\ndir = {:?}\n\n[alertmanager]\nrate_limit_per_second = 100000\nrate_limit_burst = 100000\n\n[log]\nlevel = \"warn\"\n",
            dir.join("triage.db"),
            dir.join("work-orders")
        ),
    )
    .unwrap();
    path
}

/// A delivery made distinct by `n`, and the `(delivery id, body)` acknowledged for it.
fn variant_body(n: u64) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("alertmanager/crashlooping-group-firing.json")).unwrap();
    v["alerts"][0]["labels"]["pod"] = json!(format!("store-front-{n}"));
    v["alerts"][0]["fingerprint"] = json!(format!("{n:016x}"));
    serde_json::to_vec(&v).unwrap()
}

/// Sends distinct deliveries from `clients` concurrent connections until `stop` is
/// set; returns every acknowledged (id, body).
async fn burst(
    base: String,
    first: u64,
    clients: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(i64, Vec<u8>)> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut acked = Vec::new();
            let mut n = first + c * 1_000_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = variant_body(n);
                let r = http
                    .post(format!("{base}/v1/alertmanager"))
                    .bearer_auth(AM_TOKEN)
                    .body(body.clone())
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status().as_u16() != 202 {
                    break;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                acked.push((v["delivery_id"].as_i64().unwrap(), body));
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn assert_all_stored(db: &std::path::Path, acked: &[(i64, Vec<u8>)]) {
    let journal = triage::store::SqliteJournal::open(
        db,
        triage::config::SqliteSync::Full,
        triage::store::JournalOptions {
            dedup_window: Duration::from_secs(300),
            batch_max: 64,
        },
        triage::metrics::JournalMetrics::default(),
    )
    .unwrap();
    for (id, body) in acked {
        let d = journal
            .get(triage::store::DeliveryId(*id))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged delivery {id} is missing"));
        assert_eq!(&d.body, body, "delivery {id} holds other bytes");
    }
    journal.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_deliveries_survive_kill_9_and_sigterm_drains() {
    for sync in ["full", "normal"] {
        let dir = tempfile::tempdir().unwrap();
        let config = config_file(dir.path(), sync);
        let env = [("TRIAGE_ALERTMANAGER_TOKEN", AM_TOKEN)];
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

        let mut p = TriageProcess::start(&config, &env).await;
        let sender = tokio::spawn(burst(p.base.clone(), 0, 16, stop.clone()));
        // Kill while the burst is in full flight.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = sender.await.unwrap();
        assert!(
            acked.len() > 50,
            "{sync}: only {} acknowledged",
            acked.len()
        );
        assert_all_stored(&dir.path().join("triage.db"), &acked).await;

        // Restarted on the same database, it serves; SIGTERM during a burst drains the
        // in-flight requests, flushes the journal and exits 0.
        let mut p = TriageProcess::start(&config, &env).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = tokio::spawn(burst(p.base.clone(), 500_000, 16, stop.clone()));
        tokio::time::sleep(Duration::from_millis(700)).await;
        p.signal("-TERM");
        let status = tokio::task::spawn_blocking(move || {
            let s = p.child.wait();
            (s, p)
        })
        .await
        .unwrap()
        .0
        .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(status.success(), "{sync}: exit status {status:?}");
        let acked_after = sender.await.unwrap();
        assert!(!acked_after.is_empty());
        assert_all_stored(&dir.path().join("triage.db"), &acked_after).await;
        assert!(
            !dir.path().join("triage.db-wal").exists()
                || std::fs::metadata(dir.path().join("triage.db-wal"))
                    .unwrap()
                    .len()
                    == 0,
            "a clean stop checkpoints the WAL"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Shipped configuration snippets

#[test]
fn shipped_alertmanager_and_argocd_config_validate() {
    let out = std::process::Command::new("amtool")
        .args(["check-config"])
        .arg(repo().join("alertmanager/alertmanager.yml"))
        .output()
        .expect("amtool is missing: install prometheus-alertmanager (.ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The manifests against the Kubernetes schemas (pip kubernetes-validate, .ci/run).
    let out = std::process::Command::new("kubernetes-validate")
        .arg(repo().join("argocd/argocd-notifications-cm.yaml"))
        .arg(repo().join("argocd/argocd-notifications-secret.example.yaml"))
        .output()
        .expect("kubernetes-validate is missing: pip install kubernetes-validate (.ci/run does)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The component applied to a stand-in of Argo CD's own ConfigMap. Kustomize wants
    // relative paths, so the scratch kustomization lives under target/.
    std::fs::create_dir_all(repo().join("target")).unwrap();
    let dir = tempfile::tempdir_in(repo().join("target")).unwrap();
    std::fs::write(
        dir.path().join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-notifications-cm\n  namespace: argocd\ndata:\n  service.slack: |\n    token: $slack-token\n",
    )
    .unwrap();
    let component = "../../argocd";
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- cm.yaml\ncomponents:\n- {component}\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", "--load-restrictor=LoadRestrictionsNone"])
        .arg(dir.path())
        .output()
        .expect("kubectl is missing");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let data = built["data"].as_object().unwrap();
    assert!(data.contains_key("service.slack"), "existing keys are kept");
    for trigger in [
        "on-sync-failed",
        "on-health-degraded",
        "on-sync-status-unknown",
        "on-deployed",
    ] {
        let t = data[&format!("trigger.{trigger}")].as_str().unwrap();
        assert!(
            t.contains(&format!("triage-{trigger}")) && t.contains("oncePer"),
            "{t}"
        );
        let tmpl = data[&format!("template.triage-{trigger}")]
            .as_str()
            .unwrap();
        assert!(
            tmpl.contains("method: POST") && tmpl.contains("toJson"),
            "{tmpl}"
        );
        assert!(!tmpl.contains("\"{{"), "no quoted interpolation: {tmpl}");
    }
    let service = data["service.webhook.triage"].as_str().unwrap();
    assert!(service.contains("Bearer $triage-token") && !service.contains("token="));
    assert!(data["subscriptions"].as_str().unwrap().contains("triage"));
}

#[test]
fn annotated_example_config_is_valid_and_covers_every_section() {
    let path = repo().join("examples/triage.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = triage::config::Config::load_from(
        Some(&path),
        Vec::<(String, String)>::new(),
        &triage::config::Overrides::default(),
    )
    .unwrap();
    // Loaded like the example, so that values resolved at load (forge.kind = "auto")
    // compare as they are used.
    let defaults = triage::config::Config::load_from(
        None,
        Vec::<(String, String)>::new(),
        &triage::config::Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        config.to_masked_toml().unwrap(),
        defaults.to_masked_toml().unwrap(),
        "the example documents the defaults; change both together"
    );
    for section in triage::config::SECTIONS {
        assert!(
            text.contains(&format!("[{section}]"))
                || text.contains(&format!("[[{section}]]"))
                || text.contains(&format!("[{section}.")),
            "examples/triage.toml lacks [{section}]"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_answers_503_so_senders_retry_and_readiness_drops() {
    let triage = TestServer::start(|_| {}).await;
    // The journal stops accepting (as when its disk fails or it is closed).
    triage.journal().close().await.unwrap();
    let a = triage
        .post(
            "/v1/alertmanager",
            Some(AM_TOKEN),
            fixture("alertmanager/crashlooping-group-firing.json"),
        )
        .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.error().contains("retry"), "{}", a.body);
    let r = triage.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["components"]["journal"]["ready"], false);
    assert_eq!(
        triage.get("/healthz").await.status,
        200,
        "alive, just not ready"
    );
    let metrics = triage.get("/metrics").await.body;
    assert!(
        metrics.contains(
            "triage_ingest_deliveries_total{source=\"alertmanager\",outcome=\"store_error\"} 1"
        ),
        "{metrics}"
    );
    triage.stop().await;
}

// ---------------------------------------------------------------------------------------
// Forge webhooks in

/// `POST /v1/github` and `/v1/gitea` on the running server: refused without a secret or
/// with a bad signature, other events ignored, issues Triage did not file left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_webhooks_are_verified_and_routed() {
    use triage::forge::webhook::{gitea_signature, github_signature};
    let unconfigured = TestServer::start(|_| {}).await;
    let closed = fixture("github/issues_closed_webhook_event.json");
    let r = unconfigured
        .http
        .post(unconfigured.url("/v1/github"))
        .header("x-github-event", "issues")
        .header(
            "x-hub-signature-256",
            github_signature(b"anything", &closed),
        )
        .body(closed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body = r.text().await.unwrap();
    assert!(body.contains("github.webhook_secret"), "{body}");
    unconfigured.stop().await;

    let triage = TestServer::start(|c| {
        c.github.webhook_secret = Some(Secret::new("gh-secret"));
        c.gitea.webhook_secret = Some(Secret::new("gitea-secret"));
    })
    .await;
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut req = triage.http.post(triage.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };

    // A tampered body, a signature with the wrong secret, none at all.
    let mut tampered = closed.clone();
    tampered[10] ^= 1;
    for (sig, body) in [
        (Some(github_signature(b"gh-secret", &closed)), tampered),
        (Some(github_signature(b"wrong", &closed)), closed.clone()),
        (None, closed.clone()),
    ] {
        let mut headers = vec![("x-github-event", "issues".to_string())];
        if let Some(sig) = sig {
            headers.push(("x-hub-signature-256", sig));
        }
        let (status, text) = post("/v1/github", headers, body).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("missing or invalid signature"), "{text}");
    }

    // Verified: a ping is ignored; a real closed event for an issue Triage did not file
    // (no key marker) is not ours.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let (status, text) = post(
        "/v1/github",
        vec![
            ("x-github-event", "ping".into()),
            ("x-hub-signature-256", github_signature(b"gh-secret", &ping)),
        ],
        ping,
    )
    .await;
    assert_eq!((status, text.contains("ignored")), (200, true), "{text}");
    let (status, text) = post(
        "/v1/github",
        vec![
            ("x-github-event", "issues".into()),
            (
                "x-hub-signature-256",
                github_signature(b"gh-secret", &closed),
            ),
        ],
        closed.clone(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "not_ours", "{v}");

    // Gitea signs without a prefix, in its own header.
    let gitea = fixture("gitea/issues_label_updated_webhook_event.json");
    let (status, text) = post(
        "/v1/gitea",
        vec![
            ("x-gitea-event", "issues".into()),
            (
                "x-gitea-signature",
                gitea_signature(b"gitea-secret", &gitea),
            ),
        ],
        gitea.clone(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = post(
        "/v1/gitea",
        vec![
            ("x-gitea-event", "issues".into()),
            ("x-gitea-signature", gitea_signature(b"gh-secret", &gitea)),
        ],
        gitea,
    )
    .await;
    assert_eq!(status, 401);

    // Verified but not an issues payload: 400 saying why.
    let junk = br#"{"action":"closed"}"#.to_vec();
    let (status, text) = post(
        "/v1/github",
        vec![
            ("x-github-event", "issues".into()),
            ("x-hub-signature-256", github_signature(b"gh-secret", &junk)),
        ],
        junk,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("invalid GitHub issues event payload"),
        "{text}"
    );

    let r = triage.get("/v1/github").await;
    assert_eq!(r.status, 405);
    assert!(r.body.contains("must use POST"), "{}", r.body);
    triage.stop().await;
}
