//! The official `socket.io-client` v4, driven from tests through a Node script
//! (`node/client.mjs`; `./scripts/install-tools` installs the pinned package).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
};

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/client.mjs")
}

/// One official `socket.io-client` in a Node process.
pub struct SocketIoClient {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Lines read but not yet matched by an `expect`.
    backlog: Vec<Value>,
    next_id: u64,
}

impl SocketIoClient {
    /// Starts a client (`auth` as `io(url, { auth })` takes it); does not wait for the connection.
    pub fn spawn(url: &str, auth: Option<Value>, transports: Option<&[&str]>) -> SocketIoClient {
        let mut options = json!({ "url": url, "auth": auth });
        if let Some(transports) = transports {
            options["transports"] = json!(transports);
        }
        let mut child = Command::new("node")
            .arg(client_script())
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (./scripts/install-tools installs socket.io-client)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str(&line) {
                    Ok(value) => {
                        if tx.send(value).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        SocketIoClient { child, stdin, lines, backlog: Vec::new(), next_id: 0 }
    }

    /// Starts a client and waits for it to connect.
    pub async fn connect(url: &str, auth: Option<Value>) -> SocketIoClient {
        let mut client = SocketIoClient::spawn(url, auth, None);
        let line = client.expect("connect", |line| line["type"] == "connect" || line["type"] == "connect_error").await;
        assert_eq!(line["type"], "connect", "{line}");
        client
    }

    /// The next line (in arrival order, skipping none) matching `matches`, within 10 s.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(what, Duration::from_secs(10), matches)
            .await
            .unwrap_or_else(|| panic!("no {what} within 10 s"))
    }

    /// Like [`SocketIoClient::expect`], `None` after `patience`.
    pub async fn expect_within(
        &mut self,
        _what: &str,
        patience: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(at) = self.backlog.iter().position(&matches) {
            return Some(self.backlog.remove(at));
        }
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) if matches(&line) => return Some(line),
                Ok(Some(line)) => self.backlog.push(line),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event named `event`.
    pub async fn event(&mut self, event: &str) -> Value {
        let line = self.expect(event, |line| line["type"] == "event" && line["event"] == event).await;
        line["data"].clone()
    }

    /// Every event received so far and within `quiet` more, named `event`.
    pub async fn drain(&mut self, event: &str, quiet: Duration) -> Vec<Value> {
        let mut events = Vec::new();
        while let Some(line) =
            self.expect_within(event, quiet, |line| line["type"] == "event" && line["event"] == event).await
        {
            events.push(line["data"].clone());
        }
        events
    }

    /// Emits `event` with `data` and returns the server's ack.
    pub async fn call(&mut self, event: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "emit": event, "data": data });
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        let line = self.expect("ack", |line| line["type"] == "ack" && line["id"] == id).await;
        assert!(line.get("error").is_none(), "no ack: {line}");
        line["data"].clone()
    }

    /// `subscribe`, asserting success; returns the ack's data.
    pub async fn subscribe(&mut self, channels: Value) -> Value {
        let ack = self.call("subscribe", channels.clone()).await;
        assert_eq!(ack["success"], true, "subscribe {channels}: {ack}");
        ack["data"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.stdin.write_all(b"{\"close\":true}\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
