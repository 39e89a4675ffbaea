//! `DATABASE_READ_URL`: public reads go to the replica while it has replayed the
//! newest change this node knows of, to the primary while it is behind or down.
//! The "replica" is a copy of the primary's database (`CREATE DATABASE … TEMPLATE`)
//! whose replayed change version the test sets, which tells the answers apart:
//! users added on the primary after the copy exist only there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use animoca_api::{AppState, cache::Cache, router};
use animoca_test_support::TestDb;
use axum::{body::Body, http::Request};
use sqlx::{Connection, Executor};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

async fn add_user(pool: &sqlx::PgPool, byte: u8) -> String {
    let address = [byte; 20];
    sqlx::query("INSERT INTO app.users (address, display_name) VALUES ($1, 'someone')")
        .bind(address.as_slice())
        .execute(pool)
        .await
        .unwrap();
    format!("0x{}", hex(&address))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn status(app: &axum::Router, uri: &str) -> u16 {
    let response = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_use_the_replica_only_once_it_has_replayed_the_newest_change() {
    let mut primary = TestDb::migrated().await;
    let on_both = add_user(&primary.pool, 1).await;
    // The replica: a copy of the primary as it is now (a template needs no other sessions).
    primary.pool.close().await;
    let replica = TestDb::not_created();
    let admin = primary.options.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{}" TEMPLATE "{}""#, replica.name, primary.name)))
        .await
        .unwrap();
    conn.close().await.unwrap();
    primary.pool = animoca_store::connect(primary.options.clone(), 8).await.unwrap();

    // The primary moves on: users the replica has not replayed, and a change.
    let behind = add_user(&primary.pool, 2).await;
    let caught_up = add_user(&primary.pool, 3).await;
    let fallback = add_user(&primary.pool, 4).await;
    let uncached = add_user(&primary.pool, 5).await;
    let mut tx = primary.pool.begin().await.unwrap();
    let change = animoca_store::batch::ChangeRow { kind: "block".to_owned(), payload: serde_json::json!({}) };
    let version = animoca_store::indexing::write_changes(&mut tx, &[change]).await.unwrap().unwrap();
    tx.commit().await.unwrap();

    let stop = CancellationToken::new();
    let mut state = AppState::new(primary.pool.clone());
    state.limits.per_ip_per_minute = std::num::NonZeroU32::MAX;
    let cache = Cache::start(primary.pool.clone(), None, stop.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.version() < Some(version) {
        assert!(Instant::now() < deadline, "the cache follows the primary's version");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    state.cache = Some(cache);
    state.read_pool = Some(animoca_store::connect(replica.options.clone(), 4).await.unwrap());
    let app = router(state.clone());

    // Behind: the primary answers, with what only it has.
    assert_eq!(status(&app, &format!("/api/users/{on_both}")).await, 200);
    assert_eq!(status(&app, &format!("/api/users/{behind}")).await, 200, "read on the primary");

    // Caught up (as far as its change version says): the replica answers, so a
    // user only the primary has is not found.
    sqlx::query("UPDATE app.change_version SET version = $1").bind(version).execute(&replica.pool).await.unwrap();
    assert_eq!(status(&app, &format!("/api/users/{caught_up}")).await, 404, "read on the replica");
    assert_eq!(status(&app, &format!("/api/users/{on_both}?")).await, 200);

    // Without the cache no change version is followed: the primary serves.
    let mut without_cache = state.clone();
    without_cache.cache = None;
    assert_eq!(status(&router(without_cache), &format!("/api/users/{uncached}")).await, 200, "read on the primary");

    // A replica that does not answer: the primary serves, after a short wait.
    let unreachable = replica.options.clone().port(1);
    state.read_pool =
        Some(animoca_store::pool_options(2).acquire_timeout(Duration::from_millis(300)).connect_lazy_with(unreachable));
    let app = router(state);
    let started = Instant::now();
    assert_eq!(status(&app, &format!("/api/users/{fallback}")).await, 200, "read on the primary");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    stop.cancel();
}
