//! The static snapshot: a file of Kubernetes objects instead of a live cluster.
//!
//! Two formats, detected from the content: multi-document YAML (`---` between objects,
//! as `kubectl get -o yaml` per object or hand-written manifests produce) and JSON, a
//! single object or a `kubectl get -o json` List (`kind: List` or `<Kind>List`, with
//! `items`). Lists may also appear as YAML documents. Kinds Triage does not read
//! (Services, ConfigMaps…) are skipped and counted; a kind it reads that does not parse
//! is an error naming the document and the object.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{AppView, EventView, PodView, ReplicaSetView, Workload};
use super::snapshot::{Limits, Snapshot};
use super::wire::{CronJob, DaemonSet, Deployment, Event, Job, Pod, ReplicaSet, StatefulSet};

/// What a load read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Objects applied to the snapshot.
    pub objects: usize,
    /// Objects of kinds Triage does not read (and Events that are not Warnings).
    pub skipped: usize,
}

/// Reads a snapshot file.
pub fn load_file(path: &Path, limits: Limits) -> anyhow::Result<(Snapshot, LoadReport)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read snapshot file {}", path.display()))?;
    load_str(&text, limits).with_context(|| format!("snapshot file {}", path.display()))
}

/// Reads a snapshot from text (YAML documents or JSON).
pub fn load_str(text: &str, limits: Limits) -> anyhow::Result<(Snapshot, LoadReport)> {
    let mut snapshot = Snapshot::new(limits, false);
    let mut report = LoadReport::default();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text).context("invalid JSON")?;
        apply_value(&mut snapshot, &mut report, value, "the JSON document")?;
    } else {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let where_ = format!("YAML document {}", i + 1);
            let yaml = serde_yaml_ng::Value::deserialize(doc)
                .with_context(|| format!("{where_}: invalid YAML"))?;
            if yaml.is_null() {
                continue;
            }
            let value = serde_json::to_value(&yaml)
                .with_context(|| format!("{where_}: cannot be read as a Kubernetes object"))?;
            apply_value(&mut snapshot, &mut report, value, &where_)?;
        }
    }
    if report.objects == 0 && report.skipped == 0 {
        bail!("no Kubernetes objects found");
    }
    Ok((snapshot, report))
}

fn describe(value: &Value) -> String {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let meta = value.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn typed<T: DeserializeOwned>(value: Value, what: &str, where_: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| format!("{where_} ({what})"))
}

/// Applies one object (or a List of them).
pub fn apply_value(
    snapshot: &mut Snapshot,
    report: &mut LoadReport,
    value: Value,
    where_: &str,
) -> anyhow::Result<()> {
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            apply_value(
                snapshot,
                report,
                item.clone(),
                &format!("{where_}, item {}", i + 1),
            )?;
        }
        return Ok(());
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{where_}: not a Kubernetes object (no kind)"))?;
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        let items = match value.get("items") {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => bail!("{where_}: {kind}.items is not a list"),
        };
        for (i, item) in items.into_iter().enumerate() {
            apply_value(snapshot, report, item, &format!("{where_}, item {}", i + 1))?;
        }
        return Ok(());
    }
    let what = describe(&value);
    match (api_version.as_str(), kind.as_str()) {
        ("apps/v1", "Deployment") => {
            let d: Deployment = typed(value, &what, where_)?;
            snapshot.apply_workload(Workload::from_deployment(d), None);
        }
        ("apps/v1", "StatefulSet") => {
            let s: StatefulSet = typed(value, &what, where_)?;
            snapshot.apply_workload(Workload::from_stateful_set(s), None);
        }
        ("apps/v1", "DaemonSet") => {
            let d: DaemonSet = typed(value, &what, where_)?;
            snapshot.apply_workload(Workload::from_daemon_set(d), None);
        }
        ("apps/v1", "ReplicaSet") => {
            let r: ReplicaSet = typed(value, &what, where_)?;
            snapshot.apply_replica_set(ReplicaSetView::from_replica_set(r));
        }
        ("batch/v1", "Job") => {
            let j: Job = typed(value, &what, where_)?;
            snapshot.apply_workload(Workload::from_job(j), None);
        }
        ("batch/v1", "CronJob") => {
            let c: CronJob = typed(value, &what, where_)?;
            snapshot.apply_workload(Workload::from_cron_job(c), None);
        }
        ("v1", "Pod") => {
            let p: Pod = typed(value, &what, where_)?;
            snapshot.apply_pod(PodView::from_pod(p));
        }
        ("v1", "Event") => {
            let e: Event = typed(value, &what, where_)?;
            match EventView::from_event(e) {
                Some(ev) => snapshot.apply_event(ev),
                None => {
                    report.skipped += 1;
                    return Ok(());
                }
            }
        }
        (v, "Application") if v.starts_with("argoproj.io/") => {
            let app = AppView::from_json(value).with_context(|| format!("{where_} ({what})"))?;
            snapshot.apply_app(app);
        }
        _ => {
            report.skipped += 1;
            return Ok(());
        }
    }
    report.objects += 1;
    Ok(())
}
