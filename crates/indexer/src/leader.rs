//! One active indexer per chain: a PostgreSQL session advisory lock, held on a
//! dedicated connection for as long as the process indexes. If the process dies,
//! its connection closes and a waiting indexer takes over.

use std::time::Duration;

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use tokio_util::sync::CancellationToken;

/// Lock namespace of the indexer ("index" in ASCII), combined with the chain id.
const LOCK_NAMESPACE: i32 = 0x696e_6478;

/// The held leadership; dropping it releases the lock.
pub struct Leader {
    conn: PgConnection,
}

impl Leader {
    /// Waits until this process holds the indexer lock of `chain_id`, or `None` on shutdown.
    pub async fn acquire(
        options: &PgConnectOptions,
        chain_id: u64,
        retry: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Option<Leader>, sqlx::Error> {
        let mut conn = PgConnection::connect_with(options).await?;
        let key = lock_key(chain_id);
        let mut waiting_logged = false;
        loop {
            let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                .bind(LOCK_NAMESPACE)
                .bind(key)
                .fetch_one(&mut conn)
                .await?;
            if acquired {
                tracing::info!(chain_id, "indexer lock acquired: this process indexes");
                return Ok(Some(Leader { conn }));
            }
            if !waiting_logged {
                tracing::info!(chain_id, "another indexer holds the lock; standing by");
                waiting_logged = true;
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// Takes the indexer lock of `chain_id` if no other process holds it.
    pub async fn try_acquire(options: &PgConnectOptions, chain_id: u64) -> Result<Option<Leader>, sqlx::Error> {
        let mut conn = PgConnection::connect_with(options).await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(lock_key(chain_id))
            .fetch_one(&mut conn)
            .await?;
        Ok(acquired.then_some(Leader { conn }))
    }

    /// Whether the lock is still held (its connection is alive).
    pub async fn is_held(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }
}

fn lock_key(chain_id: u64) -> i32 {
    // Fold the chain id into the lock's second key.
    let folded = (chain_id ^ (chain_id >> 32)) & 0xffff_ffff;
    i32::from_ne_bytes(u32::try_from(folded).unwrap_or(u32::MAX).to_ne_bytes())
}
