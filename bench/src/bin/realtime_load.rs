//! Socket.IO fan-out benchmark (issue 5, "Benchmark"): anvil with 101 markets,
//! `animoca-trade index` following it, and a Socket.IO server under test —
//! `animoca-trade serve` (ours) or `bench/node/server.mjs` (Node + socket.io 4
//! fed by the same change feed: the seed's stack). N clients (1k, 5k, 10k)
//! connect over WebSocket and subscribe either all to one hot market or spread
//! over 100 markets; trades are mined on anvil one block each. For every
//! (client, trade) it measures block mined (the bench's `newHeads`
//! subscription) → `trade` received, and prints p50/p99/max, deliveries, the
//! server's RSS per idle connection, and the CPU time per block of the server
//! and of the clients (steadier than latency on a shared machine).
//!
//! ```text
//! ./scripts/install-tools   # anvil, socket.io + pg for the Node server
//! cargo build --release -p animoca-bench -p animoca-trade
//! $CARGO_TARGET_DIR/release/realtime_load --clients 1000,5000,10000
//! # A/B: another build of animoca-trade, alternating, three rounds
//! $CARGO_TARGET_DIR/release/realtime_load --clients 10000 --layouts hot \
//!     --servers rust,rust=/path/to/other/animoca-trade --rounds 3
//! ```
//!
//! Hot: 20 trades, one a second (each a fan-out to every client). Spread: 200
//! trades, ten a second, round-robin over the 100 markets.
//!
//! The clients speak Engine.IO 4 / Socket.IO 5 over a raw WebSocket (what
//! `socket.io-client` sends after its upgrade), so one process can hold 10,000
//! of them. Not a test: it prints numbers (see docs/benchmarks.md).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::{B256, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use animoca_bench::{
    chain::{AnvilProcess, CHAIN_ID, DEV_KEY},
    service::{Service, own_cpu_time},
};
use animoca_chain::{DeployParams, bindings::MarketAMM};
use animoca_devnet::{Driver, MarketSpec, usdc};
use animoca_domain::MarketType;
use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures_util::{StreamExt, future::join_all};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "Socket.IO fan-out benchmark: block mined -> trade received, ours vs Node socket.io")]
struct Args {
    /// Client counts to run.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    clients: Vec<usize>,
    /// Servers to run: rust (serve, one node), rust-redis (serve with the Redis adapter), node.
    /// `rust=PATH` (or `rust-redis=PATH`) serves from another `animoca-trade` binary, for A/B runs.
    #[arg(long, value_delimiter = ',', default_value = "rust,node")]
    servers: Vec<String>,
    /// Times to run the whole list of servers, alternating them (A/B runs on a noisy machine).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Layouts to run: hot (every client on one market), spread (clients over 100 markets).
    #[arg(long, value_delimiter = ',', default_value = "hot,spread")]
    layouts: Vec<String>,
    /// Trades sent first and left out of the figures (the first fan-out to new
    /// connections grows their queues and write buffers).
    #[arg(long, default_value_t = 3)]
    warmup_trades: usize,
    /// Trades on the hot market per run.
    #[arg(long, default_value_t = 20)]
    hot_trades: usize,
    /// Trades spread over the 100 markets per run.
    #[arg(long, default_value_t = 200)]
    spread_trades: usize,
    /// Milliseconds between trades on the hot market (one block each: every
    /// client gets every trade, so this is one fan-out to all of them).
    #[arg(long, default_value_t = 1_000)]
    hot_trade_ms: u64,
    /// Milliseconds between trades spread over the 100 markets.
    #[arg(long, default_value_t = 100)]
    spread_trade_ms: u64,
    /// The database (recreated).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/animoca_bench_realtime?sslmode=disable"
    )]
    database_url: String,
    /// Run `serve` under this command (e.g. `heaptrack -o /tmp/serve`), space-separated.
    #[arg(long)]
    serve_prefix: Option<String>,
    /// Extra environment for `serve` (KEY=VALUE, repeatable), e.g. TOKIO_WORKER_THREADS=4.
    #[arg(long)]
    serve_env: Vec<String>,
    /// Redis for `rust-redis`.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Threads of the clients' own runtime. They share the two cores with the server:
    /// on one thread they use a third less CPU per block than on two (fewer wake-ups
    /// and switches), time the server under test gets.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

/// What one client saw: (block number of a `trade`, when it arrived).
type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

/// A raw Engine.IO 4 / Socket.IO 5 client over WebSocket: connect, join
/// `channel`, answer pings, record `trade` arrivals until `stop`.
///
/// The clients share the server's two cores, so they are kept lean: a plain
/// TCP stream, the upgrade request written by hand and the server's (unmasked)
/// frames parsed in place from one read buffer. A general WebSocket client
/// (tokio-tungstenite) cost the machine about 10 µs of CPU per client and
/// block, time the server under test then waited for.
async fn client(port: u16, channel: String, seen: Seen, ready: tokio::sync::mpsc::Sender<()>, stop: CancellationToken) {
    let Ok(mut socket) = RawWebSocket::connect(port).await else {
        eprintln!("a client could not connect");
        return;
    };
    // After the Engine.IO open packet, the Socket.IO namespace connect.
    if socket.send_text(b"40").await.is_err() {
        return;
    }
    let mut subscribed = false;
    // One wait for `stop` for the client's life: a new `cancelled()` per read
    // would register with (and leave) the shared token's waiter list each time.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    'reading: loop {
        while let Some(frame) = socket.next_frame() {
            let text = match frame {
                Frame::Text(text) => text,
                Frame::Ping(payload) => {
                    let _ = socket.send(OPCODE_PONG, &payload).await;
                    continue;
                }
                Frame::Close => break 'reading,
            };
            if text == b"2" {
                let _ = socket.send_text(b"3").await;
            } else if text.starts_with(b"40") && !subscribed {
                subscribed = true;
                let _ = socket.send_text(format!("421[\"subscribe\",\"{channel}\"]").as_bytes()).await;
            } else if text.starts_with(b"431") {
                let _ = ready.send(()).await;
            } else if let Some(rest) = text.strip_prefix(b"42[\"trade\"") {
                let at = Instant::now();
                if let Some(block) = number_after(rest, b"\"block_number\":")
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.push((block, at));
                }
            }
        }
        tokio::select! {
            () = &mut stopped => break,
            read = socket.fill() => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    let _ = socket.send(OPCODE_CLOSE, &[]).await;
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

/// A frame from the server.
enum Frame {
    Text(Vec<u8>),
    Ping(Vec<u8>),
    Close,
}

/// The client side of a WebSocket (RFC 6455) on a TCP stream, just what the
/// bench needs: text frames out (masked, as a client must), whole frames in.
struct RawWebSocket {
    stream: tokio::net::TcpStream,
    /// Bytes read and not yet parsed (from `start`).
    buffer: Vec<u8>,
    start: usize,
}

impl RawWebSocket {
    /// Connects and upgrades `/socket.io/?EIO=4&transport=websocket`.
    async fn connect(port: u16) -> anyhow::Result<RawWebSocket> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buffer = Vec::with_capacity(2048);
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            ensure!(buffer.len() < 16 * 1024, "no end of the upgrade response");
            ensure!(stream.read_buf(&mut buffer).await? > 0, "closed during the upgrade");
        };
        ensure!(
            buffer.starts_with(b"HTTP/1.1 101"),
            "upgrade refused: {}",
            String::from_utf8_lossy(&buffer[..head_end])
        );
        Ok(RawWebSocket { stream, buffer, start: head_end })
    }

    /// Reads what the socket has (0 when it closed).
    async fn fill(&mut self) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        if self.buffer.capacity() - self.buffer.len() < 1024 {
            self.buffer.reserve(2048);
        }
        self.stream.read_buf(&mut self.buffer).await
    }

    /// The next whole frame in the buffer, if any. Fragmented messages, which
    /// the servers under test never send for these sizes, end the client.
    fn next_frame(&mut self) -> Option<Frame> {
        let bytes = &self.buffer[self.start..];
        let [first, second, ..] = *bytes else { return None };
        if second & 0x80 != 0 {
            eprintln!("a client got a masked frame (servers must not mask)");
            self.start = self.buffer.len();
            return Some(Frame::Close);
        }
        let (length, header) = match second & 0x7f {
            126 => (u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)), 4),
            127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
            short => (u64::from(short), 2),
        };
        let end = header + usize::try_from(length).ok()?;
        let payload = bytes.get(header..end)?.to_vec();
        self.start += end;
        let fin = first & 0x80 != 0;
        Some(match first & 0x0f {
            OPCODE_TEXT if fin => Frame::Text(payload),
            OPCODE_PING => Frame::Ping(payload),
            OPCODE_CLOSE => Frame::Close,
            OPCODE_PONG => return self.next_frame(),
            _ => {
                eprintln!("a client got a frame it does not handle (byte {first:#04x})");
                Frame::Close
            }
        })
    }

    async fn send_text(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.send(OPCODE_TEXT, payload).await
    }

    /// Writes one frame, masked with the all-zero key (the payload goes as is).
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.push(0x80 | opcode);
        match u16::try_from(payload.len()) {
            Ok(length @ 0..=125) => frame.push(0x80 | length as u8),
            Ok(length) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&length.to_be_bytes());
            }
            Err(_) => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await
    }
}

fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let start = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = text[start..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct Bench {
    /// Where the clients run: a runtime of their own (`--client-threads`).
    clients: ClientRuntime,
    args: Args,
    driver: Driver,
    hot: B256,
    spread: Vec<B256>,
    heads: Arc<Mutex<HashMap<u64, Instant>>>,
}

/// The clients' runtime, shut down without waiting when dropped (dropping a
/// runtime inside another one would panic).
struct ClientRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl ClientRuntime {
    fn new(threads: usize) -> std::io::Result<ClientRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("bench-client")
            .enable_all()
            .build()?;
        Ok(ClientRuntime { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Bench {
    /// One run: `clients` subscribed per `layout`, trades sent, latencies printed.
    async fn run(&self, server: &str, port: u16, service: &Service, clients: usize, hot: bool) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let rss_before = service.status_kib("VmRSS");
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(clients);
        let mut seen_by = Vec::with_capacity(clients);
        let mut tasks = Vec::with_capacity(clients);
        let started = Instant::now();
        for chunk in (0..clients).collect::<Vec<_>>().chunks(250) {
            let mut connecting = Vec::new();
            for &i in chunk {
                let market = if hot { self.hot } else { self.spread[i % self.spread.len()] };
                let seen: Seen = Arc::default();
                seen_by.push((market, seen.clone()));
                let task = self.clients.handle.spawn(client(
                    port,
                    format!("market:{market:#x}"),
                    seen,
                    ready_tx.clone(),
                    stop.clone(),
                ));
                connecting.push(task);
            }
            tasks.extend(connecting);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut acked = 0;
        while acked < clients {
            match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
                Ok(Some(())) => acked += 1,
                _ => bail!("{server}: only {acked} of {clients} clients subscribed within 60 s"),
            }
        }
        let connect_secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_idle = service.status_kib("VmRSS");
        let per_connection = (rss_idle - rss_before) / clients as f64;

        // Trades: one block each.
        let trades = if hot { self.args.hot_trades } else { self.args.spread_trades };
        let mut traded: HashMap<B256, usize> = HashMap::new();
        let mut warmup_blocks = std::collections::HashSet::new();
        let amm = MarketAMM::new(self.driver.deployment.amm(MarketType::Credential), &self.driver.provider);
        for n in 0..self.args.warmup_trades {
            let market = if hot { self.hot } else { self.spread[n % self.spread.len()] };
            let receipt = amm.buy(market, usdc(1), U256::ZERO).send().await?.get_receipt().await?;
            warmup_blocks.insert(receipt.block_number.context("receipt without a block")?);
            tokio::time::sleep(Duration::from_millis(self.args.hot_trade_ms.min(500))).await;
        }
        let cpu_before = (service.cpu_time(), own_cpu_time());
        let pace = if hot { self.args.hot_trade_ms } else { self.args.spread_trade_ms };
        let mut ticker = tokio::time::interval(Duration::from_millis(pace));
        for n in 0..trades {
            ticker.tick().await;
            let market = if hot { self.hot } else { self.spread[n % self.spread.len()] };
            let pending = amm.buy(market, usdc(1 + (n as u64 % 7)), U256::ZERO).send().await?;
            pending.get_receipt().await?;
            *traded.entry(market).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        // CPU per block of the server and of this process (the clients, mostly):
        // steadier than latency on a shared machine, so A/B runs compare it too.
        let per_block = |before: Duration, after: Duration| (after - before).as_secs_f64() * 1e3 / trades.max(1) as f64;
        let cpu_per_block = (per_block(cpu_before.0, service.cpu_time()), per_block(cpu_before.1, own_cpu_time()));
        stop.cancel();
        join_all(tasks).await;

        let heads = self.heads.lock().map_err(|_| anyhow::anyhow!("heads lock"))?.clone();
        let mut latencies = Vec::new();
        let mut per_block: HashMap<u64, (f64, f64)> = HashMap::new();
        let mut expected = 0usize;
        for (market, seen) in &seen_by {
            expected += traded.get(market).copied().unwrap_or(0);
            let seen = seen.lock().map_err(|_| anyhow::anyhow!("seen lock"))?;
            for (block, at) in seen.iter().filter(|(block, _)| !warmup_blocks.contains(block)) {
                if let Some(mined) = heads.get(block) {
                    let ms = at.saturating_duration_since(*mined).as_secs_f64() * 1e3;
                    latencies.push(ms);
                    let entry = per_block.entry(*block).or_insert((f64::MAX, 0.0));
                    *entry = (entry.0.min(ms), entry.1.max(ms));
                }
            }
        }
        // First and last delivery of each block: a late first delivery is the
        // pipeline (indexer, relay), a wide spread is the fan-out.
        let mut blocks: Vec<(u64, (f64, f64))> = per_block.into_iter().collect();
        blocks.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        let worst: Vec<String> =
            blocks.iter().take(3).map(|(b, (first, last))| format!("#{b} {first:.0}-{last:.0} ms")).collect();
        let mut firsts: Vec<f64> = blocks.iter().map(|(_, (first, _))| *first).collect();
        firsts.sort_by(f64::total_cmp);
        latencies.sort_by(f64::total_cmp);
        println!(
            "{server:<10} {:<6} {clients:>6} clients  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  delivered {}/{}  \
             RSS {:.0} MiB idle, {:.1} KiB/conn  (connect+subscribe {:.1} s)\n           \
             CPU per block: server {:.0} ms, clients {:.0} ms; first delivery per block p50 {:.1} ms, max {:.1} ms; slowest blocks (first-last delivery): {}",
            if hot { "hot" } else { "spread" },
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len(),
            expected,
            rss_idle / 1024.0,
            per_connection,
            connect_secs,
            cpu_per_block.0,
            cpu_per_block.1,
            percentile(&firsts, 50.0),
            firsts.last().copied().unwrap_or(f64::NAN),
            worst.join(", "),
        );
        Ok(())
    }
}

impl Bench {
    /// Starts the server under test on a free port and waits until it listens and settles.
    async fn start_server(
        &self,
        binary: &PathBuf,
        node_server: &PathBuf,
        server: &str,
    ) -> anyhow::Result<(Service, u16)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (server, binary) = match server.split_once('=') {
            Some((kind, path)) => (kind, &PathBuf::from(path)),
            None => (server, binary),
        };
        let service = match server {
            "rust" | "rust-redis" => {
                let mut env = vec![
                    ("DATABASE_URL", self.args.database_url.clone()),
                    ("PORT", port.to_string()),
                    ("CHAIN_ID", CHAIN_ID.to_string()),
                    ("JWT_SECRET", "bench-secret-bench-secret-bench-secret".to_owned()),
                    ("API_CACHE", "off".to_owned()),
                    // Every tick: the same messages the Node server sends.
                    ("REALTIME_MARKETS_TICKS_PER_SECOND", "0".to_owned()),
                ];
                if server == "rust-redis" {
                    env.push(("REDIS_URL", self.args.redis_url.clone()));
                }
                for pair in &self.args.serve_env {
                    let (name, value) = pair.split_once('=').context("--serve-env takes KEY=VALUE")?;
                    env.push((Box::leak(name.to_owned().into_boxed_str()), value.to_owned()));
                }
                let mut serve = match &self.args.serve_prefix {
                    Some(prefix) => {
                        let mut words = prefix.split_whitespace();
                        let mut command = Command::new(words.next().context("empty --serve-prefix")?);
                        command.args(words).arg(binary);
                        command
                    }
                    None => Command::new(binary),
                };
                serve.arg("serve");
                Service::spawn(serve, &env)?
            }
            "node" => {
                let mut node = Command::new("node");
                node.arg(node_server);
                Service::spawn(node, &[("DATABASE_URL", self.args.database_url.clone()), ("PORT", port.to_string())])?
            }
            other => bail!("unknown server {other:?} (rust, rust-redis, node)"),
        };
        wait_port(port).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok((service, port))
    }
}

async fn wait_port(port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        ensure!(started.elapsed() < Duration::from_secs(30), "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    animoca_bench::init_tracing();
    let args = Args::parse();
    let binary = std::env::current_exe()?.with_file_name("animoca-trade");
    ensure!(binary.exists(), "{} is missing: cargo build --release -p animoca-trade", binary.display());
    let node_server = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/server.mjs");

    println!("== setup");
    let anvil = AnvilProcess::spawn(&[]).await?;
    let signer: PrivateKeySigner = DEV_KEY.parse()?;
    let me = signer.address();
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(anvil.url.parse()?).erased();
    let deployment = animoca_chain::deploy(&provider, me, &DeployParams::devnet(me)).await?;
    let driver = Driver { provider: provider.clone(), deployment };
    let mut ids = Vec::new();
    for n in 0..101 {
        let spec = MarketSpec::new(MarketType::Credential, &format!("realtime-{n}"));
        driver.create_market(&spec, me).await?;
        ids.push(spec.id);
    }
    // One trader with plenty of approved USDC: every trade is one transaction, one block.
    let amm = deployment.amm(MarketType::Credential);
    driver.mint_usdc(me, usdc(1_000_000_000)).await?;
    driver.approve_usdc(me, amm, U256::MAX).await?;
    println!("anvil: 101 credential markets at block {}", provider.get_block_number().await?);

    let options: sqlx::postgres::PgConnectOptions = args.database_url.parse()?;
    animoca_store::recreate_database(&options).await?;
    let pool = animoca_store::connect(options.clone(), 2).await?;
    animoca_store::migrate(&pool).await?;
    let mut chain_env = vec![
        ("DATABASE_URL", args.database_url.clone()),
        ("RPC_URL", anvil.url.clone()),
        ("RPC_WS_URL", anvil.url.replacen("http", "ws", 1)),
        ("CONFIRMATIONS", "0".to_owned()),
    ];
    for line in deployment.env_lines().lines() {
        if let Some((name, value)) = line.split_once('=') {
            let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
            chain_env.push((name, value.to_owned()));
        }
    }
    let mut index = Command::new(&binary);
    index.arg("index");
    let _indexer = Service::spawn(index, &chain_env)?;
    let head = provider.get_block_number().await?;
    let started = Instant::now();
    while animoca_store::indexing::checkpoint(&pool, CHAIN_ID).await?.is_none_or(|c| c.block_number < head) {
        ensure!(started.elapsed() < Duration::from_secs(120), "the indexer did not reach block {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("indexer caught up with block {head}");

    // Block mined: when the bench's newHeads subscription hears of it.
    let heads: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let ws = ProviderBuilder::new().connect(&anvil.url.replacen("http", "ws", 1)).await?;
    let mut blocks = ws.subscribe_blocks().await?.into_stream();
    let recorded = heads.clone();
    tokio::spawn(async move {
        while let Some(header) = blocks.next().await {
            if let Ok(mut heads) = recorded.lock() {
                heads.insert(header.number, Instant::now());
            }
        }
    });

    let clients = ClientRuntime::new(args.client_threads)?;
    let bench = Bench { clients, args, driver, hot: ids[0], spread: ids[1..].to_vec(), heads };
    let runs = (0..bench.args.rounds).flat_map(|_| bench.args.servers.clone());
    for server in runs {
        println!("== {server}");
        for &clients in &bench.args.clients {
            for layout in bench.args.layouts.clone() {
                let hot = match layout.as_str() {
                    "hot" => true,
                    "spread" => false,
                    other => bail!("unknown layout {other:?} (hot, spread)"),
                };
                // A fresh server per run: its RSS growth is what these clients cost.
                let (service, port) = bench.start_server(&binary, &node_server, &server).await?;
                bench.run(&server, port, &service, clients, hot).await?;
            }
        }
    }
    pool.close().await;
    anvil.stop().await;
    Ok(())
}
