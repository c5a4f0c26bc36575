//! Cluster metrics, read from the snapshots at scrape time (nothing to keep in step).
//!
//! - `triage_cluster_synced{cluster}`: 1 when synced (or static), else 0.
//! - `triage_cluster_objects{cluster,kind}`: objects held per kind.
//! - `triage_cluster_ignored_workloads{cluster}`: workloads hidden by
//!   `deployscope.dev/ignore` (the only place they are counted).
//! - `triage_cluster_watch_errors_total{cluster,kind}`: watch errors since start.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{Clusters, annotations};

#[derive(Debug)]
struct ClusterCollector(Arc<Clusters>);

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let clusters = self.0.clusters();
        {
            let mut family = encoder.encode_descriptor(
                "triage_cluster_synced",
                "1 when the cluster snapshot is synced (or static), else 0",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for c in clusters {
                let labels = [("cluster", c.name.as_str())];
                ConstGauge::new(i64::from(c.is_synced())).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "triage_cluster_objects",
                "Objects held in the cluster snapshot, per kind",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for c in clusters {
                for (kind, n) in c.read().counts() {
                    let labels = [("cluster", c.name.as_str()), ("kind", kind.as_str())];
                    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "triage_cluster_ignored_workloads",
                "Workloads hidden by deployscope.dev/ignore",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for c in clusters {
                let n = c
                    .read()
                    .workloads()
                    .filter(|w| annotations::is_ignored(w))
                    .count();
                let labels = [("cluster", c.name.as_str())];
                ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "triage_cluster_watch_errors",
                "Watch errors since start, per kind",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for c in clusters {
                for (kind, sync) in c.sync_status().kinds {
                    let labels = [("cluster", c.name.as_str()), ("kind", kind.as_str())];
                    ConstCounter::new(sync.errors).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Registers the cluster metrics into the shared registry.
pub fn register(clusters: Arc<Clusters>, registry: &mut Registry) {
    registry.register_collector(Box::new(ClusterCollector(clusters)));
}
