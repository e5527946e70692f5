//! One `sair-loadgen` run from a validated [`Plan`]: schedule, connect (the reachability check),
//! drive, report. The binary adds only argument parsing, signals and exit codes.

use crate::cli::Plan;
use crate::driver::{self, CONNECT_TIMEOUT, DriverConfig, DriverError, Pool, Stop, Target};
use crate::pattern::Arrivals;
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

/// Counts the arrivals of `plan`'s schedule without holding them (constant memory, one pass
/// of the RNG); more than `--max-requests` is an error. [`crate::cli`] has already refused a
/// schedule whose expected size is over the bound, so this pass is short.
pub fn count_arrivals(plan: &Plan) -> Result<u64, RunError> {
    let max = plan.max_requests;
    let n = Arrivals::new(&plan.pattern, plan.duration.as_secs_f64(), plan.seed)
        .take(usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX))
        .count() as u64;
    if n > max {
        return Err(RunError::TooManyArrivals { arrivals: n, max });
    }
    Ok(n)
}

/// Runs `plan`. `progress` shows a bar on stderr; `shutdown` ends the run early (the report
/// still covers what was sent).
pub async fn execute(
    plan: &Plan,
    progress: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, RunError> {
    let duration_s = plan.duration.as_secs_f64();
    let scheduled = count_arrivals(plan)?;
    // Resolving and connecting share one bound, so a server whose listen backlog is full
    // cannot hold the run before it starts.
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT.min(plan.timeout);
    // A `file:` target may wait for its list to name an entry (bounded inside `resolve`);
    // the connect bound starts after that.
    let is_file = plan.target.starts_with("file:");
    let resolve_deadline = if is_file {
        deadline + crate::endpoints::WAIT_FOR_ENTRIES
    } else {
        deadline
    };
    let target = tokio::time::timeout_at(
        resolve_deadline,
        Target::resolve(
            &plan.target,
            plan.method.clone(),
            plan.headers.clone(),
            plan.body.clone(),
        ),
    )
    .await
    .map_err(|_| DriverError::Resolve {
        host: plan.target.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("not resolved within {CONNECT_TIMEOUT:?}"),
        ),
    })??;
    let deadline = if is_file {
        tokio::time::Instant::now() + CONNECT_TIMEOUT.min(plan.timeout)
    } else {
        deadline
    };
    let watch = target.endpoints.clone().map(|list| list.watch());
    let pool = match Pool::connect(target, plan.connections, deadline).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            if let Some(w) = watch {
                w.abort();
            }
            return Err(e.into());
        }
    };
    tracing::info!(
        target = %plan.target,
        pattern = plan.pattern.name(),
        arrivals = scheduled,
        duration_s,
        "connected; starting the run"
    );
    let rec = Arc::new(Mutex::new(Recorder::new().with_slo(plan.slo)));
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
    let arrivals = Arrivals::new(&plan.pattern, duration_s, plan.seed);
    let outcome = driver::run(pool, cfg, arrivals, stop, rec.clone(), shutdown).await;
    if let Some(w) = watch {
        w.abort();
    }
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
        scheduled,
        undispatched: if outcome.gave_up {
            scheduled.saturating_sub(outcome.dispatched)
        } else {
            0
        },
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
