//! The store: the delivery journal, and work orders with their timeline and outbox.
//!
//! Callers hold an `Arc<dyn Journal>` and an `Arc<dyn WorkStore>` ([`Store`]) and never
//! see which database is behind them: SQLite (embedded default, one replica) or
//! PostgreSQL (several replicas, see `postgres`). Both keep
//! the same tables, columns and migration versions (`migrations/<dialect>/NNNN_name.sql`,
//! recorded in `schema_migrations`).
//!
//! The journal's promise: when `append` returns `Ok`, the delivery is committed durably
//! (fsync'd per `store.synchronous`), so the ingest edge may answer 2xx.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{StoreConfig, StoreKind};
use crate::metrics::JournalMetrics;
use crate::signal::{Signal, Source};

pub mod migrations;
pub mod postgres;
pub mod recent;
pub mod sqlite;
pub mod sqlite_work;
pub mod work;

pub use sqlite::SqliteJournal;
pub use work::{WorkStore, WorkTx};

/// The journal's id of a delivery: increasing in commit order, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub i64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A verified, parsed delivery about to be journaled.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub source: Source,
    pub received_at: Timestamp,
    /// Sender identity: `token:1` (index of the token that matched, never the token),
    /// `basic:<user>`, `hmac`, `anonymous@<ip>`.
    pub sender: String,
    pub request_id: String,
    /// Lower-case hex SHA-256 of `body`.
    pub body_sha256: String,
    pub body: Bytes,
    /// `signals` serialized as a JSON array (done by the caller, off the writer thread).
    pub signals_json: String,
    pub signal_count: usize,
}

impl NewDelivery {
    /// Hashes the body and serializes the signals.
    pub fn new(
        source: Source,
        received_at: Timestamp,
        sender: String,
        request_id: String,
        body: Bytes,
        signals: &[Signal],
    ) -> Result<Self, StoreError> {
        let signals_json = serde_json::to_string(signals).map_err(|e| StoreError::Encode {
            what: "signals",
            message: e.to_string(),
        })?;
        Ok(NewDelivery {
            source,
            received_at,
            sender,
            request_id,
            body_sha256: sha256_hex(&body),
            body,
            signals_json,
            signal_count: signals.len(),
        })
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Committed durably under this id.
    Stored(DeliveryId),
    /// The same source sent the same body within the dedup window: not stored again.
    Duplicate {
        original: DeliveryId,
        original_received_at: Timestamp,
    },
}

/// A journaled delivery as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    pub id: DeliveryId,
    pub source: Source,
    pub received_at: Timestamp,
    pub sender: String,
    pub request_id: String,
    pub body_sha256: String,
    pub body: Vec<u8>,
    /// The signals as stored (a JSON array); see [`StoredDelivery::signals`].
    pub signals_json: String,
    pub signal_count: usize,
    pub processed_at: Option<Timestamp>,
}

impl StoredDelivery {
    /// Decodes the stored signals. Kept lazy so that one row written by an older
    /// `Signal` shape cannot make a whole batch unreadable: the caller decides.
    pub fn signals(&self) -> Result<Vec<Signal>, StoreError> {
        serde_json::from_str(&self.signals_json).map_err(|e| StoreError::Decode {
            id: self.id,
            message: e.to_string(),
        })
    }
}

/// Counts for `/readyz` details, `doctor` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub deliveries: u64,
    pub unprocessed: u64,
}

/// Store failures. Clone, because one failed group commit answers many waiters.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the journal is closed")]
    Closed,
    #[error("{context}: {source}")]
    Backend {
        context: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot encode {what}: {message}")]
    Encode { what: &'static str, message: String },
    #[error("delivery {id}: stored data cannot be decoded: {message}")]
    Decode { id: DeliveryId, message: String },
    #[error("journal data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn backend(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

/// The durable, append-only record of accepted deliveries.
///
/// Implementations: [`SqliteJournal`] (one writer thread, group commit). All methods
/// may be called concurrently from many tasks.
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Commits `delivery` durably, or reports that the same source sent the same body
    /// within the dedup window. Returns only after the commit (or its failure).
    async fn append(&self, delivery: NewDelivery) -> Result<Appended, StoreError>;

    /// One delivery by id.
    async fn get(&self, id: DeliveryId) -> Result<Option<StoredDelivery>, StoreError>;

    /// Deliveries with `id > after` (all when `None`), lowest id first, at most `limit`.
    async fn list(
        &self,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError>;

    /// Unprocessed deliveries (`processed_at` is null), lowest id first, at most `limit`.
    async fn unprocessed(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError>;

    /// Sets `processed_at` on `ids` (already-processed ones keep their first time).
    /// A pipeline that records its own results in the same database should instead
    /// update `deliveries.processed_at` inside its own transaction.
    async fn mark_processed(&self, ids: &[DeliveryId], at: Timestamp) -> Result<(), StoreError>;

    async fn stats(&self) -> Result<JournalStats, StoreError>;

    /// Ok when the journal is open and can take the write lock (readiness).
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// Commits everything already submitted, then refuses further appends with
    /// [`StoreError::Closed`]. Idempotent.
    async fn close(&self) -> Result<(), StoreError>;

    /// `sqlite` or `postgres`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}

/// Journal settings shared by every backend.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    pub dedup_window: Duration,
    pub batch_max: usize,
}

impl From<&StoreConfig> for JournalOptions {
    fn from(c: &StoreConfig) -> Self {
        JournalOptions {
            dedup_window: c.dedup_window,
            batch_max: c.batch_max,
        }
    }
}

/// The journal and the work store, over one database.
#[derive(Clone)]
pub struct Store {
    pub journal: Arc<dyn Journal>,
    pub work: Arc<dyn WorkStore>,
}

/// Opens the configured store (creating and migrating it as needed).
pub async fn open(
    config: &StoreConfig,
    metrics: JournalMetrics,
) -> anyhow::Result<Arc<dyn Journal>> {
    Ok(open_store(config, metrics).await?.journal)
}

/// Opens the journal and the work store of the configured database.
pub async fn open_store(config: &StoreConfig, metrics: JournalMetrics) -> anyhow::Result<Store> {
    let options = JournalOptions::from(config);
    match config.kind {
        StoreKind::Sqlite => {
            let path = config.path.clone();
            let sync = config.synchronous;
            let (journal, work) = tokio::task::spawn_blocking(move || {
                let journal = SqliteJournal::open(&path, sync, options, metrics)?;
                let work = sqlite_work::SqliteWorkStore::open(&path, sync)?;
                anyhow::Ok((journal, work))
            })
            .await??;
            Ok(Store {
                journal: Arc::new(journal),
                work: Arc::new(work),
            })
        }
        StoreKind::Postgres => {
            let url = config.postgres_url.as_ref().ok_or_else(|| {
                anyhow::anyhow!("store.kind is \"postgres\" but store.postgres_url is not set")
            })?;
            let pool = postgres::connect(url.expose(), config.postgres_max_connections).await?;
            Ok(Store {
                journal: Arc::new(postgres::PgJournal::new(pool.clone(), options, metrics)),
                work: Arc::new(postgres::PgWorkStore::new(pool)),
            })
        }
    }
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn from_micros(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us)
        .map_err(|e| StoreError::Corrupt(format!("stored time {us} µs is out of range: {e}")))
}

fn source_from_str(s: &str) -> Result<Source, StoreError> {
    Source::ALL
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown source {s:?}")))
}
