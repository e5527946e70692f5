use super::*;

#[test]
fn pauses_double_to_the_cap_and_stop_at_the_window() {
    let t0 = Instant::now();
    let mut b = Backoff::new(Duration::from_secs(2), t0);
    let ms = Duration::from_millis;
    assert_eq!(b.next_pause(t0), Some(ms(50)));
    assert_eq!(b.next_pause(t0), Some(ms(100)));
    assert_eq!(b.next_pause(t0), Some(ms(200)));
    assert_eq!(b.next_pause(t0), Some(ms(400)));
    assert_eq!(b.next_pause(t0), Some(ms(500)));
    assert_eq!(b.next_pause(t0), Some(ms(500)));
    // The last pause is cut to the window's end; past it, no more attempts.
    assert_eq!(b.next_pause(t0 + ms(1800)), Some(ms(200)));
    assert_eq!(b.next_pause(t0 + ms(2000)), None);
    assert_eq!(b.next_pause(t0 + ms(2500)), None);
}

#[test]
fn a_zero_window_never_retries() {
    let t0 = Instant::now();
    assert_eq!(Backoff::new(Duration::ZERO, t0).next_pause(t0), None);
}

#[tokio::test]
async fn retrying_sleeps_and_gives_up_after_the_window() {
    let policy = ConnectRetry::disabled(ErrorSource::Upstream);
    assert!(!policy.start().pause(&"refused").await);
    let policy = ConnectRetry::new(
        Duration::from_millis(120),
        Counter::noop(),
        ErrorSource::Downstream,
    );
    let t0 = Instant::now();
    let mut r = policy.start();
    let mut n = 0;
    while r.pause(&"refused").await {
        n += 1;
    }
    // 50 ms, then 70 ms (cut from 100 at the window's end); then the window is spent.
    assert_eq!(n, 2);
    assert!(Instant::now() - t0 >= Duration::from_millis(120));
}
