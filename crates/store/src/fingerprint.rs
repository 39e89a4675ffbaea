//! A fingerprint of every derived table (and the log store): equal fingerprints
//! mean equal contents, whatever order or batch sizes produced them. Used by the
//! tests (a faulty RPC, a crash or a reorg must end where a clean index ends);
//! `verify` compares schemas with [`crate::generation::compare`].

use std::collections::BTreeMap;

use sqlx::PgPool;

pub use crate::generation::TableFingerprint;
use crate::{
    DERIVED_SCHEMA, StoreError,
    generation::{fingerprint_schema, fingerprint_table},
};

/// Fingerprints of `chain.logs` and every table of the live `derived` schema
/// (but `meta`), by qualified name.
pub async fn fingerprint(pool: &PgPool) -> Result<BTreeMap<String, TableFingerprint>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut prints: BTreeMap<String, TableFingerprint> = fingerprint_schema(&mut conn, DERIVED_SCHEMA)
        .await?
        .into_iter()
        .map(|(table, print)| (format!("{DERIVED_SCHEMA}.{table}"), print))
        .collect();
    prints.insert("chain.logs".to_owned(), fingerprint_table(&mut conn, "chain.logs").await?);
    Ok(prints)
}
