//! Generations of the derived schema. `rederive` and `verify` build a complete
//! copy of the `derived` tables in a schema of their own, with the same columns,
//! constraints and index names (read from the catalog, so a migration that
//! changes `derived` changes the copy too); `rederive` then swaps it in for the
//! live schema in one transaction.
//!
//! Everything here runs in the caller's transaction: if it is rolled back
//! (an error, Ctrl-C, `kill -9`), nothing of the new generation remains and the
//! live tables were never touched.

use std::{collections::BTreeMap, time::Duration};

use sqlx::{PgConnection, Row};

use crate::{DERIVED_SCHEMA, StoreError};

/// Tables every swap or transfer appends to: their indexes and constraints are
/// built after the load, which is several times faster than maintaining them
/// row by row. The other derived tables keep theirs from the start (the
/// derivation upserts into them).
const APPEND_ONLY: [&str; 4] = ["swaps", "transfers", "stake_events", "votes"];

/// The live schema's name while a swap retires it.
const RETIRED_SCHEMA: &str = "derived_retired";

/// A derived schema being built beside the live one.
#[derive(Debug)]
pub struct Generation {
    schema: String,
    tables: Vec<String>,
    /// DDL to run once the rows are loaded, in order.
    deferred: Vec<String>,
}

/// How hard [`Generation::swap_in`] tries to take the live tables from readers.
#[derive(Debug, Clone, Copy)]
pub struct SwapPolicy {
    /// Longest wait for the locks per attempt. Readers queue behind a waiting
    /// swap, so this bounds the pause a reader can see.
    pub lock_timeout: Duration,
    /// Attempts before giving up (a reader holding a table for longer).
    pub attempts: u32,
}

impl Default for SwapPolicy {
    fn default() -> Self {
        // About five minutes of attempts: a long report or `pg_dump` on the live
        // tables delays the swap rather than failing the whole build.
        Self { lock_timeout: Duration::from_millis(200), attempts: 1_000 }
    }
}

impl Generation {
    /// Creates schema `schema` (dropping a leftover of that name) with an empty
    /// copy of every table of the live derived schema.
    pub async fn create(conn: &mut PgConnection, schema: &str) -> Result<Self, StoreError> {
        check_name(schema)?;
        if schema == DERIVED_SCHEMA || schema == RETIRED_SCHEMA {
            return Err(StoreError::Corrupt(format!("{schema:?} is reserved")));
        }
        let tables = tables_of(conn, DERIVED_SCHEMA).await?;
        let catalog = Catalog::read(conn).await?;
        execute(conn, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
        execute(conn, &format!("CREATE SCHEMA {schema}")).await?;
        let mut deferred = Vec::new();
        for table in &tables {
            execute(
                conn,
                &format!(
                    "CREATE TABLE {schema}.{table} (LIKE {DERIVED_SCHEMA}.{table} INCLUDING ALL EXCLUDING INDEXES)"
                ),
            )
            .await?;
            let ddl = catalog.ddl_for(table, schema);
            if APPEND_ONLY.contains(&table.as_str()) {
                deferred.extend(ddl);
            } else {
                for statement in ddl {
                    execute(conn, &statement).await?;
                }
            }
        }
        deferred.extend(catalog.foreign_keys_for(schema));
        Ok(Self { schema: schema.to_owned(), tables, deferred })
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The tables, by name.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Builds the deferred indexes, constraints and foreign keys, then refreshes
    /// the planner's statistics of every table.
    pub async fn finish(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        // Index builds sort; give them room (PostgreSQL also runs large builds in parallel workers).
        execute(conn, "SET LOCAL maintenance_work_mem = '256MB'").await?;
        for statement in std::mem::take(&mut self.deferred) {
            let started = std::time::Instant::now();
            execute(conn, &statement).await?;
            tracing::debug!(statement, took_ms = started.elapsed().as_millis(), "deferred DDL");
        }
        let list = self.tables.iter().map(|t| format!("{}.{t}", self.schema)).collect::<Vec<_>>().join(", ");
        execute(conn, &format!("ANALYZE {list}")).await?;
        Ok(())
    }

    /// Replaces the live derived schema with this one: waits for the live tables'
    /// readers to finish (bounded per attempt, so readers are never stalled long),
    /// renames the schemas and drops the old tables. Visible to others when the
    /// caller commits; readers that were waiting then read the new tables.
    pub async fn swap_in(self, conn: &mut PgConnection, policy: SwapPolicy) -> Result<(), StoreError> {
        let mut live = tables_of(conn, DERIVED_SCHEMA).await?;
        // `markets` first: readers start from it (a request reads a market, then
        // its pool, candles, …), so taking it first never holds a table such a
        // reader still needs while waiting for it. Any other cycle ends at the
        // lock timeout and is retried.
        live.sort_by_key(|t| (t != "markets", t.clone()));
        let list = live.iter().map(|t| format!("{DERIVED_SCHEMA}.{t}")).collect::<Vec<_>>().join(", ");
        let timeout_ms = policy.lock_timeout.as_millis().max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            execute(conn, "SAVEPOINT generation_swap").await?;
            execute(conn, &format!("SET LOCAL lock_timeout = '{timeout_ms}ms'")).await?;
            match execute(conn, &format!("LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE")).await {
                Ok(()) => {
                    execute(conn, "RELEASE SAVEPOINT generation_swap").await?;
                    break;
                }
                Err(StoreError::Query(sqlx::Error::Database(e)))
                    if e.code().as_deref() == Some("55P03") && attempt < policy.attempts =>
                {
                    execute(conn, "ROLLBACK TO SAVEPOINT generation_swap").await?;
                    tracing::debug!(attempt, "derived tables busy; retrying the swap");
                    tokio::time::sleep(policy.lock_timeout / 2).await;
                }
                Err(error) => return Err(error),
            }
        }
        execute(conn, "SET LOCAL lock_timeout = 0").await?;
        execute(conn, &format!("ALTER SCHEMA {DERIVED_SCHEMA} RENAME TO {RETIRED_SCHEMA}")).await?;
        execute(conn, &format!("ALTER SCHEMA {} RENAME TO {DERIVED_SCHEMA}", self.schema)).await?;
        let retired = live.iter().map(|t| format!("{RETIRED_SCHEMA}.{t}")).collect::<Vec<_>>().join(", ");
        if !live.is_empty() {
            execute(conn, &format!("DROP TABLE {retired}")).await?;
        }
        // RESTRICT: anything else someone put in the schema makes the swap fail
        // loudly instead of vanishing.
        execute(conn, &format!("DROP SCHEMA {RETIRED_SCHEMA}")).await?;
        Ok(())
    }
}

/// Row count and order-independent content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFingerprint {
    /// Rows.
    pub rows: i64,
    /// Two sums of 60-bit slices of each row's md5: equal contents, equal
    /// hashes, whatever the physical order.
    pub hash: String,
}

/// Fingerprints of every table of `schema` (except `meta`, which records when
/// and by which code it was built), by table name.
pub async fn fingerprint_schema(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<BTreeMap<String, TableFingerprint>, StoreError> {
    let mut prints = BTreeMap::new();
    for table in tables_of(conn, schema).await? {
        if table == "meta" {
            continue;
        }
        prints.insert(table.clone(), fingerprint_table(conn, &format!("{schema}.{table}")).await?);
    }
    Ok(prints)
}

/// Fingerprint of one table (`schema.table`, from the catalog, never from input).
pub(crate) async fn fingerprint_table(conn: &mut PgConnection, table: &str) -> Result<TableFingerprint, StoreError> {
    let sql = format!(
        "SELECT count(*), coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text || '-'
                       || coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint), 0)::text
           FROM (SELECT md5(t::text) AS h FROM {table} t) rows"
    );
    let (rows, hash): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
    Ok(TableFingerprint { rows, hash })
}

/// How one table differs between two schemas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDiff {
    /// The table.
    pub table: String,
    /// Its fingerprint in the live schema (`None`: missing there).
    pub live: Option<TableFingerprint>,
    /// Its fingerprint in the other schema (`None`: missing there).
    pub other: Option<TableFingerprint>,
    /// First rows only the live table has, as row text.
    pub only_live: Vec<String>,
    /// First rows only the other table has.
    pub only_other: Vec<String>,
}

/// Compares every table of the live derived schema with `other`: the tables
/// whose contents differ, with up to `sample` differing rows from each side.
pub async fn compare(conn: &mut PgConnection, other: &str, sample: i64) -> Result<Vec<TableDiff>, StoreError> {
    check_name(other)?;
    let live = fingerprint_schema(conn, DERIVED_SCHEMA).await?;
    let next = fingerprint_schema(conn, other).await?;
    let mut names: Vec<&String> = live.keys().chain(next.keys()).collect();
    names.sort();
    names.dedup();
    let mut diffs = Vec::new();
    for name in names {
        let (a, b) = (live.get(name), next.get(name));
        if a == b {
            continue;
        }
        let (mut only_live, mut only_other) = (Vec::new(), Vec::new());
        if a.is_some() && b.is_some() {
            only_live =
                rows_missing(conn, &format!("{DERIVED_SCHEMA}.{name}"), &format!("{other}.{name}"), sample).await?;
            only_other =
                rows_missing(conn, &format!("{other}.{name}"), &format!("{DERIVED_SCHEMA}.{name}"), sample).await?;
        }
        diffs.push(TableDiff { table: name.clone(), live: a.cloned(), other: b.cloned(), only_live, only_other });
    }
    Ok(diffs)
}

/// Up to `limit` rows of `left` that `right` does not have (as often).
async fn rows_missing(conn: &mut PgConnection, left: &str, right: &str, limit: i64) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT d::text FROM (SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right}) d ORDER BY 1 LIMIT {limit}"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await?)
}

/// The base tables of `schema`, by name.
pub(crate) async fn tables_of(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?)
}

/// Constraints and indexes of the live derived tables, as the catalog has them.
struct Catalog {
    /// (table, name, definition) of primary keys, unique and exclusion constraints.
    keys: Vec<(String, String, String)>,
    /// (table, `CREATE INDEX …` on the live table) of indexes no constraint owns.
    indexes: Vec<(String, String)>,
    /// (table, name, definition) of foreign keys.
    foreign_keys: Vec<(String, String, String)>,
}

impl Catalog {
    async fn read(conn: &mut PgConnection) -> Result<Self, StoreError> {
        // Definitions come out schema-qualified as long as `derived` is not on
        // the search path; make sure of it for this read, then put it back.
        let search_path: String =
            sqlx::query_scalar("SELECT current_setting('search_path')").fetch_one(&mut *conn).await?;
        execute(conn, "SET LOCAL search_path TO pg_catalog").await?;
        let constraints = sqlx::query(
            "SELECT c.relname::text, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid)
               FROM pg_constraint con
               JOIN pg_class c ON c.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'x', 'f')
              ORDER BY c.relname, con.contype DESC, con.conname",
        )
        .bind(DERIVED_SCHEMA)
        .fetch_all(&mut *conn)
        .await?;
        let mut keys = Vec::new();
        let mut foreign_keys = Vec::new();
        for row in constraints {
            let entry = (row.try_get(0)?, row.try_get(1)?, row.try_get(3)?);
            if row.try_get::<String, _>(2)? == "f" { foreign_keys.push(entry) } else { keys.push(entry) }
        }
        let indexes = sqlx::query_as(
            "SELECT t.relname::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index i
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = $1
                AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
              ORDER BY t.relname, ic.relname",
        )
        .bind(DERIVED_SCHEMA)
        .fetch_all(&mut *conn)
        .await?;
        sqlx::query("SELECT set_config('search_path', $1, true)").bind(search_path).execute(&mut *conn).await?;
        Ok(Self { keys, indexes, foreign_keys })
    }

    /// Keys, then indexes, of `table`, for its copy in `schema`.
    fn ddl_for(&self, table: &str, schema: &str) -> Vec<String> {
        let keys = self
            .keys
            .iter()
            .filter(|(t, _, _)| t == table)
            .map(|(_, name, def)| format!("ALTER TABLE {schema}.{table} ADD CONSTRAINT \"{name}\" {def}"));
        let on_live = format!(" ON {DERIVED_SCHEMA}.{table} ");
        let on_copy = format!(" ON {schema}.{table} ");
        let indexes =
            self.indexes.iter().filter(|(t, _)| t == table).map(|(_, def)| def.replacen(&on_live, &on_copy, 1));
        keys.chain(indexes).collect()
    }

    /// Foreign keys of every table, pointing into `schema`.
    fn foreign_keys_for(&self, schema: &str) -> Vec<String> {
        let live = format!("REFERENCES {DERIVED_SCHEMA}.");
        let copy = format!("REFERENCES {schema}.");
        self.foreign_keys
            .iter()
            .map(|(table, name, def)| {
                format!("ALTER TABLE {schema}.{table} ADD CONSTRAINT \"{name}\" {}", def.replace(&live, &copy))
            })
            .collect()
    }
}

fn check_name(schema: &str) -> Result<(), StoreError> {
    if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(StoreError::Corrupt(format!("{schema:?} is not a schema name")));
    }
    Ok(())
}

async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn).await?;
    Ok(())
}
