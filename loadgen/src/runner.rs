//! One `sair-loadgen` run from a validated [`Plan`]: schedule, connect (the reachability check),
//! drive, report. The binary adds only argument parsing, signals and exit codes.

use crate::cli::Plan;
use crate::driver::{self, DriverConfig, DriverError, Pool, Stop, Target};
use crate::pattern::schedule;
use crate::recorder::{Recorder, Report, RunMeta};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The schedule is larger than `--max-requests`.
    #[error(
        "the schedule has {arrivals} arrivals, more than --max-requests {max}; lower --rate/--peak or --duration"
    )]
    TooManyArrivals {
        /// Arrivals scheduled.
        arrivals: u64,
        /// The bound.
        max: u64,
    },
    /// The target could not be reached or parsed (nothing was sent).
    #[error(transparent)]
    Target(#[from] DriverError),
}

/// Runs `plan`. `progress` shows a bar on stderr; `shutdown` ends the run early (the report
/// still covers what was sent).
pub async fn execute(
    plan: &Plan,
    progress: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, RunError> {
    let duration_s = plan.duration.as_secs_f64();
    let arrivals: Arc<[f64]> = schedule(&plan.pattern, duration_s, plan.seed).into();
    if arrivals.len() as u64 > plan.max_requests {
        return Err(RunError::TooManyArrivals {
            arrivals: arrivals.len() as u64,
            max: plan.max_requests,
        });
    }
    let target = Target::resolve(
        &plan.target,
        plan.method.clone(),
        plan.headers.clone(),
        plan.body.clone(),
    )
    .await?;
    let pool = Arc::new(Pool::connect(target, plan.connections).await?);
    tracing::info!(
        target = %plan.target,
        pattern = plan.pattern.name(),
        arrivals = arrivals.len(),
        duration_s,
        "connected; starting the run"
    );
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let bar = progress.then(|| spawn_progress(rec.clone(), plan.duration));
    let stop = Stop {
        duration: plan.duration,
        max_requests: plan.max_requests,
        // At most --timeout after --duration; a request still running then (one sent in the
        // last moments) is aborted and counted as `unfinished`.
        drain: plan.timeout,
    };
    let cfg = DriverConfig {
        drop_after: plan.drop_after,
        timeout: plan.timeout,
    };
    let outcome = driver::run(pool, cfg, arrivals.clone(), stop, rec.clone(), shutdown).await;
    if let Some((task, bar)) = bar {
        task.abort();
        bar.finish_and_clear();
    }
    if outcome.interrupted {
        tracing::warn!(dispatched = outcome.dispatched, "run interrupted");
    }
    let r = rec.lock().unwrap_or_else(|e| e.into_inner());
    // An interrupted run's rates are over the time it actually ran.
    let ran_s = if outcome.interrupted {
        outcome.elapsed.as_secs_f64().min(duration_s)
    } else {
        duration_s
    };
    Ok(r.report(RunMeta {
        target: plan.target.clone(),
        pattern: plan.pattern.clone(),
        seed: plan.seed,
        duration_s: ran_s,
        elapsed_s: outcome.elapsed.as_secs_f64(),
        connections: plan.connections,
        scheduled: arrivals.len() as u64,
    }))
}

fn spawn_progress(
    rec: Arc<Mutex<Recorder>>,
    duration: Duration,
) -> (tokio::task::JoinHandle<()>, indicatif::ProgressBar) {
    let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    let start = tokio::time::Instant::now();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let (c, p99) = {
                let r = rec.lock().unwrap_or_else(|e| e.into_inner());
                (r.counts(), r.latency_ms(0.99))
            };
            b.set_position(start.elapsed().as_millis() as u64);
            b.set_message(format!(
                "sent {} completed {} dropped {} errors {} p99 {:.1} ms",
                c.sent, c.completed, c.dropped, c.errors, p99
            ));
        }
    });
    (task, bar)
}
