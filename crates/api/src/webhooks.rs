//! A user's webhooks (`/api/users/{address}/webhooks`, self only): register,
//! list, delete. The job workers deliver each notification to the matching
//! active webhooks, signed with the webhook's secret (shown once, on
//! registration): see `docs/jobs.md`.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::{
    Shared,
    auth::SignedIn,
    error::ApiError,
    format,
    notifications::own,
    params::{self, Segments},
    reply,
};

/// Webhooks one address may register.
const MAX_WEBHOOKS: i64 = 10;

/// The body of a registration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWebhook {
    /// Where to POST: an http(s) URL.
    url: String,
    /// Notification kinds to deliver (absent or empty: every kind).
    events: Option<Vec<String>>,
}

/// Refuses `localhost` and IP literals that are not public (the job workers
/// check what a host name resolves to at delivery).
fn refuse_private_host(url: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url).map_err(|error| ApiError::bad("url", error.to_string()))?;
    let refused = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => !animoca_store::jobs::is_public_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => !animoca_store::jobs::is_public_ip(ip.into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal")
        }
        None => true,
    };
    if refused {
        return Err(ApiError::bad("url", "must be a public address (not loopback, private or link-local)"));
    }
    Ok(())
}

fn webhook_json(row: &sqlx::postgres::PgRow) -> Result<Value, ApiError> {
    Ok(json!({
        "id": row.try_get::<i64, _>("id")?.to_string(),
        "url": row.try_get::<String, _>("url")?,
        "events": row.try_get::<Vec<String>, _>("events")?,
        "active": row.try_get::<bool, _>("active")?,
        "failure_count": row.try_get::<i32, _>("failure_count")?,
        "disabled_at": row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("disabled_at")?.map(format::time),
        "created_at": format::time(row.try_get("created_at")?),
    }))
}

/// `POST /api/users/{address}/webhooks` (self only): registers a webhook;
/// 201 with it and its signing `secret` (shown this once).
#[utoipa::path(post, operation_id = "webhooks_register", path = "/api/users/{address}/webhooks", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits")), request_body = crate::webhooks::RegisterWebhook, security(("bearer" = [])), responses((status = 201, description = "Registered; `secret` is shown only here", body = crate::openapi::NewWebhookReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, conflict (the URL is registered, or 10 webhooks already), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn register(
    State(state): State<Shared>,
    Segments(address): Segments<String>,
    SignedIn(me): SignedIn,
    params::RawBody(body): params::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = own(&address, me)?;
    let body: RegisterWebhook = params::json_body(&body)?;
    if body.url.len() > 2048 {
        return Err(ApiError::bad("url", "at most 2048 characters"));
    }
    params::http_url("url", &body.url)?;
    if !state.webhooks_allow_private {
        refuse_private_host(&body.url)?;
    }
    let events = body.events.unwrap_or_default();
    if events.len() > animoca_store::jobs::NOTIFICATION_KINDS.len() {
        return Err(ApiError::bad("events", "too many kinds"));
    }
    for (i, kind) in events.iter().enumerate() {
        if !animoca_store::jobs::NOTIFICATION_KINDS.contains(&kind.as_str()) {
            return Err(ApiError::bad(
                &format!("events[{i}]"),
                format!("{kind:?} is not a notification kind ({})", animoca_store::jobs::NOTIFICATION_KINDS.join(", ")),
            ));
        }
    }
    let secret = format!("whsec_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let mut db = state.pool.begin().await?;
    // One registration at a time per address keeps the cap exact.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('webhooks'), hashtext($1))")
        .bind(format!("{who:#x}"))
        .execute(&mut *db)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM app.webhooks WHERE address = $1")
        .bind(who.as_slice())
        .fetch_one(&mut *db)
        .await?;
    if count >= MAX_WEBHOOKS {
        return Err(ApiError::Conflict(format!("{who:#x} has {MAX_WEBHOOKS} webhooks already; delete one first")));
    }
    let row = sqlx::query(
        "INSERT INTO app.webhooks (address, url, secret, events) VALUES ($1, $2, $3, $4)
         ON CONFLICT (address, url) DO NOTHING
         RETURNING id, url, events, active, failure_count, disabled_at, created_at",
    )
    .bind(who.as_slice())
    .bind(&body.url)
    .bind(&secret)
    .bind(&events)
    .fetch_optional(&mut *db)
    .await?
    .ok_or_else(|| ApiError::Conflict(format!("{} is registered already; delete it to register it again", body.url)))?;
    let mut webhook = webhook_json(&row)?;
    db.commit().await?;
    webhook["secret"] = json!(secret);
    Ok((StatusCode::CREATED, reply::data(webhook)))
}

/// `GET /api/users/{address}/webhooks` (self only): the webhooks, without secrets.
#[utoipa::path(get, operation_id = "webhooks_list", path = "/api/users/{address}/webhooks", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits")), security(("bearer" = [])), responses((status = 200, description = "OK", body = crate::openapi::WebhookList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn list(
    State(state): State<Shared>,
    Segments(address): Segments<String>,
    SignedIn(me): SignedIn,
) -> Result<Json<Value>, ApiError> {
    let who = own(&address, me)?;
    let rows = sqlx::query(
        "SELECT id, url, events, active, failure_count, disabled_at, created_at FROM app.webhooks
          WHERE address = $1 ORDER BY id",
    )
    .bind(who.as_slice())
    .fetch_all(&state.pool)
    .await?;
    let items = rows.iter().map(webhook_json).collect::<Result<Vec<_>, _>>()?;
    Ok(reply::data(items))
}

/// `DELETE /api/users/{address}/webhooks/{id}` (self only): deletes it and its
/// pending deliveries.
#[utoipa::path(delete, operation_id = "webhooks_delete", path = "/api/users/{address}/webhooks/{id}", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits"), ("id" = String, Path, description = "The webhook id")), security(("bearer" = [])), responses((status = 200, description = "Deleted", body = crate::openapi::DeletedReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn delete(
    State(state): State<Shared>,
    Segments((address, id)): Segments<(String, String)>,
    SignedIn(me): SignedIn,
) -> Result<Json<Value>, ApiError> {
    let who = own(&address, me)?;
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad("id", format!("{id:?} is not a webhook id")))?;
    let deleted = sqlx::query("DELETE FROM app.webhooks WHERE id = $1 AND address = $2")
        .bind(id)
        .bind(who.as_slice())
        .execute(&state.pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("webhook".to_owned()));
    }
    Ok(reply::data(json!({ "deleted": true })))
}
