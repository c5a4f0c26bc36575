//! Triage: verified Argo CD and Alertmanager webhooks in, enriched and deduplicated
//! work orders for the cluster-doctor agent out. See README.md and DESIGN.md for the
//! pipeline; each module below is one stage or one edge of it.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod forge;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod render;
pub mod signal;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod triage;
