//! A process a benchmark starts (the server under test, the indexer), with a
//! clean environment, killed when dropped, and its memory readable.

use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A spawned process, killed on drop.
pub struct Service {
    _child: Child,
    /// Its process id.
    pub pid: u32,
}

impl Service {
    /// Starts `command` with only `PATH`, `RUST_LOG=warn` and `env`; stdout discarded.
    pub fn spawn(mut command: Command, env: &[(&str, String)]) -> anyhow::Result<Service> {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command.spawn().context("start a bench service")?;
        let pid = child.id().context("no pid")?;
        Ok(Service { _child: child, pid })
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB; 0 if unreadable.
    pub fn status_kib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }
}
