use super::*;
use crate::layout::tests::fresh;

const RATE: u64 = 1_000_000; // tokens/s = 1 token per µs
const BURST: u64 = 100;

fn bucket_with(l: &SegmentLayout, credited: u64, last: u64) -> Bucket<'_> {
    l.bucket.credited.store(credited, Relaxed);
    l.bucket.last_refill_ns.store(last, Relaxed);
    Bucket::new(l)
}

#[test]
fn burst_then_wait() {
    let l = fresh();
    let b = bucket_with(&l, BURST, 0);
    assert_eq!(b.charge(60, RATE, BURST, || 0), Grant::Now);
    assert_eq!(b.charge(40, RATE, BURST, || 0), Grant::Now);
    let Grant::Wait { ticket } = b.charge(10, RATE, BURST, || 0) else {
        panic!("bucket should be empty");
    };
    assert_eq!(ticket, 110);
    assert_eq!(
        b.poll(ticket, 5_000, RATE, BURST),
        Poll::Pending { wait_ns: 5_000 }
    );
    assert_eq!(b.poll(ticket, 10_000, RATE, BURST), Poll::Ready);
    assert_eq!(l.counters().launches, 3);
    assert_eq!(l.counters().tokens_consumed, 110);
}

#[test]
fn idle_bucket_saves_at_most_burst() {
    let l = fresh();
    let b = bucket_with(&l, 0, 0);
    b.refill(10_000_000_000, RATE, BURST); // 10 s idle
    assert_eq!(b.available(), BURST as i64);
    assert_eq!(l.bucket.last_refill_ns.load(Relaxed), 10_000_000_000);
}

#[test]
fn remainder_time_is_kept() {
    let l = fresh();
    let b = bucket_with(&l, 0, 0);
    l.bucket.consumed.store(1_000, Relaxed); // debt so the cap is not reached
    b.refill(1_500, 1_000_000, 0); // 1.5 tokens earned -> 1 credited, 500 ns kept
    assert_eq!(l.bucket.credited.load(Relaxed), 1);
    assert_eq!(l.bucket.last_refill_ns.load(Relaxed), 1_000);
    b.refill(2_000, 1_000_000, 0);
    assert_eq!(l.bucket.credited.load(Relaxed), 2);
}

#[test]
fn rate_change_applies_to_waiting_tickets() {
    let l = fresh();
    let b = bucket_with(&l, 0, 0);
    let Grant::Wait { ticket } = b.charge(1_000, 1_000, BURST, || 0) else {
        panic!("must wait");
    };
    // At 1000 tokens/s the ticket needs 1 s; the agent raises the rate to 1e9/s.
    assert!(matches!(
        b.poll(ticket, 1_000, 1_000, BURST),
        Poll::Pending { .. }
    ));
    assert_eq!(b.poll(ticket, 2_000, 1_000_000_000, BURST), Poll::Ready);
}

#[test]
fn abandoned_ticket_does_not_block_later_ones() {
    // A process takes a ticket and dies; a later one still gets through with time.
    let l = fresh();
    let b = bucket_with(&l, 0, 0);
    let _dead = b.charge(500, RATE, BURST, || 0);
    let Grant::Wait { ticket } = b.charge(10, RATE, BURST, || 0) else {
        panic!("must wait");
    };
    assert!(matches!(
        b.poll(ticket, 400_000, RATE, BURST),
        Poll::Pending { .. }
    ));
    assert_eq!(b.poll(ticket, 510_000, RATE, BURST), Poll::Ready);
}

#[test]
fn long_run_rate_is_exact() {
    // Launches of random-ish cost as fast as allowed for 1 s of virtual time: consumed tokens
    // match rate × time + burst.
    let l = fresh();
    let b = bucket_with(&l, BURST, 0);
    let mut now = 0u64;
    let mut granted = 0u64;
    let mut i = 0u64;
    while now < 1_000_000_000 {
        let cost = 1 + (i * 7919) % 50;
        i += 1;
        match b.charge(cost, RATE, BURST, || now) {
            Grant::Now => {}
            Grant::Wait { ticket } => loop {
                match b.poll(ticket, now, RATE, BURST) {
                    Poll::Ready => break,
                    Poll::Pending { wait_ns } => now += wait_ns.max(1),
                }
            },
        }
        granted += cost;
    }
    let expected = RATE + BURST;
    assert!(
        granted.abs_diff(expected) <= 60,
        "granted {granted} expected {expected}"
    );
}

#[test]
fn threads_share_one_bucket() {
    use std::sync::Arc;
    let l = Arc::new(fresh());
    l.bucket.credited.store(0, Relaxed);
    let start = crate::clock::monotonic_ns();
    l.bucket.last_refill_ns.store(start, Relaxed);
    let rate = 2_000_000u64; // tokens/s
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || {
                let b = Bucket::new(&l);
                for _ in 0..2_000 {
                    if let Grant::Wait { ticket } =
                        b.charge(100, rate, 0, crate::clock::monotonic_ns)
                    {
                        while b.poll(ticket, crate::clock::monotonic_ns(), rate, 0) != Poll::Ready {
                            std::hint::spin_loop();
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = crate::clock::monotonic_ns() - start;
    // 800 000 tokens at 2e6/s need at least 0.4 s; never faster.
    assert!(elapsed >= 399_000_000, "too fast: {elapsed} ns");
    assert_eq!(l.counters().tokens_consumed, 800_000);
}

#[test]
fn counters_wrap_around_u64() {
    // Start both counters just below 2^64: tickets and credit wrap mid-run.
    let l = fresh();
    let start = u64::MAX - 250;
    l.bucket.consumed.store(start, Relaxed);
    let b = bucket_with(&l, start.wrapping_add(BURST), 0);
    let mut now = 0u64;
    let mut granted = 0u64;
    while granted < 1_000 {
        match b.charge(10, RATE, BURST, || now) {
            Grant::Now => {}
            Grant::Wait { ticket } => loop {
                match b.poll(ticket, now, RATE, BURST) {
                    Poll::Ready => break,
                    Poll::Pending { wait_ns } => {
                        assert!(wait_ns <= 10_000, "bounded wait, got {wait_ns}");
                        now += wait_ns.max(1);
                    }
                }
            },
        }
        granted += 10;
    }
    // 1000 tokens minus the 100 of burst at 1 token/µs.
    assert!((899_000..=901_000).contains(&now), "virtual time {now}");
    assert!(
        l.bucket.consumed.load(Relaxed) < 1_000,
        "the counter wrapped"
    );
    assert!(b.available() <= BURST as i64);
}
