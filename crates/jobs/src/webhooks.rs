//! Webhook deliveries (`webhook_delivery` jobs on the `webhooks` queue).
//!
//! Each notification becomes one delivery per matching active webhook of its
//! recipient ([`fan_out`], in the notification's transaction). A delivery is a
//! `POST` of JSON to the webhook's URL with
//! - `X-Animoca-Event`: the notification kind,
//! - `X-Animoca-Delivery`: the delivery id (the same on every retry),
//! - `X-Animoca-Timestamp`: Unix seconds of this attempt,
//! - `X-Animoca-Signature`: `sha256=` + hex HMAC-SHA256 of `"{timestamp}.{body}"`
//!   with the webhook's secret.
//!
//! A 2xx delivers it. Anything else is retried with backoff (honouring
//! `Retry-After`); when the job is a dead letter ([`on_dead`]) the delivery
//! is `failed`, and after [`DISABLE_AFTER_FAILED_DELIVERIES`] failed
//! deliveries in a row the webhook is disabled and its owner told (a
//! `webhook_disabled` notification). Targets must resolve to public
//! addresses, and redirects are not followed.

use std::time::Duration;

use alloy_primitives::Address;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};

use crate::{
    JobError, Queue,
    notify::{self, Notification},
    outbox::{self, Claimed, NewJob},
};

/// Job kind: one delivery attempt series.
pub const KIND: &str = "webhook_delivery";

/// Failed deliveries in a row after which a webhook is disabled.
pub const DISABLE_AFTER_FAILED_DELIVERIES: i32 = 3;

/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Creates a delivery (and its job) for each active webhook of `recipient`
/// that wants `kind`.
pub async fn fan_out(
    conn: &mut PgConnection,
    recipient: Address,
    kind: &str,
    notification_id: i64,
) -> Result<(), sqlx::Error> {
    let deliveries: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO app.webhook_deliveries (delivery_id, webhook_id, notification_id)
         SELECT gen_random_uuid(), w.id, $3 FROM app.webhooks w
          WHERE w.address = $1 AND w.active AND (cardinality(w.events) = 0 OR $2 = ANY (w.events))
         ON CONFLICT (webhook_id, notification_id) DO NOTHING
         RETURNING delivery_id::text",
    )
    .bind(recipient.as_slice())
    .bind(kind)
    .bind(notification_id)
    .fetch_all(&mut *conn)
    .await?;
    for (delivery,) in deliveries {
        outbox::enqueue(
            conn,
            &NewJob {
                queue: Queue::Webhooks,
                kind: KIND,
                payload: json!({ "delivery_id": delivery }),
                idempotency_key: format!("{KIND}:{delivery}"),
                run_after: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// `sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a delivery sends.
#[derive(Debug, sqlx::FromRow)]
struct Pending {
    url: String,
    secret: String,
    active: bool,
    webhook_id: i64,
    status: String,
    notification_id: i64,
    kind: String,
    title: String,
    body: String,
    data: Value,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// The webhook client's resolver: a host name resolves only to public
/// addresses, checked at connection time (no second lookup an attacker's DNS
/// could answer differently).
#[derive(Debug)]
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() || addresses.iter().any(|a| !animoca_store::jobs::is_public_ip(a.ip())) {
                return Err(format!("webhook host {host} resolves to a non-public address").into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The HTTP client of deliveries: no redirects, no proxy, and (unless
/// `allow_private`) host names resolved to public addresses only.
pub fn client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .user_agent("animoca-trade-webhooks")
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if allow_private { builder.build() } else { builder.dns_resolver(std::sync::Arc::new(PublicOnlyResolver)).build() }
}

/// Refuses a URL whose host is, or resolves to, a non-public address (unless
/// `allow_private`, for local development and tests). IP literals never reach
/// the resolver, so this is their check; names are checked again when the
/// client connects ([`PublicOnlyResolver`]).
async fn check_target(url: &str, allow_private: bool) -> Result<(), JobError> {
    if allow_private {
        return Ok(());
    }
    let parsed =
        url::Url::parse(url).map_err(|error| JobError::Permanent(format!("bad webhook URL {url}: {error}")))?;
    let host = parsed.host_str().ok_or_else(|| JobError::Permanent(format!("webhook URL {url} has no host")))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| JobError::Transient(format!("cannot resolve webhook host {host}: {error}")))?
        .collect();
    if addresses.is_empty() || addresses.iter().any(|a| !animoca_store::jobs::is_public_ip(a.ip())) {
        return Err(JobError::Permanent(format!("webhook host {host} resolves to a non-public address")));
    }
    Ok(())
}

/// Runs one attempt of the delivery in `job`.
pub async fn deliver(
    pool: &PgPool,
    http: &reqwest::Client,
    config: &crate::JobsConfig,
    job: &Claimed,
) -> Result<Value, JobError> {
    let delivery = job.payload["delivery_id"]
        .as_str()
        .filter(|id| id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .ok_or_else(|| JobError::Permanent(format!("bad {KIND} payload {}", job.payload)))?
        .to_owned();
    let pending: Option<Pending> = sqlx::query_as(
        "SELECT w.url, w.secret, w.active, w.id AS webhook_id, d.status,
                n.id AS notification_id, n.kind, n.title, n.body, n.data, n.created_at
           FROM app.webhook_deliveries d
           JOIN app.webhooks w ON w.id = d.webhook_id
           JOIN app.notifications n ON n.id = d.notification_id
          WHERE d.delivery_id = $1::uuid",
    )
    .bind(&delivery)
    .fetch_optional(pool)
    .await?;
    let Some(pending) = pending else {
        return Ok(json!({ "skipped": "the webhook or the notification was deleted" }));
    };
    if pending.status != "pending" {
        return Ok(json!({ "skipped": format!("already {}", pending.status) }));
    }
    if !pending.active {
        sqlx::query("UPDATE app.webhook_deliveries SET status = 'failed', last_error = 'webhook disabled' WHERE delivery_id = $1::uuid")
            .bind(&delivery)
            .execute(pool)
            .await?;
        return Ok(json!({ "skipped": "webhook disabled" }));
    }
    check_target(&pending.url, config.webhooks_allow_private).await?;
    let body = serde_json::to_vec(&json!({
        "id": delivery,
        "event": pending.kind,
        "notification": {
            "id": pending.notification_id.to_string(),
            "kind": pending.kind,
            "title": pending.title,
            "body": pending.body,
            "data": pending.data,
            "created_at": pending.created_at,
        },
    }))
    .map_err(|error| JobError::Permanent(format!("cannot encode the delivery: {error}")))?;
    let timestamp = chrono::Utc::now().timestamp();
    let answer = http
        .post(&pending.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Animoca-Event", &pending.kind)
        .header("X-Animoca-Delivery", &delivery)
        .header("X-Animoca-Timestamp", timestamp.to_string())
        .header("X-Animoca-Signature", signature(&pending.secret, timestamp, &body))
        .body(body)
        .timeout(TIMEOUT)
        .send()
        .await;
    let (status, error, retry_after) = match answer {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None, None),
        Ok(response) => {
            let after = crate::retry_after(&response);
            (Some(response.status().as_u16()), Some(format!("answered {}", response.status())), after)
        }
        Err(error) => (None, Some(format!("request failed: {error}")), None),
    };
    let Some(error) = error else {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE app.webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $2,
                    last_error = NULL, delivered_at = now() WHERE delivery_id = $1::uuid",
        )
        .bind(&delivery)
        .bind(status.map(i32::from))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE app.webhooks SET failure_count = 0 WHERE id = $1")
            .bind(pending.webhook_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(json!({ "delivered": true, "status": status }));
    };
    sqlx::query(
        "UPDATE app.webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3
          WHERE delivery_id = $1::uuid",
    )
    .bind(&delivery)
    .bind(status.map(i32::from))
    .bind(&error)
    .execute(pool)
    .await?;
    let reason = format!("webhook {} {error}", pending.url);
    Err(match retry_after {
        Some(after) => JobError::Throttled(reason, after),
        None => JobError::Transient(reason),
    })
}

/// The delivery's job is a dead letter (out of attempts, or refused): the
/// delivery failed; after [`DISABLE_AFTER_FAILED_DELIVERIES`] failed in a row
/// the webhook is disabled and its owner told.
pub async fn on_dead(tx: &mut PgConnection, job: &Claimed, reason: &str) -> Result<(), sqlx::Error> {
    let Some(delivery) = job.payload["delivery_id"].as_str() else { return Ok(()) };
    let webhook: Option<(i64, Vec<u8>, String)> = sqlx::query_as(
        "UPDATE app.webhook_deliveries d SET status = 'failed', last_error = coalesce(d.last_error, $2)
           FROM app.webhooks w
          WHERE d.delivery_id = $1::uuid AND d.status = 'pending' AND w.id = d.webhook_id
         RETURNING w.id, w.address, w.url",
    )
    .bind(delivery)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((webhook_id, owner, url)) = webhook else { return Ok(()) };
    let failures: i32 = sqlx::query_scalar(
        "UPDATE app.webhooks SET failure_count = failure_count + 1 WHERE id = $1 RETURNING failure_count",
    )
    .bind(webhook_id)
    .fetch_one(&mut *tx)
    .await?;
    if failures >= DISABLE_AFTER_FAILED_DELIVERIES {
        let disabled =
            sqlx::query("UPDATE app.webhooks SET active = false, disabled_at = now() WHERE id = $1 AND active")
                .bind(webhook_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if let (1, Ok(owner)) = (disabled, Address::try_from(owner.as_slice())) {
            notify::store(
                &mut *tx,
                &Notification {
                    recipient: owner,
                    kind: "webhook_disabled",
                    title: "A webhook was disabled".to_owned(),
                    body: format!(
                        "{url} failed {failures} deliveries in a row (last: {reason}); delete it and register it again once it answers 2xx"
                    ),
                    data: json!({ "webhook_id": webhook_id.to_string(), "url": url }),
                    idempotency_key: format!("webhook_disabled:{webhook_id}:{delivery}"),
                },
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2's key and message, signed as "{t}.{body}" with t = 1;
        // the expected value computed independently (Python's hmac module).
        assert_eq!(
            signature("Jefe", 1, b"what do ya want for nothing?"),
            "sha256=a9049465ce89cfb8e9aac62333abda66f80e3403f51f57f6bae3c3a4485eca38"
        );
        // The RFC's own vector for the bare message.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap_or_else(|_| unreachable!());
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
