//! Bounded retries with exponential backoff and jitter for actuator calls.
//!
//! The coordinator's loop must survive a failing actuator (issue 11: "a failed actuator call is
//! retried with backoff and reported; it never crashes the loop"), so every attempt that fails
//! is logged and counted here, and after the last attempt the last error is returned for the
//! caller to report — nothing here panics or loops without bound. Errors that another attempt
//! cannot fix ([`ActuatorError::is_retryable`]) are returned at once.

use std::time::Duration;

use crate::metrics::{ACTUATOR_ERRORS_TOTAL, ACTUATOR_GIVE_UPS_TOTAL, Operation};
use crate::{Actuator, ActuatorError, BoxFuture, ReplicaStatus, StageRef};

#[cfg(test)]
mod tests;

/// How often and how patiently a call is retried. Built by [`Backoff::try_new`] (validated) or
/// [`Backoff::default`] (4 attempts, 500 ms doubling up to 5 s, 20 % jitter: about 3.5 s in
/// all, well inside the coordinator's 30 s interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    attempts: u32,
    initial: Duration,
    max: Duration,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 4,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
            jitter: 0.2,
        }
    }
}

/// Most attempts [`Backoff::try_new`] accepts: beyond it a caller is better served by its own
/// loop (the coordinator retries on its next interval anyway).
pub const MAX_ATTEMPTS: u32 = 100;

impl Backoff {
    /// `attempts` in `1..=MAX_ATTEMPTS` (1 = no retry), `initial` above zero, `max ≥ initial`
    /// and at most an hour, `jitter` in `[0, 1]` (the fraction a delay may be shortened by at
    /// random, so that several callers that failed together do not retry in lock step).
    pub fn try_new(
        attempts: u32,
        initial: Duration,
        max: Duration,
        jitter: f64,
    ) -> Result<Self, ActuatorError> {
        if !(1..=MAX_ATTEMPTS).contains(&attempts) {
            return Err(ActuatorError::InvalidBackoff(format!(
                "attempts must be within 1..={MAX_ATTEMPTS}, got {attempts}"
            )));
        }
        if initial.is_zero() || max < initial || max > Duration::from_secs(3600) {
            return Err(ActuatorError::InvalidBackoff(format!(
                "need 0 < initial ≤ max ≤ 1h, got initial {initial:?}, max {max:?}"
            )));
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(ActuatorError::InvalidBackoff(format!(
                "jitter must be within [0, 1], got {jitter}"
            )));
        }
        Ok(Self {
            attempts,
            initial,
            max,
            jitter,
        })
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before retry number `retry` (0 = after the first failure), given a uniform
    /// draw `unit` in `[0, 1)`: `min(max, initial·2^retry)·(1 − jitter·unit)`. Sans-IO so the
    /// arithmetic is tested without a clock.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        // 2^31 × any initial above zero is beyond `max` (≤ 1 h), so capping the exponent keeps
        // the multiplication finite without changing the result.
        let exp = self.initial.as_secs_f64() * 2f64.powi(retry.min(31) as i32);
        let base = exp.min(self.max.as_secs_f64());
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::from_secs_f64(base * (1.0 - self.jitter * unit))
    }
}

/// Runs `call` on `target` until it succeeds, fails with an error that is not retryable, or
/// has failed `backoff.attempts()` times; returns the last error then. Every failure is logged
/// (warn, with the attempt number) and counted in `sair_actuator_errors_total`; giving up is
/// logged (error) and counted in `sair_actuator_give_ups_total`.
///
/// `call` gets `&mut S` and `&C` each time rather than capturing them, so that it may return a
/// future borrowing both (a closure cannot lend out what it captured, and a higher-ranked
/// closure cannot return a borrow of a captured reference):
/// `with_backoff(&b, actuator.name(), Operation::Scale, actuator, &stage, |a, s| a.scale(s, 3))`.
pub async fn with_backoff<S, C, T, F>(
    backoff: &Backoff,
    actuator: &'static str,
    op: Operation,
    target: &mut S,
    context: &C,
    mut call: F,
) -> Result<T, ActuatorError>
where
    S: ?Sized,
    C: ?Sized,
    F: for<'b> FnMut(&'b mut S, &'b C) -> BoxFuture<'b, Result<T, ActuatorError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match call(target, context).await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        metrics::counter!(ACTUATOR_ERRORS_TOTAL, "actuator" => actuator, "op" => op.as_str())
            .increment(1);
        if !err.is_retryable() || attempt >= backoff.attempts {
            metrics::counter!(ACTUATOR_GIVE_UPS_TOTAL, "actuator" => actuator, "op" => op.as_str())
                .increment(1);
            tracing::error!(
                actuator,
                op = op.as_str(),
                attempt,
                retryable = err.is_retryable(),
                error = %err,
                "actuator call failed; giving up"
            );
            return Err(err);
        }
        let wait = backoff.delay(attempt - 1, rand::random::<f64>());
        tracing::warn!(
            actuator,
            op = op.as_str(),
            attempt,
            of = backoff.attempts,
            retry_in_ms = wait.as_millis() as u64,
            error = %err,
            "actuator call failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

/// `actuator.scale(stage, replicas)` under [`with_backoff`].
pub async fn scale(
    actuator: &mut dyn Actuator,
    stage: &StageRef,
    replicas: u32,
    backoff: &Backoff,
) -> Result<(), ActuatorError> {
    let name = actuator.name();
    with_backoff(backoff, name, Operation::Scale, actuator, stage, |a, s| {
        a.scale(s, replicas)
    })
    .await
}

/// `actuator.status(stage)` under [`with_backoff`].
pub async fn status(
    actuator: &mut dyn Actuator,
    stage: &StageRef,
    backoff: &Backoff,
) -> Result<ReplicaStatus, ActuatorError> {
    let name = actuator.name();
    with_backoff(backoff, name, Operation::Status, actuator, stage, |a, s| {
        a.status(s)
    })
    .await
}
