//! A process a benchmark starts (the server under test, the indexer), with a
//! clean environment, killed when dropped, and its memory readable.

use std::{process::Stdio, time::Duration};

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

    /// CPU time used so far (user + system), from `/proc/<pid>/stat`; zero if unreadable.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(&format!("/proc/{}/stat", self.pid))
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

/// CPU time (user + system) of this process so far; zero if unreadable.
pub fn own_cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat")
}

/// utime + stime of a `/proc/.../stat` file (fields 14 and 15, in clock ticks of
/// 1/100 s on Linux); zero if unreadable.
fn cpu_time_of(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After ')': field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
