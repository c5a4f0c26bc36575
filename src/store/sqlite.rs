//! The SQLite journal: WAL mode, one dedicated writer thread doing group commit.
//!
//! Every append goes through a bounded channel to the writer thread. The thread takes
//! what is queued (up to `store.batch_max`), writes it in one transaction, commits with
//! one fsync, then answers every waiter. Under load, requests that arrive during an
//! fsync form the next batch, so throughput does not pay one fsync per delivery, and a
//! lone request is committed at once (no batching delay). Reads use their own
//! connection: WAL lets them run beside the writer.
//!
//! Checkpoints (copying the WAL back into the database file) run on a second thread
//! with its own connection, so the writer never pays for them inside a commit: a
//! passive checkpoint (which never takes the write lock) after every burst of commits.
//! Under continuous writes a passive checkpoint never catches up completely, so the WAL
//! would only grow; when it passes [`WAL_RESET_PAGES`], the writer itself runs one
//! passive checkpoint between two transactions — it then copies only what the
//! checkpoint thread has not yet, and its next transaction starts the WAL over. No
//! thread ever waits for SQLite's sleeping busy handler.
//!
//! Durability (`store.synchronous`): with `full`, SQLite fsyncs the WAL at every commit,
//! so an acknowledged delivery survives a crash of the process and of the machine
//! (power loss). With `normal`, the WAL is fsync'd only at checkpoints: a committed
//! delivery survives a crash of the process (kill -9, OOM) because the WAL is in the OS
//! page cache, but the last commits may be lost on power loss or a kernel crash.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::recent::{self, BodyKey, RecentBodies, Seen};
use super::{
    Appended, DeliveryId, Journal, JournalOptions, JournalStats, NewDelivery, StoreError,
    StoredDelivery, from_micros, micros, source_from_str,
};
use crate::config::SqliteSync;
use crate::metrics::JournalMetrics;

/// The newest rows first, for rebuilding the duplicate set at start.
const RECENT: &str = "SELECT id, source, received_at, body_sha256 FROM deliveries ORDER BY id DESC";
const INSERT: &str = "INSERT INTO deliveries
    (source, received_at, sender, request_id, body_sha256, body, signals, signal_count)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const MARK: &str = "UPDATE deliveries SET processed_at = ?1 WHERE id = ?2 AND processed_at IS NULL";
pub(crate) const COLUMNS: &str = "id, source, received_at, sender, request_id, body_sha256, body, signals, signal_count, processed_at";

/// WAL size (pages) beyond which the writer makes the log start over even under
/// continuous writes: 512 MiB with 4 KiB pages. The restart costs one pause of the
/// writer (copying the last few MiB and an fsync of the database, tens of ms), so it
/// should be rare: a burst shorter than ~10 s at full speed never needs one, and at any
/// idle moment the checkpoint thread catches up and the WAL restarts for free. The file
/// shrinks back to `journal_size_limit` afterwards.
const WAL_RESET_PAGES: i64 = 131_072;

/// Least time between two checkpoints: each then copies a useful amount of WAL.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a connection waits for the write lock another connection holds (the
/// pipeline's own transactions) before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a connection to the journal database with Triage's settings (WAL, the given
/// `synchronous`, busy timeout). Other SQLite-backed stores (work orders, outbox) use
/// this to share the database file and its durability setting.
pub fn open_connection(path: &Path, synchronous: SqliteSync) -> Result<Connection, StoreError> {
    let what = || format!("store.path {}", path.display());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| StoreError::backend(format!("{}: cannot open the SQLite database", what()), e))?;
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(StoreError::Corrupt(format!(
            "{}: the database is read-only (check file and directory permissions)",
            what()
        )));
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::backend("cannot set busy_timeout", e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| StoreError::backend(format!("{}: cannot enable WAL", what()), e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "{}: SQLite refused WAL mode (got {mode:?}); the file system may not support it",
            what()
        )));
    }
    let sync = match synchronous {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(|e| StoreError::backend("cannot set synchronous", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| StoreError::backend("cannot enable foreign keys", e))?;
    // After a reset, shrink the WAL file back to this size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(|e| StoreError::backend("cannot set journal_size_limit", e))?;
    Ok(conn)
}

enum Command {
    Append(
        Box<NewDelivery>,
        oneshot::Sender<Result<Appended, StoreError>>,
    ),
    MarkProcessed(
        Vec<DeliveryId>,
        Timestamp,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    /// Proves the write lock can be taken (readiness).
    Check(oneshot::Sender<Result<(), StoreError>>),
    /// Commit what came before, checkpoint, stop.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// SQLite implementation of [`Journal`].
pub struct SqliteJournal {
    commands: mpsc::Sender<Command>,
    reader: std::sync::Arc<Mutex<Connection>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteJournal {
    /// Opens (creating and migrating) the database at `path` and starts the writer
    /// thread. Blocking: call from a blocking context or at startup.
    pub fn open(
        path: &Path,
        synchronous: SqliteSync,
        options: JournalOptions,
        metrics: JournalMetrics,
    ) -> anyhow::Result<Self> {
        let mut conn = open_connection(path, synchronous)?;
        super::migrations::apply_sqlite(&mut conn, super::migrations::SQLITE)?;
        // The checkpointer thread does this work, off the commit path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| StoreError::backend("cannot disable automatic checkpoints", e))?;
        let reader = open_connection(path, synchronous)?;
        let checkpointer =
            Checkpointer::start(open_connection(path, synchronous)?, metrics.clone())?;
        let window_us = i64::try_from(options.dedup_window.as_micros()).unwrap_or(i64::MAX);
        let recent = load_recent(&conn, window_us)?;
        let batch_max = options.batch_max.max(1);
        let (tx, rx) = mpsc::channel(batch_max.saturating_mul(4).max(64));
        let writer = Writer {
            conn,
            metrics,
            checkpointer: Some(checkpointer),
            recent,
        };
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(rx, batch_max))
            .map_err(|e| anyhow::anyhow!("cannot start the journal writer thread: {e}"))?;
        Ok(SqliteJournal {
            commands: tx,
            reader: std::sync::Arc::new(Mutex::new(reader)),
            writer: Mutex::new(Some(handle)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        // A dropped reply means the writer stopped before reaching the command.
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| {
                StoreError::Corrupt("the reader connection lock is poisoned".into())
            })?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::backend("journal read task failed", e))?
    }
}

#[async_trait]
impl Journal for SqliteJournal {
    async fn append(&self, delivery: NewDelivery) -> Result<Appended, StoreError> {
        self.send(|tx| Command::Append(Box::new(delivery), tx))
            .await
    }

    async fn get(&self, id: DeliveryId) -> Result<Option<StoredDelivery>, StoreError> {
        self.read(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE id = ?1");
            conn.prepare_cached(&sql)
                .and_then(|mut s| s.query_row([id.0], raw_row).optional())
                .map_err(|e| StoreError::backend("cannot read a delivery", e))?
                .map(RawRow::decode)
                .transpose()
        })
        .await
    }

    async fn list(
        &self,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let after = after.map_or(0, |a| a.0);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let sql =
                format!("SELECT {COLUMNS} FROM deliveries WHERE id > ?1 ORDER BY id LIMIT ?2");
            query_rows(conn, &sql, params![after, limit])
        })
        .await
    }

    async fn unprocessed(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM deliveries WHERE processed_at IS NULL ORDER BY id LIMIT ?1"
            );
            query_rows(conn, &sql, params![limit])
        })
        .await
    }

    async fn mark_processed(&self, ids: &[DeliveryId], at: Timestamp) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.send(|tx| Command::MarkProcessed(ids, at, tx)).await
    }

    async fn stats(&self) -> Result<JournalStats, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT (SELECT count(*) FROM deliveries),
                        (SELECT count(*) FROM deliveries WHERE processed_at IS NULL)",
                [],
                |r| {
                    Ok(JournalStats {
                        deliveries: r.get::<_, i64>(0)?.max(0) as u64,
                        unprocessed: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                },
            )
            .map_err(|e| StoreError::backend("cannot count deliveries", e))
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.send(Command::Check).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        match self.send(Command::Close).await {
            Ok(()) | Err(StoreError::Closed) => {}
            Err(e) => return Err(e),
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::backend("cannot join the journal writer", e))?
                .map_err(|_| StoreError::Corrupt("the journal writer thread panicked".into()))?;
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

struct Writer {
    conn: Connection,
    metrics: JournalMetrics,
    checkpointer: Option<Checkpointer>,
    recent: RecentBodies,
}

/// The deliveries stored within the dedup window before now, newest first until the
/// window or the capacity ends.
fn load_recent(conn: &Connection, window_us: i64) -> Result<RecentBodies, StoreError> {
    let db = |e| StoreError::backend("cannot read recent deliveries", e);
    let cutoff = micros(Timestamp::now()).saturating_sub(window_us);
    let mut newest_first = Vec::new();
    let mut stmt = conn.prepare(RECENT).map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        let (id, source, at, hash): (i64, String, i64, String) = (
            row.get(0).map_err(db)?,
            row.get(1).map_err(db)?,
            row.get(2).map_err(db)?,
            row.get(3).map_err(db)?,
        );
        if at < cutoff || newest_first.len() >= recent::MAX_ENTRIES {
            break;
        }
        if let Some(key) = recent::key(source_from_str(&source)?, &hash) {
            newest_first.push((
                key,
                Seen {
                    id,
                    received_us: at,
                },
            ));
        }
    }
    let mut set = RecentBodies::new(window_us, recent::MAX_ENTRIES);
    for (key, seen) in newest_first.into_iter().rev() {
        set.insert(key, seen);
    }
    Ok(set)
}

/// The checkpoint thread: woken after commits, checkpoints at most every
/// [`CHECKPOINT_INTERVAL`], stops when the writer drops it.
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
    handle: JoinHandle<()>,
    /// Set right after a pass over a WAL past [`WAL_RESET_PAGES`]: what is left to copy
    /// is only what was written during that pass, so the writer can finish it quickly.
    reset_ready: std::sync::Arc<AtomicBool>,
}

impl Checkpointer {
    fn start(conn: Connection, metrics: JournalMetrics) -> anyhow::Result<Self> {
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let reset_ready = std::sync::Arc::new(AtomicBool::new(false));
        let ready = reset_ready.clone();
        let handle = std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    let started = Instant::now();
                    let large = checkpoint(&conn).is_some_and(|(_, pages)| pages > WAL_RESET_PAGES);
                    metrics.checkpoint(started.elapsed().as_secs_f64());
                    if large {
                        // The writer finishes the copy after its next commit; stay
                        // out of its way meanwhile (two checkpoints exclude each other).
                        ready.store(true, Ordering::Release);
                    }
                    if let Some(rest) = CHECKPOINT_INTERVAL.checked_sub(started.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot start the journal checkpoint thread: {e}"))?;
        Ok(Checkpointer {
            wake,
            handle,
            reset_ready,
        })
    }

    /// Asks for a checkpoint; a pending request already covers this one.
    fn poke(&self) {
        let _ = self.wake.try_send(());
    }

    fn stop(self) {
        drop(self.wake);
        let _ = self.handle.join();
    }
}

/// A passive checkpoint (never blocks a writer): whether it copied the whole WAL, and
/// the WAL's size in pages.
fn checkpoint(conn: &Connection) -> Option<(bool, i64)> {
    let row = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match row {
        Ok((busy, log, done)) => Some((busy == 0 && done == log, log)),
        Err(e) => {
            tracing::warn!(error = %e, "journal: checkpoint failed; will retry");
            None
        }
    }
}

/// The answer one command gets once its batch committed (or failed).
enum Outcome {
    Append(Appended),
    Done,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>, batch_max: usize) {
        let mut batch: Vec<Command> = Vec::with_capacity(batch_max);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            // Commands after a Close are not committed: the journal is closed to them.
            let close_at = batch.iter().position(|c| matches!(c, Command::Close(_)));
            let mut rest = close_at.map(|i| batch.split_off(i)).unwrap_or_default();
            self.commit(&mut batch);
            if rest.is_empty() {
                continue;
            }
            let Command::Close(reply) = rest.remove(0) else {
                continue;
            };
            for cmd in rest {
                reply_err(cmd, StoreError::Closed);
            }
            rx.close();
            while let Ok(cmd) = rx.try_recv() {
                reply_err(cmd, StoreError::Closed);
            }
            if let Some(c) = self.checkpointer.take() {
                c.stop();
            }
            // Fold the WAL into the database so a stopped Triage leaves one file.
            let result = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(|e| StoreError::backend("final checkpoint failed", e));
            if let Err(e) = &result {
                tracing::warn!(error = %e, "journal: final WAL checkpoint failed (data is safe in the WAL)");
            }
            let _ = reply.send(Ok(()));
            return;
        }
    }

    /// Writes `batch` in one transaction and answers every command in it.
    fn commit(&mut self, batch: &mut Vec<Command>) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let size = batch.len();
        match self.write(batch) {
            Ok(outcomes) => {
                self.metrics.commit(started.elapsed().as_secs_f64(), size);
                for (cmd, outcome) in batch.drain(..).zip(outcomes) {
                    match (cmd, outcome) {
                        (Command::Append(_, reply), Outcome::Append(a)) => {
                            let _ = reply.send(Ok(a));
                        }
                        (Command::MarkProcessed(_, _, reply), _) | (Command::Check(reply), _) => {
                            let _ = reply.send(Ok(()));
                        }
                        (cmd, _) => reply_err(
                            cmd,
                            StoreError::Corrupt("journal writer answered out of order".into()),
                        ),
                    }
                }
                self.after_commit();
            }
            Err(err) => {
                self.metrics.commit_error();
                tracing::error!(error = %err, batch = size, "journal: group commit failed; every delivery in it is answered 503");
                for cmd in batch.drain(..) {
                    reply_err(cmd, err.clone());
                }
            }
        }
    }

    /// Wakes the checkpointer; when it has just caught up with a WAL past
    /// [`WAL_RESET_PAGES`], copies the little left between two transactions (after the
    /// waiters were answered), so the next transaction starts the WAL over.
    fn after_commit(&mut self) {
        let Some(c) = &self.checkpointer else { return };
        c.poke();
        if c.reset_ready.swap(false, Ordering::Acquire) {
            let started = Instant::now();
            let done = checkpoint(&self.conn).is_some_and(|(all, _)| all);
            let took = started.elapsed();
            self.metrics.checkpoint(took.as_secs_f64());
            tracing::debug!(?took, done, "journal: WAL restart checkpoint");
        }
    }

    fn write(&mut self, batch: &[Command]) -> Result<Vec<Outcome>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::backend("cannot begin a journal transaction", e))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        // Stored in this transaction: remembered only once it commits.
        let mut stored: Vec<(BodyKey, Seen)> = Vec::new();
        {
            let db = |e| StoreError::backend("cannot write to the journal", e);
            let mut insert = tx.prepare_cached(INSERT).map_err(db)?;
            let mut mark = tx.prepare_cached(MARK).map_err(db)?;
            for cmd in batch {
                match cmd {
                    Command::Append(d, _) => {
                        let received = micros(d.received_at);
                        let key = recent::key(d.source, &d.body_sha256).ok_or_else(|| {
                            StoreError::Encode {
                                what: "body hash",
                                message: format!("{:?} is not a hex SHA-256", d.body_sha256),
                            }
                        })?;
                        let earlier = stored
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == key)
                            .map(|(_, s)| *s)
                            .or_else(|| self.recent.find(&key, received));
                        let outcome = match earlier {
                            Some(seen) => Appended::Duplicate {
                                original: DeliveryId(seen.id),
                                original_received_at: from_micros(seen.received_us)?,
                            },
                            None => {
                                insert
                                    .execute(params![
                                        d.source.as_str(),
                                        received,
                                        d.sender,
                                        d.request_id,
                                        d.body_sha256,
                                        &d.body[..],
                                        d.signals_json,
                                        d.signal_count as i64,
                                    ])
                                    .map_err(db)?;
                                let id = tx.last_insert_rowid();
                                stored.push((
                                    key,
                                    Seen {
                                        id,
                                        received_us: received,
                                    },
                                ));
                                Appended::Stored(DeliveryId(id))
                            }
                        };
                        outcomes.push(Outcome::Append(outcome));
                    }
                    Command::MarkProcessed(ids, at, _) => {
                        for id in ids {
                            mark.execute(params![micros(*at), id.0]).map_err(db)?;
                        }
                        outcomes.push(Outcome::Done);
                    }
                    Command::Check(_) | Command::Close(_) => outcomes.push(Outcome::Done),
                }
            }
        }
        tx.commit()
            .map_err(|e| StoreError::backend("cannot commit the journal transaction", e))?;
        for (key, seen) in stored {
            self.recent.insert(key, seen);
        }
        Ok(outcomes)
    }
}

fn reply_err(cmd: Command, err: StoreError) {
    match cmd {
        Command::Append(_, r) => {
            let _ = r.send(Err(err));
        }
        Command::MarkProcessed(_, _, r) | Command::Check(r) | Command::Close(r) => {
            let _ = r.send(Err(err));
        }
    }
}

/// A row as SQLite returns it, decoded outside rusqlite's error type.
pub(crate) struct RawRow {
    id: i64,
    source: String,
    received_at: i64,
    sender: String,
    request_id: String,
    body_sha256: String,
    body: Vec<u8>,
    signals: String,
    signal_count: i64,
    processed_at: Option<i64>,
}

pub(crate) fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        source: r.get(1)?,
        received_at: r.get(2)?,
        sender: r.get(3)?,
        request_id: r.get(4)?,
        body_sha256: r.get(5)?,
        body: r.get(6)?,
        signals: r.get(7)?,
        signal_count: r.get(8)?,
        processed_at: r.get(9)?,
    })
}

impl RawRow {
    pub(crate) fn decode(self) -> Result<StoredDelivery, StoreError> {
        Ok(StoredDelivery {
            id: DeliveryId(self.id),
            source: source_from_str(&self.source)?,
            received_at: from_micros(self.received_at)?,
            sender: self.sender,
            request_id: self.request_id,
            body_sha256: self.body_sha256,
            body: self.body,
            signals_json: self.signals,
            signal_count: usize::try_from(self.signal_count).unwrap_or(0),
            processed_at: self.processed_at.map(from_micros).transpose()?,
        })
    }
}

fn query_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredDelivery>, StoreError> {
    let db = |e| StoreError::backend("cannot read deliveries", e);
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let rows = stmt
        .query_map(params, raw_row)
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    rows.into_iter().map(RawRow::decode).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::signal::Source;

    fn open(dir: &Path, window: Duration) -> SqliteJournal {
        SqliteJournal::open(
            &dir.join("j.db"),
            SqliteSync::Full,
            JournalOptions {
                dedup_window: window,
                batch_max: 64,
            },
            JournalMetrics::default(),
        )
        .unwrap()
    }

    fn delivery(body: &str, at: Timestamp) -> NewDelivery {
        NewDelivery::new(
            Source::Alertmanager,
            at,
            "token:0".into(),
            "req-1".into(),
            Bytes::from(body.to_string()),
            &[],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn appends_reads_back_and_deduplicates_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path(), Duration::from_secs(60));
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let a = j.append(delivery("{\"a\":1}", t0)).await.unwrap();
        let Appended::Stored(id) = a else {
            panic!("{a:?}")
        };
        // Same body 30 s later: duplicate of the first.
        let dup = j
            .append(delivery(
                "{\"a\":1}",
                t0 + jiff::SignedDuration::from_secs(30),
            ))
            .await
            .unwrap();
        assert_eq!(
            dup,
            Appended::Duplicate {
                original: id,
                original_received_at: t0
            }
        );
        // Same body from the other source: not a duplicate.
        let mut other = delivery("{\"a\":1}", t0);
        other.source = Source::Argocd;
        assert!(matches!(
            j.append(other).await.unwrap(),
            Appended::Stored(_)
        ));
        // Same body after the window: stored again.
        let late = j
            .append(delivery(
                "{\"a\":1}",
                t0 + jiff::SignedDuration::from_secs(61),
            ))
            .await
            .unwrap();
        assert!(matches!(late, Appended::Stored(DeliveryId(3))), "{late:?}");

        let got = j.get(id).await.unwrap().unwrap();
        assert_eq!(got.body, b"{\"a\":1}");
        assert_eq!(got.received_at, t0);
        assert_eq!(got.sender, "token:0");
        assert_eq!(got.body_sha256, super::super::sha256_hex(b"{\"a\":1}"));
        assert!(got.signals().unwrap().is_empty());
        assert_eq!(
            j.stats().await.unwrap(),
            JournalStats {
                deliveries: 3,
                unprocessed: 3
            }
        );
        j.close().await.unwrap();
    }

    #[tokio::test]
    async fn duplicates_are_recognised_in_one_batch_and_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let j = open(dir.path(), Duration::from_secs(60));
        let first = j.append(delivery("same", now)).await.unwrap();
        // Two identical deliveries in one batch: the second is the duplicate.
        let (a, b) = tokio::join!(
            j.append(delivery("twin", now)),
            j.append(delivery("twin", now))
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Appended::Stored(_)))
                .count(),
            1,
            "{outcomes:?}"
        );
        j.close().await.unwrap();

        let j = open(dir.path(), Duration::from_secs(60));
        let again = j.append(delivery("same", now)).await.unwrap();
        let Appended::Stored(id) = first else {
            panic!()
        };
        assert!(
            matches!(again, Appended::Duplicate { original, .. } if original == id),
            "{again:?}"
        );
        assert_eq!(j.stats().await.unwrap().deliveries, 2);
        j.close().await.unwrap();
    }

    #[tokio::test]
    async fn unprocessed_in_id_order_and_mark_processed() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path(), Duration::from_secs(60));
        let now = Timestamp::now();
        for i in 0..5 {
            j.append(delivery(&format!("{i}"), now)).await.unwrap();
        }
        let ids: Vec<i64> = j
            .unprocessed(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id.0)
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        j.mark_processed(&[DeliveryId(1), DeliveryId(3)], now)
            .await
            .unwrap();
        let ids: Vec<i64> = j
            .unprocessed(2)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id.0)
            .collect();
        assert_eq!(ids, [2, 4]);
        let first = j.get(DeliveryId(1)).await.unwrap().unwrap();
        assert_eq!(
            first.processed_at.map(|t| t.as_microsecond()),
            Some(now.as_microsecond())
        );
        let listed = j.list(Some(DeliveryId(3)), 10).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(j.stats().await.unwrap().unprocessed, 3);
        j.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_group_committed_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = JournalMetrics::default();
        let j = Arc::new(
            SqliteJournal::open(
                &dir.path().join("j.db"),
                SqliteSync::Full,
                JournalOptions {
                    dedup_window: Duration::from_secs(60),
                    batch_max: 256,
                },
                metrics.clone(),
            )
            .unwrap(),
        );
        let now = Timestamp::now();
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let j = j.clone();
                tokio::spawn(async move { j.append(delivery(&format!("body {i}"), now)).await })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Appended::Stored(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 400);
        assert!(
            metrics.commits() < 400,
            "{} commits for 400 concurrent appends: no grouping",
            metrics.commits()
        );
        j.close().await.unwrap();
        // Closed: refuses further appends.
        assert!(matches!(
            j.append(delivery("late", now)).await,
            Err(StoreError::Closed)
        ));
        drop(j);

        let j = open(dir.path(), Duration::from_secs(60));
        assert_eq!(j.stats().await.unwrap().deliveries, 400);
        j.close().await.unwrap();
    }

    #[tokio::test]
    async fn check_writable_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path(), Duration::from_secs(60));
        j.check_writable().await.unwrap();
        j.close().await.unwrap();
        assert!(matches!(j.check_writable().await, Err(StoreError::Closed)));
    }
}
