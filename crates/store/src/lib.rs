//! PostgreSQL access: connection pool, schema migrations and (as the indexer and
//! API land) the repositories that own each table.
//!
//! The schema has three parts (see `migrations/`):
//! - `chain`: the raw log store, recent block hashes and the indexer checkpoint;
//! - `derived`: everything computed from the logs, rebuildable at any time;
//! - `app`: off-chain data (metadata, users, verification, notifications).

pub mod batch;
mod copy;
pub mod derivation;
pub mod fingerprint;
pub mod generation;
pub mod indexing;
pub mod jobs;
pub mod log_reader;
pub mod rollback;
pub mod window;

use std::time::Duration;

use sqlx::{
    Connection, PgConnection, PgPool,
    migrate::{MigrateError, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        /// Host and database, never the password.
        target: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed or the database has migrations this binary does not know.
    #[error("database migration failed: {0}")]
    Migrate(#[from] MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// Another writer moved the checkpoint: this batch is not the next one.
    #[error("checkpoint moved: expected block {expected:?}, found {found:?}")]
    CheckpointMoved {
        /// The block before the batch.
        expected: Option<u64>,
        /// What is stored.
        found: Option<u64>,
    },
    /// A stored value is not what the schema promises.
    #[error("corrupt value in the database: {0}")]
    Corrupt(String),
}

/// Opens a connection pool of at most `max_connections`, failing fast when the
/// server is unreachable.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, StoreError> {
    let target =
        format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or("postgres"));

    // One direct connection first: a pool only reports "timed out", this says why
    // (connection refused, unknown database, authentication failed, ...).
    let probe = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options)).await;
    match probe {
        Ok(Ok(conn)) => conn.close().await.map_err(|source| StoreError::Connect { target: target.clone(), source })?,
        Ok(Err(source)) => return Err(StoreError::Connect { target, source }),
        Err(_) => return Err(StoreError::Connect { target, source: sqlx::Error::PoolTimedOut }),
    }
    pool_options(max_connections).connect_with(options).await.map_err(|source| StoreError::Connect { target, source })
}

/// The schema the derived tables live in. The store names derived tables
/// without a schema and every connection resolves them through its
/// `search_path`: `derived` for the pools of [`pool_options`], a scratch schema
/// while `rederive` builds the next generation with the same code.
pub const DERIVED_SCHEMA: &str = "derived";

/// Pool settings every process uses: at most `max_connections`, a 10 s acquire
/// timeout, and each connection's `search_path` set to [`DERIVED_SCHEMA`].
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10)).after_connect(
        |conn, _meta| {
            Box::pin(async move { set_search_path(conn, DERIVED_SCHEMA).await.map_err(StoreError::into_sqlx) })
        },
    )
}

/// Points `conn`'s unqualified table names at the derived tables of `schema`
/// (then `public`, where the extensions live). Schema names are identifiers of
/// lowercase letters, digits and `_`.
pub async fn set_search_path(conn: &mut PgConnection, schema: &str) -> Result<(), StoreError> {
    if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(StoreError::Corrupt(format!("{schema:?} is not a schema name")));
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}, public"))).execute(&mut *conn).await?;
    Ok(())
}

/// Drops (if it exists) and creates the database `options` points at, through the
/// server's `postgres` database. For `dev`, whose chain starts anew every run.
pub async fn recreate_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let target = format!("{}:{}/{name}", options.get_host(), options.get_port());
    let admin = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&admin).await.map_err(|source| StoreError::Connect { target, source })?;
    let quoted = name.replace('"', "\"\"");
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{quoted}" WITH (FORCE)"#)))
        .execute(&mut conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{quoted}""#))).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Creates the database `options` points at unless it exists. Returns
/// whether it had to be created.
pub async fn create_database_if_missing(options: &PgConnectOptions) -> Result<bool, StoreError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let target = format!("{}:{}/{name}", options.get_host(), options.get_port());
    let admin = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&admin).await.map_err(|source| StoreError::Connect { target, source })?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{quoted}""#))).execute(&mut conn).await?;
    }
    conn.close().await?;
    Ok(!exists)
}

/// The prefix of every Redis key a deployment uses:
/// `animoca:<database>:<cluster>.<oid>`, where `<cluster>` is the server's system
/// identifier and `<oid>` the database's. Every node of one deployment gets the same
/// one whatever host name it reaches the database by (physical replicas share both);
/// deployments sharing a Redis stay apart even with the same database name on
/// different servers, and a database dropped and created again (`dev --fresh`)
/// never sees the keys of the one before.
///
/// Where `pg_control_system()` is not granted (some managed servers), the namespace
/// is `animoca:<database>:<oid>` (with a warning).
pub async fn redis_namespace(pool: &PgPool) -> Result<String, sqlx::Error> {
    let found: Result<(String, i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT d.datname::text, c.system_identifier, d.oid::int8
           FROM pg_control_system() c, pg_database d WHERE d.datname = current_database()",
    )
    .fetch_one(pool)
    .await;
    match found {
        Ok((database, cluster, oid)) => Ok(format!("animoca:{database}:{cluster}.{oid}")),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42501") => {
            tracing::warn!("pg_control_system() is not granted: Redis keys are named by the database and its oid only");
            let (database, oid): (String, i64) =
                sqlx::query_as("SELECT datname::text, oid::int8 FROM pg_database WHERE datname = current_database()")
                    .fetch_one(pool)
                    .await?;
            Ok(format!("animoca:{database}:{oid}"))
        }
        Err(error) => Err(error),
    }
}

impl StoreError {
    /// The driver error inside, for APIs that want a `sqlx::Error`.
    fn into_sqlx(self) -> sqlx::Error {
        match self {
            StoreError::Query(error) | StoreError::Connect { source: error, .. } => error,
            other => sqlx::Error::Protocol(other.to_string()),
        }
    }
}

/// Outcome of [`migrate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, oldest first (empty when up to date).
    pub applied: Vec<String>,
    /// Migrations known to this binary.
    pub known: usize,
}

/// Applies every pending migration; a second call applies nothing.
/// Concurrent callers are serialised by sqlx's advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<MigrationReport, StoreError> {
    // Our own session lock around sqlx's, so the before/after report is exact
    // even when several processes migrate at once (advisory locks are re-entrant).
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATE_LOCK).execute(&mut *conn).await?;
    // sqlx keeps its bookkeeping in an unqualified `_sqlx_migrations`: always `public`'s.
    sqlx::query("SET search_path TO public").execute(&mut *conn).await?;
    let result = async {
        let before = applied_versions(&mut conn).await?;
        MIGRATOR.run(&mut *conn).await?;
        let after = applied_versions(&mut conn).await?;
        Ok::<_, StoreError>((before, after))
    }
    .await;
    set_search_path(&mut conn, DERIVED_SCHEMA).await?;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATE_LOCK).execute(&mut *conn).await?;
    let (before, after) = result?;
    let applied = MIGRATOR
        .iter()
        .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
        .map(|m| format!("{:04} {}", m.version, m.description))
        .collect();
    Ok(MigrationReport { applied, known: MIGRATOR.iter().count() })
}

/// Advisory lock key serialising `migrate` calls ("animoca" in ASCII).
const MIGRATE_LOCK: i64 = 0x0061_6e69_6d6f_6361;

async fn applied_versions(conn: &mut sqlx::PgConnection) -> Result<Vec<i64>, StoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await?)
}
