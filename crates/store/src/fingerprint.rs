//! A fingerprint of every derived table (and the log store): equal fingerprints
//! mean equal contents, whatever order or batch sizes produced them. Used by the
//! tests (a faulty RPC, a crash or a reorg must end where a clean index ends) and
//! by `verify`.

use std::collections::BTreeMap;

use sqlx::PgPool;

use crate::StoreError;

/// Row count and content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFingerprint {
    /// Rows.
    pub rows: i64,
    /// md5 of the rows' text, sorted.
    pub md5: String,
}

/// Fingerprints of `chain.logs` and every table of the `derived` schema, by name.
pub async fn fingerprint(pool: &PgPool) -> Result<BTreeMap<String, TableFingerprint>, StoreError> {
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT 'derived.' || table_name FROM information_schema.tables
          WHERE table_schema = 'derived' AND table_type = 'BASE TABLE' AND table_name <> 'meta'",
    )
    .fetch_all(pool)
    .await?;
    tables.push("chain.logs".to_owned());
    let mut prints = BTreeMap::new();
    for table in tables {
        // Table names come from the catalog above, never from input.
        let sql =
            format!("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t");
        let (rows, md5): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
        prints.insert(table, TableFingerprint { rows, md5 });
    }
    Ok(prints)
}
