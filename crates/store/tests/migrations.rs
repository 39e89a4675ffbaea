//! The schema migrations: apply on an empty database, change nothing the second
//! time, and create what SPEC §5 requires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use animoca_test_support::TestDb;

#[tokio::test]
async fn migrate_applies_everything_once_then_nothing() {
    let db = TestDb::empty().await;
    let first = animoca_store::migrate(&db.pool).await.unwrap();
    assert_eq!(first.applied.len(), first.known);
    assert!(first.known >= 3);
    let schema_before = schema_fingerprint(&db).await;
    let second = animoca_store::migrate(&db.pool).await.unwrap();
    assert!(second.applied.is_empty(), "{:?}", second.applied);
    assert_eq!(schema_fingerprint(&db).await, schema_before);
}

#[tokio::test]
async fn concurrent_migrations_do_not_conflict() {
    let db = TestDb::empty().await;
    let (a, b) = tokio::join!(animoca_store::migrate(&db.pool), animoca_store::migrate(&db.pool));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.applied.len() + b.applied.len(), a.known);
}

#[tokio::test]
async fn amounts_are_exact_numeric_78_0() {
    let db = TestDb::migrated().await;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_schema || '.' || table_name, column_name, data_type || coalesce('(' || numeric_precision || ',' || numeric_scale || ')', '')
           FROM information_schema.columns
          WHERE table_schema IN ('derived', 'chain', 'app')
            AND data_type = 'numeric'
            -- prices are exact decimals with 18 places and may exceed 78 digits
            AND column_name NOT IN ('price', 'reference_price', 'open', 'high', 'low', 'close')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(columns.len() > 30, "{columns:?}");
    for required in ["token_reserves", "usdc_reserves", "balance", "current_stake", "votes_for", "volume_usdc", "value"]
    {
        assert!(columns.iter().any(|(_, c, _)| c == required), "{required} is an exact amount column");
    }
    for (table, column, ty) in &columns {
        assert_eq!(ty, "numeric(78,0)", "{table}.{column} must be NUMERIC(78,0)");
    }
    // A uint256 max survives a round trip.
    let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    let back: String =
        sqlx::query_scalar("SELECT ($1::numeric(78,0))::text").bind(max).fetch_one(&db.pool).await.unwrap();
    assert_eq!(back, max);
}

#[tokio::test]
async fn event_tables_keep_the_log_position_unique() {
    let db = TestDb::migrated().await;
    for table in ["swaps", "transfers", "stake_events", "votes"] {
        let unique: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                SELECT 1 FROM pg_indexes
                 WHERE schemaname = 'derived' AND tablename = $1
                   AND indexdef LIKE '%UNIQUE%(chain_id, tx_hash, log_index)%')",
        )
        .bind(table)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(unique, "derived.{table} needs UNIQUE (chain_id, tx_hash, log_index)");
        for column in ["chain_id", "block_number", "block_hash", "block_timestamp", "tx_hash", "log_index"] {
            assert!(has_column(&db, table, column).await, "derived.{table}.{column}");
        }
    }
}

#[tokio::test]
async fn creation_events_and_raw_logs_keep_their_position_unique_too() {
    let db = TestDb::migrated().await;
    for (schema, table, unique) in [
        ("derived", "markets", "(chain_id, created_tx_hash, created_log_index)"),
        ("derived", "proposals", "(chain_id, created_tx_hash, created_log_index)"),
        ("chain", "logs", "(chain_id, block_number, log_index)"),
    ] {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes
                             WHERE schemaname = $1 AND tablename = $2 AND indexdef LIKE '%UNIQUE%' || $3 || '%')",
        )
        .bind(schema)
        .bind(table)
        .bind(unique)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(found, "{schema}.{table} needs UNIQUE {unique}");
    }
    for table in ["markets", "proposals"] {
        for column in
            ["chain_id", "created_block", "created_block_hash", "created_at", "created_tx_hash", "created_log_index"]
        {
            assert!(has_column(&db, table, column).await, "derived.{table}.{column}");
        }
    }
}

async fn has_column(db: &TestDb, table: &str, column: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                         WHERE table_schema = 'derived' AND table_name = $1 AND column_name = $2)",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn schema_fingerprint(db: &TestDb) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT table_schema || '.' || table_name, column_name, data_type
           FROM information_schema.columns
          WHERE table_schema IN ('chain', 'derived', 'app', 'public')
          ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// The Redis namespace: the same for every pool on one database, different for
/// another database, and new once a database is dropped and created again.
#[tokio::test]
async fn the_redis_namespace_names_one_incarnation_of_one_database() {
    let first = TestDb::empty().await;
    let second = TestDb::empty().await;
    let namespace = animoca_store::redis_namespace(&first.pool).await.unwrap();
    assert!(namespace.starts_with(&format!("animoca:{}:", first.name)), "{namespace}");
    let again = sqlx::PgPool::connect_with(first.options.clone()).await.unwrap();
    assert_eq!(animoca_store::redis_namespace(&again).await.unwrap(), namespace);
    again.close().await;
    assert_ne!(animoca_store::redis_namespace(&second.pool).await.unwrap(), namespace);

    first.pool.close().await;
    animoca_store::recreate_database(&first.options).await.unwrap();
    let recreated = sqlx::PgPool::connect_with(first.options.clone()).await.unwrap();
    let fresh = animoca_store::redis_namespace(&recreated).await.unwrap();
    assert!(fresh.starts_with(&format!("animoca:{}:", first.name)) && fresh != namespace, "{fresh} vs {namespace}");
    recreated.close().await;
}
