//! A throw-away PostgreSQL database per test, on the server `.ci/run` keeps running at
//! 127.0.0.1:5432 (trust auth, user `postgres`). Missing PostgreSQL fails the test: it
//! is a real dependency of the suite, never skipped.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection as _;

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database created for one test; `drop_db` (or Drop, as a fallback) removes it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    dropped: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    pub async fn create(tag: &str) -> TestDb {
        let name = format!(
            "triage_t_{}_{}_{}_{}",
            tag.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            jiff::Timestamp::now().as_millisecond() % 1_000_000
        )
        .to_ascii_lowercase();
        let mut admin = sqlx::PgConnection::connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL must run at 127.0.0.1:5432 for the store tests (.ci/run starts it): {e}")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        TestDb {
            url: format!("{SERVER}/{name}"),
            name,
            dropped: false,
        }
    }

    pub async fn drop_db(mut self) {
        drop_database(&self.name).await;
        self.dropped = true;
    }
}

async fn drop_database(name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{SERVER}/postgres")).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A failed test still cleans up: on a thread of its own, outside the test's runtime.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}
