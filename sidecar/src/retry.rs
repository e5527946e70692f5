//! Connect retry: a request that has reached no process yet waits, with backoff, for one.
//!
//! When the model server is restarting behind its sidecar, or the next stage's only replica
//! is, a connect is refused (or times out), or discovery knows no next-stage endpoint. Such a
//! request was never written anywhere, so sending it again cannot run it twice: it is retried
//! after 50 ms, doubling to 500 ms, for at most `--connect-retry-for` (Linkerd retries
//! connection failures; Knative's activator holds requests until an endpoint is ready). A
//! request already written to a process that then fails is never retried.
//!
//! [`Backoff`] is the sans-IO schedule; [`ConnectRetry`] adds the metric and the sleep.

use std::time::Duration;

use metrics::Counter;
use tokio::time::Instant;

use crate::metrics::ErrorSource;

/// The first pause.
pub const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The pauses between attempts, within a window that starts at the first attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    deadline: Instant,
    next: Duration,
}

impl Backoff {
    /// Attempts may go on until `now + window`.
    pub fn new(window: Duration, now: Instant) -> Self {
        Backoff {
            deadline: now.checked_add(window).unwrap_or(now),
            next: FIRST_PAUSE,
        }
    }

    /// How long to pause before the next attempt, or `None` when the window is spent. The
    /// last pause is cut so that the last attempt starts at the window's end, not after it.
    pub fn next_pause(&mut self, now: Instant) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(now)?;
        if left.is_zero() {
            return None;
        }
        let pause = self.next.min(left);
        self.next = (self.next * 2).min(MAX_PAUSE);
        Some(pause)
    }
}

/// The retry policy toward one target (the model server or the next stage) and its counter.
#[derive(Debug, Clone)]
pub struct ConnectRetry {
    window: Duration,
    retries: Counter,
    target: ErrorSource,
}

impl ConnectRetry {
    /// Retries for `window` (zero: never), counting each retry in `retries`.
    pub fn new(window: Duration, retries: Counter, target: ErrorSource) -> Self {
        ConnectRetry {
            window,
            retries,
            target,
        }
    }

    /// No retry at all (the behaviour of `--connect-retry-for 0`).
    pub fn disabled(target: ErrorSource) -> Self {
        ConnectRetry::new(Duration::ZERO, Counter::noop(), target)
    }

    /// The retries of one request, its window starting now.
    pub fn start(&self) -> Retrying<'_> {
        Retrying {
            policy: self,
            backoff: Backoff::new(self.window, Instant::now()),
        }
    }
}

/// One request's retries.
#[derive(Debug)]
pub struct Retrying<'a> {
    policy: &'a ConnectRetry,
    backoff: Backoff,
}

impl Retrying<'_> {
    /// After `failure` (which happened before the request was written anywhere), pauses and
    /// returns `true` when another attempt fits the window; `false`: give up with `failure`.
    /// Counts and logs the retry in one place.
    pub async fn pause(&mut self, failure: &(dyn std::fmt::Display + Sync)) -> bool {
        let Some(pause) = self.backoff.next_pause(Instant::now()) else {
            return false;
        };
        self.policy.retries.increment(1);
        tracing::debug!(
            target_peer = self.policy.target.as_str(),
            error = %failure,
            ?pause,
            "request reached no process; retrying"
        );
        tokio::time::sleep(pause).await;
        true
    }
}

#[cfg(test)]
mod tests;
