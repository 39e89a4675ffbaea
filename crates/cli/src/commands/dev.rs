//! `animoca-trade dev`: a local devnet in one command. Starts anvil, deploys
//! the contracts, creates sample credential and persona markets, and runs the
//! indexer, the API with Socket.IO and the explorer page, the job workers and a
//! trade simulator in one process until Ctrl-C. PostgreSQL: `DATABASE_URL`, else
//! the server on 127.0.0.1:5432 if one answers, else a private cluster in `.data/`.
//! Redis: `REDIS_URL`, else 127.0.0.1:6379 if it answers, else none (in process).

use std::{path::PathBuf, time::Duration};

use alloy::providers::Provider;
use animoca_chain::DeployParams;
use animoca_devnet::{
    Anvil, AnvilError, AnvilOptions, Driver,
    postgres::PrivateCluster,
    sample::{describe, sample_markets},
    simulator::{self, LiveMarket},
};
use animoca_indexer::{Heads, Indexer, IndexerConfig, Leader};
use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::config;

/// Options of the devnet.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Port of anvil's JSON-RPC endpoint (0 picks a free one).
    #[arg(long, default_value_t = 8545)]
    pub rpc_port: u16,
    /// Sample markets to create of each type (credential, persona).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(0..=10))]
    pub markets: u16,
    /// Milliseconds between simulated trades; 0 turns the simulator off.
    #[arg(long, default_value_t = 1000)]
    pub trade_interval_ms: u64,
    /// Port of the REST API (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    pub api_port: u16,
    /// Port of the private PostgreSQL cluster, started when DATABASE_URL is unset
    /// and no server answers on 127.0.0.1:5432 (or with --private-db).
    #[arg(long, default_value_t = 54329)]
    pub db_port: u16,
    /// Folder of the private PostgreSQL cluster.
    #[arg(long, default_value = ".data/postgres")]
    pub db_dir: PathBuf,
    /// Always use the private PostgreSQL cluster (--db-dir, --db-port), even with
    /// DATABASE_URL set or a server on 127.0.0.1:5432.
    #[arg(long)]
    pub private_db: bool,
    /// No Redis, even if one answers on 127.0.0.1:6379: cache, Socket.IO and the
    /// job queue stay in process.
    #[arg(long)]
    pub no_redis: bool,
    /// Where the devnet keeps its chain state and contract addresses between runs.
    #[arg(long, default_value = ".data/devnet")]
    pub state_dir: PathBuf,
    /// Start over: a new chain and an empty database (by default a rerun resumes).
    #[arg(long)]
    pub fresh: bool,
    /// The Ethos API the job workers check issuers with (default: the devnet's
    /// offline stand-in, deterministic scores per address).
    #[arg(long, env = "ETHOS_API_URL", value_parser = config::http_url)]
    pub ethos_api_url: Option<url::Url>,
    /// The Worldcoin API World ID proofs are verified with (default: the devnet's
    /// offline stand-in, which accepts any proof but an all-zero one).
    #[arg(long, env = "WORLDCOIN_API_URL", value_parser = config::http_url)]
    pub worldcoin_api_url: Option<url::Url>,
    /// The World ID app id (default with the stand-in: app_staging_devnet).
    #[arg(long, env = "WORLDCOIN_APP_ID")]
    pub worldcoin_app_id: Option<String>,
}

/// What `dev` reads from the environment.
#[derive(Debug, Clone, Default)]
pub struct DevEnv {
    /// `DATABASE_URL`.
    pub database: Option<PgConnectOptions>,
    /// `REDIS_URL`.
    pub redis: Option<String>,
}

/// Funded accounts of the devnet: the deployer, the sample markets' creators and
/// the simulator's traders (every account but the deployer).
const DEV_ACCOUNTS: u32 = 30;

/// The database `dev` uses without `DATABASE_URL`, on a server it finds running.
const DEV_DATABASE: &str = "animoca_dev";
/// The Redis `dev` uses without `REDIS_URL`, if it answers.
const LOCAL_REDIS: &str = "redis://127.0.0.1:6379";

/// Where `dev` keeps its data.
pub struct DevDatabase {
    /// The database (kept between runs; recreated when the chain starts anew).
    pub options: PgConnectOptions,
    /// The private cluster `dev` started, if it did.
    pub cluster: Option<PrivateCluster>,
    /// Where the server came from, for the banner.
    pub source: String,
}

/// `DATABASE_URL` if set, else `animoca_dev` on the server at 127.0.0.1:5432 if it
/// answers, else a private cluster (always with `--private-db`). The database is
/// recreated when `fresh`, else created if missing.
pub async fn database(
    args: &DevArgs,
    database_url: Option<PgConnectOptions>,
    fresh: bool,
) -> anyhow::Result<DevDatabase> {
    let found = match (args.private_db, database_url) {
        (true, _) => None,
        (false, Some(options)) => Some((options, "DATABASE_URL".to_owned())),
        (false, None) => local_postgres().await.map(|o| (o, "the server on 127.0.0.1:5432".to_owned())),
    };
    let (options, cluster, source) = match found {
        Some((options, source)) => (options, None, source),
        None => {
            let cluster = PrivateCluster::start(&args.db_dir, args.db_port).await.context("private PostgreSQL")?;
            let options = config::postgres_url(&cluster.url(DEV_DATABASE)).map_err(anyhow::Error::msg)?;
            (options, Some(cluster), format!("private cluster, {}", args.db_dir.display()))
        }
    };
    if fresh {
        animoca_store::recreate_database(&options).await?;
    } else {
        animoca_store::create_database_if_missing(&options).await?;
    }
    Ok(DevDatabase { options, cluster, source })
}

/// The third-party API at `given`, else the devnet's offline stand-in started by
/// `stand_in`; with the label the banner prints.
async fn provider_url(
    given: &Option<url::Url>,
    stand_in: impl std::future::Future<Output = std::io::Result<String>>,
    what: &str,
    note: &str,
) -> anyhow::Result<(url::Url, String)> {
    if let Some(url) = given {
        return Ok((url.clone(), url.to_string()));
    }
    let base = stand_in.await.with_context(|| format!("start the {what} stand-in"))?;
    let url = url::Url::parse(&base).with_context(|| format!("the {what} stand-in's URL"))?;
    Ok((url, format!("{base} (offline stand-in; {note})")))
}

/// Whether the database indexed this chain: its checkpoint's block is this chain's
/// block at that height (nothing indexed yet counts as yes).
async fn indexed_from(
    pool: &sqlx::PgPool,
    provider: &alloy::providers::DynProvider,
    chain_id: u64,
) -> anyhow::Result<bool> {
    let checkpoint: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT block_number, block_hash FROM chain.checkpoints WHERE chain_id = $1")
            .bind(i64::try_from(chain_id)?)
            .fetch_optional(pool)
            .await?;
    let Some((number, hash)) = checkpoint else { return Ok(true) };
    let block = provider.get_block_by_number(u64::try_from(number)?.into()).await?;
    Ok(block.is_some_and(|b| b.header.hash.as_slice() == hash.as_slice()))
}

/// `animoca_dev` on 127.0.0.1:5432 as `PGUSER` (default `postgres`), if that server
/// lets us in within 3 s.
async fn local_postgres() -> Option<PgConnectOptions> {
    use sqlx::Connection;
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".to_owned());
    let options = PgConnectOptions::new().host("127.0.0.1").port(5432).username(&user).database(DEV_DATABASE);
    let admin = options.clone().database("postgres");
    let probe = sqlx::PgConnection::connect_with(&admin);
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(options)
        }
        Ok(Err(error)) => {
            tracing::info!(%error, "no PostgreSQL for dev on 127.0.0.1:5432; starting a private cluster");
            None
        }
        Err(_) => None,
    }
}

/// `REDIS_URL` if set (it must answer), else 127.0.0.1:6379 if it answers within
/// a second, else none.
async fn redis(args: &DevArgs, redis_url: Option<String>) -> anyhow::Result<Option<String>> {
    let ping = |url: String| async move {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    if args.no_redis {
        return Ok(None);
    }
    if let Some(url) = redis_url {
        match tokio::time::timeout(Duration::from_secs(3), ping(url.clone())).await {
            Ok(Ok(_)) => return Ok(Some(url)),
            Ok(Err(error)) => anyhow::bail!("REDIS_URL does not answer: {error} (unset it, or use --no-redis)"),
            Err(_) => anyhow::bail!("REDIS_URL does not answer within 3 s (unset it, or use --no-redis)"),
        }
    }
    let found = matches!(tokio::time::timeout(Duration::from_secs(1), ping(LOCAL_REDIS.to_owned())).await, Ok(Ok(_)));
    Ok(found.then(|| LOCAL_REDIS.to_owned()))
}

/// The devnet kept between runs: anvil's state and the contracts deployed in it.
struct SavedDevnet {
    state_file: PathBuf,
    deployment_file: PathBuf,
}

impl SavedDevnet {
    fn at(dir: &std::path::Path) -> Self {
        SavedDevnet { state_file: dir.join("anvil-state.json"), deployment_file: dir.join("deployment.json") }
    }

    /// The deployment of the previous run, if both files are there.
    fn deployment(&self) -> Option<animoca_chain::Deployment> {
        if !self.state_file.exists() {
            return None;
        }
        let text = std::fs::read_to_string(&self.deployment_file).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn forget(&self) -> std::io::Result<()> {
        for file in [&self.state_file, &self.deployment_file] {
            match std::fs::remove_file(file) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Runs the devnet until `shutdown`.
pub async fn run(args: DevArgs, env: DevEnv, shutdown: CancellationToken) -> anyhow::Result<()> {
    ensure_anvil_installed().await?;
    let redis_url = redis(&args, env.redis).await?;
    // A rerun resumes the previous devnet (chain state, contracts, database)
    // unless told to start over or there is nothing to resume.
    std::fs::create_dir_all(&args.state_dir).with_context(|| format!("create {}", args.state_dir.display()))?;
    let saved = SavedDevnet::at(&args.state_dir);
    let previous = if args.fresh { None } else { saved.deployment() };
    if previous.is_none() {
        saved.forget().with_context(|| format!("clear {}", args.state_dir.display()))?;
    }
    let anvil_options = AnvilOptions {
        port: args.rpc_port,
        state_file: Some(saved.state_file.clone()),
        accounts: Some(DEV_ACCOUNTS),
        ..AnvilOptions::default()
    };
    let anvil = Anvil::spawn(&anvil_options).await.with_context(|| {
        format!("start anvil on port {} (is another node using it? try --rpc-port 0)", args.rpc_port)
    })?;
    let keys = anvil.keys().to_vec();
    anyhow::ensure!(
        keys.len() == DEV_ACCOUNTS as usize,
        "anvil printed {} dev accounts, expected {DEV_ACCOUNTS}",
        keys.len()
    );
    let accounts: Vec<_> = keys.iter().map(|k| k.address()).collect();
    let provider = anvil.wallet_provider()?;
    // Resumable only if the saved chain still has the saved contracts.
    let previous = match previous {
        Some(deployment) if !provider.get_code_at(deployment.credential_factory).await?.is_empty() => Some(deployment),
        _ => None,
    };
    let db = database(&args, env.database, previous.is_none()).await?;
    let mut pool = animoca_store::connect(db.options.clone(), 8).await?;
    animoca_store::migrate(&pool).await?;
    // A kept database may hold another devnet's chain (another state dir or checkout
    // sharing the local server's `animoca_dev`): start it over rather than resume it.
    if previous.is_some() && !indexed_from(&pool, &provider, anvil.chain_id()).await? {
        println!(
            "The database {} was indexed from another chain: starting it over",
            db.options.get_database().unwrap_or("postgres")
        );
        pool.close().await;
        animoca_store::recreate_database(&db.options).await?;
        pool = animoca_store::connect(db.options.clone(), 8).await?;
        animoca_store::migrate(&pool).await?;
    }

    let setup = async {
        let deployment = match previous {
            Some(deployment) => {
                println!("Resuming the devnet in {} (--fresh starts over)", args.state_dir.display());
                deployment
            }
            None => {
                let deployment =
                    animoca_chain::deploy(&provider, accounts[0], &DeployParams::devnet(accounts[0])).await?;
                std::fs::write(&saved.deployment_file, serde_json::to_string_pretty(&deployment)?)
                    .with_context(|| format!("write {}", saved.deployment_file.display()))?;
                deployment
            }
        };
        let driver = Driver { provider: provider.clone(), deployment };
        let mut live = Vec::new();
        let samples = sample_markets(usize::from(args.markets), 7);
        write_sample_metadata(&pool, &samples, &accounts).await?;
        for sample in samples {
            // A resumed devnet has its markets already.
            let existing = driver.token_of(sample.spec.market, sample.spec.id).await?;
            let token = if existing.is_zero() {
                let (token, _) = driver.create_market(&sample.spec, accounts[sample.creator]).await?;
                tracing::info!("created {}", describe(&sample.spec, token));
                token
            } else {
                existing
            };
            live.push(LiveMarket::new(&sample, token));
        }
        anyhow::Ok((driver, live))
    };
    let (driver, live) = tokio::select! {
        ready = setup => ready.context("set up the devnet")?,
        () = shutdown.cancelled() => { anvil.stop().await; stop_cluster(&db).await; return Ok(()); }
    };

    let indexer = {
        let settings = IndexerConfig::new(anvil.chain_id(), driver.deployment.start_block, 0);
        let mut indexer = Indexer::new(pool.clone(), provider.clone(), driver.deployment, settings).await?;
        indexer.follow_heads(Heads::subscribe(anvil.ws_endpoint(), shutdown.clone()));
        let mut leader = Leader::acquire(&db.options, anvil.chain_id(), Duration::from_secs(1), &shutdown)
            .await?
            .context("indexer lock")?;
        let stop = shutdown.clone();
        tokio::spawn(async move { indexer.run(&mut leader, stop).await })
    };

    // The REST API, in this process (what `serve` runs).
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.api_port))
        .await
        .with_context(|| format!("listen on port {} for the API (try --api-port 0)", args.api_port))?;
    let api_addr = listener.local_addr()?;
    let api = {
        let mut state = animoca_api::AppState::new(pool.clone());
        state.auth.chain_id = anvil.chain_id();
        state.auth.domain = format!("localhost:{}", api_addr.port());
        state.auth.uri_prefix = format!("http://localhost:{}", api_addr.port());
        state.chain =
            Some(animoca_api::proof::ChainAccess { provider: provider.clone(), index_wait: Duration::from_secs(5) });
        state.cache =
            Some(animoca_api::cache::Cache::start(pool.clone(), redis_url.as_deref(), shutdown.clone()).await?);
        // A devnet's webhooks point at the developer's own machine.
        state.webhooks_allow_private = true;
        let auth = state.auth.clone();
        let app = animoca_api::router(state);
        // Socket.IO on the same port (with Redis, through the adapter as in production).
        let realtime = animoca_realtime::RealtimeConfig {
            redis_url: redis_url.clone(),
            ..animoca_realtime::RealtimeConfig::default()
        };
        let app = animoca_realtime::attach(app, pool.clone(), auth, realtime, shutdown.clone())
            .await
            .context("start Socket.IO")?;
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let stop = shutdown.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await })
    };

    // Background jobs in process (queued through Redis when there is one): issuer
    // checks of the sample markets, notifications, reputation.
    let (ethos_url, ethos_label) = provider_url(
        &args.ethos_api_url,
        animoca_devnet::ethos::serve(shutdown.clone()),
        "Ethos",
        "set ETHOS_API_URL for the real one",
    )
    .await?;
    let (worldcoin_url, worldcoin_label) = provider_url(
        &args.worldcoin_api_url,
        animoca_devnet::worldcoin::serve(shutdown.clone()),
        "Worldcoin",
        "any proof but an all-zero one verifies",
    )
    .await?;
    let mut jobs_config = animoca_jobs::JobsConfig::new(ethos_url);
    jobs_config.worldid.base_url = worldcoin_url;
    jobs_config.worldid.app_id = args
        .worldcoin_app_id
        .clone()
        .or_else(|| args.worldcoin_api_url.is_none().then(|| animoca_devnet::worldcoin::DEV_APP_ID.to_owned()));
    jobs_config.webhooks_allow_private = true;
    jobs_config.redis_url = redis_url.clone();
    let jobs = tokio::spawn(animoca_jobs::run(pool.clone(), jobs_config, shutdown.clone()));

    println!("\nAnimoca Trade devnet is running (Ctrl-C stops it)\n");
    println!("  explorer   http://{api_addr}/  (live markets, charts, trades, proposals)");
    println!("  API        http://{api_addr}/api  (e.g. http://{api_addr}/api/credentials?status=all)");
    println!("  Socket.IO  http://{api_addr}  (path /socket.io; subscribe to markets, market:<id>, proposals, …)");
    println!("  JSON-RPC   {}  (chain id {})", anvil.endpoint(), anvil.chain_id());
    println!("  jobs       in process; issuers checked with Ethos at {ethos_label}");
    println!("  World ID   proofs verified with {worldcoin_label}");
    match &redis_url {
        Some(url) => println!("  Redis      {url}  (API cache, Socket.IO adapter, job queue)"),
        None => println!(
            "  Redis      none: cache, Socket.IO and jobs in process (REDIS_URL or a Redis on 127.0.0.1:6379 is used when there)"
        ),
    }
    println!("  markets    {} credential, {} persona", args.markets, args.markets);
    println!(
        "  indexer    DATABASE_URL=postgres://{}@{}:{}/{}  ({})",
        db.options.get_username(),
        db.options.get_host(),
        db.options.get_port(),
        db.options.get_database().unwrap_or("postgres"),
        db.source
    );
    println!(
        "  simulator  {}",
        if args.trade_interval_ms == 0 {
            "off".to_owned()
        } else {
            format!("one trade every {} ms", args.trade_interval_ms)
        }
    );
    println!("\n# .env lines for this devnet:\nRPC_URL={}\n{}", anvil.endpoint(), driver.deployment.env_lines());

    let simulator = (args.trade_interval_ms > 0).then(|| {
        let traders = accounts[1..].to_vec();
        tokio::spawn(simulator::run(
            driver.clone(),
            live,
            traders,
            Duration::from_millis(args.trade_interval_ms),
            shutdown.clone(),
        ))
    });
    shutdown.cancelled().await;
    if let Some(task) = simulator {
        task.await.context("trade simulator")?;
    }
    let indexed = indexer.await.context("indexer task")?;
    jobs.await.context("job workers task")?.context("job workers")?;
    api.await.context("API task")?.context("API server")?;
    pool.close().await;
    match provider.get_block_number().await {
        Ok(head) => println!("devnet stopped at block {head}"),
        Err(error) => tracing::warn!(%error, "anvil did not answer at shutdown"),
    }
    anvil.stop().await;
    stop_cluster(&db).await;
    indexed.context("indexer")?;
    Ok(())
}

/// The sample markets' off-chain metadata, social accounts and persona
/// credential links, as their creators would register them through the API.
async fn write_sample_metadata(
    pool: &sqlx::PgPool,
    samples: &[animoca_devnet::sample::SampleMarket],
    accounts: &[alloy::primitives::Address],
) -> anyhow::Result<()> {
    use animoca_devnet::sample::{linked_credentials, metadata_of};
    use animoca_domain::MarketType;
    let credentials: Vec<_> = samples.iter().filter(|s| s.spec.market == MarketType::Credential).collect();
    let personas: Vec<_> = samples.iter().filter(|s| s.spec.market == MarketType::Persona).collect();
    let mut tx = pool.begin().await?;
    for sample in samples {
        let meta = metadata_of(sample);
        let creator = accounts[sample.creator];
        sqlx::query(
            "INSERT INTO app.market_metadata (market_type, market_id, display_name, category, description, registered_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (market_type, market_id) DO UPDATE SET display_name = EXCLUDED.display_name,
                    category = EXCLUDED.category, description = EXCLUDED.description",
        )
        .bind(i16::from(sample.spec.market.as_u8()))
        .bind(sample.spec.id.as_slice())
        .bind(&meta.display_name)
        .bind(&meta.category)
        .bind(&meta.description)
        .bind(creator.as_slice())
        .execute(&mut *tx)
        .await?;
        if let Some((platform, handle)) = &meta.social {
            sqlx::query(
                "INSERT INTO app.social_links (persona_id, platform, handle) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(sample.spec.id.as_slice())
            .bind(platform)
            .bind(handle)
            .execute(&mut *tx)
            .await?;
        }
    }
    for (index, persona) in personas.iter().enumerate() {
        for credential in linked_credentials(index, credentials.len()) {
            sqlx::query(
                "INSERT INTO app.persona_credentials (persona_id, credential_id, linked_by) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(persona.spec.id.as_slice())
            .bind(credentials[credential].spec.id.as_slice())
            .bind(accounts[persona.creator].as_slice())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn stop_cluster(db: &DevDatabase) {
    if let Some(cluster) = &db.cluster
        && let Err(error) = cluster.stop().await
    {
        tracing::warn!(%error, "could not stop the private PostgreSQL cluster");
    }
}

/// Installs the pinned tools with the project's script when anvil is missing.
async fn ensure_anvil_installed() -> anyhow::Result<()> {
    match Anvil::binary() {
        Ok(_) => Ok(()),
        Err(AnvilError::NotInstalled { .. }) => {
            let script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/install-tools"));
            tracing::info!("anvil is not installed; running {}", script.display());
            let status = tokio::process::Command::new(&script)
                .status()
                .await
                .with_context(|| format!("run {}", script.display()))?;
            anyhow::ensure!(status.success(), "{} failed ({status})", script.display());
            Anvil::binary().map(|_| ()).context("anvil after install-tools")
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without DATABASE_URL, `dev` takes `animoca_dev` on the server the machine
    /// runs on 127.0.0.1:5432 (the test machine runs one, as the README requires).
    #[tokio::test]
    async fn the_default_database_is_animoca_dev_on_the_local_server() {
        let options = local_postgres().await.expect("a PostgreSQL server answers on 127.0.0.1:5432");
        assert_eq!(
            (options.get_host(), options.get_port(), options.get_database()),
            ("127.0.0.1", 5432, Some(DEV_DATABASE))
        );
    }
}
