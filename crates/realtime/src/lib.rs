//! Socket.IO for `animoca-trade serve` (SPEC §7), on the API's port at
//! `/socket.io`: the official `socket.io-client` v4 connects, signs in through
//! the handshake's `auth.token`, subscribes to channels ([`channels`]) and
//! receives the changes the indexer and the API commit ([`relay`]).
//!
//! With `REDIS_URL` the Redis adapter (`socketioxide-redis`) joins every node
//! of a deployment; without it each node serves its own clients alone.

pub mod channels;
pub mod directory;
pub mod relay;
pub mod session;
pub mod throttle;

use std::sync::Arc;
use std::time::Duration;

use animoca_api::auth::AuthConfig;
use engineioxide::service::NotFoundService;
use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef, handler::ConnectHandler, service::SocketIoService};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::{RedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::session::SessionContext;

/// How the realtime server runs.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `REDIS_URL`: join the other nodes through the Redis adapter.
    pub redis_url: Option<String>,
    /// `REALTIME_MARKETS_TICKS_PER_SECOND`: `markets` ticks per market per second.
    pub markets_ticks_per_second: u32,
    /// Channels one connection may hold.
    pub max_channels: usize,
    /// `CORS_ORIGINS`: origins whose pages may use the long-polling transport
    /// (the API's policy; `*` for any).
    pub cors_origins: Vec<String>,
    /// Items queued per connection (one per broadcast; without Redis a block's
    /// events for a market are one item). Memory is taken only while items wait, and a
    /// broadcast is encoded once and shared. A client that falls this far behind
    /// misses events (counted in `realtime_emit_errors_total`)
    /// rather than holding anyone up; one that stops reading altogether stops
    /// answering the heartbeat and is disconnected.
    pub max_buffer: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            markets_ticks_per_second: 4,
            cors_origins: vec!["*".to_owned()],
            max_channels: 100,
            max_buffer: 4096,
        }
    }
}

/// Why the realtime server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// `REDIS_URL` is unusable or Redis does not answer.
    #[error("Socket.IO Redis adapter: {0}")]
    Redis(#[from] redis::RedisError),
    /// The namespace could not join the adapter.
    #[error("Socket.IO adapter initialisation: {0}")]
    Adapter(String),
    /// The database did not answer (the Redis namespace is read from it).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Adds Socket.IO to `router` and starts the relay. On `shutdown` the relay
/// stops and every connection is closed (clients reconnect to another node, or
/// to this one when it is back); the HTTP server's graceful shutdown can then end.
pub async fn attach(
    router: axum::Router,
    pool: PgPool,
    auth: AuthConfig,
    config: RealtimeConfig,
    shutdown: CancellationToken,
) -> Result<axum::Router, RealtimeError> {
    let directory = directory::Directory::new(pool.clone());
    tokio::spawn(directory.clone().watch_version(shutdown.clone()));
    let context = Arc::new(SessionContext { directory, auth, max_channels: config.max_channels });
    let builder = SocketIo::builder()
        .max_buffer_size(config.max_buffer)
        // Clients send only small subscribe messages: a 1 KiB read buffer per
        // connection (the default 4 KiB is idle memory), 64 KiB at most.
        .ws_read_buffer_size(1024)
        .ws_max_message_size(64 * 1024)
        .ws_max_frame_size(64 * 1024)
        .max_payload(64 * 1024)
        .connect_timeout(Duration::from_secs(10));
    let relay = |elected| relay::RelayConfig { markets_ticks_per_second: config.markets_ticks_per_second, elected };
    match &config.redis_url {
        Some(url) => {
            let client = redis::Client::open(resp3(url))?;
            // One deployment's nodes share a database: its namespace keeps
            // deployments that share a Redis apart.
            let namespace = animoca_store::redis_namespace(&pool).await?;
            let adapter_config = RedisAdapterConfig::new().with_prefix(format!("{namespace}:socket.io"));
            let adapter = RedisAdapterCtr::new_with_redis_config(&client, adapter_config).await?;
            let (service, io) = builder.with_adapter::<RedisAdapter<_>>(adapter).build_svc();
            register(&io, context).await.map_err(|e| RealtimeError::Adapter(e.to_string()))?;
            Ok(start(io, service, router, pool, relay(true), &config.cors_origins, shutdown))
        }
        None => {
            let (service, io) = builder.build_svc();
            register(&io, context);
            Ok(start(io, service, router, pool, relay(false), &config.cors_origins, shutdown))
        }
    }
}

/// Registers the default namespace: the handshake check, then the session's handlers.
fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, context: Arc<SessionContext>) -> A::InitRes {
    // Everything happens in the handshake check (see `session::authenticate`).
    let on_connect = async |_: SocketRef<A>| {};
    let check = async move |socket: SocketRef<A>, auth| session::authenticate(context, socket, auth).await;
    io.ns("/", on_connect.with(check))
}

/// Routes `/socket.io/` to Socket.IO beside the API's routes (so not behind
/// the API's request timeout: a long-polling request waits up to the ping
/// interval), with the API's CORS policy; starts the relay.
fn start<A: Adapter>(
    io: SocketIo<A>,
    service: SocketIoService<NotFoundService, A>,
    router: axum::Router,
    pool: PgPool,
    relay_config: relay::RelayConfig,
    cors_origins: &[String],
    shutdown: CancellationToken,
) -> axum::Router {
    tokio::spawn(relay::run(io.clone(), pool, relay_config, shutdown.clone()));
    tokio::spawn(async move {
        shutdown.cancelled().await;
        io.close().await;
    });
    let service = tower::ServiceBuilder::new()
        .layer(axum::middleware::map_request(detach_from_read_buffer))
        .layer(animoca_api::protection::cors(cors_origins))
        .service(service);
    router.route_service("/socket.io/", service.clone()).route_service("/socket.io", service)
}

/// Copies a Socket.IO request's URI and headers out of the HTTP read buffer.
///
/// hyper parses them as slices of the connection's read buffer (8-24 KiB), and
/// the Socket.IO session keeps the request's parts for its whole life: without
/// the copy every idle connection kept that buffer alive (measured: 37 KiB
/// resident per idle connection before, see docs/benchmarks.md).
async fn detach_from_read_buffer(request: axum::extract::Request) -> axum::extract::Request {
    use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
    let (mut parts, body) = request.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            headers.append(name, value);
        }
    }
    parts.headers = headers;
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    axum::extract::Request::from_parts(parts, body)
}

/// The Redis adapter speaks RESP3 (Redis ≥ 7): ask for it in the URL.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}
