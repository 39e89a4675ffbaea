//! Notifications: stored in `app.notifications` (once per idempotency key),
//! published on the change feed (Socket.IO pushes them to `user:<address>`)
//! and handed to the recipient's webhooks (one delivery row and one job per
//! matching webhook), all in the caller's transaction.

use alloy_primitives::Address;
use animoca_store::batch::ChangeRow;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;

/// A notification to store.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Who gets it.
    pub recipient: Address,
    /// What happened (`verification`, …).
    pub kind: &'static str,
    /// One line.
    pub title: String,
    /// More words.
    pub body: String,
    /// Machine-readable details.
    pub data: Value,
    /// The same key twice is one notification.
    pub idempotency_key: String,
}

/// Stores `note` and publishes it, in `conn`'s transaction; `None` when its
/// idempotency key was used already (nothing written).
pub async fn store(conn: &mut PgConnection, note: &Notification) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO app.notifications (address, kind, title, body, data, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id, created_at",
    )
    .bind(note.recipient.as_slice())
    .bind(note.kind)
    .bind(&note.title)
    .bind(&note.body)
    .bind(&note.data)
    .bind(&note.idempotency_key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, created_at)) = row else { return Ok(None) };
    let change = ChangeRow {
        kind: "notification".to_owned(),
        payload: json!({
            "recipient": format!("{:#x}", note.recipient),
            "id": id,
            "kind": note.kind,
            "title": note.title,
            "body": note.body,
            "data": note.data,
            "created_at": created_at,
        }),
    };
    animoca_store::indexing::write_changes(conn, &[change]).await.map_err(|error| match error {
        animoca_store::StoreError::Query(error) => error,
        other => sqlx::Error::Protocol(other.to_string()),
    })?;
    crate::webhooks::fan_out(conn, note.recipient, note.kind, id).await?;
    Ok(Some(id))
}
