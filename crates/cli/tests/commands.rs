//! The binary as a user runs it: configuration errors, `migrate`, `deploy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use alloy::{primitives::Address, providers::Provider};
use animoca_test_support::{TestChain, TestDb};

use animoca_devnet::anvil::FIRST_DEV_KEY as DEV_KEY;

/// Runs `animoca-trade` with exactly `vars` as its configuration (no `.env`).
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let workdir = std::env::temp_dir();
    let mut command = Command::new(env!("CARGO_BIN_EXE_animoca-trade"));
    command.args(args).current_dir(workdir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["migrate", "--help"],
        &["deploy", "--help"],
        &["serve", "--help"],
        &["rederive", "--help"],
        &["verify", "--help"],
        &["work", "--help"],
        &["all", "--help"],
        &["jobs", "--help"],
        &["jobs", "stats", "--help"],
        &["jobs", "retry", "--help"],
        &["jobs", "reputation", "--help"],
    ] {
        let output = run(args, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).contains("Usage: animoca-trade"), "{args:?}");
    }
}

#[test]
fn index_tuning_flags_out_of_range_are_named() {
    for (flag, value) in [("--fetch-ahead", "0"), ("--target-logs", "0"), ("--max-range", "0"), ("--fetch-ahead", "x")]
    {
        let output = run(&["index", flag, value], &[]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&output);
        assert!(err.contains(flag) && err.contains(value), "{flag} {value}: {err}");
    }
}

#[test]
fn migrate_rejects_a_malformed_database_url() {
    let output = run(&["migrate"], &[("DATABASE_URL", "nonsense")]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("DATABASE_URL: not a URL"), "{err}");
}

#[test]
fn migrate_requires_a_database_url() {
    let output = run(&["migrate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("DATABASE_URL: is not set"));
}

#[test]
fn deploy_names_every_missing_variable_at_once() {
    let output = run(&["deploy"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("RPC_URL: is not set") && err.contains("PRIVATE_KEY: is not set"), "{err}");
    assert!(err.lines().next().unwrap().contains("RPC_URL, PRIVATE_KEY"), "one message naming both: {err}");
}

#[test]
fn a_malformed_sentry_dsn_is_reported_with_the_rest() {
    let output = run(&["migrate"], &[("SENTRY_DSN", "nope"), ("DATABASE_URL", "nonsense")]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("SENTRY_DSN") && err.contains("DATABASE_URL"), "{err}");
}

#[tokio::test]
async fn migrate_creates_the_schema_then_changes_nothing() {
    let db = TestDb::empty().await;
    let url = db.url();
    let first = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("applied 0001"), "{}", stdout(&first));
    let second = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(!stdout(&second).contains("applied"), "{}", stdout(&second));
    assert!(stdout(&second).contains("up to date"));
}

#[tokio::test]
async fn migrate_reports_an_unreachable_database() {
    let output = run(&["migrate"], &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("cannot connect to PostgreSQL at 127.0.0.1:1/none"), "{err}");
    assert!(err.to_lowercase().contains("refused"), "says why: {err}");
}

#[tokio::test]
async fn deploy_prints_working_addresses_as_env_lines() {
    let chain = TestChain::start().await;
    let endpoint = chain.anvil.endpoint();
    let output = run(&["deploy"], &[("RPC_URL", &endpoint), ("PRIVATE_KEY", DEV_KEY), ("CHAIN_ID", "31337")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let names: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
    for name in [
        "CHAIN_ID",
        "USDC_ADDRESS",
        "STAKE_VAULT",
        "CREDENTIAL_AMM",
        "PERSONA_AMM",
        "CREDENTIAL_TOKEN_FACTORY",
        "PERSONA_TOKEN_FACTORY",
        "GOVERNANCE_SLASHING",
        "START_BLOCK",
    ] {
        assert!(names.contains(&name), "{name} missing from {text}");
    }
    for (name, value) in &lines {
        if let Ok(address) = value.parse::<Address>() {
            let code = chain.provider.get_code_at(address).await.unwrap();
            assert!(!code.is_empty(), "{name}={value} has no code");
        }
    }
    // The printed factory really is wired: its AMM knows it.
    let get = |name: &str| lines.iter().find(|(k, _)| k == name).unwrap().1.parse::<Address>().unwrap();
    let amm = animoca_chain::bindings::MarketAMM::new(get("CREDENTIAL_AMM"), &chain.provider);
    assert_eq!(amm.factory().call().await.unwrap(), get("CREDENTIAL_TOKEN_FACTORY"));
    let start: u64 = lines.iter().find(|(k, _)| k == "START_BLOCK").unwrap().1.parse().unwrap();
    assert!(start > 0 && start <= chain.block_number().await);
}

#[tokio::test]
async fn deploy_refuses_a_node_on_another_chain() {
    let chain = TestChain::start().await;
    let endpoint = chain.anvil.endpoint();
    let output = run(&["deploy"], &[("RPC_URL", &endpoint), ("PRIVATE_KEY", DEV_KEY), ("CHAIN_ID", "1")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("serves chain id 31337, but CHAIN_ID is 1"), "{}", stderr(&output));
}

#[test]
fn serve_names_every_bad_variable_at_once() {
    let output = run(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("PORT", "99999"),
            ("CORS_ORIGINS", "ftp://files.example.com"),
            ("RATE_LIMIT_PER_MINUTE", "0"),
            ("READY_MAX_LAG_SECS", "soon"),
            ("JWT_SECRET", "short"),
            ("SIWE_DOMAIN", "https://app.example.com/"),
            ("SIWE_URI", "app.example.com"),
            ("WRITE_INDEX_WAIT_MS", "60000"),
            ("REDIS_URL", "http://cache"),
            ("REALTIME_MARKETS_TICKS_PER_SECOND", "1000"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    for name in [
        "REALTIME_MARKETS_TICKS_PER_SECOND",
        "PORT",
        "CORS_ORIGINS",
        "RATE_LIMIT_PER_MINUTE",
        "READY_MAX_LAG_SECS",
        "JWT_SECRET",
        "SIWE_DOMAIN",
        "SIWE_URI",
        "WRITE_INDEX_WAIT_MS",
        "REDIS_URL",
    ] {
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[tokio::test]
async fn serve_answers_over_http_and_stops_on_ctrl_c() {
    let db = TestDb::migrated().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_animoca-trade"))
        .arg("serve")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("PORT", port.to_string())
        .env("JWT_SECRET", "a-test-secret-of-at-least-32-characters")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = animoca_test_support::ChildGuard::new(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(b"GET /api/credentials?status=all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            break response;
        }
        assert!(std::time::Instant::now() < deadline, "serve never listened on {port}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("x-request-id"), "{body}");
    assert!(body.contains(r#""success":true"#), "{body}");
    assert!(child.interrupt(std::time::Duration::from_secs(10)).success(), "Ctrl-C stops serve cleanly");
}

#[test]
fn work_names_every_bad_variable_at_once() {
    let output = run(
        &["work"],
        &[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("REDIS_URL", "http://cache"),
            ("ETHOS_API_URL", "ftp://ethos.example.com"),
            ("ETHOS_MIN_SCORE", "3000"),
            ("JOBS_CONCURRENCY", "0"),
            ("JOBS_SHUTDOWN_GRACE_SECS", "soon"),
            ("JOBS_RETENTION_HOURS", "0"),
            ("JOBS_MAINTENANCE_CRON", "every hour"),
            ("JOBS_RECHECK_CRON", "* * *"),
            ("WORLDCOIN_APP_ID", "my app"),
            ("JOBS_REPUTATION_CRON", "often"),
            ("JOBS_CONCURRENCY_WEBHOOKS", "1000"),
            ("NOTIFY_LARGE_TRADE_USDC", "0.5"),
            ("WORLDCOIN_API_URL", "developer.worldcoin.org"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    for name in [
        "REDIS_URL",
        "ETHOS_API_URL",
        "ETHOS_MIN_SCORE",
        "JOBS_CONCURRENCY",
        "JOBS_SHUTDOWN_GRACE_SECS",
        "JOBS_RETENTION_HOURS",
        "JOBS_MAINTENANCE_CRON",
        "JOBS_RECHECK_CRON",
        "WORLDCOIN_APP_ID",
        "WORLDCOIN_API_URL",
        "JOBS_REPUTATION_CRON",
        "NOTIFY_LARGE_TRADE_USDC",
        "JOBS_CONCURRENCY_WEBHOOKS",
    ] {
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[test]
fn all_names_each_missing_variable_once() {
    let output = run(&["all"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    for name in ["DATABASE_URL", "RPC_URL", "JWT_SECRET", "CREDENTIAL_TOKEN_FACTORY"] {
        assert_eq!(err.matches(&format!("{name}: ")).count(), 1, "{name} named once: {err}");
    }
}

#[tokio::test]
async fn work_checks_new_markets_and_jobs_reports_the_queues() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/score/address"))
        .and(matchers::header("X-Ethos-Client", "animoca-trade"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "score": 1800, "level": "reputable" })),
        )
        .mount(&ethos)
        .await;
    sqlx::query(
        "INSERT INTO markets (market_type, market_id, token_address, creator_address, factory_address, amm_address,
                              token_name, token_symbol, initial_stake, chain_id, created_block, created_block_hash,
                              created_tx_hash, created_log_index, created_at)
         VALUES (1, $1, $2, $2, $2, $2, 'P', 'P', 1000, 31337, 1, $1, $1, 0, now())",
    )
    .bind([7u8; 32].as_slice())
    .bind([9u8; 20].as_slice())
    .execute(&db.pool)
    .await
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_animoca-trade"))
        .arg("work")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("ETHOS_API_URL", ethos.uri())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = animoca_test_support::ChildGuard::new(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status: Option<String> = sqlx::query_scalar(
            "SELECT verification_status FROM app.market_metadata WHERE market_type = 1 AND ethos_checked_at IS NOT NULL",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        if let Some(status) = status {
            assert_eq!(status, "verified");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the market was never checked");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(child.interrupt(std::time::Duration::from_secs(20)).success(), "Ctrl-C stops work cleanly");

    let output = run(&["jobs", "stats"], &[("DATABASE_URL", &db.url())]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stats: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let verification = stats["queues"].as_array().unwrap().iter().find(|q| q["queue"] == "verification").unwrap();
    assert_eq!((verification["done"].as_i64(), verification["dead"].as_i64()), (Some(1), Some(0)), "{stats}");

    let output = run(&["jobs", "retry", "--queue", "nope"], &[("DATABASE_URL", &db.url())]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("unknown queue") && err.contains("nope") && err.contains("queues: verification, maintenance"),
        "{err}"
    );
    let output = run(&["jobs", "retry", "--queue", "verification"], &[("DATABASE_URL", &db.url())]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("0 dead job(s)"), "{}", stdout(&output));
}
