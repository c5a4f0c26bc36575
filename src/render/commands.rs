//! Troubleshooting commands with the real names filled in, for what the work order
//! knows: a command appears only when its object is known and it can tell the reader
//! something (no `logs --previous` for a container that never restarted, no `argocd`
//! without an application). Every name is shell-quoted.

use serde::Serialize;

use super::markdown::shell_quote as q;
use crate::triage::context::{ContainerEvidence, HealthStatus, PodEvidence};
use crate::triage::workorder::WorkOrder;

/// One command and what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub run: String,
    pub why: String,
}

/// Pods whose commands are listed (the evidence is ordered worst first).
const PODS: usize = 2;

/// Waiting reasons that mean the container never ran: there are no logs to read, the
/// pod's description says why.
const NOT_STARTED: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ContainerCreating",
    "PodInitializing",
];

pub fn troubleshooting(wo: &WorkOrder) -> Vec<Command> {
    let mut out = Vec::new();
    let mut add = |run: String, why: String| {
        if !out.iter().any(|c: &Command| c.run == run) {
            out.push(Command { run, why });
        }
    };
    let ctx = wo.context.as_ref();
    let workload = wo
        .workload
        .as_ref()
        .or(ctx.and_then(|c| c.workload.as_ref()));
    let pods: &[PodEvidence] = ctx.map_or(&[], |c| &c.evidence.pods);

    if let Some(w) = workload {
        let ns = q(&w.namespace);
        let obj = q(&format!("{}/{}", w.kind.kubectl_name(), w.name));
        add(
            format!("kubectl -n {ns} describe {obj}"),
            "replicas, conditions and the latest events of the workload".into(),
        );
        let stuck = ctx.is_some_and(|c| {
            c.evidence
                .conditions
                .iter()
                .any(|c| c.kind == "Progressing" && c.status == "False")
        });
        if stuck && w.kind.kubectl_name() != "cronjob" && w.kind.kubectl_name() != "job" {
            add(
                format!("kubectl -n {ns} rollout history {obj}"),
                "the revisions of the stuck rollout".into(),
            );
        }
    }

    // A pod without a workload (a bare pod): its namespace is the key's second segment.
    let pod_ns = workload
        .map(|w| w.namespace.as_str())
        .or_else(|| wo.key.split('/').nth(1));
    if let Some(ns) = pod_ns {
        for pod in pods.iter().take(PODS) {
            if let Some(cmd) = pod_command(ns, pod) {
                add(cmd.run, cmd.why);
            }
        }
    }

    if let Some(first) = pods.first() {
        if let Some(ns) = pod_ns {
            add(
                format!(
                    "kubectl -n {} get events --field-selector involvedObject.name={} --sort-by=.lastTimestamp",
                    q(ns),
                    q(&first.name)
                ),
                format!("the events of pod {}", first.name),
            );
        }
    } else if let Some(w) = workload {
        add(
            format!(
                "kubectl -n {} get events --field-selector involvedObject.name={} --sort-by=.lastTimestamp",
                q(&w.namespace),
                q(&w.name)
            ),
            format!("the events of {} {}", w.kind.kubectl_name(), w.name),
        );
    }

    if let Some(ctx) = ctx {
        for d in &ctx.dependencies {
            let (Some(dw), Some(health)) = (&d.workload, d.health) else {
                continue;
            };
            if health == HealthStatus::Green {
                continue;
            }
            add(
                format!(
                    "kubectl -n {} describe {}",
                    q(&dw.namespace),
                    q(&format!("{}/{}", dw.kind.kubectl_name(), dw.name))
                ),
                format!(
                    "dependency {} is {}: a likely cause",
                    d.name,
                    health.as_str()
                ),
            );
        }
    }

    // Nothing but a namespace (an alert about a namespace, or a pod Triage cannot see):
    // its recent warnings.
    if workload.is_none()
        && wo.app.is_none()
        && let Some(ns) = wo.key.split('/').nth(1).filter(|ns| *ns != "_cluster")
    {
        add(
            format!(
                "kubectl -n {} get events --field-selector type=Warning --sort-by=.lastTimestamp",
                q(ns)
            ),
            format!("recent warnings in namespace {ns}"),
        );
    }

    if let Some(app) = &wo.app {
        let name = match app.namespace.as_deref() {
            Some(ns) if !ns.is_empty() && ns != "argocd" => format!("{ns}/{}", app.name),
            _ => app.name.clone(),
        };
        let name = q(&name);
        let phase = wo
            .argocd
            .as_ref()
            .and_then(|d| d.operation_phase.as_deref())
            .or(app.operation_phase.as_deref());
        let failed_sync = matches!(phase, Some("Failed" | "Error"));
        if failed_sync {
            add(
                format!("argocd app get {name} --show-operation"),
                "the application and its last sync operation, resource by resource".into(),
            );
        } else {
            add(
                format!("argocd app get {name}"),
                "the application's sync and health, resource by resource".into(),
            );
        }
        add(
            format!("argocd app history {name}"),
            "what was deployed when: the revision that broke it".into(),
        );
        let out_of_sync = wo
            .argocd
            .as_ref()
            .and_then(|d| d.sync_status.as_deref())
            .or(app.sync.as_deref())
            .is_some_and(|s| s != "Synced");
        if failed_sync || out_of_sync {
            add(
                format!("argocd app diff {name}"),
                "what Git wants that the cluster does not have".into(),
            );
        }
        if workload.is_none()
            && let Some(ns) = wo
                .argocd
                .as_ref()
                .and_then(|d| d.destination_namespace.as_deref())
        {
            add(
                format!(
                    "kubectl -n {} get events --field-selector type=Warning --sort-by=.lastTimestamp",
                    q(ns)
                ),
                "recent warnings in the application's namespace".into(),
            );
        }
    }
    out
}

/// The one command that says most about a troubled pod: the crashed run's logs, the
/// failed container's logs, or the pod's description when nothing ran.
fn pod_command(ns: &str, pod: &PodEvidence) -> Option<Command> {
    let troubled = |c: &&ContainerEvidence| {
        !c.ready
            || c.restart_count > 0
            || c.waiting_reason.is_some()
            || c.last_termination_reason.is_some()
    };
    let Some(c) = pod.containers.iter().find(troubled) else {
        if pod.phase.as_deref() == Some("Pending") || !pod.ready {
            return Some(Command {
                run: format!("kubectl -n {} describe pod/{}", q(ns), q(&pod.name)),
                why: format!("why pod {} is not running", pod.name),
            });
        }
        return None;
    };
    // Init containers show as `name (init)` in the evidence.
    let container = c.name.trim_end_matches(" (init)");
    let waiting = c.waiting_reason.as_deref().unwrap_or("");
    if NOT_STARTED.contains(&waiting) {
        return Some(Command {
            run: format!("kubectl -n {} describe pod/{}", q(ns), q(&pod.name)),
            why: format!("why container {container} cannot start ({waiting})"),
        });
    }
    if c.restart_count > 0 {
        let last = match (&c.last_termination_reason, c.last_exit_code) {
            (Some(r), Some(code)) => format!(" (last exit: {r}, code {code})"),
            (Some(r), None) => format!(" (last exit: {r})"),
            (None, Some(code)) => format!(" (last exit code {code})"),
            (None, None) => String::new(),
        };
        return Some(Command {
            run: format!(
                "kubectl -n {} logs {} -c {} --previous",
                q(ns),
                q(&pod.name),
                q(container)
            ),
            why: format!("output of the crashed run{last}"),
        });
    }
    if !waiting.is_empty() || c.last_termination_reason.is_some() {
        return Some(Command {
            run: format!(
                "kubectl -n {} logs {} -c {}",
                q(ns),
                q(&pod.name),
                q(container)
            ),
            why: format!("output of container {container}"),
        });
    }
    Some(Command {
        run: format!("kubectl -n {} describe pod/{}", q(ns), q(&pod.name)),
        why: format!("why pod {} is not ready", pod.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample;

    fn runs(wo: &WorkOrder) -> Vec<String> {
        troubleshooting(wo).into_iter().map(|c| c.run).collect()
    }

    #[test]
    fn each_pod_gets_the_command_that_tells_most() {
        let mut wo = sample::rich();
        let pods = &mut wo.context.as_mut().unwrap().evidence.pods;
        let mut pull = pods[0].clone();
        pull.name = "web-pull".into();
        pull.containers[0].restart_count = 0;
        pull.containers[0].last_termination_reason = None;
        pull.containers[0].waiting_reason = Some("ImagePullBackOff".into());
        let mut failed = pods[0].clone();
        failed.name = "job-x".into();
        failed.containers[0].restart_count = 0;
        failed.containers[0].waiting_reason = Some("Error".into());
        failed.containers[0].name = "setup (init)".into();
        pods.push(pull);
        pods.push(failed);
        let all = runs(&wo);
        assert!(all.contains(
            &"kubectl -n pets logs store-front-7d9f-abc -c store-front --previous".to_string()
        ));
        assert!(all.contains(&"kubectl -n pets describe pod/web-pull".to_string()));
        assert!(
            !all.iter().any(|c| c.contains("job-x")),
            "two pods at most: {all:?}"
        );
        // A failed init container without restarts: its logs, without --previous.
        let cmd = pod_command("pets", &wo.context.as_ref().unwrap().evidence.pods[2]).unwrap();
        assert_eq!(cmd.run, "kubectl -n pets logs job-x -c setup");
        // The red dependency and the failed sync.
        assert!(all.contains(&"kubectl -n data describe statefulset/orders-db".to_string()));
        assert!(all.contains(&"argocd app get store-front --show-operation".to_string()));
        assert!(all.contains(&"argocd app diff store-front".to_string()));
    }

    #[test]
    fn nothing_known_means_no_command_and_names_are_quoted() {
        assert!(runs(&sample::sparse()).is_empty());
        let mut wo = sample::sparse();
        wo.key = "prod/monitoring/alert/TargetDown".into();
        assert_eq!(
            runs(&wo),
            [
                "kubectl -n monitoring get events --field-selector type=Warning --sort-by=.lastTimestamp"
            ]
        );
        let mut wo = sample::rich();
        wo.workload.as_mut().unwrap().name = "we ird".into();
        assert!(runs(&wo)[0].ends_with("describe 'deployment/we ird'"));
    }
}
