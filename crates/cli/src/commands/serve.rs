//! `animoca-trade serve`: the REST API and Socket.IO on `PORT`.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;

/// Connects, migrates, serves until `shutdown` (in-flight requests finish).
pub async fn run(config: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = animoca_store::connect(config.database.clone(), 16).await?;
    animoca_store::migrate(&pool).await?;
    let mut state = animoca_api::AppState::new(pool.clone());
    if let Some(replica) = config.database_read.clone() {
        // Lazily: a replica that is down at start-up only sends reads to the primary.
        // A short acquire timeout: when the replica is unreachable, reads fall back to
        // the primary after a second rather than after the pool's usual ten.
        let options = animoca_store::pool_options(16).acquire_timeout(std::time::Duration::from_secs(1));
        // On a hot standby a replayed `rederive` swap holds its tables' lock: wait a
        // second at most, then read from the primary.
        state.read_pool = Some(options.connect_lazy_with(replica.options([("lock_timeout", "1s")])));
        if !config.api_cache {
            tracing::warn!(
                "DATABASE_READ_URL is unused with API_CACHE=off: the replica is read only once it has replayed the change version the cache follows"
            );
        }
    }
    state.max_lag = config.max_lag;
    state.webhooks_allow_private = config.webhooks_allow_private;
    state.limits.cors_origins = config.cors_origins.clone();
    state.limits.per_ip_per_minute = config.rate_limit_per_minute;
    state.limits.per_address_per_minute = config.rate_limit_per_address_per_minute;
    state.limits.trust_forwarded_for = config.trust_proxy;
    state.metrics = animoca_api::telemetry::install_recorder();
    state.auth.jwt_secret = config.jwt_secret.as_bytes().to_vec();
    state.auth.domain = config.siwe_domain.clone().unwrap_or_else(|| format!("localhost:{}", config.port));
    state.auth.uri_prefix = config.siwe_uri.clone().unwrap_or_else(|| format!("http://localhost:{}", config.port));
    state.auth.chain_id = match config.chain_id {
        Some(chain_id) => chain_id,
        None => match animoca_store::derivation::indexed_chains(&mut *pool.acquire().await?).await?.as_slice() {
            [one] => *one,
            _ => 31_337,
        },
    };
    if let Some(rpc_url) = &config.rpc_url {
        use alloy::providers::{Provider, ProviderBuilder};
        // http(s) or ws(s), as the indexer takes it.
        let provider = ProviderBuilder::new().connect(rpc_url.as_str()).await.context("connect to RPC_URL")?.erased();
        // Receipts from another chain must never prove a write here.
        match provider.get_chain_id().await {
            Ok(actual) if actual != state.auth.chain_id => anyhow::bail!(
                "RPC_URL serves chain id {actual}, but this API serves chain {} (CHAIN_ID or the indexed chain)",
                state.auth.chain_id
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "RPC_URL does not answer yet; writes answer 503 until it does"),
        }
        state.chain = Some(animoca_api::proof::ChainAccess { provider, index_wait: config.write_index_wait });
    } else {
        tracing::warn!("RPC_URL is not set: writes that need a chain proof answer 503");
    }
    if config.api_cache {
        let cache = animoca_api::cache::Cache::start(pool.clone(), config.redis_url.as_deref(), shutdown.clone())
            .await
            .context("start the response cache")?;
        state.cache = Some(cache);
    } else {
        tracing::warn!("API_CACHE=off: every read goes to Postgres");
    }
    let auth = state.auth.clone();
    let app = animoca_api::router(state);
    let realtime_config = animoca_realtime::RealtimeConfig {
        redis_url: config.redis_url.clone(),
        markets_ticks_per_second: config.markets_ticks_per_second,
        cors_origins: config.cors_origins.clone(),
        ..animoca_realtime::RealtimeConfig::default()
    };
    let app = animoca_realtime::attach(app, pool.clone(), auth, realtime_config, shutdown.clone())
        .await
        .context("start Socket.IO")?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("listen on PORT {}", config.port))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "API listening on http://{addr}/api");
    println!("API: http://{addr}/api");
    println!("Socket.IO: http://{addr} (path /socket.io)");
    println!("Explorer: http://{addr}/");
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // No Nagle delay: Socket.IO frames and API responses go out as soon as written.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    pool.close().await;
    Ok(())
}
