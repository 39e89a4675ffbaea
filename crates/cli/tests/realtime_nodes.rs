//! Two `serve` processes sharing Postgres and Redis: a change relayed by one
//! reaches Socket.IO clients connected to the other (the Redis adapter), once;
//! when the relaying node dies, the other takes over and delivers what was
//! committed meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use animoca_store::{batch::ChangeRow, indexing};
use animoca_test_support::{ChildGuard, TestDb, socketio::SocketIoClient};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn serve(db: &TestDb, port: u16) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_animoca-trade"))
        .arg("serve")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis_url())
        .env("PORT", port.to_string())
        .env("JWT_SECRET", "a-test-secret-of-at-least-32-characters")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    ChildGuard::new(child)
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "serve never listened on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn vote(db: &TestDb, n: u64) {
    let change = ChangeRow { kind: "vote".into(), payload: json!({ "proposal_id": "1", "n": n }) };
    let mut tx = db.pool.begin().await.unwrap();
    indexing::write_changes(&mut tx, &[change]).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_clients_of_every_node_once_and_survive_the_relay_dying() {
    let db = TestDb::migrated().await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut node_a = serve(&db, port_a);
    wait_listening(port_a).await;
    // Node A relays: its relay cursor row appears once it holds the relay lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sqlx::query("SELECT 1 FROM app.realtime_relay").fetch_optional(&db.pool).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "node A never started relaying");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _node_b = serve(&db, port_b);
    wait_listening(port_b).await;

    let mut on_a = SocketIoClient::connect(&format!("http://127.0.0.1:{port_a}"), None).await;
    let mut on_b = SocketIoClient::connect(&format!("http://127.0.0.1:{port_b}"), None).await;
    on_a.subscribe(json!("proposals")).await;
    on_b.subscribe(json!("proposals")).await;

    vote(&db, 1).await;
    assert_eq!(on_a.event("vote").await["n"], 1);
    assert_eq!(on_b.event("vote").await["n"], 1, "relayed by A, delivered by B through Redis");
    assert!(on_b.drain("vote", Duration::from_millis(700)).await.is_empty(), "exactly once: B does not relay too");

    // A dies without a goodbye; a change committed right away is still delivered:
    // B takes the relay lock and resumes from A's cursor.
    node_a.child().kill().unwrap();
    node_a.child().wait().unwrap();
    vote(&db, 2).await;
    let started = Instant::now();
    assert_eq!(on_b.event("vote").await["n"], 2);
    eprintln!("failover delivered in {:?}", started.elapsed());
    vote(&db, 3).await;
    assert_eq!(on_b.event("vote").await["n"], 3);
    assert!(on_b.drain("vote", Duration::from_millis(500)).await.is_empty(), "no duplicates after the takeover");
}
