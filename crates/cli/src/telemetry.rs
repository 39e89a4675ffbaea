//! Logging (tracing: human-readable on a terminal, JSON otherwise, `RUST_LOG`)
//! and error reporting to Sentry when `SENTRY_DSN` is set.

use std::io::IsTerminal;

use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing_subscriber::{EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Keeps Sentry flushing until dropped at the end of `main`.
pub struct Telemetry {
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Installs the global subscriber. Call once, after configuration is valid.
pub fn init(sentry_dsn: Option<&str>, log_filter: &str) -> Telemetry {
    // Validated by the configuration; fall back to the default rather than panic.
    let filter = EnvFilter::try_new(log_filter).unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let sentry_guard = sentry_dsn.map(|dsn| {
        sentry::init((
            dsn,
            sentry::ClientOptions::new()
                .release(concat!("animoca-trade@", env!("CARGO_PKG_VERSION")))
                .attach_stacktrace(true),
        ))
    });
    // ERROR events become Sentry issues, with the INFO+ events before them as breadcrumbs.
    let sentry_layer = sentry_guard.as_ref().map(|_| {
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let registry = tracing_subscriber::registry().with(filter).with(sentry_layer);
    if std::io::stderr().is_terminal() {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).compact()).init();
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).json().flatten_event(true)).init();
    }
    Telemetry { _sentry: sentry_guard }
}

/// Serves the process' Prometheus metrics at `addr` (`METRICS_ADDR` of `index` and `work`).
pub fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("serve metrics on METRICS_ADDR {addr}"))?;
    tracing::info!(%addr, "Prometheus metrics at http://{addr}/metrics");
    Ok(())
}
