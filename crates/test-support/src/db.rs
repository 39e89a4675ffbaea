//! A fresh, migrated PostgreSQL database per test, dropped afterwards.

use std::str::FromStr;

use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgConnectOptions};

/// Server used for test databases: `TEST_DATABASE_URL`, else the local one.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test. Dropped (with `FORCE`) when this is.
pub struct TestDb {
    /// Pool connected to the test database.
    pub pool: PgPool,
    /// Its name (`test_<uuid>`).
    pub name: String,
    /// Options to connect to it again (e.g. from a spawned process).
    pub options: PgConnectOptions,
}

impl TestDb {
    /// Creates an empty database (no migrations applied).
    pub async fn empty() -> TestDb {
        let admin = PgConnectOptions::from_str(&admin_url()).expect("TEST_DATABASE_URL is a postgres URL");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.expect("connect to the test Postgres server");
        conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.expect("create test database");
        conn.close().await.ok();
        let options = admin.database(&name);
        let pool = animoca_store::pool_options(8).connect_with(options.clone()).await.expect("connect to test db");
        TestDb { pool, name, options }
    }

    /// A database name of its own that does not exist yet, for code under test
    /// that creates it (the pool connects lazily). Dropped with this if created.
    pub fn not_created() -> TestDb {
        let admin = PgConnectOptions::from_str(&admin_url()).expect("TEST_DATABASE_URL is a postgres URL");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let options = admin.database(&name);
        let pool = animoca_store::pool_options(8).connect_lazy_with(options.clone());
        TestDb { pool, name, options }
    }

    /// Creates a database with every migration applied.
    pub async fn migrated() -> TestDb {
        let db = TestDb::empty().await;
        animoca_store::migrate(&db.pool).await.expect("migrations apply");
        db
    }

    /// `postgres://` URL of the test database.
    pub fn url(&self) -> String {
        let admin = admin_url();
        format!("{}/{}", url_without_database(&admin), self.name)
    }
}

fn url_without_database(url: &str) -> &str {
    match url.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &url[..slash],
        _ => url,
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The test's runtime may be blocked on this very drop, so use a thread
        // with its own runtime; FORCE ends the pool's connections server-side.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let admin = PgConnectOptions::from_str(&admin_url()).ok()?;
                let mut conn = PgConnection::connect_with(&admin).await.ok()?;
                conn.execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)))
                    .await
                    .ok()?;
                Some(())
            })
        })
        .join();
    }
}
