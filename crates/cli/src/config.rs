//! Configuration from environment variables (and an optional `.env`), validated
//! once at start-up. Every problem is collected and reported together, naming
//! each offending variable and why (SPEC §9).

use std::{fmt, str::FromStr};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use sqlx::postgres::PgConnectOptions;
use url::Url;

/// One variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Every configuration problem found, reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order the variables were read.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.problems.iter().map(|p| p.var).collect();
        writeln!(f, "invalid configuration ({}):", names.join(", "))?;
        for problem in &self.problems {
            writeln!(f, "  {}: {}", problem.var, problem.reason)?;
        }
        write!(f, "Set them in the environment or in .env (see .env.example).")
    }
}

/// Loads `.env` from the working directory if there is one. Variables already in
/// the environment win. A malformed file is a configuration error.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(error) => Err(ConfigError { problems: vec![Problem { var: ".env", reason: error.to_string() }] }),
    }
}

/// Looks a variable up by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads variables through a lookup function and collects problems.
pub struct Env<'a> {
    lookup: Lookup<'a>,
    problems: Vec<Problem>,
}

impl<'a> Env<'a> {
    /// Reads the process environment.
    pub fn from_process() -> Env<'static> {
        Env::new(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (tests pass a map).
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Env { lookup: Box::new(lookup), problems: Vec::new() }
    }

    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A variable that must be set and parse.
    pub fn required<T>(&mut self, var: &'static str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match self.raw(var) {
            None => {
                self.problem(var, "is not set".to_owned());
                None
            }
            Some(value) => self.parse(var, &value, parse),
        }
    }

    /// A variable that may be unset (`None`); when set it must parse.
    pub fn optional<T>(&mut self, var: &'static str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let value = self.raw(var)?;
        self.parse(var, &value, parse)
    }

    fn parse<T>(&mut self, var: &'static str, value: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.problem(var, reason);
                None
            }
        }
    }

    /// Records a problem once per variable (`all` reads some variables for several roles).
    fn problem(&mut self, var: &'static str, reason: String) {
        if !self.problems.iter().any(|p| p.var == var) {
            self.problems.push(Problem { var, reason });
        }
    }

    /// Ends reading: `Ok` only if every variable was fine.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ConfigError { problems: self.problems }) }
    }
}

/// Parses a `postgres://` connection URL.
pub fn postgres_url(value: &str) -> Result<PgConnectOptions, String> {
    let url = Url::parse(value)
        .map_err(|e| format!("not a URL ({e}); expected postgres://user:password@host:5432/database"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!("scheme is {:?}; expected postgres:// or postgresql://", url.scheme()));
    }
    PgConnectOptions::from_str(value).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))
}

/// Parses a JSON-RPC endpoint URL (`http(s)://` or `ws(s)://`).
pub fn rpc_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e}); expected e.g. http://127.0.0.1:8545"))?;
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(format!("scheme is {:?}; expected http, https, ws or wss", url.scheme()));
    }
    Ok(url)
}

/// Parses a WebSocket JSON-RPC endpoint URL (`ws://` or `wss://`).
pub fn ws_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e}); expected e.g. ws://127.0.0.1:8545"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("scheme is {:?}; expected ws or wss", url.scheme()));
    }
    Ok(url)
}

/// Parses a hex secp256k1 private key (with or without `0x`). Never echoes it.
pub fn private_key(value: &str) -> Result<PrivateKeySigner, String> {
    PrivateKeySigner::from_str(value)
        .map_err(|_| "not a 32-byte hex private key (0x followed by 64 hex digits)".to_owned())
}

/// Parses a chain id (a positive integer).
pub fn chain_id(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("{value:?} is not a positive integer chain id")),
        Ok(id) => Ok(id),
    }
}

/// Parses a `0x` address.
pub fn address(value: &str) -> Result<Address, String> {
    if !value.starts_with("0x") || value.len() != 42 {
        return Err(format!("{value:?} is not an address (0x followed by 40 hex digits)"));
    }
    Address::from_str(value).map_err(|e| format!("{value:?} is not an address: {e}"))
}

/// Parses a Sentry DSN (a URL).
pub fn sentry_dsn(value: &str) -> Result<String, String> {
    value.parse::<sentry::types::Dsn>().map(|_| value.to_owned()).map_err(|e| format!("not a valid Sentry DSN: {e}"))
}

/// Parses a tracing filter (`RUST_LOG` syntax, e.g. `info` or `animoca=debug,info`).
pub fn log_filter(value: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|e| format!("not a valid log filter ({e}); e.g. info or animoca_indexer=debug,info"))
}

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

/// Settings every command reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// Error reporting to Sentry, when set.
    pub sentry_dsn: Option<String>,
    /// Log filter.
    pub log_filter: String,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self { sentry_dsn: None, log_filter: DEFAULT_LOG_FILTER.to_owned() }
    }
}

impl CommonConfig {
    /// Reads `SENTRY_DSN` and `RUST_LOG`.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let sentry_dsn = env.optional("SENTRY_DSN", sentry_dsn);
        let log_filter = env.optional("RUST_LOG", log_filter).unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        Some(CommonConfig { sentry_dsn, log_filter })
    }
}

/// What `migrate` needs.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    /// The database.
    pub database: PgConnectOptions,
}

impl MigrateConfig {
    /// Reads `DATABASE_URL`.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        Some(MigrateConfig { database: env.required("DATABASE_URL", postgres_url)? })
    }
}

/// What `rederive` and `verify` need: the database alone (no RPC, no contracts:
/// they are recorded in the database).
#[derive(Debug, Clone)]
pub struct RederiveConfig {
    /// The database.
    pub database: PgConnectOptions,
    /// The chain to re-derive, when the database indexes several.
    pub chain_id: Option<u64>,
}

impl RederiveConfig {
    /// Reads `DATABASE_URL` and `CHAIN_ID`.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let database = env.required("DATABASE_URL", postgres_url);
        let chain_id = env.optional("CHAIN_ID", chain_id);
        Some(RederiveConfig { database: database?, chain_id })
    }
}

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The database.
    pub database: PgConnectOptions,
    /// A read replica of it for public reads (`DATABASE_READ_URL`, optional).
    pub database_read: Option<PgConnectOptions>,
    /// TCP port to listen on, all interfaces (`PORT`, default 3000).
    pub port: u16,
    /// `/ready` reports not ready when the newest checkpoint is older than this
    /// (`READY_MAX_LAG_SECS`, default 120).
    pub max_lag: std::time::Duration,
    /// Origins allowed by CORS (`CORS_ORIGINS`, comma-separated; default `*`).
    pub cors_origins: Vec<String>,
    /// Requests per minute per client IP (`RATE_LIMIT_PER_MINUTE`, default 6000).
    pub rate_limit_per_minute: std::num::NonZeroU32,
    /// Signed-in requests per minute per address (`RATE_LIMIT_PER_ADDRESS_PER_MINUTE`, default 600).
    pub rate_limit_per_address_per_minute: std::num::NonZeroU32,
    /// HS256 secret of the API's JWTs (`JWT_SECRET`, at least 32 bytes; required:
    /// every node must verify every other node's tokens).
    pub jwt_secret: String,
    /// The domain Sign-In with Ethereum messages must name (`SIWE_DOMAIN`).
    pub siwe_domain: Option<String>,
    /// The prefix their URI must have (`SIWE_URI`).
    pub siwe_uri: Option<String>,
    /// The chain they must name (`CHAIN_ID`; default: the chain the database indexes).
    pub chain_id: Option<u64>,
    /// The node that proves writes (`RPC_URL`; unset: writes answer 503).
    pub rpc_url: Option<Url>,
    /// The shared cache (`REDIS_URL`; unset: the in-process cache only).
    pub redis_url: Option<String>,
    /// Whether public reads are cached (`API_CACHE`, default `on`).
    pub api_cache: bool,
    /// Take the client IP from `X-Forwarded-For` (`TRUST_PROXY`, default `off`).
    pub trust_proxy: bool,
    /// How long a write waits for the indexer to reach its transaction
    /// (`WRITE_INDEX_WAIT_MS`, default 5000) before answering 202.
    pub write_index_wait: std::time::Duration,
    /// Price ticks per market per second on the Socket.IO `markets` channel
    /// (`REALTIME_MARKETS_TICKS_PER_SECOND`, 0-100, default 4; 0: unthrottled).
    pub markets_ticks_per_second: u32,
    /// Accept webhooks on loopback and private addresses (`WEBHOOKS_ALLOW_PRIVATE`, default `off`).
    pub webhooks_allow_private: bool,
}

/// Parses the `markets` channel's rate: 0-100 ticks per market per second.
pub fn ticks_per_second(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(ticks) if ticks <= 100 => Ok(ticks),
        _ => Err(format!("{value:?} is not a number of ticks per second from 0 (unthrottled) to 100")),
    }
}

/// Parses a JWT secret: at least 32 bytes.
pub fn jwt_secret(value: &str) -> Result<String, String> {
    if value.len() < 32 { Err("must be at least 32 characters".to_owned()) } else { Ok(value.to_owned()) }
}

/// Parses a bare host (and port) such as `app.example.com`.
pub fn host(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(['/', ' ']) {
        Err(format!("{value:?} is not a host such as app.example.com"))
    } else {
        Ok(value.to_owned())
    }
}

/// Parses an http(s) URL prefix.
pub fn http_prefix(value: &str) -> Result<String, String> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not an http(s) URL"))
    }
}

/// Parses a comma-separated list of origins (`*` for any).
pub fn origins(value: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> =
        value.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
    for origin in &list {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(format!("{origin:?} is not an origin such as https://app.example.com (or *)"));
        }
    }
    if list.is_empty() { Err("no origin given".to_owned()) } else { Ok(list) }
}

/// Parses a TCP port.
pub fn port(value: &str) -> Result<u16, String> {
    value.parse().map_err(|_| format!("{value:?} is not a TCP port (0-65535)"))
}

/// Parses a positive number of seconds.
pub fn seconds(value: &str) -> Result<std::time::Duration, String> {
    match value.parse::<u64>() {
        Ok(s) if s > 0 => Ok(std::time::Duration::from_secs(s)),
        _ => Err(format!("{value:?} is not a positive number of seconds")),
    }
}

/// Parses `on`/`off` (also `true`/`false`, `1`/`0`).
pub fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{value:?} is not on or off")),
    }
}

/// Parses a Redis URL (`redis://` or `rediss://`).
pub fn redis_url(value: &str) -> Result<String, String> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "redis" | "rediss") => Ok(value.to_owned()),
        _ => Err(format!("{value:?} is not a redis:// or rediss:// URL")),
    }
}

/// Parses how long a write may wait for the indexer: 0-8000 ms (below the
/// API's 10 s request timeout).
pub fn write_wait(value: &str) -> Result<std::time::Duration, String> {
    match value.parse::<u64>() {
        Ok(ms) if ms <= 8_000 => Ok(std::time::Duration::from_millis(ms)),
        _ => Err(format!("{value:?} is not a number of milliseconds from 0 to 8000 (the request timeout is 10 s)")),
    }
}

impl ServeConfig {
    /// Reads `DATABASE_URL`, `DATABASE_READ_URL`, `PORT`, `READY_MAX_LAG_SECS`, `CORS_ORIGINS`, `RATE_LIMIT_PER_MINUTE`,
    /// `RATE_LIMIT_PER_ADDRESS_PER_MINUTE`, `JWT_SECRET`, `SIWE_DOMAIN`, `SIWE_URI`, `CHAIN_ID`, `RPC_URL`, `REDIS_URL`, `API_CACHE`, `TRUST_PROXY`, `WRITE_INDEX_WAIT_MS`,
    /// `REALTIME_MARKETS_TICKS_PER_SECOND`.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let database = env.required("DATABASE_URL", postgres_url);
        let database_read = env.optional("DATABASE_READ_URL", postgres_url);
        let port = env.optional("PORT", port).unwrap_or(3000);
        let max_lag = env.optional("READY_MAX_LAG_SECS", seconds).unwrap_or(std::time::Duration::from_secs(120));
        let cors_origins = env.optional("CORS_ORIGINS", origins).unwrap_or_else(|| vec!["*".to_owned()]);
        let rate_limit_per_minute = env
            .optional("RATE_LIMIT_PER_MINUTE", requests_per_second)
            .unwrap_or(std::num::NonZeroU32::new(6_000).unwrap_or(std::num::NonZeroU32::MIN));
        let rate_limit_per_address_per_minute = env
            .optional("RATE_LIMIT_PER_ADDRESS_PER_MINUTE", requests_per_second)
            .unwrap_or(std::num::NonZeroU32::new(600).unwrap_or(std::num::NonZeroU32::MIN));
        let jwt_secret = env.required("JWT_SECRET", jwt_secret);
        let siwe_domain = env.optional("SIWE_DOMAIN", host);
        let siwe_uri = env.optional("SIWE_URI", http_prefix);
        let chain_id = env.optional("CHAIN_ID", chain_id);
        let rpc_url = env.optional("RPC_URL", rpc_url);
        let redis_url = env.optional("REDIS_URL", redis_url);
        let api_cache = env.optional("API_CACHE", on_off).unwrap_or(true);
        let trust_proxy = env.optional("TRUST_PROXY", on_off).unwrap_or(false);
        let write_index_wait =
            env.optional("WRITE_INDEX_WAIT_MS", write_wait).unwrap_or(std::time::Duration::from_secs(5));
        let markets_ticks_per_second = env.optional("REALTIME_MARKETS_TICKS_PER_SECOND", ticks_per_second).unwrap_or(4);
        let webhooks_allow_private = env.optional("WEBHOOKS_ALLOW_PRIVATE", on_off).unwrap_or(false);
        Some(ServeConfig {
            database: database?,
            database_read,
            port,
            max_lag,
            cors_origins,
            rate_limit_per_minute,
            rate_limit_per_address_per_minute,
            jwt_secret: jwt_secret?,
            siwe_domain,
            siwe_uri,
            chain_id,
            rpc_url,
            redis_url,
            api_cache,
            trust_proxy,
            write_index_wait,
            markets_ticks_per_second,
            webhooks_allow_private,
        })
    }
}

/// What `work` needs.
#[derive(Debug, Clone)]
pub struct WorkConfig {
    /// The database.
    pub database: PgConnectOptions,
    /// The job settings (queue, Ethos, cron, retention).
    pub jobs: animoca_jobs::JobsConfig,
    /// Serve Prometheus metrics here (`METRICS_ADDR`; unset: off).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl WorkConfig {
    /// Reads `DATABASE_URL`, `REDIS_URL`, `ETHOS_API_URL`, `ETHOS_MIN_SCORE`, `JOBS_CONCURRENCY`,
    /// `JOBS_SHUTDOWN_GRACE_SECS`, `JOBS_RETENTION_HOURS`, `JOBS_MAINTENANCE_CRON`, `JOBS_RECHECK_CRON`,
    /// `JOBS_CONCURRENCY_VERIFICATION`, `JOBS_CONCURRENCY_MAINTENANCE`, `JOBS_CONCURRENCY_WEBHOOKS`,
    /// `JOBS_REPUTATION_CRON`, `NOTIFY_LARGE_TRADE_USDC`, `METRICS_ADDR`,
    /// `WORLDCOIN_API_URL`, `WORLDCOIN_APP_ID`, `WORLDCOIN_ACTION`.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let database = env.required("DATABASE_URL", postgres_url);
        let redis_url = env.optional("REDIS_URL", redis_url);
        let ethos_url = env.optional("ETHOS_API_URL", http_url);
        let min_score = env.optional("ETHOS_MIN_SCORE", ethos_score);
        let concurrency = env.optional("JOBS_CONCURRENCY", concurrency);
        let per_queue = [
            (animoca_jobs::Queue::Verification, env.optional("JOBS_CONCURRENCY_VERIFICATION", self::concurrency)),
            (animoca_jobs::Queue::Maintenance, env.optional("JOBS_CONCURRENCY_MAINTENANCE", self::concurrency)),
            (animoca_jobs::Queue::Webhooks, env.optional("JOBS_CONCURRENCY_WEBHOOKS", self::concurrency)),
        ];
        let grace = env.optional("JOBS_SHUTDOWN_GRACE_SECS", seconds);
        let retention = env.optional("JOBS_RETENTION_HOURS", hours);
        let maintenance_cron = env.optional("JOBS_MAINTENANCE_CRON", cron_expression);
        let recheck_cron = env.optional("JOBS_RECHECK_CRON", cron_expression);
        let reputation_cron = env.optional("JOBS_REPUTATION_CRON", cron_expression);
        let large_trade = env.optional("NOTIFY_LARGE_TRADE_USDC", whole_usdc);
        let metrics_addr = env.optional("METRICS_ADDR", socket_addr);
        let webhooks_allow_private = env.optional("WEBHOOKS_ALLOW_PRIVATE", on_off).unwrap_or(false);
        let worldcoin_url = env.optional("WORLDCOIN_API_URL", http_url);
        let worldcoin_app_id = env.optional("WORLDCOIN_APP_ID", worldcoin_app_id);
        let worldcoin_action = env.optional("WORLDCOIN_ACTION", worldcoin_action);
        let database = database?;
        let default_ethos = Url::parse(DEFAULT_ETHOS_API_URL).ok()?;
        let mut jobs = animoca_jobs::JobsConfig::new(ethos_url.unwrap_or(default_ethos));
        jobs.redis_url = redis_url;
        jobs.webhooks_allow_private = webhooks_allow_private;
        jobs.worldid.app_id = worldcoin_app_id;
        jobs.queue_concurrency = per_queue.into_iter().filter_map(|(queue, n)| Some((queue, n?))).collect();
        set(&mut jobs.worldid.base_url, worldcoin_url);
        set(&mut jobs.worldid.action, worldcoin_action);
        set(&mut jobs.ethos.min_score, min_score);
        set(&mut jobs.concurrency, concurrency);
        set(&mut jobs.shutdown_grace, grace);
        set(&mut jobs.retention, retention);
        set(&mut jobs.maintenance_cron, maintenance_cron);
        set(&mut jobs.recheck_cron, recheck_cron);
        set(&mut jobs.reputation_cron, reputation_cron);
        set(&mut jobs.large_trade_usdc, large_trade);
        Some(WorkConfig { database, jobs, metrics_addr })
    }
}

/// Overrides a default with a value that was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// The Ethos API the SPEC names.
pub const DEFAULT_ETHOS_API_URL: &str = "https://api.ethos.network/api/v2";

/// An `http(s)://` base URL.
pub fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|error| format!("not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    Ok(url)
}

/// A Worldcoin app id (`app_…`, letters, digits, `_` and `-`).
pub fn worldcoin_app_id(value: &str) -> Result<String, String> {
    let ok = value.starts_with("app_")
        && value.len() <= 100
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(value.to_owned()) } else { Err("must look like app_… (letters, digits, _ and -)".to_owned()) }
}

/// A World ID action name (1-100 printable characters, no spaces).
pub fn worldcoin_action(value: &str) -> Result<String, String> {
    if (1..=100).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value.to_owned())
    } else {
        Err("must be 1 to 100 printable characters without spaces".to_owned())
    }
}

/// An Ethos score threshold, 0-2800.
pub fn ethos_score(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(score) if score <= 2800 => Ok(score),
        _ => Err("must be a whole number from 0 to 2800 (Ethos scores)".to_owned()),
    }
}

/// A whole number of USDC (1 to 10^12), in base units.
pub fn whole_usdc(value: &str) -> Result<alloy::primitives::U256, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=1_000_000_000_000).contains(&n) => {
            Ok(alloy::primitives::U256::from(n) * alloy::primitives::U256::from(1_000_000u64))
        }
        _ => Err("must be a whole number of USDC from 1 to 1000000000000".to_owned()),
    }
}

/// Jobs at once per queue, 1-256.
pub fn concurrency(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 256".to_owned()),
    }
}

/// Whole hours, at least 1.
pub fn hours(value: &str) -> Result<std::time::Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=24 * 3650).contains(&n) => Ok(std::time::Duration::from_secs(n * 3600)),
        _ => Err("must be a whole number of hours from 1 to 87600".to_owned()),
    }
}

/// A cron expression with seconds (`sec min hour day month weekday [year]`).
pub fn cron_expression(value: &str) -> Result<String, String> {
    animoca_jobs::check_cron(value.trim()).map(|()| value.trim().to_owned())
}

/// What `deploy` needs.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// The node to deploy to.
    pub rpc_url: Url,
    /// The deployer's key (owner of the contracts).
    pub private_key: PrivateKeySigner,
    /// If set, the node must report this chain id.
    pub chain_id: Option<u64>,
}

impl DeployConfig {
    /// Reads `RPC_URL`, `PRIVATE_KEY` and `CHAIN_ID`.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let rpc_url = env.required("RPC_URL", rpc_url);
        let private_key = env.required("PRIVATE_KEY", private_key);
        let chain_id = env.optional("CHAIN_ID", chain_id);
        Some(DeployConfig { rpc_url: rpc_url?, private_key: private_key?, chain_id })
    }
}

/// Parses a block number.
pub fn block_number(value: &str) -> Result<u64, String> {
    value.parse::<u64>().map_err(|_| format!("{value:?} is not a block number (a non-negative integer)"))
}

/// Parses a confirmation count (at most 1,000 blocks).
pub fn confirmations(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if n <= 1_000 => Ok(n),
        _ => Err(format!("{value:?} is not a number of blocks between 0 and 1000")),
    }
}

/// The contract addresses the indexer reads (printed by `deploy`).
#[derive(Debug, Clone, Copy)]
pub struct ContractsConfig {
    /// `USDC_ADDRESS` (optional: the indexer does not read USDC logs).
    pub usdc: Option<Address>,
    /// `STAKE_VAULT`.
    pub stake_vault: Address,
    /// `CREDENTIAL_AMM`.
    pub credential_amm: Address,
    /// `PERSONA_AMM`.
    pub persona_amm: Address,
    /// `CREDENTIAL_TOKEN_FACTORY`.
    pub credential_factory: Address,
    /// `PERSONA_TOKEN_FACTORY`.
    pub persona_factory: Address,
    /// `GOVERNANCE_SLASHING`.
    pub governance: Address,
}

impl ContractsConfig {
    /// The deployment these addresses describe, on `chain_id`, indexed from `start_block`.
    pub fn deployment(&self, chain_id: u64, start_block: u64) -> animoca_chain::Deployment {
        animoca_chain::Deployment {
            chain_id,
            usdc: self.usdc.unwrap_or(Address::ZERO),
            stake_vault: self.stake_vault,
            credential_amm: self.credential_amm,
            persona_amm: self.persona_amm,
            credential_factory: self.credential_factory,
            persona_factory: self.persona_factory,
            governance: self.governance,
            start_block,
        }
    }

    /// Reads the contract addresses.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let usdc = env.optional("USDC_ADDRESS", address);
        let stake_vault = env.required("STAKE_VAULT", address);
        let credential_amm = env.required("CREDENTIAL_AMM", address);
        let persona_amm = env.required("PERSONA_AMM", address);
        let credential_factory = env.required("CREDENTIAL_TOKEN_FACTORY", address);
        let persona_factory = env.required("PERSONA_TOKEN_FACTORY", address);
        let governance = env.required("GOVERNANCE_SLASHING", address);
        Some(ContractsConfig {
            usdc,
            stake_vault: stake_vault?,
            credential_amm: credential_amm?,
            persona_amm: persona_amm?,
            credential_factory: credential_factory?,
            persona_factory: persona_factory?,
            governance: governance?,
        })
    }
}

/// What `index` needs.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// The database.
    pub database: PgConnectOptions,
    /// The node.
    pub rpc_url: Url,
    /// If set, the node must report this chain id.
    pub chain_id: Option<u64>,
    /// First block to index on an empty database.
    pub start_block: u64,
    /// Blocks to stay behind the head.
    pub confirmations: u64,
    /// The contracts.
    pub contracts: ContractsConfig,
    /// Serve Prometheus metrics at this address (`METRICS_ADDR`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Cap on RPC requests per second (`RPC_MAX_RPS`).
    pub rpc_max_rps: Option<std::num::NonZeroU32>,
    /// WebSocket endpoint for new-head notifications (`RPC_WS_URL`).
    pub rpc_ws_url: Option<Url>,
}

/// Parses a positive requests-per-second cap.
pub fn requests_per_second(value: &str) -> Result<std::num::NonZeroU32, String> {
    value.parse().map_err(|_| format!("{value:?} is not a positive whole number of requests"))
}

/// Parses a `host:port` socket address.
pub fn socket_addr(value: &str) -> Result<std::net::SocketAddr, String> {
    value.parse().map_err(|_| format!("{value:?} is not an address:port such as 127.0.0.1:9464"))
}

impl IndexConfig {
    /// Reads `DATABASE_URL`, `RPC_URL`, `CHAIN_ID`, `START_BLOCK`, `CONFIRMATIONS`,
    /// `METRICS_ADDR`, `RPC_MAX_RPS`, `RPC_WS_URL` and the contracts.
    pub fn read(env: &mut Env<'_>) -> Option<Self> {
        let database = env.required("DATABASE_URL", postgres_url);
        let rpc_url = env.required("RPC_URL", rpc_url);
        let chain_id = env.optional("CHAIN_ID", chain_id);
        let start_block = env.optional("START_BLOCK", block_number).unwrap_or(0);
        let confirmations = env.optional("CONFIRMATIONS", confirmations).unwrap_or(0);
        let contracts = ContractsConfig::read(env);
        let metrics_addr = env.optional("METRICS_ADDR", socket_addr);
        let rpc_max_rps = env.optional("RPC_MAX_RPS", requests_per_second);
        let rpc_ws_url = env.optional("RPC_WS_URL", ws_url);
        Some(IndexConfig {
            metrics_addr,
            rpc_max_rps,
            rpc_ws_url,
            database: database?,
            rpc_url: rpc_url?,
            chain_id,
            start_block,
            confirmations,
            contracts: contracts?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn read<T>(vars: &HashMap<String, String>, f: impl FnOnce(&mut Env<'_>) -> Option<T>) -> Result<T, ConfigError> {
        let mut env = Env::new(|name| vars.get(name).cloned());
        let value = f(&mut env);
        env.finish()?;
        Ok(value.expect("no problems means a value"))
    }

    #[test]
    fn migrate_names_a_malformed_database_url() {
        let err = read(&env(&[("DATABASE_URL", "nonsense")]), MigrateConfig::read).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].var, "DATABASE_URL");
        assert!(err.to_string().contains("DATABASE_URL: not a URL"), "{err}");
    }

    #[test]
    fn migrate_rejects_other_schemes_and_accepts_postgres() {
        let err = read(&env(&[("DATABASE_URL", "mysql://root@localhost/db")]), MigrateConfig::read).unwrap_err();
        assert!(err.problems[0].reason.contains("mysql"));
        let ok = read(&env(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/animoca")]), MigrateConfig::read);
        assert_eq!(ok.unwrap().database.get_database(), Some("animoca"));
    }

    #[test]
    fn deploy_names_both_missing_variables_in_one_error() {
        let err = read(&env(&[]), DeployConfig::read).unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(names, ["RPC_URL", "PRIVATE_KEY"]);
        let text = err.to_string();
        assert!(text.contains("RPC_URL: is not set") && text.contains("PRIVATE_KEY: is not set"), "{text}");
    }

    #[test]
    fn deploy_rejects_bad_values_without_echoing_the_key() {
        let err = read(
            &env(&[("RPC_URL", "ftp://x"), ("PRIVATE_KEY", "0xsecretsecret"), ("CHAIN_ID", "0")]),
            DeployConfig::read,
        )
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(names, ["RPC_URL", "PRIVATE_KEY", "CHAIN_ID"]);
        assert!(!err.to_string().contains("secretsecret"));
    }

    #[test]
    fn deploy_accepts_good_values() {
        let config = read(
            &env(&[
                ("RPC_URL", "http://127.0.0.1:8545"),
                ("PRIVATE_KEY", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
                ("CHAIN_ID", "31337"),
            ]),
            DeployConfig::read,
        )
        .unwrap();
        assert_eq!(config.chain_id, Some(31337));
        assert_eq!(config.private_key.address().to_string(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    }

    #[test]
    fn empty_values_count_as_unset_and_sentry_is_checked() {
        let err = read(&env(&[("DATABASE_URL", "  "), ("SENTRY_DSN", "not a dsn")]), |env| {
            let common = CommonConfig::read(env);
            let migrate = MigrateConfig::read(env);
            common.zip(migrate)
        })
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(names, ["SENTRY_DSN", "DATABASE_URL"]);
    }

    #[test]
    fn a_bad_log_filter_is_named() {
        let err = read(&env(&[("RUST_LOG", "info,=[")]), CommonConfig::read).unwrap_err();
        assert_eq!(err.problems[0].var, "RUST_LOG");
        let ok = read(&env(&[("RUST_LOG", "animoca_indexer=debug,info")]), CommonConfig::read).unwrap();
        assert_eq!(ok.log_filter, "animoca_indexer=debug,info");
        assert_eq!(read(&env(&[]), CommonConfig::read).unwrap().log_filter, DEFAULT_LOG_FILTER);
    }

    #[test]
    fn index_names_every_missing_contract_and_bad_number() {
        let err = read(
            &env(&[
                ("DATABASE_URL", "postgres://postgres@127.0.0.1/x"),
                ("RPC_URL", "http://127.0.0.1:8545"),
                ("START_BLOCK", "-1"),
                ("CONFIRMATIONS", "many"),
                ("STAKE_VAULT", "0x1234"),
            ]),
            IndexConfig::read,
        )
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(
            names,
            [
                "START_BLOCK",
                "CONFIRMATIONS",
                "STAKE_VAULT",
                "CREDENTIAL_AMM",
                "PERSONA_AMM",
                "CREDENTIAL_TOKEN_FACTORY",
                "PERSONA_TOKEN_FACTORY",
                "GOVERNANCE_SLASHING"
            ]
        );
    }

    #[test]
    fn the_websocket_endpoint_must_be_ws() {
        assert!(ws_url("ws://127.0.0.1:8545").is_ok());
        assert!(ws_url("wss://node.example/v1").is_ok());
        let err = ws_url("http://127.0.0.1:8545").unwrap_err();
        assert!(err.contains("expected ws or wss"), "{err}");
        assert!(ws_url("not a url").is_err());
    }

    #[test]
    fn addresses_must_be_full_hex() {
        assert!(address("0x0000000000000000000000000000000000000001").is_ok());
        assert!(address("0x01").is_err());
        assert!(address("0000000000000000000000000000000000000001zz").is_err());
    }
}
