//! Schema migrations: numbered SQL files per dialect, applied in order, each recorded in
//! `schema_migrations (version, name, applied_at)`.
//!
//! To change the schema, add `migrations/sqlite/NNNN_name.sql` (and the PostgreSQL
//! twin with the same number and name) and one line below. Never edit an applied file.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The SQLite migrations, in order (a test keeps this list equal to `migrations/sqlite/`).
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "journal",
        sql: include_str!("../../migrations/sqlite/0001_journal.sql"),
    },
    Migration {
        version: 2,
        name: "workorders",
        sql: include_str!("../../migrations/sqlite/0002_workorders.sql"),
    },
];

/// The PostgreSQL migrations: the same versions and names as [`SQLITE`].
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "journal",
        sql: include_str!("../../migrations/postgres/0001_journal.sql"),
    },
    Migration {
        version: 2,
        name: "workorders",
        sql: include_str!("../../migrations/postgres/0002_workorders.sql"),
    },
];

/// Arbitrary constant: the advisory lock replicas take while migrating, so two
/// starting at once do not both apply a migration.
const PG_MIGRATION_LOCK: i64 = 0x7472_6961_6765_0001;

/// PostgreSQL twin of [`apply_sqlite`]: same `schema_migrations` table, each migration
/// in its own transaction, under an advisory lock.
pub async fn apply_postgres(pool: &sqlx::PgPool, list: &[Migration]) -> anyhow::Result<Vec<i64>> {
    use anyhow::Context as _;
    use sqlx::Acquire as _;
    let mut conn = pool
        .acquire()
        .await
        .context("cannot connect to PostgreSQL to migrate")?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .context("cannot take the migration lock")?;
    let result = async {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                name       TEXT   NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .execute(&mut *conn)
        .await
        .context("cannot create schema_migrations")?;
        let newest_known = list.iter().map(|m| m.version).max().unwrap_or(0);
        let newest_applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
                .fetch_one(&mut *conn)
                .await
                .context("cannot read schema_migrations")?;
        if let Some(applied) = newest_applied
            && applied > newest_known
        {
            anyhow::bail!(
                "the database schema is at version {applied} but this Triage knows migrations up to {newest_known}; \
                 run a newer Triage or restore a backup"
            );
        }
        let mut applied_now = Vec::new();
        for m in list {
            let mut tx = conn.begin().await.context("cannot start a migration transaction")?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(m.sql))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("migration {:04}_{} failed", m.version, m.name))?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(Timestamp::now().as_microsecond())
                .execute(&mut *tx)
                .await?;
            tx.commit()
                .await
                .with_context(|| format!("cannot commit migration {:04}_{}", m.version, m.name))?;
            applied_now.push(m.version);
        }
        Ok(applied_now)
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)";

/// Applies every migration of `list` the database has not seen, each in its own
/// transaction. Returns the versions applied now. Refuses a database whose schema is
/// newer than this build knows (a downgrade would silently misread it).
pub fn apply_sqlite(conn: &mut Connection, list: &[Migration]) -> anyhow::Result<Vec<i64>> {
    use anyhow::Context as _;
    conn.execute(CREATE_TABLE, [])
        .context("cannot create schema_migrations")?;
    let newest_known = list.iter().map(|m| m.version).max().unwrap_or(0);
    let newest_applied: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .context("cannot read schema_migrations")?;
    if let Some(applied) = newest_applied
        && applied > newest_known
    {
        anyhow::bail!(
            "the database schema is at version {applied} but this Triage knows migrations up to {newest_known}; \
             run a newer Triage or restore a backup"
        );
    }
    let mut applied_now = Vec::new();
    for m in list {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("cannot start a migration transaction")?;
        let done: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [m.version],
                |r| r.get(0),
            )
            .optional()?;
        if done.is_some() {
            continue;
        }
        tx.execute_batch(m.sql)
            .with_context(|| format!("migration {:04}_{} failed", m.version, m.name))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, Timestamp::now().as_microsecond()],
        )?;
        tx.commit()
            .with_context(|| format!("cannot commit migration {:04}_{}", m.version, m.name))?;
        applied_now.push(m.version);
    }
    Ok(applied_now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_matches_the_migration_files() {
        check_list("sqlite", SQLITE);
        check_list("postgres", POSTGRES);
        let names = |l: &[Migration]| l.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(
            names(SQLITE),
            names(POSTGRES),
            "both dialects share versions"
        );
    }

    fn check_list(dialect: &str, list: &[Migration]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = list
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
        for (i, m) in list.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions are dense and ordered");
            let on_disk = std::fs::read_to_string(dir.join(&listed[i])).unwrap();
            assert_eq!(on_disk, m.sql);
        }
    }

    #[test]
    fn applies_once_and_refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply_sqlite(&mut conn, SQLITE).unwrap(), vec![1, 2]);
        assert!(apply_sqlite(&mut conn, SQLITE).unwrap().is_empty());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);

        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
            [],
        )
        .unwrap();
        let err = apply_sqlite(&mut conn, SQLITE).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }
}
