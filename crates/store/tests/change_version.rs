//! The change version is handed out in commit order: a writer that bumps it
//! waits for an earlier, uncommitted writer, so a cache that sees version N has
//! seen every change up to N (the feed's ids, from a sequence, do not promise it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use animoca_store::{batch::ChangeRow, indexing};
use animoca_test_support::TestDb;
use serde_json::json;

fn change(kind: &str) -> Vec<ChangeRow> {
    vec![ChangeRow { kind: kind.to_owned(), payload: json!({}) }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_follow_commit_order_and_are_notified() {
    let db = TestDb::migrated().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen(indexing::CHANGES_CHANNEL).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(indexing::change_version(&mut conn).await.unwrap(), 0);
    assert_eq!(indexing::write_changes(&mut conn, &[]).await.unwrap(), None, "no rows, no bump");

    let mut first = db.pool.begin().await.unwrap();
    assert_eq!(indexing::write_changes(&mut first, &change("a")).await.unwrap(), Some(1));
    // A second writer starts while the first is open: it waits, then gets 2.
    let pool = db.pool.clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let version = indexing::write_changes(&mut tx, &change("b")).await.unwrap();
        tx.commit().await.unwrap();
        version
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second writer waits for the first one's commit");
    assert_eq!(indexing::change_version(&mut conn).await.unwrap(), 0, "nothing visible before a commit");
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Some(2));
    let notes: Vec<String> =
        vec![listener.recv().await.unwrap().payload().to_owned(), listener.recv().await.unwrap().payload().to_owned()];
    assert_eq!(notes, ["1", "2"], "notified with the version, in commit order");

    // A rolled-back writer leaves no trace.
    let mut aborted = db.pool.begin().await.unwrap();
    indexing::write_changes(&mut aborted, &change("c")).await.unwrap();
    aborted.rollback().await.unwrap();
    assert_eq!(indexing::change_version(&mut conn).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_reads_by_version_so_a_late_commit_is_never_skipped() {
    let db = TestDb::migrated().await;
    let mut conn = db.pool.acquire().await.unwrap();
    // Writer A inserts first (lower feed id) but commits after writer B started:
    // with the version stamped in commit order, A's rows come before B's.
    let mut a = db.pool.begin().await.unwrap();
    indexing::write_changes(
        &mut a,
        &[ChangeRow { kind: "a1".into(), payload: json!({}) }, ChangeRow { kind: "a2".into(), payload: json!({}) }],
    )
    .await
    .unwrap();
    let pool = db.pool.clone();
    let b = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        indexing::write_changes(&mut tx, &change("b")).await.unwrap();
        tx.commit().await.unwrap();
    });
    assert!(indexing::changes_after(&mut conn, 0, 10).await.unwrap().is_empty(), "nothing before a commit");
    a.commit().await.unwrap();
    b.await.unwrap();
    let all = indexing::changes_after(&mut conn, 0, 10).await.unwrap();
    let seen: Vec<(i64, &str)> = all.iter().map(|c| (c.version, c.kind.as_str())).collect();
    assert_eq!(seen, [(1, "a1"), (1, "a2"), (2, "b")]);
    assert_eq!(indexing::changes_after(&mut conn, 1, 10).await.unwrap().len(), 1);

    // A limit never splits a version: the version holding the limit-th row is
    // read whole, later ones wait for the next read.
    let cut = indexing::changes_after(&mut conn, 0, 1).await.unwrap();
    assert_eq!(cut.iter().map(|c| c.version).collect::<Vec<_>>(), [1, 1]);
    let cut = indexing::changes_after(&mut conn, 0, 3).await.unwrap();
    assert_eq!(cut.len(), 3);
}
