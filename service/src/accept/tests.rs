use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn backoff_doubles_to_a_cap_and_resets() {
    let mut b = Backoff::default();
    let seq: Vec<_> = (0..13).map(|_| b.fail()).collect();
    assert_eq!(seq[0], Duration::from_millis(1));
    assert_eq!(seq[1], Duration::from_millis(2));
    assert_eq!(seq[9], Duration::from_millis(512));
    assert_eq!(seq[10], BACKOFF_MAX);
    assert_eq!(seq[12], BACKOFF_MAX);
    b.reset();
    assert_eq!(b.fail(), BACKOFF_MIN);
}

#[tokio::test(start_paused = true)]
async fn a_failing_accept_does_not_spin() {
    // An accept that always fails, for 10 s of (paused, virtual) time: without backoff this
    // would be millions of attempts; with it, about 10 + log2(1000) of them.
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let run = retry(move || {
        a.fetch_add(1, Ordering::Relaxed);
        async { Err::<(), _>(std::io::Error::other("EMFILE")) }
    });
    let r = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert!(r.is_err(), "a failing accept never succeeds");
    let n = attempts.load(Ordering::Relaxed);
    tracing::info!(n, "attempts in 10 s");
    assert!((10..=25).contains(&n), "{n} attempts in 10 s");
}

#[tokio::test(start_paused = true)]
async fn a_success_after_failures_is_returned() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let start = tokio::time::Instant::now();
    let v = retry(move || {
        let n = a.fetch_add(1, Ordering::Relaxed);
        async move {
            if n < 3 {
                Err(std::io::Error::other("ECONNABORTED"))
            } else {
                Ok(n)
            }
        }
    })
    .await;
    assert_eq!(v, 3);
    // 1 + 2 + 4 ms of backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(7));
}

#[tokio::test]
async fn accepts_a_real_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let c = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (_s, peer) = accept(&l).await;
    let c = c.await.unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
}
