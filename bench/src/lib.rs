//! What the benchmark binaries share: the cached bench chain, logging set-up and
//! memory measurement.

pub mod chain;
pub mod service;

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`: numbers go to stdout).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Peak resident set (`VmHWM`, kB) of process `pid` (`"self"` for this one), 0 if unreadable.
pub fn vm_hwm_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
