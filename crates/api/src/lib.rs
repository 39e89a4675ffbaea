//! The REST API of `animoca-trade serve` (SPEC §6): JSON under `/api`, the
//! success/error envelope, exact decimal strings, `0x` ids, ISO-8601 times.
//!
//! Handlers read the tables the indexer keeps current; one error type,
//! [`error::ApiError`], maps every failure to its HTTP status in one place.

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod error;
pub mod format;
pub mod markets;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod params;
pub mod proof;
pub mod proposal_writes;
pub mod proposals;
pub mod protection;
pub mod registration;
pub mod reply;
pub mod reputation;
pub mod telemetry;
pub mod users;
pub mod webhooks;
pub mod worldid;

use std::time::Duration;

use axum::{
    Router,
    routing::{get, patch, post},
};
use sqlx::PgPool;

/// The state handlers receive: one allocation shared by every request (cloning
/// the whole [`AppState`] per request showed up in profiles).
pub type Shared = std::sync::Arc<AppState>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database (its connections resolve derived tables through `search_path`).
    pub pool: PgPool,
    /// A read replica of it for public reads (`DATABASE_READ_URL`), used while it
    /// has replayed the newest change this node knows of (see [`read_tx`]).
    pub read_pool: Option<PgPool>,
    /// Reads skip the replica until then, after it failed.
    pub(crate) replica_down_until: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Indexer lag above which `/ready` reports not ready.
    pub max_lag: Duration,
    /// Rate, size and time limits, CORS.
    pub limits: protection::Limits,
    /// Renders `/metrics` (`None`: not installed, `/metrics` is a 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Sign-in checks and the JWT secret.
    pub auth: auth::AuthConfig,
    /// The node that proves writes (`None`: writes answer 503).
    pub chain: Option<proof::ChainAccess>,
    /// The response cache of public reads (`None`: every read goes to Postgres).
    pub cache: Option<cache::Cache>,
    /// Accept webhooks on loopback and private addresses (`WEBHOOKS_ALLOW_PRIVATE`; development only).
    pub webhooks_allow_private: bool,
    /// Signed-in requests per address (rebuilt by [`router`] from `limits`).
    pub(crate) per_address: std::sync::Arc<governor::DefaultKeyedRateLimiter<alloy_primitives::Address>>,
}

impl AppState {
    /// Defaults: `/ready` tolerates 120 s of indexer lag; [`protection::Limits::default`].
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            read_pool: None,
            replica_down_until: Default::default(),
            max_lag: Duration::from_secs(120),
            limits: protection::Limits::default(),
            metrics: None,
            auth: auth::AuthConfig {
                // A per-process secret: tokens do not survive a restart; `serve` sets JWT_SECRET.
                jwt_secret: uuid::Uuid::new_v4().as_bytes().repeat(2),
                token_ttl: Duration::from_secs(24 * 3600),
                domain: "localhost:3000".to_owned(),
                uri_prefix: "http://localhost:3000".to_owned(),
                chain_id: 31_337,
            },
            chain: None,
            cache: None,
            webhooks_allow_private: false,
            per_address: protection::keyed_limiter(protection::Limits::default().per_address_per_minute),
        }
    }
}

impl AppState {
    /// After a write committed change row `id`: this process's cache moves past
    /// it at once (read-your-writes), other processes on its notification.
    pub(crate) fn saw(&self, id: Option<i64>) {
        if let (Some(cache), Some(id)) = (&self.cache, id) {
            cache.saw(id);
        }
    }
}

/// Appends one change-feed row for an API write (in the write's transaction,
/// as its last statement); pass the returned version to [`AppState::saw`] after
/// the commit.
pub(crate) async fn record_change(
    conn: &mut sqlx::PgConnection,
    kind: &str,
    payload: serde_json::Value,
) -> Result<Option<i64>, error::ApiError> {
    let change = animoca_store::batch::ChangeRow { kind: kind.to_owned(), payload };
    Ok(animoca_store::indexing::write_changes(conn, &[change]).await?)
}

/// A read-only transaction for one request: every statement of a handler sees
/// the same indexed state (one `REPEATABLE READ` snapshot) and the tables of one
/// generation. The `LOCK` comes first, before any snapshot is taken: a `rederive`
/// swap in progress is waited for (then the new tables are locked and the
/// snapshot sees their rows), and no swap can start until the request ends
/// (it needs `markets` exclusively, and takes it first).
///
/// With a read replica (`read_pool`), the snapshot is taken there when the replica
/// has replayed the newest change version this node knows of (the response cache
/// follows it; a write of this node moves it at once), so a reader never sees
/// older data on the replica than it could on the primary a moment before, and
/// the cache never stores a replica's stale answer under a newer version. When
/// that version is unknown (no cache, or its follower is reconnecting), the
/// replica is behind, or it failed within the last few seconds, the primary
/// serves the request.
pub(crate) async fn read_tx(state: &AppState) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let wanted = state.cache.as_ref().and_then(cache::Cache::version);
    if let (Some(replica), Some(wanted)) = (&state.read_pool, wanted)
        && state.replica_down_until.lock().map_or(true, |until| until.is_none_or(|t| t <= std::time::Instant::now()))
    {
        match replica_tx(replica, wanted).await {
            Ok(Some(tx)) => {
                metrics::counter!("animoca_api_read_replica_total", "served_by" => "replica").increment(1);
                return Ok(tx);
            }
            Ok(None) => {
                metrics::counter!("animoca_api_read_replica_total", "served_by" => "primary_behind").increment(1)
            }
            Err(error) => {
                tracing::warn!(%error, "read replica unavailable; reading from the primary for {REPLICA_PAUSE:?}");
                metrics::counter!("animoca_api_read_replica_total", "served_by" => "primary_error").increment(1);
                if let Ok(mut until) = state.replica_down_until.lock() {
                    *until = Some(std::time::Instant::now() + REPLICA_PAUSE);
                }
            }
        }
    }
    read_tx_on(&state.pool).await
}

/// How long reads skip a replica that failed.
const REPLICA_PAUSE: Duration = Duration::from_secs(5);

/// A read snapshot on the replica if it has replayed `wanted`.
async fn replica_tx(
    replica: &PgPool,
    wanted: i64,
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, sqlx::Error> {
    let mut tx = read_tx_on(replica).await?;
    let replayed: i64 = sqlx::query_scalar("SELECT version FROM app.change_version").fetch_one(&mut *tx).await?;
    if replayed >= wanted {
        Ok(Some(tx))
    } else {
        tx.rollback().await?;
        Ok(None)
    }
}

/// [`read_tx`] on `pool` itself: write handlers read their own writes on the primary.
pub(crate) async fn read_tx_on(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    // One round trip: both statements in the transaction's opening message.
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; LOCK TABLE derived.markets IN ACCESS SHARE MODE")
        .await
}

/// The API's routes, behind [`protection::protect`].
pub fn router(mut state: AppState) -> Router {
    let limits = state.limits.clone();
    state.per_address = protection::keyed_limiter(limits.per_address_per_minute);
    let routes = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/api/analytics/overview", get(analytics::overview))
        .route("/api/analytics/trending", get(analytics::trending))
        .route("/api/analytics/leaderboard", get(analytics::leaderboard))
        .route("/api/auth/nonce", post(auth::nonce))
        .route("/api/auth/verify", post(auth::verify))
        .route("/api/users/me", patch(users::update_me))
        .route("/api/users/{address}", get(users::profile))
        .route("/api/users/{address}/portfolio", get(users::portfolio))
        .route("/api/users/{address}/activity", get(users::activity))
        .route("/api/users/{address}/notifications", get(notifications::list))
        .route("/api/users/{address}/notifications/read", post(notifications::mark_read))
        .route("/api/users/{address}/reputation", get(reputation::user))
        .route("/api/users/{address}/webhooks", get(webhooks::list).post(webhooks::register))
        .route("/api/users/{address}/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/api/proposals", get(proposals::list).post(proposal_writes::create))
        .route("/api/proposals/{id}", get(proposals::detail))
        .route("/api/proposals/{id}/votes", get(proposals::votes))
        .route("/api/proposals/{id}/vote", post(proposal_writes::vote))
        .route("/api/proposals/{id}/execute", post(proposal_writes::execute))
        .route("/api/{kind}", get(markets::list).post(registration::register))
        .route("/api/{kind}/{id}", get(markets::detail))
        .route("/api/{kind}/{id}/pool", get(markets::pool))
        .route("/api/{kind}/{id}/chart", get(markets::chart))
        .route("/api/{kind}/{id}/trades", get(markets::trades))
        .route("/api/{kind}/{id}/holders", get(markets::holders))
        .route("/api/{kind}/{id}/quote", get(markets::quote))
        .route("/api/{kind}/{id}/credentials", post(registration::link))
        .route("/api/{kind}/{id}/reputation", get(reputation::market))
        .route("/api/{kind}/{id}/verify/worldcoin", get(worldid::status).post(worldid::verify))
        .route_layer(axum::middleware::from_fn(telemetry::record))
        .route("/metrics", get(telemetry::render))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs_page))
        // The explorer page at `/` and its embedded assets.
        .merge(animoca_explorer::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(Shared::new(state.clone()));
    // Innermost: a handler runs to its end even if the client goes away or the
    // timeout answers first (a dropped handler could leave its connection mid-transaction).
    let routes = routes.layer(axum::middleware::from_fn(protection::run_to_completion));
    let routes = match state.cache.clone() {
        Some(cache) => routes.layer(axum::middleware::from_fn_with_state(cache, cache::cached)),
        None => routes,
    };
    let routes = routes.layer(axum::middleware::from_fn_with_state(Shared::new(state), auth::limit_per_address));
    protection::protect(routes, &limits)
}
