//! The work order itself: the built-in templates rendered for the real fixtures and
//! compared with golden files, the trimming at the forge's size limit, overrides from a
//! directory, redaction, labels, and `triage render` through the real binary.
//!
//! Golden files live in `tests/golden/`; `UPDATE_GOLDEN=1 cargo test --test templates`
//! rewrites them (read the diff before committing it). A difference fails the test
//! with a line diff.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use triage::commands::render::{self as render_cmd, Report};
use triage::config::{Config, LabelsConfig, Overrides};
use triage::forge::parse_key_marker;
use triage::render::templates::TemplateRenderer;
use triage::render::{self, CommentEvent, MAX_BODY_CHARS, MAX_TITLE_CHARS, Renderer};
use triage::signal::Source;
use triage::triage::context::{ContainerEvidence, EventGroup, PodEvidence};
use triage::triage::route::Action;
use triage::triage::workorder::WorkOrder;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures").join(path)).expect("fixture")
}

/// The configuration the goldens are rendered with (also written for the binary).
const CONFIG: &str = r#"
[kubernetes]
default_cluster = "prod"
"#;

fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("triage.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

fn config(snapshot: Option<&Path>) -> Config {
    let dir = tempfile::tempdir().unwrap();
    Config::load_from(
        Some(&config_file(dir.path())),
        Vec::<(String, String)>::new(),
        &Overrides {
            listen: None,
            snapshot: snapshot.map(Path::to_path_buf),
        },
    )
    .unwrap()
}

fn render_with(
    config: &Config,
    renderer: &dyn Renderer,
    payload: &[u8],
    source: Option<Source>,
    comments: bool,
) -> Report {
    let (clusters, _) = render_cmd::clusters(config).unwrap();
    render_cmd::render_payload(
        config,
        Arc::new(clusters),
        payload,
        source,
        renderer,
        comments,
    )
    .unwrap()
}

fn render(payload: &[u8], snapshot: Option<&Path>) -> Report {
    render_with(
        &config(snapshot),
        &TemplateRenderer::builtin(),
        payload,
        None,
        true,
    )
}

fn printed(report: &Report) -> String {
    let mut out = Vec::new();
    render_cmd::write_report(report, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Compares `actual` with `tests/golden/<name>`, or rewrites it with `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run UPDATE_GOLDEN=1 cargo test --test templates and review it",
            path.display()
        )
    });
    if expected != actual {
        pretty_assertions::assert_str_eq!(
            expected,
            actual,
            "{} differs (UPDATE_GOLDEN=1 rewrites it after review)",
            path.display()
        );
    }
}

/// The body's fenced JSON block.
fn json_block(body: &str) -> Value {
    let start = body.find("```json\n").expect("json block") + "```json\n".len();
    let end = start + body[start..].find("\n```").expect("closing fence");
    serde_json::from_str(&body[start..end]).expect("valid JSON")
}

/// The human part: everything before the JSON block.
fn human(body: &str) -> &str {
    &body[..body
        .find("<details><summary>Work order (JSON)")
        .expect("JSON block")]
}

// ---------------------------------------------------------------------------------------
// Payloads derived from the real captures

/// The real Application (`tests/fixtures/argocd/application-real-synced.yaml`) as JSON.
fn real_app() -> Value {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/argocd/application-real-synced.yaml"))
            .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// An Argo CD notification in Triage's `argocd/v1` shape (the templates in `argocd/`).
fn argocd_body(trigger: &str, app: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "triage": "argocd/v1",
        "trigger": trigger,
        "app": app,
        "context": {"argocdUrl": "https://argocd.example.com", "notificationType": "webhook"},
    }))
    .unwrap()
}

/// The real Application after a failed sync: phase Failed, the Deployment refused by
/// an admission webhook, a message with quotes, a backtick, a pipe and newlines.
fn failed_sync_app(message: &str, resource_message: &str) -> Value {
    let mut app = real_app();
    let status = &mut app["status"];
    status["sync"]["status"] = "OutOfSync".into();
    let op = &mut status["operationState"];
    op["phase"] = "Failed".into();
    op["message"] = message.into();
    let deployment = &mut op["syncResult"]["resources"][1];
    assert_eq!(deployment["kind"], "Deployment");
    deployment["status"] = "SyncFailed".into();
    deployment["message"] = resource_message.into();
    app
}

const SYNC_MESSAGE: &str = "one or more objects failed to apply, reason: Deployment.apps \"test-lla\" is invalid: spec.template.spec.containers[0].image: Required value\nadmission webhook \"validate.kyverno.svc\" denied the request: | policy `require-image` failed";
const RESOURCE_MESSAGE: &str = "Deployment.apps \"test-lla\" is invalid:\nspec.template.spec.containers[0].image: Required value";

/// An `on-health-degraded` notification for the Application that deploys the
/// Deployment of `tests/fixtures/kubernetes/deployment-degraded.yaml`.
fn degraded_rollout_body() -> Vec<u8> {
    let mut app = real_app();
    app["metadata"]["name"] = "guestbook-default".into();
    app["metadata"]["namespace"] = "argocd".into();
    app["spec"]["destination"] =
        json!({"server": "https://kubernetes.default.svc", "namespace": "default"});
    app["spec"]["source"] = json!({
        "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
        "path": "guestbook",
        "targetRevision": "HEAD",
    });
    let status = &mut app["status"];
    status["health"] = json!({
        "status": "Degraded",
        "message": "Deployment \"guestbook-ui\" exceeded its progress deadline",
        "lastTransitionTime": "2018-07-18T06:29:23Z",
    });
    status["resources"] = json!([
        {"kind": "Service", "version": "v1", "namespace": "default", "name": "guestbook-ui",
         "status": "Synced", "health": {"status": "Healthy"}},
        {"group": "apps", "kind": "Deployment", "version": "v1", "namespace": "default",
         "name": "guestbook-ui", "status": "Synced",
         "health": {"status": "Degraded", "message": "Deployment \"guestbook-ui\" exceeded its progress deadline"}},
    ]);
    for r in status["operationState"]["syncResult"]["resources"]
        .as_array_mut()
        .unwrap()
    {
        r["name"] = "guestbook-ui".into();
        r["namespace"] = "default".into();
        let kind = r["kind"].as_str().unwrap().to_lowercase();
        r["message"] = format!("{kind}/guestbook-ui serverside-applied").into();
    }
    argocd_body("on-health-degraded", app)
}

fn degraded_snapshot() -> PathBuf {
    repo().join("tests/fixtures/kubernetes/deployment-degraded.yaml")
}

// ---------------------------------------------------------------------------------------
// Golden files

#[test]
fn golden_crashlooping_pod_group() {
    let report = render(
        &fixture("alertmanager/crashlooping-group-firing.json"),
        None,
    );
    assert_eq!(report.rendered.len(), 1, "{:?}", report.skipped);
    let r = &report.rendered[0];
    let wo = &r.work_order;
    assert_eq!(wo.key, "prod/pets/deployment/store-front");
    let route = wo.route.as_ref().unwrap();
    assert_eq!(
        (route.action, route.priority.map(|p| p.as_str())),
        (Action::Escalate, Some("P0"))
    );
    let body = &r.draft.body;
    let summary = body.lines().next().unwrap();
    assert_eq!(
        summary,
        "🔴 `deployment pets/store-front` in cluster `prod` is **red** since 2026-11-23 15:58 UTC: 0 of 2 replicas ready. **P0 · escalate: act now.**"
    );
    assert!(
        body.contains(
            "> **Likely cause:** upstream data/statefulset/orders-db is degraded (yellow)"
        )
    );
    assert!(body.contains("kubectl -n pets logs store-front-7d9f-abc -c store-front --previous"));
    assert!(body.contains("kubectl -n data describe statefulset/orders-db"));
    assert!(body.contains("| `orders-db` | `statefulset data/orders-db` | 🟡 yellow"));
    assert_eq!(json_block(body)["key"], wo.key);
    assert_eq!(parse_key_marker(body), Some(wo.key.as_str()));
    assert_eq!(
        r.comments.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [
            "repeat",
            "relapse",
            "route_change",
            "recovered",
            "reopened",
            "closed"
        ]
    );
    golden("crashlooping-group.md", &printed(&report));
}

#[test]
fn golden_failed_sync_with_quotes_and_newlines() {
    let body = argocd_body(
        "on-sync-failed",
        failed_sync_app(SYNC_MESSAGE, RESOURCE_MESSAGE),
    );
    let report = render(&body, None);
    assert_eq!(report.rendered.len(), 1);
    let r = &report.rendered[0];
    assert_eq!(
        r.draft.title,
        "[P1] application velero-test in prod: sync failed"
    );
    let text = &r.draft.body;
    // The message keeps its lines, quotes, backtick and pipe inside a fence the
    // backtick cannot close; the table cell has them flattened and escaped.
    assert!(
        text.contains(&format!("```\n{SYNC_MESSAGE}\n```")),
        "{text}"
    );
    assert!(text.contains(
        "| `Deployment` `test-lla/test-lla` | `SyncFailed` | Deployment.apps \"test-lla\" is invalid: spec.template.spec.containers[0].image: Required value |"
    ));
    assert!(text.contains("argocd app get argo-cd/velero-test --show-operation"));
    assert_eq!(
        json_block(text)["argocd"]["operation_message"],
        SYNC_MESSAGE,
        "the JSON block carries the message exactly"
    );
    golden("failed-sync.md", &printed(&report));
}

#[test]
fn golden_degraded_rollout() {
    let report = render(&degraded_rollout_body(), Some(&degraded_snapshot()));
    assert_eq!(report.rendered.len(), 1);
    let r = &report.rendered[0];
    assert_eq!(r.work_order.key, "prod/default/deployment/guestbook-ui");
    // Standard tier (none set), yellow → log: no agent label.
    assert_eq!(
        r.draft.labels[..4],
        [
            "source/argocd",
            "priority/P2",
            "tier/standard",
            "action/log"
        ]
    );
    assert!(
        r.draft
            .body
            .contains("- **Owner:** *not set* — add `deployscope.dev/owner`")
    );
    assert!(
        r.draft
            .body
            .contains("kubectl -n default rollout history deployment/guestbook-ui")
    );
    golden("degraded-rollout.md", &printed(&report));
}

// ---------------------------------------------------------------------------------------
// Trimming at the limit

/// The crash-looping work order with `pods` pods and `events` event groups of evidence.
fn huge(pods: usize, events: usize) -> WorkOrder {
    let report = render(
        &fixture("alertmanager/crashlooping-group-firing.json"),
        None,
    );
    let mut wo = report.rendered[0].work_order.clone();
    let ctx = wo.context.as_mut().unwrap();
    ctx.evidence.pods = (0..pods)
        .map(|i| PodEvidence {
            name: format!("store-front-7d9f-{i:05}"),
            node: Some(format!("node-{}", i % 7)),
            phase: Some("Running".into()),
            ready: false,
            containers: vec![ContainerEvidence {
                name: "store-front".into(),
                ready: false,
                restart_count: 40 + i as i32,
                waiting_reason: Some("CrashLoopBackOff".into()),
                waiting_message: Some(format!(
                    "back-off 5m0s restarting failed container=store-front pod=store-front-7d9f-{i:05}_pets"
                )),
                last_termination_reason: Some("OOMKilled".into()),
                last_exit_code: Some(137),
                last_finished_at: Some("2026-11-23T16:07:29Z".parse().unwrap()),
            }],
        })
        .collect();
    ctx.evidence.events = (0..events)
        .map(|i| EventGroup {
            reason: format!("Reason{i:04}"),
            count: 3,
            last_seen: Some("2026-11-23T16:09:12Z".parse().unwrap()),
            message: Some(format!("event {i}: {}", "x | `y` ".repeat(40))),
            objects: vec![format!("Pod/store-front-7d9f-{i:05}")],
        })
        .collect();
    wo
}

#[test]
fn trimming_keeps_summary_json_and_marker_and_says_what_it_left_out() {
    let renderer = TemplateRenderer::builtin();
    let labels = render::labels(&huge(0, 0), &LabelsConfig::default());
    let small = render::issue_draft(&renderer, &huge(3, 3), labels.clone()).unwrap();
    let wo = huge(400, 300);
    let draft = render::issue_draft(&renderer, &wo, labels).unwrap();
    let body = &draft.body;
    assert!(
        body.chars().count() <= MAX_BODY_CHARS,
        "{}",
        body.chars().count()
    );
    assert!(draft.title.chars().count() <= MAX_TITLE_CHARS);
    // The summary line is the same as without the flood of evidence.
    assert_eq!(body.lines().next(), small.body.lines().next());
    // Marker last, JSON block whole (compacted: the counts stay).
    assert!(
        body.trim_end()
            .ends_with("<!-- triage:key=prod/pets/deployment/store-front -->")
    );
    assert_eq!(parse_key_marker(body), Some(wo.key.as_str()));
    let doc = json_block(body);
    assert_eq!(doc["key"], wo.key);
    assert_eq!(doc["signals"]["occurrences"], 2);
    // Evidence was trimmed, said so, and nothing had to be cut.
    let human = human(body);
    assert!(
        !body.contains("truncated to fit"),
        "evidence trimming sufficed"
    );
    let shown = human.matches("| `store-front-7d9f-").count();
    assert!(shown < 400, "{shown} pods shown");
    assert!(
        human.contains(&format!(
            "*{} more pods not shown (issue size limit)",
            400 - shown
        )),
        "{human}"
    );
    assert!(human.contains("more event reasons not shown (issue size limit)"));
    // The sections after the evidence are all still there.
    for heading in ["### Dependencies", "### Troubleshooting", "### Links"] {
        assert!(human.contains(heading), "{heading} missing");
    }
    let evidence =
        &human[human.find("### Evidence").unwrap()..human.find("### Dependencies").unwrap()];
    golden("trimmed-evidence.md", evidence);
}

#[test]
fn a_body_too_long_even_without_evidence_is_cut_at_a_line_and_its_fence_closed() {
    let renderer = TemplateRenderer::builtin();
    let mut wo = huge(0, 0);
    // Notes are never trimmed: 200 of 400 characters each overflow any body.
    wo.context.as_mut().unwrap().notes = (0..200)
        .map(|i| format!("note {i}: {}", "n".repeat(400)))
        .collect();
    let draft = render::issue_draft(&renderer, &wo, Vec::new()).unwrap();
    assert!(draft.body.chars().count() <= MAX_BODY_CHARS);
    assert!(
        draft
            .body
            .contains("… (truncated to fit the forge's size limit)")
    );
    assert!(
        draft
            .body
            .starts_with("🔴 `deployment pets/store-front` in cluster `prod` is **red**")
    );
    assert_eq!(parse_key_marker(&draft.body), Some(wo.key.as_str()));
    // Every fence opened in the human part is closed.
    let fences = human(&draft.body)
        .lines()
        .filter(|l| l.starts_with("```"))
        .count();
    assert_eq!(fences % 2, 0);
}

// ---------------------------------------------------------------------------------------
// Overrides

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_directory_overriding_only_the_title_keeps_the_built_in_body() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "title.txt.j2",
        "{{ wo.route.priority if wo.route and wo.route.priority else \"P?\" }}: {{ subject }} ({{ wo.signals.occurrences | count(\"alert\") }})\n",
    );
    // Not a template: ignored.
    write(dir.path(), "README.md", "notes for the team");
    let custom = TemplateRenderer::from_dir(Some(dir.path())).unwrap();
    let builtin = TemplateRenderer::builtin();
    let payload = fixture("alertmanager/crashlooping-group-firing.json");
    let config = config(None);
    let ours = render_with(&config, &custom, &payload, None, false);
    let theirs = render_with(&config, &builtin, &payload, None, false);
    assert_eq!(
        ours.rendered[0].draft.title,
        "P0: deployment pets/store-front (2 alerts)"
    );
    assert_eq!(ours.rendered[0].draft.body, theirs.rendered[0].draft.body);
    let sources = custom.sources();
    assert_eq!(
        sources["title.txt.j2"],
        dir.path().join("title.txt.j2").display().to_string()
    );
    assert_eq!(sources["body.md.j2"], "builtin");
}

fn override_error(name: &str, text: &str) -> (String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, text);
    let err = TemplateRenderer::from_dir(Some(dir.path())).unwrap_err();
    (format!("{err:#}"), path)
}

#[test]
fn an_override_with_a_syntax_error_names_the_file_and_line() {
    let (err, path) = override_error(
        "body.md.j2",
        "Work order {{ wo.key }}\n\n{% for pod in wo.context.evidence.pods %}\n{{ pod.name }\n",
    );
    assert!(err.contains(&format!("{}:4", path.display())), "{err}");
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn an_override_naming_an_unknown_variable_or_field_fails_at_start() {
    // A field that is missing in some work orders (no route yet), read without a guard.
    let (err, path) = override_error("title.txt.j2", "{{ wo.route.priority }}: {{ subject }}\n");
    assert!(err.contains(&format!("{}:1", path.display())), "{err}");
    assert!(err.contains("`wo.route.priority` is undefined"), "{err}");
    // A variable that does not exist.
    let (err, path) = override_error("title.txt.j2", "{{ subject }}\n{{ owner }}\n");
    assert!(err.contains(&format!("{}:2", path.display())), "{err}");
    assert!(err.contains("unknown variable `owner`"), "{err}");
    // A misspelt field of a known one.
    let (err, path) = override_error(
        "comment_closed.md.j2",
        "Closed.\n\n{{ wo.contxt.health }}\n",
    );
    assert!(err.contains(&format!("{}:3", path.display())), "{err}");
    assert!(err.contains("unknown variable `wo.contxt`"), "{err}");
    // `event` exists in comments only.
    let (err, _) = override_error("body.md.j2", "{{ event.event }}\n");
    assert!(err.contains("unknown variable `event`"), "{err}");
    // A misspelt field of a loop variable: strict undefined, found by the sample render.
    let (err, path) = override_error(
        "body.md.j2",
        "{% if wo.context %}\n{% for p in wo.context.evidence.pods %}\n- {{ p.nme }}\n{% endfor %}\n{% endif %}\n",
    );
    assert!(err.contains(&format!("{}:3", path.display())), "{err}");
    assert!(err.contains("undefined"), "{err}");
    // A value that is missing in some work orders, printed without a guard.
    let (err, path) = override_error("body.md.j2", "Owner: {{ wo.context.annotations.owner }}\n");
    assert!(err.contains(&path.display().to_string()), "{err}");
    // A file Triage does not use: a typo would otherwise keep the built-in silently.
    let (err, _) = override_error("bodyy.md.j2", "x");
    assert!(err.contains("is not a template Triage uses"), "{err}");
}

#[test]
fn config_loading_checks_the_template_directory() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let bad = write(&templates, "title.txt.j2", "{{ wo.key }\n");
    let file = write(
        dir.path(),
        "triage.toml",
        &format!("[templates]\ndir = {:?}\n", templates.display().to_string()),
    );
    let err = Config::load_from(
        Some(&file),
        Vec::<(String, String)>::new(),
        &Overrides::default(),
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains(&format!("{}:1", bad.display())), "{err}");
}

#[test]
fn markdown_templates_escape_values_unless_a_filter_made_them_safe() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "body.md.j2",
        "{% if wo.argocd and wo.argocd.operation_message %}A: {{ wo.argocd.operation_message }}\nB: {{ wo.argocd.operation_message | code }}\n{% endif %}\n",
    );
    let renderer = TemplateRenderer::from_dir(Some(dir.path())).unwrap();
    let body = argocd_body(
        "on-sync-failed",
        failed_sync_app("a | b\n`c` <img src=x> *d*", "x"),
    );
    let report = render_with(&config(None), &renderer, &body, None, false);
    let text = human(&report.rendered[0].draft.body);
    assert!(
        text.contains(r"A: a \| b \`c\` \<img src=x> \*d\*"),
        "{text}"
    );
    assert!(
        text.contains(r"B: ``a \| b `c` <img src=x> *d*``"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Redaction

const TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

#[test]
fn tokens_in_sync_messages_and_annotations_never_reach_the_issue() {
    // Argo CD: the token in the operation message and a sync result message.
    let body = argocd_body(
        "on-sync-failed",
        failed_sync_app(
            &format!(
                "pull failed: https://x:{TOKEN}@github.com/foo/manifests-velero.git\nauth {TOKEN}"
            ),
            &format!("token {TOKEN} rejected"),
        ),
    );
    // Alertmanager: the token in an alert annotation (description) and a runbook URL.
    let mut group: Value =
        serde_json::from_slice(&fixture("alertmanager/crashlooping-group-firing.json")).unwrap();
    group["alerts"][0]["annotations"]["description"] =
        format!("crash looping; debug with GITHUB_TOKEN={TOKEN}").into();
    group["alerts"][0]["annotations"]["runbook_url"] =
        format!("https://runbooks.example.com/x?token={TOKEN}").into();
    // The cluster: the token in a deployscope annotation of the workload.
    let dir = tempfile::tempdir().unwrap();
    let cluster = std::fs::read_to_string(repo().join("examples/cluster.yaml"))
        .unwrap()
        .replace(
            "deployscope.dev/dashboard: https://grafana.example.com/d/store-front",
            &format!("deployscope.dev/dashboard: https://grafana.example.com/d/store-front?auth_token={TOKEN}"),
        );
    let snapshot = write(dir.path(), "cluster.yaml", &cluster);

    for (payload, snapshot) in [
        (body, None),
        (
            serde_json::to_vec(&group).unwrap(),
            Some(snapshot.as_path()),
        ),
    ] {
        let report = render(&payload, snapshot);
        let r = &report.rendered[0];
        let all = format!(
            "{}\n{}\n{}",
            r.draft.title,
            r.draft.body,
            r.comments
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            !all.contains("0123456789abcdefghij"),
            "token leaked:\n{all}"
        );
        assert!(all.contains("[REDACTED]"), "{all}");
        assert!(
            !serde_json::to_string(&r.work_order)
                .unwrap()
                .contains("0123456789abcdefghij"),
            "the work order document is redacted before rendering"
        );
        assert!(
            !json_block(&r.draft.body)
                .to_string()
                .contains("0123456789abcdefghij")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Labels

#[test]
fn labels_follow_the_route_and_the_agent_sleeps_through_log() {
    let crash = render(
        &fixture("alertmanager/crashlooping-group-firing.json"),
        None,
    );
    let wo = &crash.rendered[0].work_order;
    let config = LabelsConfig::default();
    assert_eq!(
        render::labels(wo, &config),
        [
            "cluster-doctor",
            "source/alertmanager",
            "priority/P0",
            "tier/critical",
            "action/escalate",
            wo.key_label.as_str(),
        ]
    );
    let degraded = render(&degraded_rollout_body(), Some(&degraded_snapshot()));
    let log = &degraded.rendered[0].work_order;
    assert_eq!(log.route.as_ref().unwrap().action, Action::Log);
    let labels = render::labels(log, &config);
    assert!(
        !labels.contains(&"cluster-doctor".to_string()),
        "{labels:?}"
    );

    // Escalating a log work order adds the agent label with the route labels.
    let mut inform = log.route.clone().unwrap();
    inform.action = Action::Inform;
    let old = render::route_labels(log.route.as_ref().unwrap(), &config);
    let new = render::route_labels(&inform, &config);
    assert!(!old.contains(&"cluster-doctor".to_string()));
    assert_eq!(new[0], "cluster-doctor");

    // `log` can be made to wake the agent, and the agent label turned off entirely.
    let all = LabelsConfig {
        agent_actions: vec![Action::Escalate, Action::Warn, Action::Inform, Action::Log],
        ..LabelsConfig::default()
    };
    assert_eq!(render::labels(log, &all)[0], "cluster-doctor");
    let none = LabelsConfig {
        agent: String::new(),
        ..LabelsConfig::default()
    };
    assert!(
        !render::labels(wo, &none)
            .iter()
            .any(|l| l == "cluster-doctor")
    );
}

#[test]
fn label_prefixes_are_configurable_and_each_kind_can_be_turned_off() {
    let report = render(
        &fixture("alertmanager/crashlooping-group-firing.json"),
        None,
    );
    let wo = &report.rendered[0].work_order;
    let config = LabelsConfig {
        agent: "doctor".into(),
        source_prefix: String::new(),
        priority_prefix: "prio:".into(),
        tier_prefix: String::new(),
        action_prefix: "do:".into(),
        ..LabelsConfig::default()
    };
    let labels = render::labels(wo, &config);
    assert_eq!(
        labels,
        ["doctor", "prio:P0", "do:escalate", wo.key_label.as_str()]
    );
    let specs = render::label_specs(&labels, &config);
    assert_eq!(specs[0].color, "5319e7");
    assert_eq!(
        specs[1].color, "b60205",
        "priority colours follow the prefix"
    );
    assert_eq!(specs[2].description, "Triage routing action");
    assert_eq!(specs[3].description, "Triage work-order key");
    // The reconcile command reads the route back through the same prefixes.
    let route = triage::commands::reconcile::route_from_labels(&labels, &config).unwrap();
    assert_eq!(route.action, Action::Escalate);
}

#[test]
fn label_names_longer_than_50_characters_are_refused_by_the_config() {
    let load = |toml: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "triage.toml", toml);
        Config::load_from(
            Some(&file),
            Vec::<(String, String)>::new(),
            &Overrides::default(),
        )
        .map_err(|e| format!("{e:#}"))
    };
    // A 39-character prefix + "best-effort" = 50: fits; one more does not.
    let ok = format!("[labels]\ntier_prefix = \"{}/\"\n", "t".repeat(38));
    load(&ok).unwrap();
    let long = format!("[labels]\ntier_prefix = \"{}/\"\n", "t".repeat(39));
    let err = load(&long).unwrap_err();
    assert!(
        err.contains("labels.tier_prefix") && err.contains("at most 50"),
        "{err}"
    );
    let err = load(&format!("[labels]\nagent = \"{}\"\n", "a".repeat(51))).unwrap_err();
    assert!(err.contains("labels.agent"), "{err}");
    let err = load("[labels]\nsource_prefix = \"a,b/\"\n").unwrap_err();
    assert!(err.contains("must not contain ','"), "{err}");
    let err = load("[labels]\nagent_actions = [\"page\"]\n").unwrap_err();
    assert!(err.contains("agent_actions"), "{err}");
    // Every label of every golden fits.
    for report in [
        render(
            &fixture("alertmanager/crashlooping-group-firing.json"),
            None,
        ),
        render(&degraded_rollout_body(), Some(&degraded_snapshot())),
    ] {
        for label in &report.rendered[0].draft.labels {
            assert!(label.chars().count() <= 50, "{label}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Every comment kind, for each template set

#[test]
fn every_comment_event_has_a_template_and_a_json_block() {
    let report = render(
        &fixture("alertmanager/crashlooping-group-firing.json"),
        None,
    );
    let r = &report.rendered[0];
    for (name, text) in &r.comments {
        let doc = json_block(text);
        assert_eq!(doc["event"], *name);
        assert_eq!(doc["key"], r.work_order.key);
        assert!(parse_key_marker(text).is_none(), "comments carry no marker");
    }
    let renderer = TemplateRenderer::builtin();
    let sample = triage::render::sample::rich();
    for event in triage::render::sample::events() {
        let text = render::comment_body(&renderer, &sample, &event).unwrap();
        assert!(!text.contains("none"), "{event:?}: {text}");
        if let CommentEvent::Recovered { closes_at: None } = event {
            assert!(text.contains("Automatic closing is off"), "{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// `triage render` through the binary

fn triage(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(args)
        .current_dir(repo())
        .env_remove("TRIAGE_CONFIG")
        .output()
        .expect("run triage");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn triage_render_prints_what_the_goldens_hold() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let config = config.to_str().unwrap();

    // Source detected from the content (version + alerts), embedded example cluster.
    let (code, out, err) = triage(&[
        "render",
        "tests/fixtures/alertmanager/crashlooping-group-firing.json",
        "--config",
        config,
        "--comments",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("alertmanager payload, 2 signals"), "{err}");
    assert!(err.contains("embedded example cluster"), "{err}");
    golden("crashlooping-group.md", &out);

    let failed = write(
        dir.path(),
        "sync-failed.json",
        std::str::from_utf8(&argocd_body(
            "on-sync-failed",
            failed_sync_app(SYNC_MESSAGE, RESOURCE_MESSAGE),
        ))
        .unwrap(),
    );
    let (code, out, err) = triage(&[
        "render",
        failed.to_str().unwrap(),
        "--config",
        config,
        "--comments",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("argocd payload"), "{err}");
    golden("failed-sync.md", &out);

    let degraded = write(
        dir.path(),
        "degraded.json",
        std::str::from_utf8(&degraded_rollout_body()).unwrap(),
    );
    let (code, out, err) = triage(&[
        "render",
        degraded.to_str().unwrap(),
        "--snapshot",
        "tests/fixtures/kubernetes/deployment-degraded.yaml",
        "--source",
        "argocd",
        "--config",
        config,
        "--comments",
    ]);
    assert_eq!(code, 0, "{err}");
    golden("degraded-rollout.md", &out);
}

#[test]
fn triage_render_with_templates_a_wrong_source_and_nothing_to_open() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "title.txt.j2", "custom: {{ wo.key }}");
    let (code, out, err) = triage(&[
        "render",
        "tests/fixtures/alertmanager/crashlooping-group-firing.json",
        "--templates",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("title: custom: default/pets/deployment/store-front\n"),
        "{out}"
    );
    assert!(err.contains("over the built-ins"), "{err}");

    // A broken override stops render with the file and line.
    write(
        dir.path(),
        "body.md.j2",
        "ok\n{% if wo.route %}\nnever closed\n",
    );
    let (code, _, err) = triage(&[
        "render",
        "tests/fixtures/alertmanager/crashlooping-group-firing.json",
        "--templates",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("body.md.j2:"), "{err}");

    // An Alertmanager body read as Argo CD: a clear parse error, exit 1.
    let (code, _, err) = triage(&[
        "render",
        "tests/fixtures/alertmanager/crashlooping-group-firing.json",
        "--source",
        "argocd",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not a valid Argo CD notification body"),
        "{err}"
    );

    // A failure the snapshot does not show (order-service is healthy): the pipeline
    // would suppress it as a transient; render shows it anyway and says so.
    let mut group: Value =
        serde_json::from_slice(&fixture("alertmanager/crashlooping-group-firing.json")).unwrap();
    group["alerts"] = json!([group["alerts"][0].clone()]);
    group["alerts"][0]["labels"] = json!({
        "alertname": "KubeDeploymentReplicasMismatch", "namespace": "pets",
        "deployment": "order-service", "job": "kube-state-metrics", "severity": "warning",
    });
    let healthy = write(dir.path(), "healthy.json", &group.to_string());
    let (code, out, err) = triage(&["render", healthy.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("the pipeline would not open default/pets/deployment/order-service now"),
        "{err}"
    );
    assert!(
        out.contains(
            "title: [P2] deployment pets/order-service in default: KubeDeploymentReplicasMismatch"
        ),
        "{out}"
    );

    // Resolved alerts open nothing.
    let (code, out, err) = triage(&[
        "render",
        "tests/fixtures/alertmanager/crashlooping-group-resolved.json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("nothing to render"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The variable reference

/// Every field a template can read is documented in docs/templates.md.
#[test]
fn docs_list_every_template_variable() {
    fn walk(path: &str, v: &Value, out: &mut Vec<String>) {
        const MAPS: &[&str] = &[
            "labels",
            "annotations",
            "group_labels",
            "common_labels",
            "common_annotations",
        ];
        // Objects documented once and referred to as "same shape as".
        const SAME: &[&str] = &[
            "wo.context.workload",
            "wo.context.app",
            "wo.context.dependencies[].workload",
            "wo.previous_issue",
            "event.from",
            "event.to",
            "event.signal.argocd",
        ];
        let map = path != "wo.context.annotations"
            && MAPS.iter().any(|m| path.ends_with(&format!(".{m}")));
        if SAME.contains(&path) || map {
            out.push(path.to_string());
            return;
        }
        // Leaves and lists of scalars; containers are documented through their fields.
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(&format!("{path}.{k}"), v, out);
                }
            }
            Value::Array(items) => match items.first() {
                Some(first @ Value::Object(_)) => walk(&format!("{path}[]"), first, out),
                _ => out.push(format!("{path}[]")),
            },
            _ => out.push(path.to_string()),
        }
    }
    let docs = std::fs::read_to_string(repo().join("docs/templates.md")).unwrap();
    let mut paths = Vec::new();
    walk(
        "wo",
        &serde_json::to_value(triage::render::sample::rich()).unwrap(),
        &mut paths,
    );
    for event in triage::render::sample::events() {
        walk("event", &serde_json::to_value(&event).unwrap(), &mut paths);
    }
    paths.sort();
    paths.dedup();
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !docs.contains(&format!("`{p}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/templates.md: {missing:#?}");
}
