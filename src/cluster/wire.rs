//! Wire types: the parts of Kubernetes objects Triage reads, parsed straight from the
//! API's JSON (watch events, list pages, snapshot files).
//!
//! Parsing the full k8s-openapi objects would allocate every pod spec, every
//! managedFields entry and every `last-applied-configuration` annotation only to drop
//! them a moment later; at 10,000 pods those short-lived allocations interleave with
//! the snapshot's and fragment the heap. These types name only the fields the
//! projections keep; serde skips the rest without allocating. Metadata keeps only
//! `deployscope.dev/*` and Argo CD's tracking annotation and the instance label.
//!
//! Each type implements `kube::Resource` so kube's watcher lists and watches it like
//! the typed objects (same paths, same versions).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::model::{ANNOTATION_PREFIX, INSTANCE_LABEL, TRACKING_ID};

// ---------------------------------------------------------------------------------------
// Metadata

fn keep_annotation(key: &str) -> bool {
    key.starts_with(ANNOTATION_PREFIX) || key == TRACKING_ID
}

fn keep_label(key: &str) -> bool {
    key == INSTANCE_LABEL
}

/// A string map that keeps only the keys `keep` accepts; other values are skipped
/// unparsed.
struct Filtered(fn(&str) -> bool);

impl<'de> Visitor<'de> for Filtered {
    type Value = Option<BTreeMap<String, String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            match key {
                Some(key) => {
                    let value: Option<String> = map.next_value()?;
                    out.insert(key, value.unwrap_or_default());
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// A map key, allocated only when it is kept.
struct Key(fn(&str) -> bool);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok((self.0)(key).then(|| key.to_string()))
    }
}

fn annotations<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    d.deserialize_any(Filtered(keep_annotation))
}

fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    d.deserialize_any(Filtered(keep_label))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerWire {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    controller: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaWire {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Timestamp>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerWire>>,
    #[serde(default, deserialize_with = "annotations")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "labels")]
    labels: Option<BTreeMap<String, String>>,
}

fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = MetaWire::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        generation: m.generation,
        creation_timestamp: m.creation_timestamp.map(Time),
        owner_references: m.owner_references.map(|refs| {
            refs.into_iter()
                .map(|r| OwnerReference {
                    api_version: r.api_version,
                    kind: r.kind,
                    name: r.name,
                    uid: r.uid,
                    controller: r.controller,
                    block_owner_deletion: None,
                })
                .collect()
        }),
        annotations: m.annotations,
        labels: m.labels,
        ..ObjectMeta::default()
    })
}

/// A pod template's metadata: only its annotations matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplateWire {
    #[serde(default)]
    pub metadata: TemplateMetaWire,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplateMetaWire {
    #[serde(default, deserialize_with = "annotations")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A workload condition (Deployment, StatefulSet, DaemonSet, Job). Every field is
/// optional here: one odd object must not fail a whole list page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConditionWire {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Timestamp>,
}

macro_rules! resource {
    ($ty:ident, $scope:ty, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// apps/v1

#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeploymentSpec,
    #[serde(default)]
    pub status: DeploymentStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeploymentSpec {
    pub replicas: Option<i32>,
    pub paused: Option<bool>,
    #[serde(default)]
    pub template: TemplateWire,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub observed_generation: Option<i64>,
    pub replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
    pub unavailable_replicas: Option<i32>,
    #[serde(default)]
    pub conditions: Vec<ConditionWire>,
}

resource!(
    Deployment,
    NamespaceResourceScope,
    "Deployment",
    "apps",
    "v1",
    "deployments"
);

#[derive(Debug, Clone, Deserialize)]
pub struct StatefulSet {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: StatefulSetSpec,
    #[serde(default)]
    pub status: StatefulSetStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    pub replicas: Option<i32>,
    pub update_strategy: Option<UpdateStrategy>,
    #[serde(default)]
    pub template: TemplateWire,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RollingUpdate {
    pub partition: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatus {
    pub observed_generation: Option<i64>,
    pub replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    #[serde(default)]
    pub conditions: Vec<ConditionWire>,
}

resource!(
    StatefulSet,
    NamespaceResourceScope,
    "StatefulSet",
    "apps",
    "v1",
    "statefulsets"
);

#[derive(Debug, Clone, Deserialize)]
pub struct DaemonSet {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DaemonSetSpec,
    #[serde(default)]
    pub status: DaemonSetStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpec {
    pub update_strategy: Option<UpdateStrategy>,
    #[serde(default)]
    pub template: TemplateWire,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    pub observed_generation: Option<i64>,
    pub desired_number_scheduled: Option<i32>,
    pub current_number_scheduled: Option<i32>,
    pub number_ready: Option<i32>,
    pub number_available: Option<i32>,
    pub number_unavailable: Option<i32>,
    pub updated_number_scheduled: Option<i32>,
    #[serde(default)]
    pub conditions: Vec<ConditionWire>,
}

resource!(
    DaemonSet,
    NamespaceResourceScope,
    "DaemonSet",
    "apps",
    "v1",
    "daemonsets"
);

/// A ReplicaSet's metadata (watched metadata-only: the server sends no spec or status).
#[derive(Debug, Clone, Deserialize)]
pub struct ReplicaSet {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
}

impl kube::Resource for ReplicaSet {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("ReplicaSet")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("apps")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("replicasets")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn metadata_api() -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------
// batch/v1

#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JobSpec,
    #[serde(default)]
    pub status: JobStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub completions: Option<i32>,
    pub backoff_limit: Option<i32>,
    pub suspend: Option<bool>,
    #[serde(default)]
    pub template: TemplateWire,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobStatus {
    pub active: Option<i32>,
    pub succeeded: Option<i32>,
    pub failed: Option<i32>,
    #[serde(default)]
    pub conditions: Vec<ConditionWire>,
}

resource!(Job, NamespaceResourceScope, "Job", "batch", "v1", "jobs");

#[derive(Debug, Clone, Deserialize)]
pub struct CronJob {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CronJobSpec,
    #[serde(default)]
    pub status: CronJobStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    pub suspend: Option<bool>,
    #[serde(default)]
    pub job_template: JobTemplate,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobTemplate {
    #[serde(default)]
    pub spec: JobTemplateSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobTemplateSpec {
    #[serde(default)]
    pub template: TemplateWire,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatus {
    /// Only the count matters; the references are not kept.
    #[serde(default)]
    pub active: Vec<IgnoredAny>,
    pub last_schedule_time: Option<Timestamp>,
    pub last_successful_time: Option<Timestamp>,
}

resource!(
    CronJob,
    NamespaceResourceScope,
    "CronJob",
    "batch",
    "v1",
    "cronjobs"
);

// ---------------------------------------------------------------------------------------
// v1

#[derive(Debug, Clone, Deserialize)]
pub struct Pod {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: Option<String>,
    pub reason: Option<String>,
    #[serde(default)]
    pub conditions: Vec<PodConditionWire>,
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    pub init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodConditionWire {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub last_transition_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    pub state: ContainerState,
    pub last_state: ContainerState,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerState {
    pub waiting: Option<Waiting>,
    pub terminated: Option<Terminated>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Waiting {
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub reason: Option<String>,
    #[serde(default)]
    pub exit_code: i32,
    pub finished_at: Option<Timestamp>,
}

resource!(Pod, NamespaceResourceScope, "Pod", "", "v1", "pods");

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub count: Option<i32>,
    #[serde(default)]
    pub involved_object: InvolvedObject,
    pub series: Option<EventSeries>,
    pub last_timestamp: Option<Timestamp>,
    pub event_time: Option<Timestamp>,
    pub first_timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvolvedObject {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeries {
    pub count: Option<i32>,
    pub last_observed_time: Option<Timestamp>,
}

resource!(Event, NamespaceResourceScope, "Event", "", "v1", "events");
