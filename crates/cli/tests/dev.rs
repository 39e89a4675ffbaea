//! `animoca-trade dev` as a newcomer runs it: a devnet with sample markets and
//! simulated trades, stopped cleanly by Ctrl-C (SIGINT).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256},
    providers::{Provider, ProviderBuilder},
    sol,
};
use animoca_chain::bindings::MarketAMM;
use animoca_test_support::ChildGuard;

sol! {
    /// What both factories share.
    #[sol(rpc)]
    interface IMarketFactory {
        function marketCount() external view returns (uint256);
        function marketIdAt(uint256 index) external view returns (bytes32);
    }
}

#[tokio::test]
async fn dev_runs_a_devnet_with_markets_and_trades_until_interrupted() {
    // A private PostgreSQL cluster in a folder of its own, on a free port.
    let db_dir = std::env::temp_dir().join(format!("animoca-dev-test-{}", std::process::id()));
    let db_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let run = DevRun::start(
        &db_dir.with_extension("state"),
        &DevDb::Private { dir: &db_dir, port: &db_port },
        &["--markets", "3"],
    );
    // Without REDIS_URL, the Redis on 127.0.0.1:6379 (the test machine runs one).
    assert_eq!(run.value("Redis      "), "redis://127.0.0.1:6379", "{:?}", run.printed);
    assert!(run.printed.iter().any(|l| l.contains("(private cluster,")), "{:?}", run.printed);
    // Verification works offline: Ethos and Worldcoin stand-ins.
    for provider in ["jobs       in process; issuers checked with Ethos", "World ID   proofs verified with"] {
        let line = run.printed.iter().find(|l| l.trim_start().starts_with(provider.trim_start()));
        assert!(line.is_some_and(|l| l.contains("offline stand-in")), "{provider}: {:?}", run.printed);
    }
    let get = |name: &str| -> Address { run.value(&format!("{name}=")).parse().unwrap() };
    let database_url = run.value("indexer    DATABASE_URL=");
    let api = run.value("API        ");
    let rpc_url = run.value("RPC_URL=");
    let provider = ProviderBuilder::new().connect_http(rpc_url.parse().unwrap());
    let markets =
        [(get("CREDENTIAL_TOKEN_FACTORY"), get("CREDENTIAL_AMM")), (get("PERSONA_TOKEN_FACTORY"), get("PERSONA_AMM"))];
    let mut pools = Vec::new();
    for (factory, amm) in markets {
        let factory = IMarketFactory::new(factory, &provider);
        assert_eq!(factory.marketCount().call().await.unwrap(), U256::from(3), "three sample markets per type");
        for i in 0..3u64 {
            pools.push((amm, factory.marketIdAt(U256::from(i)).call().await.unwrap()));
        }
    }

    // The simulator trades: some pool's reserves move.
    let before = reserves(&provider, &pools).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while reserves(&provider, &pools).await == before {
        assert!(Instant::now() < deadline, "no simulated trade within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The indexer keeps up: the simulated trades reach the database.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let swaps: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&pool).await.unwrap();
        let markets: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.markets").fetch_one(&pool).await.unwrap();
        if swaps > 0 && markets == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{swaps} swaps and {markets} markets indexed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Now and then the simulator opens a slashing proposal.
    count_reaches(&pool, "SELECT count(*) FROM derived.proposals", 1).await;
    // Many traders: the simulator trades from every account but the deployer's (29).
    count_reaches(&pool, "SELECT count(DISTINCT trader) FROM derived.swaps", 11).await;

    // The job workers check every issuer with the offline Ethos stand-in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let checks: Vec<(Vec<u8>, Option<i32>, String)> = loop {
        let rows: Vec<(Vec<u8>, Option<i32>, String)> = sqlx::query_as(
            "SELECT m.creator_address, md.ethos_score, md.verification_status
               FROM derived.markets m JOIN app.market_metadata md USING (market_type, market_id)
              WHERE md.ethos_checked_at IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if rows.len() == 6 {
            break rows;
        }
        assert!(Instant::now() < deadline, "{} of 6 issuers checked", rows.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (creator, score, status) in checks {
        let expected = animoca_devnet::ethos::score_of(Address::from_slice(&creator));
        assert_eq!(score.map(|s| s as u32), expected, "the stand-in's score");
        let decided = match expected {
            Some(s) if s >= 1400 => "verified",
            Some(s) if s < 800 => "rejected",
            _ => "pending",
        };
        assert_eq!(status, decided);
    }
    pool.close().await;

    // The API answers with the indexed sample markets.
    let response = reqwest::get(format!("{api}/credentials?status=all")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(3), "{body}");
    // With the metadata a creator would register, and personas linked to credentials.
    assert!(
        body["data"].as_array().unwrap().iter().all(|m| m["display_name"].is_string() && m["category"].is_string())
    );
    let personas: serde_json::Value =
        reqwest::get(format!("{api}/personas?status=all")).await.unwrap().json().await.unwrap();
    let persona = personas["data"][0]["persona_id"].as_str().unwrap().to_owned();
    let detail: serde_json::Value =
        reqwest::get(format!("{api}/personas/{persona}")).await.unwrap().json().await.unwrap();
    assert!(!detail["data"]["linked_credentials"].as_array().unwrap().is_empty(), "{detail}");
    assert_eq!(detail["data"]["social_links"][0]["platform"], "x", "{detail}");

    // Live updates on the same port: the simulator's trades reach a Socket.IO client.
    let base = api.trim_end_matches("/api");
    let mut client = animoca_test_support::socketio::SocketIoClient::connect(base, None).await;
    let rooms: Vec<String> = pools.iter().map(|(_, id)| format!("market:{id:#x}")).collect();
    client.subscribe(serde_json::json!(rooms)).await;
    let trade = client.event("trade").await;
    assert!(rooms.contains(&format!("market:{}", trade["market"]["market_id"].as_str().unwrap())), "{trade}");
    client.close().await;

    let rest = run.stop();
    assert!(rest.iter().any(|l| l.starts_with("devnet stopped at block")), "{rest:?}");
    let _ = std::fs::remove_dir_all(&db_dir);
    let _ = std::fs::remove_dir_all(db_dir.with_extension("state"));
}

/// Waits up to 60 s for the count `sql` returns to reach `at_least`.
async fn count_reaches(pool: &sqlx::PgPool, sql: &'static str, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if count >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {count}, expected at least {at_least} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reserves<P: Provider>(provider: &P, pools: &[(Address, B256)]) -> Vec<(U256, U256)> {
    let mut out = Vec::new();
    for (amm, id) in pools {
        let pool = MarketAMM::new(*amm, provider).pools(*id).call().await.unwrap();
        out.push((pool.tokenReserves, pool.usdcReserves));
    }
    out
}

/// Where a test's `dev` keeps its database.
enum DevDb<'a> {
    /// A private cluster in `dir` on `port` (`--private-db`).
    Private { dir: &'a std::path::Path, port: &'a str },
    /// `DATABASE_URL`.
    Url(String),
}

/// One `dev` run: the process and what it printed up to its `.env` lines.
struct DevRun {
    child: ChildGuard,
    printed: Vec<String>,
    rest: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl DevRun {
    fn start(state_dir: &std::path::Path, db: &DevDb, extra: &[&str]) -> DevRun {
        let mut command = Command::new(env!("CARGO_BIN_EXE_animoca-trade"));
        command.arg("dev");
        match db {
            DevDb::Private { dir, port } => {
                command.args(["--private-db", "--db-port", port]).arg("--db-dir").arg(dir).env_remove("DATABASE_URL")
            }
            DevDb::Url(url) => command.env("DATABASE_URL", url),
        };
        let mut child = command
            .args(["--rpc-port", "0", "--api-port", "0"])
            .args(if extra.contains(&"--trade-interval-ms") { &[][..] } else { &["--trade-interval-ms", "50"][..] })
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .current_dir(std::env::temp_dir())
            .env("RUST_LOG", "warn")
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map(ChildGuard::new)
            .unwrap();
        let mut rest = BufReader::new(child.child().stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        for line in rest.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("START_BLOCK=");
            printed.push(line);
            if done {
                break;
            }
        }
        DevRun { child, printed, rest }
    }

    fn value(&self, prefix: &str) -> String {
        let line =
            self.printed.iter().find_map(|l| l.trim().strip_prefix(prefix)).unwrap_or_else(|| panic!("{prefix}"));
        line.split_whitespace().next().unwrap().to_owned()
    }

    fn resumed(&self) -> bool {
        self.printed.iter().any(|l| l.starts_with("Resuming the devnet"))
    }

    async fn swaps(&self) -> i64 {
        let pool = sqlx::PgPool::connect(&self.value("indexer    DATABASE_URL=")).await.unwrap();
        let swaps = sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&pool).await.unwrap_or(0);
        pool.close().await;
        swaps
    }

    async fn wait_for_swaps(&self, more_than: i64) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let swaps = self.swaps().await;
            if swaps > more_than {
                return swaps;
            }
            assert!(Instant::now() < deadline, "{swaps} swaps indexed, expected more than {more_than}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ctrl-C; asserts a clean exit and returns what it printed since the `.env` lines.
    fn stop(mut self) -> Vec<String> {
        let exit = self.child.interrupt(Duration::from_secs(30));
        let rest: Vec<String> = self.rest.map_while(Result::ok).collect();
        assert!(exit.success(), "dev exits 0 on Ctrl-C: {exit:?} {rest:?}");
        rest
    }
}

#[tokio::test]
async fn a_rerun_resumes_the_devnet_and_fresh_starts_over() {
    // DATABASE_URL names a database that does not exist yet: dev creates it.
    let db = animoca_test_support::TestDb::not_created();
    let db_spec = DevDb::Url(db.url());
    let state_dir = std::env::temp_dir().join(format!("animoca-dev-resume-{}.state", std::process::id()));

    let first = DevRun::start(&state_dir, &db_spec, &["--markets", "1"]);
    assert!(!first.resumed());
    let factory = first.value("CREDENTIAL_TOKEN_FACTORY=");
    let before = first.wait_for_swaps(3).await;
    first.stop();

    // The same chain, contracts, markets and database: indexing goes on.
    let second = DevRun::start(&state_dir, &db_spec, &["--markets", "1"]);
    assert!(second.resumed(), "{:?}", second.printed);
    assert_eq!(second.value("CREDENTIAL_TOKEN_FACTORY="), factory);
    let rpc: String = second.value("RPC_URL=");
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let head = provider.get_block_number().await.unwrap();
    let factory_address: Address = factory.parse().unwrap();
    assert_eq!(IMarketFactory::new(factory_address, &provider).marketCount().call().await.unwrap(), U256::from(1));
    assert!(second.swaps().await >= before, "the database was kept");
    second.wait_for_swaps(before).await;
    second.stop();

    // --fresh: a new chain from block 0 and an empty database.
    let third = DevRun::start(&state_dir, &db_spec, &["--markets", "1", "--fresh"]);
    assert!(!third.resumed());
    let rpc: String = third.value("RPC_URL=");
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    assert!(provider.get_block_number().await.unwrap() < head, "a new chain");
    assert_eq!(third.value("indexer    DATABASE_URL=").rsplit('/').next(), Some(db.name.as_str()));
    third.stop();

    // Another devnet (another state dir) on the same database, then this one again:
    // the database holds the other chain, so it is started over, not resumed.
    let other_dir = state_dir.with_extension("other");
    let other = DevRun::start(&other_dir, &db_spec, &["--markets", "1"]);
    other.wait_for_swaps(0).await;
    other.stop();
    let back = DevRun::start(&state_dir, &db_spec, &["--markets", "1"]);
    assert!(back.resumed(), "{:?}", back.printed);
    assert!(back.printed.iter().any(|l| l.contains("was indexed from another chain")), "{:?}", back.printed);
    back.wait_for_swaps(0).await;
    back.stop();
    let _ = std::fs::remove_dir_all(&other_dir);
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// The explorer page of `dev` in headless Chromium (`crates/test-support/node/explorer.mjs`,
/// `playwright-core`): both market lists, a market's chart drawing candles in every
/// timeframe, its trades, holders, stake, linked credentials and a proposal with vote
/// bars and a countdown; a trade sent on the chain appears without a reload; no
/// console error, failed request or HTTP error on the way. Screenshots are saved
/// in `$CARGO_TARGET_TMPDIR/explorer/`.
#[tokio::test]
async fn the_explorer_page_shows_the_markets_and_a_trade_appears_live() {
    use alloy::{network::EthereumWallet, signers::local::PrivateKeySigner};
    use animoca_devnet::{Driver, usdc};
    use animoca_domain::MarketType;
    use std::io::Write;

    let chromium = chromium();
    let db = animoca_test_support::TestDb::not_created();
    let state_dir = std::env::temp_dir().join(format!("animoca-dev-explorer-{}.state", std::process::id()));
    // The simulator is off: the test's own account 0 trades, proposes and votes.
    // No Redis: cache, Socket.IO and jobs in process.
    let extra = ["--markets", "2", "--trade-interval-ms", "0", "--no-redis"];
    let run = DevRun::start(&state_dir, &DevDb::Url(db.url()), &extra);
    assert!(run.value("Redis      ").starts_with("none"), "{:?}", run.printed);
    let api = run.value("API        ");
    // `dev` prints the explorer's URL.
    let base = run.value("explorer   ").trim_end_matches('/').to_owned();
    assert_eq!(format!("{base}/api"), api);
    let deployment: animoca_chain::Deployment =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("deployment.json")).unwrap()).unwrap();
    let key: PrivateKeySigner = animoca_devnet::anvil::FIRST_DEV_KEY.parse().unwrap();
    let me = key.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::new(key))
        .connect_http(run.value("RPC_URL=").parse().unwrap())
        .erased();
    let driver = Driver { provider: provider.clone(), deployment };

    // Trades, then a proposal with a vote, on the first credential market.
    let deadline = Instant::now() + Duration::from_secs(30);
    let market = loop {
        let list: serde_json::Value =
            reqwest::get(format!("{api}/credentials?status=all")).await.unwrap().json().await.unwrap();
        if let Some(id) = list["data"][0]["credential_id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no credential market indexed: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id: B256 = market.parse().unwrap();
    for amount in [500, 120, 2_000] {
        driver.buy(me, MarketType::Credential, id, usdc(amount), U256::ZERO).await.unwrap();
    }
    let (proposal, _) = driver.propose(me, MarketType::Credential, id, usdc(5)).await.unwrap();
    // The vote counts the balance at the snapshot block: one more block first.
    driver.mint_usdc(me, usdc(1)).await.unwrap();
    driver.cast_vote(me, proposal, 1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: serde_json::Value =
            reqwest::get(format!("{api}/proposals/{proposal}")).await.unwrap().json().await.unwrap();
        if body["data"]["voter_count"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the vote was not indexed: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer");
    std::fs::create_dir_all(&screenshots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-support/node/explorer.mjs");
    let get = |path: String| {
        let url = format!("{api}{path}");
        async move {
            let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            body["data"].clone()
        }
    };
    let persona = get("/personas?status=all".to_owned()).await[0].clone();
    let persona_id = persona["persona_id"].as_str().unwrap().to_owned();
    let options = serde_json::json!({
        "base": base, "market": format!("credential/{market}"), "persona": format!("persona/{persona_id}"),
        "screenshots": screenshots, "chromium": chromium,
    });
    let mut browser = Command::new("node")
        .arg(script)
        .arg(options.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map(ChildGuard::new)
        .unwrap();
    let mut stdin = browser.child().stdin.take().unwrap();
    let mut steps = BufReader::new(browser.child().stdout.take().unwrap()).lines();
    let mut next_step = move || -> serde_json::Value {
        let line = steps.next().expect("the browser script ended early").unwrap();
        let step: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_ne!(step["step"], "failed", "{step:#}");
        step
    };

    // A shown amount is the API's exact decimal string, shortened: with thousands
    // separators and a unit removed, it is a prefix of the API's digits.
    let shows = |shown: &serde_json::Value, exact: &serde_json::Value| -> bool {
        let shown = shown.as_str().unwrap().trim_end_matches(" USDC").replace(',', "");
        let exact = exact.as_str().unwrap();
        let Some(rest) = exact.strip_prefix(shown.as_str()) else { return false };
        // Only digits cut off: whole digits and a point must all be there.
        !shown.is_empty()
            && if shown.contains('.') {
                rest.bytes().all(|b| b.is_ascii_digit())
            } else {
                rest.is_empty() || rest.starts_with('.')
            }
    };
    let detail = get(format!("/credentials/{market}")).await;

    let home = next_step();
    assert!(shows(&home["price"], &detail["price"]), "{home} vs {}", detail["price"]);
    assert_eq!(
        (home["step"].as_str(), home["credentials"].as_u64(), home["personas"].as_u64()),
        (Some("home"), Some(2), Some(2)),
        "{home}"
    );

    let page = next_step();
    assert_eq!(page["step"], "market", "{page}");
    assert!(page["candles"].as_u64().unwrap() >= 1, "{page}");
    assert_eq!(page["drawn"], page["candles"], "every bar drawn: {page}");
    for tf in ["5m", "15m", "1h", "4h", "1d", "1w", "1m"] {
        let [candles, drawn] = [&page["timeframes"][tf][0], &page["timeframes"][tf][1]];
        assert!(candles.as_u64().unwrap() >= 1 && drawn == candles, "{tf}: {page}");
    }
    assert_eq!(page["proposals"], 1, "{page}");
    assert_eq!(page["bar_for"], "100%", "one vote, for: {page}");
    assert!(page["countdown"].as_str().unwrap().ends_with("left"), "{page}");
    assert!(page["holders"].as_u64().unwrap() >= 1, "{page}");
    assert!(shows(&page["staked"], &detail["total_staked"]), "{page} vs {}", detail["total_staked"]);

    // A trade sent on the chain now appears on the open page.
    let receipt = driver.buy(me, MarketType::Credential, id, usdc(77), U256::ZERO).await.unwrap();
    writeln!(stdin, "{:#x}", receipt.transaction_hash).unwrap();
    let trade = next_step();
    assert_eq!(
        (trade["step"].as_str(), trade["first"].as_bool(), trade["reloaded"].as_bool()),
        (Some("trade"), Some(true), Some(false)),
        "{trade}"
    );
    assert_eq!(trade["chart_close"], trade["api_close"], "the chart follows the live candle: {trade}");
    let persona_page = next_step();
    let persona = get(format!("/personas/{persona_id}")).await;
    assert_eq!(persona_page["linked"].as_u64(), persona["linked_credentials"].as_array().map(|l| l.len() as u64));
    assert_eq!(persona_page["social"].as_u64(), persona["social_links"].as_array().map(|l| l.len() as u64));
    let done = next_step();
    assert_eq!(done["errors"], serde_json::json!([]), "the page logged errors: {done:#}");
    for name in ["explorer-home.png", "explorer-market.png", "explorer-live-trade.png", "explorer-persona.png"] {
        let png = std::fs::read(screenshots.join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: {} bytes", png.len());
    }
    println!("screenshots in {}", screenshots.display());

    run.stop();
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// Debian's Chromium (`CHROMIUM` overrides); `scripts/install-browser` installs it.
fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "headless Chromium is needed at {path} for the browser test: run scripts/install-browser (or set CHROMIUM)"
    );
    path
}
