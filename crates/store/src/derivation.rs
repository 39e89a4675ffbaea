//! What a derivation needs besides the logs, and what it records about itself:
//! the contracts a chain was indexed with, the stored view-call results, and
//! the derivation version of the derived schema (`meta`).

use alloy_primitives::Address;
use sqlx::{PgConnection, Row};

use crate::{StoreError, batch::CallResultRow};

/// The chains with a checkpoint (indexed at least once).
pub async fn indexed_chains(conn: &mut PgConnection) -> Result<Vec<u64>, StoreError> {
    let chains: Vec<i64> =
        sqlx::query_scalar("SELECT chain_id FROM chain.checkpoints ORDER BY chain_id").fetch_all(&mut *conn).await?;
    Ok(chains.into_iter().map(|c| u64::try_from(c).unwrap_or_default()).collect())
}

/// The contracts `chain_id` was indexed with (as recorded by
/// [`record_deployment`]) and the block indexing started at.
pub async fn stored_deployment(
    conn: &mut PgConnection,
    chain_id: u64,
) -> Result<Option<(serde_json::Value, u64)>, StoreError> {
    let row = sqlx::query("SELECT contracts, start_block FROM chain.deployments WHERE chain_id = $1")
        .bind(int(chain_id))
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| Ok((row.try_get(0)?, u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or_default()))).transpose()
}

/// Records the contracts of `chain_id` unless some are recorded already.
pub async fn record_deployment(
    conn: &mut PgConnection,
    chain_id: u64,
    start_block: u64,
    contracts: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO chain.deployments (chain_id, start_block, contracts) VALUES ($1, $2, $3)
         ON CONFLICT (chain_id) DO NOTHING",
    )
    .bind(int(chain_id))
    .bind(int(start_block))
    .bind(contracts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every stored view-call result of `chain_id`.
pub async fn call_results(conn: &mut PgConnection, chain_id: u64) -> Result<Vec<CallResultRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT block_number, to_address, calldata, result FROM chain.call_results WHERE chain_id = $1
          ORDER BY block_number",
    )
    .bind(int(chain_id))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let to: Vec<u8> = row.try_get(1)?;
            Ok(CallResultRow {
                block_number: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or_default(),
                to: Address::try_from(to.as_slice())
                    .map_err(|_| StoreError::Corrupt("call_results.to_address is not 20 bytes".to_owned()))?,
                calldata: row.try_get(2)?,
                result: row.try_get(3)?,
            })
        })
        .collect()
}

/// The derivation version recorded in the `meta` table of the connection's
/// derived schema (`None`: never recorded).
pub async fn derivation_version(conn: &mut PgConnection) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar("SELECT derivation_version FROM meta").fetch_optional(&mut *conn).await?)
}

/// Records that the connection's derived schema was built by derivation `version`.
pub async fn record_derivation_version(conn: &mut PgConnection, version: i32) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meta (singleton, derivation_version, built_at) VALUES (true, $1, now())
         ON CONFLICT (singleton) DO UPDATE SET derivation_version = EXCLUDED.derivation_version,
                                               built_at = EXCLUDED.built_at",
    )
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
