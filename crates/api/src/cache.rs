//! Response cache of the public reads (issue 9 item 8): a short in-process
//! layer (moka) in front of a shared Redis layer, both keyed by the change-feed
//! version, so that a change anywhere invalidates everything at once and no
//! entry is ever served after the data it shows changed.
//!
//! The version is `app.change_version`, bumped by every transaction that
//! appends change-feed rows, in commit order (the bump locks its row until the
//! commit, so a later version never becomes visible before an earlier one). The
//! indexer appends at least one row per commit (a `block` row: every figure
//! relative to the newest block may have moved), `rederive` and reorgs one row
//! each, and the API's own writes one `metadata`/`profile` row; each commit
//! `NOTIFY`s [`animoca_store::indexing::CHANGES_CHANNEL`] with the version. A
//! follower task per process listens and also re-reads the version every second
//! (a lost connection loses notifications); until it knows the version, or when
//! it lost the database, requests bypass the cache. Anything else that changes
//! what the API serves must append a change row too (the jobs do).
//!
//! Only anonymous `GET`s under `/api/` are cached (never a request with an
//! `Authorization` header, never notifications). Concurrent misses of one key
//! are computed once; meanwhile other readers get the previous version's entry
//! (under a second old, marked `stale`) rather than queue behind the database. Redis is optional: with it down, reads go to Postgres
//! (each Redis call is bounded by a short timeout and a failing Redis is
//! skipped for a second at a time).

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use redis::AsyncCommands;
use sqlx::PgPool;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// How long a Redis call may take before the request goes to Postgres.
const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// How long Redis entries live (the version in the key invalidates them sooner).
const REDIS_TTL_SECS: u64 = 60;
/// Largest response body cached.
const MAX_BODY: usize = 4 << 20;

/// Why the cache could not start.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// `REDIS_URL` is not a Redis URL.
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    /// The database did not answer.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A cached response: status and JSON body.
#[derive(Debug)]
pub struct Cached {
    status: StatusCode,
    body: Bytes,
}

/// The cache of one process (cloning shares it: one `Arc`).
#[derive(Clone)]
pub struct Cache(Arc<Layers>);

/// The layers behind a [`Cache`].
struct Layers {
    /// Newest change version heard of; -1: unknown, bypass.
    version: Arc<AtomicI64>,
    /// Entries by `version|path`.
    local: moka::future::Cache<String, Arc<Cached>>,
    /// The newest entry computed for each path, and when (served while the
    /// current version's entry is being computed, for at most [`STALE_FOR`]).
    latest: moka::future::Cache<String, (Arc<Cached>, Instant)>,
    /// Keys being computed right now.
    refreshing: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    redis: Option<Arc<RedisLink>>,
}

impl Cache {
    /// A cache over `pool`, with a shared Redis layer at `redis_url` when given.
    /// Follows the change feed until `shutdown`.
    pub async fn start(pool: PgPool, redis_url: Option<&str>, shutdown: CancellationToken) -> Result<Self, CacheError> {
        // Redis keys are per database: nodes sharing a database share entries.
        let namespace = animoca_store::redis_namespace(&pool).await?;
        let redis = redis_url.map(|url| RedisLink::new(url, &namespace)).transpose()?.map(Arc::new);
        if let Some(link) = &redis {
            tokio::spawn(link.clone().keep_connected(shutdown.clone()));
        }
        let cache = Cache(Arc::new(Layers {
            version: Arc::new(AtomicI64::new(-1)),
            local: moka::future::Cache::builder()
                .weigher(|key: &String, value: &Arc<Cached>| {
                    u32::try_from(key.len() + value.body.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(256 << 20)
                .time_to_live(Duration::from_secs(10))
                .build(),
            latest: moka::future::Cache::builder()
                .weigher(|key: &String, value: &(Arc<Cached>, Instant)| {
                    u32::try_from(key.len() + value.0.body.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(64 << 20)
                .time_to_live(STALE_FOR)
                .build(),
            refreshing: Arc::default(),
            redis,
        }));
        tokio::spawn(follow_changes(pool, cache.0.version.clone(), shutdown));
        Ok(cache)
    }

    /// The change version the cache is at (`None`: unknown, bypassing).
    pub fn version(&self) -> Option<i64> {
        Some(self.0.version.load(Ordering::Acquire)).filter(|v| *v >= 0)
    }

    /// Moves the version forward to `id` (a change this process just committed:
    /// read-your-writes without waiting for the notification).
    pub fn saw(&self, id: i64) {
        self.0.version.fetch_max(id, Ordering::AcqRel);
    }

    /// Pings Redis (`None`: not configured).
    pub async fn ping_redis(&self) -> Option<bool> {
        let link = self.0.redis.as_ref()?;
        Some(link.ping().await)
    }
}

/// Middleware: answers cacheable requests from the cache, filling it on a miss.
pub async fn cached(State(cache): State<Cache>, request: Request, next: Next) -> Response {
    let Some(version) = cache.version() else { return next.run(request).await };
    if !cacheable(&request) {
        return next.run(request).await;
    }
    let path = request.uri().path_and_query().map_or("", |p| p.as_str()).to_owned();
    let key = format!("{version}|{path}");
    let layers = &cache.0;
    if let Some(hit) = layers.local.get(&key).await {
        return respond(&hit, "hit");
    }
    // Another request is recomputing this entry for the new version: answer with
    // the previous version's, if it is younger than STALE_FOR (a change does not
    // make every reader wait on one recompute).
    if layers.refreshing.lock().is_ok_and(|keys| keys.contains(&key))
        && let Some((previous, at)) = layers.latest.get(&path).await
        && at.elapsed() < STALE_FOR
    {
        return respond(&previous, "stale");
    }
    let source = Arc::new(AtomicU64::new(0)); // 0 hit, 1 redis, 2 computed
    let filled = source.clone();
    let redis = layers.redis.clone();
    let refreshing = layers.refreshing.clone();
    let result = layers
        .local
        .try_get_with(key.clone(), async move {
            let _marker = Refreshing::start(refreshing, key.clone());
            if let Some(redis) = &redis
                && let Some(body) = redis.get(&key).await
            {
                filled.store(1, Ordering::Relaxed);
                return Ok(Arc::new(Cached { status: StatusCode::OK, body }));
            }
            filled.store(2, Ordering::Relaxed);
            let response = next.run(request).await;
            let status = response.status();
            let body = match axum::body::to_bytes(response.into_body(), MAX_BODY).await {
                Ok(body) => body,
                Err(_) => return Err(Cached { status: StatusCode::INTERNAL_SERVER_ERROR, body: Bytes::new() }),
            };
            if status != StatusCode::OK {
                // Not cached, but shared with the requests that waited for it.
                return Err(Cached { status, body });
            }
            if let Some(redis) = redis {
                let body = body.clone();
                tokio::spawn(async move { redis.set(&key, &body).await });
            }
            Ok(Arc::new(Cached { status, body }))
        })
        .await;
    match &result {
        Ok(cached) => {
            layers.latest.insert(path, (cached.clone(), Instant::now())).await;
            respond(cached, ["hit", "redis", "miss"][source.load(Ordering::Relaxed).min(2) as usize])
        }
        Err(error) => respond(error, "miss"),
    }
}

/// The `animoca_api_cache_total{result}` counters, registered once (building a
/// labelled key per request showed in profiles).
fn counter(label: &'static str) -> &'static metrics::Counter {
    static COUNTERS: std::sync::OnceLock<[metrics::Counter; 4]> = std::sync::OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        ["hit", "redis", "miss", "stale"].map(|result| metrics::counter!("animoca_api_cache_total", "result" => result))
    });
    let index = match label {
        "hit" => 0,
        "redis" => 1,
        "miss" => 2,
        _ => 3,
    };
    &counters[index]
}

/// How long after its computation a previous version's entry may answer while
/// the current version's is being computed.
const STALE_FOR: Duration = Duration::from_secs(1);

/// Marks a key as being recomputed until dropped.
struct Refreshing {
    keys: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    key: String,
}

impl Refreshing {
    fn start(keys: Arc<std::sync::Mutex<std::collections::HashSet<String>>>, key: String) -> Self {
        if let Ok(mut set) = keys.lock() {
            set.insert(key.clone());
        }
        Refreshing { keys, key }
    }
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        if let Ok(mut set) = self.keys.lock() {
            set.remove(&self.key);
        }
    }
}

fn respond(cached: &Cached, label: &'static str) -> Response {
    counter(label).increment(1);
    let mut response = (cached.status, Body::from(cached.body.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-cache", HeaderValue::from_static(label));
    response
}

fn cacheable(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == Method::GET
        && path.starts_with("/api/")
        && !path.ends_with("/notifications")
        && !request.headers().contains_key(header::AUTHORIZATION)
}

/// Keeps `version` at the newest change version: `LISTEN` for the writers'
/// notifications, and re-read the version every second and after any error.
async fn follow_changes(pool: PgPool, version: Arc<AtomicI64>, shutdown: CancellationToken) {
    let newest = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT version FROM app.change_version").fetch_one(&pool).await
    };
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(animoca_store::indexing::CHANGES_CHANNEL).await {
                Ok(()) => Some(listener),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            match newest(pool.clone()).await {
                Ok(current) => {
                    version.fetch_max(current, Ordering::AcqRel);
                }
                Err(error) => {
                    // The database is gone: stop serving from the cache until it is back.
                    tracing::warn!(%error, "cache: cannot read the change feed; bypassing the cache");
                    version.store(-1, Ordering::Release);
                    break;
                }
            }
            let Some(active) = listener.as_mut() else { break };
            tokio::select! {
                note = active.try_recv() => match note {
                    Ok(Some(note)) => {
                        if let Ok(id) = note.payload().parse::<i64>() {
                            version.fetch_max(id, Ordering::AcqRel);
                        }
                    }
                    // The connection dropped (notifications may be lost): re-read, reconnect.
                    Ok(None) | Err(_) => break,
                },
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// A Redis connection that reconnects in the background and is skipped while down.
struct RedisLink {
    client: redis::Client,
    /// Key prefix: `<namespace>:api:` (`animoca_store::redis_namespace`).
    prefix: String,
    connection: RwLock<Option<redis::aio::ConnectionManager>>,
    /// When the last call failed; calls are skipped for a second after.
    failed_at: std::sync::Mutex<Option<Instant>>,
}

impl RedisLink {
    fn new(url: &str, namespace: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: format!("{namespace}:api:"),
            connection: RwLock::new(None),
            failed_at: Default::default(),
        })
    }

    fn mark(&self, ok: bool) {
        if let Ok(mut failed) = self.failed_at.lock() {
            *failed = if ok { None } else { Some(Instant::now()) };
        }
    }

    fn skipping(&self) -> bool {
        self.failed_at.lock().map(|f| f.is_some_and(|at| at.elapsed() < Duration::from_secs(1))).unwrap_or(true)
    }

    /// Connects (retrying every second) until a connection manager exists; it
    /// then reconnects by itself.
    async fn keep_connected(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(REDIS_TIMEOUT));
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), self.client.get_connection_manager_with_config(config));
            match attempt.await {
                Ok(Ok(manager)) => {
                    *self.connection.write().await = Some(manager);
                    self.mark(true);
                    tracing::info!("cache: connected to Redis");
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "cache: Redis unreachable; serving from Postgres"),
                Err(_) => tracing::warn!("cache: Redis connection timed out; serving from Postgres"),
            }
            self.mark(false);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn manager(&self) -> Option<redis::aio::ConnectionManager> {
        if self.skipping() {
            return None;
        }
        self.connection.read().await.clone()
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        let mut conn = self.manager().await?;
        let reply =
            tokio::time::timeout(REDIS_TIMEOUT, conn.get::<_, Option<Vec<u8>>>(format!("{}{key}", self.prefix))).await;
        match reply {
            Ok(Ok(value)) => {
                self.mark(true);
                value.map(Bytes::from)
            }
            _ => {
                self.mark(false);
                None
            }
        }
    }

    async fn set(&self, key: &str, body: &[u8]) {
        let Some(mut conn) = self.manager().await else { return };
        let reply = tokio::time::timeout(
            REDIS_TIMEOUT,
            conn.set_ex::<_, _, ()>(format!("{}{key}", self.prefix), body, REDIS_TTL_SECS),
        )
        .await;
        self.mark(matches!(reply, Ok(Ok(()))));
    }

    async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection.read().await.clone() else { return false };
        let ping = redis::cmd("PING");
        let reply = tokio::time::timeout(Duration::from_millis(200), ping.query_async::<String>(&mut conn)).await;
        let ok = matches!(reply, Ok(Ok(_)));
        self.mark(ok);
        ok
    }
}
