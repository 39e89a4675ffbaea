//! Backfill progress: a bar with rate and ETA on a terminal, a log line every few
//! seconds otherwise; and the indexer's Prometheus metrics.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a non-terminal run logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress of one catch-up from `first` to `last`.
pub struct Progress {
    first: u64,
    last: u64,
    started: Instant,
    logged: Instant,
    logs: u64,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts reporting a catch-up over blocks `first..=last` (only when it is
    /// more than a handful of blocks: following the head stays quiet).
    pub fn start(first: u64, last: u64) -> Self {
        let blocks = last.saturating_sub(first) + 1;
        let bar = (blocks > 100 && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(blocks);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} indexing [{bar:40}] {pos}/{len} blocks  {per_sec}  ETA {eta}  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        if blocks > 100 {
            tracing::info!(first, last, blocks, "backfill started");
        }
        Self { first, last, started: Instant::now(), logged: Instant::now(), logs: 0, bar }
    }

    /// A batch up to `block` with `logs` logs was committed in `took`.
    pub fn committed(&mut self, block: u64, logs: usize, took: Duration) {
        let logs = u64::try_from(logs).unwrap_or(u64::MAX);
        self.logs += logs;
        metrics::counter!("animoca_indexer_logs_total").increment(logs);
        metrics::histogram!("animoca_indexer_batch_commit_seconds").record(took.as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("animoca_indexer_checkpoint_block").set(block as f64);
        let rate = self.logs_per_second();
        if let Some(bar) = &self.bar {
            bar.set_position(block.saturating_sub(self.first) + 1);
            bar.set_message(format!("{rate:.0} logs/s"));
        } else if self.logged.elapsed() >= LOG_EVERY && block < self.last {
            self.logged = Instant::now();
            let done = block.saturating_sub(self.first) + 1;
            let left = self.last.saturating_sub(block);
            #[allow(clippy::cast_precision_loss)]
            let eta = self.started.elapsed().as_secs_f64() * left as f64 / done.max(1) as f64;
            tracing::info!(
                block,
                last = self.last,
                logs_per_second = rate.round(),
                eta_seconds = eta.round(),
                "backfill progress"
            );
        }
    }

    /// The catch-up ended at `block`.
    pub fn finish(self, block: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.last.saturating_sub(self.first) >= 100 {
            tracing::info!(
                block,
                logs = self.logs,
                seconds = self.started.elapsed().as_secs_f64(),
                logs_per_second = self.logs_per_second().round(),
                "backfill done"
            );
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn logs_per_second(&self) -> f64 {
        self.logs as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }
}

/// Records how far the indexer is behind the chain head.
#[allow(clippy::cast_precision_loss)]
pub fn record_lag(head: u64, checkpoint: u64, checkpoint_time: u64) {
    metrics::gauge!("animoca_indexer_head_lag_blocks").set(head.saturating_sub(checkpoint) as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(checkpoint_time);
    metrics::gauge!("animoca_indexer_head_lag_seconds").set(now.saturating_sub(checkpoint_time) as f64);
}

/// Progress of a re-derivation: a bar over the log store with rate and ETA on a
/// terminal, a log line every few seconds otherwise, and the phase it is in.
pub struct RederiveProgress {
    total: u64,
    logs: u64,
    started: Instant,
    logged: Instant,
    bar: Option<ProgressBar>,
}

impl RederiveProgress {
    /// Starts over about `total` logs (an estimate; the bar grows if it was low).
    pub fn start(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.max(1));
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} re-deriving [{bar:40}] {human_pos}/{human_len} logs  {per_sec}  ETA {eta}  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        tracing::info!(logs_estimate = total, "re-deriving from the log store");
        Self { total, logs: 0, started: Instant::now(), logged: Instant::now(), bar }
    }

    /// Enters a phase (loading, building indexes, ...).
    pub fn phase(&mut self, phase: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(phase.to_owned());
        }
        tracing::info!(phase, seconds = self.started.elapsed().as_secs_f64(), "re-derive phase");
    }

    /// `logs` more logs were derived.
    pub fn advance(&mut self, logs: u64) {
        self.logs += logs;
        if self.logs > self.total {
            self.total = self.logs;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = self.logs as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
            bar.set_position(self.logs);
        } else if self.logged.elapsed() >= LOG_EVERY {
            self.logged = Instant::now();
            #[allow(clippy::cast_precision_loss)]
            let eta = self.total.saturating_sub(self.logs) as f64 / rate.max(1.0);
            tracing::info!(
                logs = self.logs,
                of = self.total,
                logs_per_second = rate.round(),
                eta_seconds = eta.round(),
                "re-derive progress"
            );
        }
    }

    /// Done: clears the bar and logs the totals.
    pub fn finish(self, stats: &crate::rederive::BuildStats) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::info!(
            logs = stats.logs,
            swaps = stats.swaps,
            block = stats.checkpoint,
            load_s = stats.load.as_secs_f64(),
            indexes_s = stats.indexes.as_secs_f64(),
            window_s = stats.window.as_secs_f64(),
            swap_s = stats.swap.as_secs_f64(),
            total_s = stats.total.as_secs_f64(),
            "re-derive done"
        );
    }
}
