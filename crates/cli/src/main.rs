//! `animoca-trade`: one binary, one subcommand per process role (SPEC §3).

mod commands;
mod config;
mod shutdown;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{CommonConfig, ConfigError, Env};

/// Animoca Trade backend: indexes the credential and persona markets, serves the
/// API and live updates.
#[derive(Debug, Parser)]
#[command(name = "animoca-trade", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations to DATABASE_URL (safe to run again: applies only what is missing).
    Migrate,
    /// Deploy the reference contracts to RPC_URL with PRIVATE_KEY and print the addresses as .env lines.
    Deploy(commands::deploy::DeployArgs),
    /// Index the chain into DATABASE_URL: backfill from START_BLOCK, then follow the head (one active indexer at a time).
    Index(commands::index::IndexArgs),
    /// Serve the REST API on PORT (reads what `index` writes).
    Serve,
    /// Run the background jobs (issuer verification, maintenance) from the queue (REDIS_URL, else in process).
    Work,
    /// Serve, index and work in one process (the single-node default).
    All(commands::index::IndexArgs),
    /// Queue statistics and dead-letter retries.
    #[command(subcommand)]
    Jobs(commands::work::JobsCommand),
    /// Rebuild every derived table from the stored logs (no RPC) and swap them in atomically; stop the indexer first.
    Rederive,
    /// Re-derive into scratch tables and compare with the live ones; exit code 1 naming each table that differs.
    Verify,
    /// Local devnet: start anvil, deploy the contracts, create sample markets and simulate trades.
    Dev(commands::dev::DevArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = config::load_dotenv() {
        return config_failure(&error);
    }
    let mut env = Env::from_process();
    let common = CommonConfig::read(&mut env).unwrap_or_default();
    let prepared = match cli.command {
        Command::Migrate => config::MigrateConfig::read(&mut env).map(Prepared::Migrate),
        Command::Deploy(args) => config::DeployConfig::read(&mut env).map(|config| Prepared::Deploy(config, args)),
        Command::Index(args) => config::IndexConfig::read(&mut env).map(|c| Prepared::Index(Box::new(c), args)),
        Command::Serve => config::ServeConfig::read(&mut env).map(|c| Prepared::Serve(Box::new(c))),
        Command::Work => config::WorkConfig::read(&mut env).map(|c| Prepared::Work(Box::new(c))),
        Command::All(args) => {
            let index = config::IndexConfig::read(&mut env);
            let serve = config::ServeConfig::read(&mut env);
            let work = config::WorkConfig::read(&mut env);
            match (index, serve, work) {
                (Some(index), Some(serve), Some(work)) => {
                    Some(Prepared::All(Box::new(commands::all::AllConfig { index, serve, work }), args))
                }
                _ => None,
            }
        }
        Command::Jobs(command) => config::MigrateConfig::read(&mut env).map(|c| Prepared::Jobs(c, command)),
        Command::Rederive => config::RederiveConfig::read(&mut env).map(Prepared::Rederive),
        Command::Verify => config::RederiveConfig::read(&mut env).map(Prepared::Verify),
        Command::Dev(args) => {
            let database = env.optional("DATABASE_URL", config::postgres_url);
            let redis = env.optional("REDIS_URL", config::redis_url);
            Some(Prepared::Dev(args, Box::new(commands::dev::DevEnv { database, redis })))
        }
    };
    if let Err(error) = env.finish() {
        return config_failure(&error);
    }
    let Some(prepared) = prepared else {
        // `finish` reports every variable a reader could not produce.
        return ExitCode::from(2);
    };

    let _telemetry = telemetry::init(common.sentry_dsn.as_deref(), &common.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = shutdown::on_signal();
        match prepared {
            Prepared::Migrate(config) => commands::migrate::run(config, shutdown).await,
            Prepared::Deploy(config, args) => commands::deploy::run(config, args, shutdown).await,
            Prepared::Index(config, args) => commands::index::run(*config, args, shutdown).await,
            Prepared::Serve(config) => commands::serve::run(*config, shutdown).await,
            Prepared::Work(config) => commands::work::run(*config, shutdown).await,
            Prepared::All(config, args) => commands::all::run(*config, args, shutdown).await,
            Prepared::Jobs(config, command) => commands::work::jobs(config, command).await,
            Prepared::Rederive(config) => commands::rederive::run(config, shutdown).await,
            Prepared::Verify(config) => commands::rederive::verify(config, shutdown).await,
            Prepared::Dev(args, env) => commands::dev::run(args, *env, shutdown).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "command failed");
            ExitCode::FAILURE
        }
    }
}

/// A command with its validated configuration.
enum Prepared {
    Migrate(config::MigrateConfig),
    Deploy(config::DeployConfig, commands::deploy::DeployArgs),
    Index(Box<config::IndexConfig>, commands::index::IndexArgs),
    Serve(Box<config::ServeConfig>),
    Work(Box<config::WorkConfig>),
    All(Box<commands::all::AllConfig>, commands::index::IndexArgs),
    Jobs(config::MigrateConfig, commands::work::JobsCommand),
    Rederive(config::RederiveConfig),
    Verify(config::RederiveConfig),
    Dev(commands::dev::DevArgs, Box<commands::dev::DevEnv>),
}

fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}
