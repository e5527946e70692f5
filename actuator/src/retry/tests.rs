use std::time::Duration;

use super::*;
use crate::dry_run::DryRun;

/// Fails its first `fail` calls of `scale` with a retryable error, then delegates to a dry run.
struct Flaky {
    fail: u32,
    calls: u32,
    inner: DryRun,
}

impl Actuator for Flaky {
    fn name(&self) -> &'static str {
        "dry-run"
    }
    fn scale<'a>(
        &'a mut self,
        stage: &'a StageRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ActuatorError>> {
        self.calls += 1;
        if self.calls <= self.fail {
            let call = self.calls;
            return Box::pin(async move {
                Err(ActuatorError::StartFailed {
                    stage: stage.clone(),
                    replica: call,
                    what: "model server",
                    reason: "flaky".into(),
                })
            });
        }
        self.inner.scale(stage, replicas)
    }
    fn status<'a>(
        &'a mut self,
        stage: &'a StageRef,
    ) -> BoxFuture<'a, Result<ReplicaStatus, ActuatorError>> {
        self.inner.status(stage)
    }
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

fn flaky(fail: u32) -> Flaky {
    Flaky {
        fail,
        calls: 0,
        inner: DryRun::new(),
    }
}

#[test]
fn delays_double_up_to_the_cap_and_jitter_only_shortens() {
    let b = Backoff::try_new(10, Duration::from_millis(100), Duration::from_secs(1), 0.5)
        .expect("valid");
    assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
    assert_eq!(b.delay(1, 0.0), Duration::from_millis(200));
    assert_eq!(b.delay(3, 0.0), Duration::from_millis(800));
    assert_eq!(b.delay(4, 0.0), Duration::from_secs(1));
    assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(1));
    assert_eq!(b.delay(0, 1.0), Duration::from_millis(50));
    // A bad draw cannot make a delay negative or longer than the cap.
    assert_eq!(b.delay(9, f64::NAN), Duration::from_secs(1));
    assert_eq!(b.delay(9, 7.0), Duration::from_millis(500));
}

#[test]
fn bad_backoffs_are_refused_with_the_reason() {
    let ms = Duration::from_millis;
    for (attempts, initial, max, jitter) in [
        (0, ms(1), ms(1), 0.0),
        (MAX_ATTEMPTS + 1, ms(1), ms(1), 0.0),
        (3, ms(0), ms(1), 0.0),
        (3, ms(10), ms(1), 0.0),
        (3, ms(1), Duration::from_secs(3601), 0.0),
        (3, ms(1), ms(1), -0.1),
        (3, ms(1), ms(1), f64::NAN),
    ] {
        let err = Backoff::try_new(attempts, initial, max, jitter).expect_err("refused");
        assert!(matches!(err, ActuatorError::InvalidBackoff(_)), "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_fails_then_succeeds_is_retried() {
    let stage = StageRef::new("p", "s");
    let mut a = flaky(2);
    let b = Backoff::default();
    let start = tokio::time::Instant::now();
    scale(&mut a, &stage, 2, &b)
        .await
        .expect("third attempt succeeds");
    assert_eq!(a.calls, 3);
    // Two waits: 500 ms and 1 s, each shortened by at most 20 % jitter.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1200) && waited <= Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(
        status(&mut a, &stage, &b).await.ok().map(|s| s.desired),
        Some(2)
    );
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_and_the_last_error_returned() {
    let stage = StageRef::new("p", "s");
    let mut a = flaky(u32::MAX);
    let b = Backoff::try_new(3, Duration::from_millis(10), Duration::from_millis(10), 0.0)
        .expect("valid");
    let err = scale(&mut a, &stage, 2, &b)
        .await
        .expect_err("always fails");
    assert_eq!(a.calls, 3);
    assert!(
        matches!(err, ActuatorError::StartFailed { replica: 3, .. }),
        "the last error, not the first: {err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let mut a = DryRun::new();
    let start = tokio::time::Instant::now();
    let err = status(&mut a, &StageRef::new("p", "s"), &Backoff::default())
        .await
        .expect_err("unknown stage");
    assert!(matches!(err, ActuatorError::UnknownStage { .. }));
    assert_eq!(start.elapsed(), Duration::ZERO);
}
